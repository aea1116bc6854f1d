"""SmartSyncService against the QBO sandbox: a bill is paid exactly once whatever QuickBooks does.

Each test runs the real service, ledger (SQLite file), in-process backends and the sandbox over
httpx.ASGITransport; faults come from the sandbox's own FaultPlan, counts from its admin stats.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from sync import metrics as m
from sync.actions import BillPaymentIntent, CustomerPaymentIntent, InvoiceSendIntent
from sync.circuit import CircuitConfig, CircuitOpen
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.ledger import ActionState, ConflictingAction
from sync.qbo import OAuthTokenProvider, OAuthTokens, QBOValidationError
from sync.ratelimit import RateLimitConfig
from sync.reconcile import Reconciler
from sync.service import SmartSyncService, SyncUnavailable
from sync_harness import (
    BUSINESS_ID,
    OffsetClock,
    Stack,
    admin_stats,
    bank_account_id,
    build_infra,
    create_bills,
    eventually,
    open_stack,
    payments_marked,
    put_faults,
    route_count,
    stored,
)

SETTINGS = SyncSettings(
    rate_limit=RateLimitConfig(requests_per_window=500, window_seconds=60.0, max_concurrency=10),
    circuit=CircuitConfig(failure_threshold=3, cooldown_seconds=30.0),
).scaled(0.02)


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig())


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack("embedded", tmp_path) as opened:
        yield opened


@pytest.fixture
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture
async def infra(stack: Stack, sandbox: Sandbox, clock: OffsetClock) -> AsyncIterator[SyncInfrastructure]:
    built = await build_infra(stack, sandbox, SETTINGS, clock=clock)
    yield built
    await built.aclose()


@pytest.fixture
def service(infra: SyncInfrastructure, sandbox: Sandbox) -> SmartSyncService:
    return SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)


async def pay_intent(sandbox: Sandbox, bill: dict[str, Any], **changes: Any) -> BillPaymentIntent:
    intent = BillPaymentIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        bill_id=str(bill["Id"]),
        bill_sync_token=str(bill["SyncToken"]),
        vendor_id=str(bill["VendorRef"]["value"]),
        amount=bill["Balance"],
        bank_account_id=await bank_account_id(sandbox),
        pay_date=date.today(),
        requested_by="U-owner",
    )
    return replace(intent, **changes)


async def test_pay_bill_happy_path(service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure) -> None:
    [bill] = await create_bills(sandbox, [Decimal("1250.40")])
    bank_before = stored(sandbox, "Account", await bank_account_id(sandbox))
    intent = await pay_intent(sandbox, bill)

    outcome = await service.create_payment_immediate(intent)

    assert outcome.state is ActionState.SUCCEEDED and outcome.succeeded
    assert not outcome.deduplicated
    [payment] = payments_marked(sandbox, intent.key)
    assert outcome.qbo_object_id == payment["Id"]
    assert payment["TotalAmt"] == Decimal("1250.40")
    assert stored(sandbox, "Bill", bill["Id"])["Balance"] == Decimal("0.00")
    bank_after = stored(sandbox, "Account", await bank_account_id(sandbox))
    assert bank_before["CurrentBalance"] - bank_after["CurrentBalance"] == Decimal("1250.40")
    action = await infra.ledger.get(intent.key)
    assert action is not None and action.state is ActionState.SUCCEEDED
    assert action.qbo_object_id == payment["Id"] and action.attempts == 1
    assert "Already" not in outcome.message and payment["Id"] in outcome.message


async def test_same_request_twice_calls_quickbooks_once(
    service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("88.10")])
    intent = await pay_intent(sandbox, bill)

    first = await service.create_payment_immediate(intent)
    again = await service.create_payment_immediate(intent)
    # A double click: two identical requests at the same moment.
    clicks = await asyncio.gather(*(service.create_payment_immediate(intent) for _ in range(5)))

    stats = await admin_stats(sandbox)
    assert route_count(stats, sandbox.realm_id, "billpayment") == 1
    assert len(payments_marked(sandbox, intent.key)) == 1
    assert first.succeeded and not first.deduplicated
    for repeat in (again, *clicks):
        assert repeat.deduplicated
        assert repeat.state is ActionState.SUCCEEDED
        assert repeat.qbo_object_id == first.qbo_object_id
        assert repeat.message.startswith("Already requested")
    assert infra.metrics.get(m.DEDUPLICATED) == 6


async def test_concurrent_first_clicks_make_one_payment(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("40.00")])
    intent = await pay_intent(sandbox, bill)

    outcomes = await asyncio.gather(*(service.create_payment_immediate(intent) for _ in range(8)))

    assert len(payments_marked(sandbox, intent.key)) == 1
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 1
    assert sum(not outcome.deduplicated for outcome in outcomes) == 1
    assert {outcome.key for outcome in outcomes} == {intent.key}


async def test_same_key_with_a_different_payload_is_refused(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("300.00")])
    intent = await pay_intent(sandbox, bill)
    await service.create_payment_immediate(intent)
    # Same bill, version and amount (so the same key), but paid from another account.
    savings = next(
        account for account in sandbox.realm().iter("Account") if account["Name"] == "Savings"
    )
    other = replace(intent, bank_account_id=str(savings["Id"]))
    assert other.key == intent.key

    with pytest.raises(ConflictingAction, match="different payload"):
        await service.create_payment_immediate(other)
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 1


async def test_validation_fault_fails_with_the_reason_and_is_not_retried(
    service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("500.00")])
    intent = await pay_intent(sandbox, bill, amount=Decimal("750.00"))  # more than is owed

    outcome = await service.create_payment_immediate(intent)

    assert outcome.state is ActionState.FAILED
    assert "more than bill" in outcome.message and "nothing was applied" in outcome.message
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 1
    assert infra.metrics.get(m.RETRIES) == 0
    assert stored(sandbox, "Bill", bill["Id"])["Balance"] == Decimal("500.00")
    action = await infra.ledger.get(intent.key)
    assert action is not None and action.state is ActionState.FAILED
    assert "more than bill" in (action.last_error or "")


async def test_lost_response_is_retried_with_the_same_requestid_and_pays_once(
    service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure, clock: OffsetClock
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("612.35")])
    intent = await pay_intent(sandbox, bill)
    # Every payment request is applied, then its response is lost (a dropped connection).
    await put_faults(
        sandbox,
        {
            "by_path": [
                {"pattern": "billpayment", "method": "POST", "rule": {"rate_lost": 1.0}}
            ],
            "lost_weights": {"dropped": 1},
        },
    )

    outcome = await service.create_payment_immediate(intent)

    stats = await admin_stats(sandbox)
    assert route_count(stats, sandbox.realm_id, "billpayment") == 3  # three tries
    assert stats["faults"]["injected"]["lost_dropped"] == 3
    assert len(payments_marked(sandbox, intent.key)) == 1  # QuickBooks replayed the first answer
    assert stored(sandbox, "Bill", bill["Id"])["Balance"] == Decimal("0.00")
    assert outcome.state is ActionState.UNKNOWN
    assert "did not confirm" in outcome.message
    assert infra.metrics.get(m.UNKNOWN_OUTCOMES) == 1 and infra.metrics.get(m.RETRIES) == 2

    # The reconciler finds the payment by its marker and settles the action without resending
    # (once the circuit, opened by three dropped connections in a row, has cooled down).
    await put_faults(sandbox, {})
    clock.advance(timedelta(minutes=1))
    [resolution] = await Reconciler(infra).sweep()
    assert resolution.state is ActionState.SUCCEEDED and resolution.how == "found"
    assert resolution.qbo_object_id == payments_marked(sandbox, intent.key)[0]["Id"]
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 3


async def test_lost_response_then_an_answer_settles_at_once(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    """The second try (same requestid) gets QuickBooks' replay of the first, applied, answer."""
    [bill] = await create_bills(sandbox, [Decimal("75.00")])
    intent = await pay_intent(sandbox, bill)
    await put_faults(
        sandbox,
        {
            "by_path": [
                {"pattern": "billpayment", "method": "POST", "rule": {"rate_lost": 1.0}}
            ],
            "lost_weights": {"502": 1},
        },
    )
    task = asyncio.create_task(service.create_payment_immediate(intent))
    # As soon as the first try has been applied and its answer lost, QuickBooks recovers.
    await eventually(lambda: payments_marked(sandbox, intent.key), what="the first try")
    await put_faults(sandbox, {})

    outcome = await task

    assert outcome.state is ActionState.SUCCEEDED
    [payment] = payments_marked(sandbox, intent.key)
    assert outcome.qbo_object_id == payment["Id"]
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == 2


