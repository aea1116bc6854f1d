"""The action ledger: every write Oodaloo makes to QuickBooks, recorded durably before it is sent.

This is what keeps the promise that no payment is ever made twice or lost. Each write (pay a bill,
send a reminder) becomes an *action* whose key is derived from what it means: the business, the
operation, the QBO object it targets (and that object's version) and the amount. The key is sent to
QBO as `requestid` and is UNIQUE in the table, so a double click or a second worker collapses into
the same action instead of a second payment.

State machine (each step is one short transaction, committed before the HTTP call that follows):

    pending ──claim──▶ in_flight ──▶ succeeded          (final: never changes again)
       ▲                 │  │  ├──▶ failed            (QBO certainly did not apply it)
       └─release_to_pending┘  │  └──▶ unknown ──claim──▶ in_flight   (timeout, 5xx, lost reply)
                              └─ lease expires ──claim──▶ in_flight (by another worker)
    pending | in_flight | unknown | failed ──▶ needs_human        (until a person decides:)
    needs_human ──resolve──▶ succeeded (it is in QuickBooks) | failed (cancelled) | pending (send again)

Only the worker holding the lease can report an outcome, so two workers can never both act.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    case,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from sync.clock import Clock
from sync.db import (
    CENT,
    DecimalJSON,
    Money,
    SyncBase,
    UTCDateTime,
    dumps_decimal,
    exact_cents,
    loads_decimal,
)

#: QBO accepts a `requestid` of at most 50 characters (36 in a batch request); keys fit both.
MAX_KEY_LENGTH = 36
KEY_PREFIX = "oo1-"
_KEY_DIGEST_CHARS = MAX_KEY_LENGTH - len(KEY_PREFIX)  # 32 base32 characters = 160 bits
_KEY_SCHEME = "oodaloo-action-v1"
# Decimal's default context holds 28 digits; bigger whole numbers keep their plain spelling.
_MAX_CENT_DIGITS = 25


class ActionState(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    NEEDS_HUMAN = "needs_human"


#: Every transition the ledger allows (in_flight → in_flight is a reclaim after the lease expired).
ALLOWED_TRANSITIONS: Mapping[ActionState, frozenset[ActionState]] = {
    ActionState.PENDING: frozenset({ActionState.IN_FLIGHT, ActionState.NEEDS_HUMAN}),
    ActionState.IN_FLIGHT: frozenset(
        {
            ActionState.IN_FLIGHT,
            ActionState.SUCCEEDED,
            ActionState.FAILED,
            ActionState.UNKNOWN,
            ActionState.PENDING,
            ActionState.NEEDS_HUMAN,
        }
    ),
    ActionState.UNKNOWN: frozenset({ActionState.IN_FLIGHT, ActionState.NEEDS_HUMAN}),
    ActionState.FAILED: frozenset({ActionState.NEEDS_HUMAN}),
    ActionState.SUCCEEDED: frozenset(),
    ActionState.NEEDS_HUMAN: frozenset(),
}


#: What a person may decide for an action that needs one (`ActionLedger.resolve`).
PERSON_DECISIONS = frozenset({ActionState.SUCCEEDED, ActionState.FAILED, ActionState.PENDING})


# --- Keys and canonical payloads ------------------------------------------------------------


def canonical_amount(amount: Decimal | int) -> str:
    """The amount as whole cents in plain notation, so 10, 10.0 and 10.00 all read "10.00"."""
    return format(exact_cents(amount), "f")


def qbo_target(realm_id: str, target_type: str, target_id: str) -> str:
    """The identity of a QBO object across companies: "<realm>/<entity type>/<id>"."""
    return f"{realm_id}/{target_type}/{target_id}"


def _require_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    return value


def action_key(
    business_id: str, operation: str, target: str, amount: Decimal | int, target_version: str
) -> str:
    """The idempotency key of an action: the same meaning always gives the same key.

    A SHA-256 over a canonical encoding of the five parts (amount in whole cents), written as
    "oo1-" plus 32 lower-case base32 characters: 36 characters, within QBO's requestid limits.
    `target_version` is the target's SyncToken, so paying a bill again after it changed is a new
    action while a repeated click on the same version is the same one.
    """
    parts = [
        _KEY_SCHEME,
        _require_text("business_id", business_id),
        _require_text("operation", operation),
        _require_text("target", target),
        canonical_amount(amount),
        _require_text("target_version", target_version, allow_empty=True),
    ]
    digest = hashlib.sha256(dumps_decimal(parts).encode("utf-8")).digest()
    encoded = base64.b32encode(digest).decode("ascii").rstrip("=").lower()
    return KEY_PREFIX + encoded[:_KEY_DIGEST_CHARS]


def _canonical_decimal(value: Decimal) -> Decimal:
    """One spelling per number: whole cents with two places (10, 10.0 and 10.00 → 10.00, so
    amounts stay Decimals when read back), finer fractions without trailing zeros."""
    if not value.is_finite():
        raise ValueError(f"payload numbers must be finite, got {value}")
    if value == 0:
        return Decimal("0.00")
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -2 and normalized.adjusted() < _MAX_CENT_DIGITS:
        return normalized.quantize(CENT)
    return Decimal(format(normalized, "f"))


def _canonical_value(value: Any, path: str) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, Decimal):
        return _canonical_decimal(value)
    if isinstance(value, float):
        raise TypeError(
            f"payload{path} is a float ({value!r}); amounts must be Decimal so no cent is lost"
        )
    if isinstance(value, Mapping):
        result: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"payload{path} has a non-string key {key!r}")
            result[key] = _canonical_value(item, f"{path}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [_canonical_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise TypeError(
        f"payload{path} is a {type(value).__name__}; payloads hold only JSON values "
        "(str, int, Decimal, bool, None, lists, dicts): convert dates to ISO strings first"
    )


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, each Decimal exact and spelled one way."""
    return dumps_decimal(_canonical_value(value, ""))


