"""RunwayCalculator against a small company whose figures are computed by hand below.

The hand-computed company ("Harbor Bakery", America/New_York, today = Monday 2025-03-31):

    Banks:     Checking 40,123.45 + Savings 20,000.00                 cash = 60,123.45
    Window:    90 days ending today inclusive = 2025-01-01 .. 2025-03-31
               (Jan 31 + Feb 28 + Mar 31 = 90 days)
    Movements inside the window:
      rent (purchase)            −3,000.00 on Jan 5, Feb 5, Mar 5   = −9,000.00
      payroll (bill payment)    −12,000.00 on Jan 15, Feb 15, Mar 15 = −36,000.00
      customer payments         +10,000.00 Jan 20, +8,000.00 Feb 20, +9,000.00 Mar 20 = +27,000.00
      transfer Checking→Savings  −5,000.00 and +5,000.00 on Feb 1   (not burn: excluded)
    Outside the window (ignored): −1,000.00 on 2024-12-31, −500.00 on 2025-04-01 (future)

    gross burn (cash out) = 9,000 + 36,000           = 45,000.00 over 90 days
    cash in               =                            27,000.00
    net burn              = 45,000 − 27,000          = 18,000.00 over 90 days
    per month (30 days)   = gross 45,000 × 30 / 90   = 15,000.00; net 18,000 × 30 / 90 = 6,000.00
    per day               = gross 45,000 / 90        =    500.00; net 18,000 / 90     =   200.00
    runway                = 60,123.45 / 200 = 300.61725 → rounded down = 300 days
    to the 20,000 buffer  = (60,123.45 − 20,000) / 200 = 200.61725 → 200 days
    paying a 1,250.00 bill now: 58,873.45 / 200 = 294.36725 → 294 days: impact −6 days
    collecting a 2,000.00 invoice: 62,123.45 / 200 = 310.61725 → 310 days: impact +10 days
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    CustomerPayHistory,
    MovementKind,
    OpenBill,
    OpenInvoice,
    business_today,
)
from runway.calculator import RunwayCalculator, RunwayStatus, WeeklyFigures

D = Decimal
SYNCED = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
TODAY = date(2025, 3, 31)


def movement(day: date, amount: str, kind: MovementKind) -> CashMovement:
    return CashMovement(date=day, amount=D(amount), kind=kind)


def bill(bill_id: str, vendor: str, balance: str, *, due: date) -> OpenBill:
    return OpenBill(
        id=bill_id,
        vendor_id=f"V-{bill_id}",
        vendor_name=vendor,
        amount=D(balance),
        balance=D(balance),
        due_date=due,
        txn_date=due - timedelta(days=30),
    )


def invoice(
    invoice_id: str, customer_id: str, customer: str, balance: str, *, due: date, total: str = ""
) -> OpenInvoice:
    return OpenInvoice(
        id=invoice_id,
        customer_id=customer_id,
        customer_name=customer,
        amount=D(total or balance),
        balance=D(balance),
        due_date=due,
        txn_date=due - timedelta(days=30),
    )


def hand_company(**changes: object) -> BooksSnapshot:
    """The company of the module docstring (its open bills and invoices feed the 13-week view)."""
    books = BooksSnapshot(
        business_id="harbor-bakery",
        today=TODAY,
        tz="America/New_York",
        currency="USD",
        banks=(
            BankBalance("35", "Checking", D("40123.45"), SYNCED),
            BankBalance("36", "Savings", D("20000.00"), SYNCED),
        ),
        movements=(
            *(
                movement(date(2025, month, 5), "-3000.00", MovementKind.PURCHASE)
                for month in (1, 2, 3)
            ),
            *(
                movement(date(2025, month, 15), "-12000.00", MovementKind.BILL_PAYMENT)
                for month in (1, 2, 3)
            ),
            movement(date(2025, 1, 20), "10000.00", MovementKind.CUSTOMER_PAYMENT),
            movement(date(2025, 2, 20), "8000.00", MovementKind.CUSTOMER_PAYMENT),
            movement(date(2025, 3, 20), "9000.00", MovementKind.CUSTOMER_PAYMENT),
            movement(date(2025, 2, 1), "-5000.00", MovementKind.TRANSFER),
            movement(date(2025, 2, 1), "5000.00", MovementKind.TRANSFER),
            movement(date(2024, 12, 31), "-1000.00", MovementKind.PURCHASE),
            movement(date(2025, 4, 1), "-500.00", MovementKind.PURCHASE),
        ),
        open_bills=(
            bill("B1", "Flour & Co", "1250.00", due=date(2025, 3, 25)),
            bill("B2", "Oven Lease", "4000.00", due=date(2025, 4, 10)),
            bill("B3", "Insurance", "2500.00", due=date(2025, 7, 15)),
        ),
        open_invoices=(
            invoice("I1", "C1", "Café Uno", "3000.00", due=date(2025, 4, 2)),
            invoice("I2", "C2", "Deli Two", "1500.00", due=date(2025, 3, 1)),
            invoice("I3", "C3", "Hotel Three", "5000.00", due=date(2025, 3, 20), total="6000.00"),
            invoice("I4", "C4", "New Shop", "1000.00", due=date(2025, 4, 5)),
        ),
        pay_histories=(
            CustomerPayHistory("C1", typical_days_late=10, paid_invoices=6),
            CustomerPayHistory("C2", typical_days_late=5, paid_invoices=3),
            CustomerPayHistory("C3", typical_days_late=25, paid_invoices=4),
        ),
        as_of={"Account": SYNCED, "Bill": SYNCED, "Invoice": SYNCED},
        min_cash_buffer=D("20000.00"),
    )
    return replace(books, **changes)  # type: ignore[arg-type]


def test_hand_computed_company_cash_burn_and_runway() -> None:
    figures = RunwayCalculator().figures(hand_company())

    assert figures.cash.total == D("60123.45")
    assert [bank.name for bank in figures.cash.banks] == ["Checking", "Savings"]
    assert figures.cash.oldest_as_of == SYNCED

    burn = figures.burn
    assert (burn.window_start, burn.window_end, burn.window_days) == (date(2025, 1, 1), TODAY, 90)
    assert burn.gross == D("45000.00")
    assert burn.cash_in == D("27000.00")
    assert burn.net == D("18000.00")
    assert burn.gross_per_month == D("15000.00")
    assert burn.net_per_month == D("6000.00")
    assert burn.gross_per_day == D("500.00")
    assert burn.net_per_day == D("200.00")
    assert burn.sentence() == "net burn $6,000.00/month over the last 90 days"

    assert figures.runway.status is RunwayStatus.DAYS
    assert figures.runway.days == 300
    assert figures.runway.sentence() == "Runway: 300 days"

    assert figures.runway_to_buffer is not None
    assert figures.runway_to_buffer.days == 200
    assert figures.runway_to_buffer.sentence() == "Runway to your $20,000.00 buffer: 200 days"


def test_paying_a_bill_and_collecting_an_invoice_move_the_runway() -> None:
    calculator = RunwayCalculator()
    runway = calculator.figures(hand_company()).runway

    # Money moved today is cash *and* a movement of the 90-day window, as the next sync sees it.
    # Paying $1,250.00: cash 60,123.45 - 1,250.00 = 58,873.45; out 45,000.00 + 1,250.00 =
    # 46,250.00, in 27,000.00, net 19,250.00 per 90 days; 58,873.45 x 90 / 19,250.00 = 275.25.
    paying = calculator.bill_impact(runway, D("1250.00"))
    assert paying.after.cash == D("58873.45")
    assert paying.after.burn.net == D("19250.00")
    assert paying.after.days == 275
    assert paying.days == -25
    assert paying.sentence() == "−25 days of runway"

    # Collecting $2,000.00: cash 62,123.45; in 29,000.00, net 16,000.00; x 90 / 16,000 = 349.44.
    collecting = calculator.invoice_impact(runway, D("2000.00"))
    assert collecting.after.days == 349
    assert collecting.days == 49
    assert collecting.sentence() == "+49 days of runway"


def test_change_since_last_week_from_stored_figures() -> None:
    calculator = RunwayCalculator()
    last_week = WeeklyFigures(
        on=date(2025, 3, 24),
        status=RunwayStatus.DAYS,
        runway_days=306,
        cash=D("61000.00"),
        net_burn_per_month=D("5900.00"),
    )
    stored = WeeklyFigures.from_json(last_week.to_json())
    assert stored == last_week

    figures = calculator.figures(hand_company(), previous=stored)
    assert figures.trend is not None
    assert figures.trend.runway_days_change == -6
    assert figures.trend.cash_change == D("-876.55")
    assert figures.trend.net_burn_per_month_change == D("100.00")
    assert figures.trend.sentence() == "−6 since last week"
    assert figures.weekly_figures() == WeeklyFigures(
        TODAY, RunwayStatus.DAYS, 300, D("60123.45"), D("6000.00")
    )


def test_change_that_is_not_a_count_of_days_is_said_in_words() -> None:
    calculator = RunwayCalculator()
    last_week = WeeklyFigures(date(2025, 3, 24), RunwayStatus.DAYS, 120, D("1.00"), D("1.00"))
    # No cash moved this time: no count of days to compare with last week's 120.
    figures = calculator.figures(hand_company(movements=()), previous=last_week)
    assert figures.trend is not None
    assert figures.trend.runway_days_change is None
    assert figures.trend.sentence() == "was 120 days on Mar 24"

    positive = replace(last_week, status=RunwayStatus.CASH_FLOW_POSITIVE, runway_days=None)
    figures = calculator.figures(hand_company(), previous=positive)
    assert figures.trend is not None
    assert figures.trend.sentence() == "was cash-flow positive on Mar 24"


def test_cash_flow_positive_company_is_told_so() -> None:
    # Same company, but March brought in a large order: in 27,000 + 20,000 = 47,000 > out 45,000.
    books = hand_company()
    books = replace(
        books,
        movements=(
            *books.movements,
            movement(date(2025, 3, 28), "20000.00", MovementKind.DEPOSIT),
        ),
    )
    figures = RunwayCalculator().figures(books)

    assert figures.burn.net == D("-2000.00")
    assert figures.runway.status is RunwayStatus.CASH_FLOW_POSITIVE
    assert figures.runway.days is None
    assert figures.runway.sentence() == "Cash-flow positive over the last 90 days"
    assert figures.burn.sentence() == "net inflow $666.67/month over the last 90 days"
    assert "infinite" not in figures.runway.sentence().lower()


def test_zero_cash_is_zero_days_stated_plainly() -> None:
    books = hand_company(
        banks=(BankBalance("35", "Checking", D("0.00"), SYNCED),), min_cash_buffer=D("0.00")
    )
    figures = RunwayCalculator().figures(books)

    assert figures.runway.status is RunwayStatus.NO_CASH
    assert figures.runway.days == 0
    assert figures.runway.sentence() == "Out of cash: $0.00 in the bank (0 days)"
    assert figures.runway_to_buffer is None


def test_negative_cash_is_zero_days_and_collecting_counts_from_zero() -> None:
    calculator = RunwayCalculator()
    books = hand_company(banks=(BankBalance("35", "Checking", D("-750.00"), SYNCED),))
    figures = calculator.figures(books)

    assert figures.cash.total == D("-750.00")
    assert figures.runway.status is RunwayStatus.NO_CASH
    assert figures.runway.days == 0
    assert figures.runway.sentence() == "Out of cash: −$750.00 in the bank (0 days)"
        # Collecting 2,000.00 leaves 1,250.00; the window gains the cash in too (net 16,000.00 per
        # 90 days): 1,250 x 90 / 16,000 = 7.03 → 7 days.
    assert calculator.invoice_impact(figures.runway, D("2000.00")).days == 7
    # Paying a bill when already out of cash cannot take away days that are not there.
    assert calculator.bill_impact(figures.runway, D("100.00")).days == 0


def test_cash_below_the_buffer_is_zero_days_to_the_buffer() -> None:
    books = hand_company(banks=(BankBalance("35", "Checking", D("15000.00"), SYNCED),))
    figures = RunwayCalculator().figures(books)

    # 15,000 / 200 = 75 days to zero, but it is already 5,000 below the 20,000 buffer.
    assert figures.runway.days == 75
    assert figures.runway_to_buffer is not None
    assert figures.runway_to_buffer.status is RunwayStatus.NO_CASH
    assert figures.runway_to_buffer.days == 0
    assert figures.runway_to_buffer.sentence() == (
        "Below your $20,000.00 buffer: $15,000.00 in the bank (0 days)"
    )


def test_company_with_no_history() -> None:
    books = hand_company(movements=(), open_bills=(), open_invoices=(), pay_histories=())
    figures = RunwayCalculator().figures(books)

    assert figures.burn.gross == D("0.00")
    assert figures.burn.movements_counted == 0
    assert figures.burn.sentence() == "no cash moved over the last 90 days"
    assert figures.runway.status is RunwayStatus.NO_HISTORY
    assert figures.runway.days is None
    assert figures.runway.sentence() == "Runway unknown: no cash moved over the last 90 days"
    # Without a burn there is no count of days for a payment to change.
    impact = RunwayCalculator().bill_impact(figures.runway, D("10.00"))
    assert impact.days is None
    assert impact.sentence() == "no change in runway days"


def test_today_follows_the_business_timezone() -> None:
    # 2025-03-31 20:00 UTC is 13:00 on Mar 31 in Los Angeles and 09:00 on Apr 1 in Auckland.
    instant = datetime(2025, 3, 31, 20, 0, tzinfo=UTC)
    la_today = business_today(instant, "America/Los_Angeles")
    nz_today = business_today(instant, "Pacific/Auckland")
    assert (la_today, nz_today) == (date(2025, 3, 31), date(2025, 4, 1))

    # The same books: the Jan 5 rent is in both windows, but the window of Auckland
    # (Jan 2 .. Apr 1) has lost Jan 1 and gained Apr 1's −500.00 purchase.
    books = hand_company(
        movements=(
            *hand_company().movements,
            movement(date(2025, 1, 1), "-900.00", MovementKind.PURCHASE),
        )
    )
    la = RunwayCalculator().figures(replace(books, today=la_today, tz="America/Los_Angeles"))
    nz = RunwayCalculator().figures(replace(books, today=nz_today, tz="Pacific/Auckland"))

    assert la.burn.window_start == date(2025, 1, 1)
    assert nz.burn.window_start == date(2025, 1, 2)
    assert la.burn.gross == D("45900.00")  # 45,000 + Jan 1's 900
    assert nz.burn.gross == D("45500.00")  # 45,000 + Apr 1's 500


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        business_today(datetime(2025, 3, 31, 20, 0), "Pacific/Auckland")


def test_window_must_be_at_least_a_day() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        RunwayCalculator(window_days=0)
