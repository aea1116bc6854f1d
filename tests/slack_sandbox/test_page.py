"""The demo page's JSON routes, with a tiny Bolt AsyncApp as the bot behind the sandbox's user agent.

The page turns what a person does into Slack's signed requests (through SlackUserAgent), the bot
answers through the local Slack's Web API over real HTTP, and the page's state shows the result: the
same path the demo runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slack_sandbox.page import page_routes, view_submission_values
from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent
from slack_sandbox.workspace import Workspace

FINANCE = "C0FINANCE"
OWNER = "U0OWNER01"
BOOKKEEPER = "U0BOOKS02"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def _input(block_id: str, label: str, element: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": block_id,
        "label": _text(label),
        "element": {"action_id": "value", **element},
        **extra,
    }


SETTINGS_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "settings",
    "title": _text("Runway settings"),
    "submit": _text("Save"),
    "close": _text("Cancel"),
    "blocks": [
        _input(
            "digest_day",
            "Digest day",
            {
                "type": "static_select",
                "options": [{"text": _text(d), "value": str(i)} for i, d in enumerate(WEEKDAYS)],
                "initial_option": {"text": _text("Monday"), "value": "0"},
            },
        ),
        _input("digest_time", "Digest time", {"type": "timepicker", "initial_time": "08:00"}),
        _input(
            "threshold",
            "Second approval above",
            {"type": "plain_text_input", "initial_value": "5000.00"},
            hint=_text("Bills above this amount need two approvers."),
        ),
        _input("approvers", "Approvers", {"type": "multi_users_select", "initial_users": [OWNER]}),
        _input(
            "channel",
            "Digest channel",
            {"type": "conversations_select", "initial_conversation": FINANCE},
        ),
        _input(
            "emails",
            "Email the digest to",
            {"type": "plain_text_input", "multiline": True},
            optional=True,
        ),
        {
            "type": "actions",
            "block_id": "more",
            "elements": [
                {"type": "button", "action_id": "preview_digest", "text": _text("Preview")}
            ],
        },
    ],
}
PREVIEW_MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "preview",
    "title": _text("Digest preview"),
    "close": _text("Back"),
    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*84 days* of runway"}}],
}


def digest_blocks(vendor: str = "Acme &amp; Sons &lt;Ltd&gt;") -> list[dict[str, Any]]:
    """A digest-like message: every block type the weekly digest uses, a pay button with a confirm."""
    return [
        {"type": "header", "block_id": "header", "text": _text("Weekly cash runway")},
        {
            "type": "section",
            "block_id": "headline",
            "text": {"type": "mrkdwn", "text": "*84 days* of runway, for <@U0OWNER01>"},
            "fields": [
                {"type": "mrkdwn", "text": "*Cash*\n$52,310.00"},
                {"type": "mrkdwn", "text": "*Burn*\n$4,350.00 a week"},
            ],
        },
        {"type": "divider"},
        {
            "type": "section",
            "block_id": "bill:146",
            "text": {"type": "mrkdwn", "text": f"*{vendor}*  $1,200.00 due Friday"},
        },
        {
            "type": "actions",
            "block_id": "bill_actions:146",
            "elements": [
                {
                    "type": "button",
                    "action_id": "bill_pay",
                    "value": "146",
                    "style": "primary",
                    "text": _text("Pay $1,200.00"),
                    "confirm": {
                        "title": _text("Pay Acme & Sons?"),
                        "text": _text("Pay $1,200.00 to Acme & Sons from Checking."),
                        "confirm": _text("Pay"),
                        "deny": _text("Cancel"),
                    },
                },
                {
                    "type": "button",
                    "action_id": "bill_snooze",
                    "value": "146",
                    "style": "danger",
                    "text": _text("Snooze"),
                },
            ],
        },
        {
            "type": "context",
            "block_id": "freshness",
            "elements": [{"type": "mrkdwn", "text": "QuickBooks data as of 09:00 today"}],
        },
    ]


@dataclass
class Seen:
    """What the tiny bot received."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)


