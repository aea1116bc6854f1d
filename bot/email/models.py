"""The email side's one table: which signed action links have been used.

A link in the digest email carries a random nonce; acting on it inserts the nonce here. The nonce is
the primary key, so the insert itself is the once-only guard: a second click, a second tab, or two
requests racing each other find the row and are told the action was already done.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from sync import NAMING_CONVENTION, UTCDateTime

#: Longest email address SMTP allows (RFC 5321: 64 + 1 + 255).
EMAIL_LENGTH = 320


class EmailBase(DeclarativeBase):
    """Declarative base of the email tables (never shared with another layer's metadata)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class EmailLinkUse(EmailBase):
    __tablename__ = "email_link_uses"
    __table_args__ = (Index("ix_email_link_uses_business", "business_id", "used_at"),)

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    business_id: Mapped[str] = mapped_column(String(64))
    #: "bill_approve", "bill_pay" or "invoice_remind".
    action: Mapped[str] = mapped_column(String(32))
    #: The QuickBooks id of the bill or invoice.
    target: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(EMAIL_LENGTH))
    #: The sentence shown when the action finished (None while it is still running).
    outcome: Mapped[str | None] = mapped_column(Text)
