"""Two real `oodaloo serve` processes on one PostgreSQL database get the same Pay clicks at the
same moment, without Redis and with Redis, and every bill is paid exactly once.

The QuickBooks sandbox (the seeded company of `DEFAULT_SEED`) and the local Slack run over real
HTTP in threads of the test process. The test process sets the business up as `bot.local`'s
`local_stack` does (linked to #finance, connected with tokens, its mirror synced), approves all 12
open bills of the seeded company as the owner (and the one above the approval threshold as the
bookkeeper too), and posts the digest, whose cards then carry Pay buttons. Then both approvers
click Pay on every bill at once: each click is taken from the local Slack as it sends it (the
bills the digest does not list get the same button, built from the bill's id and open balance as
the digest builds it), signed with slack_sdk's SignatureVerifier, and posted at the same moment to
both processes, twice each (the second time as Slack's retry): 8 deliveries per bill, 96 in all.

Once every bill is paid in the database, both processes are stopped with SIGTERM (which lets the
work they started finish) and the test asserts: one BillPayment per bill in the QuickBooks company
and no other, one BillPayment request per bill reaching QuickBooks and none refused, every bill
paid in the database, every delivery answered 200, both processes exited 0, and neither printed a
traceback or an ERROR line.

Without Redis the processes share only the database: the claim on the bill row and the ledger
(whose key is the payment's requestid) keep a bill from being paid twice. With Redis they also
share the Slack delivery log (one process handles a delivery) and the per-bill lock. The Redis case
uses Redis database `REDIS_DB` of OODALOO_TEST_REDIS_URL's server (`oodaloo serve` has no key prefix
setting) and flushes it before and after: no other test may use that database. PostgreSQL and Redis
skip as everywhere in the suite (tests/sync/service_env.py): without OODALOO_TEST_POSTGRES_URL /
OODALOO_TEST_REDIS_URL the cases skip, under CI=true they fail.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from db_conftest import MigratedDatabase
from redis.asyncio import Redis
from service_env import REDIS_ENV, dedicated_redis_db, required_service_url
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import select

from bot.bootstrap import Oodaloo
from bot.local import BOOKKEEPER, BUSINESS_ID, CHANNEL, OWNER, free_socket
from bot.settings import Settings, load_settings
from bot.slack import blocks as kit
from bot.slack.app import SlackBot
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.seed_names import COMPANY_NAME
from qbo_sandbox.server import RunningSandbox
from qbo_sandbox.server import start_in_thread as start_quickbooks
from runway.crypto import generate_key
from runway.lifecycle import BillState
from runway.models import Bill
from runway.use_cases import Result, approve_bill
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack
from slack_sandbox.server import start_in_thread as start_slack
from slack_sandbox.user import SlackUserAgent
from slack_sandbox.workspace import Message
from sync import OAuthTokens

pytestmark = pytest.mark.http

REPOSITORY = Path(__file__).resolve().parents[2]
#: The Redis database of OODALOO_TEST_REDIS_URL's server that only this module uses (flushed).
REDIS_DB = dedicated_redis_db("two_processes")
#: The seeded company has this many open bills; the test needs at least MIN_BILLS of them.
MIN_BILLS = 10
PAYERS = (OWNER, BOOKKEEPER)
PROCESSES = 2
STARTUP_SECONDS = 60.0
SETTLE_SECONDS = 40.0
STOP_SECONDS = 30.0
ERROR_LINE = re.compile(r"\bERROR\b|Traceback")


# --- where the shared state lives ---------------------------------------------------------------


def _dedicated_redis_url() -> str:
    """OODALOO_TEST_REDIS_URL's server, database `REDIS_DB` (skips or fails as the suite does)."""
    base = str(required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379"))
    parts = urlsplit(base)
    if parts.scheme == "unix":
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "db"] + [("db", str(REDIS_DB))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


@pytest.fixture(params=["without_redis", "with_redis"])
async def redis_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """None (each process keeps its own in-memory state), or an emptied Redis database."""
    if request.param == "without_redis":
        yield None
        return
    url = _dedicated_redis_url()
    client = Redis.from_url(url)
    try:
        await client.flushdb()
        yield url
        await client.flushdb()
    finally:
        await client.aclose()


# --- the local QuickBooks and Slack ---------------------------------------------------------------


@dataclass
class World:
    """What both processes and the test process talk to, and the secrets they share."""

    quickbooks: RunningSandbox
    slack: RunningSlack
    token_key: str
    link_key: str

    @property
    def realm_id(self) -> str:
        return self.quickbooks.sandbox.realm_id

    @property
    def signing_secret(self) -> str:
        return self.slack.sandbox.config.signing_secret

    def settings(self, database_url: str, redis_url: str | None, public_url: str) -> dict[str, str]:
        """Oodaloo's settings, by their environment variables."""
        sandbox, slack = self.quickbooks.sandbox, self.slack.sandbox.config
        values = {
            "DATABASE_URL": database_url,
            "TOKEN_ENCRYPTION_KEY": self.token_key,
            "EMAIL_LINK_KEY": self.link_key,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": slack.signing_secret,
            "SLACK_API_URL": self.slack.api_url,
            "QBO_BASE_URL": self.quickbooks.base_url,
            "QBO_CLIENT_ID": sandbox.client_id,
            "QBO_CLIENT_SECRET": sandbox.client_secret,
            "PUBLIC_URL": public_url,
            "LOG_LEVEL": "INFO",
        }
        if redis_url is not None:
            values["REDIS_URL"] = redis_url
        return values

    def bill_payments(self) -> list[dict[str, Any]]:
        return list(self.quickbooks.sandbox.realm(self.realm_id).iter("BillPayment"))

    def payment_requests(self) -> int:
        """How many BillPayment creations QuickBooks was asked for (accepted or not)."""
        requests = self.quickbooks.sandbox.requests
        return requests.by_realm.get(self.realm_id, {}).get("billpayment", 0)

    def failed_requests(self) -> dict[str, int]:
        """QuickBooks' answers other than 2xx, by status."""
        by_status = self.quickbooks.sandbox.requests.by_status
        return {status: n for status, n in by_status.items() if not status.startswith("2")}


@pytest.fixture
def world() -> Iterator[World]:
    with (
        start_quickbooks(SandboxConfig(seed=DEFAULT_SEED)) as quickbooks,
        start_slack(SlackSandboxConfig()) as slack,
    ):
        yield World(quickbooks, slack, generate_key(), secrets.token_urlsafe(32))


# --- the business, set up in the test process ------------------------------------------------------


@dataclass
class Setup:
    oodaloo: Oodaloo
    digest: Message
    #: Bill id → the open balance its Pay button carries.
    bills: dict[str, Decimal]


@contextlib.asynccontextmanager
async def business_ready(world: World, settings: Settings) -> AsyncIterator[Setup]:
    """The business linked, connected and synced as `bot.local.local_stack` does it, every open
    bill approved by the approvers it needs, and the digest posted to #finance."""
    oodaloo = await Oodaloo.start(settings, migrate=False)
    try:
        sandbox, team_id = world.quickbooks.sandbox, world.slack.sandbox.config.team_id
        now = datetime.now(UTC)
        await oodaloo.directory.create(
            BUSINESS_ID,
            COMPANY_NAME,
            "America/Los_Angeles",
            realm_id=world.realm_id,
            slack_team_id=team_id,
            slack_channel_id=CHANNEL,
            approvers=list(PAYERS),
        )
        await oodaloo.directory.connect(
            BUSINESS_ID,
            world.realm_id,
            OAuthTokens(
                access_token=sandbox.access_token,
                refresh_token=sandbox.refresh_token,
                expires_at=now + timedelta(hours=1),
                refresh_expires_at=now + timedelta(days=100),
            ),
        )
        services = await oodaloo.services_for(BUSINESS_ID)
        await services.mirror.sync()
        async with oodaloo.sessions() as session:
            open_bills = (
                await session.scalars(
                    select(Bill)
                    .where(Bill.business_id == BUSINESS_ID, Bill.balance > 0)
                    .order_by(Bill.qbo_id)
                )
            ).all()
        bills = {bill.qbo_id: bill.balance for bill in open_bills}
        for bill_id, balance in bills.items():
            for approver in PAYERS:
                if not (await services.bills.standing(bill_id)).approvals_missing:
                    break
                outcome = await approve_bill(
                    services.bills, bill_id=bill_id, by=approver, seen_amount=balance
                )
                assert outcome.result is Result.DONE, (bill_id, approver, outcome)
        standings = await services.bills.standings(list(bills))
        assert all(standing.can_pay for standing in standings.values()), standings
        bot = SlackBot(oodaloo)
        # Nobody's Slack profile is known yet: each payer's first clicks arrive at both processes at
        # once and race to record the person, which must cost no click.
        channel, ts = await bot.post_digest(await oodaloo.digest(BUSINESS_ID))
        await bot.idle()
        digest = world.slack.workspace.message(channel, ts)
        assert digest is not None
        yield Setup(oodaloo, digest, bills)
    finally:
        await oodaloo.aclose()


# --- the clicks --------------------------------------------------------------------------------------


async def pay_clicks(world: World, setup: Setup) -> dict[tuple[str, str], str]:
    """(bill id, person) → the body of that person's Pay click on that bill, as the local Slack
    sends it (the request is caught, not delivered)."""

    def caught(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b""))

    agent = SlackUserAgent(
        world.slack.workspace,
        "http://oodaloo.invalid/slack/events",
        transport=httpx.MockTransport(caught),
    )
    shown = set(kit.shown_ids(setup.digest.blocks, "bill"))
    assert shown, "the digest shows no bill"
    clicks: dict[tuple[str, str], str] = {}
    try:
        for person in PAYERS:
            for bill_id in sorted(shown):
                delivery = await agent.click(
                    person, setup.digest, kit.BILL_PAY, block_id=f"bill_actions:{bill_id}"
                )
                clicks[bill_id, person] = delivery.request.body
            template = json.loads(parse_qs(clicks[min(shown), person])["payload"][0])
            for bill_id in sorted(set(setup.bills) - shown):
                clicks[bill_id, person] = _same_button_for(world, template, person, bill_id,
                                                            setup.bills[bill_id])
    finally:
        await agent.aclose()
    return clicks


