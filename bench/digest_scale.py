"""Prints how long the digest of a large company takes when it reads what it shows, against reading
every open bill and invoice as a row (the baseline), in the same run.

    .venv/bin/python bench/digest_scale.py [--scale 100000] [--runs 5] [--database-url URL]

The sandbox seeds a scaled company (N bills and N invoices, `SandboxConfig(scale=N)`), served
over loopback HTTP from its own process as in `bench/mirror_sync.py`, and its mirror is synced
once; a few bills get workflow state (approved, waiting for a second approver, being paid,
snoozed) and an invoice is snoozed, so both kinds of reads are exercised. Then, each the median
of `--runs`:

- **digest**: the snapshot from the mirror (`load_books`, which counts and sums the plain open
  documents in SQL and reads only the rows the digest shows) and the view model
  (`DigestBuilder.build`): what `bench/mirror_sync.py` times;
- **baseline**: the same with every open bill and invoice read as a row
  (`load_books(..., rows=None)`), the way the digest read them before;
- **`/runway` summary**: its snapshot (counts and totals, no rows), view and Slack message;
- a page of `/runway bills` deep in the list.

It checks that both ways give the same figures (headline, counts, totals, the rows shown, the
13-week view) and prints the ratio. On PostgreSQL the tables are analyzed after the sync, as
autovacuum does soon after a bulk load. `--database-url` (SQLite or PostgreSQL) keeps the mirror there:
a later run against it skips seeding and syncing. Figures only: nothing is asserted about time (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from mirror_sync import BUSINESS_ID, _admin
from sqlalchemy import func, select, text, update

from bot.slack.blocks import bills_page_rows, summary_message
from runway.books import BooksSnapshot, business_today
from runway.digest import DigestBuilder, DigestView
from runway.mirror import MirrorSync
from runway.models import Bill, Business, Invoice
from runway.shown_rows import DIGEST_ROWS, NO_ROWS, ShownRows
from runway.snapshot import load_books
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync.service import SmartSyncService

TZ = "America/Los_Angeles"


def serve_company(scale: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """The sandbox with a scaled company, in its own process; its address and token."""
    server = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "sandbox", "--json", "--port", "0", "--scale", str(scale)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    return server, json.loads(server.stdout.readline())


async def seed_and_sync(live: dict[str, str], database_url: str) -> None:
    """The sandbox company `live` serves, mirrored into `database_url` once."""
    realms = await _admin(live["base_url"], "GET", "/realms")
    objects = next(r for r in realms["realms"] if r["realm_id"] == live["realm_id"])["objects"]
    print(f"company: {objects.get('Bill', 0):,} bills, {objects.get('Invoice', 0):,} invoices")
    engine = make_engine(database_url)
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session:
        session.add(
            Business(
                id=BUSINESS_ID, name="Bench company", realm_id=live["realm_id"], timezone=TZ,
                created_at=now, updated_at=now,
            )
        )
        await session.commit()

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(live["access_token"])

    infra = SyncInfrastructure(
        engine=engine, backend=MemoryBackend(), tokens_for=tokens_for,
        settings=SyncSettings(qbo_base_url=live["base_url"]),
    )
    try:
        started = time.perf_counter()
        await MirrorSync(
            UnitOfWorkFactory(make_sessionmaker(engine)),
            SmartSyncService(infra, BUSINESS_ID, live["realm_id"]),
        ).sync()
        print(f"first sync: {time.perf_counter() - started:.1f} s")
        if engine.dialect.name == "postgresql":
            # What autovacuum does shortly after a bulk load: without it the planner takes the
            # fresh tables for empty (nested loops over thousands of rows).
            async with engine.begin() as connection:
                await connection.execute(text("ANALYZE"))
            print("PostgreSQL: tables analyzed after the sync, as autovacuum would")
    finally:
        await infra.aclose()


async def synced_already(database_url: str) -> bool:
    """The database holds this bench's business (a mirror an earlier run synced)."""
    await upgrade_database(database_url)
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await session.get(Business, BUSINESS_ID) is not None
    finally:
        await engine.dispose()


