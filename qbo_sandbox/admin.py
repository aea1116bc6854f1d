"""The sandbox's control API under `/_sandbox/`: what a test, benchmark or demo does "from outside".

Not part of QBO, so no bearer token is needed. JSON in and out (amounts stay Decimal):

- `GET  /_sandbox/realms`                                 companies, with their seed and size
- `POST /_sandbox/realms`                                 create and seed a company: {"seed"?, "scale"?,
                                                          "full_books"?, "euro_supplier"?, "country"?}
                                                          → its tokens
- `POST /_sandbox/realms/{realm}/reset`                   reseed a company as it was created
- `POST /_sandbox/realms/{realm}/tokens`                  connect the app to a company again: fresh tokens
- `POST /_sandbox/realms/{realm}/multicurrency`           turn multicurrency on: {"currencies": ["EUR"],
                                                          "home_currency"?, "rates"?: [...]}
- `PUT  /_sandbox/realms/{realm}/exchangerates`           set rates: [{"SourceCurrencyCode": "EUR",
                                                          "AsOfDate": "2026-01-02", "Rate": "1.08"}]
- `POST /_sandbox/realms/{realm}/edit/{entity}/{id}`      a bookkeeper's edit in QuickBooks: merge fields
- `POST /_sandbox/realms/{realm}/{entity}`                an object created in QuickBooks by someone else
- `DELETE /_sandbox/realms/{realm}/{entity}/{id}`         an object deleted in QuickBooks by someone else
- `GET|PUT /_sandbox/faults`                              the fault plan (see chaos.FaultPlan.to_dict)
- `GET|PUT /_sandbox/limits`                              rate limits (PUT merges the given fields)
- `GET|DELETE /_sandbox/stats`                            requests, throttles, faults injected, webhooks (DELETE zeroes)
- `GET|POST|DELETE /_sandbox/webhooks`                    {"realm_id", "url"}: where notifications go
- `GET|POST /_sandbox/clock`                              read, or move forward: {"seconds"|"minutes"|"hours"|"days": n}

Outside edits go through the store's raw writes, so they bump SyncToken, show in CDC and fire
webhooks exactly like a change made in QuickBooks' own screens; a transaction edited, created or
deleted that way moves its accounts' balances as QuickBooks would (no other validation).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import simplejson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qbo_sandbox.books import Books
from qbo_sandbox.chaos import FaultPlan
from qbo_sandbox.config import ManualClock
from qbo_sandbox.currency import home_currency_of
from qbo_sandbox.faults import QBOFault
from qbo_sandbox.store import UnknownEntity, UnknownObject, UnknownRealm, canonical_entity

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox

# Fields the store owns: an outside edit cannot set them.
_BOOKKEEPING_FIELDS = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse"})


class AdminError(Exception):
    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail


def _json(data: Any, status: int = 200) -> Response:
    return Response(simplejson.dumps(data, use_decimal=True), status_code=status, media_type="application/json")


async def _body(request: Request, *, required: bool = True) -> Any:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise AdminError(400, "invalid_request", "this endpoint needs a JSON body")
        return {}
    try:
        return simplejson.loads(raw, use_decimal=True)
    except simplejson.JSONDecodeError as exc:
        raise AdminError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _object_body(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise AdminError(400, "invalid_request", "the body must be a JSON object")
    return data


def merge_fields(original: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Nested objects merge key by key (so {"VendorRef": {"name": ..}} keeps the value); lists and scalars replace."""
    merged = dict(original)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_fields(merged[key], value)
        else:
            merged[key] = value
    return merged


