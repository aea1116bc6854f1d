"""Migrations build the sync-state tables from nothing, match the models, and come back down."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from db_conftest import db_url_fixture, run_in_transaction  # noqa: F401  (the db_url fixture)
from sqlalchemy import Connection, inspect

from sync.db import (
    MIGRATIONS_DIR,
    SyncBase,
    downgrade_database,
    upgrade_database,
)
from sync.ledger import ActionRow
from sync.timing import SyncTimingRow, UserActivityRow

SYNC_TABLES = {
    ActionRow.__tablename__,
    SyncTimingRow.__tablename__,
    UserActivityRow.__tablename__,
}


def _head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _schema_state(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    # Other layers' tables share the database (the runway domain's); this compares sync's own.
    def sync_tables_only(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name in SyncBase.metadata.tables

    migration = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": sync_tables_only}
    )
    return {
        "tables": tables,
        "revision": migration.get_current_revision(),
        "drift": compare_metadata(migration, SyncBase.metadata) if SYNC_TABLES <= tables else None,
        "unique": inspector.get_unique_constraints("qbo_actions")
        if "qbo_actions" in tables
        else [],
    }


async def _inspect(url: str) -> dict[str, Any]:
    return dict(await run_in_transaction(url, _schema_state))


async def test_upgrade_builds_every_table_matching_the_models(db_url: str) -> None:
    assert (await _inspect(db_url))["tables"] == set()

    await upgrade_database(db_url)

    state = await _inspect(db_url)
    assert SYNC_TABLES <= state["tables"]
    assert state["revision"] == _head_revision()
    # What the migration created is exactly what the code declares: autogenerate sees nothing to do.
    assert state["drift"] == []
    assert [c["column_names"] for c in state["unique"]] == [["key"]]


async def test_downgrade_returns_to_an_empty_schema_and_upgrade_works_again(db_url: str) -> None:
    await upgrade_database(db_url)

    await downgrade_database(db_url)

    state = await _inspect(db_url)
    assert state["tables"] & SYNC_TABLES == set()
    assert state["revision"] is None

    await upgrade_database(db_url)
    assert SYNC_TABLES <= (await _inspect(db_url))["tables"]


async def test_upgrading_twice_at_once_is_safe(db_url: str) -> None:
    # Two processes (the web app and the worker) start together and both migrate.
    await asyncio.gather(upgrade_database(db_url), upgrade_database(db_url))
    await upgrade_database(db_url)

    state = await _inspect(db_url)
    assert state["revision"] == _head_revision()
    assert state["drift"] == []
