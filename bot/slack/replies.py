"""What a person is told when their Slack request could not be done: one translator for every
listener (buttons, `/runway`), so the same failure reads the same wherever it happens.

Domain refusals already speak to people (`runway.errors`); this adds the words for the channel not
being linked, QuickBooks refusing Oodaloo's connection, QuickBooks not answering right now, and
Oodaloo's own database or Redis out of reach for a moment (restarting, say). Anything else is a
bug: it is not translated, so it is logged with its stack.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from bot.slack.mrkdwn import escape
from bot.slack.tenancy import NotLinked
from runway.businesses import NotAnApprover
from runway.errors import RunwayError
from sync import LockTimeout, QBOError, QBOTokenError, QuickBooksUnavailable, redis_unreachable

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
    if _storage_out_of_reach(error):
        logger.warning("Oodaloo's database or Redis could not be reached for a Slack request: %s", error)
        return Explained(
            "Oodaloo lost touch with its own storage for a moment, so this may not have been done. "
            "Nothing is paid twice: if a payment went out, its card will say so within a few "
            "minutes; if the card has not changed, try again."
        )
    if isinstance(error, QBOError):
        logger.warning("QuickBooks refused a Slack request: %s", error)
        return Explained(
            f"QuickBooks refused this: {escape(str(error))}. Nothing was changed; if it goes on, "
            "check the item in QuickBooks."
        )
    return None


def _storage_out_of_reach(error: Exception) -> bool:
    """The database or Redis could not be reached (a lost or refused connection), not a bug."""
    if isinstance(error, OperationalError | InterfaceError):
        return True
    if isinstance(error, DBAPIError):
        # SQLSTATE class 08 is a connection failure, 53300 no connection slot free, 57P0x a server
        # shutting down or starting up.
        sqlstate = str(getattr(error.orig, "sqlstate", None) or "")
        return bool(error.connection_invalidated) or sqlstate.startswith(("08", "53300", "57P"))
    return isinstance(error, ConnectionError) or redis_unreachable(error)


__all__ = ["Explained", "explain"]
