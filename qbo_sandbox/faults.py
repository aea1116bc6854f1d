"""QBO's JSON fault envelope and the faults the sandbox's data plane raises.

    {"Fault":{"Error":[{"Message","Detail","code","element"}],"type":"ValidationFault"},"time":...}

`code` is a string, `element` is usually "". The messages are QBO's own wording, so clients that
match on them (python-quickbooks maps codes to exception classes) behave as they would with QBO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FaultError:
    code: str
    message: str
    detail: str
    element: str = ""

    def to_json(self) -> dict[str, str]:
        return {
            "Message": self.message,
            "Detail": self.detail,
            "code": self.code,
            "element": self.element,
        }


class QBOFault(Exception):
    """A fault QBO would answer with: HTTP status, fault type and its errors."""

    def __init__(
        self,
        status: int,
        errors: list[FaultError],
        fault_type: str = "ValidationFault",
    ) -> None:
        super().__init__("; ".join(f"{e.code} {e.message}: {e.detail}" for e in errors))
        self.status = status
        self.errors = errors
        self.fault_type = fault_type

    def fault_json(self) -> dict[str, Any]:
        """The inner {"Error": [...], "type": ...} (what a batch item carries)."""
        return {"Error": [e.to_json() for e in self.errors], "type": self.fault_type}

    def to_json(self, time: str | None = None) -> dict[str, Any]:
        """The whole envelope; `time` is the response time in QBO's format."""
        body: dict[str, Any] = {"Fault": self.fault_json()}
        if time is not None:
            body["time"] = time
        return body


def _one(status: int, code: str, message: str, detail: str, element: str = "") -> QBOFault:
    return QBOFault(status, [FaultError(code, message, detail, element)])


# -- the faults, by QBO code ---------------------------------------------------------------------


def unsupported_operation(detail: str) -> QBOFault:
    return _one(400, "500", "Unsupported Operation", f"Operation {detail} is not supported.")


def object_not_found(entity: str, ident: str, element: str = "") -> QBOFault:
    return _one(
        400,
        "610",
        "Object Not Found",
        f"Object Not Found : Something you're trying to use has been made inactive or does "
        f"not exist: {entity} {ident!r}. Check the fields with accounts, customers, items, "
        "vendors or employees.",
        element,
    )


def required_param_missing(param: str, entity: str) -> QBOFault:
    return _one(
        400,
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {param} is missing in the request ({entity}).",
        param,
    )


def invalid_string_length(param: str, limit: int, got: int) -> QBOFault:
    return _one(
        400,
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"String length specified does not match the supported length. Min:1 Max:{limit} "
        f"supported. Supplied length:{got} ({param})",
        param,
    )


def invalid_value(param: str, detail: str) -> QBOFault:
    return _one(
        400,
        "2170",
        "Invalid Enumeration",
        f"Invalid value for {param}: {detail}",
        param,
    )


def request_has_invalid_reference(detail: str, element: str = "") -> QBOFault:
    return _one(400, "2500", "Invalid Reference Id", f"Invalid Reference Id : {detail}", element)


def business_validation(detail: str, element: str = "") -> QBOFault:
    return _one(
        400,
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def duplicate_name(name: str) -> QBOFault:
    return _one(
        400,
        "6240",
        "Duplicate Name Exists Error",
        "The name supplied already exists. : Another customer, vendor or employee is already "
        f"using this name ({name}). Please use a different name.",
        "DisplayName",
    )


def stale_object() -> QBOFault:
    return _one(
        400,
        "5010",
        "Stale Object Error",
        "Stale Object Error : You and root were working on this at the same time. root finished "
        "before you did, so your work was not saved.",
    )


def query_parse_error(message: str, detail: str, code: str = "4000") -> QBOFault:
    """4000 for a statement QBO cannot parse, 4001 ("Invalid query") for one naming a property
    it cannot filter or order on."""
    return _one(400, code, message, detail)


def bad_request(detail: str, element: str = "") -> QBOFault:
    """A request QBO cannot read (malformed JSON, a body of the wrong shape)."""
    return _one(
        400,
        "2010",
        "Request has invalid or unsupported property",
        f"Property Name:{detail}",
        element,
    )


def invalid_request_id(length: int, limit: int) -> QBOFault:
    return _one(
        400,
        "2050",
        "String length is either shorter or longer than supported by specification",
        f"requestid is {length} characters long; at most {limit} are supported for this "
        "operation. Use a UUID.",
        "requestid",
    )


def cdc_too_old(changed_since: str) -> QBOFault:
    return _one(
        400,
        "2080",
        "Invalid changedSince",
        f"changedSince {changed_since} is more than 30 days ago; CDC tracks changes within the "
        "last 30 days. Query the entities for older history.",
        "changedSince",
    )


def unknown_realm(realm_id: str) -> QBOFault:
    return QBOFault(
        404,
        [
            FaultError(
                "3100",
                "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=404",
                f"No company with realm id {realm_id} exists in this sandbox.",
            )
        ],
        fault_type="SERVICE",
    )


def batch_too_large(count: int, limit: int) -> QBOFault:
    return _one(
        400,
        "1002",
        "Batch request has too many items",
        f"The batch request has {count} items; at most {limit} are allowed per batch. Split it "
        "into several batches.",
        "BatchItemRequest",
    )
