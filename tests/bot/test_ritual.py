"""The jobs the scheduler runs, end to end: the bot over HTTP, the local Slack, the QBO sandbox and a
real SMTP server, on SQLite and PostgreSQL. Posting, mailing and QuickBooks are the real things;
only time is moved, by the stack's own clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import simplejson
from conftest_email import MailHandler, MailServer, mail_server, start_mail_server
from db_conftest import MigratedDatabase
from sqlalchemy import select, update
from test_slack_scenarios import _small_bill, _status

from bot.bootstrap import DigestContext
from bot.email_wiring import digest_mailer
from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.models import DigestRun
from bot.ritual import (
    DIGEST_LEASE,
    DIGEST_RETRY_AFTER,
    DIGEST_RETRY_WINDOW,
    MAX_DIGEST_ATTEMPTS,
    Ritual,
)
from bot.wiring import RitualJobsAdapter
from bot.worker.jobs import latest_digest_due
from bot.worker.tasks import sweep_digests
from qbo_sandbox.chaos import FaultPlan, FaultRule, PathRule
from runway.models import Business, QBOConnection
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


# --- a digest due during trouble is sent later, once, or given up with its reason ----------------


async def due_a_minute_ago(stack: LocalStack) -> datetime:
    """Make the business's weekly digest due a minute ago (its day and time, in its timezone); the
    instant the scheduler and the digest sweep name it by."""
    business = await stack.business()
    local = (stack.oodaloo.clock.now() - timedelta(minutes=1)).astimezone(ZoneInfo(business.timezone))
    async with stack.oodaloo.sessions() as session:
        await session.execute(
            update(Business)
            .where(Business.id == BUSINESS_ID)
            .values(digest_weekday=local.weekday(), digest_local_time=local.time().replace(microsecond=0))
        )
        await session.commit()
    [schedule] = await RitualJobsAdapter(Ritual(stack.oodaloo)).schedules()
    due = latest_digest_due(schedule, stack.oodaloo.clock.now())
    assert due is not None and timedelta(0) < stack.oodaloo.clock.now() - due < timedelta(minutes=2)
    return due


async def sweep(ritual: Ritual) -> list[tuple[str, datetime]]:
    """The worker's digest sweep, over the production RitualJobs."""
    return await sweep_digests(RitualJobsAdapter(ritual), at=ritual.oodaloo.clock.now())


@contextlib.asynccontextmanager
async def undecryptable_tokens(stack: LocalStack) -> AsyncIterator[None]:
    """The stored QuickBooks tokens cannot be decrypted (a key that does not open them) until the
    block ends. QuickBooks clients are dropped as the block starts, so the tokens are read from the
    database again, as a worker process starting now would."""
    realm_id = stack.sandbox.realm_id
    stack.oodaloo.infra._clients.clear()
    columns = (QBOConnection.access_token_encrypted, QBOConnection.refresh_token_encrypted)
    async with stack.oodaloo.sessions() as session:
        stored = (await session.execute(select(*columns).where(QBOConnection.realm_id == realm_id))).one()
        await session.execute(
            update(QBOConnection).where(QBOConnection.realm_id == realm_id).values(
                access_token_encrypted="gAAAAAnot-a-token", refresh_token_encrypted="gAAAAAnot-a-token"
            )
        )
        await session.commit()
    try:
        yield
    finally:
        async with stack.oodaloo.sessions() as session:
            await session.execute(
                update(QBOConnection).where(QBOConnection.realm_id == realm_id).values(
                    access_token_encrypted=stored[0], refresh_token_encrypted=stored[1]
                )
            )
            await session.commit()


