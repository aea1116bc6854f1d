"""The local mirror of each business's QuickBooks books, kept up to date with few QuickBooks calls.

`MirrorSync(uow_factory, smart_sync).sync()` brings one business's mirror tables up to date:

- **First sync (or after a long pause)**: every entity type is paged through with
  `SELECT * FROM {Entity} STARTPOSITION n MAXRESULTS 1000`, one call per 1,000 objects, stopping
  at the first short page. (An entity holding an exact multiple of 1,000 objects costs one extra,
  empty page; asking `COUNT(*)` first would cost that one call on *every* entity instead, so the
  short-page rule is the cheaper of the two.) Rows QuickBooks no longer has are marked deleted.
- **Later syncs**: one change-data-capture call for every entity type at once, for the changes since
  the oldest watermark, tombstones included. An entity whose watermark is older than CDC's 30 days,
  or for which CDC returned its ceiling of 1,000 objects (changes may be missing), is paged in full.
- CompanyInfo is not a CDC entity in QuickBooks: it is read on a full sync and when the copy is
  older than `company_info_max_age` (a day by default). Preferences (the home currency, which
  becomes the business's, and whether multicurrency is on) is: CDC covers every entity but JournalCode, TimeActivity, TaxAgency,
  TaxCode and TaxRate
  (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/changedatacapture).
- Everything that moves cash is mirrored (bill and customer payments, purchases, deposits, sales
  and refund receipts, transfers, journal entries, vendor credits, credit memos, credit-card
  payments), and each transaction's lines that can move money are kept as cash lines
  (`runway.cash_lines`) with its row.
- A foreign-currency bank account's balance, and what paying a foreign bill or collecting a foreign
  invoice comes to, need QuickBooks' rate for its currency: ExchangeRate
  has no id and is not a CDC entity, so it is read with
  `GET /exchangerate?sourcecurrencycode=EUR&asofdate=...`
  (https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies), at
  most once per currency per sync, and only when it was not read yet that day.

Every call goes through `SmartSyncService.execute_qbo_call` (rate limits, circuit, retries) at
BULK priority by default. Upserts are idempotent: a row is written only when QuickBooks' object
differs from the stored copy, so running a sync twice changes nothing the second time. Local
workflow columns (approvals, snoozes, reminders) are never touched by a sync.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update

from runway.books import business_today
from runway.cash_lines import exchange_rate_of
from runway.formatting import territory_of
from runway.models import Account, Bill, DocumentStatus, Invoice
from runway.paid_invoices import paid_invoice_ids
from runway.snapshot import DEFAULT_HISTORY_DAYS
from runway.uow import TRANSACTION_ENTITIES, MirrorRepository, RunwayUnitOfWork
from sync import (
    QBO_PLATFORM,
    Clock,
    Priority,
    QBOError,
    QBOValidationError,
    QuickBooksUnavailable,
    SmartSyncService,
    SyncStrategy,
    dumps_json_document,
    exact_cents,
)

logger = logging.getLogger(__name__)

#: QuickBooks answers at most this many objects per query page and per entity in a CDC answer.
PAGE_SIZE = 1000
#: QuickBooks' change data capture looks back at most this far.
CDC_WINDOW = timedelta(days=30)
#: A sync that creates at least this many rows has the database look at the tables again.
STATISTICS_AFTER_ROWS = 1000
#: Entity types CDC can report, in the order a first sync fills them (references before users).
CDC_ENTITIES: tuple[str, ...] = (
    "Preferences",
    "Account",
    "Vendor",
    "Customer",
    "Bill",
    "Invoice",
    "BillPayment",
    "Payment",
    "Purchase",
    "Deposit",
    *TRANSACTION_ENTITIES,
)
#: Entities QuickBooks queries (and reports in CDC) under another name than its JSON object's:
#: a credit-card payment is asked for as CreditCardPayment and answered as CreditCardPaymentTxn
#: (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/creditcardpayment;
#: python-quickbooks' CreditCardPayment.qbo_json_object_name says the same).
QUERY_NAMES: dict[str, str] = {"CreditCardPaymentTxn": "CreditCardPayment"}
COMPANY_INFO = "CompanyInfo"
MIRRORED_ENTITIES: tuple[str, ...] = (COMPANY_INFO, *CDC_ENTITIES)

FULL = "full"
CDC = "cdc"


@dataclass
class EntitySync:
    """What one sync did to one entity type's mirror."""

    mode: str
    created: int = 0
    updated: int = 0
    deleted: int = 0
    unchanged: int = 0
    #: QuickBooks objects read (pages) or reported changed (CDC) for this entity.
    received: int = 0
    #: Why a full sync was chosen ("first sync", "watermark older than CDC's 30 days", ...).
    reason: str = ""


