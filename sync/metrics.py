"""Counters and structured log records for the QuickBooks orchestration layer.

Counters answer "how is QuickBooks treating us?" (calls, retries, 429s, cache hits, deduplicated
clicks, unknown outcomes, reconciliations) per company; they live in the process and are read by
health endpoints, benchmarks and tests. Log records carry the realm and the action key as
structured fields (`extra`), so one payment can be followed through every process that touched it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("sync")

# Counter names (stable: dashboards read them).
CALLS = "calls"
CALL_FAILURES = "call_failures"
RETRIES = "retries"
THROTTLED = "throttled_429"
CACHE_HITS = "cache_hits"
CACHE_MISSES = "cache_misses"
STALE_SERVED = "stale_served"
DEDUPLICATED = "deduplicated"
LOST_RACES = "lost_races"
WRITES_SUCCEEDED = "writes_succeeded"
WRITES_FAILED = "writes_failed"
WRITES_DEFERRED = "writes_deferred"
UNKNOWN_OUTCOMES = "unknown_outcomes"
CIRCUIT_REJECTIONS = "circuit_rejections"
RECONCILIATIONS = "reconciliations"
RECONCILED_FOUND = "reconciled_found"
RECONCILED_RESENT = "reconciled_resent"
NEEDS_HUMAN = "needs_human"
DRIFT_FOUND = "drift_found"


class SyncMetrics:
    """Thread-safe counters, each kept overall and per realm."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: Counter[str] = Counter()
        self._by_realm: dict[str, Counter[str]] = {}

    def incr(self, name: str, realm_id: str | None = None, amount: int = 1) -> None:
        with self._lock:
            self._totals[name] += amount
            if realm_id is not None:
                self._by_realm.setdefault(realm_id, Counter())[name] += amount

    def get(self, name: str, realm_id: str | None = None) -> int:
        with self._lock:
            if realm_id is None:
                return self._totals[name]
            return self._by_realm.get(realm_id, Counter())[name]

    def snapshot(self) -> dict[str, Any]:
        """`{"totals": {name: n}, "by_realm": {realm: {name: n}}}`, zero counters left out."""
        with self._lock:
            return {
                "totals": dict(+self._totals),
                "by_realm": {realm: dict(+counts) for realm, counts in self._by_realm.items()},
            }


def log_event(
    level: int,
    message: str,
    *,
    realm_id: str | None,
    action_key: str | None = None,
    business_id: str | None = None,
    fields: Mapping[str, Any] | None = None,
    log: logging.Logger = logger,
) -> None:
    """One structured record: a readable message plus `realm_id`, `action_key` and any fields.

    The message itself names the realm and action too, so plain-text logs stay useful.
    """
    extra: dict[str, Any] = {"realm_id": realm_id, "action_key": action_key, "business_id": business_id}
    if fields:
        extra.update(fields)
    context = " ".join(
        f"{name}={value}"
        for name, value in (("realm", realm_id), ("action", action_key))
        if value is not None
    )
    log.log(level, f"{message} [{context}]" if context else message, extra=extra)
