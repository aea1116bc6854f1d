"""The pages behind the email's links, wired to the real BillService and InvoiceService against the
sandbox, on SQLite and PostgreSQL: GET only asks; POST acts once (a second POST, or two at once,
is "already done" and QuickBooks holds one payment); altered links are 400, expired ones 410; a
refusal leaves the link usable; unsubscribe takes the address off the business's list."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from conftest_email import (
    BUSINESS,
    bills_due_in_two_days,
    db_url_fixture,
    migrated_fixture,
    runway_env,
    set_business,
)
from sqlalchemy import func, select
from starlette.applications import Starlette

from bot.email import (
    ActionKind,
    BadLink,
    EmailAction,
    EmailLinkUse,
    ExpiredLink,
    LinkSigner,
    email_routes,
    mirror_describer,
    unsubscriber,
)
from runway.bills import BillService
from runway.businesses import BusinessDirectory
from runway.crypto import TokenCipher, generate_key
from runway.formatting import format_moment
from runway.invoices import InvoiceService
from runway.mirror import MirrorSync
from sync.clock import ManualClock
from sync_harness import bank_account_id, stored

__all__ = ["db_url_fixture", "migrated_fixture", "runway_env"]  # fixtures, imported for pytest

PUBLIC_URL = "https://oodaloo.example.com"
OWNER, PARTNER = "owner@larkspur.example", "partner@larkspur.example"
#: Whoever holds an emailed link acts as the address it was sent to.
ACTOR = f"email:{OWNER}"
VENDOR = "Bits <& Bytes> LLC"


@dataclass
class LinkSite:
    """The email pages of one process, wired to one business's real services."""

    env: Any
    signer: LinkSigner
    clock: ManualClock
    http: httpx.AsyncClient
    bills: BillService
    invoices: InvoiceService
    bill_id: str
    performed: list[EmailAction] = field(default_factory=list)

    def url(self, action: ActionKind, target: str, *, amount: Decimal | None = None) -> str:
        return self.signer.action_url(BUSINESS, action, target, OWNER, amount=amount)

    async def audit(self, action: str) -> list[tuple[str, str]]:
        """(actor, outcome) of each audit entry of `action` on any target, oldest first."""
        async with self.env.uows(BUSINESS) as uow:
            return [
                (entry.actor, (entry.outcome or "").split(":")[0])
                for entry in reversed(await uow.audit.recent(200))
                if entry.action == action
            ]

    async def link_uses(self) -> int:
        async with self.env.db.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(EmailLinkUse)) or 0)

    def payments_of(self, bill_id: str) -> list[dict[str, Any]]:
        """BillPayments in the sandbox's own store that pay `bill_id`."""
        return [
            payment
            for payment in self.env.sandbox.realm().iter("BillPayment")
            if any(
                linked.get("TxnId") == bill_id
                for line in payment.get("Line", [])
                for linked in line.get("LinkedTxn", [])
            )
        ]


@pytest.fixture
async def site(runway_env: Any) -> AsyncIterator[LinkSite]:
    env = runway_env
    [bill_id] = await bills_due_in_two_days(env, [VENDOR])
    await set_business(
        env,
        approvers=[ACTOR],
        approval_threshold=Decimal("100000.00"),
        payment_bank_account_id=await bank_account_id(env.sandbox),
        email_recipients=[OWNER, PARTNER],
    )
    smart_sync = env.smart_sync(BUSINESS, env.sandbox.realm_id)
    await MirrorSync(env.uows, smart_sync).sync()
    bills = BillService(env.uows, smart_sync, BUSINESS, env.infra.clock)
    invoices = InvoiceService(env.uows, smart_sync, BUSINESS, env.infra.clock)
    clock = ManualClock(datetime.now(UTC))
    signer = LinkSigner(secrets.token_bytes(32), clock, public_url=PUBLIC_URL)
    performed: list[EmailAction] = []

    async def perform(action: EmailAction) -> str:
        performed.append(action)
        if action.action is ActionKind.BILL_APPROVE:
            await bills.approve(action.target_id, ACTOR)
            return f"Approved bill {action.target_id}."
        if action.action is ActionKind.BILL_PAY:
            assert action.amount is not None
            paid = await bills.create_payment(action.target_id, action.amount, ACTOR)
            return paid.message
        return (await invoices.send_reminder(action.target_id, ACTOR)).message

    directory = BusinessDirectory(env.db.sessions, TokenCipher(generate_key()))
    app = Starlette(
        routes=email_routes(
            signer,
            perform=perform,
            unsubscribe=unsubscriber(directory),
            engine=env.db.engine,
            describe=mirror_describer(env.uows),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL
    ) as http:
        yield LinkSite(env, signer, clock, http, bills, invoices, bill_id, performed)


async def test_get_only_asks_and_never_acts(site: LinkSite) -> None:
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))
    approve = site.url(ActionKind.BILL_APPROVE, site.bill_id)

    for url in (approve, pay, pay):  # mail scanners open every link, some more than once
        page = await site.http.get(url)
        assert page.status_code == 200
        assert '<form method="post">' in page.text
        assert page.headers["cache-control"] == "no-store"
        # Some scanners only ask for the headers.
        assert (await site.http.head(url)).status_code == 200

    page = await site.http.get(pay)
    assert "Pay $1,234.56 to Bits &lt;&amp; Bytes&gt; LLC?" in page.text  # escaped
    assert VENDOR not in page.text
    assert ">Pay</button>" in page.text
    approve_page = await site.http.get(approve)
    assert "Approve the bill of $1,234.56 from Bits &lt;&amp; Bytes&gt; LLC?" in approve_page.text

    # Nothing happened anywhere: no call, no approval, no payment, no audit entry, no use.
    assert site.performed == []
    assert not (await site.bills.standing(site.bill_id)).approved_by
    assert site.payments_of(site.bill_id) == []
    assert await site.audit("bill.approve") == [] and await site.audit("bill.pay") == []
    assert await site.link_uses() == 0


