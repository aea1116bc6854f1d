"""OAuth 2.0 access tokens for QuickBooks Online, refreshed before they expire and never lost.

QuickBooks access tokens last an hour; refresh tokens roll (the value may change on a refresh and the
old one then stops working). Losing the newest refresh token disconnects the business, so:

- a refresh happens under a lock per company (realm): in one process an ``asyncio.Lock``, across
  processes whatever lock is injected (Redis), so two refreshes never race;
- after taking the lock the provider may reload the persisted tokens (``reload``), because another
  process may have refreshed meanwhile;
- the new tokens are handed to ``on_rotate`` (which persists them) *before* the new access token is
  used; if persisting fails, the next call retries persisting before anything else.

``sync`` stores no domain models: persisting and encrypting the tokens is the caller's job.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx
import simplejson

from sync.qbo.errors import (
    Outcome,
    QBOAuthError,
    QBOConnectionError,
    QBOError,
    QBOResponseError,
    QBOServerError,
    QBOThrottledError,
    QBOTokenError,
)
from sync.qbo.faults import intuit_tid_of, parse_retry_after
from sync.qbo.json import loads

logger = logging.getLogger(__name__)

LockFactory = Callable[[str], AbstractAsyncContextManager[Any]]

# Intuit's documented lifetimes, used when a token response leaves a field out.
DEFAULT_ACCESS_LIFETIME = timedelta(hours=1)
DEFAULT_REFRESH_LIFETIME = timedelta(days=100)
PRODUCTION_TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"


class WallClock(Protocol):
    """Anything that tells the current, timezone-aware time (Oodaloo's clocks, the sandbox's)."""

    def now(self) -> datetime: ...


class UTCClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


UTC_CLOCK = UTCClock()


@dataclass(frozen=True)
class OAuthTokens:
    """One QuickBooks connection's tokens. The secrets are kept out of ``repr`` (and so out of logs)."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    refresh_expires_at: datetime

    def __post_init__(self) -> None:
        for name in ("expires_at", "refresh_expires_at"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise ValueError(f"OAuthTokens.{name} must be timezone-aware, got {value!r}")

    @classmethod
    def from_token_response(
        cls, body: Mapping[str, Any], *, now: datetime, previous: OAuthTokens | None = None
    ) -> OAuthTokens:
        """Tokens from Intuit's token-endpoint JSON (``access_token``, ``expires_in``, ``refresh_token``,
        ``x_refresh_token_expires_in``); a missing refresh token means the previous one still holds."""
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ValueError("the token response has no access_token")
        refresh = body.get("refresh_token") or (previous.refresh_token if previous else None)
        if not isinstance(refresh, str) or not refresh:
            raise ValueError("the token response has no refresh_token and none was known before")
        expires_in = body.get("expires_in")
        expires_at = (
            now + timedelta(seconds=int(expires_in))
            if expires_in is not None
            else now + DEFAULT_ACCESS_LIFETIME
        )
        refresh_in = body.get("x_refresh_token_expires_in")
        if refresh_in is not None:
            refresh_expires_at = now + timedelta(seconds=int(refresh_in))
        elif previous is not None and refresh == previous.refresh_token:
            refresh_expires_at = previous.refresh_expires_at
        else:
            refresh_expires_at = now + DEFAULT_REFRESH_LIFETIME
        return cls(access, refresh, expires_at, refresh_expires_at)


class TokenProvider(Protocol):
    """Where QBORawClient gets the bearer token for one company (realm)."""

    async def access_token(self) -> str:
        """A token believed valid now (refreshing first if it is about to expire)."""
        ...

    async def force_refresh(self, rejected: str) -> str:
        """A token other than ``rejected``, which QuickBooks just refused with a 401."""
        ...


class StaticTokenProvider:
    """A fixed access token (the demo, health checks, tests). It cannot be refreshed."""

    def __init__(self, access_token: str) -> None:
        self._access_token = access_token

    async def access_token(self) -> str:
        return self._access_token

    async def force_refresh(self, rejected: str) -> str:
        raise QBOAuthError(
            "QuickBooks refused the access token and this connection has no refresh token to renew it",
            status=401,
        )


class RealmLocks:
    """An ``asyncio.Lock`` per company (realm) and event loop: the in-process refresh lock."""

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]
        self._locks = weakref.WeakKeyDictionary()

    def __call__(self, realm_id: str) -> asyncio.Lock:
        per_loop = self._locks.setdefault(asyncio.get_running_loop(), {})
        return per_loop.setdefault(realm_id, asyncio.Lock())


# Shared by every provider in this process, so two providers for one realm never refresh at once.
PROCESS_REALM_LOCKS = RealmLocks()


