"""Real processes killed or cut off mid-work: a worker killed with SIGKILL in the middle of a digest
and of a reconciliation sweep, and a Redis and a PostgreSQL server restarted in the middle of Pay
clicks at `oodaloo serve`. Afterwards each intended payment exists once, each due digest was posted
once, and no card is left at "Paying…".

The set-up is tests/bot/test_two_processes.py's and tests/bot/test_crash_restart.py's (imported, not
copied): the QuickBooks sandbox and the local Slack over real HTTP in threads of the test process,
the business linked, synced, every open bill approved and the digest posted.

- A worker (`oodaloo worker`, without Redis: one process schedules and runs every job) is started
  with the business's weekly digest due a minute ago, so the digest sweep it runs as it starts sends
  it. The digest is held while Slack has its chat.postMessage and has not posted it yet; the worker
  is killed there. Its run is left
  claimed for DIGEST_LEASE (20 minutes): a worker started at once sends nothing. The lease running
  out is the run's `retry_at` moved into the past (the only thing time changes for it); the worker
  started after that takes the digest over and posts it, once.
- Pay clicks at a serve process, with QuickBooks applying each payment and losing its answer, leave
  the actions unknown and the cards "Paying…". A worker's reconciliation sweep (it runs one as it
  starts) is held on the wire by QuickBooks and the worker is killed with the actions claimed. The
  claims' leases run out (moved into the past, as for the digest) and the next worker's sweep finds
  each payment by its marker: one payment per bill, the ledger says succeeded, every card says Paid.
- A private redis-server (its own port and folder, no persistence) is killed and started again,
  empty, while two serve processes get every Pay click, twice each (Slack's retry), and every
  person clicks every bill again once it is back. A private PostgreSQL cluster
  (initdb in a temporary folder, as the `postgres` user when the test runs as root) is stopped as a
  crash stops it (`pg_ctl stop -m immediate`) and started again while one serve process gets them.
  Every delivery is answered 200 (never a 500), every click the outage broke is told to its person
  in words ("lost touch with its own storage… try again"), every bill is paid exactly once, and after the
  reconciliation sweep (run in the test process on a clock past the leases, as test_crash_restart
  does) no card says "Paying…".

Missing redis-server or initdb/pg_ctl skip their test with the reason (under CI=true, they fail).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import test_two_processes as two_processes
from db_conftest import MigratedDatabase
from sqlalchemy import select, update
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from test_crash_restart import AheadClock, card_line, marked, requests_unfinished, until
from test_two_processes import (
    ERROR_LINE,
    Served,
    Setup,
    World,
    _environment,
    business_ready,
    pay_clicks,
    payments_per_bill,
    serve_processes,
    signed_headers,
)

from bot.bootstrap import Oodaloo
from bot.local import BUSINESS_ID, OWNER, free_socket
from bot.models import DigestRun
from bot.settings import Settings, load_settings
from bot.slack import blocks as kit
from bot.slack.app import SlackBot
from bot.wiring import RitualJobsAdapter, ritual_for
from bot.worker.schedule import DIGEST_SWEEP_JOB
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency, PathRule
from runway.lifecycle import BillState
from runway.models import Business
from slack_sandbox.workspace import Message
from sync import BILL_PAYMENT_CREATE, Action, ActionState
from sync.db import upgrade_database
from sync.infrastructure import SyncSettings
from sync.ledger import ActionRow

pytestmark = pytest.mark.http

world = two_processes.world

#: How long QuickBooks or Slack keeps a request waiting: far longer than the kill takes.
HELD_MS = 1_500
WAIT_SECONDS = 20.0
#: The reconciler claims an action for twice the write lease (sync/reconcile.py).
RECONCILE_LEASE = timedelta(seconds=SyncSettings().write_lease_seconds() * 2 + 1)


# --- what the channel shows --------------------------------------------------------------------------


def digests(world: World, setup: Setup) -> list[Message]:
    """The digests in #finance (the messages with the digest's header), oldest first."""

    def header(message: Message) -> Any:
        return next((b for b in message.blocks if b.get("block_id") == "header"), None)

    title = header(setup.digest)
    assert title is not None, setup.digest.blocks
    return [m for m in world.slack.workspace.messages(setup.digest.channel) if header(m) == title]


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "text" and isinstance(inner, str):
                yield inner
            else:
                yield from _texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _texts(inner)


