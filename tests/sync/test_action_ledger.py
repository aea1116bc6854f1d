"""The action ledger keeps every QBO write exactly once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from db_conftest import (  # noqa: F401  (fixtures)
    MigratedDatabase,
    db_url_fixture,
    migrated_fixture,
)
from sqlalchemy import text

from sync.clock import ManualClock
from sync.db import SyncBase, make_engine, make_sessionmaker
from sync.ledger import (
    MAX_KEY_LENGTH,
    ActionIntent,
    ActionLedger,
    ActionNotFound,
    ActionState,
    ConflictingAction,
    IllegalTransition,
    LeaseLost,
    action_key,
    canonical_json,
)

START = datetime(2025, 3, 3, 9, 30, tzinfo=UTC)


def bill_payment(**changes: object) -> ActionIntent:
    intent = ActionIntent(
        realm_id="9130350000000001",
        business_id="biz-robertson",
        operation="bill_payment.create",
        target_type="Bill",
        target_id="108",
        amount=Decimal("315.00"),
        target_version="0",
        payload={
            "VendorRef": {"value": "49", "name": "Robertson & Associates"},
            "TotalAmt": Decimal("315.00"),
            "PayType": "Check",
            "Line": [
                {"Amount": Decimal("315.00"), "LinkedTxn": [{"TxnId": "108", "TxnType": "Bill"}]}
            ],
        },
    )
    return replace(intent, **changes)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def ledger(migrated: MigratedDatabase, clock: ManualClock) -> ActionLedger:
    return ActionLedger(migrated.sessions, clock)


# --- Keys -------------------------------------------------------------------------------------


def test_action_key_is_deterministic_short_and_pinned() -> None:
    key = action_key("biz-1", "bill_payment.create", "9130/Bill/108", Decimal("315.00"), "0")

    assert key == action_key(
        "biz-1", "bill_payment.create", "9130/Bill/108", Decimal("315.00"), "0"
    )
    assert len(key) <= MAX_KEY_LENGTH <= 36  # fits QBO's requestid, even in a batch request
    assert re.fullmatch(r"oo1-[a-z2-7]{32}", key)
    # Keys must never change between releases, or a retry after an upgrade would pay twice.
    assert key == "oo1-sog3com2jdyhjnakowkibya4hlo57cdp"


def test_action_key_canonicalises_the_amount() -> None:
    keys = {
        action_key("biz-1", "pay", "r/Bill/1", amount, "3")
        for amount in (10, Decimal("10"), Decimal("10.0"), Decimal("10.00"), Decimal("1E+1"))
    }
    assert len(keys) == 1
    assert action_key("biz-1", "pay", "r/Bill/1", Decimal("0"), "3") == action_key(
        "biz-1", "pay", "r/Bill/1", Decimal("-0.00"), "3"
    )


def test_action_key_changes_with_every_part_of_the_meaning() -> None:
    base = ("biz-1", "pay", "r/Bill/1", Decimal("10.00"), "3")
    variants = [
        ("biz-2", "pay", "r/Bill/1", Decimal("10.00"), "3"),
        ("biz-1", "remind", "r/Bill/1", Decimal("10.00"), "3"),
        ("biz-1", "pay", "r/Bill/2", Decimal("10.00"), "3"),
        ("biz-1", "pay", "r/Bill/1", Decimal("10.01"), "3"),
        ("biz-1", "pay", "r/Bill/1", Decimal("10.00"), "4"),
        # No ambiguity from joining parts: moving text between fields gives another key.
        ("biz-1p", "ay", "r/Bill/1", Decimal("10.00"), "3"),
    ]
    keys = {action_key(*base)} | {action_key(*variant) for variant in variants}
    assert len(keys) == len(variants) + 1


def test_action_key_refuses_amounts_that_are_not_exact_cents() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        action_key("biz-1", "pay", "r/Bill/1", 10.5, "3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fraction of a cent"):
        action_key("biz-1", "pay", "r/Bill/1", Decimal("10.005"), "3")
    with pytest.raises(ValueError, match="finite"):
        action_key("biz-1", "pay", "r/Bill/1", Decimal("NaN"), "3")


def test_canonical_payload_is_order_and_trailing_zero_independent() -> None:
    one = canonical_json({"b": Decimal("10.50"), "a": [Decimal("1.0"), "x"]})
    two = canonical_json({"a": [Decimal("1"), "x"], "b": Decimal("10.5")})
    assert one == two == '{"a":[1.00,"x"],"b":10.50}'
    assert canonical_json({"Qty": 5, "Rate": Decimal("0.125000")}) == '{"Qty":5,"Rate":0.125}'
    with pytest.raises(TypeError, match="float"):
        canonical_json({"Amount": 10.5})


# --- Recording ----------------------------------------------------------------------------------


async def test_record_inserts_a_pending_action_with_exact_amounts(ledger: ActionLedger) -> None:
    intent = bill_payment(amount=Decimal("12345678901234.57"))  # more digits than a float holds

    recorded = await ledger.record(intent)

    assert recorded.created
    action = recorded.action
    assert action.key == intent.key
    assert action.state is ActionState.PENDING
    assert action.attempts == 0
    assert action.created_at == START
    stored = await ledger.get(intent.key)
    assert stored is not None
    assert stored.amount == Decimal("12345678901234.57")
    assert str(stored.amount) == "12345678901234.57"
    assert str(stored.payload["TotalAmt"]) == "315.00"
    assert isinstance(stored.payload["Line"][0]["Amount"], Decimal)
    assert stored == action


async def test_recording_the_same_intent_again_returns_the_same_action(
    ledger: ActionLedger,
) -> None:
    first = await ledger.record(bill_payment())
    # The second click builds the same payload, if with other trailing zeros.
    again = await ledger.record(
        bill_payment(
            amount=Decimal("315"),
            payload={**bill_payment().payload, "TotalAmt": Decimal("315.0")},
        )
    )

    assert not again.created
    assert again.action.id == first.action.id
    assert len(await ledger.list()) == 1


async def test_twenty_concurrent_records_of_one_intent_make_one_row(
    ledger: ActionLedger, migrated: MigratedDatabase
) -> None:
    results = await asyncio.gather(*(ledger.record(bill_payment()) for _ in range(20)))

    assert sum(result.created for result in results) == 1
    assert len({result.action.id for result in results}) == 1
    async with migrated.engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM qbo_actions"))
    assert count == 1


async def test_same_key_with_a_different_payload_is_refused(ledger: ActionLedger) -> None:
    original = await ledger.record(bill_payment())
    tampered = bill_payment(payload={**bill_payment().payload, "PayType": "CreditCard"})
    assert tampered.key == original.action.key

    with pytest.raises(ConflictingAction, match="different payload") as refused:
        await ledger.record(tampered)

    assert refused.value.existing.id == original.action.id
    stored = await ledger.get(original.action.key)
    assert stored is not None and stored.payload["PayType"] == "Check"


async def test_record_refuses_float_amounts(ledger: ActionLedger) -> None:
    with pytest.raises(TypeError, match="float"):
        await ledger.record(bill_payment(payload={"TotalAmt": 315.0}))
    assert await ledger.list() == []


# --- Claiming and leases ------------------------------------------------------------------------


async def test_two_concurrent_claims_have_exactly_one_winner(ledger: ActionLedger) -> None:
    key = (await ledger.record(bill_payment())).action.key

    results = await asyncio.gather(
        ledger.claim(key, "worker-a", lease_seconds=30),
        ledger.claim(key, "worker-b", lease_seconds=30),
    )

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    winner = winners[0]
    assert winner.state is ActionState.IN_FLIGHT
    assert winner.attempts == 1
    assert winner.lease_expires_at == START + timedelta(seconds=30)
    stored = await ledger.get(key)
    assert stored is not None and stored.lease_owner == winner.lease_owner


async def test_many_concurrent_claims_still_have_one_winner(ledger: ActionLedger) -> None:
    key = (await ledger.record(bill_payment())).action.key

    results = await asyncio.gather(*(ledger.claim(key, f"w{i}", 30) for i in range(10)))

    assert sum(result is not None for result in results) == 1


async def test_claiming_an_unknown_key_says_so(ledger: ActionLedger) -> None:
    with pytest.raises(ActionNotFound, match="oo1-missing"):
        await ledger.claim("oo1-missing", "worker-a", 30)


async def test_an_expired_lease_makes_the_action_reclaimable_and_due_for_reconciliation(
    ledger: ActionLedger, clock: ManualClock
) -> None:
    key = (await ledger.record(bill_payment())).action.key
    assert await ledger.claim(key, "worker-a", lease_seconds=30) is not None

    # While worker A's lease runs, nobody else may take it and the reconciler leaves it alone.
    clock.advance(29)
    assert await ledger.claim(key, "worker-b", lease_seconds=30) is None
    assert await ledger.due_for_reconciliation(clock.now()) == []

    # Worker A crashed mid-call: once the lease expires the action needs checking.
    clock.advance(1)
    due = await ledger.due_for_reconciliation(clock.now())
    assert [action.key for action in due] == [key]
    assert due[0].lease_expired(clock.now())

    reclaimed = await ledger.claim(key, "worker-b", lease_seconds=30)
    assert reclaimed is not None
    assert reclaimed.lease_owner == "worker-b"
    assert reclaimed.attempts == 2
    assert await ledger.due_for_reconciliation(clock.now()) == []

    # Worker A wakes up late: its report is refused, B's stands.
    with pytest.raises(LeaseLost, match="worker-a"):
        await ledger.mark_succeeded(key, "worker-a", "240", {"Id": "240"})
    done = await ledger.mark_succeeded(key, "worker-b", "240", {"Id": "240"})
    assert done.state is ActionState.SUCCEEDED


# --- Outcomes and transitions -------------------------------------------------------------------


async def test_success_is_recorded_with_the_qbo_object_and_never_changes(
    ledger: ActionLedger, clock: ManualClock
) -> None:
    key = (await ledger.record(bill_payment())).action.key
    await ledger.claim(key, "worker-a", 30)
    clock.advance(2)
    result = {"BillPayment": {"Id": "240", "TotalAmt": Decimal("315.00"), "SyncToken": "0"}}

    done = await ledger.mark_succeeded(key, "worker-a", "240", result)

    assert done.state is ActionState.SUCCEEDED
    assert done.qbo_object_id == "240"
    assert done.completed_at == START + timedelta(seconds=2)
    assert done.lease_expires_at is None
    stored = await ledger.get(key)
    assert stored is not None and stored.result == {
        "BillPayment": {"Id": "240", "TotalAmt": Decimal("315.00"), "SyncToken": "0"}
    }
    # The same report again (e.g. a retried commit) is harmless.
    assert await ledger.mark_succeeded(key, "worker-a", "240", result) == stored

    with pytest.raises(IllegalTransition, match="never changes"):
        await ledger.mark_failed(key, "worker-a", "late validation fault")
    with pytest.raises(IllegalTransition):
        await ledger.mark_unknown(key, "worker-a", "timeout")
    with pytest.raises(IllegalTransition):
        await ledger.release_to_pending(key, "worker-a", "circuit open")
    with pytest.raises(IllegalTransition):
        await ledger.mark_needs_human(key, "looks odd")
    with pytest.raises(IllegalTransition):
        await ledger.mark_succeeded(key, "worker-a", "999", None)
    clock.advance(3600)
    assert await ledger.claim(key, "worker-b", 30) is None
    assert await ledger.get(key) == stored


async def test_outcomes_need_a_claim_first(ledger: ActionLedger) -> None:
    key = (await ledger.record(bill_payment())).action.key

    with pytest.raises(IllegalTransition, match="pending; it cannot become succeeded"):
        await ledger.mark_succeeded(key, "worker-a", "240", None)
    with pytest.raises(ActionNotFound):
        await ledger.mark_failed("oo1-nothing", "worker-a", "x")


async def test_an_unknown_outcome_is_reconciled_by_claiming_again(
    ledger: ActionLedger, clock: ManualClock
) -> None:
    key = (await ledger.record(bill_payment())).action.key
    await ledger.claim(key, "worker-a", 30)

    unknown = await ledger.mark_unknown(key, "worker-a", "read timeout after 30 s")

    assert unknown.state is ActionState.UNKNOWN
    assert unknown.last_error == "read timeout after 30 s"
    assert [a.key for a in await ledger.due_for_reconciliation(clock.now())] == [key]
    assert await ledger.list(state=ActionState.UNKNOWN) == [unknown]
    # The reconciler takes it (QBO deduplicates the resend by requestid) and settles it.
    retried = await ledger.claim(key, "reconciler", 60)
    assert retried is not None and retried.attempts == 2
    assert (await ledger.mark_succeeded(key, "reconciler", "240", None)).state is (
        ActionState.SUCCEEDED
    )


async def test_failure_and_release_and_needs_human(ledger: ActionLedger) -> None:
    failed_key = (await ledger.record(bill_payment(target_id="1"))).action.key
    released_key = (await ledger.record(bill_payment(target_id="2"))).action.key
    for key in (failed_key, released_key):
        await ledger.claim(key, "worker-a", 30)

    failed = await ledger.mark_failed(failed_key, "worker-a", "6000: a business validation error")
    released = await ledger.release_to_pending(released_key, "worker-a", "circuit open for realm")

    assert failed.state is ActionState.FAILED and failed.completed_at is not None
    assert await ledger.claim(failed_key, "worker-b", 30) is None  # a failure is not retried
    assert released.state is ActionState.PENDING and released.lease_expires_at is None
    assert [a.key for a in await ledger.pending_for_realm("9130350000000001")] == [released_key]
    assert await ledger.pending_for_realm("another-realm") == []

    escalated = await ledger.mark_needs_human(failed_key, "vendor has no address; fix it in QBO")
    assert escalated.state is ActionState.NEEDS_HUMAN
    assert escalated.last_error == "vendor has no address; fix it in QBO"
    with pytest.raises(IllegalTransition):
        await ledger.mark_needs_human(failed_key, "again")

    again = await ledger.claim(released_key, "worker-b", 30)
    assert again is not None and again.attempts == 2


async def test_list_filters_by_state_and_realm(ledger: ActionLedger) -> None:
    first = (await ledger.record(bill_payment(target_id="1"))).action
    second = (await ledger.record(bill_payment(target_id="2", realm_id="4620816365"))).action
    await ledger.claim(second.key, "worker-a", 30)

    assert [a.id for a in await ledger.list()] == [first.id, second.id]
    assert [a.id for a in await ledger.list(state=ActionState.PENDING)] == [first.id]
    assert [a.id for a in await ledger.list(realm_id="4620816365")] == [second.id]
    assert await ledger.list(state=ActionState.PENDING, realm_id="4620816365") == []


# --- Time ---------------------------------------------------------------------------------------


async def test_timestamps_are_stored_in_utc_and_come_back_aware(
    migrated: MigratedDatabase,
) -> None:
    new_york = ZoneInfo("America/New_York")
    clock = ManualClock(datetime(2025, 3, 9, 1, 59, 59, 123456, tzinfo=new_york))
    ledger = ActionLedger(migrated.sessions, clock)

    key = (await ledger.record(bill_payment())).action.key
    claimed = await ledger.claim(key, "worker-a", 3600)

    stored = await ledger.get(key)
    assert stored is not None and claimed is not None
    assert stored.created_at == datetime(2025, 3, 9, 6, 59, 59, 123456, tzinfo=UTC)
    assert stored.created_at.tzinfo is UTC
    # One hour later crosses the daylight-saving change in New York; UTC has no such gap.
    assert stored.lease_expires_at == datetime(2025, 3, 9, 7, 59, 59, 123456, tzinfo=UTC)
    if migrated.dialect == "sqlite":
        async with migrated.engine.connect() as connection:
            raw = await connection.scalar(text("SELECT created_at FROM qbo_actions"))
        assert raw == "2025-03-09 06:59:59.123456"


class NaiveClock:
    """A clock misconfigured to return local wall time without a timezone."""

    def now(self) -> datetime:
        return datetime(2025, 3, 3, 9, 30)

    def monotonic(self) -> float:
        return 0.0


async def test_naive_datetimes_are_refused(migrated: MigratedDatabase) -> None:
    with pytest.raises(ValueError, match="naive"):
        await ActionLedger(migrated.sessions, NaiveClock()).record(bill_payment())
    ledger = ActionLedger(migrated.sessions, ManualClock(START))
    with pytest.raises(ValueError, match="naive"):
        await ledger.due_for_reconciliation(datetime(2025, 3, 3, 9, 30))
    assert await ledger.list() == []


async def test_an_in_memory_database_serves_concurrent_sessions() -> None:
    # `sqlite+aiosqlite://` is one database held by one connection; sessions take turns on it.
    engine = make_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as connection:
            await connection.run_sync(SyncBase.metadata.create_all)
        ledger = ActionLedger(make_sessionmaker(engine), ManualClock(START))
        async with asyncio.timeout(10):
            results = await asyncio.gather(*(ledger.record(bill_payment()) for _ in range(5)))
            claims = await asyncio.gather(
                *(ledger.claim(results[0].action.key, f"w{i}", 30) for i in range(3))
            )
        assert sum(result.created for result in results) == 1
        assert sum(claim is not None for claim in claims) == 1
    finally:
        await engine.dispose()


# --- A person's decision ---------------------------------------------------------------------------


async def test_only_an_action_that_needs_a_person_takes_a_person_s_decision(ledger: ActionLedger) -> None:
    intent = bill_payment()
    await ledger.record(intent)
    with pytest.raises(IllegalTransition):  # pending: the reconciler's, not a person's
        await ledger.resolve(intent.key, ActionState.FAILED, by="U-owner", note="cancelled")
    await ledger.mark_needs_human(intent.key, "two payments carry the marker")
    with pytest.raises(ValueError, match="QuickBooks object"):
        await ledger.resolve(intent.key, ActionState.SUCCEEDED, by="U-owner", note="paid")

    decided = await ledger.resolve(
        intent.key, ActionState.SUCCEEDED, by="U-owner", note="marked paid", qbo_object_id="77"
    )
    assert decided.state is ActionState.SUCCEEDED and decided.qbo_object_id == "77"
    assert decided.last_error == "marked paid (decided by U-owner)" and decided.completed_at == START
    with pytest.raises(IllegalTransition):  # someone decided first
        await ledger.resolve(intent.key, ActionState.FAILED, by="U-books", note="cancelled")


async def test_send_it_again_counts_as_sent_so_the_marker_is_searched_first(ledger: ActionLedger) -> None:
    intent = bill_payment()
    await ledger.record(intent)
    await ledger.mark_needs_human(intent.key, "the bill changed since it was approved")
    again = await ledger.resolve(intent.key, ActionState.PENDING, by="U-owner", note="send it")
    assert again.state is ActionState.PENDING and again.attempts == 1
