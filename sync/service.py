"""SmartSyncService: the one way Oodaloo's domain talks to QuickBooks Online.

It keeps QuickBooks' fragility away from the user (see the architecture record ADR-005):

- every call goes through the shared rate limiter (user actions first), the realm's circuit
  breaker, a retry policy, then QBORawClient;
- reads for the digest are cached with their "as of" time and, when QuickBooks cannot be asked,
  served from the last known good copy, marked stale with its age;
- writes that move money are actions in a durable ledger, recorded before the HTTP call, so that
  no payment is made twice or lost (the contract is spelled out on `create_payment_immediate`).

One instance serves one business and its QuickBooks company (realm); it is cheap to build. Shared
state (ledger, limiter, circuit, cache) lives in `SyncInfrastructure`, one per process.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from tenacity import RetryCallState

from sync import metrics as m
from sync.actions import (
    BILL_PAYMENT_CREATE,
    CUSTOMER_PAYMENT_CREATE,
    INVOICE_SEND,
    ActionOutcome,
    BillPaymentIntent,
    CachedRead,
    CustomerPaymentIntent,
    InvoiceSendIntent,
)
from sync.circuit import CircuitOpen
from sync.errors import QuickBooksUnavailable
from sync.infrastructure import SyncInfrastructure
from sync.ledger import Action, ActionIntent, ActionState, LeaseLost
from sync.metrics import log_event
from sync.qbo import (
    Outcome,
    QBOConnectionError,
    QBOError,
    QBORawClient,
    QBOResponseError,
    QBOServerError,
    QBOThrottledError,
    QBOValidationError,
)
from sync.ratelimit import Priority, RateLimitTimeout
from sync.timing import QBO_PLATFORM, SyncStrategy

logger = logging.getLogger(__name__)

T = TypeVar("T")
QBOCall = Callable[[QBORawClient], Awaitable[T]]

#: Cache keys under the "qbo" platform, and what each write makes out of date.
BILLS = "bills"
INVOICES = "invoices"
COMPANY_INFO = "company_info"
BANK_ACCOUNTS = "bank_accounts"
_STALE_AFTER_WRITE = {
    BILL_PAYMENT_CREATE: (BILLS, BANK_ACCOUNTS),
    CUSTOMER_PAYMENT_CREATE: (INVOICES, BANK_ACCOUNTS),
    INVOICE_SEND: (INVOICES,),
}

#: QBORawClient methods `execute_qbo_call` accepts by name; the writes among them need request_id.
WRITE_OPERATIONS = frozenset(
    {"create", "update", "delete", "void", "send_invoice", "batch", "create_payment_in_qbo"}
)
READ_OPERATIONS = frozenset(
    {
        "query",
        "query_page",
        "count",
        "get",
        "company_info",
        "exchange_rate",
        "cdc",
        "report",
        "get_bills_from_qbo",
        "get_invoices_from_qbo",
        "get_customers_from_qbo",
        "get_vendors_from_qbo",
        "get_accounts_from_qbo",
        "get_company_info_from_qbo",
        "get_kpi_data",
        "get_aging_report",
        "get_payment_history",
    }
)

_OUTAGE_ERRORS = (QBOServerError, QBOConnectionError, QBOResponseError)
_DEFERRABLE = (CircuitOpen, RateLimitTimeout)


class SyncUnavailable(QuickBooksUnavailable):
    """QuickBooks could not be read and no earlier copy is kept to fall back on."""


def _describe(action: Action) -> str:
    # A payment in a foreign currency names its currency (its payload's CurrencyRef).
    currency = (action.payload.get("CurrencyRef") or {}).get("value")
    amount = f"{action.amount:,.2f} {currency}" if currency else f"${action.amount:,.2f}"
    if action.operation == BILL_PAYMENT_CREATE:
        return f"the payment of {amount} for bill {action.target_id}"
    if action.operation == CUSTOMER_PAYMENT_CREATE:
        return f"the customer payment of {amount} on invoice {action.target_id}"
    if action.operation == INVOICE_SEND:
        return f"the reminder for invoice {action.target_id}"
    return f"{action.operation} on {action.target_type} {action.target_id}"


def outcome_for(action: Action, *, deduplicated: bool = False) -> ActionOutcome:
    """The user-facing outcome of an action as the ledger has it now."""
    what = _describe(action)
    already = "Already requested: " if deduplicated else ""
    state = action.state
    if state is ActionState.SUCCEEDED:
        message = f"{already}QuickBooks has {what} (id {action.qbo_object_id})."
    elif state is ActionState.FAILED:
        message = f"{already}QuickBooks refused {what}, so nothing was applied: {action.last_error}"
    elif state is ActionState.PENDING:
        reason = f" ({action.last_error})" if action.last_error else ""
        message = (
            f"{already}{what.capitalize()} is saved and will go through as soon as QuickBooks "
            f"can take it{reason}. It will not be applied twice."
        )
    elif state is ActionState.IN_FLIGHT:
        message = f"{already}{what.capitalize()} is being sent to QuickBooks right now."
    elif state is ActionState.UNKNOWN:
        message = (
            f"{already}QuickBooks did not confirm {what} in time. Oodaloo is checking with "
            "QuickBooks and will report the result; do not repeat it elsewhere meanwhile."
        )
    else:
        message = f"{already}{what.capitalize()} needs a person to look at it: {action.last_error}"
    return ActionOutcome(
        key=action.key,
        state=state,
        qbo_object_id=action.qbo_object_id,
        deduplicated=deduplicated,
        message=message,
    )


class SmartSyncService:
    """Orchestrated QuickBooks access for one business and its company (realm)."""

    def __init__(
        self,
        infra: SyncInfrastructure,
        business_id: str,
        realm_id: str,
        *,
        client: QBORawClient | None = None,
    ) -> None:
        if not business_id or not realm_id:
            raise ValueError("SmartSyncService needs the business id and its QuickBooks realm id")
        self.infra = infra
        self.business_id = business_id
        self.realm_id = realm_id
        self.client = client or infra.client_factory(realm_id, business_id)
        self.metrics = infra.metrics

    # --- the general call path -------------------------------------------------------------

    async def execute_qbo_call(
        self,
        operation: str | Callable[..., Awaitable[Any]],
        *args: Any,
        priority: Priority = Priority.DATA_FETCH,
        is_write: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """One QuickBooks call through limiter → circuit → retry → client.

        `operation` names a QBORawClient method (`"get_bills_from_qbo"`) or is a callable taking
        the client first. Writes by name must pass `request_id` and are retried only with it
        (QuickBooks then answers a repeat with the first response). A callable is treated as a
        write unless `is_write=False`, so that nothing of unknown effect is sent twice by mistake.
        Money-moving writes belong in `create_payment_immediate` / `record_payment` /
        `send_invoice`, which record them in the ledger first.

        Raises the last `QBOError` when the tries run out, `CircuitOpen` while the realm's circuit
        is open, `RateLimitTimeout` when no request slot came free in time.
        """
        call: QBOCall[Any]
        if isinstance(operation, str):
            if operation not in READ_OPERATIONS | WRITE_OPERATIONS:
                raise ValueError(
                    f"{operation!r} is not a QuickBooks operation SmartSyncService runs; use one of "
                    f"{', '.join(sorted(READ_OPERATIONS | WRITE_OPERATIONS))} or pass a callable"
                )
            write = operation in WRITE_OPERATIONS
            method_name = operation

            async def call(client: QBORawClient) -> Any:
                return await getattr(client, method_name)(*args, **kwargs)

        else:
            write = True if is_write is None else is_write
            function = operation

            async def call(client: QBORawClient) -> Any:
                return await function(client, *args, **kwargs)

        has_request_id = kwargs.get("request_id") is not None
        policy = self.infra.settings.retry_policy(priority)

        def retry_on(error: BaseException) -> bool:
            return isinstance(error, QBOError) and error.retryable_safely(write, has_request_id)

        retrying = policy.retrying(retry_on, before_sleep=self._note_retry(None))
        return await retrying(self._attempt, call, priority)

    async def _attempt(self, call: QBOCall[T], priority: Priority) -> T:
        """One try: a rate-limit slot, the circuit's permission, the call within its deadline."""
        settings = self.infra.settings
        async with self.infra.limiter.slot(
            self.realm_id, priority, timeout=settings.slot_timeouts[priority]
        ):
            await self._allow_through_circuit()
            self.metrics.incr(m.CALLS, self.realm_id)
            deadline = settings.attempt_timeouts[priority]
            try:
                async with asyncio.timeout(deadline):
                    result = await call(self.client)
            except TimeoutError as exc:
                error = QBOConnectionError(
                    f"QuickBooks did not answer within {deadline:g} s",
                    outcome=Outcome.UNKNOWN,
                    advice="the request may have been applied; reads can be retried, writes only "
                    "with the same requestid",
                )
                await self._note_failure(error)
                raise error from exc
            except QBOError as exc:
                await self._note_failure(exc)
                raise
        await self.infra.circuit.record_success(self.realm_id)
        return result

    async def _allow_through_circuit(self) -> None:
        try:
            await self.infra.circuit.check(self.realm_id)
        except CircuitOpen:
            self.metrics.incr(m.CIRCUIT_REJECTIONS, self.realm_id)
            raise

    async def _note_failure(self, error: QBOError) -> None:
        self.metrics.incr(m.CALL_FAILURES, self.realm_id)
        if isinstance(error, QBOThrottledError):
            self.metrics.incr(m.THROTTLED, self.realm_id)
            # Every process waits out Retry-After (60 s when QuickBooks gives none).
            await self.infra.limiter.back_off(self.realm_id, error.retry_after)
            await self.infra.circuit.record_success(self.realm_id)  # it answered: it is up
        elif isinstance(error, _OUTAGE_ERRORS):
            await self.infra.circuit.record_failure(self.realm_id)
        else:
            # A validation or auth fault is QuickBooks working as intended.
            await self.infra.circuit.record_success(self.realm_id)

    def _note_retry(self, action_key: str | None) -> Callable[[RetryCallState], None]:
        def before_sleep(state: RetryCallState) -> None:
            self.metrics.incr(m.RETRIES, self.realm_id)
            error = state.outcome.exception() if state.outcome is not None else None
            log_event(
                logging.INFO,
                f"retrying QuickBooks call after try {state.attempt_number} failed: {error}",
                realm_id=self.realm_id,
                action_key=action_key,
                business_id=self.business_id,
                fields={"attempt": state.attempt_number},
            )

        return before_sleep

    # --- cached reads ------------------------------------------------------------------------

    async def get_bills_for_digest(
        self, *, strategy: SyncStrategy | None = None, force: bool = False
    ) -> CachedRead[list[dict[str, Any]]]:
        """Open bills due within the digest horizon (overdue included), soonest first.

        Served from the cache while fresh (and while `strategy`, if given, says no sync is due);
        during an outage, the last known good copy marked stale with its age.
        """
        horizon = self.infra.settings.digest_horizon_days
        return await self._cached_read(
            BILLS, lambda client: client.get_bills_from_qbo(horizon), strategy=strategy, force=force
        )

    async def get_invoices_for_digest(
        self, *, strategy: SyncStrategy | None = None, force: bool = False
    ) -> CachedRead[list[dict[str, Any]]]:
        """Open invoices due within the digest horizon (overdue included), oldest due first."""
        horizon = self.infra.settings.digest_horizon_days
        return await self._cached_read(
            INVOICES,
            lambda client: client.get_invoices_from_qbo(horizon),
            strategy=strategy,
            force=force,
        )

    async def get_company_info(
        self, *, strategy: SyncStrategy | None = None, force: bool = False
    ) -> CachedRead[dict[str, Any]]:
        return await self._cached_read(
            COMPANY_INFO, lambda client: client.company_info(), strategy=strategy, force=force
        )

    async def get_bank_accounts(
        self, *, strategy: SyncStrategy | None = None, force: bool = False
    ) -> CachedRead[list[dict[str, Any]]]:
        """The company's bank accounts with their balances: the cash on hand of the runway."""
        return await self._cached_read(
            BANK_ACCOUNTS,
            lambda client: client.query("SELECT * FROM Account WHERE AccountType = 'Bank'"),
            strategy=strategy,
            force=force,
        )

    async def exchange_rate(
        self, currency: str, as_of: date, *, priority: Priority = Priority.USER_ACTION
    ) -> Decimal:
        """QuickBooks' rate for `currency` into the company's home currency on `as_of`: home
        units per unit of `currency`, the number a transaction in that currency carries as its
        ExchangeRate. Read at the moment it is needed, never cached: it is what QuickBooks itself
        would use that day.

        Raises `QuickBooksUnavailable` when QuickBooks cannot be asked now, a `QBOError` when it
        refuses (a company without multicurrency has no rates), and `QBOResponseError` when its
        answer carries no positive rate.
        """
        found = await self.execute_qbo_call("exchange_rate", currency, as_of, priority=priority)
        rate = found.get("Rate") if isinstance(found, dict) else None
        if isinstance(rate, int) and not isinstance(rate, bool):
            rate = Decimal(rate)
        if not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0:
            raise QBOResponseError(
                f"QuickBooks answered the {currency} exchange rate for {as_of.isoformat()} "
                f"without a positive Rate (got {rate!r})",
                advice="nothing was changed; look at the currency's rate in QuickBooks",
            )
        return rate

    async def _cached_read(
        self,
        key: str,
        fetch: QBOCall[T],
        *,
        strategy: SyncStrategy | None,
        force: bool,
    ) -> CachedRead[T]:
        cache = self.infra.cache
        if not force:
            hit = await cache.get(self.business_id, QBO_PLATFORM, key)
            if hit is not None:
                due = strategy is not None and await self.should_sync(QBO_PLATFORM, strategy)
                if not due:
                    self.metrics.incr(m.CACHE_HITS, self.realm_id)
                    return CachedRead(hit.value["data"], hit.as_of, False, hit.age)
        self.metrics.incr(m.CACHE_MISSES, self.realm_id)
        used = strategy or (SyncStrategy.FORCED if force else SyncStrategy.IDLE)
        try:
            data: T = await self.execute_qbo_call(
                fetch, priority=Priority.DATA_FETCH, is_write=False
            )
        except (QBOError, *_DEFERRABLE) as exc:
            await self.record_sync(QBO_PLATFORM, used, success=False, error=str(exc))
            stale = await cache.get_stale(self.business_id, QBO_PLATFORM, key)
            if stale is None:
                raise SyncUnavailable(
                    f"QuickBooks could not be read for {key} ({exc}) and Oodaloo has no earlier "
                    "copy to show; try again when QuickBooks is reachable"
                ) from exc
            self.metrics.incr(m.STALE_SERVED, self.realm_id)
            log_event(
                logging.WARNING,
                f"serving {key} from the last known good copy of {stale.as_of.isoformat()}: {exc}",
                realm_id=self.realm_id,
                business_id=self.business_id,
            )
            return CachedRead(stale.value["data"], stale.as_of, True, stale.age)
        await cache.set(self.business_id, QBO_PLATFORM, {"data": data}, key=key)
        await self.record_sync(QBO_PLATFORM, used, success=True)
        # The copy just stored carries the "as of" every later read of it will show.
        stored = await cache.get(self.business_id, QBO_PLATFORM, key)
        as_of = stored.as_of if stored is not None else self.infra.clock.now()
        return CachedRead(data, as_of, False, timedelta(0))

    # --- writes: money-moving user actions ------------------------------------------------------

    async def create_payment_immediate(self, intent: BillPaymentIntent) -> ActionOutcome:
        """Pay a bill now (call pattern 1: highest priority), exactly once.

        The contract, because this moves real money:
        - The amount is a Decimal, never a float (a float cannot hold most cent values).
        - Idempotency is explicit: the action's key is derived from business, operation, bill,
          amount and the bill's SyncToken, and is recorded in the ledger BEFORE anything is sent.
          The same request again (a double click, a second worker, a Slack retry) returns the
          first action's status without calling QuickBooks; the same key with a different payload
          is refused with `ConflictingAction`.
        - The key is sent as QuickBooks' `requestid`, and written into the payment's memo as
          `oodaloo:<key>` so reconciliation can recognise it.
        - An answer that proves nothing was applied (validation fault) fails the action with
          QuickBooks' reason, without retrying. An answer that leaves it open (timeout, 5xx,
          dropped connection) is retried with the SAME requestid within the user-action budget
          (three tries, waiting 1 s then 2 s); still open, the action stays `unknown` and the
          reconciler settles it by looking in QuickBooks. A 429 backs the realm off and retries.
        - If QuickBooks is unavailable (circuit open, no rate-limit slot in time), the action is
          kept `pending`, not dropped, and goes through when QuickBooks is back.
        """
        self._check_tenant(intent.business_id, intent.realm_id)
        return await self._run_action(intent.to_action(), intent.requested_by)

    async def record_payment(self, intent: CustomerPaymentIntent) -> ActionOutcome:
        """Record a customer's payment against an invoice, exactly once (same contract as
        `create_payment_immediate`: ledger first, key as requestid and memo marker)."""
        self._check_tenant(intent.business_id, intent.realm_id)
        return await self._run_action(intent.to_action(), intent.requested_by)

    async def send_invoice(self, intent: InvoiceSendIntent) -> ActionOutcome:
        """Email an invoice reminder through QuickBooks, once per invoice version."""
        self._check_tenant(intent.business_id, intent.realm_id)
        return await self._run_action(intent.to_action(), intent.requested_by)

    def _check_tenant(self, business_id: str, realm_id: str) -> None:
        if business_id != self.business_id or realm_id != self.realm_id:
            raise ValueError(
                f"this SmartSyncService serves business {self.business_id} (realm {self.realm_id}); "
                f"refusing an action for business {business_id} (realm {realm_id})"
            )

    async def _run_action(self, intent: ActionIntent, requested_by: str) -> ActionOutcome:
        ledger = self.infra.ledger
        recorded = await ledger.record(intent)  # ConflictingAction propagates: a refusal
        action = recorded.action
        if not recorded.created:
            self.metrics.incr(m.DEDUPLICATED, self.realm_id)
            log_event(
                logging.INFO,
                f"repeated request by {requested_by} collapsed into action in state {action.state}",
                realm_id=self.realm_id,
                action_key=action.key,
                business_id=self.business_id,
            )
            return outcome_for(action, deduplicated=True)
        owner = self.new_owner()
        claimed = await ledger.claim(
            action.key, owner, self.infra.settings.write_lease_seconds(Priority.USER_ACTION)
        )
        if claimed is None:
            # Another worker took it between our record and claim: report what it is doing.
            self.metrics.incr(m.LOST_RACES, self.realm_id)
            current = await ledger.get(action.key)
            return outcome_for(current or action, deduplicated=True)
        log_event(
            logging.INFO,
            f"sending {claimed.operation} requested by {requested_by}",
            realm_id=self.realm_id,
            action_key=claimed.key,
            business_id=self.business_id,
        )
        return await self.perform_claimed(claimed, owner)

    def new_owner(self) -> str:
        """A lease owner id: this worker, plus a nonce so two tasks never share a lease."""
        return f"{self.infra.worker_id}/{uuid.uuid4().hex[:8]}"

    async def perform_claimed(
        self,
        action: Action,
        owner: str,
        *,
        priority: Priority = Priority.USER_ACTION,
        possibly_applied: bool = False,
    ) -> ActionOutcome:
        """Send an action this worker has claimed and record what came of it.

        Used for fresh clicks and by the reconciler (a deferred action, or one proven absent from
        QuickBooks). `possibly_applied` says an earlier try may already have reached QuickBooks:
        then a refusal no longer proves nothing happened, and the action is left `unknown`.
        """
        send = _sender_for(action)
        policy = self.infra.settings.retry_policy(priority)
        maybe_applied = possibly_applied

        async def one_try() -> dict[str, Any]:
            nonlocal maybe_applied
            try:
                return await self._attempt(send, priority)
            except QBOError as exc:
                if exc.outcome is Outcome.UNKNOWN:
                    maybe_applied = True
                raise

        def retry_on(error: BaseException) -> bool:
            # The requestid makes every QBO write safe to repeat; validation faults never are.
            return isinstance(error, QBOError) and error.retryable_safely(True, True)

        retrying = policy.retrying(retry_on, before_sleep=self._note_retry(action.key))
        try:
            result: dict[str, Any] = await retrying(one_try)
        except _DEFERRABLE as exc:
            if maybe_applied:
                return await self._leave_unknown(action, owner, exc)
            return await self._defer(action, owner, _deferral_reason(exc), sent=False)
        except QBOValidationError as exc:
            if maybe_applied:
                return await self._leave_unknown(action, owner, exc)
            return await self._fail(action, owner, exc)
        except QBOError as exc:
            if maybe_applied or exc.outcome is Outcome.UNKNOWN:
                return await self._leave_unknown(action, owner, exc)
            # Refused before doing anything (throttled, auth, unreachable): keep it to send later.
            return await self._defer(action, owner, str(exc))
        return await self._succeed(action, owner, result)

    async def _succeed(self, action: Action, owner: str, result: dict[str, Any]) -> ActionOutcome:
        object_id = result.get("Id")
        try:
            done = await self.infra.ledger.mark_succeeded(
                action.key, owner, None if object_id is None else str(object_id), result
            )
        except LeaseLost as lost:
            return self._lost_lease(lost)
        self.metrics.incr(m.WRITES_SUCCEEDED, self.realm_id)
        log_event(
            logging.INFO,
            f"{action.operation} succeeded in QuickBooks as {object_id}",
            realm_id=self.realm_id,
            action_key=action.key,
            business_id=self.business_id,
        )
        await self.invalidate_after(action)
        return outcome_for(done)

    async def _fail(self, action: Action, owner: str, error: QBOError) -> ActionOutcome:
        try:
            done = await self.infra.ledger.mark_failed(action.key, owner, _reason(error))
        except LeaseLost as lost:
            return self._lost_lease(lost)
        self.metrics.incr(m.WRITES_FAILED, self.realm_id)
        log_event(
            logging.WARNING,
            f"{action.operation} refused by QuickBooks: {error}",
            realm_id=self.realm_id,
            action_key=action.key,
            business_id=self.business_id,
        )
        return outcome_for(done)

    async def _defer(
        self, action: Action, owner: str, reason: str, *, sent: bool = True
    ) -> ActionOutcome:
        return await self._park(
            action,
            self.infra.ledger.release_to_pending(action.key, owner, reason, sent=sent),
            m.WRITES_DEFERRED,
            f"{action.operation} kept pending to send later: {reason}",
        )

    async def _leave_unknown(
        self, action: Action, owner: str, error: BaseException
    ) -> ActionOutcome:
        return await self._park(
            action,
            self.infra.ledger.mark_unknown(action.key, owner, str(error)),
            m.UNKNOWN_OUTCOMES,
            f"{action.operation} outcome unknown, left for reconciliation: {error}",
        )

    async def _park(
        self, action: Action, transition: Awaitable[Action], counter: str, message: str
    ) -> ActionOutcome:
        """Record that a write is not settled yet (pending or unknown) and hand it to reconciliation."""
        try:
            parked = await transition
        except LeaseLost as lost:
            return self._lost_lease(lost)
        self.metrics.incr(counter, self.realm_id)
        log_event(
            logging.WARNING,
            message,
            realm_id=self.realm_id,
            action_key=action.key,
            business_id=self.business_id,
        )
        await self.schedule_reconciliation(action.key)
        return outcome_for(parked)

    def _lost_lease(self, lost: LeaseLost) -> ActionOutcome:
        # Our lease ran out and another worker took the action over; its view wins, and since
        # every try carried the same requestid nothing was applied twice.
        log_event(
            logging.WARNING,
            f"lease lost while finishing the action: {lost}",
            realm_id=self.realm_id,
            action_key=lost.action.key,
            business_id=self.business_id,
        )
        return outcome_for(lost.action, deduplicated=True)

    async def invalidate_after(self, action: Action) -> None:
        """Drop cached reads a settled write has made out of date (bills, invoices, balances)."""
        for key in _STALE_AFTER_WRITE.get(action.operation, ()):
            await self.infra.cache.invalidate(action.business_id, QBO_PLATFORM, key)

    # --- cache and timing, as the architecture record names them -----------------------------

    async def get_cache(self, platform: str, key: str | None = None) -> CachedRead[Any] | None:
        """A fresh cached value for this business, or None (expired entries are not returned)."""
        hit = await self.infra.cache.get(self.business_id, platform, key)
        if hit is None:
            self.metrics.incr(m.CACHE_MISSES, self.realm_id)
            return None
        self.metrics.incr(m.CACHE_HITS, self.realm_id)
        return CachedRead(hit.value, hit.as_of, False, hit.age)

    async def set_cache(
        self,
        platform: str,
        data: dict[str, Any],
        key: str | None = None,
        ttl_minutes: int | None = None,
    ) -> None:
        ttl = None if ttl_minutes is None else timedelta(minutes=ttl_minutes)
        await self.infra.cache.set(self.business_id, platform, data, key=key, ttl=ttl)

    async def should_sync(self, platform: str, strategy: SyncStrategy) -> bool:
        return await self.infra.timing.should_sync(self.business_id, platform, strategy)

    async def record_sync(
        self,
        platform: str,
        strategy: SyncStrategy,
        success: bool = True,
        error: str | None = None,
    ) -> None:
        await self.infra.timing.record_sync(
            self.business_id, platform, strategy, success=success, error=error
        )

    async def schedule_reconciliation(self, key: str) -> None:
        """Hand an unsettled action to the layer above's queue (if it gave one).

        Without one nothing is lost: the reconciler's periodic sweep finds every unknown, stuck or
        deferred action in the ledger anyway. A failing queue must not fail the user's click.
        """
        scheduler = self.infra.on_reconcile
        if scheduler is None:
            return
        try:
            await scheduler(key)
        except Exception:  # the sweep is the safety net; the click has already been answered
            logger.warning(
                "could not queue reconciliation of action %s; the periodic sweep will pick it up",
                key,
                exc_info=True,
                extra={"realm_id": self.realm_id, "action_key": key},
            )


