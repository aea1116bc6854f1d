"""Drift detection compares Oodaloo's snapshot with QBO's objects and explains each difference.

QBO objects are JSON text in QBO's own shapes (taken from sandbox responses), parsed the way the
client parses them: simplejson with Decimal amounts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import simplejson

from sync.drift import (
    ActionMissingInQBO,
    AmountChanged,
    BalanceChanged,
    DeletedInQBO,
    LocalAction,
    LocalBill,
    LocalInvoice,
    PaidHereOpenInQBO,
    action_drift,
    bill_drift,
    invoice_drift,
)


def qbo(text: str) -> Any:
    return simplejson.loads(text, use_decimal=True)


def qbo_bill(*, balance: str = "315.00", total: str = "315.00", sync_token: str = "0") -> Any:
    return qbo(
        f"""{{
        "DueDate": "2023-02-18", "Balance": {balance}, "domain": "QBO", "sparse": false,
        "Id": "108", "SyncToken": "{sync_token}",
        "MetaData": {{"CreateTime": "2023-02-18T12:36:59-08:00",
                      "LastUpdatedTime": "2023-02-18T12:36:59-08:00"}},
        "TxnDate": "2023-02-18",
        "CurrencyRef": {{"value": "USD", "name": "United States Dollar"}},
        "Line": [{{"Id": "1", "LineNum": 1, "Amount": {total},
                   "DetailType": "AccountBasedExpenseLineDetail"}}],
        "VendorRef": {{"value": "49", "name": "Robertson & Associates <*billing*>"}},
        "APAccountRef": {{"value": "33", "name": "Accounts Payable (A/P)"}},
        "TotalAmt": {total}
    }}"""
    )


def qbo_invoice(*, balance: str = "362.07", total: str = "362.07") -> Any:
    return qbo(
        f"""{{
        "Id": "129", "SyncToken": "0", "DocNumber": "1036", "domain": "QBO",
        "CustomerRef": {{"value": "58", "name": "Sonnenschein Family Store"}},
        "CurrencyRef": {{"value": "USD", "name": "United States Dollar"}},
        "DueDate": "2023-03-20", "TotalAmt": {total}, "Balance": {balance},
        "EmailStatus": "NotSet", "BillEmail": {{"Address": "Familiystore@intuit.com"}}
    }}"""
    )


BILL_PAYMENT = """{
    "VendorRef": {"value": "49", "name": "Robertson & Associates"},
    "PayType": "Check",
    "CheckPayment": {"BankAccountRef": {"value": "35", "name": "Checking"},
                     "PrintStatus": "NotSet"},
    "TotalAmt": 315.00, "domain": "QBO", "sparse": false, "Id": "240", "SyncToken": "0",
    "PrivateNote": "Paid from Oodaloo (oo1-sog3com2jdyhjnakowkibya4hlo57cdp)",
    "TxnDate": "2023-02-20",
    "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
    "Line": [{"Amount": 315.00, "LinkedTxn": [{"TxnId": "108", "TxnType": "Bill"}]}]
}"""

OPEN_BILL = LocalBill(
    id="108",
    amount=Decimal("315.00"),
    balance=Decimal("315.00"),
    sync_token="0",
    paid_locally=False,
    vendor_name="Robertson & Associates",
)
PAID_BILL = LocalBill(
    id="108",
    amount=Decimal("315.00"),
    balance=Decimal("0.00"),
    sync_token="1",
    paid_locally=True,
    vendor_name="Robertson & Associates",
)
INVOICE = LocalInvoice(
    id="129",
    amount=Decimal("362.07"),
    balance=Decimal("362.07"),
    sync_token="0",
    customer_name="Sonnenschein Family Store",
    doc_number="1036",
)
PAYMENT_ACTION = LocalAction(
    key="oo1-sog3com2jdyhjnakowkibya4hlo57cdp",
    target_id="108",
    amount=Decimal("315.00"),
    state="succeeded",
    qbo_object_id="240",
)


def test_matching_objects_have_no_drift() -> None:
    assert bill_drift([OPEN_BILL], [qbo_bill()]) == []
    assert bill_drift([PAID_BILL], [qbo_bill(balance="0", sync_token="1")]) == []
    assert invoice_drift([INVOICE], [qbo_invoice()]) == []
    assert action_drift([PAYMENT_ACTION], [qbo(BILL_PAYMENT)]) == []


def test_amount_changed_in_qbo() -> None:
    drift = bill_drift([OPEN_BILL], [qbo_bill(total="350.00", balance="350.00", sync_token="1")])

    # The balance moved with the total: one change, reported once.
    assert drift == [
        AmountChanged(
            entity_type="Bill",
            entity_id="108",
            local_amount=Decimal("315.00"),
            qbo_amount=Decimal("350.00"),
            name="Robertson & Associates <*billing*>",
            currency="USD",
        )
    ]
    assert drift[0].describe() == (
        "Bill 108 (Robertson & Associates <*billing*>) now totals $350.00 in QuickBooks; "
        "Oodaloo had $315.00."
    )


def test_balance_changed_in_qbo() -> None:
    drift = invoice_drift([INVOICE], [qbo_invoice(balance="100.00")])

    assert drift == [
        BalanceChanged(
            entity_type="Invoice",
            entity_id="129",
            local_balance=Decimal("362.07"),
            qbo_balance=Decimal("100.00"),
            name="Sonnenschein Family Store",
            reference="1036",
            currency="USD",
        )
    ]
    assert drift[0].describe() == (
        "Invoice 1036 (Sonnenschein Family Store) has an open balance of $100.00 in QuickBooks; "
        "Oodaloo had $362.07."
    )


def test_amount_and_an_unrelated_balance_change_are_both_reported() -> None:
    drift = bill_drift([OPEN_BILL], [qbo_bill(total="400.00", balance="150.00")])

    assert [type(item) for item in drift] == [AmountChanged, BalanceChanged]


def test_paid_here_but_open_in_qbo() -> None:
    # The bill payment Oodaloo made was deleted in QuickBooks: the bill is open again.
    drift = bill_drift([PAID_BILL], [qbo_bill(balance="315.00", sync_token="2")])

    assert drift == [
        PaidHereOpenInQBO(
            entity_type="Bill",
            entity_id="108",
            local_balance=Decimal("0.00"),
            qbo_balance=Decimal("315.00"),
            name="Robertson & Associates <*billing*>",
            currency="USD",
        )
    ]
    assert drift[0].describe() == (
        "Bill 108 (Robertson & Associates <*billing*>) was paid through Oodaloo, but QuickBooks "
        "still shows it open with $315.00 to pay."
    )


@pytest.mark.parametrize(
    "qbo_bills",
    [
        pytest.param([], id="absent-from-query"),
        pytest.param(
            [qbo('{"status": "Deleted", "domain": "QBO", "Id": "108"}')], id="deleted-in-cdc"
        ),
    ],
)
def test_deleted_in_qbo(qbo_bills: list[Any]) -> None:
    drift = bill_drift([OPEN_BILL], qbo_bills)

    assert drift == [
        DeletedInQBO(
            entity_type="Bill",
            entity_id="108",
            local_amount=Decimal("315.00"),
            name="Robertson & Associates",
        )
    ]
    assert drift[0].qbo_amount is None
    assert drift[0].describe() == (
        "Bill 108 (Robertson & Associates), for 315.00, has been deleted in QuickBooks."
    )


def test_action_missing_in_qbo() -> None:
    other_payment = qbo(BILL_PAYMENT.replace('"240"', '"241"').replace("oo1-", "xx1-"))

    drift = action_drift([PAYMENT_ACTION], [other_payment])

    assert drift == [
        ActionMissingInQBO(
            action_key="oo1-sog3com2jdyhjnakowkibya4hlo57cdp",
            target_type="Bill",
            target_id="108",
            object_type="BillPayment",
            object_id="240",
            local_amount=Decimal("315.00"),
        )
    ]
    assert drift[0].describe() == (
        "Oodaloo made BillPayment 240 of 315.00 for Bill 108, but it cannot be found in "
        "QuickBooks (action oo1-sog3com2jdyhjnakowkibya4hlo57cdp)."
    )


def test_action_found_by_its_key_in_the_memo_when_the_reply_was_lost() -> None:
    lost_reply = LocalAction(
        key=PAYMENT_ACTION.key, target_id="108", amount=Decimal("315"), state="succeeded"
    )

    assert action_drift([lost_reply], [qbo(BILL_PAYMENT)]) == []
    deleted = qbo('{"status": "Deleted", "domain": "QBO", "Id": "240"}')
    missing = action_drift([PAYMENT_ACTION], [deleted])
    assert [type(item) for item in missing] == [ActionMissingInQBO]


def test_only_succeeded_actions_are_expected_in_qbo() -> None:
    for state in ("pending", "in_flight", "failed", "unknown", "needs_human"):
        assert action_drift([LocalAction("oo1-x", "108", Decimal("1.00"), state)], []) == []


def test_action_object_with_another_amount() -> None:
    edited = qbo(BILL_PAYMENT.replace("315.00", "300.00"))

    drift = action_drift([PAYMENT_ACTION], [edited])

    assert drift == [
        AmountChanged(
            entity_type="BillPayment",
            entity_id="240",
            local_amount=Decimal("315.00"),
            qbo_amount=Decimal("300.00"),
            currency="USD",
        )
    ]
    assert drift[0].describe() == (
        "BillPayment 240 now totals $300.00 in QuickBooks; Oodaloo had $315.00."
    )


def test_float_amounts_from_qbo_are_refused() -> None:
    parsed_with_floats = simplejson.loads(simplejson.dumps(qbo_bill()), use_decimal=False)

    with pytest.raises(TypeError, match="use_decimal=True"):
        bill_drift([OPEN_BILL], [parsed_with_floats])


def test_every_drift_kind_has_a_distinct_name() -> None:
    kinds = {
        kind.kind
        for kind in (
            AmountChanged,
            BalanceChanged,
            PaidHereOpenInQBO,
            DeletedInQBO,
            ActionMissingInQBO,
        )
    }
    assert kinds == {
        "amount_changed",
        "balance_changed",
        "paid_here_open_in_qbo",
        "deleted_in_qbo",
        "action_missing_in_qbo",
    }