async def test_circuit_open_serves_stale_reads_and_keeps_writes_pending(
    service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure, clock: OffsetClock
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("410.00")])
    intent = await pay_intent(sandbox, bill)
    fresh = await service.get_bills_for_digest()
    assert not fresh.stale and any(b["Id"] == bill["Id"] for b in fresh.data)
    company = await service.get_company_info()
    assert not company.stale

    clock.advance(timedelta(hours=5))  # past the cache's 240 minutes: the next read must ask QBO
    await put_faults(sandbox, {"default": {"rate_5xx": 1.0}})

    stale = await service.get_bills_for_digest()
    assert stale.stale and stale.data == fresh.data
    assert stale.as_of == fresh.as_of
    assert stale.age >= timedelta(hours=5)
    with pytest.raises(CircuitOpen):
        await infra.circuit.check(sandbox.realm_id)

    # While the circuit is open, a payment is kept, not sent and not dropped.
    calls_before = route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment")
    outcome = await service.create_payment_immediate(intent)
    assert outcome.state is ActionState.PENDING
    assert "will go through" in outcome.message
    assert route_count(await admin_stats(sandbox), sandbox.realm_id, "billpayment") == calls_before
    assert payments_marked(sandbox, intent.key) == []
    # Still served from the last known good copy, with its age.
    assert (await service.get_company_info()).stale

    # QuickBooks recovers; after the cool-down the sweep sends the kept payment.
    await put_faults(sandbox, {})
    clock.advance(timedelta(minutes=5))
    resolutions = await Reconciler(infra).sweep()
    assert [r.state for r in resolutions] == [ActionState.SUCCEEDED]
    assert resolutions[0].previous_state is ActionState.PENDING
    assert len(payments_marked(sandbox, intent.key)) == 1
    assert stored(sandbox, "Bill", bill["Id"])["Balance"] == Decimal("0.00")
    after = await service.get_bills_for_digest()
    assert not after.stale and all(b["Id"] != bill["Id"] for b in after.data)


