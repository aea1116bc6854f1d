"""Prints what SmartSyncService costs on top of QBORawClient, and how well the limiter uses the budget.

    .venv/bin/python bench/sync_overhead.py [--calls 40] [--latency-ms 50]
        [--database-url sqlite+aiosqlite:///...] [--redis-url redis://...]

1. Orchestration overhead: the same read (an account by id) and the same kind of write (paying a
   fresh bill) through QBORawClient alone and through SmartSyncService (limiter, circuit, retry, and
   for the write the action ledger: record, claim, mark), against one live sandbox over loopback
   HTTP answering after a fixed latency (50 ms, about what QuickBooks takes). Raw and orchestrated
   calls alternate so machine noise hits both alike; printed per call and as a ratio.
2. Limiter utilisation under a backlog: the sandbox's limit scaled to 100 requests per 1-second
   window, the same numbers given to the limiter; a backlog of bulk reads; printed: grants per
   window against the bulk class's cap, the sandbox's 429 count, and how long clicks issued during
   the backlog waited.

Figures only: nothing is asserted (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.server import RunningSandbox, start_in_thread
from sync.actions import BillPaymentIntent
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import QBORawClient, StaticTokenProvider, TokenProvider
from sync.ratelimit import Priority, RateLimitConfig
from sync.service import SmartSyncService

BUSINESS_ID = "bench-business"


async def _admin(base_url: str, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        response = await http.request(method, f"/_sandbox{path}", json=body)
        response.raise_for_status()
        return response.json()


async def _infrastructure(
    running: RunningSandbox, database_url: str, redis_url: str | None, settings: SyncSettings
) -> SyncInfrastructure:
    token = running.sandbox.access_token

    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(token)

    return await SyncInfrastructure.create(
        database_url,
        redis_url,
        tokens_for=tokens_for,
        settings=SyncSettings(**{**settings.__dict__, "qbo_base_url": running.base_url}),
        redis_prefix=f"oodaloo-bench:{uuid.uuid4().hex[:8]}",
    )


async def _bills(client: QBORawClient, count: int) -> list[dict[str, Any]]:
    vendor = (await client.query("SELECT * FROM Vendor"))[0]
    expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
    created = []
    for index in range(count):
        created.append(
            await client.create(
                "Bill",
                {
                    "VendorRef": {"value": vendor["Id"]},
                    "DueDate": (date.today() + timedelta(days=10)).isoformat(),
                    "Line": [
                        {
                            "Amount": Decimal("100.00") + index,
                            "DetailType": "AccountBasedExpenseLineDetail",
                            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense["Id"]}},
                        }
                    ],
                },
                request_id=f"bench-bill-{uuid.uuid4().hex[:16]}",
            )
        )
    return created


async def _alternate(
    raw: Callable[[int], Awaitable[None]], orchestrated: Callable[[int], Awaitable[None]], n: int
) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternation."""
    raw_times: list[float] = []
    orchestrated_times: list[float] = []
    for i in range(n):
        for call, times in ((raw, raw_times), (orchestrated, orchestrated_times)):
            started = time.perf_counter()
            await call(i)
            times.append(time.perf_counter() - started)
    return statistics.median(raw_times), statistics.median(orchestrated_times)


def _line(label: str, raw: float, orchestrated: float, note: str = "") -> str:
    return (
        f"  {label:<22} raw {raw * 1000:6.1f} ms   SmartSyncService {orchestrated * 1000:6.1f} ms   "
        f"ratio {orchestrated / raw:5.3f} (+{(orchestrated - raw) * 1000:.1f} ms){note}"
    )


async def overhead(database_url: str, redis_url: str | None, calls: int, latency_ms: int) -> None:
    with start_in_thread(SandboxConfig()) as running:
        sandbox = running.sandbox
        await _admin(running.base_url, "PUT", "/faults", {"default": {"latency": {"fixed_ms": latency_ms}}})
        settings = SyncSettings(
            rate_limit=RateLimitConfig(requests_per_window=100_000, window_seconds=60.0, max_concurrency=10)
        )
        infra = await _infrastructure(running, database_url, redis_url, settings)
        raw = QBORawClient(
            BUSINESS_ID,
            sandbox.realm_id,
            base_url=running.base_url,
            tokens=StaticTokenProvider(sandbox.access_token),
        )
        try:
            service = SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
            bank = (await raw.query("SELECT * FROM Account WHERE AccountType = 'Bank'"))[0]["Id"]
            bills = await _bills(raw, 2 * calls)
            await raw.get("Account", bank)  # warm both connection pools
            await service.execute_qbo_call("get", "Account", bank)

            async def raw_read(i: int) -> None:
                await raw.get("Account", bank)

            async def orchestrated_read(i: int) -> None:
                await service.execute_qbo_call("get", "Account", bank)

            async def raw_write(i: int) -> None:
                bill = bills[2 * i]
                body = _intent(sandbox.realm_id, bill, bank).body()
                await raw.create("BillPayment", body, request_id=f"bench-{uuid.uuid4().hex[:20]}")

            async def orchestrated_write(i: int) -> None:
                outcome = await service.create_payment_immediate(
                    _intent(sandbox.realm_id, bills[2 * i + 1], bank)
                )
                if not outcome.succeeded:
                    raise RuntimeError(f"the benchmark payment did not go through: {outcome.message}")

            read = await _alternate(raw_read, orchestrated_read, calls)
            write = await _alternate(raw_write, orchestrated_write, calls)
        finally:
            await raw.aclose()
            await infra.aclose()
        where = "Redis" if redis_url else "in-process"
        print(
            f"Orchestration overhead per call (sandbox latency {latency_ms} ms, loopback HTTP, "
            f"{infra.engine.dialect.name} + {where} backends, median of {calls})"
        )
        print(_line("read: account by id", *read))
        print(_line("write: pay a bill", *write, note="  [ledger record + claim + mark]"))


