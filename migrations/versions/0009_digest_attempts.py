"""A weekly digest that fails is tried again: its run counts attempts, says when the next may start
(after a wait, or once an abandoned attempt's lease is over), and when it was given up.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Runs recorded before this revision were one attempt each and are not tried again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def digest_run_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_at", TIMESTAMP, nullable=True),
        sa.Column("given_up_at", TIMESTAMP, nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("digest_runs") as batch:
        for column in digest_run_columns():
            batch.add_column(column)
    op.execute("UPDATE digest_runs SET attempts = 1")


def downgrade() -> None:
    with op.batch_alter_table("digest_runs") as batch:
        for column in reversed(digest_run_columns()):
            batch.drop_column(column.name)
