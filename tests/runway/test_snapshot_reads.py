"""The snapshot reads sums, not every line: cash movements derived when the mirror writes the cash
lines (summed per day, class, kind, counter-account type, side and sign) and customers' lateness
from the invoices each payment pays give the same figures, to the cent, as classifying every cash
line and reading every payment at each read did (`slow_movements`, `slow_pay_histories`: that
path, kept here as the reference).

On the seeded company, the company with every kind of cash movement and a euro supplier, and a
scaled one, on SQLite and PostgreSQL; after a migration fills the rows of a mirror that existed
before they were kept; and, as a property, after any sequence of line writes, removals and
account changes.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from statistics import median
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runway_env import RunwayEnv
from sqlalchemy import select

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import BooksSnapshot, CashMovement, CustomerPayHistory, business_today
from runway.calculator import RunwayCalculator, WeeklyFigures
from runway.cash_flow import AccountKind, cash_movements
from runway.forecast import baseline_of, thirteen_week_forecast
from runway.mirror import mirror_values
from runway.models import Business, PaidInvoiceLink
from runway.snapshot import DEFAULT_HISTORY_DAYS, DEFAULT_MOVEMENT_DAYS, load_books
from runway.uow import RunwayUnitOfWork, UnitOfWorkFactory
from sync.db import downgrade_database, make_engine, make_sessionmaker, upgrade_database

BUSINESS = "biz-larkspur"
TZ = "America/Los_Angeles"
D = Decimal

COMPANIES = {
    "seeded": SandboxConfig(seed=DEFAULT_SEED),
    "full books": SandboxConfig(seed=DEFAULT_SEED, full_books=True, euro_supplier=True),
    "scaled": SandboxConfig(seed=DEFAULT_SEED, scale=200),
}


@pytest.fixture(params=sorted(COMPANIES))
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return create_app(COMPANIES[request.param])


# -- the reference: every cash line classed, every payment read, at each read -------------------


async def slow_movements(uow: RunwayUnitOfWork, first: date) -> list[CashMovement]:
    kinds = {
        account.qbo_id: AccountKind(account.account_type, account.account_sub_type)
        for account in await uow.accounts.all()
    }
    return cash_movements(await uow.cash_lines.dated_between(first), kinds)


async def slow_pay_histories(uow: RunwayUnitOfWork, first: date) -> list[CustomerPayHistory]:
    last_paid: dict[str, date] = {}
    for txn_date, invoice_ids in await uow.customer_payments.fields_dated_since(
        first, "txn_date", "invoice_qbo_ids"
    ):
        if txn_date is None:
            continue
        for invoice_id in invoice_ids or ():
            known = last_paid.get(invoice_id)
            if known is None or txn_date > known:
                last_paid[invoice_id] = txn_date
    lateness: dict[str, list[int]] = defaultdict(list)
    for qbo_id, balance, due_date, customer_id in await uow.invoices.fields_by_qbo_ids(
        last_paid, "qbo_id", "balance", "due_date", "customer_qbo_id"
    ):
        if balance > 0 or due_date is None or customer_id is None:
            continue
        lateness[customer_id].append((last_paid[qbo_id] - due_date).days)
    return [
        CustomerPayHistory(
            customer_id,
            int(Decimal(str(median(days))).to_integral_value(rounding=ROUND_HALF_UP)),
            len(days),
        )
        for customer_id, days in sorted(lateness.items())
    ]


async def both_snapshots(
    uow: RunwayUnitOfWork, today: date
) -> tuple[BooksSnapshot, BooksSnapshot]:
    """The snapshot as read now, and the same with the movements and pay histories read the old
    way."""
    fast = await load_books(uow, BUSINESS, today)
    slow = replace(
        fast,
        movements=tuple(
            await slow_movements(uow, today - timedelta(days=DEFAULT_MOVEMENT_DAYS))
        ),
        pay_histories=tuple(
            await slow_pay_histories(uow, today - timedelta(days=DEFAULT_HISTORY_DAYS))
        ),
    )
    return fast, slow


def day_key(movement: CashMovement) -> tuple[Any, ...]:
    sign = (movement.amount > 0) - (movement.amount < 0)
    return (
        movement.date,
        movement.cash_flow,
        movement.kind,
        movement.counter_account_type,
        movement.undeposited,
        sign,
    )


def by_day(movements: Iterator[CashMovement] | tuple[CashMovement, ...]) -> dict[Any, Any]:
    """Amount and count per day key, whichever way the movements come."""
    sums: dict[Any, list[Any]] = defaultdict(lambda: [D("0.00"), 0])
    for movement in movements:
        sums[day_key(movement)][0] += movement.amount
        sums[day_key(movement)][1] += movement.count
    return {key: tuple(value) for key, value in sums.items()}


def assert_same_figures(fast: BooksSnapshot, slow: BooksSnapshot) -> None:
    assert fast.pay_histories == slow.pay_histories
    assert by_day(fast.movements) == by_day(slow.movements)
    last_week = WeeklyFigures(fast.today - timedelta(days=7), *_last_week(slow))
    for window in (1, 7, 30, 90, 180):
        calculator = RunwayCalculator(window)
        assert calculator.figures(fast) == calculator.figures(slow)
        assert calculator.figures(fast, last_week) == calculator.figures(slow, last_week)
        assert baseline_of(fast, window) == baseline_of(slow, window)
        assert thirteen_week_forecast(fast, window_days=window) == thirteen_week_forecast(
            slow, window_days=window
        )


def _last_week(books: BooksSnapshot) -> tuple[Any, ...]:
    figures = RunwayCalculator().figures(books)
    return (figures.runway.status, figures.runway.days, D("1000.00"), D("2500.00"))


# -- the companies, synced -------------------------------------------------------------------


async def test_the_snapshot_reads_the_figures_every_line_gives(runway_env: RunwayEnv) -> None:
    env = runway_env
    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    realm = env.sandbox.realm()
    days = {
        env.sandbox.clock.now().astimezone(realm.tz).date(),  # the company's books' today
        business_today(datetime.now(UTC), TZ),  # the day the sync kept the lateness for
    }
    for today in sorted(days):
        async with env.uows(BUSINESS) as uow:
            fast, slow = await both_snapshots(uow, today)
        assert slow.movements and slow.pay_histories
        assert_same_figures(fast, slow)
        # The lateness kept for that day reads the same as the lateness worked out.
        async with env.uows(BUSINESS) as uow:
            await uow.paid_invoices.keep_lateness(today - timedelta(days=DEFAULT_HISTORY_DAYS))
            await uow.commit()
        async with env.uows(BUSINESS) as uow:
            kept = await load_books(uow, BUSINESS, today)
        assert kept.pay_histories == slow.pay_histories

    async with env.uows(BUSINESS) as uow:
        # Every transaction's stored movements are the definition's over its stored lines.
        stored = await uow.cash_movements.dated_between(date.min)
        assert Counter(stored) == Counter(await slow_movements(uow, date.min))
        # So are the day sums, over all time.
        assert by_day(tuple(await uow.cash_movements.day_sums(date.min))) == by_day(
            tuple(stored)
        )


async def test_a_change_after_the_sync_reads_the_same(runway_env: RunwayEnv) -> None:
    """After the sync kept the lateness, a payment deleted in QuickBooks and synced again: its
    paid invoices go with it, what was kept no longer stands, and the figures still agree."""
    env = runway_env
    mirror = env.mirror(BUSINESS, env.sandbox.realm_id)
    await mirror.sync()
    realm = env.sandbox.realm()
    deposited = {
        str(link["TxnId"])
        for deposit in realm.iter("Deposit")
        for line in deposit.get("Line", [])
        for link in line.get("LinkedTxn", [])
    }
    payment = next(
        obj
        for obj in realm.iter("Payment")
        if any(line.get("LinkedTxn") for line in obj["Line"]) and str(obj["Id"]) not in deposited
    )
    async with env.sandbox.http_client() as client:
        response = await client.post(
            env.sandbox.v3_path("payment"),
            params={"operation": "delete"},
            json={"Id": payment["Id"], "SyncToken": payment["SyncToken"]},
        )
    assert response.status_code == 200, response.text
    await mirror.sync()
    today = business_today(datetime.now(UTC), TZ)
    async with env.uows(BUSINESS) as uow:
        fast, slow = await both_snapshots(uow, today)
        links = await uow.session.execute(
            select(PaidInvoiceLink.payment_qbo_id).where(PaidInvoiceLink.business_id == BUSINESS)
        )
        assert str(payment["Id"]) not in set(links.scalars())
    assert_same_figures(fast, slow)


async def test_a_mirror_from_before_the_rows_were_kept_gets_them_from_the_migration(
    runway_env: RunwayEnv,
) -> None:
    env = runway_env
    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    today = business_today(datetime.now(UTC), TZ)
    await env.db.engine.dispose()
    await downgrade_database(env.db.url, "0011")
    await upgrade_database(env.db.url)
    async with env.uows(BUSINESS) as uow:
        fast, slow = await both_snapshots(uow, today)
        stored = await uow.cash_movements.dated_between(date.min)
        assert Counter(stored) == Counter(await slow_movements(uow, date.min))
    assert slow.movements
    assert_same_figures(fast, slow)


# -- the property: the stored rows follow any writes ------------------------------------------


ACCOUNT_IDS = ("1", "2", "3", "4", "5")
#: (AccountType, AccountSubType), None: the account is deleted (or never was).
ACCOUNT_KINDS = (
    ("Bank", "Checking"),
    ("Other Current Asset", "UndepositedFunds"),
    ("Expense", "OfficeExpenses"),
    ("Income", "SalesOfProductIncome"),
    ("Equity", "OwnersEquity"),
    ("Long Term Liability", "NotesPayable"),
    ("Fixed Asset", "MachineryAndEquipment"),
    ("Credit Card", "CreditCard"),
    None,
)
TXN_IDS = ("10", "11", "12")
DAYS = tuple(date(2026, 11, 1) + timedelta(days=n) for n in range(3))
amounts = st.decimals(D("-500.00"), D("500.00"), places=2).filter(lambda amount: amount != 0)
accounts = st.sampled_from((*ACCOUNT_IDS, None))


def _ref(account_id: str | None) -> dict[str, str] | None:
    return None if account_id is None else {"value": account_id}


def journal_entry(
    txn_id: str, day: date, rate: Decimal, postings: list[tuple[str | None, Decimal]]
) -> dict[str, Any]:
    """Each posting debits (positive) or credits (negative) its account; a last line balances."""
    lines = [(account, amount) for account, amount in postings]
    lines.append((lines[0][0], -sum((amount for _, amount in lines), D("0.00"))))
    return {
        "Id": txn_id,
        "TxnDate": day.isoformat(),
        "ExchangeRate": rate,
        "Line": [
            {
                "Amount": abs(amount),
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {
                    "PostingType": "Debit" if amount > 0 else "Credit",
                    "AccountRef": _ref(account),
                },
            }
            for account, amount in lines
            if amount != 0
        ],
    }


writes = st.one_of(
    st.tuples(st.just("Account"), st.sampled_from(ACCOUNT_IDS), st.sampled_from(ACCOUNT_KINDS)),
    st.builds(
        lambda txn_id, day, rate, postings: ("JournalEntry", journal_entry(txn_id, day, rate, postings)),
        st.sampled_from(TXN_IDS),
        st.sampled_from(DAYS),
        st.sampled_from((D("1"), D("1.0825"), D("0.333333"))),
        st.lists(st.tuples(accounts, amounts), min_size=1, max_size=4),
    ),
    st.builds(
        lambda txn_id, day, source, target, amount: (
            "Transfer",
            {
                "Id": txn_id,
                "TxnDate": day.isoformat(),
                "FromAccountRef": _ref(source),
                "ToAccountRef": _ref(target),
                "Amount": abs(amount),
            },
        ),
        st.sampled_from(TXN_IDS),
        st.sampled_from(DAYS),
        accounts,
        accounts,
        amounts,
    ),
    st.builds(
        lambda txn_id, day, account, amount, invoices: (
            "Payment",
            {
                "Id": txn_id,
                "TxnDate": day.isoformat(),
                **({"DepositToAccountRef": _ref(account)} if account else {}),
                "TotalAmt": abs(amount),
                "Line": [{"LinkedTxn": [{"TxnId": i, "TxnType": "Invoice"}]} for i in invoices],
            },
        ),
        st.sampled_from(TXN_IDS),
        st.sampled_from(DAYS),
        accounts,
        amounts,
        st.lists(st.sampled_from(("70", "71", "72")), max_size=3),
    ),
    st.tuples(
        st.just("remove"), st.sampled_from(("JournalEntry", "Transfer", "Payment")), st.sampled_from(TXN_IDS)
    ),
)


class Mirror:
    """A migrated SQLite database, one business per example, written through the repositories
    the mirror writes through."""

    def __init__(self, folder: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.url = f"sqlite+aiosqlite:///{Path(folder) / 'oodaloo.db'}"
        self.loop.run_until_complete(upgrade_database(self.url))
        self.engine = make_engine(self.url)
        self.sessions = make_sessionmaker(self.engine)
        self.uows = UnitOfWorkFactory(self.sessions)
        self.businesses = itertools.count(1)

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    async def new_business(self) -> str:
        business_id = f"biz-{next(self.businesses)}"
        now = datetime.now(UTC)
        async with self.sessions() as session:
            session.add(
                Business(
                    id=business_id,
                    name=business_id,
                    realm_id=f"realm-{business_id}",
                    timezone="UTC",
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
        return business_id


@pytest.fixture(scope="module")
def mirror() -> Iterator[Mirror]:
    with tempfile.TemporaryDirectory(prefix="oodaloo-snapshot-reads-") as folder:
        mirror = Mirror(folder)
        try:
            yield mirror
        finally:
            mirror.run(mirror.engine.dispose())
            mirror.loop.close()


async def write(uow: RunwayUnitOfWork, step: tuple[Any, ...]) -> None:
    what = step[0]
    if what == "Account":
        _, qbo_id, kind = step
        if kind is None:
            await uow.accounts.mark_deleted([qbo_id], datetime.now(UTC))
            return
        obj = {"Id": qbo_id, "Name": f"Account {qbo_id}", "AccountType": kind[0]}
        obj["AccountSubType"] = kind[1]
        values = mirror_values("Account", obj, datetime.now(UTC))
        stored = (await uow.accounts.stored_versions([qbo_id])).get(qbo_id)
        if stored is None:
            await uow.accounts.insert_many([values])
        else:
            await uow.accounts.update_many([{"id": stored.row_id, **values}])
    elif what == "remove":
        await uow.cash_lines.remove(step[1], [step[2]])
    else:
        await uow.cash_lines.replace(what, [step[1]])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(writes, min_size=1, max_size=12))
def test_the_stored_movements_follow_any_writes(
    mirror: Mirror, steps: list[tuple[Any, ...]]
) -> None:
    business_id = mirror.run(mirror.new_business())
    payments: dict[str, dict[str, Any]] = {}

    async def check() -> None:
        async with mirror.uows(business_id) as uow:
            for step in steps:
                await write(uow, step)
                if step[0] == "Payment":
                    payments[step[1]["Id"]] = step[1]
                elif step[0] == "remove" and step[1] == "Payment":
                    payments.pop(step[2], None)
            await uow.commit()
        async with mirror.uows(business_id) as uow:
            stored = await uow.cash_movements.dated_between(date.min)
            kinds = {
                account.qbo_id: AccountKind(account.account_type, account.account_sub_type)
                for account in await uow.accounts.all()
            }
            expected = cash_movements(await uow.cash_lines.dated_between(date.min), kinds)
            assert Counter(stored) == Counter(expected)
            sums = await uow.cash_movements.day_sums(date.min)
            assert by_day(tuple(sums)) == by_day(tuple(expected))
            assert all(movement.count > 0 for movement in sums)
            links = await uow.session.execute(
                select(
                    PaidInvoiceLink.payment_qbo_id,
                    PaidInvoiceLink.invoice_qbo_id,
                    PaidInvoiceLink.txn_date,
                ).where(PaidInvoiceLink.business_id == business_id)
            )
            assert set(links) == {
                (payment_id, invoice_id, date.fromisoformat(payment["TxnDate"]))
                for payment_id, payment in payments.items()
                for invoice_id in {link["LinkedTxn"][0]["TxnId"] for link in payment["Line"]}
            }

    mirror.run(check())
