"""The demo's Slack-like web page: one channel of the local Slack, seen and used by one person.

The page draws what the workspace holds (messages, the viewer's ephemeral messages, the viewer's open
modal) and turns what the person does into Slack's own requests to the bot through `SlackUserAgent`:
a slash command typed in the message box, a button clicked (after its confirm dialog), a modal
submitted. So the demo runs the bot's production path: signed requests in, Web API calls out.

Beside the channel: the app's Home tab (Slack's `app_home_opened` event, the view the app
publishes with `views.publish`, its buttons clicked as Slack sends them), a person switcher (the
page acts as any person of the workspace, so two approvers can approve one bill), a switch for the
QuickBooks sandbox's faults with a live log of what the app did about them, and a mailbox with the
emails the demo sent (the switch, the log and the mailbox are wired by the demo; each may be
absent).

The JSON routes answer only JSON bodies (`application/json`), so another web page open in the same
browser cannot post to them with a plain form.
"""

from __future__ import annotations

import dataclasses
import html
import importlib.resources
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from slack_sandbox.user import Delivery, SlackUserAgent
from slack_sandbox.workspace import Ephemeral, Message, SlackError, View, Workspace

#: The page's files, inside this package (the wheel carries them as package data).
STATIC_DIR = Path(str(importlib.resources.files("slack_sandbox") / "static"))

#: The page's Content-Security-Policy: only its own script runs; mail bodies sit in a sandboxed frame.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-src 'self'; object-src 'none'; form-action 'none'"
)


class FaultSwitch(Protocol):
    """Turns the QuickBooks sandbox's injected faults (throttling, 503s, lost responses) on or off."""

    def enabled(self) -> bool: ...

    def set(self, on: bool) -> None: ...


class Mailbox(Protocol):
    """The emails the demo sent, as a local SMTP server received them."""

    def messages(self) -> list[dict[str, Any]]:
        """Each {id, from, to, subject, date, text, html}."""
        ...


class ActivityFeed(Protocol):
    """What the app did about QuickBooks' faults (retried, deduplicated, reconciled), for the log."""

    async def entries(self) -> list[dict[str, Any]]:
        """Newest first, each {at (ISO 8601), kind, text}."""
        ...


class PageError(Exception):
    """A request the page cannot carry out; `status` and the message go back to the browser."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# How the value a person picked in a modal input becomes the `state.values` entry Slack sends.
_TEXT_INPUTS = {
    "plain_text_input",
    "number_input",
    "email_text_input",
    "url_text_input",
}
_SINGLE_PICKS = {
    "timepicker": "selected_time",
    "datepicker": "selected_date",
    "users_select": "selected_user",
    "conversations_select": "selected_conversation",
    "channels_select": "selected_channel",
}
_MULTI_PICKS = {
    "multi_users_select": "selected_users",
    "multi_conversations_select": "selected_conversations",
    "multi_channels_select": "selected_channels",
}


def slack_input_value(element: dict[str, Any], raw: Any) -> dict[str, Any]:
    """The Slack-shaped state of one modal input from what the page sends (a string, a list or None).

    Select options come back as the view's own option objects, as Slack sends them.
    """
    if isinstance(raw, dict):
        return raw  # already Slack-shaped
    kind = str(element.get("type", ""))
    picked = (
        [str(v) for v in raw]
        if isinstance(raw, list)
        else ([] if raw in (None, "") else [str(raw)])
    )
    if kind in _TEXT_INPUTS:
        return {"value": picked[0] if picked else None}
    if kind in _SINGLE_PICKS:
        return {_SINGLE_PICKS[kind]: picked[0] if picked else None}
    if kind in _MULTI_PICKS:
        return {_MULTI_PICKS[kind]: picked}
    options = _options(element)
    chosen = [options[v] for v in picked if v in options]
    unknown = [v for v in picked if v not in options]
    if unknown:
        raise PageError(
            400, f"{unknown} are not options of the {kind} {element.get('action_id')!r}"
        )
    if kind in ("static_select", "radio_buttons", "external_select"):
        return {"selected_option": chosen[0] if chosen else None}
    if kind in ("multi_static_select", "checkboxes", "multi_external_select"):
        return {"selected_options": chosen}
    raise PageError(400, f"the page cannot fill a {kind!r} input")


def _options(element: dict[str, Any]) -> dict[str, dict[str, Any]]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options += group.get("options", [])
    return {str(o.get("value")): o for o in options if isinstance(o, dict)}


def view_submission_values(view: View, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{block_id: {action_id: raw}} from the page as the {block_id: {action_id: state}} Slack sends."""
    inputs = {
        str(b.get("block_id")): b["element"]
        for b in view.blocks
        if b.get("type") == "input" and isinstance(b.get("element"), dict)
    }
    out: dict[str, dict[str, Any]] = {}
    for block_id, by_action in values.items():
        element = inputs.get(block_id)
        if element is None or not isinstance(by_action, dict):
            raise PageError(400, f"the modal has no input block {block_id!r}")
        out[block_id] = {
            str(action_id): slack_input_value(element, raw) for action_id, raw in by_action.items()
        }
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _mail_summary(mail: dict[str, Any]) -> dict[str, Any]:
    return {key: _jsonable(mail.get(key)) for key in ("id", "from", "to", "subject", "date")}


