"""Two businesses on two QuickBooks companies, one database: each sees only its own books.

Both sandbox companies are seeded alike, so the same QuickBooks ids exist in both: the tests check
that a lookup by such an id returns the asking business's object, that another business's row
is "not found" rather than served, and that the runway snapshot is built from one tenant only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from runway_env import RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import MovementKind, business_today
from runway.models import Bill
from runway.snapshot import load_books

LARKSPUR = "biz-larkspur"
OTHER = "biz-other"
#: Small companies keep each test to a couple of seconds; both are seeded alike, so ids overlap.
SCALE = 20


@pytest.fixture
def sandbox() -> Sandbox:
    """The sandbox with a small scaled company (instead of the default one) as biz-larkspur's."""
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=SCALE))


async def two_synced_businesses(env: RunwayEnv) -> str:
    """Connect a second sandbox company as business OTHER and sync both; returns its realm."""
    tokens = env.sandbox.add_realm(seed=DEFAULT_SEED + 1, scale=SCALE)
    await env.add_business(OTHER, tokens.realm_id, tokens.access_token)
    await env.mirror(LARKSPUR, env.sandbox.realm_id).sync()
    await env.mirror(OTHER, tokens.realm_id).sync()
    return tokens.realm_id


def store_objects(env: RunwayEnv, realm_id: str, entity: str) -> dict[str, dict[str, Any]]:
    return {obj["Id"]: obj for obj in env.sandbox.realm(realm_id).iter(entity)}


async def test_the_same_quickbooks_id_means_each_business_its_own_object(
    runway_env: RunwayEnv,
) -> None:
    env = runway_env
    other_realm = await two_synced_businesses(env)
    for entity, repository in (("Bill", "bills"), ("Invoice", "invoices"), ("Account", "accounts")):
        mine = store_objects(env, env.sandbox.realm_id, entity)
        theirs = store_objects(env, other_realm, entity)
        shared = sorted(set(mine) & set(theirs), key=int)
        assert shared, f"both companies should have {entity} ids in common"
        for business, objects in ((LARKSPUR, mine), (OTHER, theirs)):
            async with env.uows(business) as uow:
                rows = await getattr(uow, repository).all()
                assert {row.qbo_id for row in rows} == set(objects)
                for qbo_id in shared[:25]:
                    row = await getattr(uow, repository).get(qbo_id)
                    assert row is not None and row.business_id == business
                    assert row.raw == objects[qbo_id]


async def test_another_business_s_row_is_not_found_and_cannot_be_written(
    runway_env: RunwayEnv,
) -> None:
    env = runway_env
    await two_synced_businesses(env)
    async with env.uows(OTHER) as uow:
        their_bill = (await uow.bills.all())[0]
        their_rows = [row.id for row in await uow.invoices.all()][:10]
    async with env.uows(LARKSPUR) as uow:
        # Row ids are unique across businesses: another business's id is simply not found.
        assert await uow.bills.get_row(their_bill.id) is None
        for row_id in their_rows:
            assert await uow.invoices.get_row(row_id) is None
        intruder = Bill(
            business_id=OTHER,
            qbo_id="999999",
            sync_token="0",
            raw={},
            synced_at=datetime.now(UTC),
            total_amount=Decimal("1.00"),
            balance=Decimal("1.00"),
            status="open",
        )
        with pytest.raises(ValueError, match="refusing to store a row of business"):
            uow.bills.add(intruder)
        # Audit and drift records are per business too.
        entry = uow.audit.add(
            actor="U01APPROVE",
            action="pay_bill",
            target=f"Bill {their_bill.qbo_id}",
            requested_at=datetime.now(UTC),
            amount=Decimal("10.00"),
        )
        await uow.drift.record(
            kind="amount_changed",
            entity="Bill",
            entity_id=their_bill.qbo_id,
            sentence="Bill changed in QuickBooks",
            seen_at=datetime.now(UTC),
        )
        await uow.commit()
        entry_id = entry.id
    async with env.uows(OTHER) as uow:
        assert await uow.audit.recent() == []
        assert await uow.audit.get(entry_id) is None
        assert await uow.drift.open() == []
        with pytest.raises(ValueError, match="unit of work serves business"):
            await load_books(uow, LARKSPUR, datetime.now(UTC).date())
    async with env.uows(LARKSPUR) as uow:
        assert [e.id for e in await uow.audit.recent()] == [entry_id]
        assert len(await uow.drift.open()) == 1


