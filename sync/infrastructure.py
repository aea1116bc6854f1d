"""The shared pieces every SmartSyncService and Reconciler in one process stands on, built once.

`SyncInfrastructure.create(database_url, redis_url, tokens_for=...)` opens the database (and brings
it to the latest migration), picks Redis or in-process backends, and builds the action ledger, sync
timing, rate limiter, circuit breaker, cache, locks, clock, counters and a `client_factory(realm_id)`
that hands out one QBORawClient per QuickBooks company. Without a Redis URL everything shared lives
in this process (the embedded default); with one, every process sharing that Redis and database
agrees on rate limits, open circuits, cached data and who holds which action.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from types import MappingProxyType
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from sync.backends import Backend, backend_from_url
from sync.cache import SyncCache
from sync.circuit import CircuitBreaker, CircuitConfig
from sync.clock import Clock, SystemClock
from sync.db import make_engine, make_sessionmaker, upgrade_database
from sync.ledger import ActionLedger
from sync.locks import lock_factory
from sync.metrics import SyncMetrics
from sync.qbo import PRODUCTION_BASE_URL, QBORawClient, TokenProvider
from sync.ratelimit import Priority, RateLimitConfig, RealmRateLimiter
from sync.retry import RetryPolicies, RetryPolicy
from sync.timing import SyncIntervals, SyncTimingStore

TokensFor = Callable[[str], TokenProvider]
ReconcileScheduler = Callable[[str], Awaitable[None]]

_DEFAULT_SLOT_TIMEOUTS: Mapping[Priority, float] = MappingProxyType(
    # A click must hear back in seconds; background work can queue.
    {Priority.USER_ACTION: 5.0, Priority.DATA_FETCH: 30.0, Priority.BULK: 300.0}
)
_DEFAULT_ATTEMPT_TIMEOUTS: Mapping[Priority, float] = MappingProxyType(
    {Priority.USER_ACTION: 20.0, Priority.DATA_FETCH: 60.0, Priority.BULK: 120.0}
)


@dataclass(frozen=True)
class SyncSettings:
    """Tunables of the orchestration layer. Defaults are production values; tests scale them."""

    qbo_base_url: str = PRODUCTION_BASE_URL
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    circuit: CircuitConfig = field(default_factory=CircuitConfig)
    retry: RetryPolicies = field(default_factory=RetryPolicies)
    #: Longest wait for a rate-limit slot, per kind of work.
    slot_timeouts: Mapping[Priority, float] = field(default_factory=lambda: _DEFAULT_SLOT_TIMEOUTS)
    #: Longest one try may take end to end (httpx's timeouts bound each read, not the whole call).
    attempt_timeouts: Mapping[Priority, float] = field(
        default_factory=lambda: _DEFAULT_ATTEMPT_TIMEOUTS
    )
    http_timeout: httpx.Timeout = field(
        default_factory=lambda: httpx.Timeout(30.0, connect=5.0, pool=10.0)
    )
    cache_ttl: timedelta = timedelta(minutes=240)
    #: Bills and invoices due within this many days make up the digest.
    digest_horizon_days: int = 30
    #: Most actions one reconciliation sweep looks at (the rest wait for the next sweep).
    reconcile_batch_size: int = 50
    #: A write deferred (left pending) is tried again after this long, doubling with each try.
    deferred_retry_after: timedelta = timedelta(seconds=30)
    deferred_retry_max: timedelta = timedelta(hours=1)
    #: Reconciliation treats a payment created this long before its action as possibly its own.
    clock_skew: timedelta = timedelta(minutes=5)
    lease_margin_seconds: float = 10.0
    sync_intervals: SyncIntervals = field(default_factory=SyncIntervals)

    def retry_policy(self, priority: Priority) -> RetryPolicy:
        return {
            Priority.USER_ACTION: self.retry.user_action,
            Priority.DATA_FETCH: self.retry.data_fetch,
            Priority.BULK: self.retry.bulk,
        }[priority]

    def write_lease_seconds(self, priority: Priority = Priority.USER_ACTION) -> float:
        """How long a worker holds an action it is sending: longer than the write can take, so
        nobody else takes it over while it is still in progress, yet short enough that a crashed
        worker's action is picked up by reconciliation soon after."""
        policy = self.retry_policy(priority)
        return (
            policy.max_attempts * (self.slot_timeouts[priority] + self.attempt_timeouts[priority])
            + policy.worst_case_wait
            + self.lease_margin_seconds
        )

    def scaled(self, factor: float) -> SyncSettings:
        """Every wait and timeout multiplied by `factor` (tests run the same logic in milliseconds)."""
        return replace(
            self,
            retry=self.retry.scaled(factor),
            slot_timeouts=MappingProxyType({p: t * factor for p, t in self.slot_timeouts.items()}),
            attempt_timeouts=MappingProxyType(
                {p: t * factor for p, t in self.attempt_timeouts.items()}
            ),
            deferred_retry_after=self.deferred_retry_after * factor,
            deferred_retry_max=self.deferred_retry_max * factor,
            lease_margin_seconds=self.lease_margin_seconds * factor,
        )


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class SyncInfrastructure:
    """Everything the orchestration layer needs, for one process. Close it with `aclose()`."""

    def __init__(
        self,
        *,
        engine: AsyncEngine,
        backend: Backend,
        tokens_for: TokensFor,
        settings: SyncSettings | None = None,
        clock: Clock | None = None,
        limiter_clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        worker_id: str | None = None,
        on_reconcile: ReconcileScheduler | None = None,
        owns_engine: bool = True,
        owns_backend: bool = True,
    ) -> None:
        self.settings = settings or SyncSettings()
        self.clock: Clock = clock or SystemClock()
        self.engine = engine
        self.sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        self.backend = backend
        self.worker_id = worker_id or _default_worker_id()
        self.ledger = ActionLedger(self.sessionmaker, self.clock)
        self.timing = SyncTimingStore(self.sessionmaker, self.clock, self.settings.sync_intervals)
        # The limiter measures real waiting: it keeps its own (real) clock even when tests move
        # `clock` by hand to expire leases or cool circuits down.
        self.limiter = RealmRateLimiter(
            backend, self.settings.rate_limit, clock=limiter_clock or SystemClock()
        )
        self.circuit = CircuitBreaker(backend, self.settings.circuit, clock=self.clock)
        self.cache = SyncCache(backend, clock=self.clock, default_ttl=self.settings.cache_ttl)
        self.locks = lock_factory(backend)
        self.metrics = SyncMetrics()
        self.on_reconcile = on_reconcile
        self._tokens_for = tokens_for
        self._http = httpx.AsyncClient(transport=transport, timeout=self.settings.http_timeout)
        self._clients: dict[str, QBORawClient] = {}
        self._owns_engine = owns_engine
        self._owns_backend = owns_backend

    @classmethod
    async def create(
        cls,
        database_url: str,
        redis_url: str | None = None,
        *,
        tokens_for: TokensFor,
        settings: SyncSettings | None = None,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend | None = None,
        redis_prefix: str = "oodaloo",
        migrate: bool = True,
        worker_id: str | None = None,
        on_reconcile: ReconcileScheduler | None = None,
    ) -> SyncInfrastructure:
        """Open the database (migrated to head unless `migrate=False`) and the backends.

        `backend` lends an existing backend (left open on close) instead of `redis_url`: two
        infrastructures on one `MemoryBackend` share state the way two processes share one Redis.
        """
        if migrate:
            await upgrade_database(database_url)
        engine = make_engine(database_url)
        chosen = backend if backend is not None else backend_from_url(redis_url, prefix=redis_prefix)
        return cls(
            engine=engine,
            backend=chosen,
            tokens_for=tokens_for,
            settings=settings,
            clock=clock,
            transport=transport,
            worker_id=worker_id,
            on_reconcile=on_reconcile,
            owns_backend=backend is None,
        )

    def client_factory(self, realm_id: str, business_id: str | None = None) -> QBORawClient:
        """The QBORawClient for one QuickBooks company (one per realm, sharing one connection pool).

        `business_id` only labels the client's log records (a company belongs to one business).
        """
        client = self._clients.get(realm_id)
        if client is None:
            client = QBORawClient(
                business_id or realm_id,
                realm_id,
                base_url=self.settings.qbo_base_url,
                tokens=self._tokens_for(realm_id),
                http=self._http,
            )
            self._clients[realm_id] = client
        return client

    def describe(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "database": self.engine.url.render_as_string(hide_password=True),
            "backend": self.backend.describe(),
            "qbo_base_url": self.settings.qbo_base_url,
        }

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._owns_engine:
            await self.engine.dispose()
        if self._owns_backend:
            await self.backend.aclose()
