"""`run_worker`: what one `oodaloo worker` process does until it is told to stop.

With Redis (REDIS_URL set), every worker process:
  - competes for the leader lock; the leader alone runs the scheduler, whose jobs only enqueue;
  - runs an arq Worker over the shared queue, so queued jobs are shared by every worker.
Without Redis, one process does everything: the scheduler calls RitualJobs directly, no lock, no
queue (run a single worker in that mode; two would both fire every job).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from bot.worker.jobs import RitualJobs
from bot.worker.schedule import (
    JOBS_TABLE,
    DirectDispatcher,
    Dispatcher,
    RitualCadence,
    RitualScheduler,
    sync_database_url,
)
from sync import DEFAULT_PREFIX, Clock, DistributedLock, RedisBackend, SystemClock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning for `run_worker`; the defaults are for production, tests shorten the times."""

    cadence: RitualCadence = field(default_factory=RitualCadence)
    leader_lease: float = 30.0  # seconds a leader keeps the lock without renewing
    redis_prefix: str = DEFAULT_PREFIX  # namespaces the leader lock and the queue in Redis
    queue_poll_delay: float = 0.5
    max_concurrent_jobs: int = 10
    job_timeout: timedelta = timedelta(minutes=15)
    stop_grace: float = 30.0  # seconds running jobs get to finish on a clean stop
    jobs_table: str = JOBS_TABLE


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


async def run_worker(
    jobs: RitualJobs,
    *,
    database_url: str,
    redis_url: str | None,
    clock: Clock | None = None,
    stop: asyncio.Event | None = None,
    worker_id: str | None = None,
    options: WorkerOptions | None = None,
    handle_signals: bool = False,
) -> None:
    """Run the ritual until `stop` is set (or SIGTERM/SIGINT when `handle_signals`, as the CLI does).

    Cancelling the task instead is treated like a crash: the scheduler stops but the leader lock is
    kept until its lease runs out.
    """
    clock = clock or SystemClock()
    stop = stop or asyncio.Event()
    worker_id = worker_id or default_worker_id()
    options = options or WorkerOptions()
    jobstore_url = sync_database_url(database_url)
    with _signals_set(stop, enabled=handle_signals):
        if redis_url is None:
            await _run_alone(jobs, jobstore_url, clock, stop, worker_id, options)
        else:
            await _run_shared(jobs, jobstore_url, redis_url, clock, stop, worker_id, options)
    log.info("worker %s stopped", worker_id)


async def _run_alone(
    jobs: RitualJobs,
    jobstore_url: str,
    clock: Clock,
    stop: asyncio.Event,
    worker_id: str,
    options: WorkerOptions,
) -> None:
    log.info(
        "worker %s: no REDIS_URL, so this one process schedules and runs every job itself",
        worker_id,
    )
    ritual = _scheduler(jobs, DirectDispatcher(jobs), jobstore_url, clock, options)
    await ritual.start()
    try:
        await stop.wait()
    except asyncio.CancelledError:
        ritual.stop_now()
        raise
    await ritual.stop(grace=options.stop_grace)


async def _run_shared(
    jobs: RitualJobs,
    jobstore_url: str,
    redis_url: str,
    clock: Clock,
    stop: asyncio.Event,
    worker_id: str,
    options: WorkerOptions,
) -> None:
    # The leader lock and the queue are Redis's (the `redis` extra): loaded only here.
    from bot.worker.leader import LEADER_LOCK_NAME, LeaderElection
    from bot.worker.queue import RitualQueue

    backend = RedisBackend.from_url(redis_url, prefix=options.redis_prefix)
    queue = RitualQueue(
        redis_url,
        jobs,
        namespace=options.redis_prefix,
        worker_id=worker_id,
        poll_delay=options.queue_poll_delay,
        max_jobs=options.max_concurrent_jobs,
        job_timeout=options.job_timeout,
        clock=clock,
    )
    try:
        await backend.ping()
        await queue.open()
        lock = DistributedLock(backend, LEADER_LOCK_NAME, ttl=options.leader_lease)
        election = LeaderElection(lock, worker_id=worker_id)
        current: list[RitualScheduler] = []

        async def lead() -> None:
            ritual = _scheduler(jobs, queue, jobstore_url, clock, options)
            current.append(ritual)
            await ritual.start()

        def step_down() -> None:
            while current:
                current.pop().stop_now()

        async def resign() -> None:
            # Let firings being queued finish, so none is lost between the store and the queue.
            while current:
                await current.pop().stop(grace=options.stop_grace)

        log.info("worker %s: running queued jobs from %s", worker_id, queue.queue_name)
        consumer = asyncio.create_task(queue.run_jobs(), name=f"queue consumer {worker_id}")
        try:
            await election.run(stop, on_elected=lead, on_deposed=step_down, on_resign=resign)
            await queue.finish_running(options.stop_grace)
        finally:
            step_down()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    finally:
        await queue.close()
        await backend.aclose()


def _scheduler(
    jobs: RitualJobs,
    dispatcher: Dispatcher,
    jobstore_url: str,
    clock: Clock,
    options: WorkerOptions,
) -> RitualScheduler:
    return RitualScheduler(
        jobs,
        dispatcher,
        jobstore_url=jobstore_url,
        cadence=options.cadence,
        clock=clock,
        jobs_table=options.jobs_table,
    )


@contextlib.contextmanager
def _signals_set(stop: asyncio.Event, *, enabled: bool) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` while the worker runs (when run from the command line)."""
    if not enabled:
        yield
        return
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
