"""The sandbox's seeded companies: deterministic, coherent books that look like a real small business.

Every check reads the company back from the real store (and, for names, through its query engine)
and recomputes what QuickBooks would: the ledger behind each account balance, the open amount of
each bill and invoice, the aging of receivables.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from qbo_sandbox.seed import (
    DEFAULT_SEED,
    realm_id_for,
    seed_default_company,
    seed_scaled_company,
)
from qbo_sandbox.store import ENTITIES, Realm, Store

TODAY = date(2026, 3, 2)
TXN_ENTITIES = ("Bill", "BillPayment", "Invoice", "Payment", "Purchase", "Deposit")
# A bill's LinkedTxn says how it was paid; the object is a BillPayment either way.
LINKED_ENTITY = {
    "Bill": "Bill",
    "Invoice": "Invoice",
    "Payment": "Payment",
    "Deposit": "Deposit",
    "BillPaymentCheck": "BillPayment",
    "BillPaymentCreditCard": "BillPayment",
}


def default_realm(seed: int = DEFAULT_SEED, today: date = TODAY) -> Realm:
    realm = Store().create_realm(realm_id_for(seed))
    seed_default_company(realm, seed=seed, today=today)
    return realm


def scaled_realm(n: int, seed: int = DEFAULT_SEED, today: date = TODAY) -> Realm:
    realm = Store().create_realm(realm_id_for(seed))
    seed_scaled_company(realm, n=n, seed=seed, today=today)
    return realm


def everything(realm: Realm) -> dict[str, list[dict[str, Any]]]:
    return {entity: list(realm.iter(entity)) for entity in ENTITIES}


def by_id(realm: Realm, entity: str) -> dict[str, dict[str, Any]]:
    return {obj["Id"]: obj for obj in realm.iter(entity)}


def detail_lines(txn: dict[str, Any]) -> list[dict[str, Any]]:
    """Lines that carry money: everything but an invoice's subtotal line."""
    return [line for line in txn["Line"] if line.get("DetailType") != "SubTotalLineDetail"]


def lines_total(txn: dict[str, Any]) -> Decimal:
    return sum((line["Amount"] for line in detail_lines(txn)), Decimal(0))


def days_overdue(txn: dict[str, Any], today: date) -> int:
    return (today - date.fromisoformat(txn["DueDate"])).days


@pytest.fixture(scope="module")
def company() -> Realm:
    return default_realm()


# -- identity and determinism ------------------------------------------------------------------


def test_realm_ids_are_sixteen_digits_and_stable_per_seed() -> None:
    ids = {seed: realm_id_for(seed) for seed in range(50)}
    assert all(len(rid) == 16 and rid.isdigit() for rid in ids.values())
    assert realm_id_for(DEFAULT_SEED) == ids[DEFAULT_SEED]
    assert len(set(ids.values())) == 50


def test_same_seed_and_day_seed_identical_companies(company: Realm) -> None:
    assert everything(default_realm()) == everything(company)


def test_another_seed_or_another_day_seeds_a_different_company(company: Realm) -> None:
    bills = [(b["VendorRef"]["name"], b["TotalAmt"]) for b in company.iter("Bill")]
    other_seed = [(b["VendorRef"]["name"], b["TotalAmt"]) for b in default_realm(seed=8).iter("Bill")]
    assert other_seed != bills
    later = default_realm(today=TODAY + timedelta(days=10))
    assert max(b["TxnDate"] for b in later.iter("Bill")) > max(b["TxnDate"] for b in company.iter("Bill"))


def test_scaled_company_is_deterministic() -> None:
    assert everything(scaled_realm(300)) == everything(scaled_realm(300))
    assert everything(scaled_realm(300, seed=3)) != everything(scaled_realm(300))


# -- what the company looks like ------------------------------------------------------------


def test_company_info_has_the_fields_clients_read(company: Realm) -> None:
    info = company.get("CompanyInfo", "1")
    assert info is not None
    assert info["CompanyName"] and info["LegalName"]
    assert info["Country"] == "US"
    assert info["DefaultTimeZone"] == "America/Los_Angeles"
    assert info["FiscalYearStartMonth"] == "January"
    assert {"City", "PostalCode", "Line1"} <= set(info["CompanyAddr"])
    assert date.fromisoformat(info["CompanyStartDate"]) < TODAY - timedelta(days=365)
    assert {nv["Name"] for nv in info["NameValue"]} >= {"IndustryType", "SubscriptionStatus", "OfferingSku"}