def _escape_typed(text: str) -> str:
    """What Slack does to a message a person types: `&`, `<` and `>` become entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Page:
    def __init__(
        self,
        workspace: Workspace,
        agent: SlackUserAgent,
        *,
        viewer_user_id: str,
        channel_id: str,
        faults: FaultSwitch | None,
        mailbox: Mailbox | None,
        title: str,
        roles: Mapping[str, str] | None = None,
        activity: ActivityFeed | None = None,
    ) -> None:
        viewer = workspace.user(viewer_user_id)
        if viewer is None or viewer_user_id == workspace.bot_user_id:
            raise ValueError(
                f"the page's viewer {viewer_user_id!r} is not a person in the workspace; "
                f"choose one of {[u.id for u in workspace.users()]}"
            )
        channel = workspace.channel(channel_id)
        if channel is None:
            raise ValueError(
                f"the page's channel {channel_id!r} is not in the workspace; "
                f"choose one of {[c.id for c in workspace.channels()]}"
            )
        self.workspace = workspace
        self.agent = agent
        self.viewer = viewer
        self.channel = channel
        self.faults = faults
        self.mailbox = mailbox
        self.title = title
        #: What each person is to the app ("owner, approver"), shown in the person switcher.
        self.roles = dict(roles or {})
        self.activity = activity
        template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        self.html = template.replace("{{title}}", html.escape(title))
        #: Field errors the bot answered for a modal (response_action "errors"), by view id.
        self.view_errors: dict[str, dict[str, str]] = {}

    # -- the page -------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return HTMLResponse(self.html, headers=_page_headers())

    async def state(self, request: Request) -> Response:
        return _json(self.snapshot())

    def snapshot(self) -> dict[str, Any]:
        """What the page draws: the channel, its people, messages, ephemerals, the modal, the switches."""
        ws = self.workspace
        people = {u.id: u for u in ws.users()}
        bot = ws.user(ws.bot_user_id)
        messages = [self._message(m) for m in ws.messages(self.channel.id)]
        ephemerals = [
            {"ts": e.ts, "text": e.text, "blocks": e.blocks, "replaced": e.replaced}
            for e in ws.ephemerals(user=self.viewer.id, channel=self.channel.id)
        ]
        views = ws.open_views(self.viewer.id)
        home = ws.home(self.viewer.id)
        return {
            "version": ws.version,
            "title": self.title,
            "team": {"id": ws.team_id, "name": ws.team_name},
            "channel": {"id": self.channel.id, "name": self.channel.name},
            "channels": [
                {"id": c.id, "name": c.name} for c in ws.channels() if not c.id.startswith("D")
            ],
            "viewer": {
                "id": self.viewer.id,
                "name": self.viewer.name,
                "real_name": self.viewer.real_name,
            },
            "bot": {"id": ws.bot_user_id, "name": bot.name if bot else ws.config.bot_name},
            "users": [
                {"id": u.id, "name": u.name, "real_name": u.real_name, "role": self.roles.get(u.id)}
                for u in people.values()
            ],
            "messages": messages,
            "home": None if home is None else {"id": home.id, "hash": home.hash, "blocks": home.blocks},
            "ephemerals": ephemerals,
            "view": self._view(views[-1], len(views)) if views else None,
            "faults": None if self.faults is None else self.faults.enabled(),
            "mail_count": None if self.mailbox is None else len(self.mailbox.messages()),
            "activity": self.activity is not None,
        }

    def _message(self, message: Message) -> dict[str, Any]:
        author = self.workspace.user(message.user)
        if author is None:
            shown_as = message.user
        else:
            shown_as = author.name if message.is_bot else author.real_name or author.name
        return {
            "ts": message.ts,
            "user": message.user,
            "user_name": shown_as,
            "is_bot": message.is_bot,
            "text": message.text,
            "blocks": message.blocks,
            "edited": message.edited,
            "thread_ts": message.thread_ts,
        }

    def _view(self, view: View, depth: int) -> dict[str, Any]:
        return {
            "id": view.id,
            "hash": view.hash,
            "title": view.title,
            "submit": view.submit,
            "close": view.close,
            "blocks": view.blocks,
            "depth": depth,
            "errors": self.view_errors.get(view.id, {}),
        }

    # -- what the person does -------------------------------------------------------------------

    async def command(self, request: Request) -> Response:
        body = await _body(request)
        text = str(body.get("text") or "").strip()
        if not text:
            raise PageError(400, "type a message or a command such as /runway")
        if not text.startswith("/"):
            posted = self.workspace.post_message(
                self.channel.id, _escape_typed(text), user=self.viewer.id
            )
            return _json({"ok": True, "posted": posted.ts})
        command, _, arguments = text.partition(" ")
        delivery = await self._send(
            command,
            self.agent.slash_command(self.viewer.id, self.channel.id, command, arguments.strip()),
        )
        shown = delivery.shown.ts if delivery.shown is not None else None
        return _json({**self._outcome(command, delivery), "shown": shown})

    async def click(self, request: Request) -> Response:
        """A button or menu in a message (by `ts`, `ephemeral`) or in the open modal (by `view_id`);
        `element` is the element as the page drew it."""
        body = await _body(request)
        action_id = str(body.get("action_id") or "")
        if not action_id:
            raise PageError(400, "a click names the element it clicked (action_id)")
        target = self._click_target(body)
        block_id = body.get("block_id")
        value = body.get("value")
        seen = body.get("element")
        if isinstance(seen, dict) and isinstance(target, Message | Ephemeral | View):
            # The element as the page drew it: an update may have removed it from the message
            # (or the Home tab) since, and the click is then delivered from the copy the person
            # saw.
            drawn = {"type": "actions", "block_id": str(block_id or ""), "elements": [seen]}
            target = dataclasses.replace(target, blocks=[drawn])
        try:
            delivery = await self._send(
                "the button",
                self.agent.click(
                    self.viewer.id,
                    target,
                    action_id,
                    block_id=None if block_id is None else str(block_id),
                    value=None if value is None else str(value),
                ),
            )
        except PermissionError as refused:
            raise PageError(403, str(refused)) from refused
        except LookupError as missing:
            raise PageError(404, str(missing)) from missing
        return _json(self._outcome("the button", delivery))

    def _click_target(self, body: dict[str, Any]) -> Message | Ephemeral | View:
        if body.get("view_id"):
            view = self.workspace.view(str(body["view_id"]))
            if view is None or not view.is_open or view.user != self.viewer.id:
                raise PageError(404, "that modal is closed; open it again")
            return view
        ts = str(body.get("ts") or "")
        if not ts:
            raise PageError(400, "a click names its message (ts) or its modal (view_id)")
        target: Message | Ephemeral | None = (
            self.workspace.ephemeral(ts)
            if body.get("ephemeral")
            else self.workspace.message(self.channel.id, ts)
        )
        if target is None:
            raise PageError(404, "that message is gone; the page will catch up in a moment")
        return target

    async def switch_person(self, request: Request) -> Response:
        """The page acts as another person of the workspace from now on (their ephemeral
        messages, modals and Home tab)."""
        body = await _body(request)
        user_id = str(body.get("user_id") or "")
        person = self.workspace.user(user_id)
        if person is None or user_id == self.workspace.bot_user_id:
            people = [u.id for u in self.workspace.users()]
            raise PageError(404, f"no person {user_id!r} in the workspace; choose one of {people}")
        self.viewer = person
        return _json({"ok": True, "viewer": person.id})

    async def open_home(self, request: Request) -> Response:
        """The person opens the app's Home tab: Slack sends the app `app_home_opened`."""
        home = self.workspace.home(self.viewer.id)
        event: dict[str, Any] = {
            "type": "app_home_opened",
            "user": self.viewer.id,
            "channel": "D" + self.viewer.id[1:],
            "tab": "home",
        }
        if home is not None:
            event["view"] = home.to_slack(
                self.workspace.team_id, self.workspace.app_id, self.workspace.bot_id
            )
        delivery = await self._send("the Home tab", self.agent.event(event))
        return _json(self._outcome("the Home tab", delivery))

    async def activity_log(self, request: Request) -> Response:
        entries = await self.activity.entries() if self.activity is not None else []
        return _json({"entries": [{k: _jsonable(v) for k, v in e.items()} for e in entries]})

    async def submit(self, request: Request) -> Response:
        body = await _body(request)
        view_id = str(body.get("view_id") or "")
        view = self.workspace.view(view_id)
        if view is None or not view.is_open or view.user != self.viewer.id:
            raise PageError(404, "that modal is closed; open it again")
        raw = body.get("values") or {}
        if not isinstance(raw, dict):
            raise PageError(400, "values must be {block_id: {action_id: value}}")
        values = view_submission_values(view, raw)
        try:
            delivery = await self._send(
                "the form", self.agent.submit_view(self.viewer.id, view_id, values)
            )
        except LookupError as missing:
            raise PageError(404, str(missing)) from missing
        answer = delivery.json if isinstance(delivery.json, dict) else {}
        if delivery.status == 200 and answer.get("response_action") == "errors":
            errors = {str(k): str(v) for k, v in (answer.get("errors") or {}).items()}
            self.view_errors[view_id] = errors
            return _json({"ok": False, "response_action": "errors", "errors": errors})
        self.view_errors.pop(view_id, None)
        if delivery.status != 200:
            # Slack's own words when an app fails a submission: the modal stays open.
            return _json(
                {
                    "ok": False,
                    "notice": "We had some trouble connecting. Try again?",
                    "status": delivery.status,
                }
            )
        return _json(
            {
                **self._outcome("the form", delivery),
                "response_action": answer.get("response_action"),
            }
        )

    async def close(self, request: Request) -> Response:
        body = await _body(request)
        view_id = str(body.get("view_id") or "")
        view = self.workspace.view(view_id)
        if view is None or view.user != self.viewer.id:
            raise PageError(404, f"no modal {view_id!r} is open for you")
        try:
            self.workspace.close_view(view_id)
        except SlackError as gone:
            raise PageError(404, "that modal is already closed") from gone
        self.view_errors.pop(view_id, None)
        return _json({"ok": True})

    async def set_faults(self, request: Request) -> Response:
        if self.faults is None:
            raise PageError(404, "this demo has no QuickBooks fault switch")
        body = await _body(request)
        on = body.get("on")
        if not isinstance(on, bool):
            raise PageError(400, 'send {"on": true} or {"on": false}')
        self.faults.set(on)
        return _json({"ok": True, "faults": self.faults.enabled()})

    async def mail(self, request: Request) -> Response:
        mails = self.mailbox.messages() if self.mailbox is not None else []
        return _json({"messages": [_mail_summary(m) for m in reversed(mails)]})

    async def mail_one(self, request: Request) -> Response:
        wanted = request.path_params["mail_id"]
        mails = self.mailbox.messages() if self.mailbox is not None else []
        found = next((m for m in mails if str(m.get("id")) == wanted), None)
        if found is None:
            raise PageError(404, f"no email {wanted!r} in the mailbox")
        return _json(
            {
                **_mail_summary(found),
                "text": _jsonable(found.get("text")),
                "html": _jsonable(found.get("html")),
            }
        )

    # -- talking to the bot ---------------------------------------------------------------------

    async def _send(self, what: str, request: Awaitable[Delivery]) -> Delivery:
        try:
            delivery = await request
        except httpx.HTTPError as unreachable:
            raise PageError(
                502,
                f"{what} could not reach the app at {self.agent.request_url} "
                f"({type(unreachable).__name__}); is the bot running?",
            ) from unreachable
        return delivery

    def _outcome(self, what: str, delivery: Delivery) -> dict[str, Any]:
        """The bot's answer as the page reports it; `notice` is what Slack would tell the person."""
        if delivery.status != 200:
            # Slack says this for an app that answers with an error status.
            return {
                "ok": False,
                "status": delivery.status,
                "notice": f'{what} failed with the error "dispatch_failed" '
                f"(the app answered HTTP {delivery.status})",
            }
        if delivery.answer_error == "operation_timeout":
            # The app took longer than Slack's 3 seconds to answer; Slack says so in these words.
            return {
                "ok": False,
                "status": delivery.status,
                "notice": f'{what} failed with the error "operation_timeout" '
                "(the app answered after Slack's 3 seconds)",
            }
        if delivery.answer_error is not None:
            return {
                "ok": False,
                "status": delivery.status,
                "notice": f"Slack could not show the app's answer: {delivery.answer_error}",
            }
        return {"ok": True, "status": delivery.status}


