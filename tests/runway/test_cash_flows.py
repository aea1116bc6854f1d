"""Cash movements of the seeded company through the sandbox's API, the mirror and the calculator:
owner money is financing (it used to lower the burn and lengthen the runway: 402 -> 734 days), a
sales receipt deposited straight to the bank is cash in (it used to be invisible), and the figures
agree with QuickBooks' Statement of Cash Flows for the same window."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import httpx
import pytest
from db_conftest import MigratedDatabase
from runway_env import FAST, RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import BooksSnapshot, MovementKind, business_today
from runway.calculator import RunwayCalculator, RunwayFigures
from runway.cash_flow import CashFlowClass
from runway.snapshot import load_books
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider
from sync_harness import OffsetClock

BUSINESS = "biz-larkspur"
TZ = "America/Los_Angeles"
D = Decimal


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED))


def account_id(env: RunwayEnv, account_type: str, name: str | None = None) -> str:
    return next(
        str(obj["Id"])
        for obj in env.sandbox.realm().iter("Account")
        if obj["AccountType"] == account_type and (name is None or obj["Name"] == name)
    )


async def post(env: RunwayEnv, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    async with env.sandbox.http_client() as client:
        response = await client.post(env.sandbox.v3_path(entity.lower()), json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()[entity]
    return created


async def figures(env: RunwayEnv) -> tuple[BooksSnapshot, RunwayFigures]:
    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    async with env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, business_today(datetime.now(UTC), TZ))
    return books, RunwayCalculator().figures(books)


async def test_owner_money_is_financing_not_burn(runway_env: RunwayEnv) -> None:
    env = runway_env
    books, before = await figures(env)
    assert before.runway.days is not None and before.burn.net > 0

    await post(
        env,
        "Deposit",
        {
            "TxnDate": books.today.isoformat(),
            "DepositToAccountRef": {"value": account_id(env, "Bank", "Checking")},
            "Line": [
                {
                    "Amount": "10000.00",
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": {"value": account_id(env, "Equity")}},
                }
            ],
        },
    )
    _, after = await figures(env)

    # The burn is what it was; only the cash grew, by the owner's $10,000.00.
    assert (after.burn.cash_out, after.burn.cash_in) == (before.burn.cash_out, before.burn.cash_in)
    assert after.cash.total == before.cash.total + D("10000.00")
    exact = after.cash.total * 90 / after.burn.net
    assert after.runway.days == int(exact.to_integral_value(rounding=ROUND_FLOOR))
    assert after.financing.owner_in == D("10000.00")
    assert after.financing.sentence() == "Owner put in $10,000.00 over the last 90 days"


async def test_a_sales_receipt_deposited_to_the_bank_is_cash_in(runway_env: RunwayEnv) -> None:
    env = runway_env
    books, before = await figures(env)
    item = await post(
        env,
        "Item",
        {
            "Name": "Counter sales",
            "Type": "Service",
            "IncomeAccountRef": {"value": account_id(env, "Income")},
        },
    )

    receipt = await post(
        env,
        "SalesReceipt",
        {
            "TxnDate": books.today.isoformat(),
            "DepositToAccountRef": {"value": account_id(env, "Bank", "Checking")},
            "TotalAmt": "1234.56",
            "Line": [
                {
                    "Amount": "1234.56",
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )
    books, after = await figures(env)

    assert after.burn.cash_in == before.burn.cash_in + D("1234.56")
    assert after.burn.cash_out == before.burn.cash_out
    async with env.uows(BUSINESS) as uow:  # each transaction's movements, as the mirror keeps them
        movements = await uow.cash_movements.dated_between(books.today)
    sales = [m for m in movements if m.source_id == receipt["Id"]]
    assert [(m.kind, m.amount) for m in sales] == [(MovementKind.SALES_RECEIPT, D("1234.56"))]


def _report_values(rows: dict[str, Any], found: dict[str, Decimal]) -> dict[str, Decimal]:
    """The summaries (by group) and the lines (by name) of a QuickBooks report's rows."""
    for row in rows.get("Row", []):
        if "Rows" in row:
            _report_values(row["Rows"], found)
        data = row.get("ColData")
        if data and data[1].get("value"):
            found[str(data[0]["value"])] = D(str(data[1]["value"]))
        summary = (row.get("Summary") or {}).get("ColData")
        if summary and row.get("group"):
            found[str(row["group"])] = D(str(summary[1]["value"]))
    return found


async def test_the_runway_agrees_with_quickbooks_statement_of_cash_flows(
    migrated: MigratedDatabase,
) -> None:
    """The default company with every kind of cash movement (counter sales on sales receipts,
    owner money, a bank loan, transfers, journal entries, card payments, a vendor credit) and a
    euro supplier: over the same 90 days, Oodaloo's burn is minus the statement's operating and
    investing cash, its financing is the statement's, and the banks plus Undeposited Funds are the
    statement's cash at the end."""
    books_sandbox = create_app(
        SandboxConfig(seed=DEFAULT_SEED, full_books=True, euro_supplier=True)
    )
    infra = SyncInfrastructure(
        engine=migrated.engine,
        backend=MemoryBackend(),
        tokens_for=lambda realm_id: StaticTokenProvider(books_sandbox.access_token),
        settings=SyncSettings(**{**FAST.__dict__, "qbo_base_url": books_sandbox.base_url}),
        clock=OffsetClock(),
        transport=httpx.ASGITransport(app=books_sandbox.app),
        owns_engine=False,
    )
    env = RunwayEnv(migrated, books_sandbox, infra, UnitOfWorkFactory(migrated.sessions), {})
    try:
        await env.add_business(BUSINESS, books_sandbox.realm_id, books_sandbox.access_token)
        await env.mirror(BUSINESS, books_sandbox.realm_id).sync()
        realm = books_sandbox.realm()
        today = books_sandbox.clock.now().astimezone(realm.tz).date()
        async with env.uows(BUSINESS) as uow:
            books = await load_books(uow, BUSINESS, today)
        figures = RunwayCalculator().figures(books)
        async with books_sandbox.http_client() as client:
            response = await client.get(
                books_sandbox.v3_path("reports/CashFlow"),
                params={
                    "start_date": figures.burn.window_start.isoformat(),
                    "end_date": today.isoformat(),
                },
            )
        assert response.status_code == 200, response.text
        statement = _report_values(response.json()["Rows"], {})
    finally:
        await infra.aclose()
        await books_sandbox.aclose()

    assert books.multicurrency and {bank.currency for bank in books.banks} == {"USD"}
    kinds = {m.cash_flow for m in books.movements}
    assert CashFlowClass.FINANCING in kinds and CashFlowClass.TRANSFER in kinds
    operating_and_investing = statement["OperatingActivities"] + statement.get(
        "InvestingActivities", D("0.00")
    )
    assert -figures.burn.net == operating_and_investing
    assert figures.financing.net == statement.get("FinancingActivities", D("0.00"))
    assert figures.cash.total + figures.cash.undeposited == statement["EndingCash"]
