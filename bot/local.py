"""The whole product on one machine: Oodaloo's web app, a local Slack and the QBO sandbox.

`local_stack(database_url)` links a business to the #finance channel of the local Slack workspace
and connects it to the sandbox's seeded company (its mirror synced), then serves Oodaloo's web app
with uvicorn on a loopback port in the caller's event loop. People act through `SlackUserAgent`,
which signs every request as Slack does; the bot answers through the local Slack's Web API. The
demo, the benchmarks and the end-to-end tests all run on it, so they exercise the production path.
With `slack_app_token` in `settings` (and Socket Mode on in the local Slack's config), Oodaloo also
takes Slack's requests over Socket Mode, connected as `oodaloo serve` connects it.
Only development tools import this module: it loads both sandboxes.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Oodaloo
from bot.email.links import LinkSigner
from bot.qbo_link import CALLBACK_PATH, QBOAppConfig, QBOLinker
from bot.serve import open_socket_mode
from bot.settings import load_settings
from bot.slack.app import SlackBot
from bot.web import create_web_app
from bot.wiring import Wired
from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.oauth import AUTHORIZE_PATH, TOKEN_PATH
from qbo_sandbox.seed_names import COMPANY_NAME
from runway.crypto import generate_key
from runway.mirror import company_country
from runway.models import Business
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack, start_in_thread
from slack_sandbox.user import SlackUserAgent
from slack_sandbox.workspace import Ephemeral, Message, Workspace
from sync import MemoryBackend, OAuthTokens, SyncSettings

T = TypeVar("T")

BUSINESS_ID = "biz-larkspur"
OWNER = "U0OWNER01"  # an approver
BOOKKEEPER = "U0BOOKS02"  # an approver
STAFF = "U0STAFF03"  # not an approver
CHANNEL = "C0FINANCE"
#: Where Oodaloo's web app shows the QuickBooks sandbox's consent page (`qbo_consent_page`): the
#: sandbox itself runs in-process, at an address no browser reaches.
QBO_CONSENT_PATH = "/_qbo_sandbox" + AUTHORIZE_PATH
#: Test waits in milliseconds instead of seconds.
FAST = SyncSettings().scaled(0.01)


@dataclass
class LocalStack:
    oodaloo: Oodaloo
    bot: SlackBot
    slack: RunningSlack
    agent: SlackUserAgent
    sandbox: Sandbox
    url: str

    @property
    def workspace(self) -> Workspace:
        return self.slack.workspace

    async def business(self) -> Business:
        return await self.oodaloo.directory.get(BUSINESS_ID)

    async def post_digest(self) -> Message:
        ctx = await self.oodaloo.digest(BUSINESS_ID)
        channel, ts = await self.bot.post_digest(ctx)
        found = self.workspace.message(channel, ts)
        assert found is not None
        return found

    def message(self, ts: str) -> Message:
        found = self.workspace.message(CHANNEL, ts)
        assert found is not None, f"message {ts} is gone"
        return found

    async def until(self, predicate: Callable[[], T | None], timeout: float = 10.0) -> T:  # noqa: ASYNC109
        """Wait for the bot's work after its ack to show in the local Slack."""
        return await self.workspace.wait_for(predicate, timeout=timeout)

    def ephemerals(self, user: str) -> list[Ephemeral]:
        return list(self.workspace.ephemerals(user=user, channel=CHANNEL))

    async def ephemeral_for(self, user: str, contains: str, timeout: float = 10.0) -> Ephemeral:  # noqa: ASYNC109
        def found() -> Ephemeral | None:
            for item in reversed(self.ephemerals(user)):
                shown = item.text + " " + str(item.blocks)
                if contains in shown:
                    return item
            return None

        return await self.until(found, timeout)

    def bill_payments(self) -> list[dict[str, Any]]:
        return list(self.sandbox.realm(self.sandbox.realm_id).iter("BillPayment"))


def consent_route(sandbox: Sandbox, http: httpx.AsyncClient) -> Route:
    """The sandbox's consent page (it approves at once and redirects back to Oodaloo's callback
    with a code, as Intuit's does after the owner signs in) on Oodaloo's own address, passed
    through to the in-process sandbox."""

    async def consent(request: Request) -> Response:
        answer = await http.get(
            f"{sandbox.base_url}{AUTHORIZE_PATH}", params=list(request.query_params.multi_items()),
            follow_redirects=False,
        )
        kept = {k: v for k, v in answer.headers.items() if k in ("location", "content-type")}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    return Route(QBO_CONSENT_PATH, consent, methods=["GET"])


