"""A Slack channel belongs to at most one business: migration 0006 keeps a shared channel with the
business that was there first and clears it from the others, and the database then refuses a
second business on a channel that already has one."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, text

from runway.models import Business
from sync.db import downgrade_database, make_engine, upgrade_database

COLUMNS = (
    "id name timezone home_currency digest_weekday digest_local_time approvers approval_threshold"
    " min_cash_buffer slack_team_id slack_channel_id email_recipients reminder_interval_days"
    " created_at updated_at"
).split()
# The row as revision 0005 knew it, written with the domain's column types.
INSERT = Business.__table__.insert()


async def _run(url: str, work: Any) -> Any:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            return await connection.run_sync(work)
    finally:
        await engine.dispose()


def _insert(rows: list[tuple[str, str | None, str | None, str]]) -> Any:
    def work(connection: Connection) -> None:
        for business_id, team, channel, created in rows:
            at = datetime.fromisoformat(created).replace(tzinfo=UTC)
            values = [business_id, business_id, "UTC", "USD", 0, time(8), [], Decimal(0)]
            values += [Decimal(0), team, channel, [], 7, at, at]
            connection.execute(INSERT.values(dict(zip(COLUMNS, values, strict=True))))

    return work


def _channels(connection: Connection) -> dict[str, str | None]:
    rows = connection.execute(text("SELECT id, slack_channel_id FROM businesses"))
    return {business_id: channel for business_id, channel in rows}


async def test_the_oldest_business_keeps_a_shared_channel_and_the_others_lose_it(
    db_url: str,
) -> None:
    await upgrade_database(db_url, "0005")
    await _run(
        db_url,
        _insert(
            [
                ("hijacker", "T1", "C-FIN", "2026-12-01 10:00:00"),
                ("owner", "T1", "C-FIN", "2026-01-01 10:00:00"),
                ("twin-b", "T1", "C-OPS", "2026-03-01 10:00:00"),
                ("twin-a", "T1", "C-OPS", "2026-03-01 10:00:00"),
                ("other-team", "T2", "C-FIN", "2026-12-02 10:00:00"),
                ("unlinked-1", None, None, "2026-12-03 10:00:00"),
                ("unlinked-2", None, None, "2026-12-04 10:00:00"),
            ]
        ),
    )

    await upgrade_database(db_url, "0006")

    assert await _run(db_url, _channels) == {
        "owner": "C-FIN",
        "hijacker": None,
        "twin-a": "C-OPS",  # same moment: the smaller id keeps it
        "twin-b": None,
        "other-team": "C-FIN",  # a channel id is only the same channel in the same team
        "unlinked-1": None,
        "unlinked-2": None,
    }
    with pytest.raises(Exception, match=r"(?i)unique"):
        await _run(db_url, _insert([("late", "T1", "C-FIN", "2026-12-05 10:00:00")]))

    await downgrade_database(db_url, "0005")
    await _run(db_url, _insert([("shared", "T1", "C-FIN", "2026-12-05 10:00:00")]))
