"""The weekly digest as a typed view model: Slack and email render it without computing again.

`DigestBuilder.build` turns a `BooksSnapshot` (plus last week's stored figures and the drift
sentences the caller found) into a `DigestView`: every figure, sentence and list is decided here.
Lists are sorted by urgency and carry their count and totals whole, with the rows a surface shows
(`runway.shown_rows`; every row for a snapshot that read every open document); a renderer shows
as many as fit and says "and N more" with `Listing.more_than(n)`.

Bills to pay come in two parts, each with its own count and total, decided once by
`bill_timing`: *overdue* (due before today) and *due in the next N days* (today through N days
ahead). A bill due later is in neither.

Text that came from QuickBooks (vendor, customer and bank names, document numbers) is kept raw
in the view model, exactly as typed in QuickBooks: escaping it for Slack mrkdwn or HTML is the
renderer's job, so each renderer escapes for its own format and nothing is escaped twice.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from runway.books import BooksSnapshot, OpenBill, OpenInvoice, RowsRead
from runway.calculator import (
    RunwayCalculator,
    RunwayFigures,
    RunwayImpact,
    RunwayStatus,
    WeeklyFigures,
    cents,
    format_days,
)
from runway.cash_flow import home_amount
from runway.forecast import Forecast, thirteen_week_forecast
from runway.formatting import DEFAULT_LOCALE
from runway.lifecycle import IN_FLIGHT, BillStanding, BillState, standing_of
from runway.shown_rows import DUE_SOON_DAYS, EVERY_ROW, ShownRows, merged_window

T = TypeVar("T")

_CENTS = Decimal("0.00")
#: No plain rows: a snapshot with every open document as a row.
_NOTHING_READ: RowsRead[Any] = RowsRead()

#: Friendly names for the as-of times of the QuickBooks entity types in a snapshot.
ENTITY_LABELS = {
    "Account": "Bank balances",
    "Bill": "Bills",
    "Invoice": "Invoices",
    "BillPayment": "Bill payments",
    "Payment": "Customer payments",
    "Purchase": "Expenses",
    "Deposit": "Deposits",
    "Vendor": "Vendors",
    "Customer": "Customers",
}


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A list, most urgent first: the rows a surface shows (`items`, from row `offset` on) of
    `count` in all (None: `items` is the whole list)."""

    items: tuple[T, ...] = ()
    offset: int = 0
    count: int | None = None

    @property
    def total(self) -> int:
        return len(self.items) if self.count is None else self.count

    def first(self, n: int) -> tuple[T, ...]:
        """The rows among the first `n` of the list that are here."""
        return self.items[: max(0, n - self.offset)]

    def rows(self, start: int, stop: int) -> tuple[T, ...]:
        """The rows from `start` up to `stop` of the list that are here."""
        return self.items[max(0, start - self.offset) : max(0, stop - self.offset)]

    def more_than(self, n: int) -> int:
        """How many are left after the first `n`: the N of "and N more"."""
        return max(0, self.total - max(0, n))


class BillTiming(enum.StrEnum):
    """Which part of the digest's bills a bill is in."""

    #: Due before today.
    OVERDUE = "overdue"
    #: Due today or within the next `within_days` days.
    DUE_SOON = "due_soon"


def bill_timing(due: date | None, today: date, within_days: int) -> BillTiming | None:
    """The part a bill due on `due` belongs to on `today`; None when it is due later (or has no
    date at all): such a bill is not on the digest."""
    if due is None or due > today + timedelta(days=within_days):
        return None
    return BillTiming.OVERDUE if due < today else BillTiming.DUE_SOON


