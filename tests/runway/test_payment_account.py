"""Which bank account a business's bills are paid from: one rule, for the digest and the settings;
and for a bill in a foreign currency, only an account QuickBooks accepts for it."""

from __future__ import annotations

from dataclasses import replace
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
from runway.cash_flow import home_amount
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
EURO = BankAccount("40", "Euro account", "EUR", Decimal("900.00"), Decimal("990.00"))
SAVINGS_GBP = BankAccount("41", "Savings", "GBP", Decimal("90000.00"), Decimal("114300.00"))


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


def test_the_largest_account_is_the_one_worth_most_in_the_home_currency() -> None:
    # ¥5,000,000.00 at 0.0067 is $33,500.00, less than Checking's $48,000.00; £40,000.00 at 1.27
    # is $50,800.00, more: the raw numbers say the opposite both times.
    yen = BankAccount("42", "Tokyo", "JPY", Decimal("5000000.00"), Decimal("33500.00"))
    pounds = BankAccount("43", "London", "GBP", Decimal("40000.00"), Decimal("50800.00"))
    assert (
        payment_account_id(_business(None), {"35": Decimal("48000.00"), "42": Decimal("33500.00")})
        == "35"
    )
    assert bill_payment_account(_home_usd(None), "JPY", [CHECKING, yen]) == CHECKING
    assert bill_payment_account(_home_usd(None), "GBP", [CHECKING, pounds]) == pounds
    # The digest's account and the settings' are named by the same comparison.
    assert (
        payment_account_id(_business(None), {"35": Decimal("48000.00"), "43": Decimal("50800.00")})
        == "43"
    )


CURRENCIES = st.sampled_from(["USD", "EUR", "GBP", "CAD", "JPY"])
#: Home (USD) units per unit of each currency; None: its rate is not known yet.
RATES = st.fixed_dictionaries(
    {
        "USD": st.just(Decimal(1)),
        "EUR": st.one_of(st.none(), st.decimals(min_value="0.5", max_value="2", places=4)),
        "GBP": st.one_of(st.none(), st.decimals(min_value="0.5", max_value="2", places=4)),
        "CAD": st.one_of(st.none(), st.decimals(min_value="0.5", max_value="2", places=4)),
        "JPY": st.one_of(st.none(), st.decimals(min_value="0.001", max_value="0.02", places=5)),
    }
)
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


def _priced(banks: list[BankAccount], rates: dict[str, Decimal | None]) -> list[BankAccount]:
    """The accounts with their home balance at the rates (as the mirror's rates give it)."""
    return [
        replace(
            bank,
            home_balance=None
            if rates[bank.currency] is None
            else home_amount(bank.balance, rates[bank.currency] or Decimal(1)),
        )
        for bank in banks
    ]


@given(
    banks=BANK_LISTS,
    rates=RATES,
    bill_currency=st.one_of(st.none(), CURRENCIES),
    chosen=st.one_of(st.none(), st.sampled_from([str(n) for n in range(30, 40)])),
)
def test_every_payment_account_is_one_quickbooks_accepts_and_a_good_choice_is_kept(
    banks: list[BankAccount],
    rates: dict[str, Decimal | None],
    bill_currency: str | None,
    chosen: str | None,
) -> None:
    banks = _priced(banks, rates)
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
    worth = {b.account_id: b.worth("USD") for b in banks}
    default = payment_account_id(_home_usd(chosen), worth)
    if any(b.account_id == default and b.currency in allowed for b in banks):
        assert paying.account_id == default
    if chosen_bank is None:
        # The largest is compared in dollars wherever the rate is known: the account it names is
        # worth the most, and no account worth less in dollars is preferred for more units.
        assert default == (max(worth, key=lambda i: (worth[i], i)) if banks else None)
        for bank in banks:
            if rates[bank.currency] is not None and bank.account_id != default:
                assert worth[bank.account_id] <= worth[default or ""]
