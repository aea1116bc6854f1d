"""The Home tab: each person's own page of Oodaloo in Slack, published with `views.publish`.

It shows the business of the person's team (the one they approve for, else the first): the
runway headline and cash from the digest's view model, the bills waiting for *this* person's
approval or payment with the digest's own buttons (the same action ids, so a click from Home runs
the same handlers), payments in flight, what people did recently (the audit trail), the drift
open, and a Settings button (the `/runway settings` modal). A person whose team has no business
yet sees how to connect one.

The view's private_metadata names the business's channel: a click from Home has no channel, and
`tenancy.where_from` takes it from there (Slack hands it back signed, as for the settings modal).
Home is published when someone opens it, and after anything changes (a click, an email link, a
payment settling, a sync, drift) again for each person of the team who opened theirs lately
(`HomeViewers`, shared through Redis or this process's memory): nobody else is looking at one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    DividerBlock,
    HeaderBlock,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import DigestContext, Oodaloo
from bot.slack import blocks as kit
from bot.slack.channel import ChartUrl
from bot.slack.mrkdwn import clip, clip_lines, escape
from bot.slack.text import render
from runway.audit import target_of
from runway.cash_flow import home_amount
from runway.digest import BillDue, DigestView, local_time, rate_now
from runway.formatting import money_with_home
from runway.lifecycle import BillState
from runway.models import AuditEntry, Business
from runway.people import SLACK_USER_ID
from runway.shown_rows import DIGEST_ROWS
from runway.uow import RunwayUnitOfWork
from sync import Backend, MemoryBackend, redis_of

logger = logging.getLogger(__name__)

#: The Settings button's action id (it opens the `/runway settings` modal).
HOME_SETTINGS = "home_settings"
#: Home tabs hold at most 100 blocks (Slack's limit for views).
MAX_HOME_BLOCKS = 100
#: Bills with buttons under "Waiting for you", and payments in flight, at most.
WAITING_MOST = 10
IN_FLIGHT_MOST = 8
#: Audit entries under "Recently".
RECENT = 6
#: A person's Home follows every change for this long after they last opened it.
FOLLOW_FOR = timedelta(days=30)

ClientFor = Callable[[str | None], Awaitable[AsyncWebClient]]

#: How the audit trail's actions read after a person's name.
VERBS = {
    "bill.approve": "approved",
    "bill.pay": "paid",
    "bill.payment_decision": "decided on the payment of",
    "bill.snooze": "snoozed",
    "invoice.remind": "sent a reminder for",
}


def _home(blocks: Sequence[Block], channel_id: str | None) -> dict[str, Any]:
    if len(blocks) > MAX_HOME_BLOCKS:
        raise ValueError(f"a Home tab holds at most {MAX_HOME_BLOCKS} blocks, this one has {len(blocks)}")
    return {
        "type": "home",
        "private_metadata": json.dumps({"channel_id": channel_id} if channel_id else {}),
        "blocks": [block.to_dict() for block in blocks],
    }


def notice_blocks(notice: str | None) -> list[Block]:
    """A word for the person at the top of their Home (`notice`: mrkdwn, escaped by the caller),
    where a click from Home is answered when nothing was done."""
    if not notice:
        return []
    return [kit.section(render("home", part="notice", text=notice), block_id="home_notice")]


def not_linked_view(notice: str | None = None) -> dict[str, Any]:
    """Home for a person whose team has no business yet: how to connect one."""
    return _home([*notice_blocks(notice), kit.section(render("home", part="not_linked", bot_name="Oodaloo"),
                                                      block_id="home_welcome")], None)


def not_connected_view(business: Business, notice: str | None = None) -> dict[str, Any]:
    blocks: list[Block] = [
        *notice_blocks(notice),
        header(business.name),
        kit.section(
            render(
                "home", part="not_connected", business_name=kit.name(business.name),
                channel_id=business.slack_channel_id,
            ),
            block_id="home_connect",
        ),
    ]
    return _home(blocks, business.slack_channel_id)


def header(business_name: str) -> HeaderBlock:
    text = render("home", part="header", business_name=clip(business_name, kit.NAME_LIMIT))
    return HeaderBlock(text=kit.plain(text, kit.HEADER_TEXT_LIMIT), block_id="home_header")


def chart_blocks(view: DigestView, chart_url: str | None) -> list[Block]:
    """The runway chart under the headline, the digest's own image block (`bot.chart`), when
    Slack can fetch it (`chart_url`); without one the Home tab shows the figures alone."""
    return [kit.chart_block(view, chart_url)] if chart_url else []


def waiting_for(view: DigestView, identities: frozenset[str]) -> list[BillDue]:
    """The bills this person can move now: approve (their approval would count) or pay."""
    return [
        bill
        for bill in view.bills
        if bill.standing.can_approve(identities) or bill.standing.can_pay
    ]


def in_flight(view: DigestView) -> list[BillDue]:
    return [bill for bill in view.bills if bill.standing.in_flight]


@dataclass(frozen=True)
class RecentItem:
    """The bill or invoice an audit entry acted on, as the mirror has it now."""

    kind: kit.Kind
    name: str
    doc_number: str | None
    currency: str
    #: Home units per unit of its currency (`runway.digest.rate_now`).
    rate: Decimal
    balance: Decimal


def recent_target(view: DigestView, entry: AuditEntry, item: RecentItem | None) -> str:
    """What the entry acted on, as the cards name it (mrkdwn): vendor or customer and document
    number, and the amount it was for, in its currency with the home currency's where they
    differ; the trail's own words when the mirror no longer has it."""
    if item is None:
        return escape(clip(entry.target, kit.NAME_LIMIT))
    amount = entry.amount if entry.amount is not None else item.balance
    return f"{kit.item_name(item.kind, item.name, item.doc_number)}, " + money_with_home(
        amount, item.currency, home_amount(amount, item.rate), view.currency
    )