@dataclass(frozen=True, slots=True)
class BankLine:
    """One bank account: its balance in its own currency, and in the home currency."""

    account_id: str
    name: str
    #: In the account's own `currency`.
    balance: Decimal
    as_of: datetime
    currency: str
    #: The balance in the home currency at QuickBooks' latest rate; None when QuickBooks has given
    #: no rate for `currency` yet: the account is then left out of the cash on hand.
    home_balance: Decimal | None

    @property
    def counted(self) -> bool:
        return self.home_balance is not None

    def not_counted_sentence(self) -> str | None:
        """Why the account is left out of the cash: "no EUR rate from QuickBooks yet, not
        counted" (None when it is counted)."""
        if self.counted:
            return None
        return f"no {self.currency} rate from QuickBooks yet, not counted"


@dataclass(frozen=True, slots=True)
class CashSection:
    #: The bank accounts counted, in the home currency (`CashOnHand.total`).
    total: Decimal
    currency: str
    #: Every bank account, those without a rate yet included (`BankLine.counted`).
    banks: tuple[BankLine, ...]
    sentence: str
    #: Received and not yet deposited (Undeposited Funds), apart from `total`.
    undeposited: Decimal = Decimal("0.00")
    #: "$800.00 received, not yet deposited" (None when nothing waits).
    undeposited_sentence: str | None = None


@dataclass(frozen=True, slots=True)
class FinancingSection:
    """Financing cash over the burn's window, left out of the burn (`calculator.Financing`)."""

    owner_in: Decimal
    owner_out: Decimal
    loans_in: Decimal
    loans_repaid: Decimal
    net: Decimal
    window_days: int
    #: One sentence per figure that is not zero ("Owner put in $10,000.00 over the last 90 days").
    sentences: tuple[str, ...]
    #: The sentences joined, or None when no financing cash moved over the window.
    sentence: str | None


#: Why financing is a line of its own, said wherever it is shown.
FINANCING_LEFT_OUT = (
    "Not counted in burn: owner money and loans are not what the business earns or spends."
)


@dataclass(frozen=True, slots=True)
class BurnSection:
    gross: Decimal
    net: Decimal
    gross_per_month: Decimal
    net_per_month: Decimal
    net_per_day: Decimal
    window_days: int
    window_start: date
    window_end: date
    sentence: str


@dataclass(frozen=True, slots=True)
class RunwaySection:
    status: RunwayStatus
    days: int | None
    sentence: str
    buffer: Decimal
    #: Whole days to the buffer (None when no buffer is set or it is not a count of days).
    days_to_buffer: int | None
    buffer_sentence: str | None
    #: Change in whole days since last week's stored figures (None when not comparable).
    days_change: int | None
    trend_sentence: str | None
    #: The first week of the 13-week view ending below zero / below the buffer (1-based).
    first_week_below_zero: int | None
    first_week_below_buffer: int | None


@dataclass(frozen=True, slots=True)
class BillDue:
    """A bill on the digest's list: where it stands, and what paying it does to the runway."""

    standing: BillStanding
    #: Negative when overdue.
    days_until_due: int
    runway_impact_days: int | None
    runway_impact: str
    #: The bill's own currency (the home currency when QuickBooks names none).
    currency: str
    #: Home-currency units per unit of `currency` that paying it now costs (`rate_now`).
    rate: Decimal
    #: Paying it moves the runway: its days change, or a count starts where there was none
    #: (from break-even). A "no change" is not worth a line of its own.
    moves_runway: bool = False

    def in_home(self, amount: Decimal) -> Decimal:
        """`amount` of the bill's currency in the home currency, at what paying costs now."""
        return home_amount(amount, self.rate)

    @property
    def home_amount(self) -> Decimal:
        """What paying the open balance takes from the home-currency cash now."""
        return self.in_home(self.amount)

    @property
    def bill_id(self) -> str:
        return self.standing.bill_id

    @property
    def vendor_name(self) -> str:
        return self.standing.vendor_name

    @property
    def doc_number(self) -> str | None:
        return self.standing.doc_number

    @property
    def amount(self) -> Decimal:
        """What is still owed (the bill's open balance); what Pay pays."""
        return self.standing.balance

    @property
    def due_date(self) -> date | None:
        return self.standing.due_date

    @property
    def state(self) -> BillState:
        return self.standing.state

    @property
    def approved_by(self) -> tuple[str, ...]:
        return self.standing.approved_by

    @property
    def is_open(self) -> bool:
        """Still to be paid (not paid, not snoozed)."""
        return self.state is not BillState.PAID


