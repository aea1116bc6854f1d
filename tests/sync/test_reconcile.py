"""The reconciler settles every unsettled action by looking in QuickBooks, never by guessing.

Unsettled actions are made the way production makes them: recorded and claimed in the real
ledger, then sent (or not) to the sandbox with the action's key as requestid, and left unknown or
in flight. The sweep must find what QuickBooks has and agree with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from sync.actions import BillPaymentIntent, InvoiceSendIntent
from sync.circuit import CircuitConfig
from sync.drift import AmountChanged, DeletedInQBO
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.ledger import ActionState
from sync.ratelimit import RateLimitConfig
from sync.reconcile import (
    FOUND,
    NEEDS_HUMAN,
    RESENT,
    RETRY_LATER,
    TARGET_GONE,
    DriftReport,
    Reconciler,
    Resolution,
    sweep_until_settled,
)
from sync.service import SmartSyncService
from sync_harness import (
    BUSINESS_ID,
    OffsetClock,
    Stack,
    admin_stats,
    bank_account_id,
    build_infra,
    create_bills,
    open_stack,
    payments_marked,
    route_count,
    setup_client,
)

SETTINGS = SyncSettings(
    rate_limit=RateLimitConfig(requests_per_window=500, window_seconds=60.0, max_concurrency=10),
    circuit=CircuitConfig(failure_threshold=5, cooldown_seconds=30.0),
).scaled(0.02)


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig())


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack("embedded", tmp_path) as opened:
        yield opened


@pytest.fixture
async def infra(stack: Stack, sandbox: Sandbox, clock: OffsetClock) -> AsyncIterator[SyncInfrastructure]:
    built = await build_infra(stack, sandbox, SETTINGS, clock=clock, worker_id="worker-1")
    yield built
    await built.aclose()


class Recorder:
    def __init__(self) -> None:
        self.resolutions: list[Resolution] = []
        self.drift: list[DriftReport] = []

    async def resolved(self, resolution: Resolution) -> None:
        self.resolutions.append(resolution)

    async def drifted(self, report: DriftReport) -> None:
        self.drift.append(report)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def reconciler(infra: SyncInfrastructure, recorder: Recorder) -> Reconciler:
    return Reconciler(infra, on_resolved=recorder.resolved, on_drift=recorder.drifted)


async def intent_for(sandbox: Sandbox, amount: str = "420.00") -> BillPaymentIntent:
    [bill] = await create_bills(sandbox, [Decimal(amount)])
    return BillPaymentIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        bill_id=str(bill["Id"]),
        bill_sync_token=str(bill["SyncToken"]),
        vendor_id=str(bill["VendorRef"]["value"]),
        amount=bill["Balance"],
        bank_account_id=await bank_account_id(sandbox),
        pay_date=date.today(),
        requested_by="U-owner",
    )


async def send_directly(sandbox: Sandbox, body: dict[str, Any], request_id: str) -> dict[str, Any]:
    async with setup_client(sandbox) as client:
        return await client.create("BillPayment", body, request_id=request_id)


async def unknown_action(
    infra: SyncInfrastructure, sandbox: Sandbox, intent: BillPaymentIntent, *, applied: bool
) -> None:
    """What a lost answer leaves: the action recorded, claimed, maybe applied, then unknown."""
    await infra.ledger.record(intent.to_action())
    await infra.ledger.claim(intent.key, "worker-0/lost", 60)
    if applied:
        await send_directly(sandbox, intent.body(), intent.key)
    await infra.ledger.mark_unknown(intent.key, "worker-0/lost", "read timeout")


async def test_an_applied_payment_is_found_by_its_marker(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, recorder: Recorder
) -> None:
    intent = await intent_for(sandbox)
    await unknown_action(infra, sandbox, intent, applied=True)
    posts_before = route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment")

    [resolution] = await reconciler.sweep()

    [payment] = payments_marked(sandbox, intent.key)
    assert resolution.how == FOUND and resolution.state is ActionState.SUCCEEDED
    assert resolution.previous_state is ActionState.UNKNOWN
    assert resolution.qbo_object_id == payment["Id"]
    assert recorder.resolutions == [resolution]
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == posts_before
    action = await infra.ledger.get(intent.key)
    assert action is not None and action.state is ActionState.SUCCEEDED
    assert action.qbo_object_id == payment["Id"]
    assert await reconciler.due() == []


async def test_a_payment_proven_absent_is_sent_again_with_the_same_requestid(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler
) -> None:
    intent = await intent_for(sandbox)
    await unknown_action(infra, sandbox, intent, applied=False)
    assert payments_marked(sandbox, intent.key) == []

    [resolution] = await reconciler.sweep()

    assert resolution.how == RESENT and resolution.state is ActionState.SUCCEEDED
    [payment] = payments_marked(sandbox, intent.key)
    assert resolution.qbo_object_id == payment["Id"]
    # A copy of the first request arriving late is answered from QuickBooks' memory of the key.
    replay = await send_directly(sandbox, intent.body(), intent.key)
    assert replay["Id"] == payment["Id"]
    assert len(payments_marked(sandbox, intent.key)) == 1


async def test_a_crashed_worker_s_action_is_taken_over_after_its_lease(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, clock: OffsetClock
) -> None:
    intent = await intent_for(sandbox)
    await infra.ledger.record(intent.to_action())
    await infra.ledger.claim(intent.key, "worker-crashed/1", 30)
    await send_directly(sandbox, intent.body(), intent.key)  # it got this far, then died

    assert await reconciler.due() == []  # its lease still runs: nobody else may touch it
    assert await reconciler.sweep() == []
    clock.advance(31)
    [resolution] = await reconciler.sweep()

    assert resolution.previous_state is ActionState.IN_FLIGHT
    assert resolution.how == FOUND and resolution.state is ActionState.SUCCEEDED
    assert len(payments_marked(sandbox, intent.key)) == 1


async def test_two_marked_payments_need_a_person(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler
) -> None:
    intent = await intent_for(sandbox, "200.00")
    await unknown_action(infra, sandbox, intent, applied=False)
    half = intent.body()
    half["TotalAmt"] = Decimal("100.00")
    half["Line"][0]["Amount"] = Decimal("100.00")
    await send_directly(sandbox, half, "copy-1")
    await send_directly(sandbox, half, "copy-2")

    [resolution] = await reconciler.sweep()

    assert resolution.how == NEEDS_HUMAN and resolution.state is ActionState.NEEDS_HUMAN
    assert "2 BillPayments in QuickBooks carry this action's marker" in resolution.reason
    action = await infra.ledger.get(intent.key)
    assert action is not None and action.last_error == resolution.reason
    assert len(payments_marked(sandbox, intent.key)) == 2  # nothing was sent on top


async def test_a_same_amount_payment_without_the_marker_needs_a_person(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler
) -> None:
    intent = await intent_for(sandbox, "315.00")
    await unknown_action(infra, sandbox, intent, applied=False)
    by_hand = {**intent.body(), "PrivateNote": "paid by the bookkeeper"}
    await send_directly(sandbox, by_hand, "bookkeeper-1")

    [resolution] = await reconciler.sweep()

    assert resolution.how == NEEDS_HUMAN
    assert "without Oodaloo's marker" in resolution.reason
    assert payments_marked(sandbox, intent.key) == []


async def test_a_bill_changed_since_approval_is_not_paid_blindly(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler
) -> None:
    intent = await intent_for(sandbox, "150.00")
    await unknown_action(infra, sandbox, intent, applied=False)
    async with sandbox.http_client(access_token="") as http:
        edited = await http.post(
            f"/_sandbox/realms/{sandbox.realm_id}/edit/Bill/{intent.bill_id}",
            json={"PrivateNote": "amount under dispute"},
        )
        edited.raise_for_status()

    [resolution] = await reconciler.sweep()

    assert resolution.how == NEEDS_HUMAN
    assert "changed in QuickBooks since this was approved" in resolution.reason
    assert payments_marked(sandbox, intent.key) == []


async def test_a_deleted_bill_fails_the_action_and_reports_drift(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, recorder: Recorder
) -> None:
    intent = await intent_for(sandbox, "75.00")
    await unknown_action(infra, sandbox, intent, applied=False)
    async with sandbox.http_client(access_token="") as http:
        deleted = await http.delete(f"/_sandbox/realms/{sandbox.realm_id}/Bill/{intent.bill_id}")
        deleted.raise_for_status()

    [resolution] = await reconciler.sweep()

    assert resolution.how == TARGET_GONE and resolution.state is ActionState.FAILED
    assert "deleted in QuickBooks" in resolution.reason
    [report] = recorder.drift
    assert isinstance(report.drift, DeletedInQBO) and report.drift.entity_id == intent.bill_id
    assert report.action_key == intent.key and report.business_id == BUSINESS_ID


async def test_an_edited_marked_payment_is_reported_as_drift(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, recorder: Recorder
) -> None:
    intent = await intent_for(sandbox, "500.00")
    await unknown_action(infra, sandbox, intent, applied=False)
    partial = intent.body()
    partial["TotalAmt"] = Decimal("450.00")
    partial["Line"][0]["Amount"] = Decimal("450.00")
    await send_directly(sandbox, partial, "edited-1")

    [resolution] = await reconciler.sweep()

    assert resolution.how == NEEDS_HUMAN and "instead of 500.00" in resolution.reason
    [report] = recorder.drift
    assert isinstance(report.drift, AmountChanged)
    assert report.drift.local_amount == Decimal("500.00")
    assert report.drift.qbo_amount == Decimal("450.00")


async def test_an_unconfirmed_invoice_reminder_is_found_by_its_email_status(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler
) -> None:
    invoice = next(
        inv
        for inv in sandbox.realm().iter("Invoice")
        if inv["Balance"] > 0 and (inv.get("BillEmail") or {}).get("Address")
    )
    intent = InvoiceSendIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        invoice_id=invoice["Id"],
        invoice_sync_token=invoice["SyncToken"],
        balance=invoice["Balance"],
        requested_by="U-owner",
    )
    await infra.ledger.record(intent.to_action())
    await infra.ledger.claim(intent.key, "worker-0/lost", 60)
    async with setup_client(sandbox) as client:
        await client.send_invoice(invoice["Id"], request_id=intent.key)
    await infra.ledger.mark_unknown(intent.key, "worker-0/lost", "read timeout")

    [resolution] = await reconciler.sweep()

    assert resolution.how == FOUND and resolution.state is ActionState.SUCCEEDED
    assert resolution.qbo_object_id == invoice["Id"]
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "invoice/{id}/send") == 1


async def test_two_reconcilers_at_once_settle_each_action_once(
    stack: Stack, infra: SyncInfrastructure, sandbox: Sandbox, clock: OffsetClock
) -> None:
    other = await build_infra(stack, sandbox, SETTINGS, clock=clock, worker_id="worker-2")
    try:
        intents = []
        for index, amount in enumerate(["10.00", "20.00", "30.00", "40.00", "50.00", "60.00"]):
            intent = await intent_for(sandbox, amount)
            await unknown_action(infra, sandbox, intent, applied=index % 2 == 0)
            intents.append(intent)

        first, second = await asyncio.gather(
            Reconciler(infra).sweep(), Reconciler(other).sweep()
        )

        settled = [r.key for r in first + second]
        assert sorted(settled) == sorted(intent.key for intent in intents)
        for intent in intents:
            assert len(payments_marked(sandbox, intent.key)) == 1
            action = await infra.ledger.get(intent.key)
            assert action is not None and action.state is ActionState.SUCCEEDED
    finally:
        await other.aclose()


async def test_a_sweep_is_bounded(infra: SyncInfrastructure, sandbox: Sandbox) -> None:
    for amount in ["1.00", "2.00", "3.00", "4.00", "5.00"]:
        await unknown_action(infra, sandbox, await intent_for(sandbox, amount), applied=False)
    reconciler = Reconciler(infra, batch_size=2)

    assert len(await reconciler.sweep()) == 2
    assert len(await reconciler.due()) == 3
    rest = await sweep_until_settled(reconciler)
    assert len(rest) == 3 and await reconciler.due() == []


async def test_a_scheduled_run_keeps_sweeping_while_it_settles_and_its_budget_lasts(
    infra: SyncInfrastructure, sandbox: Sandbox
) -> None:
    for amount in ["1.00", "2.00", "3.00", "4.00", "5.00"]:
        await unknown_action(infra, sandbox, await intent_for(sandbox, amount), applied=False)
    reconciler = Reconciler(infra, batch_size=2)

    assert len(await reconciler.sweep_for(timedelta(0))) == 2  # no budget: one sweep
    rest = await reconciler.sweep_for(timedelta(minutes=1))
    assert len(rest) == 3 and {r.state for r in rest} == {ActionState.SUCCEEDED}
    assert await reconciler.due() == []


async def test_a_scheduled_run_stops_at_the_first_sweep_that_settles_nothing(
    infra: SyncInfrastructure, sandbox: Sandbox
) -> None:
    for amount in ["1.00", "2.00", "3.00"]:
        await unknown_action(infra, sandbox, await intent_for(sandbox, amount), applied=False)
    async with sandbox.http_client() as http:
        (await http.put("/_sandbox/faults", json={"by_kind": {"query": {"rate_5xx": 1.0}}})).raise_for_status()
    reconciler = Reconciler(infra, batch_size=2)

    tried = await reconciler.sweep_for(timedelta(minutes=1))

    assert len(tried) == 2 and {r.how for r in tried} == {RETRY_LATER}  # one sweep, then it stops
    assert len(await reconciler.due()) == 3


async def test_a_recorded_but_never_claimed_action_is_sent_after_a_grace_period(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, clock: OffsetClock
) -> None:
    intent = await intent_for(sandbox)
    await infra.ledger.record(intent.to_action())  # its worker died before claiming it

    assert await reconciler.due() == []  # it might still be on its way: give it time
    clock.advance(SETTINGS.deferred_retry_after + timedelta(seconds=1))
    [resolution] = await reconciler.sweep()

    assert resolution.previous_state is ActionState.PENDING
    assert resolution.how == RESENT and resolution.state is ActionState.SUCCEEDED
    assert len(payments_marked(sandbox, intent.key)) == 1


async def test_quickbooks_down_during_a_sweep_leaves_the_action_for_the_next(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, clock: OffsetClock
) -> None:
    intent = await intent_for(sandbox)
    await unknown_action(infra, sandbox, intent, applied=True)
    async with sandbox.http_client(access_token="") as http:
        (await http.put("/_sandbox/faults", json={"default": {"rate_5xx": 1.0}})).raise_for_status()

    [resolution] = await reconciler.sweep()
    assert resolution.state is ActionState.UNKNOWN and "could not check QuickBooks" in resolution.reason
    assert not resolution.settled

    async with sandbox.http_client(access_token="") as http:
        (await http.put("/_sandbox/faults", json={})).raise_for_status()
    clock.advance(timedelta(minutes=5))  # the circuit cools down
    [resolution] = await reconciler.sweep()
    assert resolution.state is ActionState.SUCCEEDED and resolution.how == FOUND
    assert len(payments_marked(sandbox, intent.key)) == 1


async def _requests_for(sandbox: Sandbox) -> int:
    stats = await admin_stats(sandbox)
    return sum(int(n) for n in stats["requests"]["by_realm"].get(sandbox.realm_id, {}).values())


async def test_a_payment_held_back_by_the_rate_limiter_waits_no_longer_each_time_and_costs_two_calls(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, clock: OffsetClock
) -> None:
    """No request left Oodaloo while the company's budget was spent: that is not a failed attempt,
    so the wait before the next try does not double, and settling it needs no search for a marker
    (one read of the bill, one payment)."""
    intent = await intent_for(sandbox)
    await infra.limiter.back_off(sandbox.realm_id, 1.0)  # the budget is spent for a second (real time)
    outcome = await SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id).create_payment_immediate(intent)
    assert outcome.state is ActionState.PENDING
    for _ in range(4):  # sweeps while the limiter still says no: each finds it due after the same wait
        clock.advance(SETTINGS.deferred_retry_after + timedelta(milliseconds=10))
        assert [action.key for action in await reconciler.due()] == [intent.key]
        await reconciler.sweep()
        action = await infra.ledger.get(intent.key)
        assert action is not None and action.state is ActionState.PENDING and action.attempts == 0

    await asyncio.sleep(1.05)  # the budget is back
    clock.advance(SETTINGS.deferred_retry_after + timedelta(milliseconds=10))
    before = await _requests_for(sandbox)
    [resolution] = await reconciler.sweep()
    assert resolution.how == RESENT and resolution.state is ActionState.SUCCEEDED
    assert await _requests_for(sandbox) - before == 2  # query the bill, POST the payment
    assert len(payments_marked(sandbox, intent.key)) == 1


async def test_a_payment_quickbooks_refused_before_applying_still_gets_the_full_search(
    infra: SyncInfrastructure, sandbox: Sandbox, reconciler: Reconciler, clock: OffsetClock
) -> None:
    """Once a request of the action reached QuickBooks, finding no marker takes the search: a
    pending action that was sent is never trusted on one read."""
    intent = await intent_for(sandbox)
    await infra.ledger.record(intent.to_action())
    await infra.ledger.claim(intent.key, "worker-0/throttled", 60)  # sent, and refused with a 429
    await infra.ledger.release_to_pending(intent.key, "worker-0/throttled", "429 Too Many Requests")
    await send_directly(sandbox, intent.body(), intent.key)  # ...yet a copy of it got through
    clock.advance(SETTINGS.deferred_retry_max + timedelta(seconds=1))

    [resolution] = await reconciler.sweep()
    assert resolution.how == FOUND and resolution.state is ActionState.SUCCEEDED
    assert len(payments_marked(sandbox, intent.key)) == 1


async def test_checking_many_unknown_payments_of_one_company_shares_its_queries(
    infra: SyncInfrastructure, sandbox: Sandbox, recorder: Recorder
) -> None:
    """After an outage leaves 40 payments unknown (half of them applied by QuickBooks), one sweep
    settles them all with three queries (the bills, the payments linked to them, the payments to
    their vendors that day) and one request per payment sent again, not three calls each."""
    intents = [await intent_for(sandbox, f"{100 + n}.00") for n in range(40)]
    for index, intent in enumerate(intents):
        await unknown_action(infra, sandbox, intent, applied=index % 2 == 0)
    reconciler = Reconciler(infra, on_resolved=recorder.resolved, batch_size=100)
    before = await _requests_for(sandbox)

    resolutions = await reconciler.sweep()

    assert sorted(r.how for r in resolutions) == [FOUND] * 20 + [RESENT] * 20
    assert {r.state for r in resolutions} == {ActionState.SUCCEEDED}
    assert await _requests_for(sandbox) - before == 3 + 20
    assert all(len(payments_marked(sandbox, intent.key)) == 1 for intent in intents)
    assert await reconciler.due() == []
