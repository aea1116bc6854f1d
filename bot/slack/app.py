"""The Slack side of Oodaloo: a Bolt AsyncApp serving the digest's buttons, `/runway`, the settings
modal and Slack's events, split by job: `clicks` (buttons), `commands` (`/runway` and the modal)
and `channel` (what is posted to the channel and drawn again after every change).

Every listener acknowledges first (Slack wants an answer within 3 s; ours answers in milliseconds)
and hands the work after the ack to `hand_off` (`handoff`: this process, or `oodaloo worker`
through Redis), which runs it with `perform`: the same handlers wherever it runs. The business always comes from the request's team and channel
(`tenancy`); a button's value only names an item (and the amount shown), looked up in that
business's books. Repeated deliveries of one request are handled once (`deliveries`). Whatever
cannot be done is told to the person in the same words from every listener (`replies.explain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.bootstrap import Oodaloo
from bot.models import (
    SLACK_BOTS_TABLE,
    SLACK_INSTALLATIONS_TABLE,
    SLACK_OAUTH_STATES_TABLE,
)
from bot.slack.channel import ChannelMessages, ChartUrl
from bot.slack.clicks import Click, Clicks
from bot.slack.commands import HELP, SUBCOMMANDS, Commands, subcommand
from bot.slack.deliveries import DeliveryLog, delivery_name
from bot.slack.handoff import HandOff, InProcess, SlackWork
from bot.slack.home import HomeTab
from bot.slack.installations import EncryptedInstallationStore
from bot.slack.list_modal import ListModal, list_modal_of, notice_view, update_list
from bot.slack.mrkdwn import escape
from bot.slack.poster import ChannelPoster, with_retry_handlers
from bot.slack.replies import explain
from bot.slack.settings_modal import CALLBACK_ID
from bot.slack.tenancy import Where, is_home, is_list_modal, where_from
from runway.models import Business

logger = logging.getLogger(__name__)

BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "users:read",
    # The email on a person's Slack profile: their approvals by Slack and by email are one person's.
    "users:read.email",
    "channels:read",
)
#: Pieces of after-ack work run at once per process (below the database pool's 15 connections).
WORK_AT_ONCE = 8
#: Slack gets its ack when the listener returns, that is once the work is handed off (in Redis, or
#: started here), never before: a web process that dies right after an ack has lost no click. And no
#: wait on top: by default Bolt runs the listener beside the request and looks for its ack every
#: 10 ms. Listeners only verify, ack and hand off (a bounded Redis round trip, `handoff.ADD_TIMEOUT`).
ACK_AFTER_HAND_OFF = True

Linker = Callable[[Business, str], Awaitable[str]]
Reply = Callable[[str], Awaitable[None]]


class SlackBot:
    """Bolt listeners over one `Oodaloo`. `app` is what the web layer serves at /slack/events."""

    def __init__(
        self,
        oodaloo: Oodaloo,
        *,
        client: AsyncWebClient | None = None,
        linker: Linker | None = None,
        chart_url: ChartUrl | None = None,
    ) -> None:
        """`chart_url(view)` is where Slack fetches a digest's chart (`bot.chart_links`); without
        it the digest has no image."""
        settings = oodaloo.settings
        self.oodaloo = oodaloo
        self.linker = linker
        self.chart_url = chart_url
        self.deliveries = DeliveryLog(oodaloo.infra.backend)
        self._tasks: set[asyncio.Task[None]] = set()
        self._work_slots = asyncio.Semaphore(WORK_AT_ONCE)
        signing_secret = settings.slack_signing_secret
        if not signing_secret:
            raise ValueError(
                "SLACK_SIGNING_SECRET is not set: Oodaloo verifies every request from Slack with it "
                "(Slack app settings -> Basic Information -> Signing Secret)."
            )
        self.installation_store: EncryptedInstallationStore | None = None
        if settings.slack_bot_token or client is not None:
            web = client or AsyncWebClient(
                token=settings.slack_bot_token, base_url=settings.slack_api_url
            )
            self.app = AsyncApp(
                client=with_retry_handlers(web),
                signing_secret=signing_secret,
                raise_error_for_unhandled_request=False,
                process_before_response=ACK_AFTER_HAND_OFF,
            )
        elif settings.slack_client_id and settings.slack_client_secret:
            engine = oodaloo.engine
            # Bot and user tokens are encrypted at rest with the QuickBooks tokens' cipher.
            self.installation_store = EncryptedInstallationStore(
                oodaloo.directory.cipher,
                client_id=settings.slack_client_id,
                engine=engine,
                bots_table_name=SLACK_BOTS_TABLE,
                installations_table_name=SLACK_INSTALLATIONS_TABLE,
            )
            self.app = AsyncApp(
                client=with_retry_handlers(AsyncWebClient(base_url=settings.slack_api_url)),
                signing_secret=signing_secret,
                process_before_response=ACK_AFTER_HAND_OFF,
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
        self.channel = ChannelMessages(oodaloo, self.poster, self.client_for, chart_url=chart_url)
        self.home = HomeTab(oodaloo, self.client_for, chart_url=chart_url)
        self.clicks = Clicks(self)
        self.commands = Commands(self)
        self._click_handlers = self.clicks.handlers()
        #: Where the work after an ack runs; the composition root may choose Redis (`hand_off_for`).
        self.hand_off: HandOff = InProcess(self)
        # What the rest of Oodaloo asks of Slack.
        self.post_digest = self.channel.post_digest
        self.post_drift_alerts = self.channel.post_drift_alerts
        self.refresh_everywhere = self.channel.refresh_everywhere
        oodaloo.resolution_listeners.append(self.channel.on_resolution)
        oodaloo.drift_listeners.append(self.channel.post_drift_alerts)
        oodaloo.synced_listeners.append(self.channel.redraw_recent)
        # Home tabs follow every change: clicks, email links and settled payments (through the
        # channel's redraws), syncs and drift.
        self.channel.followers.append(self.home.follow)
        oodaloo.synced_listeners.append(self.home.follow_id)
        oodaloo.drift_listeners.append(self.home.follow_id)
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
        for action_id in self._click_handlers:
            app.action(action_id)(self._click_listener(action_id))
        app.view(CALLBACK_ID)(self.commands.settings_submitted)
        app.event("app_home_opened")(self._home_opened)
        app.event("app_uninstalled")(self._ignore_event)
        app.event("tokens_revoked")(self._ignore_event)

    async def _once_per_delivery(
        self, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse:
        if _checked_at_hand_off(req.body) or await self.deliveries.first_arrival(
            delivery_name(req.raw_body, req.body)
        ):
            return await next()
        logger.info("ignored a repeated Slack delivery (retry %s)", req.headers.get("x-slack-retry-num"))
        return BoltResponse(status=200, body="")

    async def _ignore_event(self, event: dict[str, Any]) -> None:
        logger.info("Slack event %s", event.get("type"))

    async def _home_opened(self, body: dict[str, Any], event: dict[str, Any], client: AsyncWebClient) -> None:
        """Someone opened Oodaloo's Home tab: it is published for them after the ack."""
        if event.get("tab", "home") != "home":
            return  # the Messages tab
        lean = {"team_id": body.get("team_id"), "user": event.get("user")}
        # An event is checked for Slack's retries as it arrives (its event_id): none here.
        await self.hand_off.hand_off(
            SlackWork("home", "app_home_opened", lean), client, None, delivery=None
        )

    # --- replies ------------------------------------------------------------------------------

    async def tell(self, client: AsyncWebClient, where: Where, text: str) -> None:
        """An ephemeral note to the one person who acted."""
        try:
            await client.chat_postEphemeral(channel=where.channel_id, user=where.user_id, text=text)
        except SlackApiError as exc:
            logger.warning("could not tell %s in %s: %s", where.user_id, where.channel_id, exc)

    async def failed(self, error: Exception, where: Where, client: AsyncWebClient, reply: Reply) -> None:
        """Tell the person why their request was not done (one translator for every listener);
        anything not meant for a person is raised, and logged with its stack by `spawn`."""
        explained = explain(error)
        if explained is None:
            raise error
        await reply(explained.text)
        if explained.disconnected is not None:
            await self.channel.post_connection_trouble(where, explained.disconnected, client)

    # --- buttons ----------------------------------------------------------------------------

    def _click_listener(self, action_id: str) -> Callable[..., Awaitable[None]]:
        async def listener(
            ack: Any, request: AsyncBoltRequest, body: dict[str, Any], client: AsyncWebClient,
            respond: Any,
        ) -> None:
            await ack()
            await self.hand_off.hand_off(
                SlackWork("click", action_id, _lean(body)), client, respond,
                delivery=delivery_name(request.raw_body, body),
            )

        return listener

    async def perform(self, work: SlackWork, client: AsyncWebClient, respond: Any) -> None:
        """The work after an ack, with the client of its team and the respond of its response_url
        (in the web process Bolt's own, in a worker built again from the work)."""
        if work.kind == "home":
            await self.home.opened(work.body, client)
            return
        if work.kind == "command":
            if work.name not in SUBCOMMANDS:
                logger.warning("Slack work names no /runway subcommand: %r", work.name[:100])
                return
            await self._run_command(work.name, work.body, client, respond)
            return
        handler = self._click_handlers.get(work.name)
        if handler is None:
            logger.warning("Slack work names no button Oodaloo has: %r", work.name[:100])
            return
        await self._run_click(handler, work.body, client, respond)

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

        modal = list_modal_of(body)

        async def reply(text: str) -> None:
            if is_home(body):  # no channel in sight: the word goes on the person's Home tab
                await self.home.publish(where.team_id, where.user_id, client=client, notice=text)
            elif modal is not None:  # nor here: the word goes in the list modal
                await self._tell_in_list(where, modal, client, text)
            else:
                await self.tell(client, where, text)

        try:
            await handler(await self.clicks.read(body, client, respond))
        except Exception as error:  # noqa: BLE001 - translated for the person, or raised again
            await self.failed(error, where, client, reply)

    async def _tell_in_list(self, where: Where, modal: ListModal, client: AsyncWebClient, text: str) -> None:
        """A word (mrkdwn) above the list in the modal the click came from; when the list itself
        cannot be read again, the word alone."""
        business = await self.oodaloo.directory.by_slack_channel(where.team_id, where.channel_id)
        if business is not None:
            try:
                await self.channel.redraw_list(business, modal, client, notice=text)
                return
            except Exception as exc:  # noqa: BLE001 - the word is said without the list below
                logger.warning("could not draw the list modal again: %s", exc)
        only = notice_view(text, kind=modal.kind, offset=modal.offset, channel_id=where.channel_id)
        await update_list(client, modal, only)

    # --- /runway ------------------------------------------------------------------------------

    async def _runway_command(
        self, ack: Any, request: AsyncBoltRequest, body: dict[str, Any], client: AsyncWebClient,
        respond: Any,
    ) -> None:
        sub = subcommand(body)
        if sub == "help":
            await ack(text=HELP)
            return
        if sub not in SUBCOMMANDS:
            await ack(text=f"I don't know `/runway {escape(sub)}`. Here is what I can do:\n{HELP}")
            return
        await ack()
        await self.hand_off.hand_off(
            SlackWork("command", sub, body), client, respond,
            delivery=delivery_name(request.raw_body, body),
        )

    async def _run_command(self, sub: str, body: dict[str, Any], client: AsyncWebClient, respond: Any) -> None:
        try:
            where = where_from(body)
        except ValueError as exc:
            logger.warning("a /runway command without a valid team, channel or user: %s", exc)
            return

        async def reply(text: str) -> None:
            await respond(response_type="ephemeral", text=text)

        try:
            await self.commands.run(sub, body, client, respond)
        except Exception as error:  # noqa: BLE001 - translated for the person, or raised again
            await self.failed(error, where, client, reply)


def _checked_at_hand_off(body: dict[str, Any]) -> bool:
    """Clicks and slash commands: whether they were delivered before is checked where their work
    is handed off (with Redis, in the round trip that hands it off), not as they arrive."""
    return body.get("type") == "block_actions" or "command" in body


def _lean(body: dict[str, Any]) -> dict[str, Any]:
    """A click's body without the message it came from, but its ts: the message (a digest is tens
    of kilobytes) is drawn again from the books, so only its ts is read (`Clicks.read`). A Home
    tab's or the list modal's click keeps of its view only what names it and its business's
    channel (and the page the modal shows)."""
    if is_home(body) or is_list_modal(body):
        view = body["view"]
        kept = {key: view.get(key) for key in ("id", "type", "hash", "callback_id", "private_metadata")}
        body = {**body, "view": kept}
    message = body.get("message")
    if not isinstance(message, dict):
        return body
    return {**body, "message": {"ts": message.get("ts")}}
