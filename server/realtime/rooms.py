"""Room fan-out: a show's events are coalesced into one frame per member every
FRAME_INTERVAL, encoded once and sent to many members, instead of one emit per event per
viewer. A room's members are served in GROUPS groups, one group every FRAME_INTERVAL /
GROUPS: each member still gets a frame every FRAME_INTERVAL, with everything new since its
last, but a pass over the room writes to a quarter of it at a time, so a viewer of a big
room waits for a short pass rather than for the whole room's."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from server.realtime import websocket

log = logging.getLogger("showroom.realtime")

FRAME_INTERVAL = 0.2  # seconds; the issue asks for 100-200 ms
GROUPS = 4  # a room's members get their frames in this many turns per FRAME_INTERVAL
FLUSH_SLICE = 500  # sockets written between two yields to the event loop
PRESENCE_INTERVAL = 1.0  # viewer counts go out at most once a second
PEAK_INTERVAL = 1.0  # a rising peak viewer count is stored at most this often
MAX_PERSONAL = 20  # events for one socket kept while it cannot take them (oldest dropped)
DEFAULT_MAX_BACKLOG = 50  # frames waiting for one socket before it skips (~10 s of frames)
BACKLOG_FRAME_BYTES = 4096  # unsent bytes on a websocket that count as one waiting frame

Event = dict[str, Any]


def room_name(show_id: str) -> str:
    return f"show:{show_id}"


def _seq(event: Event) -> float:
    # State events (show state, counters) carry no number and always apply.
    seq = event.get("seq")
    return math.inf if seq is None else float(seq)


@dataclass(slots=True)
class Member:
    subject: str  # who, across tabs and devices: two sockets of one member are one viewer
    snapshot_seq: int  # events up to here were in this socket's snapshot
    author_id: str = ""  # the opaque id others see, which moderation acts on
    missed: int = 0  # frames skipped because this socket could not keep up
    eio_sid: str = ""  # the Engine.IO connection under this Socket.IO session
    # The TCP connection of a socket that connected over websocket from the start (the
    # transport frames can be written to directly); None for long-polling.
    transport: asyncio.WriteTransport | None = None
    group: int = 0  # the turn in which this member gets its frames
    cursor: int = 0  # the room's log position up to which this member has been sent events
    # Events for this socket alone ((name, data), e.g. `points`), sent at its next turn.
    personal: list[tuple[str, Any]] | None = None


@dataclass(slots=True)
class Room:
    show_id: str
    pending: list[Event] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)
    subjects: Counter[str] = field(default_factory=Counter)  # sockets per member here
    # The members again, by their turn (`Member.group`).
    groups: list[dict[str, Member]] = field(default_factory=lambda: [{} for _ in range(GROUPS)])
    next_group: int = 0
    # Events taken from `pending` that some group has not been sent yet; log[0] is the
    # room's `log_start`th event, and `sent[g]` is where group g's last turn reached.
    log: list[Event] = field(default_factory=list)
    log_start: int = 0
    sent: list[int] = field(default_factory=lambda: [0] * GROUPS)
    # Sockets whose snapshot is being read: what is flushed meanwhile waits here for them.
    joining: dict[str, list[Event]] = field(default_factory=dict)
    viewers_sent: int = -1
    viewers_sent_at: float = 0.0
    # Every numbered event up to `contiguous` has reached this room; `seen` holds the ones
    # above it, so an event arriving twice (pub/sub plus repair) is passed on once.
    contiguous: int = -1
    seen: set[int] = field(default_factory=set)
    state: str | None = None
    # For the cross-node presence count: members that arrived or left since last told.
    presence_changed: bool = False
    presence_left: set[str] = field(default_factory=set)
    peak: int = 0  # most viewers this node has counted at once (across nodes with a relay)
    # Mutes this node's viewers have been told of ({author id: for all shows}), so a repair
    # after a Redis outage tells them only of what changed.
    muted: dict[str, bool] = field(default_factory=dict)

    def viewer_count(self) -> int:
        return len(self.subjects)

    @property
    def log_end(self) -> int:
        return self.log_start + len(self.log)

    def add(self, sid: str, member: Member) -> None:
        member.group, self.next_group = self.next_group, (self.next_group + 1) % GROUPS
        member.cursor = self.log_end  # what is logged already was in its snapshot or held
        self.members[sid] = member
        self.groups[member.group][sid] = member
        self.subjects[member.subject] += 1

    def remove(self, sid: str) -> Member | None:
        member = self.members.pop(sid, None)
        if member is not None:
            self.groups[member.group].pop(sid, None)
            self.subjects[member.subject] -= 1
            if not self.subjects[member.subject]:
                del self.subjects[member.subject]
        return member

    def trim(self) -> None:
        """Forget logged events every group has been sent."""
        done = min(self.sent) - self.log_start
        if done > 0:
            del self.log[:done]
            self.log_start += done

    def accept(self, event: Event) -> bool:
        seq = event.get("seq")
        kind = event.get("type")
        if kind == "show.state":
            self.state = event["state"]
        elif kind == "member.sanctioned" and event.get("kind") == "mute":
            self.muted[event["author_id"]] = bool(event.get("all_shows"))
        elif kind == "member.lifted" and event.get("kind") == "mute":
            self.muted.pop(event["author_id"], None)
        if seq is None:
            return True
        if seq <= self.contiguous or seq in self.seen:
            return False
        self.seen.add(seq)
        while self.contiguous + 1 in self.seen:
            self.contiguous += 1
            self.seen.discard(self.contiguous)
        return True

    def repaired_to(self, seq: int) -> None:
        """Everything up to `seq` is now delivered (read from the database)."""
        if seq > self.contiguous:
            self.contiguous = seq
            self.seen = {s for s in self.seen if s > seq}


class Outgoing:
    """One frame for many sockets: an Engine.IO packet for send queues and, built on first
    use, the same message as a complete server-to-client websocket frame (unmasked, so the
    same bytes suit every connection)."""

    __slots__ = ("_frame", "packet")

    def __init__(self, packet: eio_packet.Packet) -> None:
        self.packet = packet
        self._frame: bytes | None = None

    def websocket_frame(self) -> bytes:
        if self._frame is None:
            self._frame = websocket.frame(websocket.OP_TEXT, str(self.packet.encode()).encode())
        return self._frame


class Relay(Protocol):
    """Carries events to the other server processes (see server/realtime/bus.py)."""

    def send(self, show_id: str, event: Event) -> None: ...

    async def watch(self, show_id: str) -> None: ...

    def viewer_count(self, show_id: str) -> int | None: ...


class RoomHub:
    """This process's rooms. `publish` is called after the event's transaction commits."""

    def __init__(self, sio: socketio.AsyncServer, namespace: str) -> None:
        self.sio = sio
        self.namespace = namespace
        self.rooms: dict[str, Room] = {}
        self.show_of: dict[str, str] = {}  # sid -> show id
        self.frames_sent = 0
        self.frames_skipped = 0
        self.frames_written = 0  # written straight to a websocket, not through its queue
        self.relay: Relay | None = None
        self.turn = 0  # the group whose members this flush serves
        self.max_backlog = DEFAULT_MAX_BACKLOG
        # Stores rising peak viewer counts ({show id: viewers}); set by the app.
        self.record_peaks: Callable[[dict[str, int]], Awaitable[None]] | None = None
        self.peaks: dict[str, int] = {}  # risen since last stored

    def publish(self, show_id: str, event: Event) -> None:
        """An event that happened on this node (after its transaction committed)."""
        self.deliver(show_id, event)
        if self.relay is not None:
            self.relay.send(show_id, event)

    def deliver(self, show_id: str, event: Event) -> None:
        """Queue an event for this node's viewers of the show, once."""
        room = self.rooms.get(show_id)
        if room is not None and room.accept(event):  # nobody here watching: nothing to send
            room.pending.append(event)

    # --- joining: subscribe first, then read the snapshot, then merge -----------------------

    async def begin_join(self, sid: str, show_id: str) -> None:
        """Subscribe the socket (and this node) to the show's events before its snapshot is read."""
        room = self.rooms.setdefault(show_id, Room(show_id))
        room.joining[sid] = []
        self.show_of[sid] = show_id
        if self.relay is not None:
            await self.relay.watch(show_id)

    async def finish_join(
        self, sid: str, subject: str, snapshot_seq: int, state: str, author_id: str = ""
    ) -> tuple[int, list[Event]]:
        """Make the socket a member. Returns the seq its snapshot now reaches and the events
        flushed while the snapshot was read that the snapshot did not already hold."""
        show_id = self.show_of[sid]
        room = self.rooms[show_id]
        held = room.joining.pop(sid)
        later = [e for e in held if _seq(e) > snapshot_seq]
        numbered = [int(e["seq"]) for e in later if e.get("seq") is not None]
        seq = max([snapshot_seq, *numbered])
        if room.contiguous < 0:
            # The room's first member: its snapshot is where this room's history starts.
            room.repaired_to(snapshot_seq)
            room.state = state
        if subject not in room.subjects:
            room.presence_changed = True
            room.presence_left.discard(subject)
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, self.namespace) or ""
        room.add(
            sid,
            Member(
                subject, seq, author_id, eio_sid=eio_sid, transport=self._websocket_transport(sid)
            ),
        )
        await self.sio.enter_room(sid, room_name(show_id), namespace=self.namespace)
        return seq, later

    async def leave(self, sid: str) -> None:
        show_id = self.show_of.pop(sid, None)
        if show_id is None:
            return
        room = self.rooms.get(show_id)
        if room is None:
            return
        room.joining.pop(sid, None)
        member = room.remove(sid)
        if member is not None:
            await self.sio.leave_room(sid, room_name(show_id), namespace=self.namespace)
            if member.subject not in room.subjects:
                room.presence_left.add(member.subject)
        if not room.members and not room.joining:
            del self.rooms[show_id]

    def tell(self, show_id: str, sid: str, event: str, data: Any) -> bool:
        """Queue an event for one member's socket, sent with its next turn's frame (in the
        same write): telling thousands of members at once costs no task or write each, and
        the writes are spread over the room's turns like its frames. False if the socket
        is not a member of the show's room here."""
        room = self.rooms.get(show_id)
        member = room.members.get(sid) if room is not None else None
        if member is None:
            return False
        if member.personal is None:
            member.personal = []
        member.personal.append((event, data))
        del member.personal[:-MAX_PERSONAL]
        return True

    def viewer_count(self, show_id: str) -> int:
        """Members watching the show: across every node when a relay counts them."""
        room = self.rooms.get(show_id)
        local = room.viewer_count() if room else 0
        across = self.relay.viewer_count(show_id) if self.relay is not None else None
        return local if across is None else max(across, local)

    # --- flushing ---------------------------------------------------------------------------

    async def flush(self, now: float | None = None) -> None:
        """One turn: every room's new events are logged, and this turn's group of members
        is sent what it has not had yet."""
        now = time.monotonic() if now is None else now
        turn, self.turn = self.turn, (self.turn + 1) % GROUPS
        for room in list(self.rooms.values()):
            await self._flush_room(room, now, turn)

    async def _flush_room(self, room: Room, now: float, turn: int) -> None:
        events, room.pending = room.pending, []
        viewers = self.viewer_count(room.show_id)
        if viewers > room.peak:
            room.peak = self.peaks[room.show_id] = viewers
        if viewers != room.viewers_sent and now - room.viewers_sent_at >= PRESENCE_INTERVAL:
            events.append({"type": "presence", "viewers": viewers})
            room.viewers_sent, room.viewers_sent_at = viewers, now
        if events:
            await self._remove_banned(room, events)
            events.sort(key=_seq)
            for held in room.joining.values():
                held.extend(events)
            room.log.extend(events)
        end = room.log_end
        room.sent[turn] = end
        group = room.groups[turn]
        if not room.members:
            room.sent = [end] * GROUPS
        # What members starting from one log position are sent (nearly always one position
        # per turn): the events in order, the lowest number among them, the shared frame.
        shared: dict[int, tuple[list[Event], float, list[Outgoing]]] = {}
        sent = False
        for n, (sid, member) in enumerate(list(group.items()), 1):
            if n % FLUSH_SLICE == 0:
                # Writing to thousands of sockets takes a while: let acks and reads run
                # between slices rather than after the whole group.
                await asyncio.sleep(0)
            cursor = member.cursor
            if (cursor >= end and member.personal is None) or group.get(sid) is not member:
                continue  # nothing new for it, or it left during the pass
            socket = self._socket(member)
            if socket is None:
                member.cursor = end
                continue
            # A socket too slow to keep up skips frames, so what waits for it (and the
            # server's memory) stays bounded; once it has drained it is told of the gap.
            queued = socket.queue.qsize()
            unsent = member.transport.get_write_buffer_size() if member.transport else 0
            if queued >= self.max_backlog or unsent >= self.max_backlog * BACKLOG_FRAME_BYTES:
                if cursor < end:
                    member.cursor = end
                    member.missed += 1
                    self.frames_skipped += 1
                continue  # what is for it alone waits until it has drained
            if member.missed and queued <= self.max_backlog // 2:
                gap = {"show_id": room.show_id, "missed_frames": member.missed}
                socket.queue.put_nowait(self._packet("gap", gap))
                member.missed = 0
            personal, member.personal = member.personal, None
            extra = [self._packet(*p) for p in personal] if personal is not None else []
            if cursor >= end:
                self._send(member, socket, None, extra)
                continue
            member.cursor = end
            from_cursor = shared.get(cursor)
            if from_cursor is None:
                batch = sorted(room.log[cursor - room.log_start :], key=_seq)
                from_cursor = shared[cursor] = (batch, _seq(batch[0]), [])
            batch, first, frames = from_cursor
            sent = True
            if member.snapshot_seq < first:
                if not frames:
                    packet = self._packet("frame", {"show_id": room.show_id, "events": batch})
                    frames.append(Outgoing(packet))
                self._send(member, socket, frames[0], extra)  # the shared frame, encoded once
                continue
            # This member's snapshot already holds some of these events: a trimmed copy.
            mine = [e for e in batch if _seq(e) > member.snapshot_seq]
            if mine:
                extra.insert(0, self._packet("frame", {"show_id": room.show_id, "events": mine}))
            self._send(member, socket, None, extra)
        room.trim()
        if sent:
            self.frames_sent += 1

    def _send(
        self, member: Member, socket: Any, out: Outgoing | None, extra: list[eio_packet.Packet]
    ) -> None:
        """Write the shared frame and the member's own packets after it straight to its
        websocket, in one write, when nothing else is waiting to go out on it (its writer
        is idle), else queue them behind what is: either way the socket's packets leave
        in order."""
        transport = member.transport
        if (
            transport is not None
            and not transport.is_closing()
            and socket.queue.empty()
            and socket.queue.reader_waiting()
        ):
            data = out.websocket_frame() if out is not None else b""
            for packet in extra:
                data += websocket.frame(websocket.OP_TEXT, str(packet.encode()).encode())
            if data:
                transport.write(data)
                self.frames_written += 1
            return
        if out is not None:
            socket.queue.put_nowait(out.packet)
        for packet in extra:
            socket.queue.put_nowait(packet)

    def _packet(self, event: str, data: Any) -> eio_packet.Packet:
        """A Socket.IO event encoded once, ready for any number of sockets' send queues."""
        encoded = self.sio.packet_class(
            sio_packet.EVENT, namespace=self.namespace, data=[event, data]
        ).encode()
        return eio_packet.Packet(eio_packet.MESSAGE, encoded)

    def _websocket_transport(self, sid: str) -> asyncio.WriteTransport | None:
        """The connection's TCP transport if it is a websocket without compression (lean
        websockets never compress; for one upgraded from polling the app strips
        permessage-deflate offers, see server/app.py), so one encoded frame can be written
        to every such viewer as is."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, self.namespace)
        connection = getattr(self.sio.eio.sockets.get(eio_sid), "connection", None)
        if isinstance(connection, websocket.Connection):
            return connection.transport
        environ = self.sio.get_environ(sid, self.namespace) or {}
        request = environ.get("aiohttp.request")
        if request is None or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return None
        if "HTTP_SEC_WEBSOCKET_EXTENSIONS" in environ:
            return None
        transport = request.transport
        return transport if isinstance(transport, asyncio.WriteTransport) else None

    def _socket(self, member: Member) -> Any:
        """The member's open Engine.IO socket."""
        socket = self.sio.eio.sockets.get(member.eio_sid)
        return None if socket is None or socket.closed else socket

    def backlog(self, sid: str) -> int:
        """Packets queued for this socket and not yet written to it."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, self.namespace)
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        return socket.queue.qsize() if socket is not None else 0

    async def _remove_banned(self, room: Room, events: list[Event]) -> None:
        banned = {
            e["author_id"]
            for e in events
            if e.get("type") == "member.sanctioned" and e.get("kind") == "ban"
        }
        if not banned:
            return
        for sid, member in list(room.members.items()):
            if member.author_id in banned:
                await self.leave(sid)
                await self.sio.emit(
                    "removed",
                    {"show_id": room.show_id, "reason": "banned"},
                    to=sid,
                    namespace=self.namespace,
                )

    async def store_peaks(self) -> None:
        if not self.peaks or self.record_peaks is None:
            return
        peaks, self.peaks = self.peaks, {}
        try:
            await self.record_peaks(peaks)
        except Exception:
            log.exception("storing peak viewer counts failed; will retry")
            for show_id, viewers in peaks.items():
                self.peaks[show_id] = max(viewers, self.peaks.get(show_id, 0))

    async def run(self) -> None:
        stored = tick = time.monotonic()
        while True:
            # A group's turn comes every FRAME_INTERVAL / GROUPS however long a flush takes
            # (a late turn runs at once rather than pushing every later one back).
            tick = max(tick + FRAME_INTERVAL / GROUPS, time.monotonic())
            await asyncio.sleep(tick - time.monotonic())
            try:
                await self.flush()
            except Exception:
                log.exception("room flush failed")
            if time.monotonic() - stored >= PEAK_INTERVAL:
                stored = time.monotonic()
                await self.store_peaks()
