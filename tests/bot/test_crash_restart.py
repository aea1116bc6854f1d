"""A real `oodaloo serve` process killed with SIGKILL in the middle of a Pay: once it is back and
the reconciliation sweep has run, the bill is paid exactly once and the Slack card says Paid.

The set-up is tests/bot/test_two_processes.py's (imported, not copied): the QuickBooks sandbox and
the local Slack over real HTTP in threads of the test process, one PostgreSQL database, the
business linked, synced, every open bill approved and the digest posted; with Redis and without.
One `oodaloo serve` process gets the owner's signed Pay click on one bill of the digest.

QuickBooks is made to hold that BillPayment request, and the process is killed (SIGKILL, nothing
runs after it) once the sandbox has it, in one of two ways:

- `before_applied`: the fault plan's latency on BillPayment writes keeps the request waiting before
  QuickBooks reads it; the process is killed as soon as the sandbox has received it. The dead
  client's request is never applied, so reconciliation finds no payment with the marker and sends
  it again under the same requestid.
- `after_applied`: QuickBooks applies the payment and its answer is held back; the process is
  killed once the payment (with the action's `oodaloo:<key>` marker) is in the company, so it never
  hears that it succeeded. Reconciliation finds the payment by its marker and sends nothing.

Killed, the bill is "Paying…" on its card and in the database and the ledger action is in flight.
Recovery is what production runs after a crash: `oodaloo serve` is started again, and the worker's
reconciliation sweep (`Ritual.reconcile_sweep`, wired by `ritual_for` as `oodaloo worker` wires it,
with its Slack bot redrawing what a resolution changes) runs once the action's lease has expired.
The lease of a user's payment is `SyncSettings.write_lease_seconds()` (88 s) and no setting makes
it shorter, so the sweep runs in the test process on a clock that is that far ahead of the wall
clock (only the sweep's clock moves; QuickBooks, Slack and the database keep real time).

Asserted: exactly one BillPayment in QuickBooks carries the action's marker and it is the only new
payment of the bill, the ledger action succeeded with that payment's id, the bill is paid in the
database, the card says Paid (no "Paying…"), a second sweep finds nothing to do, and the restarted
process exits 0 on SIGTERM without an error logged.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import test_two_processes as two_processes
from db_conftest import MigratedDatabase
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from test_two_processes import (
    ERROR_LINE,
    Served,
    Setup,
    World,
    business_ready,
    pay_clicks,
    payments_per_bill,
    serve_processes,
    signed_headers,
)

from bot.bootstrap import Oodaloo
from bot.local import BUSINESS_ID, OWNER
from bot.settings import Settings, load_settings
from bot.slack import blocks as kit
from bot.slack.app import SlackBot
from bot.wiring import ritual_for
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency, PathRule
from qbo_sandbox.limits import parse_v3_path
from runway.lifecycle import BillState
from sync import BILL_PAYMENT_CREATE, Action, ActionState
from sync.actions import marker_for
from sync.infrastructure import SyncSettings
from sync.reconcile import FOUND, RESENT

pytestmark = pytest.mark.http

# The shared fixtures (the sandboxes; Redis or not), under the names the test asks for.
world = two_processes.world
redis_url = two_processes.redis_url

#: How long QuickBooks keeps a BillPayment write waiting before it reads it (`before_applied`):
#: far longer than the kill takes, short enough that the sandbox's stop does not wait long for it.
HELD_MS = 3_000
WAIT_SECONDS = 15.0

T = TypeVar("T")


class AheadClock:
    """The wall clock, `ahead` later: a sweep running after the lease of the killed process expired."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def monotonic(self) -> float:
        return time.monotonic()


