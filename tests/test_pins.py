"""Pinned products: the host pins up to SHOWROOM_MAX_PINS products (with flash prices);
every viewer gets the cards in the next frame and in the join snapshot; stock changes reach
them coalesced."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from server.store.db import Database
from tests.conftest import Api, create_product, create_show, host_token, snapshot, viewer_token
from tests.test_live import room, settle

__all__ = ["room"]  # the live-room server fixture


def hkd(minor: int) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": "HKD"}


def soon(minutes: int = 10) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


async def test_pins_over_http_with_flash_prices_and_limits(
    api: Api, db: Database, admin: str
) -> None:
    show = await create_show(api, admin)
    host = await host_token(db, show["id"])
    for sku in ("TEA-1", "TEA-2", "TEA-3", "TEA-4"):
        await create_product(api, admin, sku, price=hkd(19900), compare_at_price=None, stock=8)
    pins = f"/api/v1/shows/{show['id']}/pins"

    first = await api.call(
        "POST",
        pins,
        auth=host,
        json_body={"sku": "TEA-1", "flash_price": hkd(9900), "flash_ends_at": soon()},
    )
    assert first.status == 200, first.text
    [card] = first.body["products"]
    assert card["sku"] == "TEA-1" and card["price"] == hkd(9900)
    assert card["compare_at_price"] == hkd(19900)  # the usual price, struck through
    assert card["stock"] == 8 and card["flash_ends_at"] is not None
    assert card["title"]["zh-HK"] == "凍頂烏龍茶"
    for sku in ("TEA-2", "TEA-3"):
        assert (await api.call("POST", pins, auth=host, json_body={"sku": sku})).status == 200

    before = await snapshot(db)
    full = await api.call("POST", pins, auth=host, json_body={"sku": "TEA-4"})
    assert full.status == 409 and "3 products are pinned already" in full.body["detail"]
    refusals = [
        ({"sku": "NOPE-1"}, 404, "no product"),
        ({"sku": "TEA-4", "flash_price": hkd(19900)}, 422, "lower than the product's price"),
        ({"sku": "TEA-4", "flash_price": {"amount_minor": 100, "currency": "USD"}}, 422, "HKD"),
        ({"sku": "TEA-4", "flash_price": hkd(100), "flash_ends_at": "2020-01-01T00:00:00Z"}, 422,
         "in the future"),
        ({"sku": "TEA-4", "flash_ends_at": soon()}, 422, "needs a flash price"),
    ]  # fmt: skip
    for body, status, detail in refusals:
        answer = await api.call("POST", pins, auth=host, json_body=body)
        assert answer.status == status and detail in answer.body["detail"], answer.text
    viewer = await api.call("POST", pins, auth=viewer_token(), json_body={"sku": "TEA-4"})
    assert viewer.status == 403
    assert await snapshot(db) == before

    # Re-pinning changes the flash price in place; unpinning frees a slot.
    repinned = await api.call("POST", pins, auth=host, json_body={"sku": "TEA-1"})
    assert [c["sku"] for c in repinned.body["products"]] == ["TEA-1", "TEA-2", "TEA-3"]
    assert repinned.body["products"][0]["price"] == hkd(19900)
    unpinned = await api.call("DELETE", f"{pins}/TEA-2", auth=host)
    assert [c["sku"] for c in unpinned.body["products"]] == ["TEA-1", "TEA-3"]
    assert (await api.call("DELETE", f"{pins}/TEA-2", auth=host)).status == 404
    assert (await api.call("POST", pins, auth=host, json_body={"sku": "TEA-4"})).status == 200
    listed = await api.call("GET", pins)
    assert [c["sku"] for c in listed.body["products"]] == ["TEA-1", "TEA-3", "TEA-4"]
    assert listed.body["seq"] > first.body["seq"]

    # A draft product and a closed show cannot be pinned.
    await create_product(api, admin, "DRAFT-1", status="draft")
    draft = await api.call("POST", pins, auth=host, json_body={"sku": "DRAFT-1"})
    assert draft.status == 409 and "only active products" in draft.body["detail"]
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/cancel", auth=admin)).status == 200
    closed = await api.call("DELETE", f"{pins}/TEA-1", auth=host)
    assert closed.status == 409


async def test_viewers_get_cards_in_frames_and_snapshots_and_stock_coalesced(
    room: Any, db: Database, admin: str
) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    await create_product(api, admin, "BAG-1", price=hkd(59900), compare_at_price=None, stock=12)
    host = await connect(await host_token(db, show["id"]))
    viewer = await connect(viewer_token("v1", "Viewer"))
    for client in (host, viewer):
        assert (await client.call("join", {"show_id": show["id"]}))["ok"]

    refused = await viewer.call("product:pin", {"sku": "BAG-1"})
    assert refused["error"]["code"] == "forbidden"
    bad = await host.call("product:pin", {"sku": "BAG-1", "flash_price": 5})
    assert bad["error"]["code"] == "bad_payload" and bad["error"]["field"] == "flash_price"
    pinned = await host.call(
        "product:pin", {"sku": "BAG-1", "flash_price": hkd(39900), "flash_ends_at": soon()}
    )
    assert pinned["ok"] and pinned["products"][0]["price"] == hkd(39900)
    await settle()
    [event] = viewer.events("products.pinned")
    assert [c["sku"] for c in event["products"]] == ["BAG-1"] and event["seq"] > 0

    late = await connect(viewer_token("v2", "Late"))
    joined = await late.call("join", {"show_id": show["id"]})
    [card] = joined["snapshot"]["pinned_products"]
    assert card["sku"] == "BAG-1" and card["compare_at_price"] == hkd(59900)

    # Ten stock changes in a burst reach viewers as one or two events, the last count last.
    for _ in range(10):
        answer = await api.call(
            "POST", "/api/v1/products/BAG-1/stock", auth=admin, json_body={"delta": -1}
        )
        assert answer.status == 200
    await asyncio.sleep(0.6)
    stock = viewer.events("products.stock")
    assert 1 <= len(stock) <= 3, stock
    assert stock[-1]["stock"] == {"BAG-1": 2}

    unpinned = await host.call("product:unpin", {"sku": "BAG-1"})
    assert unpinned == {"ok": True, "products": []}
    await settle()
    assert viewer.events("products.pinned")[-1]["products"] == []
