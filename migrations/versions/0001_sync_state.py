"""Sync state: the QBO action ledger and sync timing.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Column types are spelled out here rather than imported from sync.db so this revision keeps
creating exactly these tables whatever the application's types become later:
money is NUMERIC(18, 2) on PostgreSQL and whole cents (BIGINT) on SQLite, timestamps are
timestamptz on PostgreSQL and UTC text on SQLite, JSON results are Decimal-exact text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 2).with_variant(sa.BigInteger(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "qbo_actions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("realm_id", sa.String(length=64), nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=50), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("target_version", sa.String(length=32), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("qbo_object_id", sa.String(length=64), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'in_flight', 'succeeded', 'failed', 'unknown', 'needs_human')",
            name=op.f("ck_qbo_actions_state"),
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_qbo_actions_attempts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbo_actions")),
        sa.UniqueConstraint("key", name=op.f("uq_qbo_actions_key")),
    )
    op.create_index("ix_qbo_actions_business_updated", "qbo_actions", ["business_id", "updated_at"])
    op.create_index("ix_qbo_actions_realm_state", "qbo_actions", ["realm_id", "state"])
    op.create_index("ix_qbo_actions_state_lease", "qbo_actions", ["state", "lease_expires_at"])

    op.create_table(
        "sync_timing",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("last_attempt_at", TIMESTAMP, nullable=True),
        sa.Column("last_success_at", TIMESTAMP, nullable=True),
        sa.Column("last_failure_at", TIMESTAMP, nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_strategy", sa.String(length=16), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("business_id", "platform", name=op.f("pk_sync_timing")),
    )
    op.create_table(
        "sync_user_activity",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("last_active_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_sync_user_activity")),
    )


def downgrade() -> None:
    op.drop_table("sync_user_activity")
    op.drop_table("sync_timing")
    op.drop_index("ix_qbo_actions_state_lease", table_name="qbo_actions")
    op.drop_index("ix_qbo_actions_realm_state", table_name="qbo_actions")
    op.drop_index("ix_qbo_actions_business_updated", table_name="qbo_actions")
    op.drop_table("qbo_actions")
