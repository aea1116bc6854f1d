"""Operations commands: `oodaloo businesses | sync | digest | actions | reconcile | rotate-keys`.

Each opens the same wiring as the server (`Oodaloo.start`), does one thing, prints plain text and
returns an exit code: 0 done, 1 the thing failed (the message says why), 2 bad input.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any, TextIO

from bot.bootstrap import Oodaloo
from bot.format import plain
from bot.ritual import Ritual
from bot.slack.settings_modal import WEEKDAYS
from bot.sync_progress import SyncProgressShown
from runway.businesses import BusinessNotFound
from runway.formatting import format_clock, format_moment, money
from runway.mirror import MirrorSync
from runway.models import QBOConnection
from sync import ActionState


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
        if n == 0:
            print("  ".join("-" * w for w in widths), file=out)


async def businesses(oodaloo: Oodaloo, out: TextIO | None = None) -> int:
    from sqlalchemy import select

    from runway.digest_schedule import next_digest_time
    from runway.models import Business

    out = out or sys.stdout  # looked up now: the caller may have redirected it

    async with oodaloo.sessions() as session:
        rows = (
            await session.execute(
                select(Business, QBOConnection.status)
                .outerjoin(QBOConnection, QBOConnection.business_id == Business.id)
                .order_by(Business.id)
            )
        ).all()
    if not rows:
        print("No businesses yet. In Slack, `/runway connect` in a channel creates one.", file=out)
        return 0
    now = oodaloo.clock.now()
    table = [["id", "name", "QuickBooks", "Slack channel", "digest", "next digest (local)"]]
    for business, status in rows:
        nxt = next_digest_time(business, now)
        table.append([
            business.id,
            plain(business.name),
            f"{business.realm_id} ({status})" if business.realm_id else "not connected",
            f"{business.slack_team_id}/{business.slack_channel_id}" if business.slack_channel_id else "-",
            f"{WEEKDAYS[business.digest_weekday][:3]} {format_clock(business.digest_local_time, business.locale)} {business.timezone}",
            format_moment(nxt, business.timezone, business.locale),
        ])
    _table(table, out)
    return 0


async def sync(oodaloo: Oodaloo, business_id: str, *, full: bool, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: the caller may have redirected it
    services = await oodaloo.services_for(business_id)
    # Progress goes to stderr, so stdout stays the report.
    shown = SyncProgressShown(sys.stderr)
    mirror = MirrorSync(oodaloo.uows, services.smart_sync, progress=shown)
    started = time.perf_counter()
    print(f"Syncing {plain(services.business.name)} with QuickBooks{' (full)' if full else ''}…", file=out, flush=True)
    try:
        report = await mirror.sync(full=full)
    finally:
        shown.finish()
    notices = await services.drift.check_bills()
    print(f"Done in {time.perf_counter() - started:.1f} s ({report.qbo_seconds:.1f} s in QuickBooks calls, "
          f"{report.write_seconds:.1f} s writing): {report.summary()}", file=out)
    print(f"{report.created:,} new, {report.updated:,} changed, {report.deleted:,} deleted; "
          f"{len(notices)} open drift alerts.", file=out)
    return 0


class _PrintedLinks:
    """Links for a digest printed to a terminal: they show where the buttons go but act on nothing
    (a printed digest must not carry working payment links)."""

    ttl = timedelta(hours=72)

    def __init__(self, oodaloo: Oodaloo) -> None:
        self.base = oodaloo.settings.public_url.rstrip("/")

    def action_url(self, business_id: str, action: Any, target_id: str, recipient: str, *,
                   amount: Decimal | None = None) -> str:
        return f"{self.base}/email/act/<{action.value} {target_id}: sent in the real email>"

    def unsubscribe_url(self, business_id: str, recipient: str) -> str:
        return f"{self.base}/email/unsubscribe/<sent in the real email>"


async def digest(oodaloo: Oodaloo, business_id: str, *, dry_run: bool,
                 ritual: Ritual | None = None, out: TextIO | None = None) -> int:
    from bot.email.render import render_digest_email, slack_channel_url

    out = out or sys.stdout  # looked up now: the caller may have redirected it

    ctx = await oodaloo.digest(business_id)
    recipient = (ctx.business.email_recipients or ["owner@example.com"])[0]
    team, channel = ctx.business.slack_team_id, ctx.business.slack_channel_id
    rendered = render_digest_email(
        ctx.view, business_name=ctx.business.name, links=_PrintedLinks(oodaloo), recipient=recipient,
        slack_url=slack_channel_url(team, channel) if team and channel else None,
    )
    print(f"Subject: {rendered.subject}\n", file=out)
    print(rendered.text, file=out)
    if dry_run:
        print("(dry run: nothing was posted or sent)", file=out)
        return 0
    if ritual is None:
        print("Nothing is configured to deliver the digest (set SLACK_BOT_TOKEN or SMTP_URL).", file=out)
        return 1
    outcome = await ritual.send_digest(business_id, oodaloo.clock.now().replace(microsecond=0))
    where = []
    if outcome.ts:
        where.append(f"Slack channel {outcome.channel_id} (ts {outcome.ts})")
    if outcome.emailed_to:
        where.append("email to " + ", ".join(outcome.emailed_to))
    print("Sent to " + (" and ".join(where) if where else "nobody (no channel or recipients set)"), file=out)
    return 0 if where else 1


async def actions(oodaloo: Oodaloo, state: str | None, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: the caller may have redirected it
    try:
        wanted = ActionState(state) if state else None
    except ValueError:
        print(f"Unknown state {state!r}; use one of: {', '.join(s.value for s in ActionState)}", file=sys.stderr)
        return 2
    found = await oodaloo.actions(wanted)
    if not found:
        print("No actions" + (f" in state {wanted.value}." if wanted else "."), file=out)
        return 0
    table = [["key", "business", "operation", "target", "amount", "state", "tries", "updated", "last error"]]
    for action in found:
        table.append([
            action.key, action.business_id, action.operation, f"{action.target_type} {action.target_id}",
            money(action.amount, "USD"), action.state.value, str(action.attempts),
            format_moment(action.updated_at, "UTC"), (action.last_error or "")[:60],
        ])
    _table(table, out)
    return 0


async def reconcile(oodaloo: Oodaloo, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: the caller may have redirected it
    reconciler = oodaloo.reconciler()
    due = await reconciler.due()
    print(f"{len(due)} actions to settle.", file=out, flush=True)
    if not due:
        return 0
    for resolution in await reconciler.sweep():
        print(f"  {resolution.key}  {resolution.previous_state.value} -> {resolution.state.value}  "
              f"({resolution.how}: {resolution.reason})", file=out)
    return 0


async def rotate_keys(oodaloo: Oodaloo, out: TextIO | None = None) -> int:
    """Re-encrypts every stored secret under the newest TOKEN_ENCRYPTION_KEY and says how many."""
    from bot.rotation import rotate_stored_secrets

    out = out or sys.stdout
    rotated = await rotate_stored_secrets(oodaloo.engine, oodaloo.directory.cipher)
    for what, count in rotated.counts.items():
        print(f"{what}: {count} re-encrypted with the newest key", file=out)
    if rotated.unreadable:
        print(
            "No key of TOKEN_ENCRYPTION_KEY opens: " + ", ".join(rotated.unreadable)
            + ". Put the key they were written with back in the ring and run this again, "
            "or reconnect them.",
            file=out,
        )
        return 1
    print("Done: the older keys can now be removed from TOKEN_ENCRYPTION_KEY.", file=out)
    return 0


def missing_business(business_id: str, error: BusinessNotFound) -> int:
    print(f"{error}. `oodaloo businesses` lists them.", file=sys.stderr)
    return 2


def failed(error: Exception) -> int:
    from runway.errors import RunwayError

    where = "" if isinstance(error, RunwayError) else "QuickBooks: "
    print(f"{where}{error}", file=sys.stderr)
    return 1
