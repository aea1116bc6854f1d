"""DigestBuilder: the weekly digest's view model, for the hand-computed company and for the
seeded sandbox company (its snapshot built here straight from the sandbox store's objects)."""

from __future__ import annotations

import statistics
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from test_calculator import SYNCED, hand_company

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
from runway.cash_flow import CashFlowClass
from runway.digest import BillTiming, DigestBuilder, bill_timing
from runway.lifecycle import BillState

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox

D = Decimal
NOW = datetime(2025, 3, 31, 16, 0, tzinfo=UTC)  # noon in New York, the hand company's "today"


def test_hand_company_digest_sections() -> None:
    books = hand_company()
    # Local workflow state: B2 (4,000.00) is under the 5,000.00 threshold and approved once;
    # a big bill due in two days was approved by one person and waits for a second.
    b2 = replace(books.open_bills[1], approved_by="U-ANA")
    big = OpenBill(
        id="B7",
        vendor_id="V7",
        vendor_name="Mixer <Pro> & Sons",
        amount=D("7500.00"),
        balance=D("7500.00"),
        due_date=date(2025, 4, 2),
        txn_date=date(2025, 3, 3),
        approved_by="U-ANA",
    )
    books = replace(books, open_bills=(books.open_bills[0], b2, books.open_bills[2], big))
    last_week = WeeklyFigures(date(2025, 3, 24), RunwayStatus.DAYS, 306, D("61000.00"), D("6000"))

    view = DigestBuilder().build(
        books, now=NOW, previous=last_week, drift=("Bill 12 was changed in QuickBooks.",)
    )

    assert view.headline == "Runway: 300 days (−6 since last week)"
    assert view.cash.total == D("60123.45")
    assert [bank.name for bank in view.cash.banks] == ["Checking", "Savings"]
    assert view.burn.sentence == "net burn $6,000.00/month over the last 90 days"
    assert (view.burn.gross, view.burn.net, view.burn.window_days) == (
        D("45000.00"),
        D("18000.00"),
        90,
    )
    assert view.runway.days_to_buffer == 200
    assert view.runway.days_change == -6

    # Overdue: B1 (due Mar 25). Due by Apr 7: B7 (Apr 2). B2 (Apr 10) and B3 (Jul 15) are later.
    assert [bill.bill_id for bill in view.overdue_bills.items] == ["B1"]
    assert [bill.bill_id for bill in view.bills_due.items] == ["B7"]
    assert [bill.bill_id for bill in view.bills] == ["B1", "B7"]
    assert (view.overdue_bills.total, view.overdue_bills.left_amount) == (1, D("1250.00"))
    assert (view.bills_due.total, view.bills_due.left_amount) == (1, D("7500.00"))
    assert view.within_days == 7
    [overdue_bill], [big_bill] = view.overdue_bills.items, view.bills_due.items
    assert overdue_bill.days_until_due == -6
    assert overdue_bill.state is BillState.NEEDS_APPROVAL
    assert overdue_bill.runway_impact_days == -25  # worked out in test_calculator
    assert overdue_bill.runway_impact == "−25 days of runway"
    # 7,500.00 now: cash 52,623.45, net 25,500.00 per 90 days → 185.7 → 185 days: −115.
    assert big_bill.runway_impact_days == -115
    assert big_bill.state is BillState.NEEDS_SECOND_APPROVAL
    assert (big_bill.standing.approvals_required, big_bill.approved_by) == (2, ("U-ANA",))
    assert big_bill.vendor_name == "Mixer <Pro> & Sons"  # raw: the renderer escapes

    assert [item.bill_id for item in view.approvals.items] == ["B7"]

    # Overdue on Mar 31: I2 (due Mar 1, 30 days) and I3 (due Mar 20, 11 days), longest first.
    assert [(i.invoice_id, i.days_overdue) for i in view.overdue_invoices.items] == [
        ("I2", 30),
        ("I3", 11),
    ]
    assert view.overdue_invoices.items[1].amount == D("5000.00")
    # Collecting I3's 5,000.00: cash 65,123.45, net 13,000.00 per 90 days → 450.9 → 450: +150.
    assert view.overdue_invoices.items[1].runway_impact_days == 150

    assert view.drift.items == ("Bill 12 was changed in QuickBooks.",)
    assert view.freshness.oldest == SYNCED
    assert view.figures_to_keep.runway_days == 300
    assert view.runway.first_week_below_zero is None


