"""The sandbox keeps double-entry books: every write through the v3 API posts to its accounts.

Each test writes through the real HTTP API (httpx over ASGI) to a small seeded company and checks
the postings a transaction makes, the accounts' CurrentBalance, and that every balance-sheet
account's CurrentBalance still equals the ledger rebuilt from all transactions
(`ledger.balances`), after creates, updates, deletes and voids."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import simplejson

from qbo_sandbox import ledger
from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.store import Realm, Store

D = Decimal


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # A small scaled company: the same chart of accounts as the default one, seeded in milliseconds.
    app = create_app(SandboxConfig(scale=5))
    yield app
    await app.aclose()


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with sandbox.http_client() as client:
        yield client


class Books:
    """The company as a bookkeeper sees it: accounts by name, writes through the API."""

    def __init__(self, sandbox: Sandbox, http: httpx.AsyncClient) -> None:
        self.sandbox = sandbox
        self.http = http
        self.realm: Realm = sandbox.realm()

    def account(self, name: str) -> dict[str, Any]:
        found = [a for a in self.realm.iter("Account") if a["Name"] == name]
        assert found, f"no account named {name!r}"
        return dict(found[0])

    def ref(self, name: str) -> dict[str, str]:
        return {"value": self.account(name)["Id"]}

    def balance(self, name: str) -> Decimal:
        return D(self.account(name)["CurrentBalance"])

    def balances(self, *names: str) -> dict[str, Decimal]:
        return {name: self.balance(name) for name in names}

    def first(self, entity: str, **match: Any) -> dict[str, Any]:
        for obj in self.realm.iter(entity):
            if all(obj.get(k) == v for k, v in match.items()):
                return dict(obj)
        raise AssertionError(f"no {entity} with {match}")

    async def write(self, entity: str, body: dict[str, Any], **params: str) -> httpx.Response:
        return await self.http.post(
            self.sandbox.v3_path(entity.lower()),
            content=simplejson.dumps(body, use_decimal=True),
            headers={"Content-Type": "application/json"},
            params=params,
        )

    async def create(self, entity: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        response = await self.write(entity, body, **params)
        assert response.status_code == 200, response.text
        key = "CreditCardPaymentTxn" if entity == "CreditCardPayment" else entity
        created: dict[str, Any] = _json(response)[key]
        self.assert_books_balance()
        return created

    async def fault(self, entity: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        response = await self.write(entity, body, **params)
        assert response.status_code == 400, response.text
        error: dict[str, Any] = _json(response)["Fault"]["Error"][0]
        return error

    async def delete(self, entity: str, obj: dict[str, Any]) -> None:
        body = {"Id": obj["Id"], "SyncToken": obj["SyncToken"]}
        response = await self.write(entity, body, operation="delete")
        assert response.status_code == 200, response.text
        self.assert_books_balance()

    async def void(self, entity: str, obj: dict[str, Any]) -> dict[str, Any]:
        body = {"Id": obj["Id"], "SyncToken": obj["SyncToken"], "sparse": True}
        response = await self.write(entity, body, operation="update", include="void")
        assert response.status_code == 200, response.text
        self.assert_books_balance()
        voided: dict[str, Any] = _json(response)[entity]
        return voided

    def postings(self, entity: str, obj: dict[str, Any]) -> dict[str, Decimal]:
        """A transaction's postings as account name -> home amount (debit +)."""
        stored = self.realm.get(entity, obj["Id"])
        assert stored is not None
        names = {a["Id"]: a["Name"] for a in self.realm.iter("Account")}
        out: dict[str, Decimal] = defaultdict(Decimal)
        for posting in ledger.postings_of(self.realm, entity, stored):
            out[names[posting.account_id]] += posting.amount
        return dict(out)

    def assert_books_balance(self) -> None:
        """Every transaction's postings sum to zero, and each balance-sheet account's
        CurrentBalance is what the ledger says (in the account's own currency)."""
        home = ledger.home_currency(self.realm)
        per_txn: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        own: dict[str, Decimal] = defaultdict(Decimal)
        everything = ledger.postings(self.realm)
        accounts = {a["Id"]: a for a in self.realm.iter("Account")}
        for posting in everything:
            per_txn[(posting.txn_type, posting.txn_id)] += posting.amount
            account = accounts[posting.account_id]
            if ledger.currency_of(account, home) == home:
                own[posting.account_id] += posting.amount
            elif posting.currency == ledger.currency_of(account, home):
                own[posting.account_id] += posting.foreign_amount or D(0)
        assert {k: v for k, v in per_txn.items() if v} == {}
        for account_id, account in accounts.items():
            expected = ledger.current_balance(account, own.get(account_id, D("0.00")))
            assert D(account["CurrentBalance"]) == expected, account["Name"]
        balances = ledger.balances(self.realm)
        assert sum(balances.values(), D(0)) == 0  # a trial balance


def _json(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = simplejson.loads(response.text, use_decimal=True)
    return body


@pytest.fixture
def books(sandbox: Sandbox, http: httpx.AsyncClient) -> Books:
    company = Books(sandbox, http)
    company.assert_books_balance()
    return company


def expense_line(books: Books, account: str, amount: str) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {"AccountRef": books.ref(account)},
    }


def item_line(item_id: str, amount: str) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {"ItemRef": {"value": item_id}},
    }


AP, AR = "Accounts Payable (A/P)", "Accounts Receivable (A/R)"
CHECKING, SAVINGS, CARD = "Checking", "Savings", "Chase Ink Business Card"
UNDEPOSITED, SALES, EQUITY = "Undeposited Funds", "Wholesale Coffee Sales", "Opening Balance Equity"


# -- seeded books ----------------------------------------------------------------------------------


def test_seeded_companies_balances_equal_their_ledger() -> None:
    for config in (SandboxConfig(), SandboxConfig(scale=300)):
        realm = create_app(config).realm()
        balances = ledger.balances(realm)
        for account in realm.iter("Account"):
            expected = ledger.current_balance(account, balances.get(account["Id"], D("0.00")))
            assert account["CurrentBalance"] == expected, account["Name"]
        open_bills = sum((b["Balance"] for b in realm.iter("Bill")), D(0))
        ap = next(a for a in realm.iter("Account") if a["AccountType"] == "Accounts Payable")
        assert ap["CurrentBalance"] == open_bills
        # Opening balances are transactions against Opening Balance Equity, dated at the start.
        equity = next(a for a in realm.iter("Account") if a["Name"] == EQUITY)
        assert equity["CurrentBalance"] > 0
        assert -balances[equity["Id"]] == equity["CurrentBalance"]


# -- bills and what pays them ----------------------------------------------------------------------


