"""Wires the optional parts of `oodaloo serve` and `oodaloo worker` from the settings.

With Redis and Slack configured, `oodaloo worker` also does the Slack work the web processes hand
off after their acks (`bot.slack.handoff.WorkConsumers`).

QuickBooks connect needs the Intuit app (QBO_CLIENT_ID, QBO_CLIENT_SECRET, QBO_REDIRECT_URI);
webhooks need QBO_WEBHOOK_VERIFIER_TOKEN; email needs SMTP_URL; Slack needs its token and secret.
Each part is on when its settings are there, and says in the log when it is off and why.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.routing import BaseRoute

from bot.bootstrap import DigestContext, Oodaloo
from bot.chart_links import ChartImages, ChartLinks, chart_routes, chart_url_for
from bot.email.links import LinkSigner
from bot.qbo_link import QBOAppConfig, QBOLinker, qbo_link_routes
from bot.qbo_webhooks import qbo_webhook_route
from bot.ritual import Ritual
from bot.settings import Settings
from bot.slack.app import Linker, SlackBot
from bot.slack.channel import ChartUrl
from bot.slack.handoff import CONSUMER_SLOTS, WorkConsumers
from runway.businesses import BusinessNotFound
from runway.models import Business
from sync import QuickBooksUnavailable, RedisBackend, SyncStrategy

logger = logging.getLogger(__name__)


@dataclass
class Wired:
    oodaloo: Oodaloo
    qbo_linker: QBOLinker | None = None
    signer: LinkSigner | None = None
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    _charts: ChartImages | None = None

    @property
    def charts(self) -> ChartImages:
        """The charts this process draws or finds kept: one store for its Slack bot and routes."""
        if self._charts is None:
            self._charts = ChartImages(self.oodaloo.sessions, self.oodaloo.clock)
        return self._charts

    @property
    def linker(self) -> Linker | None:
        if self.qbo_linker is None:
            return None
        qbo_linker = self.qbo_linker

        async def link(business: Business, user_id: str) -> str:
            return await qbo_linker.start_url(business.id, user_id)

        return link

    def chart_url(self) -> ChartUrl | None:
        """Where Slack fetches a digest's chart, or None when it cannot reach PUBLIC_URL."""
        return (
            None if self.signer is None else chart_url_for(self.oodaloo, self.signer, self.charts)
        )

    def routes(self, slack: SlackBot | None) -> list[BaseRoute]:
        oodaloo = self.oodaloo
        settings = oodaloo.settings
        routes: list[BaseRoute] = []

        async def first_sync(business: Business) -> None:
            services = oodaloo.services(business)
            report = await services.mirror.sync(strategy=SyncStrategy.FORCED)
            logger.info("first sync of %s: %s", business.id, report.summary())
            if slack is not None and business.slack_channel_id:
                ctx = await oodaloo.digest(business.id)
                await slack.post_digest(ctx)

        if self.qbo_linker is not None:
            routes += qbo_link_routes(self.qbo_linker, on_connected=first_sync)

        if settings.qbo_webhook_verifier_token:
            async def changed(realm_id: str, entities: list[dict[str, Any]]) -> None:
                try:
                    business = await oodaloo.directory.by_realm(realm_id)
                except BusinessNotFound:
                    logger.info("webhook for QuickBooks company %s, which no business uses", realm_id)
                    return
                services = oodaloo.services(business)
                try:
                    report = await services.mirror.sync(strategy=SyncStrategy.AFTER_ACTION)
                except QuickBooksUnavailable as exc:
                    # The changes stay in QuickBooks; the next scheduled sync (CDC) reads them.
                    logger.warning("webhook sync of %s put off: %s", business.id, exc)
                    return
                logger.info("webhook sync of %s (%d entities): %s", business.id, len(entities), report.summary())
                drift = await services.drift.check_bills() + await services.drift.check_payments()
                if drift and slack is not None:
                    await slack.post_drift_alerts(business.id)

            routes.append(qbo_webhook_route(settings.qbo_webhook_verifier_token, changed))
        else:
            logger.info("QuickBooks webhooks are off: QBO_WEBHOOK_VERIFIER_TOKEN is not set")
        routes += self.email_routes(slack)
        if self.signer is not None:
            routes += chart_routes(oodaloo, ChartLinks(self.signer, oodaloo.clock), self.charts)
        return routes

    def email_routes(self, slack: SlackBot | None = None) -> list[BaseRoute]:
        from bot.email_wiring import email_routes_for

        if self.signer is None:
            return []
        oodaloo = self.oodaloo

        async def show_in_slack(business_id: str, kind: str, item_id: str) -> None:
            if slack is not None and kind in ("bill", "invoice"):
                await slack.refresh_everywhere(
                    await oodaloo.directory.get(business_id), "bill" if kind == "bill" else "invoice", item_id
                )

        return email_routes_for(oodaloo, self.signer, show_in_slack)

    async def aclose(self) -> None:
        if self.qbo_linker is not None:
            await self.qbo_linker.aclose()


