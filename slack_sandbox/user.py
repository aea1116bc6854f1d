"""The people of the workspace using the app: signed requests to the bot's request URL, as Slack sends them.

Slash commands and interactions are form-encoded (interactions as one `payload` field of JSON), events
are JSON; each carries `x-slack-request-timestamp` and a v0 HMAC-SHA256 `x-slack-signature` made by
slack_sdk's own SignatureVerifier. The timestamp is wall-clock time (what the bot's verifier compares
with), not the sandbox clock, so moving the sandbox clock ahead never makes a request look stale.

What Slack does with the bot's answer is applied too: a slash command's ack body is shown to the user
(or the channel), a view submission's `response_action` updates, pushes or closes the modal.

When the app's settings have Socket Mode on (`workspace.socket_mode.enabled`), the same requests go
over the app's websocket instead (socket_mode.py): the payload in an envelope, no signature, and the
ack's payload taking the place of the HTTP body. Every flow here works both ways; the workspace counts
deliveries per transport (`workspace.deliveries("http")`, `workspace.deliveries("socket")`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from slack_sdk.signature import SignatureVerifier

from slack_sandbox.blocks import check_message, check_view
from slack_sandbox.config import ChannelSpec, UserSpec
from slack_sandbox.view_state import response_urls_for, submitted_state
from slack_sandbox.workspace import (
    ACK_DEADLINE_SECONDS,
    Ephemeral,
    Message,
    SlackError,
    View,
    Workspace,
)

# As on Slack's requests to apps.
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


@dataclass(frozen=True)
class SignedRequest:
    """Exactly what went over the wire (the body is what the signature covers)."""

    kind: str  # "command", "interaction" or "event"
    body: str
    content_type: str
    headers: dict[str, str]


@dataclass
class Delivery:
    """One request to the bot and its answer, with the handles the interaction carried."""

    request: SignedRequest
    status: int
    text: str
    json: Any = None
    response_token: str | None = None
    response_url: str | None = None
    trigger_id: str | None = None
    #: What Slack showed from the ack body of a slash command (an ephemeral or a channel message).
    shown: Ephemeral | Message | None = None
    #: Why Slack could not use the bot's answer: bad blocks in an ack, a bad view in a
    #: response_action, or "operation_timeout" when the answer took longer than Slack's 3 seconds.
    answer_error: str | None = None
    #: An event delivery's `event_id` (the same on Slack's retries of it).
    event_id: str | None = None
    #: "http" (a signed request to the request URL) or "socket" (Socket Mode envelopes). Over the
    #: socket `status` is 200 once the app acknowledged, 0 when it never did.
    transport: str = "http"
    #: The Socket Mode envelopes sent for this delivery (Slack's retries included).
    envelopes: list[dict[str, Any]] = field(default_factory=list)


class SlackUserAgent:
    """Sends Slack's requests to the bot at `request_url` on behalf of the workspace's users.

    `transport`: httpx.ASGITransport(app=bot_app) for an in-process bot, None for a real URL.
    `signing_secret` / `timestamp` (here or per call) forge requests: a wrong secret, a stale time
    (over HTTP; Socket Mode carries no signature).
    `ack_deadline`: how long Slack waits for an answer (3 s); a later answer is dropped, as in Slack.
    """

    def __init__(
        self,
        workspace: Workspace,
        request_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        signing_secret: str | None = None,
        timeout: float = 10.0,
        ack_deadline: float = ACK_DEADLINE_SECONDS,
    ) -> None:
        self.workspace = workspace
        self.ack_deadline = ack_deadline
        self.request_url = request_url
        self.signing_secret = signing_secret or workspace.signing_secret
        self._client = httpx.AsyncClient(transport=transport, timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> SlackUserAgent:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- slash commands -------------------------------------------------------------------------

    async def slash_command(
        self,
        user_id: str,
        channel_id: str,
        command: str,
        text: str = "",
        *,
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        ws = self.workspace
        user = self._user(user_id)
        channel = self._channel(channel_id)
        issued = ws.issue_response_url(channel.id, user.id, awaiting_ack=True)
        response_url = ws.response_url_for(issued.token)
        trigger_id = ws.issue_trigger(user.id)
        fields = {
            "token": ws.config.verification_token,
            "team_id": ws.team_id,
            "team_domain": ws.team_domain,
            "channel_id": channel.id,
            "channel_name": "directmessage" if channel.id.startswith("D") else channel.name,
            "user_id": user.id,
            "user_name": user.name,
            "command": command,
            "text": text,
            "api_app_id": ws.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
        request = self._sign(
            "command",
            urlencode(fields),
            "application/x-www-form-urlencoded",
            signing_secret,
            timestamp,
        )
        try:
            delivery = await self._deliver(request)
            delivery.response_token, delivery.response_url = issued.token, response_url
            delivery.trigger_id = trigger_id
            if delivery.status == 200 and delivery.text.strip() and not delivery.answer_error:
                self._show_command_answer(delivery, channel.id, user.id, issued.token)
        finally:
            ws.ack_settled(issued.token)
        return delivery

    def _show_command_answer(self, delivery: Delivery, channel: str, user: str, token: str) -> None:
        answer = delivery.json if isinstance(delivery.json, dict) else {"text": delivery.text}
        ws = self.workspace
        try:
            text = str(answer.get("text") or "")
            blocks = check_message(text, answer.get("blocks"))
            shown: Ephemeral | Message
            if answer.get("response_type") == "in_channel":
                shown = ws.post_message(channel, text, blocks)
                ws.bind_response_url(token, message_ts=shown.ts, is_ephemeral=False)
            else:
                shown = ws.post_ephemeral(channel, user, text, blocks)
                ws.bind_response_url(token, message_ts=shown.ts, is_ephemeral=True)
            delivery.shown = shown
        except SlackError as refused:
            delivery.answer_error = refused.error

    # -- clicks ---------------------------------------------------------------------------------

    async def click(
        self,
        user_id: str,
        message: Message | Ephemeral | View,
        action_id: str,
        *,
        block_id: str | None = None,
        value: str | None = None,
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        """Clicks a button (or picks `value` in a select/overflow menu) in the message as it is now.

        `message` is the copy the person sees. When an update has removed the element since that
        copy was drawn (another person, or another tab, got there first), the click is delivered as
        Slack does: the action as the person made it, in the copy they saw, with the message as
        Slack holds it now; the app answers with how things stand.

        `message` may also be an open modal: the payload then carries the view instead of a channel
        and a response_url, and its trigger_id can push a modal on top (views.push).
        """
        ws = self.workspace
        user = self._user(user_id)
        if isinstance(message, View):
            return await self._click_in_view(
                user, message, action_id, block_id, value, signing_secret, timestamp
            )
        is_ephemeral = isinstance(message, Ephemeral)
        current: Message | Ephemeral | None = (
            ws.ephemeral(message.ts) if is_ephemeral else ws.message(message.channel, message.ts)
        )
        if current is None:
            raise LookupError(
                f"message {message.ts} in {message.channel} is no longer there to click"
            )
        if isinstance(current, Ephemeral) and current.user != user.id:
            raise PermissionError(
                f"{user.id} cannot see the ephemeral message {current.ts} shown to {current.user}"
            )
        try:
            found_block_id, element = _find_element(current.blocks, action_id, block_id, value)
        except NoSuchElement:
            found_block_id, element = _find_element(message.blocks, action_id, block_id, value)
        channel = self._channel(current.channel)
        issued = ws.issue_response_url(
            channel.id, user.id, message_ts=current.ts, is_ephemeral=is_ephemeral
        )
        response_url = ws.response_url_for(issued.token)
        trigger_id = ws.issue_trigger(user.id)
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": self._user_payload(user),
            "api_app_id": ws.app_id,
            "token": ws.config.verification_token,
            "container": {
                "type": "message",
                "message_ts": current.ts,
                "channel_id": channel.id,
                "is_ephemeral": is_ephemeral,
            },
            "trigger_id": trigger_id,
            "team": {"id": ws.team_id, "domain": ws.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {
                "id": channel.id,
                "name": "directmessage" if channel.id.startswith("D") else channel.name,
            },
        }
        if isinstance(current, Message):
            # Slack sends the message only for messages in the channel, never for ephemeral ones.
            payload["message"] = current.to_slack(ws.team_id)
        payload.update(
            state={"values": {}},
            response_url=response_url,
            actions=[_action(element, found_block_id, value, self._action_ts())],
        )
        request = self._sign(
            "interaction",
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            signing_secret,
            timestamp,
        )
        delivery = await self._deliver(request)
        delivery.response_token, delivery.response_url, delivery.trigger_id = (
            issued.token,
            response_url,
            trigger_id,
        )
        return delivery

    async def _click_in_view(
        self,
        user: UserSpec,
        view: View,
        action_id: str,
        block_id: str | None,
        value: str | None,
        signing_secret: str | None,
        timestamp: int | None,
    ) -> Delivery:
        ws = self.workspace
        current = ws.view(view.id)
        if current is None or not current.is_open or current.user != user.id:
            raise LookupError(f"{user.id} has no open modal {view.id}")
        try:
            found_block_id, element = _find_element(current.blocks, action_id, block_id, value)
        except NoSuchElement:
            # Republished since the person saw it (a Home tab follows every change): the click is
            # the one they made, on the copy they saw, as for a message.
            found_block_id, element = _find_element(view.blocks, action_id, block_id, value)
        trigger_id = ws.issue_trigger(user.id, view_id=current.id)
        payload = {
            "type": "block_actions",
            "user": self._user_payload(user),
            "api_app_id": ws.app_id,
            "token": ws.config.verification_token,
            "container": {"type": "view", "view_id": current.id},
            "trigger_id": trigger_id,
            "team": {"id": ws.team_id, "domain": ws.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "view": current.to_slack(ws.team_id, ws.app_id, ws.bot_id),
            "actions": [_action(element, found_block_id, value, self._action_ts())],
        }
        request = self._sign(
            "interaction",
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            signing_secret,
            timestamp,
        )
        delivery = await self._deliver(request)
        delivery.trigger_id = trigger_id
        return delivery

    # -- modals ---------------------------------------------------------------------------------

    async def submit_view(
        self,
        user_id: str,
        view_id: str,
        values: dict[str, dict[str, Any]] | None = None,
        *,
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        """Submits the modal with `values` {block_id: {action_id: value}}.

        A value is Slack's own entry ({"type": ..., "value": ...}) or plain: text, an option's
        value, a channel or user id, a list for multi-selects (see view_state.py). Inputs left out
        keep what the modal opened with, as in Slack. The ack's response_action is applied to the modal.
        """
        ws = self.workspace
        user = self._user(user_id)
        view = ws.view(view_id)
        if view is None or not view.is_open or view.user != user.id:
            raise LookupError(f"{user.id} has no open modal {view_id}")
        state = submitted_state(view, values or {})
        view = ws.set_view_state(view_id, state)
        response_urls = []
        for block_id, action_id, channel_id in response_urls_for(view, state):
            issued = ws.issue_response_url(channel_id, user.id)
            response_urls.append(
                {
                    "block_id": block_id,
                    "action_id": action_id,
                    "channel_id": issued.channel,
                    "response_url": ws.response_url_for(issued.token),
                }
            )
        trigger_id = ws.issue_trigger(user.id, view_id=view_id)
        payload = {
            "type": "view_submission",
            "team": {"id": ws.team_id, "domain": ws.team_domain},
            "user": self._user_payload(user),
            "api_app_id": ws.app_id,
            "token": ws.config.verification_token,
            "trigger_id": trigger_id,
            "view": view.to_slack(ws.team_id, ws.app_id, ws.bot_id),
            "response_urls": response_urls,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        request = self._sign(
            "interaction",
            urlencode({"payload": json.dumps(payload)}),
            "application/x-www-form-urlencoded",
            signing_secret,
            timestamp,
        )
        delivery = await self._deliver(request)
        delivery.trigger_id = trigger_id
        if delivery.status == 200 and not delivery.answer_error:
            self._apply_response_action(delivery, view)
        return delivery

    def _apply_response_action(self, delivery: Delivery, view: View) -> None:
        ws = self.workspace
        answer = delivery.json if isinstance(delivery.json, dict) else {}
        action = answer.get("response_action")
        try:
            if action == "errors":
                return  # the modal stays open with the errors under its inputs
            if action == "update":
                ws.update_view(view.id, check_view(answer.get("view")))
            elif action == "push":
                ws.open_view(view.user, check_view(answer.get("view")), on_top_of=view.id)
            elif action == "clear":
                ws.close_view(view.id, whole_stack=True)
            else:
                ws.close_view(view.id)
        except SlackError as refused:
            delivery.answer_error = refused.error

    # -- events ---------------------------------------------------------------------------------

    async def event(
        self,
        event: dict[str, Any],
        *,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        signing_secret: str | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        """An Events API `event_callback`; `retry_num` marks it as Slack's n-th retry of the delivery."""
        ws = self.workspace
        now = time.time()
        envelope = {
            "token": ws.config.verification_token,
            "team_id": ws.team_id,
            "api_app_id": ws.app_id,
            "event": {"event_ts": f"{now:.6f}", **event},
            "type": "event_callback",
            "event_id": "Ev" + secrets.token_hex(5).upper(),
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": ws.team_id,
                    "user_id": ws.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + secrets.token_urlsafe(24),
        }
        request = self._sign(
            "event", json.dumps(envelope), "application/json", signing_secret, timestamp
        )
        if retry_num is not None:
            request = _with_retry(request, retry_num, retry_reason)
        delivery = await self._deliver(request)
        delivery.event_id = str(envelope["event_id"])
        return delivery

    async def redeliver(
        self,
        previous: Delivery | SignedRequest,
        *,
        retry_num: int = 1,
        retry_reason: str = "http_timeout",
    ) -> Delivery:
        """Slack's retry: the very same body again, freshly signed, with x-slack-retry-* headers."""
        old = previous.request if isinstance(previous, Delivery) else previous
        request = _with_retry(
            self._sign(old.kind, old.body, old.content_type, None, None), retry_num, retry_reason
        )
        delivery = await self._deliver(request)
        if isinstance(previous, Delivery):
            delivery.response_token = previous.response_token
            delivery.response_url = previous.response_url
            delivery.trigger_id = previous.trigger_id
            delivery.event_id = previous.event_id
        return delivery

    # -- plumbing -------------------------------------------------------------------------------

    def _sign(
        self,
        kind: str,
        body: str,
        content_type: str,
        signing_secret: str | None,
        timestamp: int | None,
    ) -> SignedRequest:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = SignatureVerifier(signing_secret or self.signing_secret).generate_signature(
            timestamp=stamp, body=body
        )
        if signature is None:  # only when timestamp or body is missing, which cannot happen here
            raise ValueError("slack_sdk made no signature for this request")
        headers = {
            "content-type": content_type,
            "user-agent": USER_AGENT,
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": signature,
        }
        return SignedRequest(kind, body, content_type, headers)

    async def _deliver(self, request: SignedRequest) -> Delivery:
        if self.workspace.socket_mode.enabled:
            return await self._deliver_over_socket(request)
        self.workspace.record_delivery("http", request.kind)
        response = await self._client.post(
            self.request_url, content=request.body.encode("utf-8"), headers=request.headers
        )
        parsed: Any = None
        if (
            response.headers.get("content-type", "").startswith("application/json")
            and response.content
        ):
            parsed = response.json()
        delivery = Delivery(request, response.status_code, response.text, parsed)
        if response.elapsed.total_seconds() > self.ack_deadline:
            # Slack has given up by now: the user saw "operation_timeout" and the answer is dropped.
            delivery.answer_error = "operation_timeout"
        return delivery

    async def _deliver_over_socket(self, request: SignedRequest) -> Delivery:
        """The request's payload in an envelope on the app's websocket; the ack is the answer."""
        self.workspace.record_delivery("socket", request.kind)
        retry = request.headers.get("x-slack-retry-num")
        ack = await self.workspace.socket_mode.deliver(
            request.kind,
            _socket_payload(request),
            ack_deadline=self.ack_deadline,
            retry_attempt=None if retry is None else int(retry),
            retry_reason=request.headers.get("x-slack-retry-reason"),
        )
        answer = ack.payload or None
        delivery = Delivery(
            request,
            200 if ack.acked else 0,
            json.dumps(answer) if answer else "",
            answer,
            transport="socket",
            envelopes=ack.envelopes,
        )
        delivery.answer_error = ack.error
        return delivery

    def _action_ts(self) -> str:
        return f"{time.time():.6f}"

    def _user_payload(self, user: UserSpec) -> dict[str, str]:
        return {
            "id": user.id,
            "username": user.name,
            "name": user.name,
            "team_id": self.workspace.team_id,
        }

    def _user(self, user_id: str) -> UserSpec:
        user = self.workspace.user(user_id)
        if user is None or user_id == self.workspace.bot_user_id:
            raise LookupError(
                f"no person {user_id!r} in the workspace; see SlackSandboxConfig.users"
            )
        return user

    def _channel(self, channel_id: str) -> ChannelSpec:
        channel = self.workspace.channel(channel_id)
        if channel is None:
            raise LookupError(
                f"no channel {channel_id!r} in the workspace; see SlackSandboxConfig.channels"
            )
        return channel


