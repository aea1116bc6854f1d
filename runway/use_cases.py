"""What a person can do to a bill or an invoice, from any surface: approve, pay, snooze, remind.

Each use case takes who acts and what they saw (the amount on the card or in the email) and
returns a typed `Outcome`: done, in flight (QuickBooks has not confirmed yet), refused (with a
reason a person understands), or already done (someone got there first); with the bill's
standing after it, so a surface renders what is true now and never guesses it from text. Slack
and email only translate a request into one of these calls and render the outcome.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from runway.bills import BillService
from runway.errors import AlreadyApproved, NotFound, RunwayError
from runway.formatting import money, money_with_home
from runway.invoices import InvoiceService
from runway.lifecycle import BillStanding, BillState
from sync import ActionState, PersonDecision


class Result(enum.StrEnum):
    DONE = "done"
    #: Sent, not confirmed yet: the reconciler settles it and the surfaces follow.
    IN_FLIGHT = "in_flight"
    REFUSED = "refused"
    #: Nothing was done because it already was (paid, approved by this person, being paid).
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    #: One plain sentence for the person who acted (no markup: each surface escapes it).
    message: str
    #: The bill as it stands afterwards (None for invoices, or a bill that does not exist).
    standing: BillStanding | None = None
    #: The amount paid or asked for, where there is one.
    amount: Decimal | None = None

    @property
    def changed(self) -> bool:
        """Something changed that every surface showing the item must follow."""
        return self.result in (Result.DONE, Result.IN_FLIGHT)


async def _standing_or_none(bills: BillService, bill_id: str) -> BillStanding | None:
    try:
        return await bills.standing(bill_id)
    except NotFound:
        return None


async def approve_bill(
    bills: BillService, *, bill_id: str, by: str, seen_amount: Decimal | None
) -> Outcome:
    """`by` approves the open balance they saw."""
    before = await bills.standing(bill_id)
    if before.state is BillState.PAID:
        return Outcome(Result.ALREADY_DONE, "This bill is already paid in full.", before)
    try:
        after = await bills.approve(bill_id, by, seen_amount)
    except AlreadyApproved as already:
        return Outcome(Result.ALREADY_DONE, str(already), await bills.standing(bill_id))
    except RunwayError as refusal:
        return Outcome(Result.REFUSED, str(refusal), await _standing_or_none(bills, bill_id))
    if after.approvals_missing:
        message = "Approved. A second, different person must approve it too before it is paid."
    else:
        message = "Approved. The bill can be paid now."
    return Outcome(Result.DONE, message, after, after.balance)


async def pay_bill(
    bills: BillService,
    *,
    bill_id: str,
    by: str,
    seen_amount: Decimal | None,
    on_paying: Callable[[BillStanding], Awaitable[None]] | None = None,
) -> Outcome:
    """`by` pays the open balance they saw, once, from the business's pay-from account
    (`runway.businesses.payment_account_id`); `on_paying` is told once the bill is "paying"."""
    before = await bills.standing(bill_id)
    if before.state is BillState.PAID:
        return Outcome(Result.ALREADY_DONE, "This bill is already paid in full.", before)
    if before.in_flight:
        return Outcome(
            Result.ALREADY_DONE,
            "This bill is already being paid; Oodaloo is confirming it with QuickBooks.",
            before,
        )
    if seen_amount is None:
        return Outcome(
            Result.REFUSED,
            "This Pay button names no amount; nothing was paid. Use the one in `/runway bills`.",
            before,
        )
    try:
        paid = await bills.create_payment(bill_id, seen_amount, by, on_paying=on_paying)
    except RunwayError as refusal:
        return Outcome(Result.REFUSED, str(refusal), await _standing_or_none(bills, bill_id))
    standing = paid.standing
    account = (standing.payment.account_name if standing.payment else None) or "the bank account"
    # A bill QuickBooks sent without a currency is in dollars, as everywhere else.
    paid_text = money(paid.amount, standing.currency or "USD", locale=paid.locale)
    rate_text = ""
    if paid.home_amount is not None and standing.currency:
        # A foreign bill: its home equivalent at the rate the payment was sent with.
        paid_text = money_with_home(
            paid.amount,
            standing.currency,
            paid.home_amount,
            paid.home_currency,
            locale=paid.locale,
        )
        rate_text = f", at QuickBooks' {standing.currency} rate of {paid.exchange_rate}"
    state = paid.outcome.state
    if state is ActionState.SUCCEEDED:
        return Outcome(
            Result.DONE, f"Paid {paid_text} from {account}{rate_text}.", standing, paid.amount
        )
    if paid.in_flight:
        return Outcome(
            Result.IN_FLIGHT,
            f"The payment of {paid_text} was sent; QuickBooks has not confirmed it "
            "yet. Oodaloo checks again within a minute. It will not be paid twice.",
            standing,
            paid.amount,
        )
    return Outcome(
        Result.REFUSED, f"The payment did not go through: {paid.message}", standing, paid.amount
    )


async def snooze_bill(bills: BillService, *, bill_id: str, by: str, until: datetime) -> Outcome:
    try:
        await bills.snooze(bill_id, until, by)
    except RunwayError as refusal:
        return Outcome(Result.REFUSED, str(refusal), await _standing_or_none(bills, bill_id))
    return Outcome(Result.DONE, "Snoozed until the next digest.", await bills.standing(bill_id))


#: What each decision on a payment that needed a person leads to, in the person's words.
_DECIDED = {
    PersonDecision.PAID: "Marked paid: it matches the payment in QuickBooks.",
    PersonDecision.SEND_AGAIN: (
        "Sent again with the same request id after looking for it once more: it cannot be paid twice."
    ),
    PersonDecision.CANCEL: "Cancelled: nothing was sent. The approvals stand: you can pay it again.",
}


async def resolve_payment(
    bills: BillService, *, bill_id: str, decision: PersonDecision, by: str
) -> Outcome:
    """`by` settles a payment Oodaloo handed to a person: paid in QuickBooks, send again, cancel."""
    try:
        standing = await bills.resolve_payment(bill_id, decision, by)
    except RunwayError as refusal:
        return Outcome(Result.REFUSED, str(refusal), await _standing_or_none(bills, bill_id))
    return Outcome(Result.DONE, _DECIDED[decision], standing)


async def send_reminder(invoices: InvoiceService, *, invoice_id: str, by: str) -> Outcome:
    """`by` has QuickBooks email the overdue invoice to the customer again."""
    try:
        sent = await invoices.send_reminder(invoice_id, by)
    except RunwayError as refusal:
        return Outcome(Result.REFUSED, str(refusal))
    if sent.outcome.state is ActionState.SUCCEEDED:
        return Outcome(Result.DONE, "Reminder sent.")
    if sent.outcome.state is ActionState.FAILED:
        return Outcome(Result.REFUSED, f"The reminder did not go: {sent.message}")
    return Outcome(Result.IN_FLIGHT, sent.message)


__all__ = [
    "Outcome",
    "Result",
    "approve_bill",
    "pay_bill",
    "resolve_payment",
    "send_reminder",
    "snooze_bill",
]
