"""Catalog over HTTP: products, search and paging, soft delete, stock, import."""

from __future__ import annotations

import asyncio
import json

from server.store.db import Database
from tests.conftest import Api, create_product, product_body, snapshot, viewer_token


async def test_create_read_update_delete(api: Api, admin: str) -> None:
    created = await create_product(api, admin, "TEA-001")
    assert created["stock"] == 12 and created["status"] == "active"
    got = await api.call("GET", "/api/v1/products/TEA-001", auth=admin)
    assert got.body == created

    patched = await api.call(
        "PATCH",
        "/api/v1/products/TEA-001",
        auth=admin,
        json_body={
            "title": {"zh-HK": "凍頂烏龍", "zh-CN": "冻顶乌龙"},
            "price": {"amount_minor": 17900, "currency": "HKD"},
        },
    )
    assert patched.status == 200, patched.text
    assert patched.body["title"] == {"zh-HK": "凍頂烏龍", "zh-CN": "冻顶乌龙"}
    assert patched.body["price"]["amount_minor"] == 17900
    assert patched.body["compare_at_price"]["amount_minor"] == 25900  # still above the new price
    assert patched.body["stock"] == 12
    # Raising the price to the compare-at price drops the "was" price rather than failing.
    raised = await api.call(
        "PATCH",
        "/api/v1/products/TEA-001",
        auth=admin,
        json_body={"price": {"amount_minor": 25900, "currency": "HKD"}},
    )
    assert raised.status == 200 and raised.body["compare_at_price"] is None

    deleted = await api.call("DELETE", "/api/v1/products/TEA-001", auth=admin)
    assert deleted.status == 204
    assert (await api.call("GET", "/api/v1/products/TEA-001", auth=admin)).status == 404
    assert (await api.call("DELETE", "/api/v1/products/TEA-001", auth=admin)).status == 404
    listed = await api.call("GET", "/api/v1/products", auth=admin)
    assert listed.body["total"] == 0
    # A deleted SKU can be used again; the old row stays for history.
    again = await create_product(api, admin, "TEA-001")
    assert again["id"] != created["id"]


async def test_duplicate_sku_conflicts_and_writes_nothing(
    api: Api, admin: str, db: Database
) -> None:
    await create_product(api, admin, "TEA-001")
    before = await snapshot(db)
    answer = await api.call(
        "POST", "/api/v1/products", auth=admin, json_body=product_body("TEA-001")
    )
    assert answer.status == 409 and answer.body["errors"][0]["field"] == "sku"
    assert await snapshot(db) == before


async def test_concurrent_creates_of_one_sku_make_one_product(api: Api, admin: str) -> None:
    answers = await asyncio.gather(
        *[
            api.call("POST", "/api/v1/products", auth=admin, json_body=product_body("RACE-1"))
            for _ in range(5)
        ]
    )
    assert sorted(a.status for a in answers) == [201, 409, 409, 409, 409]


async def test_search_and_paging(api: Api, admin: str) -> None:
    for n in range(7):
        await create_product(
            api, admin, f"MUG-{n}", title={"zh-HK": f"馬克杯 {n}", "en": f"Mug {n}"}
        )
    await create_product(api, admin, "TEA_1", title={"en": "Pure tea"})
    page = await api.call("GET", "/api/v1/products?q=杯&limit=3&offset=3", auth=admin)
    assert [p["sku"] for p in page.body["items"]] == ["MUG-3", "MUG-4", "MUG-5"]
    assert (page.body["total"], page.body["limit"], page.body["offset"]) == (7, 3, 3)
    # LIKE wildcards in the query are literal: "_" matches only an underscore.
    underscore = await api.call("GET", "/api/v1/products?q=_", auth=admin)
    assert [p["sku"] for p in underscore.body["items"]] == ["TEA_1"]
    by_sku = await api.call("GET", "/api/v1/products?q=mug-6", auth=admin)
    assert [p["sku"] for p in by_sku.body["items"]] == ["MUG-6"]


