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

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar

from sqlalchemy import (
    ColumnElement,
    Date,
    Text,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import defer
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from runway.books import CustomerPayHistory
from runway.cash_flow import (
    UNDEPOSITED_FUNDS,
    AccountKind,
    CashFlowClass,
    CashLine,
    CashMovement,
    MovementKind,
    cash_movements,
)
from runway.cash_lines import FLOWS, cash_lines
from runway.models import (
    Account,
    AuditEntry,
    Bill,
    BillPaymentRecord,
    Business,
    CashLineRecord,
    CashMovementDay,
    CashMovementRecord,
    CompanyInfoRecord,
    Customer,
    CustomerLateness,
    CustomerPaymentRecord,
    Deposit,
    DriftEvent,
    ExchangeRateRecord,
    Invoice,
    LatenessSummary,
    MirroredRow,
    PaidInvoiceLink,
    PersonRecord,
    PreferencesRecord,
    Purchase,
    QBOConnection,
    SyncWatermark,
    TransactionRecord,
    Vendor,
)
from runway.paid_invoices import paid_invoice_ids, typical_days_late
from runway.people import canonical, is_email, is_identifier
from runway.shown_rows import Window
from sync import EncodedJSON, dumps_json_document, for_business

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

    async def is_empty(self) -> bool:
        """Whether nothing of this entity type is mirrored for the business (deleted rows count)."""
        model: Any = self.model
        result = await self.session.execute(
            select(model.id).where(*self._mine(include_deleted=True)).limit(1)
        )
        return result.first() is None

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
        if not values:
            return
        rows = [self._row(value) for value in values]
        if self._lines is None:
            await self.session.execute(self._insert_new(), rows)
            return
        into: Any = self.model.__table__  # type: ignore[attr-defined]
        result = await self.session.execute(self._insert_new().returning(into.c.qbo_id), rows)
        inserted = set(result.scalars())
        # A new row has no cash lines to replace: its lines are only added (no deletes per page
        # of a first sync); a row another writer mirrored meanwhile keeps its own.
        await self._lines.add(
            self.entity, [_object_of(value) for value in values if value["qbo_id"] in inserted]
        )

    def _row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A row of the table for a mirrored object's `values`, its QuickBooks JSON written here
        (read from QuickBooks' text: the faster way gives the same text)."""
        raw = EncodedJSON(dumps_json_document(values["raw"]))
        return {**values, "raw": raw, **self._fixed, "business_id": self.business_id}

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
                {
                    "row_id": value["id"],
                    **{k: v for k, v in value.items() if k != "id"},
                    "raw": EncodedJSON(dumps_json_document(value["raw"])),
                }
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
    """The cash lines of the business's mirrored transactions (`runway.cash_flow.CashLine`).

    What is derived from a transaction's lines is written and removed with them: its cash
    movements (`CashMovementRepository`) and, for a customer payment, the invoices it pays
    (`PaidInvoiceRepository`)."""

    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id)
        self._movements = CashMovementRepository(session, business_id)
        self._paid_invoices = PaidInvoiceRepository(session, business_id)

    async def replace(self, entity: str, objects: Sequence[Mapping[str, Any]]) -> None:
        """The lines of `objects` (QuickBooks objects of type `entity`) replace their old ones."""
        latest = {str(obj["Id"]): obj for obj in objects}  # an object listed twice: the last
        if latest:
            await self.remove(entity, list(latest))
            await self.add(entity, list(latest.values()))

    async def add(self, entity: str, objects: Sequence[Mapping[str, Any]]) -> None:
        """Store the lines of `objects` (QuickBooks objects of type `entity`) that have none."""
        latest = {str(obj["Id"]): obj for obj in objects}  # an object listed twice: the last
        if not latest:
            return
        kinds = await AccountRepository(self.session, self.business_id).kinds()
        # The company's Undeposited Funds (the first, if several), where QuickBooks leaves the
        # account out.
        undeposited = next(
            (qbo_id for qbo_id, kind in kinds.items() if kind.is_undeposited_funds), None
        )
        lines = [
            line for obj in latest.values() for line in cash_lines(entity, obj, undeposited)
        ]
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
            for line in lines
        ]
        if rows:
            await self.session.execute(self._insert(), rows)
            await self._movements.add(entity, lines, kinds)
        if entity == PaidInvoiceRepository.ENTITY:
            await self._paid_invoices.add(latest.values())

    def _insert(self) -> Any:
        """An insert that leaves a line another writer put there meanwhile (the same object's:
        Oodaloo's own payment mirrored by a sync and by the click that made it)."""
        keys = ["business_id", "txn_type", "txn_id", "line"]
        return _insert_ignoring_conflicts(self.session, CashLineRecord.__table__, keys)

    async def remove(self, entity: str, txn_ids: Iterable[str]) -> None:
        ids = sorted({str(txn_id) for txn_id in txn_ids})
        for chunk in _chunks(ids):
            await self.session.execute(
                delete(CashLineRecord)
                .where(
                    CashLineRecord.business_id == self.business_id,
                    CashLineRecord.txn_type == entity,
                    CashLineRecord.txn_id.in_(chunk),
                )
                .execution_options(synchronize_session=False)
            )
        await self._movements.remove(entity, ids)
        if entity == PaidInvoiceRepository.ENTITY:
            await self._paid_invoices.remove(ids)

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
            select(*_LINE_COLUMNS).where(*conditions).order_by(line.txn_date, line.id)
        )
        return [_cash_line(row) for row in result]

    async def of_transactions(self, entity: str, txn_ids: Sequence[str]) -> list[CashLine]:
        """Every line of the listed transactions of type `entity`."""
        line = CashLineRecord
        lines: list[CashLine] = []
        for chunk in _chunks(list(txn_ids)):
            result = await self.session.execute(
                select(*_LINE_COLUMNS)
                .where(
                    line.business_id == self.business_id,
                    line.txn_type == entity,
                    line.txn_id.in_(chunk),
                )
                .order_by(line.id)
            )
            lines.extend(_cash_line(row) for row in result)
        return lines

    async def transactions_naming(self, account_ids: Sequence[str]) -> dict[str, list[str]]:
        """The transactions (ids by entity type) with a line into or out of any of `account_ids`."""
        line = CashLineRecord
        found: dict[str, set[str]] = {}
        for chunk in _chunks(list(account_ids)):
            result = await self.session.execute(
                select(line.txn_type, line.txn_id)
                .where(
                    line.business_id == self.business_id,
                    or_(line.account_qbo_id.in_(chunk), line.counter_account_qbo_id.in_(chunk)),
                )
                .distinct()
            )
            for txn_type, txn_id in result:
                found.setdefault(txn_type, set()).add(txn_id)
        return {entity: sorted(ids) for entity, ids in found.items()}


