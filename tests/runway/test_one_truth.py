"""One truth for every bill, in the domain: the rules each surface used to decide on its own.

Each test here failed before the bill lifecycle (`runway.lifecycle`) and the use cases
(`runway.use_cases`) existed; the comment on each names the defect as a person met it. Against the
QuickBooks sandbox, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runway_env import RunwayEnv
from test_bills import BUSINESS, OWNER, PARTNER, SCALE, bill_service

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from runway.books import business_today
from runway.digest import DigestBuilder
from runway.lifecycle import BillStanding, BillState, approvals_required, standing
from runway.shown_rows import EVERY_ROW
from runway.snapshot import load_books
from runway.use_cases import Result, approve_bill, pay_bill
from sync_harness import OffsetClock, edit_bill_amount

DANA_SLACK, DANA_EMAIL = "U0DANA0001", "dana@larkspur.example"


@pytest.fixture
def sandbox() -> Sandbox:
    return create_app(SandboxConfig(seed=DEFAULT_SEED, scale=SCALE))


def a_bill(
    total: str,
    balance: str,
    approvals: list[tuple[str, str]],
    people: dict[str, frozenset[str]] | None = None,
) -> BillStanding:
    """The standing of a bill of `total` with `balance` open, approved by (who, amount) pairs,
    under a $5,000.00 threshold."""
    return standing(
        bill_id="B1",
        vendor_name="Acme",
        doc_number=None,
        total=Decimal(total),
        balance=Decimal(balance),
        currency="USD",
        due_date=None,
        approvals=tuple((who, None, Decimal(amount)) for who, amount in approvals),
        payment=None,
        snoozed_until=None,
        threshold=Decimal("5000.00"),
        people=people,
    )


def test_one_threshold_rule_on_the_amount_being_paid() -> None:
    """A $6,000 bill with $3,000 open showed Pay after one approval, then Pay was refused: the
    digest compared the balance, the payment the total. Now both ask one function, with the
    open balance."""
    threshold = Decimal("5000.00")
    assert approvals_required(Decimal("3000.00"), threshold) == 1
    assert approvals_required(Decimal("5000.01"), threshold) == 2
    partly_paid = a_bill("6000.00", "3000.00", [("U1", "3000.00")])
    assert partly_paid.state is BillState.APPROVED and partly_paid.can_pay


async def test_one_person_is_one_approver_by_slack_and_by_email(runway_env: RunwayEnv) -> None:
    """A $10,530.90 bill above a $5,000 threshold was paid on one person's two approvals: her
    Slack id and her email address counted as two people."""
    service, [bill_id] = await bill_service(runway_env, ["2500.00"])  # threshold 1,000.00
    async with runway_env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = [DANA_SLACK, DANA_EMAIL, OWNER]
        await uow.commit()
    await service.remember_person(DANA_SLACK, "Dana@Larkspur.example", "Dana")

    first = await approve_bill(service, bill_id=bill_id, by=DANA_SLACK, seen_amount=Decimal("2500.00"))
    assert first.result is Result.DONE and first.standing is not None
    assert first.standing.state is BillState.NEEDS_SECOND_APPROVAL
    again = await approve_bill(service, bill_id=bill_id, by=DANA_EMAIL, seen_amount=Decimal("2500.00"))
    assert again.result is Result.ALREADY_DONE, again.message
    assert "second, different person" in again.message
    paid = await pay_bill(
        service, bill_id=bill_id, by=DANA_EMAIL, seen_amount=Decimal("2500.00")
    )
    assert paid.result is Result.REFUSED and "second approval" in paid.message

    second = await approve_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("2500.00"))
    assert second.standing is not None and second.standing.can_pay


async def test_a_raised_bill_is_paid_at_neither_amount_until_someone_sees_the_new_one(
    runway_env: RunwayEnv,
) -> None:
    """A bill raised in QuickBooks after the digest went out was paid at the old amount from
    Slack, then again from the email link: two payments. Now an approval covers the balance it
    was given for, and a payment must name the balance QuickBooks has now."""
    service, [bill_id] = await bill_service(runway_env, ["400.00"])
    await approve_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("400.00"))
    await edit_bill_amount(runway_env.sandbox, bill_id, "650.00")

    # Before the next sync: QuickBooks is asked, and the old amount is refused.
    stale = await pay_bill(
        service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("400.00")
    )
    assert stale.result is Result.REFUSED and "now has $650.00 open" in stale.message
    await service.sync_bills_from_qbo()
    # After it: the approval was for $400.00, so $650.00 needs approving again.
    now = await service.standing(bill_id)
    assert now.state is BillState.NEEDS_APPROVAL and now.lapsed and not now.can_pay
    refused = await pay_bill(
        service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("650.00")
    )
    assert refused.result is Result.REFUSED and "needs approving again" in refused.message
    approved = await approve_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("650.00"))
    assert approved.standing is not None and approved.standing.can_pay
    paid = await pay_bill(
        service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("650.00")
    )
    assert paid.result is Result.DONE, paid.message
    again = await pay_bill(
        service, bill_id=bill_id, by=PARTNER, seen_amount=Decimal("650.00")
    )
    assert again.result is Result.ALREADY_DONE
    assert [p["TotalAmt"] for p in runway_env.sandbox.realm().iter("BillPayment") if _pays(p, bill_id)] == [
        Decimal("650.00")
    ]


def _pays(payment: dict[str, object], bill_id: str) -> bool:
    lines = payment.get("Line") or []
    assert isinstance(lines, list)
    return any(
        link.get("TxnId") == bill_id for line in lines for link in line.get("LinkedTxn") or []
    )


# --- every sequence of events ------------------------------------------------------------------

PEOPLE = (OWNER, PARTNER, DANA_SLACK, DANA_EMAIL)
Step = tuple[str, str, int]  # (what, who, which amount the person saw: 0 = current, 1 = stale)
STEPS = st.lists(
    st.tuples(
        st.sampled_from(["approve", "pay", "raise", "sync"]),
        st.sampled_from(PEOPLE),
        st.sampled_from([0, 0, 1]),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=STEPS)
async def test_no_sequence_pays_twice_without_two_people_or_an_amount_nobody_saw(
    runway_env: RunwayEnv, steps: list[Step]
) -> None:
    """Random approvals and payments by Slack ids and email addresses (Dana is both), outside
    raises in QuickBooks and syncs: never two payments, never without the distinct people the
    amount needs, never an amount that was not the open balance someone saw and approved."""
    service, [bill_id] = await bill_service(runway_env, ["1500.00"])  # two approvals needed
    async with runway_env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        business.approvers = list(PEOPLE)
        await uow.commit()
    await service.remember_person(DANA_SLACK, DANA_EMAIL, "Dana")
    balance = Decimal("1500.00")
    previous = balance
    seen_by: dict[str, Decimal] = {}  # who approved which amount (Dana once, whichever door)
    paid: list[Decimal] = []
    for what, who, stale in steps:
        shown = previous if stale else (await service.standing(bill_id)).balance
        person = "dana" if who in (DANA_SLACK, DANA_EMAIL) else who
        if what == "approve":
            outcome = await approve_bill(service, bill_id=bill_id, by=who, seen_amount=shown)
            if outcome.result is Result.DONE:
                seen_by[person] = shown
        elif what == "pay":
            outcome = await pay_bill(
                service, bill_id=bill_id, by=who, seen_amount=shown
            )
            if outcome.result is Result.DONE:
                # Paid exactly the open balance, which at least two different people approved.
                covering = [p for p, amount in seen_by.items() if amount >= shown]
                assert len(covering) >= approvals_required(shown, Decimal("1000.00")), seen_by
                assert shown == balance
                paid.append(shown)
                balance = Decimal("0.00")
        elif what == "raise" and balance > 0:
            previous, balance = balance, balance + Decimal("100.00")
            await edit_bill_amount(runway_env.sandbox, bill_id, balance)
        elif what == "sync":
            await service.sync_bills_from_qbo()
    assert len(paid) <= 1
    in_quickbooks = [p for p in runway_env.sandbox.realm().iter("BillPayment") if _pays(p, bill_id)]
    assert [p["TotalAmt"] for p in in_quickbooks] == paid
    now = await service.standing(bill_id)
    if paid:
        assert now.state is BillState.PAID
    # Every surface reads the digest's line of the bill: it is the same standing.
    async with runway_env.uows(BUSINESS) as uow:
        books = await load_books(uow, BUSINESS, business_today(clock_now(runway_env), "UTC"), shown_bill_ids=[bill_id], rows=EVERY_ROW)
    [line] = [b for b in DigestBuilder().build(books, now=clock_now(runway_env)).bills_due.items if b.bill_id == bill_id]
    assert line.standing == now


def clock_now(env: RunwayEnv) -> datetime:
    return env.infra.clock.now()


async def test_the_freshness_line_moves_with_each_sync(runway_env: RunwayEnv) -> None:
    """"QuickBooks data as of 3:18 AM" never moved although later syncs changed the figures: the
    company's settings, read once at the first sync, counted as the oldest figure shown."""

    service, _ = await bill_service(runway_env, ["10.00"])
    clock = runway_env.infra.clock
    assert isinstance(clock, OffsetClock)

    async def oldest() -> datetime:
        async with runway_env.uows(BUSINESS) as uow:
            books = await load_books(uow, BUSINESS, clock.now().date())
        shown = DigestBuilder.freshness(books).oldest
        assert shown is not None
        return shown

    first = await oldest()
    clock.advance(timedelta(hours=2))
    await service.sync_bills_from_qbo()
    assert await oldest() >= first + timedelta(hours=2)


