"""Show analytics for the brand's staff: who watched and for how long, what they did, what
sold, and the points the show gave away; plus engagement per viewer and per member, for
exports. Read-only, aggregated in SQL: a handful of queries per call, never one per row.

The sales side is read through `services/funnel.py` (funnel steps per product, and orders
and revenue from the orders themselves), so the funnel and the analytics always agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.sql.expression import ScalarSelect

from server.domain.engagement import QuestionState
from server.domain.errors import NotFound
from server.domain.loyalty import EntryKind
from server.domain.shows import ShowState
from server.services.funnel import SOLD, FunnelStep, access_funnel, access_show_orders
from server.services.identity import Role
from server.store import models
from server.store.db import Database


@dataclass(frozen=True, slots=True)
class MinuteRecord:
    minute: int  # minutes since the show started
    viewers: int  # the most viewers seen watching during that minute


@dataclass(frozen=True, slots=True)
class ShowAnalyticsRecord:
    show_id: uuid.UUID
    title: str
    state: ShowState
    currency: str
    started_at: datetime | None
    ended_at: datetime | None
    # Audience: distinct viewers and guests who joined the room.
    unique_viewers: int
    member_viewers: int
    guest_viewers: int
    peak_viewers: int  # most members watching at once
    # Watch time, from what the server measured per viewer.
    watch_ms_total: int
    watchers: int  # viewers with any watch time
    retention: list[MinuteRecord]
    # Interaction.
    chat_messages: int  # not deleted by a moderator (hosts' messages included)
    chat_messages_deleted: int
    questions: int
    questions_answered: int
    reactions: dict[str, int]  # per kind
    # Sales.
    impressions: int  # card_shown
    clicks: int  # card_opened
    added_to_cart: int
    checkouts_started: int
    orders: int  # placed or paid
    units: int  # in those orders
    buyers: int  # distinct buyers with a placed or paid order
    revenue: dict[str, int]  # minor units per currency
    points_earned: int  # ledger EARN entries credited to the show

    @property
    def reactions_total(self) -> int:
        return sum(self.reactions.values())

    @property
    def watch_seconds_total(self) -> float:
        return round(self.watch_ms_total / 1000, 3)

    @property
    def watch_seconds_avg_per_watcher(self) -> float:
        return _ratio(self.watch_ms_total / 1000, self.watchers, 1)

    @property
    def watch_seconds_avg_per_viewer(self) -> float:
        return _ratio(self.watch_ms_total / 1000, self.unique_viewers, 1)

    @property
    def conversion_orders(self) -> float:
        return _ratio(self.orders, self.unique_viewers, 4)

    @property
    def conversion_buyers(self) -> float:
        return _ratio(self.buyers, self.unique_viewers, 4)


def _ratio(numerator: float, denominator: int, places: int) -> float:
    return round(numerator / denominator, places) if denominator else 0.0


async def access_show_analytics(db: Database, show_id: uuid.UUID) -> ShowAnalyticsRecord:
    """Everything about one show, in numbers. NotFound for no such show."""
    async with db.snapshot() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        p, a = models.ShowParticipant, models.ShowAttendance
        chat, q, o = models.ChatMessage, models.Question, models.Order

        def viewers_with(role: Role) -> ScalarSelect[int]:
            return (
                select(func.count(distinct(p.subject)))
                .where(p.show_id == show_id, p.role == role.value)
                .scalar_subquery()
            )

        buyers = select(o.buyer_role, o.buyer_subject).where(
            o.show_id == show_id, o.status.in_(SOLD)
        )
        numbers = (
            await session.execute(
                select(
                    viewers_with(Role.VIEWER),
                    viewers_with(Role.GUEST),
                    select(func.coalesce(func.sum(a.watched_ms), 0))
                    .where(a.show_id == show_id)
                    .scalar_subquery(),
                    select(func.count())
                    .where(a.show_id == show_id, a.watched_ms > 0)
                    .scalar_subquery(),
                    select(func.count())
                    .where(chat.show_id == show_id, chat.deleted_at.is_(None))
                    .scalar_subquery(),
                    select(func.count())
                    .where(chat.show_id == show_id, chat.deleted_at.is_not(None))
                    .scalar_subquery(),
                    select(func.count()).where(q.show_id == show_id).scalar_subquery(),
                    select(func.count())
                    .where(q.show_id == show_id, q.state == QuestionState.ANSWERED.value)
                    .scalar_subquery(),
                    select(func.count())
                    .select_from(buyers.distinct().subquery())
                    .scalar_subquery(),
                    select(func.coalesce(func.sum(models.LedgerEntry.points), 0))
                    .where(
                        models.LedgerEntry.show_id == show_id,
                        models.LedgerEntry.kind == EntryKind.EARN.value,
                    )
                    .scalar_subquery(),
                )
            )
        ).one()
        (
            members,
            guests,
            watch_ms,
            watchers,
            messages,
            deleted,
            asked,
            answered,
            buyer_count,
            points,
        ) = (int(n or 0) for n in numbers)
        retention = [
            MinuteRecord(int(minute), int(viewers))
            for minute, viewers in await session.execute(
                select(models.ShowMinute.minute, models.ShowMinute.viewers)
                .where(models.ShowMinute.show_id == show_id)
                .order_by(models.ShowMinute.minute)
            )
        ]
        reactions = {
            kind: int(count)
            for kind, count in await session.execute(
                select(models.ShowReaction.kind, models.ShowReaction.count)
                .where(models.ShowReaction.show_id == show_id)
                .order_by(models.ShowReaction.kind)
            )
        }
        title, state, currency = show.title, ShowState(show.state), show.currency
        started_at, ended_at, peak = show.started_at, show.ended_at, show.peak_viewers
    products = await access_funnel(db, show_id)
    orders, revenue = await access_show_orders(db, show_id)

    def step(which: FunnelStep) -> int:
        return sum(row.steps[which] for row in products)

    return ShowAnalyticsRecord(
        show_id=show_id,
        title=title,
        state=state,
        currency=currency,
        started_at=started_at,
        ended_at=ended_at,
        unique_viewers=members + guests,
        member_viewers=members,
        guest_viewers=guests,
        peak_viewers=peak,
        watch_ms_total=watch_ms,
        watchers=watchers,
        retention=retention,
        chat_messages=messages,
        chat_messages_deleted=deleted,
        questions=asked,
        questions_answered=answered,
        reactions=reactions,
        impressions=step(FunnelStep.CARD_SHOWN),
        clicks=step(FunnelStep.CARD_OPENED),
        added_to_cart=step(FunnelStep.ADDED_TO_CART),
        checkouts_started=step(FunnelStep.CHECKOUT_STARTED),
        orders=orders,
        units=sum(row.units for row in products),
        buyers=buyer_count,
        revenue=dict(sorted(revenue.items())),
        points_earned=points,
    )


# --- engagement per viewer and per member ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ViewerEngagementRecord:
    """One viewer's doings in one show."""

    member: str | None  # the brand's member id; None for a guest
    watched_ms: int
    chats: int
    questions: int
    answered: int  # their questions the host answered
    reactions: int
    referrals: int  # members who joined through their share link
    referred_by: str | None  # the member whose share link brought them
    points: int  # earned in this show
    first_seen: datetime
    last_seen: datetime

    @property
    def kind(self) -> str:
        return "guest" if self.member is None else "member"

    @property
    def watched_seconds(self) -> float:
        return round(self.watched_ms / 1000, 3)


