"""Signed links in the digest email: one-time actions (approve, pay, remind) and unsubscribe.

A token is `payload.signature`: the payload is compact JSON in urlsafe base64 (no padding) naming
the business, the action, its target, the recipient the email went to, when the link expires and a
random nonce; the signature is HMAC-SHA256 of the encoded payload under the server's secret. Nothing
is stored when a link is made: the signature proves Oodaloo wrote the link, the expiry bounds how
long a forwarded email stays dangerous, and the nonce (recorded when the link is used, see
`bot.email.models.EmailLinkUse`) makes each link act once.

Unsubscribe links are signed the same way but never expire (an old email must still unsubscribe)
and need no nonce (unsubscribing twice changes nothing). The payload's purpose field keeps the two
kinds apart: an unsubscribe token can never be read as an action and the reverse.

The secret is a key ring (EMAIL_LINK_KEY, newest first): the newest key signs, every key verifies,
so a key can be replaced without breaking the links of emails already sent.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sync import Clock, exact_cents

#: How long an action link in an email works.
DEFAULT_LINK_TTL = timedelta(hours=72)
#: Secrets shorter than this are refused: HMAC is only as strong as its key.
MIN_SECRET_BYTES = 32

_ACT = "act"
_UNSUBSCRIBE = "unsub"


class ActionKind(enum.StrEnum):
    BILL_APPROVE = "bill_approve"
    BILL_PAY = "bill_pay"
    INVOICE_REMIND = "invoice_remind"


@dataclass(frozen=True, slots=True)
class EmailAction:
    """What a verified action link asks for."""

    business_id: str
    action: ActionKind
    #: The QuickBooks id of the bill or invoice.
    target_id: str
    #: The address the email went to (whoever clicks acts in that person's name).
    recipient: str
    expires_at: datetime
    nonce: str
    #: For a payment: the amount the email showed, so the click pays what the reader saw.
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class UnsubscribeRequest:
    business_id: str
    recipient: str


class BadLink(ValueError):
    """The token was not written by this server (altered, truncated, or signed with another key)."""


class ExpiredLink(ValueError):
    """A genuine action link, past its expiry."""

    def __init__(self, action: EmailAction) -> None:
        super().__init__(
            f"The link to {action.action.value} {action.target_id} expired at "
            f"{action.expires_at.isoformat(timespec='minutes')}"
        )
        self.action = action


class LinkMaker(Protocol):
    """What the digest renderer needs: the URLs to put behind its buttons, and how long they work."""

    ttl: timedelta

    def action_url(
        self,
        business_id: str,
        action: ActionKind,
        target_id: str,
        recipient: str,
        *,
        amount: Decimal | None = None,
    ) -> str: ...

    def unsubscribe_url(self, business_id: str, recipient: str) -> str: ...


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadLink("the link is not one Oodaloo wrote (it is not valid base64)") from exc


def _field(payload: dict[str, Any], key: str) -> str:
    """A text field of a link's payload, as Oodaloo wrote it: non-empty text without NUL."""
    value = payload[key]
    if not isinstance(value, str) or not value or "\x00" in value or len(value) > 320:
        raise TypeError(f"the link's {key!r} is not text Oodaloo writes")
    try:
        value.encode("utf-8")  # a lone surrogate ("\ud800" in the JSON) is not text
    except UnicodeEncodeError:
        raise TypeError(f"the link's {key!r} is not text Oodaloo writes") from None
    return value


