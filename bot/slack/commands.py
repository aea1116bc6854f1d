"""`/runway` and its settings modal: what a person asks for in words.

Every subcommand answers only the person who asked, except `share`, which posts the summary to
the channel. Who may change settings or connect QuickBooks is the business's approvers.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import blocks as kit
from bot.slack.mrkdwn import escape
from bot.slack.people import remember_slack_people
from bot.slack.settings_modal import read_settings, settings_view
from bot.slack.tenancy import NotLinked, Where, business_here, where_from
from runway.bills import payment_bank_accounts
from runway.businesses import (
    ChannelTaken,
    NotAnApprover,
    NotConnected,
    channel_taken_message,
    payment_account_id,
)
from runway.models import Business, ConnectionStatus
from runway.shown_rows import NO_ROWS
from sync import QBO_PLATFORM, SyncStrategy

if TYPE_CHECKING:
    from bot.slack.app import SlackBot

logger = logging.getLogger(__name__)

#: `/runway sync` reads QuickBooks at most this often per business (the limits are shared).
MANUAL_SYNC_SPACING = timedelta(seconds=60)

SUBCOMMANDS = ("", "share", "bills", "invoices", "sync", "settings", "connect")

HELP = (
    "*`/runway`* your runway, cash, burn and financing (only you see it)\n"
    "*`/runway share`* post that summary to the channel\n"
    "*`/runway bills`* overdue bills and bills due in the next 7 days, with Approve and Pay\n"
    "*`/runway invoices`* overdue invoices, with Send reminder\n"
    "*`/runway sync`* read QuickBooks now\n"
    "*`/runway settings`* digest day and time, approvers, thresholds, channel, email\n"
    "*`/runway connect`* connect this channel's business to QuickBooks\n"
    "*`/runway help`* this list"
)


def subcommand(body: dict[str, Any]) -> str:
    words = str(body.get("text") or "").strip().split()
    return words[0].lower() if words else ""


class Commands:
    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot
        self.oodaloo = bot.oodaloo

    async def run(self, sub: str, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        where = where_from(body)
        if sub == "connect":
            await self.connect(where, body, client, respond)
            return
        business = await business_here(self.oodaloo.directory, where)
        if sub == "settings":
            await self.open_settings(business, where, body, client, respond)
        elif sub == "sync":
            await self.sync(business, respond)
        else:
            await self.show(sub, business, where, client, respond)

    async def show(
        self, sub: str, business: Business, where: Where, client: AsyncWebClient, respond: Any
    ) -> None:
        rows = {
            "bills": kit.bills_page_rows(0),
            "invoices": kit.invoices_page_rows(0),
        }.get(sub, NO_ROWS)
        ctx = await self.oodaloo.digest(business.id, rows=rows)
        if sub == "bills":
            message = kit.bills_message(
                ctx.view, business_name=business.name, payment_account=ctx.payment_account
            )
        elif sub == "invoices":
            message = kit.invoices_message(ctx.view, business_name=business.name)
        else:
            message = kit.summary_message(ctx.view, business_name=business.name)
        if sub == "share":
            await self.bot.poster.post(
                business.id, where.channel_id, text=message.text, blocks=message.blocks,
                kind="summary", client=client,
            )
            await respond(response_type="ephemeral", text="Shared the runway summary with the channel.")
        else:
            await respond(response_type="ephemeral", text=message.text, blocks=message.blocks)

    async def sync(self, business: Business, respond: Any) -> None:
        services = self.oodaloo.services(business)
        connection = await self.oodaloo.directory.connection(business.id)
        if connection.status != ConnectionStatus.CONNECTED.value:
            raise NotConnected(
                f"QuickBooks company {connection.realm_id} must be reconnected "
                f"({connection.status_reason or 'QuickBooks refused its tokens'})"
            )
        status = await self.oodaloo.infra.timing.status(business.id, QBO_PLATFORM)
        now = self.oodaloo.clock.now()
        if status is not None and status.last_success_at is not None:
            wait = status.last_success_at + MANUAL_SYNC_SPACING - now
            if wait > timedelta(0):
                ago = int((now - status.last_success_at).total_seconds())
                await respond(
                    response_type="ephemeral",
                    text=f"QuickBooks was read {ago} s ago; to stay within QuickBooks' limits, "
                    f"try again in {int(wait.total_seconds()) + 1} s.",
                )
                return
        await respond(response_type="ephemeral", text=":arrows_counterclockwise: Reading QuickBooks…")
        report = await services.mirror.sync(strategy=SyncStrategy.FORCED)
        await services.drift.check_bills()
        await respond(
            response_type="ephemeral",
            text=f":white_check_mark: Synced with QuickBooks: {report.changed} changes "
            f"({report.qbo_calls} calls).",
        )

    # --- settings ------------------------------------------------------------------------------

    async def open_settings(
        self, business: Business, where: Where, body: dict[str, Any], client: AsyncWebClient, respond: Any
    ) -> None:
        try:
            await self.oodaloo.directory.require_approver(business.id, where.user_id)
        except NotAnApprover:
            await respond(
                response_type="ephemeral",
                text="Only approvers can change Oodaloo's settings for this business.",
            )
            return
        banks, paying_from = await self.bank_accounts(business)
        await client.views_open(
            trigger_id=body["trigger_id"],
            view=settings_view(business, where.channel_id, banks, paying_from=paying_from),
        )

    async def bank_accounts(self, business: Business) -> tuple[list[tuple[str, str]], str | None]:
        """(QuickBooks id, name) of the business's bank accounts, and the one bills are paid from."""
        async with self.oodaloo.uows(business.id) as uow:
            accounts = await payment_bank_accounts(uow, business.home_currency)
        worth = {account.account_id: account.worth(business.home_currency) for account in accounts}
        return [(account.account_id, account.name) for account in accounts], payment_account_id(
            business, worth
        )

    async def settings_submitted(
        self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
        except (ValueError, TypeError):
            metadata = None
        if not isinstance(metadata, dict):
            await ack(response_action="errors", errors={"channel": (
                "Could not save: this form arrived without the channel it was opened in. "
                "Close it and run /runway settings in your Oodaloo channel again."
            )})  # fmt: skip
            return
        try:
            where = where_from({**body, "channel_id": metadata.get("channel_id")})
            business = await business_here(self.oodaloo.directory, where)
        except (NotLinked, ValueError) as exc:
            await ack(response_action="errors", errors={"channel": f"Could not save: {exc}"})
            return
        banks, paying_from = await self.bank_accounts(business)
        answer = read_settings(
            (view.get("state") or {}).get("values") or {},
            frozenset(account_id for account_id, _ in banks),
            business.locale,
        )
        if answer.errors:
            await ack(response_action="errors", errors=answer.errors)
            return
        directory = self.oodaloo.directory
        try:
            await directory.require_approver(business.id, where.user_id)
        except NotAnApprover:
            await ack(
                response_action="errors",
                errors={"approvers": "Only approvers can change these settings."},
            )
            return
        changes = dict(answer.changes)
        if changes.get("payment_bank_account_id") == paying_from:
            # The account payments already go from: a business without a choice keeps following
            # its largest bank account.
            changes.pop("payment_bank_account_id", None)
        channel = changes.get("slack_channel_id")
        if channel is not None:
            owner = await directory.by_slack_channel(where.team_id, str(channel))
            if owner is not None and owner.id != business.id:
                name = await self.channel_name(client, str(channel))
                await ack(response_action="errors", errors={"channel": channel_taken_message(name)})
                return
        # Saved before the modal closes: when it closes, the settings are in (a single quick write,
        # well inside Slack's three seconds), and a refusal can still be shown on its field.
        try:
            updated = await directory.update(business.id, by=where.user_id, **changes)
        except ChannelTaken as taken:  # another business took it a moment ago
            name = await self.channel_name(client, taken.channel_id)
            await ack(response_action="errors", errors={"channel": channel_taken_message(name)})
            return
        await ack()
        self.bot.spawn(self.bot.tell(client, where, ":white_check_mark: Settings saved."))
        # Each approver's Slack account and email address are one person from now on.
        self.bot.spawn(
            remember_slack_people(
                self.oodaloo.uows, self.oodaloo.clock, business.id, client,
                list(updated.approvers or []),
            )
        )

    async def channel_name(self, client: AsyncWebClient, channel_id: str) -> str:
        """`#finance` for a field error (plain text), else the channel's id."""
        try:
            info = await client.conversations_info(channel=channel_id)
            name = (info.get("channel") or {}).get("name")
        except SlackApiError:
            name = None
        return f"#{name}" if isinstance(name, str) and name else f"Channel {channel_id}"

    # --- connecting QuickBooks -------------------------------------------------------------------

    async def connect(
        self, where: Where, body: dict[str, Any], client: AsyncWebClient, respond: Any
    ) -> None:
        business = await self.oodaloo.directory.by_slack_channel(where.team_id, where.channel_id)
        if business is None:
            name = str(body.get("channel_name") or where.channel_id)
            tz = "UTC"
            try:
                info = await client.users_info(user=where.user_id)
                tz = str((info.get("user") or {}).get("tz") or "UTC")
            except SlackApiError:
                logger.info("could not read %s's timezone; using UTC", where.user_id)
            try:
                # Whoever links a channel first is the new business's first approver.
                business = await self.oodaloo.directory.create(
                    f"{where.team_id}-{where.channel_id}".lower(), name, tz,
                    slack_team_id=where.team_id, slack_channel_id=where.channel_id,
                    approvers=[where.user_id],
                )
            except ChannelTaken:  # someone else linked this channel a moment ago
                await respond(
                    response_type="ephemeral",
                    text=channel_taken_message(f"<#{where.channel_id}>")
                    .replace("choose another channel", "run `/runway connect` in another channel"),
                )
                return
        await self.connect_reply(business, where, client, respond)

    async def connect_reply(
        self, business: Business, where: Where, client: AsyncWebClient, respond: Any = None
    ) -> None:
        linker = self.bot.linker
        if linker is None:
            text = (
                "Connecting to QuickBooks needs Oodaloo's Intuit app: set QBO_CLIENT_ID, "
                "QBO_CLIENT_SECRET and QBO_REDIRECT_URI for `oodaloo serve`."
            )
        else:
            try:
                url = await linker(business, where.user_id)
            except NotAnApprover:
                text = f"Only approvers can connect {escape(business.name)} to QuickBooks."
                if respond is not None:
                    await respond(response_type="ephemeral", text=text)
                else:
                    await self.bot.tell(client, where, text)
                return
            text = (
                f"<{url}|Connect {escape(business.name)} to QuickBooks> (the link works once, for "
                "10 minutes)."
            )
        if respond is not None:
            await respond(response_type="ephemeral", text=text)
        else:
            await self.bot.tell(client, where, text)


__all__ = ["HELP", "SUBCOMMANDS", "Commands", "subcommand"]
