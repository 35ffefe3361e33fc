"""Carts, buy-now hand-off links, the host's claims feed and the show's sales funnel."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web

from server.domain.orders import LineRequest
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.http.orders import note_stock, order_view
from server.keys import DATABASE, FUNNEL, SETTINGS
from server.realtime import payloads
from server.services import carts, claims, funnel, orders, shows
from server.services.funnel import FunnelStep


def _money(amount: int, currency: str) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": currency}


def cart_view(record: carts.CartRecord) -> dict[str, Any]:
    currencies = {line.currency for line in record.lines}
    total = (
        _money(sum(x.unit_price_minor * x.quantity for x in record.lines), currencies.pop())
        if len(currencies) == 1
        else None
    )
    return {
        "items": [
            {
                "sku": line.sku,
                "title": line.title,
                "image_url": line.image_url,
                "quantity": line.quantity,
                "unit_price": _money(line.unit_price_minor, line.currency),
                "compare_at_price": None
                if line.compare_at_minor is None
                else _money(line.compare_at_minor, line.currency),
                "line_total": _money(line.unit_price_minor * line.quantity, line.currency),
                "flash": line.flash,
                "stock": line.stock,
                "available": line.available,
                "show_id": str(line.show_id) if line.show_id else None,
                "added_at": views.when(line.added_at),
            }
            for line in record.lines
        ],
        "total": total,
        "count": sum(line.quantity for line in record.lines),
    }


def _show_id(body: dict[str, Any]) -> uuid.UUID | None:
    raw = body.get("show_id")
    return None if raw is None else uuid.UUID(raw)


async def get_cart(request: web.Request) -> web.Response:
    record = await carts.access_cart(request.app[DATABASE], request[PRINCIPAL])
    return views.reply(cart_view(record))


async def _put(request: web.Request, sku: str, quantity: int, *, add: bool) -> web.Response:
    body = request[BODY]
    show_id = _show_id(body)
    record = await carts.do_put_item(
        request.app[DATABASE],
        request[PRINCIPAL],
        sku,
        quantity=quantity,
        add=add,
        show_id=show_id,
        max_quantity=request.app[SETTINGS].max_quantity,
    )
    if show_id is not None and add:
        request.app[FUNNEL].note(show_id, sku, FunnelStep.ADDED_TO_CART)
    return views.reply(cart_view(record))


async def add_cart_item(request: web.Request) -> web.Response:
    body = request[BODY]
    return await _put(request, body["sku"], body.get("quantity", 1), add=True)


async def set_cart_item(request: web.Request) -> web.Response:
    return await _put(request, request[PATH]["sku"], request[BODY]["quantity"], add=False)


async def remove_cart_item(request: web.Request) -> web.Response:
    record = await carts.do_remove_item(
        request.app[DATABASE], request[PRINCIPAL], request[PATH]["sku"]
    )
    return views.reply(cart_view(record))


async def checkout_cart(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    record, created = await orders.do_cart_checkout(
        request.app[DATABASE],
        request[PRINCIPAL],
        show_id=_show_id(request[BODY]),
        idempotency_key=request.headers.get("Idempotency-Key"),
        reservation=timedelta(seconds=settings.reservation_seconds),
        max_quantity=settings.max_quantity,
    )
    if not created:
        return views.reply(order_view(record))
    if record.show_id is not None:
        for line in record.lines:
            request.app[FUNNEL].note(record.show_id, line.sku, FunnelStep.CHECKOUT_STARTED)
    await note_stock(request, [line.sku for line in record.lines])
    return views.reply(order_view(record), 201, {"Location": f"/api/v1/orders/{record.id}"})


async def create_handoff(request: web.Request) -> web.Response:
    show_id = request[PATH]["show_id"]
    items = request[BODY].get("items")
    url, lines = await carts.access_handoff(
        request.app[DATABASE],
        request[PRINCIPAL],
        show_id,
        None if items is None else [LineRequest(x["sku"], x["quantity"]) for x in items],
        max_quantity=request.app[SETTINGS].max_quantity,
    )
    for line in lines:
        request.app[FUNNEL].note(show_id, line.sku, FunnelStep.CHECKOUT_STARTED)
    return views.reply(
        {
            "url": url,
            "show_id": str(show_id),
            "items": [{"sku": x.sku, "quantity": x.quantity} for x in lines],
        }
    )


async def list_claims(request: web.Request) -> web.Response:
    query, db, show_id = request[QUERY], request.app[DATABASE], request[PATH]["show_id"]
    await shows.access_show(db, show_id)  # 404 for no such show
    records, total = await claims.list_claims(
        db, show_id, limit=query["limit"], offset=query["offset"]
    )
    secret = request.app[SETTINGS].secret_key
    return views.reply(
        views.page(
            [payloads.claim(r, secret) for r in records], total, query["limit"], query["offset"]
        )
    )


async def get_funnel(request: web.Request) -> web.Response:
    show_id = request[PATH]["show_id"]
    db = request.app[DATABASE]
    await shows.access_show(db, show_id)  # 404 for no such show
    await request.app[FUNNEL].flush()  # what this process counted so far, too
    rows = await funnel.access_funnel(db, show_id)
    count, revenue = await funnel.access_show_orders(db, show_id)
    return views.reply(
        {
            "show_id": str(show_id),
            "products": [
                {
                    "sku": row.sku,
                    "title": row.title,
                    **{step.value: row.steps[step] for step in FunnelStep},
                    "orders": row.orders,
                    "units": row.units,
                    "revenue": None
                    if row.currency is None
                    else _money(row.revenue_minor, row.currency),
                }
                for row in rows
            ],
            "orders": count,
            "revenue": [_money(amount, currency) for currency, amount in sorted(revenue.items())],
        }
    )
