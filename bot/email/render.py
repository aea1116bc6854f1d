"""The digest as an email: an HTML part and a plain-text part over the same `DigestView` as Slack.

Everything the email says is decided by `runway.digest`; this module only lays it out. Names that
came from QuickBooks reach the HTML template raw and Jinja's autoescaping escapes them there (so a
vendor called `<Acme> & "Sons"` is shown as typed, never as markup); the text part strips control
characters only. Every action button is a signed link for one recipient (see `bot.email.links`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from email.utils import make_msgid
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from bot.chart import chart_alt_text
from bot.email.links import ActionKind, LinkMaker
from bot.format import plain
from bot.packaged import templates_dir
from runway.calculator import RunwayStatus
from runway.digest import FINANCING_LEFT_OUT, BankLine, BillList, DigestView, local_time
from runway.formatting import (
    DEFAULT_LOCALE,
    format_day,
    format_moment,
    format_time,
    money,
    money_with_home,
    possessive,
)
from runway.lifecycle import BillState

#: Rows of each list shown before "and N more".
DEFAULT_LIST_LIMIT = 10
#: Longest name kept whole in the text part's columns.
TEXT_NAME_WIDTH = 32


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Jinja for email and its pages: autoescape ON for every .html template, off for .txt."""
    return Environment(
        loader=FileSystemLoader(templates_dir()),
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_page(name: str, **context: Any) -> str:
    return environment().get_template(f"email/{name}").render(**context)


@dataclass(frozen=True, slots=True)
class InlineImage:
    """A PNG the HTML part shows by `cid:` (sent beside it in a multipart/related part)."""

    #: The Content-ID, without its angle brackets.
    cid: str
    png: bytes
    filename: str


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    #: The recipient's own unsubscribe link (also the List-Unsubscribe header).
    unsubscribe_url: str
    images: tuple[InlineImage, ...] = ()


@dataclass(frozen=True, slots=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True, slots=True)
class Row:
    """One bill or invoice line: raw name, its number in QuickBooks, formatted amount and timing,
    and its buttons."""

    name: str
    #: "bill 1043", "invoice 1007": tells apart rows of one vendor (empty without a number).
    number: str
    amount: str
    when: str
    note: str
    links: tuple[Link, ...]

    @property
    def text_name(self) -> str:
        name = plain(self.name)
        return name if len(name) <= TEXT_NAME_WIDTH else name[: TEXT_NAME_WIDTH - 1] + "…"

    @property
    def text_number(self) -> str:
        return plain(self.number)


def document_number(kind: str, doc_number: str | None) -> str:
    """ "bill 1043" (QuickBooks' own number of the document), or "" when it has none."""
    return f"{kind} {doc_number}" if doc_number else ""


def freshness_sentence(view: DigestView) -> str:
    """ "QuickBooks data as of 9:02 AM PDT" on the business's clock (with the day if not today)."""
    oldest = view.freshness.oldest
    if oldest is None:
        return "QuickBooks data has not been synced yet"
    if local_time(oldest, view.tz).date() != view.today:
        return f"QuickBooks data as of {format_moment(oldest, view.tz, view.locale)}"
    return f"QuickBooks data as of {format_time(oldest, view.tz, view.locale)}"


def due_words(days_until_due: int, due: date | None, locale: str = DEFAULT_LOCALE) -> str:
    if days_until_due < 0:
        late = -days_until_due
        return f"{late} day{'s' if late != 1 else ''} overdue"
    if days_until_due == 0:
        return "due today"
    if days_until_due == 1:
        return "due tomorrow"
    return f"due {format_day(due, locale)}" if due is not None else f"due in {days_until_due} days"


#: How a bill's state reads in the email (the Slack card says the same, with names).
STATE_NOTES = {
    BillState.NEEDS_APPROVAL: "needs approval",
    BillState.NEEDS_SECOND_APPROVAL: "needs a second, different approver",
    BillState.APPROVED: "approved, ready to pay",
    BillState.PAYING: "payment in progress",
    BillState.UNKNOWN: "payment sent, waiting for QuickBooks to confirm it",
    BillState.NEEDS_PERSON: "payment needs a look in QuickBooks",
    BillState.FAILED: "the last payment did not go through; ready to pay again",
    BillState.PAID: "paid",
}


@dataclass(frozen=True, slots=True)
class BillSection:
    """One part of the bills to pay: its heading, count and total, rows and what is left out."""

    title: str
    #: " · 4 for $7,170.15" after the title (empty when the part lists nothing).
    summary: str
    #: Said when the part lists nothing.
    empty: str
    rows: tuple[Row, ...]
    more: int
    snoozed: int


def bill_summary(bills: BillList, currency: str, locale: str = DEFAULT_LOCALE) -> str:
    """ " · 4 for $7,170.15", " · 2 of 3 bills left, $950.00", " · all 3 taken care of", or "";
    `currency` is the home one, the totals'."""
    left, total = bills.left_count, bills.total
    if not total:
        return ""
    if left == total:
        return f" · {total} for {money(bills.left_amount, currency, locale=locale)}"
    if left:
        noun = "bill" if total == 1 else "bills"
        return f" · {left} of {total} {noun} left, {money(bills.left_amount, currency, locale=locale)}"
    return f" · all {total} taken care of"


def bill_sections(
    view: DigestView, links: LinkMaker, recipient: str, limit: int
) -> tuple[BillSection, ...]:
    """Overdue bills (left out when there are none), then bills due in the next days."""
    days = f"{view.within_days} day{'s' if view.within_days != 1 else ''}"
    parts = (
        ("Overdue bills", "No bills are overdue.", view.overdue_bills),
        (f"Bills due in the next {days}", f"Nothing due in the next {days}.", view.bills_due),
    )
    return tuple(
        BillSection(
            title=title,
            summary=bill_summary(bills, view.currency, view.locale),
            empty=empty,
            rows=bill_rows(view, bills, links, recipient, limit),
            more=bills.more_than(limit),
            snoozed=bills.snoozed,
        )
        for title, empty, bills in parts
        if bills is view.bills_due or bills.total or bills.snoozed
    )


def bill_rows(
    view: DigestView, bills: BillList, links: LinkMaker, recipient: str, limit: int
) -> tuple[Row, ...]:
    rows = []
    for bill in bills.first(limit):
        buttons: list[Link] = []
        standing = bill.standing
        # Only what this reader can do now: a second approval must come from someone else, and
        # Pay is offered once the approvals cover the amount.
        if standing.can_approve(frozenset({recipient})):
            buttons.append(
                Link(
                    "Approve",
                    links.action_url(
                        view.business_id,
                        ActionKind.BILL_APPROVE,
                        bill.bill_id,
                        recipient,
                        amount=bill.amount,
                    ),
                )
            )
        if standing.can_pay:
            buttons.append(
                Link(
                    "Pay",
                    links.action_url(
                        view.business_id,
                        ActionKind.BILL_PAY,
                        bill.bill_id,
                        recipient,
                        amount=bill.amount,
                    ),
                )
            )
        note = STATE_NOTES[bill.state]
        if bill.moves_runway:
            note = f"{note} · {bill.runway_impact}"
        rows.append(
            Row(
                name=bill.vendor_name or "(no vendor)",
                number=document_number("bill", bill.doc_number),
                amount=money_with_home(
                    bill.amount, bill.currency, bill.home_amount, view.currency, locale=view.locale
                ),
                when=due_words(bill.days_until_due, bill.due_date, view.locale),
                note=note,
                links=tuple(buttons),
            )
        )
    return tuple(rows)


def invoice_rows(view: DigestView, links: LinkMaker, recipient: str, limit: int) -> tuple[Row, ...]:
    rows = []
    for invoice in view.overdue_invoices.first(limit):
        if invoice.last_reminder_at is None:
            note = "no reminder sent yet"
        else:
            sent = local_time(invoice.last_reminder_at, view.tz).date()
            note = f"reminded {format_day(sent, view.locale)}"
        days = invoice.days_overdue
        rows.append(
            Row(
                name=invoice.customer_name or "(no customer)",
                number=document_number("invoice", invoice.doc_number),
                amount=money_with_home(
                    invoice.amount,
                    invoice.currency,
                    invoice.home_amount,
                    view.currency,
                    locale=view.locale,
                ),
                when=f"{days} day{'s' if days != 1 else ''} overdue",
                note=note,
                links=(
                    Link(
                        "Send reminder",
                        links.action_url(
                            view.business_id,
                            ActionKind.INVOICE_REMIND,
                            invoice.invoice_id,
                            recipient,
                        ),
                    ),
                ),
            )
        )
    return tuple(rows)


def lifetime(ttl: timedelta) -> str:
    hours = int(ttl.total_seconds() // 3600)
    if hours >= 1:
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, int(ttl.total_seconds() // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def subject_of(view: DigestView, business_name: str) -> str:
    """ "Runway: 402 days (+3 since last week) · Larkspur Roasters · Mon 7 Dec": the figure
    first, where a phone's inbox still shows it."""
    # A header: no line breaks or control characters, whatever the business is called.
    return plain(f"{view.headline} · {business_name} · {format_day(view.today, view.locale)}")


def invoice_summary(view: DigestView) -> str:
    """ " · 12 for $18,400.00" after the overdue invoices' title (empty when there are none)."""
    invoices = view.overdue_invoices
    if not invoices.total:
        return ""
    return f" · {invoices.total} for {money(invoices.amount, view.currency, locale=view.locale)}"


def slack_channel_url(team_id: str, channel_id: str) -> str:
    """Slack's documented link to a channel ("Opening a channel by name or ID",
    https://api.slack.com/reference/deep-linking): an https URL every mail client follows; it
    opens the Slack app where it is installed, else Slack in the browser."""
    return f"https://slack.com/app_redirect?{urlencode({'team': team_id, 'channel': channel_id})}"


def bank_row(view: DigestView, bank: BankLine) -> tuple[str, str, str | None]:
    """(name, balance, why it is not counted): the balance in the account's own currency with the
    home one where they differ ("€5,000.00 ($5,500.00)"); an account with no rate yet is named
    with why it is left out of the cash ("no EUR rate from QuickBooks yet, not counted")."""
    if bank.home_balance is None:
        money_of = money(bank.balance, bank.currency, locale=view.locale)
        return bank.name, money_of, bank.not_counted_sentence()
    amount = money_with_home(
        bank.balance, bank.currency, bank.home_balance, view.currency, locale=view.locale
    )
    return bank.name, amount, None


def runway_lines(view: DigestView) -> tuple[str, ...]:
    section = view.runway
    lines = [section.sentence]
    if section.trend_sentence and section.status is not RunwayStatus.DAYS:
        lines.append(section.trend_sentence)
    if section.buffer_sentence:
        lines.append(section.buffer_sentence)
    if section.first_week_below_zero is not None:
        lines.append(
            f"The 13-week forecast goes below zero in week {section.first_week_below_zero}."
        )
    return tuple(lines)


def render_digest_email(
    view: DigestView,
    *,
    business_name: str,
    links: LinkMaker,
    recipient: str,
    limit: int = DEFAULT_LIST_LIMIT,
    chart_png: bytes | None = None,
    slack_url: str | None = None,
) -> RenderedEmail:
    """The digest email for one recipient (its links and unsubscribe are that person's own).
    `chart_png` (`bot.chart.runway_chart_png`) is shown inline under the headline; `slack_url`
    opens the business's channel, where the rows left out of the email are."""
    chart = (
        InlineImage(make_msgid("runway-chart", domain="oodaloo")[1:-1], chart_png, "runway.png")
        if chart_png
        else None
    )
    sections = bill_sections(view, links, recipient, limit)
    bills = tuple(row for section in sections for row in section.rows)
    invoices = invoice_rows(view, links, recipient, limit)
    unsubscribe_url = links.unsubscribe_url(view.business_id, recipient)
    banks = tuple(bank_row(view, bank) for bank in view.cash.banks)
    subject = subject_of(view, business_name)
    context = {
        "business_name": business_name,
        "recipient": recipient,
        "headline": view.headline,
        "today": format_day(view.today, view.locale),
        "freshness": freshness_sentence(view),
        "cash_total": money(view.cash.total, view.currency, locale=view.locale),
        "cash_sentence": view.cash.sentence,
        "banks": banks,
        "burn_sentence": view.burn.sentence,
        "undeposited_sentence": view.cash.undeposited_sentence,
        "financing_sentences": view.financing.sentences,
        "financing_left_out": FINANCING_LEFT_OUT,
        "burn_per_month": money(view.burn.net_per_month, view.currency, locale=view.locale),
        "runway_lines": runway_lines(view),
        "bill_sections": sections,
        "invoices": invoices,
        "invoice_summary": invoice_summary(view),
        "slack_url": slack_url,
        "subject": subject,
        "list_of": possessive(business_name),
        "invoices_more": view.overdue_invoices.more_than(limit),
        "snoozed_invoices": view.snoozed_invoices,
        "drift": view.drift.first(5),
        "drift_more": view.drift.more_than(5),
        "unsubscribe_url": unsubscribe_url,
        "link_lifetime": lifetime(links.ttl),
        "chart_src": f"cid:{chart.cid}" if chart else None,
        "chart_alt": chart_alt_text(view),
        # Column widths of the text part.
        "name_width": max([len(row.text_name) for row in bills + invoices] + [len("Vendor")]),
        "number_width": max([len(row.text_number) for row in bills + invoices] + [len("Number")]),
        "amount_width": max([len(row.amount) for row in bills + invoices] + [len("Amount")]),
        "when_width": max([len(row.when) for row in bills + invoices] + [len("Due")]),
        "bank_width": max([len(plain(name)) for name, _, _ in banks] + [0]),
        "plain": plain,
    }
    env = environment()
    return RenderedEmail(
        subject=subject,
        text=env.get_template("email/digest.txt.j2").render(**context),
        html=env.get_template("email/digest.html.j2").render(**context),
        unsubscribe_url=unsubscribe_url,
        images=(chart,) if chart else (),
    )
