"""Checkout and orders for buyers: reserve, read, confirm."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from aiohttp import web

from server.domain.orders import LineRequest, OrderStatus, PaymentMethod
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.keys import DATABASE, FUNNEL, PAYMENTS, SETTINGS, STOCK
from server.services import orders, pins
from server.services.funnel import FunnelStep


def order_view(record: orders.OrderRecord) -> dict[str, Any]:
    # The same document order webhooks carry as their `data`.
    return orders.order_document(record)


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
        # Viewers of shows where the sold products are pinned see the new stock: read once
        # per round of checkouts, in its transaction, and coalesced by the board.
        on_stock=request.app[STOCK].note,
    )
    if created and record.show_id is not None:
        for line in record.lines:
            request.app[FUNNEL].note(record.show_id, line.sku, FunnelStep.CHECKOUT_STARTED)
    headers = {"Location": f"/api/v1/orders/{record.id}"} if created else None
    return views.reply(order_view(record), 201 if created else 200, headers)


async def get_order(request: web.Request) -> web.Response:
    record = await orders.access_buyer_order(
        request.app[DATABASE], request[PATH]["order_id"], request[PRINCIPAL]
    )
    return views.reply(order_view(record))


async def confirm_order(request: web.Request) -> web.Response:
    body, payments, db = request[BODY], request.app[PAYMENTS], request.app[DATABASE]
    payments.provider_for(body["payment_method"])  # a method no provider takes: 422, no write
    record = await orders.do_confirm(
        db,
        request[PATH]["order_id"],
        request[PRINCIPAL],
        contact=body["contact"],
        delivery=body.get("delivery"),
        payment_method=PaymentMethod(body["payment_method"]),
    )
    started = await payments.start(record)
    if started.paid:  # the provider settled at once
        record = await orders.do_mark_paid(db, record.id)
    return views.reply(order_view(record))


async def note_stock(request: web.Request, skus: list[str]) -> None:
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
    await note_stock(request, list(returned))
    return views.reply(order_view(record))


async def mark_order_paid(request: web.Request) -> web.Response:
    record = await orders.do_mark_paid(request.app[DATABASE], request[PATH]["order_id"])
    return views.reply(order_view(record))
