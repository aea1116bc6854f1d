"""BillService: the bills a business has to pay, their approvals, and paying them exactly once.

One service serves one business: every lookup goes through that business's unit of work, so the id
of another business's bill is simply "not found". Bills are named by their QuickBooks id (what the
digest's buttons carry). Payments go through `SmartSyncService.create_payment_immediate`, whose
ledger makes a repeated click one payment; this service adds the business rules in front of it
(approvers, the second approval above the threshold, the open balance, one payment in flight per
bill) and writes every attempt, refused ones included, to the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update

from runway import audit
from runway.books import business_today
from runway.errors import (
    ApprovalRefused,
    BusinessNotReady,
    NotAllowed,
    NotFound,
    PaymentRefused,
    RunwayError,
)
from runway.mirror import MirrorSync, SyncReport
from runway.models import Bill, BillPaymentRecord, Business, DocumentStatus
from runway.uow import RunwayUnitOfWork, UowFactory
from sync.actions import BILL_PAYMENT_CREATE, ActionOutcome, BillPaymentIntent
from sync.circuit import CircuitOpen
from sync.clock import Clock
from sync.ledger import Action, ActionState, ConflictingAction
from sync.qbo import QBOError
from sync.ratelimit import Priority, RateLimitTimeout
from sync.reconcile import Resolution
from sync.service import SmartSyncService

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")

#: Ledger states in which a payment may still land in QuickBooks: no second one may start.
PAYMENT_OPEN_STATES = frozenset({ActionState.PENDING, ActionState.IN_FLIGHT, ActionState.UNKNOWN})


@dataclass(frozen=True)
class BillApproval:
    """Where a bill stands in the approval workflow."""

    approved_by: str | None
    approved_at: datetime | None
    second_approved_by: str | None
    second_approved_at: datetime | None
    #: The bill is above the business's approval threshold: two different approvers are needed.
    needs_second_approval: bool

    @property
    def ready_to_pay(self) -> bool:
        if self.approved_by is None:
            return False
        return not self.needs_second_approval or self.second_approved_by is not None


@dataclass(frozen=True)
class BillDue:
    """A bill in the "due soon" list of the digest."""

    bill_id: str
    doc_number: str | None
    vendor_name: str | None
    due_date: date
    #: Days from the business's today to the due date (negative: overdue by that many days).
    days_until_due: int
    total_amount: Decimal
    balance: Decimal
    currency: str | None
    approval: BillApproval
    #: The ledger state of a payment sent for this bill and not settled yet (None: none).
    payment_state: ActionState | None

    @property
    def payment_in_flight(self) -> bool:
        return self.payment_state is not None


@dataclass(frozen=True)
class PaymentResult:
    """What came of a payment request: the ledger's outcome and the bill's open balance now."""

    bill_id: str
    amount: Decimal
    outcome: ActionOutcome
    balance: Decimal

    @property
    def message(self) -> str:
        return self.outcome.message

    @property
    def in_flight(self) -> bool:
        """Sent or kept to send, not confirmed yet: the reconciler settles it."""
        return self.outcome.state in PAYMENT_OPEN_STATES


@dataclass(frozen=True)
class _PlannedPayment:
    intent: BillPaymentIntent
    bill_row_id: int
    audit_id: int


def _approval_of(bill: Bill, business: Business) -> BillApproval:
    return BillApproval(
        approved_by=bill.approved_by,
        approved_at=bill.approved_at,
        second_approved_by=bill.second_approved_by,
        second_approved_at=bill.second_approved_at,
        needs_second_approval=bill.total_amount > business.approval_threshold,
    )


def _bill_label(bill: Bill) -> str:
    label = f"Bill {bill.doc_number or bill.qbo_id}"
    return f"{label} from {bill.vendor_name}" if bill.vendor_name else label


def _money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


@dataclass(frozen=True)
class _Standing:
    """What a payment decision reads about a bill: QuickBooks' current copy when it answered,
    else the mirror's. Never written back to the mirror here: a concurrent click may already have
    lowered the mirror's balance, and an older read must not undo that (the mirror sync will
    bring QuickBooks' copy)."""

    total: Decimal
    balance: Decimal
    sync_token: str


def _standing(bill: Bill, fresh: Mapping[str, Any] | None) -> _Standing:
    if fresh is not None:
        total, balance = fresh.get("TotalAmt"), fresh.get("Balance")
        if isinstance(total, Decimal) and isinstance(balance, Decimal):
            return _Standing(total, balance, str(fresh.get("SyncToken", bill.sync_token)))
    return _Standing(bill.total_amount, bill.balance, bill.sync_token)


