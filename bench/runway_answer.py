"""How long `/runway` takes to show its answer: the command sent -> the answer shown in Slack.

    .venv/bin/python bench/runway_answer.py [--commands 50] [--latency-ms 300] [--scales 0 10000]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/11]

Served the production way, each part its own process (`bench/slack_processes.py`): `oodaloo serve`
acks and hands the work to `oodaloo worker` (PostgreSQL and Redis), which builds the summary from the
mirror and answers through the command's response_url; the QBO sandbox answers every call after
`--latency-ms` (300 ms; `/runway` makes none, it reads the mirror) and the local Slack notes when
each answer arrives. For each company (`--scales`: 0 is the seeded company, N a company of N bills
and N invoices, `oodaloo sandbox --scale N`), synced first, `--commands` commands are sent one after
the other, each once the previous one's answer is shown: first as a user asks again (the digest
read for the first answer is kept while nothing is written to the books), then each after a write
to the books (the mirror read again for every answer).

Lower bound, in the same run: a bare Bolt app (Starlette and uvicorn, its own process) answering
each command with a fixed text through the same response_url. Also printed: what the worker spends
building the answer (the digest from the mirror and the summary's blocks), timed in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy import update

# The suite's helpers: a fresh PostgreSQL schema, the two-process tests' processes.
sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests" / folder) for folder in ("sync", "bot")]

from db_conftest import fresh_postgres_schema  # noqa: E402
from slack_processes import (  # noqa: E402
    Sender,
    bare_bolt,
    local_slack,
    quickbooks,
    response_token,
    workers_consuming,
    world_of,
)
from test_crash_restart_worker import serving, start_worker  # noqa: E402
from test_two_processes import World  # noqa: E402

from bot.bootstrap import Oodaloo  # noqa: E402
from bot.local import BUSINESS_ID, CHANNEL, OWNER  # noqa: E402
from bot.settings import Settings, load_settings  # noqa: E402
from bot.slack import blocks as kit  # noqa: E402
from qbo_sandbox.seed_names import COMPANY_NAME  # noqa: E402
from runway.models import Business  # noqa: E402
from runway.shown_rows import NO_ROWS  # noqa: E402
from sync import OAuthTokens  # noqa: E402

TARGET_MS = 25.0


def median_p90(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms   (n={len(ordered)})"


async def connected(world: World, settings: Settings) -> Oodaloo:
    """The business linked to #finance and connected to the sandbox's company, its mirror synced
    (as `bot.local` does it)."""
    oodaloo = await Oodaloo.start(settings)
    sandbox = world.quickbooks.sandbox
    now = datetime.now(UTC)
    await oodaloo.directory.create(
        BUSINESS_ID, COMPANY_NAME, "America/Los_Angeles", realm_id=world.realm_id,
        slack_team_id=world.slack.sandbox.config.team_id, slack_channel_id=CHANNEL, approvers=[OWNER],
    )
    await oodaloo.directory.connect(BUSINESS_ID, world.realm_id, OAuthTokens(
        access_token=sandbox.access_token, refresh_token=sandbox.refresh_token,
        expires_at=now + timedelta(hours=1), refresh_expires_at=now + timedelta(days=100),
    ))
    services = await oodaloo.services_for(BUSINESS_ID)
    await services.mirror.sync()
    return oodaloo


async def a_write(oodaloo: Oodaloo) -> None:
    """A committed write to the business's books (its row touched): the digest kept in memory no
    longer stands, and the next answer reads the mirror."""
    async with oodaloo.uows(BUSINESS_ID) as uow:
        await uow.session.execute(
            update(Business).where(Business.id == BUSINESS_ID).values(updated_at=Business.updated_at)
        )
        await uow.session.commit()


async def answers(
    sender: Sender, url: str, commands: int, *, write_first: Oodaloo | None = None
) -> list[float]:
    """Command sent -> its answer shown, one command after the other (each after a write to the
    books when `write_first` is given)."""
    took = []
    for body in await sender.bodies("command", commands + 3, user=OWNER, channel=CHANNEL, text=""):
        if write_first is not None:
            await a_write(write_first)
        sent, _ = await sender.send(url, body)
        took.append(await sender.wait(token=response_token(body)) - sent)
    return took[3:]  # the first ones warm connections and caches up


async def building(oodaloo: Oodaloo, times: int, *, write_first: bool = False) -> list[float]:
    """What the worker spends on the answer itself: the digest from the mirror (or kept in memory
    when nothing was written since, unless `write_first`), the summary's blocks."""
    business = await oodaloo.directory.get(BUSINESS_ID)
    took = []
    for _ in range(times):
        if write_first:
            await a_write(oodaloo)
        started = time.perf_counter()
        ctx = await oodaloo.digest(BUSINESS_ID, rows=NO_ROWS)  # what `/runway` reads: no rows
        kit.summary_message(ctx.view, business_name=business.name)
        took.append(time.perf_counter() - started)
    return took


