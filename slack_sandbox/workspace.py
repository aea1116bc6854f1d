"""The state of one local Slack workspace, shared by the Web API (a uvicorn thread) and the tests.

Everything lives behind one re-entrant lock, and every read hands out a copy, so a test can look at a
message while the server thread edits it. The rules that belong to the data live here (who may
update a message, how long a trigger_id or a response_url lasts); the HTTP shapes live in web_api.py.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import itertools
import secrets
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from slack_sandbox.config import ChannelSpec, SlackSandboxConfig, UserSpec
from slack_sandbox.socket_mode import SocketMode

T = TypeVar("T")

#: Slack waits this long for an app's ack; a later answer is dropped and the user sees a timeout.
ACK_DEADLINE_SECONDS = 3.0
#: Slack accepts a trigger_id for 3 seconds after the interaction that issued it.
TRIGGER_LIFETIME = timedelta(seconds=3)
#: "You can respond to a user's command up to 5 times within 30 minutes" (Slack's slash-command docs).
RESPONSE_URL_MAX_USES = 5
RESPONSE_URL_LIFETIME = timedelta(minutes=30)
OAUTH_CODE_LIFETIME = timedelta(minutes=10)
#: Slack keeps modals in a stack of at most three.
VIEW_STACK_LIMIT = 3
PLACEHOLDER_BASE_URL = "http://slack-sandbox"


class SlackError(Exception):
    """A refusal in Slack's words: `error` is the string Slack puts in {"ok": false, "error": ...}."""

    def __init__(self, error: str, *, status: int = 200, detail: str = "") -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        self.status = status
        self.detail = detail


