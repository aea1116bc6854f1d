"""The ritual's timetable: weekly digests at each business's local time (across daylight-saving
changes), missed firings, persistence in the database, and re-reading the schedules.

The scheduler is APScheduler's, driven by an injected clock: a ManualClock moved by the test (then
the scheduler is woken to look for due jobs), or a ShiftedClock that runs in real time from a chosen
instant, so the scheduler's own timer fires the job.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import event

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from db_conftest import db_url_fixture
from worker_fakes import CallLog, RecordingJobs, ShiftedClock

from bot.worker.jobs import BusinessSchedule
from bot.worker.schedule import (
    DirectDispatcher,
    RitualCadence,
    RitualScheduler,
    digest_trigger,
    sync_database_url,
    timetable,
)
from bot.worker.tasks import Task
from sync.clock import Clock, ManualClock

__all__ = ["db_url_fixture"]

NEW_YORK = BusinessSchedule("biz-ny", "America/New_York", 0, time(8, 0))
SYDNEY = BusinessSchedule("biz-syd", "Australia/Sydney", 0, time(8, 0))
LONDON = BusinessSchedule("biz-ldn", "Europe/London", 0, time(8, 0))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- URL of the job store ----------------------------------------------------------------------


def test_the_job_store_uses_the_sync_twin_of_the_async_database_url() -> None:
    assert sync_database_url("sqlite+aiosqlite:///./.oodaloo/oodaloo.db") == (
        "sqlite:///./.oodaloo/oodaloo.db"
    )
    assert sync_database_url("postgresql+asyncpg://app:s3cret@db.internal:5432/oodaloo") == (
        "postgresql+psycopg://app:s3cret@db.internal:5432/oodaloo"
    )
    assert sync_database_url(
        "postgresql+asyncpg://app@db/oodaloo?search_path=tenant_a&ssl=require"
    ) == "postgresql+psycopg://app@db/oodaloo?options=-csearch_path%3Dtenant_a&sslmode=require"
    with pytest.raises(ValueError, match="sqlite\\+aiosqlite"):
        sync_database_url("mysql+aiomysql://app@db/oodaloo")


def test_a_schedule_with_an_unknown_timezone_is_refused_with_its_business() -> None:
    with pytest.raises(ValueError, match="biz-x: unknown timezone 'Mars/Olympus'"):
        BusinessSchedule("biz-x", "Mars/Olympus", 0, time(8, 0))


# --- the trigger, driven by a fake "now" ---------------------------------------------------------


def fire_times(schedule: BusinessSchedule, start: datetime, count: int) -> list[datetime]:
    """The digest's next `count` fire times, asked the way the scheduler asks after each run."""
    trigger = digest_trigger(schedule)
    times: list[datetime] = []
    previous = None
    now = start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        assert fire is not None
        times.append(fire)
        previous, now = fire, fire + timedelta(seconds=1)
    return times


@pytest.mark.parametrize(
    ("schedule", "start", "expected_utc"),
    [
        # US clocks spring forward on Sunday 14 March 2027: 8:00 EST is 13:00 UTC, 8:00 EDT 12:00.
        (NEW_YORK, utc(2027, 3, 6), [utc(2027, 3, 8, 13), utc(2027, 3, 15, 12), utc(2027, 3, 22, 12)]),
        # ...and fall back on Sunday 7 November 2027.
        (NEW_YORK, utc(2027, 10, 30), [utc(2027, 11, 1, 12), utc(2027, 11, 8, 13), utc(2027, 11, 15, 13)]),
        # Sydney leaves summer time on Sunday 4 April 2027: Monday 8:00 is Sunday 21:00 UTC (AEDT,
        # +11), then Sunday 22:00 UTC (AEST, +10).
        (SYDNEY, utc(2027, 3, 25), [utc(2027, 3, 28, 21), utc(2027, 4, 4, 22), utc(2027, 4, 11, 22)]),
        # ...and enters it on Sunday 3 October 2027.
        (SYDNEY, utc(2027, 9, 20), [utc(2027, 9, 26, 22), utc(2027, 10, 3, 21), utc(2027, 10, 10, 21)]),
        # London moves to BST on Sunday 28 March 2027.
        (LONDON, utc(2027, 3, 20), [utc(2027, 3, 22, 8), utc(2027, 3, 29, 7), utc(2027, 4, 5, 7)]),
    ],
)
def test_the_digest_fires_monday_at_eight_local_through_a_daylight_saving_change(
    schedule: BusinessSchedule, start: datetime, expected_utc: list[datetime]
) -> None:
    fires = fire_times(schedule, start, len(expected_utc))

    assert [fire.astimezone(UTC) for fire in fires] == expected_utc
    for fire in fires:
        local = fire.astimezone(ZoneInfo(schedule.timezone))
        assert (local.weekday(), local.hour, local.minute) == (0, 8, 0), local


