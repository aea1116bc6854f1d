"""The per-realm rate limiter, in memory and on Redis, with QuickBooks' limits scaled down in time.

A 60-second window is scaled to 1 s or less, so each test runs for at most about 2 s per backend.
Grant times are read from the limiter itself (`Slot.granted_at`, the backend's clock), so the
window checks are exact; wall-clock bounds are only generous sanity limits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

import pytest

from sync.backends import Backend, MemoryBackend
from sync.ratelimit import (
    Priority,
    RateLimitConfig,
    RateLimitTimeout,
    RealmRateLimiter,
    Slot,
)

REALM = "9130350000000001"

# The bound this file shows for a user action issued while background work saturates its share:
# it is granted on its first request to the backend (one Redis round trip), without waiting.
# The wall-clock assertion below is deliberately generous for loaded CI machines.
USER_ACTION_START_BOUND_SECONDS = 0.25


def max_in_any_window(times: Iterable[float], window: float) -> int:
    """The most grants inside any half-open window [t, t + window) (the limiter's own definition)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while ordered[start] <= moment - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def count_between(times: Iterable[float], start: float, end: float) -> int:
    return sum(1 for moment in times if start <= moment < end)


@dataclass
class InFlight:
    """Counts requests inside their slots, as QuickBooks would see them.

    A request counts from just after its grant to just before its release, so these counts never
    exceed what the limiter holds: a peak here is a peak there.
    """

    now: dict[Priority, int] = field(default_factory=lambda: dict.fromkeys(Priority, 0))
    peak_total: int = 0
    peak_bulk: int = 0
    peak_background: int = 0  # bulk + data fetch

    def enter(self, priority: Priority) -> None:
        self.now[priority] += 1
        self.peak_total = max(self.peak_total, sum(self.now.values()))
        self.peak_bulk = max(self.peak_bulk, self.now[Priority.BULK])
        background = self.now[Priority.BULK] + self.now[Priority.DATA_FETCH]
        self.peak_background = max(self.peak_background, background)

    def leave(self, priority: Priority) -> None:
        self.now[priority] -= 1


async def backlog(
    limiter: RealmRateLimiter,
    priority: Priority,
    *,
    until: float,
    hold: float,
    grants: list[Slot],
    in_flight: InFlight,
    workers: int = 20,
) -> None:
    """`workers` tasks asking for slots back to back until `until` (loop time): a standing backlog."""
    loop = asyncio.get_running_loop()

    async def worker() -> None:
        while (remaining := until - loop.time()) > 0:
            try:
                async with limiter.slot(REALM, priority, timeout=remaining) as slot:
                    grants.append(slot)
                    in_flight.enter(priority)
                    try:
                        await asyncio.sleep(hold)
                    finally:
                        in_flight.leave(priority)
            except RateLimitTimeout:
                return

    await asyncio.gather(*(worker() for _ in range(workers)))


async def test_bulk_backlog_uses_its_share_of_the_limit_and_no_more_while_user_actions_start_at_once(
    backend: Backend,
) -> None:
    config = RateLimitConfig(requests_per_window=100, window_seconds=1.0, max_concurrency=10)
    bulk_rate_cap, bulk_concurrency_cap = config.caps(Priority.BULK)
    assert (bulk_rate_cap, bulk_concurrency_cap) == (70, 7)
    limiter = RealmRateLimiter(backend, config)
    loop = asyncio.get_running_loop()
    span = 2 * config.window_seconds
    bulk: list[Slot] = []
    in_flight = InFlight()

    async def user_action_after(delay: float) -> Slot:
        await asyncio.sleep(delay)
        async with limiter.slot(REALM, Priority.USER_ACTION, timeout=5) as slot:
            return slot

    started = loop.time()
    # Each bulk request holds its slot 20 ms, so bulk work also fills its 7 concurrent slots.
    _, during_burst, while_window_full = await asyncio.gather(
        backlog(
            limiter,
            Priority.BULK,
            until=started + span,
            hold=0.02,
            grants=bulk,
            in_flight=in_flight,
        ),
        user_action_after(0.05),
        user_action_after(0.5),
    )

    times = [slot.granted_at for slot in bulk]
    first = min(times)
    assert max_in_any_window(times, config.window_seconds) <= bulk_rate_cap
    used = count_between(times, first, first + span)
    assert used >= 0.9 * bulk_rate_cap * span / config.window_seconds, (
        f"bulk used {used} grants in {span} s; its share allows {bulk_rate_cap} per window"
    )
    assert in_flight.peak_bulk <= bulk_concurrency_cap
    for user_slot in (during_burst, while_window_full):
        assert user_slot.attempts == 1, "a user action must be granted on its first request"
        assert user_slot.waited_seconds < USER_ACTION_START_BOUND_SECONDS
    assert limiter.counters[Priority.USER_ACTION].waited == 0
    assert limiter.counters[Priority.BULK].waited > 0


async def test_mixed_backlog_uses_the_whole_limit_without_exceeding_it(backend: Backend) -> None:
    # Modest rates, so a busy test machine can still issue every grant the budget allows.
    config = RateLimitConfig(requests_per_window=24, window_seconds=0.5, max_concurrency=10)
    limiter = RealmRateLimiter(backend, config)
    loop = asyncio.get_running_loop()
    span = 2 * config.window_seconds
    grants: list[Slot] = []
    in_flight = InFlight()
    until = loop.time() + span
    await asyncio.gather(
        *(
            backlog(
                limiter,
                priority,
                until=until,
                hold=0.005,
                grants=grants,
                in_flight=in_flight,
                workers=8,
            )
            for priority in Priority
        )
    )

    times = [slot.granted_at for slot in grants]
    assert max_in_any_window(times, config.window_seconds) <= config.requests_per_window
    used = count_between(times, min(times), min(times) + span)
    assert used >= 0.9 * config.requests_per_window * span / config.window_seconds
    for priority in (Priority.BULK, Priority.DATA_FETCH):
        own = [slot.granted_at for slot in grants if slot.priority is priority]
        assert max_in_any_window(own, config.window_seconds) <= config.caps(priority)[0]
    assert in_flight.peak_total <= config.max_concurrency


async def test_concurrency_cap_is_never_exceeded_and_background_leaves_slots_free(
    backend: Backend,
) -> None:
    config = RateLimitConfig(requests_per_window=10_000, window_seconds=1.0, max_concurrency=10)
    limiter = RealmRateLimiter(backend, config)
    in_flight = InFlight()

    async def request(priority: Priority, hold: float) -> None:
        async with limiter.slot(REALM, priority, timeout=5):
            in_flight.enter(priority)
            try:
                await asyncio.sleep(hold)
            finally:
                in_flight.leave(priority)

    priorities = [Priority.BULK, Priority.DATA_FETCH, Priority.USER_ACTION] * 15
    await asyncio.gather(*(request(p, 0.03 + (i % 4) * 0.01) for i, p in enumerate(priorities)))

    assert in_flight.peak_total <= config.max_concurrency
    # Background work never holds more than its share, so user actions always find a slot.
    assert in_flight.peak_bulk <= config.caps(Priority.BULK)[1]
    assert in_flight.peak_background <= config.caps(Priority.DATA_FETCH)[1]
    stats = await limiter.stats(REALM)
    assert stats.in_flight == 0
    assert stats.used_in_window == len(priorities)
    assert limiter.totals().granted == len(priorities)


async def test_each_priority_fills_exactly_its_share_of_the_concurrency(backend: Backend) -> None:
    """Requests that hold their slots until told: bulk gets 7 of 10, data fetch 8, user actions all 10."""
    config = RateLimitConfig(requests_per_window=10_000, window_seconds=1.0, max_concurrency=10)
    limiter = RealmRateLimiter(backend, config)
    inside: dict[Priority, int] = dict.fromkeys(Priority, 0)
    finish = asyncio.Event()

    async def request(priority: Priority) -> None:
        async with limiter.slot(REALM, priority, timeout=10):
            inside[priority] += 1
            await finish.wait()

    async def settle(expected_in_flight: int) -> None:
        # Wait until the backend holds that many, then give waiters time to (wrongly) get more.
        async with asyncio.timeout(5):
            # Polling the backend on purpose: on Redis its state is outside this process.
            while (await limiter.stats(REALM)).in_flight < expected_in_flight:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)

    tasks = [asyncio.create_task(request(Priority.BULK)) for _ in range(10)]
    await settle(7)
    assert inside[Priority.BULK] == 7
    tasks += [asyncio.create_task(request(Priority.DATA_FETCH)) for _ in range(10)]
    await settle(8)
    assert (inside[Priority.BULK], inside[Priority.DATA_FETCH]) == (7, 1)
    tasks += [asyncio.create_task(request(Priority.USER_ACTION)) for _ in range(5)]
    await settle(10)
    assert inside == {Priority.BULK: 7, Priority.DATA_FETCH: 1, Priority.USER_ACTION: 2}
    assert (await limiter.stats(REALM)).in_flight == config.max_concurrency

    finish.set()
    await asyncio.gather(*tasks)
    assert sum(inside.values()) == len(tasks)
    assert (await limiter.stats(REALM)).in_flight == 0


