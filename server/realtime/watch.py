"""Watch time as the server measures it. A player reports its state with `watch:beat` only
when it changes (it starts or stops playing, the page is shown or hidden, its WHEP session
changes) and, at most every few minutes, that the viewer interacted. The server keeps each
socket's last report and credits the time itself, on its own clock: at every sweep (the
start of each accrual flush, every few seconds) and whenever the socket reports again or
goes, the time since the last settlement is credited when the last report said playing and
visible, named a WHEP session that belongs to this viewer alone, the server is relaying the
show to that session and heard its RTCP within the last seconds, the socket is still in the
show's room, and the viewer was not idle. Time the server could not verify at a sweep is
never credited later, and a flood of reports earns nothing more than the wall clock.
Credited intervals go to the accrual, where one member's tabs and devices never count
twice."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from server.domain.loyalty import EarningRules
from server.services.accrual import Accrual, Activity

OWNERS_MAX = 200_000
DEFAULT_IDLE_AFTER = 30 * 60.0  # seconds without an interaction: watching stops earning


@dataclass(slots=True)
class _State:
    """One socket's last report, and the server time the next credit starts from."""

    show_id: str
    show: uuid.UUID  # show_id parsed once (shared by the show's sockets)
    key: tuple[str, str]  # (show id, viewer): where its last interaction is in `active`
    viewer: str
    member: str | None
    session: str | None
    # The report's own verdict: playing, visible, and a WHEP session this viewer owns.
    # Whether media flows and the viewer is not idle are checked at each settlement.
    ok: bool
    since: float
    # The viewer's pending activity in the accrual, where the sweep adds the time it credits
    # (looked up again once a flush has taken it).
    activity: Activity | None = None


