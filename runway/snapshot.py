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

A customer's typical lateness is the median, over its invoices paid within the history window, of
the days from due date to the last payment applied (rounded half up to whole days), counted in SQL
from the invoices each payment pays (`runway.paid_invoices`) and kept by the mirror after a sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    CustomerPayHistory,
    OpenBill,
    OpenInvoice,
)
from runway.lifecycle import PaymentState
from runway.models import Account, Bill, Invoice
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


async def _movements(uow: RunwayUnitOfWork, first: date) -> list[CashMovement]:
    # Derived from the cash lines when the mirror wrote them; summed per day in SQL.
    return await uow.cash_movements.day_sums(first)


async def _pay_histories(uow: RunwayUnitOfWork, first: date) -> list[CustomerPayHistory]:
    # Kept by the mirror after each sync; worked out in SQL when it does not stand.
    return await uow.paid_invoices.histories_since(first)


async def load_books(
    uow: RunwayUnitOfWork,
    business_id: str,
    today: date,
    *,
    movement_days: int = DEFAULT_MOVEMENT_DAYS,
    history_days: int = DEFAULT_HISTORY_DAYS,
    shown_bill_ids: Iterable[str] = (),
) -> BooksSnapshot:
    """The snapshot of `business_id`'s books from its mirror, for its local date `today`.

    `shown_bill_ids` are bills a message shows: those no longer open come along as they stand
    (`BooksSnapshot.shown_bills`), so the message can say they were paid.
    `uow` must be open and belong to the same business (a mismatch is refused, never served).
    Raises LookupError when the business does not exist.
    """
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

    banks = tuple(balance(account) for account in await uow.accounts.bank_accounts())
    undeposited = tuple(balance(account) for account in await uow.accounts.undeposited_accounts())
    open_bills = tuple(_open_bill(bill) for bill in await uow.bills.open_bills())
    open_ids = {bill.id for bill in open_bills}
    wanted = [bill_id for bill_id in shown_bill_ids if bill_id not in open_ids]
    shown = tuple(_open_bill(bill) for bill in await uow.bills.by_qbo_ids(wanted)) if wanted else ()
    return BooksSnapshot(
        business_id=business_id,
        today=today,
        tz=business.timezone,
        currency=home,
        banks=banks,
        undeposited=undeposited,
        multicurrency=bool(preferences and preferences.multicurrency_enabled),
        rates={currency: rate for currency, rate in rates.items() if currency != home},
        open_bills=open_bills,
        shown_bills=shown,
        open_invoices=tuple(
            _open_invoice(invoice) for invoice in await uow.invoices.open_invoices()
        ),
        movements=tuple(await _movements(uow, today - timedelta(days=movement_days))),
        pay_histories=tuple(await _pay_histories(uow, today - timedelta(days=history_days))),
        as_of=as_of,
        min_cash_buffer=business.min_cash_buffer,
        approval_threshold=business.approval_threshold,
        people=await uow.people.directory(),
    )


__all__ = ["DEFAULT_HISTORY_DAYS", "DEFAULT_MOVEMENT_DAYS", "load_books"]
