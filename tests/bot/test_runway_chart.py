"""The runway chart: a PNG of the seeded company's 13 weeks (the size it says, the same bytes for
the same figures), alt text with its numbers, the signed route Slack fetches it from (forged and
expired links refused), the digest in the local Slack with its image block, and the emailed
digest with the chart inline by Content-ID, received by a real local SMTP server."""

from __future__ import annotations

import io
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import update

from bot.chart import PIXEL_SIZE, TITLE, chart_alt_text, chart_data, render_png, runway_chart_png
from bot.local import BUSINESS_ID
from runway.books import business_today
from runway.digest import DigestBuilder, DigestView
from runway.formatting import money, short_date
from runway.models import Business
from runway.snapshot import load_books

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
    lowest = f"{money(low.ending_balance, 'USD')} at the end of week {low.number} ({short_date(low.end)})"
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
