"""Webhooks out: QBO's event notifications, signed, delivered to a registered URL.

Every change in a company (create, update, delete, void, emailed) becomes an entity entry in QBO's
legacy payload `{"eventNotifications":[{"realmId":..,"dataChangeEvent":{"entities":[..]}}]}`. Changes
are gathered for a moment (`batch_seconds`), then POSTed with the headers QBO sends, including
`intuit-signature` = base64(HMAC-SHA256(verifier token, raw body)), so Oodaloo's receiver can verify
them exactly as it will in production.

Delivery runs in background tasks and never holds up the API request that caused the change. Like
QBO, one company's notifications go out one at a time and in order; a failed delivery is retried
after each of `retry_delays`, then dropped (the receiver catches up with CDC, as QBO advises).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import threading
import uuid
from collections import defaultdict, deque
from datetime import datetime, tzinfo
from typing import Any

import httpx
import simplejson

from qbo_sandbox.store import ChangeEvent, Clock, Store, UnknownRealm

logger = logging.getLogger(__name__)


def sign(verifier_token: str, body: bytes) -> str:
    """The `intuit-signature` header value for a body."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _legacy_time(dt: datetime) -> str:
    # The docs' sample format: "2015-10-05T14:42:19-0700" (offset without a colon).
    return dt.strftime("%Y-%m-%dT%H:%M:%S%z")


class WebhookDispatcher:
    """Turns the store's change events into signed, batched, retried webhook deliveries."""

    def __init__(
        self,
        store: Store,
        *,
        verifier_token: str,
        clock: Clock,
        batch_seconds: float = 0.1,
        retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0),
        timeout_seconds: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._store = store
        self._verifier_token = verifier_token
        self._clock = clock
        self._batch_seconds = batch_seconds
        self._retry_delays = retry_delays
        self._timeout = timeout_seconds
        self._transport = transport
        self._urls: dict[str, str] = {}
        self._pending: dict[str, list[ChangeEvent]] = defaultdict(list)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.counts: dict[str, int] = defaultdict(int)
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        store.subscribe(self._on_change)

    # -- registration --------------------------------------------------------------------------

    def register(self, realm_id: str, url: str) -> None:
        """Sends this company's notifications to `url` from now on (changes before are never sent, as in QBO)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http(s)://..., got {url!r}")
        self._capture_loop()
        with self._lock:
            self._urls[realm_id] = url

    def unregister(self, realm_id: str) -> None:
        with self._lock:
            self._urls.pop(realm_id, None)
            self._pending.pop(realm_id, None)

    def registrations(self) -> dict[str, str]:
        with self._lock:
            return dict(self._urls)

    def stats(self) -> dict[str, Any]:
        return {"registered": self.registrations(), **dict(self.counts), "recent": list(self.recent)}

    async def drain(self) -> None:
        """Waits until every queued notification has been delivered or given up (bound it with asyncio.timeout)."""
        while workers := list(self._workers.values()):
            await asyncio.gather(*workers, return_exceptions=True)

    async def aclose(self) -> None:
        self._closed = True
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- events in ---------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            pass  # registered from plain code: the loop is learnt from the first change in it

    def _on_change(self, event: ChangeEvent) -> None:
        """Store listener: queue and return at once (it runs inside the write that caused it)."""
        with self._lock:
            if self._closed or event.realm_id not in self._urls:
                return
            self._pending[event.realm_id].append(event)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            self._loop = loop
            self._ensure_worker(event.realm_id)
        elif self._loop is not None and not self._loop.is_closed():
            # A change made from another thread (a test poking the store): hand over to the loop.
            self._loop.call_soon_threadsafe(self._ensure_worker, event.realm_id)

    def _ensure_worker(self, realm_id: str) -> None:
        if realm_id not in self._workers and not self._closed:
            self._workers[realm_id] = asyncio.get_running_loop().create_task(
                self._deliver_realm(realm_id), name=f"qbo-sandbox-webhooks-{realm_id}"
            )

    # -- delivery out --------------------------------------------------------------------------

    async def _deliver_realm(self, realm_id: str) -> None:
        try:
            while True:
                await asyncio.sleep(self._batch_seconds)
                with self._lock:
                    events = self._pending.pop(realm_id, [])
                    url = self._urls.get(realm_id)
                if not events or url is None:
                    return
                await self._deliver(realm_id, url, events)
        finally:
            # No await between the empty check above and this: a new event either was taken
            # or finds no worker and starts one.
            self._workers.pop(realm_id, None)

    def _tz(self, realm_id: str) -> tzinfo | None:
        try:
            return self._store.realm(realm_id).tz
        except UnknownRealm:
            return None  # the company was dropped meanwhile: the machine's zone will do

    def _payload(self, realm_id: str, events: list[ChangeEvent], tz: tzinfo | None) -> bytes:
        entities = [
            {
                "name": e.entity,
                "id": e.id,
                "operation": e.operation,
                "lastUpdated": _legacy_time(e.last_updated.astimezone(tz)),
            }
            for e in events
        ]
        body = {"eventNotifications": [{"realmId": realm_id, "dataChangeEvent": {"entities": entities}}]}
        text: str = simplejson.dumps(body)
        return text.encode()

    async def _deliver(self, realm_id: str, url: str, events: list[ChangeEvent]) -> None:
        tz = self._tz(realm_id)
        body = self._payload(realm_id, events, tz)
        headers = {
            "intuit-signature": sign(self._verifier_token, body),
            "intuit-t-id": str(uuid.uuid4()),
            "intuit-created-time": _legacy_time(self._clock.now().astimezone(tz)),
            "intuit-notification-schema-version": "0.1",
            "content-type": "application/json; charset=utf-8",
            "accept": "application/json",
            "user-agent": "intuit_notification_server/0.1",
        }
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, timeout=self._timeout)
        delays = (0.0, *self._retry_delays)
        last_problem = ""
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay)
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last_problem = f"{type(exc).__name__}: {exc}"
            else:
                if 200 <= response.status_code < 300:
                    self.counts["delivered"] += 1
                    self.counts["events_delivered"] += len(events)
                    self.recent.append({"realm_id": realm_id, "url": url, "events": len(events),
                                        "attempts": attempt, "status": response.status_code})
                    return
                last_problem = f"HTTP {response.status_code}"
            self.counts["failed_attempts"] += 1
        self.counts["dropped"] += 1
        self.counts["events_dropped"] += len(events)
        self.recent.append({"realm_id": realm_id, "url": url, "events": len(events),
                            "attempts": len(delays), "error": last_problem})
        logger.warning(
            "QBO sandbox gave up delivering %d change event(s) of realm %s to %s after %d attempts (%s); "
            "the receiver should catch up with a CDC call",
            len(events), realm_id, url, len(delays), last_problem,
        )
