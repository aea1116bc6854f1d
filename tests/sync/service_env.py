"""Where the test services are: URLs from the environment that scripts/test sets.

A test that needs a service which is not there skips with a reason, except under CI=true, where the
run must prove everything and the test fails instead.
"""

from __future__ import annotations

import os

import pytest

POSTGRES_ENV = "OODALOO_TEST_POSTGRES_URL"
REDIS_ENV = "OODALOO_TEST_REDIS_URL"


def required_service_url(env: str, service: str, address: str) -> str:
    url = os.environ.get(env)
    if url:
        return url
    reason = f"{service} is not available: {env} is unset (scripts/test sets it when {service} answers on {address})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI=true requires the {service} tests to run")
    pytest.skip(reason)