def _whole_number(value: Any, name: str, *, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | Decimal) or value != int(value) or value < minimum:
        raise AdminError(400, "invalid_request", f"{name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def admin_routes(sandbox: Sandbox) -> list[Route]:
    """The `/_sandbox/` routes (paths relative to that mount), bound to one sandbox."""

    def realm_of(request: Request) -> Any:
        try:
            return sandbox.store.realm(request.path_params["realm"])
        except UnknownRealm as exc:
            raise AdminError(404, "unknown_realm", str(exc)) from None

    def entity_of(request: Request) -> str:
        try:
            return canonical_entity(request.path_params["entity"])
        except UnknownEntity as exc:
            raise AdminError(400, "unknown_entity", str(exc)) from None

    async def list_realms(request: Request) -> Response:
        return _json({"realms": sandbox.describe_realms()})

    async def create_realm(request: Request) -> Response:
        body = _object_body(await _body(request, required=False))
        seed = _whole_number(body.get("seed"), "seed", minimum=0)
        scale = _whole_number(body.get("scale"), "scale", minimum=1)
        flags = {name: body.get(name, False) for name in ("full_books", "euro_supplier")}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise AdminError(400, "invalid_request", f"{name} is true or false, got {value!r}")
        country = body.get("country", "US")
        if not (isinstance(country, str) and len(country) == 2 and country.isalpha()):
            raise AdminError(
                400, "invalid_request",
                f"country is an ISO 3166 code of two letters such as \"GB\", got {country!r}",
            )
        try:
            home_currency_of(country)
        except ValueError as exc:
            raise AdminError(400, "invalid_request", str(exc)) from None
        if scale is not None and country.upper() != "US":
            raise AdminError(400, "invalid_request", "a scaled company is a US one: drop scale or country")
        try:
            tokens = sandbox.add_realm(seed=seed, scale=scale, country=country.upper(), **flags)
        except ValueError as exc:
            raise AdminError(409, "realm_exists", str(exc)) from None
        return _json({"realm_id": tokens.realm_id, **tokens.response_body()}, status=201)

    async def reset_realm(request: Request) -> Response:
        realm = realm_of(request)
        return _json(sandbox.reset_realm(realm.realm_id))

    async def issue_tokens(request: Request) -> Response:
        realm = realm_of(request)
        tokens = sandbox.tokens.issue(realm.realm_id)
        return _json({"realm_id": realm.realm_id, **tokens.response_body()}, status=201)

    async def edit_object(request: Request) -> Response:
        realm = realm_of(request)
        entity = entity_of(request)
        changes = _object_body(await _body(request))
        changes = {k: v for k, v in changes.items() if k not in _BOOKKEEPING_FIELDS}
        object_id = request.path_params["id"]
        with realm.lock:  # read-merge-write as one step against concurrent API writes
            current = realm.get(entity, object_id)
            if current is None:
                raise AdminError(404, "unknown_object", f"{entity} {object_id} does not exist in realm {realm.realm_id}")
            merged = merge_fields(current, changes)
            books = Books(realm)
            try:
                books.postings(entity, merged)  # refused before anything is stored
            except QBOFault as fault:
                raise AdminError(400, "refused", str(fault)) from None
            updated = realm.put(entity, merged)
            books.post_outside_change(entity, current, updated)
        return _json({entity: updated})

    async def create_object(request: Request) -> Response:
        realm = realm_of(request)
        entity = entity_of(request)
        body = _object_body(await _body(request))
        with realm.lock:
            books = Books(realm)
            try:
                books.postings(entity, {**body, "Id": str(body.get("Id") or "pending")})
            except QBOFault as fault:
                raise AdminError(400, "refused", str(fault)) from None
            try:
                created = realm.insert(entity, body)
            except ValueError as exc:
                raise AdminError(409, "object_exists", str(exc)) from None
            books.post_outside_change(entity, None, created)
        return _json({entity: created}, status=201)

    async def delete_object(request: Request) -> Response:
        realm = realm_of(request)
        entity = entity_of(request)
        with realm.lock:
            try:
                removed = realm.remove(entity, request.path_params["id"])
            except UnknownObject as exc:
                raise AdminError(404, "unknown_object", str(exc)) from None
            Books(realm).post_outside_change(entity, removed, None)
        return _json({entity: {"status": "Deleted", "domain": "QBO", "Id": removed["Id"]}})

    def _rates(realm: Any, rows: Any) -> list[dict[str, Any]]:
        if not isinstance(rows, list):
            raise AdminError(400, "invalid_request", 'send a list of rates, e.g. [{"SourceCurrencyCode": "EUR", "AsOfDate": "2026-01-02", "Rate": "1.08"}]')
        books = Books(realm)
        saved = []
        for row in rows:
            if not isinstance(row, dict):
                raise AdminError(400, "invalid_request", f"a rate is a JSON object, got {row!r}")
            saved.append(books.create("ExchangeRate", row))
        return saved

    async def multicurrency(request: Request) -> Response:
        realm = realm_of(request)
        body = _object_body(await _body(request, required=False))
        codes = body.get("currencies") or []
        home = body.get("home_currency")
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise AdminError(400, "invalid_request", 'currencies is a list of ISO codes, e.g. ["EUR", "GBP"]')
        if home is not None and not isinstance(home, str):
            raise AdminError(400, "invalid_request", f"home_currency is an ISO code, got {home!r}")
        try:
            prefs = Books(realm).enable_multicurrency(codes, home)
            rates = _rates(realm, body.get("rates") or [])
        except QBOFault as fault:
            raise AdminError(400, "refused", str(fault)) from None
        currencies = [c for c in realm.iter("CompanyCurrency")]
        return _json({"Preferences": prefs, "CompanyCurrency": currencies, "ExchangeRate": rates})

    async def exchange_rates(request: Request) -> Response:
        realm = realm_of(request)
        rows = await _body(request)
        try:
            saved = _rates(realm, rows)
        except QBOFault as fault:
            raise AdminError(400, "refused", str(fault)) from None
        return _json({"ExchangeRate": saved})

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            try:
                sandbox.chaos.plan = FaultPlan.from_dict(await _body(request))
            except ValueError as exc:
                raise AdminError(400, "invalid_fault_plan", str(exc)) from None
        return _json({**sandbox.chaos.plan.to_dict(), "effective_seed": sandbox.chaos.seed})

    async def limits(request: Request) -> Response:
        if request.method == "PUT":
            try:
                sandbox.limits.configure(_object_body(await _body(request)))
            except ValueError as exc:
                raise AdminError(400, "invalid_limits", str(exc)) from None
        return _json(sandbox.limits.config.to_dict())

    async def stats(request: Request) -> Response:
        if request.method == "DELETE":
            sandbox.reset_stats()
        return _json(sandbox.stats())

    async def webhooks(request: Request) -> Response:
        if request.method in ("POST", "DELETE"):
            body = _object_body(await _body(request))
            realm_id = body.get("realm_id") or body.get("realmId")
            if not isinstance(realm_id, str) or realm_id not in sandbox.store.realm_ids():
                raise AdminError(404, "unknown_realm", f"realm_id must name a sandbox company, got {realm_id!r}")
            if request.method == "DELETE":
                sandbox.webhooks.unregister(realm_id)
            else:
                url = body.get("url")
                try:
                    sandbox.webhooks.register(realm_id, url if isinstance(url, str) else "")
                except ValueError as exc:
                    raise AdminError(400, "invalid_url", str(exc)) from None
        return _json({"webhooks": sandbox.webhooks.registrations(), "verifier_token_set": True})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            if not isinstance(sandbox.clock, ManualClock):
                raise AdminError(409, "clock_not_manual", "this sandbox runs on a clock that cannot be moved")
            body = _object_body(await _body(request))
            units = {"seconds", "minutes", "hours", "days"}
            unknown = sorted(set(body) - units)
            if unknown or not body:
                raise AdminError(400, "invalid_request", 'send how far to move, e.g. {"hours": 2} or {"days": 31}')
            amounts: dict[str, float] = {}
            for unit, value in body.items():
                if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
                    raise AdminError(400, "invalid_request", f"{unit} must be a non-negative number, got {value!r}")
                amounts[unit] = float(value)  # a duration, not money
            sandbox.clock.advance(timedelta(**amounts))
        return _json({"now": sandbox.clock.now().isoformat(), "manual": isinstance(sandbox.clock, ManualClock)})

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except AdminError as exc:
                return _json({"error": exc.error, "detail": exc.detail}, status=exc.status)
            return response

        return endpoint

    return [
        Route("/realms", guarded(list_realms), methods=["GET"]),
        Route("/realms", guarded(create_realm), methods=["POST"]),
        Route("/realms/{realm}/reset", guarded(reset_realm), methods=["POST"]),
        Route("/realms/{realm}/tokens", guarded(issue_tokens), methods=["POST"]),
        Route("/realms/{realm}/multicurrency", guarded(multicurrency), methods=["POST"]),
        Route("/realms/{realm}/exchangerates", guarded(exchange_rates), methods=["PUT", "POST"]),
        Route("/realms/{realm}/edit/{entity}/{id}", guarded(edit_object), methods=["POST"]),
        Route("/realms/{realm}/{entity}", guarded(create_object), methods=["POST"]),
        Route("/realms/{realm}/{entity}/{id}", guarded(delete_object), methods=["DELETE"]),
        Route("/faults", guarded(faults), methods=["GET", "PUT"]),
        Route("/limits", guarded(limits), methods=["GET", "PUT"]),
        Route("/stats", guarded(stats), methods=["GET", "DELETE"]),
        Route("/webhooks", guarded(webhooks), methods=["GET", "POST", "DELETE"]),
        Route("/clock", guarded(clock), methods=["GET", "POST"]),
    ]
