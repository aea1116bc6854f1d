"""A payment of a bill in a foreign currency, at the sync layer, against the sandbox company with
multicurrency on (home USD, EUR rates 1.08 twenty days ago and 1.10 since yesterday):
`SmartSyncService.exchange_rate` reads QuickBooks' rate for a date, and a `BillPaymentIntent`
with the bill's currency and that rate is a BillPayment in euros at that rate, made once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from sync.actions import BillPaymentIntent
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.ledger import ActionState, ConflictingAction
from sync.qbo import QBOValidationError
from sync.service import SmartSyncService
from sync_harness import (
    BUSINESS_ID,
    OffsetClock,
    admin_http,
    admin_stats,
    bank_account_id,
    build_infra,
    open_stack,
    payments_marked,
    route_count,
    setup_client,
    stored,
)

SETTINGS = SyncSettings().scaled(0.02)
TODAY = date.today()
BILL_RATE, PAY_RATE = Decimal("1.08"), Decimal("1.10")


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig())


@pytest.fixture
async def service(tmp_path: Path, sandbox: Sandbox) -> AsyncIterator[SmartSyncService]:
    async with open_stack("embedded", tmp_path) as stack:
        infra: SyncInfrastructure = await build_infra(stack, sandbox, SETTINGS, clock=OffsetClock())
        yield SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
        await infra.aclose()


async def multicurrency_on(sandbox: Sandbox) -> None:
    """Turned on in QuickBooks' own settings (the API cannot), with QuickBooks' EUR rates."""
    rates = [
        {"SourceCurrencyCode": "EUR", "AsOfDate": day.isoformat(), "Rate": str(rate)}
        for day, rate in (
            (TODAY - timedelta(days=20), BILL_RATE),
            (TODAY - timedelta(days=1), PAY_RATE),
        )
    ]
    async with admin_http(sandbox) as admin:
        response = await admin.post(
            f"/_sandbox/realms/{sandbox.realm_id}/multicurrency",
            json={"currencies": ["EUR"], "rates": rates},
        )
    assert response.status_code == 200, response.text


async def euro_bill(sandbox: Sandbox) -> dict[str, Any]:
    """A €1,000.00 bill from a EUR supplier, entered at 1.08."""
    async with setup_client(sandbox) as client:

        async def create(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            return await client.create(entity, body, request_id=f"setup-{uuid.uuid4().hex[:16]}")

        vendor = await create(
            "Vendor", {"DisplayName": "Lyon Textiles SARL", "CurrencyRef": {"value": "EUR"}}
        )
        expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
        return await create(
            "Bill",
            {
                "VendorRef": {"value": vendor["Id"]},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": BILL_RATE,
                "TxnDate": (TODAY - timedelta(days=20)).isoformat(),
                "Line": [
                    {
                        "Amount": Decimal("1000.00"),
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense["Id"]}},
                    }
                ],
            },
        )


def euro_intent(
    sandbox: Sandbox, bill: dict[str, Any], bank: str, rate: Decimal
) -> BillPaymentIntent:
    return BillPaymentIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        bill_id=str(bill["Id"]),
        bill_sync_token=str(bill["SyncToken"]),
        vendor_id=str(bill["VendorRef"]["value"]),
        amount=bill["Balance"],
        bank_account_id=bank,
        pay_date=TODAY,
        requested_by="U-owner",
        currency="EUR",
        exchange_rate=rate,
    )


async def test_quickbooks_rate_for_a_date_is_the_latest_on_or_before_it(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    await multicurrency_on(sandbox)
    assert await service.exchange_rate("EUR", TODAY) == PAY_RATE
    assert await service.exchange_rate("EUR", TODAY - timedelta(days=2)) == BILL_RATE
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "exchangerate") == 2


async def test_a_company_without_multicurrency_has_no_rate_and_says_so(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    with pytest.raises(QBOValidationError, match="Multicurrency is not enabled"):
        await service.exchange_rate("EUR", TODAY)


async def test_a_euro_bill_is_paid_in_euros_at_the_rate_given_once_whatever_rate_a_repeat_read(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    await multicurrency_on(sandbox)
    bill = await euro_bill(sandbox)
    bank = await bank_account_id(sandbox)
    bank_before = stored(sandbox, "Account", bank)["CurrentBalance"]
    intent = euro_intent(sandbox, bill, bank, await service.exchange_rate("EUR", TODAY))

    outcome = await service.create_payment_immediate(intent)

    assert outcome.state is ActionState.SUCCEEDED, outcome.message
    assert "1,000.00 EUR" in outcome.message
    [payment] = payments_marked(sandbox, intent.key)
    assert payment["CurrencyRef"]["value"] == "EUR" and payment["ExchangeRate"] == PAY_RATE
    assert payment["TotalAmt"] == payment["Line"][0]["Amount"] == Decimal("1000.00")
    assert stored(sandbox, "Bill", str(bill["Id"]))["Balance"] == Decimal("0")
    assert bank_before - stored(sandbox, "Account", bank)["CurrentBalance"] == Decimal("1100.00")
    # A second click that read another rate is the same payment's key: refused, never a second one.
    repeat = replace(intent, exchange_rate=Decimal("1.11"))
    assert repeat.key == intent.key
    with pytest.raises(ConflictingAction):
        await service.create_payment_immediate(repeat)
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 1


def test_a_foreign_payment_needs_its_currency_and_a_positive_rate_together() -> None:
    base = dict(
        business_id=BUSINESS_ID,
        realm_id="1",
        bill_id="9",
        bill_sync_token="0",
        vendor_id="5",
        amount=Decimal("1000.00"),
        bank_account_id="35",
        pay_date=TODAY,
        requested_by="U-owner",
    )
    home = BillPaymentIntent(**base)  # type: ignore[arg-type]
    assert "CurrencyRef" not in home.body() and "ExchangeRate" not in home.body()
    for currency, rate in (
        ("EUR", None),
        (None, Decimal("1.1")),
        ("EUR", Decimal("0")),
        ("eur", Decimal("1.1")),
    ):
        with pytest.raises(ValueError):
            BillPaymentIntent(**base, currency=currency, exchange_rate=rate)  # type: ignore[arg-type]
    foreign = BillPaymentIntent(**base, currency="EUR", exchange_rate=Decimal("1.1"))  # type: ignore[arg-type]
    assert foreign.key == home.key
    assert (foreign.body()["CurrencyRef"], foreign.body()["ExchangeRate"]) == (
        {"value": "EUR"},
        Decimal("1.1"),
    )
