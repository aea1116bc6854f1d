"""Runway domain: businesses, their QuickBooks connection, the mirror of their books, audit.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Column types are spelled out here, as in 0001, so this revision keeps creating exactly these tables
whatever the application's types become later: money is NUMERIC(18, 2) on PostgreSQL and whole
cents (BIGINT) on SQLite, timestamps are timestamptz on PostgreSQL and UTC text on SQLite, JSON
(QuickBooks' raw objects, lists of ids) is Decimal-exact text.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 2).with_variant(sa.BigInteger(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "businesses",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("realm_id", sa.String(length=32), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("home_currency", sa.String(length=3), nullable=False),
        sa.Column("digest_weekday", sa.Integer(), nullable=False),
        sa.Column("digest_local_time", sa.Time(), nullable=False),
        sa.Column("approvers", sa.Text(), nullable=False),
        sa.Column("approval_threshold", MONEY, nullable=False),
        sa.Column("min_cash_buffer", MONEY, nullable=False),
        sa.Column("slack_team_id", sa.String(length=32), nullable=True),
        sa.Column("slack_channel_id", sa.String(length=32), nullable=True),
        sa.Column("email_recipients", sa.Text(), nullable=False),
        sa.Column("payment_bank_account_id", sa.String(length=32), nullable=True),
        sa.Column("reminder_interval_days", sa.Integer(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "approval_threshold >= 0", name=op.f("ck_businesses_approval_threshold")
        ),
        sa.CheckConstraint(
            "digest_weekday BETWEEN 0 AND 6", name=op.f("ck_businesses_digest_weekday")
        ),
        sa.CheckConstraint("min_cash_buffer >= 0", name=op.f("ck_businesses_min_cash_buffer")),
        sa.CheckConstraint(
            "reminder_interval_days > 0", name=op.f("ck_businesses_reminder_interval_days")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_businesses")),
        sa.UniqueConstraint("realm_id", name=op.f("uq_businesses_realm_id")),
    )
    op.create_index("ix_businesses_slack", "businesses", ["slack_team_id", "slack_channel_id"])

    op.create_table(
        "accounts",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fully_qualified_name", sa.Text(), nullable=True),
        sa.Column("account_type", sa.String(length=64), nullable=True),
        sa.Column("account_sub_type", sa.String(length=64), nullable=True),
        sa.Column("classification", sa.String(length=32), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("current_balance", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("balance_as_of", TIMESTAMP, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_accounts_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_accounts_business_qbo_id"),
    )
    op.create_index("ix_accounts_business_type", "accounts", ["business_id", "account_type"])

    op.create_table(
        "audit_entries",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("action_key", sa.String(length=50), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("requested_at", TIMESTAMP, nullable=False),
        sa.Column("completed_at", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_audit_entries_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    op.create_index("ix_audit_entries_action_key", "audit_entries", ["action_key"])
    op.create_index(
        "ix_audit_entries_business_time", "audit_entries", ["business_id", "requested_at"]
    )

    op.create_table(
        "bill_payments",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("vendor_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("vendor_name", sa.Text(), nullable=True),
        sa.Column("pay_type", sa.String(length=16), nullable=True),
        sa.Column("paid_from_account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.Column("bill_qbo_ids", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_bill_payments_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bill_payments")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_bill_payments_business_qbo_id"),
    )
    op.create_index("ix_bill_payments_business_date", "bill_payments", ["business_id", "txn_date"])

    op.create_table(
        "bills",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("doc_number", sa.String(length=64), nullable=True),
        sa.Column("vendor_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("vendor_name", sa.Text(), nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_at", TIMESTAMP, nullable=True),
        sa.Column("second_approved_by", sa.String(length=64), nullable=True),
        sa.Column("second_approved_at", TIMESTAMP, nullable=True),
        sa.Column("snoozed_until", TIMESTAMP, nullable=True),
        sa.Column("payment_action_key", sa.String(length=50), nullable=True),
        sa.Column("payment_requested_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'partially_paid', 'paid')", name=op.f("ck_bills_status")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_bills_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bills")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_bills_business_qbo_id"),
    )
    op.create_index("ix_bills_business_due", "bills", ["business_id", "balance", "due_date"])

    op.create_table(
        "customer_payments",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("customer_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("deposit_to_account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("unapplied_amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.Column("invoice_qbo_ids", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_customer_payments_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_payments")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_customer_payments_business_qbo_id"),
    )
    op.create_index(
        "ix_customer_payments_business_date", "customer_payments", ["business_id", "txn_date"]
    )

    op.create_table(
        "customers",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("balance", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_customers_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_customers_business_qbo_id"),
    )
    op.create_table(
        "deposits",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("deposit_to_account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_deposits_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deposits")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_deposits_business_qbo_id"),
    )
    op.create_index("ix_deposits_business_date", "deposits", ["business_id", "txn_date"])

    op.create_table(
        "drift_events",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("sentence", sa.Text(), nullable=False),
        sa.Column("first_seen", TIMESTAMP, nullable=False),
        sa.Column("last_seen", TIMESTAMP, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("resolved_at", TIMESTAMP, nullable=True),
        sa.CheckConstraint("count >= 1", name=op.f("ck_drift_events_count")),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_drift_events_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_events")),
    )
    op.create_index("ix_drift_events_business_open", "drift_events", ["business_id", "resolved_at"])
    op.create_index(
        "ix_drift_events_subject", "drift_events", ["business_id", "kind", "entity", "entity_id"]
    )

    op.create_table(
        "invoices",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("doc_number", sa.String(length=64), nullable=True),
        sa.Column("customer_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("customer_name", sa.Text(), nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("bill_email", sa.Text(), nullable=True),
        sa.Column("email_status", sa.String(length=32), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("last_reminder_at", TIMESTAMP, nullable=True),
        sa.Column("last_reminder_by", sa.String(length=64), nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("snoozed_until", TIMESTAMP, nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'partially_paid', 'paid')", name=op.f("ck_invoices_status")
        ),
        sa.CheckConstraint("reminders_sent >= 0", name=op.f("ck_invoices_reminders_sent")),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_invoices_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_invoices_business_qbo_id"),
    )
    op.create_index("ix_invoices_business_due", "invoices", ["business_id", "balance", "due_date"])

    op.create_table(
        "purchases",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.Column("account_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("payment_type", sa.String(length=16), nullable=True),
        sa.Column("payee_qbo_id", sa.String(length=32), nullable=True),
        sa.Column("payee_name", sa.Text(), nullable=True),
        sa.Column("payee_type", sa.String(length=16), nullable=True),
        sa.Column("total_amount", MONEY, nullable=False),
        sa.Column("credit", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("private_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_purchases_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_purchases")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_purchases_business_qbo_id"),
    )
    op.create_index("ix_purchases_business_date", "purchases", ["business_id", "txn_date"])

    op.create_table(
        "qbo_company_info",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("legal_name", sa.Text(), nullable=True),
        sa.Column("country", sa.String(length=8), nullable=True),
        sa.Column("default_timezone", sa.String(length=64), nullable=True),
        sa.Column("fiscal_year_start_month", sa.String(length=16), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_qbo_company_info_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbo_company_info")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_qbo_company_info_business_qbo_id"),
    )
    op.create_table(
        "qbo_connections",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("realm_id", sa.String(length=32), nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=False),
        sa.Column("access_expires_at", TIMESTAMP, nullable=False),
        sa.Column("refresh_expires_at", TIMESTAMP, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("connected_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('connected', 'needs_reconnect')", name=op.f("ck_qbo_connections_status")
        ),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_qbo_connections_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_qbo_connections")),
        sa.UniqueConstraint("business_id", name=op.f("uq_qbo_connections_business_id")),
        sa.UniqueConstraint("realm_id", name=op.f("uq_qbo_connections_realm_id")),
    )
    op.create_table(
        "sync_watermarks",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("last_cdc_at", TIMESTAMP, nullable=True),
        sa.Column("last_full_sync_at", TIMESTAMP, nullable=True),
        sa.Column("as_of", TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_sync_watermarks_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("business_id", "entity_type", name=op.f("pk_sync_watermarks")),
    )
    op.create_table(
        "vendors",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("qbo_id", sa.String(length=32), nullable=False),
        sa.Column("sync_token", sa.String(length=16), nullable=False),
        sa.Column("qbo_created_at", TIMESTAMP, nullable=True),
        sa.Column("qbo_updated_at", TIMESTAMP, nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("synced_at", TIMESTAMP, nullable=False),
        sa.Column("deleted_at", TIMESTAMP, nullable=True),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("company_name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("balance", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_vendors_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
        sa.UniqueConstraint("business_id", "qbo_id", name="uq_vendors_business_qbo_id"),
    )


def downgrade() -> None:
    op.drop_table("vendors")
    op.drop_table("sync_watermarks")
    op.drop_table("qbo_connections")
    op.drop_table("qbo_company_info")
    op.drop_index("ix_purchases_business_date", table_name="purchases")
    op.drop_table("purchases")
    op.drop_index("ix_invoices_business_due", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_drift_events_subject", table_name="drift_events")
    op.drop_index("ix_drift_events_business_open", table_name="drift_events")
    op.drop_table("drift_events")
    op.drop_index("ix_deposits_business_date", table_name="deposits")
    op.drop_table("deposits")
    op.drop_table("customers")
    op.drop_index("ix_customer_payments_business_date", table_name="customer_payments")
    op.drop_table("customer_payments")
    op.drop_index("ix_bills_business_due", table_name="bills")
    op.drop_table("bills")
    op.drop_index("ix_bill_payments_business_date", table_name="bill_payments")
    op.drop_table("bill_payments")
    op.drop_index("ix_audit_entries_business_time", table_name="audit_entries")
    op.drop_index("ix_audit_entries_action_key", table_name="audit_entries")
    op.drop_table("audit_entries")
    op.drop_index("ix_accounts_business_type", table_name="accounts")
    op.drop_table("accounts")
    op.drop_index("ix_businesses_slack", table_name="businesses")
    op.drop_table("businesses")
