"""QBO reports computed from a realm's data: AgedPayables, AgedReceivables, ProfitAndLoss, CashFlow.

Shapes follow QBO's: {"Header":{...},"Columns":{"Column":[...]},"Rows":{"Row":[...]}} with money
as strings ("1241.67"), blank cells as "", totals in "Summary" rows. Reports have no top-level
"time"; their timestamp is Header.Time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from qbo_sandbox import faults
from qbo_sandbox.store import Realm

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
AGING_TITLES = ("Current", "1 - 30", "31 - 60", "61 - 90", "91 and over")
CASH_ACCOUNT_TYPES = ("Bank",)
PNL_SECTIONS: tuple[tuple[str, str, str], ...] = (
    # (group, header, account type)
    ("Income", "Income", "Income"),
    ("COGS", "Cost of Goods Sold", "Cost of Goods Sold"),
    ("Expenses", "Expenses", "Expense"),
    ("OtherIncome", "Other Income", "Other Income"),
    ("OtherExpenses", "Other Expenses", "Other Expense"),
)


def _amount(value: Any) -> Decimal:
    if value is None or value == "" or isinstance(value, bool):
        return ZERO
    return Decimal(str(value) if isinstance(value, float) else value).quantize(CENT)


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT))


def _cell(value: Decimal | None) -> dict[str, str]:
    """A money cell: blank when there is nothing in it, as QBO renders aging reports."""
    return {"value": "" if value is None or value == 0 else _money(value)}


def _date(params: Mapping[str, str], name: str) -> date | None:
    text = params.get(name)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise faults.invalid_value(name, f"{text!r} is not a date (YYYY-MM-DD)") from None


def _today(realm: Realm) -> date:
    return realm.now().astimezone(realm.tz).date()


def _period(realm: Realm, params: Mapping[str, str], default_macro: str) -> tuple[date, date, str]:
    """start_date/end_date, or a date_macro ("This Month-to-date", "Last Year", ...)."""
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
    macros: dict[str, tuple[date, date]] = {
        "today": (today, today),
        "yesterday": (today - timedelta(days=1), today - timedelta(days=1)),
        "this month": (month_start, _month_end(today)),
        "this month to date": (month_start, today),
        "last month": (last_month_end.replace(day=1), last_month_end),
        "this year": (date(today.year, 1, 1), date(today.year, 12, 31)),
        "this year to date": (date(today.year, 1, 1), today),
        "last year": (date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)),
        "last 30 days": (today - timedelta(days=30), today),
        "last 90 days": (today - timedelta(days=90), today),
        "last 12 months": (today - timedelta(days=365), today),
    }
    if key not in macros:
        raise faults.invalid_value("date_macro", f"{macro!r} is not a date macro the sandbox knows")
    start, end = macros[key]
    return start, end, macro


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _in(day_text: Any, start: date, end: date) -> bool:
    try:
        day = date.fromisoformat(str(day_text)[:10])
    except ValueError:
        return False
    return start <= day <= end


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
    header["Currency"] = "USD"
    header["Option"] = [
        *({"Name": k, "Value": v} for k, v in options),
        {"Name": "NoReportData", "Value": "false" if has_data else "true"},
    ]
    return header


# -- aging ---------------------------------------------------------------------------------------


def _aged(realm: Realm, params: Mapping[str, str], *, payables: bool) -> dict[str, Any]:
    report_date = _date(params, "report_date") or _today(realm)
    entity, party, ref_field = (
        ("Bill", "Vendor", "VendorRef") if payables else ("Invoice", "Customer", "CustomerRef")
    )
    wanted = {v.strip() for v in params.get(party.lower(), "").split(",") if v.strip()}
    buckets: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO] * len(AGING_TITLES))
    names: dict[str, str] = {}
    for doc in realm.iter(entity):
        balance = _amount(doc.get("Balance"))
        ref = doc.get(ref_field) or {}
        party_id = str(ref.get("value", ""))
        if balance == 0 or not party_id or (wanted and party_id not in wanted):
            continue
        if not _in(doc.get("TxnDate", report_date.isoformat()), date.min, report_date):
            continue  # not yet entered on the report date
        due = doc.get("DueDate") or doc.get("TxnDate")
        try:
            days_late = (report_date - date.fromisoformat(str(due)[:10])).days
        except ValueError:
            days_late = 0
        index = 0 if days_late <= 0 else min(4, (days_late - 1) // 30 + 1)
        buckets[party_id][index] += balance
        names[party_id] = str(ref.get("name") or "")
    for party_id in names:
        named = realm.get(party, party_id)
        if named is not None:
            names[party_id] = str(named.get("DisplayName") or names[party_id])
    rows: list[dict[str, Any]] = []
    totals = [ZERO] * len(AGING_TITLES)
    for party_id in sorted(names, key=lambda i: (names[i].lower(), int(i) if i.isdigit() else 0)):
        amounts = buckets[party_id]
        totals = [t + a for t, a in zip(totals, amounts, strict=True)]
        rows.append(
            {
                "ColData": [
                    {"value": names[party_id], "id": party_id},
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
    name = "AgedPayables" if payables else "AgedReceivables"
    extra = {party: ",".join(sorted(wanted))} if wanted else None
    header = _header(
        realm,
        name,
        report_date,
        report_date,
        macro="" if "report_date" in params else "Today",
        options=[("report_date", report_date.isoformat())],
        extra=extra,
        has_data=bool(names),
    )
    columns = [{"ColType": party, "ColTitle": ""}] + [
        {"ColType": "Money", "ColTitle": title} for title in (*AGING_TITLES, "Total")
    ]
    return {"Header": header, "Columns": {"Column": columns}, "Rows": {"Row": rows}}


# -- profit and loss ------------------------------------------------------------------------------


def _accounts(realm: Realm) -> dict[str, dict[str, Any]]:
    return {a["Id"]: a for a in realm.iter("Account")}


def _doc_lines(doc: Mapping[str, Any], default_account: str | None) -> list[tuple[str, Decimal]]:
    """(account id, amount) for each line of a document that posts to an account."""
    out: list[tuple[str, Decimal]] = []
    for line in doc.get("Line") or []:
        if not isinstance(line, dict):
            continue
        kind = line.get("DetailType")
        detail = line.get(kind, {}) if isinstance(kind, str) else {}
        account = None
        if isinstance(detail, dict):
            ref = detail.get("AccountRef") or detail.get("ItemAccountRef")
            if isinstance(ref, dict):
                account = str(ref.get("value"))
        if kind == "SalesItemLineDetail" and account is None:
            account = default_account
        if account is None or kind == "SubTotalLineDetail":
            continue
        sign = -1 if kind == "DiscountLineDetail" else 1
        out.append((account, _amount(line.get("Amount")) * sign))
    return out


def _pnl_amounts(realm: Realm, start: date, end: date, cash_basis: bool) -> dict[str, Decimal]:
    """Amount per P&L account id over the period (income positive, expenses positive)."""
    accounts = _accounts(realm)
    income_default = next(
        (i for i, a in accounts.items() if a.get("AccountType") == "Income"), None
    )
    totals: dict[str, Decimal] = defaultdict(lambda: ZERO)

    def post(lines: list[tuple[str, Decimal]], share: Decimal = Decimal(1)) -> None:
        for account, amount in lines:
            totals[account] += amount * share

    def paid_share(doc: Mapping[str, Any], paid: Decimal) -> Decimal:
        total = _amount(doc.get("TotalAmt"))
        return paid / total if total else Decimal(0)

    if cash_basis:
        for payment in realm.iter("Payment"):
            if not _in(payment.get("TxnDate"), start, end):
                continue
            for line in payment.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    invoice = realm.get("Invoice", str(link.get("TxnId")))
                    if invoice is not None:
                        share = paid_share(invoice, _amount(line.get("Amount")))
                        post(_doc_lines(invoice, income_default), share)
        for payment in realm.iter("BillPayment"):
            if not _in(payment.get("TxnDate"), start, end):
                continue
            for line in payment.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    bill = realm.get("Bill", str(link.get("TxnId")))
                    if bill is not None:
                        post(_doc_lines(bill, None), paid_share(bill, _amount(line.get("Amount"))))
    else:
        for invoice in realm.iter("Invoice"):
            if _in(invoice.get("TxnDate"), start, end):
                post(_doc_lines(invoice, income_default))
        for bill in realm.iter("Bill"):
            if _in(bill.get("TxnDate"), start, end):
                post(_doc_lines(bill, None))
    for purchase in realm.iter("Purchase"):
        if _in(purchase.get("TxnDate"), start, end):
            share = Decimal(-1) if purchase.get("Credit") is True else Decimal(1)
            post(_doc_lines(purchase, None), share)
    for deposit in realm.iter("Deposit"):
        if _in(deposit.get("TxnDate"), start, end):
            post(_doc_lines(deposit, None))
    return {
        account: amount.quantize(CENT)
        for account, amount in totals.items()
        if account in accounts
        and accounts[account].get("AccountType") in {t for _, _, t in PNL_SECTIONS}
    }


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


def _net_income(
    realm: Realm, start: date, end: date, cash_basis: bool
) -> tuple[list[dict[str, Any]], Decimal]:
    amounts = _pnl_amounts(realm, start, end, cash_basis)
    accounts = _accounts(realm)
    totals: dict[str, Decimal] = {}
    rows: list[dict[str, Any]] = []
    for group, title, account_type in PNL_SECTIONS:
        ids = sorted(
            (i for i in amounts if accounts[i].get("AccountType") == account_type),
            key=lambda i: str(accounts[i].get("Name", "")).lower(),
        )
        total = sum((amounts[i] for i in ids), ZERO)
        totals[group] = total
        if ids or group in ("Income", "Expenses"):
            data = [_data(str(accounts[i].get("Name", "")), amounts[i], i) for i in ids]
            rows.append(_section(title, group, data, total))
        if group == "COGS":
            rows.append(_summary("Gross Profit", totals["Income"] - total, "GrossProfit"))
        if group == "Expenses":
            operating = totals["Income"] - totals["COGS"] - total
            rows.append(_summary("Net Operating Income", operating, "NetOperatingIncome"))
    other = totals["OtherIncome"] - totals["OtherExpenses"]
    if any(r.get("group") in ("OtherIncome", "OtherExpenses") for r in rows):
        rows.append(_summary("Net Other Income", other, "NetOtherIncome"))
    net = totals["Income"] - totals["COGS"] - totals["Expenses"] + other
    rows.append(_summary("Net Income", net, "NetIncome"))
    return rows, net


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


def profit_and_loss(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    start, end, macro = _period(realm, params, "This Month-to-date")
    basis = _basis(params)
    rows, _ = _net_income(realm, start, end, basis == "Cash")
    has_data = any(r.get("Rows", {}).get("Row") for r in rows)
    header = _header(
        realm,
        "ProfitAndLoss",
        start,
        end,
        macro=macro,
        options=[("AccountingStandard", "GAAP")],
        extra={"ReportBasis": basis, "SummarizeColumnsBy": "Total"},
        has_data=has_data,
    )
    return {"Header": header, "Columns": _money_columns("Account"), "Rows": {"Row": rows}}


def _basis(params: Mapping[str, str]) -> str:
    basis = params.get("accounting_method", "Accrual")
    if basis not in ("Accrual", "Cash"):
        raise faults.invalid_value("accounting_method", f"{basis!r}: use Accrual or Cash")
    return basis


# -- cash flow ----------------------------------------------------------------------------------


def _cash_accounts(realm: Realm) -> set[str]:
    # QBO counts bank accounts and Undeposited Funds as cash.
    return {
        a["Id"]
        for a in realm.iter("Account")
        if a.get("AccountType") in CASH_ACCOUNT_TYPES
        or a.get("AccountSubType") == "UndepositedFunds"
    }


def _cash_movements(realm: Realm) -> list[tuple[str, Decimal, str]]:
    """(TxnDate, change in cash, kind) for every transaction that moves cash."""
    cash = _cash_accounts(realm)
    undeposited = {
        a["Id"] for a in realm.iter("Account") if a.get("AccountSubType") == "UndepositedFunds"
    }
    moves: list[tuple[str, Decimal, str]] = []

    def ref_id(ref: Any) -> str | None:
        return str(ref.get("value")) if isinstance(ref, dict) else None

    for payment in realm.iter("Payment"):
        target = ref_id(payment.get("DepositToAccountRef"))
        if target is None or target in cash:
            moves.append(
                (str(payment.get("TxnDate")), _amount(payment.get("TotalAmt")), "operating")
            )
    for bill_payment in realm.iter("BillPayment"):
        if bill_payment.get("PayType") == "Check":
            moves.append(
                (
                    str(bill_payment.get("TxnDate")),
                    -_amount(bill_payment.get("TotalAmt")),
                    "operating",
                )
            )
    for purchase in realm.iter("Purchase"):
        if ref_id(purchase.get("AccountRef")) in cash:
            sign = 1 if purchase.get("Credit") is True else -1
            moves.append(
                (
                    str(purchase.get("TxnDate")),
                    sign * _amount(purchase.get("TotalAmt")),
                    "operating",
                )
            )
    accounts = _accounts(realm)
    for deposit in realm.iter("Deposit"):
        if ref_id(deposit.get("DepositToAccountRef")) not in cash:
            continue
        for line in deposit.get("Line") or []:
            if line.get("LinkedTxn") and undeposited:
                continue  # moving a payment out of Undeposited Funds: cash stays cash
            detail = line.get("DepositLineDetail") or {}
            account = accounts.get(ref_id(detail.get("AccountRef")) or "", {})
            kind = (
                "financing"
                if account.get("AccountType") in ("Equity", "Long Term Liability")
                else "operating"
            )
            moves.append((str(deposit.get("TxnDate")), _amount(line.get("Amount")), kind))
    return moves


def cash_flow(realm: Realm, params: Mapping[str, str]) -> dict[str, Any]:
    start, end, macro = _period(realm, params, "This Year-to-date")
    _, net_income = _net_income(realm, start, end, cash_basis=False)
    moves = _cash_movements(realm)
    operating_cash = sum((m for d, m, k in moves if k == "operating" and _in(d, start, end)), ZERO)
    financing = sum((m for d, m, k in moves if k == "financing" and _in(d, start, end)), ZERO)
    after_end = sum((m for d, m, _ in moves if _after(d, end)), ZERO)
    cash_now = sum(
        (
            _amount(a.get("CurrentBalance"))
            for a in realm.iter("Account")
            if a["Id"] in _cash_accounts(realm)
        ),
        ZERO,
    )
    ending = cash_now - after_end
    increase = operating_cash + financing
    beginning = ending - increase
    # What reconciles accrual net income to the cash operations brought in: receivables,
    # payables and card balances that changed without cash moving.
    adjustment = operating_cash - net_income
    operating_rows = [
        _data("Net Income", net_income, group="NetIncome"),
        _section(
            "Adjustments to reconcile Net Income to Net Cash provided by operations:",
            "OperatingAdjustments",
            [_data("Changes in receivables, payables and credit cards", adjustment)],
            adjustment,
            "Total Adjustments to reconcile Net Income to Net Cash provided by operations:",
        ),
    ]
    rows: list[dict[str, Any]] = [
        _section(
            "OPERATING ACTIVITIES",
            "OperatingActivities",
            operating_rows,
            operating_cash,
            "Net cash provided by operating activities",
        )
    ]
    if financing:
        rows.append(
            _section(
                "FINANCING ACTIVITIES",
                "FinancingActivities",
                [_data("Owner investment and loans", financing)],
                financing,
                "Net cash provided by financing activities",
            )
        )
    rows.append(_summary("NET CASH INCREASE FOR PERIOD", increase, "CashIncrease"))
    rows.append(_summary("Cash at beginning of period", beginning, "BeginningCash"))
    rows.append(_summary("CASH AT END OF PERIOD", ending, "EndingCash"))
    header = _header(
        realm,
        "CashFlow",
        start,
        end,
        macro=macro,
        extra={"SummarizeColumnsBy": "Total"},
        has_data=bool(moves) or net_income != 0,
    )
    return {"Header": header, "Columns": _money_columns("Account"), "Rows": {"Row": rows}}


def _after(day_text: str, end: date) -> bool:
    try:
        return date.fromisoformat(day_text[:10]) > end
    except ValueError:
        return False


REPORTS: dict[str, Callable[[Realm, Mapping[str, str]], dict[str, Any]]] = {
    "AgedPayables": lambda realm, params: _aged(realm, params, payables=True),
    "AgedReceivables": lambda realm, params: _aged(realm, params, payables=False),
    "ProfitAndLoss": profit_and_loss,
    "CashFlow": cash_flow,
}


def run_report(realm: Realm, name: str, params: Mapping[str, str]) -> dict[str, Any]:
    """The report named as in QBO's URL (case-insensitive), or an Unsupported Operation fault."""
    for known, build in REPORTS.items():
        if known.lower() == name.lower():
            return build(realm, params)
    raise faults.unsupported_operation(f"report {name} (the sandbox computes {', '.join(REPORTS)})")
