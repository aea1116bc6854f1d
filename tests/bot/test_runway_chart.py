"""The runway chart: a PNG of the seeded company's 13 weeks (the size it says, the same bytes for
the same figures), alt text with its numbers, the signed route Slack fetches it from (forged and
expired links refused), the digest in the local Slack with its image block, and the emailed
digest with the chart inline by Content-ID, received by a real local SMTP server."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest_email import MailServer, mail_server, start_mail_server
from db_conftest import MigratedDatabase
from PIL import Image
from sqlalchemy import select, update
from starlette.applications import Starlette

from bot.chart import PIXEL_SIZE, TITLE, chart_alt_text, chart_data, render_png, runway_chart_png
from bot.chart_links import ChartImages, ChartLinks, chart_routes, slack_can_fetch
from bot.demo import DemoMailbox
from bot.email import EmailSender, LinkSigner
from bot.local import BUSINESS_ID, OWNER, LocalStack, local_stack
from bot.models import ChartImage
from bot.slack import blocks as kit
from runway.books import business_today
from runway.digest import DigestBuilder, DigestView
from runway.formatting import format_day, money
from runway.models import Business
from runway.snapshot import load_books
from slack_sandbox.blocks import check_message
from slack_sandbox.workspace import Message, SlackError
from sync.clock import ManualClock

__all__ = ["mail_server"]  # a fixture, imported for pytest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough: the database only holds the mirror the digest is built from."""
    return f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"


async def seeded_view(env: Any, *, buffer: Decimal | None = None) -> DigestView:
    """The pinned seeded company's digest, with `buffer` as its minimum cash buffer."""
    if buffer is not None:
        async with env.db.sessions() as session:
            await session.execute(
                update(Business).where(Business.id == BUSINESS_ID).values(min_cash_buffer=buffer)
            )
            await session.commit()
    await env.mirror().sync()
    now = env.clock.now()
    async with env.uows(BUSINESS_ID) as uow:
        business = await uow.business.get()
        books = await load_books(uow, BUSINESS_ID, business_today(now, business.timezone))
    return DigestBuilder().build(books, now=now)


def bank_cash(env: Any) -> Decimal:
    """The seeded company's cash on hand as QuickBooks holds it: its Bank accounts' balances."""
    realm = env.sandbox.realm()
    banks = [a for a in realm.iter("Account") if a.get("AccountType") == "Bank"]
    return sum((Decimal(str(a["CurrentBalance"])) for a in banks), Decimal("0.00"))


def assert_png(png: bytes) -> None:
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as image:
        image.verify()  # every chunk's CRC, the structure
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.size, image.mode[:3]) == ("PNG", PIXEL_SIZE, "RGB")
        image.load()  # the pixels decode
        # Nothing but pixels: no software name or time that would make equal figures differ.
        assert "Software" not in image.info and not image.text


# --- the picture and its words -------------------------------------------------------------------


async def test_the_chart_is_a_png_of_its_size_and_the_same_figures_give_the_same_bytes(
    seeded_business: Any,
) -> None:
    view = await seeded_view(seeded_business, buffer=Decimal("20000.00"))

    started = time.perf_counter()
    first = runway_chart_png(view)
    took = time.perf_counter() - started
    again = runway_chart_png(view)

    assert_png(first)
    assert first == again, "equal figures draw equal bytes"
    lower = replace(view, forecast=replace(view.forecast, buffer=Decimal("90000.00")))
    assert runway_chart_png(lower) != first, "another buffer is another picture"
    assert chart_data(lower).fingerprint != chart_data(view).fingerprint
    rendered = []
    for _ in range(3):
        started = time.perf_counter()
        render_png(chart_data(view))
        rendered.append(time.perf_counter() - started)
    print(f"\nrunway chart: first {took * 1000:.0f} ms (matplotlib loaded), then "
          f"{min(rendered) * 1000:.0f}-{max(rendered) * 1000:.0f} ms each, {len(first) // 1024} KiB")  # fmt: skip
    assert max(rendered) < 2.0, "a chart is drawn in well under a second on a quiet machine"


async def test_the_alt_text_gives_cash_now_the_lowest_week_the_buffer_and_when_cash_crosses_it(
    seeded_business: Any,
) -> None:
    env = seeded_business
    plain = await seeded_view(env)
    weeks = plain.forecast.weeks
    low = min(weeks, key=lambda week: week.ending_balance)
    cash = bank_cash(env)
    assert plain.cash.total == cash, "the chart starts from the banks' balances in QuickBooks"

    # A buffer halfway between the lowest week and today's cash: crossed in some week.
    buffer = ((cash + low.ending_balance) / 2).quantize(Decimal("1.00"))
    crossing = next(week for week in weeks if week.ending_balance < buffer)
    view = await seeded_view(env, buffer=buffer)
    text = chart_alt_text(view)

    assert text.startswith(TITLE)
    assert f"{money(cash, 'USD')} now" in text
    lowest = f"{money(low.ending_balance, 'USD')} at the end of week {low.number} ({format_day(low.end)})"
    assert (f"{lowest}, the lowest." if low is weeks[-1] else f"lowest {lowest}") in text
    assert f"Cash buffer {money(buffer, 'USD')}: cash falls under it in week {crossing.number}" in text
    bills = sum((week.bill_outflows for week in weeks), Decimal("0.00"))
    assert f"Bills due: {money(bills, 'USD')}" in text and bills > 0

    assert "No cash buffer is set" in chart_alt_text(plain)
    high = await seeded_view(env, buffer=cash + Decimal("1.00"))
    assert f"Cash buffer {money(cash + Decimal('1.00'), 'USD')}: cash is under it now." in (
        chart_alt_text(high)
    )
    assert len(chart_alt_text(high)) < 2000, "Slack's alt text limit"


