"""What QuickBooks shows around many payment actions of one company, in a few queries.

Settling a payment whose outcome is unknown needs its target (the bill or invoice: still there,
still the version the person approved?) and every payment that could be the action's: those
linked to the target, and those to the same party on the same date (found even when the link was
removed or the target deleted). Asked one action at a time that is a read and two queries each.
Here the targets of a whole sweep come in one `Id IN (...)` query per 100, their linked payments in
one more, and the payments to the same parties in one per date: after an outage leaves a thousand
payments unknown, checking them costs a few dozen calls, not three thousand. QuickBooks counts each
query as one request against its limit of 500 a minute per company, whatever it returns (pages of
up to 1,000 rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sync.ledger import Action
from sync.qbo import quote_literal
from sync.ratelimit import Priority

#: Ids per `IN (...)` list: a statement stays short for QuickBooks' query parser.
IDS_PER_QUERY = 100


@dataclass(frozen=True)
class PaymentKind:
    target_entity: str  # what is paid: "Bill" or "Invoice"
    payment_entity: str  # what pays it: "BillPayment" or "Payment"
    link_types: frozenset[str]  # LinkedTxn types on the target that name its payments
    party_ref: str  # the payment's VendorRef or CustomerRef


class Queries(Protocol):
    """Runs QuickBooks queries for one company (SmartSyncService does)."""

    async def execute_qbo_call(self, operation: str, *args: Any, priority: Priority = ...) -> Any: ...


@dataclass(frozen=True)
class PaymentSight:
    """The targets (None where QuickBooks no longer has one) and the payments around them."""

    kind: PaymentKind
    targets: Mapping[str, dict[str, Any] | None]
    payments: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def target(self, action: Action) -> dict[str, Any] | None:
        return self.targets.get(action.target_id)

    def payments_for(self, action: Action) -> dict[str, dict[str, Any]]:
        """By id: the payments linked to the action's target, and those to its party on its date."""
        linked = _linked_ids(self.kind, self.target(action))
        party, txn_date = _party_and_date(self.kind, action)
        return {
            payment_id: payment
            for payment_id, payment in self.payments.items()
            if payment_id in linked
            or (
                party is not None
                and (payment.get(self.kind.party_ref) or {}).get("value") == party
                and payment.get("TxnDate") == txn_date
            )
        }


async def look_around(
    service: Queries,
    kind: PaymentKind,
    actions: Sequence[Action],
    *,
    priority: Priority,
    with_payments: bool = True,
) -> PaymentSight:
    """Read the targets of `actions` (all of one company and kind) and, unless `with_payments` is
    False, the payments around them. Raises what the queries raise (QBOError, CircuitOpen,
    RateLimitTimeout): nothing is decided on half a sight."""

    async def rows(entity: str, where: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await service.execute_qbo_call(
            "query", f"SELECT * FROM {entity} WHERE {where}", priority=priority
        )
        return found

    async def by_ids(entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = sorted(set(ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_QUERY):
            listed = ", ".join(quote_literal(i) for i in wanted[start : start + IDS_PER_QUERY])
            for row in await rows(entity, f"Id IN ({listed})"):
                found[str(row.get("Id"))] = row
        return found

    found_targets = await by_ids(kind.target_entity, (a.target_id for a in actions))
    targets = {a.target_id: found_targets.get(a.target_id) for a in actions}
    if not with_payments:
        return PaymentSight(kind, targets)
    linked = set().union(*(_linked_ids(kind, target) for target in targets.values()))
    payments = await by_ids(kind.payment_entity, linked)
    parties_by_date: dict[str, set[str]] = {}
    for action in actions:
        party, txn_date = _party_and_date(kind, action)
        if party is not None and txn_date is not None:
            parties_by_date.setdefault(txn_date, set()).add(party)
    for txn_date, parties in sorted(parties_by_date.items()):
        ordered = sorted(parties)
        for start in range(0, len(ordered), IDS_PER_QUERY):
            listed = ", ".join(quote_literal(p) for p in ordered[start : start + IDS_PER_QUERY])
            for row in await rows(
                kind.payment_entity,
                f"TxnDate = {quote_literal(txn_date)} AND {kind.party_ref} IN ({listed})",
            ):
                payments[str(row.get("Id"))] = row
    return PaymentSight(kind, targets, payments)


def _linked_ids(kind: PaymentKind, target: Mapping[str, Any] | None) -> set[str]:
    if target is None:
        return set()
    return {
        str(link["TxnId"])
        for link in target.get("LinkedTxn") or []
        if link.get("TxnType") in kind.link_types and link.get("TxnId") is not None
    }


def _party_and_date(kind: PaymentKind, action: Action) -> tuple[str | None, str | None]:
    party = (action.payload.get(kind.party_ref) or {}).get("value")
    txn_date = action.payload.get("TxnDate")
    if isinstance(party, str) and isinstance(txn_date, str):
        return party, txn_date
    return None, None