@dataclass
class Message:
    """A message in a channel, by a person or by the app's bot user."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    #: How many times the message was edited (chat.update or a response_url replace).
    edited: int = 0
    edited_ts: str | None = None

    @property
    def is_bot(self) -> bool:
        return self.bot_id is not None

    def to_slack(self, team_id: str) -> dict[str, Any]:
        """The message object as Slack returns it from chat.postMessage and in block_actions payloads."""
        out: dict[str, Any] = {
            "type": "message",
            "text": self.text,
            "user": self.user,
            "ts": self.ts,
        }
        if self.bot_id:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        if self.blocks:
            out["blocks"] = copy.deepcopy(self.blocks)
        if self.attachments:
            out["attachments"] = copy.deepcopy(self.attachments)
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if self.edited_ts:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        out["team"] = team_id
        return out


@dataclass
class Ephemeral:
    """A message only `user` sees in `channel`; it can be replaced or deleted through a response_url."""

    channel: str
    user: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    replaced: int = 0


@dataclass
class View:
    """A modal. `hash` changes on every update; a stale hash makes views.update fail with hash_conflict."""

    id: str
    user: str
    hash: str
    callback_id: str
    private_metadata: str
    blocks: list[dict[str, Any]]
    title: dict[str, Any]
    root_view_id: str
    previous_view_id: str | None = None
    submit: dict[str, Any] | None = None
    close: dict[str, Any] | None = None
    external_id: str = ""
    state: dict[str, Any] = field(default_factory=lambda: {"values": {}})
    clear_on_close: bool = False
    notify_on_close: bool = False
    type: str = "modal"
    is_open: bool = True

    def to_slack(self, team_id: str, app_id: str, bot_id: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "team_id": team_id,
            "type": self.type,
            "blocks": copy.deepcopy(self.blocks),
            "private_metadata": self.private_metadata,
            "callback_id": self.callback_id,
            "state": copy.deepcopy(self.state),
            "hash": self.hash,
            "title": copy.deepcopy(self.title),
            "clear_on_close": self.clear_on_close,
            "notify_on_close": self.notify_on_close,
            "close": copy.deepcopy(self.close),
            "submit": copy.deepcopy(self.submit),
            "previous_view_id": self.previous_view_id,
            "root_view_id": self.root_view_id,
            "app_id": app_id,
            "external_id": self.external_id,
            "app_installed_team_id": team_id,
            "bot_id": bot_id,
        }


@dataclass
class ResponseUrl:
    """Where an app answers one interaction; bound to the message it came from (None for a command)."""

    token: str
    channel: str
    user: str
    message_ts: str | None
    is_ephemeral: bool
    created_at: datetime
    uses: int = 0
    #: A command's URL until Slack has shown the ack body: an answer through it comes after the ack.
    awaiting_ack: bool = False


@dataclass
class Trigger:
    id: str
    user: str
    issued_at: datetime
    #: The modal the interaction happened in: views.push stacks onto it.
    view_id: str | None = None
    exchanged: bool = False


@dataclass(frozen=True)
class ApiCall:
    """One Web API call (or response_url use) as the sandbox answered it."""

    method: str
    params: dict[str, Any]
    ok: bool
    error: str | None
    status: int
    at: datetime


class Workspace:
    """One team with the app installed: people, channels, messages, modals and the app's credentials."""

    def __init__(self, config: SlackSandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.team_id = config.team_id
        self.team_name = config.team_name
        self.team_domain = config.team_domain
        self.app_id = config.app_id
        self.bot_user_id = config.bot_user_id
        self.bot_id = config.bot_id
        self.bot_token = config.bot_token
        self.signing_secret = config.signing_secret
        #: Where the sandbox is reachable; response URLs are built on it (set once the server is up).
        self.base_url = PLACEHOLDER_BASE_URL
        #: The app's websocket, when its settings have Socket Mode on (config.socket_mode).
        self.socket_mode = SocketMode(config.app_id, enabled=config.socket_mode)

        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.version = 0
        self._users: dict[str, UserSpec] = {u.id: u for u in config.users}
        self._bot_user = UserSpec(config.bot_user_id, config.bot_name, config.bot_name)
        self._channels: dict[str, ChannelSpec] = {c.id: c for c in config.channels}
        self._messages: dict[str, list[Message]] = {c.id: [] for c in config.channels}
        self._ephemerals: list[Ephemeral] = []
        self._views: dict[str, View] = {}
        #: Each person's Home tab (views.publish), by user id; its view is also in `_views`.
        self._homes: dict[str, str] = {}
        self._triggers: dict[str, Trigger] = {}
        self._response_urls: dict[str, ResponseUrl] = {}
        self._oauth_codes: dict[str, tuple[str, datetime, str | None]] = {}
        self._user_tokens: dict[str, str] = {}
        self._calls: list[ApiCall] = []
        self._deliveries: collections.Counter[tuple[str, str]] = collections.Counter()
        self._last_ts_micros = 0
        self._counter = itertools.count(1)

    # -- ids and time ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def _next_ts(self) -> str:
        """Message timestamps: unique and strictly increasing, even when the clock stands still."""
        micros = int(self.now().timestamp() * 1_000_000)
        micros = max(micros, self._last_ts_micros + 1)
        self._last_ts_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _random_id(self, prefix: str, length: int = 10) -> str:
        alphabet = string.ascii_uppercase + string.digits
        return prefix + "".join(secrets.choice(alphabet) for _ in range(length))

    def _touch(self) -> None:
        self.version += 1
        self._changed.notify_all()

    # -- people and channels --------------------------------------------------------------------

    def user(self, user_id: str) -> UserSpec | None:
        if user_id == self.bot_user_id:
            return self._bot_user
        return self._users.get(user_id)

    def users(self) -> list[UserSpec]:
        return list(self._users.values())

    def channel(self, ref: str) -> ChannelSpec | None:
        """A channel by id, name or #name; a user id gives the app's direct-message channel with them."""
        with self._lock:
            if ref in self._channels:
                return self._channels[ref]
            name = ref.removeprefix("#")
            for spec in self._channels.values():
                if spec.name == name and not spec.id.startswith("D"):
                    return spec
            if ref in self._users:
                return self._direct_channel(ref)
            return None

    def _direct_channel(self, user_id: str) -> ChannelSpec:
        channel_id = "D" + user_id[1:]
        if channel_id not in self._channels:
            self._channels[channel_id] = ChannelSpec(
                channel_id, user_id, is_private=True, members=(user_id,)
            )
            self._messages[channel_id] = []
        return self._channels[channel_id]

    def channels(self) -> list[ChannelSpec]:
        with self._lock:
            return list(self._channels.values())

    def is_member(self, channel: ChannelSpec, user_id: str) -> bool:
        if channel.members is None:
            return user_id in self._users or user_id == self.bot_user_id
        return user_id in channel.members or (
            channel.id.startswith("D") and user_id == self.bot_user_id
        )

    # -- messages -------------------------------------------------------------------------------

    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        user: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        """Posts as `user`, or as the app's bot user when `user` is None. Raises SlackError."""
        with self._lock:
            spec = self._existing_channel(channel)
            author = user or self.bot_user_id
            if user is not None and self.user(user) is None:
                raise SlackError("user_not_found", detail=f"no user {user} in this workspace")
            if spec.is_private and not self.is_member(spec, author):
                raise SlackError(
                    "not_in_channel",
                    detail=f"{author} is not a member of private channel {spec.id}",
                )
            if thread_ts is not None and self._find(spec.id, thread_ts) is None:
                raise SlackError("thread_not_found", detail=f"no message {thread_ts} in {spec.id}")
            message = Message(
                channel=spec.id,
                ts=self._next_ts(),
                user=author,
                text=text,
                blocks=copy.deepcopy(blocks or []),
                attachments=copy.deepcopy(attachments or []),
                bot_id=self.bot_id if user is None else None,
                app_id=self.app_id if user is None else None,
                thread_ts=thread_ts,
            )
            self._messages[spec.id].append(message)
            self._touch()
            return copy.deepcopy(message)

    def update_message(
        self,
        channel: str,
        ts: str,
        *,
        text: str | None,
        blocks: list[dict[str, Any]] | None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> Message:
        """The app edits one of its own messages; omitted blocks are kept, as in chat.update."""
        with self._lock:
            spec = self._existing_channel(channel)
            message = self._find(spec.id, ts)
            if message is None:
                raise SlackError("message_not_found", detail=f"no message {ts} in {spec.id}")
            if message.bot_id != self.bot_id:
                raise SlackError(
                    "cant_update_message",
                    detail=f"message {ts} was posted by {message.user}, not the app",
                )
            self._edit(message, text=text, blocks=blocks, attachments=attachments)
            return copy.deepcopy(message)

    def replace_message(
        self, channel: str, ts: str, *, text: str, blocks: list[dict[str, Any]]
    ) -> Message:
        """A response_url replace_original: the whole message becomes the response (any author)."""
        with self._lock:
            message = self._find(channel, ts)
            if message is None:
                raise SlackError(
                    "message_not_found", status=404, detail=f"no message {ts} in {channel}"
                )
            self._edit(message, text=text, blocks=blocks, attachments=[])
            return copy.deepcopy(message)

    def _edit(
        self,
        message: Message,
        *,
        text: str | None,
        blocks: list[dict[str, Any]] | None,
        attachments: list[dict[str, Any]] | None,
    ) -> None:
        if text is not None:
            message.text = text
        if blocks is not None:
            message.blocks = copy.deepcopy(blocks)
        if attachments is not None:
            message.attachments = copy.deepcopy(attachments)
        message.edited += 1
        message.edited_ts = self._next_ts()
        self._touch()

    def delete_message(self, channel: str, ts: str, *, by_app: bool = True) -> None:
        with self._lock:
            spec = self._existing_channel(channel)
            message = self._find(spec.id, ts)
            if message is None:
                raise SlackError("message_not_found", detail=f"no message {ts} in {spec.id}")
            if by_app and message.bot_id != self.bot_id:
                raise SlackError(
                    "cant_delete_message",
                    detail=f"message {ts} was posted by {message.user}, not the app",
                )
            self._messages[spec.id].remove(message)
            self._touch()

    def _existing_channel(self, ref: str) -> ChannelSpec:
        if not ref:
            raise SlackError("channel_not_found", detail="no channel given")
        spec = self.channel(ref)
        if spec is None:
            raise SlackError("channel_not_found", detail=f"no channel {ref!r} in this workspace")
        return spec

    def _find(self, channel_id: str, ts: str) -> Message | None:
        return next((m for m in self._messages.get(channel_id, []) if m.ts == ts), None)

    def messages(self, channel: str) -> list[Message]:
        """The channel's messages, oldest first (copies)."""
        with self._lock:
            spec = self.channel(channel)
            return copy.deepcopy(self._messages[spec.id]) if spec else []

    def message(self, channel: str, ts: str) -> Message | None:
        with self._lock:
            spec = self.channel(channel)
            found = self._find(spec.id, ts) if spec else None
            return copy.deepcopy(found)

    def last_message(self, channel: str) -> Message | None:
        found = self.messages(channel)
        return found[-1] if found else None

    # -- ephemeral messages ---------------------------------------------------------------------

    def post_ephemeral(
        self, channel: str, user: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> Ephemeral:
        with self._lock:
            spec = self._existing_channel(channel)
            if user not in self._users:
                raise SlackError("user_not_found", detail=f"no user {user} in this workspace")
            if not self.is_member(spec, user):
                raise SlackError("user_not_in_channel", detail=f"{user} is not in {spec.id}")
            ephemeral = Ephemeral(spec.id, user, self._next_ts(), text, copy.deepcopy(blocks or []))
            self._ephemerals.append(ephemeral)
            self._touch()
            return copy.deepcopy(ephemeral)

    def replace_ephemeral(self, ts: str, *, text: str, blocks: list[dict[str, Any]]) -> Ephemeral:
        with self._lock:
            ephemeral = self._find_ephemeral(ts)
            ephemeral.text = text
            ephemeral.blocks = copy.deepcopy(blocks)
            ephemeral.replaced += 1
            self._touch()
            return copy.deepcopy(ephemeral)

    def delete_ephemeral(self, ts: str) -> None:
        with self._lock:
            self._ephemerals.remove(self._find_ephemeral(ts))
            self._touch()

    def _find_ephemeral(self, ts: str) -> Ephemeral:
        found = next((e for e in self._ephemerals if e.ts == ts), None)
        if found is None:
            raise SlackError(
                "message_not_found", status=404, detail=f"the ephemeral message {ts} is gone"
            )
        return found

    def ephemerals(self, *, user: str | None = None, channel: str | None = None) -> list[Ephemeral]:
        """Ephemeral messages still showing, oldest first, optionally only one user's or one channel's."""
        with self._lock:
            return [
                copy.deepcopy(e)
                for e in self._ephemerals
                if (user is None or e.user == user) and (channel is None or e.channel == channel)
            ]

    def ephemeral(self, ts: str) -> Ephemeral | None:
        with self._lock:
            return copy.deepcopy(next((e for e in self._ephemerals if e.ts == ts), None))

    # -- trigger ids ----------------------------------------------------------------------------

    def issue_trigger(self, user: str, *, view_id: str | None = None) -> str:
        """A trigger_id as an interaction carries one: views.open/push accept it once, for 3 seconds."""
        with self._lock:
            team_number = "".join(ch for ch in self.team_id if ch.isdigit()) or "0"
            trigger_id = f"{int(time.time() * 1000)}{next(self._counter)}.{team_number}.{secrets.token_hex(16)}"
            self._triggers[trigger_id] = Trigger(trigger_id, user, self.now(), view_id)
            return trigger_id

    def exchange_trigger(self, trigger_id: str) -> Trigger:
        with self._lock:
            trigger = self._triggers.get(trigger_id)
            if trigger is None:
                raise SlackError(
                    "invalid_trigger_id", detail="the sandbox never issued this trigger_id"
                )
            if trigger.exchanged:
                raise SlackError(
                    "exchanged_trigger_id", detail="this trigger_id already opened a view"
                )
            if self.now() - trigger.issued_at > TRIGGER_LIFETIME:
                raise SlackError(
                    "expired_trigger_id", detail="trigger_ids last 3 seconds; open the view sooner"
                )
            trigger.exchanged = True
            return copy.deepcopy(trigger)

    # -- response urls --------------------------------------------------------------------------

    def issue_response_url(
        self,
        channel: str,
        user: str,
        *,
        message_ts: str | None = None,
        is_ephemeral: bool = False,
        awaiting_ack: bool = False,
    ) -> ResponseUrl:
        with self._lock:
            spec = self._existing_channel(channel)
            token = secrets.token_hex(12)
            issued = ResponseUrl(
                token,
                spec.id,
                user,
                message_ts,
                is_ephemeral,
                self.now(),
                awaiting_ack=awaiting_ack,
            )
            self._response_urls[token] = issued
            return copy.deepcopy(issued)

    def response_url_for(self, token: str) -> str:
        return f"{self.base_url}/response/{token}"

    def use_response_url(self, token: str) -> ResponseUrl:
        """Counts one use; 404 `used_url` after five, `expired_url` after 30 minutes."""
        with self._lock:
            issued = self._response_urls.get(token)
            if issued is None:
                raise SlackError(
                    "no_service", status=404, detail="the sandbox never issued this response_url"
                )
            if self.now() - issued.created_at > RESPONSE_URL_LIFETIME:
                raise SlackError("expired_url", status=404, detail="response_urls last 30 minutes")
            if issued.uses >= RESPONSE_URL_MAX_USES:
                raise SlackError(
                    "used_url", status=404, detail="a response_url can be used 5 times"
                )
            issued.uses += 1
            return copy.deepcopy(issued)

    def ack_settled(self, token: str) -> None:
        """Slack has shown (or dropped) the command's ack body; answers through its URL may proceed."""
        with self._lock:
            self._response_urls[token].awaiting_ack = False
            self._touch()

    def bind_response_url(self, token: str, *, message_ts: str, is_ephemeral: bool) -> None:
        """Ties a command's response_url to the first message shown for it, so replace_original finds it."""
        with self._lock:
            issued = self._response_urls[token]
            if issued.message_ts is None:
                issued.message_ts = message_ts
                issued.is_ephemeral = is_ephemeral

    def response_url(self, token: str) -> ResponseUrl | None:
        with self._lock:
            return copy.deepcopy(self._response_urls.get(token))

    # -- views ----------------------------------------------------------------------------------

    def open_view(self, user: str, view: dict[str, Any], *, on_top_of: str | None = None) -> View:
        with self._lock:
            root_id: str | None = None
            previous: str | None = None
            if on_top_of is not None:
                below = self._existing_view(on_top_of)
                stack = [
                    v
                    for v in self._views.values()
                    if v.root_view_id == below.root_view_id and v.is_open
                ]
                if len(stack) >= VIEW_STACK_LIMIT:
                    raise SlackError(
                        "push_limit_reached", detail="Slack stacks at most three modals"
                    )
                root_id, previous = below.root_view_id, stack[-1].id
            view_id = self._random_id("V")
            opened = View(
                id=view_id,
                user=user,
                hash=self._new_hash(),
                callback_id=str(view.get("callback_id", "")),
                private_metadata=str(view.get("private_metadata", "")),
                blocks=copy.deepcopy(view.get("blocks", [])),
                title=copy.deepcopy(view.get("title", {})),
                root_view_id=root_id or view_id,
                previous_view_id=previous,
                submit=copy.deepcopy(view.get("submit")),
                close=copy.deepcopy(view.get("close")),
                external_id=str(view.get("external_id", "")),
                clear_on_close=bool(view.get("clear_on_close", False)),
                notify_on_close=bool(view.get("notify_on_close", False)),
                type=str(view.get("type", "modal")),
            )
            self._views[view_id] = opened
            self._touch()
            return copy.deepcopy(opened)

    def update_view(
        self, view_id: str, view: dict[str, Any], *, expected_hash: str | None = None
    ) -> View:
        with self._lock:
            current = self._existing_view(view_id)
            if expected_hash is not None and expected_hash != current.hash:
                raise SlackError(
                    "hash_conflict", detail="the view changed since this hash; fetch it again"
                )
            current.blocks = copy.deepcopy(view.get("blocks", []))
            current.title = copy.deepcopy(view.get("title", current.title))
            current.callback_id = str(view.get("callback_id", current.callback_id))
            current.private_metadata = str(view.get("private_metadata", current.private_metadata))
            current.submit = copy.deepcopy(view.get("submit", current.submit))
            current.close = copy.deepcopy(view.get("close", current.close))
            current.hash = self._new_hash()
            # Inputs whose block is gone lose their values, as in Slack.
            kept = {b.get("block_id") for b in current.blocks}
            current.state = {
                "values": {k: v for k, v in current.state["values"].items() if k in kept}
            }
            self._touch()
            return copy.deepcopy(current)

    def publish_home(
        self, user: str, view: dict[str, Any], *, expected_hash: str | None = None
    ) -> View:
        """views.publish: `user`'s Home tab becomes `view` (one per person; it keeps its id)."""
        with self._lock:
            if user not in self._users:
                raise SlackError("user_not_found", detail=f"no user {user} in this workspace")
            current_id = self._homes.get(user)
            current = self._views.get(current_id) if current_id else None
            if expected_hash is not None and (current is None or current.hash != expected_hash):
                raise SlackError(
                    "hash_conflict", detail="the Home tab changed since this hash; publish again"
                )
            view_id = current.id if current is not None else self._random_id("V")
            home = View(
                id=view_id,
                user=user,
                hash=self._new_hash(),
                callback_id=str(view.get("callback_id", "")),
                private_metadata=str(view.get("private_metadata", "")),
                blocks=copy.deepcopy(view.get("blocks", [])),
                title={},
                root_view_id=view_id,
                external_id=str(view.get("external_id", "")),
                type="home",
            )
            self._views[view_id] = home
            self._homes[user] = view_id
            self._touch()
            return copy.deepcopy(home)

    def home(self, user: str) -> View | None:
        """`user`'s Home tab as last published, or None."""
        with self._lock:
            view_id = self._homes.get(user)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def view_by_external_id(self, external_id: str) -> View | None:
        with self._lock:
            found = next(
                (v for v in self._views.values() if external_id and v.external_id == external_id),
                None,
            )
            return copy.deepcopy(found)

    def set_view_state(self, view_id: str, values: dict[str, Any]) -> View:
        with self._lock:
            current = self._existing_view(view_id)
            current.state = {"values": copy.deepcopy(values)}
            self._touch()
            return copy.deepcopy(current)

    def close_view(self, view_id: str, *, whole_stack: bool = False) -> None:
        with self._lock:
            current = self._existing_view(view_id)
            for view in self._views.values():
                if view.id == view_id or (
                    whole_stack and view.root_view_id == current.root_view_id
                ):
                    view.is_open = False
            self._touch()

    def _existing_view(self, view_id: str) -> View:
        view = self._views.get(view_id)
        if view is None or not view.is_open:
            raise SlackError("not_found", detail=f"no open view {view_id}")
        return view

    def _new_hash(self) -> str:
        return f"{int(self.now().timestamp())}.{secrets.token_urlsafe(6)}"

    def view(self, view_id: str) -> View | None:
        with self._lock:
            return copy.deepcopy(self._views.get(view_id))

    def open_views(self, user: str | None = None) -> list[View]:
        """Modals showing, oldest first (the last one is on top); Home tabs are not modals."""
        with self._lock:
            return [
                copy.deepcopy(v)
                for v in self._views.values()
                if v.is_open and v.type != "home" and (user is None or v.user == user)
            ]

    # -- OAuth ----------------------------------------------------------------------------------

    def issue_oauth_code(self, user: str, *, redirect_uri: str | None = None) -> str:
        """The code Slack appends to the redirect URL when `user` approves the install."""
        with self._lock:
            code = f"{next(self._counter)}.{secrets.token_hex(20)}"
            self._oauth_codes[code] = (user, self.now(), redirect_uri)
            return code

    def exchange_oauth_code(self, code: str, *, redirect_uri: str | None) -> dict[str, Any]:
        with self._lock:
            entry = self._oauth_codes.pop(code, None)
            if entry is None:
                raise SlackError("invalid_code", detail="unknown or already used code")
            user, issued_at, bound_redirect = entry
            if self.now() - issued_at > OAUTH_CODE_LIFETIME:
                raise SlackError("invalid_code", detail="codes last 10 minutes")
            if (
                bound_redirect is not None
                and redirect_uri is not None
                and bound_redirect != redirect_uri
            ):
                raise SlackError(
                    "bad_redirect_uri", detail="redirect_uri differs from the authorize request's"
                )
            user_token = self._user_tokens.setdefault(user, f"xoxp-{secrets.token_hex(16)}")
            return {
                "ok": True,
                "app_id": self.app_id,
                "authed_user": {
                    "id": user,
                    "scope": "",
                    "access_token": user_token,
                    "token_type": "user",
                },
                "scope": ",".join(self.config.bot_scopes),
                "token_type": "bot",
                "access_token": self.bot_token,
                "bot_user_id": self.bot_user_id,
                "team": {"id": self.team_id, "name": self.team_name},
                "enterprise": None,
                "is_enterprise_install": False,
            }

    def user_for_token(self, token: str) -> str | None:
        """The person a user token (xoxp-) from an install belongs to."""
        with self._lock:
            return next(
                (user for user, issued in self._user_tokens.items() if issued == token), None
            )

    # -- the call log ---------------------------------------------------------------------------

    def record_call(
        self, method: str, params: dict[str, Any], *, ok: bool, error: str | None, status: int
    ) -> None:
        with self._lock:
            self._calls.append(
                ApiCall(method, copy.deepcopy(params), ok, error, status, self.now())
            )
            self._touch()

    def calls(self, method: str | None = None) -> list[ApiCall]:
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    # -- deliveries to the app ------------------------------------------------------------------

    def record_delivery(self, transport: str, kind: str) -> None:
        """One request to the app: `transport` "http" (its request URL) or "socket" (Socket Mode)."""
        with self._lock:
            self._deliveries[(transport, kind)] += 1

    def deliveries(self, transport: str | None = None, kind: str | None = None) -> int:
        """How many requests went to the app, by transport and kind ("command", "interaction", "event")."""
        with self._lock:
            return sum(
                n
                for (t, k), n in self._deliveries.items()
                if (transport is None or t == transport) and (kind is None or k == kind)
            )

    # -- waiting --------------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain deadline reads best in tests
        interval: float = 0.01,
    ) -> T:
        """Awaits until `predicate()` is truthy and returns its value; TimeoutError says what did happen.

        Polls without blocking the event loop, so a bot served in-process keeps running meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(self._timeout_message(timeout))
            await asyncio.sleep(interval)

    def wait_for_blocking(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """The same for synchronous code: sleeps on the workspace's change signal between checks."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(self._timeout_message(timeout))
                self._changed.wait(remaining)

    def _timeout_message(self, timeout: float) -> str:
        recent = (
            ", ".join(f"{c.method}={'ok' if c.ok else c.error}" for c in self.calls()[-8:])
            or "none"
        )
        return (
            f"the condition did not hold within {timeout}s; the last Web API calls were: {recent}"
        )


def buttons(surface: Message | Ephemeral | View, action_id: str) -> list[tuple[str, str]]:
    """(block_id, value) of each button with `action_id` in a message or view, in order."""
    return [
        (str(block.get("block_id")), str(element.get("value")))
        for block in surface.blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
        if element.get("action_id") == action_id
    ]
