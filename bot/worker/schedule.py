"""The ritual's timetable: APScheduler 3 jobs built from each business's schedule.

Jobs (ids are stable, so re-reading the schedules replaces rather than duplicates):

  digest:{business_id}  weekly, CronTrigger in the business's own timezone (8:00 Monday stays 8:00
                        local across daylight-saving changes; the UTC instant moves)
  sync:{business_id}    every `sync_every`; RitualJobs.sync_if_due decides whether a sync is due
  reconcile             every `reconcile_every` (a minute)
  refresh_tokens        every `refresh_tokens_every` (ten minutes)
  reread_schedules      every `reread_schedules_every`: new businesses and changed digest times take
                        effect, removed businesses lose their jobs; only jobs whose schedule changed
                        are replaced, so a due firing is never pushed past by a re-read

Missed firings (the worker was down, or the leader changed) are handled per job:

  job               coalesce  misfire_grace_time      why
  digest            yes       6 h                     a worker down at 8:00 and back at 9:30 still
                                                      sends this week's digest, once; one back the
                                                      next day does not send Monday's stale digest
                                                      as if it were fresh (next week's comes on time;
                                                      an owner can still ask for one by hand)
  sync              yes       the sync interval       many missed checks are one check on return;
                                                      sync_if_due looks at data age, so none is lost
  reconcile         yes       30 s                    the sweep is idempotent and the next one is at
                                                      most 30 s away, so a late one is only noise
  refresh_tokens    yes       none (any lateness)     tokens nearing expiry must be refreshed as
                                                      soon as the worker is back
  reread_schedules  yes       none (any lateness)     cheap, and picks up changes made while down

`max_instances=1` everywhere: a firing still running (or still being queued) when the next is due
makes APScheduler skip the next rather than stack them.

Jobs live in the app's database (`SQLAlchemyJobStore`, table `worker_scheduled_jobs`) so a restart
or a new leader keeps every next run time. The store is synchronous SQLAlchemy: the async
DATABASE_URL is turned into its sync twin (`sync_database_url`). Job functions are module-level
(`run_ritual_task`, `reread_schedules`) with string arguments, because the store pickles references.

APScheduler 3 gives a job function neither the instant it was scheduled for nor a place for our
state, so `RitualExecutor` (a plain APScheduler executor plug-in) calls each job function with a
`Firing`: the job id, the scheduled instant (for `send_digest` and for the queue's job id) and the
`RitualScheduler` that dispatches it. The executor also judges misfires with the injected clock.

Time is injectable: `ClockedAsyncIOScheduler` reads "now" from a `sync.clock.Clock`. APScheduler 3
reads the time with `datetime.now(...)` inside `BaseScheduler._process_jobs` (and a few job-adding
methods); for a clock other than the system clock those methods run with that module's `datetime`
name pointing at a subclass whose `now()` asks the clock, restored on return. They are synchronous
and run on the event loop thread, so nothing else observes the swap; with the system clock nothing is
swapped at all.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Protocol

import apscheduler.schedulers.base as _aps_base
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.base import BaseExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import make_url

from bot.worker.jobs import BusinessSchedule, RitualJobs
from bot.worker.tasks import Task, perform
from sync import Clock, SystemClock

log = logging.getLogger(__name__)

JOBS_TABLE = "worker_scheduled_jobs"
DIGEST_PREFIX = "digest:"
SYNC_PREFIX = "sync:"
RECONCILE_JOB = "reconcile"
REFRESH_TOKENS_JOB = "refresh_tokens"
REREAD_SCHEDULES_JOB = "reread_schedules"


def sync_database_url(database_url: str) -> str:
    """The synchronous SQLAlchemy URL of the app's async DATABASE_URL (for APScheduler's job store).

    sqlite+aiosqlite:///x.db -> sqlite:///x.db; postgresql+asyncpg://... -> postgresql+psycopg://...
    asyncpg's query options become libpq's: `search_path=s` -> `options=-csearch_path=s` (the jobs
    table lands in the same schema as the app's tables), `ssl=mode` -> `sslmode=mode`.
    """
    url = make_url(database_url)
    if url.drivername == "sqlite+aiosqlite":
        return url.set(drivername="sqlite").render_as_string(hide_password=False)
    if url.drivername != "postgresql+asyncpg":
        raise ValueError(
            f"the worker keeps its jobs in the app's database, but {url.drivername!r} is not a "
            "supported DATABASE_URL driver: use sqlite+aiosqlite:///path.db or "
            "postgresql+asyncpg://user@host/db"
        )
    query = dict(url.query)
    search_path = query.pop("search_path", None)
    if search_path is not None:
        query["options"] = f"-csearch_path={search_path}"
    ssl = query.pop("ssl", None)
    if ssl is not None:
        query["sslmode"] = ssl
    return (
        url.set(drivername="postgresql+psycopg", query=query)
        .render_as_string(hide_password=False)
    )


# --- what runs when ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RitualCadence:
    """How often the recurring jobs fire (tests shorten these)."""

    sync_every: timedelta = timedelta(minutes=5)
    reconcile_every: timedelta = timedelta(minutes=1)
    refresh_tokens_every: timedelta = timedelta(minutes=10)
    reread_schedules_every: timedelta = timedelta(minutes=3)


@dataclass(frozen=True)
class JobPolicy:
    coalesce: bool
    misfire_grace_time: int | None  # seconds; None = run however late


DIGEST_POLICY = JobPolicy(coalesce=True, misfire_grace_time=6 * 3600)
RECONCILE_POLICY = JobPolicy(coalesce=True, misfire_grace_time=30)
REFRESH_TOKENS_POLICY = JobPolicy(coalesce=True, misfire_grace_time=None)
REREAD_SCHEDULES_POLICY = JobPolicy(coalesce=True, misfire_grace_time=None)


def sync_policy(cadence: RitualCadence) -> JobPolicy:
    return JobPolicy(
        coalesce=True, misfire_grace_time=max(1, round(cadence.sync_every.total_seconds()))
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


@dataclass(frozen=True)
class JobSpec:
    """One job the timetable wants: what runs, when, and how misses are treated."""

    job_id: str
    trigger: BaseTrigger
    policy: JobPolicy
    task: Task | None  # None: the leader's own re-read of the schedules
    args: tuple[str, ...] = ()

    def same_as(self, job: Job) -> bool:
        """Whether `job` (as stored) already runs this spec, so it can be left alone."""
        if type(job.trigger) is not type(self.trigger):
            return False
        if isinstance(self.trigger, IntervalTrigger):
            same_when = job.trigger.interval == self.trigger.interval
        else:
            same_when = repr(job.trigger) == repr(self.trigger)
        return (
            same_when
            and job.func is (reread_schedules if self.task is None else run_ritual_task)
            and tuple(job.args) == self._job_args()
            and job.coalesce == self.policy.coalesce
            and job.misfire_grace_time == self.policy.misfire_grace_time
        )

    def _job_args(self) -> tuple[str, ...]:
        return () if self.task is None else (self.task.value, *self.args)


def timetable(
    schedules: Sequence[BusinessSchedule], cadence: RitualCadence, now: datetime
) -> list[JobSpec]:
    """Every job the ritual wants for these businesses."""

    def every(period: timedelta) -> IntervalTrigger:
        # Anchored at `now` from the injected clock (APScheduler would read the system clock).
        return IntervalTrigger(seconds=period.total_seconds(), start_date=now, timezone=UTC)

    specs = [
        JobSpec(RECONCILE_JOB, every(cadence.reconcile_every), RECONCILE_POLICY,
                Task.RECONCILE_SWEEP),
        JobSpec(REFRESH_TOKENS_JOB, every(cadence.refresh_tokens_every), REFRESH_TOKENS_POLICY,
                Task.REFRESH_TOKENS),
        JobSpec(REREAD_SCHEDULES_JOB, every(cadence.reread_schedules_every),
                REREAD_SCHEDULES_POLICY, None),
    ]
    for schedule in schedules:
        business = schedule.business_id
        specs.append(
            JobSpec(DIGEST_PREFIX + business, digest_trigger(schedule), DIGEST_POLICY,
                    Task.SEND_DIGEST, (business,))
        )
        specs.append(
            JobSpec(SYNC_PREFIX + business, every(cadence.sync_every), sync_policy(cadence),
                    Task.SYNC_IF_DUE, (business,))
        )
    return specs


# --- firing: what a job function receives ---------------------------------------------------------


class Dispatcher(Protocol):
    """Where a firing goes: straight to RitualJobs (one process) or onto the shared queue."""

    async def dispatch(
        self,
        task: Task,
        args: tuple[str, ...],
        *,
        job_id: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
    ) -> None: ...


class DirectDispatcher:
    """One process does everything: the firing runs RitualJobs here and now."""

    def __init__(self, jobs: RitualJobs) -> None:
        self.jobs = jobs

    async def dispatch(
        self,
        task: Task,
        args: tuple[str, ...],
        *,
        job_id: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
    ) -> None:
        await perform(self.jobs, task, args, job_id=job_id, scheduled_for=scheduled_for)

    def __repr__(self) -> str:
        return "DirectDispatcher()"


@dataclass(frozen=True)
class Firing:
    """One due run of a job, as the executor hands it to the job function."""

    job_id: str
    scheduled_for: datetime  # the instant the trigger fired for, UTC
    expires_at: datetime | None  # scheduled_for + misfire grace: too late to start after this
    ritual: RitualScheduler


def _given(firing: Firing | None) -> Firing:
    if firing is None:
        raise RuntimeError(
            "ritual jobs run through RitualExecutor, which hands them their firing; "
            "this scheduler was built without it"
        )
    return firing


# APScheduler checks a job's arguments against its function when the job is added; the firing only
# exists at run time (the executor passes it), hence a keyword with a default.


async def run_ritual_task(task: str, *args: str, firing: Firing | None = None) -> None:
    """Job function of every ritual job: hand the firing to the dispatcher."""
    run = _given(firing)
    await run.ritual.dispatcher.dispatch(
        Task(task),
        tuple(args),
        job_id=run.job_id,
        scheduled_for=run.scheduled_for,
        expires_at=run.expires_at,
    )


async def reread_schedules(*, firing: Firing | None = None) -> None:
    """Job function of `reread_schedules`: bring the timetable in line with the businesses."""
    await _given(firing).ritual.apply_schedules()


# --- the APScheduler plug-ins ---------------------------------------------------------------------


class ClockedAsyncIOScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose "now" is `clock.now()` (see the module docstring for the seam)."""

    def __init__(self, *, clock: Clock, **options: Any) -> None:
        self.clock = clock
        super().__init__(**options)

    def _current_time(self) -> datetime:
        return self.clock.now().astimezone(self.timezone)

    @contextmanager
    def _reading_clock(self) -> Iterator[None]:
        if isinstance(self.clock, SystemClock):
            yield
            return
        current_time = self._current_time

        class ClockDatetime(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> ClockDatetime:
                moment = current_time().astimezone(tz)
                if tz is None:
                    moment = moment.replace(tzinfo=None)
                return cls.combine(moment.date(), moment.timetz())

        saved = _aps_base.datetime
        _aps_base.datetime = ClockDatetime
        try:
            yield
        finally:
            _aps_base.datetime = saved

    def _process_jobs(self) -> float | None:
        with self._reading_clock():
            wait: float | None = super()._process_jobs()
            return wait

    def _real_add_job(self, job: Job, jobstore_alias: str, replace_existing: bool) -> None:
        with self._reading_clock():
            super()._real_add_job(job, jobstore_alias, replace_existing)

    def reschedule_job(self, *args: Any, **kwargs: Any) -> Job:
        with self._reading_clock():
            return super().reschedule_job(*args, **kwargs)

    def resume_job(self, *args: Any, **kwargs: Any) -> Job | None:
        with self._reading_clock():
            return super().resume_job(*args, **kwargs)


class RitualExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs a due job's coroutine on the event loop, handing it a `Firing`.

    Misfires are judged with the injected clock: a run later than the job's misfire_grace_time is
    skipped (EVENT_JOB_MISSED) and logged with how late it was.
    """

    def __init__(self, ritual: RitualScheduler, clock: Clock) -> None:
        super().__init__()
        self.ritual = ritual
        self.clock = clock
        self._running: set[asyncio.Task[None]] = set()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run(job, run_times), name=f"worker job {job.id}"
        )
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, job: Job, run_times: list[datetime]) -> None:
        events: list[JobExecutionEvent] = []
        store = job._jobstore_alias
        try:
            for run_time in run_times:
                scheduled_for = run_time.astimezone(UTC)
                grace = job.misfire_grace_time
                late = self.clock.now() - scheduled_for
                if grace is not None and late > timedelta(seconds=grace):
                    log.warning(
                        "skipped %s due at %s: it is %s late, more than its grace of %s",
                        job.id, scheduled_for.isoformat(), late, timedelta(seconds=grace),
                    )
                    events.append(JobExecutionEvent(EVENT_JOB_MISSED, job.id, store, run_time))
                    continue
                firing = Firing(
                    job_id=job.id,
                    scheduled_for=scheduled_for,
                    expires_at=None if grace is None else scheduled_for + timedelta(seconds=grace),
                    ritual=self.ritual,
                )
                try:
                    await job.func(*job.args, firing=firing, **job.kwargs)
                except Exception as error:
                    log.exception(
                        "%s due at %s failed: %s", job.id, scheduled_for.isoformat(), error
                    )
                    events.append(
                        JobExecutionEvent(
                            EVENT_JOB_ERROR, job.id, store, run_time, exception=error,
                            traceback="".join(traceback.format_tb(error.__traceback__)),
                        )
                    )
                else:
                    events.append(JobExecutionEvent(EVENT_JOB_EXECUTED, job.id, store, run_time))
        finally:
            # Counts the instance as finished (max_instances) and tells listeners what happened.
            self._run_job_success(job.id, events)

    def shutdown(self, wait: bool = True) -> None:
        for task in self._running:
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every job started so far has finished."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)


def describe_next_run(job: Job) -> str:
    """"Mon 2027-03-15 08:00 EDT local (Mon 2027-03-15 12:00:00 UTC)", or UTC alone."""
    when: datetime | None = job.next_run_time
    if when is None:
        return "never (paused)"
    in_utc = when.astimezone(UTC).strftime("%a %Y-%m-%d %H:%M:%S UTC")
    zone = getattr(job.trigger, "timezone", UTC)
    if str(zone) == "UTC":
        return in_utc
    local = when.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")
    return f"{local} local ({in_utc})"


# --- the ritual scheduler -------------------------------------------------------------------------


class RitualScheduler:
    """The timetable of every business, kept in the database and fired through a dispatcher."""

    def __init__(
        self,
        jobs: RitualJobs,
        dispatcher: Dispatcher,
        *,
        jobstore_url: str,
        cadence: RitualCadence | None = None,
        clock: Clock | None = None,
        jobs_table: str = JOBS_TABLE,
    ) -> None:
        self.jobs = jobs
        self.dispatcher = dispatcher
        self.cadence = cadence or RitualCadence()
        self.clock: Clock = clock or SystemClock()
        self.executor = RitualExecutor(self, self.clock)
        self.scheduler = ClockedAsyncIOScheduler(
            clock=self.clock,
            jobstores={"default": SQLAlchemyJobStore(url=jobstore_url, tablename=jobs_table)},
            executors={"default": self.executor},
            job_defaults={"max_instances": 1},
            timezone=UTC,
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    async def start(self) -> None:
        """Load the stored jobs, bring them in line with the schedules, then start firing."""
        self.scheduler.start(paused=True)
        await self.apply_schedules()
        self.scheduler.resume()
        self.log_plan()

    async def apply_schedules(self) -> None:
        """Add jobs for new businesses, replace changed ones, remove those of departed businesses."""
        try:
            schedules = await self.jobs.schedules()
        except Exception as error:
            log.exception(
                "could not read the businesses' schedules (%s); keeping the jobs already scheduled "
                "and trying again at the next re-read",
                error,
            )
            schedules = None
        now = self.clock.now()
        specs = timetable(schedules or [], self.cadence, now)
        existing = {job.id: job for job in self.scheduler.get_jobs()}
        for spec in specs:
            current = existing.get(spec.job_id)
            if current is not None and spec.same_as(current):
                continue
            job = self._add(spec, now)
            log.info(
                "%s %s: next run %s",
                "rescheduled" if current is not None else "scheduled",
                spec.job_id,
                describe_next_run(job),
            )
        if schedules is None:
            return
        wanted = {spec.job_id for spec in specs}
        for job_id in existing:
            if job_id.startswith((DIGEST_PREFIX, SYNC_PREFIX)) and job_id not in wanted:
                self.scheduler.remove_job(job_id)
                log.info("removed %s: its business is no longer connected", job_id)

    def _add(self, spec: JobSpec, now: datetime) -> Job:
        func = reread_schedules if spec.task is None else run_ritual_task
        return self.scheduler.add_job(
            func,
            trigger=spec.trigger,
            args=spec._job_args(),
            id=spec.job_id,
            name=spec.job_id,
            replace_existing=True,
            next_run_time=spec.trigger.get_next_fire_time(None, now),
            coalesce=spec.policy.coalesce,
            misfire_grace_time=spec.policy.misfire_grace_time,
            max_instances=1,
        )

    def next_run_times(self) -> dict[str, datetime | None]:
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def log_plan(self) -> None:
        """Log every job's next run, digests in their business's own timezone."""
        for job in self.scheduler.get_jobs():
            log.info("%s next runs %s", job.id, describe_next_run(job))

    def stop_now(self) -> None:
        """Stop firing at once (leadership lost): nothing new starts, running firings are cancelled."""
        if not self.scheduler.running:
            return
        self.scheduler.pause()
        self.scheduler.shutdown(wait=False)

    async def stop(self, grace: float = 30.0) -> None:
        """Stop firing, let running firings finish for up to `grace` seconds, then close."""
        if not self.scheduler.running:
            return
        self.scheduler.pause()
        try:
            await asyncio.wait_for(self.executor.wait_idle(), timeout=grace)
        except TimeoutError:
            log.warning("jobs still running after %g s at shutdown were cancelled", grace)
        self.scheduler.shutdown(wait=False)
        # AsyncIOScheduler shuts down on the next loop turn; let it, so the store is closed on return.
        await asyncio.sleep(0)