async def test_read_without_any_copy_during_an_outage_says_so(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    await put_faults(sandbox, {"default": {"rate_5xx": 1.0}})
    with pytest.raises(SyncUnavailable, match="no earlier copy"):
        await service.get_invoices_for_digest()


async def test_reads_are_cached_and_writes_invalidate_them(
    service: SmartSyncService, sandbox: Sandbox, infra: SyncInfrastructure, clock: OffsetClock
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("99.99")])
    intent = await pay_intent(sandbox, bill)
    queries_before = route_count(await admin_stats(sandbox), sandbox.realm_id, "query")
    first = await service.get_bills_for_digest()
    clock.advance(60)
    second = await service.get_bills_for_digest()
    assert second.as_of == first.as_of and second.age >= timedelta(seconds=60)
    assert second.data == first.data and not second.stale
    assert infra.metrics.get(m.CACHE_HITS) == 1
    queries = route_count(await admin_stats(sandbox), sandbox.realm_id, "query")
    assert queries == queries_before + 1

    await service.create_payment_immediate(intent)
    third = await service.get_bills_for_digest()
    assert third.as_of > first.as_of
    assert all(b["Id"] != bill["Id"] for b in third.data)


async def test_expired_access_token_is_refreshed_once_and_the_call_retried_once(
    stack: Stack, sandbox: Sandbox, clock: OffsetClock
) -> None:
    rotated: list[OAuthTokens] = []
    # The provider believes its token good for hours; QuickBooks (the sandbox clock) says expired.
    sandbox.advance_clock(timedelta(hours=2))
    oauth_http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app))
    now = clock.now()
    provider = OAuthTokenProvider(
        sandbox.realm_id,
        sandbox.client_id,
        sandbox.client_secret,
        f"{sandbox.base_url}/oauth2/v1/tokens/bearer",
        OAuthTokens(
            sandbox.access_token,
            sandbox.refresh_token,
            expires_at=now + timedelta(hours=6),
            refresh_expires_at=now + timedelta(days=90),
        ),
        on_rotate=lambda tokens: _remember(rotated, tokens),
        http=oauth_http,
    )
    infra = await build_infra(
        stack, sandbox, SETTINGS, clock=clock, tokens_for=lambda realm_id: provider
    )
    try:
        service = SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
        info = await service.get_company_info()
        assert info.data["CompanyName"]
        stats = await admin_stats(sandbox)
        assert stats["token_refreshes"] == 1
        assert stats["auth_rejected"]["401"] == 1
        assert route_count(stats, sandbox.realm_id, "companyinfo/{id}") == 2
        assert len(rotated) == 1 and rotated[0].refresh_token != sandbox.refresh_token
        assert infra.metrics.get(m.RETRIES) == 0  # the refresh is the client's single retry
    finally:
        await infra.aclose()
        await oauth_http.aclose()


