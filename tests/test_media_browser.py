"""The whole journey in headless Chromium, with real video: the host publishes a (fake)
camera over WHIP from the studio page and goes live, a viewer's watch page plays it over
WHEP, they chat both ways, the host pins a product, the viewer buys it now, the order shows
in admin, the viewer's points badge rises, and the host ends the show."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest

from server.app import create_app
from server.config import Settings
from server.keys import OPENAPI
from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import Api, create_product, create_show, host_token, unavailable, viewer_token

CHROMIUM = "/usr/bin/chromium"
FAKE_MEDIA = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('browser') / 'showroom.db'}"
    upgrade(url)
    yield url


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        unavailable(f"Chromium is not installed at {CHROMIUM} (Debian package chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=CHROMIUM, args=FAKE_MEDIA)
        yield instance
        await instance.close()


@pytest.fixture
async def server(
    db: Database, settings: Settings, aiohttp_client: Any
) -> AsyncIterator[tuple[str, Api]]:
    app = create_app(replace(settings, public_url="http://127.0.0.1", engagement_flush_seconds=0.5))
    client = await aiohttp_client(app)
    yield str(client.make_url("")).rstrip("/"), Api(client, app[OPENAPI])


async def until(check: Any, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_studio_publishes_and_the_watch_page_plays(
    browser: Any, server: tuple[str, Api], db: Database, admin: str
) -> None:
    base, api = server
    await create_product(api, admin, "SERUM-30", image_url=None, stock=5)
    show = await create_show(api, admin, title="Browser live")
    token = await host_token(db, show["id"])
    errors: list[str] = []

    studio = await browser.new_page()
    studio.on("pageerror", lambda e: errors.append(f"studio: {e}"))
    await studio.goto(f"{base}/studio/{show['id']}")
    await studio.fill("#token", token)
    await studio.click("#load")
    await studio.click("#preview")
    await studio.wait_for_function("document.getElementById('video').videoWidth > 0")
    await studio.click("#start")  # go live
    await studio.wait_for_function("!document.getElementById('broadcast').disabled")
    await studio.click("#broadcast")

    async def publishing() -> dict[str, Any] | None:
        report = (await api.call("GET", f"/api/v1/shows/{show['id']}/stream")).body
        return report if report["status"] == "publishing" and report["width"] else None

    report = await until(publishing, 20, "the studio's broadcast to arrive")
    assert report["video_codec"] in ("VP8", "H264") and report["audio_codec"] == "opus"
    print(f"Chromium published {report['video_codec']} {report['width']}x{report['height']}")

    watch = await browser.new_page()
    watch.on("pageerror", lambda e: errors.append(f"watch: {e}"))
    # A member arrives from the brand's app with a viewer token in the fragment.
    await watch.goto(f"{base}/watch/{show['id']}#token={viewer_token('fan-1', 'Fan')}")
    assert "token" not in watch.url  # the page takes it out of the address bar
    await watch.wait_for_function(
        "document.getElementById('player').videoWidth > 0", timeout=20_000
    )
    first = await watch.evaluate("document.getElementById('player').currentTime")
    await watch.wait_for_function(
        f"document.getElementById('player').currentTime > {first} + 1", timeout=10_000
    )
    size = await watch.evaluate(
        "[document.getElementById('player').videoWidth, document.getElementById('player').videoHeight]"
    )
    assert size[0] > 0 and size[1] > 0
    assert (await api.call("GET", f"/api/v1/shows/{show['id']}/stream")).body["viewers"] == 1
    # The studio shows the stream's health once it polls.
    await studio.wait_for_function(
        "document.getElementById('health').dataset.status === 'publishing'", timeout=10_000
    )
    assert "人觀看" in await studio.inner_text("#health")  # the show is zh-HK: "N watching"
    # Joining the live room earned the member points; their own badge shows the balance.
    await watch.wait_for_function(
        "document.getElementById('points').dataset.balance === '10'", timeout=10_000
    )
    assert "10" in await watch.inner_text("#points")

    # The rest of the journey, with the video playing: chat both ways; the host pins a
    # product from the rail, the viewer's card appears and they buy it now; chatting earned
    # points and the badge rose; the order is in admin.
    await studio.wait_for_selector("body[data-joined='1']")
    await watch.fill("#chat-text", "幾時有優惠？")
    await watch.press("#chat-text", "Enter")
    await studio.locator("#messages .message", has_text="幾時有優惠").wait_for()
    await studio.fill("#chat-text", "而家就有！")
    await studio.click("#chat-send")
    await watch.locator("#messages .message", has_text="而家就有").wait_for()
    await studio.click("#rail [data-sku='SERUM-30'] button")
    card = watch.locator("#pinned [data-sku='SERUM-30']")
    await card.wait_for()
    await card.locator("button").click()
    await watch.click("#buy-now")
    await watch.fill("#confirm-name", "Fan")
    await watch.fill("#confirm-phone", "+852 9000 0000")
    await watch.click("#confirm-submit")
    placed = watch.locator("#order-placed")
    await placed.wait_for()
    order_id = await placed.get_attribute("data-order")
    await watch.keyboard.press("Escape")
    await watch.wait_for_function(
        "Number(document.getElementById('points').dataset.balance) > 10", timeout=10_000
    )
    assert await watch.evaluate("document.getElementById('player').currentTime") > first + 1
    staff = await browser.new_page()
    staff.on("pageerror", lambda e: errors.append(f"admin: {e}"))
    await staff.goto(f"{base}/admin")
    await staff.fill("#key", admin)
    await staff.click("#load")
    row = staff.locator(f"#orders tr[data-order='{order_id}'][data-status='placed']")
    await row.wait_for()
    assert "HK$" in await row.inner_text()
    await staff.close()
    assert errors == []

    # Ending the show from the studio hangs up and registers the recording.
    await studio.click("#end")
    await studio.wait_for_function(
        "document.getElementById('show-state').classList.contains('ended')"
    )
    assert await studio.inner_text("#show-state") == "已結束"
    recordings = await api.call("GET", f"/api/v1/shows/{show['id']}/recordings", auth=token)
    [recording] = recordings.body["items"]
    assert recording["duration_ms"] > 1000 and recording["width"] == report["width"]
    await watch.close()
    await studio.close()

    # The replay of this real WebRTC show plays in Chromium (hls.js), with its poster, and
    # the product's card appears at the moment it was pinned live.
    async def ready() -> dict[str, Any] | None:
        answer = await api.call("GET", f"/api/v1/shows/{show['id']}/replay")
        return answer.body if answer.body["ready"] else None

    replay = await until(ready, 10, "the replay")
    [moment] = replay["moments"]
    assert moment["sku"] == "SERUM-30" and moment["until_s"] is None  # pinned to the end
    assert 0 < moment["at_s"] < replay["duration_s"]
    again = await browser.new_page()
    again.on("pageerror", lambda e: errors.append(f"replay: {e}"))
    await again.goto(f"{base}/watch/{show['id']}")
    await again.wait_for_selector("body[data-replay='1']")
    await again.wait_for_function(
        "document.getElementById('player').videoWidth > 0", timeout=20_000
    )
    assert await again.get_attribute("#player", "poster") == replay["poster_url"]
    poster = await api.client.get(replay["poster_url"])
    assert poster.status == 200 and (await poster.read())[:3] == b"\xff\xd8\xff"
    await again.evaluate(
        "at => { const v = document.getElementById('player'); v.currentTime = at; v.play(); }",
        moment["at_s"] + 0.5,
    )
    await again.wait_for_selector("body[data-cards='SERUM-30']", timeout=10_000)
    assert await again.locator("#pinned [data-sku='SERUM-30']").count() == 1
    await again.close()
    assert errors == []
