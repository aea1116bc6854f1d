"""QuickBooks webhooks in: Intuit's signature checked, both payload formats, answered before the work.

The sandbox's own webhook sender delivers to the route served by uvicorn on a loopback port, signed
with the sandbox app's verifier token, exactly as QuickBooks would in production.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import simplejson
import uvicorn
from starlette.applications import Starlette

from bot.qbo_webhooks import (
    WEBHOOKS_PATH,
    parse_notification,
    qbo_webhook_route,
    verify_intuit_signature,
)
from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import SandboxConfig

VERIFIER = "0b1c5ee4-5b8e-4d3a-9a3b-6bb2f3c1d2e7"

Change = tuple[str, list[dict[str, Any]]]


def _sign(body: bytes, token: str = VERIFIER) -> str:
    return base64.b64encode(hmac.new(token.encode(), body, hashlib.sha256).digest()).decode()


def _legacy(realm_id: str, *entities: dict[str, Any]) -> bytes:
    payload = {
        "eventNotifications": [
            {"realmId": realm_id, "dataChangeEvent": {"entities": list(entities)}}
        ]
    }
    return simplejson.dumps(payload).encode()


BILL_UPDATED = {"name": "Bill", "id": "42", "operation": "Update", "lastUpdated": "2026-03-02T09:15:00-0800"}  # fmt: skip


class Recorder:
    """An `on_changes` that remembers its calls and lets a test wait for them."""

    def __init__(self) -> None:
        self.calls: list[Change] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, realm_id: str, entities: list[dict[str, Any]]) -> None:
        async with self._arrived:
            self.calls.append((realm_id, entities))
            self._arrived.notify_all()

    async def wait_for(self, count: int) -> list[Change]:
        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(self.calls) >= count)
        return self.calls


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def webhooks(recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    """httpx straight into the route (its background work runs on the test's loop)."""
    app = Starlette(routes=[qbo_webhook_route(VERIFIER, recorder)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://oodaloo.test") as client:
        yield client


async def _post(client: httpx.AsyncClient, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["intuit-signature"] = signature
    return await client.post(WEBHOOKS_PATH, content=body, headers=headers)


# -- the signature ------------------------------------------------------------------------------


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = _legacy("9130355377388466", BILL_UPDATED)
    assert verify_intuit_signature(VERIFIER, body, _sign(body))
    assert not verify_intuit_signature(VERIFIER, body + b" ", _sign(body))  # body changed
    assert not verify_intuit_signature(VERIFIER, body, _sign(body, "another-verifier-token"))
    assert not verify_intuit_signature(VERIFIER, body, None)
    assert not verify_intuit_signature(VERIFIER, body, "")
    assert not verify_intuit_signature(VERIFIER, body, "not base64 at all!")
    assert not verify_intuit_signature(
        "", body, _sign(body, "")
    )  # no token configured: nothing passes


def test_route_refuses_to_start_without_a_verifier_token(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="QBO_WEBHOOK_VERIFIER_TOKEN"):
        qbo_webhook_route("", recorder)


# -- direct requests ------------------------------------------------------------------------------


async def test_signed_legacy_notification_reaches_on_changes(
    webhooks: httpx.AsyncClient, recorder: Recorder
) -> None:
    body = _legacy("9130355377388466", BILL_UPDATED)
    response = await _post(webhooks, body, _sign(body))
    assert response.status_code == 200
    assert await recorder.wait_for(1) == [("9130355377388466", [BILL_UPDATED])]


async def test_forged_or_missing_signature_is_refused_and_nothing_runs(
    webhooks: httpx.AsyncClient, recorder: Recorder
) -> None:
    forged = _legacy("666", {"name": "Bill", "id": "1", "operation": "Delete"})
    missing = await _post(webhooks, forged, None)
    wrong_key = await _post(webhooks, forged, _sign(forged, "guessed-token"))
    reused = await _post(webhooks, forged, _sign(_legacy("9130355377388466", BILL_UPDATED)))
    for response in (missing, wrong_key, reused):
        assert response.status_code == 401
        assert "intuit-signature" in response.json()["error"]

    genuine = _legacy("9130355377388466", BILL_UPDATED)
    assert (await _post(webhooks, genuine, _sign(genuine))).status_code == 200
    # Work is started in request order, so a forged request's work would have been recorded first.
    assert await recorder.wait_for(1) == [("9130355377388466", [BILL_UPDATED])]


async def test_malformed_bodies_get_a_clear_400(
    webhooks: httpx.AsyncClient, recorder: Recorder
) -> None:
    cases = {
        b'{"eventNotifications": [': "not valid JSON",
        b'{"hello": "world"}': "eventNotifications is missing",
        b'{"eventNotifications": [{"realmId": "1"}]}': "dataChangeEvent.entities",
        b'[{"type": "qbo.bill.updated.v1", "intuitentityid": "42"}]': "intuitaccountid",
        b'[{"type": "bill changed", "intuitaccountid": "1", "intuitentityid": "42"}]': "qbo.bill.updated.v1",
        b'"just a string"': "JSON object with eventNotifications",
    }
    for body, message in cases.items():
        response = await _post(webhooks, body, _sign(body))
        assert response.status_code == 400, body
        assert message in response.json()["error"], body
    assert recorder.calls == []


async def test_cloud_events_become_entities_per_company(
    webhooks: httpx.AsyncClient, recorder: Recorder
) -> None:
    events = [
        {
            "specversion": "1.0",
            "id": "88cd52aa-33b6-4351-9aa4-47572edbd068",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.bill.updated.v1",
            "datacontenttype": "application/json",
            "time": "2026-03-02T17:15:00.179851517Z",
            "intuitentityid": "42",
            "intuitaccountid": "310687",
            "data": {},
        },
        {
            "specversion": "1.0",
            "id": "1f0e4c1e-8c5d-4c8e-9d55-2b7d1c0b7a10",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.billpayment.created.v1",
            "time": "2026-03-02T17:15:01Z",
            "intuitentityid": "77",
            "intuitaccountid": "4620816365",
            "data": {},
        },
        {
            "specversion": "1.0",
            "id": "5a3d2f80-4a4e-4b0e-8d0a-0d6b8f1f9e31",
            "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
            "type": "qbo.invoice.deleted.v1",
            "time": "2026-03-02T17:15:02Z",
            "intuitentityid": "130",
            "intuitaccountid": "310687",
            "data": {},
        },
    ]
    body = simplejson.dumps(events).encode()
    response = await _post(webhooks, body, _sign(body))
    assert response.status_code == 200
    calls = sorted(await recorder.wait_for(2))
    assert calls == [
        (
            "310687",
            [
                {
                    "name": "Bill",
                    "id": "42",
                    "operation": "Update",
                    "lastUpdated": "2026-03-02T17:15:00.179851517Z",
                    "eventId": "88cd52aa-33b6-4351-9aa4-47572edbd068",
                },
                {
                    "name": "Invoice",
                    "id": "130",
                    "operation": "Delete",
                    "lastUpdated": "2026-03-02T17:15:02Z",
                    "eventId": "5a3d2f80-4a4e-4b0e-8d0a-0d6b8f1f9e31",
                },
            ],
        ),
        (
            "4620816365",
            [
                {
                    "name": "BillPayment",
                    "id": "77",
                    "operation": "Create",
                    "lastUpdated": "2026-03-02T17:15:01Z",
                    "eventId": "1f0e4c1e-8c5d-4c8e-9d55-2b7d1c0b7a10",
                }
            ],
        ),
    ]


def test_one_call_per_company_of_a_legacy_notification() -> None:
    payload = {
        "eventNotifications": [
            {"realmId": "1185883450", "dataChangeEvent": {"entities": [BILL_UPDATED]}},
            {"realmId": 310687, "dataChangeEvent": {"entities": []}},
        ]
    }
    assert parse_notification(payload) == [("1185883450", [BILL_UPDATED]), ("310687", [])]


async def test_answers_before_the_work_is_done(recorder: Recorder) -> None:
    release, done = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def slow(realm_id: str, entities: list[dict[str, Any]]) -> None:
        await release.wait()
        finished.append(realm_id)
        done.set()

    app = Starlette(routes=[qbo_webhook_route(VERIFIER, slow)])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://oodaloo.test"
    ) as client:
        body = _legacy("9130355377388466", BILL_UPDATED)
        response = await _post(client, body, _sign(body))
        assert response.status_code == 200
        assert response.json() == {"received": 1}
        assert finished == []  # answered while the work is still waiting
        release.set()
        async with asyncio.timeout(5):
            await done.wait()
    assert finished == ["9130355377388466"]


class LoggedErrors(logging.Handler):
    """Collects the error records of one logger and wakes the test when one arrives."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.arrived.set()


async def test_a_failing_handler_is_logged_not_lost() -> None:
    async def broken(realm_id: str, entities: list[dict[str, Any]]) -> None:
        raise RuntimeError("the mirror database is down")

    errors = LoggedErrors()
    logging.getLogger("bot.qbo_webhooks").addHandler(errors)
    app = Starlette(routes=[qbo_webhook_route(VERIFIER, broken)])
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://oodaloo.test"
        ) as client:
            body = _legacy("9130355377388466", BILL_UPDATED)
            assert (await _post(client, body, _sign(body))).status_code == 200
            async with asyncio.timeout(5):
                await errors.arrived.wait()
    finally:
        logging.getLogger("bot.qbo_webhooks").removeHandler(errors)
    [record] = errors.records
    assert "company 9130355377388466" in record.getMessage()
    assert record.exc_info is not None and "mirror database is down" in str(record.exc_info[1])


# -- the sandbox's webhook sender, over real HTTP ------------------------------------------------


class ServedRoute:
    """The webhook route served by uvicorn on a loopback port, in its own thread and loop."""

    def __init__(self, verifier_token: str) -> None:
        self.changes: queue.Queue[Change] = queue.Queue()

        async def on_changes(realm_id: str, entities: list[dict[str, Any]]) -> None:
            self.changes.put((realm_id, entities))

        app = Starlette(routes=[qbo_webhook_route(verifier_token, on_changes)])
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}{WEBHOOKS_PATH}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off", http="h11")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> ServedRoute:
        self._thread.start()
        for _ in range(1000):
            if self._server.started or not self._thread.is_alive():
                break
            time.sleep(0.01)
        assert self._server.started, "uvicorn did not start serving the webhook route"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()

    async def next_change(self) -> Change:
        return await asyncio.to_thread(self.changes.get, timeout=5)


@pytest.fixture
async def quick_sandbox() -> AsyncIterator[Sandbox]:
    sandbox = create_app(
        SandboxConfig(scale=5, webhook_batch_seconds=0.02, webhook_retry_delays=())
    )
    yield sandbox
    await sandbox.aclose()


@pytest.fixture
def served(quick_sandbox: Sandbox) -> Iterator[ServedRoute]:
    with ServedRoute(quick_sandbox.verifier_token) as route:
        yield route


@pytest.mark.http
async def test_sandbox_notifications_arrive_verified_over_http(
    quick_sandbox: Sandbox, served: ServedRoute
) -> None:
    sandbox = quick_sandbox
    async with sandbox.http_client() as qbo:
        registered = await qbo.post(
            "/_sandbox/webhooks", json={"realm_id": sandbox.realm_id, "url": served.url}
        )
        assert registered.status_code == 200
        created = await qbo.post(sandbox.v3_path("vendor"), json={"DisplayName": "Larkspur & Pine"})
        assert created.status_code == 200
    vendor_id = created.json()["Vendor"]["Id"]

    realm_id, entities = await served.next_change()
    assert realm_id == sandbox.realm_id
    [entity] = entities
    assert (entity["name"], entity["id"], entity["operation"]) == ("Vendor", vendor_id, "Create")
    assert entity["lastUpdated"]
    async with asyncio.timeout(5):
        await sandbox.webhooks.drain()
    assert sandbox.stats()["webhooks"]["delivered"] == 1  # the route said 200


@pytest.mark.http
async def test_a_sender_with_another_verifier_token_is_refused_over_http(
    served: ServedRoute,
) -> None:
    impostor = create_app(
        SandboxConfig(scale=5, verifier_token="not-the-real-one", webhook_batch_seconds=0.02,
                      webhook_retry_delays=())
    )  # fmt: skip
    try:
        impostor.webhooks.register(impostor.realm_id, served.url)
        async with impostor.http_client() as qbo:
            await qbo.post(impostor.v3_path("vendor"), json={"DisplayName": "Forged Vendor"})
        async with asyncio.timeout(5):
            await impostor.webhooks.drain()
    finally:
        await impostor.aclose()
    assert impostor.stats()["webhooks"]["dropped"] == 1
    assert impostor.stats()["webhooks"]["recent"][-1]["error"] == "HTTP 401"
    assert served.changes.empty()


# -- one bad event does not cost the others -------------------------------------------------------


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.http
async def test_a_bad_event_is_logged_and_skipped_and_the_good_ones_are_handled_over_http() -> None:
    good = {"specversion": "1.0", "id": "e-1", "type": "qbo.bill.updated.v1", "time": "2026-03-02T17:15:00Z",
            "intuitentityid": "42", "intuitaccountid": "310687", "data": {}}
    events = [
        good,
        {**good, "id": "e-2", "intuitaccountid": None},  # no company
        {**good, "id": "e-3", "type": "bill changed"},  # not a QuickBooks type
        "not an event",
        {**good, "id": "e-5", "intuitentityid": "77", "type": "qbo.invoice.deleted.v1"},
    ]
    legacy = {"eventNotifications": [
        {"realmId": "9130355377388466", "dataChangeEvent": {"entities": [BILL_UPDATED]}},
        {"dataChangeEvent": {"entities": [BILL_UPDATED]}},  # no realmId
    ]}  # fmt: skip
    warnings = _Warnings()
    logging.getLogger("bot.qbo_webhooks").addHandler(warnings)
    try:
        with ServedRoute(VERIFIER) as served:
            async with httpx.AsyncClient() as client:
                body = simplejson.dumps(events).encode()
                response = await client.post(served.url, content=body, headers={"intuit-signature": _sign(body)})
                assert response.status_code == 200, response.text
                assert response.json()["received"] == 2
                assert len(response.json()["skipped"]) == 3
                realm_id, entities = await served.next_change()
                assert realm_id == "310687"
                assert [(e["id"], e["operation"], e["eventId"]) for e in entities] == [
                    ("42", "Update", "e-1"), ("77", "Delete", "e-5")]

                body = simplejson.dumps(legacy).encode()
                response = await client.post(served.url, content=body, headers={"intuit-signature": _sign(body)})
                assert response.status_code == 200, response.text
                assert await served.next_change() == ("9130355377388466", [BILL_UPDATED])

                # Nothing readable at all, or not signed: still refused.
                body = simplejson.dumps(events[1:4]).encode()
                refused = await client.post(served.url, content=body, headers={"intuit-signature": _sign(body)})
                assert refused.status_code == 400
                body = simplejson.dumps(events).encode()
                forged = await client.post(served.url, content=body, headers={"intuit-signature": _sign(body, "x")})
                assert forged.status_code == 401
            assert served.changes.empty()
    finally:
        logging.getLogger("bot.qbo_webhooks").removeHandler(warnings)
    skipped = [m for m in warnings.messages if m.startswith("skipped part of a QuickBooks webhook")]
    assert any("event [1] has no intuitaccountid" in m for m in skipped), warnings.messages
    assert any("event [2] has type 'bill changed'" in m for m in skipped)
    assert any("event [3] is not an object" in m for m in skipped)
    assert any("eventNotifications[1].realmId is missing" in m for m in skipped)


async def test_a_burst_of_webhooks_for_one_company_is_handled_in_two_runs() -> None:
    """While a company's changes are being handled, later deliveries wait and go over together:
    fifty webhooks cost two mirror syncs (and two shares of the QuickBooks budget), not fifty."""
    started, release, three_runs = asyncio.Event(), asyncio.Event(), asyncio.Event()
    runs: list[Change] = []

    async def slow_sync(realm_id: str, entities: list[dict[str, Any]]) -> None:
        runs.append((realm_id, entities))
        started.set()
        if len(runs) == 3:
            three_runs.set()
        await release.wait()

    app = Starlette(routes=[qbo_webhook_route(VERIFIER, slow_sync)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://oodaloo.test") as client:
        bills = [{**BILL_UPDATED, "id": str(n)} for n in range(50)]
        first = _legacy("9130355377388466", bills[0])
        assert (await _post(client, first, _sign(first))).status_code == 200
        await asyncio.wait_for(started.wait(), 5)
        for bill in bills[1:]:
            body = _legacy("9130355377388466", bill)
            assert (await _post(client, body, _sign(body))).status_code == 200
        other = _legacy("4620816365026557", BILL_UPDATED)  # another company is not held up
        assert (await _post(client, other, _sign(other))).status_code == 200
        release.set()
        await asyncio.wait_for(three_runs.wait(), 5)
        await asyncio.sleep(0.05)  # no fourth run follows
    assert [realm for realm, _ in runs] == ["9130355377388466", "4620816365026557", "9130355377388466"]
    assert runs[0][1] == bills[:1] and runs[2][1] == bills[1:]
