"""OAuth 2.0 the way QuickBooks Online speaks it: discovery, consent, tokens, revocation, bearer checks.

Endpoints (paths as on Intuit's servers, all on this one host):
- `GET /.well-known/openid_configuration` - the discovery document intuit-oauth reads to find the rest;
- `GET /connect/oauth2` - the consent screen; it approves at once for the seeded company and
  redirects to `redirect_uri` with `code`, `state` and `realmId`;
- `POST /oauth2/v1/tokens/bearer` - grants `authorization_code` and `refresh_token` (HTTP Basic client auth);
- `POST /oauth2/v1/tokens/revoke` - disconnects: revokes every token of that connection.

Refresh tokens rotate on every refresh (QBO rotates about once a day; rotating always exercises the
client's "store the newest token" path on every refresh). The previous refresh token stays valid until
its successor is first used, and presenting it again meanwhile returns that same successor. So a client
whose refresh response was lost can simply retry, and one that persisted the new token before using it
can never be locked out; once the successor has been used, the old token is `invalid_grant`, as QBO
documents ("Refresh Token A expires ... will throw an 'invalid_grant' error").
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import simplejson
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from qbo_sandbox.limits import parse_v3_path
from qbo_sandbox.store import Clock

TOKEN_PATH = "/oauth2/v1/tokens/bearer"
REVOKE_PATH = "/oauth2/v1/tokens/revoke"
AUTHORIZE_PATH = "/connect/oauth2"
DISCOVERY_PATH = "/.well-known/openid_configuration"
USERINFO_PATH = "/v1/openid_connect/userinfo"
JWKS_PATH = "/op/v1/jwks"


class InvalidGrant(Exception):
    """The code or refresh token is unknown, used up, expired or revoked: the user must reconnect."""


class AuthFailure(Exception):
    """A v3 request's bearer token does not open this company."""

    def __init__(self, status: int, detail: str | None) -> None:
        super().__init__(detail or "not authorised for this company")
        self.status = status
        self.detail = detail

    def body(self, now: datetime) -> dict[str, Any]:
        """QBO's lower-case fault envelope (as captured from the real API), `time` in epoch millis."""
        if self.status == 403:
            error = {
                "message": "message=AuthorizationFailed; errorCode=003100; statusCode=403",
                "detail": self.detail,
                "code": "3100",
                "element": None,
            }
            fault_type = "SERVICE"
        else:
            error = {
                "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                "detail": self.detail,
                "code": "3200",
                "element": None,
            }
            fault_type = "AUTHENTICATION"
        return {
            "warnings": None,
            "intuitObject": None,
            "fault": {"error": [error], "type": fault_type},
            "report": None,
            "queryResponse": None,
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": int(now.timestamp() * 1000),
            "status": None,
            "cdcresponse": [],
        }


@dataclass(frozen=True)
class TokenSet:
    """What the token endpoint hands a client for one company."""

    realm_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def response_body(self) -> dict[str, Any]:
        return {
            "token_type": "bearer",
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "x_refresh_token_expires_in": self.refresh_expires_in,
        }


@dataclass
class _AccessToken:
    realm_id: str
    grant: int
    expires_at: datetime


@dataclass
class _RefreshToken:
    realm_id: str
    grant: int
    expires_at: datetime
    predecessor: str | None
    successor: str | None = None
    superseded: bool = False


@dataclass
class _Code:
    realm_id: str
    redirect_uri: str
    expires_at: datetime
    used: bool = False


