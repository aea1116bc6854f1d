"""The scheduler's job store: APScheduler's SQLAlchemyJobStore, saving one round's next run times in
one transaction.

When a thousand businesses' digests are due at the same minute, APScheduler fires each due job and
saves its next run time one job at a time, each in a transaction of its own (milliseconds each on
PostgreSQL, more on a busy machine): seconds in which the leader's event loop does nothing else, so
the first firing reaches the queue only after the last next run time is saved. Inside `batch()` the
store holds those updates and writes them together, in one transaction, before anything reads or
changes the store again and when the batch ends. The firings only start once the scheduler's loop
yields, after the batch, so each still finds its job's next run time saved, as before.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.util import datetime_to_utc_timestamp
from sqlalchemy import bindparam

log = logging.getLogger(__name__)


class BatchingJobStore(SQLAlchemyJobStore):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[str, Job] | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Hold next-run-time updates until the store is read or changed, or the batch ends."""
        self._held = {}
        try:
            yield
        finally:
            try:
                self._write_held()
            finally:
                self._held = None

    def update_job(self, job: Job) -> None:
        if self._held is None:
            super().update_job(job)
        else:
            self._held[job.id] = job

    def _write_held(self) -> None:
        if not self._held:
            return
        held, self._held = list(self._held.values()), {}
        table = self.jobs_t
        update = (
            table.update()
            .where(table.c.id == bindparam("job_id"))
            .values(next_run_time=bindparam("next_run"), job_state=bindparam("state"))
        )
        rows = [
            {
                "job_id": job.id,
                "next_run": datetime_to_utc_timestamp(job.next_run_time),
                "state": pickle.dumps(job.__getstate__(), self.pickle_protocol),
            }
            for job in held
        ]
        with self.engine.begin() as connection:
            connection.execute(update, rows)
        log.debug("saved the next run times of %d jobs in one transaction", len(rows))

    # Reads and other changes see (and follow) the updates held so far.

    def lookup_job(self, job_id: str) -> Job | None:
        self._write_held()
        return super().lookup_job(job_id)

    def get_due_jobs(self, now: Any) -> list[Job]:
        self._write_held()
        return super().get_due_jobs(now)  # type: ignore[no-any-return]

    def get_next_run_time(self) -> Any:
        self._write_held()
        return super().get_next_run_time()

    def get_all_jobs(self) -> list[Job]:
        self._write_held()
        return super().get_all_jobs()  # type: ignore[no-any-return]

    def add_job(self, job: Job) -> None:
        self._write_held()
        super().add_job(job)

    def remove_job(self, job_id: str) -> None:
        self._write_held()
        super().remove_job(job_id)

    def remove_all_jobs(self) -> None:
        self._write_held()
        super().remove_all_jobs()
