"""Slack's Web API on `POST /api/{method}`: the methods Oodaloo calls, with Slack's errors and limits.

Bodies may be form-encoded (blocks and views then arrive as JSON strings, as slack_sdk sends them) or
JSON; query parameters count too. Like Slack, a refused call is HTTP 200 with {"ok": false, "error"}
except a rate-limited one: HTTP 429 with Retry-After. `apps.connections.open` takes the app-level
token (xapp-) and answers a Socket Mode URL (socket_mode.py); the other methods refuse that token.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from slack_sandbox.blocks import check_message, check_view, parse_json_field
from slack_sandbox.ratelimit import ChannelRateLimit
from slack_sandbox.workspace import SlackError, Workspace


class RateLimited(SlackError):
    def __init__(self, retry_after: int, channel: str) -> None:
        super().__init__(
            "ratelimited",
            status=429,
            detail=f"too many messages to {channel} or to this workspace; retry in {retry_after}s",
        )
        self.retry_after = retry_after


@dataclass
class Call:
    """One incoming call: its parameters, the token it carries and the sandbox it reaches."""

    workspace: Workspace
    limit: ChannelRateLimit
    params: dict[str, Any]
    token: str | None
    basic_auth: tuple[str, str] | None

    def arg(self, name: str, default: str = "") -> str:
        value = self.params.get(name, default)
        return value if isinstance(value, str) else str(value)

    def optional(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value is None else str(value)


Handler = Callable[[Call], dict[str, Any]]


async def read_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    raw = await request.body()
    if not raw:
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SlackError("invalid_json", detail=f"the JSON body does not parse: {exc}") from exc
        if not isinstance(body, dict):
            raise SlackError("invalid_json", detail="the JSON body must be an object")
        params.update(body)
    elif content_type in ("application/x-www-form-urlencoded", ""):
        params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    else:
        raise SlackError(
            "invalid_form_data", detail=f"the sandbox reads JSON or form bodies, not {content_type}"
        )
    return params


def _credentials(
    request: Request, params: dict[str, Any]
) -> tuple[str | None, tuple[str, str] | None]:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        return None, (client_id, secret)
    token = params.pop("token", None)
    return (str(token) if token else None), None


def _authenticate(call: Call, *, allow_user_token: bool) -> str:
    """The caller's user id: the bot user for the bot token, the person for a user token."""
    if not call.token:
        raise SlackError("not_authed", detail="no token: send Authorization: Bearer xoxb-...")
    ws = call.workspace
    if call.token == ws.bot_token:
        return ws.bot_user_id
    if call.token == ws.config.app_token:
        raise SlackError(
            "not_allowed_token_type",
            detail="the app-level token (xapp-) only opens Socket Mode; send the bot token",
        )
    person = ws.user_for_token(call.token)
    if person is not None:
        if not allow_user_token:
            raise SlackError("not_allowed_token_type", detail="this method takes the bot token")
        return person
    raise SlackError("invalid_auth", detail="the token is not one this workspace issued")


# -- methods --------------------------------------------------------------------------------


def auth_test(call: Call) -> dict[str, Any]:
    ws = call.workspace
    user_id = _authenticate(call, allow_user_token=True)
    user = ws.user(user_id)
    out: dict[str, Any] = {
        "ok": True,
        "url": f"https://{ws.team_domain}.slack.com/",
        "team": ws.team_name,
        "user": user.name if user else user_id,
        "team_id": ws.team_id,
        "user_id": user_id,
        "is_enterprise_install": False,
    }
    if user_id == ws.bot_user_id:
        out["bot_id"] = ws.bot_id
    return out