def free_socket(port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@asynccontextmanager
async def serve_in_loop(app: Any, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """`app` served by uvicorn on `sock` (default: a free loopback port), in this event loop;
    yields its base URL."""
    sock = sock or free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


@asynccontextmanager
async def local_stack(
    database_url: str,
    *,
    sandbox_config: SandboxConfig | None = None,
    slack_config: SlackSandboxConfig | None = None,
    migrate: bool = False,
    sync_settings: SyncSettings | None = None,
    extra_routes: Callable[[LocalStack], Sequence[BaseRoute]] | None = None,
    port: int = 0,
    business_name: str = COMPANY_NAME,
    email_recipients: Sequence[str] = (),
    settings: Mapping[str, Any] | None = None,
    qbo_consent_page: bool = False,
) -> AsyncIterator[LocalStack]:
    """`sync_settings` default to the production waits scaled down a hundred times (tests); the demo
    passes its own. `extra_routes(stack)` adds routes to the web app (the demo's page, email links);
    `settings` override Oodaloo's settings (SMTP_URL, ...). Email recipients are approvers too, so
    the email digest's links act. `qbo_consent_page`: the sandbox's OAuth consent page is served
    by the web app too (`QBO_CONSENT_PATH`), so `/runway connect` works from a browser."""
    sandbox = create_app(sandbox_config or SandboxConfig(seed=DEFAULT_SEED))
    running = start_in_thread(slack_config or SlackSandboxConfig())
    config = running.sandbox.config
    sock = free_socket(port)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    oodaloo_settings = load_settings(
        database_url=database_url,
        slack_bot_token=config.bot_token,
        slack_signing_secret=config.signing_secret,
        slack_api_url=running.api_url,
        token_encryption_key=generate_key(),
        email_link_key=secrets.token_urlsafe(32),
        qbo_base_url=sandbox.base_url,
        qbo_client_id=sandbox.client_id,
        qbo_client_secret=sandbox.client_secret,
        qbo_webhook_verifier_token=sandbox.verifier_token,
        public_url=url,
        **dict(settings or {}),
    )
    oodaloo = await Oodaloo.start(
        oodaloo_settings,
        qbo_transport=httpx.ASGITransport(app=sandbox.app),
        backend=MemoryBackend(),
        sync_settings=replace(sync_settings or FAST, qbo_base_url=sandbox.base_url),
        qbo_token_url=f"{sandbox.base_url}{TOKEN_PATH}",
        migrate=migrate,
    )
    try:
        now = datetime.now(UTC)
        await oodaloo.directory.create(
            BUSINESS_ID,
            business_name,
            "America/Los_Angeles",
            slack_team_id=config.team_id,
            slack_channel_id=CHANNEL,
            approvers=[OWNER, BOOKKEEPER, *email_recipients],
            email_recipients=list(email_recipients),
        )
        await oodaloo.directory.connect(
            BUSINESS_ID,
            sandbox.realm_id,
            OAuthTokens(
                access_token=sandbox.access_token,
                refresh_token=sandbox.refresh_token,
                expires_at=now + timedelta(hours=1),
                refresh_expires_at=now + timedelta(days=100),
            ),
            # As connecting through QuickBooks' sign-in does: the company's country, its locale.
            country=company_country(sandbox.realm().get("CompanyInfo", "1") or {}),
        )
        services = await oodaloo.services_for(BUSINESS_ID)
        await services.mirror.sync()
        # QuickBooks connect through the sandbox's OAuth; webhooks and email links as in production.
        wired = Wired(oodaloo, signer=LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=url))
        wired.qbo_linker = QBOLinker(
            QBOAppConfig(
                client_id=sandbox.client_id,
                client_secret=sandbox.client_secret,
                redirect_uri=f"{url}{CALLBACK_PATH}",
                public_url=url,
                authorize_url=f"{url}{QBO_CONSENT_PATH}"
                if qbo_consent_page
                else f"{sandbox.base_url}{AUTHORIZE_PATH}",
                token_url=f"{sandbox.base_url}{TOKEN_PATH}",
                api_base_url=sandbox.base_url,
            ),
            oodaloo.directory,
            oodaloo.engine,
            http=oodaloo.http,
        )
        bot = SlackBot(oodaloo, linker=wired.linker, chart_url=wired.chart_url())
        agent = SlackUserAgent(running.workspace, f"{url}/slack/events")
        stack = LocalStack(oodaloo, bot, running, agent, sandbox, url)
        routes = [*wired.routes(bot), *(extra_routes(stack) if extra_routes else ())]
        if qbo_consent_page:
            routes.append(consent_route(sandbox, oodaloo.http))
        app = create_web_app(oodaloo, bot, extra_routes=routes)
        try:
            async with serve_in_loop(app, sock):
                socket_mode = None
                if oodaloo_settings.slack_app_token:
                    socket_mode = await open_socket_mode(bot, oodaloo_settings.slack_app_token)
                try:
                    yield stack
                    await bot.idle()
                finally:
                    if socket_mode is not None:
                        await socket_mode.close_async()  # type: ignore[no-untyped-call]
        finally:
            await bot.idle()
            await agent.aclose()
    finally:
        await oodaloo.aclose()
        await sandbox.aclose()
        running.stop()
