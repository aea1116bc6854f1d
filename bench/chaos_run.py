"""Prints the summary of a large chaos run: many payments while QuickBooks misbehaves.

    .venv/bin/python bench/chaos_run.py [--actions 200] [--companies 1] [--workers 3] [--seed N]
        [--database-url postgresql+asyncpg://...] [--redis-url redis://...]

Without --seed, the run draws its own and prints it (give it back to replay the run). With
--companies K, the actions are spread over K businesses, each its own QuickBooks company with its
own rate limit (500 requests a minute), all paid at once by the same workers.

The sandbox runs in a process of its own (QuickBooks is a remote service: it does not share the
workers' interpreter), over loopback HTTP, with a seeded FaultPlan (5xx, 429, latency, hangs ended by the
client's timeout, writes applied whose answer is lost). Several workers (infrastructures sharing one
database and backend, as processes would) pay every bill at once; a share of the clicks arrive
twice, some at two workers at the same moment; a few workers are killed while their request is on
the wire. Then reconciliation sweeps run (every worker sweeping) until nothing is due.

Printed: actions and submissions, faults injected by kind, first answers by state, and the checks
that matter: duplicates (payments in QuickBooks carrying the same action's marker more than once),
missing payments, ledger states disagreeing with QuickBooks, actions not final, QuickBooks calls per
payment, and the time from "faults off" to "all settled" against two lower bounds set by each
company's rate limit: for the calls actually spent, and for one call per payment still unsettled
when the faults stopped (the busiest company decides; companies are paid in parallel).
Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from itertools import zip_longest
from pathlib import Path
from typing import Any

import httpx

from sync.actions import ActionOutcome, BillPaymentIntent, markers_in
from sync.backends import MemoryBackend, backend_from_url
from sync.circuit import CircuitConfig
from sync.db import upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.ledger import ActionState
from sync.qbo import QBORawClient, StaticTokenProvider, TokenProvider
from sync.ratelimit import Priority, RateLimitConfig
from sync.reconcile import Reconciler
from sync.service import SmartSyncService

FINAL = {ActionState.SUCCEEDED, ActionState.FAILED, ActionState.NEEDS_HUMAN}
#: The suite's database fixtures (a fresh PostgreSQL schema per run).
TEST_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "sync"


class OffsetClock:
    """Real time plus an offset moved forward to expire leases and cool circuits without waiting."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC) + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset.total_seconds()


def fault_plan(seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "by_kind": {
            "write": {
                "rate_5xx": 0.12,
                "rate_429": 0.02,
                "rate_hang": 0.05,
                "rate_lost": 0.25,
                "latency": {"min_ms": 5, "max_ms": 60},
            },
            "query": {"rate_5xx": 0.08, "rate_hang": 0.02, "latency": {"min_ms": 2, "max_ms": 30}},
            "read": {"rate_5xx": 0.08, "rate_hang": 0.02, "latency": {"min_ms": 2, "max_ms": 30}},
        },
        "hang_seconds": 30.0,
        "retry_after_seconds": 1,
    }


#: QuickBooks down: every request answered 503.
OUTAGE: dict[str, Any] = {
    "by_kind": {kind: {"rate_5xx": 1.0} for kind in ("write", "query", "read")},
}


class Sweepers:
    """Reconciliation processes, started and ready before QuickBooks is well again."""

    def __init__(self, jobs: list[SweeperJob]) -> None:
        context = multiprocessing.get_context("spawn")
        self.go = context.Event()
        self.results: Any = context.Queue()
        self.readies = [context.Event() for _ in jobs]
        self.processes = [
            context.Process(target=sweeper_process, args=(job, ready, self.go, self.results))
            for job, ready in zip(jobs, self.readies, strict=True)
        ]
        for process in self.processes:
            process.start()

    async def wait_ready(self) -> None:
        for ready in self.readies:
            if not await asyncio.to_thread(ready.wait, 120):
                raise RuntimeError("a reconciliation process did not start within 2 minutes")

    async def run(self) -> Counter[str]:
        """Let them sweep; the totals of their metrics once every action is final."""
        self.go.set()
        totals: Counter[str] = Counter()
        for _ in self.processes:
            totals.update(await asyncio.to_thread(self.results.get))
        for process in self.processes:
            await asyncio.to_thread(process.join)
        return totals


