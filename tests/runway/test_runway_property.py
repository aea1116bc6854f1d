"""Property: after any sequence of writes through QuickBooks' API, Oodaloo's cash, burn, financing
and runway are the books' own, to the cent, and agree with QuickBooks' Statement of Cash Flows.

Hypothesis writes random sequences to a fresh company in the sandbox (multicurrency on, home USD):
bills, vendor credits and invoices in dollars and in euros; bill payments (partial and full, from
either bank; in euros at the payment day's rate), with a vendor credit applied or not; credit memos
applied in a customer payment; customer payments into Undeposited Funds or the bank (in euros at
the day's rate) and their deposits (maybe with the owner's money on a line of its own, maybe with
cash back into the other bank); sales receipts (to the bank or Undeposited Funds), refund
receipts, transfers, owner money in and out, loans in and repaid (by check, or with its interest
by a two-line check or a journal entry in any line order), two-line journal entries between a
bank and any account, journal entries of several lines in any order (non-cash lines of any kinds
on either side, balanced by one bank line or by one on each side), equipment, card purchases and
card payments; and deletions, voids and edits (date and amount) of cash transactions. After
every write Oodaloo syncs its mirror (the real `MirrorSync` through `SmartSyncService`, over
httpx's ASGI transport, on SQLite; the first sync pages, each later one is one CDC call), loads its
books and computes its figures for the company's today, and:

1. cash on hand (each bank and the total), undeposited funds, cash in and out, net burn, owner and
   loan money and the runway (status and days) equal the test's own computation from what it
   wrote: each write records, from QuickBooks' rules, the cash it moved and the AccountType of the
   account on the other side, and the test classes that by the definitions (ARCHITECTURE.md: a
   cash account on the other side is a transfer; Fixed/Other Asset investing; Long Term
   Liability/Equity financing; anything else operating) without calling Oodaloo's code;
2. the sandbox's CashFlow report for the same window (today − 89 .. today) says the same: operating
   plus investing is minus the net burn, financing is Oodaloo's financing, the net increase is
   their sum, and cash at the end is the banks plus Undeposited Funds.

The generator leaves out what legitimately makes the two sides differ:

- no foreign-currency bank account: Oodaloo values it at the latest rate (cash on hand), the
  statement at each transaction's own rate, so the end cash would differ by the unrealised
  revaluation, which is not a cash movement;
- no transaction without a cash line between a financing account and an operating or investing
  one (equipment bought with the loan itself, an expense the owner paid personally): the
  indirect-method statement shows it as financing against operating/investing, while no cash
  moved, so no burn or financing (a journal entry with a cash line, even one netting to zero, is
  counted by both sides the same way: minus its non-cash lines per class);
- nothing dated after today: an account's balance includes future-dated transactions, the
  statement up to today does not;
- a several-line journal entry's cash lines all in one bank: spread over several cash accounts
  by their nets, each account's share rounds to the cent as Oodaloo rounds it, which the test
  would have to repeat (`tests/runway/test_cash_lines.py` works it out by hand); each class's
  total, which the statement shows, would not differ.

Equipment bought on the card is allowed: the statement shows it as investing out and the card's
increase as operating in, which net to zero, as Oodaloo's burn (no cash moved) does.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import simplejson
from db_conftest import MigratedDatabase
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from qbo_json import expense_line, home, report_groups, sales_line
from runway_env import FAST, RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.calculator import RunwayCalculator, RunwayFigures
from runway.snapshot import load_books
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync_harness import OffsetClock

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
WINDOW_DAYS = 90
#: Writes are dated this many days back at most (some before the window, most inside it).
HISTORY_DAYS = 150
EUR_RATES = (Decimal("1.08"), Decimal("1.1234"), Decimal("0.95"))

# The test's chart: key -> (Name, AccountType, AccountSubType). A/P (one per currency), A/R and
# Exchange Gain or Loss are the ones QuickBooks makes itself when first needed.
CHART: dict[str, tuple[str, str, str]] = {
    "checking": ("Checking", "Bank", "Checking"),
    "savings": ("Savings", "Bank", "Savings"),
    "undeposited": ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    "equipment": ("Equipment", "Fixed Asset", "MachineryAndEquipment"),
    "card": ("Visa", "Credit Card", "CreditCard"),
    "loan": ("Bank Loan", "Long Term Liability", "NotesPayable"),
    "owner": ("Owner's Investment", "Equity", "OwnersEquity"),
    "sales": ("Sales", "Income", "SalesOfProductIncome"),
    "rent": ("Rent", "Expense", "RentOrLeaseOfBuildings"),
    "supplies": ("Supplies", "Expense", "SuppliesMaterials"),
    "interest": ("Interest Paid", "Expense", "InterestPaid"),
}
BANKS = ("checking", "savings")
CASH = frozenset({*BANKS, "undeposited"})
#: The test's reading of the definitions: the class of cash moved against an account type.
INVESTING_TYPES = frozenset({"Fixed Asset", "Other Asset"})
FINANCING_TYPES = frozenset({"Long Term Liability", "Equity"})
#: Counter-account types of the documents QuickBooks settles or names no account for.
PAYABLE = "Accounts Payable"
RECEIVABLE = "Accounts Receivable"
INCOME = "Income"

big_amounts = st.integers(min_value=1, max_value=5_000_000).map(lambda c: Decimal(c) * CENT)
amounts = st.integers(min_value=1, max_value=500_000).map(lambda c: Decimal(c) * CENT)
days_back = st.integers(min_value=0, max_value=HISTORY_DAYS)
fractions = st.sampled_from(("all", "half", "cent"))
banks = st.sampled_from(BANKS)


def part(open_amount: Decimal, fraction: str) -> Decimal:
    if fraction == "all" or open_amount <= CENT:
        return open_amount
    if fraction == "cent":
        return CENT
    return (open_amount / 2).quantize(CENT)


def flow_class(counter: str) -> str:
    """The class of cash moved against an account of type `counter` ("cash": one of the
    business's own cash accounts)."""
    if counter == "cash":
        return "transfer"
    if counter in INVESTING_TYPES:
        return "investing"
    if counter in FINANCING_TYPES:
        return "financing"
    return "operating"


# -- the shared world: one event loop, sandbox, database and sync infrastructure ------------------


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    sandbox: Sandbox
    env: RunwayEnv
    realms: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """A sandbox and a migrated SQLite database for all the examples: each example is a company of
    its own (a new realm, a new business), so examples never see each other's books."""
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="oodaloo-runway-property-", dir="/dev/shm") as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'oodaloo.db'}"
        loop.run_until_complete(upgrade_database(url))
        engine = make_engine(url)
        sandbox = create_app(SandboxConfig(seed=DEFAULT_SEED, scale=1))
        access_tokens: dict[str, str] = {}

        def tokens_for(realm_id: str) -> TokenProvider:
            return StaticTokenProvider(access_tokens[realm_id])

        infra = SyncInfrastructure(
            engine=engine,
            backend=MemoryBackend(),
            tokens_for=tokens_for,
            settings=SyncSettings(**{**FAST.__dict__, "qbo_base_url": sandbox.base_url}),
            clock=OffsetClock(),
            transport=httpx.ASGITransport(app=sandbox.app),
            owns_engine=False,
        )
        sessions = make_sessionmaker(engine)
        env = RunwayEnv(
            MigratedDatabase(url, engine, sessions),
            sandbox,
            infra,
            UnitOfWorkFactory(sessions),
            access_tokens,
        )
        try:
            yield World(loop, sandbox, env)
        finally:
            loop.run_until_complete(infra.aclose())
            loop.run_until_complete(sandbox.aclose())
            loop.run_until_complete(engine.dispose())
            loop.close()


