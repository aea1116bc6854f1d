"""`oodaloo demo`: Oodaloo on embedded defaults, against the local QuickBooks sandbox.

It starts the sandbox with the seeded demo company on a loopback port and reads the company's books
through QBORawClient, exactly as Oodaloo reads a real company: cash in the bank, bills due this week,
invoices overdue, each stated with when it was read.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from bot.format import money, plain
from sync.qbo import QBORawClient, StaticTokenProvider


@dataclass(frozen=True)
class LiveRead:
    company: str
    read_at: datetime
    tz: ZoneInfo
    banks: list[tuple[str, Decimal]]
    bills_due: list[dict[str, Any]]
    overdue: list[dict[str, Any]]


async def read_books(base_url: str, realm_id: str, access_token: str) -> LiveRead:
    async with QBORawClient(
        "demo", realm_id, base_url=base_url, tokens=StaticTokenProvider(access_token)
    ) as client:
        info = await client.get_company_info_from_qbo()
        tz = ZoneInfo(info.get("DefaultTimeZone") or "America/Los_Angeles")
        today = datetime.now(tz).date()
        week_end = today + timedelta(days=7)
        accounts = await client.query("SELECT * FROM Account WHERE AccountType = 'Bank'")
        bills = await client.query(
            f"SELECT * FROM Bill WHERE Balance > '0' AND DueDate <= '{week_end.isoformat()}' ORDERBY DueDate"
        )
        invoices = await client.query(
            f"SELECT * FROM Invoice WHERE Balance > '0' AND DueDate < '{today.isoformat()}' ORDERBY DueDate"
        )
    return LiveRead(
        company=str(info.get("CompanyName", "")),
        read_at=datetime.now(UTC),
        tz=tz,
        banks=[(str(a["Name"]), Decimal(a.get("CurrentBalance", 0))) for a in accounts],
        bills_due=[b for b in bills if date.fromisoformat(b["DueDate"]) >= today],
        overdue=invoices,
    )


def render(read: LiveRead) -> str:
    as_of = read.read_at.astimezone(read.tz).strftime("%a %d %b %Y %H:%M %Z")
    today = read.read_at.astimezone(read.tz).date()
    lines = [f"{plain(read.company)} — QuickBooks data as of {as_of}", ""]
    cash = sum((balance for _, balance in read.banks), Decimal("0"))
    lines.append(f"Cash on hand: {money(cash)}")
    lines += [f"  {plain(name)}: {money(balance)}" for name, balance in read.banks]
    due_total = sum((Decimal(b["Balance"]) for b in read.bills_due), Decimal("0"))
    lines += ["", f"Bills due in the next 7 days: {len(read.bills_due)} ({money(due_total)})"]
    for bill in read.bills_due[:10]:
        lines.append(
            f"  {bill['DueDate']}  {money(Decimal(bill['Balance'])):>12}  {plain(bill['VendorRef'].get('name', ''))}"
        )
    overdue_total = sum((Decimal(i["Balance"]) for i in read.overdue), Decimal("0"))
    lines += ["", f"Invoices overdue: {len(read.overdue)} ({money(overdue_total)})"]
    for invoice in read.overdue[:10]:
        days = (today - date.fromisoformat(invoice["DueDate"])).days
        lines.append(
            f"  {days:>3} days  {money(Decimal(invoice['Balance'])):>12}  {plain(invoice['CustomerRef'].get('name', ''))}"
        )
    return "\n".join(lines)


def run_demo(*, seed: int | None, keep_running: bool) -> int:
    # The sandbox stands in for QuickBooks; only the demo and the tests ever load it.
    from qbo_sandbox.config import SandboxConfig
    from qbo_sandbox.seed import DEFAULT_SEED
    from qbo_sandbox.server import start_in_thread

    started = time.perf_counter()
    config = SandboxConfig(seed=DEFAULT_SEED if seed is None else seed)
    with start_in_thread(config) as running:
        sandbox = running.sandbox
        print(f"QuickBooks sandbox: {running.base_url}  (realm {sandbox.realm_id})", flush=True)
        read = asyncio.run(read_books(running.base_url, sandbox.realm_id, sandbox.access_token))
        print()
        print(render(read))
        print(f"\nRead in {time.perf_counter() - started:.1f} s through Oodaloo's QuickBooks client.")
        if keep_running:
            print(f"\nThe sandbox keeps running at {running.base_url}; Ctrl-C stops it.", flush=True)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("Stopped.")
    return 0
