"""Engagement accrual: what the live room saw each viewer do (watch, join, chat, ask, react,
share), counted in memory and written in batches, one transaction per flush, with the
points the show's rules give. The periodic flush writes watching in blocks of a few minutes
(WATCH_BLOCK) and, in the same transaction, a checkpoint per show of the watching it still
holds, which a restarted process reads back (`restore`). A crash loses what was counted
since the last flush; nothing is credited twice: the per-show counters, the watched-until
time and the ledger entries that follow from them move in the same commit, and every
entry's idempotency key is derived from those counters."""

from __future__ import annotations

import base64
import gc
import json
import logging
import math
import os
import sys
import time
import uuid
from array import array
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.domain.loyalty import BADGES, MAX_POINTS, EarningRules, EntryKind, Reason
from server.domain.shows import ShowState
from server.services import ledger, webhooks
from server.store import models
from server.store.db import Database

log = logging.getLogger("showroom.engagement")

CHUNK = 500  # entries per engagement.points_earned webhook message
# The periodic write holds a viewer's watching until it completes a block of this many
# minutes (of the viewer's watched total in the show), or for at most that long: points are
# still per minute, written a block at a time. Writing every viewer's every minute was most
# of the cost of accounting. The held watching is checkpointed at every periodic write.
WATCH_BLOCK = 5
HOLD_SECONDS = WATCH_BLOCK * 60.0
CHECKPOINT_VERSION = 1
# Viewers with something to write (a join, chat, a completed block) that bring the periodic
# write forward. A join wave's first-join bonuses then go out in writes of about this many
# as it arrives, each holding SQLite's one writer (and so the room's chat) for some 100 ms,
# instead of in one write of thousands after it, which held chat for 200-400 ms.
EARLY_WRITE = 1000
KNOWN_MAX = 200_000  # viewers whose watched total the hint remembers


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True, eq=False)
class Activity:
    """One viewer's doings in one show since the last flush."""

    member: str | None  # the brand's member id; guests earn nothing but count in analytics
    key: tuple[uuid.UUID, str] | None = None  # (show, viewer): where it is in Accrual.pending
    # Watched, wall clock: the latest interval [start, end] (none while end <= start), which
    # the watch clock's sweeps extend in place, and any earlier ones it did not touch.
    start: float = -math.inf
    end: float = -math.inf
    earlier: tuple[tuple[float, float], ...] = ()  # (tuples: an activity makes no list)
    # The show's held watching, where the latest interval is kept for the checkpoint (at
    # book.spans[mark - 1] and book.spans[mark]; mark -1: not there).
    book: _Held | None = None
    mark: int = -1
    # Something besides watching (a join, a chat, a question, reactions, an answer, a
    # referral): written at the next flush, whether or not the watching is.
    eager: bool = False
    queued: bool = False  # listed to be written whole at the next flush (a block completed)
    # Set when the activity leaves `Accrual.pending` (taken by a flush): a holder of a
    # reference (the watch clock's socket states) must look up the current one again.
    taken: bool = False
    joined: bool = False
    chats: int = 0
    questions: int = 0
    reactions: int = 0
    answered: tuple[str, ...] = ()  # the member's questions answered
    referred_by: str | None = None  # the author id in the share link that brought them
    first_seen: float = 0.0
    last_seen: float = 0.0
    watched_s: float = 0.0  # the intervals' lengths, summed (overlaps counted twice)
    # Watched seconds at which, as far as this process knows, the viewer completes a block.
    due_s: float = 0.0

    def add(self, start: float, end: float) -> None:
        """Watched from start to end: extends the latest interval when this one starts
        within it (the sweep's back-to-back intervals, or another tab's overlapping one:
        the union is what is credited), else starts a new one."""
        book = self.book
        if self.start <= start <= self.end:
            if end > self.end:
                self.end = end
                if book is not None and self.mark >= 0:
                    book.spans[self.mark] = end
            return
        if self.end > self.start:
            self.earlier += ((self.start, self.end),)
            if book is not None:
                book.extra.add(self)
        self.start, self.end = start, end
        if book is not None:
            if self.mark >= 0:
                book.spans[self.mark - 1] = start
                book.spans[self.mark] = end
            else:
                book.place(self)

    def watch(self, start: float, end: float) -> None:
        """Watched from start to end (end after start)."""
        self.add(start, end)
        self.watched_s += end - start

    def spans(self) -> list[tuple[float, float]]:
        """The watched intervals (they may overlap: two tabs)."""
        if self.end > self.start:
            return [*self.earlier, (self.start, self.end)]
        return list(self.earlier)

    def detach(self) -> Activity:
        """Everything but the watching, as an activity of its own (taken, to be written);
        this one keeps the watching alone."""
        other = Activity(
            self.member,
            key=self.key,
            eager=True,
            taken=True,
            joined=self.joined,
            chats=self.chats,
            questions=self.questions,
            reactions=self.reactions,
            answered=self.answered,
            referred_by=self.referred_by,
            first_seen=self.first_seen,
            last_seen=self.last_seen,
            due_s=self.due_s,
        )
        self.eager = self.joined = False
        self.chats = self.questions = self.reactions = 0
        self.answered = ()
        self.referred_by = None
        return other

    def merge(self, other: Activity) -> None:
        for start, end in other.spans():
            self.add(start, end)
        self.watched_s += other.watched_s
        self.eager |= other.eager
        self.due_s = min(self.due_s, other.due_s)
        self.joined |= other.joined
        self.chats += other.chats
        self.questions += other.questions
        self.reactions += other.reactions
        self.answered += other.answered
        self.referred_by = self.referred_by or other.referred_by
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


