"""Cash, cash movements and their classes: Oodaloo's definitions, written once.

They follow QuickBooks' own Statement of Cash Flows
(https://newqbo.com/how-does-quickbooks-online-produce-the-statement-of-cash-flows-report), so the
runway and QuickBooks' report count the same money the same way:

* **Cash accounts** are the Bank-type accounts and Undeposited Funds (money received, not yet
  banked). *Cash on hand* is the Bank accounts alone, in the home currency; undeposited funds are
  shown apart.
* A **cash movement** is a transaction line that moves money into or out of a cash account, in
  the home currency (the amount × the transaction's ExchangeRate), signed: + in, − out.
* Its **class** is the counter-account's AccountType (`classify`): a cash account on both sides is
  a TRANSFER between the business's own accounts (not a flow); Fixed Asset and Other Asset are
  INVESTING; Long Term Liability and Equity are FINANCING (owner money in and out, loans in and
  repaid); everything else (income and expense, A/R and A/P, credit cards, other current assets
  and liabilities, and an item's account a line does not name) is OPERATING.

So a customer payment put into Undeposited Funds is operating cash in on its own date, and the
later deposit that takes it to the bank is a transfer: counted once, when the money was received.

The mirror keeps every line of every transaction that can move money as a `CashLine` ("`amount`
moved into `account_id` from `counter_account_id`"); `cash_movements` turns them into movements by
the rules above. A line's side that is a cash account is a movement of that account, classed by
the other side; both sides cash, it is a transfer on each. A journal entry is taken whole, as
QuickBooks' statement takes it: the cash it moved against each class is minus its non-cash lines
of that class, spread over its cash accounts (`journal_entry_cash`).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")

#: QuickBooks' AccountType of a bank account, and AccountSubType of Undeposited Funds.
BANK = "Bank"
UNDEPOSITED_FUNDS = "UndepositedFunds"
#: Counter-account types that make a movement investing or financing (QuickBooks' statement).
INVESTING_TYPES = frozenset({"Fixed Asset", "Other Asset"})
FINANCING_TYPES = frozenset({"Long Term Liability", "Equity"})


class CashFlowClass(enum.StrEnum):
    """Which part of the statement of cash flows a movement belongs to."""

    OPERATING = "operating"
    INVESTING = "investing"
    FINANCING = "financing"
    #: Between two of the business's own cash accounts: neither in nor out.
    TRANSFER = "transfer"


class MovementKind(enum.StrEnum):
    """Which QuickBooks document moved the cash (its class says what the money was for)."""

    BILL_PAYMENT = "bill_payment"
    PURCHASE = "purchase"
    CUSTOMER_PAYMENT = "customer_payment"
    DEPOSIT = "deposit"
    TRANSFER = "transfer"
    SALES_RECEIPT = "sales_receipt"
    REFUND_RECEIPT = "refund_receipt"
    JOURNAL_ENTRY = "journal_entry"
    CREDIT_CARD_PAYMENT = "credit_card_payment"
    VENDOR_CREDIT = "vendor_credit"
    CREDIT_MEMO = "credit_memo"
    OTHER = "other"


#: The document kind of each QuickBooks transaction type that can move cash.
KIND_OF_ENTITY: dict[str, MovementKind] = {
    "BillPayment": MovementKind.BILL_PAYMENT,
    "Purchase": MovementKind.PURCHASE,
    "Payment": MovementKind.CUSTOMER_PAYMENT,
    "Deposit": MovementKind.DEPOSIT,
    "Transfer": MovementKind.TRANSFER,
    "SalesReceipt": MovementKind.SALES_RECEIPT,
    "RefundReceipt": MovementKind.REFUND_RECEIPT,
    "JournalEntry": MovementKind.JOURNAL_ENTRY,
    "CreditCardPaymentTxn": MovementKind.CREDIT_CARD_PAYMENT,
    "VendorCredit": MovementKind.VENDOR_CREDIT,
    "CreditMemo": MovementKind.CREDIT_MEMO,
}


@dataclass(frozen=True, slots=True)
class AccountKind:
    """What the definitions need to know of an account: QuickBooks' AccountType and sub-type."""

    account_type: str | None
    account_sub_type: str | None = None

    @property
    def is_bank(self) -> bool:
        return self.account_type == BANK

    @property
    def is_undeposited_funds(self) -> bool:
        return self.account_sub_type == UNDEPOSITED_FUNDS

    @property
    def is_cash(self) -> bool:
        return self.is_bank or self.is_undeposited_funds


