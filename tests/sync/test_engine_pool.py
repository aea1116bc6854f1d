"""The connections a process keeps: as many as it has pieces of work at once (`make_engine`'s
`connections`), so a busy worker's jobs never wait for a connection; an in-memory SQLite database
keeps its one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from db_conftest import db_url_fixture  # noqa: F401  (the db_url fixture)
from sqlalchemy import text

from sync.db import make_engine


async def test_the_pool_holds_the_connections_asked_for_all_usable_at_once(db_url: str) -> None:
    engine = make_engine(db_url, connections=18)
    try:
        assert engine.pool.size() == 18  # type: ignore[attr-defined]

        async def hold() -> int:
            async with engine.connect() as connection:
                await asyncio.sleep(0.05)  # every connection is out at the same time
                return int((await connection.execute(text("SELECT 1"))).scalar_one())

        assert await asyncio.gather(*(hold() for _ in range(18))) == [1] * 18
        assert engine.pool.overflow() <= 0  # type: ignore[attr-defined]  (none beyond the 18)
    finally:
        await engine.dispose()


async def test_an_in_memory_sqlite_database_keeps_its_one_connection(tmp_path: Path) -> None:
    engine = make_engine("sqlite+aiosqlite://", connections=18)
    try:
        assert engine.pool.size() == 1  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
