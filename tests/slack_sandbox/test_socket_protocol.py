"""The local Slack's Socket Mode, seen by a bare websocket client (aiohttp, as slack_sdk's client uses):
apps.connections.open, hello, envelopes and acks, Slack's retries of events, refresh and
link_disabled. tests/bot/test_socket_mode.py runs Oodaloo itself over it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent
from slack_sandbox.workspace import Ephemeral

FINANCE = "C0FINANCE"
OWNER = "U0OWNER01"
#: Nothing listens here: over Socket Mode the request URL is never used.
UNUSED_REQUEST_URL = "http://127.0.0.1:9/slack/events"


@pytest.fixture
def slack_config() -> SlackSandboxConfig:
    return SlackSandboxConfig(socket_mode=True)


async def _open_url(slack: RunningSlack) -> str:
    opened = await AsyncWebClient(base_url=slack.api_url).apps_connections_open(
        app_token=slack.sandbox.config.app_token
    )
    return str(opened["url"])


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def app_socket(
    slack: RunningSlack, http: aiohttp.ClientSession
) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    """The app's connection, past its hello."""
    async with http.ws_connect(await _open_url(slack)) as socket:
        hello = await socket.receive_json(timeout=5)
        assert hello["type"] == "hello"
        yield socket


async def test_a_url_opens_one_connection_greeted_with_hello(
    slack: RunningSlack, http: aiohttp.ClientSession
) -> None:
    url = await _open_url(slack)
    assert url.startswith(f"ws://{slack.base_url.removeprefix('http://')}/link/?ticket=")
    async with http.ws_connect(url) as socket:
        hello = await socket.receive_json(timeout=5)
        assert hello["type"] == "hello" and hello["num_connections"] == 1
        assert hello["connection_info"] == {"app_id": slack.workspace.app_id}
        assert hello["debug_info"]["approximate_connection_time"] > 0
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url)  # the ticket was used
        assert refused.value.status == 403
        await slack.workspace.wait_for(lambda: slack.workspace.socket_mode.open_connections == 1)


async def test_the_ack_payload_is_the_commands_answer(
    slack: RunningSlack, app_socket: aiohttp.ClientWebSocketResponse
) -> None:
    async with SlackUserAgent(slack.workspace, UNUSED_REQUEST_URL) as agent:
        sent = asyncio.create_task(agent.slash_command(OWNER, FINANCE, "/runway", "bills"))
        envelope = await app_socket.receive_json(timeout=5)
        assert envelope["type"] == "slash_commands" and envelope["accepts_response_payload"] is True
        payload = envelope["payload"]
        assert (payload["command"], payload["text"], payload["user_id"]) == ("/runway", "bills", OWNER)
        assert payload["response_url"].startswith(slack.base_url + "/response/")
        await app_socket.send_json(
            {"envelope_id": envelope["envelope_id"], "payload": {"text": "Three bills are due."}}
        )
        delivery = await sent
    assert (delivery.transport, delivery.status, delivery.answer_error) == ("socket", 200, None)
    assert isinstance(delivery.shown, Ephemeral) and delivery.shown.text == "Three bills are due."
    assert (slack.workspace.deliveries("socket"), slack.workspace.deliveries("http")) == (1, 0)


async def test_an_unacknowledged_event_is_delivered_again(
    slack: RunningSlack, app_socket: aiohttp.ClientWebSocketResponse
) -> None:
    async with SlackUserAgent(slack.workspace, UNUSED_REQUEST_URL, ack_deadline=0.3) as agent:
        sent = asyncio.create_task(agent.event({"type": "app_home_opened", "user": OWNER, "tab": "home"}))
        first = await app_socket.receive_json(timeout=5)
        assert first["type"] == "events_api" and first["accepts_response_payload"] is False
        assert (first["retry_attempt"], first["retry_reason"]) == (0, "")
        again = await app_socket.receive_json(timeout=5)  # no ack within the deadline
        assert (again["retry_attempt"], again["retry_reason"]) == (1, "timeout")
        assert again["payload"]["event_id"] == first["payload"]["event_id"]
        assert again["envelope_id"] != first["envelope_id"]
        await app_socket.send_json({"envelope_id": again["envelope_id"]})
        delivery = await sent
    assert (delivery.status, delivery.answer_error) == (200, None)
    assert [e["retry_attempt"] for e in delivery.envelopes] == [0, 1]


async def test_an_unacknowledged_command_times_out_and_is_not_sent_again(
    slack: RunningSlack, app_socket: aiohttp.ClientWebSocketResponse
) -> None:
    async with SlackUserAgent(slack.workspace, UNUSED_REQUEST_URL, ack_deadline=0.3) as agent:
        sent = asyncio.create_task(agent.slash_command(OWNER, FINANCE, "/runway", ""))
        envelope = await app_socket.receive_json(timeout=5)
        delivery = await sent
        with pytest.raises(TimeoutError):
            await app_socket.receive_json(timeout=0.5)
        # A late ack changes nothing: the person was already told the app did not answer.
        await app_socket.send_json({"envelope_id": envelope["envelope_id"], "payload": {"text": "late"}})
    assert (delivery.status, delivery.answer_error, delivery.shown) == (0, "operation_timeout", None)
    assert slack.workspace.ephemerals(user=OWNER) == []


async def test_with_no_connection_open_the_dispatch_fails(slack: RunningSlack) -> None:
    async with SlackUserAgent(slack.workspace, UNUSED_REQUEST_URL, ack_deadline=0.2) as agent:
        delivery = await agent.slash_command(OWNER, FINANCE, "/runway", "")
    assert (delivery.transport, delivery.status, delivery.answer_error) == ("socket", 0, "dispatch_failed")
    assert delivery.envelopes == []


async def test_refresh_asks_the_app_to_reconnect_and_socket_mode_off_disables_the_link(
    slack: RunningSlack, http: aiohttp.ClientSession, app_socket: aiohttp.ClientWebSocketResponse
) -> None:
    hub = slack.workspace.socket_mode
    assert await hub.refresh() == 1
    told = await app_socket.receive_json(timeout=5)
    assert (told["type"], told["reason"]) == ("disconnect", "refresh_requested")

    hub.enabled = False  # Socket Mode turned off in the app's settings
    async with http.ws_connect(await _open_url(slack)) as socket:
        disabled = await socket.receive_json(timeout=5)
        assert (disabled["type"], disabled["reason"]) == ("disconnect", "link_disabled")
        closing = await socket.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_apps_connections_open_takes_only_the_app_level_token(slack: RunningSlack) -> None:
    config = slack.sandbox.config
    client = AsyncWebClient(base_url=slack.api_url)
    refused = {}
    for token in ("xapp-1-A0OODALOO-0000000000-notthistoken", config.bot_token, ""):
        with pytest.raises(SlackApiError) as error:
            await client.apps_connections_open(app_token=token)
        refused[token] = error.value.response["error"]
    assert refused == {
        "xapp-1-A0OODALOO-0000000000-notthistoken": "invalid_auth",
        config.bot_token: "not_allowed_token_type",
        "": "not_authed",
    }
    # ...and the app-level token posts nothing.
    with pytest.raises(SlackApiError) as error:
        await AsyncWebClient(token=config.app_token, base_url=slack.api_url).chat_postMessage(
            channel=FINANCE, text="hello"
        )
    assert error.value.response["error"] == "not_allowed_token_type"
