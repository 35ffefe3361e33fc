"""Chat use-cases: post a message into a show's room, page its history, build a join snapshot."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from server.domain.chat import BannedWords, check_chat_text
from server.domain.errors import DomainError, NotFound
from server.services.identity import Principal
from server.services.moderation import check_slow_mode, sanctions_of, standing_refusal
from server.services.sequence import next_event_seq
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

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
    result = (await do_post_chats(db, show_id, [(author, text)], banned))[0]
    if isinstance(result, Exception):
        raise result
    return result


async def do_post_chats(
    db: Database, show_id: uuid.UUID, posts: list[tuple[Principal, str]], banned: BannedWords
) -> list[ChatRecord | Exception]:
    """Store many messages to one show in one transaction (see server/services/batching.py),
    numbered in the order given. Each post is checked on its own: a refused one (muted,
    slow mode, bad text) gets its error and stores nothing; the others are stored."""
    results: list[ChatRecord | Exception | None] = [None] * len(posts)
    cleaned: list[tuple[int, Principal, str]] = []
    for i, (author, text) in enumerate(posts):
        try:
            cleaned.append((i, author, banned.apply(check_chat_text(text))))
        except DomainError as exc:
            results[i] = exc
    if cleaned:
        async with db.transaction() as session:
            show = await session.get(models.Show, show_id)
            if show is None:
                return [NotFound(f"no show {show_id}")] * len(posts)
            accepted: list[tuple[int, Principal, str]] = []
            talked: dict[tuple[str, str], datetime] = {}  # authors accepted earlier in this batch
            sanctions = await sanctions_of(session, show_id, [a for _, a, _ in cleaned])
            for i, author, clean in cleaned:
                try:
                    refusal = standing_refusal(sanctions, author, talking=True)
                    if refusal is not None:
                        raise refusal
                    who = (author.role.value, author.subject)
                    await check_slow_mode(session, show, author, talked.get(who))
                    talked[who] = utcnow()
                    accepted.append((i, author, clean))
                except DomainError as exc:
                    results[i] = exc
            if accepted:
                last = await next_event_seq(session, show_id, len(accepted))
                rows = [
                    models.ChatMessage(
                        show_id=show_id,
                        seq=last - len(accepted) + 1 + n,
                        author_role=author.role.value,
                        author_id=author.subject,
                        author_name=author_name(author),
                        text=clean,
                    )
                    for n, (_, author, clean) in enumerate(accepted)
                ]
                session.add_all(rows)
                await session.flush()
                for (i, _, _), row in zip(accepted, rows, strict=True):
                    results[i] = ChatRecord.of(row)
    return [r if r is not None else RuntimeError("post not handled") for r in results]


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
