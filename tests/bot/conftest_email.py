"""Fixtures for the email tests: the runway tests' `runway_env` (reused, not copied), a real local
SMTP server (aiosmtpd) that keeps what it receives, and the digest of the sandbox's company.

Import into a test module: `from conftest_email import *` brings the fixtures (pytest registers
fixtures a test module imports).
"""

from __future__ import annotations

import importlib.util
import socket
import sys
import threading
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import ModuleType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from runway.books import business_today
from runway.digest import DigestBuilder, DigestView
from runway.snapshot import load_books

TESTS = Path(__file__).resolve().parent.parent


def _runway_fixtures() -> ModuleType:
    """tests/runway/conftest.py, loaded under its own name so it never clashes with a conftest."""
    name = "runway_test_env"
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(TESTS / "runway"))
    sys.path.insert(0, str(TESTS / "sync"))
    spec = importlib.util.spec_from_file_location(name, TESTS / "runway" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_runway = _runway_fixtures()
RunwayEnv = _runway.RunwayEnv
runway_env = _runway.runway_env
db_url_fixture = _runway.db_url_fixture
migrated_fixture = _runway.migrated_fixture

BUSINESS = "biz-larkspur"


# --- a real SMTP server ------------------------------------------------------------------------


@dataclass
class MailHandler:
    """aiosmtpd handler: keeps every accepted message; can answer DATA or RCPT with set replies."""

    #: Replies to the next DATA commands, in order ("421 ..."); afterwards every message is accepted.
    data_replies: deque[str] = field(default_factory=deque)
    #: Addresses refused at RCPT TO with this reply.
    refuse: dict[str, str] = field(default_factory=dict)
    received: list[Envelope] = field(default_factory=list)
    data_attempts: int = 0
    rcpt_attempts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTPServer,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self._lock:
            self.rcpt_attempts += 1
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_attempts += 1
            if self.data_replies:
                return self.data_replies.popleft()
            self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for envelope in self.received:
            content = envelope.original_content or envelope.content
            assert isinstance(content, bytes)
            message = message_from_bytes(content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            parsed.append(message)
        return parsed


@dataclass
class Logins:
    """Accepts one user and password over AUTH PLAIN/LOGIN; remembers who logged in."""

    user: str
    password: str
    seen: list[tuple[str, str]] = field(default_factory=list)
    #: The client's (host, port) of each attempt: one per connection.
    peers: list[object] = field(default_factory=list)

    def __call__(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.seen.append((login, password))
        self.peers.append(session.peer)
        # handled=False: aiosmtpd itself answers (235, or 535 on a wrong password).
        return AuthResult(success=(login, password) == (self.user, self.password), handled=False)


@dataclass
class MailServer:
    handler: MailHandler
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_mail_server(handler: MailHandler, **options: Any) -> tuple[Controller, MailServer]:
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
    controller.start()
    return controller, MailServer(handler, "127.0.0.1", port)


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    """aiosmtpd on a free loopback port, keeping every message it accepts."""
    controller, server = start_mail_server(MailHandler())
    try:
        yield server
    finally:
        controller.stop()


# --- the digest of the sandbox's company -------------------------------------------------------


async def digest_of(env: Any, business_id: str = BUSINESS) -> DigestView:
    """Mirror the sandbox company into the database, then build its digest from the mirror."""
    await env.mirror(business_id, env.sandbox.realm_id).sync()
    now = datetime.now(UTC)
    async with env.uows(business_id) as uow:
        business = await uow.business.get()
        assert business is not None
        books = await load_books(uow, business_id, business_today(now, business.timezone))
    return DigestBuilder().build(books, now=now)


async def set_business(env: Any, **fields: Any) -> None:
    async with env.uows(BUSINESS) as uow:
        business = await uow.business.get()
        assert business is not None
        for name, value in fields.items():
            setattr(business, name, value)
        await uow.commit()


def all_parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative message, decoded."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def contains_all(haystack: str, needles: Sequence[str]) -> list[str]:
    """The needles missing from the haystack (empty when all are there)."""
    return [needle for needle in needles if needle not in haystack]


async def bills_due_in_two_days(env: Any, vendor_names: list[str]) -> list[str]:
    """New bills from the seeded company's vendors of those names, due in two days."""
    from sync_harness import setup_client  # tests/sync, on the path once the fixtures load

    sandbox = env.sandbox
    due = datetime.now(ZoneInfo("America/Los_Angeles")).date() + timedelta(days=2)
    async with setup_client(sandbox) as client:
        vendors = {v["DisplayName"]: v for v in await client.query("SELECT * FROM Vendor")}
        expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
        made = []
        for index, name in enumerate(vendor_names):
            bill = await client.create(
                "Bill",
                {
                    "VendorRef": {"value": vendors[name]["Id"]},
                    "DueDate": due.isoformat(),
                    "Line": [
                        {
                            "Amount": Decimal("1234.56") + index,
                            "DetailType": "AccountBasedExpenseLineDetail",
                            "AccountBasedExpenseLineDetail": {
                                "AccountRef": {"value": expense["Id"]}
                            },
                        }
                    ],
                },
                request_id=f"setup-{uuid.uuid4().hex[:12]}",
            )
            made.append(str(bill["Id"]))
    return made
