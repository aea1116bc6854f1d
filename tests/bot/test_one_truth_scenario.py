"""One bill through every path, and every surface saying the same thing after each step.

Approve in Slack by one person, the same person by email (refused: one person, one approver),
approve by email by another, an outside edit in QuickBooks (the old amount pays nothing; after the
sync the approvals must be given again), Pay in Slack, the same Pay from the email link, a sync:
after each
step the channel message (main line, status line, buttons, counts, headline), `/runway`, the email
digest rendered now and the next digest agree on the bill's state and on the runway. Real signed
Slack requests, real email-link requests, the QBO sandbox; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from db_conftest import MigratedDatabase

from bot.email.links import ActionKind, LinkSigner
from bot.email.render import render_digest_email
from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit
from runway.lifecycle import BillState
from slack_sandbox.workspace import Message
from sync_harness import edit_bill_amount

DANA_EMAIL = "dana@example.com"  # the Slack profile email of OWNER (Dana Whitfield)
SAM_EMAIL = "sam@example.com"
HREF = re.compile(r'href="([^"]+)"')


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, email_recipients=[DANA_EMAIL, SAM_EMAIL]) as built:
        await built.oodaloo.directory.update(BUSINESS_ID, approval_threshold=Decimal("100.00"))
        yield built


def card(message: Message, bill_id: str) -> dict[str, Any]:
    """The bill's main line, status line and buttons as the channel shows them."""
    found: dict[str, Any] = {"line": None, "status": None, "buttons": {}}
    for block in message.blocks:
        if block.get("block_id") == f"bill:{bill_id}":
            found["line"] = block["text"]["text"]
        elif block.get("block_id") == f"bill_status:{bill_id}":
            found["status"] = " ".join(e["text"] for e in block["elements"])
        elif block.get("block_id") == f"bill_actions:{bill_id}":
            found["buttons"] = {e["action_id"]: e for e in block["elements"]}
    return found


def section(message: Message, block_id: str) -> str:
    [text] = [b["text"]["text"] for b in message.blocks if b.get("block_id") == block_id]
    return str(text)


async def email_link(stack: LocalStack, kind: ActionKind, bill_id: str, who: str, amount: Decimal) -> httpx.Response:
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    async with httpx.AsyncClient() as reader:
        return await reader.post(signer.action_url(BUSINESS_ID, kind, bill_id, who, amount=amount))


async def email_actions(stack: LocalStack, recipient: str, bill_id: str) -> set[ActionKind]:
    """The actions the email digest rendered now offers `recipient` on the bill."""
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    html = render_digest_email(ctx.view, business_name=ctx.business.name, links=signer, recipient=recipient).html
    actions = [signer.read_action(url.rsplit("/", 1)[1]) for url in HREF.findall(html) if "/email/act/" in url]
    return {action.action for action in actions if action.target_id == bill_id}


def card_in(blocks: list[dict[str, Any]], bill_id: str) -> dict[str, Any]:
    return card(Message(channel=CHANNEL, ts="0", text="", blocks=blocks, user=""), bill_id)


async def surfaces_agree(stack: LocalStack, digest: Message, bill_id: str) -> None:
    """The channel message, `/runway`, the email digest rendered now and the next weekly digest
    say the same about the bill and the runway."""
    await stack.bot.idle()
    message = stack.message(digest.ts)
    ctx = await stack.oodaloo.digest(BUSINESS_ID, shown_bill_ids=[bill_id])
    [line] = [b for b in ctx.view.bills_due.items if b.bill_id == bill_id]
    drawn = kit.digest_message(ctx.view, business_name=ctx.business.name, payment_account=ctx.payment_account)
    # The channel's copy is what the books say now: card, counts, headline.
    assert card(message, bill_id) == card_in(drawn.blocks, bill_id)
    for block_id in ("headline", "bills"):
        assert section(message, block_id) == section_in(drawn.blocks, block_id)
    # The next weekly digest: the same card while the bill is open; a paid bill has left it.
    weekly = await stack.oodaloo.digest(BUSINESS_ID)
    nxt = kit.digest_message(weekly.view, business_name=weekly.business.name, payment_account=weekly.payment_account)
    if line.standing.settled:
        assert card_in(nxt.blocks, bill_id)["line"] is None
    else:
        assert card_in(nxt.blocks, bill_id) == card(message, bill_id)
    assert section_in(nxt.blocks, "headline") == section(message, "headline")
    # /runway says the same runway.
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    await stack.bot.idle()
    assert f"*{ctx.view.headline}*" in stack.ephemerals(OWNER)[-1].text or ctx.view.headline in str(
        stack.ephemerals(OWNER)[-1].blocks
    )
    # The email offers Sam exactly what he can do now.
    sam = frozenset({SAM_EMAIL})
    expected = {ActionKind.BILL_APPROVE} if line.standing.can_approve(sam) else set()
    expected |= {ActionKind.BILL_PAY} if line.standing.can_pay else set()
    assert await email_actions(stack, SAM_EMAIL, bill_id) == expected


