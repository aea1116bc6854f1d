"""The confirmation question of an action link, worded from the business's mirror of its books.

"Pay $1,234.56 to Acme Supplies?" reads better than "Pay bill 2203?", and naming the vendor or
customer lets the reader notice a link that is not what they meant before they press the button.
A bill's amounts are in its own currency, with what paying costs in the home currency where the
two differ ("Pay €1,000.00 ($1,100.00) to Lyon Textiles?"), as the digest writes them.
Only the local mirror is read (no QuickBooks call): a confirmation page must open at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from bot.email.links import ActionKind, EmailAction
from runway.cash_flow import home_amount
from runway.digest import rate_now
from runway.formatting import money, money_with_home
from runway.lifecycle import BillState, standing_of
from runway.uow import RunwayUnitOfWork, UowFactory


def default_question(action: EmailAction, home_currency: str | None = None) -> str:
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
                else money(action.amount, home_currency)
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
    rate = rate_now(currency or home, own_rate, home, await _latest_rates(uow))
    return money_with_home(amount, currency or home, home_amount(amount, rate), home)


def mirror_describer(uows: UowFactory) -> Callable[[EmailAction], Awaitable[str]]:
    """The `describe` callable for `email_routes`, reading names and amounts from the mirror."""

    async def describe(action: EmailAction) -> str:
        async with uows(action.business_id) as uow:
            if action.action is ActionKind.INVOICE_REMIND:
                invoice = await uow.invoices.get(action.target_id)
                if invoice is None:
                    return default_question(action, await _home_currency(uow))
                number = invoice.doc_number or invoice.qbo_id
                who = invoice.customer_name or "the customer"
                owed = await _in_both(uow, invoice.balance, invoice.currency, invoice.exchange_rate)
                return f"Send {who} a reminder for invoice {number} ({owed} still owed)?"
            bill = await uow.bills.get(action.target_id)
            business = await uow.business.get()
            if bill is None or business is None:
                return default_question(action, await _home_currency(uow))
            # The page says where the bill stands now, not only what the email showed.
            standing = standing_of(bill, business.approval_threshold)
            vendor = bill.vendor_name or f"bill {bill.doc_number or bill.qbo_id}"

            async def amount_of(amount: Decimal) -> str:
                return await _in_both(uow, amount, bill.currency, bill.exchange_rate)

            if standing.state is BillState.PAID:
                return f"The bill from {vendor} is already paid in full: there is nothing to do."
            if standing.in_flight:
                return f"The bill from {vendor} is already being paid: there is nothing to do."
            if action.amount is not None and action.amount != standing.balance:
                return (
                    f"The bill from {vendor} now has {await amount_of(standing.balance)} open in "
                    f"QuickBooks, not the {await amount_of(action.amount)} this email showed: this "
                    "link will do nothing. Use today's digest or `/runway bills` in Slack."
                )
            if action.action is ActionKind.BILL_PAY:
                amount = action.amount if action.amount is not None else bill.balance
                return f"Pay {await amount_of(amount)} to {vendor}?"
            return f"Approve the bill of {await amount_of(bill.balance)} from {vendor}?"

    return describe
