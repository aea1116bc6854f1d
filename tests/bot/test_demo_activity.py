"""The demo's live log of what Oodaloo did about QuickBooks' faults: faults the sandbox injects
into a real sync show with what Oodaloo does next, and a settled payment shows as reconciled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.demo_activity import DemoActivity
from bot.local import BUSINESS_ID, LocalStack, local_stack
from qbo_sandbox.chaos import FaultPlan, FaultRule
from sync import (
    ActionOutcome,
    ActionState,
    QBOError,
    QuickBooksUnavailable,
    Resolution,
    SyncStrategy,
)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[LocalStack]:
    async with local_stack(f"sqlite+aiosqlite:///{tmp_path}/activity.db", migrate=True) as built:
        yield built


@pytest.fixture
def activity(stack: LocalStack) -> Iterator[DemoActivity]:
    log = DemoActivity(stack.oodaloo, BUSINESS_ID)
    log.attach()
    yield log
    log.detach()


async def test_faults_in_a_sync_are_logged_with_what_oodaloo_does(
    stack: LocalStack, activity: DemoActivity
) -> None:
    assert await activity.entries() == []
    stack.sandbox.chaos.plan = FaultPlan(seed=7, default=FaultRule(rate_429=0.2, rate_5xx=0.3))
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    try:
        await services.mirror.sync(strategy=SyncStrategy.FORCED)
    except (QuickBooksUnavailable, QBOError):
        pass  # QuickBooks stayed down past the retries: the faults are logged all the same
    faults = [entry for entry in await activity.entries() if entry["kind"] == "fault"]
    assert faults, "the injected faults show in the log"
    assert all("Oodaloo" in entry["text"] and entry["at"] for entry in faults)
    assert any("retries" in entry["text"] or "waits" in entry["text"] for entry in faults)


async def test_a_settled_payment_shows_as_reconciled(stack: LocalStack, activity: DemoActivity) -> None:
    business = await stack.business()
    outcome = ActionOutcome("oo1-key", ActionState.SUCCEEDED, "77", False, "paid")
    await activity.on_resolution(Resolution(
        key="oo1-key", business_id=BUSINESS_ID, realm_id=str(business.realm_id),
        operation="bill_payment.create", previous_state=ActionState.UNKNOWN,
        state=ActionState.SUCCEEDED, qbo_object_id="77", how="found", reason="its marker is there",
        outcome=outcome,
    ))  # fmt: skip
    entries = await activity.entries()
    assert [entry["kind"] for entry in entries] == ["reconciled"]
    assert "found in QuickBooks" in entries[0]["text"]
