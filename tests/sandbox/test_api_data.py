"""The sandbox's v3 data API over HTTP (httpx over ASGI): QBO's paths, JSON and faults, requestid
replay, SyncToken concurrency, bookkeeping that keeps bills, invoices and accounts coherent,
CDC, batch, reports and invoice send."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import simplejson

from qbo_sandbox.api import build_v3_app
from qbo_sandbox.store import ChangeEvent, Realm, Store

REALM = "4620816365"
V3 = f"/v3/company/{REALM}"
NOW = datetime(2024, 6, 14, 16, 30, tzinfo=UTC)  # 09:30 in the company's zone
TIME_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
TRICKY_NAME = 'O\'Brien & Søn <"Café">'


class SteppingClock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


def ref(obj: dict[str, Any]) -> dict[str, str]:
    return {"value": obj["Id"]}


class Company:
    """A small company: accounts, two vendors, a customer, open bills and invoices."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm

        def account(name: str, kind: str, sub: str, balance: str = "0") -> dict[str, Any]:
            return realm.insert(
                "Account",
                {
                    "Name": name,
                    "AccountType": kind,
                    "AccountSubType": sub,
                    "Active": True,
                    "CurrentBalance": Decimal(balance),
                    "CurrentBalanceWithSubAccounts": Decimal(balance),
                },
            )

        self.checking = account("Checking", "Bank", "Checking", "5000.00")
        self.card = account("Visa", "Credit Card", "CreditCard", "150.00")
        self.undeposited = account("Undeposited Funds", "Other Current Asset", "UndepositedFunds")
        self.ap = account("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable")
        self.sales = account("Sales", "Income", "SalesOfProductIncome")
        self.rent = account("Rent", "Expense", "RentOrLeaseOfBuildings")
        self.cogs = account("Coffee Beans", "Cost of Goods Sold", "SuppliesMaterialsCogs")
        self.equity = account("Opening Balance Equity", "Equity", "OpeningBalanceEquity", "4850.00")

        def opening(account: dict[str, Any], posting: str, amount: str) -> dict[str, Any]:
            return {
                "Amount": Decimal(amount),
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": ref(account)},
            }

        # The opening balances above, as the books record them: against Opening Balance Equity.
        realm.insert(
            "JournalEntry",
            {
                "TxnDate": "2024-01-01",
                "Line": [
                    opening(self.checking, "Debit", "5000.00"),
                    opening(self.card, "Credit", "150.00"),
                    opening(self.equity, "Credit", "4850.00"),
                ],
            },
        )
        self.beans = realm.insert(
            "Item",
            {"Name": "Beans", "Type": "Service", "IncomeAccountRef": ref(self.sales), "Active": True},
        )
        self.landlord = realm.insert("Vendor", {"DisplayName": "Hall Properties", "Active": True})
        self.roaster = realm.insert("Vendor", {"DisplayName": TRICKY_NAME, "Active": True})
        self.customer = realm.insert(
            "Customer",
            {
                "DisplayName": "Travis Waldron",
                "Active": True,
                "PrimaryEmailAddr": {"Address": "travis@example.com"},
            },
        )
        realm.insert(
            "CompanyInfo", {"Id": "1", "CompanyName": "Bean There Coffee", "Country": "US"}
        )

    def bill(
        self, vendor: dict[str, Any], amount: str, due: str, account: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {
            "VendorRef": ref(vendor),
            "TxnDate": "2024-05-01",
            "DueDate": due,
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": ref(account or self.rent)},
                }
            ],
        }

    def invoice(self, amount: str, due: str) -> dict[str, Any]:
        return {
            "CustomerRef": ref(self.customer),
            "TxnDate": "2024-05-10",
            "DueDate": due,
            "Line": [
                {
                    "Amount": amount,
                    "DetailType": "SalesItemLineDetail",
                    "SalesItemLineDetail": {
                        "ItemRef": {"value": self.beans["Id"], "name": "Beans"},
                        "ItemAccountRef": ref(self.sales),
                    },
                },
                {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
            ],
        }

    def account_balance(self, account: dict[str, Any]) -> Decimal:
        return self.realm.get("Account", account["Id"])["CurrentBalance"]


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(NOW)


@pytest.fixture
def store(clock: SteppingClock) -> Store:
    return Store(clock)


@pytest.fixture
def company(store: Store) -> Company:
    return Company(store.create_realm(REALM))


@pytest.fixture
async def qbo(store: Store, company: Company) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_v3_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


def body(response: httpx.Response) -> dict[str, Any]:
    return simplejson.loads(response.text, use_decimal=True)


async def post(qbo: httpx.AsyncClient, path: str, payload: Any, **params: str) -> httpx.Response:
    return await qbo.post(
        f"{V3}/{path}",
        params={"minorversion": "75", **params},
        content=simplejson.dumps(payload, use_decimal=True),
        headers={"Content-Type": "application/json"},
    )


async def create(
    qbo: httpx.AsyncClient, entity: str, payload: dict[str, Any], **params: str
) -> dict[str, Any]:
    response = await post(qbo, entity.lower(), payload, **params)
    assert response.status_code == 200, response.text
    return body(response)[entity]


def fault_of(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    envelope = body(response)
    assert set(envelope) == {"Fault", "time"}
    assert TIME_FORMAT.match(envelope["time"])
    (error,) = envelope["Fault"]["Error"]
    assert set(error) == {"Message", "Detail", "code", "element"}
    assert isinstance(error["code"], str)
    return {"type": envelope["Fault"]["type"], **error}


async def query(qbo: httpx.AsyncClient, statement: str) -> dict[str, Any]:
    response = await qbo.post(
        f"{V3}/query", content=statement.encode(), headers={"Content-Type": "application/text"}
    )
    assert response.status_code == 200, response.text
    return body(response)["QueryResponse"]


# -- query ---------------------------------------------------------------------------------------


async def test_query_by_get_and_post_with_qbo_response_shape(qbo, company):
    for due in ("2024-06-01", "2024-06-20", "2024-07-01"):
        await create(qbo, "Bill", company.bill(company.landlord, "100.00", due))
    got = await qbo.get(
        f"{V3}/query",
        params={
            "query": "select * from Bill where DueDate < '2024-06-30' ORDER BY DueDate DESC",
            "minorversion": "40",
        },
    )
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/json")
    assert got.headers["intuit_tid"]
    envelope = body(got)
    assert TIME_FORMAT.match(envelope["time"]) and envelope["time"].endswith("-07:00")
    response = envelope["QueryResponse"]
    assert [b["DueDate"] for b in response["Bill"]] == ["2024-06-20", "2024-06-01"]
    assert (
        response["startPosition"] == 1
        and response["maxResults"] == 2
        and "totalCount" not in response  # the total is what COUNT(*) answers
    )

    posted = await query(
        qbo,
        f"SELECT * FROM Bill WHERE TotalAmt >= '100' AND VendorRef IN ('{company.landlord['Id']}') "
        "ORDERBY DueDate STARTPOSITION 2 MAXRESULTS 1",
    )
    assert [b["DueDate"] for b in posted["Bill"]] == ["2024-06-20"]
    assert posted["startPosition"] == 2
    assert await query(qbo, "SELECT COUNT(*) FROM Bill WHERE Balance > '0'") == {"totalCount": 3}
    assert await query(qbo, "SELECT * FROM Bill WHERE DocNumber = 'none'") == {}

    escaped = TRICKY_NAME.replace("'", "\\'")
    vendors = await query(qbo, f"SELECT * FROM Vendor WHERE DisplayName = '{escaped}'")
    assert [v["DisplayName"] for v in vendors["Vendor"]] == [TRICKY_NAME]
    like = await query(qbo, "select * from vendor where DisplayName like '%søn%'")
    assert [v["Id"] for v in like["Vendor"]] == [company.roaster["Id"]]


async def test_paging_through_every_bill_to_the_last_page(qbo, company):
    with company.realm.bulk():
        for day in range(1, 26):
            company.realm.insert(
                "Bill",
                {
                    "VendorRef": ref(company.landlord),
                    "TotalAmt": Decimal(day),
                    "Balance": Decimal(day),
                    "DueDate": f"2024-07-{day:02d}",
                },
            )
    seen: list[str] = []
    start = 1
    while True:
        page = await query(
            qbo, f"SELECT * FROM Bill ORDERBY DueDate STARTPOSITION {start} MAXRESULTS 10"
        )
        if not page:
            break
        seen += [b["DueDate"] for b in page["Bill"]]
        start += page["maxResults"]
    assert seen == [f"2024-07-{day:02d}" for day in range(1, 26)]
    assert start == 26


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM Bill WHERE Balance > '0' OR Balance < '0'",
        "SELECT Id FROM Bill",
        "SELECT * FROM Bill MAXRESULTS 5000",
        "SELECT * FROM Bill WHERE DocNumber = 'x",
    ],
)
async def test_malformed_query_is_a_400_parser_fault(qbo, statement):
    response = await qbo.get(f"{V3}/query", params={"query": statement})
    error = fault_of(response)
    assert error["type"] == "ValidationFault" and error["code"] == "4000"
    assert error["Message"] == "Error parsing query"
    assert error["Detail"].startswith(("QueryParserError: ", "QueryValidationError: "))


