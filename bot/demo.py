"""`oodaloo demo`: the whole product on one machine, with no accounts and no network.

One process: a fresh SQLite file, in-process backends, the QuickBooks sandbox with the seeded company,
a local Slack workspace, Oodaloo's web app (the bot), the worker's scheduler, and a local SMTP
server. The page at the printed address shows the #finance channel as Slack would; everything on it
goes to the bot as real signed Slack requests, and the bot answers through the local Slack's Web
API, so the demo runs exactly the production path. A digest is posted (and emailed) at start, then
on its weekly schedule; a switch on the page makes QuickBooks misbehave, and a live log beside it
shows the retries, deduplication and reconciliation at work (`bot.demo_activity`). The page acts
as any of the workspace's people (the owner, the bookkeeper, staff), so a bill that needs two
approvers can be approved twice and paid; Oodaloo's Home tab and `/runway connect` (through the
QuickBooks sandbox's consent page, served on the demo's own address) work as in Slack.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import itertools
import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from starlette.routing import BaseRoute

logger = logging.getLogger(__name__)

DEMO_DIR = Path(".oodaloo") / "demo"
OWNER_EMAIL = "owner@larkspur-pine.example"


class DemoMailbox:
    """What the local SMTP server received, newest last (the page's mail panel)."""

    def __init__(self, timezone: str = "America/Los_Angeles") -> None:
        #: The demo business's: the panel shows when a message came on its clock.
        self.timezone = timezone
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # aiosmtpd hook
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        text = parsed.get_body(preferencelist=("plain",))
        html = parsed.get_body(preferencelist=("html",))
        from runway.formatting import format_moment

        # The Date header (RFC 2822, for mail software) in the one style people read.
        sent = getattr(parsed.get("Date"), "datetime", None)
        with self._lock:
            self._messages.append(
                {
                    "id": str(next(self._ids)),
                    "from": str(parsed.get("From", "")),
                    "to": ", ".join(envelope.rcpt_tos),
                    "subject": str(parsed.get("Subject", "")),
                    "date": format_moment(sent, self.timezone) if sent is not None else "",
                    "text": text.get_content() if text is not None else "",
                    "html": inline_images(parsed, html.get_content()) if html is not None else "",
                }
            )
        return "250 Message accepted for delivery"

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(message) for message in self._messages]


def inline_images(message: EmailMessage, html: str) -> str:
    """The HTML with its `cid:` images (the digest's chart) as data: URLs, as a mail client shows
    them: the page's mailbox has no other way to reach the message's parts."""
    for part in message.walk():
        cid = str(part.get("Content-ID", "")).strip("<>")
        payload = part.get_content() if cid and part.get_content_maintype() == "image" else None
        if isinstance(payload, bytes):
            data = base64.b64encode(payload).decode("ascii")
            html = html.replace(f"cid:{cid}", f"data:{part.get_content_type()};base64,{data}")
    return html


