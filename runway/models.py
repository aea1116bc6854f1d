"""The runway domain's tables: each business, its QuickBooks connection, the local mirror of its
books, and what Oodaloo itself remembers (approvals, snoozes, reminders, sync watermarks, drift
alerts, the audit trail).

Every row belongs to one business (`business_id`); repositories in `runway.uow` never return
another business's rows. Money is `Money` (NUMERIC(18, 2) on PostgreSQL, whole cents on SQLite:
exact either way, a Decimal in Python); timestamps are `UTCDateTime` (aware, stored in UTC).

Mirrored QuickBooks objects keep QuickBooks' id (`qbo_id`), its `SyncToken`, its create and update
times, the fields the product reads as typed columns, and the whole object as QuickBooks sent it
(`raw`), so nothing QuickBooks said is lost and a later feature can read a field without a resync.
An object deleted in QuickBooks keeps its row with `deleted_at` set: local workflow state on it
(an approval, a reminder sent) stays explainable, and repositories leave such rows out by default.
"""

from __future__ import annotations

import enum
import re
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from runway.db import DecimalJSON, Money, RunwayBase, UTCDateTime

# Integer primary keys: 64-bit on PostgreSQL; SQLite only auto-increments "INTEGER PRIMARY KEY".
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")

BUSINESS_ID_LENGTH = 64  # matches the sync layer's business_id columns
QBO_ID_LENGTH = 32
#: What a QuickBooks entity id looks like (QuickBooks' ids are short digit strings).
_QBO_ID = re.compile(rf"[0-9A-Za-z_-]{{1,{QBO_ID_LENGTH}}}")


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal kept exactly as written (an exchange rate: 1.0834567), as text on every database:
    neither SQLite's floats nor a fixed scale can hold QuickBooks' rates as they are."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, Decimal) or not value.is_finite():
            raise ValueError(f"an exact decimal must be a finite Decimal, got {value!r}")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


def is_qbo_id(value: object) -> bool:
    """Whether `value` can be a QuickBooks id: anything else is "not found" without a query."""
    return isinstance(value, str) and _QBO_ID.fullmatch(value) is not None


class ConnectionStatus(enum.StrEnum):
    CONNECTED = "connected"
    #: QuickBooks refused the refresh token (revoked, expired): the owner must connect again.
    NEEDS_RECONNECT = "needs_reconnect"


class DocumentStatus(enum.StrEnum):
    """Where a bill or invoice stands, from its Balance against its TotalAmt."""

    OPEN = "open"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"

    @classmethod
    def of(cls, total: Decimal, balance: Decimal) -> DocumentStatus:
        if balance <= 0:
            return cls.PAID
        if balance < total:
            return cls.PARTIALLY_PAID
        return cls.OPEN


def _check_in(column: str, values: type[enum.StrEnum]) -> str:
    listed = ", ".join(f"'{member.value}'" for member in values)
    return f"{column} IN ({listed})"


# --- the tenant ------------------------------------------------------------------------------


