"""The audit trail's vocabulary: what each button press is called and how its outcome is written.

Every attempt to approve, pay, snooze or remind leaves one `AuditEntry` (through the unit of work's
`audit` repository), refused attempts included, so an owner can always answer "who paid this, and
when, and did it go through?". Outcomes are short, stable words followed by the plain message.
"""

from __future__ import annotations

from typing import Literal

from sync import ActionOutcome

#: Audit action names (stable: reports and the Slack history filter on them).
BILL_APPROVE = "bill.approve"
BILL_PAY = "bill.pay"
BILL_PAYMENT_DECISION = "bill.payment_decision"  # a person settles a payment that needed one
BILL_SNOOZE = "bill.snooze"
INVOICE_REMIND = "invoice.remind"

REFUSED = "refused"
DONE = "done"


def refused(reason: str) -> str:
    """The outcome of an attempt Oodaloo turned down before anything reached QuickBooks."""
    return f"{REFUSED}: {reason}"


def done(what: str) -> str:
    """The outcome of a local change (an approval, a snooze)."""
    return f"{DONE}: {what}"


def action_outcome(outcome: ActionOutcome) -> str:
    """The outcome of a QuickBooks write, as the ledger has it: its state, then what it means."""
    repeat = " (repeat of an earlier request)" if outcome.deduplicated else ""
    return f"{outcome.state.value}{repeat}: {outcome.message}"


def bill_target(qbo_id: str) -> str:
    return f"Bill {qbo_id}"


def invoice_target(qbo_id: str) -> str:
    return f"Invoice {qbo_id}"


def target_of(target: str) -> tuple[Literal["bill", "invoice"], str] | None:
    """("bill", its QuickBooks id) from `bill_target`'s words, the same for an invoice; None for
    anything else."""
    word, _, qbo_id = target.partition(" ")
    if not qbo_id:
        return None
    if word == "Bill":
        return "bill", qbo_id
    if word == "Invoice":
        return "invoice", qbo_id
    return None


__all__ = [
    "BILL_APPROVE",
    "BILL_PAY",
    "BILL_SNOOZE",
    "INVOICE_REMIND",
    "action_outcome",
    "bill_target",
    "done",
    "invoice_target",
    "refused",
    "target_of",
]
