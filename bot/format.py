"""Text formatting shared by Oodaloo's terminal, Slack and email output.

Money, dates and times are written by `runway.formatting`; this module keeps what is not money.
"""

from __future__ import annotations


def plain(text: object) -> str:
    """Text from QuickBooks for a terminal: control characters removed, nothing else changed."""
    return "".join(ch for ch in str(text) if ch.isprintable())
