"""Lean live-room websockets (server/realtime/websocket.py): the frame reader against RFC
6455, and real connections that leave aiohttp after the handshake, hold no task while idle,
answer pings, close properly and lose nothing sent with the handshake."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp import WSMsgType, web
from engineio.async_socket import AsyncSocket

from server.app import create_app
from server.config import Settings
from server.keys import LIVE
from server.realtime import websocket
from server.realtime.engine import LiveServer
from server.realtime.websocket import (
    OP_BINARY,
    OP_CONTINUATION,
    OP_PING,
    OP_TEXT,
    FrameError,
    FrameReader,
    LeanSocket,
    accept_key,
    cookie_of,
)
from server.store.db import Database
from tests.conftest import viewer_token

MASK = b"\x1f\x8b\x00\xff"


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = MASK) -> bytes:
    """A client-to-server frame as a browser writes it (masked)."""
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    if size < 126:
        header = bytes((first, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((first, 0x80 | 127)) + size.to_bytes(8, "big")
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + masked


# --- the frame reader ---------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_a_message_of_any_size_is_read_whole_however_it_is_split(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = client_frame(OP_BINARY, payload) + client_frame(OP_TEXT, b"42")
    whole = FrameReader(1_000_000).feed(data)
    assert whole == [(OP_BINARY, payload), (OP_TEXT, b"42")]
    reader = FrameReader(1_000_000)
    step = 1 if size < 200 else 7919
    pieces = [reader.feed(data[i : i + step]) for i in range(0, len(data), step)]
    assert [m for piece in pieces for m in piece] == whole
    assert reader.buffer == b""


def test_fragments_are_put_together_with_control_frames_between() -> None:
    reader = FrameReader(100)
    data = (
        client_frame(OP_TEXT, "直播".encode(), fin=False)
        + client_frame(OP_PING, b"are you there")
        + client_frame(OP_CONTINUATION, b" now", fin=False)
        + client_frame(OP_CONTINUATION, b"!")
    )
    assert reader.feed(data) == [(OP_PING, b"are you there"), (OP_TEXT, "直播 now!".encode())]
    assert reader.fragments is None and reader.size == 0


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes((0x81, 0x02)) + b"40", 1002),  # not masked
        (bytes((0xC1, 0x82)) + MASK + b"40", 1002),  # RSV1: no compression was agreed
        (client_frame(0x3, b"x"), 1002),  # reserved opcode
        (client_frame(0xB, b"x"), 1002),  # reserved control opcode
        (client_frame(OP_PING, b"x", fin=False), 1002),  # fragmented control frame
        (client_frame(OP_PING, b"x" * 126), 1002),  # control frame over 125 bytes
        (client_frame(OP_CONTINUATION, b"x"), 1002),  # continuation of nothing
        (client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"), 1002),
        (client_frame(OP_TEXT, b"x" * 101), 1009),  # over the size limit
        (client_frame(OP_TEXT, b"x" * 60, fin=False) + client_frame(0, b"y" * 60), 1009),
    ],
)
def test_protocol_errors_are_refused_with_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(FrameError) as refused:
        FrameReader(100).feed(data)
    assert refused.value.code == code
    assert refused.value.reason


def test_an_oversized_message_is_refused_from_its_header_before_it_is_buffered() -> None:
    header = bytes((0x81, 0x80 | 127)) + (10**9).to_bytes(8, "big")
    with pytest.raises(FrameError) as refused:
        FrameReader(1_000_000).feed(header)  # no payload has arrived yet
    assert refused.value.code == 1009


def test_cookies_are_read_from_the_header() -> None:
    header = 'theme=dark; showroom_guest="g-123"; other=1'
    assert cookie_of(header, "showroom_guest") == "g-123"
    assert cookie_of("showroom_guest=abc", "showroom_guest") == "abc"
    assert cookie_of("a=1; b", "showroom_guest") is None
    assert cookie_of("", "showroom_guest") is None


def test_the_accept_key_is_rfc_6455_s_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# --- real connections ---------------------------------------------------------------------


class Echo:
    """A LiveServer with one namespace that answers `echo` and records disconnects."""

    def __init__(self, **engineio: Any) -> None:
        self.sio = LiveServer(async_mode="aiohttp", **engineio)
        self.gone: list[str] = []
        self.app = web.Application()
        self.sio.attach(self.app, socketio_path="socket.io")

        @self.sio.on("echo")  # type: ignore[untyped-decorator]
        async def echo(sid: str, data: Any) -> Any:
            return {"echo": data}

        @self.sio.on("disconnect")  # type: ignore[untyped-decorator]
        async def disconnect(sid: str, reason: Any = None) -> None:
            self.gone.append(sid)


@pytest.fixture
async def echo(aiohttp_client: Any) -> AsyncIterator[tuple[Echo, Any]]:
    server = Echo(max_http_buffer_size=2000)
    client = await aiohttp_client(server.app)
    yield server, client
    await server.sio.eio.close_connections()


async def _join(client: Any, **options: Any) -> Any:
    """A raw Engine.IO websocket that has connected to the Socket.IO default namespace."""
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket", **options)
    opened = await ws.receive_str(timeout=5)
    assert opened.startswith("0{") and json.loads(opened[1:])["sid"]
    await ws.send_str("40")
    connected = await ws.receive_str(timeout=5)
    assert connected.startswith("40{")
    return ws


async def _until(condition: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def _connection_tasks() -> list[asyncio.Task[Any]]:
    """Tasks that serve one connection in aiohttp or in Engine.IO's own websocket loop."""
    names = ("RequestHandler", "_handle_request", "_websocket_handler", "writer")
    return [t for t in asyncio.all_tasks() if any(n in repr(t.get_coro()) for n in names)]


