"""What a user asked Oodaloo to do in QuickBooks (intents) and what came of it (outcomes).

An intent is plain data handed down by the domain layer: which bill to pay, from which bank
account, how much. It becomes an action in the ledger (`sync.ledger.ActionIntent`) whose key is
derived from its meaning, so the same click twice is the same action. The key travels to QuickBooks
twice: as the `requestid` (QuickBooks answers a repeat with the first response) and as a marker in
the created object's memo (`PrivateNote`), which is how reconciliation recognises our own payment
after a lost response or a crash.

Amounts are `Decimal` only: a float cannot hold most cent values, and a payment that is off by a
cent is a wrong payment. Intents refuse anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Generic, TypeVar

from sync.db import exact_cents
from sync.ledger import ActionIntent, ActionState, action_key, qbo_target

#: Ledger operation names (stable: they are part of every action key).
BILL_PAYMENT_CREATE = "bill_payment.create"
CUSTOMER_PAYMENT_CREATE = "payment.create"
INVOICE_SEND = "invoice.send"

#: The memo marker QuickBooks keeps on objects Oodaloo created: "oodaloo:<action key>".
MARKER_PREFIX = "oodaloo:"
_MARKER = re.compile(r"oodaloo:(oo1-[a-z2-7]+)")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def marker_for(key: str) -> str:
    return f"{MARKER_PREFIX}{key}"


def markers_in(private_note: object) -> list[str]:
    """Every action key marked in a memo (an object edited by hand might carry none or several)."""
    if not isinstance(private_note, str):
        return []
    return _MARKER.findall(private_note)


def _money(value: object, what: str) -> Decimal:
    amount = exact_cents(value, what)
    if amount <= 0:
        raise ValueError(f"{what} must be positive, got {amount}")
    return amount


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def _ref(value: str) -> dict[str, str]:
    return {"value": value}


@dataclass(frozen=True)
class BillPaymentIntent:
    """Pay (part of) one bill from one bank account: a QuickBooks BillPayment by check.

    `bill_sync_token` is the bill's SyncToken when the user decided; it is part of the idempotency
    key, so a repeated click on the same bill version is one payment, while a payment decided after
    the bill changed (edited, partly paid) is a new action.
    `requested_by` names who clicked, for logs; it is not part of what the payment means, so two
    approvers clicking the same button collapse into one payment instead of conflicting.

    A bill in a foreign currency is paid in that currency: `currency` is the bill's and
    `exchange_rate` QuickBooks' own rate for the pay date (home units per unit of `currency`);
    `amount` stays in the bill's currency. Both go into the BillPayment (CurrencyRef,
    ExchangeRate), never into the key: a repeated click that read another rate has the same key,
    so the ledger refuses it (ConflictingAction) rather than pay the bill twice.
    A bill in the home currency leaves both None and the BillPayment as it always was.
    """

    business_id: str
    realm_id: str
    bill_id: str
    bill_sync_token: str
    vendor_id: str
    amount: Decimal
    bank_account_id: str
    pay_date: date
    requested_by: str
    currency: str | None = None
    exchange_rate: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("business_id", "realm_id", "bill_id", "vendor_id", "bank_account_id"):
            _text(getattr(self, name), name)
        if not isinstance(self.bill_sync_token, str):
            raise TypeError(
                f"bill_sync_token must be the bill's SyncToken string, got {self.bill_sync_token!r}"
            )
        if not isinstance(self.pay_date, date) or isinstance(self.pay_date, datetime):
            raise TypeError(f"pay_date must be a date, got {self.pay_date!r}")
        object.__setattr__(self, "amount", _money(self.amount, "payment amount"))
        if (self.currency is None) != (self.exchange_rate is None):
            raise ValueError(
                "a payment in a foreign currency needs both its currency and QuickBooks' exchange "
                f"rate (got currency={self.currency!r}, exchange_rate={self.exchange_rate!r})"
            )
        if self.currency is not None and not _CURRENCY.match(self.currency):
            raise ValueError(
                f"currency must be an ISO 4217 code such as 'EUR', got {self.currency!r}"
            )
        rate = self.exchange_rate
        if rate is not None and (
            not isinstance(rate, Decimal) or not rate.is_finite() or rate <= 0
        ):
            raise ValueError(f"exchange_rate must be a positive Decimal, got {rate!r}")

    @property
    def key(self) -> str:
        return action_key(
            self.business_id,
            BILL_PAYMENT_CREATE,
            qbo_target(self.realm_id, "Bill", self.bill_id),
            self.amount,
            self.bill_sync_token,
        )

    def body(self) -> dict[str, Any]:
        """The BillPayment QuickBooks is asked to create, with the action's marker in its memo."""
        body: dict[str, Any] = {
            "VendorRef": _ref(self.vendor_id),
            "PayType": "Check",
            "CheckPayment": {"BankAccountRef": _ref(self.bank_account_id)},
            "TotalAmt": self.amount,
            "TxnDate": self.pay_date.isoformat(),
            "PrivateNote": f"Paid with Oodaloo {marker_for(self.key)}",
            "Line": [
                {"Amount": self.amount, "LinkedTxn": [{"TxnId": self.bill_id, "TxnType": "Bill"}]}
            ],
        }
        if self.currency is not None:
            # Amounts are in CurrencyRef's currency; ExchangeRate is home units per unit of it
            # (https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies).
            # The rate is sent, never left to a default: Intuit's reference does not say what an
            # omitted rate becomes (one integrator reports the day's rate, dev.to/viraj_geeth_e6dc448fe4d43/
            # pushing-official-central-bank-exchange-rates-into-quickbooks-online-one-post-per-currency-per-day-3kk3;
            # others fault 2410 "ExchangeRate is missing"), and the payment must book at the rate
            # the person was told.
            body["CurrencyRef"] = _ref(self.currency)
            body["ExchangeRate"] = self.exchange_rate
        return body

    def to_action(self) -> ActionIntent:
        return ActionIntent(
            realm_id=self.realm_id,
            business_id=self.business_id,
            operation=BILL_PAYMENT_CREATE,
            target_type="Bill",
            target_id=self.bill_id,
            amount=self.amount,
            target_version=self.bill_sync_token,
            payload=self.body(),
        )


