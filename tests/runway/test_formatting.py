"""runway.formatting: the one way money, dates and times are written."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runway.formatting import (
    format_clock,
    format_day,
    format_moment,
    format_time,
    money,
    money_with_home,
    possessive,
)

D = Decimal
LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1234.56"), "USD", "$1,234.56"),
        (D("-12"), "USD", "−$12.00"),
        (D("0"), "USD", "$0.00"),
        (D("-0.004"), "USD", "$0.00"),  # rounds to zero: no sign
        (D("12345678901234.56"), "USD", "$12,345,678,901,234.56"),
        (D("1.005"), "USD", "$1.01"),  # half up, not half even
        (D("1.015"), "USD", "$1.02"),
        (D("-1.005"), "USD", "−$1.01"),
        (D("0.004"), "USD", "$0.00"),
        (D("1000"), "EUR", "€1,000.00"),
        (D("-1000.5"), "EUR", "−€1,000.50"),
        (D("5"), "CAD", "CA$5.00"),
        (D("1234.5"), "JPY", "¥1,235"),  # no minor unit
    ],
)
def test_money(amount: Decimal, currency: str, expected: str) -> None:
    assert money(amount, currency) == expected


def test_money_refuses_float() -> None:
    with pytest.raises(TypeError):
        money(12.5, "USD")  # type: ignore[arg-type]


def test_money_in_another_locale() -> None:
    assert money(D("1234.5"), "EUR", locale="de_DE") == "1.234,50\xa0€"


@given(
    st.decimals(
        min_value=D("-1e15"), max_value=D("1e15"), places=2, allow_nan=False, allow_infinity=False
    )
)
def test_money_is_exact(amount: Decimal) -> None:
    """Every two-place amount reads back as itself: nothing goes through float."""
    text = money(amount, "USD")
    negative = text.startswith("−")
    digits = text.removeprefix("−").removeprefix("$").replace(",", "")
    back = D(digits)
    assert (-back if negative else back) == amount
    assert negative == (amount < 0)


def test_one_style_for_a_day() -> None:
    assert format_day(date(2026, 3, 2)) == "Mon 2 Mar"
    assert format_day(date(2026, 12, 7)) == "Mon 7 Dec"
    # A datetime is written as its own calendar day: 11 PM in Los Angeles is still the 25th.
    assert format_day(datetime(2026, 12, 25, 23, 0, tzinfo=LA)) == "Fri 25 Dec"


def test_a_time_is_shown_on_the_business_clock() -> None:
    moment = datetime(2026, 12, 9, 19, 18, tzinfo=UTC)
    assert format_time(moment, "America/Los_Angeles") == "11:18 AM PST"
    assert format_time(moment, LA) == "11:18 AM PST"  # a zone object reads the same
    assert format_time(moment, "UTC") == "7:18 PM UTC"
    assert format_time(moment) == "7:18 PM UTC"  # no zone given: the moment's own
    assert format_moment(moment, "America/Los_Angeles") == "Wed 9 Dec, 11:18 AM PST"
    # The day is the business's day, not UTC's: 02:00 UTC on the 10th is still the 9th in LA.
    late = datetime(2026, 12, 10, 2, 0, tzinfo=UTC)
    assert format_moment(late, "America/Los_Angeles") == "Wed 9 Dec, 6:00 PM PST"
    assert format_moment(late, "Pacific/Auckland") == "Thu 10 Dec, 3:00 PM NZDT"


def test_daylight_saving_edges() -> None:
    # Spring forward (8 Mar 2026, 2 AM PST -> 3 AM PDT): one minute apart in UTC.
    assert format_time(datetime(2026, 3, 8, 9, 59, tzinfo=UTC), LA) == "1:59 AM PST"
    assert format_time(datetime(2026, 3, 8, 10, 0, tzinfo=UTC), LA) == "3:00 AM PDT"
    # Fall back (1 Nov 2026): 1:30 AM happens twice, and the zone tells the two apart.
    assert format_time(datetime(2026, 11, 1, 8, 30, tzinfo=UTC), LA) == "1:30 AM PDT"
    assert format_time(datetime(2026, 11, 1, 9, 30, tzinfo=UTC), LA) == "1:30 AM PST"
    # Europe's change is on another day (29 Mar 2026, 01:00 UTC).
    berlin = "Europe/Berlin"
    assert format_time(datetime(2026, 3, 29, 0, 59, tzinfo=UTC), berlin) == "1:59 AM CET"
    assert format_time(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), berlin) == "3:00 AM CEST"


def test_a_zone_without_an_abbreviation_says_its_offset() -> None:
    moment = datetime(2026, 12, 9, 15, 0, tzinfo=UTC)
    assert format_time(moment, "America/Sao_Paulo") == "12:00 PM UTC-03"


def test_the_locale_names_the_days_and_chooses_the_clock() -> None:
    moment = datetime(2026, 12, 7, 19, 18, tzinfo=UTC)
    assert format_day(date(2026, 12, 7), "de_DE") == "Mo. 7 Dez."
    assert format_day(date(2026, 12, 7), "fr_FR") == "lun. 7 déc."
    assert format_time(moment, "Europe/London", "en_GB") == "19:18 GMT"
    assert format_moment(moment, "Europe/Berlin", "de_DE") == "Mo. 7 Dez., 20:18 CET"
    assert format_clock(time(8, 0)) == "8:00 AM"
    assert format_clock(time(8, 0), "de_DE") == "08:00"


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="has no timezone"):
        format_time(datetime(2026, 3, 2, 12, 0))
    with pytest.raises(ValueError, match="has no timezone"):
        format_moment(datetime(2026, 3, 2, 12, 0), "America/Los_Angeles")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Larkspur & Pine Coffee Roasters", "Larkspur & Pine Coffee Roasters'"),
        ("Harbor Bakery", "Harbor Bakery's"),
        ("Dana", "Dana's"),
        ("ACME SUPPLIES", "ACME SUPPLIES'"),
        ('Larkspur & "Sons" <Bakery>', 'Larkspur & "Sons" <Bakery>\'s'),
        ("", ""),
    ],
)
def test_possessive(name: str, expected: str) -> None:
    assert possessive(name) == expected


def test_a_foreign_amount_shows_its_home_equivalent() -> None:
    assert money_with_home(D("1000"), "EUR", D("1080"), "USD") == "€1,000.00 ($1,080.00)"
    assert money_with_home(D("-400"), "EUR", D("-440"), "USD") == "−€400.00 (−$440.00)"
    assert money_with_home(D("250"), "USD", D("250"), "USD") == "$250.00"
    assert money_with_home(D("5000"), "JPY", D("33.6"), "USD") == "¥5,000 ($33.60)"