_LINE_COLUMNS = (
    CashLineRecord.txn_type,
    CashLineRecord.txn_id,
    CashLineRecord.line,
    CashLineRecord.txn_date,
    CashLineRecord.account_qbo_id,
    CashLineRecord.counter_account_qbo_id,
    CashLineRecord.amount,
    CashLineRecord.home_amount,
    CashLineRecord.currency,
    CashLineRecord.exchange_rate,
)


def _cash_line(row: Sequence[Any]) -> CashLine:
    txn_type, txn_id, number, txn_date, account, counter, amount, home, currency, rate = row
    return CashLine(
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


def _insert_ignoring_conflicts(session: AsyncSession, table: Any, keys: list[str]) -> Any:
    """An insert of `table`'s rows that leaves a row with the same `keys` as it is (a Core
    insert when given the table, not the mapped class: no ORM bookkeeping per row)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.bind.dialect.name if session.bind is not None else ""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)
    return insert(table)


class CashMovementRepository(_Scoped):
    """The cash movements of the business's mirrored transactions, kept as
    `runway.cash_flow.cash_movements` derives them from their cash lines and the accounts' types
    (`runway.models.CashMovementRecord`): written with the lines (`CashLineRepository`), and
    worked out again for the transactions naming an account whose type changes
    (`AccountRepository`). Reads sum them in SQL."""

    @staticmethod
    def rows_of(
        business_id: str,
        entity: str,
        lines: Iterable[CashLine],
        kinds: Mapping[str, AccountKind],
    ) -> list[dict[str, Any]]:
        """The `cash_movements` rows of `lines` (every line of some transactions of type
        `entity`), classed by the accounts' `kinds`."""
        rows: list[dict[str, Any]] = []
        seqs: dict[str, int] = {}
        for movement in cash_movements(lines, kinds):
            assert movement.source_id is not None and movement.account_id is not None
            seq = seqs[movement.source_id] = seqs.get(movement.source_id, 0) + 1
            rows.append(
                {
                    "business_id": business_id,
                    "txn_type": entity,
                    "txn_id": movement.source_id,
                    "seq": seq,
                    "txn_date": movement.date,
                    "account_qbo_id": movement.account_id,
                    "flow": movement.cash_flow.value,
                    "kind": movement.kind.value,
                    "counter_account_type": movement.counter_account_type,
                    "undeposited": movement.undeposited,
                    # Money columns take whole cents only (anything else is refused): every
                    # movement is, so their sums in SQL are exact.
                    "amount": movement.amount,
                    "currency": movement.currency,
                    "currency_amount": movement.currency_amount,
                }
            )
        return rows

    async def add(
        self,
        entity: str,
        lines: Sequence[CashLine],
        kinds: Mapping[str, AccountKind] | None = None,
    ) -> None:
        """Store the movements of `lines`: every line of some transactions of type `entity`,
        whose movements are not stored (removed first), classed by the accounts' `kinds` (the
        live accounts' when not given)."""
        if kinds is None:
            kinds = await AccountRepository(self.session, self.business_id).kinds()
        rows = self.rows_of(self.business_id, entity, lines, kinds)
        if rows:
            keys = ["business_id", "txn_type", "txn_id", "seq"]
            # Only the rows this insert wrote count into the day sums: a movement another writer
            # stored meanwhile (the same transaction's) is counted once, by that writer.
            into: Any = CashMovementRecord.__table__
            written = await self.session.execute(
                _insert_ignoring_conflicts(self.session, into, keys).returning(
                    *(into.c[key.key] for key in self._DAY_KEYS), into.c.amount
                ),
                rows,
            )
            await self._count(list(written), 1)

    async def remove(self, entity: str, txn_ids: Iterable[str]) -> None:
        for chunk in _chunks(sorted({str(txn_id) for txn_id in txn_ids})):
            removed = await self.session.execute(
                delete(CashMovementRecord)
                .where(
                    CashMovementRecord.business_id == self.business_id,
                    CashMovementRecord.txn_type == entity,
                    CashMovementRecord.txn_id.in_(chunk),
                )
                .returning(*self._DAY_KEYS, CashMovementRecord.amount)
                .execution_options(synchronize_session=False)
            )
            await self._count(list(removed), -1)

    _DAY_KEYS = (
        CashMovementRecord.txn_date,
        CashMovementRecord.flow,
        CashMovementRecord.kind,
        CashMovementRecord.counter_account_type,
        CashMovementRecord.undeposited,
    )

    async def _count(self, movements: Sequence[Sequence[Any]], sign: int) -> None:
        """Add (`sign` 1) or take out (-1) `movements` (day keys and amount) of the day sums."""
        if not movements:
            return
        sums: dict[tuple[Any, ...], list[Any]] = {}
        for day, flow, kind, counter_type, undeposited, amount in movements:
            key = (day, flow, kind, counter_type or "", bool(undeposited), _sign(amount))
            total = sums.setdefault(key, [Decimal("0.00"), 0])
            total[0] += sign * amount
            total[1] += sign
        rows = [
            {
                "business_id": self.business_id,
                "txn_date": day,
                "flow": flow,
                "kind": kind,
                "counter_account_type": counter_type,
                "undeposited": undeposited,
                "sign": money_sign,
                "amount": amount,
                "movements": count,
            }
            for (day, flow, kind, counter_type, undeposited, money_sign), (amount, count)
            in sums.items()
        ]
        from sqlalchemy.dialects import postgresql, sqlite

        day = CashMovementDay
        keys = [
            "business_id", "txn_date", "flow", "kind", "counter_account_type", "undeposited", "sign"
        ]
        dialect = self.session.bind.dialect.name if self.session.bind is not None else ""
        upsert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(day.__table__)
        # An addition in the database, so two writers counting into one day both count.
        await self.session.execute(
            upsert.on_conflict_do_update(
                index_elements=keys,
                set_={
                    "amount": day.amount + upsert.excluded.amount,
                    "movements": day.movements + upsert.excluded.movements,
                },
            ),
            rows,
        )
        if sign < 0:
            await self.session.execute(
                delete(day)
                .where(day.business_id == self.business_id, day.movements <= 0)
                .execution_options(synchronize_session=False)
            )

    async def reclassify(self, account_ids: Sequence[str]) -> None:
        """Work the movements out again for every transaction with a line naming one of
        `account_ids` (accounts that appeared, changed type or went away)."""
        lines = CashLineRepository(self.session, self.business_id)
        for entity, txn_ids in (await lines.transactions_naming(account_ids)).items():
            await self.remove(entity, txn_ids)
            await self.add(entity, await lines.of_transactions(entity, txn_ids))

    async def dated_between(self, first: date, last: date | None = None) -> list[CashMovement]:
        """Each transaction's movements dated on or after `first` (and on or before `last`), in
        `cash_movements`' order."""
        m = CashMovementRecord
        conditions = [m.business_id == self.business_id, m.txn_date >= first]
        if last is not None:
            conditions.append(m.txn_date <= last)
        result = await self.session.execute(
            select(
                m.txn_date,
                m.amount,
                m.kind,
                m.account_qbo_id,
                m.txn_id,
                m.flow,
                m.undeposited,
                m.currency,
                m.currency_amount,
                m.counter_account_type,
            ).where(*conditions)
        )
        movements = [
            CashMovement(
                day,
                amount,
                MovementKind(kind),
                account_id=account,
                source_id=txn_id,
                flow=CashFlowClass(flow),
                undeposited=bool(undeposited),
                currency=currency,
                currency_amount=currency_amount,
                counter_account_type=counter_type,
            )
            for day, amount, kind, account, txn_id, flow, undeposited, currency, currency_amount,
            counter_type in result
        ]
        movements.sort(key=lambda m: (m.date, m.source_id or "", m.account_id or ""))
        return movements

    async def day_sums(self, first: date) -> list[CashMovement]:
        """The movements dated on or after `first`, summed per day, class, kind, counter-account
        type, Undeposited Funds or bank, and sign (`runway.models.CashMovementDay`): each sum one
        `CashMovement` counting its movements (`count`). Burn, financing and the forecast's
        baseline only ever add movements up by these, so their figures are the same as over the
        movements one by one; the sums are exact (whole cents on SQLite, NUMERIC on PostgreSQL)."""
        day = CashMovementDay
        result = await self.session.execute(
            select(
                day.txn_date,
                day.flow,
                day.kind,
                day.counter_account_type,
                day.undeposited,
                day.amount,
                day.movements,
            ).where(day.business_id == self.business_id, day.txn_date >= first)
        )
        return [
            CashMovement(
                on,
                amount,
                _MOVEMENT_KINDS[kind],
                flow=_CASH_FLOW_CLASSES[flow],
                undeposited=bool(undeposited),
                counter_account_type=counter_type or None,
                count=count,
            )
            for on, flow, kind, counter_type, undeposited, amount, count in result
        ]


# The enums by their stored values (a dict lookup: a few hundred day sums are read per digest).
_MOVEMENT_KINDS = {kind.value: kind for kind in MovementKind}
_CASH_FLOW_CLASSES = {flow.value: flow for flow in CashFlowClass}


def _sign(amount: Decimal) -> int:
    return 1 if amount > 0 else -1 if amount < 0 else 0


class _DaysBetween(FunctionElement[int]):
    """Whole days from the second date to the first (`later - earlier`)."""

    inherit_cache = True


@compiles(_DaysBetween)
def _days_between(element: _DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"({later} - {earlier})"  # PostgreSQL: a date minus a date is days


@compiles(_DaysBetween, "sqlite")
def _days_between_sqlite(element: _DaysBetween, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


class PaidInvoiceRepository(_Scoped):
    """The invoices each mirrored customer payment pays (`runway.models.PaidInvoiceLink`),
    written and removed with the payment's cash lines (`CashLineRepository`), and each
    customer's typical lateness worked out from them (`runway.paid_invoices`), kept after a sync
    (`keep_lateness`) until a payment or an invoice is written."""

    ENTITY = "Payment"

    async def histories_since(self, first: date) -> list[CustomerPayHistory]:
        """Each customer's typical lateness over its invoices paid on or after `first`, by
        customer id: the kept one when it is for `first`, else worked out now."""
        kept = await self.kept_histories(first)
        return kept if kept is not None else self._histories(await self.days_late_since(first))

    async def kept_histories(self, first: date) -> list[CustomerPayHistory] | None:
        """The customers' lateness as kept, by customer id, when it is kept for the invoices paid
        on or after `first`; None when not (read in one statement)."""
        result = await self.session.execute(
            select(
                LatenessSummary.since,
                CustomerLateness.customer_qbo_id,
                CustomerLateness.typical_days_late,
                CustomerLateness.paid_invoices,
            )
            .select_from(LatenessSummary)
            .outerjoin(CustomerLateness, CustomerLateness.business_id == LatenessSummary.business_id)
            .where(LatenessSummary.business_id == self.business_id)
            .order_by(CustomerLateness.customer_qbo_id)
        )
        rows = list(result)
        if not rows or rows[0].since != first:
            return None
        return [CustomerPayHistory(*row[1:]) for row in rows if row.customer_qbo_id is not None]

    @staticmethod
    def _histories(days_late: Mapping[str, Mapping[int, int]]) -> list[CustomerPayHistory]:
        return [
            CustomerPayHistory(customer_id, typical_days_late(days), sum(days.values()))
            for customer_id, days in sorted(days_late.items())
        ]

    async def keep_lateness(self, first: date) -> None:
        """Work out and keep every customer's lateness over the invoices paid on or after
        `first`, unless it is kept already for `first` with nothing written since."""
        if await self.kept_since() == first:
            return
        histories = self._histories(await self.days_late_since(first))
        await self.forget_lateness()
        await self.session.execute(
            delete(CustomerLateness)
            .where(CustomerLateness.business_id == self.business_id)
            .execution_options(synchronize_session=False)
        )
        if histories:
            await self.session.execute(
                insert(CustomerLateness),
                [
                    {
                        "business_id": self.business_id,
                        "customer_qbo_id": history.customer_id,
                        "typical_days_late": history.typical_days_late,
                        "paid_invoices": history.paid_invoices,
                    }
                    for history in histories
                ],
            )
        await self.session.execute(
            insert(LatenessSummary), {"business_id": self.business_id, "since": first}
        )

    async def kept_since(self) -> date | None:
        """The first day of the lateness kept, None when none stands."""
        result = await self.session.execute(
            select(LatenessSummary.since).where(LatenessSummary.business_id == self.business_id)
        )
        return result.scalar_one_or_none()

    async def forget_lateness(self) -> None:
        """What was kept of the customers' lateness no longer stands (a payment or an invoice
        changed)."""
        await self.session.execute(
            delete(LatenessSummary)
            .where(LatenessSummary.business_id == self.business_id)
            .execution_options(synchronize_session=False)
        )

    async def add(self, payments: Iterable[Mapping[str, Any]]) -> None:
        """Store the invoices `payments` (QuickBooks Payment objects, their links removed) pay."""
        rows = [
            {
                "business_id": self.business_id,
                "payment_qbo_id": str(payment["Id"]),
                "invoice_qbo_id": invoice_id,
                "txn_date": date.fromisoformat(str(payment["TxnDate"]))
                if payment.get("TxnDate")
                else None,
            }
            for payment in payments
            for invoice_id in paid_invoice_ids(payment)
        ]
        if rows:
            keys = ["business_id", "payment_qbo_id", "invoice_qbo_id"]
            await self.session.execute(
                _insert_ignoring_conflicts(self.session, PaidInvoiceLink.__table__, keys), rows
            )
        await self.forget_lateness()  # a payment written: even one paying no invoice now

    async def remove(self, payment_ids: Iterable[str]) -> None:
        ids = sorted({str(payment_id) for payment_id in payment_ids})
        if ids:
            await self.forget_lateness()
        for chunk in _chunks(ids):
            await self.session.execute(
                delete(PaidInvoiceLink)
                .where(
                    PaidInvoiceLink.business_id == self.business_id,
                    PaidInvoiceLink.payment_qbo_id.in_(chunk),
                )
                .execution_options(synchronize_session=False)
            )

    async def days_late_since(self, first: date) -> dict[str, dict[int, int]]:
        """For each customer, how many of its invoices were paid how many days after their due
        date ({days late: invoices}): the invoices no longer open whose last payment is dated on
        or after `first` (`runway.paid_invoices`)."""
        link = PaidInvoiceLink
        paid = (
            select(link.invoice_qbo_id, func.max(link.txn_date).label("paid_on"))
            .where(link.business_id == self.business_id, link.txn_date >= first)
            .group_by(link.invoice_qbo_id)
            .subquery()
        )
        late = _DaysBetween(paid.c.paid_on, Invoice.due_date)
        result = await self.session.execute(
            select(Invoice.customer_qbo_id, late, func.count())
            .join_from(
                paid,
                Invoice,
                and_(
                    Invoice.business_id == self.business_id,
                    Invoice.qbo_id == paid.c.invoice_qbo_id,
                ),
            )
            .where(
                Invoice.deleted_at.is_(None),
                Invoice.balance <= 0,  # still open: not a finished payment
                Invoice.due_date.is_not(None),
                Invoice.customer_qbo_id.is_not(None),
            )
            .group_by(Invoice.customer_qbo_id, late)
        )
        found: dict[str, dict[int, int]] = {}
        for customer_id, days, count in result:
            assert customer_id is not None  # left out above
            found.setdefault(customer_id, {})[int(days)] = int(count)
        return found


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
    """The business's accounts. Writing them keeps the stored cash movements right: the
    transactions naming an account that appears, changes type or goes away have theirs worked
    out again (`CashMovementRepository.reclassify`)."""

    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id, Account)

    async def kinds(self, qbo_ids: Sequence[str] | None = None) -> dict[str, AccountKind]:
        """What classifying cash needs of each live account (of `qbo_ids`, or all), oldest
        first."""
        conditions = self._mine()
        if qbo_ids is not None:
            conditions.append(Account.qbo_id.in_(list(qbo_ids)))
        result = await self.session.execute(
            select(Account.qbo_id, Account.account_type, Account.account_sub_type)
            .where(*conditions)
            .order_by(Account.id)
        )
        return {qbo_id: AccountKind(kind, sub_kind) for qbo_id, kind, sub_kind in result}

    async def _kinds_of(self, qbo_ids: Sequence[str]) -> dict[str, AccountKind]:
        if not qbo_ids:
            return {}
        kinds: dict[str, AccountKind] = {}
        for chunk in _chunks(qbo_ids):
            kinds.update(await self.kinds(chunk))
        return kinds

    async def _reclassify_changed(
        self,
        qbo_ids: Sequence[str],
        before: Mapping[str, AccountKind],
        written: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Reclassify what names the accounts among `qbo_ids` whose kind is not what it was
        `before` (now: as `written`, the rows' values, when they carry it; else read)."""
        if not qbo_ids:
            return
        if written and all("account_type" in values for values in written):
            after = {
                str(values["qbo_id"]): AccountKind(
                    values["account_type"], values.get("account_sub_type")
                )
                for values in written
                if values.get("deleted_at") is None
            }
        else:
            after = await self._kinds_of(qbo_ids)
        changed = [qbo_id for qbo_id in qbo_ids if before.get(qbo_id) != after.get(qbo_id)]
        if changed:
            await CashMovementRepository(self.session, self.business_id).reclassify(changed)

    async def insert_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        ids = sorted({str(value["qbo_id"]) for value in values})
        before = await self._kinds_of(ids)
        await super().insert_many(values)
        await self._reclassify_changed(ids, before)

    async def insert_new(self, values: Mapping[str, Any]) -> bool:
        ids = [str(values["qbo_id"])]
        before = await self._kinds_of(ids)
        inserted = await super().insert_new(values)
        await self._reclassify_changed(ids, before)
        return inserted

    async def update_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        ids = sorted({str(value["qbo_id"]) for value in values})
        before = await self._kinds_of(ids)
        await super().update_many(values)
        await self._reclassify_changed(ids, before, values)

    async def mark_deleted(self, qbo_ids: Iterable[str], when: datetime) -> int:
        ids = sorted({str(qbo_id) for qbo_id in qbo_ids})
        before = await self._kinds_of(ids)
        marked = await super().mark_deleted(ids, when)
        await self._reclassify_changed(ids, before)
        return marked

    async def undeposited_accounts(self) -> list[Account]:
        """Undeposited Funds: money received, not yet banked (shown apart from the cash)."""
        return (await self.cash_accounts_by_kind())[1]

    async def cash_accounts(self) -> list[Account]:
        """The bank accounts and Undeposited Funds."""
        banks, undeposited = await self.cash_accounts_by_kind()
        return [*banks, *undeposited]

    async def bank_accounts(self) -> list[Account]:
        """Active bank accounts: the cash on hand."""
        return (await self.cash_accounts_by_kind())[0]

    async def cash_accounts_by_kind(self) -> tuple[list[Account], list[Account]]:
        """(active bank accounts: the cash on hand; Undeposited Funds: money received, not yet
        banked, shown apart from the cash), each by id, read in one statement."""
        bank = and_(Account.account_type == "Bank", Account.active.is_(True))
        undeposited = Account.account_sub_type == UNDEPOSITED_FUNDS
        result = await self.session.execute(
            select(Account, bank, undeposited)
            .where(*self._mine(), or_(bank, undeposited))
            .order_by(Account.id)
        )
        banks: list[Account] = []
        funds: list[Account] = []
        for account, is_bank, is_undeposited in result:
            if is_bank:
                banks.append(account)
            if is_undeposited:
                funds.append(account)
        return banks, funds


def plain_bill(home: str) -> ColumnElement[bool]:
    """An open bill the Python rules have nothing to decide about: in the home currency (at no
    rate of its own), with no approval, payment or snooze. Its standing is "needs approval" and
    paying it costs its open balance (`runway.books.PlainDocuments`)."""
    return and_(
        or_(Bill.currency.is_(None), Bill.currency == home),
        Bill.exchange_rate.is_(None),
        Bill.approved_by.is_(None),
        Bill.second_approved_by.is_(None),
        Bill.payment_state.is_(None),
        Bill.snoozed_until.is_(None),
    )


def _overdue_invoice(today: date) -> ColumnElement[bool]:
    """An invoice past its due date on `today` (one with no due date is not)."""
    return Invoice.due_date < today


def plain_invoice(home: str) -> ColumnElement[bool]:
    """An open invoice in the home currency (at no rate of its own) that nobody snoozed."""
    return and_(
        or_(Invoice.currency.is_(None), Invoice.currency == home),
        Invoice.exchange_rate.is_(None),
        Invoice.snoozed_until.is_(None),
    )


#: A bill's columns as the digest reads them, named as `runway.books.OpenBill`'s fields.
OPEN_BILL_COLUMNS = (
    Bill.qbo_id.label("id"),
    Bill.vendor_qbo_id.label("vendor_id"),
    Bill.vendor_name,
    Bill.total_amount.label("amount"),
    Bill.balance,
    Bill.due_date,
    Bill.txn_date,
    Bill.doc_number,
    Bill.approved_by,
    Bill.approved_at,
    Bill.second_approved_by,
    Bill.second_approved_at,
    Bill.snoozed_until,
    Bill.currency,
    Bill.approved_amount,
    Bill.second_approved_amount,
    Bill.payment_state,
    Bill.payment_amount,
    Bill.payment_by,
    Bill.payment_at,
    Bill.payment_account_name,
    Bill.payment_note,
    Bill.exchange_rate,
    Bill.payment_exchange_rate,
)

#: An invoice's columns as the digest reads them, named as `runway.books.OpenInvoice`'s fields.
OPEN_INVOICE_COLUMNS = (
    Invoice.qbo_id.label("id"),
    Invoice.customer_qbo_id.label("customer_id"),
    Invoice.customer_name,
    Invoice.total_amount.label("amount"),
    Invoice.balance,
    Invoice.due_date,
    Invoice.txn_date,
    Invoice.doc_number,
    Invoice.last_reminder_at,
    Invoice.reminders_sent,
    Invoice.snoozed_until,
    Invoice.last_reminder_by,
    Invoice.currency,
    Invoice.exchange_rate,
)


class _OpenDocuments(_Scoped):
    """What the bill and invoice repositories share to read open documents as columns."""

    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind is not None else ""

    def _in_order(self, qbo_id: Any) -> Any:
        """`qbo_id` compared as Python compares text (by code point), as the lists sort it in
        Python: PostgreSQL's "C" collation; SQLite compares bytes already."""
        return qbo_id.collate("C") if self._dialect() == "postgresql" else qbo_id

    def _days_from(self, day: ColumnElement[date], today: date) -> ColumnElement[int]:
        """Whole days from `today` to `day` (negative before it)."""
        return _DaysBetween(day, literal(today, Date))

    async def _rows_of(
        self, columns: Sequence[Any], mine: Sequence[Any], qbo_id: Any, ids: Any
    ) -> list[Any]:
        """The rows (`columns`, of those `mine` selects) whose ids `ids` selects, in its order:
        the ids are sorted from the index alone, and only the rows kept are read whole."""
        ordered = list((await self.session.execute(ids)).scalars())
        if not ordered:
            return []
        found = {
            row.id: row
            for row in await self.session.execute(
                select(*columns).where(*mine, qbo_id.in_(ordered))
            )
        }
        return [found[each] for each in ordered]

    @staticmethod
    def _window(statement: Any, window: Window) -> Any:
        statement = statement.offset(window.start) if window.start else statement
        if window.stop is not None:
            statement = statement.limit(window.stop - window.start)
        return statement


class BillRepository(_OpenDocuments, MirrorRepository[Bill]):
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

    def _open(self, leave_out: Collection[str]) -> list[ColumnElement[bool]]:
        conditions = [*self._mine(), Bill.balance > Decimal("0")]
        if leave_out:
            conditions.append(Bill.qbo_id.not_in(sorted(leave_out)))
        return conditions

    async def plain_totals(
        self, home: str, *, leave_out: Collection[str] = ()
    ) -> list[tuple[date | None, int, Decimal]]:
        """The plain open bills (`plain_bill`) by due date, else transaction date: (that date,
        how many, their open balances); bills in `leave_out` are not counted."""
        on = func.coalesce(Bill.due_date, Bill.txn_date)
        result = await self.session.execute(
            select(on, func.count(), func.sum(Bill.balance))
            .where(*self._open(leave_out), plain_bill(home))
            .group_by(on)
        )
        return [(day, int(count), total) for day, count, total in result]

    async def plain_rows(
        self,
        home: str,
        first_day: date | None,
        last_day: date,
        window: Window,
        *,
        leave_out: Collection[str] = (),
    ) -> list[Any]:
        """`window` of the plain open bills due (else dated) from `first_day` (None: any day
        before) to `last_day`, in the digest's order: soonest due, then larger, then by id."""
        on = func.coalesce(Bill.due_date, Bill.txn_date)
        conditions = [*self._open(leave_out), plain_bill(home), on <= last_day]
        if first_day is not None:
            conditions.append(on >= first_day)
        statement = (
            select(Bill.qbo_id)
            .where(*conditions)
            .order_by(on, Bill.total_amount.desc(), self._in_order(Bill.qbo_id))
        )
        return await self._rows_of(
            OPEN_BILL_COLUMNS, self._mine(), Bill.qbo_id, self._window(statement, window)
        )

    async def rows_with_state(self, home: str, *, leave_out: Collection[str] = ()) -> list[Any]:
        """The open bills that are not plain: with an approval, a payment or a snooze, or in
        another currency (few: each is decided by the Python rules)."""
        # Which they are is read from the open bills' index alone; only those rows are read.
        which = select(Bill.qbo_id).where(*self._open(leave_out), not_(plain_bill(home)))
        result = await self.session.execute(
            select(*OPEN_BILL_COLUMNS).where(*self._mine(), Bill.qbo_id.in_(which.correlate(None)))
        )
        return list(result)

    async def rows_by_qbo_ids(self, qbo_ids: Iterable[str]) -> list[Any]:
        """The live bills among `qbo_ids`, open or not, as the digest reads them."""
        rows: list[Any] = []
        for chunk in _chunks(sorted({str(qbo_id) for qbo_id in qbo_ids})):
            result = await self.session.execute(
                select(*OPEN_BILL_COLUMNS).where(*self._mine(), Bill.qbo_id.in_(chunk))
            )
            rows.extend(result)
        return rows


class InvoiceRepository(_OpenDocuments, MirrorRepository[Invoice]):
    def __init__(self, session: AsyncSession, business_id: str) -> None:
        super().__init__(session, business_id, Invoice)

    # An invoice written (paid, due later, deleted) changes what the customers' lateness rests on.

    async def insert_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        await super().insert_many(values)
        if values:
            await PaidInvoiceRepository(self.session, self.business_id).forget_lateness()

    async def insert_new(self, values: Mapping[str, Any]) -> bool:
        inserted = await super().insert_new(values)
        await PaidInvoiceRepository(self.session, self.business_id).forget_lateness()
        return inserted

    async def update_many(self, values: Sequence[Mapping[str, Any]]) -> None:
        await super().update_many(values)
        if values:
            await PaidInvoiceRepository(self.session, self.business_id).forget_lateness()

    async def mark_deleted(self, qbo_ids: Iterable[str], when: datetime) -> int:
        marked = await super().mark_deleted(qbo_ids, when)
        if marked:
            await PaidInvoiceRepository(self.session, self.business_id).forget_lateness()
        return marked

    async def open_invoices(self) -> list[Invoice]:
        """Invoices with money still owed, oldest due first."""
        result = await self.session.execute(
            select(Invoice)
            .options(defer(Invoice.raw))
            .where(*self._mine(), Invoice.balance > Decimal("0"))
            .order_by(Invoice.due_date.is_(None), Invoice.due_date, Invoice.id)
        )
        return list(result.scalars())

    def _open(self) -> list[ColumnElement[bool]]:
        return [*self._mine(), Invoice.balance > Decimal("0")]

    async def plain_expected(
        self, home: str, today: date, soonest: int, latest: int
    ) -> list[tuple[int, str | None, Decimal]]:
        """The plain open invoices' balances by base day (the due date, else the transaction
        date, else today; in days from `today`) and customer: (days, customer, balances).

        The caller adds each customer's typical days late to place them. Where that cannot
        matter the customer is not named and the days are cut: an invoice due `soonest` days
        or fewer from today lands in the first week, and one due `latest` or more after the
        last, whoever pays it (so at most the invoices between come one group per customer and
        day)."""
        base = func.coalesce(Invoice.due_date, Invoice.txn_date, literal(today, Date))
        days = self._days_from(base, today)
        beyond = or_(days <= soonest, days >= latest)
        cut = case((days <= soonest, soonest), (days >= latest, latest), else_=days)
        customer = case((beyond, None), else_=Invoice.customer_qbo_id)
        result = await self.session.execute(
            select(cut, customer, func.sum(Invoice.balance))
            .where(*self._open(), plain_invoice(home))
            .group_by(cut, customer)
        )
        return [(int(day), who, total) for day, who, total in result]

    async def plain_expected_kept(
        self, home: str, today: date
    ) -> tuple[dict[int, Decimal], tuple[int, Decimal]]:
        """The plain open invoices' balances by the day each is expected, in days from `today`
        (the due date, else the transaction date, else today, plus its customer's typical days
        late as the mirror kept it: `CustomerLateness`), and how many of them are overdue with
        their balances (`plain_overdue_totals`), in one statement. Only for when what is kept is
        the lateness wanted (`PaidInvoiceRepository.kept_histories`); else see `plain_expected`."""
        base = func.coalesce(Invoice.due_date, Invoice.txn_date, literal(today, Date))
        expected = self._days_from(base, today) + func.coalesce(
            CustomerLateness.typical_days_late, 0
        )
        overdue = case((_overdue_invoice(today), 1), else_=0)
        result = await self.session.execute(
            select(expected, overdue, func.count(), func.sum(Invoice.balance))
            .select_from(Invoice)
            .outerjoin(
                CustomerLateness,
                and_(
                    CustomerLateness.business_id == Invoice.business_id,
                    CustomerLateness.customer_qbo_id == Invoice.customer_qbo_id,
                ),
            )
            .where(*self._open(), plain_invoice(home))
            .group_by(expected, overdue)
        )
        by_day: dict[int, Decimal] = {}
        overdue_count, overdue_balance = 0, Decimal("0.00")
        for days, is_overdue, count, total in result:
            by_day[int(days)] = by_day.get(int(days), Decimal("0.00")) + total
            if is_overdue:
                overdue_count += int(count)
                overdue_balance += total
        return by_day, (overdue_count, overdue_balance)

    async def plain_overdue_totals(self, home: str, today: date) -> tuple[int, Decimal]:
        """How many plain open invoices are past their due date, and their open balances."""
        count, total = (
            await self.session.execute(
                select(func.count(), func.sum(Invoice.balance)).where(
                    *self._open(), plain_invoice(home), _overdue_invoice(today)
                )
            )
        ).one()
        return int(count), total if total is not None else Decimal("0.00")

    async def plain_overdue_rows(self, home: str, today: date, window: Window) -> list[Any]:
        """`window` of the plain overdue invoices, longest overdue first, then larger, then by id."""
        statement = (
            select(Invoice.qbo_id)
            .where(*self._open(), plain_invoice(home), _overdue_invoice(today))
            .order_by(Invoice.due_date, Invoice.balance.desc(), self._in_order(Invoice.qbo_id))
        )
        return await self._rows_of(
            OPEN_INVOICE_COLUMNS, self._mine(), Invoice.qbo_id, self._window(statement, window)
        )

    async def rows_with_state(self, home: str) -> list[Any]:
        """The open invoices that are not plain: snoozed, or in another currency."""
        # Which they are is read from the open invoices' index alone; only those rows are read.
        which = select(Invoice.qbo_id).where(*self._open(), not_(plain_invoice(home)))
        result = await self.session.execute(
            select(*OPEN_INVOICE_COLUMNS).where(
                *self._mine(), Invoice.qbo_id.in_(which.correlate(None))
            )
        )
        return list(result)


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

    async def open_sentences(self) -> list[str]:
        """What each open drift event says, in the order `open` lists them."""
        result = await self.session.execute(
            select(DriftEvent.sentence)
            .where(DriftEvent.business_id == self.business_id, DriftEvent.resolved_at.is_(None))
            .order_by(DriftEvent.first_seen, DriftEvent.id)
        )
        return list(result.scalars())

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


#: The tables the digest sums, joins and orders (`refresh_statistics`).
MIRROR_STATISTICS_TABLES = (
    Bill.__tablename__,
    Invoice.__tablename__,
    CashMovementDay.__tablename__,
    PaidInvoiceLink.__tablename__,
    CustomerLateness.__tablename__,
)


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
        for_business(session, business_id)  # its writes change this business's books' version
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
        self.cash_movements = CashMovementRepository(session, business_id)
        self.paid_invoices = PaidInvoiceRepository(session, business_id)
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

    async def refresh_statistics(self) -> None:
        """Have PostgreSQL look at the mirror's tables again after many rows arrived: until it
        does (autovacuum may take minutes), its plans for the digest's sums and joins assume the
        tables are as small as they were, and its sums over the open documents' index read every
        row's page too (an index-only scan needs the visibility map that VACUUM keeps), so a
        digest that takes milliseconds takes a second. VACUUM cannot run inside a transaction:
        it runs on a connection of its own, apart from this unit of work's."""
        bind = self.session.bind
        if not isinstance(bind, AsyncEngine) or bind.dialect.name != "postgresql":
            return  # SQLite plans from its indexes alone
        async with bind.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            for table in MIRROR_STATISTICS_TABLES:
                await autocommit.execute(text(f'VACUUM (ANALYZE) "{table}"'))

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
    "CashMovementRepository",
    "ConnectionRepository",
    "DriftRepository",
    "ExchangeRateRepository",
    "InvoiceRepository",
    "MirrorRepository",
    "PaidInvoiceRepository",
    "RunwayUnitOfWork",
    "StoredVersion",
    "UnitOfWorkFactory",
    "UowFactory",
    "WatermarkRepository",
]
