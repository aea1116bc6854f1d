"""`oodaloo serve`: the HTTP app (Slack, QuickBooks connect and webhooks, email links, health).

With SLACK_APP_TOKEN set, Slack's requests also arrive over Socket Mode (development without a
public URL); the HTTP routes keep serving QuickBooks, email links and /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn

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


async def serve(settings: Settings, *, host: str, port: int) -> None:
    from bot.wiring import wire_routes

    oodaloo = await Oodaloo.start(settings, migrate=settings.migrates_on_start())
    try:
        wired = await wire_routes(oodaloo)
        try:
            slack = SlackBot(oodaloo, linker=wired.linker)
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
        tasks = [asyncio.create_task(server.serve(), name="http")]
        if settings.slack_app_token:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            socket_mode = AsyncSocketModeHandler(slack.app, settings.slack_app_token)
            listening = socket_mode.start_async()  # type: ignore[no-untyped-call]
            tasks.append(asyncio.create_task(listening, name="socket-mode"))
            logger.info("Slack Socket Mode is on (SLACK_APP_TOKEN is set)")
        logger.info("Oodaloo serves on http://%s:%d (Slack request URL: %s/slack/events)",
                    host, port, settings.public_url.rstrip("/"))
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in done:
            task.result()
        await slack.idle()
    finally:
        await oodaloo.aclose()
