"""`sync`'s public face: every exported name resolves, lazily, and one class means "unavailable now"."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import sync
from sync import (
    CircuitOpen,
    QBOError,
    QuickBooksUnavailable,
    RateLimitError,
    RateLimitTimeout,
    SyncUnavailable,
)
from sync.qbo import (
    QBOAuthError,
    QBOAuthorizationError,
    QBOConnectionError,
    QBONotFoundError,
    QBOResponseError,
    QBOServerError,
    QBOStaleObjectError,
    QBOThrottledError,
    QBOTokenError,
    QBOValidationError,
)


def test_every_exported_name_is_the_submodules_own() -> None:
    assert sorted(sync.__all__) == sorted(sync._EXPORTS)
    for name in sync.__all__:
        module, attribute = sync._EXPORTS[name]
        assert getattr(sync, name) is getattr(importlib.import_module(module), attribute)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        sync.Nope  # noqa: B018


def test_a_light_name_does_not_load_the_heavy_dependencies() -> None:
    code = (
        "import sys\nfrom sync import Clock, QuickBooksUnavailable\n"
        "heavy = {'httpx', 'redis', 'sqlalchemy', 'tenacity'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    "error",
    [
        CircuitOpen("123", 30.0),
        CircuitOpen("123", 0.0, probing=True),
        RateLimitTimeout("123", sync.Priority.USER_ACTION, 2.0, 2.0, "all slots taken"),
        QBOConnectionError("QuickBooks could not be reached"),
        QBOServerError("QuickBooks answered HTTP 503", status=503),
        QBOThrottledError("QuickBooks throttled the request", retry_after=60),
        SyncUnavailable("QuickBooks could not be read; try again when QuickBooks is reachable"),
        QuickBooksUnavailable(),
    ],
)
def test_unavailable_now_is_one_class_whose_message_says_try_later(
    error: QuickBooksUnavailable,
) -> None:
    assert isinstance(error, QuickBooksUnavailable)
    text = str(error).lower()
    assert "quickbooks" in text
    assert any(word in text for word in ("try again", "retry", "wait", "resume")), text


def test_existing_classes_keep_their_bases() -> None:
    assert issubclass(RateLimitTimeout, RateLimitError)
    for cls in (QBOConnectionError, QBOServerError, QBOThrottledError):
        assert issubclass(cls, QBOError)
    assert str(QBOServerError("down", status=503)).startswith("down: ")


@pytest.mark.parametrize(
    "cls",
    [
        QBOAuthError,
        QBOAuthorizationError,
        QBOTokenError,
        QBOValidationError,
        QBOStaleObjectError,
        QBONotFoundError,
        QBOResponseError,
    ],
)
def test_errors_that_waiting_does_not_fix_are_not_unavailable(cls: type[QBOError]) -> None:
    assert not issubclass(cls, QuickBooksUnavailable)
