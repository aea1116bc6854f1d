"""The local Slack as an app (`create_app`) and as a real HTTP server in a thread (`start_in_thread`).

Bolt's AsyncApp talks to Slack through aiohttp and answers through response URLs, so tests serve the
sandbox over real loopback HTTP; `create_app` alone suits in-process httpx clients and the demo page.
The same server takes the app's Socket Mode websocket at `/link/` (socket_mode.py; uvicorn serves
websockets when the `websockets` package is installed).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.oauth import oauth_routes
from slack_sandbox.ratelimit import ChannelRateLimit
from slack_sandbox.responses import response_url_routes
from slack_sandbox.web_api import web_api_routes
from slack_sandbox.workspace import Workspace


class SlackSandbox:
    """One workspace and the ASGI app serving it: `/api/{method}`, `/response/{token}`, OAuth, state,
    and the Socket Mode websocket `/link/`.

    Served some other way than `start_in_thread` (mounted in the demo's app, say), set
    `workspace.base_url` to where it is reachable: the response URLs handed to the bot are built on it.
    """

    def __init__(self, config: SlackSandboxConfig) -> None:
        self.config = config
        self.workspace = Workspace(config)
        self.rate_limit = ChannelRateLimit(
            config.clock,
            burst=config.rate_limit_burst,
            per_second=config.rate_limit_per_second,
            workspace_burst=config.workspace_rate_limit_burst,
            workspace_per_minute=config.workspace_rate_limit_per_minute,
            enabled=config.rate_limit,
        )
        self.app = Starlette(
            routes=[
                *web_api_routes(self.workspace, self.rate_limit),
                *response_url_routes(self.workspace),
                *oauth_routes(self.workspace),
                Route("/_sandbox/state", self._state, methods=["GET"]),
                WebSocketRoute("/link/", self.workspace.socket_mode.endpoint),
            ]
        )

    @property
    def base_url(self) -> str:
        return self.workspace.base_url

    @property
    def api_url(self) -> str:
        """What `AsyncWebClient(base_url=...)` takes."""
        return self.workspace.base_url + "/api/"

    async def _state(self, request: Request) -> JSONResponse:
        """Every channel's messages and who sees which ephemeral message: what a Slack-like page draws."""
        return JSONResponse(workspace_state(self.workspace))


def workspace_state(workspace: Workspace) -> dict[str, Any]:
    return {
        "version": workspace.version,
        "team": {
            "id": workspace.team_id,
            "name": workspace.team_name,
            "domain": workspace.team_domain,
        },
        "users": [
            {"id": u.id, "name": u.name, "real_name": u.real_name} for u in workspace.users()
        ],
        "channels": [
            {
                "id": spec.id,
                "name": spec.name,
                "messages": [
                    {
                        **m.to_slack(workspace.team_id),
                        "channel": m.channel,
                        "edited_count": m.edited,
                    }
                    for m in workspace.messages(spec.id)
                ],
            }
            for spec in workspace.channels()
        ],
        "ephemerals": [
            {"channel": e.channel, "user": e.user, "ts": e.ts, "text": e.text, "blocks": e.blocks}
            for e in workspace.ephemerals()
        ],
        "views": [
            {**v.to_slack(workspace.team_id, workspace.app_id, workspace.bot_id), "user": v.user}
            for v in workspace.open_views()
        ],
    }


def create_app(config: SlackSandboxConfig | None = None) -> SlackSandbox:
    return SlackSandbox(config or SlackSandboxConfig())


class _Server(uvicorn.Server):
    async def main_loop(self) -> None:
        """uvicorn's loop, checking for shutdown every 10 ms instead of 100 ms.

        Tests start and stop a sandbox each; uvicorn's own pace made stopping most of their time.
        """
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864_000
            await asyncio.sleep(0.01)
            should_exit = await self.on_tick(counter)


class RunningSlack:
    """A sandbox served by uvicorn on a loopback port until `.stop()` (or the end of a `with`)."""

    def __init__(
        self, sandbox: SlackSandbox, server: uvicorn.Server, thread: threading.Thread
    ) -> None:
        self.sandbox = sandbox
        self.workspace = sandbox.workspace
        self.base_url = sandbox.base_url
        self.api_url = sandbox.api_url
        self._server = server
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> RunningSlack:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_in_thread(
    config: SlackSandboxConfig | None = None, *, port: int = 0, startup_timeout: float = 30.0
) -> RunningSlack:
    """Serves a new sandbox on `config.host` and `port` (0: a free port); response URLs point at it."""
    sandbox = create_app(config)
    host = sandbox.config.host
    sock = socket.socket(
        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))  # bound before serving, so the port is known and "in use" fails here
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    sandbox.workspace.base_url = f"http://{shown}:{bound_port}"

    server = _Server(
        uvicorn.Config(
            sandbox.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            http="h11",
            timeout_graceful_shutdown=2,
        )
    )
    failures: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread below
            failures.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"slack-sandbox-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        server.should_exit = True
        raise RuntimeError(f"the Slack sandbox did not start on {host}:{bound_port}") from (
            failures[0] if failures else None
        )
    return RunningSlack(sandbox, server, thread)
