"""Tables the Slack side of Oodaloo keeps: the messages it posted and the digests it sent.

`SlackMessage` keeps the blocks of every message the bot posted, so a click can update its own line
of the message in place (Slack does not give an app its message back without extra scopes), one
update at a time. `DigestRun` records each weekly digest: which week it was for (one run per business
and scheduled time, so a digest is never posted twice), where it went, the figures next week's
digest compares against, and its attempts: how many, when the next may start (a failed one after a
wait, an abandoned one once its lease is over), or that it was given up and why.

The OAuth tables (Slack installations and states, QuickBooks connect states) belong to slack_sdk's
SQLAlchemy stores; migration 0003 creates them from the stores' own table definitions.

`ChartImage` keeps each runway chart drawn, so the process that posts a digest draws its chart and
any web process serves it to Slack without drawing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync import NAMING_CONVENTION, DecimalJSON, UTCDateTime

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

#: Table names of slack_sdk's stores, as migration 0003 creates them.
SLACK_BOTS_TABLE = "slack_bots"
SLACK_INSTALLATIONS_TABLE = "slack_installations"
SLACK_OAUTH_STATES_TABLE = "slack_oauth_states"
QBO_OAUTH_STATES_TABLE = "qbo_oauth_states"
#: The columns of slack_sdk's tables holding tokens (encrypted, so Text: migration 0008).
SLACK_TOKEN_COLUMNS = {
    SLACK_INSTALLATIONS_TABLE: ("bot_token", "bot_refresh_token", "user_token", "user_refresh_token"),
    SLACK_BOTS_TABLE: ("bot_token", "bot_refresh_token"),
}


def slack_store_metadata() -> MetaData:
    """The tables of slack_sdk's SQLAlchemy stores, as the stores define them."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    metadata = MetaData()
    SQLAlchemyInstallationStore.build_bots_table(metadata, SLACK_BOTS_TABLE)
    SQLAlchemyInstallationStore.build_installations_table(metadata, SLACK_INSTALLATIONS_TABLE)
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, SLACK_OAUTH_STATES_TABLE)
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, QBO_OAUTH_STATES_TABLE)
    # Tokens are stored encrypted (bot.slack.installations), longer than slack_sdk's VARCHAR(200):
    # migration 0008 makes these columns Text.
    for table, columns in SLACK_TOKEN_COLUMNS.items():
        for column in columns:
            metadata.tables[table].c[column].type = Text()
    return metadata


class BotBase(DeclarativeBase):
    """Declarative base of the bot's own tables (never shared with sync's or runway's metadata)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class SlackMessage(BotBase):
    __tablename__ = "slack_messages"
    __table_args__ = (
        UniqueConstraint("channel_id", "ts"),
        Index("ix_slack_messages_business", "business_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(String(64))
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    #: "digest", "notice", "summary": what the message is, for logs and the demo page.
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    blocks: Mapped[list[dict[str, Any]]] = mapped_column(DecimalJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DigestRun(BotBase):
    __tablename__ = "digest_runs"
    __table_args__ = (UniqueConstraint("business_id", "scheduled_for"),)

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(String(64))
    #: The instant the digest was due (the scheduler's fire time, or the moment it was asked for).
    scheduled_for: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    emailed_to: Mapped[list[str]] = mapped_column(DecimalJSON, default=list)
    #: `WeeklyFigures` of this digest, as plain JSON, for next week's trend.
    figures: Mapped[dict[str, Any] | None] = mapped_column(DecimalJSON)
    #: Why the last attempt did not deliver everywhere (None once it did).
    error: Mapped[str | None] = mapped_column(Text)
    #: Attempts started so far; the attempt under way is identified by this number.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: When another attempt may start: the attempt under way's lease running out, or the wait
    #: after a failed one. None: nothing is left to do (delivered, or given up).
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When Oodaloo stopped trying (`error` says why); None while it is still trying or done.
    given_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ChartImage(BotBase):
    """A runway chart as drawn (`bot.chart`), by the fingerprint of its figures: drawn once by the
    process that posts the message showing it, served to Slack by any `oodaloo serve`."""

    __tablename__ = "chart_images"
    __table_args__ = (Index("ix_chart_images_drawn_at", "drawn_at"),)

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    business_id: Mapped[str] = mapped_column(String(64))
    png: Mapped[bytes] = mapped_column(LargeBinary)
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeyCheck(BotBase):
    """A small value encrypted with TOKEN_ENCRYPTION_KEY on first start: each start decrypts it,
    so a key that would not open the stored tokens is refused before anything is read or written
    (see `bot.rotation.check_token_keys`). `oodaloo rotate-keys` re-encrypts it with the rest."""

    __tablename__ = "key_checks"

    #: What the key encrypts ("token": the QuickBooks and Slack tokens).
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