async def test_bill_and_its_payments_move_ap_expense_and_bank(books: Books) -> None:
    vendor = books.first("Vendor")
    before = books.balances(AP, CHECKING)
    bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": vendor["Id"]},
            "TxnDate": "2026-11-02",
            "Line": [
                expense_line(books, "Rent or Lease", "600.00"),
                expense_line(books, "Utilities", "400.00"),
            ],
        },
    )
    assert books.postings("Bill", bill) == {
        "Rent or Lease": D("600.00"),
        "Utilities": D("400.00"),
        AP: D("-1000.00"),
    }
    assert books.balance(AP) == before[AP] + D("1000.00")

    payment = await books.create(
        "BillPayment",
        {
            "VendorRef": {"value": vendor["Id"]},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
            "TotalAmt": "400.00",
            "TxnDate": "2026-11-20",
            "Line": [{"Amount": "400.00", "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}],
        },
    )
    assert books.postings("BillPayment", payment) == {AP: D("400.00"), CHECKING: D("-400.00")}
    assert books.balances(AP, CHECKING) == {
        AP: before[AP] + D("600.00"),
        CHECKING: before[CHECKING] - D("400.00"),
    }
    # A/P is what the open bills still owe.
    assert books.balance(AP) == sum((b["Balance"] for b in books.realm.iter("Bill")), D(0))

    # Raising the bill raises what is owed; its payment stands.
    bill = books.first("Bill", Id=bill["Id"])
    raised = {
        **bill,
        "Line": [
            expense_line(books, "Rent or Lease", "800.00"),
            expense_line(books, "Utilities", "400.00"),
        ],
    }
    raised.pop("TotalAmt")
    bill = await books.create("Bill", raised)
    assert bill["Balance"] == D("800.00")
    assert books.balance(AP) == before[AP] + D("800.00")

    # Voiding the payment gives the money back to the bank and the debt back to A/P.
    await books.void("BillPayment", books.first("BillPayment", Id=payment["Id"]))
    assert books.balances(AP, CHECKING) == {
        AP: before[AP] + D("1200.00"),
        CHECKING: before[CHECKING],
    }
    await books.delete("Bill", books.first("Bill", Id=bill["Id"]))
    assert books.balances(AP, CHECKING) == before


async def test_a_refused_write_changes_no_balance(books: Books) -> None:
    open_bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": books.first("Vendor")["Id"]},
            "Line": [expense_line(books, "Rent or Lease", "300.00")],
        },
    )
    before = books.balances(AP, CHECKING)
    error = await books.fault(
        "BillPayment",
        {
            "VendorRef": open_bill["VendorRef"],
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
            "TotalAmt": str(open_bill["Balance"] + D("0.01")),
            "Line": [
                {
                    "Amount": str(open_bill["Balance"] + D("0.01")),
                    "LinkedTxn": [{"TxnId": open_bill["Id"], "TxnType": "Bill"}],
                }
            ],
        },
    )
    assert error["code"] == "6000"
    assert books.balances(AP, CHECKING) == before
    books.assert_books_balance()


async def test_card_charges_raise_the_card_and_a_card_payment_lowers_it(books: Books) -> None:
    vendor = books.first("Vendor")
    before = books.balances(CARD, CHECKING)
    charge = await books.create(
        "Purchase",
        {
            "PaymentType": "CreditCard",
            "AccountRef": books.ref(CARD),
            "EntityRef": {"value": vendor["Id"], "type": "Vendor"},
            "TxnDate": "2026-11-03",
            "Line": [expense_line(books, "Office Supplies", "250.00")],
        },
    )
    assert books.postings("Purchase", charge) == {
        "Office Supplies": D("250.00"),
        CARD: D("-250.00"),
    }
    assert books.balance(CARD) == before[CARD] + D("250.00")  # owed on the card

    refund = await books.create(
        "Purchase",
        {
            "PaymentType": "CreditCard",
            "Credit": True,
            "AccountRef": books.ref(CARD),
            "TxnDate": "2026-11-04",
            "Line": [expense_line(books, "Office Supplies", "50.00")],
        },
    )
    assert books.postings("Purchase", refund) == {"Office Supplies": D("-50.00"), CARD: D("50.00")}

    paid = await books.create(
        "CreditCardPayment",
        {
            "CreditCardAccountRef": books.ref(CARD),
            "BankAccountRef": books.ref(CHECKING),
            "Amount": "200.00",
            "TxnDate": "2026-11-12",
        },
    )
    assert paid["Amount"] == D("200.00") and paid["CurrencyRef"]["value"] == "USD"
    assert books.postings("CreditCardPaymentTxn", paid) == {
        CARD: D("200.00"),
        CHECKING: D("-200.00"),
    }
    assert books.balances(CARD, CHECKING) == {
        CARD: before[CARD],
        CHECKING: before[CHECKING] - D("200.00"),
    }
    read = await books.http.get(books.sandbox.v3_path(f"creditcardpayment/{paid['Id']}"))
    assert _json(read)["CreditCardPaymentTxn"]["Id"] == paid["Id"]
    await books.delete("CreditCardPayment", books.first("CreditCardPaymentTxn", Id=paid["Id"]))
    assert books.balance(CHECKING) == before[CHECKING]


