"""`oodaloo serve`: the HTTP app (Slack, QuickBooks connect and webhooks, email links, health).

With SLACK_APP_TOKEN set, Slack's requests also arrive over Socket Mode (development without a
public URL), into the same Bolt app and listeners as the HTTP route; the HTTP routes keep serving
QuickBooks, email links and /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Iterator

import uvicorn
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_sdk.errors import SlackApiError

from bot.bootstrap import Oodaloo
from bot.settings import Settings, SettingsError
from bot.slack.app import SlackBot
from bot.slack.handoff import hand_off_for
from bot.web import create_web_app

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by this process's own signal handlers: SIGTERM ends `oodaloo serve`
    with exit code 0 after in-flight requests and the work they started are finished."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


def settle_heap() -> None:
    """Collects what starting left behind, then leaves every object alive now (modules, the app,
    its templates and pools) out of the collector's full passes: each pass walked them all, and in
    a burst of clicks (each body parsed into thousands of objects) one came every second or so and
    held every request in flight for 80-100 ms."""
    gc.collect()
    gc.freeze()


async def open_socket_mode(slack: SlackBot, app_token: str) -> AsyncSocketModeHandler:
    """Slack's requests over Socket Mode, connected before this returns; `close_async()` ends it.

    The token is tried once first: slack_sdk's client retries a refused token forever, so a wrong
    SLACK_APP_TOKEN would otherwise only show as a log line every few seconds.
    """
    try:
        await slack.app.client.apps_connections_open(app_token=app_token)
    except SlackApiError as refused:
        raise SettingsError(
            f"Slack refused SLACK_APP_TOKEN ({refused.response.get('error')}): it takes the app-level "
            "token (xapp-...) with the connections:write scope (Slack app settings -> Basic "
            "Information -> App-Level Tokens), and Socket Mode turned on (Settings -> Socket Mode)."
        ) from None
    handler = AsyncSocketModeHandler(slack.app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    return handler


async def serve(settings: Settings, *, host: str, port: int) -> None:
    from bot.wiring import wire_routes

    oodaloo = await Oodaloo.start(settings, migrate=settings.migrates_on_start())
    try:
        wired = await wire_routes(oodaloo)
        try:
            slack = SlackBot(oodaloo, linker=wired.linker, chart_url=wired.chart_url())
        except ValueError as missing:  # Slack's token or secret is not configured
            raise SettingsError(str(missing)) from None
        # With REDIS_URL the work after each ack goes to `oodaloo worker`; without, it stays here.
        slack.hand_off = hand_off_for(slack)
        app = create_web_app(oodaloo, slack, extra_routes=wired.routes(slack))
        server = _Server(
            uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower())
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
        socket_mode = None
        if settings.slack_app_token:
            socket_mode = await open_socket_mode(slack, settings.slack_app_token)
            logger.info("Slack Socket Mode is on (SLACK_APP_TOKEN is set)")
        logger.info("Oodaloo serves on http://%s:%d (Slack request URL: %s/slack/events)",
                    host, port, settings.public_url.rstrip("/"))
        settle_heap()
        try:
            await server.serve()
        finally:
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
        await slack.idle()
    finally:
        await oodaloo.aclose()
