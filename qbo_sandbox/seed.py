"""Seed data for the QBO sandbox: a believable small business, or a large one for benchmarks.

The default company is Larkspur & Pine Coffee Roasters, a wholesale coffee roaster in Oakland:
a year of bills from its landlord, payroll service, utilities, software and green-coffee importers;
invoices to about sixty cafés, restaurants, grocers and offices, with holiday seasonality; the
payments, card charges and bank deposits that settle them. The books balance: every account's
CurrentBalance is what its transactions add up to, every bill's and invoice's Balance is its total
less what has been paid on it, and every reference points at an object that exists. Cash and burn
are sized so the company has a few months of runway, with bills coming due this week and invoices
overdue in every aging bucket, which is what Oodaloo's digest is about.

Everything is a pure function of (seed, today): the same pair always seeds the same company.
Transactions are dated up to yesterday, so no object is created after the moment it is read.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from qbo_sandbox import ledger
from qbo_sandbox import seed_names as names
from qbo_sandbox.currency import currency_ref, default_preferences, home_currency_of
from qbo_sandbox.store import Realm

DEFAULT_SEED: int = 7

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
USD = {"value": "USD", "name": "United States Dollar"}
NON_TAXABLE = {"value": "NON"}
HISTORY_DAYS = 365
# QBO's Terms in a fresh company: name -> (Id, DueDays).
TERMS: dict[str, tuple[str, int]] = {
    "Due on receipt": ("1", 0),
    "Net 15": ("2", 15),
    "Net 30": ("3", 30),
    "Net 60": ("4", 60),
}

# (key, Name, AccountType, AccountSubType, Classification, AcctNum)
ACCOUNTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("checking", "Checking", "Bank", "Checking", "Asset", "1010"),
    ("savings", "Savings", "Bank", "Savings", "Asset", "1020"),
    ("undeposited", "Undeposited Funds", "Other Current Asset", "UndepositedFunds", "Asset", "1200"),
    ("ar", "Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable", "Asset", "1100"),
    ("card", "Chase Ink Business Card", "Credit Card", "CreditCard", "Liability", "2100"),
    ("ap", "Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable", "Liability", "2000"),
    ("equity", "Opening Balance Equity", "Equity", "OpeningBalanceEquity", "Equity", "3000"),
    ("wholesale", "Wholesale Coffee Sales", "Income", "SalesOfProductIncome", "Revenue", "4000"),
    ("retail", "Retail & Market Sales", "Income", "SalesOfProductIncome", "Revenue", "4100"),
    ("interest", "Interest Earned", "Other Income", "InterestEarned", "Revenue", "4900"),
    ("green_coffee", "Green Coffee", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense", "5000"),
    ("packaging", "Packaging & Labels", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense", "5100"),
    ("merchandise", "Merchandise for Resale", "Cost of Goods Sold", "SuppliesMaterialsCogs", "Expense", "5200"),
    ("rent", "Rent or Lease", "Expense", "RentOrLeaseOfBuildings", "Expense", "6000"),
    ("payroll", "Payroll Expenses", "Expense", "PayrollExpenses", "Expense", "6100"),
    ("utilities", "Utilities", "Expense", "Utilities", "Expense", "6200"),
    ("software", "Software & Subscriptions", "Expense", "OtherMiscellaneousServiceCost", "Expense", "6300"),
    ("insurance", "Insurance", "Expense", "Insurance", "Expense", "6400"),
    ("professional", "Legal & Professional Fees", "Expense", "LegalProfessionalFees", "Expense", "6500"),
    ("repairs", "Repairs & Maintenance", "Expense", "RepairMaintenance", "Expense", "6600"),
    ("shipping", "Shipping & Delivery", "Expense", "ShippingFreightDelivery", "Expense", "6700"),
    ("supplies", "Office Supplies", "Expense", "OfficeGeneralAdministrativeExpenses", "Expense", "6800"),
    ("marketing", "Advertising & Marketing", "Expense", "AdvertisingPromotional", "Expense", "6900"),
    ("auto", "Car & Truck", "Expense", "Auto", "Expense", "7000"),
    ("meals", "Meals & Entertainment", "Expense", "EntertainmentMeals", "Expense", "7100"),
)
# The full company's owner money, loan and bank fees.
FULL_ACCOUNTS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("owner_investment", "Owner's Investment", "Equity", "OwnersEquity", "Equity", "3100"),
    ("owner_draw", "Owner's Draw", "Equity", "OwnersEquity", "Equity", "3200"),
    ("loan", "Bay Community Bank Loan", "Long Term Liability", "NotesPayable", "Liability", "2500"),
    ("interest_paid", "Interest Paid", "Expense", "InterestPaid", "Expense", "7200"),
    ("bank_fees", "Bank Charges & Fees", "Expense", "BankCharges", "Expense", "7300"),
)
BALANCE_SHEET = frozenset({"Asset", "Liability", "Equity"})


@dataclass(frozen=True)
class VendorCategory:
    account: str  # expense account key
    terms: str
    by_card: bool  # bills paid with the company card rather than a check
    amount: tuple[int, int]  # typical bill, whole dollars
    description: str


VENDOR_CATEGORIES: dict[str, VendorCategory] = {
    "rent": VendorCategory("rent", "Net 15", False, (4850, 4850), "Warehouse rent, 1437 Wood St Unit B"),
    "payroll": VendorCategory("payroll", "Net 15", False, (10200, 11400), "Payroll funding and service fee"),
    "utilities": VendorCategory("utilities", "Net 15", False, (540, 980), "Gas & electric service"),
    "water": VendorCategory("utilities", "Net 30", False, (160, 245), "Water & sewer, two months"),
    "internet": VendorCategory("utilities", "Net 15", True, (190, 190), "Business internet"),
    "software": VendorCategory("software", "Net 15", True, (90, 150), "Monthly subscription"),
    "insurance": VendorCategory("insurance", "Net 30", False, (1385, 1385), "Quarterly premium, BOP policy"),
    "accounting": VendorCategory("professional", "Net 30", False, (650, 1200), "Bookkeeping & quarterly review"),
    "green_coffee": VendorCategory("green_coffee", "Net 30", False, (1400, 3200), "Green coffee"),
    "packaging": VendorCategory("packaging", "Net 30", False, (380, 1450), "Bags, valves & labels"),
    "merch": VendorCategory("merchandise", "Net 60", False, (600, 1800), "Enamel mugs & merchandise"),
    "repairs": VendorCategory("repairs", "Net 15", False, (240, 1350), "Service call & parts"),
    "it": VendorCategory("software", "Net 15", False, (275, 275), "Managed IT & POS support"),
    "delivery": VendorCategory("shipping", "Net 15", False, (180, 420), "Local wholesale deliveries"),
    "card_issuer": VendorCategory("card", "Net 15", False, (0, 0), "Card payment"),
    "fuel": VendorCategory("auto", "Net 15", True, (45, 95), "Delivery van fuel"),
    "postage": VendorCategory("shipping", "Net 15", True, (18, 160), "Online order shipping"),
    "supplies": VendorCategory("supplies", "Net 30", False, (85, 420), "Supplies"),
    "advertising": VendorCategory("marketing", "Net 15", True, (150, 600), "Social media ads"),
    "warehouse": VendorCategory("supplies", "Net 15", True, (85, 420), "Cups, lids, milk & cleaning supplies"),
    "meals": VendorCategory("meals", "Net 15", True, (40, 180), "Team lunch"),
    "cleaning": VendorCategory("repairs", "Net 15", False, (120, 480), "Cleaning & facility service"),
    "marketing": VendorCategory("marketing", "Net 30", False, (250, 1600), "Design & print"),
    "rentals": VendorCategory("repairs", "Net 15", False, (180, 900), "Equipment rental"),
    "legal": VendorCategory("professional", "Net 30", False, (450, 2200), "Legal services"),
    "freight": VendorCategory("shipping", "Net 15", False, (140, 650), "Freight"),
    "consulting": VendorCategory("professional", "Net 30", False, (400, 1800), "Consulting"),
}
# Vendors whose charges go on the card as Purchases rather than arriving as bills.
CARD_MERCHANTS = frozenset({"fuel", "postage", "advertising", "warehouse", "meals"})
# Bills that never come from the monthly schedule and are paid whenever cash allows.
IRREGULAR = frozenset(
    {"green_coffee", "packaging", "merch", "repairs", "supplies", "cleaning", "marketing",
     "rentals", "legal", "freight", "consulting"}
)


@dataclass(frozen=True)
class CustomerKind:
    cadence_days: int  # days between orders
    units: int  # typical units per order
    products: tuple[str, ...]  # item ids they buy
    terms: str
    days_to_pay: tuple[int, int]  # their habit, days from invoice date


CUSTOMER_KINDS: dict[str, CustomerKind] = {
    "cafe": CustomerKind(14, 4, ("1", "2", "3", "4"), "Net 15", (9, 32)),
    "bakery": CustomerKind(14, 3, ("1", "2", "5"), "Net 15", (12, 38)),
    "restaurant": CustomerKind(30, 3, ("1", "2", "4"), "Net 30", (20, 55)),
    "grocer": CustomerKind(30, 2, ("6", "3"), "Net 30", (28, 64)),
    "office": CustomerKind(30, 2, ("2", "5"), "Net 30", (15, 48)),
    "hotel": CustomerKind(30, 6, ("1", "2", "4", "7"), "Net 60", (45, 85)),
    "events": CustomerKind(70, 6, ("2", "5"), "Net 15", (10, 40)),
}
# Orders swell before the holidays and sag in high summer.
SEASON = {1: "0.90", 2: "0.88", 3: "0.95", 4: "1.00", 5: "1.00", 6: "0.93",
          7: "0.85", 8: "0.87", 9: "1.00", 10: "1.08", 11: "1.25", 12: "1.35"}
SEASONALITY = {month: Decimal(factor) for month, factor in SEASON.items()}
AGING_BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 15), (16, 30), (31, 60), (61, 90), (91, None))


def realm_id_for(seed: int) -> str:
    """A deterministic 16-digit realm id for a seeded company, in the style of QBO's sandbox ids."""
    digest = hashlib.sha256(f"qbo-sandbox:realm:{seed}".encode()).digest()
    return str(9_100_000_000_000_000 + int.from_bytes(digest[:8], "big") % 900_000_000_000_000)


# ---------------------------------------------------------------------------------------------
# Small helpers.


def money(rng: random.Random, low: int, high: int) -> Decimal:
    """A random amount in [low, high] dollars, in cents."""
    return Decimal(rng.randint(low * 100, high * 100)).scaleb(-2)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def slug(text: str) -> str:
    """ASCII letters and digits of a name, for made-up e-mail addresses and web sites."""
    folded = unicodedata.normalize("NFKD", text.replace("Ł", "L").replace("ł", "l").replace("ø", "o"))
    return "".join(ch for ch in folded.lower() if ch.isascii() and ch.isalnum())


