"""Migration 0004 builds `email_link_uses` exactly as `bot.email.models` declares it, on SQLite and
PostgreSQL, and comes back down to 0003 without it."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest_email import db_url_fixture
from sqlalchemy import Connection, inspect

from bot.email.models import EmailBase, EmailLinkUse
from sync.db import downgrade_database, make_engine, upgrade_database

__all__ = ["db_url_fixture"]  # the fixture, imported for pytest

TABLE = EmailLinkUse.__tablename__


def _state(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())

    def email_tables_only(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name in EmailBase.metadata.tables

    migration = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": email_tables_only}
    )
    return {
        "revision": migration.get_current_revision(),
        "has_table": TABLE in tables,
        "drift": compare_metadata(migration, EmailBase.metadata) if TABLE in tables else None,
        "primary_key": inspector.get_pk_constraint(TABLE)["constrained_columns"]
        if TABLE in tables
        else None,
    }


async def _inspect(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_state)
    finally:
        await engine.dispose()


async def test_0004_matches_the_model_and_downgrades(db_url: str) -> None:
    await upgrade_database(db_url, "0004")
    state = await _inspect(db_url)
    assert state["revision"] == "0004" and state["has_table"]
    assert state["drift"] == []  # autogenerate finds nothing to change
    assert state["primary_key"] == ["nonce"]  # the once-only guard

    await downgrade_database(db_url, "0003")
    state = await _inspect(db_url)
    assert state["revision"] == "0003" and not state["has_table"]
