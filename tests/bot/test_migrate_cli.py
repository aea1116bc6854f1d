"""`oodaloo migrate` and what the processes do with a database they do not migrate themselves.

On SQLite (quick; tests/bot/test_wheel_install.py runs the same commands from the wheel against
PostgreSQL): a database one revision behind is refused by a process that does not migrate at start
("run `oodaloo migrate`"), `oodaloo migrate` brings it up and says from where to where, a second run
has nothing to do, `--check` answers by its exit code, and a database migrated by a newer Oodaloo
is left alone with a message saying so. MIGRATE_ON_START decides per database kind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from bot import settings as bot_settings
from bot.bootstrap import Oodaloo
from bot.cli import main
from bot.settings import SettingsError, load_settings
from runway.crypto import generate_key
from sync.backends import MemoryBackend
from sync.db import make_engine, schema_state, upgrade_database

#: The revision before the newest, and the newest (migrations/versions).
BEHIND = "0012"


@pytest.fixture
def database_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)  # no developer's .env in the way
    url = f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("MIGRATE_ON_START", raising=False)
    bot_settings.settings.cache_clear()
    return url


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    # The command runs its own event loop: off this test's loop.
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


async def test_migrate_brings_a_database_up_once_and_check_says_so(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await upgrade_database(database_url, BEHIND)
    head = (await schema_state(database_url)).head
    settings = load_settings(database_url=database_url, token_encryption_key=generate_key())

    with pytest.raises(SettingsError, match=rf"at revision {BEHIND} .* needs {head[0]}: run `oodaloo migrate`"):
        await Oodaloo.start(settings, backend=MemoryBackend(), migrate=False)
    code, said = await _cli(capsys, "migrate", "--check")
    assert code == 1, said
    assert (
        f"The database is at revision {BEHIND} and this version of Oodaloo needs {head[0]}: run "
        "`oodaloo migrate` once (with the same DATABASE_URL), then start again. "
        "MIGRATE_ON_START=true makes every process migrate as it starts instead.\n"
    ) in said

    code, said = await _cli(capsys, "migrate")
    assert code == 0 and "Migrated the database (sqlite+aiosqlite:///" in said, said
    assert f"from {BEHIND} to revision {head[0]}." in said, said
    code, said = await _cli(capsys, "migrate")
    assert code == 0 and f"was already at revision {head[0]}: nothing to do." in said, said
    code, said = await _cli(capsys, "migrate", "--check")
    assert code == 0 and "is up to date" in said, said

    oodaloo = await Oodaloo.start(settings, backend=MemoryBackend(), migrate=False)
    await oodaloo.aclose()


async def test_an_empty_database_is_migrated_from_nothing(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(database_url=database_url, token_encryption_key=generate_key())
    with pytest.raises(SettingsError, match="no Oodaloo tables yet: run `oodaloo migrate`"):
        await Oodaloo.start(settings, backend=MemoryBackend(), migrate=False)
    code, said = await _cli(capsys, "migrate")
    assert code == 0 and "from empty to revision" in said, said
    assert (await schema_state(database_url)).up_to_date


async def test_a_database_a_newer_oodaloo_migrated_is_left_alone(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()

    for argv in (("migrate",), ("migrate", "--check")):
        code, said = await _cli(capsys, *argv)
        assert code == 1 and "at revision 9999, which this version of Oodaloo does not know" in said, said
    assert (await schema_state(database_url)).current == ("9999",)


def test_processes_migrate_as_they_start_on_sqlite_only_unless_told() -> None:
    sqlite, postgres = "sqlite+aiosqlite:///x.db", "postgresql+asyncpg://u@h/db"
    assert load_settings(database_url=sqlite).migrates_on_start() is True
    assert load_settings(database_url=postgres).migrates_on_start() is False
    assert load_settings(database_url=postgres, migrate_on_start="true").migrates_on_start() is True
    assert load_settings(database_url=sqlite, migrate_on_start="false").migrates_on_start() is False
    assert load_settings(database_url=postgres, migrate_on_start="").migrates_on_start() is False
