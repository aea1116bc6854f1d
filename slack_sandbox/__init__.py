"""A local Slack for Oodaloo's tests, benchmarks and demo: one workspace, its Web API and its people.

- `start_in_thread(config)` serves it over loopback HTTP; point the bot's
  `AsyncWebClient(token=ws.bot_token, base_url=running.api_url)` at it.
- `SlackUserAgent(workspace, request_url)` sends the bot Slack's signed requests: slash commands,
  button clicks, modal submissions and events.
- `workspace` holds what Slack would show: channel messages, ephemeral messages, open modals, and a
  log of every Web API call; `await workspace.wait_for(...)` waits for the bot to catch up.

Production code never imports this package (an import-linter contract says so).
"""

from slack_sandbox.config import ChannelSpec, SlackSandboxConfig, SystemClock, UserSpec
from slack_sandbox.server import RunningSlack, SlackSandbox, create_app, start_in_thread
from slack_sandbox.user import Delivery, SignedRequest, SlackUserAgent
from slack_sandbox.workspace import (
    ApiCall,
    Ephemeral,
    Message,
    ResponseUrl,
    SlackError,
    View,
    Workspace,
)

__all__ = [
    "ApiCall",
    "ChannelSpec",
    "Delivery",
    "Ephemeral",
    "Message",
    "ResponseUrl",
    "RunningSlack",
    "SignedRequest",
    "SlackError",
    "SlackSandbox",
    "SlackSandboxConfig",
    "SlackUserAgent",
    "SystemClock",
    "UserSpec",
    "View",
    "Workspace",
    "create_app",
    "start_in_thread",
]
