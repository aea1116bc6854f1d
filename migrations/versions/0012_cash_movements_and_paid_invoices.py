"""Cash movements and paid invoices kept as rows: each mirrored transaction's cash movements, as
`runway.cash_flow.cash_movements` derives them from its cash lines and the accounts' types (and
their sums per day, class, kind, counter-account type and sign), and the invoices each customer
payment pays, so a snapshot reads sums and counts instead of every line.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

Each customer's typical lateness is kept too, worked out after each sync (until then, and
whenever a payment or an invoice was written since, a snapshot works it out from the rows).

Mirrors that already exist get the movements and paid invoices filled here, from their cash
lines and accounts (through the same Python definition the mirror uses) and from each payment's
list of invoices. Run offline (as a script, where nothing can be read), the cash lines and the
watermarks of the transactions that have them are removed instead, so the next sync pages those
transactions once more and writes their lines, movements and paid invoices afresh.
"""

import json
from collections import defaultdict
from collections.abc import Sequence
from decimal import Decimal

import sqlalchemy as sa
from alembic import context, op

from runway.cash_flow import AccountKind, CashLine
from runway.cash_lines import FLOWS
from runway.uow import CashMovementRepository
from sync import Money

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 2).with_variant(sa.BigInteger(), "sqlite")
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The tables as this revision reads and writes them (amounts through Money: whole cents on SQLite).
_accounts = sa.table(
    "accounts",
    sa.column("business_id", sa.String()),
    sa.column("qbo_id", sa.String()),
    sa.column("account_type", sa.String()),
    sa.column("account_sub_type", sa.String()),
    sa.column("deleted_at", sa.DateTime()),
)
_cash_lines = sa.table(
    "cash_lines",
    sa.column("id", sa.Integer()),
    sa.column("business_id", sa.String()),
    sa.column("txn_type", sa.String()),
    sa.column("txn_id", sa.String()),
    sa.column("line", sa.Integer()),
    sa.column("txn_date", sa.Date()),
    sa.column("account_qbo_id", sa.String()),
    sa.column("counter_account_qbo_id", sa.String()),
    sa.column("amount", Money()),
    sa.column("home_amount", Money()),
    sa.column("currency", sa.String()),
    sa.column("exchange_rate", sa.String()),
)
_cash_movements = sa.table(
    "cash_movements",
    sa.column("business_id", sa.String()),
    sa.column("txn_type", sa.String()),
    sa.column("txn_id", sa.String()),
    sa.column("seq", sa.Integer()),
    sa.column("txn_date", sa.Date()),
    sa.column("account_qbo_id", sa.String()),
    sa.column("flow", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("counter_account_type", sa.String()),
    sa.column("undeposited", sa.Boolean()),
    sa.column("amount", Money()),
    sa.column("currency", sa.String()),
    sa.column("currency_amount", Money()),
)
_days = sa.table(
    "cash_movement_days",
    *(
        sa.column(name)
        for name in (
            "business_id",
            "txn_date",
            "flow",
            "kind",
            "counter_account_type",
            "undeposited",
            "sign",
            "amount",
            "movements",
        )
    ),
)
_payments = sa.table(
    "customer_payments",
    sa.column("business_id", sa.String()),
    sa.column("qbo_id", sa.String()),
    sa.column("txn_date", sa.Date()),
    sa.column("invoice_qbo_ids", sa.Text()),
    sa.column("deleted_at", sa.DateTime()),
)
_links = sa.table(
    "paid_invoice_links",
    sa.column("business_id", sa.String()),
    sa.column("payment_qbo_id", sa.String()),
    sa.column("invoice_qbo_id", sa.String()),
    sa.column("txn_date", sa.Date()),
)


def _create_tables() -> None:
    op.create_table(
        "cash_movements",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("txn_type", sa.String(length=32), nullable=False),
        sa.Column("txn_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("txn_date", sa.Date(), nullable=False),
        sa.Column("account_qbo_id", sa.String(length=32), nullable=False),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("counter_account_type", sa.String(length=64), nullable=True),
        sa.Column("undeposited", sa.Boolean(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("currency_amount", MONEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_cash_movements_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cash_movements")),
        sa.UniqueConstraint(
            "business_id", "txn_type", "txn_id", "seq", name="uq_cash_movements_seq"
        ),
    )
    op.create_index(
        "ix_cash_movements_business_date", "cash_movements", ["business_id", "txn_date"]
    )
    op.create_table(
        "cash_movement_days",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("txn_date", sa.Date(), nullable=False),
        sa.Column("flow", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("counter_account_type", sa.String(length=64), nullable=False),
        sa.Column("undeposited", sa.Boolean(), nullable=False),
        sa.Column("sign", sa.Integer(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("movements", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_cash_movement_days_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "business_id",
            "txn_date",
            "flow",
            "kind",
            "counter_account_type",
            "undeposited",
            "sign",
            name=op.f("pk_cash_movement_days"),
        ),
    )
    op.create_table(
        "paid_invoice_links",
        sa.Column("id", ROW_ID, autoincrement=True, nullable=False),
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("payment_qbo_id", sa.String(length=32), nullable=False),
        sa.Column("invoice_qbo_id", sa.String(length=32), nullable=False),
        sa.Column("txn_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_paid_invoice_links_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paid_invoice_links")),
        sa.UniqueConstraint(
            "business_id", "payment_qbo_id", "invoice_qbo_id", name="uq_paid_invoice_links_link"
        ),
    )
    op.create_index(
        "ix_paid_invoice_links_business_date", "paid_invoice_links", ["business_id", "txn_date"]
    )
    op.create_table(
        "lateness_summaries",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_lateness_summaries_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("business_id", name=op.f("pk_lateness_summaries")),
    )
    op.create_table(
        "customer_lateness",
        sa.Column("business_id", sa.String(length=64), nullable=False),
        sa.Column("customer_qbo_id", sa.String(length=32), nullable=False),
        sa.Column("typical_days_late", sa.Integer(), nullable=False),
        sa.Column("paid_invoices", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["business_id"],
            ["businesses.id"],
            name=op.f("fk_customer_lateness_business_id_businesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "business_id", "customer_qbo_id", name=op.f("pk_customer_lateness")
        ),
    )


def _fill_movements(connection: sa.Connection) -> None:
    """Each business's movements, from its cash lines and its live accounts' types."""
    businesses = connection.execute(sa.select(_cash_lines.c.business_id).distinct()).scalars()
    for business_id in list(businesses):
        kinds = {
            qbo_id: AccountKind(account_type, sub_type)
            for qbo_id, account_type, sub_type in connection.execute(
                sa.select(
                    _accounts.c.qbo_id, _accounts.c.account_type, _accounts.c.account_sub_type
                ).where(_accounts.c.business_id == business_id, _accounts.c.deleted_at.is_(None))
            )
        }
        lines: dict[str, list[CashLine]] = defaultdict(list)
        for row in connection.execute(
            sa.select(
                _cash_lines.c.txn_type,
                _cash_lines.c.txn_id,
                _cash_lines.c.line,
                _cash_lines.c.txn_date,
                _cash_lines.c.account_qbo_id,
                _cash_lines.c.counter_account_qbo_id,
                _cash_lines.c.amount,
                _cash_lines.c.home_amount,
                _cash_lines.c.currency,
                _cash_lines.c.exchange_rate,
            )
            .where(_cash_lines.c.business_id == business_id)
            .order_by(_cash_lines.c.id)
        ):
            txn_type, txn_id, number, day, account, counter, amount, home, currency, rate = row
            lines[txn_type].append(
                CashLine(
                    txn_type, txn_id, number, day, account, counter, amount, home, currency,
                    Decimal(rate),
                )
            )
        for entity, of_entity in lines.items():
            rows = CashMovementRepository.rows_of(business_id, entity, of_entity, kinds)
            if rows:
                connection.execute(sa.insert(_cash_movements), rows)


def _fill_movement_days() -> None:
    """The day sums of the movements just stored, in SQL (sums of whole cents or NUMERIC)."""
    m = _cash_movements.c
    # Literals, not bound parameters: PostgreSQL matches GROUP BY expressions by their text.
    zero, one, minus_one, empty = (sa.literal_column(text) for text in ("0", "1", "-1", "''"))
    sign = sa.case((m.amount > zero, one), (m.amount < zero, minus_one), else_=zero)
    keys = (
        m.business_id,
        m.txn_date,
        m.flow,
        m.kind,
        sa.func.coalesce(m.counter_account_type, empty),
        m.undeposited,
        sign,
    )
    op.execute(
        sa.insert(_days).from_select(
            [column.name for column in _days.c],
            sa.select(*keys, sa.func.sum(m.amount), sa.func.count()).group_by(*keys),
        )
    )


def _fill_paid_invoices(connection: sa.Connection) -> None:
    """The invoices each live customer payment pays, from the list its row keeps."""
    rows = [
        {
            "business_id": business_id,
            "payment_qbo_id": payment_id,
            "invoice_qbo_id": str(invoice_id),
            "txn_date": day,
        }
        for business_id, payment_id, day, invoice_ids in connection.execute(
            sa.select(
                _payments.c.business_id,
                _payments.c.qbo_id,
                _payments.c.txn_date,
                _payments.c.invoice_qbo_ids,
            ).where(_payments.c.deleted_at.is_(None))
        )
        for invoice_id in dict.fromkeys(json.loads(invoice_ids or "[]"))
    ]
    if rows:
        connection.execute(sa.insert(_links), rows)


def upgrade() -> None:
    _create_tables()
    if context.is_offline_mode():
        entities = ", ".join(f"'{entity}'" for entity in sorted(FLOWS))
        op.execute("DELETE FROM cash_lines")
        op.execute(f"DELETE FROM sync_watermarks WHERE entity_type IN ({entities})")
        return
    connection = op.get_bind()
    _fill_movements(connection)
    _fill_movement_days()
    _fill_paid_invoices(connection)


def downgrade() -> None:
    op.drop_table("customer_lateness")
    op.drop_table("lateness_summaries")
    op.drop_index("ix_paid_invoice_links_business_date", table_name="paid_invoice_links")
    op.drop_table("paid_invoice_links")
    op.drop_table("cash_movement_days")
    op.drop_index("ix_cash_movements_business_date", table_name="cash_movements")
    op.drop_table("cash_movements")
