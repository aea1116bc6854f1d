"""QBO's query language over a realm's indexed tables.

    SELECT * | COUNT(*) FROM Entity [WHERE cond AND cond ...] [ORDERBY|ORDER BY field [ASC|DESC], ...]
    [STARTPOSITION n] [MAXRESULTS n]

where cond is `field op literal` (op: = < > <= >=), `field IN (lit, ...)` or `field LIKE 'pat%'`.
QBO has no OR, joins or projections; like QBO's parser we refuse them with a QueryError.

Plans use the table's indexes: equality on hash-indexed fields and Id narrows to a candidate set;
a range on a sorted field reads a slice of its sorted index; ordering by an indexed field walks that
index and stops as soon as the page is full, so a page costs about its own size, not the realm's.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from qbo_sandbox.store import (
    HASH_INDEXED,
    SORTED_INDEXED,
    EntityTable,
    QueryError,
    Realm,
    UnknownEntity,
    canonical_entity,
    copy_obj,
    field_getter,
    hash_key,
    sort_key,
)

__all__ = ["QueryError", "Statement", "execute", "parse"]

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000
# Above this many rows in a range, walking the ORDER BY index beats sorting the range.
_MATERIALIZE_LIMIT = 5_000
# Larger than any numeric Id: (key, _AFTER_ALL_IDS) sorts after every index entry with that key.
_AFTER_ALL_IDS = 1 << 63

_PARSE_ERROR = "Error parsing query"

# Kinds of the fields clients filter and order on; others are inferred from their values.
_FIELD_KINDS: dict[str, str] = {
    "Id": "num",
    "DocNumber": "str",
    "DisplayName": "str",
    "VendorRef": "str",
    "CustomerRef": "str",
    "AccountType": "str",
    "Active": "bool",
    **SORTED_INDEXED,
}
_CANONICAL_FIELDS = {name.lower(): name for name in _FIELD_KINDS}

# What QBO lets a WHERE or ORDERBY name, per entity: the properties its API reference marks
# "filterable" or "sortable" (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/bill
# and its sibling pages), plus Id and the MetaData times every entity has. Anything else answers
# 4001 "Invalid query", as QBO does (https://github.com/ruckus/quickbooks-ruby/issues/403):
# "QueryValidationError: property 'PrimaryEmailAddr' is not queryable" for a property the entity
# has, "QueryValidationError: Property BillAddr not found for Entity Customer" for one it lacks.
# The pages for Account, Vendor, Customer, Purchase, Deposit and Transfer mark nothing; their lists
# follow what QBO is known to accept (Purchase refuses AccountRef, EntityRef and DepartmentRef:
# https://github.com/laf-rge/quickbooks-mcp/issues/8).
_EVERYWHERE = ("Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime")
_QUERYABLE_PROPERTIES: dict[str, tuple[str, ...]] = {
    "CompanyInfo": (),
    "Account": (
        "Name",
        "SubAccount",
        "ParentRef",
        "Description",
        "Active",
        "Classification",
        "AccountType",
        "FullyQualifiedName",
        "CurrentBalance",
        "CurrentBalanceWithSubAccounts",
    ),
    "Vendor": (
        "DisplayName",
        "GivenName",
        "MiddleName",
        "FamilyName",
        "CompanyName",
        "PrintOnCheckName",
        "Active",
        "Balance",
    ),
    "Customer": (
        "DisplayName",
        "GivenName",
        "MiddleName",
        "FamilyName",
        "CompanyName",
        "FullyQualifiedName",
        "PrimaryEmailAddr",
        "Active",
        "Balance",
        "Job",
        "ParentRef",
    ),
    "Bill": (
        "VendorRef",
        "TxnDate",
        "APAccountRef",
        "SalesTermRef",
        "TotalAmt",
        "DueDate",
        "DocNumber",
        "Balance",
    ),
    "BillPayment": (
        "VendorRef",
        "TotalAmt",
        "DocNumber",
        "TxnDate",
        "APAccountRef",
        "CheckPayment",
        "CreditCardPayment",
    ),
    "Invoice": (
        "CustomerRef",
        "DocNumber",
        "ProjectRef",
        "TxnDate",
        "SalesTermRef",
        "DueDate",
        "Balance",
        "TotalAmt",
    ),
    "Payment": ("TotalAmt", "CustomerRef", "TxnDate", "PaymentMethodRef", "PaymentRefNum"),
    "Purchase": ("DocNumber", "TxnDate", "PaymentType", "TotalAmt"),
    "Deposit": ("TxnDate",),
    "Transfer": ("TxnDate",),
    "SalesReceipt": ("CustomerRef", "ProjectRef", "TxnDate", "DocNumber", "TotalAmt", "Balance"),
    "RefundReceipt": (
        "ProjectRef",
        "TxnDate",
        "CheckPayment",
        "DocNumber",
        "CreditCardPayment",
        "CustomerRef",
        "PaymentType",
        "Balance",
    ),
    "JournalEntry": ("DocNumber", "TxnDate"),
    "VendorCredit": ("DocNumber", "APAccountRef", "TxnDate", "TotalAmt", "Balance", "VendorRef"),
    "CreditMemo": (
        "CustomerRef",
        "ProjectRef",
        "TxnDate",
        "SalesTermRef",
        "DocNumber",
        "Balance",
    ),
    "Item": (
        "Name",
        "Type",
        "Taxable",
        "Active",
        "FullyQualifiedName",
        "SubItem",
        "UnitPrice",
        "PurchaseCost",
    ),
    "Term": ("Name", "Active"),
    "Preferences": (),
    "CreditCardPaymentTxn": ("VendorRef", "TxnDate"),
    "CompanyCurrency": ("Active", "Code", "Name"),
    "ExchangeRate": ("AsOfDate", "SourceCurrencyCode"),
}
_QUERYABLE: dict[str, dict[str, str]] = {
    entity: {name.lower(): name for name in (*_EVERYWHERE, *names)}
    for entity, names in _QUERYABLE_PROPERTIES.items()
}
# Properties every transaction or name has, though QBO filters on none of them.
_UNQUERYABLE_COMMON = frozenset(
    name.lower()
    for name in (
        "SyncToken",
        "MetaData",
        "domain",
        "sparse",
        "Line",
        "LinkedTxn",
        "PrivateNote",
        "CurrencyRef",
        "ExchangeRate",
        "DepartmentRef",
        "TxnTaxDetail",
    )
)
# How many stored objects are looked at to tell a property the entity has from one it lacks.
_PROPERTY_SAMPLE = 50
_INVALID_QUERY = "Invalid query"


# ---------------------------------------------------------------------------------------------
# Tokens and parsing.

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class Token:
    kind: str  # "str" | "num" | "op" | "punct" | "ident" | "end"
    text: str
    column: int  # 1-based, as QBO reports it

    @property
    def word(self) -> str:
        return self.text.upper() if self.kind == "ident" else ""


def _tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None or match.lastgroup is None:
            column = pos + 1 + (len(text[pos:]) - len(text[pos:].lstrip()))
            bad = text[column - 1 : column + 9]
            raise QueryError(
                _PARSE_ERROR,
                f'QueryParserError: Encountered "{bad}" at line 1, column {column}. '
                "Was expecting a field, a literal, an operator or a keyword.",
            )
        kind = match.lastgroup
        tokens.append(Token(kind, match.group(kind), match.start(kind) + 1))
        pos = match.end()
    tokens.append(Token("end", "<EOF>", end + 1))
    return tokens


def _unquote(literal: str) -> str:
    # QBO escapes a quote as \' ; a doubled backslash is one backslash; others stay as written.
    return _ESCAPE.sub(lambda m: m.group(1) if m.group(1) in "'\\" else m.group(0), literal[1:-1])


@dataclass(frozen=True)
class Literal:
    value: str | Decimal | bool


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # "=", "<", ">", "<=", ">=", "IN", "LIKE"
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class OrderBy:
    field: str
    descending: bool


@dataclass
class Statement:
    entity: str
    count: bool = False
    where: list[Condition] = field(default_factory=list)
    order: list[OrderBy] = field(default_factory=list)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def fail(self, expecting: str) -> QueryError:
        tok = self.tok
        return QueryError(
            _PARSE_ERROR,
            f'QueryParserError: Encountered "{tok.text}" at line 1, column {tok.column}. '
            f"Was expecting {expecting}.",
        )

    def take(self) -> Token:
        tok = self.tok
        self.pos += 1
        return tok

    def keyword(self, *words: str) -> str | None:
        if self.tok.word in words:
            return self.take().word
        return None

    def expect_keyword(self, word: str) -> None:
        if self.keyword(word) is None:
            raise self.fail(f'"{word}"')

    def expect_punct(self, char: str) -> None:
        if self.tok.kind == "punct" and self.tok.text == char:
            self.take()
            return
        raise self.fail(f'"{char}"')

    def integer(self, clause: str) -> int:
        tok = self.tok
        text = _unquote(tok.text) if tok.kind == "str" else tok.text
        if tok.kind in ("num", "str") and text.isdigit():
            self.take()
            return int(text)
        raise self.fail(f"a whole number after {clause}")

    def literal(self) -> Literal:
        tok = self.tok
        if tok.kind == "str":
            self.take()
            return Literal(_unquote(tok.text))
        if tok.kind == "num":
            self.take()
            return Literal(Decimal(tok.text))
        if tok.word in ("TRUE", "FALSE"):
            self.take()
            return Literal(tok.word == "TRUE")
        raise self.fail("a quoted string, a number, true or false")

    def field_name(self) -> str:
        tok = self.tok
        if tok.kind != "ident" or tok.word in _KEYWORDS:
            raise self.fail("a field name")
        self.take()
        return _CANONICAL_FIELDS.get(tok.text.lower(), tok.text)

    def statement(self) -> Statement:
        self.expect_keyword("SELECT")
        count = False
        if self.tok.kind == "punct" and self.tok.text == "*":
            self.take()
        elif self.keyword("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            raise self.fail('"*" or "COUNT(*)" (QBO queries have no projections)')
        self.expect_keyword("FROM")
        entity_tok = self.tok
        if entity_tok.kind != "ident":
            raise self.fail("an entity name")
        self.take()
        try:
            entity = canonical_entity(entity_tok.text)
        except UnknownEntity:
            raise QueryError(
                _PARSE_ERROR,
                f"QueryValidationError: Invalid entity {entity_tok.text!r} at column "
                f"{entity_tok.column}: not an entity this company can be queried for.",
            ) from None
        stmt = Statement(entity=entity, count=count)
        if self.keyword("WHERE"):
            stmt.where.append(self.condition())
            while self.keyword("AND"):
                stmt.where.append(self.condition())
        if self.keyword("ORDERBY") or (self.keyword("ORDER") and self._by()):
            stmt.order.append(self.order_item())
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                stmt.order.append(self.order_item())
        if self.keyword("STARTPOSITION"):
            stmt.start_position = self.integer("STARTPOSITION")
            if stmt.start_position < 1:
                raise QueryError(
                    _PARSE_ERROR, "QueryValidationError: STARTPOSITION starts at 1 (it is 1-based)."
                )
        if self.keyword("MAXRESULTS"):
            stmt.max_results = self.integer("MAXRESULTS")
            if not 1 <= stmt.max_results <= MAX_RESULTS_LIMIT:
                raise QueryError(
                    _PARSE_ERROR,
                    f"QueryValidationError: MAXRESULTS must be between 1 and {MAX_RESULTS_LIMIT}; "
                    "page through larger results with STARTPOSITION.",
                )
        if self.tok.kind != "end":
            raise self.fail(
                '"AND", "ORDERBY", "STARTPOSITION", "MAXRESULTS" or the end of the query'
            )
        return stmt

    def _by(self) -> bool:
        self.expect_keyword("BY")
        return True

    def order_item(self) -> OrderBy:
        name = self.field_name()
        direction = self.keyword("ASC", "DESC")
        return OrderBy(name, direction == "DESC")

    def condition(self) -> Condition:
        name = self.field_name()
        tok = self.tok
        if tok.kind == "op" and tok.text in ("=", "<", ">", "<=", ">="):
            self.take()
            return Condition(name, tok.text, (self.literal(),))
        if self.keyword("IN"):
            self.expect_punct("(")
            values = [self.literal()]
            while self.tok.kind == "punct" and self.tok.text == ",":
                self.take()
                values.append(self.literal())
            self.expect_punct(")")
            return Condition(name, "IN", tuple(values))
        if self.keyword("LIKE"):
            if self.tok.kind != "str":
                raise self.fail("a quoted pattern after LIKE")
            return Condition(name, "LIKE", (self.literal(),))
        raise self.fail('one of "=", "<", ">", "<=", ">=", "IN", "LIKE"')


_KEYWORDS = frozenset(
    "SELECT COUNT FROM WHERE AND OR NOT IN LIKE ORDER ORDERBY BY ASC DESC "
    "STARTPOSITION MAXRESULTS".split()
)


def parse(text: str) -> Statement:
    """Parse a QBO query statement; raises QueryError the way QBO's parser refuses one."""
    return _Parser(text).statement()


