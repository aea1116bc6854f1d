"""Build the runway calculator's `BooksSnapshot` from one business's mirror tables.

`load_books(uow, business_id, today)` reads only the local mirror (no QuickBooks call), so a digest
or `/runway` answers at once; each figure carries the "as of" of the sync it came from.

How the mirror becomes cash movements (only money through the business's bank accounts counts;
card charges reach the bank when the card is paid, and are counted then):

- a bill payment from a bank account: out (`BILL_PAYMENT`);
- a purchase from a bank account: out (`PURCHASE`), or in when it is a credit (a refund); a
  purchase whose expense line is another bank account is a `TRANSFER`;
- a customer payment deposited straight to a bank account: in (`CUSTOMER_PAYMENT`);
- a deposit to a bank account, line by line: a line carrying a customer payment that waited in
  Undeposited Funds is that payment arriving (`CUSTOMER_PAYMENT`, counted once: the payment itself
  went to a non-bank account and was skipped); a line from another bank account is a `TRANSFER`;
  a line from an equity account (opening balance, owner's money) is `OTHER`; anything else is a
  `DEPOSIT` (sales, other income).

A customer's typical lateness is the median, over its invoices paid within the history window, of
the days from due date to the last payment applied (rounded half up to whole days).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from statistics import median
from typing import Any

from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    CustomerPayHistory,
    MovementKind,
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
    )


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None


def _deposit_lines(
    raw: Mapping[str, Any], day: date, to_account: str, accounts: Mapping[str, Account]
) -> list[CashMovement]:
    """A deposit's lines as movements into `to_account` (see the module docstring)."""
    movements: list[CashMovement] = []
    for line in raw.get("Line") or []:
        if not isinstance(line, Mapping) or line.get("Amount") is None:
            continue
        amount = _money(line["Amount"])
        linked = [
            link
            for link in line.get("LinkedTxn") or []
            if isinstance(link, Mapping) and link.get("TxnType") in ("Payment", "ReceivePayment")
        ]
        detail = line.get("DepositLineDetail")
        source = (
            accounts.get(_ref(detail.get("AccountRef")) or "")
            if isinstance(detail, Mapping)
            else None
        )
        if linked:
            kind = MovementKind.CUSTOMER_PAYMENT
        elif source is not None and source.account_type == "Bank":
            kind = MovementKind.TRANSFER
        elif source is not None and source.classification == "Equity":
            kind = MovementKind.OTHER
        else:
            kind = MovementKind.DEPOSIT
        movements.append(
            CashMovement(day, amount, kind, account_id=to_account, source_id=str(raw.get("Id")))
        )
    return movements


def _purchase_kind(raw: Mapping[str, Any], accounts: Mapping[str, Account]) -> MovementKind:
    for line in raw.get("Line") or []:
        if not isinstance(line, Mapping):
            continue
        detail = line.get("AccountBasedExpenseLineDetail")
        target = (
            accounts.get(_ref(detail.get("AccountRef")) or "")
            if isinstance(detail, Mapping)
            else None
        )
        if target is not None and target.account_type == "Bank":
            return MovementKind.TRANSFER
    return MovementKind.PURCHASE


async def _movements(
    uow: RunwayUnitOfWork, first: date, accounts: Mapping[str, Account]
) -> list[CashMovement]:
    banks = {qbo_id for qbo_id, account in accounts.items() if account.account_type == "Bank"}
    out: list[CashMovement] = []
    for payment in await uow.bill_payments.dated_between(first):
        if payment.txn_date is not None and payment.paid_from_account_qbo_id in banks:
            out.append(
                CashMovement(
                    payment.txn_date,
                    -payment.total_amount,
                    MovementKind.BILL_PAYMENT,
                    account_id=payment.paid_from_account_qbo_id,
                    source_id=payment.qbo_id,
                )
            )
    for purchase in await uow.purchases.dated_between(first):
        if purchase.txn_date is None or purchase.account_qbo_id not in banks:
            continue
        amount = purchase.total_amount if purchase.credit else -purchase.total_amount
        out.append(
            CashMovement(
                purchase.txn_date,
                amount,
                _purchase_kind(purchase.raw, accounts),
                account_id=purchase.account_qbo_id,
                source_id=purchase.qbo_id,
            )
        )
    for received in await uow.customer_payments.dated_between(first):
        if received.txn_date is not None and received.deposit_to_account_qbo_id in banks:
            out.append(
                CashMovement(
                    received.txn_date,
                    received.total_amount,
                    MovementKind.CUSTOMER_PAYMENT,
                    account_id=received.deposit_to_account_qbo_id,
                    source_id=received.qbo_id,
                )
            )
    for deposit in await uow.deposits.dated_between(first):
        to_account = deposit.deposit_to_account_qbo_id
        if deposit.txn_date is not None and to_account in banks:
            out.extend(_deposit_lines(deposit.raw, deposit.txn_date, to_account, accounts))
    out.sort(key=lambda movement: (movement.date, movement.source_id or ""))
    return out


def _typical_days_late(days: Iterable[int]) -> int:
    middle = Decimal(str(median(days)))
    return int(middle.to_integral_value(rounding=ROUND_HALF_UP))


async def _pay_histories(uow: RunwayUnitOfWork, first: date) -> list[CustomerPayHistory]:
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
            continue  # still open: not a finished payment
        lateness[customer_id].append((last_paid[qbo_id] - due_date).days)
    return [
        CustomerPayHistory(customer_id, _typical_days_late(days), len(days))
        for customer_id, days in sorted(lateness.items())
    ]


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
    accounts = {account.qbo_id: account for account in await uow.accounts.all()}
    accounts_as_of = as_of.get("Account")
    banks = tuple(
        BankBalance(
            account_id=account.qbo_id,
            name=account.name,
            balance=account.current_balance if account.current_balance is not None else _ZERO,
            # QuickBooks confirmed the balance when the row was written, and again at every sync
            # since that brought no change to it.
            as_of=max(account.balance_as_of, accounts_as_of)
            if accounts_as_of is not None
            else account.balance_as_of,
            currency=account.currency or business.home_currency,
        )
        for account in await uow.accounts.bank_accounts()
    )
    open_bills = tuple(_open_bill(bill) for bill in await uow.bills.open_bills())
    open_ids = {bill.id for bill in open_bills}
    wanted = [bill_id for bill_id in shown_bill_ids if bill_id not in open_ids]
    shown = tuple(_open_bill(bill) for bill in await uow.bills.by_qbo_ids(wanted)) if wanted else ()
    return BooksSnapshot(
        business_id=business_id,
        today=today,
        tz=business.timezone,
        currency=business.home_currency,
        banks=banks,
        open_bills=open_bills,
        shown_bills=shown,
        open_invoices=tuple(
            _open_invoice(invoice) for invoice in await uow.invoices.open_invoices()
        ),
        movements=tuple(await _movements(uow, today - timedelta(days=movement_days), accounts)),
        pay_histories=tuple(await _pay_histories(uow, today - timedelta(days=history_days))),
        as_of=as_of,
        min_cash_buffer=business.min_cash_buffer,
        approval_threshold=business.approval_threshold,
        people=await uow.people.directory(),
    )


__all__ = ["DEFAULT_HISTORY_DAYS", "DEFAULT_MOVEMENT_DAYS", "load_books"]