class _Held:
    """One show's held watching, kept as it is watched so that its checkpoint costs no pass
    over every viewer: slot i is viewers[i], members[i] (guests: "") and spans[2i],
    spans[2i + 1], the latest interval of one pending activity (a free slot: "", "", 0.0,
    0.0). `extra` lists the activities with earlier intervals too (two tabs, a gap)."""

    __slots__ = ("extra", "free", "members", "spans", "used", "viewers")

    def __init__(self) -> None:
        self.viewers: list[str] = []
        self.members: list[str] = []
        self.spans = array("d")
        self.free: list[int] = []
        self.extra: set[Activity] = set()
        self.used = 0

    def place(self, activity: Activity) -> None:
        assert activity.key is not None
        viewer, member = activity.key[1], activity.member or ""
        if self.free:
            slot = self.free.pop()
            self.viewers[slot], self.members[slot] = viewer, member
            self.spans[2 * slot], self.spans[2 * slot + 1] = activity.start, activity.end
        else:
            slot = len(self.viewers)
            self.viewers.append(viewer)
            self.members.append(member)
            self.spans.append(activity.start)
            self.spans.append(activity.end)
        activity.mark = 2 * slot + 1
        self.used += 1

    def release(self, activity: Activity) -> None:
        """The activity is written (or goes back as it was before a failed write)."""
        mark = activity.mark
        if mark >= 0:
            slot = mark // 2
            self.viewers[slot] = self.members[slot] = ""
            self.spans[mark - 1] = self.spans[mark] = 0.0
            self.free.append(slot)
            self.used -= 1
            activity.mark = -1
        self.extra.discard(activity)

    def document(self, at: float) -> str | None:
        """The checkpoint (`_checkpoint`), or None when nothing is held."""
        if not self.used and not self.extra:
            return None
        viewers, members, spans = self.viewers, self.members, self.spans
        if self.extra:  # their earlier intervals as entries of their own
            viewers, members, spans = [*viewers], [*members], array("d", spans)
            for activity in self.extra:
                assert activity.key is not None
                for start, end in union(activity.earlier):
                    viewers.append(activity.key[1])
                    members.append(activity.member or "")
                    spans.append(start)
                    spans.append(end)
        return _checkpoint(at, viewers, members, spans)


def union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """The intervals merged where they overlap or touch, in order."""
    out: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def credit_after(intervals: Iterable[tuple[float, float]], until: float) -> tuple[float, float]:
    """Seconds covered by the union of `intervals` after `until`, and the new `until`."""
    covered, end = 0.0, until
    for start, stop in sorted(intervals):
        start = max(start, end)
        if stop > start:
            covered += stop - start
            end = stop
    return covered, end


@dataclass(frozen=True, slots=True)
class Earned:
    reason: Reason
    points: int


@dataclass(frozen=True, slots=True)
class Credit:
    """What one member earned in one flush, for the `points` event to their sockets."""

    show_id: uuid.UUID
    member: str
    earned: list[Earned]
    balance: int
    tier: str
    badges: list[str]


def _checkpoint(at: float, viewers: list[str], members: list[str], spans: array[float]) -> str:
    """One show's held watching as JSON text: entry i is viewers[i], members[i] (guests:
    empty) and the interval spans[2i], spans[2i + 1] (unix seconds, float64 little-endian,
    base64; an empty interval is no entry), the strings newline-joined. Packed so that
    10,000 viewers take a few ms."""
    packed = spans
    if sys.byteorder != "little":
        packed = array("d", spans)
        packed.byteswap()
    names, ids = "\n".join(viewers), "\n".join(members)
    document: dict[str, Any] = {"v": CHECKPOINT_VERSION, "at": at, "n": len(viewers)}
    if names.count("\n") == ids.count("\n") == len(viewers) - 1:
        document |= {"viewers": names, "members": ids}
    else:  # an id with a newline in it: plain lists
        document |= {"viewer_list": viewers, "member_list": members}
    document["spans"] = base64.b64encode(packed.tobytes()).decode("ascii")
    return json.dumps(document, separators=(",", ":"))


def _read_checkpoint(text: str) -> list[tuple[str, str | None, float, float]]:
    """(viewer, member, start, end) per entry of a checkpoint `_checkpoint` wrote."""
    document = json.loads(text)
    if document["v"] != CHECKPOINT_VERSION:
        raise ValueError(f"unknown checkpoint version {document['v']!r}")
    n = int(document["n"])
    if "viewers" in document:
        viewers = document["viewers"].split("\n") if n else []
        members = document["members"].split("\n") if n else []
    else:
        viewers, members = document["viewer_list"], document["member_list"]
    packed = array("d")
    packed.frombytes(base64.b64decode(document["spans"]))
    if sys.byteorder != "little":
        packed.byteswap()
    if not len(viewers) == len(members) == n or len(packed) != 2 * n:
        raise ValueError("a checkpoint's columns differ in length")
    return [
        (str(viewers[i]), str(members[i] or "") or None, packed[2 * i], packed[2 * i + 1])
        for i in range(n)
        if packed[2 * i + 1] > packed[2 * i]
    ]