async def test_a_bill_paid_meanwhile_says_so_before_anything_is_pressed(site: LinkSite) -> None:
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))
    approve = site.url(ActionKind.BILL_APPROVE, site.bill_id)
    # The bill is paid from Slack after the email went out.
    await site.bills.approve(site.bill_id, ACTOR)
    await site.bills.create_payment(site.bill_id, Decimal("1234.56"), ACTOR)
    assert len(site.payments_of(site.bill_id)) == 1

    for url in (pay, approve):
        page = await site.http.get(url)
        assert page.status_code == 200
        assert "is already paid in full: there is nothing to do." in page.text
        assert "Bits &lt;&amp; Bytes&gt; LLC" in page.text
        # No button to press, nothing to confirm.
        assert "<form" not in page.text and "<button" not in page.text
        assert "<title>Nothing to do</title>" in page.text
    assert site.performed == [] and await site.link_uses() == 0
    assert len(site.payments_of(site.bill_id)) == 1


async def test_the_expiry_is_on_the_business_clock(site: LinkSite) -> None:
    await set_business(site.env, timezone="Pacific/Auckland")
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))
    expires = site.signer.read_action(pay.rsplit("/", 1)[1]).expires_at

    page = await site.http.get(pay)

    assert page.status_code == 200
    local = format_moment(expires, "Pacific/Auckland")
    assert f"This link works once, until {local}." in page.text
    assert local.endswith(("NZDT", "NZST")) and "UTC" not in page.text


async def test_post_acts_once_and_a_second_post_is_already_done(site: LinkSite) -> None:
    approve = site.url(ActionKind.BILL_APPROVE, site.bill_id)
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))

    approved = await site.http.post(approve)
    assert approved.status_code == 200 and f"Approved bill {site.bill_id}." in approved.text
    assert (await site.bills.standing(site.bill_id)).approved_by == (ACTOR,)

    paid = await site.http.post(pay)
    assert paid.status_code == 200, paid.text
    [payment] = site.payments_of(site.bill_id)
    assert payment["TotalAmt"] == Decimal("1234.56")
    assert stored(site.env.sandbox, "Bill", site.bill_id)["Balance"] == Decimal("0")

    again = await site.http.post(pay)
    assert again.status_code == 409
    assert "already done" in again.text
    assert "Result:" in again.text  # the first click's outcome, shown again
    assert (await site.http.post(approve)).status_code == 409
    assert (await site.http.get(pay)).status_code == 409  # a used link no longer asks

    # One of each, everywhere: the second POSTs never reached the services.
    assert len(site.performed) == 2
    assert len(site.payments_of(site.bill_id)) == 1
    assert await site.audit("bill.approve") == [(ACTOR, "done")]
    assert [outcome for _, outcome in await site.audit("bill.pay")] == ["succeeded"]
    assert await site.link_uses() == 2


async def test_two_posts_at_once_act_once(site: LinkSite) -> None:
    await site.bills.approve(site.bill_id, ACTOR)
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))

    first, second = await asyncio.gather(site.http.post(pay), site.http.post(pay))

    assert sorted([first.status_code, second.status_code]) == [200, 409]
    assert len(site.performed) == 1
    assert len(site.payments_of(site.bill_id)) == 1
    assert [outcome for _, outcome in await site.audit("bill.pay")] == ["succeeded"]


async def test_a_reminder_link_has_quickbooks_email_the_invoice(site: LinkSite) -> None:
    [overdue, *_] = await site.invoices.overdue_invoices()
    remind = site.url(ActionKind.INVOICE_REMIND, overdue.invoice_id)

    def in_quickbooks() -> tuple[int, Any]:
        invoice = stored(site.env.sandbox, "Invoice", overdue.invoice_id)
        return int(invoice["SyncToken"]), invoice.get("DeliveryInfo")

    before = in_quickbooks()
    asked = await site.http.get(remind)
    assert f"reminder for invoice {overdue.doc_number or overdue.invoice_id}" in asked.text
    assert in_quickbooks() == before  # asking sent nothing

    sent = await site.http.post(remind)
    assert sent.status_code == 200
    version, delivery = in_quickbooks()
    assert version == before[0] + 1  # QuickBooks emailed it: one new version of the invoice
    assert delivery["DeliveryType"] == "Email" and delivery != before[1]
    assert [outcome for _, outcome in await site.audit("invoice.remind")] == ["succeeded"]
    assert (await site.http.post(remind)).status_code == 409
    assert in_quickbooks() == (version, delivery)
    assert len(await site.audit("invoice.remind")) == 1


