"""The sandbox's general ledger: the double-entry postings each stored transaction makes.

Every transaction the sandbox stores (Bill, Invoice, BillPayment, Payment, Purchase, Deposit,
SalesReceipt, RefundReceipt, Transfer, JournalEntry, VendorCredit, CreditMemo, CreditCardPayment)
turns into postings with `postings_of`. Reports, trial balances and the tests rebuild the books from
them; the write path (books.Books) applies the difference between a transaction's old and new
postings to the accounts it touches, so each balance-sheet account's CurrentBalance always equals
what `balances()` gives for it.

Sign convention of a Posting: `amount` is in the company's home currency, debit positive, credit
negative; the postings of one transaction sum to zero. `foreign_amount` is the same posting in the
transaction's `currency` when that differs from the home currency (None otherwise); a realised
exchange gain or loss posts a home amount with a foreign amount of zero.

Account.CurrentBalance follows QuickBooks' own convention instead: it is kept for balance-sheet
accounts only ("Current balance for Balance Sheet accounts", Intuit's Account reference:
https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/account), in the
account's own currency, positive for a normal balance: debit for assets, credit for liabilities
(A/P, what is owed on a card, loans) and equity. Income and expense accounts keep no
CurrentBalance (it stays 0); their balances come from `balances()`.

Line numbers: 0 is the transaction's own account (A/P of a bill, the bank of a payment, the
From account of a transfer); n >= 1 is the n-th entry of its `Line` list; a realised exchange
difference takes the line of the bill or invoice line it settles.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, ClassVar

from qbo_sandbox.store import EntityTable, Realm

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
ONE = Decimal("1")
DEFAULT_HOME_CURRENCY = "USD"

# Every entity whose objects post to the ledger, in the order reports list them.
TRANSACTION_ENTITIES: tuple[str, ...] = (
    "Bill",
    "BillPayment",
    "Invoice",
    "Payment",
    "Purchase",
    "Deposit",
    "SalesReceipt",
    "RefundReceipt",
    "Transfer",
    "JournalEntry",
    "VendorCredit",
    "CreditMemo",
    "CreditCardPaymentTxn",
)
# Classifications whose accounts keep a CurrentBalance, and on which side it is positive.
BALANCE_SHEET_SIGN: dict[str, int] = {"Asset": 1, "Liability": -1, "Equity": -1}
CLASSIFICATION: dict[str, str] = {
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


class UnpostableLine(ValueError):
    """A transaction moves money that has no account to post to: keeping it would leave the
    transaction unbalanced, so the write path refuses it (`element` is the field to fix)."""

    def __init__(self, message: str, element: str) -> None:
        super().__init__(message)
        self.element = element


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of the general ledger."""

    txn_type: str
    txn_id: str
    line: int
    txn_date: date
    account_id: str
    amount: Decimal  # home currency, debit +, credit -
    foreign_amount: Decimal | None  # in `currency` when it differs from home
    currency: str
    name_id: str | None  # the vendor or customer the line is about


# -- company settings ------------------------------------------------------------------------------


def preferences(realm: Realm) -> dict[str, Any] | None:
    """The company's stored Preferences object (a read-only view), if it has one."""
    return next(iter(realm.table("Preferences").objects.values()), None)


def home_currency(realm: Realm) -> str:
    """Preferences.CurrencyPrefs.HomeCurrency, USD when the company has no preferences stored."""
    prefs = preferences(realm)
    cached = _HOMES.get(id(realm))
    # A stored object is replaced, never changed, when the preferences change: it is its version.
    if cached is not None and cached[0] is prefs:
        return cached[1]
    home = ((prefs or {}).get("CurrencyPrefs") or {}).get("HomeCurrency") or {}
    value = home.get("value") if isinstance(home, dict) else home
    code = str(value) if value else DEFAULT_HOME_CURRENCY
    _HOMES[id(realm)] = (prefs, code)
    return code


_HOMES: dict[int, tuple[dict[str, Any] | None, str]] = {}


def multicurrency_enabled(realm: Realm) -> bool:
    prefs = preferences(realm) or {}
    return (prefs.get("CurrencyPrefs") or {}).get("MultiCurrencyEnabled") is True


# -- helpers ---------------------------------------------------------------------------------------


def _amount(value: Any) -> Decimal:
    if type(value) is Decimal:
        return value
    if value is None or isinstance(value, bool) or value == "":
        return ZERO
    try:
        return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return ZERO


