"""The digest email of the sandbox's seeded company, received by a real local SMTP server (aiosmtpd):
both parts, the subject, QuickBooks names escaped in HTML, amounts as QuickBooks holds them, signed
links for the recipient, List-Unsubscribe. Then sending itself: 4xx replies retried, 5xx never,
credentials from SMTP_URL."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest_email import (
    BUSINESS,
    Logins,
    MailHandler,
    MailServer,
    all_parts,
    bills_due_in_two_days,
    contains_all,
    digest_of,
    free_port,
    mail_server,
    migrated_fixture,
    runway_env,
    set_business,
    start_mail_server,
)
from test_calculator import hand_company

from bot.email import (
    ActionKind,
    EmailNotSent,
    EmailSender,
    LinkSigner,
    RenderedEmail,
    SmtpServer,
    render_digest_email,
)
from runway.digest import DigestBuilder
from runway.formatting import format_day, format_moment, money
from sync.clock import ManualClock
from sync_harness import stored

__all__ = ["mail_server", "migrated_fixture", "runway_env"]  # fixtures, imported for pytest

PUBLIC_URL = "https://oodaloo.example.com"
OWNER, PARTNER = "owner@larkspur.example", "partner@larkspur.example"
BUSINESS_NAME = 'Larkspur & "Sons" <Bakery>'
HREF = re.compile(r'href="([^"]+)"')


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite is enough here: the database only holds the mirror the digest is built from."""
    return f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"


def signer(now: datetime | None = None) -> LinkSigner:
    return LinkSigner(
        secrets.token_bytes(32), ManualClock(now or datetime.now(UTC)), public_url=PUBLIC_URL
    )


