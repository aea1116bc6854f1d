"""`oodaloo rotate-keys`: every stored secret re-encrypted under the newest TOKEN_ENCRYPTION_KEY.

After putting a new key in front of the ring ("NEW,OLD"), this rewrites the QuickBooks tokens, the
Slack tokens and the key check with NEW, so OLD can then be dropped from the ring. Each row is
rewritten only if it still holds what was read (compare and set): a token refreshed meanwhile was
written under the newest key already and is left alone. Running processes may keep running.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Table, and_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.models import SLACK_BOTS_TABLE, SLACK_INSTALLATIONS_TABLE, slack_store_metadata
from bot.slack.installations import TOKEN_FIELDS, is_plain_token
from runway.crypto import TokenCipher, TokenDecryptionError
from runway.models import QBOConnection


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
) -> None:
    columns = [name for name in columns if name in table.c]
    async with engine.connect() as connection:
        rows = (await connection.execute(select(table.c.id, *(table.c[n] for n in columns)))).all()
    done = 0
    for row in rows:
        old = {name: getattr(row, name) for name in columns if getattr(row, name)}
        if not old:
            continue
        try:
            new = {name: rewrite(value) for name, value in old.items()}
        except TokenDecryptionError:
            rotated.unreadable.append(f"{what} row {row.id}")
            continue
        unchanged = and_(table.c.id == row.id, *(table.c[name] == value for name, value in old.items()))
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

    slack_tables = slack_store_metadata().tables
    for name, what in ((SLACK_INSTALLATIONS_TABLE, "Slack installations"), (SLACK_BOTS_TABLE, "Slack bots")):
        await _rotate_table(engine, slack_tables[name], list(TOKEN_FIELDS), slack_token, what, rotated)
    return rotated


__all__ = ["Rotated", "rotate_stored_secrets"]
