"""Where shared sync state lives: Redis (shared by every process) or in-process memory (one process).

`backend_from_url(settings.redis_url)` picks one. The rate limiter, circuit breaker, cache and locks all
take a backend and behave the same on either; on Redis they use atomic Lua scripts so several
processes agree, in memory they keep the same state in dictionaries owned by the backend object, so
two components built on one `MemoryBackend` share it just as two processes share one Redis.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

if TYPE_CHECKING:
    # redis-py is the `redis` extra: loaded only when a Redis URL is configured (`from_url`).
    from redis.asyncio import Redis

T = TypeVar("T")

DEFAULT_PREFIX = "oodaloo"

# Characters with a meaning inside our Redis keys: the separator, hash-tag braces and our escape.
_KEY_UNSAFE = re.compile(r"[:{}%\s]")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def key_part(value: str) -> str:
    """Escape one user-supplied piece of a Redis key so ids like "a:b" cannot collide with "a" + "b"."""
    return _KEY_UNSAFE.sub(lambda match: f"%{ord(match.group()):02X}", value)


class MemoryBackend:
    """In-process state for one process (the embedded default when no Redis URL is configured)."""

    kind: Literal["memory"] = "memory"
    #: What its operations raise when the store fails: nothing, state in memory cannot fail.
    errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._states: dict[str, object] = {}

    def state(self, name: str, factory: Callable[[], T]) -> T:
        """The state object registered under `name`, created by `factory` on first use.

        Every component built on this backend with the same `name` gets the same object.
        """
        if name not in self._states:
            self._states[name] = factory()
        return cast(T, self._states[name])

    async def aclose(self) -> None:
        self._states.clear()

    def describe(self) -> str:
        return "in-process memory (one process only)"

    def __repr__(self) -> str:
        return "MemoryBackend()"


class RedisBackend:
    """A Redis connection pool plus the key prefix that namespaces everything Oodaloo stores there."""

    kind: Literal["redis"] = "redis"

    def __init__(self, client: Redis, prefix: str = DEFAULT_PREFIX) -> None:
        if not prefix:
            raise ValueError(
                "a Redis key prefix is required so Oodaloo's keys cannot clash with others"
            )
        from redis.exceptions import RedisError

        self.client = client
        self.prefix = prefix
        #: What a call to Redis raises when Redis fails: redis-py's errors, and the socket's (an
        #: OSError, asyncio's TimeoutError included).
        self.errors: tuple[type[Exception], ...] = (RedisError, OSError)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX) -> RedisBackend:
        from redis.asyncio import Redis

        # Replies are text: every value we store is an id, a number or JSON.
        client = Redis.from_url(url, decode_responses=True)
        return cls(client, prefix)

    def key(self, *parts: str) -> str:
        """`prefix:part:part...`; callers escape user-supplied parts with `key_part`."""
        return ":".join((self.prefix, *parts))

    async def ping(self) -> None:
        """Fail with a clear message when Redis cannot be reached."""
        try:
            await self.client.ping()
        except self.errors as error:
            raise ConnectionError(
                f"Redis at {self.describe()} is not reachable: {error}"
            ) from error

    async def delete_all_keys(self) -> int:
        """Delete every key under this backend's prefix (test clean-up and tenant tear-down)."""
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + ":*"
        deleted = 0
        batch: list[str] = []
        async for name in self.client.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                deleted += await self.client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self.client.unlink(*batch)
        return deleted

    async def aclose(self) -> None:
        await self.client.aclose()

    def describe(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
        return f"redis {where}/{kwargs.get('db', 0)} (prefix {self.prefix!r})"

    def __repr__(self) -> str:
        return f"RedisBackend({self.describe()})"


Backend = MemoryBackend | RedisBackend


def redis_of(backend: Backend) -> Redis:
    """The Redis client of a Redis backend (components call it only on their Redis path)."""
    if not isinstance(backend, RedisBackend):
        raise TypeError("this backend keeps its state in process memory and has no Redis client")
    return backend.client


def redis_unreachable(error: BaseException) -> bool:
    """Whether `error` is redis-py's lost, refused or timed-out connection (not an error reply).

    redis-py is loaded only with a Redis backend: without one, nothing raised can be its error.
    """
    exceptions = sys.modules.get("redis.exceptions")
    return exceptions is not None and isinstance(
        error, exceptions.ConnectionError | exceptions.TimeoutError
    )


def backend_from_url(url: str | None, *, prefix: str = DEFAULT_PREFIX) -> Backend:
    """Redis when `url` is a redis:// / rediss:// / unix:// URL, in-process memory when it is None or empty."""
    if not url:
        return MemoryBackend()
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"unsupported Redis URL {url!r}: expected redis://host:port/db, rediss://... or unix:///path; "
            "leave it unset to keep shared state in this process"
        )
    return RedisBackend.from_url(url, prefix=prefix)


# --- Waiting helpers shared by the components built on a backend ------------------------------

_log = logging.getLogger(__name__)
_unfinished: set[asyncio.Task[Any]] = set()


class Wakeup:
    """Wakes in-process waiters when shared state changes (a slot or lock released here).

    Waiters also sleep with a timeout, because a change made by another process sends no wake-up.
    `generation` lets a waiter notice a wake-up that came while it was busy asking the backend.
    """

    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self.generation = 0

    async def wait(self, seconds: float, since: int | None = None) -> None:
        """Return after `seconds` or at the next `notify_all()`, whichever comes first.

        With `since`, return at once if a notification came after `generation` was `since`.
        """
        if since is not None and since != self.generation:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(future)
        try:
            await asyncio.wait({future}, timeout=max(seconds, 0.0))
        finally:
            self._waiters.discard(future)
            future.cancel()

    def notify_all(self) -> None:
        self.generation += 1
        for future in self._waiters:
            if not future.done():
                future.set_result(None)
        self._waiters.clear()


def _report_unfinished(task: asyncio.Task[Any]) -> None:
    _unfinished.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _log.error("clean-up after a cancelled wait failed: %r", task.exception())


async def finish_even_if_cancelled(work: Coroutine[Any, Any, T]) -> T:
    """Run clean-up `work` to the end even when the waiting task is cancelled meanwhile.

    Releasing a slot or a lock must not be cut short by a second cancellation, or the slot would stay
    reserved until its lease expires.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            # Keep a reference so the clean-up is not garbage-collected, and report its failure.
            _unfinished.add(task)
            task.add_done_callback(_report_unfinished)
        raise
