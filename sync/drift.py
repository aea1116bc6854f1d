"""Drift: where Oodaloo's picture of a business's books no longer matches QuickBooks.

Someone edits a bill in QuickBooks, deletes a payment Oodaloo made, or records a partial payment by
hand; from then on the runway numbers and the buttons in the digest would be wrong. These pure
functions compare a local snapshot (plain dataclasses, handed in by the domain) with QBO's current
objects (dicts exactly as QBO returns them, parsed with Decimal amounts) and return typed
differences, each able to describe itself in one plain sentence for the drift alert.

Vendor and customer names are passed through untouched: escaping them for Slack or email is the
presentation layer's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

SUCCEEDED = "succeeded"  # the ledger's state for an action QBO applied


# --- The local snapshot ---------------------------------------------------------------------


@dataclass(frozen=True)
class LocalBill:
    id: str  # QBO Id
    amount: Decimal  # TotalAmt when last synced
    balance: Decimal  # what was left to pay when last synced (after payments made here)
    sync_token: str
    paid_locally: bool  # paid in full through Oodaloo
    vendor_name: str | None = None
    doc_number: str | None = None


@dataclass(frozen=True)
class LocalInvoice:
    id: str
    amount: Decimal
    balance: Decimal
    sync_token: str
    customer_name: str | None = None
    doc_number: str | None = None


@dataclass(frozen=True)
class LocalAction:
    """A ledger action as the reconciler sees it."""

    key: str
    target_id: str
    amount: Decimal
    state: str  # an ActionState value; only succeeded actions are expected in QBO
    qbo_object_id: str | None = None  # the object QBO created, when its reply arrived
    target_type: str = "Bill"
    object_type: str = "BillPayment"  # the QBO entity the action creates


# --- Differences ----------------------------------------------------------------------------


def _format_money(amount: Decimal, currency: str | None) -> str:
    sign = "-" if amount < 0 else ""
    digits = f"{abs(amount):,.2f}"
    if currency in (None, ""):
        return f"{sign}{digits}"
    if currency == "USD":
        return f"{sign}${digits}"
    return f"{sign}{digits} {currency}"


def _label(entity_type: str, entity_id: str, reference: str | None, name: str | None) -> str:
    label = f"{entity_type} {reference or entity_id}"
    return f"{label} ({name})" if name else label


@dataclass(frozen=True)
class AmountChanged:
    """The object's total is not what Oodaloo has (edited in QBO, or a payment of another amount)."""

    kind: ClassVar[str] = "amount_changed"
    entity_type: str
    entity_id: str
    local_amount: Decimal
    qbo_amount: Decimal
    name: str | None = None
    reference: str | None = None  # DocNumber, what the user knows the object by
    currency: str | None = None

    def describe(self) -> str:
        label = _label(self.entity_type, self.entity_id, self.reference, self.name)
        return (
            f"{label} now totals {_format_money(self.qbo_amount, self.currency)} in QuickBooks; "
            f"Oodaloo had {_format_money(self.local_amount, self.currency)}."
        )


@dataclass(frozen=True)
class BalanceChanged:
    """What is left to pay changed in QBO (a payment recorded, edited or deleted there)."""

    kind: ClassVar[str] = "balance_changed"
    entity_type: str
    entity_id: str
    local_balance: Decimal
    qbo_balance: Decimal
    name: str | None = None
    reference: str | None = None
    currency: str | None = None

    def describe(self) -> str:
        label = _label(self.entity_type, self.entity_id, self.reference, self.name)
        return (
            f"{label} has an open balance of {_format_money(self.qbo_balance, self.currency)} "
            f"in QuickBooks; Oodaloo had {_format_money(self.local_balance, self.currency)}."
        )


@dataclass(frozen=True)
class PaidHereOpenInQBO:
    """Paid through Oodaloo, yet still open in QBO (the payment was deleted or never landed)."""

    kind: ClassVar[str] = "paid_here_open_in_qbo"
    entity_type: str
    entity_id: str
    local_balance: Decimal
    qbo_balance: Decimal
    name: str | None = None
    reference: str | None = None
    currency: str | None = None

    def describe(self) -> str:
        label = _label(self.entity_type, self.entity_id, self.reference, self.name)
        return (
            f"{label} was paid through Oodaloo, but QuickBooks still shows it open with "
            f"{_format_money(self.qbo_balance, self.currency)} to pay."
        )


@dataclass(frozen=True)
class DeletedInQBO:
    """Oodaloo knows the object; QBO no longer has it."""

    kind: ClassVar[str] = "deleted_in_qbo"
    entity_type: str
    entity_id: str
    local_amount: Decimal
    qbo_amount: None = None  # nothing left in QBO to compare with
    name: str | None = None
    reference: str | None = None

    def describe(self) -> str:
        label = _label(self.entity_type, self.entity_id, self.reference, self.name)
        return (
            f"{label}, for {_format_money(self.local_amount, None)}, has been deleted "
            "in QuickBooks."
        )


@dataclass(frozen=True)
class ActionMissingInQBO:
    """An action the ledger says succeeded, whose object cannot be found in QBO."""

    kind: ClassVar[str] = "action_missing_in_qbo"
    action_key: str
    target_type: str
    target_id: str
    object_type: str
    object_id: str | None
    local_amount: Decimal
    qbo_amount: None = None

    def describe(self) -> str:
        made = f"{self.object_type} {self.object_id}" if self.object_id else f"a {self.object_type}"
        return (
            f"Oodaloo made {made} of {_format_money(self.local_amount, None)} for "
            f"{self.target_type} {self.target_id}, but it cannot be found in QuickBooks "
            f"(action {self.action_key})."
        )


