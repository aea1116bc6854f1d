"""Businesses (Oodaloo's tenants) and their QuickBooks connections.

`BusinessDirectory` creates, reads and updates a business and connects it to its QuickBooks company,
storing the OAuth tokens encrypted (`runway.crypto.TokenCipher`). `directory.tokens_for` is what
`SyncInfrastructure(tokens_for=...)` needs: for a realm id it gives a token provider that reads the
stored tokens, refreshes them through QuickBooks when they are about to expire, and saves the rotated
ones (encrypted) before they are used, so a refreshed refresh token is never lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from runway.books import BankBalance
from runway.crypto import TokenCipher
from runway.errors import BusinessNotReady, PaymentRefused
from runway.formatting import check_locale, locale_for_country
from runway.models import Business, ConnectionStatus, PersonRecord, QBOConnection
from runway.people import canonical, is_email
from sync import (
    PROCESS_REALM_LOCKS,
    PRODUCTION_TOKEN_URL,
    Clock,
    OAuthTokenProvider,
    OAuthTokens,
    QBOTokenError,
    RealmLockFactory,
    SystemClock,
    TokenProvider,
    for_business,
)


class BusinessNotFound(LookupError):
    """No business (or connection) with that id: it never existed, or it is another tenant's."""


class NotConnected(QBOTokenError, LookupError):
    """The business has no QuickBooks connection, or it needs to be reconnected.

    A `QBOTokenError`, so SmartSyncService treats it like any refused token: nothing was sent,
    nothing is retried, a payment stays pending until the owner reconnects.
    """


class NotAnApprover(PermissionError):
    """Only an approver of the business may change its connection, settings, approvers or channel."""


class ChannelTaken(ValueError):
    """The Slack channel already belongs to another business (a channel has at most one)."""

    def __init__(self, channel_id: str) -> None:
        super().__init__(channel_taken_message())
        self.channel_id = channel_id


def channel_taken_message(channel: str = "That channel") -> str:
    """The refusal, naming the channel as the surface can (`#finance`, a Slack mention)."""
    return (
        f"{channel} already belongs to another business in Oodaloo; choose another channel, or "
        "ask that business's approvers to move its digest elsewhere first."
    )


#: Fields of a Business that `update` may change (the id and realm are fixed once created).
UPDATABLE_FIELDS = frozenset(
    {
        "name",
        "timezone",
        "home_currency",
        "locale",
        "digest_weekday",
        "digest_local_time",
        "approvers",
        "approval_threshold",
        "min_cash_buffer",
        "slack_team_id",
        "slack_channel_id",
        "email_recipients",
        "payment_bank_account_id",
        "reminder_interval_days",
    }
)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    # A name too long for a file name is an OSError from the zone lookup, not a ZoneInfoNotFoundError.
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"{name!r} is not an IANA timezone; use a name like 'America/Chicago'"
        ) from exc
    return name


