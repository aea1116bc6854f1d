"""Bookkeeping and validation for writes through the sandbox's v3 API.

Every write is planned first on copies of the objects it touches (validating as it goes, raising
QBOFault with QBO's codes) and committed only when the whole plan is valid, so a refused request
changes nothing. Committing runs under the realm's lock.

What stays coherent:
- Bill / Invoice: TotalAmt is the sum of the lines (plus tax on invoices); Balance is the open
  amount, TotalAmt less what payments applied.
- BillPayment: reduces each linked Bill's Balance, links the payment on the bill ("BillPaymentCheck" /
  "BillPaymentCreditCard"), takes the money out of the bank account (or adds it to what is owed on
  the card). Deleting or voiding it puts all of that back.
- Payment: reduces linked Invoices' Balance and adds the money to its deposit account (Undeposited
  Funds when none is named).
- Purchase: takes money out of its bank account (adds to a card's balance); Deposit adds to its
  deposit account and, for deposited payments, takes it out of Undeposited Funds.
- Every transaction posts to the general ledger (qbo_sandbox/ledger.py): a write applies the
  difference between the old and the new postings to each account's CurrentBalance (balance-sheet
  accounts, in the account's currency), so account balances always equal `ledger.balances()`.
  Update, delete and void reverse the old postings inside the same plan: a refusal changes nothing.
- Multicurrency follows qbo_sandbox/currency.py: off, everything is in the home currency; on, a
  transaction in a foreign currency carries its ExchangeRate and TotalAmt/Balance stay in its own
  currency, with HomeTotalAmt in the home currency.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_sandbox import currency, faults, ledger
from qbo_sandbox.faults import QBOFault
from qbo_sandbox.store import Realm, copy_obj, parse_time

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Maximum lengths QBO enforces on the strings people type (code 2050 beyond them).
MAX_LENGTHS: dict[str, int] = {
    "DisplayName": 500,
    "DocNumber": 21,
    "PrivateNote": 4000,
    "Name": 100,
    "CompanyName": 100,
    "GivenName": 100,
    "FamilyName": 100,
}
# Top-level fields the server owns: a client's values for them are ignored.
SERVER_FIELDS = ("Id", "SyncToken", "MetaData", "domain", "sparse")
#: Entities whose TotalAmt QuickBooks works out from their lines (and a deposit's cash back):
#: "Calculated by QuickBooks business logic; any value you supply is over-written by QuickBooks"
#: (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/purchase,
#: https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/deposit), so
#: a sparse update that leaves TotalAmt out has it worked out again.
TOTALLED_FROM_LINES = frozenset({"Deposit", "Purchase"})
# Per entity: fields that only bookkeeping changes, kept across client updates.
MANAGED_FIELDS: dict[str, tuple[str, ...]] = {
    "Bill": ("LinkedTxn",),
    "Invoice": ("LinkedTxn", "EmailStatus", "DeliveryInfo"),
    # A payment's top-level LinkedTxn names the deposit that banked it.
    "Payment": ("LinkedTxn",),
    "SalesReceipt": ("LinkedTxn",),
    "VendorCredit": ("LinkedTxn",),
    "CreditMemo": ("LinkedTxn",),
    # An account's currency is fixed once it exists (QuickBooks: "after you've posted a transaction
    # to an account ... you can't change the currency").
    "Account": ("CurrentBalance", "CurrentBalanceWithSubAccounts", "CurrencyRef"),
    "Vendor": ("CurrencyRef",),
    "Customer": ("CurrencyRef",),
}
# Which stored entity each kind of reference points at.
REF_TARGETS: dict[str, str] = {
    "VendorRef": "Vendor",
    "CustomerRef": "Customer",
    "APAccountRef": "Account",
    "ARAccountRef": "Account",
    "DepositToAccountRef": "Account",
    "AccountRef": "Account",
    "BankAccountRef": "Account",
    "CCAccountRef": "Account",
    "FromAccountRef": "Account",
    "ToAccountRef": "Account",
    "CreditCardAccountRef": "Account",
    "ItemRef": "Item",
}
BANK = "Bank"
CARD = "Credit Card"
VOIDABLE = ("Invoice", "Payment", "BillPayment", "SalesReceipt")
# Every transaction that posts to the ledger can be deleted.
DELETABLE = ledger.TRANSACTION_ENTITIES
NAME_LISTS = ("Vendor", "Customer")
# Documents a payment settles (+1) or applies as a credit (-1), and how they link back to it.
BILL_PAYMENT_LINKS = {"Bill": 1, "VendorCredit": -1}
PAYMENT_LINKS = {"Invoice": 1, "CreditMemo": -1}
# Accounts QuickBooks creates itself when a company first needs them:
# key -> (Name, AccountType, AccountSubType).
SYSTEM_ACCOUNTS: dict[str, tuple[str, str, str]] = {
    "ap": ("Accounts Payable (A/P)", "Accounts Payable", "AccountsPayable"),
    "ar": ("Accounts Receivable (A/R)", "Accounts Receivable", "AccountsReceivable"),
    "undeposited": ("Undeposited Funds", "Other Current Asset", "UndepositedFunds"),
    # "When the multicurrency feature is enabled ... a new account named Exchange Gain or Loss"
    # (https://support.quickbooks.intuit.com/support/articles/SLN63815), an Other Expense account.
    "fx": (ledger.EXCHANGE_GAIN_OR_LOSS, "Other Expense", "ExchangeGainOrLoss"),
    "tax": ("Sales Tax Payable", "Other Current Liability", "SalesTaxPayable"),
}


def money(value: Any, field: str) -> Decimal:
    """An amount as Decimal quantized to cents; refuses what is not a number (never via float)."""
    if isinstance(value, bool) or value is None or value == "":
        raise faults.invalid_value(field, f"{value!r} is not an amount")
    try:
        amount = Decimal(value) if not isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        raise faults.invalid_value(field, f"{value!r} is not an amount") from None
    if not amount.is_finite():
        raise faults.invalid_value(field, f"{value!r} is not an amount")
    return amount.quantize(CENT)


def _clean(value: Any) -> Any:
    """Drop what QBO treats as absent: nulls and empty strings (python-quickbooks sends both)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


