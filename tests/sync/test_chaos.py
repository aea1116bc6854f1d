"""Chaos: many payments while QuickBooks misbehaves, and every one of them lands exactly once.

The sandbox is served over real loopback HTTP (so client timeouts and dropped connections are
real) with a seeded FaultPlan: 5xx pages, 429s, latency, hangs that only a client timeout ends, and
writes applied whose response is then lost. Two workers (two infrastructures sharing one database
and one backend, as two processes would) pay 40 bills at once, some submitted twice, some to both
workers at the same moment. A third worker is "killed" while its request is on the wire: its action
is left in flight with a lease, which expires when the clock moves on. Then reconciliation sweeps
(both workers sweeping at once) run until nothing is due.

What must hold: every intended payment exists in QuickBooks exactly once (counted by its marker in
the sandbox's own store), none is missing, every bill's balance went down exactly once, and every
action's final ledger state agrees with QuickBooks.
"""

from __future__ import annotations

import asyncio
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.server import start_in_thread
from sync.actions import ActionOutcome, BillPaymentIntent
from sync.circuit import CircuitConfig
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.ledger import ActionState
from sync.ratelimit import Priority, RateLimitConfig
from sync.reconcile import Reconciler, Resolution
from sync.service import SmartSyncService
from sync_harness import (
    BUSINESS_ID,
    OffsetClock,
    admin_stats,
    bank_account_id,
    build_infra,
    create_bills,
    eventually,
    open_stack,
    payments_marked,
    put_faults,
    route_count,
    stored,
)

SEED = 20250127
ACTIONS = 40

STORM_PLAN: dict[str, Any] = {
    "seed": SEED,
    "by_kind": {
        "write": {
            "rate_5xx": 0.15,
            "rate_429": 0.02,
            "rate_hang": 0.05,
            "rate_lost": 0.30,
            "latency": {"min_ms": 1, "max_ms": 10},
        },
        "query": {"rate_5xx": 0.1, "rate_hang": 0.02, "latency": {"min_ms": 1, "max_ms": 8}},
        "read": {"rate_5xx": 0.1, "rate_hang": 0.02, "latency": {"min_ms": 1, "max_ms": 8}},
    },
    "hang_seconds": 10.0,
    "retry_after_seconds": 1,
}
# While reconciling, QuickBooks keeps failing but no longer throttles: every 429 stops the whole
# company for its Retry-After (at least a second), which the storm has already shown.
RECONCILE_PLAN: dict[str, Any] = {
    **STORM_PLAN,
    "by_kind": {
        kind: {k: v for k, v in rule.items() if k != "rate_429"}
        for kind, rule in STORM_PLAN["by_kind"].items()
    },
}

# Production logic with every wait scaled down; client timeouts short enough for hangs to cost
# a fraction of a second.
SETTINGS = SyncSettings(
    rate_limit=RateLimitConfig(requests_per_window=500, window_seconds=60.0, max_concurrency=10),
    circuit=CircuitConfig(failure_threshold=6, cooldown_seconds=1.0),
    http_timeout=httpx.Timeout(0.15, connect=2.0, pool=5.0),
    reconcile_batch_size=25,
).scaled(0.02)
SETTINGS = SETTINGS.__class__(
    **{
        **SETTINGS.__dict__,
        "slot_timeouts": {Priority.USER_ACTION: 1.0, Priority.DATA_FETCH: 0.3, Priority.BULK: 0.3},
        "attempt_timeouts": {p: 0.3 for p in Priority},
    }
)


def intents_for(bills: list[dict[str, Any]], bank: str, realm_id: str) -> list[BillPaymentIntent]:
    return [
        BillPaymentIntent(
            business_id=BUSINESS_ID,
            realm_id=realm_id,
            bill_id=str(bill["Id"]),
            bill_sync_token=str(bill["SyncToken"]),
            vendor_id=str(bill["VendorRef"]["value"]),
            amount=bill["Balance"],
            bank_account_id=bank,
            pay_date=date.today(),
            requested_by=f"U-{index % 3}",
        )
        for index, bill in enumerate(bills)
    ]


async def sweep_both(reconcilers: list[Reconciler]) -> list[Resolution]:
    """Both workers sweep at the same moment; claims decide who settles what."""
    rounds = await asyncio.gather(*(reconciler.sweep() for reconciler in reconcilers))
    return [resolution for found in rounds for resolution in found]