def business_time(day: date, tz: ZoneInfo, rng: random.Random) -> datetime:
    """When a bookkeeper entered something dated `day`: office hours in the company's zone."""
    return datetime.combine(day, time(rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59)), tz)


def after(moment: datetime, rng: random.Random) -> datetime:
    return moment + timedelta(minutes=rng.randint(1, 40))


def month_starts(first: date, last: date) -> list[date]:
    out: list[date] = []
    current = first.replace(day=1)
    while current <= last:
        out.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return out


def month_end(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)


def address(rng: random.Random) -> dict[str, str]:
    city, postal = rng.choice(names.CITIES)
    return {
        "Line1": f"{rng.randint(100, 6999)} {rng.choice(names.STREETS)}",
        "City": city,
        "Country": "US",
        "CountrySubDivisionCode": "CA",
        "PostalCode": postal,
    }


def phone(rng: random.Random) -> str:
    return f"({rng.choice(('510', '415', '925'))}) 555-{rng.randint(100, 9999):04d}"


# ---------------------------------------------------------------------------------------------
# The plan: records of what the company did, rendered to QBO JSON once every Id is known.



@dataclass(eq=False, slots=True, kw_only=True)
class Account:
    key: str
    name: str
    account_type: str
    sub_type: str
    classification: str
    number: str
    created: datetime
    id: str = ""
    balance: Decimal = ZERO
    updated: datetime | None = None
    currency: str = "USD"

    def ref(self) -> dict[str, str]:
        return {"value": self.id, "name": self.name}

    def post(self, debit: Decimal, when: datetime) -> None:
        """Debit (positive) or credit (negative) the account. CurrentBalance is kept, as QBO keeps
        it, for balance-sheet accounts only, positive on their natural side."""
        if self.classification not in BALANCE_SHEET:
            return
        self.balance += debit if self.classification == "Asset" else -debit
        if self.updated is None or when > self.updated:
            self.updated = when


@dataclass(eq=False, slots=True, kw_only=True)
class Party:
    """A vendor or a customer."""

    name: str
    category: str  # vendor category or customer kind
    created: datetime
    contact: tuple[str, str]
    addr: dict[str, str]
    phone: str
    terms: str
    is_customer: bool = False
    id: str = ""
    balance: Decimal = ZERO
    doc_prefix: str = ""
    doc_counter: int = 0
    # Customers only: when they ordered and how they pay.
    first_order: date = date.min
    last_order: date = date.max
    days_to_pay: int = 30
    pays_by_check: bool = False
    partial_payer: bool = False
    check_number: int = 0

    def ref(self) -> dict[str, str]:
        return {"value": self.id, "name": self.name}

    domain: str = ""  # of its made-up web site and e-mail addresses
    email: str = ""
    currency: str = "USD"


@dataclass(eq=False, slots=True, kw_only=True)
class Txn:
    day: date
    created: datetime
    id: str = ""
    updated: datetime | None = None  # when a later transaction last changed it
    updates: int = 0

    def touch(self, when: datetime) -> None:
        self.updates += 1
        if self.updated is None or when > self.updated:
            self.updated = when


