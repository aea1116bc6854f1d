"""Paying a bill in a foreign currency, through the Pay path every surface uses
(`runway.use_cases.pay_bill`), against a sandbox company with multicurrency on (home USD).

A €1,000.00 bill from a EUR supplier, entered at 1.08; QuickBooks' rate on the pay date is 1.10.
Worked by hand:
- paid from Checking (USD): the BillPayment is in EUR (CurrencyRef EUR, TotalAmt and the applied
  Amount 1,000.00) at ExchangeRate 1.10, the bank goes down by 1,000.00 × 1.10 = $1,100.00, the
  bill's balance to 0;
- paid from the Euro account (EUR): the same BillPayment from that account, which goes down by
  €1,000.00;
- chosen to pay from Sterling Savings (GBP): refused in words before anything is sent: no
  BillPayment in QuickBooks, no action in the ledger;
- QuickBooks' rate out of reach: refused in words, nothing sent;
- its answer lost: the reconciler finds the euro payment by its marker and amount.
A company with multicurrency off pays as it always did, without asking for a rate (and
tests/runway/test_bills.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from runway_env import RunwayEnv

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.bills import BillService
from runway.books import OpenBill, business_today
from runway.calculator import RunwayCalculator, RunwayFigures
from runway.lifecycle import BillState
from runway.snapshot import load_books
from runway.use_cases import Result, pay_bill
from sync.ledger import ActionState
from sync.reconcile import Reconciler, sweep_until_settled
from sync_harness import (
    admin_http,
    admin_stats,
    create_bills,
    payments_marked,
    put_faults,
    route_count,
    setup_client,
    stored,
)

BUSINESS = "biz-larkspur"
SCALE = 3
OWNER = "U-OWNER"
BILL_RATE = Decimal("1.08")
PAY_RATE = Decimal("1.10")


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=SCALE))


@dataclass(frozen=True)
class ForeignCompany:
    bill_id: str
    checking: str
    euro_bank: str
    gbp_savings: str


async def foreign_company(env: RunwayEnv) -> ForeignCompany:
    """Multicurrency on (home USD) with EUR and GBP, QuickBooks' EUR rates (1.08 when the bill was
    entered, 1.10 since yesterday), a EUR supplier, a EUR and a GBP bank account, and a €1,000.00
    bill at 1.08, written through QuickBooks' v3 API."""
    today = business_today(env.infra.clock.now(), "America/Los_Angeles")
    rates = [
        {"SourceCurrencyCode": "EUR", "AsOfDate": day.isoformat(), "Rate": str(rate)}
        for day, rate in (
            (today - timedelta(days=20), BILL_RATE),
            (today - timedelta(days=1), PAY_RATE),
        )
    ]
    # Turned on in QuickBooks' own settings (the API cannot), with its EUR rates.
    async with admin_http(env.sandbox) as admin:
        response = await admin.post(
            f"/_sandbox/realms/{env.sandbox.realm_id}/multicurrency",
            json={"currencies": ["EUR", "GBP"], "rates": rates},
        )
        assert response.status_code == 200, response.text
    async with setup_client(env.sandbox) as client:

        async def write(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            return await client.create(entity, body, request_id=f"setup-{uuid.uuid4().hex[:16]}")

        vendor = await write(
            "Vendor", {"DisplayName": "Lyon Textiles SARL", "CurrencyRef": {"value": "EUR"}}
        )
        euro = await write(
            "Account",
            {"Name": "Euro account", "AccountType": "Bank", "CurrencyRef": {"value": "EUR"}},
        )
        savings = await write(
            "Account",
            {"Name": "Sterling Savings", "AccountType": "Bank", "CurrencyRef": {"value": "GBP"}},
        )
        banks = await client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
        checking = next(
            bank for bank in banks if (bank.get("CurrencyRef") or {}).get("value", "USD") == "USD"
        )
        expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
        bill = await write(
            "Bill",
            {
                "VendorRef": {"value": vendor["Id"]},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": BILL_RATE,
                "TxnDate": (today - timedelta(days=20)).isoformat(),
                "DueDate": (today + timedelta(days=5)).isoformat(),
                "Line": [
                    {
                        "Amount": Decimal("1000.00"),
                        "DetailType": "AccountBasedExpenseLineDetail",
                        "AccountBasedExpenseLineDetail": {"AccountRef": {"value": expense["Id"]}},
                    }
                ],
            },
        )
    return ForeignCompany(str(bill["Id"]), str(checking["Id"]), str(euro["Id"]), str(savings["Id"]))


async def ready_to_pay(env: RunwayEnv, pay_from: str) -> tuple[BillService, ForeignCompany]:
    """The foreign company mirrored, the bill approved, the business paying from `pay_from`."""
    company = await foreign_company(env)
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = [OWNER]
        business.payment_bank_account_id = getattr(company, pay_from)
        await uow.commit()
    service = BillService(
        env.uows, env.smart_sync(BUSINESS, env.sandbox.realm_id), BUSINESS, env.infra.clock
    )
    await service.sync_bills_from_qbo()
    await service.approve(company.bill_id, OWNER, Decimal("1000.00"))
    return service, company


async def mirrored_balance(env: RunwayEnv, account_id: str) -> Decimal | None:
    async with env.uows(BUSINESS) as uow:
        account = await uow.accounts.get(account_id)
        assert account is not None
        return account.current_balance


async def figures(env: RunwayEnv) -> RunwayFigures:
    """The runway figures from Oodaloo's mirror, as every surface shows them."""
    async with env.uows(BUSINESS) as uow:
        books = await load_books(
            uow, BUSINESS, business_today(env.infra.clock.now(), "America/Los_Angeles")
        )
    return RunwayCalculator().figures(books)


def bill_payments(sandbox: Sandbox, bill_id: str) -> list[dict[str, Any]]:
    """The BillPayments in the sandbox's own store that pay `bill_id`."""
    return [
        payment
        for payment in sandbox.realm().iter("BillPayment")
        if any(
            link.get("TxnId") == bill_id and link.get("TxnType") == "Bill"
            for line in payment.get("Line") or []
            for link in line.get("LinkedTxn") or []
        )
    ]


async def test_a_eur_bill_paid_from_the_usd_bank_is_a_eur_payment_at_quickbooks_rate(
    runway_env: RunwayEnv,
) -> None:
    service, company = await ready_to_pay(runway_env, "checking")
    bank_before = stored(runway_env.sandbox, "Account", company.checking)["CurrentBalance"]
    mirror_before = await mirrored_balance(runway_env, company.checking)
    figures_before = await figures(runway_env)

    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )

    assert outcome.result is Result.DONE, outcome.message
    assert (
        outcome.message
        == "Paid €1,000.00 ($1,100.00) from Checking, at QuickBooks' EUR rate of 1.10."
    )
    assert outcome.standing is not None and outcome.standing.state is BillState.PAID
    [payment] = bill_payments(runway_env.sandbox, company.bill_id)
    assert payment["CurrencyRef"]["value"] == "EUR"
    assert payment["ExchangeRate"] == PAY_RATE
    assert payment["TotalAmt"] == Decimal("1000.00")
    assert payment["Line"][0]["Amount"] == Decimal("1000.00")
    assert payment["CheckPayment"]["BankAccountRef"]["value"] == company.checking
    assert stored(runway_env.sandbox, "Bill", company.bill_id)["Balance"] == Decimal("0")
    # The home amount left the USD bank, in QuickBooks and in Oodaloo's mirror alike.
    bank_after = stored(runway_env.sandbox, "Account", company.checking)["CurrentBalance"]
    assert bank_before - bank_after == Decimal("1100.00")
    assert mirror_before is not None
    assert mirror_before - (await mirrored_balance(runway_env, company.checking) or 0) == Decimal(
        "1100.00"
    )
    # The payment as the mirror keeps it: in euros, and $1,100.00 out of the cash the runway counts.
    async with runway_env.uows(BUSINESS) as uow:
        mirrored = await uow.bill_payments.get(str(payment["Id"]))
        assert mirrored is not None
        assert (mirrored.total_amount, mirrored.currency) == (Decimal("1000.00"), "EUR")
        lines = [
            line
            for line in await uow.cash_lines.dated_between(date.today() - timedelta(days=2))
            if line.txn_id == str(payment["Id"]) and line.account_id == company.checking
        ]
    assert sum(line.home_amount for line in lines) == Decimal("-1100.00")
    assert {(line.currency, line.exchange_rate) for line in lines} == {("EUR", PAY_RATE)}
    # Cash and burn moved by the home amount at once, as the next sync sees them.
    after = await figures(runway_env)
    assert figures_before.cash.total - after.cash.total == Decimal("1100.00")
    assert (
        after.runway
        == RunwayCalculator().bill_impact(figures_before.runway, Decimal("1100.00")).after
    )
    await service.sync_bills_from_qbo()
    assert (await figures(runway_env)).runway == after.runway


