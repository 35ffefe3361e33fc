"""The points ledger: append-only entries with idempotency keys; a member's balance is the
sum of their entries (kept alongside, under the member row's lock, never below zero).

`post` is the one way an entry is written, inside the caller's transaction, so an order and
its points, or a flush of engagement and its points, commit together or not at all."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.errors import Conflict, InvalidValue, NotFound
from server.domain.loyalty import (
    MAX_POINTS,
    EarningRules,
    EntryKind,
    Reason,
    check_rules,
    expirable,
    months_before,
)
from server.domain.money import SUPPORTED_CURRENCIES
from server.domain.shows import ShowState
from server.services import webhooks
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

KEY_MAX = 200
NOTE_MAX = 500
CREDITS = (EntryKind.EARN.value, EntryKind.ADJUST.value)


@dataclass(frozen=True, slots=True)
class EntryRecord:
    id: uuid.UUID
    member: str  # the brand's member id
    kind: EntryKind
    reason: Reason
    points: int
    balance_after: int
    show_id: uuid.UUID | None
    order_id: uuid.UUID | None
    idempotency_key: str
    rules_version: int | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PointsRecord:
    member: str
    balance: int
    tier: str
    rolling_points: int
    badges: list[str]
    streak: int
    shows_attended: int
    updated_at: datetime | None


def entry_record(row: models.LedgerEntry, member: str) -> EntryRecord:
    return EntryRecord(
        row.id,
        member,
        EntryKind(row.kind),
        Reason(row.reason),
        row.points,
        row.balance_after,
        row.show_id,
        row.order_id,
        row.idempotency_key,
        row.rules_version,
        row.note,
        row.created_at,
    )


# --- rules --------------------------------------------------------------------------------


async def read_rules(
    session: AsyncSession, show_id: uuid.UUID | None = None
) -> tuple[EarningRules, int]:
    """The brand's latest rules (version 0: the defaults), with the show's overrides."""
    row = await session.scalar(
        select(models.LoyaltyRules).order_by(models.LoyaltyRules.version.desc()).limit(1)
    )
    rules, version = (EarningRules(), 0) if row is None else (check_rules(row.rules), row.version)
    if show_id is not None:
        override = await session.get(models.ShowLoyaltyRules, show_id)
        if override is not None:
            rules = check_rules(override.overrides, base=rules)
    return rules, version


async def access_rules(db: Database, show_id: uuid.UUID | None = None) -> tuple[EarningRules, int]:
    async with db.read() as session:
        if show_id is not None and await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        return await read_rules(session, show_id)


async def access_show_overrides(db: Database, show_id: uuid.UUID) -> dict[str, Any]:
    async with db.read() as session:
        if await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        row = await session.get(models.ShowLoyaltyRules, show_id)
        return {} if row is None else dict(row.overrides)


async def do_set_rules(db: Database, raw: dict[str, Any]) -> tuple[EarningRules, int]:
    """A new version of the brand's rules: fields not given keep the current value."""
    async with db.transaction() as session:
        current, version = await read_rules(session)
        rules = check_rules(raw, base=current)
        session.add(models.LoyaltyRules(version=version + 1, rules=rules.as_json()))
        await session.flush()
        return rules, version + 1


async def do_set_show_rules(
    db: Database, show_id: uuid.UUID, overrides: dict[str, Any]
) -> tuple[EarningRules, int]:
    """Replace the show's overrides ({} removes them)."""
    async with db.transaction() as session:
        if await session.get(models.Show, show_id) is None:
            raise NotFound(f"no show {show_id}")
        base, version = await read_rules(session)
        rules = check_rules(overrides, base=base)
        row = await session.get(models.ShowLoyaltyRules, show_id)
        if row is None:
            session.add(models.ShowLoyaltyRules(show_id=show_id, overrides=dict(overrides)))
        else:
            row.overrides, row.updated_at = dict(overrides), utcnow()
        await session.flush()
        return rules, version


# --- members and entries --------------------------------------------------------------------


async def member_row(session: AsyncSession, external_id: str) -> models.Member:
    row = await session.scalar(
        select(models.Member).where(models.Member.external_id == external_id)
    )
    if row is None:
        raise NotFound(f"no member {external_id!r}")
    return row


async def points_row(
    session: AsyncSession, member_id: uuid.UUID, rules: EarningRules
) -> models.MemberPoints:
    """The member's balance row, locked for this transaction (created at zero)."""
    row = await session.get(models.MemberPoints, member_id, with_for_update=True)
    if row is None:
        row = models.MemberPoints(
            member_id=member_id,
            balance=0,
            tier=rules.tiers[0].name,
            rolling_points=0,
            badges=[],
            streak=0,
            shows_attended=0,
            updated_at=utcnow(),
        )
        session.add(row)
        await session.flush()
    return row