async def _body(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise PageError(415, "the page's routes take a JSON body (Content-Type: application/json)")
    try:
        body = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError as bad:
        raise PageError(400, f"the body is not JSON: {bad}") from bad
    if not isinstance(body, dict):
        raise PageError(400, "the body must be a JSON object")
    return body


def _json(content: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers={"cache-control": "no-store"})


def _page_headers() -> dict[str, str]:
    return {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
    }


def _guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """The handler with PageError and SlackError turned into JSON {ok: false, error} answers."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except PageError as problem:
            return _json({"ok": False, "error": problem.message}, problem.status)
        except SlackError as refused:
            return _json({"ok": False, "error": str(refused)}, 400)

    return endpoint


def page_routes(
    workspace: Workspace,
    agent: SlackUserAgent,
    *,
    viewer_user_id: str,
    channel_id: str,
    faults: FaultSwitch | None = None,
    mailbox: Mailbox | None = None,
    title: str = "Oodaloo demo",
    roles: Mapping[str, str] | None = None,
    activity: ActivityFeed | None = None,
) -> list[BaseRoute]:
    """The page and its JSON routes, to mount at the root of the local Slack's server.

    `viewer_user_id` is the person using the page first (the switcher picks another);
    `channel_id` the channel it shows; `roles` what each person is to the app, shown beside their
    name. Raises ValueError when the viewer or the channel is not in the workspace.
    """
    page = _Page(
        workspace,
        agent,
        viewer_user_id=viewer_user_id,
        channel_id=channel_id,
        faults=faults,
        mailbox=mailbox,
        title=title,
        roles=roles,
        activity=activity,
    )
    return [
        Route("/", page.index, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="page-static"),
        Route("/_page/state", _guarded(page.state), methods=["GET"]),
        Route("/_page/command", _guarded(page.command), methods=["POST"]),
        Route("/_page/click", _guarded(page.click), methods=["POST"]),
        Route("/_page/submit", _guarded(page.submit), methods=["POST"]),
        Route("/_page/close", _guarded(page.close), methods=["POST"]),
        Route("/_page/faults", _guarded(page.set_faults), methods=["POST"]),
        Route("/_page/viewer", _guarded(page.switch_person), methods=["POST"]),
        Route("/_page/home", _guarded(page.open_home), methods=["POST"]),
        Route("/_page/activity", _guarded(page.activity_log), methods=["GET"]),
        Route("/_page/mail", _guarded(page.mail), methods=["GET"]),
        Route("/_page/mail/{mail_id}", _guarded(page.mail_one), methods=["GET"]),
    ]
