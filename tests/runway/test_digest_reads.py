"""The digest reads what it shows: the plain open bills and invoices (home currency, no approval,
payment or snooze) are counted and summed in SQL and only the rows a surface shows are read, and
the digest says the same, to the cent, as when every open document was read as a row
(`slow_documents`: that path, kept here as the reference).

Compared: each list's count, total and what is left to pay, the rows shown with their runway
impacts (the digest's first rows, pages of `/runway bills` and `/runway invoices`, every row),
the snoozed counts, the bills waiting for a second approver, the figures and the 13-week view.
On the seeded company, the company with every kind of cash movement and a euro supplier
(foreign bills), and a scaled one, each with bills approved, waiting for a second approver,
being paid, paid and snoozed, and an invoice snoozed; on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runway_env import RunwayEnv
from sqlalchemy import select, text, update

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import BooksSnapshot, OpenBill, OpenInvoice, business_today
from runway.digest import DigestBuilder, DigestView, Listing
from runway.lifecycle import PaymentState
from runway.models import Bill, Business, Invoice
from runway.shown_rows import (
    DIGEST_ROWS,
    EVERY_ROW,
    NO_ROWS,
    ShownRows,
    Window,
    bills_page,
    fetch_window,
    invoices_page,
    merged_window,
)
from runway.snapshot import DEFAULT_HISTORY_DAYS, IN_FLIGHT_PAYMENTS, load_books
from runway.uow import MIRROR_STATISTICS_TABLES, RunwayUnitOfWork

BUSINESS = "biz-larkspur"
TZ = "America/Los_Angeles"
D = Decimal

COMPANIES = {
    "seeded": SandboxConfig(seed=DEFAULT_SEED),
    "full books": SandboxConfig(seed=DEFAULT_SEED, full_books=True, euro_supplier=True),
    "scaled": SandboxConfig(seed=DEFAULT_SEED, scale=2000),
}


@pytest.fixture(params=sorted(COMPANIES))
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    return create_app(COMPANIES[request.param])


# -- the reference: every open bill and invoice read whole, as an ORM row ------------------------


def slow_bill(bill: Bill) -> OpenBill:
    return OpenBill(
        id=bill.qbo_id,
        vendor_id=bill.vendor_qbo_id,
        vendor_name=bill.vendor_name or "",
        amount=bill.total_amount,
        balance=bill.balance,
        due_date=bill.due_date,
        txn_date=bill.txn_date,
        doc_number=bill.doc_number,
        approved_by=bill.approved_by,
        approved_at=bill.approved_at,
        second_approved_by=bill.second_approved_by,
        second_approved_at=bill.second_approved_at,
        snoozed_until=bill.snoozed_until,
        payment_in_flight=bill.payment_state in IN_FLIGHT_PAYMENTS,
        currency=bill.currency,
        approved_amount=bill.approved_amount,
        second_approved_amount=bill.second_approved_amount,
        payment_state=bill.payment_state,
        payment_amount=bill.payment_amount,
        payment_by=bill.payment_by,
        payment_at=bill.payment_at,
        payment_account_name=bill.payment_account_name,
        payment_note=bill.payment_note,
        exchange_rate=bill.exchange_rate if bill.exchange_rate is not None else D(1),
        payment_exchange_rate=bill.payment_exchange_rate,
    )


def slow_invoice(invoice: Invoice) -> OpenInvoice:
    return OpenInvoice(
        id=invoice.qbo_id,
        customer_id=invoice.customer_qbo_id,
        customer_name=invoice.customer_name or "",
        amount=invoice.total_amount,
        balance=invoice.balance,
        due_date=invoice.due_date,
        txn_date=invoice.txn_date,
        doc_number=invoice.doc_number,
        last_reminder_at=invoice.last_reminder_at,
        reminders_sent=invoice.reminders_sent,
        snoozed_until=invoice.snoozed_until,
        last_reminder_by=invoice.last_reminder_by,
        currency=invoice.currency,
        exchange_rate=invoice.exchange_rate if invoice.exchange_rate is not None else D(1),
    )


async def slow_documents(
    uow: RunwayUnitOfWork, books: BooksSnapshot, shown_bill_ids: list[str]
) -> BooksSnapshot:
    """`books` with every open bill and invoice read as a row, and the shown bills no longer
    open beside them."""
    open_bills = tuple(slow_bill(bill) for bill in await uow.bills.open_bills())
    open_ids = {bill.id for bill in open_bills}
    wanted = [bill_id for bill_id in shown_bill_ids if bill_id not in open_ids]
    shown = tuple(slow_bill(bill) for bill in await uow.bills.by_qbo_ids(wanted)) if wanted else ()
    return replace(
        books,
        open_bills=open_bills,
        shown_bills=shown,
        open_invoices=tuple(slow_invoice(invoice) for invoice in await uow.invoices.open_invoices()),
        plain=None,
    )


# -- the workflow state the Python rules decide -------------------------------------------------


async def some_workflow(env: RunwayEnv, now: datetime, today: date) -> list[str]:
    """Bills approved (once, under a threshold that asks two for every bill), being paid, paid and
    snoozed (until later, and until a moment gone), and an overdue invoice snoozed; returns
    the bills a message would show (the paid one, and two plain open ones)."""
    async with env.db.sessions() as session:
        await session.execute(
            update(Business).where(Business.id == BUSINESS).values(approval_threshold=D("0.00"))
        )
        bills = list(
            (
                await session.scalars(
                    select(Bill)
                    .where(Bill.business_id == BUSINESS, Bill.balance > 0)
                    .where(Bill.due_date.is_not(None))
                    .order_by(Bill.due_date, Bill.qbo_id)
                )
            ).all()
        )
        assert len(bills) >= 9, "the company has too few open bills to put workflow on"
        approved_once, approved_twice, paying, unknown, paid, snoozed, was_snoozed = bills[:7]
        for bill in (approved_once, approved_twice):
            bill.approved_by, bill.approved_at, bill.approved_amount = "U-OWNER", now, bill.balance
        approved_twice.second_approved_by = "ops@example.com"
        approved_twice.second_approved_at = now
        approved_twice.second_approved_amount = approved_twice.balance
        for bill, state in ((paying, PaymentState.PAYING), (unknown, PaymentState.UNKNOWN)):
            bill.payment_state, bill.payment_amount, bill.payment_by = state.value, bill.balance, "U-OWNER"
            bill.payment_at = now
        paid.payment_state, paid.payment_amount, paid.payment_by = "paid", paid.balance, "U-OWNER"
        paid.payment_at, paid.balance = now, D("0.00")
        snoozed.snoozed_until = now + timedelta(days=3)
        was_snoozed.snoozed_until = now - timedelta(hours=1)
        invoice = (
            await session.scalars(
                select(Invoice)
                .where(Invoice.business_id == BUSINESS, Invoice.balance > 0)
                .where(Invoice.due_date < today)
                .order_by(Invoice.due_date, Invoice.qbo_id)
            )
        ).first()
        assert invoice is not None
        invoice.snoozed_until = now + timedelta(days=2)
        await session.commit()
        return [paid.qbo_id, bills[7].qbo_id, bills[-1].qbo_id]


# -- the comparison ---------------------------------------------------------------------------


def window_of(items: tuple[Any, ...], window: Window) -> tuple[Any, ...]:
    return items[window.start : window.stop]


def assert_list(fast: Listing[Any], slow: Listing[Any], window: Window) -> None:
    assert fast.total == slow.total
    assert fast.offset == window.start
    assert fast.items == window_of(slow.items, window)


def assert_same_digest(fast: DigestView, slow: DigestView, rows: ShownRows) -> None:
    for section in ("headline", "cash", "burn", "financing", "runway", "forecast", "freshness"):
        assert getattr(fast, section) == getattr(slow, section), section
    assert fast.figures_to_keep == slow.figures_to_keep
    assert fast.approvals == slow.approvals
    assert fast.snoozed_invoices == slow.snoozed_invoices
    assert fast.overdue_invoices_amount == slow.overdue_invoices_amount
    assert fast.overdue_invoices.amount == slow.overdue_invoices.amount
    assert_list(fast.overdue_invoices, slow.overdue_invoices, rows.invoice_window())
    windows = rows.bill_windows(slow.overdue_bills.total)
    for name, window in zip(("overdue_bills", "bills_due"), windows, strict=True):
        fast_part, slow_part = getattr(fast, name), getattr(slow, name)
        assert_list(fast_part, slow_part, window)
        assert fast_part.snoozed == slow_part.snoozed
        assert fast_part.left_count == slow_part.left_count == len(slow_part.left)
        assert fast_part.left_amount == slow_part.left_amount
        assert slow_part.left_amount == sum((bill.home_amount for bill in slow_part.left), D(0))


def rows_to_try(slow: DigestView) -> list[ShownRows]:
    overdue, bills, invoices = slow.overdue_bills.total, slow.bill_count, slow.overdue_invoices.total
    pages = {0, max(0, overdue - 2), overdue + 1, max(0, bills - 4), bills + 5}
    return [
        DIGEST_ROWS,
        NO_ROWS,
        EVERY_ROW,
        ShownRows(first=1),
        *(bills_page(offset, 15) for offset in sorted(pages)),
        *(invoices_page(offset, 7) for offset in sorted({0, 2, max(0, invoices - 3)})),
    ]


async def test_the_digest_reads_what_it_shows_and_says_the_same(runway_env: RunwayEnv) -> None:
    env = runway_env
    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    now = datetime.now(UTC)
    today = business_today(now, TZ)
    since = today - timedelta(days=DEFAULT_HISTORY_DAYS)
    shown = await some_workflow(env, now, today)
    # With the customers' lateness the mirror kept after the sync (joined in SQL), then without
    # (a payment written since: each customer's lateness added to the sums by day).
    for kept in (True, False):
        async with env.uows(BUSINESS) as uow:
            if not kept:
                await uow.paid_invoices.forget_lateness()
                await uow.commit()
            assert (await uow.paid_invoices.kept_histories(since) is not None) is kept
        for shown_ids in ([], shown):
            await assert_reads_agree(env, now, today, shown_ids)


async def assert_reads_agree(
    env: RunwayEnv, now: datetime, today: date, shown_ids: list[str]
) -> None:
    builder = DigestBuilder()
    async with env.uows(BUSINESS) as uow:
        slow_books = await slow_documents(
            uow, await load_books(uow, BUSINESS, today, rows=NO_ROWS), shown_ids
        )
    slow = builder.build(slow_books, now=now)
    assert slow.approvals.total, "a bill waits for a second approver"
    assert slow.snoozed_bills and slow.snoozed_invoices
    for rows in rows_to_try(slow):
        async with env.uows(BUSINESS) as uow:
            books = await load_books(uow, BUSINESS, today, shown_bill_ids=shown_ids, rows=rows)
        assert books.plain is not None
        # Only the rows shown, and the documents the Python rules decide, are read whole.
        plain = books.plain
        read = len(plain.overdue_bills.rows) + len(plain.bills_due.rows)
        assert read <= 2 * (15 + len(books.open_bills) + len(books.shown_bills)) or (
            rows.first is None
        )
        assert_same_digest(builder.build(books, now=now), slow, rows)


async def test_a_snapshot_of_every_document_is_the_reference(runway_env: RunwayEnv) -> None:
    """`load_books(..., rows=None)` reads every open document as a row, as the reference does;
    the figures one snapshot lends another of the same request are the ones it would read."""
    env = runway_env
    report = await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    today = business_today(datetime.now(UTC), TZ)
    async with env.uows(BUSINESS) as uow:
        if uow.session.bind.dialect.name == "postgresql":
            # A first sync of many rows has PostgreSQL look at the tables again, so the digest's
            # plans see them as they are now, not as the empty tables they were.
            analyzed = set(
                (
                    await uow.session.execute(
                        text(
                            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = "
                            "current_schema() AND last_analyze IS NOT NULL"
                        )
                    )
                ).scalars()
            )
            expected = set(MIRROR_STATISTICS_TABLES) if report.created >= 1000 else set()
            assert expected <= analyzed
        whole = await load_books(uow, BUSINESS, today, rows=None)
        slow = await slow_documents(uow, whole, [])
        # Figures lent by a snapshot read earlier in the same request: only documents are read.
        page = await load_books(uow, BUSINESS, today, rows=bills_page(2, 5))
        lent = await load_books(uow, BUSINESS, today, rows=bills_page(2, 5), figures_from=whole)
    assert whole == slow
    assert lent == page


@given(
    keys=st.lists(st.integers(0, 60), unique=True, max_size=40),
    others=st.sets(st.integers(0, 40)),
    start=st.integers(0, 45),
    size=st.one_of(st.none(), st.integers(0, 12)),
    extra=st.integers(0, 3),
)
def test_a_window_of_two_merged_parts_is_the_window_of_the_whole(
    keys: list[int], others: set[int], start: int, size: int | None, extra: int
) -> None:
    """Rows read as `fetch_window` says (or a few more, as for counts not known yet), merged with
    the other part read whole, are exactly that window of the whole list."""
    other_rows = [key for key in keys if key in others]
    plain = sorted(key for key in keys if key not in others)
    window = Window(start, None if size is None else start + size)
    read = fetch_window(window, len(other_rows) + extra)
    rows = plain[read.start : read.stop]
    merged = merged_window(rows, read.start, len(plain), other_rows, window, lambda key: key)
    assert merged == tuple(sorted(keys)[window.start : window.stop])