class Business(RunwayBase):
    """A customer of Oodaloo: one small business, one QuickBooks company, one Slack channel."""

    __tablename__ = "businesses"

    id: Mapped[str] = mapped_column(String(BUSINESS_ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    #: The QuickBooks company (realm) id; unique: a company belongs to one business.
    realm_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    #: IANA zone ("America/Los_Angeles"): "today", due dates and the digest's hour are local.
    timezone: Mapped[str] = mapped_column(String(64))
    home_currency: Mapped[str] = mapped_column(String(3), default="USD")
    #: CLDR locale ("en_GB"): how money, dates and the clock are written for this business
    #: (`runway.formatting`); from its QuickBooks company's country, changed in Settings.
    locale: Mapped[str] = mapped_column(String(16), default="en_US", server_default="en_US")
    #: 0 = Monday … 6 = Sunday, in the business's timezone.
    digest_weekday: Mapped[int] = mapped_column(Integer, default=0)
    digest_local_time: Mapped[time] = mapped_column(Time, default=time(8, 0))
    #: Slack user ids allowed to approve and pay bills.
    approvers: Mapped[list[str]] = mapped_column(DecimalJSON, default=list)
    #: Bills above this amount need a second, different approver.
    approval_threshold: Mapped[Decimal] = mapped_column(Money, default=Decimal("5000.00"))
    #: Cash the owner never wants to go below ("runway to your $20,000 buffer").
    min_cash_buffer: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    slack_team_id: Mapped[str | None] = mapped_column(String(32))
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    email_recipients: Mapped[list[str]] = mapped_column(DecimalJSON, default=list)
    #: The QuickBooks bank account bills are paid from (an Account's qbo_id).
    payment_bank_account_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    reminder_interval_days: Mapped[int] = mapped_column(Integer, default=7)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("digest_weekday BETWEEN 0 AND 6", name="digest_weekday"),
        CheckConstraint("reminder_interval_days > 0", name="reminder_interval_days"),
        CheckConstraint("approval_threshold >= 0", name="approval_threshold"),
        CheckConstraint("min_cash_buffer >= 0", name="min_cash_buffer"),
        #: A Slack channel belongs to at most one business (migration 0006).
        UniqueConstraint("slack_team_id", "slack_channel_id", name="uq_businesses_slack_channel"),
    )


class QBOConnection(RunwayBase):
    """A business's OAuth connection to its QuickBooks company. Tokens are Fernet ciphertext."""

    __tablename__ = "qbo_connections"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), unique=True
    )
    realm_id: Mapped[str] = mapped_column(String(32), unique=True)
    access_token_encrypted: Mapped[str] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=ConnectionStatus.CONNECTED.value)
    #: Why the connection needs attention (QuickBooks' refusal), shown to the owner.
    status_reason: Mapped[str | None] = mapped_column(Text)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint(_check_in("status", ConnectionStatus), name="status"),)


# --- the QuickBooks mirror --------------------------------------------------------------------


class MirroredRow:
    """Columns every mirrored QuickBooks object has, keyed by (business, QuickBooks id)."""

    #: The QuickBooks entity name this table mirrors ("Bill"); set by each subclass.
    qbo_entity: str = ""

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True, sort_order=-3)
    qbo_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH), sort_order=-1)
    sync_token: Mapped[str] = mapped_column(String(16), sort_order=-1)
    qbo_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=-1)
    qbo_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=-1)
    #: The object exactly as QuickBooks last sent it (amounts Decimal-exact).
    raw: Mapped[dict[str, Any]] = mapped_column(DecimalJSON, sort_order=-1)
    #: When Oodaloo last wrote this row from QuickBooks' answer.
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime, sort_order=-1)
    #: When QuickBooks reported the object deleted; None while it exists.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, sort_order=-1)

    @declared_attr
    def business_id(cls) -> Mapped[str]:
        return mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"), sort_order=-2)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        table = cls.__tablename__  # type: ignore[attr-defined]
        return (
            UniqueConstraint("business_id", "qbo_id", name=f"uq_{table}_business_qbo_id"),
            *cls.extra_table_args(),
        )

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return ()


class CompanyInfoRecord(MirroredRow, RunwayBase):
    __tablename__ = "qbo_company_info"
    qbo_entity = "CompanyInfo"

    company_name: Mapped[str | None] = mapped_column(Text)
    legal_name: Mapped[str | None] = mapped_column(Text)
    country: Mapped[str | None] = mapped_column(String(8))
    default_timezone: Mapped[str | None] = mapped_column(String(64))
    fiscal_year_start_month: Mapped[str | None] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(Text)


class Account(MirroredRow, RunwayBase):
    """A QuickBooks account; bank and credit-card ones carry the cash the runway starts from."""

    __tablename__ = "accounts"
    qbo_entity = "Account"

    name: Mapped[str] = mapped_column(Text)
    fully_qualified_name: Mapped[str | None] = mapped_column(Text)
    account_type: Mapped[str | None] = mapped_column(String(64))
    account_sub_type: Mapped[str | None] = mapped_column(String(64))
    classification: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    current_balance: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: When QuickBooks last told Oodaloo this balance.
    balance_as_of: Mapped[datetime] = mapped_column(UTCDateTime)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (Index("ix_accounts_business_type", "business_id", "account_type"),)