# -- what the test wrote ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    """Cash that moved into (+) or out of (−) one of the test's cash accounts, in dollars, against
    an account of AccountType `counter` ("cash": another cash account of the business)."""

    day: date
    account: str
    amount: Decimal
    counter: str


#: What editing a transaction writes (sparse fields), given its object, new date and amount, and
#: the cash it then moves.
Reshape = Callable[[dict[str, Any], date, Decimal], tuple[dict[str, Any], list[Move]]]
#: Transactions QuickBooks voids (the row stays, its amounts zero) as well as deletes.
VOIDABLE = frozenset({"BillPayment", "Payment", "SalesReceipt"})


@dataclass(eq=False)
class Txn:
    """A write and the cash it moved; `undo` puts the documents it settled back when deleted."""

    entity: str
    obj: dict[str, Any]
    moves: list[Move]
    undo: Callable[[], None] | None = None
    #: Deleting it is refused while this says no (a payment whose money was deposited).
    deletable: Callable[[], bool] = lambda: True
    #: How its date and amount are edited (None: the test does not edit it).
    reshape: Reshape | None = None


@dataclass(eq=False)
class Document:
    """An open bill, invoice or credit the test may pay or apply later, or money waiting in
    Undeposited Funds."""

    entity: str
    id: str
    party: str
    day: date
    open: Decimal  # in its own currency
    currency: str = "USD"
    rate: Decimal = Decimal("1")
    deposited: bool = False


@dataclass(frozen=True)
class Expected:
    """The test's figures, from its own moves."""

    banks: dict[str, Decimal]
    undeposited: Decimal
    cash_in: Decimal
    cash_out: Decimal
    counted: int
    owner_in: Decimal
    owner_out: Decimal
    loans_in: Decimal
    loans_repaid: Decimal
    status: str
    days: int | None
    #: Banks and Undeposited Funds the day before the window starts.
    opening: Decimal

    @property
    def cash(self) -> Decimal:
        return sum(self.banks.values(), ZERO)

    @property
    def net_burn(self) -> Decimal:
        return self.cash_out - self.cash_in

    @property
    def financing(self) -> Decimal:
        return self.owner_in - self.owner_out + self.loans_in - self.loans_repaid


