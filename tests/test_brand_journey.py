"""The brand's engineer integrates the API: catalog in, a show scheduled, run and ended."""

from __future__ import annotations

from server.store.db import Database
from tests.conftest import Api, create_product, host_token


async def test_brand_engineer_runs_a_show_end_to_end(api: Api, admin: str, db: Database) -> None:
    # Catalog: one product by hand, two by CSV import.
    tea = await create_product(api, admin, "TEA-001")
    assert tea["price"] == {"amount_minor": 19900, "currency": "HKD"}
    csv_file = (
        "sku,title_zh_hk,title_en,price,compare_at_price,stock\n"
        "CUP-01,青花瓷茶杯,Blue and White Teacup,88.50,,30\n"
        "POT-01,紫砂茶壺,Yixing Teapot,1280,1580.00,4\n"
    )
    imported = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=csv_file,
        headers={"Content-Type": "text/csv"},
    )
    assert imported.status == 200, imported.text
    assert (imported.body["created"], imported.body["updated"], imported.body["errors"]) == (
        2,
        0,
        [],
    )
    pot = await api.call("GET", "/api/v1/products/POT-01", auth=admin)
    assert pot.body["price"] == {"amount_minor": 128000, "currency": "HKD"}
    assert pot.body["compare_at_price"] == {"amount_minor": 158000, "currency": "HKD"}
    assert pot.body["title"] == {"zh-HK": "紫砂茶壺", "en": "Yixing Teapot"}

    listed = await api.call("GET", "/api/v1/products?q=茶", auth=admin)
    assert sorted(p["sku"] for p in listed.body["items"]) == ["CUP-01", "POT-01", "TEA-001"]
    listed = await api.call("GET", "/api/v1/products?q=TEACUP", auth=admin)
    assert [p["sku"] for p in listed.body["items"]] == ["CUP-01"]

    # Schedule a show and hand the host a token for it.
    created = await api.call(
        "POST",
        "/api/v1/shows",
        auth=admin,
        json_body={
            "title": "茶具專場",
            "scheduled_start": "2026-12-05T20:00:00+08:00",
            "host_name": "Mandy",
        },
    )
    assert created.status == 201, created.text
    show = created.body
    assert show["state"] == "scheduled"
    assert show["scheduled_start"] == "2026-12-05T12:00:00Z"  # stored and answered in UTC
    assert (show["locale"], show["currency"]) == ("zh-HK", "HKD")  # server defaults
    assert created.headers["Location"] == f"/api/v1/shows/{show['id']}"

    key = await api.call(
        "POST",
        "/api/v1/api-keys",
        auth=admin,
        json_body={"role": "host", "show_id": show["id"], "name": "Mandy"},
    )
    assert key.status == 201
    host = key.body["token"]
    assert key.body["key"]["show_id"] == show["id"]

    # The host goes live and ends the show; the brand sees the times.
    live = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=host)
    assert live.status == 200, live.text
    assert live.body["state"] == "live" and live.body["started_at"] is not None
    ended = await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=host)
    assert ended.body["state"] == "ended" and ended.body["ended_at"] >= ended.body["started_at"]

    done = await api.call("GET", "/api/v1/shows?state=ended", auth=admin)
    assert [s["id"] for s in done.body["items"]] == [show["id"]]
    scheduled = await api.call("GET", "/api/v1/shows?state=scheduled,live", auth=admin)
    assert scheduled.body["items"] == []

    # The host token only ever covered that one show.
    other = (
        await api.call(
            "POST",
            "/api/v1/shows",
            auth=admin,
            json_body={"title": "Next", "scheduled_start": "2026-12-06T12:00:00Z"},
        )
    ).body
    refused = await api.call("POST", f"/api/v1/shows/{other['id']}/start", auth=host)
    assert refused.status == 403
    assert (await api.call("GET", f"/api/v1/shows/{other['id']}", auth=admin)).body[
        "state"
    ] == "scheduled"
    assert tea["sku"] == "TEA-001"
    assert await host_token(db, None)  # an all-shows host token can be minted too
