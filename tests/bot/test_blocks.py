"""The digest and Oodaloo's other Slack messages as Block Kit.

The seeded company's digest is compared with a reviewed snapshot (on SQLite and PostgreSQL: the
same books give the same message); a company with 500 bills and 500 invoices under long, hostile
names shows the message never leaves Slack's limits.
Every message is built through slack_sdk's Block Kit models, whose validators raise
SlackObjectFormationError when a limit is broken, and is parsed back through them here.

Set OODALOO_UPDATE_SNAPSHOTS=1 to rewrite tests/bot/snapshots/ after a deliberate change, then read
the new file before committing it.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from euro_bills import euro_company
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block, ButtonElement, ConfirmObject, SectionBlock
from sqlalchemy import update

from bot.email import LinkSigner, render_digest_email
from bot.slack.blocks import (
    MAX_BLOCKS,
    MAX_PAGE,
    SlackMessage,
    bills_message,
    digest_message,
    invoices_message,
    notice_message,
    summary_message,
)
from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from qbo_sandbox.config import ManualClock as SandboxClock
from runway.books import (
    BankBalance,
    BooksSnapshot,
    CashMovement,
    MovementKind,
    OpenBill,
    OpenInvoice,
    business_today,
)
from runway.calculator import RunwayStatus, WeeklyFigures
from runway.cash_flow import CashFlowClass
from runway.digest import FINANCING_LEFT_OUT, DigestBuilder, DigestView
from runway.drift import sentence_for
from runway.formatting import format_day, money
from runway.lifecycle import BillState
from runway.models import Business
from runway.snapshot import load_books
from sync.clock import ManualClock
from sync.drift import AmountChanged
from sync_harness import setup_client

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("OODALOO_UPDATE_SNAPSHOTS") == "1"
D = Decimal

#: What Oodaloo itself writes into mrkdwn: user mentions and the three entities.
OUR_MARKUP = re.compile(r"<@[UW][A-Z0-9]+>|&amp;|&lt;|&gt;")


# --- helpers ----------------------------------------------------------------------------------


def pretty(message: SlackMessage) -> str:
    return json.dumps(message.as_kwargs(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def compare_with_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} does not exist: run with OODALOO_UPDATE_SNAPSHOTS=1 to write it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{name} (snapshot)",
                tofile=f"{name} (rendered now)",
            )
        )
        pytest.fail(
            f"the rendered message differs from {path}; if the change is intended, run with "
            f"OODALOO_UPDATE_SNAPSHOTS=1 and review the file:\n{diff}",
            pytrace=False,
        )


def walk(node: Any) -> list[dict[str, Any]]:
    """Every dict in a block tree (blocks, text objects, elements, confirm dialogs)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += walk(value)
    elif isinstance(node, list):
        for value in node:
            found += walk(value)
    return found


def texts(blocks: list[dict[str, Any]], kind: str) -> list[str]:
    return [obj["text"] for obj in walk(blocks) if obj.get("type") == kind and "text" in obj]


