"""Cash on hand, burn, financing and runway for one business, from a `BooksSnapshot` (no I/O).

The definitions are `runway.cash_flow`'s, after QuickBooks' Statement of Cash Flows:

* **cash on hand** is the sum of the Bank accounts in the home currency (a foreign-currency
  account at the latest exchange rate QuickBooks has); Undeposited Funds (received, not yet
  banked) is shown apart, not in it;
* **burn** over the trailing window is operating and investing cash out minus cash in;
  **financing** (owner money in and out, loans in and repaid) and transfers between the
  business's own accounts are left out of burn, financing being reported on its own line
  ("Owner put in $10,000.00 over the last 90 days");
* the **runway** is how long the cash above the floor lasts at that net burn; a window whose
  movements net to exactly zero is **break-even**, not cash-flow positive.

Rounding, stated once:

* money figures are rounded to cents with ROUND_HALF_UP, only when a figure is reported;
  everything in between is computed exactly;
* a month is counted as 30 days, so "per month" = window total × 30 / window days;
* runway days are whole days, rounded DOWN from the exact quotient
  (cash above the floor) × (window days) / (net cash out over the window): a runway of
  41.9 days is 41 days, never 42, so the owner is never told they have a day they do not have;
* the impact of a payment or a collection is the difference of two such whole-day runways.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from runway.books import BankBalance, BooksSnapshot, CashMovement
from runway.cash_flow import CashFlowClass
from runway.formatting import DEFAULT_LOCALE, format_day, money

CENT = Decimal("0.01")
DAYS_PER_MONTH = 30
DEFAULT_WINDOW_DAYS = 90
#: The classes of cash movement burn counts (financing and transfers are left out).
BURN_CLASSES = frozenset({CashFlowClass.OPERATING, CashFlowClass.INVESTING})


def cents(amount: Decimal) -> Decimal:
    """`amount` rounded half up to cents."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _capitalized(text: str) -> str:
    """`text` with its first letter raised, the rest as written (str.capitalize lowers them)."""
    return text[:1].upper() + text[1:]


def format_days(days: int) -> str:
    return "1 day" if days == 1 else f"{days} days"


def window_text(days: int) -> str:
    """How a trailing window is named in every sentence: "over the last 90 days"."""
    return f"over the last {format_days(days)}"


class RunwayStatus(enum.StrEnum):
    """What kind of answer the runway is."""

    #: Cash above the floor lasts `days` days at the trailing net burn.
    DAYS = "days"
    #: More cash came in than went out over the window: there is no runway to count down.
    CASH_FLOW_POSITIVE = "cash_flow_positive"
    #: Cash moved over the window, and exactly as much came in as went out.
    BREAK_EVEN = "break_even"
    #: Cash is already at or below the floor (zero, or the buffer): 0 days.
    NO_CASH = "no_cash"
    #: No cash moved over the window: burn cannot be measured yet.
    NO_HISTORY = "no_history"


@dataclass(frozen=True, slots=True)
class CashOnHand:
    """The bank accounts' balances in the home currency, each with the moment it was true.

    Undeposited Funds is apart (`undeposited`): money received and not yet in the bank. A
    foreign-currency account whose exchange rate QuickBooks has not given yet is listed in
    `unpriced` and left out of `total` rather than counted one to one.
    """

    total: Decimal
    banks: tuple[BankBalance, ...]
    currency: str
    undeposited: Decimal = Decimal("0.00")
    undeposited_accounts: tuple[BankBalance, ...] = ()
    unpriced: tuple[BankBalance, ...] = ()

    @property
    def oldest_as_of(self) -> datetime | None:
        return min((bank.as_of for bank in self.banks), default=None)

    def sentence(self, locale: str = DEFAULT_LOCALE) -> str:
        return f"{money(self.total, self.currency, locale=locale)} in the bank"

    def undeposited_sentence(self, locale: str = DEFAULT_LOCALE) -> str | None:
        """E.g. "$1,250.00 received, not yet deposited" (None when nothing waits)."""
        if self.undeposited == 0:
            return None
        return f"{money(self.undeposited, self.currency, locale=locale)} received, not yet deposited"