# -- create, read, update, delete --------------------------------------------------------------


async def test_crud_with_full_and_sparse_updates(qbo, company, store):
    events: list[ChangeEvent] = []
    store.subscribe(events.append)
    vendor = await create(
        qbo,
        "Vendor",
        {"DisplayName": "Norton Lumber", "PrimaryPhone": {"FreeFormNumber": "555-0100"}},
    )
    assert vendor["SyncToken"] == "0" and vendor["Active"] is True
    read = await qbo.get(f"{V3}/vendor/{vendor['Id']}")
    assert body(read)["Vendor"] == vendor

    full = {"Id": vendor["Id"], "SyncToken": "0", "DisplayName": "Norton Lumber & Building"}
    updated = await create(qbo, "Vendor", full)
    assert updated["SyncToken"] == "1" and "PrimaryPhone" not in updated  # a full update replaces

    sparse = await create(
        qbo,
        "Vendor",
        {"Id": vendor["Id"], "SyncToken": "1", "sparse": True, "CompanyName": "Norton"},
    )
    assert sparse["SyncToken"] == "2"
    assert sparse["DisplayName"] == "Norton Lumber & Building" and sparse["CompanyName"] == "Norton"

    bill = await create(qbo, "Bill", company.bill(company.landlord, "1000.00", "2024-07-01"))
    assert bill["TotalAmt"] == Decimal("1000.00") and bill["Balance"] == Decimal("1000.00")
    assert bill["VendorRef"] == {"value": company.landlord["Id"], "name": "Hall Properties"}
    assert bill["APAccountRef"]["value"] == company.ap["Id"]
    assert bill["Line"][0]["Id"] == "1" and bill["Line"][0]["LineNum"] == 1

    deleted = await post(
        qbo, "bill", {"Id": bill["Id"], "SyncToken": bill["SyncToken"]}, operation="delete"
    )
    assert body(deleted)["Bill"] == {"status": "Deleted", "domain": "QBO", "Id": bill["Id"]}
    gone = fault_of(await qbo.get(f"{V3}/bill/{bill['Id']}"))
    assert gone["code"] == "610"
    assert [(e.entity, e.operation) for e in events] == [
        ("Vendor", "Create"),
        ("Vendor", "Update"),
        ("Vendor", "Update"),
        ("Bill", "Create"),
        ("Account", "Update"),  # A/P owes the bill
        ("Account", "Update"),  # and no longer does
        ("Bill", "Delete"),
    ]


