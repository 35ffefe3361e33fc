"""Engagement accrual: what the live room saw each viewer do (watch, join, chat, ask, react,
share), counted in memory and written in batches, one transaction per flush, with the
points the show's rules give. A crash loses what was counted since the last flush; nothing
is credited twice: the per-show counters, the watched-until time and the ledger entries
that follow from them move in the same commit, and every entry's idempotency key is derived
from those counters."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import String, Table, Uuid, any_, bindparam, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from server.domain.loyalty import BADGES, MAX_POINTS, EarningRules, EntryKind, Reason
from server.domain.shows import ShowState
from server.services import ledger, webhooks
from server.store import models
from server.store.db import Database

log = logging.getLogger("showroom.engagement")

CHUNK = 500  # entries per engagement.points_earned webhook message
# The periodic write holds watching that has not completed a minute for up to this long: it
# earns nothing yet, and writing it every few seconds for every viewer is most of the cost.
HOLD_SECONDS = 60.0
KNOWN_MAX = 200_000  # viewers whose watched total the hint remembers


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True)
class Activity:
    """One viewer's doings in one show since the last flush."""

    member: str | None  # the brand's member id; guests earn nothing but count in analytics
    intervals: list[tuple[float, float]] = field(default_factory=list)  # watched, wall clock
    joined: bool = False
    chats: int = 0
    questions: int = 0
    reactions: int = 0
    answered: list[str] = field(default_factory=list)  # the member's questions answered
    referred_by: str | None = None  # the author id in the share link that brought them
    first_seen: float = 0.0
    last_seen: float = 0.0
    watched_s: float = 0.0  # the intervals' lengths, summed (overlaps counted twice)
    # Watched seconds at which, as far as this process knows, the viewer completes a minute.
    due_s: float = 0.0

    def merge(self, other: Activity) -> None:
        self.intervals += other.intervals
        self.watched_s += other.watched_s
        self.due_s = min(self.due_s, other.due_s)
        self.joined |= other.joined
        self.chats += other.chats
        self.questions += other.questions
        self.reactions += other.reactions
        self.answered += other.answered
        self.referred_by = self.referred_by or other.referred_by
        self.first_seen = min(self.first_seen, other.first_seen)
        self.last_seen = max(self.last_seen, other.last_seen)


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


