"""The per-realm rate limiter every QuickBooks Online call waits on.

QuickBooks allows about 500 requests per minute and 10 concurrent requests per company (realm), and
answers 429 beyond that. `RealmRateLimiter` keeps every process under both limits at once:

- a sliding window (a log of grant times): at most `requests_per_window` grants in any window;
- a concurrency cap: at most `max_concurrency` requests in flight, each slot a lease that expires, so
  a crashed process cannot hold slots for ever (a held slot is renewed while its request runs);
- priorities: background work (DATA_FETCH, BULK) may use only a share of both budgets, so the rest is
  always free for USER_ACTION and a click never queues behind a digest run;
- `back_off(realm, seconds)` after a 429 makes the whole realm wait, in every process.

On Redis the check-and-grant is one Lua script timed by Redis's own clock (`TIME`), so processes on
different machines agree; in memory the same rules run on the injected clock. Waiting does not spin:
a waiter sleeps until the time the backend says the next token is due (plus a little jitter), or until
a slot is released in this process.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from sync.backends import (
    Backend,
    MemoryBackend,
    RedisBackend,
    Wakeup,
    finish_even_if_cancelled,
    key_part,
)
from sync.clock import Clock, SystemClock
from sync.errors import QuickBooksUnavailable

log = logging.getLogger(__name__)


class Priority(enum.Enum):
    """Who is waiting: a person who clicked, a screen that needs data, or background work."""

    USER_ACTION = "user_action"
    DATA_FETCH = "data_fetch"
    BULK = "bulk"


DEFAULT_SHARES: Mapping[Priority, float] = MappingProxyType(
    {Priority.USER_ACTION: 1.0, Priority.DATA_FETCH: 0.85, Priority.BULK: 0.70}
)


class RateLimitError(QuickBooksUnavailable):
    """Base of the limiter's errors; the request was not sent to QuickBooks and can be later."""


class RateLimitTimeout(RateLimitError):
    """No slot became free within the caller's timeout. The request was not sent; it can be retried."""

    def __init__(
        self, realm_id: str, priority: Priority, waited: float, timeout: float, reason: str
    ) -> None:
        self.realm_id = realm_id
        self.priority = priority
        self.waited = waited
        self.timeout = timeout
        self.reason = reason
        super().__init__(
            f"no QuickBooks request slot for realm {realm_id} ({priority.value}) within "
            f"{timeout:.3g} s (waited {waited:.3g} s): {reason}. The request was not sent; "
            "retry later or queue it as background work"
        )


@dataclass(frozen=True)
class RateLimitConfig:
    """Limits per realm. Shares cap what a priority may use of the window and of the concurrency."""

    requests_per_window: int = 500
    window_seconds: float = 60.0
    max_concurrency: int = 10
    shares: Mapping[Priority, float] = field(default_factory=lambda: DEFAULT_SHARES)
    # An in-flight slot expires this long after its last renewal (a crashed process's slot frees itself).
    lease_seconds: float = 60.0
    default_timeout: float = 30.0
    default_back_off_seconds: float = 60.0
    # Longest sleep while waiting for a concurrency slot that another process may release.
    poll_seconds: float = 0.05
    jitter_seconds: float = 0.005

    def __post_init__(self) -> None:
        if self.requests_per_window < 1 or self.max_concurrency < 1:
            raise ValueError("requests_per_window and max_concurrency must be at least 1")
        if self.window_seconds <= 0 or self.lease_seconds <= 0 or self.poll_seconds <= 0:
            raise ValueError("window_seconds, lease_seconds and poll_seconds must be positive")
        for priority in Priority:
            share = self.shares.get(priority)
            if share is None or not 0 < share <= 1:
                raise ValueError(f"shares[{priority.name}] must be in (0, 1], got {share!r}")

    def caps(self, priority: Priority) -> tuple[int, int]:
        """(grants per window, concurrent requests) that `priority` may use, each at least 1."""
        share = self.shares[priority]
        rate_cap = max(1, math.floor(self.requests_per_window * share + 1e-9))
        concurrency_cap = max(1, math.floor(self.max_concurrency * share + 1e-9))
        return rate_cap, concurrency_cap


@dataclass
class Slot:
    """A granted request slot. `granted_at` is in seconds on the backend's clock."""

    realm_id: str
    priority: Priority
    slot_id: str
    granted_at: float
    waited_seconds: float
    attempts: int
    released: bool = False
    _keeper: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RealmStats:
    realm_id: str
    used_in_window: int
    in_flight: int
    requests_per_window: int
    max_concurrency: int
    back_off_remaining: float


