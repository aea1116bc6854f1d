"""Unit of work and repositories for one business: the only way domain code reads its tables.

`UnitOfWorkFactory(sessions)(business_id)` opens a `RunwayUnitOfWork` bound to that business. Every
repository on it is built with the business id and adds it to every statement, so a row of
another business cannot be read, updated or deleted through it: an id that belongs to someone else
is simply "not found". Changes are written only on `commit()`; leaving the `async with` block
without committing rolls them back.

    async with uow_factory("biz-larkspur") as uow:
        bill = await uow.bills.get("1042")
        ...
        await uow.commit()
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar

from sqlalchemy import ColumnElement, Text, delete, func, insert, select, type_coerce, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import defer

from runway.cash_flow import UNDEPOSITED_FUNDS, CashLine
from runway.cash_lines import FLOWS, cash_lines
from runway.models import (
    Account,
    AuditEntry,
    Bill,
    BillPaymentRecord,
    Business,
    CashLineRecord,
    CompanyInfoRecord,
    Customer,
    CustomerPaymentRecord,
    Deposit,
    DriftEvent,
    ExchangeRateRecord,
    Invoice,
    MirroredRow,
    PersonRecord,
    PreferencesRecord,
    Purchase,
    QBOConnection,
    SyncWatermark,
    TransactionRecord,
    Vendor,
)
from runway.people import canonical, is_email, is_identifier

M = TypeVar("M", bound=MirroredRow)

#: QuickBooks transaction types mirrored in the one `qbo_transactions` table (read through their
#: cash lines).
TRANSACTION_ENTITIES: tuple[str, ...] = (
    "SalesReceipt",
    "RefundReceipt",
    "Transfer",
    "JournalEntry",
    "VendorCredit",
    "CreditMemo",
    # A credit-card payment's JSON object name (queried as CreditCardPayment: `runway.mirror`).
    "CreditCardPaymentTxn",
)

#: Most ids put in one `IN (...)` list (SQLite allows 32,766 bound parameters per statement).
_IN_CHUNK = 900


class StoredVersion(NamedTuple):
    row_id: int
    raw_json: str
    deleted: bool


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Scoped:
    """A repository of one business: holds the session and the business id it filters by."""

    def __init__(self, session: AsyncSession, business_id: str) -> None:
        if not business_id:
            raise ValueError("a repository needs the id of the business it serves")
        self.session = session
        self.business_id = business_id

    def _own(self, row: Any) -> None:
        owner = getattr(row, "business_id", None)
        if owner is None:
            row.business_id = self.business_id
        elif owner != self.business_id:
            raise ValueError(
                f"refusing to store a row of business {owner!r} through business "
                f"{self.business_id!r}'s unit of work"
            )


# --- the business and its connection ---------------------------------------------------------


class BusinessRepository(_Scoped):
    async def get(self) -> Business | None:
        """This unit of work's business (None if it does not exist)."""
        return await self.session.get(Business, self.business_id)


class ConnectionRepository(_Scoped):
    async def get(self) -> QBOConnection | None:
        result = await self.session.execute(
            select(QBOConnection).where(QBOConnection.business_id == self.business_id)
        )
        return result.scalar_one_or_none()


# --- the mirror --------------------------------------------------------------------------------


