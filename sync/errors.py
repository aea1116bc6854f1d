"""The one exception that means "QuickBooks cannot be used right now; try again later".

Several parts of `sync` can refuse or fail a call for reasons that pass with time: the circuit
breaker is open after repeated failures (`CircuitOpen`), the rate limiter found no free request
slot (`RateLimitError`, `RateLimitTimeout`), QuickBooks could not be reached or failed with a 5xx
after the retries (`QBOConnectionError`, `QBOServerError`), it kept throttling (`QBOThrottledError`),
or nothing could be read and no earlier copy exists (`SyncUnavailable`). All of them derive from
`QuickBooksUnavailable`, so the layers above catch one class where they mean "unavailable now".

It does NOT cover errors that will not pass by waiting: a refused connection or token
(`QBOAuthError`, `QBOTokenError`), data QuickBooks rejected (`QBOValidationError` and its kin), or
an answer Oodaloo could not read (`QBOResponseError`). Those are `QBOError`s and must be handled as
such.

This module imports nothing, so every part of `sync` can derive from it without import cycles.
"""

from __future__ import annotations

DEFAULT_MESSAGE = "QuickBooks is not answering right now. Nothing was changed; try again in a few minutes"


class QuickBooksUnavailable(Exception):
    """QuickBooks cannot be used right now; the same request can succeed later.

    ``str()`` says what went wrong and that trying again later is the remedy. Subclasses keep
    their own messages (each names the cause and when to retry).
    """

    def __init__(self, message: str = DEFAULT_MESSAGE) -> None:
        super().__init__(message)


__all__ = ["DEFAULT_MESSAGE", "QuickBooksUnavailable"]
