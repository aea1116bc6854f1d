"""A payment Oodaloo hands to a person is settled from Slack: "It's paid in QuickBooks", "Not paid:
send it" or "Cancel the payment", each by an approver, recorded in the ledger and the audit trail,
and every message showing the bill follows.

How a payment comes to need a person here, as it does for real: the Pay click's answer is lost
(QuickBooks answers 500 to every write), then a bookkeeper pays the same amount by hand in
QuickBooks, without Oodaloo's marker; the reconciler cannot tell whose payment that is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from db_conftest import MigratedDatabase
from sqlalchemy import text

from bot.local import BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit
from qbo_sandbox.chaos import FaultPlan, FaultRule
from runway.lifecycle import BillState
from slack_sandbox.workspace import Message
from sync import ActionState, PersonDecision

DECIDE = {decision: action_id for action_id, decision in kit.PAYMENT_DECISIONS.items()}


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


def _line(message: Message, bill_id: str) -> str:
    return next(str(b["text"]["text"]) for b in message.blocks if b.get("block_id") == f"bill:{bill_id}")


def _buttons(message: Message, bill_id: str) -> list[str]:
    return [
        str(element["action_id"])
        for block in message.blocks
        if block.get("block_id") == f"bill_actions:{bill_id}"
        for element in block.get("elements", [])
    ]


async def _needs_a_person(stack: LocalStack) -> tuple[Message, str, Decimal, str]:
    """A bill whose payment needs a person; returns the digest, the bill, its amount and the
    ledger key of the payment."""
    digest = await stack.post_digest()
    bills = stack.oodaloo.services(await stack.business()).bills
    bill_id, amount = next(
        (s.bill_id, s.balance)
        for s in (await bills.standings([b.split(":")[1] for b in _bill_blocks(digest)])).values()
        if s.approvals_required == 1
    )
    await stack.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
    await stack.until(lambda: kit.BILL_PAY in _buttons(stack.message(digest.ts), bill_id) or None)

    stack.sandbox.chaos.plan = FaultPlan(by_kind={"write": FaultRule(rate_5xx=1.0)})
    await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")
    await stack.bot.idle()
    stack.sandbox.chaos.plan = FaultPlan()
    standing = await bills.standing(bill_id)
    assert standing.state is BillState.UNKNOWN, standing

    # A bookkeeper pays it by hand in QuickBooks: the same amount, no marker.
    bill = stack.sandbox.realm().get("Bill", bill_id)
    assert bill is not None
    bank = next(a for a in stack.sandbox.realm().iter("Account") if a.get("AccountType") == "Bank")
    async with stack.sandbox.http_client() as quickbooks:
        made = await quickbooks.post(stack.sandbox.v3_path("billpayment"), json={
            "VendorRef": bill["VendorRef"], "PayType": "Check", "TotalAmt": str(amount),
            "CheckPayment": {"BankAccountRef": {"value": bank["Id"]}},
            "Line": [{"Amount": str(amount), "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}],
        })  # fmt: skip
        assert made.status_code == 200, made.text
    [resolution] = await stack.oodaloo.reconciler().sweep()
    assert resolution.state is ActionState.NEEDS_HUMAN, resolution
    await stack.bot.idle()
    card = await stack.until(
        lambda: stack.message(digest.ts) if DECIDE[PersonDecision.PAID] in _buttons(stack.message(digest.ts), bill_id) else None
    )
    assert "needs a look in QuickBooks" in _line(card, bill_id)
    assert "paid it by hand" in _line(card, bill_id)
    return card, bill_id, amount, resolution.key


def _paying(stack: LocalStack, bill_id: str) -> list[dict[str, Any]]:
    """The payments in QuickBooks applied to this bill."""
    return [
        p for p in stack.bill_payments()
        if any(link.get("TxnId") == bill_id for line in p.get("Line", []) for link in line.get("LinkedTxn", []))
    ]  # fmt: skip


def _bill_blocks(message: Message) -> list[str]:
    return [str(b["block_id"]) for b in message.blocks if str(b.get("block_id", "")).startswith("bill:")]


async def _decisions(stack: LocalStack, key: str) -> list[dict[str, Any]]:
    async with stack.oodaloo.sessions() as session:
        rows = await session.execute(
            text("SELECT actor, action, outcome, action_key FROM audit_entries WHERE action_key = :key ORDER BY id"),
            {"key": key},
        )
        return [dict(row._mapping) for row in rows]


async def test_an_approver_marks_a_payment_paid_and_it_matches_the_payment_in_quickbooks(stack: LocalStack) -> None:
    card, bill_id, amount, key = await _needs_a_person(stack)
    payments = len(stack.bill_payments())

    # Someone who is not an approver cannot decide.
    await stack.agent.click(STAFF, card, DECIDE[PersonDecision.PAID], block_id=f"bill_actions:{bill_id}")
    refusal = await stack.ephemeral_for(STAFF, "Only approvers")
    assert "decide about payments" in refusal.text
    action = await stack.oodaloo.infra.ledger.get(key)
    assert action is not None and action.state is ActionState.NEEDS_HUMAN

    await stack.agent.click(OWNER, card, DECIDE[PersonDecision.PAID], block_id=f"bill_actions:{bill_id}")
    paid = await stack.until(lambda: stack.message(card.ts) if "Paid" in _line(stack.message(card.ts), bill_id) else None)
    assert _buttons(paid, bill_id) == []
    action = await stack.oodaloo.infra.ledger.get(key)
    by_hand = _paying(stack, bill_id)
    assert action is not None and action.state is ActionState.SUCCEEDED
    assert [action.qbo_object_id] == [str(p["Id"]) for p in by_hand]
    assert OWNER in str(action.last_error)
    assert len(stack.bill_payments()) == payments  # nothing new was paid
    standing = await stack.oodaloo.services(await stack.business()).bills.standing(bill_id)
    assert standing.state is BillState.PAID and standing.balance == Decimal("0.00") and amount > 0
    recorded = await _decisions(stack, key)
    assert [(r["actor"], r["action"]) for r in recorded][-1] == (OWNER, "bill.payment_decision")


async def test_a_cancelled_payment_sends_nothing_and_the_bill_can_be_paid_again(stack: LocalStack) -> None:
    card, bill_id, _, key = await _needs_a_person(stack)
    payments = len(stack.bill_payments())

    await stack.agent.click(OWNER, card, DECIDE[PersonDecision.CANCEL], block_id=f"bill_actions:{bill_id}")
    await stack.until(lambda: "did not go through" in _line(stack.message(card.ts), bill_id) or None)
    action = await stack.oodaloo.infra.ledger.get(key)
    assert action is not None and action.state is ActionState.FAILED and "cancelled" in str(action.last_error)
    assert len(stack.bill_payments()) == payments
    recorded = await _decisions(stack, key)
    assert recorded[-1]["actor"] == OWNER and "cancel" in recorded[-1]["outcome"]

    # A second decision on the same card finds nothing left to decide.
    await stack.agent.click(OWNER, card, DECIDE[PersonDecision.PAID], block_id=f"bill_actions:{bill_id}")
    told = await stack.ephemeral_for(OWNER, "does not need a decision")
    assert "where it stands now" in told.text


async def test_send_it_searches_for_the_marker_then_sends_with_the_same_requestid(stack: LocalStack) -> None:
    card, bill_id, amount, key = await _needs_a_person(stack)
    # The payment by hand was for another purpose: the bookkeeper voids it, so the bill is open.
    [by_hand] = _paying(stack, bill_id)
    async with stack.sandbox.http_client() as quickbooks:
        voided = await quickbooks.post(
            stack.sandbox.v3_path("billpayment"), params={"operation": "delete"},
            json={"Id": by_hand["Id"], "SyncToken": by_hand["SyncToken"]},
        )  # fmt: skip
        assert voided.status_code == 200, voided.text
    payments = len(stack.bill_payments())

    await stack.agent.click(OWNER, card, DECIDE[PersonDecision.SEND_AGAIN], block_id=f"bill_actions:{bill_id}")
    await stack.until(lambda: "Paid" in _line(stack.message(card.ts), bill_id) or None)
    ours = [p for p in stack.bill_payments() if key in str(p.get("PrivateNote"))]
    assert len(ours) == 1 and Decimal(str(ours[0]["TotalAmt"])) == amount
    assert len(stack.bill_payments()) == payments + 1
    action = await stack.oodaloo.infra.ledger.get(key)
    assert action is not None and action.state is ActionState.SUCCEEDED
    assert await stack.oodaloo.digest(BUSINESS_ID) is not None and CHANNEL
