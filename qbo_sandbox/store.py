"""In-memory storage of QBO companies (realms) for the sandbox.

Objects are stored exactly as QuickBooks Online returns them (JSON dicts with Decimal amounts and
{"value","name"} refs). Each entity type keeps its objects in Id order plus hash and sorted indexes,
so the query engine can answer filtered, ordered, paged queries on 100,000-object realms without
scanning or sorting everything per request.

Stored dicts are never mutated in place: every write replaces the whole dict. That is what lets
`iter()` hand out read-only views cheaply, and the query engine filter and order them without
copying anything but the page it returns.
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Protocol
from zoneinfo import ZoneInfo

ENTITIES: tuple[str, ...] = (
    "CompanyInfo",
    "Account",
    "Vendor",
    "Customer",
    "Bill",
    "BillPayment",
    "Invoice",
    "Payment",
    "Purchase",
    "Deposit",
    "SalesReceipt",
    "RefundReceipt",
    "Transfer",
    "JournalEntry",
    "VendorCredit",
    "CreditMemo",
    # QuickBooks' own name for a credit card payment (its URL and queries say creditcardpayment):
    # https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/creditcardpayment
    "CreditCardPaymentTxn",
    "Item",
    "Term",
    "Preferences",
    "CompanyCurrency",
    "ExchangeRate",
)
_CANONICAL = {name.lower(): name for name in ENTITIES}
_CANONICAL["creditcardpayment"] = "CreditCardPaymentTxn"

# Fields clients filter on by equality: one dict per field, key -> ids.
# (Id itself needs no index: the table is a dict by Id.)
HASH_INDEXED: tuple[str, ...] = (
    "VendorRef",
    "CustomerRef",
    "DocNumber",
    "DisplayName",
    "Active",
    "AccountType",
)
# Fields clients filter and order on by range: kept sorted, with the kind of key each one holds.
SORTED_INDEXED: dict[str, str] = {
    "MetaData.LastUpdatedTime": "time",
    "MetaData.CreateTime": "time",
    "TxnDate": "time",
    "DueDate": "time",
    "Balance": "num",
    "TotalAmt": "num",
}
# How many `requestid` responses a realm remembers before forgetting the oldest.
REMEMBERED_RESPONSES = 100_000


class UnknownEntity(LookupError):
    """The entity name is not one the sandbox stores."""


class UnknownRealm(LookupError):
    """No company with this realm id exists in the sandbox."""


class UnknownObject(LookupError):
    """No object of this entity type has this Id in the realm."""


class QueryError(ValueError):
    """A query statement QBO would refuse: `code`, `message` and `detail` go into the fault
    (4000 "Error parsing query" for what its parser cannot read, 4001 "Invalid query" for a
    property it cannot filter or order on)."""

    def __init__(self, message: str, detail: str, code: str = "4000") -> None:
        super().__init__(f"{message}: {detail}")
        self.message = message
        self.detail = detail
        self.code = code


def canonical_entity(name: str) -> str:
    """ "bill" or "BILLPAYMENT" -> "Bill" / "BillPayment"."""
    try:
        return _CANONICAL[name.lower()]
    except KeyError:
        raise UnknownEntity(
            f"unknown entity {name!r}: the sandbox stores {', '.join(ENTITIES)}"
        ) from None


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class ChangeEvent:
    realm_id: str
    entity: str
    id: str
    operation: str  # "Create" | "Update" | "Delete" | "Void" | "Emailed"
    last_updated: datetime


# ---------------------------------------------------------------------------------------------
# Field access and comparable keys, shared by the indexes and the query engine.


def field_value(obj: dict[str, Any], path: str) -> Any:
    """The value at a dotted path with QBO's exact field names; a Ref compares by its "value"."""
    current: Any = obj
    for part in path.split("."):
        if type(current) is not dict:
            return None
        current = current.get(part)
    if type(current) is dict and "value" in current:
        return current["value"]
    return current


