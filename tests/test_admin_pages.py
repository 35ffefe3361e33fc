"""The admin page in headless Chromium, for brand staff: orders (mark paid), a member's points
(balance, history, an adjustment), a show's analytics (figures, the retention chart and its
text alternative, the sales funnel, a CSV export) and the webhook delivery log (a failed
delivery retried). Everything is seeded through the API and the live room, except the
retention curve: only watching verified against relayed media writes it, so the test writes
those rows itself. Screenshots go to $SHOWROOM_SCREENSHOTS (default: the test's tmp_path)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web
from sqlalchemy.dialects import sqlite

from media.clips import FFMPEG
from server.app import create_app
from server.config import Settings
from server.keys import OPENAPI
from server.store import models
from server.store.db import Database
from tests.conftest import (
    Api,
    create_product,
    create_show,
    filmed_show,
    host_token,
    viewer_token,
)
from tests.test_pages import DESKTOP, PHONE, browser, database_url, shots, watch_errors

__all__ = ["browser", "database_url", "shots"]  # SQLite, Chromium and screenshots

SKU = "SERUM-30"
MEMBER = "fan-1"
RETENTION = {0: 1, 1: 3, 2: 5, 4: 4, 5: 2}  # viewers per minute; minute 3: none recorded


@pytest.fixture
async def server(
    db: Database, settings: Settings, aiohttp_client: Any
) -> AsyncIterator[tuple[str, Api]]:
    # Points are written every 0.5 s; a webhook delivery fails for good after one attempt.
    app = create_app(
        replace(
            settings,
            public_url="http://127.0.0.1",
            engagement_flush_seconds=0.5,
            webhook_max_attempts=1,
            webhook_timeout_seconds=2.0,
        )
    )
    client = await aiohttp_client(app)
    yield str(client.make_url("")).rstrip("/"), Api(client, app[OPENAPI])


class Receiver:
    """The brand's webhook receiver: answers 500 until it is made healthy."""

    def __init__(self) -> None:
        self.healthy = False
        self.received: list[str] = []  # webhook-ids answered 2xx

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        if not self.healthy:
            return web.Response(status=500, text="receiver down")
        self.received.append(request.headers["webhook-id"])
        return web.Response(status=204)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, seconds: float = 10) -> Any:
    for _ in range(int(seconds * 10)):
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def test_staff_handle_orders_points_analytics_and_webhooks(
    browser: Any,
    server: tuple[str, Api],
    db: Database,
    admin: str,
    aiohttp_server: Any,
    shots: Path,
) -> None:
    base, api = server
    await create_product(
        api,
        admin,
        SKU,
        title={"zh-HK": "保濕精華 30ml", "en": "Hydrating Serum 30ml"},
        price={"amount_minor": 29900, "currency": "HKD"},
        compare_at_price=None,
        image_url=None,
        stock=5,
    )
    show = await create_show(api, admin, title="冬日護膚直播")
    await create_show(api, admin, title="Spring preview", scheduled_start="2027-03-01T12:00:00Z")
    started = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/start", auth=await host_token(db, show["id"])
    )
    assert started.status == 200, started.text
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": SKU}
    )
    assert pinned.status == 200, pinned.text

    # The brand's webhook receiver, down for now.
    receiver = Receiver()
    hooks = web.Application()
    hooks.router.add_post("/hooks", receiver.handle)
    site = await aiohttp_server(hooks)
    hook_url = f"http://127.0.0.1:{site.port}/hooks"
    created = await api.call(
        "POST",
        "/api/v1/webhook-endpoints",
        auth=admin,
        json_body={"url": hook_url, "description": "Brand CRM"},
    )
    assert created.status == 201, created.text

    # A member joins the live room and sees and opens the pinned card (the funnel), then
    # buys two through the API and confirms: a placed order, with purchase points.
    viewer = viewer_token(MEMBER, "Mei")
    assert (await api.call("GET", "/api/v1/me", auth=viewer)).status == 200
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        base + "/",
        namespaces=["/live"],
        auth={"token": viewer},
        transports=["websocket"],
        wait_timeout=5,
    )
    try:
        joined = await sio.call("join", {"show_id": show["id"]}, namespace="/live", timeout=5)
        assert joined["ok"], joined
        for step in ("card_shown", "card_opened"):
            seen = await sio.call(
                "product:seen", {"sku": SKU, "step": step}, namespace="/live", timeout=5
            )
            assert seen == {"ok": True, "counted": True}, seen
        checkout = await api.call(
            "POST",
            "/api/v1/checkouts",
            auth=viewer,
            headers={"Idempotency-Key": str(uuid.uuid4())},
            json_body={"show_id": show["id"], "items": [{"sku": SKU, "quantity": 2}]},
        )
        assert checkout.status == 201, checkout.text
        order_id = checkout.body["id"]
        confirmed = await api.call(
            "POST",
            f"/api/v1/orders/{order_id}/confirm",
            auth=viewer,
            # Markup from a buyer must reach the page as the characters typed.
            json_body={
                "contact": {"name": "<b>陳美玲</b>", "phone": "+852 6123 4567"},
                "payment_method": "pay_later",
            },
        )
        assert confirmed.status == 200 and confirmed.body["status"] == "placed", confirmed.text
        # Another member's checkout, from no show and not confirmed: reserved.
        reserved = await api.call(
            "POST",
            "/api/v1/checkouts",
            auth=viewer_token("fan-2", "Ka Yan"),
            headers={"Idempotency-Key": str(uuid.uuid4())},
            json_body={"items": [{"sku": SKU, "quantity": 1}]},
        )
        assert reserved.status == 201, reserved.text
        reserved_id = reserved.body["id"]

        # Joining earns points at the next engagement write (every 0.5 s here).
        async def ledger() -> list[dict[str, Any]] | None:
            entries = await api.call("GET", f"/api/v1/members/{MEMBER}/points/entries", auth=admin)
            reasons = (
                {e["reason"] for e in entries.body["items"]} if entries.status == 200 else set()
            )
            return entries.body["items"] if {"first_join", "purchase"} <= reasons else None

        entries = await eventually(ledger, "the join and purchase points")
    finally:
        await sio.disconnect()
    points = await api.call("GET", f"/api/v1/members/{MEMBER}/points", auth=admin)
    balance = points.body["balance"]
    assert balance == sum(e["points"] for e in entries) > 0

    # The retention curve: the live room wrote the member's minute (0, or 1 if the clock
    # turned); the test writes the rest of a longer show (minute 3: nothing recorded).
    async def room_minutes() -> bool:
        answer = await api.call("GET", f"/api/v1/shows/{show['id']}/analytics", auth=admin)
        return any(m["viewers"] == 1 for m in answer.body["retention"])

    await eventually(room_minutes, "the live room's minute of the retention curve")
    rows = [
        {"show_id": uuid.UUID(show["id"]), "minute": m, "viewers": n} for m, n in RETENTION.items()
    ]
    upsert = sqlite.insert(models.ShowMinute).values(rows)
    async with db.transaction() as session:
        await session.execute(
            upsert.on_conflict_do_update(
                index_elements=["show_id", "minute"], set_={"viewers": upsert.excluded["viewers"]}
            )
        )

    # The order.created delivery failed for good (one attempt, a 500).
    async def failed_created() -> dict[str, Any] | None:
        log = await api.call(
            "GET", "/api/v1/webhook-deliveries?event_type=order.created", auth=admin
        )
        items = [d for d in log.body["items"] if d["status"] == "failed"]
        return items[0] if items else None

    failed = await eventually(failed_created, "the failed order.created delivery")
    assert failed["attempts"] == 1 and failed["last_status_code"] == 500

    errors: list[str] = []
    page = await browser.new_page(viewport=DESKTOP)
    watch_errors(page, "admin", errors, base)
    await page.goto(f"{base}/admin")
    await page.fill("#key", admin)
    await page.click("#load")

    # --- orders: the placed order, then "Mark paid" -----------------------------------------
    row = page.locator(f"#orders tr[data-order='{order_id}']")
    await row.wait_for()
    assert await row.get_attribute("data-status") == "placed"
    text = await row.inner_text()
    for expected in (order_id[:8], "冬日護膚直播", "<b>陳美玲</b>", "+852 6123 4567", "Pay later"):
        assert expected in text, (expected, text)
    assert "2 × Hydrating Serum 30ml" in text
    assert "HK$598.00" in text  # formatMoney, the browser's English
    assert await page.locator("#orders b").count() == 0  # text, never markup
    assert await row.locator("button", has_text="Cancel").count() == 1
    await row.locator("button", has_text="Mark paid").click()
    await page.locator(f"#orders tr[data-order='{order_id}'][data-status='paid']").wait_for()
    assert "is paid" in await page.inner_text("#orders-status")
    assert await page.locator(f"#orders tr[data-order='{order_id}'] button").count() == 0
    # The keyboard stays on the order's row (the button pressed is gone).
    assert await page.evaluate("document.activeElement.closest('tr')?.dataset.order") == order_id
    paid = await api.call("GET", f"/api/v1/orders/{order_id}", auth=admin)
    assert paid.body["status"] == "paid"
    # The status filter asks the API again.
    await page.select_option("#o-status", "cancelled")
    await page.locator("#orders-count", has_text="No orders.").wait_for()
    assert await page.locator("#orders tr").count() == 0
    await page.select_option("#o-status", "paid")
    await page.locator(f"#orders tr[data-order='{order_id}']").wait_for()
    assert await page.locator("#orders tr").count() == 1
    # "Cancel" on the reserved order, once staff say yes.
    await page.select_option("#o-status", "")
    other = page.locator(f"#orders tr[data-order='{reserved_id}']")
    await other.wait_for()
    assert "Not confirmed yet" in await other.inner_text()
    assert await other.locator("button", has_text="Mark paid").count() == 0
    dialogs: list[str] = []

    async def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await other.locator("button", has_text="Cancel").click()
    await page.locator(
        f"#orders tr[data-order='{reserved_id}'][data-status='cancelled']"
    ).wait_for()
    assert dialogs == [f"Cancel order {reserved_id[:8]}? Its units go back to stock."]
    cancelled = await api.call("GET", f"/api/v1/orders/{reserved_id}", auth=admin)
    assert cancelled.body["status"] == "cancelled"

    # --- members and points ---------------------------------------------------------------
    listed = page.locator(f"#members tr[data-member='{MEMBER}']")
    await listed.wait_for()
    assert "Mei" in await listed.inner_text()
    # An unknown member: the API's error, and no figures of anyone else.
    await page.fill("#m-id", "nobody")
    await page.press("#m-id", "Enter")  # the lookup form, by keyboard
    await page.locator("#members-error:not([hidden])").wait_for()
    assert (await page.inner_text("#members-error")).strip()
    assert await page.is_hidden("#member")
    await page.fill("#m-id", MEMBER)
    await page.press("#m-id", "Enter")
    await page.locator(f"#member[data-balance='{balance}']").wait_for()
    assert await page.is_visible("#member")
    figures = await page.inner_text("#member-figures")
    assert f"{balance:,} points" in figures and points.body["tier"] in figures
    ledger_rows = page.locator("#ledger tr")
    assert await ledger_rows.count() == len(entries)
    # Newest first, as the API answers.
    assert [await r.get_attribute("data-reason") for r in await ledger_rows.all()] == [
        e["reason"] for e in entries
    ]
    # An adjustment: the balance and the history follow.
    await page.fill("#adj-points", "50")
    await page.fill("#adj-note", "Goodwill: late delivery")
    await page.press("#adj-note", "Enter")
    await page.locator(f"#member[data-balance='{balance + 50}']").wait_for()
    assert f"{balance + 50:,} points" in await page.inner_text("#member-status")
    first = page.locator("#ledger tr").first
    assert await first.get_attribute("data-reason") == "adjustment"
    assert "Goodwill: late delivery" in await first.inner_text()
    assert "+50" in await first.inner_text()
    after = await api.call("GET", f"/api/v1/members/{MEMBER}/points", auth=admin)
    assert after.body["balance"] == balance + 50
    assert await page.input_value("#adj-points") == ""  # used once, then cleared

    # --- show analytics --------------------------------------------------------------------
    await page.select_option("#a-show", show["id"])
    await page.locator(f"#analytics[data-show='{show['id']}']").wait_for()
    analytics = (await api.call("GET", f"/api/v1/shows/{show['id']}/analytics", auth=admin)).body

    async def figure(name: str) -> str:
        return str(await page.inner_text(f"#figures [data-figure='{name}'] dd >> nth=0"))

    assert analytics["viewers"]["unique"] == 1
    assert await figure("unique-viewers") == "1"
    assert await figure("orders") == "1"
    assert await figure("revenue") == "HK$598.00"
    assert await figure("conversion") == "100%"
    assert await figure("points") == f"{analytics['points_earned']:,}"
    for name in ("peak", "average-watch", "chat", "questions", "reactions"):
        assert await page.locator(f"#figures [data-figure='{name}']").count() == 1, name
    # The retention chart (uPlot draws on a canvas), with its text alternative.
    chart = page.locator("#retention-chart")
    await chart.locator("canvas").first.wait_for()
    assert await chart.get_attribute("role") == "img"
    label = await chart.get_attribute("aria-label") or ""
    assert "at most 5 viewers, in minute 2" in label, label
    cells = await page.locator("#retention-table tbody tr").all_inner_texts()
    assert [c.split() for c in cells] == [[str(m), str(n)] for m, n in RETENTION.items()]
    assert await page.is_hidden("#retention-empty")
    # The funnel: the product, seen, opened, checked out and ordered once.
    funnel = page.locator(f"#funnel tr[data-sku='{SKU}']")
    assert "Hydrating Serum 30ml" in await funnel.inner_text()
    for step, count in (
        ("card_shown", "1"),
        ("card_opened", "1"),
        ("checkout_started", "1"),
        ("orders", "1"),
    ):
        assert (await funnel.locator(f"td[data-step='{step}']").inner_text()).strip() == count
    # A CSV export, fetched with the key and saved.
    async with page.expect_download() as download_info:
        await page.click("#analytics-csv")
    download = await download_info.value
    assert download.suggested_filename.endswith(".csv")
    saved = Path(await download.path())
    csv_text = await asyncio.to_thread(saved.read_text, encoding="utf-8-sig")
    assert csv_text.startswith("metric,value")
    assert "viewers_unique,1" in csv_text and "retention_minute_2,5" in csv_text

    # --- webhook deliveries: the failed one, retried once the receiver is back --------------
    delivery = page.locator(f"#deliveries tr[data-delivery='{failed['id']}']")
    await delivery.wait_for()
    text = await delivery.inner_text()
    for expected in ("order.created", hook_url, "failed", "HTTP 500"):
        assert expected in text, (expected, text)
    assert await page.locator("#deliveries tr").count() >= 1
    await page.select_option("#w-status", "failed")
    await page.wait_for_function(
        "[...document.querySelectorAll('#deliveries tr')].every(r => r.dataset.status === 'failed')"
    )
    assert await page.locator("#deliveries tr").count() >= 1
    await page.select_option("#w-status", "")
    await delivery.locator("button", has_text="Retry").wait_for()
    receiver.healthy = True
    await delivery.locator("button", has_text="Retry").click()
    await page.locator(
        f"#deliveries tr[data-delivery='{failed['id']}']:not([data-status='failed'])"
    ).wait_for()
    assert "queued again" in await page.inner_text("#webhooks-status")

    async def succeeded() -> bool:
        await page.click("#w-refresh")
        await page.wait_for_timeout(200)
        status = await page.get_attribute(
            f"#deliveries tr[data-delivery='{failed['id']}']", "data-status"
        )
        return status == "succeeded"

    await eventually(succeeded, "the retried delivery to succeed")
    again = await api.call("GET", f"/api/v1/webhook-deliveries/{failed['id']}", auth=admin)
    assert again.body["delivery"]["status"] == "succeeded"
    assert failed["message_id"] in receiver.received

    await page.screenshot(path=str(shots / "admin-desktop.png"), full_page=True)
    # On a phone: nothing wider than the screen (wide tables scroll in their own box).
    await page.set_viewport_size(PHONE)
    await page.wait_for_function("document.documentElement.scrollWidth <= 390")
    box = await chart.bounding_box()
    assert box is not None and box["width"] <= 390
    await page.screenshot(path=str(shots / "admin-phone.png"), full_page=True)

    assert errors == []
    await page.close()