class Accrual:
    def __init__(self, db: Callable[[], Database], block_minutes: int = WATCH_BLOCK) -> None:
        self._db = db
        self.pending: dict[tuple[uuid.UUID, str], Activity] = {}
        # The periodic write holds watching until it completes a block of this many minutes.
        self.block_ms = block_minutes * 60_000
        self.hold_seconds = block_minutes * 60.0
        self.on_credit: Callable[[list[Credit]], None] | None = None
        # Viewers now per show with a room on this process (counted across processes when
        # rooms share Redis), recorded at each flush for the retention curve.
        self.audience: Callable[[], dict[str, int]] = dict
        # Called first in every flush: the watch clock credits the time it has verified.
        self.before_flush: Callable[[], None] | None = None
        # Called with each live show's rules as a flush reads them (the watch clock's idle
        # limit follows the show's rules).
        self.on_rules: Callable[[uuid.UUID, EarningRules], None] | None = None
        # Watched milliseconds per (show, viewer) as this process last wrote them: a hint
        # for when the next block completes (the database row stays the truth).
        self.known_ms: dict[tuple[uuid.UUID, str], int] = {}
        # Across flushes, so each is looked up once: member ids by the brand's id, and per
        # show the members (`UUID.int`) whose join bonus is in the ledger. Cleared if a write
        # fails.
        self.member_ids: dict[str, uuid.UUID] = {}
        self.join_paid: dict[uuid.UUID, set[int]] = {}
        # What the periodic write takes, kept as it happens so that it needs no pass over
        # every pending viewer: activities whose watching completed a block (or was read
        # back), activities with something besides watching, and every activity in the
        # order it began (the head is the next to have been held hold_seconds).
        self._due: list[Activity] = []
        self._eager: list[Activity] = []
        self._begun: deque[Activity] = deque()
        # Per show, the watching held back, ready for its checkpoint.
        self._books: dict[uuid.UUID, _Held] = {}
        # Shows whose checkpoint row this process wrote or read back: the next flush rewrites
        # it, or deletes it once nothing of the show is held.
        self.checkpointed: set[uuid.UUID] = set()
        self.clock: Callable[[], float] = time.time
        self._written_at = time.monotonic()
        self.flushes = 0
        self.rows_written = 0

    # --- what the live room reports ---------------------------------------------------------

    def activity(self, show_id: uuid.UUID, viewer: str, member: str | None) -> Activity:
        """The viewer's pending activity in the show (a new one if there is none), seen now.
        It stays theirs until a flush takes it (`Activity.taken`). Whoever adds watching to
        it calls `due` after."""
        key = (show_id, viewer)
        found = self.pending.get(key)
        now = self.clock()
        if found is None:
            known = self.known_ms.get(key)
            block = self.block_ms
            due = 0.0 if known is None else (block - known % block) / 1000
            book = self._books.get(show_id)
            if book is None:
                book = self._books[show_id] = _Held()
            found = self.pending[key] = Activity(
                member, key=key, book=book, first_seen=now, due_s=due
            )
            self._begun.append(found)
        found.last_seen = now
        return found

    def due(self, activity: Activity) -> None:
        """Watching was added to the activity: list it for the next write if it completed a
        block."""
        if activity.watched_s >= activity.due_s and not activity.queued:
            activity.queued = True
            self._due.append(activity)

    def _eager_activity(self, show_id: uuid.UUID, viewer: str, member: str | None) -> Activity:
        found = self.activity(show_id, viewer, member)
        if not found.eager:
            found.eager = True
            self._eager.append(found)
        return found

    def joined(
        self, show_id: uuid.UUID, viewer: str, member: str | None, referred_by: str | None
    ) -> None:
        activity = self._eager_activity(show_id, viewer, member)
        activity.joined = True
        activity.referred_by = activity.referred_by or referred_by

    def watched(
        self, show_id: uuid.UUID, viewer: str, member: str | None, start: float, end: float
    ) -> None:
        if end > start:
            activity = self.activity(show_id, viewer, member)
            activity.watch(start, end)
            self.due(activity)

    def chatted(self, show_id: uuid.UUID, viewer: str, member: str | None) -> None:
        self._eager_activity(show_id, viewer, member).chats += 1

    def asked(self, show_id: uuid.UUID, viewer: str, member: str | None) -> None:
        self._eager_activity(show_id, viewer, member).questions += 1

    def reacted(self, show_id: uuid.UUID, viewer: str, member: str | None, count: int) -> None:
        self._eager_activity(show_id, viewer, member).reactions += count

    def answered(
        self, show_id: uuid.UUID, viewer: str, member: str | None, question_id: str
    ) -> None:
        self._eager_activity(show_id, viewer, member).answered += (question_id,)

    # --- writing ----------------------------------------------------------------------------

    def _take(self, activity: Activity, batch: dict[tuple[uuid.UUID, str], Activity]) -> None:
        assert activity.key is not None
        del self.pending[activity.key]
        activity.taken = True
        if activity.book is not None:
            activity.book.release(activity)
        batch[activity.key] = activity

    def _split(
        self, now: float
    ) -> tuple[dict[tuple[uuid.UUID, str], Activity], dict[uuid.UUID, str]]:
        """What the periodic write takes (out of `pending`), and a checkpoint per show of
        the watching it holds back.

        Watching is written when it completes a block (as far as this process knows:
        progress within a block earns nothing, so it can wait) or has been held
        `hold_seconds` (analytics see it); everything else at once, without the viewer's
        held watching, which stays pending. Only those activities are visited, not every
        pending viewer."""
        batch: dict[tuple[uuid.UUID, str], Activity] = {}
        begun, hold = self._begun, self.hold_seconds
        while begun and (begun[0].taken or now - begun[0].first_seen >= hold):
            activity = begun.popleft()
            if not activity.taken:
                self._take(activity, batch)
        due, self._due = self._due, []
        for activity in due:
            if not activity.taken:
                self._take(activity, batch)
        eager, self._eager = self._eager, []
        for activity in eager:
            if activity.taken or not activity.eager:
                continue
            if activity.end <= activity.start and not activity.earlier:
                self._take(activity, batch)  # nothing watched: nothing to hold
            else:
                assert activity.key is not None
                batch[activity.key] = activity.detach()
        docs = {}
        for show_id, book in self._books.items():
            document = book.document(now)
            if document is not None:
                docs[show_id] = document
        return batch, docs

    async def periodic_write(self, every: float) -> list[Credit]:
        """The periodic write (`flush(hold=True)`), asked often: it writes once `every`
        seconds have passed since the last, or sooner once EARLY_WRITE viewers have
        something to write besides held watching."""
        now = time.monotonic()
        if now - self._written_at < every and len(self._due) + len(self._eager) < EARLY_WRITE:
            return []
        self._written_at = now
        return await self.flush(hold=True)

    async def flush(self, *, hold: bool = False) -> list[Credit]:
        """Write what is pending in one transaction. With `hold` (the periodic write),
        watching that has not yet completed a block stays in memory for up to
        `hold_seconds`, and the same transaction checkpoints it; without it (show end,
        shutdown, tests) everything is written and the checkpoints are deleted."""
        if self.before_flush is not None:
            self.before_flush()
        # No cyclic garbage collection during the write (in this whole process, for its
        # 0.1 s or so; any cycles made meanwhile wait for the next collection). The write
        # holds thousands of new objects (rows, parameters, entries) until it ends, and
        # the collector would go over them again and again, and move them into the older
        # generations, which brought on a full collection (some 80 ms with 10,000
        # viewers' state in memory) every dozen writes: about a sixth of a write's Python.
        # They are freed by reference counting once it ends, so nothing is left to collect.
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            credits = await self._flush(hold)
        finally:
            if paused:
                gc.enable()
        if credits and self.on_credit is not None:
            self.on_credit(credits)
        return credits

    async def _flush(self, hold: bool) -> list[Credit]:
        now = self.clock()
        if hold:
            batch, docs = self._split(now)
        else:
            batch, self.pending, docs = self.pending, {}, {}
            for activity in batch.values():
                activity.taken = True
            self._due, self._eager, self._begun, self._books = [], [], deque(), {}
        audience = {uuid.UUID(show): n for show, n in self.audience().items() if n > 0}
        if not batch and not audience and not docs and not self.checkpointed:
            return []
        try:
            credits = await self._write(batch, audience, docs, now)
        except BaseException:
            self.member_ids.clear()
            self.join_paid.clear()
            # Put it back (merged with what arrived meanwhile): the next flush writes it.
            for key, activity in batch.items():
                activity.taken = False
                later = self.pending.get(key)
                if later is not None:
                    activity.merge(later)
                    later.taken = True
                    if later.book is not None:
                        later.book.release(later)
                self.pending[key] = activity
                activity.queued = True
                self._due.append(activity)
            raise
        self.flushes += 1
        return credits

    async def _write(
        self,
        batch: dict[tuple[uuid.UUID, str], Activity],
        audience: dict[uuid.UUID, int],
        docs: dict[uuid.UUID, str],
        now: float,
    ) -> list[Credit]:
        db = self._db()
        async with db.transaction() as session:
            writer = _Flush(session, _at(now), db.dialect, self)
            await writer.minutes(audience)
            by_show: dict[uuid.UUID, dict[str, Activity]] = {}
            last: uuid.UUID | None = None
            group: dict[str, Activity] = {}
            for (show_id, viewer), activity in batch.items():
                if show_id is not last:  # (a show's activities mostly share its id object)
                    last, group = show_id, by_show.setdefault(show_id, {})
                group[viewer] = activity
            for show_id in sorted(by_show):
                await writer.show(show_id, by_show[show_id])
            await writer.finish()
            await writer.checkpoints(docs, self.checkpointed - set(docs))
        self.checkpointed = set(docs)
        self.rows_written += writer.rows
        if len(self.known_ms) > KNOWN_MAX:
            self.known_ms.clear()
        self.known_ms.update(writer.watched_ms)
        if len(self.member_ids) > KNOWN_MAX:
            self.member_ids.clear()
            self.join_paid.clear()
        self.member_ids.update(writer.members)
        for show_id, paid in writer.join_paid.items():
            self.join_paid.setdefault(show_id, set()).update(paid)
        return writer.credits()

    async def restore(self) -> int:
        """At start-up: read back the checkpoints of live shows (watching a stopped process
        held and had not written) into `pending`, written at the next flush. Checkpoints of
        shows no longer live are deleted. Time already credited is never credited again
        (`credit_after` against the attendance row's watched-until time), so a checkpoint
        read twice, or one repeating written time, credits nothing twice. Returns the
        number of viewers read back."""
        db = self._db()
        async with db.transaction() as session:
            rows = (
                await session.execute(
                    select(CHECKPOINTS.c.show_id, CHECKPOINTS.c.held, models.Show.state)
                    .select_from(CHECKPOINTS)
                    .outerjoin(models.Show, models.Show.id == CHECKPOINTS.c.show_id)
                )
            ).all()
            stale = [show_id for show_id, _, state in rows if state != ShowState.LIVE.value]
            if stale:
                await session.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.show_id.in_(stale)))
        seen: set[tuple[uuid.UUID, str]] = set()
        for show_id, held, state in rows:
            if state != ShowState.LIVE.value:
                continue
            try:
                entries = _read_checkpoint(held)
            except (ValueError, KeyError, TypeError):
                log.warning("the checkpoint of show %s could not be read", show_id)
                continue
            for viewer, member, start, end in entries:
                fresh = (show_id, viewer) not in self.pending
                activity = self.activity(show_id, viewer, member)
                activity.watch(start, end)
                if fresh:
                    activity.first_seen, activity.last_seen = start, end
                activity.due_s = 0.0  # due at once: the next flush writes it
                self.due(activity)
                seen.add((show_id, viewer))
            self.checkpointed.add(show_id)
        return len(seen)


