"""A tiny Bolt AsyncApp receives the sandbox users' signed requests and answers through the sandbox.

The bot is served in-process (httpx ASGITransport); its Web API calls and response_url posts go over
real HTTP (aiohttp) to the sandbox. Bolt's own signature check accepting these requests, and refusing
forged or stale ones, shows the signing is Slack's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qbo_sandbox.config import ManualClock
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent
from slack_sandbox.workspace import Ephemeral, Message, Workspace

FINANCE = "C0FINANCE"
OWNER = "U0OWNER01"
BOOKKEEPER = "U0BOOKS02"

MEMO_MODAL = {
    "type": "modal",
    "callback_id": "approve-bill",
    "title": {"type": "plain_text", "text": "Approve bill"},
    "submit": {"type": "plain_text", "text": "Approve"},
    "private_metadata": "bill-42",
    "blocks": [
        {
            "type": "input",
            "block_id": "memo",
            "label": {"type": "plain_text", "text": "Memo"},
            "element": {"type": "plain_text_input", "action_id": "memo_text"},
        },
        {
            "type": "actions",
            "block_id": "more",
            "elements": [
                {
                    "type": "button",
                    "action_id": "show_history",
                    "text": {"type": "plain_text", "text": "Payment history"},
                }
            ],
        },
    ],
}
HISTORY_MODAL = {
    "type": "modal",
    "callback_id": "bill-history",
    "title": {"type": "plain_text", "text": "Payment history"},
    "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Paid on time 11 of 12 months"}}
    ],
}


def bill_blocks(bill_id: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "section",
            "block_id": "bill",
            "text": {"type": "mrkdwn", "text": "*Rent* $2,400.00 due Friday"},
        },
        {
            "type": "actions",
            "block_id": "bill_actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "approve",
                    "text": {"type": "plain_text", "text": "Approve"},
                    "value": bill_id,
                    "style": "primary",
                },
                {
                    "type": "button",
                    "action_id": "open_memo",
                    "text": {"type": "plain_text", "text": "Add memo"},
                    "value": bill_id,
                },
            ],
        },
    ]


@dataclass
class Seen:
    """What the bot's listeners received."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)