async def test_staff_upload_a_video_cut_a_clip_and_follow_their_jobs(
    browser: Any,
    server: tuple[str, Api],
    db: Database,
    admin: str,
    settings: Settings,
    tmp_path: Path,
    shots: Path,
) -> None:
    """The videos section: an upload with its products (progress while it is sent and made,
    then its poster), a clip cut from a replay, the show's automatic clips, a refused file
    with the API's reason, and a delete."""
    base, api = server
    await create_product(api, admin, SKU, stock=5)
    show_id = await filmed_show(api, db, admin, settings, {SKU: 3}, seconds=12)
    movie = tmp_path / "lookbook.mp4"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:d=3",
         "-f", "lavfi", "-i", "sine=d=3", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-shortest", str(movie)],
        check=True,
    )  # fmt: skip
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("these are notes, not a video\n" * 50)

    errors: list[str] = []
    page = await browser.new_page(viewport=DESKTOP)
    watch_errors(page, "admin", errors, base)
    await page.goto(f"{base}/admin")
    await page.fill("#key", admin)
    await page.click("#load")
    await page.locator("#videos-count", has_text="No uploads or staff clips yet.").wait_for()

    # A file that is no video: the API's reason, and nothing listed.
    await page.set_input_files("#u-file", str(not_video))
    await page.click("#u-send")
    await page.locator("#videos-error:not([hidden])").wait_for()
    assert "MP4, MOV or WebM" in await page.inner_text("#videos-error")
    assert await page.locator("#videos tr").count() == 0

    # The upload, tagged with the product at 1 s: it is made, then shows its poster.
    await page.set_input_files("#u-file", str(movie))
    await page.fill("#u-title", "Winter lookbook")
    await page.fill("#u-tags", f"{SKU}@1")
    await page.click("#u-send")
    upload = page.locator("#videos tr", has_text="Winter lookbook")
    await upload.and_(page.locator("tr[data-state='done']")).wait_for(timeout=30_000)
    text = await upload.inner_text()
    assert "Upload" in text and f"{SKU} @ 1 s" in text and "3 s" in text, text
    poster = upload.locator("img")
    await page.wait_for_function(
        "img => img.complete && img.naturalWidth === 320", arg=await poster.element_handle()
    )
    assert await page.is_hidden("#videos-error")

    # A clip cut from the replay: the form says how long the replay is and what it sold.
    await page.select_option("#c-show", show_id)
    await page.locator("#c-replay", has_text="The replay is 12 s long").wait_for()
    assert f"{SKU} at 3 s" in await page.inner_text("#c-replay")
    await page.fill("#c-start", "2")
    await page.fill("#c-end", "8")
    await page.fill("#c-title", "Serum close-up")
    await page.fill("#c-tags", SKU)
    await page.click("#cut button[type=submit]")
    clip = page.locator("#videos tr", has_text="Serum close-up")
    await clip.and_(page.locator("tr[data-state='done']")).wait_for(timeout=30_000)
    assert "Clip of" in await clip.inner_text()
    listed = await api.call("GET", "/api/v1/videos", auth=admin)
    by_title = {v["title"]: v for v in listed.body["items"]}
    assert by_title["Serum close-up"]["state"] == "done"
    assert by_title["Serum close-up"]["kind"] == "clip"
    assert by_title["Winter lookbook"]["tags"] == [{"sku": SKU, "at_s": 1.0}]

    # An end past the replay's: the form itself says so (its max is the replay's length).
    await page.fill("#c-start", "5")
    await page.fill("#c-end", "40")
    await page.click("#cut button[type=submit]")
    assert await page.evaluate("document.querySelector('#c-end').validity.rangeOverflow")
    # An end before the start: the API's reason, nothing queued.
    await page.fill("#c-start", "9")
    await page.fill("#c-end", "4")
    await page.click("#cut button[type=submit]")
    await page.locator("#videos-error:not([hidden])").wait_for()
    assert "end_s: must be after start_s" in await page.inner_text("#videos-error")
    assert await page.locator("#videos tr").count() == 2

    # The show's automatic clip of the product.
    await page.select_option("#ac-show", show_id)
    auto = page.locator(f"#auto-clips tr[data-clip='{SKU}'][data-state='done']")
    await auto.wait_for(timeout=30_000)
    assert await auto.locator("a", has_text="MP4").get_attribute("href") == (
        f"/clips/{show_id}/{SKU}.mp4"
    )
    await page.locator("#videos-section").screenshot(path=str(shots / "admin-videos.png"))

    # Delete the upload: gone from the page and the API, its files too.
    await upload.locator("button", has_text="Delete").click()
    await page.locator("#videos-status", has_text="Deleted “Winter lookbook”").wait_for()
    assert await page.locator("#videos tr").count() == 1
    after = await api.call("GET", "/api/v1/videos", auth=admin)
    assert [v["title"] for v in after.body["items"]] == ["Serum close-up"]
    gone = await api.call("GET", by_title["Winter lookbook"]["video_url"])
    assert gone.status == 404

    assert errors == []
    await page.close()
