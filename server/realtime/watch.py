"""Watch time as the server measures it. A player sends `watch:beat` every 10 seconds or
so, saying whether media is playing and the page is visible, and naming its WHEP session.
The server believes none of it alone: an interval between two beats is credited only when
both said playing and visible, the named WHEP session belongs to this show and to this
viewer alone, the server is relaying it media and heard from it within the last seconds,
the beats are neither too close nor too far apart by the server's own clock, and the viewer
was not idle. Credited intervals go to the accrual, where one member's tabs and devices
never count twice."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from server.services.accrual import Accrual

BEAT_MIN_INTERVAL = 2.0  # seconds: closer beats are ignored (no credit, no state change)
BEAT_MAX_GAP = 25.0  # seconds: after a longer silence the gap itself earns nothing
OWNERS_MAX = 200_000
DEFAULT_IDLE_AFTER = 30 * 60.0  # seconds without an interaction: watching stops earning


@dataclass(slots=True)
class _Beat:
    show_id: str
    viewer: str
    member: str | None
    at: float
    ok: bool


class WatchClock:
    def __init__(
        self,
        accrual: Accrual,
        media_ok: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.accrual = accrual
        self.media_ok = media_ok  # (show id, WHEP session id) -> the server relays it media now
        self.clock = clock
        self.idle_after = DEFAULT_IDLE_AFTER
        self.beats: dict[str, _Beat] = {}  # socket id -> its last beat
        self.owners: dict[str, str] = {}  # WHEP session id -> the viewer who named it first
        self.active: dict[tuple[str, str], float] = {}  # (show, viewer) -> last interaction
        self.credited_seconds = 0.0

    def interacted(self, show_id: str, viewer: str) -> None:
        self.active[(show_id, viewer)] = self.clock()

    def forget(self, sid: str) -> None:
        self.beats.pop(sid, None)

    def forget_show(self, show_id: str) -> None:
        for key in [k for k in self.active if k[0] == show_id]:
            del self.active[key]

    def _owner(self, session: str, viewer: str) -> str:
        """The viewer a WHEP session belongs to: the first to name it. Sessions end within
        minutes, so the map is simply forgotten when it grows past OWNERS_MAX."""
        if session not in self.owners and len(self.owners) >= OWNERS_MAX:
            self.owners.clear()
        return self.owners.setdefault(session, viewer)

    def beat(
        self,
        sid: str,
        show_id: str,
        viewer: str,
        member: str | None,
        *,
        playing: bool,
        visible: bool,
        session: str | None,
        active: bool,
    ) -> tuple[bool, str]:
        """(credited, why not): why is "" when this beat's interval was credited."""
        now = self.clock()
        last = self.beats.get(sid)
        if last is not None and last.show_id == show_id and now - last.at < BEAT_MIN_INTERVAL:
            return False, "too_soon"
        if active:
            self.interacted(show_id, viewer)
        idle = now - self.active.setdefault((show_id, viewer), now) > self.idle_after
        why = ""
        if not playing or not visible:
            why = "not_playing" if not playing else "hidden"
        elif session is None:
            why = "no_media_session"
        elif self._owner(session, viewer) != viewer:
            why = "media_session_taken"  # one player's session cannot earn for several people
        elif not self.media_ok(show_id, session):
            why = "no_media"
        elif idle:
            why = "idle"
        ok = why == ""
        credited = False
        if (
            ok
            and last is not None
            and last.ok
            and last.show_id == show_id
            and now - last.at <= BEAT_MAX_GAP
        ):
            self.accrual.watched(uuid.UUID(show_id), viewer, member, last.at, now)
            self.credited_seconds += now - last.at
            credited = True
        elif ok:
            why = "first_beat" if last is None or last.show_id != show_id else "gap"
            if last is not None and last.show_id == show_id and not last.ok:
                why = "resumed"
        self.beats[sid] = _Beat(show_id, viewer, member, now, ok)
        return credited, why