@dataclass(frozen=True)
class SyncProgress:
    """Where paging through one entity type stands, told after each page is written."""

    entity: str
    #: Pages of this entity type read so far (QuickBooks calls).
    page: int
    #: Objects QuickBooks listed so far.
    received: int
    #: Rows created or updated so far (the rest were unchanged).
    written: int
    #: Whether that page was the last one of this entity type.
    done: bool


@dataclass
class SyncReport:
    business_id: str
    started_at: datetime
    #: The mirror reflects QuickBooks as of this instant (the start of the sync's reads).
    as_of: datetime
    finished_at: datetime
    entities: dict[str, EntitySync] = field(default_factory=dict)
    #: QuickBooks calls made (each `execute_qbo_call`, whatever retries it needed inside).
    qbo_calls: int = 0
    cdc_calls: int = 0
    page_calls: int = 0
    #: Exchange rates read (one per foreign currency of the cash accounts and the open bills and
    #: invoices, at most once a day).
    rate_calls: int = 0
    #: Time spent in QuickBooks calls (waiting for a rate-limit slot included); pages are
    #: fetched while the previous one is written, so this overlaps the database work.
    qbo_seconds: float = 0.0
    #: Time spent writing what QuickBooks answered into the mirror (columns, rows, cash lines,
    #: commits), summed over pages and CDC answers; it overlaps the next page's fetch.
    write_seconds: float = 0.0

    @property
    def created(self) -> int:
        return sum(entity.created for entity in self.entities.values())

    @property
    def updated(self) -> int:
        return sum(entity.updated for entity in self.entities.values())

    @property
    def deleted(self) -> int:
        return sum(entity.deleted for entity in self.entities.values())

    @property
    def changed(self) -> int:
        return self.created + self.updated + self.deleted

    @property
    def full_entities(self) -> list[str]:
        return [name for name, entity in self.entities.items() if entity.mode == FULL]

    def summary(self) -> str:
        parts = [
            f"{name} {entity.mode} +{entity.created} ~{entity.updated} -{entity.deleted}"
            for name, entity in self.entities.items()
        ]
        return f"{self.qbo_calls} QuickBooks calls; " + ", ".join(parts)


# --- from QuickBooks JSON to mirror columns ---------------------------------------------------


def _ref(obj: Mapping[str, Any], key: str) -> tuple[str | None, str | None]:
    ref = obj.get(key)
    if not isinstance(ref, Mapping):
        return None, None
    value = ref.get("value")
    name = ref.get("name")
    return (None if value is None else str(value)), (None if name is None else str(name))


def _money(value: Any, what: str) -> Decimal | None:
    return None if value is None else exact_cents(value, what)


def _date(value: Any) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def qbo_time(value: Any) -> datetime | None:
    """A QuickBooks timestamp ("2026-11-25T15:32:11-08:00") as an aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"QuickBooks sent a timestamp without a UTC offset: {value!r}")
    return parsed.astimezone(UTC)


def _email(obj: Mapping[str, Any], key: str) -> str | None:
    holder = obj.get(key)
    if isinstance(holder, Mapping) and holder.get("Address"):
        return str(holder["Address"])
    return None


def _linked(obj: Mapping[str, Any], txn_type: str) -> list[str]:
    ids: list[str] = []
    for line in obj.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == txn_type and str(link.get("TxnId")) not in ids:
                ids.append(str(link.get("TxnId")))
    return ids


def _total(obj: Mapping[str, Any], entity: str) -> Decimal:
    amount = _money(obj.get("TotalAmt", 0), f"{entity} {obj.get('Id')} TotalAmt")
    assert amount is not None
    return amount


def _currency(obj: Mapping[str, Any]) -> str | None:
    return _ref(obj, "CurrencyRef")[0]


def _rate(obj: Mapping[str, Any]) -> Decimal | None:
    """QuickBooks' ExchangeRate of a transaction, None when it has none (the home currency)."""
    return None if obj.get("ExchangeRate") is None else exchange_rate_of(obj)


