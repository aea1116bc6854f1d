"""QBO's per-company (realm) rate limits, as ASGI middleware in front of the v3 API.

QuickBooks Online allows about 500 requests per minute, 10 requests in flight and 40 batch requests
per minute per realm. Over a limit it answers HTTP 429 with an XML fault (code 3001, ThrottleExceeded)
even to JSON clients. The sandbox does the same, adds a `Retry-After` header (seconds) so clients can
back off precisely, and counts every rejection so tests and benchmarks can see them.

The windows are sliding and read the sandbox clock, so a test can scale a limit down to a handful of
requests and then move the clock instead of sleeping.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from qbo_sandbox.store import Clock

_V3_PATH = re.compile(r"^/v3/company/(?P<realm>[^/]+)(?:/(?P<rest>.*))?$")


@dataclass(frozen=True)
class V3Target:
    """The realm a v3 request is for, and the path after `/v3/company/{realm}/` (e.g. `bill/12`)."""

    realm_id: str
    subpath: str


def parse_v3_path(path: str) -> V3Target | None:
    match = _V3_PATH.match(path)
    if match is None:
        return None
    return V3Target(match["realm"], (match["rest"] or "").strip("/"))


def route_key(subpath: str) -> str:
    """Groups requests for statistics: `bill/12` and `bill/13` both count as `bill/{id}`."""
    parts = [("{id}" if part.isdigit() else part.lower()) for part in subpath.split("/") if part]
    if parts[:1] == ["reports"]:
        # Report names keep their case: they are what people look for in the numbers.
        parts = ["reports", *subpath.split("/")[1:]]
    return "/".join(parts) or "/"


def throttle_fault_xml(now: datetime) -> bytes:
    """QBO's throttle fault, byte for byte in the shape observed in the wild (XML even for JSON clients)."""
    stamp = now.isoformat(timespec="milliseconds")
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<IntuitResponse time="{stamp}" xmlns="http://schema.intuit.com/finance/v3">\n'
        '    <Fault type="SERVICE">\n'
        '        <Error code="3001">\n'
        "            <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>\n"
        "            <Detail>The request limit was reached.  Try again later</Detail>\n"
        "        </Error>\n"
        "    </Fault>\n"
        "</IntuitResponse>\n"
    ).encode()


def throttle_response(now: datetime, retry_after_seconds: int) -> Response:
    return Response(
        throttle_fault_xml(now),
        status_code=429,
        media_type="application/xml",
        headers={"Retry-After": str(max(1, retry_after_seconds))},
    )


@dataclass
class LimitConfig:
    """Per-realm limits. Defaults are QBO's; tests scale them down to reach them in milliseconds."""

    requests_per_minute: int = 500
    max_concurrent: int = 10
    batch_per_minute: int = 40
    # The length of the "minute": a test can shrink it instead of waiting a real minute.
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "max_concurrent", "batch_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"limit {name} must be a whole number of at least 1, got {value!r}")
        if isinstance(self.window_seconds, bool) or not isinstance(self.window_seconds, int | float):
            raise ValueError(f"limit window_seconds must be a number of seconds, got {self.window_seconds!r}")
        if self.window_seconds <= 0:
            raise ValueError(f"limit window_seconds must be positive, got {self.window_seconds!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def updated(self, changes: dict[str, Any]) -> LimitConfig:
        """A copy with `changes` applied; unknown names and bad values raise ValueError naming them."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        merged = self.to_dict()
        for name, value in changes.items():
            if name == "window_seconds" and not isinstance(value, bool | int | float):
                # JSON numbers arrive as Decimal; a window length is a duration, not money.
                value = float(value)
            merged[name] = value
        return LimitConfig(**merged)


@dataclass
class _RealmUsage:
    requests: deque[float] = field(default_factory=deque)
    batches: deque[float] = field(default_factory=deque)
    in_flight: int = 0


class RateLimits:
    """ASGI middleware enforcing `LimitConfig` per realm on `/v3/company/{realm}/...` requests."""

    def __init__(
        self,
        app: ASGIApp,
        config: LimitConfig,
        clock: Clock,
        tz_for: Callable[[str], tzinfo],
    ) -> None:
        self.app = app
        self.config = config
        self._clock = clock
        self._tz_for = tz_for
        self._usage: dict[str, _RealmUsage] = defaultdict(_RealmUsage)
        self.rejections: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def configure(self, changes: dict[str, Any]) -> LimitConfig:
        self.config = self.config.updated(changes)
        return self.config

    def reset_realm(self, realm_id: str) -> None:
        """Forgets a realm's windows (its in-flight count stays: those requests are still running)."""
        usage = self._usage.get(realm_id)
        if usage is not None:
            usage.requests.clear()
            usage.batches.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "limits": self.config.to_dict(),
            "throttled": {realm: dict(reasons) for realm, reasons in self.rejections.items()},
            "throttled_total": sum(sum(r.values()) for r in self.rejections.values()),
            "in_flight": {realm: u.in_flight for realm, u in self._usage.items() if u.in_flight},
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        usage = self._usage[target.realm_id]
        refusal = self._admit(usage, is_batch=route_key(target.subpath) == "batch")
        if refusal is not None:
            reason, retry_after = refusal
            self.rejections[target.realm_id][reason] += 1
            now = self._clock.now().astimezone(self._tz_for(target.realm_id))
            await throttle_response(now, retry_after)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            usage.in_flight -= 1

    def _admit(self, usage: _RealmUsage, *, is_batch: bool) -> tuple[str, int] | None:
        """Admits the request (recording it) or says which limit refused it and when to retry.

        No awaits in here: on one event loop the check and the bookkeeping happen as one step.
        """
        limits = self.config
        if usage.in_flight >= limits.max_concurrent:
            # In-flight requests finish in moments; a second is a fair wait.
            return "concurrency", 1
        now = self._clock.now().timestamp()
        horizon = now - limits.window_seconds
        for window in (usage.requests, usage.batches):
            while window and window[0] <= horizon:
                window.popleft()
        if len(usage.requests) >= limits.requests_per_minute:
            return "rate", _seconds_until_free(usage.requests, now, limits.window_seconds)
        if is_batch and len(usage.batches) >= limits.batch_per_minute:
            return "batch", _seconds_until_free(usage.batches, now, limits.window_seconds)
        usage.requests.append(now)
        if is_batch:
            usage.batches.append(now)
        usage.in_flight += 1
        return None


def _seconds_until_free(window: deque[float], now: float, window_seconds: float) -> int:
    return max(1, math.ceil(window[0] + window_seconds - now))
