"""Moderation use-cases: who may moderate, mutes and bans, deleting and pinning messages,
slow mode. Checks run inside the writing transaction, so they hold across processes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.errors import DomainError, InvalidValue, NotFound
from server.services.identity import Principal, Role
from server.services.sequence import next_event_seq
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

SLOW_MODE_MAX_SECONDS = 300


class SanctionKind(StrEnum):
    MUTE = "mute"
    BAN = "ban"


class Refused(DomainError):
    """The member may not do this now: `code` is muted, banned or slow_mode."""

    def __init__(self, code: str, message: str, retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_ms = retry_after_ms


def banned() -> Refused:
    return Refused("banned", "you have been removed from this show")


def _who(principal: Principal) -> tuple[str, str]:
    return principal.role.value, principal.subject


async def sanctions_of(
    session: AsyncSession, show_id: uuid.UUID, principals: list[Principal]
) -> dict[tuple[str, str], set[str]]:
    """The sanctions (mute, ban) that hold in this show for each of these members, with one
    query however many there are: {(role, subject): {kind, ...}}."""
    subjects = {p.subject for p in principals if p.role not in (Role.ADMIN, Role.HOST)}
    found: dict[tuple[str, str], set[str]] = {}
    if not subjects:
        return found
    for role, subject, kind in await session.execute(
        select(models.Sanction.role, models.Sanction.subject, models.Sanction.kind).where(
            models.Sanction.subject.in_(subjects),
            or_(models.Sanction.show_id == show_id, models.Sanction.show_id.is_(None)),
        )
    ):
        found.setdefault((role, subject), set()).add(kind)
    return found


async def access_sanctions(
    db: Database, show_id: uuid.UUID, members: set[tuple[str, str]]
) -> list[tuple[str, str, str, bool]]:
    """The bans and mutes holding in the show for these members ((role, subject) pairs):
    (role, subject, kind, for all shows), one row per member and kind, all-shows first."""
    found: list[tuple[str, str, str, bool]] = []
    subjects = sorted({subject for _, subject in members})
    async with db.read() as session:
        seen: set[tuple[str, str, str]] = set()
        for start in range(0, len(subjects), 500):
            rows = await session.execute(
                select(
                    models.Sanction.role,
                    models.Sanction.subject,
                    models.Sanction.kind,
                    models.Sanction.show_id,
                )
                .where(
                    models.Sanction.subject.in_(subjects[start : start + 500]),
                    or_(models.Sanction.show_id == show_id, models.Sanction.show_id.is_(None)),
                )
                .order_by(models.Sanction.show_id.is_(None).desc())  # all-shows first
            )
            for role, subject, kind, sanction_show in rows:
                if (role, subject) in members and (role, subject, kind) not in seen:
                    seen.add((role, subject, kind))
                    found.append((role, subject, kind, sanction_show is None))
    return found


def standing_refusal(
    sanctions: dict[tuple[str, str], set[str]], principal: Principal, *, talking: bool
) -> Refused | None:
    """Refuse a banned member anything, and a muted one talking (chat, questions, reactions);
    the show's host and admins are never refused."""
    if principal.role in (Role.ADMIN, Role.HOST):
        return None
    kinds = sanctions.get(_who(principal), set())
    if SanctionKind.BAN in kinds:
        return banned()
    if talking and SanctionKind.MUTE in kinds:
        return Refused("muted", "you have been muted in this show")
    return None


async def check_standing(
    session: AsyncSession, show_id: uuid.UUID, principal: Principal, *, talking: bool
) -> None:
    refusal = standing_refusal(
        await sanctions_of(session, show_id, [principal]), principal, talking=talking
    )
    if refusal is not None:
        raise refusal


async def check_slow_mode(
    session: AsyncSession,
    show: models.Show,
    principal: Principal,
    sent_meanwhile: datetime | None = None,
) -> None:
    """Refuse a message sooner than slow mode allows after the member's last one, stored
    or (`sent_meanwhile`) accepted earlier in the same batch."""
    if show.slow_mode_seconds <= 0 or await may_moderate(session, show.id, principal):
        return
    role, subject = _who(principal)
    last = await session.scalar(
        select(func.max(models.ChatMessage.created_at)).where(
            models.ChatMessage.show_id == show.id,
            models.ChatMessage.author_role == role,
            models.ChatMessage.author_id == subject,
        )
    )
    if last is not None and last.tzinfo is None:  # SQLite hands back naive UTC from an aggregate
        last = last.replace(tzinfo=utcnow().tzinfo)
    if sent_meanwhile is not None:
        last = sent_meanwhile if last is None else max(last, sent_meanwhile)
    if last is None:
        return
    wait = last + timedelta(seconds=show.slow_mode_seconds) - utcnow()
    if wait.total_seconds() > 0:
        raise Refused(
            "slow_mode",
            f"slow mode: one message every {show.slow_mode_seconds} s",
            retry_after_ms=int(wait.total_seconds() * 1000) + 1,
        )


async def may_moderate(session: AsyncSession, show_id: uuid.UUID, principal: Principal) -> bool:
    if principal.may_host(show_id):
        return True
    role, subject = _who(principal)
    return await session.get(models.ShowModerator, (show_id, role, subject)) is not None


async def _require_moderator(
    session: AsyncSession, show_id: uuid.UUID, principal: Principal
) -> None:
    if not await may_moderate(session, show_id, principal):
        raise Refused("forbidden", "only the show's host and moderators can do this")


@dataclass(frozen=True, slots=True)
class Participant:
    """Who is behind an author id in one show, so moderation can act on what they wrote."""

    show_id: uuid.UUID
    author_id: str
    role: str
    subject: str
    name: str


