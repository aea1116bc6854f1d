"""Response URLs: `POST /response/{token}`, where an app answers a command or a click at its leisure.

Like Slack: JSON {text, blocks, response_type, replace_original, delete_original}; "ok" on success;
404 with `used_url` after five uses or `expired_url` after 30 minutes; 400 with the reason for bad
content. Replace and delete act on the message the interaction came from, ephemeral or not.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from slack_sandbox.blocks import check_message
from slack_sandbox.workspace import ACK_DEADLINE_SECONDS, ResponseUrl, SlackError, Workspace


def _apply(
    workspace: Workspace, issued: ResponseUrl, body: dict[str, Any], blocks: list[dict[str, Any]]
) -> None:
    text = str(body.get("text") or "")
    source = issued.message_ts
    if body.get("delete_original"):
        if source is None:
            raise SlackError(
                "message_not_found", status=404, detail="this response_url has no message to delete"
            )
        if issued.is_ephemeral:
            workspace.delete_ephemeral(source)
        else:
            workspace.delete_message(issued.channel, source, by_app=False)
        return
    if body.get("replace_original") and source is not None:
        if issued.is_ephemeral:
            workspace.replace_ephemeral(source, text=text, blocks=blocks)
        else:
            workspace.replace_message(issued.channel, source, text=text, blocks=blocks)
        return
    if body.get("response_type") == "in_channel":
        posted = workspace.post_message(
            issued.channel, text, blocks, thread_ts=body.get("thread_ts")
        )
        workspace.bind_response_url(issued.token, message_ts=posted.ts, is_ephemeral=False)
    else:
        shown = workspace.post_ephemeral(issued.channel, issued.user, text, blocks)
        workspace.bind_response_url(issued.token, message_ts=shown.ts, is_ephemeral=True)


async def _ack_shown(workspace: Workspace, token: str) -> None:
    def settled() -> bool:
        issued = workspace.response_url(token)
        return issued is None or not issued.awaiting_ack

    try:
        await workspace.wait_for(settled, timeout=ACK_DEADLINE_SECONDS)
    except TimeoutError:
        workspace.ack_settled(token)  # Slack gives up on an ack after 3 seconds


def response_url_routes(workspace: Workspace) -> list[Route]:
    async def endpoint(request: Request) -> PlainTextResponse:
        token = request.path_params["token"]
        body: dict[str, Any] = {}
        try:
            found = workspace.response_url(token)
            if found is None:
                raise SlackError(
                    "no_service", status=404, detail="the sandbox never issued this response_url"
                )
            if found.awaiting_ack:
                # The app answered before its ack reached the user: Slack shows the ack first.
                await _ack_shown(workspace, token)
            try:
                parsed = json.loads(await request.body())
            except json.JSONDecodeError as exc:
                raise SlackError(
                    "invalid_payload", status=400, detail=f"the body is not JSON: {exc}"
                ) from exc
            if not isinstance(parsed, dict):
                raise SlackError(
                    "invalid_payload", status=400, detail="the body must be a JSON object"
                )
            body = parsed
            blocks: list[dict[str, Any]] = []
            if not body.get("delete_original"):
                try:
                    blocks = check_message(body.get("text"), body.get("blocks"))
                except SlackError as bad:
                    raise SlackError(bad.error, status=400, detail=bad.detail) from bad
            _apply(workspace, workspace.use_response_url(token), body, blocks)
        except SlackError as refusal:
            workspace.record_call(
                "response_url", body, ok=False, error=refusal.error, status=refusal.status
            )
            return PlainTextResponse(refusal.error, status_code=refusal.status)
        workspace.record_call("response_url", body, ok=True, error=None, status=200)
        return PlainTextResponse("ok")

    return [Route("/response/{token}", endpoint, methods=["POST"])]
