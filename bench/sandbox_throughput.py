"""Prints the QBO sandbox's read throughput and QBORawClient's overhead per call.

    .venv/bin/python bench/sandbox_throughput.py [--requests 3000] [--concurrency 10]

Throughput: requests/s for reading a bill by id and for a 100-row query page, in-process (httpx's
ASGITransport) and over loopback HTTP (uvicorn). Overhead: the same bill read through QBORawClient and
through plain httpx on the same endpoint and transport, alternating in rounds so machine noise hits both
alike; printed as time per call and as a ratio. No figure is asserted: this machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from qbo_sandbox.app import create_app
from qbo_sandbox.config import SandboxConfig
from qbo_sandbox.limits import LimitConfig
from sync.qbo import QBORawClient, StaticTokenProvider

# Limits out of the way: this measures the sandbox, not QBO's throttle.
UNLIMITED = LimitConfig(requests_per_minute=10**9, max_concurrent=10**6, batch_per_minute=10**9)


async def _throughput(call: Callable[[int], Awaitable[None]], total: int, concurrency: int) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for i in queue:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total / (time.perf_counter() - started)


async def _per_call_seconds(call: Callable[[int], Awaitable[None]], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        await call(i)
    return (time.perf_counter() - started) / n


async def measure(label: str, base_url: str, transport: httpx.AsyncBaseTransport, realm: str,
                  token: str, bill_ids: list[str], total: int, concurrency: int) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers) as http, \
            QBORawClient("bench", realm, base_url=base_url, tokens=StaticTokenProvider(token),
                         transport=transport) as client:
        read_path = f"/v3/company/{realm}/bill/{{}}?minorversion=75"
        query_path = f"/v3/company/{realm}/query"

        async def plain_read(i: int) -> None:
            response = await http.get(read_path.format(bill_ids[i % len(bill_ids)]))
            response.raise_for_status()

        async def plain_query(i: int) -> None:
            response = await http.get(query_path, params={
                "query": f"SELECT * FROM Bill STARTPOSITION {1 + (i % 20) * 100} MAXRESULTS 100",
                "minorversion": "75"})
            response.raise_for_status()

        async def client_read(i: int) -> None:
            await client.get("Bill", bill_ids[i % len(bill_ids)])

        await _throughput(plain_read, 200, concurrency)  # warm-up
        reads = await _throughput(plain_read, total, concurrency)
        queries = await _throughput(plain_query, max(total // 5, 100), concurrency)
        print(f"{label:<12} read by id: {reads:8.0f} req/s   query page of 100: {queries:7.0f} req/s"
              f"   (concurrency {concurrency})")

        rounds, per_round = 10, max(total // 20, 50)
        plain_times, client_times = [], []
        for _ in range(rounds):
            plain_times.append(await _per_call_seconds(plain_read, per_round))
            client_times.append(await _per_call_seconds(client_read, per_round))
        plain_us = statistics.median(plain_times) * 1e6
        client_us = statistics.median(client_times) * 1e6
        print(f"{label:<12} bill read, one at a time: plain httpx {plain_us:7.0f} µs/call,"
              f" QBORawClient {client_us:7.0f} µs/call, ratio {client_us / plain_us:4.2f}x"
              f" (+{client_us - plain_us:.0f} µs)")


async def main_async(total: int, concurrency: int, live: dict[str, str]) -> None:
    config = SandboxConfig(limits=UNLIMITED)
    sandbox = create_app(config)
    realm = sandbox.store.realm(sandbox.realm_id)
    bill_ids = [b["Id"] for b in realm.iter("Bill")]
    print(f"Sandbox company: {realm.count('Bill')} bills, {realm.count('Invoice')} invoices\n")
    await measure("in-process", "http://sandbox", httpx.ASGITransport(app=sandbox.app), sandbox.realm_id,
                  sandbox.access_token, bill_ids, total, concurrency)

    async with httpx.AsyncClient(base_url=live["base_url"]) as admin:
        (await admin.put("/_sandbox/limits", json=UNLIMITED.to_dict())).raise_for_status()
    live_bills = [b["Id"] for b in realm.iter("Bill")]  # same seed, same company
    await measure("over HTTP", live["base_url"], httpx.AsyncHTTPTransport(), live["realm_id"],
                  live["access_token"], live_bills, total, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    # Over HTTP the sandbox runs in its own process, as `oodaloo sandbox` does, so it does not share
    # this process's interpreter lock with the client being measured.
    server = subprocess.Popen([sys.executable, "-m", "bot.cli", "sandbox", "--json", "--port", "0"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        live = json.loads(server.stdout.readline())
        asyncio.run(main_async(args.requests, args.concurrency, live))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