def classify(counter: AccountKind | None) -> CashFlowClass:
    """The class of cash moved to or from `counter` (None: a line naming no account, such as a
    sales line whose income account is its item's: operating)."""
    if counter is None:
        return CashFlowClass.OPERATING
    if counter.is_cash:
        return CashFlowClass.TRANSFER
    if counter.account_type in INVESTING_TYPES:
        return CashFlowClass.INVESTING
    if counter.account_type in FINANCING_TYPES:
        return CashFlowClass.FINANCING
    return CashFlowClass.OPERATING


def home_amount(amount: Decimal, exchange_rate: Decimal) -> Decimal:
    """`amount` in the home currency: × the transaction's ExchangeRate (home units per unit of
    its currency), rounded half up to cents."""
    return (amount * exchange_rate).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True, slots=True)
class CashMovement:
    """Cash that moved through a cash account on `date`, in the home currency (+ in, − out).

    `flow` is its class; left out, a `TRANSFER` document is a transfer and anything else
    operating (movements built by hand in tests and demos). `currency` and `currency_amount` are
    the transaction's own when it is in a foreign currency.
    """

    date: date
    amount: Decimal
    kind: MovementKind
    account_id: str | None = None
    source_id: str | None = None
    flow: CashFlowClass | None = None
    #: Money into or out of Undeposited Funds, not a bank account.
    undeposited: bool = False
    currency: str | None = None
    currency_amount: Decimal | None = None
    #: The AccountType on the other side ("Equity": the owner's money; None: none named).
    counter_account_type: str | None = None
    #: How many movements this one stands for: a day's movements of one class, kind,
    #: counter-account type and sign summed into one (as the snapshot reads them) count each.
    count: int = 1

    def __post_init__(self) -> None:
        if self.flow is None:
            flow = (
                CashFlowClass.TRANSFER
                if self.kind is MovementKind.TRANSFER
                else CashFlowClass.OPERATING
            )
            object.__setattr__(self, "flow", flow)

    @property
    def cash_flow(self) -> CashFlowClass:
        """`flow`, never None (it is set when the movement is made)."""
        assert self.flow is not None
        return self.flow


@dataclass(frozen=True, slots=True)
class CashLine:
    """One line of a QuickBooks transaction as the mirror keeps it: `amount` (in `currency`)
    moved into `account_id` from `counter_account_id`; negative, out of it to the counter-account.

    Either account may be None where the transaction names none (an item's income account).
    """

    txn_type: str
    txn_id: str
    line: int
    txn_date: date | None
    account_id: str | None
    counter_account_id: str | None
    amount: Decimal
    home_amount: Decimal
    currency: str | None
    exchange_rate: Decimal


JOURNAL_ENTRY = "JournalEntry"
#: A counter-account as a movement's class sees it: its class and AccountType.
_Counter = tuple[CashFlowClass, str | None]
#: One cash account's movement against one counter-account (class, type).
_Cell = tuple[str, _Counter]


