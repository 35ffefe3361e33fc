"""Engagement accrual: what the live room saw each viewer do (watch, join, chat, ask, react,
share), counted in memory and written in batches, one transaction per flush, with the
points the show's rules give. A crash loses what was counted since the last flush; nothing
is credited twice: the per-show counters, the watched-until time and the ledger entries
that follow from them move in the same commit, and every entry's idempotency key is derived
from those counters."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite

from server.domain.loyalty import BADGES, EarningRules, EntryKind, Reason
from server.domain.shows import ShowState
from server.services import ledger, webhooks
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.engagement")

CHUNK = 500  # entries per engagement.points_earned webhook message


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

    def merge(self, other: Activity) -> None:
        self.intervals += other.intervals
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
        self.flushes = 0
        self.rows_written = 0

    # --- what the live room reports ---------------------------------------------------------

    def _activity(self, show_id: uuid.UUID, viewer: str, member: str | None) -> Activity:
        found = self.pending.get((show_id, viewer))
        now = utcnow().timestamp()
        if found is None:
            found = self.pending[(show_id, viewer)] = Activity(member, first_seen=now)
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
            self._activity(show_id, viewer, member).intervals.append((start, end))

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

    async def flush(self) -> list[Credit]:
        batch, self.pending = self.pending, {}
        audience = {uuid.UUID(show): n for show, n in self.audience().items() if n > 0}
        if not batch and not audience:
            return []
        try:
            credits = await self._write(batch, audience)
        except BaseException:
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
        now = utcnow()
        db = self._db()
        async with db.transaction() as session:
            writer = _Flush(session, now)
            await writer.minutes(audience, db.dialect)
            for show_id in sorted({show for show, _ in batch}):
                await writer.show(show_id, {v: a for (s, v), a in batch.items() if s == show_id})
            await writer.finish()
            self.rows_written += writer.rows
            return writer.credits()


class _Flush:
    """One flush's transaction."""

    def __init__(self, session: Any, now: datetime) -> None:
        self.session = session
        self.now = now
        self.rows = 0
        self.members: dict[str, models.Member] = {}
        self.points: dict[uuid.UUID, models.MemberPoints] = {}
        self.earned: dict[tuple[uuid.UUID, uuid.UUID], list[Earned]] = {}
        self.entries: list[tuple[str, models.LedgerEntry]] = []
        self.rules: EarningRules | None = None
        self.joined: set[uuid.UUID] = set()  # members with the current show's join bonus

    async def _members(self, externals: set[str]) -> None:
        missing = externals - set(self.members)
        if not missing:
            return
        for row in await self.session.scalars(
            select(models.Member).where(models.Member.external_id.in_(missing))
        ):
            self.members[row.external_id] = row
        for external in sorted(missing - set(self.members)):
            row = models.Member(external_id=external, display_name="")
            self.session.add(row)
            self.members[external] = row
        await self.session.flush()

    async def _points(self, member_id: uuid.UUID, rules: EarningRules) -> models.MemberPoints:
        row = self.points.get(member_id)
        if row is None:
            row = self.points[member_id] = await ledger.points_row(self.session, member_id, rules)
        return row

    async def _earn(
        self,
        show_id: uuid.UUID,
        member: models.Member,
        rules: EarningRules,
        version: int,
        reason: Reason,
        points: int,
        key: str,
    ) -> None:
        if points <= 0:
            return
        row = await self._points(member.id, rules)
        entry = await ledger.post(
            self.session,
            row,
            EntryKind.EARN,
            reason,
            points,
            key,
            show_id=show_id,
            rules_version=version,
            now=self.now,
        )
        self.entries.append((member.external_id, entry))
        self.earned.setdefault((show_id, member.id), []).append(Earned(reason, points))
        self.rows += 1

    async def show(self, show_id: uuid.UUID, viewers: dict[str, Activity]) -> None:
        session = self.session
        show = await session.get(models.Show, show_id)
        if show is None:
            return
        rules, version = await ledger.read_rules(session, show_id)
        self.rules = self.rules or rules
        live = show.state == ShowState.LIVE.value
        referrers = {a.referred_by for a in viewers.values() if a.referred_by}
        sharers: dict[str, str] = {}
        if referrers:
            for p in await session.scalars(
                select(models.ShowParticipant).where(
                    models.ShowParticipant.show_id == show_id,
                    models.ShowParticipant.author_id.in_(referrers),
                    models.ShowParticipant.role == "viewer",
                )
            ):
                sharers[p.author_id] = p.subject
        externals = {a.member for a in viewers.values() if a.member} | set(sharers.values())
        await self._members(externals)
        keys = set(viewers) | {f"viewer:{s}" for s in sharers.values()}
        attendance = {
            row.viewer: row
            for row in await session.scalars(
                select(models.ShowAttendance)
                .where(
                    models.ShowAttendance.show_id == show_id,
                    models.ShowAttendance.viewer.in_(keys),
                )
                .with_for_update()
            )
        }
        await self._preload(rules)
        self.joined = {
            m
            for m, _ in await ledger.existing_keys(
                session, {m.id for m in self.members.values()}, {f"join:{show_id}"}
            )
        }
        for viewer, activity in sorted(viewers.items()):
            row = attendance.get(viewer)
            if row is None:
                member = self.members.get(activity.member) if activity.member else None
                row = attendance[viewer] = models.ShowAttendance(
                    show_id=show_id,
                    viewer=viewer,
                    member_id=member.id if member else None,
                    watched_ms=0,
                    chats=0,
                    questions=0,
                    answered=0,
                    reactions=0,
                    referrals=0,
                    points=0,
                    first_seen=_at(activity.first_seen),
                    last_seen=_at(activity.last_seen),
                )
                session.add(row)
                self.rows += 1
            await self._apply(show, live, rules, version, row, activity)
            row.last_seen = max(row.last_seen, _at(activity.last_seen))
        # Referrals credit the sharer (their attendance row counts the referrals).
        for viewer, activity in sorted(viewers.items()):
            sharer = sharers.get(activity.referred_by or "")
            row = attendance[viewer]
            if (
                sharer is None
                or not live
                or activity.member == sharer
                or row.referred_by is not None
                or activity.member is None
            ):
                continue
            sharer_member = self.members[sharer]
            row.referred_by = sharer_member.id
            sharer_key = f"viewer:{sharer}"
            mine = attendance.get(sharer_key)
            if mine is None:
                continue  # a sharer is a participant, so they have attended; be safe anyway
            before = mine.referrals
            mine.referrals += 1
            if before < rules.referral_cap:
                await self._earn(
                    show_id,
                    sharer_member,
                    rules,
                    version,
                    Reason.REFERRAL,
                    rules.referral_points,
                    f"referral:{show_id}:{activity.member}",
                )
                mine.points += rules.referral_points

    async def _apply(
        self,
        show: models.Show,
        live: bool,
        rules: EarningRules,
        version: int,
        row: models.ShowAttendance,
        activity: Activity,
    ) -> None:
        show_id = show.id
        # Watching: only the time after what was already credited (two tabs never count twice).
        until = row.watched_until.timestamp() if row.watched_until else -math.inf
        seconds, new_until = credit_after(activity.intervals, until)
        before_ms = row.watched_ms
        if seconds > 0:
            row.watched_ms += int(seconds * 1000)
            row.watched_until = _at(new_until)
        chats_before, questions_before, reactions_before = row.chats, row.questions, row.reactions
        row.chats += activity.chats
        row.questions += activity.questions
        row.reactions += activity.reactions
        row.answered += len(activity.answered)
        member = self.members.get(activity.member) if activity.member else None
        if member is None or not live:
            return  # guests earn nothing; nothing is earned outside the live show

        async def earn(reason: Reason, points: int, key: str) -> None:
            await self._earn(show_id, member, rules, version, reason, points, key)
            row.points += max(points, 0)

        points_of = await self._points(member.id, rules)
        if member.id not in self.joined:  # the first time this member is seen in the live show
            self.joined.add(member.id)
            await earn(Reason.FIRST_JOIN, rules.first_join_points, f"join:{show_id}")
            points_of.shows_attended += 1
            self._badge(points_of, rules, "first_show", points_of.shows_attended == 1)
            self._badge(points_of, rules, "five_shows", points_of.shows_attended == 5)
        watch = rules.watch_points(before_ms / 1000, row.watched_ms / 1000)
        minutes = min(row.watched_ms // 60_000, rules.watch_cap_minutes)
        await earn(Reason.WATCH, watch, f"watch:{show_id}:{minutes}")
        chat_points = (
            min(row.chats, rules.chat_cap) - min(chats_before, rules.chat_cap)
        ) * rules.chat_points
        await earn(Reason.CHAT, chat_points, f"chat:{show_id}:{min(row.chats, rules.chat_cap)}")
        asked = min(row.questions, rules.question_cap) - min(questions_before, rules.question_cap)
        await earn(
            Reason.QUESTION,
            asked * rules.question_points,
            f"question:{show_id}:{min(row.questions, rules.question_cap)}",
        )
        if activity.questions:
            self._badge(points_of, rules, "first_question", True)
        for question_id in activity.answered:
            await earn(
                Reason.QUESTION_ANSWERED,
                rules.question_answered_points,
                f"answered:{question_id}",
            )
        taps_before = min(reactions_before // 10, rules.reaction_cap)
        taps_after = min(row.reactions // 10, rules.reaction_cap)
        await earn(
            Reason.REACTION,
            (taps_after - taps_before) * rules.reaction_points,
            f"reaction:{show_id}:{taps_after}",
        )
        # The streak: a show counts once watched long enough; consecutive shows add up.
        threshold = rules.streak_min_minutes * 60_000
        if before_ms < threshold <= row.watched_ms:
            await self._streak(show, member, points_of, rules, version, earn)

    async def _streak(
        self,
        show: models.Show,
        member: models.Member,
        points_of: models.MemberPoints,
        rules: EarningRules,
        version: int,
        earn: Callable[[Reason, int, str], Any],
    ) -> None:
        previous = await self.session.scalar(
            select(models.Show.id)
            .where(
                models.Show.id != show.id,
                models.Show.started_at.is_not(None),
                models.Show.started_at < (show.started_at or self.now),
                models.Show.state.in_((ShowState.LIVE.value, ShowState.ENDED.value)),
            )
            .order_by(models.Show.started_at.desc())
            .limit(1)
        )
        if points_of.streak_show_id == show.id:
            return
        streak = points_of.streak + 1 if previous and points_of.streak_show_id == previous else 1
        points_of.streak, points_of.streak_show_id = streak, show.id
        await earn(Reason.STREAK, rules.streak_points_for(streak), f"streak:{show.id}")
        self._badge(points_of, rules, "streak_3", streak >= 3)

    async def _preload(self, rules: EarningRules) -> None:
        """Lock the balance rows of this flush's members in one query (missing ones are
        created when first needed)."""
        wanted = {m.id for m in self.members.values()} - set(self.points)
        if wanted:
            for row in await self.session.scalars(
                select(models.MemberPoints)
                .where(models.MemberPoints.member_id.in_(wanted))
                .with_for_update()
            ):
                self.points[row.member_id] = row

    def _badge(
        self, row: models.MemberPoints, rules: EarningRules, badge: str, earned: bool
    ) -> None:
        assert badge in BADGES
        if rules.badges and earned and badge not in row.badges:
            row.badges = [*row.badges, badge]

    async def minutes(self, audience: dict[uuid.UUID, int], dialect: str) -> None:
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
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
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
        await self.session.flush()
        if self.rules is not None:
            await ledger.refresh_tiers(
                self.session, list(self.points.values()), self.rules, self.now
            )
        entries = [
            {
                "member_id": external,
                "points": entry.points,
                "reason": entry.reason,
                "show_id": str(entry.show_id) if entry.show_id else None,
                "balance": entry.balance_after,
                "entry_id": str(entry.id),
            }
            for external, entry in self.entries
        ]
        for start in range(0, len(entries), CHUNK):
            await webhooks.enqueue(
                self.session,
                "engagement.points_earned",
                {"entries": entries[start : start + CHUNK]},
            )

    def credits(self) -> list[Credit]:
        externals = {m.id: m.external_id for m in self.members.values()}
        out = []
        for (show_id, member_id), earned in self.earned.items():
            row = self.points[member_id]
            out.append(
                Credit(
                    show_id, externals[member_id], earned, row.balance, row.tier, list(row.badges)
                )
            )
        return out
