"""The room as a whole: a joiner's snapshot, and what a node missed (for repair)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.engagement import WAITING
from server.domain.errors import NotFound
from server.domain.shows import ShowState
from server.services import engagement, moderation
from server.services.chat import SNAPSHOT_MESSAGES, ChatRecord
from server.services.engagement import QuestionRecord
from server.services.identity import Principal
from server.services.pins import Pins, read_pins
from server.services.shows import ShowRecord
from server.store import models
from server.store.db import Database


@dataclass(frozen=True, slots=True)
class RoomSettings:
    seq: int  # the event number of the settings' last change
    pinned: ChatRecord | None
    slow_mode_seconds: int


@dataclass(frozen=True, slots=True)
class RoomProgress:
    event_seq: int  # every event up to here is below, or was before `after`
    state: ShowState
    messages: list[ChatRecord]
    questions: list[QuestionRecord]
    deleted: list[tuple[uuid.UUID, int]]  # (message id, deletion's event number)
    settings: RoomSettings | None  # when they changed after `after`
    pins: Pins | None = None  # when they changed after `after`


async def _settings(session: AsyncSession, show: models.Show) -> RoomSettings:
    pinned = None
    if show.pinned_message_id is not None:
        row = await session.get(models.ChatMessage, show.pinned_message_id)
        pinned = ChatRecord.of(row) if row is not None and row.deleted_at is None else None
    return RoomSettings(show.room_seq, pinned, show.slow_mode_seconds)


REPAIR_BATCH = 1000


async def access_room_progress(
    db: Database, after: dict[uuid.UUID, int]
) -> dict[uuid.UUID, RoomProgress]:
    """For each show, its event number and state, and every room change numbered after
    `after[show]`: what a node missed while its pub/sub was away."""
    result: dict[uuid.UUID, RoomProgress] = {}
    async with db.snapshot() as session:
        shows = await session.scalars(select(models.Show).where(models.Show.id.in_(after)))
        for show in shows:
            since, event_seq = after[show.id], show.event_seq
            if event_seq <= since:
                result[show.id] = RoomProgress(event_seq, ShowState(show.state), [], [], [], None)
                continue
            window = (since, event_seq)
            found = await session.scalars(
                select(models.ChatMessage)
                .where(
                    models.ChatMessage.show_id == show.id,
                    models.ChatMessage.seq.between(since + 1, event_seq),
                )
                .order_by(models.ChatMessage.seq)
                .limit(REPAIR_BATCH)
            )
            messages = [ChatRecord.of(r) for r in found]
            if len(messages) == REPAIR_BATCH:
                event_seq = messages[-1].seq  # the rest comes in the next pass
                window = (since, event_seq)
            changed = await session.scalars(
                select(models.Question).where(
                    models.Question.show_id == show.id,
                    models.Question.seq.between(window[0] + 1, window[1]),
                )
            )
            deleted = (
                await session.execute(
                    select(models.ChatMessage.id, models.ChatMessage.deleted_seq).where(
                        models.ChatMessage.show_id == show.id,
                        models.ChatMessage.deleted_seq.between(window[0] + 1, window[1]),
                    )
                )
            ).all()
            settings = (
                await _settings(session, show) if window[0] < show.room_seq <= window[1] else None
            )
            pins = (
                await read_pins(session, show) if window[0] < show.pins_seq <= window[1] else None
            )
            result[show.id] = RoomProgress(
                event_seq,
                ShowState(show.state),
                [m for m in messages if m.id not in {d for d, _ in deleted}],
                [QuestionRecord.of(q) for q in changed],
                [(d, int(seq or 0)) for d, seq in deleted],
                settings,
                pins,
            )
    return result


@dataclass(frozen=True, slots=True)
class Joiner:
    """Who is joining, as the room's snapshot is read for them."""

    principal: Principal
    author_id: str


@dataclass(frozen=True, slots=True)
class Standing:
    """The joiner's own part of the snapshot, read in the same transaction."""

    my_votes: set[uuid.UUID]
    moderator: bool
    registered: bool  # already a participant of this show (from an earlier join)


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    show: ShowRecord
    seq: int  # every room event up to this number is reflected here, none after it
    messages: list[ChatRecord]
    questions: list[QuestionRecord]  # waiting ones, in queue order
    reactions: dict[str, int]
    settings: RoomSettings
    pins: Pins
    standing: Standing | None = None  # when read for a joiner