async def _remember(into: list[OAuthTokens], tokens: OAuthTokens) -> None:
    into.append(tokens)


async def test_throttled_calls_back_off_and_succeed(
    stack: Stack, sandbox: Sandbox, clock: OffsetClock
) -> None:
    # QuickBooks allows 4 requests a second here; the service's limiter is configured looser, so
    # the sandbox answers 429 with Retry-After and the whole realm waits it out.
    async with sandbox.http_client(access_token="") as http:
        response = await http.put(
            "/_sandbox/limits", json={"requests_per_minute": 4, "window_seconds": 1.0}
        )
        response.raise_for_status()
    settings = replace(
        SETTINGS,
        retry=SETTINGS.retry.scaled(1),  # waits of the data-fetch policy at 2 % already
        slot_timeouts={p: 5.0 for p in SETTINGS.slot_timeouts},
        attempt_timeouts={p: 5.0 for p in SETTINGS.attempt_timeouts},
    )
    infra = await build_infra(stack, sandbox, settings, clock=clock)
    try:
        service = SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
        results = await asyncio.gather(
            *(service.execute_qbo_call("get", "Account", "2") for _ in range(6))
        )
        assert all(account["Id"] == "2" for account in results)
        stats = await admin_stats(sandbox)
        assert stats["throttled_total"] >= 1
        assert infra.metrics.get(m.THROTTLED) == stats["throttled_total"]
    finally:
        await infra.aclose()


async def test_customer_payment_and_invoice_reminder_are_recorded_once(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    invoice = next(
        inv
        for inv in sandbox.realm().iter("Invoice")
        if inv["Balance"] > 0 and (inv.get("BillEmail") or {}).get("Address")
    )
    payment = CustomerPaymentIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        invoice_id=invoice["Id"],
        invoice_sync_token=invoice["SyncToken"],
        customer_id=invoice["CustomerRef"]["value"],
        amount=Decimal("10.00"),
        payment_date=date.today(),
        requested_by="U-owner",
    )
    first = await service.record_payment(payment)
    again = await service.record_payment(payment)
    assert first.succeeded and again.deduplicated and again.qbo_object_id == first.qbo_object_id
    assert stored(sandbox, "Invoice", invoice["Id"])["Balance"] == invoice["Balance"] - Decimal("10.00")

    current = stored(sandbox, "Invoice", invoice["Id"])
    reminder = InvoiceSendIntent(
        business_id=BUSINESS_ID,
        realm_id=sandbox.realm_id,
        invoice_id=current["Id"],
        invoice_sync_token=current["SyncToken"],
        balance=current["Balance"],
        requested_by="U-owner",
    )
    sent = await service.send_invoice(reminder)
    resent = await service.send_invoice(reminder)
    assert sent.succeeded and resent.deduplicated
    assert stored(sandbox, "Invoice", invoice["Id"])["EmailStatus"] == "EmailSent"
    stats = await admin_stats(sandbox)
    assert route_count(stats, sandbox.realm_id, "invoice/{id}/send") == 1
    assert route_count(stats, sandbox.realm_id, "payment") == 1


async def test_an_action_for_another_business_is_refused(
    service: SmartSyncService, sandbox: Sandbox
) -> None:
    [bill] = await create_bills(sandbox, [Decimal("5.00")])
    intent = await pay_intent(sandbox, bill, business_id="biz-someone-else")
    with pytest.raises(ValueError, match="refusing an action for business biz-someone-else"):
        await service.create_payment_immediate(intent)


def test_amounts_must_be_decimal() -> None:
    with pytest.raises(TypeError, match="Decimal"):
        BillPaymentIntent(
            business_id=BUSINESS_ID,
            realm_id="1",
            bill_id="2",
            bill_sync_token="0",
            vendor_id="3",
            amount=12.5,  # type: ignore[arg-type]
            bank_account_id="4",
            pay_date=date.today(),
            requested_by="U",
        )


async def test_execute_qbo_call_refuses_unknown_operations(service: SmartSyncService) -> None:
    with pytest.raises(ValueError, match="not a QuickBooks operation"):
        await service.execute_qbo_call("_send")
    with pytest.raises(QBOValidationError):
        await service.execute_qbo_call("query", "SELECT * FROM Bill WHERE")
