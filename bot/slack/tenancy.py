"""Which business a Slack request is about: always its team and channel, never a button's value.

A button's value says which bill; the workspace and channel Slack signed into the request say whose.
A bill id from another business is then simply not found in this one's books.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.slack.list_modal import LIST_MODAL, view_metadata
from runway.businesses import BusinessDirectory
from runway.models import Business


class NotLinked(LookupError):
    """The channel is not linked to a business: the reply says how to link it."""


#: Slack's ids: T… teams, C…/G…/D… channels, U…/W… users (upper-case letters and digits).
SLACK_ID = re.compile(r"[A-Z0-9]{1,40}")


@dataclass(frozen=True)
class Where:
    team_id: str
    channel_id: str
    user_id: str


def where_from(body: dict[str, Any]) -> Where:
    """Team, channel and user of a slash command, block action or event body."""
    team = body.get("team")
    team_id = (
        (team.get("id") if isinstance(team, dict) else None)
        or body.get("team_id")
        or (body.get("user") or {}).get("team_id")
    )
    channel = body.get("channel")
    container = body.get("container") or {}
    channel_id = (
        (channel.get("id") if isinstance(channel, dict) else None)
        or body.get("channel_id")
        or container.get("channel_id")
        or view_channel(body)
    )
    user = body.get("user")
    user_id = (user.get("id") if isinstance(user, dict) else None) or body.get("user_id")
    if not all(
        isinstance(found, str) and SLACK_ID.fullmatch(found)
        for found in (team_id, channel_id, user_id)
    ):
        # Nothing that is not a Slack id (NUL bytes, a mile of text) is ever looked up.
        raise ValueError("the Slack request names no valid team, channel or user")
    assert isinstance(team_id, str) and isinstance(channel_id, str) and isinstance(user_id, str)
    return Where(team_id, channel_id, user_id)


def is_home(body: dict[str, Any]) -> bool:
    """Whether a click came from a person's Home tab (it has no channel and no response_url)."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "home"


def is_list_modal(body: dict[str, Any]) -> bool:
    """Whether a click came from the list modal "Show all" opens (no channel, no response_url)."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "modal" and view.get("callback_id") == LIST_MODAL


def view_channel(body: dict[str, Any]) -> str | None:
    """The channel of the business a Home tab or the list modal shows: Oodaloo wrote it into the
    view's private_metadata when it published or opened the view, and Slack hands it back signed
    with the click (as the settings modal does); a channel of another team is then simply not
    found."""
    if not is_home(body) and not is_list_modal(body):
        return None
    found = view_metadata(body["view"]).get("channel_id")
    return found if isinstance(found, str) else None


async def business_here(directory: BusinessDirectory, where: Where) -> Business:
    business = await directory.by_slack_channel(where.team_id, where.channel_id)
    if business is None:
        raise NotLinked(
            "This channel is not linked to a business yet. Run `/runway connect` here to connect "
            "your QuickBooks company, and the weekly digest will come to this channel."
        )
    return business


def is_approver(business: Business, user_id: str) -> bool:
    return user_id in (business.approvers or [])
