"""Rate limits: one allowance per member across processes through the real Redis, each
process on its own while Redis is away, and idle local buckets do not pile up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from server.realtime import limits
from server.realtime.limits import RateLimiter
from tests.conftest import unavailable


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        unavailable(f"Redis at 127.0.0.1:6379 is unavailable: {exc}")
    yield client
    await client.aclose()


async def test_two_processes_share_one_allowance_through_redis(redis: Redis) -> None:
    first, second = RateLimiter(redis), RateLimiter(redis)  # as if in two processes
    key = f"chat:{uuid.uuid4()}:viewer:carol"
    assert [await first.take(key, 3, 1) for _ in range(2)] == [0.0, 0.0]
    assert await second.take(key, 3, 1) == 0.0
    wait = await second.take(key, 3, 1)  # the burst of 3 is spent, whichever process asks
    assert 0.9 < wait <= 1.0
    assert await first.take(key, 3, 1) > 0.9
    assert await first.take(f"chat:{uuid.uuid4()}:viewer:carol", 3, 1) == 0.0  # another show
    assert 0 < await redis.ttl(f"showroom:rate:{key}") <= 4  # forgotten once full again
    assert not first.buckets and not second.buckets


async def test_without_redis_each_process_decides_alone_and_retries_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    away = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens
    limiter = RateLimiter(away)
    key = "react:show:viewer:dan"
    assert [await limiter.take(key, 2, 1) for _ in range(2)] == [0.0, 0.0]
    assert await limiter.take(key, 2, 1) > 0.5  # the local bucket still limits
    assert limiter._redis_down_until > time.monotonic()  # not asked again for a while
    calls = 0

    async def counting_eval(*args: object) -> str:
        nonlocal calls
        calls += 1
        return "0"

    monkeypatch.setattr(away, "evalsha", counting_eval)
    await limiter.take(key, 2, 1)
    assert calls == 0
    limiter._redis_down_until = 0.0  # the retry time has come
    assert await limiter.take(key, 2, 1) == 0.0 and calls == 1
    await away.aclose()


async def test_idle_local_buckets_are_swept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "PRUNE_EVERY", 10)
    limiter = RateLimiter()
    for n in range(9):
        await limiter.take(f"vote:show:viewer:{n}", 10, 1000)  # full again within 10 ms
    assert len(limiter.buckets) == 9
    await asyncio.sleep(0.02)
    await limiter.take("vote:show:viewer:last", 10, 1000)
    assert list(limiter.buckets) == ["vote:show:viewer:last"]
