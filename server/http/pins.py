"""Pinned products over HTTP, for the brand's own tools: the same pins the host makes in the
studio, announced to the live room the same way."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from aiohttp import web

from server.domain.money import Money
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL
from server.http.problems import Problem
from server.keys import DATABASE, LIVE, ROOMS, SETTINGS
from server.realtime import payloads
from server.services import pins
from server.store.models import utcnow


def _answer(request: web.Request, found: pins.Pins, *, announce: bool) -> web.Response:
    event = payloads.pins_event(found, utcnow())
    if announce:
        request.app[ROOMS].publish(str(request[PATH]["show_id"]), event)
        request.app[LIVE].forget_commerce(str(request[PATH]["show_id"]))
    return views.reply({"seq": event["seq"], "products": event["products"]})


async def list_pins(request: web.Request) -> web.Response:
    found = await pins.access_pins(request.app[DATABASE], request[PATH]["show_id"])
    return _answer(request, found, announce=False)


def _flash(body: dict[str, Any]) -> tuple[Money | None, datetime | None]:
    price = body.get("flash_price")
    end = None
    if "flash_ends_at" in body:
        end = datetime.fromisoformat(body["flash_ends_at"].replace("Z", "+00:00"))
        if end.tzinfo is None:
            raise Problem.invalid("flash_ends_at", "must include a UTC offset, e.g. Z or +08:00")
    return (None if price is None else Money(price["amount_minor"], price["currency"])), end


async def pin(request: web.Request) -> web.Response:
    body = request[BODY]
    price, end = _flash(body)
    found = await pins.do_pin(
        request.app[DATABASE],
        request[PATH]["show_id"],
        request[PRINCIPAL],
        body["sku"],
        flash_price=price,
        flash_ends_at=end,
        max_pins=request.app[SETTINGS].max_pins,
    )
    return _answer(request, found, announce=True)


async def unpin(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    found = await pins.do_unpin(
        request.app[DATABASE], show_id, request[PRINCIPAL], request[PATH]["sku"]
    )
    return _answer(request, found, announce=True)
