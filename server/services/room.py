"""The room as a whole: a joiner's snapshot, and what a node missed (for repair)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.engagement import WAITING
from server.domain.errors import NotFound
from server.domain.shows import ShowState
from server.services.chat import SNAPSHOT_MESSAGES, ChatRecord
from server.services.engagement import QuestionRecord
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
            result[show.id] = RoomProgress(
                event_seq,
                ShowState(show.state),
                [m for m in messages if m.id not in {d for d, _ in deleted}],
                [QuestionRecord.of(q) for q in changed],
                [(d, int(seq or 0)) for d, seq in deleted],
                settings,
            )
    return result


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    show: ShowRecord
    seq: int  # every room event up to this number is reflected here, none after it
    messages: list[ChatRecord]
    questions: list[QuestionRecord]  # waiting ones, in queue order
    reactions: dict[str, int]
    settings: RoomSettings


async def access_room_snapshot(db: Database, show_id: uuid.UUID) -> RoomSnapshot:
    """The room as of one consistent moment: the show row's event number and the messages
    are read in the same snapshot transaction."""
    async with db.snapshot() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
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
        return RoomSnapshot(
            ShowRecord.of(show),
            show.event_seq,
            messages,
            [QuestionRecord.of(q) for q in waiting],
            {kind: int(count) for kind, count in reactions},
            await _settings(session, show),
        )


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
