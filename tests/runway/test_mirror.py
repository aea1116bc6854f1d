"""The QuickBooks mirror against the sandbox, on SQLite and PostgreSQL: a first sync copies every
field of every object, later syncs take one CDC call, deletes arrive, stale watermarks fall back to
paging, and syncing again changes nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from runway_env import RunwayEnv
from sqlalchemy import update

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import business_today
from runway.calculator import RunwayCalculator
from runway.mirror import CDC_ENTITIES, MIRRORED_ENTITIES, PAGE_SIZE, SyncReport
from runway.models import Business, SyncWatermark
from runway.snapshot import load_books
from runway.uow import TRANSACTION_ENTITIES

BUSINESS = "biz-larkspur"
D = Decimal


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Sandbox:
    """The default seeded company for the field-for-field test; a smaller scaled company (about
    1,100 objects) for the others, which are about sync behaviour and run faster on it."""
    if request.function.__name__ == "test_first_sync_mirrors_every_field_with_the_fewest_calls":
        return create_app(SandboxConfig(seed=DEFAULT_SEED))
    if request.function.__name__ == "test_cdc_refused_by_quickbooks_clock_pages_instead":
        # QuickBooks' clock is moved a month on; its access tokens must outlive that.
        return create_app(
            SandboxConfig(seed=DEFAULT_SEED, scale=150, access_token_lifetime=timedelta(days=60))
        )
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=150))


def requests_to(env: RunwayEnv, realm_id: str) -> dict[str, int]:
    return dict(env.sandbox.stats()["requests"]["by_realm"].get(realm_id, {}))


def pages_needed(count: int) -> int:
    """Pages of 1,000 until the first short one: the lower bound with the short-page rule."""
    return count // PAGE_SIZE + 1


def ref(obj: dict[str, Any], key: str) -> tuple[str | None, str | None]:
    value = obj.get(key) or {}
    return value.get("value"), value.get("name")


def aware(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def expected_columns(entity: str, obj: dict[str, Any]) -> dict[str, Any]:
    """The typed columns a mirrored row must hold for sandbox object `obj` (written out by hand)."""
    common = {
        "qbo_id": obj["Id"],
        "sync_token": obj["SyncToken"],
        "qbo_created_at": aware(obj["MetaData"]["CreateTime"]),
        "qbo_updated_at": aware(obj["MetaData"]["LastUpdatedTime"]),
        "raw": obj,
        "deleted_at": None,
    }
    currency = ref(obj, "CurrencyRef")[0]
    txn = {"txn_date": date.fromisoformat(obj["TxnDate"])} if "TxnDate" in obj else {}
    if entity == "CompanyInfo":
        specific = {
            "company_name": obj["CompanyName"],
            "legal_name": obj.get("LegalName"),
            "country": obj.get("Country"),
            "fiscal_year_start_month": obj.get("FiscalYearStartMonth"),
            "email": (obj.get("Email") or {}).get("Address"),
        }
    elif entity == "Account":
        specific = {
            "name": obj["Name"],
            "fully_qualified_name": obj.get("FullyQualifiedName"),
            "account_type": obj["AccountType"],
            "account_sub_type": obj.get("AccountSubType"),
            "classification": obj.get("Classification"),
            "active": obj["Active"],
            "current_balance": obj.get("CurrentBalance"),
            "currency": currency,
        }
    elif entity in ("Vendor", "Customer"):
        specific = {
            "display_name": obj["DisplayName"],
            "company_name": obj.get("CompanyName"),
            "email": (obj.get("PrimaryEmailAddr") or {}).get("Address"),
            "active": obj["Active"],
            "balance": obj.get("Balance"),
            "currency": currency,
        }
    elif entity == "Bill":
        balance = obj["Balance"]
        specific = {
            **txn,
            "doc_number": obj.get("DocNumber"),
            "vendor_qbo_id": ref(obj, "VendorRef")[0],
            "vendor_name": ref(obj, "VendorRef")[1],
            "due_date": date.fromisoformat(obj["DueDate"]) if obj.get("DueDate") else None,
            "total_amount": obj["TotalAmt"],
            "balance": balance,
            "currency": currency,
            "private_note": obj.get("PrivateNote"),
            "status": "paid"
            if balance == 0
            else ("open" if balance == obj["TotalAmt"] else "partially_paid"),
        }
    elif entity == "Invoice":
        balance = obj["Balance"]
        specific = {
            **txn,
            "doc_number": obj.get("DocNumber"),
            "customer_qbo_id": ref(obj, "CustomerRef")[0],
            "customer_name": ref(obj, "CustomerRef")[1],
            "due_date": date.fromisoformat(obj["DueDate"]) if obj.get("DueDate") else None,
            "total_amount": obj["TotalAmt"],
            "balance": balance,
            "currency": currency,
            "bill_email": (obj.get("BillEmail") or {}).get("Address"),
            "email_status": obj.get("EmailStatus"),
            "status": "paid"
            if balance == 0
            else ("open" if balance == obj["TotalAmt"] else "partially_paid"),
        }
    elif entity == "BillPayment":
        source = obj.get("CheckPayment", {}).get("BankAccountRef") or obj.get(
            "CreditCardPayment", {}
        ).get("CCAccountRef")
        specific = {
            **txn,
            "vendor_qbo_id": ref(obj, "VendorRef")[0],
            "pay_type": obj["PayType"],
            "paid_from_account_qbo_id": source["value"],
            "total_amount": obj["TotalAmt"],
            "bill_qbo_ids": [
                link["TxnId"]
                for line in obj["Line"]
                for link in line["LinkedTxn"]
                if link["TxnType"] == "Bill"
            ],
        }
    elif entity == "Payment":
        specific = {
            **txn,
            "customer_qbo_id": ref(obj, "CustomerRef")[0],
            "deposit_to_account_qbo_id": ref(obj, "DepositToAccountRef")[0],
            "total_amount": obj["TotalAmt"],
            "unapplied_amount": obj.get("UnappliedAmt"),
            "invoice_qbo_ids": [
                link["TxnId"]
                for line in obj.get("Line", [])
                for link in line.get("LinkedTxn", [])
                if link["TxnType"] == "Invoice"
            ],
        }
    elif entity == "Purchase":
        specific = {
            **txn,
            "account_qbo_id": ref(obj, "AccountRef")[0],
            "payment_type": obj["PaymentType"],
            "payee_qbo_id": (obj.get("EntityRef") or {}).get("value"),
            "payee_type": (obj.get("EntityRef") or {}).get("type"),
            "total_amount": obj["TotalAmt"],
            "credit": bool(obj.get("Credit", False)),
        }
    elif entity == "Deposit":
        specific = {
            **txn,
            "deposit_to_account_qbo_id": ref(obj, "DepositToAccountRef")[0],
            "total_amount": obj["TotalAmt"],
            "private_note": obj.get("PrivateNote"),
        }
    elif entity == "Preferences":
        prefs = obj.get("CurrencyPrefs") or {}
        specific = {
            "home_currency": (prefs.get("HomeCurrency") or {}).get("value"),
            "multicurrency_enabled": bool(prefs.get("MultiCurrencyEnabled", False)),
        }
    else:
        assert entity in TRANSACTION_ENTITIES, entity
        specific = {
            **txn,
            "entity_type": entity,
            "doc_number": obj.get("DocNumber"),
            "total_amount": obj.get("TotalAmt", obj.get("Amount")),
            "currency": currency,
            "exchange_rate": obj.get("ExchangeRate"),
            "private_note": obj.get("PrivateNote"),
        }
    if entity in ("Bill", "Invoice"):
        specific["exchange_rate"] = obj.get("ExchangeRate")
    return {**common, **specific}


async def assert_mirror_equals_sandbox(env: RunwayEnv, business_id: str, realm_id: str) -> int:
    """Every live mirrored row equals its sandbox object, field for field, and nothing is missing."""
    compared = 0
    realm = env.sandbox.realm(realm_id)
    async with env.uows(business_id) as uow:
        for entity in MIRRORED_ENTITIES:
            truth = {obj["Id"]: obj for obj in realm.iter(entity)}
            rows = {row.qbo_id: row for row in await uow.mirror(entity).all()}
            assert set(rows) == set(truth), f"{entity}: mirrored ids differ from QuickBooks'"
            for qbo_id, obj in truth.items():
                row = rows[qbo_id]
                for column, expected in expected_columns(entity, obj).items():
                    actual = getattr(row, column)
                    assert actual == expected, f"{entity} {qbo_id}.{column}: {actual!r} != {expected!r}"
                    if isinstance(expected, Decimal):
                        assert isinstance(actual, Decimal)
                    compared += 1
                assert row.business_id == business_id
                assert row.synced_at.tzinfo is not None
    return compared


async def test_first_sync_mirrors_every_field_with_the_fewest_calls(runway_env: RunwayEnv) -> None:
    env = runway_env
    realm = env.sandbox.realm()
    env.sandbox.reset_stats()

    report = await env.mirror(BUSINESS, env.sandbox.realm_id).sync()

    expected_calls = sum(pages_needed(realm.count(entity)) for entity in MIRRORED_ENTITIES)
    assert report.qbo_calls == expected_calls
    assert sum(requests_to(env, env.sandbox.realm_id).values()) == expected_calls
    assert report.cdc_calls == 0
    assert set(report.full_entities) == set(MIRRORED_ENTITIES)
    for entity in MIRRORED_ENTITIES:
        assert report.entities[entity].created == realm.count(entity)
    assert await assert_mirror_equals_sandbox(env, BUSINESS, env.sandbox.realm_id) > 30_000

    async with env.uows(BUSINESS) as uow:
        marks = await uow.watermarks.all()
        assert set(marks) == set(MIRRORED_ENTITIES)
        assert all(mark.as_of == report.as_of for mark in marks.values())
        assert all(mark.last_full_sync_at == report.started_at for mark in marks.values())
        banks = await uow.accounts.bank_accounts()
        assert banks and all(bank.balance_as_of >= report.started_at for bank in banks)


async def test_outside_changes_arrive_in_one_cdc_call(runway_env: RunwayEnv) -> None:
    env = runway_env
    realm_id = env.sandbox.realm_id
    mirror = env.mirror(BUSINESS, realm_id)
    await mirror.sync()
    realm = env.sandbox.realm()
    bill = next(obj for obj in realm.iter("Bill") if obj["Balance"] > 0)
    invoice = next(obj for obj in realm.iter("Invoice") if obj["Balance"] > 0)

    async with env.sandbox.http_client(access_token="") as admin:
        edited = await admin.post(
            f"/_sandbox/realms/{realm_id}/edit/Bill/{bill['Id']}",
            json={"DueDate": "2031-01-15", "PrivateNote": "Renegotiated: due in January"},
        )
        deleted = await admin.delete(f"/_sandbox/realms/{realm_id}/Invoice/{invoice['Id']}")
        created = await admin.post(
            f"/_sandbox/realms/{realm_id}/Vendor",
            json={"DisplayName": "Temescal Tile & Grout", "Active": True},
        )
    for response in (edited, deleted, created):
        assert response.status_code < 300, response.text
    new_vendor_id = created.json()["Vendor"]["Id"]
    env.sandbox.reset_stats()

    report = await mirror.sync()

    assert report.qbo_calls == 1 and report.cdc_calls == 1 and report.page_calls == 0
    assert requests_to(env, realm_id) == {"cdc": 1}
    assert set(report.entities) == set(CDC_ENTITIES)
    assert (report.entities["Bill"].updated, report.entities["Invoice"].deleted) == (1, 1)
    assert report.entities["Vendor"].created == 1
    # The books move with them: deleting an invoice lowers A/R's balance.
    assert report.changed == 3 + report.entities["Account"].updated
    async with env.uows(BUSINESS) as uow:
        mirrored_bill = await uow.bills.get(bill["Id"])
        assert mirrored_bill is not None
        assert mirrored_bill.due_date == date(2031, 1, 15)
        assert mirrored_bill.private_note == "Renegotiated: due in January"
        assert mirrored_bill.sync_token == str(int(bill["SyncToken"]) + 1)
        assert await uow.invoices.get(invoice["Id"]) is None
        gone = await uow.invoices.get(invoice["Id"], include_deleted=True)
        assert gone is not None and gone.deleted_at is not None
        vendor = await uow.vendors.get(new_vendor_id)
        assert vendor is not None and vendor.display_name == "Temescal Tile & Grout"
        # Unchanged accounts are not in the CDC answer, yet their balances are confirmed as fresh.
        banks = await uow.accounts.bank_accounts()
        assert banks and all(bank.balance_as_of >= report.started_at for bank in banks)
    assert await assert_mirror_equals_sandbox(env, BUSINESS, realm_id) > 0


async def test_syncing_again_changes_nothing(runway_env: RunwayEnv) -> None:
    env = runway_env
    mirror = env.mirror(BUSINESS, env.sandbox.realm_id)
    await mirror.sync()
    async with env.uows(BUSINESS) as uow:
        before = {row.qbo_id: row.synced_at for row in await uow.bills.all()}

    again = await mirror.sync()
    full_again = await mirror.sync(full=True)

    assert again.changed == 0 and again.qbo_calls == 1
    assert full_again.changed == 0
    async with env.uows(BUSINESS) as uow:
        after = {row.qbo_id: row.synced_at for row in await uow.bills.all()}
    assert after == before  # not even rewritten
    await assert_mirror_equals_sandbox(env, BUSINESS, env.sandbox.realm_id)


async def test_a_watermark_older_than_30_days_pages_everything_again(
    runway_env: RunwayEnv,
) -> None:
    env = runway_env
    realm_id = env.sandbox.realm_id
    mirror = env.mirror(BUSINESS, realm_id)
    await mirror.sync()
    # A deletion CDC can no longer report (the gap is too long): only a full sync notices it.
    realm = env.sandbox.realm()
    payment = next(iter(realm.iter("Purchase")))
    realm.remove("Purchase", payment["Id"])
    long_ago = datetime.now(UTC) - timedelta(days=31)
    async with env.db.sessions() as session:
        await session.execute(
            update(SyncWatermark)
            .where(SyncWatermark.business_id == BUSINESS)
            .values(last_cdc_at=long_ago)
        )
        await session.commit()
    env.sandbox.reset_stats()

    report: SyncReport = await mirror.sync()

    assert report.cdc_calls == 0
    assert set(report.full_entities) == set(CDC_ENTITIES)  # CompanyInfo is still fresh
    assert all("30 days" in report.entities[entity].reason for entity in CDC_ENTITIES)
    assert report.qbo_calls == sum(pages_needed(realm.count(entity)) for entity in CDC_ENTITIES)
    assert "cdc" not in requests_to(env, realm_id)
    assert report.entities["Purchase"].deleted == 1 and report.changed == 1
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)


async def test_a_cdc_answer_at_its_ceiling_pages_that_entity(runway_env: RunwayEnv) -> None:
    env = runway_env
    realm_id = env.sandbox.realm_id
    mirror = env.mirror(BUSINESS, realm_id)
    await mirror.sync()
    realm = env.sandbox.realm()
    template = next(iter(realm.iter("Bill")))
    for number in range(PAGE_SIZE):  # more changed bills than one CDC answer may hold
        copy = {k: v for k, v in template.items() if k not in ("Id", "MetaData", "SyncToken")}
        realm.insert("Bill", {**copy, "DocNumber": f"BULK-{number}"})
    env.sandbox.reset_stats()

    report = await mirror.sync()

    assert report.cdc_calls == 1
    assert report.full_entities == ["Bill"]
    assert report.qbo_calls == 1 + pages_needed(realm.count("Bill"))
    assert report.entities["Bill"].created == PAGE_SIZE
    assert requests_to(env, realm_id) == {"cdc": 1, "query": pages_needed(realm.count("Bill"))}
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)


async def test_two_syncs_at_once_take_turns(runway_env: RunwayEnv) -> None:
    env = runway_env
    realm_id = env.sandbox.realm_id
    first, second = await asyncio.gather(
        env.mirror(BUSINESS, realm_id).sync(), env.mirror(BUSINESS, realm_id).sync()
    )

    reports = sorted([first, second], key=lambda report: report.started_at)
    assert reports[0].created == sum(
        env.sandbox.realm().count(entity) for entity in MIRRORED_ENTITIES
    )
    assert reports[1].changed == 0 and reports[1].cdc_calls == 1
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)


async def test_cdc_refused_by_quickbooks_clock_pages_instead(runway_env: RunwayEnv) -> None:
    """Our watermark is recent by our clock, but QuickBooks' clock says it is past CDC's 30 days."""
    env = runway_env
    realm_id = env.sandbox.realm_id
    mirror = env.mirror(BUSINESS, realm_id)
    await mirror.sync()
    env.sandbox.advance_clock(timedelta(days=31))
    env.sandbox.reset_stats()

    report = await mirror.sync()

    realm = env.sandbox.realm()
    assert report.cdc_calls == 1 and set(report.full_entities) == set(CDC_ENTITIES)
    assert report.qbo_calls == 1 + sum(pages_needed(realm.count(entity)) for entity in CDC_ENTITIES)
    assert all("refused" in report.entities[entity].reason for entity in CDC_ENTITIES)
    assert report.changed == 0
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)


async def cash_lines_of(env: RunwayEnv, txn_type: str, txn_id: str) -> list[tuple[Any, ...]]:
    async with env.uows(BUSINESS) as uow:
        lines = await uow.cash_lines.dated_between(date(2000, 1, 1))
    return [
        (line.account_id, line.counter_account_id, line.amount, line.home_amount)
        for line in lines
        if (line.txn_type, line.txn_id) == (txn_type, txn_id)
    ]


async def test_every_transaction_that_moves_cash_is_mirrored_with_its_cash_lines(
    runway_env: RunwayEnv,
) -> None:
    """Sales and refund receipts, transfers, journal entries, vendor credits, credit memos and
    credit-card payments, written through QuickBooks' API: mirrored by the first sync, then
    created and deleted through one CDC call, each with its cash lines."""
    env = runway_env
    realm_id = env.sandbox.realm_id
    realm = env.sandbox.realm()
    kinds = {obj["AccountType"]: obj["Id"] for obj in realm.iter("Account")}
    checking = next(obj["Id"] for obj in realm.iter("Account") if obj["Name"] == "Checking")
    savings = next(obj["Id"] for obj in realm.iter("Account") if obj["Name"] == "Savings")
    equity, card, expense = kinds["Equity"], kinds["Credit Card"], kinds["Expense"]
    vendor = next(iter(realm.iter("Vendor")))["Id"]
    customer = next(iter(realm.iter("Customer")))["Id"]
    day = "2026-12-01"
    async with env.sandbox.http_client() as client:

        async def create(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(env.sandbox.v3_path(entity.lower()), json=body)
            assert response.status_code == 200, response.text
            created: dict[str, Any] = next(iter(response.json().values()))
            return created

        item = await create(
            "Item",
            {"Name": "Counter sales", "Type": "Service", "IncomeAccountRef": {"value": kinds["Income"]}},
        )

        def sale(amount: str) -> dict[str, Any]:
            return {
                "TxnDate": day,
                "DepositToAccountRef": {"value": checking},
                "CustomerRef": {"value": customer},
                "Line": [
                    {
                        "Amount": amount,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}},
                    }
                ],
            }

        receipt = await create("SalesReceipt", sale("100.00"))
        refund = await create("RefundReceipt", sale("10.00"))
        transfer = await create(
            "Transfer",
            {
                "TxnDate": day,
                "FromAccountRef": {"value": checking},
                "ToAccountRef": {"value": savings},
                "Amount": "50.00",
            },
        )
        journal = await create(
            "JournalEntry",
            {
                "TxnDate": day,
                "Line": [
                    {
                        "Amount": "70.00",
                        "DetailType": "JournalEntryLineDetail",
                        "JournalEntryLineDetail": {
                            "PostingType": posting,
                            "AccountRef": {"value": account},
                        },
                    }
                    for posting, account in (("Debit", checking), ("Credit", equity))
                ],
            },
        )
        vendor_credit = await create(
            "VendorCredit",
            {
                "TxnDate": day,
                "VendorRef": {"value": vendor},
                "Line": [
                    {
                        "Amount": "20.00",
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense}},
                    }
                ],
            },
        )
        memo = await create("CreditMemo", {**sale("30.00"), "DepositToAccountRef": None})
        card_payment = await create(
            "CreditCardPayment",
            {
                "TxnDate": day,
                "BankAccountRef": {"value": checking},
                "CreditCardAccountRef": {"value": card},
                "Amount": "40.00",
            },
        )
    mirror = env.mirror(BUSINESS, realm_id)
    env.sandbox.reset_stats()

    first = await mirror.sync()

    assert first.qbo_calls == sum(pages_needed(realm.count(e)) for e in MIRRORED_ENTITIES)
    for entity in TRANSACTION_ENTITIES:
        assert first.entities[entity].created == realm.count(entity) >= 1
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)
    # Each line as "amount into the account from the counter-account", written out by hand.
    assert await cash_lines_of(env, "SalesReceipt", receipt["Id"]) == [
        (checking, None, D("100.00"), D("100.00"))
    ]
    assert await cash_lines_of(env, "RefundReceipt", refund["Id"]) == [
        (checking, None, D("-10.00"), D("-10.00"))
    ]
    assert await cash_lines_of(env, "Transfer", transfer["Id"]) == [
        (savings, checking, D("50.00"), D("50.00"))
    ]
    assert await cash_lines_of(env, "JournalEntry", journal["Id"]) == [
        (checking, equity, D("70.00"), D("70.00"))
    ]
    assert await cash_lines_of(env, "VendorCredit", vendor_credit["Id"]) == [
        (expense, None, D("-20.00"), D("-20.00"))
    ]
    assert await cash_lines_of(env, "CreditMemo", memo["Id"]) == []
    assert await cash_lines_of(env, "CreditCardPaymentTxn", card_payment["Id"]) == [
        (card, checking, D("40.00"), D("40.00"))
    ]

    # Later: another sale, and the journal entry and the card payment deleted in QuickBooks.
    async with env.sandbox.http_client() as client:
        response = await client.post(env.sandbox.v3_path("salesreceipt"), json=sale("25.00"))
        assert response.status_code == 200, response.text
        second_receipt = response.json()["SalesReceipt"]
    async with env.sandbox.http_client(access_token="") as admin:
        for entity, obj in (("JournalEntry", journal), ("CreditCardPaymentTxn", card_payment)):
            gone = await admin.delete(f"/_sandbox/realms/{realm_id}/{entity}/{obj['Id']}")
            assert gone.status_code < 300, gone.text
    env.sandbox.reset_stats()

    second = await mirror.sync()

    assert (second.qbo_calls, second.cdc_calls) == (1, 1)
    assert requests_to(env, realm_id) == {"cdc": 1}
    assert second.entities["SalesReceipt"].created == 1
    assert second.entities["JournalEntry"].deleted == 1
    assert second.entities["CreditCardPaymentTxn"].deleted == 1
    assert await cash_lines_of(env, "SalesReceipt", second_receipt["Id"]) == [
        (checking, None, D("25.00"), D("25.00"))
    ]
    assert await cash_lines_of(env, "JournalEntry", journal["Id"]) == []
    assert await cash_lines_of(env, "CreditCardPaymentTxn", card_payment["Id"]) == []
    await assert_mirror_equals_sandbox(env, BUSINESS, realm_id)


async def test_a_foreign_bank_account_is_cash_at_quickbooks_latest_rate_read_once_a_day(
    runway_env: RunwayEnv,
) -> None:
    """Multicurrency on, a EUR bank account holding €5,000.00: its rate is read once per sync
    (`GET /exchangerate`), and not again the same day; the cash counts it at that rate."""
    env = runway_env
    realm_id = env.sandbox.realm_id
    realm = env.sandbox.realm()
    equity = next(obj["Id"] for obj in realm.iter("Account") if obj["AccountType"] == "Equity")
    rate_day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    async with env.sandbox.http_client(access_token="") as admin:
        response = await admin.post(
            f"/_sandbox/realms/{realm_id}/multicurrency",
            json={
                "currencies": ["EUR"],
                "rates": [{"SourceCurrencyCode": "EUR", "AsOfDate": rate_day, "Rate": "1.0825"}],
            },
        )
        assert response.status_code < 300, response.text
    async with env.sandbox.http_client() as client:
        account = await client.post(
            env.sandbox.v3_path("account"),
            json={
                "Name": "Euro account",
                "AccountType": "Bank",
                "AccountSubType": "Checking",
                "CurrencyRef": {"value": "EUR"},
            },
        )
        assert account.status_code == 200, account.text
        euro_id = account.json()["Account"]["Id"]
        put_in = await client.post(
            env.sandbox.v3_path("deposit"),
            json={
                "TxnDate": rate_day,
                "DepositToAccountRef": {"value": euro_id},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": "1.0825",
                "Line": [
                    {
                        "Amount": "5000.00",
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": {"value": equity}},
                    }
                ],
            },
        )
        assert put_in.status_code == 200, put_in.text
    mirror = env.mirror(BUSINESS, realm_id)
    env.sandbox.reset_stats()

    first = await mirror.sync()

    pages = sum(pages_needed(realm.count(entity)) for entity in MIRRORED_ENTITIES)
    assert (first.rate_calls, first.qbo_calls) == (1, pages + 1)
    assert requests_to(env, realm_id).get("exchangerate", 1) == 1
    second = await mirror.sync()
    assert (second.rate_calls, second.qbo_calls) == (0, 1)  # the day's rate is known
    async with env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, business_today(datetime.now(UTC), "UTC"))
        # Each transaction's movements, as the mirror keeps them (the snapshot reads their sums).
        movements = await uow.cash_movements.dated_between(books.today - timedelta(days=180))
    euro = next(bank for bank in books.banks if bank.account_id == euro_id)
    # €5,000.00 × 1.0825 = $5,412.50.
    assert (euro.currency, euro.balance, euro.exchange_rate) == ("EUR", D("5000.00"), D("1.0825"))
    assert euro.home_balance == D("5412.50")
    assert books.multicurrency and books.currency == "USD"
    others = sum((bank.balance for bank in books.banks if bank.account_id != euro_id), D("0"))
    assert RunwayCalculator().cash_on_hand(books).total == others + D("5412.50")
    # The owner's euros are financing, in dollars at the deposit's rate: 5,000 × 1.0825.
    [owner] = [m for m in movements if m.account_id == euro_id]
    assert (owner.amount, owner.currency, owner.currency_amount) == (
        D("5412.50"),
        "EUR",
        D("5000.00"),
    )


async def test_the_home_currency_is_the_quickbooks_companys(runway_env: RunwayEnv) -> None:
    """A business set up with another home currency than its company's takes QuickBooks' own
    (Preferences.CurrencyPrefs.HomeCurrency) at the first sync."""
    env = runway_env
    async with env.db.sessions() as session:
        await session.execute(
            update(Business).where(Business.id == BUSINESS).values(home_currency="CAD")
        )
        await session.commit()
    [preferences] = list(env.sandbox.realm().iter("Preferences"))
    home = preferences["CurrencyPrefs"]["HomeCurrency"]["value"]
    assert home != "CAD"

    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()

    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None and business.home_currency == home
        books = await load_books(uow, BUSINESS, business_today(datetime.now(UTC), "UTC"))
    assert books.currency == home


async def test_a_payment_oodaloo_made_has_its_cash_lines_as_soon_as_it_is_mirrored(
    runway_env: RunwayEnv,
) -> None:
    """Oodaloo mirrors its own payment as soon as QuickBooks confirms it, from the request it sent
    (which has no Id): its cash line is there at once, and a second insert of it (a sync that read it
    meanwhile) leaves that one line."""
    env = runway_env
    await env.mirror(BUSINESS, env.sandbox.realm_id).sync()
    sent = {
        "VendorRef": {"value": "27"},
        "PayType": "Check",
        "CheckPayment": {"BankAccountRef": {"value": "2"}},
        "TotalAmt": D("481.00"),
        "TxnDate": "2026-12-01",
        "Line": [{"Amount": D("481.00"), "LinkedTxn": [{"TxnId": "1", "TxnType": "Bill"}]}],
    }
    async with env.uows(BUSINESS) as uow:
        inserted = await uow.bill_payments.insert_new(
            {
                "qbo_id": "90001",
                "sync_token": "0",
                "raw": sent,
                "synced_at": datetime.now(UTC),
                "txn_date": date(2026, 12, 1),
                "paid_from_account_qbo_id": "2",
                "total_amount": D("481.00"),
                "bill_qbo_ids": ["1"],
            }
        )
        again = await uow.bill_payments.insert_new(
            {
                "qbo_id": "90001",
                "sync_token": "0",
                "raw": sent,
                "synced_at": datetime.now(UTC),
                "total_amount": D("481.00"),
            }
        )
        await uow.commit()
    assert (inserted, again) == (True, False)
    assert await cash_lines_of(env, "BillPayment", "90001") == [
        ("2", None, D("-481.00"), D("-481.00"))
    ]
