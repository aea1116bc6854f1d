"""`run_worker` as processes run it: alone without Redis; several on one Redis, one leader
scheduling, every worker running queued jobs (arq), and a new leader when the old one dies.

Each Redis test uses its own key prefix (leader lock, queue, arq job ids) and deletes it afterwards.
Cadences are shortened to fractions of a second; the RitualJobs is a recording fake, the scheduler,
lock and queue are real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from service_env import REDIS_ENV, required_service_url
from worker_fakes import CallLog, RecordingJobs, delete_worker_keys, wait_until

from bot.worker.jobs import BusinessSchedule
from bot.worker.leader import LEADER_LOCK_NAME, LeaderElection
from bot.worker.queue import RitualQueue, arq_job_id
from bot.worker.run import WorkerOptions, run_worker
from bot.worker.schedule import RitualCadence, RitualScheduler, sync_database_url
from bot.worker.tasks import Task, sweep_digests
from sync.backends import RedisBackend, key_part
from sync.clock import ManualClock
from sync.locks import DistributedLock

# Their digests are due three days from today: these tests are about the other jobs (a digest due
# within the last hours would be sent by the digest sweep each leader runs as it starts).
DIGEST_DAY = (datetime.now(UTC).weekday() + 3) % 7
BUSINESSES = [
    BusinessSchedule(f"biz-{n}", "America/New_York", DIGEST_DAY, time(8, 0)) for n in range(1, 4)
]
QUICK = RitualCadence(
    sync_every=timedelta(seconds=1),
    reconcile_every=timedelta(seconds=0.25),
    refresh_tokens_every=timedelta(hours=1),
    reread_schedules_every=timedelta(hours=1),
)


@pytest.fixture
def redis_url() -> str:
    return str(required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379"))


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    name = f"oodaloo-test-worker-{uuid.uuid4().hex[:12]}"
    yield name
    await delete_worker_keys(redis_url, name)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"


@pytest.fixture
def worker_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="bot.worker")
    return caplog


def elected(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Worker ids in the order they became leader."""
    return [
        record.getMessage().split(":", 1)[0].removeprefix("worker ")
        for record in caplog.records
        if record.name == "bot.worker.leader" and "elected leader" in record.getMessage()
    ]


class Workers:
    """Worker "processes" (tasks) started by a test; each has its own stop event."""

    def __init__(self, database_url: str, redis_url: str | None, options: WorkerOptions) -> None:
        self.database_url = database_url
        self.redis_url = redis_url
        self.options = options
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stops: dict[str, asyncio.Event] = {}

    def start(self, worker_id: str, jobs: RecordingJobs) -> asyncio.Task[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_worker(
                jobs,
                database_url=self.database_url,
                redis_url=self.redis_url,
                stop=stop,
                worker_id=worker_id,
                options=self.options,
            )
        )
        self.tasks[worker_id], self.stops[worker_id] = task, stop
        return task

    async def stop(self, worker_id: str) -> None:
        self.stops[worker_id].set()
        await asyncio.wait_for(self.tasks[worker_id], timeout=10)

    async def crash(self, worker_id: str) -> None:
        """Kill the worker the way a crash would: nothing released, its lease just runs out."""
        task = self.tasks[worker_id]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for stop in self.stops.values():
            stop.set()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)


# --- one process, no Redis -------------------------------------------------------------------------


