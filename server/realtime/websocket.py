"""Live-room websockets served without aiohttp's per-connection state.

Engine.IO serves a websocket from inside the aiohttp handler that accepted it: for the
socket's whole life aiohttp keeps the parsed request, its handler, two tasks and the
middleware frames, and Engine.IO adds a writer task and a task per read. With thousands of
idle viewers that is most of the server's memory (docs/BENCHMARKS.md). `LeanWebSocket` is
Engine.IO's websocket driver for a socket that connects over websocket from the start (what
the pages and the documented client do): it answers the handshake itself, moves the TCP
connection to a small `Connection` protocol, and lets aiohttp's handler end without closing
it. From then on the connection is one protocol object and its transport; a packet Engine.IO
sends is framed and written at once, and a task runs only while received messages are
being handled.

A polling socket that upgrades to websocket keeps Engine.IO's own driver."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections import deque
from typing import Any

from aiohttp import web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_socket import AsyncSocket

log = logging.getLogger("showroom.realtime")

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
# Bytes written to a connection and not yet taken by the kernel beyond which the client is
# considered gone: the room hub skips frames for a slow viewer long before this (at about
# 200 KB), so only a client that stops reading while it keeps asking reaches it.
MAX_UNSENT = 4 * 1024 * 1024

OP_CONTINUATION, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR = 1000, 1001, 1002
CLOSE_INVALID_DATA, CLOSE_TOO_BIG = 1007, 1009


def frame(opcode: int, payload: bytes) -> bytes:
    """One whole server-to-client frame (unmasked, so the same bytes suit any connection)."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big")
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode()[:120])


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR `data` with the repeated 4-byte `mask`, as one big-integer operation."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def cookie_of(header: str, name: str) -> str | None:
    """The value of cookie `name` in a Cookie header (quotes taken off), or None. A live
    socket's environ keeps the header, not aiohttp's request."""
    for part in header.split(";"):
        key, eq, value = part.partition("=")
        if eq and key.strip() == name:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value
    return None


class FrameError(Exception):
    """The client broke the websocket protocol: close with `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FrameReader:
    """Client-to-server frames (RFC 6455 section 5): masked, no extension, messages put
    together from their fragments and refused past `max_size` before they are buffered."""

    __slots__ = ("buffer", "fragments", "kind", "max_size", "size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.buffer = b""
        self.fragments: list[bytes] | None = None
        self.kind = OP_TEXT  # the opcode of the message being put together
        self.size = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Whole messages and control frames in `data` (with what was buffered before), as
        (opcode, payload)."""
        buf = self.buffer + data if self.buffer else data
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(buf)
        while n - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            opcode = first & 0x0F
            if first & 0x70:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set: no extension is in use")
            if not second & 0x80:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "a client's frames must be masked")
            length, head = second & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if opcode >= OP_CLOSE:
                if opcode not in (OP_CLOSE, OP_PING, OP_PONG):
                    raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
                if not first & 0x80 or length > 125:
                    raise FrameError(
                        CLOSE_PROTOCOL_ERROR, "a control frame must be whole and at most 125 bytes"
                    )
            elif opcode not in (OP_CONTINUATION, OP_TEXT, OP_BINARY):
                raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode:#x}")
            elif length + self.size > self.max_size:
                raise FrameError(CLOSE_TOO_BIG, f"a message is limited to {self.max_size} bytes")
            end = pos + head + 4 + length
            if n < end:
                break
            mask = buf[pos + head : pos + head + 4]
            payload = unmask(buf[pos + head + 4 : end], mask)
            pos = end
            fin = first & 0x80
            if opcode >= OP_CLOSE:
                out.append((opcode, payload))
            elif opcode == OP_CONTINUATION:
                if self.fragments is None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "a continuation frame with no message")
                self.fragments.append(payload)
                self.size += length
                if fin:
                    out.append((self.kind, b"".join(self.fragments)))
                    self.fragments, self.size = None, 0
            else:
                if self.fragments is not None:
                    raise FrameError(CLOSE_PROTOCOL_ERROR, "a new message before the last ended")
                if fin:
                    out.append((opcode, payload))
                else:
                    self.fragments, self.kind, self.size = [payload], opcode, length
        self.buffer = bytes(buf[pos:]) if pos < n else b""
        return out