def test_chart_of_accounts(company: Realm) -> None:
    accounts = list(company.iter("Account"))
    types = [a["AccountType"] for a in accounts]
    banks = {a["AccountSubType"] for a in accounts if a["AccountType"] == "Bank"}
    assert banks == {"Checking", "Savings"}
    assert types.count("Credit Card") == 1
    assert types.count("Accounts Payable") == 1 and types.count("Accounts Receivable") == 1
    assert any(a["AccountSubType"] == "UndepositedFunds" for a in accounts)
    assert types.count("Income") >= 2
    expenses = {a["Name"] for a in accounts if a["AccountType"] == "Expense"}
    assert {"Rent or Lease", "Payroll Expenses", "Software & Subscriptions", "Utilities", "Insurance"} <= expenses
    assert any(a["AccountType"] == "Cost of Goods Sold" for a in accounts)


def test_about_forty_vendors_and_sixty_customers(company: Realm) -> None:
    assert company.count("Vendor") == 40
    assert company.count("Customer") == 60
    names = [v["DisplayName"] for v in company.iter("Vendor")] + [
        c["DisplayName"] for c in company.iter("Customer")
    ]
    assert len(set(names)) == len(names), "QBO display names are unique across vendors and customers"


@pytest.mark.parametrize("entity", ["Vendor", "Customer"])
def test_names_that_break_careless_code_are_present(company: Realm, entity: str) -> None:
    names = [obj["DisplayName"] for obj in company.iter(entity)]
    assert any("'" in n for n in names)
    assert any("&" in n for n in names)
    assert any("<" in n for n in names)
    assert any('"' in n for n in names)
    assert any(not n.isascii() for n in names)


def test_tricky_names_are_found_by_the_query_engine(company: Realm) -> None:
    for name in ("O'Brien Equipment Repair", "Bits <& Bytes> LLC", "Łódź Imports", 'Freddie "Fast Wheels" Courier'):
        escaped = name.replace("'", "\\'")
        [vendor] = company.query(f"SELECT * FROM Vendor WHERE DisplayName = '{escaped}'")["Vendor"]
        bills = company.query(f"SELECT * FROM Bill WHERE VendorRef = '{vendor['Id']}'").get("Bill", [])
        assert bills and all(b["VendorRef"]["name"] == name for b in bills)
    [cafe] = company.query("SELECT * FROM Customer WHERE DisplayName = 'Café Müller'")["Customer"]
    assert company.query(f"SELECT COUNT(*) FROM Invoice WHERE CustomerRef = '{cafe['Id']}'")["totalCount"] > 0


def test_a_year_of_every_kind_of_transaction(company: Realm) -> None:
    for entity in TXN_ENTITIES:
        dates = [date.fromisoformat(t["TxnDate"]) for t in company.iter(entity)]
        assert dates, entity
        assert min(dates) >= TODAY - timedelta(days=365), entity
        assert max(dates) < TODAY, f"{entity}: nothing is dated today or later"
    pay_types = {bp["PayType"] for bp in company.iter("BillPayment")}
    assert pay_types == {"Check", "CreditCard"}
    purchase_types = {p["PaymentType"] for p in company.iter("Purchase")}
    assert {"CreditCard", "Cash"} <= purchase_types


def test_monthly_recurring_bills_and_irregular_materials(company: Realm) -> None:
    months_by_vendor: dict[str, set[str]] = defaultdict(set)
    for bill in company.iter("Bill"):
        months_by_vendor[bill["VendorRef"]["name"]].add(bill["TxnDate"][:7])
    for vendor in ("Wood Street Properties LLC", "Harbor Payroll Services", "PG&E", "Shopify"):
        assert len(months_by_vendor[vendor]) >= 11, vendor
    green = [b for b in company.iter("Bill") if b["Line"][0]["AccountBasedExpenseLineDetail"]["AccountRef"]["name"] == "Green Coffee"]
    amounts = {b["TotalAmt"] for b in green}
    assert len(green) >= 30 and len(amounts) > len(green) // 2, "materials vary in size and timing"


