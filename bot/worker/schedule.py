"""The ritual's timetable: APScheduler 3 jobs built from each business's schedule.

Jobs (ids are stable, so re-reading the schedules replaces rather than duplicates):

  digest:{business_id}  weekly, CronTrigger in the business's own timezone (8:00 Monday stays 8:00
                        local across daylight-saving changes; the UTC instant moves)
  sync:{business_id}    every `sync_every`; RitualJobs.sync_if_due decides whether a sync is due.
                        Each business's checks keep their own offset within the interval
                        (`sync_offset`), so a thousand businesses are not all checked at once
  reconcile             every `reconcile_every` (a minute)
  refresh_tokens        every `refresh_tokens_every` (ten minutes)
  digest_sweep          every `digest_sweep_every` (five minutes): each business's latest digest,
                        if due within DIGEST_CATCH_UP and not sent yet, is sent (or tried again)
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
  digest_sweep      yes       none (any lateness)     catching up is its purpose; one sweep does it
  reread_schedules  yes       none (any lateness)     cheap, and picks up changes made while down

`max_instances=1` everywhere: a firing still running (or still being queued) when the next is due
makes APScheduler skip the next rather than stack them.

A firing handed over can still be lost: APScheduler saves the job's next run time as it submits the
firing, before the firing is queued, so a leader that crashes (or is deposed) in between leaves a
store that says the firing happened. Every leader therefore catches up when it starts, from what the
database records (`RitualScheduler.catch_up`): for each job whose stored next run time is still
ahead, the firing just before it is handed over again, under the same identity (job id and
scheduled instant), so the queue refuses it if it was queued after all. What that means per job:

  digest            the digest due at that instant is sent if it is within DIGEST_CATCH_UP, and
                    RitualJobs.send_digest sends it only if it was not sent already; the digest
                    sweep, which every leader also runs at once, covers the same digests again
  sync              a check runs once now (sync_if_due looks at the data's age)
  reconcile         a sweep runs once now
  refresh_tokens    a refresh runs once now
  digest_sweep      a sweep runs once now
  reread_schedules  nothing: the leader has just re-read the schedules as it started
(A job whose next run time is already past needs none of this: APScheduler fires it at start.)

Jobs live in the app's database (`SQLAlchemyJobStore`, table `worker_scheduled_jobs`) so a restart
or a new leader keeps every next run time; the next run times of the jobs due in one round are saved
in one transaction (`bot.worker.jobstore`), so a thousand digests due at one minute reach the queue
at once. The store is synchronous SQLAlchemy: the async
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
import zlib
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import ExitStack, contextmanager
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
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import make_url

from bot.worker.jobs import (
    DIGEST_CATCH_UP,
    DIGEST_PREFIX,
    BusinessSchedule,
    RitualJobs,
    digest_trigger,
)
from bot.worker.jobstore import BatchingJobStore
from bot.worker.tasks import Task, perform
from sync import Clock, SystemClock

log = logging.getLogger(__name__)

JOBS_TABLE = "worker_scheduled_jobs"
SYNC_PREFIX = "sync:"
RECONCILE_JOB = "reconcile"
REFRESH_TOKENS_JOB = "refresh_tokens"
DIGEST_SWEEP_JOB = "digest_sweep"
REREAD_SCHEDULES_JOB = "reread_schedules"

__all__ = ["DIGEST_PREFIX", "digest_trigger"]  # defined with BusinessSchedule, used here


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
    digest_sweep_every: timedelta = timedelta(minutes=5)
    reread_schedules_every: timedelta = timedelta(minutes=3)


@dataclass(frozen=True)
class JobPolicy:
    coalesce: bool
    misfire_grace_time: int | None  # seconds; None = run however late


DIGEST_POLICY = JobPolicy(
    coalesce=True, misfire_grace_time=round(DIGEST_CATCH_UP.total_seconds())
)
RECONCILE_POLICY = JobPolicy(coalesce=True, misfire_grace_time=30)
REFRESH_TOKENS_POLICY = JobPolicy(coalesce=True, misfire_grace_time=None)
DIGEST_SWEEP_POLICY = JobPolicy(coalesce=True, misfire_grace_time=None)
REREAD_SCHEDULES_POLICY = JobPolicy(coalesce=True, misfire_grace_time=None)


def sync_policy(cadence: RitualCadence) -> JobPolicy:
    return JobPolicy(
        coalesce=True, misfire_grace_time=max(1, round(cadence.sync_every.total_seconds()))
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
        JobSpec(DIGEST_SWEEP_JOB, every(cadence.digest_sweep_every), DIGEST_SWEEP_POLICY,
                Task.SWEEP_DIGESTS),
        JobSpec(REREAD_SCHEDULES_JOB, every(cadence.reread_schedules_every),
                REREAD_SCHEDULES_POLICY, None),
    ]
    for schedule in schedules:
        business = schedule.business_id
        specs.append(
            JobSpec(DIGEST_PREFIX + business, digest_trigger(schedule), DIGEST_POLICY,
                    Task.SEND_DIGEST, (business,))
        )
        sync_every = IntervalTrigger(
            seconds=cadence.sync_every.total_seconds(),
            start_date=now + sync_offset(business, cadence.sync_every),
            timezone=UTC,
        )
        specs.append(
            JobSpec(SYNC_PREFIX + business, sync_every, sync_policy(cadence), Task.SYNC_IF_DUE,
                    (business,))
        )
    return specs


def sync_offset(business_id: str, period: timedelta) -> timedelta:
    """Where in each `period` the business's sync check falls: fixed per business (a hash of its
    id), spread evenly over many, so their checks do not all land on the queue at one instant."""
    millis = max(1, int(period.total_seconds() * 1000))
    return timedelta(milliseconds=zlib.crc32(business_id.encode()) % millis)


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
        with self._reading_clock(), ExitStack() as batches:
            # The due jobs' next run times are saved in one transaction (`BatchingJobStore`).
            for store in self._jobstores.values():
                if isinstance(store, BatchingJobStore):
                    batches.enter_context(store.batch())
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

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run `work` beside the jobs (stopping waits for it, or cancels it, like a job)."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def shutdown(self, wait: bool = True) -> None:
        for task in self._running:
            task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every job started so far has finished."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)


def previous_fire_time(trigger: BaseTrigger, before: datetime) -> datetime | None:
    """The trigger's last fire time before `before` (a job's next run time): the firing that was
    handed over when that next run time was saved. None if the trigger had not fired yet."""
    if isinstance(trigger, IntervalTrigger):
        last: datetime = before - trigger.interval
        return last if last >= trigger.start_date else None
    # The weekly digest (CronTrigger): walk forward from a week and a day back.
    moment = before - timedelta(days=8)
    latest: datetime | None = None
    while True:
        fire: datetime | None = trigger.get_next_fire_time(latest, moment)
        if fire is None or fire >= before:
            return latest
        latest = fire
        moment = fire + timedelta(seconds=1)


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
            jobstores={"default": BatchingJobStore(url=jobstore_url, tablename=jobs_table)},
            executors={"default": self.executor},
            job_defaults={"max_instances": 1},
            timezone=UTC,
        )

    @property
    def running(self) -> bool:
        return bool(self.scheduler.running)

    async def start(self) -> None:
        """Load the stored jobs, bring them in line with the schedules, catch up on the firings the
        last leader may have lost, then start firing."""
        self.scheduler.start(paused=True)
        kept = await self.apply_schedules()
        self.catch_up(kept)
        self.scheduler.resume()
        self.log_plan()

    def catch_up(self, stored: Sequence[Job]) -> list[tuple[str, datetime]]:
        """Hand over again, under its own identity, the last firing of each stored job whose next
        run time is still ahead (see "A firing handed over can still be lost" above).

        The queue refuses a firing it already holds or ran, and RitualJobs are idempotent, so a
        firing that was not lost runs no second time. Returns the (job id, instant) handed over.
        """
        now = self.clock.now()
        caught: list[tuple[str, datetime]] = []
        for job in stored:
            next_run: datetime | None = job.next_run_time
            if job.func is not run_ritual_task or next_run is None or next_run <= now:
                continue  # the leader's own re-read, a paused job, or one APScheduler fires now
            last = previous_fire_time(job.trigger, next_run)
            if last is None:
                continue
            last = last.astimezone(UTC)
            grace = job.misfire_grace_time
            if job.id.startswith(DIGEST_PREFIX):
                # A digest is only sent while it is this week's (and only if it was not sent).
                if grace is not None and now - last > timedelta(seconds=grace):
                    continue
                expires_at = None if grace is None else last + timedelta(seconds=grace)
            else:
                # A missed sync check, reconciliation sweep, token refresh or digest sweep: one
                # run now does what the missed one would have done.
                expires_at = None if grace is None else now + timedelta(seconds=grace)
            task, *args = job.args
            caught.append((job.id, last))
            self.executor.spawn(
                self._hand_over(Task(task), tuple(args), job.id, last, expires_at),
                name=f"catch up {job.id}",
            )
        return caught

    async def _hand_over(
        self,
        task: Task,
        args: tuple[str, ...],
        job_id: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
    ) -> None:
        log.info(
            "catching up on %s due at %s, in case the last leader stopped before handing it over",
            job_id, scheduled_for.isoformat(),
        )
        try:
            await self.dispatcher.dispatch(
                task, args, job_id=job_id, scheduled_for=scheduled_for, expires_at=expires_at
            )
        except Exception as error:
            log.exception(
                "catching up on %s due at %s failed: %s", job_id, scheduled_for.isoformat(), error
            )

    async def apply_schedules(self) -> list[Job]:
        """Add jobs for new businesses, replace changed ones, remove those of departed businesses.

        Returns the stored jobs left as they were.
        """
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
        kept: list[Job] = []
        for spec in specs:
            current = existing.get(spec.job_id)
            if current is not None and spec.same_as(current):
                kept.append(current)
                continue
            job = self._add(spec, now)
            log.info(
                "%s %s: next run %s",
                "rescheduled" if current is not None else "scheduled",
                spec.job_id,
                describe_next_run(job),
            )
        if schedules is None:
            return kept
        wanted = {spec.job_id for spec in specs}
        for job_id in existing:
            if job_id.startswith((DIGEST_PREFIX, SYNC_PREFIX)) and job_id not in wanted:
                self.scheduler.remove_job(job_id)
                log.info("removed %s: its business is no longer connected", job_id)
        return kept

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
