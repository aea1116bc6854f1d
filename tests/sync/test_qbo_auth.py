"""OAuthTokenProvider: refresh before expiry, one refresh for many waiting calls, rotation persisted
before use, and Intuit's token-endpoint failures turned into clear errors.

Intuit's token endpoint is played by an httpx.MockTransport that speaks its wire format (form-encoded
refresh request with HTTP Basic client auth; JSON answers and error bodies from the reference)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from sync.qbo import (
    OAuthTokenProvider,
    OAuthTokens,
    Outcome,
    QBOAuthError,
    QBOConnectionError,
    QBOServerError,
    QBOTokenError,
    StaticTokenProvider,
)

TOKEN_URL = "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"
REALM = "9130355377388136"
CLIENT_ID = "ABclientid"
CLIENT_SECRET = "s3cret"
# Intuit's real invalid_grant body (python-quickbooks #397), from the reference fixtures.
INVALID_GRANT = Path("/work/shared/qbo-reference/oauth_invalid_grant_error.json").read_bytes()


class ManualClock:
    def __init__(self) -> None:
        self.current = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current


class FakeIntuitTokenEndpoint:
    """Intuit's refresh grant: checks the request, rotates the refresh token on each refresh."""

    def __init__(self) -> None:
        self.valid_refresh = "refresh-0"
        self.refreshes = 0
        self.requests: list[httpx.Request] = []
        self.fail_with: httpx.Response | None = None
        self.raise_error: Exception | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        await asyncio.sleep(0.01)  # a real round trip lets other tasks run meanwhile
        if self.raise_error is not None:
            raise self.raise_error
        if self.fail_with is not None:
            return self.fail_with
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return httpx.Response(
                401, json={"error": "invalid_client"}, headers={"intuit_tid": "tid-c"}
            )
        form = parse_qs(request.content.decode())
        if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
            self.valid_refresh
        ]:
            return httpx.Response(400, content=INVALID_GRANT, headers={"intuit_tid": "tid-g"})
        self.refreshes += 1
        self.valid_refresh = f"refresh-{self.refreshes}"
        return httpx.Response(
            200,
            json={
                "token_type": "bearer",
                "access_token": f"access-{self.refreshes}",
                "expires_in": 3600,
                "refresh_token": self.valid_refresh,
                "x_refresh_token_expires_in": 8640000,
            },
        )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def endpoint() -> FakeIntuitTokenEndpoint:
    return FakeIntuitTokenEndpoint()


@pytest.fixture
async def http(endpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint)) as client:
        yield client


def initial_tokens(
    clock: ManualClock, *, expires_in: timedelta = timedelta(hours=1)
) -> OAuthTokens:
    return OAuthTokens(
        "access-0", "refresh-0", clock.current + expires_in, clock.current + timedelta(days=100)
    )


def make_provider(http, clock, tokens=None, **kwargs):
    rotated: list[OAuthTokens] = []

    async def on_rotate(new: OAuthTokens) -> None:
        rotated.append(new)

    provider = OAuthTokenProvider(
        REALM,
        CLIENT_ID,
        CLIENT_SECRET,
        TOKEN_URL,
        tokens or initial_tokens(clock),
        kwargs.pop("on_rotate", on_rotate),
        http,
        clock=clock,
        **kwargs,
    )
    return provider, rotated


async def test_fresh_token_is_used_without_calling_intuit(http, clock, endpoint):
    provider, rotated = make_provider(http, clock)
    assert await provider.access_token() == "access-0"
    assert endpoint.requests == []
    assert rotated == []


async def test_refreshes_before_expiry_with_form_and_basic_auth(http, clock, endpoint):
    provider, rotated = make_provider(http, clock)
    clock.current += timedelta(minutes=56)  # 4 minutes left: inside the 5-minute skew
    assert await provider.access_token() == "access-1"
    request = endpoint.requests[0]
    assert request.method == "POST"
    assert str(request.url) == TOKEN_URL
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["accept"] == "application/json"
    assert parse_qs(request.content.decode()) == {
        "grant_type": ["refresh_token"],
        "refresh_token": ["refresh-0"],
    }
    assert [t.refresh_token for t in rotated] == ["refresh-1"]
    assert rotated[0].expires_at == clock.current + timedelta(hours=1)
    assert rotated[0].refresh_expires_at == clock.current + timedelta(days=100)
    assert provider.tokens == rotated[0]


async def test_rotation_is_persisted_before_the_new_token_is_handed_out(http, clock, endpoint):
    events: list[str] = []

    async def on_rotate(new: OAuthTokens) -> None:
        await asyncio.sleep(0.01)  # a slow database write
        events.append(f"persisted {new.refresh_token}")

    provider, _ = make_provider(
        http, clock, tokens=initial_tokens(clock, expires_in=timedelta(0)), on_rotate=on_rotate
    )
    token = await provider.access_token()
    events.append(f"used {token}")
    assert events == ["persisted refresh-1", "used access-1"]


async def test_many_concurrent_calls_with_an_expired_token_make_one_refresh(http, clock, endpoint):
    provider, rotated = make_provider(
        http, clock, tokens=initial_tokens(clock, expires_in=-timedelta(minutes=1))
    )
    tokens = await asyncio.gather(*(provider.access_token() for _ in range(20)))
    assert set(tokens) == {"access-1"}
    assert endpoint.refreshes == 1
    assert len(rotated) == 1