async def test_vendor_credit_lowers_ap_and_what_a_bill_payment_takes_from_the_bank(
    books: Books,
) -> None:
    vendor = books.first("Vendor")
    bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": vendor["Id"]},
            "TxnDate": "2026-11-01",
            "Line": [expense_line(books, "Repairs & Maintenance", "500.00")],
        },
    )
    before = books.balances(AP, CHECKING)
    credit = await books.create(
        "VendorCredit",
        {
            "VendorRef": {"value": vendor["Id"]},
            "TxnDate": "2026-11-05",
            "Line": [expense_line(books, "Repairs & Maintenance", "120.00")],
        },
    )
    assert credit["Balance"] == D("120.00")
    assert books.postings("VendorCredit", credit) == {
        "Repairs & Maintenance": D("-120.00"),
        AP: D("120.00"),
    }
    assert books.balance(AP) == before[AP] - D("120.00")
    payment = await books.create(
        "BillPayment",
        {
            "VendorRef": {"value": vendor["Id"]},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
            "TotalAmt": "380.00",
            "Line": [
                {"Amount": "500.00", "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]},
                {
                    "Amount": "120.00",
                    "LinkedTxn": [{"TxnId": credit["Id"], "TxnType": "VendorCredit"}],
                },
            ],
        },
    )
    assert books.postings("BillPayment", payment) == {AP: D("380.00"), CHECKING: D("-380.00")}
    assert books.first("Bill", Id=bill["Id"])["Balance"] == 0
    assert books.first("VendorCredit", Id=credit["Id"])["Balance"] == 0
    assert books.balances(AP, CHECKING) == {
        AP: before[AP] - D("500.00"),
        CHECKING: before[CHECKING] - D("380.00"),
    }
    refused = await books.fault(
        "VendorCredit",
        {
            "Id": credit["Id"],
            "SyncToken": books.first("VendorCredit", Id=credit["Id"])["SyncToken"],
        },
        operation="delete",
    )
    assert refused["code"] == "6000"


# -- sales ------------------------------------------------------------------------------------------


async def test_invoice_payment_and_deposit_move_ar_undeposited_funds_and_the_bank(
    books: Books,
) -> None:
    customer = books.first("Customer")
    before = books.balances(AR, UNDEPOSITED, CHECKING)
    invoice = await books.create(
        "Invoice",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TxnDate": "2026-11-02",
            "Line": [item_line("1", "310.00"), item_line("7", "145.00")],
        },
    )
    # Item lines post to each item's income account, recorded on the line.
    assert (
        invoice["Line"][0]["SalesItemLineDetail"]["ItemAccountRef"]["value"]
        == books.account(SALES)["Id"]
    )
    assert books.postings("Invoice", invoice) == {AR: D("455.00"), SALES: D("-455.00")}
    payment = await books.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": "455.00",
            "TxnDate": "2026-11-20",
            "Line": [
                {"Amount": "455.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    assert books.postings("Payment", payment) == {AR: D("-455.00"), UNDEPOSITED: D("455.00")}
    deposit = await books.create(
        "Deposit",
        {
            "DepositToAccountRef": books.ref(CHECKING),
            "TxnDate": "2026-11-21",
            "Line": [
                {"Amount": "455.00", "LinkedTxn": [{"TxnId": payment["Id"], "TxnType": "Payment"}]}
            ],
        },
    )
    assert books.postings("Deposit", deposit) == {UNDEPOSITED: D("-455.00"), CHECKING: D("455.00")}
    assert books.balances(AR, UNDEPOSITED, CHECKING) == {
        AR: before[AR],
        UNDEPOSITED: before[UNDEPOSITED],
        CHECKING: before[CHECKING] + D("455.00"),
    }
    assert books.balance(AR) == sum((i["Balance"] for i in books.realm.iter("Invoice")), D(0))


async def test_credit_memo_lowers_ar_and_a_payment_can_apply_it(books: Books) -> None:
    customer = books.first("Customer")
    invoice = await books.create(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [item_line("2", "200.00")]}
    )
    before = books.balances(AR, CHECKING)
    memo = await books.create(
        "CreditMemo", {"CustomerRef": {"value": customer["Id"]}, "Line": [item_line("2", "50.00")]}
    )
    assert memo["Balance"] == D("50.00") and memo["RemainingCredit"] == D("50.00")
    assert books.postings("CreditMemo", memo) == {SALES: D("50.00"), AR: D("-50.00")}
    payment = await books.create(
        "Payment",
        {
            "CustomerRef": {"value": customer["Id"]},
            "TotalAmt": "150.00",
            "DepositToAccountRef": books.ref(CHECKING),
            "Line": [
                {"Amount": "200.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
                {"Amount": "50.00", "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]},
            ],
        },
    )
    assert payment["UnappliedAmt"] == 0
    assert books.postings("Payment", payment) == {AR: D("-150.00"), CHECKING: D("150.00")}
    assert books.first("CreditMemo", Id=memo["Id"])["RemainingCredit"] == 0
    assert books.balances(AR, CHECKING) == {
        AR: before[AR] - D("200.00"),
        CHECKING: before[CHECKING] + D("150.00"),
    }


async def test_sales_receipts_and_refund_receipts(books: Books) -> None:
    before = books.balances(CHECKING, UNDEPOSITED)
    banked = await books.create(
        "SalesReceipt",
        {
            "DepositToAccountRef": books.ref(CHECKING),
            "TxnDate": "2026-11-07",
            "Line": [item_line("5", "76.00")],
        },
    )
    assert banked["Balance"] == 0 and banked["TotalAmt"] == D("76.00")
    assert books.postings("SalesReceipt", banked) == {CHECKING: D("76.00"), SALES: D("-76.00")}
    counter = await books.create("SalesReceipt", {"Line": [item_line("5", "38.00")]})
    assert books.postings("SalesReceipt", counter) == {UNDEPOSITED: D("38.00"), SALES: D("-38.00")}
    refund = await books.create(
        "RefundReceipt",
        {"DepositToAccountRef": books.ref(CHECKING), "Line": [item_line("5", "38.00")]},
    )
    assert books.postings("RefundReceipt", refund) == {CHECKING: D("-38.00"), SALES: D("38.00")}
    assert books.balances(CHECKING, UNDEPOSITED) == {
        CHECKING: before[CHECKING] + D("38.00"),
        UNDEPOSITED: before[UNDEPOSITED] + D("38.00"),
    }
    missing = await books.fault("RefundReceipt", {"Line": [item_line("5", "1.00")]})
    assert missing["code"] == "2020"
    await books.void("SalesReceipt", books.first("SalesReceipt", Id=banked["Id"]))
    assert books.balance(CHECKING) == before[CHECKING] - D("38.00")


# -- money between the business's own accounts, owner money, journal entries -----------------------


async def test_transfers_and_deposits_drawn_from_savings(books: Books) -> None:
    before = books.balances(CHECKING, SAVINGS)
    transfer = await books.create(
        "Transfer",
        {
            "FromAccountRef": books.ref(CHECKING),
            "ToAccountRef": books.ref(SAVINGS),
            "Amount": "1500.00",
        },
    )
    assert books.postings("Transfer", transfer) == {CHECKING: D("-1500.00"), SAVINGS: D("1500.00")}
    drawn = await books.create(
        "Deposit",
        {
            "DepositToAccountRef": books.ref(CHECKING),
            "Line": [
                {
                    "Amount": "4000.00",
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": books.ref(SAVINGS)},
                }
            ],
        },
    )
    assert books.postings("Deposit", drawn) == {CHECKING: D("4000.00"), SAVINGS: D("-4000.00")}
    assert books.balances(CHECKING, SAVINGS) == {
        CHECKING: before[CHECKING] + D("2500.00"),
        SAVINGS: before[SAVINGS] - D("2500.00"),
    }
    transfer = books.first("Transfer", Id=transfer["Id"])
    await books.create("Transfer", {**transfer, "Amount": "1000.00"})
    assert books.balance(SAVINGS) == before[SAVINGS] - D("3000.00")
    await books.delete("Transfer", books.first("Transfer", Id=transfer["Id"]))
    assert books.balance(SAVINGS) == before[SAVINGS] - D("4000.00")


async def test_a_deposits_cash_back_goes_to_its_account_and_the_bank_gets_the_rest(
    books: Books,
) -> None:
    petty = await books.create(
        "Account", {"Name": "Petty Cash", "AccountType": "Bank", "AccountSubType": "CashOnHand"}
    )
    before = books.balances(CHECKING, SAVINGS)

    def line(amount: str, account: str) -> dict[str, Any]:
        return {
            "Amount": amount,
            "DetailType": "DepositLineDetail",
            "DepositLineDetail": {"AccountRef": books.ref(account)},
        }

    body: dict[str, Any] = {
        "DepositToAccountRef": books.ref(CHECKING),
        "Line": [line("600.00", SAVINGS), line("400.00", EQUITY)],
        "CashBack": {"AccountRef": {"value": petty["Id"]}, "Amount": "100.00"},
    }
    # Lines of 1,000.00 less 100.00 of cash back: the bank receives 900.00.
    wrong = await books.fault("Deposit", {**body, "TotalAmt": "1000.00"})
    assert (wrong["code"], wrong["element"]) == ("6000", "TotalAmt")
    deposit = await books.create("Deposit", body)
    assert D(deposit["TotalAmt"]) == D("900.00")
    assert deposit["CashBack"]["AccountRef"] == {"value": petty["Id"], "name": "Petty Cash"}
    assert books.postings("Deposit", deposit) == {
        CHECKING: D("900.00"),
        "Petty Cash": D("100.00"),
        SAVINGS: D("-600.00"),
        EQUITY: D("-400.00"),
    }
    assert books.balances(CHECKING, SAVINGS, "Petty Cash") == {
        CHECKING: before[CHECKING] + D("900.00"),
        SAVINGS: before[SAVINGS] - D("600.00"),
        "Petty Cash": D("100.00"),
    }
    too_much = await books.fault(
        "Deposit", {**body, "CashBack": {**body["CashBack"], "Amount": "1000.01"}}
    )
    assert too_much["element"] == "CashBack.Amount"
    await books.delete("Deposit", books.first("Deposit", Id=deposit["Id"]))
    assert books.balances(CHECKING, SAVINGS, "Petty Cash") == {**before, "Petty Cash": D("0.00")}


async def test_a_sparse_update_of_the_lines_works_the_total_out_again(books: Books) -> None:
    before = books.balance(CHECKING)
    purchase = await books.create(
        "Purchase",
        {
            "PaymentType": "Check",
            "AccountRef": books.ref(CHECKING),
            "Line": [expense_line(books, SAVINGS, "120.00")],
        },
    )
    deposit = await books.create(
        "Deposit",
        {
            "DepositToAccountRef": books.ref(CHECKING),
            "Line": [
                {
                    "Amount": "300.00",
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": books.ref(EQUITY)},
                }
            ],
        },
    )
    assert books.balance(CHECKING) == before - D("120.00") + D("300.00")
    # New lines without TotalAmt: QuickBooks totals them again (the old 120.00 and 300.00 go).
    purchase = await books.create(
        "Purchase",
        {
            "Id": purchase["Id"],
            "SyncToken": purchase["SyncToken"],
            "sparse": True,
            "Line": [
                expense_line(books, SAVINGS, "100.00"),
                expense_line(books, SAVINGS, "50.00"),
            ],
        },
    )
    assert D(purchase["TotalAmt"]) == D("150.00")
    line = {**deposit["Line"][0], "Amount": "275.00"}
    deposit = await books.create(
        "Deposit",
        {
            "Id": deposit["Id"],
            "SyncToken": deposit["SyncToken"],
            "sparse": True,
            "DepositToAccountRef": deposit["DepositToAccountRef"],
            "Line": [line],
        },
    )
    assert D(deposit["TotalAmt"]) == D("275.00")
    assert books.balance(CHECKING) == before - D("150.00") + D("275.00")
    # A TotalAmt that is sent must still be the lines'.
    wrong = await books.fault(
        "Deposit",
        {
            "Id": deposit["Id"],
            "SyncToken": deposit["SyncToken"],
            "sparse": True,
            "Line": [line],
            "TotalAmt": "300.00",
        },
    )
    assert (wrong["code"], wrong["element"]) == ("6000", "TotalAmt")


async def test_journal_entries_post_their_lines_and_must_balance(books: Books) -> None:
    before = books.balances(CHECKING, EQUITY)

    def line(account: str, posting: str, amount: str) -> dict[str, Any]:
        return {
            "Amount": amount,
            "DetailType": "JournalEntryLineDetail",
            "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": books.ref(account)},
        }

    contribution = await books.create(
        "JournalEntry",
        {
            "TxnDate": "2026-11-15",
            "Line": [line(CHECKING, "Debit", "10000.00"), line(EQUITY, "Credit", "10000.00")],
        },
    )
    assert contribution["TotalAmt"] == D("10000.00")
    assert books.postings("JournalEntry", contribution) == {
        CHECKING: D("10000.00"),
        EQUITY: D("-10000.00"),
    }
    assert books.balances(CHECKING, EQUITY) == {
        CHECKING: before[CHECKING] + D("10000.00"),
        EQUITY: before[EQUITY] + D("10000.00"),
    }
    unbalanced = await books.fault(
        "JournalEntry",
        {"Line": [line(CHECKING, "Debit", "100.00"), line(EQUITY, "Credit", "90.00")]},
    )
    assert unbalanced["code"] == "6000" and "not balanced" in unbalanced["Detail"]
    await books.delete("JournalEntry", books.first("JournalEntry", Id=contribution["Id"]))
    assert books.balances(CHECKING, EQUITY) == before


# -- lists ----------------------------------------------------------------------------------------


async def test_items_terms_and_preferences(books: Books) -> None:
    catering = await books.create(
        "Account", {"Name": "Catering Income", "AccountType": "Income", "CurrentBalance": "999"}
    )
    assert catering["CurrentBalance"] == 0  # read-only: an account starts empty
    item = await books.create(
        "Item",
        {
            "Name": "Event Catering",
            "Type": "Service",
            "UnitPrice": "250",
            "IncomeAccountRef": {"value": catering["Id"]},
        },
    )
    assert item["IncomeAccountRef"]["name"] == "Catering Income"
    sale = await books.create(
        "SalesReceipt",
        {"DepositToAccountRef": books.ref(CHECKING), "Line": [item_line(item["Id"], "250.00")]},
    )
    assert books.postings("SalesReceipt", sale) == {
        CHECKING: D("250.00"),
        "Catering Income": D("-250.00"),
    }
    assert (
        await books.fault(
            "Item",
            {
                "Name": "Event Catering",
                "Type": "Service",
                "IncomeAccountRef": {"value": catering["Id"]},
            },
        )
    )["code"] == "6240"
    unknown = await books.fault("SalesReceipt", {"Line": [item_line("999", "1.00")]})
    assert unknown["code"] == "610"
    term = await books.create("Term", {"Name": "Net 45", "DueDays": 45})
    assert term["Type"] == "STANDARD" and term["Active"] is True

    prefs = _json(await books.http.get(books.sandbox.v3_path("preferences")))["Preferences"]
    assert prefs["CurrencyPrefs"] == {
        "MultiCurrencyEnabled": False,
        "HomeCurrency": {"value": "USD"},
    }
    queried = _json(
        await books.http.get(
            books.sandbox.v3_path("query"), params={"query": "select * from Preferences"}
        )
    )
    assert queried["QueryResponse"]["Preferences"][0]["Id"] == prefs["Id"]


async def test_outside_edits_move_the_accounts_too(books: Books) -> None:
    open_bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": books.first("Vendor")["Id"]},
            "Line": [expense_line(books, "Rent or Lease", "300.00")],
        },
    )
    before = books.balance(AP)
    line = {**open_bill["Line"][0], "Amount": open_bill["Line"][0]["Amount"] + D("10.00")}
    response = await books.http.post(
        f"/_sandbox/realms/{books.realm.realm_id}/edit/Bill/{open_bill['Id']}",
        content=simplejson.dumps(
            {
                "Line": [line],
                "TotalAmt": open_bill["TotalAmt"] + D("10.00"),
                "Balance": open_bill["Balance"] + D("10.00"),
            },
            use_decimal=True,
        ),
    )
    assert response.status_code == 200
    assert books.balance(AP) == before + D("10.00")
    books.assert_books_balance()


