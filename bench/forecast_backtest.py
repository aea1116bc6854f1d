"""How far off was the 13-week view? A forecast made 13 weeks ago on the seeded company, against what
its bank balances did week by week since.

    .venv/bin/python bench/forecast_backtest.py [--seed 7] [--weeks-ago 13] [--origins 13-26]

The sandbox seeds its company (a year of history up to yesterday, a pure function of the seed and
today) in this process; Oodaloo mirrors it into a fresh SQLite database through SmartSyncService,
as for a real company, and `runway.snapshot.load_books` reads the mirror. The books *as they stood
on day D* (`books_as_of`) are then that snapshot cut at D:

* bank balances at the start of D: the sandbox's general ledger up to D − 1;
* bills and invoices dated before D with their balances on D (less what payments dated before D
  applied to them), so a bill paid after D is open, and one entered after D does not exist;
* cash movements dated before D (the window behind the baseline), in the mirror's classification;
* customers' paying habits from the invoices they had paid in full before D.

The forecast made from those books (`runway.forecast.thirteen_week_forecast`) is compared, week by
week, with the sum of the bank balances at the end of each week in the ledger. Beside it, in the
same run: the rule before the baseline counted bill spending and income (open bills and invoices on
their dates, plus only the spending that never was a bill), and a straight line at the trailing net
burn. Error = forecast − actual (positive: the forecast promised more cash than there was).

`--origins` runs the same from each of several starting weeks (13 to 26 weeks ago by default) and
prints each one's mean absolute and week-13 errors, so one lucky or unlucky quarter does not decide.
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from statistics import median
from typing import Any

import httpx

from qbo_sandbox import ledger
from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.store import Realm
from runway.books import (
    BooksSnapshot,
    CashFlowClass,
    CustomerPayHistory,
    MovementKind,
    OpenBill,
    OpenInvoice,
)
from runway.calculator import DEFAULT_WINDOW_DAYS, RunwayCalculator, cents
from runway.forecast import WEEKS, thirteen_week_forecast
from runway.mirror import MirrorSync
from runway.models import Business
from runway.snapshot import DEFAULT_HISTORY_DAYS, load_books
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync.service import SmartSyncService

BUSINESS_ID = "backtest-business"
ZERO = Decimal("0.00")


def _amount(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def _ref(value: Any) -> str | None:
    return str(value["value"]) if isinstance(value, Mapping) and value.get("value") else None


def applied_before(
    realm: Realm, entity: str, linked_type: str, day: date
) -> dict[str, list[tuple[date, Decimal]]]:
    """Document id -> (date, amount) of each `entity` line (a BillPayment or a Payment) dated
    before `day` that applied money to a `linked_type` document."""
    applied: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for payment in realm.iter(entity):
        paid_on = _day(payment.get("TxnDate"))
        if paid_on is None or paid_on >= day:
            continue
        for line in payment.get("Line") or []:
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") == linked_type:
                    applied[str(link["TxnId"])].append((paid_on, _amount(line.get("Amount", 0))))
    return applied


def _open_on(
    realm: Realm, entity: str, paid_by: str, day: date
) -> Iterator[tuple[dict[str, Any], date, Decimal, Decimal]]:
    """(document, its date, total, balance) of each `entity` dated before `day` with money still
    open at its start, what `paid_by` payments dated before it applied taken off."""
    paid = applied_before(realm, paid_by, entity, day)
    for doc in realm.iter(entity):
        dated = _day(doc.get("TxnDate"))
        if dated is None or dated >= day:
            continue
        total = _amount(doc["TotalAmt"])
        balance = total - sum((amount for _, amount in paid.get(str(doc["Id"]), ())), ZERO)
        if balance > 0:
            yield doc, dated, total, balance


def bills_open_on(realm: Realm, day: date) -> tuple[OpenBill, ...]:
    """Bills dated before `day` with money still owed at its start."""
    out = []
    for bill, dated, total, balance in _open_on(realm, "Bill", "BillPayment", day):
        vendor = bill.get("VendorRef") or {}
        out.append(
            OpenBill(
                id=str(bill["Id"]),
                vendor_id=_ref(vendor),
                vendor_name=str(vendor.get("name", "")),
                amount=total,
                balance=balance,
                due_date=_day(bill.get("DueDate")),
                txn_date=dated,
                doc_number=bill.get("DocNumber"),
            )
        )
    return tuple(out)


def invoices_open_on(realm: Realm, day: date) -> tuple[OpenInvoice, ...]:
    """Invoices dated before `day` with money still to collect at its start."""
    out = []
    for invoice, dated, total, balance in _open_on(realm, "Invoice", "Payment", day):
        customer = invoice.get("CustomerRef") or {}
        out.append(
            OpenInvoice(
                id=str(invoice["Id"]),
                customer_id=_ref(customer),
                customer_name=str(customer.get("name", "")),
                amount=total,
                balance=balance,
                due_date=_day(invoice.get("DueDate")),
                txn_date=dated,
                doc_number=invoice.get("DocNumber"),
            )
        )
    return tuple(out)


def pay_histories_on(
    realm: Realm, day: date, history_days: int = DEFAULT_HISTORY_DAYS
) -> tuple[CustomerPayHistory, ...]:
    """Each customer's typical days late as `runway.snapshot` reckons it (the median, over the
    invoices paid in full, of the days from the due date to the last payment, rounded half up),
    from the payments dated in the `history_days` before `day` alone."""
    first = day - timedelta(days=history_days)
    paid = applied_before(realm, "Payment", "Invoice", day)
    lateness: dict[str, list[int]] = defaultdict(list)
    for invoice in realm.iter("Invoice"):
        payments = paid.get(str(invoice["Id"]))
        due = _day(invoice.get("DueDate"))
        customer = _ref(invoice.get("CustomerRef"))
        if not payments or due is None or customer is None:
            continue
        if sum((amount for _, amount in payments), ZERO) < _amount(invoice["TotalAmt"]):
            continue  # still open on `day`: not a finished payment
        last = max(paid_on for paid_on, _ in payments)
        if last >= first:
            lateness[customer].append((last - due).days)
    return tuple(
        CustomerPayHistory(
            customer,
            int(Decimal(str(median(days))).to_integral_value(rounding=ROUND_HALF_UP)),
            len(days),
        )
        for customer, days in sorted(lateness.items())
    )


def bank_balances_on(realm: Realm, day: date) -> dict[str, Decimal]:
    """Bank account id -> balance at the end of `day`, from the sandbox's general ledger."""
    debit = ledger.balances(realm, as_of=day)
    return {
        str(account["Id"]): debit.get(str(account["Id"]), ZERO)
        for account in realm.iter("Account")
        if account.get("AccountType") == "Bank"
    }


