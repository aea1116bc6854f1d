"""Shared set-up for the SmartSyncService, reconciler, chaos and backlog tests.

A "stack" is what a deployment shares between its processes: the database and the backend.
`embedded` is a SQLite file with in-process backends (one MemoryBackend, shared by every
infrastructure built on it, as one process would); `shared` is a fresh PostgreSQL schema with Redis
under a unique key prefix (each infrastructure opens its own Redis connections, as separate
processes would). PostgreSQL and Redis come from OODALOO_TEST_POSTGRES_URL / OODALOO_TEST_REDIS_URL;
without them the `shared` cases skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import simplejson
from service_env import POSTGRES_ENV, REDIS_ENV, required_service_url
from sqlalchemy import make_url

from qbo_sandbox.app import Sandbox
from sync.backends import Backend, MemoryBackend, RedisBackend
from sync.db import upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings
from sync.qbo import QBORawClient, StaticTokenProvider, TokenProvider

BUSINESS_ID = "biz-larkspur"


class OffsetClock:
    """Real time plus an offset a test can push forward (to expire a lease or cool a circuit)."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self._offset)

    def monotonic(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, by: float | timedelta) -> None:
        seconds = by.total_seconds() if isinstance(by, timedelta) else by
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds


@dataclass
class Stack:
    """The database and backend that several workers (infrastructures) share."""

    kind: str
    database_url: str
    redis_url: str | None = None
    redis_prefix: str | None = None
    memory: MemoryBackend | None = None
    _opened: list[Backend] = field(default_factory=list)

    def backend(self) -> Backend:
        """A backend for one more worker: the shared memory one, or new Redis connections."""
        if self.memory is not None:
            return self.memory
        assert self.redis_url is not None and self.redis_prefix is not None
        backend = RedisBackend.from_url(self.redis_url, prefix=self.redis_prefix)
        self._opened.append(backend)
        return backend


_SQLITE_TEMPLATE: list[Path] = []


async def migrated_sqlite(path: Path) -> str:
    """A SQLite database at `path`, at the newest migration (migrated once, then copied)."""
    if not _SQLITE_TEMPLATE:
        folder = Path(tempfile.mkdtemp(prefix="oodaloo-sync-template-"))
        template = folder / "template.db"
        await upgrade_database(f"sqlite+aiosqlite:///{template}")
        _SQLITE_TEMPLATE.append(template)
    shutil.copyfile(_SQLITE_TEMPLATE[0], path)
    return f"sqlite+aiosqlite:///{path}"