@dataclass(frozen=True, slots=True)
class BillList(Listing[BillDue]):
    """One part of the digest's bills (overdue, or due soon), most urgent first."""

    #: Bills of this part left out because someone snoozed them.
    snoozed: int = 0
    #: How many bills of this part are still to pay (all of the part's, not only those here).
    left_count: int = 0
    #: What the bills still to pay take from the cash, in the home currency.
    left_amount: Decimal = Decimal("0.00")

    @property
    def left(self) -> tuple[BillDue, ...]:
        """The bills here still to pay."""
        return tuple(bill for bill in self.items if bill.is_open)


@dataclass(frozen=True, slots=True)
class OverdueInvoice:
    invoice_id: str
    customer_name: str
    doc_number: str | None
    #: The open balance, in `currency`.
    amount: Decimal
    due_date: date
    days_overdue: int
    last_reminder_at: datetime | None
    reminders_sent: int
    #: What collecting it now does to the runway (its `home_amount` arriving).
    runway_impact_days: int | None
    #: The invoice's own currency, and what collecting `amount` brings in the home currency now
    #: (`rate_now`).
    currency: str
    home_amount: Decimal
    last_reminder_by: str | None = None


@dataclass(frozen=True, slots=True)
class InvoiceList(Listing[OverdueInvoice]):
    """The overdue invoices, longest overdue first."""

    #: What they would all bring, in the home currency.
    amount: Decimal = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class PendingApproval:
    bill_id: str
    vendor_name: str
    #: The open balance, in `currency`.
    amount: Decimal
    due_date: date | None
    approval: BillState
    approvals_required: int
    approved_by: tuple[str, ...]
    #: The bill's own currency, and what paying `amount` costs in the home currency now.
    currency: str
    home_amount: Decimal


@dataclass(frozen=True, slots=True)
class FreshnessItem:
    label: str
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Freshness:
    #: The oldest as-of among the figures used: the whole digest is at least this fresh.
    oldest: datetime | None
    items: tuple[FreshnessItem, ...]


@dataclass(frozen=True, slots=True)
class DigestView:
    business_id: str
    today: date
    tz: str
    currency: str
    headline: str
    cash: CashSection
    burn: BurnSection
    #: Owner money and loans over the burn's window (left out of the burn).
    financing: FinancingSection
    runway: RunwaySection
    #: Bills past their due date, and bills due today or within `within_days` days. Each part
    #: also keeps the bills a message already showed that have been paid or snoozed since.
    overdue_bills: BillList
    bills_due: BillList
    overdue_invoices: InvoiceList
    approvals: Listing[PendingApproval]
    drift: Listing[str]
    freshness: Freshness
    forecast: Forecast
    #: What the caller stores so next week's digest can say what changed.
    figures_to_keep: WeeklyFigures
    #: Invoices left out of the list because someone snoozed them.
    snoozed_invoices: int = 0
    #: The moment the view describes (snoozes that end before it are over).
    built_at: datetime | None = None
    #: `bills_due` holds the bills due within this many days from today.
    within_days: int = DUE_SOON_DAYS
    #: What the overdue invoices listed would bring, in the home currency (all of them, not
    #: only those here).
    overdue_invoices_amount: Decimal = Decimal("0.00")
    #: How every surface writes this business's money and dates (`Business.locale`).
    locale: str = DEFAULT_LOCALE

    @property
    def bills(self) -> tuple[BillDue, ...]:
        """The bills here, overdue ones first: the order of the paged bill list."""
        return self.overdue_bills.items + self.bills_due.items

    @property
    def bill_count(self) -> int:
        """How many bills the two parts list in all."""
        return self.overdue_bills.total + self.bills_due.total

    @property
    def snoozed_bills(self) -> int:
        """Bills left out of both parts because someone snoozed them."""
        return self.overdue_bills.snoozed + self.bills_due.snoozed