async def test_a_websocket_leaves_aiohttp_after_the_handshake_and_idles_without_tasks(
    echo: tuple[Echo, Any],
) -> None:
    server, client = echo
    sockets = [await _join(client) for _ in range(20)]
    await _until(lambda: len(server.sio.eio.connections) == 20)
    assert all(isinstance(s, LeanSocket) for s in server.sio.eio.sockets.values())
    # aiohttp no longer counts them as its connections, and nothing runs for an idle one.
    assert client.server.handler.connections == []
    assert _connection_tasks() == []
    # What the socket keeps of the request: a few headers, not aiohttp's request.
    for environ in server.sio.environ.values():
        assert "aiohttp.request" not in environ and "wsgi.input" not in environ
        assert environ["HTTP_UPGRADE"] == "websocket"
    # Events and acks in both directions, still in order.
    ws = sockets[0]
    for n in range(5):
        await ws.send_str(f'42{n}["echo",{{"n":{n},"text":"直播 🎉"}}]')
    answers = [await ws.receive_str(timeout=5) for _ in range(5)]
    assert [a[:3] for a in answers] == [f"43{n}" for n in range(5)]
    assert [json.loads(a[3:]) for a in answers] == [
        [{"echo": {"n": n, "text": "直播 🎉"}}] for n in range(5)
    ]
    for ws in sockets:
        await ws.close()
    await _until(lambda: not server.sio.eio.sockets and not server.sio.eio.connections)
    assert len(server.gone) == 20


async def test_pings_are_answered_and_a_close_is_returned_with_its_code(
    echo: tuple[Echo, Any],
) -> None:
    server, client = echo
    ws = await _join(client, autoping=False)
    await ws.ping(b"still there?")
    pong = await ws.receive(timeout=5)
    assert pong.type is WSMsgType.PONG and pong.data == b"still there?"
    await ws.close(code=4001)
    assert ws.close_code == 4001  # the server answered the close with the same code
    await _until(lambda: len(server.gone) == 1 and not server.sio.eio.sockets)


