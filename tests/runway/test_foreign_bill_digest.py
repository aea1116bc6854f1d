"""What the digest says about a bill in euros (home USD), against a sandbox company with
multicurrency on (`euro_bills`): QuickBooks' EUR rate was 1.08 when the bills were entered and is
1.10 since yesterday.

Worked by hand:
- a €20,000.00 bill costs $22,000.00 to pay today (× 1.10, QuickBooks' latest rate, which the
  mirror reads for the company's EUR bank account); the runway the Pay dialog promises is the
  runway after paying it;
- without a EUR account the mirror still reads QuickBooks' EUR rate, for the open bill (or
  invoice) itself: $22,000.00 (× 1.10), not $21,600.00 at the document's own 1.08;
- the approval threshold ($5,000.00) is for the open balance at the bill's own rate: €4,800.00 is
  $5,184.00 and needs two approvers, in the digest and in the Pay path; €4,600.00 is $4,968.00
  and needs one, though paying it today costs $5,060.00.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from euro_bills import euro_company, euro_invoice
from runway_env import RunwayEnv

from runway.bills import BillService
from runway.books import business_today
from runway.calculator import RunwayCalculator, RunwayFigures, RunwayStatus
from runway.digest import BillDue, DigestBuilder, DigestView
from runway.lifecycle import BillState
from runway.shown_rows import EVERY_ROW
from runway.snapshot import load_books
from runway.use_cases import Result, pay_bill

BUSINESS = "biz-larkspur"
OWNER = "U-OWNER"
TZ = "America/Los_Angeles"


async def business_paying_from(
    env: RunwayEnv, account_id: str | None, **settings: object
) -> BillService:
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = [OWNER]
        business.payment_bank_account_id = account_id
        for name, value in settings.items():
            setattr(business, name, value)
        await uow.commit()
    service = BillService(
        env.uows, env.smart_sync(BUSINESS, env.sandbox.realm_id), BUSINESS, env.infra.clock
    )
    await service.sync_bills_from_qbo()
    return service


async def digest(env: RunwayEnv) -> tuple[DigestView, RunwayFigures]:
    now = env.infra.clock.now()
    async with env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, business_today(now, TZ), rows=EVERY_ROW)
    return DigestBuilder().build(books, now=now), RunwayCalculator().figures(books)


async def eur_rate_read_at(env: RunwayEnv) -> datetime:
    """When the mirror last read QuickBooks' EUR rate."""
    async with env.uows(BUSINESS) as uow:
        return (await uow.exchange_rates.all())["EUR"].fetched_at


async def sync_then(env: RunwayEnv, service: BillService) -> datetime:
    """Another sync the same day; then when the EUR rate was last read. (The company's GBP
    account has no rate in QuickBooks: that one is asked for again at each sync.)"""
    await service.sync_bills_from_qbo()
    return await eur_rate_read_at(env)


def listed(view: DigestView, bill_id: str) -> BillDue:
    [line] = [line for line in view.bills if line.bill_id == bill_id]
    return line


async def test_the_runway_the_pay_dialog_promises_for_a_euro_bill_is_the_runway_after_paying_it(
    runway_env: RunwayEnv,
) -> None:
    today = business_today(runway_env.infra.clock.now(), TZ)
    company = await euro_company(runway_env.sandbox, today, (Decimal("20000.00"),))
    [bill_id] = company.bill_ids
    service = await business_paying_from(
        runway_env, company.checking, approval_threshold=Decimal("100000.00")
    )
    view, before = await digest(runway_env)
    line = listed(view, bill_id)
    assert before.runway.status is RunwayStatus.DAYS
    assert (line.amount, line.currency, line.home_amount) == (
        Decimal("20000.00"),
        "EUR",
        Decimal("22000.00"),
    )
    promised = RunwayCalculator().bill_impact(before.runway, Decimal("22000.00"))
    assert line.runway_impact_days == promised.days
    assert line.runway_impact == promised.sentence()
    # Counting the euros as dollars would promise another runway.
    assert RunwayCalculator().bill_impact(before.runway, Decimal("20000.00")).days != promised.days

    await service.approve(bill_id, OWNER, Decimal("20000.00"))
    paid = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("20000.00"))

    assert paid.result is Result.DONE, paid.message
    _, after = await digest(runway_env)
    assert before.cash.total - after.cash.total == Decimal("22000.00")
    assert after.runway == promised.after
    assert view.runway.days is not None and line.runway_impact_days is not None
    assert after.runway.days == view.runway.days + line.runway_impact_days