# --- Slack: the image block and the signed route -------------------------------------------------


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


def chart_block(message: Message) -> dict[str, Any]:
    [image] = [block for block in message.blocks if block.get("type") == "image"]
    return image


async def test_the_digest_in_slack_shows_the_chart_its_signed_url_serves(stack: LocalStack) -> None:
    digest = await stack.post_digest()
    view = (await stack.oodaloo.digest(BUSINESS_ID)).view
    image = chart_block(digest)

    assert image["block_id"] == kit.CHART_BLOCK
    order = [block.get("block_id") for block in digest.blocks]
    assert order.index(kit.CHART_BLOCK) == order.index("headline") + 1, "right under the headline"
    assert image["image_url"].startswith(f"{stack.url}/charts/") and image["image_url"].endswith(".png")
    assert image["alt_text"] == chart_alt_text(view)
    assert money(view.cash.total, view.currency) in image["alt_text"]
    assert image["title"]["text"] == TITLE
    assert view.headline in digest.text, "the notification text stays as it was"

    async with httpx.AsyncClient() as client:
        served = await client.get(image["image_url"])
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/png"
        assert served.content == runway_chart_png(view)
        assert_png(served.content)

        # Forged: the signature altered, or signed with another key, or an email link's token.
        token = image["image_url"].removeprefix(f"{stack.url}/charts/").removesuffix(".png")
        payload, _, signature = token.partition(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        other_key = LinkSigner(b"k" * 32, stack.oodaloo.clock, public_url=stack.url)
        ours = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
        for forged in (
            f"{payload}.{flipped}",
            ChartLinks(other_key, stack.oodaloo.clock).token(view),
            ours.unsubscribe_token(BUSINESS_ID, "owner@example.com"),
            "not-a-token",
            "%C3%A9t%C3%A9.x",
            # Signed here, but holding text no table can (a NUL byte, a lone surrogate).
            ours.sign("chart", {"b": BUSINESS_ID, "f": "\x00", "d": "2099-01-01"}),
            ours.sign("chart", {"b": "\ud800", "f": "0" * 16, "d": "2099-01-01"}),
        ):
            refused = await client.get(f"{stack.url}/charts/{forged}.png")
            assert refused.status_code == 404, forged
            assert refused.headers["content-type"].startswith("text/plain")
            assert "No such chart" in refused.text

        # Expired: a genuine link whose last day has passed.
        expired = ChartLinks(ours, stack.oodaloo.clock, days=-2).url(view)
        gone = await client.get(expired)
        assert gone.status_code == 410 and "expired" in gone.text

    # The local Slack checks image blocks as Slack does.
    for bad in ({"image_url": "javascript:alert(1)", "alt_text": "x"}, {"image_url": image["image_url"]}):
        with pytest.raises(SlackError, match="invalid_blocks"):
            check_message("chart", [{"type": "image", **bad}])


async def test_the_poster_draws_and_keeps_the_chart_and_another_web_process_serves_it_undrawn(
    stack: LocalStack,
) -> None:
    """The process that posts the digest draws its chart and keeps it in the database; a web
    process that never drew it (its own store, as another `oodaloo serve` has) hands it over."""
    digest = await stack.post_digest()
    view = (await stack.oodaloo.digest(BUSINESS_ID)).view
    fingerprint = chart_data(view).fingerprint
    async with stack.oodaloo.sessions() as session:
        kept = (await session.execute(select(ChartImage))).scalars().all()
    assert [(row.fingerprint, row.business_id) for row in kept] == [(fingerprint, BUSINESS_ID)]
    assert kept[0].png == runway_chart_png(view)

    elsewhere = ChartImages(stack.oodaloo.sessions, stack.oodaloo.clock)
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    web = Starlette(routes=chart_routes(stack.oodaloo, ChartLinks(signer, stack.oodaloo.clock), elsewhere))
    url = chart_block(digest)["image_url"].removeprefix(stack.url)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web), base_url="http://web") as client:
        served = await client.get(url)
    assert served.status_code == 200 and served.content == kept[0].png
    assert elsewhere.drawn == 0, "a web process drew a chart the poster had kept"


