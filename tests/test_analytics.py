"""Show analytics and engagement exports: exact numbers from a show built through the
services (and rows where no service writes them), in JSON and CSV, on both backends; who
may read them; and CSV that a spreadsheet cannot turn into a formula."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, update

from server.domain.chat import BannedWords
from server.domain.engagement import QuestionState
from server.domain.orders import LineRequest, PaymentMethod
from server.http.analytics import cell, major
from server.services import analytics, chat, engagement, identity, moderation, orders
from server.services.funnel import FunnelBoard, FunnelStep
from server.services.identity import Principal, Role
from server.store import models
from server.store.db import Database
from tests.conftest import Api, create_product, create_show, host_token, viewer_token

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
INJECTED = '=HYPERLINK("http://evil.example","x")'  # a member id a spreadsheet would run


def member(subject: str) -> Principal:
    return Principal(Role.VIEWER, subject, subject)


def guest(subject: str) -> Principal:
    return Principal(Role.GUEST, subject, "Guest")


def hkd(minor: int) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": "HKD"}


async def buy(
    db: Database,
    buyer: Principal,
    show_id: uuid.UUID | None,
    lines: list[tuple[str, int]],
    *,
    then: str = "confirm",
) -> uuid.UUID:
    record, _ = await orders.do_checkout(
        db,
        buyer,
        [LineRequest(sku, n) for sku, n in lines],
        show_id=show_id,
        idempotency_key=None,
        reservation=timedelta(minutes=10),
        max_quantity=10,
    )
    if then in ("confirm", "paid"):
        await orders.do_confirm(
            db,
            record.id,
            buyer,
            contact={"name": buyer.name},
            delivery=None,
            payment_method=PaymentMethod.PAY_LATER,
        )
    if then == "paid":
        await orders.do_mark_paid(db, record.id)
    if then == "cancel":
        await orders.do_cancel(db, record.id)
    return record.id


def attendance(
    show_id: uuid.UUID, viewer: str, member_id: uuid.UUID | None, minute: int, **counts: Any
) -> models.ShowAttendance:
    values: dict[str, Any] = {
        "watched_ms": 0,
        "chats": 0,
        "questions": 0,
        "answered": 0,
        "reactions": 0,
        "referrals": 0,
        "points": 0,
        **counts,
    }
    return models.ShowAttendance(
        show_id=show_id,
        viewer=viewer,
        member_id=member_id,
        first_seen=T0 + timedelta(minutes=minute),
        last_seen=T0 + timedelta(minutes=minute + 30),
        **values,
    )


async def build_show(api: Api, db: Database, admin: str) -> dict[str, Any]:
    """A live show with three members and three guests in the room (and its host), their
    measured engagement, chat, questions, reactions, funnel steps and orders."""
    show = await create_show(api, admin, title="冬日直播 Winter live", currency="HKD")
    started = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    assert started.status == 200, started.text
    show_id = uuid.UUID(show["id"])
    await create_product(api, admin, "TEA-1", price=hkd(10000), compare_at_price=None, stock=20)
    await create_product(api, admin, "CAP-1", price=hkd(5000), compare_at_price=None, stock=20)
    mei, kit, odd = member("mei"), member("kit"), member(INJECTED)
    ids = {p.subject: (await identity.do_register_member(db, p)).id for p in (mei, kit, odd)}
    host = Principal(Role.HOST, "host-key", "Host", show_id)
    everyone = [mei, kit, odd, guest("g-1"), guest("g-2"), guest("g-3"), host]
    await moderation.do_register_participants(
        db,
        [
            moderation.Participant(show_id, f"a{n}", p.role.value, p.subject, p.name)
            for n, p in enumerate(everyone)
        ],
    )
    # What the live room measured (written by services/accrual.py in production).
    async with db.transaction() as session:
        session.add_all(
            [
                attendance(
                    show_id,
                    "viewer:mei",
                    ids["mei"],
                    1,
                    watched_ms=125_500,
                    chats=3,
                    questions=1,
                    answered=1,
                    reactions=12,
                    referrals=1,
                    points=40,
                ),
                attendance(
                    show_id,
                    "viewer:kit",
                    ids["kit"],
                    2,
                    watched_ms=60_000,
                    chats=1,
                    referred_by=ids["mei"],
                    points=15,
                ),
                attendance(show_id, f"viewer:{INJECTED}", ids[INJECTED], 3, reactions=4),
                attendance(show_id, "guest:g-1", None, 4, watched_ms=30_000, questions=1),
            ]
        )
        session.add_all(
            [
                models.ShowMinute(show_id=show_id, minute=3, viewers=2),
                models.ShowMinute(show_id=show_id, minute=0, viewers=3),
                models.ShowMinute(show_id=show_id, minute=1, viewers=4),
            ]
        )
        await session.execute(
            update(models.Show).where(models.Show.id == show_id).values(peak_viewers=5)
        )
    banned = BannedWords()
    posted = await chat.do_post_chats(
        db,
        show_id,
        [(mei, "早晨!"), (mei, "how much?"), (kit, "+1"), (host, "Welcome"), (mei, "spam")],
        banned,
    )
    last = posted[-1]
    assert isinstance(last, chat.ChatRecord)
    await moderation.do_delete_message(db, show_id, host, last.id)
    asked = await engagement.do_ask(db, show_id, mei, "Is it decaf?", banned)
    await engagement.do_ask(db, show_id, guest("g-1"), "Shipping to Macau?", banned)
    await engagement.do_mark(db, show_id, asked.id, QuestionState.ANSWERED)
    await engagement.do_add_reactions(db, {show_id: {"heart": 7, "clap": 2}})
    board = FunnelBoard(lambda: db)
    for who in ("mei", "kit", INJECTED, "mei"):  # mei's second sighting is not counted
        board.note(show_id, "TEA-1", FunnelStep.CARD_SHOWN, member=who)
    board.note(show_id, "CAP-1", FunnelStep.CARD_SHOWN, member="mei")
    for who in ("mei", "kit"):
        board.note(show_id, "TEA-1", FunnelStep.CARD_OPENED, member=who)
    for sku in ("TEA-1", "TEA-1", "CAP-1"):
        board.note(show_id, sku, FunnelStep.ADDED_TO_CART)
    for sku in ("TEA-1", "TEA-1", "CAP-1", "CAP-1"):
        board.note(show_id, sku, FunnelStep.CHECKOUT_STARTED)
    await board.flush()
    # Sold: mei 2 x TEA (HK$200, placed), kit TEA + CAP (HK$150, paid) and CAP (HK$50).
    await buy(db, mei, show_id, [("TEA-1", 2)])
    await buy(db, kit, show_id, [("TEA-1", 1), ("CAP-1", 1)], then="paid")
    await buy(db, kit, show_id, [("CAP-1", 1)])
    # Not sold, or not this show's.
    await buy(db, odd, show_id, [("TEA-1", 1)], then="reserve")
    await buy(db, guest("g-2"), show_id, [("CAP-1", 3)], then="cancel")
    await buy(db, member("elsewhere"), None, [("TEA-1", 1)])
    return {"show": started.body, "show_id": show_id, "members": ids}


EXPECTED_ANALYTICS: dict[str, Any] = {
    "title": "冬日直播 Winter live",
    "state": "live",
    "currency": "HKD",
    "ended_at": None,
    # Three members and three guests joined; the host does not count.
    "viewers": {"unique": 6, "members": 3, "guests": 3, "peak_concurrent": 5},
    # 125.5 + 60 + 0 + 30 s; three viewers watched at all.
    "watch_time": {
        "total_seconds": 215.5,
        "watchers": 3,
        "average_seconds_per_watcher": 71.8,
        "average_seconds_per_viewer": 35.9,
    },
    "retention": [
        {"minute": 0, "viewers": 3},
        {"minute": 1, "viewers": 4},
        {"minute": 3, "viewers": 2},
    ],
    "chat": {"messages": 4, "deleted": 1},
    "questions": {"asked": 2, "answered": 1},
    "reactions": {"total": 9, "by_kind": {"clap": 2, "heart": 7}},
    "sales": {
        "impressions": 4,
        "clicks": 2,
        "added_to_cart": 3,
        "checkouts_started": 4,
        "orders": 3,
        "units": 5,
        "buyers": 2,
        "revenue": [hkd(40000)],
    },
    "conversion": {"orders_per_viewer": 0.5, "buyers_per_viewer": 0.3333},
    # Purchase points (HK$1 = 1 point by default): 200 + 150 + 50.
    "points_earned": 400,
}


def read_csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff"), "the BOM tells Excel the file is UTF-8"
    assert "\r\n" in text
    return list(csv.reader(io.StringIO(text[1:], newline="")))


async def test_show_analytics_in_json_and_csv(api: Api, db: Database, admin: str) -> None:
    built = await build_show(api, db, admin)
    show_id = built["show_id"]
    host = await host_token(db, str(show_id))

    answer = await api.call("GET", f"/api/v1/shows/{show_id}/analytics", auth=host)
    assert answer.status == 200, answer.text
    body = answer.body
    assert body.pop("show_id") == str(show_id)
    started_at = built["show"]["started_at"]
    assert started_at is not None and body.pop("started_at") == started_at
    assert body == EXPECTED_ANALYTICS

    exported = await api.call("GET", f"/api/v1/shows/{show_id}/analytics.csv", auth=admin)
    assert exported.status == 200
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert exported.headers["Content-Disposition"] == (
        f'attachment; filename="show-{show_id}-analytics.csv"'
    )
    rows = read_csv(exported.text)
    assert rows[0] == ["metric", "value"]
    assert all(len(row) == 2 for row in rows)
    metrics = dict(rows[1:])
    assert len(metrics) == len(rows) - 1, "every metric once"
    assert metrics.pop("started_at") == started_at
    assert metrics == {
        "show_id": str(show_id),
        "show_title": "冬日直播 Winter live",
        "show_state": "live",
        "ended_at": "",
        "viewers_unique": "6",
        "viewers_members": "3",
        "viewers_guests": "3",
        "viewers_peak_concurrent": "5",
        "watch_seconds_total": "215.5",
        "watchers": "3",
        "watch_seconds_avg_per_watcher": "71.8",
        "watch_seconds_avg_per_viewer": "35.9",
        "chat_messages": "4",
        "chat_messages_deleted": "1",
        "questions_asked": "2",
        "questions_answered": "1",
        "reactions_total": "9",
        "reactions_clap": "2",
        "reactions_heart": "7",
        "product_impressions": "4",
        "product_clicks": "2",
        "added_to_cart": "3",
        "checkouts_started": "4",
        "orders": "3",
        "units_sold": "5",
        "buyers": "2",
        "revenue_HKD": "400.00",
        "revenue_HKD_minor": "40000",
        "conversion_orders_per_viewer": "0.5",
        "conversion_buyers_per_viewer": "0.3333",
        "points_earned": "400",
        "retention_minute_0": "3",
        "retention_minute_1": "4",
        "retention_minute_3": "2",
    }
    # The retention curve closes the file, in minute order.
    assert [r[0] for r in rows[-3:]] == [f"retention_minute_{m}" for m in (0, 1, 3)]


async def test_show_engagement_page_and_export(api: Api, db: Database, admin: str) -> None:
    built = await build_show(api, db, admin)
    show_id = built["show_id"]
    path = f"/api/v1/shows/{show_id}/engagement"

    first = await api.call("GET", path, auth=admin)
    assert first.status == 200
    assert first.body["total"] == 4 and (first.body["limit"], first.body["offset"]) == (20, 0)
    mei, kit, odd, g1 = first.body["items"]  # in the order they arrived
    assert mei == {
        "member_id": "mei",
        "viewer_kind": "member",
        "watched_seconds": 125.5,
        "chats": 3,
        "questions": 1,
        "answered": 1,
        "reactions": 12,
        "referrals": 1,
        "referred_by": None,
        "points": 40,
        "first_seen": "2026-12-01T12:01:00Z",
        "last_seen": "2026-12-01T12:31:00Z",
    }
    assert (kit["member_id"], kit["referred_by"], kit["watched_seconds"]) == ("kit", "mei", 60)
    assert (odd["member_id"], odd["reactions"]) == (INJECTED, 4)
    assert g1["member_id"] is None and g1["viewer_kind"] == "guest" and g1["questions"] == 1

    page = await api.call("GET", f"{path}?limit=2&offset=1", auth=admin)
    assert [i["member_id"] for i in page.body["items"]] == ["kit", INJECTED]
    assert (page.body["total"], page.body["limit"], page.body["offset"]) == (4, 2, 1)

    exported = await api.call("GET", f"{path}.csv", auth=admin)
    assert exported.status == 200
    assert exported.headers["Content-Type"] == "text/csv; charset=utf-8"
    rows = read_csv(exported.text)
    assert rows[0] == [
        "member_id",
        "viewer_kind",
        "watched_seconds",
        "chats",
        "questions",
        "answered",
        "reactions",
        "referrals",
        "referred_by",
        "points",
        "first_seen",
        "last_seen",
    ]
    assert rows[1:] == [
        [
            "mei",
            "member",
            "125.5",
            "3",
            "1",
            "1",
            "12",
            "1",
            "",
            "40",
            "2026-12-01T12:01:00Z",
            "2026-12-01T12:31:00Z",
        ],
        [
            "kit",
            "member",
            "60.0",
            "1",
            "0",
            "0",
            "0",
            "0",
            "mei",
            "15",
            "2026-12-01T12:02:00Z",
            "2026-12-01T12:32:00Z",
        ],
        # A member id that starts like a formula stays text; quotes inside are escaped.
        [
            "'" + INJECTED,
            "member",
            "0.0",
            "0",
            "0",
            "0",
            "4",
            "0",
            "",
            "0",
            "2026-12-01T12:03:00Z",
            "2026-12-01T12:33:00Z",
        ],
        [
            "",
            "guest",
            "30.0",
            "0",
            "1",
            "0",
            "0",
            "0",
            "",
            "0",
            "2026-12-01T12:04:00Z",
            "2026-12-01T12:34:00Z",
        ],
    ]
    assert '"\'=HYPERLINK(""http://evil.example"",""x"")"' in exported.text


async def test_member_engagement_across_shows(api: Api, db: Database, admin: str) -> None:
    built = await build_show(api, db, admin)
    first_id, mei = built["show_id"], built["members"]["mei"]
    # An earlier show with a title that would be a formula in a spreadsheet.
    earlier = await create_show(api, admin, title="-1+1 @sale", currency="HKD")
    earlier_id = uuid.UUID(earlier["id"])
    async with db.transaction() as session:
        row = attendance(earlier_id, "viewer:mei", mei, -60 * 24, watched_ms=1_234, chats=2)
        session.add(row)

    answer = await api.call("GET", "/api/v1/members/mei/engagement", auth=admin)
    assert answer.status == 200
    assert answer.body["member_id"] == "mei"
    latest, older = answer.body["items"]
    assert latest["show_id"] == str(first_id) and latest["show_title"] == "冬日直播 Winter live"
    assert (latest["watched_seconds"], latest["chats"], latest["points"]) == (125.5, 3, 40)
    assert latest["show_state"] == "live" and latest["show_started_at"] is not None
    assert older == {
        "show_id": str(earlier_id),
        "show_title": "-1+1 @sale",
        "show_state": "scheduled",
        "show_started_at": None,
        "watched_seconds": 1.234,
        "chats": 2,
        "questions": 0,
        "answered": 0,
        "reactions": 0,
        "referrals": 0,
        "points": 0,
        "first_seen": "2026-11-30T12:00:00Z",
        "last_seen": "2026-11-30T12:30:00Z",
    }

    exported = await api.call("GET", "/api/v1/members/mei/engagement.csv", auth=admin)
    assert exported.status == 200
    assert exported.headers["Content-Disposition"] == (
        'attachment; filename="member-mei-engagement.csv"'
    )
    rows = read_csv(exported.text)
    assert rows[0][:5] == [
        "show_id",
        "show_title",
        "show_state",
        "show_started_at",
        "watched_seconds",
    ]
    assert [r[1] for r in rows[1:]] == ["冬日直播 Winter live", "'-1+1 @sale"]
    assert rows[2] == [
        str(earlier_id),
        "'-1+1 @sale",
        "scheduled",
        "",
        "1.234",
        "2",
        "0",
        "0",
        "0",
        "0",
        "0",
        "2026-11-30T12:00:00Z",
        "2026-11-30T12:30:00Z",
    ]

    # A member id with characters a URL must escape, and one who attended nothing.
    odd = await api.call("GET", "/api/v1/members/%3DHYPERLINK%28%29/engagement", auth=admin)
    assert odd.status == 404
    await identity.do_register_member(db, member("會員 007"))
    quiet = await api.call("GET", "/api/v1/members/%E6%9C%83%E5%93%A1%20007/engagement", auth=admin)
    assert quiet.status == 200 and quiet.body == {"member_id": "會員 007", "items": []}
    quiet_csv = await api.call(
        "GET", "/api/v1/members/%E6%9C%83%E5%93%A1%20007/engagement.csv", auth=admin
    )
    assert len(read_csv(quiet_csv.text)) == 1  # the header only
    assert 'filename="member-___007-engagement.csv"' in quiet_csv.headers["Content-Disposition"]


async def test_a_new_show_has_zeros_not_errors(api: Api, db: Database, admin: str) -> None:
    show = await create_show(api, admin)
    answer = await api.call("GET", f"/api/v1/shows/{show['id']}/analytics", auth=admin)
    assert answer.status == 200
    body = answer.body
    assert body["viewers"] == {"unique": 0, "members": 0, "guests": 0, "peak_concurrent": 0}
    assert body["watch_time"] == {
        "total_seconds": 0,
        "watchers": 0,
        "average_seconds_per_watcher": 0,
        "average_seconds_per_viewer": 0,
    }
    assert body["conversion"] == {"orders_per_viewer": 0, "buyers_per_viewer": 0}
    assert body["retention"] == [] and body["sales"]["revenue"] == []
    assert body["reactions"] == {"total": 0, "by_kind": {}} and body["points_earned"] == 0
    assert (body["state"], body["started_at"]) == ("scheduled", None)
    engagement_page = await api.call("GET", f"/api/v1/shows/{show['id']}/engagement", auth=admin)
    assert engagement_page.body == {"items": [], "total": 0, "limit": 20, "offset": 0}
    exported = await api.call("GET", f"/api/v1/shows/{show['id']}/engagement.csv", auth=admin)
    assert len(read_csv(exported.text)) == 1


async def test_who_may_read_analytics(api: Api, db: Database, admin: str) -> None:
    show = await create_show(api, admin)
    other = await create_show(api, admin, title="Other")
    base = f"/api/v1/shows/{show['id']}"
    own_host, other_host = await host_token(db, show["id"]), await host_token(db, other["id"])
    viewer = viewer_token("mei")
    await api.call("GET", "/api/v1/me", auth=viewer)  # registers the member

    for path in (f"{base}/analytics", f"{base}/analytics.csv"):
        assert (await api.call("GET", path, auth=own_host)).status == 200
        assert (await api.call("GET", path, auth=await host_token(db, None))).status == 200
        refused = await api.call("GET", path, auth=other_host)
        assert refused.status == 403 and "another show" in refused.body["detail"]
        assert (await api.call("GET", path, auth=viewer)).status == 403
        assert (await api.call("GET", path)).status == 401
    # Per-viewer rows name members: admins only.
    for path in (
        f"{base}/engagement",
        f"{base}/engagement.csv",
        "/api/v1/members/mei/engagement",
        "/api/v1/members/mei/engagement.csv",
    ):
        assert (await api.call("GET", path, auth=admin)).status == 200
        assert (await api.call("GET", path, auth=own_host)).status == 403
        assert (await api.call("GET", path, auth=viewer)).status == 403


async def test_unknown_show_or_member_is_404(api: Api, admin: str) -> None:
    missing = uuid.uuid4()
    for path in (
        f"/api/v1/shows/{missing}/analytics",
        f"/api/v1/shows/{missing}/analytics.csv",
        f"/api/v1/shows/{missing}/engagement",
        f"/api/v1/shows/{missing}/engagement.csv",
        "/api/v1/shows/not-a-uuid/analytics.csv",
    ):
        answer = await api.call("GET", path, auth=admin)
        assert answer.status == 404, path
        assert answer.headers["Content-Type"].startswith("application/problem+json")
    for path in ("/api/v1/members/nobody/engagement", "/api/v1/members/nobody/engagement.csv"):
        answer = await api.call("GET", path, auth=admin)
        assert answer.status == 404 and "nobody" in answer.body["detail"]


async def test_queries_do_not_grow_with_the_audience(api: Api, db: Database, admin: str) -> None:
    built = await build_show(api, db, admin)
    show_id = built["show_id"]
    statements: list[str] = []

    def count(*args: Any) -> None:
        if not str(args[2]).startswith("BEGIN"):  # SQLite's own transaction start
            statements.append(str(args[2]))

    async def run() -> list[int]:
        used = []
        for call in (
            analytics.access_show_analytics(db, show_id),
            analytics.list_show_engagement(db, show_id),
            analytics.list_member_engagement(db, "mei"),
        ):
            statements.clear()
            await call
            used.append(len(statements))
        return used

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        before = await run()
        async with db.transaction() as session:
            for n in range(50):
                session.add(
                    attendance(show_id, f"guest:more-{n}", None, 5, watched_ms=1000, chats=1)
                )
        after = await run()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    assert before == after
    # The show, the aggregates, the curve, the reactions, then the funnel's own reads.
    assert before[0] <= 10 and before[1] <= 3 and before[2] <= 2, before


def test_csv_cells() -> None:
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert cell(text) == "'" + text
    assert cell("Winter live") == "Winter live" and cell("會員") == "會員"
    assert cell(-5) == -5 and cell(0.25) == 0.25 and cell(None) == ""
    assert cell(datetime(2026, 12, 1, 20, 0, tzinfo=UTC)) == "2026-12-01T20:00:00Z"
    assert major(40000, "HKD") == "400.00" and major(5, "HKD") == "0.05"
    assert major(1200, "JPY") == "1200"
