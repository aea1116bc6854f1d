"""A small company whose every figure is worked out by hand below, written through QuickBooks' API
(the sandbox's), mirrored, and read back by the runway calculator.

The company is a fresh small one (the sandbox's admin API: seed 41, scale 1); what it held before
2027 is swept into Opening Balance Equity by a journal entry on 2027-01-15, so the figures below
start from nothing whatever the seed put there. Multicurrency is on (home USD; EUR added).

Today is Wed 2027-06-30; the 90-day window is 2027-04-02 .. 2027-06-30 (April 29 days, May 31,
June 30 = 90).

    Before the window (in the books, not in the window's figures):
      2027-03-01  owner's opening investment, Deposit Checking <- Owner's Equity   +50,000.00
    In the window:
      04-05  owner puts in, Deposit Checking <- Owner's Equity              +10,000.00 financing
      04-10  loan received, Deposit Checking <- Bank Loan (Long Term Liab.)  +25,000.00 financing
      04-15  sales receipt to Checking                                        +1,500.00 operating
      04-20  espresso machine, Purchase Checking -> Equipment (Fixed Asset)   −4,000.00 investing
      04-20  rent bill 2,000.00; 04-25 vendor credit 300.00 (no cash)
      05-01  transfer Checking -> Savings 5,000.00                            no flow
      05-05  bill payment from Checking: the bill 2,000.00 less the credit
             300.00                                                           −1,700.00 operating
      05-10  loan repayment, Journal Entry Dr Bank Loan / Cr Checking         −1,200.00 financing
      05-15  invoice 3,000.00; 05-20 credit memo 500.00 (no cash)
      05-20  card purchase of supplies 640.00 on the card                     no cash
      06-01  customer payment into Undeposited Funds: invoice 3,000.00 less
             the credit memo 500.00                                           +2,500.00 operating
      06-01  EUR bill €1,000.00 at 1.08 (= $1,080.00)                         no cash
      06-03  deposit of that payment, Checking <- Undeposited Funds 2,500.00 transfer
      06-10  sales receipt into Undeposited Funds (not deposited)              +800.00 operating
      06-12  refund receipt from Checking                                       −150.00 operating
      06-15  credit-card payment, Checking -> card                             −640.00 operating
      06-20  EUR bill payment €400.00 at 1.10 from Checking (400 × 1.10)       −440.00 operating

    Checking  = 50,000 + 10,000 + 25,000 + 1,500 − 4,000 − 5,000 − 1,700 − 1,200 + 2,500
                − 150 − 640 − 440                                            = 75,870.00
    Savings   = 5,000.00
    cash on hand = 75,870.00 + 5,000.00                                      = 80,870.00
    undeposited  = 2,500 − 2,500 + 800                                       =    800.00
    burn (operating + investing, in the window):
      cash in  = 1,500 + 2,500 + 800                                         =  4,800.00
      cash out = 4,000 + 1,700 + 150 + 640 + 440                             =  6,930.00
      net      = 6,930 − 4,800                                               =  2,130.00
      per month = 2,130 × 30 / 90 = 710.00
    financing: owner put in 10,000.00; loans brought in 25,000.00; loans repaid 1,200.00
      (the 50,000.00 of 2027-03-01 is before the window)
    runway = 80,870.00 × 90 / 2,130.00 = 7,278,300 / 2,130 = 3,417.04... → 3,417 days
    open EUR bill: €600.00 left, at its own 1.08 = $648.00
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from runway_env import RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import MovementKind
from runway.calculator import RunwayCalculator, RunwayStatus
from runway.cash_flow import CashFlowClass
from runway.snapshot import load_books

D = Decimal
BUSINESS = "biz-worked"
TODAY = date(2027, 6, 30)


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=1))


class Company:
    """The worked company's QuickBooks, through its v3 API."""

    def __init__(self, client: httpx.AsyncClient, realm_id: str) -> None:
        self.client = client
        self.base = f"/v3/company/{realm_id}"

    async def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.client.post(f"{self.base}/{entity.lower()}", json=body)
        assert response.status_code == 200, f"{entity}: {response.text}"
        created: dict[str, Any] = next(
            value for value in response.json().values() if isinstance(value, dict)
        )
        return created

    async def query(self, statement: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.base}/query", params={"query": statement})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = next(iter(response.json()["QueryResponse"].values()), [])
        return rows

    async def account(self, name: str, account_type: str, sub_type: str) -> str:
        created = await self.create(
            "Account", {"Name": name, "AccountType": account_type, "AccountSubType": sub_type}
        )
        return str(created["Id"])