def books_as_of(books: BooksSnapshot, realm: Realm, day: date) -> BooksSnapshot:
    """`books` (read today, with movements reaching back far enough) as they stood at the start
    of `day`: nothing dated on or after it, balances as they were."""
    opening = bank_balances_on(realm, day - timedelta(days=1))
    return replace(
        books,
        today=day,
        banks=tuple(
            replace(bank, balance=opening.get(bank.account_id, ZERO)) for bank in books.banks
        ),
        open_bills=bills_open_on(realm, day),
        shown_bills=(),
        open_invoices=invoices_open_on(realm, day),
        movements=tuple(movement for movement in books.movements if movement.date < day),
        pay_histories=pay_histories_on(realm, day),
    )


# --- the rules compared ---------------------------------------------------------------------


def old_rule(books: BooksSnapshot, window_days: int = DEFAULT_WINDOW_DAYS) -> list[Decimal]:
    """Week-end balances by the rule before this one: open bills and invoices on their dates, plus
    only the spending that never was a bill (no bill spend, no income) as the weekly baseline."""
    spent = sum(
        (
            -movement.amount
            for movement in RunwayCalculator(window_days).in_window(books)
            if movement.amount < 0
            and movement.kind is not MovementKind.BILL_PAYMENT
            and movement.cash_flow is not CashFlowClass.TRANSFER
        ),
        ZERO,
    )
    baseline = cents(spent * 7 / window_days)
    balance = RunwayCalculator(window_days).cash_on_hand(books).total
    out = []
    for week in thirteen_week_forecast(books, window_days=window_days).weeks:
        balance += week.invoice_inflows - week.bill_outflows - baseline
        out.append(balance)
    return out


def straight_line(books: BooksSnapshot, window_days: int = DEFAULT_WINDOW_DAYS) -> list[Decimal]:
    """Week-end balances falling by the trailing net burn (`RunwayCalculator`), nothing else."""
    calculator = RunwayCalculator(window_days)
    burn = calculator.burn(books)
    cash = calculator.cash_on_hand(books).total
    return [cents(cash - burn.net * 7 * week / window_days) for week in range(1, WEEKS + 1)]


@dataclass(frozen=True)
class Run:
    origin: date
    actual: list[Decimal]
    rules: dict[str, list[Decimal]]

    def errors(self, rule: str) -> list[Decimal]:
        return [f - a for f, a in zip(self.rules[rule], self.actual, strict=True)]

    def mean_absolute_error(self, rule: str) -> Decimal:
        errors = self.errors(rule)
        return cents(sum((abs(e) for e in errors), ZERO) / len(errors))

    def mean_error(self, rule: str) -> Decimal:
        errors = self.errors(rule)
        return cents(sum(errors, ZERO) / len(errors))


RULES = ("forecast", "old rule", "net burn line")


def backtest(books: BooksSnapshot, realm: Realm, origin: date) -> Run:
    then = books_as_of(books, realm, origin)
    forecast = thirteen_week_forecast(then)
    actual = [sum(bank_balances_on(realm, week.end).values(), ZERO) for week in forecast.weeks]
    return Run(
        origin,
        actual,
        {
            "forecast": [week.ending_balance for week in forecast.weeks],
            "old rule": old_rule(then),
            "net burn line": straight_line(then),
        },
    )


