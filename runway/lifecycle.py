"""The one lifecycle of a bill: every surface (the Slack card, `/runway`, the email digest) renders
from a `BillStanding`, and every use case decides from it.

    needs approval (k of n, by whom) → approved → paying → paid
                                           ↑          ↘ unknown (being checked) → paid | failed
                                           └──────── failed (approvals stand: pay again)
                                                      needs a person (QuickBooks and Oodaloo disagree)

Snoozed-until and a reminder's by/at sit beside it. The rules, each in one function:

- `approvals_required`: the amount being paid above the business's threshold needs two different
  people; the digest, the email and the payment all ask this function, with the open balance in
  the home currency at the bill's own exchange rate (so an approval does not lapse or become
  enough when QuickBooks' rate moves; the threshold is in the home currency).
- an approval covers paying at most the balance it was given for: when QuickBooks raises a bill
  after it was approved, the approval lapses and the card asks for it again.
- a bill whose open balance is zero is paid, whoever paid it (Oodaloo, or someone in QuickBooks).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from runway.cash_flow import home_amount
from runway.people import canonical, same_person

if TYPE_CHECKING:
    from runway.books import OpenBill
    from runway.models import Bill


class PaymentState(enum.StrEnum):
    """Oodaloo's last payment of a bill, as kept on the bill."""

    #: Sent to QuickBooks; its answer has not come yet.
    PAYING = "paying"
    PAID = "paid"
    #: QuickBooks refused it, or the reconciler found it never arrived: nothing was paid.
    FAILED = "failed"
    #: QuickBooks did not answer: the reconciler is checking (it is never sent twice).
    UNKNOWN = "unknown"
    #: The reconciler could not settle it: someone has to look in QuickBooks.
    NEEDS_PERSON = "needs_person"


class BillState(enum.StrEnum):
    NEEDS_APPROVAL = "needs_approval"
    #: Above the threshold: one person approved, a second, different one must too.
    NEEDS_SECOND_APPROVAL = "needs_second_approval"
    APPROVED = "approved"
    PAYING = "paying"
    UNKNOWN = "unknown"
    PAID = "paid"
    #: The last payment did not go through; the approvals stand and it can be paid again.
    FAILED = "failed"
    NEEDS_PERSON = "needs_person"


#: States in which a payment may still land in QuickBooks: no second one may start.
IN_FLIGHT = frozenset({BillState.PAYING, BillState.UNKNOWN, BillState.NEEDS_PERSON})


def approvals_required(home_balance: Decimal, threshold: Decimal) -> int:
    """Paying more than the business's threshold needs two different people's approval; both
    amounts are in the home currency (a foreign bill's balance at the bill's own rate)."""
    return 2 if home_balance > threshold else 1


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    at: datetime | None
    #: The open balance the person saw when approving (None: given before amounts were kept).
    amount: Decimal | None
    #: Every identifier of the person who approved (their Slack id and email address, as known).
    person: frozenset[str] = frozenset()

    def covers(self, amount: Decimal) -> bool:
        return self.amount is None or amount <= self.amount


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """Oodaloo's last payment of the bill."""

    state: PaymentState
    amount: Decimal | None
    by: str | None
    at: datetime | None
    account_name: str | None
    #: QuickBooks' reason, when it did not go through.
    note: str | None


@dataclass(frozen=True, slots=True)
class BillStanding:
    """Where one bill stands now: what every surface shows and every use case decides from."""

    bill_id: str
    vendor_name: str
    doc_number: str | None
    total: Decimal
    #: What is still owed in QuickBooks (as last read, with Oodaloo's own payments applied).
    balance: Decimal
    currency: str | None
    #: `balance` in the home currency at the bill's own exchange rate: what the threshold is for.
    home_balance: Decimal
    due_date: date | None
    state: BillState
    #: Approvals that cover the open balance, first one first.
    approvals: tuple[Approval, ...]
    #: Approvals given for a smaller balance than the bill has now (QuickBooks raised it since).
    lapsed: tuple[Approval, ...]
    approvals_required: int
    payment: PaymentLine | None
    snoozed_until: datetime | None

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(approval.by for approval in self.approvals)

    @property
    def approvals_missing(self) -> int:
        return max(0, self.approvals_required - len(self.approvals))

    @property
    def can_pay(self) -> bool:
        """Paying the open balance is possible now (by an approver)."""
        return self.state in (BillState.APPROVED, BillState.FAILED)

    def can_approve(self, identities: frozenset[str]) -> bool:
        """The person with these identifiers may add an approval that counts."""
        if self.state not in (BillState.NEEDS_APPROVAL, BillState.NEEDS_SECOND_APPROVAL):
            return False
        return not self.approved_by_person(identities)

    def approved_by_person(self, identities: frozenset[str]) -> bool:
        """Whether the person with these identifiers gave one of the approvals that count."""
        return any(
            same_person(identities, name)
            for approval in self.approvals
            for name in (approval.by, *approval.person)
        )

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    @property
    def settled(self) -> bool:
        """Nothing is left to do on it (paid)."""
        return self.state is BillState.PAID


