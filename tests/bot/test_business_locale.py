"""A business's money and times in its own locale, through the real surfaces: a QuickBooks
company in the UK (or Germany) gets its weekly digest in Slack and by email written the way its
owner reads figures ("£1,234.56" and "09:02" in en_GB, "1.234,56 €" in en_DE), and a change of
style in the Settings modal shows in the next `/runway` (a US company's dollars as "US$1,234.56"). The local Slack, the QBO sandbox, a real
SMTP server; on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
import simplejson
from conftest_email import MailServer, mail_server
from db_conftest import MigratedDatabase

from bot.email_wiring import digest_mailer
from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.ritual import Ritual
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from slack_sandbox.workspace import Message

__all__ = ["mail_server"]  # the SMTP fixture, imported for pytest

RECIPIENT = "owner@larkspur.example"
#: A time on a 12-hour clock ("9:02 AM"): what en_US writes and the other locales here do not.
TWELVE_HOUR = re.compile(r"\d{1,2}:\d{2} ?[AP]M")
#: "as of 09:02 PST": the freshness line on a 24-hour clock.
AS_OF_24_HOUR = re.compile(r"as of (?:\w{3} \d{1,2} \w{3}, )?[0-2]\d:[0-5]\d [A-Z]{2,5}\b")
#: "$1,234.56" with no country before the sign: en_US's dollars.
US_DOLLARS = re.compile(r"(?<![A-Z])\$\d")


def stack_for(migrated: MigratedDatabase, **sandbox: object) -> AsyncIterator[LocalStack]:
    return local_stack(
        migrated.url,
        sandbox_config=SandboxConfig(seed=DEFAULT_SEED, **sandbox),  # type: ignore[arg-type]
        email_recipients=[RECIPIENT],
    )


async def digest_everywhere(stack: LocalStack, server: MailServer) -> tuple[str, str, str]:
    """The weekly digest as the scheduler sends it: (Slack message, email text, email html)."""
    ritual = Ritual(
        stack.oodaloo,
        post_digest=stack.bot.post_digest,
        mail_digest=digest_mailer(stack.oodaloo, server.url),
        alert_drift=stack.bot.post_drift_alerts,
    )
    sent = await ritual.send_digest(BUSINESS_ID, datetime.now(UTC).replace(microsecond=0))
    assert sent.posted and sent.ts is not None and list(sent.emailed_to) == [RECIPIENT]
    message = stack.message(sent.ts)
    [mail] = server.handler.messages()
    text, html = parts(mail)
    return shown(message), text, html


def shown(message: Message) -> str:
    return message.text + " " + simplejson.dumps(message.blocks, ensure_ascii=False)


def parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(preferencelist=("plain",))
    html = mail.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@pytest.fixture
async def uk(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with stack_for(migrated, country="GB") as built:
        yield built


@pytest.fixture
async def germany(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with stack_for(migrated, country="DE") as built:
        yield built


@pytest.fixture
async def us(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with stack_for(migrated) as built:
        yield built


async def test_a_uk_company_gets_its_digest_in_uk_style(
    uk: LocalStack, mail_server: MailServer
) -> None:
    business = await uk.business()
    assert business.locale == "en_GB", "connecting a UK company gives the business its locale"
    ctx = await uk.oodaloo.digest(BUSINESS_ID)
    assert ctx.view.currency == "GBP", "a UK company keeps its books in pounds"

    slack, text, html = await digest_everywhere(uk, mail_server)

    pounds = re.compile(r"£\d{1,3}(?:,\d{3})*\.\d{2}\b")
    for surface in (slack, text, html):
        assert pounds.search(surface), "amounts as £1,234.56"
        assert "$" not in surface
        assert not TWELVE_HOUR.search(surface), TWELVE_HOUR.search(surface)
        assert AS_OF_24_HOUR.search(surface), surface[:2000]
    # The chart's words (its alt text in Slack and in the email) are in the same style.
    assert "Cash over the next 13 weeks: £" in slack
    assert "Cash over the next 13 weeks: £" in html


async def test_a_german_company_writes_euros_the_german_way(
    germany: LocalStack, mail_server: MailServer
) -> None:
    assert (await germany.business()).locale == "en_DE"

    slack, text, html = await digest_everywhere(germany, mail_server)

    euros = re.compile(r"\b\d{1,3}(?:\.\d{3})*,\d{2}\u00a0€")
    for surface in (slack, text, html):
        assert euros.search(surface), "amounts as 1.234,56 €"
        assert not re.search(r"€\s?\d", surface), "no euro sign before an amount"
        assert "$" not in surface
        assert not TWELVE_HOUR.search(surface)
        assert AS_OF_24_HOUR.search(surface)


async def test_the_settings_change_shows_in_the_next_runway(us: LocalStack) -> None:
    ws = us.workspace
    assert (await us.business()).locale == "en_US"
    await us.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    await us.bot.idle()
    before = us.ephemerals(OWNER)[-1]
    before_text = before.text + str(before.blocks)
    assert US_DOLLARS.search(before_text) and TWELVE_HOUR.search(before_text)

    await us.agent.slash_command(OWNER, CHANNEL, "/runway", "settings")
    view = await us.until(lambda: next(iter(ws.open_views(OWNER)), None))
    style = next(block for block in view.blocks if block.get("block_id") == "locale")
    assert style["element"]["initial_option"]["value"] == "en_US"
    offered = [option["value"] for option in style["element"]["options"]]
    assert {"en_US", "en_GB", "en_DE"} <= set(offered)

    saved = await us.agent.submit_view(OWNER, view.id, {
        "locale": {"value": {"type": "static_select", "selected_option": {"value": "en_GB"}}},
    })  # fmt: skip
    assert saved.status == 200 and not (saved.json or {}).get("errors"), saved.text
    assert (await us.business()).locale == "en_GB"

    await us.agent.slash_command(OWNER, CHANNEL, "/runway", "")
    await us.bot.idle()
    after = us.ephemerals(OWNER)[-1]
    after_text = after.text + str(after.blocks)
    assert "US$" in after_text
    assert not US_DOLLARS.search(after_text) and not TWELVE_HOUR.search(after_text)
    assert AS_OF_24_HOUR.search(after_text)
