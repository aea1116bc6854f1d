"""Keys at rest: email links signed with a key ring of their own (rotating the token key, or the
link key, leaves links already sent working), a wrong token key refused at start (a stored canary),
and `oodaloo rotate-keys` re-encrypting every stored secret under the newest key."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.oauth.installation_store.models.installation import Installation

from bot import ops
from bot.bootstrap import Oodaloo
from bot.cli import main
from bot.email import ActionKind, BadLink, LinkSigner
from bot.models import SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE
from bot.settings import Settings, SettingsError, load_settings
from bot.slack.installations import EncryptedInstallationStore
from runway.crypto import generate_key
from sync import OAuthTokens
from sync.backends import MemoryBackend

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
MOMENT = datetime(2026, 3, 2, 17, 2, tzinfo=UTC)


class Still:
    def now(self) -> datetime:
        return MOMENT

    def monotonic(self) -> float:
        return 0.0


def link_key() -> str:
    return secrets.token_urlsafe(32)


def _sqlite(tmp_path: Path, **values: str) -> Settings:
    return load_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}", **values)


async def _started(settings: Settings) -> Oodaloo:
    return await Oodaloo.start(settings, backend=MemoryBackend(), clock=Still())


def _signer(oodaloo: Oodaloo) -> LinkSigner:
    return LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url="https://oodaloo.example")


# --- email link keys -----------------------------------------------------------------------------


def test_a_link_signed_with_an_older_key_of_the_ring_still_verifies() -> None:
    old, new = link_key().encode(), link_key().encode()
    sent = LinkSigner(old, Still(), public_url="https://o.example")
    token = sent.action_token("biz", ActionKind.BILL_PAY, "42", "ana@example.com")
    unsubscribe = sent.unsubscribe_token("biz", "ana@example.com")

    rotated = LinkSigner([new, old], Still(), public_url="https://o.example")
    assert rotated.read_action(token).target_id == "42"
    assert rotated.read_unsubscribe(unsubscribe).recipient == "ana@example.com"
    fresh = rotated.action_token("biz", ActionKind.BILL_PAY, "43", "ana@example.com")
    # The newest key signs: a server that knows only it reads the new link, not the old one.
    only_new = LinkSigner(new, Still(), public_url="https://o.example")
    assert only_new.read_action(fresh).target_id == "43"
    with pytest.raises(BadLink):
        only_new.read_action(token)


async def test_rotating_the_token_key_leaves_links_already_sent_working(tmp_path: Path) -> None:
    first, second = generate_key(), generate_key()
    links = link_key()
    oodaloo = await _started(_sqlite(tmp_path, token_encryption_key=first, email_link_key=links))
    try:
        token = _signer(oodaloo).action_token("biz", ActionKind.BILL_APPROVE, "7", "ana@example.com")
    finally:
        await oodaloo.aclose()

    rotated = _sqlite(tmp_path, token_encryption_key=f"{second},{first}", email_link_key=links)
    oodaloo = await _started(rotated)
    try:
        assert _signer(oodaloo).read_action(token).target_id == "7"
    finally:
        await oodaloo.aclose()


async def test_rotating_the_link_key_keeps_the_old_one_for_links_already_sent(tmp_path: Path) -> None:
    key, old_links, new_links = generate_key(), link_key(), link_key()
    oodaloo = await _started(_sqlite(tmp_path, token_encryption_key=key, email_link_key=old_links))
    try:
        token = _signer(oodaloo).unsubscribe_token("biz", "ana@example.com")
    finally:
        await oodaloo.aclose()
    oodaloo = await _started(
        _sqlite(tmp_path, token_encryption_key=key, email_link_key=f"{new_links},{old_links}")
    )
    try:
        assert _signer(oodaloo).read_unsubscribe(token).recipient == "ana@example.com"
    finally:
        await oodaloo.aclose()


async def test_the_embedded_default_keeps_a_link_key_file_beside_the_database(tmp_path: Path) -> None:
    oodaloo = await _started(_sqlite(tmp_path))
    try:
        token = _signer(oodaloo).unsubscribe_token("biz", "ana@example.com")
    finally:
        await oodaloo.aclose()
    key_file = tmp_path / "email-link.key"
    assert key_file.exists() and oct(key_file.stat().st_mode & 0o777) == "0o600"
    # The token key file can be replaced (with a ring) without touching the links.
    token_file = tmp_path / "token-encryption.key"
    token_file.write_text(f"{generate_key()},{token_file.read_text().strip()}\n")
    oodaloo = await _started(_sqlite(tmp_path))
    try:
        assert _signer(oodaloo).read_unsubscribe(token).recipient == "ana@example.com"
    finally:
        await oodaloo.aclose()


async def test_a_server_database_needs_an_email_link_key() -> None:
    settings = load_settings(database_url=POSTGRES_URL, token_encryption_key=generate_key())
    with pytest.raises(SettingsError, match="EMAIL_LINK_KEY"):
        await Oodaloo.start(settings, backend=MemoryBackend(), migrate=False)


async def test_a_short_email_link_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="EMAIL_LINK_KEY"):
        await _started(_sqlite(tmp_path, email_link_key="too-short"))


# --- rotating the token key -------------------------------------------------------------------------

TOKENS = OAuthTokens(
    access_token="access-token-of-the-books",
    refresh_token="refresh-token-of-the-books",
    expires_at=MOMENT + timedelta(hours=1),
    refresh_expires_at=MOMENT + timedelta(days=100),
)
SLACK_TOKEN = "xoxb-1111-2222-slack-bot-token"


def _on(db_url: str, keys: str) -> Settings:
    return load_settings(database_url=db_url, token_encryption_key=keys, email_link_key=link_key())


def _slack_store(oodaloo: Oodaloo) -> EncryptedInstallationStore:
    return EncryptedInstallationStore(
        oodaloo.directory.cipher,
        client_id="1111.2222",
        engine=oodaloo.engine,
        bots_table_name=SLACK_BOTS_TABLE,
        installations_table_name=SLACK_INSTALLATIONS_TABLE,
    )


async def test_rotate_keys_moves_every_stored_secret_to_the_newest_key(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    old, new = generate_key(), generate_key()
    oodaloo = await _started(_on(db_url, old))
    try:
        await oodaloo.directory.create("biz", "Larkspur", "America/Los_Angeles")
        await oodaloo.directory.connect("biz", "realm-1", TOKENS)
        await _slack_store(oodaloo).async_save(
            Installation(app_id="A0", team_id="T0", user_id="U0", bot_token=SLACK_TOKEN,
                         bot_id="B0", bot_user_id="UB0", installed_at=MOMENT.timestamp())
        )
    finally:
        await oodaloo.aclose()

    oodaloo = await _started(_on(db_url, f"{new},{old}"))
    try:
        assert await ops.rotate_keys(oodaloo) == 0
    finally:
        await oodaloo.aclose()
    report = capsys.readouterr().out
    assert "QuickBooks connections: 1 re-encrypted" in report
    assert "Slack installations: 1 re-encrypted" in report and "Slack bots: 1 re-encrypted" in report

    oodaloo = await _started(_on(db_url, new))  # the old key is gone
    try:
        assert await oodaloo.directory.load_tokens("realm-1") == TOKENS
        bot = await _slack_store(oodaloo).async_find_bot(enterprise_id=None, team_id="T0")
        assert bot is not None and bot.bot_token == SLACK_TOKEN
    finally:
        await oodaloo.aclose()


# --- a wrong token key is caught at start ---------------------------------------------------------


async def test_a_token_key_that_opens_nothing_stored_is_refused_at_start(db_url: str) -> None:
    right, wrong = generate_key(), generate_key()
    oodaloo = await _started(_on(db_url, right))
    try:
        await oodaloo.directory.create("biz", "Larkspur", "America/Los_Angeles")
        await oodaloo.directory.connect("biz", "realm-1", TOKENS)
    finally:
        await oodaloo.aclose()

    with pytest.raises(SettingsError, match="TOKEN_ENCRYPTION_KEY") as refused:
        await _started(_on(db_url, wrong))
    assert "rotate-keys" in str(refused.value)
    # The right key kept in the ring (after a new one) is fine.
    oodaloo = await _started(_on(db_url, f"{wrong},{right}"))
    await oodaloo.aclose()


async def test_stored_slack_tokens_alone_also_prove_the_key(db_url: str) -> None:
    right, wrong = generate_key(), generate_key()
    oodaloo = await _started(_on(db_url, right))
    try:
        await _slack_store(oodaloo).async_save(
            Installation(app_id="A0", team_id="T0", user_id="U0", bot_token=SLACK_TOKEN,
                         bot_id="B0", bot_user_id="UB0", installed_at=MOMENT.timestamp())
        )
    finally:
        await oodaloo.aclose()
    with pytest.raises(SettingsError, match="TOKEN_ENCRYPTION_KEY"):
        await _started(_on(db_url, wrong))


async def test_the_key_check_written_on_first_start_refuses_another_key_before_any_token(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, other = generate_key(), generate_key()
    oodaloo = await _started(_on(db_url, first))  # nothing stored yet but the key check
    await oodaloo.aclose()
    with pytest.raises(SettingsError, match="TOKEN_ENCRYPTION_KEY"):
        await _started(_on(db_url, other))

    # Rotated: the check moves to the newest key like every other secret.
    oodaloo = await _started(_on(db_url, f"{other},{first}"))
    try:
        assert await ops.rotate_keys(oodaloo) == 0
    finally:
        await oodaloo.aclose()
    assert "key check: 1 re-encrypted" in capsys.readouterr().out
    oodaloo = await _started(_on(db_url, other))
    await oodaloo.aclose()
    with pytest.raises(SettingsError, match="TOKEN_ENCRYPTION_KEY"):
        await _started(_on(db_url, first))


async def test_the_cli_says_what_to_do_about_a_wrong_key_instead_of_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}"
    oodaloo = await _started(_on(database, generate_key()))
    await oodaloo.aclose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("TOKEN_ENCRYPTION_KEY", generate_key())
    # The command runs its own event loop: off this test's loop.
    code = await asyncio.to_thread(main, ["rotate-keys"])
    assert code == 2
    assert "TOKEN_ENCRYPTION_KEY does not open" in capsys.readouterr().err


async def test_long_slack_tokens_still_fit_once_encrypted(db_url: str) -> None:
    refresh = "xoxe-1-" + "A1b2C3d4" * 20  # a refresh token, as Slack's token rotation gives
    oodaloo = await _started(_on(db_url, generate_key()))
    try:
        store = _slack_store(oodaloo)
        await store.async_save(
            Installation(app_id="A0", team_id="T0", user_id="U0", bot_token=SLACK_TOKEN,
                         bot_refresh_token=refresh, user_token="xoxp-" + "9" * 90,
                         bot_id="B0", bot_user_id="UB0", installed_at=MOMENT.timestamp())
        )
        found = await store.async_find_installation(enterprise_id=None, team_id="T0")
        assert found is not None and found.bot_refresh_token == refresh
    finally:
        await oodaloo.aclose()