@dataclass(frozen=True, slots=True)
class Burn:
    """Cash out (gross burn) and cash out minus cash in (net burn) over a trailing window.

    The window is the `window_days` calendar days ending on `window_end` (today) inclusive.
    Only operating and investing movements count (`BURN_CLASSES`): financing is `Financing`'s,
    and transfers between the business's own accounts are neither in nor out.
    """

    window_days: int
    window_start: date
    window_end: date
    cash_out: Decimal
    cash_in: Decimal
    movements_counted: int
    currency: str

    @property
    def gross(self) -> Decimal:
        return self.cash_out

    @property
    def net(self) -> Decimal:
        return self.cash_out - self.cash_in

    @property
    def gross_per_month(self) -> Decimal:
        return cents(self.cash_out * DAYS_PER_MONTH / self.window_days)

    @property
    def net_per_month(self) -> Decimal:
        return cents(self.net * DAYS_PER_MONTH / self.window_days)

    @property
    def gross_per_day(self) -> Decimal:
        return cents(self.cash_out / self.window_days)

    @property
    def net_per_day(self) -> Decimal:
        return cents(self.net / self.window_days)

    @property
    def window_text(self) -> str:
        return window_text(self.window_days)

    def sentence(self, locale: str = DEFAULT_LOCALE) -> str:
        """E.g. "net burn $31,200.00/month over the last 90 days", or what came in instead."""
        if self.movements_counted == 0:
            return f"no cash moved {self.window_text}"
        if self.net == 0:
            return (
                f"break-even {self.window_text}: "
                f"{money(self.cash_in, self.currency, locale=locale)} in and out"
            )
        if self.net < 0:
            return (
                f"net inflow {money(-self.net_per_month, self.currency, locale=locale)}/month "
                f"{self.window_text}"
            )
        return (
            f"net burn {money(self.net_per_month, self.currency, locale=locale)}/month {self.window_text}"
        )


@dataclass(frozen=True, slots=True)
class Financing:
    """Financing cash over the same window as the burn, left out of it: the owner's money put
    in and taken out (Equity), loans received and repaid (Long Term Liability)."""

    window_days: int
    window_start: date
    window_end: date
    owner_in: Decimal
    owner_out: Decimal
    loans_in: Decimal
    loans_repaid: Decimal
    currency: str

    @property
    def net(self) -> Decimal:
        """Financing cash in minus out (positive: the business was funded)."""
        return self.owner_in - self.owner_out + self.loans_in - self.loans_repaid

    @property
    def window_text(self) -> str:
        return window_text(self.window_days)

    def _moved(self, locale: str = DEFAULT_LOCALE) -> list[str]:
        """Each figure that is not zero, worded: "owner put in $10,000.00", "loans repaid …"."""
        figures = (
            ("owner put in", self.owner_in),
            ("owner took out", self.owner_out),
            ("loans brought in", self.loans_in),
            ("loans repaid", self.loans_repaid),
        )
        return [f"{what} {money(amount, self.currency, locale=locale)}" for what, amount in figures if amount]

    def sentences(self, locale: str = DEFAULT_LOCALE) -> list[str]:
        """One sentence per figure that is not zero: "Owner put in $10,000.00 over the last 90
        days", "Owner took out …", "Loans brought in …", "Loans repaid …"."""
        return [f"{_capitalized(moved)} {self.window_text}" for moved in self._moved(locale)]

    def sentence(self, locale: str = DEFAULT_LOCALE) -> str | None:
        """The figures in one sentence, the window said once ("Owner put in $10,000.00; loans
        repaid $1,200.00 over the last 90 days"), or None when no financing cash moved."""
        moved = self._moved(locale)
        return f"{_capitalized('; '.join(moved))} {self.window_text}" if moved else None


@dataclass(frozen=True, slots=True)
class Runway:
    """How long the cash above `floor` lasts at the trailing net burn (see module rounding)."""

    status: RunwayStatus
    #: Whole days (rounded down) for DAYS, 0 for NO_CASH, None otherwise.
    days: int | None
    cash: Decimal
    floor: Decimal
    burn: Burn

    @property
    def above_floor(self) -> Decimal:
        return self.cash - self.floor

    def sentence(self, locale: str = DEFAULT_LOCALE) -> str:
        currency = self.burn.currency
        target = "" if self.floor == 0 else f" to your {money(self.floor, currency, locale=locale)} buffer"
        if self.status is RunwayStatus.NO_CASH:
            if self.floor == 0:
                return f"Out of cash: {money(self.cash, currency, locale=locale)} in the bank (0 days)"
            return (
                f"Below your {money(self.floor, currency, locale=locale)} buffer: "
                f"{money(self.cash, currency, locale=locale)} in the bank (0 days)"
            )
        if self.status is RunwayStatus.NO_HISTORY:
            return f"Runway unknown: no cash moved {self.burn.window_text}"
        if self.status is RunwayStatus.CASH_FLOW_POSITIVE:
            return f"Cash-flow positive {self.burn.window_text}"
        if self.status is RunwayStatus.BREAK_EVEN:
            return f"Break-even {self.burn.window_text}: as much came in as went out"
        assert self.days is not None
        return f"Runway{target}: {format_days(self.days)}"