def by_id(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {block["block_id"]: block for block in blocks if "block_id" in block}


def assert_within_slack_limits(message: SlackMessage) -> None:
    """Slack's limits, checked again on the JSON, and slack_sdk's own validation of every block."""
    blocks = message.blocks
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in Block.parse_all(blocks):
        block.to_dict()  # runs every validator again (raises SlackObjectFormationError)
    ids = [block["block_id"] for block in blocks if "block_id" in block]
    assert len(ids) == len(set(ids)), "block ids must be unique in a message"
    for obj in walk(blocks):
        if obj.get("type") == "section":
            assert obj["text"]["text"].strip(), f"empty section {obj.get('block_id')}"
            assert len(obj["text"]["text"]) <= 3000
        if obj.get("type") == "button":
            assert len(obj["text"]["text"]) <= 75
            assert len(obj["action_id"]) <= 255
        if obj.get("type") == "actions":
            assert 1 <= len(obj["elements"]) <= 25
        if "block_id" in obj:
            assert len(obj["block_id"]) <= 255
        if obj.get("type") == "button" and "confirm" in obj:
            dialog = obj["confirm"]
            assert len(dialog["title"]["text"]) <= 100
            assert len(dialog["text"]["text"]) <= 300
        if obj.get("type") == "mrkdwn":
            assert obj.get("verbatim") is True, f"mrkdwn must be verbatim: {obj['text'][:80]}"
            assert_inert(obj["text"])


def assert_inert(mrkdwn_text: str) -> None:
    """No `<`, `>` or `&` except Oodaloo's own mentions and entities; no unbroken `@word`."""
    rest = OUR_MARKUP.sub("", mrkdwn_text)
    assert not set("<>&") & set(rest), f"raw control character in mrkdwn: {mrkdwn_text!r}"
    assert not re.search(r"@[A-Za-z]", rest), f"a typed mention survived: {mrkdwn_text!r}"


# --- the seeded company -------------------------------------------------------------------------


async def seeded_view(env: Any) -> tuple[DigestView, str, str]:
    """The seeded company's digest, with a little of Oodaloo's own state on top of QuickBooks:

    a lower approval threshold (so a bill due this week needs two approvers), a cash buffer,
    one bill approved, one approved once of two, one snoozed, last week's figures and a drift
    sentence naming a vendor with `<` and `&`. Everything is done through the real services.
    """
    business_id = "biz-larkspur"
    tz = "America/Los_Angeles"
    now = env.clock.now()
    async with env.db.sessions() as session:
        await session.execute(
            update(Business)
            .where(Business.id == business_id)
            .values(approval_threshold=D("1500.00"), min_cash_buffer=D("20000.00"))
        )
        await session.commit()
    await env.mirror().sync()

    async def build(previous: WeeklyFigures | None = None, drift: tuple[str, ...] = ()) -> Any:
        async with env.uows(business_id) as uow:
            books = await load_books(uow, business_id, business_today(now, tz))
            business = await uow.business.get()
        return (
            books,
            business.name,
            DigestBuilder().build(books, now=now, previous=previous, drift=drift),
        )

    books, _, first = await build()
    due = list(first.bills)
    small = [bill for bill in due if bill.amount <= books.approval_threshold]
    large = [bill for bill in due if bill.amount > books.approval_threshold]
    assert len(small) >= 2 and len(large) >= 2, "the seeded week has small and large bills to pay"
    bills = env.bills()
    ana, ben = "U0ANA0001", "U0BEN0002"
    await bills.approve(small[0].bill_id, ana)  # approved: Pay
    await bills.approve(large[0].bill_id, ana)  # approved once of two: Approve
    await bills.approve(large[1].bill_id, ana)
    await bills.approve(large[1].bill_id, ben)  # approved twice: Pay
    await bills.snooze(small[1].bill_id, now + timedelta(days=3), ana)

    assert first.runway.days is not None
    last_week = replace(
        first.figures_to_keep, on=first.today - timedelta(days=7), runway_days=first.runway.days + 6
    )
    drift = sentence_for(
        AmountChanged(
            "Bill", "9001", D("1250.00"), D("1203.68"), "Bits <& Bytes> LLC", "BIT-17", "USD"
        )
    )
    books, business_name, view = await build(previous=last_week, drift=(drift,))
    payment_account = view.cash.banks[0].name
    return view, business_name, payment_account


async def test_seeded_digest_matches_the_reviewed_snapshot(seeded_business: Any) -> None:
    view, business_name, payment_account = await seeded_view(seeded_business)
    message = digest_message(
        view, business_name=business_name, payment_account={view.currency: payment_account}
    )

    assert_within_slack_limits(message)
    blocks = by_id(message.blocks)
    # The figures are the view's, formatted: cash and each bank, burn, the headline with its trend.
    cash = blocks["cash"]["text"]["text"]
    assert money(view.cash.total, view.currency) in cash
    for bank in view.cash.banks:
        assert f"{bank.name}: {money(bank.balance, view.currency)}" in cash
    assert view.burn.sentence in cash
    assert view.runway.days_change == -6
    assert f"*{view.headline}*" in blocks["headline"]["text"]["text"]
    assert "(−6 since last week)" in view.headline
    assert view.runway.buffer_sentence in blocks["headline"]["text"]["text"]
    assert blocks["freshness"]["elements"][0]["text"] == "QuickBooks data as of 9:02 AM PST"

    # Overdue bills, then bills due this week, each part under its own title with its count and
    # total; every bill with its amount and its own buttons, in the view's order.
    assert view.overdue_bills.total and view.bills_due.total
    listed = [key.split(":", 1)[1] for key in blocks if key.startswith("bill:")]
    assert listed == [bill.bill_id for bill in view.bills]
    order = [block["block_id"] for block in message.blocks if "block_id" in block]
    first_due = view.bills_due.items[0].bill_id
    assert (
        order.index("overdue_bills")
        < order.index(f"bill:{view.overdue_bills.items[0].bill_id}")
        < order.index("bills")
        < order.index(f"bill:{first_due}")
    )
    for block_id, part, title in (
        ("overdue_bills", view.overdue_bills, "*Overdue bills*"),
        ("bills", view.bills_due, "*Bills due in the next 7 days*"),
    ):
        heading = blocks[block_id]["text"]["text"].split("\n")[0]
        # Nothing is paid yet: every bill of the part is left ("N for $x").
        assert heading == f"{title} · {part.total} for {money(part.left_amount, view.currency)}"
    snoozed_in = "overdue_bills" if view.overdue_bills.snoozed else "bills"
    assert (
        view.snoozed_bills == 1
        and "1 snoozed bill is not listed" in blocks[snoozed_in]["text"]["text"]
    )
    for bill in view.bills:
        line = blocks[f"bill:{bill.bill_id}"]["text"]["text"]
        assert f"*{money(bill.amount, view.currency)}*" in line
        assert bill.runway_impact in line
        actions = [e["action_id"] for e in blocks[f"bill_actions:{bill.bill_id}"]["elements"]]
        if bill.state is BillState.APPROVED:
            assert actions == ["bill_pay", "bill_snooze"]
            pay = blocks[f"bill_actions:{bill.bill_id}"]["elements"][0]
            # The button carries the amount its dialog names: a click pays exactly that.
            assert pay["style"] == "primary" and pay["value"] == f"{bill.bill_id}|{bill.amount}"
            before = view.runway.days
            assert before is not None and bill.runway_impact_days is not None
            assert pay["confirm"]["text"]["text"] == (
                f"Pay {money(bill.amount, view.currency)} to {bill.vendor_name} from {payment_account}. "
                f"Runway goes from {before} to {before + bill.runway_impact_days} days."
            )
        else:
            assert actions == ["bill_approve", "bill_snooze"]
    states = {bill.state for bill in view.bills}
    assert {BillState.APPROVED, BillState.NEEDS_SECOND_APPROVAL} <= states
    assert "<@U0ANA0001>; needs a second, different approver" in json.dumps(message.blocks)

    # Invoices: the first eight, then "…and N more" with a button that opens the whole list.
    shown = [key for key in blocks if key.startswith("invoice:")]
    assert len(shown) == 8
    more = view.overdue_invoices.total - 8
    assert blocks["invoice_more"]["text"]["text"] == f"…and {more} more overdue invoices."
    assert blocks["invoice_more"]["accessory"]["action_id"] == "show_more_invoices"
    assert blocks["invoice_more"]["accessory"]["value"] == "0"

    # The drift sentence keeps the vendor's name, escaped; the raw name appears nowhere in mrkdwn.
    assert "Bits &lt;&amp; Bytes&gt; LLC" in blocks["drift"]["text"]["text"]
    assert "Bits <& Bytes>" not in "".join(texts(message.blocks, "mrkdwn"))
    assert message.text.startswith("Larkspur &amp; Pine Coffee Roasters: Runway: ")

    compare_with_snapshot("digest_seeded.json", pretty(message))


async def test_seeded_summary_and_lists(seeded_business: Any) -> None:
    view, business_name, payment_account = await seeded_view(seeded_business)
    summary = summary_message(view, business_name=business_name)
    assert_within_slack_limits(summary)
    counts = by_id(summary.blocks)["counts"]["text"]["text"]
    overdue, due = view.overdue_bills, view.bills_due
    # Each part counts the bills left to pay (the snoozed one is not listed, so not counted).
    assert (
        f"*Overdue bills:* {len(overdue.left)} for {money(overdue.left_amount, view.currency)}"
        in counts
    )
    assert (
        f"*Bills due in the next 7 days:* {len(due.left)} for {money(due.left_amount, view.currency)}"
        in counts
    )
    assert f"{len(overdue.left)} overdue bills · {len(due.left)} bills due" in summary.text
    assert f"*Invoices overdue:* {view.overdue_invoices.total} for " in counts
    assert not [
        e for e in walk(summary.blocks) if e.get("action_id", "").startswith(("bill_", "invoice_"))
    ]

    # The invoice list, page after page through its own "Next" button, shows each invoice once.
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = invoices_message(view, business_name=business_name, offset=offset)
        assert_within_slack_limits(page)
        page_ids = by_id(page.blocks)
        seen += [key.split(":", 1)[1] for key in page_ids if key.startswith("invoice:")]
        following = page_ids.get("invoice_next")
        offset = None if following is None else int(following["elements"][0]["value"])
    assert seen == [invoice.invoice_id for invoice in view.overdue_invoices.items]

    bills = bills_message(
        view, business_name=business_name, payment_account={view.currency: payment_account}
    )
    assert_within_slack_limits(bills)
    listed = by_id(bills.blocks)
    assert "bill_next" not in listed  # fewer than a page
    assert listed["overdue_bill_page"]["text"]["text"] == (
        f"*Overdue bills* · 1–{overdue.total} of {overdue.total}"
    )
    assert listed["due_soon_bill_page"]["text"]["text"] == (
        f"*Bills due in the next 7 days* · 1–{due.total} of {due.total}"
    )
    assert [key.split(":", 1)[1] for key in listed if key.startswith("bill:")] == [
        bill.bill_id for bill in view.bills
    ]


# --- a company far too big for one message ------------------------------------------------------

HOSTILE = 'Tom & Jerry\'s <Café> "Best" @channel <!here> *bold*_ `code` ~x~ http://x.io '
TODAY = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 17, 2, tzinfo=UTC)


