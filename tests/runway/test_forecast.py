"""The 13-week view of the hand-computed company of test_calculator, worked out step by step.

Today = Monday 2025-03-31; week 1 = Mar 31 .. Apr 6, week 2 = Apr 7 .. Apr 13,
week 3 = Apr 14 .. Apr 20, ..., week 13 = Jun 23 .. Jun 29. Starting cash 60,123.45.

Baseline, from the 90-day window (Jan 1 .. Mar 31), × 7 / 90 a week:
  bill spend    payroll (bill payments) 3 × 12,000.00 = 36,000.00 → 2,800.00 a week
  other spend   rent (purchases)         3 ×  3,000.00 =  9,000.00 →   700.00 a week
  collections   customer payments 10,000 + 8,000 + 9,000 = 27,000.00 → 2,100.00 a week
  other income  none                                               →     0.00
  (the transfer Checking → Savings is neither in nor out)

Open invoices, due date + the customer's typical days late:
  I1 Café Uno     3,000.00 due Apr 2  + 10 days → Apr 12 → week 2
  I2 Deli Two     1,500.00 due Mar 1  +  5 days → Mar 6, already past → week 1
  I3 Hotel Three  5,000.00 due Mar 20 + 25 days → Apr 14 → week 3 (overdue now, paid later)
  I4 New Shop     1,000.00 due Apr 5, no history (+0) → week 1
Open bills, by due date:
  B1 Flour & Co   1,250.00 due Mar 25 (overdue) → week 1
  B2 Oven Lease   4,000.00 due Apr 10 → week 2
  B3 Insurance    2,500.00 due Jul 15 → after week 13

Each week: in  = invoices + max(0, 2,100 − invoices) + 0
           out = bills + max(0, 2,800 − bills) + 700
  week 1: in 2,500 (2,500 > 2,100)   out 1,250 + 1,550 + 700 = 3,500   60,123.45 − 1,000 = 59,123.45
  week 2: in 3,000                   out 4,000 +     0 + 700 = 4,700   59,123.45 − 1,700 = 57,423.45
  week 3: in 5,000                   out     0 + 2,800 + 700 = 3,500   57,423.45 + 1,500 = 58,923.45
  weeks 4..13: in 2,100, out 3,500, −1,400 each      58,923.45 − 10 × 1,400 = 44,923.45
With nothing entered, the view falls by the trailing net burn: 18,000.00 per 90 days = 1,400 a week.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from hypothesis import given
from hypothesis import strategies as st
from test_calculator import SYNCED, TODAY, bill, hand_company, invoice, movement
from test_digest import sandbox_books

from runway.books import BankBalance, CashFlowClass, CashMovement, MovementKind
from runway.calculator import cents
from runway.forecast import Baseline, thirteen_week_forecast, week_number

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox

D = Decimal


def test_thirteen_weeks_of_the_hand_computed_company() -> None:
    forecast = thirteen_week_forecast(hand_company())

    assert forecast.baseline == Baseline(
        bill_spend=D("2800.00"),
        other_spend=D("700.00"),
        collections=D("2100.00"),
        other_income=D("0.00"),
    )
    assert len(forecast.weeks) == 13
    first, second, third = forecast.weeks[:3]

    assert (first.start, first.end) == (date(2025, 3, 31), date(2025, 4, 6))
    assert first.starting_balance == D("60123.45")
    assert (first.invoice_inflows, first.baseline_inflows) == (D("2500.00"), D("0.00"))
    assert (first.bill_outflows, first.baseline_outflows) == (D("1250.00"), D("2250.00"))
    assert first.ending_balance == D("59123.45")

    assert (second.start, second.end) == (date(2025, 4, 7), date(2025, 4, 13))
    assert second.starting_balance == D("59123.45")
    assert (second.inflows, second.outflows) == (D("3000.00"), D("4700.00"))
    assert second.ending_balance == D("57423.45")

    assert (third.invoice_inflows, third.bill_outflows) == (D("5000.00"), D("0.00"))
    assert (third.inflows, third.outflows) == (D("5000.00"), D("3500.00"))
    assert third.ending_balance == D("58923.45")

    for week in forecast.weeks[3:]:
        assert (week.invoice_inflows, week.baseline_inflows) == (D("0.00"), D("2100.00"))
        assert (week.bill_outflows, week.baseline_outflows) == (D("0.00"), D("3500.00"))
    assert [week.ending_balance for week in forecast.weeks[3:]] == [
        D("58923.45") - 1400 * n for n in range(1, 11)
    ]
    assert forecast.weeks[-1].end == date(2025, 6, 29)
    assert forecast.ending_balance == D("44923.45")
    assert forecast.outflows_after_horizon == D("2500.00")
    assert forecast.inflows_after_horizon == D("0.00")
    assert forecast.first_week_below_zero is None
    assert forecast.first_week_below_buffer is None


def test_with_nothing_entered_cash_falls_by_the_trailing_net_burn() -> None:
    forecast = thirteen_week_forecast(hand_company(open_bills=(), open_invoices=()))
    # 45,000.00 out and 27,000.00 in over 90 days: 18,000.00 × 7 / 90 = 1,400.00 a week.
    assert {week.net for week in forecast.weeks} == {D("-1400.00")}
    assert forecast.ending_balance == D("60123.45") - 13 * D("1400.00")  # 41,923.45


def test_owner_money_and_transfers_are_not_in_the_baseline() -> None:
    books = hand_company()
    owner = CashMovement(
        date(2025, 3, 10),
        D("10000.00"),
        MovementKind.DEPOSIT,
        flow=CashFlowClass.FINANCING,
        counter_account_type="Equity",
    )
    loan_repaid = CashMovement(
        date(2025, 3, 12),
        D("-1500.00"),
        MovementKind.PURCHASE,
        flow=CashFlowClass.FINANCING,
        counter_account_type="Long Term Liability",
    )
    transfer = movement(date(2025, 3, 11), "-2500.00", MovementKind.TRANSFER)
    with_them = replace(books, movements=(*books.movements, owner, loan_repaid, transfer))
    assert thirteen_week_forecast(with_them).weeks == thirteen_week_forecast(books).weeks
    # The same money as operating cash (a sale, an expense) is in the baseline.
    operating = replace(
        books,
        movements=(
            *books.movements,
            replace(owner, flow=CashFlowClass.OPERATING),
            replace(loan_repaid, flow=CashFlowClass.OPERATING),
        ),
    )
    baseline = thirteen_week_forecast(operating).baseline
    # 10,000 × 7 / 90 = 777.777… → 777.78; (9,000 + 1,500) × 7 / 90 = 816.666… → 816.67.
    assert (baseline.other_income, baseline.other_spend) == (D("777.78"), D("816.67"))


def test_first_weeks_below_the_buffer_and_below_zero() -> None:
    # Only 8,000.00 in the bank, a 5,000.00 buffer (net of each week as worked out above):
    #   week 1: 8,000 − 1,000 = 7,000.00    week 2: 7,000 − 1,700 = 5,300.00
    #   week 3: 5,300 + 1,500 = 6,800.00    week 4: 6,800 − 1,400 = 5,400.00
    #   week 5: 4,000.00 < 5,000 (below the buffer); week 6: 2,600; week 7: 1,200;
    #   week 8: −200.00 (below zero).
    books = hand_company(
        banks=(BankBalance("35", "Checking", D("8000.00"), SYNCED),),
        min_cash_buffer=D("5000.00"),
    )
    forecast = thirteen_week_forecast(books)
    below_buffer = forecast.first_week_below_buffer
    assert below_buffer is not None
    assert (below_buffer.number, below_buffer.ending_balance) == (5, D("4000.00"))
    below_zero = forecast.first_week_below_zero
    assert below_zero is not None
    assert (below_zero.number, below_zero.ending_balance) == (8, D("-200.00"))

    # A 9,000.00 bill due in week 2 makes its bills 13,000.00, more than the 2,800.00 typical:
    # out 13,000 + 0 + 700 = 13,700, in 3,000: week 2 ends 7,000 − 10,700 = −3,700.00.
    books = replace(
        books,
        open_bills=(*books.open_bills, bill("B9", "Big Oven", "9000.00", due=date(2025, 4, 8))),
    )
    forecast = thirteen_week_forecast(books)
    below_zero = forecast.first_week_below_zero
    assert below_zero is not None
    assert below_zero.number == 2
    assert below_zero.ending_balance == D("-3700.00")
    assert forecast.first_week_below_buffer is not None
    # Week 1 ends at 7,000.00, above the buffer: week 2 is the first below both.
    assert forecast.first_week_below_buffer.number == 2


def test_payment_in_flight_leaves_in_week_one() -> None:
    books = hand_company()
    in_flight = replace(books.open_bills[1], payment_in_flight=True)  # B2, due Apr 10
    forecast = thirteen_week_forecast(replace(books, open_bills=(books.open_bills[0], in_flight)))
    assert forecast.weeks[0].bill_outflows == D("5250.00")
    assert forecast.weeks[1].bill_outflows == D("0.00")
    # Week 1's 5,250.00 of bills cover its 2,800.00 of typical bill spend; week 2 has none left.
    assert forecast.weeks[0].baseline_outflows == D("700.00")
    assert forecast.weeks[1].baseline_outflows == D("3500.00")


def test_company_with_no_history_has_no_baseline() -> None:
    books = hand_company(movements=(), open_bills=(), open_invoices=(), pay_histories=())
    forecast = thirteen_week_forecast(books)
    assert forecast.baseline == Baseline()
    assert {week.ending_balance for week in forecast.weeks} == {D("60123.45")}


def test_week_numbers() -> None:
    today = date(2025, 3, 31)
    assert week_number(today, date(2025, 1, 1)) == 1
    assert week_number(today, today) == 1
    assert week_number(today, date(2025, 4, 6)) == 1
    assert week_number(today, date(2025, 4, 7)) == 2
    assert week_number(today, date(2025, 6, 29)) == 13
    assert week_number(today, date(2025, 6, 30)) == 14


@given(
    bills=st.lists(st.tuples(st.integers(-30, 120), st.integers(1, 2_000_000)), max_size=12),
    invoices=st.lists(st.tuples(st.integers(-30, 120), st.integers(1, 2_000_000)), max_size=12),
)
def test_each_week_spends_and_receives_at_least_its_typical_amounts(
    bills: list[tuple[int, int]], invoices: list[tuple[int, int]]
) -> None:
    """Whatever is entered: a week pays at least its typical spending and its entered bills, and
    receives at least its typical income and the invoices expected in it, never both counted."""
    books = hand_company(
        open_bills=tuple(
            bill(f"B{n}", "Vendor", str(D(cents) / 100), due=TODAY + timedelta(days=days))
            for n, (days, cents) in enumerate(bills)
        ),
        open_invoices=tuple(
            invoice(
                f"I{n}", f"C{n}", "Customer", str(D(cents) / 100), due=TODAY + timedelta(days=days)
            )
            for n, (days, cents) in enumerate(invoices)
        ),
    )
    forecast = thirteen_week_forecast(books)
    baseline = forecast.baseline
    balance = D("60123.45")
    for week in forecast.weeks:
        assert week.outflows == max(baseline.bill_spend, week.bill_outflows) + baseline.other_spend
        assert (
            week.inflows == max(baseline.collections, week.invoice_inflows) + baseline.other_income
        )
        assert week.starting_balance == balance
        balance = week.ending_balance
        assert balance == week.starting_balance + week.inflows - week.outflows
    entered = sum((D(c) / 100 for _, c in bills), D(0))
    placed = sum((week.bill_outflows for week in forecast.weeks), D(0))
    assert placed + forecast.outflows_after_horizon == entered


def test_the_seeded_company_keeps_spending_through_its_bills(sandbox: Sandbox) -> None:
    """The seeded company pays most of its spending through bills. Its 13-week view used to leave
    all of that out of the weekly baseline, so cash rose from week 5 once the bills entered ran
    out. Each week now spends at least the trailing weekly spend, computed here from the store's
    bill payments and bank purchases (not through Oodaloo's code); weeks without entered bills or
    expected invoices fall by the trailing weekly net."""
    now = sandbox.clock.now()
    books = sandbox_books(sandbox, now)
    realm = sandbox.realm()
    first = books.today - timedelta(days=89)
    banks = {a["Id"] for a in realm.iter("Account") if a.get("AccountType") == "Bank"}

    def in_window(obj: dict[str, object]) -> bool:
        return first <= date.fromisoformat(str(obj["TxnDate"])) <= books.today

    bill_spend = sum(
        (
            D(str(bp["TotalAmt"]))
            for bp in realm.iter("BillPayment")
            if bp.get("PayType") == "Check" and in_window(bp)
        ),
        D(0),
    )
    other_spend = sum(
        (
            D(str(p["TotalAmt"]))
            for p in realm.iter("Purchase")
            if p["AccountRef"]["value"] in banks and not p.get("Credit") and in_window(p)
        ),
        D(0),
    )
    collected = sum((D(str(p["TotalAmt"])) for p in realm.iter("Payment") if in_window(p)), D(0))
    weekly_spend = cents(bill_spend * 7 / 90) + cents(other_spend * 7 / 90)
    weekly_net = cents(collected * 7 / 90) - weekly_spend
    assert bill_spend > other_spend > 0, "the seeded company spends mostly through bills"

    forecast = thirteen_week_forecast(books)
    assert all(week.outflows >= weekly_spend for week in forecast.weeks)
    quiet = [w for w in forecast.weeks if not (w.bill_outflows or w.invoice_inflows)]
    assert quiet, "the last weeks have nothing entered yet"
    assert {week.net for week in quiet} == {weekly_net}
    assert weekly_net < 0
    assert quiet[-1].ending_balance < quiet[0].starting_balance


def test_the_backtest_reads_the_books_as_they_stood_on_the_day(sandbox: Sandbox) -> None:
    """`bench/forecast_backtest.py` forecasts from the books of 13 weeks ago: nothing dated on or
    after that day, each bill and invoice with the balance it had then, the banks as they were."""
    from bench.forecast_backtest import books_as_of

    now = sandbox.clock.now()
    books = sandbox_books(sandbox, now)
    realm = sandbox.realm()
    day = books.today - timedelta(days=91)
    then = books_as_of(books, realm, day)

    assert then.today == day and not then.shown_bills
    assert all(movement.date < day for movement in then.movements)
    assert {m for m in books.movements if m.date < day} == set(then.movements)
    assert then.open_bills and then.open_invoices
    for document in (*then.open_bills, *then.open_invoices):
        assert document.txn_date is not None and document.txn_date < day
        assert 0 < document.balance <= document.amount

    def paid(entity: str, linked: str, on_or_after: bool) -> dict[str, Decimal]:
        """Document id -> money applied to it by `entity` lines dated before `day` (or on and after)."""
        out: dict[str, Decimal] = {}
        for payment in realm.iter(entity):
            if (date.fromisoformat(payment["TxnDate"]) >= day) is not on_or_after:
                continue
            for line in payment["Line"]:
                for link in line.get("LinkedTxn", []):
                    if link["TxnType"] == linked:
                        out[link["TxnId"]] = out.get(link["TxnId"], D(0)) + D(str(line["Amount"]))
        return out

    for entity, linked, listed in (
        ("BillPayment", "Bill", then.open_bills),
        ("Payment", "Invoice", then.open_invoices),
    ):
        before, later = paid(entity, linked, False), paid(entity, linked, True)
        documents = {obj["Id"]: obj for obj in realm.iter(linked)}
        expected = {
            doc_id: D(str(obj["TotalAmt"])) - before.get(doc_id, D(0))
            for doc_id, obj in documents.items()
            if date.fromisoformat(obj["TxnDate"]) < day
            and D(str(obj["TotalAmt"])) - before.get(doc_id, D(0)) > 0
        }
        assert {doc.id: doc.balance for doc in listed} == expected
        # Some were paid off after the day (open then, settled now), and some entered after it.
        assert any(doc.id in later and D(str(documents[doc.id]["Balance"])) == 0 for doc in listed)
        assert any(date.fromisoformat(obj["TxnDate"]) >= day for obj in documents.values())

    # Customers' habits rest only on invoices paid in full before the day.
    collected = paid("Payment", "Invoice", False)
    finished_before = sum(
        1
        for invoice in realm.iter("Invoice")
        if collected.get(invoice["Id"], D(0)) >= D(str(invoice["TotalAmt"]))
    )
    assert 0 < sum(history.paid_invoices for history in then.pay_histories) <= finished_before

    # The banks at the start of a day are their balances at the end of the day before: read on
    # today (nothing is dated today), they are the balances QuickBooks shows now.
    current = {a["Id"]: D(str(a["CurrentBalance"])) for a in realm.iter("Account")}
    today_view = books_as_of(books, realm, books.today)
    assert {bank.account_id: bank.balance for bank in today_view.banks} == {
        bank.account_id: current[bank.account_id] for bank in books.banks
    }
    assert sum((bank.balance for bank in then.banks), D(0)) != sum(
        (bank.balance for bank in books.banks), D(0)
    )
