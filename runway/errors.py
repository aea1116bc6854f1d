"""Domain errors: each says, in words an owner understands, what went wrong and what to do next.

Services raise these instead of returning half-done results; the Slack and email layers show
`str(error)` as it is, so messages never mention tables, keys or stack traces.
"""

from __future__ import annotations

from datetime import datetime


class RunwayError(Exception):
    """Base of every refusal or failure the runway domain reports to a user."""


class NotFound(RunwayError):
    """The object does not exist for this business (another business's id is "not found" too)."""

    def __init__(self, what: str, object_id: str) -> None:
        super().__init__(
            f"{what} {object_id} was not found in this business's QuickBooks books; "
            "it may have been deleted, or the books need a fresh sync"
        )
        self.what = what
        self.object_id = object_id


class NotAllowed(RunwayError):
    """The person asking is not allowed to do this for the business (not one of its approvers)."""


class PaymentRefused(RunwayError):
    """A bill payment that Oodaloo will not send; `reason` is the plain explanation."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ApprovalRefused(RunwayError):
    """An approval that cannot be recorded (bill already paid, the same person approving twice)."""


class AlreadyApproved(ApprovalRefused):
    """The person already approved the bill, or it already has every approval it needs."""


class ReminderRefused(RunwayError):
    """An invoice reminder that will not be sent now; `next_allowed_at` says when one may go."""

    def __init__(self, reason: str, next_allowed_at: datetime | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.next_allowed_at = next_allowed_at


class BusinessNotReady(RunwayError):
    """The business lacks something a service needs (its QuickBooks company, a bank account)."""


__all__ = [
    "AlreadyApproved",
    "ApprovalRefused",
    "BusinessNotReady",
    "NotAllowed",
    "NotFound",
    "PaymentRefused",
    "ReminderRefused",
    "RunwayError",
]
