"""What Oodaloo posts to a business's channel, and how its messages follow the books.

The weekly digest, shared summaries, drift alerts and the "QuickBooks is disconnected" notice are
posted here. After anything changes a bill or an invoice (a click, an email link, the reconciler
settling a payment), every recent message showing it is drawn again from the books as they stand:
its cards, counts and headline say what is true now, and nothing is read back from rendered text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import DigestContext, Oodaloo
from bot.models import SlackMessage as StoredMessage
from bot.slack import blocks as kit
from bot.slack.blocks import Kind
from bot.slack.list_modal import ListModal, list_message, list_view, update_list
from bot.slack.mrkdwn import escape
from bot.slack.poster import ChannelPoster
from bot.slack.tenancy import Where
from runway.digest import DigestView
from runway.models import Business
from runway.shown_rows import DIGEST_ROWS, NO_ROWS
from sync import BILL_PAYMENT_CREATE, Resolution

logger = logging.getLogger(__name__)

#: "QuickBooks is disconnected" is said at most this often per business.
DISCONNECTED_NOTICE_EVERY = timedelta(hours=6)

#: How many of a business's latest digests and summaries follow each sync.
RECENT = 3

ClientFor = Callable[[str | None], Awaitable[AsyncWebClient]]
#: The URL Slack fetches a digest's chart from (`bot.chart_links`), or None: no chart.
#: The URL Slack fetches a digest's chart from, the chart drawn and kept first (None: shown without).
ChartUrl = Callable[[DigestView], Awaitable[str | None]]


class ListOrigin(Protocol):
    """The ephemeral list (Slack keeps no copy the bot could update) or the list modal a click
    came from."""

    @property
    def client(self) -> AsyncWebClient: ...

    @property
    def is_ephemeral(self) -> bool: ...

    @property
    def message_ts(self) -> str | None: ...

    @property
    def respond(self) -> Any: ...

    @property
    def in_home(self) -> bool:
        """The click came from a Home tab: there is no list to answer (Home follows instead)."""

    @property
    def modal(self) -> ListModal | None:
        """The list modal the click came from: drawn again with `views.update`."""


class ChannelMessages:
    def __init__(
        self,
        oodaloo: Oodaloo,
        poster: ChannelPoster,
        client_for: ClientFor,
        *,
        chart_url: ChartUrl | None = None,
    ) -> None:
        self.oodaloo = oodaloo
        self.poster = poster
        self.client_for = client_for
        self.chart_url = chart_url
        #: Told (the business) after its messages were drawn again: the Home tabs follow.
        self.followers: list[Callable[[Business, AsyncWebClient | None], Awaitable[None]]] = []

    async def post_digest(
        self, ctx: DigestContext, *, client: AsyncWebClient | None = None
    ) -> tuple[str, str]:
        business = ctx.business
        if not business.slack_channel_id:
            raise ValueError(f"{business.name} has no digest channel; set one with /runway settings")
        chart_url = await self.chart_url(ctx.view) if self.chart_url else None
        message = kit.digest_message(
            ctx.view, business_name=business.name, payment_account=ctx.payment_account,
            chart_url=chart_url,
        )
        web = client or await self.client_for(business.slack_team_id)
        try:
            posted = await self.poster.post(
                business.id, business.slack_channel_id, text=message.text, blocks=message.blocks,
                kind="digest", client=web,
            )
        except SlackApiError as refused:
            if chart_url is None or not image_refused(refused):
                raise
            # Slack could not fetch the chart (PUBLIC_URL unreachable from Slack, or a hiccup):
            # the digest goes without it, and its redraws too (they keep it only where it was).
            logger.warning("the digest of %s went without its chart: %s", business.id, refused)
            message = kit.digest_message(
                ctx.view, business_name=business.name, payment_account=ctx.payment_account
            )
            posted = await self.poster.post(
                business.id, business.slack_channel_id, text=message.text, blocks=message.blocks,
                kind="digest", client=web,
            )
        return posted.channel_id, posted.ts

    async def post_drift_alerts(self, business_id: str) -> None:
        business = await self.oodaloo.directory.get(business_id)
        if not business.slack_channel_id:
            return
        services = self.oodaloo.services(business)
        for notice in await services.drift.open_events():
            block_id = f"drift:{notice.id}"
            if await self.poster.messages_with_block(business_id, block_id, limit=1):
                continue
            message = kit.notice_message(
                f":warning: *QuickBooks and Oodaloo disagree.* {escape(notice.sentence)}",
                buttons=(
                    ("Re-sync", kit.DRIFT_RESYNC, str(notice.id), "primary"),
                    ("Dismiss", kit.DRIFT_DISMISS, str(notice.id), None),
                ),
            )
            message.blocks[0]["block_id"] = block_id
            await self.poster.post(
                business_id, business.slack_channel_id, text=message.text, blocks=message.blocks,
                kind="drift", client=await self.client_for(business.slack_team_id),
            )

    async def post_connection_trouble(self, where: Where, reason: str, client: AsyncWebClient) -> None:
        business = await self.oodaloo.directory.by_slack_channel(where.team_id, where.channel_id)
        if business is None or not business.slack_channel_id:
            return
        block_id = "qbo-disconnected"
        recent = await self.poster.messages_with_block(business.id, block_id, limit=1)
        if recent and recent[0].created_at > self.oodaloo.clock.now() - DISCONNECTED_NOTICE_EVERY:
            return
        message = kit.notice_message(
            f":electric_plug: *QuickBooks is disconnected* for {escape(business.name)}: "
            f"{escape(reason)}. Digests and payments wait until it is reconnected.",
            buttons=(("Reconnect", kit.QBO_RECONNECT, business.id, "primary"),),
        )
        message.blocks[0]["block_id"] = block_id
        await self.poster.post(
            business.id, business.slack_channel_id, text=message.text, blocks=message.blocks,
            kind="connection", client=client,
        )

    async def on_resolution(self, resolution: Resolution) -> None:
        """A payment left unknown settled: every message showing the bill follows."""
        if not resolution.settled or resolution.operation != BILL_PAYMENT_CREATE:
            return
        action = await self.oodaloo.infra.ledger.get(resolution.key)
        if action is None:
            return
        business = await self.oodaloo.directory.get(resolution.business_id)
        await self.refresh_everywhere(business, "bill", action.target_id)

    async def refresh_everywhere(
        self,
        business: Business,
        kind: Kind,
        item_id: str,
        *,
        origin: ListOrigin | None = None,
        client: AsyncWebClient | None = None,
    ) -> None:
        """Draw again, from the books as they stand, every recent message of the business that
        shows the item (digests and shared summaries: their cards, counts and headline), and the
        ephemeral list `origin` a click came from."""
        async with self.oodaloo.one_read():
            await self._refresh(business, kind, item_id, origin, client)
            for follower in self.followers:
                try:
                    await follower(business, (origin.client if origin else None) or client)
                except Exception:  # a Home tab left behind never fails the change
                    logger.exception("a follower failed after %s %s of %s changed", kind, item_id,
                                     business.id)

    async def _refresh(
        self,
        business: Business,
        kind: Kind,
        item_id: str,
        origin: ListOrigin | None,
        client: AsyncWebClient | None,
    ) -> None:
        web = (origin.client if origin else None) or client
        web = web or await self.client_for(business.slack_team_id)
        for row in await self.poster.messages_with_block(business.id, f"{kind}:{item_id}"):
            await self._redraw(business.id, row, web)
        if origin is None or origin.in_home:
            return
        shown = [item_id] if kind == "bill" else []
        if origin.modal is not None:
            await self.redraw_list(business, origin.modal, web, shown_bill_ids=shown)
        elif origin.is_ephemeral or not origin.message_ts:
            listed = await list_message(self.oodaloo, business, kind, shown_bill_ids=shown)
            await origin.respond(replace_original=True, blocks=listed.blocks, text=listed.text)

    async def redraw_list(
        self,
        business: Business,
        modal: ListModal,
        client: AsyncWebClient,
        *,
        shown_bill_ids: Sequence[str] = (),
        notice: str | None = None,
    ) -> None:
        """The list modal drawn again at its page from the books as they stand (`notice`: a word
        for the person above the list, mrkdwn escaped by the caller). A modal the person closed
        meanwhile is left closed."""
        if not business.slack_channel_id:
            return
        listed = await list_message(
            self.oodaloo, business, modal.kind, modal.offset, shown_bill_ids=shown_bill_ids
        )
        view = list_view(listed, kind=modal.kind, offset=modal.offset,
                         channel_id=business.slack_channel_id, notice=notice)
        await update_list(client, modal, view)

    async def redraw_recent(self, business_id: str) -> None:
        """After a sync: the business's recent digests and summaries show the books as read now
        (figures, cards, and when QuickBooks was last read)."""
        business = await self.oodaloo.directory.get(business_id)
        recent = await self.poster.recent(business_id, kinds=("digest", "summary"), limit=RECENT)
        if not recent:
            return
        web = await self.client_for(business.slack_team_id)
        async with self.oodaloo.one_read():
            for row in recent:
                await self._redraw(business_id, row, web)

    async def _redraw(self, business_id: str, row: StoredMessage, web: AsyncWebClient) -> None:
        try:
            await self.poster.redraw(business_id, row.channel_id, row.ts, self.redraw, client=web)
        except SlackApiError as refused:
            if not image_refused(refused):
                raise
            # Slack could not fetch the chart this time: the message is drawn without it.
            logger.warning("a message of %s is drawn without its chart: %s", business_id, refused)
            await self.poster.redraw(
                business_id, row.channel_id, row.ts, self.redraw_without_chart, client=web
            )

    async def redraw_without_chart(self, row: StoredMessage) -> kit.SlackMessage | None:
        return await self.redraw(row, chart=False)

    async def redraw(self, row: StoredMessage, *, chart: bool = True) -> kit.SlackMessage | None:
        """A stored message drawn again from the books as they stand (None: leave it as it is);
        a digest keeps its chart if it had one (and `chart`)."""
        if row.kind not in ("digest", "summary"):
            return None
        shown = kit.shown_ids(row.blocks, "bill")
        ctx = await self.oodaloo.digest(
            row.business_id,
            shown_bill_ids=shown,
            rows=NO_ROWS if row.kind == "summary" else DIGEST_ROWS,
        )
        name = ctx.business.name
        if row.kind == "summary":
            return kit.summary_message(ctx.view, business_name=name)
        had_chart = chart and any(block.get("block_id") == kit.CHART_BLOCK for block in row.blocks)
        return kit.digest_message(
            ctx.view, business_name=name, payment_account=ctx.payment_account,
            chart_url=await self.chart_url(ctx.view) if had_chart and self.chart_url else None,
        )


def image_refused(error: SlackApiError) -> bool:
    """Slack refused the blocks for an image ("downloading image failed [.../image_url]")."""
    answer = error.response
    if answer.get("error") != "invalid_blocks":
        return False
    metadata = answer.get("response_metadata") or {}
    problems = [*(answer.get("errors") or ()), *(metadata.get("messages") or ())]
    return any("image" in str(problem) for problem in problems)


__all__ = ["ChannelMessages", "ListOrigin"]
