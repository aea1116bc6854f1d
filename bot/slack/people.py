"""Who a Slack user is beyond their user id: the email on their Slack profile (`users:read.email`).

Oodaloo remembers it (`runway.uow.PeopleRepository`) so that a person's approval from Slack and
their approval from the email digest count as one person's: a bill above the threshold still needs
a second, different person.
"""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from runway.people import SLACK_USER_ID
from runway.uow import UowFactory
from sync import Clock

logger = logging.getLogger(__name__)


async def remember_slack_people(
    uows: UowFactory, clock: Clock, business_id: str, client: AsyncWebClient, user_ids: list[str]
) -> None:
    """Read each Slack user's profile and remember their email for the business."""
    for user_id in user_ids:
        if not SLACK_USER_ID.fullmatch(user_id):
            continue  # an email address among the approvers: nothing to look up
        try:
            info = await client.users_info(user=user_id)
        except SlackApiError as exc:
            logger.info("could not read %s's Slack profile: %s", user_id, exc)
            continue
        user = info.get("user") or {}
        profile = user.get("profile") if isinstance(user, dict) else None
        email = profile.get("email") if isinstance(profile, dict) else None
        name = str(user.get("real_name") or user.get("name") or "") if isinstance(user, dict) else ""
        async with uows(business_id) as uow:
            await uow.people.remember(
                slack_user_id=user_id,
                email=email if isinstance(email, str) and email else None,
                name=name or None,
                now=clock.now(),
            )
            await uow.commit()


__all__ = ["remember_slack_people"]