class Vendor(MirroredRow, RunwayBase):
    __tablename__ = "vendors"
    qbo_entity = "Vendor"

    display_name: Mapped[str] = mapped_column(Text)
    company_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    balance: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))


class Customer(MirroredRow, RunwayBase):
    __tablename__ = "customers"
    qbo_entity = "Customer"

    display_name: Mapped[str] = mapped_column(Text)
    company_name: Mapped[str | None] = mapped_column(Text)
    email: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    balance: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))


class Bill(MirroredRow, RunwayBase):
    """A bill to pay, mirrored from QuickBooks, with Oodaloo's approval workflow on it."""

    __tablename__ = "bills"
    qbo_entity = "Bill"

    doc_number: Mapped[str | None] = mapped_column(String(64))
    vendor_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    vendor_name: Mapped[str | None] = mapped_column(Text)
    txn_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    total_amount: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: Home-currency units per unit of `currency` (QuickBooks' ExchangeRate); None: the home's.
    exchange_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    private_note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))

    # Local workflow (never sent to QuickBooks, kept across syncs).
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Above the business's approval threshold, a second, different approver.
    second_approved_by: Mapped[str | None] = mapped_column(String(64))
    second_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The open balance each approval was given for: an approval covers paying at most that.
    approved_amount: Mapped[Decimal | None] = mapped_column(Money)
    second_approved_amount: Mapped[Decimal | None] = mapped_column(Money)
    #: The action key of a payment sent for this bill and not yet settled by a sync.
    payment_action_key: Mapped[str | None] = mapped_column(String(50))
    payment_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Oodaloo's last payment of this bill (`runway.lifecycle.PaymentState`), who asked for it,
    #: when, how much, from which account, and QuickBooks' reason when it did not go through.
    payment_state: Mapped[str | None] = mapped_column(String(20))
    payment_amount: Mapped[Decimal | None] = mapped_column(Money)
    payment_by: Mapped[str | None] = mapped_column(String(320))
    payment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_account_name: Mapped[str | None] = mapped_column(Text)
    payment_note: Mapped[str | None] = mapped_column(Text)
    #: The exchange rate the payment books at (home units per unit of `currency`): the rate
    #: Oodaloo's payment was sent with, else the ExchangeRate of the payment QuickBooks reports.
    #: What it cost in the home currency stays what it was when QuickBooks' rate moves on.
    #: None in the home currency, or before a payment.
    payment_exchange_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint(_check_in("status", DocumentStatus), name="status"),
            # What the digest's reads of open bills filter, group and sort by (migration 0013).
            Index(
                "ix_bills_open",
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
            ),
        )


class Invoice(MirroredRow, RunwayBase):
    """An invoice a customer owes, mirrored from QuickBooks, with Oodaloo's reminder workflow."""

    __tablename__ = "invoices"
    qbo_entity = "Invoice"

    doc_number: Mapped[str | None] = mapped_column(String(64))
    customer_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    customer_name: Mapped[str | None] = mapped_column(Text)
    txn_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    total_amount: Mapped[Decimal] = mapped_column(Money)
    balance: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: Home-currency units per unit of `currency` (QuickBooks' ExchangeRate); None: the home's.
    exchange_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    bill_email: Mapped[str | None] = mapped_column(Text)
    email_status: Mapped[str | None] = mapped_column(String(32))
    private_note: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))

    # Local workflow.
    last_reminder_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_reminder_by: Mapped[str | None] = mapped_column(String(64))
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    snoozed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint(_check_in("status", DocumentStatus), name="status"),
            CheckConstraint("reminders_sent >= 0", name="reminders_sent"),
            # What the digest's reads of open invoices filter, group and sort by (migration 0013).
            Index(
                "ix_invoices_open",
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
            ),
        )


class BillPaymentRecord(MirroredRow, RunwayBase):
    """Money paid to a vendor (QuickBooks BillPayment): cash out of a bank or card account."""

    __tablename__ = "bill_payments"
    qbo_entity = "BillPayment"

    txn_date: Mapped[date | None] = mapped_column(Date)
    vendor_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    vendor_name: Mapped[str | None] = mapped_column(Text)
    pay_type: Mapped[str | None] = mapped_column(String(16))
    #: The bank (check) or credit-card account the payment came from.
    paid_from_account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    #: Home-currency units per unit of `currency` (QuickBooks' ExchangeRate); None: the home's.
    exchange_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    private_note: Mapped[str | None] = mapped_column(Text)
    #: The QuickBooks ids of the bills this payment pays.
    bill_qbo_ids: Mapped[list[str]] = mapped_column(DecimalJSON, default=list)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (Index("ix_bill_payments_business_date", "business_id", "txn_date"),)