# --- reading the seeded company ---------------------------------------------------------------


async def mirrored_books(
    sandbox: Sandbox, folder: str, today: date, reach_days: int
) -> BooksSnapshot:
    """The seeded company mirrored into SQLite, read by `load_books` with movements reaching
    `reach_days` back."""
    url = f"sqlite+aiosqlite:///{Path(folder) / 'mirror.db'}"
    await upgrade_database(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    tz = str(sandbox.tz_for(sandbox.realm_id))
    async with sessions() as session:
        session.add(
            Business(
                id=BUSINESS_ID,
                name="Backtest company",
                realm_id=sandbox.realm_id,
                timezone=tz,
                created_at=now,
                updated_at=now,
            )
        )
        await session.commit()

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(sandbox.access_token)

    infra = SyncInfrastructure(
        engine=engine,
        backend=MemoryBackend(),
        tokens_for=tokens_for,
        settings=SyncSettings(qbo_base_url=sandbox.base_url),
        transport=httpx.ASGITransport(app=sandbox.app),
    )
    try:
        uows = UnitOfWorkFactory(sessions)
        await MirrorSync(uows, SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)).sync()
        async with uows(BUSINESS_ID) as uow:
            # Every open document as a row: `books_as_of` puts those open on a past day instead.
            return await load_books(uow, BUSINESS_ID, today, movement_days=reach_days, rows=None)
    finally:
        await infra.aclose()


def money(amount: Decimal) -> str:
    return f"{amount:>13,.2f}"


def print_run(run: Run) -> None:
    print(f"\nforecast made on {run.origin:%a %Y-%m-%d} (the books as they stood that morning)")
    header = f"{'week':>4}  {'ends':>10}  {'actual':>13}"
    for rule in RULES:
        header += f"  {rule:>13}  {'error':>13}"
    print(header)
    for index, actual in enumerate(run.actual):
        end = run.origin + timedelta(days=7 * index + 6)
        row = f"{index + 1:>4}  {end:%Y-%m-%d}  {money(actual)}"
        for rule in RULES:
            row += f"  {money(run.rules[rule][index])}  {money(run.errors(rule)[index])}"
        print(row)
    print()
    for rule in RULES:
        print(
            f"  {rule:<14} mean absolute error {money(run.mean_absolute_error(rule))}   "
            f"week-13 error {money(run.errors(rule)[-1])}   "
            f"mean error {money(run.mean_error(rule))}"
        )


def origins_from(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


async def main(seed: int, weeks_ago: int, origins: list[int]) -> None:
    sandbox = create_app(SandboxConfig(seed=seed))
    realm = sandbox.realm()
    today = sandbox.clock.now().astimezone(sandbox.tz_for(sandbox.realm_id)).date()
    furthest = max([weeks_ago, *origins])
    reach = 7 * furthest + DEFAULT_WINDOW_DAYS + 7
    with tempfile.TemporaryDirectory(prefix="oodaloo-backtest-") as folder:
        books = await mirrored_books(sandbox, folder, today, reach)
    print(f"seeded company (seed {seed}) as of {today}; {sum(m.count for m in books.movements)} cash movements read")
    now = books_as_of(books, realm, today)
    print(
        f"the view made today ends week 13 at {money(thirteen_week_forecast(now).ending_balance)}"
        f" (old rule {money(old_rule(now)[-1])}, net burn line {money(straight_line(now)[-1])})"
    )
    print_run(backtest(books, realm, today - timedelta(days=7 * weeks_ago)))

    if origins:
        print(
            f"\nfrom each of {len(origins)} starting weeks ({origins[0]} to {origins[-1]} weeks ago):"
        )
        print(
            f"{'start':>10}  "
            + "  ".join(f"{rule + ' MAE':>17}  {'wk-13 err':>13}" for rule in RULES)
        )
        runs = [backtest(books, realm, today - timedelta(days=7 * ago)) for ago in origins]
        for run in runs:
            print(
                f"{run.origin:%Y-%m-%d}  "
                + "  ".join(
                    f"{money(run.mean_absolute_error(rule)):>17}  {money(run.errors(rule)[-1])}"
                    for rule in RULES
                )
            )
        for rule in RULES:
            maes = [run.mean_absolute_error(rule) for run in runs]
            week13 = [abs(run.errors(rule)[-1]) for run in runs]
            bias = [run.mean_error(rule) for run in runs]
            print(
                f"  {rule:<14} average MAE {money(cents(sum(maes, ZERO) / len(runs)))}   "
                f"average |week-13 error| {money(cents(sum(week13, ZERO) / len(runs)))}   "
                f"average error {money(cents(sum(bias, ZERO) / len(runs)))}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--weeks-ago", type=int, default=WEEKS, help="the detailed run's start")
    parser.add_argument(
        "--origins",
        default="13-26",
        help="starting weeks for the summary, e.g. 13-26 ('' for none)",
    )
    arguments = parser.parse_args()
    origins = origins_from(arguments.origins) if arguments.origins else []
    asyncio.run(main(arguments.seed, arguments.weeks_ago, origins))
