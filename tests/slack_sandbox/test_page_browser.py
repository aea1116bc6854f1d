"""The demo page in a real browser (Debian's chromium through Playwright), against a tiny Bolt bot.

The page is served by uvicorn on a loopback port; every click and command goes from the browser to
the page's routes, from there as Slack's signed requests to the bot, and back through the local
Slack's Web API, which the page then draws.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, Page, expect
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from test_page import (
    BOOKKEEPER,
    DIGEST_MAIL,
    FINANCE,
    OWNER,
    Inbox,
    Seen,
    Switch,
    post_digest,
    tiny_bot,
)

from slack_sandbox.page import page_routes
from slack_sandbox.server import RunningSlack
from slack_sandbox.user import SlackUserAgent

SCREENSHOT = Path("/tmp/page.png")


async def serve(app: Starlette) -> AsyncIterator[str]:
    """`app` served by uvicorn in this event loop on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", http="h11")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why uvicorn stopped
                raise RuntimeError("uvicorn stopped before serving the page")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
async def page_url(slack: RunningSlack, seen: Seen, switch: Switch) -> AsyncIterator[str]:
    async with SlackUserAgent(
        slack.workspace,
        "http://oodaloo.test/slack/events",
        transport=httpx.ASGITransport(app=tiny_bot(slack, seen)),
    ) as agent:
        app = Starlette(
            routes=page_routes(
                slack.workspace,
                agent,
                viewer_user_id=OWNER,
                channel_id=FINANCE,
                faults=switch,
                mailbox=Inbox([DIGEST_MAIL]),
            )
        )
        async for url in serve(app):
            yield url


@pytest.fixture
async def page(browser: Browser, page_url: str) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    opened = await context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    await opened.goto(page_url)
    await expect(opened.get_by_test_id("channel-name")).to_have_text("# finance")
    yield opened
    await context.close()
    assert problems == [], f"the page logged errors: {problems}"