def _object_of(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """The QuickBooks object a mirrored row's values hold, with its id (a payment Oodaloo made may
    be stored as the request it sent, which has none)."""
    return {**values["raw"], "Id": values["qbo_id"]}


class MirrorRepository(_Scoped, Generic[M]):
    """One mirrored QuickBooks entity type of one business, looked up by QuickBooks id.

    A transaction whose lines can move money (`runway.cash_lines.FLOWS`) has its cash lines
    written, rewritten and removed with its row, whoever writes it."""

    #: Ids the sync looks up at once: a whole page of QuickBooks objects in one query.
    VERSIONS_AT_ONCE = 1000

    def __init__(
        self, session: AsyncSession, business_id: str, model: type[M], entity: str | None = None
    ) -> None:
        super().__init__(session, business_id)
        self.model = model
        #: The QuickBooks entity type served (the table's, unless the table holds several).
        self.entity = entity or model.qbo_entity
        #: Column values every row of this repository has (its entity type, in a shared table).
        self._fixed: dict[str, Any] = {"entity_type": self.entity} if entity else {}
        self._lines = CashLineRepository(session, business_id) if self.entity in FLOWS else None

    def _mine(self, *, include_deleted: bool = False) -> list[ColumnElement[bool]]:
        model: Any = self.model
        conditions: list[ColumnElement[bool]] = [model.business_id == self.business_id]
        conditions.extend(getattr(model, name) == value for name, value in self._fixed.items())
        if not include_deleted:
            conditions.append(model.deleted_at.is_(None))
        return conditions

    async def get(self, qbo_id: str, *, include_deleted: bool = False) -> M | None:
        """The row for QuickBooks id `qbo_id` (None when absent, deleted, or another business's)."""
        model: Any = self.model
        result = await self.session.execute(
            select(self.model).where(
                *self._mine(include_deleted=include_deleted), model.qbo_id == str(qbo_id)
            )
        )
        return result.scalar_one_or_none()

    async def get_row(self, row_id: int) -> M | None:
        """The row with local primary key `row_id`, if it is this business's and not deleted."""
        model: Any = self.model
        result = await self.session.execute(
            select(self.model).where(*self._mine(), model.id == row_id)
        )
        return result.scalar_one_or_none()

    async def all(self, *, include_deleted: bool = False) -> list[M]:
        model: Any = self.model
        result = await self.session.execute(
            select(self.model)
            .where(*self._mine(include_deleted=include_deleted))
            .order_by(model.id)
        )
        return list(result.scalars())

    async def count(self, *, include_deleted: bool = False) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(self.model)
            .where(*self._mine(include_deleted=include_deleted))
        )
        return int(result.scalar_one())

    async def by_qbo_ids(self, qbo_ids: Iterable[str]) -> list[M]:
        """The live rows among `qbo_ids` (absent, deleted and other businesses' ids are skipped)."""
        model: Any = self.model
        rows: list[M] = []
        for chunk in _chunks(sorted({str(qbo_id) for qbo_id in qbo_ids})):
            result = await self.session.execute(
                select(self.model).where(*self._mine(), model.qbo_id.in_(chunk))
            )
            rows.extend(result.scalars())
        return rows

    async def fields_by_qbo_ids(
        self, qbo_ids: Iterable[str], *fields: str
    ) -> list[tuple[Any, ...]]:
        """Only `fields` of the live rows among `qbo_ids`.

        For reads over many rows that need a few columns: a full row also decodes its raw QuickBooks
        JSON, which is most of the cost at tens of thousands of rows."""
        model: Any = self.model
        columns = [getattr(model, name) for name in fields]
        rows: list[tuple[Any, ...]] = []
        for chunk in _chunks(sorted({str(qbo_id) for qbo_id in qbo_ids})):
            result = await self.session.execute(
                select(*columns).where(*self._mine(), model.qbo_id.in_(chunk))
            )
            rows.extend(tuple(row) for row in result)
        return rows

    async def fields_dated_since(self, first: date, *fields: str) -> list[tuple[Any, ...]]:
        """Only `fields` of the live transactions dated on or after `first` (see fields_by_qbo_ids)."""
        model: Any = self.model
        result = await self.session.execute(
            select(*(getattr(model, name) for name in fields)).where(
                *self._mine(), model.txn_date >= first
            )
        )
        return [tuple(row) for row in result]

    async def dated_between(self, first: date, last: date | None = None) -> list[M]:
        """Live transactions whose TxnDate is on or after `first` (and on or before `last`)."""
        model: Any = self.model
        if not hasattr(model, "txn_date"):
            raise TypeError(f"{model.qbo_entity} rows have no transaction date")
        conditions = [*self._mine(), model.txn_date >= first]
        if last is not None:
            conditions.append(model.txn_date <= last)
        result = await self.session.execute(
            select(self.model).where(*conditions).order_by(model.txn_date, model.id)
        )
        return list(result.scalars())

    def add(self, row: M) -> None:
        self._own(row)
        self.session.add(row)

    # Bulk operations the mirror sync uses: thousands of rows per page, without loading objects.

    async def stored_versions(self, qbo_ids: Sequence[str]) -> dict[str, StoredVersion]:
        """What is mirrored of each of `qbo_ids` (deleted ones too): the row id, the object's JSON
        text exactly as stored, and whether it is marked deleted."""
        model: Any = self.model
        found: dict[str, StoredVersion] = {}
        for chunk in _chunks(list(qbo_ids), self.VERSIONS_AT_ONCE):
            result = await self.session.execute(
                select(
                    model.qbo_id,
                    model.id,
                    type_coerce(model.raw, Text),  # the text itself: compared, not parsed
                    model.deleted_at.is_not(None),
                ).where(*self._mine(include_deleted=True), model.qbo_id.in_(chunk))
            )
            for qbo_id, row_id, raw_text, deleted in result:
                found[qbo_id] = StoredVersion(row_id, raw_text, bool(deleted))
        return found

    async def insert_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Insert new rows. A row of the same QuickBooks object that another writer mirrored
        meanwhile is left as it is: Oodaloo's own payment is mirrored from QuickBooks' answer as
        soon as it is confirmed, outside the sync's lock, between the sync's look-up and insert."""
        if values:
            rows = [{**value, **self._fixed, "business_id": self.business_id} for value in values]
            await self.session.execute(self._insert_new(), rows)
            if self._lines is not None:
                await self.write_cash_lines([_object_of(value) for value in values])

    async def insert_new(self, values: Mapping[str, Any]) -> bool:
        """Insert one row unless its QuickBooks object is mirrored already (by a sync that read it
        meanwhile); whether this call inserted it. A sync inserting it at the same moment is
        waited for, so False means the row is there."""
        result = await self.session.execute(
            self._insert_new(), {**values, **self._fixed, "business_id": self.business_id}
        )
        inserted = bool(result.rowcount)  # type: ignore[attr-defined]
        if inserted:
            await self.write_cash_lines([_object_of(values)])
        return inserted

    def _insert_new(self) -> Any:
        """A Core insert into the table, not the mapped class: many rows at once without the
        ORM's bookkeeping per row, and its result counts the rows it inserted."""
        from sqlalchemy.dialects import postgresql, sqlite

        into: Any = self.model.__table__  # type: ignore[attr-defined]
        dialect = self.session.bind.dialect.name if self.session.bind is not None else ""
        keys = ["business_id", *self._fixed, "qbo_id"]
        if dialect == "postgresql":
            return postgresql.insert(into).on_conflict_do_nothing(index_elements=keys)
        if dialect == "sqlite":
            return sqlite.insert(into).on_conflict_do_nothing(index_elements=keys)
        return insert(into)

    async def update_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Update rows by their `id` (taken from `versions`, so they are this business's)."""
        from sqlalchemy import bindparam

        if values:
            # Core, by primary key: the ORM's bulk update would bookkeep every row.
            table: Any = self.model.__table__  # type: ignore[attr-defined]
            statement = update(table).where(
                table.c.business_id == self.business_id, table.c.id == bindparam("row_id")
            )
            rows = [
                {"row_id": value["id"], **{k: v for k, v in value.items() if k != "id"}}
                for value in values
            ]
            await self.session.execute(statement, rows)
            if self._lines is not None:
                await self.write_cash_lines([_object_of(value) for value in values])

    async def live_qbo_ids(self) -> set[str]:
        model: Any = self.model
        result = await self.session.execute(select(model.qbo_id).where(*self._mine()))
        return set(result.scalars())

    async def mark_deleted(self, qbo_ids: Iterable[str], when: datetime) -> int:
        """Mark the listed objects deleted in QuickBooks; returns how many were live before."""
        model: Any = self.model
        marked = 0
        for chunk in _chunks(sorted(set(qbo_ids))):
            result = await self.session.execute(
                update(self.model)
                .where(*self._mine(), model.qbo_id.in_(chunk))
                .values(deleted_at=when, synced_at=when)
                .execution_options(synchronize_session=False)
            )
            marked += int(getattr(result, "rowcount", 0) or 0)
        if self._lines is not None:
            await self._lines.remove(self.entity, qbo_ids)
        return marked

    async def write_cash_lines(
        self, objects: Sequence[Mapping[str, Any]], *, only_missing: bool = False
    ) -> None:
        """(Re)write the cash lines of QuickBooks objects `objects` of this entity type (none for
        an entity whose lines never move money). `only_missing`: only for objects without any
        line yet (a full sync filling in lines an older mirror never had)."""
        if self._lines is None or not objects:
            return
        if only_missing:
            have = await self._lines.txn_ids_with_lines(
                self.entity, [str(obj["Id"]) for obj in objects]
            )
            objects = [obj for obj in objects if str(obj["Id"]) not in have]
        await self._lines.replace(self.entity, objects)


class CashLineRepository(_Scoped):
    """The cash lines of the business's mirrored transactions (`runway.cash_flow.CashLine`)."""

    async def undeposited_funds_id(self) -> str | None:
        """The company's Undeposited Funds account, where QuickBooks leaves the account out."""
        result = await self.session.execute(
            select(Account.qbo_id)
            .where(
                Account.business_id == self.business_id,
                Account.deleted_at.is_(None),
                Account.account_sub_type == UNDEPOSITED_FUNDS,
            )
            .order_by(Account.id)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def replace(self, entity: str, objects: Sequence[Mapping[str, Any]]) -> None:
        """The lines of `objects` (QuickBooks objects of type `entity`) replace their old ones."""
        latest = {str(obj["Id"]): obj for obj in objects}  # an object listed twice: the last
        if not latest:
            return
        undeposited = await self.undeposited_funds_id()
        await self.remove(entity, list(latest))
        rows = [
            {
                "business_id": self.business_id,
                "txn_type": line.txn_type,
                "txn_id": line.txn_id,
                "line": line.line,
                "txn_date": line.txn_date,
                "account_qbo_id": line.account_id,
                "counter_account_qbo_id": line.counter_account_id,
                "amount": line.amount,
                "home_amount": line.home_amount,
                "currency": line.currency,
                "exchange_rate": line.exchange_rate,
            }
            for obj in latest.values()
            for line in cash_lines(entity, obj, undeposited)
        ]
        if rows:
            await self.session.execute(self._insert(), rows)

    def _insert(self) -> Any:
        """An insert that leaves a line another writer put there meanwhile (the same object's:
        Oodaloo's own payment mirrored by a sync and by the click that made it)."""
        from sqlalchemy.dialects import postgresql, sqlite

        dialect = self.session.bind.dialect.name if self.session.bind is not None else ""
        keys = ["business_id", "txn_type", "txn_id", "line"]
        if dialect == "postgresql":
            return postgresql.insert(CashLineRecord).on_conflict_do_nothing(index_elements=keys)
        if dialect == "sqlite":
            return sqlite.insert(CashLineRecord).on_conflict_do_nothing(index_elements=keys)
        return insert(CashLineRecord)

    async def remove(self, entity: str, txn_ids: Iterable[str]) -> None:
        for chunk in _chunks(sorted({str(txn_id) for txn_id in txn_ids})):
            await self.session.execute(
                delete(CashLineRecord)
                .where(
                    CashLineRecord.business_id == self.business_id,
                    CashLineRecord.txn_type == entity,
                    CashLineRecord.txn_id.in_(chunk),
                )
                .execution_options(synchronize_session=False)
            )

    async def txn_ids_with_lines(self, entity: str, txn_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(txn_ids)):
            result = await self.session.execute(
                select(CashLineRecord.txn_id)
                .where(
                    CashLineRecord.business_id == self.business_id,
                    CashLineRecord.txn_type == entity,
                    CashLineRecord.txn_id.in_(chunk),
                )
                .distinct()
            )
            found.update(result.scalars())
        return found

    async def dated_between(self, first: date, last: date | None = None) -> list[CashLine]:
        """Lines dated on or after `first` (and on or before `last`), oldest first."""
        line = CashLineRecord
        conditions = [line.business_id == self.business_id, line.txn_date >= first]
        if last is not None:
            conditions.append(line.txn_date <= last)
        # Columns, not rows: a snapshot reads tens of thousands of lines.
        result = await self.session.execute(
            select(
                line.txn_type,
                line.txn_id,
                line.line,
                line.txn_date,
                line.account_qbo_id,
                line.counter_account_qbo_id,
                line.amount,
                line.home_amount,
                line.currency,
                line.exchange_rate,
            )
            .where(*conditions)
            .order_by(line.txn_date, line.id)
        )
        return [
            CashLine(
                txn_type=txn_type,
                txn_id=txn_id,
                line=number,
                txn_date=txn_date,
                account_id=account,
                counter_account_id=counter,
                amount=amount,
                home_amount=home,
                currency=currency,
                exchange_rate=rate,
            )
            for txn_type, txn_id, number, txn_date, account, counter, amount, home, currency, rate in result
        ]


class ExchangeRateRepository(_Scoped):
    """QuickBooks' latest rate of each foreign currency the business holds, as last read."""

    async def all(self) -> dict[str, ExchangeRateRecord]:
        result = await self.session.execute(
            select(ExchangeRateRecord).where(ExchangeRateRecord.business_id == self.business_id)
        )
        return {row.currency: row for row in result.scalars()}

    async def save(
        self, currency: str, rate: Decimal, as_of_date: date, fetched_at: datetime
    ) -> None:
        row = await self.session.get(ExchangeRateRecord, (self.business_id, currency))
        if row is None:
            row = ExchangeRateRecord(business_id=self.business_id, currency=currency)
            self.session.add(row)
        row.rate = rate
        row.as_of_date = as_of_date
        row.fetched_at = fetched_at


class AccountRepository(MirrorRepository[Account]):
    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id, Account)

    async def undeposited_accounts(self) -> list[Account]:
        """Undeposited Funds: money received, not yet banked (shown apart from the cash)."""
        result = await self.session.execute(
            select(Account)
            .where(*self._mine(), Account.account_sub_type == UNDEPOSITED_FUNDS)
            .order_by(Account.id)
        )
        return list(result.scalars())

    async def cash_accounts(self) -> list[Account]:
        """The bank accounts and Undeposited Funds."""
        return [*await self.bank_accounts(), *await self.undeposited_accounts()]

    async def bank_accounts(self) -> list[Account]:
        """Active bank accounts: the cash on hand."""
        result = await self.session.execute(
            select(Account)
            .where(*self._mine(), Account.account_type == "Bank", Account.active.is_(True))
            .order_by(Account.id)
        )
        return list(result.scalars())


class BillRepository(MirrorRepository[Bill]):
    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id, Bill)

    async def open_bills(self) -> list[Bill]:
        """Bills with money still owed, soonest due first."""
        result = await self.session.execute(
            select(Bill)
            # QuickBooks' whole JSON stays in the database: lists of open bills read only columns.
            .options(defer(Bill.raw))
            .where(*self._mine(), Bill.balance > Decimal("0"))
            .order_by(Bill.due_date.is_(None), Bill.due_date, Bill.id)
        )
        return list(result.scalars())