class Accrual:
    def __init__(self, db: Callable[[], Database]) -> None:
        self._db = db
        self.pending: dict[tuple[uuid.UUID, str], Activity] = {}
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
        # for when the next minute completes (the database row stays the truth).
        self.known_ms: dict[tuple[uuid.UUID, str], int] = {}
        # Across flushes, so each is looked up once: member ids by the brand's id, and the
        # (show, member) pairs whose join bonus is in the ledger. Cleared if a write fails.
        self.member_ids: dict[str, uuid.UUID] = {}
        self.join_paid: set[tuple[uuid.UUID, uuid.UUID]] = set()
        self.clock: Callable[[], float] = time.time
        self.flushes = 0
        self.rows_written = 0

    # --- what the live room reports ---------------------------------------------------------

    def _activity(self, show_id: uuid.UUID, viewer: str, member: str | None) -> Activity:
        key = (show_id, viewer)
        found = self.pending.get(key)
        now = self.clock()
        if found is None:
            known = self.known_ms.get(key)
            due = 0.0 if known is None else (60_000 - known % 60_000) / 1000
            found = self.pending[key] = Activity(member, first_seen=now, due_s=due)
        found.last_seen = now
        return found

    def joined(
        self, show_id: uuid.UUID, viewer: str, member: str | None, referred_by: str | None
    ) -> None:
        activity = self._activity(show_id, viewer, member)
        activity.joined = True
        activity.referred_by = activity.referred_by or referred_by

    def watched(
        self, show_id: uuid.UUID, viewer: str, member: str | None, start: float, end: float
    ) -> None:
        if end > start:
            activity = self._activity(show_id, viewer, member)
            activity.intervals.append((start, end))
            activity.watched_s += end - start

    def chatted(self, show_id: uuid.UUID, viewer: str, member: str | None) -> None:
        self._activity(show_id, viewer, member).chats += 1

    def asked(self, show_id: uuid.UUID, viewer: str, member: str | None) -> None:
        self._activity(show_id, viewer, member).questions += 1

    def reacted(self, show_id: uuid.UUID, viewer: str, member: str | None, count: int) -> None:
        self._activity(show_id, viewer, member).reactions += count

    def answered(
        self, show_id: uuid.UUID, viewer: str, member: str | None, question_id: str
    ) -> None:
        self._activity(show_id, viewer, member).answered.append(question_id)

    # --- writing ----------------------------------------------------------------------------

    @staticmethod
    def _due(activity: Activity, now: float) -> bool:
        """Whether a pending activity is written in this flush. Anything but watching is; so
        is watching that completes a minute (as far as this process knows) or that has been
        held HOLD_SECONDS. Progress within a minute earns nothing, so it can wait."""
        if (
            activity.joined
            or activity.chats
            or activity.questions
            or activity.reactions
            or activity.answered
            or activity.referred_by
            or now - activity.first_seen >= HOLD_SECONDS
        ):
            return True
        return activity.watched_s >= activity.due_s

    async def flush(self, *, hold: bool = False) -> list[Credit]:
        """Write what is pending in one transaction. With `hold` (the periodic write),
        watching that has not yet completed a minute stays in memory for up to
        HOLD_SECONDS; without it (show end, shutdown, tests) everything is written."""
        if self.before_flush is not None:
            self.before_flush()
        batch, self.pending = self.pending, {}
        if hold:
            now, due = self.clock(), self._due
            for key in [k for k, a in batch.items() if not due(a, now)]:
                self.pending[key] = batch.pop(key)
        audience = {uuid.UUID(show): n for show, n in self.audience().items() if n > 0}
        if not batch and not audience:
            return []
        try:
            credits = await self._write(batch, audience)
        except BaseException:
            self.member_ids.clear()
            self.join_paid.clear()
            # Put it back (merged with what arrived meanwhile): the next flush writes it.
            for key, activity in batch.items():
                later = self.pending.get(key)
                if later is not None:
                    activity.merge(later)
                self.pending[key] = activity
            raise
        self.flushes += 1
        if credits and self.on_credit is not None:
            self.on_credit(credits)
        return credits

    async def _write(
        self, batch: dict[tuple[uuid.UUID, str], Activity], audience: dict[uuid.UUID, int]
    ) -> list[Credit]:
        db = self._db()
        async with db.transaction() as session:
            writer = _Flush(session, _at(self.clock()), db.dialect, self)
            await writer.minutes(audience)
            by_show: dict[uuid.UUID, dict[str, Activity]] = {}
            for (show_id, viewer), activity in batch.items():
                by_show.setdefault(show_id, {})[viewer] = activity
            for show_id in sorted(by_show):
                await writer.show(show_id, by_show[show_id])
            await writer.finish()
        self.rows_written += writer.rows
        if len(self.known_ms) > KNOWN_MAX:
            self.known_ms.clear()
        self.known_ms.update(writer.watched_ms)
        if len(self.member_ids) > KNOWN_MAX:
            self.member_ids.clear()
            self.join_paid.clear()
        self.member_ids.update(writer.members)
        self.join_paid |= writer.join_paid
        return writer.credits()


ATTENDANCE = cast(Table, models.ShowAttendance.__table__)
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
POINTS_MOVED = ("balance", "tier", "rolling_points", "updated_at")  # when only points moved


Row = dict[str, Any]


def _dicts(result: Any) -> list[Row]:
    columns = list(result.keys())
    return [dict(zip(columns, values, strict=True)) for values in result]


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


# The flush's three big statements (every watched minute is an entry, a balance update and
# an attendance update) go to the driver as SQL text with their rows already in the form it
# takes, as executemany: SQLAlchemy's per-row parameter processing was a fifth of a flush.
# One uuid4 per entry; what every engagement entry shares is written as constants.
Entry = tuple[uuid.UUID, uuid.UUID, str, int, int, uuid.UUID, str, int]
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


