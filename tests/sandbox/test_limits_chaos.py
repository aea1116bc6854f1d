"""Rate limits and injected faults of the QBO sandbox, with limits scaled down so they are reached at once."""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from qbo_sandbox.app import Sandbox, create_app
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency, ResponseLost
from qbo_sandbox.config import LimitConfig, SandboxConfig

NS = {"qbo": "http://schema.intuit.com/finance/v3"}


@pytest.fixture(scope="module")
def shared() -> Sandbox:
    # A small scaled company seeds fast; these tests are about QBO's gateway, not the books.
    return create_app(SandboxConfig(scale=5))


@pytest.fixture
def sandbox(shared: Sandbox) -> Sandbox:
    """The module's sandbox with QBO's default limits, no faults, empty windows and zeroed counters."""
    shared.limits.config = LimitConfig()
    shared.chaos.plan = FaultPlan()
    for realm_id in shared.store.realm_ids():
        shared.limits.reset_realm(realm_id)
    shared.reset_stats()
    return shared


@pytest.fixture
def configure(sandbox: Sandbox) -> Callable[..., Sandbox]:
    def apply(*, limits: LimitConfig | None = None, faults: FaultPlan | None = None) -> Sandbox:
        if limits is not None:
            sandbox.limits.config = limits
        if faults is not None:
            sandbox.chaos.plan = faults
        return sandbox

    return apply


async def _read(http: httpx.AsyncClient, sandbox: Sandbox) -> httpx.Response:
    return await http.get(sandbox.v3_path(f"companyinfo/{sandbox.realm_id}"))


async def _batch(http: httpx.AsyncClient, sandbox: Sandbox) -> httpx.Response:
    body = {"BatchItemRequest": [{"bId": "1", "Query": "select * from Vendor maxresults 1"}]}
    return await http.post(sandbox.v3_path("batch"), json=body)


def _assert_throttle_fault(response: httpx.Response) -> int:
    assert response.status_code == 429
    root = ET.fromstring(response.content)
    error = root.find("qbo:Fault/qbo:Error", NS)
    assert root.find("qbo:Fault", NS).get("type") == "SERVICE"
    assert error is not None and error.get("code") == "3001"
    assert error.findtext("qbo:Message", namespaces=NS) == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert root.get("time")
    assert response.headers["intuit_tid"]
    return int(response.headers["Retry-After"])


async def test_requests_over_the_per_minute_limit_get_qbo_throttle_xml_and_retry_after(configure):
    sandbox = configure(limits=LimitConfig(requests_per_minute=5))
    async with sandbox.http_client() as http:
        assert [(await _read(http, sandbox)).status_code for _ in range(5)] == [200] * 5
        retry_after = _assert_throttle_fault(await _read(http, sandbox))
        assert 1 <= retry_after <= 60
        assert sandbox.stats()["throttled"][sandbox.realm_id] == {"rate": 1}

        # Another company has its own budget.
        other = sandbox.add_realm(seed=99, scale=1)
        other_read = await http.get(
            f"/v3/company/{other.realm_id}/companyinfo/{other.realm_id}",
            headers={"Authorization": f"Bearer {other.access_token}"},
        )
        assert other_read.status_code == 200

        sandbox.advance_clock(timedelta(seconds=61))
        assert (await _read(http, sandbox)).status_code == 200


async def test_unauthenticated_requests_do_not_use_up_the_limit(configure):
    sandbox = configure(limits=LimitConfig(requests_per_minute=2))
    async with sandbox.http_client(access_token="nope") as stranger, sandbox.http_client() as http:
        assert [(await _read(stranger, sandbox)).status_code for _ in range(5)] == [401] * 5
        assert [(await _read(http, sandbox)).status_code for _ in range(2)] == [200, 200]


async def test_batch_requests_have_their_own_lower_limit(configure):
    sandbox = configure(limits=LimitConfig(batch_per_minute=2))
    async with sandbox.http_client() as http:
        assert [(await _batch(http, sandbox)).status_code for _ in range(2)] == [200, 200]
        _assert_throttle_fault(await _batch(http, sandbox))
        assert (await _read(http, sandbox)).status_code == 200  # plain requests still pass
    assert sandbox.stats()["throttled"][sandbox.realm_id] == {"batch": 1}


