"""Settings of one QBO sandbox: the company it seeds, its limits, credentials, faults and clock."""

from __future__ import annotations

import hashlib
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from qbo_sandbox.chaos import FaultPlan
from qbo_sandbox.limits import LimitConfig
from qbo_sandbox.seed import DEFAULT_SEED
from qbo_sandbox.store import Clock

__all__ = ["DEFAULT_SEED", "FaultPlan", "LimitConfig", "ManualClock", "SandboxConfig"]


class ManualClock:
    """The sandbox's clock: wall time that tests and `POST /_sandbox/clock` can move forward.

    It ticks with real time (a long-running sandbox looks normal), so moving it is only ever needed
    to skip ahead: expire an access token, age a bill, leave a rate-limit window. `frozen=True`
    stops the ticking for tests that want identical timestamps.
    """

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        if start is not None and start.tzinfo is None:
            raise ValueError("ManualClock needs an aware start time, e.g. datetime(2026, 3, 2, tzinfo=UTC)")
        self._start = start or datetime.now(UTC)
        self._started_at = time.monotonic()
        self._offset = timedelta(0)
        self._frozen = frozen
        self._lock = threading.Lock()

    def now(self) -> datetime:
        elapsed = 0.0 if self._frozen else time.monotonic() - self._started_at
        with self._lock:
            return self._start + timedelta(seconds=elapsed) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward by `delta` and returns the new time.

        Only forward: QBO's clock never runs backwards, and change-data-capture relies on it.
        """
        if delta < timedelta(0):
            raise ValueError(f"the sandbox clock only moves forward; got {delta}")
        with self._lock:
            self._offset += delta
        return self.now()


_ALPHANUMERIC = string.ascii_letters + string.digits


def _derived(seed: int, purpose: str, length: int) -> str:
    """A stable pseudo-random string: the same seed always gives the same credentials."""
    out: list[str] = []
    block = 0
    while len(out) < length:
        digest = hashlib.sha256(f"qbo-sandbox:{purpose}:{seed}:{block}".encode()).digest()
        out.extend(_ALPHANUMERIC[b % len(_ALPHANUMERIC)] for b in digest)
        block += 1
    return "".join(out[:length])


def derived_client_id(seed: int) -> str:
    return "AB" + _derived(seed, "client-id", 48)  # QBO client ids: 50 characters starting "AB"


def derived_client_secret(seed: int) -> str:
    return _derived(seed, "client-secret", 40)


def derived_verifier_token(seed: int) -> str:
    digest = hashlib.sha256(f"qbo-sandbox:verifier-token:{seed}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


@dataclass
class SandboxConfig:
    """Everything a sandbox needs. Defaults are QBO's own numbers; tests scale them down."""

    seed: int = DEFAULT_SEED
    scale: int | None = None  # None: the realistic default company; N: N bills and N invoices
    # The default company also with the money real ones move besides bills and invoices: counter
    # sales on sales receipts, owner money, a bank loan, transfers, journal entries, card payments
    # and a vendor credit (seed.DefaultCompany.plan_everyday_money).
    full_books: bool = False
    # The default company with multicurrency on (home USD): a supplier billing in euros each month,
    # paid from the dollar Checking account at the day's rate (seed.DefaultCompany.plan_euro_supplier).
    euro_supplier: bool = False
    # The company's country (CompanyInfo's Country and its addresses'), an ISO 3166 alpha-2 code
    # as QuickBooks gives it: "GB" makes the default company a UK one, its books in pounds (the
    # same figures; the euro supplier needs a home currency other than the euro).
    country: str = "US"
    host: str = "127.0.0.1"
    port: int = 8765
    limits: LimitConfig = field(default_factory=LimitConfig)
    access_token_lifetime: timedelta = timedelta(seconds=3600)
    refresh_token_lifetime: timedelta = timedelta(days=100)
    authorization_code_lifetime: timedelta = timedelta(minutes=5)
    # Empty: derived from the seed, so a restarted sandbox keeps the same app credentials.
    client_id: str = ""
    client_secret: str = ""
    verifier_token: str = ""
    faults: FaultPlan = field(default_factory=FaultPlan)
    clock: Clock = field(default_factory=ManualClock)
    # Webhooks: events are gathered this long, then sent; failed deliveries retried after these delays.
    webhook_batch_seconds: float = 0.1
    webhook_retry_delays: tuple[float, ...] = (1.0, 5.0, 15.0)
    webhook_timeout_seconds: float = 3.0  # QBO expects an answer within 3 seconds

    def __post_init__(self) -> None:
        if self.scale is not None and self.country != "US":
            raise ValueError("a scaled company is a US one; a country is for the default company")
        if self.scale is not None and self.scale < 1:
            raise ValueError(f"scale must be at least 1 (or None for the default company), got {self.scale}")
        self.client_id = self.client_id or derived_client_id(self.seed)
        self.client_secret = self.client_secret or derived_client_secret(self.seed)
        self.verifier_token = self.verifier_token or derived_verifier_token(self.seed)
