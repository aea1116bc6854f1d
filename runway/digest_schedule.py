"""When a business's weekly digest comes: its day and time on its own clock (daylight saving
included). A snooze lasts until the next one."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from runway.models import Business


def next_digest_time(business: Business, now: datetime) -> datetime:
    """The business's next digest moment after the aware instant `now`."""
    zone = ZoneInfo(business.timezone)
    local = now.astimezone(zone)
    days_ahead = (business.digest_weekday - local.weekday()) % 7
    candidate = datetime.combine(
        local.date() + timedelta(days=days_ahead), business.digest_local_time, tzinfo=zone
    )
    if candidate <= now:
        candidate += timedelta(days=7)
    return candidate


__all__ = ["next_digest_time"]
