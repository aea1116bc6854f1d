"""When Oodaloo tries a QuickBooks call again, and how long it waits first (tenacity policies).

Only what is safe is retried: reads, and writes carrying their action key as `requestid` (QuickBooks
answers a repeat with the first response instead of applying it twice). Validation faults are never
retried: the same data fails the same way. Which errors qualify is the caller's predicate; this
module owns the timing.

Waits grow exponentially with jitter, so many workers recovering from the same outage do not hit
QuickBooks in step. A 429 waits nothing here: the caller hands Retry-After to the shared rate
limiter, which holds every request of that company (in every process) until it has passed.

Tests and benchmarks shrink every delay with `RetryPolicy.scaled(...)`; nothing is patched.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from sync.qbo.errors import QBOThrottledError

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` tries; before try n+1 wait `initial_delay * multiplier**(n-1)`
    seconds, capped at `max_delay`, plus up to `jitter` of that delay at random."""

    max_attempts: int
    initial_delay: float
    multiplier: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1 or self.jitter < 0:
            raise ValueError(
                "retry delays must be non-negative, the multiplier at least 1 and jitter non-negative"
            )

    def scaled(self, factor: float) -> RetryPolicy:
        """The same policy with every delay multiplied by `factor` (tests: 0.01)."""
        if factor < 0:
            raise ValueError(f"a delay scale must be non-negative, got {factor}")
        return replace(
            self, initial_delay=self.initial_delay * factor, max_delay=self.max_delay * factor
        )

    def delay_before(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed try number `attempt` (1-based) before the next one."""
        base = min(self.initial_delay * self.multiplier ** (attempt - 1), self.max_delay)
        spread = (rng or random).uniform(0, base * self.jitter) if self.jitter else 0.0
        return base + spread

    @property
    def worst_case_wait(self) -> float:
        """The longest total time spent waiting between tries (for sizing leases and timeouts)."""
        return sum(
            min(self.initial_delay * self.multiplier ** (n - 1), self.max_delay)
            * (1 + self.jitter)
            for n in range(1, self.max_attempts)
        )

    def retrying(
        self,
        retry_on: Callable[[BaseException], bool],
        *,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        sleep: Sleep | None = None,
    ) -> AsyncRetrying:
        """A tenacity loop: `async for attempt in policy.retrying(pred): with attempt: ...`.

        The last error is re-raised as itself when the tries run out or `retry_on` says no.
        """

        def wait(state: RetryCallState) -> float:
            outcome = state.outcome
            if outcome is not None and isinstance(outcome.exception(), QBOThrottledError):
                return 0.0  # the shared rate limiter already holds the realm for Retry-After
            return self.delay_before(state.attempt_number)

        options: dict[str, object] = {}
        if sleep is not None:
            options["sleep"] = sleep
        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait,
            retry=retry_if_exception(retry_on),
            reraise=True,
            before_sleep=before_sleep,
            **options,  # type: ignore[arg-type]
        )


#: A click (pay a bill, send a reminder): 1 s then 2 s (never more than 4 s), three tries in all,
#: so the user hears back within seconds and an unresolved outcome goes to reconciliation.
USER_ACTION_RETRY = RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=2.0, max_delay=4.0)
#: Reads for digests and dashboards: a little more patience, a stale cached copy is the fallback.
DATA_FETCH_RETRY = RetryPolicy(max_attempts=4, initial_delay=0.5, multiplier=2.0, max_delay=8.0, jitter=0.25)
#: Background syncs: nobody is waiting, so back off further and let QuickBooks recover.
BULK_RETRY = RetryPolicy(max_attempts=5, initial_delay=2.0, multiplier=2.0, max_delay=30.0, jitter=0.25)


@dataclass(frozen=True)
class RetryPolicies:
    """One policy per kind of work (see the call patterns in the architecture record)."""

    user_action: RetryPolicy = USER_ACTION_RETRY
    data_fetch: RetryPolicy = DATA_FETCH_RETRY
    bulk: RetryPolicy = BULK_RETRY

    def scaled(self, factor: float) -> RetryPolicies:
        return RetryPolicies(
            user_action=self.user_action.scaled(factor),
            data_fetch=self.data_fetch.scaled(factor),
            bulk=self.bulk.scaled(factor),
        )
