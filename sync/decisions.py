"""A person's decision on an action Oodaloo could not settle by itself ("needs a person").

The reconciler hands an action to a person when QuickBooks shows something it must not guess
about (two payments carrying its marker, a payment of the same amount made by hand, the bill
changed since it was approved). The person looks in QuickBooks and decides:

- **paid**: it is paid in QuickBooks. The bill is read again; exactly one payment linked to it
  must apply the action's amount, and the action is recorded as that payment.
- **send it**: the person has looked and this payment is not in QuickBooks (the lookalike is
  another payment; the bill's change does not matter). Oodaloo still searches for its own marker,
  then sends it with the same requestid, so it cannot land twice.
- **cancel**: nothing will be sent; the bill can be paid again from a fresh click.

Each decision is recorded in the ledger with who took it.
"""

from __future__ import annotations

from enum import StrEnum

from sync.actions import ActionOutcome, markers_in
from sync.ledger import ActionState
from sync.payment_search import look_around
from sync.ratelimit import Priority
from sync.reconcile import PAYMENT_KINDS, amount_applied
from sync.service import SmartSyncService, outcome_for


class PersonDecision(StrEnum):
    PAID = "paid"
    SEND_AGAIN = "send_again"
    CANCEL = "cancel"


class NotDecided(Exception):
    """The decision cannot be taken as asked; the message says why and what the person can do."""


async def decide(
    service: SmartSyncService, key: str, decision: PersonDecision, *, by: str
) -> ActionOutcome:
    """Apply a person's decision to the action `key` of this service's business. An action that
    no longer needs a person (someone decided first) is returned as it stands, deduplicated."""
    ledger = service.infra.ledger
    action = await ledger.get(key)
    if action is None or action.business_id != service.business_id:
        raise NotDecided("Oodaloo has no such payment for this business.")
    if action.state is not ActionState.NEEDS_HUMAN:
        return outcome_for(action, deduplicated=True)
    kind = PAYMENT_KINDS.get(action.operation)
    if kind is None:
        raise NotDecided("Only a payment can be decided here; check the reminder in QuickBooks.")
    if decision is PersonDecision.CANCEL:
        done = await ledger.resolve(
            key, ActionState.FAILED, by=by, note="cancelled by a person; nothing was sent"
        )
        return outcome_for(done)
    what = f"{kind.target_entity} {action.target_id}"
    sight = await look_around(service, kind, [action], priority=Priority.USER_ACTION)
    target = sight.target(action)
    payments = sight.payments_for(action)
    ours = [p for p in payments.values() if key in markers_in(p.get("PrivateNote"))]
    if decision is PersonDecision.PAID:
        if target is None:
            raise NotDecided(f"{what} was deleted in QuickBooks, so it cannot be marked paid: cancel instead.")
        paying = [p for p in payments.values() if amount_applied(p, action.target_id) == action.amount]
        if len(paying) != 1:
            raise NotDecided(
                f"QuickBooks shows {len(paying) or 'no'} payment{'' if len(paying) == 1 else 's'} of "
                f"{action.amount} on {what}, so Oodaloo cannot tell which one this is: "
                + ("pay it there first, or choose to send it." if not paying
                   else "void the extra one in QuickBooks, then mark it paid.")
            )  # fmt: skip
        payment_id = str(paying[0].get("Id"))
        done = await ledger.resolve(
            key,
            ActionState.SUCCEEDED,
            by=by,
            note=f"marked paid: {kind.payment_entity} {payment_id} in QuickBooks",
            qbo_object_id=payment_id,
        )
        await service.invalidate_after(done)
        return outcome_for(done)
    # Send it: the person has looked in QuickBooks and says this payment is not there. Oodaloo's
    # own marker is still searched for first, and the request carries the same requestid.
    if len(ours) > 1:
        raise NotDecided(
            f"{len(ours)} payments in QuickBooks carry this payment's marker: void the extra ones "
            "there, then mark it paid."
        )
    await ledger.resolve(key, ActionState.PENDING, by=by, note="sent again after a person checked QuickBooks")
    owner = service.new_owner()
    claimed = await ledger.claim(key, owner, service.infra.settings.write_lease_seconds(Priority.USER_ACTION))
    if claimed is None:  # the reconciler took it a moment ago: it settles it
        current = await ledger.get(key)
        return outcome_for(current or action, deduplicated=True)
    if ours:
        found = ours[0]
        done = await ledger.mark_succeeded(key, owner, str(found.get("Id")), found)
        await service.invalidate_after(done)
        return outcome_for(done)
    return await service.perform_claimed(claimed, owner, possibly_applied=True)


__all__ = ["NotDecided", "PersonDecision", "decide"]
