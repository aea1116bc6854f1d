"""The demo page's person switcher, the app's Home tab and the activity log, with a tiny Bolt app
that publishes a Home tab on `app_home_opened` and answers a click in it by publishing it again."""

from __future__ import annotations

from collections.abc import AsyncIterator
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

from slack_sandbox.page import page_routes
from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent

FINANCE = "C0FINANCE"
OWNER = "U0OWNER01"
BOOKKEEPER = "U0BOOKS02"


def home_view(user: str, clicks: int) -> dict[str, Any]:
    button = {"type": "button", "action_id": "home_hello", "value": "hi",
              "text": {"type": "plain_text", "text": "Hello"}}  # fmt: skip
    return {
        "type": "home",
        "private_metadata": '{"channel_id": "C0FINANCE"}',
        "blocks": [
            {"type": "section", "block_id": "who",
             "text": {"type": "mrkdwn", "text": f"Home of <@{user}>, clicked {clicks} times"}},
            {"type": "actions", "block_id": "home_actions", "elements": [button]},
        ],
    }  # fmt: skip


def home_bot(slack: RunningSlack, events: list[dict[str, Any]]) -> Starlette:
    ws = slack.workspace
    bolt = AsyncApp(
        client=AsyncWebClient(token=ws.bot_token, base_url=slack.api_url),
        signing_secret=ws.signing_secret,
    )
    clicks: dict[str, int] = {}

    @bolt.event("app_home_opened")
    async def opened(event: dict[str, Any], client: AsyncWebClient) -> None:
        events.append(event)
        await client.views_publish(user_id=event["user"], view=home_view(event["user"], clicks.get(event["user"], 0)))

    @bolt.action("home_hello")
    async def hello(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        events.append(body)
        user = body["user"]["id"]
        clicks[user] = clicks.get(user, 0) + 1
        await client.views_publish(user_id=user, view=home_view(user, clicks[user]))

    handler = AsyncSlackRequestHandler(bolt)

    async def endpoint(request: Request) -> Response:
        return await handler.handle(request)

    return Starlette(routes=[Route("/slack/events", endpoint, methods=["POST"])])


class Activity:
    async def entries(self) -> list[dict[str, Any]]:
        return [{"at": "2026-12-07T09:00:00+00:00", "kind": "retried", "text": "Paid after 2 attempts"}]


@pytest.fixture
async def page(slack: RunningSlack) -> AsyncIterator[tuple[httpx.AsyncClient, list[dict[str, Any]]]]:
    events: list[dict[str, Any]] = []
    transport = httpx.ASGITransport(app=home_bot(slack, events))
    async with SlackUserAgent(slack.workspace, "http://app.test/slack/events", transport=transport) as agent:
        app = Starlette(routes=page_routes(
            slack.workspace, agent, viewer_user_id=OWNER, channel_id=FINANCE,
            roles={OWNER: "owner, approver", BOOKKEEPER: "bookkeeper, approver"}, activity=Activity(),
        ))  # fmt: skip
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page.test") as client:
            yield client, events


async def _state(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/_page/state")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_the_page_acts_as_another_person_of_the_workspace(
    page: tuple[httpx.AsyncClient, list[dict[str, Any]]], slack: RunningSlack
) -> None:
    client, _ = page
    first = await _state(client)
    assert first["viewer"]["id"] == OWNER
    roles = {user["id"]: user["role"] for user in first["users"]}
    assert roles[OWNER] == "owner, approver" and roles[BOOKKEEPER] == "bookkeeper, approver"

    switched = await client.post("/_page/viewer", json={"user_id": BOOKKEEPER})
    assert switched.json() == {"ok": True, "viewer": BOOKKEEPER}
    assert (await _state(client))["viewer"]["id"] == BOOKKEEPER
    # Only people: not the bot, not someone outside the workspace.
    for nobody in (slack.workspace.bot_user_id, "U0NOBODY0", ""):
        refused = await client.post("/_page/viewer", json={"user_id": nobody})
        assert refused.status_code == 404 and "choose one of" in refused.json()["error"]
    assert (await _state(client))["viewer"]["id"] == BOOKKEEPER


async def test_opening_home_sends_app_home_opened_and_shows_the_published_view(
    page: tuple[httpx.AsyncClient, list[dict[str, Any]]], slack: RunningSlack
) -> None:
    client, events = page
    assert (await _state(client))["home"] is None
    opened = await client.post("/_page/home", json={})
    assert opened.json()["ok"] is True
    home = await slack.workspace.wait_for(lambda: slack.workspace.home(OWNER))
    assert events[0]["type"] == "app_home_opened" and events[0]["user"] == OWNER
    shown = (await _state(client))["home"]
    assert shown["id"] == home.id and "clicked 0 times" in str(shown["blocks"])

    # A click in the Home tab reaches the app as Slack sends it: the view, no channel.
    clicked = await client.post("/_page/click", json={
        "view_id": home.id, "action_id": "home_hello", "block_id": "home_actions", "value": "hi",
    })  # fmt: skip
    assert clicked.json()["ok"] is True
    await slack.workspace.wait_for(lambda: "clicked 1 times" in str((slack.workspace.home(OWNER) or home).blocks))
    click = events[-1]
    assert click["container"] == {"type": "view", "view_id": home.id} and click["view"]["type"] == "home"

    # Another person's Home is theirs: the bookkeeper opens their own.
    await client.post("/_page/viewer", json={"user_id": BOOKKEEPER})
    assert (await _state(client))["home"] is None
    await client.post("/_page/home", json={})
    await slack.workspace.wait_for(lambda: slack.workspace.home(BOOKKEEPER))
    theirs = (await _state(client))["home"]
    assert theirs["id"] != home.id and BOOKKEEPER in str(theirs["blocks"])


async def test_the_activity_log_is_served_when_the_demo_wires_one(
    page: tuple[httpx.AsyncClient, list[dict[str, Any]]],
) -> None:
    client, _ = page
    assert (await _state(client))["activity"] is True
    answer = await client.get("/_page/activity")
    assert answer.json() == {"entries": [
        {"at": "2026-12-07T09:00:00+00:00", "kind": "retried", "text": "Paid after 2 attempts"}
    ]}  # fmt: skip
