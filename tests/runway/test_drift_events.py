"""Drift events against the sandbox, on SQLite and PostgreSQL: a bill's amount changed in
QuickBooks from outside becomes one event with a plain sentence, seeing it again merges into that
event, and putting the amount back resolves it; the reconciler's reports are recorded too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from runway_env import RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.drift import DriftRecorder
from runway.errors import NotFound
from runway.mirror import MirrorSync
from sync.actions import BillPaymentIntent
from sync.clock import ManualClock
from sync.drift import ActionMissingInQBO
from sync.reconcile import DriftReport
from sync_harness import bank_account_id, create_bills, edit_bill_amount

BUSINESS = "biz-larkspur"
START = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=12))


async def test_outside_edit_is_one_event_that_merges_and_resolves(runway_env: RunwayEnv) -> None:
    [bill] = await create_bills(runway_env.sandbox, [Decimal("389.64")])
    bill_id = str(bill["Id"])
    smart_sync = runway_env.smart_sync(BUSINESS, runway_env.sandbox.realm_id)
    await MirrorSync(runway_env.uows, smart_sync).sync()
    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.bills.get(bill_id)
        assert mirrored is not None
        label = f"Bill {mirrored.doc_number or bill_id} from {mirrored.vendor_name}"
    clock = ManualClock(START)
    recorder = DriftRecorder(runway_env.uows, BUSINESS, clock, smart_sync)
    assert await recorder.check_bills() == []  # the mirror agrees with QuickBooks

    await edit_bill_amount(runway_env.sandbox, bill_id, "412.00")
    [event] = await recorder.check_bills()
    assert (event.kind, event.entity, event.entity_id) == ("amount_changed", "Bill", bill_id)
    assert event.sentence == f"{label}: QuickBooks now says $412.00, we had $389.64"
    assert (event.count, event.first_seen, event.last_seen) == (1, START, START)

    clock.advance(timedelta(hours=6))
    [again] = await recorder.check_bills()
    assert again.id == event.id
    assert (again.count, again.first_seen, again.last_seen) == (
        2,
        START,
        START + timedelta(hours=6),
    )

    await edit_bill_amount(runway_env.sandbox, bill_id, "389.64")
    clock.advance(timedelta(hours=6))
    assert await recorder.check_bills() == []
    async with runway_env.uows(BUSINESS) as uow:
        resolved = await uow.drift.get(event.id)
        assert resolved is not None
        assert resolved.resolved_at == START + timedelta(hours=12)
        assert resolved.count == 2


async def test_reconciler_reports_become_events(runway_env: RunwayEnv) -> None:
    clock = ManualClock(START)
    recorder = DriftRecorder(runway_env.uows, BUSINESS, clock)
    missing = ActionMissingInQBO(
        "oo1-abcdefgh", "Bill", "1042", "BillPayment", "77", Decimal("389.64")
    )
    report = DriftReport(BUSINESS, runway_env.sandbox.realm_id, "oo1-abcdefgh", missing)
    await recorder.on_drift(report)
    clock.advance(timedelta(minutes=5))
    await recorder.on_drift(report)
    [event] = await recorder.open_events()
    assert event.count == 2 and event.entity == "BillPayment"
    assert event.sentence == (
        "Bill 1042: Oodaloo made BillPayment 77 of $389.64, but QuickBooks no longer has it"
    )

    with pytest.raises(ValueError, match="reached business biz-larkspur"):
        await recorder.on_drift(DriftReport("biz-other", "123", "oo1-abcdefgh", missing))

    dismissed = await recorder.dismiss(event.id)
    assert dismissed.resolved_at == START + timedelta(minutes=5)
    assert await recorder.open_events() == []
    with pytest.raises(NotFound):
        await DriftRecorder(runway_env.uows, "biz-other", clock).dismiss(event.id)


async def test_a_payment_oodaloo_made_then_deleted_or_voided_in_quickbooks_is_one_event(
    runway_env: RunwayEnv,
) -> None:
    """Each sync compares the payments Oodaloo made with QuickBooks: one deleted there and one
    voided there are each reported once, however many syncs see them."""
    bills = await create_bills(runway_env.sandbox, [Decimal("120.00"), Decimal("80.00")])
    smart_sync = runway_env.smart_sync(BUSINESS, runway_env.sandbox.realm_id)
    bank = await bank_account_id(runway_env.sandbox)
    made = []
    for bill in bills:
        outcome = await smart_sync.create_payment_immediate(BillPaymentIntent(
            business_id=BUSINESS, realm_id=runway_env.sandbox.realm_id, bill_id=str(bill["Id"]),
            bill_sync_token=str(bill["SyncToken"]), vendor_id=str(bill["VendorRef"]["value"]),
            amount=bill["Balance"], bank_account_id=bank, pay_date=date.today(), requested_by="U-owner",
        ))  # fmt: skip
        assert outcome.succeeded
        made.append(outcome)
    recorder = DriftRecorder(runway_env.uows, BUSINESS, ManualClock(datetime.now(UTC)), smart_sync)
    assert await recorder.check_payments() == []

    deleted, voided = (runway_env.sandbox.realm().get("BillPayment", str(o.qbo_object_id)) for o in made)
    assert deleted is not None and voided is not None
    async with runway_env.sandbox.http_client() as quickbooks:
        for payment, operation in ((deleted, "delete"), (voided, "void")):
            answer = await quickbooks.post(
                runway_env.sandbox.v3_path("billpayment"), params={"operation": operation},
                json={"Id": payment["Id"], "SyncToken": payment["SyncToken"]},
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
    first = await recorder.check_payments()
    assert sorted(event.kind for event in first) == ["action_missing_in_qbo", "amount_changed"]
    again = await recorder.check_payments()
    assert {event.id for event in again} == {event.id for event in first}  # the same two, seen twice
    assert len(await recorder.open_events()) == 2