def ref(value: str) -> dict[str, str]:
    return {"value": value}


def deposit(day: str, to: str, source: str, amount: str) -> dict[str, Any]:
    return {
        "TxnDate": day,
        "DepositToAccountRef": ref(to),
        "Line": [
            {
                "Amount": amount,
                "DetailType": "DepositLineDetail",
                "DepositLineDetail": {"AccountRef": ref(source)},
            }
        ],
    }


def journal(day: str, debit: str, credit: str, amount: str) -> dict[str, Any]:
    return {
        "TxnDate": day,
        "Line": [
            {
                "Amount": amount,
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": ref(account)},
            }
            for posting, account in (("Debit", debit), ("Credit", credit))
        ],
    }


def expense_lines(account: str, amount: str) -> list[dict[str, Any]]:
    return [
        {
            "Amount": amount,
            "DetailType": "AccountBasedExpenseLineDetail",
            "AccountBasedExpenseLineDetail": {"AccountRef": ref(account)},
        }
    ]


def sales_lines(item: str, amount: str) -> list[dict[str, Any]]:
    return [
        {
            "Amount": amount,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": ref(item)},
        }
    ]


@pytest.fixture
async def worked(runway_env: RunwayEnv) -> AsyncIterator[dict[str, str]]:
    """Creates the company of the module docstring; yields the ids the test looks at."""
    env = runway_env
    async with env.sandbox.http_client(access_token="") as admin:
        response = await admin.post("/_sandbox/realms", json={"seed": 41, "scale": 1})
        assert response.status_code < 300, response.text
        tokens = response.json()
    realm_id = str(tokens["realm_id"])
    await env.add_business(BUSINESS, realm_id, str(tokens["access_token"]))
    ids: dict[str, str] = {"realm_id": realm_id}
    async with env.sandbox.http_client(access_token=str(tokens["access_token"])) as client:
        qb = Company(client, realm_id)
        accounts = {row["Name"]: row for row in await qb.query("SELECT * FROM Account")}
        checking, savings = accounts["Checking"]["Id"], accounts["Savings"]["Id"]
        undeposited = next(
            row["Id"] for row in accounts.values() if row["AccountSubType"] == "UndepositedFunds"
        )
        card = next(row["Id"] for row in accounts.values() if row["AccountType"] == "Credit Card")
        opening = next(row["Id"] for row in accounts.values() if row["AccountType"] == "Equity")
        rent = accounts["Rent or Lease"]["Id"]
        supplies = accounts["Office Supplies"]["Id"]
        income = accounts["Retail & Market Sales"]["Id"]
        ids.update(checking=checking, savings=savings, undeposited=undeposited)

        # Whatever the seed left in the cash accounts goes to Opening Balance Equity (setup only).
        for row in accounts.values():
            if row["Id"] in (checking, savings, undeposited) and row["CurrentBalance"] != 0:
                amount = row["CurrentBalance"]
                debit, credit = (opening, row["Id"]) if amount > 0 else (row["Id"], opening)
                await qb.create(
                    "JournalEntry", journal("2027-01-15", debit, credit, str(abs(amount)))
                )

        owner = await qb.account("Owner's Investment", "Equity", "OwnersEquity")
        loan = await qb.account("Bank Loan", "Long Term Liability", "NotesPayable")
        equipment = await qb.account("Equipment", "Fixed Asset", "MachineryAndEquipment")
        item = await qb.create(
            "Item", {"Name": "Counter sales", "Type": "Service", "IncomeAccountRef": ref(income)}
        )
        vendor = (await qb.query("SELECT * FROM Vendor MAXRESULTS 1"))[0]["Id"]
        customer = (await qb.query("SELECT * FROM Customer MAXRESULTS 1"))[0]["Id"]

        # Multicurrency on, EUR added, as a bookkeeper does in QuickBooks' settings.
        preferences = (await client.get(f"{qb.base}/preferences")).json()["Preferences"]
        await qb.create(
            "Preferences",
            {
                "Id": preferences["Id"],
                "SyncToken": preferences["SyncToken"],
                "sparse": True,
                "CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": ref("USD")},
            },
        )
        await qb.create("CompanyCurrency", {"Code": "EUR"})
        roaster = await qb.create(
            "Vendor", {"DisplayName": "Kaffeerösterei Berlin", "CurrencyRef": ref("EUR")}
        )

        await qb.create("Deposit", deposit("2027-03-01", checking, owner, "50000.00"))
        await qb.create("Deposit", deposit("2027-04-05", checking, owner, "10000.00"))
        await qb.create("Deposit", deposit("2027-04-10", checking, loan, "25000.00"))
        await qb.create(
            "SalesReceipt",
            {
                "TxnDate": "2027-04-15",
                "CustomerRef": ref(customer),
                "DepositToAccountRef": ref(checking),
                "Line": sales_lines(item["Id"], "1500.00"),
            },
        )
        await qb.create(
            "Purchase",
            {
                "TxnDate": "2027-04-20",
                "PaymentType": "Check",
                "AccountRef": ref(checking),
                "Line": expense_lines(equipment, "4000.00"),
            },
        )
        bill = await qb.create(
            "Bill",
            {
                "TxnDate": "2027-04-20",
                "DueDate": "2027-05-20",
                "VendorRef": ref(vendor),
                "Line": expense_lines(rent, "2000.00"),
            },
        )
        credit = await qb.create(
            "VendorCredit",
            {
                "TxnDate": "2027-04-25",
                "VendorRef": ref(vendor),
                "Line": expense_lines(rent, "300.00"),
            },
        )
        await qb.create(
            "Transfer",
            {
                "TxnDate": "2027-05-01",
                "FromAccountRef": ref(checking),
                "ToAccountRef": ref(savings),
                "Amount": "5000.00",
            },
        )
        await qb.create(
            "BillPayment",
            {
                "TxnDate": "2027-05-05",
                "VendorRef": ref(vendor),
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": ref(checking)},
                "TotalAmt": "1700.00",
                "Line": [
                    {"Amount": "2000.00", "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]},
                    {
                        "Amount": "300.00",
                        "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}],
                    },
                ],
            },
        )
        await qb.create("JournalEntry", journal("2027-05-10", loan, checking, "1200.00"))
        invoice = await qb.create(
            "Invoice",
            {
                "TxnDate": "2027-05-15",
                "DueDate": "2027-06-14",
                "CustomerRef": ref(customer),
                "Line": sales_lines(item["Id"], "3000.00"),
            },
        )
        memo = await qb.create(
            "CreditMemo",
            {
                "TxnDate": "2027-05-20",
                "CustomerRef": ref(customer),
                "Line": sales_lines(item["Id"], "500.00"),
            },
        )
        await qb.create(
            "Purchase",
            {
                "TxnDate": "2027-05-20",
                "PaymentType": "CreditCard",
                "AccountRef": ref(card),
                "Line": expense_lines(supplies, "640.00"),
            },
        )
        payment = await qb.create(
            "Payment",
            {
                "TxnDate": "2027-06-01",
                "CustomerRef": ref(customer),
                "TotalAmt": "2500.00",
                "Line": [
                    {
                        "Amount": "3000.00",
                        "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}],
                    },
                    {
                        "Amount": "500.00",
                        "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}],
                    },
                ],
            },
        )
        eur_bill = await qb.create(
            "Bill",
            {
                "TxnDate": "2027-06-01",
                "DueDate": "2027-07-01",
                "VendorRef": ref(roaster["Id"]),
                "CurrencyRef": ref("EUR"),
                "ExchangeRate": "1.08",
                "Line": expense_lines(supplies, "1000.00"),
            },
        )
        await qb.create(
            "Deposit",
            {
                "TxnDate": "2027-06-03",
                "DepositToAccountRef": ref(checking),
                "Line": [
                    {
                        "Amount": "2500.00",
                        "LinkedTxn": [
                            {"TxnId": payment["Id"], "TxnType": "Payment", "TxnLineId": "0"}
                        ],
                    }
                ],
            },
        )
        await qb.create(
            "SalesReceipt",
            {
                "TxnDate": "2027-06-10",
                "CustomerRef": ref(customer),
                "Line": sales_lines(item["Id"], "800.00"),
            },
        )
        await qb.create(
            "RefundReceipt",
            {
                "TxnDate": "2027-06-12",
                "CustomerRef": ref(customer),
                "DepositToAccountRef": ref(checking),
                "Line": sales_lines(item["Id"], "150.00"),
            },
        )
        await qb.create(
            "CreditCardPayment",
            {
                "TxnDate": "2027-06-15",
                "BankAccountRef": ref(checking),
                "CreditCardAccountRef": ref(card),
                "Amount": "640.00",
            },
        )
        await qb.create(
            "BillPayment",
            {
                "TxnDate": "2027-06-20",
                "VendorRef": ref(roaster["Id"]),
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": ref(checking)},
                "CurrencyRef": ref("EUR"),
                "ExchangeRate": "1.10",
                "TotalAmt": "400.00",
                "Line": [
                    {
                        "Amount": "400.00",
                        "LinkedTxn": [{"TxnId": eur_bill["Id"], "TxnType": "Bill"}],
                    }
                ],
            },
        )
        ids.update(eur_bill=str(eur_bill["Id"]), payment=str(payment["Id"]))
    yield ids


async def test_the_worked_company_figures_are_the_hand_computed_ones(
    runway_env: RunwayEnv, worked: dict[str, str]
) -> None:
    env = runway_env
    await env.mirror(BUSINESS, worked["realm_id"]).sync()
    async with env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, TODAY)
        # Each transaction's movements, as the mirror keeps them (the snapshot reads their sums).
        movements = await uow.cash_movements.dated_between(TODAY - timedelta(days=180))
    figures = RunwayCalculator().figures(books)

    assert books.currency == "USD" and books.multicurrency
    assert {bank.name: bank.balance for bank in books.banks} == {
        "Checking": D("75870.00"),
        "Savings": D("5000.00"),
    }
    assert figures.cash.total == D("80870.00")
    assert figures.cash.undeposited == D("800.00")
    assert (figures.burn.window_start, figures.burn.window_end) == (date(2027, 4, 2), TODAY)
    assert figures.burn.cash_in == D("4800.00")
    assert figures.burn.cash_out == D("6930.00")
    assert figures.burn.net == D("2130.00")
    assert figures.burn.net_per_month == D("710.00")
    assert figures.financing.owner_in == D("10000.00")
    assert figures.financing.owner_out == D("0.00")
    assert figures.financing.loans_in == D("25000.00")
    assert figures.financing.loans_repaid == D("1200.00")
    assert figures.financing.sentences() == [
        "Owner put in $10,000.00 over the last 90 days",
        "Loans brought in $25,000.00 over the last 90 days",
        "Loans repaid $1,200.00 over the last 90 days",
    ]
    assert figures.runway.status is RunwayStatus.DAYS
    assert figures.runway.days == 3417

    # The payment into Undeposited Funds counted on its date; its deposit is a transfer.
    by_source = {
        (m.source_id, m.account_id): (m.cash_flow, m.amount)
        for m in movements
        if m.kind is MovementKind.CUSTOMER_PAYMENT
    }
    assert by_source == {
        (worked["payment"], worked["undeposited"]): (CashFlowClass.OPERATING, D("2500.00"))
    }
    eur = next(bill for bill in books.open_bills if bill.id == worked["eur_bill"])
    assert (eur.currency, eur.balance, eur.exchange_rate) == ("EUR", D("600.00"), D("1.08"))
    assert eur.home_balance == D("648.00")