def section_in(blocks: list[dict[str, Any]], block_id: str) -> str:
    [text] = [b["text"]["text"] for b in blocks if b.get("block_id") == block_id]
    return str(text)


async def test_one_bill_through_every_path_reads_the_same_everywhere(stack: LocalStack) -> None:
    digest = await stack.post_digest()
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    bill = next(b for b in ctx.view.bills_due.items if b.state is BillState.NEEDS_APPROVAL)
    bill_id, amount = bill.bill_id, bill.amount
    assert bill.standing.approvals_required == 2  # above the $100.00 threshold
    left_before = len(ctx.view.bills_due.left)  # the bill's part: bills due this week
    payments_before = len(stack.bill_payments())

    # 1. Dana approves in Slack: the second approver still has Approve.
    await stack.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    shown = await stack.until(
        lambda: (c := card(stack.message(digest.ts), bill_id))["line"] and "second" in c["line"] and c
    )
    assert f"Approved by <@{OWNER}>; needs a second, different approver" in shown["line"]
    assert set(shown["buttons"]) == {kit.BILL_APPROVE, kit.BILL_SNOOZE}
    assert await email_actions(stack, SAM_EMAIL, bill_id) == {ActionKind.BILL_APPROVE}
    # Dana's own address sees no Approve: she already approved, by Slack.
    assert await email_actions(stack, DANA_EMAIL, bill_id) == set()
    await surfaces_agree(stack, digest, bill_id)

    # 2. Dana again, by email: one person is one approver, whichever door.
    refused = await email_link(stack, ActionKind.BILL_APPROVE, bill_id, DANA_EMAIL, amount)
    assert "already approved" in refused.text and "second, different person" in refused.text
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    assert (await services.bills.standing(bill_id)).approved_by == (OWNER,)
    await surfaces_agree(stack, digest, bill_id)

    # 3. Sam approves by email: the channel's card offers Pay, with the amount Sam saw.
    approved = await email_link(stack, ActionKind.BILL_APPROVE, bill_id, SAM_EMAIL, amount)
    assert approved.status_code == 200, approved.text
    shown = await stack.until(lambda: (c := card(stack.message(digest.ts), bill_id))["buttons"].get(kit.BILL_PAY) and c)
    pay = shown["buttons"][kit.BILL_PAY]
    assert pay["value"] == f"{bill_id}|{amount}"
    assert "ready to pay" in shown["line"] and "sam@" in shown["line"]
    promise = re.search(r"Runway goes from (\d+) to (\d+) days", pay["confirm"]["text"]["text"])
    assert promise is not None
    assert await email_actions(stack, SAM_EMAIL, bill_id) == {ActionKind.BILL_PAY}
    await surfaces_agree(stack, digest, bill_id)

    # 4. A bookkeeper raises the bill in QuickBooks. Dana's Pay (the old amount) pays nothing and
    # tells her the new one; after the sync the approvals, given for less, no longer count.
    raised = amount + Decimal("50.00")
    await edit_bill_amount(stack.sandbox, bill_id, raised)
    await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")
    told = await stack.ephemeral_for(OWNER, "open in QuickBooks")
    assert f"${raised:,.2f} open in QuickBooks, not the ${amount:,.2f}" in told.text
    assert len(stack.bill_payments()) == payments_before
    await services.mirror.sync()
    shown = await stack.until(lambda: (c := card(stack.message(digest.ts), bill_id))["line"] and "again" in c["line"] and c)
    assert f"QuickBooks now says ${raised:,.2f}: needs two approvals again" in shown["line"]
    assert set(shown["buttons"]) == {kit.BILL_APPROVE, kit.BILL_SNOOZE}
    await surfaces_agree(stack, digest, bill_id)
    await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    await stack.bot.idle()
    assert (await email_link(stack, ActionKind.BILL_APPROVE, bill_id, SAM_EMAIL, raised)).status_code == 200
    amount = raised
    shown = await stack.until(lambda: (c := card(stack.message(digest.ts), bill_id))["buttons"].get(kit.BILL_PAY) and c)
    pay = shown["buttons"][kit.BILL_PAY]
    assert pay["value"] == f"{bill_id}|{amount}"
    promise = re.search(r"Runway goes from (\d+) to (\d+) days", pay["confirm"]["text"]["text"])
    assert promise is not None
    before_days, after_days = int(promise[1]), int(promise[2])
    await surfaces_agree(stack, digest, bill_id)

    # 5. Dana pays in Slack: the card, the counts, the headline and /runway say the same runway.
    await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")
    paid = await stack.until(lambda: (c := card(stack.message(digest.ts), bill_id))["status"] and c)
    assert re.search(rf"Paid \$[\d,.]+ from .+ by <@{OWNER}>", paid["line"]), paid["line"]
    # The approval given by email is still there once the bill is paid.
    assert f"approved by <@{OWNER}> and sam@\u200bexample.com" in paid["line"]
    assert paid["buttons"] == {}
    assert paid["status"] == f"Paid by <@{OWNER}> · runway now {after_days} days"
    message = stack.message(digest.ts)
    assert f"{left_before - 1} of {left_before} bills left" in section(message, "bills")
    assert f"Runway: {after_days} days" in section(message, "headline")
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    summary = await stack.ephemeral_for(OWNER, f"Runway: {after_days} days")
    assert summary is not None
    assert len(stack.bill_payments()) == payments_before + 1
    after = await stack.oodaloo.digest(BUSINESS_ID)
    assert after.view.runway.days == after_days and before_days > after_days
    assert await email_actions(stack, SAM_EMAIL, bill_id) == set()
    await surfaces_agree(stack, digest, bill_id)

    # 6. The same Pay from Sam's email: its page says the bill is paid, and pressing sends nothing.
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    async with httpx.AsyncClient() as reader:
        page = await reader.get(signer.action_url(BUSINESS_ID, ActionKind.BILL_PAY, bill_id, SAM_EMAIL, amount=amount))
    assert "already paid in full" in page.text
    again = await email_link(stack, ActionKind.BILL_PAY, bill_id, SAM_EMAIL, amount)
    assert again.status_code == 200 and "already paid" in again.text
    assert len(stack.bill_payments()) == payments_before + 1
    await surfaces_agree(stack, digest, bill_id)

    # 7. A sync reads QuickBooks again: the figures stay what the dialog promised.
    await services.mirror.sync()
    synced = await stack.oodaloo.digest(BUSINESS_ID)
    assert synced.view.runway.days == after_days
    assert (await services.bills.standing(bill_id)).state is BillState.PAID
    await surfaces_agree(stack, digest, bill_id)


async def test_a_sent_reminder_shows_on_the_invoice_everywhere(stack: LocalStack) -> None:
    """A sent reminder still said "No reminder sent yet"."""
    digest = await stack.post_digest()
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    invoice = ctx.view.overdue_invoices.items[0]
    assert invoice.reminders_sent == 0
    await stack.agent.click(
        OWNER, digest, kit.INVOICE_REMIND, block_id=f"invoice_actions:{invoice.invoice_id}"
    )
    line = await stack.until(
        lambda: (t := section(stack.message(digest.ts), f"invoice:{invoice.invoice_id}"))
        and ":envelope: 1 reminder sent" in t
        and t
    )
    assert "No reminder sent yet" not in line and f"by <@{OWNER}>" in line
    again = await stack.oodaloo.digest(BUSINESS_ID)
    [shown] = [i for i in again.view.overdue_invoices.items if i.invoice_id == invoice.invoice_id]
    assert (shown.reminders_sent, shown.last_reminder_by) == (1, OWNER)
