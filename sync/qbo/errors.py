"""What can go wrong when Oodaloo talks to QuickBooks Online, as a small exception tree.

Every error carries what the orchestration layer needs to decide what to do next:

- ``outcome``: whether the request certainly did not change anything in QuickBooks
  (``Outcome.NOT_APPLIED``) or might have (``Outcome.UNKNOWN``: the request left, no usable answer
  came back). An unknown write is resolved by resending with the same ``requestid`` (QuickBooks
  replays the original answer) or by reconciliation, never by a blind resend without it.
- ``transient``: whether the same request could succeed later (throttling, outages) or will fail the
  same way until something changes (validation, a stale SyncToken, a revoked connection).
- ``status``, ``code``, ``detail``, ``fault_type`` from QuickBooks' fault body, and ``intuit_tid``,
  the transaction id Intuit support asks for.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sync.errors import QuickBooksUnavailable


class Outcome(enum.Enum):
    """Whether a failed request may have changed data in QuickBooks."""

    NOT_APPLIED = "not_applied"  # QuickBooks certainly did not apply it (refused, or never reached)
    UNKNOWN = "unknown"  # it may have been applied: the answer was lost, late or unreadable


@dataclass(frozen=True)
class FaultDetail:
    """One ``Error`` entry of a QuickBooks fault: ``code`` is a string, as QuickBooks sends it."""

    code: str
    message: str
    detail: str
    element: str


class QBOError(Exception):
    """Base of every QuickBooks failure. ``str()`` says what went wrong and what to do about it."""

    default_outcome: Outcome = Outcome.UNKNOWN
    transient: bool = False
    advice: str = "check the QuickBooks connection and the request, then try again"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        fault_type: str | None = None,
        intuit_tid: str | None = None,
        outcome: Outcome | None = None,
        advice: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.detail = detail
        self.fault_type = fault_type
        self.intuit_tid = intuit_tid
        self.outcome = outcome if outcome is not None else self.default_outcome
        if advice is not None:
            self.advice = advice

    def __str__(self) -> str:
        facts = []
        if self.status is not None:
            facts.append(f"HTTP {self.status}")
        if self.code:
            facts.append(f"code {self.code}")
        if self.intuit_tid:
            facts.append(f"intuit_tid {self.intuit_tid}")
        suffix = f" [{', '.join(facts)}]" if facts else ""
        return f"{self.message}: {self.advice}{suffix}"

    def retryable_safely(self, is_write: bool, has_request_id: bool) -> bool:
        """Whether sending the same request again cannot do harm and might succeed.

        Reads are always safe to repeat. A write whose outcome is unknown is only safe to repeat with
        the same ``requestid``, because QuickBooks then answers from the first attempt instead of
        applying it twice.
        """
        if not self.transient:
            return False
        if self.outcome is Outcome.NOT_APPLIED or not is_write:
            return True
        return has_request_id


class QBOConnectionError(QBOError, QuickBooksUnavailable):
    """No usable HTTP exchange: refused, timed out, or the connection dropped mid-answer.

    ``outcome`` is NOT_APPLIED when the request cannot have reached QuickBooks (connection refused,
    connect timeout, no free connection) and UNKNOWN once it may have been sent.
    """

    transient = True
    advice = (
        "QuickBooks may be unreachable; retry after a pause (writes only with the same requestid)"
    )


class QBOResponseError(QBOError):
    """QuickBooks answered, but not with a body Oodaloo can read (after the request was sent)."""

    transient = True
    advice = (
        "the request reached QuickBooks and its effect is unknown; reads can be retried, "
        "writes only with the same requestid or after checking QuickBooks"
    )


class QBOAuthError(QBOError):
    """HTTP 401: the access token was refused, even after one refresh."""

    default_outcome = Outcome.NOT_APPLIED
    advice = (
        "QuickBooks no longer accepts this connection's tokens; "
        "re-authorise it from Slack with /runway connect"
    )


class QBOAuthorizationError(QBOError):
    """HTTP 403: the token is valid but not for this company (realm) or this operation."""

    default_outcome = Outcome.NOT_APPLIED
    advice = (
        "the connected QuickBooks user may not access this company or operation; reconnect with an "
        "admin user from Slack with /runway connect, or check the company (realm) id"
    )


class QBOTokenError(QBOError):
    """The OAuth token endpoint refused the refresh (invalid_grant, invalid_client, ...)."""

    default_outcome = Outcome.NOT_APPLIED
    advice = "the connection must be re-authorised from Slack with /runway connect"


class QBOThrottledError(QBOError, QuickBooksUnavailable):
    """HTTP 429 (fault 3001 ThrottleExceeded): too many requests for this company."""

    default_outcome = Outcome.NOT_APPLIED
    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        if kwargs.get("advice") is None:
            wait = f"{retry_after:g} s" if retry_after is not None else "60 s, as Intuit advises"
            kwargs["advice"] = (
                f"nothing was applied; wait {wait} before sending more requests for this company"
            )
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QBOValidationError(QBOError):
    """HTTP 400 ValidationFault: QuickBooks refused the data; sending it again fails the same way."""

    default_outcome = Outcome.NOT_APPLIED
    advice = "nothing was applied; correct the data named in the fault before sending it again"

    def __init__(
        self, message: str, *, errors: list[FaultDetail] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.errors: list[FaultDetail] = list(errors or [])


class QBOStaleObjectError(QBOValidationError):
    """Fault 5010: the SyncToken sent is not the object's current one (someone else edited it)."""

    advice = (
        "nothing was applied; someone changed this object in QuickBooks meanwhile: read it again, "
        "check the change still makes sense, and send it with the new SyncToken"
    )


class QBONotFoundError(QBOValidationError):
    """Fault 610 or HTTP 404: the object, or one it refers to, does not exist or is inactive."""

    advice = (
        "nothing was applied; the object or a reference in it was deleted or made inactive in "
        "QuickBooks: sync again and choose an existing one"
    )


class QBOQueryError(QBOValidationError):
    """Fault 4000: QuickBooks could not parse the query statement."""

    advice = "the query statement is invalid for QuickBooks; fix its syntax (quote literals with quote_literal)"


class QBOServerError(QBOError, QuickBooksUnavailable):
    """HTTP 5xx: QuickBooks failed or is unavailable (often an HTML page from its load balancer)."""

    transient = True
    advice = (
        "QuickBooks is failing or unavailable; retry later with backoff "
        "(writes only with the same requestid, since the outcome is unknown)"
    )