def test_snoozed_items_leave_the_lists_and_are_counted() -> None:
    books = hand_company()
    later = NOW + timedelta(days=3)
    snoozed_bill = replace(books.open_bills[0], snoozed_until=later)
    snoozed_invoice = replace(books.open_invoices[1], snoozed_until=later)
    books = replace(
        books,
        open_bills=(snoozed_bill, *books.open_bills[1:]),
        open_invoices=(books.open_invoices[0], snoozed_invoice, *books.open_invoices[2:]),
    )
    view = DigestBuilder().build(books, now=NOW)
    assert view.overdue_bills.total == view.bills_due.total == 0
    # B1 is overdue: it is counted as snoozed in the overdue part.
    assert (view.overdue_bills.snoozed, view.bills_due.snoozed, view.snoozed_bills) == (1, 0, 1)
    assert [i.invoice_id for i in view.overdue_invoices.items] == ["I3"]
    assert view.snoozed_invoices == 1
    # A snooze that has run out no longer hides anything.
    assert DigestBuilder().build(books, now=later + timedelta(seconds=1)).overdue_bills.total == 1


def test_headline_for_a_cash_flow_positive_company_and_an_empty_one() -> None:
    books = hand_company()
    positive = replace(
        books,
        movements=(
            *books.movements,
            CashMovement(date(2025, 3, 28), D("20000.00"), MovementKind.DEPOSIT),
        ),
    )
    view = DigestBuilder().build(positive, now=NOW)
    assert view.headline == "Cash-flow positive over the last 90 days"
    assert view.overdue_bills.items[0].runway_impact_days is None

    empty = hand_company(banks=(), movements=(), open_bills=(), open_invoices=(), as_of={})
    view = DigestBuilder().build(empty, now=NOW)
    assert view.headline == "Out of cash: $0.00 in the bank (0 days)"
    assert view.freshness.oldest is None
    assert not view.bills
    assert (view.overdue_invoices.total, view.approvals.total) == (0, 0)


def test_overdue_depends_on_the_business_timezone() -> None:
    # 2025-03-31 20:00 UTC: still Mar 31 in Los Angeles, already Apr 1 in Auckland.
    instant = datetime(2025, 3, 31, 20, 0, tzinfo=UTC)
    due_today_in_la = OpenInvoice(
        "I9", "C9", "Kiwi Roasters", D("800.00"), D("800.00"), date(2025, 3, 31), date(2025, 3, 1)
    )
    views = {}
    for tz in ("America/Los_Angeles", "Pacific/Auckland"):
        books = hand_company(
            tz=tz, today=business_today(instant, tz), open_invoices=(due_today_in_la,)
        )
        views[tz] = DigestBuilder().build(books, now=instant)
    assert views["America/Los_Angeles"].overdue_invoices.total == 0
    auckland = views["Pacific/Auckland"].overdue_invoices
    assert [(i.invoice_id, i.days_overdue) for i in auckland.items] == [("I9", 1)]


def test_a_bill_paid_since_keeps_its_place_in_its_part() -> None:
    """A message showed B1 (overdue) and B7 (due this week); B1 has been paid since. Drawn again,
    B1 stays in the overdue part, paid, and each part counts what is left to pay."""
    books = hand_company()
    big = replace(books.open_bills[1], id="B7", due_date=date(2025, 4, 2))
    paid = replace(books.open_bills[0], balance=D("0.00"), payment_state="paid")
    books = replace(books, open_bills=(big,), shown_bills=(paid,))
    view = DigestBuilder().build(books, now=NOW)
    assert [bill.bill_id for bill in view.overdue_bills.items] == ["B1"]
    assert view.overdue_bills.items[0].state is BillState.PAID
    assert (view.overdue_bills.total, len(view.overdue_bills.left)) == (1, 0)
    assert view.overdue_bills.left_amount == D("0.00")
    assert [bill.bill_id for bill in view.bills_due.left] == ["B7"]
    assert view.bills_due.left_amount == D("4000.00")


def test_bill_timing_at_the_edges_of_the_week() -> None:
    today = date(2025, 3, 31)
    assert bill_timing(date(2025, 3, 30), today, 7) is BillTiming.OVERDUE
    assert bill_timing(today, today, 7) is BillTiming.DUE_SOON  # due today is not overdue yet
    assert bill_timing(date(2025, 4, 7), today, 7) is BillTiming.DUE_SOON
    assert bill_timing(date(2025, 4, 8), today, 7) is None
    assert bill_timing(None, today, 7) is None


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        DigestBuilder().build(hand_company(), now=datetime(2025, 3, 31, 12, 0))


