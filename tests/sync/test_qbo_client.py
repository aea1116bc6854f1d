"""QBORawClient against the QBO sandbox (in-process over httpx.ASGITransport, and once over real HTTP),
plus real loopback sockets for the network failures the sandbox cannot produce in-process."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.chaos import FaultPlan, FaultRule
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.limits import LimitConfig
from sync.qbo import (
    QUERY_PAGE_SIZE,
    FloatInBodyError,
    OAuthTokenProvider,
    OAuthTokens,
    Outcome,
    QBOAuthError,
    QBOConnectionError,
    QBONotFoundError,
    QBOQueryError,
    QBORawClient,
    QBOServerError,
    QBOStaleObjectError,
    QBOThrottledError,
    QBOValidationError,
    StaticTokenProvider,
    quote_literal,
)

TOKEN_PATH = "/oauth2/v1/tokens/bearer"


def new_request_id() -> str:
    return str(uuid.uuid4())


def raw_client(sandbox: Sandbox, tokens=None, **kwargs) -> QBORawClient:
    return QBORawClient(
        "business-1",
        sandbox.realm_id,
        base_url=sandbox.base_url,
        tokens=tokens or StaticTokenProvider(sandbox.access_token),
        transport=httpx.ASGITransport(app=sandbox.app),
        **kwargs,
    )


def small_company(seed: int = 21, **config) -> Sandbox:
    """A sandbox whose company is scaled down (25 bills, 25 invoices): built in well under 0.1 s."""
    return create_app(SandboxConfig(seed=seed, scale=config.pop("scale", 25), **config))


@pytest.fixture
def sandbox() -> Sandbox:
    """This module's sandbox: the small company (the shared fixture seeds a full one, ten times slower)."""
    return small_company()


@pytest.fixture
async def client(sandbox) -> AsyncIterator[QBORawClient]:
    async with raw_client(sandbox) as qbo:
        yield qbo


def v3_requests(sandbox: Sandbox, route: str) -> int:
    return sandbox.stats()["requests"]["by_realm"].get(sandbox.realm_id, {}).get(route, 0)


async def first_id(client: QBORawClient, statement: str) -> str:
    rows = await client.query(statement)
    assert rows, f"the seeded company has rows for {statement!r}"
    return str(rows[0]["Id"])


async def new_bill(client: QBORawClient, amount: str = "250.00") -> dict:
    vendor_id = await first_id(client, "SELECT * FROM Vendor")
    expense_id = await first_id(client, "SELECT * FROM Account WHERE AccountType = 'Expense'")
    return await client.create(
        "Bill",
        {
            "VendorRef": {"value": vendor_id},
            "TxnDate": "2025-01-10",
            "DueDate": "2025-02-09",
            "Line": [
                {
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "Amount": Decimal(amount),
                    "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense_id}},
                }
            ],
        },
        request_id=new_request_id(),
    )


# --- reads and queries ------------------------------------------------------------------------------


async def test_company_info_and_decimal_amounts(client):
    info = await client.get_company_info_from_qbo()
    assert info["CompanyName"]
    assert info == await client.company_info()
    accounts = await client.get_accounts_from_qbo()
    banks = [a for a in accounts if a.get("AccountType") == "Bank"]
    assert banks
    assert all(isinstance(a["CurrentBalance"], Decimal | int) for a in banks)
    bills = await client.query("SELECT * FROM Bill")
    assert any(isinstance(b["TotalAmt"], Decimal) for b in bills), "amounts are parsed as Decimal"


async def test_query_forms(client):
    vendors = await client.get_vendors_from_qbo()
    customers = await client.get_customers_from_qbo()
    assert vendors and customers
    assert await client.count("Vendor") == len(vendors)
    assert await client.count("Bill", "Balance > '0'") == len(
        await client.query("SELECT * FROM Bill WHERE Balance > '0'")
    )
    assert await client.query("SELECT * FROM Bill WHERE Id = '999999999'") == []
    page = await client.query_page("SELECT * FROM Vendor STARTPOSITION 1 MAXRESULTS 2")
    assert len(page["Vendor"]) == 2
    assert page["startPosition"] == 1
    ordered = await client.query("SELECT * FROM Bill ORDERBY DueDate DESC")
    due = [b["DueDate"] for b in ordered if "DueDate" in b]
    assert due == sorted(due, reverse=True)