class CustomerPaymentRecord(MirroredRow, RunwayBase):
    """Money received from a customer (QuickBooks Payment)."""

    __tablename__ = "customer_payments"
    qbo_entity = "Payment"

    txn_date: Mapped[date | None] = mapped_column(Date)
    customer_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    customer_name: Mapped[str | None] = mapped_column(Text)
    deposit_to_account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    unapplied_amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    private_note: Mapped[str | None] = mapped_column(Text)
    #: The QuickBooks ids of the invoices this payment pays.
    invoice_qbo_ids: Mapped[list[str]] = mapped_column(DecimalJSON, default=list)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (Index("ix_customer_payments_business_date", "business_id", "txn_date"),)


class Purchase(MirroredRow, RunwayBase):
    """An expense paid at once (check, cash, card): part of the burn that never was a bill."""

    __tablename__ = "purchases"
    qbo_entity = "Purchase"

    txn_date: Mapped[date | None] = mapped_column(Date)
    #: The bank or credit-card account the money left.
    account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    payment_type: Mapped[str | None] = mapped_column(String(16))
    payee_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    payee_name: Mapped[str | None] = mapped_column(Text)
    payee_type: Mapped[str | None] = mapped_column(String(16))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    #: A credit-card credit (a refund): money coming back, not going out.
    credit: Mapped[bool] = mapped_column(Boolean, default=False)
    currency: Mapped[str | None] = mapped_column(String(3))
    private_note: Mapped[str | None] = mapped_column(Text)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (Index("ix_purchases_business_date", "business_id", "txn_date"),)


class Deposit(MirroredRow, RunwayBase):
    """Money put into a bank account (sales, transfers, opening balances)."""

    __tablename__ = "deposits"
    qbo_entity = "Deposit"

    txn_date: Mapped[date | None] = mapped_column(Date)
    deposit_to_account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    total_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    private_note: Mapped[str | None] = mapped_column(Text)

    @classmethod
    def extra_table_args(cls) -> tuple[Any, ...]:
        return (Index("ix_deposits_business_date", "business_id", "txn_date"),)


class PreferencesRecord(MirroredRow, RunwayBase):
    """The company's QuickBooks preferences: its home currency and whether it keeps others."""

    __tablename__ = "qbo_preferences"
    qbo_entity = "Preferences"

    home_currency: Mapped[str | None] = mapped_column(String(3))
    multicurrency_enabled: Mapped[bool] = mapped_column(Boolean, default=False)


class TransactionRecord(MirroredRow, RunwayBase):
    """A QuickBooks transaction the runway reads only through its cash lines (sales and refund
    receipts, transfers, journal entries, credits, credit-card payments): one table for all of
    them, `entity_type` saying which."""

    __tablename__ = "qbo_transactions"
    #: Each repository over this table serves one entity type (`runway.uow`).
    qbo_entity = ""

    entity_type: Mapped[str] = mapped_column(String(32))
    txn_date: Mapped[date | None] = mapped_column(Date)
    doc_number: Mapped[str | None] = mapped_column(String(64))
    total_amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    exchange_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    private_note: Mapped[str | None] = mapped_column(Text)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint(
                "business_id", "entity_type", "qbo_id", name="uq_qbo_transactions_business_qbo_id"
            ),
            Index("ix_qbo_transactions_business_date", "business_id", "txn_date"),
        )