def build_bot(slack: RunningSlack, seen: Seen) -> Starlette:
    ws = slack.workspace
    bolt = AsyncApp(
        client=AsyncWebClient(token=ws.bot_token, base_url=slack.api_url),
        signing_secret=ws.signing_secret,
    )

    @bolt.command("/runway")
    async def runway(ack: Any, command: dict[str, Any], respond: Any) -> None:
        if command["text"] == "slowly":
            await asyncio.sleep(0.3)
        if command["text"] == "share":
            await ack(response_type="in_channel", text="Runway: 84 days (shared)")
            return
        await ack(f"Working out your runway, {command['user_name']}…")
        await respond(text="Runway: 84 days", replace_original=True)

    @bolt.action("approve")
    async def approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.actions.append(body)
        await respond(replace_original=True, text=f"Approved by <@{body['user']['id']}>")

    @bolt.action("open_memo")
    async def open_memo(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.actions.append(body)
        await client.views_open(trigger_id=body["trigger_id"], view=MEMO_MODAL)

    @bolt.action("show_history")
    async def show_history(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.actions.append(body)
        await client.views_push(trigger_id=body["trigger_id"], view=HISTORY_MODAL)

    @bolt.view("approve-bill")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        seen.views.append(view)
        memo = view["state"]["values"]["memo"]["memo_text"]["value"]
        if not memo:
            await ack(response_action="errors", errors={"memo": "Say why this bill is approved"})
        elif memo == "more":
            await ack(
                response_action="update",
                view={**MEMO_MODAL, "title": {"type": "plain_text", "text": "Tell me more"}},
            )
        else:
            await ack()

    @bolt.view("pick-channel")
    async def picked(ack: Any, body: dict[str, Any], respond: Any) -> None:
        await ack()
        seen.views.append(body)
        await respond(text="The weekly digest will be posted here.")

    @bolt.event("app_mention")
    async def mentioned(event: dict[str, Any], request: Any) -> None:
        seen.events.append((event, request.headers.get("x-slack-retry-num", [None])[0]))

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def agent(slack: RunningSlack, seen: Seen) -> AsyncIterator[SlackUserAgent]:
    bot = build_bot(slack, seen)
    async with SlackUserAgent(
        slack.workspace, "http://oodaloo.test/slack/events", transport=httpx.ASGITransport(app=bot)
    ) as user_agent:
        yield user_agent


async def post_bill(slack: RunningSlack) -> Message:
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    posted = await client.chat_postMessage(
        channel=FINANCE, text="Rent is due", blocks=bill_blocks("bill-42")
    )
    message = slack.workspace.message(FINANCE, posted["ts"])
    assert message is not None
    return message


def edited(ws: Workspace, message: Message) -> Message | None:
    """The message as it is now, once it has been edited."""
    current = ws.message(message.channel, message.ts)
    return current if current and current.edited else None


def ephemeral_text(ws: Workspace, ts: str) -> str | None:
    shown = ws.ephemeral(ts)
    return shown.text if shown else None


async def test_a_slash_command_shows_the_ack_and_the_later_answer(
    agent: SlackUserAgent, slack: RunningSlack
) -> None:
    ws = slack.workspace
    delivery = await agent.slash_command(OWNER, FINANCE, "/runway", "")
    assert delivery.status == 200
    assert isinstance(delivery.shown, Ephemeral)
    assert delivery.shown.user == OWNER
    ts = delivery.shown.ts
    # respond(replace_original=True) replaces the ephemeral "working" message through the response_url.
    assert await ws.wait_for(lambda: ephemeral_text(ws, ts) == "Runway: 84 days")
    assert [e.text for e in ws.ephemerals(user=OWNER)] == ["Runway: 84 days"]
    assert ws.calls("response_url")[0].ok


async def test_a_slash_command_is_form_encoded_with_slacks_fields(
    agent: SlackUserAgent, slack: RunningSlack
) -> None:
    delivery = await agent.slash_command(OWNER, FINANCE, "/runway", "bills & invoices")
    request = delivery.request
    assert request.content_type == "application/x-www-form-urlencoded"
    assert "command=%2Frunway" in request.body and "text=bills+%26+invoices" in request.body
    fields = {k: v[0] for k, v in parse_qs(request.body, keep_blank_values=True).items()}
    assert set(fields) == {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    }
    assert (fields["team_id"], fields["channel_name"], fields["user_name"]) == (
        "T0OODALOO",
        "finance",
        "dana",
    )
    assert fields["response_url"] == f"{slack.base_url}/response/{delivery.response_token}"
    assert SignatureVerifier(slack.workspace.signing_secret).is_valid_request(
        request.body, request.headers
    )


async def test_an_answer_later_than_slacks_deadline_is_dropped(
    slack: RunningSlack, seen: Seen
) -> None:
    bot = httpx.ASGITransport(app=build_bot(slack, seen))
    # Slack waits 3 seconds; a shorter deadline keeps the test quick without changing the rule.
    async with SlackUserAgent(
        slack.workspace, "http://oodaloo.test/slack/events", transport=bot, ack_deadline=0.05
    ) as impatient:
        late = await impatient.slash_command(OWNER, FINANCE, "/runway", "slowly")
    assert late.status == 200 and late.answer_error == "operation_timeout"
    assert late.shown is None


async def test_an_in_channel_ack_is_posted_for_everyone(
    agent: SlackUserAgent, slack: RunningSlack
) -> None:
    delivery = await agent.slash_command(OWNER, FINANCE, "/runway", "share")
    assert delivery.status == 200 and isinstance(delivery.shown, Message)
    assert [m.text for m in slack.workspace.messages(FINANCE)] == ["Runway: 84 days (shared)"]


async def test_a_click_reaches_the_bot_like_slacks_and_respond_replaces_the_message(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    bill = await post_bill(slack)
    delivery = await agent.click(BOOKKEEPER, bill, "approve")
    assert delivery.status == 200

    updated = await ws.wait_for(lambda: edited(ws, bill))
    assert updated.text == "Approved by <@U0BOOKS02>" and updated.blocks == []
    [body] = seen.actions
    assert {
        "type",
        "user",
        "api_app_id",
        "container",
        "trigger_id",
        "team",
        "channel",
        "message",
        "state",
        "response_url",
        "actions",
    } <= set(body)
    assert body["container"] == {
        "type": "message",
        "message_ts": bill.ts,
        "channel_id": FINANCE,
        "is_ephemeral": False,
    }
    assert body["message"]["blocks"] == bill.blocks and body["message"]["bot_id"] == "B0OODALOO"
    action = body["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "bill_actions",
        "bill-42",
        "button",
    )
    assert body["user"]["id"] == BOOKKEEPER and body["team"]["id"] == "T0OODALOO"


async def test_a_click_on_a_button_an_update_removed_still_reaches_the_bot(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    bill = await post_bill(slack)  # what both people see
    await agent.click(OWNER, bill, "approve")
    updated = await ws.wait_for(lambda: edited(ws, bill))
    assert updated.blocks == [], "the update took the buttons away"

    # The bookkeeper's copy was drawn before the update: Slack delivers the click as it was made,
    # with the message as Slack holds it now, and the app answers with how things stand.
    late = await agent.click(BOOKKEEPER, bill, "approve")
    assert late.status == 200
    _, second = seen.actions
    assert second["type"] == "block_actions" and second["user"]["id"] == BOOKKEEPER
    action = second["actions"][0]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "bill_actions",
        "bill-42",
        "button",
    )
    assert action["text"] == {"type": "plain_text", "text": "Approve"}
    assert second["container"]["message_ts"] == bill.ts
    assert second["message"]["text"] == "Approved by <@U0OWNER01>"
    assert "blocks" not in second["message"], "the message as it is now, not the stale copy"
    # A button no copy of the message ever had is still refused.
    with pytest.raises(LookupError, match="no element 'approve'"):
        await agent.click(BOOKKEEPER, updated, "approve")


async def test_a_click_on_an_ephemeral_message_replaces_it(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    shown = ws.post_ephemeral(FINANCE, OWNER, "Rent is due", bill_blocks("bill-7"))
    await agent.click(OWNER, shown, "approve")
    assert await ws.wait_for(lambda: ephemeral_text(ws, shown.ts) == "Approved by <@U0OWNER01>")
    [body] = seen.actions
    assert body["container"]["is_ephemeral"] is True
    assert "message" not in body, "Slack does not send ephemeral messages back to the app"
    with pytest.raises(PermissionError):
        await agent.click(BOOKKEEPER, shown, "approve")


async def test_a_modal_opens_from_a_click_and_submissions_follow_the_response_action(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    bill = await post_bill(slack)
    await agent.click(OWNER, bill, "open_memo")
    [view] = await ws.wait_for(lambda: ws.open_views(OWNER))
    assert view.callback_id == "approve-bill" and view.private_metadata == "bill-42"

    refused = await agent.submit_view(OWNER, view.id, {})
    assert refused.status == 200
    assert refused.json == {
        "response_action": "errors",
        "errors": {"memo": "Say why this bill is approved"},
    }
    assert [v.id for v in ws.open_views(OWNER)] == [view.id]

    again = await agent.submit_view(OWNER, view.id, {"memo": {"memo_text": "more"}})
    assert again.status == 200
    assert ws.view(view.id).title["text"] == "Tell me more"  # type: ignore[union-attr]

    done = await agent.submit_view(
        OWNER, view.id, {"memo": {"memo_text": {"value": "Landlord confirmed"}}}
    )
    assert done.status == 200 and ws.open_views(OWNER) == []
    assert seen.views[-1]["state"]["values"]["memo"]["memo_text"] == {
        "type": "plain_text_input",
        "value": "Landlord confirmed",
    }
    assert seen.views[-1]["private_metadata"] == "bill-42"


async def test_a_button_in_a_modal_pushes_another_modal_on_top(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    await agent.click(OWNER, await post_bill(slack), "open_memo")
    [memo] = await ws.wait_for(lambda: ws.open_views(OWNER))
    assert (await agent.click(OWNER, memo, "show_history")).status == 200
    _, history = await ws.wait_for(
        lambda: stack if len(stack := ws.open_views(OWNER)) == 2 else None
    )
    assert (history.callback_id, history.previous_view_id, history.root_view_id) == (
        "bill-history",
        memo.id,
        memo.id,
    )
    body = seen.actions[-1]
    assert body["container"] == {"type": "view", "view_id": memo.id}
    assert body["view"]["callback_id"] == "approve-bill" and "response_url" not in body


async def test_a_modal_asking_for_response_urls_gets_one_for_the_chosen_channel(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    picker = {
        "type": "conversations_select",
        "action_id": "channel",
        "response_url_enabled": True,
        "initial_conversation": FINANCE,
    }
    view = ws.open_view(
        OWNER,
        {
            "type": "modal",
            "callback_id": "pick-channel",
            "title": {"type": "plain_text", "text": "Digest channel"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "where",
                    "label": {"type": "plain_text", "text": "Channel"},
                    "element": picker,
                }
            ],
        },
    )
    assert (
        await agent.submit_view(OWNER, view.id, {"where": {"channel": "C0GENERAL"}})
    ).status == 200
    [shown] = await ws.wait_for(lambda: ws.ephemerals(user=OWNER, channel="C0GENERAL"))
    assert shown.text == "The weekly digest will be posted here."
    [entry] = seen.views[-1]["response_urls"]
    assert (entry["block_id"], entry["action_id"], entry["channel_id"]) == (
        "where",
        "channel",
        "C0GENERAL",
    )
    assert ws.open_views(OWNER) == []


async def test_forged_signatures_and_stale_timestamps_are_refused(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    bill = await post_bill(slack)
    forged = await agent.click(OWNER, bill, "approve", signing_secret="not-the-apps-secret")
    assert forged.status == 401 and forged.json == {"error": "invalid request"}
    stale = await agent.slash_command(
        OWNER, FINANCE, "/runway", timestamp=int(bill.ts.split(".")[0]) - 6 * 60
    )
    assert stale.status == 401 and stale.shown is None
    assert seen.actions == [] and slack.workspace.ephemerals() == []
    assert (await agent.click(OWNER, bill, "approve")).status == 200


async def test_events_and_slacks_retried_delivery(agent: SlackUserAgent, seen: Seen) -> None:
    mention = {
        "type": "app_mention",
        "user": OWNER,
        "text": "<@U0OODABOT> runway?",
        "channel": FINANCE,
    }
    first = await agent.event(mention)
    retried = await agent.redeliver(first, retry_num=1)
    assert (first.status, retried.status) == (200, 200)
    assert retried.request.body == first.request.body
    assert retried.request.headers["x-slack-retry-reason"] == "http_timeout"
    # Bolt acknowledges events before its listener runs.
    await agent.workspace.wait_for(lambda: len(seen.events) == 2)
    assert [(event["text"], retry) for event, retry in seen.events] == [
        (mention["text"], None),
        (mention["text"], "1"),
    ]


async def test_a_response_url_replaces_the_original_five_times_then_is_used_up(
    agent: SlackUserAgent, slack: RunningSlack, seen: Seen
) -> None:
    ws = slack.workspace
    bill = await post_bill(slack)
    delivery = await agent.click(OWNER, bill, "approve")
    await ws.wait_for(lambda: edited(ws, bill))  # the bot's own respond() is use 1
    assert delivery.response_url is not None
    webhook = AsyncWebhookClient(delivery.response_url)
    for n in range(2, 6):
        answer = await webhook.send(text=f"Paid, attempt {n}", replace_original=True)
        assert (answer.status_code, answer.body) == (200, "ok")
    stored = ws.message(FINANCE, bill.ts)
    assert stored is not None and (stored.text, stored.edited) == ("Paid, attempt 5", 5)
    sixth = await webhook.send(text="once more", replace_original=True)
    assert (sixth.status_code, sixth.body) == (404, "used_url")
    assert ws.message(FINANCE, bill.ts).text == "Paid, attempt 5"  # type: ignore[union-attr]


@pytest.mark.parametrize("slack_config", [SlackSandboxConfig(clock=ManualClock())])
async def test_a_response_url_expires_after_thirty_minutes(
    agent: SlackUserAgent, slack: RunningSlack, slack_config: SlackSandboxConfig
) -> None:
    delivery = await agent.slash_command(OWNER, FINANCE, "/runway", "share")
    assert delivery.response_url is not None
    slack_config.clock.advance(timedelta(minutes=31))  # type: ignore[attr-defined]
    late = await AsyncWebhookClient(delivery.response_url).send(text="too late")
    assert (late.status_code, late.body) == (404, "expired_url")


async def test_a_response_url_can_delete_the_original_or_post_a_new_ephemeral(
    agent: SlackUserAgent, slack: RunningSlack
) -> None:
    ws = slack.workspace
    bill = await post_bill(slack)
    issued = ws.issue_response_url(FINANCE, OWNER, message_ts=bill.ts)
    webhook = AsyncWebhookClient(ws.response_url_for(issued.token))
    assert (await webhook.send(text="Only for you")).body == "ok"
    assert [e.text for e in ws.ephemerals(user=OWNER)] == ["Only for you"]
    assert (await webhook.send(delete_original=True)).body == "ok"
    assert ws.message(FINANCE, bill.ts) is None
    bad = await webhook.send(
        text="x", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    )
    assert (bad.status_code, bad.body) == (400, "invalid_blocks")