class AnswersHeld:
    """QuickBooks' data plane, applying BillPayment creations at once and holding their answers
    until `release` is set (the client may be dead by then)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope.get("path", "")) if scope["type"] == "http" else None
        if target is None or scope["method"] != "POST" or not target.subpath.lower().startswith(
            "billpayment"
        ):
            await self.app(scope, receive, send)
            return
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        await asyncio.to_thread(self.release.wait, WAIT_SECONDS)
        for message in answer:
            await send(message)


@contextlib.contextmanager
def quickbooks_holds_payments(world: World, killed: str) -> Iterator[None]:
    """BillPayment writes kept waiting before (`before_applied`) or after (`after_applied`) they
    are applied, until the block ends."""
    chaos = world.quickbooks.sandbox.chaos
    plan, app = chaos.plan, chaos.app
    held = AnswersHeld(app)
    if killed == "before_applied":
        rule = FaultRule(latency=Latency(fixed_ms=HELD_MS))
        chaos.plan = FaultPlan(by_path=[PathRule("billpayment*", rule, method="POST")])
    else:
        chaos.app = held
    try:
        yield
    finally:
        chaos.plan, chaos.app = plan, app
        held.release.set()


async def until(what: str, check: Callable[[], Awaitable[T | None]],
                seconds: float = WAIT_SECONDS) -> T:
    """`check()`'s first answer that is not None, asked every 50 ms for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.05)


def card_line(world: World, setup: Setup, bill_id: str) -> str:
    """The main line of the bill's card in the digest, as Slack shows it now."""
    digest = world.slack.workspace.message(setup.digest.channel, setup.digest.ts)
    assert digest is not None
    block = next(b for b in digest.blocks if b.get("block_id") == f"bill:{bill_id}")
    return str(block["text"]["text"])


def requests_unfinished(world: World) -> int:
    """How many requests QuickBooks has received and not finished yet (a held one, say)."""
    stats = world.quickbooks.sandbox.requests.stats()
    received = sum(sum(routes.values()) for routes in stats["by_realm"].values())
    return int(received - stats["total"])


def marked(world: World, key: str) -> list[dict[str, Any]]:
    """The company's BillPayments carrying the action's marker."""
    marker = marker_for(key)
    return [p for p in world.bill_payments() if marker in str(p.get("PrivateNote") or "")]