class DigestBuilder:
    """Builds the `DigestView` of one business for one moment."""

    def __init__(
        self,
        calculator: RunwayCalculator | None = None,
        *,
        bills_due_within_days: int = DUE_SOON_DAYS,
    ) -> None:
        self.calculator = calculator or RunwayCalculator()
        self.bills_due_within_days = bills_due_within_days

    def build(
        self,
        books: BooksSnapshot,
        *,
        now: datetime,
        previous: WeeklyFigures | None = None,
        drift: Sequence[str] = (),
        rows: ShownRows = EVERY_ROW,
    ) -> DigestView:
        """The digest of `books` at the aware instant `now` (used for snoozes).

        `previous` is last week's `DigestView.figures_to_keep`, as the caller stored it;
        `drift` is what reconciliation found, one plain sentence each, in the caller's order.
        `rows` are the rows of the lists kept in the view (every row by default); a snapshot
        read for some rows only (`BooksSnapshot.plain`) keeps those it was read for.
        """
        if now.tzinfo is None:
            raise ValueError("DigestBuilder.build needs an aware `now`, e.g. datetime.now(UTC)")
        if books.plain is not None:
            if books.plain.within_days != self.bills_due_within_days:
                raise ValueError(
                    f"the books were read for bills due within {books.plain.within_days} days, "
                    f"the digest lists those due within {self.bills_due_within_days}: read them "
                    "again with load_books(..., within_days=...)"
                )
            rows = books.plain.shown
        figures = self.calculator.figures(books, previous)
        forecast = thirteen_week_forecast(books, window_days=self.calculator.window_days)
        overdue_bills, bills_due = self.bills_to_pay(books, figures, now, rows)
        invoices, snoozed_invoices = self.overdue_invoices(books, figures, now, rows)
        return DigestView(
            business_id=books.business_id,
            today=books.today,
            tz=books.tz,
            currency=books.currency,
            headline=self.headline(figures, books.locale),
            cash=CashSection(
                total=figures.cash.total,
                currency=books.currency,
                banks=tuple(
                    BankLine(
                        bank.account_id,
                        bank.name,
                        bank.balance,
                        bank.as_of,
                        bank.currency,
                        bank.home_balance,
                    )
                    for bank in figures.cash.banks
                ),
                sentence=figures.cash.sentence(books.locale),
                undeposited=cents(figures.cash.undeposited),
                undeposited_sentence=figures.cash.undeposited_sentence(books.locale),
            ),
            burn=BurnSection(
                gross=cents(figures.burn.gross),
                net=cents(figures.burn.net),
                gross_per_month=figures.burn.gross_per_month,
                net_per_month=figures.burn.net_per_month,
                net_per_day=figures.burn.net_per_day,
                window_days=figures.burn.window_days,
                window_start=figures.burn.window_start,
                window_end=figures.burn.window_end,
                sentence=figures.burn.sentence(books.locale),
            ),
            financing=self.financing_section(figures, books.locale),
            runway=self.runway_section(figures, forecast, books.locale),
            overdue_bills=overdue_bills,
            bills_due=bills_due,
            overdue_invoices=invoices,
            approvals=Listing(self.pending_approvals(books, now)),
            drift=Listing(tuple(drift)),
            freshness=self.freshness(books),
            forecast=forecast,
            figures_to_keep=figures.weekly_figures(),
            snoozed_invoices=snoozed_invoices,
            built_at=now,
            within_days=self.bills_due_within_days,
            overdue_invoices_amount=invoices.amount,
            locale=books.locale,
        )

    @staticmethod
    def headline(figures: RunwayFigures, locale: str = DEFAULT_LOCALE) -> str:
        """E.g. "Runway: 104 days (−6 since last week)" or "Cash-flow positive over the last 90 days"."""
        sentence = figures.runway.sentence(locale)
        if figures.trend is not None and figures.runway.status is RunwayStatus.DAYS:
            sentence += f" ({figures.trend.sentence(locale)})"
        return sentence

    @staticmethod
    def financing_section(
        figures: RunwayFigures, locale: str = DEFAULT_LOCALE
    ) -> FinancingSection:
        financing = figures.financing
        return FinancingSection(
            owner_in=cents(financing.owner_in),
            owner_out=cents(financing.owner_out),
            loans_in=cents(financing.loans_in),
            loans_repaid=cents(financing.loans_repaid),
            net=cents(financing.net),
            window_days=financing.window_days,
            sentences=tuple(financing.sentences(locale)),
            sentence=financing.sentence(locale),
        )

    @staticmethod
    def runway_section(
        figures: RunwayFigures, forecast: Forecast, locale: str = DEFAULT_LOCALE
    ) -> RunwaySection:
        to_buffer = figures.runway_to_buffer
        below_zero = forecast.first_week_below_zero
        below_buffer = forecast.first_week_below_buffer
        return RunwaySection(
            status=figures.runway.status,
            days=figures.runway.days,
            sentence=figures.runway.sentence(locale),
            buffer=forecast.buffer,
            days_to_buffer=None if to_buffer is None else to_buffer.days,
            buffer_sentence=None if to_buffer is None else to_buffer.sentence(locale),
            days_change=None if figures.trend is None else figures.trend.runway_days_change,
            trend_sentence=None if figures.trend is None else figures.trend.sentence(locale),
            first_week_below_zero=None if below_zero is None else below_zero.number,
            first_week_below_buffer=None if below_buffer is None else below_buffer.number,
        )

    def bills_to_pay(
        self,
        books: BooksSnapshot,
        figures: RunwayFigures,
        now: datetime,
        rows: ShownRows = EVERY_ROW,
    ) -> tuple[BillList, BillList]:
        """(overdue bills, bills due within the next days), each with the rows `rows` shows.

        Bills go to their part by `bill_timing`, soonest due first (the most overdue first). An
        open bill that is snoozed is left out and counted in its part; a bill a message showed that is no
        longer open (`books.shown_bills`: paid since) is listed as it stands, so its card keeps
        its place and says it was paid. The plain bills summed in SQL (`books.plain`) are
        counted and summed as they are and come in where their rows fall.
        """
        parts: dict[BillTiming, list[BillDue]] = {timing: [] for timing in BillTiming}
        snoozed = dict.fromkeys(BillTiming, 0)
        listed: set[str] = set()
        shown = {bill.id for bill in books.shown_bills}
        for bill in (*books.open_bills, *books.shown_bills):
            if bill.id in listed:
                continue
            timing = bill_timing(
                bill.due_date or bill.txn_date, books.today, self.bills_due_within_days
            )
            if timing is None:
                continue
            if bill.id not in shown:
                if bill.balance <= 0:
                    continue
                if is_snoozed(bill.snoozed_until, now):
                    snoozed[timing] += 1
                    continue
            listed.add(bill.id)
            parts[timing].append(self.bill_line(books, figures, bill))
        plain = {
            BillTiming.OVERDUE: books.plain.overdue_bills if books.plain else _NOTHING_READ,
            BillTiming.DUE_SOON: books.plain.bills_due if books.plain else _NOTHING_READ,
        }
        overdue, due_soon = BillTiming.OVERDUE, BillTiming.DUE_SOON
        windows = dict(
            zip(
                (overdue, due_soon),
                rows.bill_windows(plain[overdue].count + len(parts[overdue])),
                strict=True,
            )
        )
        lists = {}
        for timing, lines in parts.items():
            read = plain[timing]
            window = windows[timing]
            items = merged_window(
                [self.bill_line(books, figures, bill) for bill in read.rows],
                read.start,
                read.count,
                lines,
                window,
                bill_order,
            )
            left = [line for line in lines if line.is_open]
            lists[timing] = BillList(
                items,
                offset=window.start,
                count=read.count + len(lines),
                snoozed=snoozed[timing],
                left_count=read.count + len(left),
                left_amount=read.balance + sum((line.home_amount for line in left), _CENTS),
            )
        return lists[overdue], lists[due_soon]

    def bill_line(self, books: BooksSnapshot, figures: RunwayFigures, bill: OpenBill) -> BillDue:
        """One bill as the lists show it: its standing and what paying it now does to the runway
        (its open balance in the home currency at `rate_now`, as the payment will book it)."""
        standing = standing_of(bill, books.approval_threshold, people=books.people)
        currency = bill.currency or books.currency
        rate = rate_now(
            currency,
            bill.exchange_rate,
            books.currency,
            books.rates,
            booked=bill.payment_exchange_rate if standing.state in PAYMENT_BOOKED else None,
        )
        impact = self.calculator.bill_impact(figures.runway, home_amount(standing.balance, rate))
        due = bill.due_date or bill.txn_date or books.today
        return BillDue(
            standing=standing,
            days_until_due=(due - books.today).days,
            runway_impact_days=impact.days,
            runway_impact=impact_sentence(impact),
            currency=currency,
            rate=rate,
            moves_runway=bool(impact.days) or starts_count(impact),
        )

    def overdue_invoices(
        self,
        books: BooksSnapshot,
        figures: RunwayFigures,
        now: datetime,
        rows: ShownRows = EVERY_ROW,
    ) -> tuple[InvoiceList, int]:
        """Invoices past due, longest overdue first, then largest (the rows `rows` shows), and
        how many are left out because someone snoozed them."""
        lines: list[OverdueInvoice] = []
        snoozed = 0
        for invoice in books.open_invoices:
            if not is_overdue(invoice, books.today):
                continue
            if is_snoozed(invoice.snoozed_until, now):
                snoozed += 1
                continue
            lines.append(self.invoice_line(books, figures, invoice))
        read = books.plain.overdue_invoices if books.plain else _NOTHING_READ
        window = rows.invoice_window()
        items = merged_window(
            [self.invoice_line(books, figures, invoice) for invoice in read.rows],
            read.start,
            read.count,
            lines,
            window,
            invoice_order,
        )
        return (
            InvoiceList(
                items,
                offset=window.start,
                count=read.count + len(lines),
                amount=read.balance + sum((line.home_amount for line in lines), _CENTS),
            ),
            snoozed,
        )

    def invoice_line(
        self, books: BooksSnapshot, figures: RunwayFigures, invoice: OpenInvoice
    ) -> OverdueInvoice:
        """One overdue invoice as the list shows it, with what collecting it now does to the
        runway (its open balance in the home currency at `rate_now`)."""
        assert invoice.due_date is not None
        currency = invoice.currency or books.currency
        rate = rate_now(currency, invoice.exchange_rate, books.currency, books.rates)
        arriving = home_amount(invoice.balance, rate)
        return OverdueInvoice(
            invoice_id=invoice.id,
            customer_name=invoice.customer_name,
            doc_number=invoice.doc_number,
            amount=invoice.balance,
            due_date=invoice.due_date,
            days_overdue=(books.today - invoice.due_date).days,
            last_reminder_at=invoice.last_reminder_at,
            reminders_sent=invoice.reminders_sent,
            last_reminder_by=invoice.last_reminder_by,
            runway_impact_days=self.calculator.invoice_impact(figures.runway, arriving).days,
            currency=currency,
            home_amount=arriving,
        )

    @staticmethod
    def pending_approvals(books: BooksSnapshot, now: datetime) -> tuple[PendingApproval, ...]:
        """Bills someone began approving that still wait for a second, different person."""
        waiting: list[PendingApproval] = []
        for bill in books.open_bills:
            standing = standing_of(bill, books.approval_threshold, people=books.people)
            if standing.state is not BillState.NEEDS_SECOND_APPROVAL:
                continue
            if is_snoozed(bill.snoozed_until, now):
                continue
            currency = bill.currency or books.currency
            rate = rate_now(currency, bill.exchange_rate, books.currency, books.rates)
            waiting.append(
                PendingApproval(
                    bill_id=bill.id,
                    vendor_name=bill.vendor_name,
                    amount=standing.balance,
                    due_date=bill.due_date,
                    approval=standing.state,
                    approvals_required=standing.approvals_required,
                    approved_by=standing.approved_by,
                    currency=currency,
                    home_amount=home_amount(standing.balance, rate),
                )
            )
        waiting.sort(key=lambda item: (item.due_date or date.max, -item.home_amount, item.bill_id))
        return tuple(waiting)

    @staticmethod
    def freshness(books: BooksSnapshot) -> Freshness:
        items = [
            FreshnessItem(f"Bank balance: {bank.name}", bank.as_of)
            for bank in sorted(books.banks, key=lambda bank: (bank.name, bank.account_id))
        ]
        items += [
            FreshnessItem(ENTITY_LABELS.get(entity, entity), as_of)
            for entity, as_of in sorted(books.as_of.items())
        ]
        oldest = min((item.as_of for item in items), default=None)
        return Freshness(oldest=oldest, items=tuple(items))