async def list_show_engagement(
    db: Database, show_id: uuid.UUID, *, limit: int | None = None, offset: int = 0
) -> tuple[list[ViewerEngagementRecord], int]:
    """One row per viewer who attended the show, in the order they arrived, and how many
    there are. `limit=None`: every row (exports). NotFound for no such show."""
    a = models.ShowAttendance
    member, referrer = aliased(models.Member), aliased(models.Member)
    async with db.read() as session:
        if await session.scalar(select(models.Show.id).where(models.Show.id == show_id)) is None:
            raise NotFound(f"no show {show_id}")
        total = await session.scalar(select(func.count()).where(a.show_id == show_id))
        query = (
            select(
                member.external_id,
                a.watched_ms,
                a.chats,
                a.questions,
                a.answered,
                a.reactions,
                a.referrals,
                referrer.external_id,
                a.points,
                a.first_seen,
                a.last_seen,
            )
            .select_from(a)
            .outerjoin(member, member.id == a.member_id)
            .outerjoin(referrer, referrer.id == a.referred_by)
            .where(a.show_id == show_id)
            .order_by(a.first_seen, a.viewer)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit)
        rows = [ViewerEngagementRecord(*row) for row in await session.execute(query)]
        return rows, int(total or 0)


@dataclass(frozen=True, slots=True)
class MemberShowRecord:
    """What one member did in one show."""

    show_id: uuid.UUID
    title: str
    state: ShowState
    started_at: datetime | None
    watched_ms: int
    chats: int
    questions: int
    answered: int
    reactions: int
    referrals: int
    points: int
    first_seen: datetime
    last_seen: datetime

    @property
    def watched_seconds(self) -> float:
        return round(self.watched_ms / 1000, 3)


async def list_member_engagement(db: Database, external_id: str) -> list[MemberShowRecord]:
    """Every show the member attended, the latest first. NotFound for no such member."""
    a, show = models.ShowAttendance, models.Show
    async with db.read() as session:
        member_id = await session.scalar(
            select(models.Member.id).where(models.Member.external_id == external_id)
        )
        if member_id is None:
            raise NotFound(f"no member with member_id {external_id!r}")
        return [
            MemberShowRecord(show_id, title, ShowState(state), *rest)
            for show_id, title, state, *rest in await session.execute(
                select(
                    show.id,
                    show.title,
                    show.state,
                    show.started_at,
                    a.watched_ms,
                    a.chats,
                    a.questions,
                    a.answered,
                    a.reactions,
                    a.referrals,
                    a.points,
                    a.first_seen,
                    a.last_seen,
                )
                .select_from(a)
                .join(show, show.id == a.show_id)
                .where(a.member_id == member_id)
                .order_by(a.first_seen.desc(), show.id)
            )
        ]
