"""The shared job queue (arq on Redis): the leader's scheduler enqueues, every worker runs jobs.

A firing is enqueued under the arq job id `{namespace}:{scheduler job id}:{scheduled instant, UTC
ISO}`; arq refuses a second job with an id it already holds (queued, running, or finished within
`keep_result`), so a firing enqueued twice (an old leader that has not yet noticed it lost the lock,
and the new one; or a new leader catching up on a firing its predecessor may have lost) runs once. A job whose misfire grace runs out while it waits in the queue expires
instead of running late. A worker that dies mid-job leaves it to be run again by another worker
once its in-progress mark expires (arq's at-least-once), which is why RitualJobs must be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus
from arq.typing import WorkerCoroutine
from arq.worker import Function, Worker, func
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bot.worker.jobs import RitualJobs
from bot.worker.tasks import Task, perform
from sync import Clock, SystemClock

log = logging.getLogger(__name__)

_JOBS_KEY = "ritual_jobs"
_WORKER_KEY = "worker_id"
_QUEUE_KEY = "ritual_queue"
#: arq's states of a job that is still to run or running.
_WAITING_OR_RUNNING = {JobStatus.queued, JobStatus.deferred, JobStatus.in_progress}
# Kept so a late duplicate enqueue of a finished firing is still recognised: a digest's for a day;
# the checks every few minutes (sync, reconcile, ...) for an hour, far longer than any leader
# hand-over, so a thousand businesses' sync checks (288,000 a day) do not pile up in Redis.
_KEEP_RESULT = timedelta(days=1)
_KEEP_RECURRING_RESULT = timedelta(hours=1)
_ENQUEUE_ATTEMPTS = 4


def arq_job_id(namespace: str, job_id: str, scheduled_for: datetime) -> str:
    return f"{namespace}:{job_id}:{scheduled_for.isoformat()}"


# arq functions: thin wrappers that run the task with this worker's RitualJobs. Arguments are
# strings (the task's own, then the scheduler job id and the scheduled instant in ISO form).


async def _run(
    ctx: dict[str, Any], task: Task, args: tuple[str, ...], job_id: str, scheduled_for: str
) -> None:
    jobs: RitualJobs = ctx[_JOBS_KEY]
    queue: RitualQueue = ctx[_QUEUE_KEY]
    log.info("worker %s runs %s due at %s", ctx.get(_WORKER_KEY), job_id, scheduled_for)
    await perform(
        jobs, task, args, job_id=job_id, scheduled_for=datetime.fromisoformat(scheduled_for),
        still_queued=queue.holds,
    )


async def sync_if_due(
    ctx: dict[str, Any], business_id: str, job_id: str, scheduled_for: str
) -> None:
    await _run(ctx, Task.SYNC_IF_DUE, (business_id,), job_id, scheduled_for)


async def send_digest(
    ctx: dict[str, Any], business_id: str, job_id: str, scheduled_for: str
) -> None:
    await _run(ctx, Task.SEND_DIGEST, (business_id,), job_id, scheduled_for)


async def reconcile_sweep(ctx: dict[str, Any], job_id: str, scheduled_for: str) -> None:
    await _run(ctx, Task.RECONCILE_SWEEP, (), job_id, scheduled_for)


async def refresh_tokens(ctx: dict[str, Any], job_id: str, scheduled_for: str) -> None:
    await _run(ctx, Task.REFRESH_TOKENS, (), job_id, scheduled_for)


async def sweep_digests(ctx: dict[str, Any], job_id: str, scheduled_for: str) -> None:
    await _run(ctx, Task.SWEEP_DIGESTS, (), job_id, scheduled_for)


_FUNCTIONS: dict[Task, WorkerCoroutine] = {
    Task.SYNC_IF_DUE: sync_if_due,
    Task.SEND_DIGEST: send_digest,
    Task.RECONCILE_SWEEP: reconcile_sweep,
    Task.REFRESH_TOKENS: refresh_tokens,
    Task.SWEEP_DIGESTS: sweep_digests,
}


def keep_result_of(task: Task) -> timedelta:
    return _KEEP_RESULT if task is Task.SEND_DIGEST else _KEEP_RECURRING_RESULT


class RitualQueue:
    """One process's connection to the queue: enqueues firings, runs an arq Worker over them."""

    def __init__(
        self,
        redis_url: str,
        jobs: RitualJobs,
        *,
        namespace: str = "oodaloo",
        worker_id: str = "worker",
        poll_delay: float = 0.5,
        max_jobs: int = 10,
        job_timeout: timedelta = timedelta(minutes=15),
        max_tries: int = 3,
        clock: Clock | None = None,
    ) -> None:
        self.redis_url = redis_url
        self.jobs = jobs
        self.namespace = namespace
        self.queue_name = f"{namespace}:ritual-queue"
        self.worker_id = worker_id
        self.poll_delay = poll_delay
        self.max_jobs = max_jobs
        self.job_timeout = job_timeout
        self.max_tries = max_tries
        self.clock: Clock = clock or SystemClock()
        self._pool: ArqRedis | None = None
        self._worker: Worker | None = None

    @property
    def pool(self) -> ArqRedis:
        if self._pool is None:
            raise RuntimeError("the ritual queue is not open: call `await queue.open()` first")
        return self._pool

    async def open(self) -> None:
        self._pool = await create_pool(
            RedisSettings.from_dsn(self.redis_url), default_queue_name=self.queue_name
        )

    def _functions(self) -> list[Function]:
        return [
            func(function, name=task.value, max_tries=self.max_tries, keep_result=keep_result_of(task))
            for task, function in _FUNCTIONS.items()
        ]

    async def run_jobs(self) -> None:
        """Run queued jobs until cancelled or `close()`d (arq Worker, in this process)."""
        self._worker = Worker(
            functions=self._functions(),
            queue_name=self.queue_name,
            redis_pool=self.pool,
            burst=False,
            handle_signals=False,
            poll_delay=self.poll_delay,
            max_jobs=self.max_jobs,
            job_timeout=self.job_timeout,
            keep_result=_KEEP_RESULT,
            ctx={_JOBS_KEY: self.jobs, _WORKER_KEY: self.worker_id, _QUEUE_KEY: self},
        )
        await self._worker.async_run()

    async def enqueue(
        self,
        task: Task,
        args: tuple[str, ...],
        *,
        job_id: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
    ) -> bool:
        """Queue one firing; False when that firing is already queued, running or done."""
        expires: timedelta | None = None
        if expires_at is not None:
            expires = max(expires_at - self.clock.now(), timedelta(seconds=1))
        queued_id = arq_job_id(self.namespace, job_id, scheduled_for)
        # A Redis blip must not lose a weekly digest: retry briefly; the job id keeps it single.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type((RedisError, OSError)),
            stop=stop_after_attempt(_ENQUEUE_ATTEMPTS),
            wait=wait_exponential(multiplier=0.2, max=2),
            reraise=True,
        ):
            with attempt:
                queued = await self.pool.enqueue_job(
                    task.value,
                    *args,
                    job_id,
                    scheduled_for.isoformat(),
                    _job_id=queued_id,
                    _expires=expires,
                )
        if queued is None:
            log.info("%s is already queued or done; not queued again", queued_id)
            return False
        log.info("queued %s", queued_id)
        return True

    async def holds(self, job_id: str, scheduled_for: datetime) -> bool:
        """Whether the firing is queued (or deferred) or running now."""
        queued = Job(arq_job_id(self.namespace, job_id, scheduled_for), self.pool,
                     _queue_name=self.queue_name)
        return await queued.status() in _WAITING_OR_RUNNING

    async def dispatch(
        self,
        task: Task,
        args: tuple[str, ...],
        *,
        job_id: str,
        scheduled_for: datetime,
        expires_at: datetime | None,
    ) -> None:
        """The leader's scheduler hands firings here (the `Dispatcher` of the queued mode)."""
        await self.enqueue(
            task, args, job_id=job_id, scheduled_for=scheduled_for, expires_at=expires_at
        )

    async def finish_running(self, grace: float) -> None:
        """Stop taking jobs and give the running ones up to `grace` seconds to finish.

        arq reads up to a hundred queued ids at a time and keeps starting them as slots free up
        even once it may pick no more, so this waits for those too, not only for the jobs running
        when it was called.
        """
        worker = self._worker
        if worker is None:
            return
        worker.allow_pick_jobs = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while running := [task for task in worker.tasks.values() if not task.done()]:
            left = deadline - loop.time()
            if left <= 0:
                log.warning(
                    "%d queued job(s) still running after %g s at shutdown were cancelled; "
                    "another worker runs them again",
                    len(running),
                    grace,
                )
                return
            await asyncio.wait(running, timeout=left)

    async def close(self) -> None:
        if self._worker is not None:
            worker, self._worker = self._worker, None
            # arq cancels the jobs still running and then awaits them, which raises their
            # CancelledError out of close(): cancel and collect them first (arq puts each back on
            # the queue, so another worker runs it again).
            unfinished = [task for task in worker.tasks.values() if not task.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            worker.tasks.clear()
            await worker.close()  # also closes the pool it was given
            self._pool = None
        elif self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    def __repr__(self) -> str:
        return f"RitualQueue(queue={self.queue_name!r}, worker={self.worker_id!r})"
