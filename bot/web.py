"""The HTTP face of `oodaloo serve`: Slack's request URL, install pages, QuickBooks and email routes,
and `/healthz`.

One Starlette app; Slack's events, slash commands and interactivity all arrive at /slack/events.
Every body is limited in size before it is read (`bot.http_guards.BodyLimit`: 413 above the limit),
and Slack's signature is checked before Bolt parses anything (401 in plain words for anything
unsigned, stale or with malformed headers; 400 for a signed body Bolt cannot read).

`/healthz` says whether the process, the database and Redis are up (200 or 503) to anyone; each
business's QuickBooks connection (and why a dependency is down) only to the operator, who sends
`Authorization: Bearer <OPERATOR_TOKEN>`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt.adapter.starlette.async_handler import (
    AsyncSlackRequestHandler,
    to_async_bolt_request,
    to_starlette_response,
)
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from bot.bootstrap import Oodaloo
from bot.http_guards import (
    DEFAULT_BODY_LIMIT,
    QBO_WEBHOOK_BODY_LIMIT,
    SLACK_BODY_LIMIT,
    BodyLimit,
    slack_payload_problem,
    slack_signature_problem,
)
from bot.qbo_webhooks import WEBHOOKS_PATH
from bot.slack.app import SlackBot
from bot.slack.handoff import backlog
from runway.models import Business, ConnectionStatus, QBOConnection
from sync import CircuitState, RedisBackend

logger = logging.getLogger(__name__)

SLACK_EVENTS_PATH = "/slack/events"
SLACK_INSTALL_PATH = "/slack/install"
SLACK_OAUTH_REDIRECT_PATH = "/slack/oauth_redirect"


async def health(oodaloo: Oodaloo, *, detail: bool = False) -> tuple[bool, dict[str, Any]]:
    """Whether the database and Redis answer; with `detail` (the operator), why not, and each
    business's QuickBooks connection too."""
    report: dict[str, Any] = {}
    healthy = True
    rows: list[Any] = []
    try:
        async with oodaloo.sessions() as session:
            await session.execute(text("SELECT 1"))
            if detail:
                rows = list(
                    (
                        await session.execute(
                            select(Business.id, Business.name, Business.realm_id, QBOConnection.status,
                                   QBOConnection.status_reason)
                            .outerjoin(QBOConnection, QBOConnection.business_id == Business.id)
                            .order_by(Business.id)
                        )
                    ).all()
                )
        report["database"] = {"ok": True}
    except (OSError, SQLAlchemyError) as exc:
        healthy = False
        logger.warning("health: the database does not answer: %s: %s", type(exc).__name__, exc)
        report["database"] = {"ok": False}
        if detail:
            report["database"]["error"] = f"{type(exc).__name__}: {exc}"
    backend = oodaloo.infra.backend
    if isinstance(backend, RedisBackend):
        try:
            await backend.ping()
            # Slack work handed off and not yet done by `oodaloo worker`, and the workers taking it.
            report["redis"] = {"ok": True, "slack_work": await backlog(backend)}
        except ConnectionError as exc:
            healthy = False
            logger.warning("health: Redis does not answer: %s", exc)
            report["redis"] = {"ok": False}
            if detail:
                report["redis"]["error"] = str(exc)
    else:
        report["redis"] = {"ok": True, "detail": "not configured: shared state lives in this process"}
    if detail:
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


def operator_allowed(operator_token: str | None, authorization: str | None) -> bool | None:
    """True for `Authorization: Bearer <OPERATOR_TOKEN>`, False for any other Authorization, None
    without one (or when no operator token is configured: then nobody is the operator)."""
    if not operator_token:
        return None
    if authorization is None:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8", "replace"), operator_token.encode())


#: What Bolt raises on a body it cannot read or route (JSONDecodeError and UnicodeDecodeError are
#: ValueErrors; a JSON nested too deep is a RecursionError).
_UNREADABLE = (ValueError, TypeError, AttributeError, KeyError, RecursionError)


def _malformed(problem: str) -> Response:
    logger.warning("refused a signed Slack request Bolt cannot read: %s", problem)
    return PlainTextResponse(
        f"Malformed request: {problem}; the body is not a Slack payload.\n", status_code=400
    )


def _unreadable(error: Exception) -> Response:
    return _malformed(f"{type(error).__name__}: {error}"[:300])


def create_web_app(
    oodaloo: Oodaloo,
    slack: SlackBot,
    *,
    extra_routes: Sequence[BaseRoute] = (),
) -> Starlette:
    handler = AsyncSlackRequestHandler(slack.app)

    signing_secret = oodaloo.settings.slack_signing_secret or ""

    async def slack_events(request: Request) -> Response:
        # The signature is checked before Bolt sees the request: Bolt parses the body first.
        body = await request.body()  # at most SLACK_BODY_LIMIT (BodyLimit)
        problem = slack_signature_problem(
            signing_secret,
            body,
            request.headers.get("x-slack-request-timestamp"),
            request.headers.get("x-slack-signature"),
        )
        if problem is not None:
            logger.warning("refused a Slack request: Invalid request signature (%s)", problem)
            return PlainTextResponse(f"Invalid Slack request signature: {problem}.\n", status_code=401)
        # Parsed once, by Bolt (a click's body carries the whole message it came from: parsing it
        # is most of what an ack costs), then checked, then routed.
        try:
            bolt_request = to_async_bolt_request(request, body)
        except _UNREADABLE as error:
            return _unreadable(error)
        problem = slack_payload_problem(bolt_request.body)
        if problem is not None:
            return _malformed(problem)
        try:
            return to_starlette_response(await slack.app.async_dispatch(bolt_request))
        except _UNREADABLE as error:
            return _unreadable(error)

    async def slack_pages(request: Request) -> Response:
        try:  # the install pages (GET)
            return await handler.handle(request)
        except _UNREADABLE as error:
            return _unreadable(error)

    async def healthz(request: Request) -> Response:
        allowed = operator_allowed(
            oodaloo.settings.operator_token, request.headers.get("authorization")
        )
        if allowed is False:
            return PlainTextResponse(
                "Not allowed: send Authorization: Bearer <OPERATOR_TOKEN> for the detail, "
                "or nothing for up/down.\n",
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
        healthy, report = await health(oodaloo, detail=bool(allowed))
        return JSONResponse(
            report, status_code=200 if healthy else 503, headers={"cache-control": "no-store"}
        )

    routes: list[BaseRoute] = [
        Route(SLACK_EVENTS_PATH, slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    if slack.installation_store is not None:
        routes += [
            Route(SLACK_INSTALL_PATH, slack_pages, methods=["GET"]),
            Route(SLACK_OAUTH_REDIRECT_PATH, slack_pages, methods=["GET"]),
        ]
    routes += list(extra_routes)
    limits = {SLACK_EVENTS_PATH: SLACK_BODY_LIMIT, WEBHOOKS_PATH: QBO_WEBHOOK_BODY_LIMIT}
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit, limits=limits, default=DEFAULT_BODY_LIMIT)],
    )
