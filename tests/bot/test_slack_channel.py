"""What the bot says in the channel on its own, and how a channel gets linked: drift alerts with
Re-sync and Dismiss, QuickBooks disconnected with Reconnect, `/runway connect` through QuickBooks'
OAuth, QuickBooks webhooks, Slack's pace, `/healthz`, and the multi-workspace install."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import simplejson
from db_conftest import MigratedDatabase

from bot.local import BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit
from qbo_sandbox.webhooks import sign
from runway.models import ConnectionStatus
from slack_sandbox.workspace import Message
from sync_harness import edit_bill_amount


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


def _drift_alerts(stack: LocalStack) -> list[Message]:
    return [
        m for m in stack.workspace.messages(CHANNEL)
        if any(str(b.get("block_id", "")).startswith("drift:") for b in m.blocks)
    ]


async def _an_open_bill(stack: LocalStack) -> str:
    async with stack.oodaloo.uows(BUSINESS_ID) as uow:
        return sorted((await uow.bills.open_bills()), key=lambda b: b.qbo_id)[0].qbo_id


async def test_drift_alert_once_then_dismiss_and_resync(stack: LocalStack) -> None:
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    bill_id = await _an_open_bill(stack)
    await edit_bill_amount(stack.sandbox, bill_id, "4321.09")
    [_event] = await services.drift.check_bills()

    await stack.bot.post_drift_alerts(BUSINESS_ID)
    await stack.bot.post_drift_alerts(BUSINESS_ID)  # the same drift is alerted once
    [alert] = _drift_alerts(stack)
    assert "$4,321.09" in alert.text + str(alert.blocks)
    assert {e["action_id"] for b in alert.blocks if b.get("type") == "actions" for e in b["elements"]} == {
        kit.DRIFT_RESYNC, kit.DRIFT_DISMISS}

    await stack.agent.click(OWNER, alert, kit.DRIFT_DISMISS)
    dismissed = await stack.until(
        lambda: next((m for m in [stack.message(alert.ts)] if "Dismissed by" in str(m.blocks)), None)
    )
    assert f"<@{OWNER}>" in str(dismissed.blocks)
    assert await services.drift.open_events() == []

    # Another outside edit; this time the owner re-syncs, and the mirror catches up.
    await edit_bill_amount(stack.sandbox, bill_id, "4400.00")
    await services.drift.check_bills()
    await stack.bot.post_drift_alerts(BUSINESS_ID)
    second = [a for a in _drift_alerts(stack) if a.ts != alert.ts]
    assert len(second) == 1
    await stack.agent.click(OWNER, second[0], kit.DRIFT_RESYNC)
    await stack.until(lambda: "Re-synced by" in str(stack.message(second[0].ts).blocks))
    async with stack.oodaloo.uows(BUSINESS_ID) as uow:
        mirrored = await uow.bills.get(bill_id)
        assert mirrored is not None and mirrored.total_amount == Decimal("4400.00")
    assert await services.drift.open_events() == []


async def test_quickbooks_disconnected_is_said_once_with_reconnect(stack: LocalStack) -> None:
    await stack.oodaloo.directory.mark_needs_reconnect(stack.sandbox.realm_id, "refresh token revoked")
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    told = await stack.ephemeral_for(OWNER, "QuickBooks refused")
    assert "/runway connect" in told.text
    notice = await stack.until(lambda: next(
        (m for m in stack.workspace.messages(CHANNEL) if "QuickBooks is disconnected" in str(m.blocks)), None))
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    await stack.ephemeral_for(OWNER, "QuickBooks refused")
    await stack.bot.idle()
    assert sum("QuickBooks is disconnected" in str(m.blocks) for m in stack.workspace.messages(CHANNEL)) == 1

    await stack.agent.click(OWNER, notice, kit.QBO_RECONNECT)
    link = await stack.ephemeral_for(OWNER, "/qbo/connect?state=")
    assert "Connect" in link.text


async def test_runway_connect_links_a_new_channel_to_quickbooks(stack: LocalStack) -> None:
    """#general has no business: /runway connect makes one, the owner goes through QuickBooks'
    consent (the sandbox's), and the first sync and digest follow in the channel."""
    realm = stack.sandbox.add_realm(seed=21).realm_id
    await stack.agent.slash_command(OWNER, "C0GENERAL", "/runway", "connect")
    reply = await stack.until(lambda: next(
        (e for e in stack.workspace.ephemerals(user=OWNER, channel="C0GENERAL") if "/qbo/connect" in e.text), None))
    connect_url = reply.text[reply.text.index("<") + 1 : reply.text.index("|")].replace("&amp;", "&")

    async with httpx.AsyncClient() as browser:
        to_intuit = await browser.get(connect_url)
        assert to_intuit.status_code in (302, 303, 307), to_intuit.text
        consent = urlparse(to_intuit.headers["location"])
        # The "browser" reaches the sandbox's consent page (in process), which sends it back.
        async with stack.sandbox.http_client(access_token="") as intuit:
            back = await intuit.get(f"{consent.path}?{consent.query}&realmId={realm}")
        assert back.status_code == 302
        callback = await browser.get(back.headers["location"])
    assert callback.status_code == 200, callback.text
    assert "Connected" in callback.text or "connected" in callback.text

    business = await stack.oodaloo.directory.by_slack_channel(stack.workspace.team_id, "C0GENERAL")
    assert business is not None and business.realm_id == realm
    assert business.approvers == [OWNER]
    assert parse_qs(urlparse(connect_url).query)["state"]
    digest = await stack.until(lambda: next(
        (m for m in stack.workspace.messages("C0GENERAL") if "weekly runway" in str(m.blocks)), None), timeout=30)
    assert digest.channel == "C0GENERAL"


async def test_quickbooks_webhook_syncs_the_business(stack: LocalStack) -> None:
    bill_id = await _an_open_bill(stack)
    await edit_bill_amount(stack.sandbox, bill_id, "1234.56")
    body = simplejson.dumps({"eventNotifications": [{"realmId": stack.sandbox.realm_id, "dataChangeEvent": {
        "entities": [{"name": "Bill", "id": bill_id, "operation": "Update", "lastUpdated": "2026-11-26T10:00:00.000Z"}]}}]}).encode()
    async with httpx.AsyncClient() as intuit:
        forged = await intuit.post(f"{stack.url}/qbo/webhooks", content=body, headers={"intuit-signature": "bm9wZQ=="})
        assert forged.status_code == 401
        sent = await intuit.post(f"{stack.url}/qbo/webhooks", content=body,
                                 headers={"intuit-signature": sign(stack.sandbox.verifier_token, body),
                                          "content-type": "application/json"})
    assert sent.status_code == 200

    async def synced() -> bool:
        async with stack.oodaloo.uows(BUSINESS_ID) as uow:
            bill = await uow.bills.get(bill_id)
            return bill is not None and bill.total_amount == Decimal("1234.56")

    for _ in range(200):
        if await synced():
            break
        await asyncio.sleep(0.05)
    assert await synced()


async def test_posting_keeps_slacks_pace_in_one_channel(stack: LocalStack) -> None:
    # The local Slack answers 429 to a fourth message in a second; the bot paces itself instead.
    posted = await asyncio.gather(*(
        stack.bot.poster.post(BUSINESS_ID, CHANNEL, text=f"note {n}", blocks=kit.notice_message(f"note {n}").blocks, kind="notice")
        for n in range(5)
    ))
    assert len({p.ts for p in posted}) == 5
    calls = stack.workspace.calls("chat.postMessage")
    assert [c for c in calls if c.status == 429] == []


async def test_healthz_reports_database_redis_and_each_connection(migrated: MigratedDatabase) -> None:
    operator = {"authorization": "Bearer operator-token-for-this-test"}
    async with local_stack(migrated.url, settings={"operator_token": "operator-token-for-this-test"}) as stack, \
            httpx.AsyncClient(headers=operator) as client:
        healthy = (await client.get(f"{stack.url}/healthz"))
        assert healthy.status_code == 200
        report = healthy.json()
        assert report["database"]["ok"] is True
        [business] = report["businesses"]
        assert business["qbo"] == {"usable": True, "status": "connected"}

        await stack.oodaloo.directory.mark_needs_reconnect(stack.sandbox.realm_id, "revoked by the owner")
        report = (await client.get(f"{stack.url}/healthz")).json()
        [business] = report["businesses"]
        assert business["qbo"]["usable"] is False
        assert business["qbo"]["status"] == ConnectionStatus.NEEDS_RECONNECT.value
        assert "revoked" in business["qbo"]["reason"]


async def test_a_non_approver_cannot_connect_an_existing_business(stack: LocalStack) -> None:
    await stack.agent.slash_command(STAFF, CHANNEL, "/runway", "connect")
    told = await stack.ephemeral_for(STAFF, "Only approvers")
    assert "/qbo/connect" not in told.text


async def test_a_payment_from_the_email_digest_shows_in_the_channel(migrated: MigratedDatabase) -> None:
    from bot.email.links import ActionKind, LinkSigner

    async with local_stack(migrated.url, email_recipients=["owner@example.com"]) as stack:
        digest = await stack.post_digest()
        ctx = await stack.oodaloo.digest(BUSINESS_ID)
        bill = next(b for b in ctx.view.bills_due.items if b.amount <= ctx.business.approval_threshold)
        services = await stack.oodaloo.services_for(BUSINESS_ID)
        await services.bills.approve(bill.bill_id, OWNER)
        signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
        link = signer.action_url(BUSINESS_ID, ActionKind.BILL_PAY, bill.bill_id, "owner@example.com", amount=bill.amount)
        async with httpx.AsyncClient() as reader:
            asked = await reader.get(link)
            assert asked.status_code == 200 and "Pay" in asked.text
            done = await reader.post(link)
        assert done.status_code == 200, done.text
        line = await stack.until(lambda: next(
            (" ".join(e["text"] for e in b["elements"]) for b in stack.message(digest.ts).blocks
             if b.get("block_id") == f"bill_status:{bill.bill_id}"), None))
        # Paid by the person the email went to (an address never mentions anyone).
        assert "Paid" in line and "owner@\u200bexample.com" in line
