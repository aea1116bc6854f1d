"""Prints how long the QBO sandbox's reports take over a large company, next to a bare baseline.

    .venv/bin/python bench/sandbox_reports.py [--scale 100000] [--repeat 3]

Seeds SandboxConfig(scale=N): N bills and N invoices with their payments and deposits. Then:

- baseline: iterating as many dicts as the ledger has postings and adding one Decimal of each,
  the least any report over every posting has to do;
- ledger.postings(): the first call (every transaction posted; the memory it leaves in use is
  printed) and the next ones (each
  transaction's postings kept until it, or a document a payment of it settles, is written again);
- CashFlow, BalanceSheet and AgedPayables through the sandbox's report engine, first and next;
- after one bill payment written through the API's bookkeeping: postings() and the three reports
  again (only what that write touched is posted anew).

Times are the best of --repeat runs; the first call is run once. No figure is asserted: this
machine is shared.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from qbo_sandbox import ledger, reports
from qbo_sandbox.app import create_app
from qbo_sandbox.books import Books
from qbo_sandbox.config import SandboxConfig

REPORTS = (
    ("CashFlow", {"date_macro": "This Year-to-date"}),
    ("BalanceSheet", {"date_macro": "This Fiscal Year-to-date"}),
    ("AgedPayables", {}),
)


def resident_mb() -> float:
    """This process's resident memory now (Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def timed(call: Callable[[], Any], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def line(label: str, seconds: float, baseline: float) -> None:
    print(f"  {label:<44} {seconds * 1000:10.1f} ms   {seconds / baseline:7.1f}x baseline")


def pay_one_bill(books: Books) -> None:
    realm = books.realm
    home = ledger.home_currency(realm)
    bill = next(
        b
        for b in realm.iter("Bill")
        if b.get("Balance") and ledger.currency_of(b, home) == home
    )
    bank = next(a for a in realm.iter("Account") if a.get("AccountType") == "Bank")
    books.create(
        "BillPayment",
        {
            "VendorRef": {"value": bill["VendorRef"]["value"]},
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": {"value": bank["Id"]}},
            "TotalAmt": bill["Balance"],
            "Line": [{"Amount": bill["Balance"], "LinkedTxn": [{"TxnId": bill["Id"], "TxnType": "Bill"}]}],
        },
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    started = time.perf_counter()
    realm = create_app(SandboxConfig(scale=args.scale)).realm()
    transactions = sum(realm.count(entity) for entity in ledger.TRANSACTION_ENTITIES)
    print(f"--scale {args.scale}: {transactions:,} transactions seeded in {time.perf_counter() - started:.1f} s")

    gc.collect()
    before = resident_mb()
    first_postings = timed(lambda: ledger.postings(realm))
    gc.collect()
    kept_mb = resident_mb() - before
    count = len(ledger.postings(realm))
    rows = [{"amount": Decimal(i % 1000) / 100} for i in range(count)]
    gc.collect()

    def bare() -> None:
        total = Decimal(0)
        for row in rows:
            total += row["amount"]

    baseline = timed(bare, args.repeat)
    print(f"baseline: iterating {count:,} dicts and adding a Decimal of each: {baseline * 1000:.1f} ms")
    print("ledger and reports:")
    line("postings(), first call", first_postings, baseline)
    print(f"  {'memory the first call left in use (RSS)':<44} {kept_mb:10.1f} MB")
    line("postings(), next calls", timed(lambda: ledger.postings(realm), args.repeat), baseline)
    for name, params in REPORTS:
        line(f"{name}", timed(lambda n=name, p=params: reports.run_report(realm, n, p), args.repeat), baseline)

    print("after one bill payment written through the API's bookkeeping:")
    pay_one_bill(Books(realm))
    line("postings(), first call after the write", timed(lambda: ledger.postings(realm)), baseline)
    for name, params in REPORTS:
        line(f"{name}", timed(lambda n=name, p=params: reports.run_report(realm, n, p)), baseline)


if __name__ == "__main__":
    main()
