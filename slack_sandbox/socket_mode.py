"""Socket Mode in the local Slack: the app's requests over its websocket instead of its request URL.

As Slack speaks it (docs.slack.dev/apis/events-api/using-socket-mode) and as slack_sdk's
SocketModeClient, which Bolt's AsyncSocketModeHandler runs, expects it:

- `apps.connections.open` with the app-level token (xapp-) answers a one-time URL,
  `ws://<the sandbox>/link/?ticket=...&app_id=...` (web_api.py); a ticket opens one connection;
- on connecting, the app is greeted with {"type": "hello", "num_connections", "debug_info",
  "connection_info": {"app_id"}};
- whatever Slack would POST to the request URL arrives as an envelope {"envelope_id", "type",
  "payload", "accepts_response_payload"}: "slash_commands" (the command's form fields as an object),
  "interactive" (the JSON the HTTP path sends as `payload=`) or "events_api" (the event callback,
  with "retry_attempt" and "retry_reason");
- the app acknowledges with {"envelope_id", "payload"?} within 3 seconds. The payload is what the
  body of an HTTP 200 would be: a command's immediate answer, a view submission's response_action.
  An event left unacknowledged is delivered again, up to three times ("retry_attempt": 1, 2, 3,
  "retry_reason": "timeout"; at once here, where Slack waits up to minutes between them); a command
  or a click is not: the person sees the time-out, as over HTTP. With no connection open, a delivery
  waits up to the deadline for one (the app may be reconnecting), then fails: "dispatch_failed";
- {"type": "disconnect", "reason": "refresh_requested"} (`SocketMode.refresh`) asks the app to open
  a new connection, as Slack does every few hours; a connection made while Socket Mode is off is
  told "link_disabled".

The connections live in the sandbox server's event loop (a uvicorn thread) while deliveries come
from the caller's loop: envelopes are handed to the server's loop with run_coroutine_threadsafe and
acknowledgements come back through thread-safe futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

logger = logging.getLogger(__name__)

#: What the HTTP path's request kinds (user.py) are called in an envelope's "type".
ENVELOPE_TYPES = {"command": "slash_commands", "interaction": "interactive", "event": "events_api"}
#: Slack retries an event it got no acknowledgement for three times.
EVENT_RETRIES = 3
#: How long a URL from apps.connections.open can be used to connect.
TICKET_LIFETIME_SECONDS = 30.0
#: Slack refreshes a connection after a few hours; the hello says roughly when (in seconds).
APPROXIMATE_CONNECTION_TIME = 18060
_DEBUG_HOST = "applink-sandbox"


@dataclass
class Acknowledgement:
    """How one delivery over the socket went."""

    acked: bool
    #: The ack's "payload", when it had one: the answer Slack uses (as an HTTP 200 body).
    payload: dict[str, Any] | None = None
    #: Why there was no answer: "dispatch_failed" (no connection open) or "operation_timeout".
    error: str | None = None
    #: Every envelope sent for the delivery, retries included, as the app received them.
    envelopes: list[dict[str, Any]] = field(default_factory=list)


class _Connection:
    """One open websocket: sends envelopes in its own loop, matches acks to their envelopes."""

    def __init__(self, websocket: WebSocket, loop: asyncio.AbstractEventLoop, number: int) -> None:
        self.websocket = websocket
        self.loop = loop
        self.number = number
        self._lock = threading.Lock()
        self._pending: dict[str, concurrent.futures.Future[dict[str, Any] | None]] = {}

    def expect(self, envelope_id: str) -> concurrent.futures.Future[dict[str, Any] | None]:
        future: concurrent.futures.Future[dict[str, Any] | None] = concurrent.futures.Future()
        with self._lock:
            self._pending[envelope_id] = future
        return future

    def forget(self, envelope_id: str) -> None:
        with self._lock:
            self._pending.pop(envelope_id, None)

    def received(self, text: str) -> None:
        """An ack names its envelope; anything else the app sends is ignored, as Slack does."""
        try:
            message = json.loads(text)
        except json.JSONDecodeError:
            logger.info("socket %d: the app sent text that is not JSON: %.80r", self.number, text)
            return
        if not isinstance(message, dict) or not isinstance(message.get("envelope_id"), str):
            return
        with self._lock:
            future = self._pending.pop(message["envelope_id"], None)
        if future is None:
            return  # a late ack, or one for an envelope this connection never sent
        payload = message.get("payload")
        try:
            future.set_result(payload if isinstance(payload, dict) else None)
        except concurrent.futures.InvalidStateError:
            pass  # the deadline passed as the ack came in: too late, as for Slack

    def send(self, message: dict[str, Any]) -> concurrent.futures.Future[None]:
        """Sends from any thread; the returned future says whether the frame went out."""
        return asyncio.run_coroutine_threadsafe(
            self.websocket.send_text(json.dumps(message)), self.loop
        )


class SocketMode:
    """One app's Socket Mode in the workspace: its tickets, open connections and envelopes.

    `enabled` is the toggle in the app's settings (SlackSandboxConfig.socket_mode); it may be
    flipped while the sandbox runs.
    """

    def __init__(self, app_id: str, *, enabled: bool) -> None:
        self.app_id = app_id
        self.enabled = enabled
        self._lock = threading.Lock()
        self._tickets: dict[str, float] = {}
        self._connections: list[_Connection] = []
        self._numbers = itertools.count(1)
        self._turn = itertools.count()
        #: Connections that got their hello, since the sandbox started.
        self.connections_opened = 0
        self._envelopes: list[dict[str, Any]] = []

    # -- connecting -----------------------------------------------------------------------------

    def issue_url(self, base_url: str) -> str:
        """A one-time websocket URL on the sandbox's own server (http -> ws, https -> wss)."""
        ticket = str(uuid.uuid4())
        with self._lock:
            now = time.monotonic()
            self._tickets = {t: until for t, until in self._tickets.items() if until > now}
            self._tickets[ticket] = now + TICKET_LIFETIME_SECONDS
        return f"ws{base_url.removeprefix('http')}/link/?ticket={ticket}&app_id={self.app_id}"

    def _take_ticket(self, ticket: str) -> bool:
        with self._lock:
            until = self._tickets.pop(ticket, None)
        return until is not None and until > time.monotonic()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    async def endpoint(self, websocket: WebSocket) -> None:
        """`/link/`: the app's end of Socket Mode."""
        if not self._take_ticket(websocket.query_params.get("ticket", "")):
            # Closing before accepting refuses the upgrade (HTTP 403): call apps.connections.open.
            await websocket.close(code=1008)
            return
        await websocket.accept()
        if not self.enabled:
            await websocket.send_text(json.dumps(_disconnect("link_disabled")))
            await websocket.close()
            return
        connection = _Connection(websocket, asyncio.get_running_loop(), next(self._numbers))
        try:
            # Counted as open, then greeted, with nothing awaited in between: whatever is sent to
            # it (envelopes, a refresh) goes through this loop, so after the hello is written; and
            # an app that has its hello finds itself counted (a refresh right after reaches it).
            with self._lock:
                self._connections.append(connection)
                self.connections_opened += 1
                count = len(self._connections)
            await websocket.send_text(json.dumps(self._hello(count)))
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", errors="replace")
                if text:
                    connection.received(text)
        except WebSocketDisconnect:
            pass
        finally:
            with self._lock:
                if connection in self._connections:
                    self._connections.remove(connection)

    def _hello(self, num_connections: int) -> dict[str, Any]:
        return {
            "type": "hello",
            "num_connections": num_connections,
            "debug_info": {
                "host": _DEBUG_HOST,
                "build_number": 1,
                "approximate_connection_time": APPROXIMATE_CONNECTION_TIME,
            },
            "connection_info": {"app_id": self.app_id},
        }

    async def refresh(self, reason: str = "refresh_requested") -> int:
        """Tells every open connection to reconnect, as Slack does; returns how many were told.

        The connections stay open: the app closes the old one once its new one is up.
        """
        with self._lock:
            told = list(self._connections)
        for connection in told:
            await asyncio.wrap_future(connection.send(_disconnect(reason)))
        return len(told)

    # -- delivering -----------------------------------------------------------------------------

    def envelopes(self) -> list[dict[str, Any]]:
        """Every envelope sent so far, oldest first (copies through JSON)."""
        with self._lock:
            copied: list[dict[str, Any]] = json.loads(json.dumps(self._envelopes))
        return copied

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        ack_deadline: float,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> Acknowledgement:
        """Sends `payload` ("command", "interaction" or "event") and waits for its acknowledgement.

        `retry_attempt` marks a delivery as Slack's n-th retry (a test repeating a delivery); events
        carry retry fields always, and are retried here when unacknowledged.
        """
        outcome = Acknowledgement(acked=False)
        attempt = retry_attempt
        reason = retry_reason
        if kind == "event" and attempt is None:
            attempt, reason = 0, ""
        while True:
            envelope: dict[str, Any] = {
                "envelope_id": str(uuid.uuid4()),
                "payload": payload,
                "type": ENVELOPE_TYPES[kind],
                "accepts_response_payload": _accepts_response_payload(kind, payload),
            }
            if attempt is not None:
                envelope.update(retry_attempt=attempt, retry_reason=reason or "")
            acked, answer, error = await self._send_and_wait(envelope, ack_deadline)
            if acked or error != "dispatch_failed":
                outcome.envelopes.append(envelope)
            if acked:
                outcome.acked, outcome.payload, outcome.error = True, answer, None
                return outcome
            outcome.error = error
            if kind != "event" or (attempt or 0) >= EVENT_RETRIES:
                return outcome
            attempt, reason = (attempt or 0) + 1, "timeout"

    async def _send_and_wait(
        self, envelope: dict[str, Any], ack_deadline: float
    ) -> tuple[bool, dict[str, Any] | None, str | None]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ack_deadline
        while True:
            connection = await self._next_connection(deadline)
            if connection is None:
                return False, None, "dispatch_failed"
            envelope_id = envelope["envelope_id"]
            answered = connection.expect(envelope_id)
            try:
                await asyncio.wrap_future(connection.send(envelope))
            except (RuntimeError, OSError, WebSocketDisconnect) as lost:
                # The connection closed under us: Slack sends on another one, if one is open.
                logger.info("socket %d closed while sending: %s", connection.number, lost)
                connection.forget(envelope_id)
                self._drop(connection)
                continue
            with self._lock:
                self._envelopes.append(envelope)
            try:
                answer = await asyncio.wait_for(
                    asyncio.wrap_future(answered), max(0.0, deadline - loop.time())
                )
            except TimeoutError:
                connection.forget(envelope_id)
                return False, None, "operation_timeout"
            return True, answer, None

    async def _next_connection(self, deadline: float) -> _Connection | None:
        """An open connection, taking turns; Slack holds a delivery briefly while the app reconnects."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._connections:
                    return self._connections[next(self._turn) % len(self._connections)]
            if loop.time() >= deadline:
                return None
            await asyncio.sleep(0.01)

    def _drop(self, connection: _Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)


def _accepts_response_payload(kind: str, payload: dict[str, Any]) -> bool:
    """Whether the ack's payload is used: a command's answer, a modal's response_action."""
    if kind == "command":
        return True
    if kind == "interaction":
        return payload.get("type") in ("view_submission", "block_suggestion")
    return False


def _disconnect(reason: str) -> dict[str, Any]:
    return {"type": "disconnect", "reason": reason, "debug_info": {"host": _DEBUG_HOST}}

