"""The processes of the Slack benches (`bench/slack_ack.py`, `bench/runway_answer.py`), and the load
generator's side of them.

Each runs on its own, as in production: the QBO sandbox (`oodaloo sandbox --json`), the local Slack
(`python bench/slack_processes.py slack`), a bare Bolt app (`python bench/slack_processes.py
bare-bolt`: a Bolt AsyncApp on Starlette and uvicorn that acks and does nothing else, or with
`--respond` answers a fixed text through response_url), and Oodaloo's own `oodaloo serve` and
`oodaloo worker` (started by tests/bot/test_two_processes.py's and test_crash_restart_worker.py's
helpers, reused). The bench process only sends.

The local Slack process adds a few routes for the bench beside Slack's own:
  POST /_bench/requests  the bodies of `n` clicks or `/runway` commands, as its people send them
                         (unsigned: the bench signs each as it sends it), each with its own
                         response_url and trigger
  GET  /_bench/answers   {response_url token: when its answer arrived (time.monotonic(), the
                         machine's clock, the same in every process)}
  POST /_bench/wait      until a token's answer arrived, or a message's block says something
  GET  /_bench/message   a channel's message (ts), as Slack holds it now
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote

import aiohttp
import httpx

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY / "tests" / "sync"))
sys.path.insert(0, str(REPOSITORY / "tests" / "bot"))

from test_two_processes import World, _environment, signed_headers  # noqa: E402

STARTUP_SECONDS = 120.0
_TOKEN = re.compile(r"/response/([0-9a-f]+)")


# --- the local Slack, its own process ---------------------------------------------------------------


def serve_local_slack(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.types import Message, Receive, Scope, Send

    from bot.local import free_socket
    from slack_sandbox.config import SlackSandboxConfig
    from slack_sandbox.server import create_app
    from slack_sandbox.user import SlackUserAgent

    sandbox = create_app(SlackSandboxConfig())
    workspace = sandbox.workspace
    sock = free_socket(port)
    workspace.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    answers: dict[str, float] = {}
    arrived: dict[str, asyncio.Event] = {}

    def caught(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b""))

    agent = SlackUserAgent(workspace, "http://bench.invalid/slack/events",
                           transport=httpx.MockTransport(caught))

    async def requests(request: Request) -> Response:
        asked = await request.json()
        bodies = []
        for _ in range(int(asked["n"])):
            if asked["kind"] == "command":
                delivery = await agent.slash_command(asked["user"], asked["channel"], "/runway",
                                                     asked.get("text", ""))
            else:
                message = workspace.message(asked["channel"], asked["ts"])
                assert message is not None, asked
                delivery = await agent.click(asked["user"], message, asked["action_id"],
                                             block_id=asked.get("block_id"))
            bodies.append(delivery.request.body)
        return JSONResponse({"bodies": bodies})

    async def all_answers(request: Request) -> Response:
        return JSONResponse({"answers": answers})

    async def wait(request: Request) -> Response:
        asked = await request.json()
        timeout = float(asked.get("timeout", 60.0))
        if "token" in asked:
            token = asked["token"]
            if token not in answers:
                event = arrived.setdefault(token, asyncio.Event())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
            found = answers.get(token)
            return JSONResponse({"at": found}, status_code=200 if found else 408)

        def says() -> bool:
            message = workspace.message(asked["channel"], asked["ts"])
            for block in message.blocks if message else []:
                if block.get("block_id") == asked["block_id"] and asked["contains"] in json.dumps(block):
                    return True
            return False

        try:
            await asyncio.to_thread(workspace.wait_for_blocking, says, timeout)
        except TimeoutError:
            return JSONResponse({"at": None}, status_code=408)
        return JSONResponse({"at": time.monotonic()})

    async def message(request: Request) -> Response:
        found = workspace.message(request.query_params["channel"], request.query_params["ts"])
        if found is None:
            return JSONResponse({}, status_code=404)
        return JSONResponse(found.to_slack(workspace.team_id))

    app = Starlette(routes=[
        Route("/_bench/requests", requests, methods=["POST"]),
        Route("/_bench/answers", all_answers, methods=["GET"]),
        Route("/_bench/wait", wait, methods=["POST"]),
        Route("/_bench/message", message, methods=["GET"]),
        Mount("/", sandbox.app),
    ])

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        """Notes when each answer through a response_url has been taken (200)."""
        found = _TOKEN.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        status: list[int] = []

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await app(scope, receive, sending if found else send)
        if found and status == [200]:
            token = found.group(1)
            answers.setdefault(token, time.monotonic())
            if token in arrived:
                arrived[token].set()

    config = sandbox.config
    print(json.dumps({
        "base_url": workspace.base_url, "api_url": sandbox.api_url, "bot_token": config.bot_token,
        "signing_secret": config.signing_secret, "team_id": config.team_id,
    }), flush=True)
    uvicorn.Server(uvicorn.Config(recording, log_level="warning", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


# --- the bare Bolt app, its own process ----------------------------------------------------------------


def bare_bolt_app(token: str, api_url: str, signing_secret: str, *, answer: bool = False) -> Any:
    """A Bolt AsyncApp on Starlette, as Bolt's documentation serves one, answering every click and
    `/runway` with an ack (and with `answer`, a fixed text through response_url)."""
    from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    app = AsyncApp(client=AsyncWebClient(token=token, base_url=api_url), signing_secret=signing_secret)

    async def listener(ack: Any, respond: Any) -> None:
        await ack()
        if answer:
            await respond(response_type="ephemeral", text="Runway: 14 weeks.")

    app.action(re.compile(".*"))(listener)
    app.command("/runway")(listener)
    handler = AsyncSlackRequestHandler(app)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"])])


def serve_bare_bolt(port: int, answer: bool) -> None:
    import uvicorn

    web = bare_bolt_app(os.environ["SLACK_BOT_TOKEN"], os.environ["SLACK_API_URL"],
                        os.environ["SLACK_SIGNING_SECRET"], answer=answer)
    # As `oodaloo serve` runs uvicorn: INFO, with its access log.
    uvicorn.run(web, host="127.0.0.1", port=port, log_level="info")


# --- starting them from the bench ----------------------------------------------------------------------


@dataclass
class Started:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    first_line: dict[str, Any]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.asynccontextmanager
async def started(name: str, args: list[str], folder: Path, *, env: dict[str, str] | None = None,
                  announces: bool = True) -> AsyncIterator[Started]:
    """`python args...` with its output in `folder/name.log`; with `announces`, its first line of
    output is JSON, read before this yields."""
    log = folder / f"{name}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *args, cwd=REPOSITORY, env=env or _environment({}), stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    one = Started(name, process, log, {})
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while announces and not one.first_line:
            text = log.read_text(errors="replace")
            line = text.split("\n", 1)[0]
            if "\n" in text and line.startswith("{"):
                one.first_line = json.loads(line)
            elif process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{text[-4000:]}")
            else:
                await asyncio.sleep(0.1)
        yield one
    finally:
        await one.stop()


def quickbooks(folder: Path, latency_ms: int, scale: int | None) -> contextlib.AbstractAsyncContextManager[Started]:
    args = ["-m", "bot.cli", "sandbox", "--json", "--port", "0", "--latency-ms", str(latency_ms)]
    if scale:
        args += ["--scale", str(scale)]
    return started("quickbooks", args, folder)


def local_slack(folder: Path) -> contextlib.AbstractAsyncContextManager[Started]:
    return started("slack", [str(Path(__file__)), "slack"], folder)


@contextlib.asynccontextmanager
async def bare_bolt(folder: Path, slack: Started, *, respond: bool = False) -> AsyncIterator[str]:
    """The bare Bolt app's URL, once it answers."""
    from bot.local import free_socket

    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = _environment({
        "SLACK_BOT_TOKEN": slack.first_line["bot_token"],
        "SLACK_SIGNING_SECRET": slack.first_line["signing_secret"],
        "SLACK_API_URL": slack.first_line["api_url"],
    })
    args = [str(Path(__file__)), "bare-bolt", "--port", str(port), *(["--respond"] if respond else [])]
    async with started("bare-bolt", args, folder, env=env, announces=False) as one:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{url}/healthz")).status_code == 200:
                        break
                if one.process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the bare Bolt app did not start:\n{one.log.read_text()[-4000:]}")
                await asyncio.sleep(0.1)
        yield url


