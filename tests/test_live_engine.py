"""The live room's leaner Engine.IO server (server/realtime/engine.py): its send queue keeps
asyncio.Queue's behaviour, and pings come from one shared clock, not one task per socket."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from engineio.async_socket import AsyncSocket

from server.realtime.engine import LiveEngineIO, LiveServer, SendQueue
from server.realtime.websocket import DirectQueue


async def test_queue_hands_out_packets_in_order() -> None:
    queue = SendQueue()
    assert queue.empty() and queue.qsize() == 0
    queue.put_nowait("a")
    await queue.put("b")
    assert queue.qsize() == 2 and not queue.empty()
    assert await queue.get() == "a"
    assert queue.get_nowait() == "b"
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_queue_wakes_a_waiting_reader_and_loses_nothing_to_a_timeout() -> None:
    queue = SendQueue()
    assert not queue.reader_waiting()
    # Engine.IO's writer waits with a timeout: a timed-out wait must not swallow a packet.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    assert not queue.reader_waiting()
    waiting = asyncio.ensure_future(asyncio.wait_for(queue.get(), 5))
    await asyncio.sleep(0)
    assert queue.reader_waiting()
    queue.put_nowait("packet")
    assert await waiting == "packet"
    assert queue.empty() and not queue.reader_waiting()


async def test_queue_join_waits_for_every_packet_to_be_done() -> None:
    queue = SendQueue()
    await queue.join()  # nothing queued: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    queue.get_nowait()
    queue.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        queue.task_done()


async def test_engineio_still_asks_the_server_for_queues_and_ping_tasks() -> None:
    """The two Engine.IO extension points LiveEngineIO relies on: a socket's queue comes
    from `create_queue`, and its next ping is `start_background_task(socket._send_ping)`."""
    server = LiveEngineIO(async_mode="aiohttp", ping_interval=30)
    socket = AsyncSocket(server, "sid-1")
    assert isinstance(socket.queue, SendQueue)
    tasks = len(asyncio.all_tasks())
    socket.schedule_ping()
    assert [s for _, s in server.pings.due] == [socket]
    assert socket.last_ping is None
    # The one clock task, and no task for the socket itself.
    assert len(asyncio.all_tasks()) == tasks + 1
    assert server.pings.task is not None
    other = AsyncSocket(server, "sid-2")
    other.schedule_ping()
    assert len(asyncio.all_tasks()) == tasks + 1
    server.pings.task.cancel()


async def _connect(client: Any) -> Any:
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive_str(timeout=2)
    assert opened.startswith("0{")
    return ws


async def test_pings_arrive_from_the_shared_clock_and_silent_sockets_are_dropped(
    aiohttp_client: Any,
) -> None:
    sio = LiveServer(async_mode="aiohttp", ping_interval=0.2, ping_timeout=0.3)
    app = web.Application()
    sio.attach(app, socketio_path="socket.io")
    client = await aiohttp_client(app)
    answering, silent = await _connect(client), await _connect(client)
    assert len(sio.eio.sockets) == 2
    # Websockets from the start are lean: packets are written as they are sent.
    assert all(isinstance(s.queue, DirectQueue) for s in sio.eio.sockets.values())
    started = time.monotonic()
    pings = 0
    while pings < 3:
        message = await answering.receive(timeout=2)
        assert message.type is WSMsgType.TEXT
        if message.data == "2":  # Engine.IO ping: answer it, and the next one comes
            pings += 1
            await answering.send_str("3")
    # Three pings 0.2 s apart, every one after a pong.
    assert time.monotonic() - started >= 0.5
    pending = [
        t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())
    ]  # Engine.IO's own per-socket ping task
    assert pending == []
    # The socket that never answered its ping is closed by the server.
    while True:
        message = await silent.receive(timeout=3)
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
            break
    assert not answering.closed
    await answering.close()
    await sio.shutdown()