async def post(
    session: AsyncSession,
    points_of: models.MemberPoints,
    kind: EntryKind,
    reason: Reason,
    points: int,
    key: str,
    *,
    show_id: uuid.UUID | None = None,
    order_id: uuid.UUID | None = None,
    rules_version: int | None = None,
    note: str | None = None,
    request_hash: str | None = None,
    now: datetime | None = None,
) -> models.LedgerEntry:
    """Append one entry and move the balance; a debit beyond the balance is a Conflict."""
    if points == 0 or abs(points) > MAX_POINTS:
        raise InvalidValue(f"must be a non-zero whole number up to {MAX_POINTS}", field="points")
    after = points_of.balance + points
    if after < 0:
        raise Conflict(
            f"the balance is {points_of.balance} points; {-points} cannot be taken",
            field="points",
        )
    entry = models.LedgerEntry(
        id=uuid.uuid4(),
        member_id=points_of.member_id,
        kind=kind.value,
        reason=reason.value,
        points=points,
        balance_after=after,
        show_id=show_id,
        order_id=order_id,
        idempotency_key=key[:KEY_MAX],
        request_hash=request_hash,
        rules_version=rules_version,
        note=note,
        created_at=now or utcnow(),
    )
    session.add(entry)
    points_of.balance = after
    points_of.updated_at = entry.created_at
    return entry


async def existing_keys(
    session: AsyncSession, member_ids: set[uuid.UUID], keys: set[str]
) -> set[tuple[uuid.UUID, str]]:
    if not member_ids or not keys:
        return set()
    rows = await session.execute(
        select(models.LedgerEntry.member_id, models.LedgerEntry.idempotency_key).where(
            models.LedgerEntry.member_id.in_(member_ids),
            models.LedgerEntry.idempotency_key.in_(keys),
        )
    )
    return {(m, k) for m, k in rows}


async def refresh_tiers(
    session: AsyncSession, rows: list[models.MemberPoints], rules: EarningRules, now: datetime
) -> list[tuple[models.MemberPoints, str, str]]:
    """Recompute the rolling-window points and tier of these members (one query);
    the (row, old tier, new tier) that changed, each announced by a webhook."""
    if not rows:
        return []
    since = months_before(now, rules.tier_window_months)
    sums = dict(
        (
            await session.execute(
                select(models.LedgerEntry.member_id, func.sum(models.LedgerEntry.points))
                .where(
                    models.LedgerEntry.member_id.in_([r.member_id for r in rows]),
                    models.LedgerEntry.created_at > since,
                    models.LedgerEntry.kind.in_(
                        (EntryKind.EARN.value, EntryKind.REVERSE.value, EntryKind.ADJUST.value)
                    ),
                )
                .group_by(models.LedgerEntry.member_id)
            )
        ).all()
    )
    changed = []
    for row in rows:
        row.rolling_points = max(0, int(sums.get(row.member_id) or 0))
        tier = rules.tier_for(row.rolling_points)
        if tier != row.tier:
            changed.append((row, row.tier, tier))
            row.tier = tier
    await announce_tier_changes(
        session, [(r.member_id, old, new, r.rolling_points) for r, old, new in changed], rules
    )
    return changed


async def announce_tier_changes(
    session: AsyncSession, changes: list[tuple[uuid.UUID, str, str, int]], rules: EarningRules
) -> None:
    """One `member.tier_changed` webhook per (member id, old tier, new tier, rolling points)."""
    if not changes:
        return
    externals = dict(
        (
            await session.execute(
                select(models.Member.id, models.Member.external_id).where(
                    models.Member.id.in_([member_id for member_id, _, _, _ in changes])
                )
            )
        ).all()
    )
    ranks = [t.name for t in rules.tiers]
    await webhooks.enqueue_many(
        session,
        "member.tier_changed",
        [
            {
                "member_id": externals[member_id],
                "from": old,
                "to": new,
                "direction": (
                    "upgrade"
                    if old not in ranks or ranks.index(new) > ranks.index(old)
                    else "downgrade"
                ),
                "rolling_points": rolling,
            }
            for member_id, old, new, rolling in changes
        ],
    )


