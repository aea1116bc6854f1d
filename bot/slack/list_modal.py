"""The whole list of bills to pay or overdue invoices in a modal, where the person clicked.

"Show all" and "…and N more" under the digest, and "Bills to pay" / "Overdue invoices" under the
`/runway` summary, open the list with `views.open` (the click's trigger_id): the same page, rows
and buttons as `/runway bills` and `/runway invoices` (`blocks.bills_message`,
`blocks.invoices_message`). "Next" inside the modal turns its page with `views.update`; a click on
Approve, Pay, Snooze or Send reminder inside it runs the digest's own handlers, and the modal is
drawn again from the books afterwards (`ChannelMessages.refresh_everywhere`), as a Home tab is.

A click from a modal has no channel and no response_url: the view's private_metadata names the
business's channel (Slack hands it back signed, `tenancy.view_channel`) and the page it shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.blocks import Kind
from bot.slack.text import render
from runway.models import Business

if TYPE_CHECKING:
    from bot.bootstrap import Oodaloo

logger = logging.getLogger(__name__)

#: The list modal's callback_id: a click carrying it came from the list.
LIST_MODAL = "oodaloo_list"
#: Slack's limits for a modal: its title and close button, its blocks.
VIEW_TITLE_LIMIT = 24
MAX_VIEW_BLOCKS = 100


@dataclass(frozen=True)
class ListModal:
    """The list modal a click came from: which view, and which page of which list it shows."""

    view_id: str
    kind: Kind
    offset: int


def list_modal_of(body: dict[str, Any]) -> ListModal | None:
    """The list modal a click's body came from, or None (a message, a Home tab, another modal)."""
    view = body.get("view")
    if not isinstance(view, dict) or view.get("type") != "modal" or view.get("callback_id") != LIST_MODAL:
        return None
    metadata = view_metadata(view)
    kind, offset, view_id = metadata.get("kind"), metadata.get("offset"), view.get("id")
    if kind not in ("bill", "invoice") or not isinstance(view_id, str) or not view_id:
        return None
    return ListModal(view_id, "bill" if kind == "bill" else "invoice",
                     offset if isinstance(offset, int) and offset >= 0 else 0)


def view_metadata(view: dict[str, Any]) -> dict[str, Any]:
    """The JSON object Oodaloo wrote into a view's private_metadata ({} when it is not one)."""
    try:
        metadata = json.loads(str(view.get("private_metadata") or "{}"))
    except (ValueError, RecursionError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


async def list_message(
    oodaloo: Oodaloo,
    business: Business,
    kind: Kind,
    offset: int = 0,
    *,
    shown_bill_ids: Sequence[str] = (),
) -> kit.SlackMessage:
    """One page of the list, from the books as they stand (`shown_bill_ids`: bills kept on the page
    whatever became of them, so a bill just paid shows as paid)."""
    rows = kit.bills_page_rows(offset) if kind == "bill" else kit.invoices_page_rows(offset)
    ctx = await oodaloo.digest(business.id, shown_bill_ids=shown_bill_ids, rows=rows)
    if kind == "bill":
        return kit.bills_message(
            ctx.view, business_name=business.name, payment_account=ctx.payment_account, offset=offset
        )
    return kit.invoices_message(ctx.view, business_name=business.name, offset=offset)


def list_view(
    message: kit.SlackMessage,
    *,
    kind: Kind,
    offset: int,
    channel_id: str,
    notice: str | None = None,
) -> dict[str, Any]:
    """The modal showing `message` (a page of the list); `notice` (mrkdwn, escaped by the caller)
    is a word for the person above it, where a click in the modal is answered when nothing was
    done."""
    blocks = list(message.blocks)
    if notice:
        text = render("list_modal", part="notice", text=notice)
        blocks.insert(0, kit.section(text, block_id="list_notice").to_dict())
    if len(blocks) > MAX_VIEW_BLOCKS:
        raise ValueError(f"a modal holds at most {MAX_VIEW_BLOCKS} blocks, this one has {len(blocks)}")
    return {
        "type": "modal",
        "callback_id": LIST_MODAL,
        "title": kit.plain(render("list_modal", part="title", kind=kind), VIEW_TITLE_LIMIT).to_dict(),
        "close": kit.plain(render("list_modal", part="close"), VIEW_TITLE_LIMIT).to_dict(),
        "private_metadata": json.dumps({"channel_id": channel_id, "kind": kind, "offset": offset}),
        "blocks": blocks,
    }


async def open_list(client: AsyncWebClient, trigger_id: str, view: dict[str, Any]) -> bool:
    """Open the list modal (False: Slack refused it, say its trigger expired after 3 s; the caller
    answers another way)."""
    try:
        await client.views_open(trigger_id=trigger_id, view=view)
    except SlackApiError as exc:
        logger.info("could not open the list modal: %s", exc.response.get("error"))
        return False
    return True


async def update_list(client: AsyncWebClient, modal: ListModal, view: dict[str, Any]) -> bool:
    """Draw the list modal again (False: Slack refused it, say the person closed it meanwhile)."""
    try:
        await client.views_update(view_id=modal.view_id, view=view)
    except SlackApiError as exc:
        logger.info("could not update the list modal %s: %s", modal.view_id, exc.response.get("error"))
        return False
    return True


def notice_view(text: str, *, kind: Kind, offset: int, channel_id: str) -> dict[str, Any]:
    """The list modal holding only a word for the person (their list could not be read)."""
    return list_view(kit.SlackMessage(text="", blocks=[]), kind=kind, offset=offset,
                     channel_id=channel_id, notice=text)


__all__ = [
    "LIST_MODAL",
    "ListModal",
    "list_message",
    "list_modal_of",
    "list_view",
    "notice_view",
    "open_list",
    "update_list",
]
