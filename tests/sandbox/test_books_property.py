"""Property: after any sequence of writes through the sandbox's HTTP API, its books are books.

Hypothesis drives random sequences of bills (in dollars and in euros, multicurrency on), bill
payments (partial and full, euro bills at their own rate or another, some dollar payments deleted
again, some applying vendor credits), vendor credits,
invoices, customer payments (into Undeposited Funds)
and their deposits, credit memos, sales receipts, transfers, owner money, loans and repayments,
equipment, card purchases and card payments. The test keeps its own tiny ledger of what each
write means (written here from QuickBooks' rules, not from the sandbox's code) and after every
write checks that:

1. each balance-sheet account's CurrentBalance, the TrialBalance, the BalanceSheet and the
   ProfitAndLoss's net income equal the test's ledger;
2. the CashFlow report for the year so far and for a recent window equals the test's own
   classification of the cash movements (operating and investing together, financing, the change
   in cash, cash at both ends), cash being the banks and Undeposited Funds;
3. the AgedPayables and AgedReceivables totals equal A/P and A/R, today and on a past date.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import simplejson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from qbo_json import expense_line, home, report_groups, report_rows, sales_line

from qbo_sandbox.api import build_v3_app
from qbo_sandbox.store import Store

REALM = "4620816399"
V3 = f"/v3/company/{REALM}"
TODAY = date(2024, 6, 28)
FIRST_DAY = date(2024, 1, 2)
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
EUR_RATES = (Decimal("1.08"), Decimal("1.1234"), Decimal("0.95"))

# The test's chart: key -> (Name, AccountType, AccountSubType, currency or None for home)
CHART: dict[str, tuple[str, str, str, str | None]] = {
    "checking": ("Checking", "Bank", "Checking", None),
    "savings": ("Savings", "Bank", "Savings", None),
    "undeposited": ("Undeposited Funds", "Other Current Asset", "UndepositedFunds", None),
    "ar": ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", None),
    "equipment": ("Equipment", "Fixed Asset", "MachineryAndEquipment", None),
    "ap": ("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable", None),
    "ap_eur": ("Accounts Payable (A/P) - EUR", "Accounts Payable", "AccountsPayable", "EUR"),
    "card": ("Visa", "Credit Card", "CreditCard", None),
    "loan": ("Bank Loan", "Long Term Liability", "NotesPayable", None),
    "owner": ("Owner's Investment", "Equity", "OwnersEquity", None),
    "sales": ("Sales", "Income", "SalesOfProductIncome", None),
    "rent": ("Rent", "Expense", "RentOrLeaseOfBuildings", None),
    "supplies": ("Supplies", "Expense", "SuppliesMaterials", None),
}
CASH = frozenset({"checking", "savings", "undeposited"})
FINANCING = frozenset({"Long Term Liability", "Equity"})
INVESTING = frozenset({"Fixed Asset", "Other Asset"})
ASSET_TYPES = frozenset(
    {"Bank", "Other Current Asset", "Accounts Receivable", "Fixed Asset", "Other Asset"}
)
LIABILITY_TYPES = frozenset(
    {"Accounts Payable", "Credit Card", "Long Term Liability", "Other Current Liability"}
)
PNL_TYPES = frozenset({"Income", "Other Income", "Expense", "Other Expense", "Cost of Goods Sold"})

amounts = st.integers(min_value=1, max_value=250_000).map(lambda cents: Decimal(cents) * CENT)
days = st.integers(min_value=0, max_value=(TODAY - FIRST_DAY).days).map(
    lambda n: FIRST_DAY + timedelta(days=n)
)
fractions = st.sampled_from(("all", "half", "cent"))


class Clock:
    def now(self) -> datetime:
        return datetime(TODAY.year, TODAY.month, TODAY.day, 19, 0, tzinfo=UTC)


@dataclass
class Entry:
    """One line of the test's ledger: home amount debit +, and the foreign amount if any."""

    day: date
    account: str
    amount: Decimal
    foreign: Decimal | None = None


