"""DriftRecorder: differences between a business's mirror and QuickBooks, kept as drift events.

`sync.drift` finds the differences (pure comparisons); this module gives each one a plain sentence
the owner reads in Slack ("Bill 1042 from O'Brien Equipment Repair: QuickBooks now says $412.00,
we had $389.64"), stores it as a `DriftEvent`, merges a repeat of the same difference into the open
event (count and last seen, not a second alert), and resolves an event by itself once a later
comparison of the same object no longer finds the difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from runway.errors import NotFound
from runway.formatting import DEFAULT_LOCALE, money
from runway.models import Bill, DriftEvent
from runway.uow import UowFactory
from sync import (
    BILL_PAYMENT_CREATE,
    ActionMissingInQBO,
    ActionState,
    AmountChanged,
    BalanceChanged,
    Clock,
    DeletedInQBO,
    Drift,
    DriftReport,
    LocalAction,
    LocalBill,
    PaidHereOpenInQBO,
    Priority,
    SmartSyncService,
    action_drift,
    bill_drift,
)

#: Ids per QuickBooks query (`Id IN (...)`): one page of answers, well inside the query length
#: QuickBooks accepts.
_IDS_PER_QUERY = 200
#: How far back the payments Oodaloo made are compared with QuickBooks on each sync.
PAYMENTS_CHECKED_FOR = timedelta(days=90)


@dataclass(frozen=True)
class DriftNotice:
    """A drift event as the digest and the drift alert show it."""

    id: int
    kind: str
    entity: str
    entity_id: str
    sentence: str
    first_seen: datetime
    last_seen: datetime
    count: int
    resolved_at: datetime | None


def _notice(event: DriftEvent) -> DriftNotice:
    return DriftNotice(
        event.id,
        event.kind,
        event.entity,
        event.entity_id,
        event.sentence,
        event.first_seen,
        event.last_seen,
        event.count,
        event.resolved_at,
    )


#: The currency of an amount QuickBooks sent without one (what these sentences always assumed).
HOME = "USD"


def _label(entity: str, entity_id: str, reference: str | None, name: str | None) -> str:
    label = f"{entity} {reference or entity_id}"
    if not name:
        return label
    party = {"Bill": "from", "Invoice": "to"}.get(entity, "for")
    return f"{label} {party} {name}"


def subject_of(drift: Drift) -> tuple[str, str, str]:
    """(kind, entity, entity id): what makes two sightings the same difference."""
    if isinstance(drift, ActionMissingInQBO):
        return drift.kind, drift.object_type, drift.action_key
    return drift.kind, drift.entity_type, drift.entity_id


def sentence_for(drift: Drift, locale: str = DEFAULT_LOCALE) -> str:
    """The difference in one plain sentence (names untouched: escaping is the presenter's job)."""
    if isinstance(drift, AmountChanged):
        label = _label(drift.entity_type, drift.entity_id, drift.reference, drift.name)
        currency = drift.currency or HOME
        return (
            f"{label}: QuickBooks now says {money(drift.qbo_amount, currency, locale=locale)}, "
            f"we had {money(drift.local_amount, currency, locale=locale)}"
        )
    if isinstance(drift, BalanceChanged):
        label = _label(drift.entity_type, drift.entity_id, drift.reference, drift.name)
        currency = drift.currency or HOME
        return (
            f"{label}: QuickBooks now shows {money(drift.qbo_balance, currency, locale=locale)} still "
            f"to pay, we had {money(drift.local_balance, currency, locale=locale)}"
        )
    if isinstance(drift, PaidHereOpenInQBO):
        label = _label(drift.entity_type, drift.entity_id, drift.reference, drift.name)
        currency = drift.currency or HOME
        return (
            f"{label}: paid through Oodaloo, but QuickBooks still shows "
            f"{money(drift.qbo_balance, currency, locale=locale)} to pay"
        )
    if isinstance(drift, DeletedInQBO):
        label = _label(drift.entity_type, drift.entity_id, drift.reference, drift.name)
        return f"{label} ({money(drift.local_amount, HOME, locale=locale)}) has been deleted in QuickBooks"
    made = f"{drift.object_type} {drift.object_id}" if drift.object_id else f"a {drift.object_type}"
    return (
        f"{drift.target_type} {drift.target_id}: Oodaloo made {made} of "
        f"{money(drift.local_amount, HOME, locale=locale)}, but QuickBooks no longer has it"
    )


def _quoted(qbo_id: str) -> str:
    escaped = qbo_id.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


class DriftRecorder:
    """Drift events of one business."""

    def __init__(
        self,
        uow_factory: UowFactory,
        business_id: str,
        clock: Clock,
        smart_sync: SmartSyncService | None = None,
    ) -> None:
        if smart_sync is not None and smart_sync.business_id != business_id:
            raise ValueError(
                f"DriftRecorder for business {business_id} needs that business's "
                f"SmartSyncService, not business {smart_sync.business_id}'s"
            )
        self.uow_factory = uow_factory
        self.business_id = business_id
        self.clock = clock
        self.smart_sync = smart_sync

    async def record(
        self, found: Sequence[Drift], *, compared: Iterable[tuple[str, str]] = ()
    ) -> list[DriftNotice]:
        """Store the differences of one comparison; returns the open events they are now.

        `compared` lists the (entity, id) pairs the comparison looked at: their open events whose
        difference was not found again are resolved (the difference went away, whoever fixed it).
        """
        now = self.clock.now()
        seen = {subject_of(drift) for drift in found}
        looked_at = set(compared) | {(entity, entity_id) for _, entity, entity_id in seen}
        async with self.uow_factory(self.business_id) as uow:
            business = await uow.business.get()
            locale = DEFAULT_LOCALE if business is None else business.locale
            events = [
                await uow.drift.record(
                    kind=kind,
                    entity=entity,
                    entity_id=entity_id,
                    sentence=sentence_for(drift, locale),
                    seen_at=now,
                )
                for drift in found
                for kind, entity, entity_id in [subject_of(drift)]
            ]
            for event in await uow.drift.open():
                subject = (event.kind, event.entity, event.entity_id)
                if (event.entity, event.entity_id) in looked_at and subject not in seen:
                    event.resolved_at = now
            await uow.flush()
            notices = [_notice(event) for event in events]
            await uow.commit()
        return notices

    async def on_drift(self, report: DriftReport) -> None:
        """The reconciler's `on_drift` callback: a difference found while settling an action."""
        if report.business_id != self.business_id:
            raise ValueError(
                f"drift of business {report.business_id} reached business {self.business_id}'s "
                "recorder; give each business's reconciler callback its own recorder"
            )
        await self.record([report.drift])

    async def check_bills(self) -> list[DriftNotice]:
        """Compare the mirror's open bills (and bills paid through Oodaloo) with QuickBooks and
        record what differs; returns every open drift event afterwards."""
        if self.smart_sync is None:
            raise ValueError(
                "checking bills against QuickBooks needs the business's SmartSyncService"
            )
        async with self.uow_factory(self.business_id) as uow:
            bills = {bill.qbo_id: bill for bill in await uow.bills.open_bills()}
            paid_here = await uow.session.execute(
                select(Bill).where(
                    Bill.business_id == self.business_id,
                    Bill.deleted_at.is_(None),
                    Bill.payment_action_key.is_not(None),
                    Bill.balance <= Decimal("0"),
                )
            )
            for bill in paid_here.scalars():
                bills[bill.qbo_id] = bill
            local = [
                LocalBill(
                    id=bill.qbo_id,
                    amount=bill.total_amount,
                    balance=bill.balance,
                    sync_token=bill.sync_token,
                    paid_locally=bill.balance <= 0 and bill.payment_action_key is not None,
                    vendor_name=bill.vendor_name,
                    doc_number=bill.doc_number,
                )
                for bill in bills.values()
            ]
        ids = [bill.id for bill in local]
        current = await self._current(self.smart_sync, "Bill", ids)
        await self.record(bill_drift(local, current), compared=[("Bill", qbo_id) for qbo_id in ids])
        return await self.open_events()

    async def check_payments(self) -> list[DriftNotice]:
        """Payments Oodaloo made in the last `PAYMENTS_CHECKED_FOR` that QuickBooks no longer has
        (deleted) or has with another amount (edited, or voided: QuickBooks keeps a voided payment
        at zero). Each difference is one event, so the channel is told once; a payment put back
        resolves it. Returns the events found."""
        if self.smart_sync is None:
            raise ValueError(
                "checking payments against QuickBooks needs the business's SmartSyncService"
            )
        since = self.clock.now() - PAYMENTS_CHECKED_FOR
        made = [
            action
            for action in await self.smart_sync.infra.ledger.list(
                ActionState.SUCCEEDED, self.smart_sync.realm_id, completed_since=since
            )
            if action.business_id == self.business_id and action.operation == BILL_PAYMENT_CREATE
        ]
        ids = sorted({action.qbo_object_id for action in made if action.qbo_object_id})
        current = await self._current(self.smart_sync, "BillPayment", ids)
        local = [
            LocalAction(action.key, action.target_id, action.amount, action.state.value, action.qbo_object_id)
            for action in made
        ]
        compared = [("BillPayment", action.key) for action in made] + [("BillPayment", i) for i in ids]
        return await self.record(action_drift(local, current), compared=compared)

    @staticmethod
    async def _current(smart_sync: SmartSyncService, entity: str, ids: Sequence[str]) -> list[dict[str, object]]:
        """QuickBooks' copies of these objects, `_IDS_PER_QUERY` to a query (background priority)."""
        current: list[dict[str, object]] = []
        for start in range(0, len(ids), _IDS_PER_QUERY):
            listed = ", ".join(_quoted(qbo_id) for qbo_id in ids[start : start + _IDS_PER_QUERY])
            current += await smart_sync.execute_qbo_call(
                "query", f"SELECT * FROM {entity} WHERE Id IN ({listed})", priority=Priority.BULK
            )
        return current

    async def open_events(self) -> list[DriftNotice]:
        async with self.uow_factory(self.business_id) as uow:
            return [_notice(event) for event in await uow.drift.open()]

    async def dismiss(self, event_id: int) -> DriftNotice:
        """The owner's "dismiss" button: the event is closed until the difference is seen anew."""
        async with self.uow_factory(self.business_id) as uow:
            event = await uow.drift.resolve(event_id, self.clock.now())
            if event is None:
                raise NotFound("Drift alert", str(event_id))
            notice = _notice(event)
            await uow.commit()
        return notice


__all__ = ["DriftNotice", "DriftRecorder", "sentence_for", "subject_of"]