def recent_line(view: DigestView, entry: AuditEntry, item: RecentItem | None = None) -> str:
    outcome = (entry.outcome or "still going").split(":", 1)[0]
    return render(
        "home",
        locale=view.locale,
        part="recent_line",
        when=local_time(entry.requested_at, view.tz),
        actor=kit.person(entry.actor) if entry.actor != "scheduler" else "Oodaloo",
        verb=VERBS.get(entry.action, entry.action),
        target=recent_target(view, entry, item),
        outcome=outcome,
    )


async def recent_items(
    uow: RunwayUnitOfWork, view: DigestView, recent: Sequence[AuditEntry]
) -> dict[str, RecentItem]:
    """The bills and invoices `recent` acted on, by their audit target ("Bill 1042"), read from
    the mirror; a bill the digest shows is paid at the digest's own rate."""
    found: dict[str, RecentItem] = {}
    shown = {bill.bill_id: bill for bill in view.bills}
    for entry in recent:
        target = target_of(entry.target)
        if target is None or entry.target in found:
            continue
        kind, qbo_id = target
        if kind == "bill":
            bill = await uow.bills.get(qbo_id)
            if bill is None:
                continue
            currency = bill.currency or view.currency
            rate = shown[qbo_id].rate if qbo_id in shown else rate_now(
                currency, bill.exchange_rate, view.currency, {}, booked=bill.payment_exchange_rate
            )
            found[entry.target] = RecentItem(
                "bill", bill.vendor_name or "", bill.doc_number, currency, rate, bill.balance
            )
        else:
            invoice = await uow.invoices.get(qbo_id)
            if invoice is None:
                continue
            currency = invoice.currency or view.currency
            rate = rate_now(currency, invoice.exchange_rate, view.currency, {})
            found[entry.target] = RecentItem(
                "invoice", invoice.customer_name or "", invoice.doc_number, currency, rate,
                invoice.balance,
            )
    return found


