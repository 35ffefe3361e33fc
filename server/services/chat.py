"""Chat use-cases: post a message into a show's room, page its history, build a join snapshot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.chat import BannedWords, check_chat_text
from server.domain.errors import Conflict, NotFound
from server.domain.shows import ShowState
from server.services.identity import Principal
from server.store import models
from server.store.db import Database

SNAPSHOT_MESSAGES = 50
# Chat is open before the show (the waiting room) and during it.
_OPEN = (ShowState.SCHEDULED.value, ShowState.LIVE.value)


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: uuid.UUID
    show_id: uuid.UUID
    seq: int
    author_role: str
    author_id: str
    author_name: str
    text: str
    created_at: datetime

    @classmethod
    def of(cls, row: models.ChatMessage) -> ChatRecord:
        return cls(
            row.id,
            row.show_id,
            row.seq,
            row.author_role,
            row.author_id,
            row.author_name,
            row.text,
            row.created_at,
        )


def author_name(principal: Principal) -> str:
    if principal.name:
        return principal.name
    return {"guest": "Guest", "host": "Host", "admin": "Staff"}.get(principal.role.value, "Member")


async def next_event_seq(session: AsyncSession, show_id: uuid.UUID) -> int:
    """Number the show's next room event. The row lock this takes orders the show's events:
    seq order is commit order. Only an open room (scheduled or live) takes events."""
    seq = await session.scalar(
        update(models.Show)
        .where(models.Show.id == show_id, models.Show.state.in_(_OPEN))
        .values(event_seq=models.Show.event_seq + 1)
        .returning(models.Show.event_seq)
    )
    if seq is None:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        raise Conflict(f"the room is closed: the show is {show.state}")
    return int(seq)


async def do_post_chat(
    db: Database, show_id: uuid.UUID, author: Principal, text: str, banned: BannedWords
) -> ChatRecord:
    """Store a message and give it the show's next event number, in one transaction."""
    clean = banned.apply(check_chat_text(text))
    async with db.transaction() as session:
        seq = await next_event_seq(session, show_id)
        row = models.ChatMessage(
            show_id=show_id,
            seq=seq,
            author_role=author.role.value,
            author_id=author.subject,
            author_name=author_name(author),
            text=clean,
        )
        session.add(row)
        await session.flush()
        return ChatRecord.of(row)


async def list_chat(
    db: Database, show_id: uuid.UUID, *, before_seq: int | None, limit: int
) -> list[ChatRecord]:
    """Up to `limit` messages older than `before_seq` (newest page when None), oldest first."""
    query = select(models.ChatMessage).where(models.ChatMessage.show_id == show_id)
    if before_seq is not None:
        query = query.where(models.ChatMessage.seq < before_seq)
    async with db.read() as session:
        if await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        rows = await session.scalars(query.order_by(models.ChatMessage.seq.desc()).limit(limit))
        return [ChatRecord.of(r) for r in reversed(list(rows))]
