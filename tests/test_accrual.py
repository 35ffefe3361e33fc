"""The engagement writer's economies: the periodic write holds watching until it completes a
block of WATCH_BLOCK minutes (or for at most HOLD_SECONDS), checkpointing what it holds so
that a restarted process credits it exactly once; and tiers move with what a flush earns,
with the hourly job taking off what leaves the tier window."""

from __future__ import annotations

import gc
import json
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import JSON, select

from server.services import accrual as accrual_module
from server.services import ledger, shows, webhooks
from server.services.accrual import HOLD_SECONDS, WATCH_BLOCK, Accrual
from server.store import models
from server.store.db import Database
from server.store.models import utcnow
from tests.test_engagement import balances_match_entries, ledger_sums, live_show_id


async def _attendance(db: Database, show_id: uuid.UUID, viewer: str) -> models.ShowAttendance:
    async with db.read() as session:
        row = await session.get(models.ShowAttendance, (show_id, viewer))
    assert row is not None
    return row


async def _entries(db: Database, member: str) -> list[tuple[str, int, str]]:
    """(reason, points, idempotency key) of the member's entries, oldest first."""
    async with db.read() as session:
        rows = await session.execute(
            select(
                models.LedgerEntry.reason,
                models.LedgerEntry.points,
                models.LedgerEntry.idempotency_key,
            )
            .join(models.Member, models.Member.id == models.LedgerEntry.member_id)
            .where(models.Member.external_id == member)
            .order_by(models.LedgerEntry.created_at, models.LedgerEntry.points)
        )
        return [(r, p, k) for r, p, k in rows]


async def _checkpoint(db: Database, show_id: uuid.UUID) -> str | None:
    async with db.read() as session:
        row = await session.get(models.WatchCheckpoint, show_id)
        return None if row is None else row.held


async def test_the_periodic_write_holds_watching_until_a_block_completes(db: Database) -> None:
    assert (WATCH_BLOCK, HOLD_SECONDS) == (5, 300.0)
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    seen: list[tuple[uuid.UUID, int]] = []
    accrual.on_rules = lambda show, rules: seen.append((show, rules.idle_after_minutes))
    viewer, member = "viewer:hold", "hold"
    t = utcnow().timestamp() - 3600
    accrual.joined(show_id, viewer, member, None)
    accrual.watched(show_id, viewer, member, t, t + 10)
    await accrual.flush(hold=True)  # joining is written at once (and a new viewer's watching)
    assert (await _attendance(db, show_id, viewer)).watched_ms == 10_000
    assert seen == [(show_id, 30)]  # the live show's rules reach the watch clock

    accrual.watched(show_id, viewer, member, t + 10, t + 70)
    await accrual.flush(hold=True)  # 70 s: a minute completed, but not a block: it waits
    assert (await _attendance(db, show_id, viewer)).watched_ms == 10_000
    assert (show_id, viewer) in accrual.pending
    assert await _checkpoint(db, show_id) is not None  # what is held is checkpointed
    accrual.watched(show_id, viewer, member, t + 70, t + 295)
    await accrual.flush(hold=True)  # 295 s: still short of the first block
    assert (await _attendance(db, show_id, viewer)).watched_ms == 10_000
    assert await ledger_sums(db) == {member: {"first_join": 10}}

    accrual.watched(show_id, viewer, member, t + 295, t + 305)
    await accrual.flush(hold=True)  # 305 s: the block is complete: its 5 minutes earn at once
    assert (await _attendance(db, show_id, viewer)).watched_ms == 305_000
    assert (await _entries(db, member))[-1] == ("watch", 5, f"watch:{show_id}:5")
    assert (show_id, viewer) not in accrual.pending
    assert await _checkpoint(db, show_id) is None  # nothing held: no checkpoint

    # Held no longer than HOLD_SECONDS, even when no block completes (analytics see it).
    accrual.watched(show_id, viewer, member, t + 305, t + 310)
    await accrual.flush(hold=True)
    assert (await _attendance(db, show_id, viewer)).watched_ms == 305_000
    accrual.pending[(show_id, viewer)].first_seen -= HOLD_SECONDS
    await accrual.flush(hold=True)
    assert (await _attendance(db, show_id, viewer)).watched_ms == 310_000

    # Anything else is written at once, without the watching held for the block; the next
    # block still earns its 5 minutes in one entry, keyed by the minutes reached.
    accrual.watched(show_id, viewer, member, t + 310, t + 320)
    accrual.chatted(show_id, viewer, member)
    await accrual.flush(hold=True)
    row = await _attendance(db, show_id, viewer)
    assert (row.watched_ms, row.chats) == (310_000, 1)
    assert (await ledger_sums(db))[member] == {"first_join": 10, "watch": 5, "chat": 1}
    accrual.watched(show_id, viewer, member, t + 320, t + 600)
    await accrual.flush(hold=True)
    assert (await _attendance(db, show_id, viewer)).watched_ms == 600_000
    assert (await _entries(db, member))[-1] == ("watch", 5, f"watch:{show_id}:10")

    # A write without hold (show end, shutdown) takes everything, and the checkpoint goes.
    accrual.watched(show_id, viewer, member, t + 600, t + 630)
    await accrual.flush(hold=True)
    assert await _checkpoint(db, show_id) is not None
    accrual.watched(show_id, viewer, member, t + 630, t + 640)
    await accrual.flush()
    assert (await _attendance(db, show_id, viewer)).watched_ms == 640_000
    assert not accrual.pending
    assert await _checkpoint(db, show_id) is None
    assert (await ledger_sums(db))[member] == {"first_join": 10, "watch": 10, "chat": 1}
    await balances_match_entries(db)


