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
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_sandbox import faults
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
# Per entity: fields that only bookkeeping changes, kept across client updates.
MANAGED_FIELDS: dict[str, tuple[str, ...]] = {
    "Bill": ("LinkedTxn",),
    "Invoice": ("LinkedTxn", "EmailStatus", "DeliveryInfo"),
    "Account": ("CurrentBalance", "CurrentBalanceWithSubAccounts"),
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
}
BANK = "Bank"
CARD = "Credit Card"
VOIDABLE = ("Invoice", "Payment", "BillPayment")
DELETABLE = ("Bill", "BillPayment", "Invoice", "Payment", "Purchase", "Deposit")
NAME_LISTS = ("Vendor", "Customer")


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

    def _undeposited_funds(self, plan: Plan) -> dict[str, Any] | None:
        for account in self.realm.iter("Account"):
            if (
                account.get("AccountSubType") == "UndepositedFunds"
                or account.get("Name") == "Undeposited Funds"
            ):
                return plan.get("Account", account["Id"])
        return None

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
            plan = Plan(self.realm)
            self._prepare(plan, entity, obj, old=None)
            effect = _EFFECTS.get(entity)
            if effect is None:
                return self.realm.insert(entity, obj)
            # Rehearse the effects on throwaway copies first: a refusal must leave nothing behind,
            # and the real effects need the Id that only inserting assigns.
            effect(self, plan, {**obj, "Id": "pending"}, +1)
            created = self.realm.insert(entity, obj)
            applied = Plan(self.realm)
            effect(self, applied, created, +1)
            applied.commit()
            return created

    def update(self, entity: str, body: dict[str, Any], *, sparse: bool) -> dict[str, Any]:
        incoming = _clean(copy_obj(body))
        with self.realm.lock:
            old = self._current(entity, incoming)
            if sparse:
                merged = copy_obj(old)
                merged.update({k: v for k, v in incoming.items() if k not in SERVER_FIELDS})
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
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, old, -1)
            self._prepare(plan, entity, merged, old=old)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, merged, +1)
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
            if entity in ("Bill", "Invoice") and _has_payments(old):
                raise faults.business_validation(
                    f"{entity} {old['Id']} has payments applied to it; delete or void those "
                    "payments first.",
                    "Id",
                )
            plan = Plan(self.realm)
            if entity in _EFFECTS:
                _EFFECTS[entity](self, plan, old, -1)
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
            voided = copy_obj(old)
            voided["TotalAmt"] = ZERO
            if "Balance" in voided:
                voided["Balance"] = ZERO
            if "UnappliedAmt" in voided:
                voided["UnappliedAmt"] = ZERO
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
        obj.setdefault("Classification", _CLASSIFICATION.get(obj["AccountType"], "Expense"))
        if old is None:
            opening = money(obj.get("CurrentBalance", 0), "CurrentBalance")
            obj["CurrentBalance"] = opening
            obj["CurrentBalanceWithSubAccounts"] = opening
        obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

    def _txn_defaults(self, obj: dict[str, Any]) -> None:
        obj.setdefault("TxnDate", self.today())
        obj.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})

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

    def prepare_bill(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "VendorRef" not in obj:
            raise faults.required_param_missing("VendorRef", "Bill")
        obj["VendorRef"] = self._fill_ref(plan, obj["VendorRef"], "VendorRef", "Vendor", "Bill")
        lines = self._lines(obj, "Bill")
        total = ZERO
        for line in lines:
            if line["Amount"] < 0:
                raise faults.business_validation(
                    "Bill line amounts cannot be negative.", "Line.Amount"
                )
            detail = line.get(line.get("DetailType", ""), {})
            if line.get("DetailType") == "AccountBasedExpenseLineDetail":
                if not isinstance(detail, dict) or "AccountRef" not in detail:
                    raise faults.required_param_missing(
                        "Line.AccountBasedExpenseLineDetail.AccountRef", "Bill"
                    )
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", "Bill"
                )
            total += line["Amount"]
        total = self._check_total(obj, total, "Bill")
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
        if "APAccountRef" in obj:
            obj["APAccountRef"] = self._fill_ref(
                plan, obj["APAccountRef"], "APAccountRef", "Account", "Bill"
            )
        else:
            ap = next(
                (
                    a
                    for a in self.realm.iter("Account")
                    if a.get("AccountType") == "Accounts Payable"
                ),
                None,
            )
            if ap is not None:
                obj["APAccountRef"] = {"value": ap["Id"], "name": ap.get("Name", "")}

    def prepare_invoice(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "CustomerRef" not in obj:
            raise faults.required_param_missing("CustomerRef", "Invoice")
        obj["CustomerRef"] = self._fill_ref(
            plan, obj["CustomerRef"], "CustomerRef", "Customer", "Invoice"
        )
        lines = self._lines(obj, "Invoice")
        total = ZERO
        for line in lines:
            kind = line.get("DetailType")
            if kind == "SubTotalLineDetail":
                continue
            if kind == "DiscountLineDetail":
                total -= line["Amount"]
            else:
                total += line["Amount"]
        tax = (obj.get("TxnTaxDetail") or {}).get("TotalTax")
        if tax not in (None, ""):
            total += money(tax, "TxnTaxDetail.TotalTax")
        total = self._check_total(obj, total, "Invoice")
        paid = self._paid_so_far(old)
        if total < paid:
            raise faults.business_validation(
                f"Invoice total {total} is less than the {paid} already received on it.",
                "TotalAmt",
            )
        obj["TotalAmt"] = total
        obj["Balance"] = total - paid
        self._txn_defaults(obj)
        obj.setdefault("DueDate", obj["TxnDate"])
        obj.setdefault("EmailStatus", "NotSet")
        email = (obj.get("BillEmail") or {}).get("Address")
        if email is not None and len(email) > 100:
            raise faults.invalid_string_length("BillEmail.Address", 100, len(email))

    def prepare_bill_payment(
        self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        if "VendorRef" not in obj:
            raise faults.required_param_missing("VendorRef", "BillPayment")
        obj["VendorRef"] = self._fill_ref(
            plan, obj["VendorRef"], "VendorRef", "Vendor", "BillPayment"
        )
        pay_type = obj.get("PayType")
        if pay_type == "Check":
            check = obj.get("CheckPayment")
            if not isinstance(check, dict) or "BankAccountRef" not in check:
                raise faults.required_param_missing("CheckPayment.BankAccountRef", "BillPayment")
            self._account(
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
        elif pay_type == "CreditCard":
            card = obj.get("CreditCardPayment")
            if not isinstance(card, dict) or "CCAccountRef" not in card:
                raise faults.required_param_missing("CreditCardPayment.CCAccountRef", "BillPayment")
            self._account(
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
        elif pay_type is None:
            raise faults.required_param_missing("PayType", "BillPayment")
        else:
            raise faults.invalid_value("PayType", f"{pay_type!r}: use Check or CreditCard")
        if "TotalAmt" not in obj:
            raise faults.required_param_missing("TotalAmt", "BillPayment")
        lines = self._lines(obj, "BillPayment")
        total = ZERO
        for line in lines:
            if line["Amount"] <= 0:
                raise faults.business_validation(
                    "A bill payment line must pay a positive amount.", "Line.Amount"
                )
            links = line.get("LinkedTxn") or []
            if not links or not all(isinstance(link, dict) and link.get("TxnId") for link in links):
                raise faults.required_param_missing("Line.LinkedTxn.TxnId", "BillPayment")
            for link in links:
                link.pop("TxnLineId", None)  # python-quickbooks sends 0 here; QBO ignores it
                if link.get("TxnType", "Bill") != "Bill":
                    raise faults.business_validation(
                        f"A bill payment line links bills, not {link.get('TxnType')}.",
                        "Line.LinkedTxn",
                    )
                link["TxnType"] = "Bill"
                link["TxnId"] = str(link["TxnId"])
            total += line["Amount"]
        total = self._check_total(obj, total, "BillPayment")
        if total <= 0:
            raise faults.business_validation(
                "A bill payment must pay a positive amount.", "TotalAmt"
            )
        obj["TotalAmt"] = total
        self._txn_defaults(obj)

    def prepare_payment(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "CustomerRef" not in obj:
            raise faults.required_param_missing("CustomerRef", "Payment")
        obj["CustomerRef"] = self._fill_ref(
            plan, obj["CustomerRef"], "CustomerRef", "Customer", "Payment"
        )
        if "TotalAmt" not in obj:
            raise faults.required_param_missing("TotalAmt", "Payment")
        total = money(obj["TotalAmt"], "TotalAmt")
        if total < 0:
            raise faults.business_validation("A payment cannot be negative.", "TotalAmt")
        lines = self._lines(obj, "Payment", required=False)
        applied = ZERO
        for line in lines:
            if line["Amount"] <= 0:
                raise faults.business_validation(
                    "A payment line must apply a positive amount.", "Line.Amount"
                )
            links = line.get("LinkedTxn") or []
            if not links or not all(isinstance(link, dict) and link.get("TxnId") for link in links):
                raise faults.required_param_missing("Line.LinkedTxn.TxnId", "Payment")
            for link in links:
                link.pop("TxnLineId", None)
                if link.get("TxnType", "Invoice") != "Invoice":
                    raise faults.business_validation(
                        f"A payment line links invoices, not {link.get('TxnType')}.",
                        "Line.LinkedTxn",
                    )
                link["TxnType"] = "Invoice"
                link["TxnId"] = str(link["TxnId"])
            applied += line["Amount"]
        if applied > total:
            raise faults.business_validation(
                f"Payment TotalAmt {total} is less than the {applied} its lines apply.", "TotalAmt"
            )
        obj["TotalAmt"] = total
        obj["UnappliedAmt"] = total - applied
        if "DepositToAccountRef" in obj:
            self._account(
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

    def prepare_purchase(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        kind = obj.get("PaymentType")
        if kind not in ("Cash", "Check", "CreditCard"):
            if kind is None:
                raise faults.required_param_missing("PaymentType", "Purchase")
            raise faults.invalid_value("PaymentType", f"{kind!r}: use Cash, Check or CreditCard")
        if "AccountRef" not in obj:
            raise faults.required_param_missing("AccountRef", "Purchase")
        wanted = CARD if kind == "CreditCard" else BANK
        self._account(plan, obj["AccountRef"], "AccountRef", f"A {kind} purchase", wanted)
        obj["AccountRef"] = self._fill_ref(
            plan, obj["AccountRef"], "AccountRef", "Account", "Purchase"
        )
        if "EntityRef" in obj:
            target = {"Customer": "Customer"}.get(str(obj["EntityRef"].get("type")), "Vendor")
            obj["EntityRef"] = self._fill_ref(
                plan, obj["EntityRef"], "EntityRef", target, "Purchase"
            )
        lines = self._lines(obj, "Purchase")
        total = ZERO
        for line in lines:
            detail = line.get("AccountBasedExpenseLineDetail")
            if isinstance(detail, dict) and "AccountRef" in detail:
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", "Purchase"
                )
            total += line["Amount"]
        obj["TotalAmt"] = self._check_total(obj, total, "Purchase")
        obj.setdefault("Credit", False)
        self._txn_defaults(obj)

    def prepare_deposit(self, plan: Plan, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if "DepositToAccountRef" not in obj:
            raise faults.required_param_missing("DepositToAccountRef", "Deposit")
        self._account(plan, obj["DepositToAccountRef"], "DepositToAccountRef", "A deposit", BANK)
        obj["DepositToAccountRef"] = self._fill_ref(
            plan, obj["DepositToAccountRef"], "DepositToAccountRef", "Account", "Deposit"
        )
        lines = self._lines(obj, "Deposit")
        total = ZERO
        for line in lines:
            detail = line.get("DepositLineDetail")
            if isinstance(detail, dict) and "AccountRef" in detail:
                detail["AccountRef"] = self._fill_ref(
                    plan, detail["AccountRef"], "AccountRef", "Account", "Deposit"
                )
            for link in line.get("LinkedTxn") or []:
                if not isinstance(link, dict) or link.get("TxnType") != "Payment":
                    raise faults.business_validation(
                        "A deposit line links payments only.", "Line.LinkedTxn"
                    )
                if plan.get("Payment", str(link.get("TxnId"))) is None:
                    raise faults.object_not_found(
                        "Payment", str(link.get("TxnId")), "Line.LinkedTxn"
                    )
                link["TxnId"] = str(link["TxnId"])
            total += line["Amount"]
        obj["TotalAmt"] = self._check_total(obj, total, "Deposit")
        self._txn_defaults(obj)

    # -- effects on other objects (sign +1 applies, -1 reverses) -------------------------------------

    def effects_bill_payment(self, plan: Plan, payment: dict[str, Any], sign: int) -> None:
        pay_type = payment.get("PayType")
        link_type = "BillPaymentCheck" if pay_type == "Check" else "BillPaymentCreditCard"
        owed: dict[str, Decimal] = {}
        for line in payment.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                bill_id = str(link["TxnId"])
                bill = plan.get("Bill", bill_id)
                if bill is None:
                    if sign < 0:
                        continue  # the bill is gone; nothing left to restore on it
                    raise faults.object_not_found("Bill", bill_id, "Line.LinkedTxn.TxnId")
                amount = money(line["Amount"], "Line.Amount")
                balance = money(bill.get("Balance", 0), "Balance")
                if sign > 0:
                    if bill.get("VendorRef", {}).get("value") != payment["VendorRef"]["value"]:
                        raise faults.business_validation(
                            f"Bill {bill_id} belongs to another vendor than this payment's.",
                            "Line.LinkedTxn",
                        )
                    owed[bill_id] = owed.get(bill_id, ZERO) + amount
                    if amount > balance:
                        raise faults.business_validation(
                            f"The payment of {amount} is more than bill {bill_id}'s open balance "
                            f"of {balance}.",
                            "Line.Amount",
                        )
                    bill["Balance"] = balance - amount
                    links = list(bill.get("LinkedTxn") or [])
                    links.append({"TxnId": payment["Id"], "TxnType": link_type})
                    bill["LinkedTxn"] = links
                else:
                    total = money(bill.get("TotalAmt", 0), "TotalAmt")
                    bill["Balance"] = min(total, balance + amount)
                    bill["LinkedTxn"] = [
                        link
                        for link in bill.get("LinkedTxn") or []
                        if str(link.get("TxnId")) != payment["Id"]
                    ]
                    if not bill["LinkedTxn"]:
                        del bill["LinkedTxn"]
        total = money(payment.get("TotalAmt", 0), "TotalAmt")
        if pay_type == "Check":
            ref = (payment.get("CheckPayment") or {}).get("BankAccountRef")
            delta = -total
        else:
            ref = (payment.get("CreditCardPayment") or {}).get("CCAccountRef")
            delta = total
        account = plan.get("Account", str(ref["value"])) if isinstance(ref, dict) else None
        if account is not None:
            self._adjust_balance(account, delta * sign)

    def effects_payment(self, plan: Plan, payment: dict[str, Any], sign: int) -> None:
        for line in payment.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                invoice_id = str(link["TxnId"])
                invoice = plan.get("Invoice", invoice_id)
                if invoice is None:
                    if sign < 0:
                        continue
                    raise faults.object_not_found("Invoice", invoice_id, "Line.LinkedTxn.TxnId")
                amount = money(line["Amount"], "Line.Amount")
                balance = money(invoice.get("Balance", 0), "Balance")
                if sign > 0:
                    if (
                        invoice.get("CustomerRef", {}).get("value")
                        != payment["CustomerRef"]["value"]
                    ):
                        raise faults.business_validation(
                            f"Invoice {invoice_id} belongs to another customer than this payment's.",
                            "Line.LinkedTxn",
                        )
                    if amount > balance:
                        raise faults.business_validation(
                            f"The payment of {amount} is more than invoice {invoice_id}'s open "
                            f"balance of {balance}.",
                            "Line.Amount",
                        )
                    invoice["Balance"] = balance - amount
                    links = list(invoice.get("LinkedTxn") or [])
                    links.append({"TxnId": payment["Id"], "TxnType": "Payment"})
                    invoice["LinkedTxn"] = links
                else:
                    total = money(invoice.get("TotalAmt", 0), "TotalAmt")
                    invoice["Balance"] = min(total, balance + amount)
                    invoice["LinkedTxn"] = [
                        link
                        for link in invoice.get("LinkedTxn") or []
                        if str(link.get("TxnId")) != payment["Id"]
                    ]
        ref = payment.get("DepositToAccountRef")
        account = (
            plan.get("Account", str(ref["value"]))
            if isinstance(ref, dict)
            else self._undeposited_funds(plan)
        )
        if account is not None:
            self._adjust_balance(account, money(payment.get("TotalAmt", 0), "TotalAmt") * sign)

    def effects_purchase(self, plan: Plan, purchase: dict[str, Any], sign: int) -> None:
        ref = purchase.get("AccountRef")
        account = plan.get("Account", str(ref["value"])) if isinstance(ref, dict) else None
        if account is None:
            return
        total = money(purchase.get("TotalAmt", 0), "TotalAmt")
        outflow = -total if account.get("AccountType") == BANK else total
        if purchase.get("Credit") is True:  # a refund runs the other way
            outflow = -outflow
        self._adjust_balance(account, outflow * sign)

    def effects_deposit(self, plan: Plan, deposit: dict[str, Any], sign: int) -> None:
        ref = deposit.get("DepositToAccountRef")
        account = plan.get("Account", str(ref["value"])) if isinstance(ref, dict) else None
        if account is not None:
            self._adjust_balance(account, money(deposit.get("TotalAmt", 0), "TotalAmt") * sign)
        undeposited = None
        for line in deposit.get("Line", []):
            for link in line.get("LinkedTxn") or []:
                if link.get("TxnType") != "Payment":
                    continue
                undeposited = undeposited or self._undeposited_funds(plan)
                if undeposited is not None:
                    self._adjust_balance(undeposited, -money(line["Amount"], "Line.Amount") * sign)
                payment = plan.get("Payment", str(link["TxnId"]))
                if payment is not None:
                    others = [
                        link
                        for link in payment.get("LinkedTxn") or []
                        if link.get("TxnId") != deposit["Id"]
                    ]
                    if sign > 0:
                        others.append({"TxnId": deposit["Id"], "TxnType": "Deposit"})
                    payment["LinkedTxn"] = others


def _refuse_if_deposited(entity: str, obj: dict[str, Any]) -> None:
    # Its money has moved on to a bank account: undoing it here would unbalance the deposit.
    if entity == "Payment" and any(
        link.get("TxnType") == "Deposit" for link in obj.get("LinkedTxn") or []
    ):
        raise faults.business_validation(
            f"Payment {obj['Id']} has been deposited; delete the deposit (or remove the payment "
            "from it) first.",
            "Id",
        )


def _has_payments(obj: dict[str, Any]) -> bool:
    return any(
        link.get("TxnType") in ("BillPaymentCheck", "BillPaymentCreditCard", "Payment")
        for link in obj.get("LinkedTxn") or []
    )


_CLASSIFICATION = {
    "Bank": "Asset",
    "Other Current Asset": "Asset",
    "Fixed Asset": "Asset",
    "Other Asset": "Asset",
    "Accounts Receivable": "Asset",
    "Equity": "Equity",
    "Expense": "Expense",
    "Other Expense": "Expense",
    "Cost of Goods Sold": "Expense",
    "Accounts Payable": "Liability",
    "Credit Card": "Liability",
    "Long Term Liability": "Liability",
    "Other Current Liability": "Liability",
    "Income": "Revenue",
    "Other Income": "Revenue",
}

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
}
_EFFECTS: dict[str, Effect] = {
    "BillPayment": Books.effects_bill_payment,
    "Payment": Books.effects_payment,
    "Purchase": Books.effects_purchase,
    "Deposit": Books.effects_deposit,
}


def parse_changed_since(text: str, realm: Realm) -> datetime:
    """CDC's changedSince: a date or datetime; without an offset it is the company's local time."""
    parsed = parse_time(text.strip().replace(" ", "+"), realm.tz)
    if parsed is None:
        raise faults.invalid_value("changedSince", f"{text!r} is not a date or datetime")
    return parsed


__all__ = ["Books", "QBOFault", "money", "parse_changed_since"]