def _tampered(token: str, **changes: Any) -> str:
    """The token with its payload changed and its old signature kept."""
    encoded, _, signature = token.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    payload.update(changes)
    raw = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"{raw.rstrip(b'=').decode()}.{signature}"


async def test_altered_links_are_refused_and_do_nothing(site: LinkSite) -> None:
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))
    base, token = pay.rsplit("/", 1)
    other_key = LinkSigner(secrets.token_bytes(32), site.clock, public_url=PUBLIC_URL)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    bad_tokens = [
        flipped,  # signature altered
        _tampered(token, m="1.00"),  # amount lowered, old signature
        _tampered(token, t="2203"),  # another bill, old signature
        token[: len(token) // 2],  # cut short when copied
        other_key.action_token(BUSINESS, ActionKind.BILL_PAY, site.bill_id, OWNER),
        site.signer.unsubscribe_token(BUSINESS, OWNER),  # a genuine link of the other kind
    ]
    for bad in bad_tokens:
        for method in ("GET", "POST"):
            page = await site.http.request(method, f"{base}/{bad}")
            assert page.status_code == 400, (bad, method)
            assert "This link is not valid" in page.text
        with pytest.raises(BadLink):
            site.signer.read_action(bad)

    assert site.performed == [] and site.payments_of(site.bill_id) == []
    assert await site.link_uses() == 0


async def test_expired_links_are_410_and_do_nothing(site: LinkSite) -> None:
    await site.bills.approve(site.bill_id, ACTOR)
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))
    site.clock.advance(timedelta(hours=71, minutes=59))
    assert (await site.http.get(pay)).status_code == 200  # still good a minute before

    site.clock.advance(timedelta(minutes=1))
    for method in ("GET", "POST"):
        page = await site.http.request(method, pay)
        assert page.status_code == 410
        assert "This link has expired; use the buttons in Slack or the next digest." in page.text
    with pytest.raises(ExpiredLink):
        site.signer.read_action(pay.rsplit("/", 1)[1])
    assert site.performed == [] and site.payments_of(site.bill_id) == []
    assert await site.link_uses() == 0


async def test_a_refusal_is_shown_and_the_link_stays_usable(site: LinkSite) -> None:
    pay = site.url(ActionKind.BILL_PAY, site.bill_id, amount=Decimal("1234.56"))

    refused = await site.http.post(pay)  # not approved yet
    assert refused.status_code == 422
    assert "approv" in refused.text.lower()
    assert site.payments_of(site.bill_id) == [] and await site.link_uses() == 0

    await site.bills.approve(site.bill_id, ACTOR)
    paid = await site.http.post(pay)
    assert paid.status_code == 200
    assert len(site.payments_of(site.bill_id)) == 1
    assert [outcome for _, outcome in await site.audit("bill.pay")] == ["refused", "succeeded"]


async def test_unsubscribe_asks_on_get_and_removes_the_address_on_post(site: LinkSite) -> None:
    url = site.signer.unsubscribe_url(BUSINESS, OWNER)

    async def recipients() -> list[str]:
        async with site.env.uows(BUSINESS) as uow:
            business = await uow.business.get()
            assert business is not None
            return list(business.email_recipients)

    asked = await site.http.get(url)
    assert asked.status_code == 200 and OWNER in asked.text and "<form" in asked.text
    assert (await site.http.head(url)).status_code == 200
    assert await recipients() == [OWNER, PARTNER]

    # RFC 8058: the mail client's one-click POST.
    done = await site.http.post(url, content=b"List-Unsubscribe=One-Click")
    assert done.status_code == 200 and "Unsubscribed" in done.text
    assert await recipients() == [PARTNER]

    assert (await site.http.post(url)).status_code == 200  # again: nothing left to remove
    assert await recipients() == [PARTNER]

    base, token = url.rsplit("/", 1)
    forged = _tampered(token, r=PARTNER)  # someone else's address under the owner's signature
    assert (await site.http.post(f"{base}/{forged}")).status_code == 400
    assert await recipients() == [PARTNER]


async def test_link_tokens_keep_their_fields(site: LinkSite) -> None:
    token = site.signer.action_token(
        BUSINESS, ActionKind.BILL_PAY, site.bill_id, OWNER, amount=Decimal("1234.56")
    )
    action = site.signer.read_action(token)
    assert (action.business_id, action.action, action.target_id) == (
        BUSINESS,
        ActionKind.BILL_PAY,
        site.bill_id,
    )
    assert action.recipient == OWNER and action.amount == Decimal("1234.56")
    assert action.expires_at == (site.clock.now() + timedelta(hours=72)).replace(microsecond=0)
    other = site.signer.read_action(
        site.signer.action_token(BUSINESS, ActionKind.BILL_PAY, site.bill_id, OWNER)
    )
    assert other.nonce != action.nonce  # every link is its own single use
