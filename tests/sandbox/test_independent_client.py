"""An independent QBO client library (python-quickbooks + intuit-oauth), pointed at the sandbox's
base URL, works unchanged: the proof that the sandbox speaks QuickBooks Online's real API."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from intuitlib.client import AuthClient
from quickbooks import QuickBooks
from quickbooks.cdc import change_data_capture
from quickbooks.objects.base import LinkedTxn, Ref
from quickbooks.objects.bill import Bill
from quickbooks.objects.billpayment import BillPayment, BillPaymentLine, CheckPayment

pytestmark = pytest.mark.http


@pytest.fixture
def qb(live_sandbox, monkeypatch):
    sandbox = live_sandbox.sandbox
    # oauthlib's documented switch for plain-HTTP development servers (the sandbox is on loopback).
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    # The discovery document is the only thing intuit-oauth needs to find every OAuth endpoint.
    auth = AuthClient(
        client_id=sandbox.client_id,
        client_secret=sandbox.client_secret,
        redirect_uri="http://127.0.0.1/callback",
        environment=f"{live_sandbox.base_url}/.well-known/openid_configuration",
        access_token=sandbox.access_token,
        refresh_token=sandbox.refresh_token,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = QuickBooks(
            auth_client=auth,
            refresh_token=sandbox.refresh_token,
            company_id=sandbox.realm_id,
            minorversion=75,
            use_decimal=True,
        )
    # The library's own setting for the API host: the only difference from talking to QuickBooks.
    client.api_url_v3 = f"{live_sandbox.base_url}/v3"
    return client


def _open_bill(qb: QuickBooks) -> Bill:
    bills = Bill.where("Balance > '0'", order_by="DueDate", max_results=5, qb=qb)
    assert bills, "the seeded company has open bills"
    return bills[0]


def _checking_account_id(live_sandbox) -> str:
    realm = live_sandbox.sandbox.store.realm(live_sandbox.sandbox.realm_id)
    return next(a["Id"] for a in realm.iter("Account") if a.get("AccountType") == "Bank")


def test_query_and_read_bills(qb):
    bills = Bill.all(max_results=20, qb=qb)
    assert 0 < len(bills) <= 20
    one = Bill.get(bills[0].Id, qb=qb)
    assert one.Id == bills[0].Id
    assert one.VendorRef.value == bills[0].VendorRef.value
    assert Bill.count(qb=qb) >= len(bills)


def test_bill_payment_with_requestid_twice_makes_one_payment(qb, live_sandbox):
    bill = _open_bill(qb)
    amount = Decimal(str(bill.Balance))
    payment = BillPayment()
    payment.PayType = "Check"
    payment.TotalAmt = amount
    payment.VendorRef = bill.VendorRef
    payment.CheckPayment = CheckPayment()
    payment.CheckPayment.BankAccountRef = Ref()
    payment.CheckPayment.BankAccountRef.value = _checking_account_id(live_sandbox)
    line = BillPaymentLine()
    line.Amount = amount
    linked = LinkedTxn()
    linked.TxnId = bill.Id
    linked.TxnType = "Bill"
    line.LinkedTxn.append(linked)
    payment.Line.append(line)

    before = BillPayment.count(qb=qb)
    first = qb.create_object("BillPayment", payment.to_json(), request_id="oodaloo-indep-1")
    second = qb.create_object("BillPayment", payment.to_json(), request_id="oodaloo-indep-1")
    assert first["BillPayment"]["Id"] == second["BillPayment"]["Id"]
    assert BillPayment.count(qb=qb) == before + 1
    assert Decimal(str(Bill.get(bill.Id, qb=qb).Balance)) == Decimal("0")


def test_change_data_capture_and_report(qb):
    since = datetime.now(UTC) - timedelta(days=29)
    changes = change_data_capture([Bill], since, qb=qb)
    bills = changes.Bill._object_list
    assert bills and all(isinstance(b, Bill) for b in bills)

    report = qb.get_report("AgedPayables")
    assert report["Header"]["ReportName"] == "AgedPayables"
    assert report["Rows"]["Row"], "the aging report lists the open payables"


def test_refresh_through_intuit_oauth_rotates_the_refresh_token(qb):
    old_refresh = qb.auth_client.refresh_token
    qb.auth_client.refresh(refresh_token=old_refresh)
    assert qb.auth_client.refresh_token and qb.auth_client.refresh_token != old_refresh
    assert qb.auth_client.access_token
