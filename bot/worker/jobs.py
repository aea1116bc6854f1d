"""What the worker's jobs do, as the worker sees it: a protocol the composition root implements.

The worker decides *when* (schedules, leader, queue); `RitualJobs` decides *what* (sync the mirror,
build and post the digest, reconcile, refresh tokens) with the domain services. Implementations must
be safe to call twice for the same firing: a job whose worker died mid-run is run again by the queue
(`send_digest` gets `scheduled_for` so it can tell "this week's digest was already sent").
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class BusinessSchedule:
    """When one connected business gets its weekly digest, in its own timezone."""

    business_id: str
    timezone: str
    digest_weekday: int  # 0 = Monday
    digest_local_time: datetime.time

    def __post_init__(self) -> None:
        if not self.business_id:
            raise ValueError("a business schedule needs the business's id")
        if not 0 <= self.digest_weekday <= 6:
            raise ValueError(
                f"business {self.business_id}: digest_weekday must be 0 (Monday) to 6 (Sunday), "
                f"got {self.digest_weekday}"
            )
        if self.digest_local_time.tzinfo is not None:
            raise ValueError(
                f"business {self.business_id}: digest_local_time is a wall-clock time in the "
                "business's timezone; give it without tzinfo"
            )
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"business {self.business_id}: unknown timezone {self.timezone!r}; use an IANA "
                "name such as America/New_York"
            ) from error

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        return (
            f"{WEEKDAY_NAMES[self.digest_weekday]}s at "
            f"{self.digest_local_time.strftime('%H:%M')} {self.timezone}"
        )


class RitualJobs(Protocol):
    async def schedules(self) -> list[BusinessSchedule]:
        """Every connected business and when it wants its digest."""
        ...

    async def sync_if_due(self, business_id: str) -> None:
        """Ask the sync timing whether the business's mirror is due; sync it; then check drift."""
        ...

    async def send_digest(self, business_id: str, scheduled_for: datetime.datetime) -> None:
        """Build and deliver the weekly digest that was due at `scheduled_for` (UTC-aware)."""
        ...

    async def reconcile_sweep(self) -> None:
        """Resolve writes whose outcome is unknown, for every business."""
        ...

    async def refresh_tokens(self) -> None:
        """Refresh QuickBooks tokens that expire soon."""
        ...
