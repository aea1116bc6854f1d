"""How late each customer typically pays: which invoices a payment paid, and the median lateness.

A customer payment (QuickBooks Payment) names the invoices it pays in its lines' LinkedTxn; the
mirror keeps each as a row dated with the payment (`runway.models.PaidInvoiceLink`). An invoice is
paid on the date of the last payment applied to it; a customer's typical lateness is the median,
over its invoices paid within the history window, of the days from due date to that date, rounded
half up to whole days (the middle two averaged when the count is even).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any


def paid_invoice_ids(obj: Mapping[str, Any]) -> list[str]:
    """The QuickBooks ids of the invoices payment `obj` pays, in the order its lines name them."""
    ids: list[str] = []
    for line in obj.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice" and str(link.get("TxnId")) not in ids:
                ids.append(str(link.get("TxnId")))
    return ids


def typical_days_late(days_late: Mapping[int, int]) -> int:
    """The median of days late given as {days late: how many invoices}, rounded half up."""
    count = sum(days_late.values())
    if count <= 0:
        raise ValueError("a typical lateness needs at least one paid invoice")
    # The values at the two middle positions (the same one when the count is odd).
    wanted = ((count - 1) // 2, count // 2)
    middle: list[int] = []
    seen = 0
    for days in sorted(days_late):
        seen += days_late[days]
        while len(middle) < 2 and wanted[len(middle)] < seen:
            middle.append(days)
    exact = Decimal(middle[0] + middle[1]) / 2
    return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


__all__ = ["paid_invoice_ids", "typical_days_late"]
