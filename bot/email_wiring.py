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
from bot.email.render import slack_channel_url
from bot.email.routes import email_routes
from bot.email.sender import EmailNotSent, EmailSender
from runway.errors import RunwayError
from runway.use_cases import Outcome, Result, approve_bill, pay_bill, send_reminder

logger = logging.getLogger(__name__)


#: Told (business id, "bill" or "invoice", its QuickBooks id, the outcome in Slack mrkdwn) after a
#: link acted, so the business's Slack messages show it too.
ActedOn = Callable[[str, str, str], Awaitable[None]]


def performer(oodaloo: Oodaloo, acted_on: ActedOn | None = None) -> Callable[[EmailAction], Awaitable[str]]:
    async def perform(action: EmailAction) -> str:
        outcome = await act(action)
        if acted_on is not None and outcome.changed:
            kind = "invoice" if action.action is ActionKind.INVOICE_REMIND else "bill"
            try:
                await acted_on(action.business_id, kind, action.target_id)
            except Exception:  # the action is done; Slack only mirrors it
                logger.exception("could not show an email action in Slack")
        if outcome.result is Result.REFUSED:
            # Shown as the reason on the page; the link stays usable.
            raise RunwayError(outcome.message)
        return outcome.message

    async def act(action: EmailAction) -> Outcome:
        business = await oodaloo.directory.get(action.business_id)
        services = oodaloo.services(business)
        actor = action.recipient
        if action.action is ActionKind.BILL_APPROVE:
            return await approve_bill(
                services.bills, bill_id=action.target_id, by=actor, seen_amount=action.amount
            )
        if action.action is ActionKind.BILL_PAY:
            return await pay_bill(
                services.bills, bill_id=action.target_id, by=actor, seen_amount=action.amount
            )
        return await send_reminder(services.invoices, invoice_id=action.target_id, by=actor)

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


def digest_mailer(
    oodaloo: Oodaloo,
    smtp_url: str,
    channel_link: Callable[[str, str], str] = slack_channel_url,
) -> Callable[[DigestContext], Awaitable[list[str]]]:
    """`channel_link(team, channel)` is where the email's "…and N more" opens (Slack's own link
    by default; the demo's page for the demo)."""
    signer = LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=oodaloo.settings.public_url)
    sender = EmailSender(
        smtp_url, links=signer, sender=oodaloo.settings.email_from, channel_link=channel_link
    )

    async def mail(ctx: DigestContext) -> list[str]:
        try:
            return await sender.send_digest(ctx.business, ctx.view, ctx.business.email_recipients)
        except EmailNotSent as failed:
            # Some got it: they are recorded; the rest are named in the log with the reason.
            logger.error("the digest of %s did not reach everyone: %s", ctx.business.id, failed)
            return list(failed.delivered)

    return mail
