"""Oodaloo's Home tab end to end: Slack's `app_home_opened` event, the view published with
`views.publish` to the local Slack, clicks on its buttons (the digest's own action ids) handled by
the same handlers, and the tab following every change. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from db_conftest import MigratedDatabase

from bot.local import BOOKKEEPER, BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit
from bot.slack.handoff import SlackWork
from bot.slack.home import HOME_SETTINGS, RecentItem, not_linked_view, recent_line
from runway.lifecycle import BillState
from runway.models import AuditEntry
from slack_sandbox.workspace import View, buttons

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


def _texts(view: View) -> str:
    return json.dumps(view.blocks)


async def _open_home(stack: LocalStack, user: str) -> View:
    before = stack.workspace.home(user)
    delivery = await stack.agent.event(
        {"type": "app_home_opened", "user": user, "channel": "D" + user[1:], "tab": "home"}
    )
    assert delivery.status == 200

    def published() -> View | None:
        home = stack.workspace.home(user)
        return home if home is not None and (before is None or home.hash != before.hash) else None

    return await stack.until(published)


async def _home_after(stack: LocalStack, user: str, seen: View, contains: str) -> View:
    def changed() -> View | None:
        home = stack.workspace.home(user)
        return home if home is not None and home.hash != seen.hash and contains in _texts(home) else None

    return await stack.until(changed)


async def _two_approver_bill(stack: LocalStack) -> str:
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    for bill in ctx.view.bills:
        if bill.state is BillState.NEEDS_APPROVAL and bill.standing.approvals_required == 2:
            return bill.bill_id
    raise AssertionError("the seeded company has no bill above the threshold in the digest")


async def test_home_shows_the_runway_and_the_bills_waiting_for_this_person(stack: LocalStack) -> None:
    home = await _open_home(stack, OWNER)
    assert home.type == "home"
    assert json.loads(home.private_metadata) == {"channel_id": CHANNEL}
    ids = [block.get("block_id") for block in home.blocks]
    assert {"home_header", "headline", "cash", "freshness", "home_waiting", "home_recent", "drift"} <= set(ids)
    assert buttons(home, HOME_SETTINGS) == [("home_actions", BUSINESS_ID)]
    # The digest's own buttons, with the amount the card shows.
    approvals = buttons(home, kit.BILL_APPROVE)
    assert approvals and all(block.startswith("bill_actions:") and "|" in value for block, value in approvals)
    assert len(home.blocks) <= 100


async def test_staff_see_the_runway_withoutbuttons(stack: LocalStack) -> None:
    home = await _open_home(stack, STAFF)
    assert "Only the business" in _texts(home)
    assert buttons(home, kit.BILL_APPROVE) == [] and buttons(home, HOME_SETTINGS) == []
    assert "headline" in [block.get("block_id") for block in home.blocks]


async def test_a_person_with_no_business_is_told_how_to_connect() -> None:
    view = not_linked_view()
    assert view["type"] == "home"
    assert "/runway connect" in json.dumps(view)


async def test_two_approvers_approve_and_pay_from_their_home_tabs(stack: LocalStack) -> None:
    bill_id = await _two_approver_bill(stack)
    digest = await stack.post_digest()
    owner_home = await _open_home(stack, OWNER)
    block = f"bill_actions:{bill_id}"
    delivery = await stack.agent.click(OWNER, owner_home, kit.BILL_APPROVE, block_id=block)
    assert delivery.status == 200
    # The owner's Home follows: the bill waits for someone else now, so it leaves their list.
    owner_after = await _home_after(stack, OWNER, owner_home, "home_others_waiting")
    assert block not in [b for b, _ in buttons(owner_after, kit.BILL_APPROVE)]
    assert "approved" in _texts(owner_after)  # "Recently": the owner approved it
    # The digest in the channel follows too.
    await stack.until(lambda: "needs a second" in json.dumps(stack.message(digest.ts).blocks))

    books_home = await _open_home(stack, BOOKKEEPER)
    assert block in [b for b, _ in buttons(books_home, kit.BILL_APPROVE)]
    await stack.agent.click(BOOKKEEPER, books_home, kit.BILL_APPROVE, block_id=block)
    ready = await _home_after(stack, BOOKKEEPER, books_home, "ready to pay")
    pay = [value for b, value in buttons(ready, kit.BILL_PAY) if b == block]
    assert pay, "the approved bill shows Pay on the Home tab"
    await stack.agent.click(BOOKKEEPER, ready, kit.BILL_PAY, block_id=block)
    await _home_after(stack, BOOKKEEPER, ready, "Recently")

    def paid() -> bool:
        return any(
            str(linked.get("TxnId")) == bill_id
            for payment in stack.bill_payments()
            for line in payment.get("Line", [])
            for linked in line.get("LinkedTxn", [])
        )

    await stack.until(paid)
    await stack.until(lambda: "Paid" in json.dumps(stack.message(digest.ts).blocks))
    final = stack.workspace.home(BOOKKEEPER)
    assert final is not None and "paid" in _texts(final).lower()


async def test_recently_names_the_bill_as_the_cards_do(stack: LocalStack) -> None:
    bill_id = await _two_approver_bill(stack)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    bill = next(b for b in ctx.view.bills if b.bill_id == bill_id)
    home = await _open_home(stack, OWNER)
    await stack.agent.click(OWNER, home, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    after = await _home_after(stack, OWNER, home, "approved")
    recent = next(b for b in after.blocks if b.get("block_id") == "home_recent")["text"]["text"]
    named = kit.item_name("bill", bill.vendor_name, bill.doc_number)
    assert f"approved {named}, {kit.bill_money(ctx.view, bill, bill.amount)}" in recent
    assert f"Bill {bill_id}" not in recent


async def test_a_recent_line_escapes_the_vendor_and_gives_both_currencies(stack: LocalStack) -> None:
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    entry = AuditEntry(
        actor=OWNER, action="bill.pay", target="Bill 77", amount=Decimal("1000.00"),
        outcome="succeeded: paid", requested_at=datetime(2026, 3, 2, 17, 0, tzinfo=UTC),
    )  # fmt: skip
    item = RecentItem("bill", 'Smith & <Sons> "Bakery"', "A<1>", "EUR", Decimal("1.1"), Decimal("1000.00"))
    line = recent_line(ctx.view, entry, item)
    assert '*Smith &amp; &lt;Sons&gt; "Bakery"* · bill A&lt;1&gt;, €1,000.00 ($1,100.00)' in line
    assert "<Sons>" not in line and "Bill 77" not in line
    # A bill the mirror no longer has keeps the trail's own words, escaped.
    unknown = AuditEntry(actor=OWNER, action="bill.pay", target="Bill <9>", amount=None, outcome=None,
                         requested_at=entry.requested_at)
    assert "paid Bill &lt;9&gt; · _still going_" in recent_line(ctx.view, unknown, None)


async def test_a_refusal_from_home_is_told_on_home(stack: LocalStack) -> None:
    """Staff cannot approve: a click from Home (say, a stale tab) is answered on their Home."""
    bill_id = await _two_approver_bill(stack)
    staff_home = await _open_home(stack, STAFF)
    owner_home = await _open_home(stack, OWNER)
    element = next(
        element
        for block in owner_home.blocks
        if block.get("block_id") == f"bill_actions:{bill_id}"
        for element in block["elements"]
        if element["action_id"] == kit.BILL_APPROVE
    )
    seen = View(**{**staff_home.__dict__, "blocks": [
        {"type": "actions", "block_id": f"bill_actions:{bill_id}", "elements": [element]}
    ]})  # fmt: skip
    await stack.agent.click(STAFF, seen, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    told = await _home_after(stack, STAFF, staff_home, "home_notice")
    assert "approver" in _texts(told).lower()


async def test_settings_open_from_home(stack: LocalStack) -> None:
    home = await _open_home(stack, OWNER)
    await stack.agent.click(OWNER, home, HOME_SETTINGS)
    modal = await stack.until(lambda: next(iter(stack.workspace.open_views(OWNER)), None))
    assert modal.type == "modal"
    assert json.loads(modal.private_metadata).get("channel_id") == CHANNEL


async def test_a_sync_republishes_the_home_tabs_people_opened(stack: LocalStack) -> None:
    home = await _open_home(stack, OWNER)
    services = await stack.oodaloo.services_for(BUSINESS_ID)
    await services.mirror.sync()
    await stack.until(lambda: (found := stack.workspace.home(OWNER)) is not None and found.hash != home.hash)


def test_opening_home_is_work_a_worker_can_take() -> None:
    """With Redis, `oodaloo worker` publishes the Home tab: the work crosses as JSON."""
    work = SlackWork("home", "app_home_opened", {"team_id": "T0OODALOO", "user": OWNER})
    assert SlackWork.from_json(work.to_json()) == work
    assert work.team_id == "T0OODALOO" and work.response_url is None


def test_the_manifest_turns_the_home_tab_on() -> None:
    manifest: dict[str, Any] = yaml.safe_load((REPOSITORY / "app.yaml").read_text())
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert "app_home_opened" in manifest["settings"]["event_subscriptions"]["bot_events"]