def _sender_for(action: Action) -> QBOCall[dict[str, Any]]:
    """The one QuickBooks request an action stands for, always with its key as the requestid."""
    payload = action.payload
    key = action.key
    if action.operation == BILL_PAYMENT_CREATE:

        async def pay_bill(client: QBORawClient) -> dict[str, Any]:
            return await client.create("BillPayment", payload, request_id=key)

        return pay_bill
    if action.operation == CUSTOMER_PAYMENT_CREATE:

        async def record_customer_payment(client: QBORawClient) -> dict[str, Any]:
            return await client.create("Payment", payload, request_id=key)

        return record_customer_payment
    if action.operation == INVOICE_SEND:
        send_to = payload.get("send_to")
        invoice_id = action.target_id

        async def send(client: QBORawClient) -> dict[str, Any]:
            return await client.send_invoice(invoice_id, send_to, request_id=key)

        return send
    raise ValueError(
        f"action {key} has operation {action.operation!r}, which SmartSyncService cannot send"
    )


def _reason(error: QBOError) -> str:
    """QuickBooks' own words for a refusal, as specific as the fault allows."""
    if isinstance(error, QBOValidationError) and error.errors:
        return "; ".join(
            f"{detail.message} ({detail.detail})" if detail.detail else detail.message
            for detail in error.errors
        )
    return str(error)


def _deferral_reason(error: BaseException) -> str:
    if isinstance(error, CircuitOpen):
        return f"QuickBooks is unavailable for this company right now ({error})"
    return f"QuickBooks is busy for this company right now ({error})"


__all__ = [
    "READ_OPERATIONS",
    "WRITE_OPERATIONS",
    "SmartSyncService",
    "SyncUnavailable",
    "outcome_for",
]
