"""QBO reports computed from the sandbox's general ledger (qbo_sandbox.ledger): AgedPayables,
AgedReceivables and their Detail reports, ProfitAndLoss, BalanceSheet, TrialBalance, CashFlow.

Every figure is a sum of postings (home currency, debit positive), so the reports agree with each
other and with the accounts' balances after any sequence of writes: the aging totals are the A/P
and A/R balances on the report date, the balance sheet balances, the trial balance's columns are
equal, and the cash flow's net change is the change in cash.

Shapes follow QBO's: {"Header":{...},"Columns":{"Column":[...]},"Rows":{"Row":[...]}} with money
as strings ("1241.67"), blank cells as "", totals in "Summary" rows. Reports have no top-level
"time"; their timestamp is Header.Time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from qbo_sandbox import faults
from qbo_sandbox.ledger import CLASSIFICATION, Posting, home_currency, postings
from qbo_sandbox.store import Realm, UnknownEntity, canonical_entity

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
PNL_SECTIONS: tuple[tuple[str, str, str], ...] = (
    # (group, header, account type)
    ("Income", "Income", "Income"),
    ("COGS", "Cost of Goods Sold", "Cost of Goods Sold"),
    ("Expenses", "Expenses", "Expense"),
    ("OtherIncome", "Other Income", "Other Income"),
    ("OtherExpenses", "Other Expenses", "Other Expense"),
)
PNL_TYPES = frozenset(account_type for _, _, account_type in PNL_SECTIONS)
# QuickBooks' statement of cash flows counts bank accounts and Undeposited Funds as cash, and
# sorts every other balance-sheet account by type: current assets and liabilities are operating,
# fixed and other assets investing, long-term liabilities and equity financing
# (https://newqbo.com/how-does-quickbooks-online-produce-the-statement-of-cash-flows-report).
INVESTING_TYPES = frozenset({"Fixed Asset", "Other Asset"})
FINANCING_TYPES = frozenset({"Long Term Liability", "Equity"})
UNDEPOSITED_FUNDS = "UndepositedFunds"
MONTHS = (
    "January February March April May June July August September October November December"
).split()


# -- cells, dates, headers ------------------------------------------------------------------------


def _amount(value: Any) -> Decimal:
    if value is None or value == "" or isinstance(value, bool):
        return ZERO
    return Decimal(str(value) if isinstance(value, float) else value).quantize(CENT)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _cell(value: Decimal | None) -> dict[str, str]:
    """A money cell: blank when there is nothing in it, as QBO renders aging and trial balances."""
    return {"value": "" if value is None or value == 0 else _money(value)}


def _date(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise faults.invalid_value(name, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _today(realm: Realm) -> date:
    return realm.now().astimezone(realm.tz).date()


def _objects(realm: Realm, entity: str) -> Mapping[str, dict[str, Any]]:
    """A table's objects by Id (read-only views), empty for an entity the store does not keep."""
    try:
        return realm.table(canonical_entity(entity)).objects
    except UnknownEntity:
        return {}


def _fiscal_start_month(realm: Realm) -> int:
    """CompanyInfo.FiscalYearStartMonth ("January"), else Preferences' FirstMonthOfFiscalYear."""
    for info in _objects(realm, "CompanyInfo").values():
        name = str(info.get("FiscalYearStartMonth") or "")
        if name in MONTHS:
            return MONTHS.index(name) + 1
    for prefs in _objects(realm, "Preferences").values():
        name = str((prefs.get("AccountingInfoPrefs") or {}).get("FirstMonthOfFiscalYear") or "")
        if name in MONTHS:
            return MONTHS.index(name) + 1
    return 1


def _fiscal_year_start(realm: Realm, day: date) -> date:
    month = _fiscal_start_month(realm)
    year = day.year if day.month >= month else day.year - 1
    return date(year, month, 1)


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _period(realm: Realm, params: Mapping[str, str], default_macro: str) -> tuple[date, date, str]:
    """start_date/end_date, or a date_macro ("This Month-to-date", "Last Fiscal Year", ...)."""
    start, end = _date(params, "start_date"), _date(params, "end_date")
    today = _today(realm)
    if start or end:
        end = end or today
        start = start or end.replace(day=1)
        if start > end:
            raise faults.invalid_value("start_date", f"{start} is after end_date {end}")
        return start, end, ""
    macro = params.get("date_macro") or default_macro
    key = macro.lower().replace("-", " ").replace("_", " ")
    month_start = today.replace(day=1)
    last_month_end = month_start - timedelta(days=1)
    fiscal_start = _fiscal_year_start(realm, today)
    fiscal_end = fiscal_start.replace(year=fiscal_start.year + 1) - timedelta(days=1)
    last_fiscal_start = fiscal_start.replace(year=fiscal_start.year - 1)
    macros: dict[str, tuple[date, date]] = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "this month": (month_start, _month_end(today)),
        "this month to date": (month_start, today),
        "last month": (last_month_end.replace(day=1), last_month_end),
        "this year": (date(today.year, 1, 1), date(today.year, 12, 31)),
        "this year to date": (date(today.year, 1, 1), today),
        "last year": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
        "this fiscal year": (fiscal_start, fiscal_end),
        "this fiscal year to date": (fiscal_start, today),
        "last fiscal year": (last_fiscal_start, fiscal_start - timedelta(days=1)),
        "last 30 days": (today - timedelta(days=30), today),
        "last 90 days": (today - timedelta(days=90), today),
        "last 12 months": (today - timedelta(days=365), today),
    }
    if key not in macros:
        raise faults.invalid_value("date_macro", f"{macro!r} is not a date macro the sandbox knows")
    start, end = macros[key]
    return start, end, macro


