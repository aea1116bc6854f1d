"""Migrations 0003 and 0004 build the bot's tables exactly as the code declares them (the bot's
models, the email links' once-only guard, slack_sdk's installation and state stores), and go back
down cleanly, one revision at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from db_conftest import run_in_transaction
from sqlalchemy import Connection, MetaData, inspect, text

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
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    return {
        "tables": tables,
        "revision": migration.get_current_revision(),
        "drift": compare_metadata(migration, BOT_METADATA),
        "link_key": inspector.get_pk_constraint("email_link_uses")["constrained_columns"]
        if "email_link_uses" in tables
        else None,
    }


async def _inspect(url: str) -> dict[str, Any]:
    return dict(await run_in_transaction(url, _state))


async def test_bot_tables_match_their_declarations_and_downgrade(db_url: str) -> None:
    await upgrade_database(db_url)
    state = await _inspect(db_url)
    assert BOT_TABLES <= state["tables"]
    assert state["drift"] == []  # autogenerate finds nothing to change
    assert state["link_key"] == ["nonce"]  # an email link is used once

    await downgrade_database(db_url, "0003")
    state = await _inspect(db_url)
    assert state["revision"] == "0003" and "email_link_uses" not in state["tables"]
    await downgrade_database(db_url, "0002")
    assert (await _inspect(db_url))["tables"] & BOT_TABLES == set()
    await upgrade_database(db_url)
    assert BOT_TABLES <= (await _inspect(db_url))["tables"]


async def test_digests_sent_before_0009_count_one_attempt_each_and_are_not_tried_again(
    db_url: str,
) -> None:
    await upgrade_database(db_url, "0008")
    engine = make_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO digest_runs (business_id, scheduled_for, started_at, posted_at, "
                    "emailed_to) VALUES ('biz-1', :due, :due, :due, '[]')"
                ),
                {"due": datetime(2026, 11, 30, 16, tzinfo=UTC)},
            )
        await upgrade_database(db_url)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT attempts, retry_at, given_up_at FROM digest_runs")
                )
            ).one()
        assert tuple(row) == (1, None, None)

        await downgrade_database(db_url, "0008")
        async with engine.connect() as connection:
            columns = await connection.run_sync(
                lambda sync: {c["name"] for c in inspect(sync).get_columns("digest_runs")}
            )
            assert {"attempts", "retry_at", "given_up_at"}.isdisjoint(columns)
            assert (await connection.execute(text("SELECT count(*) FROM digest_runs"))).scalar() == 1
    finally:
        await engine.dispose()
