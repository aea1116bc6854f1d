"""When to sync a business with QuickBooks: often while its owner is looking, rarely when not.

Every sync and its outcome are persisted (table `sync_timing`), as is the last time each business's
user did something (table `sync_user_activity`), so any process or scheduler can ask "is a sync due
for this business?" and get the same answer, instead of guessing or syncing on every request.

- USER_ACTIVE: the user did something recently → refresh every 15 minutes.
- IDLE: nobody is looking → every 4 hours keeps the weekly digest fresh without spending rate limit.
- AFTER_ACTION: an action reached QBO since the last sync → sync again within a minute so the
  numbers reflect the payment the user just made.
- FORCED: the user or an operator asked for it → always.

Failed syncs back off exponentially (1 min, 2 min, 4 min … capped at 1 hour) so an outage is not
hammered, except for FORCED syncs.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Integer, String, Text, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from sync.clock import Clock
from sync.db import SyncBase, UTCDateTime
from sync.ledger import ActionRow

#: The platform every QBO sync is recorded under.
QBO_PLATFORM = "qbo"


class SyncStrategy(Enum):
    USER_ACTIVE = "user_active"
    IDLE = "idle"
    AFTER_ACTION = "after_action"
    FORCED = "forced"


@dataclass(frozen=True)
class SyncIntervals:
    """How often to sync under each strategy, and how strategies are recognised."""

    user_active: timedelta = timedelta(minutes=15)
    idle: timedelta = timedelta(hours=4)
    after_action: timedelta = timedelta(minutes=1)
    #: User activity this recent makes a business USER_ACTIVE.
    active_window: timedelta = timedelta(minutes=30)
    #: An action this recent, newer than the last successful sync, makes it AFTER_ACTION.
    after_action_window: timedelta = timedelta(hours=1)
    #: Wait after the first failed sync; doubles with each further failure, up to the maximum.
    failure_backoff: timedelta = timedelta(minutes=1)
    max_failure_backoff: timedelta = timedelta(hours=1)

    def interval(self, strategy: SyncStrategy) -> timedelta:
        return {
            SyncStrategy.USER_ACTIVE: self.user_active,
            SyncStrategy.IDLE: self.idle,
            SyncStrategy.AFTER_ACTION: self.after_action,
            SyncStrategy.FORCED: timedelta(0),
        }[strategy]

    def backoff(self, consecutive_failures: int) -> timedelta:
        if consecutive_failures <= 0:
            return timedelta(0)
        # Cap the exponent before multiplying so a long outage cannot overflow timedelta.
        doublings = min(consecutive_failures - 1, 32)
        return min(self.failure_backoff * (1 << doublings), self.max_failure_backoff)


@dataclass(frozen=True)
class SyncStatus:
    """What is known about one business's syncs with one platform."""

    business_id: str
    platform: str
    last_attempt_at: datetime | None
    last_success_at: datetime | None  # the "as of" of the business's synced numbers
    last_failure_at: datetime | None
    consecutive_failures: int
    last_strategy: SyncStrategy | None
    last_error: str | None


def due_at(
    status: SyncStatus | None, strategy: SyncStrategy, intervals: SyncIntervals, now: datetime
) -> datetime:
    """When the next sync is due under `strategy` (at or before `now` means: sync now)."""
    if strategy is SyncStrategy.FORCED or status is None or status.last_attempt_at is None:
        return now
    candidates: list[datetime] = []
    if status.last_success_at is not None:
        candidates.append(status.last_success_at + intervals.interval(strategy))
    if status.consecutive_failures > 0:
        candidates.append(status.last_attempt_at + intervals.backoff(status.consecutive_failures))
    return max(candidates, default=now)


class SyncTimingRow(SyncBase):
    __tablename__ = "sync_timing"

    business_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    consecutive_failures: Mapped[int] = mapped_column(Integer)
    last_strategy: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class UserActivityRow(SyncBase):
    __tablename__ = "sync_user_activity"

    business_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_active_at: Mapped[datetime] = mapped_column(UTCDateTime())


def _to_status(row: SyncTimingRow) -> SyncStatus:
    return SyncStatus(
        business_id=row.business_id,
        platform=row.platform,
        last_attempt_at=row.last_attempt_at,
        last_success_at=row.last_success_at,
        last_failure_at=row.last_failure_at,
        consecutive_failures=row.consecutive_failures,
        last_strategy=None if row.last_strategy is None else SyncStrategy(row.last_strategy),
        last_error=row.last_error,
    )