async def workers_consuming(url: str, count: int = 1) -> None:
    """Until `oodaloo serve`'s /healthz says `count` workers take the Slack work it hands off."""
    async with httpx.AsyncClient() as client:
        for _ in range(600):
            report = (await client.get(f"{url}/healthz")).json()
            if report.get("redis", {}).get("slack_work", {}).get("workers", 0) >= count:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"{count} workers never took Slack work: {report}")


def world_of(quickbooks: Started, slack: Started) -> World:
    """tests/bot/test_two_processes.py's World over the two processes (what its helpers read)."""
    qbo, chat = quickbooks.first_line, slack.first_line
    remote_slack = SimpleNamespace(
        sandbox=SimpleNamespace(config=SimpleNamespace(
            bot_token=chat["bot_token"], signing_secret=chat["signing_secret"], team_id=chat["team_id"])),
        api_url=chat["api_url"],
        workspace=RemoteWorkspace(chat["base_url"]),
    )
    remote_quickbooks = SimpleNamespace(
        base_url=qbo["base_url"],
        sandbox=SimpleNamespace(
            realm_id=qbo["realm_id"], client_id=qbo["client_id"], client_secret=qbo["client_secret"],
            access_token=qbo["access_token"], refresh_token=qbo["refresh_token"]),
    )
    from runway.crypto import generate_key

    return World(remote_quickbooks, remote_slack, generate_key(), "bench-link-key-" + "x" * 32)  # type: ignore[arg-type]


