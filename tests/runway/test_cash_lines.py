"""runway.cash_lines: each QuickBooks transaction's lines that can move money, read from its JSON
("amount into the account from the counter-account"), worked out by hand per entity type."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

from runway.cash_flow import AccountKind, cash_movements
from runway.cash_lines import cash_lines

D = Decimal
UF = "4"  # the company's Undeposited Funds


def ref(value: str) -> dict[str, str]:
    return {"value": value}


def flows(entity: str, obj: dict[str, Any]) -> list[tuple[str | None, str | None, Decimal]]:
    body = {"Id": "7", "TxnDate": "2026-11-02", **obj}
    return [
        (line.account_id, line.counter_account_id, line.amount)
        for line in cash_lines(entity, body, UF)
    ]


def test_money_received_without_a_deposit_account_waits_in_undeposited_funds() -> None:
    assert flows("Payment", {"TotalAmt": D("81.00")}) == [(UF, None, D("81.00"))]
    assert flows("Payment", {"TotalAmt": D("81.00"), "DepositToAccountRef": ref("2")}) == [
        ("2", None, D("81.00"))
    ]
    assert flows("SalesReceipt", {"TotalAmt": D("12.50")}) == [(UF, None, D("12.50"))]
    assert flows("Payment", {"TotalAmt": D("0.00")}) == []  # a credit memo applied: no money


def test_a_deposit_line_by_line_with_cash_back() -> None:
    deposit = {
        "DepositToAccountRef": ref("2"),
        "Line": [
            {"Amount": D("81.00"), "LinkedTxn": [{"TxnId": "98", "TxnType": "Payment"}]},
            {
                "Amount": D("500.00"),
                "DetailType": "DepositLineDetail",
                "DepositLineDetail": {"AccountRef": ref("8")},
            },
        ],
        "CashBack": {"AccountRef": ref("26"), "Amount": D("20.00")},
    }
    assert flows("Deposit", deposit) == [
        ("2", UF, D("81.00")),  # the payment leaving Undeposited Funds for the bank
        ("2", "8", D("500.00")),
        ("2", "26", D("-20.00")),
    ]


def test_a_purchase_pays_its_lines_and_the_tax_on_top_and_a_credit_comes_back() -> None:
    purchase = {
        "AccountRef": ref("2"),
        "TotalAmt": D("108.25"),
        "Line": [
            {
                "Amount": D("100.00"),
                "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": ref("15")},
            }
        ],
    }
    # 108.25 left the bank: 100.00 for the expense, 8.25 of tax no line carries.
    assert flows("Purchase", purchase) == [("2", "15", D("-100.00")), ("2", None, D("-8.25"))]
    refund = {**purchase, "Credit": True, "TotalAmt": D("100.00")}
    assert flows("Purchase", refund) == [("2", "15", D("100.00"))]


def test_bill_payments_transfers_card_payments_and_refunds() -> None:
    check = {"CheckPayment": {"BankAccountRef": ref("2")}, "TotalAmt": D("481.00")}
    card = {"CreditCardPayment": {"CCAccountRef": ref("6")}, "TotalAmt": D("99.00")}
    assert flows("BillPayment", check) == [("2", None, D("-481.00"))]
    assert flows("BillPayment", card) == [("6", None, D("-99.00"))]
    transfer = {"FromAccountRef": ref("2"), "ToAccountRef": ref("3"), "Amount": D("50.00")}
    assert flows("Transfer", transfer) == [("3", "2", D("50.00"))]
    paid = {"BankAccountRef": ref("2"), "CreditCardAccountRef": ref("6"), "Amount": D("40.00")}
    assert flows("CreditCardPaymentTxn", paid) == [("6", "2", D("40.00"))]
    assert flows("RefundReceipt", {"DepositToAccountRef": ref("2"), "TotalAmt": D("10.00")}) == [
        ("2", None, D("-10.00"))
    ]
    assert flows("CreditMemo", {"TotalAmt": D("30.00")}) == []


def journal(*lines: tuple[str, str, str]) -> dict[str, Any]:
    """A journal entry of (PostingType, account, amount) lines."""
    return {
        "Line": [
            {
                "Amount": D(amount),
                "DetailType": "JournalEntryLineDetail",
                "JournalEntryLineDetail": {"PostingType": kind, "AccountRef": ref(account)},
            }
            for kind, account, amount in lines
        ]
    }


#: The chart the journal entries below use.
KINDS = {
    "2": AccountKind("Bank", "Checking"),
    "3": AccountKind("Bank", "Savings"),
    UF: AccountKind("Other Current Asset", "UndepositedFunds"),
    "12": AccountKind("Fixed Asset"),
    "16": AccountKind("Expense"),
    "30": AccountKind("Other Current Liability"),
    "40": AccountKind("Long Term Liability"),
    "41": AccountKind("Expense"),
    "50": AccountKind("Income"),
}


def moved(entry: dict[str, Any]) -> set[tuple[str | None, str, str | None, Decimal]]:
    """Each movement of a journal entry: (cash account, class, counter-account type, amount)."""
    lines = cash_lines("JournalEntry", {"Id": "7", "TxnDate": "2026-11-02", **entry}, UF)
    return {
        (m.account_id, m.cash_flow.value, m.counter_account_type, m.amount)
        for m in cash_movements(lines, KINDS)
    }


def test_a_two_line_journal_entry_moves_its_cash_against_the_other_line() -> None:
    rent = {("2", "operating", "Expense", D("-100.00"))}
    assert moved(journal(("Debit", "16", "100.00"), ("Credit", "2", "100.00"))) == rent
    assert moved(journal(("Credit", "2", "100.00"), ("Debit", "16", "100.00"))) == rent
    # Between two banks: a transfer on each.
    assert moved(journal(("Debit", "3", "50.00"), ("Credit", "2", "50.00"))) == {
        ("3", "transfer", "Bank", D("50.00")),
        ("2", "transfer", "Bank", D("-50.00")),
    }
    # Equipment bought with the loan itself: no cash line, no cash moved.
    assert moved(journal(("Debit", "12", "900.00"), ("Credit", "40", "900.00"))) == set()


def test_a_journal_entry_moves_cash_against_its_non_cash_lines_whatever_their_order() -> None:
    # Dr rent 100, Dr checking 100 / Cr loan 100, Cr sales 100: the rent was paid out of the
    # sales (operating 0.00), the 100.00 in the bank is the loan's (financing +100.00), as
    # QuickBooks' statement says, in any line order.
    lines = [
        ("Debit", "16", "100.00"),
        ("Debit", "2", "100.00"),
        ("Credit", "40", "100.00"),
        ("Credit", "50", "100.00"),
    ]
    for order in itertools.permutations(lines):
        # Rent and sales net to no operating cash: the statement's operating 0.00.
        assert moved(journal(*order)) == {("2", "financing", "Long Term Liability", D("100.00"))}
    # Payroll: Dr wages 1,000.00 / Cr bank 800.00 / Cr payroll taxes owed 200.00: the bank
    # paid 800.00 of operating cash, wages out less the taxes still owed.
    payroll = journal(
        ("Debit", "16", "1000.00"), ("Credit", "2", "800.00"), ("Credit", "30", "200.00")
    )
    assert moved(payroll) == {("2", "operating", None, D("-800.00"))}
    # A loan instalment: Dr loan 900.00, Dr interest 100.00 / Cr bank 1,000.00.
    repayment = journal(
        ("Debit", "41", "100.00"), ("Credit", "2", "1000.00"), ("Debit", "40", "900.00")
    )
    assert moved(repayment) == {
        ("2", "financing", "Long Term Liability", D("-900.00")),
        ("2", "operating", "Expense", D("-100.00")),
    }


def test_a_journal_entry_spreads_its_cash_over_its_cash_accounts_by_their_nets() -> None:
    # Dr checking 100, Dr savings 200 / Cr sales 100, Cr loan 200: 300.00 came in, a third of it
    # operating and two thirds financing, into checking (100.00) and savings (200.00) alike:
    # checking 33.33 operating and 66.67 financing; savings the rest of each, 66.67 and 133.33.
    entry = journal(
        ("Credit", "40", "200.00"),
        ("Debit", "2", "100.00"),
        ("Credit", "50", "100.00"),
        ("Debit", "3", "200.00"),
    )
    assert moved(entry) == {
        ("2", "operating", "Income", D("33.33")),
        ("2", "financing", "Long Term Liability", D("66.67")),
        ("3", "operating", "Income", D("66.67")),
        ("3", "financing", "Long Term Liability", D("133.33")),
    }
    # Cash on both sides netting to nothing, with equipment bought on the loan: the statement
    # shows investing -900.00 and financing +900.00, and so does the entry's first cash account.
    entry = journal(
        ("Debit", "12", "900.00"),
        ("Credit", "40", "900.00"),
        ("Debit", "2", "10.00"),
        ("Credit", "2", "10.00"),
    )
    assert moved(entry) == {
        ("2", "investing", "Fixed Asset", D("-900.00")),
        ("2", "financing", "Long Term Liability", D("900.00")),
    }


def test_a_foreign_transaction_keeps_its_amount_and_its_home_amount() -> None:
    payment = {
        "CheckPayment": {"BankAccountRef": ref("2")},
        "TotalAmt": D("400.00"),
        "CurrencyRef": ref("EUR"),
        "ExchangeRate": D("1.0834"),
    }
    [line] = cash_lines("BillPayment", {"Id": "9", "TxnDate": "2026-11-02", **payment}, UF)
    # 400.00 × 1.0834 = 433.36.
    assert (line.amount, line.currency, line.exchange_rate, line.home_amount) == (
        D("-400.00"),
        "EUR",
        D("1.0834"),
        D("-433.36"),
    )