def test_terms_set_due_dates(company: Realm) -> None:
    for bill in list(company.iter("Bill")) + list(company.iter("Invoice")):
        days = int(bill["SalesTermRef"]["name"].removeprefix("Net "))
        assert days in (15, 30, 60)
        assert date.fromisoformat(bill["DueDate"]) - date.fromisoformat(bill["TxnDate"]) == timedelta(days=days)


def test_invoices_are_seasonal(company: Realm) -> None:
    by_month: dict[int, Decimal] = defaultdict(Decimal)
    for invoice in company.iter("Invoice"):
        by_month[int(invoice["TxnDate"][5:7])] += invoice["TotalAmt"]
    assert by_month[12] > Decimal("1.2") * by_month[7], "holiday orders outsell high summer"


def test_metadata_times_are_the_transaction_dates_in_business_hours(company: Realm) -> None:
    tz = company.tz
    now = datetime.now(tz)
    for entity in TXN_ENTITIES:
        for txn in company.iter(entity):
            created = datetime.fromisoformat(txn["MetaData"]["CreateTime"])
            updated = datetime.fromisoformat(txn["MetaData"]["LastUpdatedTime"])
            local = created.astimezone(tz)
            assert local.date().isoformat() == txn["TxnDate"], (entity, txn["Id"])
            assert 6 <= local.hour <= 19, (entity, txn["Id"])
            assert created.utcoffset() == local.utcoffset(), "rendered in the company's zone"
            assert created <= updated <= now
            assert int(txn["SyncToken"]) == 0 or updated > created


def test_ids_follow_creation_order(company: Realm) -> None:
    created = []
    for entity in ("Account", "Vendor", "Customer", *TXN_ENTITIES):
        created += [(int(o["Id"]), datetime.fromisoformat(o["MetaData"]["CreateTime"])) for o in company.iter(entity)]
    created.sort()
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(created))


# -- coherence -----------------------------------------------------------------------------


