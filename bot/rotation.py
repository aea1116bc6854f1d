"""The stored secrets and TOKEN_ENCRYPTION_KEY: checked at start, rotated by `oodaloo rotate-keys`.

At start (`check_token_keys`) the key check (a small value encrypted with the key on first start,
`KeyCheck`) and the latest stored tokens are decrypted with the configured ring: if the check, or
every token tried, will not open, the key was changed without keeping the old one, and Oodaloo
refuses to start rather than fail at the first QuickBooks call.

`oodaloo rotate-keys` re-encrypts every stored secret under the newest key.

After putting a new key in front of the ring ("NEW,OLD"), this rewrites the QuickBooks tokens, the
Slack tokens and the key check with NEW, so OLD can then be dropped from the ring. Each row is
rewritten only if it still holds what was read (compare and set): a token refreshed meanwhile was
written under the newest key already and is left alone. Running processes may keep running.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Table, and_, desc, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.keys import GENERATE_TOKEN_KEY
from bot.models import SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE, KeyCheck, slack_store_metadata
from bot.settings import SettingsError
from bot.slack.installations import TOKEN_FIELDS, is_plain_token
from runway.crypto import TokenCipher, TokenDecryptionError
from runway.models import QBOConnection

logger = logging.getLogger(__name__)

#: How many of the latest stored tokens of each kind the start-up check tries.
CHECKED_AT_START = 20


#: The key check's name and the value it encrypts.
TOKEN_KEY_CHECK = "token"
KEY_CHECK_VALUE = "Oodaloo key check"


def _wrong_key(what: str) -> SettingsError:
    return SettingsError(
        f"TOKEN_ENCRYPTION_KEY does not open {what}: it was changed without keeping the key they "
        "were written with. Put that key back, after the new one if you are rotating "
        "(TOKEN_ENCRYPTION_KEY=NEW,OLD), start again and run `oodaloo rotate-keys`; only then drop "
        f"OLD. (A new key is made with `{GENERATE_TOKEN_KEY}`.)"
    )


async def _check_key_check(engine: AsyncEngine, cipher: TokenCipher) -> None:
    """Decrypts the key check, or writes it on first start."""
    table = KeyCheck.__table__
    query = select(table.c.ciphertext).where(table.c.name == TOKEN_KEY_CHECK)
    async with engine.connect() as connection:
        stored = await connection.scalar(query)
    if stored is None:
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    insert(KeyCheck).values(
                        name=TOKEN_KEY_CHECK,
                        ciphertext=cipher.encrypt(KEY_CHECK_VALUE),
                        created_at=datetime.now(UTC),
                    )
                )
            return
        except IntegrityError:  # another process wrote it first: check theirs
            async with engine.connect() as connection:
                stored = await connection.scalar(query)
    try:
        if stored is not None and cipher.decrypt(stored) == KEY_CHECK_VALUE:
            return
    except TokenDecryptionError:
        pass
    raise _wrong_key("the key check stored in the database (written with the key of the first start)")


async def check_token_keys(engine: AsyncEngine, cipher: TokenCipher) -> None:
    """SettingsError when the configured keys do not open the key check, or open none of the
    stored tokens tried."""
    await _check_key_check(engine, cipher)
    connections = QBOConnection.__table__
    bots = slack_store_metadata().tables[SLACK_BOTS_TABLE]
    async with engine.connect() as connection:
        stored = list(
            (
                await connection.execute(
                    select(connections.c.refresh_token_encrypted)
                    .order_by(desc(connections.c.updated_at))
                    .limit(CHECKED_AT_START)
                )
            ).scalars()
        )
        slack = (
            await connection.execute(
                select(bots.c.bot_token)
                .where(bots.c.bot_token.is_not(None))
                .order_by(desc(bots.c.installed_at))
                .limit(CHECKED_AT_START)
            )
        ).scalars()
        stored += [token for token in slack if token and not is_plain_token(token)]
    unreadable = 0
    for ciphertext in stored:
        try:
            cipher.decrypt(ciphertext)
        except TokenDecryptionError:
            unreadable += 1
    if stored and unreadable == len(stored):
        raise _wrong_key(f"the tokens stored in the database (none of the {len(stored)} tried)")
    if unreadable:
        logger.warning(
            "%d of the %d latest stored tokens cannot be decrypted with TOKEN_ENCRYPTION_KEY: "
            "those businesses or workspaces must reconnect (or their key be put back in the ring)",
            unreadable,
            len(stored),
        )


@dataclass
class Rotated:
    """How many rows of each kind were re-encrypted, and where a secret could not be read."""

    counts: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


async def _rotate_table(
    engine: AsyncEngine,
    table: Table,
    columns: list[str],
    rewrite: Callable[[str], str],
    what: str,
    rotated: Rotated,
    *,
    key: str = "id",
) -> None:
    columns = [name for name in columns if name in table.c]
    async with engine.connect() as connection:
        rows = (await connection.execute(select(table.c[key], *(table.c[n] for n in columns)))).all()
    done = 0
    for row in rows:
        old = {name: getattr(row, name) for name in columns if getattr(row, name)}
        if not old:
            continue
        try:
            new = {name: rewrite(value) for name, value in old.items()}
        except TokenDecryptionError:
            rotated.unreadable.append(f"{what} row {row[0]}")
            continue
        unchanged = and_(table.c[key] == row[0], *(table.c[name] == value for name, value in old.items()))
        async with engine.begin() as connection:
            result = await connection.execute(update(table).where(unchanged).values(**new))
        done += result.rowcount
    rotated.counts[what] = done


async def rotate_stored_secrets(engine: AsyncEngine, cipher: TokenCipher) -> Rotated:
    rotated = Rotated()
    await _rotate_table(
        engine,
        QBOConnection.__table__,  # type: ignore[arg-type]
        ["access_token_encrypted", "refresh_token_encrypted"],
        cipher.rotate,
        "QuickBooks connections",
        rotated,
    )

    def slack_token(value: str) -> str:
        # A token saved in plain text before Slack tokens were encrypted is encrypted now.
        return cipher.encrypt(value) if is_plain_token(value) else cipher.rotate(value)

    await _rotate_table(
        engine,
        KeyCheck.__table__,  # type: ignore[arg-type]
        ["ciphertext"],
        cipher.rotate,
        "key check",
        rotated,
        key="name",
    )
    slack_tables = slack_store_metadata().tables
    for name, what in ((SLACK_INSTALLATIONS_TABLE, "Slack installations"), (SLACK_BOTS_TABLE, "Slack bots")):
        await _rotate_table(engine, slack_tables[name], list(TOKEN_FIELDS), slack_token, what, rotated)
    return rotated


__all__ = ["Rotated", "check_token_keys", "rotate_stored_secrets"]