async def payment_action(oodaloo: Oodaloo, bill_id: str) -> Action | None:
    found = [
        action for action in await oodaloo.actions()
        if action.operation == BILL_PAYMENT_CREATE and action.target_id == bill_id
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


async def sweep_after_the_lease(settings: Settings) -> list[Any]:
    """The worker's reconciliation sweep, wired as `oodaloo worker` wires it, on a clock past the
    lease of the killed process."""
    lease = timedelta(seconds=SyncSettings().write_lease_seconds() + 1)
    oodaloo = await Oodaloo.start(settings, clock=AheadClock(lease), migrate=False)
    try:
        slack = SlackBot(oodaloo)
        ritual = await ritual_for(oodaloo, slack)
        resolutions = await ritual.reconcile_sweep()
        await slack.idle()
        assert await oodaloo.reconciler().due() == [], "a second sweep would still have work"
        return list(resolutions)
    finally:
        await oodaloo.aclose()


def _make_directory(path: Path) -> None:
    path.mkdir()


@contextlib.asynccontextmanager
async def one_serve_process(
    world: World, database_url: str, redis: str | None, where: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Served]:
    _make_directory(where)
    with monkeypatch.context() as patched:
        patched.setattr(two_processes, "PROCESSES", 1)
        async with serve_processes(world, database_url, redis, where) as served:
            yield served[0]


@pytest.mark.parametrize("killed", ["before_applied", "after_applied"])
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_a_serve_process_killed_mid_payment_pays_the_bill_once_after_recovery(
    migrated: MigratedDatabase,
    redis_url: str | None,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    killed: str,
) -> None:
    environment = world.settings(migrated.url, redis_url, "http://127.0.0.1:3000")
    settings = load_settings(**{name.lower(): value for name, value in environment.items()})
    async with business_ready(world, settings) as setup:
        clicks = await pay_clicks(world, setup)
        bill_id = kit.shown_ids(setup.digest.blocks, "bill")[0]
        body = clicks[bill_id, OWNER]
        before = {str(payment["Id"]) for payment in world.bill_payments()}
        requests_before = world.payment_requests()
        logs: list[Served] = []
        started = time.monotonic()

        # --- killed while QuickBooks holds the payment -------------------------------------------
        with quickbooks_holds_payments(world, killed):
            async with one_serve_process(
                world, migrated.url, redis_url, tmp_path / "killed", monkeypatch
            ) as victim:
                logs.append(victim)
                async with httpx.AsyncClient(timeout=10.0) as client:
                    answer = await client.post(
                        f"{victim.url}/slack/events",
                        content=body.encode(),
                        headers=signed_headers(world.signing_secret, body, retry=False),
                    )
                assert answer.status_code == 200, answer.text

                async def sent() -> bool | None:
                    victim.must_be_running()
                    if world.payment_requests() == requests_before:
                        return None
                    if killed == "after_applied" and not any(
                        str(p["Id"]) not in before for p in world.bill_payments()
                    ):
                        return None
                    return True

                await until("QuickBooks has the BillPayment request", sent)
                victim.process.send_signal(signal.SIGKILL)
                assert await victim.process.wait() == -signal.SIGKILL
            killed_at = time.monotonic()

            action = await payment_action(setup.oodaloo, bill_id)
            assert action is not None, "no payment action in the ledger"
            shown = "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in logs)
            assert action.state is ActionState.IN_FLIGHT, (action, shown)
            assert world.payment_requests() - requests_before == 1
            applied = marked(world, action.key)
            assert len(applied) == (1 if killed == "after_applied" else 0), applied
            services = await setup.oodaloo.services_for(BUSINESS_ID)
            assert (await services.bills.standing(bill_id)).state is BillState.PAYING
            assert "Paying" in card_line(world, setup, bill_id), card_line(world, setup, bill_id)

        # --- recovery: the process started again, the reconciliation sweep --------------------
        async with one_serve_process(
            world, migrated.url, redis_url, tmp_path / "restarted", monkeypatch
        ) as restarted:
            logs.append(restarted)
            # Started again, nothing has touched the payment: the killed process's lease stands.
            still = await payment_action(setup.oodaloo, bill_id)
            assert still is not None and still.state is ActionState.IN_FLIGHT, still
            resolutions = await sweep_after_the_lease(settings)

            async def card_paid() -> str | None:
                line = card_line(world, setup, bill_id)
                return line if "Paid" in line and "Paying" not in line else None

            line = await until("the card says Paid", card_paid)
            recovered_at = time.monotonic()
            exit_code = await restarted.stop()
        shown = "\n".join(f"--- {one.name}\n{one.output()[-6000:]}" for one in logs)

        # The killed process's request may still be held by QuickBooks: what it does when it is
        # let through (its client long gone) counts too.
        async def all_finished() -> bool | None:
            return True if requests_unfinished(world) == 0 else None

        await until("QuickBooks has finished every request it received", all_finished)
        assert [(r.key, r.previous_state, r.state, r.how) for r in resolutions] == [
            (action.key, ActionState.IN_FLIGHT, ActionState.SUCCEEDED,
             FOUND if killed == "after_applied" else RESENT)
        ], (resolutions, shown)
        payments = marked(world, action.key)
        assert len(payments) == 1, (payments, shown)
        new = [p for p in world.bill_payments() if str(p["Id"]) not in before]
        assert [str(p["Id"]) for p in new] == [str(payments[0]["Id"])], new
        assert payments_per_bill(new) == {bill_id: 1}
        assert world.payment_requests() - requests_before == (
            1 if killed == "after_applied" else 2
        ), shown
        done = await payment_action(setup.oodaloo, bill_id)
        assert done is not None and done.state is ActionState.SUCCEEDED, done
        assert done.qbo_object_id == str(payments[0]["Id"]), (done, payments)
        standing = await services.bills.standing(bill_id)
        assert standing.state is BillState.PAID and standing.balance == 0, standing
        assert standing.payment is not None and standing.payment.amount == setup.bills[bill_id]
        assert ":white_check_mark: Paid" in line, line

        assert exit_code == 0, shown
        errors = [ln for ln in restarted.output().splitlines() if ERROR_LINE.search(ln)]
        assert not errors, f"the restarted process logged errors: {errors}\n{shown}"
        print(json.dumps({
            "killed": killed,
            "redis": redis_url is not None,
            "click_to_kill_s": round(killed_at - started, 2),
            "kill_to_card_paid_s": round(recovered_at - killed_at, 2),
        }))
