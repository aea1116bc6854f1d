"""The 13-week forward view of one business's cash (pure over a `BooksSnapshot`).

Week 1 is the seven days starting today (in the business's timezone); week 13 ends 90 days later.
Each week: starting balance, money expected in, money expected out, ending balance, all in the
home currency (a foreign bill or invoice at its own exchange rate). The starting balance of week 1
is the cash on hand (`RunwayCalculator.cash_on_hand`: the bank accounts; money waiting in
Undeposited Funds is not counted until it is banked).

What is known is placed on its date:

* an open bill's balance leaves on its due date; overdue bills (and bills whose payment is in
  flight) leave in week 1;
* an open invoice's balance arrives on its due date shifted by the customer's typical days late
  (`CustomerPayHistory`); an expected date already past lands in week 1, so an overdue invoice of
  a customer who usually pays 30 days late lands when those 30 days are up;
* a document with no due date uses its transaction date, and failing that today.

The plain open documents a snapshot sums in SQL (`BooksSnapshot.plain`) come as balances per due
date (bills) and per day expected (invoices), placed the same way.

Around it, the business goes on as it did over the trailing window (`window_days`, 90 by
default): its operating and investing cash, spread evenly (window total × 7 / window days, rounded
half up to cents once), in four parts (`Baseline`):

* **bill spend**: bill payments. Bills already entered are part of that spending, so they are not
  counted twice: a week pays its entered bills, and the trailing weekly bill spend only where it is
  larger (bill spend − entered bills of the week, never below zero);
* **collections**: customer payments, in the same way against the open invoices expected that
  week (collections − expected invoices of the week, never below zero);
* **other spend** (purchases, card and other payments) and **other income** (sales receipts,
  deposits, refunds received), which no entered document stands for, every week in full.

Financing (owner money, loans in and repaid) and transfers between the business's own accounts
are not in the baseline: they are not how the business earns or spends (the baseline counts the
classes burn counts, `BURN_CLASSES`, as `runway.cash_flow` classifies each movement).

So each week spends at least what a typical week of the window spent, and more where the bills
entered for it come to more; it receives what a typical week received, and more where the invoices
expected in it come to more. Bills come in lumps (payroll, rent, and every overdue bill in week 1)
more than collections do, so taking the larger on each side adds more spending than income to
the trailing rate: the view errs on the side of less cash. That is a tendency, not a bound that
holds every week; `bench/forecast_backtest.py` measures it on the seeded company (forecasts made
13 to 26 weeks ago against what the banks did since: on average they ended below what happened).

Lines expected after week 13 are not in the table; their totals are reported beside it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from runway.books import BooksSnapshot, CashMovement, MovementKind
from runway.calculator import BURN_CLASSES, DEFAULT_WINDOW_DAYS, RunwayCalculator, cents

WEEKS = 13
ZERO = Decimal("0.00")


class BaselinePart(enum.StrEnum):
    """Which part of the weekly baseline a trailing movement feeds."""

    BILL_SPEND = "bill_spend"
    OTHER_SPEND = "other_spend"
    COLLECTIONS = "collections"
    OTHER_INCOME = "other_income"


def baseline_part(movement: CashMovement) -> BaselinePart | None:
    """The baseline part of `movement`, or None when burn does not count it either (financing, a
    transfer between own accounts: `BURN_CLASSES`)."""
    if movement.cash_flow not in BURN_CLASSES or movement.amount == 0:
        return None
    if movement.amount < 0:
        if movement.kind is MovementKind.BILL_PAYMENT:
            return BaselinePart.BILL_SPEND
        return BaselinePart.OTHER_SPEND
    if movement.kind is MovementKind.CUSTOMER_PAYMENT:
        return BaselinePart.COLLECTIONS
    return BaselinePart.OTHER_INCOME


@dataclass(frozen=True, slots=True)
class Baseline:
    """The trailing window's operating and investing cash as even weekly amounts (cents, all
    positive): spending through bills and otherwise, money collected on invoices and otherwise."""

    bill_spend: Decimal = ZERO
    other_spend: Decimal = ZERO
    collections: Decimal = ZERO
    other_income: Decimal = ZERO

    @classmethod
    def of(cls, movements: Iterable[CashMovement], window_days: int) -> Baseline:
        totals = dict.fromkeys(BaselinePart, ZERO)
        for movement in movements:
            part = baseline_part(movement)
            if part is not None:
                totals[part] += abs(movement.amount)
        weekly = {part: cents(total * 7 / window_days) for part, total in totals.items()}
        return cls(**{part.value: amount for part, amount in weekly.items()})

    @property
    def spend(self) -> Decimal:
        return self.bill_spend + self.other_spend

    @property
    def income(self) -> Decimal:
        return self.collections + self.other_income


@dataclass(frozen=True, slots=True)
class ForecastWeek:
    number: int
    start: date
    end: date
    starting_balance: Decimal
    #: Open invoices expected this week.
    invoice_inflows: Decimal
    #: Other income, and typical collections beyond the invoices expected.
    baseline_inflows: Decimal
    #: Open bills due this week (overdue ones in week 1).
    bill_outflows: Decimal
    #: Other spending, and typical bill spending beyond the bills entered.
    baseline_outflows: Decimal
    ending_balance: Decimal

    @property
    def inflows(self) -> Decimal:
        return self.invoice_inflows + self.baseline_inflows

    @property
    def outflows(self) -> Decimal:
        return self.bill_outflows + self.baseline_outflows

    @property
    def net(self) -> Decimal:
        return self.inflows - self.outflows


@dataclass(frozen=True, slots=True)
class Forecast:
    today: date
    currency: str
    buffer: Decimal
    baseline: Baseline
    weeks: tuple[ForecastWeek, ...]
    #: Open invoice balances expected after the last week.
    inflows_after_horizon: Decimal
    #: Open bill balances due after the last week.
    outflows_after_horizon: Decimal

    @property
    def ending_balance(self) -> Decimal:
        return self.weeks[-1].ending_balance

    @property
    def first_week_below_zero(self) -> ForecastWeek | None:
        return next((week for week in self.weeks if week.ending_balance < 0), None)

    @property
    def first_week_below_buffer(self) -> ForecastWeek | None:
        """The first week ending under the buffer (under zero when no buffer is set)."""
        return next((week for week in self.weeks if week.ending_balance < self.buffer), None)


def week_number(today: date, day: date) -> int:
    """1 for the seven days starting today (and any day before), 2 for the next seven, ..."""
    return max(0, (day - today).days) // 7 + 1


def baseline_of(books: BooksSnapshot, window_days: int) -> Baseline:
    """The weekly baseline of the trailing `window_days` of `books`."""
    return Baseline.of(RunwayCalculator(window_days).in_window(books), window_days)


def thirteen_week_forecast(
    books: BooksSnapshot, *, window_days: int = DEFAULT_WINDOW_DAYS, weeks: int = WEEKS
) -> Forecast:
    today = books.today
    if books.plain is not None and weeks > WEEKS:
        raise ValueError(
            f"the books' plain documents are summed for {WEEKS} weeks, not {weeks}: read them "
            "with load_books(..., rows=None) for a longer view"
        )
    invoices = [ZERO] * (weeks + 1)
    bills = [ZERO] * (weeks + 1)
    inflows_after = ZERO
    outflows_after = ZERO

    days_late = books.typical_days_late()
    expected_in: list[tuple[int, Decimal]] = []
    for invoice in books.open_invoices:
        if invoice.balance <= 0:
            continue
        base = invoice.due_date or invoice.txn_date or today
        late = days_late.get(invoice.customer_id, 0) if invoice.customer_id else 0
        expected_in.append(((base - today).days + late, invoice.home_balance))
    if books.plain is not None:
        expected_in += books.plain.invoices_expected.items()
    for days, amount in expected_in:
        number = week_number(today, today + timedelta(days=days))
        if number <= weeks:
            invoices[number] += amount
        else:
            inflows_after += amount

    due_out: list[tuple[date, Decimal]] = []
    for bill in books.open_bills:
        if bill.balance <= 0:
            continue
        due = today if bill.payment_in_flight else (bill.due_date or bill.txn_date or today)
        due_out.append((due, bill.home_balance))
    if books.plain is not None:
        due_out += ((total.on or today, total.balance) for total in books.plain.bills)
    for due, amount in due_out:
        number = week_number(today, due)
        if number <= weeks:
            bills[number] += amount
        else:
            outflows_after += amount

    baseline = baseline_of(books, window_days)
    balance = RunwayCalculator(window_days).cash_on_hand(books).total
    table: list[ForecastWeek] = []
    for number in range(1, weeks + 1):
        start = today + timedelta(days=7 * (number - 1))
        baseline_in = max(ZERO, baseline.collections - invoices[number]) + baseline.other_income
        baseline_out = max(ZERO, baseline.bill_spend - bills[number]) + baseline.other_spend
        ending = balance + invoices[number] + baseline_in - bills[number] - baseline_out
        table.append(
            ForecastWeek(
                number=number,
                start=start,
                end=start + timedelta(days=6),
                starting_balance=balance,
                invoice_inflows=invoices[number],
                baseline_inflows=baseline_in,
                bill_outflows=bills[number],
                baseline_outflows=baseline_out,
                ending_balance=ending,
            )
        )
        balance = ending

    return Forecast(
        today=today,
        currency=books.currency,
        buffer=books.min_cash_buffer,
        baseline=baseline,
        weeks=tuple(table),
        inflows_after_horizon=inflows_after,
        outflows_after_horizon=outflows_after,
    )