def _start_sweepers(
    args: argparse.Namespace, database_url: str, prefix: str, base: str, tokens: dict[str, str]
) -> Sweepers:
    jobs = [
        SweeperJob(database_url, args.redis_url, prefix, base, dict(tokens), f"sweeper-{n}")
        for n in range(args.sweepers)
    ]
    return Sweepers(jobs)


async def _admin(base_url: str, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=base_url, timeout=30.0) as http:
        response = await http.request(method, f"/_sandbox{path}", json=body)
        response.raise_for_status()
        return response.json()


async def _create_bills(client: QBORawClient, amounts: list[Decimal]) -> list[dict[str, Any]]:
    vendors = await client.query("SELECT * FROM Vendor")
    expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
    gate = asyncio.Semaphore(8)

    async def one(index: int, amount: Decimal) -> dict[str, Any]:
        async with gate:
            return await client.create(
                "Bill",
                {
                    "VendorRef": {"value": vendors[index % len(vendors)]["Id"]},
                    "DueDate": (date.today() + timedelta(days=7)).isoformat(),
                    "Line": [
                        {
                            "Amount": amount,
                            "DetailType": "AccountBasedExpenseLineDetail",
                            "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense["Id"]}},
                        }
                    ],
                },
                request_id=f"chaos-bill-{uuid.uuid4().hex[:16]}",
            )

    return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(amounts))))


def quiet_logs() -> None:
    """Every injected fault logs a warning (and the sandbox a traceback): they would drown the summary."""
    logging.getLogger("sync").setLevel(logging.ERROR)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


@dataclass(frozen=True)
class Company:
    business_id: str
    realm_id: str
    token: str
    bank_account_id: str
    bills: list[dict[str, Any]]


@contextlib.contextmanager
def sandbox_process(seed: int) -> Iterator[dict[str, Any]]:
    """`oodaloo sandbox` in a process of its own; yields its connection details."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qbo_sandbox.cli", "--port", "0", "--json", "--seed", str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # each injected fault logs a traceback there
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the QuickBooks sandbox did not start (exit code {process.wait()})")
        yield dict(json.loads(line))
    finally:
        process.terminate()
        process.wait(timeout=30)


def _client(base: str, realm_id: str, token: str) -> QBORawClient:
    return QBORawClient("chaos-bench", realm_id, base_url=base, tokens=StaticTokenProvider(token))


async def _companies(
    details: dict[str, Any], base: str, args: argparse.Namespace, rng: random.Random
) -> list[Company]:
    """The businesses of the run, each its own QuickBooks company with its share of the bills."""
    tokens = [(str(details["realm_id"]), str(details["access_token"]))]
    for _ in range(args.companies - 1):
        added = await _admin(base, "POST", "/realms", {})
        tokens.append((str(added["realm_id"]), str(added["access_token"])))
    shares = [args.actions // args.companies + (i < args.actions % args.companies) for i in range(args.companies)]
    companies = []
    for index, ((realm_id, token), share) in enumerate(zip(tokens, shares, strict=True)):
        async with _client(base, realm_id, token) as setup:
            amounts = [Decimal(rng.randrange(1_000, 900_000)) / 100 for _ in range(share)]
            bills = await _create_bills(setup, amounts)
            bank = (await setup.query("SELECT * FROM Account WHERE AccountType = 'Bank'"))[0]["Id"]
        companies.append(Company(f"chaos-business-{index}", realm_id, token, bank, bills))
    return companies


async def _payments(base: str, companies: list[Company]) -> int:
    """BillPayments in the companies' books."""
    total = 0
    for company in companies:
        async with _client(base, company.realm_id, company.token) as reader:
            total += await reader.count("BillPayment")
    return total


