"""Locks with expiry, in memory and on Redis (two lock objects stand for two processes)."""

from __future__ import annotations

import asyncio
import time

import pytest

from sync.backends import Backend
from sync.locks import DistributedLock, LockTimeout, lock_factory


async def test_mutual_exclusion_across_two_holders(backend: Backend, peer_backend: Backend) -> None:
    first = DistributedLock(backend, "refresh:9130", ttl=5)
    second = DistributedLock(peer_backend, "refresh:9130", ttl=5)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await first.is_held() and not await second.is_held()
    assert not await second.release()  # cannot release what it does not hold
    assert await first.release()
    assert await second.try_acquire()
    await second.release()


async def test_only_one_critical_section_runs_at_a_time(
    backend: Backend, peer_backend: Backend
) -> None:
    make_here, make_there = lock_factory(backend, ttl=5), lock_factory(peer_backend, ttl=5)
    inside, most_inside, entered = 0, 0, 0

    async def refresh(make) -> None:
        nonlocal inside, most_inside, entered
        async with make("refresh:9130"):
            inside += 1
            entered += 1
            most_inside = max(most_inside, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(refresh(make_here if i % 2 else make_there) for i in range(8)))
    assert entered == 8 and most_inside == 1


async def test_an_abandoned_lock_expires(backend: Backend, peer_backend: Backend) -> None:
    crashed = DistributedLock(backend, "leader", ttl=0.2)
    assert await crashed.try_acquire()  # and its process dies without releasing
    successor = DistributedLock(peer_backend, "leader", ttl=0.2)
    assert not await successor.try_acquire()
    await asyncio.sleep(0.3)
    assert await successor.try_acquire()
    assert not await crashed.renew()  # the old holder learns it lost the lock
    await successor.release()


async def test_renewal_keeps_a_lock_past_its_ttl(backend: Backend, peer_backend: Backend) -> None:
    holder = DistributedLock(backend, "leader", ttl=0.3)
    rival = DistributedLock(peer_backend, "leader", ttl=0.3)
    async with holder:  # renews every ttl/3 while the body runs
        await asyncio.sleep(0.5)
        assert await holder.is_held()
        assert not await rival.try_acquire()
    assert await rival.try_acquire()
    await rival.release()


async def test_waiting_is_bounded_with_a_clear_error(
    backend: Backend, peer_backend: Backend
) -> None:
    holder = DistributedLock(backend, "refresh:1", ttl=5)
    await holder.try_acquire()
    waiter = DistributedLock(peer_backend, "refresh:1", ttl=5)
    with pytest.raises(LockTimeout, match="another process holds it"):
        await waiter.acquire(wait_seconds=0.1)
    await holder.release()
    await waiter.acquire(wait_seconds=1)
    await waiter.release()


async def test_a_cancelled_wait_leaves_no_lock_behind(
    backend: Backend, peer_backend: Backend
) -> None:
    """Cancel after 0, 1, 2, ... event-loop turns, including while the backend's reply is on its way."""
    for turns in range(10):
        contender = DistributedLock(backend, "refresh:cancel", ttl=5)
        task = asyncio.create_task(contender.acquire(wait_seconds=1))
        for _ in range(turns):
            await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        else:
            await contender.release()  # it won before the cancellation arrived
        bystander = DistributedLock(peer_backend, "refresh:cancel", ttl=5)
        assert await bystander.try_acquire(), f"lock left behind after {turns} turns"
        await bystander.release()


async def test_a_holder_that_stalls_past_its_ttl_learns_it_lost_the_lock(
    backend: Backend, peer_backend: Backend
) -> None:
    holder = DistributedLock(backend, "leader", ttl=0.15)
    rival = DistributedLock(peer_backend, "leader", ttl=5)
    async with holder:
        # A stalled process: the event loop is blocked, so nothing renews the lock.
        time.sleep(0.25)  # noqa: ASYNC251
        assert await rival.try_acquire()
        await asyncio.sleep(0.1)  # the renewer wakes, finds the lock gone
        assert holder.lost
        assert not await holder.is_held()
    assert await rival.is_held(), "the old holder's exit must not release the new holder's lock"
    await rival.release()
