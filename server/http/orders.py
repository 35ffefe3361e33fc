"""Checkout and orders for buyers: reserve, read, confirm."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web

from server.domain.orders import LineRequest, OrderStatus, PaymentMethod
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.keys import DATABASE, SETTINGS, STOCK
from server.services import orders, pins


def order_view(record: orders.OrderRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "status": record.status.value,
        "show_id": str(record.show_id) if record.show_id else None,
        "total": {"amount_minor": record.total_minor, "currency": record.currency},
        "lines": [
            {
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "unit_price": {"amount_minor": line.unit_price_minor, "currency": record.currency},
                "flash": line.flash,
            }
            for line in record.lines
        ],
        "reserved_until": views.when(record.reserved_until),
        "contact": record.contact,
        "delivery": record.delivery,
        "payment_method": record.payment_method,
        "created_at": views.when(record.created_at),
        "placed_at": views.when(record.placed_at),
    }


async def create_checkout(request: web.Request) -> web.Response:
    body, settings = request[BODY], request.app[SETTINGS]
    show_id = body.get("show_id")
    record, created = await orders.do_checkout(
        request.app[DATABASE],
        request[PRINCIPAL],
        [LineRequest(item["sku"], item["quantity"]) for item in body["items"]],
        show_id=None if show_id is None else uuid.UUID(show_id),
        idempotency_key=request.headers.get("Idempotency-Key"),
        reservation=timedelta(seconds=settings.reservation_seconds),
        max_quantity=settings.max_quantity,
    )
    if created:
        # Viewers of shows where these products are pinned see the new stock (coalesced).
        await _note_stock(request, [line.sku for line in record.lines])
    headers = {"Location": f"/api/v1/orders/{record.id}"} if created else None
    return views.reply(order_view(record), 201 if created else 200, headers)


async def get_order(request: web.Request) -> web.Response:
    record = await orders.access_buyer_order(
        request.app[DATABASE], request[PATH]["order_id"], request[PRINCIPAL]
    )
    return views.reply(order_view(record))


async def confirm_order(request: web.Request) -> web.Response:
    body = request[BODY]
    record = await orders.do_confirm(
        request.app[DATABASE],
        request[PATH]["order_id"],
        request[PRINCIPAL],
        contact=body["contact"],
        delivery=body.get("delivery"),
        payment_method=PaymentMethod(body["payment_method"]),
    )
    return views.reply(order_view(record))


async def _note_stock(request: web.Request, skus: list[str]) -> None:
    request.app[STOCK].note(await pins.access_pinned_stock(request.app[DATABASE], skus))


async def list_orders(request: web.Request) -> web.Response:
    query = request[QUERY]
    show_id = query.get("show_id")
    records, total = await orders.list_orders(
        request.app[DATABASE],
        statuses=[OrderStatus(s) for s in query.get("status", [])],
        show_id=None if show_id is None else uuid.UUID(show_id),
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        views.page([order_view(r) for r in records], total, query["limit"], query["offset"])
    )


async def cancel_order(request: web.Request) -> web.Response:
    record, returned = await orders.do_cancel(request.app[DATABASE], request[PATH]["order_id"])
    await _note_stock(request, list(returned))
    return views.reply(order_view(record))


async def mark_order_paid(request: web.Request) -> web.Response:
    record = await orders.do_mark_paid(request.app[DATABASE], request[PATH]["order_id"])
    return views.reply(order_view(record))
