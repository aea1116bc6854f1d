"""Leader election among worker processes: one Redis lock with a lease, renewed while leading.

Every worker runs `LeaderElection.run`. Whoever takes the lock (`sync.locks.DistributedLock`) is the
leader and runs the scheduler; it renews the lease every third of its length. The others poll at the
same pace and take over once the lease has expired, which happens when the leader dies (its renewals
stop) or stalls past the lease. A leader whose renewal fails (the lease expired and someone else took
it, or Redis cannot be reached) stops its scheduler at once, before anything else, and goes back to
polling.

Leaving cleanly (`stop` set) releases the lock so a follower takes over at its next poll. A
cancelled election (the process going down hard) does not release: the lease runs out by itself,
exactly as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from sync import DistributedLock

log = logging.getLogger(__name__)

LEADER_LOCK_NAME = "worker-leader"

OnElected = Callable[[], Awaitable[None]]
OnDeposed = Callable[[], None]
OnResign = Callable[[], Awaitable[None]]


class LeaderElection:
    def __init__(
        self, lock: DistributedLock, *, worker_id: str, check_every: float | None = None
    ) -> None:
        self.lock = lock
        self.worker_id = worker_id
        # Renewing at a third of the lease survives one missed renewal.
        self.check_every = check_every if check_every is not None else lock.ttl / 3
        self.is_leader = False
        self.terms = 0  # how many times this worker has become leader

    async def run(
        self,
        stop: asyncio.Event,
        *,
        on_elected: OnElected,
        on_deposed: OnDeposed,
        on_resign: OnResign | None = None,
    ) -> None:
        """Lead or follow until `stop` is set.

        `on_elected` starts leading; `on_deposed` must stop at once (the lock is lost, or the
        process is going down hard); `on_resign`, when given, winds down gently on a clean stop
        while the lock is still held (otherwise `on_deposed` is used then too).
        """
        log.info("worker %s: competing for leadership (lease %g s)", self.worker_id, self.lock.ttl)
        following = False
        try:
            while not stop.is_set():
                if self.is_leader:
                    if not await self._still_leading():
                        self.is_leader = False
                        following = True
                        on_deposed()
                        log.warning(
                            "worker %s: lost leadership; scheduler stopped, now a follower",
                            self.worker_id,
                        )
                elif await self._try_to_lead():
                    following = False
                    self.is_leader = True
                    self.terms += 1
                    log.info("worker %s: elected leader; starting the scheduler", self.worker_id)
                    try:
                        await on_elected()
                    except Exception:
                        self.is_leader = False
                        on_deposed()
                        await self._release()
                        raise
                elif not following:
                    following = True
                    log.info(
                        "worker %s: following; another worker leads, and this one takes over if "
                        "its lease (%g s) runs out",
                        self.worker_id,
                        self.lock.ttl,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.check_every)
        except asyncio.CancelledError:
            if self.is_leader:
                # Going down hard: stop scheduling but keep the lock, which expires by itself.
                self.is_leader = False
                on_deposed()
            raise
        if self.is_leader:
            try:
                if on_resign is not None:
                    await on_resign()
                else:
                    on_deposed()
            finally:
                self.is_leader = False
                await self._release()
            log.info("worker %s: stepped down and released leadership", self.worker_id)

    async def _try_to_lead(self) -> bool:
        try:
            return await self.lock.try_acquire()
        except (RedisError, OSError) as error:
            log.warning(
                "worker %s: cannot reach Redis to compete for leadership (%s); retrying",
                self.worker_id,
                error,
            )
            return False

    async def _still_leading(self) -> bool:
        try:
            return await self.lock.renew()
        except (RedisError, OSError) as error:
            # Without Redis we cannot know the lease is still ours: stop scheduling to be safe.
            log.warning(
                "worker %s: cannot renew leadership, Redis unreachable (%s)", self.worker_id, error
            )
            return False

    async def _release(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.lock.release()
