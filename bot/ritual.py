"""What the weekly ritual's jobs do: sync when due, post the digest, settle unknown actions.

The worker's scheduler decides when; this module decides what, with the domain services. Every job
is safe to run twice: a digest is recorded per business and scheduled time before it is posted
(`DigestRun`'s unique key), syncs and sweeps are idempotent.

A weekly digest is sent, or tried again, or given up with its reason; it never vanishes:

- An attempt claims the run: a new row, or (compare-and-set on `attempts`) a row whose `retry_at`
  has come. While an attempt runs, `retry_at` is its lease (DIGEST_LEASE): a worker killed
  mid-digest leaves a run that the next `send_digest` for it (the worker's digest sweep, every few
  minutes) takes over once the lease is over. Another caller meanwhile is told it is being sent.
- What a failed attempt delivered stays delivered: the Slack post and each address it reached are
  recorded as soon as they happen, and a later attempt only does what is missing (it never posts to
  Slack again, and emails only the addresses not reached).
- A failed attempt is tried again after DIGEST_RETRY_AFTER, doubled after each failure, up to
  MAX_DIGEST_ATTEMPTS attempts and no later than DIGEST_RETRY_WINDOW after the digest was due; then
  it is given up: logged at ERROR once, and `DigestRun.error` and `given_up_at` say so.
- QuickBooks unreachable during the sync before the digest is not a failure: the digest goes from
  the mirror, and its freshness line says how old the figures are.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import inspect as inspect_model
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bootstrap import DigestContext, Oodaloo, figures_to_json
from bot.email.sender import EmailNotSent
from bot.models import DigestRun
from runway.models import Business, ConnectionStatus, QBOConnection
from sync import QBO_PLATFORM, QBOError, QuickBooksUnavailable, Resolution, for_business

logger = logging.getLogger(__name__)

#: Tokens expiring sooner than this are refreshed by the token job (QuickBooks' last an hour).
REFRESH_AHEAD = timedelta(minutes=15)

#: How long one scheduled reconciliation keeps sweeping while it settles something: under the
#: minute between runs (bot.worker.schedule.RitualCadence.reconcile_every), long enough to drain a
#: company's backlog after an outage at QuickBooks' 500 requests a minute rather than 50 a run.
RECONCILE_BUDGET = timedelta(seconds=45)

#: A digest attempt that has not finished this long after it started (or after it last went on to
#: deliver) was abandoned: its worker died. Longer than the worker's job timeout (15 minutes), so a
#: live attempt is not taken over.
DIGEST_LEASE = timedelta(minutes=20)
#: A failed digest is tried again this long after its first failure, twice as long after each next.
DIGEST_RETRY_AFTER = timedelta(minutes=10)
#: Attempts at one digest before it is given up.
MAX_DIGEST_ATTEMPTS = 5
#: How long after it was due a digest is still tried (the worker's catch-up window for a missed
#: digest, bot.worker.jobs.DIGEST_CATCH_UP): later, it would arrive as if it were the week's fresh one.
DIGEST_RETRY_WINDOW = timedelta(hours=6)
#: A digest first started later than this after it was due is a catch-up (its firing was missed
#: or lost): it is not sent if the business connected QuickBooks after it was due (the first
#: digest went out then), or if the business had another digest in the day before or since.
DIGEST_LATE = timedelta(minutes=10)

DigestPoster = Callable[[DigestContext], Awaitable[tuple[str, str]]]
DigestMailer = Callable[[DigestContext], Awaitable[list[str]]]
DriftAlerter = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class DigestOutcome:
    business_id: str
    scheduled_for: datetime
    #: This call posted the digest to Slack.
    posted: bool
    #: Nothing for this call to do: the digest was sent, or another attempt is sending it.
    already_sent: bool
    channel_id: str | None = None
    ts: str | None = None
    #: Addresses this call emailed the digest to.
    emailed_to: tuple[str, ...] = ()
    #: Why this call's attempt did not deliver everywhere (it is tried again, or was given up).
    error: str | None = None
    #: The digest will not be tried again (`error` says why).
    given_up: bool = False
    #: A failed digest whose next attempt is not due yet.
    waiting: bool = False


@dataclass(frozen=True)
class _Claim:
    """One attempt at one digest: the run's row and the attempt's number (its fencing token)."""

    run_id: int
    attempt: int
    business_id: str
    scheduled_for: datetime
    slack_ts: str | None
    emailed_to: tuple[str, ...]


class _ClaimLost(Exception):
    """The attempt's lease ran out and another attempt took the digest over."""


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
        notices = await services.drift.check_bills() + await services.drift.check_payments()
        if notices and self.alert_drift is not None:
            await self.alert_drift(business_id)
        return True

    async def send_digest(self, business_id: str, scheduled_for: datetime) -> DigestOutcome:
        """The weekly digest for `scheduled_for`, posted and mailed at most once; a failed or
        abandoned attempt is tried again (see the module's docstring)."""
        now = self.oodaloo.clock.now()
        claim = await self._claim(business_id, scheduled_for, now)
        if isinstance(claim, DigestOutcome):
            return claim
        channel_id: str | None = None
        ts: str | None = None
        emailed: list[str] = []
        errors: list[str] = []
        try:
            services = await self.oodaloo.services_for(business_id)
            try:
                await services.mirror.sync()
            except (QuickBooksUnavailable, QBOError, OSError, TimeoutError) as exc:
                # The digest still goes, from the last copy (also while the circuit is open or no
                # request slot is free); its freshness line says how old it is.
                logger.warning("sync before the digest of %s failed: %s", business_id, exc)
            ctx = await self.oodaloo.digest(business_id)
            await self._record(claim, figures=figures_to_json(ctx.view.figures_to_keep))
            if self.post_digest is not None and ctx.business.slack_channel_id and claim.slack_ts is None:
                await self._record(claim)  # still ours: renews the lease just before posting
                try:
                    channel_id, ts = await self.post_digest(ctx)
                except Exception as exc:
                    logger.warning("posting the digest of %s to Slack failed", business_id, exc_info=True)
                    errors.append(f"Slack: {exc}")
                else:
                    await self._record(claim, slack=(channel_id, ts))
            recipients = ctx.business.email_recipients
            missing = _not_reached(recipients, list(claim.emailed_to))
            if self.mail_digest is not None and missing:
                await self._record(claim)
                emailed, error = await self._mail(_addressed_to(ctx, missing) if missing != recipients else ctx)
                if emailed:
                    await self._record(claim, emailed=[*claim.emailed_to, *emailed])
                if error:
                    errors.append(error)
                missed = _not_reached(missing, emailed)
                if missed and not error:
                    errors.append(
                        f"email: the digest did not reach {', '.join(missed)} (the log has the mail "
                        "server's reason; check the address or remove it from the recipients)"
                    )
        except _ClaimLost:
            logger.warning(
                "the %s digest of %s was taken over by another attempt after this one's lease ran "
                "out; this one stops", scheduled_for.isoformat(), business_id,
            )
            return DigestOutcome(business_id, scheduled_for, posted=ts is not None, already_sent=True,
                                 channel_id=channel_id, ts=ts, emailed_to=tuple(emailed))
        except Exception as exc:
            logger.warning(
                "the %s digest of %s failed (attempt %d)", scheduled_for.isoformat(), business_id,
                claim.attempt, exc_info=True,
            )
            errors.append(f"{type(exc).__name__}: {exc}")
        error, given_up = await self._finish(claim, errors)
        return DigestOutcome(
            business_id, scheduled_for, posted=ts is not None, already_sent=False,
            channel_id=channel_id, ts=ts, emailed_to=tuple(emailed), error=error, given_up=given_up,
        )

    async def _mail(self, ctx: DigestContext) -> tuple[list[str], str | None]:
        """Email the digest to `ctx.business.email_recipients`: who got it, and what went wrong."""
        assert self.mail_digest is not None
        try:
            return await self.mail_digest(ctx), None
        except EmailNotSent as exc:
            # Some may have got it: they are recorded, so they are not told twice.
            return list(exc.delivered), f"email: {exc}"
        except Exception as exc:
            logger.warning("emailing the digest of %s failed", ctx.business.id, exc_info=True)
            return [], f"email: {exc}"

    async def _claim(
        self, business_id: str, scheduled_for: datetime, now: datetime
    ) -> _Claim | DigestOutcome:
        """Start an attempt at the digest, or say why there is nothing to do now."""
        async with self.oodaloo.sessions() as session:
            for_business(session, business_id)
            run = await session.scalar(
                select(DigestRun).where(
                    DigestRun.business_id == business_id, DigestRun.scheduled_for == scheduled_for
                )
            )
            if run is None:
                skipped = await self._not_caught_up(session, business_id, scheduled_for, now)
                if skipped is not None:
                    return skipped
                run = DigestRun(
                    business_id=business_id, scheduled_for=scheduled_for, started_at=now,
                    emailed_to=[], attempts=1, retry_at=now + DIGEST_LEASE,
                )
                session.add(run)
                try:
                    await session.commit()
                except IntegrityError:
                    await session.rollback()
                    # Another worker claimed it a moment ago: it is being sent.
                    return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
                try:
                    await self._give_up_earlier(business_id, scheduled_for, now)
                except Exception:
                    logger.warning("could not close the earlier digests of %s", business_id, exc_info=True)
                return _Claim(run.id, 1, business_id, scheduled_for, None, ())
            if run.given_up_at is not None:
                return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=False,
                                     error=run.error, given_up=True)
            if run.retry_at is None:
                logger.debug("the %s digest of %s was already sent", scheduled_for.isoformat(), business_id)
                return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
            if run.retry_at > now:
                if run.error is None:  # an attempt is under way
                    logger.debug("the %s digest of %s is being sent", scheduled_for.isoformat(), business_id)
                    return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
                return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=False,
                                     error=run.error, waiting=True)
            if run.attempts >= MAX_DIGEST_ATTEMPTS or now > scheduled_for + DIGEST_RETRY_WINDOW:
                # The last attempt was abandoned (its worker died) and no other may follow.
                reason = run.error or "its last attempt never finished (the worker stopped mid-digest)"
                await self._give_up(session, run, reason, now)
                return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=False,
                                     error=run.error, given_up=True)
            attempt = run.attempts + 1
            if run.error is None:
                logger.warning(
                    "the %s digest of %s: attempt %d started %s and never finished; trying again",
                    scheduled_for.isoformat(), business_id, run.attempts, run.started_at.isoformat(),
                )
            taken = await session.execute(
                update(DigestRun)
                .where(DigestRun.id == run.id, DigestRun.attempts == run.attempts,
                       DigestRun.given_up_at.is_(None))
                .values(attempts=attempt, started_at=now, retry_at=now + DIGEST_LEASE)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
            return _Claim(run.id, attempt, business_id, scheduled_for, run.slack_ts, tuple(run.emailed_to))

    async def _not_caught_up(
        self, session: AsyncSession, business_id: str, scheduled_for: datetime, now: datetime
    ) -> DigestOutcome | None:
        """A late first attempt (see DIGEST_LATE) that another digest already stands for."""
        if now - scheduled_for <= DIGEST_LATE:
            return None
        connected_at = await session.scalar(
            select(QBOConnection.connected_at).where(QBOConnection.business_id == business_id)
        )
        other = await session.scalar(
            select(DigestRun.scheduled_for).where(
                DigestRun.business_id == business_id,
                DigestRun.scheduled_for >= scheduled_for - timedelta(days=1),
                DigestRun.scheduled_for <= now,
            ).limit(1)
        )
        if (connected_at is not None and connected_at > scheduled_for) or other is not None:
            logger.info(
                "not catching up on the %s digest of %s: %s", scheduled_for.isoformat(), business_id,
                "QuickBooks was connected after it was due" if other is None
                else f"the digest of {other.isoformat()} already stands for it",
            )
            return DigestOutcome(business_id, scheduled_for, posted=False, already_sent=True)
        return None

    async def _record(
        self,
        claim: _Claim,
        *,
        figures: dict[str, Any] | None = None,
        slack: tuple[str, str] | None = None,
        emailed: list[str] | None = None,
    ) -> None:
        """Keep what this attempt did, at once (so no later attempt does it again), and renew its
        lease; raises _ClaimLost if another attempt has taken the digest over."""
        now = self.oodaloo.clock.now()
        values: dict[str, Any] = {"retry_at": now + DIGEST_LEASE}
        if figures is not None:
            values["figures"] = figures
        if slack is not None:
            values["slack_channel_id"], values["slack_ts"] = slack
        if emailed is not None:
            values["emailed_to"] = emailed
        async with self.oodaloo.sessions() as session:
            for_business(session, claim.business_id)
            run = await session.get(DigestRun, claim.run_id)
            if run is None or run.attempts != claim.attempt or run.given_up_at is not None:
                raise _ClaimLost
            for name, value in values.items():
                setattr(run, name, value)
            if (slack is not None or emailed) and run.posted_at is None:
                run.posted_at = now
            await session.commit()

    async def _finish(self, claim: _Claim, errors: list[str]) -> tuple[str | None, bool]:
        """End the attempt: done, to be tried again later, or given up. Returns (error, given up)."""
        now = self.oodaloo.clock.now()
        error = "; ".join(errors) or None
        async with self.oodaloo.sessions() as session:
            for_business(session, claim.business_id)
            run = await session.get(DigestRun, claim.run_id)
            if run is None or run.attempts != claim.attempt or run.given_up_at is not None:
                logger.warning(
                    "the %s digest of %s was taken over by another attempt; this one's outcome (%s) "
                    "is not recorded", claim.scheduled_for.isoformat(), claim.business_id,
                    error or "delivered",
                )
                return error, False
            run.error = error
            if error is None:
                run.retry_at = None
                await session.commit()
                return None, False
            retry_at = now + DIGEST_RETRY_AFTER * 2 ** (claim.attempt - 1)
            if claim.attempt >= MAX_DIGEST_ATTEMPTS or retry_at > claim.scheduled_for + DIGEST_RETRY_WINDOW:
                await self._give_up(session, run, error, now)
                return run.error, True
            run.retry_at = retry_at
            await session.commit()
        logger.warning(
            "the %s digest of %s was not delivered everywhere (attempt %d of %d): %s; trying again at %s",
            claim.scheduled_for.isoformat(), claim.business_id, claim.attempt, MAX_DIGEST_ATTEMPTS,
            error, retry_at.isoformat(),
        )
        return error, False

    async def _give_up(self, session: AsyncSession, run: DigestRun, reason: str, now: datetime) -> None:
        """Stop trying: recorded on the run and logged at ERROR, once."""
        run.error = f"given up after {run.attempts} attempt(s): {reason}"
        run.retry_at = None
        run.given_up_at = now
        await session.commit()
        logger.error(
            "gave up the %s digest of %s after %d attempt(s)%s: %s",
            run.scheduled_for.isoformat(), run.business_id, run.attempts,
            "" if run.posted_at is not None else ", nothing delivered", reason,
        )

    async def _give_up_earlier(self, business_id: str, scheduled_for: datetime, now: datetime) -> None:
        """A new digest supersedes the business's earlier ones still being tried (such as one asked
        for by hand, which no sweep tries again)."""
        async with self.oodaloo.sessions() as session:
            for_business(session, business_id)
            earlier = list(
                await session.scalars(
                    select(DigestRun).where(
                        DigestRun.business_id == business_id,
                        DigestRun.scheduled_for < scheduled_for,
                        DigestRun.retry_at.is_not(None),
                        DigestRun.given_up_at.is_(None),
                    )
                )
            )
            for run in earlier:
                reason = run.error or "its last attempt never finished (the worker stopped mid-digest)"
                await self._give_up(
                    session, run, f"{reason} (the digest due {scheduled_for.isoformat()} replaces it)", now
                )

    async def reconcile_sweep(self) -> list[Resolution]:
        return await self.oodaloo.reconciler().sweep_for(RECONCILE_BUDGET)

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


def _addressed_to(ctx: DigestContext, recipients: list[str]) -> DigestContext:
    """The digest addressed to `recipients` only (the rest got it from an earlier attempt): a copy
    of the business, never added to a session, carries them to the mailer."""
    business = ctx.business
    copy = Business(
        **{column.key: getattr(business, column.key) for column in inspect_model(Business).column_attrs}
    )
    copy.email_recipients = list(recipients)
    return replace(ctx, business=copy)


def _not_reached(recipients: list[str], emailed: list[str]) -> list[str]:
    reached = {address.strip().lower() for address in emailed}
    return [r for r in recipients if r.strip() and r.strip().lower() not in reached]