def _hash(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


async def _keyed(
    db: Database,
    external_id: str,
    key: str,
    payload: dict[str, Any],
    kind: EntryKind,
    reason: Reason,
    points: int,
    note: str | None,
) -> tuple[EntryRecord, bool]:
    if not 1 <= len(key) <= KEY_MAX:
        raise InvalidValue(f"must be 1-{KEY_MAX} characters", field="Idempotency-Key")
    digest = _hash(payload)
    for attempt in (1, 2):
        try:
            async with db.transaction() as session:
                member = await member_row(session, external_id)
                found = await session.scalar(
                    select(models.LedgerEntry).where(
                        models.LedgerEntry.member_id == member.id,
                        models.LedgerEntry.idempotency_key == f"api:{key}",
                    )
                )
                if found is not None:
                    if found.request_hash != digest:
                        raise InvalidValue(
                            "this Idempotency-Key was already used with a different request",
                            field="Idempotency-Key",
                        )
                    return entry_record(found, external_id), False
                rules, version = await read_rules(session)
                row = await points_row(session, member.id, rules)
                entry = await post(
                    session,
                    row,
                    kind,
                    reason,
                    points,
                    f"api:{key}",
                    note=note,
                    request_hash=digest,
                    rules_version=version,
                )
                await session.flush()
                await refresh_tiers(session, [row], rules, entry.created_at)
                return entry_record(entry, external_id), True
        except IntegrityError:
            if attempt == 2:  # the same key raced us: the next round finds its entry
                raise
    raise AssertionError("unreachable")


async def do_redeem(
    db: Database, external_id: str, points: int, *, key: str, channel: str, reference: str | None
) -> tuple[EntryRecord, bool]:
    """Spend points (at the POS or in the e-shop): 409 beyond the balance; a repeated
    Idempotency-Key answers with the first entry (created=False)."""
    if points <= 0:
        raise InvalidValue("must be a positive whole number", field="points")
    note = f"{channel}: {reference}" if reference else channel
    payload = {"op": "redeem", "points": points, "channel": channel, "reference": reference}
    return await _keyed(
        db, external_id, key, payload, EntryKind.REDEEM, Reason.REDEMPTION, -points, note
    )


async def do_adjust(
    db: Database, external_id: str, points: int, *, key: str, note: str
) -> tuple[EntryRecord, bool]:
    """Staff add or take points (never below zero)."""
    if points == 0:
        raise InvalidValue("must not be zero", field="points")
    payload = {"op": "adjust", "points": points, "note": note}
    return await _keyed(
        db, external_id, key, payload, EntryKind.ADJUST, Reason.ADJUSTMENT, points, note[:NOTE_MAX]
    )


async def access_points(db: Database, external_id: str) -> PointsRecord:
    async with db.read() as session:
        member = await member_row(session, external_id)
        row = await session.get(models.MemberPoints, member.id)
        if row is None:
            rules, _ = await read_rules(session)
            return PointsRecord(external_id, 0, rules.tiers[0].name, 0, [], 0, 0, None)
        return PointsRecord(
            external_id,
            row.balance,
            row.tier,
            row.rolling_points,
            list(row.badges),
            row.streak,
            row.shows_attended,
            row.updated_at,
        )


async def list_entries(
    db: Database, external_id: str, *, limit: int, offset: int
) -> tuple[list[EntryRecord], int]:
    """Newest first."""
    async with db.read() as session:
        member = await member_row(session, external_id)
        query = select(models.LedgerEntry).where(models.LedgerEntry.member_id == member.id)
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(models.LedgerEntry.created_at.desc(), models.LedgerEntry.id)
            .limit(limit)
            .offset(offset)
        )
        return [entry_record(r, external_id) for r in rows], int(total or 0)


async def do_expire_points(db: Database, now: datetime | None = None) -> int:
    """Expire what was earned before the policy's cutoff and not spent since, oldest spent
    first: one EXPIRE entry per member, keyed by the cutoff day. The points expired."""
    now = now or utcnow()
    expired = 0
    async with db.transaction() as session:
        rules, version = await read_rules(session)
        if rules.expiry_months == 0:
            return 0
        cutoff = months_before(now, rules.expiry_months)
        key = f"expire:{cutoff.date().isoformat()}"
        earned = dict(
            (
                await session.execute(
                    select(models.LedgerEntry.member_id, func.sum(models.LedgerEntry.points))
                    .where(
                        models.LedgerEntry.created_at <= cutoff,
                        models.LedgerEntry.kind.in_(CREDITS),
                        models.LedgerEntry.points > 0,
                    )
                    .group_by(models.LedgerEntry.member_id)
                )
            ).all()
        )
        if not earned:
            return 0
        spent = dict(
            (
                await session.execute(
                    select(models.LedgerEntry.member_id, func.sum(models.LedgerEntry.points))
                    .where(
                        models.LedgerEntry.member_id.in_(list(earned)),
                        models.LedgerEntry.points < 0,
                    )
                    .group_by(models.LedgerEntry.member_id)
                )
            ).all()
        )
        done = await existing_keys(session, set(earned), {key})
        touched = []
        for member_id, total in earned.items():
            amount = expirable(int(total or 0), -int(spent.get(member_id) or 0))
            if amount <= 0 or (member_id, key) in done:
                continue
            row = await points_row(session, member_id, rules)
            take = min(amount, row.balance)
            if take <= 0:
                continue
            await post(
                session,
                row,
                EntryKind.EXPIRE,
                Reason.EXPIRY,
                -take,
                key,
                rules_version=version,
                now=now,
            )
            expired += take
            touched.append(row)
        await session.flush()
        await refresh_tiers(session, touched, rules, now)
    return expired