async def test_more_than_max_concurrent_requests_in_flight_are_throttled(configure):
    slow_reads = FaultPlan(by_kind={"read": FaultRule(latency=Latency(fixed_ms=100))})
    sandbox = configure(limits=LimitConfig(max_concurrent=2), faults=slow_reads)
    async with sandbox.http_client() as http:
        responses = await asyncio.gather(*(_read(http, sandbox) for _ in range(5)))
        statuses = Counter(r.status_code for r in responses)
        assert statuses == {200: 2, 429: 3}
        assert all(r.headers["Retry-After"] == "1" for r in responses if r.status_code == 429)
        assert sandbox.stats()["throttled"][sandbox.realm_id] == {"concurrency": 3}
        # Once the slow ones finished, there is room again.
        assert (await _read(http, sandbox)).status_code == 200
    assert sandbox.stats()["in_flight"] == {}


async def test_limits_can_be_changed_at_runtime_through_the_admin_api(configure):
    sandbox = configure()
    async with sandbox.http_client() as http:
        changed = await http.put("/_sandbox/limits", json={"requests_per_minute": 1})
        assert changed.status_code == 200 and changed.json()["requests_per_minute"] == 1
        assert (await _read(http, sandbox)).status_code == 200
        assert (await _read(http, sandbox)).status_code == 429
        refused = await http.put("/_sandbox/limits", json={"requests_per_hour": 3})
        assert refused.status_code == 400
        assert "requests_per_hour" in refused.json()["detail"]


# -- injected faults --------------------------------------------------------------------------


MIXED = {
    "default": FaultRule(rate_429=0.1, rate_5xx=0.2, rate_lost=0.2, latency=Latency(min_ms=0, max_ms=1)),
}


async def _outcomes(sandbox: Sandbox, seed: int, count: int = 80) -> list[str]:
    sandbox.chaos.plan = FaultPlan(seed=seed, **MIXED)  # a new plan restarts the request sequence
    outcomes = []
    async with sandbox.http_client() as http:
        for _ in range(count):
            try:
                response = await _read(http, sandbox)
            except ResponseLost:
                outcomes.append("dropped")
            else:
                outcomes.append(str(response.status_code))
    return outcomes


async def test_faults_are_reproducible_from_the_seed(sandbox):
    first = await _outcomes(sandbox, seed=11)
    again = await _outcomes(sandbox, seed=11)
    other = await _outcomes(sandbox, seed=12)
    assert first == again
    assert first != other
    assert set(first) == {"200", "429", "500", "503", "502", "504", "dropped"}
    # Every injected fault is counted, by kind.
    injected = sandbox.stats()["faults"]["injected"]
    seen = Counter(first + again + other)
    assert injected["429"] == seen["429"] and injected["503"] == seen["503"]
    assert injected["lost_dropped"] == seen["dropped"] and injected["lost_504"] == seen["504"]


@pytest.mark.parametrize(
    ("weights", "status", "content_type", "marker"),
    [
        ({"503": 1}, 503, "text/html", "503 Service Temporarily Unavailable"),
        ({"500": 1}, 500, "application/json", "InternalServerError"),
    ],
)
async def test_injected_5xx_look_like_qbo(configure, weights, status, content_type, marker):
    sandbox = configure(faults=FaultPlan(default=FaultRule(rate_5xx=1.0), error_weights=weights))
    async with sandbox.http_client() as http:
        response = await _read(http, sandbox)
    assert response.status_code == status
    assert response.headers["content-type"].startswith(content_type)
    assert marker in response.text
    assert response.headers["intuit_tid"]
    if status == 500:
        error = response.json()["Fault"]["Error"][0]
        assert error["code"] == "3100" and response.json()["Fault"]["type"] == "SERVICE"
    assert sandbox.stats()["faults"]["injected"][str(status)] == 1


async def test_injected_429_is_the_throttle_fault(configure):
    sandbox = configure(faults=FaultPlan(by_kind={"query": FaultRule(rate_429=1.0)}, retry_after_seconds=3))
    async with sandbox.http_client() as http:
        response = await http.get(sandbox.v3_path("query"), params={"query": "select count(*) from Bill"})
        assert _assert_throttle_fault(response) == 3
        assert (await _read(http, sandbox)).status_code == 200  # reads are not in the rule
    assert sandbox.stats()["faults"]["injected_by_operation"] == {"query": {"429": 1}}


async def test_latency_delays_the_answer(configure):
    sandbox = configure(faults=FaultPlan(default=FaultRule(latency=Latency(fixed_ms=60))))
    async with sandbox.http_client() as http:
        started = time.perf_counter()
        assert (await _read(http, sandbox)).status_code == 200
        assert time.perf_counter() - started >= 0.06


