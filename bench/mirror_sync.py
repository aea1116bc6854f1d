"""Prints what keeping a large company's mirror up to date costs in QuickBooks calls and time.

    .venv/bin/python bench/mirror_sync.py [--scale 100000] [--database-url sqlite+aiosqlite:///...]
    .venv/bin/python bench/mirror_sync.py --full-books   # every kind of cash movement, a euro supplier

The sandbox seeds a scaled company (`oodaloo sandbox --scale N`, i.e. `SandboxConfig(scale=N)`: N bills
and N invoices, with their vendors, customers, payments, purchases, deposits and whatever else moves
cash in it: sales and refund receipts, transfers, journal entries, credits, card payments) and serves it over
loopback HTTP from its own process, so it does not share this process's interpreter lock. A business
is created for it and its mirror is synced through SmartSyncService (rate limiter, circuit, retries)
at BULK priority, twice:

1. the first sync, which pages through every entity type, against the lower bound of one call per
   1,000 objects per entity type (``count // 1000 + 1``: paging stops at the first short page),
   printed per entity type, plus one exchange-rate read per foreign currency of the bank accounts;
2. an incremental sync after changes made "from outside" through the sandbox's admin API (bills
   edited, invoices deleted, a vendor, a sales receipt and a transfer created), against its lower
   bound of one CDC call.

The sandbox's own request counter is printed next to the sync's count, so the figure is QuickBooks'
view, not the client's, and the time spent inside QuickBooks calls next to the total (pages are
fetched while the previous one is written, so the two overlap).

Oodaloo's own share of the first sync (decoding QuickBooks' JSON, writing rows and cash lines) is
printed on its own, after the digest: the time the sync spent writing pages (summed), then the same
first sync again for another business of the same database with QuickBooks' answers, recorded
during the first, served at once (so all that is left is Oodaloo's work), split into decoding those
answers and the rest. Its lower bound, measured in the same run: decoding the same answers plus a
bare SQLAlchemy Core `executemany` of the very rows the sync wrote (every table, as stored, pages
of 1,000 per transaction) into the same database; the ratio of the two is printed. Most of the incremental sync's time
is the sandbox's: its first CDC after edits re-sorts its change index over every object (about 8 s
at 100,000 bills and invoices; the same CDC asked again answers in milliseconds). Figures only: nothing is asserted (the machine is shared). Expect a minute
or two at the default scale; the rate limiter keeps the first sync within QuickBooks' 500 requests
per minute, which at ~210 calls is part of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import column, insert, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from runway.books import business_today
from runway.db import RunwayBase
from runway.digest import DigestBuilder
from runway.mirror import MIRRORED_ENTITIES, PAGE_SIZE, MirrorSync, SyncReport
from runway.models import Business
from runway.snapshot import load_books
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import QBORawClient, StaticTokenProvider, TokenProvider
from sync.qbo.json import loads
from sync.ratelimit import RateLimitConfig
from sync.service import SmartSyncService

BUSINESS_ID = "bench-business"
#: The first sync again, with QuickBooks' recorded answers served at once.
REPLAY_ID = "bench-replay"
#: The rows the first sync wrote, inserted again by a bare executemany.
FLOOR_ID = "bench-floor"


@dataclass
class _Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _key(request: httpx.Request) -> tuple[str, str, bytes]:
    """A request as its answer is looked up (a query travels in the body)."""
    return request.method, str(request.url), request.content


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Passes requests to the sandbox; while `recording`, keeps each answer to serve it again."""

    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    recording: bool = False
    answers: dict[tuple[str, str, bytes], _Answer] = field(default_factory=dict)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.recording:
            return response
        body = await response.aread()  # decompressed: the copy is served without its encoding
        headers = [
            (name, value) for name, value in response.headers.raw
            if name.lower() not in (b"content-encoding", b"content-length", b"transfer-encoding")
        ]
        self.answers[_key(request)] = _Answer(response.status_code, headers, body)
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Replay(httpx.AsyncBaseTransport):
    """Serves the recorded answers at once: QuickBooks answering in no time."""

    answers: dict[tuple[str, str, bytes], _Answer]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.answers.get(_key(request))
        if answer is None:
            raise RuntimeError(f"no recorded answer for {request.method} {request.url}")
        return httpx.Response(answer.status, headers=answer.headers, content=answer.body, request=request)


