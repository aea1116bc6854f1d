"""The HTTP face of `oodaloo serve`: Slack's request URL, install pages, QuickBooks and email routes,
and `/healthz`.

One Starlette app; Slack's events, slash commands and interactivity all arrive at /slack/events
(Bolt verifies each signature and answers 401 to anything unsigned or stale).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Oodaloo
from bot.slack.app import SlackBot
from runway.models import Business, ConnectionStatus, QBOConnection
from sync import CircuitState, RedisBackend

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
SLACK_INSTALL_PATH = "/slack/install"
SLACK_OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"


async def health(oodaloo: Oodaloo) -> tuple[bool, dict[str, Any]]:
    """Whether the database, Redis and each business's QuickBooks connection are usable."""
    report: dict[str, Any] = {}
    healthy = True
    try:
        async with oodaloo.sessions() as session:
            await session.execute(text("SELECT 1"))
            rows = (
                await session.execute(
                    select(Business.id, Business.name, Business.realm_id, QBOConnection.status,
                           QBOConnection.status_reason)
                    .outerjoin(QBOConnection, QBOConnection.business_id == Business.id)
                    .order_by(Business.id)
                )
            ).all()
        report["database"] = {"ok": True}
    except (OSError, SQLAlchemyError) as exc:
        healthy = False
        rows = []
        report["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    backend = oodaloo.infra.backend
    if isinstance(backend, RedisBackend):
        try:
            await backend.ping()
            report["redis"] = {"ok": True}
        except ConnectionError as exc:
            healthy = False
            report["redis"] = {"ok": False, "error": str(exc)}
    else:
        report["redis"] = {"ok": True, "detail": "not configured: shared state lives in this process"}
    businesses = []
    for business_id, name, realm_id, status, reason in rows:
        if realm_id is None or status is None:
            qbo = {"usable": False, "status": "not_connected", "fix": "run /runway connect"}
        elif status == ConnectionStatus.CONNECTED.value:
            circuit = await oodaloo.infra.circuit.state(realm_id)
            qbo = {
                "usable": circuit is not CircuitState.OPEN,
                "status": "connected" if circuit is CircuitState.CLOSED else f"circuit_{circuit.value}",
            }
        else:
            qbo = {"usable": False, "status": status, "reason": reason, "fix": "run /runway connect"}
        businesses.append({"id": business_id, "name": name, "qbo": qbo})
    report["businesses"] = businesses
    report["status"] = "ok" if healthy else "unavailable"
    return healthy, report


def create_web_app(
    oodaloo: Oodaloo,
    slack: SlackBot,
    *,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    handler = AsyncSlackRequestHandler(slack.app)

    async def slack_events(request: Request) -> Response:
        try:
            return await handler.handle(request)
        except ValueError as malformed:  # Bolt parses the body before it can answer 400 itself
            logger.warning("refused a malformed Slack request: %s", malformed)
            return JSONResponse(
                {"error": "malformed request: the body is not a Slack payload"}, status_code=400
            )

    async def healthz(request: Request) -> Response:
        healthy, report = await health(oodaloo)
        return JSONResponse(report, status_code=200 if healthy else 503)

    routes: list[BaseRoute] = [
        Route(SLACK_EVENTS_PATH, slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if slack.installation_store is not None:
        routes += [
            Route(SLACK_INSTALL_PATH, slack_events, methods=["GET"]),
            Route(SLACK_OAUTH_REDIRECT_PATH, slack_events, methods=["GET"]),
        ]
    routes += list(extra_routes)
    return Starlette(routes=routes)