async def test_a_restarted_process_credits_the_checkpointed_watching_exactly_once(
    db: Database,
) -> None:
    """A process killed between two periodic writes loses nothing that a write saw: the
    watching it held is in the checkpoint, which a new process reads back and credits at
    its first write. Reading it again (twice, or a stale copy) credits nothing twice."""
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    t = utcnow().timestamp() - 3600
    for viewer, member in (("viewer:ann", "ann"), ("viewer:bo", "bo"), ("guest:g1", None)):
        accrual.joined(show_id, viewer, member, None)
        accrual.watched(show_id, viewer, member, t, t + 30)
    await accrual.flush(hold=True)  # the joins and the first 30 s
    # Then, held (no block completes): Ann on two tabs at once, Bo with a gap, a guest.
    accrual.watched(show_id, "viewer:ann", "ann", t + 30, t + 100)
    accrual.watched(show_id, "viewer:ann", "ann", t + 50, t + 150.25)
    accrual.watched(show_id, "viewer:bo", "bo", t + 30, t + 60)
    accrual.watched(show_id, "viewer:bo", "bo", t + 90, t + 200)
    accrual.watched(show_id, "guest:g1", None, t + 30, t + 250)
    accrual.chatted(show_id, "viewer:bo", "bo")  # written at once; the watching stays held
    await accrual.flush(hold=True)
    assert set(accrual.pending) == {(show_id, v) for v in ("viewer:ann", "viewer:bo", "guest:g1")}
    for viewer in ("viewer:ann", "viewer:bo", "guest:g1"):
        assert (await _attendance(db, show_id, viewer)).watched_ms == 30_000
    saved = await _checkpoint(db, show_id)
    assert saved is not None
    before = await ledger_sums(db)
    assert before == {"ann": {"first_join": 10}, "bo": {"first_join": 10, "chat": 1}}

    # The process dies here (no final write). A new one reads the checkpoint back.
    restarted = Accrual(lambda: db)
    assert await restarted.restore() == 3
    await restarted.flush(hold=True)  # the first periodic write credits it all
    expected = {"viewer:ann": 150_250, "viewer:bo": 170_000, "guest:g1": 250_000}
    for viewer, ms in expected.items():
        assert (await _attendance(db, show_id, viewer)).watched_ms == ms, viewer
    after = await ledger_sums(db)
    assert after == {
        "ann": {"first_join": 10, "watch": 2},
        "bo": {"first_join": 10, "chat": 1, "watch": 2},
    }
    assert await _checkpoint(db, show_id) is None  # nothing held any more
    assert not restarted.pending

    # A stale copy read back (twice over, into one process) credits nothing more.
    async with db.transaction() as session:
        session.add(models.WatchCheckpoint(show_id=show_id, saved_at=utcnow(), held=saved))
    again = Accrual(lambda: db)
    assert await again.restore() == 3
    assert await again.restore() == 3
    await again.flush()
    for viewer, ms in expected.items():
        assert (await _attendance(db, show_id, viewer)).watched_ms == ms, viewer
    assert await ledger_sums(db) == after
    assert await _checkpoint(db, show_id) is None
    await balances_match_entries(db)

    # The checkpoint of a show that is no longer live is not read back, and is deleted.
    async with db.transaction() as session:
        session.add(models.WatchCheckpoint(show_id=show_id, saved_at=utcnow(), held=saved))
    await shows.do_transition_show(db, show_id, shows.ShowAction.END)
    assert await Accrual(lambda: db).restore() == 0
    assert await _checkpoint(db, show_id) is None
    assert await ledger_sums(db) == after


