"""The reconciler: settles every write whose outcome Oodaloo does not know, by asking QuickBooks.

A write's answer can be lost (timeout, 5xx, dropped connection), its worker can crash mid-call, or
QuickBooks can be down when the user clicks. The ledger keeps all of these: `unknown`, `in_flight`
with an expired lease, or `pending`. A sweep takes each one (a claim in the ledger decides who, so
two processes can sweep at once), and looks in QuickBooks:

- the object carrying the action's marker (`oodaloo:<key>` in its memo) is there, for the same
  target and amount → succeeded, with its QuickBooks id;
- it is proven absent (the target is readable, nothing carries the marker, and the target is still
  the version the user approved) → sent again with the SAME requestid, so even a copy of the first
  request still travelling cannot make a second payment;
- anything ambiguous (two objects with the marker, a payment of the same amount to the same bill
  without it, the bill changed since approval) → needs_human, with a plain reason. Oodaloo never
  guesses with money.

Deferred (`pending`) actions are sent when their wait is over, after the same version check.
Each resolution goes to `on_resolved`; differences found on the way (a deleted bill, a payment whose
amount was edited) go to `on_drift`. A sweep is bounded (`reconcile_batch_size`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sync import metrics as m
from sync.actions import (
    BILL_PAYMENT_CREATE,
    CUSTOMER_PAYMENT_CREATE,
    INVOICE_SEND,
    ActionOutcome,
    markers_in,
)
from sync.circuit import CircuitOpen
from sync.drift import AmountChanged, DeletedInQBO, Drift
from sync.infrastructure import SyncInfrastructure
from sync.ledger import Action, ActionState, LeaseLost
from sync.metrics import log_event
from sync.qbo import QBOError, QBONotFoundError, quote_literal
from sync.ratelimit import Priority, RateLimitTimeout
from sync.service import SmartSyncService, outcome_for

logger = logging.getLogger(__name__)

# How a resolution came about.
FOUND = "found"  # QuickBooks has it: succeeded
RESENT = "resent"  # proven absent (or deferred) and sent again with the same requestid
NEEDS_HUMAN = "needs_human"
TARGET_GONE = "target_gone"  # the bill or invoice was deleted; nothing was applied
RETRY_LATER = "retry_later"  # QuickBooks could not be asked now; the next sweep tries again

#: Every action in the ledger is a person's (a Pay click, a reminder): settling it keeps their
#: priority, so a deferred click never waits behind syncs and digests.
_PRIORITY = Priority.USER_ACTION


@dataclass(frozen=True)
class Resolution:
    """What a sweep did with one action. `settled` says whether the action is now final."""

    key: str
    business_id: str
    realm_id: str
    operation: str
    previous_state: ActionState
    state: ActionState
    qbo_object_id: str | None
    how: str
    reason: str
    outcome: ActionOutcome
    unavailable: bool = False  # QuickBooks could not be asked for this company (circuit, throttle)

    @property
    def settled(self) -> bool:
        return self.state in (ActionState.SUCCEEDED, ActionState.FAILED, ActionState.NEEDS_HUMAN)


@dataclass(frozen=True)
class DriftReport:
    """A difference between Oodaloo and QuickBooks, found while reconciling one action."""

    business_id: str
    realm_id: str
    action_key: str
    drift: Drift


OnResolved = Callable[[Resolution], Awaitable[None]]
OnDrift = Callable[[DriftReport], Awaitable[None]]


@dataclass(frozen=True)
class PaymentKind:
    target_entity: str  # what is paid: "Bill" or "Invoice"
    payment_entity: str  # what pays it: "BillPayment" or "Payment"
    link_types: frozenset[str]  # LinkedTxn types on the target that name its payments
    party_ref: str  # the payment's VendorRef or CustomerRef


PAYMENT_KINDS: Mapping[str, PaymentKind] = {
    BILL_PAYMENT_CREATE: PaymentKind(
        "Bill",
        "BillPayment",
        frozenset({"BillPaymentCheck", "BillPaymentCreditCard", "BillPayment"}),
        "VendorRef",
    ),
    CUSTOMER_PAYMENT_CREATE: PaymentKind(
        "Invoice", "Payment", frozenset({"Payment", "ReceivePayment"}), "CustomerRef"
    ),
}


@dataclass(frozen=True)
class _Finding:
    """What QuickBooks shows about one action: found, absent (safe to send), or a verdict."""

    how: str  # FOUND, RESENT (meaning: absent, send it), NEEDS_HUMAN, TARGET_GONE
    reason: str
    found: dict[str, Any] | None = None
    drift: tuple[Drift, ...] = ()


class Reconciler:
    """Sweeps the ledger for unsettled actions and settles them against QuickBooks."""

    def __init__(
        self,
        infra: SyncInfrastructure,
        *,
        on_resolved: OnResolved | None = None,
        on_drift: OnDrift | None = None,
        batch_size: int | None = None,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.infra = infra
        self.on_resolved = on_resolved
        self.on_drift = on_drift
        self.batch_size = batch_size or infra.settings.reconcile_batch_size
        self.concurrency = concurrency

    async def due(self) -> list[Action]:
        """Actions a sweep would take now: unknown, in flight past their lease, deferred and due."""
        now = self.infra.clock.now()
        ledger = self.infra.ledger
        due = list(await ledger.due_for_reconciliation(now))
        for action in await ledger.list(state=ActionState.PENDING):
            if self._deferred_due(action, now):
                due.append(action)
        return due

    def _deferred_due(self, action: Action, now: datetime) -> bool:
        settings = self.infra.settings
        if action.attempts == 0:
            # Never sent: recorded but its worker died before the call, or only ever held back by
            # this side's rate limiter or open circuit (which the sweep asks again each time).
            wait = settings.deferred_retry_after
        else:
            wait = min(
                settings.deferred_retry_after * (2 ** min(action.attempts - 1, 16)),
                settings.deferred_retry_max,
            )
        return action.updated_at + wait <= now

    async def sweep(self) -> list[Resolution]:
        """Settle up to `batch_size` due actions; returns what was done with each taken."""
        candidates = (await self.due())[: self.batch_size]
        gate = asyncio.Semaphore(self.concurrency)
        # A company whose circuit is open or whose rate budget is spent is skipped for the rest of
        # the sweep: its other actions would only be claimed and put back.
        unavailable: set[str] = set()

        async def settle(action: Action) -> Resolution | None:
            async with gate:
                if action.realm_id in unavailable:
                    return None
                resolution = await self._settle(action)
                if resolution is not None and resolution.how == RETRY_LATER and resolution.unavailable:
                    unavailable.add(action.realm_id)
                return resolution

        done = await asyncio.gather(*(settle(action) for action in candidates))
        resolutions = [resolution for resolution in done if resolution is not None]
        for resolution in resolutions:
            if self.on_resolved is not None:
                await self.on_resolved(resolution)
        return resolutions

    async def _settle(self, seen: Action) -> Resolution | None:
        service = SmartSyncService(self.infra, seen.business_id, seen.realm_id)
        owner = service.new_owner()
        lease = self.infra.settings.write_lease_seconds(_PRIORITY) * 2
        action = await self.infra.ledger.claim(seen.key, owner, lease)
        if action is None:
            return None  # another worker holds it, or it settled since we looked
        self.infra.metrics.incr(m.RECONCILIATIONS, action.realm_id)
        previous = seen.state
        try:
            return await self._settle_claimed(service, action, owner, previous)
        except LeaseLost as lost:
            return self._resolution(action, previous, RETRY_LATER, str(lost), outcome_for(lost.action))
        except (QBOError, CircuitOpen, RateLimitTimeout) as exc:
            # QuickBooks could not be asked: leave the action as it was for the next sweep.
            reason = f"could not check QuickBooks yet: {exc}"
            if previous is ActionState.PENDING:
                kept = await self.infra.ledger.release_to_pending(
                    action.key, owner, reason, sent=not isinstance(exc, CircuitOpen | RateLimitTimeout)
                )
            else:
                kept = await self.infra.ledger.mark_unknown(action.key, owner, reason)
            return replace(
                self._resolution(action, previous, RETRY_LATER, reason, outcome_for(kept)),
                unavailable=isinstance(exc, CircuitOpen | RateLimitTimeout),
            )
        except Exception as exc:
            # An action that cannot be reconciled must not block the others, nor be guessed at.
            logger.exception(
                "reconciling action %s failed unexpectedly; handing it to a person",
                action.key,
                extra={"realm_id": action.realm_id, "action_key": action.key},
            )
            reason = f"Oodaloo could not reconcile this action automatically ({type(exc).__name__}: {exc})"
            stopped = await self.infra.ledger.mark_needs_human(action.key, reason)
            self.infra.metrics.incr(m.NEEDS_HUMAN, action.realm_id)
            return self._resolution(action, previous, NEEDS_HUMAN, reason, outcome_for(stopped))

    async def _settle_claimed(
        self, service: SmartSyncService, action: Action, owner: str, previous: ActionState
    ) -> Resolution:
        finding = await self._look(service, action, previous)
        for drift in finding.drift:
            self.infra.metrics.incr(m.DRIFT_FOUND, action.realm_id)
            if self.on_drift is not None:
                await self.on_drift(
                    DriftReport(action.business_id, action.realm_id, action.key, drift)
                )
        ledger = self.infra.ledger
        if finding.how == FOUND:
            found = finding.found or {}
            object_id = found.get("Id")
            done = await ledger.mark_succeeded(
                action.key, owner, None if object_id is None else str(object_id), found
            )
            self.infra.metrics.incr(m.RECONCILED_FOUND, action.realm_id)
            await service.invalidate_after(done)
            outcome = outcome_for(done)
        elif finding.how == RESENT:
            self.infra.metrics.incr(m.RECONCILED_RESENT, action.realm_id)
            outcome = await service.perform_claimed(action, owner, priority=_PRIORITY)
        elif finding.how == TARGET_GONE:
            outcome = outcome_for(await ledger.mark_failed(action.key, owner, finding.reason))
        else:
            self.infra.metrics.incr(m.NEEDS_HUMAN, action.realm_id)
            outcome = outcome_for(await ledger.mark_needs_human(action.key, finding.reason))
        log_event(
            logging.INFO,
            f"reconciled {action.operation} ({previous} → {outcome.state}, {finding.how}): "
            f"{finding.reason}",
            realm_id=action.realm_id,
            action_key=action.key,
            business_id=action.business_id,
        )
        return self._resolution(action, previous, finding.how, finding.reason, outcome)

    def _resolution(
        self,
        action: Action,
        previous: ActionState,
        how: str,
        reason: str,
        outcome: ActionOutcome,
    ) -> Resolution:
        return Resolution(
            key=action.key,
            business_id=action.business_id,
            realm_id=action.realm_id,
            operation=action.operation,
            previous_state=previous,
            state=outcome.state,
            qbo_object_id=outcome.qbo_object_id,
            how=how,
            reason=reason,
            outcome=outcome,
        )

    # --- looking in QuickBooks ---------------------------------------------------------------

    async def _look(
        self, service: SmartSyncService, action: Action, previous: ActionState
    ) -> _Finding:
        kind = PAYMENT_KINDS.get(action.operation)
        if kind is not None:
            return await self._look_for_payment(service, action, kind, previous)
        if action.operation == INVOICE_SEND:
            return await self._look_for_sent_invoice(service, action, previous)
        return _Finding(
            NEEDS_HUMAN,
            f"Oodaloo does not know how to check a {action.operation!r} action in QuickBooks",
        )

    async def _read(self, service: SmartSyncService, entity: str, entity_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await service.execute_qbo_call(
                "get", entity, entity_id, priority=_PRIORITY
            )
        except QBONotFoundError:
            return None
        return found

    async def _query(self, service: SmartSyncService, statement: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await service.execute_qbo_call(
            "query", statement, priority=_PRIORITY
        )
        return rows

    async def payments_around(
        self,
        service: SmartSyncService,
        action: Action,
        kind: PaymentKind,
        target: Mapping[str, Any] | None,
    ) -> dict[str, dict[str, Any]]:
        """The payments in QuickBooks that could be this action's, by id: those linked to its
        target, and those to the same party on the same date (found even if the link to the target
        was removed or the target deleted). At most two queries."""
        payments: dict[str, dict[str, Any]] = {}
        if target is not None:
            linked = sorted(
                {
                    str(link["TxnId"])
                    for link in target.get("LinkedTxn") or []
                    if link.get("TxnType") in kind.link_types and link.get("TxnId") is not None
                }
            )
            if linked:
                listed = ", ".join(quote_literal(payment_id) for payment_id in linked)
                for row in await self._query(
                    service, f"SELECT * FROM {kind.payment_entity} WHERE Id IN ({listed})"
                ):
                    payments[str(row.get("Id"))] = row
        party = (action.payload.get(kind.party_ref) or {}).get("value")
        txn_date = action.payload.get("TxnDate")
        if isinstance(party, str) and isinstance(txn_date, str):
            for row in await self._query(
                service,
                f"SELECT * FROM {kind.payment_entity} WHERE {kind.party_ref} = "
                f"{quote_literal(party)} AND TxnDate = {quote_literal(txn_date)}",
            ):
                payments[str(row.get("Id"))] = row
        return payments

    async def _look_for_payment(
        self,
        service: SmartSyncService,
        action: Action,
        kind: PaymentKind,
        previous: ActionState,
    ) -> _Finding:
        target = await self._read(service, kind.target_entity, action.target_id)
        if previous is ActionState.PENDING and action.attempts <= 1:  # counting this sweep's claim
            return self._never_sent_payment(action, kind, target)
        payments = await self.payments_around(service, action, kind, target)
        marked = [p for p in payments.values() if action.key in markers_in(p.get("PrivateNote"))]
        what = f"{kind.target_entity} {action.target_id}"
        if len(marked) > 1:
            ids = ", ".join(sorted(str(p.get("Id")) for p in marked))
            return _Finding(
                NEEDS_HUMAN,
                f"{len(marked)} {kind.payment_entity}s in QuickBooks carry this action's marker "
                f"(ids {ids}) for {what}: keep one, void the others in QuickBooks, then mark "
                "this action resolved",
            )
        if marked:
            payment = marked[0]
            applied = amount_applied(payment, action.target_id)
            if applied == action.amount:
                return _Finding(
                    FOUND,
                    f"{kind.payment_entity} {payment.get('Id')} carries this action's marker",
                    found=payment,
                )
            return _Finding(
                NEEDS_HUMAN,
                f"{kind.payment_entity} {payment.get('Id')} carries this action's marker but applies "
                f"{applied} to {what} instead of {action.amount}: it was edited in QuickBooks; "
                "check it there",
                drift=(
                    AmountChanged(
                        kind.payment_entity, str(payment.get("Id")), action.amount, applied
                    ),
                ),
            )
        if target is None:
            return _Finding(
                TARGET_GONE,
                f"{what} was deleted in QuickBooks and no payment from Oodaloo exists, so "
                "nothing was paid",
                drift=(DeletedInQBO(kind.target_entity, action.target_id, action.amount),),
            )
        since = action.created_at - self.infra.settings.clock_skew
        lookalikes = [
            p
            for p in payments.values()
            if amount_applied(p, action.target_id) == action.amount
            and _created_since(p, since)
        ]
        if lookalikes:
            ids = ", ".join(sorted(str(p.get("Id")) for p in lookalikes))
            return _Finding(
                NEEDS_HUMAN,
                f"QuickBooks has a {kind.payment_entity} of {action.amount} for {what} without "
                f"Oodaloo's marker (id {ids}): someone may have paid it by hand. Check before "
                "paying again",
            )
        version = str(target.get("SyncToken"))
        if version != action.target_version:
            return _Finding(
                NEEDS_HUMAN,
                f"{what} changed in QuickBooks since this was approved (version "
                f"{action.target_version} → {version}) and no payment from Oodaloo is there: "
                "approve it again from the current bill",
            )
        return _Finding(
            RESENT,
            f"no {kind.payment_entity} carries this action's marker; sending it again with the "
            "same requestid",
        )

    def _never_sent_payment(
        self, action: Action, kind: PaymentKind, target: Mapping[str, Any] | None
    ) -> _Finding:
        """A payment no request of which ever left Oodaloo (held back by the rate limiter or an
        open circuit, or its worker died before the call) cannot be in QuickBooks, so one read of
        the target decides: still the version the person approved → send it; changed or gone →
        not without them (any payment made to it since, by hand or otherwise, changed its
        SyncToken). An action that was ever sent gets the full search for its marker."""
        what = f"{kind.target_entity} {action.target_id}"
        if target is None:
            return _Finding(
                TARGET_GONE,
                f"{what} was deleted in QuickBooks before this payment could be sent, so nothing "
                "was paid",
                drift=(DeletedInQBO(kind.target_entity, action.target_id, action.amount),),
            )
        version = str(target.get("SyncToken"))
        if version != action.target_version:
            return _Finding(
                NEEDS_HUMAN,
                f"{what} changed in QuickBooks while this payment waited to be sent (version "
                f"{action.target_version} → {version}); nothing was paid: approve it again from "
                "the current bill",
            )
        return _Finding(RESENT, "deferred while QuickBooks was unavailable; sending it now")

    async def _look_for_sent_invoice(
        self, service: SmartSyncService, action: Action, previous: ActionState
    ) -> _Finding:
        invoice = await self._read(service, "Invoice", action.target_id)
        if invoice is None:
            return _Finding(
                TARGET_GONE,
                f"Invoice {action.target_id} was deleted in QuickBooks; no reminder was sent",
                drift=(DeletedInQBO("Invoice", action.target_id, action.amount),),
            )
        delivery = invoice.get("DeliveryInfo") or {}
        sent_at = _parse_time(delivery.get("DeliveryTime"))
        since = action.created_at - self.infra.settings.clock_skew
        if invoice.get("EmailStatus") == "EmailSent" and sent_at is not None and sent_at >= since:
            return _Finding(
                FOUND,
                f"QuickBooks emailed invoice {action.target_id} at {sent_at.isoformat()}",
                found=invoice,
            )
        version = str(invoice.get("SyncToken"))
        if version != action.target_version:
            return _Finding(
                NEEDS_HUMAN,
                f"Invoice {action.target_id} changed in QuickBooks since the reminder was "
                f"requested (version {action.target_version} → {version}) and shows no email "
                "since: send the reminder again if it is still wanted",
            )
        return _Finding(RESENT, f"QuickBooks shows no email of invoice {action.target_id}; sending it")


def amount_applied(payment: Mapping[str, Any], target_id: str) -> Decimal:
    """How much of `payment` is applied to the bill or invoice `target_id`."""
    total = Decimal(0)
    for line in payment.get("Line") or []:
        links = line.get("LinkedTxn") or []
        if any(str(link.get("TxnId")) == target_id for link in links):
            amount = line.get("Amount")
            if isinstance(amount, Decimal | int) and not isinstance(amount, bool):
                total += Decimal(amount)
    return total


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _created_since(obj: Mapping[str, Any], since: datetime) -> bool:
    meta = obj.get("MetaData") or {}
    created = _parse_time(meta.get("CreateTime"))
    return created is not None and created >= since


async def sweep_until_settled(
    reconciler: Reconciler, *, max_sweeps: int = 20, pause: timedelta = timedelta(0)
) -> list[Resolution]:
    """Sweep repeatedly until nothing is due (or `max_sweeps` ran); every resolution, in order.

    For operators and tests; a scheduler runs `sweep()` periodically instead.
    """
    everything: list[Resolution] = []
    for _ in range(max_sweeps):
        if not await reconciler.due():
            break
        everything += await reconciler.sweep()
        if pause:
            await asyncio.sleep(pause.total_seconds())
    return everything


__all__: Sequence[str] = [
    "FOUND",
    "NEEDS_HUMAN",
    "RESENT",
    "RETRY_LATER",
    "TARGET_GONE",
    "DriftReport",
    "Reconciler",
    "Resolution",
    "sweep_until_settled",
]
