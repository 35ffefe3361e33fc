"""The demo brand a newcomer sees after `make run`: a small HK catalog and one scheduled show."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from server.services import catalog, identity, shows
from server.services.identity import Role
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

DEMO_SHOW_TITLE = "冬日護膚直播 Winter Skincare Live"
DEMO_TOKEN_NAME = "demo"

# (sku, zh-HK title, English title, price HKD, compare-at HKD or None, stock)
_PRODUCTS = [
    (
        "DEMO-SERUM-30",
        "玻尿酸保濕精華 30ml",
        "Hyaluronic Hydrating Serum 30ml",
        "298.00",
        "358.00",
        40,
    ),
    ("DEMO-CREAM-50", "積雪草修護面霜 50ml", "Centella Repair Cream 50ml", "268.00", None, 25),
    ("DEMO-MASK-5", "蠶絲面膜（5片裝）", "Silk Sheet Mask (5 pack)", "128.00", "158.00", 120),
    ("DEMO-SPF-50", "輕透防曬乳 SPF50+", "Featherlight Sunscreen SPF50+", "188.00", None, 60),
    ("DEMO-CLEANSER", "氨基酸潔面乳 150ml", "Amino Acid Cleanser 150ml", "148.00", None, 80),
    ("DEMO-TONER-200", "綠茶爽膚水 200ml", "Green Tea Toner 200ml", "168.00", "198.00", 35),
    ("DEMO-LIP-BALM", "蜂蜜潤唇膏", "Honey Lip Balm", "58.00", None, 200),
    ("DEMO-GIFT-SET", "聖誕限定禮盒", "Christmas Limited Gift Set", "688.00", "888.00", 3),
]


def _catalog_json() -> bytes:
    return json.dumps(
        [
            {
                "sku": sku,
                "title": {"zh-HK": zh, "en": en},
                "description": {"zh-HK": f"{zh}：直播限定價。", "en": f"{en}: live-only price."},
                "price": {"amount_minor": int(price.replace(".", "")), "currency": "HKD"},
                "compare_at_price": (
                    {"amount_minor": int(was.replace(".", "")), "currency": "HKD"} if was else None
                ),
                "image_url": f"/web/demo/{sku.lower()}.svg",
                "stock": stock,
            }
            for sku, zh, en, price, was, stock in _PRODUCTS
        ],
        ensure_ascii=False,
    ).encode()


@dataclass(frozen=True, slots=True)
class DemoSeed:
    show: shows.ShowRecord
    products_created: int
    admin_key: str
    host_token: str


async def do_seed_demo(db: Database) -> DemoSeed:
    """Create what is missing and keep what exists, then mint fresh demo tokens (revoking
    the previous pair), so running it twice keeps the data and prints usable tokens."""
    async with db.read() as session:
        have = set(
            await session.scalars(
                select(models.Product.sku).where(
                    models.Product.sku.like("DEMO-%"), models.Product.deleted_at.is_(None)
                )
            )
        )
        show_row = await session.scalar(
            select(models.Show)
            .where(models.Show.title == DEMO_SHOW_TITLE)
            .order_by(models.Show.created_at)
        )
    missing = [p for p in json.loads(_catalog_json()) if p["sku"] not in have]
    created = 0
    if missing:
        report = await catalog.do_import_products(
            db, json.dumps(missing).encode(), "json", valid_only=False, default_currency="HKD"
        )
        assert not report.errors, report.errors
        created = report.created
    if show_row is None:
        show = await shows.do_create_show(
            db,
            {
                "title": DEMO_SHOW_TITLE,
                "description": "主持人示範保濕三步曲，直播期間限定優惠。",
                "scheduled_start": (utcnow() + timedelta(days=1)).replace(
                    minute=0, second=0, microsecond=0
                ),
                "host_name": "Mandy",
            },
            default_locale="zh-HK",
            default_currency="HKD",
        )
    else:
        show = shows.ShowRecord.of(show_row)
    await identity.do_revoke_keys_named(db, DEMO_TOKEN_NAME)
    _, admin_key = await identity.do_create_api_key(db, role=Role.ADMIN, name=DEMO_TOKEN_NAME)
    _, host_token = await identity.do_create_api_key(
        db, role=Role.HOST, show_id=show.id, name=DEMO_TOKEN_NAME
    )
    return DemoSeed(show, created, admin_key, host_token)