class TokenAuthority:
    """Issues, rotates, checks and revokes tokens. Thread-safe: tests read it while a server runs."""

    def __init__(
        self,
        clock: Clock,
        *,
        client_id: str,
        client_secret: str,
        access_lifetime: timedelta,
        refresh_lifetime: timedelta,
        code_lifetime: timedelta,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._access_lifetime = access_lifetime
        self._refresh_lifetime = refresh_lifetime
        self._code_lifetime = code_lifetime
        self._access: dict[str, _AccessToken] = {}
        self._refresh: dict[str, _RefreshToken] = {}
        self._codes: dict[str, _Code] = {}
        self._revoked_grants: set[int] = set()
        self._next_grant = 1
        self._lock = threading.Lock()
        self.refreshes = 0

    # -- the app's credentials -------------------------------------------------------------------

    def client_is(self, client_id: str, client_secret: str) -> bool:
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(
            client_secret, self._client_secret
        )

    # -- issuing -------------------------------------------------------------------------------

    def issue(self, realm_id: str) -> TokenSet:
        """Connects the app to a company (as if the user had just consented) and returns its tokens."""
        with self._lock:
            grant = self._next_grant
            self._next_grant += 1
            refresh = self._mint_refresh(realm_id, grant, predecessor=None)
            return self._token_set(realm_id, grant, refresh)

    def authorization_code(self, realm_id: str, redirect_uri: str) -> str:
        code = "AB11" + secrets.token_urlsafe(30)
        with self._lock:
            self._codes[code] = _Code(realm_id, redirect_uri, self._clock.now() + self._code_lifetime)
        return code

    def exchange_code(self, code: str, redirect_uri: str) -> TokenSet:
        with self._lock:
            entry = self._codes.get(code)
            if entry is None or entry.used or self._clock.now() >= entry.expires_at:
                raise InvalidGrant("Invalid authorization code: unknown, already used or expired")
            if entry.redirect_uri != redirect_uri:
                raise InvalidGrant("Invalid authorization code: redirect_uri does not match the authorization request")
            entry.used = True
        return self.issue(entry.realm_id)

    def refresh(self, refresh_token: str) -> TokenSet:
        """Rotates: returns a new access token and the successor refresh token (see module doc)."""
        with self._lock:
            entry = self._refresh.get(refresh_token)
            if entry is None or entry.superseded or entry.grant in self._revoked_grants:
                raise InvalidGrant("Incorrect or invalid refresh token")
            if self._clock.now() >= entry.expires_at:
                raise InvalidGrant("Incorrect or invalid refresh token: it has expired (100 days)")
            if entry.predecessor is not None:
                # The successor is in use now: the client has evidently stored it.
                self._refresh[entry.predecessor].superseded = True
            if entry.successor is None:
                entry.successor = self._mint_refresh(entry.realm_id, entry.grant, predecessor=refresh_token)
            self.refreshes += 1
            return self._token_set(entry.realm_id, entry.grant, entry.successor)

    def revoke(self, token: str) -> bool:
        """Revokes the whole connection the token (access or refresh) belongs to; False if unknown."""
        with self._lock:
            entry: _AccessToken | _RefreshToken | None = self._access.get(token) or self._refresh.get(token)
            if entry is None:
                return False
            self._revoked_grants.add(entry.grant)
            return True

    def disconnect_realm(self, realm_id: str) -> None:
        """Revokes every connection to a company (as when the company is deleted)."""
        with self._lock:
            entries: list[_AccessToken | _RefreshToken] = [*self._access.values(), *self._refresh.values()]
            for entry in entries:
                if entry.realm_id == realm_id:
                    self._revoked_grants.add(entry.grant)

    # -- checking --------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None, realm_id: str) -> None:
        """Raises AuthFailure (401, or 403 for another company) unless the header opens `realm_id`."""
        if not authorization:
            raise AuthFailure(401, "Authorization header missing: send 'Authorization: Bearer <access token>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure(401, "Malformed bearer token: too short or too long")
        with self._lock:
            entry = self._access.get(token)
            revoked = entry is not None and entry.grant in self._revoked_grants
        if entry is None:
            raise AuthFailure(401, "Token invalid: this access token was not issued by this server")
        if revoked:
            raise AuthFailure(401, "Token revoked: the connection was disconnected; reconnect the company")
        if self._clock.now() >= entry.expires_at:
            raise AuthFailure(401, "Token expired: access tokens last one hour; refresh it with the refresh token")
        if entry.realm_id != realm_id:
            # As QuickBooks does: an access token is scoped to the company (realm) chosen on the
            # consent screen, and a request for any other company is refused with 403,
            # errorCode 003100 (Intuit's error codes: https://developer.intuit.com/app/developer/
            # qbo/docs/develop/troubleshooting/error-codes). Oodaloo's /qbo/callback relies on this
            # to check that new tokens open the company its query string names.
            raise AuthFailure(403, None)

    def realm_of(self, access_token: str) -> str | None:
        with self._lock:
            entry = self._access.get(access_token)
        return entry.realm_id if entry is not None else None

    # -- internals (called with the lock held) -----------------------------------------------

    def _mint_refresh(self, realm_id: str, grant: int, *, predecessor: str | None) -> str:
        token = "AB11" + secrets.token_urlsafe(36)
        self._refresh[token] = _RefreshToken(
            realm_id, grant, self._clock.now() + self._refresh_lifetime, predecessor
        )
        return token

    def _token_set(self, realm_id: str, grant: int, refresh_token: str) -> TokenSet:
        now = self._clock.now()
        access = secrets.token_urlsafe(64)
        self._access[access] = _AccessToken(realm_id, grant, now + self._access_lifetime)
        refresh_left = self._refresh[refresh_token].expires_at - now
        return TokenSet(
            realm_id=realm_id,
            access_token=access,
            refresh_token=refresh_token,
            expires_in=int(self._access_lifetime.total_seconds()),
            refresh_expires_in=max(0, round(refresh_left.total_seconds())),
        )


# ---------------------------------------------------------------------------------------------
# Bearer authentication of /v3 requests


class BearerAuth:
    """ASGI middleware: `/v3/company/{realm}/...` requests need an access token for that realm."""

    def __init__(self, app: ASGIApp, authority: TokenAuthority, clock: Clock) -> None:
        self.app = app
        self._authority = authority
        self._clock = clock
        self.rejected: dict[int, int] = {401: 0, 403: 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = parse_v3_path(scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        authorization = next(
            (value.decode("latin-1") for key, value in scope["headers"] if key == b"authorization"), None
        )
        try:
            self._authority.authenticate(authorization, target.realm_id)
        except AuthFailure as failure:
            self.rejected[failure.status] += 1
            headers = {}
            if failure.status == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
            response = Response(
                simplejson.dumps(failure.body(self._clock.now())),
                status_code=failure.status,
                media_type="application/json",
                headers=headers,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# HTTP endpoints


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str] | None:
    """HTTP Basic (what Intuit's libraries send) or client_id/client_secret in the form body."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        client_id, sep, secret = decoded.partition(":")
        return (client_id, secret) if sep else None
    if "client_id" in form and "client_secret" in form:
        return form["client_id"], form["client_secret"]
    return None


async def _form(request: Request) -> dict[str, str]:
    return dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))


def oauth_routes(
    authority: TokenAuthority,
    *,
    default_realm_id: Callable[[], str],
    realm_exists: Callable[[str], bool],
) -> list[Route]:
    """The OAuth and OpenID endpoints, bound to one authority."""

    async def discovery(request: Request) -> JSONResponse:
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "issuer": f"{base}/op/v1",
                "authorization_endpoint": f"{base}{AUTHORIZE_PATH}",
                "token_endpoint": f"{base}{TOKEN_PATH}",
                "userinfo_endpoint": f"{base}{USERINFO_PATH}",
                "revocation_endpoint": f"{base}{REVOKE_PATH}",
                "jwks_uri": f"{base}{JWKS_PATH}",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "address", "phone"],
                "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
            }
        )

    async def authorize(request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != authority.client_id:
            # Like Intuit: no redirect to an unverified redirect_uri for an unknown app.
            return PlainTextResponse(
                "invalid_client: client_id is not this sandbox app's client id", status_code=400
            )
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return PlainTextResponse("invalid_request: redirect_uri is required", status_code=400)
        state = params.get("state")
        outcome: dict[str, str]
        # Not part of QBO: a test can pick which sandbox company the "user" connects.
        realm_id = params.get("realmId") or default_realm_id()
        if params.get("response_type") != "code":
            outcome = {"error": "unsupported_response_type"}
        elif not params.get("scope"):
            outcome = {"error": "invalid_scope"}
        elif not realm_exists(realm_id):
            outcome = {"error": "access_denied", "error_description": f"no sandbox company {realm_id}"}
        else:
            outcome = {"code": authority.authorization_code(realm_id, redirect_uri), "realmId": realm_id}
        if state is not None:
            outcome["state"] = state
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(outcome)}", status_code=302)

    async def token(request: Request) -> JSONResponse:
        form = await _form(request)
        credentials = _client_credentials(request, form)
        if credentials is None or not authority.client_is(*credentials):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant_type = form.get("grant_type")
        try:
            if grant_type == "authorization_code":
                if not form.get("code") or not form.get("redirect_uri"):
                    return _oauth_error(400, "invalid_request", "code and redirect_uri are required")
                tokens = authority.exchange_code(form["code"], form["redirect_uri"])
            elif grant_type == "refresh_token":
                if not form.get("refresh_token"):
                    return _oauth_error(400, "invalid_request", "refresh_token is required")
                tokens = authority.refresh(form["refresh_token"])
            else:
                return _oauth_error(
                    400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"
                )
        except InvalidGrant as exc:
            return _oauth_error(400, "invalid_grant", str(exc))
        return JSONResponse(
            tokens.response_body(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
        )

    async def revoke(request: Request) -> Response:
        raw = await request.body()
        form = await _form(request)
        credentials = _client_credentials(request, form)
        if credentials is None or not authority.client_is(*credentials):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token_value = form.get("token")
        if request.headers.get("content-type", "").startswith("application/json"):
            # intuit-oauth sends {"token": ...} as JSON.
            try:
                payload = simplejson.loads(raw or b"{}")
            except simplejson.JSONDecodeError:
                return _oauth_error(400, "invalid_request", "the body is not valid JSON")
            token_value = payload.get("token") if isinstance(payload, dict) else None
        if not token_value:
            return _oauth_error(400, "invalid_request", "token is required")
        # RFC 7009: an unknown token is not an error; the connection is gone either way.
        authority.revoke(token_value)
        return Response(status_code=200)

    async def userinfo(request: Request) -> JSONResponse:
        header = request.headers.get("authorization", "")
        realm_id = authority.realm_of(header.partition(" ")[2].strip())
        if realm_id is None:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse(
            {"sub": f"sandbox-user-{realm_id}", "givenName": "Sandbox", "familyName": "Owner",
             "email": f"owner+{realm_id}@example.com", "emailVerified": True}
        )

    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse({"keys": []})  # the sandbox issues no id_token, so there is nothing to verify

    return [
        Route(DISCOVERY_PATH, discovery, methods=["GET"]),
        Route(DISCOVERY_PATH + "/", discovery, methods=["GET"]),
        Route(AUTHORIZE_PATH, authorize, methods=["GET"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        Route(REVOKE_PATH, revoke, methods=["POST"]),
        Route(USERINFO_PATH, userinfo, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
    ]
