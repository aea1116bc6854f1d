"""The 13-week view of the hand-computed company of test_calculator, worked out step by step.

Today = Monday 2025-03-31; week 1 = Mar 31 .. Apr 6, week 2 = Apr 7 .. Apr 13,
week 3 = Apr 14 .. Apr 20, ..., week 13 = Jun 23 .. Jun 29. Starting cash 60,123.45.

Baseline burn (spending that never was a bill, over the 90-day window): rent 3 × 3,000.00
= 9,000.00 → 9,000 × 7 / 90 = 700.00 a week. (Payroll is paid through bills: not baseline.)

Open invoices, due date + the customer's typical days late:
  I1 Café Uno     3,000.00 due Apr 2  + 10 days → Apr 12 → week 2
  I2 Deli Two     1,500.00 due Mar 1  +  5 days → Mar 6, already past → week 1
  I3 Hotel Three  5,000.00 due Mar 20 + 25 days → Apr 14 → week 3 (overdue now, paid later)
  I4 New Shop     1,000.00 due Apr 5, no history (+0) → week 1
Open bills, by due date:
  B1 Flour & Co   1,250.00 due Mar 25 (overdue) → week 1
  B2 Oven Lease   4,000.00 due Apr 10 → week 2
  B3 Insurance    2,500.00 due Jul 15 → after week 13

  week 1: 60,123.45 + (1,500 + 1,000) − 1,250 − 700 = 60,673.45
  week 2: 60,673.45 + 3,000 − 4,000 − 700          = 58,973.45
  week 3: 58,973.45 + 5,000 − 700                   = 63,273.45
  weeks 4..13: − 700 each                           → 63,273.45 − 7,000 = 56,273.45
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

from test_calculator import SYNCED, bill, hand_company

from runway.books import BankBalance
from runway.forecast import thirteen_week_forecast, week_number

D = Decimal


def test_thirteen_weeks_of_the_hand_computed_company() -> None:
    forecast = thirteen_week_forecast(hand_company())

    assert forecast.baseline_per_week == D("700.00")
    assert len(forecast.weeks) == 13
    first, second, third = forecast.weeks[:3]

    assert (first.start, first.end) == (date(2025, 3, 31), date(2025, 4, 6))
    assert first.starting_balance == D("60123.45")
    assert first.invoice_inflows == D("2500.00")
    assert first.bill_outflows == D("1250.00")
    assert first.baseline_outflows == D("700.00")
    assert first.ending_balance == D("60673.45")

    assert (second.start, second.end) == (date(2025, 4, 7), date(2025, 4, 13))
    assert second.starting_balance == D("60673.45")
    assert (second.inflows, second.outflows) == (D("3000.00"), D("4700.00"))
    assert second.ending_balance == D("58973.45")

    assert third.invoice_inflows == D("5000.00")
    assert third.bill_outflows == D("0.00")
    assert third.ending_balance == D("63273.45")

    assert forecast.weeks[-1].end == date(2025, 6, 29)
    assert forecast.ending_balance == D("56273.45")
    assert forecast.outflows_after_horizon == D("2500.00")
    assert forecast.inflows_after_horizon == D("0.00")
    assert forecast.first_week_below_zero is None
    assert forecast.first_week_below_buffer is None


def test_first_weeks_below_the_buffer_and_below_zero() -> None:
    # Only 8,000.00 in the bank, a 5,000.00 buffer:
    #   week 1: 8,000 + 2,500 − 1,250 − 700 = 8,550.00
    #   week 2: 8,550 + 3,000 − 4,000 − 700 = 6,850.00
    #   week 3: 6,850 + 5,000 − 700         = 11,150.00
    #   then −700 a week: week 4 10,450 ... week 12 = 11,150 − 9 × 700 = 4,850.00 < 5,000
    #   week 13 = 4,150.00: never below zero in 13 weeks.
    books = hand_company(
        banks=(BankBalance("35", "Checking", D("8000.00"), SYNCED),),
        min_cash_buffer=D("5000.00"),
    )
    forecast = thirteen_week_forecast(books)
    below_buffer = forecast.first_week_below_buffer
    assert below_buffer is not None
    assert below_buffer.number == 12
    assert below_buffer.ending_balance == D("4850.00")
    assert forecast.first_week_below_zero is None

    # A 9,000.00 bill due in week 2 pulls week 2 to 6,850 − 9,000 = −2,150.00.
    books = replace(
        books,
        open_bills=(*books.open_bills, bill("B9", "Big Oven", "9000.00", due=date(2025, 4, 8))),
    )
    forecast = thirteen_week_forecast(books)
    below_zero = forecast.first_week_below_zero
    assert below_zero is not None
    assert below_zero.number == 2
    assert below_zero.ending_balance == D("-2150.00")
    assert forecast.first_week_below_buffer is not None
    # Week 1 ends at 8,550.00, above the buffer: week 2 is the first below both.
    assert forecast.first_week_below_buffer.number == 2


def test_payment_in_flight_leaves_in_week_one() -> None:
    books = hand_company()
    in_flight = replace(books.open_bills[1], payment_in_flight=True)  # B2, due Apr 10
    forecast = thirteen_week_forecast(replace(books, open_bills=(books.open_bills[0], in_flight)))
    assert forecast.weeks[0].bill_outflows == D("5250.00")
    assert forecast.weeks[1].bill_outflows == D("0.00")


def test_company_with_no_history_has_no_baseline() -> None:
    books = hand_company(movements=(), open_bills=(), open_invoices=(), pay_histories=())
    forecast = thirteen_week_forecast(books)
    assert forecast.baseline_per_week == D("0.00")
    assert {week.ending_balance for week in forecast.weeks} == {D("60123.45")}


def test_week_numbers() -> None:
    today = date(2025, 3, 31)
    assert week_number(today, date(2025, 1, 1)) == 1
    assert week_number(today, today) == 1
    assert week_number(today, date(2025, 4, 6)) == 1
    assert week_number(today, date(2025, 4, 7)) == 2
    assert week_number(today, date(2025, 6, 29)) == 13
    assert week_number(today, date(2025, 6, 30)) == 14
