"""The whole list in a modal, where the person clicked: "Show all" under the digest and the
`/runway` summary's "Bills to pay" open it with views.open, "Next" turns its page with
views.update, its buttons run the digest's handlers and the modal follows; when Slack cannot open
a modal (its trigger expired) the list comes as the ephemeral answer it always was. Real signed
requests to the bot, the local Slack's Web API, the QBO sandbox; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from db_conftest import MigratedDatabase

from bot.local import BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit
from bot.slack.app import _lean
from bot.slack.handoff import InProcess, SlackWork
from bot.slack.list_modal import LIST_MODAL, list_modal_of
from qbo_sandbox.config import ManualClock
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.workspace import View, buttons

VENDOR = "Larkspur & Pine <Coffee> Roasters"


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, business_name=VENDOR) as built:
        yield built


def _ids(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    return kit.shown_ids(blocks, kind)  # type: ignore[arg-type]


async def _list_modal(stack: LocalStack, user: str) -> View:
    def opened() -> View | None:
        return next((v for v in stack.workspace.open_views(user) if v.callback_id == LIST_MODAL), None)

    return await stack.until(opened)


async def _modal_after(stack: LocalStack, seen: View, contains: str = "") -> View:
    def changed() -> View | None:
        now = stack.workspace.view(seen.id)
        if now is not None and now.is_open and now.hash != seen.hash and contains in json.dumps(now.blocks):
            return now
        return None

    return await stack.until(changed)


async def test_show_all_opens_the_list_in_a_modal_and_next_turns_its_page(stack: LocalStack) -> None:
    digest = await stack.post_digest()
    in_digest = _ids(digest.blocks, "invoice")
    delivery = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES, block_id="invoice_more")
    assert delivery.status == 200

    modal = await _list_modal(stack, OWNER)
    assert modal.title["text"] == "Overdue invoices" and len(modal.title["text"]) <= 24
    first_page = _ids(modal.blocks, "invoice")
    assert len(first_page) > len(in_digest), "the modal lists more than the digest showed"
    assert buttons(modal, kit.INVOICE_REMIND), "with the digest's own buttons"
    assert len(modal.blocks) <= 100
    assert json.loads(modal.private_metadata) == {"channel_id": CHANNEL, "kind": "invoice", "offset": 0}
    assert stack.ephemerals(OWNER) == [], "nothing at the bottom of the channel"

    (next_block, following), = buttons(modal, kit.SHOW_MORE_INVOICES)
    assert next_block == "invoice_next"
    await stack.agent.click(OWNER, modal, kit.SHOW_MORE_INVOICES, block_id=next_block)
    turned = await _modal_after(stack, modal)
    second_page = _ids(turned.blocks, "invoice")
    assert second_page and not set(second_page) & set(first_page), "the next page, in the modal"
    assert json.loads(turned.private_metadata)["offset"] == int(following)
    assert [v.id for v in stack.workspace.open_views(OWNER)] == [modal.id], "one modal, updated"
    assert stack.ephemerals(OWNER) == []


async def test_pay_from_the_modal_pays_once_and_the_modal_follows(stack: LocalStack) -> None:
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    summary = await stack.ephemeral_for(OWNER, kit.SHOW_MORE_BILLS)
    await stack.agent.click(OWNER, summary, kit.SHOW_MORE_BILLS, block_id="lists")
    modal = await _list_modal(stack, OWNER)
    assert modal.title["text"] == "Bills to pay"

    business = await stack.business()
    small = [
        (block, value) for block, value in buttons(modal, kit.BILL_APPROVE)
        if Decimal(value.split("|")[1]) <= business.approval_threshold
    ]  # fmt: skip
    assert small, "the list shows a bill one approval is enough for"
    block, value = small[0]
    bill_id = value.split("|")[0]
    await stack.agent.click(OWNER, modal, kit.BILL_APPROVE, block_id=block)

    def payable() -> View | None:
        now = stack.workspace.view(modal.id)
        return now if now is not None and block in [b for b, _ in buttons(now, kit.BILL_PAY)] else None

    approved = await stack.until(payable)
    payments_before = len(stack.bill_payments())
    await stack.agent.click(OWNER, approved, kit.BILL_PAY, block_id=block)

    def paid_card() -> View | None:
        now = stack.workspace.view(modal.id)
        if now is None:
            return None
        card = next((b for b in now.blocks if b.get("block_id") == f"bill:{bill_id}"), None)
        gone = card is None
        return now if gone or "Paid" in json.dumps(card) else None

    after = await stack.until(paid_card)
    assert block not in [b for b, _ in buttons(after, kit.BILL_PAY)], "no Pay on a paid bill"
    paying = [
        payment for payment in stack.bill_payments()
        if any(str(linked.get("TxnId")) == bill_id
               for line in payment.get("Line", []) for linked in line.get("LinkedTxn", []))
    ]  # fmt: skip
    assert len(paying) == 1 and len(stack.bill_payments()) == payments_before + 1, "paid once"
    assert stack.workspace.view(modal.id) is not None and stack.workspace.view(modal.id).is_open  # type: ignore[union-attr]
    assert [v.id for v in stack.workspace.open_views(OWNER)] == [modal.id]


async def test_a_refusal_in_the_modal_is_told_in_the_modal(stack: LocalStack) -> None:
    """Staff see the list but cannot approve: they are told above the list, not behind it."""
    digest = await stack.post_digest()
    await stack.agent.click(STAFF, digest, kit.SHOW_MORE_INVOICES, block_id="invoice_more")
    invoices = await _list_modal(stack, STAFF)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    bill = next(b for b in ctx.view.bills if b.state in kit.WAITING)
    seen = View(**{**invoices.__dict__, "blocks": [{
        "type": "actions", "block_id": f"bill_actions:{bill.bill_id}",
        "elements": [{"type": "button", "action_id": kit.BILL_APPROVE, "value": f"{bill.bill_id}|{bill.amount}",
                      "text": {"type": "plain_text", "text": "Approve"}}],
    }]})  # fmt: skip
    await stack.agent.click(STAFF, seen, kit.BILL_APPROVE, block_id=f"bill_actions:{bill.bill_id}")
    told = await _modal_after(stack, invoices, "list_notice")
    assert "approver" in json.dumps(told.blocks).lower()
    assert _ids(told.blocks, "invoice") == _ids(invoices.blocks, "invoice"), "the list stays below"
    assert stack.ephemerals(STAFF) == []


class LateHandOff(InProcess):
    """The work after the ack reaches Slack only after the click's trigger_id has expired (a slow
    worker, a busy database): the local Slack's clock moves 4 s first."""

    def __init__(self, stack: LocalStack, clock: ManualClock) -> None:
        super().__init__(stack.bot)
        self.clock = clock

    async def hand_off(self, work: SlackWork, client: Any, respond: Any, *, delivery: str | None) -> None:
        self.clock.advance(timedelta(seconds=4))
        await super().hand_off(work, client, respond, delivery=delivery)


