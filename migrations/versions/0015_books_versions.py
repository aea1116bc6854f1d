"""A version of each business's books, bumped in the same transaction as any write, so figures
read at one version are reused while it stands (`sync.books_versions`).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "books_versions",
        sa.Column("business_id", sa.String(64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_books_versions")),
    )


def downgrade() -> None:
    op.drop_table("books_versions")