async def test_after_a_payment_the_redrawn_digest_shows_a_new_chart(stack: LocalStack) -> None:
    digest = await stack.post_digest()
    before = chart_block(digest)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    bill = next(
        bill for bill in ctx.view.bills_due.items
        if bill.amount <= ctx.business.approval_threshold and bill.state.value == "needs_approval"
    )  # fmt: skip
    actions = f"bill_actions:{bill.bill_id}"
    await stack.agent.click(OWNER, digest, kit.BILL_APPROVE, block_id=actions)

    def payable() -> Message | None:
        message = stack.message(digest.ts)
        buttons = [b for b in message.blocks if b.get("block_id") == actions]
        return message if buttons and kit.BILL_PAY in str(buttons[0]) else None

    approved = await stack.until(payable)
    assert chart_block(approved) == before, "an approval moves no money: the same chart, the same URL"

    await stack.agent.click(OWNER, approved, kit.BILL_PAY, block_id=actions)

    def redrawn() -> Message | None:
        message = stack.message(digest.ts)
        return message if chart_block(message) != before else None

    paid = await stack.until(redrawn)
    after = chart_block(paid)
    now = (await stack.oodaloo.digest(BUSINESS_ID)).view
    assert now.cash.total == ctx.view.cash.total - bill.home_amount
    assert after["alt_text"] == chart_alt_text(now)
    assert f"{money(now.cash.total, now.currency)} now" in after["alt_text"]
    async with httpx.AsyncClient() as client:
        served = await client.get(after["image_url"])
    assert served.status_code == 200 and served.content == runway_chart_png(now)


async def test_a_digest_slack_refuses_for_its_image_goes_without_it(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    # An address Slack cannot fetch an image from: Slack answers invalid_blocks for its image.
    async def unfetchable(view: Any) -> str:
        return "ftp://127.0.0.1/chart.png"

    stack.bot.channel.chart_url = unfetchable

    digest = await stack.post_digest()

    assert [b for b in digest.blocks if b.get("type") == "image"] == []
    assert {"headline", "cash", "bills"} <= {b.get("block_id") for b in digest.blocks}
    refused = [c for c in stack.workspace.calls("chat.postMessage") if not c.ok]
    assert [c.error for c in refused] == ["invalid_blocks"]
    assert "went without its chart" in caplog.text


def test_slack_gets_the_chart_only_where_it_can_fetch_it() -> None:
    local_slack = "http://127.0.0.1:4000/api/"
    real_slack = "https://slack.com/api/"
    assert slack_can_fetch("http://127.0.0.1:3000", local_slack)
    assert slack_can_fetch("https://oodaloo.example.com", real_slack)
    assert not slack_can_fetch("http://127.0.0.1:3000", real_slack)
    assert not slack_can_fetch("http://oodaloo.example.com", real_slack)
    assert not slack_can_fetch("https://192.168.1.20", real_slack)


# --- email ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Named:
    id: str
    name: str
    slack_team_id: str | None = None
    slack_channel_id: str | None = None


async def test_the_emailed_digest_shows_the_chart_inline_by_content_id(
    seeded_business: Any, mail_server: MailServer
) -> None:
    view = await seeded_view(seeded_business, buffer=Decimal("20000.00"))
    links = LinkSigner(
        b"e" * 32, ManualClock(datetime.now(UTC)), public_url="https://oodaloo.example.com"
    )
    sender = EmailSender(mail_server.url, links=links, sender="Oodaloo <runway@oodaloo.example>")

    await sender.send_digest(Named(BUSINESS_ID, "Larkspur & Pine"), view, ["owner@larkspur.example"])

    [mail] = mail_server.handler.messages()
    assert mail.get_content_type() == "multipart/alternative"
    text_part, related = mail.iter_parts()
    assert related.get_content_type() == "multipart/related"
    html_part, image = related.iter_parts()
    assert image.get_content_type() == "image/png"
    assert image.get_content_disposition() == "inline"
    cid = str(image["Content-ID"]).strip("<>")
    png = image.get_content()
    assert_png(png)
    assert png == runway_chart_png(view)

    html = html_part.get_content()
    alt = chart_alt_text(view)
    escaped = alt.replace("&", "&amp;").replace("'", "&#39;").replace('"', "&#34;")
    assert f'<img src="cid:{cid}" alt="{escaped}"' in html
    text = text_part.get_content()
    assert alt in text, "the text part says the chart's numbers"
    assert money(view.cash.total, view.currency) in alt

    # The demo's mailbox shows the chart as a mail client does (it has no other way to the part).
    mailbox = DemoMailbox()
    controller, demo_server = start_mail_server(mailbox)  # type: ignore[arg-type]
    try:
        demo = EmailSender(demo_server.url, links=links, sender="Oodaloo <runway@oodaloo.example>")
        await demo.send_digest(Named(BUSINESS_ID, "Larkspur & Pine"), view, ["owner@larkspur.example"])
    finally:
        controller.stop()
    [shown] = mailbox.messages()
    assert "cid:" not in shown["html"]
    assert f'src="data:image/png;base64,{base64.b64encode(png).decode()}"' in shown["html"]
