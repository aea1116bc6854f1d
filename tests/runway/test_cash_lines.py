"""runway.cash_lines: each QuickBooks transaction's lines that can move money, read from its JSON
("amount into the account from the counter-account"), worked out by hand per entity type."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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


def test_a_journal_entry_pairs_its_debits_and_credits_in_line_order() -> None:
    def posting(kind: str, account: str, amount: str) -> dict[str, Any]:
        return {
            "Amount": D(amount),
            "DetailType": "JournalEntryLineDetail",
            "JournalEntryLineDetail": {"PostingType": kind, "AccountRef": ref(account)},
        }

    # Payroll: Dr wages 1,000.00 / Cr bank 800.00 / Cr payroll taxes owed 200.00.
    payroll = {
        "Line": [
            posting("Debit", "16", "1000.00"),
            posting("Credit", "2", "800.00"),
            posting("Credit", "30", "200.00"),
        ]
    }
    assert flows("JournalEntry", payroll) == [("16", "2", D("800.00")), ("16", "30", D("200.00"))]
    # A loan repayment with its interest: Dr loan 900.00, Dr interest 100.00 / Cr bank 1,000.00.
    repayment = {
        "Line": [
            posting("Debit", "40", "900.00"),
            posting("Debit", "41", "100.00"),
            posting("Credit", "2", "1000.00"),
        ]
    }
    assert flows("JournalEntry", repayment) == [("40", "2", D("900.00")), ("41", "2", D("100.00"))]


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