def bill_order(line: BillDue) -> tuple[int, Decimal, str]:
    """The order of each part of the bills: soonest due (most overdue) first, then the larger
    bill, then by id (`BillRepository.plain_rows` reads the plain ones in it)."""
    return (line.days_until_due, -line.in_home(line.standing.total), line.bill_id)


def invoice_order(line: OverdueInvoice) -> tuple[int, Decimal, str]:
    """The order of the overdue invoices: longest overdue first, then the larger, then by id
    (`InvoiceRepository.plain_overdue_rows` reads the plain ones in it)."""
    return (-line.days_overdue, -line.home_amount, line.invoice_id)


def starts_count(impact: RunwayImpact) -> bool:
    """Paying takes a runway that is not a count of days (break-even, cash-flow positive) to one
    that is."""
    return impact.days is None and impact.after.status is RunwayStatus.DAYS


def impact_sentence(impact: RunwayImpact) -> str:
    """What paying does to the runway, in words: "−25 days of runway"; where paying starts a
    count (`starts_count`), where it lands ("runway after paying: 300 days"), never "no change"."""
    if starts_count(impact) and impact.after.days is not None:
        return f"runway after paying: {format_days(impact.after.days)}"
    return impact.sentence()


#: A bill in these states has a payment on its way or made: it costs what that payment books at.
PAYMENT_BOOKED = frozenset({*IN_FLIGHT, BillState.PAID})


