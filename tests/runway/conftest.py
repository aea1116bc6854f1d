"""Fixtures for the runway domain's tests: a migrated database (SQLite and PostgreSQL), the QBO
sandbox in-process, and a business wired to it through SyncInfrastructure and SmartSyncService.

The database and sandbox fixtures are the sync tests' own (`tests/sync/db_conftest.py`,
`tests/sync/sync_harness.py`, `tests/conftest.py`), reused, not copied.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from db_conftest import MigratedDatabase, db_url_fixture, migrated_fixture
from runway_env import FAST, RunwayEnv

from qbo_sandbox.app import Sandbox
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync_harness import OffsetClock

__all__ = ["RunwayEnv", "db_url_fixture", "migrated_fixture"]

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
