"""Oodaloo in Socket Mode, end to end: started with SLACK_APP_TOKEN against the local Slack with
Socket Mode on, it connects as `oodaloo serve` does (apps.connections.open, then the websocket),
and a command and a click reach it as envelopes on that websocket, never as HTTP requests to its
request URL. Its answers come back through the ack and the local Slack's Web API. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from db_conftest import MigratedDatabase

from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.settings import SettingsError
from bot.slack import blocks as kit
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.workspace import Ephemeral, Message

SOCKET_MODE = SlackSandboxConfig(socket_mode=True)


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(
        migrated.url, slack_config=SOCKET_MODE, settings={"slack_app_token": SOCKET_MODE.app_token}
    ) as built:
        yield built


def _has_button(message: Message, action_id: str, block_id: str) -> bool:
    return any(
        block.get("block_id") == block_id
        and any(e.get("action_id") == action_id for e in block.get("elements", []))
        for block in message.blocks
    )


async def _bill_one_approval_pays(stack: LocalStack) -> str:
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    for bill in ctx.view.bills_due.items:
        if bill.amount <= ctx.business.approval_threshold and bill.state.value == "needs_approval":
            return bill.bill_id
    raise AssertionError("the seeded company has no small bill due this week")


async def test_a_command_and_a_click_arrive_over_the_websocket_and_are_answered(
    stack: LocalStack,
) -> None:
    ws, agent = stack.workspace, stack.agent
    await stack.until(lambda: ws.socket_mode.open_connections == 1)  # connected when it started

    # The ack's payload is the command's immediate answer, shown only to the person.
    helped = await agent.slash_command(OWNER, CHANNEL, "/runway", "help")
    assert (helped.transport, helped.status, helped.answer_error) == ("socket", 200, None)
    (envelope,) = helped.envelopes
    assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
    assert envelope["payload"]["command"] == "/runway" and envelope["payload"]["user_id"] == OWNER
    assert isinstance(helped.shown, Ephemeral) and helped.shown.user == OWNER
    assert "/runway bills" in helped.shown.text

    # An empty ack, then the summary through the command's response_url.
    summary = await agent.slash_command(OWNER, CHANNEL, "/runway", "")
    assert (summary.transport, summary.status, summary.shown) == ("socket", 200, None)
    shown = await stack.ephemeral_for(OWNER, "Runway")
    assert shown.user == OWNER

    # Approve on the digest: the message is updated in place.
    digest = await stack.post_digest()
    bill_id = await _bill_one_approval_pays(stack)
    block_id = f"bill_actions:{bill_id}"
    click = await agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=block_id)
    assert (click.transport, click.status, click.answer_error) == ("socket", 200, None)
    (envelope,) = click.envelopes
    assert envelope["type"] == "interactive" and envelope["payload"]["type"] == "block_actions"
    approved = await stack.until(
        lambda: (m := stack.message(digest.ts)) and _has_button(m, kit.BILL_PAY, block_id) and m
    )
    assert approved.edited >= 1

    # Nothing reached Oodaloo's request URL: both commands and the click went over the socket.
    assert ws.deliveries("http") == 0
    assert (ws.deliveries("socket", "command"), ws.deliveries("socket", "interaction")) == (2, 1)


async def test_the_settings_modal_is_answered_through_the_ack(stack: LocalStack) -> None:
    ws = stack.workspace
    await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
    view = await stack.until(lambda: next(iter(ws.open_views(OWNER)), None))

    bad = await stack.agent.submit_view(
        OWNER, view.id, {"timezone": {"value": {"type": "plain_text_input", "value": "Mars/Olympus"}}}
    )
    assert (bad.transport, bad.status, bad.answer_error) == ("socket", 200, None)
    (envelope,) = bad.envelopes
    assert envelope["payload"]["type"] == "view_submission"
    assert envelope["accepts_response_payload"] is True
    assert bad.json["response_action"] == "errors" and "Mars/Olympus" in bad.json["errors"]["timezone"]
    assert [v.id for v in ws.open_views(OWNER)] == [view.id], "the modal stays open with its errors"
    assert ws.deliveries("http") == 0


async def test_oodaloo_reconnects_when_slack_refreshes_the_connection(stack: LocalStack) -> None:
    hub = stack.workspace.socket_mode
    await stack.until(lambda: hub.open_connections == 1)
    assert await hub.refresh() == 1
    await stack.until(lambda: hub.connections_opened >= 2 and hub.open_connections == 1)

    helped = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "help")
    assert helped.status == 200 and isinstance(helped.shown, Ephemeral)
    assert stack.workspace.deliveries("http") == 0


async def test_a_wrong_app_token_is_refused_with_slacks_error(migrated: MigratedDatabase) -> None:
    with pytest.raises(SettingsError, match=r"SLACK_APP_TOKEN \(invalid_auth\)"):
        async with local_stack(
            migrated.url,
            slack_config=SOCKET_MODE,
            settings={"slack_app_token": "xapp-1-A0OODALOO-0000000000-notthistoken"},
        ):
            raise AssertionError("Oodaloo started with an app token Slack refused")