class InvoiceRepository(MirrorRepository[Invoice]):
    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id, Invoice)

    async def open_invoices(self) -> list[Invoice]:
        """Invoices with money still owed, oldest due first."""
        result = await self.session.execute(
            select(Invoice)
            .options(defer(Invoice.raw))
            .where(*self._mine(), Invoice.balance > Decimal("0"))
            .order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
        )
        return list(result.scalars())


# --- what Oodaloo remembers ----------------------------------------------------------------


class WatermarkRepository(_Scoped):
    async def get(self, entity_type: str) -> SyncWatermark | None:
        return await self.session.get(SyncWatermark, (self.business_id, entity_type))

    async def all(self) -> dict[str, SyncWatermark]:
        result = await self.session.execute(
            select(SyncWatermark).where(SyncWatermark.business_id == self.business_id)
        )
        return {mark.entity_type: mark for mark in result.scalars()}

    async def save(
        self,
        entity_type: str,
        *,
        as_of: datetime,
        last_cdc_at: datetime | None = None,
        last_full_sync_at: datetime | None = None,
    ) -> SyncWatermark:
        """Record that `entity_type` is mirrored as of `as_of` (fields left None keep their value)."""
        mark = await self.get(entity_type)
        if mark is None:
            mark = SyncWatermark(business_id=self.business_id, entity_type=entity_type)
            self.session.add(mark)
        mark.as_of = as_of
        if last_cdc_at is not None:
            mark.last_cdc_at = last_cdc_at
        if last_full_sync_at is not None:
            mark.last_full_sync_at = last_full_sync_at
        return mark