def rate_now(
    currency: str | None,
    own_rate: Decimal | None,
    home: str,
    latest: Mapping[str, Decimal],
    *,
    booked: Decimal | None = None,
) -> Decimal:
    """Home units per unit of `currency` that paying a bill in it costs, or collecting an invoice
    brings, now: the rate its payment books at when one is on its way or made (`booked`: the
    bill's `payment_exchange_rate`, so "Paid €1,000.00 ($1,100.00)" stays what was paid when
    QuickBooks' rate moves on), else QuickBooks' latest rate for the currency (`latest`:
    `BooksSnapshot.rates`, which the mirror reads for the currencies of the cash accounts and of
    the open bills and invoices; a payment books at QuickBooks' rate for its date), else the
    document's own rate until the mirror has read one; 1 in the home currency."""
    if currency is None or currency == home:
        return Decimal(1)
    return booked or latest.get(currency) or own_rate or Decimal(1)


def is_snoozed(snoozed_until: datetime | None, now: datetime) -> bool:
    return snoozed_until is not None and snoozed_until > now


def is_overdue(invoice: OpenInvoice, today: date) -> bool:
    return invoice.balance > 0 and invoice.due_date is not None and invoice.due_date < today


def local_time(moment: datetime, tz: str) -> datetime:
    """`moment` on the business's wall clock, for renderers showing "as of" times."""
    return moment.astimezone(ZoneInfo(tz))
