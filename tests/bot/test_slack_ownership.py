"""Who may change a business from Slack: a channel belongs to one business, and only that
business's approvers can change its settings, channel or QuickBooks connection, whichever button
or command they use (the local Slack workspace, the QBO sandbox, the whole bot)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from db_conftest import MigratedDatabase

from bot.local import BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
from bot.slack import blocks as kit

GENERAL = "C0GENERAL"


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, business_name="Larkspur & Pine") as built:
        yield built


async def test_a_member_cannot_take_a_linked_channel_through_a_business_of_their_own(
    stack: LocalStack,
) -> None:
    ws = stack.workspace
    directory = stack.oodaloo.directory
    # Anyone may link an unlinked channel: they become its new business's first approver.
    await stack.agent.slash_command(STAFF, GENERAL, "/runway", "connect")
    await stack.until(lambda: next(
        (e for e in ws.ephemerals(user=STAFF, channel=GENERAL) if "/qbo/connect" in e.text), None))
    theirs = await directory.by_slack_channel(ws.team_id, GENERAL)
    assert theirs is not None and theirs.approvers == [STAFF]

    # …but cannot point that business at #finance, which is Larkspur & Pine's.
    await stack.agent.slash_command(STAFF, GENERAL, "/runway", "settings")
    view = await stack.until(lambda: next(iter(ws.open_views(STAFF)), None))
    refused = await stack.agent.submit_view(STAFF, view.id, {
        "channel": {"value": {"type": "conversations_select", "selected_conversation": CHANNEL}},
    })
    errors = (refused.json or {}).get("errors") or {}
    assert "already belongs to another business in Oodaloo" in errors.get("channel", ""), refused.text
    assert errors["channel"].startswith("#finance"), errors
    here = await directory.by_slack_channel(ws.team_id, CHANNEL)
    assert here is not None and here.id == BUSINESS_ID
    assert (await directory.get(theirs.id)).slack_channel_id == GENERAL


async def test_the_reconnect_button_gives_a_non_approver_no_link(stack: LocalStack) -> None:
    await stack.oodaloo.directory.mark_needs_reconnect(stack.sandbox.realm_id, "refresh token revoked")
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "sync")
    notice = await stack.until(lambda: next(
        (m for m in stack.workspace.messages(CHANNEL) if "QuickBooks is disconnected" in str(m.blocks)), None))

    await stack.agent.click(STAFF, notice, kit.QBO_RECONNECT)
    refusal = await stack.ephemeral_for(STAFF, "Only approvers")
    assert "QuickBooks" in refusal.text
    await stack.bot.idle()
    assert not [e for e in stack.ephemerals(STAFF) if "/qbo/connect" in e.text]

    await stack.agent.click(OWNER, notice, kit.QBO_RECONNECT)
    await stack.ephemeral_for(OWNER, "/qbo/connect?state=")
