"""Engagement and loyalty: watch time the server verifies, points by the rules (batched,
never credited twice), the ledger's invariants, redemptions, tiers, purchases and expiry."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.domain.loyalty import EarningRules, check_rules
from server.realtime.watch import WatchClock
from server.services import identity, ledger, shows, webhooks
from server.services.accrual import Accrual, credit_after
from server.services.identity import Principal, Role
from server.store import models
from server.store.db import Database
from server.store.models import utcnow
from tests.conftest import Api, create_product, create_show, snapshot, viewer_token

POINTS = "/api/v1/members/{}/points"


async def live_show_id(db: Database) -> uuid.UUID:
    record = await shows.do_create_show(
        db,
        {"title": "Live", "scheduled_start": utcnow()},
        default_locale="zh-HK",
        default_currency="HKD",
    )
    await shows.do_transition_show(db, record.id, shows.ShowAction.START)
    return record.id


async def ledger_sums(db: Database) -> dict[str, dict[str, int]]:
    """{member: {reason: points}} straight from the entries."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    async with db.read() as session:
        rows = await session.execute(
            select(
                models.Member.external_id,
                models.LedgerEntry.reason,
                func.sum(models.LedgerEntry.points),
            )
            .join(models.Member, models.Member.id == models.LedgerEntry.member_id)
            .group_by(models.Member.external_id, models.LedgerEntry.reason)
        )
        for member, reason, points in rows:
            out[member][reason] = int(points)
    return out


async def balances_match_entries(db: Database) -> None:
    async with db.read() as session:
        sums = dict(
            (
                await session.execute(
                    select(
                        models.LedgerEntry.member_id, func.sum(models.LedgerEntry.points)
                    ).group_by(models.LedgerEntry.member_id)
                )
            ).all()
        )
        for row in await session.scalars(select(models.MemberPoints)):
            assert row.balance == int(sums.get(row.member_id) or 0) >= 0


# --- the watch clock: what earns and what does not ----------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _watched(accrual: Accrual, viewer: str = "viewer:m1") -> list[tuple[float, float]]:
    return [i for (_, v), a in accrual.pending.items() if v == viewer for i in a.spans()]