def test_a_year_of_digests_is_always_monday_eight_local_and_a_week_apart_in_wall_time() -> None:
    for schedule in (NEW_YORK, SYDNEY, LONDON):
        zone = ZoneInfo(schedule.timezone)
        fires = [fire.astimezone(zone) for fire in fire_times(schedule, utc(2027, 1, 1), 53)]
        assert all((f.weekday(), f.hour, f.minute) == (0, 8, 0) for f in fires)
        walls = [f.replace(tzinfo=None) for f in fires]
        assert {b - a for a, b in pairwise(walls)} == {timedelta(days=7)}
        # Twice a year the UTC gap is a week plus or minus the hour the clocks moved.
        instants = [f.astimezone(UTC) for f in fires]
        utc_gaps = {b - a for a, b in pairwise(instants)}
        assert utc_gaps == {timedelta(days=7), timedelta(days=7, hours=1), timedelta(days=7, hours=-1)}


# --- the real scheduler, with its clock injected -------------------------------------------------


@pytest.fixture
def db_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'worker.db'}"


@pytest.fixture
async def make_ritual(db_file: str) -> AsyncIterator[Callable[..., RitualScheduler]]:
    """Builds RitualSchedulers on one SQLite file (as restarts of one worker) and stops them."""
    made: list[RitualScheduler] = []

    def make(jobs: RecordingJobs, clock: Clock) -> RitualScheduler:
        ritual = RitualScheduler(jobs, DirectDispatcher(jobs), jobstore_url=db_file, clock=clock)
        made.append(ritual)
        return ritual

    yield make
    for ritual in made:
        await ritual.stop(grace=1)


async def tick(ritual: RitualScheduler) -> None:
    """Have the scheduler look for due jobs now (by its clock) and wait for what it started."""
    ritual.scheduler.wakeup()
    for _ in range(3):
        await asyncio.sleep(0)
    await ritual.executor.wait_idle()


