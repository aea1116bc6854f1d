"""SyncCache: recent QuickBooks reads per business and platform, each stamped with its as-of time.

Entries live `ttl` (240 minutes by default, as the architecture decision sets). Beside each fresh
entry a "last known good" copy is kept for a week, so that during a QuickBooks outage the product can
still show numbers, labelled stale with their age, instead of nothing.

Invalidating a whole platform is O(1): fresh keys carry a per-(business, platform) generation number,
and invalidation bumps it. Values are JSON with Decimal kept exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import simplejson

from sync.backends import Backend, MemoryBackend, key_part, redis_of
from sync.clock import Clock, SystemClock

DEFAULT_TTL = timedelta(minutes=240)
LAST_GOOD_TTL = timedelta(days=7)
_WHOLE = "_"  # the key part used when a cached value has no key of its own


@dataclass(frozen=True)
class CachedValue:
    value: Any
    as_of: datetime
    age: timedelta

    def is_stale(self, max_age: timedelta) -> bool:
        return self.age > max_age


@dataclass
class CacheCounters:
    hits: int = 0
    misses: int = 0
    stale_served: int = 0


def _encode(value: Any, as_of: datetime, expires_at: datetime) -> str:
    entry = {"value": value, "as_of": as_of.isoformat(), "expires_at": expires_at.isoformat()}
    try:
        return str(simplejson.dumps(entry, use_decimal=True))
    except TypeError as error:
        raise TypeError(
            f"only JSON data (dicts, lists, strings, numbers, Decimal) can be cached: {error}"
        ) from error


def _decode(raw: str) -> tuple[Any, datetime, datetime]:
    entry = simplejson.loads(raw, use_decimal=True)
    return (
        entry["value"],
        datetime.fromisoformat(entry["as_of"]),
        datetime.fromisoformat(entry["expires_at"]),
    )


class SyncCache:
    def __init__(
        self,
        backend: Backend,
        *,
        clock: Clock | None = None,
        default_ttl: timedelta = DEFAULT_TTL,
        last_good_ttl: timedelta = LAST_GOOD_TTL,
    ) -> None:
        if default_ttl <= timedelta(0) or last_good_ttl < default_ttl:
            raise ValueError(
                "the cache TTL must be positive and the last-good TTL at least as long"
            )
        self.backend = backend
        self.clock: Clock = clock or SystemClock()
        self.default_ttl = default_ttl
        self.last_good_ttl = last_good_ttl
        self.counters = CacheCounters()
        # In memory: encoded entries and generations, shared by every cache on this backend.
        self._entries: dict[str, str] | None = None
        self._generations: dict[str, int] | None = None
        if isinstance(backend, MemoryBackend):
            self._entries = backend.state("cache.entries", dict)
            self._generations = backend.state("cache.generations", dict)
        self._lock = asyncio.Lock()

    # --- keys ----------------------------------------------------------------------------------

    def _name(self, *parts: str) -> str:
        escaped = [key_part(p) for p in parts]
        if isinstance(self.backend, MemoryBackend):
            return ":".join(escaped)
        return self.backend.key("cache", *escaped)

    async def _generation(self, business_id: str, platform: str) -> int:
        name = self._name("gen", business_id, platform)
        if self._generations is not None:
            return self._generations.get(name, 0)
        raw = await redis_of(self.backend).get(name)
        return int(raw or 0)

    async def _fresh_name(self, business_id: str, platform: str, key: str | None) -> str:
        generation = await self._generation(business_id, platform)
        return self._name("fresh", business_id, platform, str(generation), key or _WHOLE)

    def _good_name(self, business_id: str, platform: str, key: str | None) -> str:
        return self._name("good", business_id, platform, key or _WHOLE)

    # --- storage -------------------------------------------------------------------------------

    async def _read(self, name: str) -> str | None:
        if self._entries is not None:
            return self._entries.get(name)
        raw = await redis_of(self.backend).get(name)
        return None if raw is None else str(raw)

    async def _write(self, name: str, raw: str, ttl: timedelta) -> None:
        if self._entries is not None:
            self._entries[name] = raw
            return
        # Redis expires the key too (plus a margin), so abandoned entries do not pile up; the
        # expiry stored in the entry is what decides freshness, on the injected clock.
        await redis_of(self.backend).set(
            name, raw, px=int((ttl + timedelta(minutes=1)).total_seconds() * 1000)
        )

    # --- the interface -------------------------------------------------------------------------

    async def get(
        self, business_id: str, platform: str, key: str | None = None
    ) -> CachedValue | None:
        """The fresh entry, or None when there is none or it has expired."""
        raw = await self._read(await self._fresh_name(business_id, platform, key))
        now = self.clock.now()
        if raw is not None:
            value, as_of, expires_at = _decode(raw)
            if now < expires_at:
                self.counters.hits += 1
                return CachedValue(value, as_of, now - as_of)
        self.counters.misses += 1
        return None

    async def get_stale(
        self, business_id: str, platform: str, key: str | None = None
    ) -> CachedValue | None:
        """The last known good value whatever its age (within a week), for fallback in an outage."""
        raw = await self._read(self._good_name(business_id, platform, key))
        if raw is None:
            return None
        value, as_of, expires_at = _decode(raw)
        now = self.clock.now()
        if now >= expires_at:
            return None  # too old to show even labelled stale
        self.counters.stale_served += 1
        return CachedValue(value, as_of, now - as_of)

    async def set(
        self,
        business_id: str,
        platform: str,
        value: Any,
        key: str | None = None,
        ttl: timedelta | None = None,
    ) -> CachedValue:
        ttl = ttl or self.default_ttl
        now = self.clock.now()
        fresh = _encode(value, now, now + ttl)
        good = _encode(value, now, now + self.last_good_ttl)
        await self._write(await self._fresh_name(business_id, platform, key), fresh, ttl)
        await self._write(self._good_name(business_id, platform, key), good, self.last_good_ttl)
        return CachedValue(value, now, timedelta(0))

    async def invalidate(self, business_id: str, platform: str, key: str | None = None) -> None:
        """Drop one fresh entry, or (key None) every fresh entry of the platform.

        Last known good copies stay: they are what an outage falls back to.
        """
        if key is not None:
            name = await self._fresh_name(business_id, platform, key)
            if self._entries is not None:
                self._entries.pop(name, None)
            else:
                await redis_of(self.backend).delete(name)
            return
        gen_name = self._name("gen", business_id, platform)
        if self._generations is not None:
            async with self._lock:
                old = self._generations.get(gen_name, 0)
                self._generations[gen_name] = old + 1
                assert self._entries is not None
                prefix = self._name("fresh", business_id, platform, str(old)) + ":"
                for name in [n for n in self._entries if n.startswith(prefix)]:
                    del self._entries[name]
            return
        await redis_of(self.backend).incr(gen_name)