@dataclass
class LimiterCounters:
    """What this limiter instance has done (per process; the shared budget is in `stats`)."""

    granted: int = 0
    waited: int = 0  # grants that had to wait at least once
    timed_out: int = 0
    cancelled: int = 0
    wait_seconds: float = 0.0

    def add(self, other: LimiterCounters) -> None:
        self.granted += other.granted
        self.waited += other.waited
        self.timed_out += other.timed_out
        self.cancelled += other.cancelled
        self.wait_seconds += other.wait_seconds


@dataclass(frozen=True)
class _Decision:
    granted: bool
    reason: str  # "granted" | "back_off" | "window" | "concurrency"
    retry_after: float  # seconds until it is worth asking again (0 when granted)
    used: int
    in_flight: int
    now: float  # the backend clock, seconds


_REASONS = {
    "back_off": "QuickBooks answered 429, so the realm is backing off",
    "window": "the requests-per-window budget for this priority is used up",
    "concurrency": "every concurrent-request slot this priority may use is taken",
}


class _LimiterStore(Protocol):
    #: What its calls raise when the store fails (the backend's `errors`).
    errors: tuple[type[Exception], ...]

    def wakeup(self, realm_id: str) -> Wakeup: ...

    async def try_acquire(
        self, realm_id: str, slot_id: str, rate_cap: int, concurrency_cap: int
    ) -> _Decision: ...

    async def release(self, realm_id: str, slot_id: str) -> None: ...

    async def cancel(self, realm_id: str, slot_id: str) -> None: ...

    async def renew(self, realm_id: str, slot_id: str) -> bool: ...

    async def back_off(self, realm_id: str, seconds: float) -> float: ...

    async def stats(self, realm_id: str) -> tuple[int, int, float]: ...


# --- in-process store -----------------------------------------------------------------------


@dataclass
class _RealmState:
    grants: deque[tuple[float, str]] = field(default_factory=deque)  # (time, slot id), oldest first
    in_flight: dict[str, float] = field(default_factory=dict)  # slot id -> lease expiry
    back_off_until: float = 0.0
    wakeup: Wakeup = field(default_factory=Wakeup)


class _MemoryLimiterStore:
    """The same rules as the Lua scripts, on dictionaries shared through the `MemoryBackend`."""

    def __init__(self, backend: MemoryBackend, config: RateLimitConfig, clock: Clock) -> None:
        self._realms: dict[str, _RealmState] = backend.state("ratelimit", dict)
        self.errors = backend.errors
        self._config = config
        self._clock = clock

    def _realm(self, realm_id: str) -> _RealmState:
        state = self._realms.get(realm_id)
        if state is None:
            state = self._realms[realm_id] = _RealmState()
        return state

    def wakeup(self, realm_id: str) -> Wakeup:
        # Shared by every limiter on this backend, so any release wakes every waiter.
        return self._realm(realm_id).wakeup

    def _trim(self, state: _RealmState, now: float) -> None:
        while state.grants and state.grants[0][0] <= now - self._config.window_seconds:
            state.grants.popleft()
        for slot_id in [s for s, expiry in state.in_flight.items() if expiry <= now]:
            log.warning("in-flight slot %s expired without being released", slot_id)
            del state.in_flight[slot_id]

    async def try_acquire(
        self, realm_id: str, slot_id: str, rate_cap: int, concurrency_cap: int
    ) -> _Decision:
        state = self._realm(realm_id)
        now = self._clock.monotonic()
        if state.back_off_until > now:
            return _Decision(False, "back_off", state.back_off_until - now, 0, 0, now)
        self._trim(state, now)
        used, in_flight = len(state.grants), len(state.in_flight)
        if used >= rate_cap:
            due = state.grants[used - rate_cap][0] + self._config.window_seconds
            return _Decision(False, "window", due - now, used, in_flight, now)
        if in_flight >= concurrency_cap:
            expiries = sorted(state.in_flight.values())
            due = expiries[in_flight - concurrency_cap]
            return _Decision(False, "concurrency", due - now, used, in_flight, now)
        state.grants.append((now, slot_id))
        state.in_flight[slot_id] = now + self._config.lease_seconds
        return _Decision(True, "granted", 0.0, used + 1, in_flight + 1, now)

    async def release(self, realm_id: str, slot_id: str) -> None:
        self._realm(realm_id).in_flight.pop(slot_id, None)

    async def cancel(self, realm_id: str, slot_id: str) -> None:
        state = self._realm(realm_id)
        state.in_flight.pop(slot_id, None)
        state.grants = deque(entry for entry in state.grants if entry[1] != slot_id)

    async def renew(self, realm_id: str, slot_id: str) -> bool:
        state = self._realm(realm_id)
        if slot_id not in state.in_flight:
            return False
        state.in_flight[slot_id] = self._clock.monotonic() + self._config.lease_seconds
        return True

    async def back_off(self, realm_id: str, seconds: float) -> float:
        state = self._realm(realm_id)
        now = self._clock.monotonic()
        state.back_off_until = max(state.back_off_until, now + seconds)
        return state.back_off_until - now

    async def stats(self, realm_id: str) -> tuple[int, int, float]:
        state = self._realm(realm_id)
        now = self._clock.monotonic()
        self._trim(state, now)
        return len(state.grants), len(state.in_flight), max(0.0, state.back_off_until - now)


