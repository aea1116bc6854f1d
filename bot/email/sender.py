"""Sending the digest by SMTP: one multipart/alternative message per recipient (its HTML part with
the runway chart inline, as multipart/related), retried safely.

`SMTP_URL` says where and how: `smtp://host:port` (plain, a local relay), `smtp+starttls://` (the
connection is upgraded with STARTTLS, usually port 587) or `smtps://` (TLS from the first byte,
usually port 465), each with optional `user:password@` (percent-encoded where needed).

A connection failure or a 4xx reply (the server's "try again later") is retried up to three tries
in all, waiting 1 s then 2 s; a 5xx reply is the server refusing the message for good and is
never retried: the recipient and the server's reason go into `EmailNotSent`. Each recipient gets
their own message, because each carries their own signed links and unsubscribe link.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bot.chart import runway_chart_png
from bot.email.links import LinkMaker
from bot.email.render import RenderedEmail, render_digest_email, slack_channel_url
from runway.digest import DigestView

logger = logging.getLogger(__name__)

DEFAULT_SENDER = "Oodaloo <runway@oodaloo.local>"
#: Tries in all (the first and two retries) before a transient failure is reported.
SEND_ATTEMPTS = 3
#: Seconds before the first retry; each later wait doubles it (1 s, 2 s, then 4 s at most).
FIRST_WAIT_SECONDS = 1.0
MAX_WAIT_SECONDS = 4.0

_SCHEMES = {
    # scheme: (implicit TLS, STARTTLS, default port)
    "smtp": (False, False, 25),
    "smtp+starttls": (False, True, 587),
    "smtps": (True, False, 465),
}


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool = False

    def __repr__(self) -> str:  # the password stays out of logs
        return (
            f"SmtpServer(hostname={self.hostname!r}, port={self.port}, "
            f"username={self.username!r}, use_tls={self.use_tls}, start_tls={self.start_tls})"
        )

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        """Parse `smtp://user:pass@host:port`, `smtps://…` or `smtp+starttls://…`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(
                f"SMTP_URL cannot be read ({exc}); it should look like "
                "smtp+starttls://user:password@mail.example.com:587"
            ) from None
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise ValueError(
                f"SMTP_URL must start with smtp://, smtp+starttls:// or smtps://, "
                f"not {scheme or 'nothing'}://"
            )
        if not parts.hostname:
            raise ValueError("SMTP_URL names no mail server host, e.g. smtp://mail.example.com:25")
        use_tls, start_tls, default_port = _SCHEMES[scheme]
        return cls(
            hostname=parts.hostname,
            port=port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=use_tls,
            start_tls=start_tls,
        )


@dataclass(frozen=True)
class FailedRecipient:
    recipient: str
    reason: str
    #: The server refused it for good (5xx): sending again will not help.
    permanent: bool


class EmailNotSent(Exception):
    """The email did not reach one or more recipients; says who and why."""

    def __init__(self, failures: Sequence[FailedRecipient], delivered: Sequence[str] = ()) -> None:
        self.failures = tuple(failures)
        self.delivered = tuple(delivered)
        lines = []
        for failure in self.failures:
            advice = (
                "check the address, or remove it from the business's email recipients"
                if failure.permanent
                else "it goes again with the next digest; check SMTP_URL if this repeats"
            )
            lines.append(
                f"The email to {failure.recipient} was not sent: {failure.reason} ({advice})."
            )
        super().__init__(" ".join(lines))

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(failure.recipient for failure in self.failures)


class DigestBusiness(Protocol):
    """What sending needs of a business (runway.models.Business has it)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    #: Where its digest is posted in Slack (None until a channel is chosen).
    @property
    def slack_team_id(self) -> str | None: ...

    @property
    def slack_channel_id(self) -> str | None: ...


def is_transient(error: BaseException) -> bool:
    """A failure worth another try: no connection, a dropped one, or a 4xx reply."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= refused.code < 500 for refused in error.recipients)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    # Connection refused, dropped or timed out (aiosmtplib's own errors for these subclass them).
    return isinstance(error, ConnectionError | TimeoutError | OSError)


def describe_failure(error: BaseException) -> str:
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"the mail server refused it ({refused.code} {refused.message})"
            for refused in error.recipients
        )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"the mail server refused it ({error.code} {error.message})"
    if isinstance(error, aiosmtplib.SMTPException) and not is_transient(error):
        return f"the mail server does not accept these settings ({error})"
    return f"the mail server could not be reached ({type(error).__name__}: {error})"


