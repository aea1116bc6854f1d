"""BillService: the bills a business has to pay, their approvals, and paying them exactly once.

One service serves one business: every lookup goes through that business's unit of work, so the id
of another business's bill is simply "not found". Bills are named by their QuickBooks id (what the
digest's buttons carry). Payments go through `SmartSyncService.create_payment_immediate`, whose
ledger makes a repeated click one payment; this service adds the business rules in front of it
(approvers as people, the second approval above the threshold, the amount the person saw, one
payment in flight per bill), keeps the bill's lifecycle (`runway.lifecycle`) on the bill itself,
and writes every attempt, refused ones included, to the audit trail.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select, update

from runway import audit
from runway.books import business_today
from runway.businesses import BankAccount, bill_payment_account
from runway.cash_flow import home_amount
from runway.errors import (
    AlreadyApproved,
    ApprovalRefused,
    NotAllowed,
    NotFound,
    PaymentRefused,
    RunwayError,
)
from runway.formatting import DEFAULT_LOCALE, format_day, money
from runway.lifecycle import (
    BillStanding,
    BillState,
    PaymentState,
    standing_of,
)
from runway.mirror import MirrorSync, SyncReport
from runway.models import Account, Bill, Business, DocumentStatus, is_qbo_id
from runway.people import same_person
from runway.uow import RunwayUnitOfWork, UowFactory
from sync import (
    BILL_PAYMENT_CREATE,
    Action,
    ActionOutcome,
    ActionState,
    BillPaymentIntent,
    Clock,
    ConflictingAction,
    NotDecided,
    PersonDecision,
    Priority,
    QBOError,
    QuickBooksUnavailable,
    Resolution,
    SmartSyncService,
    decide,
    exact_cents,
)

logger = logging.getLogger(__name__)


#: Ledger states in which a payment may still land in QuickBooks: no second one may start.
PAYMENT_OPEN_STATES = frozenset({ActionState.PENDING, ActionState.IN_FLIGHT, ActionState.UNKNOWN})


@dataclass(frozen=True)
class PaymentResult:
    """What came of a payment request: the ledger's outcome and the bill's open balance now."""

    bill_id: str
    amount: Decimal
    outcome: ActionOutcome
    balance: Decimal
    #: The bill as it stands after this request.
    standing: BillStanding
    #: A bill in a foreign currency: QuickBooks' rate the payment was sent with (home units per
    #: unit of the bill's currency); None for a bill in the home currency.
    exchange_rate: Decimal | None = None
    #: The business's home currency, the one `home_amount` is in.
    home_currency: str = "USD"
    #: How the business writes money (`Business.locale`), for the sentence that tells of it.
    locale: str = DEFAULT_LOCALE

    @property
    def home_amount(self) -> Decimal | None:
        """The payment in the home currency, where the bill is in another one."""
        return None if self.exchange_rate is None else home_amount(self.amount, self.exchange_rate)

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
    home_currency: str
    locale: str


def _bill_label(bill: Bill) -> str:
    label = f"Bill {bill.doc_number or bill.qbo_id}"
    return f"{label} from {bill.vendor_name}" if bill.vendor_name else label


def _not_payable(label: str, standing: BillStanding, business: Business) -> str:
    """Why a bill cannot be paid now, and what would make it payable."""
    currency = standing.currency or business.home_currency
    if standing.lapsed and not standing.approvals:
        return (
            f"{label} was approved for {money(standing.lapsed[0].amount or Decimal(0), currency, locale=business.locale)}, but "
            f"QuickBooks now has {money(standing.balance, currency, locale=business.locale)} open; it needs approving again."
        )
    if not standing.approvals:
        return f"{label} has not been approved yet; approve it first."
    return (
        f"{label} is above the approval threshold of {money(business.approval_threshold, business.home_currency, locale=business.locale)} and "
        f"needs a second approval from someone other than {standing.approvals[0].by}."
    )


@dataclass(frozen=True)
class _Standing:
    """What a payment decision reads about a bill: QuickBooks' current copy when it answered,
    else the mirror's. Never written back to the mirror here: a concurrent click may already have
    lowered the mirror's balance, and an older read must not undo that (the mirror sync will
    bring QuickBooks' copy)."""

    total: Decimal
    balance: Decimal
    sync_token: str