async def test_without_redis_one_process_schedules_and_runs_every_job_itself(
    database_url: str, redis_url: str, prefix: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    log = CallLog()
    workers = Workers(database_url, None, WorkerOptions(cadence=QUICK, redis_prefix=prefix))
    try:
        workers.start("solo", RecordingJobs(log, BUSINESSES, worker="solo"))
        await log.wait_until(
            lambda calls: (
                len(log.of("reconcile_sweep")) >= 3
                and {c.business_id for c in log.of("sync_if_due")} == {"biz-1", "biz-2", "biz-3"}
            )
        )
        await workers.stop("solo")
    finally:
        await workers.close()

    assert log.repeated_firings() == {}
    assert {call.job_id for call in log.of("sync_if_due")} == {
        "sync:biz-1",
        "sync:biz-2",
        "sync:biz-3",
    }
    assert "no REDIS_URL" in worker_logs.text
    assert elected(worker_logs) == []
    # No lock, no queue: nothing of this worker's is in Redis.
    client = Redis.from_url(redis_url)
    try:
        assert [key async for key in client.scan_iter(match=f"{prefix}:*")] == []
    finally:
        await client.aclose()


async def test_sigterm_stops_a_worker_started_from_the_command_line(database_url: str) -> None:
    log = CallLog()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_worker(
            RecordingJobs(log, BUSINESSES),
            database_url=database_url,
            redis_url=None,
            stop=stop,
            options=WorkerOptions(cadence=QUICK),
            handle_signals=True,
        )
    )
    await log.wait_until(lambda calls: len(calls) >= 1)

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, timeout=10)

    assert stop.is_set()
    assert task.exception() is None


# --- several processes on one Redis --------------------------------------------------------------


