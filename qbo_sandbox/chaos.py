"""Injected faults: the ways QuickBooks Online misbehaves, on demand and reproducibly.

Oodaloo promises that no payment is made twice or lost even though QBO throttles, fails with 5xx,
stalls, and sometimes applies a write but loses the response. This middleware makes those things
happen in the sandbox, per operation kind or per path, at configured rates.

Reproducible: the faults for the n-th request of a realm are drawn from a random generator seeded
with (plan seed, realm, n), so the same seed and the same sequence of requests give the same faults,
whatever the timing. Putting a new plan restarts the sequence.
"""

from __future__ import annotations

import asyncio
import fnmatch
import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

import httpx
import simplejson
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbo_sandbox.limits import parse_v3_path, throttle_response
from qbo_sandbox.store import Clock

OPERATION_KINDS: tuple[str, ...] = ("read", "query", "write", "batch", "report", "cdc")


def operation_kind(method: str, subpath: str) -> str:
    """What a v3 request does: `query`, `cdc`, `batch`, `report`, `read` (GET) or `write` (POST)."""
    first = subpath.split("/", 1)[0].lower()
    if first in ("query", "cdc", "batch"):
        return first
    if first == "reports":
        return "report"
    return "read" if method.upper() in ("GET", "HEAD") else "write"


class ResponseLost(httpx.RemoteProtocolError):
    """Raised by the sandbox after a write committed, to drop the connection mid-response.

    It subclasses httpx's own "peer closed the connection" error so an in-process client (httpx
    ASGITransport, which re-raises app exceptions) sees exactly the exception class it would see
    over real HTTP, where the server closes the socket after a partial response.
    """


