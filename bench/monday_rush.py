"""Prints the figures of a Monday rush: every business's weekly digest due at the same minute, sent
by two `oodaloo worker` processes (beside two `oodaloo serve`) on PostgreSQL and Redis.

    .venv/bin/python bench/monday_rush.py [--businesses 1000] [--latency-ms 300] [--lead 150]
        [--window 10] [--setup-concurrency 12] [--slack-per-minute 300] [--slack-burst 50] [--seed 11]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/14] [--logs DIR]

Each business is its own QuickBooks sandbox company (one sandbox process hosts them all) and its own
channel of the local Slack, both served over real HTTP in threads of this process, as in
`bench/soak.py`, whose pieces this reuses. The companies come in three sizes (`SIZES`, `size_of`):
about 85% small (the sandbox's scaled company of 25 bills and 25 invoices), 12% medium (the
sandbox's default company: a year of a real small business, 234 bills, 824 invoices and their
payments) and 3% large (the scaled company of 2,000 bills and 2,000 invoices).

Set-up, before the clock: the companies are seeded and each business is created, connected and its
mirror synced (`--setup-concurrency` at once, QuickBooks at no latency). Then every digest is made
due at one whole minute, `--lead` seconds ahead (the weekly weekday and time of that minute in the
business's own timezone: four zones, all naming the same instant), QuickBooks' latency is set to
`--latency-ms` for every request, its per-company limits are QuickBooks' own (500 requests a minute,
10 at once), and the four processes start. The local Slack keeps Slack's limits for
chat.postMessage: one a second per channel after a burst of 3, and 300 a minute after a burst of 50
across the workspace, which every business's channel here shares (a firm with all its clients'
channels in one workspace: the hardest case; businesses in workspaces of their own are not bound
by it).

The bench then waits until every digest is in Slack, or `--window` minutes after the due minute,
sampling each process's resident memory every second, and prints: digests posted and in time, any
channel with more than one, QuickBooks 429s, Slack's 429s (answered and then retried, and digests
whose post still failed), the lateness of each digest from the due minute to its message in Slack
(p50/p90/p99/max), each process's peak memory and CPU time, and how many digests each worker ran
(from their logs). Beside them the lower bounds: Slack's workspace limit for this many messages,
and the time QuickBooks' slowest company needs at this latency under its limits. Figures only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from redis.asyncio import Redis
from sqlalchemy import select

REPOSITORY = Path(__file__).resolve().parents[1]
# The suite's fixtures (a fresh PostgreSQL schema, the two-process test's helpers), as soak.py has.
sys.path.insert(0, str(REPOSITORY / "tests" / "sync"))
sys.path.insert(0, str(REPOSITORY / "tests" / "bot"))

from db_conftest import fresh_postgres_schema  # noqa: E402
from soak import PAYERS, TIMEZONES, SoakWorld, error_causes, rss_mb, worker_processes  # noqa: E402
from test_two_processes import ERROR_LINE, Served, serve_processes  # noqa: E402

from bot.bootstrap import Oodaloo  # noqa: E402
from bot.models import DigestRun, SlackMessage  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig  # noqa: E402
from qbo_sandbox.server import start_in_thread as start_quickbooks  # noqa: E402
from runway.crypto import generate_key  # noqa: E402
from slack_sandbox.config import ChannelSpec, SlackSandboxConfig  # noqa: E402
from slack_sandbox.server import start_in_thread as start_slack  # noqa: E402
from sync import OAuthTokens  # noqa: E402

#: What each size of company is made from (the sandbox's `POST /_sandbox/realms` body).
SIZES: dict[str, dict[str, int]] = {"small": {"scale": 25}, "medium": {}, "large": {"scale": 2000}}
SHARES = {"large": 0.03, "medium": 0.12}  # the rest are small
RUN_LINE = re.compile(r"worker (\S+) runs digest:(\S+) due at")
QUEUED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO bot\.worker\.queue: queued \S+:digest:",
                         re.MULTILINE)
CLOCK_TICKS = 100  # /proc/<pid>/stat's utime and stime are in these per second (USER_HZ)


def size_of(index: int, count: int) -> str:
    """The mix, spread evenly over the businesses: every 33rd large, every 8th medium."""
    large = max(1, round(count * SHARES["large"])) if count >= 10 else 0
    medium = max(1, round(count * SHARES["medium"]))
    if large and index % max(1, count // large) == 0 and index // max(1, count // large) < large:
        return "large"
    if index % max(1, count // medium) == 1 and index // max(1, count // medium) < medium:
        return "medium"
    return "small"


@dataclass
class Business:
    index: int
    business_id: str
    realm_id: str
    channel: str
    timezone: str
    size: str


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def due_minute(after: datetime) -> datetime:
    return (after + timedelta(seconds=59)).replace(second=0, microsecond=0)


def weekly_at(due: datetime, timezone: str) -> dict[str, Any]:
    """The weekly schedule whose firing is `due`, in the business's own timezone."""
    local = due.astimezone(ZoneInfo(timezone))
    return {"digest_weekday": local.weekday(), "digest_local_time": wall_time(local.hour, local.minute)}