def _intent(realm_id: str, bill: dict[str, Any], bank: str) -> BillPaymentIntent:
    return BillPaymentIntent(
        business_id=BUSINESS_ID,
        realm_id=realm_id,
        bill_id=str(bill["Id"]),
        bill_sync_token=str(bill["SyncToken"]),
        vendor_id=str(bill["VendorRef"]["value"]),
        amount=bill["Balance"],
        bank_account_id=bank,
        pay_date=date.today(),
        requested_by="bench",
    )


async def backlog(
    database_url: str, redis_url: str | None, backlog_size: int, bulk_share: float | None = None
) -> None:
    window, per_window, concurrency = 1.0, 100, 10
    # With bulk_share 0.95 bulk may use nearly the whole QuickBooks limit: the second run shows why the
    # default shares keep headroom (arrival jitter then pushes QuickBooks' own count over its limit).
    shares = dict(RateLimitConfig().shares)
    if bulk_share is not None:
        shares[Priority.BULK] = bulk_share
    with start_in_thread(SandboxConfig()) as running:
        sandbox = running.sandbox
        await _admin(
            running.base_url,
            "PUT",
            "/limits",
            {"requests_per_minute": per_window, "window_seconds": window, "max_concurrent": concurrency},
        )
        await _admin(running.base_url, "PUT", "/faults", {"default": {"latency": {"fixed_ms": 5}}})
        await _admin(running.base_url, "DELETE", "/stats")
        settings = SyncSettings(
            rate_limit=RateLimitConfig(
                requests_per_window=per_window,
                window_seconds=window,
                max_concurrency=concurrency,
                shares=shares,
            ),
            slot_timeouts={p: 120.0 for p in Priority},
        )
        infra = await _infrastructure(running, database_url, redis_url, settings)
        try:
            service = SmartSyncService(infra, BUSINESS_ID, sandbox.realm_id)
            done: list[float] = []
            click_waits: list[float] = []

            async def bulk(i: int) -> None:
                await service.execute_qbo_call("get", "Account", "2", priority=Priority.BULK)
                done.append(time.perf_counter())

            async def clicks() -> None:
                await asyncio.sleep(window * 1.5)
                for _ in range(10):
                    started = time.perf_counter()
                    await service.execute_qbo_call("get", "Account", "3", priority=Priority.USER_ACTION)
                    click_waits.append(time.perf_counter() - started)
                    await asyncio.sleep(window / 5)

            started = time.perf_counter()
            await asyncio.gather(*(bulk(i) for i in range(backlog_size)), clicks())
            elapsed = time.perf_counter() - started
        finally:
            await infra.aclose()
        stats = await _admin(running.base_url, "GET", "/stats")
        cap, _ = settings.rate_limit.caps(Priority.BULK)
        first = min(done)
        full_windows = int((max(done) - first) // window)
        per_window_counts = [
            sum(1 for t in done if first + k * window <= t < first + (k + 1) * window)
            for k in range(1, full_windows)
        ]
        steady = statistics.mean(per_window_counts) if per_window_counts else float("nan")
        print(
            f"Limiter under a backlog ({per_window} requests / {window:g} s window, {concurrency} "
            f"concurrent, same numbers in the sandbox; bulk share {cap} per window)"
        )
        print(
            f"  {backlog_size} bulk reads in {elapsed:.2f} s: {steady:.1f} granted per window in the "
            f"steady state (cap {cap}: {steady / cap:.1%} of the bulk share, {steady / per_window:.1%} "
            f"of the QuickBooks limit), sandbox 429s: "
            f"{stats['throttled_total']}"
        )
        print(
            f"  {len(click_waits)} clicks during the backlog: median {statistics.median(click_waits) * 1000:.1f} ms, "
            f"max {max(click_waits) * 1000:.1f} ms from issue to answer"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=400)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temp folder")
    parser.add_argument("--redis-url", default=None, help="default: in-process backends")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oodaloo-bench-") as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await overhead(database_url, args.redis_url, args.calls, args.latency_ms)
        print()
        await backlog(database_url, args.redis_url, args.backlog)
        print()
        await backlog(database_url, args.redis_url, args.backlog, bulk_share=0.95)


if __name__ == "__main__":
    asyncio.run(main())