@lru_cache(maxsize=256)
def field_getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """A fast `field_value(obj, path)` for one path, for index maintenance over many objects."""
    parts = path.split(".")
    if len(parts) == 1:
        name = parts[0]

        def get_top(obj: dict[str, Any]) -> Any:
            value = obj.get(name)
            if type(value) is dict:
                return value.get("value")
            return value

        return get_top
    return lambda obj: field_value(obj, path)


def resolve_field(obj: dict[str, Any], path: str) -> str | None:
    """QBO's spelling of a case-insensitive dotted path, as found in `obj` (None if absent)."""
    current: Any = obj
    spelled: list[str] = []
    for part in path.split("."):
        if type(current) is not dict:
            return None
        if part not in current:
            lowered = part.lower()
            part = next((k for k in current if k.lower() == lowered), "")
            if not part:
                return None
        spelled.append(part)
        current = current[part]
    return ".".join(spelled)


@lru_cache(maxsize=65_536)
def parse_time(text: str, tz: ZoneInfo) -> datetime | None:
    """A QBO date ("2024-05-01", midnight in the company's zone) or datetime, as an aware datetime."""
    if len(text) < 10 or text[4:5] != "-" or text[7:8] != "-":
        return None
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=tz)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


def to_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return None
    if isinstance(value, float):
        return Decimal(str(value))  # only for objects inserted raw with floats; never produced here
    return None


