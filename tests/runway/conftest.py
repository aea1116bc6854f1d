"""Fixtures for the runway domain's tests: a migrated database (SQLite and PostgreSQL), the QBO
sandbox in-process, and a business wired to it through SyncInfrastructure and SmartSyncService.

The database and sandbox fixtures are the sync tests' own (`tests/sync/db_conftest.py`,
`tests/sync/sync_harness.py`, `tests/conftest.py`), reused, not copied.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from db_conftest import MigratedDatabase, db_url_fixture, migrated_fixture

from qbo_sandbox.app import Sandbox
from runway.mirror import MirrorSync
from runway.models import Business
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync.service import SmartSyncService
from sync_harness import OffsetClock

__all__ = ["db_url_fixture", "migrated_fixture"]

#: Test waits in milliseconds instead of seconds.
FAST = SyncSettings().scaled(0.01)


@dataclass
class RunwayEnv:
    """One process's wiring: database, sandbox, infrastructure and the businesses' mirror syncs."""

    db: MigratedDatabase
    sandbox: Sandbox
    infra: SyncInfrastructure
    uows: UnitOfWorkFactory
    access_tokens: dict[str, str]

    async def add_business(self, business_id: str, realm_id: str, access_token: str) -> None:
        """A business whose QuickBooks company is the sandbox company `realm_id`."""
        self.access_tokens[realm_id] = access_token
        now = datetime.now(UTC)
        async with self.db.sessions() as session:
            session.add(
                Business(
                    id=business_id,
                    name=f"Business {business_id}",
                    realm_id=realm_id,
                    timezone="America/Los_Angeles",
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()

    def smart_sync(self, business_id: str, realm_id: str) -> SmartSyncService:
        return SmartSyncService(self.infra, business_id, realm_id)

    def mirror(self, business_id: str, realm_id: str, **options: Any) -> MirrorSync:
        return MirrorSync(self.uows, self.smart_sync(business_id, realm_id), **options)


@pytest.fixture
async def runway_env(migrated: MigratedDatabase, sandbox: Sandbox) -> AsyncIterator[RunwayEnv]:
    """The sandbox's seeded company as business "biz-larkspur", on each database."""
    import httpx

    access_tokens: dict[str, str] = {}

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(access_tokens[realm_id])

    infra = SyncInfrastructure(
        engine=migrated.engine,
        backend=MemoryBackend(),
        tokens_for=tokens_for,
        settings=SyncSettings(**{**FAST.__dict__, "qbo_base_url": sandbox.base_url}),
        clock=OffsetClock(),
        transport=httpx.ASGITransport(app=sandbox.app),
        owns_engine=False,
    )
    env = RunwayEnv(migrated, sandbox, infra, UnitOfWorkFactory(migrated.sessions), access_tokens)
    await env.add_business("biz-larkspur", sandbox.realm_id, sandbox.access_token)
    try:
        yield env
    finally:
        await infra.aclose()
        await sandbox.aclose()
