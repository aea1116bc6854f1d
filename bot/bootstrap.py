"""The composition root: one `Oodaloo` per process wires settings to the layers below.

`Oodaloo.start(settings)` opens the database (migrated, or checked to be current), the backends
(Redis or in-process), the token cipher and business directory, and SyncInfrastructure with stored,
self-refreshing QuickBooks tokens. `services(business)` hands out one business's domain services over that wiring; the Slack
app, the web routes, the worker and the CLI all take an `Oodaloo` and never build these themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.keys import email_link_keys, token_keys
from bot.models import DigestRun
from bot.rotation import check_token_keys
from bot.settings import Settings, SettingsError
from runway.bills import BillService
from runway.books import BooksSnapshot, business_today
from runway.businesses import (
    BusinessDirectory,
    BusinessNotFound,
    PayFromRefused,
    QBOAppCredentials,
    bank_accounts_of,
    bill_payment_account,
    payment_account_id,
)
from runway.calculator import RunwayStatus, WeeklyFigures
from runway.crypto import TokenCipher
from runway.digest import DigestBuilder, DigestView
from runway.drift import DriftRecorder
from runway.errors import BusinessNotReady
from runway.invoices import InvoiceService
from runway.kept_reads import KeptRead, KeptReads
from runway.mirror import MirrorSync, SyncReport
from runway.models import Business
from runway.shown_rows import DIGEST_ROWS, ShownRows
from runway.snapshot import load_banks, load_books
from runway.uow import RunwayUnitOfWork, UnitOfWorkFactory
from sync.actions import BILL_PAYMENT_CREATE
from sync.backends import Backend, backend_from_url
from sync.books_versions import books_version
from sync.clock import Clock, SystemClock
from sync.db import SchemaState, make_engine, make_sessionmaker, schema_state, upgrade_database
from sync.infrastructure import SyncInfrastructure, SyncSettings, TokensFor
from sync.ledger import Action, ActionState
from sync.locks import lock_factory
from sync.qbo.auth import PRODUCTION_TOKEN_URL
from sync.reconcile import DriftReport, Reconciler, Resolution
from sync.service import SmartSyncService

logger = logging.getLogger(__name__)

#: How long before a digest its comparison digest must be to count as "last week's".
LAST_WEEK_AT_LEAST = timedelta(days=6)

ResolutionListener = Callable[[Resolution], Awaitable[None]]

#: A business, a day and the books' version a snapshot was read at.
_ReadAt = tuple[str, date, tuple[int, int]]
#: The snapshots read so far within `Oodaloo.one_read`, by business, day and version.
_ONE_READ: ContextVar[dict[_ReadAt, BooksSnapshot] | None] = ContextVar(
    "oodaloo_one_read", default=None
)


async def _previous_figures(
    session: AsyncSession, business_id: str, *, before: datetime
) -> WeeklyFigures | None:
    """Last week's figures: those of the latest digest posted at least six days before
    `before` (a digest sent again today, or a mid-week summary, is not "last week")."""
    figures = await session.scalar(
        select(DigestRun.figures)
        .where(
            DigestRun.business_id == business_id,
            DigestRun.posted_at.is_not(None),
            DigestRun.figures.is_not(None),
            DigestRun.scheduled_for < before - LAST_WEEK_AT_LEAST,
        )
        .order_by(DigestRun.scheduled_for.desc())
        .limit(1)
    )
    return None if figures is None else figures_from_json(figures)


@dataclass
class BusinessServices:
    """One business's domain services, sharing the process's infrastructure."""

    business: Business
    smart_sync: SmartSyncService
    bills: BillService
    invoices: InvoiceService
    drift: DriftRecorder
    mirror: MirrorSync


@dataclass(frozen=True)
class PaymentAccount:
    account_id: str
    name: str


@dataclass(frozen=True)
class DigestContext:
    """A digest and what a renderer needs beside it."""

    business: Business
    view: DigestView
    #: The name of the bank account a bill in each currency is paid from
    #: (`businesses.bill_payment_account`), named in the bill's Pay dialog; a currency no account
    #: of the business can pay is left out (Pay refuses it, saying why).
    payment_account: Mapping[str, str]
    built_at: datetime
    #: The account bills in the home currency are paid from.
    payment_account_id: str | None = None


def figures_to_json(figures: WeeklyFigures) -> dict[str, Any]:
    return {
        "on": figures.on.isoformat(),
        "status": figures.status.value,
        "runway_days": figures.runway_days,
        "cash": figures.cash,
        "net_burn_per_month": figures.net_burn_per_month,
    }


def figures_from_json(data: dict[str, Any]) -> WeeklyFigures:
    from datetime import date
    from decimal import Decimal

    return WeeklyFigures(
        on=date.fromisoformat(data["on"]),
        status=RunwayStatus(data["status"]),
        runway_days=data.get("runway_days"),
        cash=Decimal(str(data["cash"])),
        net_burn_per_month=Decimal(str(data["net_burn_per_month"])),
    )


# --- the database's schema ---------------------------------------------------------------------


def _revisions(revisions: tuple[str, ...]) -> str:
    return ", ".join(revisions) or "none"


def schema_problem(state: SchemaState) -> str | None:
    """What is wrong with a database this code's migrations do not match, and what to do; None
    when it matches."""
    if state.up_to_date:
        return None
    if state.unknown:
        return (
            f"The database is at revision {_revisions(state.current)}, which this version of "
            f"Oodaloo does not know (its newest is {_revisions(state.head)}): a newer Oodaloo "
            "migrated it. Run that version (or a newer one), or restore the backup taken before it "
            "was migrated."
        )
    if not state.current:
        return (
            "The database has no Oodaloo tables yet: run `oodaloo migrate` once (with the same "
            "DATABASE_URL), then start again. MIGRATE_ON_START=true makes every process migrate as "
            "it starts instead."
        )
    return (
        f"The database is at revision {_revisions(state.current)} and this version of Oodaloo "
        f"needs {_revisions(state.head)}: run `oodaloo migrate` once (with the same DATABASE_URL), "
        "then start again. MIGRATE_ON_START=true makes every process migrate as it starts instead."
    )


async def database_schema(database_url: str) -> SchemaState:
    """`oodaloo migrate --check`: where the database stands; changes nothing."""
    return await schema_state(database_url)


async def migrate_database(database_url: str) -> tuple[SchemaState, SchemaState]:
    """`oodaloo migrate`: the database before and after bringing it to this code's newest
    revision. Processes migrating at once take turns (a PostgreSQL advisory lock; SQLite's write
    lock), so the second finds nothing left to do."""
    found = await schema_state(database_url)
    if found.unknown:
        return found, found  # newer than this code: leave it as it is
    before, after = await upgrade_database(database_url)
    return replace(found, current=before), replace(found, current=after)


@dataclass
class Oodaloo:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    infra: SyncInfrastructure
    uows: UnitOfWorkFactory
    directory: BusinessDirectory
    clock: Clock
    http: httpx.AsyncClient
    tokens_for: TokensFor
    #: The email links' key ring, newest first: the first signs, every one verifies.
    link_secret: tuple[bytes, ...]
    digests: DigestBuilder = field(default_factory=DigestBuilder)
    resolution_listeners: list[ResolutionListener] = field(default_factory=list)
    drift_listeners: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    #: Told (business id) after a sync read QuickBooks again: what shows the books follows.
    synced_listeners: list[Callable[[str], Awaitable[None]]] = field(default_factory=list)
    #: What digests read, served again while the books' version stands.
    kept_reads: KeptReads = field(default_factory=KeptReads)

    @classmethod
    async def start(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        qbo_transport: httpx.AsyncBaseTransport | None = None,
        backend: Backend | None = None,
        sync_settings: SyncSettings | None = None,
        qbo_token_url: str | None = None,
        migrate: bool = True,
        database_connections: int | None = None,
    ) -> Oodaloo:
        """Everything one process needs, from its settings. `qbo_transport`, `backend` and
        `sync_settings` let tests and the demo put the sandbox and in-process state underneath.
        `database_connections`: the connections the process keeps open (see `make_engine`).
        `migrate=False` leaves the schema to `oodaloo migrate` and refuses (SettingsError) a
        database this code's migrations do not match; the processes pass
        `settings.migrates_on_start()`."""
        clock = clock or SystemClock()
        keys = token_keys(settings)
        cipher = TokenCipher(keys)
        link_keys = email_link_keys(settings, keys)
        if migrate:
            await upgrade_database(settings.database_url)
        engine = make_engine(settings.database_url, connections=database_connections)
        try:
            if not migrate:
                # Another process migrates (`oodaloo migrate`): refuse a schema this code does not
                # match now, with what to do, rather than fail at the first query that differs.
                problem = schema_problem(await schema_state(engine))
                if problem is not None:
                    raise SettingsError(problem)
            # A ring that opens none of the stored tokens is refused now, not at the first call.
            await check_token_keys(engine, cipher)
        except BaseException:
            await engine.dispose()
            raise
        sessions = make_sessionmaker(engine)
        directory = BusinessDirectory(sessions, cipher, clock=clock)
        http = httpx.AsyncClient(transport=qbo_transport, timeout=httpx.Timeout(30.0, connect=5.0))
        chosen = backend if backend is not None else backend_from_url(settings.redis_url)
        app = QBOAppCredentials(
            client_id=settings.qbo_client_id or "",
            client_secret=settings.qbo_client_secret or "",
            token_url=qbo_token_url or PRODUCTION_TOKEN_URL,
        )
        sync = sync_settings or SyncSettings(qbo_base_url=settings.qbo_base_url)
        # Token refreshes of one realm take turns across every process sharing the backend.
        tokens_for = directory.token_source(app, http, lock=lock_factory(chosen))
        infra = SyncInfrastructure(
            engine=engine,
            backend=chosen,
            tokens_for=tokens_for,
            settings=sync,
            clock=clock,
            transport=qbo_transport,
            owns_engine=True,
            owns_backend=backend is None,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            infra=infra,
            kept_reads=KeptReads(check=settings.check_kept_reads),
            uows=UnitOfWorkFactory(sessions),
            directory=directory,
            clock=clock,
            http=http,
            tokens_for=tokens_for,
            link_secret=link_keys,
        )

    # --- one business's services ------------------------------------------------------------

    def services(self, business: Business) -> BusinessServices:
        if not business.realm_id:
            from runway.errors import BusinessNotReady

            raise BusinessNotReady(
                f"{business.name} is not connected to QuickBooks yet: run /runway connect."
            )
        smart_sync = SmartSyncService(self.infra, business.id, business.realm_id)
        return BusinessServices(
            business=business,
            smart_sync=smart_sync,
            bills=BillService(self.uows, smart_sync, business.id, self.clock),
            invoices=InvoiceService(self.uows, smart_sync, business.id, self.clock),
            drift=DriftRecorder(self.uows, business.id, self.clock, smart_sync),
            mirror=MirrorSync(self.uows, smart_sync, on_synced=self._synced),
        )

    async def services_for(self, business_id: str) -> BusinessServices:
        return self.services(await self.directory.get(business_id))

    # --- the digest ---------------------------------------------------------------------------

    async def payment_account(self, business: Business) -> PaymentAccount | None:
        """The business's pay-from account (its choice, else its largest bank account; None: it has
        none), as its settings show it; each bill is paid from the account
        `businesses.bill_payment_account` picks for the bill's currency, this one where it can."""
        async with self.uows(business.id) as uow:
            books = await load_banks(
                uow, business.id, business_today(self.clock.now(), business.timezone)
            )
        return self._payment_account(business, books)

    @staticmethod
    def _payment_account(business: Business, books: BooksSnapshot) -> PaymentAccount | None:
        worth = {
            bank.account_id: bank.worth(books.currency) for bank in bank_accounts_of(books.banks)
        }
        paying = payment_account_id(business, worth)
        bank = next((bank for bank in books.banks if bank.account_id == paying), None)
        return PaymentAccount(bank.account_id, bank.name) if bank else None

    @staticmethod
    def _bill_payment_accounts(
        business: Business, books: BooksSnapshot, currencies: Iterable[str]
    ) -> dict[str, PaymentAccount]:
        """The account a bill in each of `currencies` is paid from, by the rule the Pay path
        follows (`bill_payment_account`); a currency no account can pay is left out."""
        banks = bank_accounts_of(books.banks)
        paying: dict[str, PaymentAccount] = {}
        for currency in dict.fromkeys(currencies):
            try:
                account = bill_payment_account(business, currency, banks)
            except (PayFromRefused, BusinessNotReady):
                continue
            paying[currency] = PaymentAccount(account.account_id, account.name)
        return paying

    @contextlib.asynccontextmanager
    async def one_read(self) -> AsyncIterator[None]:
        """Within it, the digests of a business (on one day, at one books version) share the
        figures the first read: bank balances, movements, pay histories. What one request draws
        (every message a click draws again) says the same and reads them once; each reads the
        documents it shows. After a write (the click's own) the figures are read again."""
        token = _ONE_READ.set({})
        try:
            yield
        finally:
            _ONE_READ.reset(token)

    async def digest(
        self,
        business_id: str,
        *,
        now: datetime | None = None,
        shown_bill_ids: Iterable[str] = (),
        rows: ShownRows = DIGEST_ROWS,
    ) -> DigestContext:
        """The digest of the business's mirror as it stands (no QuickBooks call); bills in
        `shown_bill_ids` (what a message being drawn again shows) stay listed however they stand.
        The lists are counted and summed whole; of their rows, the view holds those `rows` says
        the surface shows (the digest's first few, a page of `/runway bills`, none for the
        summary), and only those are read."""
        now = now or self.clock.now()
        read = _ONE_READ.get()
        shown = tuple(sorted(set(shown_bill_ids)))
        key = (business_id, rows, shown, self.digests.bills_due_within_days)
        # One transaction for everything the digest reads: no more round trips to the database
        # than statements. Each statement sees the latest commit, so the version is read again
        # after the mirror (below).
        async with self.uows(business_id) as uow:
            version = await books_version(uow.session, business_id)
            previous = await _previous_figures(uow.session, business_id, before=now)
            # What was read at the version that stands is what reading again would give.
            kept = self.kept_reads.get(key, version)
            if kept is not None and kept.today != business_today(now, kept.business.timezone):
                kept = None
            if kept is None:
                kept = await self._read_digest(uow, version, now, shown, rows, read)
                # Kept only if no write was committed while it was read (each statement sees the
                # latest commit): what was read may be newer than the version it would be kept at.
                if await books_version(uow.session, business_id) == version:
                    self.kept_reads.keep(key, kept)
            elif self.kept_reads.check:
                fresh = await self._read_digest(uow, version, now, shown, rows, None)
                if await books_version(uow.session, business_id) == version:
                    self.kept_reads.compare(kept, fresh)
        business, drift, books, today = kept.business, kept.drift, kept.books, kept.today
        if read is not None:
            read.setdefault((business_id, today, kept.version), books)
        # Building the view is pure computation: off the event loop, so acks to Slack are not kept
        # waiting behind it.
        view = await asyncio.to_thread(
            self.digests.build,
            books,
            now=now,
            previous=previous,
            drift=drift,
        )
        paying = self._bill_payment_accounts(
            business, books, [books.currency, *(bill.currency for bill in view.bills)]
        )
        home = paying.get(books.currency)
        return DigestContext(
            business,
            view,
            {currency: account.name for currency, account in paying.items()},
            now,
            home.account_id if home else None,
        )

    async def _read_digest(
        self,
        uow: RunwayUnitOfWork,
        version: tuple[int, int],
        now: datetime,
        shown_bill_ids: tuple[str, ...],
        rows: ShownRows,
        read: dict[_ReadAt, BooksSnapshot] | None,
    ) -> KeptRead:
        """What a digest reads of its business: the business, its open drift and its books."""
        business = await uow.business.get()
        if business is None:
            raise BusinessNotFound(f"no business with id {uow.business_id!r}")
        drift = await uow.drift.open_sentences()
        today = business_today(now, business.timezone)
        books = await load_books(
            uow,
            uow.business_id,
            today,
            shown_bill_ids=shown_bill_ids,
            rows=rows,
            within_days=self.digests.bills_due_within_days,
            figures_from=None if read is None else read.get((uow.business_id, today, version)),
        )
        return KeptRead(version, today, business, tuple(drift), books)

    # --- reconciliation -----------------------------------------------------------------------

    def reconciler(self) -> Reconciler:
        return Reconciler(self.infra, on_resolved=self._on_resolved, on_drift=self._on_drift)

    async def _on_resolved(self, resolution: Resolution) -> None:
        if resolution.operation == BILL_PAYMENT_CREATE:
            services = await self.services_for(resolution.business_id)
            await services.bills.on_payment_resolved(resolution)
        for listener in self.resolution_listeners:
            try:
                await listener(resolution)
            except Exception:
                logger.exception("a listener failed on the resolution of action %s", resolution.key)

    async def _synced(self, report: SyncReport) -> None:
        for listener in self.synced_listeners:
            try:
                await listener(report.business_id)
            except Exception:
                logger.exception("a listener failed after the sync of %s", report.business_id)

    async def _on_drift(self, report: DriftReport) -> None:
        recorder = DriftRecorder(self.uows, report.business_id, self.clock)
        await recorder.on_drift(report)
        for listener in self.drift_listeners:
            try:
                await listener(report.business_id)
            except Exception:
                logger.exception("a listener failed on drift for business %s", report.business_id)

    async def actions(self, state: ActionState | None = None) -> list[Action]:
        return list(await self.infra.ledger.list(state=state))

    async def aclose(self) -> None:
        await self.infra.aclose()
        await self.http.aclose()
