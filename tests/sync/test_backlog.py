"""A backlog of background reads keeps QuickBooks busy but never throttled, and clicks still go first.

The sandbox enforces 100 requests per 1-second window (QBO's per-minute limit, scaled) and our
limiter is given the same numbers. A backlog of bulk reads for one company runs through
SmartSyncService: the sandbox must answer none of them with 429, while the limiter keeps the bulk
class busy at 90 % or more of what it may use (its 70 % share of the window). User actions issued
in the middle of the backlog must start at once: within a quarter of a window, since they never
queue behind bulk work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from sync.circuit import CircuitConfig
from sync.infrastructure import SyncSettings
from sync.ratelimit import Priority, RateLimitConfig
from sync.service import SmartSyncService
from sync_harness import (
    BUSINESS_ID,
    OffsetClock,
    Stack,
    admin_stats,
    build_infra,
    eventually,
    open_stack,
)

WINDOW = 1.0
PER_WINDOW = 100
CONCURRENCY = 10
BACKLOG = 160
USER_ACTIONS = 5
USER_START_BOUND = WINDOW / 4  # seconds: what a click may wait behind the backlog at most

SETTINGS = SyncSettings(
    rate_limit=RateLimitConfig(
        requests_per_window=PER_WINDOW, window_seconds=WINDOW, max_concurrency=CONCURRENCY
    ),
    circuit=CircuitConfig(failure_threshold=5, cooldown_seconds=30.0),
    slot_timeouts={Priority.USER_ACTION: 5.0, Priority.DATA_FETCH: 30.0, Priority.BULK: 30.0},
    attempt_timeouts={p: 5.0 for p in Priority},
)


@pytest.fixture(params=["embedded", "shared"])
async def stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sandbox = create_app(SandboxConfig())
    async with sandbox.http_client(access_token="") as http:
        response = await http.put(
            "/_sandbox/limits",
            json={
                "requests_per_minute": PER_WINDOW,
                "window_seconds": WINDOW,
                "max_concurrent": CONCURRENCY,
            },
        )
        response.raise_for_status()
        # A little latency, so requests overlap the way they do against the real QuickBooks.
        faults = await http.put("/_sandbox/faults", json={"default": {"latency": {"fixed_ms": 3}}})
        faults.raise_for_status()
    yield sandbox
    await sandbox.aclose()


async def test_bulk_backlog_is_never_throttled_and_clicks_go_first(
    stack: Stack, sandbox: Sandbox
) -> None:
    infra = await build_infra(stack, sandbox, SETTINGS, clock=OffsetClock())
    service = SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
    bulk_done: list[float] = []
    click_waits: list[float] = []

    async def bulk_read(index: int) -> None:
        await service.execute_qbo_call("get", "Account", "2", priority=Priority.BULK)
        bulk_done.append(time.perf_counter())

    async def click() -> None:
        started = time.perf_counter()
        await service.execute_qbo_call("get", "Account", "3", priority=Priority.USER_ACTION)
        click_waits.append(time.perf_counter() - started)

    async def clicks_during_backlog() -> None:
        # Wait until the backlog has used up its share of the window and is queueing.
        await eventually(lambda: len(bulk_done) >= 70, what="the backlog filling its share")
        for _ in range(USER_ACTIONS):
            await click()
            await asyncio.sleep(0.05)

    window_use: list[int] = []

    async def watch_window() -> None:
        while len(bulk_done) < BACKLOG:
            window_use.append((await infra.limiter.stats(sandbox.realm_id)).used_in_window)
            await asyncio.sleep(0.02)

    try:
        started = time.perf_counter()
        await asyncio.gather(
            *(bulk_read(i) for i in range(BACKLOG)), clicks_during_backlog(), watch_window()
        )
        elapsed = time.perf_counter() - started
    finally:
        await infra.aclose()

    stats = await admin_stats(sandbox)
    assert stats["throttled_total"] == 0, stats["throttled"]
    assert len(bulk_done) == BACKLOG and len(click_waits) == USER_ACTIONS

    bulk_cap, _ = SETTINGS.rate_limit.caps(Priority.BULK)
    # The limiter's own books never showed more than the window allows...
    assert max(window_use) <= PER_WINDOW, max(window_use)
    # ...and the bulk class used at least 90 % of its share once the backlog was queueing: the second window is all waiting work.
    first = min(bulk_done)
    second_window = sum(1 for t in bulk_done if first + WINDOW <= t < first + 2 * WINDOW)
    assert second_window >= 0.9 * bulk_cap, (second_window, bulk_cap, elapsed)
    # Clicks never waited behind the backlog.
    assert max(click_waits) < USER_START_BOUND, click_waits