# --- the seeded sandbox company -------------------------------------------------------------


def amount(value: Any) -> Decimal:
    return Decimal(str(value))


def day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def sandbox_books(sandbox: Sandbox, now: datetime) -> BooksSnapshot:
    """A snapshot of the seeded company, read straight from the sandbox store's objects."""
    realm = sandbox.realm()
    tz = str(sandbox.tz_for(sandbox.realm_id))
    today = business_today(now, tz)
    bank_ids = {a["Id"] for a in realm.iter("Account") if a.get("AccountType") == "Bank"}
    banks = tuple(
        BankBalance(a["Id"], a["Name"], amount(a["CurrentBalance"]), now)
        for a in realm.iter("Account")
        if a["Id"] in bank_ids
    )
    bills = tuple(
        OpenBill(
            id=b["Id"],
            vendor_id=b["VendorRef"]["value"],
            vendor_name=b["VendorRef"]["name"],
            amount=amount(b["TotalAmt"]),
            balance=amount(b["Balance"]),
            due_date=day(b.get("DueDate")),
            txn_date=day(b.get("TxnDate")),
            doc_number=b.get("DocNumber"),
        )
        for b in realm.iter("Bill")
        if amount(b["Balance"]) > 0
    )
    invoices_by_id = {i["Id"]: i for i in realm.iter("Invoice")}
    invoices = tuple(
        OpenInvoice(
            id=i["Id"],
            customer_id=i["CustomerRef"]["value"],
            customer_name=i["CustomerRef"]["name"],
            amount=amount(i["TotalAmt"]),
            balance=amount(i["Balance"]),
            due_date=day(i.get("DueDate")),
            txn_date=day(i.get("TxnDate")),
            doc_number=i.get("DocNumber"),
        )
        for i in invoices_by_id.values()
        if amount(i["Balance"]) > 0
    )
    movements: list[CashMovement] = []
    days_late: dict[str, list[int]] = {}
    for p in realm.iter("Payment"):
        movements.append(
            CashMovement(
                date.fromisoformat(p["TxnDate"]),
                amount(p["TotalAmt"]),
                MovementKind.CUSTOMER_PAYMENT,
                source_id=p["Id"],
            )
        )
        for line in p.get("Line", []):
            for linked in line.get("LinkedTxn", []):
                invoice = invoices_by_id.get(linked["TxnId"])
                if invoice is not None and invoice.get("DueDate"):
                    late = date.fromisoformat(p["TxnDate"]) - date.fromisoformat(invoice["DueDate"])
                    days_late.setdefault(p["CustomerRef"]["value"], []).append(late.days)
    for bp in realm.iter("BillPayment"):
        if bp.get("PayType") == "Check":
            movements.append(
                CashMovement(
                    date.fromisoformat(bp["TxnDate"]),
                    -amount(bp["TotalAmt"]),
                    MovementKind.BILL_PAYMENT,
                )
            )
    for purchase in realm.iter("Purchase"):
        if purchase["AccountRef"]["value"] in bank_ids:
            sign = 1 if purchase.get("Credit") else -1
            movements.append(
                CashMovement(
                    date.fromisoformat(purchase["TxnDate"]),
                    sign * amount(purchase["TotalAmt"]),
                    MovementKind.PURCHASE,
                )
            )
    return BooksSnapshot(
        business_id="seeded-roaster",
        today=today,
        tz=tz,
        currency="USD",
        banks=banks,
        open_bills=bills,
        open_invoices=invoices,
        movements=tuple(movements),
        pay_histories=tuple(
            CustomerPayHistory(customer, int(statistics.median(lates)), len(lates))
            for customer, lates in days_late.items()
        ),
        as_of={
            "Account": now,
            "Bill": now - timedelta(hours=1),
            "Invoice": now - timedelta(hours=2),
        },
        min_cash_buffer=D("20000.00"),
    )


