"""QuickBooks JSON the property tests write and read: transaction lines, home amounts, report rows.

Written from QuickBooks' documented shapes, not from the sandbox's or Oodaloo's code, so the
tests that use them stay independent of what they check.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

CENT = Decimal("0.01")


def home(amount: Decimal, rate: Decimal) -> Decimal:
    """QuickBooks' home-currency amount of a foreign amount: rounded half up to the cent."""
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def expense_line(account: dict[str, str], amount: Decimal) -> dict[str, Any]:
    """A purchase's or bill's line spending `amount` on `account` (an AccountRef)."""
    return {
        "Amount": amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": account},
    }


def sales_line(income: dict[str, str], amount: Decimal) -> dict[str, Any]:
    """A sale's line of `amount` booked to the income account `income`."""
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemAccountRef": income},
    }


def report_rows(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every row of a QuickBooks report, nested sections included, in order."""
    for row in rows:
        yield row
        yield from report_rows(row.get("Rows", {}).get("Row", []))


def report_groups(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's sections by their `group`."""
    return {row["group"]: row for row in report_rows(report["Rows"]["Row"]) if "group" in row}