async def some_workflow(database_url: str, now: datetime) -> None:
    """A few bills approved (one waiting for a second approver), one being paid, one snoozed;
    an overdue invoice snoozed: the documents the Python rules decide."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            ids = list(
                (
                    await session.scalars(
                        select(Bill.qbo_id)
                        .where(Bill.business_id == BUSINESS_ID, Bill.balance > 0)
                        .order_by(Bill.due_date, Bill.qbo_id)
                        .limit(4)
                    )
                ).all()
            )
            state: list[dict[str, Any]] = [
                {"approved_by": "U-OWNER", "approved_at": now},
                {"approved_by": "U-OWNER", "approved_at": now, "second_approved_by": "U-DANA"},
                {"payment_state": "paying", "payment_by": "U-OWNER", "payment_at": now},
                {"snoozed_until": now + timedelta(days=3)},
            ]
            for bill_id, values in zip(ids, state, strict=False):
                await session.execute(
                    update(Bill)
                    .where(Bill.business_id == BUSINESS_ID, Bill.qbo_id == bill_id)
                    .values(**values)
                )
            invoice = await session.scalar(
                select(Invoice.id)
                .where(Invoice.business_id == BUSINESS_ID, Invoice.balance > 0)
                .order_by(Invoice.due_date, Invoice.id)
                .limit(1)
            )
            await session.execute(
                update(Invoice).where(Invoice.id == invoice).values(snoozed_until=now + timedelta(days=2))
            )
            await session.commit()
    finally:
        await engine.dispose()


async def median_time(runs: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(runs):
        started = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def same_figures(fast: DigestView, slow: DigestView) -> bool:
    """The figures and the first rows of each list agree (the fast view holds only those)."""
    return (
        fast.headline == slow.headline
        and fast.cash == slow.cash
        and fast.burn == slow.burn
        and fast.runway == slow.runway
        and fast.forecast == slow.forecast
        and fast.approvals == slow.approvals
        and fast.snoozed_invoices == slow.snoozed_invoices
        and fast.overdue_invoices_amount == slow.overdue_invoices_amount
        and fast.overdue_invoices.total == slow.overdue_invoices.total
        and fast.overdue_invoices.items == slow.overdue_invoices.first(len(fast.overdue_invoices.items))
        and all(
            (a.total, a.left_count, a.left_amount, a.snoozed, a.items)
            == (b.total, b.left_count, b.left_amount, b.snoozed, b.first(len(a.items)))
            for a, b in ((fast.overdue_bills, slow.overdue_bills), (fast.bills_due, slow.bills_due))
        )
    )


async def measure(database_url: str, runs: int) -> None:
    await upgrade_database(database_url)
    now = datetime.now(UTC)
    await some_workflow(database_url, now)
    engine = make_engine(database_url)
    uows = UnitOfWorkFactory(make_sessionmaker(engine))
    today = business_today(now, TZ)
    builder = DigestBuilder()

    async def books(rows: ShownRows | None) -> BooksSnapshot:
        async with uows(BUSINESS_ID) as uow:
            return await load_books(uow, BUSINESS_ID, today, rows=rows)

    async def digest(rows: ShownRows | None) -> DigestView:
        return builder.build(await books(rows), now=now)

    try:
        async with uows(BUSINESS_ID) as uow:
            counts: dict[str, int] = {}
            for model in (Bill, Invoice):
                found = await uow.session.scalar(
                    select(func.count()).where(
                        model.business_id == BUSINESS_ID, model.deleted_at.is_(None), model.balance > 0
                    )
                )
                counts[model.__name__] = found or 0
        print(f"open: {counts['Bill']:,} bills, {counts['Invoice']:,} invoices")
        await digest(DIGEST_ROWS)  # warm the connection pool and caches alike for both
        await digest(None)
        fast_s, fast = await median_time(runs, lambda: digest(DIGEST_ROWS))
        slow_s, slow = await median_time(runs, lambda: digest(None))
        fast_books = await books(DIGEST_ROWS)
        assert fast_books.plain is not None
        read = (
            len(fast_books.open_bills) + len(fast_books.plain.overdue_bills.rows)
            + len(fast_books.plain.bills_due.rows) + len(fast_books.open_invoices)
            + len(fast_books.plain.overdue_invoices.rows)
        )

        async def summary() -> Any:
            return summary_message(await digest(NO_ROWS), business_name="Bench company")

        summary_s, _ = await median_time(runs, summary)
        deep = max(0, fast.bill_count - 20)
        page_s, page = await median_time(runs, lambda: digest(bills_page_rows(deep)))

        print(
            f"\ndigest (snapshot + view model), median of {runs}: {fast_s * 1000:.0f} ms, "
            f"{read} documents read as rows"
        )
        print(
            f"baseline, every open bill and invoice read as a row: {slow_s * 1000:.0f} ms "
            f"({counts['Bill'] + counts['Invoice']:,} rows)"
        )
        print(f"ratio baseline / digest: {slow_s / fast_s:.1f}x")
        print(f"/runway summary (snapshot, view, Slack message): {summary_s * 1000:.0f} ms")
        print(
            f"/runway bills page at {deep:,} of {fast.bill_count:,}: {page_s * 1000:.0f} ms "
            f"({len(page.bills)} rows)"
        )
        print(
            f"same figures both ways: {'yes' if same_figures(fast, slow) else 'NO'} "
            f"(overdue bills {fast.overdue_bills.total:,}, due {fast.bills_due.total:,}, "
            f"overdue invoices {fast.overdue_invoices.total:,} for "
            f"{fast.overdue_invoices_amount:,} {fast.currency}; headline: {fast.headline})"
        )
        assert isinstance(fast.overdue_invoices_amount, Decimal)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="bills and invoices in the company")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (the median is printed)")
    parser.add_argument(
        "--database-url", default=None,
        help="where the mirror is kept; one this bench already synced there is reused "
        "(default: a fresh SQLite file)",
    )
    args = parser.parse_args()

    def run(url: str) -> None:
        if not asyncio.run(synced_already(url)):
            server, live = serve_company(args.scale)
            try:
                asyncio.run(seed_and_sync(live, url))
            finally:
                server.terminate()
                server.wait(timeout=10)
        asyncio.run(measure(url, args.runs))

    if args.database_url:
        run(args.database_url)
        return
    with tempfile.TemporaryDirectory(prefix="oodaloo-bench-") as folder:
        run(f"sqlite+aiosqlite:///{Path(folder) / 'mirror.db'}")


if __name__ == "__main__":
    main()