class Plan:
    """Copies of the objects a write touches; committed together or not at all."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm
        self.changed: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, entity: str, ident: str) -> dict[str, Any] | None:
        key = (entity, str(ident))
        if key in self.changed:
            return self.changed[key]
        obj = self.realm.get(entity, str(ident))
        if obj is not None:
            self.changed[key] = obj
        return obj

    def commit(self, skip: tuple[str, str] | None = None) -> None:
        for (entity, ident), obj in self.changed.items():
            if (entity, ident) == skip:
                continue
            current = self.realm.get(entity, ident)
            if current is not None and current != obj:
                self.realm.put(entity, obj)


class Books:
    """The bookkeeping rules of one realm."""

    def __init__(self, realm: Realm) -> None:
        self.realm = realm

    # -- helpers ---------------------------------------------------------------------------------

    def today(self) -> str:
        return self.realm.now().astimezone(self.realm.tz).date().isoformat()

    def _referent(
        self, plan: Plan, ref: Any, field: str, entity: str, *, owner: str
    ) -> dict[str, Any]:
        if not isinstance(ref, dict) or not ref.get("value"):
            raise faults.required_param_missing(f"{field}.value", owner)
        target = plan.get(entity, str(ref["value"]))
        if target is None or target.get("Active") is False:
            raise faults.object_not_found(entity, str(ref["value"]), field)
        return target

    def _fill_ref(
        self, plan: Plan, ref: dict[str, Any], field: str, entity: str, owner: str
    ) -> dict[str, Any]:
        target = self._referent(plan, ref, field, entity, owner=owner)
        filled = {"value": str(ref["value"])}
        name = target.get("DisplayName") or target.get("FullyQualifiedName") or target.get("Name")
        if name:
            filled["name"] = name
        if "type" in ref:
            filled["type"] = ref["type"]
        return filled

    def _account(self, plan: Plan, ref: Any, field: str, owner: str, *types: str) -> dict[str, Any]:
        account = self._referent(plan, ref, field, "Account", owner=owner)
        if types and account.get("AccountType") not in types:
            raise faults.business_validation(
                f"{field} {account.get('Name')!r} is a {account.get('AccountType')} account; "
                f"{owner} needs a {' or '.join(types)} account here.",
                field,
            )
        return account

    def _adjust_balance(self, account: dict[str, Any], delta: Decimal) -> None:
        balance = money(account.get("CurrentBalance", 0), "CurrentBalance") + delta
        account["CurrentBalance"] = balance
        if "CurrentBalanceWithSubAccounts" in account:
            account["CurrentBalanceWithSubAccounts"] = (
                money(account["CurrentBalanceWithSubAccounts"], "CurrentBalance") + delta
            )

    def postings(self, entity: str, obj: dict[str, Any]) -> list[ledger.Posting]:
        """The postings a transaction makes, or QuickBooks' business validation fault when some
        of its money has no account to post to (what is missing, in words): a transaction that
        does not balance is never stored."""
        try:
            return ledger.postings_of(self.realm, entity, obj)
        except ledger.UnpostableLine as missing:
            raise faults.business_validation(str(missing), missing.element) from None

    def _post(self, plan: Plan, before: list[ledger.Posting], after: list[ledger.Posting]) -> None:
        """Move each account's CurrentBalance by what the postings changed."""
        changes = ledger.current_balance_changes(self.realm, before, after)
        for account_id, delta in changes.items():
            account = plan.get("Account", account_id)
            if account is not None:
                self._adjust_balance(account, delta)

    def post_outside_change(
        self, entity: str, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        """Someone changed a transaction in QuickBooks' own screens (the admin API's raw edits):
        its accounts follow, as they would in QuickBooks. Call under the realm's lock, after
        `postings(entity, new)` accepted the new version."""
        before = self.postings(entity, old) if old is not None else []
        after = self.postings(entity, new) if new is not None else []
        plan = Plan(self.realm)
        self._post(plan, before, after)
        plan.commit()

    def _system_account(self, key: str, code: str | None = None) -> dict[str, Any]:
        """The account QuickBooks keeps for a purpose (A/P or A/R per currency, Undeposited Funds,
        Exchange Gain or Loss, Sales Tax Payable), created the first time it is needed as
        QuickBooks does ("QBO automatically creates accounts receivable (A/R) and accounts payable
        (A/P) accounts in the foreign currency": QuickBooks Online For Dummies, ch. 3)."""
        home = ledger.home_currency(self.realm)
        code = code or home
        finders = {
            "ap": lambda: ledger.default_payable(self.realm, code),
            "ar": lambda: ledger.default_receivable(self.realm, code),
            "undeposited": lambda: ledger.undeposited_funds(self.realm),
            "fx": lambda: ledger.exchange_gain_or_loss(self.realm),
            "tax": lambda: ledger.sales_tax_payable(self.realm),
        }
        found = finders[key]()
        if found is not None:
            return self.realm.table("Account").objects[found]  # a read-only view
        name, kind, sub = SYSTEM_ACCOUNTS[key]
        if code != home:
            name = f"{name} - {code}"
        return self.realm.insert(
            "Account",
            {
                "Name": name,
                "FullyQualifiedName": name,
                "SubAccount": False,
                "Active": True,
                "Classification": ledger.CLASSIFICATION[kind],
                "AccountType": kind,
                "AccountSubType": sub,
                "CurrentBalance": ZERO,
                "CurrentBalanceWithSubAccounts": ZERO,
                "CurrencyRef": currency.currency_ref(code),
            },
        )

    def _system_ref(self, key: str, code: str | None = None) -> dict[str, str]:
        account = self._system_account(key, code)
        return {"value": account["Id"], "name": account["Name"]}

    def _txn_currency(
        self,
        obj: dict[str, Any],
        *,
        party: dict[str, Any] | None = None,
        accounts: tuple[tuple[str, dict[str, Any] | None], ...] = (),
        exact: tuple[tuple[str, dict[str, Any] | None], ...] = (),
    ) -> str:
        """Settle a transaction's CurrencyRef and ExchangeRate, refusing what QuickBooks refuses:
        a currency the company cannot use, a foreign one without its rate, a party or account in
        another foreign currency. `accounts` may be in the home currency or the transaction's;
        `exact` (A/P, A/R) must be in the transaction's."""
        home = ledger.home_currency(self.realm)
        given = obj.get("CurrencyRef")
        code = given.get("value") if isinstance(given, dict) else None
        if not code and party is not None:
            code = ledger.currency_of(party, home)
        code = str(code or home)
        currency.check_currency(self.realm, code)
        obj["CurrencyRef"] = currency.currency_ref(code)
        if party is not None and ledger.currency_of(party, home) != code:
            raise currency.one_foreign_currency(
                f"{party.get('DisplayName')} deals in {ledger.currency_of(party, home)}; this "
                f"transaction is in {code}. Use a {code} vendor or customer, or record it in "
                f"{ledger.currency_of(party, home)}."
            )
        checks = [(f, a, (home, code)) for f, a in accounts] + [(f, a, (code,)) for f, a in exact]
        for field, account, allowed in checks:
            if account is None:
                continue
            own = ledger.currency_of(account, home)
            if own not in allowed:
                raise currency.one_foreign_currency(
                    f"{field} {account.get('Name')!r} is a {own} account; this transaction is in "
                    f"{code}.",
                    field,
                )
        if code == home:
            if ledger.multicurrency_enabled(self.realm):
                obj["ExchangeRate"] = Decimal("1")
            else:
                obj.pop("ExchangeRate", None)
        else:
            if obj.get("ExchangeRate") in (None, ""):
                raise currency.rate_missing(code)
            obj["ExchangeRate"] = currency.parse_rate(obj["ExchangeRate"])
        return code

    def _home_total(self, obj: dict[str, Any]) -> None:
        """HomeTotalAmt and HomeBalance, QuickBooks' convenience fields: TotalAmt and Balance in the
        home currency at the transaction's rate."""
        home = ledger.home_currency(self.realm)
        if ledger.currency_of(obj, home) == home or "TotalAmt" not in obj:
            obj.pop("HomeTotalAmt", None)
            obj.pop("HomeBalance", None)
            return
        rate = ledger.rate_of(obj)
        obj["HomeTotalAmt"] = ledger.to_home(money(obj["TotalAmt"], "TotalAmt"), rate)
        if "Balance" in obj:
            self._home_balance(obj)

    def _check_lengths(self, obj: dict[str, Any]) -> None:
        for name, limit in MAX_LENGTHS.items():
            value = obj.get(name)
            if isinstance(value, str) and len(value) > limit:
                raise faults.invalid_string_length(name, limit, len(value))

    def _check_date(self, obj: dict[str, Any], field: str) -> None:
        value = obj.get(field)
        if value is None:
            return
        try:
            date.fromisoformat(str(value)[:10])
        except ValueError:
            raise faults.invalid_value(field, f"{value!r} is not a date (YYYY-MM-DD)") from None

    def _lines(
        self, obj: dict[str, Any], owner: str, *, required: bool = True
    ) -> list[dict[str, Any]]:
        lines = obj.get("Line")
        if lines is None or (required and not lines):
            if required:
                raise faults.required_param_missing("Line", owner)
            return []
        if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
            raise faults.bad_request("Line must be a list of line objects", "Line")
        next_id = 1 + max(
            (int(ln["Id"]) for ln in lines if str(ln.get("Id", "")).isdigit()), default=0
        )
        number = 0
        for line in lines:
            if "Amount" not in line:
                raise faults.required_param_missing("Line.Amount", owner)
            line["Amount"] = money(line["Amount"], "Line.Amount")
            detail = line.get("DetailType")
            if detail and detail not in ("SubTotalLineDetail",) and "LinkedTxn" not in line:
                if "Id" not in line:
                    line["Id"] = str(next_id)
                    next_id += 1
                number += 1
                line["LineNum"] = number
        return lines

    # -- entry points ------------------------------------------------------------------------

    def create(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = _clean(copy_obj(body))
        for field in SERVER_FIELDS:
            obj.pop(field, None)
        with self.realm.lock:
            if entity == "ExchangeRate":
                return self.set_exchange_rate(obj)
            if entity == "Preferences":
                raise faults.unsupported_operation("Create for Preferences (update it instead)")
            plan = Plan(self.realm)
            self._prepare(plan, entity, obj, old=None)
            effect = _EFFECTS.get(entity)
            if effect is not None:
                # Rehearse the effects on throwaway copies first: a refusal must leave nothing
                # behind, and the real effects need the Id that only inserting assigns.
                effect(self, plan, {**obj, "Id": "pending"}, +1)
            self._complete(entity, obj)
            self.postings(entity, {**obj, "Id": "pending"})  # refused before anything is stored
            created = self.realm.insert(entity, obj)
            applied = Plan(self.realm)
            if effect is not None:
                effect(self, applied, created, +1)
            self._post(applied, [], self.postings(entity, created))
            applied.commit()
            return created

    def update(self, entity: str, body: dict[str, Any], *, sparse: bool) -> dict[str, Any]:
        incoming = _clean(copy_obj(body))
        with self.realm.lock:
            if entity == "Preferences" and ledger.preferences(self.realm) is None:
                self.realm.insert("Preferences", currency.default_preferences())
            old = self._current(entity, incoming)
            if sparse:
                merged = copy_obj(old)
                merged.update({k: v for k, v in incoming.items() if k not in SERVER_FIELDS})
                if entity in TOTALLED_FROM_LINES and "TotalAmt" not in incoming:
                    # Worked out again from the lines, maybe new ones.
                    merged.pop("TotalAmt", None)
            else:
                merged = {k: v for k, v in incoming.items() if k not in SERVER_FIELDS}
                for field in MANAGED_FIELDS.get(entity, ()):
                    if field in old:
                        merged[field] = old[field]
                    else:
                        merged.pop(field, None)
            merged["Id"] = old["Id"]
            merged["MetaData"] = old["MetaData"]
            plan = Plan(self.realm)
            key = (entity, old["Id"])
            before = self.postings(entity, old)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, old, -1)
            self._prepare(plan, entity, merged, old=old)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, merged, +1)
            self._complete(entity, merged)
            self._post(plan, before, self.postings(entity, merged))
            plan.commit(skip=key)
            return self.realm.put(entity, merged)

    def delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity not in DELETABLE:
            raise faults.unsupported_operation(
                f"Delete for {entity} (make it inactive with an update: Active false)"
            )
        with self.realm.lock:
            old = self._current(entity, _clean(copy_obj(body)))
            _refuse_if_deposited(entity, old)
            if entity in ("Bill", "Invoice", "VendorCredit", "CreditMemo") and _has_payments(old):
                raise faults.business_validation(
                    f"{entity} {old['Id']} has payments applied to it; delete or void those "
                    "payments first.",
                    "Id",
                )
            plan = Plan(self.realm)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, old, -1)
            self._post(plan, self.postings(entity, old), [])
            plan.commit(skip=(entity, old["Id"]))
            self.realm.remove(entity, old["Id"])
            return {"status": "Deleted", "domain": "QBO", "Id": old["Id"]}

    def void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        if entity not in VOIDABLE:
            raise faults.unsupported_operation(f"Void for {entity}")
        with self.realm.lock:
            old = self._current(entity, _clean(copy_obj(body)))
            _refuse_if_deposited(entity, old)
            if entity == "Invoice" and _has_payments(old):
                raise faults.business_validation(
                    f"Invoice {old['Id']} has payments applied to it; void or delete those "
                    "payments first.",
                    "Id",
                )
            plan = Plan(self.realm)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, old, -1)
            self._post(plan, self.postings(entity, old), [])
            voided = copy_obj(old)
            voided["TotalAmt"] = ZERO
            if "Balance" in voided:
                voided["Balance"] = ZERO
            for field in ("UnappliedAmt", "HomeTotalAmt"):
                if field in voided:
                    voided[field] = ZERO
            for line in voided.get("Line", []):
                if isinstance(line, dict) and "Amount" in line:
                    line["Amount"] = ZERO
            if entity != "Invoice":
                # A voided payment no longer links the documents it paid.
                for line in voided.get("Line", []):
                    if isinstance(line, dict):
                        line.pop("LinkedTxn", None)
            voided["PrivateNote"] = "Voided"
            plan.commit(skip=(entity, old["Id"]))
            return self.realm.put(entity, voided, operation="Void")

    def send_invoice(self, invoice_id: str, send_to: str | None) -> dict[str, Any]:
        with self.realm.lock:
            invoice = self.realm.get("Invoice", invoice_id)
            if invoice is None:
                raise faults.object_not_found("Invoice", invoice_id, "Id")
            address = send_to or (invoice.get("BillEmail") or {}).get("Address")
            if not address:
                raise faults.business_validation(
                    "The invoice has no BillEmail.Address and no sendTo was given: say where to "
                    "send it.",
                    "sendTo",
                )
            if "@" not in address or len(address) > 100:
                raise faults.invalid_value("sendTo", f"{address!r} is not an email address")
            invoice["EmailStatus"] = "EmailSent"
            invoice["BillEmail"] = {"Address": address}
            invoice["DeliveryInfo"] = {
                "DeliveryType": "Email",
                "DeliveryTime": self.realm.format_time(self.realm.now()),
            }
            return self.realm.put("Invoice", invoice, operation="Emailed")

    # -- shared checks -----------------------------------------------------------------------

    def _current(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        ident = body.get("Id")
        if ident is None:
            raise faults.required_param_missing("Id", entity)
        if "SyncToken" not in body:
            raise faults.required_param_missing("SyncToken", entity)
        old = self.realm.get(entity, str(ident))
        if old is None:
            raise faults.object_not_found(entity, str(ident), "Id")
        if str(body["SyncToken"]) != str(old.get("SyncToken")):
            raise faults.stale_object()
        return old

    def _prepare(
        self, plan: Plan, entity: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        """Validate and complete `obj` in place (names, amounts, defaults)."""
        self._check_lengths(obj)
        for field in ("TxnDate", "DueDate"):
            self._check_date(obj, field)
        preparer = _PREPARERS.get(entity)
        if preparer is not None:
            preparer(self, plan, obj, old)

    # -- per-entity rules --------------------------------------------------------------------

    def _unique_name(self, name: str, entity: str, old: dict[str, Any] | None) -> None:
        # QBO names are unique across vendors and customers (and employees) together.
        for other in NAME_LISTS:
            for ident in self.realm.table(other).lookup("DisplayName", name):
                if old is None or other != entity or ident != old["Id"]:
                    raise faults.duplicate_name(name)

    def prepare_name(self, obj: dict[str, Any], old: dict[str, Any] | None, entity: str) -> None:
        if not obj.get("DisplayName"):
            parts = [obj.get("GivenName"), obj.get("FamilyName")]
            derived = " ".join(p for p in parts if p) or obj.get("CompanyName")
            if not derived:
                raise faults.required_param_missing("DisplayName", entity)
            obj["DisplayName"] = derived
        if old is None or old.get("DisplayName") != obj["DisplayName"]:
            self._unique_name(obj["DisplayName"], entity, old)
        obj.setdefault("PrintOnCheckName", obj["DisplayName"])
        obj.setdefault("Active", True)
        balance = obj.get("Balance", 0) if old is None else old.get("Balance", 0)
        obj["Balance"] = money(balance, "Balance")
        self._party_currency(obj, old, entity)

    def _party_currency(self, obj: dict[str, Any], old: dict[str, Any] | None, owner: str) -> None:
        """A vendor, customer or account has one currency, fixed once it exists."""
        home = ledger.home_currency(self.realm)
        code = ledger.currency_of(obj, home)
        if old is not None and code != ledger.currency_of(old, home):
            raise faults.business_validation(
                f"{owner} {old['Id']} is in {ledger.currency_of(old, home)}; its currency cannot "
                "change. Make a new one in the other currency.",
                "CurrencyRef",
            )
        currency.check_currency(self.realm, code)
        obj["CurrencyRef"] = currency.currency_ref(code)

    def prepare_vendor(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self.prepare_name(obj, old, "Vendor")

    def prepare_customer(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self.prepare_name(obj, old, "Customer")
        obj.setdefault("FullyQualifiedName", obj["DisplayName"])

    def prepare_account(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = obj.get("Name")
        if not name:
            raise faults.required_param_missing("Name", "Account")
        if ":" in name or '"' in name:
            raise faults.invalid_value("Name", "account names cannot contain ':' or '\"'")
        if not obj.get("AccountType"):
            raise faults.required_param_missing("AccountType", "Account")
        for account in self.realm.iter("Account"):
            if account.get("Name") == name and (old is None or account["Id"] != old["Id"]):
                raise faults.duplicate_name(name)
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("Active", True)
        obj.setdefault("SubAccount", False)
        obj.setdefault("Classification", ledger.CLASSIFICATION.get(obj["AccountType"], "Expense"))
        if old is None:
            # CurrentBalance is read-only in QuickBooks: an account starts at zero and moves only
            # with transactions (an opening balance is a journal entry or deposit against Opening
            # Balance Equity).
            obj["CurrentBalance"] = ZERO
            obj["CurrentBalanceWithSubAccounts"] = ZERO
        self._party_currency(obj, old, "Account")
        home = ledger.home_currency(self.realm)
        if obj["CurrencyRef"]["value"] != home and obj["Classification"] not in (
            "Asset",
            "Liability",
        ):
            # "Income and expense accounts always use your Home currency."
            # (https://community.intuit.com/articles/1769486-how-to-add-a-foreign-currency-account)
            raise faults.business_validation(
                f"{obj['AccountType']} accounts are always in the home currency {home}; only "
                "asset and liability accounts (bank, card, A/R, A/P ...) take a foreign currency.",
                "CurrencyRef",
            )

    def _txn_defaults(self, obj: dict[str, Any]) -> None:
        obj.setdefault("TxnDate", self.today())

    def _check_total(self, obj: dict[str, Any], computed: Decimal, owner: str) -> Decimal:
        if "TotalAmt" in obj:
            given = money(obj["TotalAmt"], "TotalAmt")
            if given != computed:
                raise faults.business_validation(
                    f"{owner} TotalAmt {given} does not equal the sum of its lines {computed}.",
                    "TotalAmt",
                )
        return computed

    def _paid_so_far(self, old: dict[str, Any] | None) -> Decimal:
        if old is None:
            return ZERO
        return money(old.get("TotalAmt", 0), "TotalAmt") - money(old.get("Balance", 0), "Balance")

    def _party(
        self, plan: Plan, obj: dict[str, Any], field: str, entity: str, owner: str
    ) -> dict[str, Any]:
        party = self._referent(plan, obj[field], field, entity, owner=owner)
        obj[field] = self._fill_ref(plan, obj[field], field, entity, owner)
        return party

    def _keep_settled_terms(
        self, obj: dict[str, Any], old: dict[str, Any] | None, owner: str
    ) -> None:
        """A document with payments applied keeps the currency, rate and A/P or A/R it was paid
        against: the payments' postings were made at them."""
        if old is None or not _has_payments(old):
            return
        changed = [
            field
            for field in ("CurrencyRef", "APAccountRef", "ARAccountRef")
            if ledger._ref(old.get(field)) != ledger._ref(obj.get(field))
        ]
        if ledger.rate_of(old) != ledger.rate_of(obj):
            changed.append("ExchangeRate")
        if changed:
            raise faults.business_validation(
                f"{owner} {old['Id']} has payments applied to it, so its {changed[0]} cannot "
                "change; delete or void those payments first.",
                changed[0],
            )

    def _expense_lines(self, plan: Plan, obj: dict[str, Any], owner: str) -> Decimal:
        """Validate expense lines (account- or item-based); their total."""
        total = ZERO
        for line in self._lines(obj, owner):
            if line["Amount"] < 0:
                raise faults.business_validation(
                    f"{owner} line amounts cannot be negative.", "Line.Amount"
                )
            kind = line.get("DetailType")
            detail = line.get(kind, {}) if isinstance(kind, str) else {}
            if kind == "AccountBasedExpenseLineDetail":
                if not isinstance(detail, dict) or "AccountRef" not in detail:
                    raise faults.required_param_missing(
                        "Line.AccountBasedExpenseLineDetail.AccountRef", owner
                    )
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", owner
                )
            elif kind == "ItemBasedExpenseLineDetail":
                if not isinstance(detail, dict) or "ItemRef" not in detail:
                    raise faults.required_param_missing(
                        "Line.ItemBasedExpenseLineDetail.ItemRef", owner
                    )
                detail["ItemRef"] = self._fill_ref(
                    plan, detail["ItemRef"], "ItemRef", "Item", owner
                )
            total += line["Amount"]
        return total

    def _sales_lines(self, plan: Plan, obj: dict[str, Any], owner: str) -> Decimal:
        """Validate product, discount and subtotal lines of a sales form; its total with tax."""
        total = ZERO
        for line in self._lines(obj, owner):
            kind = line.get("DetailType")
            if kind == "SubTotalLineDetail":
                continue
            if kind == "DiscountLineDetail":
                total -= line["Amount"]
                continue
            if kind == "SalesItemLineDetail":
                detail = line.get("SalesItemLineDetail")
                if not isinstance(detail, dict):
                    raise faults.required_param_missing("Line.SalesItemLineDetail", owner)
                self._item_line(plan, detail, owner)
            elif kind == "DepositLineDetail":
                detail = line.get("DepositLineDetail") or {}
                if "AccountRef" in detail:
                    detail["AccountRef"] = self._fill_ref(
                        plan, detail["AccountRef"], "AccountRef", "Account", owner
                    )
            total += line["Amount"]
        tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
        if tax not in (None, ""):
            total += money(tax, "TxnTaxDetail.TotalTax")
        return total

    def _item_line(self, plan: Plan, detail: dict[str, Any], owner: str) -> None:
        """A product line posts to its ItemAccountRef: the one given, else the item's income
        account, recorded on the line so later changes to the item leave this sale alone."""
        if "ItemRef" in detail:
            item = self._referent(plan, detail["ItemRef"], "ItemRef", "Item", owner=owner)
            detail["ItemRef"] = self._fill_ref(plan, detail["ItemRef"], "ItemRef", "Item", owner)
            if "ItemAccountRef" not in detail and isinstance(item.get("IncomeAccountRef"), dict):
                detail["ItemAccountRef"] = dict(item["IncomeAccountRef"])
        if "ItemAccountRef" in detail:
            detail["ItemAccountRef"] = self._fill_ref(
                plan, detail["ItemAccountRef"], "ItemAccountRef", "Account", owner
            )
        elif ledger.default_income(self.realm) is None:
            raise faults.required_param_missing("Line.SalesItemLineDetail.ItemRef", owner)

    def _control_account(
        self, plan: Plan, obj: dict[str, Any], field: str, owner: str, kind: str
    ) -> dict[str, Any] | None:
        if field not in obj:
            return None
        account = self._account(plan, obj[field], field, owner, kind)
        obj[field] = self._fill_ref(plan, obj[field], field, "Account", owner)
        return account

    def prepare_bill(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "VendorRef" not in obj:
            raise faults.required_param_missing("VendorRef", "Bill")
        vendor = self._party(plan, obj, "VendorRef", "Vendor", "Bill")
        total = self._check_total(obj, self._expense_lines(plan, obj, "Bill"), "Bill")
        paid = self._paid_so_far(old)
        if total < paid:
            raise faults.business_validation(
                f"Bill total {total} is less than the {paid} already paid on it; delete or void "
                "payments first.",
                "TotalAmt",
            )
        obj["TotalAmt"] = total
        obj["Balance"] = total - paid
        self._txn_defaults(obj)
        obj.setdefault("DueDate", obj["TxnDate"])
        ap = self._control_account(plan, obj, "APAccountRef", "A bill", "Accounts Payable")
        self._txn_currency(obj, party=vendor, exact=(("APAccountRef", ap),))
        self._keep_settled_terms(obj, old, "Bill")

    def prepare_vendor_credit(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if "VendorRef" not in obj:
            raise faults.required_param_missing("VendorRef", "VendorCredit")
        vendor = self._party(plan, obj, "VendorRef", "Vendor", "VendorCredit")
        total = self._expense_lines(plan, obj, "VendorCredit")
        total = self._check_total(obj, total, "VendorCredit")
        used = self._paid_so_far(old)
        if total < used:
            raise faults.business_validation(
                f"VendorCredit total {total} is less than the {used} already applied to bills.",
                "TotalAmt",
            )
        obj["TotalAmt"] = total
        obj["Balance"] = total - used
        self._txn_defaults(obj)
        ap = self._control_account(plan, obj, "APAccountRef", "A vendor credit", "Accounts Payable")
        self._txn_currency(obj, party=vendor, exact=(("APAccountRef", ap),))
        self._keep_settled_terms(obj, old, "VendorCredit")

    def _prepare_sales_document(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None, owner: str
    ) -> dict[str, Any]:
        if "CustomerRef" not in obj:
            raise faults.required_param_missing("CustomerRef", owner)
        customer = self._party(plan, obj, "CustomerRef", "Customer", owner)
        total = self._check_total(obj, self._sales_lines(plan, obj, owner), owner)
        paid = self._paid_so_far(old)
        if total < paid:
            raise faults.business_validation(
                f"{owner} total {total} is less than the {paid} already applied to it.",
                "TotalAmt",
            )
        obj["TotalAmt"] = total
        obj["Balance"] = total - paid
        self._txn_defaults(obj)
        ar = self._control_account(plan, obj, "ARAccountRef", owner, "Accounts Receivable")
        self._txn_currency(obj, party=customer, exact=(("ARAccountRef", ar),))
        self._keep_settled_terms(obj, old, owner)
        return customer

    def prepare_invoice(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        self._prepare_sales_document(plan, obj, old, "Invoice")
        obj.setdefault("DueDate", obj["TxnDate"])
        obj.setdefault("EmailStatus", "NotSet")
        email = (obj.get("BillEmail") or {}).get("Address")
        if email is not None and len(email) > 100:
            raise faults.invalid_string_length("BillEmail.Address", 100, len(email))

    def prepare_credit_memo(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._prepare_sales_document(plan, obj, old, "CreditMemo")
        obj["RemainingCredit"] = obj["Balance"]

    def _receipt(
        self, plan: Plan, obj: dict[str, Any], owner: str, *, required_account: bool
    ) -> None:
        """A sales receipt (money in now) or refund receipt (money out now)."""
        customer = None
        if "CustomerRef" in obj:
            customer = self._party(plan, obj, "CustomerRef", "Customer", owner)
        total = self._check_total(obj, self._sales_lines(plan, obj, owner), owner)
        if total < 0:
            raise faults.business_validation(f"A {owner} cannot total less than zero.", "TotalAmt")
        obj["TotalAmt"] = total
        obj["Balance"] = ZERO
        self._txn_defaults(obj)
        field = "DepositToAccountRef"
        account = None
        if field in obj:
            account = self._account(
                plan, obj[field], field, f"A {owner}", BANK, "Other Current Asset"
            )
            obj[field] = self._fill_ref(plan, obj[field], field, "Account", owner)
        elif required_account:
            raise faults.required_param_missing(field, owner)
        self._txn_currency(obj, party=customer, accounts=((field, account),))

    def prepare_sales_receipt(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self._receipt(plan, obj, "SalesReceipt", required_account=False)

    def prepare_refund_receipt(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        # "DepositToAccountRef ... Account from which payment money is refunded." Required.
        # (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/refundreceipt)
        self._receipt(plan, obj, "RefundReceipt", required_account=True)

    def prepare_bill_payment(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if "VendorRef" not in obj:
            raise faults.required_param_missing("VendorRef", "BillPayment")
        vendor = self._party(plan, obj, "VendorRef", "Vendor", "BillPayment")
        pay_type = obj.get("PayType")
        if pay_type == "Check":
            check = obj.get("CheckPayment")
            if not isinstance(check, dict) or "BankAccountRef" not in check:
                raise faults.required_param_missing("CheckPayment.BankAccountRef", "BillPayment")
            paid_from = self._account(
                plan,
                check["BankAccountRef"],
                "CheckPayment.BankAccountRef",
                "A check bill payment",
                BANK,
            )
            check["BankAccountRef"] = self._fill_ref(
                plan, check["BankAccountRef"], "BankAccountRef", "Account", "BillPayment"
            )
            check.setdefault("PrintStatus", "NotSet")
            obj.pop("CreditCardPayment", None)
            field = "CheckPayment.BankAccountRef"
        elif pay_type == "CreditCard":
            card = obj.get("CreditCardPayment")
            if not isinstance(card, dict) or "CCAccountRef" not in card:
                raise faults.required_param_missing("CreditCardPayment.CCAccountRef", "BillPayment")
            paid_from = self._account(
                plan,
                card["CCAccountRef"],
                "CreditCardPayment.CCAccountRef",
                "A credit card bill payment",
                CARD,
            )
            card["CCAccountRef"] = self._fill_ref(
                plan, card["CCAccountRef"], "CCAccountRef", "Account", "BillPayment"
            )
            obj.pop("CheckPayment", None)
            field = "CreditCardPayment.CCAccountRef"
        elif pay_type is None:
            raise faults.required_param_missing("PayType", "BillPayment")
        else:
            raise faults.invalid_value("PayType", f"{pay_type!r}: use Check or CreditCard")
        if "TotalAmt" not in obj:
            raise faults.required_param_missing("TotalAmt", "BillPayment")
        total = self._settlement_lines(obj, "BillPayment", BILL_PAYMENT_LINKS)
        total = self._check_total(obj, total, "BillPayment")
        if total <= 0:
            raise faults.business_validation(
                "A bill payment must pay a positive amount.", "TotalAmt"
            )
        obj["TotalAmt"] = total
        self._txn_defaults(obj)
        self._txn_currency(obj, party=vendor, accounts=((field, paid_from),))

    def _settlement_lines(
        self, obj: dict[str, Any], owner: str, kinds: dict[str, int], *, required: bool = True
    ) -> Decimal:
        """Lines of a payment, each linking one document it settles or one credit it applies;
        the net amount they move."""
        net = ZERO
        default = next(iter(kinds))
        for line in self._lines(obj, owner, required=required):
            if line["Amount"] <= 0:
                raise faults.business_validation(
                    f"A {owner} line must apply a positive amount.", "Line.Amount"
                )
            links = line.get("LinkedTxn") or []
            if not links or not all(isinstance(link, dict) and link.get("TxnId") for link in links):
                raise faults.required_param_missing("Line.LinkedTxn.TxnId", owner)
            for link in links:
                link.pop("TxnLineId", None)  # python-quickbooks sends 0 here; QBO ignores it
                kind = link.get("TxnType", default)
                if kind not in kinds:
                    raise faults.business_validation(
                        f"A {owner} line links {' or '.join(kinds)}, not {kind}.",
                        "Line.LinkedTxn",
                    )
                link["TxnType"] = kind
                link["TxnId"] = str(link["TxnId"])
            net += kinds[links[0]["TxnType"]] * line["Amount"]
        return net

    def prepare_payment(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "CustomerRef" not in obj:
            raise faults.required_param_missing("CustomerRef", "Payment")
        customer = self._party(plan, obj, "CustomerRef", "Customer", "Payment")
        if "TotalAmt" not in obj:
            raise faults.required_param_missing("TotalAmt", "Payment")
        total = money(obj["TotalAmt"], "TotalAmt")
        if total < 0:
            raise faults.business_validation("A payment cannot be negative.", "TotalAmt")
        applied = self._settlement_lines(obj, "Payment", PAYMENT_LINKS, required=False)
        if applied > total:
            raise faults.business_validation(
                f"Payment TotalAmt {total} is less than the {applied} its lines apply.", "TotalAmt"
            )
        obj["TotalAmt"] = total
        obj["UnappliedAmt"] = total - applied
        account = None
        if "DepositToAccountRef" in obj:
            account = self._account(
                plan,
                obj["DepositToAccountRef"],
                "DepositToAccountRef",
                "A payment",
                BANK,
                "Other Current Asset",
            )
            obj["DepositToAccountRef"] = self._fill_ref(
                plan, obj["DepositToAccountRef"], "DepositToAccountRef", "Account", "Payment"
            )
        obj.setdefault("ProcessPayment", False)
        self._txn_defaults(obj)
        self._txn_currency(obj, party=customer, accounts=(("DepositToAccountRef", account),))

    def prepare_purchase(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        kind = obj.get("PaymentType")
        if kind not in ("Cash", "Check", "CreditCard"):
            if kind is None:
                raise faults.required_param_missing("PaymentType", "Purchase")
            raise faults.invalid_value("PaymentType", f"{kind!r}: use Cash, Check or CreditCard")
        if "AccountRef" not in obj:
            raise faults.required_param_missing("AccountRef", "Purchase")
        wanted = CARD if kind == "CreditCard" else BANK
        paid_from = self._account(
            plan, obj["AccountRef"], "AccountRef", f"A {kind} purchase", wanted
        )
        obj["AccountRef"] = self._fill_ref(
            plan, obj["AccountRef"], "AccountRef", "Account", "Purchase"
        )
        party = None
        if "EntityRef" in obj:
            target = {"Customer": "Customer"}.get(str(obj["EntityRef"].get("type")), "Vendor")
            party = self._referent(plan, obj["EntityRef"], "EntityRef", target, owner="Purchase")
            obj["EntityRef"] = self._fill_ref(
                plan, obj["EntityRef"], "EntityRef", target, "Purchase"
            )
        total = ZERO
        for line in self._lines(obj, "Purchase"):
            detail = line.get("AccountBasedExpenseLineDetail")
            if isinstance(detail, dict) and "AccountRef" in detail:
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", "Purchase"
                )
            item_detail = line.get("ItemBasedExpenseLineDetail")
            if isinstance(item_detail, dict) and "ItemRef" in item_detail:
                item_detail["ItemRef"] = self._fill_ref(
                    plan, item_detail["ItemRef"], "ItemRef", "Item", "Purchase"
                )
            total += line["Amount"]
        obj["TotalAmt"] = self._check_total(obj, total, "Purchase")
        obj.setdefault("Credit", False)
        self._txn_defaults(obj)
        self._txn_currency(obj, party=party, accounts=(("AccountRef", paid_from),))

    def prepare_deposit(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "DepositToAccountRef" not in obj:
            raise faults.required_param_missing("DepositToAccountRef", "Deposit")
        to = self._account(
            plan, obj["DepositToAccountRef"], "DepositToAccountRef", "A deposit", BANK
        )
        obj["DepositToAccountRef"] = self._fill_ref(
            plan, obj["DepositToAccountRef"], "DepositToAccountRef", "Account", "Deposit"
        )
        sources: list[tuple[str, dict[str, Any] | None]] = []
        total = ZERO
        for line in self._lines(obj, "Deposit"):
            detail = line.get("DepositLineDetail")
            if isinstance(detail, dict) and "AccountRef" in detail:
                sources.append(
                    (
                        "Line.DepositLineDetail.AccountRef",
                        self._referent(
                            plan, detail["AccountRef"], "AccountRef", "Account", owner="Deposit"
                        ),
                    )
                )
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", "Deposit"
                )
            for link in line.get("LinkedTxn") or []:
                kind = link.get("TxnType") if isinstance(link, dict) else None
                if kind not in DEPOSITABLE:
                    raise faults.business_validation(
                        "A deposit line links payments or sales receipts only.", "Line.LinkedTxn"
                    )
                if plan.get(kind, str(link.get("TxnId"))) is None:
                    raise faults.object_not_found(kind, str(link.get("TxnId")), "Line.LinkedTxn")
                link["TxnId"] = str(link["TxnId"])
            total += line["Amount"]
        # CashBack (AccountRef, Amount): part of the lines' money kept out of the bank, into the
        # account the user names ("Cash back goes to": petty cash), so the deposit's total, what
        # the bank receives, is the lines less it
        # (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/deposit,
        # https://community.intuit.com/articles/1773358-how-to-record-bank-deposits).
        cash_back = obj.get("CashBack")
        if cash_back is not None:
            if not isinstance(cash_back, dict):
                raise faults.business_validation(
                    "CashBack must be an object with an AccountRef and an Amount.", "CashBack"
                )
            amount = money(cash_back.get("Amount", 0), "CashBack.Amount")
            if amount < 0:
                raise faults.business_validation(
                    "A deposit's cash back cannot be negative.", "CashBack.Amount"
                )
            if amount > 0:
                sources.append(
                    (
                        "CashBack.AccountRef",
                        self._referent(
                            plan,
                            cash_back.get("AccountRef"),
                            "CashBack.AccountRef",
                            "Account",
                            owner="Deposit",
                        ),
                    )
                )
                cash_back["AccountRef"] = self._fill_ref(
                    plan, cash_back["AccountRef"], "CashBack.AccountRef", "Account", "Deposit"
                )
            cash_back["Amount"] = amount
            if amount > total:
                raise faults.business_validation(
                    f"The deposit's cash back {amount} is more than its lines {total}.",
                    "CashBack.Amount",
                )
            total -= amount
        obj["TotalAmt"] = self._check_total(obj, total, "Deposit")
        self._txn_defaults(obj)
        if "CurrencyRef" not in obj:  # a deposit is in its bank account's currency
            obj["CurrencyRef"] = to.get("CurrencyRef") or currency.currency_ref(
                ledger.home_currency(self.realm)
            )
        self._txn_currency(obj, accounts=(("DepositToAccountRef", to), *sources))

    def prepare_transfer(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        ends = []
        for field in ("FromAccountRef", "ToAccountRef"):
            if field not in obj:
                raise faults.required_param_missing(field, "Transfer")
            ends.append(self._referent(plan, obj[field], field, "Account", owner="Transfer"))
            obj[field] = self._fill_ref(plan, obj[field], field, "Account", "Transfer")
        if ends[0]["Id"] == ends[1]["Id"]:
            raise faults.business_validation(
                "A transfer moves money between two different accounts.", "ToAccountRef"
            )
        if "Amount" not in obj:
            raise faults.required_param_missing("Amount", "Transfer")
        obj["Amount"] = money(obj["Amount"], "Amount")
        if obj["Amount"] <= 0:
            raise faults.business_validation("A transfer moves a positive amount.", "Amount")
        self._txn_defaults(obj)
        home = ledger.home_currency(self.realm)
        codes = {ledger.currency_of(end, home) for end in ends}
        if len(codes) > 1:
            # The sandbox records transfers between accounts of one currency only.
            raise currency.one_foreign_currency(
                f"{ends[0].get('Name')} is in {ledger.currency_of(ends[0], home)} and "
                f"{ends[1].get('Name')} in {ledger.currency_of(ends[1], home)}.",
                "ToAccountRef",
            )
        obj["CurrencyRef"] = currency.currency_ref(codes.pop())
        self._txn_currency(obj)

    def prepare_journal_entry(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        debits = credits = ZERO
        used: list[tuple[str, dict[str, Any] | None]] = []
        for line in self._lines(obj, "JournalEntry"):
            if line.get("DetailType") == "DescriptionOnly":
                continue
            detail = line.get("JournalEntryLineDetail")
            if not isinstance(detail, dict):
                raise faults.required_param_missing("Line.JournalEntryLineDetail", "JournalEntry")
            posting = detail.get("PostingType")
            if posting not in ("Debit", "Credit"):
                raise faults.invalid_value("PostingType", f"{posting!r}: use Debit or Credit")
            if "AccountRef" not in detail:
                raise faults.required_param_missing(
                    "Line.JournalEntryLineDetail.AccountRef", "JournalEntry"
                )
            used.append(
                (
                    "Line.JournalEntryLineDetail.AccountRef",
                    self._referent(
                        plan, detail["AccountRef"], "AccountRef", "Account", owner="JournalEntry"
                    ),
                )
            )
            detail["AccountRef"] = self._fill_ref(
                plan, detail["AccountRef"], "AccountRef", "Account", "JournalEntry"
            )
            entity = detail.get("Entity")
            if isinstance(entity, dict) and isinstance(entity.get("EntityRef"), dict):
                target = "Customer" if entity.get("Type") == "Customer" else "Vendor"
                entity["EntityRef"] = self._fill_ref(
                    plan, entity["EntityRef"], "EntityRef", target, "JournalEntry"
                )
            if line["Amount"] < 0:
                raise faults.business_validation(
                    "Journal entry line amounts cannot be negative; use the other PostingType.",
                    "Line.Amount",
                )
            if posting == "Debit":
                debits += line["Amount"]
            else:
                credits += line["Amount"]
        if debits != credits:
            raise unbalanced_journal_entry(debits, credits)
        obj["TotalAmt"] = debits
        obj.setdefault("Adjustment", False)
        self._txn_defaults(obj)
        self._txn_currency(obj, accounts=tuple(used))

    def prepare_credit_card_payment(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        owner = "CreditCardPayment"
        card_field, bank_field = "CreditCardAccountRef", "BankAccountRef"
        for field in (card_field, bank_field):
            if field not in obj:
                raise faults.required_param_missing(field, owner)
        card = self._account(plan, obj[card_field], card_field, "A credit card payment", CARD)
        bank = self._account(plan, obj[bank_field], bank_field, "A credit card payment", BANK)
        obj[card_field] = self._fill_ref(plan, obj[card_field], card_field, "Account", owner)
        obj[bank_field] = self._fill_ref(plan, obj[bank_field], bank_field, "Account", owner)
        party = None
        if "VendorRef" in obj:
            party = self._party(plan, obj, "VendorRef", "Vendor", owner)
        if "Amount" not in obj:
            raise faults.required_param_missing("Amount", owner)
        obj["Amount"] = money(obj["Amount"], "Amount")
        if obj["Amount"] <= 0:
            raise faults.business_validation("A card payment pays a positive amount.", "Amount")
        self._txn_defaults(obj)
        self._txn_currency(obj, party=party, exact=((card_field, card), (bank_field, bank)))

    # -- lists ---------------------------------------------------------------------------------

    def prepare_item(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = obj.get("Name")
        if not name:
            raise faults.required_param_missing("Name", "Item")
        for item in self.realm.iter("Item"):
            if item.get("Name") == name and (old is None or item["Id"] != old["Id"]):
                raise faults.duplicate_name(name)
        kind = obj.setdefault("Type", "Service")
        if kind == "Inventory":
            raise faults.business_validation(
                "The sandbox does not track inventory quantities; make the item Service or "
                "NonInventory.",
                "Type",
            )
        if kind not in ("Service", "NonInventory", "Category", "Group"):
            raise faults.invalid_value("Type", f"{kind!r}: use Service or NonInventory")
        for field in ("IncomeAccountRef", "ExpenseAccountRef"):
            if field in obj:
                obj[field] = self._fill_ref(plan, obj[field], field, "Account", "Item")
        if kind == "Service" and "IncomeAccountRef" not in obj:
            # "IncomeAccountRef ... Conditionally required for Inventory and Service items."
            raise faults.required_param_missing("IncomeAccountRef", "Item")
        obj.setdefault("FullyQualifiedName", name)
        obj.setdefault("Active", True)
        obj.setdefault("Taxable", False)
        obj.setdefault("TrackQtyOnHand", False)
        for field in ("UnitPrice", "PurchaseCost"):
            if field in obj:
                obj[field] = _decimal(obj[field], field)

    def prepare_term(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        name = obj.get("Name")
        if not name:
            raise faults.required_param_missing("Name", "Term")
        for term in self.realm.iter("Term"):
            if term.get("Name") == name and (old is None or term["Id"] != old["Id"]):
                raise faults.duplicate_name(name)
        obj.setdefault("Active", True)
        obj.setdefault("Type", "STANDARD")
        if obj["Type"] == "STANDARD":
            obj.setdefault("DueDays", 0)
            obj.setdefault("DiscountPercent", 0)
            obj.setdefault("DiscountDays", 0)

    def prepare_company_currency(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        code = str(obj.get("Code") or "")
        if not code:
            raise faults.required_param_missing("Code", "CompanyCurrency")
        if len(code) != 3 or not code.isalpha() or not code.isupper():
            raise faults.invalid_value("Code", f"{code!r} is not an ISO 4217 currency code")
        home = ledger.home_currency(self.realm)
        if not ledger.multicurrency_enabled(self.realm):
            raise currency.multicurrency_off(code, home, "Code")
        if code == home:
            raise faults.business_validation(
                f"{code} is the home currency; it needs no CompanyCurrency.", "Code"
            )
        for other in self.realm.iter("CompanyCurrency"):
            if other.get("Code") == code and (old is None or other["Id"] != old["Id"]):
                raise faults.duplicate_name(code)
        if old is not None and old.get("Code") != code:
            raise faults.business_validation("A currency's Code cannot change.", "Code")
        obj["Name"] = currency.CURRENCY_NAMES.get(code, obj.get("Name") or code)
        obj.setdefault("Active", True)

    def prepare_preferences(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        # QuickBooks turns multicurrency on in its settings screen, and once on it "cannot be
        # disabled" (https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies);
        # Intuit's Preferences reference does not list CurrencyPrefs among the writable fields. The
        # sandbox also takes the switch (off to on only) through this update, for tests.
        before = (old or {}).get("CurrencyPrefs") or {}
        wanted = obj.get("CurrencyPrefs") or {}
        was_on = before.get("MultiCurrencyEnabled") is True
        if was_on and wanted.get("MultiCurrencyEnabled") is False:
            raise faults.business_validation(
                "Multicurrency cannot be turned off once it is on.", "MultiCurrencyEnabled"
            )
        home = ledger._ref(before.get("HomeCurrency")) or ledger.home_currency(self.realm)
        asked = ledger._ref(wanted.get("HomeCurrency")) or home
        if asked != home and any(
            self.realm.count(entity) for entity in ledger.TRANSACTION_ENTITIES
        ):
            raise faults.business_validation(
                f"The home currency is {home} and the company has transactions; it cannot change.",
                "HomeCurrency",
            )
        obj["CurrencyPrefs"] = {
            "MultiCurrencyEnabled": was_on or wanted.get("MultiCurrencyEnabled") is True,
            "HomeCurrency": {"value": asked},
        }

    def set_exchange_rate(self, obj: dict[str, Any]) -> dict[str, Any]:
        """POST /exchangerate: set the company's rate for a currency and date (QuickBooks keys a
        rate by SourceCurrencyCode and AsOfDate; there is no create, only this update)."""
        home = ledger.home_currency(self.realm)
        code = str(obj.get("SourceCurrencyCode") or "")
        for field in ("SourceCurrencyCode", "AsOfDate", "Rate"):
            if obj.get(field) in (None, ""):
                raise faults.required_param_missing(field, "ExchangeRate")
        if not ledger.multicurrency_enabled(self.realm):
            raise currency.multicurrency_off(code, home, "SourceCurrencyCode")
        if code == home:
            # "Setting an exchange rate for the home currency ... results in a validation error."
            raise faults.business_validation(
                f"{code} is the home currency: its rate is always 1.", "SourceCurrencyCode"
            )
        currency.check_currency(self.realm, code, "SourceCurrencyCode")
        self._check_date(obj, "AsOfDate")
        day = date.fromisoformat(str(obj["AsOfDate"])[:10])
        rate = currency.parse_rate(obj["Rate"], "Rate")
        existing = currency.find_rate(self.realm, code, day)
        body = {
            "SourceCurrencyCode": code,
            "TargetCurrencyCode": home,
            "AsOfDate": day.isoformat(),
            "Rate": rate,
        }
        if existing is None:
            saved = self.realm.insert("ExchangeRate", body)
        else:
            saved = self.realm.put("ExchangeRate", {**existing, **body})
        # QuickBooks' ExchangeRate has no Id (a rate is keyed by currency and date); the store's
        # own stays inside.
        return {k: v for k, v in saved.items() if k != "Id"}

    def enable_multicurrency(
        self, currencies: list[str], home: str | None = None
    ) -> dict[str, Any]:
        """Turn multicurrency on, as a company's admin does in QuickBooks' settings (the API cannot:
        CurrencyPrefs are read-only there), and add `currencies` as CompanyCurrency. Adds the
        Exchange Gain or Loss account. The home currency can be chosen only before any
        transaction exists. Returns the Preferences."""
        with self.realm.lock:
            prefs = ledger.preferences(self.realm)
            stored = copy_obj(prefs) if prefs is not None else None
            current = stored or currency.default_preferences()
            old_home = ledger.home_currency(self.realm)
            if home is not None and home != old_home:
                if any(self.realm.count(entity) for entity in ledger.TRANSACTION_ENTITIES):
                    raise faults.business_validation(
                        f"The home currency is {old_home} and the company has transactions; it "
                        "cannot change.",
                        "HomeCurrency",
                    )
                if len(home) != 3 or not home.isalpha() or not home.isupper():
                    raise faults.invalid_value("HomeCurrency", f"{home!r} is not a currency code")
            prefs_now = copy_obj(current)
            prefs_now["CurrencyPrefs"] = {
                "MultiCurrencyEnabled": True,
                "HomeCurrency": {"value": home or old_home},
            }
            if stored is None:
                saved = self.realm.insert("Preferences", prefs_now)
            else:
                saved = self.realm.put("Preferences", prefs_now)
            self._system_account("fx")
            for code in currencies:
                if code == ledger.home_currency(self.realm) or code in currency.active_currencies(
                    self.realm
                ):
                    continue
                self.create("CompanyCurrency", {"Code": code})
            return saved

    # -- what only a valid write may add ------------------------------------------------------

    def _complete(self, entity: str, obj: dict[str, Any]) -> None:
        """After validation: the accounts QuickBooks creates on first use, HomeTotalAmt."""
        if entity == "Preferences" and (obj.get("CurrencyPrefs") or {}).get("MultiCurrencyEnabled"):
            self._system_account("fx")
        if entity not in ledger.TRANSACTION_ENTITIES:
            return
        home = ledger.home_currency(self.realm)
        code = ledger.currency_of(obj, home)
        if entity in ("Bill", "VendorCredit") and "APAccountRef" not in obj:
            obj["APAccountRef"] = self._system_ref("ap", code)
        elif entity == "BillPayment":
            self._system_account("ap", code)
        elif entity in ("Invoice", "CreditMemo", "Payment"):
            self._system_account("ar", code)
        if entity in ("Payment", "SalesReceipt") and "DepositToAccountRef" not in obj:
            self._system_account("undeposited")
        if code != home and entity in ("BillPayment", "Payment", "JournalEntry"):
            self._system_account("fx")
        tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
        if tax not in (None, "") and money(tax, "TxnTaxDetail.TotalTax") != 0:
            self._system_account("tax")
        self._home_total(obj)

    # -- effects on other objects (sign +1 applies, -1 reverses) -------------------------------------

    def _settle(
        self,
        plan: Plan,
        payment: dict[str, Any],
        sign: int,
        *,
        party_field: str,
        kinds: dict[str, int],
        link_type: str,
    ) -> None:
        """Apply (+1) or take back (-1) what a payment's lines do to the documents they link:
        each settled bill or invoice, each applied vendor credit or credit memo, has its Balance
        lowered and links the payment."""
        home = ledger.home_currency(self.realm)
        for line in payment.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                kind = str(link.get("TxnType"))
                if kind not in kinds:
                    continue
                doc_id = str(link["TxnId"])
                doc = plan.get(kind, doc_id)
                if doc is None:
                    if sign < 0:
                        continue  # the document is gone; nothing left to restore on it
                    raise faults.object_not_found(kind, doc_id, "Line.LinkedTxn.TxnId")
                amount = money(line["Amount"], "Line.Amount")
                balance = money(doc.get("Balance", 0), "Balance")
                if sign > 0:
                    if ledger._ref(doc.get(party_field)) != ledger._ref(payment.get(party_field)):
                        raise faults.business_validation(
                            f"{kind} {doc_id} belongs to another "
                            f"{'vendor' if party_field == 'VendorRef' else 'customer'} than this "
                            "payment's.",
                            "Line.LinkedTxn",
                        )
                    if ledger.currency_of(doc, home) != ledger.currency_of(payment, home):
                        raise currency.one_foreign_currency(
                            f"{kind} {doc_id} is in {ledger.currency_of(doc, home)}; this payment "
                            f"is in {ledger.currency_of(payment, home)}.",
                            "CurrencyRef",
                        )
                    if amount > balance:
                        raise faults.business_validation(
                            f"The payment of {amount} is more than {DOCUMENT_NAMES[kind]} "
                            f"{doc_id}'s open "
                            f"balance of {balance}.",
                            "Line.Amount",
                        )
                    doc["Balance"] = balance - amount
                    links = list(doc.get("LinkedTxn") or [])
                    links.append({"TxnId": payment["Id"], "TxnType": link_type})
                    doc["LinkedTxn"] = links
                else:
                    total = money(doc.get("TotalAmt", 0), "TotalAmt")
                    doc["Balance"] = min(total, balance + amount)
                    doc["LinkedTxn"] = [
                        other
                        for other in doc.get("LinkedTxn") or []
                        if str(other.get("TxnId")) != payment["Id"]
                    ]
                    if not doc["LinkedTxn"] and kind != "Invoice":
                        del doc["LinkedTxn"]
                if "RemainingCredit" in doc or kind == "CreditMemo":
                    doc["RemainingCredit"] = doc["Balance"]
                self._home_balance(doc)

    def _home_balance(self, doc: dict[str, Any]) -> None:
        home = ledger.home_currency(self.realm)
        if ledger.currency_of(doc, home) != home:
            doc["HomeBalance"] = ledger.to_home(
                money(doc.get("Balance", 0), "Balance"), ledger.rate_of(doc)
            )

    def effects_bill_payment(self, plan: Plan, payment: dict[str, Any], sign: int) -> None:
        link_type = (
            "BillPaymentCheck" if payment.get("PayType") == "Check" else "BillPaymentCreditCard"
        )
        self._settle(
            plan,
            payment,
            sign,
            party_field="VendorRef",
            kinds=BILL_PAYMENT_LINKS,
            link_type=link_type,
        )

    def effects_payment(self, plan: Plan, payment: dict[str, Any], sign: int) -> None:
        self._settle(
            plan,
            payment,
            sign,
            party_field="CustomerRef",
            kinds=PAYMENT_LINKS,
            link_type="Payment",
        )

    def effects_deposit(self, plan: Plan, deposit: dict[str, Any], sign: int) -> None:
        """A deposited payment or sales receipt links the deposit that banked it."""
        for line in deposit.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                kind = link.get("TxnType")
                if kind not in DEPOSITABLE:
                    continue
                banked = plan.get(kind, str(link["TxnId"]))
                if banked is None:
                    continue
                others = [
                    other
                    for other in banked.get("LinkedTxn") or []
                    if other.get("TxnId") != deposit["Id"]
                ]
                if sign > 0:
                    others.append({"TxnId": deposit["Id"], "TxnType": "Deposit"})
                banked["LinkedTxn"] = others


def unbalanced_journal_entry(debits: Decimal, credits: Decimal) -> QBOFault:
    """A journal entry whose debits and credits differ. Intuit's JournalEntry reference: "The
    total of the debit column equals the total of the credit column" and "If a user provides
    incorrect values such that the total amount on debit is not equal to total amount on credit,
    an error is returned"
    (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/journalentry).
    The exact code is not published; 6000 is QuickBooks' business validation code."""
    return faults.business_validation(
        f"Transaction is not balanced: debits total {debits} and credits total {credits}. A "
        "journal entry's debit lines must add up to its credit lines.",
        "Line",
    )


def _decimal(value: Any, field: str) -> Decimal:
    if isinstance(value, bool) or value in (None, ""):
        raise faults.invalid_value(field, f"{value!r} is not a number")
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise faults.invalid_value(field, f"{value!r} is not a number") from None
    if not number.is_finite():
        raise faults.invalid_value(field, f"{value!r} is not a number")
    return number


DEPOSITABLE = ("Payment", "SalesReceipt")
DOCUMENT_NAMES = {
    "Bill": "bill",
    "Invoice": "invoice",
    "VendorCredit": "vendor credit",
    "CreditMemo": "credit memo",
}


def _refuse_if_deposited(entity: str, obj: dict[str, Any]) -> None:
    # Its money has moved on to a bank account: undoing it here would unbalance the deposit.
    if entity in DEPOSITABLE and any(
        link.get("TxnType") == "Deposit" for link in obj.get("LinkedTxn") or []
    ):
        raise faults.business_validation(
            f"{entity} {obj['Id']} has been deposited; delete the deposit (or remove it from the "
            "deposit) first.",
            "Id",
        )


def _has_payments(obj: dict[str, Any]) -> bool:
    return any(
        link.get("TxnType") in ("BillPaymentCheck", "BillPaymentCreditCard", "Payment")
        for link in obj.get("LinkedTxn") or []
    )


Preparer = Callable[[Books, Plan, dict[str, Any], "dict[str, Any] | None"], None]
Effect = Callable[[Books, Plan, dict[str, Any], int], None]

_PREPARERS: dict[str, Preparer] = {
    "Vendor": Books.prepare_vendor,
    "Customer": Books.prepare_customer,
    "Account": Books.prepare_account,
    "Bill": Books.prepare_bill,
    "Invoice": Books.prepare_invoice,
    "BillPayment": Books.prepare_bill_payment,
    "Payment": Books.prepare_payment,
    "Purchase": Books.prepare_purchase,
    "Deposit": Books.prepare_deposit,
    "SalesReceipt": Books.prepare_sales_receipt,
    "RefundReceipt": Books.prepare_refund_receipt,
    "Transfer": Books.prepare_transfer,
    "JournalEntry": Books.prepare_journal_entry,
    "VendorCredit": Books.prepare_vendor_credit,
    "CreditMemo": Books.prepare_credit_memo,
    "CreditCardPaymentTxn": Books.prepare_credit_card_payment,
    "Item": Books.prepare_item,
    "Term": Books.prepare_term,
    "CompanyCurrency": Books.prepare_company_currency,
    "Preferences": Books.prepare_preferences,
}
_EFFECTS: dict[str, Effect] = {
    "BillPayment": Books.effects_bill_payment,
    "Payment": Books.effects_payment,
    "Deposit": Books.effects_deposit,
}


def parse_changed_since(text: str, realm: Realm) -> datetime:
    """CDC's changedSince: a date or datetime; without an offset it is the company's local time."""
    parsed = parse_time(text.strip().replace(" ", "+"), realm.tz)
    if parsed is None:
        raise faults.invalid_value("changedSince", f"{text!r} is not a date or datetime")
    return parsed


__all__ = ["Books", "QBOFault", "money", "parse_changed_since"]