TIER_WINDOW_SLACK = timedelta(days=7)


async def do_refresh_leaving_tiers(db: Database, now: datetime | None = None) -> int:
    """Recompute the rolling points and tier of members some of whose entries left the tier
    window within the last week (the engagement flush only adds what is earned; run hourly,
    so a week covers any downtime). The number of tiers that changed."""
    now = now or utcnow()
    async with db.transaction() as session:
        rules, _ = await read_rules(session)
        since = months_before(now, rules.tier_window_months)
        member_ids = set(
            await session.scalars(
                select(models.LedgerEntry.member_id)
                .where(
                    models.LedgerEntry.created_at > since - TIER_WINDOW_SLACK,
                    models.LedgerEntry.created_at <= since,
                )
                .distinct()
            )
        )
        if not member_ids:
            return 0
        rows = list(
            await session.scalars(
                select(models.MemberPoints)
                .where(models.MemberPoints.member_id.in_(member_ids))
                .with_for_update()
            )
        )
        return len(await refresh_tiers(session, rows, rules, now))


# --- purchases ------------------------------------------------------------------------------


async def earn_for_order(session: AsyncSession, order: models.Order) -> models.LedgerEntry | None:
    """Purchase points for an order a member placed while its show was live, in the
    order's own transaction (the sale and its points commit together)."""
    if order.buyer_role != "viewer" or order.show_id is None:
        return None
    show = await session.get(models.Show, order.show_id)
    if show is None or show.state != ShowState.LIVE.value:
        return None
    rules, version = await read_rules(session, order.show_id)
    per_unit = 10 ** SUPPORTED_CURRENCIES.get(order.currency, 2)
    points = rules.purchase_points(order.total_minor, per_unit)
    if points <= 0:
        return None
    member = await session.scalar(
        select(models.Member).where(models.Member.external_id == order.buyer_subject)
    )
    if member is None:
        member = models.Member(external_id=order.buyer_subject, display_name="")
        session.add(member)
        await session.flush()
    row = await points_row(session, member.id, rules)
    entry = await post(
        session,
        row,
        EntryKind.EARN,
        Reason.PURCHASE,
        points,
        f"order:{order.id}",
        show_id=order.show_id,
        order_id=order.id,
        rules_version=version,
    )
    if rules.badges and "first_purchase" not in row.badges:
        row.badges = [*row.badges, "first_purchase"]
    await session.flush()
    await refresh_tiers(session, [row], rules, entry.created_at)
    return entry


async def reverse_order(session: AsyncSession, order_id: uuid.UUID) -> models.LedgerEntry | None:
    """A cancelled order takes back its purchase points, never below zero: what was spent
    already stays spent."""
    earned = await session.scalar(
        select(models.LedgerEntry).where(
            models.LedgerEntry.order_id == order_id,
            models.LedgerEntry.kind == EntryKind.EARN.value,
        )
    )
    if earned is None:
        return None
    rules, version = await read_rules(session)
    row = await points_row(session, earned.member_id, rules)
    if (earned.member_id, f"reverse:{order_id}") in await existing_keys(
        session, {earned.member_id}, {f"reverse:{order_id}"}
    ):
        return None
    points = min(earned.points, row.balance)
    if points <= 0:
        return None
    entry = await post(
        session,
        row,
        EntryKind.REVERSE,
        Reason.ORDER_CANCELLED,
        -points,
        f"reverse:{order_id}",
        show_id=earned.show_id,
        order_id=order_id,
        rules_version=version,
    )
    await session.flush()
    await refresh_tiers(session, [row], rules, entry.created_at)
    return entry
