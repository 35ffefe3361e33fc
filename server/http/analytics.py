"""Show analytics and engagement exports for the brand's staff, as JSON and as CSV.

CSV files are UTF-8 with a byte order mark (so Excel reads Chinese titles right), RFC 4180
quoting by the csv module, CRLF line ends, and a header row. Text that comes from outside
(titles, member ids, reaction kinds) cannot become a formula in a spreadsheet: a cell that
starts with =, +, -, @, a tab or a carriage return gets a leading single quote."""

from __future__ import annotations

import csv
import io
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web

from server.domain.money import SUPPORTED_CURRENCIES
from server.domain.webhooks import EventType
from server.http import views
from server.http.contract import PATH, QUERY
from server.keys import ACCRUAL, DATABASE, FUNNEL
from server.services import analytics, webhooks
from server.services.analytics import (
    MemberShowRecord,
    ShowAnalyticsRecord,
    ViewerEngagementRecord,
)

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- CSV ------------------------------------------------------------------------------------


def cell(value: Any) -> str | int | float:
    """One CSV cell: numbers as they are, times in UTC ISO 8601, None empty, and text that a
    spreadsheet would run as a formula quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return views.when(value) or ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_body(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([cell(v) for v in row] for row in rows)
    return (BOM + out.getvalue()).encode("utf-8")


def csv_reply(body: bytes, filename: str) -> web.Response:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return web.Response(
        body=body,
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{safe}"',
        },
    )


def major(amount_minor: int, currency: str) -> str:
    """Minor units as a decimal string in major units ("1234.50"), exactly."""
    exponent = SUPPORTED_CURRENCIES.get(currency, 2)
    if exponent == 0:
        return str(amount_minor)
    whole, fraction = divmod(amount_minor, 10**exponent)
    return f"{whole}.{fraction:0{exponent}d}"


# --- show analytics ---------------------------------------------------------------------------


def analytics_view(r: ShowAnalyticsRecord) -> dict[str, Any]:
    return {
        "show_id": str(r.show_id),
        "title": r.title,
        "state": r.state.value,
        "currency": r.currency,
        "started_at": views.when(r.started_at),
        "ended_at": views.when(r.ended_at),
        "viewers": {
            "unique": r.unique_viewers,
            "members": r.member_viewers,
            "guests": r.guest_viewers,
            "peak_concurrent": r.peak_viewers,
        },
        "watch_time": {
            "total_seconds": r.watch_seconds_total,
            "watchers": r.watchers,
            "average_seconds_per_watcher": r.watch_seconds_avg_per_watcher,
            "average_seconds_per_viewer": r.watch_seconds_avg_per_viewer,
        },
        "retention": [{"minute": m.minute, "viewers": m.viewers} for m in r.retention],
        "chat": {"messages": r.chat_messages, "deleted": r.chat_messages_deleted},
        "questions": {"asked": r.questions, "answered": r.questions_answered},
        "reactions": {"total": r.reactions_total, "by_kind": r.reactions},
        "sales": {
            "impressions": r.impressions,
            "clicks": r.clicks,
            "added_to_cart": r.added_to_cart,
            "checkouts_started": r.checkouts_started,
            "orders": r.orders,
            "units": r.units,
            "buyers": r.buyers,
            "revenue": [
                {"amount_minor": amount, "currency": currency}
                for currency, amount in r.revenue.items()
            ],
        },
        "conversion": {
            "orders_per_viewer": r.conversion_orders,
            "buyers_per_viewer": r.conversion_buyers,
        },
        "points_earned": r.points_earned,
    }


def analytics_rows(r: ShowAnalyticsRecord) -> list[tuple[str, Any]]:
    """The same numbers as the JSON, one `metric,value` row each, then the retention curve."""
    rows: list[tuple[str, Any]] = [
        ("show_id", str(r.show_id)),
        ("show_title", r.title),
        ("show_state", r.state.value),
        ("started_at", r.started_at),
        ("ended_at", r.ended_at),
        ("viewers_unique", r.unique_viewers),
        ("viewers_members", r.member_viewers),
        ("viewers_guests", r.guest_viewers),
        ("viewers_peak_concurrent", r.peak_viewers),
        ("watch_seconds_total", r.watch_seconds_total),
        ("watchers", r.watchers),
        ("watch_seconds_avg_per_watcher", r.watch_seconds_avg_per_watcher),
        ("watch_seconds_avg_per_viewer", r.watch_seconds_avg_per_viewer),
        ("chat_messages", r.chat_messages),
        ("chat_messages_deleted", r.chat_messages_deleted),
        ("questions_asked", r.questions),
        ("questions_answered", r.questions_answered),
        ("reactions_total", r.reactions_total),
        *((f"reactions_{kind}", count) for kind, count in r.reactions.items()),
        ("product_impressions", r.impressions),
        ("product_clicks", r.clicks),
        ("added_to_cart", r.added_to_cart),
        ("checkouts_started", r.checkouts_started),
        ("orders", r.orders),
        ("units_sold", r.units),
        ("buyers", r.buyers),
    ]
    for currency, amount in r.revenue.items():
        rows.append((f"revenue_{currency}", major(amount, currency)))
        rows.append((f"revenue_{currency}_minor", amount))
    rows += [
        ("conversion_orders_per_viewer", r.conversion_orders),
        ("conversion_buyers_per_viewer", r.conversion_buyers),
        ("points_earned", r.points_earned),
    ]
    rows += [(f"retention_minute_{m.minute}", m.viewers) for m in r.retention]
    return rows


async def _analytics(request: web.Request) -> ShowAnalyticsRecord:
    await request.app[FUNNEL].flush()  # what this process counted so far, too
    return await analytics.access_show_analytics(request.app[DATABASE], request[PATH]["show_id"])


async def announce_summary(app: web.Application, show_id: uuid.UUID) -> None:
    """When a show ends: write what this process still holds (engagement, funnel), then
    queue the `show.summary` webhook with the same document as GET .../analytics."""
    log = logging.getLogger("showroom.analytics")
    for flush, what in ((app[ACCRUAL].flush, "engagement"), (app[FUNNEL].flush, "funnel")):
        try:
            await flush()
        except Exception:
            log.exception("could not write pending %s before the show summary", what)
    db = app[DATABASE]
    document = analytics_view(await analytics.access_show_analytics(db, show_id))
    async with db.transaction() as session:
        await webhooks.enqueue(session, EventType.SHOW_SUMMARY, document)


async def get_show_analytics(request: web.Request) -> web.Response:
    return views.reply(analytics_view(await _analytics(request)))


async def get_show_analytics_csv(request: web.Request) -> web.Response:
    record = await _analytics(request)
    body = csv_body(("metric", "value"), analytics_rows(record))
    return csv_reply(body, f"show-{record.show_id}-analytics.csv")


# --- engagement per viewer ----------------------------------------------------------------------

ENGAGEMENT_COLUMNS = (
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
)


def engagement_view(r: ViewerEngagementRecord) -> dict[str, Any]:
    return {
        "member_id": r.member,
        "viewer_kind": r.kind,
        "watched_seconds": r.watched_seconds,
        "chats": r.chats,
        "questions": r.questions,
        "answered": r.answered,
        "reactions": r.reactions,
        "referrals": r.referrals,
        "referred_by": r.referred_by,
        "points": r.points,
        "first_seen": views.when(r.first_seen),
        "last_seen": views.when(r.last_seen),
    }


async def list_show_engagement(request: web.Request) -> web.Response:
    query = request[QUERY]
    records, total = await analytics.list_show_engagement(
        request.app[DATABASE],
        request[PATH]["show_id"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        views.page([engagement_view(r) for r in records], total, query["limit"], query["offset"])
    )


async def list_show_engagement_csv(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    records, _ = await analytics.list_show_engagement(request.app[DATABASE], show_id)
    rows = ([engagement_view(r)[c] for c in ENGAGEMENT_COLUMNS] for r in records)
    return csv_reply(csv_body(ENGAGEMENT_COLUMNS, rows), f"show-{show_id}-engagement.csv")


# --- engagement per member ----------------------------------------------------------------------

MEMBER_COLUMNS = (
    "show_id",
    "show_title",
    "show_state",
    "show_started_at",
    "watched_seconds",
    "chats",
    "questions",
    "answered",
    "reactions",
    "referrals",
    "points",
    "first_seen",
    "last_seen",
)


def member_show_view(r: MemberShowRecord) -> dict[str, Any]:
    return {
        "show_id": str(r.show_id),
        "show_title": r.title,
        "show_state": r.state.value,
        "show_started_at": views.when(r.started_at),
        "watched_seconds": r.watched_seconds,
        "chats": r.chats,
        "questions": r.questions,
        "answered": r.answered,
        "reactions": r.reactions,
        "referrals": r.referrals,
        "points": r.points,
        "first_seen": views.when(r.first_seen),
        "last_seen": views.when(r.last_seen),
    }


async def list_member_engagement(request: web.Request) -> web.Response:
    member_id: str = request[PATH]["member_id"]
    records = await analytics.list_member_engagement(request.app[DATABASE], member_id)
    return views.reply({"member_id": member_id, "items": [member_show_view(r) for r in records]})


async def list_member_engagement_csv(request: web.Request) -> web.Response:
    member_id: str = request[PATH]["member_id"]
    records = await analytics.list_member_engagement(request.app[DATABASE], member_id)
    rows = ([member_show_view(r)[c] for c in MEMBER_COLUMNS] for r in records)
    return csv_reply(csv_body(MEMBER_COLUMNS, rows), f"member-{member_id}-engagement.csv")
