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


#: The test modules that empty a Redis database of their own (`oodaloo serve` and `oodaloo worker`
#: have no key prefix setting, so these modules cannot share database 0 under a prefix).
DEDICATED_REDIS_MODULES = ("two_processes", "slack_handoff", "wheel_install")


def dedicated_redis_db(module: str) -> int:
    """The Redis database (15 down to 1) that `module` alone empties. Under pytest-xdist each worker
    has its own set, so modules running side by side never empty each other's database."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw") or "0")
    db = 15 - index * len(DEDICATED_REDIS_MODULES) - DEDICATED_REDIS_MODULES.index(module)
    if db < 1:
        raise RuntimeError(
            f"pytest-xdist worker {worker} has no Redis database left for {module} (Redis has 16, "
            "database 0 is shared under key prefixes): run with fewer workers (-n 5 at most)"
        )
    return db
