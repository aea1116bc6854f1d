"""A business's locale: derived from its QuickBooks company's country (en_US when the country is
unknown or has no English locale), checked when set, kept on a reconnection, and given to the
businesses that existed before by migration 0016, which comes back down too."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from db_conftest import MigratedDatabase, run_in_transaction
from sqlalchemy import Connection

from runway.businesses import BusinessDirectory
from runway.crypto import TokenCipher, generate_key
from runway.formatting import (
    LOCALE_CHOICES,
    check_locale,
    format_time,
    locale_for_country,
    locale_label,
    money,
)
from runway.mirror import company_country, mirror_values
from runway.models import Business, CompanyInfoRecord
from sync import OAuthTokens
from sync.db import downgrade_database, upgrade_database

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("country", "locale"),
    [
        ("US", "en_US"),
        ("GB", "en_GB"),
        ("CA", "en_CA"),
        ("AU", "en_AU"),
        ("IE", "en_IE"),
        ("DE", "en_DE"),
        ("FR", "en_FR"),
        ("NL", "en_NL"),
        ("IN", "en_IN"),
        # QuickBooks' newer ISO alpha-3 codes, the common "UK", names, and stray case and blanks.
        ("GBR", "en_GB"),
        ("DEU", "en_DE"),
        ("USA", "en_US"),
        ("UK", "en_GB"),
        ("United Kingdom", "en_GB"),
        (" gb ", "en_GB"),
        # Unknown: en_US.
        (None, "en_US"),
        ("", "en_US"),
        ("XX", "en_US"),
        ("ZZZ", "en_US"),
        ("Narnia", "en_US"),
        ("001", "en_US"),  # a region, not a country
        ("AQ", "en_US"),  # a territory Babel has no English locale for
    ],
)
def test_the_locale_of_a_country(country: str | None, locale: str) -> None:
    assert locale_for_country(country) == locale


def test_every_choice_the_settings_offer_is_a_locale_babel_knows() -> None:
    for locale in LOCALE_CHOICES:
        assert check_locale(locale) == locale
    # Each choice reads as its country and a sample in its own style, from the formatter itself.
    assert locale_label("en_US") == "United States: $1,234.56, 11:18 AM"
    assert locale_label("en_GB") == "United Kingdom: £1,234.56, 11:18"
    assert locale_label("en_DE") == "Germany: 1.234,56\u00a0€, 11:18"
    assert locale_label("en_IN").startswith("India: ₹")
    for wrong in ("fr_FR", "en_XX", "en_gb", "", "en_US; DROP TABLE", "x" * 40):
        with pytest.raises(ValueError, match="is not a locale Oodaloo can write"):
            check_locale(wrong)


def test_the_locale_decides_numbers_currency_places_and_the_clock() -> None:
    at = datetime(2026, 12, 7, 19, 18, tzinfo=UTC)
    amount = Decimal("1234.56")
    assert (money(amount, "GBP", locale="en_GB"), format_time(at, "Europe/London", "en_GB")) == (
        "£1,234.56",
        "19:18 GMT",
    )
    assert money(amount, "EUR", locale="en_DE") == "1.234,56\u00a0€"
    assert format_time(at, "Europe/Berlin", "en_DE") == "20:18 CET"
    assert format_time(at, "America/Los_Angeles", "en_US") == "11:18 AM PST"


def test_the_country_of_a_company_info() -> None:
    assert company_country({"Country": "GB", "CompanyAddr": {"Country": "US"}}) == "GB"
    # Without its own Country, the company's address, then the legal address.
    assert company_country({"CompanyAddr": {"Country": "DEU"}}) == "DEU"
    assert company_country({"CompanyAddr": {}, "LegalAddr": {"Country": " IE "}}) == "IE"
    assert company_country({"Country": "", "CompanyAddr": None}) is None
    assert company_country({}) is None
    # The mirror keeps the ISO code, whatever QuickBooks wrote (an 8-letter column).
    values = mirror_values("CompanyInfo", {"Id": "1", "Country": "United Kingdom"}, NOW)
    assert values["country"] == "GB"


def _tokens() -> OAuthTokens:
    return OAuthTokens("access", "refresh", NOW + timedelta(hours=1), NOW + timedelta(days=100))


async def test_connecting_a_company_gives_its_locale_and_a_reconnection_keeps_the_owners(
    migrated: MigratedDatabase,
) -> None:
    directory = BusinessDirectory(migrated.sessions, TokenCipher(generate_key()))
    created = await directory.create("biz-uk", "Hatch & Sons", "Europe/London")
    assert created.locale == "en_US"

    await directory.connect("biz-uk", "9130", _tokens(), country="GB")
    assert (await directory.get("biz-uk")).locale == "en_GB"

    await directory.update("biz-uk", locale="en_IE")
    # The same company again (new tokens): the owner's choice stands.
    await directory.connect("biz-uk", "9130", _tokens(), country="GB")
    assert (await directory.get("biz-uk")).locale == "en_IE"

    with pytest.raises(ValueError, match="'de_DE' is not a locale Oodaloo can write"):
        await directory.update("biz-uk", locale="de_DE")
    assert (await directory.get("biz-uk")).locale == "en_IE"

    await directory.create("biz-far", "Far Away Ltd", "UTC")
    await directory.connect("biz-far", "9131", _tokens(), country="Atlantis")
    assert (await directory.get("biz-far")).locale == "en_US"


# --- migration 0016 ---------------------------------------------------------------------------


def _table_at_0015(table: sa.Table, *left_out: str) -> sa.Table:
    """`table` as revision 0015 had it (the model's columns less those added since)."""
    return sa.Table(
        table.name,
        sa.MetaData(),
        *(column._copy() for column in table.columns if column.name not in left_out),
    )


BUSINESSES_0015 = _table_at_0015(Business.__table__, "locale")  # type: ignore[arg-type]
COMPANY_INFO = _table_at_0015(CompanyInfoRecord.__table__)  # type: ignore[arg-type]


def _business(business_id: str) -> dict[str, Any]:
    return {
        "id": business_id, "name": business_id, "timezone": "UTC", "home_currency": "USD",
        "digest_weekday": 0, "digest_local_time": time(8), "approvers": [],
        "approval_threshold": Decimal(0), "min_cash_buffer": Decimal(0), "email_recipients": [],
        "reminder_interval_days": 7, "created_at": NOW, "updated_at": NOW,
    }  # fmt: skip


def _company(business_id: str, country: str | None) -> dict[str, Any]:
    return {
        "business_id": business_id, "qbo_id": "1", "sync_token": "0", "raw": {},
        "synced_at": NOW, "country": country,
    }  # fmt: skip


def _locales(connection: Connection) -> dict[str, str]:
    rows = connection.execute(sa.text("SELECT id, locale FROM businesses ORDER BY id"))
    return {business_id: locale for business_id, locale in rows}


async def test_migration_0016_gives_existing_businesses_their_countrys_locale_and_goes_back(
    db_url: str,
) -> None:
    await upgrade_database(db_url, "0015")
    countries = {"biz-gb": "GB", "biz-de": "DEU", "biz-us": "US", "biz-xx": "XX", "biz-none": None}

    def before(connection: Connection) -> None:
        for business_id, country in [*countries.items(), ("biz-new", "skip")]:
            connection.execute(BUSINESSES_0015.insert().values(_business(business_id)))
            if country != "skip":
                connection.execute(COMPANY_INFO.insert().values(_company(business_id, country)))

    await run_in_transaction(db_url, before)

    await upgrade_database(db_url)
    assert await run_in_transaction(db_url, _locales) == {
        "biz-de": "en_DE",
        "biz-gb": "en_GB",
        "biz-new": "en_US",  # never synced: no country yet
        "biz-none": "en_US",
        "biz-us": "en_US",
        "biz-xx": "en_US",
    }

    await downgrade_database(db_url, "0015")

    def after(connection: Connection) -> tuple[set[str], int]:
        columns = {column["name"] for column in sa.inspect(connection).get_columns("businesses")}
        count = connection.execute(sa.text("SELECT COUNT(*) FROM businesses")).scalar_one()
        return columns, count

    columns, count = await run_in_transaction(db_url, after)
    assert "locale" not in columns and count == 6
    # And up again: the same locales.
    await upgrade_database(db_url)
    assert (await run_in_transaction(db_url, _locales))["biz-gb"] == "en_GB"