def sort_key(value: Any, kind: str, tz: ZoneInfo) -> Any:
    """The comparable key of `value` for a field of `kind` ("time", "num", "str", "bool"), or None."""
    if value is None:
        return None
    if type(value) is Decimal and kind == "num":
        return value
    if kind == "time":
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=tz)
        return parse_time(value, tz) if isinstance(value, str) else None
    if kind == "num":
        return to_decimal(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return None
    return value if isinstance(value, str) else str(value)


def hash_key(value: Any) -> str | None:
    """Equality key for hash indexes: strings as they are, booleans as "true"/"false"."""
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def id_order(obj_id: str) -> int:
    """Ids sort numerically: QBO's insertion order."""
    return int(obj_id)


_CONTAINERS = (dict, list)


def copy_json(value: Any) -> Any:
    """A fast deep copy of a JSON tree (dicts, lists, immutable scalars)."""
    if type(value) is dict:
        return {k: (v if type(v) not in _CONTAINERS else copy_json(v)) for k, v in value.items()}
    if type(value) is list:
        return [(v if type(v) not in _CONTAINERS else copy_json(v)) for v in value]
    return value


def copy_obj(obj: dict[str, Any]) -> dict[str, Any]:
    """A fast deep copy of one stored object."""
    return {k: (v if type(v) not in _CONTAINERS else copy_json(v)) for k, v in obj.items()}


class EntityTable:
    """One entity type's objects in one realm, with the indexes the query engine plans with.

    Each index is built the first time a query needs it and maintained on every write after
    that, so bulk loading pays only for the indexes clients actually use."""

    def __init__(self, tz: ZoneInfo) -> None:
        self.tz = tz
        self.objects: dict[str, dict[str, Any]] = {}
        self.tombstones: dict[str, dict[str, Any]] = {}
        # Numeric ids, ascending: the default query order.
        self.order: list[int] = []
        # Built indexes only. Hash: field -> key -> ids. Sorted: field -> [(key, numeric id)].
        self.hash: dict[str, dict[str, set[str]]] = {}
        self.sorted: dict[str, list[tuple[Any, int]]] = {}
        self.indexes_stale = False
        # Moves with every object added, replaced or removed: what is derived from the table (the
        # ledger's postings) is still right while it has not moved.
        self.version = 0

    # -- reads used by the query engine ----------------------------------------------------

    def ids_in_order(self, descending: bool = False) -> Iterator[str]:
        seq = reversed(self.order) if descending else iter(self.order)
        return (str(oid) for oid in seq)

    def hash_index(self, field: str) -> dict[str, set[str]]:
        index = self.hash.get(field)
        if index is None:
            index = self.hash[field] = self._build_hash(field)
        return index

    def lookup(self, field: str, key: str) -> set[str]:
        return self.hash_index(field).get(key, set())

    def sorted_index(self, field: str) -> list[tuple[Any, int]]:
        entries = self.sorted.get(field)
        if entries is None:
            entries = self.sorted[field] = self._build_sorted(field)
        return entries

    # -- maintenance ---------------------------------------------------------------------------

    def _build_hash(self, field: str) -> dict[str, set[str]]:
        index: dict[str, set[str]] = {}
        get = field_getter(field)
        for oid, obj in self.objects.items():
            value = get(obj)
            key = value if type(value) is str else hash_key(value)
            if key is not None:
                ids = index.get(key)
                if ids is None:
                    index[key] = {oid}
                else:
                    ids.add(oid)
        return index

    def _build_sorted(self, field: str) -> list[tuple[Any, int]]:
        get = field_getter(field)
        kind = SORTED_INDEXED[field]
        tz = self.tz
        keyed = ((sort_key(get(obj), kind, tz), oid) for oid, obj in self.objects.items())
        entries = [(skey, int(oid)) for skey, oid in keyed if skey is not None]
        entries.sort()
        return entries

    def _index_add(self, obj: dict[str, Any]) -> None:
        oid = obj["Id"]
        for field, index in self.hash.items():
            key = hash_key(field_getter(field)(obj))
            if key is not None:
                index.setdefault(key, set()).add(oid)
        for field, entries in self.sorted.items():
            skey = sort_key(field_getter(field)(obj), SORTED_INDEXED[field], self.tz)
            if skey is not None:
                bisect.insort(entries, (skey, int(oid)))

    def _index_remove(self, obj: dict[str, Any]) -> None:
        oid = obj["Id"]
        for field, index in self.hash.items():
            key = hash_key(field_getter(field)(obj))
            if key is not None:
                ids = index.get(key)
                if ids is not None:
                    ids.discard(oid)
                    if not ids:
                        del index[key]
        for field, entries in self.sorted.items():
            skey = sort_key(field_getter(field)(obj), SORTED_INDEXED[field], self.tz)
            if skey is not None:
                entry = (skey, int(oid))
                pos = bisect.bisect_left(entries, entry)
                if pos < len(entries) and entries[pos] == entry:
                    del entries[pos]

    def add(self, obj: dict[str, Any], *, deferred: bool) -> None:
        self.version += 1
        oid = obj["Id"]
        self.objects[oid] = obj
        self.tombstones.pop(oid, None)
        order = int(oid)
        if deferred:
            self.order.append(order)
            self.indexes_stale = True
            return
        if not self.order or self.order[-1] < order:
            self.order.append(order)
        else:
            bisect.insort(self.order, order)
        self._index_add(obj)

    def replace(self, old: dict[str, Any], new: dict[str, Any], *, deferred: bool) -> None:
        self.version += 1
        self.objects[new["Id"]] = new
        if deferred:
            self.indexes_stale = True
            return
        self._index_remove(old)
        self._index_add(new)

    def discard(self, obj: dict[str, Any], *, deferred: bool) -> None:
        self.version += 1
        oid = obj["Id"]
        del self.objects[oid]
        if deferred:
            self.indexes_stale = True
            return
        order = int(oid)
        pos = bisect.bisect_left(self.order, order)
        if pos < len(self.order) and self.order[pos] == order:
            del self.order[pos]
        self._index_remove(obj)

    def rebuild(self) -> None:
        """After bulk loading: restore Id order; each index is rebuilt when next used."""
        self.order = sorted(int(oid) for oid in self.objects)
        self.hash = {}
        self.sorted = {}
        self.indexes_stale = False


# ---------------------------------------------------------------------------------------------


class Realm:
    """One QBO company: its objects, change events, and remembered `requestid` responses."""

    def __init__(
        self,
        realm_id: str,
        *,
        tz: ZoneInfo,
        clock: Clock,
        emit: Callable[[ChangeEvent], None],
    ) -> None:
        self.realm_id = realm_id
        self.tz = tz
        self.clock = clock
        # Held by callers that validate then write (bookkeeping), so the pair is atomic.
        self.lock = threading.RLock()
        self._emit = emit
        self._tables: dict[str, EntityTable] = {name: EntityTable(tz) for name in ENTITIES}
        self._next_id = 1
        self._bulk_depth = 0
        self._responses: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._last_formatted: tuple[int, str] = (-1, "")

    # -- time ------------------------------------------------------------------------------------

    def format_time(self, dt: datetime, *, millis: bool = False) -> str:
        """QBO's wire format in the company's zone, e.g. "2024-05-29T14:58:03-07:00"
        (with millis=True: "2024-05-29T14:58:03.036-07:00", as in responses' "time")."""
        if millis:
            return dt.astimezone(self.tz).isoformat(timespec="milliseconds")
        # Bulk loads stamp thousands of objects within one second: reuse the last rendering.
        second = int(dt.timestamp())
        if self._last_formatted[0] != second:
            self._last_formatted = (second, dt.astimezone(self.tz).isoformat(timespec="seconds"))
        return self._last_formatted[1]

    def now(self) -> datetime:
        return self.clock.now()

    # -- tables ----------------------------------------------------------------------------------

    def table(self, entity: str) -> EntityTable:
        """The indexed table of an entity type (for the query engine); indexes are current."""
        table = self._tables[canonical_entity(entity)]
        if table.indexes_stale and self._bulk_depth == 0:
            table.rebuild()
        return table

    def _allocate_id(self, given: Any) -> str:
        if given is None or given == "":
            oid = str(self._next_id)
            self._next_id += 1
            return oid
        oid = str(given)
        if not oid.isdigit():
            raise ValueError(f"QBO Ids are numeric strings, got {oid!r}")
        if int(oid) >= self._next_id:
            self._next_id = int(oid) + 1
        return oid

    def _event(self, entity: str, oid: str, operation: str, when: datetime) -> None:
        if self._bulk_depth == 0:
            self._emit(ChangeEvent(self.realm_id, entity, oid, operation, when))

    # -- raw writes --------------------------------------------------------------------------

    def insert(
        self, entity: str, obj: dict[str, Any], *, created: datetime | None = None
    ) -> dict[str, Any]:
        """Store a new object as given: no validation, no bookkeeping.

        Assigns Id (when missing), SyncToken "0", domain "QBO", sparse False and MetaData
        CreateTime/LastUpdatedTime: `created` when given, else the object's own MetaData times
        when it carries them (restoring saved data), else now."""
        stored = self._place(canonical_entity(entity), copy_obj(obj), created)
        return copy_obj(stored)

    def load(self, entity: str, obj: dict[str, Any], *, created: datetime | None = None) -> None:
        """Like insert(), for seeding inside bulk(): the realm takes `obj` itself instead of a copy.

        Copying is most of the cost of loading 200,000 objects, and a seed never touches an object
        again once handed over, so the copies buy nothing there."""
        if self._bulk_depth == 0:
            raise RuntimeError("Realm.load() hands objects over without copying: use it inside bulk()")
        self._place(canonical_entity(entity), obj, created)

    def _place(self, name: str, stored: dict[str, Any], created: datetime | None) -> dict[str, Any]:
        with self.lock:
            table = self._tables[name]
            oid = self._allocate_id(stored.get("Id"))
            if oid in table.objects:
                raise ValueError(
                    f"{name} {oid} already exists in realm {self.realm_id}: use put() to replace it"
                )
            stored["Id"] = oid
            stored.setdefault("SyncToken", "0")
            stored["domain"] = "QBO"
            stored["sparse"] = False
            meta = dict(stored.get("MetaData") or {})
            when = created or self.clock.now()
            stamp = self.format_time(when)
            if created is not None or "CreateTime" not in meta:
                meta["CreateTime"] = stamp
            if created is not None or "LastUpdatedTime" not in meta:
                meta["LastUpdatedTime"] = stamp
            stored["MetaData"] = meta
            table.add(stored, deferred=self._bulk_depth > 0)
            self._event(name, oid, "Create", when)
            return stored

    def install(
        self, entity: str, obj: dict[str, Any], *, created: datetime | None = None
    ) -> None:
        """Store an object a company has from its creation (its Preferences), with the Id it
        carries, created at `created` (now by default), replacing the one installed before: no
        change event, and the Id counter of the objects people create is untouched."""
        with self.lock:
            stored = copy_obj(obj)
            stamp = self.format_time(created or self.clock.now())
            stored.setdefault("SyncToken", "0")
            stored["domain"] = "QBO"
            stored["sparse"] = False
            stored["MetaData"] = {"CreateTime": stamp, "LastUpdatedTime": stamp}
            table = self._tables[canonical_entity(entity)]
            old = table.objects.get(str(stored["Id"]))
            if old is None:
                table.add(stored, deferred=self._bulk_depth > 0)
            else:
                table.replace(old, stored, deferred=self._bulk_depth > 0)

    def get(self, entity: str, id: str) -> dict[str, Any] | None:
        obj = self._tables[canonical_entity(entity)].objects.get(str(id))
        return None if obj is None else copy_obj(obj)

    def put(self, entity: str, obj: dict[str, Any], *, operation: str = "Update") -> dict[str, Any]:
        """Replace an existing object by obj["Id"]: SyncToken + 1, LastUpdatedTime now,
        CreateTime kept. Raises UnknownObject when there is nothing to replace."""
        name = canonical_entity(entity)
        with self.lock:
            table = self._tables[name]
            oid = str(obj.get("Id", ""))
            old = table.objects.get(oid)
            if old is None:
                raise UnknownObject(f"{name} {oid!r} does not exist in realm {self.realm_id}")
            now = self.clock.now()
            stored = copy_obj(obj)
            stored["Id"] = oid
            stored["domain"] = "QBO"
            stored["sparse"] = False
            stored["SyncToken"] = str(int(old.get("SyncToken", "0")) + 1)
            meta = dict(stored.get("MetaData") or {})
            meta["CreateTime"] = old["MetaData"]["CreateTime"]
            meta["LastUpdatedTime"] = self.format_time(now)
            stored["MetaData"] = meta
            table.replace(old, stored, deferred=self._bulk_depth > 0)
            self._event(name, oid, operation, now)
            return copy_obj(stored)

    def remove(self, entity: str, id: str) -> dict[str, Any]:
        """Delete an object, keeping a tombstone so CDC reports the deletion."""
        name = canonical_entity(entity)
        with self.lock:
            table = self._tables[name]
            oid = str(id)
            old = table.objects.get(oid)
            if old is None:
                raise UnknownObject(f"{name} {oid!r} does not exist in realm {self.realm_id}")
            now = self.clock.now()
            table.discard(old, deferred=self._bulk_depth > 0)
            table.tombstones[oid] = {
                "domain": "QBO",
                "status": "Deleted",
                "Id": oid,
                "MetaData": {"LastUpdatedTime": self.format_time(now)},
            }
            self._event(name, oid, "Delete", now)
            return copy_obj(old)

    # -- reads -------------------------------------------------------------------------------

    def iter(self, entity: str) -> Iterator[dict[str, Any]]:
        """Every object in Id order, as read-only views (do not mutate them)."""
        table = self.table(entity)
        objects = table.objects
        return (objects[oid] for oid in list(table.ids_in_order()))

    def count(self, entity: str) -> int:
        return len(self._tables[canonical_entity(entity)].objects)

    def query(self, text: str) -> dict[str, Any]:
        """Run a QBO query statement; returns the body of "QueryResponse" (objects are copies).
        Raises QueryError for malformed statements."""
        from qbo_sandbox.query import execute  # the query engine builds on this module

        with self.lock:
            return execute(self, text)

    def changed_since(
        self, entities: list[str], since: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        """Objects whose LastUpdatedTime >= since, then tombstones of those deleted since, per entity."""
        result: dict[str, list[dict[str, Any]]] = {}
        with self.lock:
            for entity in entities:
                name = canonical_entity(entity)
                table = self.table(name)
                entries = table.sorted_index("MetaData.LastUpdatedTime")
                start = bisect.bisect_left(entries, (since,))
                changed = [copy_obj(table.objects[str(oid)]) for _, oid in entries[start:]]
                for tomb in table.tombstones.values():
                    deleted_at = parse_time(tomb["MetaData"]["LastUpdatedTime"], self.tz)
                    if deleted_at is not None and deleted_at >= since:
                        changed.append(copy_obj(tomb))
                result[name] = changed
        return result

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Fast loading: no change events, index maintenance deferred to the end."""
        with self.lock:
            self._bulk_depth += 1
            # Hundreds of thousands of new long-lived dicts would trigger the cyclic garbage
            # collector over and over; JSON trees hold no cycles, so pause it while loading.
            collecting = self._bulk_depth == 1 and gc.isenabled()
            if collecting:
                gc.disable()
            try:
                yield
            finally:
                self._bulk_depth -= 1
                if self._bulk_depth == 0:
                    for table in self._tables.values():
                        if table.indexes_stale:
                            table.rebuild()
                if collecting:
                    gc.freeze()  # the loaded data is long-lived: keep it out of future collections
                    gc.enable()

    # -- requestid deduplication ---------------------------------------------------------

    def remember_response(self, request_id: str, status: int, body: bytes) -> None:
        with self.lock:
            self._responses[request_id] = (status, body)
            while len(self._responses) > REMEMBERED_RESPONSES:
                self._responses.popitem(last=False)

    def recall_response(self, request_id: str) -> tuple[int, bytes] | None:
        with self.lock:
            return self._responses.get(request_id)


class Store:
    """Every company in the sandbox, and the listeners told about each change."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self._realms: dict[str, Realm] = {}
        self._listeners: list[Callable[[ChangeEvent], None]] = []
        self._lock = threading.Lock()

    def create_realm(self, realm_id: str, *, tz: str = "America/Los_Angeles") -> Realm:
        with self._lock:
            if realm_id in self._realms:
                raise ValueError(f"realm {realm_id} already exists: drop it first to recreate it")
            realm = Realm(realm_id, tz=ZoneInfo(tz), clock=self.clock, emit=self._emit)
            # Every QuickBooks company has its Preferences from the start (home currency USD,
            # multicurrency off); the query engine and GET /preferences read them.
            from qbo_sandbox.currency import default_preferences  # builds on this module

            realm.install("Preferences", default_preferences())
            self._realms[realm_id] = realm
            return realm

    def realm(self, realm_id: str) -> Realm:
        try:
            return self._realms[realm_id]
        except KeyError:
            raise UnknownRealm(f"no company with realm id {realm_id!r} in the sandbox") from None

    def drop_realm(self, realm_id: str) -> None:
        with self._lock:
            if self._realms.pop(realm_id, None) is None:
                raise UnknownRealm(f"no company with realm id {realm_id!r} in the sandbox")

    def realm_ids(self) -> list[str]:
        return list(self._realms)

    def subscribe(self, listener: Callable[[ChangeEvent], None]) -> None:
        self._listeners.append(listener)

    def _emit(self, event: ChangeEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
