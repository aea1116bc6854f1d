"""OAuth in the QBO sandbox: consent, token exchange, expiry, rotation, revocation, and QBO's auth faults."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.oauth import TokenSet

FIXTURES = Path("/work/shared/qbo-reference")
REDIRECT_URI = "https://oodaloo.example/qbo/callback"


def _basic(sandbox: Sandbox, secret: str | None = None) -> dict[str, str]:
    raw = f"{sandbox.client_id}:{secret if secret is not None else sandbox.client_secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def _refresh(http: httpx.AsyncClient, sandbox: Sandbox, refresh_token: str) -> httpx.Response:
    return await http.post(
        "/oauth2/v1/tokens/bearer",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=_basic(sandbox),
    )


async def _company_info(http: httpx.AsyncClient, sandbox: Sandbox, token: str | None, realm_id: str | None = None) -> httpx.Response:
    realm_id = realm_id or sandbox.realm_id
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return await http.get(f"/v3/company/{realm_id}/companyinfo/{realm_id}", headers=headers)


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    # One small company for the module; each test connects afresh (see `connection`).
    return create_app(SandboxConfig(scale=5))


@pytest.fixture
def connection(sandbox: Sandbox) -> TokenSet:
    """A new connection of the app to the company: tokens no other test has touched."""
    return sandbox.tokens.issue(sandbox.realm_id)


@pytest.fixture
async def anonymous(sandbox: Sandbox):
    async with sandbox.http_client(access_token="") as client:
        yield client


async def test_discovery_document_points_every_endpoint_at_this_server(anonymous: httpx.AsyncClient, sandbox: Sandbox):
    response = await anonymous.get("/.well-known/openid_configuration")
    assert response.status_code == 200
    doc = response.json()
    base = sandbox.base_url
    assert doc["token_endpoint"] == f"{base}/oauth2/v1/tokens/bearer"
    assert doc["authorization_endpoint"] == f"{base}/connect/oauth2"
    assert doc["revocation_endpoint"] == f"{base}/oauth2/v1/tokens/revoke"
    for key in ("issuer", "userinfo_endpoint", "jwks_uri"):
        assert doc[key].startswith(base)
    assert response.headers["intuit_tid"]
    # Intuit's production URL ends with a slash; both spellings answer.
    assert (await anonymous.get("/.well-known/openid_configuration/")).json() == doc


async def test_consent_redirects_with_code_that_exchanges_once_for_working_tokens(anonymous: httpx.AsyncClient, sandbox: Sandbox):
    consent = await anonymous.get(
        "/connect/oauth2",
        params={"client_id": sandbox.client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
                "scope": "com.intuit.quickbooks.accounting", "state": "csrf-123"},
    )
    assert consent.status_code == 302
    location = urlsplit(consent.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert query["state"] == "csrf-123"
    assert query["realmId"] == sandbox.realm_id

    form = {"grant_type": "authorization_code", "code": query["code"], "redirect_uri": REDIRECT_URI}
    exchanged = await anonymous.post("/oauth2/v1/tokens/bearer", data=form, headers=_basic(sandbox))
    assert exchanged.status_code == 200
    tokens = exchanged.json()
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["x_refresh_token_expires_in"] == 100 * 24 * 3600
    assert (await _company_info(anonymous, sandbox, tokens["access_token"])).status_code == 200

    replay = await anonymous.post("/oauth2/v1/tokens/bearer", data=form, headers=_basic(sandbox))
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"


async def test_consent_refuses_an_unknown_app_without_redirecting(anonymous: httpx.AsyncClient):
    response = await anonymous.get(
        "/connect/oauth2",
        params={"client_id": "someone-else", "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "x"},
    )
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_token_endpoint_refuses_bad_client_credentials(anonymous: httpx.AsyncClient, sandbox: Sandbox, connection: TokenSet):
    form = {"grant_type": "refresh_token", "refresh_token": connection.refresh_token}
    wrong_secret = await anonymous.post("/oauth2/v1/tokens/bearer", data=form, headers=_basic(sandbox, "nope"))
    assert wrong_secret.status_code == 401
    assert wrong_secret.json() == {"error": "invalid_client"}
    no_auth = await anonymous.post("/oauth2/v1/tokens/bearer", data=form)
    assert no_auth.status_code == 401
    unknown_grant = await anonymous.post(
        "/oauth2/v1/tokens/bearer", data={"grant_type": "password"}, headers=_basic(sandbox)
    )
    assert unknown_grant.status_code == 400
    assert unknown_grant.json()["error"] == "unsupported_grant_type"


async def test_access_token_expires_with_the_clock_and_refresh_brings_it_back(anonymous: httpx.AsyncClient, sandbox: Sandbox, connection: TokenSet):
    assert (await _company_info(anonymous, sandbox, connection.access_token)).status_code == 200
    sandbox.advance_clock(timedelta(seconds=3601))

    expired = await _company_info(anonymous, sandbox, connection.access_token)
    assert expired.status_code == 401
    error = expired.json()["fault"]["error"][0]
    assert error["code"] == "3200"
    assert error["detail"].startswith("Token expired")

    refreshed = await _refresh(anonymous, sandbox, connection.refresh_token)
    assert refreshed.status_code == 200
    assert (await _company_info(anonymous, sandbox, refreshed.json()["access_token"])).status_code == 200


async def test_refresh_tokens_rotate_and_the_old_one_dies_once_its_successor_is_used(anonymous: httpx.AsyncClient, sandbox: Sandbox, connection: TokenSet):
    first = (await _refresh(anonymous, sandbox, connection.refresh_token)).json()
    successor = first["refresh_token"]
    assert successor != connection.refresh_token

    # Until the successor is used, the old token still works and hands out that same successor
    # (a client whose refresh response was lost can retry).
    retried = await _refresh(anonymous, sandbox, connection.refresh_token)
    assert retried.status_code == 200
    assert retried.json()["refresh_token"] == successor
    assert retried.json()["access_token"] != first["access_token"]

    second = await _refresh(anonymous, sandbox, successor)
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (successor, connection.refresh_token)

    stale = await _refresh(anonymous, sandbox, connection.refresh_token)
    assert stale.status_code == 400
    assert stale.json()["error"] == "invalid_grant"
    assert stale.headers["intuit_tid"]
    # The newest token keeps working.
    assert (await _refresh(anonymous, sandbox, second.json()["refresh_token"])).status_code == 200


async def test_refresh_token_expires_after_100_days(anonymous: httpx.AsyncClient, sandbox: Sandbox, connection: TokenSet):
    sandbox.advance_clock(timedelta(days=100, seconds=1))
    response = await _refresh(anonymous, sandbox, connection.refresh_token)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_unauthenticated_calls_get_qbo_lowercase_401_fault(anonymous: httpx.AsyncClient, sandbox: Sandbox):
    fixture = json.loads((FIXTURES / "fault_auth_401_lowercase.json").read_text())
    for token in (None, "", "not-a-token-we-issued"):
        response = await _company_info(anonymous, sandbox, token)
        assert response.status_code == 401, token
        body = response.json()
        assert body.keys() == fixture.keys()
        assert body["fault"]["type"] == "AUTHENTICATION"
        error = body["fault"]["error"][0]
        assert error.keys() == fixture["fault"]["error"][0].keys()
        assert error["code"] == "3200"
        assert error["message"] == "message=AuthenticationFailed; errorCode=003200; statusCode=401"
        assert error["detail"]
        assert isinstance(body["time"], int)  # epoch milliseconds, as QBO sends
        assert response.headers["intuit_tid"]


async def test_token_of_another_company_gets_403_authorization_fault(anonymous: httpx.AsyncClient, sandbox: Sandbox):
    created = await anonymous.post("/_sandbox/realms", json={"seed": 4242, "scale": 1})
    assert created.status_code == 201
    other = created.json()
    assert other["realm_id"] != sandbox.realm_id
    assert (await _company_info(anonymous, sandbox, other["access_token"], other["realm_id"])).status_code == 200

    response = await _company_info(anonymous, sandbox, other["access_token"])
    assert response.status_code == 403
    error = response.json()["fault"]["error"][0]
    assert error["code"] == "3100"
    assert error["message"] == "message=AuthorizationFailed; errorCode=003100; statusCode=403"
    assert response.json()["fault"]["type"] == "SERVICE"


async def test_revoking_disconnects_access_and_refresh_tokens(anonymous: httpx.AsyncClient, sandbox: Sandbox, connection: TokenSet):
    # intuit-oauth sends the token to revoke as JSON.
    revoked = await anonymous.post(
        "/oauth2/v1/tokens/revoke", json={"token": connection.refresh_token}, headers=_basic(sandbox)
    )
    assert revoked.status_code == 200
    assert (await _company_info(anonymous, sandbox, connection.access_token)).status_code == 401
    assert (await _refresh(anonymous, sandbox, connection.refresh_token)).json()["error"] == "invalid_grant"