# --- Data handed to and from callers --------------------------------------------------------


@dataclass(frozen=True)
class ActionIntent:
    """A write the user asked for, before it exists in the ledger."""

    realm_id: str
    business_id: str
    operation: str  # e.g. "bill_payment.create", "invoice.send"
    target_type: str  # the QBO entity acted on, e.g. "Bill"
    target_id: str
    amount: Decimal
    target_version: str  # the target's SyncToken when the user decided
    payload: Mapping[str, Any] = field(default_factory=dict)  # the request body to send to QBO

    @property
    def target(self) -> str:
        return qbo_target(self.realm_id, self.target_type, self.target_id)

    @property
    def key(self) -> str:
        return action_key(
            self.business_id, self.operation, self.target, self.amount, self.target_version
        )

    def payload_json(self) -> str:
        return canonical_json(self.payload)

    def fingerprint(self) -> str:
        """SHA-256 of everything the action means; the same key with another fingerprint conflicts."""
        whole = {
            "realm_id": self.realm_id,
            "business_id": self.business_id,
            "operation": self.operation,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_version": self.target_version,
            "amount": canonical_amount(self.amount),
            "payload": self.payload,
        }
        return hashlib.sha256(canonical_json(whole).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Action:
    """One row of the ledger, as plain data."""

    id: int
    realm_id: str
    business_id: str
    key: str
    operation: str
    target_type: str
    target_id: str
    target_version: str
    amount: Decimal
    payload: dict[str, Any]
    payload_hash: str
    state: ActionState
    attempts: int
    last_error: str | None
    qbo_object_id: str | None
    result: Any
    lease_owner: str | None  # the worker holding the lease, or the last one that held it
    lease_expires_at: datetime | None  # set only while in_flight
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    def lease_expired(self, now: datetime) -> bool:
        return (
            self.state is ActionState.IN_FLIGHT
            and self.lease_expires_at is not None
            and self.lease_expires_at <= now
        )


@dataclass(frozen=True)
class RecordResult:
    action: Action
    created: bool  # False: the same action was already recorded (double click, second worker)


class LedgerError(Exception):
    """Base class for refusals from the action ledger."""


class ActionNotFound(LedgerError, LookupError):
    def __init__(self, key: str) -> None:
        super().__init__(f"no action with key {key} in the ledger; record() it first")
        self.key = key


class ConflictingAction(LedgerError):
    """The key is already recorded for an action that means something else."""

    def __init__(self, existing: Action, intent: ActionIntent) -> None:
        super().__init__(
            f"action {existing.key} is already recorded with a different payload "
            f"({existing.operation} on {existing.target_type} {existing.target_id}, "
            f"amount {existing.amount}, state {existing.state}); refusing to reuse its key for "
            f"{intent.operation} on {intent.target_type} {intent.target_id}, amount {intent.amount}. "
            "Re-read the target from QuickBooks and record a new action for its current version."
        )
        self.existing = existing


class IllegalTransition(LedgerError):
    def __init__(self, action: Action, target: ActionState) -> None:
        why = ""
        if action.state is ActionState.SUCCEEDED:
            why = " (a succeeded action never changes)"
        elif action.state is ActionState.PENDING and target is not ActionState.NEEDS_HUMAN:
            why = " (claim it before reporting an outcome)"
        super().__init__(f"action {action.key} is {action.state}; it cannot become {target}{why}")
        self.action = action
        self.target = target


class LeaseLost(LedgerError):
    """The caller no longer holds the action: its lease expired and another worker took it over."""

    def __init__(self, action: Action, owner: str, target: ActionState) -> None:
        super().__init__(
            f"worker {owner!r} no longer holds action {action.key} (now {action.state}, held by "
            f"{action.lease_owner!r}), so it was not marked {target}; the outcome this worker saw "
            "must be reconciled against QuickBooks, not written over the other worker's"
        )
        self.action = action
        self.owner = owner
        self.target = target


# --- Table ----------------------------------------------------------------------------------


class ActionRow(SyncBase):
    __tablename__ = "qbo_actions"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    realm_id: Mapped[str] = mapped_column(String(64))
    business_id: Mapped[str] = mapped_column(String(64))
    # Unique across all realms (the key itself names the realm), hence also unique per realm,
    # which is the scope in which QBO deduplicates a requestid.
    key: Mapped[str] = mapped_column(String(50))
    operation: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    target_version: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(Money())
    payload: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as hashed
    payload_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    qbo_object_id: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[Any] = mapped_column(DecimalJSON(), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("key"),
        CheckConstraint(
            "state IN ('pending', 'in_flight', 'succeeded', 'failed', 'unknown', 'needs_human')",
            name="state",
        ),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_qbo_actions_realm_state", "realm_id", "state"),
        Index("ix_qbo_actions_state_lease", "state", "lease_expires_at"),
        Index("ix_qbo_actions_business_updated", "business_id", "updated_at"),
    )


def _to_action(row: ActionRow) -> Action:
    return Action(
        id=row.id,
        realm_id=row.realm_id,
        business_id=row.business_id,
        key=row.key,
        operation=row.operation,
        target_type=row.target_type,
        target_id=row.target_id,
        target_version=row.target_version,
        amount=row.amount,
        payload=loads_decimal(row.payload),
        payload_hash=row.payload_hash,
        state=ActionState(row.state),
        attempts=row.attempts,
        last_error=row.last_error,
        qbo_object_id=row.qbo_object_id,
        result=row.result,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        completed_at=row.completed_at,
    )


# --- The ledger -----------------------------------------------------------------------------


class ActionLedger:
    """Durable record of every QBO write. Each method is its own short, committed transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessionmaker
        self._clock = clock

    def _now(self) -> datetime:
        now = self._clock.now()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("the clock returned a naive datetime; it must be timezone-aware")
        return now.astimezone(UTC)

    async def record(self, intent: ActionIntent) -> RecordResult:
        """Insert the action as pending, or return the one already recorded under its key.

        Raises ConflictingAction when the key exists for a different payload. Concurrent calls
        with the same intent are settled by the UNIQUE constraint: one inserts, the rest re-read.
        """
        _require_text("realm_id", intent.realm_id)
        _require_text("target_type", intent.target_type)
        _require_text("target_id", intent.target_id)
        key = intent.key
        fingerprint = intent.fingerprint()
        now = self._now()
        row = ActionRow(
            realm_id=intent.realm_id,
            business_id=intent.business_id,
            key=key,
            operation=intent.operation,
            target_type=intent.target_type,
            target_id=intent.target_id,
            target_version=intent.target_version,
            amount=exact_cents(intent.amount),
            payload=intent.payload_json(),
            payload_hash=fingerprint,
            state=ActionState.PENDING.value,
            attempts=0,
            last_error=None,
            qbo_object_id=None,
            result=None,
            lease_owner=None,
            lease_expires_at=None,
            created_at=now,
            updated_at=now,
            completed_at=None,
        )
        try:
            async with self._sessions() as session, session.begin():
                session.add(row)
            return RecordResult(_to_action(row), created=True)
        except IntegrityError:
            existing = await self.get(key)
            if existing is None:
                raise  # some other constraint failed: the key is not the cause
        if existing.payload_hash != fingerprint:
            raise ConflictingAction(existing, intent)
        return RecordResult(existing, created=False)

    async def claim(self, key: str, owner: str, lease_seconds: float) -> Action | None:
        """Take the action to send it: pending, unknown, or in_flight with an expired lease.

        Returns the claimed action (attempts counted), or None when it is not claimable now
        (another worker holds a live lease, or it is finished). One conditional UPDATE decides,
        so two workers can never both win.
        """
        _require_text("owner", owner)
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds}")
        now = self._now()
        claimable = or_(
            ActionRow.state.in_([ActionState.PENDING.value, ActionState.UNKNOWN.value]),
            and_(
                ActionRow.state == ActionState.IN_FLIGHT.value,
                ActionRow.lease_expires_at <= now,
            ),
        )
        statement = (
            update(ActionRow)
            .where(ActionRow.key == key, claimable)
            .values(
                state=ActionState.IN_FLIGHT.value,
                lease_owner=owner,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=ActionRow.attempts + 1,
                updated_at=now,
            )
            .returning(ActionRow)
            .execution_options(synchronize_session=False)
        )
        async with self._sessions() as session, session.begin():
            claimed = (await session.scalars(statement)).one_or_none()
            if claimed is None:
                if await session.scalar(select(ActionRow.id).where(ActionRow.key == key)) is None:
                    raise ActionNotFound(key)
                return None
            return _to_action(claimed)

    async def mark_succeeded(
        self, key: str, owner: str, qbo_object_id: str | None, result: Mapping[str, Any] | None
    ) -> Action:
        """QBO applied the action; `result` is the object it returned (kept Decimal-exact).

        Repeating the same call (same owner, same object id) returns the action unchanged.
        """
        now = self._now()
        return await self._transition(
            key,
            ActionState.SUCCEEDED,
            owner=owner,
            values={
                "qbo_object_id": qbo_object_id,
                "result": None if result is None else _canonical_value(result, ""),
                "lease_expires_at": None,
                "completed_at": now,
            },
            now=now,
        )

    async def mark_failed(self, key: str, owner: str, error: str) -> Action:
        """QBO certainly did not apply the action (validation fault, refused request)."""
        now = self._now()
        values = {"last_error": error, "lease_expires_at": None, "completed_at": now}
        return await self._transition(key, ActionState.FAILED, owner=owner, values=values, now=now)

    async def mark_unknown(self, key: str, owner: str, error: str) -> Action:
        """The outcome is not known (timeout, 5xx, dropped response): reconciliation decides."""
        values = {"last_error": error, "lease_expires_at": None}
        return await self._transition(key, ActionState.UNKNOWN, owner=owner, values=values)

    async def release_to_pending(self, key: str, owner: str, error: str, *, sent: bool = True) -> Action:
        """Not applied and safe to try later (e.g. the realm's circuit is open).

        `sent=False` says no request left Oodaloo (the rate limiter had no slot, the circuit was
        open): the claim is not counted as an attempt, so the wait before the next one does not grow.
        """
        values: dict[str, Any] = {"last_error": error, "lease_expires_at": None}
        if not sent:
            values["attempts"] = ActionRow.attempts - 1  # the claim counted one
        return await self._transition(key, ActionState.PENDING, owner=owner, values=values)

    async def mark_needs_human(self, key: str, reason: str) -> Action:
        """Stop automatic handling; a person must decide (no lease needed: it only stops work)."""
        values = {"last_error": reason, "lease_expires_at": None}
        return await self._transition(key, ActionState.NEEDS_HUMAN, owner=None, values=values)

    async def resolve(
        self,
        key: str,
        target: ActionState,
        *,
        by: str,
        note: str,
        qbo_object_id: str | None = None,
    ) -> Action:
        """A person's decision on an action that needs one (and only such an action):
        `succeeded` (it is in QuickBooks as `qbo_object_id`), `failed` (cancelled: nothing will be
        sent) or `pending` (send it again: the reconciler first searches QuickBooks for its marker,
        as for any action that was ever sent). IllegalTransition if it no longer needs a person
        (someone decided first)."""
        if target not in PERSON_DECISIONS:
            raise ValueError(f"a person decides succeeded, failed or pending, not {target}")
        if target is ActionState.SUCCEEDED and not qbo_object_id:
            raise ValueError("marking an action done needs the QuickBooks object it matches")
        now = self._now()
        values: dict[str, Any] = {
            "state": target.value,
            "last_error": f"{_require_text('note', note)} (decided by {_require_text('by', by)})",
            "updated_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if target is ActionState.SUCCEEDED:
            values |= {"qbo_object_id": qbo_object_id, "completed_at": now}
        elif target is ActionState.FAILED:
            values["completed_at"] = now
        else:  # counted as sent: the next sweep searches for its marker before sending again
            values["attempts"] = case((ActionRow.attempts < 1, 1), else_=ActionRow.attempts)
        statement = (
            update(ActionRow)
            .where(ActionRow.key == key, ActionRow.state == ActionState.NEEDS_HUMAN.value)
            .values(**values)
            .returning(ActionRow)
            .execution_options(synchronize_session=False)
        )
        changed, current = await self._update(statement, key)
        if changed is not None:
            return changed
        raise IllegalTransition(current, target)

    async def _update(self, statement: Any, key: str) -> tuple[Action | None, Action]:
        """Runs `statement` (an UPDATE ... RETURNING of the action `key`) in one transaction:
        the action it changed, or None and the action as it stands (ActionNotFound if none)."""
        async with self._sessions() as session, session.begin():
            changed = (await session.scalars(statement)).one_or_none()
            if changed is not None:
                action = _to_action(changed)
                return action, action
            current_row = await session.scalar(select(ActionRow).where(ActionRow.key == key))
        if current_row is None:
            raise ActionNotFound(key)
        return None, _to_action(current_row)

    async def _transition(
        self,
        key: str,
        target: ActionState,
        *,
        owner: str | None,
        values: dict[str, Any],
        now: datetime | None = None,
    ) -> Action:
        now = now or self._now()
        sources = [state.value for state, nexts in ALLOWED_TRANSITIONS.items() if target in nexts]
        conditions: list[ColumnElement[bool]] = [
            ActionRow.key == key,
            ActionRow.state.in_(sources),
        ]
        if owner is not None:
            # Outcomes come from whoever holds the action; a claim by anyone else moves the owner.
            conditions += [
                ActionRow.state == ActionState.IN_FLIGHT.value,
                ActionRow.lease_owner == owner,
            ]
        statement = (
            update(ActionRow)
            .where(*conditions)
            .values(state=target.value, updated_at=now, **values)
            .returning(ActionRow)
            .execution_options(synchronize_session=False)
        )
        changed, current = await self._update(statement, key)
        if changed is not None:
            return changed
        if (
            target is ActionState.SUCCEEDED
            and current.state is ActionState.SUCCEEDED
            and current.lease_owner == owner
            and current.qbo_object_id == values["qbo_object_id"]
        ):
            return current  # the same report twice (e.g. a retried commit): already recorded
        if owner is not None and current.lease_owner not in (None, owner):
            raise LeaseLost(current, owner, target)
        raise IllegalTransition(current, target)

    async def get(self, key: str) -> Action | None:
        async with self._sessions() as session:
            row = await session.scalar(select(ActionRow).where(ActionRow.key == key))
            return None if row is None else _to_action(row)

    async def list(
        self,
        state: ActionState | None = None,
        realm_id: str | None = None,
        *,
        completed_since: datetime | None = None,
    ) -> Sequence[Action]:
        """Actions oldest first, optionally only those in one state and/or one realm, and/or
        completed at or after `completed_since`."""
        statement = select(ActionRow).order_by(ActionRow.id)
        if state is not None:
            statement = statement.where(ActionRow.state == ActionState(state).value)
        if realm_id is not None:
            statement = statement.where(ActionRow.realm_id == realm_id)
        if completed_since is not None:
            statement = statement.where(ActionRow.completed_at >= completed_since)
        return await self._select(statement)

    async def due_for_reconciliation(
        self, now: datetime, realm_id: str | None = None
    ) -> Sequence[Action]:
        """Actions whose outcome must be checked in QBO: unknown, or in_flight past their lease."""
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
        statement = (
            select(ActionRow)
            .where(
                or_(
                    ActionRow.state == ActionState.UNKNOWN.value,
                    and_(
                        ActionRow.state == ActionState.IN_FLIGHT.value,
                        ActionRow.lease_expires_at <= now,
                    ),
                )
            )
            .order_by(ActionRow.updated_at, ActionRow.id)
        )
        if realm_id is not None:
            statement = statement.where(ActionRow.realm_id == realm_id)
        return await self._select(statement)

    async def pending_for_realm(self, realm_id: str) -> Sequence[Action]:
        """Recorded but not yet sent (or released to try later), oldest first."""
        statement = (
            select(ActionRow)
            .where(ActionRow.realm_id == realm_id, ActionRow.state == ActionState.PENDING.value)
            .order_by(ActionRow.id)
        )
        return await self._select(statement)

    async def _select(self, statement: Any) -> Sequence[Action]:
        async with self._sessions() as session:
            return [_to_action(row) for row in (await session.scalars(statement)).all()]
