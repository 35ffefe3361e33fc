"""Q&A and reactions use-cases: ask, vote, mark; add reaction taps in batches."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.chat import BannedWords
from server.domain.engagement import WAITING, QuestionState, check_question_text
from server.domain.errors import NotFound
from server.services.chat import author_name
from server.services.identity import Principal
from server.services.moderation import check_standing
from server.services.sequence import next_event_seq
from server.store import models
from server.store.db import Database
from server.store.models import utcnow


@dataclass(frozen=True, slots=True)
class QuestionRecord:
    id: uuid.UUID
    show_id: uuid.UUID
    seq: int
    author_role: str
    author_id: str
    author_name: str
    text: str
    state: QuestionState
    votes: int
    created_at: datetime

    @classmethod
    def of(cls, row: models.Question) -> QuestionRecord:
        return cls(
            row.id,
            row.show_id,
            row.seq,
            row.author_role,
            row.author_id,
            row.author_name,
            row.text,
            QuestionState(row.state),
            row.votes,
            row.created_at,
        )


def voter_key(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


async def do_ask(
    db: Database, show_id: uuid.UUID, author: Principal, text: str, banned: BannedWords
) -> QuestionRecord:
    clean = banned.apply(check_question_text(text))
    async with db.transaction() as session:
        await check_standing(session, show_id, author, talking=True)
        seq = await next_event_seq(session, show_id)
        row = models.Question(
            show_id=show_id,
            seq=seq,
            author_role=author.role.value,
            author_id=author.subject,
            author_name=author_name(author),
            text=clean,
            state=QuestionState.OPEN.value,
            votes=0,
        )
        session.add(row)
        await session.flush()
        return QuestionRecord.of(row)


async def _question(
    session: AsyncSession, show_id: uuid.UUID, question_id: uuid.UUID
) -> models.Question:
    row = await session.get(models.Question, question_id)
    if row is None or row.show_id != show_id:
        raise NotFound(f"no question {question_id} in this show", field="question_id")
    return row


async def do_vote(
    db: Database, show_id: uuid.UUID, question_id: uuid.UUID, voter: Principal, *, up: bool
) -> tuple[QuestionRecord, bool]:
    """One vote per member, retractable. Returns the question and whether anything changed."""
    key = voter_key(voter)
    try:
        async with db.transaction() as session:
            await check_standing(session, show_id, voter, talking=True)
            row = await _question(session, show_id, question_id)
            had = await session.get(models.QuestionVote, (question_id, key)) is not None
            if had == up:
                return QuestionRecord.of(row), False
            seq = await next_event_seq(session, show_id)
            if up:
                session.add(models.QuestionVote(question_id=question_id, voter=key))
            else:
                await session.execute(
                    delete(models.QuestionVote).where(
                        models.QuestionVote.question_id == question_id,
                        models.QuestionVote.voter == key,
                    )
                )
            await session.flush()
            row.votes = int(
                await session.scalar(
                    select(func.count()).where(models.QuestionVote.question_id == question_id)
                )
                or 0
            )
            row.seq, row.updated_at = seq, utcnow()
            await session.flush()
            return QuestionRecord.of(row), True
    except IntegrityError:
        # The same member voted from two devices at once; the other vote counted.
        async with db.read() as session:
            return QuestionRecord.of(await _question(session, show_id, question_id)), False


async def do_mark(
    db: Database, show_id: uuid.UUID, question_id: uuid.UUID, state: QuestionState
) -> QuestionRecord:
    async with db.transaction() as session:
        row = await _question(session, show_id, question_id)
        if row.state != state.value:
            row.seq = await next_event_seq(session, show_id)
            row.state, row.updated_at = state.value, utcnow()
            await session.flush()
        return QuestionRecord.of(row)


async def list_questions(
    db: Database, show_id: uuid.UUID, *, waiting_only: bool
) -> list[QuestionRecord]:
    """Questions by votes then age (the queue order)."""
    query = select(models.Question).where(models.Question.show_id == show_id)
    if waiting_only:
        query = query.where(models.Question.state.in_([s.value for s in WAITING]))
    async with db.read() as session:
        if await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        rows = await session.scalars(
            query.order_by(
                models.Question.votes.desc(), models.Question.created_at, models.Question.id
            )
        )
        return [QuestionRecord.of(r) for r in rows]


async def my_votes(session: AsyncSession, show_id: uuid.UUID, voter: Principal) -> set[uuid.UUID]:
    """The questions of this show the member upvoted, from any of their devices."""
    ids = await session.scalars(
        select(models.QuestionVote.question_id)
        .join(models.Question, models.Question.id == models.QuestionVote.question_id)
        .where(models.Question.show_id == show_id, models.QuestionVote.voter == voter_key(voter))
    )
    return set(ids)


async def do_add_reactions(
    db: Database, deltas: dict[uuid.UUID, dict[str, int]]
) -> dict[uuid.UUID, dict[str, int]]:
    """Add batched taps, one upsert per show and kind, and return the new totals (which
    include what other server processes added)."""
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    totals: dict[uuid.UUID, dict[str, int]] = {}
    async with db.transaction() as session:
        for show_id, kinds in deltas.items():
            for kind, count in kinds.items():
                add = insert(models.ShowReaction).values(show_id=show_id, kind=kind, count=count)
                upsert = add.on_conflict_do_update(
                    index_elements=["show_id", "kind"],
                    set_={"count": models.ShowReaction.count + add.excluded.count},
                ).returning(models.ShowReaction.count)
                totals.setdefault(show_id, {})[kind] = int(await session.scalar(upsert) or 0)
    return totals


async def reaction_totals(db: Database, show_id: uuid.UUID) -> dict[str, int]:
    async with db.read() as session:
        rows = await session.execute(
            select(models.ShowReaction.kind, models.ShowReaction.count).where(
                models.ShowReaction.show_id == show_id
            )
        )
        return {kind: int(count) for kind, count in rows}
