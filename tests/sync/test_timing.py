"""Sync timing decides when each business syncs, from persisted history and a movable clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from db_conftest import (  # noqa: F401  (fixtures)
    MigratedDatabase,
    db_url_fixture,
    migrated_fixture,
)

from sync.clock import ManualClock
from sync.db import make_engine, make_sessionmaker
from sync.ledger import ActionIntent, ActionLedger
from sync.timing import (
    QBO_PLATFORM,
    SyncIntervals,
    SyncStrategy,
    SyncTimingStore,
)

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
BUSINESS = "biz-robertson"
INTERVALS = SyncIntervals()  # the production defaults: 15 min, 4 h, 1 min


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def store(migrated: MigratedDatabase, clock: ManualClock) -> SyncTimingStore:
    return SyncTimingStore(migrated.sessions, clock, INTERVALS)


async def test_a_business_never_synced_is_due_under_every_strategy(
    store: SyncTimingStore, clock: ManualClock
) -> None:
    for strategy in SyncStrategy:
        assert await store.should_sync(BUSINESS, QBO_PLATFORM, strategy)
    assert await store.next_due(BUSINESS, QBO_PLATFORM) == clock.now()
    assert await store.status(BUSINESS) is None


@pytest.mark.parametrize(
    ("strategy", "interval"),
    [
        (SyncStrategy.USER_ACTIVE, timedelta(minutes=15)),
        (SyncStrategy.IDLE, timedelta(hours=4)),
        (SyncStrategy.AFTER_ACTION, timedelta(minutes=1)),
    ],
)
async def test_each_strategy_waits_its_interval_after_a_successful_sync(
    store: SyncTimingStore, clock: ManualClock, strategy: SyncStrategy, interval: timedelta
) -> None:
    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE)

    clock.advance(interval - timedelta(seconds=1))
    assert not await store.should_sync(BUSINESS, QBO_PLATFORM, strategy)
    assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.FORCED)

    clock.advance(timedelta(seconds=1))
    assert await store.should_sync(BUSINESS, QBO_PLATFORM, strategy)


async def test_forced_always_syncs_even_right_after_a_sync_or_during_backoff(
    store: SyncTimingStore,
) -> None:
    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.FORCED)
    assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.FORCED)

    for _ in range(5):
        await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.FORCED, success=False)
    assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.FORCED)
    assert not await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.AFTER_ACTION)


async def test_failures_back_off_exponentially_and_success_resets(
    store: SyncTimingStore, clock: ManualClock
) -> None:
    for expected_wait in (1, 2, 4):
        status = await store.record_sync(
            BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE, success=False, error="503 from QBO"
        )
        assert status.last_error == "503 from QBO"
        assert status.last_success_at is None
        clock.advance(timedelta(minutes=expected_wait) - timedelta(seconds=1))
        assert not await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)
        clock.advance(timedelta(seconds=1))
        assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)

    status = await store.status(BUSINESS)
    assert status is not None and status.consecutive_failures == 3

    recovered = await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)
    assert recovered.consecutive_failures == 0
    assert recovered.last_error is None
    assert recovered.last_success_at == clock.now()
    assert recovered.last_failure_at is not None and recovered.last_failure_at < clock.now()


def test_backoff_is_capped() -> None:
    intervals = SyncIntervals(
        failure_backoff=timedelta(minutes=1), max_failure_backoff=timedelta(hours=1)
    )
    assert intervals.backoff(0) == timedelta(0)
    assert intervals.backoff(7) == timedelta(minutes=60)
    assert intervals.backoff(10_000) == timedelta(hours=1)


async def test_concurrent_failures_are_all_counted(store: SyncTimingStore) -> None:
    await asyncio.gather(
        *(
            store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE, success=False)
            for _ in range(6)
        )
    )
    status = await store.status(BUSINESS)
    assert status is not None and status.consecutive_failures == 6


async def test_strategy_follows_user_activity(store: SyncTimingStore, clock: ManualClock) -> None:
    assert await store.strategy_for(BUSINESS) is SyncStrategy.IDLE

    await store.record_user_activity(BUSINESS)
    assert await store.strategy_for(BUSINESS) is SyncStrategy.USER_ACTIVE
    assert await store.strategy_for("another-business") is SyncStrategy.IDLE

    clock.advance(INTERVALS.active_window)
    assert await store.strategy_for(BUSINESS) is SyncStrategy.IDLE


async def test_strategy_is_after_action_until_a_sync_catches_up(
    migrated: MigratedDatabase, store: SyncTimingStore, clock: ManualClock
) -> None:
    ledger = ActionLedger(migrated.sessions, clock)
    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE)
    await store.record_user_activity(BUSINESS)
    clock.advance(timedelta(minutes=5))

    recorded = await ledger.record(
        ActionIntent("9130", BUSINESS, "bill_payment.create", "Bill", "108", Decimal("315.00"), "0")
    )
    await ledger.claim(recorded.action.key, "worker-a", 30)
    clock.advance(10)
    await ledger.mark_succeeded(recorded.action.key, "worker-a", "240", None)

    assert await store.strategy_for(BUSINESS) is SyncStrategy.AFTER_ACTION
    # The last sync was five minutes ago, more than the after-action interval: sync now.
    assert await store.next_due(BUSINESS, QBO_PLATFORM) <= clock.now()

    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.AFTER_ACTION)
    assert await store.strategy_for(BUSINESS) is SyncStrategy.USER_ACTIVE
    assert await store.next_due(BUSINESS, QBO_PLATFORM) == clock.now() + INTERVALS.user_active


async def test_an_old_unsynced_action_no_longer_counts_as_after_action(
    migrated: MigratedDatabase, store: SyncTimingStore, clock: ManualClock
) -> None:
    ledger = ActionLedger(migrated.sessions, clock)
    await ledger.record(
        ActionIntent("9130", BUSINESS, "invoice.send", "Invoice", "129", Decimal("0"), "2")
    )
    assert await store.strategy_for(BUSINESS) is SyncStrategy.AFTER_ACTION

    clock.advance(INTERVALS.after_action_window)
    assert await store.strategy_for(BUSINESS) is SyncStrategy.IDLE


async def test_next_due_follows_the_derived_strategy(
    store: SyncTimingStore, clock: ManualClock
) -> None:
    synced = await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE)
    assert synced.last_success_at == START
    assert await store.next_due(BUSINESS, QBO_PLATFORM) == START + timedelta(hours=4)

    clock.advance(60)
    await store.record_user_activity(BUSINESS)
    assert await store.next_due(BUSINESS, QBO_PLATFORM) == START + timedelta(minutes=15)


async def test_timing_is_persisted_for_every_process(
    migrated: MigratedDatabase, store: SyncTimingStore, clock: ManualClock
) -> None:
    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)
    await store.record_user_activity(BUSINESS)

    # Another process: its own engine and store over the same database.
    engine = make_engine(migrated.url)
    try:
        other = SyncTimingStore(make_sessionmaker(engine), clock)
        status = await other.status(BUSINESS, QBO_PLATFORM)
        assert status is not None
        assert status.last_success_at == START
        assert status.last_success_at.tzinfo is UTC
        assert status.last_strategy is SyncStrategy.USER_ACTIVE
        assert await other.strategy_for(BUSINESS) is SyncStrategy.USER_ACTIVE
        assert not await other.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)
        # Platforms are tracked separately.
        assert await other.should_sync(BUSINESS, "stripe", SyncStrategy.IDLE)
    finally:
        await engine.dispose()


async def test_intervals_scale_down_through_configuration(
    migrated: MigratedDatabase, clock: ManualClock
) -> None:
    quick = SyncIntervals(
        user_active=timedelta(seconds=3), idle=timedelta(seconds=10), after_action=timedelta(0)
    )
    store = SyncTimingStore(migrated.sessions, clock, quick)
    await store.record_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE)

    assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.AFTER_ACTION)
    clock.advance(3)
    assert await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.USER_ACTIVE)
    assert not await store.should_sync(BUSINESS, QBO_PLATFORM, SyncStrategy.IDLE)


async def test_activity_never_moves_backwards(
    migrated: MigratedDatabase, store: SyncTimingStore, clock: ManualClock
) -> None:
    clock.advance(600)
    await store.record_user_activity(BUSINESS)
    # A second process whose clock runs ten minutes behind reports activity afterwards.
    lagging = SyncTimingStore(migrated.sessions, ManualClock(START), INTERVALS)
    await lagging.record_user_activity(BUSINESS)

    clock.advance(INTERVALS.active_window - timedelta(seconds=1))
    assert await store.strategy_for(BUSINESS) is SyncStrategy.USER_ACTIVE