def _currency_of(fresh: Mapping[str, Any] | None) -> str | None:
    """The currency of QuickBooks' copy of a transaction (its CurrencyRef), if it names one."""
    ref = fresh.get("CurrencyRef") if fresh is not None else None
    value = ref.get("value") if isinstance(ref, Mapping) else None
    return str(value) if value else None


async def payment_bank_accounts(uow: RunwayUnitOfWork, home_currency: str) -> list[BankAccount]:
    """The business's bank accounts as a payment chooses among them: each with its balance in
    the home currency at QuickBooks' latest rate the mirror holds (none known: left unvalued)."""
    rates = {currency: row.rate for currency, row in (await uow.exchange_rates.all()).items()}
    accounts = []
    for row in await uow.accounts.bank_accounts():
        currency = row.currency or home_currency
        balance = row.current_balance or Decimal("0.00")
        rate = Decimal(1) if currency == home_currency else rates.get(currency)
        accounts.append(
            BankAccount(
                account_id=row.qbo_id,
                name=row.name,
                currency=currency,
                balance=balance,
                home_balance=None if rate is None else home_amount(balance, rate),
            )
        )
    return accounts


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

    async def standing(self, bill_id: str) -> BillStanding:
        """Where the bill stands now (paid bills included)."""
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            return standing_of(
                await self._bill(uow, bill_id),
                business.approval_threshold,
                people=await uow.people.directory(),
            )

    async def standings(self, bill_ids: list[str]) -> dict[str, BillStanding]:
        """The standing of each of these bills that exists (paid ones included)."""
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            rows = await uow.bills.by_qbo_ids(bill_ids)
            people = await uow.people.directory()
            return {
                row.qbo_id: standing_of(row, business.approval_threshold, people=people)
                for row in rows
            }

    async def remember_person(
        self, slack_user_id: str, email: str | None, name: str | None
    ) -> None:
        """Record the email address of a Slack user (from their Slack profile): an approval from
        either is then one person's approval."""
        async with self.uow_factory(self.business_id) as uow:
            await uow.people.remember(
                slack_user_id=slack_user_id, email=email, name=name, now=self.clock.now()
            )
            await uow.commit()

    # --- approving and snoozing ---------------------------------------------------------------

    async def approve(
        self, bill_id: str, approver: str, seen_amount: Decimal | None = None
    ) -> BillStanding:
        """Record `approver`'s approval of the bill's open balance (`seen_amount`, when given,
        must be that balance: an approval is bound to the amount the person saw).

        Above the business's threshold a bill needs a second, different person; approving again
        what one already approved changes nothing and says so.
        """
        now = self.clock.now()
        try:
            async with self.uow_factory(self.business_id) as uow:
                business = await self._business(uow)
                bill = await self._bill(uow, bill_id)
                who = await uow.people.identities(approver)
                self._require_approver(business, who, approver, "approve bills")
                label = _bill_label(bill)
                people = await uow.people.directory()
                before = standing_of(bill, business.approval_threshold, people=people)
                if before.state is BillState.PAID:
                    raise ApprovalRefused(f"{label} is already paid in full.")
                if before.in_flight:
                    raise ApprovalRefused(f"{label} is already being paid; nothing to approve.")
                if seen_amount is not None and seen_amount != bill.balance:
                    raise ApprovalRefused(
                        f"{label} now has {money(bill.balance, bill.currency or business.home_currency, locale=business.locale)} open in QuickBooks, not the "
                        f"{money(seen_amount, bill.currency or business.home_currency, locale=business.locale)} you saw; nothing was approved. Look at the new "
                        "amount (`/runway bills`) and approve that."
                    )
                if before.approved_by_person(who):
                    if before.approvals_missing:
                        raise AlreadyApproved(
                            f"You have already approved {label}. It is above the approval "
                            f"threshold of {money(business.approval_threshold, business.home_currency, locale=business.locale)}, so a second, "
                            "different person must approve it too."
                        )
                    raise AlreadyApproved(f"You have already approved {label}; nothing changed.")
                if not before.approvals_missing:
                    raise AlreadyApproved(f"{label} is already fully approved; nothing changed.")
                # The approvals that still count stay; a lapsed one (given for a smaller balance)
                # makes room for this one.
                first = before.approvals[0] if before.approvals else None
                if first is None:
                    bill.approved_by, bill.approved_at = approver, now
                    bill.approved_amount = bill.balance
                    bill.second_approved_by = bill.second_approved_at = None
                    bill.second_approved_amount = None
                    what = "approved"
                else:
                    bill.approved_by, bill.approved_at = first.by, first.at
                    bill.approved_amount = first.amount
                    bill.second_approved_by, bill.second_approved_at = approver, now
                    bill.second_approved_amount = bill.balance
                    what = "second approval"
                uow.audit.add(
                    actor=approver,
                    action=audit.BILL_APPROVE,
                    target=audit.bill_target(bill.qbo_id),
                    amount=bill.balance,
                    outcome=audit.done(what),
                    requested_at=now,
                    completed_at=now,
                )
                after = standing_of(bill, business.approval_threshold, people=people)
                await uow.commit()
                return after
        except RunwayError as refusal:
            await self._audit_refusal(audit.BILL_APPROVE, bill_id, approver, now, refusal)
            raise

    async def snooze(self, bill_id: str, until: datetime, by: str) -> datetime:
        """Leave the bill out of "due soon" until the aware instant `until`."""
        if until.tzinfo is None or until.utcoffset() is None:
            raise ValueError("snooze needs a timezone-aware time, e.g. datetime(..., tzinfo=UTC)")
        now = self.clock.now()
        try:
            async with self.uow_factory(self.business_id) as uow:
                business = await self._business(uow)
                bill = await self._bill(uow, bill_id)
                who = await uow.people.identities(by)
                self._require_approver(business, who, by, "snooze bills")
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
        except RunwayError as refusal:
            await self._audit_refusal(audit.BILL_SNOOZE, bill_id, by, now, refusal)
            raise
        return until

    # --- paying ----------------------------------------------------------------------------

    async def create_payment(
        self,
        bill_id: str,
        amount: Decimal,
        requested_by: str,
        bank_account_id: str | None = None,
        *,
        on_paying: Callable[[BillStanding], Awaitable[None]] | None = None,
    ) -> PaymentResult:
        """Pay the bill's open balance from the business's bank account, exactly once. `amount` is
        what the person saw (the Pay button's or the email link's): it must be the open balance
        QuickBooks has now, higher or lower, or nothing is paid and the refusal names the new one.

        Refuses, with the reason, and before anything reaches QuickBooks: a non-approver, a bill
        already paid, a bill whose approvals do not cover the amount (or lack a second, different
        person above the threshold), a bill with a payment still in flight, a pay-from account
        QuickBooks would refuse for the bill's currency (`businesses.bill_payment_account`), a bill
        in a foreign currency whose rate QuickBooks does not give. A foreign bill is paid in its
        own currency at QuickBooks' rate for the pay date, read then. Otherwise the payment goes through
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
        if on_paying is not None:
            # The bill is "paying" now, for every surface; a failure to show it changes nothing.
            try:
                await on_paying(await self.standing(bill_id))
            except Exception:
                logger.exception("could not show that bill %s is being paid", bill_id)
        try:
            outcome = await self.smart_sync.create_payment_immediate(plan.intent)
        except ConflictingAction as conflict:
            conflicting = PaymentRefused(
                f"A different payment with the same meaning is already recorded ({conflict}); "
                "ask for a fresh digest and try again."
            )
            await self._finish_payment(plan, None, conflicting)
            raise conflicting from conflict
        except Exception as failure:
            # Whatever went wrong (a token that cannot be read, a database error), the bill must
            # not stay "paying" with nobody told: it is left to the reconciler if the payment was
            # recorded to be sent, and free to pay again if it never was.
            await self._after_failure(plan, failure)
            raise
        balance = await self._finish_payment(plan, outcome, None)
        return PaymentResult(
            bill_id,
            plan.intent.amount,
            outcome,
            balance,
            await self.standing(bill_id),
            plan.intent.exchange_rate,
            plan.home_currency,
            plan.locale,
        )

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
        try:
            cents = exact_cents(amount)
        except ValueError:
            cents = None
        if cents is None or cents != amount or amount <= 0:
            raise PaymentRefused(
                f"The amount must be a positive number of whole cents, got {amount}."
            )
        # The ledger and QuickBooks are asked outside the unit of work: on SQLite an open unit of
        # work holds the database's write lock, which the ledger needs too.
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            who = await uow.people.identities(requested_by)
            self._require_approver(business, who, requested_by, "pay bills")
            seen = await self._bill(uow, bill_id)
            seen_key = seen.payment_action_key
            home, pay_date = business.home_currency, business_today(now, business.timezone)
            # Which account pays, before anything is asked of QuickBooks: a bill QuickBooks
            # would refuse to pay from it is refused here, in words (PayFromRefused).
            pay_from = bill_payment_account(
                business,
                seen.currency,
                await payment_bank_accounts(uow, home),
                chosen_id=bank_account_id,
            )
        open_payment = await self._open_payment(seen_key)
        # QuickBooks' own copy: the mirror may be behind a payment recorded by hand, and the
        # bill's current SyncToken keys this payment.
        fresh = await self._fresh_bill(bill_id)
        currency = _currency_of(fresh) or seen.currency or home
        rate = None if currency == home else await self._exchange_rate(currency, pay_date, seen)
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            bill = await self._bill(uow, bill_id)
            current = _standing(bill, fresh)
            label = _bill_label(bill)
            if open_payment is not None:
                raise PaymentRefused(
                    f"A payment of {money(open_payment.amount, bill.currency or business.home_currency, locale=business.locale)} for {label} is already on its "
                    f"way ({open_payment.state.value}); Oodaloo is confirming it with QuickBooks. "
                    "Wait for its result before paying again."
                )
            if current.balance <= 0:
                raise PaymentRefused(f"{label} is already paid in full; nothing was sent.")
            if amount != current.balance:
                raise PaymentRefused(
                    f"{label} now has {money(current.balance, bill.currency or business.home_currency, locale=business.locale)} open in QuickBooks, not the "
                    f"{money(amount, bill.currency or business.home_currency, locale=business.locale)} you saw (it changed in QuickBooks); nothing was paid. "
                    f"Look at the new amount (`/runway bills`) and pay that."
                )
            # The rules read QuickBooks' balance, through the same function as the digest.
            now_standing = standing_of(
                bill,
                business.approval_threshold,
                balance=current.balance,
                people=await uow.people.directory(),
            )
            if now_standing.in_flight:
                raise PaymentRefused(
                    f"{label} is already being paid; Oodaloo is confirming it with QuickBooks. "
                    "Wait for its result before paying again."
                )
            if not now_standing.can_pay:
                raise PaymentRefused(_not_payable(label, now_standing, business))
            if currency != (seen.currency or home):
                # QuickBooks' copy names another currency than the mirror had: its rule again.
                pay_from = bill_payment_account(
                    business,
                    currency,
                    await payment_bank_accounts(uow, home),
                    chosen_id=bank_account_id,
                )
            bank = pay_from.account_id
            account: Account | None = await uow.accounts.get(bank)
            if not bill.vendor_qbo_id:
                raise PaymentRefused(f"{label} has no vendor in QuickBooks to pay.")
            intent = BillPaymentIntent(
                business_id=self.business_id,
                realm_id=self.smart_sync.realm_id,
                bill_id=bill.qbo_id,
                bill_sync_token=current.sync_token,
                vendor_id=bill.vendor_qbo_id,
                amount=amount,
                bank_account_id=bank,
                pay_date=pay_date,
                requested_by=requested_by,
                currency=None if rate is None else currency,
                exchange_rate=rate,
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
                .values(
                    payment_action_key=intent.key,
                    payment_requested_at=now,
                    payment_state=PaymentState.PAYING.value,
                    payment_amount=amount,
                    payment_by=requested_by,
                    payment_at=now,
                    payment_account_name=account.name if account is not None else None,
                    payment_note=None,
                    payment_exchange_rate=rate,
                )
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
            planned = _PlannedPayment(intent, bill.id, entry.id, home, business.locale)
            await uow.commit()
        return planned

    async def _after_failure(self, plan: _PlannedPayment, failure: Exception) -> None:
        action = await self.smart_sync.infra.ledger.get(plan.intent.key)
        async with self.uow_factory(self.business_id) as uow:
            bill = await uow.bills.get_row(plan.bill_row_id)
            if bill is not None and bill.payment_action_key == plan.intent.key:
                if action is None:
                    bill.payment_action_key = None
                    bill.payment_state = None
                    bill.payment_exchange_rate = None
                else:
                    if action.state is ActionState.SUCCEEDED:
                        await self._apply_payment(uow, bill, action, self.clock.now())
                    _record_outcome(bill, action.state, str(failure))
            await uow.audit.finish(
                plan.audit_id,
                outcome=audit.refused(f"not sent: {failure}")
                if action is None
                else f"{action.state.value}: {failure}",
                completed_at=self.clock.now(),
            )
            await uow.commit()

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
            if bill.payment_action_key == key:
                if outcome is None:
                    # Refused before it reached QuickBooks: the bill is as it was.
                    bill.payment_action_key = None
                    bill.payment_state = None
                    bill.payment_exchange_rate = None
                else:
                    _record_outcome(bill, outcome.state, outcome.message)
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
        paid = result or action.payload
        bank = (paid.get("CheckPayment") or {}).get("BankAccountRef", {}).get("value")
        # A sync (a webhook's, say) may read the payment from QuickBooks meanwhile: whichever
        # mirrors it first counts it, so the insert decides.
        if object_id is not None and not await uow.bill_payments.insert_new(
            {
                "qbo_id": str(object_id),
                "sync_token": str(result.get("SyncToken", "0")),
                "raw": paid,
                "synced_at": now,
                "txn_date": date.fromisoformat(str(paid["TxnDate"]))
                if paid.get("TxnDate")
                else None,
                "vendor_qbo_id": bill.vendor_qbo_id,
                "vendor_name": bill.vendor_name,
                "pay_type": str(paid.get("PayType", "Check")),
                "paid_from_account_qbo_id": bank,
                "total_amount": action.amount,
                "currency": bill.currency,
                "exchange_rate": _payment_rate(paid),
                "private_note": paid.get("PrivateNote"),
                "bill_qbo_ids": [bill.qbo_id],
            }
        ):
            return
        bill.balance = max(bill.balance - action.amount, Decimal("0.00"))
        bill.status = DocumentStatus.of(bill.total_amount, bill.balance).value
        # The money left the bank account: the next sync reads the same balance from QuickBooks,
        # so cash, burn and runway move now, once, as they will stay. (Without the payment's id,
        # the next mirror sync brings the payment itself.)
        account = await uow.accounts.get(str(bank)) if bank else None
        if account is not None and account.current_balance is not None:
            account.current_balance -= _leaves_account(action, account)

    async def resolve_payment(
        self, bill_id: str, decision: PersonDecision, by: str
    ) -> BillStanding:
        """An approver's decision on a payment that needs a person (`sync.decisions`): it is paid
        in QuickBooks (matched to the payment there), send it again, or cancel it. Recorded in the
        ledger and the audit trail; returns where the bill stands after it. PaymentRefused, with
        what to do, when QuickBooks does not bear the decision out or nothing needs deciding."""
        now = self.clock.now()
        try:
            async with self.uow_factory(self.business_id) as uow:
                business = await self._business(uow)
                bill = await self._bill(uow, bill_id)
                who = await uow.people.identities(by)
                self._require_approver(business, who, by, "decide about payments")
                key = bill.payment_action_key
                if bill.payment_state != PaymentState.NEEDS_PERSON.value or key is None:
                    raise PaymentRefused(
                        "This payment does not need a decision any more: the bill's card shows "
                        "where it stands now."
                    )
            try:
                outcome = await decide(self.smart_sync, key, decision, by=by)
            except NotDecided as exc:
                raise PaymentRefused(str(exc)) from exc
        except RunwayError as refusal:
            await self._audit_refusal(audit.BILL_PAYMENT_DECISION, bill_id, by, now, refusal)
            raise
        action = await self.smart_sync.infra.ledger.get(key)
        async with self.uow_factory(self.business_id) as uow:
            bill = await self._bill(uow, bill_id)
            if bill.payment_action_key == key:
                if outcome.state is ActionState.SUCCEEDED and action is not None:
                    await self._apply_payment(uow, bill, action, now)
                _record_outcome(
                    bill, outcome.state, action.last_error if action else outcome.message
                )
            uow.audit.add(
                actor=by,
                action=audit.BILL_PAYMENT_DECISION,
                target=audit.bill_target(bill.qbo_id),
                amount=action.amount if action is not None else None,
                action_key=key,
                outcome=audit.done(f"{decision.value}: {audit.action_outcome(outcome)}"),
                requested_at=now,
                completed_at=self.clock.now(),
            )
            await uow.commit()
        return await self.standing(bill_id)

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
            _record_outcome(bill, resolution.state, resolution.reason)
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
        except (QBOError, QuickBooksUnavailable) as exc:
            # Deciding from the mirror is still safe: QuickBooks refuses more than the balance.
            logger.info(
                "could not read bill %s from QuickBooks before paying; using the mirror: %s",
                bill_id,
                exc,
                extra={"business_id": self.business_id, "realm_id": self.smart_sync.realm_id},
            )
            return None
        return found if isinstance(found, dict) else None

    async def _exchange_rate(self, currency: str, pay_date: date, bill: Bill) -> Decimal:
        """QuickBooks' rate for the bill's currency on the pay date, read now: the payment books
        at it, and the person is told the home amount it makes. No rate, no payment."""
        label = _bill_label(bill)
        try:
            return await self.smart_sync.exchange_rate(currency, pay_date)
        except QuickBooksUnavailable as exc:
            raise PaymentRefused(
                f"{label} is in {currency}, and QuickBooks could not be asked for its {currency} "
                f"rate just now ({exc}); nothing was paid. Try again in a few minutes."
            ) from exc
        except QBOError as exc:
            raise PaymentRefused(
                f"{label} is in {currency}, and QuickBooks gave no {currency} exchange rate for "
                f"{format_day(pay_date)} ({exc}); nothing was paid. Check the currency's rate in "
                "QuickBooks (Settings, Currencies), then pay again."
            ) from exc

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
        if not is_qbo_id(bill_id):  # never a query with NUL bytes or a mile-long id
            raise NotFound("Bill", repr(bill_id)[:40])
        bill = await uow.bills.get(str(bill_id))
        if bill is None:
            raise NotFound("Bill", str(bill_id))
        return bill

    @staticmethod
    def _require_approver(
        business: Business, identities: frozenset[str], person: str, what: str
    ) -> None:
        if not any(same_person(identities, approver) for approver in business.approvers or []):
            raise NotAllowed(
                f"Only approvers can {what} for {business.name}; {person} is not one of them, "
                "so nothing was done. An approver can add you with `/runway settings`."
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


def _payment_rate(paid: Mapping[str, Any]) -> Decimal | None:
    """The ExchangeRate a payment was booked at (QuickBooks' answer, else what was sent)."""
    rate = paid.get("ExchangeRate")
    return rate if isinstance(rate, Decimal) else None


def _leaves_account(action: Action, account: Account) -> Decimal:
    """What a payment takes out of the account it was paid from, in the account's currency: the
    amount itself from an account in the payment's currency; from a home-currency account paying
    a foreign bill, its home amount at the payment's ExchangeRate (as QuickBooks books it)."""
    paid = action.payload
    currency = (paid.get("CurrencyRef") or {}).get("value")
    rate = paid.get("ExchangeRate")
    if currency is None or account.currency == currency or not isinstance(rate, Decimal):
        return action.amount
    return home_amount(action.amount, rate)


def _record_outcome(bill: Bill, state: ActionState, reason: str | None) -> None:
    """Keep the ledger's word on the bill: its lifecycle follows the payment's."""
    if state is ActionState.SUCCEEDED:
        bill.payment_state = PaymentState.PAID.value
    elif state is ActionState.FAILED:
        bill.payment_state = PaymentState.FAILED.value
        bill.payment_note = reason
        bill.payment_action_key = None  # nothing is on its way any more
        bill.payment_exchange_rate = None  # nothing was paid at it
    elif state is ActionState.NEEDS_HUMAN:
        bill.payment_state = PaymentState.NEEDS_PERSON.value
        bill.payment_note = reason
    else:  # pending, in flight, unknown: the reconciler settles it
        bill.payment_state = PaymentState.UNKNOWN.value


def _audit_amount(amount: object) -> Decimal | None:
    try:
        return exact_cents(amount) if isinstance(amount, Decimal) else None
    except ValueError:
        return None  # not an amount of money at all: the refusal says what it was


__all__ = ["BillService", "PaymentResult", "payment_bank_accounts"]
