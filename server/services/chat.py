"""Chat use-cases: post a message into a show's room, page its history, build a join snapshot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from server.domain.chat import BannedWords, check_chat_text
from server.domain.errors import NotFound
from server.services.identity import Principal
from server.services.moderation import check_slow_mode, check_standing
from server.services.sequence import next_event_seq
from server.store import models
from server.store.db import Database

SNAPSHOT_MESSAGES = 50


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


async def do_post_chat(
    db: Database, show_id: uuid.UUID, author: Principal, text: str, banned: BannedWords
) -> ChatRecord:
    """Store a message and give it the show's next event number, in one transaction."""
    clean = banned.apply(check_chat_text(text))
    async with db.transaction() as session:
        await check_standing(session, show_id, author, talking=True)
        seq = await next_event_seq(session, show_id)
        show = await session.get(models.Show, show_id)
        assert show is not None
        await check_slow_mode(session, show, author)
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
    query = select(models.ChatMessage).where(
        models.ChatMessage.show_id == show_id, models.ChatMessage.deleted_at.is_(None)
    )
    if before_seq is not None:
        query = query.where(models.ChatMessage.seq < before_seq)
    async with db.read() as session:
        if await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        rows = await session.scalars(query.order_by(models.ChatMessage.seq.desc()).limit(limit))
        return [ChatRecord.of(r) for r in reversed(list(rows))]