# ---------------------------------------------------------------------------------------------
# Evaluation.


def _value_kind(name: str, value: Any) -> str:
    known = _FIELD_KINDS.get(name)
    if known is not None:
        return known
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (Decimal, int, float)):
        return "num"
    lowered = name.lower()
    if lowered.endswith("date") or lowered.endswith("time"):
        return "time"
    return "str"


def _literal_key(literal: Literal, kind: str, realm: Realm) -> Any:
    value = literal.value
    if kind == "str":
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    return sort_key(value, kind, realm.tz)


def _field_value_ci(obj: dict[str, Any], path: str) -> Any:
    """Like field_value, also accepting field names in any letter case."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        if part in current:
            current = current[part]
            continue
        lowered = part.lower()
        for key, value in current.items():
            if key.lower() == lowered:
                current = value
                break
        else:
            return None
    if isinstance(current, dict) and "value" in current:
        return current["value"]
    return current


def _accessor(name: str) -> Callable[[dict[str, Any]], Any]:
    if name in _FIELD_KINDS:
        return field_getter(name) if name != "Id" else (lambda obj: obj.get("Id"))
    return lambda obj: _field_value_ci(obj, name)


def _like(pattern: str) -> re.Pattern[str]:
    parts = (re.escape(piece) for piece in pattern.split("%"))
    return re.compile(".*".join(parts), re.IGNORECASE | re.DOTALL)


def _predicate(cond: Condition, realm: Realm) -> Callable[[dict[str, Any]], bool]:
    get = _accessor(cond.field)
    name = cond.field
    if cond.op == "LIKE":
        regex = _like(str(cond.values[0].value))

        def like(obj: dict[str, Any]) -> bool:
            value = get(obj)
            return value is not None and regex.fullmatch(hash_key(value) or "") is not None

        return like

    cache: dict[str, list[Any]] = {}

    def literal_keys(kind: str) -> list[Any]:
        if kind not in cache:
            cache[kind] = [_literal_key(lit, kind, realm) for lit in cond.values]
        return cache[kind]

    op = cond.op

    def test(obj: dict[str, Any]) -> bool:
        value = get(obj)
        if value is None:
            return False
        kind = _value_kind(name, value)
        key = sort_key(value, kind, realm.tz)
        if key is None:
            return False
        keys = literal_keys(kind)
        if op == "IN":
            return key in keys
        other = keys[0]
        if other is None:
            return False
        try:
            if op == "=":
                return bool(key == other)
            if op == "<":
                return bool(key < other)
            if op == ">":
                return bool(key > other)
            if op == "<=":
                return bool(key <= other)
            return bool(key >= other)
        except TypeError:
            return False  # e.g. a date-only value against a datetime literal without zone

    return test


def _candidate_ids(cond: Condition, table: EntityTable) -> set[str] | None:
    """Ids matching a condition through a hash index (=, IN, LIKE), or None if none applies."""
    if cond.field == "Id" and cond.op in ("=", "IN"):
        ids: set[str] = set()
        for lit in cond.values:
            key = _id_text(lit.value)
            if key in table.objects:
                ids.add(key)
        return ids
    if cond.field not in HASH_INDEXED:
        return None
    if cond.op == "LIKE":
        # Match the distinct values, not every object: far fewer regex runs.
        regex = _like(str(cond.values[0].value))
        ids = set()
        for key, matching in table.hash_index(cond.field).items():
            if regex.fullmatch(key) is not None:
                ids |= matching
        return ids
    if cond.op not in ("=", "IN"):
        return None
    ids = set()
    for lit in cond.values:
        hkey = _id_text(lit.value) if isinstance(lit.value, Decimal) else hash_key(lit.value)
        if hkey is not None:
            ids |= table.lookup(cond.field, hkey)
    return ids


def _id_text(value: str | Decimal | bool) -> str:
    if isinstance(value, Decimal) and value == value.to_integral():
        return str(int(value))
    return str(value)


def _index_range(cond: Condition, table: EntityTable, realm: Realm) -> tuple[int, int] | None:
    """Positions [lo, hi) in the field's sorted index matching a range condition, or None."""
    kind = SORTED_INDEXED.get(cond.field)
    if kind is None or cond.op not in ("=", "<", ">", "<=", ">="):
        return None
    key = _literal_key(cond.values[0], kind, realm)
    entries = table.sorted_index(cond.field)
    if key is None:
        return (0, 0)
    lo, hi = 0, len(entries)
    if cond.op in ("=", ">="):
        lo = bisect.bisect_left(entries, (key,))
    elif cond.op == ">":
        lo = bisect.bisect_left(entries, (key, _AFTER_ALL_IDS))
    if cond.op in ("=", "<="):
        hi = bisect.bisect_left(entries, (key, _AFTER_ALL_IDS))
    elif cond.op == "<":
        hi = bisect.bisect_left(entries, (key,))
    return (lo, max(lo, hi))


