"""Escaping text from QuickBooks for Slack mrkdwn, cutting text to Slack's limits, and the
templates' strictness: hostile names are shown as typed and never format, link or ping."""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from jinja2 import UndefinedError

from bot.slack.blocks import digest_message
from bot.slack.mrkdwn import ZERO_WIDTH_SPACE, clip, clip_lines, escape
from bot.slack.text import render
from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    MovementKind,
    OpenBill,
    OpenInvoice,
)
from runway.digest import DigestBuilder

Z = ZERO_WIDTH_SPACE
NASTY = 'Tom & Jerry\'s <Café> "Best" @channel http://x.io'


def as_slack_shows_it(mrkdwn_text: str) -> str:
    """What a reader sees of inert mrkdwn: entities decoded, zero-width spaces invisible."""
    return html.unescape(mrkdwn_text).replace(Z, "")


def test_the_three_control_characters_become_entities_and_nothing_else_does() -> None:
    assert escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape("&amp;") == "&amp;amp;", "escaped once, where it is rendered: never pre-escaped"
    assert escape('O\'Brien "Café" #general :tada:') == 'O\'Brien "Café" #general :tada:'


def test_a_hostile_name_comes_out_harmless_and_reads_as_typed() -> None:
    escaped = escape(NASTY)
    assert escaped == (f'Tom &amp; Jerry\'s &lt;Café&gt; "Best" @{Z}channel http://x.io')
    assert as_slack_shows_it(escaped) == NASTY
    assert "<" not in escaped and ">" not in escaped
    assert "@channel" not in escaped


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("*Acme*_", f"*{Z}Acme*{Z}_{Z}"),
        ("_Italic Imports_", f"_{Z}Italic Imports_{Z}"),
        ("~Strike~ Co", f"~{Z}Strike~{Z} Co"),
        ("`rm -rf` Ltd", f"`{Z}rm -rf`{Z} Ltd"),
        ("```block```", f"`{Z}`{Z}`{Z}block`{Z}`{Z}`{Z}"),
        ("<!here> & <@U123> <#C1|x>", f"&lt;!here&gt; &amp; &lt;@{Z}U123&gt; &lt;#C1|x&gt;"),
    ],
)
def test_formatting_characters_are_followed_by_a_zero_width_space(name: str, expected: str) -> None:
    escaped = escape(name)
    assert escaped == expected
    # Every marker is followed by the invisible break, so none can open bold, italic, strike, code.
    for index, ch in enumerate(escaped):
        if ch in "*_~`@":
            assert escaped[index + 1] == Z
    assert as_slack_shows_it(escaped) == name


def test_line_breaks_and_control_characters_cannot_reshape_the_message() -> None:
    # A newline would let a name start its own line: a "> quote" or a fake list item.
    assert escape("Acme\n> quoted\r\n• item\tx") == "Acme &gt; quoted  • item x"
    assert escape("bell\x07 null\x00 end") == "bell null end"


def test_clip_cuts_to_the_limit_with_an_ellipsis() -> None:
    assert clip("short", 10) == "short"
    assert clip("exactly10!", 10) == "exactly10!"
    assert clip("a longer name here", 10) == "a longer…"
    assert len(clip("x" * 500, 75)) == 75
    with pytest.raises(ValueError, match="at least 1"):
        clip("x", 0)


def test_clip_lines_keeps_whole_lines_and_says_how_many_were_left_out() -> None:
    lines = [f"line {n:02d}" for n in range(10)]  # 7 characters each
    assert clip_lines(lines, 1000) == "\n".join(lines)
    cut = clip_lines(lines, 40, lambda n: f"…and {n} more")
    assert cut == "line 00\nline 01\nline 02\n…and 7 more"  # a 4th line would pass 40
    assert len(cut) <= 40
    assert clip_lines(lines, 40) == "line 00\nline 01\nline 02\nline 03\nline 04"
    assert clip_lines(lines, 1000, lambda n: f"…and {n} more", most=2) == (
        "line 00\nline 01\n…and 8 more"
    )
    # Not even one line fits: then, and only then, a line is cut.
    assert clip_lines(["x" * 50], 20) == "x" * 19 + "…"


def test_templates_refuse_a_missing_value() -> None:
    with pytest.raises(UndefinedError):
        render("burn")
    assert render("burn", sentence="net burn *$5*") == f"*Burn:* net burn *{Z}$5*{Z}"


def test_a_hostile_vendor_and_customer_in_the_digest_stay_inert() -> None:
    today = date(2026, 3, 2)
    now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    bill = OpenBill(
        "B1",
        "V1",
        NASTY,
        Decimal("1234.56"),
        Decimal("1234.56"),
        today,
        today,
        doc_number="*7*",
        approved_by="U0ANA0001",
    )
    invoice = OpenInvoice(
        "I1",
        "C1",
        "_<@U999>_ & Sons",
        Decimal("50.00"),
        Decimal("50.00"),
        today - timedelta(days=3),
        today - timedelta(days=30),
    )
    books = BooksSnapshot(
        business_id="b",
        today=today,
        tz="America/Los_Angeles",
        currency="USD",
        banks=(BankBalance("A1", "<Main> & Co `chk`", Decimal("90000.00"), now),),
        open_bills=(bill,),
        open_invoices=(invoice,),
        movements=(CashMovement(today, Decimal("-900.00"), MovementKind.PURCHASE),),
        as_of={"Bill": now},
    )
    view = DigestBuilder().build(books, now=now)
    message = digest_message(
        view, business_name="<!channel> & Co", payment_account={view.currency: "<Main> & Co"}
    )
    blocks = {block.get("block_id"): block for block in message.blocks}

    line = blocks["bill:B1"]["text"]
    assert line["verbatim"] is True
    assert line["text"].startswith(
        f'*Tom &amp; Jerry\'s &lt;Café&gt; "Best" @{Z}channel http://x.io* · bill *{Z}7*{Z}\n'
    )
    customer = blocks["invoice:I1"]["text"]["text"].split("\n")[0]
    assert customer == f"*_{Z}&lt;@{Z}U999&gt;_{Z} &amp; Sons*"
    assert "&lt;Main&gt; &amp; Co `\u200bchk`\u200b" in blocks["cash"]["text"]["text"]
    assert message.text.startswith("&lt;!channel&gt; &amp; Co: ")

    # Plain text (the header, the confirm dialog) is shown literally: cut, never entity-escaped.
    assert blocks["header"]["text"] == {
        "type": "plain_text",
        "text": "<!channel> & Co · weekly runway",
        "emoji": False,
    }
    pay: dict[str, Any] = blocks["bill_actions:B1"]["elements"][0]
    assert pay["confirm"]["text"]["text"].startswith(
        'Pay $1,234.56 to Tom & Jerry\'s <Café> "Best" @channel http://x.io from <Main> & Co.'
    )

    # Long names are cut before they are escaped, so an entity is never split.
    long_view = DigestBuilder().build(
        replace(books, open_bills=(replace(bill, vendor_name="&" * 300),)), now=now
    )
    long_line = digest_message(long_view, business_name="L", payment_account=None).blocks
    text = next(b for b in long_line if b.get("block_id") == "bill:B1")["text"]["text"]
    first = text.split("\n")[0]
    assert first == "*" + "&amp;" * 79 + "…* · bill *\u200b7*\u200b"
