"""The weekly digest by email: rendering, sending over SMTP, and the signed links in it.

- `render_digest_email(view, business_name=, links=, recipient=, slack_url=)`: subject, text, HTML.
- `EmailSender(smtp_url, links=).send_digest(business, view, recipients)`: one message each.
- `LinkSigner(secret, clock, public_url=)`: signed one-time action links and unsubscribe links.
- `email_routes(signer, perform=, unsubscribe=, engine=)`: the pages those links open.
"""

from bot.email.describe import Confirmation, default_question, mirror_describer
from bot.email.links import (
    DEFAULT_LINK_TTL,
    ActionKind,
    BadLink,
    EmailAction,
    ExpiredLink,
    LinkMaker,
    LinkSigner,
    UnsubscribeRequest,
)
from bot.email.models import EmailBase, EmailLinkUse
from bot.email.recipients import remove_recipient, unsubscriber
from bot.email.render import RenderedEmail, render_digest_email
from bot.email.routes import email_routes
from bot.email.sender import EmailNotSent, EmailSender, FailedRecipient, SmtpServer

__all__ = [
    "DEFAULT_LINK_TTL",
    "ActionKind",
    "BadLink",
    "Confirmation",
    "EmailAction",
    "EmailBase",
    "EmailLinkUse",
    "EmailNotSent",
    "EmailSender",
    "ExpiredLink",
    "FailedRecipient",
    "LinkMaker",
    "LinkSigner",
    "RenderedEmail",
    "SmtpServer",
    "UnsubscribeRequest",
    "default_question",
    "email_routes",
    "mirror_describer",
    "remove_recipient",
    "render_digest_email",
    "unsubscriber",
]
