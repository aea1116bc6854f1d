"""`RunwayEnv`, the wiring the runway tests share, under a name no other test folder uses.

Test modules import it with `from runway_env import RunwayEnv`: `from conftest import ...` would
depend on which folder's conftest pytest loaded last, that is on the order of the arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from db_conftest import MigratedDatabase

from qbo_sandbox.app import Sandbox
from runway.mirror import MirrorSync
from runway.models import Business
from runway.uow import UnitOfWorkFactory
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.service import SmartSyncService

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
