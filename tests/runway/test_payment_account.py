"""Which bank account a business's bills are paid from: one rule, for the digest and the settings."""

from __future__ import annotations

from decimal import Decimal

from runway.businesses import payment_account_id
from runway.models import Business

BANKS = {"35": Decimal("1200.00"), "36": Decimal("48000.00"), "37": Decimal("-50.00")}


def _business(chosen: str | None) -> Business:
    return Business(id="b", name="B", timezone="UTC", payment_bank_account_id=chosen)


def test_the_chosen_bank_account_pays() -> None:
    assert payment_account_id(_business("35"), BANKS) == "35"


def test_without_a_choice_the_largest_bank_account_pays() -> None:
    assert payment_account_id(_business(None), BANKS) == "36"
    # A tie goes to the same account every time.
    assert payment_account_id(_business(None), {"40": Decimal("5"), "41": Decimal("5")}) == "41"


def test_a_choice_no_longer_among_the_bank_accounts_is_passed_over() -> None:
    assert payment_account_id(_business("99"), BANKS) == "36"


def test_a_business_without_bank_accounts_pays_from_none() -> None:
    assert payment_account_id(_business("35"), {}) is None
