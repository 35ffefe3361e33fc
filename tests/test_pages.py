"""The watch and studio pages in headless Chromium, without video: the live room and the
API only. A host opens the studio, a member opens the watch page; they chat both ways, the
host pins a product from the rail, the viewer buys it now and confirms, then claims it with
"+1" and the host's claims feed shows the claim. Screenshots at phone and desktop sizes go to
$SHOWROOM_SCREENSHOTS (default: the test's tmp_path)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from media.clips import FFMPEG
from server.app import create_app
from server.config import Settings
from server.keys import OPENAPI
from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import (
    Api,
    create_product,
    create_show,
    host_token,
    place_pins,
    settled_video,
    unavailable,
    upload_video,
    viewer_token,
)
from tests.media_peers import film

CHROMIUM = "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
SKU = "SERUM-30"
IMAGE = "/web/demo/demo-serum-30.svg"  # same origin: the pages load nothing from elsewhere


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('pages') / 'showroom.db'}"
    upgrade(url)
    yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        unavailable(f"Chromium is not installed at {CHROMIUM} (Debian package chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM)
        yield instance
        await instance.close()


@pytest.fixture
async def server(
    db: Database, settings: Settings, aiohttp_client: Any
) -> AsyncIterator[tuple[str, Api]]:
    app = create_app(replace(settings, public_url="http://127.0.0.1", engagement_flush_seconds=0.5))
    client = await aiohttp_client(app)
    yield str(client.make_url("")).rstrip("/"), Api(client, app[OPENAPI])


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    target = Path(os.environ.get("SHOWROOM_SCREENSHOTS") or tmp_path / "screenshots")
    target.mkdir(parents=True, exist_ok=True)
    return target


def watch_errors(page: Any, name: str, errors: list[str], origin: str) -> None:
    page.on("pageerror", lambda e: errors.append(f"{name}: {e}"))
    # Nothing is loaded from another origin.
    page.on(
        "request",
        lambda r: (
            None
            if r.url.startswith((origin, "data:", "blob:"))
            else errors.append(f"{name} loaded {r.url}")
        ),
    )


async def test_host_and_viewer_chat_pin_buy_and_claim(
    browser: Any, server: tuple[str, Api], db: Database, admin: str, shots: Path
) -> None:
    base, api = server
    await create_product(
        api,
        admin,
        SKU,
        title={"zh-HK": "保濕精華 30ml", "en": "Hydrating Serum 30ml"},
        price={"amount_minor": 29900, "currency": "HKD"},
        compare_at_price={"amount_minor": 39900, "currency": "HKD"},
        image_url=IMAGE,
        stock=4,
    )
    for size in ("M", "L"):
        await create_product(
            api,
            admin,
            f"TEE-{size}",
            title={"zh-HK": f"棉質T恤 {size}", "en": f"Cotton tee {size}"},
            price={"amount_minor": 12900, "currency": "HKD"},
            compare_at_price=None,
            image_url=None,
            stock=20,
        )
    show = await create_show(api, admin, title="冬日護膚直播")
    token = await host_token(db, show["id"])
    started = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)
    assert started.status == 200, started.text
    errors: list[str] = []

    # The host opens the studio and joins the live room.
    studio = await browser.new_page(viewport=DESKTOP)
    watch_errors(studio, "studio", errors, base)
    await studio.goto(f"{base}/studio/{show['id']}")
    await studio.fill("#token", token)
    await studio.click("#load")
    await studio.wait_for_selector("body[data-joined='1']")
    await studio.wait_for_selector(f"#rail [data-sku='{SKU}'] button")

    # A member opens the watch page from the brand's app (token in the fragment).
    watch = await browser.new_page(viewport=PHONE)
    watch_errors(watch, "watch", errors, base)
    await watch.goto(f"{base}/watch/{show['id']}#token={viewer_token('fan-1', 'Mei')}")
    await watch.wait_for_selector("body[data-joined='1']")
    assert await watch.get_attribute("html", "lang") == "zh-HK"
    assert await watch.inner_text("#chat-send") == "發送"

    # Chat both ways, rendered as text: markup arrives as the characters typed.
    await watch.fill("#chat-text", "<b>幾時開始？</b>")
    await watch.press("#chat-text", "Enter")
    line = studio.locator("#messages .message", has_text="幾時開始")
    await line.wait_for()
    assert "<b>幾時開始？</b>" in await line.inner_text()
    assert await studio.locator("#messages b").count() == 0
    await studio.fill("#chat-text", "Welcome, everyone!")
    await studio.click("#chat-send")
    await watch.locator("#messages .message.staff", has_text="Welcome, everyone!").wait_for()
    # The viewer count reaches the studio (presence, at most once a second).
    await studio.wait_for_function(
        "Number(document.getElementById('viewers').dataset.count) >= 1", timeout=5_000
    )

    # The host pins the product from the rail; the viewer's card appears, live.
    await studio.click(f"#rail [data-sku='{SKU}'] button")
    await studio.wait_for_selector(f"#pinned [data-sku='{SKU}']")
    card = watch.locator(f"#pinned [data-sku='{SKU}']")
    await card.wait_for()
    card_text = await card.inner_text()
    assert "保濕精華" in card_text and "299" in card_text and "399" in card_text
    assert "只剩 4 件" in card_text  # low stock badge
    await watch.screenshot(path=str(shots / "watch-phone.png"))

    # Hearts: a tap animates and the total comes back from the room.
    await watch.click("#heart")
    await watch.wait_for_function(
        "document.getElementById('heart-total').textContent.includes('1')", timeout=5_000
    )

    # Buy now: the sheet opens, checkout reserves, the confirm form places the order.
    await card.locator("button").click()
    await watch.click("#buy-now")
    await watch.wait_for_selector("#confirm-form")
    await watch.fill("#confirm-name", "陳美")
    await watch.fill("#confirm-phone", "+852 9123 4567")
    await watch.check("input[name=payment][value=cash_on_delivery]")
    await watch.screenshot(path=str(shots / "watch-phone-checkout.png"))
    await watch.click("#confirm-submit")
    placed = watch.locator("#order-placed")
    await placed.wait_for()
    order_id = await placed.get_attribute("data-order")
    assert await placed.get_attribute("data-status") == "placed"
    orders = await api.call("GET", "/api/v1/orders?status=placed", auth=admin)
    assert orders.status == 200, orders.text
    [order] = [o for o in orders.body["items"] if o["id"] == order_id]
    assert order["status"] == "placed" and order["show_id"] == show["id"]
    assert order["payment_method"] == "cash_on_delivery"
    assert order["total"] == {"amount_minor": 29900, "currency": "HKD"}
    # The reservation took one unit: the card's stock follows (products.stock).
    await watch.keyboard.press("Escape")
    await watch.locator(f"#pinned [data-sku='{SKU}']", has_text="只剩 3 件").wait_for()

    # "+1" in chat: the private answer goes to the viewer, the claim to the host's feed.
    await watch.fill("#chat-text", "+1")
    await watch.press("#chat-text", "Enter")
    await watch.wait_for_selector("#claim[data-code='ok']")
    assert "保濕精華" in await watch.inner_text("#claim")
    await watch.wait_for_function("document.getElementById('cart-count').textContent === '1'")
    await studio.locator(f"#claims [data-sku='{SKU}']", has_text="Mei").wait_for()

    # A flash price from the studio: the viewer's card shows it with a countdown.
    await studio.fill("#flash-price", "199.00")
    await studio.fill("#flash-minutes", "5")
    await studio.click(f"#pinned [data-sku='{SKU}'] button.flash")
    flash_card = watch.locator(f"#pinned [data-sku='{SKU}']", has_text="199.00")
    await flash_card.wait_for()
    assert "299.00" in await flash_card.inner_text()  # the usual price, struck through
    assert "限時優惠 0" in await flash_card.locator(".countdown").inner_text()
    assert await studio.input_value("#flash-price") == ""  # used once, then cleared

    # Two sizes pinned (found with the rail's search): "+1 T恤" asks which one, and the
    # viewer answers by tapping a choice.
    await studio.fill("#product-q", "TEE")
    await studio.press("#product-q", "Enter")
    await studio.locator("#rail [data-sku='TEE-L']").wait_for()
    for sku in ("TEE-M", "TEE-L"):
        await studio.click(f"#rail [data-sku='{sku}'] button")
        await watch.locator(f"#pinned [data-sku='{sku}']").wait_for()
    await watch.fill("#chat-text", "+1 T恤")
    await watch.press("#chat-text", "Enter")
    await watch.wait_for_selector("#claim[data-code='ambiguous']")
    assert await watch.locator("#claim button.choice").count() == 2
    await watch.click("#claim button.choice[data-sku='TEE-L']")
    await watch.wait_for_selector("#claim[data-code='ok']")
    assert "棉質T恤 L" in await watch.inner_text("#claim")
    await watch.wait_for_function("document.getElementById('cart-count').textContent === '2'")
    await studio.locator("#claims [data-sku='TEE-L']").wait_for()

    # The player reported the funnel: the card was shown and opened.
    funnel = await api.call("GET", f"/api/v1/shows/{show['id']}/funnel", auth=admin)
    [serum] = [p for p in funnel.body["products"] if p["sku"] == SKU]
    assert serum["card_shown"] == 1 and serum["card_opened"] == 1

    # Q&A, apart from chat: the viewer asks in the Q&A tab, the host's queue gets it, the
    # viewer's upvote counts there, and the host answers it.
    await watch.click("#tab-qa")
    assert await watch.get_attribute("#tab-qa", "aria-selected") == "true"
    assert await watch.is_hidden("#chat-panel")
    await watch.fill("#ask-text", "有冇細支裝？")
    await watch.press("#ask-text", "Enter")
    asked = studio.locator("#questions .question", has_text="有冇細支裝")
    await asked.wait_for()
    await (
        watch.locator("#questions .question", has_text="有冇細支裝").locator("button.vote").click()
    )
    await watch.locator(
        "#questions .question[data-votes='1'] button.vote[aria-pressed='true']"
    ).wait_for()
    await studio.locator("#questions .question[data-votes='1']", has_text="有冇細支裝").wait_for()
    await asked.locator("button[data-mark='answering']").click()
    await watch.locator(
        "#questions .question[data-state='answering']", has_text="正在回答"
    ).wait_for()
    await studio.locator(
        "#questions .question[data-state='answering'] [data-mark='answered']"
    ).click()
    await asked.wait_for(state="detached")  # answered: off the host's queue
    await watch.locator("#questions .question[data-state='answered']").wait_for()
    await watch.screenshot(path=str(shots / "watch-phone-qa.png"))
    await watch.press("#tab-qa", "ArrowLeft")  # back to chat, by keyboard
    assert await watch.get_attribute("#tab-chat", "aria-selected") == "true"

    # Sharing: the member's link brings a friend, and the member earns referral points.
    await watch.click("#share")
    await watch.wait_for_function("document.getElementById('share').dataset.url")
    link = await watch.get_attribute("#share", "data-url")
    assert link is not None and link.startswith(f"{base}/watch/{show['id']}?ref=")
    friend = await browser.new_page(viewport=PHONE)
    watch_errors(friend, "friend", errors, base)
    await friend.goto(f"{link}#token={viewer_token('fan-2', 'Ka Yan')}")
    await friend.wait_for_selector("body[data-joined='1']")

    async def referral_points() -> int:
        entries = await api.call("GET", "/api/v1/members/fan-1/points/entries", auth=admin)
        assert entries.status == 200, entries.text
        return sum(e["points"] for e in entries.body["items"] if e["reason"] == "referral")

    for _ in range(100):  # the engagement flush runs every 0.5 s in this test
        if await referral_points():
            break
        await friend.wait_for_timeout(100)
    assert await referral_points() == 20  # the default rules' referral_points
    await friend.close()

    # The studio deletes a message: it leaves the viewer's chat too.
    await studio.locator("#messages .message", has_text="幾時開始").locator("button.delete").click()
    await watch.locator("#messages .message", has_text="幾時開始").wait_for(state="detached")

    # The cart sheet lists the claimed product.
    await watch.click("#cart-button")
    await watch.locator(f"#cart-body [data-sku='{SKU}']").wait_for()
    assert await watch.locator("#cart-body [data-sku='TEE-L']").count() == 1
    await watch.keyboard.press("Escape")

    # The host mutes the member from one of their messages: the next one is refused.
    await studio.locator("#messages .message", has_text="Mei").first.locator("button.mute").click()
    await studio.locator(
        "#messages .message button.mute[disabled]", has_text="已禁言"
    ).first.wait_for()
    assert (
        await studio.locator("#messages .message", has_text="Mei")
        .locator("button.mute:not([disabled])")
        .count()
        == 0
    )  # every message of hers says so
    await watch.fill("#chat-text", "仲有貨嗎？")
    await watch.press("#chat-text", "Enter")
    await watch.wait_for_selector("#chat-error[data-code='muted']:not([hidden])")
    assert "禁言" in await watch.inner_text("#chat-error")

    await watch.screenshot(path=str(shots / "watch-phone-after.png"))
    await studio.screenshot(path=str(shots / "studio-desktop.png"), full_page=True)
    await watch.set_viewport_size(DESKTOP)
    await watch.screenshot(path=str(shots / "watch-desktop.png"))
    await studio.set_viewport_size(PHONE)
    await studio.screenshot(path=str(shots / "studio-phone.png"), full_page=True)

    assert errors == []
    await watch.close()
    await studio.close()


async def test_a_guest_buys_now_in_a_handoff_show_in_english(
    browser: Any, server: tuple[str, Api], db: Database, admin: str
) -> None:
    base, api = server
    await create_product(api, admin, SKU, image_url=IMAGE, stock=2)
    template = f"{base}/shop/cart/{{items}}?show={{show_id}}"
    show = await create_show(
        api, admin, title="Spring live", locale="en", checkout_mode="handoff", handoff_url=template
    )
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": SKU}
    )
    assert pinned.status == 200, pinned.text
    errors: list[str] = []

    watch = await browser.new_page(viewport=PHONE)  # a guest: no token
    watch_errors(watch, "watch", errors, base)
    await watch.goto(f"{base}/watch/{show['id']}")
    await watch.wait_for_selector("body[data-joined='1']")
    assert await watch.get_attribute("html", "lang") == "en"
    card = watch.locator(f"#pinned [data-sku='{SKU}']")
    assert "Only 2 left" in await card.inner_text()
    # Past the chat burst, the ack's error is shown to the sender.
    await watch.evaluate(
        """() => { const input = document.getElementById('chat-text');
          for (let i = 0; i < 8; i++) {
            input.value = `hello ${i}`;
            document.getElementById('chat-form').requestSubmit();
          } }"""
    )
    await watch.wait_for_selector("#chat-error[data-code='rate_limited']:not([hidden])")
    assert "too fast" in await watch.inner_text("#chat-error")

    await card.locator("button").click()
    assert await watch.inner_text("#buy-now") == "Buy now"
    # Hand-off: Buy now goes to the brand's own cart with the item and the show.
    async with watch.expect_navigation(url=f"{base}/shop/cart/**"):
        await watch.click("#buy-now")
    assert f"{SKU}%3A1" in watch.url or f"{SKU}:1" in watch.url
    assert f"show={show['id']}" in watch.url
    assert errors == []
    await watch.close()


EMBED_EVENTS = (
    "showroom:ready",
    "showroom:product_opened",
    "showroom:add_to_cart",
    "showroom:buy_now",
    "showroom:handoff",
)


def product_page(showroom: str, show_id: str, **data: str) -> str:
    """A brand's product page on its own site: the one script tag, and a listener that keeps
    the embed's events (and keeps the page where it is on a hand-off)."""
    attributes = " ".join(f'data-{k}="{v}"' for k, v in data.items())
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Serum</title></head>
<body><h1>Hydrating Serum</h1>
<script>
  window.events = [];
  for (const type of {list(EMBED_EVENTS)!r}) document.addEventListener(type, (event) => {{
    window.events.push({{ type: event.type, detail: event.detail }});
    if (event.type === "showroom:handoff") event.preventDefault();
  }});
