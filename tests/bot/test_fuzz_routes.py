"""Hostile requests to every public route never crash Oodaloo and never act for someone they
shouldn't (hypothesis, over HTTP to the app served by uvicorn, on SQLite and PostgreSQL).

The requests, and the rules each answer is held to, are `route_fuzz`'s: signed and unsigned Slack
commands, button clicks, settings-modal submissions and events; signed requests from a member who
is not an approver; QuickBooks webhooks in both formats, signed and not; the email digest's links,
genuine with hostile contents and forged; the digest's signed chart URL, genuine, with hostile
contents and forged; the QuickBooks connect link and OAuth callback; Slack's
install and OAuth redirect; `/healthz`. A case fails on an HTTP 500, on anything logged at ERROR by
the request or the work after it, and on anything acted on without a valid signature and an
entitled person.

Cases per route and database: `route_fuzz.CASES` (2,000 on each database, 4,000 in all). `bench/fuzz_routes.py`
runs the same fuzzer with ten times as many and prints the counts.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from db_conftest import MigratedDatabase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from route_fuzz import CASES, EMAIL_APPROVER, RouteFuzzer, SlackInstallFuzzer, slack_install_fuzzer

from bot.local import local_stack


def fuzz(route: str) -> Any:
    return settings(
        max_examples=CASES[route],
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
async def fuzzer(migrated: MigratedDatabase) -> AsyncIterator[RouteFuzzer]:
    async with local_stack(
        migrated.url,
        email_recipients=[EMAIL_APPROVER],
        settings={"operator_token": secrets.token_urlsafe(24)},
    ) as stack:
        built = await RouteFuzzer.prepare(stack)
        try:
            yield built
        finally:
            await built.aclose()


@pytest.fixture
async def installer(migrated: MigratedDatabase) -> AsyncIterator[SlackInstallFuzzer]:
    """A multi-workspace `oodaloo serve` (Slack's OAuth install) against the local Slack."""
    async with slack_install_fuzzer(migrated.url) as built:
        yield built


async def check(fuzzer: RouteFuzzer | SlackInstallFuzzer, route: str, data: st.DataObject) -> None:
    verdict = await fuzzer.send(fuzzer.draw(route, data))
    assert not verdict.problems(), (route, verdict)


@fuzz("slack_click")
@given(data=st.data())
async def test_slack_clicks(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_click", data)


@fuzz("slack_command")
@given(data=st.data())
async def test_slack_commands(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_command", data)


@fuzz("slack_view_submission")
@given(data=st.data())
async def test_slack_view_submissions(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_view_submission", data)


@fuzz("slack_event")
@given(data=st.data())
async def test_slack_events(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_event", data)


@fuzz("slack_not_entitled")
@given(data=st.data())
async def test_slack_requests_from_members_who_are_not_approvers(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_not_entitled", data)


@fuzz("slack_unsigned")
@given(data=st.data())
async def test_slack_requests_without_a_valid_signature(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "slack_unsigned", data)


@fuzz("qbo_webhook_legacy")
@given(data=st.data())
async def test_quickbooks_webhooks_legacy_format(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "qbo_webhook_legacy", data)


@fuzz("qbo_webhook_cloudevents")
@given(data=st.data())
async def test_quickbooks_webhooks_cloudevents(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "qbo_webhook_cloudevents", data)


@fuzz("qbo_webhook_unsigned")
@given(data=st.data())
async def test_quickbooks_webhooks_without_a_valid_signature(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "qbo_webhook_unsigned", data)


@fuzz("email_link_signed")
@given(data=st.data())
async def test_genuine_email_links_with_hostile_contents(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "email_link_signed", data)


@fuzz("email_link_forged")
@given(data=st.data())
async def test_forged_and_mangled_email_links(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "email_link_forged", data)


@fuzz("chart_link_signed")
@given(data=st.data())
async def test_signed_chart_links_with_hostile_contents(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "chart_link_signed", data)


@fuzz("chart_link_forged")
@given(data=st.data())
async def test_forged_and_mangled_chart_links(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "chart_link_forged", data)


@fuzz("qbo_connect")
@given(data=st.data())
async def test_quickbooks_connect_links(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "qbo_connect", data)


@fuzz("qbo_callback")
@given(data=st.data())
async def test_quickbooks_oauth_callbacks(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "qbo_callback", data)


@fuzz("healthz")
@given(data=st.data())
async def test_healthz(fuzzer: RouteFuzzer, data: st.DataObject) -> None:
    await check(fuzzer, "healthz", data)


@fuzz("slack_install")
@given(data=st.data())
async def test_slack_install_page(installer: SlackInstallFuzzer, data: st.DataObject) -> None:
    await check(installer, "slack_install", data)


@fuzz("slack_oauth_redirect")
@given(data=st.data())
async def test_slack_oauth_redirects(installer: SlackInstallFuzzer, data: st.DataObject) -> None:
    await check(installer, "slack_oauth_redirect", data)