async def test_back_off_blocks_every_priority_until_it_ends(backend: Backend) -> None:
    limiter = RealmRateLimiter(backend, RateLimitConfig(jitter_seconds=0.001))
    loop = asyncio.get_running_loop()
    remaining = await limiter.back_off(REALM, 0.3)
    assert 0.25 < remaining <= 0.3 + 1e-6
    assert (await limiter.stats(REALM)).back_off_remaining > 0.2
    # A back-off is never shortened by a later, shorter one.
    assert await limiter.back_off(REALM, 0.05) > 0.2

    with pytest.raises(RateLimitTimeout, match="429") as refused:
        async with limiter.slot(REALM, Priority.USER_ACTION, timeout=0.1):
            pass
    assert refused.value.waited < 0.1, "a wait known to outlast the timeout fails at once"

    started = loop.time()

    async def first_request(priority: Priority) -> float:
        async with limiter.slot(REALM, priority, timeout=2):
            return loop.time() - started

    waits = await asyncio.gather(*(first_request(priority) for priority in Priority))
    assert all(wait >= 0.2 for wait in waits), waits
    assert all(wait < 1.5 for wait in waits), waits
    assert (await limiter.stats(REALM)).back_off_remaining == 0
    assert limiter.counters[Priority.USER_ACTION].timed_out == 1


