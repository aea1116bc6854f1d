"""The demo's live log of what Oodaloo did about QuickBooks' faults, for the page's fault switch.

Three sources, each what production already records: the QuickBooks client's log of every call
(a throttled, failed or lost answer is a fault, and what Oodaloo does next is said with it), the
reconciler's resolutions (an unknown payment found in QuickBooks, or proven absent and sent again
with the same requestid), and the action ledger and audit trail (a write that needed more than one
attempt was retried; a click that repeated an action already recorded was deduplicated).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sync import ActionState, Resolution

if TYPE_CHECKING:
    from bot.bootstrap import Oodaloo

#: The logger of every QuickBooks call (`sync/qbo/client.py`).
QBO_CLIENT_LOGGER = "sync.qbo.client"
#: How a resolution came about (`Resolution.how`).
FOUND, RESENT, TARGET_GONE = "found", "resent", "target_gone"
#: Entries shown at most.
MOST = 40
#: The audit trail's words for a repeated request (`runway.audit.action_outcome`).
REPEAT = "(repeat of an earlier request)"

OPERATIONS = {
    "bill_payment.create": "a bill payment",
    "invoice.send": "an invoice reminder",
}


def _entry(at: datetime, kind: str, text: str) -> dict[str, Any]:
    return {"at": at.astimezone(UTC).isoformat(), "kind": kind, "text": text}


def _entity(path: str) -> str:
    """What a call was about, from its path under the company: "/billpayment" -> "billpayment",
    "/bill/42" -> "bill", "/query?query=..." -> "query"."""
    parts = [part for part in path.split("?")[0].split("/") if part]
    return parts[0] if parts else path


class _FaultLog(logging.Handler):
    """Keeps the QuickBooks calls that did not get a good answer."""

    def __init__(self, kept: deque[dict[str, Any]], lock: threading.Lock) -> None:
        super().__init__(level=logging.INFO)
        self.kept = kept
        self.guard = lock

    def emit(self, record: logging.LogRecord) -> None:
        # Only the client's line for each call ("QBO GET /v3/... -> 503"), which carries its status
        # (None: no answer came).
        if not str(record.msg).startswith("QBO %s %s") or not hasattr(record, "status"):
            return
        status = record.status
        args = record.args if isinstance(record.args, tuple) else ()
        if len(args) < 2 or (isinstance(status, int) and status < 400):
            return
        method, path = str(args[0]), _entity(str(args[1]))
        at = datetime.fromtimestamp(record.created, UTC)
        if status == 429:
            text = f"QuickBooks throttled {method} {path} (429): Oodaloo waits as told and tries again"
        elif isinstance(status, int):
            text = (
                f"QuickBooks answered {status} to {method} {path}: Oodaloo retries with backoff "
                "(a write with the same requestid, so it is applied once)"
            )
        else:
            text = (
                f"QuickBooks' answer to {method} {path} was lost: a read is retried; a payment is "
                "kept as unknown and looked for in QuickBooks before anything is sent again"
            )
        with self.guard:
            self.kept.appendleft(_entry(at, "fault", text))


class DemoActivity:
    """What the page's log shows (`slack_sandbox.page.ActivityFeed`)."""

    def __init__(self, oodaloo: Oodaloo, business_id: str) -> None:
        self.oodaloo = oodaloo
        self.business_id = business_id
        self._lock = threading.Lock()
        self._kept: deque[dict[str, Any]] = deque(maxlen=MOST)
        self._handler = _FaultLog(self._kept, self._lock)
        self._level = logging.NOTSET

    def attach(self) -> None:
        client_log = logging.getLogger(QBO_CLIENT_LOGGER)
        # Each call's line is at INFO: the log needs it whatever the process prints.
        self._level = client_log.level
        if client_log.getEffectiveLevel() > logging.INFO:
            client_log.setLevel(logging.INFO)
        client_log.addHandler(self._handler)
        self.oodaloo.resolution_listeners.append(self.on_resolution)

    def detach(self) -> None:
        client_log = logging.getLogger(QBO_CLIENT_LOGGER)
        client_log.removeHandler(self._handler)
        client_log.setLevel(self._level)
        if self.on_resolution in self.oodaloo.resolution_listeners:
            self.oodaloo.resolution_listeners.remove(self.on_resolution)

    async def on_resolution(self, resolution: Resolution) -> None:
        what = OPERATIONS.get(resolution.operation, resolution.operation)
        if resolution.how == FOUND:
            text = f"Reconciled {what} left unknown: found in QuickBooks, so it was not sent again"
        elif resolution.how == RESENT:
            text = (
                f"Reconciled {what} left unknown: proven absent from QuickBooks, sent again with "
                "the same requestid"
            )
        elif resolution.how == TARGET_GONE:
            text = f"Reconciled {what}: its bill or invoice is gone from QuickBooks; nothing was applied"
        elif resolution.settled:
            text = f"Reconciliation of {what}: {resolution.reason}"
        else:
            return  # QuickBooks could not be asked yet: the next sweep tries again
        with self._lock:
            self._kept.appendleft(_entry(self.oodaloo.clock.now(), "reconciled", text))

    async def entries(self) -> list[dict[str, Any]]:
        """Newest first: faults and reconciliations as they happened, writes that were retried,
        clicks that were deduplicated."""
        with self._lock:
            found = list(self._kept)
        business = await self.oodaloo.directory.get(self.business_id)
        actions = await self.oodaloo.infra.ledger.list(realm_id=business.realm_id)
        for action in actions[-MOST:]:
            what = OPERATIONS.get(action.operation, action.operation)
            if action.attempts > 1 and action.state is ActionState.SUCCEEDED:
                found.append(_entry(
                    action.completed_at or action.updated_at, "retried",
                    f"{what.capitalize()} ({action.target_type} {action.target_id}) went through "
                    f"after {action.attempts} attempts, once in QuickBooks",
                ))  # fmt: skip
            elif action.state is ActionState.UNKNOWN:
                found.append(_entry(
                    action.updated_at, "unknown",
                    f"{what.capitalize()} ({action.target_type} {action.target_id}): QuickBooks has "
                    "not answered; the reconciler looks for it within a minute",
                ))  # fmt: skip
        async with self.oodaloo.uows(self.business_id) as uow:
            recent = await uow.audit.recent(MOST)
        for entry in recent:
            if entry.outcome and REPEAT in entry.outcome:
                found.append(_entry(
                    entry.completed_at or entry.requested_at, "deduplicated",
                    f"A repeated click on {entry.target} found the action already recorded: "
                    "nothing was sent twice",
                ))  # fmt: skip
        found.sort(key=lambda item: item["at"], reverse=True)
        return found[:MOST]


__all__ = ["DemoActivity"]