class EmailSender:
    """Sends Oodaloo's email through one SMTP server."""

    def __init__(
        self,
        smtp_url: str,
        *,
        links: LinkMaker,
        sender: str = DEFAULT_SENDER,
        wait_scale: float = 1.0,
        timeout: float = 30.0,
        channel_link: Callable[[str, str], str] = slack_channel_url,
    ) -> None:
        self.server = SmtpServer.from_url(smtp_url)
        self.links = links
        _name, address = parseaddr(sender)
        if "@" not in address:
            raise ValueError(
                f"the email sender {sender!r} has no address, e.g. 'Oodaloo <runway@example.com>'"
            )
        self.sender = sender
        self.sender_address = address
        self.wait_scale = wait_scale
        self.timeout = timeout
        #: (team id, channel id) -> the URL that opens the channel; the demo's is its own page.
        self.channel_link = channel_link

    # --- composing ---------------------------------------------------------------------------

    def compose(self, rendered: RenderedEmail, recipient: str) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = self.sender
        message["To"] = recipient
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.sender_address.rpartition("@")[2])
        message["Auto-Submitted"] = "auto-generated"
        # RFC 2369 and RFC 8058: mail clients show their own Unsubscribe button, one click, POST.
        message["List-Unsubscribe"] = f"<{rendered.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        html = message.get_body(preferencelist=("html",))
        for image in rendered.images:
            # The HTML part and its images become one multipart/related part.
            assert html is not None
            html.add_related(image.png, maintype="image", subtype="png", cid=f"<{image.cid}>",
                             filename=image.filename, disposition="inline")  # fmt: skip
        return message

    # --- sending -----------------------------------------------------------------------------

    async def send_message(self, message: EmailMessage, recipient: str) -> None:
        """Deliver `message` to `recipient`, retrying transient failures; EmailNotSent if not."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(SEND_ATTEMPTS),
            wait=wait_exponential(
                multiplier=FIRST_WAIT_SECONDS * self.wait_scale,
                max=MAX_WAIT_SECONDS * self.wait_scale,
            ),
            retry=retry_if_exception(is_transient),
            before_sleep=lambda state: logger.warning(
                "email to %s failed (%s); trying again",
                recipient,
                state.outcome.exception() if state.outcome else "unknown",
            ),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._send_once(message, recipient)
        except (aiosmtplib.SMTPException, OSError) as error:
            transient = is_transient(error)
            reason = describe_failure(error)
            if transient:
                reason += f", {SEND_ATTEMPTS} tries"
            raise EmailNotSent([FailedRecipient(recipient, reason, not transient)]) from error

    async def _send_once(self, message: EmailMessage, recipient: str) -> None:
        await aiosmtplib.send(
            message,
            sender=self.sender_address,
            recipients=[recipient],
            hostname=self.server.hostname,
            port=self.server.port,
            username=self.server.username,
            password=self.server.password,
            use_tls=self.server.use_tls,
            start_tls=self.server.start_tls,
            timeout=self.timeout,
        )

    async def send_digest(
        self, business: DigestBusiness, view: DigestView, recipients: Iterable[str]
    ) -> list[str]:
        """Email the digest to each recipient; returns those it reached.

        Every recipient is tried even when one fails; if any failed, EmailNotSent names each of
        them and why, and its `delivered` lists who did get it.
        """
        if view.business_id != business.id:
            raise ValueError(
                f"the digest is business {view.business_id}'s, not {business.id}'s; "
                "build the digest of the business it is sent for"
            )
        delivered: list[str] = []
        failures: list[FailedRecipient] = []
        chart = await chart_png(view)
        addresses, malformed = unique_addresses(recipients)
        failures.extend(
            FailedRecipient(bad, "it is not one plain email address", True) for bad in malformed
        )
        team, channel = business.slack_team_id, business.slack_channel_id
        slack_url = self.channel_link(team, channel) if team and channel else None
        for recipient in addresses:
            rendered = render_digest_email(
                view,
                business_name=business.name,
                links=self.links,
                recipient=recipient,
                chart_png=chart,
                slack_url=slack_url,
            )
            try:
                await self.send_message(self.compose(rendered, recipient), recipient)
            except EmailNotSent as not_sent:
                logger.warning("digest of %s: %s", business.id, not_sent)
                failures.extend(not_sent.failures)
            else:
                delivered.append(recipient)
        if failures:
            raise EmailNotSent(failures, delivered)
        return delivered


async def chart_png(view: DigestView) -> bytes | None:
    """The digest's chart, drawn off the event loop; None (logged) if it cannot be drawn: the
    email then goes without it, its text part still says the numbers."""
    try:
        return await asyncio.to_thread(runway_chart_png, view)
    except Exception:  # a picture is not worth a digest: it goes without it
        logger.exception("the chart of %s could not be drawn; the email goes without it",
                         view.business_id)
        return None


def is_plain_address(text: str) -> bool:
    """One bare address like owner@example.com: nothing that could add a header or a recipient."""
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError):
        return False
    return parsed.addr_spec == text and bool(parsed.username) and "." in parsed.domain


def unique_addresses(recipients: Iterable[str]) -> tuple[list[str], list[str]]:
    """(addresses in order, each once compared without case; the entries that are not one plain
    address). Blanks are dropped."""
    seen: set[str] = set()
    addresses: list[str] = []
    malformed: list[str] = []
    for raw in recipients:
        recipient = raw.strip()
        if not recipient:
            continue
        if not is_plain_address(recipient):
            malformed.append(recipient)
        elif recipient.lower() not in seen:
            seen.add(recipient.lower())
            addresses.append(recipient)
    return addresses, malformed