async def test_a_eur_bill_paid_from_the_eur_bank_leaves_it_in_euros(runway_env: RunwayEnv) -> None:
    service, company = await ready_to_pay(runway_env, "euro_bank")
    bank_before = stored(runway_env.sandbox, "Account", company.euro_bank)["CurrentBalance"]
    mirror_before = await mirrored_balance(runway_env, company.euro_bank)

    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )

    assert outcome.result is Result.DONE, outcome.message
    assert (
        outcome.message
        == "Paid €1,000.00 ($1,100.00) from Euro account, at QuickBooks' EUR rate of 1.10."
    )
    [payment] = bill_payments(runway_env.sandbox, company.bill_id)
    assert (payment["CurrencyRef"]["value"], payment["ExchangeRate"]) == ("EUR", PAY_RATE)
    assert payment["TotalAmt"] == Decimal("1000.00")
    assert payment["CheckPayment"]["BankAccountRef"]["value"] == company.euro_bank
    assert stored(runway_env.sandbox, "Bill", company.bill_id)["Balance"] == Decimal("0")
    bank_after = stored(runway_env.sandbox, "Account", company.euro_bank)["CurrentBalance"]
    assert bank_before - bank_after == Decimal("1000.00")
    assert mirror_before is not None
    assert mirror_before - (await mirrored_balance(runway_env, company.euro_bank) or 0) == Decimal(
        "1000.00"
    )