def chat_post_message(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    ws = call.workspace
    spec = ws.channel(call.arg("channel"))
    if spec is None:
        raise SlackError(
            "channel_not_found", detail=f"no channel {call.arg('channel')!r} in this workspace"
        )
    text = call.optional("text")
    blocks = check_message(text, call.params.get("blocks"))
    attachments = parse_json_field(call.params.get("attachments"), "attachments")
    retry_after = call.limit.acquire(spec.id)
    if retry_after is not None:
        raise RateLimited(retry_after, spec.id)
    message = ws.post_message(
        spec.id,
        text or "",
        blocks,
        attachments=attachments or None,
        thread_ts=call.optional("thread_ts"),
    )
    return {
        "ok": True,
        "channel": message.channel,
        "ts": message.ts,
        "message": message.to_slack(ws.team_id),
    }


def chat_update(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    ws = call.workspace
    text = call.optional("text")
    raw_blocks = call.params.get("blocks")
    attachments = parse_json_field(call.params.get("attachments"), "attachments")
    if text is None and raw_blocks is None and attachments is None:
        raise SlackError("no_text", detail="chat.update needs text, blocks or attachments")
    checked = check_message(text, raw_blocks, require_content=False)
    blocks = None if raw_blocks is None else checked  # omitted blocks are kept, [] removes them
    message = ws.update_message(
        call.arg("channel"), call.arg("ts"), text=text, blocks=blocks, attachments=attachments
    )
    return {
        "ok": True,
        "channel": message.channel,
        "ts": message.ts,
        "text": message.text,
        "message": message.to_slack(ws.team_id),
    }


def chat_post_ephemeral(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    text = call.optional("text")
    blocks = check_message(text, call.params.get("blocks"))
    ephemeral = call.workspace.post_ephemeral(
        call.arg("channel"), call.arg("user"), text or "", blocks
    )
    return {"ok": True, "message_ts": ephemeral.ts}


def chat_delete(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    ws = call.workspace
    spec = ws.channel(call.arg("channel"))
    ws.delete_message(call.arg("channel"), call.arg("ts"))
    return {"ok": True, "channel": spec.id if spec else call.arg("channel"), "ts": call.arg("ts")}


def _view_response(call: Call, view_id: str) -> dict[str, Any]:
    ws = call.workspace
    view = ws.view(view_id)
    assert view is not None  # just opened or updated under the workspace lock
    return {"ok": True, "view": view.to_slack(ws.team_id, ws.app_id, ws.bot_id)}


def views_open(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    view = check_view(call.params.get("view"))
    if not call.arg("trigger_id"):
        raise SlackError(
            "invalid_arguments", detail="views.open needs a trigger_id from the user's interaction"
        )
    trigger = call.workspace.exchange_trigger(call.arg("trigger_id"))
    return _view_response(call, call.workspace.open_view(trigger.user, view).id)


def views_push(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    view = check_view(call.params.get("view"))
    trigger = call.workspace.exchange_trigger(call.arg("trigger_id"))
    if trigger.view_id is None:
        raise SlackError(
            "invalid_trigger_id",
            detail="views.push needs a trigger_id from an interaction inside an open modal",
        )
    return _view_response(
        call, call.workspace.open_view(trigger.user, view, on_top_of=trigger.view_id).id
    )


def views_update(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=False)
    ws = call.workspace
    view = check_view(call.params.get("view"))
    view_id = call.arg("view_id")
    if not view_id and call.arg("external_id"):
        found = ws.view_by_external_id(call.arg("external_id"))
        view_id = found.id if found else ""
    if not view_id:
        raise SlackError("not_found", detail="no view with that view_id or external_id")
    updated = ws.update_view(view_id, view, expected_hash=call.optional("hash"))
    return _view_response(call, updated.id)


def views_publish(call: Call) -> dict[str, Any]:
    """A person's Home tab: a view of type "home" (at most 100 blocks), for a user of the team."""
    _authenticate(call, allow_user_token=False)
    if not call.arg("user_id"):
        raise SlackError("invalid_arguments", detail="views.publish needs the user_id whose Home it is")
    view = check_view(call.params.get("view"), kind="home")
    published = call.workspace.publish_home(
        call.arg("user_id"), view, expected_hash=call.optional("hash")
    )
    return _view_response(call, published.id)


def users_info(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=True)
    ws = call.workspace
    user = ws.user(call.arg("user"))
    if user is None:
        raise SlackError("user_not_found", detail=f"no user {call.arg('user')!r} in this workspace")
    is_bot = user.id == ws.bot_user_id
    return {
        "ok": True,
        "user": {
            "id": user.id,
            "team_id": ws.team_id,
            "name": user.name,
            "real_name": user.real_name,
            "deleted": False,
            "tz": user.tz,
            "is_admin": user.is_admin,
            "is_bot": is_bot,
            "is_app_user": False,
            "profile": {
                "real_name": user.real_name,
                "display_name": user.name,
                **({"email": user.email} if user.email else {}),
                **({"bot_id": ws.bot_id} if is_bot else {}),
                "team": ws.team_id,
            },
        },
    }


def conversations_info(call: Call) -> dict[str, Any]:
    _authenticate(call, allow_user_token=True)
    ws = call.workspace
    spec = ws.channel(call.arg("channel"))
    if spec is None:
        raise SlackError(
            "channel_not_found", detail=f"no channel {call.arg('channel')!r} in this workspace"
        )
    is_im = spec.id.startswith("D")
    channel: dict[str, Any] = {
        "id": spec.id,
        "is_channel": not is_im and not spec.is_private,
        "is_group": not is_im and spec.is_private,
        "is_im": is_im,
        "is_private": spec.is_private,
        "is_archived": False,
        "is_member": ws.is_member(spec, ws.bot_user_id),
        "context_team_id": ws.team_id,
    }
    if is_im:
        channel["user"] = spec.name
    else:
        channel.update(name=spec.name, name_normalized=spec.name, is_general=spec.name == "general")
    return {"ok": True, "channel": channel}


def apps_connections_open(call: Call) -> dict[str, Any]:
    """A one-time websocket URL for Socket Mode; only the app-level token (xapp-) may ask."""
    ws = call.workspace
    if not call.token:
        raise SlackError("not_authed", detail="no token: send Authorization: Bearer xapp-...")
    if call.token != ws.config.app_token:
        if call.token == ws.bot_token or ws.user_for_token(call.token) is not None:
            raise SlackError(
                "not_allowed_token_type",
                detail="apps.connections.open takes the app-level token (xapp-), not a bot or user token",
            )
        raise SlackError("invalid_auth", detail="the token is not an app-level token of this app")
    return {"ok": True, "url": ws.socket_mode.issue_url(ws.base_url)}


def oauth_v2_access(call: Call) -> dict[str, Any]:
    ws = call.workspace
    client_id, secret = call.basic_auth or (call.arg("client_id"), call.arg("client_secret"))
    if client_id != ws.config.client_id:
        raise SlackError("invalid_client_id", detail="not this app's client_id")
    if secret != ws.config.client_secret:
        raise SlackError("bad_client_secret", detail="not this app's client_secret")
    if call.arg("grant_type") == "refresh_token":
        raise SlackError(
            "invalid_refresh_token", detail="this workspace's app does not rotate tokens"
        )
    return ws.exchange_oauth_code(call.arg("code"), redirect_uri=call.optional("redirect_uri"))


METHODS: dict[str, Handler] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.delete": chat_delete,
    "views.open": views_open,
    "views.push": views_push,
    "views.update": views_update,
    "views.publish": views_publish,
    "users.info": users_info,
    "conversations.info": conversations_info,
    "oauth.v2.access": oauth_v2_access,
    "apps.connections.open": apps_connections_open,
}


def _redacted(params: dict[str, Any]) -> dict[str, Any]:
    return {k: ("(redacted)" if k in ("client_secret", "token") else v) for k, v in params.items()}


def web_api_routes(workspace: Workspace, limit: ChannelRateLimit) -> list[Route]:
    scopes = ",".join(workspace.config.bot_scopes)

    async def endpoint(request: Request) -> JSONResponse:
        method = request.path_params["method"]
        params: dict[str, Any] = {}
        headers = {"x-oauth-scopes": scopes}
        try:
            params = await read_params(request)
            token, basic = _credentials(request, params)
            handler = METHODS.get(method)
            if handler is None:
                raise SlackError(
                    "unknown_method", status=404, detail=f"the sandbox does not implement {method}"
                )
            body = handler(Call(workspace, limit, params, token, basic))
            status = 200
        except SlackError as refusal:
            status = refusal.status
            body = {"ok": False, "error": refusal.error}
            if refusal.detail:
                body["response_metadata"] = {"messages": [f"[ERROR] {refusal.detail}"]}
                if refusal.error == "invalid_blocks":  # Slack lists each problem of the blocks
                    body["errors"] = refusal.detail.split("; ")
            if isinstance(refusal, RateLimited):
                headers["Retry-After"] = str(refusal.retry_after)
        workspace.record_call(
            method,
            _redacted(params),
            ok=bool(body.get("ok")),
            error=body.get("error"),
            status=status,
        )
        return JSONResponse(body, status_code=status, headers=headers)

    return [Route("/api/{method}", endpoint, methods=["GET", "POST"])]
