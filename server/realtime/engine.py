"""The live room's Socket.IO server, made cheaper per idle connection: websockets are served
by server/realtime/websocket.py rather than from inside an aiohttp handler, one shared clock
sends every socket's Engine.IO pings, and each socket's send queue allocates nothing until
used."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

import engineio
import socketio
from engineio import packet as eio_packet
from engineio.async_socket import AsyncSocket

from server.realtime.websocket import CLOSE_GOING_AWAY, Connection, LeanWebSocket

log = logging.getLogger("showroom.realtime")


class SendQueue:
    """One socket's outgoing packets: the part of `asyncio.Queue` that Engine.IO and the
    room hub use (put, get, task_done, join, sizes), for a single reader at a time.

    An idle viewer's `asyncio.Queue` holds three deques and an `Event` with a fourth, about
    3 KB before anything is queued; this holds a short list. `get()` returns a future rather
    than a coroutine, so the `wait_for` around it in Engine.IO's writer does not start a task
    per wait either."""

    __slots__ = ("_getters", "_items", "_joiners", "_unfinished")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[Any]] | None = None
        self._joiners: list[asyncio.Future[None]] | None = None
        self._unfinished = 0

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def reader_waiting(self) -> bool:
        """Whether the socket's writer waits for its next packet (it is idle)."""
        return self._getters is not None and any(not g.done() for g in self._getters)

    def put_nowait(self, item: Any) -> None:
        self._unfinished += 1
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():  # a wait that timed out is cancelled: skip it
                if not getters:
                    self._getters = None
                getter.set_result(item)
                return
        self._getters = None
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def get(self) -> asyncio.Future[Any]:
        """A future of the next packet. Cancelling it (a timed-out wait) loses nothing: a
        packet is only handed to a future that is still waiting."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._items.pop(0))
        else:
            if self._getters is None:
                self._getters = []
            self._getters.append(future)
        return future

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joiners is not None:
            joiners, self._joiners = self._joiners, None
            for joiner in joiners:
                if not joiner.done():
                    joiner.set_result(None)

    async def join(self) -> None:
        if self._unfinished:
            if self._joiners is None:
                self._joiners = []
            joiner: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._joiners.append(joiner)
            await joiner


class PingClock:
    """Sends each socket its Engine.IO ping `ping_interval` after the last pong, as
    Engine.IO's own `_send_ping` task per socket does, from one task for all of them.
    Every socket waits the same interval, so the due times arrive in order: a FIFO."""

    def __init__(self, server: engineio.AsyncServer) -> None:
        self.server = server
        self.due: collections.deque[tuple[float, AsyncSocket]] = collections.deque()
        self.task: asyncio.Task[None] | None = None

    def schedule(self, socket: AsyncSocket) -> None:
        loop = asyncio.get_running_loop()
        self.due.append((loop.time() + self.server.ping_interval, socket))
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run(), name="engineio-pings")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.due:
            when, socket = self.due[0]
            if when > loop.time():
                await asyncio.sleep(when - loop.time())
                continue
            self.due.popleft()
            if socket.closing or socket.closed:
                continue
            # What `AsyncSocket._send_ping` does once its sleep is over.
            socket.last_ping = time.time()
            try:
                await socket.send(eio_packet.Packet(eio_packet.PING))
            except Exception:
                log.exception("sending an Engine.IO ping failed")


class LiveEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """Engine.IO with `LeanWebSocket` connections, `SendQueue`s and the shared `PingClock`.
    All go through Engine.IO's own extension points: its async mode's `websocket` driver,
    `create_queue` for each socket's queue, and a socket asks for its next ping with
    `start_background_task(socket._send_ping)` (`AsyncSocket.schedule_ping`, which ignores
    the task it gets back); tests/test_live_engine.py fails if any stops being so."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pings = PingClock(self)
        self.connections: set[Connection] = set()
        drivers: dict[str, Any] = self.__dict__["_async"]  # the aiohttp mode's drivers
        self._async = {**drivers, "websocket": LeanWebSocket}

    async def close_connections(self) -> None:
        """Server shutdown: every lean websocket is closed as "going away" (clients
        reconnect, as after any lost connection) and its socket's disconnect handlers run."""
        connections = list(self.connections)
        for connection in connections:
            connection.close(CLOSE_GOING_AWAY, "the server is shutting down")
        await asyncio.gather(
            *(
                c.socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_CLOSE)
                for c in connections
            ),
            return_exceptions=True,
        )

    def create_queue(self, *args: Any, **kwargs: Any) -> SendQueue:
        return SendQueue()

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        socket = getattr(target, "__self__", None)
        if (
            isinstance(socket, AsyncSocket)
            and getattr(target, "__func__", None) is AsyncSocket._send_ping
            and not args
            and not kwargs
        ):
            self.pings.schedule(socket)
            return None
        return super().start_background_task(target, *args, **kwargs)


class LiveServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on `LiveEngineIO`."""

    def _engineio_server_class(self) -> type[LiveEngineIO]:
        return LiveEngineIO