class DriftRepository(_Scoped):
    async def record(
        self, *, kind: str, entity: str, entity_id: str, sentence: str, seen_at: datetime
    ) -> DriftEvent:
        """Note a difference; seen again while unresolved, it is counted instead of repeated."""
        result = await self.session.execute(
            select(DriftEvent).where(
                DriftEvent.business_id == self.business_id,
                DriftEvent.kind == kind,
                DriftEvent.entity == entity,
                DriftEvent.entity_id == entity_id,
                DriftEvent.resolved_at.is_(None),
            )
        )
        event = result.scalars().first()
        if event is None:
            event = DriftEvent(
                business_id=self.business_id,
                kind=kind,
                entity=entity,
                entity_id=entity_id,
                sentence=sentence,
                first_seen=seen_at,
                last_seen=seen_at,
                count=1,
            )
            self.session.add(event)
        else:
            event.sentence = sentence
            event.last_seen = seen_at
            event.count += 1
        return event

    async def open(self) -> list[DriftEvent]:
        result = await self.session.execute(
            select(DriftEvent)
            .where(DriftEvent.business_id == self.business_id, DriftEvent.resolved_at.is_(None))
            .order_by(DriftEvent.first_seen, DriftEvent.id)
        )
        return list(result.scalars())

    async def get(self, event_id: int) -> DriftEvent | None:
        result = await self.session.execute(
            select(DriftEvent).where(
                DriftEvent.business_id == self.business_id, DriftEvent.id == event_id
            )
        )
        return result.scalar_one_or_none()

    async def resolve(self, event_id: int, resolved_at: datetime) -> DriftEvent | None:
        event = await self.get(event_id)
        if event is not None and event.resolved_at is None:
            event.resolved_at = resolved_at
        return event