@dataclass(frozen=True)
class CustomerPaymentIntent:
    """Record a customer's payment against one invoice: a QuickBooks Payment.

    Without `deposit_account_id` QuickBooks puts the money in Undeposited Funds, as its own UI does.
    """

    business_id: str
    realm_id: str
    invoice_id: str
    invoice_sync_token: str
    customer_id: str
    amount: Decimal
    payment_date: date
    requested_by: str
    deposit_account_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("business_id", "realm_id", "invoice_id", "customer_id"):
            _text(getattr(self, name), name)
        if not isinstance(self.invoice_sync_token, str):
            raise TypeError(
                f"invoice_sync_token must be the invoice's SyncToken string, got {self.invoice_sync_token!r}"
            )
        if not isinstance(self.payment_date, date) or isinstance(self.payment_date, datetime):
            raise TypeError(f"payment_date must be a date, got {self.payment_date!r}")
        object.__setattr__(self, "amount", _money(self.amount, "payment amount"))

    @property
    def key(self) -> str:
        return action_key(
            self.business_id,
            CUSTOMER_PAYMENT_CREATE,
            qbo_target(self.realm_id, "Invoice", self.invoice_id),
            self.amount,
            self.invoice_sync_token,
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "CustomerRef": _ref(self.customer_id),
            "TotalAmt": self.amount,
            "TxnDate": self.payment_date.isoformat(),
            "PrivateNote": f"Recorded with Oodaloo {marker_for(self.key)}",
            "Line": [
                {
                    "Amount": self.amount,
                    "LinkedTxn": [{"TxnId": self.invoice_id, "TxnType": "Invoice"}],
                }
            ],
        }
        if self.deposit_account_id:
            body["DepositToAccountRef"] = _ref(self.deposit_account_id)
        return body

    def to_action(self) -> ActionIntent:
        return ActionIntent(
            realm_id=self.realm_id,
            business_id=self.business_id,
            operation=CUSTOMER_PAYMENT_CREATE,
            target_type="Invoice",
            target_id=self.invoice_id,
            amount=self.amount,
            target_version=self.invoice_sync_token,
            payload=self.body(),
        )


@dataclass(frozen=True)
class InvoiceSendIntent:
    """Email an invoice (a payment reminder) through QuickBooks.

    `balance` is the open amount the reminder is about: it is part of the key, with the invoice's
    SyncToken, so one reminder per invoice version is sent however often the button is pressed
    (QuickBooks bumps the SyncToken when it emails an invoice, so next week's reminder is new).
    """

    business_id: str
    realm_id: str
    invoice_id: str
    invoice_sync_token: str
    balance: Decimal
    requested_by: str
    send_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("business_id", "realm_id", "invoice_id"):
            _text(getattr(self, name), name)
        if not isinstance(self.invoice_sync_token, str):
            raise TypeError(
                f"invoice_sync_token must be the invoice's SyncToken string, got {self.invoice_sync_token!r}"
            )
        object.__setattr__(self, "balance", exact_cents(self.balance, "invoice balance"))
        if self.send_to is not None and "@" not in self.send_to:
            raise ValueError(f"send_to must be an email address, got {self.send_to!r}")

    @property
    def key(self) -> str:
        return action_key(
            self.business_id,
            INVOICE_SEND,
            qbo_target(self.realm_id, "Invoice", self.invoice_id),
            self.balance,
            self.invoice_sync_token,
        )

    def to_action(self) -> ActionIntent:
        return ActionIntent(
            realm_id=self.realm_id,
            business_id=self.business_id,
            operation=INVOICE_SEND,
            target_type="Invoice",
            target_id=self.invoice_id,
            amount=self.balance,
            target_version=self.invoice_sync_token,
            payload={"send_to": self.send_to},
        )


@dataclass(frozen=True)
class ActionOutcome:
    """What happened to a write, in terms the user can be told at once.

    `state` is the ledger state: succeeded (done, `qbo_object_id` set), failed (QuickBooks refused
    it; nothing was applied; `message` says why), pending (not sent yet; it goes through when
    QuickBooks is reachable again), in_flight (another worker is sending it right now), unknown (sent
    but no answer: reconciliation decides, never a blind resend) or needs_human.
    `deduplicated` is True when this request was a repeat of an action already recorded, and so
    did not reach QuickBooks.
    """

    key: str
    state: ActionState
    qbo_object_id: str | None
    deduplicated: bool
    message: str

    @property
    def succeeded(self) -> bool:
        return self.state is ActionState.SUCCEEDED

    @property
    def settled(self) -> bool:
        """Whether the outcome is final (no background work will change it)."""
        return self.state in (ActionState.SUCCEEDED, ActionState.FAILED, ActionState.NEEDS_HUMAN)


T = TypeVar("T")


@dataclass(frozen=True)
class CachedRead(Generic[T]):
    """Data read from QuickBooks with when it was read.

    `stale` is True when QuickBooks could not be asked (outage, open circuit, throttling) and this
    is the last known good copy; `age` says how old it is, so every number shown can say "as of".
    """

    data: T
    as_of: datetime
    stale: bool
    age: timedelta
