"""Fixtures for the Slack message tests: the sandbox's seeded company, mirrored into a migrated
database (SQLite and PostgreSQL) with every clock pinned, so its digest renders byte for byte the
same on every run.

The database fixtures are the sync tests' own (`tests/sync/db_conftest.py`), reused, not copied.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from db_conftest import MigratedDatabase, db_url_fixture, migrated_fixture

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, ManualClock, SandboxConfig
from qbo_sandbox.seed_names import COMPANY_NAME
from runway.bills import BillService
from runway.mirror import MirrorSync
from runway.models import Business
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync.service import SmartSyncService

__all__ = ["db_url_fixture", "migrated_fixture"]

#: Monday 2 March 2026, 9:02 in the morning in Los Angeles: the moment every clock shows.
PINNED = datetime(2026, 3, 2, 17, 2, tzinfo=UTC)
BUSINESS_ID = "biz-larkspur"
TIMEZONE = "America/Los_Angeles"
APPROVERS = ("U0ANA0001", "U0BEN0002")
#: Test waits in milliseconds instead of seconds.
FAST = SyncSettings().scaled(0.01)


class PinnedClock:
    """Wall time stands at `moment` (every "as of" is the same on each run); the monotonic clock
    runs, so the rate limiter's and the locks' waits still pass."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self) -> datetime:
        return self.moment

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class SeededBusiness:
    """The seeded company as one business, with its mirror and bills wired to the sandbox."""

    db: MigratedDatabase
    sandbox: Sandbox
    infra: SyncInfrastructure
    uows: UnitOfWorkFactory
    clock: PinnedClock

    def smart_sync(self) -> SmartSyncService:
        return SmartSyncService(self.infra, BUSINESS_ID, self.sandbox.realm_id)

    def mirror(self) -> MirrorSync:
        return MirrorSync(self.uows, self.smart_sync())

    def bills(self) -> BillService:
        return BillService(self.uows, self.smart_sync(), BUSINESS_ID, self.clock)


@pytest.fixture
def pinned_sandbox() -> Sandbox:
    """The default seeded company, its clock frozen at `PINNED` (so its dates never move).

    Its own name: the other bot tests keep the shared `sandbox` fixture on the real clock."""
    return create_app(
        SandboxConfig(seed=DEFAULT_SEED, clock=ManualClock(start=PINNED, frozen=True))
    )


@pytest.fixture
async def seeded_business(
    migrated: MigratedDatabase, pinned_sandbox: Sandbox
) -> AsyncIterator[SeededBusiness]:
    """The seeded company as business "biz-larkspur" (approvers U0ANA0001 and U0BEN0002), on each
    database, every clock at `PINNED`."""
    sandbox = pinned_sandbox
    access_token = sandbox.access_token

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(access_token)

    clock = PinnedClock(PINNED)
    infra = SyncInfrastructure(
        engine=migrated.engine,
        backend=MemoryBackend(),
        tokens_for=tokens_for,
        settings=SyncSettings(**{**FAST.__dict__, "qbo_base_url": sandbox.base_url}),
        clock=clock,
        transport=httpx.ASGITransport(app=sandbox.app),
        owns_engine=False,
    )
    async with migrated.sessions() as session:
        session.add(
            Business(
                id=BUSINESS_ID,
                name=COMPANY_NAME,
                realm_id=sandbox.realm_id,
                timezone=TIMEZONE,
                approvers=list(APPROVERS),
                created_at=PINNED,
                updated_at=PINNED,
            )
        )
        await session.commit()
    try:
        yield SeededBusiness(migrated, sandbox, infra, UnitOfWorkFactory(migrated.sessions), clock)
    finally:
        await infra.aclose()
        await sandbox.aclose()