def _spread(targets: dict[_Counter, Decimal], nets: dict[str, Decimal]) -> dict[_Cell, Decimal]:
    """`targets` (cash moved per counter-account class and type) shared among the cash accounts
    in proportion to `nets` (each one's net), in cents that add up both ways: each account's
    cells to its net, each counter's to its target (the last row and column take the rounding).
    Both sum to the same total; when that is zero the targets all go to the first account."""
    accounts = sorted(nets)
    counters = sorted(targets, key=lambda c: (c[0].value, c[1] or ""))
    total = sum(nets.values(), Decimal("0.00"))
    cells: dict[_Cell, Decimal] = {}
    if total == 0:
        for counter in counters:
            cells[accounts[0], counter] = targets[counter]
        return cells
    for row, account in enumerate(accounts):
        for column, counter in enumerate(counters):
            if row < len(accounts) - 1 and column < len(counters) - 1:
                share = targets[counter] * nets[account] / total
                cells[account, counter] = share.quantize(CENT, rounding=ROUND_HALF_UP)
    for account in accounts[:-1]:
        done = sum((cells[account, c] for c in counters[:-1]), Decimal("0.00"))
        cells[account, counters[-1]] = nets[account] - done
    for counter in counters:
        done = sum((cells[a, counter] for a in accounts[:-1]), Decimal("0.00"))
        cells[accounts[-1], counter] = targets[counter] - done
    return cells