def _header(
    realm: Realm,
    name: str,
    start: date,
    end: date,
    *,
    macro: str = "",
    options: Iterable[tuple[str, str]] = (),
    extra: Mapping[str, str] | None = None,
    has_data: bool = True,
) -> dict[str, Any]:
    header: dict[str, Any] = {
        "Time": realm.format_time(realm.now()),
        "ReportName": name,
    }
    if macro:
        header["DateMacro"] = macro.lower()
    header.update(extra or {})
    header["StartPeriod"] = start.isoformat()
    header["EndPeriod"] = end.isoformat()
    header["Currency"] = home_currency(realm)
    header["Option"] = [
        *({"Name": k, "Value": v} for k, v in options),
        {"Name": "NoReportData", "Value": "false" if has_data else "true"},
    ]
    return header


def _accrual_only(params: Mapping[str, str], report: str) -> None:
    basis = params.get("accounting_method", "Accrual")
    if basis != "Accrual":
        raise faults.invalid_value(
            "accounting_method",
            f"{basis!r}: the sandbox computes {report} on the accrual basis only; ask for Accrual",
        )


# -- rows -----------------------------------------------------------------------------------------


def _summary(label: str, amount: Decimal, group: str) -> dict[str, Any]:
    return {
        "Summary": {"ColData": [{"value": label}, {"value": _money(amount)}]},
        "type": "Section",
        "group": group,
    }


def _section(
    title: str,
    group: str,
    rows: list[dict[str, Any]],
    total: Decimal,
    total_label: str | None = None,
) -> dict[str, Any]:
    return {
        "Header": {"ColData": [{"value": title}, {"value": ""}]},
        "Rows": {"Row": rows},
        "Summary": {
            "ColData": [{"value": total_label or f"Total {title}"}, {"value": _money(total)}]
        },
        "type": "Section",
        "group": group,
    }


def _data(
    label: str, amount: Decimal, ident: str | None = None, group: str | None = None
) -> dict[str, Any]:
    first: dict[str, str] = {"value": label}
    if ident is not None:
        first["id"] = ident
    row: dict[str, Any] = {"ColData": [first, {"value": _money(amount)}], "type": "Data"}
    if group:
        row["group"] = group
    return row


def _money_columns(first: str) -> dict[str, Any]:
    return {
        "Column": [
            {
                "ColType": first,
                "ColTitle": "",
                "MetaData": [{"Name": "ColKey", "Value": first.lower()}],
            },
            {
                "ColType": "Money",
                "ColTitle": "Total",
                "MetaData": [{"Name": "ColKey", "Value": "total"}],
            },
        ]
    }


def _has_rows(rows: list[dict[str, Any]]) -> bool:
    return any(r.get("type") == "Data" or _has_rows(r.get("Rows", {}).get("Row", [])) for r in rows)


# -- accounts -------------------------------------------------------------------------------------


class _Chart:
    """The company's accounts and what a report needs to know of each."""

    def __init__(self, realm: Realm) -> None:
        self.accounts = _objects(realm, "Account")

    def kind(self, account_id: str) -> str:
        return str((self.accounts.get(account_id) or {}).get("AccountType") or "")

    def classification(self, account_id: str) -> str:
        account = self.accounts.get(account_id) or {}
        return str(account.get("Classification") or CLASSIFICATION.get(self.kind(account_id), ""))

    def name(self, account_id: str) -> str:
        account = self.accounts.get(account_id) or {}
        return str(account.get("FullyQualifiedName") or account.get("Name") or account_id)

    def is_pnl(self, account_id: str) -> bool:
        return self.kind(account_id) in PNL_TYPES or self.classification(account_id) in (
            "Revenue",
            "Expense",
        )

    def is_cash(self, account_id: str) -> bool:
        account = self.accounts.get(account_id) or {}
        return (
            account.get("AccountType") == "Bank"
            or account.get("AccountSubType") == UNDEPOSITED_FUNDS
        )

    def is_retained_earnings(self, account_id: str) -> bool:
        return (self.accounts.get(account_id) or {}).get("AccountSubType") == "RetainedEarnings"

    def retained_earnings(self) -> str | None:
        return next((i for i in self.accounts if self.is_retained_earnings(i)), None)

    def ordered(self, ids: Iterable[str]) -> list[str]:
        return sorted(ids, key=lambda i: (self.name(i).lower(), int(i) if i.isdigit() else 0))


