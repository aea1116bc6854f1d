"""Installing Oodaloo into a Slack workspace (multi-workspace mode): /slack/install, Slack's consent,
/slack/oauth_redirect, the installation kept by slack_sdk's SQLAlchemy store, then requests from
that workspace answered with its own bot token. Against the local Slack's OAuth."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from db_conftest import MigratedDatabase
from sqlalchemy import text

from bot.bootstrap import Oodaloo
from bot.local import free_socket, serve_in_loop
from bot.models import SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE
from bot.settings import load_settings
from bot.slack.app import SlackBot
from bot.web import create_web_app
from runway.crypto import generate_key
from slack_sandbox.config import SlackSandboxConfig
from slack_sandbox.server import RunningSlack, start_in_thread
from slack_sandbox.user import SlackUserAgent
from sync.backends import MemoryBackend


async def _stored_rows(oodaloo: Oodaloo) -> list[dict[str, Any]]:
    async with oodaloo.engine.connect() as connection:
        rows = []
        for table in (SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE):
            result = await connection.execute(text(f"SELECT * FROM {table}"))
            rows += [dict(row) for row in result.mappings()]
    return rows


@pytest.fixture
def slack() -> AsyncIterator[RunningSlack]:
    with start_in_thread(SlackSandboxConfig()) as running:
        yield running


async def test_install_then_the_workspace_is_served_with_its_own_token(
    migrated: MigratedDatabase, slack: RunningSlack
) -> None:
    config = slack.sandbox.config
    settings = load_settings(
        database_url=migrated.url,
        slack_client_id=config.client_id,
        slack_client_secret=config.client_secret,
        slack_signing_secret=config.signing_secret,
        slack_api_url=slack.api_url,
        token_encryption_key=generate_key(),
        email_link_key=secrets.token_urlsafe(32),
        public_url="http://127.0.0.1:1",  # replaced below once the port is known
    )
    oodaloo = await Oodaloo.start(settings, backend=MemoryBackend(), migrate=False)
    try:
        sock = free_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        oodaloo.settings = settings.model_copy(update={"public_url": url})
        bot = SlackBot(oodaloo)
        assert bot.installation_store is not None
        async with serve_in_loop(create_web_app(oodaloo, bot), sock), SlackUserAgent(
            slack.workspace, f"{url}/slack/events"
        ) as agent:
            before = await agent.slash_command("U0OWNER01", "C0FINANCE", "/runway", "help")
            assert "/runway bills" not in before.text  # not installed: no answer from Oodaloo

            async with httpx.AsyncClient() as browser:
                page = await browser.get(f"{url}/slack/install")
                assert page.status_code == 200
                consent = re.search(r'href="([^"]+oauth/v2/authorize[^"]+)"', page.text)
                assert consent, page.text
                back = await browser.get(consent.group(1).replace("&amp;", "&"))
                assert back.status_code in (302, 303), back.text
                # Bolt's state cookie is Secure; a browser on this http:// loopback test sends it
                # back only because we hand it over, as it would over https.
                cookie = page.headers["set-cookie"].split(";", 1)[0]
                finished = await browser.get(back.headers["location"], headers={"cookie": cookie})
            assert finished.status_code == 200, finished.text

            installed = await bot.installation_store.async_find_bot(
                enterprise_id=None, team_id=slack.workspace.team_id
            )
            assert installed is not None and installed.bot_token.startswith("xoxb-")
            # At rest the tokens are ciphertext: the rows hold no token in plain text.
            stored = await _stored_rows(oodaloo)
            assert stored and all(row["bot_token"] for row in stored)
            for row in stored:
                assert not any(
                    isinstance(value, str) and (value.startswith("xox") or installed.bot_token in value)
                    for value in row.values()
                ), row
            after = await agent.slash_command("U0OWNER01", "C0FINANCE", "/runway", "help")
            assert after.status == 200 and "/runway bills" in after.text
            client = await bot.client_for(slack.workspace.team_id)
            assert client.token == installed.bot_token
    finally:
        await oodaloo.aclose()
