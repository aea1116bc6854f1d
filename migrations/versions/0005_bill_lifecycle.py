"""One truth for every bill: the amount each approval was given for, the payment's lifecycle on the
bill itself, and the people behind Slack ids and email addresses.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Approvals given before this revision were given for the balance the bill had then; they are
carried over as approvals of the bill's current balance.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 2).with_variant(sa.BigInteger(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

def bill_columns() -> tuple[sa.Column[object], ...]:
    return (
        sa.Column("approved_amount", MONEY, nullable=True),
        sa.Column("second_approved_amount", MONEY, nullable=True),
        sa.Column("payment_state", sa.String(length=20), nullable=True),
        sa.Column("payment_amount", MONEY, nullable=True),
        sa.Column("payment_by", sa.String(length=320), nullable=True),
        sa.Column("payment_at", TIMESTAMP, nullable=True),
        sa.Column("payment_account_name", sa.Text(), nullable=True),
        sa.Column("payment_note", sa.Text(), nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        for column in bill_columns():
            batch.add_column(column)
    op.execute("UPDATE bills SET approved_amount = balance WHERE approved_by IS NOT NULL")
    op.execute(
        "UPDATE bills SET second_approved_amount = balance WHERE second_approved_by IS NOT NULL"
    )
    op.create_table(
        "people",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("slack_user_id", sa.String(length=32), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_people_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_people")),
        sa.UniqueConstraint("business_id", "slack_user_id", name="uq_people_business_slack"),
        sa.UniqueConstraint("business_id", "email", name="uq_people_business_email"),
    )


def downgrade() -> None:
    op.drop_table("people")
    with op.batch_alter_table("bills") as batch:
        for column in reversed(bill_columns()):
            batch.drop_column(column.name)
