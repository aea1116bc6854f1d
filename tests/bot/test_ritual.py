"""The jobs the scheduler runs, end to end: the bot over HTTP, the local Slack, the QBO sandbox and a
real SMTP server, on SQLite and PostgreSQL. Posting, mailing and QuickBooks are the real things;
only time is moved, by the stack's own clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import simplejson
from conftest_email import MailHandler, MailServer, mail_server, start_mail_server
from db_conftest import MigratedDatabase
from sqlalchemy import select, update
from test_slack_scenarios import _small_bill, _status

from bot.email_wiring import digest_mailer
from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.models import DigestRun
from bot.ritual import Ritual
from qbo_sandbox.chaos import FaultPlan, FaultRule, PathRule
from runway.models import QBOConnection
from slack_sandbox.workspace import Message
from sync.ledger import ActionState
from sync_harness import edit_bill_amount, payments_marked

__all__ = ["mail_server"]  # the SMTP fixture, imported for pytest

RECIPIENTS = ("owner@larkspur.example", "books@larkspur.example")


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, email_recipients=RECIPIENTS) as built:
        yield built


def ritual_over(stack: LocalStack, smtp_url: str) -> Ritual:
    return Ritual(
        stack.oodaloo,
        post_digest=stack.bot.post_digest,
        mail_digest=digest_mailer(stack.oodaloo, smtp_url),
        alert_drift=stack.bot.post_drift_alerts,
    )


def move_clock(stack: LocalStack, monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """Every part of the stack (ledger, sync timing, tokens, digests) reads this one clock."""
    clock = stack.oodaloo.clock
    real: Callable[[], datetime] = clock.now
    monkeypatch.setattr(clock, "now", lambda: real() + by)


def digests_in_channel(stack: LocalStack) -> list[Message]:
    return [
        m for m in stack.workspace.messages(CHANNEL)
        if any(str(b.get("block_id", "")).startswith("bill") for b in m.blocks)
    ]


def delivered_to(server: MailServer) -> list[str]:
    return sorted(rcpt for envelope in server.handler.received for rcpt in envelope.rcpt_tos)


async def digest_runs(stack: LocalStack) -> list[DigestRun]:
    async with stack.oodaloo.sessions() as session:
        return list(await session.scalars(select(DigestRun).order_by(DigestRun.scheduled_for)))


def shown(message: Message) -> str:
    return message.text + " " + simplejson.dumps(message.blocks)


async def test_the_digest_is_posted_and_mailed_once_per_scheduled_time(
    stack: LocalStack, mail_server: MailServer
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    due = datetime.now(UTC).replace(microsecond=0)

    sent = await ritual.send_digest(BUSINESS_ID, due)
    assert sent.posted and not sent.already_sent
    assert sent.channel_id == CHANNEL and sent.ts is not None
    posted = stack.message(sent.ts)
    assert "Runway" in shown(posted)
    assert sorted(sent.emailed_to) == sorted(RECIPIENTS)
    assert delivered_to(mail_server) == sorted(RECIPIENTS)
    subjects = {str(message["Subject"]) for message in mail_server.handler.messages()}
    assert len(subjects) == 1 and "runway" in subjects.pop().lower()

    again = await ritual.send_digest(BUSINESS_ID, due)
    assert again.already_sent and not again.posted and again.emailed_to == ()
    assert digests_in_channel(stack) == [posted]
    assert delivered_to(mail_server) == sorted(RECIPIENTS)

    [run] = await digest_runs(stack)
    assert (run.slack_channel_id, run.slack_ts) == (CHANNEL, sent.ts)
    assert sorted(run.emailed_to) == sorted(RECIPIENTS)
    assert run.posted_at is not None and run.error is None
    assert run.figures is not None and run.figures["status"]


async def test_two_workers_firing_the_same_digest_send_it_once(
    stack: LocalStack, mail_server: MailServer
) -> None:
    first, second = ritual_over(stack, mail_server.url), ritual_over(stack, mail_server.url)
    due = datetime.now(UTC).replace(microsecond=0)

    outcomes = await asyncio.gather(
        first.send_digest(BUSINESS_ID, due), second.send_digest(BUSINESS_ID, due)
    )
    assert sorted((o.posted, o.already_sent) for o in outcomes) == [(False, True), (True, False)]
    assert len(digests_in_channel(stack)) == 1
    assert delivered_to(mail_server) == sorted(RECIPIENTS)
    assert len(await digest_runs(stack)) == 1


async def test_a_week_later_the_digest_shows_the_trend(
    stack: LocalStack, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    due = datetime.now(UTC).replace(microsecond=0)
    first = await ritual.send_digest(BUSINESS_ID, due)
    assert first.ts is not None
    assert "since last week" not in shown(stack.message(first.ts)), "nothing to compare with yet"

    move_clock(stack, monkeypatch, timedelta(days=7))
    week_later = await ritual.send_digest(BUSINESS_ID, due + timedelta(days=7))
    assert week_later.posted and week_later.ts is not None
    assert "since last week" in shown(stack.message(week_later.ts))
    newest = mail_server.handler.messages()[-len(RECIPIENTS):]
    assert all("since last week" in str(m.get_body(preferencelist=("plain",))) for m in newest)
    runs = await digest_runs(stack)
    assert [run.scheduled_for for run in runs] == [due, due + timedelta(days=7)]


async def test_refused_email_still_posts_to_slack_and_the_run_records_why(stack: LocalStack) -> None:
    refused, accepted = RECIPIENTS
    controller, server = start_mail_server(
        MailHandler(refuse={refused: "550 5.1.1 <owner@larkspur.example>: mailbox unavailable"})
    )
    try:
        ritual = ritual_over(stack, server.url)
        sent = await ritual.send_digest(BUSINESS_ID, datetime.now(UTC).replace(microsecond=0))
    finally:
        controller.stop()

    assert sent.posted and sent.ts is not None
    assert stack.message(sent.ts).channel == CHANNEL
    assert sent.emailed_to == (accepted,)
    assert delivered_to(server) == [accepted]
    [run] = await digest_runs(stack)
    assert run.slack_ts == sent.ts and run.posted_at is not None
    assert run.emailed_to == [accepted]
    assert run.error is not None and refused in run.error, run.error


async def test_sync_if_due_follows_the_timing_and_picks_up_outside_edits(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ritual = Ritual(stack.oodaloo, alert_drift=stack.bot.post_drift_alerts)
    assert not await ritual.sync_if_due(BUSINESS_ID), "the stack synced at start: not due yet"

    async with stack.oodaloo.uows(BUSINESS_ID) as uow:
        bill = next(b for b in await uow.bills.open_bills() if b.balance == b.total_amount)
    edited = bill.total_amount + Decimal("123.45")
    await edit_bill_amount(stack.sandbox, bill.qbo_id, edited)
    status = await stack.oodaloo.infra.timing.status(BUSINESS_ID, "qbo")
    assert status is not None and status.last_success_at is not None
    interval = stack.oodaloo.infra.timing.intervals.idle

    move_clock(stack, monkeypatch, interval + timedelta(minutes=1))
    assert await ritual.sync_if_due(BUSINESS_ID)
    async with stack.oodaloo.uows(BUSINESS_ID) as uow:
        mirrored = await uow.bills.get(bill.qbo_id)
    assert mirrored is not None and (mirrored.total_amount, mirrored.balance) == (edited, edited)
    assert not await ritual.sync_if_due(BUSINESS_ID), "just synced: not due again"


async def _pay_with_the_answer_lost(stack: LocalStack) -> tuple[str, str]:
    """An approver pays a small bill (as an email link does, through BillService); QuickBooks
    applies the payment and its answer is lost on the way back. Returns (bill id, action key)."""
    bill_id, amount = await _small_bill(stack)
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    await services.bills.approve(bill_id, OWNER)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    stack.sandbox.chaos.plan = FaultPlan(
        by_path=[PathRule("billpayment*", FaultRule(rate_lost=1.0), method="POST")]
    )
    try:
        sent = await services.bills.create_payment(
            bill_id, amount, OWNER, bank_account_id=ctx.payment_account_id
        )
    finally:
        stack.sandbox.chaos.plan = FaultPlan()
    assert sent.outcome.state is ActionState.UNKNOWN, sent.message
    assert len(payments_marked(stack.sandbox, sent.outcome.key)) == 1, "QuickBooks did apply it"
    return bill_id, sent.outcome.key


async def _sweep_settles(stack: LocalStack, ritual: Ritual, key: str) -> None:
    resolutions = await ritual.reconcile_sweep()
    assert [(r.key, r.previous_state, r.state) for r in resolutions] == [
        (key, ActionState.UNKNOWN, ActionState.SUCCEEDED)
    ]
    assert len(payments_marked(stack.sandbox, key)) == 1, "found, not sent again"
    await stack.bot.idle()
    assert await ritual.reconcile_sweep() == [], "nothing is left to settle"


async def test_the_sweep_settles_a_lost_payment_and_the_in_flight_line_says_paid(
    stack: LocalStack, mail_server: MailServer
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    bill_id, key = await _pay_with_the_answer_lost(stack)
    digest = await stack.post_digest()
    in_flight = _card(digest, bill_id)
    assert "QuickBooks has not confirmed it yet" in in_flight and "Paid" not in in_flight

    await _sweep_settles(stack, ritual, key)
    line = _status(stack.message(digest.ts), "bill", bill_id)
    assert line is not None and "Paid" in line, line
    assert "Paid" in _card(stack.message(digest.ts), bill_id)


def _card(message: Any, bill_id: str) -> str:
    """The bill's main line as Slack shows it."""
    [line] = [b["text"]["text"] for b in message.blocks if b.get("block_id") == f"bill:{bill_id}"]
    return str(line)


