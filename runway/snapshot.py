"""Build the runway calculator's `BooksSnapshot` from one business's mirror tables.

`load_books(uow, business_id, today)` reads only the local mirror (no QuickBooks call), so a digest
or `/runway` answers at once; each figure carries the "as of" of the sync it came from.

Cash movements are the mirror's cash lines turned into movements by `runway.cash_flow` (what is
cash, what is a transfer, what is operating, investing or financing: defined there, once), in the
home currency: worked out when the mirror writes the lines, and read summed per day, class, kind,
counter-account type and sign (`runway.uow.CashMovementRepository.day_sums`). The home currency is
the company's (QuickBooks' Preferences), else the business's setting. A foreign-currency bank
account's balance is converted at the latest rate QuickBooks gave (`runway.mirror` reads it for
the currencies of the cash accounts and of the open bills and invoices: `BooksSnapshot.rates`);
open bills and invoices keep their own currency and exchange rate.

Open bills and invoices are read for the rows a surface shows (`rows`, `runway.shown_rows`): the
plain ones (home currency, no approval, payment or snooze) are counted and summed in SQL and only
their rows shown are read, as columns; the others are read whole (`BooksSnapshot.plain`).

A customer's typical lateness is the median, over its invoices paid within the history window, of
the days from due date to the last payment applied (rounded half up to whole days), counted in SQL
from the invoices each payment pays (`runway.paid_invoices`) and kept by the mirror after a sync.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    CustomerPayHistory,
    DatedTotal,
    OpenBill,
    OpenInvoice,
    PlainDocuments,
    RowsRead,
)
from runway.forecast import WEEKS
from runway.lifecycle import PaymentState
from runway.models import Account, Bill, Invoice
from runway.shown_rows import DIGEST_ROWS, DUE_SOON_DAYS, ShownRows, Window, fetch_window
from runway.uow import RunwayUnitOfWork

IN_FLIGHT_PAYMENTS = frozenset(
    {PaymentState.PAYING.value, PaymentState.UNKNOWN.value, PaymentState.NEEDS_PERSON.value}
)
#: Movements this far back are loaded (the calculator's trailing window is 90 days by default).
DEFAULT_MOVEMENT_DAYS = 180
#: Paid invoices this far back make up each customer's payment history.
DEFAULT_HISTORY_DAYS = 365

_ZERO = Decimal("0.00")
_ONE = Decimal(1)


def _money(value: Any) -> Decimal:
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return amount.quantize(Decimal("0.01"))


def _open_bill(bill: Bill) -> OpenBill:
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
        exchange_rate=bill.exchange_rate if bill.exchange_rate is not None else _ONE,
        payment_exchange_rate=bill.payment_exchange_rate,
    )


def _open_invoice(invoice: Invoice) -> OpenInvoice:
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
        exchange_rate=invoice.exchange_rate if invoice.exchange_rate is not None else _ONE,
    )


def _bill_of(row: Any) -> OpenBill:
    """An open bill from its columns (`uow.OPEN_BILL_COLUMNS`)."""
    values = dict(row._mapping)
    rate = values["exchange_rate"]
    values["exchange_rate"] = rate if rate is not None else _ONE
    return OpenBill(**values, payment_in_flight=values["payment_state"] in IN_FLIGHT_PAYMENTS)


def _invoice_of(row: Any) -> OpenInvoice:
    """An open invoice from its columns (`uow.OPEN_INVOICE_COLUMNS`)."""
    values = dict(row._mapping)
    rate = values["exchange_rate"]
    values["exchange_rate"] = rate if rate is not None else _ONE
    values["reminders_sent"] = values["reminders_sent"] or 0
    return OpenInvoice(**values)


async def _expected(
    uow: RunwayUnitOfWork, home: str, today: date, histories: Iterable[CustomerPayHistory]
) -> dict[int, Decimal]:
    """The plain open invoices' balances by the day each is expected, in days from `today`, with
    each customer's typical days late from `histories` (when the mirror's kept lateness is not
    theirs)."""
    days_late = {history.customer_id: history.typical_days_late for history in histories}
    # Beyond these an invoice lands in the first week (or after the last) whoever pays it.
    soonest = 6 - max(0, *days_late.values())
    latest = 7 * WEEKS - min(0, *days_late.values())
    expected: dict[int, Decimal] = defaultdict(lambda: _ZERO)
    for days, customer, balance in await uow.invoices.plain_expected(home, today, soonest, latest):
        expected[days + (days_late.get(customer, 0) if customer else 0)] += balance
    return dict(expected)


@dataclass(frozen=True, slots=True)
class _Documents:
    open_bills: tuple[OpenBill, ...]
    shown_bills: tuple[OpenBill, ...]
    open_invoices: tuple[OpenInvoice, ...]
    plain: PlainDocuments | None


async def _every_document(uow: RunwayUnitOfWork, shown_bill_ids: Iterable[str]) -> _Documents:
    """Every open bill and invoice as a row (and the shown bills no longer open)."""
    open_bills = tuple(_open_bill(bill) for bill in await uow.bills.open_bills())
    open_ids = {bill.id for bill in open_bills}
    wanted = [bill_id for bill_id in shown_bill_ids if bill_id not in open_ids]
    shown = tuple(_open_bill(bill) for bill in await uow.bills.by_qbo_ids(wanted)) if wanted else ()
    invoices = tuple(_open_invoice(invoice) for invoice in await uow.invoices.open_invoices())
    return _Documents(open_bills, shown, invoices, None)


async def _shown_documents(
    uow: RunwayUnitOfWork,
    home: str,
    today: date,
    rows: ShownRows,
    within_days: int,
    shown_bill_ids: Iterable[str],
    histories: Iterable[CustomerPayHistory],
    lateness_kept: bool,
) -> _Documents:
    """The plain open documents summed in SQL with the rows `rows` shows; the others whole."""
    wanted = set(shown_bill_ids)
    shown = [_bill_of(row) for row in await uow.bills.rows_by_qbo_ids(wanted)] if wanted else []
    # A shown bill still open is read whole: it is left out of the plain sums.
    shown_open = {bill.id for bill in shown if bill.balance > 0}
    open_bills = [
        *(_bill_of(row) for row in await uow.bills.rows_with_state(home, leave_out=shown_open)),
        *(bill for bill in shown if bill.id in shown_open),
    ]
    paid_since = tuple(bill for bill in shown if bill.id not in shown_open)
    totals = tuple(
        DatedTotal(on, count, balance)
        for on, count, balance in await uow.bills.plain_totals(home, leave_out=shown_open)
    )
    last_due = today + timedelta(days=within_days)
    overdue = [total for total in totals if total.on is not None and total.on < today]
    due = [total for total in totals if total.on is not None and today <= total.on <= last_due]
    overdue_count = sum(total.count for total in overdue)
    # How many bills of either part the Python rules list is not known before `now`; the
    # windows read hold the rows for any count of them.
    others = len(open_bills) + len(paid_since)
    overdue_window, due_window = rows.bill_windows_between(overdue_count, overdue_count + others)

    async def bill_rows(first: date | None, last: date, window: Window) -> tuple[OpenBill, ...]:
        read = fetch_window(window, others)
        if read.stop == read.start:
            return ()
        found = await uow.bills.plain_rows(home, first, last, read, leave_out=shown_open)
        return tuple(_bill_of(row) for row in found)

    invoices = tuple(_invoice_of(row) for row in await uow.invoices.rows_with_state(home))
    invoice_read = fetch_window(rows.invoice_window(), len(invoices))
    invoice_rows = (
        tuple(
            _invoice_of(row)
            for row in await uow.invoices.plain_overdue_rows(home, today, invoice_read)
        )
        if invoice_read.stop != invoice_read.start
        else ()
    )
    if lateness_kept:
        expected, (invoice_count, invoice_balance) = await uow.invoices.plain_expected_kept(
            home, today
        )
    else:
        invoice_count, invoice_balance = await uow.invoices.plain_overdue_totals(home, today)
        expected = await _expected(uow, home, today, histories)
    plain = PlainDocuments(
        shown=rows,
        within_days=within_days,
        bills=totals,
        invoices_expected=expected,
        overdue_bills=RowsRead(
            fetch_window(overdue_window, others).start,
            await bill_rows(None, today - timedelta(days=1), overdue_window),
            overdue_count,
            sum((total.balance for total in overdue), _ZERO),
        ),
        bills_due=RowsRead(
            fetch_window(due_window, others).start,
            await bill_rows(today, last_due, due_window),
            sum(total.count for total in due),
            sum((total.balance for total in due), _ZERO),
        ),
        overdue_invoices=RowsRead(invoice_read.start, invoice_rows, invoice_count, invoice_balance),
    )
    return _Documents(tuple(open_bills), paid_since, invoices, plain)


async def _movements(uow: RunwayUnitOfWork, first: date) -> list[CashMovement]:
    # Derived from the cash lines when the mirror wrote them; summed per day in SQL.
    return await uow.cash_movements.day_sums(first)


async def _pay_histories(
    uow: RunwayUnitOfWork, first: date
) -> tuple[tuple[CustomerPayHistory, ...], bool]:
    """The customers' pay histories since `first`, and whether they are those the mirror kept
    after its last sync (else they were worked out in SQL now: the kept ones do not stand)."""
    kept = await uow.paid_invoices.kept_histories(first)
    if kept is not None:
        return tuple(kept), True
    return tuple(await uow.paid_invoices.histories_since(first)), False


async def load_books(
    uow: RunwayUnitOfWork,
    business_id: str,
    today: date,
    *,
    movement_days: int = DEFAULT_MOVEMENT_DAYS,
    history_days: int = DEFAULT_HISTORY_DAYS,
    shown_bill_ids: Iterable[str] = (),
    rows: ShownRows | None = DIGEST_ROWS,
    within_days: int = DUE_SOON_DAYS,
    figures_from: BooksSnapshot | None = None,
) -> BooksSnapshot:
    """The snapshot of `business_id`'s books from its mirror, for its local date `today`.

    `shown_bill_ids` are bills a message shows: those no longer open come along as they stand
    (`BooksSnapshot.shown_bills`), so the message can say they were paid.
    `rows` are the rows of the digest's lists a surface shows (`runway.shown_rows`): the plain
    open documents are counted and summed in SQL and only those rows of them are read
    (`BooksSnapshot.plain`; the bills due are those due within `within_days`); None reads every
    open document as a row.
    `figures_from`, a snapshot of the same business and day read earlier for the same request,
    lends its bank balances, movements, pay histories and people: only the documents are read
    again (what one request draws says the same and reads those once).
    `uow` must be open and belong to the same business (a mismatch is refused, never served).
    Raises LookupError when the business does not exist.
    """
    histories_from = today - timedelta(days=history_days)
    if figures_from is None:
        books = await load_banks(uow, business_id, today)
        histories, lateness_kept = await _pay_histories(uow, histories_from)
    else:
        if uow.business_id != business_id or (figures_from.business_id, figures_from.today) != (
            business_id,
            today,
        ):
            raise ValueError(
                "the figures to reuse must be of the same business and day as the books read"
            )
        books, histories = figures_from, figures_from.pay_histories
        lateness_kept = await uow.paid_invoices.kept_since() == histories_from
    documents = (
        await _every_document(uow, shown_bill_ids)
        if rows is None
        else await _shown_documents(
            uow,
            books.currency,
            today,
            rows,
            within_days,
            shown_bill_ids,
            histories,
            lateness_kept,
        )
    )
    if figures_from is not None:
        return replace(
            books,
            open_bills=documents.open_bills,
            shown_bills=documents.shown_bills,
            open_invoices=documents.open_invoices,
            plain=documents.plain,
        )
    return replace(
        books,
        open_bills=documents.open_bills,
        shown_bills=documents.shown_bills,
        open_invoices=documents.open_invoices,
        plain=documents.plain,
        movements=tuple(await _movements(uow, today - timedelta(days=movement_days))),
        pay_histories=histories,
        people=await uow.people.directory(),
    )


async def load_banks(uow: RunwayUnitOfWork, business_id: str, today: date) -> BooksSnapshot:
    """The part of `business_id`'s snapshot that is its bank accounts and settings (no
    documents, movements or people): what choosing the account bills are paid from reads."""
    if uow.business_id != business_id:
        raise ValueError(
            f"the unit of work serves business {uow.business_id!r}, not {business_id!r}; "
            "open one for the business whose books are wanted"
        )
    business = await uow.business.get()
    if business is None:
        raise LookupError(f"no business with id {business_id!r}")
    marks = await uow.watermarks.all()
    # The company's name and settings are read once, not at every sync: they say nothing about
    # how fresh the figures are.
    as_of: dict[str, datetime] = {
        entity: mark.as_of
        for entity, mark in marks.items()
        if mark.as_of is not None and entity != "CompanyInfo"
    }
    accounts_as_of = as_of.get("Account")
    preferences = next(iter(await uow.preferences.all()), None)
    home = (preferences.home_currency if preferences else None) or business.home_currency
    rates = {currency: row.rate for currency, row in (await uow.exchange_rates.all()).items()}

    def balance(account: Account) -> BankBalance:
        currency = account.currency or home
        return BankBalance(
            account_id=account.qbo_id,
            name=account.name,
            balance=account.current_balance if account.current_balance is not None else _ZERO,
            # QuickBooks confirmed the balance when the row was written, and again at every sync
            # since that brought no change to it.
            as_of=max(account.balance_as_of, accounts_as_of)
            if accounts_as_of is not None
            else account.balance_as_of,
            currency=currency,
            exchange_rate=_ONE if currency == home else rates.get(currency),
        )

    bank_accounts, undeposited_accounts = await uow.accounts.cash_accounts_by_kind()
    banks = tuple(balance(account) for account in bank_accounts)
    undeposited = tuple(balance(account) for account in undeposited_accounts)
    return BooksSnapshot(
        business_id=business_id,
        today=today,
        tz=business.timezone,
        currency=home,
        banks=banks,
        undeposited=undeposited,
        multicurrency=bool(preferences and preferences.multicurrency_enabled),
        rates={currency: rate for currency, rate in rates.items() if currency != home},
        as_of=as_of,
        min_cash_buffer=business.min_cash_buffer,
        approval_threshold=business.approval_threshold,
        locale=business.locale,
    )


__all__ = ["DEFAULT_HISTORY_DAYS", "DEFAULT_MOVEMENT_DAYS", "load_banks", "load_books"]
