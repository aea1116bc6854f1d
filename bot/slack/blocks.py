"""Oodaloo's Slack messages as Block Kit: the weekly digest, `/runway`, paged lists, notices.

Everything is built from a `runway.digest.DigestView` (nothing is computed again here) through
slack_sdk's Block Kit models, whose validators raise `SlackObjectFormationError` when a Slack limit
is broken; the words come from `templates/slack` (see `bot.slack.text`).

Whatever the view holds, a message stays inside Slack's limits: at most 50 blocks, 3000 characters
per section, 75 per button label, 100/300 for a confirm dialog's title/text. Lists are cut short
with "…and N more" and a button that opens the whole list page by page; names from QuickBooks are
shortened (the rest replaced by "…") before they are escaped.

Block ids say what a block is about, so the messages showing an item can be found and drawn again
after it changes: `bill:{id}` / `bill_actions:{id}` / `bill_status:{id}`, and the same with
`invoice`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    ImageBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from bot.chart import TITLE as CHART_TITLE
from bot.chart import chart_alt_text
from bot.slack.mrkdwn import clip, clip_lines, escape
from bot.slack.text import render
from runway.calculator import RunwayStatus, format_days
from runway.digest import (
    FINANCING_LEFT_OUT,
    BankLine,
    BillDue,
    BillList,
    BillTiming,
    DigestView,
    OverdueInvoice,
    is_snoozed,
    local_time,
)
from runway.formatting import money, money_with_home
from runway.lifecycle import BillState
from runway.people import SLACK_USER_ID
from runway.shown_rows import ShownRows, bills_page, invoices_page
from sync import PersonDecision

#: Bill states in which the card asks for an approval.
WAITING = (BillState.NEEDS_APPROVAL, BillState.NEEDS_SECOND_APPROVAL)

Kind = Literal["bill", "invoice"]
ButtonStyle = Literal["primary", "danger"]

# Slack's limits, as slack_sdk's validators know them.
MAX_BLOCKS = 50
SECTION_TEXT_LIMIT = SectionBlock.text_max_length
HEADER_TEXT_LIMIT = HeaderBlock.text_max_length
BUTTON_TEXT_LIMIT = ButtonElement.text_max_length
BUTTON_VALUE_LIMIT = ButtonElement.value_max_length
CONFIRM_TITLE_LIMIT = ConfirmObject.title_max_length
CONFIRM_TEXT_LIMIT = ConfirmObject.text_max_length
CONFIRM_BUTTON_LIMIT = ConfirmObject.confirm_max_length
ACTIONS_LIMIT = ActionsBlock.elements_max_length
#: Any text object (a context element's text included).
TEXT_OBJECT_LIMIT = 3000

#: How much of a QuickBooks name a line shows; longer names end in "…".
NAME_LIMIT = 80
DOC_NUMBER_LIMIT = 30
#: Waiting approvals and drift are short sections under the lists: the rest is "…and N more".
SHORT_LIST = 5
#: Names in a confirm dialog are shorter still: its whole text is 300 characters.
CONFIRM_NAME_LIMIT = 60
ACCOUNT_NAME_LIMIT = 40
PERSON_LIMIT = 40

DEFAULT_PAGE = 15
#: The most items a page can hold: a header, a title per part (overdue bills and bills due), the
#: item pairs, "Next", freshness.
MAX_PAGE = (MAX_BLOCKS - 5) // 2

# Action ids: the interactivity handlers route on these.
BILL_APPROVE = "bill_approve"
BILL_PAY = "bill_pay"
BILL_SNOOZE = "bill_snooze"
INVOICE_REMIND = "invoice_remind"
SHOW_MORE_BILLS = "show_more_bills"
SHOW_MORE_INVOICES = "show_more_invoices"
DRIFT_RESYNC = "drift_resync"
DRIFT_DISMISS = "drift_dismiss"
QBO_RECONNECT = "qbo_reconnect"
#: A person's decision on a payment that needs one (`runway.use_cases.resolve_payment`).
PAYMENT_DECISIONS: dict[str, PersonDecision] = {
    "payment_decide_paid": PersonDecision.PAID,
    "payment_decide_send_again": PersonDecision.SEND_AGAIN,
    "payment_decide_cancel": PersonDecision.CANCEL,
}

SHOW_MORE_ACTION: dict[Kind, str] = {"bill": SHOW_MORE_BILLS, "invoice": SHOW_MORE_INVOICES}

#: The block id of the digest's chart image.
CHART_BLOCK = "chart"


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message ready for chat.postMessage / chat.update: `text` is the notification fallback."""

    text: str
    blocks: list[dict[str, Any]]

    def as_kwargs(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": self.blocks}


# --- text objects and elements --------------------------------------------------------------


def mrkdwn(text: str) -> MarkdownTextObject:
    """A mrkdwn text object; always verbatim, so Slack links and pings only what we wrote as such."""
    return MarkdownTextObject(text=clip_lines(text.split("\n"), TEXT_OBJECT_LIMIT), verbatim=True)


def plain(text: str, limit: int) -> PlainTextObject:
    """Plain text cut to `limit`; `:name:` is left as typed (a vendor's colons are not emoji)."""
    return PlainTextObject(text=clip(text, limit), emoji=False)


def section(text: str, *, block_id: str | None = None, accessory: Any = None) -> SectionBlock:
    """A section whose text is cut between lines to Slack's 3000 characters."""
    fitted = clip_lines(text.split("\n"), SECTION_TEXT_LIMIT)
    return SectionBlock(
        text=MarkdownTextObject(text=fitted, verbatim=True), block_id=block_id, accessory=accessory
    )


def button(
    label: str,
    action_id: str,
    value: str,
    *,
    style: ButtonStyle | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    if len(value) > BUTTON_VALUE_LIMIT:
        raise ValueError(
            f"a button value holds at most {BUTTON_VALUE_LIMIT} characters; {action_id!r} was given "
            f"{len(value)}: pass an id and look the rest up when the button is clicked"
        )
    return ButtonElement(
        text=PlainTextObject(text=clip(label, BUTTON_TEXT_LIMIT), emoji=True),
        action_id=action_id,
        value=value,
        style=style,
        confirm=confirm,
    )


def confirm_dialog(title: str, text: str, ok: str) -> ConfirmObject:
    """A confirm dialog in plain text (Slack shows it literally: nothing to escape, only to cut)."""
    return ConfirmObject(
        title=plain(title, CONFIRM_TITLE_LIMIT),
        text=plain(" ".join(text.split()), CONFIRM_TEXT_LIMIT),
        confirm=plain(ok, CONFIRM_BUTTON_LIMIT),
        deny=plain(render("button", name="cancel"), CONFIRM_BUTTON_LIMIT),
    )


def label(name: str, **context: Any) -> str:
    return render("button", name=name, **context)


def _dicts(blocks: Sequence[Block]) -> list[dict[str, Any]]:
    """The blocks as JSON dicts; slack_sdk validates each one (and its elements) on the way."""
    if len(blocks) > MAX_BLOCKS:
        raise ValueError(f"a message holds at most {MAX_BLOCKS} blocks, this one has {len(blocks)}")
    return [block.to_dict() for block in blocks]


# --- words shared by the blocks -------------------------------------------------------------


def person(approver: str) -> str:
    """An approver as mrkdwn: a Slack user id becomes a mention, anything else escaped text."""
    if SLACK_USER_ID.fullmatch(approver):
        return f"<@{approver}>"
    return escape(clip(approver, PERSON_LIMIT))


def people(approvers: Sequence[str]) -> str:
    return " and ".join(person(approver) for approver in approvers) or "nobody yet"


def name(text: str) -> str:
    """A QuickBooks name shortened for a line (raw: templates escape it)."""
    return clip(text, NAME_LIMIT) if text.strip() else "(no name)"


def doc_number(text: str | None) -> str | None:
    return clip(text, DOC_NUMBER_LIMIT) if text else None


def item_name(kind: Kind, text: str, number: str | None) -> str:
    """A bill or an invoice as every surface names it (mrkdwn, escaped): "*Acme Supplies* · bill
    1043" (the cards' first line, `templates/slack/item_name.md.j2`)."""
    return render("item_name", kind=kind, name=name(text), doc_number=doc_number(number))


def and_more(one: str, many: str) -> Callable[[int], str]:
    """The last line of a list cut short: "…and 3 more accounts"."""
    return lambda n: render("and_more", n=n, one=one, many=many)


def freshness_text(view: DigestView) -> str:
    oldest = view.freshness.oldest
    return render(
        "freshness",
        locale=view.locale,
        as_of=None if oldest is None else local_time(oldest, view.tz),
        today=view.today,
    )


# --- the pieces of a digest -----------------------------------------------------------------


def header_block(template: str, business_name: str, **context: Any) -> HeaderBlock:
    text = render(template, business_name=clip(business_name, NAME_LIMIT), **context)
    return HeaderBlock(text=plain(text, HEADER_TEXT_LIMIT), block_id="header")


def headline_block(view: DigestView) -> SectionBlock:
    runway = view.runway
    # The headline already carries the change in days; other trends ("was 120 days on Mar 24")
    # are said on their own line.
    trend = runway.trend_sentence
    if trend is not None and trend in view.headline:
        trend = None
    return section(
        render(
            "headline",
            locale=view.locale,
            headline=view.headline,
            trend=trend,
            buffer_sentence=runway.buffer_sentence,
            buffer=runway.buffer,
            currency=view.currency,
            week_below_zero=runway.first_week_below_zero,
            week_below_buffer=runway.first_week_below_buffer,
        ),
        block_id="headline",
    )


def chart_block(view: DigestView, url: str) -> ImageBlock:
    """The 13-week chart (`bot.chart`), fetched by Slack from `url`; its alt text has the numbers."""
    return ImageBlock(
        image_url=url,
        alt_text=clip(chart_alt_text(view), ImageBlock.alt_text_max_length),
        title=plain(CHART_TITLE, ImageBlock.title_max_length),
        block_id=CHART_BLOCK,
    )


def bank_line(view: DigestView, bank: BankLine) -> str:
    """ "• Euro account: €5,000.00 ($5,500.00)", or why the account is not counted."""
    if bank.home_balance is None:
        amount = money(bank.balance, bank.currency, locale=view.locale)
    else:
        amount = money_with_home(bank.balance, bank.currency, bank.home_balance, view.currency, locale=view.locale)
    return render(
        "bank_line", name=name(bank.name), amount=amount, not_counted=bank.not_counted_sentence()
    )


def cash_block(view: DigestView) -> SectionBlock:
    """Cash on hand and each bank account, what waits to be deposited, the burn, and the
    financing left out of the burn."""
    cash = view.cash
    first = render("cash", locale=view.locale, total=cash.total, currency=view.currency)
    after = [
        render("undeposited", sentence=cash.undeposited_sentence)
        if cash.undeposited_sentence
        else "",
        render("burn", sentence=view.burn.sentence),
        render("financing", sentence=view.financing.sentence, why=FINANCING_LEFT_OUT)
        if view.financing.sentence
        else "",
    ]
    last = "\n".join(part for part in after if part)
    banks = [bank_line(view, bank) for bank in cash.banks]
    room = SECTION_TEXT_LIMIT - len(first) - len(last) - 2
    more = and_more("account", "accounts")
    listed = clip_lines(banks, room, more) if banks else ""
    return section("\n".join(part for part in (first, listed, last) if part), block_id="cash")


def freshness_block(view: DigestView) -> ContextBlock:
    return ContextBlock(elements=[mrkdwn(freshness_text(view))], block_id="freshness")


def bill_money(view: DigestView, bill: BillDue, amount: Decimal) -> str:
    """An amount of the bill as every card and dialog writes it: in the bill's own currency, with
    what it is in the home currency where the two differ ("€1,000.00 ($1,100.00)")."""
    return money_with_home(amount, bill.currency, bill.in_home(amount), view.currency, locale=view.locale)


def bill_state_text(view: DigestView, bill: BillDue) -> str:
    """The card's main line: what is true of the bill now, from its standing alone."""
    standing = bill.standing
    payment = standing.payment
    lapsed = standing.lapsed[0] if standing.lapsed else None
    snoozed = standing.snoozed_until
    paid = payment.amount if payment and payment.amount is not None else bill.amount
    return render(
        "bill_state",
        locale=view.locale,
        state=standing.state.value,
        required=standing.approvals_required,
        approvers=people(standing.approved_by),
        approved=standing.approved_by,
        lapsed=person(lapsed.by) if lapsed is not None else None,
        lapsed_amount=bill_money(view, bill, lapsed.amount)
        if lapsed is not None and lapsed.amount is not None
        else None,
        balance=bill_money(view, bill, standing.balance),
        payment_amount=bill_money(view, bill, paid),
        payer=person(payment.by) if payment and payment.by else None,
        account=clip(payment.account_name, ACCOUNT_NAME_LIMIT)
        if payment and payment.account_name
        else None,
        note=clip(payment.note, 300) if payment and payment.note else None,
        paid_at=local_time(payment.at, view.tz) if payment and payment.at else None,
        snoozed_until=local_time(snoozed, view.tz)
        if snoozed is not None and bill.is_open and is_snoozed(snoozed, view.built_at or snoozed)
        else None,
    )


def bill_blocks(
    view: DigestView, bill: BillDue, payment_account: Mapping[str, str] | None
) -> list[Block]:
    """A bill's card: its main line (what is true now) and the buttons that apply now.
    `payment_account` names the account a bill in each currency is paid from
    (`bot.bootstrap.DigestContext.payment_account`).

    Approve and Pay carry the amount the card shows (`bill_id|amount`, in the bill's currency): a
    click approves or pays exactly what the person saw, or nothing.
    """
    standing = bill.standing
    line = section(
        render(
            "bill_line",
            locale=view.locale,
            vendor=name(bill.vendor_name),
            doc_number=doc_number(bill.doc_number),
            amount=bill_money(
                view,
                bill,
                standing.payment.amount
                if standing.state is BillState.PAID and standing.payment and standing.payment.amount
                else bill.amount,
            ),
            days_until_due=bill.days_until_due,
            due_date=bill.due_date,
            state=bill_state_text(view, bill),
            impact=bill.runway_impact if standing.can_pay or bill.state in WAITING else None,
        ),
        block_id=f"bill:{bill.bill_id}",
    )
    seen = f"{bill.bill_id}|{bill.amount}"
    buttons: list[ButtonElement] = []
    if bill.state in WAITING:
        buttons.append(button(label("approve"), BILL_APPROVE, seen))
    if standing.can_pay:
        buttons.append(
            button(
                label("pay", amount=bill_money(view, bill, bill.amount)),
                BILL_PAY,
                seen,
                style="primary",
                confirm=pay_confirm(view, bill, (payment_account or {}).get(bill.currency)),
            )
        )
    if bill.is_open and not standing.in_flight and standing.snoozed_until is None:
        buttons.append(button(label("snooze"), BILL_SNOOZE, bill.bill_id))
    if standing.state is BillState.NEEDS_PERSON:
        buttons += [
            button(label(f"decide_{decision.value}"), action_id, bill.bill_id,
                   style="danger" if decision is PersonDecision.CANCEL else None)
            for action_id, decision in PAYMENT_DECISIONS.items()
        ]  # fmt: skip
    if buttons:
        return [line, ActionsBlock(elements=buttons, block_id=f"bill_actions:{bill.bill_id}")]
    payment = standing.payment
    if standing.state is BillState.PAID and payment is not None and payment.by:
        # What the payment did, in the figures every surface now shows.
        status = render("bill_paid_status", payer=person(payment.by), runway=runway_now(view))
        return [
            line,
            ContextBlock(elements=[mrkdwn(status)], block_id=f"bill_status:{bill.bill_id}"),
        ]
    return [line]


def runway_now(view: DigestView) -> str:
    """ "runway now 396 days" (or the runway's sentence where it is not a count of days)."""
    if view.runway.days is not None:
        return f"runway now {format_days(view.runway.days)}"
    return view.runway.sentence[:1].lower() + view.runway.sentence[1:]


def pay_confirm(view: DigestView, bill: BillDue, payment_account: str | None) -> ConfirmObject:
    """ "Pay €1,000.00 ($1,100.00) to Acme Supplies from Checking. Runway goes from 104 to 102
    days." (the runway after the bill's home amount leaves, as paying books it)."""
    before = view.runway.days
    countable = view.runway.status in (RunwayStatus.DAYS, RunwayStatus.NO_CASH)
    after = None
    if countable and before is not None and bill.runway_impact_days is not None:
        after = before + bill.runway_impact_days
    vendor = clip(bill.vendor_name, CONFIRM_NAME_LIMIT)
    account = clip(payment_account, ACCOUNT_NAME_LIMIT) if payment_account else None
    return confirm_dialog(
        render("pay_confirm_title", vendor=vendor),
        render(
            "pay_confirm",
            amount=bill_money(view, bill, bill.amount),
            vendor=vendor,
            account=account,
            before=before if after is not None else None,
            after=after,
            impact=bill.runway_impact,
        ),
        label("pay_ok"),
    )


def invoice_money(view: DigestView, invoice: OverdueInvoice) -> str:
    """An invoice's open balance in its own currency, with what collecting it brings in the home
    currency where the two differ."""
    return money_with_home(invoice.amount, invoice.currency, invoice.home_amount, view.currency, locale=view.locale)


def invoice_blocks(view: DigestView, invoice: OverdueInvoice) -> list[Block]:
    last_reminder = (
        None if invoice.last_reminder_at is None else local_time(invoice.last_reminder_at, view.tz)
    )
    line = section(
        render(
            "invoice_line",
            locale=view.locale,
            customer=name(invoice.customer_name),
            doc_number=doc_number(invoice.doc_number),
            amount=invoice_money(view, invoice),
            days_overdue=invoice.days_overdue,
            due_date=invoice.due_date,
            reminders_sent=invoice.reminders_sent,
            last_reminder=last_reminder,
            reminded_by=person(invoice.last_reminder_by) if invoice.last_reminder_by else None,
            impact_days=invoice.runway_impact_days,
        ),
        block_id=f"invoice:{invoice.invoice_id}",
    )
    confirm = confirm_dialog(
        render("remind_confirm_title"),
        render(
            "remind_confirm",
            customer=clip(invoice.customer_name, CONFIRM_NAME_LIMIT),
            doc_number=doc_number(invoice.doc_number),
            amount=invoice_money(view, invoice),
            days_overdue=invoice.days_overdue,
        ),
        label("remind_ok"),
    )
    remind = button(label("remind"), INVOICE_REMIND, invoice.invoice_id, confirm=confirm)
    return [line, ActionsBlock(elements=[remind], block_id=f"invoice_actions:{invoice.invoice_id}")]


def more_block(
    kind: Kind, left: int, *, part: BillTiming | None = None, offset: int = 0
) -> SectionBlock:
    """ "…and N more bills due." with a button that opens the whole list at `offset` (the first
    bill of the part, in the paged list of overdue bills then bills due)."""
    overdue = part is BillTiming.OVERDUE
    return section(
        render("more_items", kind=kind, overdue=overdue, n=left),
        block_id=f"overdue_{kind}_more" if overdue else f"{kind}_more",
        accessory=button(label("show_more"), SHOW_MORE_ACTION[kind], str(offset)),
    )


#: The block id of each part's title in the digest (the part due soon keeps the historic "bills").
BILL_PART_BLOCK = {BillTiming.OVERDUE: "overdue_bills", BillTiming.DUE_SOON: "bills"}


def bill_parts(view: DigestView) -> tuple[tuple[BillTiming, BillList], ...]:
    """The two parts of the bills to pay, in the order every surface lists them."""
    return ((BillTiming.OVERDUE, view.overdue_bills), (BillTiming.DUE_SOON, view.bills_due))


def bills_title_block(view: DigestView, part: BillTiming) -> SectionBlock:
    bills = dict(bill_parts(view))[part]
    return section(
        render(
            "bills_title",
            locale=view.locale,
            part=part.value,
            within=view.within_days,
            total=bills.total,
            left=bills.left_count,
            amount=bills.left_amount,
            currency=view.currency,
            snoozed=bills.snoozed,
        ),
        block_id=BILL_PART_BLOCK[part],
    )


def invoices_title_block(view: DigestView) -> SectionBlock:
    invoices = view.overdue_invoices
    return section(
        render(
            "invoices_title",
            locale=view.locale,
            total=invoices.total,
            amount=view.overdue_invoices_amount,
            currency=view.currency,
            snoozed=view.snoozed_invoices,
        ),
        block_id="invoices",
    )


def approvals_block(view: DigestView) -> SectionBlock | None:
    waiting = view.approvals.items
    if not waiting:
        return None
    title = render("approvals")
    lines = [
        render(
            "approval_line",
            locale=view.locale,
            vendor=name(item.vendor_name),
            amount=money_with_home(item.amount, item.currency, item.home_amount, view.currency, locale=view.locale),
            due_date=item.due_date,
            approvers=people(item.approved_by),
        )
        for item in waiting
    ]
    listed = clip_lines(
        lines, SECTION_TEXT_LIMIT - len(title) - 1, and_more("bill", "bills"), most=SHORT_LIST
    )
    return section(f"{title}\n{listed}", block_id="approvals")


def drift_block(view: DigestView) -> SectionBlock | None:
    sentences = [sentence for sentence in view.drift.items if sentence.strip()]
    if not sentences:
        return None
    title = render("drift")
    # A drift sentence may quote QuickBooks at length: each is kept to a few lines' worth.
    lines = [render("drift_line", sentence=clip(sentence, 400)) for sentence in sentences]
    listed = clip_lines(
        lines,
        SECTION_TEXT_LIMIT - len(title) - 1,
        and_more("difference", "differences"),
        most=SHORT_LIST,
    )
    return section(f"{title}\n{listed}", block_id="drift")


def fit_items(room: int, lists: Sequence[tuple[int, int]]) -> list[int]:
    """How many items of each list to show in `room` blocks.

    Each of `lists` is (wanted, total). Each item takes two blocks (its section and its buttons or
    status) and a list cut short takes one more for "…and N more". Items are given up one at a
    time from the list showing the most (the later list first when even), so no list vanishes
    while another is long.
    """
    shown = [wanted for wanted, _ in lists]

    def needed() -> int:
        return sum(2 * n + (n < total) for n, (_, total) in zip(shown, lists, strict=True))

    while needed() > room and any(shown):
        longest = max(range(len(shown)), key=lambda index: (shown[index], index))
        shown[longest] -= 1
    return shown


# --- messages --------------------------------------------------------------------------------


def digest_message(
    view: DigestView,
    *,
    business_name: str,
    payment_account: Mapping[str, str] | None,
    max_bills: int = 8,
    max_invoices: int = 8,
    chart_url: str | None = None,
) -> SlackMessage:
    """The weekly digest: runway, the 13-week chart (when `chart_url` is given: Slack fetches the
    image from it), cash, burn, freshness, bills due with buttons, invoices overdue."""
    chart = [chart_block(view, chart_url)] if chart_url else []
    top: list[Block] = [
        header_block("digest_header", business_name),
        headline_block(view),
        *chart,
        cash_block(view),
        freshness_block(view),
        DividerBlock(),
    ]
    extras: list[Block] = [
        block for block in (approvals_block(view), drift_block(view)) if block is not None
    ]
    if extras:
        extras.insert(0, DividerBlock())
    parts = [
        (part, bills)
        for part, bills in bill_parts(view)
        # An empty overdue part is left out; "Bills due" always says what is due, or nothing.
        if part is BillTiming.DUE_SOON or bills.total or bills.snoozed
    ]
    invoices = view.overdue_invoices
    fixed = len(top) + len(parts) + 2 + len(extras)  # + the parts' titles, divider, invoices title
    wanted = [
        *((min(max(max_bills, 0), bills.total), bills.total) for _, bills in parts),
        (min(max(max_invoices, 0), invoices.total), invoices.total),
    ]
    *shown_bills, shown_invoices = fit_items(MAX_BLOCKS - fixed, wanted)

    blocks = list(top)
    for (part, bills), shown in zip(parts, shown_bills, strict=True):
        blocks.append(bills_title_block(view, part))
        for bill in bills.first(shown):
            blocks += bill_blocks(view, bill, payment_account)
        if bills.more_than(shown):
            start = 0 if part is BillTiming.OVERDUE else view.overdue_bills.total
            blocks.append(more_block("bill", bills.more_than(shown), part=part, offset=start))
    blocks += [DividerBlock(), invoices_title_block(view)]
    for invoice in invoices.first(shown_invoices):
        blocks += invoice_blocks(view, invoice)
    if invoices.more_than(shown_invoices):
        blocks.append(more_block("invoice", invoices.more_than(shown_invoices)))
    blocks += extras

    fallback = fallback_text(view, business_name)
    return SlackMessage(text=clip(fallback, TEXT_OBJECT_LIMIT), blocks=_dicts(blocks))


def fallback_text(view: DigestView, business_name: str) -> str:
    """The notification text: the headline, and how many bills are overdue, due, left to pay."""
    return render(
        "fallback",
        business_name=clip(business_name, NAME_LIMIT),
        headline=view.headline,
        overdue_bills=view.overdue_bills.left_count,
        bills=view.bills_due.left_count,
        invoices=view.overdue_invoices.total,
    )


def summary_message(view: DigestView, *, business_name: str) -> SlackMessage:
    """`/runway`: headline, cash, burn, counts of bills overdue and due and invoices overdue,
    freshness."""
    invoices = view.overdue_invoices
    counts = section(
        render(
            "counts",
            locale=view.locale,
            within=view.within_days,
            overdue_bills=view.overdue_bills.left_count,
            overdue_bills_amount=view.overdue_bills.left_amount,
            bills=view.bills_due.left_count,
            bills_amount=view.bills_due.left_amount,
            invoices=invoices.total,
            invoices_amount=view.overdue_invoices_amount,
            approvals=view.approvals.total,
            currency=view.currency,
        ),
        block_id="counts",
    )
    blocks: list[Block] = [
        header_block("summary_header", business_name),
        headline_block(view),
        cash_block(view),
        counts,
    ]
    lists = []
    if view.bill_count:
        lists.append(button(label("show_bills"), SHOW_MORE_BILLS, "0"))
    if invoices.total:
        lists.append(button(label("show_invoices"), SHOW_MORE_INVOICES, "0"))
    if lists:
        blocks.append(ActionsBlock(elements=lists, block_id="lists"))
    blocks.append(freshness_block(view))
    return SlackMessage(
        text=clip(fallback_text(view, business_name), TEXT_OBJECT_LIMIT), blocks=_dicts(blocks)
    )


def bills_page_rows(offset: int, page: int = DEFAULT_PAGE) -> ShownRows:
    """The rows `bills_message(..., offset=offset, page=page)` shows, for `Oodaloo.digest`."""
    return bills_page(max(0, offset), min(max(1, page), MAX_PAGE))


def invoices_page_rows(offset: int, page: int = DEFAULT_PAGE) -> ShownRows:
    """The rows `invoices_message(..., offset=offset, page=page)` shows, for `Oodaloo.digest`."""
    return invoices_page(max(0, offset), min(max(1, page), MAX_PAGE))


def _page_window(offset: int, page: int, total: int) -> tuple[int, int]:
    """(first index shown, how many): the offset kept at 0 or more, the page between 1 and
    MAX_PAGE."""
    offset = max(0, offset)
    page = min(max(1, page), MAX_PAGE)
    return offset, max(0, min(page, total - offset))


def _next_block(kind: Kind, following: int, page: int, total: int) -> ActionsBlock:
    next_page = button(
        label("next_page", page=min(page, total - following)),
        SHOW_MORE_ACTION[kind],
        str(following),
    )
    return ActionsBlock(elements=[next_page], block_id=next_block_id(kind))


def next_block_id(kind: Kind) -> str:
    """The block of a list's "Next" button: a click from it turns the page of the list it is in."""
    return f"{kind}_next"


def bills_message(
    view: DigestView,
    *,
    business_name: str,
    payment_account: Mapping[str, str] | None,
    offset: int = 0,
    page: int = DEFAULT_PAGE,
) -> SlackMessage:
    """`/runway bills` and "Show all": overdue bills, then bills due, with their buttons, `page`
    at a time (`offset` counts from the first overdue bill). Each part on the page has its title,
    numbered within the part: "*Bills due in the next 7 days* · 5–7 of 7". The view holds the
    page's rows (`page_rows`)."""
    page = min(max(1, page), MAX_PAGE)
    everything = view.bill_count
    offset, count = _page_window(offset, page, everything)
    blocks: list[Block] = [header_block("page_header", business_name, kind="bill")]
    titles: list[str] = []
    start = 0
    for part, bills in bill_parts(view):
        end = start + bills.total
        first, last = max(offset, start), min(offset + count, end)
        if first < last:
            title = render(
                "page_title",
                kind="bill",
                part=part.value,
                within=view.within_days,
                total=bills.total,
                first=first - start + 1,
                last=last - start,
            )
            titles.append(title)
            blocks.append(section(title, block_id=f"{part.value}_bill_page"))
            for bill in bills.rows(first - start, last - start):
                blocks += bill_blocks(view, bill, payment_account)
        start = end
    if not titles:
        # Nothing on this page: there is nothing to pay, or the page is past the end.
        title = render(
            "page_title",
            kind="bill",
            part=None,
            within=view.within_days,
            total=everything,
            first=offset + 1,
            last=offset,
        )
        titles.append(title)
        blocks.append(section(title, block_id="bill_page"))
    following = offset + page
    if following < everything:
        blocks.append(_next_block("bill", following, page, everything))
    blocks.append(freshness_block(view))
    text = " · ".join(title.split("\n")[0].replace("*", "") for title in titles)
    return SlackMessage(text=clip(text, TEXT_OBJECT_LIMIT), blocks=_dicts(blocks))


def invoices_message(
    view: DigestView, *, business_name: str, offset: int = 0, page: int = DEFAULT_PAGE
) -> SlackMessage:
    """`/runway invoices` and "Show all": the overdue invoices with their buttons, paged. The view
    holds the page's rows (`page_rows`)."""
    page = min(max(1, page), MAX_PAGE)
    invoices = view.overdue_invoices
    offset, count = _page_window(offset, page, invoices.total)
    title = render(
        "page_title",
        kind="invoice",
        part=None,
        within=view.within_days,
        total=invoices.total,
        first=offset + 1,
        last=offset + count,
    )
    blocks: list[Block] = [
        header_block("page_header", business_name, kind="invoice"),
        section(title, block_id="invoice_page"),
    ]
    for invoice in invoices.rows(offset, offset + count):
        blocks += invoice_blocks(view, invoice)
    following = offset + page
    if following < invoices.total:
        blocks.append(_next_block("invoice", following, page, invoices.total))
    blocks.append(freshness_block(view))
    return SlackMessage(
        text=clip(title.split("\n")[0].replace("*", ""), TEXT_OBJECT_LIMIT), blocks=_dicts(blocks)
    )


def shown_ids(blocks: Sequence[dict[str, Any]], kind: Kind) -> list[str]:
    """The ids of the bills (or invoices) a message shows, in its order."""
    prefix = f"{kind}:"
    return [
        str(block["block_id"])[len(prefix) :]
        for block in blocks
        if str(block.get("block_id", "")).startswith(prefix)
    ]


def notice_message(
    text_mrkdwn: str,
    *,
    buttons: Sequence[tuple[str, str, str, ButtonStyle | None]] = (),
) -> SlackMessage:
    """A channel notice: a drift alert (Re-sync / Dismiss), QuickBooks disconnected (Reconnect).

    `text_mrkdwn` is mrkdwn as given (escape QuickBooks text in it first); each button is
    (label, action_id, value, style or None).
    """
    if len(buttons) > ACTIONS_LIMIT:
        raise ValueError(f"a notice holds at most {ACTIONS_LIMIT} buttons, got {len(buttons)}")
    blocks: list[Block] = [section(text_mrkdwn, block_id="notice")]
    if buttons:
        elements = [
            button(text, action_id, value, style=style) for text, action_id, value, style in buttons
        ]
        blocks.append(ActionsBlock(elements=elements, block_id="notice_actions"))
    return SlackMessage(text=clip(text_mrkdwn, TEXT_OBJECT_LIMIT), blocks=_dicts(blocks))