#: What a card says while a payment is on its way ("Paying…"), or while its outcome is unknown.
ON_ITS_WAY = ("Paying", "has not confirmed it yet")


def paying_lines(world: World, setup: Setup) -> list[str]:
    """Every line of a message in #finance that still says a payment is on its way."""
    return [
        text for m in world.slack.workspace.messages(setup.digest.channel)
        for text in [m.text, *_texts(m.blocks)] if any(words in text for words in ON_ITS_WAY)
    ]


# --- the worker --------------------------------------------------------------------------------------


def _folder(path: Path) -> None:
    path.mkdir(exist_ok=True)


async def start_worker(
    world: World, database_url: str, where: Path, name: str, *, redis_url: str | None = None
) -> Served:
    """`oodaloo worker` (without Redis unless `redis_url`), its output in `where/worker-name.log`."""
    _folder(where)
    log = where / f"worker-{name}.log"
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "worker",
            cwd=where,
            env=_environment(world.settings(database_url, redis_url, "http://127.0.0.1:3000")),
            stdout=output,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Served(f"worker {name}", "", process, log)


async def kill(one: Served) -> None:
    one.process.send_signal(signal.SIGKILL)
    assert await one.process.wait() == -signal.SIGKILL


def shown(*processes: Served) -> str:
    return "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in processes)


def no_errors(one: Served, *others: Served) -> None:
    bad = [line for line in one.output().splitlines() if ERROR_LINE.search(line)]
    assert not bad, f"{one.name} logged errors: {bad[:10]}\n{shown(one, *others)}"


def settings_of(world: World, database_url: str, redis: str | None = None) -> Settings:
    environment = world.settings(database_url, redis, "http://127.0.0.1:3000")
    return load_settings(**{name.lower(): value for name, value in environment.items()})


async def digest_due_a_minute_ago(oodaloo: Oodaloo) -> datetime:
    """The business's weekly digest made due a minute ago; the instant the worker names it by."""
    async with oodaloo.sessions() as session:
        business = await session.get(Business, BUSINESS_ID)
        assert business is not None
        local = (datetime.now(UTC) - timedelta(minutes=1)).astimezone(ZoneInfo(business.timezone))
        business.digest_weekday = local.weekday()
        business.digest_local_time = local.time().replace(microsecond=0)
        await session.commit()
    [schedule] = await RitualJobsAdapter(await ritual_for(oodaloo)).schedules()
    due = local.replace(microsecond=0).astimezone(UTC)
    assert (schedule.digest_weekday, schedule.digest_local_time) == (
        local.weekday(), local.time().replace(microsecond=0)
    )
    return due


async def digest_run(oodaloo: Oodaloo) -> DigestRun | None:
    async with oodaloo.sessions() as session:
        runs = list(await session.scalars(select(DigestRun).where(DigestRun.business_id == BUSINESS_ID)))
    assert len(runs) <= 1, runs
    return runs[0] if runs else None


async def payment_actions(oodaloo: Oodaloo) -> dict[str, Action]:
    """Bill id → its payment action (each bill has at most one)."""
    found: dict[str, Action] = {}
    for action in await oodaloo.actions():
        if action.operation == BILL_PAYMENT_CREATE:
            assert action.target_id not in found, (action, found)
            found[action.target_id] = action
    return found


# --- holding a request on the wire --------------------------------------------------------------------


