"""Locks with expiry, shared by every process on the same backend.

Used so two processes never refresh one company's OAuth token at once (QuickBooks rotates refresh
tokens: the loser of such a race would hold a dead token), and for the scheduler's leader election.
A lock expires after `ttl` unless renewed, so a crashed holder never blocks others for good; inside
`async with` it renews itself in the background while the body runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from sync.backends import (
    Backend,
    MemoryBackend,
    Wakeup,
    finish_even_if_cancelled,
    key_part,
    redis_of,
)
from sync.clock import Clock, SystemClock

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 30.0
_MAX_PAUSE_SECONDS = 0.05

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""


class LockTimeout(TimeoutError):
    def __init__(self, name: str, waited: float) -> None:
        super().__init__(
            f"could not take the lock {name!r} within {waited:.1f} s: another process holds it; "
            "it frees itself when that process finishes or its lease expires"
        )


@dataclass
class _Held:
    token: str
    expires_at: float


class _MemoryLocks:
    """The in-process table of held locks, shared by every lock built on one MemoryBackend."""

    def __init__(self) -> None:
        self.held: dict[str, _Held] = {}
        self.wakeup = Wakeup()


class DistributedLock:
    def __init__(
        self,
        backend: Backend,
        name: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Clock | None = None,
        acquire_timeout: float | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"a lock's ttl must be positive, got {ttl}")
        self.backend = backend
        self.name = name
        self.ttl = ttl
        self.clock: Clock = clock or SystemClock()
        self.acquire_timeout = acquire_timeout
        self.token = secrets.token_hex(16)
        # Set when renewal inside `async with` found the lock gone (expired and taken over).
        self.lost = False
        self._owned = False  # what this object last learned: it holds the lock
        self._renewer: asyncio.Task[None] | None = None
        self._memory: _MemoryLocks | None = None
        if isinstance(backend, MemoryBackend):
            self._memory = backend.state("locks", _MemoryLocks)
        else:
            self._key = backend.key("lock", key_part(name))
            self._release = backend.client.register_script(_RELEASE)
            self._renew = backend.client.register_script(_RENEW)

    # --- single attempts -----------------------------------------------------------------------

    async def try_acquire(self) -> bool:
        """Take the lock if it is free (or already ours, which extends it); never waits."""
        self._owned = await self._try_acquire()
        return self._owned

    async def _try_acquire(self) -> bool:
        if self._memory is not None:
            now = self.clock.monotonic()
            current = self._memory.held.get(self.name)
            if current is not None and current.expires_at > now and current.token != self.token:
                return False
            self._memory.held[self.name] = _Held(self.token, now + self.ttl)
            return True
        taken = await redis_of(self.backend).set(
            self._key, self.token, nx=True, px=int(self.ttl * 1000)
        )
        if taken:
            return True
        # Re-entering a lock this object already holds just extends it.
        return await self.renew()

    async def renew(self) -> bool:
        """Extend the lease by `ttl`; False when the lock is no longer ours (it expired and moved)."""
        if self._memory is not None:
            current = self._memory.held.get(self.name)
            now = self.clock.monotonic()
            if current is None or current.token != self.token or current.expires_at <= now:
                return False
            current.expires_at = now + self.ttl
            return True
        return bool(await self._renew(keys=[self._key], args=[self.token, int(self.ttl * 1000)]))

    async def release(self) -> bool:
        """Let go if still ours; False when it had already expired or been taken over."""
        self._owned = False
        if self._memory is not None:
            current = self._memory.held.get(self.name)
            if current is None or current.token != self.token:
                return False
            del self._memory.held[self.name]
            self._memory.wakeup.notify_all()
            return True
        return bool(await self._release(keys=[self._key], args=[self.token]))

    async def is_held(self) -> bool:
        """Whether this object holds the lock now."""
        if self._memory is not None:
            current = self._memory.held.get(self.name)
            return (
                current is not None
                and current.token == self.token
                and current.expires_at > self.clock.monotonic()
            )
        return bool(await redis_of(self.backend).get(self._key) == self.token)

    # --- waiting ---------------------------------------------------------------------------------

    async def acquire(self, wait_seconds: float | None = None) -> None:
        """Wait until the lock is ours, at most `wait_seconds` (None: the lock's own default)."""
        limit = wait_seconds if wait_seconds is not None else self.acquire_timeout
        loop = asyncio.get_running_loop()
        started = loop.time()
        pause = 0.005
        held_before = self._owned
        try:
            while not await self.try_acquire():
                waited = loop.time() - started
                if limit is not None and waited >= limit:
                    raise LockTimeout(self.name, waited)
                step = pause if limit is None else min(pause, limit - waited)
                if self._memory is not None:
                    await self._memory.wakeup.wait(step)
                else:
                    await asyncio.sleep(step)
                # Short cap: a token refresh waiting on another process should follow it closely.
                pause = min(pause * 2, _MAX_PAUSE_SECONDS)
        except asyncio.CancelledError:
            # Cancelled while Redis may already have given us the lock: give it back rather than
            # leave it blocking everyone until its lease runs out.
            if not held_before:
                await finish_even_if_cancelled(self.release())
            raise

    async def _keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            if not await self.renew():
                self.lost = True
                self._owned = False
                log.error(
                    "lock %r expired while its holder was still working (the process stalled for "
                    "longer than %g s); another process may now hold it",
                    self.name,
                    self.ttl,
                )
                return

    async def __aenter__(self) -> DistributedLock:
        await self.acquire()
        self.lost = False
        self._renewer = asyncio.create_task(self._keep_renewed())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        await finish_even_if_cancelled(self.release())


LockFactory = Callable[[str], DistributedLock]


def lock_factory(
    backend: Backend,
    *,
    ttl: float = DEFAULT_TTL_SECONDS,
    clock: Clock | None = None,
    acquire_timeout: float | None = 60.0,
) -> LockFactory:
    """`factory(name)` gives a fresh lock object for `name`: usable as the OAuth token provider's
    per-realm lock (`lock=lock_factory(backend)`) or for leader election."""

    def make(name: str) -> DistributedLock:
        return DistributedLock(backend, name, ttl=ttl, clock=clock, acquire_timeout=acquire_timeout)

    return make
