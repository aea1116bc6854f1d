"""`oodaloo worker`: the weekly ritual runs itself.

One scheduler (the leader, when several workers share Redis) fires each business's sync checks and
weekly digest in its own timezone, the reconciliation sweep and token refresh; every worker runs the
queued jobs. What each job does is injected as `RitualJobs` (see `bot.worker.jobs`).
"""

from bot.worker.jobs import BusinessSchedule, RitualJobs
from bot.worker.run import WorkerOptions, run_worker
from bot.worker.schedule import RitualCadence
from bot.worker.tasks import FiringRef, current_firing

__all__ = [
    "BusinessSchedule",
    "FiringRef",
    "RitualCadence",
    "RitualJobs",
    "WorkerOptions",
    "current_firing",
    "run_worker",
]