@dataclass(eq=False, slots=True, kw_only=True)
class Bill(Txn):
    vendor: Party
    due: date
    terms: str
    doc: str
    lines: list[tuple[Account, str, Decimal]]
    ap: Account
    # Planned payments, before they become BillPayments: (day, amount).
    pay_plan: list[tuple[date, Decimal]] = field(default_factory=list)
    paid: list[tuple[BillPay, Decimal]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((amount for _, _, amount in self.lines), ZERO)

    @property
    def balance(self) -> Decimal:
        return self.total - sum((amount for _, amount in self.paid), ZERO)


@dataclass(eq=False, slots=True, kw_only=True)
class BillPay(Txn):
    vendor: Party
    from_account: Account  # checking, or the card
    by_card: bool
    doc: str = ""
    bills: list[tuple[Bill, Decimal]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((amount for _, amount in self.bills), ZERO)


Product = tuple[str, str, str]


@dataclass(eq=False, slots=True, kw_only=True)
class Invoice(Txn):
    customer: Party
    due: date
    terms: str
    doc: str = ""
    lines: list[tuple[Product, int, Decimal]]  # product, quantity, amount
    sent: bool = True
    pay_plan: list[tuple[date, Decimal]] = field(default_factory=list)
    paid: list[tuple[Payment, Decimal]] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((amount for _, _, amount in self.lines), ZERO)

    @property
    def balance(self) -> Decimal:
        return self.total - sum((amount for _, amount in self.paid), ZERO)


@dataclass(eq=False, slots=True, kw_only=True)
class Payment(Txn):
    customer: Party
    to_account: Account  # checking (ACH) or undeposited funds (checks)
    ref_num: str
    invoices: list[tuple[Invoice, Decimal]] = field(default_factory=list)
    deposit: Deposit | None = None

    @property
    def total(self) -> Decimal:
        return sum((amount for _, amount in self.invoices), ZERO)


@dataclass(eq=False, slots=True, kw_only=True)
class Deposit(Txn):
    to_account: Account
    note: str
    lines: list[tuple[Account, str, Decimal]] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        own = sum((amount for _, _, amount in self.lines), ZERO)
        return own + sum((payment.total for payment in self.payments), ZERO)


@dataclass(eq=False, slots=True, kw_only=True)
class Purchase(Txn):
    vendor: Party
    account: Account  # what paid: checking, or the card
    payment_type: str  # "CreditCard" | "Cash" | "Check"
    lines: list[tuple[Account, str, Decimal]]
    doc: str = ""
    note: str = ""

    @property
    def total(self) -> Decimal:
        return sum((amount for _, _, amount in self.lines), ZERO)


@dataclass(eq=False, slots=True, kw_only=True)
class Entry(Txn):
    """An everyday transaction of the full company (a sales receipt, transfer, journal entry,
    vendor credit or credit card payment): the accounts it moves (debit +) and its JSON."""

    entity: str
    legs: list[tuple[Account, Decimal]]
    render: Callable[[Entry], dict[str, Any]]
    vendor: Party | None = None
    # A foreign bill's amount and rate, and the payment that settled it.
    amounts: list[Decimal] = field(default_factory=list)
    paid_by: list[Entry] = field(default_factory=list)


AnyTxn = Bill | BillPay | Invoice | Payment | Deposit | Purchase | Entry

GREEN_COFFEE_ORIGINS = (
    "Colombia Huila", "Ethiopia Yirgacheffe", "Guatemala Huehuetenango", "Brazil Cerrado",
    "Peru Cajamarca", "Sumatra Mandheling", "Kenya Nyeri", "Honduras Marcala",
)


# ---------------------------------------------------------------------------------------------
# Master data shared by both companies.


def company_start(first_day: date) -> date:
    return min(date.fromisoformat(names.COMPANY_START_DATE), first_day - timedelta(days=60))


def make_accounts(opened: datetime) -> dict[str, Account]:
    return {
        key: Account(
            key=key, name=name, account_type=account_type, sub_type=sub_type,
            classification=classification, number=number, created=opened + timedelta(minutes=i),
        )
        for i, (key, name, account_type, sub_type, classification, number) in enumerate(ACCOUNTS)
    }


def make_party(
    rng: random.Random, name: str, category: str, terms: str, created: datetime
) -> Party:
    contact = (rng.choice(names.GIVEN_NAMES), rng.choice(names.FAMILY_NAMES))
    domain = f"{slug(name)[:24] or 'mail'}.com"
    return Party(
        name=name,
        category=category,
        created=created,
        contact=contact,
        addr=address(rng),
        phone=phone(rng),
        terms=terms,
        doc_prefix=(slug(name)[:3].upper() or "INV") + "-",
        doc_counter=rng.randint(1000, 8999),
        domain=domain,
        email=f"{slug(contact[0])}@{domain}",
    )


def setup_time(rng: random.Random, tz: ZoneInfo, opened: date, first_day: date) -> datetime:
    """Some day between the company's start and the seeded year, when a record was set up."""
    span = max(1, (first_day - opened).days - 1)
    return business_time(opened + timedelta(days=rng.randint(1, span)), tz, rng)


def vendor_terms(rng: random.Random, category: str) -> str:
    if category == "green_coffee":
        return rng.choice(("Net 30", "Net 30", "Net 60"))
    return VENDOR_CATEGORIES[category].terms


def render_company_info(realm: Realm, opened: datetime, country: str = "US") -> dict[str, Any]:
    addr = dict(names.COMPANY_ADDRESS, Id="1", Country=country)
    if country != "US":  # a state is a US address's
        del addr["CountrySubDivisionCode"]
    industry, code = names.INDUSTRY
    return {
        "Id": "1",
        "SyncToken": "3",
        "CompanyName": names.COMPANY_NAME,
        "LegalName": names.LEGAL_NAME,
        "CompanyAddr": addr,
        "LegalAddr": dict(addr),
        "CustomerCommunicationAddr": dict(addr),
        "Country": country,
        "Email": {"Address": names.COMPANY_EMAIL},
        "WebAddr": {"URI": names.COMPANY_WEBSITE},
        "PrimaryPhone": {"FreeFormNumber": names.COMPANY_PHONE},
        "SupportedLanguages": "en",
        "FiscalYearStartMonth": "January",
        "CompanyStartDate": opened.date().isoformat(),
        "EmployerId": "824417093",
        "DefaultTimeZone": str(realm.tz),
        "NameValue": [
            {"Name": "NeoEnabled", "Value": "true"},
            {"Name": "IndustryType", "Value": industry},
            {"Name": "IndustryCode", "Value": code},
            {"Name": "CompanyType", "Value": "LLC"},
            {"Name": "SubscriptionStatus", "Value": "PAID"},
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
            {"Name": "PayrollFeature", "Value": "false"},
            {"Name": "AccountantFeature", "Value": "false"},
            {"Name": "IsQbdtMigrated", "Value": "false"},
        ],
    }


def load_lists(realm: Realm, opened: datetime, income: Account, home: str = "USD") -> None:
    """The company's preferences (home currency `home`, multicurrency off), its terms, and the
    products it sells (each posting its sales to `income`), as of the day it was opened."""
    realm.install("Preferences", default_preferences(home), created=opened)
    for name, (term_id, days) in TERMS.items():
        realm.load("Term", {
            "Id": term_id, "Name": name, "Active": True, "Type": "STANDARD",
            "DueDays": days, "DiscountPercent": 0, "DiscountDays": 0,
        }, created=opened)
    for item_id, name, price in names.PRODUCTS:
        service = "Service" in name
        realm.load("Item", {
            "Id": item_id, "Name": name, "FullyQualifiedName": name, "Active": True,
            "Type": "Service" if service else "NonInventory", "Description": name,
            "UnitPrice": Decimal(price), "Taxable": False, "TrackQtyOnHand": False,
            "IncomeAccountRef": income.ref(),
        }, created=opened)


def render_account(account: Account) -> dict[str, Any]:
    return {
        "Id": account.id,
        "Name": account.name,
        "SubAccount": False,
        "FullyQualifiedName": account.name,
        "Active": True,
        "Classification": account.classification,
        "AccountType": account.account_type,
        "AccountSubType": account.sub_type,
        "AcctNum": account.number,
        "CurrentBalance": account.balance,
        "CurrentBalanceWithSubAccounts": account.balance,
        "CurrencyRef": currency_ref(account.currency),
    }


def render_vendor(vendor: Party) -> dict[str, Any]:
    given, family = vendor.contact
    term_id, _ = TERMS[vendor.terms]
    return {
        "Id": vendor.id,
        "DisplayName": vendor.name,
        "CompanyName": vendor.name,
        "PrintOnCheckName": vendor.name,
        "GivenName": given,
        "FamilyName": family,
        "Active": True,
        "Vendor1099": vendor.category in ("repairs", "cleaning", "consulting", "delivery"),
        "BillAddr": vendor.addr,
        "PrimaryPhone": {"FreeFormNumber": vendor.phone},
        "PrimaryEmailAddr": {"Address": f"billing@{vendor.domain}"},
        "WebAddr": {"URI": f"https://www.{vendor.domain}"},
        "AcctNum": f"LP-{int(vendor.id):05d}",
        "TermRef": {"value": term_id, "name": vendor.terms},
        "Balance": vendor.balance,
        "CurrencyRef": currency_ref(vendor.currency),
    }


def render_customer(customer: Party) -> dict[str, Any]:
    given, family = customer.contact
    term_id, _ = TERMS[customer.terms]
    return {
        "Id": customer.id,
        "DisplayName": customer.name,
        "CompanyName": customer.name,
        "FullyQualifiedName": customer.name,
        "PrintOnCheckName": customer.name,
        "GivenName": given,
        "FamilyName": family,
        "Active": True,
        "Taxable": False,
        "Job": False,
        "BillWithParent": False,
        "BillAddr": customer.addr,
        "ShipAddr": customer.addr,
        "PrimaryPhone": {"FreeFormNumber": customer.phone},
        "PrimaryEmailAddr": {"Address": customer.email},
        "PreferredDeliveryMethod": "Email",
        "SalesTermRef": {"value": term_id, "name": customer.terms},
        "Balance": customer.balance,
        "BalanceWithJobs": customer.balance,
        "CurrencyRef": USD,
    }


def expense_line(index: int, account: Account, description: str, amount: Decimal) -> dict[str, Any]:
    return {
        "Id": str(index),
        "LineNum": index,
        "Description": description,
        "Amount": amount,
        "DetailType": "AccountBasedExpenseLineDetail",
        "AccountBasedExpenseLineDetail": {
            "AccountRef": account.ref(),
            "BillableStatus": "NotBillable",
            "TaxCodeRef": NON_TAXABLE,
        },
    }


def sales_line(index: int, product: Product, quantity: int, amount: Decimal) -> dict[str, Any]:
    item_id, item_name, unit_price = product
    return {
        "Id": str(index),
        "LineNum": index,
        "Description": item_name,
        "Amount": amount,
        "DetailType": "SalesItemLineDetail",
        "SalesItemLineDetail": {
            "ItemRef": {"value": item_id, "name": item_name},
            "UnitPrice": Decimal(unit_price),
            "Qty": quantity,
            "TaxCodeRef": NON_TAXABLE,
        },
    }


# ---------------------------------------------------------------------------------------------
# The default company.


class DefaultCompany:
    """Plans a year of Larkspur & Pine's books, then renders and loads them into a realm."""

    VENDOR_COUNT = 40
    CUSTOMER_COUNT = 60

    def __init__(
        self,
        *,
        seed: int,
        today: date,
        tz: ZoneInfo,
        full: bool = False,
        euro: bool = False,
        country: str = "US",
    ) -> None:
        self.rng = random.Random(seed)
        self.country = country
        # A company keeps its books in its country's currency (a UK company's in pounds); the
        # plan's amounts are the same figures whatever the currency.
        self.home = home_currency_of(country)
        if euro and self.home == "EUR":
            raise ValueError("the euro supplier bills a company whose home currency is not EUR")
        self.full = full
        self.euro = euro
        self.rates: dict[date, Decimal] = {}
        self.today = today
        self.tz = tz
        self.first_day = today - timedelta(days=HISTORY_DAYS)
        self.last_day = today - timedelta(days=1)
        self.opened = company_start(self.first_day)
        self.opened_at = datetime.combine(self.opened, time(9, 0), tz)
        self.accounts = make_accounts(self.opened_at)
        self.vendors: list[Party] = []
        self.customers: list[Party] = []
        self.bills: list[Bill] = []
        self.bill_payments: list[BillPay] = []
        self.invoices: list[Invoice] = []
        self.payments: list[Payment] = []
        self.deposits: list[Deposit] = []
        self.purchases: list[Purchase] = []
        self.entries: list[Entry] = []
        self.check_number = self.rng.randint(2100, 2900)
        if full:
            later = self.opened_at + timedelta(minutes=len(ACCOUNTS))
            for i, (key, name, kind, sub, classification, number) in enumerate(FULL_ACCOUNTS):
                self.accounts[key] = Account(
                    key=key, name=name, account_type=kind, sub_type=sub,
                    classification=classification, number=number,
                    created=later + timedelta(minutes=i),
                )

    # -- helpers -----------------------------------------------------------------------------

    def at(self, day: date) -> datetime:
        return business_time(day, self.tz, self.rng)

    def in_history(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def vendors_in(self, *categories: str) -> list[Party]:
        return [v for v in self.vendors if v.category in categories]

    def vendor(self, category: str) -> Party:
        return self.vendors_in(category)[0]

    def next_check(self) -> str:
        self.check_number += 1
        return str(self.check_number)

    # -- the plan ----------------------------------------------------------------------------

    def plan(self) -> None:
        self.plan_vendors()
        self.plan_customers()
        self.plan_recurring_bills()
        self.plan_irregular_bills()
        for bill in self.bills:
            self.plan_bill_payment(bill)
        self.force_bills_due_soon_and_overdue()
        self.make_bill_payments()
        self.plan_card_and_cash_purchases()
        self.plan_card_payments()
        self.plan_invoices()
        for invoice in self.invoices:
            self.plan_invoice_payment(invoice)
        self.force_overdue_buckets()
        self.make_customer_payments()
        self.plan_check_deposits()
        if self.full:
            self.plan_everyday_money()
        if self.euro:
            self.plan_euro_supplier()
        self.plan_market_deposits()
        self.plan_opening_balances_and_interest()

    def plan_vendors(self) -> None:
        rng = self.rng
        extra = self.VENDOR_COUNT - len(names.CORE_VENDORS)
        chosen = list(names.CORE_VENDORS) + rng.sample(names.EXTRA_VENDORS, extra)
        for name, category in chosen:
            created = setup_time(rng, self.tz, self.opened, self.first_day)
            self.vendors.append(make_party(rng, name, category, vendor_terms(rng, category), created))

    def plan_customers(self) -> None:
        rng = self.rng
        extra = self.CUSTOMER_COUNT - len(names.CORE_CUSTOMERS)
        chosen = list(names.CORE_CUSTOMERS) + rng.sample(names.EXTRA_CUSTOMERS, extra)
        for index, (name, kind_name) in enumerate(chosen):
            kind = CUSTOMER_KINDS[kind_name]
            core = index < len(names.CORE_CUSTOMERS)
            if core or rng.random() < 0.78:
                first_order = self.first_day + timedelta(days=rng.randint(0, kind.cadence_days - 1))
                created = setup_time(rng, self.tz, self.opened, self.first_day)
            else:  # won during the year
                first_order = self.first_day + timedelta(days=rng.randint(30, 270))
                created = self.at(first_order - timedelta(days=rng.randint(0, 5)))
            customer = make_party(rng, name, kind_name, kind.terms, created)
            customer.is_customer = True
            customer.first_order = first_order
            if not core and rng.random() < 0.08:  # closed or switched roasters
                customer.last_order = self.first_day + timedelta(days=rng.randint(150, 320))
            customer.days_to_pay = rng.randint(*kind.days_to_pay)
            customer.pays_by_check = rng.random() < 0.45
            customer.partial_payer = rng.random() < 0.12
            customer.check_number = rng.randint(1000, 9000)
            self.customers.append(customer)

    def add_bill(self, vendor: Party, day: date, lines: list[tuple[str, Decimal]]) -> Bill | None:
        """A bill from `vendor` dated `day`, unless that falls outside the seeded year."""
        if not self.in_history(day):
            return None
        expense = self.accounts[VENDOR_CATEGORIES[vendor.category].account]
        vendor.doc_counter += 1
        bill = Bill(
            day=day,
            created=self.at(day),
            vendor=vendor,
            due=day + timedelta(days=TERMS[vendor.terms][1]),
            terms=vendor.terms,
            doc=f"{vendor.doc_prefix}{vendor.doc_counter}",
            lines=[(expense, description, amount) for description, amount in lines],
            ap=self.accounts["ap"],
        )
        self.bills.append(bill)
        return bill

    def plan_recurring_bills(self) -> None:
        rng = self.rng
        rent_raise = self.first_day + timedelta(days=rng.randint(120, 240))
        software = self.vendors_in("software")
        fees = [Decimal("149.00"), Decimal("105.00"), Decimal("90.00")]
        # One month past the history too: next month's rent is billed mid-month.
        for month in month_starts(self.first_day, self.last_day + timedelta(days=31)):
            label = month.strftime("%B %Y")
            rent_day = month - timedelta(days=15)
            rent = Decimal("4850.00") if rent_day < rent_raise else Decimal("4995.50")
            self.add_bill(self.vendor("rent"), rent_day, [(f"Rent, {label}", rent)])
            payroll = money(rng, 10200, 11400) + (Decimal("1500.00") if month.month == 12 else ZERO)
            self.add_bill(self.vendor("payroll"), month.replace(day=25),
                          [(f"Payroll funding, {label}", payroll - Decimal("149.00")),
                           ("Payroll service fee", Decimal("149.00"))])
            winter = 220 if month.month in (11, 12, 1, 2) else 0
            self.add_bill(self.vendor("utilities"), month.replace(day=8),
                          [(f"Gas & electric, {label}", money(rng, 540 + winter, 760 + winter))])
            if month.month % 2 == 0:
                self.add_bill(self.vendor("water"), month.replace(day=12),
                              [("Water & sewer, two months", money(rng, 160, 245))])
            self.add_bill(self.vendor("internet"), month.replace(day=3),
                          [(f"Business internet, {label}", Decimal("189.95"))])
            for offset, (vendor, fee) in enumerate(zip(software, fees, strict=False)):
                self.add_bill(vendor, month.replace(day=1 + 4 * offset), [(f"Subscription, {label}", fee)])
            self.add_bill(self.vendor("it"), month.replace(day=1),
                          [(f"Managed IT & POS support, {label}", Decimal("275.00"))])
            self.add_bill(self.vendor("delivery"), month.replace(day=27),
                          [(f"Wholesale deliveries, {label}", money(rng, 180, 420))])
            if month.month in (1, 4, 7, 10):
                self.add_bill(self.vendor("insurance"), month.replace(day=2),
                              [("Quarterly premium, business owner's policy", Decimal("1385.00"))])
                review = Decimal("2350.00") if month.month == 4 else money(rng, 650, 1200)
                self.add_bill(self.vendor("accounting"), month.replace(day=15),
                              [("Bookkeeping & quarterly review", review)])

    def plan_irregular_bills(self) -> None:
        rng = self.rng
        green = self.vendors_in("green_coffee")
        packaging = self.vendors_in("packaging")
        for month in month_starts(self.first_day, self.last_day):
            # Beans are bought a month ahead of the roasting they feed.
            ahead = SEASONALITY[month.month % 12 + 1]
            for _ in range(3):
                origins = rng.sample(GREEN_COFFEE_ORIGINS, rng.randint(1, 2))
                lines = [(f"{origin}, {rng.randint(2, 6)} bags", cents(money(rng, 700, 1600) * ahead))
                         for origin in origins]
                self.add_bill(rng.choice(green), month.replace(day=rng.randint(1, 28)), lines)
            for _ in range(rng.randint(1, 2)):
                self.add_bill(rng.choice(packaging), month.replace(day=rng.randint(1, 28)),
                              [("Bags, valves & labels", money(rng, 380, 1450))])
            if month.month in (2, 5, 8, 10):
                self.add_bill(self.vendor("merch"), month.replace(day=rng.randint(1, 28)),
                              [("Enamel mugs & merchandise", money(rng, 600, 1800))])
            if month.month % 2 == 1:
                self.add_bill(self.vendor("repairs"), month.replace(day=rng.randint(1, 28)),
                              [("Roaster service call & parts", money(rng, 240, 1350))])
        for vendor in self.vendors:
            if vendor.category not in IRREGULAR or vendor in green + packaging:
                continue
            if vendor.category in ("merch", "repairs") and vendor is self.vendor(vendor.category):
                continue
            category = VENDOR_CATEGORIES[vendor.category]
            for _ in range(rng.randint(1, 5)):
                day = self.first_day + timedelta(days=rng.randint(0, HISTORY_DAYS - 1))
                self.add_bill(vendor, day, [(category.description, money(rng, *category.amount))])

    def plan_bill_payment(self, bill: Bill) -> None:
        rng = self.rng
        category = bill.vendor.category
        if VENDOR_CATEGORIES[category].by_card:
            day = bill.day + timedelta(days=rng.randint(0, 2))
        elif category in ("rent", "payroll"):
            day = bill.due - timedelta(days=rng.randint(0, 2))
        elif category in IRREGULAR and rng.random() < 0.18:  # paid late when cash was tight
            day = bill.due + timedelta(days=rng.randint(1, 12))
        else:
            day = bill.due - timedelta(days=rng.randint(0, 5))
        day = max(day, bill.day)
        total = bill.total
        if category in IRREGULAR and rng.random() < 0.07:
            first = cents(total * Decimal("0.5"))
            bill.pay_plan = [(day, first), (day + timedelta(days=rng.randint(14, 30)), total - first)]
        else:
            bill.pay_plan = [(day, total)]

    def force_bills_due_soon_and_overdue(self) -> None:
        """Whatever the seed, the digest has bills due this week and bills already overdue."""
        rng, today = self.rng, self.today
        soon_end = today + timedelta(days=7)
        due_soon = [b for b in self.bills if today <= b.due <= soon_end]
        for bill in due_soon:  # not paid early: still open today
            bill.pay_plan = [(max(day, bill.due), amount) for day, amount in bill.pay_plan]
        green = self.vendors_in("green_coffee")
        for days_ahead in (2, 4, 6)[: max(0, 3 - len(due_soon))]:
            vendor = green[days_ahead % len(green)]
            day = today + timedelta(days=days_ahead) - timedelta(days=TERMS[vendor.terms][1])
            extra = self.add_bill(vendor, day, [(f"{rng.choice(GREEN_COFFEE_ORIGINS)}, 4 bags",
                                                 money(rng, 1400, 2600))])
            if extra is not None:
                extra.pay_plan = [(extra.due, extra.total)]
        overdue = [b for b in self.bills
                   if b.vendor.category in IRREGULAR and today - timedelta(days=45) <= b.due < today]
        for index, bill in enumerate(rng.sample(overdue, min(4, len(overdue)))):
            if index == 0 and bill.due > bill.day:  # a part payment, the rest still owed
                bill.pay_plan = [(bill.due - timedelta(days=1), cents(bill.total * Decimal("0.4")))]
            else:
                bill.pay_plan = []

    def make_bill_payments(self) -> None:
        """Turn payment plans into BillPayments: one per vendor, day and method."""
        grouped: dict[tuple[int, date], BillPay] = {}
        for bill in sorted(self.bills, key=lambda b: b.created):
            for day, amount in bill.pay_plan:
                if day >= self.today:
                    continue
                key = (id(bill.vendor), day)
                payment = grouped.get(key)
                by_card = VENDOR_CATEGORIES[bill.vendor.category].by_card
                if payment is None:
                    payment = BillPay(
                        day=day,
                        created=self.at(day),
                        vendor=bill.vendor,
                        from_account=self.accounts["card" if by_card else "checking"],
                        by_card=by_card,
                        doc="" if by_card else self.next_check(),
                    )
                    grouped[key] = payment
                    self.bill_payments.append(payment)
                payment.created = max(payment.created, after(bill.created, self.rng))
                payment.bills.append((bill, amount))
        for payment in self.bill_payments:
            for bill, amount in payment.bills:
                bill.paid.append((payment, amount))
                bill.touch(payment.created)

    def plan_card_and_cash_purchases(self) -> None:
        rng = self.rng
        merchants = {v.category: v for v in self.vendors if v.category in CARD_MERCHANTS}
        card, checking = self.accounts["card"], self.accounts["checking"]
        day = self.first_day
        while day <= self.last_day:
            weekday = day.weekday()
            plans: list[tuple[str, Account, str]] = []
            if weekday == 0:
                plans.append(("fuel", card, "CreditCard"))
            if weekday in (1, 3) and rng.random() < 0.7:
                plans.append(("postage", card, "CreditCard"))
            if day.day in (6, 20):
                plans.append(("warehouse", card, "CreditCard"))
            if day.day == 13:
                plans.append(("warehouse", checking, "Cash"))
            if day.day == 2:
                plans.append(("advertising", card, "CreditCard"))
            if weekday == 4 and rng.random() < 0.3:
                plans.append(("meals", card, "CreditCard"))
            for category, account, payment_type in plans:
                vendor = merchants[category]
                spec = VENDOR_CATEGORIES[category]
                self.purchases.append(Purchase(
                    day=day, created=self.at(day), vendor=vendor, account=account,
                    payment_type=payment_type,
                    lines=[(self.accounts[spec.account], spec.description, money(rng, *spec.amount))],
                ))
            day += timedelta(days=1)

    def plan_card_payments(self) -> None:
        """Each month on the 12th a check pays off the card's balance at the last statement."""
        card, checking = self.accounts["card"], self.accounts["checking"]
        charges: list[tuple[date, Decimal]] = [
            (p.day, p.total) for p in self.purchases if p.account is card
        ] + [(bp.day, bp.total) for bp in self.bill_payments if bp.by_card]
        paid = ZERO
        issuer = self.vendor("card_issuer")
        for month in month_starts(self.first_day, self.last_day):
            day = month.replace(day=12)
            if not self.in_history(day):
                continue
            statement = month - timedelta(days=1)
            owed = sum((amount for when, amount in charges if when <= statement), ZERO) - paid
            if owed <= 0:
                continue
            paid += owed
            note = f"Card statement ending {statement.strftime('%m/%d/%Y')}"
            if self.full:  # recorded with QuickBooks' Pay down credit card
                self.entries.append(card_payment(day, self.at(day), card, checking, owed, note))
                continue
            self.purchases.append(Purchase(
                day=day, created=self.at(day), vendor=issuer, account=checking,
                payment_type="Check", doc=self.next_check(), note=note,
                lines=[(card, f"Payment, statement ending {statement.isoformat()}", owed)],
            ))

    def plan_invoices(self) -> None:
        rng = self.rng
        products = {product[0]: product for product in names.PRODUCTS}
        for customer in self.customers:
            kind = CUSTOMER_KINDS[customer.category]
            day = customer.first_order
            while day <= min(self.last_day, customer.last_order):
                if day >= self.first_day:
                    season = SEASONALITY[day.month]
                    picks = rng.sample(kind.products, rng.randint(1, min(2, len(kind.products))))
                    units = max(1, int(kind.units * season * Decimal(rng.uniform(0.7, 1.3))))
                    lines = []
                    for item_id in picks:
                        quantity = max(1, units // len(picks) + rng.randint(0, 1))
                        product = products[item_id]
                        lines.append((product, quantity, Decimal(product[2]) * quantity))
                    recent = (self.today - day).days <= 3
                    self.invoices.append(Invoice(
                        day=day, created=self.at(day), customer=customer,
                        due=day + timedelta(days=TERMS[customer.terms][1]), terms=customer.terms,
                        lines=lines, sent=not (recent and rng.random() < 0.5),
                    ))
                jitter = 20 if customer.category == "events" else 3
                day += timedelta(days=kind.cadence_days + rng.randint(-jitter, jitter))
        self.invoices.sort(key=lambda inv: inv.created)
        first_number = self.rng.randint(1040, 1400)
        for number, invoice in enumerate(self.invoices, start=first_number):
            invoice.doc = str(number)

    def plan_invoice_payment(self, invoice: Invoice) -> None:
        rng = self.rng
        customer = invoice.customer
        if customer.last_order != date.max and invoice.day > customer.last_order - timedelta(days=50):
            return  # a customer that closed never paid its last invoices
        days = customer.days_to_pay + rng.randint(-6, 8)
        if rng.random() < 0.06:  # fell through the cracks for a while
            days += rng.randint(20, 60)
        day = invoice.day + timedelta(days=max(1, days))
        total = invoice.total
        if customer.partial_payer and rng.random() < 0.35:
            first = cents(total * Decimal(rng.choice(("0.4", "0.5", "0.6"))))
            invoice.pay_plan = [(day, first), (day + timedelta(days=rng.randint(20, 45)), total - first)]
        else:
            invoice.pay_plan = [(day, total)]

    def open_on(self, invoice: Invoice, day: date) -> Decimal:
        return invoice.total - sum((a for when, a in invoice.pay_plan if when < day), ZERO)

    def force_overdue_buckets(self) -> None:
        """At least two open invoices in every aging bucket, whatever the seed."""
        today = self.today
        for low, high in AGING_BUCKETS:
            def in_bucket(invoice: Invoice, low: int = low, high: int | None = high) -> bool:
                late = (today - invoice.due).days
                return late >= low and (high is None or late <= high)

            bucket = [inv for inv in self.invoices if in_bucket(inv)]
            open_count = sum(1 for inv in bucket if self.open_on(inv, today) > 0)
            settled = [inv for inv in bucket if self.open_on(inv, today) == 0]
            for invoice in self.rng.sample(settled, min(len(settled), max(0, 2 - open_count))):
                invoice.pay_plan = []

    def make_customer_payments(self) -> None:
        grouped: dict[tuple[int, date], Payment] = {}
        checking, undeposited = self.accounts["checking"], self.accounts["undeposited"]
        for invoice in self.invoices:
            customer = invoice.customer
            for day, amount in invoice.pay_plan:
                if day >= self.today:
                    continue
                key = (id(customer), day)
                payment = grouped.get(key)
                if payment is None:
                    if customer.pays_by_check:
                        customer.check_number += 1
                        ref_num = str(customer.check_number)
                    else:
                        ref_num = f"ACH{self.rng.randint(100000, 999999)}"
                    payment = Payment(
                        day=day, created=self.at(day), customer=customer,
                        to_account=undeposited if customer.pays_by_check else checking,
                        ref_num=ref_num,
                    )
                    grouped[key] = payment
                    self.payments.append(payment)
                payment.created = max(payment.created, after(invoice.created, self.rng))
                payment.invoices.append((invoice, amount))
        for payment in self.payments:
            for invoice, amount in payment.invoices:
                invoice.paid.append((payment, amount))
                invoice.touch(payment.created)

    def plan_check_deposits(self) -> None:
        """Checks wait in Undeposited Funds until the Friday bank run."""
        undeposited = [p for p in self.payments if p.to_account is self.accounts["undeposited"]]
        undeposited.sort(key=lambda p: p.created)
        day = self.first_day
        while day <= self.last_day:
            if day.weekday() == 4:
                batch = [p for p in undeposited if p.deposit is None and p.day < day]
                if batch:
                    deposit = Deposit(
                        day=day, created=self.at(day), to_account=self.accounts["checking"],
                        note="Friday check deposit", payments=batch,
                    )
                    deposit.created = max([deposit.created] + [after(p.created, self.rng) for p in batch])
                    for payment in batch:
                        payment.deposit = deposit
                        payment.touch(deposit.created)
                    self.deposits.append(deposit)
            day += timedelta(days=1)

    def plan_market_deposits(self) -> None:
        retail = self.accounts["retail"]
        day = self.first_day
        while day <= self.last_day:
            if day.weekday() == 0:
                amount = cents(money(self.rng, 300, 700) * SEASONALITY[day.month])
                self.deposits.append(Deposit(
                    day=day, created=self.at(day), to_account=self.accounts["checking"],
                    note="Weekend market & online sales",
                    lines=[(retail, "Farmers market & online store sales", amount)],
                ))
            day += timedelta(days=1)

    def plan_everyday_money(self) -> None:
        """What a real company also records (the full company only): counter sales on sales
        receipts, an owner's contribution and monthly draws, a bank loan and its repayments,
        transfers to savings, bank fees by journal entry, and a supplier's credit."""
        rng, a = self.rng, self.accounts
        checking, savings = a["checking"], a["savings"]
        counter = [p for p in names.PRODUCTS if p[0] in ("2", "6")]
        day = self.first_day
        while day <= self.last_day:
            if day.weekday() == 5:  # the roastery's Saturday counter
                product = counter[rng.randint(0, len(counter) - 1)]
                quantity = max(1, int(rng.randint(3, 8) * SEASONALITY[day.month]))
                amount = Decimal(product[2]) * quantity
                self.entries.append(sales_receipt(day, self.at(day), checking, a["retail"],
                                                  product, quantity, amount))
            day += timedelta(days=1)
        lender = make_party(rng, "Bay Community Bank", "lender", "Net 30",
                            setup_time(rng, self.tz, self.opened, self.first_day))
        self.vendors.append(lender)
        borrowed = self.first_day + timedelta(days=75)
        self.deposits.append(Deposit(
            day=borrowed, created=self.at(borrowed), to_account=checking,
            note="Equipment loan, 36 months at 8%",
            lines=[(a["loan"], "Loan proceeds", Decimal("30000.00"))],
        ))
        owed = Decimal("30000.00")
        for month in month_starts(borrowed + timedelta(days=31), self.last_day):
            day = month.replace(day=5)
            if not self.in_history(day):
                continue
            interest = cents(owed * Decimal("0.08") / 12)
            principal = Decimal("940.09") - interest
            owed -= principal
            self.purchases.append(Purchase(
                day=day, created=self.at(day), vendor=lender, account=checking,
                payment_type="Check", doc=self.next_check(), note="Loan repayment",
                lines=[(a["loan"], "Principal", principal),
                       (a["interest_paid"], "Interest", interest)],
            ))
        contributed = self.first_day + timedelta(days=200)
        self.deposits.append(Deposit(
            day=contributed, created=self.at(contributed), to_account=checking,
            note="Owner contribution", lines=[(a["owner_investment"], "Owner put in",
                                               Decimal("10000.00"))],
        ))
        for month in month_starts(self.first_day, self.last_day):
            for day_of_month, build in ((15, "draw"), (28, "sweep"), (27, "fee")):
                day = month.replace(day=day_of_month)
                if not self.in_history(day):
                    continue
                when = self.at(day)
                if build == "draw":
                    self.entries.append(journal_entry(day, when, "Owner's draw", [
                        (a["owner_draw"], Decimal("2000.00")), (checking, Decimal("-2000.00"))]))
                elif build == "fee":
                    self.entries.append(journal_entry(day, when, "Monthly account fee", [
                        (a["bank_fees"], Decimal("18.00")), (checking, Decimal("-18.00"))]))
                else:
                    self.entries.append(transfer(day, when, checking, savings, Decimal("1500.00")))
        importer = self.vendors_in("green_coffee")[0]
        credited = self.last_day - timedelta(days=40)
        self.entries.append(vendor_credit(credited, self.at(credited), importer,
                                          a["green_coffee"], a["ap"], Decimal("180.00")))

    def rate_on(self, day: date) -> Decimal:
        """QuickBooks' EUR rate on `day` (home dollars per euro): the month's."""
        return self.rates[max(month for month in self.rates if month <= day)]

    def plan_euro_supplier(self) -> None:
        """Multicurrency (the euro company only): a Hamburg green-coffee importer bills in euros
        each month at the day's rate; each bill is paid in euros from the dollar Checking account
        two days before it is due, at that day's rate; the difference posts to Exchange Gain or
        Loss, and what is still owed sits in the importer's own A/P account in euros."""
        rng, a = self.rng, self.accounts
        later = self.opened_at + timedelta(minutes=len(ACCOUNTS) + len(FULL_ACCOUNTS))
        a["ap_eur"] = Account(
            key="ap_eur", name="Accounts Payable (A/P) - EUR", account_type="Accounts Payable",
            sub_type="AccountsPayable", classification="Liability", number="2010",
            created=later, currency="EUR",
        )
        a["fx"] = Account(
            key="fx", name=ledger.EXCHANGE_GAIN_OR_LOSS, account_type="Other Expense",
            sub_type="ExchangeGainOrLoss", classification="Expense", number="7900",
            created=later + timedelta(minutes=1),
        )
        supplier = make_party(rng, "Nordsee Kaffeeimport GmbH", "green_coffee", "Net 30",
                              setup_time(rng, self.tz, self.opened, self.first_day))
        supplier.currency = "EUR"
        self.vendors.append(supplier)
        rate = Decimal("1.0800")
        for month in month_starts(self.first_day - timedelta(days=31), self.today):
            rate += Decimal(rng.randint(-250, 250)).scaleb(-4)
            self.rates[month] = rate
        checking = a["checking"]
        for month in month_starts(self.first_day, self.last_day):
            day = month.replace(day=10)
            if not self.in_history(day):
                continue
            supplier.doc_counter += 1
            bill = euro_bill(day, self.at(day), supplier, a["green_coffee"], a["ap_eur"],
                             money(rng, 1800, 3200), self.rate_on(day),
                             f"NKI-{supplier.doc_counter}")
            self.entries.append(bill)
            pay_day = bill.day + timedelta(days=28)
            if pay_day > self.last_day:
                supplier.balance += bill_total(bill)
                continue
            payment = euro_payment(pay_day, after(self.at(pay_day), rng), bill, checking,
                                   a["fx"], self.rate_on(pay_day), self.next_check())
            self.entries.append(payment)
            bill.touch(payment.created)

    def load_currencies(self, realm: Realm) -> None:
        """The euro company's preferences, currency and rates, and every account's balance in its
        own currency from the ledger (the importer's A/P account keeps euros)."""
        prefs = default_preferences(self.home)
        prefs["CurrencyPrefs"]["MultiCurrencyEnabled"] = True
        realm.install("Preferences", prefs, created=self.opened_at)
        realm.load("CompanyCurrency", {"Code": "EUR", "Name": "Euro", "Active": True},
                   created=self.opened_at)
        for month, rate in sorted(self.rates.items()):
            if month > self.today:
                continue
            realm.load("ExchangeRate", {
                "SourceCurrencyCode": "EUR", "TargetCurrencyCode": self.home,
                "AsOfDate": month.isoformat(), "Rate": rate,
            }, created=datetime.combine(month, time(6, 0), self.tz))
        moved = ledger.current_balance_changes(realm, [], ledger.postings(realm))
        for account in realm.table("Account").objects.values():
            if account.get("Classification") in BALANCE_SHEET:
                balance = moved.get(account["Id"], ZERO)
                account["CurrentBalance"] = balance
                account["CurrentBalanceWithSubAccounts"] = balance

    def checking_flows(self) -> list[tuple[date, Decimal]]:
        checking = self.accounts["checking"]
        flows = [(p.day, p.total) for p in self.payments if p.to_account is checking]
        flows += [(d.day, d.total) for d in self.deposits if d.to_account is checking]
        flows += [(bp.day, -bp.total) for bp in self.bill_payments if bp.from_account is checking]
        flows += [(p.day, -p.total) for p in self.purchases if p.account is checking]
        flows += [(e.day, amount) for e in self.entries for account, amount in e.legs
                  if account is checking]
        return sorted(flows, key=lambda flow: flow[0])

    def plan_opening_balances_and_interest(self) -> None:
        """Opening balances sized so the year ends with a few months of runway in the bank."""
        rng = self.rng
        equity, interest = self.accounts["equity"], self.accounts["interest"]
        target = money(rng, 54000, 64000)
        running, lowest = ZERO, ZERO
        for _, amount in self.checking_flows():
            running += amount
            lowest = min(lowest, running)
        opening_checking = max(target - running, Decimal("8000.00") - lowest)
        opening_savings = money(rng, 40000, 48000)
        opened = datetime.combine(self.first_day, time(7, 30), self.tz)
        for key, amount in (("checking", opening_checking), ("savings", opening_savings)):
            self.deposits.append(Deposit(
                day=self.first_day, created=opened, to_account=self.accounts[key],
                note="Opening balance", lines=[(equity, "Opening balance", amount)],
            ))
            opened += timedelta(minutes=2)
        savings = opening_savings
        for month in month_starts(self.first_day, self.last_day):
            day = month_end(month)
            if not self.in_history(day):
                continue
            earned = cents(savings * Decimal("0.04") / 12)
            savings += earned
            self.deposits.append(Deposit(
                day=day, created=datetime.combine(day, time(6, 0), self.tz),
                to_account=self.accounts["savings"], note="Interest",
                lines=[(interest, "Interest earned", earned)],
            ))

    # -- Ids, balances and JSON ------------------------------------------------------------------

    def records(self) -> list[Account | Party | AnyTxn]:
        everything: list[Account | Party | AnyTxn] = [
            *self.accounts.values(), *self.vendors, *self.customers, *self.bills,
            *self.bill_payments, *self.invoices, *self.payments, *self.deposits, *self.purchases,
            *self.entries,
        ]
        # QBO hands out Ids in creation order; sorted() is stable for equal times.
        return sorted(everything, key=lambda record: record.created)

    def post_ledger(self) -> None:
        a = self.accounts
        for bill in self.bills:
            for expense, _, amount in bill.lines:
                expense.post(amount, bill.created)
            a["ap"].post(-bill.total, bill.created)
            bill.vendor.balance += bill.balance
        for bp in self.bill_payments:
            a["ap"].post(bp.total, bp.created)
            bp.from_account.post(-bp.total, bp.created)
        for invoice in self.invoices:
            a["ar"].post(invoice.total, invoice.created)
            a["wholesale"].post(-invoice.total, invoice.created)
            invoice.customer.balance += invoice.balance
        for payment in self.payments:
            payment.to_account.post(payment.total, payment.created)
            a["ar"].post(-payment.total, payment.created)
        for deposit in self.deposits:
            deposit.to_account.post(deposit.total, deposit.created)
            for account, _, amount in deposit.lines:
                account.post(-amount, deposit.created)
            for payment in deposit.payments:
                payment.to_account.post(-payment.total, deposit.created)
        for purchase in self.purchases:
            purchase.account.post(-purchase.total, purchase.created)
            for account, _, amount in purchase.lines:
                account.post(amount, purchase.created)
        for entry in self.entries:
            for account, amount in entry.legs:
                account.post(amount, entry.created)
            if entry.vendor is not None and entry.entity == "VendorCredit":
                entry.vendor.balance -= sum((a for _, a in entry.legs if a > 0), ZERO)

    def load(self, realm: Realm) -> None:
        self.plan()
        records = self.records()
        for number, record in enumerate(records, start=2):  # CompanyInfo is Id 1
            record.id = str(number)
        self.post_ledger()
        realm.load(
            "CompanyInfo",
            render_company_info(realm, self.opened_at, self.country),
            created=self.opened_at,
        )
        load_lists(realm, self.opened_at, self.accounts["wholesale"], self.home)
        for record in records:
            entity, body = self.in_home_currency(self.render(record))
            updated = None if isinstance(record, Party) else record.updated
            if updated is None:
                realm.load(entity, body, created=record.created)
            else:  # changed after it was created (a bill later paid): QBO shows both times
                body["MetaData"] = {
                    "CreateTime": realm.format_time(record.created),
                    "LastUpdatedTime": realm.format_time(max(updated, record.created)),
                }
                realm.load(entity, body)
        if self.euro:
            self.load_currencies(realm)

    def in_home_currency(self, rendered: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """What the plan renders in dollars, in the company's own currency (a foreign supplier's
        documents keep theirs)."""
        entity, body = rendered
        if self.home != "USD" and (body.get("CurrencyRef") or {}).get("value") == "USD":
            body["CurrencyRef"] = currency_ref(self.home)
        return entity, body

    def render(self, record: Account | Party | AnyTxn) -> tuple[str, dict[str, Any]]:
        if isinstance(record, Account):
            return "Account", render_account(record)
        if isinstance(record, Party):
            return ("Customer", render_customer(record)) if record.is_customer else (
                "Vendor", render_vendor(record))
        if isinstance(record, Entry):
            entry = record.render(record)
            entry["SyncToken"] = str(record.updates)
            return record.entity, entry
        body = RENDERERS[type(record)](record)
        body["SyncToken"] = str(record.updates)  # each later change bumped it
        return ENTITY_OF[type(record)], body


def render_bill(bill: Bill) -> dict[str, Any]:
    term_id, _ = TERMS[bill.terms]
    return {
        "Id": bill.id,
        "DocNumber": bill.doc,
        "TxnDate": bill.day.isoformat(),
        "DueDate": bill.due.isoformat(),
        "SalesTermRef": {"value": term_id, "name": bill.terms},
        "VendorRef": bill.vendor.ref(),
        "APAccountRef": bill.ap.ref(),
        "CurrencyRef": USD,
        "Line": [expense_line(i, account, description, amount)
                 for i, (account, description, amount) in enumerate(bill.lines, start=1)],
        "TotalAmt": bill.total,
        "Balance": bill.balance,
        "LinkedTxn": [
            {"TxnId": bp.id, "TxnType": "BillPaymentCreditCard" if bp.by_card else "BillPaymentCheck"}
            for bp, _ in bill.paid
        ],
    }


def render_bill_payment(bp: BillPay) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": bp.id,
        "TxnDate": bp.day.isoformat(),
        "VendorRef": bp.vendor.ref(),
        "PayType": "CreditCard" if bp.by_card else "Check",
        "TotalAmt": bp.total,
        "CurrencyRef": USD,
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]}
                 for bill, amount in bp.bills],
    }
    if bp.by_card:
        body["CreditCardPayment"] = {"CCAccountRef": bp.from_account.ref()}
    else:
        body["CheckPayment"] = {"BankAccountRef": bp.from_account.ref(), "PrintStatus": "NotSet"}
        body["DocNumber"] = bp.doc
    return body


def render_invoice(invoice: Invoice) -> dict[str, Any]:
    term_id, _ = TERMS[invoice.terms]
    customer = invoice.customer
    lines = [sales_line(i, product, quantity, amount)
             for i, (product, quantity, amount) in enumerate(invoice.lines, start=1)]
    lines.append({"Amount": invoice.total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    body: dict[str, Any] = {
        "Id": invoice.id,
        "DocNumber": invoice.doc,
        "TxnDate": invoice.day.isoformat(),
        "DueDate": invoice.due.isoformat(),
        "SalesTermRef": {"value": term_id, "name": invoice.terms},
        "CustomerRef": customer.ref(),
        "CurrencyRef": USD,
        "Line": lines,
        "TxnTaxDetail": {"TotalTax": ZERO},
        "TotalAmt": invoice.total,
        "Balance": invoice.balance,
        "LinkedTxn": [{"TxnId": payment.id, "TxnType": "Payment"} for payment, _ in invoice.paid],
        "CustomerMemo": {"value": "Thank you for roasting with us!"},
        "BillAddr": customer.addr,
        "ShipAddr": customer.addr,
        "BillEmail": {"Address": customer.email},
        "EmailStatus": "EmailSent" if invoice.sent else "NeedToSend",
        "PrintStatus": "NotSet",
        "ApplyTaxAfterDiscount": False,
        "AllowIPNPayment": False,
        "AllowOnlinePayment": False,
        "AllowOnlineCreditCardPayment": False,
        "AllowOnlineACHPayment": True,
    }
    return body


def render_payment(payment: Payment) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": payment.id,
        "TxnDate": payment.day.isoformat(),
        "CustomerRef": payment.customer.ref(),
        "DepositToAccountRef": payment.to_account.ref(),
        "PaymentRefNum": payment.ref_num,
        "TotalAmt": payment.total,
        "UnappliedAmt": ZERO,
        "ProcessPayment": False,
        "CurrencyRef": USD,
        "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice.id, "TxnType": "Invoice"}]}
                 for invoice, amount in payment.invoices],
    }
    if payment.deposit is not None:
        body["LinkedTxn"] = [{"TxnId": payment.deposit.id, "TxnType": "Deposit"}]
    return body


def render_deposit(deposit: Deposit) -> dict[str, Any]:
    lines: list[dict[str, Any]] = []
    for payment in deposit.payments:
        lines.append({
            "Id": str(len(lines) + 1),
            "LineNum": len(lines) + 1,
            "Amount": payment.total,
            "LinkedTxn": [{"TxnId": payment.id, "TxnType": "Payment", "TxnLineId": "0"}],
        })
    for account, description, amount in deposit.lines:
        lines.append({
            "Id": str(len(lines) + 1),
            "LineNum": len(lines) + 1,
            "Description": description,
            "Amount": amount,
            "DetailType": "DepositLineDetail",
            "DepositLineDetail": {"AccountRef": account.ref()},
        })
    return {
        "Id": deposit.id,
        "TxnDate": deposit.day.isoformat(),
        "DepositToAccountRef": deposit.to_account.ref(),
        "PrivateNote": deposit.note,
        "TotalAmt": deposit.total,
        "CurrencyRef": USD,
        "Line": lines,
    }


def render_purchase(purchase: Purchase) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Id": purchase.id,
        "TxnDate": purchase.day.isoformat(),
        "AccountRef": purchase.account.ref(),
        "PaymentType": purchase.payment_type,
        "EntityRef": {**purchase.vendor.ref(), "type": "Vendor"},
        "TotalAmt": purchase.total,
        "CurrencyRef": USD,
        "Line": [expense_line(i, account, description, amount)
                 for i, (account, description, amount) in enumerate(purchase.lines, start=1)],
    }
    if purchase.payment_type == "CreditCard":
        body["Credit"] = False
    if purchase.doc:
        body["DocNumber"] = purchase.doc
    if purchase.note:
        body["PrivateNote"] = purchase.note
    return body


