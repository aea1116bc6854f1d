"""Turning QuickBooks' fault bodies, in every form seen in the wild, into ``QBOError``s.

QuickBooks reports failures in several shapes, and a client that only checks the status code or
only parses one of them misreads the others:

- the official JSON envelope ``{"Fault": {"Error": [{"Message", "Detail", "code", "element"}], "type"}}``;
- a lower-case JSON variant ``{"fault": {"error": [{"message", "detail", "code"}]}}`` (401s, 403s);
- XML ``<IntuitResponse><Fault type=".."><Error code="..">``, even when JSON was asked for (429
  throttling, older 401s);
- a ``Fault`` inside an HTTP 200 (the error-codes page warns about it);
- HTML pages from the load balancer for 502/503, and empty or unreadable bodies;
- per-item faults inside a batch response.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import simplejson

from sync.qbo.errors import (
    FaultDetail,
    Outcome,
    QBOAuthError,
    QBOAuthorizationError,
    QBOError,
    QBONotFoundError,
    QBOQueryError,
    QBOServerError,
    QBOStaleObjectError,
    QBOThrottledError,
    QBOValidationError,
)
from sync.qbo.json import loads

# A fault body is small; a huge error body is an HTML page or garbage, not worth parsing whole.
_MAX_FAULT_BODY = 256 * 1024
_EMBEDDED_STATUS = re.compile(r"statusCode\s*[=:]\s*(\d{3})")
_MESSAGE_NAME = re.compile(r"message\s*=\s*([A-Za-z]+)")
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ParsedFault:
    """A fault body reduced to what every form has in common."""

    fault_type: str | None
    errors: list[FaultDetail] = field(default_factory=list)


def intuit_tid_of(response: httpx.Response) -> str | None:
    """Intuit's transaction id for this exchange (the header support asks for), if any."""
    value = response.headers.get("intuit_tid") or response.headers.get("intuit-tid")
    return str(value) if value else None


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))  # delta-seconds, not money
    except ValueError:
        pass  # not delta-seconds: an HTTP date, tried next
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def parse_fault_json(body: Any) -> ParsedFault | None:
    """The fault in an already-parsed JSON body (either letter case), or None when there is none."""
    if not isinstance(body, Mapping):
        return None
    fault = body.get("Fault", body.get("fault"))
    if not isinstance(fault, Mapping):
        return None
    raw_errors = fault.get("Error", fault.get("error")) or []
    if isinstance(raw_errors, Mapping):
        raw_errors = [raw_errors]
    errors = [
        FaultDetail(
            code=_text(item.get("code", item.get("Code"))),
            message=_text(item.get("Message", item.get("message"))),
            detail=_text(item.get("Detail", item.get("detail"))),
            element=_text(item.get("element", item.get("Element"))),
        )
        for item in raw_errors
        if isinstance(item, Mapping)
    ]
    fault_type = fault.get("type", fault.get("Type"))
    return ParsedFault(
        fault_type=str(fault_type) if fault_type is not None else None, errors=errors
    )