async def test_the_seeded_company_digest_arrives_complete_escaped_and_linked(
    runway_env: object, mail_server: MailServer
) -> None:
    env = runway_env
    tricky, quoted = "Bits <& Bytes> LLC", "O'Brien Equipment Repair"
    new_bills = await bills_due_in_two_days(env, [tricky, quoted])
    await set_business(env, name=BUSINESS_NAME)
    view = await digest_of(env)
    links = signer()
    sender = EmailSender(
        mail_server.url, links=links, sender="Oodaloo <runway@oodaloo.example>", wait_scale=0
    )
    async with env.uows(BUSINESS) as uow:  # type: ignore[attr-defined]
        business = await uow.business.get()
    assert business is not None

    delivered = await sender.send_digest(business, view, [OWNER, PARTNER, OWNER.upper()])

    assert delivered == [OWNER, PARTNER]  # each address once, whatever its case
    assert [envelope.rcpt_tos for envelope in mail_server.handler.received] == [[OWNER], [PARTNER]]
    assert {e.mail_from for e in mail_server.handler.received} == {"runway@oodaloo.example"}
    owner_mail, partner_mail = mail_server.handler.messages()

    assert owner_mail["Subject"] == f"{view.headline} · {BUSINESS_NAME} · {format_day(view.today)}"
    assert owner_mail["To"] == OWNER
    assert owner_mail.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in owner_mail.iter_parts()] == [
        "text/plain",
        "multipart/related",  # the HTML part and its inline runway chart
    ]
    text, html = all_parts(owner_mail)

    # QuickBooks' names: as typed in the text part, escaped in the HTML part.
    assert {tricky, quoted} <= {bill.vendor_name for bill in view.bills_due.items}
    assert tricky in text and quoted in text and BUSINESS_NAME in text
    assert "Bits &lt;&amp; Bytes&gt; LLC" in html and tricky not in html
    assert "O&#39;Brien Equipment Repair" in html
    assert "Larkspur &amp; &#34;Sons&#34; &lt;Bakery&gt;" in html
    assert "<Bakery>" not in html

    # Amounts as QuickBooks itself holds them, with separators.
    realm = env.sandbox.realm()  # type: ignore[attr-defined]
    banks = [a for a in realm.iter("Account") if a.get("AccountType") == "Bank"]
    cash = sum((Decimal(a["CurrentBalance"]) for a in banks), Decimal("0"))
    expected_amounts = [money(cash, view.currency)] + [money(Decimal(a["CurrentBalance"]), view.currency) for a in banks]
    for bill in view.bills:
        expected_amounts.append(money(stored(env.sandbox, "Bill", bill.bill_id)["Balance"], view.currency))  # type: ignore[attr-defined]
    for invoice in view.overdue_invoices.first(10):
        expected_amounts.append(
            money(stored(env.sandbox, "Invoice", invoice.invoice_id)["Balance"], view.currency)
        )  # type: ignore[attr-defined]
    assert "$1,234.56" in expected_amounts and "$1,235.56" in expected_amounts
    assert contains_all(text, expected_amounts) == []
    assert contains_all(html, expected_amounts) == []
    assert view.burn.sentence in text and view.runway.sentence in html
    # What waits in Undeposited Funds (checks before the Friday bank run) is said apart from the
    # cash on hand, at QuickBooks' balance of that account.
    [waiting] = [a for a in realm.iter("Account") if a.get("AccountSubType") == "UndepositedFunds"]
    undeposited = (
        f"{money(Decimal(waiting['CurrentBalance']), view.currency)} received, not yet deposited"
    )
    assert view.cash.undeposited_sentence == undeposited
    assert f"{undeposited} (not in cash on hand)" in text
    assert f"{undeposited} (not in cash on hand)" in html
    # Overdue bills and bills due this week: two parts, each with its count and total.
    for title, part in (
        ("Overdue bills", view.overdue_bills),
        ("Bills due in the next 7 days", view.bills_due),
    ):
        assert part.total
        summary = f" · {part.total} for {money(part.left_amount, view.currency)}"
        assert f"{title.upper()}{summary}" in text.splitlines()
        assert f">{title}{summary}</td>" in html

    # Freshness on the business's clock.
    assert view.freshness.oldest is not None
    synced = view.freshness.oldest.astimezone(ZoneInfo("America/Los_Angeles"))
    hour = synced.hour % 12 or 12
    as_of = f"{hour}:{synced.minute:02d} {'AM' if synced.hour < 12 else 'PM'} {synced:%Z}"
    assert f"QuickBooks data as of {as_of}" in text
    assert f"QuickBooks data as of {as_of}" in html

    # Every action link is signed for this business and this recipient, and means what it says.
    hrefs = HREF.findall(html)
    actions = [links.read_action(url.rsplit("/", 1)[1]) for url in hrefs if "/email/act/" in url]
    assert all(url.startswith(f"{PUBLIC_URL}/email/") for url in hrefs)
    assert {(a.business_id, a.recipient) for a in actions} == {(BUSINESS, OWNER)}
    expected_actions = set()
    for bill in view.bills:
        # Only what the reader can do now: nothing is approved yet, so Approve (bound to the
        # amount shown) and no Pay.
        assert not bill.standing.can_pay
        expected_actions.add((ActionKind.BILL_APPROVE, bill.bill_id, bill.amount))
    for invoice in view.overdue_invoices.first(10):
        expected_actions.add((ActionKind.INVOICE_REMIND, invoice.invoice_id, None))
    assert {(a.action, a.target_id, a.amount) for a in actions} == expected_actions
    assert len(actions) == len(expected_actions)  # one link each
    assert {bill_id for kind, bill_id, _ in expected_actions} >= set(new_bills)
    assert all(url in text for url in hrefs)  # the text part carries the same links
    more = view.overdue_invoices.total - 10
    assert more > 0 and f"and {more} more" in text and f"and {more} more" in html

    # Unsubscribe: the footer link and the headers mail clients use (RFC 2369, RFC 8058).
    unsubscribe_url = owner_mail["List-Unsubscribe"].strip("<>")
    assert owner_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert unsubscribe_url in hrefs and unsubscribe_url in text
    asked = links.read_unsubscribe(unsubscribe_url.rsplit("/", 1)[1])
    assert (asked.business_id, asked.recipient) == (BUSINESS, OWNER)

    # The partner's copy carries the partner's own links.
    partner_text, _ = all_parts(partner_mail)
    partner_links = [
        links.read_action(url.rsplit("/", 1)[1]).recipient
        for url in HREF.findall(all_parts(partner_mail)[1])
        if "/email/act/" in url
    ]
    assert set(partner_links) == {PARTNER}
    assert unsubscribe_url not in partner_text


