"""How Oodaloo writes money, dates and times, in Slack, email and the terminal alike (via Babel).

Money always carries its currency and never passes through float: the amount is rounded half up
to the currency's minor unit (cents for USD and EUR, none for JPY), then Babel lays it out for
the locale ("$1,234.56", "€1,000.00", "CA$5.00"). A negative amount takes a true minus sign
("−$12.00"), as in the runway sentences. An amount in a foreign currency is shown in its own
currency with its home-currency equivalent ("€1,000.00 ($1,080.00)", `money_with_home`).

Dates and times are written in the few forms the product uses, through Babel's patterns; a time
carries its zone's own abbreviation ("PST", "CET", "UTC") when it has one.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from babel.dates import format_date, format_time
from babel.numbers import format_compact_currency, format_currency, get_currency_precision

DEFAULT_LOCALE = "en_US"
#: U+2212: the sign of every negative figure the product shows.
MINUS = "−"


def money(amount: Decimal, currency: str, *, locale: str = DEFAULT_LOCALE) -> str:
    """$12,345.67, −$12.00, €1,000.00: rounded half up to the currency's minor unit."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money() takes a Decimal, not {type(amount).__name__}")
    exponent = Decimal(1).scaleb(-get_currency_precision(currency))
    value = amount.quantize(exponent, rounding=ROUND_HALF_UP)
    text = format_currency(abs(value), currency, locale=locale)
    return MINUS + text if value < 0 else text


def money_short(amount: Decimal, currency: str, *, locale: str = DEFAULT_LOCALE) -> str:
    """$120K, $1.5K, −$4.5K, €2.3M: an amount at a glance (a chart's axis), to one decimal of
    its thousands or millions; written figures use `money`."""
    if not isinstance(amount, Decimal):
        raise TypeError(f"money_short() takes a Decimal, not {type(amount).__name__}")
    whole = abs(amount).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    text = format_compact_currency(whole, currency, locale=locale, fraction_digits=1)
    return MINUS + text if amount < 0 and whole else text


def money_with_home(
    amount: Decimal,
    currency: str,
    home_amount: Decimal,
    home_currency: str,
    *,
    locale: str = DEFAULT_LOCALE,
) -> str:
    """An amount in its own currency, with the home-currency equivalent where the two differ:
    "€1,000.00 ($1,080.00)"; "$250.00" when it is in the home currency already."""
    own = money(amount, currency, locale=locale)
    if currency == home_currency:
        return own
    return f"{own} ({money(home_amount, home_currency, locale=locale)})"


def short_date(day: date | datetime, *, locale: str = DEFAULT_LOCALE) -> str:
    """Mar 2"""
    return format_date(day, "MMM d", locale=locale)


def weekday_date(day: date | datetime, *, locale: str = DEFAULT_LOCALE) -> str:
    """Mon Mar 2"""
    return format_date(day, "EEE MMM d", locale=locale)


def weekday_day_month(day: date | datetime, *, locale: str = DEFAULT_LOCALE) -> str:
    """Mon 2 Mar (the email digest's dates)."""
    return format_date(day, "EEE d MMM", locale=locale)


def time_of_day(moment: datetime, *, locale: str = DEFAULT_LOCALE) -> str:
    """9:02 AM PST (the zone's abbreviation, when the time carries one)."""
    clock = format_time(moment, "h:mm a", locale=locale)
    zone = moment.tzname()
    return f"{clock} {zone}" if zone else clock


def full_date_time(moment: datetime, *, locale: str = DEFAULT_LOCALE) -> str:
    """Mon 02 Mar 2026 at 09:02 PST (24-hour clock, with the zone when the time carries one)."""
    text = f"{format_date(moment, 'EEE dd MMM yyyy', locale=locale)} at "
    text += format_time(moment, "HH:mm", locale=locale)
    zone = moment.tzname()
    return f"{text} {zone}" if zone else text