class BillService:
    """Bills of one business: what is due, who approved it, paying it once."""

    def __init__(
        self,
        uow_factory: UowFactory,
        smart_sync: SmartSyncService,
        business_id: str,
        clock: Clock,
    ) -> None:
        if smart_sync.business_id != business_id:
            raise ValueError(
                f"BillService for business {business_id} needs that business's SmartSyncService, "
                f"not business {smart_sync.business_id}'s"
            )
        self.uow_factory = uow_factory
        self.smart_sync = smart_sync
        self.business_id = business_id
        self.clock = clock

    # --- reading ----------------------------------------------------------------------------

    async def sync_bills_from_qbo(self) -> SyncReport:
        """Bring the mirror (bills, and the vendors and payments around them) up to date with
        QuickBooks; returns the mirror's `SyncReport`."""
        # One CDC call brings every changed entity type: syncing bills alone would save nothing.
        return await MirrorSync(self.uow_factory, self.smart_sync).sync()

    async def get_bills_due_soon(self, days: int = 7) -> list[BillDue]:
        """Open bills due within `days` of the business's today (overdue ones included), not
        snoozed, soonest due first, with their approval state and any payment in flight."""
        if days < 0:
            raise ValueError(f"days must be zero or more, got {days}")
        now = self.clock.now()
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            today = business_today(now, business.timezone)
            listed: list[tuple[BillDue, str | None]] = []
            for bill in await uow.bills.open_bills():
                if bill.due_date is None or (bill.due_date - today).days > days:
                    continue
                if bill.snoozed_until is not None and bill.snoozed_until > now:
                    continue
                listed.append(
                    (
                        BillDue(
                            bill_id=bill.qbo_id,
                            doc_number=bill.doc_number,
                            vendor_name=bill.vendor_name,
                            due_date=bill.due_date,
                            days_until_due=(bill.due_date - today).days,
                            total_amount=bill.total_amount,
                            balance=bill.balance,
                            currency=bill.currency,
                            approval=_approval_of(bill, business),
                            payment_state=None,
                        ),
                        bill.payment_action_key,
                    )
                )
        due: list[BillDue] = []
        for item, key in listed:
            in_flight = await self._open_payment(key)  # the ledger, after the unit of work
            due.append(item if in_flight is None else replace(item, payment_state=in_flight.state))
        return due

    async def approval(self, bill_id: str) -> BillApproval:
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            return _approval_of(await self._bill(uow, bill_id), business)

    # --- approving and snoozing ---------------------------------------------------------------

    async def approve(self, bill_id: str, approver: str) -> BillApproval:
        """Record `approver`'s approval. Above the business's threshold a bill needs a second,
        different approver; approving again what one already approved changes nothing."""
        now = self.clock.now()
        try:
            async with self.uow_factory(self.business_id) as uow:
                business = await self._business(uow)
                bill = await self._bill(uow, bill_id)
                self._require_approver(business, approver, "approve bills")
                if bill.balance <= 0:
                    raise ApprovalRefused(f"{_bill_label(bill)} is already paid in full.")
                needs_second = bill.total_amount > business.approval_threshold
                if bill.approved_by is None:
                    bill.approved_by, bill.approved_at = approver, now
                    what = "approved"
                elif bill.approved_by == approver:
                    if needs_second and bill.second_approved_by is None:
                        raise ApprovalRefused(
                            f"{_bill_label(bill)} is above the approval threshold of "
                            f"{_money(business.approval_threshold)}: {approver} has already "
                            "approved it, and a second, different approver must approve it too."
                        )
                    what = "already approved by this approver"
                elif needs_second and bill.second_approved_by is None:
                    bill.second_approved_by, bill.second_approved_at = approver, now
                    what = "second approval"
                else:
                    what = "already fully approved"
                uow.audit.add(
                    actor=approver,
                    action=audit.BILL_APPROVE,
                    target=audit.bill_target(bill.qbo_id),
                    amount=bill.balance,
                    outcome=audit.done(what),
                    requested_at=now,
                    completed_at=now,
                )
                state = _approval_of(bill, business)
                await uow.commit()
                return state
        except RunwayError as refusal:
            await self._audit_refusal(audit.BILL_APPROVE, bill_id, approver, now, refusal)
            raise

    async def snooze(self, bill_id: str, until: datetime, by: str) -> datetime:
        """Leave the bill out of "due soon" until the aware instant `until`."""
        if until.tzinfo is None or until.utcoffset() is None:
            raise ValueError("snooze needs a timezone-aware time, e.g. datetime(..., tzinfo=UTC)")
        now = self.clock.now()
        async with self.uow_factory(self.business_id) as uow:
            bill = await self._bill(uow, bill_id)
            bill.snoozed_until = until
            uow.audit.add(
                actor=by,
                action=audit.BILL_SNOOZE,
                target=audit.bill_target(bill.qbo_id),
                outcome=audit.done(f"snoozed until {until.isoformat(timespec='minutes')}"),
                requested_at=now,
                completed_at=now,
            )
            await uow.commit()
        return until

    # --- paying ----------------------------------------------------------------------------

    async def create_payment(
        self,
        bill_id: str,
        amount: Decimal,
        requested_by: str,
        bank_account_id: str | None = None,
    ) -> PaymentResult:
        """Pay `amount` of the bill from the business's bank account, exactly once.

        Refuses, with the reason, and before anything reaches QuickBooks: a non-approver, a bill
        already paid, a bill not approved (or lacking its second approval), a bill with a payment
        still in flight, more than the open balance. Otherwise the payment goes through
        `SmartSyncService.create_payment_immediate`: succeeded, the mirror's balance goes down and
        the payment is recorded; unknown or pending, the bill stays "payment in flight" until the
        reconciler settles it. A repeated click returns the first payment's outcome.
        """
        now = self.clock.now()
        try:
            plan = await self._plan_payment(bill_id, amount, requested_by, bank_account_id, now)
        except RunwayError as refusal:
            await self._audit_refusal(
                audit.BILL_PAY, bill_id, requested_by, now, refusal, amount=_audit_amount(amount)
            )
            raise
        try:
            outcome = await self.smart_sync.create_payment_immediate(plan.intent)
        except ConflictingAction as conflict:
            conflicting = PaymentRefused(
                f"A different payment with the same meaning is already recorded ({conflict}); "
                "ask for a fresh digest and try again."
            )
            await self._finish_payment(plan, None, conflicting)
            raise conflicting from conflict
        balance = await self._finish_payment(plan, outcome, None)
        return PaymentResult(bill_id, plan.intent.amount, outcome, balance)

    async def _plan_payment(
        self,
        bill_id: str,
        amount: Decimal,
        requested_by: str,
        bank_account_id: str | None,
        now: datetime,
    ) -> _PlannedPayment:
        if not isinstance(amount, Decimal) or isinstance(amount, bool):
            raise PaymentRefused(
                f"The amount must be an exact Decimal amount of money, got {amount!r}."
            )
        if not amount.is_finite() or amount <= 0 or amount != amount.quantize(CENT):
            raise PaymentRefused(
                f"The amount must be a positive number of whole cents, got {amount}."
            )
        # The ledger and QuickBooks are asked outside the unit of work: on SQLite an open unit of
        # work holds the database's write lock, which the ledger needs too.
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            self._require_approver(business, requested_by, "pay bills")
            seen_key = (await self._bill(uow, bill_id)).payment_action_key
        open_payment = await self._open_payment(seen_key)
        # QuickBooks' own copy: the mirror may be behind a payment recorded by hand, and the
        # bill's current SyncToken keys this payment.
        fresh = await self._fresh_bill(bill_id)
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            bill = await self._bill(uow, bill_id)
            standing = _standing(bill, fresh)
            label = _bill_label(bill)
            if standing.balance <= 0:
                raise PaymentRefused(f"{label} is already paid in full; nothing was sent.")
            if open_payment is not None:
                raise PaymentRefused(
                    f"A payment of {_money(open_payment.amount)} for {label} is already on its "
                    f"way ({open_payment.state.value}); Oodaloo is confirming it with QuickBooks. "
                    "Wait for its result before paying again."
                )
            approval = _approval_of(bill, business)
            if standing.total > business.approval_threshold:  # raised in QuickBooks since
                approval = replace(approval, needs_second_approval=True)
            if approval.approved_by is None:
                raise PaymentRefused(f"{label} has not been approved yet; approve it first.")
            if not approval.ready_to_pay:
                raise PaymentRefused(
                    f"{label} is above the approval threshold of "
                    f"{_money(business.approval_threshold)} and needs a second approval from "
                    f"someone other than {approval.approved_by}."
                )
            if amount > standing.balance:
                raise PaymentRefused(
                    f"{_money(amount)} is more than the {_money(standing.balance)} still open on "
                    f"{label}; pay at most {_money(standing.balance)}."
                )
            bank = bank_account_id or business.payment_bank_account_id
            if not bank:
                raise BusinessNotReady(
                    "No bank account is chosen to pay bills from; choose one in the settings."
                )
            if not bill.vendor_qbo_id:
                raise PaymentRefused(f"{label} has no vendor in QuickBooks to pay.")
            intent = BillPaymentIntent(
                business_id=self.business_id,
                realm_id=self.smart_sync.realm_id,
                bill_id=bill.qbo_id,
                bill_sync_token=standing.sync_token,
                vendor_id=bill.vendor_qbo_id,
                amount=amount,
                bank_account_id=bank,
                pay_date=business_today(now, business.timezone),
                requested_by=requested_by,
            )
            await uow.flush()
            # Claim the bill for this payment. A concurrent click for the same payment has the
            # same key and passes (the ledger makes it one payment); a different payment loses.
            claimed = await uow.session.execute(
                update(Bill)
                .where(
                    Bill.id == bill.id,
                    Bill.business_id == self.business_id,
                    or_(
                        Bill.payment_action_key.is_(None),
                        Bill.payment_action_key.in_([intent.key, seen_key or intent.key]),
                    ),
                )
                .values(payment_action_key=intent.key, payment_requested_at=now)
                .execution_options(synchronize_session=False)
            )
            if not getattr(claimed, "rowcount", 0):
                raise PaymentRefused(
                    f"Another payment for {label} was requested at the same moment; wait for its "
                    "result before paying again."
                )
            entry = uow.audit.add(
                actor=requested_by,
                action=audit.BILL_PAY,
                target=audit.bill_target(bill.qbo_id),
                amount=amount,
                action_key=intent.key,
                requested_at=now,
            )
            await uow.flush()
            planned = _PlannedPayment(intent, bill.id, entry.id)
            await uow.commit()
        return planned

    async def _finish_payment(
        self,
        plan: _PlannedPayment,
        outcome: ActionOutcome | None,
        refusal: RunwayError | None,
    ) -> Decimal:
        """Write the outcome to the mirror and the audit trail; returns the bill's open balance."""
        now = self.clock.now()
        key = plan.intent.key
        action = await self.smart_sync.infra.ledger.get(key) if outcome is not None else None
        async with self.uow_factory(self.business_id) as uow:
            bill = await uow.bills.get_row(plan.bill_row_id)
            if outcome is None:
                text = audit.refused(str(refusal))
            else:
                text = audit.action_outcome(outcome)
            await uow.audit.finish(plan.audit_id, outcome=text, completed_at=now)
            if bill is None:
                await uow.commit()
                return Decimal("0.00")
            settled_here = outcome is not None and outcome.succeeded and not outcome.deduplicated
            if settled_here and action is not None:
                await self._apply_payment(uow, bill, action, now)
            if (outcome is None or outcome.state is ActionState.FAILED) and (
                bill.payment_action_key == key
            ):
                bill.payment_action_key = None  # nothing is on its way any more
            balance = bill.balance
            await uow.commit()
        return balance

    async def _apply_payment(
        self, uow: RunwayUnitOfWork, bill: Bill, action: Action, now: datetime
    ) -> None:
        """Our payment landed in QuickBooks: lower the mirror's balance and mirror the payment
        (once: a payment the mirror already holds was counted when it arrived)."""
        result = action.result if isinstance(action.result, dict) else {}
        object_id = action.qbo_object_id or result.get("Id")
        if object_id is not None and await uow.bill_payments.get(str(object_id)) is not None:
            return
        bill.balance = max(bill.balance - action.amount, Decimal("0.00"))
        bill.status = DocumentStatus.of(bill.total_amount, bill.balance).value
        if object_id is None:
            return  # the next mirror sync brings the payment itself
        paid = result or action.payload
        bank = (paid.get("CheckPayment") or {}).get("BankAccountRef", {}).get("value")
        uow.bill_payments.add(
            BillPaymentRecord(
                qbo_id=str(object_id),
                sync_token=str(result.get("SyncToken", "0")),
                raw=paid,
                synced_at=now,
                txn_date=date.fromisoformat(str(paid["TxnDate"])) if paid.get("TxnDate") else None,
                vendor_qbo_id=bill.vendor_qbo_id,
                vendor_name=bill.vendor_name,
                pay_type=str(paid.get("PayType", "Check")),
                paid_from_account_qbo_id=bank,
                total_amount=action.amount,
                currency=bill.currency,
                private_note=paid.get("PrivateNote"),
                bill_qbo_ids=[bill.qbo_id],
            )
        )

    async def on_payment_resolved(self, resolution: Resolution) -> None:
        """The reconciler's `on_resolved` callback: a payment left unknown or pending has settled.

        Succeeded, the mirror's balance goes down and the payment is recorded; failed, the bill is
        free to pay again. Either way the audit trail says how it ended. Resolutions of other
        businesses, or of other operations, are not this service's and are ignored.
        """
        if (
            resolution.business_id != self.business_id
            or resolution.operation != BILL_PAYMENT_CREATE
            or not resolution.settled
        ):
            return
        action = await self.smart_sync.infra.ledger.get(resolution.key)
        now = self.clock.now()
        async with self.uow_factory(self.business_id) as uow:
            found = await uow.session.execute(
                select(Bill).where(
                    Bill.business_id == self.business_id,
                    Bill.payment_action_key == resolution.key,
                )
            )
            bill = found.scalars().first()
            if bill is None:
                return  # settled here already, or the bill is gone: the mirror sync has the rest
            if resolution.state is ActionState.SUCCEEDED and action is not None:
                await self._apply_payment(uow, bill, action, now)
            elif resolution.state is ActionState.FAILED:
                bill.payment_action_key = None
            uow.audit.add(
                actor="reconciler",
                action=audit.BILL_PAY,
                target=audit.bill_target(bill.qbo_id),
                amount=action.amount if action is not None else None,
                action_key=resolution.key,
                outcome=audit.action_outcome(resolution.outcome),
                requested_at=now,
                completed_at=now,
            )
            await uow.commit()

    # --- helpers -----------------------------------------------------------------------------

    async def _fresh_bill(self, bill_id: str) -> dict[str, Any] | None:
        try:
            found = await self.smart_sync.execute_qbo_call(
                "get", "Bill", bill_id, priority=Priority.USER_ACTION
            )
        except (QBOError, CircuitOpen, RateLimitTimeout) as exc:
            # Deciding from the mirror is still safe: QuickBooks refuses more than the balance.
            logger.info(
                "could not read bill %s from QuickBooks before paying; using the mirror: %s",
                bill_id,
                exc,
                extra={"business_id": self.business_id, "realm_id": self.smart_sync.realm_id},
            )
            return None
        return found if isinstance(found, dict) else None

    async def _open_payment(self, key: str | None) -> Action | None:
        """The ledger's action for `key` if it may still land in QuickBooks."""
        if key is None:
            return None
        action = await self.smart_sync.infra.ledger.get(key)
        if action is not None and action.state in PAYMENT_OPEN_STATES:
            return action
        return None

    async def _business(self, uow: RunwayUnitOfWork) -> Business:
        business = await uow.business.get()
        if business is None:
            raise NotFound("Business", self.business_id)
        return business

    @staticmethod
    async def _bill(uow: RunwayUnitOfWork, bill_id: str) -> Bill:
        bill = await uow.bills.get(str(bill_id))
        if bill is None:
            raise NotFound("Bill", str(bill_id))
        return bill

    @staticmethod
    def _require_approver(business: Business, person: str, what: str) -> None:
        if person not in (business.approvers or []):
            raise NotAllowed(
                f"Only {business.name}'s approvers may {what}; {person} is not one of them. "
                "An owner can add approvers in the settings."
            )

    async def _audit_refusal(
        self,
        action: str,
        bill_id: str,
        actor: str,
        requested_at: datetime,
        refusal: RunwayError,
        *,
        amount: Decimal | None = None,
    ) -> None:
        async with self.uow_factory(self.business_id) as uow:
            uow.audit.add(
                actor=actor,
                action=action,
                target=audit.bill_target(str(bill_id)),
                amount=amount,
                outcome=audit.refused(str(refusal)),
                requested_at=requested_at,
                completed_at=self.clock.now(),
            )
            await uow.commit()


def _audit_amount(amount: object) -> Decimal | None:
    if isinstance(amount, Decimal) and amount.is_finite():
        return amount.quantize(CENT)
    return None


__all__ = ["BillApproval", "BillDue", "BillService", "PaymentResult"]
