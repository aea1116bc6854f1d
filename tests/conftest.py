"""Shared fixtures: a QBO sandbox in-process, an httpx client for it, and one served over real HTTP.

The sandbox is imported inside the fixtures so test modules that do not use it never load it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

# Every digest Oodaloo serves from memory in the tests (and in the processes they start) is read
# again and compared: a write that does not change the books' version fails the test that made it.
os.environ.setdefault("CHECK_KEPT_READS", "1")
# The `oodaloo worker` processes the tests start share two cores with test processes that run flat
# out; on the idle CPU class (the default) they would wait on them. A low nice still lets them run.
os.environ.setdefault("WORKER_NICE", "10")

if TYPE_CHECKING:
    from playwright.async_api import Browser

    from qbo_sandbox.app import Sandbox
    from qbo_sandbox.server import RunningSandbox


#: Modules whose tests start Oodaloo's own processes (`oodaloo serve`, `oodaloo worker`, `oodaloo
#: demo`, an installed wheel) and wait for them with deadlines. When the suite runs in several
#: pytest-xdist processes with `--dist loadgroup` (./scripts/test), they all run in one of them, one
#: after another, so those processes never compete with each other for the machine's cores; the
#: rest of the suite is shared out test by test.
PROCESS_MODULES = frozenset({
    "test_crash_restart.py",
    "test_crash_restart_worker.py",
    "test_demo_browser.py",
    "test_processes.py",
    "test_slack_handoff.py",
    "test_two_processes.py",
    "test_wheel_install.py",
})  # fmt: skip


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadgroup` with `PROCESS_MODULES` as the one group. (pytest-xdist's own grouping by
    `xdist_group` marks renames test ids, which pytest 9 no longer lets a plugin do.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ProcessModulesTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
            return "processes" if module in PROCESS_MODULES else nodeid

    return ProcessModulesTogether(config, log)


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


#: Debian's chromium, driven by Playwright (Playwright's own browser download is never used). The
#: flags keep it from reaching out to the network this machine does not have.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium_installed() -> bool:
    return os.access(CHROMIUM, os.X_OK)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless chromium. Missing, the test is skipped, except with CI=true, where it fails."""
    from playwright.async_api import async_playwright

    if not _chromium_installed():
        reason = f"{CHROMIUM} is missing; install it with `apt-get install -y chromium`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser tests: {reason}")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
