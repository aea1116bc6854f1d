"""The work after a Slack ack handed to `oodaloo worker` through Redis (`bot.slack.handoff`).

With real processes: a Pay click at `oodaloo serve` is paid by `oodaloo worker` (both on PostgreSQL
and Redis database `REDIS_DB`, flushed before and after: `oodaloo serve` has no key prefix setting),
set up as tests/bot/test_two_processes.py does it (its helpers reused).

One Oodaloo (`bot.local`'s stack: the web app over loopback HTTP, the local Slack, the QBO sandbox)
acks a click on "and N more" and a `/runway` command; another Oodaloo on the same PostgreSQL
database, with its own Slack bot, consumes the stream as a worker does and answers through the
local Slack. Each test has its own Redis key prefix (OODALOO_TEST_REDIS_URL; skipped without it,
failed under CI=true). Also: a piece left pending by a consumer that died is taken over by another;
with no consumer alive, or Redis out of reach, the web process does the work itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from db_conftest import MigratedDatabase
from redis.asyncio import Redis
from service_env import REDIS_ENV, dedicated_redis_db, required_service_url
from slack_sdk.web.async_client import AsyncWebClient
from test_crash_restart import card_line
from test_crash_restart import until as until_found
from test_crash_restart_worker import click, no_errors, serving, settings_of, start_worker
from test_two_processes import World, business_ready, pay_clicks
from test_two_processes import world as world  # the fixture: QuickBooks and Slack over HTTP

from bot.bootstrap import Oodaloo
from bot.local import CHANNEL, FAST, OWNER, LocalStack, free_socket, local_stack
from bot.slack import blocks as kit
from bot.slack.app import SlackBot
from bot.slack.deliveries import DeliveryLog
from bot.slack.handoff import (
    GROUP,
    InProcess,
    RedisStream,
    SlackWork,
    WorkConsumers,
    backlog,
    consumers_key,
    stream_key,
)
from qbo_sandbox.oauth import TOKEN_PATH
from slack_sandbox.workspace import Message
from sync import MemoryBackend, RedisBackend

pytestmark = pytest.mark.http
#: The Redis database of OODALOO_TEST_REDIS_URL's server only the process test uses (flushed).
REDIS_DB = dedicated_redis_db("slack_handoff")
#: The web app's Oodaloo and the worker's share one PostgreSQL database, as processes do.
ON_POSTGRES = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
async def redis() -> AsyncIterator[RedisBackend]:
    backend = RedisBackend.from_url(
        required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379"),
        prefix=f"oodaloo-test:{uuid.uuid4().hex[:12]}",
    )
    await backend.ping()
    try:
        yield backend
    finally:
        await backend.delete_all_keys()
        await backend.aclose()


class Counted:
    """The web process's own way, counting the pieces it was given."""

    def __init__(self, bot: SlackBot) -> None:
        self.inner = InProcess(bot)
        self.count = 0

    async def hand_off(
        self, work: SlackWork, client: AsyncWebClient, respond: Any, *, delivery: str | None
    ) -> None:
        self.count += 1
        await self.inner.hand_off(work, client, respond, delivery=delivery)


@pytest.fixture
async def stack(migrated: MigratedDatabase) -> AsyncIterator[LocalStack]:
    async with local_stack(migrated.url) as built:
        yield built


def web_hands_off(stack: LocalStack, redis: RedisBackend) -> Counted:
    """The stack's web app acks and adds to `redis`'s stream, as `oodaloo serve` with REDIS_URL."""
    here = Counted(stack.bot)
    stack.bot.hand_off = RedisStream(redis, here, DeliveryLog(redis))
    return here