def home_view(
    ctx: DigestContext,
    *,
    identities: frozenset[str],
    approver: bool,
    recent: Sequence[AuditEntry],
    notice: str | None = None,
    chart_url: str | None = None,
    recent_named: Mapping[str, RecentItem] | None = None,
) -> dict[str, Any]:
    """The Home tab of one person (`identities`: their Slack id and email, as known); the chart
    from `chart_url` when Slack can fetch it."""
    view, business = ctx.view, ctx.business
    blocks: list[Block] = [
        *notice_blocks(notice),
        header(business.name),
        kit.headline_block(view),
        *chart_blocks(view, chart_url),
        kit.cash_block(view),
        kit.freshness_block(view),
    ]
    if approver:
        settings = kit.button(render("home", part="settings_button"), HOME_SETTINGS, business.id)
        blocks.append(ActionsBlock(elements=[settings], block_id="home_actions"))
    blocks.append(DividerBlock())

    listed: set[str] = set()
    if approver:
        mine = waiting_for(view, identities)
        blocks.append(kit.section(render("home", part="waiting_title", count=len(mine)),
                                  block_id="home_waiting"))
        for bill in mine[:WAITING_MOST]:
            blocks += kit.bill_blocks(view, bill, ctx.payment_account)
            listed.add(bill.bill_id)
        if len(mine) > WAITING_MOST:
            blocks.append(kit.section(
                render("home", part="waiting_more", n=len(mine) - WAITING_MOST,
                       channel_id=business.slack_channel_id),
                block_id="home_waiting_more",
            ))  # fmt: skip
        others = [item for item in view.approvals.items if item.bill_id not in listed]
        if others:
            title = render("home", part="others_waiting")
            lines = [
                render(
                    "approval_line",
                    locale=view.locale,
                    vendor=kit.name(item.vendor_name),
                    amount=money_with_home(item.amount, item.currency, item.home_amount,
                                           view.currency, locale=view.locale),
                    due_date=item.due_date,
                    approvers=kit.people(item.approved_by),
                )
                for item in others
            ]
            listed_lines = clip_lines(lines, kit.SECTION_TEXT_LIMIT - len(title) - 1,
                                          kit.and_more("bill", "bills"), most=kit.SHORT_LIST)
            blocks.append(kit.section(f"{title}\n{listed_lines}", block_id="home_others_waiting"))
    else:
        approvers = kit.people([a for a in business.approvers or [] if SLACK_USER_ID.fullmatch(a)])
        blocks.append(kit.section(render("home", part="not_approver", approvers=approvers),
                                  block_id="home_waiting"))

    flying = [bill for bill in in_flight(view) if bill.bill_id not in listed]
    if flying:
        blocks += [DividerBlock(), kit.section(render("home", part="in_flight_title", count=len(flying)),
                                               block_id="home_in_flight")]
        for bill in flying[:IN_FLIGHT_MOST]:
            # Only an approver gets the buttons of a payment that needs a person.
            drawn = kit.bill_blocks(view, bill, ctx.payment_account)
            blocks += drawn if approver or bill.state is not BillState.NEEDS_PERSON else drawn[:1]

    blocks.append(DividerBlock())
    if recent:
        named = recent_named or {}
        lines = [recent_line(view, entry, named.get(entry.target)) for entry in recent]
        title = render("home", part="recent_title")
        blocks.append(kit.section(f"{title}\n" + clip_lines(lines, kit.SECTION_TEXT_LIMIT - len(title) - 1),
                                  block_id="home_recent"))
    else:
        blocks.append(kit.section(render("home", part="recent_none"), block_id="home_recent"))
    drift = kit.drift_block(view)
    blocks.append(drift if drift is not None else kit.section(render("home", part="drift_none"),
                                                               block_id="drift"))
    return _home(blocks, business.slack_channel_id)


@dataclass(frozen=True)
class _Shared:
    """What every Home tab of one business shows alike, read once per change."""

    ctx: DigestContext
    recent: Sequence[AuditEntry]
    #: What the recent entries acted on, by their target.
    named: Mapping[str, RecentItem]


@dataclass
class _Opened:
    #: team id -> user id -> when (epoch seconds) they last opened their Home.
    at: dict[str, dict[str, float]] = field(default_factory=dict)


class HomeViewers:
    """Who opened their Home tab lately, per Slack team: Redis (a sorted set per team, shared by
    every process) or this process's memory."""

    def __init__(self, backend: Backend, follow_for: timedelta = FOLLOW_FOR) -> None:
        self.backend = backend
        self.follow_for = follow_for.total_seconds()

    async def opened(self, team_id: str, user_id: str) -> None:
        now = time.time()
        if isinstance(self.backend, MemoryBackend):
            self.backend.state("home-viewers", _Opened).at.setdefault(team_id, {})[user_id] = now
            return
        key = self.backend.key("home-viewers", team_id)
        try:
            async with redis_of(self.backend).pipeline(transaction=False) as pipe:
                pipe.zadd(key, {user_id: now})
                pipe.zremrangebyscore(key, "-inf", now - self.follow_for)
                pipe.expire(key, int(self.follow_for))
                await pipe.execute()
        except self.backend.errors as exc:
            logger.warning("could not note that %s opened their Home tab (%s)", user_id, exc)

    async def lately(self, team_id: str) -> list[str]:
        """The people of the team who opened their Home within `follow_for`."""
        since = time.time() - self.follow_for
        if isinstance(self.backend, MemoryBackend):
            opened = self.backend.state("home-viewers", _Opened).at.get(team_id, {})
            return sorted(user for user, at in opened.items() if at >= since)
        try:
            found = await redis_of(self.backend).zrangebyscore(
                self.backend.key("home-viewers", team_id), since, "+inf"
            )
        except self.backend.errors as exc:
            logger.warning("could not read who opened their Home tab lately (%s)", exc)
            return []
        return sorted(item.decode() if isinstance(item, bytes) else str(item) for item in found)