async def test_query_escapes_names_with_quotes_and_backslashes(client):
    name = "O'Brien \\ Sons & Co"
    created = await client.create("Vendor", {"DisplayName": name}, request_id=new_request_id())
    found = await client.query(f"SELECT * FROM Vendor WHERE DisplayName = {quote_literal(name)}")
    assert [v["Id"] for v in found] == [created["Id"]]
    assert found[0]["DisplayName"] == name


async def test_query_refuses_statements_that_page_or_count(client):
    with pytest.raises(ValueError, match="pages by itself"):
        await client.query("SELECT * FROM Bill MAXRESULTS 10")
    with pytest.raises(ValueError, match="count"):
        await client.query("SELECT COUNT(*) FROM Bill")
    # The words inside a literal are data, not paging clauses.
    assert await client.query("SELECT * FROM Vendor WHERE DisplayName = 'MAXRESULTS 5'") == []


async def test_malformed_query_is_a_query_error(client):
    with pytest.raises(QBOQueryError) as caught:
        await client.query("SELECT * FROM Bill WHERE Balance > '0' OR Id = '1'")
    assert caught.value.code == "4000"
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert caught.value.intuit_tid


async def test_query_pages_to_the_last_page():
    # A company with more bills than one page holds.
    sandbox = small_company(11, scale=QUERY_PAGE_SIZE + 150)
    async with raw_client(sandbox) as qbo:
        expected = await qbo.count("Bill")
        assert expected > QUERY_PAGE_SIZE
        before = v3_requests(sandbox, "query")
        bills = await qbo.query("SELECT * FROM Bill ORDERBY DueDate")
        assert v3_requests(sandbox, "query") - before == 2  # one full page, one short page
        assert len(bills) == expected
        assert len({b["Id"] for b in bills}) == expected
        due = [b["DueDate"] for b in bills]
        assert due == sorted(due)


async def test_get_and_not_found(client):
    bill_id = await first_id(client, "SELECT * FROM Bill")
    bill = await client.get("Bill", bill_id)
    assert bill["Id"] == bill_id
    with pytest.raises(QBONotFoundError) as caught:
        await client.get("Bill", "987654321")
    assert caught.value.outcome is Outcome.NOT_APPLIED


# --- writes -------------------------------------------------------------------------------------------


async def test_create_update_sparse_update_delete(client):
    vendor = await client.create(
        "Vendor",
        {"DisplayName": "Café Zoë", "CompanyName": "Zoë SARL"},
        request_id=new_request_id(),
    )
    assert vendor["SyncToken"] == "0"
    full = await client.update(
        "Vendor", {**vendor, "DisplayName": "Café Zoë Ltd"}, request_id=new_request_id()
    )
    assert full["SyncToken"] == "1"
    assert full["DisplayName"] == "Café Zoë Ltd"
    sparse = await client.update(
        "Vendor",
        {"Id": vendor["Id"], "SyncToken": full["SyncToken"], "CompanyName": "Zoë & Fils"},
        request_id=new_request_id(),
        sparse=True,
    )
    assert sparse["SyncToken"] == "2"
    assert sparse["CompanyName"] == "Zoë & Fils"
    assert sparse["DisplayName"] == "Café Zoë Ltd", (
        "a sparse update keeps the fields it does not name"
    )

    bill = await new_bill(client, "99.99")
    assert bill["TotalAmt"] == Decimal("99.99")
    deleted = await client.delete(
        "Bill", bill["Id"], bill["SyncToken"], request_id=new_request_id()
    )
    assert deleted["status"] == "Deleted"
    assert deleted["Id"] == bill["Id"]
    with pytest.raises(QBONotFoundError):
        await client.get("Bill", bill["Id"])