class CashLineRecord(RunwayBase):
    """One line of a mirrored transaction that can move money (`runway.cash_flow.CashLine`):
    `amount` moved into `account_qbo_id` from `counter_account_qbo_id`, in `currency`.

    Written with the transaction's own row, whatever wrote it (a sync, or Oodaloo's payment
    confirmed by QuickBooks), and removed with it."""

    __tablename__ = "cash_lines"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    txn_type: Mapped[str] = mapped_column(String(32))
    txn_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH))
    line: Mapped[int] = mapped_column(Integer)
    txn_date: Mapped[date | None] = mapped_column(Date)
    account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    counter_account_qbo_id: Mapped[str | None] = mapped_column(String(QBO_ID_LENGTH))
    amount: Mapped[Decimal] = mapped_column(Money)
    home_amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    exchange_rate: Mapped[Decimal] = mapped_column(ExactDecimal)

    __table_args__ = (
        UniqueConstraint("business_id", "txn_type", "txn_id", "line", name="uq_cash_lines_line"),
        Index("ix_cash_lines_business_date", "business_id", "txn_date"),
    )


class ExchangeRateRecord(RunwayBase):
    """QuickBooks' latest rate for one foreign currency of a business, as last read."""

    __tablename__ = "exchange_rates"

    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    #: Home-currency units per unit of `currency`.
    rate: Mapped[Decimal] = mapped_column(ExactDecimal)
    #: The day QuickBooks' rate is for (its AsOfDate).
    as_of_date: Mapped[date] = mapped_column(Date)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)


#: Every mirrored table, by the QuickBooks entity it mirrors, in the order a first sync fills them.
MIRRORED_MODELS: dict[str, type[MirroredRow]] = {
    model.qbo_entity: model
    for model in (
        CompanyInfoRecord,
        PreferencesRecord,
        Account,
        Vendor,
        Customer,
        Bill,
        Invoice,
        BillPaymentRecord,
        CustomerPaymentRecord,
        Purchase,
        Deposit,
    )
}


# --- what Oodaloo remembers about its own work -----------------------------------------------


class PersonRecord(RunwayBase):
    """One person of a business as Oodaloo knows them: their Slack user id, their email address,
    or both (from their Slack profile). An approval by either is that one person's approval."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    #: Lower-cased.
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("business_id", "slack_user_id", name="uq_people_business_slack"),
        UniqueConstraint("business_id", "email", name="uq_people_business_email"),
    )


class SyncWatermark(RunwayBase):
    """How far the mirror of one entity type has been brought up to date with QuickBooks."""

    __tablename__ = "sync_watermarks"

    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    entity_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The next CDC asks for changes since this instant (None: no sync yet, do a full one).
    last_cdc_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The mirror of this entity type reflects QuickBooks as of this instant.
    as_of: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DriftEvent(RunwayBase):
    """A difference between Oodaloo's view and QuickBooks', reported to the business's channel."""

    __tablename__ = "drift_events"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(48))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    #: The plain sentence shown to the user ("Bill 1042 from Acme changed from $500 to $450").
    sentence: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer, default=1)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("count >= 1", name="count"),
        Index("ix_drift_events_business_open", "business_id", "resolved_at"),
        Index("ix_drift_events_subject", "business_id", "kind", "entity", "entity_id"),
    )


