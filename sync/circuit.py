"""A circuit breaker per QuickBooks company (realm), shared by every process on the same backend.

closed → open after `failure_threshold` consecutive failures (5xx, timeouts: the caller classifies);
open fails fast with `CircuitOpen` for `cooldown_seconds`; then half-open lets exactly one probe
through; the probe's success closes the circuit, its failure opens it again for another cool-down.
Any answer from QuickBooks (`record_success`) closes it: QuickBooks is up. Late failures of calls
that started before the circuit opened are counted but do not stretch the cool-down.

Times come from the injected clock's wall time (not `monotonic`), because processes sharing one Redis
share the wall clock but not each other's monotonic clocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from sync.backends import Backend, MemoryBackend, key_part
from sync.clock import Clock, SystemClock
from sync.errors import QuickBooksUnavailable

log = logging.getLogger(__name__)


class CircuitOpen(QuickBooksUnavailable):
    """QuickBooks is failing for this company; calls are refused until the cool-down ends."""

    def __init__(self, realm_id: str, retry_in: float, *, probing: bool = False) -> None:
        self.realm_id = realm_id
        self.retry_in = max(retry_in, 0.0)
        self.probing = probing
        why = (
            "a test call to QuickBooks is under way"
            if probing
            else f"QuickBooks failed repeatedly; calls resume in {self.retry_in:.0f} s"
        )
        super().__init__(
            f"QuickBooks calls for company {realm_id} are paused ({why}). Reads use the last "
            "known good data; writes stay queued and go through when QuickBooks answers again. "
            "Try again in a minute."
        )


class CircuitState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class CircuitConfig:
    failure_threshold: int = 5
    cooldown_seconds: float = 30.0
    # A probe that never reports back (its process died) stops blocking others after this long.
    probe_timeout_seconds: float = 30.0

    def __post_init__(self) -> None:
        if (
            self.failure_threshold < 1
            or self.cooldown_seconds <= 0
            or self.probe_timeout_seconds <= 0
        ):
            raise ValueError(
                "circuit settings need failure_threshold >= 1 and positive cool-down and probe timeout"
            )


# Replies are strings: Redis truncates Lua numbers to integers.
_CHECK = """
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '')
if not opened then return {'closed', '0'} end
local now = tonumber(ARGV[1])
local left = opened + tonumber(ARGV[2]) - now
if left > 0 then return {'open', tostring(left)} end
local probe = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if probe > now then return {'probing', tostring(probe - now)} end
redis.call('HSET', KEYS[1], 'probe_until', tostring(now + tonumber(ARGV[3])))
return {'probe', '0'}
"""

# ARGV: now, failure threshold, record TTL (s), cool-down (s). Reply: {state after, failures}, where
# the state is 'opened' when this failure opened (or re-opened) the circuit.
_FAILURE = """
local now = tonumber(ARGV[1])
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '')
local probing = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0') > 0
local cooling = opened and opened + tonumber(ARGV[4]) > now
local verdict = 'closed'
if opened then verdict = 'open' end
if probing or (not cooling and (opened or fails >= tonumber(ARGV[2]))) then
  redis.call('HSET', KEYS[1], 'opened_at', ARGV[1])
  redis.call('HDEL', KEYS[1], 'probe_until')
  verdict = 'opened'
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {verdict, fails}
"""

# Reply: 1 when the circuit was open or half-open (so closing it is worth a log line).
_SUCCESS = """
local was_open = redis.call('HEXISTS', KEYS[1], 'opened_at')
redis.call('DEL', KEYS[1])
return was_open
"""

_STATE = """
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '')
if not opened then return 'closed' end
if opened + tonumber(ARGV[2]) > tonumber(ARGV[1]) then return 'open' end
return 'half_open'
"""


@dataclass
class CircuitCounters:
    """What this breaker instance saw (per process)."""

    rejected: int = 0  # calls refused while open or while a probe was out
    probes: int = 0  # calls let through to test a recovering QuickBooks
    opened: int = 0  # times a failure opened (or re-opened) a circuit


@dataclass
class _Memory:
    fails: int = 0
    opened_at: float | None = None
    probe_until: float = 0.0


class CircuitBreaker:
    def __init__(
        self, backend: Backend, config: CircuitConfig | None = None, *, clock: Clock | None = None
    ) -> None:
        self.backend = backend
        self.config = config or CircuitConfig()
        self.clock: Clock = clock or SystemClock()
        self.counters = CircuitCounters()
        # In memory every transition runs without an await in between, so it is atomic.
        self._memory: dict[str, _Memory] | None = None
        if isinstance(backend, MemoryBackend):
            self._memory = backend.state("circuit", dict)
        else:
            client = backend.client
            self._check = client.register_script(_CHECK)
            self._failure = client.register_script(_FAILURE)
            self._success = client.register_script(_SUCCESS)
            self._state = client.register_script(_STATE)

    def _now(self) -> float:
        return self.clock.now().timestamp()

    def _key(self, realm_id: str) -> str:
        assert not isinstance(self.backend, MemoryBackend)
        return self.backend.key("circuit", key_part(realm_id))

    def _expiry_seconds(self) -> int:
        return int(self.config.cooldown_seconds * 10 + 3600)

    async def check(self, realm_id: str) -> None:
        """Return when a call may go ahead; raise `CircuitOpen` while the circuit refuses calls.

        After the cool-down exactly one caller (in any process) gets through as the probe.
        """
        verdict, seconds = await self._check_verdict(realm_id)
        if verdict == "open":
            self.counters.rejected += 1
            raise CircuitOpen(realm_id, seconds)
        if verdict == "probing":
            self.counters.rejected += 1
            raise CircuitOpen(realm_id, seconds, probing=True)
        if verdict == "probe":
            self.counters.probes += 1
            log.info("realm %s: cool-down over, one probe call goes to QuickBooks", realm_id)

    async def _check_verdict(self, realm_id: str) -> tuple[str, float]:
        now = self._now()
        cfg = self.config
        if self._memory is not None:
            state = self._memory.setdefault(realm_id, _Memory())
            if state.opened_at is None:
                return "closed", 0.0
            left = state.opened_at + cfg.cooldown_seconds - now
            if left > 0:
                return "open", left
            if state.probe_until > now:
                return "probing", state.probe_until - now
            state.probe_until = now + cfg.probe_timeout_seconds
            return "probe", 0.0
        verdict, seconds = await self._check(
            keys=[self._key(realm_id)],
            args=[repr(now), repr(cfg.cooldown_seconds), repr(cfg.probe_timeout_seconds)],
        )
        return str(verdict), float(seconds)

    async def record_success(self, realm_id: str) -> CircuitState:
        """QuickBooks answered (even with a validation fault or a 429): the circuit closes."""
        if self._memory is not None:
            was_open = self._memory.get(realm_id, _Memory()).opened_at is not None
            self._memory[realm_id] = _Memory()
        else:
            was_open = bool(await self._success(keys=[self._key(realm_id)]))
        if was_open:
            log.info("realm %s: QuickBooks answered again, circuit closed", realm_id)
        return CircuitState.CLOSED

    async def record_failure(self, realm_id: str) -> CircuitState:
        """A 5xx, timeout or dropped connection. Returns the state after counting it."""
        now = self._now()
        cfg = self.config
        if self._memory is not None:
            state = self._memory.setdefault(realm_id, _Memory())
            state.fails += 1
            opened = state.opened_at
            cooling = opened is not None and opened + cfg.cooldown_seconds > now
            fails = state.fails
            verdict = "closed" if opened is None else "open"
            if state.probe_until > 0 or (
                not cooling and (opened is not None or fails >= cfg.failure_threshold)
            ):
                state.opened_at = now
                state.probe_until = 0.0
                verdict = "opened"
        else:
            reply = await self._failure(
                keys=[self._key(realm_id)],
                args=[
                    repr(now),
                    cfg.failure_threshold,
                    self._expiry_seconds(),
                    repr(cfg.cooldown_seconds),
                ],
            )
            verdict, fails = str(reply[0]), int(reply[1])
        if verdict == "opened":
            self.counters.opened += 1
            log.warning(
                "realm %s: circuit opened after %d consecutive failures; QuickBooks calls pause for %g s",
                realm_id,
                fails,
                cfg.cooldown_seconds,
            )
            return CircuitState.OPEN
        return CircuitState.OPEN if verdict == "open" else CircuitState.CLOSED

    async def state(self, realm_id: str) -> CircuitState:
        """What a health check reports: closed, open, or half-open (a probe may go through)."""
        now = self._now()
        if self._memory is not None:
            state = self._memory.get(realm_id)
            if state is None or state.opened_at is None:
                return CircuitState.CLOSED
            if state.opened_at + self.config.cooldown_seconds > now:
                return CircuitState.OPEN
            return CircuitState.HALF_OPEN
        reply: Any = await self._state(
            keys=[self._key(realm_id)], args=[repr(now), self.config.cooldown_seconds]
        )
        return CircuitState(str(reply))