def test_the_watch_clock_credits_only_verified_playing_time() -> None:
    accrual = Accrual(lambda: None)  # type: ignore[arg-type,return-value]
    clock = Clock()
    relayed = {"good", "shared", "other"}  # WHEP sessions the relay hears now
    watch = WatchClock(accrual, lambda show, session: session in relayed, clock=clock)
    show = str(uuid.uuid4())
    t0 = clock.now

    def beat(sid: str, viewer: str = "viewer:m1", **flags: Any) -> tuple[bool, str]:
        args = {"playing": True, "visible": True, "session": "good", "active": False} | flags
        return watch.beat(sid, show, viewer, viewer.split(":")[1], **args)

    def sweep(after: float) -> None:
        clock.now += after
        watch.sweep()

    # The first report earns nothing yet; the server's own sweeps credit the time after it.
    assert beat("s1") == (False, "first_beat")
    sweep(5)
    sweep(5)
    assert _watched(accrual) == [(t0, t0 + 10)]  # back to back: one interval, extended
    # Reports in between credit up to now (a flood earns no more than the wall clock).
    clock.now += 2
    assert beat("s1") == (True, "")
    assert beat("s1") == (False, "resumed")  # the same instant: nothing more to credit
    sweep(3)
    assert watch.credited_seconds == 15
    # Paused: the time up to the pause is credited, none after it.
    clock.now += 1
    assert beat("s1", playing=False) == (True, "not_playing")
    sweep(5)
    sweep(5)
    assert watch.credited_seconds == 16
    assert beat("s1") == (False, "resumed")
    sweep(5)
    assert watch.credited_seconds == 21
    # A background tab, no WHEP session, or a made-up one earns nothing.
    for flags, why in (
        ({"visible": False}, "hidden"),
        ({"session": None}, "no_media_session"),
        ({"session": "forged"}, "no_media"),
    ):
        assert beat("s1", **flags) == (False, why)  # right after a sweep: nothing to settle
        sweep(5)
        sweep(5)
        assert watch.credited_seconds == 21, why
    assert beat("s1") == (False, "resumed")
    sweep(5)
    assert watch.credited_seconds == 26
    # The media stops between two sweeps: that time is lost, even once it comes back.
    relayed.discard("good")
    sweep(5)
    assert watch.credited_seconds == 26
    relayed.add("good")
    sweep(5)
    assert watch.credited_seconds == 31  # only the 5 s after the media was heard again
    relayed.discard("good")  # and a report settles only what the relay can vouch for
    clock.now += 3
    assert beat("s1", playing=False) == (False, "not_playing")
    relayed.add("good")
    assert beat("s1") == (False, "resumed")
    assert watch.credited_seconds == 31
    # Another member naming the same WHEP session gets nothing: one player, one viewer.
    assert beat("s9", viewer="viewer:m2") == (False, "media_session_taken")
    sweep(5)
    assert _watched(accrual, "viewer:m2") == []
    assert watch.credited_seconds == 36  # m1 alone, still
    # Idle: no interaction for longer than idle_after stops the clock until one comes.
    watch.idle_after = 60
    sweep(60)
    assert watch.credited_seconds == 36
    clock.now += 5
    assert beat("s1", session="other") == (False, "idle")
    sweep(5)
    assert watch.credited_seconds == 36
    watch.interacted(show, "viewer:m1")  # a chat message, a reaction: the clock runs again
    sweep(5)
    assert watch.credited_seconds == 41
    watch.idle_after = 30
    sweep(31)
    assert watch.credited_seconds == 41
    assert beat("s1", session="other", active=True) == (False, "resumed")
    sweep(5)
    assert watch.credited_seconds == 46
    # A socket that goes is settled up to the moment it goes; then it earns nothing.
    clock.now += 3
    watch.forget("s1")
    assert watch.credited_seconds == 49
    assert "s1" not in watch.states
    sweep(5)
    assert watch.credited_seconds == 49
    # The show ends: every socket in it is settled and dropped, and its interactions too.
    assert beat("s2", viewer="viewer:m3", session="shared") == (False, "first_beat")
    assert beat("s3", viewer="viewer:m4", session=None) == (False, "no_media_session")
    other_show = str(uuid.uuid4())
    assert watch.beat(
        "s4", other_show, "viewer:m5", "m5", playing=True, visible=True, session="x", active=False
    ) == (False, "no_media")
    clock.now += 4
    watch.forget_show(show)
    assert _watched(accrual, "viewer:m3") == [(clock.now - 4, clock.now)]
    assert watch.credited_seconds == 53
    assert set(watch.states) == {"s4"}
    assert all(key[0] != show for key in watch.active)
    sweep(5)
    assert watch.credited_seconds == 53
    # Every credited second is the accrual's too.
    total = sum(end - start for a in accrual.pending.values() for start, end in a.spans())
    assert total == watch.credited_seconds


def test_a_shows_own_idle_limit_applies_once_the_accrual_reads_its_rules() -> None:
    accrual = Accrual(lambda: None)  # type: ignore[arg-type,return-value]
    clock = Clock()
    watch = WatchClock(accrual, lambda show, session: True, clock=clock)
    show, other = str(uuid.uuid4()), str(uuid.uuid4())
    for sid, show_id in (("a", show), ("b", other)):
        assert watch.beat(
            sid, show_id, f"viewer:{sid}", sid, playing=True, visible=True, session=sid, active=True
        ) == (False, "first_beat")
    watch.use_rules(uuid.UUID(show), EarningRules(idle_after_minutes=2))
    clock.now += 100
    watch.sweep()
    assert watch.credited_seconds == 200  # both within their limits
    clock.now += 40
    watch.sweep()  # 140 s without an interaction: past this show's 2 minutes, not the default
    assert watch.credited_seconds == 240
    assert watch.beat(
        "a", show, "viewer:a", "a", playing=True, visible=True, session="a", active=False
    ) == (False, "idle")
    watch.forget_show(show)  # an ended show's limit goes with it
    assert str(show) not in watch.idle_limits


