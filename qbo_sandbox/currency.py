"""Multicurrency as QuickBooks Online keeps it: the company's preferences, its currencies, exchange
rates by date, and the rules a transaction's currency must follow.

- Preferences.CurrencyPrefs {MultiCurrencyEnabled, HomeCurrency}; off by default, and then every
  transaction, account, vendor and customer is in the home currency.
- On: a currency other than home must be an active CompanyCurrency. A transaction in it carries
  its ExchangeRate (home currency units per one foreign unit), QuickBooks refuses one without it;
  a vendor, customer or account has one currency and a transaction can involve only one foreign
  currency (its party's and its accounts' currencies are home or the transaction's).
- ExchangeRate objects hold the company's rates per currency and date; a lookup takes the latest
  rate dated on or before the day asked.
- Turning multicurrency on adds the "Exchange Gain or Loss" account, as QuickBooks does.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from qbo_sandbox import ledger
from qbo_sandbox.faults import FaultError, QBOFault, business_validation, invalid_value
from qbo_sandbox.store import Realm

# Exchange rates work to six decimal places in QuickBooks Online ("although the exchange rate is
# initially displayed to five decimal places ... it really functions to six decimal places":
# https://www.firmofthefuture.com/content/new-multicurrency-features-in-quickbooks-online/).
RATE_PLACES = Decimal("0.000001")
CURRENCY_NAMES: dict[str, str] = {
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "JPY": "Japanese Yen",
    "CHF": "Swiss Franc",
    "MXN": "Mexican Peso",
    "INR": "Indian Rupee",
    "CNY": "Chinese Yuan Renminbi",
    "NZD": "New Zealand Dollar",
    "SEK": "Swedish Krona",
    "HKD": "Hong Kong Dollar",
}


def home_currency_of(country: str) -> str:
    """The currency a company in `country` (ISO 3166 alpha-2) keeps its books in, as QuickBooks
    sets it for that country's edition: GBP in GB, EUR in DE, USD in US."""
    from babel.numbers import get_territory_currencies

    found = get_territory_currencies(country.upper(), tender=True)
    if not found:
        raise ValueError(f"no currency is known for country {country!r}; use an ISO code like GB")
    return str(found[0])


def currency_ref(code: str) -> dict[str, str]:
    return {"value": code, "name": CURRENCY_NAMES.get(code, code)}


def default_preferences(home: str = ledger.DEFAULT_HOME_CURRENCY) -> dict[str, Any]:
    """A fresh US company's Preferences, in the shape of Intuit's Preferences reference
    (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/preferences)."""
    return {
        "Id": "1",
        "AccountingInfoPrefs": {
            "FirstMonthOfFiscalYear": "January",
            "UseAccountNumbers": True,
            "TaxYearMonth": "January",
            "ClassTrackingPerTxn": False,
            "ClassTrackingPerTxnLine": False,
            "TrackDepartments": False,
            "CustomerTerminology": "Customers",
        },
        "ProductAndServicesPrefs": {
            "ForSales": True,
            "ForPurchase": True,
            "QuantityWithPriceAndRate": True,
            "QuantityOnHand": False,
        },
        "SalesFormsPrefs": {
            "AllowDeposit": False,
            "AllowDiscount": True,
            "AllowEstimates": True,
            "AllowServiceDate": False,
            "AllowShipping": False,
            "CustomTxnNumbers": True,
            "ETransactionEnabledStatus": "NotApplicable",
            "ETransactionAttachPDF": False,
            "ETransactionPaymentEnabled": False,
            "IPNSupportEnabled": False,
            "UsingPriceLevels": False,
            "UsingProgressInvoicing": False,
        },
        "VendorAndPurchasesPrefs": {"BillableExpenseTracking": False, "TrackingByCustomer": False},
        "TimeTrackingPrefs": {
            "UseServices": False,
            "BillCustomers": False,
            "ShowBillRateToAll": False,
            "WorkWeekStartDate": "Monday",
            "MarkTimeEntriesBillable": False,
        },
        "TaxPrefs": {"UsingSalesTax": False},
        "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": home}},
        "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
        "OtherPrefs": {"NameValue": []},
    }


def preferences_or_default(realm: Realm) -> dict[str, Any]:
    """The stored Preferences, or a fresh company's when none is stored (a read, never a write)."""
    stored = ledger.preferences(realm)
    return dict(stored) if stored is not None else default_preferences()


# -- faults --------------------------------------------------------------------------------------


def one_foreign_currency(detail: str, element: str = "CurrencyRef") -> QBOFault:
    """QuickBooks' answer to a transaction whose party or accounts are in another foreign currency
    than its own: code 6000 "You can only use one foreign currency per transaction." (observed in
    QuickBooks Online; quoted in https://github.com/Expensify/App/issues/53932)."""
    return QBOFault(
        400,
        [
            FaultError(
                "6000",
                "A business validation error has occurred while processing your request",
                f"Business Validation Error: You can only use one foreign currency per "
                f"transaction. {detail}",
                element,
            )
        ],
    )