# --- Redis store ----------------------------------------------------------------------------

# Times are integer microseconds from Redis TIME, exact in Lua's doubles.
_LUA_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: window zset (slot id scored by grant time), in-flight zset (slot id scored by lease expiry),
# back-off key (until, µs). ARGV: slot id, window µs, rate cap, concurrency cap, lease µs.
# Reply: {granted 0/1, reason, retry-after µs, used, in flight, now µs}.
_ACQUIRE_LUA = (
    _LUA_NOW
    + """
local window = tonumber(ARGV[2])
local rate_cap = tonumber(ARGV[3])
local concurrency_cap = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local back_off_until = tonumber(redis.call('GET', KEYS[3]) or '0')
if back_off_until > now then
  return {0, 'back_off', back_off_until - now, 0, 0, now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local used = redis.call('ZCARD', KEYS[1])
local in_flight = redis.call('ZCARD', KEYS[2])
if used >= rate_cap then
  local entry = redis.call('ZRANGE', KEYS[1], used - rate_cap, used - rate_cap, 'WITHSCORES')
  return {0, 'window', tonumber(entry[2]) + window - now, used, in_flight, now}
end
if in_flight >= concurrency_cap then
  local entry = redis.call('ZRANGE', KEYS[2], in_flight - concurrency_cap, in_flight - concurrency_cap, 'WITHSCORES')
  return {0, 'concurrency', tonumber(entry[2]) - now, used, in_flight, now}
end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(lease / 1000) + 1000)
return {1, 'granted', 0, used + 1, in_flight + 1, now}
"""
)

# KEYS: in-flight zset. ARGV: slot id, lease µs. Reply 1 when the slot was still held.
_RENEW_LUA = (
    _LUA_NOW
    + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) / 1000) + 1000)
return 1
"""
)

# KEYS: back-off key. ARGV: seconds µs. Never shortens a longer back-off. Reply: remaining µs.
_BACK_OFF_LUA = (
    _LUA_NOW
    + """
local wanted = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if wanted > current then
  redis.call('SET', KEYS[1], string.format('%d', wanted), 'PX', math.ceil((wanted - now) / 1000) + 1)
  current = wanted
end
return current - now
"""
)

# KEYS: window zset, in-flight zset, back-off key. ARGV: window µs. Reply: {used, in flight, back-off µs}.
_STATS_LUA = (
    _LUA_NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local back_off_until = tonumber(redis.call('GET', KEYS[3]) or '0')
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2]), math.max(0, back_off_until - now)}
"""
)

_MICRO = 1_000_000


