"""Checkout reserves stock for the whole order or none of it: never oversold under a rush,
on SQLite and PostgreSQL; prices come from the database; a repeated Idempotency-Key gives
the first order back; reservations that run out return their stock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from server.domain.errors import Conflict, InvalidValue, NotFound
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


async def test_checkouts_that_arrive_together_share_a_round_each_answered_on_its_own(
    db: Database,
) -> None:
    await catalog.do_create_product(db, product_body("BIG-1", stock=1000))
    await catalog.do_create_product(db, product_body("LOW-1", stock=2))
    usd = {"amount_minor": 500, "currency": "USD"}
    await catalog.do_create_product(db, product_body("USD-1", price=usd, compare_at_price=None))
    handoff = await shows.do_create_show(
        db,
        {
            "title": "Elsewhere",
            "scheduled_start": shows.utcnow(),
            "checkout_mode": "handoff",
            "handoff_url": "https://shop.example/cart/{items}",
        },
        default_locale="en",
        default_currency="HKD",
    )
    rounds = orders.checkout_rounds(db)
    before = rounds.rounds
    spoilers = {  # buyer number -> (lines, options, the error it alone gets, its field)
        3: ((("NOPE-1", 1),), {}, NotFound, "items.0.sku"),
        17: ((("LOW-1", 3),), {}, orders.SoldOut, "items.0.sku"),
        29: ((("BIG-1", 1), ("LOW-1", 3)), {}, orders.SoldOut, "items.1.sku"),
        41: ((("BIG-1", 1), ("USD-1", 1)), {}, InvalidValue, "items.1.sku"),
        53: ((("BIG-1", 1),), {"show_id": uuid.uuid4()}, NotFound, "show_id"),
        67: ((("BIG-1", 1),), {"show_id": handoff.id}, Conflict, "show_id"),
    }
    calls = []
    for n in range(200):
        lines, options, _, _ = spoilers.get(n, ((("BIG-1", 1),), {}, None, None))
        if n == 150:  # after the failed ones, someone takes LOW-1's two units
            lines = (("BIG-1", 1), ("LOW-1", 2))
        calls.append(checkout(db, guest(n), *lines, **options))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert rounds.rounds - before <= 2  # 200 checkouts, one or two transactions
    for n, result in enumerate(results):
        if n in spoilers:
            _, _, error, field = spoilers[n]
            assert isinstance(result, error) and result.field == field, (n, result)
        else:
            assert isinstance(result, tuple) and result[1], (n, result)
    assert await stock_of(db, "BIG-1") == 1000 - 194 and await stock_of(db, "LOW-1") == 0
    mixed, _ = results[150]  # type: ignore[misc]
    assert [(x.sku, x.quantity) for x in mixed.lines] == [("BIG-1", 1), ("LOW-1", 2)]
    async with db.read() as session:
        count = await session.scalar(select(func.count()).select_from(models.Order))
        units = await session.scalar(select(func.sum(models.OrderLine.quantity)))
    assert count == 194 and units == 196


async def test_a_round_tells_the_stock_of_pinned_products_once_after_its_commit(
    db: Database,
) -> None:
    await catalog.do_create_product(db, product_body("PIN-1", stock=50))
    show = await shows.do_create_show(
        db,
        {"title": "Live", "scheduled_start": shows.utcnow()},
        default_locale="zh-HK",
        default_currency="HKD",
    )
    host = Principal(Role.HOST, "key", show_id=show.id)
    await pins.do_pin(db, show.id, host, "PIN-1", flash_price=None, flash_ends_at=None, max_pins=3)
    told: list[dict[str, dict[str, int]]] = []
    answers = await asyncio.gather(
        *(
            orders.do_checkout(
                db,
                guest(n),
                [LineRequest("PIN-1", 1)],
                show_id=show.id,
                idempotency_key=None,
                reservation=HOLD,
                max_quantity=5,
                on_stock=told.append,
            )
            for n in range(30)
        )
    )
    assert all(created for _, created in answers)
    assert 1 <= len(told) <= 2 and told[-1] == {str(show.id): {"PIN-1": 20}}


async def test_a_key_another_process_used_meanwhile_fails_no_one_else_in_the_round(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await catalog.do_create_product(db, product_body("DUP-1", stock=10))
    first, _ = await checkout(db, guest(1), ("DUP-1", 1), key="same")
    looked = orders._used_keys
    missed = []

    async def miss_once(*args: Any) -> Any:
        # As if another process committed this key after the round looked it up.
        if not missed:
            missed.append(True)
            return {}
        return await looked(*args)

    monkeypatch.setattr(orders, "_used_keys", miss_once)
    results = await asyncio.gather(
        checkout(db, guest(1), ("DUP-1", 1), key="same"),
        *(checkout(db, guest(n), ("DUP-1", 1), key="same") for n in range(2, 7)),
    )
    assert missed and results[0] == (first, False)
    assert all(created for _, created in results[1:])
    assert await stock_of(db, "DUP-1") == 10 - 6
