"""runway.formatting: the one way money, dates and times are written."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runway.formatting import (
    full_date_time,
    money,
    money_with_home,
    short_date,
    time_of_day,
    weekday_date,
    weekday_day_month,
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


def test_dates() -> None:
    day = date(2026, 3, 2)
    assert short_date(day) == "Mar 2"
    assert weekday_date(day) == "Mon Mar 2"
    assert weekday_day_month(day) == "Mon 2 Mar"
    assert short_date(datetime(2026, 12, 25, 23, 0, tzinfo=LA)) == "Dec 25"


def test_times_in_a_zone_with_daylight_saving() -> None:
    winter = datetime(2026, 3, 2, 9, 2, tzinfo=LA)
    summer = datetime(2026, 3, 9, 21, 30, tzinfo=LA)  # the day after clocks went forward
    assert time_of_day(winter) == "9:02 AM PST"
    assert time_of_day(summer) == "9:30 PM PDT"
    assert time_of_day(datetime(2026, 3, 2, 0, 5, tzinfo=UTC)) == "12:05 AM UTC"
    assert time_of_day(datetime(2026, 3, 2, 12, 0)) == "12:00 PM"  # naive: no zone
    assert time_of_day(datetime(2026, 7, 1, 8, 0, tzinfo=ZoneInfo("Europe/Berlin"))) == "8:00 AM CEST"


def test_full_date_time() -> None:
    assert full_date_time(datetime(2026, 3, 2, 9, 2, tzinfo=LA)) == "Mon 02 Mar 2026 at 09:02 PST"
    assert full_date_time(datetime(2026, 7, 4, 17, 45, tzinfo=LA)) == "Sat 04 Jul 2026 at 17:45 PDT"


def test_a_foreign_amount_shows_its_home_equivalent() -> None:
    assert money_with_home(D("1000"), "EUR", D("1080"), "USD") == "€1,000.00 ($1,080.00)"
    assert money_with_home(D("-400"), "EUR", D("-440"), "USD") == "−€400.00 (−$440.00)"
    assert money_with_home(D("250"), "USD", D("250"), "USD") == "$250.00"
    assert money_with_home(D("5000"), "JPY", D("33.6"), "USD") == "¥5,000 ($33.60)"