class _RedisLimiterStore:
    def __init__(self, backend: RedisBackend, config: RateLimitConfig) -> None:
        self._backend = backend
        self._config = config
        self.errors = backend.errors
        client = backend.client
        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._renew = client.register_script(_RENEW_LUA)
        self._back_off = client.register_script(_BACK_OFF_LUA)
        self._stats = client.register_script(_STATS_LUA)
        # Only releases made by this process wake its waiters; others are seen by polling.
        self._wakeups: dict[str, Wakeup] = {}

    def wakeup(self, realm_id: str) -> Wakeup:
        wakeup = self._wakeups.get(realm_id)
        if wakeup is None:
            wakeup = self._wakeups[realm_id] = Wakeup()
        return wakeup

    def _keys(self, realm_id: str) -> tuple[str, str, str]:
        # The hash tag keeps one realm's keys in one Redis Cluster slot, as Lua scripts require.
        tag = "{" + key_part(realm_id) + "}"
        key = self._backend.key
        return key("rl", tag, "window"), key("rl", tag, "inflight"), key("rl", tag, "backoff")

    async def try_acquire(
        self, realm_id: str, slot_id: str, rate_cap: int, concurrency_cap: int
    ) -> _Decision:
        reply = await self._acquire(
            keys=self._keys(realm_id),
            args=[
                slot_id,
                round(self._config.window_seconds * _MICRO),
                rate_cap,
                concurrency_cap,
                round(self._config.lease_seconds * _MICRO),
            ],
        )
        granted, reason, retry_after, used, in_flight, now = reply
        retry = int(retry_after) / _MICRO
        if reason == "concurrency":
            retry = min(retry, self._config.poll_seconds)
        return _Decision(
            bool(granted), str(reason), retry, int(used), int(in_flight), int(now) / _MICRO
        )

    async def release(self, realm_id: str, slot_id: str) -> None:
        _, in_flight, _ = self._keys(realm_id)
        await self._backend.client.zrem(in_flight, slot_id)

    async def cancel(self, realm_id: str, slot_id: str) -> None:
        window, in_flight, _ = self._keys(realm_id)
        async with self._backend.client.pipeline(transaction=True) as pipe:
            pipe.zrem(in_flight, slot_id)
            pipe.zrem(window, slot_id)
            await pipe.execute()

    async def renew(self, realm_id: str, slot_id: str) -> bool:
        _, in_flight, _ = self._keys(realm_id)
        reply = await self._renew(
            keys=[in_flight], args=[slot_id, round(self._config.lease_seconds * _MICRO)]
        )
        return bool(reply)

    async def back_off(self, realm_id: str, seconds: float) -> float:
        _, _, back_off = self._keys(realm_id)
        reply = await self._back_off(keys=[back_off], args=[round(seconds * _MICRO)])
        return int(reply) / _MICRO

    async def stats(self, realm_id: str) -> tuple[int, int, float]:
        used, in_flight, back_off = await self._stats(
            keys=self._keys(realm_id), args=[round(self._config.window_seconds * _MICRO)]
        )
        return int(used), int(in_flight), int(back_off) / _MICRO


# --- the limiter ----------------------------------------------------------------------------


