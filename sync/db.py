"""The database that holds Oodaloo's sync state: engine, sessions, column types and migrations.

SQLite (one file, the embedded default) and PostgreSQL (when a business outgrows one machine) are
both first-class. The column types here keep the two promises the ledger depends on whichever one
is used: money is an exact Decimal and every timestamp comes back timezone-aware in UTC.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import simplejson
from sqlalchemy import BigInteger, Connection, DateTime, MetaData, Numeric, Text, event, make_url
from sqlalchemy.engine import URL, Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.types import TypeDecorator, TypeEngine

#: The package the wheel carries the top-level `migrations/` folder as.
MIGRATIONS_PACKAGE = "oodaloo_migrations"


def migrations_dir() -> Path:
    """Where Alembic's scripts are: in a checkout (or an editable install of one) the repository's
    `migrations/` beside this package, so a checkout always runs its own; installed from the
    wheel, the package `oodaloo_migrations`, found through importlib.resources."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "alembic.ini").is_file() and (checkout / "migrations" / "env.py").is_file():
        return checkout / "migrations"
    try:
        packaged = importlib.resources.files(MIGRATIONS_PACKAGE)
    except ModuleNotFoundError:
        return checkout / "migrations"  # neither: _alembic_config says what is missing
    # Alembic reads the scripts from the file system; an installed wheel is unpacked there.
    return Path(str(packaged))


MIGRATIONS_DIR = migrations_dir()

#: How long a SQLite connection waits for another writer before giving up (seconds).
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0

#: Constraint names are deterministic so migrations can find them again on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Any fixed number: the PostgreSQL advisory lock that lets only one process migrate at a time.
_MIGRATION_LOCK_ID = 0x00DA100