class AuditRepository(_Scoped):
    def add(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        requested_at: datetime,
        amount: Decimal | None = None,
        action_key: str | None = None,
        outcome: str | None = None,
        completed_at: datetime | None = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            business_id=self.business_id,
            actor=actor,
            action=action,
            target=target,
            amount=amount,
            action_key=action_key,
            outcome=outcome,
            requested_at=requested_at,
            completed_at=completed_at,
        )
        self.session.add(entry)
        return entry

    async def get(self, entry_id: int) -> AuditEntry | None:
        result = await self.session.execute(
            select(AuditEntry).where(
                AuditEntry.business_id == self.business_id, AuditEntry.id == entry_id
            )
        )
        return result.scalar_one_or_none()

    async def by_action_key(self, action_key: str) -> list[AuditEntry]:
        result = await self.session.execute(
            select(AuditEntry)
            .where(AuditEntry.business_id == self.business_id, AuditEntry.action_key == action_key)
            .order_by(AuditEntry.requested_at, AuditEntry.id)
        )
        return list(result.scalars())

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        result = await self.session.execute(
            select(AuditEntry)
            .where(AuditEntry.business_id == self.business_id)
            .order_by(AuditEntry.requested_at.desc(), AuditEntry.id.desc())
            .limit(limit)
        )
        return list(result.scalars())

    async def finish(
        self, entry_id: int, *, outcome: str, completed_at: datetime
    ) -> AuditEntry | None:
        entry = await self.get(entry_id)
        if entry is not None:
            entry.outcome = outcome
            entry.completed_at = completed_at
        return entry