def _check_fields(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - UPDATABLE_FIELDS
    if unknown:
        raise ValueError(
            f"cannot set {', '.join(sorted(unknown))} on a business; "
            f"settable fields: {', '.join(sorted(UPDATABLE_FIELDS))}"
        )
    if "timezone" in changes:
        check_timezone(str(changes["timezone"]))
    if "locale" in changes:
        check_locale(changes["locale"])
    for money in ("approval_threshold", "min_cash_buffer"):
        if money in changes:
            value = changes[money]
            if not isinstance(value, Decimal) or value < 0:
                raise ValueError(f"{money} must be a Decimal of zero or more, got {value!r}")
    if "digest_local_time" in changes and not isinstance(changes["digest_local_time"], time):
        raise ValueError("digest_local_time must be a datetime.time (local to the business)")
    weekday = changes.get("digest_weekday")
    if weekday is not None and not (isinstance(weekday, int) and 0 <= weekday <= 6):
        raise ValueError("digest_weekday must be 0 (Monday) to 6 (Sunday)")


def payment_account_id(business: Business, bank_balances: Mapping[str, Decimal]) -> str | None:
    """The bank account the business's bills are paid from, among its bank accounts
    (QuickBooks id -> balance in the home currency, `BankBalance.home_balance`): the one it
    chose, else its largest (None: it has no bank account).

    A chosen account that is no longer one of its bank accounts (closed, made inactive) is passed
    over, as if none had been chosen. A bill in a foreign currency is paid from
    `bill_payment_account`, which keeps to this choice where QuickBooks allows it.
    """
    chosen = business.payment_bank_account_id
    if chosen and chosen in bank_balances:
        return chosen
    return _largest(bank_balances)


def _largest(home_balances: Mapping[str, Decimal]) -> str | None:
    """The account holding the most, by the balances given (in the home currency: £100 is not
    more than $120); a tie goes to the same account every time."""
    if not home_balances:
        return None
    return max(home_balances, key=lambda account_id: (home_balances[account_id], account_id))


@dataclass(frozen=True)
class BankAccount:
    """One of the business's bank accounts, as a payment needs it."""

    account_id: str
    name: str
    #: The account's own currency (QuickBooks' CurrencyRef; the home currency when it gives none).
    currency: str
    balance: Decimal
    #: The balance in the home currency at QuickBooks' latest rate (`BankBalance.home_balance`);
    #: None when it is not given (a foreign account whose rate is not known yet). An account in
    #: the home currency needs none: its balance is its home balance.
    home_balance: Decimal | None = None

    def worth(self, home_currency: str) -> Decimal:
        """What the account holds, to compare it with accounts in other currencies: in the home
        currency; a foreign account whose home balance is not known, as it stands (its rate is
        read at every sync, so this lasts until the next one at most)."""
        if self.currency == home_currency or self.home_balance is None:
            return self.balance
        return self.home_balance


def bank_accounts_of(banks: Iterable[BankBalance]) -> list[BankAccount]:
    """The bank accounts of a snapshot as a payment chooses among them (home balances kept)."""
    return [
        BankAccount(bank.account_id, bank.name, bank.currency, bank.balance, bank.home_balance)
        for bank in banks
    ]


class PayFromRefused(PaymentRefused):
    """No bank account of the business can pay this bill; the reason says what to do."""


def bill_payment_account(
    business: Business,
    bill_currency: str | None,
    banks: Sequence[BankAccount],
    *,
    chosen_id: str | None = None,
) -> BankAccount:
    """The bank account a bill is paid from, or `PayFromRefused` saying why none can
    (`BusinessNotReady` when the business has no bank account at all).
    `chosen_id` (this payment's own choice) stands in for the business's chosen account.

    QuickBooks pays a bill only from a bank account in the bill's currency or in the home
    currency ("when recording payments, you can only use your home currency bank account, or a
    bank account with the same currency as the invoice or bill":
    https://quickbooks.intuit.com/learn-support/en-sg/help-article/multicurrency/receiving-making-payment-foreign-invoice-bill/L1weZLBmC_SG_en_SG).
    The account the business chose pays if it can, and a chosen account that cannot is refused
    (the person chose it; Oodaloo does not pay from another behind their back). Without a choice
    (or one no longer among its bank accounts), the account `payment_account_id` names pays, as
    the digest says; if it cannot pay this bill, the largest account in the bill's own currency,
    else the largest in the home currency. A bill without a currency is in the home currency, as
    QuickBooks sends it for a company without multicurrency.
    """
    home = business.home_currency
    currency = bill_currency or home
    allowed = (currency, home)
    choice = chosen_id or business.payment_bank_account_id
    chosen = next((b for b in banks if b.account_id == choice), None)
    if chosen is not None and chosen.currency not in allowed:
        raise PayFromRefused(
            f"{_pay_in(currency, home)} — {chosen.name} ({chosen.currency}) can't pay it. "
            "Choose the pay-from account in `/runway settings`."
        )
    default_id = (
        chosen.account_id
        if chosen is not None
        else _largest({b.account_id: b.worth(home) for b in banks})
    )
    default = next((b for b in banks if b.account_id == default_id), None)
    if default is not None and default.currency in allowed:
        return default
    for wanted in dict.fromkeys(allowed):  # the bill's own currency first: nothing converted
        # Accounts of one currency compare as they are, whether or not its rate is known.
        picked = _largest({b.account_id: b.balance for b in banks if b.currency == wanted})
        if picked is not None:
            return next(b for b in banks if b.account_id == picked)
    if not banks:
        raise BusinessNotReady(
            f"{business.name} has no bank account in QuickBooks to pay bills from; add one in "
            "QuickBooks, then choose it in `/runway settings`."
        )
    raise PayFromRefused(
        f"{_pay_in(currency, home)}; {business.name} has no such bank account in QuickBooks. "
        "Add one in QuickBooks, then choose it in `/runway settings`."
    )


def _pay_in(currency: str, home: str) -> str:
    if currency == home:
        return f"This bill is in {home}; pay it from a {home} account"
    return f"This bill is in {currency}; pay it from a {currency} account or a {home} account"


@dataclass(frozen=True)
class QBOAppCredentials:
    """The Intuit app's OAuth client (from the application's settings) and its token endpoint."""

    client_id: str
    client_secret: str = ""
    token_url: str = PRODUCTION_TOKEN_URL

    def __repr__(self) -> str:  # the secret stays out of logs
        return f"QBOAppCredentials(client_id={self.client_id!r}, token_url={self.token_url!r})"


class BusinessDirectory:
    """Create, read and update businesses and their QuickBooks connections."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.sessions = sessions
        self.cipher = cipher
        self.clock: Clock = clock or SystemClock()

    # --- businesses ------------------------------------------------------------------------

    async def create(self, business_id: str, name: str, timezone: str, **fields: Any) -> Business:
        """A new business; ValueError if the id (or realm) is taken or a field is invalid."""
        realm_id = fields.pop("realm_id", None)
        _check_fields(fields)
        check_timezone(timezone)
        now = self.clock.now()
        business = Business(
            id=business_id,
            name=name,
            timezone=timezone,
            realm_id=realm_id,
            created_at=now,
            updated_at=now,
            **fields,
        )
        async with self.sessions() as session:
            if await session.get(Business, business_id) is not None:
                raise ValueError(f"a business with id {business_id!r} already exists")
            if realm_id is not None and await self._by_realm(session, realm_id) is not None:
                raise ValueError(f"QuickBooks company {realm_id} already belongs to a business")
            await self._check_channel_free(session, business)
            session.add(business)
            await self._commit(session, business)
            await session.refresh(business)
        return business

    async def get(self, business_id: str) -> Business:
        async with self.sessions() as session:
            business = await session.get(Business, business_id)
        if business is None:
            raise BusinessNotFound(f"no business with id {business_id!r}")
        return business

    async def by_realm(self, realm_id: str) -> Business:
        async with self.sessions() as session:
            business = await self._by_realm(session, realm_id)
        if business is None:
            raise BusinessNotFound(f"no business is connected to QuickBooks company {realm_id}")
        return business

    async def by_slack_channel(self, team_id: str, channel_id: str) -> Business | None:
        """The business whose digest goes to that Slack channel (tenancy comes from Slack's ids).

        A channel belongs to at most one business (a unique constraint), so this is that business
        or none, whatever order the database keeps its rows in.
        """
        async with self.sessions() as session:
            return await self._by_channel(session, team_id, channel_id)

    async def in_slack_team(self, team_id: str) -> list[Business]:
        """The businesses whose digest goes to a channel of that Slack team, oldest first (a
        person's Home tab shows one of them)."""
        async with self.sessions() as session:
            result = await session.execute(
                select(Business)
                .where(Business.slack_team_id == team_id)
                .order_by(Business.created_at, Business.id)
            )
            return list(result.scalars())

    async def update(self, business_id: str, *, by: str | None = None, **changes: Any) -> Business:
        """Change a business's settings; `by` is the person asking (a Slack user id or an email
        address), who must be one of its approvers (`NotAnApprover` otherwise).

        `by=None` is Oodaloo itself (the operator's CLI, an unsubscribe link): only surfaces acting
        for nobody in particular pass it. ChannelTaken if the new channel has a business already.
        """
        _check_fields(changes)
        async with self.sessions() as session:
            for_business(session, business_id)
            business = await session.get(Business, business_id)
            if business is None:
                raise BusinessNotFound(f"no business with id {business_id!r}")
            if by is not None:
                await self._require_approver(session, business, by)
            for name, value in changes.items():
                setattr(business, name, value)
            business.updated_at = self.clock.now()
            if {"slack_team_id", "slack_channel_id"} & set(changes):
                await self._check_channel_free(session, business)
            await self._commit(session, business)
            await session.refresh(business)
        return business

    async def require_approver(self, business_id: str, person: str) -> Business:
        """The business, if `person` (a Slack user id or email address) is one of its approvers.

        The one rule behind every change to a business's QuickBooks connection, settings,
        approvers or channel: NotAnApprover otherwise. A person's Slack id and the email address
        on their Slack profile are one person (`runway.people`). A business nobody approves for
        yet is changed by nobody but Oodaloo's operator.
        """
        async with self.sessions() as session:
            business = await session.get(Business, business_id)
            if business is None:
                raise BusinessNotFound(f"no business with id {business_id!r}")
            await self._require_approver(session, business, person)
        return business

    async def _require_approver(
        self, session: AsyncSession, business: Business, person: str
    ) -> None:
        approvers = {canonical(name) for name in business.approvers or []}
        if approvers & await self._identities(session, business.id, person):
            return
        raise NotAnApprover(
            f"Only approvers of {business.name} can change its QuickBooks connection, settings, "
            "approvers or channel."
        )

    async def _identities(self, session: AsyncSession, business_id: str, person: str) -> set[str]:
        key = canonical(person)
        if not key:
            return set()
        column = PersonRecord.email if is_email(key) else PersonRecord.slack_user_id
        found = await session.execute(
            select(PersonRecord.slack_user_id, PersonRecord.email).where(
                PersonRecord.business_id == business_id, column == key
            )
        )
        names = {key}
        for slack_user_id, email in found:
            names.update(canonical(name) for name in (slack_user_id, email) if name)
        return names

    async def _by_channel(
        self, session: AsyncSession, team_id: str, channel_id: str
    ) -> Business | None:
        result = await session.execute(
            select(Business).where(
                Business.slack_team_id == team_id, Business.slack_channel_id == channel_id
            )
        )
        return result.scalar_one_or_none()

    async def _check_channel_free(self, session: AsyncSession, business: Business) -> None:
        team_id, channel_id = business.slack_team_id, business.slack_channel_id
        if team_id is None or channel_id is None:
            return
        with session.no_autoflush:
            result = await session.execute(
                select(Business.id).where(
                    Business.slack_team_id == team_id,
                    Business.slack_channel_id == channel_id,
                    Business.id != business.id,
                )
            )
        if result.first() is not None:
            raise ChannelTaken(channel_id)

    async def _commit(self, session: AsyncSession, business: Business) -> None:
        channel_id = business.slack_channel_id
        try:
            await session.commit()
        except IntegrityError as exc:
            # Two businesses claiming one channel at once: the unique constraint decided.
            await session.rollback()
            if channel_id is not None and "slack" in str(exc.orig).lower():
                raise ChannelTaken(channel_id) from exc
            raise

    async def _by_realm(self, session: AsyncSession, realm_id: str) -> Business | None:
        result = await session.execute(select(Business).where(Business.realm_id == realm_id))
        return result.scalar_one_or_none()

    # --- the QuickBooks connection ---------------------------------------------------------

    async def connect(
        self,
        business_id: str,
        realm_id: str,
        tokens: OAuthTokens,
        *,
        by: str | None = None,
        country: str | None = None,
    ) -> QBOConnection:
        """Connect (or reconnect) a business to its QuickBooks company with fresh OAuth tokens.

        `by`, the person who connected it, must be one of its approvers (NotAnApprover, nothing
        stored); `by=None` is Oodaloo's operator. `country` is the company's (CompanyInfo): a
        business connecting its first company takes that country's locale; a reconnection keeps
        the locale the owner has.
        """
        now = self.clock.now()
        async with self.sessions() as session:
            business = await session.get(Business, business_id)
            if business is None:
                raise BusinessNotFound(f"no business with id {business_id!r}")
            if by is not None:
                await self._require_approver(session, business, by)
            other = await self._by_realm(session, realm_id)
            if other is not None and other.id != business_id:
                raise ValueError(
                    f"QuickBooks company {realm_id} already belongs to another business"
                )
            if business.realm_id is None:
                business.locale = locale_for_country(country)
            business.realm_id = realm_id
            result = await session.execute(
                select(QBOConnection).where(QBOConnection.business_id == business_id)
            )
            connection = result.scalar_one_or_none()
            if connection is None:
                connection = QBOConnection(business_id=business_id, connected_at=now)
                session.add(connection)
            connection.realm_id = realm_id
            connection.connected_at = now
            self._store_tokens(connection, tokens)
            connection.status = ConnectionStatus.CONNECTED.value
            connection.status_reason = None
            await session.commit()
            await session.refresh(connection)
        return connection

    async def connection(self, business_id: str) -> QBOConnection:
        async with self.sessions() as session:
            result = await session.execute(
                select(QBOConnection).where(QBOConnection.business_id == business_id)
            )
            connection = result.scalar_one_or_none()
        if connection is None:
            raise NotConnected(f"business {business_id!r} has not connected QuickBooks yet")
        return connection

    async def load_tokens(self, realm_id: str) -> OAuthTokens:
        """The decrypted tokens of a connected company; NotConnected when it must reconnect."""
        async with self.sessions() as session:
            connection = await self._connection_of_realm(session, realm_id)
        if connection.status != ConnectionStatus.CONNECTED.value:
            raise NotConnected(
                f"QuickBooks company {realm_id} must be reconnected by its owner "
                f"({connection.status_reason or 'QuickBooks refused its tokens'})"
            )
        return OAuthTokens(
            access_token=self.cipher.decrypt(connection.access_token_encrypted),
            refresh_token=self.cipher.decrypt(connection.refresh_token_encrypted),
            expires_at=connection.access_expires_at,
            refresh_expires_at=connection.refresh_expires_at,
        )

    async def save_tokens(self, realm_id: str, tokens: OAuthTokens) -> None:
        """Persist rotated tokens (encrypted) for a company."""
        async with self.sessions() as session:
            connection = await self._connection_of_realm(session, realm_id)
            self._store_tokens(connection, tokens)
            await session.commit()

    async def mark_needs_reconnect(self, realm_id: str, reason: str) -> None:
        async with self.sessions() as session:
            connection = await self._connection_of_realm(session, realm_id)
            connection.status = ConnectionStatus.NEEDS_RECONNECT.value
            connection.status_reason = reason
            connection.updated_at = self.clock.now()
            await session.commit()

    def _store_tokens(self, connection: QBOConnection, tokens: OAuthTokens) -> None:
        connection.access_token_encrypted = self.cipher.encrypt(tokens.access_token)
        connection.refresh_token_encrypted = self.cipher.encrypt(tokens.refresh_token)
        connection.access_expires_at = tokens.expires_at.astimezone(UTC)
        connection.refresh_expires_at = tokens.refresh_expires_at.astimezone(UTC)
        connection.updated_at = self.clock.now()

    async def _connection_of_realm(self, session: AsyncSession, realm_id: str) -> QBOConnection:
        result = await session.execute(
            select(QBOConnection).where(QBOConnection.realm_id == realm_id)
        )
        connection = result.scalar_one_or_none()
        if connection is None:
            raise NotConnected(f"no business is connected to QuickBooks company {realm_id}")
        for_business(session, connection.business_id)
        return connection

    # --- the adapter SyncInfrastructure uses -------------------------------------------------

    def token_source(
        self,
        app: QBOAppCredentials,
        http: Any,
        *,
        lock: RealmLockFactory = PROCESS_REALM_LOCKS,
    ) -> Callable[[str], TokenProvider]:
        """`tokens_for(realm_id)` for `SyncInfrastructure`: stored tokens, refreshed and re-saved.

        `http` is the HTTP client (httpx.AsyncClient) the token refreshes go through; `lock` is the
        per-realm refresh lock (pass the infrastructure's distributed lock when several processes
        share the database).
        """

        def tokens_for(realm_id: str) -> TokenProvider:
            return StoredTokenProvider(self, realm_id, app, http, lock)

        return tokens_for


class StoredTokenProvider:
    """A company's tokens as stored in the database, loaded on first use and kept rotated."""

    def __init__(
        self,
        directory: BusinessDirectory,
        realm_id: str,
        app: QBOAppCredentials,
        http: Any,
        lock: RealmLockFactory,
    ) -> None:
        self.directory = directory
        self.realm_id = realm_id
        self._app = app
        self._http = http
        self._lock = lock
        self._inner: OAuthTokenProvider | None = None

    async def _provider(self) -> OAuthTokenProvider:
        if self._inner is None:
            tokens = await self.directory.load_tokens(self.realm_id)
            realm_id = self.realm_id

            async def on_rotate(new_tokens: OAuthTokens) -> None:
                await self.directory.save_tokens(realm_id, new_tokens)

            async def reload() -> OAuthTokens | None:
                return await self.directory.load_tokens(realm_id)

            self._inner = OAuthTokenProvider(
                realm_id,
                self._app.client_id,
                self._app.client_secret,
                self._app.token_url,
                tokens,
                on_rotate,
                self._http,
                clock=self.directory.clock,
                lock=self._lock,
                reload=reload,
            )
        return self._inner

    async def access_token(self) -> str:
        provider = await self._provider()
        try:
            return await provider.access_token()
        except QBOTokenError as exc:
            await self._disconnected(exc)
            raise

    async def force_refresh(self, rejected: str) -> str:
        provider = await self._provider()
        try:
            return await provider.force_refresh(rejected)
        except QBOTokenError as exc:
            await self._disconnected(exc)
            raise

    async def _disconnected(self, error: QBOTokenError) -> None:
        # The owner has to reconnect; later calls fail fast with NotConnected instead of retrying.
        await self.directory.mark_needs_reconnect(self.realm_id, str(error))
        self._inner = None


__all__ = [
    "BankAccount",
    "BusinessDirectory",
    "BusinessNotFound",
    "ChannelTaken",
    "NotAnApprover",
    "NotConnected",
    "PayFromRefused",
    "QBOAppCredentials",
    "StoredTokenProvider",
    "bank_accounts_of",
    "bill_payment_account",
    "channel_taken_message",
    "check_timezone",
]