async def wire_routes(oodaloo: Oodaloo, *, qbo_http: Any = None, discovery_url: str | None = None) -> Wired:
    settings = oodaloo.settings
    wired = Wired(oodaloo)
    wired.signer = LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=settings.public_url)
    if settings.qbo_client_id and settings.qbo_client_secret:
        redirect = settings.qbo_redirect_uri or f"{settings.public_url.rstrip('/')}/qbo/callback"
        fields = dict(
            client_id=settings.qbo_client_id,
            client_secret=settings.qbo_client_secret,
            redirect_uri=redirect,
            public_url=settings.public_url,
            api_base_url=settings.qbo_base_url,
        )
        config = (
            await QBOAppConfig.discover(discovery_url, http=qbo_http, **fields)
            if discovery_url
            else QBOAppConfig(**fields)  # type: ignore[arg-type]
        )
        wired.qbo_linker = QBOLinker(config, oodaloo.directory, oodaloo.engine, http=qbo_http)
    else:
        logger.info("QuickBooks connect is off: set QBO_CLIENT_ID and QBO_CLIENT_SECRET to turn it on")
    return wired


def slack_bot_for(oodaloo: Oodaloo) -> SlackBot | None:
    """A Slack bot from the settings, or None when Slack is not configured."""
    settings = oodaloo.settings
    if settings.slack_signing_secret and (settings.slack_bot_token or settings.slack_client_id):
        signer = LinkSigner(oodaloo.link_secret, oodaloo.clock, public_url=settings.public_url)
        charts = ChartImages(oodaloo.sessions, oodaloo.clock)
        return SlackBot(oodaloo, chart_url=chart_url_for(oodaloo, signer, charts))
    return None


async def ritual_for(oodaloo: Oodaloo, slack: SlackBot | None = None) -> Ritual:
    """The ritual's jobs, posting through `slack` (or a bot built from the settings) and mailing
    through SMTP_URL when set."""
    settings = oodaloo.settings
    if slack is None:
        slack = slack_bot_for(oodaloo)
    mail = None
    if settings.smtp_url:
        from bot.email_wiring import digest_mailer

        mail = digest_mailer(oodaloo, settings.smtp_url)

    async def post(ctx: DigestContext) -> tuple[str, str]:
        assert slack is not None
        return await slack.post_digest(ctx)

    return Ritual(
        oodaloo,
        post_digest=post if slack is not None else None,
        mail_digest=mail,
        alert_drift=slack.post_drift_alerts if slack is not None else None,
    )


def lower_cpu_priority(nice: Literal["idle"] | int) -> None:
    """`idle`: this process runs only on CPU no other process wants. Linux's SCHED_IDLE class also
    counts a core running only such work as free, so a web process waking with a request is put
    there and runs at once; a nice value only shares the core with it."""
    if nice == "idle":
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        nice = 19  # no idle class here (macOS): the lowest nice instead
    os.nice(nice)


async def run_worker_process(settings: Settings) -> None:
    from bot.worker.run import WorkerOptions, run_worker

    options = WorkerOptions()
    # The work here (digests, syncs, the Slack work handed off) can wait a moment; an ack cannot.
    lower_cpu_priority(settings.worker_nice)
    # Every job the queue runs at once and every piece of Slack work gets its own connection.
    oodaloo = await Oodaloo.start(
        settings,
        migrate=settings.migrates_on_start(),
        database_connections=options.max_concurrent_jobs + CONSUMER_SLOTS,
    )
    try:
        slack = slack_bot_for(oodaloo)
        ritual = await ritual_for(oodaloo, slack)
        stop = asyncio.Event()
        consuming: asyncio.Task[None] | None = None
        backend = oodaloo.infra.backend
        if slack is not None and isinstance(backend, RedisBackend):
            consumers = WorkConsumers(slack, backend)
            consuming = asyncio.create_task(consumers.run(stop), name="slack work")
        try:
            await run_worker(
                RitualJobsAdapter(ritual),
                database_url=settings.database_url,
                redis_url=settings.redis_url,
                stop=stop,
                options=options,
                handle_signals=True,
            )
        finally:
            stop.set()
            if consuming is not None:
                await consuming
            if slack is not None:
                await slack.idle()
    finally:
        await oodaloo.aclose()


class RitualJobsAdapter:
    """The worker's `RitualJobs` protocol over `Ritual`."""

    def __init__(self, ritual: Ritual) -> None:
        self.ritual = ritual

    async def schedules(self) -> list[Any]:
        from bot.worker.jobs import BusinessSchedule

        return [
            BusinessSchedule(b.id, b.timezone, b.digest_weekday, b.digest_local_time)
            for b in await self.ritual.connected_businesses()
        ]

    async def sync_if_due(self, business_id: str) -> None:
        await self.ritual.sync_if_due(business_id)

    async def send_digest(self, business_id: str, scheduled_for: Any) -> None:
        await self.ritual.send_digest(business_id, scheduled_for)

    async def reconcile_sweep(self) -> None:
        await self.ritual.reconcile_sweep()

    async def refresh_tokens(self) -> None:
        await self.ritual.refresh_tokens()