class PeopleRepository(_Scoped):
    """Who is who: a Slack user id and an email address that belong to one person."""

    async def remember(
        self, *, slack_user_id: str, email: str | None, name: str | None, now: datetime
    ) -> None:
        """Record that `slack_user_id` has `email` (from their Slack profile)."""
        address = canonical(email) if email else None
        found = await self.session.execute(
            select(PersonRecord).where(
                PersonRecord.business_id == self.business_id,
                PersonRecord.slack_user_id == slack_user_id,
            )
        )
        person = found.scalar_one_or_none()
        if address is not None:
            # The address moves to this Slack user (an address names one person).
            other = await self.session.execute(
                select(PersonRecord).where(
                    PersonRecord.business_id == self.business_id,
                    PersonRecord.email == address,
                )
            )
            holder = other.scalar_one_or_none()
            if holder is not None and holder is not person:
                holder.email = None
                await self.session.flush()
        if person is None:
            fresh = PersonRecord(
                slack_user_id=slack_user_id, email=address, name=name, updated_at=now
            )
            self._own(fresh)
            try:
                async with self.session.begin_nested():
                    self.session.add(fresh)
                return
            except IntegrityError:
                # Their first two clicks arrived at once and the other recorded them a moment ago.
                found = await self.session.execute(
                    select(PersonRecord).where(
                        PersonRecord.business_id == self.business_id,
                        PersonRecord.slack_user_id == slack_user_id,
                    )
                )
                person = found.scalar_one()
        person.email = address or person.email
        person.name = name or person.name
        person.updated_at = now

    async def directory(self) -> dict[str, frozenset[str]]:
        """Every known identifier of the business's people, each mapped to all of that person's."""
        found = await self.session.execute(
            select(PersonRecord.slack_user_id, PersonRecord.email).where(
                PersonRecord.business_id == self.business_id
            )
        )
        people: dict[str, frozenset[str]] = {}
        for slack_user_id, email in found:
            names = frozenset(name for name in (slack_user_id, email) if name)
            for name in names:
                people[name] = names
        return people

    async def identities(self, actor: str) -> frozenset[str]:
        """Every identifier of the person `actor` names (always `actor` itself)."""
        key = canonical(actor)
        if not is_identifier(key):
            return frozenset({actor})  # not a person Oodaloo could know: nothing to look up
        column = PersonRecord.email if is_email(key) else PersonRecord.slack_user_id
        found = await self.session.execute(
            select(PersonRecord.slack_user_id, PersonRecord.email).where(
                PersonRecord.business_id == self.business_id, column == key
            )
        )
        names = {key}
        for slack_user_id, email in found:
            names.update(name for name in (slack_user_id, email) if name)
        return frozenset(names)