# --- set-up ----------------------------------------------------------------------------------------


async def set_up(args: argparse.Namespace, world: SoakWorld, oodaloo: Oodaloo,
                 admin: httpx.AsyncClient) -> tuple[list[Business], dict[str, list[float]]]:
    """Every business's company, business, connection and first mirror sync, some at once."""
    team_id = world.slack.sandbox.config.team_id
    gate = asyncio.Semaphore(args.setup_concurrency)
    seconds: dict[str, list[float]] = {size: [] for size in SIZES}
    done = 0
    started = time.monotonic()

    async def one(index: int) -> Business:
        nonlocal done
        size = size_of(index, args.businesses)
        async with gate:
            made = (await admin.post("/realms", json={"seed": args.seed * 100_000 + index,
                                                       **SIZES[size]}))
            made.raise_for_status()
            body = made.json()
            business = Business(index, f"rush-{index:04d}", body["realm_id"], f"C0RUSH{index:04d}",
                                TIMEZONES[index % len(TIMEZONES)], size)
            began = time.monotonic()
            now = datetime.now(UTC)
            await oodaloo.directory.create(
                business.business_id, f"Rush Company {index}", business.timezone,
                realm_id=business.realm_id, slack_team_id=team_id,
                slack_channel_id=business.channel, approvers=list(PAYERS),
            )
            await oodaloo.directory.connect(
                business.business_id, business.realm_id,
                OAuthTokens(access_token=body["access_token"], refresh_token=body["refresh_token"],
                            expires_at=now + timedelta(hours=1),
                            refresh_expires_at=now + timedelta(days=100)),
            )
            services = await oodaloo.services_for(business.business_id)
            await services.mirror.sync()
            seconds[size].append(time.monotonic() - began)
        done += 1
        if done % 100 == 0 or done == args.businesses:
            print(f"  set up {done}/{args.businesses} businesses in {time.monotonic() - started:.0f} s",
                  flush=True)
        return business

    businesses = await asyncio.gather(*(one(i) for i in range(args.businesses)))
    return list(businesses), seconds


# --- while the rush runs ---------------------------------------------------------------------------


@dataclass
class Readings:
    rss_peak: dict[str, float]
    cpu_at_start: dict[str, float]
    cpu_at_end: dict[str, float]


async def watch(processes: list[Served], world: SoakWorld, businesses: list[Business],
                deadline: datetime, readings: Readings) -> None:
    """Until every channel has a message or the deadline passes: memory each second."""
    workspace = world.slack.workspace
    while datetime.now(UTC) < deadline:
        for one in processes:
            value = rss_mb(one.process.pid)
            if value is not None:
                readings.rss_peak[one.name] = max(readings.rss_peak.get(one.name, 0.0), value)
        if all(workspace.messages(b.channel) for b in businesses):
            return
        await asyncio.sleep(1.0)


