"""Shared fixtures: a QBO sandbox in-process, an httpx client for it, and one served over real HTTP.

The sandbox is imported inside the fixtures so test modules that do not use it never load it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from qbo_sandbox.app import Sandbox
    from qbo_sandbox.server import RunningSandbox


@pytest.fixture
def sandbox() -> Sandbox:
    """A fresh sandbox with the default company of the default seed; its clock can be moved."""
    from qbo_sandbox.app import create_app
    from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig

    return create_app(SandboxConfig(seed=DEFAULT_SEED))


@pytest.fixture
async def qbo_http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    """httpx over ASGI to `sandbox`: base_url is the part before /v3, the bearer token is set."""
    async with sandbox.http_client() as client:
        yield client
    await sandbox.aclose()


@pytest.fixture(scope="module")
def live_sandbox() -> Iterator[RunningSandbox]:
    """The sandbox served by uvicorn on a free loopback port, shared by one test module."""
    from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
    from qbo_sandbox.server import start_in_thread

    with start_in_thread(SandboxConfig(seed=DEFAULT_SEED)) as running:
        yield running