async def test_without_a_euro_account_a_euro_bill_costs_quickbooks_latest_rate(
    runway_env: RunwayEnv,
) -> None:
    # No EUR account: the mirror reads QuickBooks' EUR rate for the open bill itself (1.10, the
    # rate the payment books at), not the bill's own 1.08: €20,000.00 costs $22,000.00.
    today = business_today(runway_env.infra.clock.now(), TZ)
    company = await euro_company(runway_env.sandbox, today, (Decimal("20000.00"),), euro_bank=False)
    service = await business_paying_from(runway_env, company.checking)
    view, before = await digest(runway_env)

    line = listed(view, company.bill_ids[0])

    async with runway_env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, today)
    assert books.rates["EUR"] == Decimal("1.10")
    assert line.home_amount == Decimal("22000.00")
    assert line.runway_impact_days == (
        RunwayCalculator().bill_impact(before.runway, Decimal("22000.00")).days
    )
    # Read once that day: the next sync does not ask QuickBooks for it again.
    assert await eur_rate_read_at(runway_env) == await sync_then(runway_env, service)


async def test_an_invoice_in_euros_alone_gets_quickbooks_latest_rate(runway_env: RunwayEnv) -> None:
    # No EUR account and no EUR bill: the open invoice's currency is read too (€20,000.00 at
    # today's 1.10 brings $22,000.00, not $21,600.00 at the invoice's own 1.08).
    today = business_today(runway_env.infra.clock.now(), TZ)
    await euro_company(runway_env.sandbox, today, (), euro_bank=False)
    invoice_id = await euro_invoice(runway_env.sandbox, today, Decimal("20000.00"))
    service = await business_paying_from(runway_env, None)
    view, _ = await digest(runway_env)

    [line] = [item for item in view.overdue_invoices.items if item.invoice_id == invoice_id]

    assert (line.amount, line.home_amount) == (Decimal("20000.00"), Decimal("22000.00"))
    assert await eur_rate_read_at(runway_env) == await sync_then(runway_env, service)


async def test_a_euro_bill_above_the_threshold_in_dollars_needs_two_approvers_everywhere(
    runway_env: RunwayEnv,
) -> None:
    # €4,800.00 at the bill's own 1.08 is $5,184.00: above the $5,000.00 threshold.
    today = business_today(runway_env.infra.clock.now(), TZ)
    company = await euro_company(runway_env.sandbox, today, (Decimal("4800.00"),))
    [bill_id] = company.bill_ids
    service = await business_paying_from(
        runway_env, company.checking, approval_threshold=Decimal("5000.00")
    )
    standing = listed((await digest(runway_env))[0], bill_id).standing
    assert standing.approvals_required == 2
    assert standing.home_balance == Decimal("5184.00")

    await service.approve(bill_id, OWNER, Decimal("4800.00"))
    refused = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("4800.00"))

    assert refused.result is Result.REFUSED
    assert "above the approval threshold of $5,000.00" in refused.message
    assert runway_env.sandbox.realm().get("Bill", bill_id)["Balance"] == Decimal("4800.00")
    view, _ = await digest(runway_env)
    assert listed(view, bill_id).state is BillState.NEEDS_SECOND_APPROVAL
    assert [item.bill_id for item in view.approvals.items] == [bill_id]
    assert (await service.standing(bill_id)).approvals_missing == 1


async def test_the_threshold_reads_the_bills_own_rate_so_a_rate_move_does_not_ask_again(
    runway_env: RunwayEnv,
) -> None:
    # €4,600.00 is $4,968.00 at the bill's 1.08 (one approver), $5,060.00 at today's 1.10.
    today = business_today(runway_env.infra.clock.now(), TZ)
    company = await euro_company(runway_env.sandbox, today, (Decimal("4600.00"),))
    [bill_id] = company.bill_ids
    service = await business_paying_from(
        runway_env, company.checking, approval_threshold=Decimal("5000.00")
    )
    line = listed((await digest(runway_env))[0], bill_id)
    assert (line.standing.approvals_required, line.home_amount) == (1, Decimal("5060.00"))

    await service.approve(bill_id, OWNER, Decimal("4600.00"))
    paid = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("4600.00"))

    assert paid.result is Result.DONE, paid.message


async def test_a_paid_euro_bill_reads_what_its_payment_cost_after_quickbooks_rate_moves_on(
    runway_env: RunwayEnv,
) -> None:
    # Paid at 1.10 (€20,000.00 cost $22,000.00); QuickBooks' rate is 1.20 the next day: the card
    # still says what was paid, not $24,000.00.
    today = business_today(runway_env.infra.clock.now(), TZ)
    company = await euro_company(runway_env.sandbox, today, (Decimal("20000.00"),))
    [bill_id] = company.bill_ids
    service = await business_paying_from(
        runway_env, company.checking, approval_threshold=Decimal("100000.00")
    )
    await service.approve(bill_id, OWNER, Decimal("20000.00"))
    paid = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("20000.00"))
    assert paid.result is Result.DONE, paid.message
    now = runway_env.infra.clock.now()
    async with runway_env.uows(BUSINESS) as uow:
        await uow.exchange_rates.save("EUR", Decimal("1.20"), now.date(), now)
        await uow.commit()

    async with runway_env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, today, shown_bill_ids=[bill_id], rows=EVERY_ROW)
    line = listed(DigestBuilder().build(books, now=now), bill_id)

    assert line.state is BillState.PAID
    assert books.rates["EUR"] == Decimal("1.20")
    assert line.in_home(Decimal("20000.00")) == Decimal("22000.00")
