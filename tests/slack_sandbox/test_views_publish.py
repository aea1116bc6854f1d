"""`views.publish` in the local Slack, through slack_sdk's own client: a person's Home tab, checked
as Slack checks it (the user, the view's type, the block limits, the hash), and clicked as Slack
sends a Home tab's clicks."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent

OWNER = "U0OWNER01"
BOOKKEEPER = "U0BOOKS02"


def home(*blocks: dict[str, Any], metadata: str = "") -> dict[str, Any]:
    return {"type": "home", "private_metadata": metadata, "blocks": list(blocks)}


def text(words: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": words}}
    if block_id:
        block["block_id"] = block_id
    return block


async def _error(call: Any) -> str:
    with pytest.raises(SlackApiError) as refused:
        await call
    return str(refused.value.response["error"])


async def test_a_home_tab_is_published_for_one_person_and_keeps_its_id(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    first = await web_client.views_publish(user_id=OWNER, view=home(text("Runway: 402 days")))
    view = first["view"]
    assert (first["ok"], view["type"]) == (True, "home")
    shown = slack.workspace.home(OWNER)
    assert shown is not None and shown.blocks[0]["text"]["text"] == "Runway: 402 days"
    assert slack.workspace.home(BOOKKEEPER) is None
    # Home tabs are not modals.
    assert slack.workspace.open_views(OWNER) == []

    again = await web_client.views_publish(
        user_id=OWNER, view=home(text("Runway: 401 days")), hash=view["hash"]
    )
    assert again["view"]["id"] == view["id"] and again["view"]["hash"] != view["hash"]
    # A hash from before the last publish is a conflict, as in Slack.
    stale = web_client.views_publish(user_id=OWNER, view=home(text("x")), hash=view["hash"])
    assert await _error(stale) == "hash_conflict"


async def test_views_publish_refuses_what_slack_refuses(web_client: AsyncWebClient) -> None:
    assert await _error(web_client.views_publish(user_id="", view=home(text("x")))) == "invalid_arguments"
    assert await _error(web_client.views_publish(user_id="U0NOBODY0", view=home(text("x")))) == "user_not_found"
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Hi"}, "blocks": [text("x")]}
    assert await _error(web_client.views_publish(user_id=OWNER, view=modal)) == "invalid_arguments"
    too_many = home(*(text(f"line {n}") for n in range(101)))
    assert await _error(web_client.views_publish(user_id=OWNER, view=too_many)) == "invalid_blocks"
    long_section = home(text("x" * 3001))
    assert await _error(web_client.views_publish(user_id=OWNER, view=long_section)) == "invalid_blocks"
    assert (await web_client.views_publish(user_id=OWNER, view=home(*(text(f"{n}") for n in range(100)))))["ok"]


async def test_a_click_in_a_home_tab_arrives_as_slack_sends_it(
    web_client: AsyncWebClient, slack: RunningSlack
) -> None:
    button = {"type": "button", "action_id": "bill_approve", "value": "42|10.00",
              "text": {"type": "plain_text", "text": "Approve"}}  # fmt: skip
    await web_client.views_publish(
        user_id=OWNER,
        view=home({"type": "actions", "block_id": "bill_actions:42", "elements": [button]},
                  metadata='{"channel_id": "C0FINANCE"}'),
    )  # fmt: skip
    published = slack.workspace.home(OWNER)
    assert published is not None
    received: list[str] = []

    async def app_endpoint(request: Request) -> Response:
        received.append((await request.body()).decode())
        return Response(status_code=200)

    app = Starlette(routes=[Route("/slack/events", app_endpoint, methods=["POST"])])
    transport = httpx.ASGITransport(app=app)
    async with SlackUserAgent(slack.workspace, "http://app.test/slack/events", transport=transport) as agent:
        delivery = await agent.click(OWNER, published, "bill_approve")
    assert delivery.status == 200
    payload = json.loads(parse_qs(received[0])["payload"][0])
    assert payload["container"] == {"type": "view", "view_id": published.id}
    assert payload["view"]["type"] == "home"
    assert payload["view"]["private_metadata"] == '{"channel_id": "C0FINANCE"}'
    assert "channel" not in payload and "response_url" not in payload
    assert payload["actions"][0]["value"] == "42|10.00"