async def test_stale_synctoken_is_fault_5010_and_changes_nothing(qbo, company):
    bill = await create(qbo, "Bill", company.bill(company.landlord, "80.00", "2024-07-01"))
    await create(qbo, "Bill", {**bill, "sparse": True, "PrivateNote": "first edit"})
    stale = await post(
        qbo,
        "bill",
        {"Id": bill["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "lost edit"},
    )
    error = fault_of(stale)
    assert (error["code"], error["Message"], error["type"]) == (
        "5010",
        "Stale Object Error",
        "ValidationFault",
    )
    assert company.realm.get("Bill", bill["Id"])["PrivateNote"] == "first edit"
    stale_delete = await post(qbo, "bill", {"Id": bill["Id"], "SyncToken": "0"}, operation="delete")
    assert fault_of(stale_delete)["code"] == "5010"


async def test_validation_faults_use_qbo_codes(qbo, company):
    missing_vendor = company.bill(company.landlord, "10.00", "2024-07-01")
    del missing_vendor["VendorRef"]
    assert fault_of(await post(qbo, "bill", missing_vendor))["code"] == "2020"
    unknown_vendor = company.bill({"Id": "999"}, "10.00", "2024-07-01")
    assert fault_of(await post(qbo, "bill", unknown_vendor))["code"] == "610"
    wrong_total = {**company.bill(company.landlord, "10.00", "2024-07-01"), "TotalAmt": "12.00"}
    assert fault_of(await post(qbo, "bill", wrong_total))["code"] == "6000"
    duplicate = fault_of(await post(qbo, "vendor", {"DisplayName": "Travis Waldron"}))
    assert duplicate["code"] == "6240"
    too_long = fault_of(await post(qbo, "vendor", {"DisplayName": "x" * 501}))
    assert too_long["code"] == "2050"
    not_json = await qbo.post(
        f"{V3}/bill", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert fault_of(not_json)["code"] == "2010"
    unknown_entity = fault_of(await qbo.get(f"{V3}/widget/1"))
    assert unknown_entity["code"] == "500"
    assert company.realm.count("Bill") == 0 and company.realm.count("Vendor") == 2
    unknown_realm = await qbo.get("/v3/company/123/bill/1")
    assert unknown_realm.status_code == 404 and "Fault" in body(unknown_realm)


# -- requestid ----------------------------------------------------------------------------------


async def test_repeated_requestid_replays_the_original_response_and_creates_once(
    qbo, company, clock
):
    payload = company.bill(company.landlord, "250.00", "2024-07-01")
    first = await post(qbo, "bill", payload, requestid="9f1c7e2a-0d3b-4a57-b1f4-2a7c9d8e6b10")
    clock.advance(seconds=30)
    second = await post(qbo, "bill", payload, requestid="9f1c7e2a-0d3b-4a57-b1f4-2a7c9d8e6b10")
    assert second.status_code == first.status_code == 200
    assert second.content == first.content  # the same body, "time" included
    assert second.headers["intuit_tid"] != first.headers["intuit_tid"]
    assert company.realm.count("Bill") == 1
    fresh = await post(qbo, "bill", payload, requestid="another-request")
    assert body(fresh)["Bill"]["Id"] != body(first)["Bill"]["Id"]

    too_long = await post(qbo, "bill", payload, requestid="r" * 51)
    assert fault_of(too_long)["code"] == "2050"
    batch = {"BatchItemRequest": [{"bId": "1", "operation": "create", "Bill": payload}]}
    assert fault_of(await post(qbo, "batch", batch, requestid="b" * 37))["code"] == "2050"
    assert (await post(qbo, "batch", batch, requestid="b" * 36)).status_code == 200
    assert company.realm.count("Bill") == 3


# -- bookkeeping ----------------------------------------------------------------------------------


def bill_payment(
    company: Company, bill: dict[str, Any], amount: str, *, card: bool = False
) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "VendorRef": bill["VendorRef"],
        "TotalAmt": amount,
        "Line": [
            {
                "Amount": amount,
                "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill", "TxnLineId": 0}],
            }
        ],
        "PrivateNote": "oodaloo:pay:bill",
    }
    if card:
        payment.update(PayType="CreditCard", CreditCardPayment={"CCAccountRef": ref(company.card)})
    else:
        payment.update(PayType="Check", CheckPayment={"BankAccountRef": ref(company.checking)})
    return payment