def test_two_approvals_by_one_person_count_once_even_when_linked_afterwards() -> None:
    """Dana approved in Slack and by email before Oodaloo knew both were her: once her Slack
    profile links them, the bill needs a second person again."""
    approvals = [(DANA_SLACK, "9000.00"), (DANA_EMAIL, "9000.00")]
    assert a_bill("9000.00", "9000.00", approvals).can_pay
    dana = frozenset({DANA_SLACK, DANA_EMAIL})
    linked = a_bill("9000.00", "9000.00", approvals, {DANA_SLACK: dana, DANA_EMAIL: dana})
    assert linked.state is BillState.NEEDS_SECOND_APPROVAL and not linked.can_pay


class UnreadableToken:
    """A stored QuickBooks token that reads once (the bill is read before paying), then cannot be
    decrypted (the token key was changed meanwhile)."""

    def __init__(self, token: str) -> None:
        self.token: str | None = token

    async def access_token(self) -> str:
        token, self.token = self.token, None
        if token is None:
            raise ValueError("the stored QuickBooks token cannot be decrypted with TOKEN_ENCRYPTION_KEY")
        return token

    async def force_refresh(self, rejected: str) -> str:
        return await self.access_token()


async def test_a_payment_that_fails_unexpectedly_never_leaves_the_bill_paying(
    runway_env: RunwayEnv,
) -> None:
    """A payment stayed at "Paying…" forever when something other than a refusal went wrong (a
    token that could not be read): nothing paid, nobody told, later clicks "already taken care
    of". Now the bill is never left "paying": free to pay again when nothing was sent."""
    import httpx

    from runway.bills import BillService
    from sync import MemoryBackend, SmartSyncService
    from sync.infrastructure import SyncInfrastructure

    service, [bill_id] = await bill_service(runway_env, ["220.00"])
    await approve_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("220.00"))
    env, realm = runway_env, runway_env.sandbox.realm_id
    broken = SyncInfrastructure(
        engine=env.db.engine,
        backend=MemoryBackend(),
        tokens_for=lambda realm_id: UnreadableToken(env.access_tokens[realm_id]),
        settings=env.infra.settings,
        clock=env.infra.clock,
        transport=httpx.ASGITransport(app=env.sandbox.app),
        owns_engine=False,
    )
    try:
        unlucky = BillService(
            env.uows, SmartSyncService(broken, BUSINESS, realm), BUSINESS, env.infra.clock
        )
        with pytest.raises(ValueError, match="cannot be decrypted"):
            await pay_bill(unlucky, bill_id=bill_id, by=OWNER, seen_amount=Decimal("220.00"))
    finally:
        await broken.aclose()
    after = await service.standing(bill_id)
    assert after.state is not BillState.PAYING, after
    if after.state is BillState.UNKNOWN:  # recorded to be sent: the reconciler settles it
        return
    assert after.state is BillState.APPROVED and after.can_pay
    paid = await pay_bill(service, bill_id=bill_id, by=OWNER, seen_amount=Decimal("220.00"))
    assert paid.result is Result.DONE, paid.message