@dataclass(frozen=True, slots=True)
class RunwayImpact:
    """What paying a bill (negative) or collecting an invoice (positive) does to the runway."""

    amount: Decimal
    before: Runway
    after: Runway

    @property
    def days(self) -> int | None:
        """Change in whole days, or None when either side is not a count of days."""
        countable = (RunwayStatus.DAYS, RunwayStatus.NO_CASH)
        if self.before.status not in countable or self.after.status not in countable:
            return None
        assert self.before.days is not None and self.after.days is not None
        return self.after.days - self.before.days

    def sentence(self) -> str:
        days = self.days
        if days is None:
            return "no change in runway days"
        sign = "+" if days > 0 else ("−" if days < 0 else "±")
        return f"{sign}{format_days(abs(days))} of runway"


@dataclass(frozen=True, slots=True)
class WeeklyFigures:
    """The few figures kept from one week's digest to say what changed by the next one."""

    on: date
    status: RunwayStatus
    runway_days: int | None
    cash: Decimal
    net_burn_per_month: Decimal

    def describe(self) -> str:
        """Last week's runway in a few words: "120 days", "cash-flow positive", ..."""
        if self.runway_days is not None:
            return format_days(self.runway_days)
        if self.status is RunwayStatus.CASH_FLOW_POSITIVE:
            return "cash-flow positive"
        if self.status is RunwayStatus.BREAK_EVEN:
            return "break-even"
        if self.status is RunwayStatus.NO_HISTORY:
            return "unknown (no cash had moved)"
        return self.status.value.replace("_", " ")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able values (amounts as strings, so no float ever touches them)."""
        return {
            "on": self.on.isoformat(),
            "status": self.status.value,
            "runway_days": self.runway_days,
            "cash": str(self.cash),
            "net_burn_per_month": str(self.net_burn_per_month),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WeeklyFigures:
        return cls(
            on=date.fromisoformat(data["on"]),
            status=RunwayStatus(data["status"]),
            runway_days=data["runway_days"],
            cash=Decimal(str(data["cash"])),
            net_burn_per_month=Decimal(str(data["net_burn_per_month"])),
        )


@dataclass(frozen=True, slots=True)
class Trend:
    """Change since the figures kept last week (None where the two are not comparable)."""

    previous: WeeklyFigures
    runway_days_change: int | None
    cash_change: Decimal
    net_burn_per_month_change: Decimal

    def sentence(self, locale: str = DEFAULT_LOCALE) -> str:
        change = self.runway_days_change
        if change is None:
            on = self.previous.on
            return f"was {self.previous.describe()} on {format_day(on, locale)}"
        if change == 0:
            return "no change since last week"
        sign = "+" if change > 0 else "−"
        return f"{sign}{abs(change)} since last week"


@dataclass(frozen=True, slots=True)
class RunwayFigures:
    """Everything the calculator says about one business today."""

    today: date
    currency: str
    cash: CashOnHand
    burn: Burn
    runway: Runway
    #: Financing cash over the burn's window (left out of burn).
    financing: Financing
    #: The runway to the minimum cash buffer, when the business set one.
    runway_to_buffer: Runway | None
    trend: Trend | None

    def weekly_figures(self) -> WeeklyFigures:
        """What the caller stores to compare next week's figures against."""
        return WeeklyFigures(
            on=self.today,
            status=self.runway.status,
            runway_days=self.runway.days,
            cash=cents(self.cash.total),
            net_burn_per_month=self.burn.net_per_month,
        )


