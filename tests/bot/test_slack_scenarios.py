"""The Slack bot end to end: real signed requests to the bot's HTTP endpoint, the local Slack's
Web API for its answers, the QBO sandbox for the books. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from db_conftest import MigratedDatabase

from bot.local import BOOKKEEPER, BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit
from runway.audit import BILL_APPROVE
from slack_sandbox.workspace import Message
from sync_harness import OffsetClock


@pytest.fixture
async def scenario(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, business_name="Larkspur & Pine <Coffee> Roasters") as built:
        yield built


def _buttons(message: Message, action_id: str) -> list[tuple[str, str]]:
    """(block_id, value) of every button with `action_id` in the message."""
    found = []
    for block in message.blocks:
        if block.get("type") != "actions":
            continue
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                found.append((str(block.get("block_id")), str(element.get("value"))))
    return found


def _mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if node.get("type") == "mrkdwn" else []
        return found + [t for value in node.values() for t in _mrkdwn_texts(value)]
    if isinstance(node, list):
        return [t for item in node for t in _mrkdwn_texts(item)]
    return []


def _status(message: Message, kind: str, item_id: str) -> str | None:
    for block in message.blocks:
        if block.get("block_id") == f"{kind}_status:{item_id}":
            return " ".join(str(e.get("text", "")) for e in block.get("elements", []))
    return None


async def _small_bill(scenario: LocalStack) -> tuple[str, Decimal]:
    """A bill in the digest that one approval is enough for."""
    ctx = await scenario.oodaloo.digest(BUSINESS_ID)
    threshold = ctx.business.approval_threshold
    for bill in ctx.view.bills_due.items:
        if bill.amount <= threshold and bill.state.value == "needs_approval":
            return bill.bill_id, bill.amount
    raise AssertionError("the seeded company has no small bill due this week")


async def _approve(scenario: LocalStack, digest: Message, bill_id: str, user: str = OWNER) -> Message:
    delivery = await scenario.agent.click(user, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    assert delivery.status == 200

    def payable() -> Message | None:
        message = scenario.message(digest.ts)
        pay_blocks = [block_id for block_id, _ in _buttons(message, kit.BILL_PAY)]
        return message if f"bill_actions:{bill_id}" in pay_blocks else None

    return await scenario.until(payable)


async def test_the_digest_goes_to_the_linked_channel_with_its_buttons(scenario: LocalStack) -> None:
    message = await scenario.post_digest()
    assert message.channel == CHANNEL
    assert _buttons(message, kit.BILL_APPROVE), "bills due this week can be approved"
    assert _buttons(message, kit.INVOICE_REMIND), "overdue invoices can be chased"
    assert len(message.blocks) <= 50
    # The business name is free text: mrkdwn gets it escaped (plain-text objects show it as is).
    assert "Larkspur &amp; Pine &lt;Coffee&gt; Roasters" in message.text
    assert not [text for text in _mrkdwn_texts(message.blocks) if "<Coffee>" in text]


async def test_pay_flow_updates_the_message_and_makes_exactly_one_payment(scenario: LocalStack) -> None:
    digest = await scenario.post_digest()
    bill_id, amount = await _small_bill(scenario)
    payments_before = len(scenario.bill_payments())

    approved = await _approve(scenario, digest, bill_id)
    (pay_block, pay_value), = [b for b in _buttons(approved, kit.BILL_PAY) if b[0] == f"bill_actions:{bill_id}"]
    assert pay_value == f"{bill_id}|{amount}", "the Pay button carries the amount its dialog names"

    started = time.monotonic()
    delivery = await scenario.agent.click(OWNER, approved, kit.BILL_PAY, block_id=pay_block)
    assert delivery.status == 200
    assert time.monotonic() - started < 3, "Slack needs the ack within 3 s"

    try:
        paid = await scenario.until(
            lambda: (s := _status(scenario.message(digest.ts), "bill", bill_id)) and "Paid" in s and s
        )
    except TimeoutError:
        raise AssertionError((_status(scenario.message(digest.ts), "bill", bill_id), [e.text for e in scenario.ephemerals(OWNER)])) from None
    assert f"<@{OWNER}>" in paid and "runway now" in paid
    assert len(scenario.bill_payments()) == payments_before + 1
    payment = scenario.bill_payments()[-1]
    assert Decimal(str(payment["TotalAmt"])) == amount
    # Paying… was shown before Paid: the message was edited in place at least twice.
    updates = [c for c in scenario.workspace.calls("chat.update") if c.params.get("ts") == digest.ts]
    assert len(updates) >= 3  # approved, paying, paid


async def test_double_click_and_two_people_pay_once(scenario: LocalStack) -> None:
    digest = await scenario.post_digest()
    bill_id, _ = await _small_bill(scenario)
    approved = await _approve(scenario, digest, bill_id)
    payments_before = len(scenario.bill_payments())
    block_id = f"bill_actions:{bill_id}"

    clicks = await asyncio.gather(
        scenario.agent.click(OWNER, approved, kit.BILL_PAY, block_id=block_id),
        scenario.agent.click(OWNER, approved, kit.BILL_PAY, block_id=block_id),
        scenario.agent.click(BOOKKEEPER, approved, kit.BILL_PAY, block_id=block_id),
    )
    assert [c.status for c in clicks] == [200, 200, 200]
    await scenario.until(lambda: (s := _status(scenario.message(digest.ts), "bill", bill_id)) and "Paid" in s)
    await scenario.bot.idle()

    assert len(scenario.bill_payments()) == payments_before + 1
    # Whoever lost the race was told where the bill stands, not left guessing.
    told = scenario.ephemerals(OWNER) + scenario.ephemerals(BOOKKEEPER)
    assert any("already" in e.text.lower() or "in flight" in e.text.lower() for e in told), [e.text for e in told]


async def test_pay_clicked_in_a_copy_from_before_the_payment_is_told_where_the_bill_stands(
    scenario: LocalStack,
) -> None:
    digest = await scenario.post_digest()
    bill_id, _ = await _small_bill(scenario)
    approved = await _approve(scenario, digest, bill_id)  # what the bookkeeper's other tab shows
    payments_before = len(scenario.bill_payments())
    block_id = f"bill_actions:{bill_id}"
    await scenario.agent.click(OWNER, approved, kit.BILL_PAY, block_id=block_id)
    await scenario.until(lambda: (s := _status(scenario.message(digest.ts), "bill", bill_id)) and "Paid" in s)
    assert block_id not in [b for b, _ in _buttons(scenario.message(digest.ts), kit.BILL_PAY)]

    late = await scenario.agent.click(BOOKKEEPER, approved, kit.BILL_PAY, block_id=block_id)
    assert late.status == 200
    told = await scenario.ephemeral_for(BOOKKEEPER, "already")
    assert "paid" in told.text.lower(), told.text
    await scenario.bot.idle()
    assert len(scenario.bill_payments()) == payments_before + 1


async def test_a_non_approver_is_refused_and_nothing_happens(scenario: LocalStack) -> None:
    digest = await scenario.post_digest()
    bill_id, _ = await _small_bill(scenario)
    before = scenario.message(digest.ts).blocks
    payments_before = len(scenario.bill_payments())

    delivery = await scenario.agent.click(STAFF, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    assert delivery.status == 200
    refusal = await scenario.ephemeral_for(STAFF, "Only approvers")
    assert "nothing was done" in refusal.text
    await scenario.bot.idle()

    assert scenario.message(digest.ts).blocks == before
    assert len(scenario.bill_payments()) == payments_before
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        bill = await uow.bills.get(bill_id)
        assert bill is not None and bill.approved_by is None


async def test_a_bill_of_another_business_is_not_found_here(scenario: LocalStack) -> None:
    # A second business, on its own QuickBooks company, linked to #general.
    tokens = scenario.sandbox.add_realm(seed=11)
    other_realm = tokens.realm_id
    from datetime import UTC, datetime, timedelta

    from sync.qbo.auth import OAuthTokens

    directory = scenario.oodaloo.directory
    await directory.create("biz-other", "Other Co", "UTC", realm_id=other_realm,
                           slack_team_id=scenario.workspace.team_id, slack_channel_id="C0GENERAL",
                           approvers=[OWNER])
    now = datetime.now(UTC)
    await directory.connect("biz-other", other_realm, OAuthTokens(
        tokens.access_token, tokens.refresh_token, now + timedelta(hours=1), now + timedelta(days=90)))
    await (await scenario.oodaloo.services_for("biz-other")).mirror.sync()
    async with scenario.oodaloo.uows("biz-other") as uow:
        theirs = {bill.qbo_id for bill in await uow.bills.open_bills()}
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        ours = {bill.qbo_id for bill in await uow.bills.all()}
    only_theirs = sorted(theirs - ours)[0]
    their_payments = len(list(scenario.sandbox.realm(other_realm).iter("BillPayment")))
    our_payments = len(scenario.bill_payments())

    # A Pay button naming their bill, clicked in our channel by an approver of both.
    forged = scenario.workspace.post_message(CHANNEL, "pay", [
        {"type": "actions", "block_id": f"bill_actions:{only_theirs}", "elements": [
            {"type": "button", "action_id": kit.BILL_PAY, "value": only_theirs,
             "text": {"type": "plain_text", "text": "Pay"}}]}])
    delivery = await scenario.agent.click(OWNER, forged, kit.BILL_PAY)
    assert delivery.status == 200
    note = await scenario.ephemeral_for(OWNER, only_theirs)
    assert "not found" in note.text.lower() or "no bill" in note.text.lower()
    await scenario.bot.idle()
    assert len(list(scenario.sandbox.realm(other_realm).iter("BillPayment"))) == their_payments
    assert len(scenario.bill_payments()) == our_payments


@pytest.mark.parametrize("forgery", ["signature", "stale"])
async def test_forged_or_stale_requests_get_401_and_do_nothing(scenario: LocalStack, forgery: str) -> None:
    digest = await scenario.post_digest()
    bill_id, _ = await _small_bill(scenario)
    options: dict[str, Any] = (
        {"signing_secret": "not-the-signing-secret"} if forgery == "signature"
        else {"timestamp": int(time.time()) - 6 * 60}
    )
    shared_before = len(scenario.workspace.messages(CHANNEL))

    command = await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "share", **options)
    click = await scenario.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}", **options)
    assert (command.status, click.status) == (401, 401)
    await scenario.bot.idle()

    assert len(scenario.workspace.messages(CHANNEL)) == shared_before
    assert scenario.ephemerals(OWNER) == []
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        bill = await uow.bills.get(bill_id)
        assert bill is not None and bill.approved_by is None


async def test_slacks_retried_delivery_does_not_repeat_the_work(scenario: LocalStack) -> None:
    digest = await scenario.post_digest()
    bill_id, _ = await _small_bill(scenario)
    first = await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "share")
    click = await scenario.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    await scenario.bot.idle()
    messages = len(scenario.workspace.messages(CHANNEL))

    again = await scenario.agent.redeliver(first)
    click_again = await scenario.agent.redeliver(click, retry_num=2)
    assert (again.status, click_again.status) == (200, 200)
    await scenario.bot.idle()

    assert len(scenario.workspace.messages(CHANNEL)) == messages, "shared once"
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        approvals = [e for e in await uow.audit.recent(100) if e.action == BILL_APPROVE]
    assert len(approvals) == 1


async def test_runway_subcommands(scenario: LocalStack) -> None:
    agent, ws = scenario.agent, scenario.workspace

    summary = await agent.slash_command(OWNER, CHANNEL, "/runway", "")
    assert summary.status == 200
    shown = await scenario.ephemeral_for(OWNER, "Runway")
    assert shown.user == OWNER

    messages = len(ws.messages(CHANNEL))
    await agent.slash_command(OWNER, CHANNEL, "/runway", "share")
    await scenario.until(lambda: len(ws.messages(CHANNEL)) == messages + 1)

    await agent.slash_command(OWNER, CHANNEL, "/runway", "bills")
    bills = await scenario.ephemeral_for(OWNER, kit.BILL_APPROVE)
    assert any(b.get("block_id", "").startswith("bill:") for b in bills.blocks)

    await agent.slash_command(OWNER, CHANNEL, "/runway", "invoices")
    invoices = await scenario.ephemeral_for(OWNER, kit.INVOICE_REMIND)
    assert any(b.get("block_id", "").startswith("invoice:") for b in invoices.blocks)

    await agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    synced = await scenario.ephemeral_for(OWNER, "QuickBooks was read")  # the mirror synced at setup
    assert "try again in" in synced.text

    helped = await agent.slash_command(OWNER, CHANNEL, "/runway", "help")
    assert "/runway bills" in helped.text
    unknown = await agent.slash_command(OWNER, CHANNEL, "/runway", "frobnicate <!channel>")
    assert unknown.status == 200 and "/runway bills" in unknown.text
    assert "<!channel>" not in unknown.text

    await agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
    view = await scenario.until(lambda: next(iter(ws.open_views(OWNER)), None))
    assert view.callback_id == "runway_settings"


def _past_the_sync_spacing(scenario: LocalStack) -> None:
    """Two minutes on: `/runway sync` may read QuickBooks again."""
    later = OffsetClock()
    later.advance(120)
    scenario.oodaloo.clock = scenario.oodaloo.infra.clock = later


async def test_runway_sync_reads_quickbooks_when_allowed(scenario: LocalStack) -> None:
    _past_the_sync_spacing(scenario)
    await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    done = await scenario.ephemeral_for(OWNER, "Synced with QuickBooks")
    assert "changes" in done.text


async def test_settings_modal_shows_field_errors_and_saves_nothing(scenario: LocalStack) -> None:
    ws = scenario.workspace
    before = await scenario.business()
    await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
    view = await scenario.until(lambda: next(iter(ws.open_views(OWNER)), None))

    bad = await scenario.agent.submit_view(OWNER, view.id, {
        "timezone": {"value": {"type": "plain_text_input", "value": "Mars/Olympus"}},
        "threshold": {"value": {"type": "plain_text_input", "value": "lots"}},
        "buffer": {"value": {"type": "plain_text_input", "value": "-5"}},
        "emails": {"value": {"type": "plain_text_input", "value": "owner@example.com, not-an-email"}},
        "approver_emails": {"value": {"type": "plain_text_input", "value": "boss@@example"}},
    })
    assert bad.status == 200
    assert bad.json["response_action"] == "errors"
    assert set(bad.json["errors"]) >= {"timezone", "threshold", "buffer", "emails", "approver_emails"}
    assert "Mars/Olympus" in bad.json["errors"]["timezone"]
    after = await scenario.business()
    assert (after.timezone, after.approval_threshold, after.min_cash_buffer, after.email_recipients) == (
        before.timezone, before.approval_threshold, before.min_cash_buffer, before.email_recipients)

    paying = await scenario.oodaloo.payment_account(before)
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        # Another account than the one payments go from now (the largest).
        bank = next(a.qbo_id for a in await uow.accounts.bank_accounts() if paying and a.qbo_id != paying.account_id)
    # Inputs a person leaves alone keep the values the modal opened with.
    good = await scenario.agent.submit_view(OWNER, view.id, {
        "timezone": {"value": {"type": "plain_text_input", "value": "America/Chicago"}},
        "threshold": {"value": {"type": "plain_text_input", "value": "2,500.00"}},
        "emails": {"value": {"type": "plain_text_input", "value": "owner@example.com"}},
        "approver_emails": {"value": {"type": "plain_text_input", "value": "Owner@Example.com"}},
        "pay_from": {"value": {"type": "static_select", "selected_option": {"value": bank}}},
    })
    assert good.status == 200 and not (good.json or {}).get("errors")
    saved = await scenario.business()
    assert saved.timezone == "America/Chicago"
    assert saved.approval_threshold == Decimal("2500.00")
    assert saved.email_recipients == ["owner@example.com"]
    # The approvers the modal opened with stay, and the address may act from the email digest.
    assert saved.approvers == [OWNER, BOOKKEEPER, "owner@example.com"]
    assert saved.payment_bank_account_id == bank
    # Each Slack approver's profile email is remembered: Sam by Slack and by email is one person.
    await scenario.bot.idle()
    async with scenario.oodaloo.uows(BUSINESS_ID) as uow:
        assert await uow.people.identities(BOOKKEEPER) == {BOOKKEEPER, "sam@example.com"}
        assert await uow.people.identities("Sam@Example.com") == {BOOKKEEPER, "sam@example.com"}


async def test_settings_saved_untouched_are_accepted_and_change_nothing(scenario: LocalStack) -> None:
    ws = scenario.workspace
    before = await scenario.business()
    assert before.payment_bank_account_id is None, "the seeded business pays from its largest bank"
    paying = await scenario.oodaloo.payment_account(before)
    assert paying is not None
    await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
    view = await scenario.until(lambda: next(iter(ws.open_views(OWNER)), None))
    pay_from = next(b for b in view.blocks if b.get("block_id") == "pay_from")
    # The modal starts from the account payments go from now.
    assert pay_from["element"]["initial_option"]["value"] == paying.account_id

    untouched = await scenario.agent.submit_view(OWNER, view.id)
    assert untouched.status == 200 and not (untouched.json or {}).get("errors"), untouched.text
    assert ws.open_views(OWNER) == []
    after = await scenario.business()
    fields = (
        "digest_weekday", "digest_local_time", "timezone", "approvers", "approval_threshold",
        "min_cash_buffer", "slack_channel_id", "email_recipients", "payment_bank_account_id",
    )
    assert {f: getattr(after, f) for f in fields} == {f: getattr(before, f) for f in fields}
    # Payments still follow the largest bank account: nothing was pinned.
    assert await scenario.oodaloo.payment_account(after) == paying


async def test_a_non_approver_cannot_open_or_submit_settings(scenario: LocalStack) -> None:
    await scenario.agent.slash_command(STAFF, CHANNEL, "/runway", "settings")
    refusal = await scenario.ephemeral_for(STAFF, "Only approvers")
    assert refusal.user == STAFF
    assert scenario.workspace.open_views(STAFF) == []


@pytest.mark.parametrize(
    "body",
    [
        "payload=%7Bnot+json",  # an interaction whose JSON is cut short
        "payload=%7B%22type%22%3A%22block_actions%22%7D",  # no team, channel, user or actions
        "command=%2Frunway&text=bills",  # a command without team or channel
    ],
)
async def test_malformed_signed_requests_are_refused_plainly(scenario: LocalStack, body: str) -> None:
    import httpx
    from slack_sdk.signature import SignatureVerifier

    payments = len(scenario.bill_payments())
    stamp = str(int(time.time()))
    secret = scenario.oodaloo.settings.slack_signing_secret
    assert secret is not None
    signature = SignatureVerifier(secret).generate_signature(timestamp=stamp, body=body)
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{scenario.url}/slack/events",
            content=body,
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "x-slack-request-timestamp": stamp,
                "x-slack-signature": str(signature),
            },
        )
    await scenario.bot.idle()
    assert answer.status_code < 500, answer.text
    assert scenario.workspace.messages(CHANNEL) == []
    assert len(scenario.bill_payments()) == payments


async def test_quickbooks_down_gets_a_plain_answer(scenario: LocalStack) -> None:
    from qbo_sandbox.chaos import FaultPlan, FaultRule

    _past_the_sync_spacing(scenario)
    scenario.sandbox.chaos.plan = FaultPlan(default=FaultRule(rate_5xx=1.0))
    await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    told = await scenario.ephemeral_for(OWNER, "QuickBooks is not answering", timeout=30)
    assert "try again" in told.text


async def test_paying_from_the_bills_list_updates_the_list_and_the_digest(scenario: LocalStack) -> None:
    digest = await scenario.post_digest()
    bill_id, amount = await _small_bill(scenario)
    payments = len(scenario.bill_payments())

    await scenario.agent.slash_command(OWNER, CHANNEL, "/runway", "bills")
    listed = await scenario.ephemeral_for(OWNER, kit.BILL_APPROVE)
    await scenario.agent.click(OWNER, listed, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")

    def payable() -> object:
        shown = scenario.workspace.ephemeral(listed.ts)
        pay = [
            element
            for block in (shown.blocks if shown is not None else [])
            for element in block.get("elements", [])
            if element.get("action_id") == kit.BILL_PAY
        ]
        return shown if any(e.get("value") == f"{bill_id}|{amount}" for e in pay) else None

    redrawn = await scenario.until(payable)
    await scenario.agent.click(OWNER, redrawn, kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")  # type: ignore[arg-type]
    await scenario.until(lambda: "Paid" in str((scenario.workspace.ephemeral(listed.ts) or listed).blocks))
    # The digest in the channel says so too: nobody is offered Pay on a paid bill.
    line = await scenario.until(lambda: (s := _status(scenario.message(digest.ts), "bill", bill_id)) and "Paid" in s and s)
    assert f"<@{OWNER}>" in line
    assert len(scenario.bill_payments()) == payments + 1
