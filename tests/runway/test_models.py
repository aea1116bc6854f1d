"""The runway tables on SQLite and PostgreSQL: migrations match the models, money stays Decimal,
times stay aware, constraints hold, businesses are validated, and QuickBooks tokens are never
stored in plain text (and survive a real refresh against the sandbox's token endpoint)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from db_conftest import MigratedDatabase, run_in_transaction
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError

from qbo_sandbox.app import Sandbox
from qbo_sandbox.oauth import TOKEN_PATH
from runway.businesses import BusinessDirectory, NotConnected, QBOAppCredentials
from runway.crypto import TokenCipher, TokenDecryptionError, generate_key
from runway.db import RunwayBase
from runway.models import Bill, Business, DocumentStatus, QBOConnection
from runway.uow import UnitOfWorkFactory
from sync.db import SyncBase, downgrade_database, upgrade_database
from sync.qbo import OAuthTokens, QBOTokenError

RUNWAY_TABLES = set(RunwayBase.metadata.tables)


def _schema(connection: Connection) -> dict[str, Any]:
    # The bot's tables share the database; this compares sync's and the domain's own.
    ours = set(SyncBase.metadata.tables) | RUNWAY_TABLES

    def own_tables(name: str | None, kind: str, parent: Any) -> bool:
        return kind != "table" or name in ours

    migration = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": own_tables}
    )
    tables = set(inspect(connection).get_table_names())
    return {
        "tables": tables,
        "drift": compare_metadata(migration, [SyncBase.metadata, RunwayBase.metadata])
        if RUNWAY_TABLES <= tables
        else None,
    }


async def _inspect(url: str) -> dict[str, Any]:
    return dict(await run_in_transaction(url, _schema))


async def test_migrations_build_the_runway_tables_exactly_as_the_models_declare(
    db_url: str,
) -> None:
    await upgrade_database(db_url)
    state = await _inspect(db_url)
    assert RUNWAY_TABLES <= state["tables"]
    assert state["drift"] == []  # autogenerate sees nothing to do: migration == models

    await downgrade_database(db_url, "0001")  # back to sync's tables only
    state = await _inspect(db_url)
    assert state["tables"] & RUNWAY_TABLES == set()
    assert "qbo_actions" in state["tables"]

    await upgrade_database(db_url)
    assert RUNWAY_TABLES <= (await _inspect(db_url))["tables"]


def directory(migrated: MigratedDatabase, key: str | None = None) -> BusinessDirectory:
    return BusinessDirectory(migrated.sessions, TokenCipher(key or generate_key()))


async def test_money_is_exact_decimal_and_times_come_back_aware_in_utc(
    migrated: MigratedDatabase,
) -> None:
    await directory(migrated).create("biz-a", "Larkspur & Pine", "America/Los_Angeles")
    auckland = datetime(2026, 3, 2, 9, 30, tzinfo=ZoneInfo("Pacific/Auckland"))
    raw = {
        "Id": "7",
        "TotalAmt": Decimal("1234567890123.45"),
        "Line": [{"Amount": Decimal("0.10")}],
    }
    uows = UnitOfWorkFactory(migrated.sessions)
    async with uows("biz-a") as uow:
        uow.bills.add(
            Bill(
                qbo_id="7",
                sync_token="0",
                raw=raw,
                synced_at=auckland,
                total_amount=Decimal("1234567890123.45"),
                balance=Decimal("0.10"),
                status=DocumentStatus.PARTIALLY_PAID.value,
                due_date=date(2026, 3, 31),
                approved_at=auckland,
            )
        )
        await uow.commit()
    async with uows("biz-a") as uow:
        bill = await uow.bills.get("7")
        assert bill is not None
        assert type(bill.total_amount) is Decimal and bill.total_amount == Decimal(
            "1234567890123.45"
        )
        assert bill.balance == Decimal("0.10")
        assert bill.raw == raw and type(bill.raw["Line"][0]["Amount"]) is Decimal
        assert bill.approved_at == auckland and bill.approved_at.tzinfo == UTC
        assert bill.synced_at.utcoffset() == timedelta(0)


async def test_constraints_refuse_duplicates_bad_states_and_naive_times(
    migrated: MigratedDatabase,
) -> None:
    await directory(migrated).create("biz-a", "A", "UTC")
    uows = UnitOfWorkFactory(migrated.sessions)
    now = datetime.now(UTC)

    def bill(qbo_id: str, **overrides: Any) -> Bill:
        values: dict[str, Any] = {
            "qbo_id": qbo_id,
            "sync_token": "0",
            "raw": {},
            "synced_at": now,
            "total_amount": Decimal("10.00"),
            "balance": Decimal("10.00"),
            "status": "open",
        }
        return Bill(**{**values, **overrides})

    async with uows("biz-a") as uow:
        uow.bills.add(bill("1"))
        await uow.commit()
    async with uows("biz-a") as uow:
        uow.bills.add(bill("1"))  # the same QuickBooks id twice for one business
        with pytest.raises(IntegrityError):
            await uow.commit()
    async with uows("biz-a") as uow:
        uow.bills.add(bill("2", status="lost"))
        with pytest.raises(IntegrityError):
            await uow.commit()
    async with uows("biz-a") as uow:
        uow.bills.add(bill("3", synced_at=datetime(2026, 1, 1, 12, 0)))  # naive
        with pytest.raises(Exception, match="naive datetime"):
            await uow.commit()
    async with uows("biz-a") as uow:
        uow.bills.add(bill("4", balance=Decimal("0.005")))  # a fraction of a cent
        with pytest.raises(Exception, match="fraction of a cent"):
            await uow.commit()
    async with uows("biz-a") as uow:
        assert [row.qbo_id for row in await uow.bills.all()] == ["1"]


async def test_businesses_are_created_validated_updated_and_found_by_slack_channel(
    migrated: MigratedDatabase,
) -> None:
    businesses = directory(migrated)
    created = await businesses.create(
        "biz-a",
        "Larkspur & Pine",
        "America/Los_Angeles",
        approvers=["U01APPROVE", "U02SECOND"],
        approval_threshold=Decimal("2500.00"),
        slack_team_id="T0TEAM",
        slack_channel_id="C0CASH",
    )
    assert created.approval_threshold == Decimal("2500.00")
    assert created.digest_local_time == time(8, 0) and created.reminder_interval_days == 7

    with pytest.raises(ValueError, match="already exists"):
        await businesses.create("biz-a", "Again", "UTC")
    with pytest.raises(ValueError, match="IANA timezone"):
        await businesses.create("biz-b", "Nowhere", "Mars/Olympus_Mons")
    with pytest.raises(ValueError, match="Decimal"):
        await businesses.update("biz-a", min_cash_buffer=20000.0)
    with pytest.raises(ValueError, match="cannot set realm_id"):
        await businesses.update("biz-a", realm_id="123")

    updated = await businesses.update(
        "biz-a", min_cash_buffer=Decimal("20000.00"), digest_weekday=4, timezone="Pacific/Auckland"
    )
    assert updated.min_cash_buffer == Decimal("20000.00") and updated.digest_weekday == 4
    again = await businesses.get("biz-a")
    assert again.timezone == "Pacific/Auckland" and again.approvers == ["U01APPROVE", "U02SECOND"]
    found = await businesses.by_slack_channel("T0TEAM", "C0CASH")
    assert found is not None and found.id == "biz-a"
    assert await businesses.by_slack_channel("T0TEAM", "C0OTHER") is None


async def _stored_connection(migrated: MigratedDatabase) -> dict[str, Any]:
    async with migrated.engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM qbo_connections"))).mappings().one()
        return dict(row)


async def test_tokens_are_encrypted_at_rest_and_need_the_key(migrated: MigratedDatabase) -> None:
    key = generate_key()
    businesses = directory(migrated, key)
    await businesses.create("biz-a", "A", "UTC")
    now = datetime.now(UTC)
    tokens = OAuthTokens(
        access_token="eyJhbGciOi-access-token-value",
        refresh_token="AB11-refresh-token-value",
        expires_at=now + timedelta(hours=1),
        refresh_expires_at=now + timedelta(days=100),
    )
    await businesses.connect("biz-a", "4620816365", tokens)

    stored = await _stored_connection(migrated)
    everything = " ".join(str(value) for value in stored.values())
    assert "access-token-value" not in everything and "refresh-token-value" not in everything
    assert stored["access_token_encrypted"] != stored["refresh_token_encrypted"]
    assert await businesses.load_tokens("4620816365") == tokens

    stranger = directory(migrated)  # another key: the ciphertext is useless to it
    with pytest.raises(TokenDecryptionError, match="could not be decrypted"):
        await stranger.load_tokens("4620816365")
    rotated = BusinessDirectory(migrated.sessions, TokenCipher([generate_key(), key]))
    assert await rotated.load_tokens("4620816365") == tokens  # an older key still opens them


async def test_a_refresh_through_the_sandbox_persists_the_rotated_tokens_encrypted(
    migrated: MigratedDatabase, sandbox: Sandbox
) -> None:
    businesses = BusinessDirectory(
        migrated.sessions,
        TokenCipher(generate_key()),
        clock=sandbox.clock,  # type: ignore[arg-type]
    )
    await businesses.create("biz-a", "A", "America/Los_Angeles")
    now = sandbox.clock.now()
    first = OAuthTokens(
        access_token=sandbox.access_token,
        refresh_token=sandbox.refresh_token,
        expires_at=now + timedelta(hours=1),
        refresh_expires_at=now + timedelta(days=100),
    )
    await businesses.connect("biz-a", sandbox.realm_id, first)
    sandbox.advance_clock(timedelta(hours=2))  # the access token has expired

    app = QBOAppCredentials(
        sandbox.client_id, sandbox.client_secret, f"{sandbox.base_url}{TOKEN_PATH}"
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as http:
        provider = businesses.token_source(app, http)(sandbox.realm_id)
        fresh = await provider.access_token()
        assert fresh != first.access_token
        # QuickBooks takes the new token...
        answer = await http.get(
            f"{sandbox.base_url}{sandbox.v3_path(f'companyinfo/{sandbox.realm_id}')}",
            headers={"Authorization": f"Bearer {fresh}", "Accept": "application/json"},
        )
        assert answer.status_code == 200
        # ...and the rotated pair is what is stored, encrypted.
        stored = await businesses.load_tokens(sandbox.realm_id)
        assert stored.access_token == fresh and stored.refresh_token != first.refresh_token
        raw = await _stored_connection(migrated)
        assert fresh not in str(raw) and stored.refresh_token not in str(raw)

        # An app QuickBooks refuses: the connection is marked for reconnecting, not retried.
        sandbox.advance_clock(timedelta(hours=2))
        wrong = QBOAppCredentials(sandbox.client_id, "not-the-secret", app.token_url)
        with pytest.raises(QBOTokenError):
            await businesses.token_source(wrong, http)(sandbox.realm_id).access_token()
    connection = await businesses.connection("biz-a")
    assert connection.status == "needs_reconnect" and connection.status_reason
    with pytest.raises(NotConnected, match="must be reconnected"):
        await businesses.load_tokens(sandbox.realm_id)


async def test_a_business_row_and_its_connection_go_together(migrated: MigratedDatabase) -> None:
    businesses = directory(migrated)
    await businesses.create("biz-a", "A", "UTC")
    now = datetime.now(UTC)
    tokens = OAuthTokens("a", "r", now + timedelta(hours=1), now + timedelta(days=100))
    await businesses.connect("biz-a", "111", tokens)
    await businesses.create("biz-b", "B", "UTC")
    with pytest.raises(ValueError, match="already belongs to another business"):
        await businesses.connect("biz-b", "111", tokens)
    with pytest.raises(NotConnected):
        await businesses.connection("biz-b")
    async with migrated.sessions() as session:
        business = await session.get(Business, "biz-a")
        assert business is not None and business.realm_id == "111"
        links = (await session.execute(select(QBOConnection.business_id))).scalars().all()
        assert links == ["biz-a"]