def parse_fault_xml(text: str) -> ParsedFault | None:
    """The ``<Fault>`` in an ``IntuitResponse`` XML body, or None when there is none."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    fault = next((el for el in root.iter() if _local(el.tag) == "Fault"), None)
    if fault is None:
        return None
    errors = []
    for error in (el for el in fault.iter() if _local(el.tag) == "Error"):
        parts = {_local(child.tag): (child.text or "").strip() for child in error}
        errors.append(
            FaultDetail(
                code=error.get("code", ""),
                message=parts.get("Message", ""),
                detail=parts.get("Detail", ""),
                element=error.get("element", ""),
            )
        )
    return ParsedFault(fault_type=fault.get("type"), errors=errors)


def error_from_response(
    response: httpx.Response, *, is_write: bool, now: datetime | None = None
) -> QBOError | None:
    """The error a QuickBooks response stands for, or None when it is a success.

    ``is_write`` shapes the advice: after a 5xx a read can simply be retried, while a write's effect is
    unknown and may only be resent with the same ``requestid``.
    """
    status = response.status_code
    tid = intuit_tid_of(response)
    content = response.content[:_MAX_FAULT_BODY]
    text = content.decode(response.encoding or "utf-8", errors="replace")
    stripped = text.lstrip()

    if 200 <= status < 300:
        fault = _fault_in_success_body(stripped)
        if fault is None:
            return None
        return _classify(None, fault, is_write=is_write, intuit_tid=tid, raw_status=status)

    fault = None
    if stripped.startswith("{"):
        try:
            fault = parse_fault_json(loads(stripped))
        except (ValueError, simplejson.JSONDecodeError):
            fault = None
    elif stripped.startswith("<") and not _looks_like_html(stripped, response):
        fault = parse_fault_xml(stripped)

    if status == 429 or (fault is not None and _is_throttle(fault)):
        return _throttled(fault, response, tid, now)
    if fault is None:
        return _error_without_fault(status, stripped, response, is_write=is_write, intuit_tid=tid)
    return _classify(status, fault, is_write=is_write, intuit_tid=tid, raw_status=status)


def error_from_batch_item(
    item: Mapping[str, Any], *, is_write: bool, intuit_tid: str | None = None
) -> QBOError | None:
    """The error in one ``BatchItemResponse`` entry (returned, never raised), or None if it succeeded."""
    fault = parse_fault_json(item)
    if fault is None:
        return None
    return _classify(None, fault, is_write=is_write, intuit_tid=intuit_tid, raw_status=None)


# --- classification -----------------------------------------------------------------------------


def _classify(
    status: int | None,
    fault: ParsedFault,
    *,
    is_write: bool,
    intuit_tid: str | None,
    raw_status: int | None,
) -> QBOError:
    """Pick the exception class from the HTTP status, the fault type and the error codes."""
    first = fault.errors[0] if fault.errors else FaultDetail("", "", "", "")
    effective = status if status is not None and status >= 400 else _embedded_status(fault)
    codes = {error.code for error in fault.errors}
    fault_type = (fault.fault_type or "").lower()
    common: dict[str, Any] = {
        "status": raw_status,
        "code": first.code or None,
        "detail": first.detail or None,
        "fault_type": fault.fault_type,
        "intuit_tid": intuit_tid,
    }
    summary = _summary(fault)

    if effective == 429 or _is_throttle(fault):
        return QBOThrottledError(
            f"QuickBooks throttled this company's requests ({summary})", **common
        )
    if effective == 401 or fault_type in ("authentication", "authenticationfault"):
        return QBOAuthError(f"QuickBooks refused the access token ({summary})", **common)
    if (
        effective == 403
        or fault_type == "authorizationfault"
        or _names(fault, "AuthorizationFailed")
    ):
        return QBOAuthorizationError(
            f"QuickBooks refused access to this company ({summary})", **common
        )
    if effective is not None and effective >= 500:
        return QBOServerError(
            f"QuickBooks failed with a server error ({summary})",
            advice=_server_advice(is_write),
            **common,
        )
    if "5010" in codes:
        return QBOStaleObjectError(
            f"QuickBooks refused a stale SyncToken ({summary})", errors=fault.errors, **common
        )
    if "610" in codes or effective == 404:
        return QBONotFoundError(
            f"QuickBooks could not find an object the request names ({summary})",
            errors=fault.errors,
            **common,
        )
    if "4000" in codes or first.detail.startswith("QueryParserError"):
        return QBOQueryError(
            f"QuickBooks could not parse the query ({summary})", errors=fault.errors, **common
        )
    if effective == 400 or fault_type == "validationfault":
        return QBOValidationError(
            f"QuickBooks refused the request as invalid ({summary})", errors=fault.errors, **common
        )
    if effective is not None and 400 <= effective < 500:
        return QBOError(
            f"QuickBooks refused the request ({summary})", outcome=Outcome.NOT_APPLIED, **common
        )
    # A fault of an unfamiliar type inside a success: the request reached QuickBooks and what it
    # did is not certain.
    return QBOError(
        f"QuickBooks answered with a fault ({summary})",
        outcome=Outcome.UNKNOWN,
        advice=_server_advice(is_write),
        **common,
    )


def _throttled(
    fault: ParsedFault | None, response: httpx.Response, tid: str | None, now: datetime | None
) -> QBOThrottledError:
    first = fault.errors[0] if fault and fault.errors else None
    summary = _summary(fault) if fault else f"HTTP {response.status_code}"
    return QBOThrottledError(
        f"QuickBooks throttled this company's requests ({summary})",
        retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
        status=response.status_code,
        code=first.code if first and first.code else None,
        detail=first.detail if first and first.detail else None,
        fault_type=fault.fault_type if fault else None,
        intuit_tid=tid,
    )


def _error_without_fault(
    status: int, text: str, response: httpx.Response, *, is_write: bool, intuit_tid: str | None
) -> QBOError:
    """A failure status whose body carries no fault: an HTML page, an empty body, or garbage."""
    what = _describe_body(text, response)
    common: dict[str, Any] = {"status": status, "intuit_tid": intuit_tid}
    if status >= 500:
        return QBOServerError(
            f"QuickBooks answered HTTP {status} ({what})", advice=_server_advice(is_write), **common
        )
    if status == 401:
        return QBOAuthError(f"QuickBooks refused the access token (HTTP 401, {what})", **common)
    if status == 403:
        return QBOAuthorizationError(
            f"QuickBooks refused access to this company (HTTP 403, {what})", **common
        )
    if status == 404:
        return QBONotFoundError(
            f"QuickBooks has no such resource or object (HTTP 404, {what})", **common
        )
    if status == 400:
        return QBOValidationError(f"QuickBooks refused the request (HTTP 400, {what})", **common)
    if 400 <= status < 500:
        return QBOError(
            f"QuickBooks refused the request (HTTP {status}, {what})",
            outcome=Outcome.NOT_APPLIED,
            **common,
        )
    return QBOError(
        f"QuickBooks answered an unexpected HTTP {status} ({what})",
        advice=_server_advice(is_write),
        **common,
    )


def _fault_in_success_body(text: str) -> ParsedFault | None:
    # Cheap substring checks first, so a 1,000-row page is not parsed twice just to find no fault.
    if text.startswith("{") and ('"Fault"' in text or '"fault"' in text):
        try:
            return parse_fault_json(loads(text))
        except (ValueError, simplejson.JSONDecodeError):
            return None  # unreadable success bodies are reported by whoever decodes them
    if text.startswith("<") and "Fault" in text:
        return parse_fault_xml(text)
    return None


def _server_advice(is_write: bool) -> str:
    if is_write:
        return (
            "the change may or may not have been applied: resend it only with the same requestid "
            "(QuickBooks then replays the first answer) or check QuickBooks before trying again"
        )
    return "QuickBooks is failing or unavailable; retrying this read later with backoff is safe"


def _is_throttle(fault: ParsedFault) -> bool:
    return any(error.code == "3001" for error in fault.errors) or _names(fault, "ThrottleExceeded")


def _names(fault: ParsedFault, name: str) -> bool:
    return any(name.lower() in error.message.lower() for error in fault.errors)


def _embedded_status(fault: ParsedFault) -> int | None:
    """QuickBooks repeats the HTTP status inside messages ("...; statusCode=429")."""
    for error in fault.errors:
        for text in (error.message, error.detail):
            match = _EMBEDDED_STATUS.search(text)
            if match:
                return int(match.group(1))
    return None


def _summary(fault: ParsedFault) -> str:
    if not fault.errors:
        return f"fault type {fault.fault_type or 'unknown'}, no error details"
    parts = []
    for error in fault.errors:
        name_match = _MESSAGE_NAME.search(error.message)
        name = name_match.group(1) if name_match else error.message
        if not error.detail or error.detail == name:
            text = name
        elif error.detail.startswith(name):
            text = error.detail  # QuickBooks often repeats the message at the start of the detail
        else:
            text = f"{name}: {error.detail}"
        if error.element:
            text += f" (field {error.element})"
        parts.append(text.strip() or f"code {error.code}")
    return "; ".join(parts)


def _describe_body(text: str, response: httpx.Response) -> str:
    if not text.strip():
        return "empty body"
    if _looks_like_html(text, response):
        match = _HTML_TITLE.search(text)
        title = " ".join(match.group(1).split()) if match else "no title"
        return f"HTML page: {title}"
    snippet = " ".join(text.split())[:120]
    return f"no QuickBooks fault in the body: {snippet!r}"


def _looks_like_html(text: str, response: httpx.Response) -> bool:
    if "html" in response.headers.get("content-type", "").lower():
        return True
    head = text[:200].lower()
    return head.startswith("<!doctype html") or "<html" in head


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(value: Any) -> str:
    return "" if value is None else str(value)
