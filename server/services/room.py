"""The room as a whole: a joiner's snapshot, and what a node missed (for repair)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select

from server.domain.engagement import WAITING
from server.domain.errors import NotFound
from server.domain.shows import ShowState
from server.services.chat import SNAPSHOT_MESSAGES, ChatRecord
from server.services.engagement import QuestionRecord
from server.services.shows import ShowRecord
from server.store import models
from server.store.db import Database


@dataclass(frozen=True, slots=True)
class RoomProgress:
    event_seq: int  # every event up to here is in `messages`/`questions` or was before `after`
    state: ShowState
    messages: list[ChatRecord]
    questions: list[QuestionRecord]


REPAIR_BATCH = 1000


async def access_room_progress(
    db: Database, after: dict[uuid.UUID, int]
) -> dict[uuid.UUID, RoomProgress]:
    """For each show, its event number and state, and the messages numbered after
    `after[show]`: what a node missed while its pub/sub was away."""
    result: dict[uuid.UUID, RoomProgress] = {}
    async with db.snapshot() as session:
        rows = (
            await session.execute(
                select(models.Show.id, models.Show.event_seq, models.Show.state).where(
                    models.Show.id.in_(after)
                )
            )
        ).all()
        for show_id, event_seq, state in rows:
            messages: list[ChatRecord] = []
            if event_seq > after[show_id]:
                found = await session.scalars(
                    select(models.ChatMessage)
                    .where(
                        models.ChatMessage.show_id == show_id,
                        models.ChatMessage.seq > after[show_id],
                        models.ChatMessage.seq <= event_seq,
                    )
                    .order_by(models.ChatMessage.seq)
                    .limit(REPAIR_BATCH)
                )
                messages = [ChatRecord.of(r) for r in found]
                if len(messages) == REPAIR_BATCH:
                    event_seq = messages[-1].seq  # the rest comes in the next pass
                changed = await session.scalars(
                    select(models.Question).where(
                        models.Question.show_id == show_id,
                        models.Question.seq > after[show_id],
                        models.Question.seq <= event_seq,
                    )
                )
                questions = [QuestionRecord.of(q) for q in changed]
            else:
                questions = []
            result[show_id] = RoomProgress(event_seq, ShowState(state), messages, questions)
    return result


@dataclass(frozen=True, slots=True)
class RoomSnapshot:
    show: ShowRecord
    seq: int  # every room event up to this number is reflected here, none after it
    messages: list[ChatRecord]
    questions: list[QuestionRecord]  # waiting ones, in queue order
    reactions: dict[str, int]


async def access_room_snapshot(db: Database, show_id: uuid.UUID) -> RoomSnapshot:
    """The room as of one consistent moment: the show row's event number and the messages
    are read in the same snapshot transaction."""
    async with db.snapshot() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        rows = await session.scalars(
            select(models.ChatMessage)
            .where(models.ChatMessage.show_id == show_id, models.ChatMessage.seq <= show.event_seq)
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
        )