class SandboxFaults:
    """The page's switch: QuickBooks throttles, fails and loses answers now and then, or not."""

    def __init__(self, sandbox: Any) -> None:
        from qbo_sandbox.chaos import FaultPlan, FaultRule, Latency

        self.sandbox = sandbox
        self.calm = sandbox.chaos.plan
        self.stormy = FaultPlan(
            default=FaultRule(
                rate_429=0.1, rate_5xx=0.15, rate_lost=0.1, latency=Latency(min_ms=100, max_ms=600)
            ),
            hang_seconds=5.0,
        )

    def enabled(self) -> bool:
        return bool(self.sandbox.chaos.plan is self.stormy)

    def set(self, on: bool) -> None:
        self.sandbox.chaos.plan = self.stormy if on else self.calm
        logger.info("QuickBooks sandbox faults %s", "on" if on else "off")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def demo(*, seed: int | None, port: int, exit_after: float | None) -> int:
    from aiosmtpd.controller import Controller

    from bot.demo_activity import DemoActivity
    from bot.email_wiring import digest_mailer
    from bot.local import BOOKKEEPER, BUSINESS_ID, CHANNEL, OWNER, STAFF, LocalStack, local_stack
    from bot.ritual import Ritual
    from bot.wiring import RitualJobsAdapter
    from bot.worker import run_worker
    from qbo_sandbox.config import DEFAULT_SEED, SandboxConfig
    from slack_sandbox.page import page_routes
    from sync import SyncSettings

    started = time.perf_counter()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    database = DEMO_DIR / "oodaloo-demo.db"
    database.unlink(missing_ok=True)  # every demo starts from the seeded company
    database_url = f"sqlite+aiosqlite:///{database.resolve()}"

    mailbox = DemoMailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    smtp.start()
    faults: list[SandboxFaults] = []
    activities: list[DemoActivity] = []

    def routes(stack: LocalStack) -> Sequence[BaseRoute]:
        faults.append(SandboxFaults(stack.sandbox))
        activities.append(DemoActivity(stack.oodaloo, BUSINESS_ID))
        activities[0].attach()
        return [*page_routes(
            stack.workspace,
            stack.agent,
            viewer_user_id=OWNER,
            channel_id=CHANNEL,
            faults=faults[0],
            mailbox=mailbox,
            title="Oodaloo demo · Larkspur & Pine",
            # What the person switcher says of each person.
            roles={OWNER: "owner, approver", BOOKKEEPER: "bookkeeper, approver", STAFF: "staff"},
            activity=activities[0],
        )]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with local_stack(
            database_url,
            # The company with every kind of cash movement: counter sales, owner money, a loan.
            sandbox_config=SandboxConfig(seed=DEFAULT_SEED if seed is None else seed, full_books=True),
            migrate=True,
            # Production waits, but a short circuit cool-down so the fault switch is quick to undo.
            sync_settings=replace(SyncSettings(), circuit=replace(SyncSettings().circuit, cooldown_seconds=10.0)),
            extra_routes=routes,
            port=port,
            email_recipients=[OWNER_EMAIL],
            settings={"smtp_url": f"smtp://127.0.0.1:{smtp.port}"},
            qbo_consent_page=True,
        ) as stack:
            oodaloo = stack.oodaloo
            ritual = Ritual(
                oodaloo,
                post_digest=stack.bot.post_digest,
                # The email's "…and N more" opens this page, the demo's Slack.
                mail_digest=digest_mailer(
                    oodaloo, f"smtp://127.0.0.1:{smtp.port}", lambda _team, _channel: f"{stack.url}/"
                ),
                alert_drift=stack.bot.post_drift_alerts,
            )
            outcome = await ritual.send_digest(BUSINESS_ID, datetime.now(UTC).replace(microsecond=0))
            worker = asyncio.create_task(
                run_worker(
                    RitualJobsAdapter(ritual), database_url=database_url, redis_url=None, stop=stop
                )
            )
            print(
                f"\nOodaloo demo is up ({time.perf_counter() - started:.1f} s).\n\n"
                f"  Open {stack.url}/ in a browser: the #finance channel of a local Slack, with\n"
                f"  this week's runway digest for Larkspur & Pine Coffee Roasters (posted {'and emailed ' if outcome.emailed_to else ''}just now).\n"
                "  Approve and pay bills, send reminders, type /runway in the message box, open\n"
                "  Oodaloo's Home tab, act as the bookkeeper or staff (\"Act as\"), turn QuickBooks\n"
                "  faults on with the switch, read the emailed digest in the mailbox.\n\n"
                f"  QuickBooks sandbox: in-process (realm {stack.sandbox.realm_id}); local Slack API: {stack.slack.api_url}\n"
                f"  Database: {database}; health: {stack.url}/healthz\n\n"
                "Ctrl-C stops the demo.",
                flush=True,
            )
            try:
                await asyncio.wait_for(stop.wait(), timeout=exit_after)
            except TimeoutError:
                stop.set()
            await asyncio.wait_for(worker, 30)
    finally:
        for activity in activities:
            activity.detach()
        smtp.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    print("Stopped.")
    return 0


def run_demo(*, seed: int | None, port: int = 0, exit_after: float | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The page shows what happens; the libraries' request-by-request logs would only repeat it.
    for chatty in ("uvicorn.access", "apscheduler", "httpx", "mail.log", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    return asyncio.run(demo(seed=seed, port=port, exit_after=exit_after))