class RemoteWorkspace:
    """The local Slack's workspace as the bench process sees it: through its bench routes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def message(self, channel: str, ts: str) -> Any:
        answer = httpx.get(f"{self.base_url}/_bench/message", params={"channel": channel, "ts": ts})
        if answer.status_code == 404:
            return None
        found = answer.json()
        return SimpleNamespace(channel=channel, ts=found["ts"], text=found.get("text", ""),
                               blocks=found.get("blocks", []))


# --- the load generator ------------------------------------------------------------------------------------


def response_token(body: str) -> str:
    found = _TOKEN.search(unquote(body))
    assert found is not None, body[:300]
    return found.group(1)


class Sender:
    """Signs and sends the local Slack's requests, as Slack does, timing each round trip.

    The instrument is kept light, as Slack's own senders are not on this machine: bodies are
    read for their response_url tokens read before the clock starts, and the timed requests go
    through aiohttp (about a third of httpx's CPU per request). `cpu_per_request` is what this
    process spent per timed request, printed beside the figures."""

    def __init__(self, slack: Started) -> None:
        self.slack_url = slack.first_line["base_url"]
        self.secret = slack.first_line["signing_secret"]
        self.client = httpx.AsyncClient(timeout=60.0, limits=httpx.Limits(max_connections=64))
        self._session: aiohttp.ClientSession | None = None
        self.cpu_per_request: list[float] = []

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._session is not None:
            await self._session.close()

    def _timed(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=60.0)
            )
        return self._session

    async def bodies(self, kind: str, n: int, **asked: Any) -> list[str]:
        answer = await self.client.post(f"{self.slack_url}/_bench/requests",
                                        json={"kind": kind, "n": n, **asked})
        answer.raise_for_status()
        return list(answer.json()["bodies"])

    async def send(self, url: str, body: str) -> tuple[float, float]:
        """(when it was sent, how long until the ack came back), in seconds of time.monotonic()."""
        headers = signed_headers(self.secret, body, retry=False)
        sent = time.monotonic()
        async with self._timed().post(f"{url}/slack/events", data=body.encode(), headers=headers) as answer:
            text = await answer.read()
            took = time.monotonic() - sent
        assert answer.status == 200, (answer.status, text[:300])
        return sent, took

    async def send_all(self, url: str, bodies: list[str], concurrency: int) -> tuple[list[float], dict[str, float]]:
        """Ack times, and when each request (by its response_url token) was sent."""
        gate = asyncio.Semaphore(concurrency)
        sent_at: dict[str, float] = {}
        ready = [(response_token(body), body) for body in bodies]

        async def one(token: str, body: str) -> float:
            async with gate:
                sent, took = await self.send(url, body)
                sent_at[token] = sent
                return took

        cpu = time.process_time()
        took = list(await asyncio.gather(*(one(token, body) for token, body in ready)))
        self.cpu_per_request.append((time.process_time() - cpu) / max(1, len(ready)))
        return took, sent_at

    async def answers(self) -> dict[str, float]:
        answer = await self.client.get(f"{self.slack_url}/_bench/answers")
        return dict(answer.json()["answers"])

    async def answered(self, tokens: list[str], seconds: float) -> dict[str, float]:
        """When each token's answer arrived; fails when some has not within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            arrived = await self.answers()
            missing = [t for t in tokens if t not in arrived]
            if not missing:
                return {t: arrived[t] for t in tokens}
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(missing)} of {len(tokens)} requests never answered through "
                                     "their response_url: the work after the ack was not done")
            await asyncio.sleep(0.2)

    async def wait(self, seconds: float = 60.0, **asked: Any) -> float:
        answer = await self.client.post(f"{self.slack_url}/_bench/wait",
                                        json={**asked, "timeout": seconds}, timeout=seconds + 10)
        if answer.status_code != 200:
            raise AssertionError(f"not within {seconds}s: {asked}")
        return float(answer.json()["at"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["slack", "bare-bolt"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--respond", action="store_true")
    args = parser.parse_args()
    if args.role == "slack":
        serve_local_slack(args.port)
    else:
        serve_bare_bolt(args.port, args.respond)


if __name__ == "__main__":
    main()
