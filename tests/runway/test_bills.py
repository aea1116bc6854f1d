"""BillService against the sandbox, on SQLite and PostgreSQL: approve → pay makes exactly one
BillPayment in QuickBooks, lowers the balance locally and there, and leaves an audit entry; every
refusal says why and sends nothing; a double click is one payment; another business's bill is
"not found"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from runway_env import RunwayEnv
from starlette.types import Message, Receive, Scope, Send

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.limits import parse_v3_path
from runway.bills import BillService
from runway.errors import ApprovalRefused, NotAllowed, NotFound, PaymentRefused
from runway.lifecycle import BillState
from sync.ledger import ActionState
from sync.reconcile import Reconciler, sweep_until_settled
from sync_harness import bank_account_id, create_bills, payments_marked, put_faults, stored

BUSINESS = "biz-larkspur"
OTHER = "biz-other"
#: A small company: the mirror sync in each test takes milliseconds.
SCALE = 3
OWNER, PARTNER, INTRUDER = "U-OWNER", "U-PARTNER", "U-INTRUDER"


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=SCALE))


async def bill_service(env: RunwayEnv, amounts: list[str]) -> tuple[BillService, list[str]]:
    """The business's approvers and bank account set, bills of `amounts` created in QuickBooks
    and mirrored; returns the service and the new bills' QuickBooks ids."""
    bank = await bank_account_id(env.sandbox)
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = [OWNER, PARTNER]
        business.approval_threshold = Decimal("1000.00")
        business.payment_bank_account_id = bank
        await uow.commit()
    created = await create_bills(env.sandbox, [Decimal(amount) for amount in amounts])
    service = BillService(
        env.uows, env.smart_sync(BUSINESS, env.sandbox.realm_id), BUSINESS, env.infra.clock
    )
    await service.sync_bills_from_qbo()
    return service, [str(bill["Id"]) for bill in created]


async def refusals(env: RunwayEnv) -> list[tuple[str, str, bool]]:
    """(actor, action, completed) of each refused attempt in the audit trail."""
    async with env.uows(BUSINESS) as uow:
        return [
            (entry.actor, entry.action, entry.completed_at is not None)
            for entry in await uow.audit.recent(200)
            if entry.outcome and entry.outcome.startswith("refused")
        ]


async def local_balance(env: RunwayEnv, bill_id: str) -> Decimal:
    async with env.uows(BUSINESS) as uow:
        bill = await uow.bills.get(bill_id)
        assert bill is not None
        return bill.balance


async def test_approve_then_pay_makes_one_payment_and_lowers_both_balances(
    runway_env: RunwayEnv,
) -> None:
    service, [bill_id] = await bill_service(runway_env, ["389.64"])
    before = await service.standing(bill_id)
    assert before.balance == Decimal("389.64")
    assert before.state is BillState.NEEDS_APPROVAL and not before.can_pay

    approval = await service.approve(bill_id, OWNER, Decimal("389.64"))
    assert approval.approved_by == (OWNER,) and approval.can_pay
    result = await service.create_payment(bill_id, Decimal("389.64"), OWNER)

    assert result.outcome.state is ActionState.SUCCEEDED, result.message
    assert result.balance == Decimal("0.00")
    [payment] = payments_marked(runway_env.sandbox, result.outcome.key)
    assert payment["TotalAmt"] == Decimal("389.64")
    assert stored(runway_env.sandbox, "Bill", bill_id)["Balance"] == Decimal("0")
    assert await local_balance(runway_env, bill_id) == Decimal("0.00")
    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.bill_payments.get(str(payment["Id"]))
        assert mirrored is not None and mirrored.total_amount == Decimal("389.64")
        [entry] = await uow.audit.by_action_key(result.outcome.key)
        assert (entry.actor, entry.action, entry.target) == (OWNER, "bill.pay", f"Bill {bill_id}")
        assert entry.amount == Decimal("389.64")
        assert entry.outcome is not None and entry.outcome.startswith("succeeded")
        assert entry.completed_at is not None
    after = await service.standing(bill_id)
    assert after.state is BillState.PAID and after.payment is not None
    assert (after.payment.amount, after.payment.by) == (Decimal("389.64"), OWNER)


async def test_a_payment_is_bound_to_the_open_balance_the_person_saw(
    runway_env: RunwayEnv,
) -> None:
    """Less or more than the open balance is refused with the balance QuickBooks has now."""
    service, [bill_id] = await bill_service(runway_env, ["300.00"])
    await service.approve(bill_id, OWNER)
    with pytest.raises(PaymentRefused, match=r"now has \$300.00 open in QuickBooks, not the \$100.00"):
        await service.create_payment(bill_id, Decimal("100.00"), OWNER)
    with pytest.raises(PaymentRefused, match=r"not the \$300.01"):
        await service.create_payment(bill_id, Decimal("300.01"), OWNER)
    assert stored(runway_env.sandbox, "Bill", bill_id)["Balance"] == Decimal("300.00")
    assert (await service.create_payment(bill_id, Decimal("300.00"), OWNER)).outcome.succeeded


