"""The web pages behind the digest email's links.

`GET /email/act/{token}` only ever shows a confirmation page: mail scanners and link previewers
open every link in an email, so an action that ran on GET would run without anyone clicking. A
link with nothing left to do (the bill was paid meanwhile) says so there, without a button. The
page's button POSTs to the same URL, which checks the signature, the expiry and that the link was
not used before, records its use (the once-only guard), and only then calls `perform`.

`/email/unsubscribe/{token}`: GET asks, POST unsubscribes. Mail clients that honour RFC 8058's
List-Unsubscribe-Post POST there directly ("List-Unsubscribe=One-Click"), which is the same thing.

Pages are small autoescaped Jinja templates (templates/email/); what `perform` and `describe`
return is plain text and is escaped like everything else.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.email.describe import Confirmation, default_question
from bot.email.links import ActionKind, BadLink, EmailAction, ExpiredLink, LinkSigner
from bot.email.models import EmailLinkUse
from bot.email.render import render_page
from runway.businesses import BusinessNotFound
from runway.errors import RunwayError
from runway.formatting import format_moment

logger = logging.getLogger(__name__)

Perform = Callable[[EmailAction], Awaitable[str]]
Describe = Callable[[EmailAction], Awaitable[Confirmation]]
Unsubscribe = Callable[[str, str], Awaitable[None]]

EXPIRED_MESSAGE = "This link has expired; use the buttons in Slack or the next digest."
BAD_LINK_MESSAGE = (
    "This link is not valid: it may have been cut short or changed when it was copied. "
    "Open it straight from the email, or use the buttons in Slack."
)


BUTTONS = {
    ActionKind.BILL_APPROVE: "Approve",
    ActionKind.BILL_PAY: "Pay",
    ActionKind.INVOICE_REMIND: "Send reminder",
}


class LinkUses:
    """The `email_link_uses` table: claiming a link's nonce is what makes the link act once."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def find(self, nonce: str) -> EmailLinkUse | None:
        async with self.sessions() as session:
            return await session.scalar(select(EmailLinkUse).where(EmailLinkUse.nonce == nonce))

    async def claim(self, action: EmailAction, now: datetime) -> bool:
        """True when this request is the first to use the link (the insert is the guard)."""
        async with self.sessions() as session:
            session.add(
                EmailLinkUse(
                    nonce=action.nonce,
                    used_at=now,
                    business_id=action.business_id,
                    action=action.action.value,
                    target=action.target_id,
                    recipient=action.recipient,
                    outcome=None,
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                return False
        return True

    async def finish(self, nonce: str, outcome: str) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(EmailLinkUse).where(EmailLinkUse.nonce == nonce).values(outcome=outcome)
            )
            await session.commit()

    async def release(self, nonce: str) -> None:
        """The action did not happen: the link may be used again."""
        async with self.sessions() as session:
            await session.execute(delete(EmailLinkUse).where(EmailLinkUse.nonce == nonce))
            await session.commit()


def _page(name: str, status: int = 200, **context: object) -> HTMLResponse:
    # Pages behind one-time links: never cached, never indexed.
    headers = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex"}
    return HTMLResponse(render_page(name, **context), status_code=status, headers=headers)


def _problem(status: int, heading: str, message: str, detail: str | None = None) -> HTMLResponse:
    return _page("link_problem.html.j2", status, heading=heading, message=message, detail=detail)


def _token(request: Request) -> str:
    """The link's token; BadLink for one holding what Oodaloo never writes (its tokens are
    urlsafe base64 and a dot, so ASCII only: anything else was changed on the way)."""
    token: str = request.path_params["token"]
    if not token.isascii() or not token.isprintable():
        raise BadLink("the link holds characters Oodaloo never writes")
    return token


def _already_done(use: EmailLinkUse) -> HTMLResponse:
    if use.outcome is None:
        detail = "It is being done right now; check Slack for the result in a moment."
    else:
        detail = f"Result: {use.outcome}"
    return _problem(409, "Already done", "This link was already used: it is already done.", detail)


def email_routes(
    signer: LinkSigner,
    *,
    perform: Perform,
    unsubscribe: Unsubscribe,
    engine: AsyncEngine,
    describe: Describe | None = None,
) -> list[Route]:
    """Starlette routes for the email's action and unsubscribe links.

    `perform(action)` does the action (approve, pay, remind) and returns the sentence shown on
    the result page; a `RunwayError` it raises is shown as the reason and leaves the link usable.
    `describe(action)` words the confirmation question (e.g. "Pay $1,234.56 to Acme Supplies?"),
    or why there is nothing to do, and names the business's timezone for the link's expiry;
    without it the question is built from the link itself and times are in UTC.
    `unsubscribe(business_id, recipient)` removes the address from the business's digest list
    (see `bot.email.recipients`).
    """
    uses = LinkUses(engine)

    async def confirmation_for(action: EmailAction) -> Confirmation:
        if describe is None:
            return Confirmation(default_question(action))
        try:
            return await describe(action)
        except (RunwayError, BusinessNotFound) as problem:
            logger.info("describing %s %s: %s", action.action, action.target_id, problem)
            return Confirmation(default_question(action))

    async def act(request: Request) -> HTMLResponse:
        try:
            action = signer.read_action(_token(request))
        except ExpiredLink:
            return _problem(410, "Link expired", EXPIRED_MESSAGE)
        except BadLink as problem:
            return _problem(
                400, "Link not valid", BAD_LINK_MESSAGE, str(problem).capitalize() + "."
            )
        if request.method != "POST":  # GET and HEAD (which Starlette routes here too) only read
            used = await uses.find(action.nonce)
            if used is not None:
                return _already_done(used)
            confirmation = await confirmation_for(action)
            return _page(
                "act_confirm.html.j2",
                question=confirmation.question,
                can_act=confirmation.can_act,
                button=BUTTONS[action.action],
                expires=format_moment(
                    action.expires_at, confirmation.timezone or "UTC", confirmation.locale
                ),
            )
        if not await uses.claim(action, signer.clock.now()):
            used = await uses.find(action.nonce)
            if used is None:  # released by a failed attempt between the two reads
                return _problem(409, "Try again", "This link was being used; reload the page.")
            return _already_done(used)
        try:
            outcome = await perform(action)
        except RunwayError as refusal:
            await uses.release(action.nonce)
            return _problem(422, "Not done", str(refusal))
        except BusinessNotFound:
            await uses.release(action.nonce)
            return _problem(
                404,
                "Not done",
                "The business this email was sent for is no longer on Oodaloo, so nothing was done.",
            )
        except Exception:
            await uses.release(action.nonce)
            logger.exception("email action %s on %s failed", action.action, action.target_id)
            return _problem(
                503,
                "Not done",
                "Oodaloo could not finish this just now and nothing was done. "
                "Try the link again in a few minutes, or use the buttons in Slack.",
            )
        await uses.finish(action.nonce, outcome)
        return _page("act_done.html.j2", outcome=outcome)

    async def unsubscribe_link(request: Request) -> HTMLResponse:
        try:
            asked = signer.read_unsubscribe(_token(request))
        except BadLink as problem:
            return _problem(
                400, "Link not valid", BAD_LINK_MESSAGE, str(problem).capitalize() + "."
            )
        if request.method != "POST":  # GET and HEAD (which Starlette routes here too) only read
            return _page("unsubscribe_confirm.html.j2", recipient=asked.recipient)
        try:
            await unsubscribe(asked.business_id, asked.recipient)
        except BusinessNotFound:
            pass  # the business is gone: nothing will be sent to anyone
        return _page("unsubscribe_done.html.j2", recipient=asked.recipient)

    return [
        Route("/email/act/{token}", act, methods=["GET", "POST"], name="email_act"),
        Route(
            "/email/unsubscribe/{token}",
            unsubscribe_link,
            methods=["GET", "POST"],
            name="email_unsubscribe",
        ),
    ]
