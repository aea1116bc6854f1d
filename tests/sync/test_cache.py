"""SyncCache, in memory and on Redis: TTL, as-of times, invalidation, Decimal exactness, stale fallback."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from sync.backends import Backend
from sync.cache import SyncCache
from sync.clock import ManualClock

BUSINESS = "larkspur"
BILLS = {
    "bills": [
        {"Id": "41", "Balance": Decimal("1234.50"), "VendorRef": {"name": "O'Brien & <Sons>"}}
    ]
}


async def test_fresh_until_the_ttl_then_gone_but_last_good_remains(backend: Backend) -> None:
    clock = ManualClock()
    cache = SyncCache(backend, clock=clock, default_ttl=timedelta(minutes=240))
    stored = await cache.set(BUSINESS, "qbo", BILLS, key="bills")
    clock.advance(timedelta(minutes=239))
    hit = await cache.get(BUSINESS, "qbo", "bills")
    assert hit is not None and hit.value == BILLS
    assert hit.as_of == stored.as_of and hit.age == timedelta(minutes=239)
    clock.advance(timedelta(minutes=2))
    assert await cache.get(BUSINESS, "qbo", "bills") is None
    stale = await cache.get_stale(BUSINESS, "qbo", "bills")
    assert stale is not None and stale.value == BILLS and stale.is_stale(timedelta(minutes=240))
    assert cache.counters.hits == 1 and cache.counters.misses == 1


async def test_decimal_amounts_round_trip_exactly(backend: Backend) -> None:
    cache = SyncCache(backend, clock=ManualClock())
    await cache.set(
        BUSINESS, "qbo", {"amount": Decimal("0.10"), "big": Decimal("12345678901234.99")}
    )
    hit = await cache.get(BUSINESS, "qbo")
    assert hit is not None
    assert hit.value["amount"] == Decimal("0.10") and isinstance(hit.value["amount"], Decimal)
    assert str(hit.value["big"]) == "12345678901234.99"


async def test_invalidating_one_key_or_a_whole_platform(
    backend: Backend, peer_backend: Backend
) -> None:
    clock = ManualClock()
    cache = SyncCache(backend, clock=clock)
    other_process = SyncCache(peer_backend, clock=clock)
    await cache.set(BUSINESS, "qbo", {"n": 1}, key="bills")
    await cache.set(BUSINESS, "qbo", {"n": 2}, key="invoices")
    await cache.set("another-business", "qbo", {"n": 3}, key="bills")

    await other_process.invalidate(BUSINESS, "qbo", "bills")
    assert await cache.get(BUSINESS, "qbo", "bills") is None
    assert await cache.get(BUSINESS, "qbo", "invoices") is not None

    await other_process.invalidate(BUSINESS, "qbo")
    assert await cache.get(BUSINESS, "qbo", "invoices") is None
    assert await cache.get("another-business", "qbo", "bills") is not None
    # Outage fallback survives invalidation.
    assert (await cache.get_stale(BUSINESS, "qbo", "invoices")) is not None
    # A new value after invalidation is fresh again.
    await cache.set(BUSINESS, "qbo", {"n": 4}, key="invoices")
    hit = await other_process.get(BUSINESS, "qbo", "invoices")
    assert hit is not None and hit.value == {"n": 4}


async def test_keys_with_separators_do_not_collide(backend: Backend) -> None:
    cache = SyncCache(backend, clock=ManualClock())
    await cache.set("a:b", "qbo", {"who": "a:b"})
    await cache.set("a", "b:qbo", {"who": "a"})
    first = await cache.get("a:b", "qbo")
    second = await cache.get("a", "b:qbo")
    assert first is not None and first.value == {"who": "a:b"}
    assert second is not None and second.value == {"who": "a"}


def test_a_last_good_ttl_shorter_than_the_ttl_is_refused(backend: Backend) -> None:
    with pytest.raises(ValueError, match="last-good"):
        SyncCache(backend, default_ttl=timedelta(hours=5), last_good_ttl=timedelta(hours=1))


async def test_the_last_good_copy_is_kept_for_a_week_and_no_longer(backend: Backend) -> None:
    clock = ManualClock()
    cache = SyncCache(backend, clock=clock)
    await cache.set(BUSINESS, "qbo", BILLS, key="bills")
    clock.advance(timedelta(days=6, hours=23))
    stale = await cache.get_stale(BUSINESS, "qbo", "bills")
    assert stale is not None and stale.age == timedelta(days=6, hours=23)
    clock.advance(timedelta(hours=2))
    assert await cache.get_stale(BUSINESS, "qbo", "bills") is None
    assert cache.counters.stale_served == 1


async def test_entries_expire_on_the_real_clock_too(backend: Backend) -> None:
    """No ManualClock here: tiny real TTLs, real waiting."""
    cache = SyncCache(
        backend, default_ttl=timedelta(milliseconds=100), last_good_ttl=timedelta(milliseconds=500)
    )
    await cache.set(BUSINESS, "qbo", {"n": 1})
    assert await cache.get(BUSINESS, "qbo") is not None
    await asyncio.sleep(0.15)
    assert await cache.get(BUSINESS, "qbo") is None
    assert await cache.get_stale(BUSINESS, "qbo") is not None
    await asyncio.sleep(0.4)
    assert await cache.get_stale(BUSINESS, "qbo") is None


async def test_values_that_are_not_json_are_refused_clearly(backend: Backend) -> None:
    cache = SyncCache(backend, clock=ManualClock())
    with pytest.raises(TypeError, match="only JSON data"):
        await cache.set(BUSINESS, "qbo", {"when": object()})