def _same_button_for(
    world: World, template: dict[str, Any], person: str, bill_id: str, balance: Decimal
) -> str:
    """The person's Pay click of `template`, on the button the digest draws for `bill_id`
    (`bill_id|open balance` in block `bill_actions:bill_id`), with its own trigger and response URL."""
    workspace = world.slack.workspace
    payload = json.loads(json.dumps(template))
    container = payload["container"]
    issued = workspace.issue_response_url(
        container["channel_id"], person, message_ts=container["message_ts"], is_ephemeral=False
    )
    payload["response_url"] = workspace.response_url_for(issued.token)
    payload["trigger_id"] = workspace.issue_trigger(person)
    action = payload["actions"][0]
    action["block_id"] = f"bill_actions:{bill_id}"
    action["value"] = f"{bill_id}|{balance}"
    action["action_ts"] = f"{time.time():.6f}"
    return urlencode({"payload": json.dumps(payload)})


@dataclass(frozen=True)
class Answer:
    process: int
    bill_id: str
    person: str
    retry: bool
    status: int
    text: str


def signed_headers(secret: str, body: str, *, retry: bool) -> dict[str, str]:
    """As Slack signs (slack_sdk's SignatureVerifier); a retry carries Slack's retry headers."""
    stamp = str(int(time.time()))
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    assert signature is not None
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }
    if retry:
        headers |= {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
    return headers


async def click_everywhere(
    world: World, urls: list[str], clicks: dict[tuple[str, str], str]
) -> list[Answer]:
    """Every click to every process, twice (the second as Slack's retry), all at the same moment."""
    sends = [
        (process, bill_id, person, retry, body, signed_headers(world.signing_secret, body, retry=retry))
        for (bill_id, person), body in clicks.items()
        for process in range(len(urls))
        for retry in (False, True)
    ]
    limits = httpx.Limits(max_connections=len(sends), max_keepalive_connections=len(sends))
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def send(process: int, bill_id: str, person: str, retry: bool, body: str,
                       headers: dict[str, str]) -> Answer:
            answer = await client.post(
                f"{urls[process]}/slack/events", content=body.encode(), headers=headers
            )
            return Answer(process, bill_id, person, retry, answer.status_code, answer.text[:200])

        return list(await asyncio.gather(*(send(*one) for one in sends)))


# --- the processes -------------------------------------------------------------------------------


@dataclass
class Served:
    name: str
    url: str
    process: asyncio.subprocess.Process
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def must_be_running(self) -> None:
        """Fails the test, with the process's output, if the process has exited."""
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited:\n{self.output()}")

    async def stop(self) -> int | None:
        """SIGTERM, as a process manager stops it; killed (and None) if it does not exit."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), STOP_SECONDS)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
                return None
        return self.process.returncode


def _environment(settings: dict[str, str]) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "QBO_", "REDIS_", "DATABASE_", "TOKEN_", "EMAIL_", "SMTP_",
                             "OPERATOR_", "PUBLIC_URL", "LOG_LEVEL"))
    }
    return {**keep, "PYTHONPATH": str(REPOSITORY), **settings}


@contextlib.asynccontextmanager
async def serve_processes(
    world: World, database_url: str, redis_url: str | None, tmp_path: Path
) -> AsyncIterator[list[Served]]:
    """`PROCESSES` × `oodaloo serve` on loopback ports, answering /healthz; stopped afterwards."""
    served: list[Served] = []
    try:
        for number in range(PROCESSES):
            sock = free_socket()
            port = sock.getsockname()[1]
            sock.close()
            url = f"http://127.0.0.1:{port}"
            log = tmp_path / f"serve-{number}.log"
            with log.open("wb") as output:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1",
                    "--port", str(port),
                    cwd=tmp_path,
                    env=_environment(world.settings(database_url, redis_url, url)),
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                )
            served.append(Served(f"serve #{number} ({url})", url, process, log))
        async with httpx.AsyncClient(timeout=5.0) as client:

            async def healthy(one: Served) -> None:
                deadline = time.monotonic() + STARTUP_SECONDS
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await client.get(f"{one.url}/healthz")).status_code == 200:
                            return
                    if one.process.returncode is not None or time.monotonic() > deadline:
                        raise AssertionError(f"{one.name} did not start:\n{one.output()}")
                    await asyncio.sleep(0.1)

            await asyncio.gather(*(healthy(one) for one in served))
        yield served
    finally:
        for one in served:
            await one.stop()


# --- waiting and checking --------------------------------------------------------------------------


async def until_paid(oodaloo: Oodaloo, bill_ids: list[str], served: list[Served]) -> None:
    """Until every bill is paid in the database (the processes work after their ack)."""
    services = await oodaloo.services_for(BUSINESS_ID)
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        standings = await services.bills.standings(bill_ids)
        waiting = {b: s.state.value for b, s in standings.items() if s.state is not BillState.PAID}
        if not waiting:
            return
        if time.monotonic() > deadline or any(one.process.returncode is not None for one in served):
            outputs = "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in served)
            raise AssertionError(f"bills not paid after {SETTLE_SECONDS}s: {waiting}\n{outputs}")
        await asyncio.sleep(0.2)


def payments_per_bill(payments: list[dict[str, Any]]) -> Counter[str]:
    """How many of these BillPayments pay each bill."""
    paid: Counter[str] = Counter()
    for payment in payments:
        for line in payment.get("Line") or []:
            for linked in line.get("LinkedTxn") or []:
                if linked.get("TxnType") == "Bill":
                    paid[str(linked["TxnId"])] += 1
    return paid


# --- the test ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_the_same_clicks_at_two_serve_processes_pay_each_bill_once(
    migrated: MigratedDatabase, redis_url: str | None, world: World, tmp_path: Path
) -> None:
    setup_settings = world.settings(migrated.url, redis_url, "http://127.0.0.1:3000")
    settings = load_settings(**{name.lower(): value for name, value in setup_settings.items()})
    async with business_ready(world, settings) as setup:
        bill_ids = sorted(setup.bills)
        assert len(bill_ids) >= MIN_BILLS, f"the seeded company has {len(bill_ids)} open bills"
        clicks = await pay_clicks(world, setup)
        before = {str(payment["Id"]) for payment in world.bill_payments()}
        requests_before, failed_before = world.payment_requests(), world.failed_requests()

        async with serve_processes(world, migrated.url, redis_url, tmp_path) as served:
            answers = await click_everywhere(world, [one.url for one in served], clicks)
            await until_paid(setup.oodaloo, bill_ids, served)
            exits = [await one.stop() for one in served]
        outputs = {one.name: one.output() for one in served}
        shown = "\n".join(f"--- {name}\n{text[-8000:]}" for name, text in outputs.items())

        refused = [a for a in answers if a.status != 200]
        assert not refused, f"{len(refused)} deliveries not answered 200, e.g. {refused[:5]}\n{shown}"
        assert len(answers) == len(bill_ids) * len(PAYERS) * PROCESSES * 2
        assert exits == [0] * PROCESSES, f"exit codes {exits}\n{shown}"
        for name, text in outputs.items():
            bad = [line for line in text.splitlines() if ERROR_LINE.search(line)]
            assert not bad, f"{name} logged errors: {bad[:10]}\n{shown}"

        new = [p for p in world.bill_payments() if str(p["Id"]) not in before]
        paid = payments_per_bill(new)
        assert paid == Counter(dict.fromkeys(bill_ids, 1)), (
            f"BillPayments per bill (each must be paid exactly once): {dict(paid)}\n{shown}"
        )
        assert len(new) == len(bill_ids)
        # No fault is injected, so nothing needs a retry: each payment was asked for once, and
        # QuickBooks refused nothing (a second payment of a paid bill would be a 400).
        assert world.payment_requests() - requests_before == len(bill_ids), (
            f"{world.payment_requests() - requests_before} BillPayment requests for "
            f"{len(bill_ids)} bills\n{shown}"
        )
        assert world.failed_requests() == failed_before, (failed_before, world.failed_requests())
        services = await setup.oodaloo.services_for(BUSINESS_ID)
        standings = await services.bills.standings(bill_ids)
        for bill_id in bill_ids:
            standing = standings[bill_id]
            assert standing.state is BillState.PAID and standing.balance == 0, (bill_id, standing)
            assert standing.payment is not None and standing.payment.amount == setup.bills[bill_id]
        if redis_url is not None:
            # Redraws of one message take turns under the lock Redis shares, so the last one
            # drawn shows the last payment. (Without Redis each process has its own lock.)
            digest = world.slack.workspace.message(setup.digest.channel, setup.digest.ts)
            assert digest is not None
            buttons = [
                element.get("action_id")
                for block in digest.blocks
                if block.get("type") == "actions"
                for element in block.get("elements", [])
            ]
            assert kit.BILL_PAY not in buttons and kit.BILL_APPROVE not in buttons, buttons
