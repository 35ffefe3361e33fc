"""Checkout over HTTP: a flash-sale rush never oversells, a repeated Idempotency-Key makes
no second order, and a buyer confirms a reservation into a sale."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from server.domain.orders import LineRequest
from server.services import orders
from server.services.identity import Principal, Role
from server.store.db import Database
from tests.conftest import Api, create_product, snapshot, viewer_token

CHECKOUTS = "/api/v1/checkouts"


def items(sku: str, quantity: int = 1) -> dict[str, Any]:
    return {"items": [{"sku": sku, "quantity": quantity}]}


async def test_flash_sale_over_http_500_buyers_20_units(api: Api, admin: str) -> None:
    await create_product(api, admin, "RUSH-1", stock=20)
    answers = await asyncio.gather(
        *(
            api.call("POST", CHECKOUTS, auth=viewer_token(f"buyer-{n}"), json_body=items("RUSH-1"))
            for n in range(500)
        )
    )
    statuses = [a.status for a in answers]
    assert statuses.count(201) == 20 and statuses.count(409) == 480, sorted(set(statuses))
    refused = next(a for a in answers if a.status == 409)
    assert "sold out" in refused.body["detail"] and refused.body["errors"][0]["field"] == (
        "items.0.sku"
    )
    placed = next(a for a in answers if a.status == 201)
    assert placed.headers["Location"] == f"/api/v1/orders/{placed.body['id']}"
    product = await api.call("GET", "/api/v1/products/RUSH-1", auth=admin)
    assert product.body["stock"] == 0


async def test_a_repeated_checkout_makes_one_order(api: Api, db: Database, admin: str) -> None:
    await create_product(api, admin, "ONCE-1", stock=5)
    buyer = viewer_token("repeat")
    headers = {"Idempotency-Key": "order-abc"}
    first = await api.call(
        "POST", CHECKOUTS, auth=buyer, json_body=items("ONCE-1", 2), headers=headers
    )
    again = await api.call(
        "POST", CHECKOUTS, auth=buyer, json_body=items("ONCE-1", 2), headers=headers
    )
    assert (first.status, again.status) == (201, 200) and again.body["id"] == first.body["id"]
    before = await snapshot(db)
    other = await api.call(
        "POST", CHECKOUTS, auth=buyer, json_body=items("ONCE-1", 3), headers=headers
    )
    assert other.status == 422 and "Idempotency-Key" in other.body["detail"]
    priced = await api.call(
        "POST",
        CHECKOUTS,
        auth=buyer,
        json_body={"items": [{"sku": "ONCE-1", "quantity": 1, "price": 1}]},
    )
    assert priced.status == 422  # a client's price is not accepted, let alone used
    too_many = await api.call("POST", CHECKOUTS, auth=buyer, json_body=items("ONCE-1", 11))
    assert too_many.status == 422 and "between 1 and 10" in too_many.body["detail"]
    staff = await api.call("POST", CHECKOUTS, auth=admin, json_body=items("ONCE-1"))
    assert staff.status == 403
    assert await snapshot(db) == before
    product = await api.call("GET", "/api/v1/products/ONCE-1", auth=admin)
    assert product.body["stock"] == 3


async def test_the_buyer_confirms_a_reservation_into_a_sale(
    api: Api, db: Database, admin: str
) -> None:
    await create_product(api, admin, "BUY-1", stock=5)
    buyer = viewer_token("buyer")
    reserved = await api.call("POST", CHECKOUTS, auth=buyer, json_body=items("BUY-1", 2))
    assert reserved.body["status"] == "reserved" and reserved.body["total"]["amount_minor"] > 0
    order = f"/api/v1/orders/{reserved.body['id']}"
    assert (await api.call("GET", order, auth=viewer_token("someone-else"))).status == 404
    assert (await api.call("GET", order, auth=admin)).body["id"] == reserved.body["id"]
    details = {
        "contact": {"name": "陳小姐", "phone": "+852 9123 4567"},
        "delivery": {"address": "香港中環皇后大道中 1 號", "country": "HK"},
        "payment_method": "cash_on_delivery",
    }
    other_buyer = await api.call(
        "POST", f"{order}/confirm", auth=viewer_token("someone-else"), json_body=details
    )
    assert other_buyer.status == 404
    placed = await api.call("POST", f"{order}/confirm", auth=buyer, json_body=details)
    assert placed.status == 200, placed.text
    assert placed.body["status"] == "placed" and placed.body["contact"]["name"] == "陳小姐"
    assert placed.body["placed_at"] is not None
    twice = await api.call("POST", f"{order}/confirm", auth=buyer, json_body=details)
    assert twice.status == 409

    # A reservation that ran out cannot be confirmed.
    lapsed, _ = await orders.do_checkout(
        db,
        Principal(Role.VIEWER, "late"),
        [LineRequest("BUY-1", 1)],
        show_id=None,
        idempotency_key=None,
        reservation=timedelta(seconds=-1),
        max_quantity=10,
    )
    late = await api.call(
        "POST", f"/api/v1/orders/{lapsed.id}/confirm", auth=viewer_token("late"), json_body=details
    )
    assert late.status == 409 and "expired" in late.body["detail"]


async def test_the_brand_lists_cancels_and_marks_orders_paid(api: Api, admin: str) -> None:
    await create_product(api, admin, "OPS-1", stock=10)
    details = {"contact": {"name": "Ann"}, "payment_method": "pay_later"}
    ids = []
    for n in range(3):
        buyer = viewer_token(f"ops-{n}")
        made = await api.call("POST", CHECKOUTS, auth=buyer, json_body=items("OPS-1", 2))
        ids.append(made.body["id"])
        if n < 2:
            confirmed = await api.call(
                "POST", f"/api/v1/orders/{made.body['id']}/confirm", auth=buyer, json_body=details
            )
            assert confirmed.status == 200
    placed = await api.call("GET", "/api/v1/orders?status=placed", auth=admin)
    assert placed.body["total"] == 2 and {o["id"] for o in placed.body["items"]} == set(ids[:2])
    everything = await api.call("GET", "/api/v1/orders?limit=2", auth=admin)
    assert everything.body["total"] == 3 and len(everything.body["items"]) == 2

    paid = await api.call("POST", f"/api/v1/orders/{ids[0]}/mark-paid", auth=admin)
    assert paid.status == 200 and paid.body["status"] == "paid"
    assert (await api.call("POST", f"/api/v1/orders/{ids[0]}/cancel", auth=admin)).status == 409
    cancelled = await api.call("POST", f"/api/v1/orders/{ids[1]}/cancel", auth=admin)
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
    # A cancelled order cannot be paid, nor a reservation that was never confirmed.
    late_pay = await api.call("POST", f"/api/v1/orders/{ids[1]}/mark-paid", auth=admin)
    assert late_pay.status == 409 and "cancelled" in late_pay.body["detail"]
    unconfirmed = await api.call("POST", f"/api/v1/orders/{ids[2]}/mark-paid", auth=admin)
    assert unconfirmed.status == 409
    assert (await api.call("POST", f"/api/v1/orders/{ids[2]}/cancel", auth=admin)).status == 200
    product = await api.call("GET", "/api/v1/products/OPS-1", auth=admin)
    assert product.body["stock"] == 10 - 2  # only the paid order's units stay sold
    viewer = await api.call("GET", "/api/v1/orders", auth=viewer_token("ops-0"))
    assert viewer.status == 403