@asynccontextmanager
async def open_stack(kind: str, tmp_path: Path) -> AsyncIterator[Stack]:
    """A migrated database and a backend of `kind` ("embedded" or "shared"), removed afterwards."""
    if kind == "embedded":
        url = await migrated_sqlite(tmp_path / "oodaloo.db")
        memory = MemoryBackend()
        yield Stack(kind, url, memory=memory)
        await memory.aclose()
        return
    base_url = required_service_url(POSTGRES_ENV, "PostgreSQL", "127.0.0.1:5432")
    redis_url = required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379")
    schema = f"oodaloo_test_{uuid.uuid4().hex[:16]}"
    dsn = make_url(base_url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    stack = Stack(
        kind,
        make_url(base_url).update_query_dict({"search_path": schema}).render_as_string(
            hide_password=False
        ),
        redis_url=redis_url,
        redis_prefix=f"oodaloo-test:{uuid.uuid4().hex[:12]}",
    )
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        await upgrade_database(stack.database_url)
        yield stack
    finally:
        cleaner = RedisBackend.from_url(redis_url, prefix=stack.redis_prefix or "unused")
        await cleaner.delete_all_keys()
        await cleaner.aclose()
        for backend in stack._opened:
            await backend.aclose()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


def static_tokens(sandbox: Sandbox) -> Any:
    def tokens_for(realm_id: str) -> TokenProvider:
        return StaticTokenProvider(sandbox.access_token)

    return tokens_for


async def build_infra(
    stack: Stack,
    sandbox: Sandbox,
    settings: SyncSettings,
    *,
    clock: Any,
    base_url: str | None = None,
    worker_id: str | None = None,
    tokens_for: Any = None,
) -> SyncInfrastructure:
    """One worker's infrastructure on `stack`, talking to `sandbox` in-process (ASGI) unless a
    `base_url` of the sandbox served over HTTP is given."""
    transport = None if base_url else httpx.ASGITransport(app=sandbox.app)
    return await SyncInfrastructure.create(
        stack.database_url,
        tokens_for=tokens_for or static_tokens(sandbox),
        settings=settings.__class__(**{**settings.__dict__, "qbo_base_url": base_url or sandbox.base_url}),
        clock=clock,
        transport=transport,
        backend=stack.backend(),
        migrate=False,
        worker_id=worker_id,
    )


def setup_client(sandbox: Sandbox, base_url: str | None = None) -> QBORawClient:
    """A plain client for arranging data before the faults are switched on."""
    return QBORawClient(
        "setup",
        sandbox.realm_id,
        base_url=base_url or sandbox.base_url,
        tokens=StaticTokenProvider(sandbox.access_token),
        transport=None if base_url else httpx.ASGITransport(app=sandbox.app),
    )


def admin_http(sandbox: Sandbox, base_url: str | None = None) -> httpx.AsyncClient:
    """A client for the sandbox's admin API, in-process or over HTTP."""
    if base_url:
        return httpx.AsyncClient(base_url=base_url, timeout=10.0)
    return sandbox.http_client(access_token="")


async def edit_bill_amount(
    sandbox: Sandbox, bill_id: str, amount: Decimal | str, *, base_url: str | None = None
) -> None:
    """A bookkeeper changes the bill's amount in QuickBooks' own screens (the admin API)."""
    amount = Decimal(amount)
    bill = sandbox.realm().get("Bill", bill_id)
    assert bill is not None, f"no bill {bill_id} in the sandbox"
    changes = {"TotalAmt": amount, "Balance": amount, "Line": [{**bill["Line"][0], "Amount": amount}]}
    async with admin_http(sandbox, base_url) as admin:
        response = await admin.post(
            f"/_sandbox/realms/{sandbox.realm_id}/edit/Bill/{bill_id}",
            content=simplejson.dumps(changes, use_decimal=True),
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 200, response.text


async def create_bills(
    sandbox: Sandbox, amounts: list[Decimal], *, base_url: str | None = None
) -> list[dict[str, Any]]:
    """New open bills (one per amount) from vendors of the seeded company, through the v3 API."""
    async with setup_client(sandbox, base_url) as client:
        vendors = await client.query("SELECT * FROM Vendor")
        expense = next(
            account
            for account in await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'")
        )
        gate = asyncio.Semaphore(8)  # below QuickBooks' 10 concurrent requests per company

        async def one(index: int, amount: Decimal) -> dict[str, Any]:
            vendor = vendors[index % len(vendors)]
            async with gate:
                return await client.create(
                    "Bill",
                    {
                        "VendorRef": {"value": vendor["Id"]},
                        # Five days out: due "this week" for a business in any timezone, whatever
                        # the hour (this machine's date runs a day ahead of Los Angeles' at night).
                        "DueDate": (date.today() + timedelta(days=5)).isoformat(),
                        "Line": [
                            {
                                "Amount": amount,
                                "DetailType": "AccountBasedExpenseLineDetail",
                                "AccountBasedExpenseLineDetail": {
                                    "AccountRef": {"value": expense["Id"]}
                                },
                            }
                        ],
                    },
                    request_id=f"setup-bill-{uuid.uuid4().hex[:12]}",
                )

        return list(await asyncio.gather(*(one(i, a) for i, a in enumerate(amounts))))


async def bank_account_id(sandbox: Sandbox, base_url: str | None = None) -> str:
    async with setup_client(sandbox, base_url) as client:
        accounts = await client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
        return str(accounts[0]["Id"])


def payments_marked(sandbox: Sandbox, key: str) -> list[dict[str, Any]]:
    """BillPayments in the sandbox's own store whose memo carries `key`'s marker."""
    marker = f"oodaloo:{key}"
    return [
        payment
        for payment in sandbox.realm().iter("BillPayment")
        if marker in str(payment.get("PrivateNote") or "")
    ]


async def admin_stats(sandbox: Sandbox, base_url: str | None = None) -> dict[str, Any]:
    async with admin_http(sandbox, base_url) as http:
        response = await http.get("/_sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


async def put_faults(sandbox: Sandbox, plan: dict[str, Any], base_url: str | None = None) -> None:
    async with admin_http(sandbox, base_url) as http:
        response = await http.put("/_sandbox/faults", json=plan)
        response.raise_for_status()


def route_count(stats: dict[str, Any], realm_id: str, route: str) -> int:
    return int(stats["requests"]["by_realm"].get(realm_id, {}).get(route, 0))


async def eventually(condition: Any, *, within: float = 5.0, what: str = "the condition") -> None:
    """Wait (polling every millisecond) until `condition()` is true; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"{what} did not happen within {within} s")


def stored(sandbox: Sandbox, entity: str, entity_id: str) -> dict[str, Any]:
    """An object as the sandbox's own store holds it (the ground truth the tests check against)."""
    found = sandbox.realm().get(entity, entity_id)
    assert found is not None, f"{entity} {entity_id} is not in the sandbox"
    return found