def huge_company(bills: int = 500, invoices: int = 500) -> BooksSnapshot:
    """Bills due this week and overdue invoices with 200-character hostile names, some bills
    approved, one being paid; 60 bank accounts; enough history for a runway in days."""
    long_name = (HOSTILE * 4)[:200]
    open_bills = []
    for n in range(bills):
        approvals: dict[str, Any] = {}
        if n % 3 == 1:
            approvals = {"approved_by": "U0ANA0001"}
        elif n % 3 == 2:
            approvals = {"approved_by": "U0ANA0001", "second_approved_by": "U0BEN0002"}
        open_bills.append(
            OpenBill(
                id=f"B{n}",
                vendor_id=f"V{n}",
                vendor_name=f"{n} {long_name}"[:200],
                amount=D("7000.00") + n,
                balance=D("7000.00") + n,
                due_date=TODAY + timedelta(days=n % 8 - 1),
                txn_date=TODAY - timedelta(days=20),
                doc_number=f"<@U999>&{n}" * 3,
                # Near the top of the list (due first, largest): being paid.
                payment_in_flight=n == 496,
                payment_state="paying" if n == 496 else None,
                payment_amount=D("7000.00") + n if n == 496 else None,
                payment_by="U0ANA0001" if n == 496 else None,
                **approvals,
            )
        )
    open_invoices = [
        OpenInvoice(
            id=f"I{n}",
            customer_id=f"C{n}",
            customer_name=f"{n} {long_name}"[:200],
            amount=D("1500.00"),
            balance=D("1500.00"),
            due_date=TODAY - timedelta(days=1 + n % 90),
            txn_date=TODAY - timedelta(days=120),
            doc_number=f"INV-{n}",
            reminders_sent=n % 3,
            last_reminder_at=NOW - timedelta(days=2) if n % 3 else None,
        )
        for n in range(invoices)
    ]
    banks = tuple(
        BankBalance(f"A{n}", f"{long_name} {n}", D("100000.00"), NOW - timedelta(days=1))
        for n in range(60)
    )
    movements = tuple(
        CashMovement(TODAY - timedelta(days=d), D("-2000.00"), MovementKind.PURCHASE)
        for d in range(1, 90)
    )
    return BooksSnapshot(
        business_id="biz-huge",
        today=TODAY,
        tz="America/New_York",
        currency="USD",
        banks=banks,
        open_bills=tuple(open_bills),
        open_invoices=tuple(open_invoices),
        movements=movements,
        as_of={"Bill": NOW - timedelta(hours=30), "Invoice": NOW},
    )


