"""The operations commands as an owner runs them: `oodaloo businesses | sync | digest | actions |
reconcile`, configured only through the environment, against the QBO sandbox served over real HTTP
and a SQLite file, with a real SMTP server where mail could go."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from conftest_email import MailServer, mail_server
from sqlalchemy import func, select

from bot import settings as bot_settings
from bot.bootstrap import Oodaloo
from bot.cli import main
from bot.local import FAST
from bot.models import DigestRun
from bot.settings import load_settings
from qbo_sandbox.chaos import FaultPlan, FaultRule, PathRule
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.seed_names import COMPANY_NAME
from qbo_sandbox.server import RunningSandbox, start_in_thread
from runway.crypto import generate_key
from runway.formatting import format_moment
from runway.models import Bill
from sync.ledger import ActionState
from sync.qbo.auth import OAuthTokens
from sync_harness import edit_bill_amount

__all__ = ["mail_server"]  # the SMTP fixture, imported for pytest

T = TypeVar("T")

BIZ = "biz-larkspur"
#: Far from UTC, so the next digest in local time is another day than in UTC.
TIMEZONE = "Pacific/Auckland"
OWNER = "U0OWNER01"
RECIPIENT = "owner@larkspur.example"
STATES = ("pending", "in_flight", "unknown", "succeeded", "failed", "needs_human")


@dataclass
class Run:
    code: int
    out: str
    err: str


@dataclass
class Operator:
    """An owner's shell: the environment set, the sandbox's company reachable over HTTP."""

    qbo: RunningSandbox
    database_url: str
    capsys: pytest.CaptureFixture[str]

    def run(self, *argv: str) -> Run:
        bot_settings.settings.cache_clear()
        code = main(list(argv))
        captured = self.capsys.readouterr()
        return Run(code, captured.out, captured.err)

    def with_oodaloo(self, work: Callable[[Oodaloo], Awaitable[T]]) -> T:
        """`work` on the same database and QuickBooks the commands use (test milliseconds waits)."""

        async def go() -> T:
            oodaloo = await Oodaloo.start(
                load_settings(), sync_settings=replace(FAST, qbo_base_url=self.qbo.base_url)
            )
            try:
                return await work(oodaloo)
            finally:
                await oodaloo.aclose()

        return asyncio.run(go())

    def add_business(self) -> None:
        """What `/runway connect` leaves behind: the business, connected to the sandbox's company."""
        sandbox = self.qbo.sandbox

        async def add(oodaloo: Oodaloo) -> None:
            now = datetime.now(UTC)
            await oodaloo.directory.create(
                BIZ, COMPANY_NAME, TIMEZONE, realm_id=sandbox.realm_id,
                approvers=[OWNER, RECIPIENT], email_recipients=[RECIPIENT],
            )
            await oodaloo.directory.connect(BIZ, sandbox.realm_id, OAuthTokens(
                access_token=sandbox.access_token, refresh_token=sandbox.refresh_token,
                expires_at=now + timedelta(hours=1), refresh_expires_at=now + timedelta(days=100),
            ))

        self.with_oodaloo(add)

    def count(self, table: type[Bill] | type[DigestRun]) -> int:
        async def count(oodaloo: Oodaloo) -> int:
            async with oodaloo.sessions() as session:
                return int(await session.scalar(select(func.count()).select_from(table)) or 0)

        return self.with_oodaloo(count)


@pytest.fixture
def qbo() -> Iterator[RunningSandbox]:
    """The sandbox's company over real HTTP, fresh for each test (payments change it)."""
    with start_in_thread(SandboxConfig(seed=DEFAULT_SEED)) as running:
        yield running


