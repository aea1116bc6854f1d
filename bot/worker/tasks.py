"""The ritual's tasks by name: what a firing asks RitualJobs to do, wherever it runs.

The same names are the arq function names on the queue, so the scheduler (which only knows names
and string arguments) and every worker (which holds the RitualJobs) agree on them. While a task runs,
`current_firing` says which scheduled firing it is (job id and scheduled instant), for logs and for
implementations that want to recognise a repeated run of the same firing.

The digest sweep is the one task that is not a RitualJobs method: it asks RitualJobs to send every
business's latest weekly digest that is due and still within `DIGEST_CATCH_UP`, each as a repeat of
that digest's own firing (`digest:{business_id}` at its due instant). `send_digest` is idempotent, so
a digest already sent is left alone, one being sent is not disturbed, and one that failed or whose
firing was lost (a leader that crashed between saving the next run time and queueing the job, a
worker killed mid-digest) is sent now. A digest whose own firing still waits in the queue (or runs)
is left to it: on a Monday morning a thousand firings wait their turn, and a sweep that took them
one after another would only hold them up.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.worker.jobs import DIGEST_CATCH_UP, DIGEST_PREFIX, RitualJobs, latest_digest_due

log = logging.getLogger(__name__)


class Task(StrEnum):
    SYNC_IF_DUE = "sync_if_due"
    SEND_DIGEST = "send_digest"
    RECONCILE_SWEEP = "reconcile_sweep"
    REFRESH_TOKENS = "refresh_tokens"
    SWEEP_DIGESTS = "sweep_digests"


@dataclass(frozen=True)
class FiringRef:
    job_id: str  # the scheduler's job id, e.g. "digest:{business_id}" or "reconcile"
    scheduled_for: datetime  # the instant the job was due, UTC


current_firing: ContextVar[FiringRef | None] = ContextVar("current_firing", default=None)

#: Whether the queue still holds a firing (scheduler job id, scheduled instant): waiting or running.
StillQueued = Callable[[str, datetime], Awaitable[bool]]


async def perform(
    jobs: RitualJobs,
    task: Task,
    args: Sequence[str],
    *,
    job_id: str,
    scheduled_for: datetime,
    still_queued: StillQueued | None = None,
) -> None:
    """Run one firing of `task` with RitualJobs (`still_queued`: see `sweep_digests`)."""
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
        elif task is Task.SWEEP_DIGESTS:
            await sweep_digests(jobs, at=scheduled_for, still_queued=still_queued)
        else:  # pragma: no cover - the enum is exhaustive
            raise ValueError(f"unknown ritual task {task!r}")
    finally:
        current_firing.reset(token)


async def sweep_digests(
    jobs: RitualJobs, *, at: datetime, still_queued: StillQueued | None = None
) -> list[tuple[str, datetime]]:
    """Ask for each business's latest digest due by `at` (and at most DIGEST_CATCH_UP old) again,
    except those whose own firing `still_queued` says the queue still holds.

    Returns the (business, due instant) pairs asked for. One business's failure is logged and does
    not keep the others' digests from going out.
    """
    asked: list[tuple[str, datetime]] = []
    for schedule in await jobs.schedules():
        due = latest_digest_due(schedule, at)
        if due is None or at - due > DIGEST_CATCH_UP:
            continue
        business_id = schedule.business_id
        job_id = DIGEST_PREFIX + business_id
        if still_queued is not None and await still_queued(job_id, due):
            continue
        asked.append((business_id, due))
        token = current_firing.set(FiringRef(job_id, due))
        try:
            await jobs.send_digest(business_id, due)
        except Exception:
            log.exception(
                "the digest sweep could not send the digest of %s due at %s; the next sweep "
                "asks again", business_id, due.isoformat(),
            )
        finally:
            current_firing.reset(token)
    return asked