async def test_counts_numbers_subject_possessive_and_a_link_to_slack_for_the_rest(
    runway_env: object, mail_server: MailServer
) -> None:
    env: Any = runway_env
    name = "Larkspur & Pine Coffee Roasters"
    await set_business(env, name=name, slack_team_id="T0LARKSPUR", slack_channel_id="C0FINANCE")
    view = await digest_of(env)
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
    sender = EmailSender(mail_server.url, links=signer(), wait_scale=0)

    assert await sender.send_digest(business, view, [OWNER]) == [OWNER]

    [mail] = mail_server.handler.messages()
    text, html = all_parts(mail)
    # The figure first, the business, the day; "runway" once.
    assert mail["Subject"] == f"{view.headline} · {name} · {format_day(view.today)}"
    assert mail["Subject"].lower().count("runway") == 1
    # A name ending in s takes the apostrophe alone.
    assert f"is on {name}' digest list." in text
    assert "is on Larkspur &amp; Pine Coffee Roasters&#39; digest list." in html
    assert "Roasters's" not in text and "Roasters&#39;s" not in html

    # Every section says how many and how much.
    invoices = view.overdue_invoices
    assert invoices.total > 10
    summary = f" · {invoices.total} for {money(invoices.amount, view.currency)}"
    assert f"OVERDUE INVOICES{summary}" in text.splitlines()
    assert f">Overdue invoices{summary}</td>" in html
    bills = view.overdue_bills
    assert bills.total
    left = money(bills.left_amount, view.currency)
    assert f">Overdue bills · {bills.total} for {left}</td>" in html

    # Each row carries QuickBooks' number of its document: one vendor's rows differ by it.
    shown_bills = view.overdue_bills.first(10) + view.bills_due.first(10)
    numbered = [bill for bill in shown_bills if bill.doc_number]
    assert numbered, "the seeded company's bills have numbers"
    for bill in numbered:
        assert f"bill {bill.doc_number}" in text
        assert f"· bill {bill.doc_number}</span>" in html
    for invoice in invoices.first(10):
        assert invoice.doc_number
        assert f"invoice {invoice.doc_number}" in text
        assert f"· invoice {invoice.doc_number}</span>" in html
    rows = [line for line in text.splitlines() if line.startswith("  ") and "bill " in line]
    by_vendor: dict[str, list[str]] = {}
    for bill in numbered:
        by_vendor.setdefault(bill.vendor_name, []).append(str(bill.doc_number))
    for vendor, numbers in by_vendor.items():
        assert len(set(numbers)) == len(numbers), vendor
        for number in numbers:
            assert any(vendor[:20] in row and f"bill {number}" in row for row in rows), number

    # The rows left out are one click away: Slack's own link to the business's channel.
    slack = "https://slack.com/app_redirect?team=T0LARKSPUR&channel=C0FINANCE"
    more = invoices.total - 10
    assert f'<a href="{slack.replace("&", "&amp;")}"' in html
    assert f"…and {more} more: see them in Slack</a>" in html
    assert f"…and {more} more in Slack (/runway invoices lists them all): {slack}" in text

    # Dates in the one style, on the business's clock.
    assert f"weekly cash runway, {format_day(view.today)}" in text
    assert view.freshness.oldest is not None
    if view.freshness.oldest.astimezone(ZoneInfo(view.tz)).date() != view.today:
        assert format_moment(view.freshness.oldest, view.tz) in text


