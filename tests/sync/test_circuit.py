"""The per-realm circuit breaker, in memory and on Redis, with a clock the tests move."""

from __future__ import annotations

import pytest

from sync.backends import Backend
from sync.circuit import CircuitBreaker, CircuitConfig, CircuitOpen, CircuitState
from sync.clock import ManualClock

REALM = "9130350000000002"
CONFIG = CircuitConfig(failure_threshold=3, cooldown_seconds=30, probe_timeout_seconds=10)


async def test_opens_after_repeated_failures_and_fails_fast(backend: Backend) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    for _ in range(CONFIG.failure_threshold - 1):
        await breaker.record_failure(REALM)
        await breaker.check(REALM)  # still closed below the threshold
    await breaker.record_failure(REALM)
    assert await breaker.state(REALM) is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        await breaker.check(REALM)
    assert 29 <= refused.value.retry_in <= 30
    assert "writes stay queued" in str(refused.value)
    await breaker.check("another-realm")  # one company's outage does not stop another's calls


async def test_a_success_resets_the_failure_count(backend: Backend) -> None:
    breaker = CircuitBreaker(backend, CONFIG, clock=ManualClock())
    for _ in range(CONFIG.failure_threshold - 1):
        await breaker.record_failure(REALM)
    await breaker.record_success(REALM)
    for _ in range(CONFIG.failure_threshold - 1):
        await breaker.record_failure(REALM)
    await breaker.check(REALM)
    assert await breaker.state(REALM) is CircuitState.CLOSED


async def test_half_open_lets_one_probe_through_then_closes_on_success(
    backend: Backend, peer_backend: Backend
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    other_process = CircuitBreaker(peer_backend, CONFIG, clock=clock)
    for _ in range(CONFIG.failure_threshold):
        await breaker.record_failure(REALM)
    clock.advance(31)
    assert await breaker.state(REALM) is CircuitState.HALF_OPEN
    await breaker.check(REALM)  # the probe
    with pytest.raises(CircuitOpen) as second:
        await other_process.check(REALM)  # everyone else waits for the probe's verdict
    assert second.value.probing
    await breaker.record_success(REALM)
    await other_process.check(REALM)
    assert await other_process.state(REALM) is CircuitState.CLOSED


async def test_a_failed_probe_reopens_for_another_cooldown(backend: Backend) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    for _ in range(CONFIG.failure_threshold):
        await breaker.record_failure(REALM)
    clock.advance(31)
    await breaker.check(REALM)
    await breaker.record_failure(REALM)
    with pytest.raises(CircuitOpen) as refused:
        await breaker.check(REALM)
    assert refused.value.retry_in > 29 and not refused.value.probing


async def test_a_probe_that_never_reports_back_stops_blocking(backend: Backend) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    for _ in range(CONFIG.failure_threshold):
        await breaker.record_failure(REALM)
    clock.advance(31)
    await breaker.check(REALM)  # this probe's process dies
    with pytest.raises(CircuitOpen):
        await breaker.check(REALM)
    clock.advance(CONFIG.probe_timeout_seconds + 1)
    await breaker.check(REALM)  # a new probe may go


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitConfig(failure_threshold=0)


async def test_late_failures_do_not_stretch_the_cooldown(backend: Backend) -> None:
    """Calls that started before the circuit opened may fail afterwards; the pause stays as set."""
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    for _ in range(CONFIG.failure_threshold):
        await breaker.record_failure(REALM)
    clock.advance(20)
    assert await breaker.record_failure(REALM) is CircuitState.OPEN
    with pytest.raises(CircuitOpen) as refused:
        await breaker.check(REALM)
    assert 9 <= refused.value.retry_in <= 10
    clock.advance(11)
    await breaker.check(REALM)  # the probe goes at the original time


async def test_counters_and_returned_states_follow_the_transitions(
    backend: Backend, peer_backend: Backend
) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(backend, CONFIG, clock=clock)
    other_process = CircuitBreaker(peer_backend, CONFIG, clock=clock)
    states = [await breaker.record_failure(REALM) for _ in range(CONFIG.failure_threshold)]
    assert states == [CircuitState.CLOSED] * (CONFIG.failure_threshold - 1) + [CircuitState.OPEN]
    assert await other_process.state(REALM) is CircuitState.OPEN  # processes agree
    for _ in range(2):
        with pytest.raises(CircuitOpen):
            await other_process.check(REALM)
    clock.advance(31)
    await other_process.check(REALM)
    assert await other_process.record_success(REALM) is CircuitState.CLOSED
    assert await breaker.state(REALM) is CircuitState.CLOSED
    assert breaker.counters.opened == 1
    assert (other_process.counters.rejected, other_process.counters.probes) == (2, 1)
