"""Carts: what a buyer means to buy, one row per product, kept across their sockets and
devices (a member is one subject everywhere; a guest is their cookie). A cart holds no
stock: checkout reserves it. Prices are read when the cart is, never stored: the show a
product was added from gives its flash price while that pin's flash lasts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain import handoff
from server.domain.catalog import ProductStatus
from server.domain.errors import Conflict, InvalidValue, NotFound
from server.domain.handoff import CheckoutMode
from server.domain.orders import MAX_LINES, LineRequest, check_lines
from server.services.identity import Principal
from server.store import models
from server.store.db import Database
from server.store.models import utcnow


@dataclass(frozen=True, slots=True)
class CartLine:
    sku: str
    title: dict[str, str]
    image_url: str | None
    quantity: int
    unit_price_minor: int
    compare_at_minor: int | None
    currency: str
    flash: bool
    stock: int
    available: bool  # on sale, with enough stock for this quantity right now
    show_id: uuid.UUID | None
    added_at: datetime


@dataclass(frozen=True, slots=True)
class CartRecord:
    lines: list[CartLine]

    def checkout_lines(self) -> list[LineRequest]:
        return [LineRequest(line.sku, line.quantity) for line in self.lines]

    def show_id(self) -> uuid.UUID | None:
        """The show the latest item came from: the order is credited to it."""
        shows = [line for line in self.lines if line.show_id is not None]
        return max(shows, key=lambda line: line.added_at).show_id if shows else None


def _owner(buyer: Principal) -> tuple[str, str]:
    return buyer.role.value, buyer.subject


async def flash_prices(
    session: AsyncSession, pairs: set[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """{(show, product): flash price} for the pins among `pairs` with a flash price now."""
    if not pairs:
        return {}
    now = utcnow()
    found: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for pin in await session.scalars(
        select(models.ShowPin).where(
            models.ShowPin.show_id.in_({show for show, _ in pairs}),
            models.ShowPin.product_id.in_({product for _, product in pairs}),
            models.ShowPin.unpinned_at.is_(None),
            models.ShowPin.flash_price_minor.is_not(None),
        )
    ):
        key = (pin.show_id, pin.product_id)
        if key in pairs and (pin.flash_ends_at is None or pin.flash_ends_at > now):
            assert pin.flash_price_minor is not None
            found[key] = pin.flash_price_minor
    return found


async def read_cart(session: AsyncSession, buyer: Principal) -> CartRecord:
    role, subject = _owner(buyer)
    rows = list(
        await session.execute(
            select(models.CartItem, models.Product)
            .join(models.Product, models.Product.id == models.CartItem.product_id)
            .where(
                models.CartItem.owner_role == role,
                models.CartItem.owner_subject == subject,
                models.Product.deleted_at.is_(None),
            )
            .order_by(models.CartItem.added_at, models.CartItem.id)
        )
    )
    flash = await flash_prices(
        session, {(item.show_id, item.product_id) for item, _ in rows if item.show_id}
    )
    lines = []
    for item, product in rows:
        price = flash.get((item.show_id, product.id)) if item.show_id else None
        lines.append(
            CartLine(
                sku=product.sku,
                title=dict(product.title),
                image_url=product.image_url,
                quantity=item.quantity,
                unit_price_minor=product.price_minor if price is None else price,
                compare_at_minor=product.compare_at_minor
                if price is None
                else (product.compare_at_minor or product.price_minor),
                currency=product.currency,
                flash=price is not None,
                stock=product.stock,
                available=product.status == ProductStatus.ACTIVE.value
                and product.stock >= item.quantity,
                show_id=item.show_id,
                added_at=item.added_at,
            )
        )
    return CartRecord(lines)


async def access_cart(db: Database, buyer: Principal) -> CartRecord:
    async with db.read() as session:
        return await read_cart(session, buyer)


async def _product_for_sale(session: AsyncSession, sku: str, field: str) -> models.Product:
    product = await session.scalar(
        select(models.Product).where(models.Product.sku == sku, models.Product.deleted_at.is_(None))
    )
    if product is None or product.status != ProductStatus.ACTIVE.value:
        raise NotFound(f"no product with SKU {sku!r} for sale", field=field)
    return product


async def put_item(
    session: AsyncSession,
    buyer: Principal,
    product: models.Product,
    *,
    quantity: int,
    add: bool,
    show_id: uuid.UUID | None,
    max_quantity: int,
) -> int:
    """Set (or, with add=True, raise) the product's quantity in the cart: the new quantity.
    The caller's transaction holds the row lock."""
    role, subject = _owner(buyer)
    now = utcnow()
    item = await session.scalar(
        select(models.CartItem)
        .where(
            models.CartItem.owner_role == role,
            models.CartItem.owner_subject == subject,
            models.CartItem.product_id == product.id,
        )
        .with_for_update()
    )
    wanted = quantity + (item.quantity if item is not None and add else 0)
    if not 1 <= wanted <= max_quantity:
        held = f" (the cart has {item.quantity})" if item is not None and add else ""
        raise InvalidValue(
            f"a cart holds 1 to {max_quantity} of one product{held}", field="quantity"
        )
    if item is None:
        count = len(
            list(
                await session.scalars(
                    select(models.CartItem.id).where(
                        models.CartItem.owner_role == role,
                        models.CartItem.owner_subject == subject,
                    )
                )
            )
        )
        if count >= MAX_LINES:
            raise Conflict(f"the cart is full ({MAX_LINES} products); check out or remove one")
        session.add(
            models.CartItem(
                owner_role=role,
                owner_subject=subject,
                product_id=product.id,
                quantity=wanted,
                show_id=show_id,
                added_at=now,
                updated_at=now,
            )
        )
    else:
        item.quantity = wanted
        item.updated_at = now
        if show_id is not None:
            item.show_id = show_id
    await session.flush()
    return wanted