class SyncBase(DeclarativeBase):
    """Declarative base for the tables the sync layer owns (action ledger, sync timing)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# --- Column types ---------------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp, stored in UTC.

    PostgreSQL keeps it as `timestamptz`. SQLite has no timezone support, so the value is stored as
    naive UTC text (which sorts and compares correctly) and handed back with `tzinfo=UTC`. A naive
    datetime is refused on the way in: it would silently mean different instants on different hosts.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.__class__ is datetime and value.tzinfo is UTC:
            # UTC already (what Oodaloo's clocks and parsers hand out): nothing to convert.
            return value.replace(tzinfo=None) if dialect.name == "sqlite" else value
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()} refused: pass a timezone-aware datetime "
                "(for example datetime.now(UTC))"
            )
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


CENT = Decimal("0.01")
_MAX_MONEY = Decimal("9999999999999999.99")  # what NUMERIC(18, 2) can hold


def exact_cents(value: object, what: str = "amount") -> Decimal:
    """`value` as a Decimal with exactly two places, refusing anything that would lose money.

    Floats are refused outright (they cannot represent most cent amounts); so are sub-cent
    fractions, NaN/infinity, and amounts too large for NUMERIC(18, 2).
    """
    if value.__class__ is Decimal:  # the usual case, checked first: every row's amounts pass here
        amount = value
    elif isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(
            f"{what} must be a Decimal (or int), got {type(value).__name__} {value!r}; "
            "parse amounts with simplejson use_decimal=True or Decimal('12.34')"
        )
    else:
        amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{what} must be a finite number, got {amount}")
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation as exc:
        raise ValueError(f"{what} {amount} is too large to hold in cents") from exc
    if cents != amount:
        raise ValueError(f"{what} {amount} has a fraction of a cent; amounts must be whole cents")
    if abs(cents) > _MAX_MONEY:
        raise ValueError(f"{what} {amount} exceeds the largest storable amount {_MAX_MONEY}")
    return abs(cents) if cents == 0 else cents  # no negative zero


class Money(TypeDecorator[Decimal]):
    """An exact money amount: NUMERIC(18, 2) on PostgreSQL, integer cents on SQLite.

    SQLite has no decimal type (its NUMERIC is a float underneath), so it stores the amount as a
    whole number of cents instead: exact, and still summable and sortable in SQL. Either way the
    value comes back as a Decimal with two places.
    """

    impl = Numeric(18, 2, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(18, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        cents = exact_cents(value)
        if dialect.name == "sqlite":
            return int(cents.scaleb(2))
        return cents

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            if not isinstance(value, int):
                raise TypeError(f"expected whole cents from SQLite, found {value!r}")
            return Decimal(value).scaleb(-2)
        return Decimal(value).quantize(CENT)


def dumps_decimal(value: Any) -> str:
    """JSON text for `value` with Decimals written exactly, keys sorted, no spaces."""
    text: str = simplejson.dumps(
        value, use_decimal=True, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return text


class EncodedJSON(str):
    """JSON text already written by `dumps_decimal`'s rules: a `DecimalJSON` column stores it as
    it is instead of encoding it as a string."""


def dumps_json_document(value: Any) -> str:
    """`dumps_decimal(value)`, the same text, for a value decoded from JSON text (dicts with string
    keys, lists, strings, ints, Decimals, booleans, None) in half the time: the standard library's
    encoder writes it, each Decimal as a marked string then unmarked. Anything else (a string
    holding the mark, another type) is written by `dumps_decimal` itself.

    Not for dicts with int keys: the two encoders sort those differently."""
    decimals = 0

    def marked(obj: Any) -> str:
        nonlocal decimals
        if obj.__class__ is not Decimal:
            raise TypeError(type(obj).__name__)
        decimals += 1
        return f"\x00{obj}\x00"

    encoder = json.JSONEncoder(
        check_circular=False,
        allow_nan=False,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=marked,
    )
    try:
        text = encoder.encode(value)
    except (TypeError, ValueError):
        return dumps_decimal(value)
    if not decimals:
        return text
    # Every escaped NUL must be a mark's (two per Decimal), or a string held one: start over.
    if text.count("\\u0000") != 2 * decimals:
        return dumps_decimal(value)
    return text.replace('"\\u0000', "").replace('\\u0000"', "")


def loads_decimal(text: str) -> Any:
    """Parse JSON text with every number that has a fraction kept as an exact Decimal."""
    return simplejson.loads(text, use_decimal=True)


class DecimalJSON(TypeDecorator[Any]):
    """JSON stored as text, Decimal-exact both ways (the database's own JSON types go via float)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value.__class__ is EncodedJSON:
            return str(value)
        return None if value is None else dumps_decimal(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else loads_decimal(value)


# --- Engines and sessions -------------------------------------------------------------------


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_in_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:")


def _use_wal(cursor: Any, locked_errors: tuple[type[Exception], ...]) -> None:
    """Put the file in WAL mode (once per file; later connections find it so). Switching needs the
    file to itself, and SQLite answers "locked" at once rather than waiting while another
    connection writes (two processes opening a new database together): try again until the busy
    timeout has passed."""
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_SECONDS
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except locked_errors as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)  # on the driver's own thread (aiosqlite), never the event loop's


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so the "begin" hook below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # The busy timeout makes a second writer wait its turn instead of failing with
            # "database is locked". It comes first: switching a new file to WAL (which lets
            # readers work while one writer writes) itself waits for another connection's lock.
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
            # The driver adapter raises its own OperationalError for sqlite3's.
            adapted = getattr(getattr(dbapi_connection, "dbapi", None), "OperationalError", None)
            _use_wal(cursor, (sqlite3.OperationalError, *([adapted] if adapted else [])))
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # SQLite cannot turn a read snapshot into a write lock once another writer has committed
        # (it fails at once, without waiting). Taking the write lock when a transaction starts
        # makes every transaction wait its turn under the busy timeout instead.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, *, connections: int | None = None, **engine_options: Any) -> AsyncEngine:
    """An async engine for `sqlite+aiosqlite://...` or `postgresql+asyncpg://...`.

    `connections`: how many connections the pool keeps (SQLAlchemy's pool_size; up to ten more
    are opened in a burst): at least as many as the process has pieces of work at once, so none
    waits for a connection. An in-memory SQLite database keeps its one.

    SQLite files get WAL, a busy timeout, foreign keys and write-locking transactions, and their
    folder is created if missing; `sqlite+aiosqlite://` alone is one shared in-memory database.
    For PostgreSQL, a `search_path` query parameter (`...?search_path=oodaloo`) puts every table
    in that schema. Extra keyword arguments go to `create_async_engine`.
    """
    parsed = make_url(url)
    if _is_sqlite(parsed):
        if _sqlite_in_memory(parsed):
            # An in-memory database lives and dies with its one connection: keep exactly one,
            # and let concurrent sessions queue for it rather than share it mid-transaction.
            engine_options.setdefault("poolclass", AsyncAdaptedQueuePool)
            engine_options.setdefault("pool_size", 1)
            engine_options.setdefault("max_overflow", 0)
            engine_options.setdefault("pool_recycle", -1)
        else:
            Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
            if connections is not None:
                engine_options.setdefault("pool_size", connections)
        engine = create_async_engine(parsed, **engine_options)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        search_path = parsed.query.get("search_path")
        if search_path is not None:
            if not isinstance(search_path, str):
                raise ValueError("search_path must be given once in the database URL")
            parsed = parsed.difference_update_query(["search_path"])
            connect_args = dict(engine_options.pop("connect_args", {}))
            server_settings = dict(connect_args.get("server_settings", {}))
            server_settings["search_path"] = search_path
            connect_args["server_settings"] = server_settings
            engine_options["connect_args"] = connect_args
        engine_options.setdefault("pool_pre_ping", True)
        if connections is not None:
            engine_options.setdefault("pool_size", connections)
        return create_async_engine(parsed, **engine_options)
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)}: "
        "use sqlite+aiosqlite:///path/to/oodaloo.db or postgresql+asyncpg://user@host/dbname"
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (results are handed back as plain data)
    and whose committed writes bump the books' version (`sync.books_versions`)."""
    from sync.books_versions import VersionedSession, track_writes

    track_writes(engine)
    return async_sessionmaker(engine, expire_on_commit=False, sync_session_class=VersionedSession)


