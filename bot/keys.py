"""The keys Oodaloo keeps secrets with, read from the settings.

- TOKEN_ENCRYPTION_KEY: Fernet key(s) encrypting the stored QuickBooks and Slack tokens.
- EMAIL_LINK_KEY: secret(s) signing the email's action and unsubscribe links.

Each is a key ring, comma-separated, newest first: the newest encrypts (signs), every key decrypts
(verifies), so a key is replaced by putting the new one in front and dropping the old one once
nothing needs it any more (`oodaloo rotate-keys` re-encrypts what is stored; a link key is kept
until the links signed with it no longer matter). On the embedded SQLite default each ring lives in
a key file beside the database, readable by its owner alone; a server database needs them set.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path

from bot.settings import Settings, SettingsError
from runway.crypto import generate_key

logger = logging.getLogger(__name__)

TOKEN_KEY_FILE = "token-encryption.key"
EMAIL_LINK_KEY_FILE = "email-link.key"
#: An email link key shorter than this is refused: HMAC is only as strong as its key.
MIN_LINK_KEY_CHARS = 32

GENERATE_TOKEN_KEY = (
    "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
)
GENERATE_LINK_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _ring(text: str) -> list[str]:
    return [key.strip() for key in text.split(",") if key.strip()]


def _key_file(settings: Settings, name: str, new_key: str, what: str) -> list[str] | None:
    """The ring kept in `name` beside the SQLite database (created on first use); None when the
    database is not the embedded SQLite one."""
    sqlite = settings.sqlite_path()
    if sqlite is None:
        return None
    key_file = Path(sqlite).expanduser().resolve().parent / name
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_text(new_key + "\n")
        os.chmod(key_file, 0o600)
        logger.info("created %s to %s", key_file, what)
    return _ring(key_file.read_text())


def token_keys(settings: Settings) -> list[str]:
    """TOKEN_ENCRYPTION_KEY's ring, newest first."""
    if settings.token_encryption_key:
        return _ring(settings.token_encryption_key)
    keys = _key_file(settings, TOKEN_KEY_FILE, generate_key(), "encrypt tokens at rest")
    if keys is None:
        raise SettingsError(
            "TOKEN_ENCRYPTION_KEY is not set. QuickBooks and Slack tokens are encrypted at rest; "
            f"generate a key with `{GENERATE_TOKEN_KEY}` and set TOKEN_ENCRYPTION_KEY (several keys, "
            "comma-separated, rotate: newest first)."
        )
    return keys


def email_link_keys(settings: Settings, token_keys: list[str]) -> tuple[bytes, ...]:
    """EMAIL_LINK_KEY's ring (newest first, the first signs), then the keys links were signed with
    before EMAIL_LINK_KEY existed (derived from each token key), which only verify: links in
    emails sent before the upgrade keep working."""
    if settings.email_link_key:
        keys = _ring(settings.email_link_key)
    else:
        found = _key_file(
            settings, EMAIL_LINK_KEY_FILE, secrets.token_urlsafe(32), "sign the email's links"
        )
        if found is None:
            raise SettingsError(
                "EMAIL_LINK_KEY is not set. The email's action and unsubscribe links are signed with "
                f"it; generate one with `{GENERATE_LINK_KEY}` and set EMAIL_LINK_KEY (several, "
                "comma-separated, rotate: newest first; keep an old one while its links matter)."
            )
        keys = found
    short = [key for key in keys if len(key) < MIN_LINK_KEY_CHARS]
    if not keys or short:
        raise SettingsError(
            f"EMAIL_LINK_KEY: each key must be at least {MIN_LINK_KEY_CHARS} random characters; "
            f"generate one with `{GENERATE_LINK_KEY}`."
        )
    legacy = [hashlib.sha256(b"oodaloo email links:" + key.encode()).digest() for key in token_keys]
    return (*(key.encode() for key in keys), *legacy)


__all__ = ["email_link_keys", "token_keys"]
