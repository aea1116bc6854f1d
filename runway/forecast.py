"""The 13-week forward view of one business's cash (pure over a `BooksSnapshot`).

Week 1 is the seven days starting today (in the business's timezone); week 13 ends 90 days later.
Each week: starting balance, expected inflows, expected outflows (bills plus baseline burn) and
ending balance. How each line is placed:

* an open invoice's balance arrives on its due date shifted by the customer's typical days
  late (`CustomerPayHistory`); an expected date already past lands in week 1, so an overdue
  invoice of a customer who usually pays 30 days late lands when those 30 days are up;
* an open bill's balance leaves on its due date; overdue bills (and bills whose payment is in
  flight) leave in week 1;
* the baseline burn is the spending that never was a bill (purchases and other outflows, not
  bill payments, not transfers) over the trailing window, spread evenly: window total × 7 /
  window days, rounded half up to cents once. Cash coming in from outside open invoices is
  not assumed, so the view errs on the side of less cash;
* a document with no due date uses its transaction date, and failing that today.

Lines expected after week 13 are not in the table; their totals are reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from runway.books import BooksSnapshot, MovementKind
from runway.calculator import DEFAULT_WINDOW_DAYS, RunwayCalculator, cents

WEEKS = 13
ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class ForecastWeek:
    number: int
    start: date
    end: date
    starting_balance: Decimal
    invoice_inflows: Decimal
    bill_outflows: Decimal
    baseline_outflows: Decimal
    ending_balance: Decimal

    @property
    def inflows(self) -> Decimal:
        return self.invoice_inflows

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
    baseline_per_week: Decimal
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


def baseline_burn_per_week(books: BooksSnapshot, window_days: int) -> Decimal:
    """Trailing spending that never was a bill, as an even weekly amount (cents, half up)."""
    calculator = RunwayCalculator(window_days)
    spent = sum(
        (
            -movement.amount
            for movement in calculator.in_window(books)
            if movement.amount < 0
            and movement.kind not in (MovementKind.BILL_PAYMENT, MovementKind.TRANSFER)
        ),
        ZERO,
    )
    return cents(spent * 7 / window_days)


def thirteen_week_forecast(
    books: BooksSnapshot, *, window_days: int = DEFAULT_WINDOW_DAYS, weeks: int = WEEKS
) -> Forecast:
    today = books.today
    inflows = [ZERO] * (weeks + 1)
    outflows = [ZERO] * (weeks + 1)
    inflows_after = ZERO
    outflows_after = ZERO

    for invoice in books.open_invoices:
        if invoice.balance <= 0:
            continue
        base = invoice.due_date or invoice.txn_date or today
        history = books.pay_history_for(invoice.customer_id)
        expected = base + timedelta(days=history.typical_days_late if history else 0)
        number = week_number(today, expected)
        if number <= weeks:
            inflows[number] += invoice.balance
        else:
            inflows_after += invoice.balance

    for bill in books.open_bills:
        if bill.balance <= 0:
            continue
        due = today if bill.payment_in_flight else (bill.due_date or bill.txn_date or today)
        number = week_number(today, due)
        if number <= weeks:
            outflows[number] += bill.balance
        else:
            outflows_after += bill.balance

    baseline = baseline_burn_per_week(books, window_days)
    balance = sum((bank.balance for bank in books.banks), ZERO)
    table: list[ForecastWeek] = []
    for number in range(1, weeks + 1):
        start = today + timedelta(days=7 * (number - 1))
        ending = balance + inflows[number] - outflows[number] - baseline
        table.append(
            ForecastWeek(
                number=number,
                start=start,
                end=start + timedelta(days=6),
                starting_balance=balance,
                invoice_inflows=inflows[number],
                bill_outflows=outflows[number],
                baseline_outflows=baseline,
                ending_balance=ending,
            )
        )
        balance = ending

    return Forecast(
        today=today,
        currency=books.currency,
        buffer=books.min_cash_buffer,
        baseline_per_week=baseline,
        weeks=tuple(table),
        inflows_after_horizon=inflows_after,
        outflows_after_horizon=outflows_after,
    )