# -- the full company's everyday transactions, as QuickBooks' JSON ------------------------------


def _entry(entity: str, day: date, created: datetime, legs: list[tuple[Account, Decimal]],
           render: Callable[[Entry], dict[str, Any]], vendor: Party | None = None) -> Entry:
    return Entry(day=day, created=created, entity=entity, legs=legs, render=render, vendor=vendor)


def sales_receipt(day: date, created: datetime, bank: Account, income: Account,
                  product: Product, quantity: int, amount: Decimal) -> Entry:
    def render(entry: Entry) -> dict[str, Any]:
        line = sales_line(1, product, quantity, amount)
        line["SalesItemLineDetail"]["ItemAccountRef"] = income.ref()
        return {"Id": entry.id, "TxnDate": day.isoformat(), "DepositToAccountRef": bank.ref(),
                "PrivateNote": "Saturday counter sales", "CurrencyRef": USD, "Line": [line],
                "TxnTaxDetail": {"TotalTax": ZERO}, "TotalAmt": amount, "Balance": ZERO}

    return _entry("SalesReceipt", day, created, [(bank, amount), (income, -amount)], render)


def journal_entry(day: date, created: datetime, note: str,
                  legs: list[tuple[Account, Decimal]]) -> Entry:
    def render(entry: Entry) -> dict[str, Any]:
        lines = [{"Id": str(i), "Description": note, "Amount": abs(amount),
                  "DetailType": "JournalEntryLineDetail",
                  "JournalEntryLineDetail": {"PostingType": "Debit" if amount > 0 else "Credit",
                                             "AccountRef": account.ref()}}
                 for i, (account, amount) in enumerate(legs)]
        total = sum((amount for _, amount in legs if amount > 0), ZERO)
        return {"Id": entry.id, "TxnDate": day.isoformat(), "PrivateNote": note,
                "CurrencyRef": USD, "Adjustment": False, "Line": lines, "TotalAmt": total}

    return _entry("JournalEntry", day, created, legs, render)