def test_render_cuts_long_lists_and_keeps_text_columns_aligned() -> None:
    view = DigestBuilder().build(hand_company(), now=datetime(2025, 3, 31, 16, 0, tzinfo=UTC))
    rendered = render_digest_email(
        view, business_name="Harbor Bakery", links=signer(), recipient=OWNER, limit=1
    )
    assert (view.overdue_bills.total, view.bills_due.total) == (1, 0)
    assert view.overdue_invoices.total == 2
    assert rendered.text.count("and 1 more") == 1 and rendered.html.count("and 1 more") == 1
    # Overdue bills and bills due this week are two parts, each with its count and total.
    assert "OVERDUE BILLS · 1 for $1,250.00\n" in rendered.text
    assert "BILLS DUE IN THE NEXT 7 DAYS\n  Nothing due in the next 7 days." in rendered.text
    assert ">Overdue bills · 1 for $1,250.00</td>" in rendered.html
    assert ">Bills due in the next 7 days</td>" in rendered.html
    # One row per list: the amount column ends at the same place in the header and the row.
    lines = rendered.text.splitlines()
    header = next(line for line in lines if line.strip().startswith("Vendor"))
    first_bill = lines[lines.index(header) + 1]
    amount = money(view.overdue_bills.items[0].amount, view.currency)
    assert first_bill.index(amount) + len(amount) == header.index("Amount") + len("Amount")
    assert "QuickBooks data as of 8:00 AM EDT" in rendered.text  # SYNCED 12:00 UTC, New York


# --- sending ----------------------------------------------------------------------------------


def plain_message() -> RenderedEmail:
    return RenderedEmail(
        subject="Weekly runway",
        text="Runway: 300 days",
        html="<p>Runway: 300 days</p>",
        unsubscribe_url=f"{PUBLIC_URL}/email/unsubscribe/x.y",
    )


@dataclass
class Named:
    id: str
    name: str
    slack_team_id: str | None = None
    slack_channel_id: str | None = None


async def test_transient_421_is_retried_and_the_message_delivered_once(
    mail_server: MailServer,
) -> None:
    mail_server.handler.data_replies.extend(["421 4.3.2 Service busy, try again later"] * 2)
    sender = EmailSender(mail_server.url, links=signer(), wait_scale=0)
    message = sender.compose(plain_message(), OWNER)

    await sender.send_message(message, OWNER)

    assert mail_server.handler.data_attempts == 3
    assert len(mail_server.handler.received) == 1
    [received] = mail_server.handler.messages()
    assert received["Message-ID"] == message["Message-ID"]


async def test_a_server_busy_three_times_is_reported_after_three_tries(
    mail_server: MailServer,
) -> None:
    mail_server.handler.data_replies.extend(["451 4.3.0 Temporary failure"] * 5)
    sender = EmailSender(mail_server.url, links=signer(), wait_scale=0)
    with pytest.raises(EmailNotSent, match=r"owner@larkspur\.example.*451") as raised:
        await sender.send_message(sender.compose(plain_message(), OWNER), OWNER)
    assert mail_server.handler.data_attempts == 3
    assert mail_server.handler.received == []
    [failure] = raised.value.failures
    assert not failure.permanent and "3 tries" in failure.reason