async def test_the_follower_runs_queued_jobs_so_the_work_is_shared(
    database_url: str, redis_url: str, prefix: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    log = CallLog()
    # Each worker runs one job at a time and each job takes a while: the leader alone cannot keep up.
    options = WorkerOptions(
        cadence=QUICK,
        redis_prefix=prefix,
        leader_lease=2.0,
        queue_poll_delay=0.05,
        max_concurrent_jobs=1,
    )
    workers = Workers(database_url, redis_url, options)
    try:
        workers.start("A", RecordingJobs(log, BUSINESSES, worker="A", work_seconds=0.2))
        await wait_until(lambda: elected(worker_logs) == ["A"], give_up_after=10)
        workers.start("B", RecordingJobs(log, BUSINESSES, worker="B", work_seconds=0.2))
        await log.wait_until(
            lambda calls: (
                sum(c.worker == "B" for c in calls) >= 3
                and sum(c.worker == "A" for c in calls) >= 3
            )
        )
    finally:
        await workers.close()

    assert elected(worker_logs) == ["A"]  # B never scheduled anything...
    assert {c.task for c in log.calls if c.worker == "B"} <= {"sync_if_due", "reconcile_sweep"}
    assert any(c.worker == "B" for c in log.calls)  # ...yet ran jobs from the queue
    assert log.repeated_firings() == {}


async def test_when_the_leader_dies_the_follower_takes_over_and_no_firing_runs_twice(
    database_url: str, redis_url: str, prefix: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    log = CallLog()
    lease = 1.0
    options = WorkerOptions(
        cadence=QUICK, redis_prefix=prefix, leader_lease=lease, queue_poll_delay=0.05
    )
    workers = Workers(database_url, redis_url, options)
    try:
        workers.start("A", RecordingJobs(log, BUSINESSES, worker="A"))
        await wait_until(lambda: elected(worker_logs) == ["A"], give_up_after=10)
        workers.start("B", RecordingJobs(log, BUSINESSES, worker="B"))
        await log.wait_until(lambda calls: len(log.of("reconcile_sweep")) >= 4)

        await workers.crash("A")
        crashed_at = datetime.now(UTC)
        # B notices the lease has run out (A renews no more) and takes over.
        await wait_until(lambda: elected(worker_logs) == ["A", "B"], give_up_after=10 * lease)
        await log.wait_until(
            lambda calls: (
                sum(
                    c.scheduled_for is not None and c.scheduled_for > crashed_at
                    for c in log.of("reconcile_sweep")
                )
                >= 4
                and sum(
                    c.scheduled_for is not None and c.scheduled_for > crashed_at
                    for c in log.of("sync_if_due")
                )
                >= 3
            )
        )
    finally:
        await workers.close()

    assert log.repeated_firings() == {}
    reconciles = sorted(c.scheduled_for for c in log.of("reconcile_sweep") if c.scheduled_for)
    assert len(reconciles) == len(set(reconciles)) >= 8
    # After the crash only B is alive to run anything.
    after = [c for c in log.calls if c.at > crashed_at + timedelta(seconds=0.5)]
    assert after and {c.worker for c in after} == {"B"}


async def test_a_firing_enqueued_twice_runs_once(
    redis_url: str, prefix: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    """Two leaders at once (one stalled and not yet aware it lost the lock) queue the same firing."""
    log = CallLog()
    consumer = RitualQueue(
        redis_url, RecordingJobs(log, worker="B"), namespace=prefix, worker_id="B", poll_delay=0.05
    )
    stale_leader = RitualQueue(redis_url, RecordingJobs(log), namespace=prefix)
    new_leader = RitualQueue(redis_url, RecordingJobs(log), namespace=prefix)
    for queue in (consumer, stale_leader, new_leader):
        await queue.open()
    running = asyncio.create_task(consumer.run_jobs())
    due = datetime(2027, 3, 15, 12, tzinfo=UTC)
    try:
        firsts = await stale_leader.enqueue(
            Task.SEND_DIGEST,
            ("biz-1",),
            job_id="digest:biz-1",
            scheduled_for=due,
            expires_at=None,
        )
        seconds = await new_leader.enqueue(
            Task.SEND_DIGEST,
            ("biz-1",),
            job_id="digest:biz-1",
            scheduled_for=due,
            expires_at=None,
        )
        await log.wait_until(lambda calls: len(calls) >= 1)
        # Even once it has run, a late duplicate is recognised.
        late = await new_leader.enqueue(
            Task.SEND_DIGEST,
            ("biz-1",),
            job_id="digest:biz-1",
            scheduled_for=due,
            expires_at=None,
        )
        await asyncio.sleep(0.3)  # several polls of the consumer: room for a duplicate to run
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        for queue in (consumer, stale_leader, new_leader):
            await queue.close()

    assert (firsts, seconds, late) == (True, False, False)
    (call,) = log.calls
    assert (call.worker, call.task, call.business_id, call.scheduled_for) == (
        "B",
        "send_digest",
        "biz-1",
        due,
    )


async def test_a_worker_that_stops_cleanly_hands_leadership_over_at_once(
    database_url: str, redis_url: str, prefix: str, worker_logs: pytest.LogCaptureFixture
) -> None:
    log = CallLog()
    # A lease far longer than the test: B can only lead this soon because A released the lock.
    options = WorkerOptions(
        cadence=QUICK, redis_prefix=prefix, leader_lease=60.0, queue_poll_delay=0.05
    )
    workers = Workers(database_url, redis_url, options)
    lock_key = f"{prefix}:lock:{key_part(LEADER_LOCK_NAME)}"
    client = Redis.from_url(redis_url)
    try:
        workers.start("A", RecordingJobs(log, BUSINESSES, worker="A"))
        await wait_until(lambda: elected(worker_logs) == ["A"], give_up_after=10)
        await workers.stop("A")
        assert await client.exists(lock_key) == 0

        workers.start("B", RecordingJobs(log, BUSINESSES, worker="B"))
        await wait_until(lambda: elected(worker_logs) == ["A", "B"], give_up_after=10)
    finally:
        await workers.close()
        await client.aclose()


async def test_a_leader_that_loses_its_lock_stops_its_scheduler_at_once(
    database_url: str, redis_url: str, prefix: str
) -> None:
    backend = RedisBackend.from_url(redis_url, prefix=prefix)
    lock = DistributedLock(backend, LEADER_LOCK_NAME, ttl=0.6)
    election = LeaderElection(lock, worker_id="A")
    jobs = RecordingJobs(CallLog(), BUSINESSES)
    queue = RitualQueue(redis_url, jobs, namespace=prefix)
    await queue.open()
    ritual = RitualScheduler(
        jobs, queue, jobstore_url=sync_database_url(database_url), cadence=QUICK
    )
    lock_key = backend.key("lock", key_part(LEADER_LOCK_NAME))
    deposed = asyncio.Event()

    def step_down() -> None:
        ritual.stop_now()
        deposed.set()

    stop = asyncio.Event()
    running = asyncio.create_task(election.run(stop, on_elected=ritual.start, on_deposed=step_down))
    try:
        await wait_until(lambda: ritual.running, give_up_after=5)
        # The lease expired during a stall and another worker took the lock.
        await backend.client.set(lock_key, "another-worker", px=5000)
        await asyncio.wait_for(deposed.wait(), timeout=5)
        await asyncio.sleep(0)  # AsyncIOScheduler completes its shutdown on the next loop turn
        assert not ritual.running
        assert not election.is_leader
        assert await backend.client.get(lock_key) == "another-worker"  # not released by A
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=5)
        await queue.close()
        await backend.aclose()


class CrashingQueue:
    """The leader's dispatcher: the queue, until `crashing`; then the leader dies as it hands the
    next firing over (its next run time saved, the firing not queued)."""

    def __init__(self, queue: RitualQueue) -> None:
        self.queue = queue
        self.crashing = False
        self.handing_over = asyncio.Event()

    async def dispatch(self, task: Task, args: tuple[str, ...], **firing: Any) -> None:
        if not self.crashing:
            await self.queue.dispatch(task, args, **firing)
            return
        self.handing_over.set()
        await asyncio.Event().wait()  # the process is gone before this returns


async def test_a_new_leader_queues_the_firing_its_predecessor_lost_and_not_those_it_queued(
    database_url: str, redis_url: str, prefix: str
) -> None:
    log = CallLog()
    clock = ManualClock(datetime(2027, 6, 2, 9, 30, tzinfo=UTC))
    started = clock.now()
    store = sync_database_url(database_url)
    consumer = RitualQueue(
        redis_url, RecordingJobs(log, worker="C"), namespace=prefix, worker_id="C", poll_delay=0.05
    )
    queues = [RitualQueue(redis_url, RecordingJobs(CallLog()), namespace=prefix, clock=clock)
              for _ in range(2)]
    for queue in (consumer, *queues):
        await queue.open()
    running = asyncio.create_task(consumer.run_jobs())
    leaders: list[RitualScheduler] = []
    try:
        # Leader A queues what is due as it starts, then crashes handing over the next reconcile.
        first = CrashingQueue(queues[0])
        leaders.append(RitualScheduler(queues[0].jobs, first, jobstore_url=store, clock=clock))
        await leaders[0].start()
        await log.wait_until(lambda calls: len(log.of("reconcile_sweep")) == 1)
        first.crashing = True
        lost = started + RitualCadence().reconcile_every
        clock.set(lost)
        leaders[0].scheduler.wakeup()
        await asyncio.wait_for(first.handing_over.wait(), timeout=5)
        leaders[0].stop_now()
        await asyncio.sleep(0)

        # Leader B takes over: the lost reconcile is queued again; what A queued is refused.
        clock.advance(timedelta(seconds=20))
        leaders.append(RitualScheduler(queues[1].jobs, queues[1], jobstore_url=store, clock=clock))
        await leaders[1].start()
        await log.wait_until(lambda calls: len(log.of("reconcile_sweep")) == 2)
        await asyncio.sleep(0.3)  # several polls of the consumer: room for a duplicate to run
    finally:
        for leader in leaders:
            await leader.stop(grace=1)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        for queue in (consumer, *queues):
            await queue.close()

    assert [c.scheduled_for for c in log.of("reconcile_sweep")] == [started, lost]
    assert [c.scheduled_for for c in log.of("refresh_tokens")] == [started]
    assert log.repeated_firings() == {}


async def test_the_digest_sweep_leaves_a_digest_to_its_own_firing_while_the_queue_holds_it(
    redis_url: str, prefix: str
) -> None:
    """On a Monday morning the sweep finds a thousand digests whose firings wait in the queue: it
    leaves each to its firing (waiting or running) and sends only those the queue does not hold."""
    log = CallLog()
    due = datetime(2027, 6, 7, 12, tzinfo=UTC)  # Monday 8:00 in New York
    mondays = [BusinessSchedule(f"biz-{n}", "America/New_York", 0, time(8, 0)) for n in (1, 2)]
    jobs = RecordingJobs(log, mondays, worker="A", work_seconds=0.5)
    queue = RitualQueue(redis_url, jobs, namespace=prefix, worker_id="A", poll_delay=0.05)
    await queue.open()
    running: asyncio.Task[None] | None = None
    at = due + timedelta(minutes=5)
    try:
        await queue.enqueue(Task.SEND_DIGEST, ("biz-1",), job_id="digest:biz-1",
                            scheduled_for=due, expires_at=None)
        assert await sweep_digests(jobs, at=at, still_queued=queue.holds) == [("biz-2", due)]

        running = asyncio.create_task(queue.run_jobs())
        await wait_until(lambda: [c.business_id for c in log.of("send_digest")] == ["biz-2", "biz-1"])
        assert await queue.holds("digest:biz-1", due)  # running now
        assert await sweep_digests(jobs, at=at, still_queued=queue.holds) == [("biz-2", due)]

        await wait_until(lambda: not jobs.busy)
        await asyncio.sleep(0.2)  # arq records the result after the function returns
        assert not await queue.holds("digest:biz-1", due)
        assert await sweep_digests(jobs, at=at, still_queued=queue.holds) == [
            ("biz-1", due), ("biz-2", due)
        ]
    finally:
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await queue.close()

    assert [c.business_id for c in log.of("send_digest")] == ["biz-2", "biz-1"]
    assert log.repeated_firings() == {}


async def test_a_sync_checks_result_is_kept_an_hour_and_a_digests_a_day(
    redis_url: str, prefix: str
) -> None:
    """A thousand businesses' sync checks every five minutes are 288,000 results a day: each is kept
    an hour (long past any leader hand-over, so a repeat is still refused), a digest's a day."""
    log = CallLog()
    queue = RitualQueue(redis_url, RecordingJobs(log), namespace=prefix, poll_delay=0.05)
    client = Redis.from_url(redis_url)
    await queue.open()
    running = asyncio.create_task(queue.run_jobs())
    at = datetime.now(UTC).replace(microsecond=0)
    firings = {Task.SYNC_IF_DUE: "sync:biz-1", Task.SEND_DIGEST: "digest:biz-1"}
    try:
        for task, job_id in firings.items():
            await queue.enqueue(task, ("biz-1",), job_id=job_id, scheduled_for=at, expires_at=None)
        kept: dict[Task, int] = {}
        for _ in range(200):
            for task, job_id in firings.items():
                kept[task] = await client.ttl(f"arq:result:{arq_job_id(prefix, job_id, at)}")
            if all(seconds > 0 for seconds in kept.values()):
                break
            await asyncio.sleep(0.05)
        assert 3500 < kept[Task.SYNC_IF_DUE] <= 3600
        assert 86_000 < kept[Task.SEND_DIGEST] <= 86_400
        for task, job_id in firings.items():
            assert not await queue.enqueue(task, ("biz-1",), job_id=job_id, scheduled_for=at,
                                           expires_at=None)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await queue.close()
        await client.aclose()
    assert sorted(c.task for c in log.calls) == ["send_digest", "sync_if_due"]


async def test_closing_the_queue_mid_job_puts_the_job_back_without_failing(
    redis_url: str, prefix: str
) -> None:
    """A stop whose grace ran out (or a job started just as the worker stopped): closing cancels
    the job, which arq puts back on the queue for another worker, and the close itself succeeds."""
    log = CallLog()
    jobs = RecordingJobs(log, work_seconds=30)
    queue = RitualQueue(redis_url, jobs, namespace=prefix, poll_delay=0.05)
    await queue.open()
    at = datetime.now(UTC)
    await queue.enqueue(Task.SYNC_IF_DUE, ("biz-1",), job_id="sync:biz-1", scheduled_for=at,
                        expires_at=None)
    consumer = asyncio.create_task(queue.run_jobs())
    await wait_until(lambda: jobs.busy == 1)
    await queue.finish_running(grace=0.1)
    consumer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await consumer
    await queue.close()

    client = Redis.from_url(redis_url)
    try:
        back = await client.zscore(queue.queue_name, arq_job_id(prefix, "sync:biz-1", at))
    finally:
        await client.aclose()
    assert back is not None  # queued again, to run on another worker
