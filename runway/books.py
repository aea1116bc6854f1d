"""The books of one business as the runway calculator reads them: plain, frozen, I/O-free.

A `BooksSnapshot` is filled from the local mirror of QuickBooks (see `runway.snapshot`) or, in
tests, straight from sandbox objects. Everything the runway, the 13-week view and the weekly
digest need is here, so those computations stay pure and repeatable.

Conventions:

* Money is `Decimal` (two places as QuickBooks keeps it) with its currency; sums are in the home
  currency (`currency`). A `CashMovement` amount is signed: positive = money into a cash account,
  negative = money out; what counts as cash and each movement's class are `runway.cash_flow`'s.
* Instants (`as_of`, `last_reminder_at`, ...) are timezone-aware; calendar days (`due_date`,
  `txn_date`, `today`) are plain dates in the business's own timezone.
* Text that came from QuickBooks (vendor, customer and account names) is kept exactly as typed
  there: escaping is the renderer's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from runway.cash_flow import CashFlowClass, CashMovement, MovementKind, home_amount
from runway.formatting import DEFAULT_LOCALE
from runway.shown_rows import ShownRows

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class BankBalance:
    """One bank account's balance as QuickBooks reported it at `as_of`."""

    account_id: str
    name: str
    balance: Decimal
    as_of: datetime
    currency: str = "USD"
    #: QuickBooks' latest rate for `currency` (home units per unit); 1 in the home currency,
    #: None when a foreign account's rate has not been read yet.
    exchange_rate: Decimal | None = Decimal(1)

    @property
    def home_balance(self) -> Decimal | None:
        """The balance in the home currency (None without a rate)."""
        if self.exchange_rate is None:
            return None
        return home_amount(self.balance, self.exchange_rate)


@dataclass(frozen=True, slots=True)
class OpenBill:
    """A bill with money still owed (`balance` > 0), with Oodaloo's own workflow state."""

    id: str
    vendor_id: str | None
    vendor_name: str
    amount: Decimal
    balance: Decimal
    due_date: date | None
    txn_date: date | None
    doc_number: str | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    #: Bills above the business's approval threshold need a second, different approver.
    second_approved_by: str | None = None
    second_approved_at: datetime | None = None
    snoozed_until: datetime | None = None
    #: A payment was asked for and its outcome is not known yet: do not count it twice.
    payment_in_flight: bool = False
    currency: str | None = None
    #: The balance each approval was given for (see `runway.lifecycle`).
    approved_amount: Decimal | None = None
    second_approved_amount: Decimal | None = None
    #: Oodaloo's last payment of the bill (`runway.lifecycle.PaymentState` and its details).
    payment_state: str | None = None
    payment_amount: Decimal | None = None
    payment_by: str | None = None
    payment_at: datetime | None = None
    payment_account_name: str | None = None
    payment_note: str | None = None
    #: The bill's own rate (home units per unit of `currency`); 1 in the home currency.
    exchange_rate: Decimal = Decimal(1)
    #: The rate its payment booked at (`Bill.payment_exchange_rate`); None before a payment and
    #: in the home currency.
    payment_exchange_rate: Decimal | None = None

    @property
    def home_balance(self) -> Decimal:
        """The open balance in the home currency, at the bill's exchange rate."""
        return home_amount(self.balance, self.exchange_rate)

    @property
    def payment_home_amount(self) -> Decimal | None:
        """What its payment cost in the home currency, at the payment's own rate (None when no
        payment keeps a rate: the home currency, or nothing paid yet)."""
        if self.payment_amount is None or self.payment_exchange_rate is None:
            return None
        return home_amount(self.payment_amount, self.payment_exchange_rate)


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """An invoice with money still to collect (`balance` > 0)."""

    id: str
    customer_id: str | None
    customer_name: str
    amount: Decimal
    balance: Decimal
    due_date: date | None
    txn_date: date | None
    doc_number: str | None = None
    last_reminder_at: datetime | None = None
    reminders_sent: int = 0
    snoozed_until: datetime | None = None
    #: Who asked for the last reminder (a Slack user id or an email address).
    last_reminder_by: str | None = None
    currency: str | None = None
    #: The invoice's own rate (home units per unit of `currency`); 1 in the home currency.
    exchange_rate: Decimal = Decimal(1)

    @property
    def home_balance(self) -> Decimal:
        """The open balance in the home currency, at the invoice's exchange rate."""
        return home_amount(self.balance, self.exchange_rate)


@dataclass(frozen=True, slots=True)
class CustomerPayHistory:
    """How late a customer typically pays, from its paid invoices.

    `typical_days_late` is days after the due date (0 = on time, negative = early);
    `paid_invoices` is how many paid invoices the figure rests on.
    """

    customer_id: str
    typical_days_late: int
    paid_invoices: int = 0


