"""The confirmation question of an action link, worded from the business's mirror of its books.

"Pay $1,234.56 to Acme Supplies?" reads better than "Pay bill 2203?", and naming the vendor or
customer lets the reader notice a link that is not what they meant before they press the button.
Only the local mirror is read (no QuickBooks call): a confirmation page must open at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.email.links import ActionKind, EmailAction
from runway.formatting import money
from runway.lifecycle import BillState, standing_of
from runway.uow import UowFactory


def default_question(action: EmailAction) -> str:
    """The confirmation question from the token's own fields (no lookup)."""
    if action.action is ActionKind.BILL_APPROVE:
        return f"Approve bill {action.target_id}?"
    if action.action is ActionKind.BILL_PAY:
        if action.amount is not None:
            # The link's token carries no currency.
            return f"Pay {money(action.amount, 'USD')} on bill {action.target_id}?"
        return f"Pay bill {action.target_id}?"
    return f"Send a payment reminder for invoice {action.target_id}?"


def mirror_describer(uows: UowFactory) -> Callable[[EmailAction], Awaitable[str]]:
    """The `describe` callable for `email_routes`, reading names and amounts from the mirror."""

    async def describe(action: EmailAction) -> str:
        async with uows(action.business_id) as uow:
            if action.action is ActionKind.INVOICE_REMIND:
                invoice = await uow.invoices.get(action.target_id)
                if invoice is None:
                    return default_question(action)
                number = invoice.doc_number or invoice.qbo_id
                who = invoice.customer_name or "the customer"
                owed = money(invoice.balance, invoice.currency or "USD")
                return f"Send {who} a reminder for invoice {number} ({owed} still owed)?"
            bill = await uow.bills.get(action.target_id)
            business = await uow.business.get()
            if bill is None or business is None:
                return default_question(action)
            # The page says where the bill stands now, not only what the email showed.
            standing = standing_of(bill, business.approval_threshold)
            vendor = bill.vendor_name or f"bill {bill.doc_number or bill.qbo_id}"
            currency = bill.currency or "USD"
            if standing.state is BillState.PAID:
                return f"The bill from {vendor} is already paid in full: there is nothing to do."
            if standing.in_flight:
                return f"The bill from {vendor} is already being paid: there is nothing to do."
            if action.amount is not None and action.amount != standing.balance:
                return (
                    f"The bill from {vendor} now has {money(standing.balance, currency)} open in "
                    f"QuickBooks, not the {money(action.amount, currency)} this email showed: this "
                    "link will do nothing. Use today's digest or `/runway bills` in Slack."
                )
            if action.action is ActionKind.BILL_PAY:
                amount = action.amount if action.amount is not None else bill.balance
                return f"Pay {money(amount, currency)} to {vendor}?"
            return f"Approve the bill of {money(bill.balance, currency)} from {vendor}?"

    return describe