async def test_a_digest_due_while_its_token_cannot_be_decrypted_is_sent_once_when_it_can(
    stack: LocalStack, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    due = await due_a_minute_ago(stack)

    async with undecryptable_tokens(stack):
        assert await sweep(ritual) == [(BUSINESS_ID, due)]
        [run] = await digest_runs(stack)
        assert run.scheduled_for == due and run.posted_at is None and run.given_up_at is None
        assert run.attempts == 1 and run.error and "TokenDecryptionError" in run.error, run.error
        assert run.retry_at is not None and run.retry_at > stack.oodaloo.clock.now()
        await sweep(ritual)  # too soon for another attempt
        assert (await digest_runs(stack))[0].attempts == 1
    assert digests_in_channel(stack) == [] and delivered_to(mail_server) == []

    move_clock(stack, monkeypatch, DIGEST_RETRY_AFTER)
    await sweep(ritual)
    [posted] = digests_in_channel(stack)
    assert delivered_to(mail_server) == sorted(RECIPIENTS)
    [run] = await digest_runs(stack)
    assert (run.attempts, run.error, run.retry_at, run.slack_ts) == (2, None, None, posted.ts)
    assert run.posted_at is not None

    move_clock(stack, monkeypatch, DIGEST_RETRY_AFTER * 3)
    await sweep(ritual)
    again = await ritual.send_digest(BUSINESS_ID, due)
    assert again.already_sent and not again.posted
    assert digests_in_channel(stack) == [posted], "posted exactly once"
    assert delivered_to(mail_server) == sorted(RECIPIENTS), "mailed exactly once"


async def test_a_digest_due_while_quickbooks_is_out_of_reach_is_posted_once_from_the_last_copy(
    stack: LocalStack, mail_server: MailServer
) -> None:
    """No request slot for the company (its budget spent, a long Retry-After): the sync before the
    digest cannot run, and the digest goes anyway, from the mirror, saying how old its data is."""
    ritual = ritual_over(stack, mail_server.url)
    due = await due_a_minute_ago(stack)
    realm_id = stack.sandbox.realm_id

    def requests_seen() -> int:
        return sum(stack.sandbox.stats()["requests"]["by_realm"].get(realm_id, {}).values())

    await stack.oodaloo.infra.limiter.back_off(realm_id, 3600)
    before = requests_seen()

    assert await sweep(ritual) == [(BUSINESS_ID, due)]

    assert requests_seen() == before, "nothing was asked of QuickBooks"
    [posted] = digests_in_channel(stack)
    assert "QuickBooks data as of" in shown(posted)
    assert delivered_to(mail_server) == sorted(RECIPIENTS)
    [run] = await digest_runs(stack)
    assert (run.attempts, run.error, run.retry_at, run.slack_ts) == (1, None, None, posted.ts)
    again = await ritual.send_digest(BUSINESS_ID, due)
    assert again.already_sent and digests_in_channel(stack) == [posted]


async def test_a_digest_that_keeps_failing_is_given_up_with_its_reason_logged_once(
    stack: LocalStack,
    mail_server: MailServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ritual = ritual_over(stack, mail_server.url)
    due = stack.oodaloo.clock.now().replace(microsecond=0)

    async def broken(business_id: str, **_: object) -> DigestContext:
        raise RuntimeError("the books could not be read")

    monkeypatch.setattr(stack.oodaloo, "digest", broken)
    waited = timedelta(0)
    for attempt in range(1, MAX_DIGEST_ATTEMPTS + 1):
        outcome = await ritual.send_digest(BUSINESS_ID, due)
        assert not outcome.posted and outcome.error and "the books could not be read" in outcome.error
        assert outcome.given_up is (attempt == MAX_DIGEST_ATTEMPTS), attempt
        [run] = await digest_runs(stack)
        assert run.attempts == attempt
        wait = DIGEST_RETRY_AFTER * 2 ** (attempt - 1)
        waited += wait
        move_clock(stack, monkeypatch, waited)
    assert waited < DIGEST_RETRY_WINDOW * 2

    [run] = await digest_runs(stack)
    assert run.given_up_at is not None and run.retry_at is None and run.posted_at is None
    assert run.error is not None and run.error.startswith(f"given up after {MAX_DIGEST_ATTEMPTS} attempt")
    assert "the books could not be read" in run.error
    later = await ritual.send_digest(BUSINESS_ID, due)
    assert later.given_up and not later.posted
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "bot.ritual"]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "gave up" in errors[0].getMessage() and "the books could not be read" in errors[0].getMessage()
    assert (await digest_runs(stack))[0].attempts == MAX_DIGEST_ATTEMPTS
    assert digests_in_channel(stack) == []


async def test_a_digest_posted_to_slack_whose_email_failed_is_tried_again_for_email_only(
    stack: LocalStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    busy, accepted = RECIPIENTS
    handler = MailHandler(refuse={busy: "452 4.2.2 <owner@larkspur.example>: mailbox full, try later"})
    controller, server = start_mail_server(handler)
    try:
        ritual = ritual_over(stack, server.url)
        due = stack.oodaloo.clock.now().replace(microsecond=0)
        first = await ritual.send_digest(BUSINESS_ID, due)
        assert first.posted and first.emailed_to == (accepted,) and first.error
        [run] = await digest_runs(stack)
        assert run.slack_ts == first.ts and run.emailed_to == [accepted]
        assert run.retry_at is not None and run.given_up_at is None

        handler.refuse.clear()  # the mailbox has room again
        move_clock(stack, monkeypatch, DIGEST_RETRY_AFTER)
        second = await ritual.send_digest(BUSINESS_ID, due)
    finally:
        controller.stop()

    assert not second.posted and second.emailed_to == (busy,) and second.error is None
    assert [m.ts for m in digests_in_channel(stack)] == [first.ts], "Slack got it once"
    assert delivered_to(server) == sorted(RECIPIENTS), "each address got it once"
    [run] = await digest_runs(stack)
    assert (run.attempts, run.error, run.retry_at) == (2, None, None)
    assert sorted(run.emailed_to) == sorted(RECIPIENTS)


async def test_a_digest_left_half_done_by_a_killed_worker_is_posted_once_after_its_lease(
    stack: LocalStack, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    due = stack.oodaloo.clock.now().replace(microsecond=0)
    stuck = asyncio.Event()

    async def never_answers(ctx: DigestContext) -> tuple[str, str]:
        stuck.set()
        await asyncio.Event().wait()  # the worker is killed while it waits here
        raise AssertionError("unreachable")

    killed = Ritual(stack.oodaloo, post_digest=never_answers)
    attempt = asyncio.create_task(killed.send_digest(BUSINESS_ID, due))
    await asyncio.wait_for(stuck.wait(), timeout=30)
    attempt.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await attempt
    [run] = await digest_runs(stack)
    assert run.posted_at is None and run.error is None

    ritual = ritual_over(stack, mail_server.url)
    meanwhile = await ritual.send_digest(BUSINESS_ID, due)
    assert meanwhile.already_sent and not meanwhile.posted, "within its lease it may still finish"

    move_clock(stack, monkeypatch, DIGEST_LEASE + timedelta(seconds=1))
    sent = await ritual.send_digest(BUSINESS_ID, due)
    assert sent.posted and sent.ts is not None
    again = await ritual.send_digest(BUSINESS_ID, due)
    assert again.already_sent and not again.posted
    assert [m.ts for m in digests_in_channel(stack)] == [sent.ts]
    assert delivered_to(mail_server) == sorted(RECIPIENTS)
    [run] = await digest_runs(stack)
    assert run.attempts == 2 and run.posted_at is not None and run.retry_at is None


async def test_the_sweep_does_not_catch_up_on_a_digest_due_before_quickbooks_was_connected(
    stack: LocalStack, mail_server: MailServer
) -> None:
    """Connecting QuickBooks posts the first digest; the one due earlier that day is not sent too."""
    ritual = ritual_over(stack, mail_server.url)
    due = await due_a_minute_ago(stack)
    local_due = due.astimezone(ZoneInfo((await stack.business()).timezone))
    # An hour earlier, but on the same day (just after midnight, midnight itself).
    earlier = max(local_due - timedelta(hours=1), local_due.replace(hour=0, minute=0, second=0))
    async with stack.oodaloo.sessions() as session:
        await session.execute(
            update(Business).where(Business.id == BUSINESS_ID).values(digest_local_time=earlier.time())
        )
        await session.commit()
    assert [business for business, _ in await sweep(ritual)] == [BUSINESS_ID]
    assert digests_in_channel(stack) == [] and await digest_runs(stack) == []