class HomeTab:
    """Publishes people's Home tabs over one `Oodaloo`."""

    def __init__(
        self, oodaloo: Oodaloo, client_for: ClientFor, *, chart_url: ChartUrl | None = None
    ) -> None:
        self.oodaloo = oodaloo
        self.client_for = client_for
        self.chart_url = chart_url
        self.viewers = HomeViewers(oodaloo.infra.backend)

    async def business_of(self, team_id: str, user_id: str) -> Business | None:
        """The business a person's Home shows: the first of the team they approve for, else the
        team's first."""
        found = await self.oodaloo.directory.in_slack_team(team_id)
        mine = [business for business in found if user_id in (business.approvers or [])]
        chosen = mine or found
        return chosen[0] if chosen else None

    async def view_for(
        self,
        team_id: str,
        user_id: str,
        *,
        business: Business | None = None,
        notice: str | None = None,
        shared: _Shared | None = None,
    ) -> dict[str, Any]:
        """The person's Home view; `shared` is what the Home tabs of one business have in common
        (its digest and recent actions), read once for everyone who follows it."""
        business = business or await self.business_of(team_id, user_id)
        if business is None:
            return not_linked_view(notice)
        if not business.realm_id:
            return not_connected_view(business, notice)
        shared = shared or await self.shared(business)
        async with self.oodaloo.uows(business.id) as uow:
            identities = await uow.people.identities(user_id)
        approver = any(name in identities for name in business.approvers or [])
        return home_view(
            shared.ctx, identities=identities, approver=approver, recent=shared.recent,
            notice=notice, recent_named=shared.named,
            chart_url=await self.chart_url(shared.ctx.view) if self.chart_url else None,
        )

    async def shared(self, business: Business) -> _Shared:
        ctx = await self.oodaloo.digest(business.id, rows=DIGEST_ROWS)
        async with self.oodaloo.uows(business.id) as uow:
            recent = await uow.audit.recent(RECENT)
            named = await recent_items(uow, ctx.view, recent)
        return _Shared(ctx, recent, named)

    async def publish(
        self,
        team_id: str,
        user_id: str,
        *,
        client: AsyncWebClient | None = None,
        business: Business | None = None,
        notice: str | None = None,
        shared: _Shared | None = None,
    ) -> bool:
        """Publish the person's Home tab as things stand (False: Slack refused it). A refusal is
        logged, never raised: a Home tab left as it was must not fail the click or sync that
        asked for it."""
        view = await self.view_for(team_id, user_id, business=business, notice=notice, shared=shared)
        web = client or await self.client_for(team_id)
        try:
            await web.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            logger.warning("could not publish %s's Home tab: %s", user_id, exc.response.get("error"))
            return False
        return True

    async def opened(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        """`app_home_opened`: the person sees their Home as things stand now."""
        team_id, user_id = body.get("team_id"), body.get("user")
        if not isinstance(team_id, str) or not isinstance(user_id, str) or not SLACK_USER_ID.fullmatch(user_id):
            logger.warning("an app_home_opened event without its team or user")
            return
        if await self.publish(team_id, user_id, client=client):
            # Followed from now on; someone Slack does not know is not.
            await self.viewers.opened(team_id, user_id)

    async def follow(self, business: Business, client: AsyncWebClient | None = None) -> None:
        """After a change: the Home tab of each person of the team who opened theirs lately and
        sees this business there follows."""
        team_id = business.slack_team_id
        if not team_id:
            return
        people = await self.viewers.lately(team_id)
        if not people:
            return
        web = client or await self.client_for(team_id)
        shared: _Shared | None = None
        for user_id in people:
            shown = await self.business_of(team_id, user_id)
            if shown is None or shown.id != business.id:
                continue
            shared = shared or (await self.shared(shown) if shown.realm_id else None)
            await self.publish(team_id, user_id, client=web, business=shown, shared=shared)

    async def follow_id(self, business_id: str) -> None:
        """`follow` by business id (the sync, drift and resolution listeners)."""
        await self.follow(await self.oodaloo.directory.get(business_id))


__all__ = ["HOME_SETTINGS", "HomeTab", "home_view", "not_linked_view"]