def rate_missing(code: str) -> QBOFault:
    """A foreign-currency transaction without ExchangeRate: QuickBooks answers 400, code 2410,
    "Curreny, ExchangeRate is missing." (its spelling), "The currency and exchange rate are
    required for transaction in foreign currency." (observed against an Intuit sandbox and quoted
    in a public integration's notes; Intuit's Manage multiple currencies page:
    https://developer.intuit.com/app/developer/qbo/docs/workflows/manage-multiple-currencies)."""
    return QBOFault(
        400,
        [
            FaultError(
                "2410",
                "Curreny, ExchangeRate is missing.",
                "The currency and exchange rate are required for transaction in foreign currency. "
                f"Send ExchangeRate (home currency per 1 {code}); GET /exchangerate?"
                f"sourcecurrencycode={code}&asofdate=YYYY-MM-DD gives the company's rate.",
                "ExchangeRate",
            )
        ],
    )


def multicurrency_off(code: str, home: str, element: str = "CurrencyRef") -> QBOFault:
    # QuickBooks refuses a currency other than home unless multicurrency is on ("Multicurrency ...
    # must be enabled in order to track transactions with currencies other than the company's home
    # currency": Intuit, Manage multiple currencies, URL above). The exact code is not published;
    # 6000, QuickBooks' business validation code, is what clients handle.
    return business_validation(
        f"Multicurrency is not enabled for this company, so everything is in its home currency "
        f"{home}; {code} cannot be used. Turn multicurrency on (Account and Settings > Advanced > "
        "Currency) to record amounts in other currencies.",
        element,
    )


# -- company currencies and rates ------------------------------------------------------------------


def active_currencies(realm: Realm) -> set[str]:
    return {
        str(obj.get("Code"))
        for obj in realm.table("CompanyCurrency").objects.values()
        if obj.get("Active") is not False
    }


def check_currency(realm: Realm, code: str, element: str = "CurrencyRef") -> None:
    """Refuses a currency the company cannot use."""
    home = ledger.home_currency(realm)
    if code == home:
        return
    if not ledger.multicurrency_enabled(realm):
        raise multicurrency_off(code, home, element)
    if code not in active_currencies(realm):
        raise business_validation(
            f"{code} is not one of the company's currencies; add it as a CompanyCurrency first "
            '(POST /companycurrency {"Code": "' + code + '"}).',
            element,
        )


def parse_rate(value: Any, element: str = "ExchangeRate") -> Decimal:
    if isinstance(value, bool) or value in (None, ""):
        raise invalid_value(element, f"{value!r} is not an exchange rate")
    try:
        rate = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise invalid_value(element, f"{value!r} is not an exchange rate") from None
    if not rate.is_finite() or rate <= 0:
        raise invalid_value(element, f"{value!r}: an exchange rate is a positive number")
    exponent = rate.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        rate = rate.quantize(RATE_PLACES)
    return rate


def rate_on(realm: Realm, code: str, day: date) -> dict[str, Any] | None:
    """The company's ExchangeRate for `code` dated on or before `day` (the latest such)."""
    best: dict[str, Any] | None = None
    best_day = date.min
    for obj in realm.table("ExchangeRate").objects.values():
        if obj.get("SourceCurrencyCode") != code:
            continue
        try:
            as_of = date.fromisoformat(str(obj.get("AsOfDate"))[:10])
        except ValueError:
            continue
        if best_day <= as_of <= day:
            best, best_day = obj, as_of
    return best


def find_rate(realm: Realm, code: str, day: date) -> dict[str, Any] | None:
    """The ExchangeRate object stored for exactly (code, day)."""
    for obj in realm.table("ExchangeRate").objects.values():
        if (
            obj.get("SourceCurrencyCode") == code
            and str(obj.get("AsOfDate"))[:10] == day.isoformat()
        ):
            return obj
    return None


def exchange_rate_view(realm: Realm, code: str, day: date) -> dict[str, Any] | None:
    """What GET /exchangerate answers: the rate in force on `day` (1 for the home currency)."""
    home = ledger.home_currency(realm)
    if code == home:
        return {
            "SyncToken": "0",
            "domain": "QBO",
            "AsOfDate": day.isoformat(),
            "SourceCurrencyCode": code,
            "TargetCurrencyCode": home,
            "Rate": Decimal("1"),
            "sparse": False,
        }
    found = rate_on(realm, code, day)
    if found is None:
        return None
    return {k: v for k, v in found.items() if k != "Id"}


__all__ = [
    "CURRENCY_NAMES",
    "active_currencies",
    "check_currency",
    "currency_ref",
    "default_preferences",
    "exchange_rate_view",
    "find_rate",
    "multicurrency_off",
    "one_foreign_currency",
    "parse_rate",
    "preferences_or_default",
    "rate_missing",
    "rate_on",
]