def huge_view() -> DigestView:
    drift = tuple(f"Bill {n} from {HOSTILE * 3} changed in QuickBooks" for n in range(300))
    return DigestBuilder().build(huge_company(), now=NOW, drift=drift)


@pytest.mark.parametrize(("max_bills", "max_invoices"), [(8, 8), (1000, 1000), (0, 0), (50, 3)])
def test_a_huge_company_stays_within_slack_limits(max_bills: int, max_invoices: int) -> None:
    view = huge_view()
    # One bill in eight is a day overdue (n % 8 == 0): 63 overdue, 437 due this week.
    assert (view.overdue_bills.total, view.bills_due.total) == (63, 437)
    assert view.overdue_invoices.total == 500
    assert view.approvals.total > 100
    message = digest_message(
        view,
        business_name="Larkspur & Pine " * 20,
        payment_account={view.currency: "Operating <Checking> & " * 5},
        max_bills=max_bills,
        max_invoices=max_invoices,
    )
    assert_within_slack_limits(message)
    blocks = by_id(message.blocks)
    overdue_ids = {f"bill:{bill.bill_id}" for bill in view.overdue_bills.items}
    shown_overdue = sum(key in overdue_ids for key in blocks)
    shown_due = sum(key.startswith("bill:") for key in blocks) - shown_overdue
    shown_invoices = sum(key.startswith("invoice:") for key in blocks)
    assert shown_overdue <= max_bills and shown_due <= max_bills
    assert shown_invoices <= max_invoices
    overdue_more = blocks["overdue_bill_more"]
    assert overdue_more["text"]["text"] == f"…and {63 - shown_overdue} more overdue bills."
    assert blocks["bill_more"]["text"]["text"] == f"…and {437 - shown_due} more bills due."
    # "Show all" opens the paged list at the first bill of its part.
    assert overdue_more["accessory"]["value"] == "0"
    assert blocks["bill_more"]["accessory"]["value"] == "63"
    assert (
        blocks["invoice_more"]["text"]["text"]
        == f"…and {500 - shown_invoices} more overdue invoices."
    )
    if max_bills >= 8 and max_invoices >= 8:
        # All three lists get their share of the 50 blocks.
        assert min(shown_overdue, shown_due) >= 5 and shown_invoices >= 5
    # Long lists inside one section end in "…and N more" instead of passing 3000 characters.
    for block_id, what in (("cash", "accounts"), ("approvals", "bills"), ("drift", "differences")):
        text = blocks[block_id]["text"]["text"]
        listed = sum(line.startswith("• ") for line in text.split("\n"))
        left = {"cash": 60, "approvals": view.approvals.total, "drift": 300}[block_id] - listed
        assert f"\n…and {left} more {what}" in text, block_id
        assert block_id == "cash" or listed == 5, "waiting approvals and drift stay short"


def test_many_foreign_banks_financing_and_undeposited_funds_fit_one_section() -> None:
    """60 hostile-named accounts in pounds with no rate yet, money waiting to be deposited, and
    every kind of financing: the cash section cuts the accounts with "…and N more accounts" and
    keeps the undeposited line, the burn and the financing whole, inside 3000 characters."""
    books = huge_company(bills=3, invoices=0)
    banks = tuple(replace(bank, currency="GBP", exchange_rate=None) for bank in books.banks)
    financing = tuple(
        CashMovement(
            TODAY - timedelta(days=3),
            D(amount),
            MovementKind.DEPOSIT,
            flow=CashFlowClass.FINANCING,
            counter_account_type=counter,
        )
        for amount, counter in (
            ("10000.00", "Equity"),
            ("-2000.00", "Equity"),
            ("30000.00", "Long Term Liability"),
            ("-940.09", "Long Term Liability"),
        )
    )
    books = replace(
        books,
        banks=(BankBalance("1", "Checking", D("50000.00"), NOW), *banks),
        undeposited=(BankBalance("4", "Undeposited Funds", D("800.00"), NOW),),
        movements=(*books.movements, *financing),
    )
    view = DigestBuilder().build(books, now=NOW)
    assert view.cash.total == D("50000.00")  # the pounds are not counted one to one
    for message in (
        digest_message(view, business_name="L", payment_account=None),
        summary_message(view, business_name="L"),
    ):
        assert_within_slack_limits(message)
        cash = by_id(message.blocks)["cash"]["text"]["text"]
        assert_inert(cash)
        lines = cash.split("\n")
        assert lines[1] == "• Checking: $50,000.00"
        assert lines[2].endswith(": no GBP rate from QuickBooks yet, not counted")
        listed = sum(line.startswith("• ") for line in lines)
        assert f"…and {61 - listed} more accounts" in lines
        assert lines[-4:] == [
            "_$800.00 received, not yet deposited (not in the cash above)_",
            f"*Burn:* {view.burn.sentence}",
            "*Financing:* Owner put in $10,000.00; owner took out $2,000.00; loans brought in "
            "$30,000.00; loans repaid $940.09 over the last 90 days",
            f"_{FINANCING_LEFT_OUT}_",
        ]


