"""What the weekly ritual's jobs do: sync when due, post the digest, settle unknown actions.

The worker's scheduler decides when; this module decides what, with the domain services. Every job
is safe to run twice: a digest is recorded per business and scheduled time before it is posted
(`DigestRun`'s unique key), syncs and sweeps are idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.bootstrap import DigestContext, Oodaloo, figures_to_json
from bot.email.sender import EmailNotSent
from bot.models import DigestRun
from runway.models import Business, ConnectionStatus, QBOConnection
from sync import QBO_PLATFORM, QBOError, QuickBooksUnavailable, Resolution

logger = logging.getLogger(__name__)

#: Tokens expiring sooner than this are refreshed by the token job (QuickBooks' last an hour).
REFRESH_AHEAD = timedelta(minutes=15)

DigestPoster = Callable[[DigestContext], Awaitable[tuple[str, str]]]
DigestMailer = Callable[[DigestContext], Awaitable[list[str]]]
DriftAlerter = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class DigestOutcome:
    business_id: str
    scheduled_for: datetime
    posted: bool
    already_sent: bool
    channel_id: str | None = None
    ts: str | None = None
    emailed_to: tuple[str, ...] = ()


class Ritual:
    """The jobs of the weekly ritual over one `Oodaloo`; posting and mailing are injected."""

    def __init__(
        self,
        oodaloo: Oodaloo,
        *,
        post_digest: DigestPoster | None = None,
        mail_digest: DigestMailer | None = None,
        alert_drift: DriftAlerter | None = None,
    ) -> None:
        self.oodaloo = oodaloo
        self.post_digest = post_digest
        self.mail_digest = mail_digest
        self.alert_drift = alert_drift

    async def connected_businesses(self) -> list[Business]:
        async with self.oodaloo.sessions() as session:
            rows = await session.scalars(
                select(Business)
                .join(QBOConnection, QBOConnection.business_id == Business.id)
                .where(QBOConnection.status == ConnectionStatus.CONNECTED.value)
                .order_by(Business.id)
            )
            return list(rows)

    async def sync_if_due(self, business_id: str) -> bool:
        """Sync the mirror when the business's sync timing says so; then look for drift."""
        services = await self.oodaloo.services_for(business_id)
        timing = self.oodaloo.infra.timing
        strategy = await timing.strategy_for(business_id, QBO_PLATFORM)
        if not await timing.should_sync(business_id, QBO_PLATFORM, strategy):
            return False
        report = await services.mirror.sync(strategy=strategy)
        logger.info("synced %s: %s", business_id, report.summary())
        notices = await services.drift.check_bills()
        if notices and self.alert_drift is not None:
            await self.alert_drift(business_id)
        return True

    async def send_digest(self, business_id: str, scheduled_for: datetime) -> DigestOutcome:
        """The weekly digest for `scheduled_for`, posted and mailed at most once."""
        now = self.oodaloo.clock.now()
        run = await self._claim(business_id, scheduled_for, now)
        if run is None:
            logger.info("the %s digest of %s was already sent", scheduled_for.isoformat(), business_id)
            return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
        services = await self.oodaloo.services_for(business_id)
        try:
            await services.mirror.sync()
        except (QuickBooksUnavailable, QBOError, OSError, TimeoutError) as exc:
            # The digest still goes, from the last copy (also while the circuit is open or no
            # request slot is free); its freshness line says how old it is.
            logger.warning("sync before the digest of %s failed: %s", business_id, exc)
        ctx = await self.oodaloo.digest(business_id)
        channel_id = ts = None
        emailed: list[str] = []
        errors: list[str] = []
        if self.post_digest is not None and ctx.business.slack_channel_id:
            try:
                channel_id, ts = await self.post_digest(ctx)
            except Exception as exc:
                logger.exception("posting the digest of %s to Slack failed", business_id)
                errors.append(f"Slack: {exc}")
        if self.mail_digest is not None and ctx.business.email_recipients:
            try:
                emailed = await self.mail_digest(ctx)
            except EmailNotSent as exc:
                # Some may have got it: they are recorded, so they are not told twice.
                emailed = list(exc.delivered)
                errors.append(f"email: {exc}")
            except Exception as exc:
                logger.exception("emailing the digest of %s failed", business_id)
                errors.append(f"email: {exc}")
            else:
                missed = _not_reached(ctx.business.email_recipients, emailed)
                if missed:
                    errors.append(
                        f"email: the digest did not reach {', '.join(missed)} (the log has the mail "
                        "server's reason; check the address or remove it from the recipients)"
                    )
        async with self.oodaloo.sessions() as session:
            stored = await session.get(DigestRun, run)
            assert stored is not None
            stored.posted_at = self.oodaloo.clock.now() if (ts or emailed) else None
            stored.slack_channel_id, stored.slack_ts = channel_id, ts
            stored.emailed_to = emailed
            stored.figures = figures_to_json(ctx.view.figures_to_keep)
            stored.error = "; ".join(errors) or None
            await session.commit()
        return DigestOutcome(
            business_id, scheduled_for, posted=ts is not None, already_sent=False,
            channel_id=channel_id, ts=ts, emailed_to=tuple(emailed),
        )

    async def _claim(self, business_id: str, scheduled_for: datetime, now: datetime) -> int | None:
        async with self.oodaloo.sessions() as session:
            run = DigestRun(business_id=business_id, scheduled_for=scheduled_for, started_at=now, emailed_to=[])
            session.add(run)
            try:
                await session.commit()
            except IntegrityError:
                return None
            return run.id

    async def reconcile_sweep(self) -> list[Resolution]:
        return await self.oodaloo.reconciler().sweep()

    async def refresh_tokens(self) -> int:
        """Refresh access tokens that expire soon, so a click never waits for a refresh."""
        soon = self.oodaloo.clock.now() + REFRESH_AHEAD
        async with self.oodaloo.sessions() as session:
            realms = list(
                await session.scalars(
                    select(QBOConnection.realm_id).where(
                        QBOConnection.status == ConnectionStatus.CONNECTED.value,
                        QBOConnection.access_expires_at < soon,
                    )
                )
            )
        refreshed = 0
        for realm_id in realms:
            provider = self.oodaloo.tokens_for(realm_id)
            try:
                # access_token() would hand back a token with minutes left (it renews only at the
                # last moment); naming the stored one as spent renews it now, unless another
                # process already has (the provider reloads under the realm's lock first).
                stored = await self.oodaloo.directory.load_tokens(realm_id)
                await provider.force_refresh(stored.access_token)
                refreshed += 1
            except QBOError as exc:
                logger.warning("refreshing QuickBooks tokens of %s failed: %s", realm_id, exc)
        return refreshed


def _not_reached(recipients: list[str], emailed: list[str]) -> list[str]:
    reached = {address.strip().lower() for address in emailed}
    return [r for r in recipients if r.strip() and r.strip().lower() not in reached]