def transfer(day: date, created: datetime, source: Account, target: Account,
             amount: Decimal) -> Entry:
    def render(entry: Entry) -> dict[str, Any]:
        return {"Id": entry.id, "TxnDate": day.isoformat(), "FromAccountRef": source.ref(),
                "ToAccountRef": target.ref(), "Amount": amount, "CurrencyRef": USD,
                "PrivateNote": "Monthly savings sweep"}

    return _entry("Transfer", day, created, [(target, amount), (source, -amount)], render)


def card_payment(day: date, created: datetime, card: Account, bank: Account, amount: Decimal,
                 note: str) -> Entry:
    def render(entry: Entry) -> dict[str, Any]:
        return {"Id": entry.id, "TxnDate": day.isoformat(), "CreditCardAccountRef": card.ref(),
                "BankAccountRef": bank.ref(), "Amount": amount, "CurrencyRef": USD,
                "PrivateNote": note}

    return _entry("CreditCardPaymentTxn", day, created, [(card, amount), (bank, -amount)], render)


def vendor_credit(day: date, created: datetime, vendor: Party, expense: Account, ap: Account,
                  amount: Decimal) -> Entry:
    def render(entry: Entry) -> dict[str, Any]:
        return {"Id": entry.id, "TxnDate": day.isoformat(), "VendorRef": vendor.ref(),
                "APAccountRef": ap.ref(), "CurrencyRef": USD,
                "Line": [expense_line(1, expense, "Two damaged bags credited", amount)],
                "TotalAmt": amount, "Balance": amount}

    return _entry("VendorCredit", day, created, [(ap, amount), (expense, -amount)], render, vendor)


