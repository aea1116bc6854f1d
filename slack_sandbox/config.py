"""Settings of one local Slack workspace: its team, people, channels, app credentials, limits and clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Anything with an aware `now()`; qbo_sandbox's ManualClock fits, so one test clock can drive both."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass(frozen=True)
class UserSpec:
    id: str
    name: str
    real_name: str
    email: str | None = None
    tz: str = "America/Los_Angeles"
    is_admin: bool = False


@dataclass(frozen=True)
class ChannelSpec:
    id: str
    name: str
    is_private: bool = False
    #: Who is in the channel; None means every user of the workspace (and the bot).
    members: tuple[str, ...] | None = None


def _default_users() -> tuple[UserSpec, ...]:
    return (
        UserSpec("U0OWNER01", "dana", "Dana Whitfield", "dana@example.com", is_admin=True),
        UserSpec("U0BOOKS02", "sam", "Sam Okafor", "sam@example.com"),
        UserSpec("U0STAFF03", "lee", "Lee Marsh", "lee@example.com"),
    )


def _default_channels() -> tuple[ChannelSpec, ...]:
    return (
        ChannelSpec("C0FINANCE", "finance"),
        ChannelSpec("C0GENERAL", "general"),
    )


@dataclass
class SlackSandboxConfig:
    """One workspace with the Oodaloo app installed. Every value has a working default for tests."""

    team_id: str = "T0OODALOO"
    team_name: str = "Oodaloo Demo Co"
    team_domain: str = "oodaloo-demo"
    users: tuple[UserSpec, ...] = field(default_factory=_default_users)
    channels: tuple[ChannelSpec, ...] = field(default_factory=_default_channels)

    app_id: str = "A0OODALOO"
    bot_user_id: str = "U0OODABOT"
    bot_id: str = "B0OODALOO"
    bot_name: str = "oodaloo"
    bot_token: str = "xoxb-1111111111-2222222222-sandboxbottokenoodaloo"
    bot_scopes: tuple[str, ...] = ("commands", "chat:write", "chat:write.public", "users:read")
    signing_secret: str = "8f742231b10e8888abcd99yyyzzz85a5"
    #: The deprecated per-app token Slack still sends in every payload as `token`.
    verification_token: str = "sandboxverificationtoken"
    client_id: str = "1111111111.3333333333"
    client_secret: str = "sandbox-client-secret-0123456789ab"
    #: The app-level token (scope connections:write): only apps.connections.open takes it.
    app_token: str = "xapp-1-A0OODALOO-4444444444-sandboxapptokenoodaloo0123456789abcdef"
    #: Socket Mode on: Slack's requests go to the app's websocket instead of its request URL
    #: (socket_mode.py). Off, as in a new app's settings: signed HTTP requests (user.py).
    socket_mode: bool = False

    #: chat.postMessage: one message per second per channel after a short burst, as Slack allows.
    rate_limit: bool = True
    rate_limit_burst: int = 3
    rate_limit_per_second: float = 1.0
    #: ...and, across the workspace's channels, "several hundred messages per minute" with bursts.
    workspace_rate_limit_burst: int = 50
    workspace_rate_limit_per_minute: float = 300.0

    clock: Clock = field(default_factory=SystemClock)
    host: str = "127.0.0.1"