class SlackHoldsPosts:
    """The local Slack keeps every chat.postMessage waiting before it reads it; once `dropped`, the
    held requests end as a connection the client gave up on (nothing is posted)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrived = 0
        self.dropped = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").endswith("/chat.postMessage"):
            await self.app(scope, receive, send)
            return
        self.arrived += 1
        await asyncio.to_thread(self.dropped.wait, WAIT_SECONDS)
        with contextlib.suppress(Exception):
            await Response("the client went away", status_code=503)(scope, receive, send)


@contextlib.contextmanager
def slack_holds_posts(world: World) -> Iterator[SlackHoldsPosts]:
    sandbox = world.slack.sandbox.app
    stack = sandbox.middleware_stack
    assert stack is not None, "the local Slack has not served a request yet"
    held = SlackHoldsPosts(stack)
    sandbox.middleware_stack = held
    try:
        yield held
    finally:
        sandbox.middleware_stack = stack
        held.dropped.set()


@contextlib.contextmanager
def quickbooks_slow(world: World, plan: FaultPlan) -> Iterator[None]:
    chaos = world.quickbooks.sandbox.chaos
    before = chaos.plan
    chaos.plan = plan
    try:
        yield
    finally:
        chaos.plan = before


EVERYTHING_HELD = FaultPlan(default=FaultRule(latency=Latency(fixed_ms=HELD_MS)))
ANSWERS_LOST = FaultPlan(by_path=[PathRule("billpayment*", FaultRule(rate_lost=1.0), method="POST")])


async def quickbooks_done(world: World) -> None:
    async def finished() -> bool | None:
        return True if requests_unfinished(world) == 0 else None

    await until("QuickBooks has finished every request it received", finished)


# --- 1. a worker killed mid-digest ------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_worker_killed_mid_digest_leaves_it_to_the_next_worker_which_posts_it_once(
    migrated: MigratedDatabase, world: World, tmp_path: Path
) -> None:
    settings = settings_of(world, migrated.url)
    async with business_ready(world, settings) as setup:
        due = await digest_due_a_minute_ago(setup.oodaloo)
        already = [m.ts for m in digests(world, setup)]
        assert already == [setup.digest.ts]

        # --- the first worker, killed while the digest is on the wire -----------------------------
        with slack_holds_posts(world) as slack_hold:
            victim = await start_worker(world, migrated.url, tmp_path, "killed")

            async def mid_digest() -> bool | None:
                victim.must_be_running()
                return True if slack_hold.arrived and await digest_run(setup.oodaloo) else None

            await until("Slack has the digest's chat.postMessage", mid_digest)
            await kill(victim)

        run = await digest_run(setup.oodaloo)
        assert run is not None and run.scheduled_for == due, (run, due)
        assert (run.attempts, run.slack_ts, run.posted_at, run.error) == (1, None, None, None), shown(victim)
        assert run.retry_at is not None and run.retry_at > datetime.now(UTC) + timedelta(minutes=15)
        assert [m.ts for m in digests(world, setup)] == already, "the killed worker posted nothing"

        # --- a worker started at once leaves the digest to its lease ------------------------------
        early = await start_worker(world, migrated.url, tmp_path, "early")
        await until("the early worker has fired its digest sweep", lambda: _swept(early))
        # Stopped with SIGTERM, a worker lets the jobs it started finish: its sweep is done.
        assert await early.stop() == 0, shown(victim, early)
        still = await digest_run(setup.oodaloo)
        assert still is not None and (still.attempts, still.slack_ts) == (1, None), shown(early)
        assert [m.ts for m in digests(world, setup)] == already

        # --- the lease runs out; the next worker takes the digest over ----------------------------
        async with setup.oodaloo.sessions() as session:
            await session.execute(
                update(DigestRun).where(DigestRun.id == run.id)
                .values(retry_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            await session.commit()
        restarted = await start_worker(world, migrated.url, tmp_path, "restarted")

        async def delivered() -> DigestRun | None:
            restarted.must_be_running()
            found = await digest_run(setup.oodaloo)
            return found if found is not None and found.retry_at is None else None

        done = await until("the digest is delivered", delivered)
        # Stopped with SIGTERM, the worker finishes what it started first: nothing posts again.
        exit_code = await restarted.stop()

        posted = [m.ts for m in digests(world, setup) if m.ts not in already]
        assert posted == [done.slack_ts], (posted, done.slack_ts, shown(victim, restarted))
        assert (done.attempts, done.error, done.given_up_at) == (2, None, None), done
        assert done.posted_at is not None and done.slack_channel_id == setup.digest.channel
        assert exit_code == 0, shown(restarted)
        no_errors(restarted, victim)


async def _swept(one: Served) -> bool | None:
    """Whether the worker has started its digest sweep: a worker that finds its job store from an
    earlier one hands the sweep over again as it starts ("catching up")."""
    one.must_be_running()
    return True if f"catching up on {DIGEST_SWEEP_JOB}" in one.output() else None


# --- 2. a worker killed mid-reconciliation ----------------------------------------------------------


async def click(url: str, world: World, body: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(
            f"{url}/slack/events", content=body.encode(),
            headers=signed_headers(world.signing_secret, body, retry=False),
        )


@contextlib.asynccontextmanager
async def serving(
    world: World, database_url: str, redis: str | None, where: Path, processes: int
) -> AsyncIterator[list[Served]]:
    _folder(where)
    previous = two_processes.PROCESSES
    two_processes.PROCESSES = processes
    try:
        async with serve_processes(world, database_url, redis, where) as served:
            yield served
    finally:
        two_processes.PROCESSES = previous


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_worker_killed_mid_reconciliation_leaves_each_payment_once_and_every_card_paid(
    migrated: MigratedDatabase, world: World, tmp_path: Path
) -> None:
    settings = settings_of(world, migrated.url)
    async with business_ready(world, settings) as setup:
        clicks = await pay_clicks(world, setup)
        bill_ids = kit.shown_ids(setup.digest.blocks, "bill")[:3]
        before = {str(p["Id"]) for p in world.bill_payments()}

        # --- Pay clicks whose answers QuickBooks loses: the actions are left unknown --------------
        with quickbooks_slow(world, ANSWERS_LOST):
            async with serving(world, migrated.url, None, tmp_path / "serve", 1) as [served]:
                answers = await asyncio.gather(
                    *(click(served.url, world, clicks[bill_id, OWNER]) for bill_id in bill_ids)
                )
                assert [a.status_code for a in answers] == [200] * len(bill_ids)

                async def all_unknown() -> dict[str, Action] | None:
                    actions = await payment_actions(setup.oodaloo)
                    states = {b: actions[b].state for b in bill_ids if b in actions}
                    if states != dict.fromkeys(bill_ids, ActionState.UNKNOWN):
                        return None
                    return actions

                actions = await until("each payment's outcome is unknown", all_unknown, 30.0)
                assert await served.stop() == 0, shown(served)
        for bill_id in bill_ids:
            assert len(marked(world, actions[bill_id].key)) == 1, "QuickBooks applied it"
            line = card_line(world, setup, bill_id)
            assert any(words in line for words in ON_ITS_WAY) and "Paid" not in line, line

        # --- a worker killed while its sweep waits for QuickBooks ---------------------------------
        with quickbooks_slow(world, EVERYTHING_HELD):
            victim = await start_worker(world, migrated.url, tmp_path, "killed")

            async def sweeping() -> bool | None:
                victim.must_be_running()
                now = await payment_actions(setup.oodaloo)
                claimed = [b for b in bill_ids if now[b].state is ActionState.IN_FLIGHT]
                return True if claimed and requests_unfinished(world) else None

            await until("the worker's sweep has claimed actions and asked QuickBooks", sweeping)
            await kill(victim)
        await quickbooks_done(world)
        left = await payment_actions(setup.oodaloo)
        claimed = [b for b in bill_ids if left[b].state is ActionState.IN_FLIGHT]
        assert claimed, left
        assert all(left[b].state in (ActionState.IN_FLIGHT, ActionState.UNKNOWN) for b in bill_ids), left

        # --- the claims' leases run out; the next worker settles every payment -------------------
        async with setup.oodaloo.sessions() as session:
            await session.execute(
                update(ActionRow).where(ActionRow.state == ActionState.IN_FLIGHT.value)
                .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
            await session.commit()
        restarted = await start_worker(world, migrated.url, tmp_path, "restarted")

        async def settled() -> bool | None:
            restarted.must_be_running()
            now = await payment_actions(setup.oodaloo)
            if any(now[b].state is not ActionState.SUCCEEDED for b in bill_ids):
                return None
            return True if all("Paid" in card_line(world, setup, b) for b in bill_ids) else None

        await until("every payment is settled and its card says Paid", settled)
        exit_code = await restarted.stop()

        new = [p for p in world.bill_payments() if str(p["Id"]) not in before]
        assert payments_per_bill(new) == Counter(dict.fromkeys(bill_ids, 1)), new
        done = await payment_actions(setup.oodaloo)
        services = await setup.oodaloo.services_for(BUSINESS_ID)
        for bill_id in bill_ids:
            [payment] = marked(world, done[bill_id].key)
            assert done[bill_id].state is ActionState.SUCCEEDED
            assert done[bill_id].qbo_object_id == str(payment["Id"]), (done[bill_id], payment)
            standing = await services.bills.standing(bill_id)
            assert standing.state is BillState.PAID and standing.balance == 0, standing
        assert paying_lines(world, setup) == [], paying_lines(world, setup)
        assert exit_code == 0, shown(restarted)
        no_errors(restarted, victim)


# --- the reconciliation sweep past every lease, in the test process ---------------------------------


async def sweep_after_every_lease(settings: Settings) -> list[Any]:
    """The worker's reconciliation sweep, wired as `oodaloo worker` wires it, on a clock past the
    leases of anything a click left in flight, until nothing is left to settle."""
    oodaloo = await Oodaloo.start(settings, clock=AheadClock(RECONCILE_LEASE), migrate=False)
    try:
        slack = SlackBot(oodaloo)
        ritual = await ritual_for(oodaloo, slack)
        resolutions = await ritual.reconcile_sweep()
        await slack.idle()
        assert await oodaloo.reconciler().due() == [], "a second sweep would still have work"
        return list(resolutions)
    finally:
        await oodaloo.aclose()


# --- the clicks in waves, with a restart in the middle -----------------------------------------------


@dataclass(frozen=True)
class Delivered:
    bill_id: str
    person: str
    process: int
    status: int
    text: str


async def clicks_around(
    world: World,
    setup: Setup,
    urls: list[str],
    restart: Callable[[], Awaitable[None]],
) -> list[Delivered]:
    """Every Pay click to every process, twice (the second as Slack's retry), in waves: the first
    third before the restart, the second third while it happens; then all of them again (Slack's
    retries) and every person clicking every bill again (a new click: told to try again, or
    clicking twice)."""
    clicks = await pay_clicks(world, setup)
    again = await pay_clicks(world, setup)
    keys = sorted(clicks)
    thirds = [keys[: len(keys) // 3], keys[len(keys) // 3: 2 * len(keys) // 3], keys]
    async with httpx.AsyncClient(timeout=30.0) as client:

        async def send(key: tuple[str, str], process: int, retry: bool, new: bool = False) -> Delivered:
            body = (again if new else clicks)[key]
            try:
                answer = await client.post(
                    f"{urls[process]}/slack/events", content=body.encode(),
                    headers=signed_headers(world.signing_secret, body, retry=retry),
                )
            except httpx.TransportError as exc:
                return Delivered(*key, process, 0, f"{type(exc).__name__}: {exc}")
            return Delivered(*key, process, answer.status_code, answer.text[:200])

        def wave(part: list[tuple[str, str]], new: bool = False) -> list[Awaitable[Delivered]]:
            return [
                send(key, process, retry, new)
                for key in part for process in range(len(urls)) for retry in (False, True)
            ]

        first = await asyncio.gather(*wave(thirds[0]))
        during = asyncio.gather(*wave(thirds[1]))
        await restart()
        second = await during
        third = await asyncio.gather(*wave(thirds[2]), *wave(keys, new=True))
    return [*first, *second, *third]


async def paid_once_and_drawn(
    world: World, setup: Setup, settings: Settings, served: list[Served], before: set[str]
) -> None:
    """Every bill paid exactly once in QuickBooks and in the database, and no card "Paying…" once
    the reconciliation sweep has run."""
    bill_ids = sorted(setup.bills)
    services = await setup.oodaloo.services_for(BUSINESS_ID)

    async def snapshot() -> tuple[object, ...]:
        standings = await services.bills.standings(bill_ids)
        actions = await payment_actions(setup.oodaloo)
        return tuple(
            (b, standings[b].state, actions[b].state if b in actions else None) for b in bill_ids
        )

    async def worked_off() -> bool | None:
        """Every bill paid, or the processes done with it (nothing has changed for a second and
        QuickBooks is idle): what is not paid is left to reconciliation."""
        first = await snapshot()
        if all(state is BillState.PAID for _, state, _ in first):  # type: ignore[misc]
            return True
        await asyncio.sleep(1.0)
        return True if await snapshot() == first and requests_unfinished(world) == 0 else None

    await until("the processes have worked off every click", worked_off, 30.0)
    await sweep_after_every_lease(settings)
    await two_processes.until_paid(setup.oodaloo, bill_ids, served)
    await until("QuickBooks has finished every request", lambda: _idle(world))
    new = [p for p in world.bill_payments() if str(p["Id"]) not in before]
    assert payments_per_bill(new) == Counter(dict.fromkeys(bill_ids, 1)), (
        f"BillPayments per bill: {dict(payments_per_bill(new))}\n{shown(*served)}"
    )
    assert len(new) == len(bill_ids)
    actions = await payment_actions(setup.oodaloo)
    assert {b: a.state for b, a in actions.items()} == dict.fromkeys(bill_ids, ActionState.SUCCEEDED)
    for bill_id, standing in (await services.bills.standings(bill_ids)).items():
        assert standing.state is BillState.PAID and standing.balance == 0, (bill_id, standing)

    async def nothing_paying() -> bool | None:
        return True if not paying_lines(world, setup) else None

    try:
        await until("no message says Paying…", nothing_paying, 10.0)
    except AssertionError:
        raise AssertionError(f"still Paying…: {paying_lines(world, setup)}\n{shown(*served)}") from None


async def _idle(world: World) -> bool | None:
    return True if requests_unfinished(world) == 0 else None


STORAGE_OUT_OF_REACH = "lost touch with its own storage"


def told_off(world: World, setup: Setup, served: list[Served]) -> None:
    """Every click the outage broke was answered to its person in words (nothing failed
    unexplained), and nothing else went wrong."""
    for one in served:
        output = one.output()
        assert "Slack work failed" not in output and "Traceback" not in output, shown(one)
        broken = output.count("could not be reached for a Slack request")
        told = [
            e for e in world.slack.workspace.ephemerals()
            if e.channel == setup.digest.channel and STORAGE_OUT_OF_REACH in e.text
        ]
        assert len(told) >= broken, (broken, told)


# --- 3. Redis restarted in the middle of clicks -------------------------------------------------------


def _missing(what: str, reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the {what} restart test: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_port(port: int, up: bool, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while _port_open(port) != up:
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} not {'open' if up else 'closed'} within {seconds}s")
        time.sleep(0.02)


class PrivateRedis:
    """A redis-server of this test's own: its port, its folder, nothing saved."""

    def __init__(self, binary: str, where: Path) -> None:
        self.binary = binary
        self.where = where
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = (self.where / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.where)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        _wait_port(self.port, up=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _wait_port(self.port, up=False)

    async def restart(self) -> None:
        """Killed (SIGKILL, its data gone with it) and started again, empty, on the same port."""
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)
        self.restarts += 1


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("Redis", "redis-server is not installed (apt-get install -y redis-server)")
    where = tmp_path / "redis"
    where.mkdir()
    redis = PrivateRedis(str(binary), where)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_redis_restarted_mid_clicks_every_bill_is_paid_once_and_every_click_answered(
    migrated: MigratedDatabase, world: World, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = settings_of(world, migrated.url, private_redis.url)
    async with business_ready(world, settings) as setup:
        before = {str(p["Id"]) for p in world.bill_payments()}
        async with serving(world, migrated.url, private_redis.url, tmp_path / "serve", 2) as served:
            delivered = await clicks_around(
                world, setup, [one.url for one in served], private_redis.restart
            )
            await paid_once_and_drawn(world, setup, settings, served, before)
            exits = [await one.stop() for one in served]
        assert private_redis.restarts == 1
        refused = [d for d in delivered if d.status != 200]
        assert not refused, f"{len(refused)} deliveries not answered 200: {refused[:5]}\n{shown(*served)}"
        assert exits == [0, 0], shown(*served)
        told_off(world, setup, served)


# --- 4. PostgreSQL restarted in the middle of clicks --------------------------------------------------


class PrivateCluster:
    """A PostgreSQL cluster of this test's own (initdb in a temporary folder, its own port), run by
    the `postgres` user when the test runs as root (PostgreSQL refuses to run as root)."""

    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="oodaloo-pg-"))
        self.data = self.folder / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.folder)
                _missing("PostgreSQL", "running as root and there is no `postgres` user to run a cluster as")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"

    def create(self) -> None:
        self._run(self.initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data} -c fsync=off"
        self._run(self.pg_ctl, "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                  "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")

    async def restart(self) -> None:
        """Stopped as a crash stops it (every backend quits at once, no checkpoint) and started
        again: it recovers from its write-ahead log."""
        await asyncio.to_thread(self.stop, "immediate")
        await asyncio.to_thread(self.start)
        self.restarts += 1

    def remove(self) -> None:
        with contextlib.suppress(AssertionError):
            self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateCluster]:
    initdb = shutil.which("initdb") or "/usr/local/bin/initdb"
    pg_ctl = shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl"
    if not (os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK)):
        _missing("PostgreSQL", "initdb and pg_ctl are not installed (apt-get install -y postgresql)")
    cluster = PrivateCluster(initdb, pg_ctl)
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


async def test_postgresql_restarted_mid_clicks_every_bill_is_paid_once_and_every_click_answered(
    world: World, tmp_path: Path, private_postgres: PrivateCluster
) -> None:
    await upgrade_database(private_postgres.url)
    settings = settings_of(world, private_postgres.url)
    async with business_ready(world, settings) as setup:
        before = {str(p["Id"]) for p in world.bill_payments()}
        async with serving(world, private_postgres.url, None, tmp_path / "serve", 1) as served:
            delivered = await clicks_around(
                world, setup, [one.url for one in served], private_postgres.restart
            )
            await paid_once_and_drawn(world, setup, settings, served, before)
            # The same process, never restarted, still serves.
            async with httpx.AsyncClient(timeout=5.0) as client:
                health = await client.get(f"{served[0].url}/healthz")
            assert health.status_code == 200, health.text
            exits = [await one.stop() for one in served]
        assert private_postgres.restarts == 1
        refused = [d for d in delivered if d.status != 200]
        assert not refused, f"{len(refused)} deliveries not answered 200: {refused[:5]}\n{shown(*served)}"
        assert exits == [0], shown(*served)
        told_off(world, setup, served)