def test_overdue_bills_and_bills_due_this_week_are_two_parts_on_the_seeded_company(
    sandbox: Sandbox,
) -> None:
    """The heading "Bills due in the next 7 days" lists only bills due today through 7 days
    ahead; bills already past their due date are listed apart, as overdue. Counts and totals are
    computed here from the store's bills, not through Oodaloo's code."""
    now = sandbox.clock.now()
    books = sandbox_books(sandbox, now)
    today = books.today
    view = DigestBuilder().build(books, now=now)

    open_bills = [
        (date.fromisoformat(b["DueDate"]), amount(b["Balance"]), b["Id"])
        for b in sandbox.realm().iter("Bill")
        if amount(b["Balance"]) > 0
    ]
    overdue = [bill for bill in open_bills if bill[0] < today]
    due_soon = [bill for bill in open_bills if today <= bill[0] <= today + timedelta(days=7)]
    assert overdue and due_soon, "the seeded week has bills overdue and bills due"

    assert {bill.bill_id for bill in view.overdue_bills.items} == {bill[2] for bill in overdue}
    assert {bill.bill_id for bill in view.bills_due.items} == {bill[2] for bill in due_soon}
    assert all(bill.days_until_due < 0 for bill in view.overdue_bills.items)
    assert all(0 <= bill.days_until_due <= 7 for bill in view.bills_due.items)
    assert view.overdue_bills.total == len(overdue)
    assert view.overdue_bills.left_amount == sum((bill[1] for bill in overdue), D("0"))
    assert view.bills_due.total == len(due_soon)
    assert view.bills_due.left_amount == sum((bill[1] for bill in due_soon), D("0"))


def test_digest_of_the_seeded_sandbox_company(sandbox: Sandbox) -> None:
    now = sandbox.clock.now()
    books = sandbox_books(sandbox, now)
    realm = sandbox.realm()
    today = books.today
    assert books.open_bills and books.open_invoices and books.movements

    figures = RunwayCalculator().figures(books)
    previous = replace(
        figures.weekly_figures(),
        on=today - timedelta(days=7),
        runway_days=None if figures.runway.days is None else figures.runway.days + 4,
    )
    drift = ("Invoice 1196 was paid in QuickBooks but is open here.",)
    view = DigestBuilder().build(books, now=now, previous=previous, drift=drift)

    # Headline and figures.
    if figures.runway.status is RunwayStatus.DAYS:
        assert view.headline == f"Runway: {figures.runway.days} days (−4 since last week)"
    else:
        assert view.headline == figures.runway.sentence()
    bank_total = sum(
        (amount(a["CurrentBalance"]) for a in realm.iter("Account") if a["AccountType"] == "Bank"),
        D("0"),
    )
    assert view.cash.total == bank_total
    assert view.burn.window_days == 90 and view.burn.window_end == today

    # Bills overdue, then bills due within 7 days, computed here independently from the store:
    # each part soonest due first (the most overdue first), then the largest.
    last_day = today + timedelta(days=7)
    expected_bills = sorted(
        (
            (date.fromisoformat(b["DueDate"]), -amount(b["Balance"]), b["Id"])
            for b in realm.iter("Bill")
            if amount(b["Balance"]) > 0 and date.fromisoformat(b["DueDate"]) <= last_day
        ),
    )
    assert [bill.bill_id for bill in view.bills] == [key[2] for key in expected_bills]
    overdue_ids = [key[2] for key in expected_bills if key[0] < today]
    assert [bill.bill_id for bill in view.overdue_bills.items] == overdue_ids
    assert view.bills_due.total == len(expected_bills) - len(overdue_ids)
    assert view.bills_due.more_than(1) == max(0, view.bills_due.total - 1)
    due_days = [bill.days_until_due for bill in view.bills]
    assert due_days == sorted(due_days)
    assert all(bill.state is BillState.NEEDS_APPROVAL for bill in view.bills)

    # Overdue invoices: every open invoice past due, longest overdue first, names kept raw.
    expected_overdue = {
        i["Id"]: i
        for i in realm.iter("Invoice")
        if amount(i["Balance"]) > 0 and date.fromisoformat(i["DueDate"]) < today
    }
    overdue = view.overdue_invoices
    assert overdue.total == len(expected_overdue) > 0
    assert {line.invoice_id for line in overdue.items} == set(expected_overdue)
    keys = [(-line.days_overdue, -line.amount, line.invoice_id) for line in overdue.items]
    assert keys == sorted(keys)
    for line in overdue.items:
        stored = expected_overdue[line.invoice_id]
        assert line.customer_name == stored["CustomerRef"]["name"]
        assert line.amount == amount(stored["Balance"])
        assert line.days_overdue == (today - date.fromisoformat(stored["DueDate"])).days
    assert overdue.first(5) == overdue.items[:5]
    assert overdue.more_than(5) == max(0, overdue.total - 5)

    assert view.approvals.total == 0  # nobody has approved anything yet
    assert view.drift.items == drift
    assert view.freshness.oldest == now - timedelta(hours=2)
    assert {item.label for item in view.freshness.items} >= {"Bills", "Invoices", "Bank balances"}


