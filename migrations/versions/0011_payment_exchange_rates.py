"""A payment's own exchange rate: on the bill Oodaloo paid (the rate its payment was sent with, or
the one QuickBooks reports for it) and on each mirrored bill payment, so what a foreign bill cost
in the home currency stays what it was when QuickBooks' rate moves on.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Bill payments already mirrored get their rate from the copy of QuickBooks' object each row keeps;
rates are kept as exact decimal text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RATE = sa.String(length=40)


def upgrade() -> None:
    with op.batch_alter_table("bills") as batch:
        batch.add_column(sa.Column("payment_exchange_rate", RATE, nullable=True))
    with op.batch_alter_table("bill_payments") as batch:
        batch.add_column(sa.Column("exchange_rate", RATE, nullable=True))
    # From the copy of QuickBooks' object each row keeps (JSON text), in SQL: migrations also run
    # offline, as a script.
    if op.get_context().dialect.name == "postgresql":
        rate = "CAST(raw AS json) ->> 'ExchangeRate'"
    else:
        rate = "CAST(json_extract(raw, '$.ExchangeRate') AS TEXT)"
    op.execute(
        f"UPDATE bill_payments SET exchange_rate = {rate} WHERE raw LIKE '%\"ExchangeRate\"%'"
    )


def downgrade() -> None:
    with op.batch_alter_table("bill_payments") as batch:
        batch.drop_column("exchange_rate")
    with op.batch_alter_table("bills") as batch:
        batch.drop_column("payment_exchange_rate")
