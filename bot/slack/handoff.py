"""Where the work after a Slack ack runs: in this process, or in `oodaloo worker` through Redis.

A listener verifies, acks, and hands the rest (building lists from the mirror, rendering, answering
through response_url, drawing messages again) to a `HandOff`, so that work never delays the next
ack. Slack's ack goes out once the hand-off returns (Bolt's `process_before_response`): a 200 means
the work is in the stream or started here. One small interface, two ways, chosen once where the web
process is put together (`hand_off_for`):

- `InProcess`: the same process, at most `WORK_AT_ONCE` pieces at a time (`SlackBot.spawn`). The
  embedded default (no REDIS_URL), `oodaloo demo`, and the fallback whenever Redis cannot take it.
- `RedisStream`: a Redis Stream read by a consumer group. The web process adds the work (XADD, one
  round trip); each `oodaloo worker` runs a `WorkConsumers` pool blocked on XREADGROUP, so a piece
  is picked up about a millisecond after it was added, done by the very same `Clicks`/`Commands`
  handlers, then acknowledged and deleted (XACK, XDEL). arq, which runs the ritual's jobs, polls
  its queue every half second: too slow for a message that should change as it is clicked.

A worker that dies mid-work leaves its pieces pending; another worker claims them once they have
been idle `CLAIM_IDLE` (a live worker keeps its running pieces fresh), and a piece delivered
`MAX_DELIVERIES` times is given up with a warning. Doing a piece twice is harmless: a Pay takes
the per-bill lock and the ledger pays once, a list is answered again; Slack's own retries were
already dropped by the delivery log before the ack.

Work is never handed to nobody: the web process adds to the stream only while a worker's pool is
registered as alive (a sorted set of consumers, each renewing its expiry every `HEARTBEAT`), and
does the work itself when none is, or when Redis does not answer within `ADD_TIMEOUT`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack.deliveries import DeliveryLog
from sync import RedisBackend, redis_of

if TYPE_CHECKING:
    from bot.slack.app import SlackBot

logger = logging.getLogger(__name__)

Kind = Literal["click", "command", "home"]

#: The consumer group every worker reads the stream in.
GROUP = "workers"
#: Pieces of work one worker runs at once (below the database pool's 15 connections).
CONSUMER_SLOTS = 8
#: A consumer renews its place among the living this often (seconds) ...
HEARTBEAT = 2.0
#: ... and is counted dead this long after its last renewal.
ALIVE_FOR = 6
#: A piece pending this long without its consumer renewing it is taken over (milliseconds).
CLAIM_IDLE_MS = 30_000
#: A piece delivered this many times (its consumers died each time) is given up.
MAX_DELIVERIES = 3
#: The stream keeps at most about this many pieces (done pieces are deleted as they finish).
MAX_WAITING = 100_000
#: How long the web process waits for Redis to take a piece before doing it itself (seconds). Slack's
#: ack waits for the hand-off (`app.ACK_AFTER_HAND_OFF`), so this stays well inside its 3 seconds.
ADD_TIMEOUT = 1.0

# Adds the piece only while some consumer is alive (by Redis' own clock, the same for everyone),
# and only at the first arrival of its delivery, when one is named (Slack's retries of it are
# dropped): one round trip.
# Answers nil (no consumer: nothing noted), 0 (a repeat) or the entry's id.
_ADD_IF_CONSUMED = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then return false end
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return 0 end
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'work', ARGV[2])
"""
_ALIVE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
return now
"""


@dataclass(frozen=True)
class SlackWork:
    """One piece of work after an ack: which handler (a click's action id, a `/runway`
    subcommand, or "home": a Home tab to publish) and the Bolt request body it reads (team,
    channel, user, response_url)."""

    kind: Kind
    name: str
    body: dict[str, Any]

    @property
    def team_id(self) -> str | None:
        team = self.body.get("team")
        found = (team.get("id") if isinstance(team, dict) else None) or self.body.get("team_id")
        return found if isinstance(found, str) else None

    @property
    def response_url(self) -> str | None:
        found = self.body.get("response_url")
        return found if isinstance(found, str) and found else None

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "name": self.name, "body": self.body}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> SlackWork:
        data = json.loads(text)
        if data.get("kind") not in ("click", "command", "home") or not isinstance(data.get("body"), dict):
            raise ValueError(f"not a piece of Slack work: {text[:200]!r}")
        return cls(data["kind"], str(data.get("name") or ""), data["body"])


class HandOff(Protocol):
    async def hand_off(
        self, work: SlackWork, client: AsyncWebClient, respond: Any, *, delivery: str | None
    ) -> None:
        """Have `work` done after the ack, unless its `delivery` (`deliveries.delivery_name`) was
        handed off before (Slack's retry of the same request; None: checked as it arrived);
        returns at once (the work is not awaited)."""


class InProcess:
    """The work runs in this process, after the ack (`SlackBot.spawn`)."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot

    async def hand_off(
        self, work: SlackWork, client: AsyncWebClient, respond: Any, *, delivery: str | None
    ) -> None:
        if delivery is not None and not await self.bot.deliveries.first_arrival(delivery):
            logger.info("ignored a repeated Slack delivery of %s %s", work.kind, work.name)
            return
        self.bot.spawn(self.bot.perform(work, client, respond))


def stream_key(backend: RedisBackend) -> str:
    return backend.key("slack-work")


def consumers_key(backend: RedisBackend) -> str:
    return backend.key("slack-work", "consumers")


class RedisStream:
    """The work goes to `oodaloo worker` through a Redis Stream; this process does it itself when
    no worker is consuming or Redis does not take it (`fallback`)."""

    def __init__(self, backend: RedisBackend, fallback: HandOff, deliveries: DeliveryLog) -> None:
        self.backend = backend
        self.fallback = fallback
        self.deliveries = deliveries
        self._add = redis_of(backend).register_script(_ADD_IF_CONSUMED)
        self._keys = [consumers_key(backend), stream_key(backend)]
        self._told_no_worker = False

    async def hand_off(
        self, work: SlackWork, client: AsyncWebClient, respond: Any, *, delivery: str | None
    ) -> None:
        noted = [] if delivery is None else [self.deliveries.key(delivery)]
        try:
            async with asyncio.timeout(ADD_TIMEOUT):
                added = await self._add(
                    keys=[*self._keys, *noted],
                    args=[MAX_WAITING, work.to_json(), self.deliveries.keep_seconds],
                )
        except self.backend.errors as exc:  # asyncio's TimeoutError among them
            logger.warning("Redis did not take the Slack work (%s: %s); doing it in this process",
                           type(exc).__name__, exc)
            await self.fallback.hand_off(work, client, respond, delivery=delivery)
            return
        if added is None:
            if not self._told_no_worker:
                logger.warning("no `oodaloo worker` is taking Slack work from Redis; this process "
                               "does it itself until one runs")
                self._told_no_worker = True
            await self.fallback.hand_off(work, client, respond, delivery=delivery)
            return
        self._told_no_worker = False
        if added == 0:
            logger.info("ignored a repeated Slack delivery of %s %s", work.kind, work.name)


def hand_off_for(bot: SlackBot) -> HandOff:
    """Redis configured: through the stream to the workers; otherwise this process."""
    here = InProcess(bot)
    backend = bot.oodaloo.infra.backend
    if isinstance(backend, RedisBackend):
        return RedisStream(backend, here, bot.deliveries)
    return here


async def backlog(backend: RedisBackend) -> dict[str, int]:
    """Pieces added and not yet done, and the workers consuming (for /healthz); empty when Redis
    does not answer."""
    client = redis_of(backend)
    try:
        waiting = await client.xlen(stream_key(backend))
        now = int((await client.time())[0])
        workers = await client.zcount(consumers_key(backend), now + 1, "+inf")
    except backend.errors:
        return {}
    return {"waiting": int(waiting), "workers": int(workers)}


class SessionRespond(AsyncRespond):
    """Bolt's `respond` on one HTTP session the worker keeps: Bolt's own opens a session (and a
    connection to Slack) for every answer, a few milliseconds each time."""

    def __init__(self, *, response_url: str | None, session: aiohttp.ClientSession) -> None:
        super().__init__(response_url=response_url)
        self.session = session

    async def __call__(  # type: ignore[override]
        self,
        text: str | dict[str, Any] = "",
        blocks: Any = None,
        attachments: Any = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        client = AsyncWebhookClient(url=self.response_url, session=self.session)
        if isinstance(text, dict):
            return await client.send_dict(text)
        return await client.send(
            text=text, blocks=blocks, attachments=attachments, response_type=response_type,
            replace_original=replace_original, delete_original=delete_original,
            unfurl_links=unfurl_links, unfurl_media=unfurl_media, metadata=metadata,
        )


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class WorkConsumers:
    """One worker's pool of consumers: reads pieces as they are added, at most `slots` at a time,
    does each with `bot`, then acknowledges and deletes it."""

    def __init__(
        self,
        bot: SlackBot,
        backend: RedisBackend,
        *,
        name: str | None = None,
        slots: int = CONSUMER_SLOTS,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        heartbeat: float = HEARTBEAT,
        block_ms: int = 1_000,
    ) -> None:
        self.bot = bot
        self.backend = backend
        self.redis = redis_of(backend)
        self.name = name or consumer_name()
        self.slots = slots
        self.claim_idle_ms = claim_idle_ms
        self.heartbeat = heartbeat
        self.block_ms = block_ms
        self.stream = stream_key(backend)
        self.consumers = consumers_key(backend)
        self._alive = self.redis.register_script(_ALIVE)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._slot_freed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self.done = 0

    async def run(self, stop: asyncio.Event, *, grace: float = 30.0) -> None:
        """Consume until `stop` is set, then let running pieces finish (up to `grace` seconds)."""
        logger.info("worker %s takes Slack work from %s", self.name, self.stream)
        beating = asyncio.create_task(self._beat(stop), name=f"slack work heartbeat {self.name}")
        self._session = aiohttp.ClientSession()
        try:
            await self._consume(stop)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating
            # Out of the living first: from now on the web processes keep new work (or another
            # worker takes it) instead of adding it for a worker that no longer reads.
            with contextlib.suppress(*self.backend.errors):
                await self.redis.zrem(self.consumers, self.name)
            running = list(self._running.values())
            if running:
                await asyncio.wait(running, timeout=grace)
            await self._session.close()

    async def _consume(self, stop: asyncio.Event) -> None:
        from redis.exceptions import ResponseError

        await self._ensure_group()
        claim_at = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            free = self.slots - len(self._running)
            if free <= 0:  # every slot busy: nothing more is read until one is free
                self._slot_freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._slot_freed.wait(), self.heartbeat)
                continue
            try:
                if loop.time() >= claim_at:
                    claim_at = loop.time() + self.heartbeat
                    entries = await self._claim(free)
                    if entries:
                        self._start(entries)
                        continue
                answer = await self.redis.xreadgroup(
                    GROUP, self.name, {self.stream: ">"}, count=free, block=self.block_ms
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group()  # Redis came back empty: the stream starts again
                continue
            except self.backend.errors as exc:
                logger.warning("worker %s cannot read Slack work from Redis (%s); trying again",
                               self.name, exc)
                await _sleep_unless(stop, 1.0)
                continue
            for _stream, entries in answer or []:
                self._start(entries)

    async def _ensure_group(self) -> None:
        from redis.exceptions import ResponseError

        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        except self.backend.errors as exc:
            logger.warning("worker %s cannot reach Redis for Slack work (%s)", self.name, exc)

    async def _beat(self, stop: asyncio.Event) -> None:
        """Count this pool among the living, and keep its running pieces from being claimed."""
        while not stop.is_set():
            try:
                await self._alive(keys=[self.consumers], args=[ALIVE_FOR, self.name])
                running: list[Any] = list(self._running)
                if running:
                    await self.redis.xclaim(
                        self.stream, GROUP, self.name, min_idle_time=0, message_ids=running,
                        justid=True,
                    )
            except self.backend.errors as exc:
                logger.warning("worker %s cannot renew its Slack work in Redis (%s)", self.name, exc)
            await _sleep_unless(stop, self.heartbeat)

    async def _claim(self, count: int) -> list[tuple[str, dict[str, str]]]:
        """Pieces whose consumer stopped renewing them (it died), minus those given up."""
        answer = await self.redis.xautoclaim(
            self.stream, GROUP, self.name, min_idle_time=self.claim_idle_ms, start_id="0-0",
            count=count,
        )
        entries: list[tuple[str, dict[str, str]]] = [e for e in answer[1] if e and e[1]]
        kept = []
        for entry_id, fields in entries:
            pending = await self.redis.xpending_range(
                self.stream, GROUP, min=entry_id, max=entry_id, count=1
            )
            delivered = int(pending[0]["times_delivered"]) if pending else 1
            if delivered > MAX_DELIVERIES:
                logger.warning("Slack work %s was delivered %d times and never finished; given up: %s",
                               entry_id, delivered, str(fields.get("work"))[:300])
                await self._finished(entry_id)
            else:
                logger.info("worker %s takes over Slack work %s (delivery %d)", self.name, entry_id,
                            delivered)
                kept.append((entry_id, fields))
        return kept

    def _start(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        for entry_id, fields in entries:
            if entry_id in self._running:
                continue
            task = asyncio.create_task(self._do(entry_id, fields.get("work", "")))
            self._running[entry_id] = task

    async def _do(self, entry_id: str, text: str) -> None:
        try:
            try:
                work = SlackWork.from_json(text)
                client = await self.bot.client_for(work.team_id)
                assert self._session is not None, "pieces are started only while the pool runs"
                respond = SessionRespond(response_url=work.response_url, session=self._session)
                await self.bot.perform(work, client, respond)
            except Exception:  # one piece failing never stops the pool
                # As in the web process: logged with its stack, not tried again.
                logger.exception("Slack work %s failed", entry_id)
            with contextlib.suppress(*self.backend.errors):
                await self._finished(entry_id)
            self.done += 1
        finally:
            # Cancelled (the process is stopping) it is not acknowledged: another worker takes it.
            self._running.pop(entry_id, None)
            self._slot_freed.set()

    async def _finished(self, entry_id: str) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, entry_id)
            pipe.xdel(self.stream, entry_id)
            await pipe.execute()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
