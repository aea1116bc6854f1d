"""What the public HTTP app checks before it does any work for a request nobody has vouched for yet.

`BodyLimit` caps request bodies per path before they are read whole: a declared Content-Length
above the limit is answered 413 without reading a byte of the body, and a body streamed without
one (chunked) is counted as it arrives and answered 413 as soon as it passes the limit. Until a
signature is checked nothing is known about who sent a body, so the limit has to come first.

The limits, with what really arrives on each route:

- `/slack/events`: 1 MiB. Slack's biggest requests are interaction payloads carrying a whole
  message (at most 50 blocks of at most 3,000 characters) or a modal's view and state, sent
  URL-encoded (which can triple their size): a few hundred KiB at the very worst.
- `/qbo/webhooks`: 256 KiB. Intuit's notifications name the changed objects only (a name, an id,
  an operation and a time, about 100 bytes each), a few KiB for a busy company.
- everything else (email link forms, QuickBooks connect, the demo's page): 64 KiB; those bodies
  are empty or a few hundred bytes.

`slack_signature_problem` checks Slack's signature headers strictly (a timestamp that is an integer
within five minutes, `v0=` and 64 hex digits) before Bolt parses anything; `slack_payload_problem`
then refuses a signed body whose fields (as Bolt parsed them, once) have types Bolt would fail on
while routing it.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Mapping

from slack_sdk.signature import SignatureVerifier
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KiB = 1024
MiB = 1024 * KiB

SLACK_BODY_LIMIT = 1 * MiB
QBO_WEBHOOK_BODY_LIMIT = 256 * KiB
DEFAULT_BODY_LIMIT = 64 * KiB

#: Slack refuses to replay a request older than this; neither does Oodaloo accept one.
SLACK_MAX_AGE_SECONDS = 5 * 60

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


def _size(limit: int) -> str:
    return f"{limit // MiB} MiB" if limit % MiB == 0 else f"{limit // KiB} KiB"


class BodyTooLarge(HTTPException):
    """Raised inside `receive` when a streamed body passes its limit: Starlette answers it as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit), headers={"connection": "close"})
        self.limit = limit


def _too_large_message(limit: int) -> str:
    return f"Request body too large: this address accepts at most {_size(limit)}.\n"