def _sums(items: Iterable[Posting]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for posting in items:
        totals[posting.account_id] += posting.amount
    return totals


# -- aging ----------------------------------------------------------------------------------------

_TXN_TYPE_NAMES = {
    "Bill": "Bill",
    "VendorCredit": "Vendor Credit",
    "BillPayment": "Bill Payment",
    "Invoice": "Invoice",
    "CreditMemo": "Credit Memo",
    "Payment": "Payment",
    "JournalEntry": "Journal Entry",
    "Deposit": "Deposit",
    "RefundReceipt": "Refund",
}
# A payment line's link to the document it settles (bill or invoice) or the credit it applies.
_SETTLED = {"BillPayment": ("Bill", "VendorCredit"), "Payment": ("Invoice", "CreditMemo")}


@dataclass
class _OpenItem:
    """One document's part of A/P or A/R on the report date (home currency, owed positive)."""

    txn_type: str
    txn_id: str
    party_id: str = ""
    amount: Decimal = ZERO  # what the document itself put in the account
    open: Decimal = ZERO  # what is still open of it on the report date
    doc: dict[str, Any] = field(default_factory=dict)

    @property
    def due(self) -> date:
        return _day(self.doc.get("DueDate")) or _day(self.doc.get("TxnDate")) or date.min


@dataclass(frozen=True)
class _AgingSide:
    report: str
    detail_report: str
    party: str  # "Vendor" | "Customer"
    control_type: str  # the account type aged
    sign: int  # -1: a credit balance is owed (A/P); +1: a debit balance is owed to us (A/R)


_PAYABLES = _AgingSide("AgedPayables", "AgedPayableDetail", "Vendor", "Accounts Payable", -1)
_RECEIVABLES = _AgingSide(
    "AgedReceivables", "AgedReceivableDetail", "Customer", "Accounts Receivable", 1
)


def _document_of(realm: Realm, posting: Posting) -> tuple[str, str]:
    """The document a posting to A/P or A/R belongs to: a payment line's share belongs to the
    bill, invoice or credit the line links; everything else to its own transaction."""
    kinds = _SETTLED.get(posting.txn_type)
    if kinds and posting.line >= 1:
        payment = _objects(realm, posting.txn_type).get(posting.txn_id) or {}
        lines = payment.get("Line") or []
        if posting.line <= len(lines) and isinstance(lines[posting.line - 1], dict):
            for link in lines[posting.line - 1].get("LinkedTxn") or []:
                if link.get("TxnType") in kinds and link.get("TxnId") is not None:
                    return str(link["TxnType"]), str(link["TxnId"])
    return posting.txn_type, posting.txn_id


def _open_items(realm: Realm, side: _AgingSide, as_of: date) -> list[_OpenItem]:
    """Each document's open part of A/P (or A/R) on `as_of`: its own posting less what payments
    and credits dated on or before that day applied to it, in home currency."""
    chart = _Chart(realm)
    control = {i for i in chart.accounts if chart.kind(i) == side.control_type}
    items: dict[tuple[str, str], _OpenItem] = {}
    for posting in postings(realm, end=as_of):
        if posting.account_id not in control:
            continue
        key = _document_of(realm, posting)
        item = items.get(key)
        if item is None:
            doc = _objects(realm, key[0]).get(key[1]) or {}
            item = items[key] = _OpenItem(*key, doc=doc)
        owed = side.sign * posting.amount
        item.open += owed
        if key == (posting.txn_type, posting.txn_id):
            item.amount += owed
            item.party_id = item.party_id or posting.name_id or ""
        elif not item.party_id:
            item.party_id = posting.name_id or ""
    for item in items.values():
        ref = item.doc.get("VendorRef") or item.doc.get("CustomerRef") or {}
        if isinstance(ref, dict) and ref.get("value"):
            item.party_id = str(ref["value"])
    return [item for item in items.values() if item.open != 0]


def _buckets(params: Mapping[str, str]) -> tuple[int, int]:
    """aging_period (days per column, 30) and num_periods (columns after Current, 4)."""
    values = []
    for name, default in (("aging_period", 30), ("num_periods", 4)):
        text = params.get(name) or str(default)
        if not text.isdigit() or int(text) < 1:
            raise faults.invalid_value(name, f"{text!r} is not a positive whole number")
        values.append(int(text))
    return values[0], values[1]


def _bucket_titles(period: int, count: int, *, detail: bool) -> list[str]:
    suffix = " days past due" if detail else ""
    titles = ["Current"]
    titles += [f"{i * period + 1} - {(i + 1) * period}{suffix}" for i in range(count - 1)]
    last = (count - 1) * period + 1
    titles.append(f"{last} or more{suffix}" if detail else f"{last} and over")
    return titles


def _aging_date(realm: Realm, params: Mapping[str, str], report_date: date) -> date:
    # aging_method "Report_Date" (the default) ages from the report date, "Current" from today
    # (Intuit's AgedPayables reference: report_date, aging_method = Report_Date | Current).
    method = params.get("aging_method") or "Report_Date"
    if method.lower() == "report_date":
        return report_date
    if method.lower() == "current":
        return _today(realm)
    raise faults.invalid_value("aging_method", f"{method!r}: use Report_Date or Current")


def _aging(
    realm: Realm, params: Mapping[str, str], side: _AgingSide, *, detail: bool
) -> dict[str, Any]:
    report_date = _date(params, "report_date") or _today(realm)
    aged_from = _aging_date(realm, params, report_date)
    period, count = _buckets(params)
    wanted = {v.strip() for v in params.get(side.party.lower(), "").split(",") if v.strip()}
    items = [
        item
        for item in _open_items(realm, side, report_date)
        if not wanted or item.party_id in wanted
    ]
    parties = _objects(realm, side.party)

    def party_name(party_id: str) -> str:
        return str((parties.get(party_id) or {}).get("DisplayName") or party_id)

    def bucket(item: _OpenItem) -> int:
        late = (aged_from - item.due).days
        return 0 if late <= 0 else min(count, (late - 1) // period + 1)

    titles = _bucket_titles(period, count, detail=detail)
    name = side.detail_report if detail else side.report
    header = _header(
        realm,
        name,
        report_date,
        report_date,
        macro="" if "report_date" in params else "Today",
        options=[("report_date", report_date.isoformat())],
        extra={side.party: ",".join(sorted(wanted))} if wanted else None,
        has_data=bool(items),
    )
    if detail:
        rows, columns = _aging_detail_rows(items, titles, bucket, party_name, side)
    else:
        rows, columns = _aging_summary_rows(items, titles, bucket, party_name, side)
    return {"Header": header, "Columns": {"Column": columns}, "Rows": {"Row": rows}}


def _aging_summary_rows(
    items: list[_OpenItem],
    titles: list[str],
    bucket: Callable[[_OpenItem], int],
    party_name: Callable[[str], str],
    side: _AgingSide,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_party: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(titles))
    for item in items:
        by_party[item.party_id][bucket(item)] += item.open
    rows: list[dict[str, Any]] = []
    totals = [ZERO] * len(titles)
    for party_id in sorted(by_party, key=lambda i: (party_name(i).lower(), i)):
        amounts = by_party[party_id]
        totals = [t + a for t, a in zip(totals, amounts, strict=True)]
        rows.append(
            {
                "ColData": [
                    {"value": party_name(party_id), "id": party_id},
                    *(_cell(a) for a in amounts),
                    _cell(sum(amounts, ZERO)),
                ]
            }
        )
    rows.append(
        {
            "Summary": {
                "ColData": [
                    {"value": "TOTAL"},
                    *({"value": _money(t)} for t in totals),
                    {"value": _money(sum(totals, ZERO))},
                ]
            },
            "type": "Section",
            "group": "GrandTotal",
        }
    )
    columns = [{"ColType": side.party, "ColTitle": ""}] + [
        {"ColType": "Money", "ColTitle": title} for title in (*titles, "Total")
    ]
    return rows, columns


def _aging_detail_rows(
    items: list[_OpenItem],
    titles: list[str],
    bucket: Callable[[_OpenItem], int],
    party_name: Callable[[str], str],
    side: _AgingSide,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    party_key = "vend_name" if side.party == "Vendor" else "cust_name"
    columns = [
        {"ColType": "tx_date", "ColTitle": "Date"},
        {"ColType": "txn_type", "ColTitle": "Transaction Type"},
        {"ColType": "doc_num", "ColTitle": "Num"},
        {"ColType": party_key, "ColTitle": side.party},
        {"ColType": "due_date", "ColTitle": "Due Date"},
        {"ColType": "subt_neg_amount", "ColTitle": "Amount"},
        {"ColType": "subt_neg_open_bal", "ColTitle": "Open Balance"},
    ]
    blank = [{"value": ""}] * 4
    sections: list[dict[str, Any]] = []
    total_amount = total_open = ZERO
    for index in range(len(titles) - 1, -1, -1):  # QBO lists the oldest first
        inside = sorted(
            (item for item in items if bucket(item) == index),
            key=lambda item: (item.due, item.txn_type, item.txn_id),
        )
        if not inside:
            continue
        data = [
            {
                "ColData": [
                    {"value": str(item.doc.get("TxnDate") or "")[:10]},
                    {
                        "value": _TXN_TYPE_NAMES.get(item.txn_type, item.txn_type),
                        "id": item.txn_id,
                    },
                    {"value": str(item.doc.get("DocNumber") or "")},
                    {"value": party_name(item.party_id), "id": item.party_id},
                    {"value": item.due.isoformat() if item.due != date.min else ""},
                    {"value": _money(item.amount)},
                    {"value": _money(item.open)},
                ],
                "type": "Data",
            }
            for item in inside
        ]
        amount = sum((item.amount for item in inside), ZERO)
        still_open = sum((item.open for item in inside), ZERO)
        total_amount += amount
        total_open += still_open
        sections.append(
            {
                "Header": {
                    "ColData": [{"value": titles[index]}, *blank, {"value": ""}, {"value": ""}]
                },
                "Rows": {"Row": data},
                "Summary": {
                    "ColData": [
                        {"value": f"Total for {titles[index]}"},
                        *blank,
                        {"value": _money(amount)},
                        {"value": _money(still_open)},
                    ]
                },
                "type": "Section",
            }
        )
    sections.append(
        {
            "Summary": {
                "ColData": [
                    {"value": "TOTAL"},
                    *blank,
                    {"value": _money(total_amount)},
                    {"value": _money(total_open)},
                ]
            },
            "type": "Section",
            "group": "GrandTotal",
        }
    )
    return sections, columns


# -- profit and loss ------------------------------------------------------------------------------


def _pnl_amounts(realm: Realm, start: date, end: date, *, cash_basis: bool) -> dict[str, Decimal]:
    """Debit-positive P&L postings per account over the period.

    Accrual: every posting to an income or expense account dated in the period. Cash: the P&L
    postings of transactions that moved money themselves (purchases, sales receipts, deposits,
    journal entries...) dated in the period, and for each payment in the period the share of the
    bill's or invoice's P&L postings it paid."""
    chart = _Chart(realm)
    if not cash_basis:
        return _sums(p for p in postings(realm, start=start, end=end) if chart.is_pnl(p.account_id))
    all_postings = postings(realm, end=end)
    by_txn: dict[tuple[str, str], list[Posting]] = defaultdict(list)
    for posting in all_postings:
        by_txn[(posting.txn_type, posting.txn_id)].append(posting)
    control_types = {_PAYABLES.control_type, _RECEIVABLES.control_type}
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for (txn_type, _), items in by_txn.items():
        day = items[0].txn_date
        if not start <= day <= end:
            continue
        if any(chart.kind(p.account_id) in control_types for p in items):
            # On account: recognised when paid. A payment brings in the share it settles.
            for posting in items:
                if posting.line < 1 or txn_type not in _SETTLED:
                    continue
                if chart.kind(posting.account_id) not in control_types:
                    continue
                doc_type, doc_id = _document_of(realm, posting)
                doc = _objects(realm, doc_type).get(doc_id) or {}
                doc_postings = by_txn.get((doc_type, doc_id), [])
                control_total = sum(
                    (p.amount for p in doc_postings if chart.kind(p.account_id) in control_types),
                    ZERO,
                )
                if not doc or control_total == 0:
                    continue
                share = -posting.amount / control_total  # what this line paid of the document
                for p in doc_postings:
                    if chart.is_pnl(p.account_id):
                        totals[p.account_id] += p.amount * share
            continue
        for posting in items:
            if chart.is_pnl(posting.account_id):
                totals[posting.account_id] += posting.amount
    return {account: amount.quantize(CENT) for account, amount in totals.items()}


def _net_income_rows(
    realm: Realm, amounts: Mapping[str, Decimal]
) -> tuple[list[dict[str, Any]], Decimal]:
    """QBO's P&L sections from debit-positive P&L sums, and the net income (profit positive)."""
    chart = _Chart(realm)
    totals: dict[str, Decimal] = {}
    rows: list[dict[str, Any]] = []
    for group, title, account_type in PNL_SECTIONS:
        sign = -1 if account_type in ("Income", "Other Income") else 1
        ids = chart.ordered(i for i in amounts if chart.kind(i) == account_type and amounts[i])
        total = sum((sign * amounts[i] for i in ids), ZERO)
        totals[group] = total
        if ids or group in ("Income", "Expenses"):
            data = [_data(chart.name(i), sign * amounts[i], i) for i in ids]
            rows.append(_section(title, group, data, total))
        if group == "COGS":
            rows.append(_summary("Gross Profit", totals["Income"] - total, "GrossProfit"))
        if group == "Expenses":
            operating = totals["Income"] - totals["COGS"] - total
            rows.append(_summary("Net Operating Income", operating, "NetOperatingIncome"))
    other = totals["OtherIncome"] - totals["OtherExpenses"]
    if any(r.get("group") in ("OtherIncome", "OtherExpenses") for r in rows):
        rows.append(_summary("Net Other Income", other, "NetOtherIncome"))
    # Accounts of a P&L classification but no P&L type still count, as QBO's net income does.
    unsorted = -sum((a for i, a in amounts.items() if chart.kind(i) not in PNL_TYPES), ZERO)
    net = totals["Income"] - totals["COGS"] - totals["Expenses"] + other + unsorted
    rows.append(_summary("Net Income", net, "NetIncome"))
    return rows, net


def _basis(params: Mapping[str, str]) -> str:
    basis = params.get("accounting_method", "Accrual")
    if basis not in ("Accrual", "Cash"):
        raise faults.invalid_value("accounting_method", f"{basis!r}: use Accrual or Cash")
    return basis


def profit_and_loss(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    start, end, macro = _period(realm, params, "This Month-to-date")
    basis = _basis(params)
    amounts = _pnl_amounts(realm, start, end, cash_basis=basis == "Cash")
    rows, _ = _net_income_rows(realm, amounts)
    header = _header(
        realm,
        "ProfitAndLoss",
        start,
        end,
        macro=macro,
        options=[("AccountingStandard", "GAAP")],
        extra={"ReportBasis": basis, "SummarizeColumnsBy": "Total"},
        has_data=_has_rows(rows),
    )
    return {"Header": header, "Columns": _money_columns("Account"), "Rows": {"Row": rows}}


# -- balance sheet and trial balance --------------------------------------------------------------


@dataclass(frozen=True)
class _Closing:
    """Every account's debit-positive balance at the end of a day, with the P&L closed into
    retained earnings at each fiscal year's start, as QuickBooks closes its books."""

    balances: dict[str, Decimal]  # balance-sheet accounts, and P&L accounts for this fiscal year
    retained_earnings: Decimal  # prior years' net result (debit positive) plus its own account
    retained_earnings_id: str | None
    net_income: Decimal  # this fiscal year's, profit positive


def _closing(realm: Realm, end: date) -> _Closing:
    chart = _Chart(realm)
    year_start = _fiscal_year_start(realm, end)
    balances: dict[str, Decimal] = defaultdict(lambda: ZERO)
    earlier_result = ZERO
    for posting in postings(realm, end=end):
        if chart.is_pnl(posting.account_id) and posting.txn_date < year_start:
            earlier_result += posting.amount
        else:
            balances[posting.account_id] += posting.amount
    retained_id = chart.retained_earnings()
    retained = earlier_result + (balances.pop(retained_id, ZERO) if retained_id else ZERO)
    net_income = -sum((a for i, a in balances.items() if chart.is_pnl(i)), ZERO)
    return _Closing(dict(balances), retained, retained_id, net_income)


# (group, title) of the balance sheet's sections of each account type, in QBO's order.
_BALANCE_SHEET_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("Bank", "BankAccounts", "Bank Accounts"),
    ("Accounts Receivable", "AR", "Accounts Receivable"),
    ("Other Current Asset", "OtherCurrentAssets", "Other Current Assets"),
    ("Fixed Asset", "FixedAssets", "Fixed Assets"),
    ("Other Asset", "OtherAssets", "Other Assets"),
    ("Accounts Payable", "AP", "Accounts Payable"),
    ("Credit Card", "CreditCards", "Credit Cards"),
    ("Other Current Liability", "OtherCurrentLiabilities", "Other Current Liabilities"),
    ("Long Term Liability", "LongTermLiabilities", "Long-Term Liabilities"),
)


def balance_sheet(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    _accrual_only(params, "BalanceSheet")
    start, end, macro = _period(realm, params, "This Fiscal Year-to-date")
    chart = _Chart(realm)
    closing = _closing(realm, end)
    by_type: dict[str, list[str]] = defaultdict(list)
    for account_id, amount in closing.balances.items():
        if amount and not chart.is_pnl(account_id):
            by_type[chart.kind(account_id)].append(account_id)

    def typed(account_type: str, group: str, title: str, sign: int) -> tuple[list[Any], Decimal]:
        ids = chart.ordered(by_type.pop(account_type, []))
        if not ids:
            return [], ZERO
        total = sum((sign * closing.balances[i] for i in ids), ZERO)
        data = [_data(chart.name(i), sign * closing.balances[i], i) for i in ids]
        return [_section(title, group, data, total)], total

    def sections(types: Iterable[str], sign: int) -> tuple[list[Any], Decimal]:
        rows: list[Any] = []
        total = ZERO
        for account_type, group, title in _BALANCE_SHEET_LAYOUT:
            if account_type in types:
                section, amount = typed(account_type, group, title, sign)
                rows += section
                total += amount
        return rows, total

    current_assets, current_assets_total = sections(
        ("Bank", "Accounts Receivable", "Other Current Asset"), 1
    )
    long_assets, long_assets_total = sections(("Fixed Asset", "Other Asset"), 1)
    current_liabilities, current_liabilities_total = sections(
        ("Accounts Payable", "Credit Card", "Other Current Liability"), -1
    )
    long_liabilities, long_liabilities_total = sections(("Long Term Liability",), -1)
    equity_ids = chart.ordered(by_type.pop("Equity", []))
    equity_rows = [_data(chart.name(i), -closing.balances[i], i) for i in equity_ids]
    equity_total = sum((-closing.balances[i] for i in equity_ids), ZERO)
    if closing.retained_earnings or closing.retained_earnings_id:
        equity_rows.append(
            _data(
                "Retained Earnings",
                -closing.retained_earnings,
                closing.retained_earnings_id,
            )
        )
        equity_total -= closing.retained_earnings
    equity_rows.append(_data("Net Income", closing.net_income))
    equity_total += closing.net_income
    # Accounts of a type the layout does not know still count: by their classification, among
    # the current assets, the current liabilities or the equity.
    for account_id in chart.ordered(i for ids in by_type.values() for i in ids):
        row_of = chart.classification(account_id)
        if row_of == "Asset":
            amount = closing.balances[account_id]
            current_assets.append(_data(chart.name(account_id), amount, account_id))
            current_assets_total += amount
        elif row_of == "Liability":
            amount = -closing.balances[account_id]
            current_liabilities.append(_data(chart.name(account_id), amount, account_id))
            current_liabilities_total += amount
        else:
            amount = -closing.balances[account_id]
            equity_rows.insert(0, _data(chart.name(account_id), amount, account_id))
            equity_total += amount
    assets: list[dict[str, Any]] = []
    if current_assets:
        assets.append(
            _section("Current Assets", "CurrentAssets", current_assets, current_assets_total)
        )
    assets += long_assets
    liabilities: list[dict[str, Any]] = []
    if current_liabilities:
        liabilities.append(
            _section(
                "Current Liabilities",
                "CurrentLiabilities",
                current_liabilities,
                current_liabilities_total,
            )
        )
    liabilities += long_liabilities
    liabilities_total = current_liabilities_total + long_liabilities_total
    liabilities_and_equity: list[dict[str, Any]] = []
    if liabilities:
        liabilities_and_equity.append(
            _section("Liabilities", "Liabilities", liabilities, liabilities_total)
        )
    liabilities_and_equity.append(_section("Equity", "Equity", equity_rows, equity_total))
    rows = [
        _section(
            "ASSETS",
            "TotalAssets",
            assets,
            current_assets_total + long_assets_total,
            "TOTAL ASSETS",
        ),
        _section(
            "LIABILITIES AND EQUITY",
            "TotalLiabilitiesAndEquity",
            liabilities_and_equity,
            liabilities_total + equity_total,
            "TOTAL LIABILITIES AND EQUITY",
        ),
    ]
    header = _header(
        realm,
        "BalanceSheet",
        start,
        end,
        macro=macro,
        options=[("AccountingStandard", "GAAP")],
        extra={"ReportBasis": "Accrual", "SummarizeColumnsBy": "Total"},
        has_data=any(closing.balances.values()) or closing.retained_earnings != 0,
    )
    return {"Header": header, "Columns": _money_columns("Account"), "Rows": {"Row": rows}}


_TYPE_ORDER = {
    account_type: index
    for index, account_type in enumerate(
        [t for t, _, _ in _BALANCE_SHEET_LAYOUT] + ["Equity"] + [t for _, _, t in PNL_SECTIONS]
    )
}


def trial_balance(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    """Each account's balance at the end date in a Debit or a Credit column: balance-sheet
    accounts since the beginning, income and expense accounts since the fiscal year's start, the
    years before closed into Retained Earnings. The two columns' totals are equal."""
    _accrual_only(params, "TrialBalance")
    start, end, macro = _period(realm, params, "This Month-to-date")
    chart = _Chart(realm)
    closing = _closing(realm, end)
    lines = [(i, a) for i, a in closing.balances.items() if a]
    if closing.retained_earnings:
        lines.append((closing.retained_earnings_id or "", closing.retained_earnings))
    lines.sort(
        key=lambda pair: (
            _TYPE_ORDER.get(chart.kind(pair[0]), 99 if pair[0] else _TYPE_ORDER["Equity"]),
            (chart.name(pair[0]) if pair[0] else "Retained Earnings").lower(),
        )
    )
    rows: list[dict[str, Any]] = []
    debits = credits = ZERO
    for account_id, amount in lines:
        label = chart.name(account_id) if account_id else "Retained Earnings"
        first = {"value": label, **({"id": account_id} if account_id else {})}
        debit = amount if amount > 0 else None
        credit = -amount if amount < 0 else None
        debits += debit or ZERO
        credits += credit or ZERO
        rows.append({"ColData": [first, _cell(debit), _cell(credit)]})
    rows.append(
        {
            "Summary": {
                "ColData": [
                    {"value": "TOTAL"},
                    {"value": _money(debits)},
                    {"value": _money(credits)},
                ]
            },
            "type": "Section",
            "group": "GrandTotal",
        }
    )
    header = _header(
        realm,
        "TrialBalance",
        start,
        end,
        macro=macro,
        extra={"ReportBasis": "Accrual"},
        has_data=bool(lines),
    )
    columns = [
        {"ColType": "Account", "ColTitle": ""},
        {"ColType": "Money", "ColTitle": "Debit"},
        {"ColType": "Money", "ColTitle": "Credit"},
    ]
    return {"Header": header, "Columns": {"Column": columns}, "Rows": {"Row": rows}}


# -- cash flow ------------------------------------------------------------------------------------


def cash_flow(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    """QuickBooks' statement of cash flows, indirect method: net income, then the change in each
    non-cash balance-sheet account over the period, sorted into operating, investing and
    financing by account type; cash is the bank accounts and Undeposited Funds."""
    _accrual_only(params, "CashFlow")
    start, end, macro = _period(realm, params, "This Year-to-date")
    chart = _Chart(realm)
    in_period: dict[str, Decimal] = defaultdict(lambda: ZERO)
    beginning = ZERO
    any_postings = False
    for posting in postings(realm, end=end):
        any_postings = True
        if posting.txn_date < start:
            if chart.is_cash(posting.account_id):
                beginning += posting.amount
            continue
        in_period[posting.account_id] += posting.amount
    net_income = -sum((a for i, a in in_period.items() if chart.is_pnl(i)), ZERO)
    groups: dict[str, list[str]] = defaultdict(list)
    for account_id, amount in in_period.items():
        if not amount or chart.is_pnl(account_id) or chart.is_cash(account_id):
            continue
        kind = chart.kind(account_id)
        group = (
            "InvestingActivities"
            if kind in INVESTING_TYPES
            else "FinancingActivities"
            if kind in FINANCING_TYPES
            else "OperatingAdjustments"
        )
        groups[group].append(account_id)

    def rows_of(group: str) -> tuple[list[dict[str, Any]], Decimal]:
        ids = chart.ordered(groups.get(group, []))
        # A rise in an asset took cash; a rise in a liability or equity brought it.
        return [_data(chart.name(i), -in_period[i], i) for i in ids], -sum(
            (in_period[i] for i in ids), ZERO
        )

    adjustments, adjusted = rows_of("OperatingAdjustments")
    operating = net_income + adjusted
    operating_rows = [_data("Net Income", net_income, group="NetIncome")]
    if adjustments:
        operating_rows.append(
            _section(
                "Adjustments to reconcile Net Income to Net Cash provided by operations:",
                "OperatingAdjustments",
                adjustments,
                adjusted,
                "Total Adjustments to reconcile Net Income to Net Cash provided by operations:",
            )
        )
    rows: list[dict[str, Any]] = [
        _section(
            "OPERATING ACTIVITIES",
            "OperatingActivities",
            operating_rows,
            operating,
            "Net cash provided by operating activities",
        )
    ]
    increase = operating
    for group, title, label in (
        (
            "InvestingActivities",
            "INVESTING ACTIVITIES",
            "Net cash provided by investing activities",
        ),
        (
            "FinancingActivities",
            "FINANCING ACTIVITIES",
            "Net cash provided by financing activities",
        ),
    ):
        data, total = rows_of(group)
        if data:
            rows.append(_section(title, group, data, total, label))
            increase += total
    rows.append(_summary("NET CASH INCREASE FOR PERIOD", increase, "CashIncrease"))
    rows.append(_summary("Cash at beginning of period", beginning, "BeginningCash"))
    rows.append(_summary("CASH AT END OF PERIOD", beginning + increase, "EndingCash"))
    header = _header(
        realm,
        "CashFlow",
        start,
        end,
        macro=macro,
        extra={"SummarizeColumnsBy": "Total"},
        has_data=any_postings,
    )
    return {"Header": header, "Columns": _money_columns("Account"), "Rows": {"Row": rows}}


REPORTS: dict[str, Callable[[Realm, Mapping[str, str]], dict[str, Any]]] = {
    "AgedPayables": lambda realm, params: _aging(realm, params, _PAYABLES, detail=False),
    "AgedPayableDetail": lambda realm, params: _aging(realm, params, _PAYABLES, detail=True),
    "AgedReceivables": lambda realm, params: _aging(realm, params, _RECEIVABLES, detail=False),
    "AgedReceivableDetail": lambda realm, params: _aging(realm, params, _RECEIVABLES, detail=True),
    "ProfitAndLoss": profit_and_loss,
    "BalanceSheet": balance_sheet,
    "TrialBalance": trial_balance,
    "CashFlow": cash_flow,
}


def run_report(realm: Realm, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The report named as in QBO's URL (case-insensitive), or an Unsupported Operation fault."""
    for known, build in REPORTS.items():
        if known.lower() == name.lower():
            with realm.lock:  # one consistent picture of the books
                return build(realm, params)
    raise faults.unsupported_operation(f"report {name} (the sandbox computes {', '.join(REPORTS)})")
