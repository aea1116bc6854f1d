"""Slack bot: posted messages, weekly digest runs, Slack installations and OAuth states.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

`slack_bots`, `slack_installations` and `slack_oauth_states` are slack_sdk's SQLAlchemy stores' own
tables (multi-workspace install); `qbo_oauth_states` is the same state table, for QuickBooks'
connect flow. They are built from the stores' table definitions so they match what the stores query.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_STORE_TABLES = ("slack_bots", "slack_installations", "slack_oauth_states", "qbo_oauth_states")


def _store_metadata() -> sa.MetaData:
    metadata = sa.MetaData()
    SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots")
    SQLAlchemyInstallationStore.build_installations_table(metadata, "slack_installations")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "slack_oauth_states")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "qbo_oauth_states")
    return metadata


def upgrade() -> None:
    op.create_table(
        "slack_messages",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("ts", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_messages")),
        sa.UniqueConstraint("channel_id", "ts", name=op.f("uq_slack_messages_channel_id")),
    )
    op.create_index(
        "ix_slack_messages_business", "slack_messages", ["business_id", "created_at"]
    )
    op.create_table(
        "digest_runs",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("scheduled_for", TIMESTAMP, nullable=False),
        sa.Column("started_at", TIMESTAMP, nullable=False),
        sa.Column("posted_at", TIMESTAMP, nullable=True),
        sa.Column("slack_channel_id", sa.String(length=32), nullable=True),
        sa.Column("slack_ts", sa.String(length=32), nullable=True),
        sa.Column("emailed_to", sa.Text(), nullable=False),
        sa.Column("figures", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digest_runs")),
        sa.UniqueConstraint(
            "business_id", "scheduled_for", name=op.f("uq_digest_runs_business_id")
        ),
    )
    _store_metadata().create_all(op.get_bind())


def downgrade() -> None:
    metadata = _store_metadata()
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[name] for name in _STORE_TABLES])
    op.drop_table("digest_runs")
    op.drop_index("ix_slack_messages_business", table_name="slack_messages")
    op.drop_table("slack_messages")
