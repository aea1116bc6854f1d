"""How fast Oodaloo acks Slack, against a bare Bolt app acking the same requests on the same machine.

    .venv/bin/python bench/slack_ack.py [--requests 300] [--concurrency 1 10] [--latency-ms 500]
        [--pays 5] [--workers 1] [--work-in worker|web]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/12]
    .venv/bin/python bench/slack_ack.py --embedded [--requests 300] [--concurrency 1 10]

Slack gives an app 3 seconds to ack a click or a slash command. The floor is what Bolt itself costs:
a bare Bolt AsyncApp on Starlette and uvicorn that acks and does nothing else. Both are served the
production way, each its own process (`bench/slack_processes.py`): `oodaloo serve` on PostgreSQL
and Redis, with `--workers` `oodaloo worker` processes doing the work handed off after each ack
(`--work-in web`: no worker, the web process does it itself, as without Redis); the QBO sandbox
answering every call after `--latency-ms` (500 ms: a slow day at QuickBooks) and the local Slack,
each its own process; this process only signs and sends the local Slack's requests (the same code
for both apps) and times each round trip (sent -> ack received). It is kept light (bodies read
before the clock starts, aiohttp), and prints its own CPU per request: at 10 at a time on two
cores a heavy sender is the bottleneck of both apps, and whatever else runs steals from it.

For each `--concurrency` (requests in flight at once): the bare Bolt app, then Oodaloo, then the
bare Bolt app again, each getting `--requests` clicks on "and N more" under the digest (the work
after the ack builds the invoice list from the mirror and answers through response_url, the click
sent without its trigger_id so no modal opens; `--embedded` clicks open the list in a modal) and as many
`/runway` commands (the work builds the summary and answers the same way), after a few unmeasured
ones. The work is really done: every Oodaloo request's answer must reach the local Slack (counted
there) before the next run starts, and the time from request to answer is printed too. Then
`--pays` bills are paid one by one, timing the click on Pay to the card saying "Paid" (each Pay
reads the bill from QuickBooks and creates the payment: at least two slow calls).

`--embedded` runs everything in this one process instead, as `oodaloo demo` does: SQLite, no Redis,
the work after each ack in the web process; the sandboxes and both apps served in this event loop.

Printed: p50 and p99 of each, and Oodaloo's ratio to the bare Bolt app's (its runs before and
after pooled). The Redis database is flushed before and after (`oodaloo serve` has no key prefix).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from redis.asyncio import Redis

# The suite's helpers: a fresh PostgreSQL schema, the two-process tests' processes and business.
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / folder) for folder in ("sync", "bot")]

from db_conftest import fresh_postgres_schema  # noqa: E402
from slack_processes import (  # noqa: E402
    Sender,
    bare_bolt,
    bare_bolt_app,
    local_slack,
    quickbooks,
    workers_consuming,
    world_of,
)
from test_crash_restart_worker import serving, start_worker  # noqa: E402
from test_two_processes import business_ready  # noqa: E402

from bot.bootstrap import Oodaloo  # noqa: E402
from bot.local import CHANNEL, OWNER, local_stack, serve_in_loop  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.slack import blocks as kit  # noqa: E402
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency  # noqa: E402
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig  # noqa: E402
from slack_sandbox.config import SlackSandboxConfig  # noqa: E402
from slack_sandbox.user import SlackUserAgent  # noqa: E402
from sync.infrastructure import SyncSettings  # noqa: E402

WARM_UP = 10
ANSWER_SECONDS = 300.0


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def shown(samples: list[float]) -> str:
    return (f"p50 {statistics.median(samples) * 1000:6.1f} ms  p99 {percentile(samples, 0.99) * 1000:6.1f} ms"
            f"  (n={len(samples)})")


def without_trigger(body: str) -> str:
    """A click's body without its trigger_id: Oodaloo answers with the list through response_url,
    as when Slack could not open its modal (the bodies are made before the run, their triggers
    would expire while they wait), so every answer is counted where the local Slack counts them."""
    payload = json.loads(parse_qs(body)["payload"][0])
    payload.pop("trigger_id", None)
    return urlencode({"payload": json.dumps(payload)})


class Run:
    """One app getting one kind of request, `concurrency` at a time."""

    def __init__(self, sender: Sender, digest_ts: str, requests: int) -> None:
        self.sender = sender
        self.digest_ts = digest_ts
        self.requests = requests

    async def bodies(self, kind: str, n: int) -> list[str]:
        if kind == "click":
            bodies = await self.sender.bodies("click", n, user=OWNER, channel=CHANNEL, ts=self.digest_ts,
                                              action_id=kit.SHOW_MORE_INVOICES)
            return [without_trigger(body) for body in bodies]
        return await self.sender.bodies("command", n, user=OWNER, channel=CHANNEL, text="")

    async def acks(self, url: str, kind: str, concurrency: int, *, answered: bool) -> tuple[list[float], list[float]]:
        """Ack times, and (when the app answers) request -> answer times."""
        warm = await self.bodies(kind, WARM_UP)
        bodies = await self.bodies(kind, self.requests)
        _, warm_sent = await self.sender.send_all(url, warm, concurrency)
        if answered:
            await self.sender.answered(list(warm_sent), ANSWER_SECONDS)
        acks, sent = await self.sender.send_all(url, bodies, concurrency)
        if not answered:
            return acks, []
        arrived = await self.sender.answered(list(sent), ANSWER_SECONDS)
        return acks, [arrived[token] - sent[token] for token in sent]



async def pay_bills(sender: Sender, url: str, digest: object, pays: int) -> list[float]:
    bill_ids = kit.shown_ids(digest.blocks, "bill")[:pays]  # type: ignore[attr-defined]
    took = []
    for bill_id in bill_ids:
        [body] = await sender.bodies("click", 1, user=OWNER, channel=CHANNEL, ts=digest.ts,  # type: ignore[attr-defined]
                                     action_id=kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")
        sent, _ = await sender.send(url, body)
        paid_at = await sender.wait(channel=CHANNEL, ts=digest.ts, block_id=f"bill:{bill_id}",  # type: ignore[attr-defined]
                                    contains=":white_check_mark: Paid")
        took.append(paid_at - sent)
    return took


async def run(args: argparse.Namespace, database_url: str, folder: Path) -> None:
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    print(f"Setting up: QuickBooks answering in {args.latency_ms} ms, the local Slack, PostgreSQL, "
          f"Redis; the seeded company synced and its digest posted…", flush=True)
    async with quickbooks(folder, args.latency_ms, None) as qbo, local_slack(folder) as slack:
        world = world_of(qbo, slack)
        env = world.settings(database_url, args.redis_url, "http://127.0.0.1:3000")
        settings = load_settings(**{name.lower(): value for name, value in env.items()})
        sender = Sender(slack)
        await (await Oodaloo.start(settings)).aclose()  # the schema migrated, as `oodaloo serve` would
        async with business_ready(world, settings) as setup:
            digest = setup.digest
            bench = Run(sender, digest.ts, args.requests)
            workers: list[Any] = []
            async with bare_bolt(folder, slack) as bare_url, serving(
                world, database_url, args.redis_url, folder / "serve", 1
            ) as [served]:
                try:
                    if args.work_in == "worker":
                        for number in range(args.workers):
                            workers.append(await start_worker(
                                world, database_url, folder, str(number), redis_url=args.redis_url))
                        await workers_consuming(served.url, args.workers)
                    rows = []
                    for concurrency in args.concurrency:
                        for kind in ("click", "command"):
                            label = f"{'clicks' if kind == 'click' else '/runway'}, {concurrency} at a time"
                            print(f"  {label}: bare Bolt, Oodaloo, bare Bolt…", flush=True)
                            before, _ = await bench.acks(bare_url, kind, concurrency, answered=False)
                            ours, answers = await bench.acks(served.url, kind, concurrency, answered=True)
                            after, _ = await bench.acks(bare_url, kind, concurrency, answered=False)
                            rows.append((label, before, ours, after, answers))
                    print(f"Paying {args.pays} bills: click on Pay -> the card says Paid…", flush=True)
                    pays = await pay_bills(sender, served.url, digest, args.pays)
                    answered_total = len(await sender.answers())
                finally:
                    for one in workers:
                        await one.stop()
        await sender.aclose()
    await redis.flushdb()
    await redis.aclose()

    where = f"{args.workers} `oodaloo worker`" if args.work_in == "worker" else "the web process itself"
    report(rows, f"QuickBooks answering in {args.latency_ms} ms; the work after Oodaloo's acks done by {where}")
    if pays:
        print(f"Click on Pay -> the card says Paid: {shown(pays)}")
    cpu = sender.cpu_per_request
    print(f"The sender (this process: signing, sending, timing) spent {statistics.median(cpu) * 1000:.2f} ms "
          f"of CPU per request (median of its {len(cpu)} runs, max {max(cpu) * 1000:.2f} ms).")
    print(f"Work done: {answered_total} answers reached the local Slack through response_url "
          f"(every Oodaloo request's, checked run by run).")


Row = tuple[str, list[float], list[float], list[float], list[float]]


def report(rows: list[Row], how: str) -> None:
    print()
    print(f"Ack round trip (sent -> ack received), {how}:")
    for label, before, ours, after, answers in rows:
        floor = before + after
        print(f"  {label}")
        print(f"    bare Bolt before   {shown(before)}")
        print(f"    bare Bolt after    {shown(after)}")
        print(f"    Oodaloo            {shown(ours)}")
        print(f"    ratio to bare Bolt p50 {statistics.median(ours) / statistics.median(floor):4.2f}x"
              f"   p99 {percentile(ours, 0.99) / percentile(floor, 0.99):4.2f}x")
        if answers:
            print(f"    Oodaloo request -> answer shown (response_url) {shown(answers)}")


async def embedded(args: argparse.Namespace) -> None:
    """Everything in this one process, as `oodaloo demo` runs: SQLite, no Redis (the work after each
    ack in the web process), the sandboxes and both apps served in this event loop."""
    faults = FaultPlan(default=FaultRule(latency=Latency(fixed_ms=args.latency_ms)))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="oodaloo-slack-ack-") as tmp:
        print("Setting up in one process: SQLite, the seeded company synced, its digest posted…", flush=True)
        async with local_stack(
            f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}",
            sandbox_config=SandboxConfig(seed=DEFAULT_SEED, faults=faults),
            slack_config=SlackSandboxConfig(),
            migrate=True,
            sync_settings=SyncSettings(),  # production waits and timeouts
        ) as stack:
            digest = await stack.post_digest()
            config = stack.slack.sandbox.config
            bare = bare_bolt_app(config.bot_token, stack.slack.api_url, config.signing_secret)
            async with serve_in_loop(bare) as bare_url:
                bare_agent = SlackUserAgent(stack.workspace, f"{bare_url}/slack/events")

                async def acks(agent: SlackUserAgent, kind: str, concurrency: int) -> list[float]:
                    gate = asyncio.Semaphore(concurrency)
                    tokens: list[str] = []

                    async def one() -> float:
                        async with gate:
                            started = time.perf_counter()
                            delivery = await (
                                agent.click(OWNER, stack.message(digest.ts), kit.SHOW_MORE_INVOICES)
                                if kind == "click" else agent.slash_command(OWNER, CHANNEL, "/runway", "")
                            )
                            took = time.perf_counter() - started
                            assert delivery.status == 200, delivery.text
                            assert delivery.response_token is not None
                            tokens.append(delivery.response_token)
                            return took

                    opened_before = _modals_opened(stack.workspace)
                    await asyncio.gather(*(one() for _ in range(WARM_UP)))
                    took = list(await asyncio.gather(*(one() for _ in range(args.requests))))
                    if agent is stack.agent:
                        await stack.bot.idle()
                        unanswered = [t for t in tokens if not (stack.workspace.response_url(t) or _Unused).uses]
                        # A click on "and N more" is answered with the list in a modal, or through
                        # its response_url when the modal could not be opened.
                        in_modals = _modals_opened(stack.workspace) - opened_before
                        assert len(unanswered) == in_modals, (
                            f"{len(unanswered) - in_modals} requests never answered: the work was not done"
                        )
                    return took

                for concurrency in args.concurrency:
                    for kind in ("click", "command"):
                        label = f"{'clicks' if kind == 'click' else '/runway'}, {concurrency} at a time"
                        print(f"  {label}: bare Bolt, Oodaloo, bare Bolt…", flush=True)
                        before = await acks(bare_agent, kind, concurrency)
                        ours = await acks(stack.agent, kind, concurrency)
                        after = await acks(bare_agent, kind, concurrency)
                        rows.append((label, before, ours, after, []))
                await bare_agent.aclose()
    report(rows, f"in one process (SQLite, no Redis: the work after each ack in the web process), "
                 f"QuickBooks answering in {args.latency_ms} ms; every Oodaloo request answered")


def _modals_opened(workspace: Any) -> int:
    return sum(1 for call in workspace.calls("views.open") if call.ok)


class _Unused:
    uses = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--pays", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--work-in", choices=["worker", "web"], default="worker")
    parser.add_argument("--embedded", action="store_true",
                        help="everything in this one process, as `oodaloo demo`: SQLite, no Redis")
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12",
                        help="a Redis database only this bench uses (flushed before and after)")
    args = parser.parse_args()
    if args.embedded:
        asyncio.run(embedded(args))
        return

    async def each(folder: Path) -> None:
        async for url in fresh_postgres_schema(args.database_url):
            await run(args, url, folder)

    with tempfile.TemporaryDirectory(prefix="oodaloo-slack-ack-") as tmp:
        folder = Path(args.logs or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        asyncio.run(each(folder))


if __name__ == "__main__":
    main()
