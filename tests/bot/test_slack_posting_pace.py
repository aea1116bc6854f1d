"""Posting waits out Slack's rate limits: a workspace that allows a burst and then one post every
two seconds still gets every digest, the bot waiting out each 429's Retry-After (local Slack over
real HTTP, slack_sdk's client without its own retry handlers, so the waiting shown is the poster's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.poster import post_when_allowed
from slack_sandbox.config import ChannelSpec, SlackSandboxConfig
from slack_sandbox.server import RunningSlack, start_in_thread

CLIENTS = tuple(ChannelSpec(f"C0PACE{i:03d}", f"client-{i}") for i in range(4))


@pytest.fixture
def slack() -> Iterator[RunningSlack]:
    config = SlackSandboxConfig(channels=CLIENTS, workspace_rate_limit_burst=2,
                                workspace_rate_limit_per_minute=30)
    with start_in_thread(config) as running:
        yield running


async def test_posts_beyond_the_workspaces_limit_wait_their_turn_and_all_arrive(
    slack: RunningSlack,
) -> None:
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    for spec in CLIENTS:
        await post_when_allowed(client, channel=spec.id, text=f"digest for {spec.name}")

    assert [len(slack.workspace.messages(spec.id)) for spec in CLIENTS] == [1, 1, 1, 1]
    statuses = [call.status for call in slack.workspace.calls("chat.postMessage")]
    assert statuses.count(200) == 4 and statuses.count(429) >= 2
    assert slack.sandbox.rate_limit.rejected_by["workspace"] == statuses.count(429)


async def test_a_refusal_that_is_not_a_rate_limit_is_not_waited_on(slack: RunningSlack) -> None:
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as refused:
        await post_when_allowed(client, channel="C0NOWHERE", text="lost")
    assert refused.value.response["error"] == "channel_not_found"
    assert len(slack.workspace.calls("chat.postMessage")) == 1