def _preferences(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    prefs = obj.get("CurrencyPrefs") or {}
    return {
        "home_currency": _ref(prefs, "HomeCurrency")[0],
        "multicurrency_enabled": bool(prefs.get("MultiCurrencyEnabled", False)),
    }


def _transaction(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    total = obj.get("TotalAmt", obj.get("Amount"))
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "doc_number": obj.get("DocNumber"),
        "total_amount": _money(total, f"{obj.get('Id')} total"),
        "currency": _currency(obj),
        "exchange_rate": _rate(obj),
        "private_note": obj.get("PrivateNote"),
    }


def company_country(info: Mapping[str, Any]) -> str | None:
    """The country of a QuickBooks company, from its CompanyInfo: `Country`, else the country of
    its company or legal address ("US", "GB"; newer answers give ISO alpha-3, "USA")."""
    for found in (
        info.get("Country"),
        (info.get("CompanyAddr") or {}).get("Country"),
        (info.get("LegalAddr") or {}).get("Country"),
    ):
        if isinstance(found, str) and found.strip():
            return found.strip()
    return None


def _country_code(info: Mapping[str, Any]) -> str | None:
    """The company's country as its ISO code where it names one ("United Kingdom" -> "GB": the
    column holds 8 letters), else as QuickBooks wrote it, cut to fit."""
    found = company_country(info)
    return None if found is None else territory_of(found) or found[:8]


def _company_info(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    return {
        "company_name": obj.get("CompanyName"),
        "legal_name": obj.get("LegalName"),
        "country": _country_code(obj),
        "default_timezone": obj.get("DefaultTimeZone"),
        "fiscal_year_start_month": obj.get("FiscalYearStartMonth"),
        "email": _email(obj, "Email"),
    }


def _account(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    return {
        "name": str(obj.get("Name") or ""),
        "fully_qualified_name": obj.get("FullyQualifiedName"),
        "account_type": obj.get("AccountType"),
        "account_sub_type": obj.get("AccountSubType"),
        "classification": obj.get("Classification"),
        "active": bool(obj.get("Active", True)),
        "current_balance": _money(obj.get("CurrentBalance"), f"Account {obj.get('Id')} balance"),
        "currency": _currency(obj),
        "balance_as_of": fetched_at,
    }


def _contact(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    return {
        "display_name": str(obj.get("DisplayName") or ""),
        "company_name": obj.get("CompanyName"),
        "email": _email(obj, "PrimaryEmailAddr"),
        "active": bool(obj.get("Active", True)),
        "balance": _money(obj.get("Balance"), f"{obj.get('DisplayName')} balance"),
        "currency": _currency(obj),
    }


def _bill(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    total = _total(obj, "Bill")
    balance = _money(obj.get("Balance", total), f"Bill {obj.get('Id')} Balance") or Decimal("0")
    vendor_id, vendor_name = _ref(obj, "VendorRef")
    return {
        "doc_number": obj.get("DocNumber"),
        "vendor_qbo_id": vendor_id,
        "vendor_name": vendor_name,
        "txn_date": _date(obj.get("TxnDate")),
        "due_date": _date(obj.get("DueDate")),
        "total_amount": total,
        "balance": balance,
        "currency": _currency(obj),
        "exchange_rate": _rate(obj),
        "private_note": obj.get("PrivateNote"),
        "status": DocumentStatus.of(total, balance).value,
    }


def _invoice(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    total = _total(obj, "Invoice")
    balance = _money(obj.get("Balance", total), f"Invoice {obj.get('Id')} Balance") or Decimal("0")
    customer_id, customer_name = _ref(obj, "CustomerRef")
    return {
        "doc_number": obj.get("DocNumber"),
        "customer_qbo_id": customer_id,
        "customer_name": customer_name,
        "txn_date": _date(obj.get("TxnDate")),
        "due_date": _date(obj.get("DueDate")),
        "total_amount": total,
        "balance": balance,
        "currency": _currency(obj),
        "exchange_rate": _rate(obj),
        "bill_email": _email(obj, "BillEmail"),
        "email_status": obj.get("EmailStatus"),
        "private_note": obj.get("PrivateNote"),
        "status": DocumentStatus.of(total, balance).value,
    }


def _bill_payment(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    vendor_id, vendor_name = _ref(obj, "VendorRef")
    source = obj.get("CheckPayment") or {}
    account_id = _ref(source, "BankAccountRef")[0]
    if account_id is None:
        account_id = _ref(obj.get("CreditCardPayment") or {}, "CCAccountRef")[0]
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "vendor_qbo_id": vendor_id,
        "vendor_name": vendor_name,
        "pay_type": obj.get("PayType"),
        "paid_from_account_qbo_id": account_id,
        "total_amount": _total(obj, "BillPayment"),
        "currency": _currency(obj),
        "exchange_rate": _rate(obj),
        "private_note": obj.get("PrivateNote"),
        "bill_qbo_ids": _linked(obj, "Bill"),
    }


def _customer_payment(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    customer_id, customer_name = _ref(obj, "CustomerRef")
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "customer_qbo_id": customer_id,
        "customer_name": customer_name,
        "deposit_to_account_qbo_id": _ref(obj, "DepositToAccountRef")[0],
        "total_amount": _total(obj, "Payment"),
        "unapplied_amount": _money(obj.get("UnappliedAmt"), f"Payment {obj.get('Id')} unapplied"),
        "currency": _currency(obj),
        "private_note": obj.get("PrivateNote"),
        "invoice_qbo_ids": paid_invoice_ids(obj),
    }


def _purchase(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    payee = obj.get("EntityRef") or {}
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "account_qbo_id": _ref(obj, "AccountRef")[0],
        "payment_type": obj.get("PaymentType"),
        "payee_qbo_id": None if payee.get("value") is None else str(payee["value"]),
        "payee_name": payee.get("name"),
        "payee_type": payee.get("type"),
        "total_amount": _total(obj, "Purchase"),
        "credit": bool(obj.get("Credit", False)),
        "currency": _currency(obj),
        "private_note": obj.get("PrivateNote"),
    }


def _deposit(obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    return {
        "txn_date": _date(obj.get("TxnDate")),
        "deposit_to_account_qbo_id": _ref(obj, "DepositToAccountRef")[0],
        "total_amount": _total(obj, "Deposit"),
        "currency": _currency(obj),
        "private_note": obj.get("PrivateNote"),
    }


#: How each entity's QuickBooks JSON becomes its mirror row's typed columns.
COLUMNS: dict[str, Callable[[Mapping[str, Any], datetime], dict[str, Any]]] = {
    COMPANY_INFO: _company_info,
    "Preferences": _preferences,
    "Account": _account,
    "Vendor": _contact,
    "Customer": _contact,
    "Bill": _bill,
    "Invoice": _invoice,
    "BillPayment": _bill_payment,
    "Payment": _customer_payment,
    "Purchase": _purchase,
    "Deposit": _deposit,
    **{entity: _transaction for entity in TRANSACTION_ENTITIES},
}


def mirror_values(entity: str, obj: Mapping[str, Any], fetched_at: datetime) -> dict[str, Any]:
    """Every mirrored column of a row for QuickBooks object `obj` of type `entity`."""
    meta = obj.get("MetaData") or {}
    return {
        "qbo_id": str(obj["Id"]),
        "sync_token": str(obj.get("SyncToken", "0")),
        "qbo_created_at": qbo_time(meta.get("CreateTime")),
        "qbo_updated_at": qbo_time(meta.get("LastUpdatedTime")),
        "raw": dict(obj),
        "synced_at": fetched_at,
        "deleted_at": None,
        **COLUMNS[entity](obj, fetched_at),
    }


def _is_tombstone(obj: Mapping[str, Any]) -> bool:
    return str(obj.get("status", "")).lower() == "deleted"


async def _confirm_balances(uow: RunwayUnitOfWork, entity: str, as_of: datetime) -> None:
    """Every live account's balance is now known to be QuickBooks' as of `as_of`: CDC omits the
    unchanged ones, but their balance is as current as the changed ones' (the digest shows it)."""
    if entity != "Account":
        return
    await uow.session.execute(
        update(Account)
        .where(
            Account.business_id == uow.business_id,
            Account.deleted_at.is_(None),
            Account.balance_as_of < as_of,
        )
        .values(balance_as_of=as_of)
    )


async def _adopt_home_currency(uow: RunwayUnitOfWork, entity: str) -> None:
    """The business's home currency is its QuickBooks company's (Preferences.CurrencyPrefs), so
    everything reading `Business.home_currency` reads QuickBooks' own."""
    if entity != "Preferences":
        return
    preferences = next(iter(await uow.preferences.all()), None)
    business = await uow.business.get()
    home = preferences.home_currency if preferences is not None else None
    if business is not None and home and business.home_currency != home:
        business.home_currency = home


async def _keep_payment_rates(
    repository: MirrorRepository[Any], payments: Sequence[Mapping[str, Any]]
) -> None:
    """A foreign bill paid in QuickBooks keeps the rate its payment booked at (the BillPayment's
    ExchangeRate), so what it cost in the home currency is not redrawn at a later rate. A bill
    Oodaloo paid already keeps the rate its payment was sent with; a bill paid by several of
    `payments` keeps the first one's."""
    rate_of: dict[str, Decimal] = {}
    for payment in payments:
        rate = payment.get("exchange_rate")
        if rate is not None:
            for bill_id in payment.get("bill_qbo_ids") or []:
                rate_of.setdefault(bill_id, rate)
    # One statement per rate (and page of bills), not one per payment.
    bills_at: dict[str, tuple[Decimal, list[str]]] = {}
    for bill_id, rate in rate_of.items():
        bills_at.setdefault(str(rate), (rate, []))[1].append(bill_id)
    for rate, bill_ids in bills_at.values():
        for start in range(0, len(bill_ids), PAGE_SIZE):
            await repository.session.execute(
                update(Bill)
                .where(
                    Bill.business_id == repository.business_id,
                    Bill.qbo_id.in_(bill_ids[start : start + PAGE_SIZE]),
                    Bill.payment_exchange_rate.is_(None),
                )
                .values(payment_exchange_rate=rate)
                .execution_options(synchronize_session=False)
            )


async def _open_document_currencies(uow: RunwayUnitOfWork, home: str) -> set[str]:
    """The foreign currencies of the business's open bills and invoices."""
    found: set[str] = set()
    for model in (Bill, Invoice):
        rows = await uow.session.execute(
            select(model.currency)
            .where(
                model.business_id == uow.business_id,
                model.deleted_at.is_(None),
                model.balance > 0,
                model.currency.is_not(None),
                model.currency != home,
            )
            .distinct()
        )
        found.update(str(currency) for currency in rows.scalars())
    return found


# --- the sync ------------------------------------------------------------------------------


class MirrorSync:
    """Keeps one business's mirror tables equal to its QuickBooks company."""

    def __init__(
        self,
        uow_factory: Callable[[str], RunwayUnitOfWork],
        smart_sync: SmartSyncService,
        *,
        priority: Priority = Priority.BULK,
        clock: Clock | None = None,
        page_size: int = PAGE_SIZE,
        cdc_overlap: timedelta | None = None,
        company_info_max_age: timedelta = timedelta(days=1),
        progress: Callable[[SyncProgress], None] | None = None,
        on_synced: Callable[[SyncReport], Awaitable[None]] | None = None,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and QuickBooks' {PAGE_SIZE}")
        self.uow_factory = uow_factory
        self.smart_sync = smart_sync
        self.business_id = smart_sync.business_id
        self.priority = priority
        self.clock: Clock = clock or smart_sync.infra.clock
        self.page_size = page_size
        # Each CDC asks again for a little before the previous sync started, so a change stamped
        # by QuickBooks' clock slightly behind ours is never missed (re-read changes are no-ops).
        self.cdc_overlap = (
            smart_sync.infra.settings.clock_skew if cdc_overlap is None else cdc_overlap
        )
        self.company_info_max_age = company_info_max_age
        #: Told where paging stands after each page is written: long first syncs show progress.
        #: A plain function: showing it (a terminal, a log) is the caller's business.
        self.progress = progress
        #: Told after each successful sync: what shows the books (the channel's messages) follows.
        self.on_synced = on_synced

    async def sync(
        self, *, full: bool = False, strategy: SyncStrategy = SyncStrategy.IDLE
    ) -> SyncReport:
        """Bring the mirror up to date (a full sync when `full` or when CDC cannot cover the gap)."""
        try:
            # One sync per business at a time, across processes: two at once would insert the same
            # new objects twice. A second caller waits (up to the lock's acquire timeout, then
            # LockTimeout) and then only has the last changes to fetch.
            async with self.smart_sync.infra.locks(f"mirror-sync:{self.business_id}"):
                report = await self._sync(full=full)
        except Exception as exc:
            await self.smart_sync.record_sync(
                QBO_PLATFORM, strategy, success=False, error=f"{type(exc).__name__}: {exc}"
            )
            raise
        await self.smart_sync.record_sync(QBO_PLATFORM, strategy, success=True)
        logger.info(
            "mirror sync of %s: %s",
            self.business_id,
            report.summary(),
            extra={"business_id": self.business_id, "qbo_calls": report.qbo_calls},
        )
        if self.on_synced is not None:
            try:
                await self.on_synced(report)
            except Exception:  # the books are synced; only their display lags
                logger.exception("could not show the sync of %s", self.business_id)
        return report

    async def _sync(self, *, full: bool) -> SyncReport:
        started = self.clock.now()
        report = SyncReport(self.business_id, started, started, started)
        async with self.uow_factory(self.business_id) as uow:
            business = await uow.business.get()
            if business is None:
                raise LookupError(
                    f"business {self.business_id!r} does not exist: create it before syncing"
                )
            timezone = business.timezone
            # Plain values: the rows expire when this unit of work closes.
            marks = {
                entity: (mark.last_cdc_at, mark.as_of)
                for entity, mark in (await uow.watermarks.all()).items()
            }

        # Which entity types CDC can bring up to date, and which must be paged through.
        oldest_cdc_allowed = started - CDC_WINDOW + self.cdc_overlap
        to_page: dict[str, str] = {}
        cdc_since: dict[str, datetime] = {}
        for entity in CDC_ENTITIES:
            last_cdc_at = marks.get(entity, (None, None))[0]
            if full:
                to_page[entity] = "full sync requested"
            elif last_cdc_at is None:
                to_page[entity] = "first sync"
            elif last_cdc_at < oldest_cdc_allowed:
                to_page[entity] = "watermark older than CDC's 30 days"
            else:
                cdc_since[entity] = last_cdc_at
        info_as_of = marks.get(COMPANY_INFO, (None, None))[1]
        if full or info_as_of is None:
            to_page[COMPANY_INFO] = "full sync requested" if full else "first sync"
        elif info_as_of < started - self.company_info_max_age:
            to_page[COMPANY_INFO] = f"copy older than {self.company_info_max_age}"

        next_cdc_at = started - self.cdc_overlap
        if cdc_since:
            overflowed = await self._apply_cdc(report, cdc_since, next_cdc_at)
            to_page.update(overflowed)

        for entity in MIRRORED_ENTITIES:  # a fixed order: referenced objects first
            if entity in to_page:
                await self._page_entity(report, entity, to_page[entity], started, next_cdc_at)

        await self._read_exchange_rates(report, started)
        await self._keep_lateness(timezone)
        if report.created >= STATISTICS_AFTER_ROWS:
            async with self.uow_factory(self.business_id) as uow:
                await uow.refresh_statistics()
                await uow.commit()
        report.finished_at = self.clock.now()
        return report

    async def _keep_lateness(self, timezone: str) -> None:
        """Each customer's typical lateness as of the business's day, kept for the snapshots
        read until a payment or an invoice is next written."""
        today = business_today(self.clock.now(), timezone)
        async with self.uow_factory(self.business_id) as uow:
            await uow.paid_invoices.keep_lateness(today - timedelta(days=DEFAULT_HISTORY_DAYS))
            await uow.commit()

    async def _read_exchange_rates(self, report: SyncReport, started: datetime) -> None:
        """QuickBooks' rate for each foreign currency of the bank and Undeposited Funds accounts
        and of the open bills and invoices, read once per currency and day (the rate QuickBooks keeps is a daily one). A rate that
        cannot be read now keeps the last one read; the cash figures say which they lack."""
        day = started.astimezone(UTC).date()
        async with self.uow_factory(self.business_id) as uow:
            business = await uow.business.get()
            preferences = next(iter(await uow.preferences.all()), None)
            if business is None or preferences is None or not preferences.multicurrency_enabled:
                return
            home = preferences.home_currency or business.home_currency
            held = {
                account.currency
                for account in await uow.accounts.cash_accounts()
                if account.currency and account.currency != home
            }
            # Paying a foreign bill (collecting an invoice) books at QuickBooks' rate of the day,
            # whether or not the business holds that currency.
            held |= await _open_document_currencies(uow, home)
            known = await uow.exchange_rates.all()
        # Read today already: QuickBooks' latest rate may be dated earlier (no rate on a weekend).
        wanted = sorted(
            c for c in held if c not in known or known[c].fetched_at.astimezone(UTC).date() < day
        )
        for currency in wanted:
            report.rate_calls += 1
            try:
                found = await self._call(report, "exchange_rate", currency, day)
            except (QBOError, QuickBooksUnavailable) as error:
                logger.warning(
                    "could not read QuickBooks' %s exchange rate: %s",
                    currency,
                    error,
                    extra={"business_id": self.business_id},
                )
                continue
            rate = found.get("Rate") if isinstance(found, Mapping) else None
            if isinstance(rate, int) and not isinstance(rate, bool):
                rate = Decimal(rate)
            if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
                logger.warning(
                    "QuickBooks answered the %s exchange rate without a positive Rate: %r",
                    currency,
                    found,
                    extra={"business_id": self.business_id},
                )
                continue
            as_of = _date(found.get("AsOfDate")) or day
            async with self.uow_factory(self.business_id) as uow:
                await uow.exchange_rates.save(currency, rate, as_of, self.clock.now())
                await uow.commit()

    async def _call(self, report: SyncReport, operation: str, *args: Any) -> Any:
        report.qbo_calls += 1
        began = self.clock.monotonic()
        try:
            return await self.smart_sync.execute_qbo_call(operation, *args, priority=self.priority)
        finally:
            report.qbo_seconds += self.clock.monotonic() - began

    async def _apply_cdc(
        self, report: SyncReport, since: Mapping[str, datetime], next_cdc_at: datetime
    ) -> dict[str, str]:
        """One CDC call for every entity in `since`; returns the entities it could not cover,
        each with the reason to page it instead."""
        entities = [entity for entity in CDC_ENTITIES if entity in since]
        changed_since = min(since.values())
        fetched_at = self.clock.now()
        report.cdc_calls += 1
        try:
            changes: dict[str, list[dict[str, Any]]] = await self._call(
                report,
                "cdc",
                [QUERY_NAMES.get(entity, entity) for entity in entities],
                changed_since,
            )
        except QBOValidationError as error:
            if "changedsince" not in f"{error.message} {error.detail}".lower():
                raise
            # QuickBooks' clock put the watermark past its 30 days after all: page everything.
            logger.warning(
                "QuickBooks refused CDC since %s (%s); paging every entity instead",
                changed_since.isoformat(),
                error,
                extra={"business_id": self.business_id},
            )
            return {entity: "QuickBooks refused CDC since the watermark" for entity in entities}
        overflowed: dict[str, str] = {}
        for entity in entities:
            objects = changes.get(entity, [])
            if len(objects) >= PAGE_SIZE:
                # The answer was cut at QuickBooks' ceiling: page this entity instead.
                overflowed[entity] = f"CDC returned its ceiling of {PAGE_SIZE} objects"
                continue
            counts = report.entities.setdefault(entity, EntitySync(CDC))
            counts.received += len(objects)
            began = self.clock.monotonic()
            async with self.uow_factory(self.business_id) as uow:
                await self._upsert(uow.mirror(entity), entity, objects, fetched_at, counts)
                await uow.watermarks.save(entity, as_of=fetched_at, last_cdc_at=next_cdc_at)
                await _confirm_balances(uow, entity, fetched_at)
                await _adopt_home_currency(uow, entity)
                await uow.commit()
            report.write_seconds += self.clock.monotonic() - began
        return overflowed

    async def _page_entity(
        self,
        report: SyncReport,
        entity: str,
        reason: str,
        started: datetime,
        next_cdc_at: datetime,
    ) -> None:
        counts = report.entities[entity] = EntitySync(FULL, reason=reason)
        seen: set[str] = set()
        async with self.uow_factory(self.business_id) as uow:
            # Nothing mirrored yet: every object listed is new (`seen` leaves out one listed on
            # two pages), so no page looks its objects up.
            empty = await uow.mirror(entity).is_empty()

        async def fetch(start: int) -> tuple[datetime, list[dict[str, Any]]]:
            fetched_at = self.clock.now()
            report.page_calls += 1
            page: dict[str, Any] = await self._call(
                report,
                "query_page",
                f"SELECT * FROM {QUERY_NAMES.get(entity, entity)} "
                f"STARTPOSITION {start} MAXRESULTS {self.page_size}",
            )
            return fetched_at, list(page.get(entity) or [])

        # While one page is written to the database the next one is already being fetched; the
        # next is asked for only after a full page, so the number of calls stays at its minimum.
        start = 1
        page = 0
        pending: asyncio.Task[tuple[datetime, list[dict[str, Any]]]] | None
        pending = asyncio.create_task(fetch(start))
        try:
            while pending is not None:
                fetched_at, rows = await pending
                pending = None
                page += 1
                if len(rows) >= self.page_size:
                    start += self.page_size
                    pending = asyncio.create_task(fetch(start))
                began = self.clock.monotonic()
                objects = [obj for obj in rows if str(obj.get("Id")) not in seen]
                counts.received += len(objects)
                seen.update(str(obj["Id"]) for obj in objects)
                async with self.uow_factory(self.business_id) as uow:
                    await self._upsert(
                        uow.mirror(entity), entity, objects, fetched_at, counts, full=True,
                        new=empty,
                    )
                    await uow.commit()
                report.write_seconds += self.clock.monotonic() - began
                self._tell(
                    SyncProgress(
                        entity,
                        page,
                        counts.received,
                        counts.created + counts.updated,
                        done=pending is None,
                    )
                )
        finally:
            if pending is not None:  # the write failed: do not leave the next fetch running
                pending.cancel()
                await asyncio.gather(pending, return_exceptions=True)
        # Whatever the mirror still has that QuickBooks no longer lists was deleted meanwhile.
        async with self.uow_factory(self.business_id) as uow:
            repository = uow.mirror(entity)
            gone = await repository.live_qbo_ids() - seen
            if gone:
                counts.deleted += await repository.mark_deleted(gone, self.clock.now())
            await uow.watermarks.save(
                entity,
                as_of=started,
                last_cdc_at=None if entity == COMPANY_INFO else next_cdc_at,
                last_full_sync_at=started,
            )
            await _confirm_balances(uow, entity, started)
            await _adopt_home_currency(uow, entity)
            await uow.commit()

    def _tell(self, progress: SyncProgress) -> None:
        if self.progress is None:
            return
        try:
            self.progress(progress)
        except Exception:  # the books are being synced; only the display of it failed
            logger.exception("could not show the progress of the sync of %s", self.business_id)
            self.progress = None

    async def _upsert(
        self,
        repository: MirrorRepository[Any],
        entity: str,
        objects: Sequence[Mapping[str, Any]],
        fetched_at: datetime,
        counts: EntitySync,
        *,
        full: bool = False,
        new: bool = False,
    ) -> None:
        """Write what changed. A full page also fills in the cash lines of unchanged objects that
        have none (a mirror from before they were kept). `new`: none of `objects` is mirrored
        (an object another writer mirrors meanwhile is left as it is, as when looked up)."""
        latest: dict[str, Mapping[str, Any]] = {}
        for obj in objects:  # one answer may list an object twice: the last word wins
            latest[str(obj["Id"])] = obj
        tombstones = [qbo_id for qbo_id, obj in latest.items() if _is_tombstone(obj)]
        live = {qbo_id: obj for qbo_id, obj in latest.items() if not _is_tombstone(obj)}
        if tombstones:
            counts.deleted += await repository.mark_deleted(tombstones, fetched_at)
        stored = {} if new else await repository.stored_versions(list(live))
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        unchanged: list[Mapping[str, Any]] = []
        for qbo_id, obj in live.items():
            version = stored.get(qbo_id)
            if version is None:
                inserts.append(mirror_values(entity, obj, fetched_at))
            elif version.deleted or version.raw_json != dumps_json_document(obj):
                updates.append({"id": version.row_id, **mirror_values(entity, obj, fetched_at)})
            else:
                counts.unchanged += 1
                unchanged.append(obj)
        await repository.insert_many(inserts)
        await repository.update_many(updates)
        if entity == "BillPayment":
            await _keep_payment_rates(repository, [*inserts, *updates])
        if full:
            await repository.write_cash_lines(unchanged, only_missing=True)
        counts.created += len(inserts)
        counts.updated += len(updates)


__all__ = [
    "CDC_ENTITIES",
    "CDC_WINDOW",
    "MIRRORED_ENTITIES",
    "PAGE_SIZE",
    "EntitySync",
    "MirrorSync",
    "SyncProgress",
    "SyncReport",
    "company_country",
    "mirror_values",
    "qbo_time",
]
