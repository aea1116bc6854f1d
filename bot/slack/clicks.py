"""The digest's buttons: each handler reads who clicked which item, calls one use case, and lets
the channel's messages follow (`ChannelMessages.refresh_everywhere`). Refusals and "someone got
there first" are told to the person who clicked; nothing is decided here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.blocks import Kind
from bot.slack.home import HOME_SETTINGS
from bot.slack.list_modal import ListModal, list_message, list_modal_of, list_view, open_list
from bot.slack.mrkdwn import escape
from bot.slack.people import remember_slack_people
from bot.slack.tenancy import Where, business_here, is_home, where_from
from runway.digest_schedule import next_digest_time
from runway.lifecycle import BillStanding
from runway.models import Business
from runway.use_cases import (
    Outcome,
    Result,
    approve_bill,
    pay_bill,
    resolve_payment,
    send_reminder,
    snooze_bill,
)
from sync import PersonDecision, SyncStrategy, exact_cents

if TYPE_CHECKING:
    from bot.slack.app import SlackBot

logger = logging.getLogger(__name__)


@dataclass
class Click:
    """One button click, with the business it belongs to (from the team and channel)."""

    where: Where
    business: Business
    value: str
    channel_id: str
    message_ts: str | None
    is_ephemeral: bool
    client: AsyncWebClient
    respond: Any
    #: The click came from the person's Home tab (no channel message, no response_url).
    in_home: bool = False
    trigger_id: str | None = None
    #: The block the clicked button is in ("bill_next": the "Next" of a list).
    block_id: str | None = None
    #: The list modal the click came from (no channel message, no response_url).
    modal: ListModal | None = None


def item_and_amount(value: str) -> tuple[str, Decimal | None]:
    """A button's value: the bill's id and, for Approve and Pay, the amount the card showed."""
    item_id, _, raw = value.partition("|")
    if not raw:
        return item_id, None
    try:
        return item_id, exact_cents(Decimal(raw))  # whole cents Oodaloo can hold, or nothing
    except (InvalidOperation, ValueError):
        raise ValueError(f"the button carries an unreadable amount {raw!r}") from None


class Clicks:
    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.oodaloo = bot.oodaloo

    async def read(self, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> Click:
        where = where_from(body)
        business = await business_here(self.oodaloo.directory, where)
        action = (body.get("actions") or [{}])[0]
        container = body.get("container") or {}
        message = body.get("message") or {}
        return Click(
            where=where,
            business=business,
            value=str(action.get("value") or ""),
            channel_id=where.channel_id,
            message_ts=container.get("message_ts") or message.get("ts"),
            is_ephemeral=bool(container.get("is_ephemeral")),
            client=client,
            respond=respond,
            in_home=is_home(body),
            trigger_id=str(body.get("trigger_id") or "") or None,
            block_id=str(action.get("block_id") or "") or None,
            modal=list_modal_of(body),
        )

    def handlers(self) -> dict[str, Any]:
        """Action id → handler."""
        return {
            kit.BILL_APPROVE: self.approve,
            kit.BILL_PAY: self.pay,
            kit.BILL_SNOOZE: self.snooze,
            kit.INVOICE_REMIND: self.remind,
            kit.SHOW_MORE_BILLS: self.more_bills,
            kit.SHOW_MORE_INVOICES: self.more_invoices,
            kit.DRIFT_RESYNC: self.drift_resync,
            kit.DRIFT_DISMISS: self.drift_dismiss,
            kit.QBO_RECONNECT: self.reconnect,
            HOME_SETTINGS: self.home_settings,
            **{action_id: self.decider(decision) for action_id, decision in kit.PAYMENT_DECISIONS.items()},
        }

    # --- bills and invoices -------------------------------------------------------------------

    async def approve(self, click: Click) -> None:
        bill_id, seen = item_and_amount(click.value)
        await self.remember_person(click)
        services = self.oodaloo.services(click.business)
        outcome = await approve_bill(
            services.bills, bill_id=bill_id, by=click.where.user_id, seen_amount=seen
        )
        await self.answer(click, "bill", bill_id, outcome)

    async def pay(self, click: Click) -> None:
        bill_id, seen = item_and_amount(click.value)
        await self.remember_person(click)
        services = self.oodaloo.services(click.business)
        # Clicks on one bill take turns (across processes): the second sees how the first ended.
        async with self.oodaloo.infra.locks(f"slack-pay:{click.business.id}:{bill_id}"):

            async def paying(_: BillStanding) -> None:
                await self.bot.channel.refresh_everywhere(click.business, "bill", bill_id, origin=click)

            try:
                outcome = await pay_bill(
                    services.bills,
                    bill_id=bill_id,
                    by=click.where.user_id,
                    seen_amount=seen,
                    on_paying=paying,
                )
            except Exception:
                # The card said "Paying…": it says where the bill stands now before the person
                # is told what went wrong.
                await self.bot.channel.refresh_everywhere(click.business, "bill", bill_id, origin=click)
                raise
            await self.answer(click, "bill", bill_id, outcome)

    async def snooze(self, click: Click) -> None:
        bill_id, _ = item_and_amount(click.value)
        services = self.oodaloo.services(click.business)
        until = next_digest_time(click.business, self.oodaloo.clock.now())
        outcome = await snooze_bill(
            services.bills, bill_id=bill_id, by=click.where.user_id, until=until
        )
        await self.answer(click, "bill", bill_id, outcome)

    def decider(self, decision: PersonDecision) -> Callable[[Click], Awaitable[None]]:
        """The handler of one of the buttons on a payment that needs a person."""

        async def decide(click: Click) -> None:
            bill_id = click.value
            await self.remember_person(click)
            services = self.oodaloo.services(click.business)
            # The same turn-taking as Pay: a decision and a click on Pay never cross.
            async with self.oodaloo.infra.locks(f"slack-pay:{click.business.id}:{bill_id}"):
                outcome = await resolve_payment(
                    services.bills, bill_id=bill_id, decision=decision, by=click.where.user_id
                )
            await self.answer(click, "bill", bill_id, outcome)

        return decide

    async def remind(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        outcome = await send_reminder(
            services.invoices, invoice_id=click.value, by=click.where.user_id
        )
        await self.answer(click, "invoice", click.value, outcome)

    async def answer(self, click: Click, kind: Kind, item_id: str, outcome: Outcome) -> None:
        """Every message showing the item follows what is true now; the person who clicked is
        told in words when nothing was done (refused, or someone got there first)."""
        await self.bot.channel.refresh_everywhere(click.business, kind, item_id, origin=click)
        if outcome.result in (Result.REFUSED, Result.ALREADY_DONE):
            await self.tell(click, outcome.message)

    async def tell(self, click: Click, text: str) -> None:
        """A word to the person who clicked: in the channel only they see, or on their Home tab or
        in the list modal when they clicked there (`text` is plain; it is escaped here)."""
        if click.modal is not None:
            await self.bot.channel.redraw_list(click.business, click.modal, click.client,
                                               notice=escape(text))
        elif click.in_home:
            await self.bot.home.publish(
                click.where.team_id, click.where.user_id, client=click.client,
                business=click.business, notice=escape(text),
            )
        else:
            await self.bot.tell(click.client, click.where, escape(text))

    async def remember_person(self, click: Click) -> None:
        """Remember the clicking person's email (Slack profile): their approvals by Slack and by
        email are then one person's."""
        await remember_slack_people(
            self.oodaloo.uows, self.oodaloo.clock, click.business.id, click.client,
            [click.where.user_id],
        )

    # --- lists ---------------------------------------------------------------------------------

    async def more_bills(self, click: Click) -> None:
        await self.show_list(click, "bill")

    async def more_invoices(self, click: Click) -> None:
        await self.show_list(click, "invoice")

    async def show_list(self, click: Click, kind: Kind) -> None:
        """A page of the whole list where the person is: "Next" turns the page of the list it is
        in (the modal, or the ephemeral list `/runway bills` showed); "Show all" and the summary's
        buttons open the list in a modal, or, when Slack cannot open one (the trigger lasts 3 s),
        answer with the list only the person sees, as `/runway bills` does."""
        offset = _offset(click.value)
        if click.modal is not None:
            await self.bot.channel.redraw_list(click.business, replace(click.modal, offset=offset),
                                               click.client)
            return
        message = await list_message(self.oodaloo, click.business, kind, offset)
        turning_page = click.block_id == kit.next_block_id(kind)
        if not turning_page and click.trigger_id is not None:
            view = list_view(message, kind=kind, offset=offset, channel_id=click.channel_id)
            if await open_list(click.client, click.trigger_id, view):
                return
        if click.in_home:
            raise ValueError("Slack could not open the list; click the button again.")
        await click.respond(
            response_type="ephemeral", replace_original=click.is_ephemeral, text=message.text,
            blocks=message.blocks,
        )

    # --- notices -------------------------------------------------------------------------------

    async def drift_resync(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        await self.set_notice(
            click,
            f":arrows_counterclockwise: Re-syncing with QuickBooks (asked by <@{click.where.user_id}>)…",
        )
        report = await services.mirror.sync(strategy=SyncStrategy.FORCED)
        await services.drift.check_bills()
        await self.set_notice(
            click,
            f":white_check_mark: Re-synced by <@{click.where.user_id}>: {report.changed} changes "
            "from QuickBooks.",
        )

    async def drift_dismiss(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        try:
            event_id = int(click.value)
        except ValueError:
            raise ValueError("That Dismiss button names no drift alert; nothing was changed.") from None
        notice = await services.drift.dismiss(event_id)
        await self.set_notice(
            click, f"~{escape(notice.sentence)}~\nDismissed by <@{click.where.user_id}>."
        )

    async def set_notice(self, click: Click, text: str) -> None:
        def change(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
            block_id = blocks[0].get("block_id", "notice") if blocks else "notice"
            return [
                {
                    "type": "section",
                    "block_id": block_id,
                    "text": {"type": "mrkdwn", "text": text, "verbatim": True},
                }
            ]

        poster = self.bot.poster
        if click.message_ts and not click.is_ephemeral:
            edited = await poster.edit(
                click.business.id, click.channel_id, click.message_ts, change, client=click.client
            )
            if edited is not None:
                return
        await click.respond(replace_original=True, text=text)

    async def home_settings(self, click: Click) -> None:
        """The Home tab's Settings button: the `/runway settings` modal."""
        if click.trigger_id is None:
            raise ValueError("Slack sent this click without its trigger; click Settings again.")

        async def answer(**message: Any) -> None:
            await self.tell(click, str(message.get("text") or ""))

        await self.bot.commands.open_settings(
            click.business, click.where, {"trigger_id": click.trigger_id}, click.client, answer
        )

    async def reconnect(self, click: Click) -> None:
        await self.bot.commands.connect_reply(click.business, click.where, click.client)


def _offset(value: str) -> int:
    return int(value) if value.isdigit() else 0


__all__ = ["Click", "Clicks", "item_and_amount"]
