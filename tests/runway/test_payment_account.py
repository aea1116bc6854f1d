"""Which bank account a business's bills are paid from: one rule, for the digest and the settings;
and for a bill in a foreign currency, only an account QuickBooks accepts for it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runway.businesses import (
    BankAccount,
    PayFromRefused,
    bill_payment_account,
    payment_account_id,
)
from runway.errors import BusinessNotReady
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


# --- a bill in a foreign currency: QuickBooks pays it only from its own currency or the home one ---

CHECKING = BankAccount("35", "Checking", "USD", Decimal("48000.00"))
EURO = BankAccount("40", "Euro account", "EUR", Decimal("900.00"))
SAVINGS_GBP = BankAccount("41", "Savings", "GBP", Decimal("90000.00"))


def _home_usd(chosen: str | None) -> Business:
    return Business(
        id="b", name="Larkspur", timezone="UTC", home_currency="USD", payment_bank_account_id=chosen
    )


def test_a_foreign_bill_is_paid_from_the_chosen_account_in_its_currency_or_the_home_one() -> None:
    banks = [CHECKING, EURO, SAVINGS_GBP]
    assert bill_payment_account(_home_usd("35"), "EUR", banks) == CHECKING
    assert bill_payment_account(_home_usd("40"), "EUR", banks) == EURO


def test_a_chosen_account_in_a_third_currency_is_refused_in_words() -> None:
    with pytest.raises(PayFromRefused) as refused:
        bill_payment_account(_home_usd("41"), "EUR", [CHECKING, EURO, SAVINGS_GBP])
    assert str(refused.value) == (
        "This bill is in EUR; pay it from a EUR account or a USD account — Savings (GBP) can't "
        "pay it. Choose the pay-from account in `/runway settings`."
    )
    # A home-currency bill cannot be paid from a foreign account either.
    with pytest.raises(PayFromRefused, match=r"^This bill is in USD; pay it from a USD account — "):
        bill_payment_account(_home_usd("40"), None, [CHECKING, EURO])


def test_without_a_choice_the_digests_account_pays_if_it_can_else_the_bills_own_currency_first() -> (
    None
):
    # The largest account (the one the digest names) pays when QuickBooks accepts it.
    assert bill_payment_account(_home_usd(None), "EUR", [CHECKING, EURO]) == CHECKING
    # The GBP account is the largest, but it cannot pay a EUR bill: the euros pay, else dollars.
    assert bill_payment_account(_home_usd(None), "EUR", [CHECKING, EURO, SAVINGS_GBP]) == EURO
    assert bill_payment_account(_home_usd(None), "EUR", [CHECKING, SAVINGS_GBP]) == CHECKING
    assert bill_payment_account(_home_usd(None), "USD", [CHECKING, EURO, SAVINGS_GBP]) == CHECKING
    # A choice no longer among the bank accounts is passed over, as `payment_account_id` does.
    assert bill_payment_account(_home_usd("99"), "EUR", [CHECKING, EURO]) == CHECKING
    with pytest.raises(PayFromRefused, match="Larkspur has no such bank account"):
        bill_payment_account(_home_usd(None), "EUR", [SAVINGS_GBP])
    with pytest.raises(BusinessNotReady, match="no bank account in QuickBooks"):
        bill_payment_account(_home_usd(None), "EUR", [])


CURRENCIES = st.sampled_from(["USD", "EUR", "GBP", "CAD"])
BANK_LISTS = st.lists(
    st.builds(
        BankAccount,
        account_id=st.sampled_from([str(n) for n in range(30, 40)]),
        name=st.just("Account"),
        currency=CURRENCIES,
        balance=st.decimals(min_value=-1000, max_value=10**6, places=2),
    ),
    max_size=6,
    unique_by=lambda bank: bank.account_id,
)


@given(
    banks=BANK_LISTS,
    bill_currency=st.one_of(st.none(), CURRENCIES),
    chosen=st.one_of(st.none(), st.sampled_from([str(n) for n in range(30, 40)])),
)
def test_every_payment_account_is_one_quickbooks_accepts_and_a_good_choice_is_kept(
    banks: list[BankAccount], bill_currency: str | None, chosen: str | None
) -> None:
    allowed = {bill_currency or "USD", "USD"}
    chosen_bank = next((bank for bank in banks if bank.account_id == chosen), None)
    try:
        paying = bill_payment_account(_home_usd(chosen), bill_currency, banks)
    except PayFromRefused:
        # Refused only for a chosen account QuickBooks would refuse, or none that it accepts.
        if chosen_bank is not None:
            assert chosen_bank.currency not in allowed
        else:
            assert banks and not any(bank.currency in allowed for bank in banks)
        return
    except BusinessNotReady:
        assert not banks
        return
    assert paying in banks and paying.currency in allowed
    if chosen_bank is not None:
        assert paying == chosen_bank
    # Where the digest's account (`payment_account_id`) can pay the bill, it is the one that pays.
    default = payment_account_id(_home_usd(chosen), {b.account_id: b.balance for b in banks})
    if any(b.account_id == default and b.currency in allowed for b in banks):
        assert paying.account_id == default