async def test_an_edit_in_one_company_reaches_only_its_own_business(runway_env: RunwayEnv) -> None:
    env = runway_env
    other_realm = await two_synced_businesses(env)
    async with env.uows(LARKSPUR) as uow:
        open_bill = (await uow.bills.open_bills())[0]
    async with env.sandbox.http_client(access_token="") as admin:
        edited = await admin.post(
            f"/_sandbox/realms/{other_realm}/edit/Bill/{open_bill.qbo_id}",
            json={"PrivateNote": "edited in the other company"},
        )
        assert edited.status_code == 200
    mine = await env.mirror(LARKSPUR, env.sandbox.realm_id).sync()
    theirs = await env.mirror(OTHER, other_realm).sync()
    assert mine.changed == 0
    assert theirs.changed == 1
    async with env.uows(LARKSPUR) as uow:
        bill = await uow.bills.get(open_bill.qbo_id)
        assert bill is not None and bill.private_note == open_bill.private_note
    async with env.uows(OTHER) as uow:
        bill = await uow.bills.get(open_bill.qbo_id)
        assert bill is not None and bill.private_note == "edited in the other company"


async def test_each_snapshot_is_built_from_its_own_company_only(runway_env: RunwayEnv) -> None:
    env = runway_env
    other_realm = await two_synced_businesses(env)
    for business, realm_id in ((LARKSPUR, env.sandbox.realm_id), (OTHER, other_realm)):
        realm = env.sandbox.realm(realm_id)
        async with env.uows(business) as uow:
            today = business_today(datetime.now(UTC), "America/Los_Angeles")
            # Every open document as a row: what the snapshot holds of each company.
            books = await load_books(uow, business, today, rows=None)
            # Each transaction's movements, as the mirror keeps them (the snapshot reads sums).
            movements = await uow.cash_movements.dated_between(today - timedelta(days=180))
        banks = {
            obj["Id"]: obj["CurrentBalance"]
            for obj in realm.iter("Account")
            if obj.get("AccountType") == "Bank"
        }
        assert {bank.account_id: bank.balance for bank in books.banks} == banks
        assert all(bank.as_of <= datetime.now(UTC) for bank in books.banks)
        assert {bill.id for bill in books.open_bills} == {
            obj["Id"] for obj in realm.iter("Bill") if obj["Balance"] > 0
        }
        assert {invoice.id for invoice in books.open_invoices} == {
            obj["Id"] for obj in realm.iter("Invoice") if obj["Balance"] > 0
        }
        assert set(books.as_of) >= {"Account", "Bill", "Invoice"}

        # Cash movements: only money through the bank accounts, each payment once.
        bank_ids = set(banks)
        checks_paid = {
            obj["Id"]
            for obj in realm.iter("BillPayment")
            if (obj.get("CheckPayment") or {}).get("BankAccountRef", {}).get("value") in bank_ids
            and obj["TxnDate"] >= movements[0].date.isoformat()
        }
        by_kind = {
            kind: {m.source_id for m in movements if m.kind is kind} for kind in MovementKind
        }
        assert by_kind[MovementKind.BILL_PAYMENT] == checks_paid
        card_paid = {
            obj["Id"] for obj in realm.iter("BillPayment") if obj.get("PayType") == "CreditCard"
        }
        assert not card_paid & by_kind[MovementKind.BILL_PAYMENT]
        assert all(m.amount < 0 for m in movements if m.kind is MovementKind.BILL_PAYMENT)
        assert all(m.amount > 0 for m in movements if m.kind is MovementKind.CUSTOMER_PAYMENT)
        assert books.pay_histories, "paid invoices give customers a payment history"
        assert all(h.paid_invoices > 0 for h in books.pay_histories)
