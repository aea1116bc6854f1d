"""The Slack side of Oodaloo: a Bolt AsyncApp with the digest's buttons, `/runway` and the modal.

Every listener acknowledges first (Slack wants an answer within 3 s; ours answers in milliseconds)
and does the work in a background task after the ack, then updates the original message in place.
The business always comes from the request's team and channel (`tenancy`); a button's value only
names a bill or invoice, which is then looked up in that business's books. Repeated deliveries of
one request are handled once (`deliveries`), and a payment is made once however many times or by
however many people Pay is clicked (the action ledger below, plus the message's own status here).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import DigestContext, Oodaloo
from bot.models import (
    SLACK_BOTS_TABLE,
    SLACK_INSTALLATIONS_TABLE,
    SLACK_OAUTH_STATES_TABLE,
)
from bot.models import SlackMessage as StoredMessage
from bot.slack import blocks as kit
from bot.slack.blocks import Kind
from bot.slack.deliveries import DeliveryLog, delivery_name
from bot.slack.mrkdwn import escape
from bot.slack.poster import ChannelPoster, with_retry_handlers
from bot.slack.settings_modal import CALLBACK_ID, read_settings, settings_view
from bot.slack.tenancy import NotLinked, Where, business_here, is_approver, where_from
from runway.businesses import NotConnected
from runway.errors import RunwayError
from runway.lifecycle import BillStanding
from runway.models import Business, ConnectionStatus
from runway.use_cases import (
    Outcome,
    Result,
    approve_bill,
    pay_bill,
    send_reminder,
    snooze_bill,
)
from sync.actions import BILL_PAYMENT_CREATE
from sync.circuit import CircuitOpen
from sync.locks import LockTimeout
from sync.qbo.errors import QBOError, QBOTokenError
from sync.ratelimit import RateLimitError
from sync.reconcile import Resolution
from sync.timing import QBO_PLATFORM, SyncStrategy

logger = logging.getLogger(__name__)

BOT_SCOPES = ("commands", "chat:write", "chat:write.public", "users:read", "channels:read")
#: Pieces of after-ack work run at once per process (below the database pool's 15 connections).
WORK_AT_ONCE = 8
#: `/runway sync` reads QuickBooks at most this often per business (the limits are shared).
MANUAL_SYNC_SPACING = timedelta(seconds=60)

HELP = (
    "*`/runway`* your runway, cash and burn (only you see it)\n"
    "*`/runway share`* post that summary to the channel\n"
    "*`/runway bills`* bills due in the next 7 days, with Approve and Pay\n"
    "*`/runway invoices`* overdue invoices, with Send reminder\n"
    "*`/runway sync`* read QuickBooks now\n"
    "*`/runway settings`* digest day and time, approvers, thresholds, channel, email\n"
    "*`/runway connect`* connect this channel's business to QuickBooks\n"
    "*`/runway help`* this list"
)

Linker = Callable[[Business, str], Awaitable[str]]


def _bill_and_amount(value: str) -> tuple[str, Decimal | None]:
    bill_id, _, raw = value.partition("|")
    if not raw:
        return bill_id, None
    try:
        return bill_id, Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"the Pay button carries an unreadable amount {raw!r}") from None


def _quickbooks_busy(exc: Exception) -> str:
    logger.warning("QuickBooks could not be reached for a Slack request: %s", exc)
    return (
        f"QuickBooks is not answering right now ({escape(str(exc))}). Nothing was done twice: "
        "try again in a minute (figures shown meanwhile are the last ones read, with their time)."
    )


def next_digest_time(business: Business, now: datetime) -> datetime:
    """The business's next digest moment after `now` (snoozes last until then)."""
    zone = ZoneInfo(business.timezone)
    local = now.astimezone(zone)
    days_ahead = (business.digest_weekday - local.weekday()) % 7
    candidate = datetime.combine(
        local.date() + timedelta(days=days_ahead), business.digest_local_time, tzinfo=zone
    )
    if candidate <= now:
        candidate += timedelta(days=7)
    return candidate


@dataclass
class Click:
    where: Where
    business: Business
    value: str
    channel_id: str
    message_ts: str | None
    is_ephemeral: bool
    message_blocks: list[dict[str, Any]] | None
    client: AsyncWebClient
    respond: Any