async def test_a_550_is_never_retried_and_names_the_recipient(mail_server: MailServer) -> None:
    bad = "nobody@larkspur.example"
    mail_server.handler.refuse[bad] = "550 5.1.1 <nobody@larkspur.example>: no such mailbox"
    view = DigestBuilder().build(hand_company(), now=datetime(2025, 3, 31, 16, 0, tzinfo=UTC))
    sender = EmailSender(mail_server.url, links=signer(), wait_scale=0)

    with pytest.raises(EmailNotSent) as raised:
        await sender.send_digest(Named(view.business_id, "Harbor Bakery"), view, [bad, OWNER])

    assert raised.value.recipients == (bad,)
    assert raised.value.delivered == (OWNER,)  # the others still get theirs
    assert raised.value.failures[0].permanent
    assert "nobody@larkspur.example was not sent" in str(raised.value)
    assert "550" in str(raised.value) and "no such mailbox" in str(raised.value)
    assert mail_server.handler.rcpt_attempts == 2  # one each: the refusal was not retried
    assert [e.rcpt_tos for e in mail_server.handler.received] == [[OWNER]]


async def test_no_server_listening_is_a_transient_failure() -> None:
    sender = EmailSender(f"smtp://127.0.0.1:{free_port()}", links=signer(), wait_scale=0)
    with pytest.raises(EmailNotSent, match="could not be reached") as raised:
        await sender.send_message(sender.compose(plain_message(), OWNER), OWNER)
    assert not raised.value.failures[0].permanent


# A loopback test server: AUTH without TLS is what it is for.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_credentials_from_the_url_log_in_and_a_wrong_password_is_not_retried() -> None:
    logins = Logins("digest@larkspur.example", "p@ss:w/rd")
    controller, server = start_mail_server(
        MailHandler(), authenticator=logins, auth_required=True, auth_require_tls=False
    )
    try:
        good = EmailSender(
            f"smtp://digest%40larkspur.example:p%40ss%3Aw%2Frd@{server.host}:{server.port}",
            links=signer(),
            wait_scale=0,
        )
        await good.send_message(good.compose(plain_message(), OWNER), OWNER)
        assert len(server.handler.received) == 1

        wrong = EmailSender(
            f"smtp://digest%40larkspur.example:guess@{server.host}:{server.port}",
            links=signer(),
            wait_scale=0,
        )
        with pytest.raises(EmailNotSent, match="535") as raised:
            await wrong.send_message(wrong.compose(plain_message(), OWNER), OWNER)
        assert raised.value.failures[0].permanent
        assert logins.seen[0] == ("digest@larkspur.example", "p@ss:w/rd")
        # The client may try each AUTH mechanism, but all on one connection: no retry.
        wrong_tries = [
            peer for peer, seen in zip(logins.peers, logins.seen, strict=True) if seen[1] == "guess"
        ]
        assert wrong_tries and len(set(wrong_tries)) == 1
    finally:
        controller.stop()


def test_smtp_urls() -> None:
    assert SmtpServer.from_url("smtps://mail.example.com") == SmtpServer(
        "mail.example.com", 465, use_tls=True
    )
    starttls = SmtpServer.from_url("smtp+starttls://me:secret@mail.example.com")
    assert (starttls.port, starttls.start_tls, starttls.username) == (587, True, "me")
    assert "secret" not in repr(starttls)
    assert SmtpServer.from_url("smtp://relay.local:2525").port == 2525
    with pytest.raises(ValueError, match="must start with smtp://"):
        SmtpServer.from_url("http://mail.example.com")
    with pytest.raises(ValueError, match="names no mail server host"):
        SmtpServer.from_url("smtp://:25")


async def test_addresses_that_are_not_one_plain_address_are_refused(
    mail_server: MailServer,
) -> None:
    view = DigestBuilder().build(hand_company(), now=datetime(2025, 3, 31, 16, 0, tzinfo=UTC))
    sender = EmailSender(mail_server.url, links=signer(), wait_scale=0)
    sneaky = "owner@larkspur.example\r\nBcc: everyone@elsewhere.example"
    with pytest.raises(EmailNotSent) as raised:
        await sender.send_digest(Named(view.business_id, "Harbor"), view, [sneaky, PARTNER])
    assert raised.value.recipients == (sneaky,) and raised.value.delivered == (PARTNER,)
    assert [e.rcpt_tos for e in mail_server.handler.received] == [[PARTNER]]
