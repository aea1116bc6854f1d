"""What a person is told when their Slack request could not be done: one translator for every
listener (buttons, `/runway`), so the same failure reads the same wherever it happens.

Domain refusals already speak to people (`runway.errors`); this adds the words for the channel not
being linked, QuickBooks refusing Oodaloo's connection, and QuickBooks not answering right now.
Anything else is a bug: it is not translated, so it is logged with its stack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.slack.mrkdwn import escape
from bot.slack.tenancy import NotLinked
from runway.businesses import NotAnApprover
from runway.errors import RunwayError
from sync import LockTimeout, QBOError, QBOTokenError, QuickBooksUnavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Explained:
    #: mrkdwn for the one person who asked.
    text: str
    #: QuickBooks refused Oodaloo's tokens: its reason, for the channel's "disconnected" notice.
    disconnected: str | None = None


def explain(error: Exception) -> Explained | None:
    """The reply for `error`, or None when it is not one a person can act on (a bug)."""
    if isinstance(error, NotLinked):
        return Explained(str(error))
    if isinstance(error, QBOTokenError):
        return Explained(
            f"QuickBooks refused Oodaloo's connection: {escape(str(error))}. "
            "Run `/runway connect` to reconnect.",
            disconnected=str(error),
        )
    if isinstance(error, RunwayError | ValueError | LookupError | NotAnApprover):
        return Explained(escape(str(error)))
    if isinstance(error, QuickBooksUnavailable | LockTimeout):
        logger.warning("QuickBooks could not be reached for a Slack request: %s", error)
        return Explained(
            f"QuickBooks is not answering right now ({escape(str(error))}). Nothing was done "
            "twice: try again in a minute (figures shown meanwhile are the last ones read, with "
            "their time)."
        )
    if isinstance(error, QBOError):
        logger.warning("QuickBooks refused a Slack request: %s", error)
        return Explained(
            f"QuickBooks refused this: {escape(str(error))}. Nothing was changed; if it goes on, "
            "check the item in QuickBooks."
        )
    return None


__all__ = ["Explained", "explain"]