def _requests(stats: dict[str, Any], realm_ids: Collection[str]) -> dict[str, int]:
    """QuickBooks requests the sandbox counted so far, by company."""
    by_realm = stats["requests"]["by_realm"]
    return {realm: sum(by_realm.get(realm, {}).values()) for realm in realm_ids}


def bench_settings(base: str) -> SyncSettings:
    """QuickBooks' limits as they are; waits, leases and cool-downs ten times shorter."""
    settings = SyncSettings(
        qbo_base_url=base,
        rate_limit=RateLimitConfig(requests_per_window=500, window_seconds=60.0, max_concurrency=10),
        circuit=CircuitConfig(failure_threshold=8, cooldown_seconds=5.0),
        http_timeout=httpx.Timeout(0.5, connect=2.0, pool=10.0),
    ).scaled(0.1)
    return replace(
        settings,
        slot_timeouts={Priority.USER_ACTION: 3.0, Priority.DATA_FETCH: 1.0, Priority.BULK: 1.0},
        attempt_timeouts={p: 1.0 for p in Priority},
    )


@dataclass(frozen=True)
class SweeperJob:
    """What a reconciliation process needs: where everything is, and who it is."""

    database_url: str
    redis_url: str
    prefix: str
    base: str
    tokens: dict[str, str]
    worker_id: str


def sweeper_process(job: SweeperJob, ready: Any, go: Any, results: Any) -> None:
    """A worker process of its own that sweeps until every action is final (as `oodaloo worker`
    processes do, each on its own core); puts its metrics' totals on `results`."""
    quiet_logs()
    results.put(asyncio.run(_sweep_until_all_final(job, ready, go)))


async def _sweep_until_all_final(job: SweeperJob, ready: Any, go: Any) -> dict[str, int]:
    clock = OffsetClock()
    # Far enough ahead that the leases of the clicks' workers are over, the same in every process
    # (so no process takes another's live claim); deferred waits then pass in real time.
    clock.offset = timedelta(days=1)
    infra = await SyncInfrastructure.create(
        job.database_url,
        tokens_for=lambda realm: StaticTokenProvider(job.tokens[realm]),
        settings=bench_settings(job.base),
        clock=clock,
        backend=backend_from_url(job.redis_url, prefix=job.prefix),
        migrate=False,
        worker_id=job.worker_id,
    )
    try:
        reconciler = Reconciler(infra)
        ready.set()
        await asyncio.to_thread(go.wait)
        while True:
            if not await reconciler.due():
                if all(a.state in FINAL for a in await infra.ledger.list()):
                    break
                await asyncio.sleep(0.2)  # another process holds what is left
                continue
            done = await reconciler.sweep()
            if not any(resolution.settled for resolution in done):
                await asyncio.sleep(0.5)  # a company's budget or a Retry-After runs out in real time
        return dict(infra.metrics.snapshot()["totals"])
    finally:
        await infra.aclose()