async def test_bill_payment_reduces_bill_and_bank_and_refuses_overpaying(qbo, company):
    bill = await create(
        qbo, "Bill", company.bill(company.roaster, "600.00", "2024-06-30", company.cogs)
    )
    paid = await create(qbo, "BillPayment", bill_payment(company, bill, "250.00"))
    assert (
        paid["TotalAmt"] == Decimal("250.00")
        and paid["CheckPayment"]["BankAccountRef"]["name"] == "Checking"
    )
    after = company.realm.get("Bill", bill["Id"])
    assert after["Balance"] == Decimal("350.00")
    assert after["LinkedTxn"] == [{"TxnId": paid["Id"], "TxnType": "BillPaymentCheck"}]
    assert company.account_balance(company.checking) == Decimal("4750.00")

    overpay = await post(qbo, "billpayment", bill_payment(company, bill, "350.01"))
    assert fault_of(overpay)["code"] == "6000"
    from_expense = bill_payment(company, bill, "10.00")
    from_expense["CheckPayment"]["BankAccountRef"] = ref(company.rent)
    assert fault_of(await post(qbo, "billpayment", from_expense))["code"] == "6000"
    unknown_bill = bill_payment(company, {**bill, "Id": "4040"}, "10.00")
    assert fault_of(await post(qbo, "billpayment", unknown_bill))["code"] == "610"
    lines_disagree = {**bill_payment(company, bill, "10.00"), "TotalAmt": "11.00"}
    assert fault_of(await post(qbo, "billpayment", lines_disagree))["code"] == "6000"
    # Refused payments changed nothing.
    assert company.realm.get("Bill", bill["Id"])["Balance"] == Decimal("350.00")
    assert company.account_balance(company.checking) == Decimal("4750.00")
    assert company.realm.count("BillPayment") == 1

    on_card = await create(qbo, "BillPayment", bill_payment(company, bill, "350.00", card=True))
    assert company.realm.get("Bill", bill["Id"])["Balance"] == Decimal("0.00")
    assert company.account_balance(company.card) == Decimal("500.00")
    assert (
        company.realm.get("Bill", bill["Id"])["LinkedTxn"][-1]["TxnType"] == "BillPaymentCreditCard"
    )

    # Deleting the card payment and voiding the check (python-quickbooks' update&include=void) undo both.
    await post(
        qbo,
        "billpayment",
        {"Id": on_card["Id"], "SyncToken": on_card["SyncToken"]},
        operation="delete",
    )
    voided = await post(
        qbo,
        "billpayment",
        {"Id": paid["Id"], "SyncToken": "0", "sparse": True},
        operation="update",
        include="void",
    )
    assert body(voided)["BillPayment"]["TotalAmt"] == Decimal("0.00")
    restored = company.realm.get("Bill", bill["Id"])
    assert restored["Balance"] == Decimal("600.00") and "LinkedTxn" not in restored
    assert company.account_balance(company.checking) == Decimal("5000.00")
    assert company.account_balance(company.card) == Decimal("150.00")