async def one_company(args: argparse.Namespace, scale: int, folder: Path) -> list[str]:
    name = "seeded company" if not scale else f"{scale:,}-bill company"
    print(f"Setting up the {name}: QuickBooks at {args.latency_ms} ms, the local Slack, PostgreSQL, "
          f"Redis, a first sync…", flush=True)
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    async for database_url in fresh_postgres_schema(args.database_url):
        async with quickbooks(folder, args.latency_ms, scale or None) as qbo, local_slack(folder) as slack:
            world = world_of(qbo, slack)
            env = world.settings(database_url, args.redis_url, "http://127.0.0.1:3000")
            settings = load_settings(**{key.lower(): value for key, value in env.items()})
            sender = Sender(slack)
            oodaloo = await connected(world, settings)
            try:
                async with bare_bolt(folder, slack, respond=True) as bare_url, serving(
                    world, database_url, args.redis_url, folder / f"serve-{scale}", 1
                ) as [served]:
                    worker = await start_worker(world, database_url, folder, str(scale), redis_url=args.redis_url)
                    try:
                        await workers_consuming(served.url)
                        print(f"  {args.commands} commands to the bare Bolt app, to Oodaloo, to the bare Bolt app…",
                              flush=True)
                        floor = await answers(sender, bare_url, args.commands)
                        ours = await answers(sender, served.url, args.commands)
                        fresh = await answers(sender, served.url, args.commands, write_first=oodaloo)
                        floor += await answers(sender, bare_url, args.commands)
                    finally:
                        await worker.stop()
                built = await building(oodaloo, min(args.commands, 20))
                built_fresh = await building(oodaloo, min(args.commands, 20), write_first=True)
            finally:
                await oodaloo.aclose()
                await sender.aclose()
    await redis.flushdb()
    await redis.aclose()
    def against_floor(samples: list[float]) -> str:
        ratio = statistics.median(samples) / statistics.median(floor)
        verdict = "within" if statistics.median(samples) * 1000 <= TARGET_MS else "above"
        return f"({ratio:.1f}x the bare Bolt app; {verdict} {TARGET_MS:.0f} ms)"

    return [
        f"  {name}",
        f"    bare Bolt, a fixed text through response_url          {median_p90(floor)}",
        f"    Oodaloo, asked again (nothing written since)         {median_p90(ours)}   {against_floor(ours)}",
        f"    Oodaloo, after a write each time (mirror read again) {median_p90(fresh)}   {against_floor(fresh)}",
        f"    of which building it in one process, asked again     {median_p90(built)}",
        f"    of which building it in one process, after a write   {median_p90(built_fresh)}",
    ]



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commands", type=int, default=50)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--scales", type=int, nargs="+", default=[0, 10_000])
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="a Redis database only this bench uses (flushed before and after)")
    args = parser.parse_args()

    async def each(folder: Path) -> list[str]:
        lines = []
        for scale in args.scales:
            lines += await one_company(args, scale, folder)
        return lines

    with tempfile.TemporaryDirectory(prefix="oodaloo-runway-answer-") as tmp:
        folder = Path(args.logs or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        lines = asyncio.run(each(folder))
    print()
    print(f"/runway sent -> answer shown in Slack, QuickBooks answering in {args.latency_ms} ms "
          f"(target: median <= {TARGET_MS:.0f} ms):")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