def _socket_payload(request: SignedRequest) -> dict[str, Any]:
    """What a Socket Mode envelope carries for the body the HTTP path posts: a command's form fields
    as an object, an interaction's `payload` JSON, an event callback as it is."""
    if request.kind == "event":
        event: dict[str, Any] = json.loads(request.body)
        return event
    fields = dict(parse_qsl(request.body, keep_blank_values=True))
    if request.kind == "interaction":
        interaction: dict[str, Any] = json.loads(fields["payload"])
        return interaction
    return fields


def _with_retry(request: SignedRequest, retry_num: int, reason: str) -> SignedRequest:
    headers = {
        **request.headers,
        "x-slack-retry-num": str(retry_num),
        "x-slack-retry-reason": reason,
    }
    return SignedRequest(request.kind, request.body, request.content_type, headers)


_CLICKABLE = ("button", "static_select", "overflow")


class NoSuchElement(LookupError):
    """The blocks have no element with that action_id (in that block, with that value)."""


def _elements(blocks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for block in blocks:
        block_id = str(block.get("block_id", ""))
        if block.get("type") == "actions":
            found += [(block_id, e) for e in block.get("elements", []) if isinstance(e, dict)]
        elif block.get("type") == "section" and isinstance(block.get("accessory"), dict):
            found.append((block_id, block["accessory"]))
    return found


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options", []))
    for group in element.get("option_groups", []):
        options += group.get("options", [])
    return options


def _find_element(
    blocks: list[dict[str, Any]], action_id: str, block_id: str | None, value: str | None
) -> tuple[str, dict[str, Any]]:
    candidates = [
        (bid, e)
        for bid, e in _elements(blocks)
        if e.get("action_id") == action_id
        and (block_id is None or bid == block_id)
        and (
            value is None
            or e.get("value") == value
            or any(o.get("value") == value for o in _options(e))
        )
    ]
    if not candidates:
        present = sorted({f"{bid}/{e.get('action_id')}" for bid, e in _elements(blocks)})
        raise NoSuchElement(
            f"no element {action_id!r} (block {block_id}, value {value}) in the message; it has {present}"
        )
    if len(candidates) > 1:
        where = [f"{bid}/{e.get('value')}" for bid, e in candidates]
        raise LookupError(
            f"{len(candidates)} elements match {action_id!r} ({where}); pass block_id or value"
        )
    block, element = candidates[0]
    if element.get("type") not in _CLICKABLE:
        raise ValueError(
            f"the sandbox clicks {', '.join(_CLICKABLE)}; {action_id!r} is a {element.get('type')}"
        )
    return block, element


def _action(
    element: dict[str, Any], block_id: str, value: str | None, action_ts: str
) -> dict[str, Any]:
    kind = element["type"]
    action: dict[str, Any] = {"action_id": element["action_id"], "block_id": block_id}
    if kind == "button":
        action["text"] = element.get("text")
        if "value" in element:
            action["value"] = element["value"]
        if "style" in element:
            action["style"] = element["style"]
    else:
        options = _options(element)
        chosen = next((o for o in options if o.get("value") == value), None)
        if chosen is None:
            raise LookupError(
                f"pass value= one of {[o.get('value') for o in options]} to pick from {element['action_id']!r}"
            )
        action["selected_option"] = chosen
        if kind == "static_select" and "placeholder" in element:
            action["placeholder"] = element["placeholder"]
    action.update(type=kind, action_ts=action_ts)
    return action
