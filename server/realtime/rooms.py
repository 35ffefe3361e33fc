"""Room fan-out: a show's events are coalesced into one frame per room every FRAME_INTERVAL,
encoded once and sent to every member, instead of one emit per event per viewer."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import socketio

log = logging.getLogger("showroom.realtime")

FRAME_INTERVAL = 0.15  # seconds; the issue asks for 100-200 ms
PRESENCE_INTERVAL = 1.0  # viewer counts go out at most once a second

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


@dataclass(slots=True)
class Room:
    show_id: str
    pending: list[Event] = field(default_factory=list)
    members: dict[str, Member] = field(default_factory=dict)
    # Sockets whose snapshot is being read: what is flushed meanwhile waits here for them.
    joining: dict[str, list[Event]] = field(default_factory=dict)
    viewers_sent: int = -1
    viewers_sent_at: float = 0.0

    def viewer_count(self) -> int:
        return len({m.subject for m in self.members.values()})


class RoomHub:
    """This process's rooms. `publish` is called after the event's transaction commits."""

    def __init__(self, sio: socketio.AsyncServer, namespace: str) -> None:
        self.sio = sio
        self.namespace = namespace
        self.rooms: dict[str, Room] = {}
        self.show_of: dict[str, str] = {}  # sid -> show id
        self.frames_sent = 0

    def publish(self, show_id: str, event: Event) -> None:
        room = self.rooms.get(show_id)
        if room is not None:  # nobody here is watching: nothing to send
            room.pending.append(event)

    # --- joining: subscribe first, then read the snapshot, then merge -----------------------

    def begin_join(self, sid: str, show_id: str) -> None:
        room = self.rooms.setdefault(show_id, Room(show_id))
        room.joining[sid] = []
        self.show_of[sid] = show_id

    async def finish_join(
        self, sid: str, subject: str, snapshot_seq: int
    ) -> tuple[int, list[Event]]:
        """Make the socket a member. Returns the seq its snapshot now reaches and the events
        flushed while the snapshot was read that the snapshot did not already hold."""
        show_id = self.show_of[sid]
        room = self.rooms[show_id]
        held = room.joining.pop(sid)
        later = [e for e in held if _seq(e) > snapshot_seq]
        numbered = [int(e["seq"]) for e in later if e.get("seq") is not None]
        seq = max([snapshot_seq, *numbered])
        room.members[sid] = Member(subject, seq)
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
        if room.members.pop(sid, None) is not None:
            await self.sio.leave_room(sid, room_name(show_id), namespace=self.namespace)
        if not room.members and not room.joining:
            del self.rooms[show_id]

    def viewer_count(self, show_id: str) -> int:
        room = self.rooms.get(show_id)
        return room.viewer_count() if room else 0

    # --- flushing ---------------------------------------------------------------------------

    async def flush(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for room in list(self.rooms.values()):
            await self._flush_room(room, now)

    async def _flush_room(self, room: Room, now: float) -> None:
        events, room.pending = room.pending, []
        viewers = room.viewer_count()
        if viewers != room.viewers_sent and now - room.viewers_sent_at >= PRESENCE_INTERVAL:
            events.append({"type": "presence", "viewers": viewers})
            room.viewers_sent, room.viewers_sent_at = viewers, now
        if not events:
            return
        events.sort(key=_seq)
        for held in room.joining.values():
            held.extend(events)
        if not room.members:
            return
        first = _seq(events[0])
        # A member whose snapshot already holds some of these events gets its own trimmed
        # copy; everyone else shares one frame, encoded once.
        behind = [sid for sid, m in room.members.items() if m.snapshot_seq >= first]
        frame = {"show_id": room.show_id, "events": events}
        await self.sio.emit(
            "frame", frame, room=room_name(room.show_id), skip_sid=behind, namespace=self.namespace
        )
        for sid in behind:
            mine = [e for e in events if _seq(e) > room.members[sid].snapshot_seq]
            if mine:
                await self.sio.emit(
                    "frame",
                    {"show_id": room.show_id, "events": mine},
                    to=sid,
                    namespace=self.namespace,
                )
        self.frames_sent += 1

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FRAME_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("room flush failed")
