"""The digest email as a phone and a narrow mail pane show it: the HTML part the local SMTP server
received, opened in Debian's chromium (Playwright) at 375 px and 700 px. Nothing may be wider than
the screen (no sideways scrolling), every row and button is on screen, and a screenshot of each
width is kept: in the folder OODALOO_SCREENSHOTS names (CI keeps it as an artifact), else in the
test's own temporary folder."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest_email import (
    BUSINESS,
    MailServer,
    all_parts,
    bills_due_in_two_days,
    digest_of,
    mail_server,
    migrated_fixture,
    runway_env,
    set_business,
)
from playwright.async_api import Browser

from bot.email import EmailSender, LinkSigner
from sync.clock import ManualClock

__all__ = ["mail_server", "migrated_fixture", "runway_env"]  # fixtures, imported for pytest

OWNER = "owner@larkspur.example"
#: An iPhone's width, and a mail client's reading pane beside its list of messages.
WIDTHS = (375, 700)
#: A vendor of the seeded company, with a bill due this week: its row must be on screen.
VENDOR = "Bits <& Bytes> LLC"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: the database only holds the mirror the digest is built from."""
    return f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("OODALOO_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def received_html(env: Any, mail_server: MailServer) -> str:
    """The seeded company's digest, sent through the real local SMTP server, as received."""
    await bills_due_in_two_days(env, [VENDOR])
    await set_business(
        env,
        name="Larkspur & Pine Coffee Roasters",
        slack_team_id="T0LARKSPUR",
        slack_channel_id="C0FINANCE",
    )
    view = await digest_of(env)
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
    links = LinkSigner(
        secrets.token_bytes(32),
        ManualClock(datetime.now(UTC)),
        public_url="https://oodaloo.example",
    )
    sender = EmailSender(mail_server.url, links=links, wait_scale=0)
    assert await sender.send_digest(business, view, [OWNER]) == [OWNER]
    [message] = mail_server.handler.messages()
    return all_parts(message)[1]


async def test_the_email_fits_a_phone_and_a_narrow_pane_without_sideways_scrolling(
    runway_env: Any, mail_server: MailServer, browser: Browser, screenshots: Path
) -> None:
    html = await received_html(runway_env, mail_server)
    for width in WIDTHS:
        context = await browser.new_context(viewport={"width": width, "height": 900})
        try:
            page = await context.new_page()
            await page.set_content(html, wait_until="load")
            scroll_width = await page.evaluate("document.documentElement.scrollWidth")
            body_width = await page.evaluate("document.body.scrollWidth")
            assert scroll_width <= width, f"{scroll_width} px of content in a {width} px window"
            assert body_width <= width, f"{body_width} px of body in a {width} px window"
            # Each button and amount is inside the window, not cut off at its right edge.
            overflowing = await page.evaluate(
                """(width) => [...document.querySelectorAll('a, td, div')]
                    .filter((el) => el.getBoundingClientRect().right > width + 0.5)
                    .map((el) => el.textContent.trim().slice(0, 60))""",
                width,
            )
            assert overflowing == [], f"beyond the {width} px edge: {overflowing}"
            buttons = page.get_by_role("link", name="Approve")
            assert await buttons.count() > 0
            await buttons.first.scroll_into_view_if_needed()
            box = await buttons.first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert await page.get_by_text(VENDOR).first.is_visible()
            shot = await page.screenshot(
                path=str(screenshots / f"email-{width}px.png"), full_page=True
            )
            assert shot.startswith(b"\x89PNG")
        finally:
            await context.close()
