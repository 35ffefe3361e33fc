"""Per-member rate limits for live-room events: token buckets, shared by every server
process through Redis when it is configured, so a member with tabs on two processes gets
one allowance. Without Redis, or while it is away, each process keeps its own buckets."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from server.domain.chat import TokenBucket

log = logging.getLogger("showroom.realtime")

REDIS_TIMEOUT = 0.25  # seconds a rate check waits for Redis before deciding locally
REDIS_RETRY = 5.0  # seconds of local decisions after Redis failed, before asking it again
PRUNE_EVERY = 1000  # takes between two sweeps of idle local buckets

# KEYS[1] the bucket; ARGV burst, per_second. Redis's own clock, so every process agrees.
# Answers the seconds to wait (as a string, Lua numbers are truncated to integers), 0 if
# the event is allowed.
TAKE = """
local burst, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, updated = burst, now end
tokens = math.min(burst, tokens + (now - updated) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return tostring(wait)
"""


class RateLimiter:
    def __init__(self, redis: Any = None) -> None:
        self.redis: Redis | None = redis
        self.buckets: dict[str, TokenBucket] = {}
        self._takes = 0
        self._redis_down_until = 0.0
        self._script: AsyncScript | None = None

    async def take(self, key: str, burst: float, per_second: float) -> float:
        """Spend one of the member's tokens for this key: 0.0 if allowed, else the seconds
        to wait before trying again."""
        now = time.monotonic()
        if self.redis is not None and now >= self._redis_down_until:
            try:
                if self._script is None or self._script.registered_client is not self.redis:
                    self._script = self.redis.register_script(TAKE)  # EVALSHA after the first
                answer = await asyncio.wait_for(
                    self._script(keys=[f"showroom:rate:{key}"], args=[burst, per_second]),
                    REDIS_TIMEOUT,
                )
                return float(answer)
            except Exception as exc:  # Redis away or slow: this process decides alone
                log.warning("rate limits are per process until Redis answers: %r", exc)
                self._redis_down_until = now + REDIS_RETRY
        return self._take_locally(key, burst, per_second, now)

    def _take_locally(self, key: str, burst: float, per_second: float, now: float) -> float:
        self._takes += 1
        if self._takes % PRUNE_EVERY == 0:
            # A bucket idle long enough to be full again is the same as no bucket.
            self.buckets = {
                k: b for k, b in self.buckets.items() if now - b.updated < b.burst / b.per_second
            }
        bucket = self.buckets.setdefault(key, TokenBucket(burst, per_second))
        return bucket.take(now)