class RunwayCalculator:
    """Pure runway arithmetic over a `BooksSnapshot`."""

    def __init__(self, window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        if window_days < 1:
            raise ValueError(f"the burn window must be at least one day, got {window_days}")
        self.window_days = window_days

    def cash_on_hand(self, books: BooksSnapshot) -> CashOnHand:
        banks = tuple(sorted(books.banks, key=lambda bank: (bank.name, bank.account_id)))
        total = sum(
            (bank.home_balance for bank in banks if bank.home_balance is not None),
            Decimal("0.00"),
        )
        undeposited = sum(
            (bank.home_balance for bank in books.undeposited if bank.home_balance is not None),
            Decimal("0.00"),
        )
        return CashOnHand(
            total=total,
            banks=banks,
            currency=books.currency,
            undeposited=undeposited,
            undeposited_accounts=books.undeposited,
            unpriced=tuple(bank for bank in banks if bank.home_balance is None),
        )

    def in_window(self, books: BooksSnapshot) -> list[CashMovement]:
        """The movements dated inside the trailing window (today included, future excluded)."""
        start = self.window_start(books.today)
        return [m for m in books.movements if start <= m.date <= books.today]

    def window_start(self, today: date) -> date:
        return today - timedelta(days=self.window_days - 1)

    def burn(self, books: BooksSnapshot) -> Burn:
        cash_out = Decimal("0.00")
        cash_in = Decimal("0.00")
        counted = 0
        for movement in self.in_window(books):
            if movement.cash_flow not in BURN_CLASSES:
                continue
            counted += movement.count
            if movement.amount < 0:
                cash_out -= movement.amount
            else:
                cash_in += movement.amount
        return Burn(
            window_days=self.window_days,
            window_start=self.window_start(books.today),
            window_end=books.today,
            cash_out=cash_out,
            cash_in=cash_in,
            movements_counted=counted,
            currency=books.currency,
        )

    def financing(self, books: BooksSnapshot) -> Financing:
        """The window's financing movements: Equity is the owner's, any other (Long Term
        Liability) a loan's."""
        owner_in = owner_out = loans_in = loans_repaid = Decimal("0.00")
        for movement in self.in_window(books):
            if movement.cash_flow is not CashFlowClass.FINANCING:
                continue
            owner = movement.counter_account_type == "Equity"
            if movement.amount >= 0:
                if owner:
                    owner_in += movement.amount
                else:
                    loans_in += movement.amount
            elif owner:
                owner_out -= movement.amount
            else:
                loans_repaid -= movement.amount
        return Financing(
            window_days=self.window_days,
            window_start=self.window_start(books.today),
            window_end=books.today,
            owner_in=owner_in,
            owner_out=owner_out,
            loans_in=loans_in,
            loans_repaid=loans_repaid,
            currency=books.currency,
        )

    def runway(self, cash: Decimal, burn: Burn, floor: Decimal = Decimal("0.00")) -> Runway:
        """Days the cash above `floor` lasts: rounded down (see the module docstring)."""
        if cash <= floor:
            return Runway(RunwayStatus.NO_CASH, 0, cash, floor, burn)
        if burn.movements_counted == 0:
            return Runway(RunwayStatus.NO_HISTORY, None, cash, floor, burn)
        if burn.net == 0:
            return Runway(RunwayStatus.BREAK_EVEN, None, cash, floor, burn)
        if burn.net < 0:
            return Runway(RunwayStatus.CASH_FLOW_POSITIVE, None, cash, floor, burn)
        exact = (cash - floor) * burn.window_days / burn.net
        days = int(exact.to_integral_value(rounding=ROUND_FLOOR))
        return Runway(RunwayStatus.DAYS, days, cash, floor, burn)

    def impact(self, runway: Runway, cash_change: Decimal) -> RunwayImpact:
        """The runway after `cash_change` leaves (negative) or arrives (positive) today.

        Money moved today is both cash and a movement of the trailing window, exactly as the next
        sync will see it: paying an entered bill lowers the bank balance *and* adds a cash-out to
        the burn; collecting an invoice raises the balance and adds a cash-in. The Pay dialog's
        promise, the line after paying and the next digest are therefore the same number.
        """
        burn = runway.burn
        if cash_change < 0:
            burn = replace(burn, cash_out=burn.cash_out - cash_change)
        elif cash_change > 0:
            burn = replace(burn, cash_in=burn.cash_in + cash_change)
        if cash_change:
            burn = replace(burn, movements_counted=burn.movements_counted + 1)
        after = self.runway(runway.cash + cash_change, burn, runway.floor)
        return RunwayImpact(amount=cash_change, before=runway, after=after)

    def bill_impact(self, runway: Runway, amount: Decimal) -> RunwayImpact:
        """Paying `amount` now: typically −N days."""
        return self.impact(runway, -amount)

    def invoice_impact(self, runway: Runway, amount: Decimal) -> RunwayImpact:
        """Collecting `amount` now: typically +N days."""
        return self.impact(runway, amount)

    def trend(self, runway: Runway, cash: Decimal, burn: Burn, previous: WeeklyFigures) -> Trend:
        days_change: int | None = None
        if runway.days is not None and previous.runway_days is not None:
            days_change = runway.days - previous.runway_days
        return Trend(
            previous=previous,
            runway_days_change=days_change,
            cash_change=cents(cash) - previous.cash,
            net_burn_per_month_change=burn.net_per_month - previous.net_burn_per_month,
        )

    def figures(self, books: BooksSnapshot, previous: WeeklyFigures | None = None) -> RunwayFigures:
        cash = self.cash_on_hand(books)
        burn = self.burn(books)
        runway = self.runway(cash.total, burn)
        to_buffer = (
            self.runway(cash.total, burn, books.min_cash_buffer)
            if books.min_cash_buffer > 0
            else None
        )
        trend = None if previous is None else self.trend(runway, cash.total, burn, previous)
        return RunwayFigures(
            today=books.today,
            currency=books.currency,
            cash=cash,
            burn=burn,
            runway=runway,
            financing=self.financing(books),
            runway_to_buffer=to_buffer,
            trend=trend,
        )