async def test_the_sweep_settles_a_lost_payment_and_the_earlier_digest_line_says_paid(
    stack: LocalStack, mail_server: MailServer
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    digest = await stack.post_digest()
    bill_id, key = await _pay_with_the_answer_lost(stack)
    assert "Paid" not in (_status(stack.message(digest.ts), "bill", bill_id) or "")

    await _sweep_settles(stack, ritual, key)
    line = _status(stack.message(digest.ts), "bill", bill_id)
    assert line is not None and "Paid" in line, line


async def test_refresh_tokens_renews_a_token_about_to_expire(stack: LocalStack) -> None:
    ritual = Ritual(stack.oodaloo)
    realm_id = stack.sandbox.realm_id
    directory = stack.oodaloo.directory
    before = await directory.load_tokens(realm_id)
    assert await ritual.refresh_tokens() == 0, "an hour left: nothing to do"

    soon = stack.oodaloo.clock.now() + timedelta(minutes=10)
    async with stack.oodaloo.sessions() as session:
        await session.execute(
            update(QBOConnection).where(QBOConnection.realm_id == realm_id).values(access_expires_at=soon)
        )
        await session.commit()

    assert await ritual.refresh_tokens() == 1
    after = await directory.load_tokens(realm_id)
    assert after.access_token != before.access_token
    assert after.refresh_token
    assert after.expires_at > stack.oodaloo.clock.now() + timedelta(minutes=30)
    async with stack.sandbox.http_client(access_token=after.access_token) as qbo:
        response = await qbo.get(stack.sandbox.v3_path(f"companyinfo/{realm_id}"))
    assert response.status_code == 200, response.text
    assert await ritual.refresh_tokens() == 0, "renewed: nothing to do"
