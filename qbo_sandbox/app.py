"""One QBO sandbox, assembled: a seeded company, OAuth, the admin API and the v3 API behind QBO's guards.

Request path of a v3 call, outermost first (each a pure-ASGI middleware):
    request counting per realm and route → bearer auth → rate limits → injected faults → data plane
so a throttled or faulted request is still counted, an unauthenticated one never uses up a company's
rate limit, and an injected fault happens where QBO's own would: after the gateway has let it in.
Every response, whoever answers it, carries an `intuit_tid` header as QBO's do.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qbo_sandbox.admin import admin_routes
from qbo_sandbox.api import build_v3_app
from qbo_sandbox.chaos import Chaos
from qbo_sandbox.config import ManualClock, SandboxConfig
from qbo_sandbox.limits import RateLimits, parse_v3_path, route_key
from qbo_sandbox.oauth import BearerAuth, TokenAuthority, TokenSet, oauth_routes
from qbo_sandbox.seed import realm_id_for, seed_default_company, seed_scaled_company
from qbo_sandbox.store import ENTITIES, Realm, Store, UnknownRealm
from qbo_sandbox.webhooks import WebhookDispatcher

# The base URL in-process clients use (httpx.ASGITransport needs some host; nothing resolves it).
ASGI_BASE_URL = "http://qbo-sandbox"
_FALLBACK_TZ = ZoneInfo("America/Los_Angeles")


def new_intuit_tid() -> str:
    # Shaped like the ids QBO returns: version, hex epoch seconds, random hex.
    return f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"


class IntuitTid:
    """Adds an `intuit_tid` header to every response that does not carry one yet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_tid(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"intuit_tid" for key, _ in headers):
                    headers.append((b"intuit_tid", new_intuit_tid().encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_tid)


class RequestCounter:
    """Counts v3 requests per realm and route (`bill/{id}`, `query`, ...) and their outcomes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.by_realm: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.by_status: dict[str, int] = defaultdict(int)

    def stats(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_status.values()),
            "by_realm": {realm: dict(routes) for realm, routes in self.by_realm.items()},
            "by_status": dict(self.by_status),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        self.by_realm[target.realm_id][route_key(target.subpath)] += 1
        status = "no_response"  # the connection was dropped before a status line

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.by_status[status] += 1


class Sandbox:
    """A running QBO stand-in: `.app` (ASGI), the store, the seeded company and its credentials.

    `create_app(config)` builds one. In-process clients use `http_client()` (httpx over ASGI); a
    real HTTP server around `.app` comes from `qbo_sandbox.server`.
    """

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.base_url = ASGI_BASE_URL
        self.store = Store(self.clock)
        self.client_id = config.client_id
        self.client_secret = config.client_secret
        self.verifier_token = config.verifier_token
        self.tokens = TokenAuthority(
            self.clock,
            client_id=config.client_id,
            client_secret=config.client_secret,
            access_lifetime=config.access_token_lifetime,
            refresh_lifetime=config.refresh_token_lifetime,
            code_lifetime=config.authorization_code_lifetime,
        )
        self.webhooks = WebhookDispatcher(
            self.store,
            verifier_token=config.verifier_token,
            clock=self.clock,
            batch_seconds=config.webhook_batch_seconds,
            retry_delays=config.webhook_retry_delays,
            timeout_seconds=config.webhook_timeout_seconds,
        )
        self._seeds: dict[str, tuple[int, int | None, bool, bool, str]] = {}

        self.chaos = Chaos(
            build_v3_app(self.store),
            config.faults,
            default_seed=config.seed,
            clock=self.clock,
            tz_for=self.tz_for,
        )
        self.limits = RateLimits(self.chaos, config.limits, self.clock, self.tz_for)
        self.auth = BearerAuth(self.limits, self.tokens, self.clock)
        self.requests = RequestCounter(self.auth)

        self.realm_id = realm_id_for(config.seed)
        self._seed_realm(
            self.realm_id,
            config.seed,
            config.scale,
            config.full_books,
            config.euro_supplier,
            config.country,
        )
        initial = self.tokens.issue(self.realm_id)
        self.access_token = initial.access_token
        self.refresh_token = initial.refresh_token

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await self.webhooks.aclose()

        self.app: Starlette = Starlette(
            routes=[
                *oauth_routes(
                    self.tokens,
                    default_realm_id=lambda: self.realm_id,
                    realm_exists=lambda realm_id: realm_id in self.store.realm_ids(),
                ),
                Mount("/_sandbox", routes=admin_routes(self)),
                # Everything else is QBO's v3 API, behind its gateway (paths stay whole: /v3/company/...).
                Mount("", app=self.requests),
            ],
            middleware=[Middleware(IntuitTid)],
            lifespan=lifespan,
        )

    # -- companies -------------------------------------------------------------------------

    def tz_for(self, realm_id: str) -> tzinfo:
        try:
            return self.store.realm(realm_id).tz
        except UnknownRealm:
            return _FALLBACK_TZ

    def realm(self, realm_id: str | None = None) -> Realm:
        """A company's store (the seeded one by default)."""
        return self.store.realm(realm_id or self.realm_id)

    def _seed_realm(
        self,
        realm_id: str,
        seed: int,
        scale: int | None,
        full_books: bool = False,
        euro_supplier: bool = False,
        country: str = "US",
    ) -> Realm:
        if scale is not None and country != "US":
            raise ValueError("a scaled company is a US one; a country is for the default company")
        realm = self.store.create_realm(realm_id)
        today = self.clock.now().astimezone(realm.tz).date()
        if scale is None:
            seed_default_company(
                realm, seed=seed, today=today, full=full_books, euro=euro_supplier, country=country
            )
        else:
            seed_scaled_company(realm, n=scale, seed=seed, today=today)
        self._seeds[realm_id] = (seed, scale, full_books, euro_supplier, country)
        return realm

    def add_realm(
        self,
        *,
        seed: int | None = None,
        scale: int | None = None,
        full_books: bool = False,
        euro_supplier: bool = False,
        country: str = "US",
    ) -> TokenSet:
        """Creates and seeds another company and connects the app to it; ValueError if it exists.

        Without a seed, the next seed after the sandbox's own whose company does not exist yet.
        """
        if seed is None:
            seed = self.config.seed + 1
            while realm_id_for(seed) in self.store.realm_ids():
                seed += 1
        realm_id = realm_id_for(seed)
        if realm_id in self.store.realm_ids():
            raise ValueError(f"a company with seed {seed} (realm {realm_id}) already exists: reset it instead")
        self._seed_realm(realm_id, seed, scale, full_books, euro_supplier, country)
        return self.tokens.issue(realm_id)

    def reset_realm(self, realm_id: str) -> dict[str, Any]:
        """Reseeds a company as it was created; its tokens stay valid, its remembered requestids go."""
        seed, scale, full_books, euro, country = self._seeds.get(
            realm_id, (self.config.seed, None, False, False, "US")
        )
        self.store.drop_realm(realm_id)
        realm = self._seed_realm(realm_id, seed, scale, full_books, euro, country)
        self.limits.reset_realm(realm_id)
        return {"realm_id": realm_id, "seed": seed, "scale": scale, "objects": _counts(realm)}

    def describe_realms(self) -> list[dict[str, Any]]:
        out = []
        for realm_id in self.store.realm_ids():
            seed, scale, *_ = self._seeds.get(realm_id, (None, None, False, False, "US"))
            out.append({"realm_id": realm_id, "seed": seed, "scale": scale, "objects": _counts(self.store.realm(realm_id))})
        return out

    # -- time, stats, clients ------------------------------------------------------------------

    def advance_clock(self, delta: timedelta) -> datetime:
        """Moves the sandbox clock forward (tokens expire, rate windows pass) without sleeping."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("this sandbox was given a clock that cannot be moved; use ManualClock")
        return self.clock.advance(delta)

    def stats(self) -> dict[str, Any]:
        limits = self.limits.stats()
        return {
            "now": self.clock.now().isoformat(),
            "requests": self.requests.stats(),
            "auth_rejected": {str(k): v for k, v in self.auth.rejected.items()},
            "throttled": limits["throttled"],
            "throttled_total": limits["throttled_total"],
            "in_flight": limits["in_flight"],
            "limits": limits["limits"],
            "faults": self.chaos.stats(),
            "token_refreshes": self.tokens.refreshes,
            "webhooks": self.webhooks.stats(),
        }

    def reset_stats(self) -> None:
        """Zeroes every counter (requests, throttles, faults, webhooks, refreshes), e.g. between benchmark phases."""
        self.requests.by_realm.clear()
        self.requests.by_status.clear()
        self.limits.rejections.clear()
        self.chaos.injected.clear()
        self.chaos.injected_by_kind.clear()
        self.auth.rejected.update({401: 0, 403: 0})
        self.webhooks.counts.clear()
        self.webhooks.recent.clear()
        self.tokens.refreshes = 0

    def v3_path(self, path: str, realm_id: str | None = None) -> str:
        """`/v3/company/{realm}/{path}` for the seeded company (or `realm_id`)."""
        return f"/v3/company/{realm_id or self.realm_id}/{path.lstrip('/')}"

    def http_client(self, *, access_token: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client talking to this sandbox in-process, with the bearer token set.

        `access_token=""` sends no Authorization header.
        """
        token = self.access_token if access_token is None else access_token
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        headers.update(kwargs.pop("headers", {}))
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=self.base_url, headers=headers, **kwargs
        )

    async def aclose(self) -> None:
        """Stops background webhook deliveries (a served app does this on shutdown by itself)."""
        await self.webhooks.aclose()


def _counts(realm: Realm) -> dict[str, int]:
    return {entity: realm.count(entity) for entity in ENTITIES if realm.count(entity)}


def create_app(config: SandboxConfig | None = None) -> Sandbox:
    """Builds a sandbox: seeds the company of `config.seed` (or a scaled one) and issues its tokens."""
    return Sandbox(config or SandboxConfig())
