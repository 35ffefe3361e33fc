"""The studio page speaks the show's language: zh-HK (Traditional, Hong Kong wording), zh-CN
(Simplified, mainland wording) or English, whatever the browser's language; before a show is
open (the token screen) it speaks the browser's. Headings, buttons, the rail, stock, the
viewer count, moderation buttons and the page's own error messages all follow."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest

from server.store.db import Database
from tests.conftest import Api, create_product, create_show, host_token, viewer_token
from tests.test_pages import DESKTOP, PHONE, browser, database_url, server, watch_errors

__all__ = ["browser", "database_url", "server"]  # SQLite, Chromium and a real server

SKU = "TEA-001"


@dataclass(frozen=True)
class Words:
    locale: str
    title: str  # the show's own title, in its language
    token: str  # the token screen's heading
    open: str
    start: str
    end: str
    send: str
    say: str  # the chat box's placeholder
    products: str
    chat: str
    questions: str
    nothing_pinned: str
    no_questions: str
    pin: str
    unpin: str
    set_flash: str
    live: str  # the show's state badge once live
    stock: str  # the catalog's 12 units
    viewers: str  # a pattern: the header's viewer count
    delete: str
    mute: str
    ban: str
    muted: str


LANGUAGES = [
    Words(
        locale="zh-HK",
        title="冬日護膚直播",
        token="主持人存取碼",
        open="開啟節目",
        start="開始直播",
        end="結束直播",
        send="發送",
        say="向觀眾發訊息…",
        products="商品",
        chat="聊天室",
        questions="觀眾提問",
        nothing_pinned="未有置頂商品",
        no_questions="未有問題",
        pin="置頂",
        unpin="取消置頂",
        set_flash="設定限時價",
        live="直播中",
        stock="存貨 12 件",
        viewers=r"^\d+ 人觀看$",
        delete="刪除",
        mute="禁言",
        ban="踢出",
        muted="已禁言",
    ),
    Words(
        locale="zh-CN",
        title="冬季护肤直播",
        token="主播密钥",
        open="进入直播间",
        start="开始直播",
        end="结束直播",
        send="发送",
        say="给观众发消息…",
        products="商品",
        chat="聊天",
        questions="观众提问",
        nothing_pinned="暂无置顶商品",
        no_questions="还没有问题",
        pin="置顶",
        unpin="取消置顶",
        set_flash="设置限时价",
        live="直播中",
        stock="库存 12 件",
        viewers=r"^\d+ 人观看$",
        delete="删除",
        mute="禁言",
        ban="踢出",
        muted="已禁言",
    ),
    Words(
        locale="en",
        title="Winter skincare live",
        token="Host token",
        open="Open show",
        start="Go live",
        end="End show",
        send="Send",
        say="Message to viewers…",
        products="Products",
        chat="Chat",
        questions="Questions",
        nothing_pinned="Nothing pinned",
        no_questions="No questions yet",
        pin="Pin",
        unpin="Unpin",
        set_flash="Set flash price",
        live="live",
        stock="12 in stock",
        viewers=r"^\d+ watching$",
        delete="Delete",
        mute="Mute",
        ban="Ban",
        muted="Muted",
    ),
]


async def text(page: Any, selector: str) -> str:
    return str(await page.locator(selector).inner_text()).strip()


@pytest.mark.parametrize("words", LANGUAGES, ids=[w.locale for w in LANGUAGES])
async def test_the_studio_speaks_the_shows_language(
    browser: Any, server: tuple[str, Api], db: Database, admin: str, words: Words
) -> None:
    base, api = server
    await create_product(api, admin, SKU, stock=12, image_url=None)
    show = await create_show(api, admin, title=words.title, locale=words.locale)
    token = await host_token(db, show["id"])
    errors: list[str] = []

    # The browser speaks English (Playwright's en-US): the show's language wins once open.
    studio = await browser.new_page(viewport=DESKTOP)
    watch_errors(studio, "studio", errors, base)
    await studio.goto(f"{base}/studio/{show['id']}")
    await studio.fill("#token", token)
    await studio.click("#load")
    await studio.wait_for_selector("body[data-joined='1']")

    assert await studio.get_attribute("html", "lang") == words.locale
    assert await text(studio, "#token-h") == words.token
    assert await text(studio, "#load") == words.open
    assert await text(studio, "#start") == words.start
    assert await text(studio, "#end") == words.end
    assert await text(studio, "#chat-send") == words.send
    assert await studio.get_attribute("#chat-text", "placeholder") == words.say
    assert await text(studio, "#products-h") == words.products
    assert await text(studio, "#chat-h") == words.chat
    assert (await text(studio, "#qa-h")).startswith(words.questions)
    assert await text(studio, "#pinned") == words.nothing_pinned
    assert await text(studio, "#questions") == words.no_questions
    assert words.title in await studio.title()

    # The rail, after a search: the Pin button and the stock in the show's language.
    await studio.fill("#product-q", SKU)
    await studio.press("#product-q", "Enter")
    rail_button = studio.locator(f"#rail [data-sku='{SKU}'] button")
    await rail_button.wait_for()
    assert await text(studio, f"#rail [data-sku='{SKU}'] button") == words.pin
    assert words.stock in await text(studio, f"#rail [data-sku='{SKU}']")

    # Live: the state badge, then pinning; the pinned card's buttons follow the language.
    await studio.click("#start")
    await studio.wait_for_function("!document.getElementById('end').disabled")
    assert await text(studio, "#show-state") == words.live
    await rail_button.click()
    pinned = studio.locator(f"#pinned [data-sku='{SKU}']")
    await pinned.wait_for()
    assert await text(studio, f"#pinned [data-sku='{SKU}'] button.flash") == words.set_flash
    assert words.stock in await pinned.inner_text()
    await studio.locator(f"#rail [data-sku='{SKU}'] button", has_text=words.unpin).wait_for()

    # A member watches and chats: the viewer count, and the buttons on her message.
    watch = await browser.new_page(viewport=PHONE)
    watch_errors(watch, "watch", errors, base)
    await watch.goto(f"{base}/watch/{show['id']}#token={viewer_token('fan-1', 'Mei')}")
    await watch.wait_for_selector("body[data-joined='1']")
    await studio.wait_for_function(
        "Number(document.getElementById('viewers').dataset.count) >= 1", timeout=5_000
    )
    assert re.match(words.viewers, await text(studio, "#viewers"))
    await watch.fill("#chat-text", "hello")
    await watch.press("#chat-text", "Enter")
    line = studio.locator("#messages .message", has_text="Mei")
    await line.wait_for()
    assert await line.locator("button.delete").inner_text() == words.delete
    assert await line.locator("button.mute").inner_text() == words.mute
    assert await line.locator("button.ban").inner_text() == words.ban
    await line.locator("button.mute").click()
    await line.locator("button.mute[disabled]", has_text=words.muted).wait_for()

    assert errors == []
    await watch.close()
    await studio.close()


async def test_the_token_screen_speaks_the_browsers_language(
    browser: Any, server: tuple[str, Api], db: Database, admin: str
) -> None:
    base, api = server
    show = await create_show(api, admin, title="冬日護膚直播", locale="zh-HK")
    errors: list[str] = []
    context = await browser.new_context(locale="zh-CN", viewport=DESKTOP)
    page = await context.new_page()
    watch_errors(page, "studio", errors, base)
    await page.goto(f"{base}/studio/{show['id']}")

    # No show yet: the browser's Simplified Chinese.
    await page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert await text(page, "#token-h") == "主播密钥"
    assert await text(page, "label[for='token']") == "粘贴你的主播密钥（shr_host_…）"
    assert await text(page, "#load") == "进入直播间"
    assert await text(page, "#start") == "开始直播"
    assert await text(page, "#pinned") == "暂无置顶商品"
    assert await page.title() == "Showroom 直播中控台"

    # A wrong token: the page says so in the browser's language.
    await page.fill("#token", "shr_host_not-a-real-token")
    await page.click("#load")
    await page.wait_for_selector("#error:not([hidden])")
    assert await text(page, "#error") == "主播密钥无效或已过期"

    # The show opens: now the show's language, Traditional Chinese.
    await page.fill("#token", await host_token(db, show["id"]))
    await page.click("#load")
    await page.wait_for_selector("body[data-joined='1']")
    assert await page.get_attribute("html", "lang") == "zh-HK"
    assert await text(page, "#token-h") == "主持人存取碼"
    assert await text(page, "#start") == "開始直播"
    assert await page.is_hidden("#error")

    assert errors == []
    await context.close()
