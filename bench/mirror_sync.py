"""Prints what keeping a large company's mirror up to date costs in QuickBooks calls and time.

    .venv/bin/python bench/mirror_sync.py [--scale 100000] [--database-url sqlite+aiosqlite:///...]

The sandbox seeds a scaled company (`SandboxConfig(scale=N)`: N bills and N invoices, with their
vendors, customers, payments, purchases and deposits) and serves it over loopback HTTP. A business
is created for it and its mirror is synced through SmartSyncService (rate limiter, circuit, retries)
at BULK priority, twice:

1. the first sync, which pages through every entity type, against the lower bound of one call per
   1,000 objects per entity type (``count // 1000 + 1``: paging stops at the first short page);
2. an incremental sync after changes made "from outside" through the sandbox's admin API (bills
   edited, invoices deleted, a vendor created), against its lower bound of one CDC call.

The sandbox's own request counter is printed next to the sync's count, so the figure is QuickBooks'
view, not the client's. Figures only: nothing is asserted (the machine is shared). Expect a minute
or two at the default scale; the rate limiter keeps the first sync within QuickBooks' 500 requests
per minute, which at ~210 calls is part of the time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.server import RunningSandbox, start_in_thread
from runway.mirror import MIRRORED_ENTITIES, PAGE_SIZE, MirrorSync, SyncReport
from runway.models import Business
from runway.uow import UnitOfWorkFactory
from sync.backends import MemoryBackend
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import StaticTokenProvider, TokenProvider
from sync.service import SmartSyncService

BUSINESS_ID = "bench-business"


def _requests(running: RunningSandbox) -> dict[str, int]:
    stats = running.sandbox.stats()["requests"]["by_realm"]
    return dict(stats.get(running.sandbox.realm_id, {}))


def _print_report(label: str, report: SyncReport, lower_bound: int, seen: dict[str, int], took: float) -> None:
    print(f"\n{label}")
    print(f"  QuickBooks calls:   {report.qbo_calls}  (lower bound {lower_bound}; sandbox saw {sum(seen.values())}: {seen})")
    print(f"  time:               {took:.1f} s")
    print(f"  rows created/updated/deleted: {report.created} / {report.updated} / {report.deleted}")
    for entity, counts in report.entities.items():
        print(
            f"    {entity:<12} {counts.mode:<4} received {counts.received:>7}  "
            f"+{counts.created} ~{counts.updated} -{counts.deleted}"
            + (f"  ({counts.reason})" if counts.reason else "")
        )


async def _outside_changes(base_url: str, realm_id: str, running: RunningSandbox) -> int:
    """Edits, deletes and a create made through the sandbox's admin API; returns how many."""
    realm = running.sandbox.realm()
    bills = [obj["Id"] for _, obj in zip(range(20), realm.iter("Bill"), strict=False)]
    invoices = [obj["Id"] for _, obj in zip(range(5), realm.iter("Invoice"), strict=False)]
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as admin:
        for bill_id in bills:
            response = await admin.post(
                f"/_sandbox/realms/{realm_id}/edit/Bill/{bill_id}",
                json={"PrivateNote": f"edited outside Oodaloo at {datetime.now(UTC).isoformat()}"},
            )
            response.raise_for_status()
        for invoice_id in invoices:
            response = await admin.delete(f"/_sandbox/realms/{realm_id}/Invoice/{invoice_id}")
            response.raise_for_status()
        response = await admin.post(
            f"/_sandbox/realms/{realm_id}/Vendor", json={"DisplayName": "Bench Vendor", "Active": True}
        )
        response.raise_for_status()
    return len(bills) + len(invoices) + 1


async def run(running: RunningSandbox, database_url: str) -> None:
    sandbox = running.sandbox
    realm = sandbox.realm()
    counts: dict[str, Any] = {entity: realm.count(entity) for entity in MIRRORED_ENTITIES}
    print("company:", ", ".join(f"{entity} {count:,}" for entity, count in counts.items()))

    await upgrade_database(database_url)
    engine = make_engine(database_url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as session:
        session.add(
            Business(
                id=BUSINESS_ID,
                name="Bench company",
                realm_id=sandbox.realm_id,
                timezone="America/Los_Angeles",
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
        settings=SyncSettings(qbo_base_url=running.base_url),
    )
    try:
        mirror = MirrorSync(
            UnitOfWorkFactory(sessions), SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
        )
        sandbox.reset_stats()
        started = time.perf_counter()
        first = await mirror.sync()
        took = time.perf_counter() - started
        lower = sum(count // PAGE_SIZE + 1 for count in counts.values())
        _print_report("first sync (pages everything)", first, lower, _requests(running), took)

        changes = await _outside_changes(running.base_url, sandbox.realm_id, running)
        sandbox.reset_stats()
        started = time.perf_counter()
        second = await mirror.sync()
        took = time.perf_counter() - started
        _print_report(
            f"incremental sync ({changes} objects changed outside Oodaloo)",
            second,
            1,
            _requests(running),
            took,
        )
    finally:
        await infra.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="bills and invoices in the company")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oodaloo-bench-") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'mirror.db'}"
        seeding = time.perf_counter()
        # The HTTP sandbox starts before the event loop: it seeds the company in this thread.
        with start_in_thread(SandboxConfig(scale=args.scale)) as running:
            print(f"sandbox seeded and serving at {running.base_url} in {time.perf_counter() - seeding:.1f} s")
            asyncio.run(run(running, url))


if __name__ == "__main__":
    main()