async def test_tiers_move_with_what_a_flush_earns_and_fall_when_points_leave_the_window(
    db: Database,
) -> None:
    await ledger.do_set_rules(db, {"first_join_points": 600})
    await webhooks.do_create_endpoint(db, url="http://127.0.0.1:9/crm", event_types=None)
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    accrual.joined(show_id, "viewer:rising", "rising", None)
    [credit] = await accrual.flush()
    assert (credit.balance, credit.tier) == (600, "Silver")
    async with db.read() as session:
        member_id = await session.scalar(
            select(models.Member.id).where(models.Member.external_id == "rising")
        )
        row = await session.get(models.MemberPoints, member_id)
        assert row is not None and (row.rolling_points, row.tier) == (600, "Silver")
        bodies = list(
            await session.scalars(
                select(models.WebhookMessage.body).where(
                    models.WebhookMessage.event_type == "member.tier_changed"
                )
            )
        )
    [change] = [json.loads(b)["data"] for b in bodies]
    assert change == {
        "member_id": "rising",
        "from": "Member",
        "to": "Silver",
        "direction": "upgrade",
        "rolling_points": 600,
    }
    # Nothing has left the window yet: the hourly job changes nothing.
    assert await ledger.do_refresh_leaving_tiers(db) == 0
    # Two days after they left the tier window (twelve 30-day months): back to Member.
    later = utcnow() + timedelta(days=362)
    assert await ledger.do_refresh_leaving_tiers(db, later) == 1
    async with db.read() as session:
        row = await session.get(models.MemberPoints, member_id)
        assert row is not None and (row.rolling_points, row.tier) == (0, "Member")
    assert await ledger.do_refresh_leaving_tiers(db, later) == 0  # once


async def test_a_share_link_credits_the_sharer_in_a_flush_of_their_own(db: Database) -> None:
    """The friend arrives while the sharer has nothing new to write: the sharer's row is
    updated for the referral alone, and keeps when they were last seen."""
    show_id = await live_show_id(db)
    async with db.transaction() as session:
        session.add(
            models.ShowParticipant(
                show_id=show_id, author_id="a_mei", role="viewer", subject="mei", name="Mei"
            )
        )
    accrual = Accrual(lambda: db)
    accrual.joined(show_id, "viewer:mei", "mei", None)
    await accrual.flush()
    seen = (await _attendance(db, show_id, "viewer:mei")).last_seen

    accrual.joined(show_id, "viewer:kit", "kit", "a_mei")  # by mei's link
    accrual.joined(show_id, "viewer:kit", "kit", "a_mei")  # a second tab: still one friend
    await accrual.flush()
    mei = await _attendance(db, show_id, "viewer:mei")
    assert (mei.referrals, mei.last_seen) == (1, seen)
    assert (await _attendance(db, show_id, "viewer:kit")).referred_by is not None
    sums = await ledger_sums(db)
    assert sums["mei"] == {"first_join": 10, "referral": 20}
    assert sums["kit"] == {"first_join": 10}
    await balances_match_entries(db)