class AuditEntry(RunwayBase):
    """Who asked for what, when, and how it ended: the trail behind every button press."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    #: Who acted: a Slack user id, an email address, or "scheduler".
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    #: What it acted on, e.g. "Bill 1042".
    target: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    #: The sync ledger's idempotency key when the action went to QuickBooks.
    action_key: Mapped[str | None] = mapped_column(String(50))
    #: How it ended ("succeeded", "refused: …", "pending"); None while it is still going.
    outcome: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_audit_entries_business_time", "business_id", "requested_at"),
        Index("ix_audit_entries_action_key", "action_key"),
    )


class CashMovementRecord(RunwayBase):
    """One cash movement of a mirrored transaction (`runway.cash_flow.CashMovement`), as
    `cash_movements` derives it from the transaction's cash lines and the accounts' types.

    Written with the lines, removed with them, and worked out again for the transactions naming an
    account whose type changes, so a snapshot sums a window's movements in SQL instead of
    classifying every line at each read."""

    __tablename__ = "cash_movements"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    txn_type: Mapped[str] = mapped_column(String(32))
    txn_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH))
    #: Its place among the transaction's movements.
    seq: Mapped[int] = mapped_column(Integer)
    txn_date: Mapped[date] = mapped_column(Date)
    #: The cash account the money moved into or out of.
    account_qbo_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH))
    #: `runway.cash_flow.CashFlowClass` and `MovementKind` values.
    flow: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    counter_account_type: Mapped[str | None] = mapped_column(String(64))
    undeposited: Mapped[bool] = mapped_column(Boolean)
    #: In the home currency, signed: + in, − out.
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    currency_amount: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (
        UniqueConstraint("business_id", "txn_type", "txn_id", "seq", name="uq_cash_movements_seq"),
        Index("ix_cash_movements_business_date", "business_id", "txn_date"),
    )


class CashMovementDay(RunwayBase):
    """The business's cash movements of one day with one class, kind, counter-account type, side
    (Undeposited Funds or a bank) and sign, summed: `amount` over `movements` of them.

    Kept in step with `cash_movements` whenever movements are written or removed, so a snapshot
    reads a window's movements as a few hundred sums, whatever the size of the books. Burn,
    financing and the forecast's baseline only ever add movements up by these keys."""

    __tablename__ = "cash_movement_days"

    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    txn_date: Mapped[date] = mapped_column(Date, primary_key=True)
    flow: Mapped[str] = mapped_column(String(16), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: The counter-account's AccountType, "" when the lines name none (a key column: not null).
    counter_account_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    undeposited: Mapped[bool] = mapped_column(Boolean, primary_key=True)
    #: 1 money in, -1 out, 0 neither (a movement whose home amount rounds to nothing).
    sign: Mapped[int] = mapped_column(Integer, primary_key=True)
    amount: Mapped[Decimal] = mapped_column(Money)
    movements: Mapped[int] = mapped_column(Integer)


class PaidInvoiceLink(RunwayBase):
    """An invoice a mirrored customer payment pays (its lines' LinkedTxn), dated with the payment:
    written and removed with the payment's cash lines, so a customer's lateness is read from rows
    instead of every payment's JSON list."""

    __tablename__ = "paid_invoice_links"

    id: Mapped[int] = mapped_column(ROW_ID, primary_key=True, autoincrement=True)
    business_id: Mapped[str] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    payment_qbo_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH))
    invoice_qbo_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH))
    txn_date: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        UniqueConstraint(
            "business_id", "payment_qbo_id", "invoice_qbo_id", name="uq_paid_invoice_links_link"
        ),
        Index("ix_paid_invoice_links_business_date", "business_id", "txn_date"),
    )

class LatenessSummary(RunwayBase):
    """That `CustomerLateness` holds every customer's typical lateness over the invoices paid on
    or after `since`. Removed whenever a customer payment or an invoice is written, so it only
    stands while nothing it rests on has changed; the mirror works it out again after a sync."""

    __tablename__ = "lateness_summaries"

    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    since: Mapped[date] = mapped_column(Date)


class CustomerLateness(RunwayBase):
    """One customer's typical days late and how many paid invoices it rests on
    (`runway.paid_invoices`), as of the business's `LatenessSummary`."""

    __tablename__ = "customer_lateness"

    business_id: Mapped[str] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    customer_qbo_id: Mapped[str] = mapped_column(String(QBO_ID_LENGTH), primary_key=True)
    typical_days_late: Mapped[int] = mapped_column(Integer)
    paid_invoices: Mapped[int] = mapped_column(Integer)

__all__ = [
    "MIRRORED_MODELS",
    "Account",
    "AuditEntry",
    "Bill",
    "BillPaymentRecord",
    "Business",
    "CashLineRecord",
    "CashMovementDay",
    "CashMovementRecord",
    "CompanyInfoRecord",
    "ConnectionStatus",
    "Customer",
    "CustomerLateness",
    "CustomerPaymentRecord",
    "Deposit",
    "DocumentStatus",
    "DriftEvent",
    "ExactDecimal",
    "ExchangeRateRecord",
    "Invoice",
    "LatenessSummary",
    "MirroredRow",
    "PaidInvoiceLink",
    "PersonRecord",
    "PreferencesRecord",
    "Purchase",
    "QBOConnection",
    "RunwayBase",
    "SyncWatermark",
    "TransactionRecord",
    "Vendor",
    "is_qbo_id",
]