def bill_total(entry: Entry) -> Decimal:
    return entry.amounts[0]


def euro_bill(day: date, created: datetime, vendor: Party, expense: Account, ap: Account,
              amount: Decimal, rate: Decimal, doc: str) -> Entry:
    home = ledger.to_home(amount, rate)
    paid: list[Entry] = []

    def render(entry: Entry) -> dict[str, Any]:
        balance = ZERO if paid else amount
        body: dict[str, Any] = {
            "Id": entry.id, "DocNumber": doc, "TxnDate": day.isoformat(),
            "DueDate": (day + timedelta(days=30)).isoformat(),
            "SalesTermRef": {"value": TERMS["Net 30"][0], "name": "Net 30"},
            "VendorRef": vendor.ref(), "APAccountRef": ap.ref(),
            "CurrencyRef": currency_ref("EUR"), "ExchangeRate": rate,
            "Line": [expense_line(1, expense, "Green coffee, FOB Hamburg", amount)],
            "TotalAmt": amount, "Balance": balance, "HomeTotalAmt": home,
            "HomeBalance": ledger.to_home(balance, rate),
        }
        if paid:
            body["LinkedTxn"] = [{"TxnId": paid[0].id, "TxnType": "BillPaymentCheck"}]
        return body

    bill = _entry("Bill", day, created, [(expense, home), (ap, -home)], render, vendor)
    bill.amounts = [amount, rate]
    bill.paid_by = paid
    return bill


