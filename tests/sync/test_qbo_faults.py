"""Every form of QuickBooks fault seen in the wild, from the real reference bodies, maps to the right
error class, outcome and advice."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import simplejson

from sync.qbo import (
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
    error_from_batch_item,
    error_from_response,
)

FIXTURES = Path("/work/shared/qbo-reference")
TID = "1-5f4e3d2c-0123456789abcdef"

if not FIXTURES.is_dir():  # pragma: no cover - the reference bodies ship beside the repository
    pytest.skip(f"QuickBooks reference fixtures not found at {FIXTURES}", allow_module_level=True)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def response(
    status: int, body: bytes | str, content_type: str = "application/json", **headers: str
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return httpx.Response(
        status,
        content=content,
        headers={"content-type": content_type, "intuit_tid": TID, **headers},
    )


def test_official_json_envelope_is_a_validation_error():
    error = error_from_response(
        response(400, fixture_bytes("fault_template_official.json")), is_write=True
    )
    assert type(error) is QBOValidationError
    assert error.outcome is Outcome.NOT_APPLIED
    assert error.fault_type == "ValidationFault"
    assert error.status == 400
    assert error.intuit_tid == TID
    assert [(e.code, e.message, e.detail, e.element) for e in error.errors] == [
        ("<code>", "<message>", "<detail>", "")
    ]
    assert not error.retryable_safely(is_write=True, has_request_id=True)


def test_duplicate_name_says_what_to_fix():
    error = error_from_response(
        response(400, fixture_bytes("fault_validation_duplicate_name.json")), is_write=True
    )
    assert type(error) is QBOValidationError
    assert error.code == "6240"
    assert error.errors[0].message == "Duplicate Name Exists Error"
    text = str(error)
    assert "Duplicate Name Exists Error" in text
    assert "correct the data" in text
    assert TID in text


def test_lower_case_401_body_is_an_auth_error():
    error = error_from_response(
        response(401, fixture_bytes("fault_auth_401_lowercase.json")), is_write=False
    )
    assert type(error) is QBOAuthError
    assert error.code == "3200"
    assert error.fault_type == "AUTHENTICATION"
    assert error.detail == "Malformed bearer token: too short or too long"
    assert error.outcome is Outcome.NOT_APPLIED
    assert "AuthenticationFailed" in str(error)
    assert "/runway connect" in str(error)


def test_xml_401_authentication_fault_is_an_auth_error():
    error = error_from_response(
        response(
            401, fixture_bytes("fault_auth_401_general_authentication_error.xml"), "application/xml"
        ),
        is_write=False,
    )
    assert type(error) is QBOAuthError
    assert error.code == "100"
    assert error.fault_type == "AuthenticationFault"
    assert "General Authentication Error" in error.message


def test_403_authorization_failed_is_an_authorization_error():
    # The body node-quickbooks #154 reports for a token used against another company.
    body = (
        '{"fault":{"error":[{"message":"message=AuthorizationFailed; errorCode=003100; '
        'statusCode=403","detail":null,"code":"3100","element":null}],"type":"SERVICE"}}'
    )
    error = error_from_response(response(403, body), is_write=True)
    assert type(error) is QBOAuthorizationError
    assert error.code == "3100"
    assert error.outcome is Outcome.NOT_APPLIED
    assert not error.retryable_safely(is_write=True, has_request_id=True)


def test_xml_throttle_with_retry_after_seconds():
    error = error_from_response(
        response(
            429, fixture_bytes("fault_throttle_429.xml"), "application/xml", **{"Retry-After": "7"}
        ),
        is_write=True,
    )
    assert type(error) is QBOThrottledError
    assert error.retry_after == 7.0
    assert error.code == "3001"
    assert error.outcome is Outcome.NOT_APPLIED
    # Nothing was applied, so even a write without a requestid may be sent again (after the wait).
    assert error.retryable_safely(is_write=True, has_request_id=False)
    assert "ThrottleExceeded" in str(error)
    assert "wait 7 s" in str(error)


def test_throttle_without_retry_after_has_none_and_says_sixty_seconds():
    error = error_from_response(
        response(429, fixture_bytes("fault_throttle_429.xml"), "application/xml"), is_write=False
    )
    assert isinstance(error, QBOThrottledError)
    assert error.retry_after is None
    assert "60 s" in str(error)


def test_throttle_retry_after_as_http_date():
    now = datetime(2025, 3, 4, 12, 0, 0, tzinfo=UTC)
    error = error_from_response(
        response(
            429,
            fixture_bytes("fault_throttle_429.xml"),
            "application/xml",
            **{"Retry-After": "Tue, 04 Mar 2025 12:00:30 GMT"},
        ),
        is_write=False,
        now=now,
    )
    assert isinstance(error, QBOThrottledError)
    assert error.retry_after == 30.0


def test_pre_2016_throttle_as_http_403_is_still_a_throttle():
    # Before December 2016 the same ThrottleExceeded fault came back as HTTP 403 (quickbooks-ruby #338).
    body = fixture_bytes("fault_throttle_429.xml").replace(b"statusCode=429", b"statusCode=403")
    error = error_from_response(response(403, body, "application/xml"), is_write=False)
    assert type(error) is QBOThrottledError


def test_fault_inside_http_200_is_an_error():
    error = error_from_response(
        response(200, fixture_bytes("fault_template_official.json")), is_write=True
    )
    assert type(error) is QBOValidationError
    assert error.status == 200
    throttled = error_from_response(
        response(200, fixture_bytes("fault_throttle_429.xml"), "application/xml"), is_write=False
    )
    assert type(throttled) is QBOThrottledError


def test_stale_object_fault_from_a_real_error_list():
    errors = ast.literal_eval(fixture_bytes("fault_stale_object_5010_python_repr.txt").decode())
    body = simplejson.dumps(
        {"Fault": {"Error": errors, "type": "ValidationFault"}, "time": "2024-01-01T00:00:00-08:00"}
    )
    error = error_from_response(response(400, body), is_write=True)
    assert type(error) is QBOStaleObjectError
    assert isinstance(error, QBOValidationError)
    assert error.code == "5010"
    assert error.outcome is Outcome.NOT_APPLIED
    assert "read it again" in str(error)
    assert not error.retryable_safely(is_write=True, has_request_id=True)


@pytest.mark.parametrize(
    ("status", "title"),
    [(503, "503 Service Temporarily Unavailable"), (502, "502 Bad Gateway")],
)
def test_html_outage_page_is_a_server_error_with_unknown_outcome(status, title):
    page = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>"
    error = error_from_response(response(status, page, "text/html"), is_write=True)
    assert type(error) is QBOServerError
    assert error.outcome is Outcome.UNKNOWN
    assert error.intuit_tid == TID
    assert title in str(error)
    assert "same requestid" in str(error)
    assert error.retryable_safely(is_write=False, has_request_id=False)
    assert error.retryable_safely(is_write=True, has_request_id=True)
    assert not error.retryable_safely(is_write=True, has_request_id=False)


def test_500_json_service_fault_is_a_server_error_not_an_authorization_error():
    # qbo_api #81: a 500 whose fault reuses code 3100 with InternalServerError.
    body = (
        '{"Fault":{"Error":[{"Message":"message=InternalServerError; errorCode=003100; statusCode=500",'
        '"code":"3100"}],"type":"SERVICE"},"time":"2018-03-01T10:00:00.000-08:00"}'
    )
    error = error_from_response(response(500, body), is_write=False)
    assert type(error) is QBOServerError
    assert error.code == "3100"
    assert "retrying this read later with backoff is safe" in str(error)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, b"", QBOServerError),
        (504, b"upstream timed out", QBOServerError),
        (400, b"", QBOValidationError),
        (404, b"", QBONotFoundError),
        (401, b"", QBOAuthError),
        (403, b"Forbidden", QBOAuthorizationError),
        (405, b"", QBOError),
    ],
)
def test_empty_or_non_json_bodies_follow_the_status(status, body, expected):
    error = error_from_response(response(status, body, "text/plain"), is_write=True)
    assert type(error) is expected
    assert error.status == status
    if status >= 500:
        assert error.outcome is Outcome.UNKNOWN
    else:
        assert error.outcome is Outcome.NOT_APPLIED


def test_query_parser_fault_is_a_query_error():
    body = (
        '{"Fault":{"Error":[{"Message":"Error parsing query","Detail":"QueryParserError: Encountered '
        '\\" \\"OR\\" \\"OR \\"\\" at line 1, column 36.","code":"4000"}],"type":"ValidationFault"},'
        '"time":"2024-05-29T14:58:03.036-07:00"}'
    )
    error = error_from_response(response(400, body), is_write=False)
    assert type(error) is QBOQueryError
    assert error.detail.startswith("QueryParserError")
    assert "quote_literal" in str(error)


@pytest.mark.parametrize(
    "name", ["query_bill_response_docs.json", "companyinfo_docs.json", "cdc_response_docs.json"]
)
def test_successful_bodies_are_not_errors(name):
    assert error_from_response(response(200, fixture_bytes(name)), is_write=False) is None


def test_the_word_fault_inside_data_is_not_a_fault():
    body = simplejson.dumps(
        {"Bill": {"Id": "1", "PrivateNote": 'Vendor said "Fault" was ours'}, "time": "x"}
    )
    assert error_from_response(response(200, body), is_write=True) is None


def test_batch_item_faults_become_errors_without_raising():
    body = simplejson.loads(fixture_bytes("batch_response_docs.json"), use_decimal=True)
    results = {
        item["bId"]: error_from_batch_item(item, is_write=True, intuit_tid=TID)
        for item in body["BatchItemResponse"]
    }
    assert type(results["bid1"]) is QBOValidationError and results["bid1"].code == "6240"
    assert type(results["bid2"]) is QBONotFoundError and results["bid2"].code == "610"
    assert type(results["bid3"]) is QBOStaleObjectError
    assert results["bid4"] is None
    assert all(r.intuit_tid == TID for r in results.values() if r is not None)
    assert all(r.outcome is Outcome.NOT_APPLIED for r in results.values() if r is not None)


def test_batch_item_from_python_quickbooks_sample():
    body = simplejson.loads(fixture_bytes("batch_response_python_quickbooks_test.json"))
    by_bid = {
        item["bId"]: error_from_batch_item(item, is_write=True)
        for item in body["BatchItemResponse"]
    }
    assert by_bid["2"] is None
    assert isinstance(by_bid["1"], QBOValidationError)
    assert by_bid["1"].detail == "detail message"
