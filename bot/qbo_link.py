"""Connecting a business to its QuickBooks company: OAuth 2.0 with an authorization code.

1. In Slack, `/runway connect` shows `linker.start_url(business_id, user_id)`: a link to
   `{public_url}/qbo/connect?state=...` on Oodaloo itself (short, and safe to unfurl: opening it
   changes nothing).
2. `GET /qbo/connect` redirects the browser to Intuit's consent screen with that state.
3. Intuit sends the owner back to `GET /qbo/callback?code=...&state=...&realmId=...`; Oodaloo
   exchanges the code for tokens, asks QuickBooks whether those tokens open company `realmId` (the
   query string is not trusted: anyone can edit it), stores them encrypted
   (`BusinessDirectory.connect`), shows a "connected" page and starts `on_connected` (the first
   sync, a message in the channel).

Only an approver of the business may make a link, and the link's asker must still be one when it
is completed (`BusinessDirectory.require_approver`, the domain's rule).

The state names the business and the Slack user who asked, signed with an HMAC whose key comes
from the app's client secret, so nobody can edit a link to connect their company to another
business. Its random part lives in slack_sdk's OAuth state table (`qbo_oauth_states`), which makes
a link single use: the callback consumes it, and a replayed callback is refused. A link also
expires `state_ttl` after it was made (by the linker's clock).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import simplejson
from slack_sdk.oauth.sqlalchemy_utils import normalize_datetime_for_db
from slack_sdk.oauth.state_store.sqlalchemy import AsyncSQLAlchemyOAuthStateStore
from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from runway.businesses import (
    BusinessDirectory,
    BusinessNotFound,
    NotAnApprover,
    QBOAppCredentials,
)
from runway.mirror import company_country
from runway.models import Business
from sync import PRODUCTION_TOKEN_URL, UTC_CLOCK, OAuthTokens, WallClock, loads_decimal

logger = logging.getLogger(__name__)

CONNECT_PATH = "/qbo/connect"
CALLBACK_PATH = "/qbo/callback"
STATE_TABLE = "qbo_oauth_states"
#: Intuit's OpenID discovery documents (production companies, and Intuit's developer sandbox).
PRODUCTION_DISCOVERY_URL = "https://developer.api.intuit.com/.well-known/openid_configuration"
SANDBOX_DISCOVERY_URL = "https://developer.api.intuit.com/.well-known/openid_sandbox_configuration"
ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
PRODUCTION_API_URL = "https://quickbooks.api.intuit.com"

_RECONNECT_ADVICE = "Run /runway connect in Slack to get a new link."


@dataclass(frozen=True)
class QBOAppConfig:
    """Oodaloo's Intuit app: its OAuth client, where Intuit sends owners back, and Intuit's endpoints."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str  # e.g. https://oodaloo.example.com/qbo/callback, registered with Intuit
    public_url: str  # e.g. https://oodaloo.example.com; the /qbo/connect link is built on it
    authorize_url: str = "https://appcenter.intuit.com/connect/oauth2"
    token_url: str = PRODUCTION_TOKEN_URL
    scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)
    #: The Accounting API, asked which company new tokens open before they are stored.
    api_base_url: str = PRODUCTION_API_URL

    def __post_init__(self) -> None:
        if not self.client_id or not self.client_secret:
            raise ValueError(
                "QuickBooks connect needs the Intuit app's client id and secret; copy them from "
                "developer.intuit.com (Keys & credentials) into QBO_CLIENT_ID and QBO_CLIENT_SECRET"
            )
        for name in ("redirect_uri", "public_url", "authorize_url", "token_url", "api_base_url"):
            value: str = getattr(self, name)
            if not value.startswith(("https://", "http://")):
                raise ValueError(f"QBOAppConfig.{name} must be an http(s) URL, got {value!r}")
        if not self.scopes:
            raise ValueError(f"QBOAppConfig.scopes is empty; QuickBooks needs {ACCOUNTING_SCOPE!r}")
        object.__setattr__(self, "public_url", self.public_url.rstrip("/"))
        object.__setattr__(self, "api_base_url", self.api_base_url.rstrip("/"))

    @classmethod
    async def discover(
        cls, discovery_url: str, *, http: httpx.AsyncClient | None = None, **fields: Any
    ) -> QBOAppConfig:
        """The config with `authorize_url` and `token_url` read from an OpenID discovery document.

        `fields` are the other fields (client_id, client_secret, redirect_uri, public_url, scopes).
        """
        client = http or httpx.AsyncClient(timeout=httpx.Timeout(10.0))
        try:
            response = await client.get(discovery_url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise DiscoveryError(
                f"could not read Intuit's OpenID discovery document at {discovery_url} "
                f"({type(exc).__name__}: {exc}); check the URL and the network, or set the "
                "authorize and token URLs yourself"
            ) from exc
        finally:
            if http is None:
                await client.aclose()
        try:
            document = loads_decimal(response.text) if response.status_code == 200 else None
        except (ValueError, simplejson.JSONDecodeError):
            document = None
        endpoints = (
            (document.get("authorization_endpoint"), document.get("token_endpoint"))
            if isinstance(document, dict)
            else (None, None)
        )
        if not all(isinstance(url, str) and url for url in endpoints):
            raise DiscoveryError(
                f"{discovery_url} answered HTTP {response.status_code} without "
                "authorization_endpoint and token_endpoint; is it an OpenID discovery document?"
            )
        authorize_url, token_url = endpoints
        return cls(authorize_url=str(authorize_url), token_url=str(token_url), **fields)

    def credentials(self) -> QBOAppCredentials:
        """What `BusinessDirectory.token_source` needs to refresh the tokens this app obtains."""
        return QBOAppCredentials(self.client_id, self.client_secret, self.token_url)


class DiscoveryError(RuntimeError):
    """Intuit's OpenID discovery document could not be read."""


class ConnectError(Exception):
    """The connection could not be made; the message says why and what the owner can do."""

    status_code = 400


class InvalidConnectLink(ConnectError):
    """The link's state is unknown, altered, expired or already used."""


class CompanyTaken(ConnectError):
    """The QuickBooks company already belongs to another Oodaloo business."""


class WrongCompany(ConnectError):
    """The business is linked to one QuickBooks company and the owner chose another."""


class NotYourCompany(ConnectError):
    """The new tokens do not open the company the callback named."""


class NotAllowed(ConnectError):
    """The person the link was made for is not (or no longer) an approver of the business."""

    status_code = 403


class QuickBooksRefused(ConnectError):
    """Intuit could not be reached, or answered with something other than tokens (502: not the
    owner's doing)."""

    status_code = 502


class CodeRefused(ConnectError):
    """Intuit refused the authorization code the page came back with (invalid, expired or used):
    a request that cannot succeed, so 400."""


@dataclass(frozen=True)
class ConnectRequest:
    """What a state vouches for: which business, asked for by whom, when."""

    business_id: str
    requested_by: str
    issued_at: int  # seconds since the epoch
    nonce: str


class _StateSigner:
    """`base64url(JSON).base64url(HMAC-SHA256)`: the business and the asker can't be swapped."""

    def __init__(self, client_secret: str) -> None:
        # A key of its own, so the signature can never stand in for anything else of the secret's.
        self._key = hmac.new(
            client_secret.encode(), b"oodaloo qbo connect state", "sha256"
        ).digest()

    def sign(self, request: ConnectRequest) -> str:
        payload = simplejson.dumps(
            {
                "b": request.business_id,
                "u": request.requested_by,
                "t": request.issued_at,
                "n": request.nonce,
            },
            separators=(",", ":"),
        )
        body = _b64(payload.encode())
        return f"{body}.{_b64(self._mac(body))}"

    def verify(self, state: str) -> ConnectRequest:
        body, dot, mac = state.partition(".")
        if not dot or not hmac.compare_digest(mac.encode(), _b64(self._mac(body)).encode()):
            raise InvalidConnectLink(
                f"This QuickBooks connect link is not valid (it was changed or cut short). "
                f"{_RECONNECT_ADVICE}"
            )
        fields = simplejson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        return ConnectRequest(
            str(fields["b"]), str(fields["u"]), int(fields["t"]), str(fields["n"])
        )

    def _mac(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _ConnectStates(AsyncSQLAlchemyOAuthStateStore):
    """slack_sdk's state table, with a look that keeps the state and a consume that is atomic.

    slack_sdk's own consume reads, then deletes, and says yes to both of two callbacks racing on one
    state; here the DELETE itself decides: exactly one caller removes the row. Database errors
    propagate instead of reading as "no such state".
    """

    async def is_live(self, state: str) -> bool:
        columns = self.oauth_states.c
        now = normalize_datetime_for_db(self._real_now())
        async with self.engine.connect() as connection:
            found = await connection.execute(
                select(columns.id).where(and_(columns.state == state, columns.expire_at > now))
            )
            return found.first() is not None

    async def async_consume(self, state: str) -> bool:
        columns = self.oauth_states.c
        now = normalize_datetime_for_db(self._real_now())
        async with self.engine.begin() as connection:
            removed = await connection.execute(
                delete(self.oauth_states).where(
                    and_(columns.state == state, columns.expire_at > now)
                )
            )
            return removed.rowcount == 1

    @staticmethod
    def _real_now() -> datetime:
        # The table's expire_at is written from the real clock by slack_sdk's issue().
        return UTC_CLOCK.now()


class QBOLinker:
    """Makes connect links for a business and completes the connection when Intuit sends the owner back."""

    def __init__(
        self,
        config: QBOAppConfig,
        directory: BusinessDirectory,
        engine: AsyncEngine,
        *,
        http: httpx.AsyncClient | None = None,
        clock: WallClock = UTC_CLOCK,
        state_ttl: timedelta = timedelta(minutes=10),
    ) -> None:
        if state_ttl <= timedelta(0):
            raise ValueError(f"state_ttl must be positive, got {state_ttl}")
        self.config = config
        self.directory = directory
        self._clock = clock
        self._state_ttl = state_ttl
        self._states = _ConnectStates(
            expiration_seconds=math.ceil(state_ttl.total_seconds()),
            engine=engine,
            table_name=STATE_TABLE,
        )
        self._signer = _StateSigner(config.client_secret)
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def start_url(self, business_id: str, requested_by: str) -> str:
        """A single-use link, valid for `state_ttl`, that connects this business to QuickBooks.

        BusinessNotFound if there is no such business, NotAnApprover unless `requested_by` is one
        of its approvers.
        """
        await self.directory.require_approver(business_id, requested_by)
        nonce = await self._states.async_issue()
        request = ConnectRequest(
            business_id, requested_by, int(self._clock.now().timestamp()), nonce
        )
        state = self._signer.sign(request)
        return f"{self.config.public_url}{CONNECT_PATH}?{urlencode({'state': state})}"

    async def authorize_redirect(self, state: str) -> str:
        """Intuit's consent URL for a valid, unused, unexpired state (which stays unused)."""
        request = self._verified(state)
        if not await self._states.is_live(request.nonce):
            raise self._used_or_expired()
        query = {
            "client_id": self.config.client_id,
            "response_type": "code",
            "scope": " ".join(self.config.scopes),
            "redirect_uri": self.config.redirect_uri,
            "state": state,
        }
        separator = "&" if "?" in self.config.authorize_url else "?"
        return f"{self.config.authorize_url}{separator}{urlencode(query)}"

    async def complete(self, *, code: str, state: str, realm_id: str) -> Business:
        """Consumes the state, exchanges the code and connects the business; ConnectError if not."""
        request = self._verified(state)
        if not await self._states.async_consume(request.nonce):
            raise self._used_or_expired()
        try:
            business = await self.directory.get(request.business_id)
        except BusinessNotFound as exc:
            raise InvalidConnectLink(
                "The business this link was made for no longer exists in Oodaloo. "
                f"{_RECONNECT_ADVICE}"
            ) from exc
        await self._check_company(business, realm_id)
        try:
            await self.directory.require_approver(business.id, request.requested_by)
        except NotAnApprover as exc:
            raise self._not_allowed(business) from exc
        tokens = await self._exchange(code)
        company = await self._check_tokens_open(realm_id, tokens)
        try:
            await self.directory.connect(
                business.id,
                realm_id,
                tokens,
                by=request.requested_by,
                country=company_country(company),
            )
        except NotAnApprover as exc:  # removed from the approvers meanwhile
            raise self._not_allowed(business) from exc
        except ValueError as exc:  # another business took the company meanwhile
            raise self._company_taken(realm_id) from exc
        logger.info(
            "business %s connected to QuickBooks company %s (asked for by %s)",
            business.id,
            realm_id,
            request.requested_by,
        )
        return await self.directory.get(business.id)

    # -- the parts ---------------------------------------------------------------------------------

    def _verified(self, state: str) -> ConnectRequest:
        try:
            request = self._signer.verify(state)
        except (ValueError, KeyError, TypeError) as exc:  # signed by us, yet unreadable
            raise InvalidConnectLink(
                f"This QuickBooks connect link is not valid. {_RECONNECT_ADVICE}"
            ) from exc
        age = self._clock.now().timestamp() - request.issued_at
        if age > self._state_ttl.total_seconds():
            raise InvalidConnectLink(
                f"This QuickBooks connect link has expired (links last "
                f"{_duration(self._state_ttl)}). {_RECONNECT_ADVICE}"
            )
        return request

    def _used_or_expired(self) -> InvalidConnectLink:
        return InvalidConnectLink(
            f"This QuickBooks connect link has already been used (or has expired). {_RECONNECT_ADVICE}"
        )

    def _not_allowed(self, business: Business) -> NotAllowed:
        return NotAllowed(
            f"Only approvers of {business.name} can connect it to QuickBooks, and the person this "
            "link was made for is not one, so nothing was changed. Ask one of its approvers to "
            "run /runway connect."
        )

    async def _check_tokens_open(self, realm_id: str, tokens: OAuthTokens) -> dict[str, Any]:
        """Refuses (storing nothing) unless the new access token opens company `realm_id`; its
        CompanyInfo otherwise (its country gives a new business its locale).

        `realmId` arrives in the callback's query string, which anyone can edit; the tokens are
        what QuickBooks actually granted. An access token is scoped to the company chosen on
        Intuit's consent screen: a request for another company is refused with 403 (fault
        "ApplicationAuthorizationFailed", errorCode 003100) or 401 (Intuit's "Error codes" page,
        https://developer.intuit.com/app/developer/qbo/docs/develop/troubleshooting/error-codes).
        So reading that company's CompanyInfo with the token binds the realm to the tokens.
        """
        base = self.config.api_base_url
        url = f"{base}/v3/company/{realm_id}/companyinfo/{realm_id}"
        try:
            response = await self._http.get(
                url,
                headers={
                    "Authorization": f"Bearer {tokens.access_token}",
                    "Accept": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise QuickBooksRefused(
                f"Oodaloo could not reach QuickBooks to check the company that was chosen "
                f"({type(exc).__name__}), so nothing was connected. {_RECONNECT_ADVICE}"
            ) from exc
        if response.status_code in (401, 403, 404):
            logger.warning(
                "the tokens from a QuickBooks sign-in do not open company %s (HTTP %s)",
                realm_id,
                response.status_code,
            )
            raise NotYourCompany(
                f"QuickBooks' sign-in does not give access to company {realm_id}, the company "
                "this page was sent back with, so nothing was connected. Run /runway connect "
                "in Slack again and choose your company when QuickBooks asks."
            )
        if response.status_code != 200:
            raise QuickBooksRefused(
                f"QuickBooks could not confirm the company that was chosen (HTTP "
                f"{response.status_code}), so nothing was connected. {_RECONNECT_ADVICE}"
            )
        try:
            info = loads_decimal(response.text).get("CompanyInfo")
        except (ValueError, AttributeError):
            info = None
        # The company is confirmed either way; an unreadable body only costs it its locale.
        return info if isinstance(info, dict) else {}

    def _company_taken(self, realm_id: str) -> CompanyTaken:
        return CompanyTaken(
            f"QuickBooks company {realm_id} is already connected to another Oodaloo business, "
            "so it was not connected here. Choose your own company when QuickBooks asks, or ask "
            "whoever connected it to disconnect it first, then run /runway connect again."
        )

    async def _check_company(self, business: Business, realm_id: str) -> None:
        if not realm_id:
            raise ConnectError(
                f"QuickBooks did not say which company was chosen. {_RECONNECT_ADVICE}"
            )
        if business.realm_id is not None and business.realm_id != realm_id:
            # Its mirror holds that other company's books; mixing two companies would be wrong.
            raise WrongCompany(
                f"{business.name} is linked to QuickBooks company {business.realm_id}, but company "
                f"{realm_id} was chosen. Run /runway connect again and choose company "
                f"{business.realm_id} when QuickBooks asks."
            )
        try:
            owner = await self.directory.by_realm(realm_id)
        except BusinessNotFound:
            return
        if owner.id != business.id:
            raise self._company_taken(realm_id)

    async def _exchange(self, code: str) -> OAuthTokens:
        now = self._clock.now()
        try:
            response = await self._http.post(
                self.config.token_url,
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.config.redirect_uri,
                },
                auth=httpx.BasicAuth(self.config.client_id, self.config.client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise QuickBooksRefused(
                f"Oodaloo could not reach QuickBooks to finish connecting "
                f"({type(exc).__name__}). {_RECONNECT_ADVICE}"
            ) from exc
        try:
            body = loads_decimal(response.text)
        except (ValueError, simplejson.JSONDecodeError):
            body = None
        if response.status_code != 200 or not isinstance(body, dict):
            reason = _oauth_reason(body, response.status_code)
            logger.warning("QuickBooks refused the authorization code: %s", reason)
            refused = CodeRefused if 400 <= response.status_code < 500 else QuickBooksRefused
            raise refused(
                f"QuickBooks did not accept the sign-in ({reason}). {_RECONNECT_ADVICE}"
            )
        try:
            return OAuthTokens.from_token_response(body, now=now)
        except ValueError as exc:
            raise QuickBooksRefused(
                f"QuickBooks answered without usable tokens ({exc}). {_RECONNECT_ADVICE}"
            ) from exc


def _oauth_reason(body: Any, status: int) -> str:
    if isinstance(body, dict) and body.get("error"):
        description = body.get("error_description")
        return f"{body['error']}: {description}" if description else str(body["error"])
    return f"HTTP {status}"


def _duration(ttl: timedelta) -> str:
    minutes = ttl.total_seconds() / 60
    if minutes >= 1 and minutes == int(minutes):
        return f"{int(minutes)} minute{'s' if minutes != 1 else ''}"
    return f"{int(ttl.total_seconds())} seconds"


# -- the browser's side --------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · Oodaloo</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
line-height:1.5;color:#1d2a24}}h1{{font-size:1.4rem;color:{colour}}}</style></head>
<body><h1>{title}</h1><p>{message}</p></body>
</html>
"""


def _page(title: str, message: str, status_code: int, *, ok: bool = False) -> HTMLResponse:
    text = _PAGE.format(
        title=html.escape(title),
        message=html.escape(message),
        colour="#1f4e3d" if ok else "#8a1c1c",
    )
    # The callback URL carries a code and state: keep it out of caches and other sites' Referer.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(text, status_code=status_code, headers=headers)


def _refused(exc: ConnectError) -> HTMLResponse:
    return _page("QuickBooks is not connected", str(exc), exc.status_code)


def qbo_link_routes(
    linker: QBOLinker, *, on_connected: Callable[[Business], Awaitable[None]]
) -> list[Route]:
    """`GET /qbo/connect` (off to Intuit) and `GET /qbo/callback` (back from Intuit).

    `on_connected(business)` runs in the background after a business is connected, so the page
    answers at once; if it fails, the failure is logged.
    """
    running: set[asyncio.Task[None]] = set()

    def after_connecting(business: Business) -> None:
        async def logged() -> None:
            try:
                await on_connected(business)
            except Exception:
                logger.exception("after connecting business %s to QuickBooks", business.id)

        task = asyncio.get_running_loop().create_task(logged(), name=f"qbo-connected-{business.id}")
        running.add(task)  # held until done, so the loop cannot drop it half way
        task.add_done_callback(running.discard)

    async def connect(request: Request) -> Response:
        try:
            target = await linker.authorize_redirect(request.query_params.get("state", ""))
        except ConnectError as exc:
            return _refused(exc)
        return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})

    async def callback(request: Request) -> Response:
        params = request.query_params
        error = params.get("error")
        if error:
            if error == "access_denied":
                message = (
                    "You chose not to let Oodaloo read your QuickBooks company, so nothing was "
                    f"connected. {_RECONNECT_ADVICE}"
                )
            else:
                detail = params.get("error_description") or error
                message = f"QuickBooks did not connect ({detail}). {_RECONNECT_ADVICE}"
            return _page("QuickBooks is not connected", message, 400)
        code, state = params.get("code"), params.get("state")
        if not code or not state:
            return _page(
                "QuickBooks is not connected",
                f"This page was opened without QuickBooks' answer (code and state are missing). "
                f"{_RECONNECT_ADVICE}",
                400,
            )
        try:
            business = await linker.complete(
                code=code, state=state, realm_id=params.get("realmId", "")
            )
        except ConnectError as exc:
            return _refused(exc)
        except Exception:
            logger.exception("connecting to QuickBooks failed")
            return _page(
                "QuickBooks is not connected",
                "Something went wrong on Oodaloo's side while saving the connection. Try again "
                f"in a few minutes: {_RECONNECT_ADVICE}",
                500,
            )
        after_connecting(business)
        return _page(
            "Connected to QuickBooks",
            f"Connected {business.name} to QuickBooks — you can close this tab. Oodaloo is "
            "reading your books now and will post to your Slack channel shortly.",
            200,
            ok=True,
        )

    return [
        Route(CONNECT_PATH, connect, methods=["GET"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
    ]


__all__ = [
    "CALLBACK_PATH",
    "CONNECT_PATH",
    "PRODUCTION_DISCOVERY_URL",
    "SANDBOX_DISCOVERY_URL",
    "CodeRefused",
    "CompanyTaken",
    "ConnectError",
    "ConnectRequest",
    "DiscoveryError",
    "InvalidConnectLink",
    "NotAllowed",
    "NotYourCompany",
    "QBOAppConfig",
    "QBOLinker",
    "QuickBooksRefused",
    "WrongCompany",
    "qbo_link_routes",
]