def _same(one: Approval, other: Approval) -> bool:
    return any(same_person(one.person | {one.by}, name) for name in (other.by, *other.person))


def _approvals(
    balance: Decimal,
    given: tuple[tuple[str | None, datetime | None, Decimal | None], ...],
    people: Mapping[str, frozenset[str]],
) -> tuple[tuple[Approval, ...], tuple[Approval, ...]]:
    covering: list[Approval] = []
    lapsed: list[Approval] = []
    for by, at, amount in given:
        if not by:
            continue
        approval = Approval(by, at, amount, people.get(canonical(by), frozenset({by})))
        if any(_same(approval, other) for other in (*covering, *lapsed)):
            continue  # one person is one approver, however many doors they came through
        (covering if approval.covers(balance) else lapsed).append(approval)
    return tuple(covering), tuple(lapsed)


def standing(
    *,
    bill_id: str,
    vendor_name: str | None,
    doc_number: str | None,
    total: Decimal,
    balance: Decimal,
    currency: str | None,
    due_date: date | None,
    approvals: tuple[tuple[str | None, datetime | None, Decimal | None], ...],
    payment: PaymentLine | None,
    snoozed_until: datetime | None,
    threshold: Decimal,
    people: Mapping[str, frozenset[str]] | None = None,
    exchange_rate: Decimal | None = None,
) -> BillStanding:
    """The bill's standing from its facts (see the module docstring for the rules); `people`
    maps each known identifier to all of its person's (`PeopleRepository.directory`);
    `exchange_rate` is the bill's own (home units per unit of `currency`; None: the home's)."""
    covering, lapsed = _approvals(balance, approvals, people or {})
    home_balance = balance if exchange_rate is None else home_amount(balance, exchange_rate)
    required = approvals_required(home_balance, threshold)
    if payment is not None and payment.state in (PaymentState.PAYING,):
        state = BillState.PAYING
    elif payment is not None and payment.state is PaymentState.UNKNOWN:
        state = BillState.UNKNOWN
    elif payment is not None and payment.state is PaymentState.NEEDS_PERSON:
        state = BillState.NEEDS_PERSON
    elif balance <= 0:
        state = BillState.PAID
    elif len(covering) >= required:
        failed = payment is not None and payment.state is PaymentState.FAILED
        state = BillState.FAILED if failed else BillState.APPROVED
    elif covering:
        state = BillState.NEEDS_SECOND_APPROVAL
    else:
        state = BillState.NEEDS_APPROVAL
    return BillStanding(
        bill_id=bill_id,
        vendor_name=vendor_name or "",
        doc_number=doc_number,
        total=total,
        balance=balance,
        currency=currency,
        home_balance=home_balance,
        due_date=due_date,
        state=state,
        approvals=covering,
        lapsed=lapsed,
        approvals_required=required,
        payment=payment,
        snoozed_until=snoozed_until,
    )


def payment_line(
    state: str | None,
    amount: Decimal | None,
    by: str | None,
    at: datetime | None,
    account_name: str | None,
    note: str | None,
) -> PaymentLine | None:
    if state is None:
        return None
    return PaymentLine(PaymentState(state), amount, by, at, account_name, note)


def standing_of(
    bill: Bill | OpenBill,
    threshold: Decimal,
    *,
    balance: Decimal | None = None,
    people: Mapping[str, frozenset[str]] | None = None,
) -> BillStanding:
    """The standing of a mirrored bill (a `Bill` row or the snapshot's `OpenBill`); `balance`,
    when given, is QuickBooks' open balance read just now instead of the mirror's. The
    threshold is compared with the open balance at the bill's own exchange rate."""
    from runway.models import Bill

    if isinstance(bill, Bill):
        bill_id, vendor, total = bill.qbo_id, bill.vendor_name, bill.total_amount
    else:
        bill_id, vendor, total = bill.id, bill.vendor_name, bill.amount
    return standing(
        bill_id=bill_id,
        vendor_name=vendor,
        doc_number=bill.doc_number,
        total=total,
        balance=bill.balance if balance is None else balance,
        currency=bill.currency,
        due_date=bill.due_date,
        approvals=(
            (bill.approved_by, bill.approved_at, bill.approved_amount),
            (bill.second_approved_by, bill.second_approved_at, bill.second_approved_amount),
        ),
        payment=payment_line(
            bill.payment_state,
            bill.payment_amount,
            bill.payment_by,
            bill.payment_at,
            bill.payment_account_name,
            bill.payment_note,
        ),
        snoozed_until=bill.snoozed_until,
        threshold=threshold,
        people=people,
        exchange_rate=bill.exchange_rate,
    )


__all__ = [
    "IN_FLIGHT",
    "Approval",
    "BillStanding",
    "BillState",
    "PaymentLine",
    "PaymentState",
    "approvals_required",
    "payment_line",
    "standing",
    "standing_of",
]