def euro_payment(day: date, created: datetime, bill: Entry, bank: Account, fx: Account,
                 rate: Decimal, check: str) -> Entry:
    amount, bill_rate = bill.amounts
    at_bill, at_pay = ledger.to_home(amount, bill_rate), ledger.to_home(amount, rate)
    ap = bill.legs[1][0]

    def render(entry: Entry) -> dict[str, Any]:
        assert bill.vendor is not None
        return {
            "Id": entry.id, "DocNumber": check, "TxnDate": day.isoformat(),
            "VendorRef": bill.vendor.ref(), "PayType": "Check",
            "CheckPayment": {"BankAccountRef": bank.ref(), "PrintStatus": "NotSet"},
            "CurrencyRef": currency_ref("EUR"), "ExchangeRate": rate,
            "TotalAmt": amount, "HomeTotalAmt": at_pay,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill.id, "TxnType": "Bill"}]}],
        }

    legs = [(ap, at_bill), (bank, -at_pay), (fx, at_pay - at_bill)]
    payment = _entry("BillPayment", day, created, legs, render)
    bill.paid_by.append(payment)
    return payment


RENDERERS: dict[type, Callable[[Any], dict[str, Any]]] = {
    Bill: render_bill,
    BillPay: render_bill_payment,
    Invoice: render_invoice,
    Payment: render_payment,
    Deposit: render_deposit,
    Purchase: render_purchase,
}
ENTITY_OF: dict[type, str] = {
    Bill: "Bill", BillPay: "BillPayment", Invoice: "Invoice", Payment: "Payment",
    Deposit: "Deposit", Purchase: "Purchase",
}


def seed_default_company(
    realm: Realm,
    *,
    seed: int,
    today: date,
    full: bool = False,
    euro: bool = False,
    country: str = "US",
) -> None:
    """Load Larkspur & Pine Coffee Roasters' last twelve months into an empty realm; `full` adds
    the money a real company also moves (DefaultCompany.plan_everyday_money), `euro` turns
    multicurrency on with a supplier billing in euros (DefaultCompany.plan_euro_supplier)."""
    company = DefaultCompany(
        seed=seed, today=today, tz=realm.tz, full=full, euro=euro, country=country
    )
    with realm.bulk():
        company.load(realm)


# ---------------------------------------------------------------------------------------------
# Scaled companies, for benchmarks: the same company shape, n bills and n invoices.


def distinct_names(rng: random.Random, count: int, suffixes: tuple[str, ...], taken: set[str]) -> list[str]:
    """`count` made-up business names, none already taken."""
    words = names.NAME_WORDS
    combos = [f"{a} {b} {suffix}" for a in words for b in words if a != b for suffix in suffixes]
    out: list[str] = []
    for index in rng.sample(range(len(combos)), min(count + len(taken), len(combos))):
        if combos[index] not in taken:
            out.append(combos[index])
            if len(out) == count:
                return out
    # More names than word combinations: number the rest.
    out += [f"{combos[i % len(combos)]} #{i // len(combos) + 2}" for i in range(count - len(out))]
    return out