async def test_an_oversized_or_malformed_message_closes_that_connection_only(
    echo: tuple[Echo, Any],
) -> None:
    server, client = echo
    big, bad, good = await _join(client), await _join(client), await _join(client)
    await big.send_str("42" + json.dumps(["echo", "x" * 3000]))  # over the 2,000-byte limit
    closed = await big.receive(timeout=5)
    assert closed.type is WSMsgType.CLOSE and closed.data == 1009
    await bad.send_bytes(b"\xff\xfe")  # binary is allowed...
    await bad._writer.send_frame(b"\xff\xfe", WSMsgType.TEXT)  # ...but text must be UTF-8
    closed = await bad.receive(timeout=5)
    assert closed.type is WSMsgType.CLOSE and closed.data == 1007
    await _until(lambda: len(server.gone) == 2)
    await good.send_str('421["echo","still here"]')
    assert await good.receive_str(timeout=5) == '431[{"echo":"still here"}]'
    assert len(server.sio.eio.sockets) == 1


async def test_what_the_client_sends_with_the_handshake_is_not_lost(
    echo: tuple[Echo, Any],
) -> None:
    """A client may write its first frames right behind the upgrade request, so aiohttp
    reads them with it: they must reach Engine.IO, after the OPEN packet goes out."""
    server, client = echo
    reader, writer = await asyncio.open_connection(client.host, client.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {client.host}:{client.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + client_frame(OP_TEXT, b"40")
        + client_frame(OP_TEXT, b'421["echo",1]')
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in head
    texts: list[str] = []
    while len(texts) < 3:
        first, second = await asyncio.wait_for(reader.readexactly(2), 5)
        assert first == 0x81 and second < 126  # whole, unmasked text frames
        texts.append((await reader.readexactly(second)).decode())
    assert texts[0].startswith("0{") and texts[1].startswith("40{")
    assert texts[2] == '431[{"echo":1}]'
    writer.close()
    await _until(lambda: not server.sio.eio.sockets)


async def test_a_client_that_stops_reading_is_dropped(
    echo: tuple[Echo, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, client = echo
    monkeypatch.setattr(websocket, "MAX_UNSENT", 64 * 1024)
    _, writer = await asyncio.open_connection(client.host, client.port, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + client_frame(OP_TEXT, b"40")
    )
    await _until(lambda: len(server.sio.manager.rooms.get("/", {}).get(None, {})) == 1)
    (sid,) = server.sio.manager.rooms["/"][None]
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    transport.pause_reading()  # the client stops reading; the server keeps sending
    for _ in range(4000):
        if server.gone:
            break
        await server.sio.emit("news", "x" * 2000, to=sid)
        await asyncio.sleep(0)
    await _until(lambda: server.gone == [sid] and not server.sio.eio.sockets)
    writer.close()


async def test_a_polling_client_upgrades_through_engineio_s_own_loop(
    echo: tuple[Echo, Any],
) -> None:
    server, client = echo
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(str(client.make_url("/")), wait_timeout=5)  # polling, then upgrade
    await _until(lambda: sio.transport() == "websocket")
    assert await sio.call("echo", "over an upgraded socket", timeout=5) == {
        "echo": "over an upgraded socket"
    }
    (socket,) = server.sio.eio.sockets.values()
    assert type(socket) is AsyncSocket and not server.sio.eio.connections
    await sio.disconnect()
    await _until(lambda: len(server.gone) == 1)


async def test_shutting_the_server_down_tells_viewers_it_is_going_away(
    db: Database, settings: Settings, aiohttp_client: Any
) -> None:
    """The app closes lean websockets as it shuts down (aiohttp no longer knows them), with
    1001 and no Engine.IO CLOSE, so clients reconnect as after any lost connection; the
    live room's disconnect handling runs for each."""
    app = create_app(settings)
    client = await aiohttp_client(app)
    ws = await client.ws_connect("/socket.io/?EIO=4&transport=websocket")
    assert (await ws.receive_str(timeout=5)).startswith("0{")
    await ws.send_str("40/live," + json.dumps({"token": viewer_token("member-going-away")}))
    assert (await ws.receive_str(timeout=5)).startswith("40/live,{")
    assert len(app[LIVE].principals) == 1
    await client.server.close()  # the app's shutdown
    message = await ws.receive(timeout=5)
    assert message.type is WSMsgType.CLOSE and message.data == 1001
    assert app[LIVE].principals == {}