def _ref(value: Any) -> str | None:
    if isinstance(value, dict):
        inner = value.get("value")
        return None if inner in (None, "") else str(inner)
    return None


def currency_of(obj: dict[str, Any], home: str) -> str:
    """A transaction's or account's currency: CurrencyRef.value, the home currency without one."""
    return _ref(obj.get("CurrencyRef")) or home


def rate_of(obj: dict[str, Any]) -> Decimal:
    """Home currency per unit of the transaction's currency (1 without an ExchangeRate)."""
    rate = _amount(obj.get("ExchangeRate"))
    return rate if rate > 0 else ONE


def to_home(amount: Decimal, rate: Decimal) -> Decimal:
    """An amount in home currency, rounded half up to the cent."""
    if rate == ONE:  # stored amounts are cents already
        return amount
    return (amount * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def _date(obj: dict[str, Any]) -> date:
    return _parse_day(str(obj.get("TxnDate") or "")[:10])


@lru_cache(maxsize=4096)
def _parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return date.min


def _accounts(realm: Realm) -> dict[str, dict[str, Any]]:
    return realm.table("Account").objects


def _find_account(
    realm: Realm,
    *,
    currency: str,
    home: str,
    account_type: str = "",
    sub_type: str = "",
    name: str = "",
) -> str | None:
    """The first active account of a type/subtype (or name) in `currency`, by Id order."""
    table = realm.table("Account")
    for oid in table.ids_in_order():
        account = table.objects[oid]
        if account.get("Active") is False:
            continue
        if account_type and account.get("AccountType") != account_type:
            continue
        if sub_type and account.get("AccountSubType") != sub_type:
            continue
        if name and account.get("Name") != name:
            continue
        if currency_of(account, home) == currency:
            return oid
    return None


def default_payable(realm: Realm, currency: str) -> str | None:
    """The A/P account of a currency (QuickBooks keeps one per currency)."""
    home = home_currency(realm)
    return _find_account(realm, currency=currency, home=home, account_type="Accounts Payable")


def default_receivable(realm: Realm, currency: str) -> str | None:
    """The A/R account of a currency (QuickBooks keeps one per currency)."""
    home = home_currency(realm)
    return _find_account(realm, currency=currency, home=home, account_type="Accounts Receivable")


def undeposited_funds(realm: Realm) -> str | None:
    home = home_currency(realm)
    return _find_account(
        realm, currency=home, home=home, sub_type="UndepositedFunds"
    ) or _find_account(realm, currency=home, home=home, name="Undeposited Funds")


def exchange_gain_or_loss(realm: Realm) -> str | None:
    home = home_currency(realm)
    return _find_account(realm, currency=home, home=home, name=EXCHANGE_GAIN_OR_LOSS)


def sales_tax_payable(realm: Realm) -> str | None:
    home = home_currency(realm)
    return _find_account(
        realm, currency=home, home=home, sub_type="GlobalTaxPayable"
    ) or _find_account(realm, currency=home, home=home, sub_type="SalesTaxPayable")


def default_income(realm: Realm) -> str | None:
    home = home_currency(realm)
    return _find_account(realm, currency=home, home=home, account_type="Income")


EXCHANGE_GAIN_OR_LOSS = "Exchange Gain or Loss"


def item_account(b: _Builder, detail: dict[str, Any], *, sales: bool) -> str | None:
    """The account a product line posts to: the line's ItemAccountRef (set when it was written),
    else the Item's IncomeAccountRef (sales) or ExpenseAccountRef (purchases)."""
    explicit = _ref(detail.get("ItemAccountRef"))
    if explicit:
        return explicit
    item_id = _ref(detail.get("ItemRef"))
    item = b.read("Item", item_id) if item_id else None
    if item is not None:
        if sales:
            field = "IncomeAccountRef"
        else:  # inventory bought goes to its asset account, anything else to its expense account
            field = "AssetAccountRef" if item.get("Type") == "Inventory" else "ExpenseAccountRef"
        found = _ref(item.get(field))
        if found:
            return found
    return b.system("income") if sales else None


class _Context:
    """What posting many transactions needs to know once: the home currency and the accounts
    QuickBooks keeps for a purpose."""

    FINDERS: ClassVar[dict[str, Callable[[Realm, str], str | None]]] = {
        "ap": lambda realm, code: default_payable(realm, code),
        "ar": lambda realm, code: default_receivable(realm, code),
        "undeposited": lambda realm, code: undeposited_funds(realm),
        "fx": lambda realm, code: exchange_gain_or_loss(realm),
        "tax": lambda realm, code: sales_tax_payable(realm),
        "income": lambda realm, code: default_income(realm),
    }

    def __init__(self, realm: Realm) -> None:
        self.realm = realm
        self.home = home_currency(realm)
        self._found: dict[tuple[str, str], str | None] = {}
        self._tables: dict[str, EntityTable] = {}

    def table(self, entity: str) -> EntityTable:
        table = self._tables.get(entity)
        if table is None:
            table = self._tables[entity] = self.realm.table(entity)
        return table

    def system(self, kind: str, code: str = "") -> str | None:
        key = (kind, code)
        if key not in self._found:
            self._found[key] = self.FINDERS[kind](self.realm, code or self.home)
        return self._found[key]


class _Builder:
    """Collects one transaction's postings."""

    def __init__(self, ctx: _Context, entity: str, obj: dict[str, Any]) -> None:
        self.ctx = ctx
        self.realm = ctx.realm
        self.entity = entity
        self.obj = obj
        self.home = ctx.home
        self.currency = currency_of(obj, self.home)
        self.foreign = self.currency != self.home
        self.rate = rate_of(obj) if self.foreign else ONE
        self.day = _date(obj)
        self.txn_id = str(obj.get("Id", ""))
        self.name_id = (
            _ref(obj.get("VendorRef")) or _ref(obj.get("CustomerRef")) or _ref(obj.get("EntityRef"))
        )
        self.out: list[Posting] = []
        # What the postings were made from besides the transaction itself: stored objects read
        # (documents a payment settles, their other payments, items) and the accounts QuickBooks
        # keeps for a purpose. The postings stay right while these are what they were.
        self.reads: list[tuple[EntityTable, str, dict[str, Any] | None]] = []
        self.systems: list[tuple[str, str, str | None]] = []

    def read(self, entity: str, ident: str) -> dict[str, Any] | None:
        """A stored object (a read-only view) the postings depend on."""
        table = self.ctx.table(entity)
        obj = table.objects.get(ident)
        self.reads.append((table, ident, obj))
        return obj

    def system(self, kind: str, code: str = "") -> str | None:
        """The account QuickBooks keeps for a purpose (A/P or A/R of a currency, Undeposited
        Funds, Exchange Gain or Loss, Sales Tax Payable, the first Income account)."""
        found = self.ctx.system(kind, code)
        self.systems.append((kind, code, found))
        return found

    def post(
        self,
        account_id: str | None,
        line: int,
        foreign: Decimal,
        *,
        home: Decimal | None = None,
        name_id: str | None = None,
        need: str = "name the account it goes to",
    ) -> Decimal:
        """Post `foreign` (in the transaction's currency; debit +) to an account; returns the home
        amount posted. `home` overrides the conversion (a realised exchange difference). Money
        with no account raises UnpostableLine, saying what is missing (`need`): dropping it would
        unbalance the books."""
        amount = to_home(foreign, self.rate) if home is None else home
        if amount == 0 and foreign == 0:
            return amount
        if account_id is None:
            if foreign == 0:
                what = f"{self.entity}'s exchange difference, {abs(amount)} {self.home},"
            else:
                part = f" line {line}," if line else "'s total,"
                what = f"{self.entity}{part} {abs(foreign)} {self.currency},"
            raise UnpostableLine(
                f"{what} has no account to post to: {need}.", "Line" if line else "AccountRef"
            )
        self.out.append(
            Posting(
                txn_type=self.entity,
                txn_id=self.txn_id,
                line=line,
                txn_date=self.day,
                account_id=account_id,
                amount=amount,
                foreign_amount=foreign if self.foreign else None,
                currency=self.currency,
                name_id=name_id if name_id is not None else self.name_id,
            )
        )
        return amount

    def balance_to(self, account_id: str | None, need: str) -> None:
        """Post the document's total to its own account (A/P, A/R, the bank) so the transaction
        sums to zero. In a foreign currency that posting is the total at the rate (HomeTotalAmt),
        and the cent that rounding each line may leave goes to the largest line."""
        if not self.foreign:
            home = -sum((p.amount for p in self.out), ZERO)
            self.post(account_id, 0, home, home=home, need=need)
            return
        foreign = -sum((p.foreign_amount or ZERO for p in self.out), ZERO)
        home = to_home(foreign, self.rate)
        residual = -(home + sum((p.amount for p in self.out), ZERO))
        if residual and self.out:
            largest = max(range(len(self.out)), key=lambda i: abs(self.out[i].amount))
            self.out[largest] = replace(
                self.out[largest], amount=self.out[largest].amount + residual
            )
        self.post(account_id, 0, foreign, home=home, need=need)

    def lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in enumerate(self.obj.get("Line") or [], start=1):
            if isinstance(line, dict):
                yield number, line


def _expense_lines(b: _Builder, sign: int) -> None:
    """The expense (or asset) lines of a bill, purchase or vendor credit: debit (sign +1) or
    credit (-1) each line's account, or its item's."""
    for number, line in b.lines():
        kind = line.get("DetailType")
        detail = line.get(kind) if isinstance(kind, str) else None
        detail = detail if isinstance(detail, dict) else {}
        if kind == "ItemBasedExpenseLineDetail":
            item_id = _ref(detail.get("ItemRef"))
            item = b.read("Item", item_id) if item_id else None
            name = (item or {}).get("Name") or item_id
            account = item_account(b, detail, sales=False)
            need = (
                f"item {name!r} has no expense account (ExpenseAccountRef); give the item one, "
                "or use an account-based line"
            )
        else:
            account = _ref(detail.get("AccountRef"))
            need = "give the line an AccountRef (AccountBasedExpenseLineDetail.AccountRef)"
        b.post(account, number, sign * _amount(line.get("Amount")), need=need)


INCOME_NEED = "give the line's item an income account (IncomeAccountRef), or add an Income account"
FX_NEED = (
    f"the company has no {EXCHANGE_GAIN_OR_LOSS} account for the difference (QuickBooks adds it "
    "when multicurrency is turned on)"
)


def _sales_lines(b: _Builder, sign: int) -> None:
    """Product and discount lines of a sales form: income credit (sign -1) or debit (sign +1)."""
    for number, line in b.lines():
        kind = line.get("DetailType")
        amount = _amount(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            account = item_account(b, detail, sales=True)
            b.post(account, number, sign * amount, need=INCOME_NEED)
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            account = _ref(detail.get("DiscountAccountRef")) or b.system("income")
            b.post(account, number, -sign * amount, need="give it a DiscountAccountRef")
        elif kind == "DepositLineDetail":  # refund receipts may carry plain account lines
            detail = line.get("DepositLineDetail") or {}
            b.post(
                _ref(detail.get("AccountRef")),
                number,
                sign * amount,
                need="give the line an AccountRef (DepositLineDetail.AccountRef)",
            )
    tax = _amount((b.obj.get("TxnTaxDetail") or {}).get("TotalTax"))
    if tax:
        b.post(
            b.system("tax"),
            len(b.obj.get("Line") or []) + 1,
            sign * tax,
            need="the company has no Sales Tax Payable account for the tax",
        )


# -- per entity ------------------------------------------------------------------------------------


AP_NEED = "give it an APAccountRef (an Accounts Payable account in its currency)"
AR_NEED = "give it an ARAccountRef (an Accounts Receivable account in its currency)"
DEPOSIT_NEED = "give it a DepositToAccountRef, or add an Undeposited Funds account"


def _bill(b: _Builder) -> None:
    _expense_lines(b, 1)
    b.balance_to(_ref(b.obj.get("APAccountRef")) or b.system("ap", b.currency), AP_NEED)


def _vendor_credit(b: _Builder) -> None:
    _expense_lines(b, -1)
    b.balance_to(_ref(b.obj.get("APAccountRef")) or b.system("ap", b.currency), AP_NEED)


def _purchase(b: _Builder) -> None:
    _expense_lines(b, -1 if b.obj.get("Credit") is True else 1)  # a card refund runs backwards
    b.balance_to(_ref(b.obj.get("AccountRef")), "give it the AccountRef it is paid from")


def _settlement(
    b: _Builder,
    *,
    control: str | None,
    documents: dict[str, int],
    cash_account: str | None,
    cash_sign: int,
) -> None:
    """A bill payment (cash_sign -1: money out) or customer payment (+1: money in).

    Each line settles a document it links in the control account (A/P or A/R) by what the
    document's home balance drops (`_relieved`); the cash moves at the payment's rate; the
    difference is a realised exchange gain or loss. `documents` maps linked TxnType -> +1
    (settled: bills, invoices) or -1 (credits applied: vendor credits, credit memos)."""
    need = AP_NEED if cash_sign < 0 else AR_NEED
    settled_foreign = ZERO
    for number, line in b.lines():
        amount = _amount(line.get("Amount"))
        for link in line.get("LinkedTxn") or []:
            kind = str(link.get("TxnType") or "")
            direction = documents.get(kind)
            if direction is None:
                continue
            foreign = direction * amount
            relieved = foreign
            if b.foreign:
                relieved = direction * _relieved(b, kind, str(link.get("TxnId")), number, amount)
            b.post(control, number, -cash_sign * foreign, home=-cash_sign * relieved, need=need)
            settled_foreign += foreign
            break
    total = _amount(b.obj.get("TotalAmt"))
    unapplied = total - settled_foreign
    if unapplied:  # money paid or received ahead of any document sits in the control account
        b.post(control, 0, -cash_sign * unapplied, need=need)
    paid_need = "give it the account it is paid from" if cash_sign < 0 else DEPOSIT_NEED
    b.post(cash_account, 0, cash_sign * total, need=paid_need)
    difference = -sum((p.amount for p in b.out), ZERO)
    if difference:
        b.post(b.system("fx"), 0, ZERO, home=difference, need=FX_NEED)


# Payment types a settled document's LinkedTxn names, and the entity each is stored as.
_PAYMENT_LINKS = {
    "BillPaymentCheck": "BillPayment",
    "BillPaymentCreditCard": "BillPayment",
    "Payment": "Payment",
}


def _relieved(b: _Builder, kind: str, doc_id: str, number: int, amount: Decimal) -> Decimal:
    """The home amount a payment line takes off a foreign document: its home balance before the
    line less its home balance after, each the open foreign amount at the document's rate.

    Parts applied in date order (then Id, then line) add up to the document's home total, so the
    part that brings it to zero relieves exactly what is left, and on every day the ledger holds
    each document's HomeBalance for that day. Rounding each part on its own would leave cents in
    A/P or A/R with nothing owed (five EUR 0.01 parts of a EUR 0.05 bill at 1.1234 relieve $0.05 of
    its $0.06). QuickBooks does not publish its rule; this one keeps A/P and A/R equal to the
    documents' HomeBalance."""
    doc = b.read(kind, doc_id)
    if doc is None or currency_of(doc, b.home) == b.home:
        return amount
    rate = rate_of(doc)
    mine = (b.day, _id_order(b.txn_id), number)
    earlier = ZERO
    for key, part in _applications(b, kind, doc_id, doc):
        if key < mine:
            earlier += part
    before = _amount(doc.get("TotalAmt")) - earlier
    return to_home(before, rate) - to_home(before - amount, rate)


def _applications(
    b: _Builder, kind: str, doc_id: str, doc: dict[str, Any]
) -> Iterator[tuple[tuple[date, int, int], Decimal]]:
    """Every part applied to a document, keyed by (payment date, payment Id, line): this
    payment's lines as written, the other payments' as stored (the document's LinkedTxn names
    them)."""
    payments: list[tuple[str, dict[str, Any]]] = [(b.txn_id, b.obj)]
    for link in doc.get("LinkedTxn") or []:
        entity = _PAYMENT_LINKS.get(str(link.get("TxnType")))
        other_id = str(link.get("TxnId"))
        if entity is None or other_id == b.txn_id:
            continue
        other = b.read(entity, other_id)
        if other is not None:
            payments.append((other_id, other))
    for payment_id, payment in payments:
        day = _date(payment)
        for number, line in enumerate(payment.get("Line") or [], start=1):
            if not isinstance(line, dict):
                continue
            for link in line.get("LinkedTxn") or []:
                if str(link.get("TxnType")) == kind and str(link.get("TxnId")) == doc_id:
                    yield (day, _id_order(payment_id), number), _amount(line.get("Amount"))
                    break


def _id_order(txn_id: str) -> int:
    """Ids order by number; one not stored yet (being written) comes after every stored one."""
    return int(txn_id) if txn_id.isdigit() else 1 << 62


def _bill_payment(b: _Builder) -> None:
    obj = b.obj
    if obj.get("PayType") == "CreditCard":
        cash = _ref((obj.get("CreditCardPayment") or {}).get("CCAccountRef"))
    else:
        cash = _ref((obj.get("CheckPayment") or {}).get("BankAccountRef"))
    control = _ref(obj.get("APAccountRef")) or _linked_control(b, "Bill", "APAccountRef")
    control = control or b.system("ap", b.currency)
    _settlement(
        b,
        control=control,
        documents={"Bill": 1, "VendorCredit": -1},
        cash_account=cash,
        cash_sign=-1,
    )


def _payment(b: _Builder) -> None:
    obj = b.obj
    cash = _ref(obj.get("DepositToAccountRef")) or b.system("undeposited")
    control = _ref(obj.get("ARAccountRef")) or _linked_control(b, "Invoice", "ARAccountRef")
    control = control or b.system("ar", b.currency)
    _settlement(
        b,
        control=control,
        documents={"Invoice": 1, "CreditMemo": -1},
        cash_account=cash,
        cash_sign=1,
    )


def _linked_control(b: _Builder, entity: str, field: str) -> str | None:
    """The A/P or A/R account of the first document a payment links, when it names one."""
    for _, line in b.lines():
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == entity:
                target = b.read(entity, str(link.get("TxnId")))
                if target is not None and _ref(target.get(field)):
                    return _ref(target.get(field))
    return None


def _invoice(b: _Builder) -> None:
    _sales_lines(b, -1)
    b.balance_to(_ref(b.obj.get("ARAccountRef")) or b.system("ar", b.currency), AR_NEED)


def _credit_memo(b: _Builder) -> None:
    _sales_lines(b, 1)
    b.balance_to(_ref(b.obj.get("ARAccountRef")) or b.system("ar", b.currency), AR_NEED)


def _sales_receipt(b: _Builder) -> None:
    _sales_lines(b, -1)
    account = _ref(b.obj.get("DepositToAccountRef")) or b.system("undeposited")
    b.balance_to(account, DEPOSIT_NEED)


def _refund_receipt(b: _Builder) -> None:
    _sales_lines(b, 1)
    account = _ref(b.obj.get("DepositToAccountRef")) or b.system("undeposited")
    b.balance_to(account, DEPOSIT_NEED)


def _deposit(b: _Builder) -> None:
    undeposited = None
    for number, line in b.lines():
        amount = _amount(line.get("Amount"))
        if line.get("LinkedTxn"):
            undeposited = undeposited or b.system("undeposited")
            need = "the company has no Undeposited Funds account to deposit from"
            b.post(undeposited, number, -amount, need=need)
            continue
        detail = line.get("DepositLineDetail") or {}
        entity = _ref(detail.get("Entity")) if isinstance(detail.get("Entity"), dict) else None
        need = "give the line an AccountRef (DepositLineDetail.AccountRef), where the money is from"
        b.post(_ref(detail.get("AccountRef")), number, -amount, name_id=entity, need=need)
    # Cash back is kept out of the bank: its account (petty cash) receives it, the bank the rest
    # (https://community.intuit.com/articles/1773358-how-to-record-bank-deposits).
    cash_back = b.obj.get("CashBack")
    if isinstance(cash_back, dict) and cash_back.get("Amount"):
        need = "give CashBack an AccountRef, the account the cash back goes to"
        b.post(_ref(cash_back.get("AccountRef")), 0, _amount(cash_back["Amount"]), need=need)
    b.balance_to(_ref(b.obj.get("DepositToAccountRef")), "give it a DepositToAccountRef")


def _transfer(b: _Builder) -> None:
    amount = _amount(b.obj.get("Amount"))
    b.post(_ref(b.obj.get("ToAccountRef")), 1, amount, need="give it a ToAccountRef")
    b.post(_ref(b.obj.get("FromAccountRef")), 0, -amount, need="give it a FromAccountRef")


def _journal_entry(b: _Builder) -> None:
    for number, line in b.lines():
        detail = line.get("JournalEntryLineDetail")
        if not isinstance(detail, dict):
            continue
        amount = _amount(line.get("Amount"))
        signed = amount if detail.get("PostingType") == "Debit" else -amount
        entity = detail.get("Entity")
        name = _ref(entity.get("EntityRef")) if isinstance(entity, dict) else None
        need = "give the line an AccountRef (JournalEntryLineDetail.AccountRef)"
        b.post(_ref(detail.get("AccountRef")), number, signed, name_id=name, need=need)
    # Per-line rounding to home currency may leave a cent: QuickBooks books it as exchange
    # difference, so the entry still balances in home currency.
    rest = -sum((p.amount for p in b.out), ZERO)
    if rest:
        b.post(b.system("fx"), 0, ZERO, home=rest, need=FX_NEED)


def _credit_card_payment(b: _Builder) -> None:
    amount = _amount(b.obj.get("Amount"))
    b.post(
        _ref(b.obj.get("CreditCardAccountRef")), 1, amount, need="give it a CreditCardAccountRef"
    )
    b.post(_ref(b.obj.get("BankAccountRef")), 0, -amount, need="give it a BankAccountRef")


_RULES = {
    "Bill": _bill,
    "VendorCredit": _vendor_credit,
    "Purchase": _purchase,
    "BillPayment": _bill_payment,
    "Payment": _payment,
    "Invoice": _invoice,
    "CreditMemo": _credit_memo,
    "SalesReceipt": _sales_receipt,
    "RefundReceipt": _refund_receipt,
    "Deposit": _deposit,
    "Transfer": _transfer,
    "JournalEntry": _journal_entry,
    "CreditCardPaymentTxn": _credit_card_payment,
}


# -- public face -----------------------------------------------------------------------------------


def postings_of(realm: Realm, entity: str, obj: dict[str, Any]) -> list[Posting]:
    """The postings one stored transaction makes (none for an entity that does not post).

    Pure: reads the realm (accounts, items, the documents a payment settles) and changes nothing.
    The postings sum to zero in home currency."""
    return _postings_in(_Context(realm), _canonical(entity), obj)


def _postings_in(ctx: _Context, entity: str, obj: dict[str, Any]) -> list[Posting]:
    rule = _RULES.get(entity)
    if rule is None or obj.get("status") == "Deleted":
        return []
    builder = _Builder(ctx, entity, obj)
    rule(builder)
    return builder.out


@dataclass(slots=True)
class _Kept:
    """One stored transaction's postings, and what they were made from."""

    obj: dict[str, Any]  # the stored version they are of (a write stores a new dict)
    day: date
    postings: tuple[Posting, ...]
    reads: tuple[tuple[EntityTable, str, dict[str, Any] | None], ...]
    systems: tuple[tuple[str, str, str | None], ...]

    def current(self, ctx: _Context) -> bool:
        for table, ident, obj in self.reads:
            if table.objects.get(ident) is not obj:
                return False
        for kind, code, found in self.systems:  # plain loops: this runs per transaction
            if ctx.system(kind, code) != found:
                return False
        return True


class _KeptTable:
    """One entity's kept postings: per Id, and all of them in Id order (`flat`) with the versions
    of the tables and the accounts they were made from (`stamp`)."""

    def __init__(self) -> None:
        self.entries: dict[str, _Kept] = {}
        self.flat: list[Posting] = []
        self.stamp: tuple[Any, ...] | None = None

    def unchanged(self, ctx: _Context, table: EntityTable) -> bool:
        """Nothing the postings were made from has been written since they were."""
        if self.stamp is None:
            return False
        made_from, version, read_from, systems = self.stamp
        if made_from is not table or table.version != version:
            return False
        for other, seen in read_from:
            if other.version != seen:
                return False
        for kind, code, found in systems:  # plain loops: this runs on every report
            if ctx.system(kind, code) != found:
                return False
        return True

    def refresh(self, ctx: _Context, entity: str, table: EntityTable) -> None:
        """Post anew each transaction written since, or whose sources were; keep the rest."""
        entries = self.entries
        objects = table.objects
        flat: list[Posting] = []
        read_from: dict[EntityTable, int] = {}
        systems: set[tuple[str, str, str | None]] = set()
        for oid in table.ids_in_order():
            obj = objects[oid]
            entry = entries.get(oid)
            if entry is None or entry.obj is not obj or not entry.current(ctx):
                entry = entries[oid] = _keep(ctx, entity, obj, _date(obj))
            flat.extend(entry.postings)
            for other, _, _ in entry.reads:
                read_from[other] = other.version
            systems.update(entry.systems)
        if len(entries) > len(objects):  # forget what was deleted
            for oid in [oid for oid in entries if oid not in objects]:
                del entries[oid]
        self.flat = flat
        self.stamp = (table, table.version, tuple(read_from.items()), tuple(systems))


class _KeptPostings:
    """Each realm's kept postings by entity, for one home currency."""

    def __init__(self, home: str) -> None:
        self.home = home
        self.entities: dict[str, _KeptTable] = {}


_KEPT: weakref.WeakKeyDictionary[Realm, _KeptPostings] = weakref.WeakKeyDictionary()


def _keep(ctx: _Context, entity: str, obj: dict[str, Any], day: date) -> _Kept:
    rule = _RULES.get(entity)
    if rule is None or obj.get("status") == "Deleted":
        return _Kept(obj, day, (), (), ())
    builder = _Builder(ctx, entity, obj)
    rule(builder)
    return _Kept(obj, day, tuple(builder.out), tuple(builder.reads), tuple(builder.systems))


def postings(realm: Realm, *, start: date | None = None, end: date | None = None) -> list[Posting]:
    """Every stored transaction's postings whose TxnDate is within [start, end] (either open).

    A transaction is posted once and its postings kept until it is written again (every write
    stores a new dict), or something they were made from changes: a document a payment settles or
    another payment of it, an item, the account QuickBooks keeps for a purpose. An entity none of
    whose sources was written since (its table's and theirs' versions) hands out its postings as
    they are. So a report costs about as much as reading the postings, not as posting every
    transaction again."""
    out: list[Posting] = []
    with realm.lock:
        ctx = _Context(realm)
        kept = _KEPT.get(realm)
        if kept is None or kept.home != ctx.home:
            kept = _KEPT[realm] = _KeptPostings(ctx.home)
        for entity in TRANSACTION_ENTITIES:
            table = ctx.table(entity)
            kept_table = kept.entities.get(entity)
            if kept_table is None:
                kept_table = kept.entities[entity] = _KeptTable()
            if not kept_table.unchanged(ctx, table):
                kept_table.refresh(ctx, entity, table)
            if start is None and end is None:
                out.extend(kept_table.flat)
            else:
                first, last = start or date.min, end or date.max
                out.extend(p for p in kept_table.flat if first <= p.txn_date <= last)
    return out


def balances(realm: Realm, *, as_of: date | None = None) -> dict[str, Decimal]:
    """Account id -> debit-positive home-currency balance of everything dated up to `as_of`
    (everything without it). Opening balances are transactions against Opening Balance Equity,
    so they are included."""
    return sum_by_account(postings(realm, end=as_of))


def sum_by_account(items: Iterable[Posting]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for posting in items:
        totals[posting.account_id] = totals.get(posting.account_id, ZERO) + posting.amount
    return totals


def current_balance_changes(
    realm: Realm, before: Iterable[Posting], after: Iterable[Posting]
) -> dict[str, Decimal]:
    """How each balance-sheet account's CurrentBalance moves when a transaction's postings go
    from `before` to `after`: in the account's own currency, positive on its normal side."""
    accounts = _accounts(realm)
    home = home_currency(realm)
    changes: dict[str, Decimal] = {}
    for sign, items in ((-1, before), (1, after)):
        for posting in items:
            account = accounts.get(posting.account_id)
            if account is None:
                continue
            side = BALANCE_SHEET_SIGN.get(_classification(account))
            if side is None:
                continue
            if currency_of(account, home) == home:
                moved = posting.amount
            elif posting.currency == currency_of(account, home):
                moved = posting.foreign_amount if posting.foreign_amount is not None else ZERO
            else:
                moved = ZERO
            changes[posting.account_id] = (
                changes.get(posting.account_id, ZERO) + sign * side * moved
            )
    return {account_id: delta for account_id, delta in changes.items() if delta != 0}


def current_balance(account: dict[str, Any], debit_balance: Decimal) -> Decimal:
    """A home-currency account's CurrentBalance for a debit-positive balance (0 off the balance
    sheet)."""
    side = BALANCE_SHEET_SIGN.get(_classification(account))
    return ZERO if side is None else side * debit_balance


def _classification(account: dict[str, Any]) -> str:
    return str(
        account.get("Classification") or CLASSIFICATION.get(str(account.get("AccountType")), "")
    )


_ALIASES = {name.lower(): name for name in TRANSACTION_ENTITIES}
_ALIASES["creditcardpayment"] = "CreditCardPaymentTxn"


def _canonical(entity: str) -> str:
    return _ALIASES.get(entity.lower(), entity)


__all__ = [
    "CLASSIFICATION",
    "EXCHANGE_GAIN_OR_LOSS",
    "TRANSACTION_ENTITIES",
    "Posting",
    "UnpostableLine",
    "balances",
    "current_balance",
    "current_balance_changes",
    "home_currency",
    "multicurrency_enabled",
    "postings",
    "postings_of",
    "preferences",
    "rate_of",
    "sum_by_account",
    "to_home",
]
