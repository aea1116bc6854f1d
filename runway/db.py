"""The declarative base of the runway domain's tables (businesses, the QuickBooks mirror, audit).

Runway tables live in their own metadata, next to the sync layer's: Alembic's environment migrates
both (`migrations/env.py` lists sync's metadata first, this one after it), and the runway revisions
come after sync's head. Column types are the sync layer's database types, so money is an exact
Decimal and every timestamp comes back timezone-aware in UTC on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from sync import NAMING_CONVENTION, DecimalJSON, Money, UTCDateTime

__all__ = ["DecimalJSON", "Money", "RunwayBase", "UTCDateTime"]


class RunwayBase(DeclarativeBase):
    """Declarative base for the domain's tables; never shares metadata with `sync.db.SyncBase`."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