async def test_hang_answers_504_only_after_the_gateway_timeout(configure):
    sandbox = configure(faults=FaultPlan(default=FaultRule(rate_hang=1.0), hang_seconds=0.05))
    async with sandbox.http_client() as http:
        started = time.perf_counter()
        response = await _read(http, sandbox)
    assert response.status_code == 504
    assert time.perf_counter() - started >= 0.05


async def test_hang_ends_when_the_client_gives_up(configure):
    sandbox = configure(faults=FaultPlan(default=FaultRule(rate_hang=1.0), hang_seconds=60))
    async with sandbox.http_client() as http:
        started = time.perf_counter()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await _read(http, sandbox)
        assert time.perf_counter() - started < 1
    stats = sandbox.stats()
    assert stats["faults"]["injected"]["hang"] == 1
    assert stats["in_flight"] == {}  # the abandoned request released its slot


async def test_path_rules_target_one_endpoint(configure):
    plan = FaultPlan.from_dict(
        {"by_path": [{"pattern": "companyinfo/*", "method": "GET", "rule": {"rate_5xx": 1.0}}], "seed": 5}
    )
    sandbox = configure(faults=plan)
    async with sandbox.http_client() as http:
        assert (await _read(http, sandbox)).status_code in (500, 503)
        query = await http.get(sandbox.v3_path("query"), params={"query": "select count(*) from Vendor"})
        assert query.status_code == 200


async def _vendor_count(http: httpx.AsyncClient, sandbox: Sandbox, name: str) -> int:
    statement = f"select count(*) from Vendor where DisplayName = '{name}'"
    response = await http.get(sandbox.v3_path("query"), params={"query": statement})
    assert response.status_code == 200
    return int(response.json()["QueryResponse"]["totalCount"])


@pytest.mark.parametrize("how", ["dropped", "502", "504"])
async def test_lost_response_leaves_exactly_one_object_and_requestid_retry_finds_it(configure, how):
    plan = FaultPlan(by_kind={"write": FaultRule(rate_lost=1.0)}, lost_weights={how: 1})
    sandbox = configure(faults=plan)
    name = f"Lost Response Supply {how}"
    async with sandbox.http_client() as http:
        post = http.post(sandbox.v3_path("vendor"), params={"requestid": f"lost-{how}"}, json={"DisplayName": name})
        if how == "dropped":
            with pytest.raises(httpx.RemoteProtocolError):
                await post
        else:
            assert (await post).status_code == int(how)
        # The write was applied although the client never heard so.
        assert await _vendor_count(http, sandbox, name) == 1

        # The network is healthy again; the client retries with the same requestid.
        assert (await http.put("/_sandbox/faults", json={})).status_code == 200
        retry = await http.post(sandbox.v3_path("vendor"), params={"requestid": f"lost-{how}"}, json={"DisplayName": name})
        assert retry.status_code == 200
        assert retry.json()["Vendor"]["DisplayName"] == name
        assert await _vendor_count(http, sandbox, name) == 1
    assert sandbox.stats()["faults"]["injected"][f"lost_{how}"] == 1


async def test_fault_plan_round_trips_through_the_admin_api(configure):
    sandbox = configure()
    plan = {
        "seed": 3,
        "default": {"rate_5xx": 0.1},
        "by_kind": {"write": {"rate_lost": 0.5, "latency": {"min_ms": 1, "max_ms": 5}}},
        "by_path": [{"pattern": "billpayment", "method": "POST", "rule": {"rate_hang": 0.2}}],
        "hang_seconds": 2,
    }
    async with sandbox.http_client() as http:
        put = await http.put("/_sandbox/faults", json=plan)
        assert put.status_code == 200
        got = (await http.get("/_sandbox/faults")).json()
        assert got["seed"] == 3 and got["effective_seed"] == 3
        assert got["by_kind"]["write"]["rate_lost"] == 0.5
        assert got["by_kind"]["write"]["latency"] == {"min_ms": 1, "max_ms": 5}
        assert got["by_path"][0]["pattern"] == "billpayment"
        assert sandbox.chaos.plan.rule_for("write", "POST", "billpayment").rate_hang == 0.2

        bad = await http.put("/_sandbox/faults", json={"default": {"rate_5xx": 0.8, "rate_429": 0.5}})
        assert bad.status_code == 400
        assert "at most 1" in bad.json()["detail"]
        unknown = await http.put("/_sandbox/faults", json={"by_kind": {"delete": {"rate_5xx": 1}}})
        assert unknown.status_code == 400