def test_financing_undeposited_funds_and_foreign_banks_are_in_the_view() -> None:
    """The hand company (cash 60,123.45) plus: a euro account of €5,000.00 at QuickBooks' 1.10
    ($5,500.00, counted), a sterling account of £900.00 with no GBP rate yet (named, not counted),
    $800.00 in Undeposited Funds (apart), and over the window the owner putting in $10,000.00 and
    $1,200.00 of a loan repaid (left out of the burn: still $6,000.00/month)."""
    books = hand_company()
    euro = BankBalance("37", "Euro <account> & co", D("5000.00"), SYNCED, "EUR", D("1.10"))
    sterling = BankBalance("38", "Sterling", D("900.00"), SYNCED, "GBP", None)
    financing = (
        CashMovement(
            date(2025, 3, 3),
            D("10000.00"),
            MovementKind.DEPOSIT,
            flow=CashFlowClass.FINANCING,
            counter_account_type="Equity",
        ),
        CashMovement(
            date(2025, 3, 5),
            D("-1200.00"),
            MovementKind.PURCHASE,
            flow=CashFlowClass.FINANCING,
            counter_account_type="Long Term Liability",
        ),
    )
    books = replace(
        books,
        banks=(*books.banks, euro, sterling),
        undeposited=(BankBalance("4", "Undeposited Funds", D("800.00"), SYNCED),),
        movements=(*books.movements, *financing),
    )

    view = DigestBuilder().build(books, now=NOW)

    assert view.cash.total == D("65623.45")  # 60,123.45 + 5,500.00; the pounds left out
    lines = {bank.name: bank for bank in view.cash.banks}
    assert (lines["Euro <account> & co"].currency, lines["Euro <account> & co"].home_balance) == (
        "EUR",
        D("5500.00"),
    )
    assert lines["Euro <account> & co"].not_counted_sentence() is None
    assert not lines["Sterling"].counted
    assert lines["Sterling"].not_counted_sentence() == (
        "no GBP rate from QuickBooks yet, not counted"
    )
    assert view.cash.undeposited == D("800.00")
    assert view.cash.undeposited_sentence == "$800.00 received, not yet deposited"
    assert view.burn.sentence == "net burn $6,000.00/month over the last 90 days"
    assert (view.financing.owner_in, view.financing.loans_repaid) == (D("10000.00"), D("1200.00"))
    assert view.financing.net == D("8800.00")
    assert view.financing.sentences == (
        "Owner put in $10,000.00 over the last 90 days",
        "Loans repaid $1,200.00 over the last 90 days",
    )

    plain = DigestBuilder().build(hand_company(), now=NOW)
    assert plain.financing.sentence is None and plain.cash.undeposited_sentence is None


def test_break_even_is_worded_as_such_in_the_headline_trend_and_bills() -> None:
    """Out 45,000.00 and in 27,000.00 + 18,000.00 (Mar 28): exactly break-even. Paying B1
    (1,250.00) starts a count: 58,873.45 × 90 / 1,250.00 = 4,238.9 → 4238 days."""
    books = hand_company()
    books = replace(
        books,
        movements=(
            *books.movements,
            CashMovement(date(2025, 3, 28), D("18000.00"), MovementKind.DEPOSIT),
        ),
    )
    last_week = WeeklyFigures(date(2025, 3, 24), RunwayStatus.DAYS, 306, D("61000.00"), D("6000"))

    view = DigestBuilder().build(books, now=NOW, previous=last_week)

    assert view.runway.status is RunwayStatus.BREAK_EVEN
    assert view.headline == "Break-even over the last 90 days: as much came in as went out"
    assert view.runway.trend_sentence == "was 306 days on Mon 24 Mar"
    assert view.burn.sentence == "break-even over the last 90 days: $45,000.00 in and out"
    [b1] = view.overdue_bills.items
    assert b1.runway_impact_days is None
    assert b1.runway_impact == "runway after paying: 4238 days"
    assert b1.moves_runway
    assert "positive" not in view.headline.lower()

    # A week later the runway counts days again; last week was break-even, and is called so.
    was_even = replace(view.figures_to_keep, on=date(2025, 3, 24))
    counted = DigestBuilder().build(hand_company(), now=NOW, previous=was_even)
    assert counted.headline == "Runway: 300 days (was break-even on Mon 24 Mar)"
