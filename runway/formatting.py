"""How Oodaloo writes money, dates and times, in Slack, email and the terminal alike (via Babel).

Money always carries its currency and never passes through float: the amount is rounded half up
to the currency's minor unit (cents for USD and EUR, none for JPY), then Babel lays it out for
the locale ("$1,234.56", "€1,000.00", "CA$5.00"). A negative amount takes a true minus sign
("−$12.00"), as in the runway sentences. An amount in a foreign currency is shown in its own
currency with its home-currency equivalent ("€1,000.00 ($1,080.00)", `money_with_home`).

Dates and times have one style each, on every surface: a day is "Mon 7 Dec" (`format_day`), a
time "11:18 AM PST" (`format_time`: the locale's own clock, 12- or 24-hour, and the zone's
abbreviation; `format_clock` for a time of no particular day, "8:00 AM"), and a moment both,
"Mon 7 Dec, 11:18 AM PST" (`format_moment`). A time is shown on the business's clock: the
functions take its timezone and convert, so no caller writes UTC by accident. Names of days and
months follow the locale ("Mo. 7 Dez." in de_DE).

Each business has a locale (`Business.locale`, a CLDR id such as en_GB): the product's words stay
English, the locale decides how numbers, currencies and the clock are written ("£1,234.56" and
"11:18" in en_GB, "1.234,56 €" in en_DE). It comes from the country of the business's QuickBooks
company (`locale_for_country`) and the owner can change it in Settings (`LOCALE_CHOICES`).

A name takes its possessive here too, the same everywhere: "Larkspur Roasters' digest",
"Dana's digest" (`possessive`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime, time, tzinfo
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, localedata
from babel.core import get_global
from babel.dates import format_date
from babel.dates import format_time as babel_format_time
from babel.numbers import (
    format_compact_currency,
    format_currency,
    get_currency_precision,
    get_territory_currencies,
)

DEFAULT_LOCALE = "en_US"
#: The locales the Settings modal offers (a business may have another, from its country).
LOCALE_CHOICES = ("en_US", "en_GB", "en_IE", "en_CA", "en_AU", "en_DE", "en_FR", "en_NL")
#: U+2212: the sign of every negative figure the product shows.
MINUS = "−"


@cache
def _territories_by_name() -> dict[str, str]:
    """ "UNITED KINGDOM" -> "GB": English names of countries, as older QuickBooks addresses have."""
    return {name.upper(): code for code, name in Locale("en").territories.items() if code.isalpha()}


def territory_of(country: str | None) -> str | None:
    """The ISO 3166 alpha-2 code of a QuickBooks country ("GB", "GBR", "UK", "United Kingdom"
    -> "GB"), or None when it names no country Babel knows."""
    text = (country or "").strip().upper()
    if not text:
        return None
    aliases: Mapping[str, list[str]] = get_global("territory_aliases")
    if text in aliases:
        text = aliases[text][0]
    text = _territories_by_name().get(text, text)
    return text if len(text) == 2 and text.isalpha() and text in Locale("en").territories else None


@cache
def locale_for_country(country: str | None) -> str:
    """The locale of a business in `country` (QuickBooks' CompanyInfo Country, or its address's):
    "en_GB" for "GB", "en_DE" for "DEU"; en_US when the country is unknown or Babel has no English
    locale for it."""
    code = territory_of(country)
    if code is not None and localedata.exists(f"en_{code}"):
        return f"en_{code}"
    return DEFAULT_LOCALE


def check_locale(name: str) -> str:
    """`name` if it is an English CLDR locale Babel knows ("en_GB"); ValueError otherwise."""
    if not (isinstance(name, str) and re.fullmatch(r"en_[A-Z]{2}", name) and localedata.exists(name)):
        raise ValueError(
            f"{name!r} is not a locale Oodaloo can write money and dates in; use one such as "
            f"{', '.join(LOCALE_CHOICES)}"
        )
    return name


def locale_label(locale: str) -> str:
    """How a choice of locale reads: its country and a sample in its own style, written by the
    functions below ("United Kingdom: £1,234.56, 11:18")."""
    parsed = Locale.parse(locale)
    country = parsed.territory or ""
    currencies = get_territory_currencies(country, tender=True) if country else []
    sample = money(Decimal("1234.56"), currencies[0] if currencies else "USD", locale=locale)
    place = Locale("en").territories.get(country, locale)
    return f"{place}: {sample}, {format_clock(time(11, 18), locale)}"


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


#: The one pattern of a day: weekday, day, month, in the locale's words ("Mon 7 Dec").
DAY_PATTERN = "EEE d MMM"


def format_day(day: date | datetime, locale: str = DEFAULT_LOCALE) -> str:
    """Mon 7 Dec. A datetime is written as its own calendar day: convert it to the business's
    clock first (or use `format_moment`)."""
    return format_date(day, DAY_PATTERN, locale=locale)


@cache
def _clock_pattern(locale: str) -> str:
    """The locale's short time pattern ("h:mm a" in en_US, "HH:mm" in en_GB and de_DE)."""
    pattern = Locale.parse(locale).time_formats["short"].pattern
    # CLDR puts a narrow no-break space before AM/PM: a plain space reads the same everywhere
    # (Slack, a terminal, an email's text part).
    return str(pattern).replace("\u202f", " ")


def _on_clock(moment: datetime, tz: str | tzinfo | None) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{moment.isoformat()} has no timezone: Oodaloo keeps times timezone-aware, so give "
            "it one (QuickBooks and the database give UTC) before writing it"
        )
    if tz is None:
        return moment
    return moment.astimezone(ZoneInfo(tz) if isinstance(tz, str) else tz)


def zone_abbreviation(moment: datetime) -> str:
    """PST, CEST, UTC; a zone with no abbreviation of its own ("-03") as "UTC-03"."""
    name = moment.tzname() or ""
    return f"UTC{name}" if name[:1] in "+-" else name


def format_time(
    moment: datetime, tz: str | tzinfo | None = None, locale: str = DEFAULT_LOCALE
) -> str:
    """11:18 AM PST: `moment` on the clock of `tz` (an IANA name such as the business's
    timezone; None keeps the moment's own zone), with the zone's abbreviation."""
    local = _on_clock(moment, tz)
    clock = babel_format_time(local, _clock_pattern(locale), locale=locale)
    return f"{clock} {zone_abbreviation(local)}"


def format_clock(at: time, locale: str = DEFAULT_LOCALE) -> str:
    """8:00 AM: a wall-clock time of no particular day (the digest's time in its settings)."""
    return babel_format_time(at, _clock_pattern(locale), locale=locale)


def format_moment(
    moment: datetime, tz: str | tzinfo | None = None, locale: str = DEFAULT_LOCALE
) -> str:
    """Mon 7 Dec, 11:18 AM PST: the day and the time, both on the clock of `tz`."""
    local = _on_clock(moment, tz)
    return f"{format_day(local, locale)}, {format_time(local, None, locale)}"


def possessive(name: str) -> str:
    """Larkspur Roasters' and Dana's: a name ending in s takes the apostrophe alone."""
    stripped = name.rstrip()
    if not stripped:
        return name
    return f"{stripped}'" if stripped[-1] in "sS" else f"{stripped}'s"