async def test_money_with_no_account_to_post_to_is_refused_and_nothing_moves(
    books: Books,
) -> None:
    """A line whose money has no account (an item with no expense account on a bill, an expense or
    deposit line without AccountRef) is refused with QuickBooks' business validation fault, saying
    what account is missing, through the API and through the outside-edit endpoint alike; nothing
    is stored and no balance moves. A posting that does not balance is never kept."""
    realm = books.realm
    sacks = await books.create(
        "Item",
        {"Name": "Burlap sacks", "Type": "NonInventory", "IncomeAccountRef": books.ref(SALES)},
    )
    untouched = {a["Id"]: a["CurrentBalance"] for a in realm.iter("Account")}
    counts = {entity: realm.count(entity) for entity in ("Bill", "Purchase", "Deposit")}
    no_expense_account = {
        "VendorRef": {"value": books.first("Vendor")["Id"]},
        "Line": [
            expense_line(books, "Rent or Lease", "300.00"),
            {
                "Amount": "40.00",
                "DetailType": "ItemBasedExpenseLineDetail",
                "ItemBasedExpenseLineDetail": {"ItemRef": {"value": sacks["Id"]}},
            },
        ],
    }
    refused = await books.fault("Bill", no_expense_account)
    assert refused["code"] == "6000", refused
    assert "line 2" in refused["Detail"] and "Burlap sacks" in refused["Detail"]
    assert "expense account" in refused["Detail"]
    no_account = {"Amount": "25.00", "DetailType": "AccountBasedExpenseLineDetail"}
    refused = await books.fault(
        "Purchase",
        {
            "PaymentType": "Check",
            "AccountRef": books.ref(CHECKING),
            "Line": [{**no_account, "AccountBasedExpenseLineDetail": {}}],
        },
    )
    assert refused["code"] == "6000" and "AccountRef" in refused["Detail"], refused
    refused = await books.fault(
        "Deposit",
        {
            "DepositToAccountRef": books.ref(CHECKING),
            "Line": [{"Amount": "25.00", "DetailType": "DepositLineDetail"}],
        },
    )
    assert refused["code"] == "6000" and "AccountRef" in refused["Detail"], refused
    outside = await books.http.post(
        f"/_sandbox/realms/{realm.realm_id}/Bill",
        content=simplejson.dumps({**no_expense_account, "TotalAmt": "340.00"}),
    )
    assert outside.status_code == 400 and "Burlap sacks" in outside.text, outside.text
    assert {entity: realm.count(entity) for entity in counts} == counts
    assert {a["Id"]: a["CurrentBalance"] for a in realm.iter("Account")} == untouched
    books.assert_books_balance()


