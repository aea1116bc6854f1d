"""QBORawClient: Oodaloo's raw HTTP client for the QuickBooks Online Accounting API v3.

Each method makes the QuickBooks calls it names (``query`` one per page of 1,000; the digest
helpers one per report or query they gather), with no business logic and no orchestration:
retries, rate limiting, deduplication and caching live one layer up, in SmartSyncService, which
decides from the ``QBOError`` raised (``outcome``, ``transient``, ``retry_after``,
``retryable_safely``). The one exception is authentication: a 401 leads to one token
refresh and one retry of that call, since the request was certainly not applied.

Everything returned is QuickBooks' own JSON as dicts, with every amount a ``decimal.Decimal``. (The
architecture record's sketch passed amounts as float; a float cannot hold most cent values exactly,
so this client parses and writes amounts as Decimal and refuses floats in request bodies.)

The same client talks to the real QuickBooks and to the local sandbox: only ``base_url`` differs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import simplejson

from sync.qbo.auth import UTC_CLOCK, TokenProvider, WallClock
from sync.qbo.errors import (
    Outcome,
    QBOAuthError,
    QBOConnectionError,
    QBOError,
    QBOResponseError,
)
from sync.qbo.faults import error_from_batch_item, error_from_response, intuit_tid_of
from sync.qbo.json import dumps, loads

logger = logging.getLogger(__name__)

PRODUCTION_BASE_URL = "https://quickbooks.api.intuit.com"
SANDBOX_BASE_URL = "https://sandbox-quickbooks.api.intuit.com"
QUERY_PAGE_SIZE = 1000  # QuickBooks' MAXRESULTS ceiling
MAX_REQUEST_ID = 50  # QuickBooks' requestid limit for every operation but batch
MAX_BATCH_REQUEST_ID = 36
MAX_BATCH_ID_WITH_REQUEST_ID = 10
MAX_BATCH_ITEMS = 30  # Intuit's recommended ceiling per batch
# Intuit times out requests after 120 s; a shorter read timeout keeps a click from hanging that long.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0, pool=10.0)
USER_AGENT = "Oodaloo QBORawClient"

_PAGING_CLAUSE = re.compile(r"\b(STARTPOSITION|MAXRESULTS)\b", re.IGNORECASE)
_COUNT_SELECT = re.compile(r"^\s*SELECT\s+COUNT\s*\(", re.IGNORECASE)
_QUOTED_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'", re.DOTALL)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
# Entities QuickBooks voids with a sparse update (include=void) rather than operation=void.
_VOID_BY_UPDATE = {"payment", "salesreceipt", "billpayment"}
_PAYMENT_LINKS = {
    "bill": ("BillPayment", {"BillPaymentCheck", "BillPaymentCreditCard", "BillPayment"}),
    "invoice": ("Payment", {"Payment", "ReceivePayment"}),
}


def quote_literal(value: str) -> str:
    """``value`` as a QuickBooks query string literal: quoted, with ``\\`` and ``'`` escaped.

    Every value that comes from a user or from QuickBooks data (a vendor called "O'Brien & Sons")
    goes through this before it reaches a query statement.
    """
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_request_id(request_id: str, *, limit: int = MAX_REQUEST_ID) -> str:
    """Validate a ``requestid`` (the caller's idempotency key) before it is sent."""
    if not isinstance(request_id, str) or not request_id:
        raise ValueError(
            "a QuickBooks write needs a non-empty requestid (the action's idempotency key)"
        )
    if len(request_id) > limit:
        raise ValueError(
            f"requestid {request_id[:20]!r}... is {len(request_id)} characters; QuickBooks accepts at most "
            f"{limit} here: derive a shorter key, e.g. a UUID5 or a hash of the action's meaning"
        )
    if any(ch.isspace() or not ch.isprintable() or not ch.isascii() for ch in request_id):
        raise ValueError(
            f"requestid {request_id!r} contains spaces or non-ASCII characters; use letters, digits and '-'"
        )
    return request_id


@dataclass(frozen=True)
class BatchResult:
    """One batch item's outcome, matched to its request by ``bid``.

    ``entity`` names the key the answer came under ("Bill", or "QueryResponse" for a query item) and
    ``body`` is that object; a failed item has ``error`` instead (it is returned, not raised, because
    batch items fail independently).
    """

    bid: str
    entity: str | None = None
    body: dict[str, Any] | None = None
    error: QBOError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class QBORawClient:
    """Raw QuickBooks Online v3 calls for one company (realm) of one Oodaloo business.

    Use it as an async context manager (or call ``aclose()``). ``transport`` is injectable
    (``httpx.ASGITransport`` against the sandbox in tests); ``http`` lends an existing client, which
    is then left open on close.
    """

    def __init__(
        self,
        business_id: str,
        realm_id: str,
        *,
        base_url: str,
        tokens: TokenProvider,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
        minorversion: int = 75,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: WallClock = UTC_CLOCK,
    ) -> None:
        if not realm_id or not realm_id.isalnum():
            raise ValueError(
                f"realm_id {realm_id!r} is not a QuickBooks company id (digits expected)"
            )
        self.business_id = business_id
        self.realm_id = realm_id
        self.base_url = base_url.rstrip("/")
        if self.base_url.endswith("/v3"):
            raise ValueError(
                f"base_url {base_url!r} must stop before /v3, e.g. {PRODUCTION_BASE_URL}"
            )
        self.company_url = f"{self.base_url}/v3/company/{realm_id}"
        self.minorversion = minorversion
        self._tokens = tokens
        self._clock = clock
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(transport=transport, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # --- queries ---------------------------------------------------------------------------------

    async def query(self, statement: str) -> list[dict[str, Any]]:
        """Every row of a ``SELECT * FROM ...`` statement, fetched in pages of 1,000.

        The statement must not page itself (no STARTPOSITION/MAXRESULTS: use ``query_page``) nor
        count (use ``count``). Rows that shift between pages while paging are returned once.
        """
        bare = _QUOTED_LITERAL.sub("''", statement)
        if _PAGING_CLAUSE.search(bare):
            raise ValueError(
                "query() pages by itself; remove STARTPOSITION/MAXRESULTS from the statement "
                "or call query_page() to fetch one page"
            )
        if _COUNT_SELECT.match(bare):
            raise ValueError("query() returns rows; use count() for SELECT COUNT(*)")
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        start = 1
        while True:
            page = await self.query_page(
                f"{statement.rstrip().rstrip(';')} STARTPOSITION {start} MAXRESULTS {QUERY_PAGE_SIZE}"
            )
            page_rows = _rows_of(page)
            for row in page_rows:
                row_id = row.get("Id")
                if row_id is None or str(row_id) not in seen:
                    rows.append(row)
                if row_id is not None:
                    seen.add(str(row_id))
            if len(page_rows) < QUERY_PAGE_SIZE:
                return rows
            start += QUERY_PAGE_SIZE

    async def query_page(self, statement: str) -> dict[str, Any]:
        """The raw ``QueryResponse`` of one statement, as QuickBooks pages it (default 100 rows).

        The entity's rows are under its name (``{"Bill": [...], "startPosition": 1, "maxResults": 2}``);
        an empty result is ``{}``.
        """
        body = await self._call(
            "POST",
            "/query",
            content=statement.encode("utf-8"),
            content_type="application/text",
            is_write=False,
        )
        response = body.get("QueryResponse")
        if not isinstance(response, dict):
            raise QBOResponseError("QuickBooks answered a query without a QueryResponse")
        return response

    async def count(self, entity: str, where: str | None = None) -> int:
        """``SELECT COUNT(*) FROM entity [WHERE where]`` (build ``where`` with ``quote_literal``)."""
        statement = f"SELECT COUNT(*) FROM {_check_name(entity)}"
        if where:
            statement += f" WHERE {where}"
        response = await self.query_page(statement)
        total = response.get("totalCount", 0)
        return int(total)

    # --- single objects ----------------------------------------------------------------------------

    async def get(self, entity: str, entity_id: str) -> dict[str, Any]:
        """One object by Id (``GET /{entity}/{id}``)."""
        body = await self._call("GET", f"/{_check_name(entity).lower()}/{_path_id(entity_id)}")
        return _entity_of(body, entity)

    async def create(
        self, entity: str, body: Mapping[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        """Create an object; a repeated ``request_id`` returns the first answer and creates nothing."""
        answer = await self._call(
            "POST", f"/{_check_name(entity).lower()}", json=body, request_id=request_id
        )
        return _entity_of(answer, entity)

    async def update(
        self, entity: str, body: Mapping[str, Any], *, request_id: str, sparse: bool = False
    ) -> dict[str, Any]:
        """Full (or, with ``sparse``, partial) update. ``body`` needs the current Id and SyncToken."""
        for key in ("Id", "SyncToken"):
            if key not in body:
                raise ValueError(f"an update of {entity} needs {key} (read the object first)")
        payload = {**body, "sparse": True} if sparse else dict(body)
        answer = await self._call(
            "POST", f"/{_check_name(entity).lower()}", json=payload, request_id=request_id
        )
        return _entity_of(answer, entity)

    async def delete(
        self, entity: str, entity_id: str, sync_token: str, *, request_id: str
    ) -> dict[str, Any]:
        """Delete by Id and SyncToken; returns ``{"status": "Deleted", "domain": "QBO", "Id": ...}``."""
        answer = await self._call(
            "POST",
            f"/{_check_name(entity).lower()}",
            params={"operation": "delete"},
            json={"Id": str(entity_id), "SyncToken": str(sync_token)},
            request_id=request_id,
        )
        return _entity_of(answer, entity)

    async def void(
        self, entity: str, entity_id: str, sync_token: str, *, request_id: str
    ) -> dict[str, Any]:
        """Void a transaction, the way QuickBooks does it for that entity.

        Invoices use ``?operation=void``; Payment, SalesReceipt and BillPayment are voided with a
        sparse update ``?operation=update&include=void``.
        """
        name = _check_name(entity).lower()
        body: dict[str, Any] = {"Id": str(entity_id), "SyncToken": str(sync_token)}
        if name in _VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void"}
            body["sparse"] = True
        else:
            params = {"operation": "void"}
        answer = await self._call(
            "POST", f"/{name}", params=params, json=body, request_id=request_id
        )
        return _entity_of(answer, entity)

    async def send_invoice(
        self, invoice_id: str, send_to: str | None = None, *, request_id: str
    ) -> dict[str, Any]:
        """Email an invoice (to ``send_to``, else to its BillEmail); returns the updated Invoice."""
        params = {"sendTo": send_to} if send_to else None
        answer = await self._call(
            "POST",
            f"/invoice/{_path_id(invoice_id)}/send",
            params=params,
            content=b"",
            content_type="application/octet-stream",
            request_id=request_id,
        )
        return _entity_of(answer, "Invoice")

    async def company_info(self) -> dict[str, Any]:
        body = await self._call("GET", f"/companyinfo/{self.realm_id}")
        return _entity_of(body, "CompanyInfo")

    async def exchange_rate(self, source_currency: str, as_of: date) -> dict[str, Any]:
        """QuickBooks' rate for one currency into the home currency on a date: the ExchangeRate
        object (``SourceCurrencyCode``, ``TargetCurrencyCode``, ``Rate``, ``AsOfDate``), ``Rate``
        being home-currency units per unit of the source currency. Only a company with
        multicurrency on has rates.

        ``GET /exchangerate?sourcecurrencycode=EUR&asofdate=YYYY-MM-DD``
        (https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies;
        the same call: https://rubydoc.info/gems/quickbooks-ruby/Quickbooks/Service/ExchangeRate).
        """
        if not _CURRENCY.match(source_currency):
            raise ValueError(f"{source_currency!r} is not an ISO 4217 currency code such as 'EUR'")
        body = await self._call(
            "GET",
            "/exchangerate",
            params={"sourcecurrencycode": source_currency, "asofdate": as_of.isoformat()},
        )
        return _entity_of(body, "ExchangeRate")

    # --- change data capture, batch, reports -------------------------------------------------------

    async def cdc(
        self, entities: Sequence[str], changed_since: datetime
    ) -> dict[str, list[dict[str, Any]]]:
        """Objects of ``entities`` changed since ``changed_since`` (QuickBooks keeps 30 days).

        Deleted objects come as ``{"status": "Deleted", "Id": ...}``. QuickBooks answers at most 1,000
        objects: a list that long means a shorter time window is needed.
        """
        if changed_since.tzinfo is None:
            raise ValueError("changed_since must be timezone-aware (e.g. datetime.now(UTC))")
        names = [_check_name(entity) for entity in entities]
        if not names:
            raise ValueError("cdc() needs at least one entity name")
        body = await self._call(
            "GET",
            "/cdc",
            params={
                "entities": ",".join(names),
                "changedSince": changed_since.isoformat(timespec="seconds"),
            },
        )
        changes: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        by_lower = {name.lower(): name for name in names}
        for block in body.get("CDCResponse") or []:
            for response in block.get("QueryResponse") or []:
                for key, value in response.items():
                    if isinstance(value, list):
                        changes.setdefault(by_lower.get(key.lower(), key), []).extend(value)
        for name, objects in changes.items():
            if len(objects) >= QUERY_PAGE_SIZE:
                logger.warning(
                    "QBO CDC returned %d %s objects, QuickBooks' ceiling: some changes may be missing",
                    len(objects),
                    name,
                    extra={"realm_id": self.realm_id, "business_id": self.business_id},
                )
        return changes

    async def batch(
        self, items: Sequence[Mapping[str, Any]], *, request_id: str
    ) -> list[BatchResult]:
        """Send up to 30 ``BatchItemRequest`` items; results come back in the items' order.

        An item is ``{"bId": "b1", "operation": "create", "Bill": {...}}`` or
        ``{"bId": "b2", "Query": "SELECT ..."}``. With a requestid, QuickBooks allows 36 characters
        for it and 10 for each bId. Items fail independently: see each result's ``error``.
        """
        check_request_id(request_id, limit=MAX_BATCH_REQUEST_ID)
        if not items:
            raise ValueError("batch() needs at least one item")
        if len(items) > MAX_BATCH_ITEMS:
            raise ValueError(
                f"a batch holds at most {MAX_BATCH_ITEMS} items (got {len(items)}); split it"
            )
        bids = [str(item.get("bId", "")) for item in items]
        for bid in bids:
            if not bid or len(bid) > MAX_BATCH_ID_WITH_REQUEST_ID:
                raise ValueError(
                    f"batch item id {bid!r} must be 1 to {MAX_BATCH_ID_WITH_REQUEST_ID} characters "
                    "when the batch carries a requestid"
                )
        if len(set(bids)) != len(bids):
            raise ValueError("batch item ids (bId) must be unique within a batch")
        is_write = any("operation" in item for item in items)
        response = await self._send(
            "POST",
            "/batch",
            json={"BatchItemRequest": [dict(item) for item in items]},
            request_id=request_id,
            request_id_limit=MAX_BATCH_REQUEST_ID,
            is_write=is_write,
        )
        body = self._decode(response, is_write=is_write)
        tid = intuit_tid_of(response)
        answers = {
            str(answer.get("bId")): answer
            for answer in body.get("BatchItemResponse") or []
            if isinstance(answer, dict)
        }
        results = []
        for item, bid in zip(items, bids, strict=True):
            answer = answers.get(bid)
            item_is_write = "operation" in item
            if answer is None:
                results.append(
                    BatchResult(
                        bid,
                        error=QBOResponseError(
                            f"QuickBooks' batch answer has no result for item {bid!r}",
                            intuit_tid=tid,
                        ),
                    )
                )
                continue
            error = error_from_batch_item(answer, is_write=item_is_write, intuit_tid=tid)
            if error is not None:
                results.append(BatchResult(bid, error=error))
                continue
            key = next((k for k, v in answer.items() if k != "bId" and isinstance(v, dict)), None)
            results.append(BatchResult(bid, entity=key, body=answer[key] if key else None))
        return results

    async def report(self, name: str, **params: str | int | date) -> dict[str, Any]:
        """A report as QuickBooks returns it (``Header``, ``Columns``, ``Rows``; money as strings).

        ``params`` are QuickBooks' report parameters (``start_date``, ``end_date``, ``report_date``,
        ``accounting_method``, ``aging_period``, ...); dates may be ``datetime.date``.
        """
        query = {
            key: value.isoformat() if isinstance(value, date) else str(value)
            for key, value in params.items()
        }
        return await self._call("GET", f"/reports/{_check_name(name)}", params=query)

    # --- the architecture record's calls ----------------------------------------------------------

    async def get_bills_from_qbo(
        self, due_days: int = 30, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        """Open bills (Balance > 0) due within ``due_days`` days, overdue ones included, soonest first.

        ``today`` is the company's local date (defaults to the client clock's date).
        """
        until = (today or self._clock.now().date()) + timedelta(days=due_days)
        return await self.query(
            "SELECT * FROM Bill WHERE Balance > '0' "
            f"AND DueDate <= {quote_literal(until.isoformat())} ORDERBY DueDate"
        )

    async def get_invoices_from_qbo(
        self, aging_days: int = 30, *, today: date | None = None
    ) -> list[dict[str, Any]]:
        """Open invoices (Balance > 0) due within ``aging_days`` days, overdue ones included, oldest
        due date first (the receivables a runway digest chases)."""
        until = (today or self._clock.now().date()) + timedelta(days=aging_days)
        return await self.query(
            "SELECT * FROM Invoice WHERE Balance > '0' "
            f"AND DueDate <= {quote_literal(until.isoformat())} ORDERBY DueDate"
        )

    async def get_customers_from_qbo(self) -> list[dict[str, Any]]:
        return await self.query("SELECT * FROM Customer")

    async def get_vendors_from_qbo(self) -> list[dict[str, Any]]:
        return await self.query("SELECT * FROM Vendor")

    async def get_accounts_from_qbo(self) -> list[dict[str, Any]]:
        return await self.query("SELECT * FROM Account")

    async def get_company_info_from_qbo(self) -> dict[str, Any]:
        return await self.company_info()

    async def create_payment_in_qbo(
        self, payment_data: Mapping[str, Any], *, request_id: str
    ) -> dict[str, Any]:
        """Create a BillPayment (paying one or more bills); amounts must be Decimal."""
        return await self.create("BillPayment", payment_data, request_id=request_id)

    async def get_kpi_data(
        self, *, start_date: date | None = None, end_date: date | None = None
    ) -> dict[str, Any]:
        """Raw material for cash KPIs: ProfitAndLoss and CashFlow reports and the bank accounts.

        Without dates the reports cover QuickBooks' default period (this fiscal year to date).
        """
        period: dict[str, str | int | date] = {}
        if start_date is not None:
            period["start_date"] = start_date
        if end_date is not None:
            period["end_date"] = end_date
        return {
            "profit_and_loss": await self.report("ProfitAndLoss", **period),
            "cash_flow": await self.report("CashFlow", **period),
            "bank_accounts": await self.query("SELECT * FROM Account WHERE AccountType = 'Bank'"),
        }

    async def get_aging_report(self) -> dict[str, Any]:
        """The AgedPayables and AgedReceivables summary reports, raw."""
        return {
            "aged_payables": await self.report("AgedPayables"),
            "aged_receivables": await self.report("AgedReceivables"),
        }

    async def get_payment_history(self, entity_type: str, entity_id: str) -> list[dict[str, Any]]:
        """Payments applied to one bill (its BillPayments) or one invoice (its Payments).

        QuickBooks cannot filter payments by the transaction they pay, so the bill or invoice is read
        first and its ``LinkedTxn`` entries name the payments, which are then read in one query.
        """
        kind = entity_type.lower()
        if kind not in _PAYMENT_LINKS:
            raise ValueError(
                f"payment history exists for a Bill or an Invoice, not {entity_type!r}"
            )
        payment_entity, link_types = _PAYMENT_LINKS[kind]
        target = await self.get(entity_type, entity_id)
        payment_ids = sorted(
            {
                str(link["TxnId"])
                for link in target.get("LinkedTxn") or []
                if link.get("TxnType") in link_types and link.get("TxnId") is not None
            },
            key=lambda value: (len(value), value),
        )
        if not payment_ids:
            return []
        listed = ", ".join(quote_literal(payment_id) for payment_id in payment_ids)
        return await self.query(f"SELECT * FROM {payment_entity} WHERE Id IN ({listed})")

    # --- HTTP --------------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        request_id: str | None = None,
        is_write: bool | None = None,
    ) -> dict[str, Any]:
        write = is_write if is_write is not None else request_id is not None
        response = await self._send(
            method,
            path,
            params=params,
            json=json,
            content=content,
            content_type=content_type,
            request_id=request_id,
            is_write=write,
        )
        return self._decode(response, is_write=write)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        request_id: str | None = None,
        request_id_limit: int = MAX_REQUEST_ID,
        is_write: bool,
    ) -> httpx.Response:
        """One call, with one token refresh and retry on a 401; raises the QBOError of any failure."""
        query: dict[str, str] = dict(params or {})
        if request_id is not None:
            query["requestid"] = check_request_id(request_id, limit=request_id_limit)
        elif is_write:
            raise ValueError(
                "every QuickBooks write needs a requestid (the action's idempotency key)"
            )
        query["minorversion"] = str(self.minorversion)
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if json is not None:
            content = dumps(json).encode("utf-8")
            content_type = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type

        token = await self._tokens.access_token()
        response = await self._exchange(method, path, query, headers, content, token, is_write)
        if response.status_code == 401:
            # The request was refused before doing anything, so the same requestid is safe to resend.
            token = await self._tokens.force_refresh(token)
            response = await self._exchange(method, path, query, headers, content, token, is_write)
        error = error_from_response(response, is_write=is_write, now=self._clock.now())
        if error is not None:
            if isinstance(error, QBOAuthError) and response.status_code == 401:
                error.message += " (after refreshing the token once)"
            raise error
        return response

    async def _exchange(
        self,
        method: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        content: bytes | None,
        token: str,
        is_write: bool,
    ) -> httpx.Response:
        url = f"{self.company_url}{path}"
        log_extra: dict[str, Any] = {
            "realm_id": self.realm_id,
            "business_id": self.business_id,
            "qbo_method": method,
            "qbo_path": path,
            "request_id": query.get("requestid"),
        }
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method,
                url,
                params=query,
                content=content,
                headers={**headers, "Authorization": f"Bearer {token}"},
            )
        except (httpx.TransportError, OSError) as exc:
            duration_ms = (time.perf_counter() - started) * 1000
            outcome = _transport_outcome(exc)
            logger.warning(
                "QBO %s %s failed after %.0f ms: %s",
                method,
                path,
                duration_ms,
                type(exc).__name__,
                extra={**log_extra, "status": None, "duration_ms": duration_ms},
            )
            raise QBOConnectionError(
                f"QuickBooks {method} {path} got no usable answer ({type(exc).__name__}: {exc})",
                outcome=outcome,
                advice=_connection_advice(outcome, is_write),
            ) from exc
        duration_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "QBO %s %s -> %s in %.0f ms",
            method,
            path,
            response.status_code,
            duration_ms,
            extra={
                **log_extra,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "intuit_tid": intuit_tid_of(response),
            },
        )
        return response

    def _decode(self, response: httpx.Response, *, is_write: bool) -> dict[str, Any]:
        try:
            body = loads(response.content)
        except (ValueError, simplejson.JSONDecodeError) as exc:
            snippet = " ".join(response.text.split())[:120]
            raise QBOResponseError(
                f"QuickBooks answered HTTP {response.status_code} with a body that is not JSON "
                f"({snippet!r})",
                status=response.status_code,
                intuit_tid=intuit_tid_of(response),
            ) from exc
        if not isinstance(body, dict):
            raise QBOResponseError(
                f"QuickBooks answered HTTP {response.status_code} with JSON that is not an object",
                status=response.status_code,
                intuit_tid=intuit_tid_of(response),
            )
        return body


def _transport_outcome(exc: BaseException) -> Outcome:
    """NOT_APPLIED only when the request cannot have left this machine."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return Outcome.NOT_APPLIED
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.NOT_APPLIED
    return Outcome.UNKNOWN


def _connection_advice(outcome: Outcome, is_write: bool) -> str:
    if outcome is Outcome.NOT_APPLIED:
        return "the request never reached QuickBooks, so nothing was applied; retry when it is reachable"
    if is_write:
        return (
            "the request may have reached QuickBooks and the change may have been applied: resend it "
            "only with the same requestid (QuickBooks then replays the first answer) or check "
            "QuickBooks first"
        )
    return "the request may have reached QuickBooks; retrying this read is safe"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a QuickBooks entity or report name")
    return name


def _path_id(entity_id: str) -> str:
    text = str(entity_id)
    if not text:
        raise ValueError("an object id is needed")
    return quote(text, safe="")


def _rows_of(query_response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entity rows of a QueryResponse: the one list-valued key (absent when nothing matched)."""
    for value in query_response.values():
        if isinstance(value, list):
            return value
    return []


def _entity_of(body: Mapping[str, Any], entity: str) -> dict[str, Any]:
    """The object under the entity's key (QuickBooks wraps it: ``{"Bill": {...}, "time": ...}``)."""
    found = body.get(entity)
    if found is None:
        lowered = entity.lower()
        found = next((v for k, v in body.items() if k.lower() == lowered), None)
    if not isinstance(found, dict):
        raise QBOResponseError(
            f"QuickBooks' answer has no {entity} object (keys: {', '.join(sorted(body)) or 'none'})",
            advice="the request reached QuickBooks; check the object there before repeating a write",
        )
    return found
