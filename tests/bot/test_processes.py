"""`oodaloo serve` and `oodaloo worker` as an operator starts them: real processes, real ports,
stopped with SIGTERM like a process manager does."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bot.local import free_socket
from runway.crypto import generate_key

REPOSITORY = Path(__file__).resolve().parents[2]


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "QBO_", "REDIS_", "DATABASE_"))}
    return {
        **keep,
        "PYTHONPATH": str(REPOSITORY),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'oodaloo.db'}",
        "TOKEN_ENCRYPTION_KEY": generate_key(),
        **extra,
    }


async def _start(tmp_path: Path, *args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, cwd=tmp_path, env=_environment(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    process = await _start(tmp_path, "serve", "--host", "127.0.0.1", "--port", str(port),
                           SLACK_BOT_TOKEN="xoxb-1-2-test", SLACK_SIGNING_SECRET="s3cret")
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                try:
                    await client.get(f"{url}/healthz")
                    break
                except httpx.TransportError:
                    if process.returncode is not None:
                        raise AssertionError((await process.stdout.read()).decode()) from None  # type: ignore[union-attr]
                    await asyncio.sleep(0.1)
        yield url, process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)


async def test_serve_answers_health_and_refuses_unsigned_slack_requests(
    serve: tuple[str, asyncio.subprocess.Process],
) -> None:
    url, process = serve
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{url}/healthz")
        assert health.status_code == 200 and health.json()["database"]["ok"] is True
        unsigned = await client.post(f"{url}/slack/events", content="command=%2Frunway&text=",
                                     headers={"content-type": "application/x-www-form-urlencoded"})
        assert unsigned.status_code == 401
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_serve_without_slack_settings_says_what_to_set(tmp_path: Path) -> None:
    process = await _start(tmp_path, "serve", "--port", "0")
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode == 2
    assert "SLACK_SIGNING_SECRET" in output and "Traceback" not in output


async def test_worker_with_an_unknown_cpu_priority_says_what_it_takes(tmp_path: Path) -> None:
    process = await _start(tmp_path, "worker", WORKER_NICE="fast")
    output = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
    assert process.returncode == 2
    assert "WORKER_NICE" in output and "must be idle or a number from 0 to 19" in output, output
    assert "Traceback" not in output


async def test_worker_runs_alone_without_redis_and_stops_on_sigterm(tmp_path: Path) -> None:
    # The default CPU priority, whatever the suite's processes are given.
    process = await _start(tmp_path, "worker", WORKER_NICE="idle")
    assert process.stdout is not None
    seen = []
    async with asyncio.timeout(60):
        while not any("schedules and runs every job itself" in line for line in seen):
            line = (await process.stdout.readline()).decode()
            assert line, "".join(seen)
            seen.append(line)
    if hasattr(os, "SCHED_IDLE"):  # runs only on CPU `oodaloo serve` leaves
        assert os.sched_getscheduler(process.pid) == os.SCHED_IDLE
    process.send_signal(signal.SIGTERM)
    rest = (await asyncio.wait_for(process.stdout.read(), 30)).decode()
    assert await asyncio.wait_for(process.wait(), 30) == 0, "".join(seen) + rest
