"""Text formatting shared by Oodaloo's terminal, Slack and email output."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def money(amount: Decimal, currency: str = "USD") -> str:
    """$12,345.67 (and −$12.00 for negatives): cents always shown, never through float."""
    symbol = "$" if currency == "USD" else f"{currency} "
    value = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    sign = "−" if value < 0 else ""
    return f"{sign}{symbol}{abs(value):,.2f}"


def plain(text: object) -> str:
    """Text from QuickBooks for a terminal: control characters removed, nothing else changed."""
    return "".join(ch for ch in str(text) if ch.isprintable())