def test_the_ledger_never_drops_a_posting_it_has_no_account_for() -> None:
    """A euro journal entry whose lines round to a cent more than they balance needs Exchange
    Gain or Loss; in a company without one, the ledger says so instead of dropping the cent."""
    realm = Store().create_realm("4620816399")
    for name, kind in (("Checking", "Bank"), ("Supplies", "Expense"), ("Rent", "Expense")):
        realm.insert("Account", {"Name": name, "AccountType": kind})
    entry = {
        "Id": "9",
        "TxnDate": "2026-11-02",
        "CurrencyRef": {"value": "EUR"},
        "ExchangeRate": "1.1234",
        "Line": [
            {
                "Amount": amount,
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": side, "AccountRef": {"value": ident}},
            }
            # 0.03 + 0.02 at 1.1234 is $0.05, 0.05 is $0.06: a cent of rounding.
            for amount, side, ident in (
                ("0.03", "Debit", "2"),
                ("0.02", "Debit", "3"),
                ("0.05", "Credit", "1"),
            )
        ],
    }
    with pytest.raises(ledger.UnpostableLine, match=ledger.EXCHANGE_GAIN_OR_LOSS):
        ledger.postings_of(realm, "JournalEntry", entry)


# -- multicurrency -------------------------------------------------------------------------------


async def test_multicurrency_off_refuses_a_foreign_currency(books: Books) -> None:
    vendor = books.first("Vendor")
    bill = {
        "VendorRef": {"value": vendor["Id"]},
        "CurrencyRef": {"value": "EUR"},
        "ExchangeRate": "1.08",
        "Line": [expense_line(books, "Rent or Lease", "1000.00")],
    }
    refused = await books.fault("Bill", bill)
    assert refused["code"] == "6000" and "Multicurrency is not enabled" in refused["Detail"]
    assert (
        await books.fault("Vendor", {"DisplayName": "Kaffee GmbH", "CurrencyRef": {"value": "EUR"}})
    )["code"] == "6000"
    assert (await books.fault("CompanyCurrency", {"Code": "EUR"}))["code"] == "6000"
    rate = await books.http.get(
        books.sandbox.v3_path("exchangerate"), params={"sourcecurrencycode": "EUR"}
    )
    assert rate.status_code == 400