Drift = AmountChanged | BalanceChanged | PaidHereOpenInQBO | DeletedInQBO | ActionMissingInQBO


# --- Reading QBO objects --------------------------------------------------------------------


def _qbo_amount(obj: Mapping[str, Any], field: str) -> Decimal:
    if field not in obj:
        raise KeyError(
            f"QBO {obj.get('Id', '?')} has no {field}; pass the full object QBO returned"
        )
    value = obj[field]
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(
            f"QBO {field} {value!r} of object {obj.get('Id', '?')} is a {type(value).__name__}; "
            "parse QBO JSON with simplejson use_decimal=True so amounts stay exact"
        )
    return Decimal(value)


def _is_deleted(obj: Mapping[str, Any]) -> bool:
    # Change data capture reports a deleted object as {"Id": ..., "status": "Deleted"}.
    return obj.get("status") == "Deleted"


def _index_by_id(objects: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(obj["Id"]): obj for obj in objects}


def _ref_name(obj: Mapping[str, Any], ref: str) -> str | None:
    value = obj.get(ref)
    if isinstance(value, Mapping):
        name = value.get("name")
        return name if isinstance(name, str) else None
    return None


def _currency(obj: Mapping[str, Any]) -> str | None:
    value = obj.get("CurrencyRef")
    if isinstance(value, Mapping) and isinstance(value.get("value"), str):
        return str(value["value"])
    return None


# --- Comparisons ----------------------------------------------------------------------------


def _compare_open_item(
    entity_type: str,
    local_id: str,
    local_amount: Decimal,
    local_balance: Decimal,
    paid_locally: bool,
    local_name: str | None,
    local_reference: str | None,
    qbo: Mapping[str, Any] | None,
    name_ref: str,
) -> list[Drift]:
    if qbo is None or _is_deleted(qbo):
        return [
            DeletedInQBO(
                entity_type, local_id, local_amount, name=local_name, reference=local_reference
            )
        ]
    name = _ref_name(qbo, name_ref) or local_name
    reference = qbo.get("DocNumber") or local_reference
    currency = _currency(qbo)
    qbo_amount = _qbo_amount(qbo, "TotalAmt")
    qbo_balance = _qbo_amount(qbo, "Balance")
    found: list[Drift] = []
    if qbo_amount != local_amount:
        found.append(
            AmountChanged(
                entity_type, local_id, local_amount, qbo_amount, name, reference, currency
            )
        )
    if paid_locally and qbo_balance > 0:
        found.append(
            PaidHereOpenInQBO(
                entity_type, local_id, local_balance, qbo_balance, name, reference, currency
            )
        )
    elif qbo_balance != local_balance:
        # An open item whose total was edited moves its balance by the same amount: that is
        # one change, already reported as AmountChanged.
        explained = qbo_balance - local_balance == qbo_amount - local_amount
        if not explained:
            found.append(
                BalanceChanged(
                    entity_type, local_id, local_balance, qbo_balance, name, reference, currency
                )
            )
    return found


def bill_drift(
    local_bills: Iterable[LocalBill], qbo_bills: Iterable[Mapping[str, Any]]
) -> list[Drift]:
    """Differences between local bills and QBO's current copies of them.

    `qbo_bills` must hold every bill QBO still has among the local ids (e.g. the result of
    `select * from Bill where Id in (...)`, or CDC entries): a local bill absent from it, or
    reported with status "Deleted", is reported as deleted in QBO.
    """
    by_id = _index_by_id(qbo_bills)
    found: list[Drift] = []
    for bill in local_bills:
        found += _compare_open_item(
            "Bill",
            bill.id,
            bill.amount,
            bill.balance,
            bill.paid_locally,
            bill.vendor_name,
            bill.doc_number,
            by_id.get(bill.id),
            "VendorRef",
        )
    return found


def invoice_drift(
    local_invoices: Iterable[LocalInvoice], qbo_invoices: Iterable[Mapping[str, Any]]
) -> list[Drift]:
    """Differences between local invoices and QBO's current copies (same rules as bills)."""
    by_id = _index_by_id(qbo_invoices)
    found: list[Drift] = []
    for invoice in local_invoices:
        found += _compare_open_item(
            "Invoice",
            invoice.id,
            invoice.amount,
            invoice.balance,
            False,
            invoice.customer_name,
            invoice.doc_number,
            by_id.get(invoice.id),
            "CustomerRef",
        )
    return found


def action_drift(
    actions: Iterable[LocalAction], qbo_objects: Iterable[Mapping[str, Any]]
) -> list[Drift]:
    """Succeeded actions whose objects are gone from QBO, or whose amounts differ there.

    An action's object is found by its QBO Id, or else by its key in the object's PrivateNote
    (where the key is written when the object is created, for exactly this search).
    `qbo_objects` are the candidate objects, e.g. the BillPayments of the period.
    """
    objects = [obj for obj in qbo_objects if not _is_deleted(obj)]
    by_id = _index_by_id(objects)
    found: list[Drift] = []
    for action in actions:
        if action.state != SUCCEEDED:
            continue
        match = by_id.get(action.qbo_object_id) if action.qbo_object_id else None
        if match is None:
            match = next(
                (obj for obj in objects if action.key in str(obj.get("PrivateNote", ""))), None
            )
        if match is None:
            found.append(
                ActionMissingInQBO(
                    action.key,
                    action.target_type,
                    action.target_id,
                    action.object_type,
                    action.qbo_object_id,
                    action.amount,
                )
            )
            continue
        qbo_amount = _qbo_amount(match, "TotalAmt")
        if qbo_amount != action.amount:
            found.append(
                AmountChanged(
                    action.object_type,
                    str(match["Id"]),
                    action.amount,
                    qbo_amount,
                    currency=_currency(match),
                )
            )
    return found
