"""Migrations 0003 and 0004 build the bot's tables exactly as the code declares them (the bot's
models, the email links, slack_sdk's installation and state stores), and go back down cleanly."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData, inspect

from bot.email.models import EmailBase
from bot.models import BotBase, slack_store_metadata
from sync.db import downgrade_database, make_engine, upgrade_database

BOT_METADATA: list[MetaData] = [BotBase.metadata, EmailBase.metadata, slack_store_metadata()]
BOT_TABLES = {name for metadata in BOT_METADATA for name in metadata.tables}


def _state(connection: Connection) -> dict[str, Any]:
    def bot_tables(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name in BOT_TABLES

    migration = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": bot_tables}
    )
    return {
        "tables": set(inspect(connection).get_table_names()),
        "drift": compare_metadata(migration, BOT_METADATA),
    }


async def _inspect(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_state)
    finally:
        await engine.dispose()


async def test_bot_tables_match_their_declarations_and_downgrade(db_url: str) -> None:
    await upgrade_database(db_url)
    state = await _inspect(db_url)
    assert BOT_TABLES <= state["tables"]
    assert state["drift"] == []

    await downgrade_database(db_url, "0002")
    assert (await _inspect(db_url))["tables"] & BOT_TABLES == set()
    await upgrade_database(db_url)
    assert BOT_TABLES <= (await _inspect(db_url))["tables"]