async def test_same_request_id_creates_one_object(sandbox, client):
    request_id = new_request_id()
    before = await client.count("Vendor")
    first = await client.create(
        "Vendor", {"DisplayName": "Idempotent Supplies"}, request_id=request_id
    )
    second = await client.create(
        "Vendor", {"DisplayName": "Idempotent Supplies"}, request_id=request_id
    )
    assert first == second
    assert await client.count("Vendor") == before + 1


async def test_stale_sync_token_is_refused(client):
    vendor = await client.create("Vendor", {"DisplayName": "Stale Co"}, request_id=new_request_id())
    await client.update("Vendor", {**vendor, "CompanyName": "Fresh"}, request_id=new_request_id())
    with pytest.raises(QBOStaleObjectError) as caught:
        await client.update(
            "Vendor", {**vendor, "CompanyName": "Old view"}, request_id=new_request_id()
        )
    assert caught.value.code == "5010"
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert not caught.value.retryable_safely(is_write=True, has_request_id=True)


async def test_request_id_and_body_are_checked_before_sending(sandbox, client):
    before = sandbox.stats()["requests"]["total"]
    with pytest.raises(ValueError, match="at most 50"):
        await client.create("Vendor", {"DisplayName": "x"}, request_id="r" * 51)
    with pytest.raises(ValueError, match="at most 36"):
        await client.batch([{"bId": "b1", "Query": "SELECT * FROM Bill"}], request_id="r" * 37)
    with pytest.raises(ValueError, match="1 to 10 characters"):
        await client.batch([{"bId": "b" * 11, "Query": "SELECT * FROM Bill"}], request_id="r1")
    with pytest.raises(FloatInBodyError, match=r"Line\[0\]\.Amount"):
        await client.create("Bill", {"Line": [{"Amount": 10.1}]}, request_id=new_request_id())
    with pytest.raises(ValueError, match="SyncToken"):
        await client.update("Vendor", {"Id": "1"}, request_id=new_request_id())
    assert sandbox.stats()["requests"]["total"] == before


