"""The confirmation question of an action link, worded from the business's mirror of its books.

"Pay $1,234.56 to Acme Supplies?" reads better than "Pay bill 2203?", and naming the vendor or
customer lets the reader notice a link that is not what they meant before they press the button.
A bill's amounts are in its own currency, with what paying costs in the home currency where the
two differ ("Pay €1,000.00 ($1,100.00) to Lyon Textiles?"), as the digest writes them.
Only the local mirror is read (no QuickBooks call): a confirmation page must open at once.

A link with nothing left to do (the bill is paid or being paid, its amount changed, the invoice is
paid) says so up front, with no button to press (`Confirmation.can_act`), and the page gives the
link's expiry on the business's clock (`Confirmation.timezone`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from bot.email.links import ActionKind, EmailAction
from runway.cash_flow import home_amount
from runway.digest import rate_now
from runway.formatting import DEFAULT_LOCALE, money, money_with_home
from runway.lifecycle import BillState, standing_of
from runway.uow import RunwayUnitOfWork, UowFactory


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a link's page says before anything is pressed."""

    #: "Pay $1,234.56 to Acme Supplies for bill 1043?", or why there is nothing to do.
    question: str
    #: False when the link has nothing left to do: the page shows no button.
    can_act: bool = True
    #: The business's timezone (None when unknown: times are shown in UTC).
    timezone: str | None = None
    #: How the business writes money and times (`Business.locale`).
    locale: str = DEFAULT_LOCALE


def default_question(
    action: EmailAction, home_currency: str | None = None, locale: str = DEFAULT_LOCALE
) -> str:
    """The confirmation question from the token's own fields (no lookup). The token carries no
    currency: the amount is in the business's home currency when it is known (`home_currency`),
    else it is said without one rather than in a currency that may be wrong."""
    if action.action is ActionKind.BILL_APPROVE:
        return f"Approve bill {action.target_id}?"
    if action.action is ActionKind.BILL_PAY:
        if action.amount is not None:
            amount = (
                f"{action.amount:,.2f}"
                if home_currency is None
                else money(action.amount, home_currency, locale=locale)
            )
            return f"Pay {amount} on bill {action.target_id}?"
        return f"Pay bill {action.target_id}?"
    return f"Send a payment reminder for invoice {action.target_id}?"


async def _home_currency(uow: RunwayUnitOfWork) -> str | None:
    """The business's home currency (QuickBooks' own once a sync has read it); None without one."""
    business = await uow.business.get()
    return business.home_currency if business is not None else None


async def _latest_rates(uow: RunwayUnitOfWork) -> dict[str, Decimal]:
    """QuickBooks' latest rate of each foreign currency the mirror has read."""
    return {code: row.rate for code, row in (await uow.exchange_rates.all()).items()}


async def _in_both(
    uow: RunwayUnitOfWork, amount: Decimal, currency: str | None, own_rate: Decimal | None
) -> str:
    """`amount` in its own currency with what it is in the home currency now, where they differ."""
    business = await uow.business.get()
    home = business.home_currency if business is not None else "USD"
    locale = business.locale if business is not None else DEFAULT_LOCALE
    rate = rate_now(currency or home, own_rate, home, await _latest_rates(uow))
    return money_with_home(
        amount, currency or home, home_amount(amount, rate), home, locale=locale
    )


def mirror_describer(uows: UowFactory) -> Callable[[EmailAction], Awaitable[Confirmation]]:
    """The `describe` callable for `email_routes`, reading names and amounts from the mirror."""

    async def describe(action: EmailAction) -> Confirmation:
        async with uows(action.business_id) as uow:
            business = await uow.business.get()
            zone = business.timezone if business is not None else None
            locale = business.locale if business is not None else DEFAULT_LOCALE

            def asks(question: str) -> Confirmation:
                return Confirmation(question, can_act=True, timezone=zone, locale=locale)

            def nothing_to_do(why: str) -> Confirmation:
                return Confirmation(why, can_act=False, timezone=zone, locale=locale)

            if action.action is ActionKind.INVOICE_REMIND:
                invoice = await uow.invoices.get(action.target_id)
                if invoice is None:
                    return asks(default_question(action, await _home_currency(uow), locale))
                number = invoice.doc_number or invoice.qbo_id
                who = invoice.customer_name or "the customer"
                if invoice.balance <= 0:
                    return nothing_to_do(
                        f"Invoice {number} to {who} is already paid in full: no reminder is needed."
                    )
                owed = await _in_both(uow, invoice.balance, invoice.currency, invoice.exchange_rate)
                return asks(f"Send {who} a reminder for invoice {number} ({owed} still owed)?")
            bill = await uow.bills.get(action.target_id)
            if bill is None or business is None:
                return asks(default_question(action, await _home_currency(uow), locale))
            # The page says where the bill stands now, not only what the email showed.
            standing = standing_of(bill, business.approval_threshold)
            vendor = bill.vendor_name or f"bill {bill.doc_number or bill.qbo_id}"
            # "from Acme Supplies (bill 1043)": one vendor's bills differ by their number.
            named = vendor
            if bill.vendor_name and bill.doc_number:
                named = f"{vendor} (bill {bill.doc_number})"

            async def amount_of(amount: Decimal) -> str:
                return await _in_both(uow, amount, bill.currency, bill.exchange_rate)

            if standing.state is BillState.PAID:
                return nothing_to_do(
                    f"The bill from {named} is already paid in full: there is nothing to do."
                )
            if standing.in_flight:
                return nothing_to_do(
                    f"The bill from {named} is already being paid: there is nothing to do."
                )
            if action.amount is not None and action.amount != standing.balance:
                return nothing_to_do(
                    f"The bill from {named} now has {await amount_of(standing.balance)} open in "
                    f"QuickBooks, not the {await amount_of(action.amount)} this email showed: this "
                    "link will do nothing. Use today's digest or `/runway bills` in Slack."
                )
            if action.action is ActionKind.BILL_PAY:
                amount = action.amount if action.amount is not None else bill.balance
                return asks(f"Pay {await amount_of(amount)} to {named}?")
            return asks(f"Approve the bill of {await amount_of(bill.balance)} from {named}?")

    return describe
