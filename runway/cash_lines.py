"""Which lines of a QuickBooks transaction can move money: one function per entity type.

Each function turns one QuickBooks object into `CashLine`s, read straight from its JSON: "`amount`
moved into `account_id` from `counter_account_id`" in the transaction's currency, with its home
amount. Whether a side is cash, and what class the movement is, is decided later from the
accounts' types (`runway.cash_flow.cash_movements`), so a line is kept even when neither of its
accounts is cash today (a card purchase: its card, its expense).

Where QuickBooks leaves an account out, it names no account (an item's income or expense
account), except that money received without a deposit account, and a deposit line carrying a
payment received earlier, is Undeposited Funds': QuickBooks' Payment and SalesReceipt put the
money there when DepositToAccountRef is left out
(https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/payment,
https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/salesreceipt).

Amounts are in the transaction's currency (CurrencyRef, else the home currency); ExchangeRate is
home units per unit of it, 1 when absent
(https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from runway.cash_flow import CashLine, home_amount

#: Lines of `obj` as (account, counter-account, amount) before currency and numbering.
_Flow = tuple[str | None, str | None, Decimal]


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("value") is not None:
        return str(value["value"])
    return None


def _amount(value: Any) -> Decimal:
    if value is None:
        return Decimal("0.00")
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    return amount.quantize(Decimal("0.01"))


def _lines(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [line for line in obj.get("Line") or [] if isinstance(line, Mapping)]


def _payment(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    account = _ref(obj.get("DepositToAccountRef")) or undeposited
    return [(account, None, _amount(obj.get("TotalAmt")))]


def _bill_payment(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    source = _ref((obj.get("CheckPayment") or {}).get("BankAccountRef")) or _ref(
        (obj.get("CreditCardPayment") or {}).get("CCAccountRef")
    )
    return [(source, None, -_amount(obj.get("TotalAmt")))]


def _expense_account(line: Mapping[str, Any]) -> str | None:
    detail = line.get("AccountBasedExpenseLineDetail")
    return _ref(detail.get("AccountRef")) if isinstance(detail, Mapping) else None


def _purchase(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    account = _ref(obj.get("AccountRef"))
    sign = 1 if obj.get("Credit") is True else -1  # a credit (refund) comes back in
    flows: list[_Flow] = [
        (account, _expense_account(line), sign * _amount(line.get("Amount")))
        for line in _lines(obj)
        if line.get("DetailType") in ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail")
    ]
    # What the lines do not carry (sales tax on top of them) left the account too: TotalAmt did.
    rest = sign * _amount(obj.get("TotalAmt")) - sum((flow[2] for flow in flows), Decimal("0.00"))
    if obj.get("TotalAmt") is not None and rest != 0:
        flows.append((account, None, rest))
    return flows


def _deposit(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    account = _ref(obj.get("DepositToAccountRef"))
    flows: list[_Flow] = []
    for line in _lines(obj):
        detail = line.get("DepositLineDetail")
        source = _ref(detail.get("AccountRef")) if isinstance(detail, Mapping) else None
        if source is None and line.get("LinkedTxn"):
            source = undeposited  # a payment or sales receipt waiting in Undeposited Funds
        flows.append((account, source, _amount(line.get("Amount"))))
    cash_back = obj.get("CashBack")
    if isinstance(cash_back, Mapping) and cash_back.get("Amount"):
        flows.append((account, _ref(cash_back.get("AccountRef")), -_amount(cash_back["Amount"])))
    return flows


def _sales_receipt(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    account = _ref(obj.get("DepositToAccountRef")) or undeposited
    return [(account, None, _amount(obj.get("TotalAmt")))]


def _refund_receipt(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    return [(_ref(obj.get("DepositToAccountRef")), None, -_amount(obj.get("TotalAmt")))]


def _transfer(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    return [
        (_ref(obj.get("ToAccountRef")), _ref(obj.get("FromAccountRef")), _amount(obj.get("Amount")))
    ]


def _credit_card_payment(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    # Money from the bank account to the card account (a limited Transfer):
    # https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/creditcardpayment
    return [
        (
            _ref(obj.get("CreditCardAccountRef")),
            _ref(obj.get("BankAccountRef")),
            _amount(obj.get("Amount")),
        )
    ]


def _journal_entry(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    """Debits paired with credits in line order: each pair is money into the debited account
    from the credited one (a two-line entry is one pair). The pairs keep each account's net;
    which cash paid for what is decided from the whole entry, whatever the lines' order
    (`runway.cash_flow.journal_entry_cash`)."""
    debits: list[list[Any]] = []
    credits: list[list[Any]] = []
    for line in _lines(obj):
        detail = line.get("JournalEntryLineDetail")
        if not isinstance(detail, Mapping):
            continue
        amount = _amount(line.get("Amount"))
        side = debits if detail.get("PostingType") == "Debit" else credits
        side.append([_ref(detail.get("AccountRef")), amount])
    flows: list[_Flow] = []
    d = c = 0
    while d < len(debits) and c < len(credits):
        paired = min(debits[d][1], credits[c][1])
        if paired > 0:
            flows.append((debits[d][0], credits[c][0], paired))
        debits[d][1] -= paired
        credits[c][1] -= paired
        if debits[d][1] <= 0:
            d += 1
        if credits[c][1] <= 0:
            c += 1
    return flows


def _vendor_credit(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    # Each line credits its account (A/P, unnamed, is debited): money out of the line's account.
    return [(_expense_account(line), None, -_amount(line.get("Amount"))) for line in _lines(obj)]


def _credit_memo(obj: Mapping[str, Any], undeposited: str | None) -> list[_Flow]:
    # Income (the items' accounts) against A/R: no account a credit memo names can be cash; the
    # money leaves only through the RefundReceipt or the Payment that applies it.
    return []


#: The entity types whose lines can move cash, each with its line function.
FLOWS: dict[str, Callable[[Mapping[str, Any], str | None], list[_Flow]]] = {
    "BillPayment": _bill_payment,
    "Payment": _payment,
    "Purchase": _purchase,
    "Deposit": _deposit,
    "SalesReceipt": _sales_receipt,
    "RefundReceipt": _refund_receipt,
    "Transfer": _transfer,
    "JournalEntry": _journal_entry,
    "VendorCredit": _vendor_credit,
    "CreditMemo": _credit_memo,
    "CreditCardPaymentTxn": _credit_card_payment,
}


def exchange_rate_of(obj: Mapping[str, Any]) -> Decimal:
    """The transaction's ExchangeRate (home units per unit of its currency), 1 when absent."""
    rate = obj.get("ExchangeRate")
    if rate is None:
        return Decimal(1)
    return rate if isinstance(rate, Decimal) else Decimal(str(rate))


def cash_lines(entity: str, obj: Mapping[str, Any], undeposited: str | None) -> list[CashLine]:
    """The lines of QuickBooks object `obj` of type `entity` that can move money (`undeposited`:
    the company's Undeposited Funds account, where QuickBooks leaves it out)."""
    flows = FLOWS[entity](obj, undeposited)
    day = date.fromisoformat(str(obj["TxnDate"])) if obj.get("TxnDate") else None
    currency_ref = obj.get("CurrencyRef")
    currency = _ref(currency_ref)
    rate = exchange_rate_of(obj)
    return [
        CashLine(
            txn_type=entity,
            txn_id=str(obj["Id"]),
            line=number,
            txn_date=day,
            account_id=account,
            counter_account_id=counter,
            amount=amount,
            home_amount=home_amount(amount, rate),
            currency=currency,
            exchange_rate=rate,
        )
        for number, (account, counter, amount) in enumerate(flows, start=1)
        if amount != 0
    ]


__all__ = ["FLOWS", "cash_lines", "exchange_rate_of"]