@dataclass(frozen=True, slots=True)
class DatedTotal:
    """Plain open documents of one date: how many, and their open balances (home currency)."""

    #: The due date, else the transaction date (None: neither).
    on: date | None
    count: int
    balance: Decimal


@dataclass(frozen=True, slots=True)
class RowsRead(Generic[R]):
    """Rows `start` onwards of one list's plain documents, in the list's order, of `count`."""

    start: int = 0
    rows: tuple[R, ...] = ()
    count: int = 0
    balance: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class PlainDocuments:
    """The open bills and invoices with nothing for the Python rules to decide, summed in SQL.

    A plain bill is in the home currency with no workflow state (no approval, payment or snooze):
    its standing needs approval and it costs its open balance. A plain invoice is in the home
    currency and not snoozed. The others, few, are the snapshot's `open_bills` and
    `open_invoices`, whole. Only the rows a surface shows (`shown`) are read of the plain ones.
    """

    shown: ShownRows
    #: The bills due are those due within this many days from today.
    within_days: int
    #: Plain open bills by due date (else transaction date).
    bills: tuple[DatedTotal, ...] = ()
    #: Plain open invoices' balances by the day they are expected, in days from `today` (the due
    #: date, else the transaction date, else today, plus the customer's typical days late); days
    #: before the first week's end or after the 13th week's are cut (`InvoiceRepository.plain_expected`).
    invoices_expected: Mapping[int, Decimal] = field(default_factory=dict)
    overdue_bills: RowsRead[OpenBill] = RowsRead()
    bills_due: RowsRead[OpenBill] = RowsRead()
    overdue_invoices: RowsRead[OpenInvoice] = RowsRead()


@dataclass(frozen=True, slots=True)
class BooksSnapshot:
    """Everything the runway needs about one business, at one moment."""

    business_id: str
    #: The calendar day in the business's own timezone (see `business_today`).
    today: date
    #: IANA timezone name of the business, e.g. "America/Los_Angeles".
    tz: str
    currency: str
    banks: tuple[BankBalance, ...] = ()
    #: Undeposited Funds: received, not yet banked (shown apart from the cash on hand).
    undeposited: tuple[BankBalance, ...] = ()
    #: The company keeps foreign-currency transactions (QuickBooks' MultiCurrencyEnabled).
    multicurrency: bool = False
    #: QuickBooks' latest rate of each foreign currency the mirror has read (home units per
    #: unit): those of the cash accounts and of the open bills and invoices.
    rates: Mapping[str, Decimal] = field(default_factory=dict)
    #: Every open bill and invoice, or, when `plain` sums the plain ones, the others.
    open_bills: tuple[OpenBill, ...] = ()
    open_invoices: tuple[OpenInvoice, ...] = ()
    #: The plain open documents summed, with the rows shown (None: all are in the tuples above).
    plain: PlainDocuments | None = None
    #: Bills a message already shows that are no longer open (paid since): listed as they stand.
    shown_bills: tuple[OpenBill, ...] = ()
    #: Cash movements of (at least) the trailing window, any order.
    movements: tuple[CashMovement, ...] = ()
    pay_histories: tuple[CustomerPayHistory, ...] = ()
    #: When each QuickBooks entity type ("Account", "Bill", "Invoice", ...) was last synced.
    as_of: Mapping[str, datetime] = field(default_factory=dict)
    #: The cash the owner never wants to go below.
    min_cash_buffer: Decimal = Decimal("0.00")
    #: How the business's money and dates are written (`Business.locale`).
    locale: str = DEFAULT_LOCALE
    #: Bills above this amount need two different approvers.
    approval_threshold: Decimal = Decimal("5000.00")
    #: Each known identifier of the business's people mapped to all of that person's (a Slack id
    #: and an email address of one person).
    people: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def pay_history_for(self, customer_id: str | None) -> CustomerPayHistory | None:
        if customer_id is None:
            return None
        for history in self.pay_histories:
            if history.customer_id == customer_id:
                return history
        return None

    def typical_days_late(self) -> dict[str, int]:
        """Each customer with a pay history: its typical days late (one look-up per invoice)."""
        return {history.customer_id: history.typical_days_late for history in self.pay_histories}


__all__ = [
    "BankBalance",
    "BooksSnapshot",
    "CashFlowClass",
    "CashMovement",
    "CustomerPayHistory",
    "DatedTotal",
    "MovementKind",
    "OpenBill",
    "OpenInvoice",
    "PlainDocuments",
    "RowsRead",
    "business_today",
]


def business_today(now: datetime, tz: str) -> date:
    """The calendar day it is for a business in `tz` at the aware instant `now`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(
            "business_today needs a timezone-aware instant (e.g. datetime.now(UTC)); got a naive one"
        )
    return now.astimezone(ZoneInfo(tz)).date()
