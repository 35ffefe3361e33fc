"""Selling while watching: carts kept across devices, buy now and cart checkout, hand-off to
the brand's cart, "+1" comment-to-order through the live room, and the sales funnel."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from server.domain import claims as claim_rules
from server.domain.claims import Candidate, ClaimRefused
from server.domain.handoff import check_template, expand
from server.domain.orders import LineRequest
from server.store.db import Database
from tests.conftest import Api, create_product, create_show, host_token, snapshot, viewer_token
from tests.test_live import room, settle

__all__ = ["room"]  # the live-room server fixture

CART = "/api/v1/cart"


def hkd(minor: int) -> dict[str, Any]:
    return {"amount_minor": minor, "currency": "HKD"}


def soon(minutes: int = 10) -> str:
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


async def live_show(api: Api, admin: str, **fields: Any) -> dict[str, Any]:
    show = await create_show(api, admin, **fields)
    started = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    assert started.status == 200, started.text
    return started.body


async def test_a_members_cart_is_the_same_on_every_device_and_prices_come_from_the_server(
    api: Api, db: Database, admin: str
) -> None:
    show = await live_show(api, admin)
    await create_product(api, admin, "TEE-1", price=hkd(19900), compare_at_price=None, stock=5)
    await create_product(api, admin, "CAP-1", price=hkd(9900), compare_at_price=None, stock=1)
    pinned = await api.call(
        "POST",
        f"/api/v1/shows/{show['id']}/pins",
        auth=admin,
        json_body={"sku": "TEE-1", "flash_price": hkd(14900), "flash_ends_at": soon()},
    )
    assert pinned.status == 200
    phone, laptop = viewer_token("mei", "Mei"), viewer_token("mei", "Mei")
    added = await api.call(
        "POST", f"{CART}/items", auth=phone, json_body={"sku": "TEE-1", "show_id": show["id"]}
    )
    assert added.status == 200, added.text
    again = await api.call(
        "POST", f"{CART}/items", auth=laptop, json_body={"sku": "TEE-1", "quantity": 2}
    )
    await api.call("POST", f"{CART}/items", auth=laptop, json_body={"sku": "CAP-1"})
    [tee, cap] = (
        again.body["items"][:1] + (await api.call("GET", CART, auth=phone)).body["items"][1:]
    )
    assert tee["quantity"] == 3 and tee["flash"] and tee["unit_price"] == hkd(14900)
    assert tee["compare_at_price"] == hkd(19900) and tee["line_total"] == hkd(44700)
    assert cap["unit_price"] == hkd(9900) and not cap["flash"] and cap["available"]
    cart = (await api.call("GET", CART, auth=phone)).body
    assert cart["total"] == hkd(44700 + 9900) and cart["count"] == 4

    changed = await api.call("PUT", f"{CART}/items/CAP-1", auth=phone, json_body={"quantity": 2})
    [_, cap] = changed.body["items"]
    assert cap["quantity"] == 2 and not cap["available"]  # one left: the cart says so
    before = await snapshot(db)
    over = await api.call(
        "POST", f"{CART}/items", auth=phone, json_body={"sku": "TEE-1", "quantity": 8}
    )
    assert over.status == 422 and "the cart has 3" in over.body["detail"]
    other = await api.call("GET", CART, auth=viewer_token("someone-else"))
    assert other.body == {"items": [], "total": None, "count": 0}
    assert await snapshot(db) == before
    removed = await api.call("DELETE", f"{CART}/items/CAP-1", auth=laptop)
    assert [x["sku"] for x in removed.body["items"]] == ["TEE-1"]
    guest = await api.call("GET", CART, auth=admin)
    assert guest.status == 403  # staff have no cart


async def test_cart_checkout_reserves_everything_or_nothing_and_empties_the_cart(
    api: Api, db: Database, admin: str
) -> None:
    show = await live_show(api, admin)
    await create_product(api, admin, "A-1", price=hkd(1000), compare_at_price=None, stock=3)
    await create_product(api, admin, "B-1", price=hkd(2000), compare_at_price=None, stock=1)
    buyer = viewer_token("kit")
    for sku, quantity in (("A-1", 2), ("B-1", 1)):
        await api.call(
            "POST",
            f"{CART}/items",
            auth=buyer,
            json_body={"sku": sku, "quantity": quantity, "show_id": show["id"]},
        )
    # Someone else buys the last B-1 first: nothing is reserved, the cart stays.
    rival = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=viewer_token("rival"),
        json_body={"items": [{"sku": "B-1", "quantity": 1}]},
    )
    assert rival.status == 201
    before = await snapshot(db)
    refused = await api.call("POST", f"{CART}/checkout", auth=buyer, json_body={})
    assert refused.status == 409 and refused.body["errors"][0]["field"] == "items.1.sku"
    assert await snapshot(db) == before
    await api.call("DELETE", f"{CART}/items/B-1", auth=buyer)

    key = {"Idempotency-Key": "cart-1"}
    placed = await api.call("POST", f"{CART}/checkout", auth=buyer, json_body={}, headers=key)
    assert placed.status == 201, placed.text
    assert placed.body["show_id"] == show["id"] and placed.body["total"] == hkd(2000)
    assert (await api.call("GET", CART, auth=buyer)).body["items"] == []
    replay = await api.call("POST", f"{CART}/checkout", auth=buyer, json_body={}, headers=key)
    assert replay.status == 200 and replay.body["id"] == placed.body["id"]
    empty = await api.call("POST", f"{CART}/checkout", auth=buyer, json_body={})
    assert empty.status == 409 and "empty" in empty.body["detail"]
    product = await api.call("GET", "/api/v1/products/A-1", auth=admin)
    assert product.body["stock"] == 1


def test_handoff_templates() -> None:
    template = check_template("https://shop.example/cart/{items}?ref=showroom&show={show_id}")
    url = expand(
        template,
        [LineRequest("TEE/紅", 2), LineRequest("CAP-1", 1)],
        show_id="s-1",
        pin_id=None,
    )
    assert url == "https://shop.example/cart/TEE%2F%E7%B4%85:2,CAP-1:1?ref=showroom&show=s-1"
    for bad in (
        "https://shop.example/cart",
        "ftp://shop.example/{items}",
        "https://shop.example/{items}{oops}",
        "https://shop.example/{items!r}",
        "https://shop.example/{items",
        "/cart/{items}",
    ):
        try:
            check_template(bad)
        except Exception as exc:
            assert getattr(exc, "field", None) == "handoff_url", bad
        else:
            raise AssertionError(f"{bad} was accepted")


async def test_a_handoff_show_sends_buyers_to_the_brands_cart(api: Api, admin: str) -> None:
    template = "https://shop.example/cart/{items}?ref=showroom&show={show_id}&pin={pin_id}"
    show = await live_show(api, admin, checkout_mode="handoff", handoff_url=template)
    assert show["checkout_mode"] == "handoff" and show["handoff_url"] == template
    await create_product(api, admin, "TEE-2", stock=5)
    await api.call(
        "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": "TEE-2"}
    )
    buyer = viewer_token("hand")
    buy_now = await api.call(
        "POST",
        f"/api/v1/shows/{show['id']}/handoff",
        auth=buyer,
        json_body={"items": [{"sku": "TEE-2", "quantity": 2}]},
    )
    assert buy_now.status == 200, buy_now.text
    url = urlsplit(buy_now.body["url"])
    assert url.netloc == "shop.example" and url.path == "/cart/TEE-2:2"
    query = parse_qs(url.query)
    assert query["show"] == [show["id"]] and query["ref"] == ["showroom"] and query["pin"][0]
    native = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=buyer,
        json_body={"show_id": show["id"], "items": [{"sku": "TEE-2", "quantity": 1}]},
    )
    assert native.status == 409 and "handoff" in native.body["detail"]
    empty = await api.call("POST", f"/api/v1/shows/{show['id']}/handoff", auth=buyer, json_body={})
    assert empty.status == 409 and "empty" in empty.body["detail"]
    await api.call("POST", f"{CART}/items", auth=buyer, json_body={"sku": "TEE-2"})
    from_cart = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/handoff", auth=buyer, json_body={}
    )
    assert urlsplit(from_cart.body["url"]).path == "/cart/TEE-2:1"
    product = await api.call("GET", "/api/v1/products/TEE-2", auth=admin)
    assert product.body["stock"] == 5  # the brand's shop takes the order, not Showroom


def test_claim_words_pick_one_pinned_product() -> None:
    assert claim_rules.parse("+1", "+1") == ""
    assert claim_rules.parse("＋１ Ｍ 紅色", "+1") == "m 紅色"  # a phone's full-width keyboard
    assert claim_rules.parse("+10", "+1") is None and claim_rules.parse("hi +1", "+1") is None
    pinned = [
        Candidate.of("TEE-RED-M", {"zh-HK": "經典T恤 紅色 M", "en": "Classic tee red M"}),
        Candidate.of("TEE-RED-L", {"zh-HK": "經典T恤 紅色 L"}),
        Candidate.of("TEE-BLUE-M", {"zh-HK": "經典T恤 藍色 M"}),
    ]
    assert claim_rules.resolve("m 紅色", pinned).sku == "TEE-RED-M"
    assert claim_rules.resolve("紅色 l", pinned).sku == "TEE-RED-L"
    assert claim_rules.resolve("m紅色", pinned).sku == "TEE-RED-M"
    for words, code in (("", "ambiguous"), ("m", "ambiguous"), ("xl", "no_match")):
        try:
            claim_rules.resolve(words, pinned)
        except ClaimRefused as refused:
            assert refused.code == code, words
        else:
            raise AssertionError(words)
    assert claim_rules.resolve("", pinned[:1]).sku == "TEE-RED-M"


async def test_comment_to_order_through_the_live_room(room: Any, db: Database, admin: str) -> None:
    _, connect, api = await room()
    show = await live_show(api, admin)
    await create_product(api, admin, "TEE-RED-M", title={"zh-HK": "經典T恤 紅色 M"}, stock=2)
    await create_product(api, admin, "TEE-RED-L", title={"zh-HK": "經典T恤 紅色 L"}, stock=0)
    host = await connect(await host_token(db, show["id"]))
    mei = await connect(viewer_token("mei", "Mei"))
    other = await connect(viewer_token("ho", "Ho"))
    for client in (host, mei, other):
        assert (await client.call("join", {"show_id": show["id"]}))["ok"]

    nothing = await mei.call("chat:send", {"text": "+1"})
    assert nothing["ok"] and nothing["claim"]["code"] == "nothing_pinned"
    for sku in ("TEE-RED-M", "TEE-RED-L"):
        assert (await host.call("product:pin", {"sku": sku}))["ok"]

    vague = await mei.call("chat:send", {"text": "+1"})
    assert vague["claim"]["code"] == "ambiguous"
    assert {c["sku"] for c in vague["claim"]["choices"]} == {"TEE-RED-M", "TEE-RED-L"}
    sold_out = await mei.call("chat:send", {"text": "+1 L"})
    assert sold_out["claim"]["code"] == "sold_out"
    claimed = await mei.call("chat:send", {"text": "+1 M 紅色"})
    assert claimed["ok"] and claimed["message"]["text"] == "+1 M 紅色"  # still a chat message
    assert claimed["claim"]["ok"] and claimed["claim"]["sku"] == "TEE-RED-M"
    assert claimed["claim"]["cart_quantity"] == 1
    again = await mei.call("chat:send", {"text": "+1 m"})
    assert again["claim"]["cart_quantity"] == 2
    third = await mei.call("chat:send", {"text": "+1 m"})  # only 2 in stock
    assert third["claim"]["code"] == "sold_out" and "only 2" in third["claim"]["message"]
    chatter = await other.call("chat:send", {"text": "+10 好靚"})
    assert "claim" not in chatter  # not a claim
    host_says = await host.call("chat:send", {"text": "+1"})
    assert "claim" not in host_says  # the host is not buying

    await settle()
    feed = [e for e in host.events("claim")]
    assert [(e["sku"], e["author_name"], e["cart_quantity"]) for e in feed] == [
        ("TEE-RED-M", "Mei", 1),
        ("TEE-RED-M", "Mei", 2),
    ]
    assert "mei" not in str(feed)  # the member id never leaves the server
    cart = (await api.call("GET", CART, auth=viewer_token("mei"))).body
    assert [(x["sku"], x["quantity"], x["show_id"]) for x in cart["items"]] == [
        ("TEE-RED-M", 2, show["id"])
    ]
    listed = await api.call(
        "GET", f"/api/v1/shows/{show['id']}/claims", auth=await host_token(db, show["id"])
    )
    assert listed.status == 200 and [c["cart_quantity"] for c in listed.body["items"]] == [2, 1]
    assert listed.body["items"][0]["author_id"] == feed[0]["author_id"]
    forbidden = await api.call("GET", f"/api/v1/shows/{show['id']}/claims", auth=viewer_token())
    assert forbidden.status == 403

    # The show's keyword is the brand's choice; null turns claims off.
    changed = await api.call(
        "PATCH", f"/api/v1/shows/{show['id']}", auth=admin, json_body={"claim_keyword": "我要"}
    )
    assert changed.status == 200 and changed.body["claim_keyword"] == "我要"
    assert "claim" not in await other.call("chat:send", {"text": "+1 m"})
    wants = await other.call("chat:send", {"text": "我要 M"})
    assert wants["claim"]["ok"]
    await api.call(
        "PATCH", f"/api/v1/shows/{show['id']}", auth=admin, json_body={"claim_keyword": None}
    )
    assert "claim" not in await other.call("chat:send", {"text": "我要 M"})


async def test_the_funnel_counts_people_and_steps_and_reads_sales(
    room: Any, db: Database, admin: str
) -> None:
    _, connect, api = await room()
    show = await live_show(api, admin)
    await create_product(api, admin, "BAG-9", price=hkd(50000), compare_at_price=None, stock=9)
    host = await connect(await host_token(db, show["id"]))
    await host.call("join", {"show_id": show["id"]})
    await host.call("product:pin", {"sku": "BAG-9"})
    viewers = [await connect(viewer_token(f"f{n}")) for n in range(3)]
    for n, client in enumerate(viewers):
        await client.call("join", {"show_id": show["id"]})
        for _ in range(3):  # a card shown three times to one member counts once
            shown = await client.call("product:seen", {"sku": "BAG-9", "step": "card_shown"})
            assert shown["ok"]
        if n < 2:
            await client.call("product:seen", {"sku": "BAG-9", "step": "card_opened"})
    bad = await viewers[0].call("product:seen", {"sku": "NOT-PINNED", "step": "card_shown"})
    assert bad["error"]["code"] == "not_pinned"
    wrong = await viewers[0].call("product:seen", {"sku": "BAG-9", "step": "bought"})
    assert wrong["error"]["code"] == "bad_payload" and wrong["error"]["field"] == "step"

    buyer = viewer_token("f0")
    await api.call(
        "POST", f"{CART}/items", auth=buyer, json_body={"sku": "BAG-9", "show_id": show["id"]}
    )
    order = await api.call("POST", f"{CART}/checkout", auth=buyer, json_body={})
    confirmed = await api.call(
        "POST",
        f"/api/v1/orders/{order.body['id']}/confirm",
        auth=buyer,
        json_body={"contact": {"name": "F"}, "payment_method": "pay_later"},
    )
    assert confirmed.status == 200
    funnel = await api.call("GET", f"/api/v1/shows/{show['id']}/funnel", auth=admin)
    assert funnel.status == 200, funnel.text
    [bag] = funnel.body["products"]
    assert (bag["card_shown"], bag["card_opened"], bag["added_to_cart"]) == (3, 2, 1)
    assert (bag["checkout_started"], bag["orders"], bag["units"]) == (1, 1, 1)
    assert bag["revenue"] == hkd(50000)
    assert funnel.body["orders"] == 1 and funnel.body["revenue"] == [hkd(50000)]
    assert (await api.call("GET", f"/api/v1/shows/{show['id']}/funnel", auth=buyer)).status == 403
