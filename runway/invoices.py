"""InvoiceService: what customers owe one business, how late they are, and polite reminders.

One service serves one business (an invoice of another business is "not found"). "Today" and
"days overdue" are counted in the business's own timezone: an invoice due on the 14th is one day
overdue from midnight of the 15th where the business is, not where the server is. Reminders go
through `SmartSyncService.send_invoice` (QuickBooks emails the invoice), at most once per invoice
per the business's reminder interval, and every attempt is written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import update

from runway import audit
from runway.books import business_today
from runway.errors import NotFound, ReminderRefused, RunwayError
from runway.forecast import week_number
from runway.formatting import format_moment
from runway.models import Business, Invoice, is_qbo_id
from runway.snapshot import load_books
from runway.uow import RunwayUnitOfWork, UowFactory
from sync import (
    ActionOutcome,
    ActionState,
    Clock,
    ConflictingAction,
    InvoiceSendIntent,
    SmartSyncService,
)


@dataclass(frozen=True)
class OverdueInvoice:
    invoice_id: str
    doc_number: str | None
    customer_name: str | None
    due_date: date
    #: Whole days past the due date in the business's timezone (1 on the day after it).
    days_overdue: int
    balance: Decimal
    currency: str | None
    last_reminder_at: datetime | None
    #: When the next reminder may go (None: now).
    next_reminder_at: datetime | None


@dataclass(frozen=True)
class ReminderResult:
    invoice_id: str
    outcome: ActionOutcome
    #: When the reminder after this one may go.
    next_reminder_at: datetime

    @property
    def message(self) -> str:
        return self.outcome.message


@dataclass(frozen=True)
class ExpectedCollection:
    invoice_id: str
    doc_number: str | None
    customer_name: str | None
    balance: Decimal
    due_date: date | None
    #: The due date shifted by the customer's typical days late.
    expected_on: date


@dataclass(frozen=True)
class _PlannedReminder:
    intent: InvoiceSendIntent
    invoice_row_id: int
    audit_id: int
    previous_reminder_at: datetime | None
    previous_reminder_by: str | None
    sent_at: datetime
    interval: timedelta


def _invoice_label(invoice: Invoice) -> str:
    label = f"Invoice {invoice.doc_number or invoice.qbo_id}"
    return f"{label} to {invoice.customer_name}" if invoice.customer_name else label


def _next_reminder(invoice: Invoice, interval: timedelta) -> datetime | None:
    return None if invoice.last_reminder_at is None else invoice.last_reminder_at + interval


class InvoiceService:
    """Invoices of one business: overdue ones, reminders, and what should come in this week."""

    def __init__(
        self,
        uow_factory: UowFactory,
        smart_sync: SmartSyncService,
        business_id: str,
        clock: Clock,
    ) -> None:
        if smart_sync.business_id != business_id:
            raise ValueError(
                f"InvoiceService for business {business_id} needs that business's "
                f"SmartSyncService, not business {smart_sync.business_id}'s"
            )
        self.uow_factory = uow_factory
        self.smart_sync = smart_sync
        self.business_id = business_id
        self.clock = clock

    async def overdue_invoices(self) -> list[OverdueInvoice]:
        """Open invoices past their due date, most overdue first."""
        now = self.clock.now()
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            today = business_today(now, business.timezone)
            interval = timedelta(days=business.reminder_interval_days)
            overdue = [
                OverdueInvoice(
                    invoice_id=invoice.qbo_id,
                    doc_number=invoice.doc_number,
                    customer_name=invoice.customer_name,
                    due_date=invoice.due_date,
                    days_overdue=(today - invoice.due_date).days,
                    balance=invoice.balance,
                    currency=invoice.currency,
                    last_reminder_at=invoice.last_reminder_at,
                    next_reminder_at=_next_reminder(invoice, interval),
                )
                for invoice in await uow.invoices.open_invoices()
                if invoice.due_date is not None
                and invoice.due_date < today
                and (invoice.snoozed_until is None or invoice.snoozed_until <= now)
            ]
        overdue.sort(key=lambda item: (-item.days_overdue, item.invoice_id))
        return overdue

    async def collections_expected_this_week(self) -> list[ExpectedCollection]:
        """Open invoices whose expected pay date (due date shifted by the customer's typical days
        late) falls in the seven days from today. As in the 13-week view, an expected date
        already past counts as this week: the money is due any day."""
        now = self.clock.now()
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            today = business_today(now, business.timezone)
            # Each open invoice is looked at here: every one is read as a row.
            books = await load_books(uow, self.business_id, today, rows=None)
        expected: list[ExpectedCollection] = []
        for item in books.open_invoices:
            if item.balance <= 0:
                continue
            base = item.due_date or item.txn_date or today
            history = books.pay_history_for(item.customer_id)
            on = base + timedelta(days=history.typical_days_late if history else 0)
            if week_number(today, on) != 1:
                continue
            expected.append(
                ExpectedCollection(
                    item.id, item.doc_number, item.customer_name, item.balance, item.due_date, on
                )
            )
        expected.sort(key=lambda collection: (collection.expected_on, collection.invoice_id))
        return expected

    async def send_reminder(
        self, invoice_id: str, requested_by: str, to: str | None = None
    ) -> ReminderResult:
        """Have QuickBooks email the invoice as a reminder (to `to`, else its billing email).

        At most one reminder per invoice per the business's reminder interval: a second one
        within it is refused with the time the next one may go.
        """
        now = self.clock.now()
        try:
            plan = await self._plan_reminder(invoice_id, requested_by, to, now)
        except RunwayError as refusal:
            await self._audit_refusal(invoice_id, requested_by, now, refusal)
            raise
        try:
            outcome = await self.smart_sync.send_invoice(plan.intent)
        except ConflictingAction as conflict:
            conflicting = ReminderRefused(
                f"A different reminder for this invoice is already recorded ({conflict})."
            )
            await self._finish(plan, None, str(conflicting))
            raise conflicting from conflict
        await self._finish(plan, outcome, None)
        return ReminderResult(plan.intent.invoice_id, outcome, plan.sent_at + plan.interval)

    async def _plan_reminder(
        self, invoice_id: str, requested_by: str, to: str | None, now: datetime
    ) -> _PlannedReminder:
        async with self.uow_factory(self.business_id) as uow:
            business = await self._business(uow)
            invoice = await uow.invoices.get(str(invoice_id)) if is_qbo_id(invoice_id) else None
            if invoice is None:
                raise NotFound("Invoice", str(invoice_id))
            label = _invoice_label(invoice)
            if invoice.balance <= 0:
                raise ReminderRefused(f"{label} is paid in full; no reminder is needed.")
            interval = timedelta(days=business.reminder_interval_days)
            next_at = _next_reminder(invoice, interval)
            if next_at is not None and now < next_at:
                last = invoice.last_reminder_at
                assert last is not None
                raise ReminderRefused(
                    f"A reminder for {label} was sent on {format_moment(last, business.timezone, business.locale)}; "
                    f"the next one can go on {format_moment(next_at, business.timezone, business.locale)} "
                    f"(one every {business.reminder_interval_days} days).",
                    next_allowed_at=next_at,
                )
            if to is None and not invoice.bill_email:
                raise ReminderRefused(
                    f"{label} has no billing email in QuickBooks; give an address to send it to."
                )
            try:
                intent = InvoiceSendIntent(
                    business_id=self.business_id,
                    realm_id=self.smart_sync.realm_id,
                    invoice_id=invoice.qbo_id,
                    invoice_sync_token=invoice.sync_token,
                    balance=invoice.balance,
                    requested_by=requested_by,
                    send_to=to,
                )
            except ValueError as bad:
                raise ReminderRefused(f"The reminder cannot be sent: {bad}.") from bad
            previous_at, previous_by = invoice.last_reminder_at, invoice.last_reminder_by
            # Take the interval's slot before anything is sent: of two clicks at once, one wins.
            claimed = await uow.session.execute(
                update(Invoice)
                .where(
                    Invoice.id == invoice.id,
                    Invoice.business_id == self.business_id,
                    Invoice.last_reminder_at.is_(None)
                    if previous_at is None
                    else Invoice.last_reminder_at == previous_at,
                )
                .values(last_reminder_at=now, last_reminder_by=requested_by)
                .execution_options(synchronize_session=False)
            )
            if not getattr(claimed, "rowcount", 0):
                raise ReminderRefused(
                    f"A reminder for {label} was requested at the same moment; only one is sent.",
                    next_allowed_at=now + interval,
                )
            entry = uow.audit.add(
                actor=requested_by,
                action=audit.INVOICE_REMIND,
                target=audit.invoice_target(invoice.qbo_id),
                amount=invoice.balance,
                action_key=intent.key,
                requested_at=now,
            )
            await uow.flush()
            planned = _PlannedReminder(
                intent, invoice.id, entry.id, previous_at, previous_by, now, interval
            )
            await uow.commit()
        return planned

    async def _finish(
        self, plan: _PlannedReminder, outcome: ActionOutcome | None, refusal: str | None
    ) -> None:
        now = self.clock.now()
        result: Any = None
        if outcome is not None and outcome.succeeded:
            action = await self.smart_sync.infra.ledger.get(plan.intent.key)
            result = action.result if action is not None else None
        async with self.uow_factory(self.business_id) as uow:
            text = (
                audit.refused(refusal or "") if outcome is None else audit.action_outcome(outcome)
            )
            await uow.audit.finish(plan.audit_id, outcome=text, completed_at=now)
            invoice = await uow.invoices.get_row(plan.invoice_row_id)
            if invoice is not None:
                if outcome is None or outcome.state is ActionState.FAILED:
                    # Nothing was sent: give the interval's slot back.
                    if invoice.last_reminder_at == plan.sent_at:
                        invoice.last_reminder_at = plan.previous_reminder_at
                        invoice.last_reminder_by = plan.previous_reminder_by
                elif not outcome.deduplicated:
                    invoice.reminders_sent += 1
                if isinstance(result, dict) and result.get("SyncToken") is not None:
                    # QuickBooks bumped the invoice's version when it emailed it.
                    invoice.sync_token = str(result["SyncToken"])
                    invoice.email_status = result.get("EmailStatus", invoice.email_status)
                    billed = result.get("BillEmail")
                    if isinstance(billed, dict) and isinstance(billed.get("Address"), str):
                        invoice.bill_email = billed["Address"]  # QuickBooks keeps the sendTo
                    invoice.raw = result
                    invoice.synced_at = now
            await uow.commit()

    async def _business(self, uow: RunwayUnitOfWork) -> Business:
        business = await uow.business.get()
        if business is None:
            raise NotFound("Business", self.business_id)
        return business

    async def _audit_refusal(
        self, invoice_id: str, actor: str, requested_at: datetime, refusal: RunwayError
    ) -> None:
        async with self.uow_factory(self.business_id) as uow:
            uow.audit.add(
                actor=actor,
                action=audit.INVOICE_REMIND,
                target=audit.invoice_target(str(invoice_id)),
                outcome=audit.refused(str(refusal)),
                requested_at=requested_at,
                completed_at=self.clock.now(),
            )
            await uow.commit()


__all__ = ["ExpectedCollection", "InvoiceService", "OverdueInvoice", "ReminderResult"]