async def test_the_digest_renders_and_pay_asks_first_then_updates_the_message(
    page: Page, slack: RunningSlack, seen: Seen
) -> None:
    ts = await post_digest(slack)
    message = page.get_by_test_id(f"message-{ts}")
    await expect(message).to_be_visible()
    await expect(message.get_by_test_id("block-header")).to_have_text("Weekly cash runway")
    headline = message.get_by_test_id("block-headline")
    await expect(headline.locator("b").first).to_have_text("84 days")
    await expect(headline.locator(".mention")).to_have_text("@Dana Whitfield")
    await expect(headline.locator(".field")).to_have_count(2)
    # The vendor's name arrives escaped; it is shown as typed, and never becomes markup.
    await expect(message.get_by_test_id("block-bill:146").locator("b")).to_have_text(
        "Acme & Sons <Ltd>"
    )
    assert await message.locator("ltd").count() == 0
    await expect(message.locator(".block-divider")).to_have_count(1)
    await expect(message.get_by_test_id("block-freshness")).to_contain_text("as of 09:00")

    pay = message.get_by_test_id("button-bill_pay-146")
    await expect(pay).to_have_text("Pay $1,200.00")
    await expect(pay).to_have_class("btn btn-primary")
    await expect(message.get_by_test_id("button-bill_snooze-146")).to_have_class("btn btn-danger")

    # Cancel in the confirm dialog sends nothing.
    await pay.click()
    dialog = page.get_by_test_id("confirm-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator(".dialog-title")).to_have_text("Pay Acme & Sons?")
    await expect(dialog).to_contain_text("Pay $1,200.00 to Acme & Sons from Checking.")
    await dialog.get_by_test_id("confirm-deny").click()
    await expect(dialog).to_be_hidden()

    await pay.click()
    await page.get_by_test_id("confirm-ok").click()
    await expect(message).to_contain_text("Paid bill 146, by @Dana Whitfield")
    await expect(message.get_by_test_id("edited")).to_have_text("(edited)")
    await expect(message.get_by_test_id("button-bill_pay-146")).to_have_count(0)
    assert [a["actions"][0]["value"] for a in seen.actions] == ["146"]
    assert seen.actions[0]["user"]["id"] == OWNER


async def test_pay_in_a_tab_that_has_not_caught_up_reaches_the_bot_without_an_error(
    page: Page, browser: Browser, page_url: str, slack: RunningSlack, seen: Seen
) -> None:
    ts = await post_digest(slack)
    await expect(page.get_by_test_id("button-bill_pay-146")).to_be_visible()
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        other = await context.new_page()
        await other.goto(page_url)
        await expect(other.get_by_test_id("button-bill_pay-146")).to_be_visible()
        # The other tab keeps drawing the digest as it was before the first payment.
        stale = await other.evaluate("fetch('/_page/state').then((r) => r.text())")
        await other.route(
            "**/_page/state",
            lambda route: route.fulfill(status=200, body=stale, content_type="application/json"),
        )

        await page.get_by_test_id("button-bill_pay-146").click()
        await page.get_by_test_id("confirm-ok").click()
        await expect(page.get_by_test_id(f"message-{ts}")).to_contain_text("Paid bill 146")

        await other.get_by_test_id("button-bill_pay-146").click()
        await other.get_by_test_id("confirm-ok").click()
        await slack.workspace.wait_for(lambda: len(seen.actions) == 2 or None)
        await expect(other.get_by_test_id("button-bill_pay-146")).to_be_enabled()
        await expect(other.get_by_test_id("notice")).to_be_hidden()
        assert [a["actions"][0]["value"] for a in seen.actions] == ["146", "146"]
    finally:
        await context.close()


async def test_typing_runway_gets_an_answer_only_the_viewer_sees(
    page: Page, slack: RunningSlack, seen: Seen
) -> None:
    box = page.get_by_test_id("composer")
    await box.fill("/runway")
    await box.press("Enter")
    answer = page.locator('[data-testid^="ephemeral-"]')
    await expect(answer).to_have_count(1)
    await expect(answer).to_contain_text("Only visible to you")
    await expect(answer.locator("b")).to_have_text("84 days")
    await expect(answer).to_contain_text("for @Dana Whitfield (cash & burn as of 09:00)")
    await expect(box).to_have_value("")
    assert [c["text"] for c in seen.commands] == [""]
    assert slack.workspace.ephemerals(user=BOOKKEEPER) == []


async def test_the_settings_modal_shows_the_bots_errors_under_the_field_and_closes_when_valid(
    page: Page, seen: Seen
) -> None:
    box = page.get_by_test_id("composer")
    await box.fill("/runway settings")
    await box.press("Enter")
    modal = page.get_by_test_id("modal")
    await expect(modal).to_be_visible()
    await expect(modal.get_by_test_id("modal-title")).to_have_text("Runway settings")
    await expect(modal.get_by_test_id("input-digest_time")).to_have_value("08:00")
    await expect(modal.get_by_test_id("input-channel")).to_have_value(FINANCE)

    await modal.get_by_test_id("input-digest_day").select_option("4")
    await modal.get_by_test_id("input-approvers").select_option([OWNER, BOOKKEEPER])
    await modal.get_by_test_id("input-threshold").fill("lots")
    await modal.get_by_test_id("input-emails").fill("dana@example.com\nsam@example.com")
    await modal.get_by_test_id("modal-submit").click()
    error = modal.get_by_test_id("error-threshold")
    await expect(error).to_have_text("Enter an amount such as 5000.00.")
    # What was typed stays while the bot's errors are shown.
    await expect(modal.get_by_test_id("input-emails")).to_have_value(
        "dana@example.com\nsam@example.com"
    )

    await modal.get_by_test_id("input-threshold").fill("7500.00")
    await modal.get_by_test_id("modal-submit").click()
    await expect(modal).to_be_hidden()
    sent = seen.submissions[-1]
    assert sent["threshold"]["value"]["value"] == "7500.00"
    assert sent["digest_day"]["value"]["selected_option"]["value"] == "4"
    assert sent["approvers"]["value"]["selected_users"] == [OWNER, BOOKKEEPER]
    assert sent["emails"]["value"]["value"] == "dana@example.com\nsam@example.com"


async def test_the_first_field_the_bot_refuses_is_scrolled_into_view(page: Page) -> None:
    # A short window: the modal scrolls, and the person filled it in down to its last field.
    await page.set_viewport_size({"width": 1000, "height": 420})
    box = page.get_by_test_id("composer")
    await box.fill("/runway settings")
    await box.press("Enter")
    modal = page.get_by_test_id("modal")
    await expect(modal).to_be_visible()
    await modal.get_by_test_id("input-threshold").fill("lots")
    await modal.get_by_test_id("input-emails").fill("dana@example.com")
    await modal.locator(".modal-body").evaluate("(body) => { body.scrollTop = body.scrollHeight; }")
    error = modal.get_by_test_id("input-block-threshold")
    await expect(error).not_to_be_in_viewport()

    await modal.get_by_test_id("modal-submit").click()
    await expect(modal.get_by_test_id("error-threshold")).to_have_text(
        "Enter an amount such as 5000.00."
    )
    await expect(modal.get_by_test_id("error-threshold")).to_be_in_viewport()
    await expect(modal.get_by_test_id("input-threshold")).to_be_in_viewport()


async def test_mrkdwn_is_drawn_as_slack_does_and_never_as_markup(
    page: Page, slack: RunningSlack
) -> None:
    zero_width = "\u200b"
    text = (
        "*bold* _italic_ ~gone~ `co*de*` <https://example.com/a_b|Example> "
        "<javascript:alert(1)|not a link> <!channel> "
        f"*{zero_width}Acme*{zero_width} &lt;script&gt;alert(1)&lt;/script&gt; &amp;lt; snake_case_name"
    )
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    posted = await client.chat_postMessage(channel=FINANCE, text=text)
    body = page.get_by_test_id(f"message-{posted['ts']}").locator(".mrkdwn")
    await expect(body.locator("b")).to_have_text(["bold"])
    await expect(body.locator("i")).to_have_text(["italic"])
    await expect(body.locator("s")).to_have_text(["gone"])
    await expect(body.locator("code")).to_have_text(["co*de*"])
    link = body.locator("a")
    await expect(link).to_have_count(1)
    await expect(link).to_have_attribute("href", "https://example.com/a_b")
    await expect(link).to_have_text("Example")
    await expect(body.locator(".mention")).to_have_text("@channel")
    shown = await body.text_content()
    assert shown is not None
    assert (
        f"not a link @channel *{zero_width}Acme*{zero_width} <script>alert(1)</script> &lt; snake_case_name"
        in shown
    )
    assert await page.locator("script:not([src])").count() == 0


async def test_a_button_in_a_modal_pushes_another_and_back_returns(page: Page, seen: Seen) -> None:
    box = page.get_by_test_id("composer")
    await box.fill("/runway settings")
    await box.press("Enter")
    title = page.get_by_test_id("modal-title")
    await expect(title).to_have_text("Runway settings")
    await page.get_by_test_id("modal").get_by_test_id("button-preview_digest").click()
    await expect(title).to_have_text("Digest preview")
    await expect(page.get_by_test_id("modal").locator("b")).to_have_text("84 days")
    await page.get_by_test_id("modal-close").click()
    await expect(title).to_have_text("Runway settings")
    assert [a["container"]["type"] for a in seen.actions] == ["view"]


async def test_new_messages_leave_the_ones_already_drawn_alone(
    page: Page, slack: RunningSlack
) -> None:
    client = AsyncWebClient(token=slack.workspace.bot_token, base_url=slack.api_url)
    first = await client.chat_postMessage(channel=FINANCE, text="Sync finished")
    first_node = page.get_by_test_id(f"message-{first['ts']}")
    await expect(first_node).to_contain_text("Sync finished")
    await first_node.evaluate("node => { node.dataset.drawnOnce = 'yes'; }")
    second = await client.chat_postMessage(channel=FINANCE, text="Digest on its way")
    await expect(page.get_by_test_id(f"message-{second['ts']}")).to_be_visible()
    await expect(first_node).to_have_attribute("data-drawn-once", "yes")


async def test_the_fault_switch_and_the_mailbox(page: Page, switch: Switch) -> None:
    toggle = page.get_by_test_id("faults-toggle")
    await expect(page.get_by_test_id("faults-state")).to_have_text("off")
    await page.locator(".switch-row").click()
    await expect(page.get_by_test_id("faults-state")).to_have_text("on")
    await expect(toggle).to_be_checked()
    assert switch.calls == [True]

    await expect(page.get_by_test_id("mail-count")).to_have_text("1")
    await page.get_by_test_id("mail-m1").click()
    body = page.get_by_test_id("mail-body")
    await expect(body).to_have_attribute("sandbox", "allow-popups allow-popups-to-escape-sandbox")
    frame = page.frame_locator('[data-testid="mail-body"]')
    await expect(frame.locator("b")).to_have_text("84 days")
    await page.get_by_test_id("mail-back").click()
    await expect(page.get_by_test_id("mail-list")).to_be_visible()


async def test_the_whole_page_reads_well(page: Page, slack: RunningSlack) -> None:
    """Leaves a screenshot of a digest, an ephemeral answer and a confirm dialog at /tmp/page.png."""
    ts = await post_digest(slack)
    await expect(page.get_by_test_id(f"message-{ts}")).to_be_visible()
    box = page.get_by_test_id("composer")
    await box.fill("/runway")
    await box.press("Enter")
    await expect(page.locator('[data-testid^="ephemeral-"]')).to_have_count(1)
    await page.get_by_test_id("mail-m1").click()
    await expect(page.get_by_test_id("mail-body")).to_be_visible()
    shot = await page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert len(shot) > 10_000, "the screenshot is too small to show the page"
