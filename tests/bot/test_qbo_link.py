"""Connecting a business to QuickBooks through the sandbox's real OAuth endpoints.

A "browser" follows the redirects between Oodaloo's routes (https://oodaloo.test) and the sandbox
(its consent screen approves at once and sends the browser back with a code), on SQLite and
PostgreSQL. The linker reaches the sandbox's discovery and token endpoints over ASGI.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import simplejson
from sqlalchemy import select
from starlette.applications import Starlette

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))

from db_conftest import MigratedDatabase, db_url_fixture, migrated_fixture

from bot.qbo_link import (
    CALLBACK_PATH,
    CONNECT_PATH,
    CompanyTaken,
    InvalidConnectLink,
    QBOAppConfig,
    QBOLinker,
    qbo_link_routes,
)
from qbo_sandbox.app import ASGI_BASE_URL, Sandbox, create_app
from qbo_sandbox.config import SandboxConfig
from runway.businesses import BusinessDirectory, BusinessNotFound, NotAnApprover, NotConnected
from runway.crypto import TokenCipher, generate_key
from runway.models import Business, ConnectionStatus, QBOConnection
from sync.clock import ManualClock
from sync.qbo.auth import OAuthTokens

__all__ = ["db_url_fixture", "migrated_fixture"]

OODALOO = "https://oodaloo.test"
BUSINESS_NAME = 'Larkspur & Pine <"Café">'
LINK_ERRORS = "bot.qbo_link"


class HostRouter(httpx.AsyncBaseTransport):
    """One browser, two sites: each request goes to the ASGI app serving its host."""

    def __init__(self, sites: dict[str, httpx.AsyncBaseTransport]) -> None:
        self.sites = sites
        self.visited: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.visited.append(f"{request.url.host}{request.url.path}")
        return await self.sites[request.url.host].handle_async_request(request)


@dataclass
class LinkEnv:
    db: MigratedDatabase
    sandbox: Sandbox
    directory: BusinessDirectory
    linker: QBOLinker
    clock: ManualClock
    browser: httpx.AsyncClient
    router: HostRouter
    connected: list[Business]
    connected_event: asyncio.Event

    async def wait_connected(self) -> Business:
        async with asyncio.timeout(5):
            await self.connected_event.wait()
        return self.connected[-1]


@pytest.fixture
async def env(migrated: MigratedDatabase) -> AsyncIterator[LinkEnv]:
    sandbox = create_app(SandboxConfig(scale=5))
    directory = BusinessDirectory(migrated.sessions, TokenCipher(generate_key()))
    await directory.create(
        "biz-larkspur", BUSINESS_NAME, "America/Los_Angeles", approvers=["U0OWNER", "U0"]
    )
    clock = ManualClock(datetime.now(UTC))
    qbo = sandbox.http_client(access_token="")
    config = await QBOAppConfig.discover(
        f"{ASGI_BASE_URL}/.well-known/openid_configuration",
        http=qbo,
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        redirect_uri=f"{OODALOO}{CALLBACK_PATH}",
        public_url=f"{OODALOO}/",
        api_base_url=ASGI_BASE_URL,
    )
    linker = QBOLinker(config, directory, migrated.engine, http=qbo, clock=clock)
    connected: list[Business] = []
    connected_event = asyncio.Event()

    async def on_connected(business: Business) -> None:
        connected.append(business)
        connected_event.set()

    app = Starlette(routes=qbo_link_routes(linker, on_connected=on_connected))
    router = HostRouter(
        {
            urlsplit(ASGI_BASE_URL).netloc: httpx.ASGITransport(app=sandbox.app),
            urlsplit(OODALOO).netloc: httpx.ASGITransport(app=app),
        }
    )
    async with httpx.AsyncClient(transport=router, follow_redirects=True) as browser:
        yield LinkEnv(
            migrated, sandbox, directory, linker, clock, browser, router, connected, connected_event
        )
    await qbo.aclose()
    await linker.aclose()
    await sandbox.aclose()


def _state_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


# -- the whole flow ------------------------------------------------------------------------------


async def test_discovery_reads_the_sandbox_endpoints(env: LinkEnv) -> None:
    config = env.linker.config
    assert config.authorize_url == f"{ASGI_BASE_URL}/connect/oauth2"
    assert config.token_url == f"{ASGI_BASE_URL}/oauth2/v1/tokens/bearer"
    assert config.public_url == OODALOO
    assert env.sandbox.client_secret not in repr(config)
    assert config.client_id in repr(config)


async def test_owner_connects_through_quickbooks(env: LinkEnv) -> None:
    link = await env.linker.start_url("biz-larkspur", "U0OWNER")
    assert link.startswith(f"{OODALOO}{CONNECT_PATH}?state=")

    page = await env.browser.get(link)

    assert [r.status_code for r in page.history] == [302, 302]
    authorize = urlsplit(str(page.history[1].url))
    consent = parse_qs(authorize.query)
    assert consent["client_id"] == [env.sandbox.client_id]
    assert consent["response_type"] == ["code"]
    assert consent["scope"] == ["com.intuit.quickbooks.accounting"]
    assert consent["redirect_uri"] == [f"{OODALOO}{CALLBACK_PATH}"]
    assert consent["state"] == [_state_of(link)]
    assert page.status_code == 200
    assert "Connected Larkspur &amp; Pine &lt;&quot;Café&quot;&gt; to QuickBooks" in page.text
    assert "you can close this tab" in page.text
    assert '<"Café">' not in page.text

    realm_id = env.sandbox.realm_id
    business = await env.wait_connected()
    assert (business.id, business.realm_id) == ("biz-larkspur", realm_id)
    assert (await env.directory.by_realm(realm_id)).id == "biz-larkspur"

    # The tokens are stored encrypted, come back decrypted, and open the sandbox company.
    tokens = await env.directory.load_tokens(realm_id)
    async with env.db.sessions() as session:
        stored = (await session.execute(select(QBOConnection))).scalar_one()
    assert stored.status == ConnectionStatus.CONNECTED.value
    assert tokens.access_token not in stored.access_token_encrypted
    assert tokens.refresh_token not in stored.refresh_token_encrypted
    assert tokens.expires_at > env.clock.now()
    async with env.sandbox.http_client(access_token=tokens.access_token) as qbo:
        info = await qbo.get(env.sandbox.v3_path(f"companyinfo/{realm_id}"))
    assert info.status_code == 200, info.text


async def test_connecting_a_company_in_the_uk_gives_the_business_its_locale(env: LinkEnv) -> None:
    """The country QuickBooks' CompanyInfo gives, read as the tokens are checked, sets how the
    business's money and times are written."""
    assert (await env.directory.get("biz-larkspur")).locale == "en_US"
    uk = env.sandbox.add_realm(country="GB").realm_id
    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    code = env.sandbox.tokens.authorization_code(uk, f"{OODALOO}{CALLBACK_PATH}")

    business = await env.linker.complete(code=code, state=state, realm_id=uk)

    assert (business.realm_id, business.locale) == (uk, "en_GB")