async def test_each_refusal_says_why_and_sends_nothing(runway_env: RunwayEnv) -> None:
    service, [small, large] = await bill_service(runway_env, ["250.00", "2500.00"])
    realm = runway_env.sandbox.realm_id

    def bill_payments_in_qbo() -> int:
        return len(list(runway_env.sandbox.realm(realm).iter("BillPayment")))

    before = bill_payments_in_qbo()

    with pytest.raises(PaymentRefused, match="not been approved"):
        await service.create_payment(small, Decimal("250.00"), OWNER)
    with pytest.raises(NotAllowed, match="not one of them"):
        await service.approve(small, INTRUDER)
    await service.approve(small, OWNER)
    with pytest.raises(NotAllowed, match="not one of them"):
        await service.create_payment(small, Decimal("250.00"), INTRUDER)
    with pytest.raises(PaymentRefused, match=r"now has \$250.00 open in QuickBooks"):
        await service.create_payment(small, Decimal("250.01"), OWNER)
    with pytest.raises(PaymentRefused, match="whole cents"):
        await service.create_payment(small, Decimal("10.001"), OWNER)

    await service.approve(large, OWNER)
    with pytest.raises(PaymentRefused, match="second approval from someone other than U-OWNER"):
        await service.create_payment(large, Decimal("2500.00"), OWNER)
    with pytest.raises(ApprovalRefused, match="second, different person"):
        await service.approve(large, OWNER)
    assert bill_payments_in_qbo() == before  # nothing refused reached QuickBooks

    second = await service.approve(large, PARTNER)
    assert second.approved_by == (OWNER, PARTNER) and second.can_pay
    assert (await service.create_payment(large, Decimal("2500.00"), OWNER)).outcome.succeeded
    with pytest.raises(PaymentRefused, match="already paid in full"):
        await service.create_payment(large, Decimal("1.00"), OWNER)
    assert bill_payments_in_qbo() == before + 1

    refused = await refusals(runway_env)
    assert len(refused) == 8
    assert all(completed for _, _, completed in refused)
    assert (INTRUDER, "bill.pay", True) in refused and (INTRUDER, "bill.approve", True) in refused


async def test_another_business_bill_is_not_found(runway_env: RunwayEnv) -> None:
    service, [bill_id] = await bill_service(runway_env, ["120.00"])
    await service.approve(bill_id, OWNER)
    # A second business on its own QuickBooks company, with approvers of its own.
    tokens = runway_env.sandbox.add_realm(seed=DEFAULT_SEED + 1, scale=SCALE)
    await runway_env.add_business(OTHER, tokens.realm_id, tokens.access_token)
    async with runway_env.uows(OTHER) as uow:
        other = await uow.business.get()
        assert other is not None
        other.approvers = [OWNER]
        await uow.commit()
    others = BillService(
        runway_env.uows,
        runway_env.smart_sync(OTHER, tokens.realm_id),
        OTHER,
        runway_env.infra.clock,
    )
    await others.sync_bills_from_qbo()
    async with runway_env.uows(OTHER) as uow:
        assert await uow.bills.get(bill_id) is None  # the id exists only in Larkspur's books

    with pytest.raises(NotFound, match="not found"):
        await others.approve(bill_id, OWNER)
    with pytest.raises(NotFound):
        await others.create_payment(bill_id, Decimal("120.00"), OWNER)
    with pytest.raises(NotFound):
        await others.snooze(bill_id, datetime.now(UTC) + timedelta(days=3), OWNER)
    with pytest.raises(NotFound):
        await others.standing(bill_id)
    # Larkspur's bill is untouched by all that.
    assert await local_balance(runway_env, bill_id) == Decimal("120.00")
    assert (await service.standing(bill_id)).approved_by == (OWNER,)


async def test_double_click_is_one_payment(runway_env: RunwayEnv) -> None:
    service, [bill_id] = await bill_service(runway_env, ["640.00"])
    await service.approve(bill_id, OWNER)
    outcomes = await asyncio.gather(
        service.create_payment(bill_id, Decimal("640.00"), OWNER),
        service.create_payment(bill_id, Decimal("640.00"), PARTNER),
        return_exceptions=True,
    )
    results = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    assert results, outcomes
    assert all(
        isinstance(outcome, PaymentRefused)
        for outcome in outcomes
        if isinstance(outcome, BaseException)
    ), outcomes
    keys = {result.outcome.key for result in results}
    assert len(keys) == 1
    assert len(payments_marked(runway_env.sandbox, keys.pop())) == 1
    assert await local_balance(runway_env, bill_id) == Decimal("0.00")
    # A later click finds the bill paid.
    with pytest.raises(PaymentRefused, match="already paid"):
        await service.create_payment(bill_id, Decimal("640.00"), OWNER)