def test_the_watch_clock_credits_only_sockets_still_in_the_room() -> None:
    accrual = Accrual(lambda: None)  # type: ignore[arg-type,return-value]
    clock = Clock()
    show = str(uuid.uuid4())
    joined = {"s1": show, "s2": show}
    watch = WatchClock(accrual, lambda show, session: True, clock=clock, joined=joined)
    for sid, session in (("s1", "a"), ("s2", "b")):
        watch.beat(
            sid,
            show,
            f"viewer:{sid}",
            sid,
            playing=True,
            visible=True,
            session=session,
            active=False,
        )
    clock.now += 5
    watch.sweep()
    assert watch.credited_seconds == 10
    del joined["s2"]  # it left the room, or was removed (banned): its player plays on
    clock.now += 5
    watch.sweep()
    assert watch.credited_seconds == 15
    assert len(_watched(accrual, "viewer:s2")) == 1
    joined["s2"] = show  # back in the room: time outside it is still not credited
    clock.now += 5
    watch.sweep()
    assert watch.credited_seconds == 25


def test_two_tabs_of_one_member_never_count_twice() -> None:
    assert credit_after([(0, 10), (5, 15), (20, 30)], until=-1) == (25, 30)
    assert credit_after([(0, 10), (5, 15)], until=12) == (3, 15)
    assert credit_after([(0, 10)], until=10) == (0, 10)


# --- accrual: 2,000 viewers, the ledger equals the rules ----------------------------------