async def test_a_cancelled_waiter_leaves_no_slot_or_token_behind(backend: Backend) -> None:
    config = RateLimitConfig(requests_per_window=100, window_seconds=10, max_concurrency=2)
    limiter = RealmRateLimiter(backend, config)
    held = [await limiter.acquire(REALM, Priority.USER_ACTION, timeout=1) for _ in range(2)]

    waiter = asyncio.create_task(limiter.acquire(REALM, Priority.USER_ACTION, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiter.done(), "the waiter should be waiting for a concurrency slot"
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    stats = await limiter.stats(REALM)
    assert (stats.in_flight, stats.used_in_window) == (2, 2)
    assert limiter.counters[Priority.USER_ACTION].cancelled == 1

    with pytest.raises(RateLimitTimeout, match="concurrent-request slot"):
        await limiter.acquire(REALM, Priority.USER_ACTION, timeout=0.05)

    for slot in held:
        await limiter.release(slot)
        await limiter.release(slot)  # releasing twice is harmless
    assert (await limiter.stats(REALM)).in_flight == 0


async def test_cancellation_at_any_point_of_a_grant_reserves_nothing(backend: Backend) -> None:
    """Cancel after 0, 1, 2, ... event-loop turns, including while the backend's reply is on its way."""
    limiter = RealmRateLimiter(
        backend, RateLimitConfig(requests_per_window=1000, window_seconds=60)
    )
    kept = 0
    for turns in range(12):
        task = asyncio.create_task(limiter.acquire(REALM, Priority.BULK, timeout=5))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            slot = await task
        except asyncio.CancelledError:
            continue
        kept += 1  # granted before the cancellation arrived: an ordinary slot, released normally
        await limiter.release(slot)
    stats = await limiter.stats(REALM)
    assert stats.in_flight == 0
    assert stats.used_in_window == kept


async def test_cancelling_the_body_releases_the_slot(backend: Backend) -> None:
    limiter = RealmRateLimiter(backend, RateLimitConfig(max_concurrency=1))
    entered = asyncio.Event()

    async def slow_request() -> None:
        async with limiter.slot(REALM, Priority.USER_ACTION, timeout=1):
            entered.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(slow_request())
    await entered.wait()
    assert (await limiter.stats(REALM)).in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await limiter.stats(REALM)).in_flight == 0
    async with limiter.slot(REALM, Priority.USER_ACTION, timeout=0.2) as slot:
        assert slot.attempts == 1


async def test_an_exception_in_the_body_releases_the_slot(backend: Backend) -> None:
    limiter = RealmRateLimiter(backend, RateLimitConfig(max_concurrency=1))
    with pytest.raises(RuntimeError, match="QuickBooks said no"):
        async with limiter.slot(REALM, Priority.USER_ACTION, timeout=1):
            raise RuntimeError("QuickBooks said no")
    assert (await limiter.stats(REALM)).in_flight == 0


async def test_a_slot_whose_holder_stopped_renewing_expires(backend: Backend) -> None:
    config = RateLimitConfig(max_concurrency=1, lease_seconds=0.2, poll_seconds=0.02)
    limiter = RealmRateLimiter(backend, config)
    orphan = await limiter.acquire(REALM, Priority.USER_ACTION, timeout=1)
    # What a crashed process does: it stops renewing and never releases.
    assert orphan._keeper is not None
    orphan._keeper.cancel()

    async with limiter.slot(REALM, Priority.USER_ACTION, timeout=2) as slot:
        assert 0.1 < slot.waited_seconds < 1.5


async def test_a_held_slot_is_renewed_while_its_request_runs(backend: Backend) -> None:
    config = RateLimitConfig(max_concurrency=1, lease_seconds=0.15, poll_seconds=0.02)
    limiter = RealmRateLimiter(backend, config)
    async with limiter.slot(REALM, Priority.USER_ACTION, timeout=1):
        await asyncio.sleep(0.4)  # well past the lease: renewals keep it
        assert (await limiter.stats(REALM)).in_flight == 1
        with pytest.raises(RateLimitTimeout):
            await limiter.acquire(REALM, Priority.USER_ACTION, timeout=0.05)


async def test_two_limiters_on_one_store_share_one_budget(
    backend: Backend, peer_backend: Backend
) -> None:
    """Two limiter instances, as two processes would have, draw on one window and one concurrency cap."""
    config = RateLimitConfig(requests_per_window=16, window_seconds=0.5, max_concurrency=4)
    first = RealmRateLimiter(backend, config)
    second = RealmRateLimiter(peer_backend, config)
    loop = asyncio.get_running_loop()
    span = 2 * config.window_seconds
    grants: list[Slot] = []
    in_flight = InFlight()
    until = loop.time() + span
    await asyncio.gather(
        backlog(
            first,
            Priority.USER_ACTION,
            until=until,
            hold=0.01,
            grants=grants,
            in_flight=in_flight,
            workers=6,
        ),
        backlog(
            second,
            Priority.USER_ACTION,
            until=until,
            hold=0.01,
            grants=grants,
            in_flight=in_flight,
            workers=6,
        ),
    )

    times = [slot.granted_at for slot in grants]
    assert max_in_any_window(times, config.window_seconds) <= config.requests_per_window
    assert in_flight.peak_total <= config.max_concurrency
    assert first.totals().granted > 0 and second.totals().granted > 0
    assert first.totals().granted + second.totals().granted == len(grants)
    assert (
        count_between(times, min(times), min(times) + span) >= 0.9 * 2 * config.requests_per_window
    )


async def test_realms_have_separate_budgets(backend: Backend) -> None:
    limiter = RealmRateLimiter(backend, RateLimitConfig(requests_per_window=2, window_seconds=10))
    for _ in range(2):
        async with limiter.slot("realm-a", Priority.USER_ACTION, timeout=1):
            pass
    with pytest.raises(RateLimitTimeout, match="requests-per-window"):
        await limiter.acquire("realm-a", Priority.USER_ACTION, timeout=0.5)
    async with limiter.slot("realm-b", Priority.USER_ACTION, timeout=0.5) as slot:
        assert slot.attempts == 1
    assert (await limiter.stats("realm-a")).used_in_window == 2
    assert (await limiter.stats("realm-b")).used_in_window == 1


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="BULK"):
        RateLimitConfig(
            shares={Priority.USER_ACTION: 1.0, Priority.DATA_FETCH: 0.85, Priority.BULK: 0}
        )
    with pytest.raises(ValueError, match="at least 1"):
        RateLimitConfig(max_concurrency=0)
    assert RateLimitConfig().caps(Priority.BULK) == (350, 7)
    assert RateLimitConfig().caps(Priority.DATA_FETCH) == (425, 8)
    assert RateLimitConfig().caps(Priority.USER_ACTION) == (500, 10)


def test_one_limiter_serves_successive_event_loops() -> None:
    """A command-line run or a scheduler may start a fresh event loop with the same limiter."""
    limiter = RealmRateLimiter(MemoryBackend(), RateLimitConfig(max_concurrency=1))

    async def three_contending_requests() -> int:
        async def request() -> None:
            async with limiter.slot(REALM, Priority.BULK, timeout=2):
                await asyncio.sleep(0.01)

        await asyncio.gather(*(request() for _ in range(3)))
        return limiter.totals().granted

    assert asyncio.run(three_contending_requests()) == 3
    assert asyncio.run(three_contending_requests()) == 6
