"""Backend fixtures for the sync tests: each test that takes `backend` runs in memory and on Redis.

Redis comes from OODALOO_TEST_REDIS_URL (set by scripts/test). Without it the Redis cases skip,
except under CI=true, where they fail. Every Redis case gets its own key prefix, deleted afterwards,
so parallel runs never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from service_env import REDIS_ENV, required_service_url

from sync.backends import Backend, MemoryBackend, RedisBackend


def _redis_url() -> str:
    return required_service_url(REDIS_ENV, "Redis", "127.0.0.1:6379")


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """A fresh backend of each kind (Redis under a key prefix unique to this test)."""
    if request.param == "memory":
        memory = MemoryBackend()
        yield memory
        await memory.aclose()
        return
    redis_backend = RedisBackend.from_url(
        _redis_url(), prefix=f"oodaloo-test:{uuid.uuid4().hex[:12]}"
    )
    await redis_backend.ping()
    try:
        yield redis_backend
    finally:
        await redis_backend.delete_all_keys()
        await redis_backend.aclose()


@pytest.fixture
async def peer_backend(backend: Backend) -> AsyncIterator[Backend]:
    """What a second process would use: its own Redis connections on the same keys.

    In memory the one process's backend is shared, as two components in one process share it.
    """
    if isinstance(backend, MemoryBackend):
        yield backend
        return
    peer = RedisBackend.from_url(_redis_url(), prefix=backend.prefix)
    try:
        yield peer
    finally:
        await peer.aclose()