@pytest.fixture
def operator(
    qbo: RunningSandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    mail_server: MailServer,
) -> Iterator[Operator]:
    monkeypatch.chdir(tmp_path)  # no developer's .env in the way
    for name in ("REDIS_URL", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_CLIENT_ID",
                 "QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "PUBLIC_URL"):
        monkeypatch.delenv(name, raising=False)
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", generate_key())
    monkeypatch.setenv("QBO_BASE_URL", qbo.base_url)
    monkeypatch.setenv("SMTP_URL", mail_server.url)
    yield Operator(qbo, database_url, capsys)
    bot_settings.settings.cache_clear()


def next_monday_8am(zone: str) -> datetime:
    """The default digest moment (Monday 08:00, local) next after now."""
    now = datetime.now(ZoneInfo(zone))
    day = now.date() + timedelta(days=(0 - now.weekday()) % 7)
    moment = datetime.combine(day, time(8, 0), tzinfo=ZoneInfo(zone))
    return moment if moment > now else moment + timedelta(days=7)


def test_an_empty_database_says_how_to_add_a_business(operator: Operator) -> None:
    done = operator.run("businesses")
    assert done.code == 0
    assert "No businesses yet" in done.out and "/runway connect" in done.out


def test_businesses_lists_the_connection_and_the_next_digest_in_local_time(operator: Operator) -> None:
    operator.add_business()
    done = operator.run("businesses")
    assert done.code == 0, done.err
    header, rule, row, *rest = done.out.splitlines()
    assert rest == []
    assert header.split() == ["id", "name", "QuickBooks", "Slack", "channel", "digest", "next",
                              "digest", "(local)"]
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.startswith(BIZ) and COMPANY_NAME in row
    assert f"{operator.qbo.sandbox.realm_id} (connected)" in row
    assert f"Mon 8:00 AM {TIMEZONE}" in row
    assert row.endswith(format_moment(next_monday_8am(TIMEZONE), TIMEZONE)), row


def _changes(output: str) -> tuple[int, int, int]:
    found = re.search(r"([\d,]+) new, ([\d,]+) changed, ([\d,]+) deleted", output)
    assert found is not None, output
    new, changed, deleted = (int(n.replace(",", "")) for n in found.groups())
    return new, changed, deleted


def test_sync_fills_the_mirror_and_says_what_changed(operator: Operator) -> None:
    operator.add_business()
    assert operator.count(Bill) == 0

    first = operator.run("sync", BIZ)
    assert first.code == 0, first.err
    assert f"Syncing {COMPANY_NAME} with QuickBooks" in first.out and "Done in" in first.out
    bills = operator.count(Bill)
    assert bills > 0
    new, changed, deleted = _changes(first.out)
    assert new >= bills and (changed, deleted) == (0, 0)
    assert re.search(r"Done in [\d.]+ s \([\d.]+ s in QuickBooks calls, [\d.]+ s writing\)", first.out)
    # A first sync reads every page; progress goes to stderr (one line per entity type, as a log
    # gets it), so stdout stays the report.
    progress = re.findall(r"^  (\w+): ([\d,]+) received \(\d+ pages?\), ([\d,]+) written$", first.err, re.M)
    assert [entity for entity, _, _ in progress][:3] == ["CompanyInfo", "Preferences", "Account"], first.err
    assert ("Bill", f"{bills:,}", f"{bills:,}") in progress, first.err
    assert " written" not in first.out

    assert _changes(operator.run("sync", BIZ).out) == (0, 0, 0), "nothing changed in QuickBooks"

    bill = next(b for b in operator.qbo.sandbox.realm().iter("Bill") if b["Balance"] == b["TotalAmt"])
    asyncio.run(
        edit_bill_amount(
            operator.qbo.sandbox,
            str(bill["Id"]),
            Decimal(str(bill["TotalAmt"])) + 7,
            base_url=operator.qbo.base_url,
        )
    )
    edited = operator.run("sync", BIZ)
    assert edited.code == 0, edited.err
    # The bill changed, and so did Accounts Payable, which QuickBooks' books move with it.
    assert _changes(edited.out) == (0, 2, 0), edited.out
    assert "Bill cdc +0 ~1 -0" in edited.out and "Account cdc +0 ~1 -0" in edited.out, edited.out


def test_sync_of_an_unknown_business_says_where_to_look(operator: Operator) -> None:
    operator.add_business()
    done = operator.run("sync", "nope")
    assert done.code == 2
    assert "nope" in done.err and "`oodaloo businesses` lists them" in done.err
    assert done.out == ""


def test_digest_dry_run_prints_it_and_sends_nothing(operator: Operator, mail_server: MailServer) -> None:
    operator.add_business()
    assert operator.run("sync", BIZ).code == 0

    dry = operator.run("digest", BIZ, "--dry-run")
    assert dry.code == 0, dry.err
    subject, blank, *lines = dry.out.splitlines()
    body = "\n".join(lines)
    assert subject.startswith("Subject: ") and COMPANY_NAME in subject and blank == ""
    for section in ("Runway:", "CASH ON HAND", "BILLS DUE IN THE NEXT 7 DAYS", "OVERDUE INVOICES"):
        assert section in body, section
    assert lines[-1] == "(dry run: nothing was posted or sent)"
    assert operator.count(DigestRun) == 0
    assert mail_server.handler.received == []

    # The same command without --dry-run does send (so the dry run is what held it back).
    sent = operator.run("digest", BIZ)
    assert sent.code == 0, sent.err
    assert f"Sent to email to {RECIPIENT}" in sent.out
    assert [envelope.rcpt_tos for envelope in mail_server.handler.received] == [[RECIPIENT]]
    assert operator.count(DigestRun) == 1


def test_the_cli_writes_a_business_in_its_own_locale(operator: Operator) -> None:
    operator.add_business()
    assert operator.run("sync", BIZ).code == 0

    async def to_en_gb(oodaloo: Oodaloo) -> None:
        await oodaloo.directory.update(BIZ, locale="en_GB")

    operator.with_oodaloo(to_en_gb)
    listed = operator.run("businesses")
    assert listed.code == 0, listed.err
    assert f"Mon 08:00 {TIMEZONE}" in listed.out
    assert listed.out.rstrip().endswith(
        format_moment(next_monday_8am(TIMEZONE), TIMEZONE, "en_GB")
    ), listed.out

    dry = operator.run("digest", BIZ, "--dry-run")
    assert dry.code == 0, dry.err
    # The company's dollars as a UK reader writes them, its clock on 24 hours.
    assert "US$" in dry.out and not re.search(r"(?<![A-Z])\$\d", dry.out)
    assert not re.search(r"\d:\d\d ?[AP]M", dry.out)


def _pay_with_the_answer_lost(operator: Operator) -> str:
    """An approver pays a small bill; QuickBooks applies it and the answer is lost. Its key."""
    sandbox = operator.qbo.sandbox

    async def pay(oodaloo: Oodaloo) -> str:
        ctx = await oodaloo.digest(BIZ)
        bill = next(
            b for b in ctx.view.bills_due.items
            if b.amount <= ctx.business.approval_threshold and b.state.value == "needs_approval"
        )
        services = await oodaloo.services_for(BIZ)
        await services.bills.approve(bill.bill_id, OWNER)
        sandbox.chaos.plan = FaultPlan(
            by_path=[PathRule("billpayment*", FaultRule(rate_lost=1.0), method="POST")]
        )
        try:
            sent = await services.bills.create_payment(
                bill.bill_id, bill.amount, OWNER, bank_account_id=ctx.payment_account_id
            )
        finally:
            sandbox.chaos.plan = FaultPlan()
        assert sent.outcome.state is ActionState.UNKNOWN, sent.message
        return sent.outcome.key

    return operator.with_oodaloo(pay)


def test_actions_and_reconcile_settle_a_payment_left_unknown(operator: Operator) -> None:
    operator.add_business()
    assert operator.run("sync", BIZ).code == 0
    none = operator.run("actions")
    assert (none.code, none.out.strip()) == (0, "No actions.")
    assert operator.run("reconcile").out.strip() == "0 actions to settle."

    key = _pay_with_the_answer_lost(operator)
    unknown = operator.run("actions", "--state", "unknown")
    assert unknown.code == 0, unknown.err
    header, _rule, row = unknown.out.splitlines()
    assert header.split()[:6] == ["key", "business", "operation", "target", "amount", "state"]
    assert row.startswith(key) and BIZ in row and " unknown " in row

    settled = operator.run("reconcile")
    assert settled.code == 0, settled.err
    assert settled.out.splitlines()[0] == "1 actions to settle."
    assert re.search(rf"^\s+{re.escape(key)}\s+unknown -> succeeded\s+\(found: ", settled.out, re.M), settled.out

    after = operator.run("actions", "--state", "unknown")
    assert (after.code, after.out.strip()) == (0, "No actions in state unknown.")
    succeeded = operator.run("actions", "--state", "succeeded")
    assert key in succeeded.out and " succeeded " in succeeded.out
    assert len(list(operator.qbo.sandbox.realm().iter("BillPayment"))) >= 1


def test_actions_with_an_unknown_state_names_the_states(operator: Operator) -> None:
    done = operator.run("actions", "--state", "bogus")
    assert done.code == 2
    assert "'bogus'" in done.err
    assert all(state in done.err for state in STATES), done.err
    assert done.out == ""


def test_sync_of_a_business_not_yet_connected_says_what_to_do(operator: Operator) -> None:
    operator.with_oodaloo(lambda oodaloo: oodaloo.directory.create(BIZ, COMPANY_NAME, TIMEZONE))
    listed = operator.run("businesses")
    assert "not connected" in listed.out
    done = operator.run("sync", BIZ)
    assert done.code == 1
    assert "not connected to QuickBooks yet" in done.err and "/runway connect" in done.err
    assert "Traceback" not in done.err