async def run(args: argparse.Namespace, database_url: str) -> None:
    rng = random.Random(args.seed)
    with sandbox_process(args.seed) as details:
        base = str(details["base_url"])
        quiet_logs()
        # Setting up the bills must not use up the companies' per-minute budgets before the storm.
        await _admin(base, "PUT", "/limits", {"requests_per_minute": 1_000_000, "window_seconds": 1})
        companies = await _companies(details, base, args, rng)
        realm_ids = [c.realm_id for c in companies]
        token_of = {c.realm_id: c.token for c in companies}
        await asyncio.sleep(1.1)  # the setup's requests leave the sandbox's 1-second window
        payments_before = await _payments(base, companies)

        def tokens_for(realm: str) -> TokenProvider:
            return StaticTokenProvider(token_of[realm])

        await upgrade_database(database_url)
        settings = bench_settings(base)
        clock = OffsetClock()
        shared = MemoryBackend() if args.redis_url is None else None
        prefix = f"oodaloo-chaos:{uuid.uuid4().hex[:8]}"
        workers = [
            await SyncInfrastructure.create(
                database_url,
                tokens_for=tokens_for,
                settings=settings,
                clock=clock,
                backend=shared or backend_from_url(args.redis_url, prefix=prefix),
                migrate=False,
                worker_id=f"worker-{n}",
            )
            for n in range(args.workers + 1)
        ]
        live, doomed_worker = workers[:-1], workers[-1]
        # The companies' clicks interleaved, as they would arrive.
        per_company = [
            [
                BillPaymentIntent(
                    business_id=company.business_id,
                    realm_id=company.realm_id,
                    bill_id=str(bill["Id"]),
                    bill_sync_token=str(bill["SyncToken"]),
                    vendor_id=str(bill["VendorRef"]["value"]),
                    amount=bill["Balance"],
                    bank_account_id=company.bank_account_id,
                    pay_date=date.today(),
                    requested_by=f"U-{i % 5}",
                )
                for i, bill in enumerate(company.bills)
            ]
            for company in companies
        ]
        intents = [intent for row in zip_longest(*per_company) for intent in row if intent is not None]

        def service(worker: SyncInfrastructure, intent: BillPaymentIntent) -> SmartSyncService:
            return SmartSyncService(worker, intent.business_id, intent.realm_id)

        try:
            await _admin(base, "PUT", "/limits", {"requests_per_minute": 500, "window_seconds": 60})
            await _admin(base, "PUT", "/faults", fault_plan(args.seed))
            await _admin(base, "DELETE", "/stats")
            # Kill a few workers mid-call: cancel each as soon as its request has reached QuickBooks.
            killed = intents[: args.kills]
            for intent in killed:
                async def posted(realm: str = intent.realm_id) -> int:
                    stats = await _admin(base, "GET", "/stats")
                    return int(stats["requests"]["by_realm"].get(realm, {}).get("billpayment", 0))

                seen = await posted()
                task = asyncio.create_task(service(doomed_worker, intent).create_payment_immediate(intent))
                for _ in range(2000):
                    if await posted() > seen or task.done():
                        break
                    await asyncio.sleep(0.002)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

            submissions = []
            for index, intent in enumerate(intents[args.kills :]):
                submissions.append((live[index % len(live)], intent))
                if rng.random() < args.double_rate:
                    submissions.append((live[rng.randrange(len(live))], intent))
            rng.shuffle(submissions)
            started = time.perf_counter()
            # A worker takes a bounded number of clicks at once, as a web process does.
            gates = {id(worker): asyncio.Semaphore(args.concurrency) for worker in live}

            async def click(worker: SyncInfrastructure, intent: BillPaymentIntent) -> ActionOutcome:
                async with gates[id(worker)]:
                    return await service(worker, intent).create_payment_immediate(intent)

            # The last share of the clicks arrive while QuickBooks is down altogether: they wait in
            # the ledger, a backlog for the reconciler once it is back.
            during_outage = round(len(submissions) * args.outage_share)
            before_outage = len(submissions) - during_outage
            outcomes = list(
                await asyncio.gather(*(click(w, i) for w, i in submissions[:before_outage]))
            )
            if during_outage:
                await _admin(base, "PUT", "/faults", OUTAGE)
                outcomes += await asyncio.gather(*(click(w, i) for w, i in submissions[before_outage:]))
                await _admin(base, "PUT", "/faults", fault_plan(args.seed))
            storm_seconds = time.perf_counter() - started
            first_answers = Counter(o.state.value for o in outcomes if not o.deduplicated)
            deduplicated = sum(o.deduplicated for o in outcomes)
            stats = await _admin(base, "GET", "/stats")

            # Reconcile: every live worker sweeps; time moves on so leases expire and circuits cool.
            # With --sweepers N (and Redis), N worker processes of their own do it instead.
            sweepers = _start_sweepers(args, database_url, prefix, base, token_of) if args.sweepers else None
            if sweepers is not None:
                await sweepers.wait_ready()
            reconcilers = [Reconciler(worker) for worker in live]
            started = time.perf_counter()
            sweeps = 0
            faults_on = True
            faults_off_at = started
            requests_at_faults_off: dict[str, int] = {}
            unsettled_at_faults_off: Counter[str] = Counter()
            sweeper_totals: Counter[str] = Counter()
            while sweeps < args.max_sweeps:
                if faults_on and sweeps >= args.faulty_sweeps:
                    # QuickBooks is well again: from here, the clock that matters runs.
                    await _admin(base, "PUT", "/faults", {})
                    faults_on = False
                    faults_off_at = time.perf_counter()
                    requests_at_faults_off = _requests(await _admin(base, "GET", "/stats"), realm_ids)
                    unsettled_at_faults_off = Counter(
                        a.realm_id for a in await live[0].ledger.list() if a.state not in FINAL
                    )
                if sweepers is not None:
                    sweeper_totals = await sweepers.run()
                    sweeps = -1
                    break
                clock.offset += timedelta(seconds=settings.write_lease_seconds() * 2) + settings.deferred_retry_max
                if not await reconcilers[0].due():
                    break
                rounds = await asyncio.gather(*(r.sweep() for r in reconcilers))
                sweeps += 1
                if not any(res.settled for found in rounds for res in found):
                    # Nothing could be settled: a company's rate budget or a 429's Retry-After
                    # is running out in real time.
                    await asyncio.sleep(0.5)
            reconcile_seconds = time.perf_counter() - started
            settled_after_faults_off = time.perf_counter() - faults_off_at
            final_stats = await _admin(base, "GET", "/stats")

            actions = await live[0].ledger.list()
            states = Counter(a.state.value for a in actions)
            # Counting costs requests: faults off and the limit lifted (the run's figures are taken).
            await _admin(base, "PUT", "/faults", {})
            await _admin(base, "PUT", "/limits", {"requests_per_minute": 1_000_000, "window_seconds": 1})
            marked: Counter[str] = Counter()
            payments_after = 0
            for company in companies:
                async with _client(base, company.realm_id, company.token) as reader:
                    for payment in await reader.query("SELECT * FROM BillPayment"):
                        payments_after += 1
                        marked.update(markers_in(payment.get("PrivateNote")))
            keys = {intent.key for intent in intents}
            duplicates = sum(1 for key in keys if marked[key] > 1)
            missing = sum(1 for key in keys if marked[key] == 0)
            not_final = sum(1 for a in actions if a.state not in FINAL)
            disagreeing = sum(
                1
                for a in actions
                if (a.state is ActionState.SUCCEEDED) != (marked[a.key] == 1)
            )
            totals = Counter[str](sweeper_totals)
            for worker in workers:
                totals.update(worker.metrics.snapshot()["totals"])
        finally:
            for worker in workers:
                await worker.aclose()
            if args.redis_url:
                cleanup = backend_from_url(args.redis_url, prefix=prefix)
                await cleanup.delete_all_keys()  # type: ignore[union-attr]
                await cleanup.aclose()

        injected = {k: v for k, v in stats["faults"]["injected"].items() if k != "latency"}
        print(
            f"Chaos run: seed {args.seed}, {args.actions} actions in {args.companies} "
            f"compan{'y' if args.companies == 1 else 'ies'}, {len(submissions)} submissions "
            f"({len(submissions) - (args.actions - args.kills)} repeats), {args.kills} workers killed "
            f"mid-call, {args.workers} live workers ({args.concurrency} clicks at once each), {live[0].engine.dialect.name} + "
            f"{'Redis' if args.redis_url else 'in-process'} backends"
        )
        print(f"  faults injected during the storm: {dict(sorted(injected.items()))}, 429 answers: {stats['throttled_total']}")
        print(f"  QuickBooks down (503 to everything) for the last {during_outage} submissions of the storm")
        print(f"  storm: {storm_seconds:.2f} s; first answers: {dict(first_answers)}; deduplicated: {deduplicated}")
        sweeping = (
            f"{args.sweepers} worker processes of their own"
            if args.sweepers
            else f"{sweeps} sweep rounds ({min(sweeps, args.faulty_sweeps)} with the faults still on)"
        )
        print(
            f"  reconciliation by {sweeping} in "
            f"{reconcile_seconds:.2f} s; found {totals['reconciled_found']}, resent {totals['reconciled_resent']}"
        )
        spent = _requests(final_stats, realm_ids)
        limit = final_stats["limits"]["requests_per_minute"]
        print(
            f"  QuickBooks requests: {sum(spent.values())} for {args.actions} payments, "
            f"{sum(spent.values()) / args.actions:.2f} per payment (lower bound 1.00: one BillPayment "
            f"each), busiest company {max(spent.values())}; limit {limit} per minute per company"
        )
        if faults_on or not unsettled_at_faults_off:
            print("  everything settled while the faults were still on")
        else:
            per_second = limit / 60
            after_off = {r: spent[r] - requests_at_faults_off.get(r, 0) for r in realm_ids}
            spent_bound = max(after_off.values()) / per_second
            needed_bound = max(unsettled_at_faults_off.values(), default=0) / per_second
            print(
                f"  faults off → all settled: {settled_after_faults_off:.1f} s; "
                f"{sum(unsettled_at_faults_off.values())} payments were unsettled then "
                f"(busiest company {max(unsettled_at_faults_off.values(), default=0)}), "
                f"{sum(after_off.values())} calls spent since (busiest company {max(after_off.values())})"
            )
            print(
                f"  lower bound at the rate limit: {needed_bound:.1f} s for one call per unsettled payment "
                f"(ratio {settled_after_faults_off / max(needed_bound, 0.001):.2f}), "
                f"{spent_bound:.1f} s for the calls spent (ratio "
                f"{settled_after_faults_off / max(spent_bound, 0.001):.2f})"
            )
        print(f"  final ledger states: {dict(states)}")
        print(
            f"  duplicates: {duplicates}   missing: {missing}   not final: {not_final}   ledger "
            f"disagreeing with QuickBooks: {disagreeing}   new BillPayments: "
            f"{payments_after - payments_before}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=200)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--double-rate", type=float, default=0.3)
    parser.add_argument("--sweepers", type=int, default=0,
                        help="reconcile in N worker processes of their own (needs --redis-url); "
                        "default: the clicks' workers sweep in this process")
    parser.add_argument("--faulty-sweeps", type=int, default=0,
                        help="sweep rounds with the faults still on before QuickBooks is well again")
    parser.add_argument("--outage-share", type=float, default=0.5,
                        help="share of the clicks that arrive while QuickBooks is down (default 0.5)")
    parser.add_argument("--companies", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8, help="clicks one worker handles at once (a web process: 8)")
    parser.add_argument("--max-sweeps", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=None, help="default: drawn at random and printed")
    parser.add_argument("--database-url", default=None,
                        help="default: a SQLite file in a temp folder; on PostgreSQL, a fresh schema each run")
    parser.add_argument("--redis-url", default=None, help="default: in-process backends")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = secrets.randbelow(2**31)
    if args.sweepers and (args.redis_url is None or args.faulty_sweeps):
        parser.error("--sweepers needs --redis-url (processes share limits and circuits there) and no --faulty-sweeps")
    if not 1 <= args.companies <= args.actions:
        parser.error("--companies must be between 1 and --actions")
    if args.database_url and args.database_url.startswith("postgresql"):
        # A schema of its own each run: actions of an earlier run (same seed, same bills, same
        # keys) would otherwise answer for this run's clicks.
        sys.path.insert(0, str(TEST_FIXTURES))
        from db_conftest import fresh_postgres_schema

        async for url in fresh_postgres_schema(args.database_url):
            await run(args, url)
        return
    with tempfile.TemporaryDirectory(prefix="oodaloo-chaos-") as folder:
        await run(args, args.database_url or f"sqlite+aiosqlite:///{Path(folder) / 'chaos.db'}")


if __name__ == "__main__":
    asyncio.run(main())