async def test_viewers_see_active_products_only(api: Api, admin: str) -> None:
    await create_product(api, admin, "ON-SALE")
    await create_product(api, admin, "COMING", status="draft")
    viewer = viewer_token()
    listed = await api.call("GET", "/api/v1/products?status=draft", auth=viewer)
    assert [p["sku"] for p in listed.body["items"]] == ["ON-SALE"]
    assert (await api.call("GET", "/api/v1/products/COMING", auth=viewer)).status == 404
    staff = await api.call("GET", "/api/v1/products?status=draft", auth=admin)
    assert [p["sku"] for p in staff.body["items"]] == ["COMING"]


async def test_stock_adjustments(api: Api, admin: str) -> None:
    await create_product(api, admin, "TEA-001", stock=5)
    down = await api.call(
        "POST", "/api/v1/products/TEA-001/stock", auth=admin, json_body={"delta": -2}
    )
    assert down.status == 200 and down.body["stock"] == 3
    too_many = await api.call(
        "POST", "/api/v1/products/TEA-001/stock", auth=admin, json_body={"delta": -4}
    )
    assert too_many.status == 409 and "stock is 3" in too_many.body["detail"]
    counted = await api.call(
        "POST", "/api/v1/products/TEA-001/stock", auth=admin, json_body={"set": 40}
    )
    assert counted.body["stock"] == 40


async def test_concurrent_stock_removals_never_oversell(api: Api, admin: str) -> None:
    await create_product(api, admin, "LAST-FEW", stock=5)
    answers = await asyncio.gather(
        *[
            api.call("POST", "/api/v1/products/LAST-FEW/stock", auth=admin, json_body={"delta": -1})
            for _ in range(12)
        ]
    )
    assert sorted(a.status for a in answers) == [200] * 5 + [409] * 7
    final = await api.call("GET", "/api/v1/products/LAST-FEW", auth=admin)
    assert final.body["stock"] == 0


CSV_GOOD = (
    "sku,title_zh_hk,title_en,description_en,price,compare_at_price,currency,image_url,stock,status\n"
    "A-1,甲,Alpha,First,10.00,12.00,HKD,https://cdn.example.com/a.jpg,3,active\n"
    "B-2,乙,Beta,,1200,,JPY,,0,draft\n"
)


async def test_csv_import_creates_then_updates(api: Api, admin: str) -> None:
    first = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=CSV_GOOD,
        headers={"Content-Type": "text/csv"},
    )
    assert first.status == 200, first.text
    assert (
        first.body["rows"],
        first.body["created"],
        first.body["updated"],
        first.body["written"],
    ) == (2, 2, 0, True)
    beta = await api.call("GET", "/api/v1/products/B-2", auth=admin)
    assert beta.body["price"] == {"amount_minor": 1200, "currency": "JPY"}
    assert beta.body["status"] == "draft"
    again = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=CSV_GOOD.replace(",3,active", ",9,active"),
        headers={"Content-Type": "text/csv; charset=utf-8"},
    )
    assert (again.body["created"], again.body["updated"]) == (0, 2)
    alpha = await api.call("GET", "/api/v1/products/A-1", auth=admin)
    assert alpha.body["stock"] == 9


CSV_MIXED = (
    "sku,title_en,price,stock\n"
    "OK-1,Fine,10.00,1\n"
    "BAD-1,Too precise,10.001,1\n"
    ",No sku,5.00,1\n"
    "OK-2,Also fine,20,2\n"
    "OK-1,Duplicate,30,3\n"
    "BAD-2,,abc,1.5\n"
)


async def test_import_with_errors_writes_nothing(api: Api, admin: str, db: Database) -> None:
    before = await snapshot(db)
    answer = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=CSV_MIXED,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status == 422, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    errors = {(e["row"], e["field"]) for e in answer.body["errors"]}
    assert {
        (2, "price"),
        (3, "sku"),
        (5, "sku"),
        (6, "price"),
        (6, "stock"),
        (6, "title"),
    } <= errors
    assert not any(row in (1, 4) for row, _ in errors)
    assert "nothing was imported" in answer.body["detail"]
    assert await snapshot(db) == before


