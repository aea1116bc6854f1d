"""Database fixtures for the sync-state tests, on SQLite and on PostgreSQL.

Import them into a test module with `from db_conftest import db_url_fixture, migrated_fixture`.
`db_url` is an empty database: a fresh SQLite file, or a fresh PostgreSQL schema (selected through
the URL's `search_path`) that is dropped afterwards, so tests never see each other's rows and
parallel runs never collide. PostgreSQL comes from OODALOO_TEST_POSTGRES_URL (set by scripts/test);
without it the PostgreSQL cases skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from service_env import POSTGRES_ENV, required_service_url
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sync.db import MIGRATIONS_DIR, make_engine, make_sessionmaker, upgrade_database


def _postgres_base_url() -> str:
    return required_service_url(POSTGRES_ENV, "PostgreSQL", "127.0.0.1:5432")


async def fresh_postgres_schema(base_url: str) -> AsyncIterator[str]:
    """A PostgreSQL schema of its own (the URL selects it through search_path), dropped afterwards."""
    schema = f"oodaloo_test_{uuid.uuid4().hex[:16]}"
    # Plain asyncpg for the set-up: cheaper than a SQLAlchemy engine's first connection.
    dsn = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        yield (
            make_url(base_url)
            .update_query_dict({"search_path": schema})
            .render_as_string(hide_password=False)
        )
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()


async def run_in_transaction(url: str, work: Any) -> Any:
    """`work(connection)` in one transaction on `url` (a migration's own view of the database)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"], name="db_url")
async def db_url_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"
        return
    async for url in fresh_postgres_schema(_postgres_base_url()):
        yield url


@dataclass
class MigratedDatabase:
    url: str
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name


@dataclass
class MigrationTemplates:
    """The newest schema, built once per test session and stamped into each test's database.

    Running Alembic for every test would cost a tenth of a second each; copying a migrated SQLite
    file, or replaying the SQL Alembic generates for PostgreSQL, gives the same tables at once.
    (tests/sync/test_migrations.py runs the real migrations against empty databases.)
    """

    _workdir: tempfile.TemporaryDirectory[str] | None = None
    _sqlite_file: Path | None = None
    _postgres_sql: str | None = None

    async def sqlite_file(self) -> Path:
        if self._sqlite_file is None:
            # Removed when the test session's interpreter exits.
            self._workdir = tempfile.TemporaryDirectory(prefix="oodaloo-migrated-")
            path = Path(self._workdir.name) / "template.db"
            await upgrade_database(f"sqlite+aiosqlite:///{path}")
            self._sqlite_file = path
        return self._sqlite_file

    def postgres_sql(self, url: str) -> str:
        if self._postgres_sql is None:
            output = io.StringIO()
            config = Config(output_buffer=output)
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["url"] = url
            config.attributes["configure_logger"] = False
            command.upgrade(config, "head", sql=True)
            self._postgres_sql = output.getvalue()
        return self._postgres_sql


_TEMPLATES = MigrationTemplates()


@pytest.fixture(name="migrated")
async def migrated_fixture(db_url: str) -> AsyncIterator[MigratedDatabase]:
    """`db_url` at the newest migration, with an engine and sessions on it."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        shutil.copyfile(await _TEMPLATES.sqlite_file(), str(url.database))
    engine = make_engine(db_url)
    try:
        if url.get_backend_name() == "postgresql":
            script = _TEMPLATES.postgres_sql(db_url)
            async with engine.connect() as connection:
                raw = await connection.get_raw_connection()
                # The script holds several statements: asyncpg runs it as one simple query.
                await raw.driver_connection.execute(script)
        yield MigratedDatabase(db_url, engine, make_sessionmaker(engine))
    finally:
        await engine.dispose()