# --- Migrations -----------------------------------------------------------------------------


def _alembic_config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise FileNotFoundError(
            f"Oodaloo's database migrations are missing (looked in {MIGRATIONS_DIR} and for the "
            f"package {MIGRATIONS_PACKAGE}): reinstall Oodaloo from its wheel, or run it from a "
            "checkout"
        )
    # Everything Oodaloo needs is set here, so an installed wheel needs no alembic.ini (the one in
    # the repository serves Alembic's own command line).
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    # The application has its own logging set-up; alembic.ini's must not replace it.
    config.attributes["configure_logger"] = False
    return config


#: The database's revisions before and after a migration (empty: no Oodaloo tables).
Revisions = tuple[tuple[str, ...], tuple[str, ...]]


def _run_migration(connection: Connection, operation: str, revision: str) -> Revisions:
    from alembic import command

    before = _current_revisions(connection)
    run = command.upgrade if operation == "upgrade" else command.downgrade
    run(_alembic_config(connection), revision)
    return before, _current_revisions(connection)


async def _migrate(url: str | URL, operation: str, revision: str) -> Revisions:
    engine = make_engine(url)
    try:
        # One migration at a time: PostgreSQL's advisory lock, SQLite's write lock (its
        # transactions begin IMMEDIATE). Whoever comes second finds the work done.
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql(
                    f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_ID})"
                )
            return await connection.run_sync(_run_migration, operation, revision)
    finally:
        await engine.dispose()


async def upgrade_database(url: str | URL, revision: str = "head") -> Revisions:
    """Bring the database at `url` up to `revision` (all migrations by default); safe to repeat
    and to run from several processes at once. Returns its revisions before and after, as seen
    under the migration lock."""
    return await _migrate(url, "upgrade", revision)


async def downgrade_database(url: str | URL, revision: str = "base") -> Revisions:
    """Take the database at `url` back down to `revision` (an empty schema by default)."""
    return await _migrate(url, "downgrade", revision)


# --- Where a database stands --------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaState:
    """The revisions a database is at, against the newest ones this code's migrations know."""

    #: The database's revisions (Alembic's `alembic_version`); empty: never migrated.
    current: tuple[str, ...]
    #: The newest revisions of the migrations this code carries.
    head: tuple[str, ...]
    #: Of `current`, the revisions these migrations do not know (a newer code migrated it).
    unknown: tuple[str, ...] = ()

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.head)


@functools.cache
def _known_revisions() -> tuple[tuple[str, ...], frozenset[str]]:
    """(head revisions, every revision) of the migrations; read once per process."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    every = frozenset(script.revision for script in scripts.walk_revisions())
    return tuple(sorted(scripts.get_heads())), every


def _current_revisions(connection: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def schema_state(database: str | URL | AsyncEngine) -> SchemaState:
    """Where the database (a URL, or an engine on it) stands against this code's migrations;
    changes nothing."""
    head, every = _known_revisions()
    engine = database if isinstance(database, AsyncEngine) else make_engine(database)
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(_current_revisions)
    finally:
        if engine is not database:
            await engine.dispose()
    return SchemaState(current, head, tuple(r for r in current if r not in every))