async def test_the_flush_stores_its_driver_written_rows_as_sqlalchemy_would(db: Database) -> None:
    """A flush hands its attendance updates, balance updates and entries to the driver with
    the values already in the driver's form. Stored otherwise (on SQLite: a UUID not as its
    hex, a datetime not in SQLAlchemy's text format), reads or the tier window's range
    comparisons would go wrong, so every stored value must be what SQLAlchemy would bind."""
    show_id = await live_show_id(db)
    async with db.transaction() as session:
        session.add(
            models.ShowParticipant(
                show_id=show_id, author_id="a_mei", role="viewer", subject="mei", name="Mei"
            )
        )
    accrual = Accrual(lambda: db)
    viewers = [("viewer:mei", "mei"), ("viewer:kit", "kit"), ("guest:g1", None)]
    t = utcnow().timestamp() - 600
    accrual.joined(show_id, "viewer:mei", "mei", None)
    accrual.joined(show_id, "viewer:kit", "kit", "a_mei")  # kit's row refers to mei
    for viewer, member in viewers:
        accrual.watched(show_id, viewer, member, t, t + 30)
    await accrual.flush()
    for viewer, member in viewers:  # every row now exists: this flush only updates
        accrual.watched(show_id, viewer, member, t + 30, t + 150.123456)
        accrual.chatted(show_id, viewer, member)
    await accrual.flush()
    async with db.read() as session:
        connection = await session.connection()
        dialect = connection.dialect
        for model in (models.ShowAttendance, models.MemberPoints, models.LedgerEntry):
            table = model.__table__
            columns = [c for c in table.columns if not isinstance(c.type, JSON)]
            names = ", ".join(f'"{c.name}"' for c in columns)
            stored = (await connection.exec_driver_sql(f'SELECT {names} FROM "{table.name}"')).all()
            binds = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
            expected = [
                tuple(v if b is None else b(v) for v, b in zip(row, binds, strict=True))
                for row in (await session.execute(select(*columns))).all()
            ]

            def plain(rows: list[Any]) -> list[tuple[Any, ...]]:
                return sorted(
                    (
                        tuple(v if v is None or isinstance(v, int) else str(v) for v in r)
                        for r in rows
                    ),
                    key=repr,
                )

            assert plain(stored) == plain(expected), table.name
            assert len(stored) >= 2, table.name
        kit = await session.get(models.ShowAttendance, (show_id, "viewer:kit"))
        assert kit is not None and kit.referred_by is not None and kit.watched_ms == 150_123
    sums = await ledger_sums(db)
    assert sums["kit"] == {"first_join": 10, "watch": 2, "chat": 1}
    await balances_match_entries(db)


async def test_a_write_pauses_garbage_collection_and_always_restores_it(db: Database) -> None:
    """The collector is off while a flush writes (its rows would only be traversed and
    promoted), back on after, a failed write included, and left off if it was off."""
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    during: list[bool] = []
    after: list[bool] = []
    accrual.on_rules = lambda _show, _rules: during.append(gc.isenabled())
    accrual.on_credit = lambda _credits: after.append(gc.isenabled())
    assert gc.isenabled()
    accrual.joined(show_id, "viewer:gc", "gc", None)
    await accrual.flush()
    assert during == [False] and after == [True] and gc.isenabled()

    def broken() -> Database:
        raise RuntimeError("no database")

    failing = Accrual(broken)
    failing.joined(show_id, "viewer:gc", "gc", None)
    with pytest.raises(RuntimeError):
        await failing.flush()
    assert gc.isenabled() and ("viewer:gc" in {v for _, v in failing.pending})
    gc.disable()
    try:
        accrual.chatted(show_id, "viewer:gc", "gc")
        await accrual.flush()
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert during == [False, False]


async def test_the_periodic_write_comes_early_for_a_join_wave(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked every second, the periodic write waits its interval, unless EARLY_WRITE
    viewers have something to write (a join wave's bonuses go out as it arrives)."""
    monkeypatch.setattr(accrual_module, "EARLY_WRITE", 3)
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    for n in range(2):
        accrual.joined(show_id, f"viewer:early-{n}", f"early-{n}", None)
    assert await accrual.periodic_write(60.0) == [] and accrual.flushes == 0
    accrual.joined(show_id, "viewer:early-2", "early-2", None)
    credits = await accrual.periodic_write(60.0)
    assert sorted(c.member for c in credits) == ["early-0", "early-1", "early-2"]
    accrual.chatted(show_id, "viewer:early-0", "early-0")
    assert await accrual.periodic_write(60.0) == []  # one viewer waiting: the interval
    assert [c.member for c in await accrual.periodic_write(0.0)] == ["early-0"]
    assert (await ledger_sums(db))["early-0"] == {"first_join": 10, "chat": 1}