async def test_force_refresh_reuses_a_token_another_task_already_renewed(http, clock, endpoint):
    provider, rotated = make_provider(http, clock)
    # Two calls were both refused with access-0 (it was revoked early); both ask for a new one.
    first, second = await asyncio.gather(
        provider.force_refresh("access-0"), provider.force_refresh("access-0")
    )
    assert first == second == "access-1"
    assert endpoint.refreshes == 1
    # A 401 on the new token itself does refresh again.
    assert await provider.force_refresh("access-1") == "access-2"
    assert [t.refresh_token for t in rotated] == ["refresh-1", "refresh-2"]


async def test_invalid_grant_says_the_connection_must_be_reauthorised(http, clock, endpoint):
    endpoint.valid_refresh = "someone-else-rotated-it"
    provider, rotated = make_provider(http, clock)
    with pytest.raises(QBOTokenError) as caught:
        await provider.force_refresh("access-0")
    error = caught.value
    assert error.code == "invalid_grant"
    assert error.status == 400
    assert error.intuit_tid == "tid-g"
    assert error.outcome is Outcome.NOT_APPLIED
    assert (
        "QuickBooks refused the refresh token (invalid_grant: Incorrect or invalid refresh token)"
        in str(error)
    )
    assert "re-authorised from Slack with /runway connect" in str(error)
    assert rotated == []


async def test_invalid_client_points_at_the_app_credentials(http, clock, endpoint):
    provider = OAuthTokenProvider(
        REALM, CLIENT_ID, "wrong", TOKEN_URL, initial_tokens(clock), _ignore, http, clock=clock
    )
    with pytest.raises(QBOTokenError) as caught:
        await provider.force_refresh("access-0")
    assert caught.value.code == "invalid_client"
    assert "QBO_CLIENT_SECRET" in str(caught.value)


async def test_token_endpoint_outage_is_transient_and_nothing_was_applied(http, clock, endpoint):
    endpoint.fail_with = httpx.Response(503, text="<html><title>503</title></html>")
    provider, _ = make_provider(http, clock)
    with pytest.raises(QBOServerError) as caught:
        await provider.force_refresh("access-0")
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert caught.value.retryable_safely(is_write=True, has_request_id=False)


async def test_unreachable_token_endpoint_is_a_connection_error(http, clock, endpoint):
    endpoint.raise_error = httpx.ConnectError("connection refused")
    provider, _ = make_provider(http, clock)
    with pytest.raises(QBOConnectionError) as caught:
        await provider.force_refresh("access-0")
    assert caught.value.outcome is Outcome.NOT_APPLIED
    assert "token endpoint" in str(caught.value)


async def test_expired_refresh_token_fails_without_calling_intuit(http, clock, endpoint):
    provider, _ = make_provider(http, clock)
    clock.current += timedelta(days=101)
    with pytest.raises(QBOTokenError) as caught:
        await provider.access_token()
    assert caught.value.code == "refresh_token_expired"
    assert endpoint.requests == []


async def test_failed_persistence_is_retried_before_refreshing_again(http, clock, endpoint):
    attempts: list[str] = []

    async def flaky_on_rotate(new: OAuthTokens) -> None:
        attempts.append(new.refresh_token)
        if len(attempts) == 1:
            raise ConnectionError("database is down")

    provider, _ = make_provider(
        http,
        clock,
        tokens=initial_tokens(clock, expires_in=timedelta(0)),
        on_rotate=flaky_on_rotate,
    )
    with pytest.raises(ConnectionError) as caught:
        await provider.access_token()
    assert any("saving them failed" in note for note in caught.value.__notes__)
    # The old refresh token may be dead now: the next call saves the tokens it already has.
    assert await provider.access_token() == "access-1"
    assert attempts == ["refresh-1", "refresh-1"]
    assert endpoint.refreshes == 1


async def test_tokens_refreshed_by_another_process_are_reloaded_not_refreshed_again(
    http, clock, endpoint
):
    # Another process refreshed and stored new tokens; this provider still holds the old ones.
    endpoint.valid_refresh = "refresh-other"
    stored = OAuthTokens(
        "access-other",
        "refresh-other",
        clock.current + timedelta(hours=1),
        clock.current + timedelta(days=100),
    )

    async def reload() -> OAuthTokens:
        return stored

    acquired: list[str] = []

    @asynccontextmanager
    async def shared_lock(realm_id: str) -> AsyncIterator[None]:
        acquired.append(realm_id)
        yield

    provider, rotated = make_provider(
        http,
        clock,
        tokens=initial_tokens(clock, expires_in=timedelta(0)),
        reload=reload,
        lock=shared_lock,
    )
    assert await provider.access_token() == "access-other"
    assert acquired == [REALM]
    assert endpoint.requests == []
    assert rotated == []


async def test_tokens_never_show_in_repr():
    tokens = OAuthTokens("secret-access", "secret-refresh", datetime.now(UTC), datetime.now(UTC))
    assert "secret" not in repr(tokens)


def test_naive_expiry_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        OAuthTokens("a", "r", datetime(2025, 1, 1), datetime(2025, 1, 2, tzinfo=UTC))


def test_token_response_without_refresh_fields_keeps_the_previous_refresh_token():
    now = datetime(2025, 1, 1, tzinfo=UTC)
    previous = OAuthTokens("a0", "r0", now, now + timedelta(days=50))
    tokens = OAuthTokens.from_token_response(
        {"access_token": "a1", "expires_in": 3600}, now=now, previous=previous
    )
    assert tokens.refresh_token == "r0"
    assert tokens.refresh_expires_at == previous.refresh_expires_at
    assert tokens.expires_at == now + timedelta(hours=1)


async def test_static_provider_cannot_refresh():
    provider = StaticTokenProvider("fixed")
    assert await provider.access_token() == "fixed"
    with pytest.raises(QBOAuthError, match="no refresh token"):
        await provider.force_refresh("fixed")


async def _ignore(tokens: OAuthTokens) -> None:
    return None
