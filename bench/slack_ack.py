"""How fast Oodaloo answers Slack, with QuickBooks slow: ack latency and click-to-updated-message.

    .venv/bin/python bench/slack_ack.py [--requests 1000] [--latency-ms 500] [--pays 10]

Slack gives an app 3 seconds to acknowledge a click or a slash command; Oodaloo's target is well
under 100 ms whatever QuickBooks is doing. The bench runs the production path on one machine
(`bot.local`): the bot served by uvicorn over loopback HTTP, real signed requests from the local
Slack's user agent, the bot's answers through the local Slack's Web API, and the QBO sandbox
answering every call after `--latency-ms` (500 ms by default, a slow day at QuickBooks).

It prints p50 / p99 / max of the HTTP round trip (request sent -> ack received) over `--requests`
button clicks ("and N more" under the digest: the work after the ack builds the overdue-invoice
list from the mirror and answers through response_url) and as many `/runway` commands (the work
builds the summary the same way), then the time from a Pay click to the message showing "Paid" over `--pays` bills
(each pay reads the bill from QuickBooks and creates the payment: at least two slow calls).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from bot.local import BUSINESS_ID, CHANNEL, OWNER, LocalStack, local_stack
from bot.slack import blocks as kit
from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency
from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
from slack_sandbox.config import SlackSandboxConfig
from sync.infrastructure import SyncSettings


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   max {ordered[-1] * 1000:7.1f} ms   (n={len(ordered)})"


async def run(requests: int, latency_ms: int, pays: int, concurrency: int) -> None:
    faults = FaultPlan(default=FaultRule(latency=Latency(fixed_ms=latency_ms)))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        print(f"Setting up: seeded company, mirror sync through a sandbox answering in {latency_ms} ms…", flush=True)
        async with local_stack(
            url,
            sandbox_config=SandboxConfig(seed=DEFAULT_SEED, faults=faults),
            # The local Slack's per-channel pace is on: the bot must keep to it.
            slack_config=SlackSandboxConfig(),
            migrate=True,
            sync_settings=SyncSettings(),  # production waits and timeouts: QuickBooks is slow, not broken
        ) as stack:
            await stack.oodaloo.directory.update(
                BUSINESS_ID, approval_threshold=Decimal("1000000")
            )
            digest = await stack.post_digest()
            ctx = await stack.oodaloo.digest(BUSINESS_ID)
            bills = [bill.bill_id for bill in ctx.view.bills_due.items]

            gate = asyncio.Semaphore(concurrency)

            async def timed(make: object) -> float:
                async with gate:
                    started = time.perf_counter()
                    delivery = await make()  # type: ignore[operator]
                    elapsed = time.perf_counter() - started
                    assert delivery.status == 200, delivery.text
                    return elapsed

            current = stack.message(digest.ts)
            print(f"Clicking 'and N more' {requests} times ({concurrency} at a time)…", flush=True)
            clicks = await asyncio.gather(*(
                timed(lambda: stack.agent.click(OWNER, current, kit.SHOW_MORE_INVOICES))
                for _ in range(requests)
            ))
            await stack.bot.idle()
            print(f"Sending /runway {requests} times…", flush=True)
            commands = await asyncio.gather(*(
                timed(lambda: stack.agent.slash_command(OWNER, CHANNEL, "/runway", ""))
                for _ in range(requests)
            ))
            await stack.bot.idle()

            print(f"Paying {pays} bills and timing click -> 'Paid' in the message…", flush=True)
            to_pay: list[float] = []
            for bill_id in bills[:pays]:
                if _has(stack, digest.ts, bill_id, kit.BILL_APPROVE):
                    approved = await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_APPROVE, block_id=f"bill_actions:{bill_id}")
                    assert approved.status == 200
                await stack.until(lambda b=bill_id: _has(stack, digest.ts, b, kit.BILL_PAY), timeout=60)
                started = time.perf_counter()
                await stack.agent.click(OWNER, stack.message(digest.ts), kit.BILL_PAY, block_id=f"bill_actions:{bill_id}")
                try:
                    await stack.until(lambda b=bill_id: (s := _sync_status(stack, digest.ts, b)) and "Paid" in s, timeout=60)
                except TimeoutError:
                    raise SystemExit(f"bill {bill_id} was not paid: its line says {_sync_status(stack, digest.ts, bill_id)!r}; "
                                     f"told: {[e.text for e in stack.ephemerals(OWNER)][-3:]}") from None
                to_pay.append(time.perf_counter() - started)
            await stack.bot.idle()

    print()
    print(f"Ack latency, QuickBooks answering in {latency_ms} ms (loopback HTTP, 2-core shared machine):")
    print(f"  button clicks    {_percentiles(clicks)}")
    print(f"  /runway commands {_percentiles(commands)}")
    print(f"Click on Pay -> message shows Paid: {_percentiles(to_pay)}")


def _has(stack: LocalStack, ts: str, bill_id: str, action_id: str) -> bool:
    return any(
        block.get("block_id") == f"bill_actions:{bill_id}" and element.get("action_id") == action_id
        for block in stack.message(ts).blocks
        for element in block.get("elements", [])
    )


def _sync_status(stack: LocalStack, ts: str, bill_id: str) -> str | None:
    for block in stack.message(ts).blocks:
        if block.get("block_id") == f"bill_status:{bill_id}":
            return " ".join(str(e.get("text", "")) for e in block.get("elements", []))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--latency-ms", type=int, default=500)
    parser.add_argument("--pays", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.latency_ms, args.pays, args.concurrency))


if __name__ == "__main__":
    main()