ATTENDANCE = cast(Table, models.ShowAttendance.__table__)
CHECKPOINTS = cast(Table, models.WatchCheckpoint.__table__)
POINTS = cast(Table, models.MemberPoints.__table__)
ENTRIES = cast(Table, models.LedgerEntry.__table__)
MEMBERS = cast(Table, models.Member.__table__)
ATTENDANCE_VALUES = (  # what a flush changes (not the member, nor when first seen)
    "watched_ms",
    "watched_until",
    "chats",
    "questions",
    "answered",
    "reactions",
    "referrals",
    "referred_by",
    "points",
    "last_seen",
)
POINTS_VALUES = (
    "balance",
    "tier",
    "rolling_points",
    "badges",
    "streak",
    "streak_show_id",
    "shows_attended",
    "updated_at",
)
# What the flush reads of an attendance row it updates (not the member, nor first seen).
ATTENDANCE_READ = tuple(c for c in ATTENDANCE_VALUES if c != "last_seen")
ATTENDANCE_KEYS = ("viewer", *ATTENDANCE_READ)
# What it reads of a balance row (not updated_at: a row it writes is updated now), in the
# order `_Flush._preload` unpacks.
POINTS_READ = ("member_id", *(c for c in POINTS_VALUES if c != "updated_at"))
POINTS_MOVED = ("balance", "tier", "rolling_points", "updated_at")  # when only points moved


Row = dict[str, Any]


def _update_by_key(table: Any, keys: tuple[str, ...], values: tuple[str, ...]) -> Any:
    """UPDATE table SET each of values WHERE the keys match, for executemany with rows
    whose keys are prefixed k_ and values v_."""
    statement = update(table)
    for key in keys:
        statement = statement.where(table.c[key] == bindparam("k_" + key, type_=table.c[key].type))
    return statement.values(
        {table.c[v]: bindparam("v_" + v, type_=table.c[v].type) for v in values}
    )


def _params(row: dict[str, Any], keys: tuple[str, ...], values: tuple[str, ...]) -> dict[str, Any]:
    return {**{"k_" + k: row[k] for k in keys}, **{"v_" + v: row[v] for v in values}}


# The flush's three big statements (every watched block is an entry, a balance update and
# an attendance update) go to the driver as SQL text with their rows already in the form it
# takes, as executemany: SQLAlchemy's per-row parameter processing was a fifth of a flush.
# What every engagement entry shares is written as constants; the ids are made per flush.
Entry = tuple[uuid.UUID, str, int, int, uuid.UUID, str, int]  # ENTRY_COLUMNS[1:-1]
ENTRY_COLUMNS = (
    "id",
    "member_id",
    "reason",
    "points",
    "balance_after",
    "show_id",
    "idempotency_key",
    "rules_version",
    "created_at",
)
ENTRY_CONSTANTS = {"kind": EntryKind.EARN.value}  # order, request hash and note stay NULL


def entry_ids(n: int, now: datetime) -> list[str]:
    """`n` new ledger entry ids as 32 hex digits, in the layout of UUID version 7 (RFC 9562):
    the time in milliseconds first, then random bits. One flush's entries sort together
    after every earlier one, so they go to the end of the primary key's index instead of
    a random page each (random version 4 ids dirtied hundreds of index pages per flush)."""
    prefix = format(int(now.timestamp() * 1000) & 0xFFFF_FFFF_FFFF, "012x") + "7"
    bits = os.urandom(10 * n).hex()
    out = []
    for at in range(0, 20 * n, 20):
        # 12 random bits, the variant (binary 10) with 2 more, then 60 random bits.
        out.append(
            prefix + bits[at : at + 3] + "89ab"[int(bits[at + 3], 16) & 3] + bits[at + 4 : at + 19]
        )
    return out


def _dashed(hexed: str) -> str:
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _marks(dialect: str, n: int) -> list[str]:
    return ["?"] * n if dialect == "sqlite" else [f"${i}" for i in range(1, n + 1)]