async def test_payment_in_flight_blocks_another(runway_env: RunwayEnv) -> None:
    service, [bill_id] = await bill_service(runway_env, ["480.00"])
    await service.approve(bill_id, OWNER)
    # Every BillPayment QuickBooks is sent is applied, then its answer is lost.
    await put_faults(
        runway_env.sandbox,
        {"by_path": [{"pattern": "billpayment*", "method": "POST", "rule": {"rate_lost": 1.0}}]},
    )

    sent = await service.create_payment(bill_id, Decimal("480.00"), OWNER)
    assert sent.outcome.state is ActionState.UNKNOWN and sent.in_flight, sent.message
    # Left for the reconciler: the mirror is not lowered on a guess.
    assert await local_balance(runway_env, bill_id) == Decimal("480.00")
    waiting = await service.standing(bill_id)
    assert waiting.state is BillState.UNKNOWN and waiting.in_flight

    with pytest.raises(PaymentRefused, match="already on its way"):
        await service.create_payment(bill_id, Decimal("480.00"), PARTNER)
    [landed] = payments_marked(runway_env.sandbox, sent.outcome.key)

    # QuickBooks answers again; the reconciler finds the payment that did land and settles it.
    await put_faults(runway_env.sandbox, {})
    reconciler = Reconciler(runway_env.infra, on_resolved=service.on_payment_resolved)
    [resolution] = await sweep_until_settled(reconciler)
    assert resolution.state is ActionState.SUCCEEDED and resolution.qbo_object_id == landed["Id"]
    assert await local_balance(runway_env, bill_id) == Decimal("0.00")
    assert (await service.standing(bill_id)).state is BillState.PAID
    async with runway_env.uows(BUSINESS) as uow:
        assert await uow.bill_payments.get(str(landed["Id"])) is not None
        trail = [
            (entry.actor, entry.outcome or "")
            for entry in await uow.audit.by_action_key(sent.outcome.key)
        ]
    assert [actor for actor, _ in trail] == [OWNER, "reconciler"]
    assert trail[0][1].startswith("unknown") and trail[1][1].startswith("succeeded")
    # Nothing is left to pay.
    with pytest.raises(PaymentRefused, match="already paid in full"):
        await service.create_payment(bill_id, Decimal("480.00"), PARTNER)


async def test_a_payment_a_sync_mirrors_before_the_click_records_it_is_counted_once(
    runway_env: RunwayEnv,
) -> None:
    """The webhook of a new BillPayment can bring a sync that mirrors it before the Pay click has
    heard QuickBooks' answer: the click then finds it mirrored, records the bill paid, and lowers
    no balance a second time."""
    service, [bill_id] = await bill_service(runway_env, ["389.64"])
    await service.approve(bill_id, OWNER, Decimal("389.64"))
    bank = await bank_account_id(runway_env.sandbox)
    chaos = runway_env.sandbox.chaos
    data_plane = chaos.app
    synced = []

    async def sync_before_answering(scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope.get("path", "")) if scope["type"] == "http" else None
        if target is None or scope["method"] != "POST" or target.subpath.lower() != "billpayment":
            await data_plane(scope, receive, send)
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await data_plane(scope, receive, keep)  # applied in QuickBooks; its answer waits
        synced.append(await service.sync_bills_from_qbo())
        for message in answer:
            await send(message)

    chaos.app = sync_before_answering
    try:
        result = await service.create_payment(bill_id, Decimal("389.64"), OWNER)
    finally:
        chaos.app = data_plane

    assert len(synced) == 1
    assert result.outcome.state is ActionState.SUCCEEDED, result.message
    [payment] = payments_marked(runway_env.sandbox, result.outcome.key)
    assert await local_balance(runway_env, bill_id) == Decimal("0.00")
    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.bill_payments.get(str(payment["Id"]))
        assert mirrored is not None and mirrored.total_amount == Decimal("389.64")
        account = await uow.accounts.get(bank)
        assert account is not None
        assert account.current_balance == stored(runway_env.sandbox, "Account", bank)["CurrentBalance"]
    after = await service.standing(bill_id)
    assert after.state is BillState.PAID


async def test_a_sync_inserting_a_payment_already_mirrored_keeps_the_row(runway_env: RunwayEnv) -> None:
    """A sync that looked before the Pay click mirrored Oodaloo's payment inserts it after: the row
    already there stays, and the sync's other rows go in."""
    service, [bill_id] = await bill_service(runway_env, ["120.00"])
    await service.approve(bill_id, OWNER, Decimal("120.00"))
    result = await service.create_payment(bill_id, Decimal("120.00"), OWNER)
    [payment] = payments_marked(runway_env.sandbox, result.outcome.key)
    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.bill_payments.get(str(payment["Id"]))
        assert mirrored is not None
        row = {
            column.key: getattr(mirrored, column.key)
            for column in type(mirrored).__table__.columns
            if column.key not in ("id", "business_id")
        }
        await uow.bill_payments.insert_many(
            [{**row, "total_amount": Decimal("1.00")}, {**row, "qbo_id": "990001"}]
        )
        await uow.commit()
    async with runway_env.uows(BUSINESS) as uow:
        kept = await uow.bill_payments.get(str(payment["Id"]))
        assert kept is not None and kept.total_amount == Decimal("120.00")
        assert await uow.bill_payments.get("990001") is not None
