"""Products pinned in a show: what every viewer sees as product cards over the video.

A pin or unpin is a numbered room event (`pins_seq` on the show), so the join snapshot and
the repair after a Redis outage treat it like the room's other settings. Unpinned rows stay,
with the time, for the replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.catalog import ProductStatus
from server.domain.errors import Conflict, InvalidValue, NotFound
from server.domain.money import Money
from server.services.catalog import ProductRecord
from server.services.identity import Principal
from server.services.moderation import Refused
from server.services.sequence import next_event_seq
from server.store import models
from server.store.db import Database
from server.store.models import utcnow


@dataclass(frozen=True, slots=True)
class PinRecord:
    product: ProductRecord
    flash_price: Money | None
    flash_ends_at: datetime | None
    pinned_at: datetime

    def flash_active(self, now: datetime) -> bool:
        return self.flash_price is not None and (
            self.flash_ends_at is None or self.flash_ends_at > now
        )


@dataclass(frozen=True, slots=True)
class Pins:
    seq: int  # the event number of the last pin change (0: never)
    pins: list[PinRecord]  # in the order they were pinned


def _may_pin(actor: Principal, show_id: uuid.UUID) -> None:
    if not actor.may_host(show_id):
        raise Refused("forbidden", "only the show's host can pin products")


async def _active(session: AsyncSession, show_id: uuid.UUID) -> list[PinRecord]:
    rows = await session.execute(
        select(models.ShowPin, models.Product)
        .join(models.Product, models.Product.id == models.ShowPin.product_id)
        .where(models.ShowPin.show_id == show_id, models.ShowPin.unpinned_at.is_(None))
        .order_by(models.ShowPin.pinned_at, models.ShowPin.id)
    )
    return [
        PinRecord(
            ProductRecord.of(product),
            None
            if pin.flash_price_minor is None
            else Money(pin.flash_price_minor, product.currency),
            pin.flash_ends_at,
            pin.pinned_at,
        )
        for pin, product in rows
    ]


@dataclass(frozen=True, slots=True)
class MomentRecord:
    """A product's time on screen in a show: from its pin to its unpin (None: to the end)."""

    product: ProductRecord
    pinned_at: datetime
    unpinned_at: datetime | None


async def list_moments(
    db: Database, show_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[MomentRecord]]:
    """Every pin of these shows, unpinned ones too, in the order pinned, of products still on
    sale (a draft, archived or deleted product has nothing to sell in a replay)."""
    found: dict[uuid.UUID, list[MomentRecord]] = {show_id: [] for show_id in show_ids}
    if not show_ids:
        return found
    async with db.read() as session:
        rows = await session.execute(
            select(models.ShowPin, models.Product)
            .join(models.Product, models.Product.id == models.ShowPin.product_id)
            .where(
                models.ShowPin.show_id.in_(show_ids),
                models.Product.status == ProductStatus.ACTIVE.value,
                models.Product.deleted_at.is_(None),
            )
            .order_by(models.ShowPin.pinned_at, models.ShowPin.id)
        )
        for pin, product in rows:
            found[pin.show_id].append(
                MomentRecord(ProductRecord.of(product), pin.pinned_at, pin.unpinned_at)
            )
    return found


async def read_pins(session: AsyncSession, show: models.Show) -> Pins:
    return Pins(show.pins_seq, await _active(session, show.id))


async def access_pins(db: Database, show_id: uuid.UUID) -> Pins:
    async with db.read() as session:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        return await read_pins(session, show)