</script>
<script src="{showroom}/embed.js" data-show="{show_id}" {attributes}></script>
</body></html>"""


async def test_the_embed_on_a_brands_page_of_another_site(
    browser: Any,
    server: tuple[str, Api],
    db: Database,
    admin: str,
    aiohttp_server: Any,
    shots: Path,
) -> None:
    from aiohttp import web

    base, api = server
    await create_product(api, admin, SKU, image_url=IMAGE, stock=5)
    # A hand-off show: the brand's own cart takes over at checkout.
    template = "https://shop.example.com/cart/{items}?show={show_id}"
    show = await create_show(
        api, admin, title="Spring live", locale="en", checkout_mode="handoff", handoff_url=template
    )
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": SKU}
    )
    assert pinned.status == 200, pinned.text

    # The brand's site: another site than Showroom's (localhost against 127.0.0.1), so the
    # browser treats the iframe as third-party (no cookies of Showroom's go with it).
    pages = {
        "/serum": product_page(base, show["id"]),
        "/serum-own-cart": product_page(base, show["id"], cart="host"),
    }
    brand = web.Application()

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=pages[request.path], content_type="text/html")

    for path in pages:
        brand.router.add_get(path, serve)
    site = await aiohttp_server(brand)
    brand_url = f"http://localhost:{site.port}"
    assert not brand_url.startswith(base)
    errors: list[str] = []

    async def events(page: Any, count: int) -> list[dict[str, Any]]:
        await page.wait_for_function(f"window.events.length >= {count}", timeout=10_000)
        found: list[dict[str, Any]] = await page.evaluate("window.events")
        return found

    page = await browser.new_page(viewport=PHONE)
    page.on("pageerror", lambda e: errors.append(f"brand page: {e}"))
    await page.goto(f"{brand_url}/serum")
    frame = page.frame_locator("iframe[title='Live shopping']")
    await frame.locator("body[data-joined='1']").wait_for()  # a guest, joined by token
    [ready] = await events(page, 1)
    assert ready["type"] == "showroom:ready"
    assert ready["detail"] == {
        "show_id": show["id"],
        "title": "Spring live",
        "state": "live",
        "locale": "en",
    }
    await page.screenshot(path=str(shots / "embed-phone.png"))

    # Opening the card and adding to Showroom's cart: both reach the brand's page.
    await frame.locator(f"#pinned [data-sku='{SKU}'] button").click()
    await frame.locator("#add-to-cart").click()
    await frame.locator("#cart-count", has_text="1").wait_for()  # the guest token's cart
    opened, added = (await events(page, 3))[1:3]
    assert opened["type"] == "showroom:product_opened"
    assert opened["detail"]["sku"] == SKU and opened["detail"]["price"]["currency"] == "HKD"
    assert added["type"] == "showroom:add_to_cart"
    assert (added["detail"]["sku"], added["detail"]["quantity"], added["detail"]["cart"]) == (
        SKU,
        1,
        "showroom",
    )
    # Buy now in a hand-off show: the brand's page gets the URL (and here keeps its place).
    await frame.locator("#buy-now").click()
    handoff = (await events(page, 4))[3]
    assert handoff["type"] == "showroom:handoff"
    assert handoff["detail"]["url"].startswith("https://shop.example.com/cart/")
    assert f"show={show['id']}" in handoff["detail"]["url"]
    assert page.url == f"{brand_url}/serum"

    # data-cart="host": Showroom's cart is not used; the brand's page gets the items.
    own = await browser.new_page(viewport=PHONE)
    own.on("pageerror", lambda e: errors.append(f"brand page (own cart): {e}"))
    await own.goto(f"{brand_url}/serum-own-cart")
    frame = own.frame_locator("iframe")
    await frame.locator("body[data-joined='1']").wait_for()
    await frame.locator(f"#pinned [data-sku='{SKU}'] button").click()
    await frame.locator("#add-to-cart").click()
    await frame.locator("#buy-now").click()
    kinds = [(e["type"], e["detail"].get("cart")) for e in await events(own, 4)]
    assert kinds == [
        ("showroom:ready", None),
        ("showroom:product_opened", None),
        ("showroom:add_to_cart", "host"),
        ("showroom:buy_now", "host"),
    ]
    assert await frame.locator("#cart-count").inner_text() == "0"

    # A message from anyone else (here the brand page itself) is not taken for Showroom's.
    await own.evaluate(
        """() => window.postMessage({ source: "showroom", type: "showroom:handoff",
             detail: { url: "https://evil.example.com/" } }, "*")"""
    )
    await own.wait_for_timeout(300)
    assert len(await own.evaluate("window.events")) == 4
    assert errors == []
    await own.close()
    await page.close()


async def test_the_replay_shows_each_product_at_its_moment_and_embeds_by_sku(
    browser: Any,
    server: tuple[str, Api],
    db: Database,
    admin: str,
    settings: Settings,
    aiohttp_server: Any,
    shots: Path,
) -> None:
    from aiohttp import web

    base, api = server
    await create_product(api, admin, SKU, image_url=IMAGE, stock=5)
    await create_product(api, admin, "TEE-M", stock=5, image_url=None)
    show = await create_show(api, admin, title="Winter skincare live", locale="en")
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    for sku in (SKU, "TEE-M"):
        pinned = await api.call(
            "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": sku}
        )
        assert pinned.status == 200, pinned.text
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=token)).status == 200
    start = await film(Path(settings.data_dir) / "hls" / show["id"])
    # The serum was on screen from 1 s to 4 s into the video, the tee from 5 s to the end.
    second = timedelta(seconds=1)
    await place_pins(
        db,
        show["id"],
        {SKU: (start + second, start + 4 * second), "TEE-M": (start + 5 * second, None)},
    )
    errors: list[str] = []

    watch = await browser.new_page(viewport=PHONE)
    watch_errors(watch, "replay", errors, base)
    await watch.goto(f"{base}/watch/{show['id']}?t=5.5")
    await watch.wait_for_selector("body[data-replay='1']")
    assert await watch.inner_text("#state") == "Replay"
    await watch.wait_for_function(
        "document.getElementById('player').currentTime > 5.5", timeout=20_000
    )
    # From 5 s: the tee's card alone.
    await watch.wait_for_selector("body[data-cards='TEE-M']")
    assert await watch.locator("#pinned [data-sku]").count() == 1
    # The chapters jump to each product's moment: the serum's card comes back at 1 s.
    chapters = watch.locator("#chapters button.chapter")
    assert await chapters.count() == 2
    assert "0:01" in await chapters.nth(0).inner_text()
    await watch.click(f"#chapters button[data-sku='{SKU}']")
    await watch.wait_for_selector(f"body[data-cards='{SKU}']")
    card = watch.locator(f"#pinned [data-sku='{SKU}']")
    assert "Only 5 left" in await card.inner_text()
    # The replay sells: the card opens and the product goes in the cart.
    await card.locator("button").click()
    await watch.click("#add-to-cart")
    await watch.wait_for_function("document.getElementById('cart-count').textContent === '1'")
    await watch.keyboard.press("Escape")
    assert await watch.is_disabled("#chat-send")  # chat closed with the show
    await watch.screenshot(path=str(shots / "watch-phone-replay.png"))

    # A product only an uploaded video shows (no show pinned it), tagged at 1 s.
    await create_product(api, admin, "CAP-1", stock=5, image_url=None)
    movie = Path(settings.data_dir) / "cap.mp4"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:d=3",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(movie)],
        check=True,
    )  # fmt: skip
    sent = await upload_video(
        api, admin, movie.read_bytes(), title="Cap lookbook", tags='[{"sku": "CAP-1", "at_s": 1}]'
    )
    assert sent.status == 202, sent.text
    uploaded = await settled_video(api, admin, sent.body["id"])
    assert uploaded["state"] == "done", uploaded

    # On a brand's product page (another site), data-sku embeds that replay at the moment
    # the product was pinned, or the upload that shows it; a product with no video leaves
    # the page as it was.
    page_html = {
        "/serum": f"""<!doctype html><html><body><h1>Serum</h1>