class ScaledCompany:
    """n bills and n invoices over the last year, built straight into QBO JSON for speed.

    Same books as the default company in shape and coherence (balances, Balance = total less
    payments, references that resolve), with simpler habits: one line per bill, one payment per
    settled bill or invoice, Ids allocated in blocks per entity type (bills and invoices in date
    order), and MetaData times at creation.
    """

    def __init__(self, *, n: int, seed: int, today: date, tz: ZoneInfo) -> None:
        if n < 1:
            raise ValueError(f"a scaled company needs at least one bill and invoice, got n={n}")
        self.n = n
        self.rng = random.Random(f"scaled:{seed}:{n}")
        self.today = today
        self.tz = tz
        self.first_day = today - timedelta(days=HISTORY_DAYS)
        self.opened = company_start(self.first_day)
        self.opened_at = datetime.combine(self.opened, time(9, 0), tz)
        self.accounts = make_accounts(self.opened_at)
        # Office hours start of each day of the year, so each object costs one addition.
        self.mornings = [datetime.combine(self.first_day + timedelta(days=d), time(8, 0), tz)
                         for d in range(HISTORY_DAYS + 1)]

    def parties(self) -> tuple[list[Party], list[Party]]:
        rng = self.rng
        vendor_rows = list(names.CORE_VENDORS) + list(names.EXTRA_VENDORS)
        customer_rows = list(names.CORE_CUSTOMERS) + list(names.EXTRA_CUSTOMERS)
        taken = {name for name, _ in vendor_rows + customer_rows}
        more_vendors = max(0, self.n // 250 - len(vendor_rows))
        more_customers = max(0, self.n // 100 - len(customer_rows))
        categories = sorted(IRREGULAR)
        kinds = sorted(CUSTOMER_KINDS)
        for name in distinct_names(rng, more_vendors, names.VENDOR_SUFFIXES, taken):
            vendor_rows.append((name, rng.choice(categories)))
            taken.add(name)
        for name in distinct_names(rng, more_customers, names.CUSTOMER_SUFFIXES, taken):
            customer_rows.append((name, rng.choice(kinds)))
        vendors = [make_party(rng, name, category, vendor_terms(rng, category),
                              setup_time(rng, self.tz, self.opened, self.first_day))
                   for name, category in vendor_rows]
        customers = []
        for name, kind_name in customer_rows:
            kind = CUSTOMER_KINDS[kind_name]
            customer = make_party(rng, name, kind_name, kind.terms,
                                  setup_time(rng, self.tz, self.opened, self.first_day))
            customer.is_customer = True
            customer.days_to_pay = rng.randint(*kind.days_to_pay)
            customers.append(customer)
        return vendors, customers

    def load(self, realm: Realm) -> None:
        rng, n, a = self.rng, self.n, self.accounts
        # random() is several times cheaper than randint() and just as reproducible.
        random_ = rng.random
        mornings = self.mornings
        # Times of day a bookkeeper works, every nine seconds of 08:00-17:00.
        clock_times = [timedelta(seconds=s) for s in range(0, 9 * 3600, 9)]
        times = len(clock_times)
        first_day, today_offset = self.first_day, HISTORY_DAYS
        # Per day of the year (and the due dates beyond it): ISO date and month.
        calendar = [first_day + timedelta(days=d) for d in range(HISTORY_DAYS + 130)]
        iso_days = [day.isoformat() for day in calendar]
        month_of = [day.replace(day=1) for day in calendar]
        five_minutes = timedelta(minutes=5)
        vendors, customers = self.parties()

        next_id = 2
        for account in a.values():
            account.id = str(next_id)
            next_id += 1
        for party in [*vendors, *customers]:
            party.id = str(next_id)
            next_id += 1
        opening_ids = (str(next_id), str(next_id + 1))
        bill_base = next_id + 2
        invoice_base = bill_base + n
        bill_payment_base = invoice_base + n
        checking, card, ap, ar = a["checking"], a["card"], a["ap"], a["ar"]
        checking_ref, card_ref, ap_ref = checking.ref(), card.ref(), ap.ref()
        # Daily movement of the checking account, to size its opening balance.
        checking_daily = [ZERO] * (HISTORY_DAYS + 1)
        card_monthly: dict[date, Decimal] = {}

        # -- bills and their payments --------------------------------------------------------
        payable = [v for v in vendors if v.category in VENDOR_CATEGORIES
                   and v.category not in CARD_MERCHANTS and v.category != "card_issuer"]
        vendor_specs = []
        for v in payable:
            spec = VENDOR_CATEGORIES[v.category]
            term_id, term_days = TERMS[v.terms]
            low, high = spec.amount
            vendor_specs.append((v, v.ref(), a[spec.account].ref(), term_days,
                                 {"value": term_id, "name": v.terms}, spec.by_card,
                                 low * 100, max(high, low + 1) * 100, spec.description))
        bills: list[dict[str, Any]] = []
        bill_created: list[datetime] = []
        bill_payments: list[tuple[dict[str, Any], datetime]] = []
        vendor_count = len(vendor_specs)
        bill_days = sorted(int(random_() * HISTORY_DAYS) for _ in range(n))
        for i, day in enumerate(bill_days):
            vendor, vendor_ref, account_ref, term_days, term_ref, by_card, low, high, what = (
                vendor_specs[int(random_() * vendor_count)])
            amount = Decimal(low + int(random_() * (high - low))).scaleb(-2)
            due = day + term_days
            chance = random_()
            if by_card:
                pay_day = day + int(chance * 3)
            elif chance > 0.12:
                pay_day = due - int(chance * 6)
            else:  # paid late
                pay_day = due + 1 + int(chance * 160)
            pay_day = max(pay_day, day)
            bill_id = str(bill_base + i)
            created = mornings[day] + clock_times[int(random_() * times)]
            linked: list[dict[str, str]] = []
            balance = amount
            if pay_day < today_offset and random_() > 0.04:
                bp_id = str(bill_payment_base + len(bill_payments))
                linked.append({"TxnId": bp_id, "TxnType": "BillPaymentCreditCard" if by_card
                               else "BillPaymentCheck"})
                balance = ZERO
                bp: dict[str, Any] = {
                    "Id": bp_id,
                    "TxnDate": iso_days[pay_day],
                    "VendorRef": vendor_ref,
                    "PayType": "CreditCard" if by_card else "Check",
                    "TotalAmt": amount,
                    "CurrencyRef": USD,
                    "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}],
                }
                if by_card:
                    bp["CreditCardPayment"] = {"CCAccountRef": card_ref}
                    month = month_of[pay_day]
                    card_monthly[month] = card_monthly.get(month, ZERO) + amount
                else:
                    bp["CheckPayment"] = {"BankAccountRef": checking_ref, "PrintStatus": "NotSet"}
                    checking_daily[pay_day] -= amount
                paid_at = mornings[pay_day] + clock_times[int(random_() * times)]
                bill_payments.append((bp, max(paid_at, created + five_minutes)))
            else:
                vendor.balance += amount
            bills.append({
                "Id": bill_id,
                "DocNumber": f"{vendor.doc_prefix}{10000 + i}",
                "TxnDate": iso_days[day],
                "DueDate": iso_days[due],
                "SalesTermRef": term_ref,
                "VendorRef": vendor_ref,
                "APAccountRef": ap_ref,
                "CurrencyRef": USD,
                "Line": [{
                    "Id": "1", "LineNum": 1, "Description": what, "Amount": amount,
                    "DetailType": "AccountBasedExpenseLineDetail",
                    "AccountBasedExpenseLineDetail": {"AccountRef": account_ref,
                                                      "BillableStatus": "NotBillable",
                                                      "TaxCodeRef": NON_TAXABLE},
                }],
                "TotalAmt": amount,
                "Balance": balance,
                "LinkedTxn": linked,
            })
            bill_created.append(created)
            ap.balance += balance

        # -- invoices and their payments -------------------------------------------------------
        products = [(p, {"value": p[0], "name": p[1]}, Decimal(p[2])) for p in names.PRODUCTS[:6]]
        customer_specs = []
        for c in customers:
            term_id, term_days = TERMS[c.terms]
            customer_specs.append((c, c.ref(), term_days, {"value": term_id, "name": c.terms},
                                   c.days_to_pay, {"Address": c.email}, c.addr))
        payment_base = bill_payment_base + len(bill_payments)
        invoices: list[dict[str, Any]] = []
        invoice_created: list[datetime] = []
        payments: list[tuple[dict[str, Any], datetime]] = []
        customer_count = len(customer_specs)
        invoice_days = sorted(int(random_() * HISTORY_DAYS) for _ in range(n))
        for i, day in enumerate(invoice_days):
            customer, customer_ref, term_days, term_ref, days_to_pay, email, addr = (
                customer_specs[int(random_() * customer_count)])
            (_, item_name, _), item_ref, price = products[int(random_() * len(products))]
            quantity = 1 + int(random_() * 12)
            amount = price * quantity
            invoice_id = str(invoice_base + i)
            created = mornings[day] + clock_times[int(random_() * times)]
            pay_day = day + max(1, days_to_pay - 6 + int(random_() * 17))
            linked = []
            balance = amount
            if pay_day < today_offset and random_() > 0.05:
                payment_id = str(payment_base + len(payments))
                linked.append({"TxnId": payment_id, "TxnType": "Payment"})
                balance = ZERO
                payment = {
                    "Id": payment_id,
                    "TxnDate": iso_days[pay_day],
                    "CustomerRef": customer_ref,
                    "DepositToAccountRef": checking_ref,
                    "PaymentRefNum": f"ACH{100000 + i}",
                    "TotalAmt": amount,
                    "UnappliedAmt": ZERO,
                    "ProcessPayment": False,
                    "CurrencyRef": USD,
                    "Line": [{"Amount": amount,
                              "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}],
                }
                checking_daily[pay_day] += amount
                paid_at = mornings[pay_day] + clock_times[int(random_() * times)]
                payments.append((payment, paid_at))
            else:
                customer.balance += amount
            invoices.append({
                "Id": invoice_id,
                "DocNumber": str(100001 + i),
                "TxnDate": iso_days[day],
                "DueDate": iso_days[day + term_days],
                "SalesTermRef": term_ref,
                "CustomerRef": customer_ref,
                "CurrencyRef": USD,
                "Line": [
                    {"Id": "1", "LineNum": 1, "Description": item_name, "Amount": amount,
                     "DetailType": "SalesItemLineDetail",
                     "SalesItemLineDetail": {"ItemRef": item_ref, "UnitPrice": price,
                                             "Qty": quantity, "TaxCodeRef": NON_TAXABLE}},
                    {"Amount": amount, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}},
                ],
                "TxnTaxDetail": {"TotalTax": ZERO},
                "TotalAmt": amount,
                "Balance": balance,
                "LinkedTxn": linked,
                "BillAddr": addr,
                "ShipAddr": addr,
                "BillEmail": email,
                "EmailStatus": "EmailSent",
                "PrintStatus": "NotSet",
            })
            invoice_created.append(created)
            ar.balance += balance

        # -- card paydowns, opening balances ---------------------------------------------------
        issuer = next(v for v in vendors if v.category == "card_issuer")
        paydowns: list[tuple[dict[str, Any], datetime]] = []
        card_balance = sum(card_monthly.values(), ZERO)
        purchase_id = payment_base + len(payments)
        for month, charged in sorted(card_monthly.items()):
            pay_date = (month + timedelta(days=32)).replace(day=12)
            offset = (pay_date - first_day).days
            if offset >= today_offset:
                continue
            checking_daily[offset] -= charged
            card_balance -= charged
            paydowns.append(({
                "Id": str(purchase_id),
                "TxnDate": pay_date.isoformat(),
                "AccountRef": checking_ref,
                "PaymentType": "Check",
                "EntityRef": {**issuer.ref(), "type": "Vendor"},
                "TotalAmt": charged,
                "CurrencyRef": USD,
                "PrivateNote": f"Card charges of {month.strftime('%B %Y')}",
                "Line": [expense_line(1, card, "Card payment", charged)],
            }, mornings[offset] + timedelta(hours=2)))
            purchase_id += 1
        card.balance = card_balance
        running, lowest = ZERO, ZERO
        for movement in checking_daily:
            running += movement
            lowest = min(lowest, running)
        opening_checking = max(money(rng, 54000, 64000) - running, Decimal("8000.00") - lowest)
        opening_savings = money(rng, 40000, 48000)
        checking.balance = opening_checking + running
        a["savings"].balance = opening_savings
        a["equity"].balance = opening_checking + opening_savings
        equity_ref = a["equity"].ref()
        opening_at = datetime.combine(first_day, time(7, 30), self.tz)
        openings = [
            {"Id": opening_ids[k], "TxnDate": first_day.isoformat(), "DepositToAccountRef": ref,
             "PrivateNote": "Opening balance", "TotalAmt": amount, "CurrencyRef": USD,
             "Line": [{"Id": "1", "LineNum": 1, "Description": "Opening balance", "Amount": amount,
                       "DetailType": "DepositLineDetail",
                       "DepositLineDetail": {"AccountRef": equity_ref}}]}
            for k, (ref, amount) in enumerate(((checking_ref, opening_checking),
                                               (a["savings"].ref(), opening_savings)))
        ]

        # -- load ----------------------------------------------------------------------------------
        insert = realm.load
        insert("CompanyInfo", render_company_info(realm, self.opened_at), created=self.opened_at)
        for account in a.values():
            insert("Account", render_account(account), created=account.created)
        load_lists(realm, self.opened_at, a["wholesale"])
        for vendor in vendors:
            insert("Vendor", render_vendor(vendor), created=vendor.created)
        for customer in customers:
            insert("Customer", render_customer(customer), created=customer.created)
        for k, body in enumerate(openings):
            insert("Deposit", body, created=opening_at + timedelta(minutes=k))
        for body, created in zip(bills, bill_created, strict=True):
            insert("Bill", body, created=created)
        for body, created in zip(invoices, invoice_created, strict=True):
            insert("Invoice", body, created=created)
        for body, created in bill_payments:
            insert("BillPayment", body, created=created)
        for body, created in payments:
            insert("Payment", body, created=created)
        for body, created in paydowns:
            insert("Purchase", body, created=created)


def seed_scaled_company(realm: Realm, *, n: int, seed: int, today: date) -> None:
    """Load a company with n bills and n invoices (and the parties and payments they need)
    into an empty realm, fast: 100,000 + 100,000 in a few seconds."""
    with realm.bulk():
        ScaledCompany(n=n, seed=seed, today=today, tz=realm.tz).load(realm)
