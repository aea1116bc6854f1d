"""A local Slack for Oodaloo's tests, benchmarks and demo: one workspace, its Web API and its people.

- `slack_sandbox.server.start_in_thread(config)` serves it over loopback HTTP; point the bot's
  `AsyncWebClient(token=workspace.bot_token, base_url=running.api_url)` at it.
- `slack_sandbox.user.SlackUserAgent(workspace, request_url)` sends the bot Slack's signed requests:
  slash commands, clicks, modal submissions and events.
- `slack_sandbox.workspace.Workspace` holds what Slack would show (channel messages, ephemeral
  messages, open modals, each person's Home tab) and a log of every Web API call; `await workspace.wait_for(...)` waits for
  the bot to catch up.

Import from those modules, not from this package: under pytest, `tests/slack_sandbox/` can stand in
for this package's name, and then only its submodules resolve. Production code never imports this
package (an import-linter contract says so).
"""