async def test_the_real_scheduler_sends_each_digest_at_eight_local_in_the_week_clocks_change(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    clock = ManualClock(utc(2027, 3, 13))  # Saturday; New York springs forward on Sunday
    log = CallLog()
    ritual = make_ritual(RecordingJobs(log, [NEW_YORK, SYDNEY], clock=clock), clock)
    await ritual.start()

    assert ritual.next_run_times()["digest:biz-syd"] == utc(2027, 3, 14, 21)  # Mon 8:00 AEDT
    assert ritual.next_run_times()["digest:biz-ny"] == utc(2027, 3, 15, 12)  # Mon 8:00 EDT

    # A second early, nothing; on the instant, Sydney's digest.
    clock.set(utc(2027, 3, 14, 20, 59, 59))
    await tick(ritual)
    assert log.of("send_digest") == []
    clock.set(utc(2027, 3, 14, 21))
    await tick(ritual)
    (sydney,) = log.of("send_digest")
    assert sydney.business_id == "biz-syd"
    assert sydney.scheduled_for == utc(2027, 3, 14, 21)
    assert sydney.scheduled_for is not None
    local = sydney.scheduled_for.astimezone(ZoneInfo("Australia/Sydney"))
    assert (local.strftime("%a %H:%M"), local.tzname()) == ("Mon 08:00", "AEDT")

    # New York's first Monday in daylight time: 8:00 EDT, i.e. 12:00 UTC, not 13:00.
    clock.set(utc(2027, 3, 15, 11, 59, 59))
    await tick(ritual)
    assert [call.business_id for call in log.of("send_digest")] == ["biz-syd"]
    clock.set(utc(2027, 3, 15, 12))
    await tick(ritual)
    new_york = log.of("send_digest")[1]
    assert (new_york.business_id, new_york.scheduled_for) == ("biz-ny", utc(2027, 3, 15, 12))
    assert new_york.scheduled_for is not None
    local = new_york.scheduled_for.astimezone(ZoneInfo("America/New_York"))
    assert (local.strftime("%a %H:%M"), local.tzname()) == ("Mon 08:00", "EDT")

    # Each digest's next run is a week later at 8:00 local.
    assert ritual.next_run_times()["digest:biz-ny"] == utc(2027, 3, 22, 12)
    assert ritual.next_run_times()["digest:biz-syd"] == utc(2027, 3, 21, 21)


async def test_digests_due_at_one_minute_are_fired_once_with_their_next_runs_saved_in_one_update(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    """The round's next run times are written together: a leader with a thousand digests due at
    8:00 does not spend seconds saving them one transaction at a time before queueing the first."""
    clock = ManualClock(utc(2027, 3, 22, 11, 59))  # Monday 7:59 in New York
    many = [BusinessSchedule(f"biz-{i:03d}", "America/New_York", 0, time(8, 0)) for i in range(200)]
    log = CallLog()
    ritual = make_ritual(RecordingJobs(log, many, clock=clock), clock)
    await ritual.start()
    await tick(ritual)
    updates: list[int] = []

    def count_updates(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                      executemany: bool) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(len(parameters) if executemany else 1)

    store = ritual.scheduler._jobstores["default"]
    event.listen(store.engine, "before_cursor_execute", count_updates)
    clock.set(utc(2027, 3, 22, 12))
    await tick(ritual)

    assert sorted(c.business_id for c in log.of("send_digest")) == [s.business_id for s in many]
    assert {c.scheduled_for for c in log.of("send_digest")} == {utc(2027, 3, 22, 12)}
    assert len(updates) == 1 and updates[0] >= 200  # the digests, and the sync checks due too
    next_runs = ritual.next_run_times()
    assert {next_runs[f"digest:{s.business_id}"] for s in many} == {utc(2027, 3, 29, 12)}
    await tick(ritual)
    assert len(log.of("send_digest")) == 200  # none fired again


async def test_the_scheduler_fires_the_digest_by_its_own_timer_at_the_clocks_instant(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    # Half a second before New York's first Monday 8:00 after the clocks fell back (13:00 UTC).
    clock = ShiftedClock(utc(2027, 11, 8, 12, 59, 59, 500_000))
    log = CallLog()
    ritual = make_ritual(RecordingJobs(log, [NEW_YORK], clock=clock), clock)
    await ritual.start()

    await log.wait_until(lambda calls: any(c.task == "send_digest" for c in calls), give_up_after=10)

    (digest,) = log.of("send_digest")
    assert digest.scheduled_for == utc(2027, 11, 8, 13)
    assert digest.scheduled_for is not None
    assert digest.at >= digest.scheduled_for  # it ran when its instant came, not before
    local = digest.scheduled_for.astimezone(ZoneInfo("America/New_York"))
    assert (local.strftime("%a %H:%M"), local.tzname()) == ("Mon 08:00", "EST")


# --- missed firings ------------------------------------------------------------------------------


async def run_down_then_back(
    make_ritual: Callable[..., RitualScheduler], back_at: datetime
) -> tuple[CallLog, RitualScheduler]:
    """The worker schedules New York's digest on Sunday, is down, and comes back at `back_at`."""
    clock = ManualClock(utc(2027, 3, 21, 12))  # Sunday
    first = make_ritual(RecordingJobs(CallLog(), [NEW_YORK], clock=clock), clock)
    await first.start()
    assert first.next_run_times()["digest:biz-ny"] == utc(2027, 3, 22, 12)
    await first.stop(grace=1)

    clock.set(back_at)
    log = CallLog()
    again = make_ritual(RecordingJobs(log, [NEW_YORK], clock=clock), clock)
    await again.start()
    await tick(again)
    return log, again


async def test_a_worker_back_at_half_past_nine_still_sends_the_eight_oclock_digest_once(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    log, ritual = await run_down_then_back(make_ritual, utc(2027, 3, 22, 13, 30))  # 9:30 EDT

    assert [(c.business_id, c.scheduled_for) for c in log.of("send_digest")] == [
        ("biz-ny", utc(2027, 3, 22, 12))
    ]
    assert ritual.next_run_times()["digest:biz-ny"] == utc(2027, 3, 29, 12)


async def test_a_worker_back_the_next_day_does_not_send_the_stale_digest(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    log, ritual = await run_down_then_back(make_ritual, utc(2027, 3, 23, 13))  # Tuesday 9:00

    assert log.of("send_digest") == []
    assert ritual.next_run_times()["digest:biz-ny"] == utc(2027, 3, 29, 12)  # next Monday


async def test_a_worker_down_for_weeks_sends_one_digest_for_the_latest_monday_only(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    log, _ = await run_down_then_back(make_ritual, utc(2027, 4, 12, 14))  # three Mondays later, 10:00

    assert [c.scheduled_for for c in log.of("send_digest")] == [utc(2027, 4, 12, 12)]
    # The five-minute sync check missed hundreds of runs: it runs once.
    assert len(log.of("sync_if_due")) == 1


def test_the_sync_checks_of_a_thousand_businesses_are_spread_over_their_interval() -> None:
    now = utc(2027, 3, 22, 7)
    cadence = RitualCadence()
    many = [BusinessSchedule(f"biz-{i:04d}", "America/New_York", 0, time(8, 0)) for i in range(1000)]
    firsts = [
        spec.trigger.get_next_fire_time(None, now)
        for spec in timetable(many, cadence, now)
        if spec.job_id.startswith("sync:")
    ]
    assert len(firsts) == 1000
    assert all(now <= first < now + cadence.sync_every for first in firsts)
    per_minute = Counter(int((first - now).total_seconds() // 60) for first in firsts)
    assert sorted(per_minute) == [0, 1, 2, 3, 4]
    assert max(per_minute.values()) < 300  # about 200 a minute, not 1,000 at one instant
    # A business keeps its place in the interval whenever its timetable is built.
    later = now + timedelta(hours=5, seconds=7)
    again = next(s for s in timetable(many[:1], cadence, later) if s.job_id.startswith("sync:"))
    assert again.trigger.start_date - later == firsts[0] - now


# --- persistence and re-reading the schedules ----------------------------------------------------


async def test_jobs_survive_a_restart_on_the_same_database_with_their_next_run_times(
    make_ritual: Callable[..., RitualScheduler], db_file: str
) -> None:
    clock = ManualClock(utc(2027, 6, 2, 9, 30))
    first = make_ritual(RecordingJobs(CallLog(), [NEW_YORK, LONDON], clock=clock), clock)
    await first.start()
    await tick(first)  # the interval jobs run once at start and move on
    before = first.next_run_times()
    await first.stop(grace=1)

    # Stored in the database, not in the scheduler's memory.
    store = SQLAlchemyJobStore(url=db_file, tablename="worker_scheduled_jobs")
    store.start(None, "default")
    try:
        assert {job.id: job.next_run_time for job in store.get_all_jobs()} == before
    finally:
        store.shutdown()

    clock.advance(timedelta(seconds=20))  # restarted 20 s later, before anything is due
    again = make_ritual(RecordingJobs(CallLog(), [NEW_YORK, LONDON], clock=clock), clock)
    await again.start()

    assert again.next_run_times() == before
    assert set(before) == {
        "digest:biz-ny", "sync:biz-ny", "digest:biz-ldn", "sync:biz-ldn",
        "reconcile", "refresh_tokens", "digest_sweep", "reread_schedules",
    }


async def test_jobs_are_kept_in_the_apps_database_on_sqlite_and_postgresql(db_url: str) -> None:
    """From the app's async DATABASE_URL (PostgreSQL: in the app's schema), through psycopg."""
    clock = ManualClock(utc(2027, 6, 2, 9, 30))
    store_url = sync_database_url(db_url)

    def ritual() -> RitualScheduler:
        jobs = RecordingJobs(CallLog(), [SYDNEY], clock=clock)
        return RitualScheduler(jobs, DirectDispatcher(jobs), jobstore_url=store_url, clock=clock)

    first = ritual()
    await first.start()
    before = first.next_run_times()
    await first.stop(grace=1)

    clock.advance(timedelta(seconds=20))
    again = ritual()
    await again.start()
    try:
        assert again.next_run_times() == before
        assert before["digest:biz-syd"] == utc(2027, 6, 6, 22)
    finally:
        await again.stop(grace=1)


async def test_rereading_the_schedules_adds_changes_and_removes_only_what_changed(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    clock = ManualClock(utc(2027, 6, 2, 9, 30))  # a Wednesday
    jobs = RecordingJobs(CallLog(), [NEW_YORK, LONDON], clock=clock)
    ritual = make_ritual(jobs, clock)
    await ritual.start()
    before = ritual.next_run_times()

    clock.advance(timedelta(seconds=30))
    jobs.business_schedules = [
        NEW_YORK,
        BusinessSchedule("biz-ldn", "Europe/London", 4, time(16, 30)),  # now Fridays 16:30
        SYDNEY,  # newly connected
    ]
    await ritual.apply_schedules()
    after = ritual.next_run_times()

    assert after["digest:biz-ldn"] == utc(2027, 6, 4, 15, 30)  # Friday 16:30 BST
    assert after["digest:biz-syd"] == utc(2027, 6, 6, 22)  # Monday 8:00 AEST
    assert "sync:biz-syd" in after
    for unchanged in ("digest:biz-ny", "sync:biz-ny", "sync:biz-ldn", "reconcile"):
        assert after[unchanged] == before[unchanged], unchanged

    jobs.business_schedules = [SYDNEY]  # New York and London disconnected
    await ritual.apply_schedules()
    assert {job for job in ritual.next_run_times() if ":" in job} == {
        "digest:biz-syd", "sync:biz-syd"
    }


async def test_when_the_schedules_cannot_be_read_the_jobs_already_scheduled_stay(
    make_ritual: Callable[..., RitualScheduler],
) -> None:
    clock = ManualClock(utc(2027, 6, 2, 9, 30))
    jobs = RecordingJobs(CallLog(), [NEW_YORK], clock=clock)
    ritual = make_ritual(jobs, clock)
    await ritual.start()
    before = ritual.next_run_times()

    async def unreachable() -> list[BusinessSchedule]:
        raise ConnectionError("database unreachable")

    jobs.schedules = unreachable  # type: ignore[method-assign]
    await ritual.apply_schedules()

    assert ritual.next_run_times() == before


# --- a firing lost with its leader ----------------------------------------------------------------


class CrashingDispatcher(DirectDispatcher):
    """Runs firings until `crash()`; then the leader dies as it hands the next one over: after
    APScheduler saved the job's next run time, before the firing reached the queue (or ran)."""

    def __init__(self, jobs: RecordingJobs) -> None:
        super().__init__(jobs)
        self.crashing = False
        self.handing_over = asyncio.Event()

    async def dispatch(self, task: Task, args: tuple[str, ...], **firing: Any) -> None:
        if not self.crashing:
            await super().dispatch(task, args, **firing)
            return
        self.handing_over.set()
        await asyncio.Event().wait()  # the process is gone before this returns


async def crash_while_handing_over(
    db_file: str, clock: ManualClock, due: datetime, schedules: list[BusinessSchedule]
) -> None:
    """A leader that runs its jobs, then crashes while handing over those due at `due`."""
    dispatcher = CrashingDispatcher(RecordingJobs(CallLog(), schedules, clock=clock))
    leader = RitualScheduler(dispatcher.jobs, dispatcher, jobstore_url=db_file, clock=clock)
    await leader.start()
    await tick(leader)
    dispatcher.crashing = True
    clock.set(due)
    leader.scheduler.wakeup()
    await asyncio.wait_for(dispatcher.handing_over.wait(), timeout=5)
    leader.stop_now()  # the crash: nothing more is handed over
    await asyncio.sleep(0)


async def test_a_digest_firing_lost_when_the_leader_crashed_is_sent_once_by_the_next_leader(
    make_ritual: Callable[..., RitualScheduler], db_file: str
) -> None:
    clock = ManualClock(utc(2027, 3, 21, 12))  # Sunday
    monday_eight = utc(2027, 3, 22, 12)  # 8:00 EDT
    await crash_while_handing_over(db_file, clock, monday_eight, [NEW_YORK])

    clock.advance(timedelta(seconds=30))  # the lease runs out; the next leader starts
    log = CallLog()
    again = make_ritual(RecordingJobs(log, [NEW_YORK], clock=clock), clock)
    await again.start()
    assert again.next_run_times()["digest:biz-ny"] == utc(2027, 3, 29, 12), "saved before the crash"
    await tick(again)

    assert [(c.business_id, c.scheduled_for) for c in log.of("send_digest")] == [
        ("biz-ny", monday_eight)
    ]
    assert all(c.job_id == "digest:biz-ny" for c in log.asked("send_digest"))


async def test_a_reconcile_firing_lost_when_the_leader_crashed_runs_once_at_the_next_start(
    make_ritual: Callable[..., RitualScheduler], db_file: str
) -> None:
    clock = ManualClock(utc(2027, 6, 2, 9, 30))
    start = clock.now()
    reconcile_due = start + RitualCadence().reconcile_every
    await crash_while_handing_over(db_file, clock, reconcile_due, [])

    clock.advance(timedelta(seconds=20))  # restarted before the next reconcile is due
    log = CallLog()
    again = make_ritual(RecordingJobs(log, [], clock=clock), clock)
    await again.start()
    await tick(again)

    assert [c.scheduled_for for c in log.of("reconcile_sweep")] == [reconcile_due]
    assert log.repeated_firings() == {}