async def test_a_eur_bill_chosen_to_be_paid_from_a_gbp_bank_is_refused_before_anything_is_sent(
    runway_env: RunwayEnv,
) -> None:
    service, company = await ready_to_pay(runway_env, "gbp_savings")

    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )

    assert outcome.result is Result.REFUSED
    assert outcome.message == (
        "This bill is in EUR; pay it from a EUR account or a USD account — Sterling Savings (GBP) can't "
        "pay it. Choose the pay-from account in `/runway settings`."
    )
    assert bill_payments(runway_env.sandbox, company.bill_id) == []
    assert await runway_env.infra.ledger.list(realm_id=runway_env.sandbox.realm_id) == []
    assert stored(runway_env.sandbox, "Bill", company.bill_id)["Balance"] == Decimal("1000.00")
    after = await service.standing(company.bill_id)
    assert after.state is BillState.APPROVED and after.can_pay and not after.in_flight


async def test_a_foreign_payment_whose_answer_was_lost_is_found_by_its_marker_and_amount(
    runway_env: RunwayEnv,
) -> None:
    service, company = await ready_to_pay(runway_env, "checking")
    bank_before = stored(runway_env.sandbox, "Account", company.checking)["CurrentBalance"]
    await put_faults(
        runway_env.sandbox,
        {"by_path": [{"pattern": "billpayment*", "method": "POST", "rule": {"rate_lost": 1.0}}]},
    )
    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )
    assert outcome.result is Result.IN_FLIGHT, outcome.message
    assert "1,000.00" in outcome.message and "€" in outcome.message

    await put_faults(runway_env.sandbox, {})
    reconciler = Reconciler(runway_env.infra, on_resolved=service.on_payment_resolved)
    [resolution] = await sweep_until_settled(reconciler)
    [landed] = bill_payments(runway_env.sandbox, company.bill_id)
    assert payments_marked(runway_env.sandbox, resolution.key) == [landed]
    assert resolution.state is ActionState.SUCCEEDED and resolution.qbo_object_id == landed["Id"]
    assert (await service.standing(company.bill_id)).state is BillState.PAID
    bank_after = stored(runway_env.sandbox, "Account", company.checking)["CurrentBalance"]
    assert bank_before - bank_after == Decimal("1100.00")
    assert await mirrored_balance(runway_env, company.checking) == bank_after


async def test_without_quickbookss_rate_a_foreign_bill_is_refused_in_words_and_nothing_is_sent(
    runway_env: RunwayEnv,
) -> None:
    service, company = await ready_to_pay(runway_env, "checking")
    await put_faults(
        runway_env.sandbox,
        {"by_path": [{"pattern": "exchangerate*", "method": "GET", "rule": {"rate_5xx": 1.0}}]},
    )

    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )

    assert outcome.result is Result.REFUSED
    assert (
        outcome.message.startswith("Bill ")
        and "is in EUR, and QuickBooks could not be asked" in outcome.message
    )
    assert outcome.message.endswith("nothing was paid. Try again in a few minutes.")
    assert bill_payments(runway_env.sandbox, company.bill_id) == []
    assert await runway_env.infra.ledger.list(realm_id=runway_env.sandbox.realm_id) == []
    await put_faults(runway_env.sandbox, {})
    paid = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )
    assert paid.result is Result.DONE, paid.message