class DirectQueue:
    """A lean socket's send queue: what Engine.IO puts on it is written at once, so nothing
    waits in it and no writer task runs. `None`, Engine.IO's wake-up for its writer, is
    ignored."""

    __slots__ = ("connection",)

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def qsize(self) -> int:
        return 0

    def empty(self) -> bool:
        return True

    def full(self) -> bool:
        return False

    def reader_waiting(self) -> bool:
        return True

    def put_nowait(self, item: Any) -> None:
        if item is not None:
            self.connection.send_packet(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        raise asyncio.QueueEmpty

    async def get(self) -> Any:
        raise eio_exceptions.QueueEmpty()  # a websocket is never polled

    def task_done(self) -> None:
        return None

    async def join(self) -> None:
        return None


class LeanSocket(AsyncSocket):  # type: ignore[misc]
    """An Engine.IO socket served by a `Connection`: closing it also closes the connection
    (after the CLOSE packet, when one is sent)."""

    connection: Connection

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        await super().close(wait=wait, abort=abort, reason=reason)
        self.connection.close(CLOSE_NORMAL)


class Connection(asyncio.Protocol):
    """One live-room websocket after the handshake: frames in, Engine.IO packets out."""

    __slots__ = ("closing", "inbox", "reader", "socket", "task", "transport")

    def __init__(self, transport: asyncio.Transport, socket: LeanSocket, max_size: int) -> None:
        self.transport = transport
        self.socket = socket
        self.reader = FrameReader(max_size)
        self.inbox: deque[str | bytes] | None = None
        self.task: asyncio.Task[None] | None = None
        self.closing = False

    # --- out ---------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        transport = self.transport
        if self.closing or transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_UNSENT:
            log.warning(
                "live websocket %s stopped reading (%d bytes unsent): closing it",
                self.socket.sid,
                transport.get_write_buffer_size(),
            )
            self.closing = True
            transport.abort()
            return
        transport.write(data)

    def send_packet(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, str):
            self.write(frame(OP_TEXT, encoded.encode()))
        else:
            self.write(frame(OP_BINARY, encoded))

    def close(self, code: int, reason: str = "") -> None:
        """Say goodbye with a close frame, then close once what is written has gone."""
        if self.closing or self.transport.is_closing():
            return
        self.transport.write(close_frame(code, reason))
        self.closing = True
        self.transport.close()

    # --- in ----------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            messages = self.reader.feed(data)
        except FrameError as exc:
            log.info("live websocket %s: %s", self.socket.sid, exc.reason)
            self.close(exc.code, exc.reason)
            return
        for opcode, payload in messages:
            if opcode == OP_TEXT:
                try:
                    self.received(payload.decode())
                except UnicodeDecodeError:
                    self.close(CLOSE_INVALID_DATA, "a text message must be UTF-8")
                    return
            elif opcode == OP_BINARY:
                self.received(payload)
            elif opcode == OP_PING:
                self.write(frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else CLOSE_NORMAL
                self.close(code if 1000 <= code < 5000 else CLOSE_PROTOCOL_ERROR)
                return

    def received(self, data: str | bytes) -> None:
        """An Engine.IO packet from the client. A pong (the most common, every ping interval
        from every socket) is taken here; anything else in order, in a task that lives while
        there is something to handle (a Socket.IO connect is handled before the messages
        after it)."""
        if data == "3" and self.task is None:
            self.socket.schedule_ping()  # what AsyncSocket.receive does for a PONG
            return
        if self.inbox is None:
            self.inbox = deque()
        self.inbox.append(data)
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._handle())

    async def _handle(self) -> None:
        socket, inbox = self.socket, self.inbox
        assert inbox is not None
        try:
            while inbox and not self.closing:
                pkt = eio_packet.Packet(encoded_packet=inbox.popleft())
                try:
                    if pkt.packet_type == eio_packet.MESSAGE:
                        # What AsyncSocket.receive does, without a task per message: this
                        # task already keeps the connection's messages in order, and
                        # Socket.IO starts its own task for each event's handler.
                        await socket.server._trigger_event(
                            "message", socket.sid, pkt.data, run_async=False
                        )
                    else:
                        await socket.receive(pkt)
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    break
                except Exception:
                    log.exception("live websocket %s: handling a packet failed", socket.sid)
        finally:
            self.task = None
            self.inbox = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        asyncio.get_running_loop().create_task(self._gone())

    async def _gone(self) -> None:
        """What Engine.IO does when its websocket loop ends: the socket closes (the
        disconnect handlers run) and the server forgets it."""
        socket = self.socket
        server = socket.server
        try:
            await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        finally:
            if server.sockets.get(socket.sid) is socket:
                del server.sockets[socket.sid]
            server.connections.discard(self)


class _Detached(web.StreamResponse):
    """What the accepting handler returns once the connection is no longer aiohttp's: the
    101 answer is already written, so there is nothing to prepare or finish."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


# Headers a live socket's environ keeps once connected: what the connect handler and
# logging read. The rest of the request (and aiohttp's request itself) is let go.
KEPT = frozenset(
    {
        "HTTP_COOKIE",
        "HTTP_ORIGIN",
        "HTTP_USER_AGENT",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_UPGRADE",
        "PATH_INFO",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REQUEST_METHOD",
    }
)


class LeanWebSocket:
    """Engine.IO's `websocket` driver (the `_async["websocket"]` of its aiohttp mode)."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server

    async def __call__(self, environ: dict[str, Any]) -> web.StreamResponse:
        socket = getattr(self.handler, "__self__", None)
        request = environ.get("aiohttp.request")
        transport = getattr(request, "transport", None)
        protocol: Any = getattr(request, "protocol", None)
        if (
            not isinstance(socket, AsyncSocket)
            or socket.connected  # an upgrade from polling: Engine.IO's own loop
            or request is None
            or not isinstance(transport, asyncio.Transport)
            or getattr(protocol, "_payload_parser", True) is not None
            or not web.WebSocketResponse().can_prepare(request).ok
        ):
            driver = eio_aiohttp.WebSocket(self.handler, self.server)
            response: web.StreamResponse = await driver(environ)
            return response
        key = request.headers["Sec-WebSocket-Key"]
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        tail: bytes = protocol._message_tail  # what the client sent after the request
        protocol._message_tail = b""
        socket.__class__ = LeanSocket
        connection = Connection(transport, socket, self.server.max_http_buffer_size)
        socket.connection = connection
        transport.set_protocol(connection)
        # aiohttp forgets the connection without closing it: its handler ends as for a
        # client that went away, and the server's list of connections drops it.
        protocol.transport = None
        protocol.connection_lost(None)
        if not transport.is_reading():
            transport.resume_reading()
        # What Engine.IO queued before the handshake (its OPEN packet) goes first.
        queued, socket.queue = socket.queue, DirectQueue(connection)
        while not queued.empty():
            packet = queued.get_nowait()
            if packet is not None:
                connection.send_packet(packet)
        socket.connected = socket.upgraded = True
        self.server.connections.add(connection)
        for name in [k for k in environ if k not in KEPT]:
            del environ[name]
        if tail:
            connection.data_received(tail)
        return _Detached()