def _upsert(session: AsyncSession, row_type: type[SyncBase]) -> Any:
    """INSERT ... ON CONFLICT for the session's database (both dialects spell it the same way)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(row_type)
    if dialect == "sqlite":
        return sqlite.insert(row_type)
    raise ValueError(f"sync timing supports SQLite and PostgreSQL, not {dialect}")


class SyncTimingStore:
    """Persistent sync timing per business and platform. Each method is one short transaction."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        intervals: SyncIntervals | None = None,
    ) -> None:
        self._sessions = sessionmaker
        self._clock = clock
        self.intervals = intervals or SyncIntervals()

    def _now(self) -> datetime:
        now = self._clock.now()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the clock returned a naive datetime; it must be timezone-aware")
        return now.astimezone(UTC)

    async def status(self, business_id: str, platform: str = QBO_PLATFORM) -> SyncStatus | None:
        async with self._sessions() as session:
            row = await session.get(SyncTimingRow, (business_id, platform))
            return None if row is None else _to_status(row)

    async def should_sync(self, business_id: str, platform: str, strategy: SyncStrategy) -> bool:
        """True when a sync under `strategy` is due now (always for FORCED)."""
        if strategy is SyncStrategy.FORCED:
            return True
        status = await self.status(business_id, platform)
        now = self._now()
        return due_at(status, strategy, self.intervals, now) <= now

    async def record_sync(
        self,
        business_id: str,
        platform: str,
        strategy: SyncStrategy,
        success: bool = True,
        error: str | None = None,
    ) -> SyncStatus:
        """Remember a finished sync attempt: success resets the failure count, failure adds one."""
        now = self._now()
        values: dict[str, Any] = {
            "last_attempt_at": now,
            "last_strategy": strategy.value,
            "updated_at": now,
        }
        if success:
            values.update(last_success_at=now, consecutive_failures=0, last_error=None)
        else:
            values.update(last_failure_at=now, last_error=error)
        first_values = {
            "business_id": business_id,
            "platform": platform,
            "consecutive_failures": 0 if success else 1,
            **values,
        }
        async with self._sessions() as session, session.begin():
            statement = (
                _upsert(session, SyncTimingRow)
                .values(**first_values)
                .on_conflict_do_update(
                    index_elements=[SyncTimingRow.business_id, SyncTimingRow.platform],
                    set_={
                        **values,
                        # Counted in the database so concurrent failures are all counted.
                        "consecutive_failures": (
                            0 if success else SyncTimingRow.consecutive_failures + 1
                        ),
                    },
                )
                .returning(SyncTimingRow)
            )
            row = (await session.scalars(statement)).one()
            return _to_status(row)

    async def record_user_activity(self, business_id: str) -> None:
        """The business's user just did something (opened the digest, clicked, asked /runway)."""
        now = self._now()
        async with self._sessions() as session, session.begin():
            insert = _upsert(session, UserActivityRow)
            statement = insert.values(business_id=business_id, last_active_at=now)
            # Never move backwards if another process with a slightly earlier clock wrote last.
            latest = case(
                (UserActivityRow.last_active_at < now, now),
                else_=UserActivityRow.last_active_at,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[UserActivityRow.business_id],
                    set_={"last_active_at": latest},
                )
            )

    async def strategy_for(self, business_id: str, platform: str = QBO_PLATFORM) -> SyncStrategy:
        """The strategy the business's recent activity calls for (never FORCED: that is a request).

        AFTER_ACTION when one of its actions changed since the last successful sync (within the
        after-action window), else USER_ACTIVE when its user was active recently, else IDLE.
        """
        now = self._now()
        async with self._sessions() as session:
            timing = await session.get(SyncTimingRow, (business_id, platform))
            activity = await session.get(UserActivityRow, business_id)
            last_action_at = await session.scalar(
                select(func.max(ActionRow.updated_at)).where(ActionRow.business_id == business_id)
            )
        last_success_at = None if timing is None else timing.last_success_at
        if (
            last_action_at is not None
            and last_action_at > now - self.intervals.after_action_window
            and (last_success_at is None or last_action_at > last_success_at)
        ):
            return SyncStrategy.AFTER_ACTION
        if activity is not None and activity.last_active_at > now - self.intervals.active_window:
            return SyncStrategy.USER_ACTIVE
        return SyncStrategy.IDLE

    async def next_due(self, business_id: str, platform: str = QBO_PLATFORM) -> datetime:
        """When the business's next sync is due under the strategy its activity calls for.

        A time at or before now means overdue (or never synced): sync now.
        """
        strategy = await self.strategy_for(business_id, platform)
        status = await self.status(business_id, platform)
        return due_at(status, strategy, self.intervals, self._now())
