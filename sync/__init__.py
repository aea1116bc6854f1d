"""Oodaloo's safe way to talk to QuickBooks Online: the only face `runway` and `bot` use.

The layers above import from ``sync`` itself (``from sync import SmartSyncService, Clock``), never
from its submodules; an import-linter contract in pyproject.toml holds them to it. Only the
composition root, ``bot/bootstrap.py``, reaches into submodules to build the infrastructure.

Names are loaded on first use, so ``from sync import Clock`` does not pull in httpx, Redis or
SQLAlchemy. ``QuickBooksUnavailable`` is the one exception for "QuickBooks cannot be used right
now; try again later" (an open circuit, no free request slot, an outage or throttling after the
retries).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sync.actions import (
        BILL_PAYMENT_CREATE,
        ActionOutcome,
        BillPaymentIntent,
        InvoiceSendIntent,
    )
    from sync.backends import (
        DEFAULT_PREFIX,
        Backend,
        MemoryBackend,
        RedisBackend,
        redis_of,
        redis_unreachable,
    )
    from sync.books_versions import (
        books_version,
        for_business,
    )
    from sync.circuit import (
        CircuitOpen,
        CircuitState,
    )
    from sync.clock import (
        Clock,
        SystemClock,
    )
    from sync.db import (
        NAMING_CONVENTION,
        DecimalJSON,
        EncodedJSON,
        Money,
        UTCDateTime,
        dumps_decimal,
        dumps_json_document,
        exact_cents,
    )
    from sync.decisions import (
        NotDecided,
        PersonDecision,
        decide,
    )
    from sync.drift import (
        ActionMissingInQBO,
        AmountChanged,
        BalanceChanged,
        DeletedInQBO,
        Drift,
        LocalAction,
        LocalBill,
        PaidHereOpenInQBO,
        action_drift,
        bill_drift,
    )
    from sync.errors import (
        QuickBooksUnavailable,
    )
    from sync.infrastructure import (
        SyncSettings,
    )
    from sync.ledger import (
        Action,
        ActionState,
        ConflictingAction,
    )
    from sync.locks import (
        DistributedLock,
        LockFactory,
        LockTimeout,
    )
    from sync.qbo import (
        QBOError,
        QBOTokenError,
        QBOValidationError,
        TokenProvider,
    )
    from sync.qbo.auth import (
        PROCESS_REALM_LOCKS,
        PRODUCTION_TOKEN_URL,
        UTC_CLOCK,
        OAuthTokenProvider,
        OAuthTokens,
        WallClock,
    )
    from sync.qbo.auth import (
        LockFactory as RealmLockFactory,
    )
    from sync.qbo.json import (
        loads as loads_decimal,
    )
    from sync.ratelimit import (
        Priority,
        RateLimitError,
        RateLimitTimeout,
    )
    from sync.reconcile import (
        DriftReport,
        Resolution,
    )
    from sync.service import (
        SmartSyncService,
        SyncUnavailable,
    )
    from sync.timing import (
        QBO_PLATFORM,
        SyncStrategy,
    )

#: Each public name: (submodule, name there).
_EXPORTS: dict[str, tuple[str, str]] = {
    "BILL_PAYMENT_CREATE": ("sync.actions", "BILL_PAYMENT_CREATE"),
    "ActionOutcome": ("sync.actions", "ActionOutcome"),
    "BillPaymentIntent": ("sync.actions", "BillPaymentIntent"),
    "InvoiceSendIntent": ("sync.actions", "InvoiceSendIntent"),
    "DEFAULT_PREFIX": ("sync.backends", "DEFAULT_PREFIX"),
    "Backend": ("sync.backends", "Backend"),
    "MemoryBackend": ("sync.backends", "MemoryBackend"),
    "RedisBackend": ("sync.backends", "RedisBackend"),
    "redis_of": ("sync.backends", "redis_of"),
    "redis_unreachable": ("sync.backends", "redis_unreachable"),
    "books_version": ("sync.books_versions", "books_version"),
    "for_business": ("sync.books_versions", "for_business"),
    "CircuitOpen": ("sync.circuit", "CircuitOpen"),
    "CircuitState": ("sync.circuit", "CircuitState"),
    "Clock": ("sync.clock", "Clock"),
    "SystemClock": ("sync.clock", "SystemClock"),
    "NAMING_CONVENTION": ("sync.db", "NAMING_CONVENTION"),
    "DecimalJSON": ("sync.db", "DecimalJSON"),
    "Money": ("sync.db", "Money"),
    "UTCDateTime": ("sync.db", "UTCDateTime"),
    "dumps_decimal": ("sync.db", "dumps_decimal"),
    "dumps_json_document": ("sync.db", "dumps_json_document"),
    "EncodedJSON": ("sync.db", "EncodedJSON"),
    "exact_cents": ("sync.db", "exact_cents"),
    "ActionMissingInQBO": ("sync.drift", "ActionMissingInQBO"),
    "AmountChanged": ("sync.drift", "AmountChanged"),
    "BalanceChanged": ("sync.drift", "BalanceChanged"),
    "DeletedInQBO": ("sync.drift", "DeletedInQBO"),
    "Drift": ("sync.drift", "Drift"),
    "LocalAction": ("sync.drift", "LocalAction"),
    "LocalBill": ("sync.drift", "LocalBill"),
    "action_drift": ("sync.drift", "action_drift"),
    "PaidHereOpenInQBO": ("sync.drift", "PaidHereOpenInQBO"),
    "bill_drift": ("sync.drift", "bill_drift"),
    "QuickBooksUnavailable": ("sync.errors", "QuickBooksUnavailable"),
    "SyncSettings": ("sync.infrastructure", "SyncSettings"),
    "Action": ("sync.ledger", "Action"),
    "ActionState": ("sync.ledger", "ActionState"),
    "ConflictingAction": ("sync.ledger", "ConflictingAction"),
    "DistributedLock": ("sync.locks", "DistributedLock"),
    "LockFactory": ("sync.locks", "LockFactory"),
    "LockTimeout": ("sync.locks", "LockTimeout"),
    "QBOError": ("sync.qbo", "QBOError"),
    "QBOTokenError": ("sync.qbo", "QBOTokenError"),
    "QBOValidationError": ("sync.qbo", "QBOValidationError"),
    "TokenProvider": ("sync.qbo", "TokenProvider"),
    "PROCESS_REALM_LOCKS": ("sync.qbo.auth", "PROCESS_REALM_LOCKS"),
    "PRODUCTION_TOKEN_URL": ("sync.qbo.auth", "PRODUCTION_TOKEN_URL"),
    "UTC_CLOCK": ("sync.qbo.auth", "UTC_CLOCK"),
    "OAuthTokenProvider": ("sync.qbo.auth", "OAuthTokenProvider"),
    "OAuthTokens": ("sync.qbo.auth", "OAuthTokens"),
    "WallClock": ("sync.qbo.auth", "WallClock"),
    "RealmLockFactory": ("sync.qbo.auth", "LockFactory"),
    "loads_decimal": ("sync.qbo.json", "loads"),
    "Priority": ("sync.ratelimit", "Priority"),
    "RateLimitError": ("sync.ratelimit", "RateLimitError"),
    "RateLimitTimeout": ("sync.ratelimit", "RateLimitTimeout"),
    "NotDecided": ("sync.decisions", "NotDecided"),
    "PersonDecision": ("sync.decisions", "PersonDecision"),
    "decide": ("sync.decisions", "decide"),
    "DriftReport": ("sync.reconcile", "DriftReport"),
    "Resolution": ("sync.reconcile", "Resolution"),
    "SmartSyncService": ("sync.service", "SmartSyncService"),
    "SyncUnavailable": ("sync.service", "SyncUnavailable"),
    "QBO_PLATFORM": ("sync.timing", "QBO_PLATFORM"),
    "SyncStrategy": ("sync.timing", "SyncStrategy"),
}

__all__ = [
    "BILL_PAYMENT_CREATE",
    "DEFAULT_PREFIX",
    "NAMING_CONVENTION",
    "PROCESS_REALM_LOCKS",
    "PRODUCTION_TOKEN_URL",
    "QBO_PLATFORM",
    "UTC_CLOCK",
    "Action",
    "ActionMissingInQBO",
    "ActionOutcome",
    "ActionState",
    "AmountChanged",
    "Backend",
    "BalanceChanged",
    "BillPaymentIntent",
    "CircuitOpen",
    "CircuitState",
    "Clock",
    "ConflictingAction",
    "DecimalJSON",
    "DeletedInQBO",
    "DistributedLock",
    "Drift",
    "DriftReport",
    "EncodedJSON",
    "InvoiceSendIntent",
    "LocalAction",
    "LocalBill",
    "LockFactory",
    "LockTimeout",
    "MemoryBackend",
    "Money",
    "NotDecided",
    "OAuthTokenProvider",
    "OAuthTokens",
    "PaidHereOpenInQBO",
    "PersonDecision",
    "Priority",
    "QBOError",
    "QBOTokenError",
    "QBOValidationError",
    "QuickBooksUnavailable",
    "RateLimitError",
    "RateLimitTimeout",
    "RealmLockFactory",
    "RedisBackend",
    "Resolution",
    "SmartSyncService",
    "SyncSettings",
    "SyncStrategy",
    "SyncUnavailable",
    "SystemClock",
    "TokenProvider",
    "UTCDateTime",
    "WallClock",
    "action_drift",
    "bill_drift",
    "books_version",
    "decide",
    "dumps_decimal",
    "dumps_json_document",
    "exact_cents",
    "for_business",
    "loads_decimal",
    "redis_of",
    "redis_unreachable",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'sync' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
