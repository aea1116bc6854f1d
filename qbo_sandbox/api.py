"""QBO's v3 data API over the sandbox store: the same paths, methods and JSON as QuickBooks Online.

    GET  /v3/company/{realm}/query?query=...        POST /v3/company/{realm}/query  (application/text)
    GET  /v3/company/{realm}/{entity}/{id}          POST /v3/company/{realm}/{entity}[?operation=...]
    GET  /v3/company/{realm}/cdc?entities=..&changedSince=..
    POST /v3/company/{realm}/batch
    GET  /v3/company/{realm}/reports/{ReportName}
    GET  /v3/company/{realm}/companyinfo/{realm}
    GET  /v3/company/{realm}/preferences            POST /v3/company/{realm}/preferences
    GET  /v3/company/{realm}/exchangerate?sourcecurrencycode=EUR[&asofdate=YYYY-MM-DD]
    POST /v3/company/{realm}/invoice/{id}/send?sendTo=...

Writes honour `requestid`: a repeat within the realm gets the original response and changes
nothing. Only successful writes are remembered: a refused write changed nothing, so running it
again is as safe as replaying the refusal, and lets a client fix the cause and retry.
Authorization and throttling happen in front of this app; it answers for any realm it stores.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote_plus
from zoneinfo import ZoneInfo

import simplejson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qbo_sandbox import currency, faults, ledger
from qbo_sandbox.books import Books, parse_changed_since
from qbo_sandbox.faults import QBOFault
from qbo_sandbox.reports import run_report
from qbo_sandbox.store import (
    ENTITIES,
    QueryError,
    Realm,
    Store,
    UnknownEntity,
    UnknownRealm,
    canonical_entity,
    copy_obj,
)

MIN_MINOR_VERSION = 75
REQUEST_ID_LIMIT = 50
BATCH_REQUEST_ID_LIMIT = 36
BATCH_ITEM_LIMIT = 30
CDC_WINDOW = timedelta(days=30)
CDC_MAX_PER_ENTITY = 1000
JSON_TYPE = "application/json;charset=UTF-8"
DEFAULT_TZ = ZoneInfo("America/Los_Angeles")


def minor_version(raw: str | None) -> int:
    """QBO answers every request as minor version 75 or later: missing or older values mean 75."""
    try:
        return max(MIN_MINOR_VERSION, int(raw)) if raw else MIN_MINOR_VERSION
    except ValueError:
        return MIN_MINOR_VERSION


def _dumps(body: dict[str, Any]) -> bytes:
    text: str = simplejson.dumps(body, use_decimal=True, ensure_ascii=False)
    return text.encode("utf-8")


def _respond(payload: bytes, status: int = 200) -> Response:
    return Response(
        payload,
        status_code=status,
        media_type=JSON_TYPE,
        headers={"intuit_tid": str(uuid.uuid4())},
    )


class V3Api:
    """Request handlers; each resolves the realm, runs one operation and renders QBO's JSON."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- plumbing ------------------------------------------------------------------------------

    def _realm(self, request: Request) -> Realm:
        realm_id = request.path_params["realm"]
        try:
            return self.store.realm(realm_id)
        except UnknownRealm:
            raise faults.unknown_realm(realm_id) from None

    def _time(self, request: Request) -> str:
        try:
            realm = self.store.realm(request.path_params.get("realm", ""))
        except UnknownRealm:
            now = self.store.clock.now().astimezone(DEFAULT_TZ)
            return now.isoformat(timespec="milliseconds")
        return realm.format_time(realm.now(), millis=True)

    def _ok(self, request: Request, body: dict[str, Any]) -> Response:
        return _respond(_dumps({**body, "time": self._time(request)}))

    def _fault(self, request: Request, fault: QBOFault) -> Response:
        return _respond(_dumps(fault.to_json(self._time(request))), fault.status)

    async def _json_body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        try:
            body = simplejson.loads(raw.decode("utf-8") or "{}", use_decimal=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise faults.bad_request(f"request body is not JSON ({exc})") from None
        if not isinstance(body, dict):
            raise faults.bad_request("request body must be a JSON object")
        return body

    def _handled(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            minor_version(request.query_params.get("minorversion"))
            try:
                response: Response = await handler(request)
            except QBOFault as fault:
                return self._fault(request, fault)
            return response

        return run

    def _write(
        self,
        request: Request,
        realm: Realm,
        action: Callable[[], dict[str, Any]],
        *,
        limit: int = REQUEST_ID_LIMIT,
    ) -> Response:
        """Run a write once per `requestid`, replaying the original response for repeats."""
        request_id = request.query_params.get("requestid") or None
        if request_id is not None and len(request_id) > limit:
            raise faults.invalid_request_id(len(request_id), limit)
        with realm.lock:
            if request_id is not None:
                remembered = realm.recall_response(request_id)
                if remembered is not None:
                    status, payload = remembered
                    return _respond(payload, status)
            payload = _dumps({**action(), "time": realm.format_time(realm.now(), millis=True)})
            if request_id is not None:
                realm.remember_response(request_id, 200, payload)
            return _respond(payload)

    # -- reads ---------------------------------------------------------------------------------

    async def query(self, request: Request) -> Response:
        realm = self._realm(request)
        if request.method == "POST":
            statement = (await request.body()).decode("utf-8")
        else:
            statement = request.query_params.get("query", "")
        if not statement.strip():
            raise faults.required_param_missing("query", "query")
        return self._ok(request, {"QueryResponse": _run_query(realm, statement)})

    async def read(self, request: Request) -> Response:
        realm = self._realm(request)
        entity = _entity(request.path_params["entity"])
        ident = request.path_params["id"]
        if entity == "CompanyInfo":
            obj = realm.get("CompanyInfo", ident) or next(iter(realm.iter("CompanyInfo")), None)
            obj = copy_obj(obj) if obj is not None else None
        else:
            obj = realm.get(entity, ident)
        if obj is None:
            raise faults.object_not_found(entity, ident, "Id")
        return self._ok(request, {entity: obj})

    async def preferences(self, request: Request) -> Response:
        """GET /preferences: the company's one Preferences object (no Id in the path)."""
        realm = self._realm(request)
        with realm.lock:
            return self._ok(request, {"Preferences": currency.preferences_or_default(realm)})

    async def exchange_rate(self, request: Request) -> Response:
        """GET /exchangerate?sourcecurrencycode=EUR&asofdate=YYYY-MM-DD: the company's rate for a
        currency on a date (today's without asofdate), per Intuit's ExchangeRate reference
        (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/exchangerate)."""
        realm = self._realm(request)
        code = (request.query_params.get("sourcecurrencycode") or "").strip().upper()
        if not code:
            raise faults.required_param_missing("sourcecurrencycode", "exchangerate")
        day_text = request.query_params.get("asofdate")
        if day_text:
            try:
                day = date.fromisoformat(day_text.strip())
            except ValueError:
                raise faults.invalid_value(
                    "asofdate", f"{day_text!r} is not a date (YYYY-MM-DD)"
                ) from None
        else:
            day = realm.now().astimezone(realm.tz).date()
        with realm.lock:
            home = ledger.home_currency(realm)
            if code != home and not ledger.multicurrency_enabled(realm):
                raise currency.multicurrency_off(code, home, "sourcecurrencycode")
            view = currency.exchange_rate_view(realm, code, day)
        if view is None:
            raise faults.object_not_found(
                "ExchangeRate", f"{code} on or before {day.isoformat()}", "sourcecurrencycode"
            )
        return self._ok(request, {"ExchangeRate": view})

    async def cdc(self, request: Request) -> Response:
        realm = self._realm(request)
        names = request.query_params.get("entities", "")
        since_text = request.query_params.get("changedSince", "")
        if not names.strip():
            raise faults.required_param_missing("entities", "cdc")
        if not since_text.strip():
            raise faults.required_param_missing("changedSince", "cdc")
        entities = [_entity(name.strip()) for name in names.split(",") if name.strip()]
        since = parse_changed_since(unquote_plus(since_text), realm)
        if since < realm.now() - CDC_WINDOW:
            raise faults.cdc_too_old(since_text)
        changes = realm.changed_since(entities, since)
        responses: list[dict[str, Any]] = []
        for entity in entities:
            objs = changes.get(entity, [])[:CDC_MAX_PER_ENTITY]
            if objs:
                responses.append(
                    {
                        entity: objs,
                        "startPosition": 1,
                        "maxResults": len(objs),
                        "totalCount": len(objs),
                    }
                )
        return self._ok(request, {"CDCResponse": [{"QueryResponse": responses or [{}]}]})

    async def report(self, request: Request) -> Response:
        realm = self._realm(request)
        params = dict(request.query_params)
        body = run_report(realm, request.path_params["name"], params)
        # Reports carry their time in Header.Time, not at the top level (as QBO's do).
        return _respond(_dumps(body))

    # -- writes ----------------------------------------------------------------------------------

    async def write(self, request: Request) -> Response:
        realm = self._realm(request)
        entity = _entity(request.path_params["entity"])
        body = await self._json_body(request)
        operation = (request.query_params.get("operation") or "").lower()
        include = (request.query_params.get("include") or "").lower()
        books = Books(realm)

        def action() -> dict[str, Any]:
            return {entity: _apply(books, entity, body, operation, include)}

        return self._write(request, realm, action)

    async def send_invoice(self, request: Request) -> Response:
        realm = self._realm(request)
        ident = request.path_params["id"]
        send_to = request.query_params.get("sendTo")
        books = Books(realm)
        return self._write(request, realm, lambda: {"Invoice": books.send_invoice(ident, send_to)})

    async def batch(self, request: Request) -> Response:
        realm = self._realm(request)
        body = await self._json_body(request)
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise faults.required_param_missing("BatchItemRequest", "batch")
        if len(items) > BATCH_ITEM_LIMIT:
            raise faults.batch_too_large(len(items), BATCH_ITEM_LIMIT)
        books = Books(realm)

        def action() -> dict[str, Any]:
            return {"BatchItemResponse": [_batch_item(books, realm, item) for item in items]}

        return self._write(request, realm, action, limit=BATCH_REQUEST_ID_LIMIT)

    async def unsupported(self, request: Request) -> Response:
        self._realm(request)
        raise faults.unsupported_operation(f"{request.method} {request.url.path}")


def _entity(name: str) -> str:
    try:
        return canonical_entity(name)
    except UnknownEntity:
        raise faults.unsupported_operation(
            f"on entity {name!r}: the sandbox serves {', '.join(ENTITIES)}"
        ) from None


def _run_query(realm: Realm, statement: str) -> dict[str, Any]:
    try:
        return realm.query(statement)
    except QueryError as exc:
        raise faults.query_parse_error(exc.message, exc.detail, exc.code) from None


def _apply(
    books: Books, entity: str, body: dict[str, Any], operation: str, include: str
) -> dict[str, Any]:
    """One entity write, chosen as QBO chooses it from the URL and the body."""
    if operation == "delete":
        return books.delete(entity, body)
    if operation == "void" or (operation == "update" and include == "void"):
        return books.void(entity, body)
    if operation not in ("", "create", "update"):
        raise faults.unsupported_operation(f"{operation} on {entity}")
    if operation == "create" or body.get("Id") in (None, "", 0, "0"):
        if entity == "CompanyInfo":
            raise faults.unsupported_operation("Create for CompanyInfo")
        return books.create(entity, body)
    return books.update(entity, body, sparse=body.get("sparse") is True)


def _batch_item(books: Books, realm: Realm, item: Any) -> dict[str, Any]:
    """One batch item's response; a failing item carries its own Fault, the others go on."""
    if not isinstance(item, dict):
        return {"Fault": faults.bad_request("a batch item must be a JSON object").fault_json()}
    bid = item.get("bId")
    out: dict[str, Any] = {"bId": bid}
    try:
        if not bid:
            raise faults.required_param_missing("bId", "BatchItemRequest")
        if "Query" in item:
            out["QueryResponse"] = _run_query(realm, str(item["Query"]))
            return out
        keys = [k for k in item if k not in ("bId", "operation", "optionsData")]
        if len(keys) != 1:
            raise faults.bad_request(
                "a batch item names exactly one entity (or Query) besides bId and operation"
            )
        entity = _entity(keys[0])
        body = item[keys[0]]
        if not isinstance(body, dict):
            raise faults.bad_request(f"{keys[0]} must be a JSON object")
        operation = str(item.get("operation") or "").lower()
        if operation not in ("create", "update", "delete"):
            raise faults.required_param_missing("operation", "BatchItemRequest")
        include = "void" if str(item.get("optionsData", "")).lower() == "void" else ""
        out[entity] = _apply(books, entity, body, operation, include)
    except QBOFault as fault:
        out["Fault"] = fault.fault_json()
    return out


def build_v3_app(store: Store) -> Starlette:
    """The v3 data API as an ASGI app (routes at root: /v3/company/{realm}/...)."""
    api = V3Api(store)
    h = api._handled
    base = "/v3/company/{realm}"
    routes = [
        Route(f"{base}/query", h(api.query), methods=["GET", "POST"]),
        Route(f"{base}/cdc", h(api.cdc), methods=["GET"]),
        Route(f"{base}/batch", h(api.batch), methods=["POST"]),
        Route(f"{base}/reports/{{name}}", h(api.report), methods=["GET"]),
        Route(f"{base}/invoice/{{id}}/send", h(api.send_invoice), methods=["POST"]),
        Route(f"{base}/preferences", h(api.preferences), methods=["GET"]),
        Route(f"{base}/exchangerate", h(api.exchange_rate), methods=["GET"]),
        Route(f"{base}/{{entity}}/{{id}}", h(api.read), methods=["GET"]),
        Route(f"{base}/{{entity}}", h(api.write), methods=["POST"]),
        Route(
            f"{base}/{{rest:path}}", h(api.unsupported), methods=["GET", "POST", "PUT", "DELETE"]
        ),
    ]
    return Starlette(routes=routes)
