"""Encryption at rest for QuickBooks OAuth tokens (Fernet: AES-128-CBC with an HMAC-SHA256 tag).

A refresh token lets whoever holds it read and write a business's books for 100 days, so it never
sits in the database in plain text. The key comes from the caller (the application's settings,
e.g. `OODALOO_TOKEN_KEY`), never from the database. Several keys can be given to rotate them:
the first encrypts, every one of them decrypts, so tokens written under an older key stay readable
until they are next rotated by QuickBooks (which happens at least every day of use).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class TokenDecryptionError(Exception):
    """Stored ciphertext could not be decrypted with any configured key."""


def generate_key() -> str:
    """A fresh random Fernet key (URL-safe base64 text) for the application's settings."""
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str | bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            "the token encryption key is not a Fernet key (32 bytes, URL-safe base64); "
            "create one with `python -c 'from runway.crypto import generate_key; "
            "print(generate_key())'`"
        ) from exc


class TokenCipher:
    """Encrypts and decrypts secrets with the configured key(s); the first key encrypts."""

    def __init__(self, keys: str | bytes | Sequence[str | bytes]) -> None:
        listed = [keys] if isinstance(keys, str | bytes) else list(keys)
        if not listed:
            raise ValueError("TokenCipher needs at least one key")
        self._cipher = MultiFernet([_fernet(key) for key in listed])

    def encrypt(self, secret: str) -> str:
        if not secret:
            raise ValueError("refusing to encrypt an empty secret: a token is expected")
        return self._cipher.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._cipher.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError) as exc:
            raise TokenDecryptionError(
                "a stored QuickBooks token could not be decrypted with the configured key(s): "
                "the key was changed without keeping the old one in the list, or the row was "
                "altered; restore the previous key (as a second key) or reconnect QuickBooks"
            ) from exc

    def rotate(self, ciphertext: str) -> str:
        """The same secret re-encrypted under the first (newest) key."""
        try:
            return self._cipher.rotate(ciphertext.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise TokenDecryptionError(
                "a stored QuickBooks token could not be re-encrypted: no configured key opens it"
            ) from exc


__all__ = ["TokenCipher", "TokenDecryptionError", "generate_key"]
