"""InvoiceService against the sandbox, on SQLite and PostgreSQL: days overdue in the business's
own timezone, a reminder sent through QuickBooks once and refused within the interval (saying
when the next may go), and the collections expected in the coming seven days."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from runway_env import RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.errors import NotFound, ReminderRefused
from runway.invoices import InvoiceService
from runway.mirror import MirrorSync
from sync.clock import ManualClock
from sync.ledger import ActionState
from sync_harness import setup_client, stored

BUSINESS = "biz-larkspur"  # its timezone is America/Los_Angeles
#: 05:00 UTC on 10 March 2026 is still 22:00 on the 9th in Los Angeles (PDT, UTC-7).
NOW = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=12))


async def new_invoices(
    sandbox: Sandbox,
    dues: list[date],
    amount: str = "750.00",
    customer: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Open invoices due on `dues`, for `customer` or a new one (no payment history to shift them)."""
    async with setup_client(sandbox) as client:
        income = (await client.query("SELECT * FROM Account WHERE AccountType = 'Income'"))[0]
        customer = customer or await client.create(
            "Customer",
            {"DisplayName": f"Mariposa Bakery {uuid.uuid4().hex[:6]}", "Active": True},
            request_id=f"setup-{uuid.uuid4().hex[:12]}",
        )
        made = []
        for due in dues:
            made.append(
                await client.create(
                    "Invoice",
                    {
                        "CustomerRef": {"value": customer["Id"]},
                        "TxnDate": (due - timedelta(days=30)).isoformat(),
                        "DueDate": due.isoformat(),
                        "Line": [
                            {
                                "Amount": Decimal(amount),
                                "DetailType": "SalesItemLineDetail",
                                "SalesItemLineDetail": {
                                    "ItemRef": {"value": "1"},
                                    "ItemAccountRef": {"value": income["Id"]},
                                },
                            }
                        ],
                    },
                    request_id=f"setup-{uuid.uuid4().hex[:12]}",
                )
            )
        return made


async def invoice_service(env: RunwayEnv, clock: ManualClock) -> InvoiceService:
    smart_sync = env.smart_sync(BUSINESS, env.sandbox.realm_id)
    await MirrorSync(env.uows, smart_sync).sync()
    return InvoiceService(env.uows, smart_sync, BUSINESS, clock)


async def test_days_overdue_are_counted_in_the_business_timezone(runway_env: RunwayEnv) -> None:
    two_days_ago, yesterday, today = await new_invoices(
        runway_env.sandbox, [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)]
    )
    service = await invoice_service(runway_env, ManualClock(NOW))
    overdue = {item.invoice_id: item for item in await service.overdue_invoices()}
    # In UTC it is already the 10th; in Los Angeles it is the 9th.
    assert overdue[str(two_days_ago["Id"])].days_overdue == 2
    assert overdue[str(yesterday["Id"])].days_overdue == 1
    assert str(today["Id"]) not in overdue  # due today where the business is: not late yet
    days = [item.days_overdue for item in overdue.values()]
    assert list(overdue.values()) == sorted(
        overdue.values(), key=lambda item: (-item.days_overdue, item.invoice_id)
    )
    assert all(day >= 1 for day in days)


