"""Posting to a business's channel and updating the bot's own messages in place.

Every message the bot posts is kept (`SlackMessage`: its blocks) so a click can change one line of
it later: "Paying…", then "Paid by @maya · runway now 41 days (−2)". Updates of one message take
turns under a lock shared by every process, each applied to the stored blocks, so two clicks on two
bills of the same digest never undo each other. Posting keeps Slack's pace of about one message per
second per channel; slack_sdk's retry handlers wait out a 429 (Retry-After) and retry server errors,
and a post still refused for its rate keeps waiting out Slack's Retry-After for up to POST_PATIENCE:
a thousand digests due at one minute share a workspace's few hundred posts a minute.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.models import SlackMessage
from sync import Clock, LockFactory

logger = logging.getLogger(__name__)

#: Slack's guidance for chat.postMessage: about one message per second per channel.
SECONDS_BETWEEN_POSTS = 1.0

#: How long a post keeps waiting out Slack's rate limit (its Retry-After each time) before it fails.
POST_PATIENCE = 180.0

BlocksEdit = Callable[[list[dict[str, Any]]], list[dict[str, Any]] | None]


class Drawn(Protocol):
    """A message as drawn: its notification text and its blocks."""

    @property
    def text(self) -> str: ...

    @property
    def blocks(self) -> list[dict[str, Any]]: ...


def with_retry_handlers(client: AsyncWebClient) -> AsyncWebClient:
    """The client, retrying what Slack asks to retry: rate limits, server errors, dropped links."""
    kinds = {type(handler) for handler in client.retry_handlers}
    for handler in (
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=3),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ):
        if type(handler) not in kinds:
            client.retry_handlers.append(handler)
    return client


async def post_when_allowed(client: AsyncWebClient, **message: Any) -> AsyncSlackResponse:
    """chat.postMessage, waiting out Slack's Retry-After (with a little jitter, so the posts it
    held back do not all come back in the same second) for up to POST_PATIENCE."""
    give_up_at = time.monotonic() + POST_PATIENCE
    while True:
        try:
            return await client.chat_postMessage(**message)
        except SlackApiError as error:
            wait = _retry_after(error)
            if wait is None or time.monotonic() + wait > give_up_at:
                raise
            logger.info("Slack holds back posts to %s for %g s; waiting", message.get("channel"), wait)
            await asyncio.sleep(wait + random.uniform(0, 1))


def _retry_after(error: SlackApiError) -> float | None:
    """Seconds Slack asked to wait before posting again; None when it was not a rate limit."""
    response = error.response
    if response is None or response.status_code != 429:
        return None
    try:
        return max(1.0, float(response.headers.get("Retry-After", 1)))
    except (TypeError, ValueError):
        return 1.0


@dataclass(frozen=True)
class Posted:
    channel_id: str
    ts: str


class ChannelPacer:
    """Spaces posts to one channel `interval` seconds apart (in this process)."""

    def __init__(self, interval: float = SECONDS_BETWEEN_POSTS) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait_turn(self, channel_id: str) -> None:
        lock = self._locks.setdefault(channel_id, asyncio.Lock())
        async with lock:
            now = time.monotonic()
            start = max(now, self._next.get(channel_id, now))
            self._next[channel_id] = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class ChannelPoster:
    def __init__(
        self,
        client: AsyncWebClient,
        sessions: async_sessionmaker[AsyncSession],
        locks: LockFactory,
        clock: Clock,
        *,
        pacer: ChannelPacer | None = None,
    ) -> None:
        self.client = with_retry_handlers(client)
        self.sessions = sessions
        self.locks = locks
        self.clock = clock
        self.pacer = pacer or ChannelPacer()

    async def post(
        self,
        business_id: str,
        channel_id: str,
        *,
        text: str,
        blocks: list[dict[str, Any]],
        kind: str,
        client: AsyncWebClient | None = None,
    ) -> Posted:
        """Post to the channel and keep the message, so its lines can be updated later."""
        await self.pacer.wait_turn(channel_id)
        answer = await post_when_allowed(
            client or self.client, channel=channel_id, text=text, blocks=blocks,
            unfurl_links=False, unfurl_media=False,
        )
        posted = Posted(str(answer["channel"]), str(answer["ts"]))
        now = self.clock.now()
        async with self.sessions() as session:
            session.add(
                SlackMessage(
                    business_id=business_id,
                    channel_id=posted.channel_id,
                    ts=posted.ts,
                    kind=kind,
                    text=text,
                    blocks=blocks,
                    created_at=now,
                    updated_at=now,
                )
            )
            await session.commit()
        return posted

    async def stored(self, channel_id: str, ts: str) -> SlackMessage | None:
        async with self.sessions() as session:
            return await session.scalar(
                select(SlackMessage).where(
                    SlackMessage.channel_id == channel_id, SlackMessage.ts == ts
                )
            )

    async def edit(
        self,
        business_id: str,
        channel_id: str,
        ts: str,
        change: BlocksEdit,
        *,
        client: AsyncWebClient | None = None,
    ) -> list[dict[str, Any]] | None:
        """Apply `change` to the stored blocks of one of the bot's messages and update it in Slack.

        `change` gets the current blocks and returns the new ones (None: leave it). Edits of one
        message are serialised across processes. Returns the blocks now shown, or None when the
        message is not one of this business's.
        """
        async with self.locks(f"slack-message:{channel_id}:{ts}"):
            async with self.sessions() as session:
                row = await session.scalar(
                    select(SlackMessage).where(
                        SlackMessage.channel_id == channel_id,
                        SlackMessage.ts == ts,
                        SlackMessage.business_id == business_id,
                    )
                )
                if row is None:
                    return None
                blocks = change([dict(block) for block in row.blocks])
                if blocks is None:
                    return list(row.blocks)
                await (client or self.client).chat_update(
                    channel=channel_id, ts=ts, text=row.text, blocks=blocks
                )
                row.blocks = blocks
                row.updated_at = self.clock.now()
                await session.commit()
                return blocks

    async def redraw(
        self,
        business_id: str,
        channel_id: str,
        ts: str,
        draw: Callable[[SlackMessage], Awaitable[Drawn | None]],
        *,
        client: AsyncWebClient | None = None,
    ) -> bool:
        """Draw one of the bot's messages again (`draw` gets the stored message and returns the new
        one, or None to leave it) and update it in Slack. Drawing happens under the message's lock,
        so two redraws of one message never undo each other. Returns whether it changed."""
        async with self.locks(f"slack-message:{channel_id}:{ts}"):
            mine = (
                SlackMessage.channel_id == channel_id,
                SlackMessage.ts == ts,
                SlackMessage.business_id == business_id,
            )
            # Read, draw, then write, each on its own: drawing reads the books, and on SQLite a
            # transaction held open across it would keep the database locked.
            async with self.sessions() as session:
                row = await session.scalar(select(SlackMessage).where(*mine))
            if row is None:
                return False
            drawn = await draw(row)
            if drawn is None or (drawn.blocks == row.blocks and drawn.text == row.text):
                return False
            await (client or self.client).chat_update(
                channel=channel_id, ts=ts, text=drawn.text, blocks=drawn.blocks
            )
            async with self.sessions() as session:
                await session.execute(
                    update(SlackMessage)
                    .where(*mine)
                    .values(blocks=drawn.blocks, text=drawn.text, updated_at=self.clock.now())
                )
                await session.commit()
            return True

    async def recent(
        self, business_id: str, *, kinds: tuple[str, ...], limit: int
    ) -> list[SlackMessage]:
        """The business's latest messages of these kinds, newest first."""
        async with self.sessions() as session:
            rows = await session.scalars(
                select(SlackMessage)
                .where(SlackMessage.business_id == business_id, SlackMessage.kind.in_(kinds))
                .order_by(SlackMessage.created_at.desc())
                .limit(limit)
            )
            return list(rows)

    async def messages_with_block(
        self, business_id: str, *block_ids: str, limit: int = 20
    ) -> list[SlackMessage]:
        """The business's recent messages that show any of `block_ids` (to settle a line after
        the fact)."""
        wanted = set(block_ids)
        async with self.sessions() as session:
            rows = await session.scalars(
                select(SlackMessage)
                .where(SlackMessage.business_id == business_id)
                .order_by(SlackMessage.created_at.desc())
                .limit(200)
            )
            found = [
                row for row in rows if any(b.get("block_id") in wanted for b in row.blocks)
            ]
        return found[:limit]