class BodyLimit:
    """Pure ASGI middleware: bodies above the limit of their path (longest matching prefix) get 413."""

    def __init__(self, app: ASGIApp, *, limits: Mapping[str, int], default: int) -> None:
        self.app = app
        self.limits = sorted(limits.items(), key=lambda item: len(item[0]), reverse=True)
        self.default = default

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _too_large(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await _too_large(send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # uvicorn refuses these itself; count what arrives
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = _too_large_message(limit).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread rest of the body must not be taken as a request
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def slack_signature_problem(
    signing_secret: str, body: bytes, timestamp: str | None, signature: str | None
) -> str | None:
    """None when the request is signed with `signing_secret`; otherwise what is wrong, in words."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not _TIMESTAMP.fullmatch(timestamp):
        return "X-Slack-Request-Timestamp is not a whole number of seconds"
    if abs(time.time() - int(timestamp)) > SLACK_MAX_AGE_SECONDS:
        return "X-Slack-Request-Timestamp is more than five minutes away from now"
    if not _SIGNATURE.fullmatch(signature):
        return "X-Slack-Signature is not of the form v0=<64 hex digits>"
    expected = SignatureVerifier(signing_secret).generate_signature(timestamp=timestamp, body=body)
    if expected is None or not hmac.compare_digest(expected.encode(), signature.encode()):
        return "X-Slack-Signature does not match the body"
    return None


#: Where Bolt reads an id that is a string or an object with an `id` (`extract_team_id` and friends).
_REFERENCES = ("team", "user", "channel", "enterprise")
#: Objects Bolt looks into (it calls `.get` on them or indexes them).
_OBJECTS = (
    "event", "message", "previous_message", "item", "assistant_thread", "view", "container",
    "function_data", "workflow_step", "state",
)  # fmt: skip
#: Values Bolt compares, matches with regular expressions or returns as ids: strings wherever
#: they appear in a Slack payload (a button's `text` is an object, a message's a string: not here).
_STRINGS = (
    "type", "id", "team_id", "user_id", "channel_id", "enterprise_id", "api_app_id",
    "response_url", "callback_id", "command", "action_id", "block_id", "user_team",
    "app_installed_team_id", "context_team_id", "context_enterprise_id",
    "function_execution_id", "bot_access_token",
)  # fmt: skip
_BOOLEANS = ("is_enterprise_install", "is_ext_shared_channel")
#: Objects Bolt indexes as soon as their key is there (`"view" in body and "callback_id" in body["view"]`).
_PRESENT_MEANS_OBJECT = ("event", "view")


def slack_payload_problem(payload: object) -> str | None:
    """None when a (signed) body, as Bolt parsed it, has the shape Bolt reads without failing;
    otherwise what is wrong. Bolt indexes into the payload (`team.id`, `actions[0].action_id`,
    `view.callback_id`) while it routes a request, and answers 500 with an error logged when a
    field has another type: such a body is a 400 here instead, before Bolt routes it."""
    return _shape_problem(payload, "the payload", depth=0)


def _shape_problem(node: object, where: str, depth: int) -> str | None:
    if not isinstance(node, dict):
        return f"{where} is not an object"
    if depth > 4:
        return None  # Bolt looks no deeper than this
    for key in _STRINGS:
        if node.get(key) is not None and not isinstance(node[key], str):
            return f"{where}.{key} is not a string"
    response_url = node.get("response_url")
    if isinstance(response_url, str) and not response_url.startswith(("https://", "http://")):
        return f"{where}.response_url is not a URL"  # Bolt's respond() posts to it
    for key in _BOOLEANS:
        if node.get(key) is not None and not isinstance(node[key], bool | str):
            return f"{where}.{key} is not a boolean"
    for key in _REFERENCES:
        value = node.get(key)
        if value is not None and not isinstance(value, str):
            problem = _shape_problem(value, f"{where}.{key}", depth + 1)
            if problem:
                return problem
    for key in _OBJECTS:
        value = node.get(key)
        if value is not None or (key in node and key in _PRESENT_MEANS_OBJECT):
            problem = _shape_problem(value, f"{where}.{key}", depth + 1)
            if problem:
                return problem
    authorizations = node.get("authorizations")
    if authorizations is not None:
        if not isinstance(authorizations, list):
            return f"{where}.authorizations is not a list"
        for index, authorization in enumerate(authorizations):
            problem = _shape_problem(authorization, f"{where}.authorizations[{index}]", depth + 1)
            if problem:
                return problem
    if "actions" in node:  # Bolt reads actions[0] as soon as the key is there
        actions = node["actions"]
        if not isinstance(actions, list) or not actions:
            return f"{where}.actions is not a list of actions"
        for index, action in enumerate(actions):
            problem = _shape_problem(action, f"{where}.actions[{index}]", depth + 1)
            if problem:
                return problem
            if not isinstance(action.get("action_id"), str):  # Bolt reads actions[0]["action_id"]
                return f"{where}.actions[{index}] has no action_id"
    if "response_urls" in node:  # Bolt takes the first one's response_url for respond()
        response_urls = node["response_urls"]
        if not isinstance(response_urls, list):
            return f"{where}.response_urls is not a list"
        for index, entry in enumerate(response_urls[:1]):
            problem = _shape_problem(entry, f"{where}.response_urls[{index}]", depth + 1)
            if problem:
                return problem
    values = node.get("values")
    if values is not None and not isinstance(values, dict):
        return f"{where}.values is not an object"
    return None


__all__ = [
    "DEFAULT_BODY_LIMIT",
    "QBO_WEBHOOK_BODY_LIMIT",
    "SLACK_BODY_LIMIT",
    "BodyLimit",
    "slack_payload_problem",
    "slack_signature_problem",
]