def test_item_buttons_follow_the_approval_state_and_cut_long_names() -> None:
    view = huge_view()
    message = bills_message(
        view,
        business_name="Larkspur",
        payment_account={view.currency: "Checking"},
        offset=0,
        page=MAX_PAGE,
    )
    assert_within_slack_limits(message)
    blocks = by_id(message.blocks)
    for bill in view.bills[:MAX_PAGE]:
        line = blocks[f"bill:{bill.bill_id}"]["text"]["text"]
        assert "…" in line.split("\n")[0], "a 200-character name is shortened"
        if bill.state is BillState.PAYING:
            # No button applies while it is being paid; the main line says so.
            assert f"bill_actions:{bill.bill_id}" not in blocks
            assert f"Paying {money(bill.amount, view.currency)}" in line and "<@U0ANA0001>" in line
            continue
        actions = [e["action_id"] for e in blocks[f"bill_actions:{bill.bill_id}"]["elements"]]
        expected = {
            BillState.NEEDS_APPROVAL: ["bill_approve", "bill_snooze"],
            BillState.NEEDS_SECOND_APPROVAL: ["bill_approve", "bill_snooze"],
            BillState.APPROVED: ["bill_pay", "bill_snooze"],
        }[bill.state]
        assert actions == expected
        if bill.state is BillState.APPROVED:
            pay = blocks[f"bill_actions:{bill.bill_id}"]["elements"][0]
            # Plain text: the vendor as typed (cut), the account, the runway before and after.
            dialog = pay["confirm"]["text"]["text"]
            assert dialog.startswith(
                f"Pay {money(bill.amount, view.currency)} to {bill.vendor_name[:40]}"
            )
            assert "from Checking. Runway goes from" in dialog
            assert pay["confirm"]["title"]["text"].endswith("…?")
    assert any(b.state is BillState.PAYING for b in view.bills[:MAX_PAGE])


def test_bill_pages_walk_the_whole_list_through_next() -> None:
    view = huge_view()
    seen: list[str] = []
    offset: int | None = 0
    pages = 0
    while offset is not None:
        message = bills_message(
            view, business_name="Larkspur", payment_account=None, offset=offset, page=15
        )
        assert_within_slack_limits(message)
        blocks = by_id(message.blocks)
        seen += [key.split(":", 1)[1] for key in blocks if key.startswith("bill:")]
        titles = {
            key: block["text"]["text"] for key, block in blocks.items() if key.endswith("_page")
        }
        # Each part on the page has its title, numbered within the part; the page crossing from
        # overdue bills (63) to bills due (437) has both.
        if offset == 60:
            assert titles == {
                "overdue_bill_page": "*Overdue bills* · 61–63 of 63",
                "due_soon_bill_page": "*Bills due in the next 7 days* · 1–12 of 437",
            }
            assert message.text == (
                "Overdue bills · 61–63 of 63 · Bills due in the next 7 days · 1–12 of 437"
            )
        elif offset == 75:
            assert titles == {"due_soon_bill_page": "*Bills due in the next 7 days* · 13–27 of 437"}
        following = blocks.get("bill_next")
        if following is not None:
            button = following["elements"][0]
            assert button["action_id"] == "show_more_bills"
            assert button["text"]["text"] == f"Next {min(15, 500 - int(button['value']))}"
        offset = None if following is None else int(following["elements"][0]["value"])
        pages += 1
    assert pages == 34
    assert seen == [bill.bill_id for bill in view.bills]
    # A page larger than a message can hold is made smaller, never too big.
    assert_within_slack_limits(
        bills_message(view, business_name="L", payment_account=None, page=500)
    )
    past_the_end = bills_message(view, business_name="L", payment_account=None, offset=900)
    assert_within_slack_limits(past_the_end)
    assert "That is all of them." in json.dumps(past_the_end.blocks)


def test_slack_sdk_validation_is_what_guards_the_limits() -> None:
    """The check the builders rely on is live: slack_sdk refuses what Slack would refuse."""
    with pytest.raises(SlackObjectFormationError):
        ButtonElement(text="x" * 76, action_id="a", value="1").to_dict()
    with pytest.raises(SlackObjectFormationError):
        SectionBlock(text="x" * 3001).to_dict()
    with pytest.raises(SlackObjectFormationError):
        ConfirmObject(title="t", text="x" * 301).to_dict()


# --- the other messages ------------------------------------------------------------------------


def small_view(**changes: Any) -> DigestView:
    books = huge_company(bills=3, invoices=2)
    books = replace(books, banks=books.banks[:2], **changes)
    return DigestBuilder().build(books, now=NOW)


def test_freshness_names_the_day_when_the_data_is_not_from_today() -> None:
    view = small_view()  # the oldest as-of is 30 hours ago: yesterday in New York
    text = by_id(digest_message(view, business_name="L", payment_account=None).blocks)
    assert text["freshness"]["elements"][0]["text"] == (
        "QuickBooks data as of Sun 1 Mar, 6:02 AM EST"
    )
    empty = DigestBuilder().build(
        replace(huge_company(0, 0), banks=(), movements=(), as_of={}), now=NOW
    )
    message = digest_message(empty, business_name="L", payment_account=None)
    assert_within_slack_limits(message)
    blocks = by_id(message.blocks)
    assert "No QuickBooks data synced yet" in blocks["freshness"]["elements"][0]["text"]
    assert blocks["bills"]["text"]["text"] == "*Bills due in the next 7 days*\nNothing due."
    assert "bill_more" not in blocks and "approvals" not in blocks and "drift" not in blocks