async def test_import_valid_only_and_dry_run(api: Api, admin: str, db: Database) -> None:
    dry = await api.call(
        "POST",
        "/api/v1/products/import?dry_run=true",
        auth=admin,
        data=CSV_MIXED,
        headers={"Content-Type": "text/csv"},
    )
    assert dry.status == 422 and (await snapshot(db))["products"] == []
    clean = await api.call(
        "POST",
        "/api/v1/products/import?dry_run=true",
        auth=admin,
        data=CSV_GOOD,
        headers={"Content-Type": "text/csv"},
    )
    assert clean.status == 200 and (clean.body["rows"], clean.body["written"]) == (2, False)
    assert (await snapshot(db))["products"] == []
    partial = await api.call(
        "POST",
        "/api/v1/products/import?valid_only=true",
        auth=admin,
        data=CSV_MIXED,
        headers={"Content-Type": "text/csv"},
    )
    assert partial.status == 200, partial.text
    assert (partial.body["created"], partial.body["written"]) == (2, True)
    assert {e["row"] for e in partial.body["errors"]} == {2, 3, 5, 6}
    listed = await api.call("GET", "/api/v1/products", auth=admin)
    assert [p["sku"] for p in listed.body["items"]] == ["OK-1", "OK-2"]
    assert listed.body["items"][0]["title"] == {"en": "Fine"}  # row 1, not its duplicate


async def test_json_import(api: Api, admin: str) -> None:
    rows = [product_body("J-1"), product_body("J-2", stock=0, status="archived")]
    answer = await api.call(
        "POST", "/api/v1/products/import", auth=admin, json_body={"products": rows}
    )
    assert answer.status == 200 and answer.body["created"] == 2
    bad = [
        product_body("J-3"),
        {**product_body("J-4"), "price": {"amount_minor": -5, "currency": "HKD"}, "colour": "red"},
    ]
    rejected = await api.call("POST", "/api/v1/products/import", auth=admin, json_body=bad)
    assert rejected.status == 422
    assert {(e["row"], e["field"]) for e in rejected.body["errors"]} == {
        (2, "price.amount_minor"),
        (2, "colour"),
    }
    assert (await api.call("GET", "/api/v1/products/J-3", auth=admin)).status == 404


async def test_import_rejects_whole_file_problems(api: Api, admin: str, db: Database) -> None:
    before = await snapshot(db)
    cases = [
        ("sku,name,price\nA,b,1\n", "text/csv", "unknown column 'name'"),
        ("title_en\nx\n", "text/csv", "missing column 'sku'"),
        ("[{", "application/json", "malformed JSON"),
        (json.dumps({"sku": "A"}), "application/json", "must be a JSON array"),
        ("sku,price\n", "text/plain", "text/csv or application/json"),
    ]
    for content, ctype, expected in cases:
        answer = await api.call(
            "POST",
            "/api/v1/products/import",
            auth=admin,
            data=content,
            headers={"Content-Type": ctype},
        )
        assert answer.status in (415, 422), answer.text
        assert expected in answer.body["detail"], (expected, answer.body)
    latin1 = "sku,title_en,price\nA,Caf\xe9,1\n".encode("latin-1")
    answer = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=latin1,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status == 422 and "not UTF-8" in answer.body["detail"]
    assert await snapshot(db) == before


async def test_import_over_the_size_limit_is_413(api: Api, admin: str) -> None:
    big = "sku,title_en,price\n" + "".join(f"S-{n},{'x' * 100},1\n" for n in range(3000))
    answer = await api.call(
        "POST",
        "/api/v1/products/import",
        auth=admin,
        data=big,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status == 413, answer.text


async def test_concurrent_imports_of_the_same_new_skus(api: Api, admin: str) -> None:
    rows = "sku,title_en,price,stock\n" + "".join(
        f"C-{n},Item {n},{n + 1}.00,5\n" for n in range(20)
    )
    answers = await asyncio.gather(
        *[
            api.call(
                "POST",
                "/api/v1/products/import",
                auth=admin,
                data=rows,
                headers={"Content-Type": "text/csv"},
            )
            for _ in range(3)
        ]
    )
    # Serialized writers update what the first created; a losing racer is told to retry.
    assert {a.status for a in answers} <= {200, 409} and 200 in {a.status for a in answers}
    listed = await api.call("GET", "/api/v1/products?limit=100", auth=admin)
    assert listed.body["total"] == 20
