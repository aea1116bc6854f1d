"""The sandbox's reports over HTTP on a worked company whose every figure is computed by hand below:
owner money, a loan and a repayment, a transfer between banks, a customer payment through
Undeposited Funds, a partial bill payment, equipment bought on the card, a card payment, and an
expense from the year before (closed into retained earnings).

The books, as of 2024-02-29 (fiscal year from January; debit +):
    Checking   10,000 - 1,000 + 1,200 - 500 - 2,500 + 5,000 - 150 - 300 - 400 = 11,350
    Savings    2,500 (the transfer)           Undeposited Funds  1,200 - 1,200 = 0
    A/R        3,000 - 1,200 = 1,800           Equipment          800 (bought on the card)
    A/P        -2,000 + 500 = -1,500           Visa               -800 + 400 = -400
    Bank Loan  -5,000 + 300 = -4,700           Owner's Equity     -10,000
    2023's rent 1,000 -> retained earnings 1,000 debit;  2024: Sales -3,000, Rent 2,000, Supplies 150
    Assets 16,450 = liabilities 6,600 + equity (10,000 - 1,000 + net income 850) 9,850.
February's cash flow: net income -150; A/R +1,200, A/P -500, Visa +400 -> operating 950;
equipment -800 (investing); loan +5,000 - 300 (financing 4,700); cash 9,000 -> 13,850 (+4,850).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from qbo_sandbox.api import build_v3_app
from qbo_sandbox.store import Realm, Store

REALM = "9130357795"
V3 = f"/v3/company/{REALM}"


class Clock:
    def now(self) -> datetime:
        return datetime(2024, 3, 20, 17, 0, tzinfo=UTC)


def ref(obj: dict[str, Any]) -> dict[str, str]:
    return {"value": obj["Id"]}


def expense(account: dict[str, Any], amount: str) -> dict[str, Any]:
    return {
        "Amount": Decimal(amount),
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": ref(account)},
    }


class Worked:
    def __init__(self, realm: Realm) -> None:
        def account(name: str, kind: str, sub: str) -> dict[str, Any]:
            return realm.insert(
                "Account",
                {"Name": name, "AccountType": kind, "AccountSubType": sub, "Active": True},
            )

        self.checking = account("Checking", "Bank", "Checking")
        self.savings = account("Savings", "Bank", "Savings")
        self.undeposited = account("Undeposited Funds", "Other Current Asset", "UndepositedFunds")
        self.ar = account("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable")
        self.equipment = account("Equipment", "Fixed Asset", "MachineryAndEquipment")
        self.ap = account("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable")
        self.visa = account("Visa", "Credit Card", "CreditCard")
        self.loan = account("Bank Loan", "Long Term Liability", "NotesPayable")
        self.owner = account("Owner's Equity", "Equity", "OwnersEquity")
        self.retained = account("Retained Earnings", "Equity", "RetainedEarnings")
        self.sales = account("Sales", "Income", "SalesOfProductIncome")
        self.rent = account("Rent", "Expense", "RentOrLeaseOfBuildings")
        self.supplies = account("Supplies", "Expense", "SuppliesMaterials")
        self.landlord = realm.insert("Vendor", {"DisplayName": "Hall Properties", "Active": True})
        self.cafe = realm.insert("Customer", {"DisplayName": "Corner Cafe", "Active": True})
        realm.insert(
            "CompanyInfo", {"Id": "1", "CompanyName": "Worked", "FiscalYearStartMonth": "January"}
        )

        def deposit(day: str, account: dict[str, Any], amount: str) -> None:
            realm.insert(
                "Deposit",
                {
                    "TxnDate": day,
                    "DepositToAccountRef": ref(self.checking),
                    "TotalAmt": Decimal(amount),
                    "Line": [
                        {
                            "Amount": Decimal(amount),
                            "DetailType": "DepositLineDetail",
                            "DepositLineDetail": {"AccountRef": ref(account)},
                        }
                    ],
                },
            )

        def purchase(day: str, paid_from: dict[str, Any], kind: str, line: dict[str, Any]) -> None:
            realm.insert(
                "Purchase",
                {
                    "TxnDate": day,
                    "PaymentType": kind,
                    "AccountRef": ref(paid_from),
                    "TotalAmt": line["Amount"],
                    "Line": [line],
                },
            )

        deposit("2023-12-15", self.owner, "10000.00")
        purchase("2023-12-20", self.checking, "Check", expense(self.rent, "1000.00"))
        self.bill = realm.insert(
            "Bill",
            {
                "VendorRef": ref(self.landlord),
                "TxnDate": "2024-01-10",
                "DueDate": "2024-02-09",
                "TotalAmt": Decimal("2000.00"),
                "Balance": Decimal("1500.00"),
                "Line": [expense(self.rent, "2000.00")],
            },
        )
        self.invoice = realm.insert(
            "Invoice",
            {
                "CustomerRef": ref(self.cafe),
                "TxnDate": "2024-01-15",
                "DueDate": "2024-02-14",
                "TotalAmt": Decimal("3000.00"),
                "Balance": Decimal("1800.00"),
                "Line": [
                    {
                        "Amount": Decimal("3000.00"),
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemAccountRef": ref(self.sales)},
                    }
                ],
            },
        )
        self.payment = realm.insert(
            "Payment",
            {
                "CustomerRef": ref(self.cafe),
                "TxnDate": "2024-02-01",
                "TotalAmt": Decimal("1200.00"),
                "UnappliedAmt": Decimal("0.00"),
                "Line": [
                    {
                        "Amount": Decimal("1200.00"),
                        "LinkedTxn": [{"TxnId": self.invoice["Id"], "TxnType": "Invoice"}],
                    }
                ],
            },
        )
        realm.insert(
            "Deposit",
            {
                "TxnDate": "2024-02-05",
                "DepositToAccountRef": ref(self.checking),
                "TotalAmt": Decimal("1200.00"),
                "Line": [
                    {
                        "Amount": Decimal("1200.00"),
                        "LinkedTxn": [{"TxnId": self.payment["Id"], "TxnType": "Payment"}],
                    }
                ],
            },
        )
        realm.insert(
            "BillPayment",
            {
                "VendorRef": ref(self.landlord),
                "TxnDate": "2024-02-10",
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": ref(self.checking)},
                "TotalAmt": Decimal("500.00"),
                "Line": [
                    {
                        "Amount": Decimal("500.00"),
                        "LinkedTxn": [{"TxnId": self.bill["Id"], "TxnType": "Bill"}],
                    }
                ],
            },
        )
        realm.insert(
            "Transfer",
            {
                "TxnDate": "2024-02-12",
                "Amount": Decimal("2500.00"),
                "FromAccountRef": ref(self.checking),
                "ToAccountRef": ref(self.savings),
            },
        )
        deposit("2024-02-15", self.loan, "5000.00")
        purchase("2024-02-20", self.visa, "CreditCard", expense(self.equipment, "800.00"))
        purchase("2024-02-25", self.checking, "Cash", expense(self.supplies, "150.00"))
        purchase("2024-02-28", self.checking, "Check", expense(self.loan, "300.00"))
        realm.insert(
            "CreditCardPaymentTxn",
            {
                "TxnDate": "2024-02-28",
                "Amount": Decimal("400.00"),
                "CreditCardAccountRef": ref(self.visa),
                "BankAccountRef": ref(self.checking),
            },
        )


@pytest.fixture
def store() -> Store:
    return Store(Clock())


@pytest.fixture
def worked(store: Store) -> Worked:
    return Worked(store.create_realm(REALM))


@pytest.fixture
async def qbo(store: Store, worked: Worked) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_v3_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbo") as client:
        yield client


async def report(qbo: httpx.AsyncClient, name: str, **params: str) -> dict[str, Any]:
    answer = await qbo.get(f"{V3}/reports/{name}", params=params)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def walk(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(row)
        out += walk(row.get("Rows", {}).get("Row", []))
    return out


def groups(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["group"]: row for row in walk(body["Rows"]["Row"]) if "group" in row}


def total(row: dict[str, Any]) -> str:
    value: str = row["Summary"]["ColData"][-1]["value"]
    return value


def data(body: dict[str, Any]) -> dict[str, list[str]]:
    """Label -> the other cells of each data row."""
    return {
        row["ColData"][0]["value"]: [cell["value"] for cell in row["ColData"][1:]]
        for row in walk(body["Rows"]["Row"])
        if "ColData" in row
    }


async def test_balance_sheet_balances_with_retained_earnings_and_net_income(qbo, worked):
    sheet = await report(qbo, "BalanceSheet", start_date="2024-01-01", end_date="2024-02-29")
    assert sheet["Header"]["ReportName"] == "BalanceSheet"
    assert sheet["Header"]["ReportBasis"] == "Accrual"
    found = groups(sheet)
    assert total(found["BankAccounts"]) == "13850.00"
    assert total(found["AR"]) == "1800.00"
    assert total(found["CurrentAssets"]) == "15650.00"
    assert total(found["FixedAssets"]) == "800.00"
    assert total(found["TotalAssets"]) == "16450.00"
    assert total(found["AP"]) == "1500.00"
    assert total(found["CreditCards"]) == "400.00"
    assert total(found["CurrentLiabilities"]) == "1900.00"
    assert total(found["LongTermLiabilities"]) == "4700.00"
    assert total(found["Liabilities"]) == "6600.00"
    assert total(found["Equity"]) == "9850.00"
    assert total(found["TotalLiabilitiesAndEquity"]) == "16450.00"
    rows = data(sheet)
    assert rows["Checking"] == ["11350.00"] and rows["Savings"] == ["2500.00"]
    assert rows["Owner's Equity"] == ["10000.00"]
    assert rows["Retained Earnings"] == ["-1000.00"]
    assert rows["Net Income"] == ["850.00"]
    assert "Undeposited Funds" not in rows  # nothing left in it


async def test_trial_balance_columns_are_equal(qbo, worked):
    trial = await report(qbo, "TrialBalance", start_date="2024-02-01", end_date="2024-02-29")
    assert [c["ColTitle"] for c in trial["Columns"]["Column"]] == ["", "Debit", "Credit"]
    rows = data(trial)
    assert rows["Checking"] == ["11350.00", ""]
    assert rows["Accounts Payable (A/P)"] == ["", "1500.00"]
    assert rows["Retained Earnings"] == ["1000.00", ""]
    assert rows["Sales"] == ["", "3000.00"]
    assert rows["Rent"] == ["2000.00", ""]
    grand = trial["Rows"]["Row"][-1]
    assert grand["group"] == "GrandTotal"
    assert [c["value"] for c in grand["Summary"]["ColData"]] == ["TOTAL", "19600.00", "19600.00"]


async def test_cash_flow_sorts_the_changes_as_quickbooks_does(qbo, worked):
    flow = await report(qbo, "CashFlow", start_date="2024-02-01", end_date="2024-02-29")
    found = groups(flow)
    assert found["NetIncome"]["ColData"][1]["value"] == "-150.00"
    rows = data(flow)
    assert rows["Accounts Receivable (A/R)"] == ["1200.00"]
    assert rows["Accounts Payable (A/P)"] == ["-500.00"]
    assert rows["Visa"] == ["400.00"]
    assert total(found["OperatingAdjustments"]) == "1100.00"
    assert total(found["OperatingActivities"]) == "950.00"
    assert rows["Equipment"] == ["-800.00"]
    assert total(found["InvestingActivities"]) == "-800.00"
    assert rows["Bank Loan"] == ["4700.00"]
    assert total(found["FinancingActivities"]) == "4700.00"
    # The transfer to Savings and the deposit out of Undeposited Funds move cash within cash.
    assert "Savings" not in rows and "Undeposited Funds" not in rows
    assert total(found["CashIncrease"]) == "4850.00"
    assert total(found["BeginningCash"]) == "9000.00"
    assert total(found["EndingCash"]) == "13850.00"
    december = await report(qbo, "CashFlow", start_date="2023-12-01", end_date="2023-12-31")
    assert total(groups(december)["FinancingActivities"]) == "10000.00"  # the owner put money in
    assert total(groups(december)["EndingCash"]) == "9000.00"


async def test_profit_and_loss_on_accrual_and_cash_basis(qbo, worked):
    january = await report(qbo, "ProfitAndLoss", start_date="2024-01-01", end_date="2024-01-31")
    assert total(groups(january)["Income"]) == "3000.00"
    assert total(groups(january)["Expenses"]) == "2000.00"
    assert total(groups(january)["NetIncome"]) == "1000.00"
    # Cash basis: 1,200 of the 3,000 invoice came in (1,200 of sales), 500 of the 2,000 bill went
    # out (500 of rent), and supplies were paid in cash (150): 1,200 - 650 = 550.
    cash = await report(
        qbo,
        "ProfitAndLoss",
        start_date="2024-01-01",
        end_date="2024-02-29",
        accounting_method="Cash",
    )
    assert cash["Header"]["ReportBasis"] == "Cash"
    assert data(cash)["Sales"] == ["1200.00"] and data(cash)["Rent"] == ["500.00"]
    assert total(groups(cash)["NetIncome"]) == "550.00"


async def test_aging_as_of_a_past_date_counts_only_what_was_paid_by_then(qbo, worked):
    before = await report(qbo, "AgedPayables", report_date="2024-01-31")
    assert before["Header"]["EndPeriod"] == "2024-01-31"
    assert data(before)["Hall Properties"] == ["2000.00", "", "", "", "", "2000.00"]
    end_of_february = await report(qbo, "AgedPayables", report_date="2024-02-29")
    assert data(end_of_february)["Hall Properties"] == ["", "1500.00", "", "", "", "1500.00"]
    receivables = await report(qbo, "AgedReceivables", report_date="2024-02-29")
    assert data(receivables)["Corner Cafe"] == ["", "1800.00", "", "", "", "1800.00"]
    # Aged from today (2024-03-20) instead: the bill is 40 days past due.
    current = await report(qbo, "AgedPayables", report_date="2024-02-29", aging_method="Current")
    assert data(current)["Hall Properties"] == ["", "", "1500.00", "", "", "1500.00"]
    before_the_bill = await report(qbo, "AgedPayables", report_date="2024-01-05")
    assert before_the_bill["Rows"]["Row"][-1]["Summary"]["ColData"][-1] == {"value": "0.00"}


async def test_aging_detail_lists_each_open_document(qbo, worked):
    detail = await report(qbo, "AgedPayableDetail", report_date="2024-02-29")
    assert [c["ColTitle"] for c in detail["Columns"]["Column"]] == [
        "Date",
        "Transaction Type",
        "Num",
        "Vendor",
        "Due Date",
        "Amount",
        "Open Balance",
    ]
    section = detail["Rows"]["Row"][0]
    assert section["Header"]["ColData"][0] == {"value": "1 - 30 days past due"}
    assert section["Rows"]["Row"][0]["ColData"] == [
        {"value": "2024-01-10"},
        {"value": "Bill", "id": worked.bill["Id"]},
        {"value": ""},
        {"value": "Hall Properties", "id": worked.landlord["Id"]},
        {"value": "2024-02-09"},
        {"value": "2000.00"},
        {"value": "1500.00"},
    ]
    assert detail["Rows"]["Row"][-1]["Summary"]["ColData"][-1] == {"value": "1500.00"}


async def test_reports_refuse_what_they_cannot_compute(qbo, worked):
    answer = await qbo.get(f"{V3}/reports/BalanceSheet", params={"accounting_method": "Cash"})
    assert answer.status_code == 400
    assert answer.json()["Fault"]["Error"][0]["code"] == "2170"
    answer = await qbo.get(f"{V3}/reports/AgedPayables", params={"aging_method": "Someday"})
    assert answer.status_code == 400


async def test_a_euro_bill_ages_and_settles_in_home_currency(store):
    """A €1,000.00 bill at 1.08 owes $1,080.00; paid at 1.10 it takes $1,100.00 from the bank and
    books a $20.00 exchange loss, and the euro A/P is empty again."""
    realm = store.create_realm("9130357796")
    currency_prefs = {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}}
    stored = next(realm.iter("Preferences"), None)
    if stored is None:
        realm.insert("Preferences", {"CurrencyPrefs": currency_prefs})
    else:
        realm.put("Preferences", {**stored, "CurrencyPrefs": currency_prefs})

    def account(name: str, kind: str, currency: str = "USD") -> dict[str, Any]:
        return realm.insert(
            "Account",
            {"Name": name, "AccountType": kind, "CurrencyRef": {"value": currency}},
        )

    checking = account("Checking", "Bank")
    account("Accounts Payable (A/P) - EUR", "Accounts Payable", "EUR")
    beans = account("Coffee Beans", "Cost of Goods Sold")
    account("Exchange Gain or Loss", "Other Expense")
    roaster = realm.insert("Vendor", {"DisplayName": "Rösterei", "CurrencyRef": {"value": "EUR"}})
    bill = realm.insert(
        "Bill",
        {
            "VendorRef": ref(roaster),
            "CurrencyRef": {"value": "EUR"},
            "ExchangeRate": Decimal("1.08"),
            "TxnDate": "2024-03-01",
            "DueDate": "2024-03-31",
            "TotalAmt": Decimal("1000.00"),
            "Line": [expense(beans, "1000.00")],
        },
    )
    realm.insert(
        "BillPayment",
        {
            "VendorRef": ref(roaster),
            "CurrencyRef": {"value": "EUR"},
            "ExchangeRate": Decimal("1.10"),
            "TxnDate": "2024-03-15",
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": ref(checking)},
            "TotalAmt": Decimal("1000.00"),
            "Line": [
                {
                    "Amount": Decimal("1000.00"),
                    "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}],
                }
            ],
        },
    )
    transport = httpx.ASGITransport(app=build_v3_app(store))
    async with httpx.AsyncClient(transport=transport, base_url="http://qbo") as qbo:
        base = f"/v3/company/{realm.realm_id}/reports"
        aged = (await qbo.get(f"{base}/AgedPayables", params={"report_date": "2024-03-10"})).json()
        assert data(aged)["Rösterei"] == ["1080.00", "", "", "", "", "1080.00"]
        assert aged["Header"]["Currency"] == "USD"
        after = (await qbo.get(f"{base}/AgedPayables", params={"report_date": "2024-03-20"})).json()
        assert after["Rows"]["Row"][-1]["Summary"]["ColData"][-1] == {"value": "0.00"}
        period = {"start_date": "2024-03-01", "end_date": "2024-03-31"}
        pnl = (await qbo.get(f"{base}/ProfitAndLoss", params=period)).json()
        assert data(pnl)["Coffee Beans"] == ["1080.00"]
        assert data(pnl)["Exchange Gain or Loss"] == ["20.00"]
        assert total(groups(pnl)["NetIncome"]) == "-1100.00"
        flow = (await qbo.get(f"{base}/CashFlow", params=period)).json()
        assert total(groups(flow)["OperatingActivities"]) == "-1100.00"
        assert total(groups(flow)["EndingCash"]) == "-1100.00"
        sheet = (await qbo.get(f"{base}/BalanceSheet", params=period)).json()
        assert "AP" not in groups(sheet)  # nothing owed in euros any more
        assert total(groups(sheet)["TotalAssets"]) == "-1100.00"
        assert total(groups(sheet)["TotalLiabilitiesAndEquity"]) == "-1100.00"