def tiny_bot(slack: RunningSlack, seen: Seen) -> Starlette:
    """`/runway` answers privately, `/runway settings` opens a modal, Pay updates its message."""
    ws = slack.workspace
    bolt = AsyncApp(
        client=AsyncWebClient(token=ws.bot_token, base_url=slack.api_url),
        signing_secret=ws.signing_secret,
    )

    @bolt.command("/runway")
    async def runway(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
        seen.commands.append(command)
        if command["text"] == "settings":
            await ack()
            await client.views_open(trigger_id=command["trigger_id"], view=SETTINGS_MODAL)
            return
        if command["text"] == "slow":
            await asyncio.sleep(0.2)  # longer than the agent's ack deadline in the test that asks
        await ack(
            text=f"Runway: *84 days* for <@{command['user_id']}> (cash &amp; burn as of 09:00)"
        )

    @bolt.action("preview_digest")
    async def preview(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.actions.append(body)
        await client.views_push(trigger_id=body["trigger_id"], view=PREVIEW_MODAL)

    @bolt.action("bill_pay")
    async def pay(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        seen.actions.append(body)
        action = body["actions"][0]
        paid = [
            {
                "type": "section",
                "block_id": f"bill:{action['value']}",
                "text": {
                    "type": "mrkdwn",
                    "text": f":white_check_mark: Paid bill {action['value']}, by <@{body['user']['id']}>",
                },
            }
        ]
        await client.chat_update(
            channel=body["channel"]["id"],
            ts=body["container"]["message_ts"],
            text="Paid",
            blocks=paid,
        )

    @bolt.view("settings")
    async def saved(ack: Any, view: dict[str, Any]) -> None:
        seen.submissions.append(view["state"]["values"])
        threshold = view["state"]["values"]["threshold"]["value"]["value"] or ""
        if not threshold.replace(".", "", 1).isdigit():
            await ack(
                response_action="errors",
                errors={"threshold": "Enter an amount such as 5000.00."},
            )
            return
        await ack()

    handler = AsyncSlackRequestHandler(bolt)

    async def events(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", events, methods=["POST"])])


@dataclass
class Switch:
    """A fault switch that remembers what the page asked of it."""

    on: bool = False
    calls: list[bool] = field(default_factory=list)

    def enabled(self) -> bool:
        return self.on

    def set(self, on: bool) -> None:
        self.calls.append(on)
        self.on = on


@dataclass
class Inbox:
    mails: list[dict[str, Any]] = field(default_factory=list)

    def messages(self) -> list[dict[str, Any]]:
        return list(self.mails)


DIGEST_MAIL = {
    "id": "m1",
    "from": "Oodaloo <digest@oodaloo.test>",
    "to": ["dana@example.com"],
    "subject": "Your runway: 84 days",
    "date": "Mon, 02 Mar 2026 09:00:00 +0000",
    "text": "Runway: 84 days",
    "html": "<p>Runway: <b>84 days</b></p>",
}


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox([DIGEST_MAIL])


@pytest.fixture
async def agent(slack: RunningSlack, seen: Seen) -> AsyncIterator[SlackUserAgent]:
    async with SlackUserAgent(
        slack.workspace,
        "http://oodaloo.test/slack/events",
        transport=httpx.ASGITransport(app=tiny_bot(slack, seen)),
    ) as user_agent:
        yield user_agent


@pytest.fixture
async def page(
    slack: RunningSlack, agent: SlackUserAgent, switch: Switch, inbox: Inbox
) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(
        routes=page_routes(
            slack.workspace,
            agent,
            viewer_user_id=OWNER,
            channel_id=FINANCE,
            faults=switch,
            mailbox=inbox,
            title="Oodaloo demo <Acme & Co>",
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page.test"
    ) as client:
        yield client


async def state(page: httpx.AsyncClient) -> dict[str, Any]:
    response = await page.get("/_page/state")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def post_digest(slack: RunningSlack) -> str:
    """Posts the digest as the bot does: chat.postMessage through the local Web API."""
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    posted = await client.chat_postMessage(
        channel=FINANCE, text="Weekly runway", blocks=digest_blocks()
    )
    return str(posted["ts"])


async def test_the_page_and_its_files_are_served_with_the_title_escaped(
    page: httpx.AsyncClient,
) -> None:
    index = await page.get("/")
    assert index.status_code == 200
    assert "<title>Oodaloo demo &lt;Acme &amp; Co&gt;</title>" in index.text
    assert "script-src 'self'" in index.headers["content-security-policy"]
    for path, kind in (("/static/page.js", "javascript"), ("/static/page.css", "text/css")):
        served = await page.get(path)
        assert served.status_code == 200 and kind in served.headers["content-type"], path


async def test_state_shows_the_channel_its_people_and_the_posted_digest(
    page: httpx.AsyncClient, slack: RunningSlack
) -> None:
    ts = await post_digest(slack)
    shown = await state(page)
    assert shown["channel"] == {"id": FINANCE, "name": "finance"}
    assert shown["viewer"]["real_name"] == "Dana Whitfield"
    assert {u["id"] for u in shown["users"]} == {"U0OWNER01", "U0BOOKS02", "U0STAFF03"}
    [message] = shown["messages"]
    assert (message["ts"], message["user_name"], message["is_bot"]) == (ts, "oodaloo", True)
    assert [b["type"] for b in message["blocks"]] == [
        "header",
        "section",
        "divider",
        "section",
        "actions",
        "context",
    ]
    assert message["edited"] == 0
    assert shown["view"] is None and shown["ephemerals"] == []
    assert (shown["faults"], shown["mail_count"]) == (False, 1)


async def test_a_command_reaches_the_bot_and_its_answer_shows_only_to_the_viewer(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    answer = await page.post("/_page/command", json={"text": "/runway"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True
    [command] = seen.commands
    assert (command["command"], command["text"], command["user_id"], command["channel_id"]) == (
        "/runway",
        "",
        OWNER,
        FINANCE,
    )
    [ephemeral] = (await state(page))["ephemerals"]
    assert ephemeral["ts"] == answer.json()["shown"]
    assert ephemeral["text"] == "Runway: *84 days* for <@U0OWNER01> (cash &amp; burn as of 09:00)"
    assert slack.workspace.ephemerals(user=BOOKKEEPER) == []
    assert slack.workspace.messages(FINANCE) == [], (
        "an ephemeral answer is not posted to the channel"
    )


async def test_a_command_the_app_does_not_know_says_it_failed(page: httpx.AsyncClient) -> None:
    answer = await page.post("/_page/command", json={"text": "/unknown now"})
    body = answer.json()
    assert body["ok"] is False and body["status"] == 404
    assert body["notice"].startswith('/unknown failed with the error "dispatch_failed"')
    assert (await state(page))["ephemerals"] == []


async def test_plain_text_is_posted_as_the_viewer_escaped_like_slack(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    answer = await page.post("/_page/command", json={"text": "Paying <Acme> & co today"})
    assert answer.json()["ok"] is True
    [message] = (await state(page))["messages"]
    assert message["user"] == OWNER and message["user_name"] == "Dana Whitfield"
    assert message["text"] == "Paying &lt;Acme&gt; &amp; co today"
    assert seen.commands == []


async def test_a_click_reaches_the_bot_which_updates_the_message_in_place(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    ts = await post_digest(slack)
    answer = await page.post(
        "/_page/click",
        json={
            "ts": ts,
            "ephemeral": False,
            "action_id": "bill_pay",
            "block_id": "bill_actions:146",
            "value": "146",
        },
    )
    assert answer.status_code == 200 and answer.json()["ok"] is True, answer.text

    def paid() -> dict[str, Any] | None:
        message = slack.workspace.message(FINANCE, ts)
        return {"edited": message.edited} if message and message.edited else None

    await slack.workspace.wait_for(paid)
    [action] = seen.actions
    assert (action["user"]["id"], action["actions"][0]["value"]) == (OWNER, "146")
    assert action["container"]["message_ts"] == ts
    [message] = (await state(page))["messages"]
    assert message["ts"] == ts and message["edited"] == 1
    assert message["blocks"][0]["text"]["text"] == (
        ":white_check_mark: Paid bill 146, by <@U0OWNER01>"
    )


async def test_a_click_in_a_stale_copy_reaches_the_bot_with_the_button_the_person_saw(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    ts = await post_digest(slack)
    [pay] = [
        e for b in digest_blocks() if b["type"] == "actions" for e in b["elements"]
        if e["action_id"] == "bill_pay"
    ]
    click = {
        "ts": ts,
        "ephemeral": False,
        "action_id": "bill_pay",
        "block_id": "bill_actions:146",
        "value": "146",
        "element": pay,  # the button as the page drew it
    }
    first = await page.post("/_page/click", json=click)
    assert first.json()["ok"] is True, first.text
    await slack.workspace.wait_for(
        lambda: ((m := slack.workspace.message(FINANCE, ts)) is not None and m.edited > 0) or None
    )
    # Another tab still shows the Pay button the update removed: its click reaches the bot.
    again = await page.post("/_page/click", json=click)
    assert again.status_code == 200 and again.json()["ok"] is True, again.text
    _, late = seen.actions
    assert (late["actions"][0]["action_id"], late["actions"][0]["value"]) == ("bill_pay", "146")
    assert late["actions"][0]["block_id"] == "bill_actions:146"
    assert late["message"]["blocks"][0]["block_id"] == "bill:146"
    assert "Paid bill 146" in late["message"]["blocks"][0]["text"]["text"]


async def test_clicks_on_unknown_messages_or_buttons_are_refused_with_a_reason(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    ts = await post_digest(slack)
    gone = await page.post("/_page/click", json={"ts": "1.000001", "action_id": "bill_pay"})
    assert gone.status_code == 404 and "gone" in gone.json()["error"]
    wrong = await page.post(
        "/_page/click", json={"ts": ts, "action_id": "bill_pay", "value": "999"}
    )
    assert wrong.status_code == 404 and "bill_pay" in wrong.json()["error"]
    assert seen.actions == []


async def test_a_modal_opens_shows_the_bots_field_errors_and_closes_when_valid(
    page: httpx.AsyncClient, slack: RunningSlack, seen: Seen
) -> None:
    await page.post("/_page/command", json={"text": "/runway settings"})
    view = (await state(page))["view"]
    assert view is not None and view["title"]["text"] == "Runway settings"
    assert [b["block_id"] for b in view["blocks"]] == [
        "digest_day",
        "digest_time",
        "threshold",
        "approvers",
        "channel",
        "emails",
        "more",
    ]
    values = {
        "digest_day": {"value": "4"},
        "digest_time": {"value": "07:30"},
        "threshold": {"value": "lots"},
        "approvers": {"value": [OWNER, BOOKKEEPER]},
        "channel": {"value": FINANCE},
        "emails": {"value": "dana@example.com\nsam@example.com"},
    }
    refused = await page.post("/_page/submit", json={"view_id": view["id"], "values": values})
    assert refused.json() == {
        "ok": False,
        "response_action": "errors",
        "errors": {"threshold": "Enter an amount such as 5000.00."},
    }
    still = (await state(page))["view"]
    assert still["id"] == view["id"]
    assert still["errors"] == {"threshold": "Enter an amount such as 5000.00."}

    sent = seen.submissions[0]
    assert sent["digest_day"]["value"]["selected_option"] == {"text": _text("Friday"), "value": "4"}
    assert sent["digest_time"]["value"]["selected_time"] == "07:30"
    assert sent["approvers"]["value"]["selected_users"] == [OWNER, BOOKKEEPER]
    assert sent["channel"]["value"]["selected_conversation"] == FINANCE
    assert sent["emails"]["value"]["value"] == "dana@example.com\nsam@example.com"

    values["threshold"] = {"value": "7500.00"}
    saved = await page.post("/_page/submit", json={"view_id": view["id"], "values": values})
    assert saved.json()["ok"] is True
    assert (await state(page))["view"] is None
    assert seen.submissions[1]["threshold"]["value"]["value"] == "7500.00"


async def test_closing_a_modal_closes_it_for_the_viewer(page: httpx.AsyncClient) -> None:
    await page.post("/_page/command", json={"text": "/runway settings"})
    view = (await state(page))["view"]
    closed = await page.post("/_page/close", json={"view_id": view["id"]})
    assert closed.json() == {"ok": True}
    assert (await state(page))["view"] is None
    again = await page.post("/_page/close", json={"view_id": view["id"]})
    assert again.status_code == 404


async def test_the_fault_switch_is_turned_on_and_off_through_the_page(
    page: httpx.AsyncClient, switch: Switch
) -> None:
    turned_on = await page.post("/_page/faults", json={"on": True})
    assert turned_on.json() == {"ok": True, "faults": True}
    assert (await state(page))["faults"] is True
    await page.post("/_page/faults", json={"on": False})
    assert switch.calls == [True, False]
    assert (await state(page))["faults"] is False
    bad = await page.post("/_page/faults", json={"on": "yes"})
    assert bad.status_code == 400 and switch.calls == [True, False]


async def test_the_mailbox_lists_summaries_and_shows_one_email_whole(
    page: httpx.AsyncClient, inbox: Inbox
) -> None:
    listed = (await page.get("/_page/mail")).json()["messages"]
    assert listed == [{k: DIGEST_MAIL[k] for k in ("id", "from", "to", "subject", "date")}]
    one = (await page.get("/_page/mail/m1")).json()
    assert (one["subject"], one["html"], one["text"]) == (
        "Your runway: 84 days",
        "<p>Runway: <b>84 days</b></p>",
        "Runway: 84 days",
    )
    missing = await page.get("/_page/mail/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["error"]


async def test_without_a_switch_or_mailbox_the_page_says_so(
    slack: RunningSlack, agent: SlackUserAgent
) -> None:
    app = Starlette(
        routes=page_routes(slack.workspace, agent, viewer_user_id=OWNER, channel_id=FINANCE)
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page.test"
    ) as bare:
        shown = (await bare.get("/_page/state")).json()
        assert (shown["faults"], shown["mail_count"]) == (None, None)
        refused = await bare.post("/_page/faults", json={"on": True})
        assert (
            refused.status_code == 404 and "no QuickBooks fault switch" in refused.json()["error"]
        )
        assert (await bare.get("/_page/mail")).json() == {"messages": []}


async def test_only_json_bodies_are_accepted(page: httpx.AsyncClient, seen: Seen) -> None:
    form = await page.post("/_page/command", data={"text": "/runway"})
    assert form.status_code == 415
    assert seen.commands == []


def test_a_viewer_or_channel_outside_the_workspace_is_refused(slack: RunningSlack) -> None:
    agent = SlackUserAgent(slack.workspace, "http://oodaloo.test/slack/events")
    with pytest.raises(ValueError, match="U0NOBODY"):
        page_routes(slack.workspace, agent, viewer_user_id="U0NOBODY", channel_id=FINANCE)
    with pytest.raises(ValueError, match="C0NOWHERE"):
        page_routes(slack.workspace, agent, viewer_user_id=OWNER, channel_id="C0NOWHERE")


def test_picked_values_become_slacks_state_shapes(slack: RunningSlack) -> None:
    ws: Workspace = slack.workspace
    view = ws.open_view(OWNER, SETTINGS_MODAL)
    converted = view_submission_values(
        view,
        {
            "digest_day": {"value": "2"},
            "approvers": {"value": []},
            "digest_time": {"value": None},
        },
    )
    assert converted == {
        "digest_day": {"value": {"selected_option": {"text": _text("Wednesday"), "value": "2"}}},
        "approvers": {"value": {"selected_users": []}},
        "digest_time": {"value": {"selected_time": None}},
    }


async def test_a_button_in_the_modal_reaches_the_bot_which_pushes_a_modal_on_top(
    page: httpx.AsyncClient, seen: Seen
) -> None:
    await page.post("/_page/command", json={"text": "/runway settings"})
    settings = (await state(page))["view"]
    clicked = await page.post(
        "/_page/click", json={"view_id": settings["id"], "action_id": "preview_digest"}
    )
    assert clicked.json()["ok"] is True, clicked.text
    [action] = seen.actions
    assert action["container"] == {"type": "view", "view_id": settings["id"]}

    async def pushed() -> dict[str, Any]:
        while True:
            view: dict[str, Any] | None = (await state(page))["view"]
            if view is not None and view["id"] != settings["id"]:
                return view
            await asyncio.sleep(0.02)

    preview = await asyncio.wait_for(pushed(), timeout=5)
    assert (preview["title"]["text"], preview["depth"]) == ("Digest preview", 2)
    await page.post("/_page/close", json={"view_id": preview["id"]})
    assert (await state(page))["view"]["id"] == settings["id"], "Back shows the modal below"


async def test_an_answer_later_than_slacks_deadline_is_reported_as_slack_does(
    slack: RunningSlack, seen: Seen
) -> None:
    async with SlackUserAgent(
        slack.workspace,
        "http://oodaloo.test/slack/events",
        transport=httpx.ASGITransport(app=tiny_bot(slack, seen)),
        ack_deadline=0.05,
    ) as impatient:
        app = Starlette(
            routes=page_routes(slack.workspace, impatient, viewer_user_id=OWNER, channel_id=FINANCE)
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://page.test"
        ) as late_page:
            answer = (await late_page.post("/_page/command", json={"text": "/runway slow"})).json()
            assert answer["ok"] is False
            assert answer["notice"].startswith('/runway failed with the error "operation_timeout"')
            assert (await state(late_page))["ephemerals"] == [], "a late answer is never shown"