class LinkSigner:
    """Makes and verifies the signed links of the digest email (a `LinkMaker`)."""

    def __init__(
        self,
        secret: bytes | Sequence[bytes],
        clock: Clock,
        *,
        public_url: str,
        ttl: timedelta = DEFAULT_LINK_TTL,
    ) -> None:
        # One secret, or a ring of them newest first: the first signs, every one verifies.
        ring = [secret] if isinstance(secret, bytes) else list(secret)
        if not ring:
            raise ValueError("the email link signer needs at least one secret")
        for key in ring:
            if len(key) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"the email link secret must be at least {MIN_SECRET_BYTES} random bytes, "
                    f"got {len(key)}; generate one with secrets.token_bytes(32)"
                )
        if not public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be an http(s) URL, got {public_url!r}")
        if ttl <= timedelta(0):
            raise ValueError(f"links must live a positive time, got {ttl}")
        self._secrets = tuple(ring)
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl

    def __repr__(self) -> str:  # the secret stays out of logs
        return f"LinkSigner(public_url={self.public_url!r}, ttl={self.ttl})"

    # --- making links ------------------------------------------------------------------------

    def action_token(
        self,
        business_id: str,
        action: ActionKind,
        target_id: str,
        recipient: str,
        *,
        amount: Decimal | None = None,
    ) -> str:
        expires_at = self.clock.now() + self.ttl
        payload: dict[str, Any] = {
            "p": _ACT,
            "b": business_id,
            "a": ActionKind(action).value,
            "t": str(target_id),
            "r": recipient,
            "e": int(expires_at.timestamp()),
            "n": secrets.token_urlsafe(12),
        }
        if amount is not None:
            payload["m"] = str(amount)
        return self._sign(payload)

    def action_url(
        self,
        business_id: str,
        action: ActionKind,
        target_id: str,
        recipient: str,
        *,
        amount: Decimal | None = None,
    ) -> str:
        token = self.action_token(business_id, action, target_id, recipient, amount=amount)
        return f"{self.public_url}/email/act/{token}"

    def unsubscribe_token(self, business_id: str, recipient: str) -> str:
        return self._sign({"p": _UNSUBSCRIBE, "b": business_id, "r": recipient})

    def unsubscribe_url(self, business_id: str, recipient: str) -> str:
        return (
            f"{self.public_url}/email/unsubscribe/{self.unsubscribe_token(business_id, recipient)}"
        )

    # --- reading links -----------------------------------------------------------------------

    def read_action(self, token: str) -> EmailAction:
        """The action a token asks for. BadLink if it is not genuine; ExpiredLink if too old."""
        payload = self._verify(token, _ACT)
        try:
            amount = None if payload.get("m") is None else exact_cents(Decimal(_field(payload, "m")))
            expires = payload["e"]
            if not isinstance(expires, int) or isinstance(expires, bool):
                raise TypeError("the expiry is not a whole number of seconds")
            action = EmailAction(
                business_id=_field(payload, "b"),
                action=ActionKind(payload["a"]),
                target_id=_field(payload, "t"),
                recipient=_field(payload, "r"),
                expires_at=datetime.fromtimestamp(expires, UTC),
                nonce=_field(payload, "n"),
                amount=amount,
            )
            if amount is not None and amount <= 0:
                raise ValueError(f"the amount {amount} is not an amount of money")
        except (KeyError, ValueError, TypeError, InvalidOperation, OverflowError, OSError) as exc:
            # Signed by us yet malformed: only a key shared with other software could do this.
            raise BadLink("the link's contents are not an action Oodaloo understands") from exc
        if self.clock.now() >= action.expires_at:
            raise ExpiredLink(action)
        return action

    def read_unsubscribe(self, token: str) -> UnsubscribeRequest:
        payload = self._verify(token, _UNSUBSCRIBE)
        try:
            return UnsubscribeRequest(business_id=_field(payload, "b"), recipient=_field(payload, "r"))
        except (KeyError, TypeError) as exc:
            raise BadLink("the unsubscribe link's contents are incomplete") from exc

    # --- other signed links (the digest's chart image, `bot.chart_links`) -----------------------

    def sign(self, purpose: str, fields: dict[str, Any]) -> str:
        """A token carrying `fields` for `purpose`, under the same key ring; never readable as
        an email action or unsubscribe link (their purposes are refused here)."""
        if purpose in (_ACT, _UNSUBSCRIBE) or "p" in fields:
            raise ValueError(f"the purpose {purpose!r} (or a field named 'p') is the email's own")
        return self._sign({"p": purpose, **fields})

    def verify(self, token: str, purpose: str) -> dict[str, Any]:
        """The fields of a token `sign` made for `purpose`; BadLink for anything else."""
        fields = self._verify(token, purpose)
        fields.pop("p")
        return fields

    # --- signing -----------------------------------------------------------------------------

    def _signature(self, encoded_payload: str, secret: bytes | None = None) -> str:
        key = self._secrets[0] if secret is None else secret
        digest = hmac.new(key, encoded_payload.encode("ascii"), hashlib.sha256).digest()
        return _b64encode(digest)

    def _sign(self, payload: dict[str, Any]) -> str:
        encoded = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
        return f"{encoded}.{self._signature(encoded)}"

    def _verify(self, token: str, purpose: str) -> dict[str, Any]:
        encoded, dot, signature = token.partition(".")
        if not dot or not encoded or not signature:
            raise BadLink("the link is incomplete (it may have been cut when copied)")
        try:
            expected = [self._signature(encoded, key) for key in self._secrets]
        except UnicodeEncodeError as exc:
            raise BadLink("the link holds characters Oodaloo never writes") from exc
        # Every key is compared (no early exit), so timing tells nothing about which one matched.
        matches = [hmac.compare_digest(candidate, signature) for candidate in expected]
        if not any(matches):
            raise BadLink("the link's signature does not match (it was altered or cut short)")
        try:
            payload = json.loads(_b64decode(encoded))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadLink("the link's contents cannot be read") from exc
        if not isinstance(payload, dict) or payload.get("p") != purpose:
            raise BadLink("the link is not meant for this page")
        return payload
