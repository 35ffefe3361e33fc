"""Checkout reserves stock for the whole order or none of it: never oversold under a rush,
on SQLite and PostgreSQL; prices come from the database; a repeated Idempotency-Key gives
the first order back; reservations that run out return their stock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from server.domain.errors import InvalidValue, NotFound
from server.domain.money import Money
from server.domain.orders import LineRequest, OrderStatus
from server.services import catalog, orders, pins, shows
from server.services.identity import Principal, Role
from server.store import models
from server.store.db import Database
from tests.conftest import Api, product_body, snapshot

HOLD = timedelta(minutes=10)


def guest(n: int) -> Principal:
    return Principal(Role.GUEST, f"guest-{n}")


async def stock_of(db: Database, sku: str) -> int:
    return (await catalog.access_product(db, sku, include_hidden=True)).draft.stock


async def checkout(db: Database, buyer: Principal, *lines: tuple[str, int], **options: object):
    return await orders.do_checkout(
        db,
        buyer,
        [LineRequest(sku, q) for sku, q in lines],
        show_id=options.get("show_id"),  # type: ignore[arg-type]
        idempotency_key=options.get("key"),  # type: ignore[arg-type]
        reservation=options.get("hold", HOLD),  # type: ignore[arg-type]
        max_quantity=5,
    )


async def test_flash_sale_500_buyers_20_units_never_oversells(db: Database) -> None:
    await catalog.do_create_product(db, product_body("HOT-1", stock=20))
    results = await asyncio.gather(
        *(checkout(db, guest(n), ("HOT-1", 1)) for n in range(500)), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, tuple)]
    sold_out = [r for r in results if isinstance(r, orders.SoldOut)]
    others = [r for r in results if not isinstance(r, (tuple, orders.SoldOut))]
    assert others == []
    assert len(won) == 20 and len(sold_out) == 480
    assert all("sold out" in str(e) for e in sold_out)
    assert await stock_of(db, "HOT-1") == 0
    async with db.read() as session:
        count = await session.scalar(select(func.count()).select_from(models.Order))
        units = await session.scalar(select(func.sum(models.OrderLine.quantity)))
    assert count == 20 and units == 20


async def test_an_order_takes_all_its_lines_or_nothing(db: Database) -> None:
    await catalog.do_create_product(db, product_body("A-1", stock=5))
    await catalog.do_create_product(db, product_body("B-1", stock=1))
    before = await snapshot(db)
    with pytest.raises(orders.SoldOut) as error:
        await checkout(db, guest(1), ("A-1", 3), ("B-1", 2))
    assert error.value.field == "items.1.sku"
    assert await snapshot(db) == before  # A-1's three units went back with the rollback
    for lines, field in [
        ((), "items"),
        ((("A-1", 1), ("A-1", 2)), "items.1.sku"),
        ((("A-1", 0),), "items.0.quantity"),
        ((("A-1", 6),), "items.0.quantity"),
    ]:
        with pytest.raises(InvalidValue) as invalid:
            await checkout(db, guest(1), *lines)
        assert invalid.value.field == field
    with pytest.raises(NotFound):
        await checkout(db, guest(1), ("NOPE-1", 1))
    assert await snapshot(db) == before


async def test_prices_come_from_the_database_with_the_show_flash_price(db: Database) -> None:
    product = await catalog.do_create_product(db, product_body("TEA-1", stock=10))
    show = await shows.do_create_show(
        db,
        {"title": "Live", "scheduled_start": shows.utcnow()},
        default_locale="zh-HK",
        default_currency="HKD",
    )
    host = Principal(Role.HOST, "key", show_id=show.id)
    await pins.do_pin(
        db,
        show.id,
        host,
        "TEA-1",
        flash_price=Money(9900, "HKD"),
        flash_ends_at=None,
        max_pins=3,
    )
    in_show, _ = await checkout(db, guest(1), ("TEA-1", 2), show_id=show.id)
    [line] = in_show.lines
    assert line.flash and line.unit_price_minor == 9900 and in_show.total_minor == 19800
    plain, _ = await checkout(db, guest(2), ("TEA-1", 1))
    price = product.draft.price.amount_minor
    assert plain.total_minor == price and not plain.lines[0].flash
    assert in_show.status is OrderStatus.RESERVED and in_show.currency == "HKD"


async def test_the_same_idempotency_key_gives_the_first_order(db: Database) -> None:
    await catalog.do_create_product(db, product_body("KEY-1", stock=10))
    buyer = guest(7)
    first, created = await checkout(db, buyer, ("KEY-1", 2), key="k-1")
    again, created_again = await checkout(db, buyer, ("KEY-1", 2), key="k-1")
    assert created and not created_again and again.id == first.id
    # Sent five times at once: still one order.
    raced = await asyncio.gather(*(checkout(db, buyer, ("KEY-1", 1), key="k-2") for _ in range(5)))
    assert len({o.id for o, _ in raced}) == 1 and sum(c for _, c in raced) == 1
    assert await stock_of(db, "KEY-1") == 10 - 2 - 1
    with pytest.raises(InvalidValue) as error:
        await checkout(db, buyer, ("KEY-1", 3), key="k-1")
    assert error.value.field == "Idempotency-Key"
    # Keys belong to their buyer: another buyer's "k-1" is a new order.
    other, created_other = await checkout(db, guest(8), ("KEY-1", 2), key="k-1")
    assert created_other and other.id != first.id


async def test_reservations_that_run_out_return_their_stock(db: Database) -> None:
    await catalog.do_create_product(db, product_body("EXP-1", stock=3))
    lapsed, _ = await checkout(db, guest(1), ("EXP-1", 2), hold=timedelta(seconds=-1))
    held, _ = await checkout(db, guest(2), ("EXP-1", 1))
    assert await stock_of(db, "EXP-1") == 0
    assert await orders.do_expire_reservations(db) == {"EXP-1": 2}
    assert await stock_of(db, "EXP-1") == 2
    assert (await orders.access_order(db, lapsed.id)).status is OrderStatus.EXPIRED
    assert (await orders.access_order(db, held.id)).status is OrderStatus.RESERVED
    assert await orders.do_expire_reservations(db) == {}  # once only
    with pytest.raises(NotFound):
        await orders.access_order(db, uuid.uuid4())


async def test_the_running_server_sweeps_lapsed_reservations(
    api: Api, db: Database, admin: str
) -> None:
    await catalog.do_create_product(db, product_body("SWEEP-1", stock=4))
    await checkout(db, guest(1), ("SWEEP-1", 3), hold=timedelta(seconds=-1))
    assert await stock_of(db, "SWEEP-1") == 1
    for _ in range(50):  # the server sweeps every second
        product = await api.call("GET", "/api/v1/products/SWEEP-1", auth=admin)
        if product.body["stock"] == 4:
            break
        await asyncio.sleep(0.1)
    assert product.body["stock"] == 4