def ledger(realm: Realm) -> dict[str, Decimal]:
    """Each balance-sheet account's balance recomputed by double entry from every transaction,
    positive on its natural side (debit for assets, credit for liabilities and equity)."""
    accounts = by_id(realm, "Account")
    payments = by_id(realm, "Payment")
    ar = next(a["Id"] for a in accounts.values() if a["AccountType"] == "Accounts Receivable")
    ap = next(a["Id"] for a in accounts.values() if a["AccountType"] == "Accounts Payable")
    debit: dict[str, Decimal] = defaultdict(Decimal)
    for bill in realm.iter("Bill"):
        for line in bill["Line"]:
            debit[line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]] += line["Amount"]
        debit[bill["APAccountRef"]["value"]] -= bill["TotalAmt"]
    for bp in realm.iter("BillPayment"):
        debit[ap] += bp["TotalAmt"]
        source = bp["CheckPayment"]["BankAccountRef"] if bp["PayType"] == "Check" else bp["CreditCardPayment"]["CCAccountRef"]
        debit[source["value"]] -= bp["TotalAmt"]
    for invoice in realm.iter("Invoice"):
        debit[ar] += invoice["TotalAmt"]  # income accounts carry no CurrentBalance
    for payment in payments.values():
        debit[payment["DepositToAccountRef"]["value"]] += payment["TotalAmt"]
        debit[ar] -= payment["TotalAmt"]
    for deposit in realm.iter("Deposit"):
        debit[deposit["DepositToAccountRef"]["value"]] += deposit["TotalAmt"]
        for line in deposit["Line"]:
            if "LinkedTxn" in line:  # a payment leaving Undeposited Funds for the bank
                paid = payments[line["LinkedTxn"][0]["TxnId"]]
                debit[paid["DepositToAccountRef"]["value"]] -= line["Amount"]
            else:
                debit[line["DepositLineDetail"]["AccountRef"]["value"]] -= line["Amount"]
    for purchase in realm.iter("Purchase"):
        sign = -1 if purchase.get("Credit") else 1
        debit[purchase["AccountRef"]["value"]] -= sign * purchase["TotalAmt"]
        for line in purchase["Line"]:
            debit[line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"]] += sign * line["Amount"]
    balances = {}
    for account_id, account in accounts.items():
        if account["Classification"] == "Asset":
            balances[account_id] = debit[account_id]
        elif account["Classification"] in ("Liability", "Equity"):
            balances[account_id] = -debit[account_id]
        else:
            balances[account_id] = Decimal(0)
    return balances


def check_amounts_are_cents(obj: Any, where: str) -> None:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("Amount", "TotalAmt", "Balance", "CurrentBalance", "UnitPrice", "UnappliedAmt"):
                assert isinstance(value, Decimal), f"{where}.{key} is {type(value).__name__}"
                assert value.as_tuple().exponent == -2, f"{where}.{key} = {value} is not in cents"
            check_amounts_are_cents(value, f"{where}.{key}")
    elif isinstance(obj, list):
        for item in obj:
            check_amounts_are_cents(item, where)


def check_refs(realm: Realm) -> None:
    """Every reference resolves to an object of the right type, under the name it is shown with."""
    objects = {entity: by_id(realm, entity) for entity in ENTITIES}
    accounts, vendors, customers = objects["Account"], objects["Vendor"], objects["Customer"]

    def points_at(ref: dict[str, str], table: dict[str, dict[str, Any]], name_field: str, where: str) -> dict[str, Any]:
        assert ref["value"] in table, f"{where} -> {ref} does not exist"
        target = table[ref["value"]]
        assert ref["name"] == target[name_field], f"{where} -> {ref} names {target[name_field]!r}"
        return target

    for entity in TXN_ENTITIES:
        for txn in objects[entity].values():
            where = f"{entity} {txn['Id']}"
            if "VendorRef" in txn:
                points_at(txn["VendorRef"], vendors, "DisplayName", where)
            if "CustomerRef" in txn:
                points_at(txn["CustomerRef"], customers, "DisplayName", where)
            if "EntityRef" in txn:
                assert txn["EntityRef"]["type"] == "Vendor"
                points_at(txn["EntityRef"], vendors, "DisplayName", where)
            for key, account_type in (("APAccountRef", "Accounts Payable"), ("AccountRef", None), ("DepositToAccountRef", None)):
                if key in txn:
                    target = points_at(txn[key], accounts, "Name", where)
                    assert account_type is None or target["AccountType"] == account_type
            if "CheckPayment" in txn:
                assert points_at(txn["CheckPayment"]["BankAccountRef"], accounts, "Name", where)["AccountType"] == "Bank"
            if "CreditCardPayment" in txn:
                assert points_at(txn["CreditCardPayment"]["CCAccountRef"], accounts, "Name", where)["AccountType"] == "Credit Card"
            for line in txn["Line"]:
                for detail in ("AccountBasedExpenseLineDetail", "DepositLineDetail"):
                    if detail in line:
                        points_at(line[detail]["AccountRef"], accounts, "Name", where)
                for linked in line.get("LinkedTxn", []):
                    assert linked["TxnId"] in objects[LINKED_ENTITY[linked["TxnType"]]], where
            for linked in txn.get("LinkedTxn", []):
                assert linked["TxnId"] in objects[LINKED_ENTITY[linked["TxnType"]]], where


def check_open_amounts(realm: Realm) -> None:
    """Balance = TotalAmt - what was paid on it, and the links agree in both directions."""
    for doc_entity, pay_entity in (("Bill", "BillPayment"), ("Invoice", "Payment")):
        paid: dict[str, Decimal] = defaultdict(Decimal)
        payers: dict[str, set[str]] = defaultdict(set)
        for payment in realm.iter(pay_entity):
            for line in payment["Line"]:
                [link] = line["LinkedTxn"]
                assert link["TxnType"] == doc_entity
                paid[link["TxnId"]] += line["Amount"]
                payers[link["TxnId"]].add(payment["Id"])
        for doc in realm.iter(doc_entity):
            assert doc["Balance"] == doc["TotalAmt"] - paid[doc["Id"]], f"{doc_entity} {doc['Id']}"
            assert Decimal(0) <= doc["Balance"] <= doc["TotalAmt"]
            assert {link["TxnId"] for link in doc["LinkedTxn"]} == payers[doc["Id"]]
    bill_payments = by_id(realm, "BillPayment")
    for bill in realm.iter("Bill"):
        for link in bill["LinkedTxn"]:
            expected = "BillPaymentCheck" if bill_payments[link["TxnId"]]["PayType"] == "Check" else "BillPaymentCreditCard"
            assert link["TxnType"] == expected


def check_coherent(realm: Realm) -> None:
    for entity in TXN_ENTITIES:
        for txn in realm.iter(entity):
            assert txn["TotalAmt"] == lines_total(txn), f"{entity} {txn['Id']}"
            check_amounts_are_cents(txn, f"{entity} {txn['Id']}")
    for invoice in realm.iter("Invoice"):
        [subtotal] = [line for line in invoice["Line"] if line["DetailType"] == "SubTotalLineDetail"]
        assert subtotal["Amount"] == invoice["TotalAmt"]
        for line in detail_lines(invoice):
            detail = line["SalesItemLineDetail"]
            assert line["Amount"] == detail["UnitPrice"] * detail["Qty"]
    check_open_amounts(realm)
    check_refs(realm)
    expected = ledger(realm)
    for account in realm.iter("Account"):
        check_amounts_are_cents(account, account["Name"])
        assert account["CurrentBalance"] == expected[account["Id"]], account["Name"]
    for vendor_or_customer, doc_entity, ref in (("Vendor", "Bill", "VendorRef"), ("Customer", "Invoice", "CustomerRef")):
        open_by_party: dict[str, Decimal] = defaultdict(Decimal)
        for doc in realm.iter(doc_entity):
            open_by_party[doc[ref]["value"]] += doc["Balance"]
        for party in realm.iter(vendor_or_customer):
            assert party["Balance"] == open_by_party[party["Id"]], party["DisplayName"]


def test_default_company_books_are_coherent(company: Realm) -> None:
    check_coherent(company)


def test_scaled_company_books_are_coherent() -> None:
    check_coherent(scaled_realm(1500))


@pytest.mark.parametrize("corrupt", ["bill balance", "account balance", "dangling vendor", "line total"])
def test_the_coherence_checks_catch_broken_books(corrupt: str) -> None:
    """The checks above are only worth something if a single wrong cent fails them."""
    realm = scaled_realm(200)
    open_id = next(b["Id"] for b in realm.iter("Bill") if b["Balance"] > 0)
    bill = realm.get("Bill", open_id)
    assert bill is not None
    if corrupt == "bill balance":
        bill["Balance"] -= Decimal("0.01")
        realm.put("Bill", bill)
    elif corrupt == "dangling vendor":
        bill["VendorRef"] = {"value": "999999", "name": bill["VendorRef"]["name"]}
        realm.put("Bill", bill)
    elif corrupt == "line total":
        bill["Line"][0]["Amount"] += Decimal("0.01")
        realm.put("Bill", bill)
    else:
        checking = next(a for a in realm.iter("Account") if a["Name"] == "Checking")
        realm.put("Account", {**checking, "CurrentBalance": checking["CurrentBalance"] + Decimal("0.01")})
    with pytest.raises(AssertionError):
        check_coherent(realm)


def test_bank_balances_never_go_negative_and_undeposited_checks_reach_the_bank(company: Realm) -> None:
    checking = next(a for a in company.iter("Account") if a["Name"] == "Checking")
    moves: list[tuple[str, Decimal]] = []
    for d in company.iter("Deposit"):
        if d["DepositToAccountRef"]["value"] == checking["Id"]:
            moves.append((d["TxnDate"], d["TotalAmt"]))
    for p in company.iter("Payment"):
        if p["DepositToAccountRef"]["value"] == checking["Id"]:
            moves.append((p["TxnDate"], p["TotalAmt"]))
        elif p["TxnDate"] < (TODAY - timedelta(days=8)).isoformat():
            assert p["LinkedTxn"][0]["TxnType"] == "Deposit", "checks are banked every Friday"
    for bp in company.iter("BillPayment"):
        if bp["PayType"] == "Check":
            moves.append((bp["TxnDate"], -bp["TotalAmt"]))
    for purchase in company.iter("Purchase"):
        if purchase["AccountRef"]["value"] == checking["Id"]:
            moves.append((purchase["TxnDate"], -purchase["TotalAmt"]))
    running = Decimal(0)
    for day in sorted({d for d, _ in moves}):
        running += sum((amount for d, amount in moves if d == day), Decimal(0))
        assert running > 0, f"checking overdrawn on {day}"
    assert running == checking["CurrentBalance"]


# -- what the digest will show ----------------------------------------------------------------

SEEDS_AND_DAYS = [
    (DEFAULT_SEED, TODAY),
    (1, date(2025, 12, 31)),
    (2, date(2026, 3, 8)),  # the day clocks change in California
    (3, date(2024, 2, 29)),
    (4, date(2026, 7, 15)),
]


@pytest.mark.parametrize(("seed", "today"), SEEDS_AND_DAYS)
def test_bills_due_this_week_and_bills_overdue(seed: int, today: date) -> None:
    realm = company_for(seed, today)
    open_bills = [b for b in realm.iter("Bill") if b["Balance"] > 0]
    due_this_week = [b for b in open_bills if -7 <= days_overdue(b, today) <= 0]
    overdue = [b for b in open_bills if days_overdue(b, today) > 0]
    assert len(due_this_week) >= 3
    assert len(overdue) >= 3
    assert any(Decimal(0) < b["Balance"] < b["TotalAmt"] for b in overdue), "one bill was part paid"


@pytest.mark.parametrize(("seed", "today"), SEEDS_AND_DAYS)
def test_overdue_invoices_in_every_aging_bucket(seed: int, today: date) -> None:
    realm = company_for(seed, today)
    buckets: dict[str, int] = defaultdict(int)
    for invoice in realm.iter("Invoice"):
        late = days_overdue(invoice, today)
        if invoice["Balance"] > 0 and late > 0:
            label = "1-15" if late <= 15 else "16-30" if late <= 30 else "31-60" if late <= 60 else "61-90" if late <= 90 else "90+"
            buckets[label] += 1
    assert set(buckets) == {"1-15", "16-30", "31-60", "61-90", "90+"}, dict(buckets)
    assert all(count >= 2 for count in buckets.values()), dict(buckets)
    partly_paid = [i for i in realm.iter("Invoice") if Decimal(0) < i["Balance"] < i["TotalAmt"]]
    assert partly_paid, "some customers pay in instalments"


@pytest.mark.parametrize(("seed", "today"), SEEDS_AND_DAYS)
def test_a_few_months_of_runway(seed: int, today: date) -> None:
    """Cash in the tens of thousands, burning a few tens of thousands a month: 3-6 months."""
    realm = company_for(seed, today)
    cash = sum((a["CurrentBalance"] for a in realm.iter("Account") if a["AccountType"] == "Bank"), Decimal(0))
    since = (today - timedelta(days=90)).isoformat()
    # Money that left the bank in the last three months: checks to vendors and debits.
    spent = sum((bp["TotalAmt"] for bp in realm.iter("BillPayment") if bp["PayType"] == "Check" and bp["TxnDate"] >= since), Decimal(0))
    spent += sum((p["TotalAmt"] for p in realm.iter("Purchase") if p["PaymentType"] != "CreditCard" and p["TxnDate"] >= since), Decimal(0))
    monthly_burn = spent / 3
    assert Decimal(10_000) <= cash < Decimal(100_000) * 2
    assert Decimal(15_000) <= monthly_burn <= Decimal(60_000)
    assert 3 <= cash / monthly_burn <= 6, f"cash {cash}, burn {monthly_burn:.2f}/month"


_COMPANIES: dict[tuple[int, date], Realm] = {}


def company_for(seed: int, today: date) -> Realm:
    if (seed, today) not in _COMPANIES:
        _COMPANIES[(seed, today)] = default_realm(seed, today)
    return _COMPANIES[(seed, today)]


# -- scale -----------------------------------------------------------------------------------


def test_seeding_a_scaled_company_of_twenty_thousand() -> None:
    store = Store()
    realm = store.create_realm(realm_id_for(DEFAULT_SEED))
    started = time.perf_counter()
    seed_scaled_company(realm, n=20_000, seed=DEFAULT_SEED, today=TODAY)
    elapsed = time.perf_counter() - started
    total = sum(realm.count(entity) for entity in ENTITIES)
    print(f"\nseeded a scaled company of 20,000 bills + 20,000 invoices ({total:,} objects) in {elapsed:.2f} s")
    assert realm.count("Bill") == realm.count("Invoice") == 20_000
    assert 0 < realm.count("BillPayment") < 20_000 and 0 < realm.count("Payment") < 20_000
    assert realm.count("Vendor") >= 40 and realm.count("Customer") >= 200
    page = realm.query("SELECT * FROM Bill WHERE Balance > '0' ORDERBY DueDate STARTPOSITION 1 MAXRESULTS 1000")
    assert 0 < len(page["Bill"]) <= 1000
    assert page["Bill"][0]["DueDate"] <= page["Bill"][-1]["DueDate"]