async def test_a_used_link_is_refused(env: LinkEnv) -> None:
    link = await env.linker.start_url("biz-larkspur", "U0OWNER")
    first = await env.browser.get(link)
    assert first.status_code == 200
    callback = str(first.url)

    again = await env.browser.get(link)
    assert again.status_code == 400
    assert not again.history  # no trip to QuickBooks
    assert "already been used" in again.text and "/runway connect" in again.text

    replayed = await env.browser.get(callback)
    assert replayed.status_code == 400
    assert "already been used" in replayed.text
    assert len(env.connected) == 1


async def test_two_callbacks_racing_on_one_state_connect_once(env: LinkEnv) -> None:
    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    redirect = f"{OODALOO}{CALLBACK_PATH}"
    codes = [env.sandbox.tokens.authorization_code(env.sandbox.realm_id, redirect) for _ in "ab"]
    outcomes = await asyncio.gather(
        *(env.linker.complete(code=c, state=state, realm_id=env.sandbox.realm_id) for c in codes),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Business", "InvalidConnectLink"]


async def test_an_expired_link_is_refused(env: LinkEnv) -> None:
    link = await env.linker.start_url("biz-larkspur", "U0OWNER")
    env.clock.advance(timedelta(minutes=10, seconds=1))

    page = await env.browser.get(link)
    assert page.status_code == 400
    assert "expired" in page.text and "10 minutes" in page.text
    assert not page.history

    code = env.sandbox.tokens.authorization_code(env.sandbox.realm_id, f"{OODALOO}{CALLBACK_PATH}")
    with pytest.raises(InvalidConnectLink, match="expired"):
        await env.linker.complete(code=code, state=_state_of(link), realm_id=env.sandbox.realm_id)
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")


def _swap_business(state: str, business_id: str) -> str:
    body, _, mac = state.partition(".")
    fields = simplejson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    fields["b"] = business_id
    forged = base64.urlsafe_b64encode(simplejson.dumps(fields).encode()).rstrip(b"=").decode()
    return f"{forged}.{mac}"


async def test_a_tampered_link_is_refused(env: LinkEnv) -> None:
    await env.directory.create(
        "biz-mallory", "Mallory Holdings", "America/Chicago", approvers=["U0MALLORY"]
    )
    state = _state_of(await env.linker.start_url("biz-mallory", "U0MALLORY"))
    victims_link = f"{OODALOO}{CONNECT_PATH}?state={_swap_business(state, 'biz-larkspur')}"

    for url in (victims_link, f"{OODALOO}{CONNECT_PATH}?state=garbage", f"{OODALOO}{CONNECT_PATH}"):
        page = await env.browser.get(url)
        assert page.status_code == 400, url
        assert "not valid" in page.text

    code = env.sandbox.tokens.authorization_code(env.sandbox.realm_id, f"{OODALOO}{CALLBACK_PATH}")
    forged = _swap_business(state, "biz-larkspur")
    callback = await env.browser.get(
        f"{OODALOO}{CALLBACK_PATH}",
        params={"code": code, "state": forged, "realmId": env.sandbox.realm_id},
    )
    assert callback.status_code == 400
    assert "not valid" in callback.text
    with pytest.raises(BusinessNotFound):
        await env.directory.by_realm(env.sandbox.realm_id)


async def test_owner_declines_access(env: LinkEnv) -> None:
    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    page = await env.browser.get(
        f"{OODALOO}{CALLBACK_PATH}", params={"error": "access_denied", "state": state}
    )
    assert page.status_code == 400
    assert "chose not to let Oodaloo read your QuickBooks company" in page.text
    assert "/runway connect" in page.text
    assert env.connected == []


async def test_a_callback_without_code_is_explained(env: LinkEnv) -> None:
    page = await env.browser.get(f"{OODALOO}{CALLBACK_PATH}")
    assert page.status_code == 400
    assert "code and state are missing" in page.text


async def test_a_company_belonging_to_another_business_is_refused(env: LinkEnv) -> None:
    realm_id = env.sandbox.realm_id
    await env.directory.create("biz-first", "First Business", "America/Chicago")
    issued = env.sandbox.tokens.issue(realm_id)
    now = datetime.now(UTC)
    tokens = OAuthTokens(issued.access_token, issued.refresh_token, now + timedelta(hours=1), now + timedelta(days=100))  # fmt: skip
    await env.directory.connect("biz-first", realm_id, tokens)

    page = await env.browser.get(await env.linker.start_url("biz-larkspur", "U0OWNER"))

    assert page.status_code == 400
    assert (
        f"QuickBooks company {realm_id} is already connected to another Oodaloo business"
        in page.text
    )
    assert "First Business" not in page.text  # another tenant's name stays private
    assert (await env.directory.by_realm(realm_id)).id == "biz-first"
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")
    assert env.connected == []


async def test_a_business_cannot_switch_to_another_company(env: LinkEnv) -> None:
    other = env.sandbox.add_realm(scale=2)
    link = await env.linker.start_url("biz-larkspur", "U0OWNER")
    assert (await env.browser.get(link)).status_code == 200  # connected to the seeded company

    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    code = env.sandbox.tokens.authorization_code(other.realm_id, f"{OODALOO}{CALLBACK_PATH}")
    page = await env.browser.get(
        f"{OODALOO}{CALLBACK_PATH}",
        params={"code": code, "state": state, "realmId": other.realm_id},
    )
    assert page.status_code == 400
    assert f"choose company {env.sandbox.realm_id}" in page.text
    assert (await env.directory.get("biz-larkspur")).realm_id == env.sandbox.realm_id


async def test_reconnecting_the_same_company_replaces_its_tokens(env: LinkEnv) -> None:
    realm_id = env.sandbox.realm_id
    assert (
        await env.browser.get(await env.linker.start_url("biz-larkspur", "U0"))
    ).status_code == 200
    before = await env.directory.load_tokens(realm_id)
    await env.directory.mark_needs_reconnect(
        realm_id, "invalid_grant: the refresh token was revoked"
    )

    page = await env.browser.get(await env.linker.start_url("biz-larkspur", "U0"))

    assert page.status_code == 200
    after = await env.directory.load_tokens(realm_id)  # NotConnected if still needing a reconnect
    assert after.refresh_token != before.refresh_token


async def test_quickbooks_refusing_the_code_is_explained(env: LinkEnv) -> None:
    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    page = await env.browser.get(
        f"{OODALOO}{CALLBACK_PATH}",
        params={"code": "AB11-not-a-real-code", "state": state, "realmId": env.sandbox.realm_id},
    )
    assert page.status_code == 400  # the code cannot work: not QuickBooks' failure
    assert "invalid_grant" in page.text and "/runway connect" in page.text
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")


async def test_start_url_needs_a_known_business(env: LinkEnv) -> None:
    with pytest.raises(BusinessNotFound):
        await env.linker.start_url("biz-nobody", "U0OWNER")


async def test_a_company_claimed_after_the_link_was_made_is_refused(env: LinkEnv) -> None:
    realm_id = env.sandbox.realm_id
    state = _state_of(await env.linker.start_url("biz-larkspur", "U0OWNER"))
    await env.directory.create("biz-first", "First Business", "America/Chicago", realm_id=realm_id)
    code = env.sandbox.tokens.authorization_code(realm_id, f"{OODALOO}{CALLBACK_PATH}")
    with pytest.raises(CompanyTaken, match="already connected to another Oodaloo business"):
        await env.linker.complete(code=code, state=state, realm_id=realm_id)


class LoggedErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.arrived.set()


async def test_a_failing_on_connected_is_logged_and_the_page_still_answers(
    env: LinkEnv,
) -> None:
    async def broken(business: Business) -> None:
        raise RuntimeError("Slack is unreachable")

    app = Starlette(routes=qbo_link_routes(env.linker, on_connected=broken))
    env.router.sites[urlsplit(OODALOO).netloc] = httpx.ASGITransport(app=app)
    errors = LoggedErrors()
    logging.getLogger(LINK_ERRORS).addHandler(errors)
    try:
        page = await env.browser.get(await env.linker.start_url("biz-larkspur", "U0OWNER"))
        assert page.status_code == 200
        async with asyncio.timeout(5):
            await errors.arrived.wait()
    finally:
        logging.getLogger(LINK_ERRORS).removeHandler(errors)
    [record] = errors.records
    assert "biz-larkspur" in record.getMessage()
    assert record.exc_info is not None and "Slack is unreachable" in str(record.exc_info[1])


def test_config_needs_credentials_and_urls() -> None:
    with pytest.raises(ValueError, match="QBO_CLIENT_SECRET"):
        QBOAppConfig("client", "", f"{OODALOO}{CALLBACK_PATH}", OODALOO)
    with pytest.raises(ValueError, match="redirect_uri must be an http"):
        QBOAppConfig("client", "secret", "oodaloo.test/qbo/callback", OODALOO)


# -- who connects, and to which company ----------------------------------------------------------


async def _callback_url(env: LinkEnv, link: str) -> str:
    """Where QuickBooks' consent screen sends the browser back (not followed yet)."""
    to_intuit = await env.browser.get(link, follow_redirects=False)
    back = await env.browser.get(to_intuit.headers["location"], follow_redirects=False)
    assert back.status_code == 302, back.text
    return str(back.headers["location"])


async def test_a_callback_naming_another_company_than_the_tokens_open_stores_nothing(
    env: LinkEnv,
) -> None:
    # The owner consents for the sandbox company; the callback's realmId is then edited to name
    # another company (one nobody has connected): the tokens do not open it.
    other = env.sandbox.add_realm(scale=2).realm_id
    callback = await _callback_url(env, await env.linker.start_url("biz-larkspur", "U0OWNER"))
    chosen = parse_qs(urlsplit(callback).query)["realmId"][0]
    assert chosen == env.sandbox.realm_id != other
    edited = callback.replace(f"realmId={chosen}", f"realmId={other}")

    page = await env.browser.get(edited)

    assert page.status_code == 400, page.text
    assert f"does not give access to company {other}" in page.text
    assert "nothing was connected" in page.text
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")
    assert (await env.directory.get("biz-larkspur")).realm_id is None
    with pytest.raises(BusinessNotFound):
        await env.directory.by_realm(other)
    assert env.connected == []


async def test_only_an_approver_gets_a_connect_link(env: LinkEnv) -> None:
    with pytest.raises(NotAnApprover):
        await env.linker.start_url("biz-larkspur", "U0STRANGER")
    async with env.db.sessions() as session:
        assert (await session.execute(select(QBOConnection))).first() is None


async def test_a_link_whose_asker_stopped_being_an_approver_connects_nothing(
    env: LinkEnv,
) -> None:
    link = await env.linker.start_url("biz-larkspur", "U0")
    await env.directory.update("biz-larkspur", approvers=["U0OWNER"])

    page = await env.browser.get(link)

    assert page.status_code == 403, page.text
    assert "Only approvers of" in page.text and "nothing was changed" in page.text
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")
    assert env.connected == []


async def test_connecting_in_the_domain_needs_an_approver(env: LinkEnv) -> None:
    realm_id = env.sandbox.realm_id
    issued = env.sandbox.tokens.issue(realm_id)
    now = datetime.now(UTC)
    tokens = OAuthTokens(issued.access_token, issued.refresh_token, now + timedelta(hours=1), now + timedelta(days=100))  # fmt: skip
    with pytest.raises(NotAnApprover):
        await env.directory.connect("biz-larkspur", realm_id, tokens, by="U0STRANGER")
    with pytest.raises(NotConnected):
        await env.directory.connection("biz-larkspur")
    await env.directory.connect("biz-larkspur", realm_id, tokens, by="U0OWNER")
    assert (await env.directory.connection("biz-larkspur")).realm_id == realm_id
