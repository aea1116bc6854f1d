"""Time, injectable: wall-clock `now()` for timestamps users see, `monotonic()` for measuring waits.

Production code takes a `Clock` so tests can move time by hand (`ManualClock`) instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never goes backwards; only differences mean anything."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that stands still until a test moves it; `now()` and `monotonic()` move together."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError(
                "ManualClock needs a timezone-aware start time, e.g. datetime(..., tzinfo=UTC)"
            )
        self._now = start
        self._monotonic = 1_000.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, by: float | timedelta) -> None:
        """Move time forward by `by` seconds (or a timedelta)."""
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"a clock only moves forward; got a step of {step}")
        self._now += step
        self._monotonic += step.total_seconds()

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (not earlier than the current time)."""
        if moment.tzinfo is None:
            raise ValueError("ManualClock.set needs a timezone-aware datetime")
        self.advance(moment - self._now)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now.isoformat()})"


def ensure_aware(moment: datetime, what: str) -> datetime:
    """Return `moment` unchanged, or refuse a naive datetime, saying which value it was."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {moment.isoformat()})")
    return moment