def _compare_keys(a: list[Any], b: list[Any], order: list[OrderBy]) -> int:
    for ka, kb, item in zip(a, b, order, strict=True):
        if ka == kb:
            continue
        if ka is None:  # objects without the field come last either way
            return 1
        if kb is None:
            return -1
        try:
            less = ka < kb
        except TypeError:
            less = str(ka) < str(kb)
        result = -1 if less else 1
        return -result if item.descending else result
    return 0


def _order_key(name: str, value: Any, tz: Any) -> Any:
    if value is None:
        return None
    kind = _value_kind(name, value)
    key = sort_key(value, kind, tz)
    # Names sort as people read them: "inv-5" between "INV-4" and "O'Neil".
    return key.casefold() if kind == "str" and isinstance(key, str) else key


def _sorted(objs: list[dict[str, Any]], order: list[OrderBy], realm: Realm) -> list[dict[str, Any]]:
    """Objects in statement order; objects lacking an order field come last; ties by Id."""
    tz = realm.tz
    if len(order) == 1:
        item = order[0]
        get = _accessor(item.field)
        keyed: list[tuple[Any, int, dict[str, Any]]] = []
        lacking: list[dict[str, Any]] = []
        for obj in objs:
            key = _order_key(item.field, get(obj), tz)
            if key is None:
                lacking.append(obj)
            else:
                keyed.append((key, int(obj["Id"]), obj))
        try:
            keyed.sort(key=lambda entry: (entry[0], entry[1]), reverse=item.descending)
        except TypeError:  # values of mixed types in a free-form field: compare as text
            keyed.sort(key=lambda entry: (str(entry[0]), entry[1]), reverse=item.descending)
        lacking.sort(key=lambda obj: int(obj["Id"]))
        return [obj for _, _, obj in keyed] + lacking

    getters = [_accessor(item.field) for item in order]

    def keys(obj: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for item, get in zip(order, getters, strict=True):
            out.append(_order_key(item.field, get(obj), tz))
        out.append(int(obj["Id"]))
        return out

    full_order = [*order, OrderBy("Id", False)]
    pairs = [(keys(obj), obj) for obj in objs]

    def compare(x: tuple[list[Any], dict[str, Any]], y: tuple[list[Any], dict[str, Any]]) -> int:
        return _compare_keys(x[0], y[0], full_order)

    pairs.sort(key=functools.cmp_to_key(compare))
    return [obj for _, obj in pairs]


def _order_walk(
    table: EntityTable, item: OrderBy, lo: int = 0, hi: int | None = None
) -> Iterator[int]:
    """Numeric ids in the order of Id or of a sorted index ([lo, hi) of it), then, for a whole
    index, the objects lacking the field."""
    if item.field == "Id":
        yield from (reversed(table.order) if item.descending else table.order)
        return
    entries = table.sorted_index(item.field)
    end = len(entries) if hi is None else hi
    positions = range(end - 1, lo - 1, -1) if item.descending else range(lo, end)
    for pos in positions:
        yield entries[pos][1]
    if hi is None and len(entries) < len(table.objects):
        indexed = {oid for _, oid in entries}
        yield from (oid for oid in table.order if oid not in indexed)


def _order_slice(
    table: EntityTable, item: OrderBy, lo: int, hi: int | None, skip: int, take: int | None
) -> list[int]:
    """`_order_walk(...)[skip:skip + take]` without visiting the skipped entries."""
    stop = None if take is None else skip + take
    if item.field == "Id":
        ids = table.order
        if item.descending:
            n = len(ids)
            first = n - skip
            last = 0 if take is None else max(n - skip - take, 0)
            return ids[last : max(first, 0)][::-1]
        return ids[skip:stop]
    entries = table.sorted_index(item.field)
    end = len(entries) if hi is None else hi
    inside = end - lo
    lacking = hi is None and len(entries) < len(table.objects)
    if lacking and (stop is None or stop > inside):
        # The page reaches the objects lacking the field, listed after the index: walk to it.
        return list(itertools.islice(_order_walk(table, item, lo, hi), skip, stop))
    count = max(0, inside - skip if take is None else min(take, inside - skip))
    if item.descending:
        first = end - 1 - skip
        return [entries[p][1] for p in range(first, first - count, -1)]
    first = lo + skip
    return [entries[p][1] for p in range(first, first + count)]


Filter = Callable[[dict[str, Any]], bool]


def _page(
    ids: Iterable[int],
    table: EntityTable,
    filters: list[Filter],
    skip: int,
    take: int | None,
    allowed: set[int] | None = None,
) -> list[dict[str, Any]]:
    """Objects (in `ids` order) passing every filter, skipping `skip`, stopping after `take`."""
    out: list[dict[str, Any]] = []
    objects = table.objects
    for oid in ids:
        if allowed is not None and oid not in allowed:
            continue
        obj = objects[str(oid)]
        if filters and not all(f(obj) for f in filters):
            continue
        if skip:
            skip -= 1
            continue
        out.append(obj)
        if take is not None and len(out) >= take:
            break
    return out


def _objects(table: EntityTable, ids: Iterable[int]) -> list[dict[str, Any]]:
    objects = table.objects
    return [objects[str(oid)] for oid in ids]


def _window(objs: list[dict[str, Any]], skip: int, take: int | None) -> list[dict[str, Any]]:
    return objs[skip:] if take is None else objs[skip : skip + take]


def _select(
    stmt: Statement, table: EntityTable, realm: Realm, skip: int, take: int | None
) -> list[dict[str, Any]]:
    """The matching objects in statement order, paged (take None: all of them)."""
    order = stmt.order or [OrderBy("Id", False)]
    head = order[0]
    walkable = len(order) == 1 and (head.field == "Id" or head.field in SORTED_INDEXED)

    def filters_except(*used: Condition) -> list[Filter]:
        return [_predicate(c, realm) for c in stmt.where if all(c is not u for u in used)]

    # 1. Conditions a hash index answers: intersect their candidate sets, smallest first.
    candidates = [(ids, c) for c in stmt.where if (ids := _candidate_ids(c, table)) is not None]
    if candidates:
        candidates.sort(key=lambda pair: len(pair[0]))
        chosen = set(candidates[0][0])
        for other, _ in candidates[1:]:
            chosen &= other
        filters = filters_except(*(c for _, c in candidates))
        objs = [table.objects[oid] for oid in chosen]
        objs = [o for o in objs if all(f(o) for f in filters)]
        return _window(_sorted(objs, order, realm), skip, take)

    # 2. A range on a sorted index: only its slice of the index is read.
    spans = [(c, span) for c in stmt.where if (span := _index_range(c, table, realm)) is not None]
    if spans:
        same = [(c, span) for c, span in spans if walkable and c.field == head.field]
        cond, (lo, hi) = min(same or spans, key=lambda pair: pair[1][1] - pair[1][0])
        filters = filters_except(cond)
        if same:  # the range is already in the requested order
            if not filters:
                return _objects(table, _order_slice(table, head, lo, hi, skip, take))
            return _page(_order_walk(table, head, lo, hi), table, filters, skip, take)
        size = hi - lo
        total = len(table.objects)
        # Rows the ORDER BY walk visits before the page is full, if matches are spread evenly.
        walk_estimate = (skip + (total if take is None else take)) * total // max(size, 1)
        if walkable and size > _MATERIALIZE_LIMIT and walk_estimate < size:
            return _page(_order_walk(table, head), table, filters_except(), skip, take)
        in_range = [oid for _, oid in table.sorted_index(cond.field)[lo:hi]]
        if size <= _MATERIALIZE_LIMIT or not walkable:
            objs = [o for o in _objects(table, in_range) if all(f(o) for f in filters)]
            return _window(_sorted(objs, order, realm), skip, take)
        if head.field == "Id":
            in_range.sort(reverse=head.descending)
            if not filters:
                return _window(_objects(table, in_range), skip, take)
            return _page(in_range, table, filters, skip, take)
        return _page(_order_walk(table, head), table, filters, skip, take, allowed=set(in_range))

    # 3. No usable index for the filter: walk the ORDER BY index until the page is full.
    filters = filters_except()
    if walkable:
        if not filters:
            return _objects(table, _order_slice(table, head, 0, None, skip, take))
        return _page(_order_walk(table, head), table, filters, skip, take)
    objs = [o for o in table.objects.values() if all(f(o) for f in filters)]
    return _window(_sorted(objs, order, realm), skip, take)


def _checked(stmt: Statement, table: EntityTable) -> Statement:
    """The statement with its WHERE and ORDERBY properties spelled as QBO spells them; raises
    QueryError 4001 for a property QBO cannot filter or order on this entity."""
    queryable = _QUERYABLE.get(stmt.entity)
    if queryable is None:  # an entity without a documented list: QBO's answer is unknown
        return stmt

    def spelled(name: str) -> str:
        known = queryable.get(name.lower())
        if known is not None:
            return known
        head = name.split(".", 1)[0].lower()
        if head in _UNQUERYABLE_COMMON or any(
            head == key.lower()
            for obj in itertools.islice(table.objects.values(), _PROPERTY_SAMPLE)
            for key in obj
        ):
            raise QueryError(
                _INVALID_QUERY,
                f"QueryValidationError: property '{name}' is not queryable",
                code="4001",
            )
        raise QueryError(
            _INVALID_QUERY,
            f"QueryValidationError: Property {name} not found for Entity {stmt.entity}",
            code="4001",
        )

    stmt.where = [replace(c, field=spelled(c.field)) for c in stmt.where]
    stmt.order = [replace(o, field=spelled(o.field)) for o in stmt.order]
    return stmt


def _count(stmt: Statement, table: EntityTable, realm: Realm) -> int:
    if not stmt.where:
        return len(table.objects)
    if len(stmt.where) == 1:
        only = stmt.where[0]
        ids = _candidate_ids(only, table)
        if ids is not None:
            return len(ids)
        span = _index_range(only, table, realm)
        if span is not None:
            return span[1] - span[0]
    return len(_select(stmt, table, realm, 0, None))


def execute(realm: Realm, text: str) -> dict[str, Any]:
    """The body of QBO's "QueryResponse" for a statement (objects are copies)."""
    stmt = parse(text)
    table = realm.table(stmt.entity)
    stmt = _checked(stmt, table)
    if stmt.count:
        return {"totalCount": _count(stmt, table, realm)}
    rows = _select(stmt, table, realm, stmt.start_position - 1, stmt.max_results)
    if not rows:
        return {}
    # A page carries startPosition and maxResults (the rows on it); the total is what COUNT(*)
    # answers. QBO's query page lists only those attributes of a QueryResponse (developer.intuit.com
    # /docs/00_quickbooks_online/2_build/20_explore_the_quickbooks_online_api/50_data_queries) and
    # real pages have no totalCount (a 2024 sandbox capture: github.com/bkjboadu/betterbiz-backend).
    return {
        stmt.entity: [copy_obj(obj) for obj in rows],
        "startPosition": stmt.start_position,
        "maxResults": len(rows),
    }
