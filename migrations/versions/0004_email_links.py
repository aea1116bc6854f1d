"""Email digest: the signed action links already used (the once-only guard of each link).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "email_link_uses",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("used_at", TIMESTAMP, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_email_link_uses")),
    )
    op.create_index("ix_email_link_uses_business", "email_link_uses", ["business_id", "used_at"])


def downgrade() -> None:
    op.drop_index("ix_email_link_uses_business", table_name="email_link_uses")
    op.drop_table("email_link_uses")
