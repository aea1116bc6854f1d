"""A Slack channel belongs to at most one business: migration 0006 keeps a shared channel with the
business that was there first and clears it from the others, and the database then refuses a
second business on a channel that already has one."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from db_conftest import MigratedDatabase, run_in_transaction
from sqlalchemy import Connection, text

from runway.businesses import BusinessDirectory, ChannelTaken, NotAnApprover
from runway.crypto import TokenCipher, generate_key
from runway.models import Business
from runway.uow import UnitOfWorkFactory
from sync.db import downgrade_database, upgrade_database

COLUMNS = (
    "id name timezone home_currency digest_weekday digest_local_time approvers approval_threshold"
    " min_cash_buffer slack_team_id slack_channel_id email_recipients reminder_interval_days"
    " created_at updated_at"
).split()
# The row as revision 0005 knew it, written with the domain's column types (the columns added
# since, which it did not have, left out).
INSERT = sa.Table(
    Business.__tablename__,
    sa.MetaData(),
    *(column._copy() for column in Business.__table__.columns if column.name in COLUMNS),
).insert()


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
    await run_in_transaction(
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

    assert await run_in_transaction(db_url, _channels) == {
        "owner": "C-FIN",
        "hijacker": None,
        "twin-a": "C-OPS",  # same moment: the smaller id keeps it
        "twin-b": None,
        "other-team": "C-FIN",  # a channel id is only the same channel in the same team
        "unlinked-1": None,
        "unlinked-2": None,
    }
    with pytest.raises(Exception, match=r"(?i)unique"):
        await run_in_transaction(db_url, _insert([("late", "T1", "C-FIN", "2026-12-05 10:00:00")]))

    await downgrade_database(db_url, "0005")
    await run_in_transaction(db_url, _insert([("shared", "T1", "C-FIN", "2026-12-05 10:00:00")]))


def _directory(migrated: MigratedDatabase) -> BusinessDirectory:
    return BusinessDirectory(migrated.sessions, TokenCipher(generate_key()))


async def test_a_second_business_cannot_take_a_channel_and_lookups_find_the_one(
    migrated: MigratedDatabase,
) -> None:
    businesses = _directory(migrated)
    await businesses.create(
        "owner", "Owner Co", "UTC", approvers=["U0OWNER"], slack_team_id="T1", slack_channel_id="C1"
    )
    with pytest.raises(ChannelTaken, match="already belongs to another business in Oodaloo"):
        await businesses.create("late", "Late Co", "UTC", slack_team_id="T1", slack_channel_id="C1")
    await businesses.create(
        "mallory", "Mallory", "UTC", approvers=["U0MAL"], slack_team_id="T1", slack_channel_id="C2"
    )
    with pytest.raises(ChannelTaken):
        await businesses.update("mallory", by="U0MAL", slack_channel_id="C1")
    assert (await businesses.get("mallory")).slack_channel_id == "C2"
    found = await businesses.by_slack_channel("T1", "C1")
    assert found is not None and found.id == "owner"
    # The same channel id in another workspace is another channel.
    await businesses.create("elsewhere", "Else", "UTC", slack_team_id="T2", slack_channel_id="C1")


async def test_only_an_approver_changes_a_business_by_slack_id_or_email(
    migrated: MigratedDatabase,
) -> None:
    businesses = _directory(migrated)
    await businesses.create("biz", "Biz", "UTC", approvers=["U0OWNER", "Sam@Example.com"])
    with pytest.raises(NotAnApprover):
        await businesses.update("biz", by="U0STAFF", approvers=["U0STAFF"])
    with pytest.raises(NotAnApprover):
        await businesses.require_approver("biz", "U0SAM")  # not known to be Sam yet
    assert (await businesses.get("biz")).approvers == ["U0OWNER", "Sam@Example.com"]

    await businesses.update("biz", by="U0OWNER", reminder_interval_days=3)
    await businesses.update("biz", by="sam@example.com", reminder_interval_days=4)
    async with UnitOfWorkFactory(migrated.sessions)("biz") as uow:
        await uow.people.remember(
            slack_user_id="U0SAM", email="sam@example.com", name="Sam", now=datetime.now(UTC)
        )
        await uow.commit()
    await businesses.update("biz", by="U0SAM", reminder_interval_days=5)
    assert (await businesses.get("biz")).reminder_interval_days == 5

    # A business nobody approves for yet is changed only by Oodaloo's operator (by=None).
    await businesses.create("unclaimed", "Unclaimed", "UTC")
    with pytest.raises(NotAnApprover):
        await businesses.require_approver("unclaimed", "U0ANYONE")
    await businesses.update("unclaimed", approvers=["U0ANYONE"])
    await businesses.require_approver("unclaimed", "U0ANYONE")