def _number(value: Any, name: str) -> float:
    # Rates and durations are probabilities and milliseconds, not money; JSON gives them as Decimal.
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Latency:
    """Added delay: fixed, uniform between min and max, or exponential around a mean (above min, below max)."""

    fixed_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"latency {f.name} must be a non-negative number of milliseconds, got {value!r}")
        if self.fixed_ms is not None:
            if any(v is not None for v in (self.min_ms, self.max_ms, self.mean_ms)):
                raise ValueError("latency is either fixed_ms alone, or min_ms/max_ms, or mean_ms (with optional min/max)")
        elif self.mean_ms is not None:
            if self.mean_ms <= (self.min_ms or 0):
                raise ValueError("latency mean_ms must be above min_ms")
        elif self.min_ms is None or self.max_ms is None:
            raise ValueError("latency needs fixed_ms, or both min_ms and max_ms, or mean_ms")
        if self.min_ms is not None and self.max_ms is not None and self.min_ms > self.max_ms:
            raise ValueError("latency min_ms must not exceed max_ms")

    def seconds(self, rng: random.Random) -> float:
        if self.fixed_ms is not None:
            return self.fixed_ms / 1000
        low = self.min_ms or 0.0
        if self.mean_ms is not None:
            delay = low + rng.expovariate(1 / (self.mean_ms - low))
            return (min(delay, self.max_ms) if self.max_ms is not None else delay) / 1000
        assert self.max_ms is not None
        return rng.uniform(low, self.max_ms) / 1000

    def to_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls, data: Any) -> Latency:
        if isinstance(data, int | float | Decimal) and not isinstance(data, bool):
            return cls(fixed_ms=_number(data, "latency"))
        if not isinstance(data, dict):
            raise ValueError(f"latency must be an object like {{'min_ms': 5, 'max_ms': 50}}, got {data!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown latency field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**{k: _number(v, f"latency {k}") for k, v in data.items() if v is not None})


_RATES = ("rate_429", "rate_5xx", "rate_hang", "rate_lost")
# An outage shows as nginx's 503 page as often as a 500 fault; a lost response is most often a dropped connection.
DEFAULT_ERROR_WEIGHTS: dict[str, float] = {"503": 1.0, "500": 1.0}
DEFAULT_LOST_WEIGHTS: dict[str, float] = {"dropped": 2.0, "502": 1.0, "504": 1.0}


def _weighted(weights: dict[str, float], u: float) -> str:
    total = sum(weights.values())
    edge = 0.0
    for name, weight in weights.items():
        edge += weight / total
        if u < edge:
            return name
    return next(name for name, weight in reversed(weights.items()) if weight > 0)


def _weights(data: Any, name: str, default: dict[str, float]) -> dict[str, float]:
    if data is None:
        return dict(default)
    if not isinstance(data, dict):
        raise ValueError(f"{name} must be an object like {default!r}")
    return {str(k): _number(v, f"{name} {k}") for k, v in data.items()}


@dataclass(frozen=True)
class FaultRule:
    """Probabilities (0..1, summing to at most 1) of each fault for one request, plus added latency.

    - rate_429: throttled (QBO's XML fault and Retry-After), nothing applied.
    - rate_5xx: 503 HTML page or 500 JSON fault, nothing applied.
    - rate_hang: no answer until the client gives up (or `hang_seconds`, then 504), nothing applied.
    - rate_lost: the request is applied and committed, then the response is lost: a dropped
      connection, a 502 or a 504.
    """

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_hang: float = 0.0
    rate_lost: float = 0.0
    latency: Latency | None = None

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
        if sum(getattr(self, name) for name in _RATES) > 1 + 1e-9:
            raise ValueError("the fault rates of one rule must add up to at most 1")

    def pick(self, u: float) -> str | None:
        """Maps one uniform draw onto a fault, so each rate is exactly that fault's probability."""
        edge = 0.0
        for name in _RATES:
            edge += getattr(self, name)
            if u < edge:
                return name.removeprefix("rate_")
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in _RATES}
        out["latency"] = self.latency.to_dict() if self.latency else None
        return out

    @classmethod
    def from_dict(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError(f"a fault rule must be an object like {{'rate_5xx': 0.1}}, got {data!r}")
        unknown = sorted(set(data) - {*_RATES, "latency"})
        if unknown:
            raise ValueError(f"unknown fault rule field(s) {', '.join(unknown)}; known: {', '.join((*_RATES, 'latency'))}")
        rates = {name: _number(data[name], name) for name in _RATES if data.get(name) is not None}
        latency = Latency.from_dict(data["latency"]) if data.get("latency") is not None else None
        return cls(**rates, latency=latency)


@dataclass(frozen=True)
class PathRule:
    """A rule for requests whose path after `/v3/company/{realm}/` matches a glob, e.g. `billpayment*`."""

    pattern: str
    rule: FaultRule
    method: str | None = None  # e.g. "POST" to hit writes only

    def matches(self, method: str, subpath: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return fnmatch.fnmatchcase(subpath.lower(), self.pattern.lower())


@dataclass
class FaultPlan:
    """Which faults to inject: the first matching path rule wins, then the operation kind's rule, then default."""

    seed: int | None = None  # None: the sandbox's company seed
    default: FaultRule = field(default_factory=FaultRule)
    by_kind: dict[str, FaultRule] = field(default_factory=dict)
    by_path: list[PathRule] = field(default_factory=list)
    hang_seconds: float = 120.0  # QBO times requests out after 120 s
    retry_after_seconds: int = 1  # on injected 429s; short so chaos runs do not crawl
    # How an injected 5xx answers, and how a lost response is lost: relative weights.
    error_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ERROR_WEIGHTS))
    lost_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_LOST_WEIGHTS))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.by_kind) - set(OPERATION_KINDS))
        if unknown:
            raise ValueError(f"unknown operation kind(s) {', '.join(unknown)}; known: {', '.join(OPERATION_KINDS)}")
        if self.hang_seconds <= 0 or self.retry_after_seconds < 1:
            raise ValueError("hang_seconds must be positive and retry_after_seconds at least 1")
        for name, weights, allowed in (
            ("error_weights", self.error_weights, DEFAULT_ERROR_WEIGHTS),
            ("lost_weights", self.lost_weights, DEFAULT_LOST_WEIGHTS),
        ):
            if not weights or set(weights) - set(allowed) or any(w < 0 for w in weights.values()) \
                    or sum(weights.values()) <= 0:
                raise ValueError(f"{name} must weigh some of {', '.join(allowed)} with non-negative numbers, got {weights!r}")

    def error_variant(self, u: float) -> str:
        return _weighted(self.error_weights, u)

    def lost_variant(self, u: float) -> str:
        return _weighted(self.lost_weights, u)

    def rule_for(self, kind: str, method: str, subpath: str) -> FaultRule:
        for path_rule in self.by_path:
            if path_rule.matches(method, subpath):
                return path_rule.rule
        return self.by_kind.get(kind, self.default)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "default": self.default.to_dict(),
            "by_kind": {kind: rule.to_dict() for kind, rule in self.by_kind.items()},
            "by_path": [
                {"pattern": p.pattern, "method": p.method, "rule": p.rule.to_dict()} for p in self.by_path
            ],
            "hang_seconds": self.hang_seconds,
            "retry_after_seconds": self.retry_after_seconds,
            "error_weights": dict(self.error_weights),
            "lost_weights": dict(self.lost_weights),
        }

    @classmethod
    def from_dict(cls, data: Any) -> FaultPlan:
        """Builds a plan from JSON; raises ValueError saying which part is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a fault plan must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault plan field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        by_kind = data.get("by_kind") or {}
        by_path = data.get("by_path") or []
        if not isinstance(by_kind, dict) or not isinstance(by_path, list):
            raise ValueError("by_kind must be an object of kind → rule and by_path a list of {pattern, method, rule}")
        paths = []
        for entry in by_path:
            if not isinstance(entry, dict) or not isinstance(entry.get("pattern"), str):
                raise ValueError(f"each by_path entry needs a 'pattern' string and a 'rule', got {entry!r}")
            method = entry.get("method")
            paths.append(PathRule(entry["pattern"], FaultRule.from_dict(entry.get("rule", {})), method))
        seed = data.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed must be a whole number, got {seed!r}")
        return cls(
            seed=seed,
            default=FaultRule.from_dict(data.get("default") or {}),
            by_kind={kind: FaultRule.from_dict(rule) for kind, rule in by_kind.items()},
            by_path=paths,
            hang_seconds=_number(data.get("hang_seconds", 120.0), "hang_seconds"),
            retry_after_seconds=int(_number(data.get("retry_after_seconds", 1), "retry_after_seconds")),
            error_weights=_weights(data.get("error_weights"), "error_weights", DEFAULT_ERROR_WEIGHTS),
            lost_weights=_weights(data.get("lost_weights"), "lost_weights", DEFAULT_LOST_WEIGHTS),
        )


def _html_page(status: int, title: str) -> Response:
    # The shape of the nginx pages QBO's edge returns during outages (seen with an intuit_tid header).
    body = (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    return Response(body, status_code=status, media_type="text/html")


def _server_error_fault(now: datetime) -> Response:
    body = {
        "Fault": {
            "Error": [
                {
                    "Message": "message=InternalServerError; errorCode=003100; statusCode=500",
                    "Detail": "An application error has occurred while processing your request.",
                    "code": "3100",
                    "element": "",
                }
            ],
            "type": "SERVICE",
        },
        "time": now.isoformat(timespec="milliseconds"),
    }
    return Response(simplejson.dumps(body), status_code=500, media_type="application/json")


class Chaos:
    """ASGI middleware injecting the current `FaultPlan`'s faults into v3 requests."""

    def __init__(
        self,
        app: ASGIApp,
        plan: FaultPlan,
        *,
        default_seed: int,
        clock: Clock,
        tz_for: Callable[[str], tzinfo],
    ) -> None:
        self.app = app
        self._default_seed = default_seed
        self._clock = clock
        self._tz_for = tz_for
        self._plan = plan
        self._sequence: dict[str, int] = defaultdict(int)
        self.injected: dict[str, int] = defaultdict(int)
        self.injected_by_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    @property
    def plan(self) -> FaultPlan:
        return self._plan

    @plan.setter
    def plan(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._sequence.clear()

    @property
    def seed(self) -> int:
        return self._plan.seed if self._plan.seed is not None else self._default_seed

    def stats(self) -> dict[str, Any]:
        return {
            "injected": dict(self.injected),
            "injected_total": sum(v for k, v in self.injected.items() if k != "latency"),
            "injected_by_operation": {kind: dict(c) for kind, c in self.injected_by_kind.items()},
        }

    def _count(self, kind: str, fault: str) -> None:
        self.injected[fault] += 1
        self.injected_by_kind[kind][fault] += 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        plan = self._plan
        kind = operation_kind(scope["method"], target.subpath)
        rule = plan.rule_for(kind, scope["method"], target.subpath)
        # Every request takes a sequence number, faulted or not, so the n-th request's fate
        # depends only on the seed and n.
        number = self._sequence[target.realm_id]
        self._sequence[target.realm_id] = number + 1
        rng = random.Random(f"{self.seed}:{target.realm_id}:{number}")
        fault = rule.pick(rng.random())
        variant = rng.random()
        if rule.latency is not None:
            self._count(kind, "latency")
            await asyncio.sleep(rule.latency.seconds(rng))
        now = self._clock.now().astimezone(self._tz_for(target.realm_id))

        if fault is None:
            await self.app(scope, receive, send)
        elif fault == "429":
            self._count(kind, "429")
            await throttle_response(now, plan.retry_after_seconds)(scope, receive, send)
        elif fault == "5xx":
            answer = plan.error_variant(variant)
            self._count(kind, answer)
            response = _html_page(503, "Service Temporarily Unavailable") if answer == "503" else _server_error_fault(now)
            await response(scope, receive, send)
        elif fault == "hang":
            self._count(kind, "hang")
            if await _hang_until_client_leaves(receive, plan.hang_seconds):
                await _html_page(504, "Gateway Time-out")(scope, receive, send)
        else:
            await self._lose_response(scope, receive, send, kind, plan.lost_variant(variant))

    async def _lose_response(self, scope: Scope, receive: Receive, send: Send, kind: str, how: str) -> None:
        """Runs the request to completion (it commits), then withholds the answer."""
        start: Message | None = None
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))

        await self.app(scope, receive, capture)
        if how == "dropped" and start is not None and body:
            self._count(kind, "lost_dropped")
            # Headers and half the body, then the connection goes: over HTTP the client reads a
            # truncated response ("peer closed connection without sending complete message body").
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": bytes(body[: len(body) // 2]), "more_body": True})
            raise ResponseLost(
                "QBO sandbox dropped the connection after applying the request "
                "(injected 'response lost' fault): the write was committed; resolve it with the same requestid or a query"
            )
        if how == "502":
            self._count(kind, "lost_502")
            await _html_page(502, "Bad Gateway")(scope, receive, send)
        else:
            self._count(kind, "lost_504")
            await _html_page(504, "Gateway Time-out")(scope, receive, send)


async def _hang_until_client_leaves(receive: Receive, seconds: float) -> bool:
    """Waits without answering; True if `seconds` passed with the client still connected.

    Over HTTP the server reports the client's disconnect through `receive`; in-process the client
    gives up by cancelling, which cancels this wait too.
    """

    async def client_gone() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    try:
        await asyncio.wait_for(client_gone(), timeout=seconds)
    except TimeoutError:
        return True
    return False
