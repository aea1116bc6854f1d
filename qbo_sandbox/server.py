"""The sandbox as a real HTTP server (uvicorn): in a background thread for tests, or in the foreground.

Over real HTTP an injected "response lost" fault reaches the client as a response whose headers
arrive and whose body is cut off by the server closing the connection: httpx raises
`RemoteProtocolError` ("peer closed connection without sending complete message body"), the same
thing a client sees when QBO's edge drops a connection mid-answer.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

import uvicorn

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.chaos import ResponseLost
from qbo_sandbox.config import SandboxConfig


class _DropInjectedFaults(logging.Filter):
    """uvicorn logs every app exception; the ones the sandbox raises on purpose are not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseLost))


_quiet_filter = _DropInjectedFaults()


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Ctrl-C and SIGTERM shut down gracefully and the process then exits normally.

        (uvicorn's own version re-raises the signal after shutdown, so a terminated sandbox would
        report death by SIGTERM; stopping it is the ordinary way to end it.)
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _uvicorn_config(sandbox: Sandbox, log_level: str) -> uvicorn.Config:
    logging.getLogger("uvicorn.error").addFilter(_quiet_filter)
    return uvicorn.Config(
        sandbox.app,
        log_level=log_level,
        access_log=False,  # keeps stdout for the start-up announcement
        lifespan="on",
        http="h11",
        # A request hanging on an injected fault must not hold shutdown for two minutes.
        timeout_graceful_shutdown=2,
    )


def _bind(host: str, port: int) -> socket.socket:
    """Binds before serving, so port 0 gives a known free port and "address in use" fails early."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every keep-alive response waits ~40 ms on Nagle and delayed ACKs.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _base_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


class RunningSandbox:
    """A sandbox served over HTTP in a background thread. `base_url` is the part before `/v3`."""

    def __init__(self, sandbox: Sandbox, base_url: str, server: uvicorn.Server, thread: threading.Thread) -> None:
        self.sandbox = sandbox
        self.base_url = base_url
        self._server = server
        self._thread = thread

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(
    config: SandboxConfig | None = None,
    *,
    port: int = 0,
    startup_timeout: float = 30.0,
    log_level: str = "warning",
) -> RunningSandbox:
    """Serves a new sandbox on `config.host` and `port` (0: a free port) until `.stop()`."""
    config = config or SandboxConfig()
    sandbox = create_app(config)
    sock = _bind(config.host, port)
    ready = threading.Event()
    failures: list[BaseException] = []
    server = _Server(_uvicorn_config(sandbox, log_level), on_ready=ready.set)

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread below
            failures.append(exc)
        finally:
            sock.close()
            ready.set()

    thread = threading.Thread(target=run, name=f"qbo-sandbox-{sandbox.realm_id}", daemon=True)
    thread.start()
    if not ready.wait(startup_timeout) or failures or not server.started:
        server.should_exit = True
        cause = failures[0] if failures else None
        raise RuntimeError(f"the QBO sandbox did not start within {startup_timeout}s on {config.host}") from cause
    return RunningSandbox(sandbox, _base_url(sock), server, thread)


def serve(
    config: SandboxConfig | None = None,
    *,
    on_ready: Callable[[str, Sandbox], None] | None = None,
    log_level: str = "info",
) -> None:
    """Serves in the foreground until Ctrl-C or SIGTERM. `on_ready(base_url, sandbox)` runs once it accepts requests.

    Raises OSError when the host/port cannot be bound.
    """
    config = config or SandboxConfig()
    sandbox = create_app(config)
    sock = _bind(config.host, config.port)
    base_url = _base_url(sock)

    def announce() -> None:
        if on_ready is not None:
            on_ready(base_url, sandbox)

    try:
        _Server(_uvicorn_config(sandbox, log_level), on_ready=announce).run(sockets=[sock])
    finally:
        sock.close()
