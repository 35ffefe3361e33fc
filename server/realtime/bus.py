"""Rooms across server processes: events travel over Redis pub/sub (one channel per show),
presence is summed in Redis, and whatever pub/sub drops (it is at-most-once, and Redis may
be away) is repaired from the database by event number."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from server.realtime.rooms import Event, RoomHub

log = logging.getLogger("showroom.realtime")

REPAIR_INTERVAL = 2.0  # how often each room's event number is checked against the database
PRESENCE_REFRESH = 5.0  # how often this node re-announces its viewers
PRESENCE_TTL = 15.0  # a node that stops announcing drops out of the count after this
OUTBOX_LIMIT = 10_000  # events waiting for Redis; past this they are dropped and repaired
SUBSCRIBE_WAIT = 1.0  # longest a join waits for the show's channel subscription


def channel(show_id: str) -> str:
    return f"showroom:room:{show_id}"


def presence_key(show_id: str) -> str:
    return f"showroom:presence:{show_id}"


# Given {show id: every event up to this number delivered}, deliver what is missing.
# The flag asks it to also check the rooms' members against stored bans, which carry no
# event number (while Redis is away, and once after it returns).
Repair = Callable[[dict[str, int], bool], Awaitable[None]]


class RedisRoomBus:
    """Relays this node's room events to other nodes and theirs to this one."""

    def __init__(self, redis: Redis, hub: RoomHub, repair: Repair) -> None:
        self.redis = redis
        self.hub = hub
        self.repair = repair
        self.node = uuid.uuid4().hex[:12]
        self.outbox: asyncio.Queue[tuple[str, Event]] = asyncio.Queue(OUTBOX_LIMIT)
        self.viewers: dict[str, int] = {}
        self.connected = False
        self._tasks: list[asyncio.Task[None]] = []
        self._repair_now = asyncio.Event()
        self._sweep_bans = True
        self._subscribed: dict[str, asyncio.Event] = {}  # channel -> set once subscribed

    # --- called by the hub ------------------------------------------------------------------

    def send(self, show_id: str, event: Event) -> None:
        try:
            self.outbox.put_nowait((show_id, event))
        except asyncio.QueueFull:
            pass  # Redis is away or slow: other nodes will repair this from the database

    def viewer_count(self, show_id: str) -> int | None:
        return self.viewers.get(show_id)

    async def watch(self, show_id: str) -> None:
        """Return once this node receives the show's events from other nodes, so a joiner
        reads its snapshot only after subscribing. Without Redis it returns at once: the
        repair loop covers what pub/sub would have carried."""
        if not self.connected:
            return
        ready = self._subscribed.setdefault(channel(show_id), asyncio.Event())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), SUBSCRIBE_WAIT)

    # --- tasks ------------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="room-bus-listen"),
            asyncio.create_task(self._publish(), name="room-bus-publish"),
            asyncio.create_task(self._presence(), name="room-bus-presence"),
            asyncio.create_task(self._repairs(), name="room-bus-repair"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        """Owns the pub/sub connection: keeps it subscribed to the rooms this node serves,
        and reconnects with doubling back-off when Redis goes away."""
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub()
            subscribed: set[str] = set()
            try:
                await pubsub.subscribe("showroom:nodes")
                if not self.connected:
                    log.info("room bus connected to Redis")
                self.connected, backoff = True, 0.1
                self._repair_now.set()  # whatever was missed while away
                self._sweep_bans = True
                while True:
                    wanted = {channel(show_id) for show_id in self.hub.rooms}
                    if wanted - subscribed:
                        await pubsub.subscribe(*(wanted - subscribed))
                        # Redis handles commands in order: once a later command answers,
                        # the subscription is in place.
                        await self.redis.ping()
                        for name in wanted - subscribed:
                            self._subscribed.setdefault(name, asyncio.Event()).set()
                    if subscribed - wanted:
                        await pubsub.unsubscribe(*(subscribed - wanted))
                        for name in subscribed - wanted:
                            self._subscribed.pop(name, None)
                    subscribed = wanted
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                    if message is not None and message["type"] == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning(
                        "room bus lost Redis (%s); serving local viewers, repairing from the database",
                        exc,
                    )
                self.connected = False
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _receive(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            log.warning("ignored a malformed room bus message")
            return
        if message.get("node") != self.node:
            self.hub.deliver(str(message["show_id"]), message["event"])

    async def _publish(self) -> None:
        while True:
            show_id, event = await self.outbox.get()
            payload = json.dumps(
                {"node": self.node, "show_id": show_id, "event": event}, ensure_ascii=False
            )
            try:
                await self.redis.publish(channel(show_id), payload)
            except (RedisError, OSError):
                # Dropped: the other nodes' repair loop fetches it from the database.
                await asyncio.sleep(0.05)

    async def _presence(self) -> None:
        """Every second: this node's members into each show's sorted set (member -> expiry),
        then the union's size as the show's viewer count. A member with tabs on two nodes
        is one entry."""
        announced = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.time()
            refresh = now - announced >= PRESENCE_REFRESH
            try:
                for show_id, room in list(self.hub.rooms.items()):
                    key = presence_key(show_id)
                    async with self.redis.pipeline(transaction=False) as pipe:
                        subjects = {m.subject for m in room.members.values()}
                        if subjects and (refresh or room.presence_changed):
                            pipe.zadd(key, dict.fromkeys(subjects, now + PRESENCE_TTL))
                            pipe.expire(key, int(PRESENCE_TTL * 2))
                        if room.presence_left:
                            pipe.zrem(key, *room.presence_left)
                        pipe.zremrangebyscore(key, "-inf", now)
                        pipe.zcard(key)
                        results = await pipe.execute()
                    room.presence_changed, room.presence_left = False, set()
                    self.viewers[show_id] = int(results[-1])
                if refresh:
                    announced = now
                for gone in set(self.viewers) - set(self.hub.rooms):
                    del self.viewers[gone]
            except (RedisError, OSError):
                self.viewers.clear()  # fall back to counting this node's viewers

    async def _repairs(self) -> None:
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._repair_now.wait(), REPAIR_INTERVAL)
            self._repair_now.clear()
            seen = {
                show_id: room.contiguous
                for show_id, room in self.hub.rooms.items()
                if room.contiguous >= 0
            }
            if not seen:
                continue
            try:
                sweep, self._sweep_bans = self._sweep_bans or not self.connected, False
                await self.repair(seen, sweep)
            except Exception:
                log.exception("room repair failed")