async def test_payments_purchases_and_deposits_move_account_balances(qbo, company):
    invoice = await create(qbo, "Invoice", company.invoice("300.00", "2024-06-01"))
    assert invoice["TotalAmt"] == Decimal("300.00") and invoice["Balance"] == Decimal("300.00")
    assert invoice["EmailStatus"] == "NotSet"
    payment = {
        "CustomerRef": ref(company.customer),
        "TotalAmt": "120.00",
        "Line": [
            {"Amount": "120.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
        ],
    }
    received = await create(qbo, "Payment", payment)
    assert received["UnappliedAmt"] == Decimal("0.00")
    assert company.realm.get("Invoice", invoice["Id"])["Balance"] == Decimal("180.00")
    assert company.account_balance(company.undeposited) == Decimal("120.00")
    too_much = {
        **payment,
        "TotalAmt": "181.00",
        "Line": [
            {"Amount": "181.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
        ],
    }
    assert fault_of(await post(qbo, "payment", too_much))["code"] == "6000"

    deposit = {
        "DepositToAccountRef": ref(company.checking),
        "Line": [
            {"Amount": "120.00", "LinkedTxn": [{"TxnId": received["Id"], "TxnType": "Payment"}]}
        ],
    }
    await create(qbo, "Deposit", deposit)
    assert company.account_balance(company.checking) == Decimal("5120.00")
    assert company.account_balance(company.undeposited) == Decimal("0.00")

    purchase = {
        "PaymentType": "Cash",
        "AccountRef": ref(company.checking),
        "Line": [
            {
                "Amount": "45.50",
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": ref(company.rent)},
            }
        ],
    }
    bought = await create(qbo, "Purchase", purchase)
    assert bought["TotalAmt"] == Decimal("45.50")
    assert company.account_balance(company.checking) == Decimal("5074.50")
    on_card = {**purchase, "PaymentType": "Cash", "AccountRef": ref(company.card)}
    assert fault_of(await post(qbo, "purchase", on_card))["code"] == "6000"

    # A deposited payment cannot be voided (its money is in the bank now); an undeposited one can.
    deposited = company.realm.get("Payment", received["Id"])
    assert deposited["LinkedTxn"][0]["TxnType"] == "Deposit"
    refused = await post(
        qbo,
        "payment",
        {"Id": received["Id"], "SyncToken": deposited["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    assert fault_of(refused)["code"] == "6000"
    second = await create(
        qbo,
        "Payment",
        {
            **payment,
            "TotalAmt": "80.00",
            "Line": [
                {"Amount": "80.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    assert company.realm.get("Invoice", invoice["Id"])["Balance"] == Decimal("100.00")
    voided = await post(
        qbo,
        "payment",
        {"Id": second["Id"], "SyncToken": second["SyncToken"], "sparse": True},
        operation="update",
        include="void",
    )
    assert voided.status_code == 200
    assert company.realm.get("Invoice", invoice["Id"])["Balance"] == Decimal("180.00")
    assert company.account_balance(company.undeposited) == Decimal("0.00")


# -- CDC, batch, reports, send ----------------------------------------------------------------------


async def test_cdc_lists_changes_per_entity_with_deleted_tombstones(qbo, company, clock):
    clock.advance(days=1)
    since = clock.now()
    bill = await create(qbo, "Bill", company.bill(company.landlord, "70.00", "2024-07-01"))
    doomed = await create(qbo, "Bill", company.bill(company.landlord, "30.00", "2024-07-01"))
    await post(qbo, "bill", {"Id": doomed["Id"], "SyncToken": "0"}, operation="delete")
    invoice = await create(qbo, "Invoice", company.invoice("10.00", "2024-07-01"))

    response = await qbo.get(
        f"{V3}/cdc", params={"entities": "Bill,Invoice,Vendor", "changedSince": since.isoformat()}
    )
    assert response.status_code == 200
    (cdc,) = body(response)["CDCResponse"]
    bills, invoices = cdc["QueryResponse"]  # vendors did not change: no entry
    assert [b["Id"] for b in bills["Bill"]] == [bill["Id"], doomed["Id"]]
    assert bills["Bill"][1] == {
        "domain": "QBO",
        "status": "Deleted",
        "Id": doomed["Id"],
        "MetaData": {"LastUpdatedTime": "2024-06-15T09:30:00-07:00"},
    }
    assert [i["Id"] for i in invoices["Invoice"]] == [invoice["Id"]]

    clock.advance(hours=1)
    nothing = await qbo.get(
        f"{V3}/cdc", params={"entities": "Bill", "changedSince": clock.now().isoformat()}
    )
    assert body(nothing)["CDCResponse"] == [{"QueryResponse": [{}]}]
    too_old = await qbo.get(
        f"{V3}/cdc", params={"entities": "Bill", "changedSince": "2024-04-01T00:00:00-07:00"}
    )
    assert fault_of(too_old)["type"] == "ValidationFault"


async def test_batch_items_succeed_or_fail_independently(qbo, company):
    bill = await create(qbo, "Bill", company.bill(company.landlord, "90.00", "2024-07-01"))
    request = {
        "BatchItemRequest": [
            {"bId": "bid1", "operation": "create", "Vendor": {"DisplayName": "Acme Roasters"}},
            {"bId": "bid2", "operation": "create", "Vendor": {"DisplayName": "Hall Properties"}},
            {
                "bId": "bid3",
                "operation": "update",
                "Bill": {"Id": bill["Id"], "SyncToken": "7", "sparse": True, "PrivateNote": "x"},
            },
            {"bId": "bid4", "Query": "select * from Bill where TotalAmt > '50.00'"},
            {"bId": "bid5", "operation": "delete", "Bill": {"Id": bill["Id"], "SyncToken": "0"}},
        ]
    }
    response = await post(qbo, "batch", request)
    assert response.status_code == 200
    items = {item["bId"]: item for item in body(response)["BatchItemResponse"]}
    assert items["bid1"]["Vendor"]["DisplayName"] == "Acme Roasters"
    assert items["bid2"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["bid3"]["Fault"]["Error"][0]["code"] == "5010"
    assert [b["Id"] for b in items["bid4"]["QueryResponse"]["Bill"]] == [bill["Id"]]
    assert items["bid5"]["Bill"] == {"status": "Deleted", "domain": "QBO", "Id": bill["Id"]}
    assert [b["bId"] for b in body(response)["BatchItemResponse"]] == [
        "bid1",
        "bid2",
        "bid3",
        "bid4",
        "bid5",
    ]

    too_many = {
        "BatchItemRequest": [{"bId": str(i), "Query": "select * from Bill"} for i in range(31)]
    }
    assert fault_of(await post(qbo, "batch", too_many))["type"] == "ValidationFault"


async def test_reports_have_qbo_shapes_and_values_from_the_books(qbo, company):
    await create(qbo, "Bill", company.bill(company.landlord, "100.00", "2024-06-20"))  # current
    await create(qbo, "Bill", company.bill(company.landlord, "40.00", "2024-05-30"))  # 1 - 30
    await create(
        qbo, "Bill", company.bill(company.roaster, "12.34", "2024-02-01", company.cogs)
    )  # 91+
    await create(qbo, "Invoice", company.invoice("300.00", "2024-04-30"))  # 31 - 60

    payables = body(await qbo.get(f"{V3}/reports/AgedPayables", params={"minorversion": "75"}))
    assert "time" not in payables  # QBO puts a report's time in its Header
    assert payables["Header"]["ReportName"] == "AgedPayables"
    assert payables["Header"]["EndPeriod"] == "2024-06-14"
    assert [c["ColTitle"] for c in payables["Columns"]["Column"]] == [
        "",
        "Current",
        "1 - 30",
        "31 - 60",
        "61 - 90",
        "91 and over",
        "Total",
    ]
    rows = payables["Rows"]["Row"]
    assert rows[0]["ColData"] == [
        {"value": "Hall Properties", "id": company.landlord["Id"]},
        {"value": "100.00"},
        {"value": "40.00"},
        {"value": ""},
        {"value": ""},
        {"value": ""},
        {"value": "140.00"},
    ]
    assert rows[1]["ColData"][0] == {"value": TRICKY_NAME, "id": company.roaster["Id"]}
    assert rows[-1]["group"] == "GrandTotal"
    assert [c["value"] for c in rows[-1]["Summary"]["ColData"]] == [
        "TOTAL",
        "100.00",
        "40.00",
        "0.00",
        "0.00",
        "12.34",
        "152.34",
    ]

    receivables = body(await qbo.get(f"{V3}/reports/AgedReceivables"))
    assert receivables["Columns"]["Column"][0]["ColType"] == "Customer"
    assert receivables["Rows"]["Row"][0]["ColData"][3] == {"value": "300.00"}

    pnl = body(
        await qbo.get(
            f"{V3}/reports/ProfitAndLoss",
            params={"start_date": "2024-05-01", "end_date": "2024-05-31"},
        )
    )
    assert (
        pnl["Header"]["ReportBasis"] == "Accrual" and pnl["Header"]["StartPeriod"] == "2024-05-01"
    )
    groups = {row["group"]: row for row in pnl["Rows"]["Row"]}
    assert list(groups) == [
        "Income",
        "COGS",
        "GrossProfit",
        "Expenses",
        "NetOperatingIncome",
        "NetIncome",
    ]
    assert groups["Income"]["Rows"]["Row"][0]["ColData"] == [
        {"value": "Sales", "id": company.sales["Id"]},
        {"value": "300.00"},
    ]
    assert groups["Income"]["Summary"]["ColData"] == [
        {"value": "Total Income"},
        {"value": "300.00"},
    ]
    assert groups["GrossProfit"]["Summary"]["ColData"][1] == {"value": "287.66"}
    assert groups["Expenses"]["Summary"]["ColData"][1] == {"value": "140.00"}
    assert groups["NetIncome"]["Summary"]["ColData"] == [
        {"value": "Net Income"},
        {"value": "147.66"},
    ]

    flow = body(
        await qbo.get(
            f"{V3}/reports/CashFlow", params={"start_date": "2024-05-01", "end_date": "2024-06-30"}
        )
    )
    assert flow["Header"]["ReportName"] == "CashFlow"
    flow_groups = {row["group"]: row for row in flow["Rows"]["Row"]}
    assert list(flow_groups) == [
        "OperatingActivities",
        "CashIncrease",
        "BeginningCash",
        "EndingCash",
    ]
    net_income_row = flow_groups["OperatingActivities"]["Rows"]["Row"][0]
    assert net_income_row["group"] == "NetIncome" and net_income_row["ColData"][1] == {
        "value": "147.66"
    }
    assert flow_groups["EndingCash"]["Summary"]["ColData"][1] == {"value": "5000.00"}
    assert fault_of(await qbo.get(f"{V3}/reports/BalanceSheetDetailedForecast"))["code"] == "500"


async def test_invoice_send_marks_it_emailed(qbo, company, store):
    events: list[ChangeEvent] = []
    invoice = await create(qbo, "Invoice", company.invoice("55.00", "2024-07-01"))
    store.subscribe(events.append)
    sent = await qbo.post(
        f"{V3}/invoice/{invoice['Id']}/send",
        params={"sendTo": "ap@customer.example", "minorversion": "75"},
        headers={"Content-Type": "application/octet-stream"},
    )
    assert sent.status_code == 200
    emailed = body(sent)["Invoice"]
    assert emailed["EmailStatus"] == "EmailSent"
    assert emailed["BillEmail"] == {"Address": "ap@customer.example"}
    assert emailed["DeliveryInfo"] == {
        "DeliveryType": "Email",
        "DeliveryTime": "2024-06-14T09:30:00-07:00",
    }
    assert emailed["SyncToken"] == "1"
    assert [(e.entity, e.id, e.operation) for e in events] == [
        ("Invoice", invoice["Id"], "Emailed")
    ]
    nowhere = await qbo.post(
        f"{V3}/invoice/{invoice['Id']}/send", params={"sendTo": "not-an-address"}
    )
    assert fault_of(nowhere)["type"] == "ValidationFault"


async def test_companyinfo_and_invoice_void(qbo, company):
    info = body(await qbo.get(f"{V3}/companyinfo/{REALM}"))
    assert info["CompanyInfo"]["CompanyName"] == "Bean There Coffee"
    invoice = await create(qbo, "Invoice", company.invoice("75.00", "2024-07-01"))
    voided = await post(qbo, "invoice", {"Id": invoice["Id"], "SyncToken": "0"}, operation="void")
    result = body(voided)["Invoice"]
    assert result["TotalAmt"] == Decimal("0.00") and result["Balance"] == Decimal("0.00")
    assert result["PrivateNote"] == "Voided" and result["SyncToken"] == "1"