async def _check_show(session: AsyncSession, show_id: uuid.UUID | None) -> None:
    if show_id is not None and await session.get(models.Show, show_id) is None:
        raise NotFound(f"no show {show_id}", field="show_id")


async def do_put_item(
    db: Database,
    buyer: Principal,
    sku: str,
    *,
    quantity: int,
    add: bool,
    show_id: uuid.UUID | None,
    max_quantity: int,
) -> CartRecord:
    for attempt in (1, 2):
        try:
            async with db.transaction() as session:
                await _check_show(session, show_id)
                product = await _product_for_sale(session, sku, "sku")
                await put_item(
                    session,
                    buyer,
                    product,
                    quantity=quantity,
                    add=add,
                    show_id=show_id,
                    max_quantity=max_quantity,
                )
                return await read_cart(session, buyer)
        except IntegrityError:
            # Two devices added the same product at once: the second sees the first's row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def do_remove_item(db: Database, buyer: Principal, sku: str) -> CartRecord:
    role, subject = _owner(buyer)
    async with db.transaction() as session:
        product_ids = select(models.Product.id).where(models.Product.sku == sku)
        gone = await session.execute(
            delete(models.CartItem)
            .where(
                models.CartItem.owner_role == role,
                models.CartItem.owner_subject == subject,
                models.CartItem.product_id.in_(product_ids),
            )
            .execution_options(synchronize_session=False)
        )
        if gone.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"{sku!r} is not in the cart")
        return await read_cart(session, buyer)


async def clear_lines(
    session: AsyncSession, buyer: Principal, product_ids: list[uuid.UUID]
) -> None:
    """Take these products out of the buyer's cart (they went into an order)."""
    role, subject = _owner(buyer)
    await session.execute(
        delete(models.CartItem)
        .where(
            models.CartItem.owner_role == role,
            models.CartItem.owner_subject == subject,
            models.CartItem.product_id.in_(product_ids),
        )
        .execution_options(synchronize_session=False)
    )


async def access_handoff(
    db: Database,
    buyer: Principal,
    show_id: uuid.UUID,
    lines: list[LineRequest] | None,
    *,
    max_quantity: int,
) -> tuple[str, list[LineRequest]]:
    """The brand's cart link for these lines (by default the buyer's cart), with the show
    and the pin of the first product as attribution."""
    async with db.read() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        if show.checkout_mode != CheckoutMode.HANDOFF.value or not show.handoff_url:
            raise Conflict("this show takes orders in Showroom: POST /api/v1/checkouts")
        if lines is None:
            lines = (await read_cart(session, buyer)).checkout_lines()
            if not lines:
                raise Conflict("the cart is empty")
        check_lines(lines, max_quantity)
        products = {
            p.sku: p
            for p in await session.scalars(
                select(models.Product).where(
                    models.Product.sku.in_([x.sku for x in lines]),
                    models.Product.deleted_at.is_(None),
                )
            )
        }
        for n, line in enumerate(lines):
            product = products.get(line.sku)
            if product is None or product.status != ProductStatus.ACTIVE.value:
                raise NotFound(f"no product with SKU {line.sku!r} for sale", field=f"items.{n}.sku")
        pin_id = await session.scalar(
            select(models.ShowPin.id).where(
                models.ShowPin.show_id == show_id,
                models.ShowPin.product_id == products[lines[0].sku].id,
                models.ShowPin.unpinned_at.is_(None),
            )
        )
        url = handoff.expand(
            show.handoff_url,
            lines,
            show_id=str(show_id),
            pin_id=None if pin_id is None else str(pin_id),
        )
        return url, lines
