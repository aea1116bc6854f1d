"""Everything that moves cash, and currencies: the company's preferences, the transactions read
only through their cash lines (sales and refund receipts, transfers, journal entries, credits,
credit-card payments), the cash lines of every mirrored transaction, QuickBooks' latest exchange
rate per foreign currency, and each bill's and invoice's own exchange rate.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Cash lines are kept from this revision on: the watermarks of the payments, purchases and deposits
already mirrored are removed, so the next sync pages them once more and fills in their lines
(their rows, unchanged, are not rewritten). Exchange rates are kept as exact decimal text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 2).with_variant(sa.BigInteger(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RATE = sa.String(length=40)


def _mirrored(table: str, *columns: sa.Column[object], unique: tuple[str, ...]) -> None:
    """A mirrored QuickBooks object's table: the columns every mirrored row has, then `columns`."""
    op.create_table(
        table,
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        *columns,
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f(f"fk_{table}_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint(*unique, name=f"uq_{table}_business_qbo_id"),
    )


def upgrade() -> None:
    _mirrored(
        "qbo_preferences",
        sa.Column("home_currency", sa.String(length=3), nullable=True),
        sa.Column("multicurrency_enabled", sa.Boolean(), nullable=False),
        unique=("business_id", "qbo_id"),
    )
    _mirrored(
        "qbo_transactions",
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("doc_number", sa.String(length=64), nullable=True),
        sa.Column("total_amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("exchange_rate", RATE, nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        unique=("business_id", "entity_type", "qbo_id"),
    )
    op.create_index(
        "ix_qbo_transactions_business_date", "qbo_transactions", ["business_id", "txn_date"]
    )
    op.create_table(
        "cash_lines",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("txn_type", sa.String(length=32), nullable=False),
        sa.Column("txn_id", sa.String(length=32), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("counter_account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("home_amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("exchange_rate", RATE, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_cash_lines_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_lines")),
        sa.UniqueConstraint("business_id", "txn_type", "txn_id", "line", name="uq_cash_lines_line"),
    )
    op.create_index("ix_cash_lines_business_date", "cash_lines", ["business_id", "txn_date"])
    op.create_table(
        "exchange_rates",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate", RATE, nullable=False),
        sa.Column("as_of_date", sa.Date(), nullable=False),
        sa.Column("fetched_at", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_exchange_rates_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("business_id", "currency", name=op.f("pk_exchange_rates")),
    )
    for table in ("bills", "invoices"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("exchange_rate", RATE, nullable=True))
    op.execute(
        "DELETE FROM sync_watermarks "
        "WHERE entity_type IN ('BillPayment', 'Payment', 'Purchase', 'Deposit')"
    )


def downgrade() -> None:
    for table in ("invoices", "bills"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("exchange_rate")
    op.drop_table("exchange_rates")
    op.drop_index("ix_cash_lines_business_date", table_name="cash_lines")
    op.drop_table("cash_lines")
    op.drop_index("ix_qbo_transactions_business_date", table_name="qbo_transactions")
    op.drop_table("qbo_transactions")
    op.drop_table("qbo_preferences")
