"""Test doubles for the worker: a RitualJobs that records what it was asked to do, clocks, and Redis
clean-up. The scheduler, leader lock and queue under test are the real ones.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from bot.worker.jobs import BusinessSchedule
from bot.worker.tasks import current_firing
from sync.clock import Clock, SystemClock


async def wait_until(
    condition: Callable[[], bool],
    *,
    give_up_after: float = 10.0,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Poll `condition` until it holds; fail the test (saying what was seen) after the limit."""
    deadline = time.monotonic() + give_up_after
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting after {give_up_after} s; {describe()}")
        await asyncio.sleep(0.02)


@dataclass(frozen=True)
class Call:
    """One thing a worker was asked to do, and which firing asked."""

    worker: str
    task: str
    business_id: str | None
    job_id: str | None
    scheduled_for: datetime | None
    at: datetime  # the worker's clock when it ran
    #: False for a digest asked for again after it was sent (the digest sweep, a leader catching
    #: up): RitualJobs.send_digest is idempotent, and so is this fake's.
    did_work: bool = True


@dataclass
class CallLog:
    """Every call made to every RecordingJobs sharing this log (several "processes")."""

    calls: list[Call] = field(default_factory=list)
    #: (business, scheduled instant) of every digest sent, as the digest_runs table would record.
    digests_sent: set[tuple[str, datetime]] = field(default_factory=set)

    def of(self, task: str) -> list[Call]:
        """The calls of `task` that did its work."""
        return [call for call in self.calls if call.task == task and call.did_work]

    def asked(self, task: str) -> list[Call]:
        """Every call of `task`, including digests asked for again after they were sent."""
        return [call for call in self.calls if call.task == task]

    def repeated_firings(self) -> dict[tuple[str | None, datetime | None], int]:
        """Firings (job id, scheduled instant) whose work was done more than once."""
        counts = Counter((call.job_id, call.scheduled_for) for call in self.calls if call.did_work)
        return {firing: count for firing, count in counts.items() if count > 1}

    async def wait_until(
        self, condition: Callable[[list[Call]], bool], *, give_up_after: float = 10.0
    ) -> None:
        """Wait for the calls to satisfy `condition` (fails the test with what was seen)."""
        await wait_until(
            lambda: condition(self.calls),
            give_up_after=give_up_after,
            describe=lambda: f"calls so far: {self.calls}",
        )


class RecordingJobs:
    """RitualJobs that records each call (with the firing it belongs to) instead of doing the work.

    `work_seconds` makes each call take that long, so concurrency between workers shows.
    """

    def __init__(
        self,
        log: CallLog,
        schedules: Iterable[BusinessSchedule] = (),
        *,
        worker: str = "solo",
        clock: Clock | None = None,
        work_seconds: float = 0.0,
    ) -> None:
        self.log = log
        self.business_schedules = list(schedules)
        self.worker = worker
        self.clock: Clock = clock or SystemClock()
        self.work_seconds = work_seconds
        self.busy = 0  # calls still doing their work

    async def _record(self, task: str, business_id: str | None, *, did_work: bool = True) -> None:
        firing = current_firing.get()
        self.log.calls.append(
            Call(
                worker=self.worker,
                task=task,
                business_id=business_id,
                job_id=firing.job_id if firing else None,
                scheduled_for=firing.scheduled_for if firing else None,
                at=self.clock.now(),
                did_work=did_work,
            )
        )
        if self.work_seconds and did_work:
            self.busy += 1
            try:
                await asyncio.sleep(self.work_seconds)
            finally:
                self.busy -= 1

    async def schedules(self) -> list[BusinessSchedule]:
        return list(self.business_schedules)

    async def sync_if_due(self, business_id: str) -> None:
        await self._record("sync_if_due", business_id)

    async def send_digest(self, business_id: str, scheduled_for: datetime) -> None:
        """Sends each (business, scheduled instant) once, as Ritual.send_digest does."""
        firing = current_firing.get()
        assert firing is not None and firing.scheduled_for == scheduled_for
        assert firing.job_id == f"digest:{business_id}"
        digest = (business_id, scheduled_for)
        fresh = digest not in self.log.digests_sent
        self.log.digests_sent.add(digest)
        await self._record("send_digest", business_id, did_work=fresh)

    async def reconcile_sweep(self) -> None:
        await self._record("reconcile_sweep", None)

    async def refresh_tokens(self) -> None:
        await self._record("refresh_tokens", None)


class ShiftedClock:
    """Real time running from a chosen instant: the scheduler's own timer fires at the fake time."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def monotonic(self) -> float:
        return time.monotonic() - self._origin

    def advance(self, by: timedelta) -> None:
        self._offset += by


async def delete_worker_keys(redis_url: str, prefix: str) -> None:
    """Remove the leader lock and queue under `prefix`, and arq's job/result keys of its jobs."""
    client = Redis.from_url(redis_url)
    try:
        patterns = [
            f"{prefix}:*",
            *(f"arq:{kind}:{prefix}:*" for kind in ("job", "result", "in-progress", "retry")),
        ]
        for pattern in patterns:
            names = [name async for name in client.scan_iter(match=pattern, count=500)]
            if names:
                await client.unlink(*names)
    finally:
        await client.aclose()
