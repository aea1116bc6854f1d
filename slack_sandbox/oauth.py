"""Slack's install page, `GET /oauth/v2/authorize`: approves at once and redirects back with a code.

Point Bolt's `OAuthSettings(authorization_url=...)` here and the whole "Add to Slack" flow runs
locally: authorize -> redirect_uri?code=...&state=... -> the app calls oauth.v2.access.
The installing person is `?user=U...` when given, else the workspace's first admin.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from slack_sandbox.workspace import Workspace


def oauth_routes(workspace: Workspace) -> list[Route]:
    async def authorize(request: Request) -> Response:
        query = request.query_params
        if query.get("client_id") != workspace.config.client_id:
            return PlainTextResponse(
                "invalid_client_id: this is not the sandbox app's client_id", status_code=400
            )
        redirect_uri = query.get("redirect_uri")
        if not redirect_uri:
            return PlainTextResponse(
                "bad_redirect_uri: pass redirect_uri, the app's OAuth redirect URL", status_code=400
            )
        admins = [u.id for u in workspace.users() if u.is_admin] or [
            u.id for u in workspace.users()
        ]
        user = query.get("user") or admins[0]
        if workspace.user(user) is None:
            return PlainTextResponse(
                f"user_not_found: no user {user} in this workspace", status_code=400
            )
        code = workspace.issue_oauth_code(user, redirect_uri=redirect_uri)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        return RedirectResponse(f"{redirect_uri}{separator}{urlencode(params)}", status_code=302)

    return [Route("/oauth/v2/authorize", authorize, methods=["GET"])]