@contextlib.asynccontextmanager
async def worker(stack: LocalStack, redis: RedisBackend, **options: Any) -> AsyncIterator[WorkConsumers]:
    """Another Oodaloo on the same database with its own Slack bot, consuming as `oodaloo worker`."""
    sandbox = stack.sandbox
    oodaloo = await Oodaloo.start(
        stack.oodaloo.settings,
        qbo_transport=httpx.ASGITransport(app=sandbox.app),
        backend=MemoryBackend(),
        sync_settings=replace(FAST, qbo_base_url=sandbox.base_url),
        qbo_token_url=f"{sandbox.base_url}{TOKEN_PATH}",
    )
    bot = SlackBot(oodaloo)
    consumers = WorkConsumers(bot, redis, heartbeat=0.1, **options)
    stop = asyncio.Event()
    running = asyncio.create_task(consumers.run(stop, grace=10.0))
    try:
        await until(lambda: _workers(redis), "the worker counted among the living")
        yield consumers
    finally:
        stop.set()
        await running
        await bot.idle()
        await oodaloo.aclose()


async def _workers(redis: RedisBackend) -> bool:
    return (await backlog(redis)).get("workers", 0) > 0


async def until(check: Any, what: str, seconds: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


def answers(stack: LocalStack) -> int:
    """How many answers the owner has been shown: ephemeral messages and modals ("Show all")."""
    return len(stack.ephemerals(OWNER)) + len(stack.workspace.open_views(OWNER))


async def answered(stack: LocalStack, count: int) -> None:
    """Until the owner has been shown `count` answers."""
    await stack.until(lambda: answers(stack) >= count or None, timeout=15)


@ON_POSTGRES
async def test_a_click_and_a_command_acked_by_the_web_app_are_done_by_a_worker(
    stack: LocalStack, redis: RedisBackend
) -> None:
    here = web_hands_off(stack, redis)
    digest = await stack.post_digest()
    async with worker(stack, redis) as consumers:
        click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
        assert click.status == 200, click.text
        await answered(stack, 1)
        command = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
        assert command.status == 200, command.text
        await answered(stack, 2)
        await until(lambda: _done(consumers, 2), "the worker finished both pieces")
    [invoices], [summary] = stack.workspace.open_views(OWNER), stack.ephemerals(OWNER)
    assert kit.INVOICE_REMIND in str(invoices.blocks), invoices
    assert "runway" in (summary.text + str(summary.blocks)).lower(), summary
    assert here.count == 0, "the web process did work a worker was there to do"
    assert await backlog(redis) == {"waiting": 0, "workers": 0}


async def _done(consumers: WorkConsumers, count: int) -> bool:
    return consumers.done >= count


@ON_POSTGRES
async def test_work_left_by_a_worker_that_died_is_taken_over_by_another(
    stack: LocalStack, redis: RedisBackend
) -> None:
    web_hands_off(stack, redis)
    digest = await stack.post_digest()
    client = redis.client
    # A worker that read the piece and died before finishing it (killed: nothing acknowledged).
    await client.xgroup_create(stream_key(redis), GROUP, id="0", mkstream=True)
    await client.zadd(consumers_key(redis), {"dead": 2**40})
    click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
    assert click.status == 200, click.text
    taken = await client.xreadgroup(GROUP, "dead", {stream_key(redis): ">"}, count=10, block=2000)
    assert taken and len(taken[0][1]) == 1, taken
    await client.zrem(consumers_key(redis), "dead")
    assert answers(stack) == 0

    async with worker(stack, redis, claim_idle_ms=200) as survivor:
        await answered(stack, 1)
        await until(lambda: _done(survivor, 1), "the survivor finished the piece")
    assert await client.xpending(stream_key(redis), GROUP) == {
        "pending": 0, "min": None, "max": None, "consumers": []
    }
    assert await client.xlen(stream_key(redis)) == 0


@ON_POSTGRES
async def test_with_no_worker_alive_the_web_process_does_the_work(
    stack: LocalStack, redis: RedisBackend
) -> None:
    here = web_hands_off(stack, redis)
    digest = await stack.post_digest()
    click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
    assert click.status == 200, click.text
    await answered(stack, 1)
    assert here.count == 1
    assert await redis.client.xlen(stream_key(redis)) == 0, "work was left for nobody"


@ON_POSTGRES
async def test_with_redis_out_of_reach_the_web_process_does_the_work(stack: LocalStack) -> None:
    sock = free_socket()  # bound, never listening: connections are refused
    unreachable = RedisBackend.from_url(f"redis://127.0.0.1:{sock.getsockname()[1]}/0", prefix="oodaloo-test")
    try:
        here = web_hands_off(stack, unreachable)
        digest = await stack.post_digest()
        click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
        assert click.status == 200, click.text
        command = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
        assert command.status == 200, command.text
        await answered(stack, 2)
        assert here.count == 2
    finally:
        await unreachable.aclose()
        sock.close()


class HeldRedis:
    """A hop in front of the real Redis that holds every command `hold` seconds before passing it
    on (None: holds it for good), as a Redis busy elsewhere, or stuck, would; answers come back as
    they are."""

    def __init__(self, real: RedisBackend) -> None:
        address = real.client.connection_pool.connection_kwargs
        self.upstream = (str(address.get("host", "127.0.0.1")), int(address.get("port", 6379)))
        self.db = int(address.get("db", 0))
        self.hold: float | None = 0.0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> str:
        """The URL to reach Redis through the hop."""
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/{self.db}"

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in self._pipes:
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        pipes = [asyncio.create_task(self._pass(reader, up_writer, held=True)),
                 asyncio.create_task(self._pass(up_reader, writer, held=False))]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    async def _pass(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, held: bool) -> None:
        try:
            while data := await source.read(65536):
                if held and self.hold is None:
                    await asyncio.Event().wait()
                if held and self.hold:
                    await asyncio.sleep(self.hold)
                sink.write(data)
                await sink.drain()
        finally:
            sink.close()


@contextlib.asynccontextmanager
async def handing_off_through(
    stack: LocalStack, redis: RedisBackend, digest: Message
) -> AsyncIterator[tuple[HeldRedis, Counted]]:
    """The stack's web app adds its work through a `HeldRedis` hop, with a worker registered alive
    that reads nothing: whatever is added stays in the stream to be counted. A first click, not
    held, opens the hop's connection and has Redis know the hand-off's script."""
    hop = HeldRedis(redis)
    async with hop as url:
        through = RedisBackend.from_url(url, prefix=redis.prefix)
        try:
            here = web_hands_off(stack, through)
            await redis.client.zadd(consumers_key(redis), {"reads-later": 2**40})
            first = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
            assert first.status == 200, first.text
            assert await redis.client.xlen(stream_key(redis)) == 1
            yield hop, here
        finally:
            await through.aclose()


@ON_POSTGRES
async def test_slack_gets_its_ack_only_once_the_work_is_in_the_stream(
    stack: LocalStack, redis: RedisBackend
) -> None:
    """The 200 leaves after the hand-off: held on its way to Redis, the work is there when Slack
    has its ack, so a web process that died right after an ack has lost no click."""
    digest = await stack.post_digest()
    async with handing_off_through(stack, redis, digest) as (hop, here):
        hop.hold = 0.3
        click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
        assert (click.status, click.answer_error) == (200, None), click.text
        assert await redis.client.xlen(stream_key(redis)) == 2
        command = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
        assert (command.status, command.answer_error) == (200, None), command.text
        assert await redis.client.xlen(stream_key(redis)) == 3
    assert here.count == 0


@ON_POSTGRES
async def test_with_redis_stuck_the_ack_comes_in_slacks_time_and_the_web_process_does_the_work(
    stack: LocalStack, redis: RedisBackend
) -> None:
    digest = await stack.post_digest()
    async with handing_off_through(stack, redis, digest) as (hop, here):
        hop.hold = None
        click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
        # Within Slack's 3 seconds (the local Slack drops a later ack, as Slack does).
        assert (click.status, click.answer_error) == (200, None), click.text
        await answered(stack, 1)
        assert here.count == 1
    assert await redis.client.xlen(stream_key(redis)) == 1, "only the first click is in the stream"


def test_a_piece_of_work_reads_back_as_it_was_written() -> None:
    work = SlackWork("click", kit.BILL_PAY, {"team": {"id": "T1"}, "response_url": "http://x/r/1"})
    again = SlackWork.from_json(work.to_json())
    assert again == work and again.team_id == "T1" and again.response_url == "http://x/r/1"
    with pytest.raises(ValueError, match="not a piece of Slack work"):
        SlackWork.from_json('{"kind": "other", "body": {}}')


@ON_POSTGRES
async def test_a_pay_click_at_oodaloo_serve_is_paid_by_oodaloo_worker(
    migrated: MigratedDatabase, world: World, tmp_path: Path
) -> None:
    base = urlsplit(required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379"))
    if base.scheme == "unix":
        pytest.skip("the process test picks a Redis database by the URL's path")
    redis_url = urlunsplit(base._replace(path=f"/{REDIS_DB}"))
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    try:
        async with business_ready(world, settings_of(world, migrated.url, redis_url)) as setup:
            bill_id = kit.shown_ids(setup.digest.blocks, "bill")[0]
            body = (await pay_clicks(world, setup))[bill_id, OWNER]
            async with serving(world, migrated.url, redis_url, tmp_path / "serve", 1) as [served]:
                worker = await start_worker(world, migrated.url, tmp_path, "0", redis_url=redis_url)
                try:

                    async def consuming() -> bool | None:
                        worker.must_be_running()
                        async with httpx.AsyncClient() as client:
                            answer = await client.get(f"{served.url}/healthz")
                        workers = answer.json()["redis"].get("slack_work", {}).get("workers", 0)
                        return True if workers else None

                    await until_found("the worker takes Slack work", consuming)
                    answer = await click(served.url, world, body)
                    assert answer.status_code == 200, answer.text

                    async def paid() -> str | None:
                        line = card_line(world, setup, bill_id)
                        return line if ":white_check_mark: Paid" in line else None

                    await until_found("the card says Paid", paid)
                finally:
                    exit_code = await worker.stop()
            assert exit_code == 0, worker.output()[-6000:]
            no_errors(worker, served)
            no_errors(served, worker)
            assert "QBO POST /billpayment" in worker.output(), worker.output()[-6000:]
            assert "QBO POST /billpayment" not in served.output(), served.output()[-6000:]
    finally:
        await redis.flushdb()
        await redis.aclose()


@ON_POSTGRES
async def test_slacks_retry_of_a_click_and_of_a_command_is_handed_off_once(
    stack: LocalStack, redis: RedisBackend
) -> None:
    """The first arrival is noted in the round trip that adds the work to the stream; the retry
    (the very same body, with Slack's retry headers) is acked and dropped there."""
    web_hands_off(stack, redis)
    digest = await stack.post_digest()
    async with worker(stack, redis) as consumers:
        click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
        command = await stack.agent.slash_command(OWNER, CHANNEL, "/runway", "")
        retried = [await stack.agent.redeliver(click), await stack.agent.redeliver(command)]
        assert [answer.status for answer in (click, command, *retried)] == [200] * 4
        await answered(stack, 2)
        await until(lambda: _done(consumers, 2), "the worker finished both pieces")
        await asyncio.sleep(0.5)  # long enough for a repeat to have been picked up, were it added
        assert consumers.done == 2
    assert answers(stack) == 2


async def test_without_redis_a_retried_click_is_done_once_in_process(stack: LocalStack) -> None:
    digest = await stack.post_digest()
    click = await stack.agent.click(OWNER, digest, kit.SHOW_MORE_INVOICES)
    retry = await stack.agent.redeliver(click)
    assert (click.status, retry.status) == (200, 200)
    await answered(stack, 1)
    await stack.bot.idle()
    assert answers(stack) == 1