async def test_a_simulated_show_of_2000_viewers_earns_exactly_what_the_rules_give(
    db: Database,
) -> None:
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    rules = EarningRules()
    rng = random.Random(7)
    start = time.time() - 4 * 3600
    expected_watch: dict[str, list[tuple[float, float]]] = defaultdict(list)
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    members = [f"sim-{n}" for n in range(2000)]
    guests = [f"g_{n}" for n in range(100)]
    for member in members:
        accrual.joined(show_id, f"viewer:{member}", member, None)
    for guest in guests:
        accrual.joined(show_id, f"guest:{guest}", None, None)
    # Four flush rounds of 40 minutes: viewers come and go, background the tab (a gap),
    # watch on two devices at once (overlap), chat, ask and react.
    for round_no in range(4):
        base = start + round_no * 2400
        for member in members:
            viewer = f"viewer:{member}"
            if rng.random() < 0.2:
                continue  # away this round
            a = base + rng.uniform(0, 600)
            b = a + rng.uniform(0, 1800)
            intervals = [(a, b)]
            if rng.random() < 0.3:  # a second device, overlapping
                c = rng.uniform(a, b)
                intervals.append((c, c + rng.uniform(0, 900)))
            if rng.random() < 0.3:  # backgrounded, then back
                d = b + rng.uniform(60, 300)
                intervals.append((d, d + rng.uniform(0, 300)))
            for i in intervals:
                accrual.watched(show_id, viewer, member, *i)
                expected_watch[member].append(i)
            for what, cap in (("chats", 6), ("questions", 2)):
                n = rng.randint(0, cap)
                counts[member][what] += n
                for _ in range(n):
                    (accrual.chatted if what == "chats" else accrual.asked)(show_id, viewer, member)
            taps = rng.randint(0, 25)
            counts[member]["reactions"] += taps
            if taps:
                accrual.reacted(show_id, viewer, member, taps)
        for guest in guests:
            accrual.watched(show_id, f"guest:{guest}", None, base, base + 600)
        await accrual.flush()

    def expected(member: str) -> dict[str, int]:
        seconds, _ = credit_after(expected_watch[member], -1.0)
        # Watch time is stored in whole milliseconds per flush; minutes from that.
        c = counts[member]
        out = {
            "first_join": rules.first_join_points,
            "watch": min(int(seconds * 1000) // 60_000, rules.watch_cap_minutes)
            * rules.watch_points_per_minute,
            "chat": min(c["chats"], rules.chat_cap) * rules.chat_points,
            "question": min(c["questions"], rules.question_cap) * rules.question_points,
            "reaction": min(c["reactions"] // 10, rules.reaction_cap) * rules.reaction_points,
        }
        return {k: v for k, v in out.items() if v}

    got = await ledger_sums(db)
    mismatched = [m for m in members if got.get(m, {}) != expected(m)]
    # Milliseconds are truncated once per flush, so a total may fall a hair short of a
    # minute boundary the exact sum crosses; allow that one-minute edge, nothing else.
    for member in mismatched:
        mine, want = dict(got.get(member, {})), expected(member)
        assert abs(mine.pop("watch", 0) - want.pop("watch", 0)) <= 1, member
        assert mine == want, member
    assert len(mismatched) <= 5, mismatched[:5]
    await balances_match_entries(db)
    assert not any(g in got for g in guests)  # guests earn nothing
    async with db.read() as session:
        guests_watched = await session.scalar(
            select(func.sum(models.ShowAttendance.watched_ms)).where(
                models.ShowAttendance.viewer.like("guest:%")
            )
        )
    assert guests_watched == 100 * 4 * 600 * 1000  # but their watching is counted

    # Flushing again with nothing new writes nothing; the same activity again earns nothing
    # beyond the caps and never re-credits time already credited.
    before = await ledger_sums(db)
    member = members[0]
    for i in expected_watch[member]:
        accrual.watched(show_id, f"viewer:{member}", member, *i)
    await accrual.flush()
    assert await ledger_sums(db) == before


async def test_a_failed_flush_keeps_its_activity_and_credits_it_once(db: Database) -> None:
    show_id = await live_show_id(db)
    accrual = Accrual(lambda: db)
    now = time.time()
    accrual.joined(show_id, "viewer:crash", "crash", None)
    accrual.watched(show_id, "viewer:crash", "crash", now - 130, now)

    def broken() -> Database:
        raise ConnectionError("database went away")

    accrual._db = broken  # type: ignore[method-assign]
    try:
        await accrual.flush()
    except ConnectionError:
        pass
    else:
        raise AssertionError("the flush should have failed")
    accrual._db = lambda: db  # type: ignore[method-assign]
    accrual.chatted(show_id, "viewer:crash", "crash")  # arrived while the database was down
    await accrual.flush()
    await accrual.flush()
    assert (await ledger_sums(db))["crash"] == {"first_join": 10, "watch": 2, "chat": 1}


# --- the ledger's invariants ----------------------------------------------------------------

OPS = st.lists(
    st.tuples(
        st.sampled_from(["adjust", "redeem", "replay"]),
        st.integers(min_value=-50, max_value=80),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS)
async def test_ledger_invariants(db: Database, ops: list[tuple[str, int]]) -> None:
    member = f"prop-{uuid.uuid4().hex[:8]}"
    await identity.do_register_member(db, Principal(Role.VIEWER, member))
    done: list[tuple[str, str, int]] = []
    for n, (op, points) in enumerate(ops):
        balance = (await ledger.access_points(db, member)).balance
        if op == "replay" and done:
            kind, key, amount = done[n % len(done)]
            before = await ledger_sums(db)
            if kind == "adjust":
                _, created = await ledger.do_adjust(db, member, amount, key=key, note="n")
            else:
                _, created = await ledger.do_redeem(
                    db, member, amount, key=key, channel="pos", reference=None
                )
            assert not created and await ledger_sums(db) == before  # replays change nothing
            continue
        key = f"k{n}"
        try:
            if op == "redeem":
                await ledger.do_redeem(
                    db, member, abs(points), key=key, channel="pos", reference=None
                )
                done.append(("redeem", key, abs(points)))
            else:
                await ledger.do_adjust(db, member, points, key=key, note="n")
                done.append(("adjust", key, points))
        except ledger.Conflict:
            assert balance + (points if op == "adjust" else -abs(points)) < 0
        except ledger.InvalidValue:
            assert points == 0
        after = (await ledger.access_points(db, member)).balance
        assert after >= 0
    await balances_match_entries(db)


# --- over HTTP ------------------------------------------------------------------------------


async def test_redemptions_at_the_till(api: Api, db: Database, admin: str) -> None:
    await identity.do_register_member(db, Principal(Role.VIEWER, "till-1"))
    url = POINTS.format("till-1")
    added = await api.call(
        "POST",
        f"{url}/adjustments",
        auth=admin,
        json_body={"points": 120, "note": "welcome gift"},
        headers={"Idempotency-Key": "adj-1"},
    )
    assert added.status == 201 and added.body["balance_after"] == 120
    key = {"Idempotency-Key": "pos-receipt-991"}
    body = {"points": 100, "channel": "pos", "reference": "receipt 991"}
    spent = await api.call("POST", f"{url}/redemptions", auth=admin, json_body=body, headers=key)
    assert spent.status == 201 and spent.body["points"] == -100
    assert spent.body["kind"] == "redeem" and spent.body["balance_after"] == 20
    again = await api.call("POST", f"{url}/redemptions", auth=admin, json_body=body, headers=key)
    assert again.status == 200 and again.body["id"] == spent.body["id"]
    before = await snapshot(db)
    other = await api.call(
        "POST", f"{url}/redemptions", auth=admin, json_body={**body, "points": 5}, headers=key
    )
    assert other.status == 422 and "Idempotency-Key" in other.body["detail"]
    too_much = await api.call(
        "POST",
        f"{url}/redemptions",
        auth=admin,
        json_body={"points": 21, "channel": "eshop"},
        headers={"Idempotency-Key": "eshop-1"},
    )
    assert too_much.status == 409 and "the balance is 20" in too_much.body["detail"]
    assert await snapshot(db) == before
    balance = await api.call("GET", url, auth=admin)
    assert balance.body["balance"] == 20 and balance.body["tier"] == "Member"
    history = await api.call("GET", f"{url}/entries", auth=admin)
    assert [e["points"] for e in history.body["items"]] == [-100, 120]
    mine = await api.call("GET", "/api/v1/me/points", auth=viewer_token("till-1"))
    assert mine.status == 200 and mine.body["balance"] == 20
    new = await api.call("GET", "/api/v1/me/points", auth=viewer_token("never-seen"))
    assert new.body["balance"] == 0
    assert (await api.call("GET", url, auth=viewer_token("till-1"))).status == 403


async def test_rules_are_versioned_and_shows_override_them(api: Api, admin: str) -> None:
    show = await create_show(api, admin)
    first = await api.call("GET", "/api/v1/loyalty/rules", auth=admin)
    assert first.body["version"] == 0 and first.body["rules"]["watch_points_per_minute"] == 1
    changed = await api.call(
        "PUT", "/api/v1/loyalty/rules", auth=admin, json_body={"chat_points": 2}
    )
    assert changed.body["version"] == 1 and changed.body["rules"]["chat_points"] == 2
    doubled = await api.call(
        "PUT",
        f"/api/v1/shows/{show['id']}/loyalty-rules",
        auth=admin,
        json_body={"watch_points_per_minute": 2},
    )
    assert doubled.status == 200, doubled.text
    assert doubled.body["rules"]["watch_points_per_minute"] == 2
    assert doubled.body["rules"]["chat_points"] == 2  # the brand's current rule
    assert doubled.body["overrides"] == {"watch_points_per_minute": 2}
    cleared = await api.call(
        "PUT", f"/api/v1/shows/{show['id']}/loyalty-rules", auth=admin, json_body={}
    )
    assert cleared.body["rules"]["watch_points_per_minute"] == 1


async def test_purchases_earn_and_cancellations_reverse_but_never_below_zero(
    api: Api, db: Database, admin: str
) -> None:
    show = await create_show(api, admin)
    await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    await create_product(
        api,
        admin,
        "GIFT-1",
        price={"amount_minor": 50000, "currency": "HKD"},
        compare_at_price=None,
    )
    buyer = viewer_token("shopper", "Shopper")
    order = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=buyer,
        json_body={"show_id": show["id"], "items": [{"sku": "GIFT-1", "quantity": 1}]},
    )
    placed = await api.call(
        "POST",
        f"/api/v1/orders/{order.body['id']}/confirm",
        auth=buyer,
        json_body={"contact": {"name": "S"}, "payment_method": "pay_later"},
    )
    assert placed.status == 200
    points = await api.call("GET", POINTS.format("shopper"), auth=admin)
    assert points.body["balance"] == 500  # HK$500 at one point per dollar
    spent = await api.call(
        "POST",
        f"{POINTS.format('shopper')}/redemptions",
        auth=admin,
        json_body={"points": 450, "channel": "pos"},
        headers={"Idempotency-Key": "spend"},
    )
    assert spent.status == 201
    cancelled = await api.call("POST", f"/api/v1/orders/{order.body['id']}/cancel", auth=admin)
    assert cancelled.status == 200
    history = await api.call("GET", f"{POINTS.format('shopper')}/entries", auth=admin)
    assert [(e["kind"], e["points"]) for e in history.body["items"]] == [
        ("reverse", -50),  # only what was left: what was spent stays spent
        ("redeem", -450),
        ("earn", 500),
    ]
    await balances_match_entries(db)


async def test_tiers_go_up_and_down_and_points_expire(db: Database) -> None:
    await identity.do_register_member(db, Principal(Role.VIEWER, "tiered"))
    await webhooks.do_create_endpoint(db, url="http://127.0.0.1:9/crm", event_types=None)
    await ledger.do_adjust(db, "tiered", 600, key="a", note="promo")
    assert (await ledger.access_points(db, "tiered")).tier == "Silver"
    async with db.read() as session:
        changes = list(
            await session.scalars(
                select(models.WebhookMessage.body).where(
                    models.WebhookMessage.event_type == "member.tier_changed"
                )
            )
        )
    assert any(
        json.loads(c)["data"]["to"] == "Silver" and json.loads(c)["data"]["direction"] == "upgrade"
        for c in changes
    )
    await ledger.do_redeem(db, "tiered", 100, key="r", channel="pos", reference=None)
    # Thirteen months later the rest expires, oldest spent first, and the tier falls back.
    later = utcnow() + timedelta(days=30 * 13)
    assert await ledger.do_expire_points(db, later) == 500
    assert await ledger.do_expire_points(db, later) == 0  # once
    async with db.transaction() as session:
        rules, _ = await ledger.read_rules(session)
        member = await ledger.member_row(session, "tiered")
        row = await ledger.points_row(session, member.id, rules)
        await ledger.refresh_tiers(session, [row], rules, later)
    points = await ledger.access_points(db, "tiered")
    assert (points.balance, points.tier) == (0, "Member")
    await balances_match_entries(db)


def test_rules_reject_nonsense() -> None:
    for bad in ({"chat_points": -1}, {"tiers": []}, {"badges": "yes"}, {"x": 1}):
        try:
            check_rules(bad)
        except ledger.InvalidValue:
            continue
        raise AssertionError(bad)
    assert check_rules({"chat_cap": 3}).chat_cap == 3


async def test_ending_a_show_queues_its_summary_for_the_crm(
    api: Api, db: Database, admin: str
) -> None:
    await webhooks.do_create_endpoint(
        db, url="http://127.0.0.1:9/crm", event_types=["show.summary"]
    )
    show = await create_show(api, admin)
    await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    ended = await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=admin)
    assert ended.status == 200
    async with db.read() as session:
        [body] = list(
            await session.scalars(
                select(models.WebhookMessage.body).where(
                    models.WebhookMessage.event_type == "show.summary"
                )
            )
        )
    summary = json.loads(body)
    assert summary["type"] == "show.summary" and summary["data"]["show_id"] == show["id"]
    assert summary["data"]["state"] == "ended" and "viewers" in summary["data"]