async def test_a_company_without_multicurrency_pays_as_before_without_asking_for_a_rate(
    runway_env: RunwayEnv,
) -> None:
    [bill] = await create_bills(runway_env.sandbox, [Decimal("389.64")])
    async with runway_env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = [OWNER]
        await uow.commit()
    service = BillService(
        runway_env.uows,
        runway_env.smart_sync(BUSINESS, runway_env.sandbox.realm_id),
        BUSINESS,
        runway_env.infra.clock,
    )
    await service.sync_bills_from_qbo()
    bill_id, balance = str(bill["Id"]), bill["Balance"]
    await service.approve(bill_id, OWNER, balance)

    outcome = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=balance)

    assert outcome.result is Result.DONE, outcome.message
    assert outcome.message.startswith("Paid $") and "rate" not in outcome.message
    [payment] = bill_payments(runway_env.sandbox, bill_id)
    assert "ExchangeRate" not in payment or payment["ExchangeRate"] in (None, Decimal("1"))
    assert payment["CurrencyRef"]["value"] == "USD" and payment["TotalAmt"] == balance
    stats = await admin_stats(runway_env.sandbox)
    assert route_count(stats, runway_env.sandbox.realm_id, "exchangerate") == 0


async def shown_bill(env: RunwayEnv, bill_id: str) -> OpenBill:
    async with env.uows(BUSINESS) as uow:
        books = await load_books(
            uow,
            BUSINESS,
            business_today(env.infra.clock.now(), "America/Los_Angeles"),
            shown_bill_ids=[bill_id],
        )
    [bill] = [bill for bill in (*books.open_bills, *books.shown_bills) if bill.id == bill_id]
    return bill


async def quickbooks_rate_moves_to(env: RunwayEnv, rate: Decimal) -> None:
    """QuickBooks' EUR rate as the mirror reads it the next day."""
    async with env.uows(BUSINESS) as uow:
        now = env.infra.clock.now()
        await uow.exchange_rates.save("EUR", rate, now.date(), now)
        await uow.commit()


async def test_a_paid_euro_bill_keeps_what_its_payment_cost_when_quickbooks_rate_moves_on(
    runway_env: RunwayEnv,
) -> None:
    # Paid at 1.10: €1,000.00 cost $1,100.00, and still did after QuickBooks' rate is 1.20.
    service, company = await ready_to_pay(runway_env, "checking")
    outcome = await pay_bill(
        service, bill_id=company.bill_id, by=OWNER, seen_amount=Decimal("1000.00")
    )
    assert outcome.result is Result.DONE, outcome.message

    await quickbooks_rate_moves_to(runway_env, Decimal("1.20"))
    await service.sync_bills_from_qbo()

    paid = await shown_bill(runway_env, company.bill_id)
    assert (paid.payment_amount, paid.payment_exchange_rate) == (Decimal("1000.00"), PAY_RATE)
    assert paid.payment_home_amount == Decimal("1100.00")
    async with runway_env.uows(BUSINESS) as uow:
        [payment] = [
            row for row in await uow.bill_payments.all() if company.bill_id in row.bill_qbo_ids
        ]
    assert (payment.currency, payment.exchange_rate) == ("EUR", PAY_RATE)


async def test_a_euro_bill_paid_in_quickbooks_keeps_the_rate_its_payment_booked_at(
    runway_env: RunwayEnv,
) -> None:
    # Paid in QuickBooks itself at 1.10: the mirrored BillPayment's ExchangeRate is the bill's.
    company = await foreign_company(runway_env)
    async with setup_client(runway_env.sandbox) as client:
        bill = await client.get("Bill", company.bill_id)
        await client.create(
            "BillPayment",
            {
                "VendorRef": bill["VendorRef"],
                "PayType": "Check",
                "CheckPayment": {"BankAccountRef": {"value": company.checking}},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": PAY_RATE,
                "TotalAmt": Decimal("1000.00"),
                "Line": [
                    {
                        "Amount": Decimal("1000.00"),
                        "LinkedTxn": [{"TxnId": company.bill_id, "TxnType": "Bill"}],
                    }
                ],
            },
            request_id=f"setup-{uuid.uuid4().hex[:16]}",
        )
    service = BillService(
        runway_env.uows,
        runway_env.smart_sync(BUSINESS, runway_env.sandbox.realm_id),
        BUSINESS,
        runway_env.infra.clock,
    )
    await service.sync_bills_from_qbo()
    await quickbooks_rate_moves_to(runway_env, Decimal("1.20"))

    paid = await shown_bill(runway_env, company.bill_id)

    assert paid.balance == Decimal("0.00")
    assert paid.payment_exchange_rate == PAY_RATE