<script>window.events = [];
document.addEventListener("showroom:ready", (e) => window.events.push(e.detail));</script>
<script src="{base}/embed.js" data-sku="{SKU}"></script></body></html>""",
        "/tee-l": f"""<!doctype html><html><body><h1>Tee L</h1>
<script>window.none = [];
document.addEventListener("showroom:no_videos", (e) => window.none.push(e.detail));</script>
<script src="{base}/embed.js" data-sku="NOTHING-HERE"></script></body></html>""",
        "/cap": f"""<!doctype html><html><body><h1>Cap</h1>
<script>window.events = [];
document.addEventListener("showroom:ready", (e) => window.events.push(e.detail));</script>
<script src="{base}/embed.js" data-sku="CAP-1"></script></body></html>""",
    }

    async def serve(request: web.Request) -> web.Response:
        return web.Response(text=page_html[request.path], content_type="text/html")

    brand = web.Application()
    for path in page_html:
        brand.router.add_get(path, serve)
    site = await aiohttp_server(brand)
    page = await browser.new_page(viewport=PHONE)
    page.on("pageerror", lambda e: errors.append(f"brand page: {e}"))
    await page.goto(f"http://localhost:{site.port}/serum")
    frame = page.frame_locator("iframe")
    await frame.locator("body[data-replay='1']").wait_for()
    await frame.locator(f"body[data-cards='{SKU}']").wait_for(timeout=20_000)
    await page.wait_for_function("window.events.length === 1")
    assert (await page.evaluate("window.events"))[0]["show_id"] == show["id"]
    assert await page.get_attribute(".showroom-embed", "data-sku") == SKU
    await page.goto(f"http://localhost:{site.port}/tee-l")
    await page.wait_for_function("window.none.length === 1")
    assert await page.locator("iframe").count() == 0
    # The upload plays in a plain <video> on the brand's page, from the product's tag.
    await page.goto(f"http://localhost:{site.port}/cap")
    await page.wait_for_function("window.events.length === 1")
    assert (await page.evaluate("window.events"))[0]["video_id"] == uploaded["id"]
    assert await page.locator("iframe").count() == 0
    player = page.locator(".showroom-embed[data-sku='CAP-1'] video")
    assert await player.get_attribute("poster") == base + uploaded["poster_url"]
    await page.wait_for_function(
        "document.querySelector('.showroom-embed video').readyState >= 1", timeout=10_000
    )
    assert await page.evaluate("document.querySelector('.showroom-embed video').currentTime") == 1
    assert await page.evaluate("document.querySelector('.showroom-embed video').duration") > 2.9
    # Its first play counts once for this browser (a beacon), and ranks the video.
    for _ in range(2):
        await page.evaluate(
            "() => { const v = document.querySelector('.showroom-embed video'); v.muted = true;"
            " return v.play(); }"
        )
        await page.wait_for_function(
            "document.querySelector('.showroom-embed video').currentTime > 1.2"
        )
        await page.reload()
        await page.wait_for_function("window.events.length === 1")

    async def counted() -> int:
        listed = await api.call("GET", "/api/v1/products/CAP-1/videos")
        return int(listed.body["items"][0]["viewers"])

    for _ in range(50):
        if await counted() == 1:
            break
        await asyncio.sleep(0.1)
    assert await counted() == 1  # two plays, one browser
    assert errors == []
    await page.close()
    await watch.close()


async def test_the_watch_page_falls_back_to_live_hls_when_webrtc_cannot_connect(
    browser: Any, server: tuple[str, Api], db: Database, admin: str, settings: Settings
) -> None:
    base, api = server
    show = await create_show(api, admin, title="Behind a firewall", locale="en")
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    # The show's live HLS as the server writes it while the host publishes: an EVENT
    # playlist that grows by a 2 s segment every 2 s.
    folder = Path(settings.data_dir) / "hls" / show["id"]
    await film(folder, seconds=30)
    playlist = folder / "index.m3u8"
    text = await asyncio.to_thread(playlist.read_text)
    text = text.replace("#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-PLAYLIST-TYPE:EVENT")
    text = text.replace("#EXT-X-ENDLIST\n", "")
    head, *segments = re.split(r"(?m)^(?=#EXTINF)", text)
    partial = folder / "index.m3u8.tmp"

    async def grow() -> None:
        for n in range(3, len(segments) + 1):
            # Replaced whole, as the server does (a player never reads half a playlist).
            await asyncio.to_thread(partial.write_text, head + "".join(segments[:n]))
            await asyncio.to_thread(os.replace, partial, playlist)
            await asyncio.sleep(2)

    growing = asyncio.create_task(grow())
    errors: list[str] = []

    # A network where WHEP never gets through: a proxy refuses it every time.
    blocked = await browser.new_page(viewport=PHONE)
    watch_errors(blocked, "blocked", errors, base)
    whep: list[str] = []

    async def refuse(route: Any) -> None:
        whep.append(route.request.url)
        await route.fulfill(status=502, content_type="text/plain", body="blocked by proxy")

    await blocked.route("**/whep/**", refuse)
    await blocked.goto(f"{base}/watch/{show['id']}")
    await blocked.wait_for_selector("body[data-transport='webrtc']")
    await blocked.wait_for_selector("body[data-transport='hls']", timeout=20_000)
    assert len(whep) == 3  # three attempts, then HLS
    await blocked.wait_for_function(
        "document.getElementById('player').currentTime > 0.5", timeout=20_000
    )
    assert await blocked.evaluate("document.getElementById('player').videoWidth") == 320
    await blocked.wait_for_function(
        "document.getElementById('player-state').dataset.state === 'playing'"
    )

    # A browser without WebRTC at all goes straight to HLS.
    bare = await browser.new_page(viewport=PHONE)
    watch_errors(bare, "no webrtc", errors, base)
    await bare.add_init_script("delete window.RTCPeerConnection")
    await bare.goto(f"{base}/watch/{show['id']}")
    await bare.wait_for_selector("body[data-transport='hls']")
    await bare.wait_for_function(
        "document.getElementById('player').currentTime > 0.5", timeout=20_000
    )
    assert errors == []
    growing.cancel()
    await blocked.close()
    await bare.close()


async def test_the_watch_page_comes_back_on_its_own_after_the_server_restarts(
    browser: Any, database_url: str, db: Database, admin: str, tmp_path: Path
) -> None:
    import signal

    import aiohttp

    from tests.test_multinode import free_port
    from tests.test_watch_time import _serve

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await _serve(database_url, tmp_path, port)
    page = None
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            async with http.post(
                f"{base}/api/v1/shows",
                json={"title": "重新連線", "scheduled_start": "2026-12-01T12:00:00Z"},
            ) as r:
                show_id = (await r.json())["id"]
            async with http.post(f"{base}/api/v1/shows/{show_id}/start") as r:
                assert r.status == 200
        errors: list[str] = []
        page = await browser.new_page(viewport=PHONE)
        watch_errors(page, "watch", errors, base)
        await page.goto(f"{base}/watch/{show_id}#token={viewer_token('fan-9', 'Wing')}")
        await page.wait_for_selector("body[data-joined='1']")
        await page.fill("#chat-text", "斷線之前")
        await page.press("#chat-text", "Enter")
        await page.locator("#messages .message", has_text="斷線之前").wait_for()

        # The server dies without a goodbye, then comes back on the same address.
        process.send_signal(signal.SIGKILL)
        await process.wait()
        await page.wait_for_selector("body[data-joined='0']", timeout=15_000)
        assert "重新連線中" in await page.inner_text("#chat-error")
        process = await _serve(database_url, tmp_path, port)
        # The page reconnects and rejoins from a snapshot (history kept, nothing twice).
        await page.wait_for_selector("body[data-joined='1']", timeout=30_000)
        assert await page.is_hidden("#chat-error")
        assert await page.locator("#messages .message", has_text="斷線之前").count() == 1
        await page.fill("#chat-text", "重新連線之後")
        await page.press("#chat-text", "Enter")
        await page.locator("#messages .message", has_text="重新連線之後").wait_for()
        # An outage is not WebRTC failing: the player stays on WebRTC (WHEP).
        assert await page.get_attribute("body", "data-transport") == "webrtc"
        assert errors == []
    finally:
        if page is not None:
            await page.close()
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_simplified_chinese_show_speaks_simplified_chinese(
    browser: Any, server: tuple[str, Api], db: Database, admin: str
) -> None:
    base, api = server
    await create_product(
        api,
        admin,
        SKU,
        title={"zh-HK": "保濕精華", "zh-CN": "保湿精华", "en": "Serum"},
        image_url=IMAGE,
        stock=2,
    )
    show = await create_show(api, admin, title="冬季护肤直播", locale="zh-CN")
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": SKU}
    )
    assert pinned.status == 200, pinned.text
    errors: list[str] = []
    # A viewer whose browser says Traditional Chinese: the show's language wins.
    context = await browser.new_context(locale="zh-TW", viewport=PHONE)
    watch = await context.new_page()
    watch_errors(watch, "watch", errors, base)
    await watch.goto(f"{base}/watch/{show['id']}")
    await watch.wait_for_selector("body[data-joined='1']")
    assert await watch.get_attribute("html", "lang") == "zh-CN"
    assert await watch.inner_text("#chat-send") == "发送"
    assert await watch.inner_text("#tab-qa-label") == "问答"
    assert await watch.inner_text("#state") == "直播中"
    card = await watch.locator(f"#pinned [data-sku='{SKU}']").inner_text()
    assert "保湿精华" in card and "仅剩 2 件" in card and "HK$" in card
    await watch.click("#tab-qa")
    assert await watch.get_attribute("#ask-text", "placeholder") == "向主播提问…"
    assert errors == []
    await context.close()
