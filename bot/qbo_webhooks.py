"""QuickBooks webhooks in: `POST /qbo/webhooks`, signed by Intuit, answered at once.

QuickBooks tells Oodaloo which objects changed in a company (never the objects themselves), signing
the raw body with the app's verifier token: `intuit-signature` = base64(HMAC-SHA256(token, body)).
A request whose signature does not match is refused with 401 before anything is read from it.

Two payload formats arrive, both turned into the same `(realm_id, entities)` calls:
- the legacy one, `{"eventNotifications": [{"realmId": ..., "dataChangeEvent": {"entities": [...]}}]}`,
  whose entities (`{"name": "Bill", "id": "42", "operation": "Update", "lastUpdated": ...}`) are
  passed on as they are;
- the CloudEvents one, a JSON array of `{"type": "qbo.bill.updated.v1", "intuitaccountid": ...,
  "intuitentityid": ..., "time": ...}`, whose events become entities of that same legacy shape
  (plus the event's `id` as `eventId`), grouped by company in the order they came.

One notification or event that cannot be read (no company, no entity id, an unknown type) is
logged and skipped; the rest of the delivery is still acted on and the answer is 200, since Intuit
would only send the same delivery again. A delivery with nothing readable in it is a 400.

Intuit wants an answer within 3 seconds and withholds later notifications until one is
acknowledged, so `on_changes` runs in the background and the route answers 200 straight away.
A failing `on_changes` is logged; the changes themselves are caught up by the next mirror sync (CDC).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import simplejson
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runway.models import is_qbo_id
from sync import loads_decimal

logger = logging.getLogger(__name__)

WEBHOOKS_PATH = "/qbo/webhooks"
SIGNATURE_HEADER = "intuit-signature"

ChangeHandler = Callable[[str, list[dict[str, Any]]], Awaitable[None]]

#: CloudEvents' lower-case entity names -> QuickBooks' names (the legacy payload's `name`).
_ENTITY_NAMES = {
    name.lower(): name
    for name in (
        "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency", "Customer",
        "Department", "Deposit", "Employee", "Estimate", "Invoice", "Item", "JournalCode",
        "JournalEntry", "Payment", "PaymentMethod", "Preferences", "Purchase", "PurchaseOrder",
        "RefundReceipt", "SalesReceipt", "TaxAgency", "Term", "TimeActivity", "Transfer",
        "Vendor", "VendorCredit",
    )
}  # fmt: skip

#: CloudEvents' past-tense verbs -> the legacy payload's operations.
_OPERATIONS = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}


class MalformedNotification(ValueError):
    """A correctly signed body that is not a QuickBooks notification Oodaloo understands."""


def verify_intuit_signature(verifier_token: str, body: bytes, signature: str | None) -> bool:
    """True when `signature` is base64(HMAC-SHA256(verifier_token, body)), compared in constant time."""
    if not signature or not verifier_token:
        return False
    try:
        received = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(expected, received)


@dataclass(frozen=True, slots=True)
class Notification:
    """What a delivery asks for: `(realm_id, entities)` per company, and what was skipped (why)."""

    changes: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def read_notification(payload: Any) -> Notification:
    """The usable part of a delivery in either format: a notification or event that cannot be
    read is skipped and said in `skipped`, the others stand. MalformedNotification when the
    delivery as a whole is not one (not an object with eventNotifications nor an array), or
    when not one of its notifications or events can be read."""
    if isinstance(payload, dict):
        notification = _legacy(payload)
    elif isinstance(payload, list):
        notification = _cloud_events(payload)
    else:
        raise MalformedNotification(
            "expected a JSON object with eventNotifications or a JSON array of CloudEvents"
        )
    if notification.skipped and not notification.changes:
        raise MalformedNotification("; ".join(notification.skipped))
    return notification


def parse_notification(payload: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """`(realm_id, entities)` per company from either payload format; MalformedNotification if
    any part of it cannot be read (`read_notification` keeps the readable part instead)."""
    notification = read_notification(payload)
    if notification.skipped:
        raise MalformedNotification("; ".join(notification.skipped))
    return notification.changes


def _legacy(payload: dict[str, Any]) -> Notification:
    notifications = payload.get("eventNotifications")
    if not isinstance(notifications, list):
        raise MalformedNotification("eventNotifications is missing or is not a list")
    read = Notification()
    for index, notification in enumerate(notifications):
        where = f"eventNotifications[{index}]"
        if not isinstance(notification, dict):
            read.skipped.append(f"{where} is not an object")
            continue
        realm_id = notification.get("realmId")
        if not _an_id(realm_id):
            read.skipped.append(f"{where}.realmId is missing or is not a QuickBooks company id")
            continue
        event = notification.get("dataChangeEvent")
        entities = event.get("entities") if isinstance(event, dict) else None
        if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
            read.skipped.append(f"{where}.dataChangeEvent.entities is not a list of objects")
            continue
        read.changes.append((str(realm_id), entities))
    return read


def _cloud_events(events: list[Any]) -> Notification:
    by_realm: dict[str, list[dict[str, Any]]] = {}
    skipped = []
    for index, event in enumerate(events):
        where = f"event [{index}]"
        try:
            realm_id, entity = _cloud_event(event, where)
        except MalformedNotification as problem:
            skipped.append(str(problem))
            continue
        by_realm.setdefault(realm_id, []).append(entity)
    return Notification(list(by_realm.items()), skipped)


def _cloud_event(event: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(event, dict):
        raise MalformedNotification(f"{where} is not an object")
    realm_id = event.get("intuitaccountid")
    entity_id = event.get("intuitentityid")
    if not _an_id(realm_id) or not _an_id(entity_id):
        raise MalformedNotification(
            f"{where} has no intuitaccountid or intuitentityid that is a QuickBooks id"
        )
    name, operation = _entity_and_operation(event.get("type"), where)
    entity: dict[str, Any] = {"name": name, "id": str(entity_id), "operation": operation}
    if event.get("time") is not None:
        entity["lastUpdated"] = event["time"]
    if event.get("id") is not None:
        entity["eventId"] = event["id"]
    return str(realm_id), entity


def _an_id(value: Any) -> bool:
    """A QuickBooks id (a company's or an entity's), as text or a number; anything else never
    reaches a lookup."""
    return isinstance(value, str | int) and not isinstance(value, bool) and is_qbo_id(str(value))


def _entity_and_operation(event_type: Any, where: str) -> tuple[str, str]:
    # "qbo.bill.updated.v1" -> ("Bill", "Update")
    parts = event_type.split(".") if isinstance(event_type, str) else []
    if len(parts) != 4 or parts[0] != "qbo":
        raise MalformedNotification(
            f"{where} has type {event_type!r}; expected one like 'qbo.bill.updated.v1'"
        )
    entity, verb = parts[1], parts[2]
    name = _ENTITY_NAMES.get(entity, entity[:1].upper() + entity[1:])
    operation = _OPERATIONS.get(verb, verb[:1].upper() + verb[1:])
    return name, operation


class ChangesByCompany:
    """Runs `on_changes` for one company at a time, in the background.

    Changes that arrive while a company's run is under way wait and are handed over together in
    one more run, so a burst of webhooks costs two mirror syncs, not one per delivery (each sync
    spends the company's QuickBooks request budget).
    """

    def __init__(self, on_changes: ChangeHandler) -> None:
        self.on_changes = on_changes
        self._waiting: dict[str, list[dict[str, Any]]] = {}
        self._running: dict[str, asyncio.Task[None]] = {}

    def add(self, realm_id: str, entities: list[dict[str, Any]]) -> None:
        self._waiting.setdefault(realm_id, []).extend(entities)
        if realm_id not in self._running:
            what = f"handling QuickBooks changes of company {realm_id}"
            task = asyncio.get_running_loop().create_task(self._drain(realm_id), name=what)
            self._running[realm_id] = task  # held until done, so the loop cannot drop it half way

    async def _drain(self, realm_id: str) -> None:
        try:
            while entities := self._waiting.pop(realm_id, []):
                try:
                    await self.on_changes(realm_id, entities)
                except Exception:
                    logger.exception("handling QuickBooks changes of company %s failed", realm_id)
        finally:
            del self._running[realm_id]


def qbo_webhook_route(verifier_token: str, on_changes: ChangeHandler) -> Route:
    """`POST /qbo/webhooks`: verifies Intuit's signature, then `on_changes(realm_id, entities)` per company.

    401 for a missing or wrong signature (nothing else is done), 400 for a body that is not a
    QuickBooks notification or has no readable part, otherwise 200 at once with `on_changes`
    running in the background for the readable parts (the others are logged and skipped).
    """
    if not verifier_token:
        raise ValueError(
            "the QuickBooks webhook verifier token is empty; copy it from the app's Webhooks page "
            "on developer.intuit.com into QBO_WEBHOOK_VERIFIER_TOKEN"
        )
    changes_by_company = ChangesByCompany(on_changes)

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        if not verify_intuit_signature(verifier_token, body, request.headers.get(SIGNATURE_HEADER)):
            logger.warning("refused a QuickBooks webhook with a missing or wrong intuit-signature")
            return JSONResponse(
                {
                    "error": "invalid intuit-signature: the body is not signed with this app's verifier token"
                },
                status_code=401,
            )
        try:
            notification = read_notification(loads_decimal(body))
        except (simplejson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            return JSONResponse({"error": f"the body is not valid JSON ({exc})"}, status_code=400)
        except MalformedNotification as exc:
            logger.warning("refused a QuickBooks webhook with nothing readable in it: %s", exc)
            return JSONResponse({"error": f"not a QuickBooks notification: {exc}"}, status_code=400)
        for problem in notification.skipped:
            logger.warning("skipped part of a QuickBooks webhook: %s", problem)
        changes = notification.changes
        for realm_id, entities in changes:
            changes_by_company.add(realm_id, entities)
        answer: dict[str, Any] = {"received": sum(len(entities) for _, entities in changes)}
        if notification.skipped:
            answer["skipped"] = notification.skipped
        return JSONResponse(answer)

    return Route(WEBHOOKS_PATH, receive, methods=["POST"])


__all__ = [
    "SIGNATURE_HEADER",
    "WEBHOOKS_PATH",
    "MalformedNotification",
    "Notification",
    "parse_notification",
    "qbo_webhook_route",
    "read_notification",
    "verify_intuit_signature",
]
