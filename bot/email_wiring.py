"""The email digest wired to the domain: who a link acts for, what it does, how the digest is sent.

A link acts in the name of the address it was sent to. That address must be one of the business's
approvers (approvers are Slack users and, for the email digest, email addresses), so the same
approval rules hold by email as in Slack: BillService refuses anyone else, and the page says why.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.routing import BaseRoute

from bot.bootstrap import DigestContext, Oodaloo
from bot.email.describe import mirror_describer
from bot.email.links import ActionKind, EmailAction, LinkSigner
from bot.email.recipients import unsubscriber
from bot.email.routes import email_routes
from bot.email.sender import EmailNotSent, EmailSender
from bot.format import money
from bot.slack.mrkdwn import escape as escape_mrkdwn
from sync.ledger import ActionState

logger = logging.getLogger(__name__)


#: Told (business id, "bill" or "invoice", its QuickBooks id, the outcome in Slack mrkdwn) after a
#: link acted, so the business's Slack messages show it too.
ActedOn = Callable[[str, str, str, str], Awaitable[None]]


def performer(oodaloo: Oodaloo, acted_on: ActedOn | None = None) -> Callable[[EmailAction], Awaitable[str]]:
    async def perform(action: EmailAction) -> str:
        outcome = await act(action)
        if acted_on is not None:
            kind = "invoice" if action.action is ActionKind.INVOICE_REMIND else "bill"
            line = f":envelope_with_arrow: {escape_mrkdwn(outcome)} (from the email digest, by {escape_mrkdwn(action.recipient)})"
            try:
                await acted_on(action.business_id, kind, action.target_id, line)
            except Exception:  # the action is done; Slack only mirrors it
                logger.exception("could not show an email action in Slack")
        return outcome

    async def act(action: EmailAction) -> str:
        services = await oodaloo.services_for(action.business_id)
        actor = action.recipient
        if action.action is ActionKind.BILL_APPROVE:
            approval = await services.bills.approve(action.target_id, actor)
            if approval.ready_to_pay:
                return "Approved. The bill can be paid now."
            return "Approved. A second, different approver must approve it too before it is paid."
        if action.action is ActionKind.BILL_PAY:
            ctx = await oodaloo.digest(action.business_id)
            amount = action.amount
            if amount is None:
                raise ValueError("this pay link names no amount; use the buttons in Slack instead")
            result = await services.bills.create_payment(
                action.target_id, amount, actor, bank_account_id=ctx.payment_account_id
            )
            if result.outcome.state is ActionState.SUCCEEDED:
                return f"Paid {money(result.amount)} from {ctx.payment_account or 'the bank account'}."
            if result.in_flight:
                return (f"The payment of {money(result.amount)} was sent; QuickBooks has not confirmed "
                        "it yet. Oodaloo checks again within a minute. It will not be paid twice.")
            return f"The payment did not go through: {result.message}"
        result_r = await services.invoices.send_reminder(action.target_id, actor)
        return "Reminder sent." if result_r.outcome.state is ActionState.SUCCEEDED else result_r.message

    return perform


def email_routes_for(
    oodaloo: Oodaloo, signer: LinkSigner, acted_on: ActedOn | None = None
) -> list[BaseRoute]:
    return list(
        email_routes(
            signer,
            perform=performer(oodaloo, acted_on),
            unsubscribe=unsubscriber(oodaloo.directory),
            engine=oodaloo.engine,
            describe=mirror_describer(oodaloo.uows),
        )
    )


def digest_mailer(oodaloo: Oodaloo, smtp_url: str) -> Callable[[DigestContext], Awaitable[list[str]]]:
    signer = LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=oodaloo.settings.public_url)
    sender = EmailSender(smtp_url, links=signer, sender=oodaloo.settings.email_from)

    async def mail(ctx: DigestContext) -> list[str]:
        try:
            return await sender.send_digest(ctx.business, ctx.view, ctx.business.email_recipients)
        except EmailNotSent as failed:
            # Some got it: they are recorded; the rest are named in the log with the reason.
            logger.error("the digest of %s did not reach everyone: %s", ctx.business.id, failed)
            return list(failed.delivered)

    return mail
