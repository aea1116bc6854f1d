"""A local Slack served over loopback HTTP, and slack_sdk's own client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack, start_in_thread


@pytest.fixture
def slack_config() -> SlackSandboxConfig:
    return SlackSandboxConfig()


@pytest.fixture
def slack(slack_config: SlackSandboxConfig) -> Iterator[RunningSlack]:
    with start_in_thread(slack_config) as running:
        yield running


@pytest.fixture
def web_client(slack: RunningSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
