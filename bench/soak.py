"""Prints the figures of a soak: many businesses' mixed traffic for half an hour, faults on and off,
against two `oodaloo serve` and two `oodaloo worker` processes on PostgreSQL and Redis.

    .venv/bin/python bench/soak.py [--minutes 30] [--businesses 10] [--rate 3] [--concurrency 8]
        [--fault-phase 120] [--digest-every 5] [--seed 7]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--redis-url redis://127.0.0.1:6379/13]

The QuickBooks sandbox (one company per business, QuickBooks' limit of 500 requests per minute per
company) and the local Slack (one channel per business) run over real HTTP in threads of this
process; the four Oodaloo processes are real subprocesses sharing a fresh PostgreSQL schema and a
dedicated Redis database (flushed before and after: `oodaloo serve` has no key prefix setting).
Each business is linked, connected and synced as `bot.local` does it, its digest posted once, and
the sandbox sends its webhooks to one of the two web processes.

Traffic, at a fixed rate (`--rate` operations per second) with at most `--concurrency` at once:
bills entered in QuickBooks by someone else (their webhooks make the web processes sync), the
approvers' Approve and Pay clicks on them (a share delivered twice as Slack's retry, a share sent to
both web processes at the same moment, a share clicked by both approvers), `/runway` commands,
vendor edits in QuickBooks; the workers sync on their schedule and send each business's digest,
made due every `--digest-every` minutes by moving its weekly time (staggered over the businesses).
The sandbox's faults (5xx, 429, hangs, writes applied whose answer is lost, latency) are on and
off in phases of `--fault-phase` seconds, starting off.

Every `--sample` seconds the resident memory (VmRSS) of each process is read. At the end the faults
go off, the people click Pay again on bills whose payment failed, and the soak waits until the
ledger has nothing left to settle (the workers' reconciliation sweep; `oodaloo reconcile` once if
something is still due after `--settle` seconds). Then the processes are stopped with SIGTERM.

Printed: the traffic by kind and answer, QuickBooks requests, faults and webhooks, memory per
process (series, and growth from the first to the last window), and the checks: BillPayments per
payment action's marker (duplicates >1; missing: a succeeded action with none), bills paid more
than once, bills the people meant to pay left unpaid, cards left at "Paying…", digests per business
and due run (missing, given up, posted twice), 5xx answers, ERROR lines and tracebacks in the
processes' logs, exit codes. Figures only: nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import json
import logging
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as wall_time
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx
import simplejson
from redis.asyncio import Redis
from sqlalchemy import select

REPOSITORY = Path(__file__).resolve().parents[1]
# The suite's fixtures: a fresh PostgreSQL schema, and the two-process test's helpers.
sys.path.insert(0, str(REPOSITORY / "tests" / "sync"))
sys.path.insert(0, str(REPOSITORY / "tests" / "bot"))

from db_conftest import fresh_postgres_schema  # noqa: E402
from test_crash_restart_worker import start_worker  # noqa: E402
from test_two_processes import (  # noqa: E402
    ERROR_LINE,
    Served,
    World,
    _environment,
    payments_per_bill,
    serve_processes,
    signed_headers,
)

from bot.bootstrap import Oodaloo  # noqa: E402
from bot.local import BOOKKEEPER, OWNER  # noqa: E402
from bot.models import DigestRun, SlackMessage  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from bot.slack import blocks as kit  # noqa: E402
from bot.slack.app import SlackBot  # noqa: E402
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig  # noqa: E402
from qbo_sandbox.server import start_in_thread as start_quickbooks  # noqa: E402
from runway.crypto import generate_key  # noqa: E402
from runway.lifecycle import BillState  # noqa: E402
from slack_sandbox.config import ChannelSpec, SlackSandboxConfig  # noqa: E402
from slack_sandbox.server import start_in_thread as start_slack  # noqa: E402
from slack_sandbox.user import SlackUserAgent  # noqa: E402
from slack_sandbox.workspace import Message  # noqa: E402
from sync import OAuthTokens  # noqa: E402
from sync.actions import BILL_PAYMENT_CREATE, markers_in  # noqa: E402
from sync.ledger import ActionState  # noqa: E402

PAYERS = (OWNER, BOOKKEEPER)
TIMEZONES = ("America/Los_Angeles", "America/New_York", "America/Chicago", "Europe/London")
FINAL_STATES = {ActionState.SUCCEEDED, ActionState.FAILED}
#: A card's main line by the bill's state (templates/slack/bill_state.md.j2).
CARD_LINES = {
    "Paying…": re.compile(r":hourglass_flowing_sand: Paying "),
    "not confirmed": re.compile(r":hourglass: Payment of .*? QuickBooks has not confirmed it yet"),
    "needs a look": re.compile(r":warning: The payment of .*? needs a look in QuickBooks"),
    "Paid": re.compile(r":white_check_mark: Paid "),
}
ACCESS_5XX = re.compile(r'HTTP/1\.[01]" 5\d\d')
MB = 1024 * 1024


def fault_plan(seed: int) -> dict[str, Any]:
    return {
        "seed": seed,
        "by_kind": {
            "write": {
                "rate_5xx": 0.08,
                "rate_429": 0.02,
                "rate_hang": 0.02,
                "rate_lost": 0.10,
                "latency": {"min_ms": 5, "max_ms": 80},
            },
            "query": {"rate_5xx": 0.05, "rate_429": 0.01, "rate_hang": 0.01,
                      "latency": {"min_ms": 2, "max_ms": 40}},
            "read": {"rate_5xx": 0.05, "rate_hang": 0.01, "latency": {"min_ms": 2, "max_ms": 40}},
        },
        "hang_seconds": 20.0,
        "retry_after_seconds": 2,
    }


class SoakWorld(World):
    """The two-process test's world, with QuickBooks webhooks on (the sandbox's verifier token)."""

    def settings(self, database_url: str, redis_url: str | None, public_url: str) -> dict[str, str]:
        values = super().settings(database_url, redis_url, public_url)
        values["QBO_WEBHOOK_VERIFIER_TOKEN"] = self.quickbooks.sandbox.verifier_token
        return values


@dataclass
class Company:
    index: int
    business_id: str
    realm_id: str
    channel: str
    timezone: str
    serve: int  # the web process its webhooks go to
    vendors: list[dict[str, Any]] = field(default_factory=list)
    expense_account: dict[str, Any] = field(default_factory=dict)
    ap_account: dict[str, Any] = field(default_factory=dict)
    digest_ts: str = ""
    digest_due: list[datetime] = field(default_factory=list)
    payments_before: set[str] = field(default_factory=set)


@dataclass
class BillFlow:
    company: Company
    bill_id: str
    created: float
    pay_clicks: int = 0
    approve_clicks: int = 0
    done: bool = False
    meant_to_pay: bool = False
    last_state: str = "not synced"


@dataclass
class Figures:
    ops: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # "kind status"
    transport_errors: Counter[str] = field(default_factory=Counter)
    slow_acks: int = 0  # answered after Slack's 3 seconds
    late_starts: int = 0  # an operation that waited for a free slot longer than its tick
    waiting_for_sync: int = 0
    first_errors: dict[str, str] = field(default_factory=dict)
    states_seen: Counter[str] = field(default_factory=Counter)


# --- processes -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def worker_processes(
    world: World, database_url: str, redis_url: str, folder: Path, count: int
) -> AsyncIterator[list[Served]]:
    """`count` × `oodaloo worker`, stopped with SIGTERM afterwards."""
    workers: list[Served] = []
    try:
        for number in range(count):
            workers.append(
                await start_worker(world, database_url, folder, str(number), redis_url=redis_url)
            )
        yield workers
    finally:
        for one in workers:
            await one.stop()


def error_causes(text: str) -> Counter[str]:
    """Each ERROR line of a log with the first exception its traceback names (the root of a
    chain), counted."""
    causes: Counter[str] = Counter()
    message: str | None = None
    for line in [*text.splitlines(), ""]:
        if message is not None and line and not line[0].isspace() and not line.startswith(
            ("Traceback", "The above exception", "During handling")
        ) and not re.match(r"\d{4}-\d\d-\d\d |INFO:|WARNING:", line):
            causes[f"{message} <- {line[:160]}"] += 1
            message = None
        elif re.match(r"\d{4}-\d\d-\d\d ", line) or not line:
            if message is not None:
                causes[message] += 1
            message = line.split(" ERROR ", 1)[1][:120] if " ERROR " in line else None
    return causes


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        return None
    return None


# --- Slack requests --------------------------------------------------------------------------------


def click_body(world: World, person: str, message: Message, action_id: str, bill_id: str,
               value: str) -> str:
    """The person's click on a bill's button, as the local Slack's user agent builds it, whether
    or not `message` still shows that bill (the button carries the bill's id and balance)."""
    ws = world.slack.workspace
    user = ws.user(person)
    channel = ws.channel(message.channel)
    assert user is not None and channel is not None
    issued = ws.issue_response_url(channel.id, person, message_ts=message.ts, is_ephemeral=False)
    current = ws.message(message.channel, message.ts) or message
    label = "Pay" if action_id == kit.BILL_PAY else "Approve"
    payload = {
        "type": "block_actions",
        "user": {"id": user.id, "username": user.name, "name": user.name, "team_id": ws.team_id},
        "api_app_id": ws.app_id,
        "token": ws.config.verification_token,
        "container": {"type": "message", "message_ts": message.ts, "channel_id": channel.id,
                      "is_ephemeral": False},
        "trigger_id": ws.issue_trigger(person),
        "team": {"id": ws.team_id, "domain": ws.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel.id, "name": channel.name},
        "message": current.to_slack(ws.team_id),
        "state": {"values": {}},
        "response_url": ws.response_url_for(issued.token),
        "actions": [{
            "action_id": action_id,
            "block_id": f"bill_actions:{bill_id}",
            "text": {"type": "plain_text", "text": label, "emoji": True},
            "value": value,
            "type": "button",
            "action_ts": f"{time.time():.6f}",
        }],
    }
    return urlencode({"payload": json.dumps(payload)})


class Traffic:
    def __init__(self, args: argparse.Namespace, world: SoakWorld, oodaloo: Oodaloo,
                 companies: list[Company], urls: list[str], figures: Figures) -> None:
        self.args = args
        self.world = world
        self.oodaloo = oodaloo
        self.companies = companies
        self.urls = urls
        self.figures = figures
        self.rng = random.Random(args.seed)
        self.flows: dict[tuple[str, str], BillFlow] = {}
        self.due: list[tuple[float, int, tuple[str, str]]] = []  # (when, n, flow key)
        self.counter = 0
        # Idle connections are dropped before uvicorn's 5-second keep-alive closes them.
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=2.0)
        self.http = httpx.AsyncClient(timeout=30.0, limits=limits)
        self.agents = [SlackUserAgent(world.slack.workspace, f"{url}/slack/events", timeout=30.0,
                                      transport=httpx.AsyncHTTPTransport(limits=limits))
                       for url in urls]
        self.admin = httpx.AsyncClient(base_url=f"{world.quickbooks.base_url}/_sandbox",
                                       timeout=30.0, limits=limits)
        self.background: set[asyncio.Task[Any]] = set()

    async def aclose(self) -> None:
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
        await self.http.aclose()
        await self.admin.aclose()
        for agent in self.agents:
            await agent.aclose()

    def schedule(self, key: tuple[str, str], after: float) -> None:
        self.counter += 1
        heapq.heappush(self.due, (time.monotonic() + after, self.counter, key))

    # -- sending -------------------------------------------------------------------------------

    async def deliver(self, kind: str, process: int, body: str, *, retry: bool = False) -> None:
        headers = signed_headers(self.world.signing_secret, body, retry=retry)
        started = time.monotonic()
        try:
            answer = await self.http.post(f"{self.urls[process]}/slack/events",
                                          content=body.encode(), headers=headers)
        except httpx.TransportError as error:
            self.figures.transport_errors[f"{kind} {type(error).__name__}"] += 1
            return
        self.figures.answers[f"{kind} {answer.status_code}"] += 1
        if time.monotonic() - started > 3.0:
            self.figures.slow_acks += 1

    async def click(self, kind: str, company: Company, person: str, action_id: str,
                    bill_id: str, value: str) -> None:
        """One click, sometimes delivered again as Slack's retry, sometimes to both processes."""
        message = self.world.slack.workspace.message(company.channel, company.digest_ts)
        assert message is not None
        body = click_body(self.world, person, message, action_id, bill_id, value)
        process = self.rng.randrange(len(self.urls))
        sends = [self.deliver(kind, process, body)]
        if self.rng.random() < self.args.both_rate:
            sends.append(self.deliver(f"{kind} (both)", 1 - process, body))
        await asyncio.gather(*sends)
        if self.rng.random() < self.args.retry_rate:
            await asyncio.sleep(self.rng.uniform(0.0, 1.5))
            await self.deliver(f"{kind} (retry)", self.rng.randrange(len(self.urls)), body, retry=True)

    # -- operations ----------------------------------------------------------------------------

    async def new_bill(self) -> None:
        company = self.rng.choice(self.companies)
        amount = Decimal(self.rng.randrange(2_000, 450_000)) / 100
        vendor = self.rng.choice(company.vendors)
        today = datetime.now(ZoneInfo(company.timezone)).date()
        bill = {
            "DocNumber": f"SOAK-{self.counter:05d}",
            "TxnDate": today.isoformat(),
            "DueDate": (today + timedelta(days=self.rng.randrange(3, 20))).isoformat(),
            "VendorRef": {"value": vendor["Id"], "name": vendor.get("DisplayName")},
            "APAccountRef": {"value": company.ap_account["Id"], "name": company.ap_account["Name"]},
            "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
            "Line": [{
                "Id": "1", "LineNum": 1, "Description": "soak", "Amount": amount,
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {
                    "AccountRef": {"value": company.expense_account["Id"],
                                   "name": company.expense_account["Name"]},
                    "BillableStatus": "NotBillable", "TaxCodeRef": {"value": "NON"},
                },
            }],
            "TotalAmt": amount,
            "Balance": amount,
            "LinkedTxn": [],
        }
        response = await self.admin.post(f"/realms/{company.realm_id}/Bill",
                                         content=simplejson.dumps(bill, use_decimal=True))
        response.raise_for_status()
        bill_id = str(response.json()["Bill"]["Id"])
        key = (company.business_id, bill_id)
        self.flows[key] = BillFlow(company, bill_id, time.monotonic())
        self.schedule(key, self.rng.uniform(3.0, 10.0))

    async def vendor_edit(self) -> None:
        company = self.rng.choice(self.companies)
        vendor = self.rng.choice(company.vendors)
        response = await self.admin.post(
            f"/realms/{company.realm_id}/edit/Vendor/{vendor['Id']}",
            json={"Notes": f"soak edit {self.counter}"},
        )
        response.raise_for_status()

    async def runway_command(self) -> None:
        company = self.rng.choice(self.companies)
        agent = self.rng.choice(self.agents)
        try:
            delivery = await agent.slash_command(self.rng.choice(PAYERS), company.channel, "/runway")
        except httpx.TransportError as error:
            self.figures.transport_errors[f"/runway {type(error).__name__}"] += 1
            return
        self.figures.answers[f"/runway {delivery.status}"] += 1
        if delivery.answer_error == "operation_timeout":
            self.figures.slow_acks += 1

    async def bill_step(self, key: tuple[str, str]) -> None:
        """What an approver does next about the bill, from where it stands now."""
        flow = self.flows[key]
        company = flow.company
        services = await self.oodaloo.services_for(company.business_id)
        try:
            standing = await services.bills.standing(flow.bill_id)
        except Exception:  # noqa: BLE001 - not in the mirror yet (BillNotFound), or the database is busy
            self.figures.waiting_for_sync += 1
            self.schedule(key, 15.0)  # not in the mirror yet: the next sync brings it
            return
        flow.last_state = standing.state.value
        self.figures.states_seen[standing.state.value] += 1
        if standing.state is BillState.PAID:
            flow.done = True
            return
        if standing.state in (BillState.PAYING, BillState.UNKNOWN, BillState.NEEDS_PERSON):
            self.schedule(key, 10.0)
            return
        value = f"{flow.bill_id}|{standing.balance}"
        if standing.approvals_missing:
            person = next(p for p in PAYERS if p not in standing.approved_by)
            flow.approve_clicks += 1
            await self.click("approve", company, person, kit.BILL_APPROVE, flow.bill_id, value)
            self.schedule(key, self.rng.uniform(2.0, 6.0))
            return
        if standing.can_pay:
            flow.meant_to_pay = True
            flow.pay_clicks += 1
            person = self.rng.choice(PAYERS)
            clicks = [self.click("pay", company, person, kit.BILL_PAY, flow.bill_id, value)]
            if self.rng.random() < self.args.both_payers_rate:
                other = next(p for p in PAYERS if p != person)
                clicks.append(self.click("pay (other payer)", company, other, kit.BILL_PAY,
                                         flow.bill_id, value))
            await asyncio.gather(*clicks)
            self.schedule(key, self.rng.uniform(5.0, 12.0))
            return
        self.schedule(key, 10.0)

    def next_due_flow(self) -> tuple[str, str] | None:
        if self.due and self.due[0][0] <= time.monotonic():
            return heapq.heappop(self.due)[2]
        return None

    def pick(self) -> tuple[str, Any]:
        roll = self.rng.random()
        if roll < 0.15:
            return "new bill", self.new_bill()
        if roll < 0.30:
            return "/runway", self.runway_command()
        if roll < 0.35:
            return "vendor edit", self.vendor_edit()
        key = self.next_due_flow()
        if key is None:
            return "idle tick", None
        return "bill step", self.bill_step(key)

    async def run(self, seconds: float, gate: asyncio.Semaphore) -> None:
        """Operations at a fixed rate, at most `gate`'s worth at once, for `seconds`."""
        period = 1.0 / self.args.rate
        deadline = time.monotonic() + seconds
        tick = time.monotonic()
        while tick < deadline:
            tick += period
            kind, operation = self.pick()
            self.figures.ops[kind] += 1
            if operation is not None:
                waited = time.monotonic()
                await gate.acquire()
                if time.monotonic() - waited > period:
                    self.figures.late_starts += 1
                task = asyncio.create_task(self._run_one(kind, operation, gate))
                self.background.add(task)
                task.add_done_callback(self.background.discard)
            await asyncio.sleep(max(0.0, tick - time.monotonic()))

    async def _run_one(self, kind: str, operation: Any, gate: asyncio.Semaphore) -> None:
        try:
            await operation
        except Exception as error:  # noqa: BLE001 - counted, not raised: the soak goes on
            self.figures.transport_errors[f"{kind} {type(error).__name__}"] += 1
            self.figures.first_errors.setdefault(f"{kind} {type(error).__name__}", repr(error)[:300])
        finally:
            gate.release()

    async def finish_flows(self, seconds: float, gate: asyncio.Semaphore) -> None:
        """Faults off: the people keep at the bills they meant to pay (Pay again after a failure)
        until each is paid, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            open_flows = [k for k, f in self.flows.items() if f.meant_to_pay and not f.done]
            if not open_flows:
                return
            key = self.next_due_flow()
            if key is None:
                await asyncio.sleep(0.5)
                continue
            if not self.flows[key].meant_to_pay:
                continue  # bills nobody had got to yet stay as they are
            await gate.acquire()
            task = asyncio.create_task(self._run_one("bill step (settling)", self.bill_step(key), gate))
            self.background.add(task)
            task.add_done_callback(self.background.discard)


# --- digests ---------------------------------------------------------------------------------------


def next_digest_at(company: Company, at: datetime) -> dict[str, Any]:
    """The weekly schedule (weekday, local time) whose next firing is the whole minute at/after `at`."""
    local = at.astimezone(ZoneInfo(company.timezone))
    local = (local + timedelta(seconds=59)).replace(second=0, microsecond=0)
    company.digest_due.append(local.astimezone(UTC))
    return {"digest_weekday": local.weekday(), "digest_local_time": wall_time(local.hour, local.minute)}


async def digest_timetable(oodaloo: Oodaloo, companies: list[Company], started: float,
                           seconds: float, every: float, first_after: float) -> None:
    """Each business's digest made due `first_after` seconds in, then every `every` seconds
    (staggered): its weekly time moved ahead as soon as the previous one has passed (the leader
    re-reads schedules every 3 minutes, so `every` must leave it more than that)."""
    stagger = every / max(1, len(companies))
    plans = {c.business_id: first_after + i * stagger for i, c in enumerate(companies)}
    for company in companies:
        due = datetime.now(UTC) + timedelta(seconds=plans[company.business_id] - (time.monotonic() - started))
        await oodaloo.directory.update(company.business_id, **next_digest_at(company, due))
    while True:
        elapsed = time.monotonic() - started
        for company in companies:
            last = company.digest_due[-1]
            if datetime.now(UTC) > last + timedelta(seconds=20):
                nxt = last + timedelta(seconds=every)
                if (nxt - datetime.now(UTC)).total_seconds() + elapsed > seconds:
                    continue  # would fall after the traffic stops
                await oodaloo.directory.update(company.business_id, **next_digest_at(company, nxt))
        await asyncio.sleep(5.0)


# --- set-up ----------------------------------------------------------------------------------------


async def set_up_companies(args: argparse.Namespace, world: SoakWorld, oodaloo: Oodaloo,
                           admin: httpx.AsyncClient) -> list[Company]:
    sandbox = world.quickbooks.sandbox
    team_id = world.slack.sandbox.config.team_id
    bot = SlackBot(oodaloo)
    companies: list[Company] = []
    for index in range(args.businesses):
        if index == 0:
            realm_id, access, refresh = sandbox.realm_id, sandbox.access_token, sandbox.refresh_token
        else:
            made = (await admin.post("/realms", json={"seed": DEFAULT_SEED + index})).json()
            realm_id, access, refresh = made["realm_id"], made["access_token"], made["refresh_token"]
        company = Company(index, f"soak-{index:02d}", realm_id, f"C0SOAK{index:03d}",
                          TIMEZONES[index % len(TIMEZONES)], serve=index % 2)
        realm = sandbox.realm(realm_id)
        company.vendors = [v for v in realm.iter("Vendor") if v.get("Active", True)]
        accounts = list(realm.iter("Account"))
        company.expense_account = next(a for a in accounts if a.get("AccountType") == "Expense")
        company.ap_account = next(a for a in accounts if a.get("AccountType") == "Accounts Payable")
        company.payments_before = {str(p["Id"]) for p in realm.iter("BillPayment")}
        now = datetime.now(UTC)
        await oodaloo.directory.create(
            company.business_id, f"Soak Company {index}", company.timezone, realm_id=realm_id,
            slack_team_id=team_id, slack_channel_id=company.channel, approvers=list(PAYERS),
        )
        await oodaloo.directory.connect(
            company.business_id, realm_id,
            OAuthTokens(access_token=access, refresh_token=refresh,
                        expires_at=now + timedelta(hours=1),
                        refresh_expires_at=now + timedelta(days=100)),
        )
        services = await oodaloo.services_for(company.business_id)
        await services.mirror.sync()
        _, ts = await bot.post_digest(await oodaloo.digest(company.business_id))
        company.digest_ts = ts
        companies.append(company)
    await bot.idle()
    return companies


# --- the checks ------------------------------------------------------------------------------------


async def unsettled(oodaloo: Oodaloo) -> list[Any]:
    return [a for a in await oodaloo.actions() if a.state not in FINAL_STATES]


def cards_by_line(world: World, companies: list[Company]) -> dict[str, list[tuple[str, str]]]:
    """Line → (channel, message ts) of every card in the local Slack's messages drawn with it
    (Paid is there to show the search finds cards at all)."""
    found: dict[str, list[tuple[str, str]]] = {line: [] for line in CARD_LINES}
    for company in companies:
        for message in world.slack.workspace.messages(company.channel):
            text = json.dumps(message.blocks, ensure_ascii=False)
            for line, pattern in CARD_LINES.items():
                found[line] += [(company.channel, message.ts)] * len(pattern.findall(text))
    return found


async def run(args: argparse.Namespace, database_url: str) -> None:
    redis = Redis.from_url(args.redis_url)
    await redis.flushdb()
    channels = tuple(ChannelSpec(f"C0SOAK{i:03d}", f"finance-{i}") for i in range(args.businesses))
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL + 1)
    with (
        start_quickbooks(SandboxConfig(seed=DEFAULT_SEED)) as quickbooks,
        start_slack(SlackSandboxConfig(channels=channels)) as slack,
        tempfile.TemporaryDirectory(prefix="oodaloo-soak-") as tmp,
    ):
        folder = Path(args.logs or tmp)  # --logs: made by main()
        world = SoakWorld(quickbooks, slack, generate_key(), "soak-link-key-" + "x" * 32)
        env = world.settings(database_url, args.redis_url, "http://127.0.0.1:3000")
        settings = load_settings(**{name.lower(): value for name, value in env.items()})
        logging.getLogger("sync").setLevel(logging.CRITICAL)
        oodaloo = await Oodaloo.start(settings)
        admin = httpx.AsyncClient(base_url=f"{quickbooks.base_url}/_sandbox", timeout=30.0,
                                  limits=httpx.Limits(keepalive_expiry=2.0))
        set_up_started = time.monotonic()
        try:
            companies = await set_up_companies(args, world, oodaloo, admin)
            set_up_seconds = time.monotonic() - set_up_started
            async with (
                serve_processes(world, database_url, args.redis_url, folder) as served,
                worker_processes(world, database_url, args.redis_url, folder, 2) as workers,
            ):
                processes = [*served, *workers]
                for company in companies:
                    url = f"{served[company.serve].url}/qbo/webhooks"
                    (await admin.post("/webhooks", json={"realm_id": company.realm_id, "url": url})
                     ).raise_for_status()
                (await admin.put("/limits", json={"requests_per_minute": 500, "window_seconds": 60})
                 ).raise_for_status()
                (await admin.delete("/stats")).raise_for_status()
                figures = Figures()
                traffic = Traffic(args, world, oodaloo, companies, [s.url for s in served], figures)
                for company in companies:  # the bills already open in each company
                    for bill in quickbooks.sandbox.realm(company.realm_id).iter("Bill"):
                        if Decimal(str(bill.get("Balance") or 0)) > 0:
                            key = (company.business_id, str(bill["Id"]))
                            traffic.flows[key] = BillFlow(company, str(bill["Id"]), time.monotonic())
                            traffic.schedule(key, traffic.rng.uniform(1.0, 60.0))
                seconds = args.minutes * 60
                started = time.monotonic()
                samples: dict[str, list[tuple[float, float]]] = defaultdict(list)
                phases: list[tuple[float, bool]] = []

                async def sample_memory() -> None:
                    while True:
                        await asyncio.sleep(args.sample)  # the first once the traffic is on
                        for one in processes:
                            value = rss_mb(one.process.pid)
                            if value is not None:
                                samples[one.name].append((time.monotonic() - started, value))

                async def fault_phases() -> None:
                    on = False
                    while True:
                        phases.append((time.monotonic() - started, on))
                        (await admin.put("/faults", json=fault_plan(args.seed) if on else {})
                         ).raise_for_status()
                        await asyncio.sleep(args.fault_phase)
                        on = not on

                gate = asyncio.Semaphore(args.concurrency)
                helpers = [
                    asyncio.create_task(sample_memory()),
                    asyncio.create_task(fault_phases()),
                    asyncio.create_task(digest_timetable(
                        oodaloo, companies, started, seconds, args.digest_every * 60,
                        min(90.0, seconds / 2))),
                ]
                try:
                    await traffic.run(seconds, gate)
                finally:
                    helpers[1].cancel()
                    helpers[2].cancel()
                traffic_seconds = time.monotonic() - started
                (await admin.put("/faults", json={})).raise_for_status()
                stats_traffic = (await admin.get("/stats")).json()

                # Settle: people pay again what failed; the workers' sweeps settle what is unknown.
                settle_started = time.monotonic()
                await traffic.finish_flows(args.settle, gate)
                while time.monotonic() - settle_started < args.settle:
                    if not await unsettled(oodaloo):
                        break
                    await asyncio.sleep(5.0)  # the workers' sweeps settle them
                left_after_sweeps = len(await unsettled(oodaloo))
                reconcile_output = ""
                if left_after_sweeps:
                    ran = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "bot.cli", "reconcile", cwd=folder,
                        env=_environment(env), stdout=asyncio.subprocess.PIPE,
                        stderr=asyncio.subprocess.STDOUT)
                    reconcile_output = (await ran.communicate())[0].decode(errors="replace")
                await asyncio.sleep(5.0)  # the last redraws after the last answers
                settle_seconds = time.monotonic() - settle_started
                helpers[0].cancel()
                await traffic.aclose()
                exits = [await one.stop() for one in processes]
            outputs = {one.name: one.output() for one in processes}
            stats = (await admin.get("/stats")).json()

            # --- what is true now -------------------------------------------------------------
            actions = [a for a in await oodaloo.actions() if a.operation == BILL_PAYMENT_CREATE]
            marked: Counter[str] = Counter()
            new_payments: dict[str, Counter[str]] = {}
            for company in companies:
                payments = [p for p in quickbooks.sandbox.realm(company.realm_id).iter("BillPayment")
                            if str(p["Id"]) not in company.payments_before]
                for payment in payments:
                    for key in markers_in(payment.get("PrivateNote")):
                        marked[key] += 1
                new_payments[company.business_id] = payments_per_bill(payments)
            action_duplicates = [a.key for a in actions if marked[a.key] > 1]
            action_missing = [a.key for a in actions
                              if a.state is ActionState.SUCCEEDED and marked[a.key] == 0]
            disagreeing = [a.key for a in actions
                           if a.state is not ActionState.SUCCEEDED and marked[a.key] > 0]
            action_states = Counter(a.state.value for a in actions)
            bills_twice = [(b, bill) for b, paid in new_payments.items()
                           for bill, n in paid.items() if n > 1]
            meant = [f for f in traffic.flows.values() if f.meant_to_pay]
            unpaid_meant = []
            for flow in meant:
                realm = quickbooks.sandbox.realm(flow.company.realm_id)
                bill = realm.get("Bill", flow.bill_id)
                if bill is not None and Decimal(str(bill.get("Balance") or 0)) > 0:
                    final = [a.state.value for a in actions
                             if a.business_id == flow.company.business_id and a.target_id == flow.bill_id]
                    unpaid_meant.append((flow.company.business_id, flow.bill_id,
                                         final[-1] if final else "no payment action"))
            cards = cards_by_line(world, companies)
            paying_cards = cards["Paying…"]

            async with oodaloo.sessions() as session:
                runs = list(await session.scalars(select(DigestRun)))
                stored_digests = list(await session.scalars(
                    select(SlackMessage).where(SlackMessage.kind == "digest")))
            runs_by: dict[tuple[str, datetime], list[DigestRun]] = defaultdict(list)
            for one in runs:
                runs_by[one.business_id, one.scheduled_for.astimezone(UTC)].append(one)
            setup_ts = {c.digest_ts for c in companies}
            run_ts = {one.slack_ts for one in runs if one.slack_ts}
            digest_messages = 0
            stray_digests = 0
            stored_ts = {row.ts for row in stored_digests}
            for company in companies:
                for message in world.slack.workspace.messages(company.channel):
                    if message.ts in stored_ts and message.ts not in setup_ts:
                        digest_messages += 1
                        if message.ts not in run_ts:
                            stray_digests += 1
            end = datetime.now(UTC)
            due_runs = [(c.business_id, due) for c in companies for due in c.digest_due if due < end]
            posted = sum(1 for key in due_runs
                         if any(r.slack_ts for r in runs_by.get(key, [])))
            missing_digests = [key for key in due_runs if not any(r.slack_ts for r in runs_by.get(key, []))]
            given_up = [one for one in runs if one.given_up_at is not None]
            per_business = Counter(b for b, _ in due_runs)
            posted_per_business = Counter(b for b, d in due_runs if any(r.slack_ts for r in runs_by.get((b, d), [])))

            errors = {name: [line for line in text.splitlines() if ERROR_LINE.search(line)]
                      for name, text in outputs.items()}
            access_5xx = {name: len(ACCESS_5XX.findall(text)) for name, text in outputs.items()}
        finally:
            await admin.aclose()
            await oodaloo.aclose()
            await redis.flushdb()
            await redis.aclose()

    # --- the summary ---------------------------------------------------------------------------
    bench_5xx = sum(n for k, n in figures.answers.items() if k.split()[-1].startswith("5"))
    print(
        f"Soak: {args.minutes:g} min of traffic ({traffic_seconds:.0f} s) + {settle_seconds:.0f} s "
        f"settling; {args.businesses} businesses, 2 serve + 2 worker processes, PostgreSQL + Redis; "
        f"rate {args.rate:g} ops/s, concurrency {args.concurrency}, faults {args.fault_phase:g} s "
        f"on/off (off first), digests every {args.digest_every:g} min per business; seed {args.seed}; "
        f"set-up {set_up_seconds:.0f} s"
    )
    print(f"  operations: {dict(figures.ops)}; late starts (no free slot): {figures.late_starts}")
    print(f"  answers: {dict(sorted(figures.answers.items()))}")
    print(f"  transport errors / failed operations: {dict(figures.transport_errors) or 0}; "
          f"acks slower than 3 s: {figures.slow_acks}")
    for kind, text in figures.first_errors.items():
        print(f"    first {kind}: {text}")
    flows = traffic.flows.values()
    print(
        f"  bills: {len(traffic.flows)} in play ({sum(1 for f in flows if f.meant_to_pay)} clicked to "
        f"pay, {sum(f.pay_clicks for f in flows)} Pay rounds, {sum(f.approve_clicks for f in flows)} "
        f"Approve clicks); steps waiting for a sync: {figures.waiting_for_sync}; states seen: "
        f"{dict(figures.states_seen)}"
    )
    injected = {k: v for k, v in stats_traffic["faults"]["injected"].items() if k != "latency"}
    requests = {realm: sum(v.values()) for realm, v in stats["requests"]["by_realm"].items()}
    print(
        f"  QuickBooks: {sum(requests.values())} requests ({min(requests.values(), default=0)}–"
        f"{max(requests.values(), default=0)} per company, limit "
        f"{stats['limits']['requests_per_minute']}/min), by status {dict(stats['requests']['by_status'])}, "
        f"429s from the limit {stats['throttled_total']}; faults injected {injected}; fault phases "
        f"{', '.join(f'{t:.0f}s ' + ('on' if on else 'off') for t, on in phases)}"
    )
    hooks = {k: v for k, v in stats["webhooks"].items() if k not in ("registered", "recent")}
    print(f"  webhooks from QuickBooks: {hooks}")
    print("  memory (VmRSS MB, one sample every "
          f"{args.sample:g} s; growth = mean of the last window − mean of the first, window "
          f"{min(300.0, traffic_seconds / 3):.0f} s; bound {args.rss_bound:g} MB):")
    window = min(300.0, traffic_seconds / 3)
    for name, series in samples.items():
        values = [v for _, v in series]
        first = [v for t, v in series if t <= window] or values[:1]
        last = [v for t, v in series if traffic_seconds - window <= t <= traffic_seconds] or values[-1:]
        growth = statistics.mean(last) - statistics.mean(first)
        print(f"    {name:<36} {' '.join(f'{v:.0f}' for v in values)}")
        print(f"    {'':<36} first {statistics.mean(first):.1f} → last {statistics.mean(last):.1f}: "
              f"{growth:+.1f} MB ({'within' if abs(growth) <= args.rss_bound else 'OVER'} the bound)")
    attempts = Counter(min(a.attempts, 4) for a in actions)
    print(f"  payment actions: {len(actions)} by state {dict(action_states)}, by attempts "
          f"{dict(sorted(attempts.items()))} (4: 4 or more); still to settle after the sweeps: "
          f"{left_after_sweeps}"
          + (f" (oodaloo reconcile: {reconcile_output.strip().splitlines()[0]})" if reconcile_output else ""))
    print(
        f"  CHECKS  duplicates (an action's marker on >1 BillPayment): {len(action_duplicates)}   "
        f"bills paid more than once: {len(bills_twice)}   missing (succeeded, no BillPayment): "
        f"{len(action_missing)}   marked in QuickBooks but not succeeded: {len(disagreeing)}"
    )
    print(
        f"          bills clicked to pay left unpaid: {len(unpaid_meant)}"
        + (f" {unpaid_meant[:8]}" if unpaid_meant else "")
        + f"   cards left at Paying…: {len(paying_cards)}"
        + (f" {paying_cards[:5]}" if paying_cards else "")
        + f" (not confirmed: {len(cards['not confirmed'])}, needs a look: "
        f"{len(cards['needs a look'])}; cards showing Paid: {len(cards['Paid'])})"
    )
    print(
        f"          digests: {len(due_runs)} due, {posted} posted ({dict(posted_per_business)} of "
        f"{dict(per_business)}), missing {len(missing_digests)}"
        + (f" {[(b, d.isoformat()) for b, d in missing_digests[:5]]}" if missing_digests else "")
        + f", given up {len(given_up)}, digest messages in Slack {digest_messages} "
        f"(not of a run: {stray_digests}), runs {len(runs)}"
    )
    print(f"          HTTP 5xx: {bench_5xx} answered to the bench, in the processes' access logs "
          f"{access_5xx}")
    print(f"          ERROR lines / tracebacks: {({n: len(e) for n, e in errors.items()})}   "
          f"exit codes: {exits}")
    for name, text in outputs.items():
        for cause, count in error_causes(text).most_common(6):
            print(f"            {name}: {count} × {cause}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--businesses", type=int, default=10)
    parser.add_argument("--rate", type=float, default=3.0, help="operations per second")
    parser.add_argument("--concurrency", type=int, default=8, help="operations at once, at most")
    parser.add_argument("--fault-phase", type=float, default=120.0, help="seconds faults stay on (or off)")
    parser.add_argument("--digest-every", type=float, default=5.0, help="minutes between a business's digests (> 4)")
    parser.add_argument("--retry-rate", type=float, default=0.3, help="share of clicks Slack delivers again")
    parser.add_argument("--both-rate", type=float, default=0.3, help="share of clicks sent to both web processes")
    parser.add_argument("--both-payers-rate", type=float, default=0.15, help="share of Pay rounds both approvers click")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between memory samples")
    parser.add_argument("--rss-bound", type=float, default=30.0, help="MB of growth the summary calls flat")
    parser.add_argument("--settle", type=float, default=300.0, help="seconds to wait for settling")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    parser.add_argument("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="a Redis database only the soak uses (flushed before and after)")
    args = parser.parse_args()
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    asyncio.run(soak(args))


async def soak(args: argparse.Namespace) -> None:
    async for url in fresh_postgres_schema(args.database_url):
        await run(args, url)


if __name__ == "__main__":
    main()
