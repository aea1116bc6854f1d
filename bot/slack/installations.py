"""Slack installations kept with their tokens encrypted (multi-workspace mode).

slack_sdk's SQLAlchemy store writes bot and user tokens (and refresh tokens) as they are; a bot token
answers for its workspace until it is revoked, so Oodaloo encrypts them with the same cipher as the
QuickBooks tokens (TOKEN_ENCRYPTION_KEY) before the store saves them, and decrypts what it finds.
Rows written before encryption (a token in plain text, `xox…`) are still read, and are encrypted by
`oodaloo rotate-keys` or the next install.
"""

from __future__ import annotations

import copy
from logging import Logger
from typing import TypeVar

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import AsyncSQLAlchemyInstallationStore
from sqlalchemy.ext.asyncio import AsyncEngine

from runway.crypto import TokenCipher

#: The token attributes of slack_sdk's Installation and Bot that are secrets.
TOKEN_FIELDS = ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token")
#: How a Slack token in plain text starts (a Fernet ciphertext starts with "gAAAA").
PLAIN_TOKEN_PREFIX = "xox"

Stored = TypeVar("Stored", Installation, Bot)


def is_plain_token(value: str) -> bool:
    return value.startswith(PLAIN_TOKEN_PREFIX)


class EncryptedInstallationStore(AsyncInstallationStore):
    """slack_sdk's AsyncSQLAlchemyInstallationStore with every token encrypted at rest."""

    def __init__(
        self,
        cipher: TokenCipher,
        *,
        client_id: str,
        engine: AsyncEngine,
        bots_table_name: str,
        installations_table_name: str,
    ) -> None:
        self.cipher = cipher
        self.inner = AsyncSQLAlchemyInstallationStore(
            client_id=client_id,
            engine=engine,
            bots_table_name=bots_table_name,
            installations_table_name=installations_table_name,
        )

    @property
    def logger(self) -> Logger:
        return self.inner.logger

    def _encrypted(self, stored: Stored) -> Stored:
        sealed = copy.copy(stored)
        for name in TOKEN_FIELDS:
            value = getattr(sealed, name, None)
            if value:
                setattr(sealed, name, self.cipher.encrypt(value))
        return sealed

    def _decrypted(self, stored: Stored | None) -> Stored | None:
        if stored is None:
            return None
        for name in TOKEN_FIELDS:
            value = getattr(stored, name, None)
            if value and not is_plain_token(value):
                setattr(stored, name, self.cipher.decrypt(value))
        return stored

    async def async_save(self, installation: Installation) -> None:
        await self.inner.async_save(self._encrypted(installation))

    async def async_save_bot(self, bot: Bot) -> None:
        await self.inner.async_save_bot(self._encrypted(bot))

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        found = await self.inner.async_find_bot(
            enterprise_id=enterprise_id, team_id=team_id, is_enterprise_install=is_enterprise_install
        )
        return self._decrypted(found)

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        found = await self.inner.async_find_installation(
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )
        return self._decrypted(found)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await self.inner.async_delete_installation(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id
        )

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.inner.async_delete_all(enterprise_id=enterprise_id, team_id=team_id)


__all__ = ["TOKEN_FIELDS", "EncryptedInstallationStore", "is_plain_token"]