class RealmRateLimiter:
    """Grants request slots per QuickBooks realm; see the module docstring for the rules.

    `clock` times the in-process backend only (Redis uses its own clock); waiting is in real time.
    """

    def __init__(
        self,
        backend: Backend,
        config: RateLimitConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or RateLimitConfig()
        self._store: _LimiterStore
        if isinstance(backend, RedisBackend):
            self._store = _RedisLimiterStore(backend, self.config)
        else:
            self._store = _MemoryLimiterStore(backend, self.config, clock or SystemClock())
        self.counters: dict[Priority, LimiterCounters] = {p: LimiterCounters() for p in Priority}
        # One waiter per (realm, priority) asks the backend at a time, the rest queue behind it in
        # order, so a refill does not wake a herd and waiters are served first come, first served.
        # Kept per event loop: an asyncio.Lock belongs to the loop that first waited on it.
        self._turnstiles: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, Priority], asyncio.Lock]
        ] = weakref.WeakKeyDictionary()

    def totals(self) -> LimiterCounters:
        total = LimiterCounters()
        for counters in self.counters.values():
            total.add(counters)
        return total

    @asynccontextmanager
    async def slot(
        self,
        realm_id: str,
        priority: Priority = Priority.DATA_FETCH,
        *,
        # The limiter needs the timeout itself: to fail at once when a known wait outlasts it.
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[Slot]:
        """Wait for a rate token and a concurrency slot; hold the slot for the body, release it after.

        Raises `RateLimitTimeout` when none is free within `timeout` seconds (the config's default
        when None). Cancelling the waiter leaves nothing reserved.
        """
        granted = await self.acquire(realm_id, priority, timeout=timeout)
        try:
            yield granted
        finally:
            await finish_even_if_cancelled(self.release(granted))

    async def acquire(
        self,
        realm_id: str,
        priority: Priority = Priority.DATA_FETCH,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Slot:
        """The waiting half of `slot()`, for callers that release in another place (`release(slot)`)."""
        timeout = self.config.default_timeout if timeout is None else timeout
        rate_cap, concurrency_cap = self.config.caps(priority)
        counters = self.counters[priority]
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        attempts = 0
        last_reason = "the wait was cut short"
        try:
            async with asyncio.timeout_at(deadline):
                async with self._turnstile(realm_id, priority):
                    wakeup = self._store.wakeup(realm_id)
                    while True:
                        attempts += 1
                        slot_id = uuid.uuid4().hex
                        generation = wakeup.generation
                        decision = await self._ask(realm_id, slot_id, rate_cap, concurrency_cap)
                        if decision.granted:
                            break
                        last_reason = _REASONS[decision.reason]
                        delay = decision.retry_after + random.uniform(0, self.config.jitter_seconds)
                        if decision.reason != "concurrency" and loop.time() + delay > deadline:
                            # The wait is known to outlast the timeout: say so now, not at the deadline.
                            raise RateLimitTimeout(
                                realm_id,
                                priority,
                                loop.time() - started,
                                timeout,
                                f"{last_reason} for another {decision.retry_after:.3g} s",
                            )
                        # The deadline is checked here too, not only by asyncio.timeout_at: a
                        # cancellation swallowed inside the Redis client must not make the wait endless.
                        left = deadline - loop.time()
                        if left <= 0:
                            raise TimeoutError
                        await wakeup.wait(min(delay, left), since=generation)
        except RateLimitTimeout:
            counters.timed_out += 1
            raise
        except TimeoutError:
            counters.timed_out += 1
            raise RateLimitTimeout(
                realm_id, priority, loop.time() - started, timeout, last_reason
            ) from None
        except asyncio.CancelledError:
            counters.cancelled += 1
            raise
        waited = loop.time() - started
        counters.granted += 1
        if attempts > 1:
            counters.waited += 1
            counters.wait_seconds += waited
        slot = Slot(realm_id, priority, slot_id, decision.now, waited, attempts)
        slot._keeper = asyncio.create_task(self._keep_alive(slot))
        return slot

    async def release(self, slot: Slot) -> None:
        """Free `slot`'s concurrency place (its rate token stays spent). Releasing twice is harmless."""
        if slot.released:
            return
        slot.released = True
        if slot._keeper is not None:
            slot._keeper.cancel()
        try:
            await self._store.release(slot.realm_id, slot.slot_id)
        finally:
            self._store.wakeup(slot.realm_id).notify_all()

    async def back_off(self, realm_id: str, seconds: float | None = None) -> float:
        """After a 429: no request for this realm starts, in any process, for `seconds`.

        `seconds` is QuickBooks' Retry-After, or the configured default (60 s) when it sent none.
        Never shortens a back-off already in force. Returns the seconds left.
        """
        seconds = self.config.default_back_off_seconds if seconds is None else seconds
        if seconds <= 0:
            raise ValueError(f"back-off must be positive, got {seconds} s")
        remaining = await self._store.back_off(realm_id, seconds)
        log.warning("realm %s backs off for %.1f s after a 429", realm_id, remaining)
        return remaining

    async def stats(self, realm_id: str) -> RealmStats:
        used, in_flight, back_off = await self._store.stats(realm_id)
        return RealmStats(
            realm_id,
            used,
            in_flight,
            self.config.requests_per_window,
            self.config.max_concurrency,
            back_off,
        )

    def _turnstile(self, realm_id: str, priority: Priority) -> asyncio.Lock:
        turnstiles = self._turnstiles.setdefault(asyncio.get_running_loop(), {})
        lock = turnstiles.get((realm_id, priority))
        if lock is None:
            lock = turnstiles[(realm_id, priority)] = asyncio.Lock()
        return lock

    async def _ask(
        self, realm_id: str, slot_id: str, rate_cap: int, concurrency_cap: int
    ) -> _Decision:
        try:
            return await self._store.try_acquire(realm_id, slot_id, rate_cap, concurrency_cap)
        except BaseException:
            # Cancelled (or failed) while the grant was on its way: the backend may have granted it,
            # so take the slot and its token back; the request was never sent.
            try:
                await finish_even_if_cancelled(self._store.cancel(realm_id, slot_id))
            except self._store.errors as error:
                log.error("could not return slot %s of realm %s: %s", slot_id, realm_id, error)
            else:
                self._store.wakeup(realm_id).notify_all()
            raise

    async def _keep_alive(self, slot: Slot) -> None:
        """Renew the slot's lease while its request runs, so only a crashed holder's slot expires."""
        interval = self.config.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                still_held = await self._store.renew(slot.realm_id, slot.slot_id)
            except self._store.errors as error:
                log.warning(
                    "could not renew slot %s of realm %s: %s", slot.slot_id, slot.realm_id, error
                )
                continue
            if not still_held:
                log.warning(
                    "slot %s of realm %s expired while its request ran; the realm may briefly "
                    "exceed its concurrency cap",
                    slot.slot_id,
                    slot.realm_id,
                )
                return
