"""The sandbox's company can be in another country: CompanyInfo says so as QuickBooks does (its
`Country` and the country of each of its addresses) and keeps its books in that country's
currency, for the seeded company and for a company added through the admin API."""

from __future__ import annotations

from typing import Any

import httpx

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig

ADDRESSES = ("CompanyAddr", "LegalAddr", "CustomerCommunicationAddr")


async def company_info(client: httpx.AsyncClient, realm_id: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = await client.get(f"/v3/company/{realm_id}/companyinfo/{realm_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["CompanyInfo"]


async def test_the_seeded_company_is_in_the_country_it_is_given() -> None:
    sandbox = create_app(SandboxConfig(seed=DEFAULT_SEED, country="GB"))
    async with sandbox.http_client() as client:
        info = await company_info(client, sandbox.realm_id)
    await sandbox.aclose()
    assert info["Country"] == "GB"
    assert {info[address]["Country"] for address in ADDRESSES} == {"GB"}
    # Its books are in pounds, as a UK company's are.
    realm = sandbox.realm()
    assert realm.get("Preferences", "1")["CurrencyPrefs"]["HomeCurrency"]["value"] == "GBP"  # type: ignore[index]
    assert {bill["CurrencyRef"]["value"] for bill in realm.iter("Bill")} == {"GBP"}
    # Reseeding keeps it there.
    assert sandbox.reset_realm(sandbox.realm_id)["seed"] == DEFAULT_SEED
    assert sandbox.realm().get("CompanyInfo", "1")["Country"] == "GB"  # type: ignore[index]


async def test_a_company_added_through_the_admin_api_takes_its_country(
    sandbox: Sandbox, qbo_http: httpx.AsyncClient
) -> None:
    assert (await company_info(qbo_http, sandbox.realm_id))["Country"] == "US"
    created = await qbo_http.post("/_sandbox/realms", json={"seed": 41, "country": "de"})
    assert created.status_code == 201, created.text
    body = created.json()
    info = await company_info(qbo_http, body["realm_id"], body["access_token"])
    assert info["Country"] == "DE" and info["CompanyAddr"]["Country"] == "DE"

    refused = await qbo_http.post("/_sandbox/realms", json={"seed": 42, "country": "Deutschland!"})
    assert refused.status_code == 400
    assert "ISO 3166" in refused.text
    scaled = await qbo_http.post("/_sandbox/realms", json={"seed": 42, "scale": 5, "country": "GB"})
    assert scaled.status_code == 400 and "scaled company is a US one" in scaled.text
    nowhere = await qbo_http.post("/_sandbox/realms", json={"seed": 42, "country": "ZZ"})
    assert nowhere.status_code == 400
    assert "no currency is known for country 'ZZ'" in nowhere.text
