"""A business writes money, dates and times in its own locale (en_GB: "£1,234.56", "11:18").

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07

Businesses already connected take the locale of their QuickBooks company's country, as mirrored
(`qbo_company_info.country`); the others, and companies in a country with no English locale,
take en_US. The update is plain SQL, one statement per locale: migrations also run offline, as
a script.
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from babel import Locale
from babel.core import get_global

from runway.formatting import DEFAULT_LOCALE, locale_for_country

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _countries_by_locale() -> dict[str, list[str]]:
    """Every country code QuickBooks may give (alpha-2, alpha-3, "UK"), grouped by its locale."""
    codes = set(Locale("en").territories) | set(get_global("territory_aliases"))
    grouped: dict[str, list[str]] = defaultdict(list)
    for code in sorted(codes):
        if code.isalpha() and len(code) <= 8:  # the column's width; never quotes
            locale = locale_for_country(code)
            if locale != DEFAULT_LOCALE:
                grouped[locale].append(code.upper())
    return grouped


def upgrade() -> None:
    with op.batch_alter_table("businesses") as batch:
        batch.add_column(
            sa.Column("locale", sa.String(length=16), nullable=False, server_default=DEFAULT_LOCALE)
        )
    for locale, codes in sorted(_countries_by_locale().items()):
        listed = ", ".join(f"'{code}'" for code in codes)
        op.execute(
            f"UPDATE businesses SET locale = '{locale}' WHERE id IN (SELECT business_id FROM "
            f"qbo_company_info WHERE UPPER(TRIM(country)) IN ({listed}))"
        )


def downgrade() -> None:
    # In place, not by batch mode's copy of the table: on SQLite (3.35 and later drop a column
    # in place) dropping the old businesses table with foreign keys on would delete every row
    # that refers to a business, the mirror included.
    op.drop_column("businesses", "locale")
