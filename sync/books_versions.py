"""A version of each business's books: a number that changes in the same transaction as any
write, so figures read at one version may be reused for as long as the version stands.

Every statement that writes (INSERT, UPDATE, DELETE, …) is noticed on its connection. When a
session commits a transaction that wrote, it bumps the version of the business it works for
(`for_business`), or the version of every business (`ANY_BUSINESS`) when it names none, as its
last statement, in the same transaction: a reader that sees a version sees at least the writes it
stands for, in any process. Only the tables named in `NOT_BOOKS` (what no figure is made from)
leave the versions alone.

The bump comes after everything else the transaction does (its pending changes are flushed
first), so a transaction takes the version's row lock last and holds it only while committing:
two writers of one business queue there and never deadlock on it.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BigInteger, Column, Connection, String, Table, event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from sync.db import SyncBase

#: The row whose version every business's figures also depend on: bumped by writes that do not
#: say which business they are for.
ANY_BUSINESS = "*"

#: Tables no figure is read from: writing them changes no version.
NOT_BOOKS = frozenset({"books_versions", "chart_images"})

books_versions = Table(
    "books_versions",
    SyncBase.metadata,
    Column("business_id", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
)

_TENANT = "oodaloo_books_business"
_WROTE = "oodaloo_books_wrote"
# The table a write names: INSERT INTO t, UPDATE t, DELETE FROM t (quoted or with a schema).
_WRITE = re.compile(
    r"^\s*(?:WITH\b.*?\)\s*)?(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO"
    r"|TRUNCATE(?:\s+TABLE)?|REPLACE\s+INTO)\s+(?:ONLY\s+)?(?:\"?\w+\"?\.)?\"?(\w+)\"?",
    re.IGNORECASE | re.DOTALL,
)
_BUMP = text(
    "INSERT INTO books_versions (business_id, version) VALUES (:business_id, 1) "
    "ON CONFLICT (business_id) DO UPDATE SET version = books_versions.version + 1"
)


def written_table(statement: str) -> str | None:
    """The table a statement writes, or None for a read (or anything else)."""
    found = _WRITE.match(statement)
    return found.group(1).lower() if found else None


def _began(connection: Connection) -> None:
    connection.info.pop(_WROTE, None)


def _executing(connection: Connection, cursor: Any, statement: str, *args: Any) -> None:
    table = written_table(statement)
    if table is not None and table not in NOT_BOOKS:
        connection.info[_WROTE] = True


def track_writes(engine: AsyncEngine) -> None:
    """Note on each of `engine`'s connections whether its transaction wrote to the books (once
    per engine, however often it is asked)."""
    sync_engine = engine.sync_engine
    if not event.contains(sync_engine, "before_cursor_execute", _executing):
        event.listen(sync_engine, "begin", _began)
        event.listen(sync_engine, "before_cursor_execute", _executing)


class VersionedSession(Session):
    """A session whose committed writes bump the books' version (see the module)."""


@event.listens_for(VersionedSession, "before_commit")
def _bump_on_commit(session: Session) -> None:
    if not session.in_transaction():
        return
    session.flush()  # pending changes first: the version is the transaction's last write
    connection = session.connection()
    if not connection.info.pop(_WROTE, False):
        return
    business = session.info.get(_TENANT) or ANY_BUSINESS
    connection.execute(_BUMP, {"business_id": business})


def for_business(session: AsyncSession, business_id: str) -> None:
    """Say which business `session` writes for: its commits bump that business's version only."""
    session.info[_TENANT] = business_id


async def books_version(session: AsyncSession, business_id: str) -> tuple[int, int]:
    """The business's version and every business's (0 before any write): the figures read at
    one pair stand while it does."""
    result = await session.execute(
        select(books_versions.c.business_id, books_versions.c.version).where(
            books_versions.c.business_id.in_((business_id, ANY_BUSINESS))
        )
    )
    found: dict[str, int] = {business: version for business, version in result}
    return found.get(business_id, 0), found.get(ANY_BUSINESS, 0)