async def test_reminder_goes_once_then_waits_for_the_interval(runway_env: RunwayEnv) -> None:
    [invoice] = await new_invoices(runway_env.sandbox, [date(2026, 2, 20)])
    invoice_id = str(invoice["Id"])
    clock = ManualClock(NOW)
    service = await invoice_service(runway_env, clock)

    sent = await service.send_reminder(invoice_id, "U-OWNER", to="ap@mariposa.example")
    assert sent.outcome.state is ActionState.SUCCEEDED, sent.message
    assert sent.next_reminder_at == NOW + timedelta(days=7)
    in_qbo = stored(runway_env.sandbox, "Invoice", invoice_id)
    assert in_qbo["EmailStatus"] == "EmailSent"
    assert in_qbo["BillEmail"]["Address"] == "ap@mariposa.example"

    clock.advance(timedelta(days=6, hours=23))
    with pytest.raises(
        ReminderRefused, match="the next one can go on Mon 16 Mar, 10:00 PM PDT"
    ) as refused:
        await service.send_reminder(invoice_id, "U-PARTNER", to="ap@mariposa.example")
    assert refused.value.next_allowed_at == NOW + timedelta(days=7)
    [item] = [item for item in await service.overdue_invoices() if item.invoice_id == invoice_id]
    assert item.last_reminder_at == NOW and item.next_reminder_at == NOW + timedelta(days=7)

    clock.advance(timedelta(hours=1))
    again = await service.send_reminder(invoice_id, "U-PARTNER")  # to its billing email now
    assert again.outcome.succeeded and again.outcome.key != sent.outcome.key

    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.invoices.get(invoice_id)
        assert mirrored is not None and mirrored.reminders_sent == 2
        trail = [
            (entry.actor, (entry.outcome or "").split(":")[0])
            for entry in reversed(await uow.audit.recent(20))
            if entry.action == "invoice.remind"
        ]
    assert trail == [("U-OWNER", "succeeded"), ("U-PARTNER", "refused"), ("U-PARTNER", "succeeded")]


async def test_reminder_refusals(runway_env: RunwayEnv) -> None:
    [invoice] = await new_invoices(runway_env.sandbox, [date(2026, 2, 20)])
    service = await invoice_service(runway_env, ManualClock(NOW))
    with pytest.raises(NotFound):
        await service.send_reminder("987654", "U-OWNER", to="ap@mariposa.example")
    with pytest.raises(ReminderRefused, match="no billing email"):
        await service.send_reminder(str(invoice["Id"]), "U-OWNER")
    with pytest.raises(ReminderRefused, match="email address"):
        await service.send_reminder(str(invoice["Id"]), "U-OWNER", to="not-an-address")


async def test_collections_expected_in_the_coming_week(runway_env: RunwayEnv) -> None:
    local_today = date(2026, 3, 9)
    soon, later, late = await new_invoices(
        runway_env.sandbox,
        [
            local_today + timedelta(days=3),
            local_today + timedelta(days=20),
            local_today - timedelta(days=4),
        ],
    )
    service = await invoice_service(runway_env, ManualClock(NOW))
    expected = {item.invoice_id: item for item in await service.collections_expected_this_week()}
    assert expected[str(soon["Id"])].expected_on == local_today + timedelta(days=3)
    assert expected[str(soon["Id"])].balance == Decimal("750.00")
    # Already past its expected date: due any day, so counted in this week as the forecast does.
    assert str(late["Id"]) in expected
    assert str(later["Id"]) not in expected


async def test_a_customer_who_pays_late_is_expected_late(runway_env: RunwayEnv) -> None:
    local_today = date(2026, 3, 9)
    [paid] = await new_invoices(runway_env.sandbox, [local_today - timedelta(days=40)])
    customer = {"Id": paid["CustomerRef"]["value"]}
    async with setup_client(runway_env.sandbox) as client:
        await client.create(  # paid ten days after it was due
            "Payment",
            {
                "CustomerRef": {"value": customer["Id"]},
                "TotalAmt": paid["Balance"],
                "TxnDate": (local_today - timedelta(days=30)).isoformat(),
                "Line": [
                    {
                        "Amount": paid["Balance"],
                        "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}],
                    }
                ],
            },
            request_id=f"setup-{uuid.uuid4().hex[:12]}",
        )
    overdue, due_soon = await new_invoices(
        runway_env.sandbox,
        [local_today - timedelta(days=5), local_today + timedelta(days=3)],
        customer=customer,
    )
    service = await invoice_service(runway_env, ManualClock(NOW))
    expected = {item.invoice_id: item for item in await service.collections_expected_this_week()}
    # Ten days late as usual: the overdue one in five days, the one due in three days not this week.
    assert expected[str(overdue["Id"])].expected_on == local_today + timedelta(days=5)
    assert str(due_soon["Id"]) not in expected
    assert str(paid["Id"]) not in expected