@pytest.mark.http
@pytest.mark.parametrize("kind", ["embedded", "shared"])
async def test_every_payment_lands_exactly_once_under_chaos(kind: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    amounts = [Decimal(rng.randrange(1_000, 500_000)) / 100 for _ in range(ACTIONS)]
    with start_in_thread(SandboxConfig(seed=SEED)) as running:
        sandbox, base = running.sandbox, running.base_url
        realm_id = sandbox.realm_id
        async with open_stack(kind, tmp_path) as stack:
            bills = await create_bills(sandbox, amounts, base_url=base)
            intents = intents_for(bills, await bank_account_id(sandbox, base), realm_id)
            payments_before = sandbox.realm().count("BillPayment")
            clock = OffsetClock()
            workers: list[SyncInfrastructure] = [
                await build_infra(stack, sandbox, SETTINGS, clock=clock, base_url=base, worker_id=name)
                for name in ("worker-a", "worker-b", "worker-doomed")
            ]
            try:
                await run_chaos(running, workers, intents, clock)
            finally:
                for worker in workers:
                    await worker.aclose()

            # --- what must hold ---------------------------------------------------------------
            ledger = workers[0].ledger
            for intent, bill in zip(intents, bills, strict=True):
                marked = payments_marked(sandbox, intent.key)
                assert len(marked) == 1, f"{intent.key} has {len(marked)} payments in QuickBooks"
                action = await ledger.get(intent.key)
                assert action is not None
                assert action.state is ActionState.SUCCEEDED, (action.state, action.last_error)
                assert action.qbo_object_id == marked[0]["Id"]
                assert marked[0]["TotalAmt"] == intent.amount
                assert stored(sandbox, "Bill", bill["Id"])["Balance"] == Decimal("0.00")
            assert sandbox.realm().count("BillPayment") == payments_before + ACTIONS
            assert len(await ledger.list()) == ACTIONS


async def run_chaos(
    running: Any, workers: list[SyncInfrastructure], intents: list[BillPaymentIntent], clock: OffsetClock
) -> None:
    sandbox, base = running.sandbox, running.base_url
    realm_id = sandbox.realm_id
    worker_a, worker_b, doomed_worker = workers

    # 1. A worker dies while its payment request is on the wire.
    doomed_intent = intents[0]
    await put_faults(sandbox, {"seed": SEED, "by_kind": {"write": {"latency": {"fixed_ms": 150}}}}, base)
    doomed = asyncio.create_task(
        SmartSyncService(doomed_worker, BUSINESS_ID, realm_id).create_payment_immediate(doomed_intent)
    )
    await eventually(
        lambda: route_count(sandbox.stats(), realm_id, "billpayment") >= 1,
        what="the doomed worker's request reaching QuickBooks",
    )
    doomed.cancel()
    await asyncio.gather(doomed, return_exceptions=True)
    stuck = await worker_a.ledger.get(doomed_intent.key)
    assert stuck is not None and stuck.state is ActionState.IN_FLIGHT  # left holding a lease

    # 2. The storm: both workers, double clicks, races between workers, faults everywhere.
    await put_faults(sandbox, STORM_PLAN, base)
    rng = random.Random(SEED + 1)
    submissions: list[tuple[SyncInfrastructure, BillPaymentIntent]] = []
    for index, intent in enumerate(intents):
        submissions.append((workers[index % 2], intent))
        if index % 4 == 0:  # the same click reaches the other worker at the same time
            submissions.append((workers[(index + 1) % 2], intent))
        if index % 7 == 0:  # a double click on the same worker
            submissions.append((workers[index % 2], intent))
    rng.shuffle(submissions)
    outcomes: list[ActionOutcome] = await asyncio.gather(
        *(
            SmartSyncService(worker, BUSINESS_ID, realm_id).create_payment_immediate(intent)
            for worker, intent in submissions
        )
    )
    assert {outcome.key for outcome in outcomes} == {intent.key for intent in intents}
    stats = await admin_stats(sandbox, base)
    injected = stats["faults"]["injected"]
    for fault in ("503", "500", "hang"):
        assert injected.get(fault, 0) + injected.get("500", 0) > 0, injected
    assert injected.get("lost_dropped", 0) + injected.get("lost_502", 0) + injected.get("lost_504", 0) > 0
    assert sum(outcome.deduplicated for outcome in outcomes) >= len(submissions) - len(intents)

    # 3. Time passes: the doomed worker's lease expires; open circuits cool down.
    clock.advance(SETTINGS.write_lease_seconds() + 1)
    reconcilers = [Reconciler(worker_a, concurrency=8), Reconciler(worker_b, concurrency=8)]
    assert doomed_intent.key in {action.key for action in await reconcilers[0].due()}

    # 4. Reconciliation while the faults go on, then after QuickBooks recovers, until nothing is due.
    await put_faults(sandbox, RECONCILE_PLAN, base)
    for _ in range(3):
        await sweep_both(reconcilers)
        clock.advance(SETTINGS.deferred_retry_max + timedelta(seconds=1))
    await put_faults(sandbox, {}, base)
    for _ in range(60):
        if not await reconcilers[0].due():
            break
        clock.advance(SETTINGS.deferred_retry_max + timedelta(seconds=2))
        await sweep_both(reconcilers)
        await asyncio.sleep(0.05)  # a 429's back-off runs on real time
    assert await reconcilers[0].due() == []
