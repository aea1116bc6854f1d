"""Open bills and invoices are summed and listed from an index: the digest counts and sums the
plain ones (home currency, no approval, payment or snooze) in SQL and reads only the rows it
shows, so each one's index entry holds what those reads filter, group and sort by.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

The index replaces the one on (business_id, balance, due_date), whose columns it starts with.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BILL_COLUMNS = [
    "business_id",
    "balance",
    "due_date",
    "txn_date",
    "total_amount",
    "qbo_id",
    "currency",
    "exchange_rate",
    "approved_by",
    "second_approved_by",
    "payment_state",
    "snoozed_until",
    "deleted_at",
]
INVOICE_COLUMNS = [
    "business_id",
    "balance",
    "due_date",
    "txn_date",
    "customer_qbo_id",
    "qbo_id",
    "currency",
    "exchange_rate",
    "snoozed_until",
    "deleted_at",
]


def upgrade() -> None:
    op.create_index("ix_bills_open", "bills", BILL_COLUMNS)
    op.drop_index("ix_bills_business_due", table_name="bills")
    op.create_index("ix_invoices_open", "invoices", INVOICE_COLUMNS)
    op.drop_index("ix_invoices_business_due", table_name="invoices")


def downgrade() -> None:
    op.create_index("ix_invoices_business_due", "invoices", ["business_id", "balance", "due_date"])
    op.drop_index("ix_invoices_open", table_name="invoices")
    op.create_index("ix_bills_business_due", "bills", ["business_id", "balance", "due_date"])
    op.drop_index("ix_bills_open", table_name="bills")