class WatchClock:
    def __init__(
        self,
        accrual: Accrual,
        media_ok: Callable[[str, str], bool],
        clock: Callable[[], float] = time.time,
        joined: Mapping[str, str] | None = None,
    ) -> None:
        self.accrual = accrual
        self.media_ok = media_ok  # (show id, WHEP session id) -> the server relays it media now
        self.clock = clock
        # Socket id -> the show whose room it is in (the room hub's): a socket that left or
        # was removed earns nothing more, whatever its player still receives.
        self.joined = joined
        self.idle_after = DEFAULT_IDLE_AFTER
        # Show id -> its rules' idle_after_minutes in seconds, as the accrual last read them.
        self.idle_limits: dict[str, float] = {}
        self.states: dict[str, _State] = {}  # socket id -> its last report
        self.owners: dict[str, str] = {}  # WHEP session id -> the viewer who named it first
        self.active: dict[tuple[str, str], float] = {}  # (show, viewer) -> last interaction
        self.shows: dict[str, uuid.UUID] = {}  # show id -> its UUID, parsed once
        self.credited_seconds = 0.0

    def use_rules(self, show: uuid.UUID, rules: EarningRules) -> None:
        """A live show's earning rules as the accrual read them: its idle limit."""
        self.idle_limits[str(show)] = rules.idle_after_minutes * 60.0

    def _idle_after(self, show_id: str) -> float:
        return self.idle_limits.get(show_id, self.idle_after)

    def interacted(self, show_id: str, viewer: str) -> None:
        self.active[(show_id, viewer)] = self.clock()

    def _owner(self, session: str, viewer: str) -> str:
        """The viewer a WHEP session belongs to: the first to name it. Sessions end within
        minutes, so the map is simply forgotten when it grows past OWNERS_MAX."""
        if session not in self.owners and len(self.owners) >= OWNERS_MAX:
            self.owners.clear()
        return self.owners.setdefault(session, viewer)

    def _settle(self, sid: str, state: _State, now: float) -> bool:
        """Credit the state's time up to `now` if the server can vouch for it; either way the
        next credit starts at `now`. Whether something was credited."""
        since, state.since = state.since, now
        session = state.session
        if (
            not state.ok
            or now <= since
            or session is None
            or (self.joined is not None and self.joined.get(sid) != state.show_id)
            or not self.media_ok(state.show_id, session)
            or self.active.get(state.key, -math.inf) < now - self._idle_after(state.show_id)
        ):
            return False
        self.accrual.watched(state.show, state.viewer, state.member, since, now)
        self.credited_seconds += now - since
        return True

    def sweep(self) -> None:
        """Credit every playing socket's verified time since the last sweep (called at the
        start of each accrual flush). Time that could not be verified now is dropped."""
        now = self.clock()
        media_ok, active, joined = self.media_ok, self.active, self.joined
        limits, default = self.idle_limits, self.idle_after
        lookup, due = self.accrual.activity, self.accrual.due
        credited = 0.0
        for sid, state in self.states.items():
            if not state.ok:
                continue
            since, state.since = state.since, now
            session = state.session
            if (
                now <= since
                or session is None
                or (joined is not None and joined.get(sid) != state.show_id)
                or not media_ok(state.show_id, session)
                or active.get(state.key, -math.inf) < now - limits.get(state.show_id, default)
            ):
                continue
            # What Accrual.watched does, without looking the activity up each time: the
            # interval since the last sweep usually extends the latest one in place.
            activity = state.activity
            if activity is None or activity.taken:
                activity = state.activity = lookup(state.show, state.viewer, state.member)
            book, mark = activity.book, activity.mark
            if book is not None and mark >= 0 and activity.start <= since <= activity.end:
                if now > activity.end:  # Activity.watch's usual case, inline
                    activity.end = book.spans[mark] = now
                activity.watched_s += now - since
            else:
                activity.watch(since, now)
            activity.last_seen = now
            if activity.watched_s >= activity.due_s:
                due(activity)
            credited += now - since
        self.credited_seconds += credited

    def forget(self, sid: str) -> None:
        """The socket went: credit what it verifiably watched until now, then drop it."""
        state = self.states.pop(sid, None)
        if state is not None:
            self._settle(sid, state, self.clock())

    def forget_show(self, show_id: str) -> None:
        """The show ended: settle and drop every socket's state in it and its interactions.
        Call before the media is hung up and before the final accrual flush."""
        now = self.clock()
        for sid in [s for s, state in self.states.items() if state.show_id == show_id]:
            self._settle(sid, self.states.pop(sid), now)
        for key in [k for k in self.active if k[0] == show_id]:
            del self.active[key]
        self.shows.pop(show_id, None)
        self.idle_limits.pop(show_id, None)

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
        """A player's new state. Settles the socket's previous state up to now, then keeps
        this one. (credited, reason): credited when the settlement credited time; reason is
        "" when the new state earns and time was credited, else why it earns nothing now
        (or `first_beat` / `resumed`: it earns from now on)."""
        now = self.clock()
        last = self.states.get(sid)
        same_show = last is not None and last.show_id == show_id
        credited = self._settle(sid, last, now) if last is not None and same_show else False
        if active:
            self.interacted(show_id, viewer)
        key = (show_id, viewer)
        idle = now - self.active.setdefault(key, now) > self._idle_after(show_id)
        why = ""
        if not playing:
            why = "not_playing"
        elif not visible:
            why = "hidden"
        elif session is None:
            why = "no_media_session"
        elif self._owner(session, viewer) != viewer:
            why = "media_session_taken"  # one player's session cannot earn for several people
        ok = why == ""
        if ok:
            assert session is not None
            if not self.media_ok(show_id, session):
                why = "no_media"
            elif idle:
                why = "idle"
            elif not credited:
                why = "resumed" if same_show else "first_beat"
        show = self.shows.get(show_id)
        if show is None:
            show = self.shows[show_id] = uuid.UUID(show_id)
        self.states[sid] = _State(show_id, show, key, viewer, member, session, ok, now)
        return credited, why
