"""The sandbox over real HTTP: the threaded server, faults as a network client sees them, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from qbo_sandbox.chaos import FaultPlan, FaultRule
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.server import RunningSandbox, start_in_thread

pytestmark = pytest.mark.http

REPO = Path(__file__).resolve().parents[2]


def _client(running: RunningSandbox, **kwargs: object) -> httpx.Client:
    return httpx.Client(
        base_url=running.base_url,
        headers={"Authorization": f"Bearer {running.sandbox.access_token}", "Accept": "application/json"},
        **kwargs,  # type: ignore[arg-type]
    )


def test_live_sandbox_serves_oauth_and_the_v3_api(live_sandbox: RunningSandbox):
    sandbox = live_sandbox.sandbox
    assert live_sandbox.base_url.startswith("http://127.0.0.1:")
    with _client(live_sandbox) as http:
        discovery = http.get("/.well-known/openid_configuration").json()
        assert discovery["token_endpoint"] == f"{live_sandbox.base_url}/oauth2/v1/tokens/bearer"

        info = http.get(f"/v3/company/{sandbox.realm_id}/companyinfo/{sandbox.realm_id}")
        assert info.status_code == 200
        assert info.headers["intuit_tid"]
        assert info.json()["CompanyInfo"]["Id"] == "1"

        refreshed = http.post(
            "/oauth2/v1/tokens/bearer",
            data={"grant_type": "refresh_token", "refresh_token": sandbox.refresh_token},
            auth=(sandbox.client_id, sandbox.client_secret),
        )
        assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != sandbox.refresh_token


def test_dropped_connection_after_commit_over_http_leaves_one_object():
    plan = FaultPlan(by_kind={"write": FaultRule(rate_lost=1.0)}, lost_weights={"dropped": 1})
    with start_in_thread(SandboxConfig(scale=5, faults=plan)) as running, _client(running) as http:
        realm = running.sandbox.realm_id
        name = "Dropped Connection Coffee Co"
        # Over a socket the server sends headers and half the body, then closes the connection.
        with pytest.raises(httpx.RemoteProtocolError):
            http.post(f"/v3/company/{realm}/vendor", params={"requestid": "drop-1"}, json={"DisplayName": name})
        count = http.get(
            f"/v3/company/{realm}/query", params={"query": f"select count(*) from Vendor where DisplayName = '{name}'"}
        )
        assert count.json()["QueryResponse"]["totalCount"] == 1
        # The server keeps serving on new connections.
        assert http.get(f"/v3/company/{realm}/companyinfo/{realm}").status_code == 200


def test_hang_over_http_times_the_client_out_and_releases_the_request():
    plan = FaultPlan(by_kind={"read": FaultRule(rate_hang=1.0)}, hang_seconds=60)
    with start_in_thread(SandboxConfig(scale=5, faults=plan)) as running:
        realm = running.sandbox.realm_id
        with _client(running, timeout=0.3) as http:
            started = time.perf_counter()
            with pytest.raises(httpx.ReadTimeout):
                http.get(f"/v3/company/{realm}/companyinfo/{realm}")
            assert time.perf_counter() - started < 2
        # The server notices the client left and frees its in-flight slot.
        deadline = time.monotonic() + 3
        while running.sandbox.stats()["in_flight"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert running.sandbox.stats()["in_flight"] == {}
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 5


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(timeout)
    if not lines:
        raise AssertionError(f"`oodaloo sandbox --json` printed nothing within {timeout}s")
    return lines[0]


def test_cli_json_line_over_a_real_subprocess():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "qbo_sandbox.cli", "--json", "--port", "0", "--seed", "7", "--scale", "5"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        details = json.loads(_first_line(process, timeout=30))
        for key in ("base_url", "realm_id", "client_id", "client_secret", "access_token", "refresh_token"):
            assert details[key], key
        realm = details["realm_id"]
        response = httpx.get(
            f"{details['base_url']}/v3/company/{realm}/companyinfo/{realm}",
            headers={"Authorization": f"Bearer {details['access_token']}", "Accept": "application/json"},
        )
        assert response.status_code == 200
        assert response.json()["CompanyInfo"]["CompanyName"]
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
    assert returncode == 0  # SIGTERM is the ordinary way to stop it
    assert process.stdout is not None and process.stdout.read() == ""  # nothing but the one JSON line