def test_a_part_whose_bills_are_all_paid_since_says_so() -> None:
    """Drawn again after its only overdue bill was paid, the digest keeps that card under
    "Overdue bills" and says the part is taken care of; the other part is unchanged."""
    books = huge_company(bills=2, invoices=0)  # B0 a day overdue, B1 due today
    overdue, due = books.open_bills
    paid = replace(overdue, balance=D("0.00"), payment_state="paid", payment_by="U0ANA0001")
    view = DigestBuilder().build(replace(books, open_bills=(due,), shown_bills=(paid,)), now=NOW)
    message = digest_message(view, business_name="L", payment_account=None)
    assert_within_slack_limits(message)
    blocks = by_id(message.blocks)
    assert blocks["overdue_bills"]["text"]["text"] == "*Overdue bills* · all 1 taken care of"
    assert blocks["bills"]["text"]["text"] == "*Bills due in the next 7 days* · 1 for $7,001.00"
    order = [block["block_id"] for block in message.blocks if "block_id" in block]
    assert order.index("overdue_bills") < order.index("bill:B0") < order.index("bills")
    assert "Paid" in blocks["bill:B0"]["text"]["text"]
    assert message.text.endswith("· 1 bill due")


def test_pay_confirm_without_a_runway_in_days_says_the_impact() -> None:
    inflow = CashMovement(TODAY, D("900000.00"), MovementKind.DEPOSIT)
    books = huge_company(bills=3, invoices=0)
    view = DigestBuilder().build(replace(books, movements=(*books.movements, inflow)), now=NOW)
    assert view.runway.status is RunwayStatus.CASH_FLOW_POSITIVE
    message = digest_message(view, business_name="L", payment_account=None)
    dialogs = [
        e["confirm"]["text"]["text"]
        for e in walk(message.blocks)
        if e.get("action_id") == "bill_pay"
    ]
    assert dialogs and all(d.endswith(". No change in runway days.") for d in dialogs)
    assert all(" from " not in d for d in dialogs), 'no payment account named: no "from …"'


def test_notices_carry_their_buttons() -> None:
    drift = notice_message(
        "*QuickBooks changed:* Bill 12 from Tom &amp; Jerry's",
        buttons=(
            ("Re-sync", "drift_resync", "41", "primary"),
            ("Dismiss", "drift_dismiss", "41", None),
        ),
    )
    assert_within_slack_limits(drift)
    actions = by_id(drift.blocks)["notice_actions"]["elements"]
    assert [(a["action_id"], a["value"], a.get("style")) for a in actions] == [
        ("drift_resync", "41", "primary"),
        ("drift_dismiss", "41", None),
    ]
    reconnect = notice_message(
        "QuickBooks is disconnected.", buttons=(("Reconnect", "qbo_reconnect", "biz-1", None),)
    )
    assert_within_slack_limits(reconnect)
    assert reconnect.text == "QuickBooks is disconnected."
    assert len(notice_message("Just words").blocks) == 1
    with pytest.raises(ValueError, match="at most 2000"):
        notice_message("x", buttons=(("Go", "a", "v" * 2001, None),))


# --- financing, undeposited funds and foreign-currency banks ------------------------------------

#: An owner's equity account and a loan account named with text mrkdwn and HTML must escape.
OWNER_EQUITY = "Owner's <Investment> & Capital"
LOAN = "Bay <Bank> & Co loan"
PETTY_CASH = "Petty <Cash> & Co"