# --- the unit of work ------------------------------------------------------------------------


class RunwayUnitOfWork:
    """One transaction's worth of work for one business. Use it as an async context manager."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], business_id: str) -> None:
        if not business_id:
            raise ValueError("a unit of work needs the id of the business it serves")
        self.business_id = business_id
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("the unit of work is not open: use `async with uow:` first")
        return self._session

    async def __aenter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("this unit of work is already open; make a new one per transaction")
        session = self._sessions()
        self._session = session
        business_id = self.business_id
        self.business = BusinessRepository(session, business_id)
        self.connection = ConnectionRepository(session, business_id)
        self.company_info = MirrorRepository(session, business_id, CompanyInfoRecord)
        self.preferences = MirrorRepository(session, business_id, PreferencesRecord)
        self.accounts = AccountRepository(session, business_id)
        self.vendors = MirrorRepository(session, business_id, Vendor)
        self.customers = MirrorRepository(session, business_id, Customer)
        self.bills = BillRepository(session, business_id)
        self.invoices = InvoiceRepository(session, business_id)
        self.bill_payments = MirrorRepository(session, business_id, BillPaymentRecord)
        self.customer_payments = MirrorRepository(session, business_id, CustomerPaymentRecord)
        self.purchases = MirrorRepository(session, business_id, Purchase)
        self.deposits = MirrorRepository(session, business_id, Deposit)
        #: The transaction types mirrored in one table, by entity type.
        self.transactions = {
            entity: MirrorRepository(session, business_id, TransactionRecord, entity)
            for entity in TRANSACTION_ENTITIES
        }
        self.cash_lines = CashLineRepository(session, business_id)
        self.exchange_rates = ExchangeRateRepository(session, business_id)
        self.watermarks = WatermarkRepository(session, business_id)
        self.drift = DriftRepository(session, business_id)
        self.audit = AuditRepository(session, business_id)
        self.people = PeopleRepository(session, business_id)
        repositories: tuple[MirrorRepository[Any], ...] = (
            self.company_info,
            self.preferences,
            self.accounts,
            self.vendors,
            self.customers,
            self.bills,
            self.invoices,
            self.bill_payments,
            self.customer_payments,
            self.purchases,
            self.deposits,
            *self.transactions.values(),
        )
        self._mirrors = {repository.entity: repository for repository in repositories}
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        self._session = None
        if session is None:
            return
        # Closing ends the transaction, so nothing uncommitted survives the block; objects read
        # inside stay readable afterwards (detached with their loaded values, not expired).
        await session.close()

    def mirror(self, entity: str) -> MirrorRepository[Any]:
        """The repository of a mirrored QuickBooks entity type ("Bill", "Payment", ...)."""
        try:
            return self._mirrors[entity]
        except KeyError:
            raise ValueError(
                f"{entity!r} is not a mirrored QuickBooks entity; one of {', '.join(self._mirrors)}"
            ) from None

    async def flush(self) -> None:
        await self.session.flush()

    async def commit(self) -> None:
        await self.session.commit()

    async def rollback(self) -> None:
        await self.session.rollback()


class UnitOfWorkFactory:
    """Makes a unit of work per business and transaction: `uow_factory(business_id)`."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    def __call__(self, business_id: str) -> RunwayUnitOfWork:
        return RunwayUnitOfWork(self.sessions, business_id)


UowFactory = Callable[[str], RunwayUnitOfWork]

__all__ = [
    "TRANSACTION_ENTITIES",
    "AccountRepository",
    "AuditRepository",
    "BillRepository",
    "BusinessRepository",
    "CashLineRepository",
    "ConnectionRepository",
    "DriftRepository",
    "ExchangeRateRepository",
    "InvoiceRepository",
    "MirrorRepository",
    "RunwayUnitOfWork",
    "StoredVersion",
    "UnitOfWorkFactory",
    "UowFactory",
    "WatermarkRepository",
]