async def _admin(base_url: str, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
        response = await http.request(method, f"/_sandbox{path}", json=body)
        response.raise_for_status()
        return response.json() if response.content else None


async def _requests(live: dict[str, str]) -> dict[str, int]:
    stats = await _admin(live["base_url"], "GET", "/stats")
    return dict(stats["requests"]["by_realm"].get(live["realm_id"], {}))


def _print_report(
    label: str, report: SyncReport, lower_bound: int, seen: dict[str, int], took: float
) -> None:
    print(f"\n{label}")
    print(
        f"  QuickBooks calls:   {report.qbo_calls}  (lower bound {lower_bound}; "
        f"the sandbox counted {sum(seen.values())}: {seen})"
    )
    print(f"  of which CDC {report.cdc_calls}, pages {report.page_calls}, exchange rates {report.rate_calls}")
    print(
        f"  time:               {took:.1f} s ({report.qbo_seconds:.1f} s inside QuickBooks calls, "
        f"{report.write_seconds:.1f} s writing the mirror, summed over pages)"
    )
    print(f"  rows created/updated/deleted: {report.created} / {report.updated} / {report.deleted}")
    for entity, counts in report.entities.items():
        print(
            f"    {entity:<20} {counts.mode:<4} received {counts.received:>7}  "
            f"+{counts.created} ~{counts.updated} -{counts.deleted}"
            + (f"  ({counts.reason})" if counts.reason else "")
        )


async def _outside_changes(live: dict[str, str]) -> int:
    """Edits, deletes and a create made through the sandbox's admin API; returns how many."""
    realm_id = live["realm_id"]
    async with QBORawClient(
        "bench-setup", realm_id, base_url=live["base_url"],
        tokens=StaticTokenProvider(live["access_token"]),
    ) as client:
        bills = (await client.query_page("SELECT * FROM Bill MAXRESULTS 20")).get("Bill", [])
        invoices = (await client.query_page("SELECT * FROM Invoice MAXRESULTS 5")).get("Invoice", [])
    stamp = datetime.now(UTC).isoformat()
    for bill in bills:
        await _admin(
            live["base_url"], "POST", f"/realms/{realm_id}/edit/Bill/{bill['Id']}",
            {"PrivateNote": f"edited outside Oodaloo at {stamp}"},
        )
    for invoice in invoices:
        await _admin(live["base_url"], "DELETE", f"/realms/{realm_id}/Invoice/{invoice['Id']}")
    await _admin(
        live["base_url"], "POST", f"/realms/{realm_id}/Vendor",
        {"DisplayName": "Bench Vendor", "Active": True},
    )
    async with QBORawClient(
        "bench-setup", realm_id, base_url=live["base_url"],
        tokens=StaticTokenProvider(live["access_token"]),
    ) as client:
        banks = await client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
    day = datetime.now(UTC).date().isoformat()
    await _admin(
        live["base_url"], "POST", f"/realms/{realm_id}/SalesReceipt",
        {"TxnDate": day, "DepositToAccountRef": {"value": banks[0]["Id"]}, "TotalAmt": 412.5,
         "Line": [{"Amount": 412.5, "DetailType": "SalesItemLineDetail",
                   "SalesItemLineDetail": {}}]},
    )
    await _admin(
        live["base_url"], "POST", f"/realms/{realm_id}/Transfer",
        {"TxnDate": day, "FromAccountRef": {"value": banks[0]["Id"]},
         "ToAccountRef": {"value": banks[-1]["Id"]}, "Amount": 1000},
    )
    return len(bills) + len(invoices) + 3


async def run(live: dict[str, str], database_url: str) -> None:
    realms = await _admin(live["base_url"], "GET", "/realms")
    objects = next(r for r in realms["realms"] if r["realm_id"] == live["realm_id"])["objects"]
    counts = {entity: int(objects.get(entity, 0)) for entity in MIRRORED_ENTITIES}
    print("company:", ", ".join(f"{entity} {count:,}" for entity, count in counts.items()))

    await upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    books_tz = "America/Los_Angeles"
    async with sessions() as session:
        for business_id in (BUSINESS_ID, REPLAY_ID, FLOOR_ID):
            session.add(
                Business(
                    id=business_id,
                    name="Bench company",
                    # One business per QuickBooks company: the copies name none.
                    realm_id=live["realm_id"] if business_id == BUSINESS_ID else None,
                    timezone="America/Los_Angeles",
                    created_at=now,
                    updated_at=now,
                )
            )
        await session.commit()

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(live["access_token"])

    recorder = Recorder()
    infra = SyncInfrastructure(
        engine=engine,
        backend=MemoryBackend(),
        tokens_for=tokens_for,
        settings=SyncSettings(qbo_base_url=live["base_url"]),
        transport=recorder,
    )
    try:
        mirror = MirrorSync(
            UnitOfWorkFactory(sessions), SmartSyncService(infra, BUSINESS_ID, live["realm_id"])
        )
        await _admin(live["base_url"], "DELETE", "/stats")
        recorder.recording = True
        started, cpu = time.perf_counter(), time.process_time()
        first = await mirror.sync()
        first_took, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        recorder.recording = False
        pages = {entity: count // PAGE_SIZE + 1 for entity, count in counts.items()}
        lower = sum(pages.values()) + first.rate_calls
        print("\nlower bound of the first sync, per entity type (pages of 1,000):")
        print("  " + ", ".join(f"{entity} {n}" for entity, n in pages.items()))
        _print_report("first sync (pages everything)", first, lower, await _requests(live), first_took)
        print(f"  Oodaloo's process used {first_cpu:.1f} s of CPU meanwhile (the sandbox runs in its own)")

        changes = await _outside_changes(live)
        await _admin(live["base_url"], "DELETE", "/stats")
        started = time.perf_counter()
        second = await mirror.sync()
        took = time.perf_counter() - started
        _print_report(
            f"incremental sync ({changes} objects changed outside Oodaloo)",
            second,
            1,
            await _requests(live),
            took,
        )

        # The weekly digest from the mirror: snapshot from the database, then the view model.
        started = time.perf_counter()
        async with UnitOfWorkFactory(sessions)(BUSINESS_ID) as uow:
            books = await load_books(uow, BUSINESS_ID, business_today(datetime.now(UTC), books_tz))
        loaded = time.perf_counter() - started
        view = DigestBuilder().build(books, now=datetime.now(UTC))
        built = time.perf_counter() - started - loaded
        print(f"\ndigest of the company: {loaded + built:.2f} s "
              f"(snapshot from the mirror {loaded:.2f} s, view model {built:.3f} s); "
              f"{view.bill_count:,} bills to pay and {view.overdue_invoices.total:,} overdue "
              f"invoices listed (the plain ones counted and summed in SQL), "
              f"{sum(m.count for m in books.movements):,} cash movements; "
              f"headline: {view.headline}")

        # Last, so the copies below leave the figures above as they were; without the books
        # held meanwhile, so the replay runs with as little in memory as the first sync did.
        del books, view
        await _own_share(live, engine, sessions, recorder.answers, first, first_took)
    finally:
        await infra.aclose()


async def _own_share(
    live: dict[str, str],
    engine: AsyncEngine,
    sessions: Any,
    answers: dict[tuple[str, str, bytes], _Answer],
    first: SyncReport,
    took: float,
) -> None:
    """Oodaloo's own share of the first sync (decoding, writing) against its lower bound."""
    replay_infra = SyncInfrastructure(
        engine=engine,
        backend=MemoryBackend(),
        tokens_for=lambda realm_id: StaticTokenProvider(live["access_token"]),
        # QuickBooks' rate limit is QuickBooks' share of the time, not Oodaloo's.
        settings=SyncSettings(
            qbo_base_url=live["base_url"],
            rate_limit=RateLimitConfig(requests_per_window=1_000_000),
        ),
        transport=Replay(answers),
        owns_engine=False,
    )
    try:
        replay = MirrorSync(
            UnitOfWorkFactory(sessions), SmartSyncService(replay_infra, REPLAY_ID, live["realm_id"])
        )
        started, cpu = time.perf_counter(), time.process_time()
        replayed = await replay.sync()
        replay_took, replay_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await replay_infra.aclose()
    assert replayed.created == first.created, (replayed.summary(), first.summary())

    bodies = [answer.body for answer in answers.values()]
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        loads(body)
    decoding, decoding_cpu = time.perf_counter() - started, time.process_time() - cpu

    cpu = time.process_time()
    rows, bare = await _bare_insert(engine, BUSINESS_ID, FLOOR_ID)
    bare_cpu = time.process_time() - cpu
    floor, floor_cpu = decoding + bare, decoding_cpu + bare_cpu
    megabytes = sum(len(body) for body in bodies) / 1e6
    print("\nOodaloo's own share of the first sync (decoding QuickBooks' JSON, writing the mirror)")
    print(f"  during the first sync:  writing {first.write_seconds:.1f} s summed over pages, "
          f"overlapping the next page's fetch ({took:.1f} s in all, {first.qbo_seconds:.1f} s inside "
          f"QuickBooks calls)")
    print(f"  the same sync replayed, QuickBooks answering at once: {replay_took:.1f} s "
          f"({replay_cpu:.1f} s CPU): decoding {decoding:.1f} s ({len(bodies)} answers, "
          f"{megabytes:.0f} MB), the rest {replay_took - decoding:.1f} s "
          f"(writing {replayed.write_seconds:.1f} s)")
    print(f"  lower bound:            {floor:.1f} s ({floor_cpu:.1f} s CPU): decoding the same answers "
          f"{decoding:.1f} s + a bare executemany of the same {rows:,} rows {bare:.1f} s "
          f"(SQLAlchemy Core, pages of {PAGE_SIZE:,}, same database)")
    # CPU too: on a shared machine the wall-clock ratio moves with whatever else runs.
    print(f"  own share / lower bound: {replay_took / floor:.2f}x ({replay_cpu / floor_cpu:.2f}x in CPU)")
    calls = max(first.qbo_calls, 1)
    print(f"  a page: Oodaloo {replay_took / calls * 1000:.0f} ms (decoding and writing), QuickBooks "
          f"{(first.qbo_seconds - decoding) / calls * 1000:.0f} ms (inside its call, decoding left out)")


async def _bare_insert(engine: AsyncEngine, source: str, target: str) -> tuple[int, float]:
    """Every row the sync wrote for business `source` (each runway table, values as stored),
    inserted again for `target` by a bare Core executemany, a transaction per page; returns the
    number of rows and the seconds the inserts took (reading the rows out is not counted)."""
    copies: list[tuple[Any, list[dict[str, Any]]]] = []
    async with engine.connect() as connection:
        for mirrored in RunwayBase.metadata.sorted_tables:
            if "business_id" not in mirrored.c or mirrored.name == "businesses":
                continue
            names = [c.name for c in mirrored.c if not (c.primary_key and c.name == "id")]
            # Untyped columns: the values go in exactly as the database handed them out.
            bare = table(mirrored.name, *(column(name) for name in names))
            result = await connection.execute(select(bare).where(column("business_id") == source))
            rows = [{**row._mapping, "business_id": target} for row in result]
            if rows:
                copies.append((bare, rows))
    started = time.perf_counter()
    for bare, rows in copies:
        for start in range(0, len(rows), PAGE_SIZE):
            async with engine.begin() as connection:
                await connection.execute(insert(bare), rows[start : start + PAGE_SIZE])
    return sum(len(rows) for _, rows in copies), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="bills and invoices in the company")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument(
        "--full-books",
        action="store_true",
        help="instead of a scaled company, the default one with every kind of cash movement "
        "(sales receipts, owner money, a loan, transfers, journal entries, card payments, a "
        "vendor credit) and a euro supplier (multicurrency on)",
    )
    args = parser.parse_args()
    seeding = time.perf_counter()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "bot.cli", "sandbox", "--json", "--port", "0",
            *(["--full-books", "--euro-supplier"] if args.full_books else ["--scale", str(args.scale)]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        live = json.loads(server.stdout.readline())
        print(f"sandbox seeded and serving at {live['base_url']} in {time.perf_counter() - seeding:.1f} s")
        with tempfile.TemporaryDirectory(prefix="oodaloo-bench-") as folder:
            url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'mirror.db'}"
            asyncio.run(run(live, url))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
