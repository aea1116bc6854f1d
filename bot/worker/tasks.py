"""The ritual's tasks by name: what a firing asks RitualJobs to do, wherever it runs.

The same names are the arq function names on the queue, so the scheduler (which only knows names
and string arguments) and every worker (which holds the RitualJobs) agree on them. While a task runs,
`current_firing` says which scheduled firing it is (job id and scheduled instant), for logs and for
implementations that want to recognise a repeated run of the same firing.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.worker.jobs import RitualJobs


class Task(StrEnum):
    SYNC_IF_DUE = "sync_if_due"
    SEND_DIGEST = "send_digest"
    RECONCILE_SWEEP = "reconcile_sweep"
    REFRESH_TOKENS = "refresh_tokens"


@dataclass(frozen=True)
class FiringRef:
    job_id: str  # the scheduler's job id, e.g. "digest:{business_id}" or "reconcile"
    scheduled_for: datetime  # the instant the job was due, UTC


current_firing: ContextVar[FiringRef | None] = ContextVar("current_firing", default=None)


async def perform(
    jobs: RitualJobs,
    task: Task,
    args: Sequence[str],
    *,
    job_id: str,
    scheduled_for: datetime,
) -> None:
    """Run one firing of `task` with RitualJobs."""
    token = current_firing.set(FiringRef(job_id, scheduled_for))
    try:
        if task is Task.SYNC_IF_DUE:
            (business_id,) = args
            await jobs.sync_if_due(business_id)
        elif task is Task.SEND_DIGEST:
            (business_id,) = args
            await jobs.send_digest(business_id, scheduled_for)
        elif task is Task.RECONCILE_SWEEP:
            await jobs.reconcile_sweep()
        elif task is Task.REFRESH_TOKENS:
            await jobs.refresh_tokens()
        else:  # pragma: no cover - the enum is exhaustive
            raise ValueError(f"unknown ritual task {task!r}")
    finally:
        current_firing.reset(token)
