"""What the digest says about an overdue invoice in euros (home USD), against a sandbox company
with multicurrency on (`euro_bills`: QuickBooks' EUR rate was 1.08 twenty days ago, 1.10 since
yesterday).

Worked by hand: a €20,000.00 invoice entered at 1.08 brings $22,000.00 if it is collected today
(× 1.10, QuickBooks' latest rate, which the mirror reads for the company's EUR bank account): its
runway impact is that of $22,000.00 arriving, and the part's total counts it as $22,000.00.
"""

from __future__ import annotations

from decimal import Decimal

from euro_bills import euro_company, euro_invoice
from runway_env import RunwayEnv

from runway.books import business_today
from runway.calculator import RunwayCalculator, RunwayStatus
from runway.digest import DigestBuilder
from runway.mirror import MirrorSync
from runway.shown_rows import EVERY_ROW
from runway.snapshot import load_books

BUSINESS = "biz-larkspur"
TZ = "America/Los_Angeles"


async def test_an_overdue_euro_invoice_counts_what_collecting_it_brings_in_dollars(
    runway_env: RunwayEnv,
) -> None:
    today = business_today(runway_env.infra.clock.now(), TZ)
    await euro_company(runway_env.sandbox, today, ())
    invoice_id = await euro_invoice(runway_env.sandbox, today, Decimal("20000.00"))
    await MirrorSync(
        runway_env.uows, runway_env.smart_sync(BUSINESS, runway_env.sandbox.realm_id)
    ).sync()
    now = runway_env.infra.clock.now()
    async with runway_env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, business_today(now, TZ), rows=EVERY_ROW)
    before = RunwayCalculator().figures(books)
    view = DigestBuilder().build(books, now=now)

    [line] = [item for item in view.overdue_invoices.items if item.invoice_id == invoice_id]

    assert before.runway.status is RunwayStatus.DAYS
    assert (line.amount, line.currency, line.home_amount) == (
        Decimal("20000.00"),
        "EUR",
        Decimal("22000.00"),
    )
    collected = RunwayCalculator().invoice_impact(before.runway, Decimal("22000.00"))
    assert line.runway_impact_days == collected.days
    assert RunwayCalculator().invoice_impact(before.runway, Decimal("20000.00")).days != (
        collected.days
    )
    assert view.overdue_invoices_amount == sum(
        (item.home_amount for item in view.overdue_invoices.items), Decimal("0.00")
    )