@dataclass
class Txn:
    """What the test wrote: its ledger lines, and whether it moved cash."""

    entries: list[Entry]


@dataclass
class Part:
    """One payment of a euro bill: its date, Id, euros paid, rate, and its ledger lines."""

    day: date
    id: int
    amount: Decimal
    rate: Decimal
    txn: Txn


@dataclass
class Document:
    """An open bill, invoice or credit the test may pay or apply later."""

    kind: str
    id: str
    party: str
    day: date
    total: Decimal  # in its own currency
    open: Decimal
    currency: str = "USD"
    rate: Decimal = Decimal("1")
    deposited: bool = False
    lines: list[str] = field(default_factory=list)
    parts: list[Part] = field(default_factory=list)


class Books(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = Store(Clock())
        self.store.create_realm(REALM)
        # The API over ASGI, driven from this synchronous state machine by a loop of its own.
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=build_v3_app(self.store)), base_url="http://qbo"
        )
        self.txns: list[Txn] = []
        self.bills: list[Document] = []
        self.invoices: list[Document] = []
        self.undeposited: list[Document] = []
        self.credits: list[Document] = []
        # Bill payments in dollars the test may delete: (payment, bill, amount, its ledger lines).
        self.payments: list[tuple[dict[str, Any], Document, Decimal, Txn]] = []
        self.account_ids: dict[str, str] = {}
        self.setup_company()

    # -- the API -----------------------------------------------------------------------------

    def post(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.loop.run_until_complete(
            self.client.post(
                f"{V3}/{entity.lower()}",
                content=simplejson.dumps(body, use_decimal=True),
                headers={"Content-Type": "application/json"},
            )
        )
        assert answer.status_code == 200, (entity, body, answer.text)
        payload: dict[str, Any] = answer.json()
        (key,) = [k for k in payload if k != "time"]
        created: dict[str, Any] = payload[key]
        return created

    def query(self, statement: str) -> list[dict[str, Any]]:
        answer = self.loop.run_until_complete(
            self.client.get(f"{V3}/query", params={"query": statement})
        )
        assert answer.status_code == 200, answer.text
        response: dict[str, Any] = answer.json()["QueryResponse"]
        rows: list[dict[str, Any]] = next((v for v in response.values() if isinstance(v, list)), [])
        return rows

    def report(self, name: str, **params: str) -> dict[str, Any]:
        answer = self.loop.run_until_complete(
            self.client.get(f"{V3}/reports/{name}", params=params)
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def ref(self, key: str) -> dict[str, str]:
        return {"value": self.account_ids[key]}

    def setup_company(self) -> None:
        prefs = self.query("SELECT * FROM Preferences")[0]
        self.post(
            "Preferences",
            {
                "Id": prefs["Id"],
                "SyncToken": prefs["SyncToken"],
                "sparse": True,
                "CurrencyPrefs": {"MultiCurrencyEnabled": True, "HomeCurrency": {"value": "USD"}},
            },
        )
        self.post("CompanyCurrency", {"Code": "EUR"})
        for key, (name, kind, sub, currency) in CHART.items():
            body: dict[str, Any] = {"Name": name, "AccountType": kind, "AccountSubType": sub}
            if currency:
                body["CurrencyRef"] = {"value": currency}
            existing = [
                a
                for a in self.query(f"SELECT * FROM Account WHERE Name = '{_quoted(name)}'")
                if (a.get("CurrencyRef") or {}).get("value", "USD") == (currency or "USD")
            ]
            account = existing[0] if existing else self.post("Account", body)
            self.account_ids[key] = account["Id"]
        self.vendor = self.post("Vendor", {"DisplayName": "Hall Properties"})["Id"]
        self.euro_vendor = self.post(
            "Vendor", {"DisplayName": "Kaffeerösterei Berlin", "CurrencyRef": {"value": "EUR"}}
        )["Id"]
        self.customer = self.post("Customer", {"DisplayName": "Corner Cafe"})["Id"]
        # Everything the sandbox made when multicurrency was turned on (the exchange gain or loss
        # account) is part of the chart the test checks.
        for account in self.query("SELECT * FROM Account"):
            if account["Id"] not in self.account_ids.values():
                self.account_ids[f"other:{account['Name']}"] = account["Id"]
        self.types = {
            key: next(
                a["AccountType"] for a in self.query(f"SELECT * FROM Account WHERE Id = '{ident}'")
            )
            for key, ident in self.account_ids.items()
        }
        self.fx = next((k for k in self.account_ids if k == "other:Exchange Gain or Loss"), None)

    def book(self, *entries: Entry) -> None:
        assert sum((e.amount for e in entries), ZERO) == 0, entries
        self.txns.append(Txn(list(entries)))

    # -- writes ------------------------------------------------------------------------------

    @rule(
        amount=amounts,
        day=days,
        account=st.sampled_from(("rent", "supplies")),
        terms=st.integers(0, 60),
    )
    def bill(self, amount: Decimal, day: date, account: str, terms: int) -> None:
        created = self.post(
            "Bill",
            {
                "VendorRef": {"value": self.vendor},
                "TxnDate": day.isoformat(),
                "DueDate": (day + timedelta(days=terms)).isoformat(),
                "Line": [expense_line(self.ref(account), amount)],
            },
        )
        self.bills.append(Document("Bill", created["Id"], self.vendor, day, amount, amount))
        self.book(Entry(day, account, amount), Entry(day, "ap", -amount))

    @rule(amount=amounts, day=days, rate=st.sampled_from(EUR_RATES))
    def euro_bill(self, amount: Decimal, day: date, rate: Decimal) -> None:
        created = self.post(
            "Bill",
            {
                "VendorRef": {"value": self.euro_vendor},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": rate,
                "TxnDate": day.isoformat(),
                "DueDate": (day + timedelta(days=30)).isoformat(),
                "Line": [expense_line(self.ref("supplies"), amount)],
            },
        )
        self.bills.append(
            Document("Bill", created["Id"], self.euro_vendor, day, amount, amount, "EUR", rate)
        )
        at_home = home(amount, rate)
        self.book(Entry(day, "supplies", at_home), Entry(day, "ap_eur", -at_home, -amount))

    @precondition(lambda self: any(b.open > 0 for b in self.bills))
    @rule(
        data=st.data(),
        day=days,
        fraction=fractions,
        rate=st.one_of(st.none(), st.sampled_from(EUR_RATES)),
    )
    def pay_bill(self, data: st.DataObject, day: date, fraction: str, rate: Decimal | None) -> None:
        """Pay all, half or a cent of a bill; one in euros at its own rate (rate None) or another."""
        bill = data.draw(st.sampled_from([b for b in self.bills if b.open > 0]))
        day = max(day, bill.day)
        euro = bill.currency == "EUR"
        paid = _part(bill.open, fraction)
        body: dict[str, Any] = {
            "VendorRef": {"value": bill.party},
            "TxnDate": day.isoformat(),
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": self.ref("checking")},
            "TotalAmt": paid,
            "Line": [{"Amount": paid, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]}],
        }
        if euro:
            body["CurrencyRef"] = {"value": "EUR"}
            body["ExchangeRate"] = rate or bill.rate
        created = self.post("BillPayment", body)
        bill.open -= paid
        if not euro:
            self.book(Entry(day, "ap", paid), Entry(day, "checking", -paid))
            self.payments.append((created, bill, paid, self.txns[-1]))
            return
        self.txns.append(Txn([]))
        bill.parts.append(Part(day, int(created["Id"]), paid, rate or bill.rate, self.txns[-1]))
        self.settle_in_parts(bill)

    def settle_in_parts(self, bill: Document) -> None:
        """The ledger lines of every payment of a euro bill. The bank pays each part at its own
        rate. A/P is relieved, part by part in date order, by what the bill's home balance (its
        open euros at the bill's rate) drops, so the parts relieve exactly the bill's home total
        once it is paid; the difference is a realised exchange gain or loss."""
        still_open = bill.total
        for part in sorted(bill.parts, key=lambda p: (p.day, p.id)):
            relieved = home(still_open, bill.rate) - home(still_open - part.amount, bill.rate)
            still_open -= part.amount
            spent = home(part.amount, part.rate)
            entries = [
                Entry(part.day, "ap_eur", relieved, part.amount),
                Entry(part.day, "checking", -spent),
            ]
            if relieved != spent:
                assert self.fx is not None, "turning multicurrency on adds Exchange Gain or Loss"
                entries.append(Entry(part.day, self.fx, spent - relieved))
            assert sum((e.amount for e in entries), ZERO) == 0
            part.txn.entries = entries

    @precondition(lambda self: bool(self.payments))
    @rule(data=st.data())
    def delete_bill_payment(self, data: st.DataObject) -> None:
        """Deleting a payment puts the bill's balance and the bank back."""
        payment, bill, paid, txn = data.draw(st.sampled_from(self.payments))
        answer = self.loop.run_until_complete(
            self.client.post(
                f"{V3}/billpayment",
                params={"operation": "delete"},
                json={"Id": payment["Id"], "SyncToken": payment["SyncToken"]},
            )
        )
        assert answer.status_code == 200, answer.text
        self.payments = [p for p in self.payments if p[0]["Id"] != payment["Id"]]
        self.txns.remove(txn)
        bill.open += paid

    @rule(amount=amounts, day=days)
    def vendor_credit(self, amount: Decimal, day: date) -> None:
        created = self.post(
            "VendorCredit",
            {
                "VendorRef": {"value": self.vendor},
                "TxnDate": day.isoformat(),
                "Line": [expense_line(self.ref("rent"), amount)],
            },
        )
        self.credits.append(
            Document("VendorCredit", created["Id"], self.vendor, day, amount, amount)
        )
        self.book(Entry(day, "ap", amount), Entry(day, "rent", -amount))

    @precondition(
        lambda self: (
            any(c.open > 0 for c in self.credits)
            and any(b.open >= 2 * CENT and b.currency == "USD" for b in self.bills)
        )
    )
    @rule(data=st.data(), day=days)
    def pay_bill_with_credit(self, data: st.DataObject, day: date) -> None:
        """A bill payment that applies a vendor credit: the bill's line less the credit's line is
        what leaves the bank (QuickBooks' BillPayment with a VendorCredit line)."""
        bill = data.draw(
            st.sampled_from([b for b in self.bills if b.open >= 2 * CENT and b.currency == "USD"])
        )
        credit = data.draw(st.sampled_from([c for c in self.credits if c.open > 0]))
        day = max(day, bill.day, credit.day)
        applied = min(credit.open, bill.open - CENT)
        cash = bill.open - applied
        self.post(
            "BillPayment",
            {
                "VendorRef": {"value": bill.party},
                "TxnDate": day.isoformat(),
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": self.ref("checking")},
                "TotalAmt": cash,
                "Line": [
                    {"Amount": bill.open, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]},
                    {
                        "Amount": applied,
                        "LinkedTxn": [{"TxnId": credit.id, "TxnType": "VendorCredit"}],
                    },
                ],
            },
        )
        bill.open = ZERO
        credit.open -= applied
        self.book(Entry(day, "ap", cash), Entry(day, "checking", -cash))

    @rule(amount=amounts, day=days, terms=st.integers(0, 45))
    def invoice(self, amount: Decimal, day: date, terms: int) -> None:
        created = self.post(
            "Invoice",
            {
                "CustomerRef": {"value": self.customer},
                "TxnDate": day.isoformat(),
                "DueDate": (day + timedelta(days=terms)).isoformat(),
                "Line": [sales_line(self.ref("sales"), amount)],
            },
        )
        self.invoices.append(Document("Invoice", created["Id"], self.customer, day, amount, amount))
        self.book(Entry(day, "ar", amount), Entry(day, "sales", -amount))

    @precondition(lambda self: any(i.open > 0 for i in self.invoices))
    @rule(data=st.data(), day=days, fraction=fractions)
    def receive_payment(self, data: st.DataObject, day: date, fraction: str) -> None:
        invoice = data.draw(st.sampled_from([i for i in self.invoices if i.open > 0]))
        day = max(day, invoice.day)
        paid = _part(invoice.open, fraction)
        created = self.post(
            "Payment",
            {
                "CustomerRef": {"value": invoice.party},
                "TxnDate": day.isoformat(),
                "TotalAmt": paid,
                "Line": [
                    {"Amount": paid, "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}]}
                ],
            },
        )
        invoice.open -= paid
        self.undeposited.append(Document("Payment", created["Id"], invoice.party, day, paid, paid))
        self.book(Entry(day, "undeposited", paid), Entry(day, "ar", -paid))

    @precondition(lambda self: any(not p.deposited for p in self.undeposited))
    @rule(day=days)
    def deposit_payments(self, day: date) -> None:
        waiting = [p for p in self.undeposited if not p.deposited]
        day = max([day, *(p.day for p in waiting)])
        total = sum((p.total for p in waiting), ZERO)
        self.post(
            "Deposit",
            {
                "TxnDate": day.isoformat(),
                "DepositToAccountRef": self.ref("checking"),
                "Line": [
                    {
                        "Amount": p.total,
                        "LinkedTxn": [{"TxnId": p.id, "TxnType": "Payment", "TxnLineId": "0"}],
                    }
                    for p in waiting
                ],
            },
        )
        for payment in waiting:
            payment.deposited = True
        self.book(Entry(day, "checking", total), Entry(day, "undeposited", -total))

    @rule(amount=amounts, day=days)
    def credit_memo(self, amount: Decimal, day: date) -> None:
        self.post(
            "CreditMemo",
            {
                "CustomerRef": {"value": self.customer},
                "TxnDate": day.isoformat(),
                "Line": [sales_line(self.ref("sales"), amount)],
            },
        )
        self.book(Entry(day, "sales", amount), Entry(day, "ar", -amount))

    @rule(amount=amounts, day=days)
    def sales_receipt(self, amount: Decimal, day: date) -> None:
        self.post(
            "SalesReceipt",
            {
                "CustomerRef": {"value": self.customer},
                "TxnDate": day.isoformat(),
                "DepositToAccountRef": self.ref("checking"),
                "Line": [sales_line(self.ref("sales"), amount)],
            },
        )
        self.book(Entry(day, "checking", amount), Entry(day, "sales", -amount))

    @rule(amount=amounts, day=days, direction=st.booleans())
    def transfer(self, amount: Decimal, day: date, direction: bool) -> None:
        source, target = ("checking", "savings") if direction else ("savings", "checking")
        self.post(
            "Transfer",
            {
                "TxnDate": day.isoformat(),
                "Amount": amount,
                "FromAccountRef": self.ref(source),
                "ToAccountRef": self.ref(target),
            },
        )
        self.book(Entry(day, target, amount), Entry(day, source, -amount))

    @rule(amount=amounts, day=days, source=st.sampled_from(("owner", "loan")))
    def money_in(self, amount: Decimal, day: date, source: str) -> None:
        """Owner money (Equity) or a loan (Long Term Liability) deposited in the bank."""
        self.post(
            "Deposit",
            {
                "TxnDate": day.isoformat(),
                "DepositToAccountRef": self.ref("checking"),
                "Line": [
                    {
                        "Amount": amount,
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": self.ref(source)},
                    }
                ],
            },
        )
        self.book(Entry(day, "checking", amount), Entry(day, source, -amount))

    @rule(amount=amounts, day=days, into=st.sampled_from(("loan", "owner", "equipment", "rent")))
    def check(self, amount: Decimal, day: date, into: str) -> None:
        """A check: a loan repayment, an owner's draw, equipment, or an expense."""
        self.post(
            "Purchase",
            {
                "TxnDate": day.isoformat(),
                "PaymentType": "Check",
                "AccountRef": self.ref("checking"),
                "Line": [expense_line(self.ref(into), amount)],
            },
        )
        self.book(Entry(day, into, amount), Entry(day, "checking", -amount))

    @rule(amount=amounts, day=days, into=st.sampled_from(("supplies", "equipment")))
    def card_purchase(self, amount: Decimal, day: date, into: str) -> None:
        self.post(
            "Purchase",
            {
                "TxnDate": day.isoformat(),
                "PaymentType": "CreditCard",
                "AccountRef": self.ref("card"),
                "Line": [expense_line(self.ref(into), amount)],
            },
        )
        self.book(Entry(day, into, amount), Entry(day, "card", -amount))

    @rule(amount=amounts, day=days)
    def card_payment(self, amount: Decimal, day: date) -> None:
        self.post(
            "CreditCardPayment",
            {
                "TxnDate": day.isoformat(),
                "Amount": amount,
                "CreditCardAccountRef": self.ref("card"),
                "BankAccountRef": self.ref("checking"),
            },
        )
        self.book(Entry(day, "card", amount), Entry(day, "checking", -amount))

    # -- what the test's ledger says ---------------------------------------------------------

    def balances(self, until: date = TODAY, since: date = date.min) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for txn in self.txns:
            for entry in txn.entries:
                if since <= entry.day <= until:
                    totals[entry.account] += entry.amount
        return totals

    def foreign_balances(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
        for txn in self.txns:
            for entry in txn.entries:
                if entry.foreign is not None:
                    totals[entry.account] += entry.foreign
        return totals

    def cash_flows(self, start: date, end: date) -> dict[str, Decimal]:
        """The test's own classification of the cash movements in [start, end]: each
        transaction's cash lines by the type of its other lines (QuickBooks' statement)."""
        out = {"operating+investing": ZERO, "financing": ZERO, "transfers": ZERO}
        for txn in self.txns:
            inside = [e for e in txn.entries if start <= e.day <= end]
            cash = sum((e.amount for e in inside if e.account in CASH), ZERO)
            others = [e for e in inside if e.account not in CASH]
            if not others:
                out["transfers"] += cash
            elif all(self.types[e.account] in FINANCING for e in others):
                out["financing"] += cash
            else:
                assert not any(self.types[e.account] in FINANCING for e in others), txn
                out["operating+investing"] += cash
        return out

    # -- the properties ----------------------------------------------------------------------

    @invariant()
    def account_balances_and_trial_balance_match(self) -> None:
        totals = self.balances()
        foreign = self.foreign_balances()
        for account in self.query("SELECT * FROM Account MAXRESULTS 1000"):
            key = next(k for k, v in self.account_ids.items() if v == account["Id"])
            kind = self.types[key]
            if kind in PNL_TYPES:
                continue
            side = 1 if kind in ASSET_TYPES else -1
            expected = foreign[key] if CHART.get(key, ("", "", "", None))[3] else totals[key]
            assert Decimal(str(account.get("CurrentBalance", 0))) == side * expected, (
                account["Name"],
                account.get("CurrentBalance"),
                side * expected,
            )
        trial = self.report("TrialBalance", start_date="2024-01-01", end_date=TODAY.isoformat())
        shown = {
            row["ColData"][0]["id"]: _signed(row["ColData"][1]["value"], row["ColData"][2]["value"])
            for row in trial["Rows"]["Row"]
            if "ColData" in row
        }
        wanted = {self.account_ids[k]: v for k, v in totals.items() if v}
        assert shown == wanted
        debit, credit = (c["value"] for c in trial["Rows"]["Row"][-1]["Summary"]["ColData"][1:])
        assert debit == credit

    @invariant()
    def balance_sheet_balances(self) -> None:
        totals = self.balances()
        sheet = self.report("BalanceSheet", start_date="2024-01-01", end_date=TODAY.isoformat())
        found = report_groups(sheet)
        assets = sum((v for k, v in totals.items() if self.types[k] in ASSET_TYPES), ZERO)
        liabilities = -sum((v for k, v in totals.items() if self.types[k] in LIABILITY_TYPES), ZERO)
        income = -sum((v for k, v in totals.items() if self.types[k] in PNL_TYPES), ZERO)
        equity = -sum((v for k, v in totals.items() if self.types[k] == "Equity"), ZERO) + income
        assert _total(found["TotalAssets"]) == assets
        assert _total(found["TotalLiabilitiesAndEquity"]) == liabilities + equity == assets
        assert _total(found["Equity"]) == equity
        net_income = next(
            r
            for r in report_rows(sheet["Rows"]["Row"])
            if r.get("ColData", [{}])[0].get("value") == "Net Income"
        )
        assert Decimal(net_income["ColData"][1]["value"]) == income
        pnl = self.report("ProfitAndLoss", start_date="2024-01-01", end_date=TODAY.isoformat())
        assert _total(report_groups(pnl)["NetIncome"]) == income

    @invariant()
    def cash_flow_matches_the_cash_movements(self) -> None:
        for start in (date(2024, 1, 1), TODAY - timedelta(days=45)):
            flow = self.report("CashFlow", start_date=start.isoformat(), end_date=TODAY.isoformat())
            found = report_groups(flow)
            ours = self.cash_flows(start, TODAY)
            operating = _total(found["OperatingActivities"])
            investing = (
                _total(found["InvestingActivities"]) if "InvestingActivities" in found else ZERO
            )
            financing = (
                _total(found["FinancingActivities"]) if "FinancingActivities" in found else ZERO
            )
            assert operating + investing == ours["operating+investing"], (start, ours)
            assert financing == ours["financing"], (start, ours)
            assert ours["transfers"] == 0  # money moved between own accounts is no flow
            change = ours["operating+investing"] + ours["financing"]
            assert _total(found["CashIncrease"]) == change
            before = self.balances(until=start - timedelta(days=1))
            beginning = sum((before[k] for k in CASH), ZERO)
            assert _total(found["BeginningCash"]) == beginning
            assert _total(found["EndingCash"]) == beginning + change

    @invariant()
    def aging_totals_are_the_payables_and_receivables(self) -> None:
        for day in (TODAY, TODAY - timedelta(days=60)):
            totals = self.balances(until=day)
            payables = self.report("AgedPayables", report_date=day.isoformat())
            receivables = self.report("AgedReceivables", report_date=day.isoformat())
            assert _grand_total(payables) == -(totals["ap"] + totals["ap_eur"]), day
            assert _grand_total(receivables) == totals["ar"], day
        detail = self.report("AgedPayableDetail", report_date=TODAY.isoformat())
        assert _grand_total(detail) == _grand_total(self.report("AgedPayables"))
        # Each euro bill is open by its open euros at its own rate: nothing once it is paid.
        shown = {
            row["ColData"][1]["id"]: Decimal(row["ColData"][6]["value"])
            for section in detail["Rows"]["Row"]
            for row in section.get("Rows", {}).get("Row", [])
        }
        for bill in self.bills:
            if bill.currency == "EUR":
                assert shown.get(bill.id, ZERO) == home(bill.open, bill.rate), bill

    def teardown(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _part(open_amount: Decimal, fraction: str) -> Decimal:
    if fraction == "all" or open_amount <= CENT:
        return open_amount
    if fraction == "cent":
        return CENT
    return (open_amount / 2).quantize(CENT)


def _total(row: dict[str, Any]) -> Decimal:
    return Decimal(row["Summary"]["ColData"][-1]["value"])


def _grand_total(body: dict[str, Any]) -> Decimal:
    return _total(body["Rows"]["Row"][-1])


def _signed(debit: str, credit: str) -> Decimal:
    return Decimal(debit or "0") - Decimal(credit or "0")


Books.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestBooks = Books.TestCase