async def access_room_snapshots(
    db: Database, show_id: uuid.UUID, joiners: list[Joiner]
) -> list[RoomSnapshot | Exception]:
    """One snapshot read for many joiners of a show (see server/services/batching.py): the
    room once, and each joiner's standing (votes, moderator, registered) with a few queries
    for all of them. A banned joiner gets their refusal; the others their snapshot."""
    async with db.snapshot() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            return [NotFound(f"no show {show_id}")] * len(joiners)
        rows = await session.scalars(
            select(models.ChatMessage)
            .where(
                models.ChatMessage.show_id == show_id,
                models.ChatMessage.seq <= show.event_seq,
                models.ChatMessage.deleted_at.is_(None),
            )
            .order_by(models.ChatMessage.seq.desc())
            .limit(SNAPSHOT_MESSAGES)
        )
        messages = [ChatRecord.of(r) for r in reversed(list(rows))]
        waiting = await session.scalars(
            select(models.Question)
            .where(
                models.Question.show_id == show_id,
                models.Question.state.in_([s.value for s in WAITING]),
            )
            .order_by(models.Question.votes.desc(), models.Question.created_at, models.Question.id)
        )
        reactions = await session.execute(
            select(models.ShowReaction.kind, models.ShowReaction.count).where(
                models.ShowReaction.show_id == show_id
            )
        )
        room = RoomSnapshot(
            ShowRecord.of(show),
            show.event_seq,
            messages,
            [QuestionRecord.of(q) for q in waiting],
            {kind: int(count) for kind, count in reactions},
            await _settings(session, show),
            await read_pins(session, show),
        )
        standings = await _standings(session, show_id, joiners)
    return [s if isinstance(s, Exception) else replace(room, standing=s) for s in standings]


async def _standings(
    session: AsyncSession, show_id: uuid.UUID, joiners: list[Joiner]
) -> list[Standing | Exception]:
    subjects = {j.principal.subject for j in joiners}
    sanctions = await moderation.sanctions_of(session, show_id, [j.principal for j in joiners])
    moderators = {
        (role, subject)
        for role, subject in await session.execute(
            select(models.ShowModerator.role, models.ShowModerator.subject).where(
                models.ShowModerator.show_id == show_id,
                models.ShowModerator.subject.in_(subjects),
            )
        )
    }
    votes: dict[str, set[uuid.UUID]] = {}
    for voter, question_id in await session.execute(
        select(models.QuestionVote.voter, models.QuestionVote.question_id)
        .join(models.Question, models.Question.id == models.QuestionVote.question_id)
        .where(
            models.Question.show_id == show_id,
            models.QuestionVote.voter.in_({engagement.voter_key(j.principal) for j in joiners}),
        )
    ):
        votes.setdefault(voter, set()).add(question_id)
    registered = set(
        await session.scalars(
            select(models.ShowParticipant.author_id).where(
                models.ShowParticipant.show_id == show_id,
                models.ShowParticipant.author_id.in_({j.author_id for j in joiners}),
            )
        )
    )
    result: list[Standing | Exception] = []
    for joiner in joiners:
        principal = joiner.principal
        key = (principal.role.value, principal.subject)
        refusal = moderation.standing_refusal(sanctions, principal, talking=False)
        if refusal is not None:
            result.append(refusal)
            continue
        result.append(
            Standing(
                votes.get(engagement.voter_key(principal), set()),
                principal.may_host(show_id) or key in moderators,
                joiner.author_id in registered,
            )
        )
    return result


async def access_room_settings(db: Database, show_id: uuid.UUID) -> RoomSettings:
    async with db.read() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        return await _settings(session, show)


async def record_peak_viewers(db: Database, peaks: dict[str, int]) -> None:
    """Raise each show's stored peak to the given count where it is higher. Several server
    processes may report the same show: the higher count wins, whatever the order."""
    async with db.transaction() as session:
        for show_id, viewers in peaks.items():
            await session.execute(
                update(models.Show)
                .where(models.Show.id == uuid.UUID(show_id), models.Show.peak_viewers < viewers)
                .values(peak_viewers=viewers)
            )