def _driver_update(
    dialect: str, table: Table, keys: tuple[str, ...], values: tuple[str, ...]
) -> str:
    """UPDATE table SET values WHERE keys, parameters in that order."""
    marks = iter(_marks(dialect, len(values) + len(keys)))
    sets = ", ".join(f'"{v}" = {next(marks)}' for v in values)
    where = " AND ".join(f'"{k}" = {next(marks)}' for k in keys)
    return f'UPDATE "{table.name}" SET {sets} WHERE {where}'


def _driver_insert(dialect: str, table: Table, columns: tuple[str, ...]) -> str:
    names = ", ".join('"' + c + '"' for c in (*columns, *ENTRY_CONSTANTS))
    values = [*_marks(dialect, len(columns)), *(f"'{v}'" for v in ENTRY_CONSTANTS.values())]
    return f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join(values)})'


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's storage format for a UTC datetime on SQLite (reads, and the string
    comparisons of ranges, depend on every row having it)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


class _Flush:
    """One flush's transaction, in a few Core statements: the rows it touches are read once
    (locked), changed as plain dicts, and written back with one executemany per table."""

    def __init__(self, session: Any, now: datetime, dialect: str, accrual: Accrual) -> None:
        self.accrual = accrual
        self.session = session
        self.now = now
        self.dialect = dialect
        self.rows = 0
        # Members are keyed by their id's `UUID.int` below: `UUID.__hash__` is Python code,
        # and hashing ids was a tenth of a flush's Python.
        self.members: dict[str, uuid.UUID] = {}  # external id -> member id
        self.points: dict[int, Row] = {}
        self.new_points: set[int] = set()
        self.touched_points: set[int] = set()
        # Per show (in the order written), per member: what they earned, for `credits`.
        self.earned: dict[uuid.UUID, dict[int, list[Earned]]] = {}
        self._earned_here: dict[int, list[Earned]] = {}  # the current show's
        self.entries: list[Entry] = []
        # Per entry: its member's external id and its show's (hex, str) ids, for `finish`.
        self._entry_meta: list[tuple[str, tuple[str, str]]] = []
        self._show_text: tuple[str, str] = ("", "")  # the current show's (hex, str)
        self.rules: EarningRules | None = None
        self.joined: set[int] = set()  # members with the current show's join bonus
        self.join_paid: dict[uuid.UUID, set[int]] = {}  # for the accrual's cache
        self.full_points: set[int] = set()  # balance rows whose every column is written
        self.new_attendance: list[Row] = []
        # Rows to update, each with its show id as the driver takes it (SQLite: the hex).
        self.changed_attendance: list[tuple[Row, Any]] = []
        self.watched_ms: dict[tuple[uuid.UUID, str], int] = {}  # for the next flush's hint
        self._datetimes: dict[float, datetime] = {}
        self._stored_times: dict[datetime, str] = {}

    def _datetime(self, seconds: float) -> datetime:
        """`_at(seconds)`, made once per flush for each distinct time (the sweep gives most
        viewers the same one)."""
        found = self._datetimes.get(seconds)
        if found is None:
            found = self._datetimes[seconds] = _at(seconds)
        return found

    def _stored_time(self, value: datetime) -> str:
        """`_sqlite_time(value)`, made once per flush for each distinct time."""
        found = self._stored_times.get(value)
        if found is None:
            found = self._stored_times[value] = _sqlite_time(value)
        return found

    async def _attendance(self, show_id: uuid.UUID, keys: set[str]) -> dict[str, Row]:
        """The show's attendance rows of these viewers, locked, as dicts of ATTENDANCE_READ
        and the viewer: read through the driver, its values converted here (SQLAlchemy's
        per-row result processing was a sixth of a flush)."""
        connection = await self.session.connection()
        columns = ", ".join(f'"{c}"' for c in ("viewer", *ATTENDANCE_READ))
        if self.dialect == "sqlite":
            sql = (
                f'SELECT {columns} FROM "{ATTENDANCE.name}" WHERE "show_id" = ? '
                'AND "viewer" IN (SELECT value FROM json_each(?))'
            )
            params: tuple[Any, ...] = (show_id.hex, json.dumps(list(keys)))
        else:
            sql = (
                f'SELECT {columns} FROM "{ATTENDANCE.name}" WHERE "show_id" = $1 '
                'AND "viewer" = ANY($2::varchar[]) FOR UPDATE'
            )
            params = (show_id, list(keys))
        rows: dict[str, Row] = {}
        times: dict[Any, datetime] = {}
        sqlite = self.dialect == "sqlite"
        for raw in (await connection.exec_driver_sql(sql, params)).all():
            row = dict(zip(ATTENDANCE_KEYS, raw, strict=True))
            until = row["watched_until"]
            if until is not None:
                found = times.get(until)
                if found is None:
                    found = times[until] = (
                        datetime.fromisoformat(until).replace(tzinfo=UTC) if sqlite else until
                    )
                row["watched_until"] = found
            if sqlite and row["referred_by"] is not None:
                row["referred_by"] = uuid.UUID(hex=row["referred_by"])
            rows[row["viewer"]] = row
        return rows

    async def _members(self, externals: set[str]) -> None:
        cached = self.accrual.member_ids
        for external in externals:
            if external not in self.members and external in cached:
                self.members[external] = cached[external]
        missing = externals - set(self.members)
        if not missing:
            return
        where = MEMBERS.c.external_id.in_(missing)
        found = dict(
            (
                await self.session.execute(select(MEMBERS.c.external_id, MEMBERS.c.id).where(where))
            ).all()
        )
        new = missing - set(found)
        if new:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            await self.session.execute(
                insert(MEMBERS).on_conflict_do_nothing(index_elements=["external_id"]),
                [
                    {
                        "id": uuid.uuid4(),
                        "external_id": external,
                        "display_name": "",
                        "created_at": self.now,
                        "updated_at": self.now,
                    }
                    for external in sorted(new)
                ],
            )
            found = dict(
                (
                    await self.session.execute(
                        select(MEMBERS.c.external_id, MEMBERS.c.id).where(where)
                    )
                ).all()
            )
        self.members.update(found)

    async def _preload(self, member_ids: dict[int, uuid.UUID]) -> None:
        """Lock the balance rows of this flush's members (by `UUID.int`) in one query
        (missing ones are created when first needed), read through the driver like
        `_attendance`. Their `updated_at` is not read: a row this flush writes is updated
        now."""
        points = self.points
        wanted = [m for k, m in member_ids.items() if k not in points]
        if not wanted:
            return
        connection = await self.session.connection()
        columns = ", ".join(f'"{c}"' for c in POINTS_READ)
        if self.dialect == "sqlite":
            sql = (
                f'SELECT {columns} FROM "{POINTS.name}" '
                'WHERE "member_id" IN (SELECT value FROM json_each(?))'
            )
            ids = {m.hex: m for m in wanted}
            params: tuple[Any, ...] = (json.dumps(list(ids)),)
        else:
            sql = (
                f'SELECT {columns} FROM "{POINTS.name}" '
                'WHERE "member_id" = ANY($1::uuid[]) FOR UPDATE'
            )
            ids = {}
            params = (wanted,)
        badges: dict[Any, list[str]] = {}  # shared: a badge is added to a copy (`_badge`)
        shows: dict[Any, uuid.UUID | None] = {None: None}
        now = self.now
        for member_id, balance, tier, rolling, text, streak, hexed, attended in (
            await connection.exec_driver_sql(sql, params)
        ).all():  # POINTS_READ
            if ids:
                member_id = ids[member_id]
            if isinstance(text, str):  # SQLite's JSON text (asyncpg's codec decodes it)
                found = badges.get(text)
                if found is None:
                    found = badges[text] = json.loads(text)
                text = found
            show = shows.get(hexed, False)
            if show is False:
                show = shows[hexed] = uuid.UUID(hex=hexed) if isinstance(hexed, str) else hexed
            points[member_id.int] = {
                "member_id": member_id,
                "balance": balance,
                "tier": tier,
                "rolling_points": rolling,
                "badges": text,
                "streak": streak,
                "streak_show_id": show,
                "shows_attended": attended,
                "updated_at": now,
            }

    def _points(self, key: int, member_id: uuid.UUID, rules: EarningRules) -> Row:
        """The member's balance row (key: `member_id.int`), a new one if there is none."""
        row = self.points.get(key)
        if row is None:
            row = self.points[key] = {
                "member_id": member_id,
                "balance": 0,
                "tier": rules.tiers[0].name,
                "rolling_points": 0,
                "badges": [],
                "streak": 0,
                "streak_show_id": None,
                "shows_attended": 0,
                "updated_at": self.now,
            }
            self.new_points.add(key)
        return row

    def _earn(
        self,
        show_id: uuid.UUID,
        member_id: uuid.UUID,
        external: str,
        rules: EarningRules,
        version: int,
        reason: Reason,
        points: int,
        key: str,
    ) -> int:
        if points <= 0:
            return 0
        points = min(points, MAX_POINTS)
        mi = member_id.int
        row = self._points(mi, member_id, rules)
        self.touched_points.add(mi)
        row["balance"] += points
        row["rolling_points"] += points
        row["updated_at"] = self.now
        # In ENTRY_COLUMNS order without the id and the time (made in `finish`); the kind,
        # order, request hash and note are the same for all.
        self.entries.append(
            (
                member_id,
                reason.value,
                points,
                row["balance"],
                show_id,
                key[: ledger.KEY_MAX],
                version,
            )
        )
        self._entry_meta.append((external, self._show_text))
        earned = self._earned_here.get(mi)
        if earned is None:
            earned = self._earned_here[mi] = []
        earned.append(Earned(reason, points))
        self.rows += 1
        return points

    async def show(self, show_id: uuid.UUID, viewers: dict[str, Activity]) -> None:
        session = self.session
        show = (
            await session.execute(
                select(models.Show.state, models.Show.started_at).where(models.Show.id == show_id)
            )
        ).first()
        if show is None:
            return
        rules, version = await ledger.read_rules(session, show_id)
        self.rules = self.rules or rules
        live = show.state == ShowState.LIVE.value
        if live and self.accrual.on_rules is not None:
            self.accrual.on_rules(show_id, rules)
        referrers = {a.referred_by for a in viewers.values() if a.referred_by}
        sharers: dict[str, str] = {}
        if referrers:
            for author, subject in await session.execute(
                select(models.ShowParticipant.author_id, models.ShowParticipant.subject).where(
                    models.ShowParticipant.show_id == show_id,
                    models.ShowParticipant.author_id.in_(referrers),
                    models.ShowParticipant.role == "viewer",
                )
            ):
                sharers[author] = subject
        externals = {a.member for a in viewers.values() if a.member} | set(sharers.values())
        await self._members(externals)
        keys = set(viewers) | {f"viewer:{s}" for s in sharers.values()}
        attendance = await self._attendance(show_id, keys)
        known = set(attendance)
        members = self.members
        ids = {m.int: m for m in [members[e] for e in externals]}
        if live:
            await self._preload(ids)
        paid = self.accrual.join_paid.get(show_id, set())
        self.joined = {k for k in ids if k in paid}
        known_paid = set(self.joined)
        self.joined |= {
            m.int
            for m, _ in await ledger.existing_keys(
                session, {m for k, m in ids.items() if k not in known_paid}, {f"join:{show_id}"}
            )
        }
        previous_show: list[uuid.UUID | None] = []  # the show before this one, looked up once
        show_key = str(show_id)
        self._show_text = (show_id.hex, show_key)
        self._earned_here = self.earned.setdefault(show_id, {})
        in_order = sorted(viewers.items())
        for viewer, activity in in_order:
            row = attendance.get(viewer)
            if row is None:
                member_id = self.members.get(activity.member) if activity.member else None
                row = attendance[viewer] = {
                    "show_id": show_id,
                    "viewer": viewer,
                    "member_id": member_id,
                    "watched_ms": 0,
                    "watched_until": None,
                    "chats": 0,
                    "questions": 0,
                    "answered": 0,
                    "reactions": 0,
                    "referrals": 0,
                    "referred_by": None,
                    "points": 0,
                    "first_seen": _at(activity.first_seen),
                    "last_seen": self._datetime(activity.last_seen),
                }
            streak = self._apply(show_id, show_key, live, rules, version, row, activity)
            if streak is not None:  # a show counts for the streak: which show came before?
                if not previous_show:
                    previous_show.append(await self._previous_show(show_id, show.started_at))
                assert activity.member is not None
                self._streak(
                    show_id,
                    show_key,
                    rules,
                    version,
                    row,
                    streak,
                    activity.member,
                    previous_show[0],
                )
            row["last_seen"] = self._datetime(activity.last_seen)
        # Referrals credit the sharer (their attendance row counts the referrals).
        for viewer, activity in in_order:
            sharer = sharers.get(activity.referred_by or "")
            row = attendance[viewer]
            if (
                sharer is None
                or not live
                or activity.member == sharer
                or row["referred_by"] is not None
                or activity.member is None
            ):
                continue
            sharer_id = self.members[sharer]
            row["referred_by"] = sharer_id
            mine = attendance.get(f"viewer:{sharer}")
            if mine is None:
                continue  # a sharer is a participant, so they have attended; be safe anyway
            before = mine["referrals"]
            mine["referrals"] += 1
            if before < rules.referral_cap:
                mine["points"] += self._earn(
                    show_id,
                    sharer_id,
                    sharer,
                    rules,
                    version,
                    Reason.REFERRAL,
                    rules.referral_points,
                    f"referral:{show_id}:{activity.member}",
                )
        newly_paid = self.joined - known_paid
        if newly_paid:
            self.join_paid.setdefault(show_id, set()).update(newly_paid)
        touched = set(viewers) | {f"viewer:{s}" for s in sharers.values()}
        # A sharer with nothing of their own in this flush keeps when they were last seen
        # (the locked read above leaves that column out: every other row sets it anew).
        quiet = [v for v in touched if v in attendance and "last_seen" not in attendance[v]]
        if quiet:
            for viewer, seen in await session.execute(
                select(ATTENDANCE.c.viewer, ATTENDANCE.c.last_seen).where(
                    ATTENDANCE.c.show_id == show_id, ATTENDANCE.c.viewer.in_(quiet)
                )
            ):
                attendance[viewer]["last_seen"] = seen
        show_param = show_id.hex if self.dialect == "sqlite" else show_id
        for viewer, row in attendance.items():
            if viewer not in touched:
                continue
            row["show_id"] = show_id
            if viewer in known:
                self.changed_attendance.append((row, show_param))
            else:
                self.new_attendance.append(row)
            self.watched_ms[(show_id, viewer)] = row["watched_ms"]

    def _apply(
        self,
        show_id: uuid.UUID,
        show_key: str,
        live: bool,
        rules: EarningRules,
        version: int,
        row: Row,
        activity: Activity,
    ) -> uuid.UUID | None:
        """The activity's counts and points on its attendance row. Returns the member's id
        when this watching makes the show count for their streak (`_streak`, credited next:
        it needs the previous show, looked up once per show)."""
        before_ms = row["watched_ms"]
        if activity.end > activity.start or activity.earlier:
            # Watching: only the time after what was already credited (two tabs never
            # count twice).
            until = row["watched_until"].timestamp() if row["watched_until"] else -math.inf
            seconds, new_until = credit_after(activity.spans(), until)
            if seconds > 0:
                row["watched_ms"] += int(seconds * 1000)
                row["watched_until"] = self._datetime(new_until)
        chats_before, questions_before = row["chats"], row["questions"]
        reactions_before = row["reactions"]
        row["chats"] += activity.chats
        row["questions"] += activity.questions
        row["reactions"] += activity.reactions
        row["answered"] += len(activity.answered)
        external = activity.member
        member_id = self.members.get(external) if external else None
        if member_id is None or not live:
            return None  # guests earn nothing; nothing is earned outside the live show
        assert external is not None
        mi = member_id.int
        # Each idempotency key is "<kind>:<show id>[:<n>]", made only when points are due
        # (no closure to share it: its cells were most of a flush's garbage collections).
        earn = self._earn
        who = (show_id, member_id, external, rules, version)  # earn()'s first arguments
        points_of = self._points(mi, member_id, rules)
        if mi not in self.joined:  # the first time this member is seen in the live show
            self.joined.add(mi)
            points = rules.first_join_points
            if points > 0:
                row["points"] += earn(*who, Reason.FIRST_JOIN, points, f"join:{show_key}")
            points_of["shows_attended"] += 1
            self.touched_points.add(mi)
            self.full_points.add(mi)
            self._badge(points_of, rules, "first_show", points_of["shows_attended"] == 1)
            self._badge(points_of, rules, "five_shows", points_of["shows_attended"] == 5)
        watched_ms = row["watched_ms"]
        if watched_ms != before_ms:
            points = rules.watch_points(before_ms / 1000, watched_ms / 1000)
            if points > 0:
                minutes = min(watched_ms // 60_000, rules.watch_cap_minutes)
                row["points"] += earn(*who, Reason.WATCH, points, f"watch:{show_key}:{minutes}")
        if activity.chats:
            chats = min(row["chats"], rules.chat_cap)
            points = (chats - min(chats_before, rules.chat_cap)) * rules.chat_points
            if points > 0:
                row["points"] += earn(*who, Reason.CHAT, points, f"chat:{show_key}:{chats}")
        if activity.questions:
            questions = min(row["questions"], rules.question_cap)
            points = (questions - min(questions_before, rules.question_cap)) * rules.question_points
            if points > 0:
                row["points"] += earn(
                    *who, Reason.QUESTION, points, f"question:{show_key}:{questions}"
                )
            self._badge(points_of, rules, "first_question", True)
        for question_id in activity.answered:
            if rules.question_answered_points > 0:
                row["points"] += self._earn(
                    *who,
                    Reason.QUESTION_ANSWERED,
                    rules.question_answered_points,
                    f"answered:{question_id}",
                )
        if activity.reactions:
            taps_before = min(reactions_before // 10, rules.reaction_cap)
            taps_after = min(row["reactions"] // 10, rules.reaction_cap)
            points = (taps_after - taps_before) * rules.reaction_points
            if points > 0:
                row["points"] += earn(
                    *who, Reason.REACTION, points, f"reaction:{show_key}:{taps_after}"
                )
        # The streak: a show counts once watched long enough (`_streak`).
        threshold = rules.streak_min_minutes * 60_000
        if before_ms < threshold <= watched_ms and points_of["streak_show_id"] != show_id:
            return member_id
        return None

    def _streak(
        self,
        show_id: uuid.UUID,
        show_key: str,
        rules: EarningRules,
        version: int,
        row: Row,
        member_id: uuid.UUID,
        external: str,
        previous: uuid.UUID | None,
    ) -> None:
        """The show counts for the member's streak; consecutive shows add up."""
        mi = member_id.int
        points_of = self.points[mi]
        streak = (
            points_of["streak"] + 1 if previous and points_of["streak_show_id"] == previous else 1
        )
        points_of["streak"], points_of["streak_show_id"] = streak, show_id
        self.touched_points.add(mi)
        self.full_points.add(mi)
        points = rules.streak_points_for(streak)
        if points > 0:
            row["points"] += self._earn(
                show_id,
                member_id,
                external,
                rules,
                version,
                Reason.STREAK,
                points,
                f"streak:{show_key}",
            )
        self._badge(points_of, rules, "streak_3", streak >= 3)

    async def _previous_show(
        self, show_id: uuid.UUID, started_at: datetime | None
    ) -> uuid.UUID | None:
        result: uuid.UUID | None = await self.session.scalar(
            select(models.Show.id)
            .where(
                models.Show.id != show_id,
                models.Show.started_at.is_not(None),
                models.Show.started_at < (started_at or self.now),
                models.Show.state.in_((ShowState.LIVE.value, ShowState.ENDED.value)),
            )
            .order_by(models.Show.started_at.desc())
            .limit(1)
        )
        return result

    def _badge(self, row: Row, rules: EarningRules, badge: str, earned: bool) -> None:
        assert badge in BADGES
        if rules.badges and earned and badge not in row["badges"]:
            row["badges"] = [*row["badges"], badge]
            self.touched_points.add(row["member_id"].int)
            self.full_points.add(row["member_id"].int)

    async def minutes(self, audience: dict[uuid.UUID, int]) -> None:
        """Viewers in the current minute of each live show: the most seen wins."""
        if not audience:
            return
        rows = []
        for show_id, started in await self.session.execute(
            select(models.Show.id, models.Show.started_at).where(
                models.Show.id.in_(list(audience)), models.Show.state == ShowState.LIVE.value
            )
        ):
            if started is not None:
                minute = max(0, int((self.now - started).total_seconds() // 60))
                rows.append({"show_id": show_id, "minute": minute, "viewers": audience[show_id]})
        if not rows:
            return
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        statement = insert(models.ShowMinute)  # the rows as parameters: compiled once
        statement = statement.on_conflict_do_update(
            index_elements=["show_id", "minute"],
            set_={
                "viewers": case(
                    (
                        statement.excluded["viewers"] > models.ShowMinute.viewers,
                        statement.excluded["viewers"],
                    ),
                    else_=models.ShowMinute.viewers,
                )
            },
        )
        await self.session.execute(statement, rows)
        self.rows += len(rows)

    async def finish(self) -> None:
        session = self.session
        if self.new_attendance:
            await session.execute(insert(ATTENDANCE), self.new_attendance)
            self.rows += len(self.new_attendance)
        connection = await session.connection()
        sqlite = self.dialect == "sqlite"
        now = _sqlite_time(self.now) if sqlite else self.now
        stored = self._stored_time
        if self.changed_attendance:
            await connection.exec_driver_sql(
                _driver_update(self.dialect, ATTENDANCE, ("show_id", "viewer"), ATTENDANCE_VALUES),
                [
                    (
                        row["watched_ms"],
                        None if (until := row["watched_until"]) is None else stored(until),
                        row["chats"],
                        row["questions"],
                        row["answered"],
                        row["reactions"],
                        row["referrals"],
                        None if (by := row["referred_by"]) is None else by.hex,
                        row["points"],
                        stored(row["last_seen"]),
                        show,
                        row["viewer"],
                    )
                    for row, show in self.changed_attendance
                ]
                if sqlite
                else [
                    (
                        row["watched_ms"],
                        row["watched_until"],
                        row["chats"],
                        row["questions"],
                        row["answered"],
                        row["reactions"],
                        row["referrals"],
                        row["referred_by"],
                        row["points"],
                        row["last_seen"],
                        show,
                        row["viewer"],
                    )
                    for row, show in self.changed_attendance
                ],
            )
        # Tiers move with what was earned (the hourly job takes off what leaves the window).
        changes = []
        rules = self.rules
        for key in self.touched_points:
            row = self.points[key]
            tier = rules.tier_for(row["rolling_points"]) if rules else row["tier"]
            if tier != row["tier"]:
                changes.append((row["member_id"], row["tier"], tier, row["rolling_points"]))
                row["tier"] = tier
        new = [self.points[m] for m in self.new_points]
        if new:
            await session.execute(insert(POINTS), new)
        changed = self.touched_points - self.new_points
        keys = ("member_id",)
        full = [self.points[m] for m in changed & self.full_points]
        if full:  # a first join, a badge or a streak: rare after the show's first minutes
            await session.execute(
                _update_by_key(POINTS, keys, POINTS_VALUES),
                [_params(row, keys, POINTS_VALUES) for row in full],
            )
        moved = [self.points[m] for m in changed - self.full_points]
        if moved:
            await connection.exec_driver_sql(
                _driver_update(self.dialect, POINTS, keys, POINTS_MOVED),
                [
                    (
                        row["balance"],
                        row["tier"],
                        row["rolling_points"],
                        now if row["updated_at"] is self.now else stored(row["updated_at"]),
                        row["member_id"].hex,
                    )
                    for row in moved
                ]
                if sqlite
                else [
                    (
                        row["balance"],
                        row["tier"],
                        row["rolling_points"],
                        row["updated_at"],
                        row["member_id"],
                    )
                    for row in moved
                ],
            )
        ids = entry_ids(len(self.entries), self.now)
        meta = self._entry_meta
        if self.entries:
            await connection.exec_driver_sql(
                _driver_insert(self.dialect, ENTRIES, ENTRY_COLUMNS),
                [
                    (i, m.hex, r, p, b, show[0], k, v, now)
                    for i, (m, r, p, b, _, k, v), (_, show) in zip(
                        ids, self.entries, meta, strict=True
                    )
                ]
                if sqlite
                else [(i, *entry, now) for i, entry in zip(ids, self.entries, strict=True)],
            )
        if rules is not None:
            await ledger.announce_tier_changes(session, changes, rules)
        entries = [
            {
                "member_id": external,
                "points": points,
                "reason": reason,
                "show_id": show[1],
                "balance": balance,
                "entry_id": _dashed(entry_id),
            }
            for entry_id, (_, reason, points, balance, _, _, _), (external, show) in zip(
                ids, self.entries, meta, strict=True
            )
        ]
        await webhooks.enqueue_many(
            session,
            "engagement.points_earned",
            [
                {"entries": entries[start : start + CHUNK]}
                for start in range(0, len(entries), CHUNK)
            ],
        )

    async def checkpoints(self, docs: dict[uuid.UUID, str], gone: set[uuid.UUID]) -> None:
        """Each show's held watching (replacing its last checkpoint), and no checkpoint for
        the shows of which nothing is held any more."""
        if docs:
            insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            statement = insert(CHECKPOINTS)
            statement = statement.on_conflict_do_update(
                index_elements=["show_id"],
                set_={"saved_at": statement.excluded.saved_at, "held": statement.excluded.held},
            )
            await self.session.execute(
                statement,
                [
                    {"show_id": show_id, "saved_at": self.now, "held": held}
                    for show_id, held in docs.items()
                ],
            )
        if gone:
            await self.session.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.show_id.in_(gone)))

    def credits(self) -> list[Credit]:
        externals = {m.int: e for e, m in self.members.items()}
        points = self.points
        out = []
        for show_id, earners in self.earned.items():
            for key, earned in earners.items():
                row = points[key]
                out.append(
                    Credit(
                        show_id,
                        externals[key],
                        earned,
                        row["balance"],
                        row["tier"],
                        list(row["badges"]),
                    )
                )
        return out
