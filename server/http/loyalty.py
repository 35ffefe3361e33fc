"""Loyalty over HTTP: earning rules, member balances and history, redemptions at the POS or
e-shop, and staff adjustments."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.domain.errors import NotFound
from server.domain.loyalty import EarningRules
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.http.problems import Problem
from server.keys import DATABASE
from server.services import ledger


def points_view(record: ledger.PointsRecord) -> dict[str, Any]:
    return {
        "member_id": record.member,
        "balance": record.balance,
        "tier": record.tier,
        "rolling_points": record.rolling_points,
        "badges": record.badges,
        "streak": record.streak,
        "shows_attended": record.shows_attended,
        "updated_at": views.when(record.updated_at),
    }


def entry_view(record: ledger.EntryRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "member_id": record.member,
        "kind": record.kind.value,
        "reason": record.reason.value,
        "points": record.points,
        "balance_after": record.balance_after,
        "show_id": str(record.show_id) if record.show_id else None,
        "order_id": str(record.order_id) if record.order_id else None,
        "rules_version": record.rules_version,
        "note": record.note,
        "created_at": views.when(record.created_at),
    }


def _rules(rules: EarningRules, version: int) -> dict[str, Any]:
    return {"version": version, "rules": rules.as_json()}


async def get_rules(request: web.Request) -> web.Response:
    return views.reply(_rules(*await ledger.access_rules(request.app[DATABASE])))


async def set_rules(request: web.Request) -> web.Response:
    return views.reply(_rules(*await ledger.do_set_rules(request.app[DATABASE], request[BODY])))


async def _show_rules(request: web.Request, rules: EarningRules, version: int) -> web.Response:
    show_id = request[PATH]["show_id"]
    overrides = await ledger.access_show_overrides(request.app[DATABASE], show_id)
    return views.reply({"show_id": str(show_id), "overrides": overrides, **_rules(rules, version)})


async def get_show_rules(request: web.Request) -> web.Response:
    db, show_id = request.app[DATABASE], request[PATH]["show_id"]
    return await _show_rules(request, *await ledger.access_rules(db, show_id))


async def set_show_rules(request: web.Request) -> web.Response:
    db, show_id = request.app[DATABASE], request[PATH]["show_id"]
    return await _show_rules(request, *await ledger.do_set_show_rules(db, show_id, request[BODY]))


async def get_points(request: web.Request) -> web.Response:
    record = await ledger.access_points(request.app[DATABASE], request[PATH]["member_id"])
    return views.reply(points_view(record))


async def get_my_points(request: web.Request) -> web.Response:
    """The caller's own balance (the watch page's points badge); zero before any points."""
    subject = request[PRINCIPAL].subject
    try:
        record = await ledger.access_points(request.app[DATABASE], subject)
    except NotFound:
        rules, _ = await ledger.access_rules(request.app[DATABASE])
        record = ledger.PointsRecord(subject, 0, rules.tiers[0].name, 0, [], 0, 0, None)
    return views.reply(points_view(record))


async def list_entries(request: web.Request) -> web.Response:
    query = request[QUERY]
    records, total = await ledger.list_entries(
        request.app[DATABASE],
        request[PATH]["member_id"],
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        views.page([entry_view(r) for r in records], total, query["limit"], query["offset"])
    )


async def _key(request: web.Request) -> str:
    """The required Idempotency-Key (after the member is known to exist: 404 comes first)."""
    await ledger.access_points(request.app[DATABASE], request[PATH]["member_id"])
    key = request.headers.get("Idempotency-Key")
    if key is None:
        raise Problem.invalid(
            "Idempotency-Key",
            "this request needs an Idempotency-Key header, so a retry spends nothing twice",
            status=400,
        )
    return key


def _answer(record: ledger.EntryRecord, created: bool) -> web.Response:
    return views.reply(entry_view(record), 201 if created else 200)


async def redeem(request: web.Request) -> web.Response:
    body = request[BODY]
    record, created = await ledger.do_redeem(
        request.app[DATABASE],
        request[PATH]["member_id"],
        body["points"],
        key=await _key(request),
        channel=body["channel"],
        reference=body.get("reference"),
    )
    return _answer(record, created)


async def adjust(request: web.Request) -> web.Response:
    body = request[BODY]
    record, created = await ledger.do_adjust(
        request.app[DATABASE],
        request[PATH]["member_id"],
        body["points"],
        key=await _key(request),
        note=body["note"],
    )
    return _answer(record, created)