class RunwayBooks(RuleBasedStateMachine):
    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world
        number = next(world.realms)
        self.realm_id = str(9_310_000_000 + number)
        self.business_id = f"biz-runway-property-{number}"
        world.sandbox.store.create_realm(self.realm_id)
        token = world.sandbox.tokens.issue(self.realm_id).access_token
        world.run(world.env.add_business(self.business_id, self.realm_id, token))
        self.client = world.sandbox.http_client(access_token=token)
        self.base = world.sandbox.v3_path("", self.realm_id).rstrip("/")
        self.mirror = world.env.mirror(self.business_id, self.realm_id)
        self.syncs = 0
        self.txns: list[Txn] = []
        self.bills: list[Document] = []
        self.credits: list[Document] = []
        self.invoices: list[Document] = []
        self.memos: list[Document] = []
        self.waiting: list[Document] = []  # money in Undeposited Funds, not yet deposited
        self.ids: dict[str, str] = {}
        self.setup_company()

    # -- the API -----------------------------------------------------------------------------

    def post(self, entity: str, body: dict[str, Any], **params: str) -> dict[str, Any]:
        answer = self.world.run(
            self.client.post(
                f"{self.base}/{entity.lower()}",
                params=params,
                content=simplejson.dumps(body, use_decimal=True),
                headers={"Content-Type": "application/json"},
            )
        )
        assert answer.status_code == 200, (entity, body, answer.text)
        payload: dict[str, Any] = answer.json()
        (key,) = [k for k in payload if k != "time"]
        created: dict[str, Any] = payload[key]
        return created

    def get(self, path: str, **params: str) -> dict[str, Any]:
        answer = self.world.run(self.client.get(f"{self.base}/{path}", params=params))
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def query(self, statement: str) -> list[dict[str, Any]]:
        response: dict[str, Any] = self.get("query", query=statement)["QueryResponse"]
        rows: list[dict[str, Any]] = next((v for v in response.values() if isinstance(v, list)), [])
        return rows

    def ref(self, key: str) -> dict[str, str]:
        return {"value": self.ids[key]}

    def today(self) -> date:
        """The company's today (its clock, in its time zone)."""
        realm = self.world.sandbox.store.realm(self.realm_id)
        return realm.now().astimezone(realm.tz).date()

    def day(self, back: int) -> date:
        return self.today() - timedelta(days=back)

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
        # QuickBooks keeps a rate for every currency the company uses (Oodaloo reads it for open
        # euro bills); a transaction's own ExchangeRate, not this one, moves its cash.
        rate = {"SourceCurrencyCode": "EUR", "Rate": EUR_RATES[0]}
        self.post("ExchangeRate", {**rate, "AsOfDate": self.day(HISTORY_DAYS).isoformat()})
        for key, (name, kind, sub) in CHART.items():
            body = {"Name": name, "AccountType": kind, "AccountSubType": sub}
            self.ids[key] = self.post("Account", body)["Id"]
        self.vendor = self.post("Vendor", {"DisplayName": "Hall Properties"})["Id"]
        self.euro_vendor = self.post(
            "Vendor", {"DisplayName": "Kaffeerösterei Berlin", "CurrencyRef": {"value": "EUR"}}
        )["Id"]
        self.customer = self.post("Customer", {"DisplayName": "Corner Cafe"})["Id"]
        self.euro_customer = self.post(
            "Customer", {"DisplayName": "Café de Flore", "CurrencyRef": {"value": "EUR"}}
        )["Id"]

    def wrote(self, entity: str, obj: dict[str, Any], *moves: Move, **options: Any) -> Txn:
        txn = Txn(entity, obj, list(moves), **options)
        self.txns.append(txn)
        return txn

    # -- writes without cash -----------------------------------------------------------------

    @rule(
        amount=amounts,
        back=days_back,
        account=st.sampled_from(("rent", "supplies")),
        terms=st.integers(0, 60),
    )
    def bill(self, amount: Decimal, back: int, account: str, terms: int) -> None:
        day = self.day(back)
        created = self.post(
            "Bill",
            {
                "VendorRef": {"value": self.vendor},
                "TxnDate": day.isoformat(),
                "DueDate": (day + timedelta(days=terms)).isoformat(),
                "Line": [expense_line(self.ref(account), amount)],
            },
        )
        self.bills.append(Document("Bill", created["Id"], self.vendor, day, amount))

    @rule(amount=amounts, back=days_back, rate=st.sampled_from(EUR_RATES))
    def euro_bill(self, amount: Decimal, back: int, rate: Decimal) -> None:
        day = self.day(back)
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
            Document("Bill", created["Id"], self.euro_vendor, day, amount, "EUR", rate)
        )

    @rule(amount=amounts, back=days_back, euro=st.booleans(), rate=st.sampled_from(EUR_RATES))
    def vendor_credit(self, amount: Decimal, back: int, euro: bool, rate: Decimal) -> None:
        day = self.day(back)
        body: dict[str, Any] = {
            "VendorRef": {"value": self.euro_vendor if euro else self.vendor},
            "TxnDate": day.isoformat(),
            "Line": [expense_line(self.ref("rent"), amount)],
        }
        if euro:
            body.update(CurrencyRef={"value": "EUR"}, ExchangeRate=rate)
        created = self.post("VendorCredit", body)
        self.credits.append(
            Document(
                "VendorCredit",
                created["Id"],
                body["VendorRef"]["value"],
                day,
                amount,
                "EUR" if euro else "USD",
                rate if euro else Decimal("1"),
            )
        )

    @rule(
        amount=amounts,
        back=days_back,
        terms=st.integers(0, 45),
        euro=st.booleans(),
        rate=st.sampled_from(EUR_RATES),
    )
    def invoice(self, amount: Decimal, back: int, terms: int, euro: bool, rate: Decimal) -> None:
        day = self.day(back)
        body: dict[str, Any] = {
            "CustomerRef": {"value": self.euro_customer if euro else self.customer},
            "TxnDate": day.isoformat(),
            "DueDate": (day + timedelta(days=terms)).isoformat(),
            "Line": [sales_line(self.ref("sales"), amount)],
        }
        if euro:
            body.update(CurrencyRef={"value": "EUR"}, ExchangeRate=rate)
        created = self.post("Invoice", body)
        self.invoices.append(
            Document(
                "Invoice",
                created["Id"],
                body["CustomerRef"]["value"],
                day,
                amount,
                "EUR" if euro else "USD",
                rate if euro else Decimal("1"),
            )
        )

    @rule(amount=amounts, back=days_back)
    def credit_memo(self, amount: Decimal, back: int) -> None:
        day = self.day(back)
        created = self.post(
            "CreditMemo",
            {
                "CustomerRef": {"value": self.customer},
                "TxnDate": day.isoformat(),
                "Line": [sales_line(self.ref("sales"), amount)],
            },
        )
        self.memos.append(Document("CreditMemo", created["Id"], self.customer, day, amount))

    @rule(amount=amounts, back=days_back, into=st.sampled_from(("supplies", "equipment")))
    def card_purchase(self, amount: Decimal, back: int, into: str) -> None:
        """On the card: no cash moves until the card is paid (equipment on the card is investing
        against the card's operating increase in the statement, netting to zero)."""
        day = self.day(back)
        self.post(
            "Purchase",
            {
                "TxnDate": day.isoformat(),
                "PaymentType": "CreditCard",
                "AccountRef": self.ref("card"),
                "Line": [expense_line(self.ref(into), amount)],
            },
        )

    # -- writes that move cash ---------------------------------------------------------------

    @precondition(lambda self: any(b.open > 0 for b in self.bills))
    @rule(
        data=st.data(),
        back=days_back,
        fraction=fractions,
        rate=st.sampled_from(EUR_RATES),
        bank=banks,
    )
    def pay_bill(
        self, data: st.DataObject, back: int, fraction: str, rate: Decimal, bank: str
    ) -> None:
        """A dollar bill paid in part or in full; a euro bill at the payment day's rate (its
        dollars leave the bank at that rate, whatever the bill's)."""
        bill = data.draw(st.sampled_from([b for b in self.bills if b.open > 0]))
        day = max(self.day(back), bill.day)
        paid = part(bill.open, fraction)
        body: dict[str, Any] = {
            "VendorRef": {"value": bill.party},
            "TxnDate": day.isoformat(),
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": self.ref(bank)},
            "TotalAmt": paid,
            "Line": [{"Amount": paid, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]}],
        }
        cash = paid
        if bill.currency != "USD":
            body["CurrencyRef"] = {"value": bill.currency}
            body["ExchangeRate"] = rate
            cash = home(paid, rate)
        created = self.post("BillPayment", body)
        bill.open -= paid

        def undo() -> None:
            bill.open += paid

        self.wrote("BillPayment", created, Move(day, bank, -cash, PAYABLE), undo=undo)

    def credit_pairs(self) -> list[tuple[Document, Document]]:
        """(bill, vendor credit) of one vendor that a payment can settle together."""
        return [
            (bill, credit)
            for bill in self.bills
            if bill.open >= 2 * CENT
            for credit in self.credits
            if credit.open > 0 and credit.party == bill.party
        ]

    @precondition(lambda self: bool(self.credit_pairs()))
    @rule(data=st.data(), back=days_back, rate=st.sampled_from(EUR_RATES))
    def pay_bill_with_credit(self, data: st.DataObject, back: int, rate: Decimal) -> None:
        """The bill less a vendor credit leaves the bank (a BillPayment with a VendorCredit line);
        in euros, at the payment day's rate."""
        bill, credit = data.draw(st.sampled_from(self.credit_pairs()))
        day = max(self.day(back), bill.day, credit.day)
        due, applied = bill.open, min(credit.open, bill.open - CENT)
        body: dict[str, Any] = {
            "VendorRef": {"value": bill.party},
            "TxnDate": day.isoformat(),
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": self.ref("checking")},
            "TotalAmt": due - applied,
            "Line": [
                {"Amount": due, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]},
                {
                    "Amount": applied,
                    "LinkedTxn": [{"TxnId": credit.id, "TxnType": "VendorCredit"}],
                },
            ],
        }
        cash = due - applied
        if bill.currency != "USD":
            body.update(CurrencyRef={"value": bill.currency}, ExchangeRate=rate)
            cash = home(due - applied, rate)
        created = self.post("BillPayment", body)
        bill.open -= due
        credit.open -= applied

        def undo() -> None:
            bill.open += due
            credit.open += applied

        self.wrote("BillPayment", created, Move(day, "checking", -cash, PAYABLE), undo=undo)

    @precondition(lambda self: any(i.open > 0 for i in self.invoices))
    @rule(
        data=st.data(),
        back=days_back,
        fraction=fractions,
        into=st.sampled_from(("undeposited", "checking")),
        with_memo=st.booleans(),
        rate=st.sampled_from(EUR_RATES),
    )
    def receive_payment(
        self,
        data: st.DataObject,
        back: int,
        fraction: str,
        into: str,
        with_memo: bool,
        rate: Decimal,
    ) -> None:
        """A customer pays (part of) an invoice, maybe less a credit memo: into Undeposited Funds
        (no deposit account named) or straight into the bank. A euro invoice is paid into the
        bank at the payment day's rate."""
        invoice = data.draw(st.sampled_from([i for i in self.invoices if i.open > 0]))
        euro = invoice.currency != "USD"
        memos = [m for m in self.memos if m.open > 0 and not euro]
        memo = data.draw(st.sampled_from(memos)) if with_memo and memos else None
        paid = part(invoice.open, fraction)
        applied = min(memo.open, paid - CENT) if memo is not None else ZERO
        day = max(self.day(back), invoice.day, memo.day if memo and applied else invoice.day)
        cash = home(paid - applied, rate) if euro else paid - applied
        into = "checking" if euro else into
        lines = [{"Amount": paid, "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}]}]
        if memo is not None and applied > 0:
            lines.append(
                {"Amount": applied, "LinkedTxn": [{"TxnId": memo.id, "TxnType": "CreditMemo"}]}
            )
        body: dict[str, Any] = {
            "CustomerRef": {"value": invoice.party},
            "TxnDate": day.isoformat(),
            "TotalAmt": paid - applied,
            "Line": lines,
        }
        if euro:
            body.update(CurrencyRef={"value": invoice.currency}, ExchangeRate=rate)
        if into != "undeposited":
            body["DepositToAccountRef"] = self.ref(into)
        created = self.post("Payment", body)
        invoice.open -= paid
        if memo is not None:
            memo.open -= applied
        waiting = Document("Payment", created["Id"], invoice.party, day, cash)
        if into == "undeposited":
            self.waiting.append(waiting)

        def undo() -> None:
            invoice.open += paid
            if memo is not None:
                memo.open += applied
            if waiting in self.waiting:
                self.waiting.remove(waiting)

        self.wrote(
            "Payment",
            created,
            Move(day, into, cash, RECEIVABLE),
            undo=undo,
            deletable=lambda: not waiting.deposited,
        )

    @rule(amount=amounts, back=days_back, into=st.sampled_from(("checking", "undeposited")))
    def sales_receipt(self, amount: Decimal, back: int, into: str) -> None:
        """A sale paid on the spot, to the bank or (no deposit account named) Undeposited Funds."""
        day = self.day(back)
        body: dict[str, Any] = {
            "CustomerRef": {"value": self.customer},
            "TxnDate": day.isoformat(),
            "Line": [sales_line(self.ref("sales"), amount)],
        }
        if into != "undeposited":
            body["DepositToAccountRef"] = self.ref(into)
        created = self.post("SalesReceipt", body)
        waiting = Document("SalesReceipt", created["Id"], self.customer, day, amount)
        if into == "undeposited":
            self.waiting.append(waiting)

        def undo() -> None:
            if waiting in self.waiting:
                self.waiting.remove(waiting)

        self.wrote(
            "SalesReceipt",
            created,
            Move(day, into, amount, INCOME),
            undo=undo,
            deletable=lambda: not waiting.deposited,
        )

    @precondition(lambda self: any(not w.deposited for w in self.waiting))
    @rule(
        data=st.data(),
        back=days_back,
        bank=banks,
        owner=st.one_of(st.none(), amounts),
        fee=st.one_of(st.none(), amounts),
        cash_back=st.one_of(st.none(), fractions),
    )
    def deposit(
        self,
        data: st.DataObject,
        back: int,
        bank: str,
        owner: Decimal | None,
        fee: Decimal | None,
        cash_back: str | None,
    ) -> None:
        """Some of the money waiting in Undeposited Funds goes to a bank (a transfer), maybe with
        the owner's money on a line of its own (financing), maybe less a processing fee on a
        negative line (operating, out), maybe with some of it kept back as cash into the other
        bank (CashBack: a transfer)."""
        waiting = [w for w in self.waiting if not w.deposited]
        picked = data.draw(st.lists(st.sampled_from(range(len(waiting))), min_size=1, unique=True))
        chosen = [waiting[i] for i in picked]
        day = max([self.day(back), *(w.day for w in chosen)])
        total = sum((w.open for w in chosen), ZERO)
        lines: list[dict[str, Any]] = [
            {
                "Amount": w.open,
                "LinkedTxn": [{"TxnId": w.id, "TxnType": w.entity, "TxnLineId": "0"}],
            }
            for w in chosen
        ]
        moves = [Move(day, bank, total, "cash"), Move(day, "undeposited", -total, "cash")]
        if fee is not None and fee < total:
            lines.append(
                {
                    "Amount": -fee,
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": self.ref("supplies")},
                }
            )
            moves.append(Move(day, bank, -fee, "Expense"))
        if owner is not None:
            lines.append(
                {
                    "Amount": owner,
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": self.ref("owner")},
                }
            )
            moves.append(Move(day, bank, owner, "Equity"))
        body: dict[str, Any] = {
            "TxnDate": day.isoformat(),
            "DepositToAccountRef": self.ref(bank),
            "Line": lines,
        }
        banked = sum((m.amount for m in moves if m.account == bank), ZERO)
        if cash_back is not None and banked > 0:
            kept = part(banked, cash_back)  # all of it, half, or a cent
            other = next(b for b in BANKS if b != bank)
            body["CashBack"] = {"AccountRef": self.ref(other), "Amount": kept}
            moves += [Move(day, bank, -kept, "cash"), Move(day, other, kept, "cash")]
        created = self.post("Deposit", body)
        for item in chosen:
            item.deposited = True

        def undo() -> None:
            for item in chosen:
                item.deposited = False

        self.wrote("Deposit", created, *moves, undo=undo)

    @rule(amount=amounts, back=days_back)
    def refund_receipt(self, amount: Decimal, back: int) -> None:
        day = self.day(back)
        created = self.post(
            "RefundReceipt",
            {
                "CustomerRef": {"value": self.customer},
                "TxnDate": day.isoformat(),
                "DepositToAccountRef": self.ref("checking"),
                "Line": [sales_line(self.ref("sales"), amount)],
            },
        )
        self.wrote("RefundReceipt", created, Move(day, "checking", -amount, INCOME))

    @rule(amount=amounts, back=days_back, direction=st.booleans())
    def transfer(self, amount: Decimal, back: int, direction: bool) -> None:
        day = self.day(back)
        source, target = ("checking", "savings") if direction else ("savings", "checking")
        created = self.post(
            "Transfer",
            {
                "TxnDate": day.isoformat(),
                "Amount": amount,
                "FromAccountRef": self.ref(source),
                "ToAccountRef": self.ref(target),
            },
        )

        def reshape(
            obj: dict[str, Any], day: date, amount: Decimal
        ) -> tuple[dict[str, Any], list[Move]]:
            return {"TxnDate": day.isoformat(), "Amount": amount}, [
                Move(day, target, amount, "cash"),
                Move(day, source, -amount, "cash"),
            ]

        self.wrote(
            "Transfer",
            created,
            Move(day, target, amount, "cash"),
            Move(day, source, -amount, "cash"),
            reshape=reshape,
        )

    @rule(amount=big_amounts, back=days_back, source=st.sampled_from(("owner", "loan")), bank=banks)
    def money_in(self, amount: Decimal, back: int, source: str, bank: str) -> None:
        """Owner money (Equity) or a loan (Long Term Liability) deposited in a bank."""
        day = self.day(back)
        created = self.post(
            "Deposit",
            {
                "TxnDate": day.isoformat(),
                "DepositToAccountRef": self.ref(bank),
                "Line": [
                    {
                        "Amount": amount,
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": self.ref(source)},
                    }
                ],
            },
        )
        counter = CHART[source][1]

        def reshape(
            obj: dict[str, Any], day: date, amount: Decimal
        ) -> tuple[dict[str, Any], list[Move]]:
            fields = {
                "TxnDate": day.isoformat(),
                "Line": _with_amount(obj["Line"], amount),
                "TotalAmt": amount,
            }
            return fields, [Move(day, bank, amount, counter)]

        self.wrote("Deposit", created, Move(day, bank, amount, counter), reshape=reshape)

    @rule(
        amount=amounts,
        back=days_back,
        into=st.sampled_from(("loan", "owner", "equipment", "rent")),
        bank=banks,
    )
    def check(self, amount: Decimal, back: int, into: str, bank: str) -> None:
        """A check: a loan repayment, an owner's draw, equipment, or an expense."""
        day = self.day(back)
        created = self.post(
            "Purchase",
            {
                "TxnDate": day.isoformat(),
                "PaymentType": "Check",
                "AccountRef": self.ref(bank),
                "Line": [expense_line(self.ref(into), amount)],
            },
        )
        counter = CHART[into][1]

        def reshape(
            obj: dict[str, Any], day: date, amount: Decimal
        ) -> tuple[dict[str, Any], list[Move]]:
            fields = {
                "TxnDate": day.isoformat(),
                "Line": _with_amount(obj["Line"], amount),
                "TotalAmt": amount,
            }
            return fields, [Move(day, bank, -amount, counter)]

        self.wrote("Purchase", created, Move(day, bank, -amount, counter), reshape=reshape)

    @rule(
        amount=amounts,
        back=days_back,
        bank=banks,
        other=st.sampled_from(
            ("other bank", "undeposited", "owner", "loan", "equipment", "rent", "sales", "card")
        ),
        into_bank=st.booleans(),
        credit_first=st.booleans(),
    )
    def journal_entry(
        self,
        amount: Decimal,
        back: int,
        bank: str,
        other: str,
        into_bank: bool,
        credit_first: bool,
    ) -> None:
        """A two-line journal entry between a bank and another account: owner money or a loan in
        or out, equipment, an expense, a sale, a card payment, or a transfer between own cash
        accounts."""
        day = self.day(back)
        if other == "other bank":
            other = next(b for b in BANKS if b != bank)
        debit, credit = (bank, other) if into_bank else (other, bank)
        lines = [_journal("Debit", self.ref(debit), amount)]
        lines.insert(0 if credit_first else 1, _journal("Credit", self.ref(credit), amount))
        created = self.post("JournalEntry", {"TxnDate": day.isoformat(), "Line": lines})
        signed = amount if into_bank else -amount
        if other in CASH:
            moves = [Move(day, bank, signed, "cash"), Move(day, other, -signed, "cash")]
        else:
            moves = [Move(day, bank, signed, CHART[other][1])]
        self.wrote("JournalEntry", created, *moves)

    @rule(
        data=st.data(),
        back=days_back,
        bank=banks,
        others=st.lists(
            st.tuples(
                st.sampled_from(("owner", "loan", "equipment", "rent", "sales", "card")),
                st.booleans(),
                amounts,
            ),
            min_size=1,
            max_size=3,
        ),
        both_sides=st.one_of(st.none(), amounts),
    )
    def mixed_journal_entry(
        self,
        data: st.DataObject,
        back: int,
        bank: str,
        others: list[tuple[str, bool, Decimal]],
        both_sides: Decimal | None,
    ) -> None:
        """A journal entry of several lines in any order: non-cash lines of any kinds (debit or
        credit), and the bank's line or lines that balance them (maybe one on each side). By
        QuickBooks' statement, the cash moved against each kind of account is minus the entry's
        lines to it, whatever the order."""
        day = self.day(back)
        lines = [
            _journal("Debit" if debit else "Credit", self.ref(account), amount)
            for account, debit, amount in others
        ]
        moves = [
            Move(day, bank, -amount if debit else amount, CHART[account][1])
            for account, debit, amount in others
        ]
        into_bank = sum((move.amount for move in moves), ZERO)
        if into_bank == 0 and both_sides is None:
            both_sides = CENT  # a bank line on each side, so the entry still has cash lines
        if both_sides is None:
            posting = "Debit" if into_bank > 0 else "Credit"
            lines.append(_journal(posting, self.ref(bank), abs(into_bank)))
        else:
            lines.append(_journal("Debit", self.ref(bank), max(into_bank, ZERO) + both_sides))
            lines.append(_journal("Credit", self.ref(bank), max(-into_bank, ZERO) + both_sides))
        order = data.draw(st.permutations(lines))
        created = self.post("JournalEntry", {"TxnDate": day.isoformat(), "Line": order})
        self.wrote("JournalEntry", created, *moves)

    @rule(
        principal=amounts,
        interest=amounts,
        back=days_back,
        order=st.permutations((0, 1, 2)),
        by_check=st.booleans(),
    )
    def loan_payment(
        self, principal: Decimal, interest: Decimal, back: int, order: list[int], by_check: bool
    ) -> None:
        """A loan instalment: principal (financing) and interest (operating) in one payment, by a
        two-line check or by a journal entry whose lines come in any order."""
        day = self.day(back)
        if by_check:
            entity = "Purchase"
            body: dict[str, Any] = {
                "TxnDate": day.isoformat(),
                "PaymentType": "Check",
                "AccountRef": self.ref("checking"),
                "Line": [
                    expense_line(self.ref("loan"), principal),
                    expense_line(self.ref("interest"), interest),
                ],
            }
        else:
            entity = "JournalEntry"
            lines = [
                _journal("Debit", self.ref("loan"), principal),
                _journal("Debit", self.ref("interest"), interest),
                _journal("Credit", self.ref("checking"), principal + interest),
            ]
            body = {"TxnDate": day.isoformat(), "Line": [lines[i] for i in order]}
        created = self.post(entity, body)
        self.wrote(
            entity,
            created,
            Move(day, "checking", -principal, "Long Term Liability"),
            Move(day, "checking", -interest, "Expense"),
        )

    @rule(amount=amounts, back=days_back)
    def card_payment(self, amount: Decimal, back: int) -> None:
        day = self.day(back)
        created = self.post(
            "CreditCardPayment",
            {
                "TxnDate": day.isoformat(),
                "Amount": amount,
                "CreditCardAccountRef": self.ref("card"),
                "BankAccountRef": self.ref("checking"),
            },
        )

        def reshape(
            obj: dict[str, Any], day: date, amount: Decimal
        ) -> tuple[dict[str, Any], list[Move]]:
            fields = {"TxnDate": day.isoformat(), "Amount": amount}
            return fields, [Move(day, "checking", -amount, "Credit Card")]

        self.wrote(
            "CreditCardPayment",
            created,
            Move(day, "checking", -amount, "Credit Card"),
            reshape=reshape,
        )

    @precondition(lambda self: any(t.deletable() for t in self.txns))
    @rule(data=st.data(), void=st.booleans())
    def delete(self, data: st.DataObject, void: bool) -> None:
        """A cash transaction deleted (CDC's tombstone) or voided (its amounts zero): either way
        its cash never moved."""
        txn = data.draw(st.sampled_from([t for t in self.txns if t.deletable()]))
        body = {"Id": txn.obj["Id"], "SyncToken": txn.obj["SyncToken"]}
        if void and txn.entity in VOIDABLE:
            self.post(txn.entity, body, operation="update", include="void")
        else:
            self.post(txn.entity, body, operation="delete")
        self.txns.remove(txn)
        if txn.undo is not None:
            txn.undo()

    @precondition(lambda self: any(t.reshape is not None for t in self.txns))
    @rule(data=st.data(), back=days_back, amount=amounts)
    def edit(self, data: st.DataObject, back: int, amount: Decimal) -> None:
        """A cash transaction's date (maybe into or out of the window) and amount changed."""
        txn = data.draw(st.sampled_from([t for t in self.txns if t.reshape is not None]))
        assert txn.reshape is not None
        fields, moves = txn.reshape(txn.obj, self.day(back), amount)
        txn.obj = self.post(
            txn.entity,
            {"Id": txn.obj["Id"], "SyncToken": txn.obj["SyncToken"], "sparse": True, **fields},
        )
        txn.moves = moves

    # -- the test's own figures --------------------------------------------------------------

    def expected(self, today: date) -> Expected:
        start = today - timedelta(days=WINDOW_DAYS - 1)
        balances: dict[str, Decimal] = defaultdict(lambda: ZERO)
        opening = ZERO
        # One movement per transaction, cash account and counter-account type (a transaction's
        # lines against one kind of account are one movement); a journal entry's operating or
        # investing lines net among themselves (its cash is one line against them all).
        grouped: dict[tuple[int, str, str, str | None], Decimal] = defaultdict(lambda: ZERO)
        for number, txn in enumerate(self.txns):
            for move in txn.moves:
                balances[move.account] += move.amount
                if move.day < start:
                    opening += move.amount
                kind = flow_class(move.counter)
                netted = txn.entity == "JournalEntry" and kind in ("operating", "investing")
                counter = None if netted else move.counter
                if start <= move.day <= today:
                    grouped[number, move.account, kind, counter] += move.amount
        cash_in = cash_out = ZERO
        owner_in = owner_out = loans_in = loans_repaid = ZERO
        counted = 0
        for (_, _, kind, counter), amount in grouped.items():
            if amount == 0 or kind == "transfer":
                continue
            if kind == "financing":
                if counter == "Equity":
                    owner_in, owner_out = (
                        owner_in + max(amount, ZERO),
                        owner_out - min(amount, ZERO),
                    )
                else:
                    loans_in = loans_in + max(amount, ZERO)
                    loans_repaid = loans_repaid - min(amount, ZERO)
                continue
            counted += 1
            if amount > 0:
                cash_in += amount
            else:
                cash_out -= amount
        cash = sum((balances[b] for b in BANKS), ZERO)
        net = cash_out - cash_in
        days: int | None = None
        if cash <= 0:
            status, days = "no_cash", 0
        elif counted == 0:
            status = "no_history"
        elif net == 0:
            status = "break_even"
        elif net < 0:
            status = "cash_flow_positive"
        else:
            status = "days"
            days = int((cash * WINDOW_DAYS / net).to_integral_value(rounding=ROUND_FLOOR))
        return Expected(
            banks={CHART[b][0]: balances[b] for b in BANKS},
            undeposited=balances["undeposited"],
            cash_in=cash_in,
            cash_out=cash_out,
            counted=counted,
            owner_in=owner_in,
            owner_out=owner_out,
            loans_in=loans_in,
            loans_repaid=loans_repaid,
            status=status,
            days=days,
            opening=opening,
        )

    # -- the property ------------------------------------------------------------------------

    def oodaloo_figures(self, today: date) -> RunwayFigures:
        env = self.world.env

        async def figures() -> RunwayFigures:
            report = await self.mirror.sync()
            # The first sync pages through everything; every later one is a single CDC call.
            assert report.cdc_calls == (1 if self.syncs else 0), report.summary()
            if self.syncs:
                assert report.page_calls == 0, report.summary()
            async with env.uows(self.business_id) as uow:
                books = await load_books(uow, self.business_id, today)
            return RunwayCalculator(WINDOW_DAYS).figures(books)

        result: RunwayFigures = self.world.run(figures())
        self.syncs += 1
        return result

    @invariant()
    def figures_are_the_books(self) -> None:
        today = self.today()
        ours = self.expected(today)
        figures = self.oodaloo_figures(today)
        start = today - timedelta(days=WINDOW_DAYS - 1)
        statement = report_groups(
            self.get("reports/CashFlow", start_date=start.isoformat(), end_date=today.isoformat())
        )
        burn, financing = figures.burn, figures.financing
        # figure: (Oodaloo, the test's own computation, the sandbox's CashFlow report or None)
        rows: dict[str, tuple[Any, Any, Any]] = {
            **{
                f"bank {bank.name}": (bank.home_balance, ours.banks.get(bank.name), None)
                for bank in figures.cash.banks
            },
            "banks": (
                ", ".join(sorted(bank.name for bank in figures.cash.banks)),
                ", ".join(sorted(ours.banks)),
                None,
            ),
            "cash on hand": (figures.cash.total, ours.cash, None),
            "undeposited funds": (figures.cash.undeposited, ours.undeposited, None),
            "cash in": (burn.cash_in, ours.cash_in, None),
            "cash out": (burn.cash_out, ours.cash_out, None),
            "movements counted": (burn.movements_counted, ours.counted, None),
            "net burn": (
                burn.net,
                ours.net_burn,
                -(
                    _total(statement, "OperatingActivities")
                    + _total(statement, "InvestingActivities")
                ),
            ),
            "owner put in": (financing.owner_in, ours.owner_in, None),
            "owner took out": (financing.owner_out, ours.owner_out, None),
            "loans brought in": (financing.loans_in, ours.loans_in, None),
            "loans repaid": (financing.loans_repaid, ours.loans_repaid, None),
            "financing": (financing.net, ours.financing, _total(statement, "FinancingActivities")),
            "net cash increase": (
                financing.net - burn.net,
                ours.financing - ours.net_burn,
                _total(statement, "CashIncrease"),
            ),
            "cash at start": (
                figures.cash.total + figures.cash.undeposited + burn.net - financing.net,
                ours.opening,
                _total(statement, "BeginningCash"),
            ),
            "cash at end": (
                figures.cash.total + figures.cash.undeposited,
                ours.cash + ours.undeposited,
                _total(statement, "EndingCash"),
            ),
            "runway status": (figures.runway.status.value, ours.status, None),
            "runway days": (figures.runway.days, ours.days, None),
            "window": (
                f"{burn.window_start}..{burn.window_end}",
                f"{start}..{today}",
                None,
            ),
        }
        differ = [
            name
            for name, (oodaloo, test, report) in rows.items()
            if oodaloo != test or (report is not None and report != oodaloo)
        ]
        assert not differ, _side_by_side(rows, differ, self.txns)

    def teardown(self) -> None:
        self.world.run(self.client.aclose())


def _side_by_side(rows: dict[str, tuple[Any, Any, Any]], differ: list[str], txns: list[Txn]) -> str:
    width = max(len(name) for name in rows)
    lines = [
        f"figures differ: {', '.join(differ)}",
        f"{'':{width}}  {'Oodaloo':>16}  {'test':>16}  {'CashFlow report':>16}",
    ]
    for name, (oodaloo, test, report) in rows.items():
        mark = "  <--" if name in differ else ""
        shown = "" if report is None else str(report)
        lines.append(f"{name:{width}}  {oodaloo!s:>16}  {test!s:>16}  {shown:>16}{mark}")
    lines.append("cash the test wrote:")
    for txn in txns:
        for move in txn.moves:
            lines.append(
                f"  {move.day} {txn.entity} {txn.obj['Id']}: {move.account} {move.amount} "
                f"against {move.counter}"
            )
    return "\n".join(lines)


def _with_amount(lines: list[dict[str, Any]], amount: Decimal) -> list[dict[str, Any]]:
    """A one-line transaction's lines with that line's amount changed."""
    (line,) = lines
    return [{**line, "Amount": amount}]


def _journal(posting: str, account: dict[str, str], amount: Decimal) -> dict[str, Any]:
    return {
        "Amount": amount,
        "DetailType": "JournalEntryLineDetail",
        "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": account},
    }


def _total(groups: dict[str, dict[str, Any]], group: str) -> Decimal:
    """A section's total (a section with nothing in it may be left out: zero)."""
    row = groups.get(group)
    return ZERO if row is None else Decimal(row["Summary"]["ColData"][-1]["value"])


#: A sync after every write is most of the cost (a CDC call and a write per entity type): 15
#: companies of up to 10 writes each keep the file near 20 seconds.
SETTINGS = settings(
    max_examples=15,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# A failure is shrunk for up to Hypothesis' own 5 minutes; the report must outlive that.
@pytest.mark.timeout(600)
def test_runway_figures_are_the_books_after_any_writes(world: World) -> None:
    run_state_machine_as_test(lambda: RunwayBooks(world), settings=SETTINGS)
