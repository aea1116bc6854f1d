"""What Slack and email show of a bill in euros (home USD): the seeded company with multicurrency
turned on and a supplier billing in euros (`euro_bills`: QuickBooks' EUR rate was 1.08 when the
bills were entered, 1.10 since yesterday). The digest is Oodaloo's own (`Oodaloo.digest`) over
its mirror of the sandbox; real signed email-link requests; on SQLite and PostgreSQL.

Worked by hand: a €1,000.00 bill costs $1,100.00 to pay today, so every amount of it reads
"€1,000.00 ($1,100.00)": the card, its Pay button and dialog, the email's row and its link page,
and, once paid, "Paid €1,000.00 ($1,100.00)"; totals of bills are in dollars. Each card's Pay
dialog names the account that bill is paid from (`businesses.bill_payment_account`), which is not
always the business's largest: QuickBooks pays a bill only from its own currency or the home one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from db_conftest import MigratedDatabase
from euro_bills import CUSTOMER, VENDOR, EuroCompany, euro_company, euro_invoice
from markupsafe import escape as html_escape

from bot.bootstrap import PaymentAccount
from bot.email.links import ActionKind, LinkSigner
from bot.email.render import invoice_rows, render_digest_email
from bot.local import BUSINESS_ID, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit
from bot.slack.mrkdwn import escape
from runway.books import business_today
from runway.formatting import money
from runway.shown_rows import EVERY_ROW
from runway.use_cases import Result, pay_bill
from sync_harness import setup_client

READER = "dana@example.com"
EURO_LINE = "€1,000.00 ($1,100.00)"
HREF = re.compile(r'href="([^"]+)"')


def as_html(text: str) -> str:
    """`text` as Jinja's autoescaping writes it into HTML."""
    return str(html_escape(text))


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url, email_recipients=[READER]) as built:
        yield built


async def with_euro_bill(stack: LocalStack, amount: str = "1000.00") -> EuroCompany:
    business = await stack.business()
    today = business_today(stack.oodaloo.clock.now(), business.timezone)
    company = await euro_company(stack.sandbox, today, (Decimal(amount),))
    await stack.oodaloo.services(business).mirror.sync()
    return company


