"""What the worker's jobs do, as the worker sees it: a protocol the composition root implements.

The worker decides *when* (schedules, leader, queue); `RitualJobs` decides *what* (sync the mirror,
build and post the digest, reconcile, refresh tokens) with the domain services. Implementations must
be safe to call twice for the same firing: a job whose worker died mid-run is run again by the queue,
a new leader catches up on the firing its predecessor may have lost, and the digest sweep asks for
each recent digest again until it is sent (`send_digest` gets `scheduled_for` so it can tell "this
week's digest was already sent", or is being sent, or failed and is due for another try).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: The scheduler's job id of a business's weekly digest is this prefix and the business's id.
DIGEST_PREFIX = "digest:"
#: How late a weekly digest may still go out (the worker was down, its firing was lost with a
#: leader, it failed and is tried again): a worker back at 9:30 sends the 8:00 digest, one back the
#: next day does not send Monday's as if it were this week's (next week's comes on time).
DIGEST_CATCH_UP = datetime.timedelta(hours=6)


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
        except (ZoneInfoNotFoundError, ValueError, OSError) as error:
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


def digest_trigger(schedule: BusinessSchedule) -> CronTrigger:
    """Weekly at the business's local digest time; the zone makes it follow daylight saving."""
    at = schedule.digest_local_time
    return CronTrigger(
        day_of_week=schedule.digest_weekday,
        hour=at.hour,
        minute=at.minute,
        second=at.second,
        timezone=schedule.zone,
    )


def latest_digest_due(
    schedule: BusinessSchedule, at: datetime.datetime
) -> datetime.datetime | None:
    """The instant (UTC) of the business's latest weekly digest due at or before `at`: the same
    instant the scheduler fires it for, so both name the same digest."""
    trigger = digest_trigger(schedule)
    # A week and a day back always holds one firing, whatever daylight saving did in between.
    moment = at - datetime.timedelta(days=8)
    latest: datetime.datetime | None = None
    previous: datetime.datetime | None = None
    while True:
        fire = trigger.get_next_fire_time(previous, moment)
        if fire is None or fire > at:
            return latest.astimezone(datetime.UTC) if latest is not None else None
        latest = previous = fire
        moment = fire + datetime.timedelta(seconds=1)


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