def cpu_of(processes: list[Served]) -> dict[str, float]:
    return {one.name: cpu_seconds(one.process.pid) or 0.0 for one in processes}


# --- the run ---------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, database_url: str) -> None:
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    channels = tuple(ChannelSpec(f"C0RUSH{i:04d}", f"client-{i}") for i in range(args.businesses))
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL + 1)
    logging.getLogger("sync").setLevel(logging.CRITICAL)
    slack_config = SlackSandboxConfig(channels=channels,
                                      workspace_rate_limit_burst=args.slack_burst,
                                      workspace_rate_limit_per_minute=args.slack_per_minute)
    with (
        start_quickbooks(SandboxConfig(seed=DEFAULT_SEED)) as quickbooks,
        start_slack(slack_config) as slack,
        tempfile.TemporaryDirectory(prefix="oodaloo-rush-") as tmp,
    ):
        folder = Path(args.logs or tmp)
        world = SoakWorld(quickbooks, slack, generate_key(), "rush-link-key-" + "x" * 32)
        env = world.settings(database_url, args.redis_url, "http://127.0.0.1:3000")
        settings = load_settings(**{name.lower(): value for name, value in env.items()})
        oodaloo = await Oodaloo.start(settings)
        admin = httpx.AsyncClient(base_url=f"{quickbooks.base_url}/_sandbox", timeout=60.0,
                                  limits=httpx.Limits(keepalive_expiry=2.0))
        try:
            (await admin.put("/faults", json={})).raise_for_status()
            setup_started = time.monotonic()
            businesses, sync_seconds = await set_up(args, world, oodaloo, admin)
            setup_seconds = time.monotonic() - setup_started

            # The clock: one due minute for every business, the latency on, the processes started.
            due = due_minute(datetime.now(UTC) + timedelta(seconds=args.lead))
            for business in businesses:
                await oodaloo.directory.update(business.business_id,
                                               **weekly_at(due, business.timezone))
            (await admin.put("/faults", json={"default": {"latency": {"fixed_ms": args.latency_ms}}})
             ).raise_for_status()
            (await admin.put("/limits", json={"requests_per_minute": 500, "max_concurrent": 10,
                                              "window_seconds": 60})).raise_for_status()
            (await admin.delete("/stats")).raise_for_status()
            slack.sandbox.rate_limit.reset()
            rejected_before = dict(slack.sandbox.rate_limit.rejected_by)
            print(f"  set up in {setup_seconds:.0f} s; digests due at {due.isoformat()} "
                  f"({(due - datetime.now(UTC)).total_seconds():.0f} s from now)", flush=True)
            readings = Readings({}, {}, {})
            async with (
                serve_processes(world, database_url, args.redis_url, folder) as served,
                worker_processes(world, database_url, args.redis_url, folder, 2) as workers,
            ):
                processes = [*served, *workers]
                readings.cpu_at_start = cpu_of(processes)
                deadline = due + timedelta(minutes=args.window)
                await watch(processes, world, businesses, deadline, readings)
                await asyncio.sleep(3.0)  # the last runs record their post
                readings.cpu_at_end = cpu_of(processes)
                redis_keys = await redis.dbsize()
                redis_memory = (await redis.info("memory"))["used_memory"] / 1024 / 1024
                exits = [await one.stop() for one in processes]
            outputs = {one.name: one.output() for one in processes}
            stats = (await admin.get("/stats")).json()
            rejected = {k: v - rejected_before.get(k, 0)
                        for k, v in slack.sandbox.rate_limit.rejected_by.items()}
            async with oodaloo.sessions() as session:
                runs = list(await session.scalars(select(DigestRun)))
                stored = {row.ts for row in await session.scalars(
                    select(SlackMessage).where(SlackMessage.kind == "digest"))}
        finally:
            await admin.aclose()
            await oodaloo.aclose()
            await redis.flushdb()
            await redis.aclose()

        # --- what happened ---------------------------------------------------------------------
        per_channel: dict[str, list[float]] = {}
        for business in businesses:
            per_channel[business.business_id] = [
                float(message.ts) for message in slack.workspace.messages(business.channel)
                if message.ts in stored
            ]
        posted_calls = [c for c in slack.workspace.calls("chat.postMessage")]
        slack_429 = sum(1 for c in posted_calls if c.status == 429)

    lateness = [min(stamps) - due.timestamp() for stamps in per_channel.values() if stamps]
    twice = {b: len(s) for b, s in per_channel.items() if len(s) > 1}
    missing = [b for b, s in per_channel.items() if not s]
    in_time = sum(1 for late in lateness if late <= args.window * 60)
    failed_runs = [r for r in runs if r.error]
    slack_failed = [r for r in failed_runs if "ratelimited" in (r.error or "")]
    per_worker: Counter[str] = Counter()
    queued_at: list[float] = []
    for name, text in outputs.items():
        per_worker[name] += len(RUN_LINE.findall(text))
        queued_at += [datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=UTC).timestamp()
                      - due.timestamp() for stamp in QUEUED_LINE.findall(text)]
    requests_by_realm = {realm: sum(v.values()) for realm, v in stats["requests"]["by_realm"].items()}
    size_by_realm = {b.realm_id: b.size for b in businesses}
    calls_by_size: dict[str, list[int]] = {size: [] for size in SIZES}
    for realm, calls in requests_by_realm.items():
        if realm in size_by_realm:
            calls_by_size[size_by_realm[realm]].append(calls)
    most_calls = max(requests_by_realm.values(), default=0)
    latency = args.latency_ms / 1000
    # QuickBooks: the busiest company's calls, 10 at a time, 500 a minute.
    quickbooks_bound = max(math.ceil(most_calls / 10) * latency, (most_calls - 500) / 500 * 60)
    limit = slack.sandbox.rate_limit
    burst, per_second = limit.workspace.burst, limit.workspace.per_second
    slack_bound = max(0.0, (args.businesses - burst) / per_second)
    bound = max(quickbooks_bound, slack_bound)
    mix = Counter(b.size for b in businesses)
    errors = {name: [line for line in text.splitlines() if ERROR_LINE.search(line)]
              for name, text in outputs.items()}

    print(
        f"Monday rush: {args.businesses} businesses ({dict(mix)}: {SIZES}), digests due at "
        f"{due.isoformat()}; 2 serve + 2 worker processes, PostgreSQL + Redis; QuickBooks latency "
        f"{args.latency_ms} ms, limits {stats['limits']}; Slack chat.postMessage "
        f"{limit.channels.per_second:g}/s per channel (burst {limit.channels.burst}), "
        f"{per_second * 60:g}/min per workspace (burst {burst}), one workspace"
    )
    print(f"  set-up (latency 0, {args.setup_concurrency} at once): {setup_seconds:.0f} s; first "
          "sync + business, seconds by size: " + ", ".join(
              f"{size} median {statistics.median(v):.2f} max {max(v):.2f}"
              for size, v in sync_seconds.items() if v))
    if lateness:
        print(
            f"  LATENESS (due minute → message in Slack, s): p50 {percentile(lateness, 0.5):.1f}  "
            f"p90 {percentile(lateness, 0.9):.1f}  p99 {percentile(lateness, 0.99):.1f}  "
            f"max {max(lateness):.1f}  (first {min(lateness):.1f})"
        )
    print(
        f"  lower bound {bound:.1f} s = max(Slack's workspace limit for {args.businesses} "
        f"messages {slack_bound:.1f} s, QuickBooks' busiest company {most_calls} calls at "
        f"{args.latency_ms} ms, 10 at once, 500/min {quickbooks_bound:.1f} s); "
        + (f"last digest / bound = {max(lateness) / bound:.2f}×" if len(lateness) == len(businesses)
           and bound else "not every digest was posted, so no ratio")
    )
    worker_cpu = sum(readings.cpu_at_end.get(one, 0.0) - readings.cpu_at_start.get(one, 0.0)
                     for one in readings.cpu_at_end if one.startswith("worker"))
    print(f"  the workers' own CPU time from their start to the last digest: {worker_cpu:.0f} s "
          f"({worker_cpu / max(1, len(lateness)) * 1000:.0f} ms a digest), at least "
          f"{worker_cpu / (os.cpu_count() or 1):.0f} s of wall time on this machine's "
          f"{os.cpu_count()} cores even with nothing else running")
    print(
        f"  CHECKS  posted {len(lateness)}/{args.businesses}, within {args.window:g} min "
        f"{in_time}/{args.businesses}; channels with more than one digest {len(twice)}"
        + (f" {list(twice.items())[:5]}" if twice else "")
        + f"; missing {len(missing)}" + (f" {missing[:5]}" if missing else "")
    )
    print(
        f"          QuickBooks 429s {stats['throttled_total']} (by status "
        f"{dict(stats['requests']['by_status'])}); Slack 429s answered {slack_429} "
        f"(by limit {rejected}), digests whose Slack post still failed {len(slack_failed)}; "
        f"runs with an error {len(failed_runs)}" + (f" e.g. {failed_runs[0].error[:200]!r}"
                                                    if failed_runs else "")
    )
    print("  QuickBooks calls per company during the rush: " + ", ".join(
        f"{size} median {statistics.median(v):g} max {max(v)}"
        for size, v in calls_by_size.items() if v) + f"; total {sum(requests_by_realm.values())}")
    print(f"  digest runs per worker (from their logs): "
          f"{ {name: n for name, n in per_worker.items() if n} }; the leader queued "
          f"{len(queued_at)} digest firings between {min(queued_at, default=0):.2f} s and "
          f"{max(queued_at, default=0):.2f} s after the due minute")
    print("  memory (VmRSS peak MB) and CPU seconds from start to the last digest, per process:")
    for name in readings.rss_peak:
        cpu = readings.cpu_at_end.get(name, 0.0) - readings.cpu_at_start.get(name, 0.0)
        print(f"    {name:<36} {readings.rss_peak[name]:7.0f} MB  {cpu:7.1f} s CPU")
    print(f"    {'this process (both sandboxes)':<36} {rss_mb(os.getpid()) or 0:7.0f} MB")
    print(f"    {'Redis (this database)':<36} {redis_memory:7.0f} MB used by the server, {redis_keys} keys")
    print(f"  ERROR lines / tracebacks: {({n: len(e) for n, e in errors.items()})}   "
          f"exit codes: {exits}")
    for name, text in outputs.items():
        for cause, count in error_causes(text).most_common(4):
            print(f"    {name}: {count} × {cause}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--businesses", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--lead", type=float, default=150.0,
                        help="seconds from the end of set-up to the due minute (at least)")
    parser.add_argument("--window", type=float, default=10.0,
                        help="minutes after the due minute every digest should be in")
    parser.add_argument("--setup-concurrency", type=int, default=12)
    parser.add_argument("--slack-per-minute", type=float, default=300.0,
                        help="the local Slack's workspace-wide limit on chat.postMessage")
    parser.add_argument("--slack-burst", type=int, default=50,
                        help="messages the workspace may post at once before that limit")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14",
                        help="a Redis database only this bench uses (flushed before and after)")
    args = parser.parse_args()
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    asyncio.run(rush(args))


async def rush(args: argparse.Namespace) -> None:
    async for url in fresh_postgres_schema(args.database_url):
        await run(args, url)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