async def test_an_expired_trigger_answers_with_the_ephemeral_list(migrated: MigratedDatabase) -> None:
    clock = ManualClock()
    async with local_stack(migrated.url, slack_config=SlackSandboxConfig(clock=clock)) as stack:
        stack.bot.hand_off = LateHandOff(stack, clock)
        digest = await stack.post_digest()
        await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES, block_id="invoice_more")
        listed = await stack.ephemeral_for(OWNER, kit.INVOICE_REMIND)
        assert len(_ids(listed.blocks, "invoice")) > len(_ids(digest.blocks, "invoice"))
        assert stack.workspace.open_views(OWNER) == []
        refused = [call.error for call in stack.workspace.calls("views.open")]
        assert refused == ["expired_trigger_id"]


async def test_runway_bills_typed_still_answers_in_the_channel_and_pages_in_place(stack: LocalStack) -> None:
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "invoices")
    first = await stack.ephemeral_for(OWNER, kit.INVOICE_REMIND)
    (next_block, _), = buttons(first, kit.SHOW_MORE_INVOICES)
    await stack.agent.click(OWNER, first, kit.SHOW_MORE_INVOICES, block_id=next_block)
    await stack.until(lambda: (e := stack.workspace.ephemeral(first.ts)) is not None and e.blocks != first.blocks)
    second = stack.workspace.ephemeral(first.ts)
    assert second is not None and _ids(second.blocks, "invoice")
    assert not set(_ids(second.blocks, "invoice")) & set(_ids(first.blocks, "invoice"))
    assert stack.workspace.open_views(OWNER) == [], "a typed command answers as it always did"


def test_a_modal_click_handed_to_a_worker_keeps_its_page_and_channel() -> None:
    view = {
        "id": "V1", "type": "modal", "hash": "1.a", "callback_id": LIST_MODAL,
        "private_metadata": json.dumps({"channel_id": CHANNEL, "kind": "bill", "offset": 15}),
        "blocks": [{"type": "divider"}] * 60, "state": {"values": {}},
    }  # fmt: skip
    lean = _lean({"type": "block_actions", "view": view, "team": {"id": "T1"}})
    assert "blocks" not in lean["view"]
    modal = list_modal_of(SlackWork.from_json(SlackWork("click", kit.BILL_PAY, lean).to_json()).body)
    assert modal is not None and (modal.view_id, modal.kind, modal.offset) == ("V1", "bill", 15)
