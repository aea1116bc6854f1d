"""The sandbox's admin API (changes made "in QuickBooks" by someone else) and its outgoing webhooks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig

LEGACY_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")


class Receiver:
    """A real loopback HTTP endpoint standing in for Oodaloo's webhook route."""

    def __init__(self, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._statuses = list(statuses or [])
        self._delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver._delay)
                status = receiver._statuses.pop(0) if receiver._statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/qbo/webhooks"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sandbox() -> Sandbox:
    # A small scaled company seeds fast; these tests need a few bills and vendors, not a year of books.
    return create_app(SandboxConfig(scale=5))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
async def quick_webhooks() -> AsyncIterator[Sandbox]:
    sandbox = create_app(SandboxConfig(scale=5, webhook_batch_seconds=0.02, webhook_retry_delays=(0.02, 0.02)))
    yield sandbox
    await sandbox.aclose()


def _cdc_objects(body: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    found = []
    for response in body["CDCResponse"]:
        for part in response["QueryResponse"]:
            found.extend(part.get(entity, []))
    return found


def _first(sandbox: Sandbox, entity: str) -> dict[str, Any]:
    return dict(next(iter(sandbox.realm().iter(entity))))


async def _drain(sandbox: Sandbox) -> None:
    async with asyncio.timeout(5):
        await sandbox.webhooks.drain()


# -- admin ------------------------------------------------------------------------------------


async def test_outside_edit_bumps_sync_token_and_shows_in_cdc(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    bill = _first(sandbox, "Bill")
    since = sandbox.clock.now().replace(microsecond=0)
    sandbox.advance_clock(timedelta(seconds=5))

    edited = await qbo_http.post(
        f"/_sandbox/realms/{sandbox.realm_id}/edit/bill/{bill['Id']}",
        json={"PrivateNote": "Due date moved by the bookkeeper", "VendorRef": {"name": "Renamed Vendor"},
              "SyncToken": "999"},
    )
    assert edited.status_code == 200
    after = edited.json()["Bill"]
    assert int(after["SyncToken"]) == int(bill["SyncToken"]) + 1  # the store owns SyncToken
    assert after["VendorRef"] == {"value": bill["VendorRef"]["value"], "name": "Renamed Vendor"}  # nested merge

    cdc = await qbo_http.get(sandbox.v3_path("cdc"), params={"entities": "Bill", "changedSince": since.isoformat()})
    assert cdc.status_code == 200
    changed = {b["Id"]: b for b in _cdc_objects(cdc.json(), "Bill")}
    assert changed[bill["Id"]]["PrivateNote"] == "Due date moved by the bookkeeper"


async def test_outside_create_and_delete_show_through_the_api(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    since = sandbox.clock.now().replace(microsecond=0)
    created = await qbo_http.post(
        f"/_sandbox/realms/{sandbox.realm_id}/vendor", json={"DisplayName": "Zoë's Bakery & Café"}
    )
    assert created.status_code == 201
    vendor_id = created.json()["Vendor"]["Id"]
    read = await qbo_http.get(sandbox.v3_path(f"vendor/{vendor_id}"))
    assert read.json()["Vendor"]["DisplayName"] == "Zoë's Bakery & Café"

    deleted = await qbo_http.delete(f"/_sandbox/realms/{sandbox.realm_id}/Vendor/{vendor_id}")
    assert deleted.status_code == 200
    cdc = await qbo_http.get(sandbox.v3_path("cdc"), params={"entities": "Vendor", "changedSince": since.isoformat()})
    tombstones = [v for v in _cdc_objects(cdc.json(), "Vendor") if v["Id"] == vendor_id]
    assert tombstones and tombstones[-1]["status"] == "Deleted"

    missing = await qbo_http.delete(f"/_sandbox/realms/{sandbox.realm_id}/Vendor/{vendor_id}")
    assert missing.status_code == 404
    unknown = await qbo_http.post(f"/_sandbox/realms/{sandbox.realm_id}/Spaceship", json={})
    assert unknown.status_code == 400 and "Spaceship" in unknown.json()["detail"]


async def test_reset_reseeds_the_company(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    vendors_before = sandbox.realm().count("Vendor")
    await qbo_http.post(f"/_sandbox/realms/{sandbox.realm_id}/vendor", json={"DisplayName": "Temporary Vendor"})
    assert sandbox.realm().count("Vendor") == vendors_before + 1

    reset = await qbo_http.post(f"/_sandbox/realms/{sandbox.realm_id}/reset")
    assert reset.status_code == 200
    assert reset.json()["objects"]["Vendor"] == vendors_before
    assert sandbox.realm().count("Vendor") == vendors_before
    # The app's connection survives a reset.
    assert (await qbo_http.get(sandbox.v3_path(f"companyinfo/{sandbox.realm_id}"))).status_code == 200


async def test_new_company_through_admin_api_comes_with_its_own_tokens(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    created = await qbo_http.post("/_sandbox/realms", json={"seed": 31, "scale": 25})
    assert created.status_code == 201
    realm_id = created.json()["realm_id"]
    headers = {"Authorization": f"Bearer {created.json()['access_token']}"}
    count = await qbo_http.get(
        f"/v3/company/{realm_id}/query", params={"query": "select count(*) from Bill"}, headers=headers
    )
    assert count.json()["QueryResponse"]["totalCount"] == 25

    listed = (await qbo_http.get("/_sandbox/realms")).json()["realms"]
    assert {r["realm_id"] for r in listed} == {sandbox.realm_id, realm_id}
    again = await qbo_http.post("/_sandbox/realms", json={"seed": 31})
    assert again.status_code == 409


async def test_clock_moves_forward_only(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    before = sandbox.clock.now()
    moved = await qbo_http.post("/_sandbox/clock", json={"hours": 2})
    assert moved.status_code == 200
    assert sandbox.clock.now() - before >= timedelta(hours=2)
    assert (await qbo_http.post("/_sandbox/clock", json={"hours": -1})).status_code == 400
    assert (await qbo_http.post("/_sandbox/clock", json={"fortnights": 1})).status_code == 400


async def test_stats_count_requests_per_realm_and_route(sandbox: Sandbox, qbo_http: httpx.AsyncClient):
    bill = _first(sandbox, "Bill")
    await qbo_http.get(sandbox.v3_path(f"bill/{bill['Id']}"))
    await qbo_http.get(sandbox.v3_path(f"bill/{bill['Id']}"))
    await qbo_http.get(sandbox.v3_path("query"), params={"query": "select * from Vendor maxresults 1"})
    stats = (await qbo_http.get("/_sandbox/stats")).json()
    assert stats["requests"]["by_realm"][sandbox.realm_id] == {"bill/{id}": 2, "query": 1}
    assert stats["requests"]["by_status"] == {"200": 3}
    assert stats["throttled_total"] == 0


# -- webhooks ---------------------------------------------------------------------------------


async def test_change_is_delivered_to_the_registered_receiver_with_a_valid_signature(
    sandbox: Sandbox, qbo_http: httpx.AsyncClient, receiver: Receiver
):
    registered = await qbo_http.post("/_sandbox/webhooks", json={"realm_id": sandbox.realm_id, "url": receiver.url})
    assert registered.status_code == 200

    created = await qbo_http.post(sandbox.v3_path("vendor"), json={"DisplayName": "Webhook Roasting Supply"})
    assert created.status_code == 200
    vendor_id = created.json()["Vendor"]["Id"]
    await _drain(sandbox)

    assert len(receiver.requests) == 1
    headers, body = receiver.requests[0]
    expected = base64.b64encode(hmac.new(sandbox.verifier_token.encode(), body, hashlib.sha256).digest()).decode()
    assert hmac.compare_digest(headers["intuit-signature"], expected)
    assert headers["content-type"] == "application/json; charset=utf-8"
    assert headers["user-agent"] == "intuit_notification_server/0.1"
    assert headers["intuit-notification-schema-version"] == "0.1"
    assert headers["intuit-t-id"]
    assert LEGACY_TIME.match(headers["intuit-created-time"])

    notification = json.loads(body)["eventNotifications"][0]
    assert notification["realmId"] == sandbox.realm_id
    [entity] = notification["dataChangeEvent"]["entities"]
    assert {k: entity[k] for k in ("name", "id", "operation")} == {"name": "Vendor", "id": vendor_id, "operation": "Create"}
    assert LEGACY_TIME.match(entity["lastUpdated"])


async def test_changes_are_batched_and_delivery_never_holds_up_the_api(quick_webhooks: Sandbox):
    sandbox = quick_webhooks
    slow = Receiver(delay=0.5)
    try:
        sandbox.webhooks.register(sandbox.realm_id, slow.url)
        bill = _first(sandbox, "Bill")
        async with sandbox.http_client() as http:
            started = time.perf_counter()
            await http.post(f"/_sandbox/realms/{sandbox.realm_id}/edit/Bill/{bill['Id']}", json={"PrivateNote": "a"})
            await http.delete(f"/_sandbox/realms/{sandbox.realm_id}/Bill/{bill['Id']}")
            assert time.perf_counter() - started < 0.3
        await _drain(sandbox)
    finally:
        slow.close()
    assert len(slow.requests) == 1
    entities = json.loads(slow.requests[0][1])["eventNotifications"][0]["dataChangeEvent"]["entities"]
    assert [(e["name"], e["id"], e["operation"]) for e in entities] == [
        ("Bill", bill["Id"], "Update"),
        ("Bill", bill["Id"], "Delete"),
        ("Account", bill["APAccountRef"]["value"], "Update"),  # A/P no longer owes it
    ]


async def test_failed_delivery_is_retried(quick_webhooks: Sandbox):
    sandbox = quick_webhooks
    flaky = Receiver(statuses=[500])
    try:
        async with sandbox.http_client() as http:
            await http.post("/_sandbox/webhooks", json={"realm_id": sandbox.realm_id, "url": flaky.url})
            await http.post(sandbox.v3_path("vendor"), json={"DisplayName": "Retry Me Ltd"})
        await _drain(sandbox)
    finally:
        flaky.close()
    assert len(flaky.requests) == 2
    assert flaky.requests[0][1] == flaky.requests[1][1]  # the same notification, resent
    stats = sandbox.stats()["webhooks"]
    assert stats["delivered"] == 1 and stats["failed_attempts"] == 1
    assert stats["recent"][-1]["attempts"] == 2