async def test_a_eur_bill_paid_at_a_higher_rate_posts_the_exchange_loss(books: Books) -> None:
    realm_id = books.realm.realm_id
    turned_on = await books.http.post(
        f"/_sandbox/realms/{realm_id}/multicurrency",
        json={
            "currencies": ["EUR"],
            "rates": [{"SourceCurrencyCode": "EUR", "AsOfDate": "2026-11-02", "Rate": "1.08"}],
        },
    )
    assert turned_on.status_code == 200, turned_on.text
    assert books.account(ledger.EXCHANGE_GAIN_OR_LOSS)["AccountType"] == "Other Expense"
    await books.create(
        "ExchangeRate", {"SourceCurrencyCode": "EUR", "AsOfDate": "2026-11-30", "Rate": "1.10"}
    )
    rate = _json(
        await books.http.get(
            books.sandbox.v3_path("exchangerate"),
            params={"sourcecurrencycode": "EUR", "asofdate": "2026-11-15"},
        )
    )
    assert (
        rate["ExchangeRate"]["Rate"] == D("1.08")
        and rate["ExchangeRate"]["TargetCurrencyCode"] == "USD"
    )

    supplier = await books.create(
        "Vendor", {"DisplayName": "Rösterei Berlin", "CurrencyRef": {"value": "EUR"}}
    )
    assert supplier["CurrencyRef"] == {"value": "EUR", "name": "Euro"}
    lines = [expense_line(books, "Green Coffee", "1000.00")]
    no_rate = await books.fault(
        "Bill",
        {"VendorRef": {"value": supplier["Id"]}, "CurrencyRef": {"value": "EUR"}, "Line": lines},
    )
    assert no_rate["code"] == "2410"
    usd_vendor = books.first("Vendor")
    mismatch = await books.fault(
        "Bill",
        {
            "VendorRef": {"value": usd_vendor["Id"]},
            "CurrencyRef": {"value": "EUR"},
            "ExchangeRate": "1.08",
            "Line": lines,
        },
    )
    assert mismatch["code"] == "6000" and "one foreign currency" in mismatch["Detail"]

    checking_before = books.balance(CHECKING)
    bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": supplier["Id"]},
            "TxnDate": "2026-11-02",
            "ExchangeRate": "1.08",
            "Line": lines,
        },
    )
    assert bill["CurrencyRef"]["value"] == "EUR" and bill["TotalAmt"] == D("1000.00")
    assert bill["Balance"] == D("1000.00") and bill["HomeTotalAmt"] == D("1080.00")
    ap_eur = "Accounts Payable (A/P) - EUR"
    assert bill["APAccountRef"]["name"] == ap_eur
    assert books.postings("Bill", bill) == {"Green Coffee": D("1080.00"), ap_eur: D("-1080.00")}
    assert books.account(ap_eur)["CurrencyRef"]["value"] == "EUR"
    assert books.balance(ap_eur) == D("1000.00")  # in the account's own currency

    payment = await books.create(
        "BillPayment",
        {
            "VendorRef": {"value": supplier["Id"]},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
            "CurrencyRef": {"value": "EUR"},
            "ExchangeRate": "1.10",
            "TxnDate": "2026-11-30",
            "TotalAmt": "1000.00",
            "Line": [
                {"Amount": "1000.00", "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}
            ],
        },
    )
    assert payment["HomeTotalAmt"] == D("1100.00")
    assert books.postings("BillPayment", payment) == {
        ap_eur: D("1080.00"),
        CHECKING: D("-1100.00"),
        ledger.EXCHANGE_GAIN_OR_LOSS: D("20.00"),
    }
    assert books.balance(ap_eur) == 0 and books.balance(CHECKING) == checking_before - D("1100.00")
    balances = ledger.balances(books.realm)
    assert balances[books.account(ap_eur)["Id"]] == 0
    assert balances[books.account(ledger.EXCHANGE_GAIN_OR_LOSS)["Id"]] == D("20.00")

    eur_bank = await books.create(
        "Account", {"Name": "Euro Account", "AccountType": "Bank", "CurrencyRef": {"value": "EUR"}}
    )
    other = await books.fault(
        "Account", {"Name": "Euro Sales", "AccountType": "Income", "CurrencyRef": {"value": "EUR"}}
    )
    assert other["code"] == "6000"
    usd_bill = await books.create("Bill", {"VendorRef": {"value": usd_vendor["Id"]}, "Line": lines})
    wrong_bank = await books.fault(
        "BillPayment",
        {
            "VendorRef": {"value": usd_vendor["Id"]},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": eur_bank["Id"]}},
            "TotalAmt": "1000.00",
            "Line": [
                {"Amount": "1000.00", "LinkedTxn": [{"TxnId": usd_bill["Id"], "TxnType": "Bill"}]}
            ],
        },
    )
    assert wrong_bank["code"] == "6000" and "one foreign currency" in wrong_bank["Detail"]


async def test_foreign_lines_round_to_the_total_at_the_rate_and_a_customer_payment_books_the_gain(
    books: Books,
) -> None:
    turned_on = await books.http.post(
        f"/_sandbox/realms/{books.realm.realm_id}/multicurrency", json={"currencies": ["EUR"]}
    )
    assert turned_on.status_code == 200, turned_on.text
    supplier = await books.create(
        "Vendor", {"DisplayName": "Torrefazione Roma", "CurrencyRef": {"value": "EUR"}}
    )
    bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": supplier["Id"]},
            "ExchangeRate": "1.08",
            "Line": [
                expense_line(books, "Green Coffee", "333.33"),
                expense_line(books, "Green Coffee", "333.33"),
                expense_line(books, "Packaging & Labels", "333.34"),
            ],
        },
    )
    # 333.33 x 1.08 = 360.00 (twice) and 333.34 x 1.08 = 360.01: 1,080.01 by line, but the bill
    # is 1,000.00 x 1.08 = 1,080.00 in dollars; the cent comes off the largest line.
    assert bill["HomeTotalAmt"] == D("1080.00")
    assert books.postings("Bill", bill) == {
        "Green Coffee": D("720.00"),
        "Packaging & Labels": D("360.00"),
        "Accounts Payable (A/P) - EUR": D("-1080.00"),
    }

    client = await books.create(
        "Customer", {"DisplayName": "Café de Flore", "CurrencyRef": {"value": "EUR"}}
    )
    invoice = await books.create(
        "Invoice",
        {
            "CustomerRef": {"value": client["Id"]},
            "ExchangeRate": "1.08",
            "Line": [item_line("1", "500.00")],
        },
    )
    ar_eur = "Accounts Receivable (A/R) - EUR"
    assert books.postings("Invoice", invoice) == {ar_eur: D("540.00"), SALES: D("-540.00")}
    assert books.balance(ar_eur) == D("500.00")
    eur_bank = await books.create(
        "Account", {"Name": "Banque EUR", "AccountType": "Bank", "CurrencyRef": {"value": "EUR"}}
    )
    paid = await books.create(
        "Payment",
        {
            "CustomerRef": {"value": client["Id"]},
            "TotalAmt": "500.00",
            "ExchangeRate": "1.12",
            "DepositToAccountRef": {"value": eur_bank["Id"]},
            "Line": [
                {"Amount": "500.00", "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}
            ],
        },
    )
    # Received 500.00 EUR worth $560.00 against an invoice booked at $540.00: a $20.00 gain.
    assert books.postings("Payment", paid) == {
        ar_eur: D("-540.00"),
        "Banque EUR": D("560.00"),
        ledger.EXCHANGE_GAIN_OR_LOSS: D("-20.00"),
    }
    assert books.balance("Banque EUR") == D("500.00") and books.balance(ar_eur) == 0
    stored = books.first("Invoice", Id=invoice["Id"])
    assert stored["Balance"] == 0 and stored["HomeTotalAmt"] == D("540.00")


@pytest.mark.parametrize("side", ["payables", "receivables"])
async def test_a_euro_document_settled_in_parts_leaves_no_cent_in_home_currency(
    books: Books, side: str
) -> None:
    """A EUR 0.05 bill at 1.1234 ($0.06) paid with five EUR 0.01 payments at the same rate: each
    payment relieves A/P by what the bill's home balance drops (0.02, 0.01, 0.01, 0.01, 0.01), so
    after every payment the ledger holds the bill's HomeBalance and the last one relieves what is
    left; the cent rounding gave goes to Exchange Gain or Loss. The same for an invoice, and for a
    vendor credit and a credit memo applied in parts beside a bill or an invoice."""
    turned_on = await books.http.post(
        f"/_sandbox/realms/{books.realm.realm_id}/multicurrency", json={"currencies": ["EUR"]}
    )
    assert turned_on.status_code == 200, turned_on.text
    rate = "1.1234"
    payables = side == "payables"
    if payables:
        supplier = await books.create(
            "Vendor", {"DisplayName": "Rösterei Hamburg", "CurrencyRef": {"value": "EUR"}}
        )
        control, document, credit, payment = "Accounts Payable (A/P) - EUR", *SETTLING["payables"]
        party = {"VendorRef": {"value": supplier["Id"]}}
        paid_from: dict[str, Any] = {
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
        }
    else:
        client = await books.create(
            "Customer", {"DisplayName": "Café Wien", "CurrencyRef": {"value": "EUR"}}
        )
        control, document, credit, payment = "Accounts Receivable (A/R) - EUR", *SETTLING[side]
        party = {"CustomerRef": {"value": client["Id"]}}
        paid_from = {"DepositToAccountRef": books.ref(CHECKING)}

    def line(amount: str) -> dict[str, Any]:
        return expense_line(books, "Green Coffee", amount) if payables else item_line("1", amount)

    async def settle(day: int, *links: tuple[str, dict[str, Any], str]) -> None:
        cash = D(links[0][2]) - sum((D(amount) for _, _, amount in links[1:]), D(0))
        await books.create(
            payment,
            {
                **party,
                **paid_from,
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": rate,
                "TxnDate": f"2026-11-{day:02d}",
                "TotalAmt": str(cash),
                "Line": [
                    {"Amount": amount, "LinkedTxn": [{"TxnId": doc["Id"], "TxnType": kind}]}
                    for kind, doc, amount in links
                ],
            },
        )

    def home_open() -> Decimal:
        """The ledger's home amount in the control account, owed positive."""
        control_id = books.account(control)["Id"]  # made with the first document
        return (-1 if payables else 1) * ledger.balances(books.realm).get(control_id, D(0))

    def stored(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
        return books.first(kind, Id=doc["Id"])

    fx = books.account(ledger.EXCHANGE_GAIN_OR_LOSS)["Id"]
    fx_before = ledger.balances(books.realm).get(fx, D(0))
    small = await books.create(
        document, {**party, "ExchangeRate": rate, "TxnDate": "2026-11-02", "Line": [line("0.05")]}
    )
    assert small["HomeTotalAmt"] == D("0.06")
    for day in range(3, 8):
        await settle(day, (document, small, "0.01"))
        assert home_open() == stored(document, small)["HomeBalance"]
    assert stored(document, small)["Balance"] == stored(document, small)["HomeBalance"] == 0
    assert books.balance(control) == 0 and home_open() == 0

    larger = await books.create(
        document, {**party, "ExchangeRate": rate, "TxnDate": "2026-11-10", "Line": [line("0.10")]}
    )
    applied = await books.create(
        credit, {**party, "ExchangeRate": rate, "TxnDate": "2026-11-10", "Line": [line("0.05")]}
    )
    for day in range(11, 16):
        await settle(day, (document, larger, "0.02"), (credit, applied, "0.01"))
        assert home_open() == (
            stored(document, larger)["HomeBalance"] - stored(credit, applied)["HomeBalance"]
        )
    for kind, doc in ((document, larger), (credit, applied)):
        assert stored(kind, doc)["Balance"] == stored(kind, doc)["HomeBalance"] == 0
    assert books.balance(control) == 0 and home_open() == 0
    # What rounding each part lost or gained is the exchange difference: documents of $0.06 and
    # $0.11 less a $0.06 credit, settled with $0.10 of cash.
    moved = ledger.balances(books.realm).get(fx, D(0)) - fx_before
    assert moved == (D("-0.01") if payables else D("0.01"))
    aging = "AgedPayableDetail" if payables else "AgedReceivableDetail"
    report = _json(await books.http.get(books.sandbox.v3_path(f"reports/{aging}")))
    listed = {
        row["ColData"][1].get("id")
        for section in report["Rows"]["Row"]
        for row in section.get("Rows", {}).get("Row", [])
    }
    assert not listed & {small["Id"], larger["Id"], applied["Id"]}


# The document, the credit applied beside it, and the payment that settles both, per side.
SETTLING = {
    "payables": ("Bill", "VendorCredit", "BillPayment"),
    "receivables": ("Invoice", "CreditMemo", "Payment"),
}


async def test_kept_postings_follow_every_write_they_depend_on(books: Books) -> None:
    """The ledger keeps each transaction's postings between reports; what it gives is always what
    posting every stored transaction afresh gives, also when a write changes a transaction it did
    not touch: an earlier part paid on a euro bill changes what a later part relieves, an item's
    new expense account moves the bill lines that name the item."""
    realm = books.realm

    def afresh() -> list[ledger.Posting]:
        return [
            posting
            for entity in ledger.TRANSACTION_ENTITIES
            for obj in realm.iter(entity)
            for posting in ledger.postings_of(realm, entity, obj)
        ]

    assert ledger.postings(realm) == afresh()
    turned_on = await books.http.post(
        f"/_sandbox/realms/{realm.realm_id}/multicurrency", json={"currencies": ["EUR"]}
    )
    assert turned_on.status_code == 200, turned_on.text
    supplier = await books.create(
        "Vendor", {"DisplayName": "Rösterei Bremen", "CurrencyRef": {"value": "EUR"}}
    )
    bill = await books.create(
        "Bill",
        {
            "VendorRef": {"value": supplier["Id"]},
            "ExchangeRate": "1.1234",
            "TxnDate": "2026-11-02",
            "Line": [expense_line(books, "Green Coffee", "0.05")],
        },
    )

    async def pay(day: str) -> dict[str, Any]:
        return await books.create(
            "BillPayment",
            {
                "VendorRef": {"value": supplier["Id"]},
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
                "ExchangeRate": "1.1234",
                "TxnDate": day,
                "TotalAmt": "0.01",
                "Line": [
                    {"Amount": "0.01", "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}
                ],
            },
        )

    ap_eur = "Accounts Payable (A/P) - EUR"
    later = await pay("2026-11-05")
    assert ledger.postings(realm) == afresh()
    assert books.postings("BillPayment", later)[ap_eur] == D("0.02")  # $0.06 to $0.04
    await pay("2026-11-03")
    assert ledger.postings(realm) == afresh()
    assert books.postings("BillPayment", later)[ap_eur] == D("0.01")  # now $0.04 to $0.03

    item = await books.create(
        "Item",
        {
            "Name": "Jute bags",
            "Type": "NonInventory",
            "IncomeAccountRef": books.ref(SALES),
            "ExpenseAccountRef": books.ref("Packaging & Labels"),
        },
    )
    bags = await books.create(
        "Bill",
        {
            "VendorRef": {"value": books.first("Vendor")["Id"]},
            "Line": [
                {
                    "Amount": "18.00",
                    "DetailType": "ItemBasedExpenseLineDetail",
                    "ItemBasedExpenseLineDetail": {"ItemRef": {"value": item["Id"]}},
                }
            ],
        },
    )
    assert ledger.postings(realm) == afresh()
    await books.create(
        "Item",
        {**books.first("Item", Id=item["Id"]), "ExpenseAccountRef": books.ref("Office Supplies")},
    )
    assert ledger.postings(realm) == afresh()
    assert books.postings("Bill", bags)["Office Supplies"] == D("18.00")
    await books.delete("Bill", books.first("Bill", Id=bags["Id"]))
    assert ledger.postings(realm) == afresh()


# -- every transaction type: create, update, delete ----------------------------------------------


def _lifecycle_bodies(books: Books) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per entity: a body to create, and the fields an update changes."""
    vendor = {"value": books.first("Vendor")["Id"]}
    customer = {"value": books.first("Customer")["Id"]}

    def je(amount: str) -> list[dict[str, Any]]:
        return [
            {
                "Amount": amount,
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": side, "AccountRef": books.ref(account)},
            }
            for side, account in (("Debit", CHECKING), ("Credit", "Opening Balance Equity"))
        ]

    return {
        "Bill": (
            {"VendorRef": vendor, "Line": [expense_line(books, "Utilities", "80.00")]},
            {"Line": [expense_line(books, "Utilities", "95.00")]},
        ),
        "Invoice": (
            {"CustomerRef": customer, "Line": [item_line("3", "78.00")]},
            {"Line": [item_line("3", "156.00")]},
        ),
        "Purchase": (
            {
                "PaymentType": "Cash",
                "AccountRef": books.ref(CHECKING),
                "Line": [expense_line(books, "Meals & Entertainment", "42.00")],
            },
            {"AccountRef": books.ref(SAVINGS)},
        ),
        "Deposit": (
            {
                "DepositToAccountRef": books.ref(SAVINGS),
                "Line": [
                    {
                        "Amount": "12.50",
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": books.ref("Interest Earned")},
                    }
                ],
            },
            {"DepositToAccountRef": books.ref(CHECKING)},
        ),
        "SalesReceipt": (
            {"DepositToAccountRef": books.ref(CHECKING), "Line": [item_line("6", "132.00")]},
            {"Line": [item_line("6", "264.00")]},
        ),
        "RefundReceipt": (
            {"DepositToAccountRef": books.ref(CHECKING), "Line": [item_line("6", "132.00")]},
            {"DepositToAccountRef": books.ref(SAVINGS)},
        ),
        "Transfer": (
            {
                "FromAccountRef": books.ref(SAVINGS),
                "ToAccountRef": books.ref(CHECKING),
                "Amount": "700.00",
            },
            {"Amount": "900.00"},
        ),
        "JournalEntry": ({"Line": je("250.00")}, {"Line": je("300.00")}),
        "VendorCredit": (
            {"VendorRef": vendor, "Line": [expense_line(books, "Utilities", "15.00")]},
            {"Line": [expense_line(books, "Office Supplies", "15.00")]},
        ),
        "CreditMemo": (
            {"CustomerRef": customer, "Line": [item_line("3", "78.00")]},
            {"Line": [item_line("4", "66.00")]},
        ),
        "CreditCardPayment": (
            {
                "CreditCardAccountRef": books.ref(CARD),
                "BankAccountRef": books.ref(CHECKING),
                "Amount": "300.00",
            },
            {"BankAccountRef": books.ref(SAVINGS)},
        ),
    }


@pytest.mark.parametrize(
    "entity",
    [
        "Bill",
        "Invoice",
        "Purchase",
        "Deposit",
        "SalesReceipt",
        "RefundReceipt",
        "Transfer",
        "JournalEntry",
        "VendorCredit",
        "CreditMemo",
        "CreditCardPayment",
    ],
)
async def test_create_update_and_delete_keep_balances_equal_to_the_ledger(
    books: Books, entity: str
) -> None:
    stored_as = "CreditCardPaymentTxn" if entity == "CreditCardPayment" else entity
    body, changes = _lifecycle_bodies(books)[entity]
    untouched = {a["Id"]: a["CurrentBalance"] for a in books.realm.iter("Account")}
    created = await books.create(entity, body)  # each write checks every balance against the ledger
    moved = books.postings(stored_as, created)
    assert moved and sum(moved.values()) == 0
    full = {k: v for k, v in books.first(stored_as, Id=created["Id"]).items() if k != "TotalAmt"}
    updated = await books.create(entity, {**full, **changes})
    assert books.postings(stored_as, updated) != moved
    sparse = await books.create(
        entity,
        {
            "Id": updated["Id"],
            "SyncToken": updated["SyncToken"],
            "sparse": True,
            "PrivateNote": "checked",
        },
    )
    assert sparse["PrivateNote"] == "checked"
    await books.delete(entity, books.first(stored_as, Id=created["Id"]))
    assert {a["Id"]: a["CurrentBalance"] for a in books.realm.iter("Account")} == untouched


# -- the full company ------------------------------------------------------------------------------


async def test_the_full_company_moves_money_as_real_ones_do_and_its_books_balance() -> None:
    """`SandboxConfig(full_books=True)`: the default company with counter sales on sales receipts,
    an owner's contribution and draws, a bank loan and its repayments, savings transfers, bank
    fees by journal entry, card payments and a supplier's credit; every account's balance is its
    ledger, and writes on it keep it so."""
    sandbox = create_app(SandboxConfig(full_books=True))
    try:
        async with sandbox.http_client() as http:
            books = Books(sandbox, http)
            books.assert_books_balance()
            realm = books.realm
            for entity in (
                "SalesReceipt",
                "Transfer",
                "JournalEntry",
                "VendorCredit",
                "CreditCardPaymentTxn",
            ):
                assert realm.count(entity) > 0, entity
            assert books.balance("Owner's Investment") == D("10000.00")
            assert books.balance("Owner's Draw") < 0  # draws lower the owner's equity
            loan = books.balance("Bay Community Bank Loan")
            assert D(0) < loan < D("30000.00")  # borrowed 30,000.00, part repaid
            open_bills = sum((b["Balance"] for b in realm.iter("Bill")), D(0))
            open_credits = sum((c["Balance"] for c in realm.iter("VendorCredit")), D(0))
            assert books.balance(AP) == open_bills - open_credits
            before = books.balances(CHECKING, "Bay Community Bank Loan")
            repayment = await books.create(
                "JournalEntry",
                {
                    "Line": [
                        {
                            "Amount": "1000.00",
                            "DetailType": "JournalEntryLineDetail",
                            "JournalEntryLineDetail": {
                                "PostingType": side,
                                "AccountRef": books.ref(name),
                            },
                        }
                        for side, name in (
                            ("Debit", "Bay Community Bank Loan"),
                            ("Credit", CHECKING),
                        )
                    ]
                },
            )
            assert books.postings("JournalEntry", repayment) == {
                "Bay Community Bank Loan": D("1000.00"),
                CHECKING: D("-1000.00"),
            }
            assert books.balances(CHECKING, "Bay Community Bank Loan") == {
                CHECKING: before[CHECKING] - D("1000.00"),
                "Bay Community Bank Loan": before["Bay Community Bank Loan"] - D("1000.00"),
            }
    finally:
        await sandbox.aclose()
    # The default company is what it always was: none of this.
    plain = create_app(SandboxConfig()).realm()
    assert plain.count("SalesReceipt") == plain.count("JournalEntry") == 0


async def test_the_euro_company_keeps_its_importers_debt_in_euros() -> None:
    """`SandboxConfig(euro_supplier=True)`: multicurrency on, a supplier billing in euros at the
    month's rate and paid at the pay day's; A/P - EUR holds the open euros, every payment's
    difference is an exchange gain or loss, and paying the open bill through the API books one."""
    sandbox = create_app(SandboxConfig(euro_supplier=True))
    try:
        async with sandbox.http_client() as http:
            books = Books(sandbox, http)
            books.assert_books_balance()
            realm = books.realm
            assert ledger.multicurrency_enabled(realm)
            importer = books.first("Vendor", DisplayName="Nordsee Kaffeeimport GmbH")
            assert importer["CurrencyRef"]["value"] == "EUR"
            euro_bills = [b for b in realm.iter("Bill") if b["CurrencyRef"]["value"] == "EUR"]
            open_euros = sum((b["Balance"] for b in euro_bills), D(0))
            ap_eur = "Accounts Payable (A/P) - EUR"
            assert open_euros > 0 and books.balance(ap_eur) == open_euros == importer["Balance"]
            differences = sum(
                (
                    p.amount
                    for p in ledger.postings(realm)
                    if p.account_id == books.account(ledger.EXCHANGE_GAIN_OR_LOSS)["Id"]
                ),
                D(0),
            )
            assert differences != 0  # the rate moved between billing and paying

            [unpaid] = [b for b in euro_bills if b["Balance"] > 0]
            rate = _json(
                await http.get(
                    sandbox.v3_path("exchangerate"), params={"sourcecurrencycode": "EUR"}
                )
            )["ExchangeRate"]
            pay_rate = D(rate["Rate"]) + D("0.02")
            payment = await books.create(
                "BillPayment",
                {
                    "VendorRef": {"value": importer["Id"]},
                    "PayType": "Check",
                    "CheckPayment": {"BankAccountRef": books.ref(CHECKING)},
                    "CurrencyRef": {"value": "EUR"},
                    "ExchangeRate": str(pay_rate),
                    "TotalAmt": str(unpaid["Balance"]),
                    "Line": [
                        {
                            "Amount": str(unpaid["Balance"]),
                            "LinkedTxn": [{"TxnId": unpaid["Id"], "TxnType": "Bill"}],
                        }
                    ],
                },
            )
            at_bill = ledger.to_home(unpaid["Balance"], D(unpaid["ExchangeRate"]))
            at_pay = ledger.to_home(unpaid["Balance"], pay_rate)
            assert books.postings("BillPayment", payment) == {
                ap_eur: at_bill,
                CHECKING: -at_pay,
                ledger.EXCHANGE_GAIN_OR_LOSS: at_pay - at_bill,
            }
            assert books.balance(ap_eur) == 0
    finally:
        await sandbox.aclose()