async def books_with_financing_and_foreign_banks(env: Any) -> DigestView:
    """The seeded company with, written through QuickBooks' API over the burn's window: the owner
    putting in $10,000.00 and €5,000.00 (at 1.10: $5,500.00, into a euro account), a loan of
    $20,000.00 of which $1,200.00 is repaid, and £1,000.00 in a sterling account (`PETTY_CASH`)
    QuickBooks has no GBP rate for; then its digest, from Oodaloo's mirror."""
    today = business_today(env.clock.now(), "America/Los_Angeles")
    company = await euro_company(env.sandbox, today, (D("1000.00"),))
    async with setup_client(env.sandbox) as client:

        async def write(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            return await client.create(entity, body, request_id=f"setup-{uuid.uuid4().hex[:16]}")

        equity = await write("Account", {"Name": OWNER_EQUITY, "AccountType": "Equity"})
        loan = await write("Account", {"Name": LOAN, "AccountType": "Long Term Liability"})
        petty = await write(
            "Account",
            {"Name": PETTY_CASH, "AccountType": "Bank", "CurrencyRef": {"value": "GBP"}},
        )

        def deposit(to: str, amount: str, counter: str, **currency: str) -> dict[str, Any]:
            return {
                "TxnDate": (today - timedelta(days=10)).isoformat(),
                "DepositToAccountRef": {"value": to},
                **currency,  # type: ignore[dict-item]
                "Line": [
                    {
                        "Amount": amount,
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": {"value": counter}},
                    }
                ],
            }

        await write("Deposit", deposit(company.checking, "10000.00", equity["Id"]))
        await write("Deposit", deposit(company.checking, "20000.00", loan["Id"]))
        assert company.euro_bank is not None
        await write(
            "Deposit",
            {
                **deposit(company.euro_bank, "5000.00", equity["Id"]),
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": "1.10",
            },
        )
        await write(
            "Deposit",
            {
                **deposit(petty["Id"], "1000.00", equity["Id"]),
                "CurrencyRef": {"value": "GBP"},
                "ExchangeRate": "1.27",
            },
        )
        await write(
            "Purchase",
            {
                "TxnDate": (today - timedelta(days=5)).isoformat(),
                "AccountRef": {"value": company.checking},
                "PaymentType": "Check",
                "Line": [
                    {
                        "Amount": "1200.00",
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": loan["Id"]}},
                    }
                ],
            },
        )
    await env.mirror().sync()
    async with env.uows("biz-larkspur") as uow:
        books = await load_books(uow, "biz-larkspur", today)
    return DigestBuilder().build(books, now=env.clock.now())


async def test_financing_undeposited_funds_and_foreign_banks_are_shown_apart(
    seeded_business: Any,
) -> None:
    """Worked by hand: the owner put in $10,000.00 + €5,000.00 × 1.10 + £1,000.00 × 1.27 (the
    deposit's own rate) = $16,770.00; loans brought in $20,000.00 and $1,200.00 was repaid; none
    of it is burn. The euro account counts $5,500.00 in the cash; the sterling one is named and
    left out; Undeposited Funds is QuickBooks' balance of that account, shown apart."""
    env = seeded_business
    view = await books_with_financing_and_foreign_banks(env)
    realm = env.sandbox.realm()
    accounts = list(realm.iter("Account"))
    dollars = sum(
        (
            D(str(a["CurrentBalance"]))
            for a in accounts
            if a["AccountType"] == "Bank" and a.get("CurrencyRef", {}).get("value", "USD") == "USD"
        ),
        D("0"),
    )
    [undeposited] = [
        D(str(a["CurrentBalance"]))
        for a in accounts
        if a.get("AccountSubType") == "UndepositedFunds"
    ]
    assert undeposited > 0, "the seeded week has checks waiting for the Friday bank run"
    assert view.cash.total == dollars + D("5500.00")
    assert view.financing.sentences == (
        "Owner put in $16,770.00 over the last 90 days",
        "Loans brought in $20,000.00 over the last 90 days",
        "Loans repaid $1,200.00 over the last 90 days",
    )
    waiting = f"{money(undeposited, 'USD')} received, not yet deposited"
    assert view.cash.undeposited_sentence == waiting

    for message in (
        digest_message(view, business_name="Larkspur", payment_account=None),
        summary_message(view, business_name="Larkspur"),  # /runway
    ):
        assert_within_slack_limits(message)
        cash = by_id(message.blocks)["cash"]["text"]["text"]
        assert_inert(cash)
        lines = cash.split("\n")
        assert lines[0] == f"*Cash:* {money(view.cash.total, 'USD')} in the bank"
        assert "• Euro account: €5,000.00 ($5,500.00)" in lines
        assert (
            "• Petty &lt;Cash&gt; &amp; Co £1,000.00: no GBP rate from QuickBooks yet, not counted"
            in lines
        )
        assert f"_{waiting} (not in the cash above)_" in lines
        burn = lines.index(f"*Burn:* {view.burn.sentence}")
        assert lines[burn + 1] == (
            "*Financing:* Owner put in $16,770.00; loans brought in $20,000.00; loans repaid "
            "$1,200.00 over the last 90 days"
        )
        assert lines[burn + 2] == f"_{FINANCING_LEFT_OUT}_"

    email = render_digest_email(
        view,
        business_name="Larkspur",
        links=LinkSigner(b"k" * 32, env.clock, public_url="https://oodaloo.example.com"),
        recipient="owner@larkspur.example",
    )
    assert "Euro account: €5,000.00 ($5,500.00)" in email.html
    assert (
        "Petty &lt;Cash&gt; &amp; Co £1,000.00: no GBP rate from QuickBooks yet, not counted"
        in email.html
    )
    assert "Petty <Cash> & Co" in email.text and "Petty <Cash>" not in email.html
    assert "£1,000.00  (no GBP rate from QuickBooks yet, not counted)" in email.text
    assert "€5,000.00 ($5,500.00)" in email.text
    for part in (email.text, email.html):
        assert f"{waiting} (not in cash on hand)" in part
        for sentence in view.financing.sentences:
            assert sentence in part
        assert FINANCING_LEFT_OUT in part


def test_break_even_is_worded_as_such_on_every_surface() -> None:
    """$30,000.00 out and $30,000.00 in over 90 days: break-even. Paying the approved $1,000.00
    bill starts a count: $49,000.00 × 90 / $1,000.00 = 4410 days. The digest, `/runway`, the
    bill's card and Pay dialog and the email say so, never "cash-flow positive" nor "no change"."""
    books = BooksSnapshot(
        business_id="biz-even",
        today=TODAY,
        tz="America/New_York",
        currency="USD",
        banks=(BankBalance("1", "Checking", D("50000.00"), NOW),),
        open_bills=(
            OpenBill(
                id="B1",
                vendor_id="V1",
                vendor_name="Flour & Co",
                amount=D("1000.00"),
                balance=D("1000.00"),
                due_date=TODAY + timedelta(days=2),
                txn_date=TODAY - timedelta(days=20),
                approved_by="U0ANA0001",
            ),
        ),
        movements=(
            CashMovement(TODAY - timedelta(days=10), D("-30000.00"), MovementKind.PURCHASE),
            CashMovement(TODAY - timedelta(days=5), D("30000.00"), MovementKind.DEPOSIT),
        ),
        as_of={"Bill": NOW},
    )
    last_week = WeeklyFigures(TODAY - timedelta(days=7), RunwayStatus.DAYS, 306, D("51000"), D("0"))
    view = DigestBuilder().build(books, now=NOW, previous=last_week)
    assert view.runway.status is RunwayStatus.BREAK_EVEN

    even = "Break-even over the last 90 days: as much came in as went out"
    digest = digest_message(view, business_name="Harbor", payment_account={"USD": "Checking"})
    summary = summary_message(view, business_name="Harbor")
    for message in (digest, summary):
        assert_within_slack_limits(message)
        blocks = by_id(message.blocks)
        assert blocks["headline"]["text"]["text"] == f"*{even}*\nWas 306 days on Mon 23 Feb"
        assert (
            "*Burn:* break-even over the last 90 days: $30,000.00 in and out"
            in (blocks["cash"]["text"]["text"])
        )
        assert message.text.startswith(f"Harbor: {even}")
        assert "positive" not in json.dumps(message.as_kwargs()).lower()
    card = by_id(digest.blocks)["bill:B1"]["text"]["text"]
    assert card.endswith("Approved by <@U0ANA0001>, ready to pay · runway after paying: 4410 days")
    [pay] = [e for e in walk(digest.blocks) if e.get("action_id") == "bill_pay"]
    assert pay["confirm"]["text"]["text"] == (
        "Pay $1,000.00 to Flour & Co from Checking. Runway after paying: 4410 days."
    )

    email = render_digest_email(
        view,
        business_name="Harbor",
        links=LinkSigner(b"k" * 32, ManualClock(NOW), public_url="https://oodaloo.example.com"),
        recipient="owner@harbor.example",
    )
    assert email.subject == f"{even} · Harbor · {format_day(view.today)}"
    for part in (email.text, email.html):
        assert even in part and "was 306 days on Mon 23 Feb" in part
        assert "approved, ready to pay · runway after paying: 4410 days" in part
        assert "positive" not in part.lower()


def _report_lines(rows: dict[str, Any], found: dict[str, Decimal]) -> dict[str, Decimal]:
    """Each line of a QuickBooks report (by its name) and each group's summary (by group)."""
    for row in rows.get("Row", []):
        if "Rows" in row:
            _report_lines(row["Rows"], found)
        data = row.get("ColData")
        if data and data[1].get("value"):
            found[str(data[0]["value"])] = D(str(data[1]["value"]))
        summary = (row.get("Summary") or {}).get("ColData")
        if summary and row.get("group"):
            found[str(row["group"])] = D(str(summary[1]["value"]))
    return found


class TestTheCompanyWithFullBooks:
    """The seeded company with everything a real one records (`SandboxConfig(full_books=True)`):
    monthly owner's draws by journal entry, loan repayments, checks in Undeposited Funds."""

    @pytest.fixture
    def pinned_sandbox(self) -> Sandbox:
        return create_app(
            SandboxConfig(
                seed=DEFAULT_SEED, full_books=True, clock=SandboxClock(start=NOW, frozen=True)
            )
        )

    async def test_its_financing_is_quickbooks_own_and_shown_beside_burn(
        self, seeded_business: Any
    ) -> None:
        env = seeded_business
        await env.mirror().sync()
        today = business_today(NOW, "America/Los_Angeles")
        async with env.uows("biz-larkspur") as uow:
            books = await load_books(uow, "biz-larkspur", today)
        view = DigestBuilder().build(books, now=NOW)
        async with env.sandbox.http_client() as client:
            response = await client.get(
                env.sandbox.v3_path("reports/CashFlow"),
                params={
                    "start_date": view.burn.window_start.isoformat(),
                    "end_date": today.isoformat(),
                },
            )
        assert response.status_code == 200, response.text
        statement = _report_lines(response.json()["Rows"], {})

        # QuickBooks' own statement for the same 90 days (Dec 3 to Mar 2): the owner's draws of
        # $2,000.00 on Dec 15, Jan 15 and Feb 15, and the loan's principal repaid.
        financing = view.financing
        assert financing.owner_out == -statement["Owner's Draw"] == D("6000.00")
        assert financing.loans_repaid - financing.loans_in == -statement["Bay Community Bank Loan"]
        assert financing.owner_in == statement.get("Owner's Investment", D("0.00"))
        assert financing.net == statement["FinancingActivities"]
        assert financing.sentence == (
            "Owner took out $6,000.00; loans repaid "
            f"{money(financing.loans_repaid, 'USD')} over the last 90 days"
        )

        for message in (
            digest_message(view, business_name="Larkspur", payment_account=None),
            summary_message(view, business_name="Larkspur"),
        ):
            assert_within_slack_limits(message)
            lines = by_id(message.blocks)["cash"]["text"]["text"].split("\n")
            burn = lines.index(f"*Burn:* {view.burn.sentence}")
            assert lines[burn + 1 :] == [
                f"*Financing:* {financing.sentence}",
                f"_{FINANCING_LEFT_OUT}_",
            ]
        email = render_digest_email(
            view,
            business_name="Larkspur",
            links=LinkSigner(b"k" * 32, ManualClock(NOW), public_url="https://oodaloo.example.com"),
            recipient="owner@larkspur.example",
        )
        for part in (email.text, email.html):
            assert all(sentence in part for sentence in financing.sentences)
            assert FINANCING_LEFT_OUT in part
