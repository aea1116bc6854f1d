"""A sandbox company with multicurrency on (home USD) and bills from a supplier billing in euros,
written through QuickBooks' v3 API, for the tests of what every surface says about such a bill.

QuickBooks' EUR rate was 1.08 when the bills were entered (20 days ago) and is 1.10 since
yesterday: a bill's own rate is 1.08, paying it today costs 1.10 dollars a euro.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from qbo_sandbox.app import Sandbox
from sync_harness import admin_http, setup_client

BILL_RATE = Decimal("1.08")
PAY_RATE = Decimal("1.10")
#: Text a renderer must escape (Slack mrkdwn and HTML alike).
VENDOR = 'Lyon <Textiles> & "Fils" SARL'
CUSTOMER = 'Lyon <Cafés> & "Co"'


@dataclass(frozen=True)
class EuroCompany:
    #: The euro bills' QuickBooks ids, in the order of the amounts asked for.
    bill_ids: tuple[str, ...]
    checking: str
    #: The EUR bank account (None when the company has none).
    euro_bank: str | None
    gbp_savings: str


async def euro_company(
    sandbox: Sandbox, today: date, amounts: tuple[Decimal, ...], *, euro_bank: bool = True
) -> EuroCompany:
    """Multicurrency on with EUR and GBP and QuickBooks' EUR rates, a EUR supplier (`VENDOR`), a
    GBP bank account, a EUR one if `euro_bank`, and a bill in euros at 1.08 for each amount, due
    in 5 days."""
    rates = [
        {"SourceCurrencyCode": "EUR", "AsOfDate": day.isoformat(), "Rate": str(rate)}
        for day, rate in (
            (today - timedelta(days=20), BILL_RATE),
            (today - timedelta(days=1), PAY_RATE),
        )
    ]
    # Turned on in QuickBooks' own settings (the API cannot), with its EUR rates.
    async with admin_http(sandbox) as admin:
        response = await admin.post(
            f"/_sandbox/realms/{sandbox.realm_id}/multicurrency",
            json={"currencies": ["EUR", "GBP"], "rates": rates},
        )
        assert response.status_code == 200, response.text
    async with setup_client(sandbox) as client:

        async def write(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            return await client.create(entity, body, request_id=f"setup-{uuid.uuid4().hex[:16]}")

        vendor = await write("Vendor", {"DisplayName": VENDOR, "CurrencyRef": {"value": "EUR"}})
        euro = (
            await write(
                "Account",
                {"Name": "Euro account", "AccountType": "Bank", "CurrencyRef": {"value": "EUR"}},
            )
            if euro_bank
            else None
        )
        savings = await write(
            "Account",
            {"Name": "Sterling Savings", "AccountType": "Bank", "CurrencyRef": {"value": "GBP"}},
        )
        banks = await client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
        checking = next(
            bank for bank in banks if (bank.get("CurrencyRef") or {}).get("value", "USD") == "USD"
        )
        expense = (await client.query("SELECT * FROM Account WHERE AccountType = 'Expense'"))[0]
        bills = [
            await write(
                "Bill",
                {
                    "VendorRef": {"value": vendor["Id"]},
                    "CurrencyRef": {"value": "EUR"},
                    "ExchangeRate": BILL_RATE,
                    "TxnDate": (today - timedelta(days=20)).isoformat(),
                    "DueDate": (today + timedelta(days=5)).isoformat(),
                    "Line": [
                        {
                            "Amount": amount,
                            "DetailType": "AccountBasedExpenseLineDetail",
                            "AccountBasedExpenseLineDetail": {
                                "AccountRef": {"value": expense["Id"]}
                            },
                        }
                    ],
                },
            )
            for amount in amounts
        ]
    return EuroCompany(
        tuple(str(bill["Id"]) for bill in bills),
        str(checking["Id"]),
        None if euro is None else str(euro["Id"]),
        str(savings["Id"]),
    )


async def euro_invoice(sandbox: Sandbox, today: date, amount: Decimal) -> str:
    """An invoice in euros at 1.08 to a EUR customer (`CUSTOMER`), ten days overdue; its id."""
    async with setup_client(sandbox) as client:

        async def write(entity: str, body: dict[str, Any]) -> dict[str, Any]:
            return await client.create(entity, body, request_id=f"setup-{uuid.uuid4().hex[:16]}")

        customer = await write(
            "Customer", {"DisplayName": CUSTOMER, "CurrencyRef": {"value": "EUR"}}
        )
        income = (await client.query("SELECT * FROM Account WHERE AccountType = 'Income'"))[0]
        invoice = await write(
            "Invoice",
            {
                "CustomerRef": {"value": customer["Id"]},
                "CurrencyRef": {"value": "EUR"},
                "ExchangeRate": BILL_RATE,
                "TxnDate": (today - timedelta(days=40)).isoformat(),
                "DueDate": (today - timedelta(days=10)).isoformat(),
                "Line": [
                    {
                        "Amount": amount,
                        "DetailType": "SalesItemLineDetail",
                        "SalesItemLineDetail": {"ItemAccountRef": {"value": income["Id"]}},
                    }
                ],
            },
        )
    return str(invoice["Id"])