async def do_register_participants(
    db: Database, participants: list[Participant]
) -> list[Exception | None]:
    """Register many participants in one transaction (see server/services/batching.py)."""
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    rows = {
        (p.show_id, p.author_id): {
            "show_id": p.show_id,
            "author_id": p.author_id,
            "role": p.role,
            "subject": p.subject,
            "name": p.name,
        }
        for p in participants
    }
    async with db.transaction() as session:
        await session.execute(
            insert(models.ShowParticipant)
            .values(list(rows.values()))
            .on_conflict_do_nothing(index_elements=["show_id", "author_id"])
        )
    return [None] * len(participants)


async def _participant(
    session: AsyncSession, show_id: uuid.UUID, author_id: str
) -> models.ShowParticipant:
    row = await session.get(models.ShowParticipant, (show_id, author_id))
    if row is None:
        raise NotFound(f"no participant {author_id} in this show", field="author_id")
    return row


@dataclass(frozen=True, slots=True)
class Sanctioned:
    author_id: str
    kind: SanctionKind
    all_shows: bool


async def do_sanction(
    db: Database,
    show_id: uuid.UUID,
    actor: Principal,
    author_id: str,
    kind: SanctionKind,
    *,
    all_shows: bool,
) -> Sanctioned:
    async with db.transaction() as session:
        await _require_moderator(session, show_id, actor)
        if all_shows and not actor.may_host(show_id):
            raise Refused("forbidden", "only the host can sanction for every show")
        target = await _participant(session, show_id, author_id)
        if target.role in (Role.ADMIN.value, Role.HOST.value):
            raise InvalidValue("staff cannot be muted or banned", field="author_id")
        session.add(
            models.Sanction(
                show_id=None if all_shows else show_id,
                role=target.role,
                subject=target.subject,
                kind=kind.value,
                created_by=f"{actor.role.value}:{actor.subject}",
            )
        )
    return Sanctioned(author_id, kind, all_shows)


async def do_lift(
    db: Database, show_id: uuid.UUID, actor: Principal, author_id: str, kind: SanctionKind
) -> None:
    """Lift this show's sanction of that kind; the host also lifts the every-show one."""
    async with db.transaction() as session:
        await _require_moderator(session, show_id, actor)
        target = await _participant(session, show_id, author_id)
        scopes = [models.Sanction.show_id == show_id]
        if actor.may_host(show_id):
            scopes.append(models.Sanction.show_id.is_(None))
        await session.execute(
            delete(models.Sanction).where(
                models.Sanction.role == target.role,
                models.Sanction.subject == target.subject,
                models.Sanction.kind == kind.value,
                or_(*scopes),
            )
        )


async def do_add_moderator(
    db: Database, show_id: uuid.UUID, actor: Principal, author_id: str
) -> None:
    async with db.transaction() as session:
        if not actor.may_host(show_id):
            raise Refused("forbidden", "only the host can name moderators")
        target = await _participant(session, show_id, author_id)
        if await session.get(models.ShowModerator, (show_id, target.role, target.subject)) is None:
            session.add(
                models.ShowModerator(show_id=show_id, role=target.role, subject=target.subject)
            )


async def do_delete_message(
    db: Database, show_id: uuid.UUID, actor: Principal, message_id: uuid.UUID
) -> int:
    """Delete a message for everyone and from history; returns the deletion's event number."""
    async with db.transaction() as session:
        await _require_moderator(session, show_id, actor)
        row = await session.get(models.ChatMessage, message_id)
        if row is None or row.show_id != show_id or row.deleted_at is not None:
            raise NotFound(f"no message {message_id} in this show", field="message_id")
        seq = await next_event_seq(session, show_id)
        row.deleted_at, row.deleted_seq = utcnow(), seq
        show = await session.get(models.Show, show_id)
        assert show is not None
        if show.pinned_message_id == message_id:
            # Its own event number: every number stands for exactly one room event.
            show.pinned_message_id, show.room_seq = None, await next_event_seq(session, show_id)
        return seq


@dataclass(frozen=True, slots=True)
class RoomSettings:
    seq: int
    pinned_message_id: uuid.UUID | None
    slow_mode_seconds: int


async def do_pin(
    db: Database, show_id: uuid.UUID, actor: Principal, message_id: uuid.UUID | None
) -> RoomSettings:
    async with db.transaction() as session:
        await _require_moderator(session, show_id, actor)
        if message_id is not None:
            row = await session.get(models.ChatMessage, message_id)
            if row is None or row.show_id != show_id or row.deleted_at is not None:
                raise NotFound(f"no message {message_id} in this show", field="message_id")
        seq = await next_event_seq(session, show_id)
        show = await session.get(models.Show, show_id)
        assert show is not None
        show.pinned_message_id, show.room_seq = message_id, seq
        return RoomSettings(seq, show.pinned_message_id, show.slow_mode_seconds)


async def do_slow_mode(
    db: Database, show_id: uuid.UUID, actor: Principal, seconds: int
) -> RoomSettings:
    if not 0 <= seconds <= SLOW_MODE_MAX_SECONDS:
        raise InvalidValue(f"must be 0-{SLOW_MODE_MAX_SECONDS} seconds", field="seconds")
    async with db.transaction() as session:
        await _require_moderator(session, show_id, actor)
        seq = await next_event_seq(session, show_id)
        show = await session.get(models.Show, show_id)
        assert show is not None
        show.slow_mode_seconds, show.room_seq = seconds, seq
        return RoomSettings(seq, show.pinned_message_id, show.slow_mode_seconds)
