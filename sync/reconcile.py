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
amount was edited) go to `on_drift`. A sweep is bounded (`reconcile_batch_size` actions per company),
and the payments of a company are looked up together (`sync.payment_search`).
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
from sync.payment_search import PaymentKind, PaymentSight, look_around
from sync.qbo import QBOError, QBONotFoundError
from sync.ratelimit import Priority, RateLimitTimeout
from sync.service import SmartSyncService, outcome_for

logger = logging.getLogger(__name__)

# How a resolution came about.
FOUND = "found"  # QuickBooks has it: succeeded
RESENT = "resent"  # proven absent (or deferred) and sent again with the same requestid
NEEDS_HUMAN = "needs_human"
TARGET_GONE = "target_gone"  # the bill or invoice was deleted; nothing was applied
RETRY_LATER = "retry_later"  # QuickBooks could not be asked now; the next sweep tries again

#: Actions one sweep settles at once, whatever the companies: within the database's connection pool.
_MAX_AT_ONCE = 12

#: The company's semaphore and the sweep's: an action is settled holding both.
_Gate = tuple[asyncio.Semaphore, asyncio.Semaphore]

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
        """Settle due actions, up to `batch_size` for each company; returns what was done with
        each taken. The payments of one company and kind are looked up together (`look_around`),
        so a sweep costs a few queries per company plus one request per payment sent again."""
        claims = await self._claim_due()
        # `concurrency` actions at a time per company (companies have limits of their own in
        # QuickBooks, so a slow one never holds the others back), and no more in all than the
        # database's connection pool serves without waiting.
        gates: dict[str, asyncio.Semaphore] = {}
        in_all = asyncio.Semaphore(_MAX_AT_ONCE)
        groups: dict[tuple[str, str, str], list[_Claim]] = {}
        for claim in claims:
            action = claim.action
            groups.setdefault((action.business_id, action.realm_id, action.operation), []).append(claim)

        async def settle_group(operation: str, group: list[_Claim]) -> list[Resolution]:
            company = gates.setdefault(group[0].action.realm_id, asyncio.Semaphore(self.concurrency))
            gate = (company, in_all)
            kind = PAYMENT_KINDS.get(operation)
            if kind is not None:
                return await self._settle_payments(kind, group, gate)
            return [await self._guarded(claim, self._settle_one(claim), gate) for claim in group]

        done = await asyncio.gather(
            *(settle_group(operation, group) for (_, _, operation), group in groups.items())
        )
        resolutions = [resolution for found in done for resolution in found]
        for resolution in resolutions:
            if self.on_resolved is not None:
                await self.on_resolved(resolution)
        return resolutions

    async def sweep_for(self, budget: timedelta) -> list[Resolution]:
        """Sweep again and again while sweeps settle something, nothing due is left undone and
        `budget` lasts: a backlog after an outage drains at QuickBooks' pace (each company's rate
        limit), not one batch per scheduled run. Stops at the first sweep that settles nothing
        (QuickBooks still unavailable, or only actions waiting for their time)."""
        ends = self.infra.clock.monotonic() + budget.total_seconds()
        everything: list[Resolution] = []
        while True:
            done = await self.sweep()
            everything += done
            if not any(resolution.settled for resolution in done):
                return everything
            if self.infra.clock.monotonic() >= ends or not await self.due():
                return everything

    async def _claim_due(self) -> list[_Claim]:
        """Claim up to `batch_size` due actions per company, oldest first. An action another worker
        holds is passed over, so workers sweeping at once take different actions."""
        by_realm: dict[str, list[Action]] = {}
        for action in await self.due():
            by_realm.setdefault(action.realm_id, []).append(action)

        async def claim_some(actions: list[Action]) -> list[_Claim]:
            taken: list[_Claim] = []
            for seen in actions:
                if len(taken) >= self.batch_size:
                    break
                claim = await self._claim(seen)
                if claim is not None:
                    taken.append(claim)
            return taken

        claimed = await asyncio.gather(*(claim_some(actions) for actions in by_realm.values()))
        return [claim for taken in claimed for claim in taken]

    async def _claim(self, seen: Action) -> _Claim | None:
        service = SmartSyncService(self.infra, seen.business_id, seen.realm_id)
        owner = service.new_owner()
        lease = self.infra.settings.write_lease_seconds(_PRIORITY) * 2
        action = await self.infra.ledger.claim(seen.key, owner, lease)
        if action is None:
            return None  # another worker holds it, or it settled since we looked
        self.infra.metrics.incr(m.RECONCILIATIONS, action.realm_id)
        return _Claim(service, action, owner, seen.state)

    async def _settle_payments(
        self, kind: PaymentKind, group: list[_Claim], gate: _Gate
    ) -> list[Resolution]:
        """One look at QuickBooks for the whole group, then each action judged and acted on."""
        # Payments never sent need only their targets' versions; any other needs the search.
        searched = any(not _never_sent(claim) for claim in group)
        try:
            async with gate[0], gate[1]:
                sight = await look_around(
                    group[0].service,
                    kind,
                    [claim.action for claim in group],
                    priority=_PRIORITY,
                    with_payments=searched,
                )
        except Exception as exc:  # noqa: BLE001 - each action is released or handed over below
            return [await self._failed(claim, exc) for claim in group]

        async def judged(claim: _Claim) -> Resolution:
            return await self._act(claim, self._judge_payment(claim, kind, sight))

        return list(
            await asyncio.gather(*(self._guarded(claim, judged(claim), gate) for claim in group))
        )

    async def _settle_one(self, claim: _Claim) -> Resolution:
        if claim.action.operation == INVOICE_SEND:
            finding = await self._look_for_sent_invoice(claim.service, claim.action)
        else:
            finding = _Finding(
                NEEDS_HUMAN,
                f"Oodaloo does not know how to check a {claim.action.operation!r} action in "
                "QuickBooks",
            )
        return await self._act(claim, finding)

    async def _guarded(
        self, claim: _Claim, settling: Awaitable[Resolution], gate: _Gate
    ) -> Resolution:
        async with gate[0], gate[1]:
            try:
                return await settling
            except Exception as exc:  # noqa: BLE001 - _failed decides: release, or a person
                return await self._failed(claim, exc)

    async def _failed(self, claim: _Claim, exc: Exception) -> Resolution:
        """What becomes of a claimed action when settling it raised `exc`."""
        action, owner, previous = claim.action, claim.owner, claim.previous
        if isinstance(exc, LeaseLost):
            return self._resolution(action, previous, RETRY_LATER, str(exc), outcome_for(exc.action))
        if isinstance(exc, QBOError | CircuitOpen | RateLimitTimeout):
            # QuickBooks could not be asked: leave the action as it was for the next sweep.
            not_asked = isinstance(exc, CircuitOpen | RateLimitTimeout)
            reason = f"could not check QuickBooks yet: {exc}"
            if previous is ActionState.PENDING:
                kept = await self.infra.ledger.release_to_pending(
                    action.key, owner, reason, sent=not not_asked
                )
            else:
                kept = await self.infra.ledger.mark_unknown(action.key, owner, reason)
            return replace(
                self._resolution(action, previous, RETRY_LATER, reason, outcome_for(kept)),
                unavailable=not_asked,
            )
        # An action that cannot be reconciled must not block the others, nor be guessed at.
        logger.error(
            "reconciling action %s failed unexpectedly; handing it to a person",
            action.key,
            exc_info=exc,
            extra={"realm_id": action.realm_id, "action_key": action.key},
        )
        reason = f"Oodaloo could not reconcile this action automatically ({type(exc).__name__}: {exc})"
        stopped = await self.infra.ledger.mark_needs_human(action.key, reason)
        self.infra.metrics.incr(m.NEEDS_HUMAN, action.realm_id)
        return self._resolution(action, previous, NEEDS_HUMAN, reason, outcome_for(stopped))

    async def _act(self, claim: _Claim, finding: _Finding) -> Resolution:
        service, action, owner, previous = claim.service, claim.action, claim.owner, claim.previous
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

    async def _read(self, service: SmartSyncService, entity: str, entity_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await service.execute_qbo_call(
                "get", entity, entity_id, priority=_PRIORITY
            )
        except QBONotFoundError:
            return None
        return found

    def _judge_payment(self, claim: _Claim, kind: PaymentKind, sight: PaymentSight) -> _Finding:
        action = claim.action
        target = sight.target(action)
        if _never_sent(claim):
            return self._never_sent_payment(action, kind, target)
        payments = sight.payments_for(action)
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

    async def _look_for_sent_invoice(self, service: SmartSyncService, action: Action) -> _Finding:
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


@dataclass(frozen=True)
class _Claim:
    """An action this sweep holds the lease of, with the state it was found in."""

    service: SmartSyncService
    action: Action
    owner: str
    previous: ActionState


def _never_sent(claim: _Claim) -> bool:
    """Deferred and never tried (the claim itself counts one attempt): no request of it can be in
    QuickBooks."""
    return claim.previous is ActionState.PENDING and claim.action.attempts <= 1


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