def _one_of(column: Any, values: Iterable[Any], dialect: str) -> Any:
    """`column IN values` with the values as one parameter: a JSON array on SQLite, an
    array on PostgreSQL. An expanding IN names and processes every value when the statement
    is compiled, which for the flush's thousands of viewers cost more than the query."""
    if dialect == "postgresql":
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    uuids = isinstance(column.type, Uuid)
    array = json.dumps([v.hex for v in values] if uuids else list(values))
    each = func.json_each(bindparam(None, array, type_=String)).table_valued("value")
    return column.in_(select(each.c.value))


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
        self.members: dict[str, uuid.UUID] = {}  # external id -> member id
        self.points: dict[uuid.UUID, Row] = {}
        self.new_points: set[uuid.UUID] = set()
        self.touched_points: set[uuid.UUID] = set()
        self.earned: dict[tuple[uuid.UUID, uuid.UUID], list[Earned]] = {}
        self.entries: list[Entry] = []
        self.rules: EarningRules | None = None
        self.joined: set[uuid.UUID] = set()  # members with the current show's join bonus
        self.join_paid: set[tuple[uuid.UUID, uuid.UUID]] = set()  # for the accrual's cache
        self.full_points: set[uuid.UUID] = set()  # balance rows whose every column is written
        self.new_attendance: list[Row] = []
        self.changed_attendance: list[Row] = []
        self.watched_ms: dict[tuple[uuid.UUID, str], int] = {}  # for the next flush's hint

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

    async def _preload(self, member_ids: set[uuid.UUID]) -> None:
        """Lock the balance rows of this flush's members in one query (missing ones are
        created when first needed)."""
        wanted = member_ids - set(self.points)
        if wanted:
            for row in _dicts(
                await self.session.execute(
                    select(POINTS)
                    .where(_one_of(POINTS.c.member_id, wanted, self.dialect))
                    .with_for_update()
                )
            ):
                self.points[row["member_id"]] = row

    def _points(self, member_id: uuid.UUID, rules: EarningRules) -> Row:
        row = self.points.get(member_id)
        if row is None:
            row = self.points[member_id] = {
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
            self.new_points.add(member_id)
        return row

    def _earn(
        self,
        show_id: uuid.UUID,
        member_id: uuid.UUID,
        rules: EarningRules,
        version: int,
        reason: Reason,
        points: int,
        key: str,
    ) -> int:
        if points <= 0:
            return 0
        points = min(points, MAX_POINTS)
        row = self._points(member_id, rules)
        self.touched_points.add(member_id)
        row["balance"] += points
        row["rolling_points"] += points
        row["updated_at"] = self.now
        # In ENTRY_COLUMNS order; the kind, order, request hash and note are the same for all.
        self.entries.append(
            (
                uuid.uuid4(),
                member_id,
                reason.value,
                points,
                row["balance"],
                show_id,
                key[: ledger.KEY_MAX],
                version,
            )
        )
        self.earned.setdefault((show_id, member_id), []).append(Earned(reason, points))
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
        attendance: dict[str, Row] = {
            row["viewer"]: row
            for row in _dicts(
                await session.execute(
                    select(*(ATTENDANCE.c[c] for c in ("viewer", *ATTENDANCE_READ)))
                    .where(
                        ATTENDANCE.c.show_id == show_id,
                        _one_of(ATTENDANCE.c.viewer, keys, self.dialect),
                    )
                    .with_for_update()
                )
            )
        }
        known = set(attendance)
        if live:
            await self._preload({self.members[e] for e in externals})
        paid = self.accrual.join_paid
        ids = {self.members[e] for e in externals}
        self.joined = {m for m in ids if (show_id, m) in paid}
        self.joined |= {
            m
            for m, _ in await ledger.existing_keys(session, ids - self.joined, {f"join:{show_id}"})
        }
        previous_show: list[uuid.UUID | None] = []  # the show before this one, looked up once
        for viewer, activity in sorted(viewers.items()):
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
                    "last_seen": _at(activity.last_seen),
                }
            await self._apply(
                show_id, show.started_at, live, rules, version, row, activity, previous_show
            )
            row["last_seen"] = _at(activity.last_seen)
        # Referrals credit the sharer (their attendance row counts the referrals).
        for viewer, activity in sorted(viewers.items()):
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
                    rules,
                    version,
                    Reason.REFERRAL,
                    rules.referral_points,
                    f"referral:{show_id}:{activity.member}",
                )
        self.join_paid |= {(show_id, m) for m in self.joined}
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
        for viewer, row in attendance.items():
            if viewer not in touched:
                continue
            row["show_id"] = show_id
            (self.changed_attendance if viewer in known else self.new_attendance).append(row)
            self.watched_ms[(show_id, viewer)] = row["watched_ms"]

    async def _apply(
        self,
        show_id: uuid.UUID,
        started_at: datetime | None,
        live: bool,
        rules: EarningRules,
        version: int,
        row: Row,
        activity: Activity,
        previous_show: list[uuid.UUID | None],
    ) -> None:
        # Watching: only the time after what was already credited (two tabs never count twice).
        until = row["watched_until"].timestamp() if row["watched_until"] else -math.inf
        seconds, new_until = credit_after(activity.intervals, until)
        before_ms = row["watched_ms"]
        if seconds > 0:
            row["watched_ms"] += int(seconds * 1000)
            row["watched_until"] = _at(new_until)
        chats_before, questions_before = row["chats"], row["questions"]
        reactions_before = row["reactions"]
        row["chats"] += activity.chats
        row["questions"] += activity.questions
        row["reactions"] += activity.reactions
        row["answered"] += len(activity.answered)
        member_id = self.members.get(activity.member) if activity.member else None
        if member_id is None or not live:
            return  # guests earn nothing; nothing is earned outside the live show

        def earn(reason: Reason, points: int, key: str, n: object = "") -> None:
            # The idempotency key is "<key>:<show id>[:<n>]", made only when points are due.
            if points > 0:
                full = f"{key}:{show_key}:{n}" if n != "" else f"{key}:{show_key}"
                row["points"] += self._earn(
                    show_id, member_id, rules, version, reason, points, full
                )

        show_key = str(show_id)
        points_of = self._points(member_id, rules)
        if member_id not in self.joined:  # the first time this member is seen in the live show
            self.joined.add(member_id)
            earn(Reason.FIRST_JOIN, rules.first_join_points, "join")
            points_of["shows_attended"] += 1
            self.touched_points.add(member_id)
            self.full_points.add(member_id)
            self._badge(points_of, rules, "first_show", points_of["shows_attended"] == 1)
            self._badge(points_of, rules, "five_shows", points_of["shows_attended"] == 5)
        watched_ms = row["watched_ms"]
        if watched_ms != before_ms:
            minutes = min(watched_ms // 60_000, rules.watch_cap_minutes)
            earn(
                Reason.WATCH,
                rules.watch_points(before_ms / 1000, watched_ms / 1000),
                "watch",
                minutes,
            )
        if activity.chats:
            chats = min(row["chats"], rules.chat_cap)
            earn(
                Reason.CHAT,
                (chats - min(chats_before, rules.chat_cap)) * rules.chat_points,
                "chat",
                chats,
            )
        if activity.questions:
            questions = min(row["questions"], rules.question_cap)
            earn(
                Reason.QUESTION,
                (questions - min(questions_before, rules.question_cap)) * rules.question_points,
                "question",
                questions,
            )
            self._badge(points_of, rules, "first_question", True)
        for question_id in activity.answered:
            if rules.question_answered_points > 0:
                row["points"] += self._earn(
                    show_id,
                    member_id,
                    rules,
                    version,
                    Reason.QUESTION_ANSWERED,
                    rules.question_answered_points,
                    f"answered:{question_id}",
                )
        if activity.reactions:
            taps_before = min(reactions_before // 10, rules.reaction_cap)
            taps_after = min(row["reactions"] // 10, rules.reaction_cap)
            earn(
                Reason.REACTION,
                (taps_after - taps_before) * rules.reaction_points,
                "reaction",
                taps_after,
            )
        # The streak: a show counts once watched long enough; consecutive shows add up.
        threshold = rules.streak_min_minutes * 60_000
        if before_ms < threshold <= watched_ms and points_of["streak_show_id"] != show_id:
            if not previous_show:
                previous_show.append(await self._previous_show(show_id, started_at))
            previous = previous_show[0]
            streak = (
                points_of["streak"] + 1
                if previous and points_of["streak_show_id"] == previous
                else 1
            )
            points_of["streak"], points_of["streak_show_id"] = streak, show_id
            self.touched_points.add(member_id)
            self.full_points.add(member_id)
            earn(Reason.STREAK, rules.streak_points_for(streak), "streak")
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
            self.touched_points.add(row["member_id"])
            self.full_points.add(row["member_id"])

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
        statement = insert(models.ShowMinute).values(rows)
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
        await self.session.execute(statement)
        self.rows += len(rows)

    async def finish(self) -> None:
        session = self.session
        if self.new_attendance:
            await session.execute(insert(ATTENDANCE), self.new_attendance)
            self.rows += len(self.new_attendance)
        connection = await session.connection()
        sqlite = self.dialect == "sqlite"
        now = _sqlite_time(self.now) if sqlite else self.now
        if self.changed_attendance:
            await connection.exec_driver_sql(
                _driver_update(self.dialect, ATTENDANCE, ("show_id", "viewer"), ATTENDANCE_VALUES),
                [
                    (
                        row["watched_ms"],
                        _sqlite_time(row["watched_until"])
                        if sqlite and row["watched_until"] is not None
                        else row["watched_until"],
                        row["chats"],
                        row["questions"],
                        row["answered"],
                        row["reactions"],
                        row["referrals"],
                        row["referred_by"].hex
                        if sqlite and row["referred_by"] is not None
                        else row["referred_by"],
                        row["points"],
                        _sqlite_time(row["last_seen"]) if sqlite else row["last_seen"],
                        row["show_id"].hex if sqlite else row["show_id"],
                        row["viewer"],
                    )
                    for row in self.changed_attendance
                ],
            )
        # Tiers move with what was earned (the hourly job takes off what leaves the window).
        changes = []
        rules = self.rules
        for member_id in self.touched_points:
            row = self.points[member_id]
            tier = rules.tier_for(row["rolling_points"]) if rules else row["tier"]
            if tier != row["tier"]:
                changes.append((member_id, row["tier"], tier, row["rolling_points"]))
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
                        now if row["updated_at"] is self.now else _sqlite_time(row["updated_at"]),
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
        if self.entries:
            await connection.exec_driver_sql(
                _driver_insert(self.dialect, ENTRIES, ENTRY_COLUMNS),
                [
                    (i.hex, m.hex, r, p, b, s.hex, k, v, now)
                    for i, m, r, p, b, s, k, v in self.entries
                ]
                if sqlite
                else [(*entry, now) for entry in self.entries],
            )
        if rules is not None:
            await ledger.announce_tier_changes(session, changes, rules)
        externals = {m: e for e, m in self.members.items()}
        entries = [
            {
                "member_id": externals[member_id],
                "points": points,
                "reason": reason,
                "show_id": str(show_id),
                "balance": balance,
                "entry_id": str(entry_id),
            }
            for entry_id, member_id, reason, points, balance, show_id, _, _ in self.entries
        ]
        for start in range(0, len(entries), CHUNK):
            await webhooks.enqueue(
                session,
                "engagement.points_earned",
                {"entries": entries[start : start + CHUNK]},
            )

    def credits(self) -> list[Credit]:
        externals = {m: e for e, m in self.members.items()}
        out = []
        for (show_id, member_id), earned in self.earned.items():
            row = self.points[member_id]
            out.append(
                Credit(
                    show_id,
                    externals[member_id],
                    earned,
                    row["balance"],
                    row["tier"],
                    list(row["badges"]),
                )
            )
        return out