async def do_pin(
    db: Database,
    show_id: uuid.UUID,
    actor: Principal,
    sku: str,
    *,
    flash_price: Money | None,
    flash_ends_at: datetime | None,
    max_pins: int,
) -> Pins:
    """Pin a product (or change the flash price of one already pinned)."""
    _may_pin(actor, show_id)
    now = utcnow()
    if flash_ends_at is not None:
        if flash_price is None:
            raise InvalidValue("an end time needs a flash price", field="flash_ends_at")
        if flash_ends_at <= now:
            raise InvalidValue("must be in the future", field="flash_ends_at")
    async with db.transaction() as session:
        seq = await next_event_seq(session, show_id)  # 404 or 409 for a closed show
        product = await session.scalar(
            select(models.Product).where(
                models.Product.sku == sku, models.Product.deleted_at.is_(None)
            )
        )
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}", field="sku")
        if product.status != ProductStatus.ACTIVE.value:
            raise Conflict(
                f"product {sku!r} is {product.status}; only active products can be pinned",
                field="sku",
            )
        if flash_price is not None:
            if flash_price.currency != product.currency:
                raise InvalidValue(
                    f"must be in the product's currency, {product.currency}", field="flash_price"
                )
            if flash_price.amount_minor >= product.price_minor:
                raise InvalidValue("must be lower than the product's price", field="flash_price")
        current = await session.scalar(
            select(models.ShowPin).where(
                models.ShowPin.show_id == show_id,
                models.ShowPin.product_id == product.id,
                models.ShowPin.unpinned_at.is_(None),
            )
        )
        if current is None:
            pinned = await session.scalar(
                select(func.count())
                .select_from(models.ShowPin)
                .where(models.ShowPin.show_id == show_id, models.ShowPin.unpinned_at.is_(None))
            )
            if (pinned or 0) >= max_pins:
                raise Conflict(
                    f"{max_pins} products are pinned already; unpin one first", field="sku"
                )
            current = models.ShowPin(show_id=show_id, product_id=product.id, pinned_at=now)
            session.add(current)
        current.flash_price_minor = None if flash_price is None else flash_price.amount_minor
        current.flash_ends_at = flash_ends_at
        show = await session.get(models.Show, show_id)
        assert show is not None
        show.pins_seq = seq
        await session.flush()
        return await read_pins(session, show)


async def do_unpin(db: Database, show_id: uuid.UUID, actor: Principal, sku: str) -> Pins:
    _may_pin(actor, show_id)
    async with db.transaction() as session:
        seq = await next_event_seq(session, show_id)
        pin = await session.scalar(
            select(models.ShowPin)
            .join(models.Product, models.Product.id == models.ShowPin.product_id)
            .where(
                models.ShowPin.show_id == show_id,
                models.Product.sku == sku,
                models.ShowPin.unpinned_at.is_(None),
            )
        )
        if pin is None:
            raise NotFound(f"{sku!r} is not pinned in this show", field="sku")
        pin.unpinned_at = utcnow()
        show = await session.get(models.Show, show_id)
        assert show is not None
        show.pins_seq = seq
        await session.flush()
        return await read_pins(session, show)


async def access_pinned_stock(db: Database, skus: list[str]) -> dict[str, dict[str, int]]:
    """Where these products are pinned now, and their stock: {show id: {sku: stock}}, in
    one query (their viewers are shown the counts)."""
    if not skus:
        return {}
    found: dict[str, dict[str, int]] = {}
    async with db.read() as session:
        rows = await session.execute(
            select(models.ShowPin.show_id, models.Product.sku, models.Product.stock)
            .join(models.Product, models.Product.id == models.ShowPin.product_id)
            .where(models.Product.sku.in_(skus), models.ShowPin.unpinned_at.is_(None))
        )
        for show_id, sku, stock in rows:
            found.setdefault(str(show_id), {})[sku] = stock
    return found


@dataclass(frozen=True, slots=True)
class FeaturingShow:
    """An ended show in which a product was pinned: a replay that can sell it."""

    id: uuid.UUID
    title: str
    locale: str
    started_at: datetime | None
    ended_at: datetime | None
    viewers: int  # distinct viewers who joined its room
    peak_viewers: int


async def list_shows_featuring(db: Database, sku: str, *, limit: int) -> list[FeaturingShow]:
    """Ended shows that pinned the product `sku`, most watched first, then the newest.
    NotFound when no active product has that SKU."""
    async with db.read() as session:
        product_id = await session.scalar(
            select(models.Product.id).where(
                models.Product.sku == sku,
                models.Product.status == ProductStatus.ACTIVE.value,
                models.Product.deleted_at.is_(None),
            )
        )
        if product_id is None:
            raise NotFound(f"no product {sku}", field="sku")
        pinned = select(models.ShowPin.show_id).where(models.ShowPin.product_id == product_id)
        viewers = (
            select(func.count())
            .where(models.ShowAttendance.show_id == models.Show.id)
            .correlate(models.Show)
            .scalar_subquery()
        )
        rows = await session.execute(
            select(
                models.Show.id,
                models.Show.title,
                models.Show.locale,
                models.Show.started_at,
                models.Show.ended_at,
                viewers,
                models.Show.peak_viewers,
            )
            .where(models.Show.id.in_(pinned), models.Show.state == "ended")
            .order_by(viewers.desc(), models.Show.ended_at.desc(), models.Show.id)
            .limit(limit)
        )
        return [FeaturingShow(*row) for row in rows]