def journal_entry_cash(
    lines: Iterable[CashLine], accounts: Mapping[str, AccountKind]
) -> dict[_Cell, tuple[Decimal, Decimal]]:
    """The cash one journal entry moved, per cash account and counter-account (class, type), in
    home and own currency, as QuickBooks' statement counts it whatever the lines' order: the cash
    moved against each class and type is minus the sum of the entry's non-cash lines of it,
    spread over its cash accounts by each one's net. Cash accounts alone are a transfer (each
    account's net, against the other cash accounts' type); no cash account, no cash moved. A
    cent left by rounding each line to the home currency is operating (QuickBooks books it to
    exchange gain or loss)."""
    home: dict[str | None, Decimal] = defaultdict(lambda: Decimal("0.00"))
    own: dict[str | None, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for line in lines:  # each line's postings: into its account, out of its counter-account
        for account_id, sign in ((line.account_id, 1), (line.counter_account_id, -1)):
            if account_id is not None or sign == 1:
                home[account_id] += sign * line.home_amount
                own[account_id] += sign * line.amount

    def is_cash(account_id: str | None) -> bool:
        kind = accounts.get(account_id) if account_id is not None else None
        return kind is not None and kind.is_cash

    cash_ids = sorted(a for a in home if a is not None and is_cash(a))
    if not cash_ids:
        return {}
    moved: dict[_Cell, tuple[Decimal, Decimal]] = {}
    counters: dict[_Counter, list[Decimal]] = defaultdict(lambda: [Decimal("0.00")] * 2)
    types_of: dict[CashFlowClass, set[str | None]] = defaultdict(set)
    for account_id in home:
        if account_id is None or not is_cash(account_id):
            kind = accounts.get(account_id) if account_id is not None else None
            flow = classify(kind)
            account_type = None if kind is None else kind.account_type
            # Financing keeps each counter-account's type apart (owner money, a loan); within
            # operating or investing the lines net, so payroll's withheld taxes are not cash in.
            if flow is not CashFlowClass.FINANCING:
                types_of[flow].add(account_type)
                account_type = None
            target = counters[flow, account_type]
            target[0] -= home[account_id]
            target[1] -= own[account_id]
    for flow, types in types_of.items():  # one type in its class: named, as a two-line entry's
        if len(types) == 1 and (flow, None) in counters:
            counters[flow, next(iter(types))] = counters.pop((flow, None))
    cash_home = {a: home[a] for a in cash_ids}
    cash_own = {a: own[a] for a in cash_ids}
    # Cash on both sides only (netting to nothing) is a transfer; a cash line whose other side
    # names no account is operating, as everywhere else.
    if all(h == 0 and o == 0 for h, o in counters.values()) and not sum(cash_home.values()):
        for account_id in cash_ids:
            others = {accounts[a].account_type for a in cash_ids if a != account_id}
            cell = (
                account_id,
                (CashFlowClass.TRANSFER, others.pop() if len(others) == 1 else None),
            )
            moved[cell] = (cash_home[account_id], cash_own[account_id])
        return moved
    for index, nets in enumerate((cash_home, cash_own)):
        targets = {counter: amounts[index] for counter, amounts in counters.items()}
        rest = sum(nets.values(), Decimal("0.00")) - sum(targets.values(), Decimal("0.00"))
        if rest:
            key = (CashFlowClass.OPERATING, None)
            targets[key] = targets.get(key, Decimal("0.00")) + rest
        for cell, amount in _spread(targets, nets).items():
            previous = moved.get(cell, (Decimal("0.00"), Decimal("0.00")))
            moved[cell] = (amount, previous[1]) if index == 0 else (previous[0], amount)
    return moved


def cash_movements(
    lines: Iterable[CashLine], accounts: Mapping[str, AccountKind]
) -> list[CashMovement]:
    """The cash movements of `lines`: each cash side of a line, classed by the other side, summed
    per transaction, cash account and counter-account type (a transaction's lines to one kind of
    account are one movement); a sum of zero is no movement. A journal entry's lines are taken
    together (`journal_entry_cash`)."""
    Key = tuple[str, str, str, CashFlowClass, str | None, date]
    totals: dict[Key, list[Decimal]] = defaultdict(lambda: [Decimal("0.00"), Decimal("0.00")])
    currencies: dict[Key, str | None] = {}
    entries: dict[str, list[CashLine]] = defaultdict(list)
    for line in lines:
        if line.txn_date is None:
            continue
        if line.txn_type == JOURNAL_ENTRY:
            entries[line.txn_id].append(line)
            continue
        sides = (
            (line.account_id, line.counter_account_id, 1),
            (line.counter_account_id, line.account_id, -1),
        )
        for cash_id, other_id, sign in sides:
            cash = accounts.get(cash_id) if cash_id is not None else None
            if cash is None or not cash.is_cash:
                continue
            other = accounts.get(other_id) if other_id is not None else None
            assert cash_id is not None
            other_type = None if other is None else other.account_type
            key = (line.txn_type, line.txn_id, cash_id, classify(other), other_type, line.txn_date)
            total = totals[key]
            total[0] += sign * line.home_amount
            total[1] += sign * line.amount
            currencies[key] = line.currency
    for txn_id, entry in entries.items():
        first = entry[0]
        assert first.txn_date is not None
        for (cash_id, (flow, other_type)), (home, own) in journal_entry_cash(
            entry, accounts
        ).items():
            key = (JOURNAL_ENTRY, txn_id, cash_id, flow, other_type, first.txn_date)
            totals[key] = [home, own]
            currencies[key] = first.currency
    movements: list[CashMovement] = []
    for key, (home, own) in totals.items():
        txn_type, txn_id, cash_id, flow, other_type, day = key
        if home == 0 and own == 0:
            continue
        movements.append(
            CashMovement(
                day,
                home,
                KIND_OF_ENTITY.get(txn_type, MovementKind.OTHER),
                account_id=cash_id,
                source_id=txn_id,
                flow=flow,
                undeposited=accounts[cash_id].is_undeposited_funds,
                currency=currencies[key],
                currency_amount=own,
                counter_account_type=other_type,
            )
        )
    movements.sort(key=lambda m: (m.date, m.source_id or "", m.account_id or ""))
    return movements


__all__ = [
    "BANK",
    "FINANCING_TYPES",
    "INVESTING_TYPES",
    "KIND_OF_ENTITY",
    "UNDEPOSITED_FUNDS",
    "AccountKind",
    "CashFlowClass",
    "CashLine",
    "CashMovement",
    "MovementKind",
    "cash_movements",
    "classify",
    "home_amount",
    "journal_entry_cash",
]