class SlackBot:
    """Bolt listeners over one `Oodaloo`. `app` is what the web layer serves at /slack/events."""

    def __init__(
        self,
        oodaloo: Oodaloo,
        *,
        client: AsyncWebClient | None = None,
        linker: Linker | None = None,
    ) -> None:
        settings = oodaloo.settings
        self.oodaloo = oodaloo
        self.linker = linker
        self.deliveries = DeliveryLog(oodaloo.infra.backend)
        self._tasks: set[asyncio.Task[None]] = set()
        self._work_slots = asyncio.Semaphore(WORK_AT_ONCE)
        signing_secret = settings.slack_signing_secret
        if not signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET is not set: Oodaloo verifies every request from Slack with it "
                "(Slack app settings -> Basic Information -> Signing Secret)."
            )
        self.installation_store: AsyncSQLAlchemyInstallationStore | None = None
        if settings.slack_bot_token or client is not None:
            web = client or AsyncWebClient(
                token=settings.slack_bot_token, base_url=settings.slack_api_url
            )
            self.app = AsyncApp(
                client=with_retry_handlers(web),
                signing_secret=signing_secret,
                raise_error_for_unhandled_request=False,
            )
        elif settings.slack_client_id and settings.slack_client_secret:
            engine = oodaloo.engine
            self.installation_store = AsyncSQLAlchemyInstallationStore(
                client_id=settings.slack_client_id,
                engine=engine,
                bots_table_name=SLACK_BOTS_TABLE,
                installations_table_name=SLACK_INSTALLATIONS_TABLE,
            )
            self.app = AsyncApp(
                client=with_retry_handlers(AsyncWebClient(base_url=settings.slack_api_url)),
                signing_secret=signing_secret,
                installation_store=self.installation_store,
                oauth_settings=AsyncOAuthSettings(
                    client_id=settings.slack_client_id,
                    client_secret=settings.slack_client_secret,
                    scopes=list(BOT_SCOPES),
                    redirect_uri=f"{settings.public_url.rstrip('/')}/slack/oauth_redirect",
                    # Slack's install page sits beside its Web API (slack.com/oauth/v2/authorize).
                    authorization_url=settings.slack_api_url.rstrip("/").removesuffix("/api")
                    + "/oauth/v2/authorize",
                    state_store=AsyncSQLAlchemyOAuthStateStore(
                        expiration_seconds=600, engine=engine, table_name=SLACK_OAUTH_STATES_TABLE
                    ),
                ),
            )
        else:
            raise ValueError(
                "Slack is not configured: set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (install into many workspaces), with SLACK_SIGNING_SECRET."
            )
        self.poster = ChannelPoster(self.app.client, oodaloo.sessions, oodaloo.infra.locks, oodaloo.clock)
        oodaloo.resolution_listeners.append(self.on_resolution)
        oodaloo.drift_listeners.append(self.post_drift_alerts)
        self._register()

    # --- plumbing -------------------------------------------------------------------------------

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` after the ack; failures are logged with their stack, never lost silently.

        At most `WORK_AT_ONCE` pieces run together (the rest wait their turn): a burst of clicks is
        acknowledged at once, and the work behind it never takes more database connections than
        the pool has.
        """

        async def in_turn() -> None:
            async with self._work_slots:
                await work

        task = asyncio.get_running_loop().create_task(in_turn())
        self._tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("Slack work failed", exc_info=finished.exception())

        task.add_done_callback(done)

    async def idle(self) -> None:
        """Wait until the work started by earlier requests is done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def client_for(self, team_id: str | None) -> AsyncWebClient:
        """The Web API client with the bot token of `team_id`'s installation (or the one token)."""
        if self.installation_store is None or team_id is None:
            return self.app.client
        bot = await self.installation_store.async_find_bot(enterprise_id=None, team_id=team_id)
        if bot is None or not bot.bot_token:
            raise LookupError(f"Oodaloo is not installed in Slack workspace {team_id}")
        return with_retry_handlers(
            AsyncWebClient(token=bot.bot_token, base_url=self.oodaloo.settings.slack_api_url)
        )

    def _register(self) -> None:
        app = self.app
        app.middleware(self._once_per_delivery)
        app.command("/runway")(self._runway_command)
        for action_id, handler in (
            (kit.BILL_APPROVE, self._approve),
            (kit.BILL_PAY, self._pay),
            (kit.BILL_SNOOZE, self._snooze),
            (kit.INVOICE_REMIND, self._remind),
            (kit.SHOW_MORE_BILLS, self._more_bills),
            (kit.SHOW_MORE_INVOICES, self._more_invoices),
            (kit.DRIFT_RESYNC, self._drift_resync),
            (kit.DRIFT_DISMISS, self._drift_dismiss),
            (kit.QBO_RECONNECT, self._reconnect),
        ):
            app.action(action_id)(self._click_listener(handler))
        app.view(CALLBACK_ID)(self._settings_submitted)
        app.event("app_home_opened")(self._ignore_event)
        app.event("app_uninstalled")(self._ignore_event)
        app.event("tokens_revoked")(self._ignore_event)

    async def _once_per_delivery(
        self, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        if await self.deliveries.first_arrival(delivery_name(req.raw_body, req.body)):
            return await next()
        logger.info("ignored a repeated Slack delivery (retry %s)", req.headers.get("x-slack-retry-num"))
        return BoltResponse(status=200, body="")

    async def _ignore_event(self, event: dict[str, Any]) -> None:
        logger.info("Slack event %s", event.get("type"))

    # --- replies ------------------------------------------------------------------------------

    async def tell(self, client: AsyncWebClient, where: Where, text: str) -> None:
        """An ephemeral note to the one person who acted."""
        try:
            await client.chat_postEphemeral(channel=where.channel_id, user=where.user_id, text=text)
        except SlackApiError as exc:
            logger.warning("could not tell %s in %s: %s", where.user_id, where.channel_id, exc)

    async def _person(self, click: Click) -> None:
        """Remember the clicking person's email (Slack profile): their approvals by Slack and by
        email are then one person's."""
        try:
            info = await click.client.users_info(user=click.where.user_id)
        except SlackApiError as exc:
            logger.info("could not read %s's Slack profile: %s", click.where.user_id, exc)
            return
        user = info.get("user") or {}
        profile = user.get("profile") or {}
        email = profile.get("email")
        services = self.oodaloo.services(click.business)
        await services.bills.remember_person(
            click.where.user_id,
            email if isinstance(email, str) and email else None,
            str(user.get("real_name") or user.get("name") or "") or None,
        )

    # --- buttons ----------------------------------------------------------------------------

    def _click_listener(
        self, handler: Callable[[Click], Awaitable[None]]
    ) -> Callable[..., Awaitable[None]]:
        async def listener(ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
            await ack()
            self.spawn(self._run_click(handler, body, client, respond))

        return listener

    async def _run_click(
        self,
        handler: Callable[[Click], Awaitable[None]],
        body: dict[str, Any],
        client: AsyncWebClient,
        respond: Any,
    ) -> None:
        try:
            where = where_from(body)
        except ValueError as exc:
            logger.warning("a Slack click without its team, channel or user: %s", exc)
            return
        try:
            business = await business_here(self.oodaloo.directory, where)
            action = (body.get("actions") or [{}])[0]
            container = body.get("container") or {}
            message = body.get("message") or {}
            click = Click(
                where=where,
                business=business,
                value=str(action.get("value") or ""),
                channel_id=where.channel_id,
                message_ts=container.get("message_ts") or message.get("ts"),
                is_ephemeral=bool(container.get("is_ephemeral")),
                message_blocks=message.get("blocks") if isinstance(message.get("blocks"), list) else None,
                client=client,
                respond=respond,
            )
            await handler(click)
        except NotLinked as exc:
            await self.tell(client, where, str(exc))
        except QBOTokenError as exc:
            await self.tell(client, where, f"QuickBooks refused Oodaloo's connection: {escape(str(exc))}")
            await self.post_connection_trouble(where, str(exc), client)
        except (RunwayError, ValueError, LookupError) as exc:
            await self.tell(client, where, escape(str(exc)))
        except (QBOError, CircuitOpen, RateLimitError, LockTimeout) as exc:
            await self.tell(client, where, _quickbooks_busy(exc))

    async def _approve(self, click: Click) -> None:
        bill_id, seen = _bill_and_amount(click.value)
        await self._person(click)
        services = self.oodaloo.services(click.business)
        outcome = await approve_bill(
            services.bills, bill_id=bill_id, by=click.where.user_id, seen_amount=seen
        )
        await self._answer(click, "bill", bill_id, outcome)

    async def _pay(self, click: Click) -> None:
        bill_id, seen = _bill_and_amount(click.value)
        await self._person(click)
        services = self.oodaloo.services(click.business)
        # Clicks on one bill take turns (across processes): the second sees how the first ended.
        async with self.oodaloo.infra.locks(f"slack-pay:{click.business.id}:{bill_id}"):
            account = await self.oodaloo.payment_account(click.business)

            async def paying(_: BillStanding) -> None:
                await self.refresh_everywhere(click.business, "bill", bill_id, click=click)

            outcome = await pay_bill(
                services.bills,
                bill_id=bill_id,
                by=click.where.user_id,
                seen_amount=seen,
                bank_account_id=account.account_id if account else None,
                on_paying=paying,
            )
            await self._answer(click, "bill", bill_id, outcome)

    async def _snooze(self, click: Click) -> None:
        bill_id, _ = _bill_and_amount(click.value)
        services = self.oodaloo.services(click.business)
        until = next_digest_time(click.business, self.oodaloo.clock.now())
        outcome = await snooze_bill(
            services.bills, bill_id=bill_id, by=click.where.user_id, until=until
        )
        await self._answer(click, "bill", bill_id, outcome)

    async def _remind(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        outcome = await send_reminder(
            services.invoices, invoice_id=click.value, by=click.where.user_id
        )
        await self._answer(click, "invoice", click.value, outcome)

    async def _answer(self, click: Click, kind: Kind, item_id: str, outcome: Outcome) -> None:
        """Every message showing the item follows what is true now; the person who clicked is
        told in words when nothing was done (refused, or someone got there first)."""
        await self.refresh_everywhere(click.business, kind, item_id, click=click)
        if outcome.result in (Result.REFUSED, Result.ALREADY_DONE):
            await self.tell(click.client, click.where, escape(outcome.message))

    async def _more_bills(self, click: Click) -> None:
        ctx = await self.oodaloo.digest(click.business.id)
        offset = int(click.value or 0) if (click.value or "0").isdigit() else 0
        message = kit.bills_message(
            ctx.view, business_name=ctx.business.name, payment_account=ctx.payment_account, offset=offset
        )
        await click.respond(
            response_type="ephemeral", replace_original=click.is_ephemeral, text=message.text,
            blocks=message.blocks,
        )

    async def _more_invoices(self, click: Click) -> None:
        ctx = await self.oodaloo.digest(click.business.id)
        offset = int(click.value or 0) if (click.value or "0").isdigit() else 0
        message = kit.invoices_message(ctx.view, business_name=ctx.business.name, offset=offset)
        await click.respond(
            response_type="ephemeral", replace_original=click.is_ephemeral, text=message.text,
            blocks=message.blocks,
        )

    async def _drift_resync(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        await self._set_notice(click, f":arrows_counterclockwise: Re-syncing with QuickBooks (asked by <@{click.where.user_id}>)…")
        report = await services.mirror.sync(strategy=SyncStrategy.FORCED)
        await services.drift.check_bills()
        await self._set_notice(
            click, f":white_check_mark: Re-synced by <@{click.where.user_id}>: {report.changed} changes from QuickBooks."
        )

    async def _drift_dismiss(self, click: Click) -> None:
        services = self.oodaloo.services(click.business)
        try:
            event_id = int(click.value)
        except ValueError:
            raise ValueError("That Dismiss button names no drift alert; nothing was changed.") from None
        notice = await services.drift.dismiss(event_id)
        await self._set_notice(click, f"~{escape(notice.sentence)}~\nDismissed by <@{click.where.user_id}>.")

    async def _set_notice(self, click: Click, text: str) -> None:
        def change(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"type": "section", "block_id": blocks[0].get("block_id", "notice") if blocks else "notice",
                     "text": {"type": "mrkdwn", "text": text, "verbatim": True}}]

        if click.message_ts and not click.is_ephemeral:
            if await self.poster.edit(click.business.id, click.channel_id, click.message_ts, change, client=click.client) is not None:
                return
        await click.respond(replace_original=True, text=text)

    async def _reconnect(self, click: Click) -> None:
        await self._connect_reply(click.business, click.where, click.client)

    # --- /runway ------------------------------------------------------------------------------

    async def _runway_command(self, ack: Any, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        words = str(body.get("text") or "").strip().split()
        sub = words[0].lower() if words else ""
        if sub == "help":
            await ack(text=HELP)
            return
        if sub not in ("", "share", "bills", "invoices", "sync", "settings", "connect"):
            await ack(text=f"I don't know `/runway {escape(sub)}`. Here is what I can do:\n{HELP}")
            return
        await ack()
        self.spawn(self._run_command(sub, body, client, respond))

    async def _run_command(self, sub: str, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        where = where_from(body)
        try:
            if sub == "connect":
                await self._connect_command(where, body, client, respond)
                return
            business = await business_here(self.oodaloo.directory, where)
            if sub == "settings":
                await self._open_settings(business, where, body, client, respond)
            elif sub == "sync":
                await self._sync_command(business, respond)
            else:
                ctx = await self.oodaloo.digest(business.id)
                if sub == "bills":
                    message = kit.bills_message(ctx.view, business_name=business.name, payment_account=ctx.payment_account)
                elif sub == "invoices":
                    message = kit.invoices_message(ctx.view, business_name=business.name)
                else:
                    message = kit.summary_message(ctx.view, business_name=business.name)
                if sub == "share":
                    await self.poster.post(business.id, where.channel_id, text=message.text, blocks=message.blocks, kind="summary", client=client)
                    await respond(response_type="ephemeral", text="Shared the runway summary with the channel.")
                else:
                    await respond(response_type="ephemeral", text=message.text, blocks=message.blocks)
        except NotLinked as exc:
            await respond(response_type="ephemeral", text=str(exc))
        except QBOTokenError as exc:
            await respond(
                response_type="ephemeral",
                text=f"QuickBooks refused Oodaloo's connection: {escape(str(exc))}. Run `/runway connect` to reconnect.",
            )
            await self.post_connection_trouble(where, str(exc), client)
        except (RunwayError, ValueError, LookupError) as exc:
            await respond(response_type="ephemeral", text=f"Could not do that: {escape(str(exc))}")
        except (QBOError, CircuitOpen, RateLimitError, LockTimeout) as exc:
            await respond(response_type="ephemeral", text=_quickbooks_busy(exc))

    async def _sync_command(self, business: Business, respond: Any) -> None:
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
                    text=f"QuickBooks was read {ago} s ago; to stay within QuickBooks' limits, try again in {int(wait.total_seconds()) + 1} s.",
                )
                return
        await respond(response_type="ephemeral", text=":arrows_counterclockwise: Reading QuickBooks…")
        report = await services.mirror.sync(strategy=SyncStrategy.FORCED)
        await services.drift.check_bills()
        await respond(
            response_type="ephemeral",
            text=f":white_check_mark: Synced with QuickBooks: {report.changed} changes ({report.qbo_calls} calls).",
        )

    async def _open_settings(self, business: Business, where: Where, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        if business.approvers and not is_approver(business, where.user_id):
            await respond(response_type="ephemeral", text="Only approvers can change Oodaloo's settings for this business.")
            return
        banks = await self._bank_accounts(business.id)
        await client.views_open(trigger_id=body["trigger_id"], view=settings_view(business, where.channel_id, banks))

    async def _bank_accounts(self, business_id: str) -> list[tuple[str, str]]:
        async with self.oodaloo.uows(business_id) as uow:
            return [(account.qbo_id, account.name) for account in await uow.accounts.bank_accounts()]

    async def _settings_submitted(self, ack: Any, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient) -> None:
        try:
            metadata = json.loads(view.get("private_metadata") or "{}")
            where = where_from({**body, "channel_id": metadata.get("channel_id")})
            business = await business_here(self.oodaloo.directory, where)
        except (NotLinked, ValueError, AttributeError) as exc:
            await ack(response_action="errors", errors={"channel": f"Could not save: {exc}"})
            return
        banks = frozenset(account_id for account_id, _ in await self._bank_accounts(business.id))
        answer = read_settings((view.get("state") or {}).get("values") or {}, banks)
        if answer.errors:
            await ack(response_action="errors", errors=answer.errors)
            return
        if business.approvers and not is_approver(business, where.user_id):
            await ack(response_action="errors", errors={"approvers": "Only approvers can change these settings."})
            return
        await ack()
        await self.oodaloo.directory.update(business.id, **answer.changes)
        self.spawn(self.tell(client, where, ":white_check_mark: Settings saved."))

    async def _connect_command(self, where: Where, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        business = await self.oodaloo.directory.by_slack_channel(where.team_id, where.channel_id)
        if business is None:
            name = str(body.get("channel_name") or where.channel_id)
            tz = "UTC"
            try:
                info = await client.users_info(user=where.user_id)
                tz = str((info.get("user") or {}).get("tz") or "UTC")
            except SlackApiError:
                logger.info("could not read %s's timezone; using UTC", where.user_id)
            business = await self.oodaloo.directory.create(
                f"{where.team_id}-{where.channel_id}".lower(), name, tz,
                slack_team_id=where.team_id, slack_channel_id=where.channel_id,
                approvers=[where.user_id],
            )
        elif business.approvers and not is_approver(business, where.user_id):
            await respond(
                response_type="ephemeral",
                text=f"Only approvers can connect {escape(business.name)} to QuickBooks.",
            )
            return
        await self._connect_reply(business, where, client, respond)

    async def _connect_reply(self, business: Business, where: Where, client: AsyncWebClient, respond: Any = None) -> None:
        if self.linker is None:
            text = ("Connecting to QuickBooks needs Oodaloo's Intuit app: set QBO_CLIENT_ID, QBO_CLIENT_SECRET "
                    "and QBO_REDIRECT_URI for `oodaloo serve`.")
        else:
            url = await self.linker(business, where.user_id)
            text = f"<{url}|Connect {escape(business.name)} to QuickBooks> (the link works once, for 10 minutes)."
        if respond is not None:
            await respond(response_type="ephemeral", text=text)
        else:
            await self.tell(client, where, text)

    # --- posting to the channel ------------------------------------------------------------------

    async def post_digest(self, ctx: DigestContext, *, client: AsyncWebClient | None = None) -> tuple[str, str]:
        business = ctx.business
        if not business.slack_channel_id:
            raise ValueError(f"{business.name} has no digest channel; set one with /runway settings")
        message = kit.digest_message(ctx.view, business_name=business.name, payment_account=ctx.payment_account)
        web = client or await self.client_for(business.slack_team_id)
        posted = await self.poster.post(business.id, business.slack_channel_id, text=message.text, blocks=message.blocks, kind="digest", client=web)
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
                buttons=(("Re-sync", kit.DRIFT_RESYNC, str(notice.id), "primary"), ("Dismiss", kit.DRIFT_DISMISS, str(notice.id), None)),
            )
            message.blocks[0]["block_id"] = block_id
            await self.poster.post(business_id, business.slack_channel_id, text=message.text, blocks=message.blocks, kind="drift",
                                   client=await self.client_for(business.slack_team_id))

    async def post_connection_trouble(self, where: Where, reason: str, client: AsyncWebClient) -> None:
        business = await self.oodaloo.directory.by_slack_channel(where.team_id, where.channel_id)
        if business is None or not business.slack_channel_id:
            return
        block_id = "qbo-disconnected"
        recent = await self.poster.messages_with_block(business.id, block_id, limit=1)
        if recent and recent[0].created_at > self.oodaloo.clock.now() - timedelta(hours=6):
            return
        message = kit.notice_message(
            f":electric_plug: *QuickBooks is disconnected* for {escape(business.name)}: {escape(reason)}. "
            "Digests and payments wait until it is reconnected.",
            buttons=(("Reconnect", kit.QBO_RECONNECT, business.id, "primary"),),
        )
        message.blocks[0]["block_id"] = block_id
        await self.poster.post(business.id, business.slack_channel_id, text=message.text, blocks=message.blocks, kind="connection", client=client)

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
        click: Click | None = None,
        client: AsyncWebClient | None = None,
    ) -> None:
        """Draw again, from the books as they stand, every recent message of the business that
        shows the item (digests and shared summaries: their cards, counts and headline), and the
        list `click` came from when Slack keeps no copy of it (an ephemeral list)."""
        web = (click.client if click else None) or client or await self.client_for(business.slack_team_id)
        shown = await self.poster.messages_with_block(business.id, f"{kind}:{item_id}")
        for row in shown:
            await self.poster.redraw(business.id, row.channel_id, row.ts, self._redraw, client=web)
        if click is not None and (click.is_ephemeral or not click.message_ts):
            ctx = await self.oodaloo.digest(business.id, shown_bill_ids=[item_id] if kind == "bill" else ())
            if kind == "bill":
                listed = kit.bills_message(
                    ctx.view, business_name=business.name, payment_account=ctx.payment_account
                )
            else:
                listed = kit.invoices_message(ctx.view, business_name=business.name)
            await click.respond(replace_original=True, blocks=listed.blocks, text=listed.text)

    async def _redraw(self, row: StoredMessage) -> kit.SlackMessage | None:
        """A stored message drawn again from the books as they stand (None: leave it as it is)."""
        if row.kind not in ("digest", "summary"):
            return None
        shown = kit.shown_ids(row.blocks, "bill")
        ctx = await self.oodaloo.digest(row.business_id, shown_bill_ids=shown)
        name = ctx.business.name
        if row.kind == "summary":
            return kit.summary_message(ctx.view, business_name=name)
        return kit.digest_message(ctx.view, business_name=name, payment_account=ctx.payment_account)
