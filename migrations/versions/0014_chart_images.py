"""Runway charts are kept as drawn: the process that posts a digest draws its chart once, and any
`oodaloo serve` hands it to Slack without drawing it again.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sync import UTCDateTime

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chart_images",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("business_id", sa.String(64), nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("drawn_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_chart_images")),
    )
    op.create_index("ix_chart_images_drawn_at", "chart_images", ["drawn_at"])


def downgrade() -> None:
    op.drop_index("ix_chart_images_drawn_at", table_name="chart_images")
    op.drop_table("chart_images")