class OAuthTokenProvider:
    """Access tokens for one QuickBooks company, refreshed with its rolling refresh token."""

    def __init__(
        self,
        realm_id: str,
        client_id: str,
        client_secret: str,
        token_url: str,
        tokens: OAuthTokens,
        on_rotate: Callable[[OAuthTokens], Awaitable[None]],
        http: httpx.AsyncClient,
        *,
        clock: WallClock = UTC_CLOCK,
        refresh_skew: timedelta = timedelta(seconds=300),
        lock: LockFactory = PROCESS_REALM_LOCKS,
        reload: Callable[[], Awaitable[OAuthTokens | None]] | None = None,
    ) -> None:
        """``on_rotate`` persists new tokens (it runs before they are used); ``lock(realm_id)`` gives
        the refresh lock; ``reload`` (optional) returns the persisted tokens, read after taking the lock
        so that a refresh done by another process is reused instead of repeated."""
        self.realm_id = realm_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._token_url = token_url
        self._tokens = tokens
        self._on_rotate = on_rotate
        self._http = http
        self._clock = clock
        self._refresh_skew = refresh_skew
        self._lock = lock
        self._reload = reload
        # Tokens QuickBooks issued that on_rotate has not yet saved: never refresh past them.
        self._unpersisted: OAuthTokens | None = None

    @property
    def tokens(self) -> OAuthTokens:
        return self._tokens

    async def access_token(self) -> str:
        if self._unpersisted is None and self._is_fresh(self._tokens):
            return self._tokens.access_token
        async with self._lock(self.realm_id):
            await self._reload_locked()
            if self._unpersisted is None and self._is_fresh(self._tokens):
                return self._tokens.access_token  # another task refreshed while we waited
            return await self._refresh_locked()

    async def force_refresh(self, rejected: str) -> str:
        async with self._lock(self.realm_id):
            await self._reload_locked()
            current = self._tokens
            if (
                self._unpersisted is None
                and current.access_token != rejected
                and self._is_fresh(current)
            ):
                return current.access_token  # someone already replaced the rejected token
            return await self._refresh_locked()

    def _is_fresh(self, tokens: OAuthTokens) -> bool:
        return self._clock.now() < tokens.expires_at - self._refresh_skew

    async def _reload_locked(self) -> None:
        if self._reload is None or self._unpersisted is not None:
            return
        stored = await self._reload()
        if stored is not None:
            self._tokens = stored

    async def _refresh_locked(self) -> str:
        if self._unpersisted is not None:
            await self._persist(self._unpersisted)
            if self._is_fresh(self._tokens):
                return self._tokens.access_token
        current = self._tokens
        now = self._clock.now()
        if current.refresh_expires_at <= now:
            raise QBOTokenError(
                f"The QuickBooks refresh token for company {self.realm_id} expired at "
                f"{current.refresh_expires_at.isoformat()}",
                code="refresh_token_expired",
            )
        started = asyncio.get_running_loop().time()
        try:
            response = await self._http.post(
                self._token_url,
                data={"grant_type": "refresh_token", "refresh_token": current.refresh_token},
                auth=httpx.BasicAuth(self._client_id, self._client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            raise QBOConnectionError(
                f"Could not reach the QuickBooks token endpoint to refresh company {self.realm_id}'s "
                f"access token ({type(exc).__name__}: {exc})",
                outcome=Outcome.NOT_APPLIED,
                advice="no QuickBooks data was touched; retry shortly (the current refresh token stays usable)",
            ) from exc
        tid = intuit_tid_of(response)
        logger.info(
            "QBO token refresh -> %s in %.0f ms",
            response.status_code,
            (asyncio.get_running_loop().time() - started) * 1000,
            extra={"realm_id": self.realm_id, "status": response.status_code, "intuit_tid": tid},
        )
        if response.status_code != 200:
            raise self._refresh_failure(response, tid)
        try:
            body = loads(response.text)
            if not isinstance(body, Mapping):
                raise ValueError("the token response is not a JSON object")
            new_tokens = OAuthTokens.from_token_response(body, now=now, previous=current)
        except (ValueError, simplejson.JSONDecodeError) as exc:
            raise QBOResponseError(
                f"QuickBooks' token endpoint answered 200 with an unusable body ({exc})",
                status=200,
                intuit_tid=tid,
                outcome=Outcome.NOT_APPLIED,
                advice="no QuickBooks data was touched; retry the refresh shortly",
            ) from exc
        self._unpersisted = new_tokens
        await self._persist(new_tokens)
        return new_tokens.access_token

    async def _persist(self, tokens: OAuthTokens) -> None:
        try:
            await self._on_rotate(tokens)
        except BaseException as exc:
            exc.add_note(
                f"QuickBooks issued new tokens for company {self.realm_id} but saving them failed; "
                "they are kept in memory and saving is retried before the next QuickBooks call"
            )
            raise
        self._tokens = tokens
        self._unpersisted = None

    def _refresh_failure(self, response: httpx.Response, tid: str | None) -> QBOError:
        status = response.status_code
        error, description = _oauth_error(response)
        common: dict[str, Any] = {"status": status, "code": error or None, "intuit_tid": tid}
        reason = f"{error}: {description}" if description else (error or f"HTTP {status}")
        if error == "invalid_grant":
            return QBOTokenError(f"QuickBooks refused the refresh token ({reason})", **common)
        if error == "invalid_client":
            return QBOTokenError(
                f"QuickBooks refused Oodaloo's app credentials ({reason})",
                advice="check QBO_CLIENT_ID and QBO_CLIENT_SECRET against the Intuit developer portal",
                **common,
            )
        if status == 429:
            return QBOThrottledError(
                f"QuickBooks throttled the token refresh ({reason})",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                **common,
            )
        if status >= 500:
            return QBOServerError(
                f"QuickBooks' token endpoint failed ({reason})",
                outcome=Outcome.NOT_APPLIED,
                advice="no QuickBooks data was touched; retry the refresh shortly",
                **common,
            )
        return QBOTokenError(f"QuickBooks' token endpoint refused the refresh ({reason})", **common)


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    """``error`` and ``error_description`` from an OAuth error body, when it is JSON."""
    try:
        body = loads(response.text)
    except (ValueError, simplejson.JSONDecodeError):
        return "", " ".join(response.text.split())[:120]
    if not isinstance(body, Mapping):
        return "", ""
    return str(body.get("error") or ""), str(body.get("error_description") or "")