def blocks_of(bill_id: str, blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The card of the bill: its main line block and its actions block."""
    return {
        kind: block
        for block in blocks
        for kind in ("bill", "bill_actions")
        if block.get("block_id") == f"{kind}:{bill_id}"
    }


async def test_a_euro_bill_reads_in_euros_with_its_dollars_on_every_surface(
    stack: LocalStack,
) -> None:
    company = await with_euro_bill(stack)
    [bill_id] = company.bill_ids
    await stack.oodaloo.services(await stack.business()).bills.approve(bill_id, OWNER)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    message = kit.digest_message(
        ctx.view, business_name=ctx.business.name, payment_account=ctx.payment_account
    )

    card = blocks_of(bill_id, message.blocks)
    line = card["bill"]["text"]["text"]
    assert f"*{EURO_LINE}*" in line
    assert escape(VENDOR) in line and VENDOR not in line  # mrkdwn: <, > and & escaped
    [pay] = [e for e in card["bill_actions"]["elements"] if e["action_id"] == kit.BILL_PAY]
    assert pay["text"]["text"] == f"Pay {EURO_LINE}"
    assert pay["value"] == f"{bill_id}|1000.00"  # pays the euros it shows
    assert pay["confirm"]["text"]["text"].startswith(f"Pay {EURO_LINE} to {VENDOR} from ")
    # A part's total is in dollars: the euro bill counts $1,100.00.
    bills = ctx.view.bills_due
    total = sum((bill.home_amount for bill in bills.left), Decimal("0.00"))
    assert bills.left_amount == total
    assert Decimal("1100.00") in {bill.home_amount for bill in bills.left}
    [title] = [b["text"]["text"] for b in message.blocks if b.get("block_id") == "bills"]
    assert f"{len(bills.left)} for {money(total, 'USD')}" in title

    # The email: its row, and the page its Pay link opens.
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    email = render_digest_email(
        ctx.view, business_name=ctx.business.name, links=signer, recipient=READER
    )
    assert EURO_LINE in email.text and as_html(EURO_LINE) in email.html
    assert as_html(VENDOR) in email.html and VENDOR not in email.html
    pay_url = signer.action_url(
        BUSINESS_ID, ActionKind.BILL_PAY, bill_id, READER, amount=Decimal("1000.00")
    )
    assert any("/email/act/" in url for url in HREF.findall(email.html))
    async with httpx.AsyncClient() as reader:
        page = await reader.get(pay_url)
    assert page.status_code == 200
    assert f"Pay {as_html(EURO_LINE)} to {as_html(VENDOR)}?" in page.text

    # Paid: the card says what left, in both currencies.
    services = stack.oodaloo.services(await stack.business())
    paid = await pay_bill(services.bills, bill_id=bill_id, by=OWNER, seen_amount=Decimal("1000.00"))
    assert paid.result is Result.DONE, paid.message
    after = await stack.oodaloo.digest(BUSINESS_ID, shown_bill_ids=[bill_id])
    drawn = kit.digest_message(
        after.view, business_name=after.business.name, payment_account=after.payment_account
    )
    assert (
        f":white_check_mark: Paid {EURO_LINE} from "
        in blocks_of(bill_id, drawn.blocks)["bill"]["text"]["text"]
    )


def confirm_text(bill_id: str, blocks: list[dict[str, Any]]) -> str:
    [pay] = [
        element
        for element in blocks_of(bill_id, blocks)["bill_actions"]["elements"]
        if element["action_id"] == kit.BILL_PAY
    ]
    return str(pay["confirm"]["text"]["text"])


def paid_from(stack: LocalStack, bill_id: str) -> str:
    """The name of the bank account QuickBooks' payment of the bill came from."""
    realm = stack.sandbox.realm()
    [payment] = [
        payment
        for payment in realm.iter("BillPayment")
        if any(
            link.get("TxnId") == bill_id
            for line in payment.get("Line") or []
            for link in line.get("LinkedTxn") or []
        )
    ]
    account = realm.get("Account", payment["CheckPayment"]["BankAccountRef"]["value"])
    assert account is not None
    return str(account["Name"])


async def test_each_card_names_the_account_its_bill_is_paid_from(stack: LocalStack) -> None:
    # Sterling Savings holds the most (£200,000.00), so with no account chosen it is the one the
    # business pays from; QuickBooks pays neither a USD nor a EUR bill from a GBP account.
    company = await with_euro_bill(stack)
    async with setup_client(stack.sandbox) as client:
        equity = (await client.query("SELECT * FROM Account WHERE AccountType = 'Equity'"))[0]
        await client.create(
            "Deposit",
            {
                "DepositToAccountRef": {"value": company.gbp_savings},
                "CurrencyRef": {"value": "GBP"},
                "ExchangeRate": Decimal("1.25"),
                "Line": [
                    {
                        "Amount": Decimal("200000.00"),
                        "DetailType": "DepositLineDetail",
                        "DepositLineDetail": {"AccountRef": {"value": equity["Id"]}},
                    }
                ],
            },
            request_id="setup-gbp-deposit",
        )
    business = await stack.business()
    services = stack.oodaloo.services(business)
    await services.mirror.sync()
    assert (await stack.oodaloo.payment_account(business)) == PaymentAccount(
        company.gbp_savings, "Sterling Savings"
    )
    [euro_bill] = company.bill_ids
    dollar_bill = next(
        bill
        for bill in (await stack.oodaloo.digest(BUSINESS_ID)).view.bills_due.items
        if bill.currency == "USD" and bill.amount <= business.approval_threshold
    )
    for bill_id, amount in (
        (euro_bill, Decimal("1000.00")),
        (dollar_bill.bill_id, dollar_bill.amount),
    ):
        await services.bills.approve(bill_id, OWNER, amount)
    ctx = await stack.oodaloo.digest(BUSINESS_ID)
    blocks = kit.digest_message(
        ctx.view, business_name=ctx.business.name, payment_account=ctx.payment_account
    ).blocks
    named = {
        bill_id: confirm_text(bill_id, blocks).split(" from ", 1)[1].split(".", 1)[0]
        for bill_id in (euro_bill, dollar_bill.bill_id)
    }
    assert named[euro_bill] == "Euro account"
    assert "Sterling Savings" not in named.values()

    for bill_id, amount in (
        (euro_bill, Decimal("1000.00")),
        (dollar_bill.bill_id, dollar_bill.amount),
    ):
        paid = await pay_bill(services.bills, bill_id=bill_id, by=OWNER, seen_amount=amount)
        assert paid.result is Result.DONE, paid.message
        assert paid_from(stack, bill_id) == named[bill_id]


async def test_an_overdue_euro_invoice_reads_in_euros_with_its_dollars(stack: LocalStack) -> None:
    business = await stack.business()
    today = business_today(stack.oodaloo.clock.now(), business.timezone)
    await euro_company(stack.sandbox, today, ())
    invoice_id = await euro_invoice(stack.sandbox, today, Decimal("1000.00"))
    await stack.oodaloo.services(business).mirror.sync()
    # Every row: the invoice's place among all the overdue ones is looked up below.
    ctx = await stack.oodaloo.digest(BUSINESS_ID, rows=EVERY_ROW)
    message = kit.digest_message(
        ctx.view, business_name=ctx.business.name, payment_account=ctx.payment_account
    )

    invoices = [invoice.invoice_id for invoice in ctx.view.overdue_invoices.items]
    page = kit.invoices_message(
        ctx.view, business_name=ctx.business.name, offset=invoices.index(invoice_id), page=1
    ).blocks
    [line] = [b for b in page if b.get("block_id") == f"invoice:{invoice_id}"]
    assert f"*{EURO_LINE}*" in line["text"]["text"]
    assert escape(CUSTOMER) in line["text"]["text"] and CUSTOMER not in line["text"]["text"]
    [actions] = [b for b in page if b.get("block_id") == f"invoice_actions:{invoice_id}"]
    assert f"({EURO_LINE}, " in actions["elements"][0]["confirm"]["text"]["text"]
    total = money(ctx.view.overdue_invoices_amount, "USD")
    [title] = [b["text"]["text"] for b in message.blocks if b.get("block_id") == "invoices"]
    assert f"{ctx.view.overdue_invoices.total} for {total}" in title
    signer = LinkSigner(stack.oodaloo.link_secret, stack.oodaloo.clock, public_url=stack.url)
    rows = invoice_rows(ctx.view, signer, READER, len(invoices))
    [row] = [row for row in rows if row.name == CUSTOMER]
    assert row.amount == EURO_LINE