async def test_pay_a_bill_and_read_its_payment_history(client):
    bill = await new_bill(client, "300.00")
    bank_id = await first_id(client, "SELECT * FROM Account WHERE AccountType = 'Bank'")
    payment = await client.create_payment_in_qbo(
        {
            "VendorRef": bill["VendorRef"],
            "PayType": "Check",
            "TotalAmt": Decimal("120.10"),
            "CheckPayment": {"BankAccountRef": {"value": bank_id}},
            "Line": [
                {
                    "Amount": Decimal("120.10"),
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        },
        request_id=new_request_id(),
    )
    after = await client.get("Bill", bill["Id"])
    assert after["Balance"] == Decimal("179.90")
    history = await client.get_payment_history("Bill", bill["Id"])
    assert [p["Id"] for p in history] == [payment["Id"]]
    assert history[0]["TotalAmt"] == Decimal("120.10")


async def test_invoice_payment_history_and_send(client):
    invoices = await client.get_invoices_from_qbo(aging_days=3650)
    assert invoices and all(i["Balance"] > 0 for i in invoices)
    invoice = invoices[0]
    sent = await client.send_invoice(invoice["Id"], "ap@example.com", request_id=new_request_id())
    assert sent["EmailStatus"] == "EmailSent"
    assert sent["BillEmail"]["Address"] == "ap@example.com"
    assert sent["DeliveryInfo"]["DeliveryType"] == "Email"
    bank_id = await first_id(client, "SELECT * FROM Account WHERE AccountType = 'Bank'")
    payment = await client.create(
        "Payment",
        {
            "CustomerRef": invoice["CustomerRef"],
            "TotalAmt": Decimal("1.00"),
            "DepositToAccountRef": {"value": bank_id},
            "Line": [
                {
                    "Amount": Decimal("1.00"),
                    "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                }
            ],
        },
        request_id=new_request_id(),
    )
    history = await client.get_payment_history("Invoice", invoice["Id"])
    assert payment["Id"] in [p["Id"] for p in history]


async def test_bills_due_soon_are_open_and_in_window(sandbox, client):
    today = sandbox.clock.now().astimezone(sandbox.realm().tz).date()
    window_end = (today + timedelta(days=30)).isoformat()
    bills = await client.get_bills_from_qbo(due_days=30, today=today)
    assert bills, "the seeded company has bills due within a month"
    assert all(b["Balance"] > 0 for b in bills)
    due = [b["DueDate"] for b in bills]
    assert due == sorted(due)
    open_bills = await client.query("SELECT * FROM Bill WHERE Balance > '0'")
    assert len(bills) == len([b for b in open_bills if b["DueDate"] <= window_end])


async def test_void_a_bill_payment(client):
    bill = await new_bill(client, "40.00")
    bank_id = await first_id(client, "SELECT * FROM Account WHERE AccountType = 'Bank'")
    payment = await client.create_payment_in_qbo(
        {
            "VendorRef": bill["VendorRef"],
            "PayType": "Check",
            "TotalAmt": Decimal("40.00"),
            "CheckPayment": {"BankAccountRef": {"value": bank_id}},
            "Line": [
                {
                    "Amount": Decimal("40.00"),
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        },
        request_id=new_request_id(),
    )
    assert (await client.get("Bill", bill["Id"]))["Balance"] == Decimal("0")
    await client.void(
        "BillPayment", payment["Id"], payment["SyncToken"], request_id=new_request_id()
    )
    assert (await client.get("Bill", bill["Id"]))["Balance"] == Decimal("40.00")


# --- cdc, batch, reports ------------------------------------------------------------------------------


async def test_cdc_reports_creates_updates_and_deletes(sandbox, client):
    since = sandbox.clock.now() - timedelta(seconds=1)
    vendor = await client.create(
        "Vendor", {"DisplayName": "CDC Hardware"}, request_id=new_request_id()
    )
    bill = await new_bill(client)
    await client.delete("Bill", bill["Id"], bill["SyncToken"], request_id=new_request_id())
    changes = await client.cdc(["Vendor", "Bill", "Invoice"], since)
    assert set(changes) >= {"Vendor", "Bill", "Invoice"}
    assert vendor["Id"] in [v["Id"] for v in changes["Vendor"]]
    tombstones = [b for b in changes["Bill"] if b.get("status") == "Deleted"]
    assert [b["Id"] for b in tombstones] == [bill["Id"]]
    with pytest.raises(ValueError, match="timezone-aware"):
        await client.cdc(["Bill"], since.replace(tzinfo=None))


async def test_batch_items_fail_independently(client):
    vendor = await client.create(
        "Vendor", {"DisplayName": "Batch Stale"}, request_id=new_request_id()
    )
    await client.update("Vendor", {**vendor, "CompanyName": "newer"}, request_id=new_request_id())
    results = await client.batch(
        [
            {"bId": "new", "operation": "create", "Vendor": {"DisplayName": "Batch New"}},
            {"bId": "stale", "operation": "update", "Vendor": {**vendor, "CompanyName": "older"}},
            {"bId": "q", "Query": "SELECT * FROM Vendor WHERE DisplayName = 'Batch New'"},
        ],
        request_id=new_request_id()[:36],
    )
    assert [r.bid for r in results] == ["new", "stale", "q"]
    created, stale, query = results
    assert created.ok and created.entity == "Vendor" and created.body["DisplayName"] == "Batch New"
    assert not stale.ok and isinstance(stale.error, QBOStaleObjectError)
    assert query.ok and query.entity == "QueryResponse"


async def test_reports_and_the_digest_bundles(client):
    aged = await client.report("AgedPayables")
    assert aged["Header"]["ReportName"] == "AgedPayables"
    assert "Rows" in aged and "Columns" in aged
    aging = await client.get_aging_report()
    assert aging["aged_payables"]["Header"]["ReportName"] == "AgedPayables"
    assert aging["aged_receivables"]["Header"]["ReportName"] == "AgedReceivables"
    kpi = await client.get_kpi_data()
    assert kpi["profit_and_loss"]["Header"]["ReportName"] == "ProfitAndLoss"
    assert kpi["cash_flow"]["Header"]["ReportName"] == "CashFlow"
    assert kpi["bank_accounts"] and all(a["AccountType"] == "Bank" for a in kpi["bank_accounts"])


# --- tokens -------------------------------------------------------------------------------------------


def oauth_provider(sandbox: Sandbox, http: httpx.AsyncClient, rotated: list, *, clock=None):
    now = sandbox.clock.now()

    async def on_rotate(tokens: OAuthTokens) -> None:
        rotated.append(tokens)

    return OAuthTokenProvider(
        sandbox.realm_id,
        sandbox.client_id,
        sandbox.client_secret,
        f"{sandbox.base_url}{TOKEN_PATH}",
        OAuthTokens(
            sandbox.access_token,
            sandbox.refresh_token,
            now + timedelta(hours=1),
            now + timedelta(days=100),
        ),
        on_rotate,
        http,
        clock=clock or sandbox.clock,
    )


async def test_expired_token_is_refreshed_and_the_rotation_persisted(sandbox):
    rotated: list[OAuthTokens] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as http:
        provider = oauth_provider(sandbox, http, rotated)
        async with raw_client(sandbox, tokens=provider) as qbo:
            sandbox.advance_clock(timedelta(hours=2))
            # Two calls at once with an expired token: one refresh serves both.
            info, vendors = await asyncio.gather(qbo.company_info(), qbo.get_vendors_from_qbo())
            assert info["CompanyName"] and vendors
    assert sandbox.stats()["token_refreshes"] == 1
    assert len(rotated) == 1
    assert rotated[0].refresh_token != sandbox.refresh_token
    assert rotated[0].access_token == provider.tokens.access_token


async def test_a_401_refreshes_once_and_retries_the_call(sandbox):
    rotated: list[OAuthTokens] = []
    # This process's clock lags: it believes the token is still fresh when QuickBooks says it is not.
    lagging = FixedClock(sandbox.clock.now())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox.app)) as http:
        provider = oauth_provider(sandbox, http, rotated, clock=lagging)
        async with raw_client(sandbox, tokens=provider) as qbo:
            sandbox.advance_clock(timedelta(hours=2))
            vendor = await qbo.create(
                "Vendor", {"DisplayName": "After 401"}, request_id=new_request_id()
            )
    assert vendor["DisplayName"] == "After 401"
    assert len(rotated) == 1
    assert sum(sandbox.stats()["auth_rejected"].values()) == 1


class FixedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class StillRefused:
    """A token source whose refreshed token QuickBooks refuses too (the connection was revoked)."""

    def __init__(self) -> None:
        self.refreshes = 0

    async def access_token(self) -> str:
        return "revoked-1"

    async def force_refresh(self, rejected: str) -> str:
        self.refreshes += 1
        return "revoked-2"


async def test_a_second_401_raises_auth_error(sandbox):
    tokens = StillRefused()
    async with raw_client(sandbox, tokens=tokens) as qbo:
        with pytest.raises(QBOAuthError) as caught:
            await qbo.company_info()
    assert tokens.refreshes == 1
    assert caught.value.status == 401
    assert caught.value.code == "3200"
    assert "after refreshing the token once" in str(caught.value)
    assert "/runway connect" in str(caught.value)


# --- QuickBooks on a bad day ----------------------------------------------------------------------


async def test_throttling_carries_retry_after():
    sandbox = small_company(12, limits=LimitConfig(requests_per_minute=3))
    async with raw_client(sandbox) as qbo:
        for _ in range(3):
            await qbo.company_info()
        with pytest.raises(QBOThrottledError) as caught:
            await qbo.company_info()
    assert caught.value.retry_after is not None and caught.value.retry_after >= 1
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert caught.value.code == "3001"


async def test_outage_is_a_server_error():
    sandbox = small_company(13, faults=FaultPlan(default=FaultRule(rate_5xx=1.0)))
    async with raw_client(sandbox) as qbo:
        for _ in range(4):  # the seeded mix of 503 HTML pages and 500 JSON faults
            with pytest.raises(QBOServerError) as caught:
                await qbo.company_info()
            assert caught.value.outcome is Outcome.UNKNOWN
            assert caught.value.retryable_safely(is_write=False, has_request_id=False)


async def test_lost_response_is_unknown_and_resending_with_the_same_request_id_is_safe():
    sandbox = small_company(14, faults=FaultPlan(by_kind={"write": FaultRule(rate_lost=1.0)}))
    request_id = new_request_id()
    async with raw_client(sandbox) as qbo:
        before = await qbo.count("Vendor")
        with pytest.raises((QBOConnectionError, QBOServerError)) as caught:
            await qbo.create("Vendor", {"DisplayName": "Lost Answer Ltd"}, request_id=request_id)
        error = caught.value
        assert error.outcome is Outcome.UNKNOWN
        assert error.retryable_safely(is_write=True, has_request_id=True)
        assert not error.retryable_safely(is_write=True, has_request_id=False)
        sandbox.chaos.plan = FaultPlan()
        vendor = await qbo.create(
            "Vendor", {"DisplayName": "Lost Answer Ltd"}, request_id=request_id
        )
        assert vendor["DisplayName"] == "Lost Answer Ltd"
        assert await qbo.count("Vendor") == before + 1
        named = await qbo.query("SELECT * FROM Vendor WHERE DisplayName = 'Lost Answer Ltd'")
        assert [v["Id"] for v in named] == [vendor["Id"]]


async def test_validation_error_names_the_problem(client):
    with pytest.raises(QBOValidationError) as caught:
        await client.create(
            "BillPayment",
            {"PayType": "Check", "TotalAmt": Decimal("5.00"), "Line": []},
            request_id=new_request_id(),
        )
    assert caught.value.errors
    assert caught.value.outcome is Outcome.NOT_APPLIED


# --- the network itself (real loopback sockets) ---------------------------------------------------


async def test_connection_refused_was_not_applied():
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    async with QBORawClient(
        "business-1", "123", base_url=f"http://127.0.0.1:{port}", tokens=StaticTokenProvider("t")
    ) as qbo:
        with pytest.raises(QBOConnectionError) as caught:
            await qbo.create("Vendor", {"DisplayName": "x"}, request_id=new_request_id())
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert caught.value.retryable_safely(is_write=True, has_request_id=False)
    assert "never reached QuickBooks" in str(caught.value)


async def test_read_timeout_and_dropped_connection_are_unknown():
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(5)  # never answers within the client's timeout
        writer.close()

    async def rude(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Vendor":')
        await writer.drain()
        writer.close()

    for handler in (silent, rude):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with QBORawClient(
                "business-1",
                "123",
                base_url=f"http://127.0.0.1:{port}",
                tokens=StaticTokenProvider("t"),
                timeout=httpx.Timeout(0.3),
            ) as qbo:
                with pytest.raises(QBOConnectionError) as caught:
                    await qbo.create("Vendor", {"DisplayName": "x"}, request_id=new_request_id())
            assert caught.value.outcome is Outcome.UNKNOWN, handler.__name__
            assert "same requestid" in str(caught.value)
        finally:
            server.close()


# --- logging and real HTTP ----------------------------------------------------------------------------


async def test_each_call_is_logged_with_realm_status_and_duration(sandbox, client, caplog):
    with caplog.at_level(logging.INFO, logger="sync.qbo.client"):
        await client.company_info()
    record = next(
        r
        for r in caplog.records
        if getattr(r, "qbo_path", None) == f"/companyinfo/{sandbox.realm_id}"
    )
    assert record.realm_id == sandbox.realm_id
    assert record.business_id == "business-1"
    assert record.qbo_method == "GET"
    assert record.status == 200
    assert record.duration_ms >= 0
    assert record.intuit_tid


@pytest.mark.http
async def test_over_real_http(live_sandbox):
    sandbox = live_sandbox.sandbox
    async with QBORawClient(
        "business-1",
        sandbox.realm_id,
        base_url=live_sandbox.base_url,
        tokens=StaticTokenProvider(sandbox.access_token),
    ) as qbo:
        info = await qbo.company_info()
        bills = await qbo.get_bills_from_qbo(due_days=3650)
        vendor = await qbo.create(
            "Vendor", {"DisplayName": f"HTTP {uuid.uuid4().hex[:8]}"}, request_id=new_request_id()
        )
    assert info["CompanyName"]
    assert all(b["Balance"] > 0 for b in bills)
    assert vendor["Id"]
