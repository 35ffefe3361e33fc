"""The sales funnel per show and product: card shown, card opened, added to cart, checkout
started (counted here, in memory, and written in batches: one transaction every couple of
seconds, not one per tap), then orders placed and revenue (read from the orders)."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import distinct, func, select
from sqlalchemy.dialects import postgresql, sqlite

from server.domain.orders import OrderStatus
from server.store import models
from server.store.db import Database

log = logging.getLogger("showroom.funnel")

# Members already counted for a card (shown/opened count people, not taps). Best effort:
# per process, and forgotten past this many entries.
SEEN_MAX = 1_000_000
SOLD = (OrderStatus.PLACED.value, OrderStatus.PAID.value)


class FunnelStep(StrEnum):
    CARD_SHOWN = "card_shown"  # once per member and card
    CARD_OPENED = "card_opened"  # once per member and card
    ADDED_TO_CART = "added_to_cart"  # each add, claims included
    CHECKOUT_STARTED = "checkout_started"  # each checkout or hand-off link


ONCE_PER_MEMBER = frozenset({FunnelStep.CARD_SHOWN, FunnelStep.CARD_OPENED})
Key = tuple[uuid.UUID, str, FunnelStep]


class FunnelBoard:
    def __init__(self, db: Callable[[], Database]) -> None:
        self._db = db
        self.counts: Counter[Key] = Counter()
        self.seen: set[tuple[uuid.UUID, str, str, FunnelStep]] = set()
        self.flushes = 0

    def note(
        self, show_id: uuid.UUID, sku: str, step: FunnelStep, member: str | None = None
    ) -> bool:
        """Count one step; False when this member was already counted for it."""
        if step in ONCE_PER_MEMBER and member is not None:
            seen = (show_id, member, sku, step)
            if seen in self.seen:
                return False
            if len(self.seen) >= SEEN_MAX:
                self.seen.clear()
            self.seen.add(seen)
        self.counts[(show_id, sku, step)] += 1
        return True

    async def flush(self) -> None:
        counts, self.counts = self.counts, Counter()
        if not counts:
            return
        rows = [
            {"show_id": show, "sku": sku, "step": step.value, "count": n}
            for (show, sku, step), n in counts.items()
        ]
        db = self._db()
        insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        statement = insert(models.FunnelCount).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["show_id", "sku", "step"],
            set_={"count": models.FunnelCount.count + statement.excluded["count"]},
        )
        try:
            async with db.transaction() as session:
                await session.execute(statement)
        except Exception:
            self.counts.update(counts)  # kept for the next round
            raise
        self.flushes += 1


@dataclass(frozen=True, slots=True)
class FunnelRow:
    sku: str
    title: dict[str, str]
    steps: dict[FunnelStep, int]
    orders: int
    units: int
    revenue_minor: int
    currency: str | None


async def access_funnel(db: Database, show_id: uuid.UUID) -> list[FunnelRow]:
    """One row per product that was pinned, counted or sold in the show, by SKU."""
    async with db.read() as session:
        steps: dict[str, dict[FunnelStep, int]] = {}
        for sku, step, count in await session.execute(
            select(models.FunnelCount.sku, models.FunnelCount.step, models.FunnelCount.count).where(
                models.FunnelCount.show_id == show_id
            )
        ):
            steps.setdefault(sku, {})[FunnelStep(step)] = int(count)
        sold: dict[str, tuple[int, int, int, str | None]] = {}
        for sku, orders, units, revenue, currency in await session.execute(
            select(
                models.OrderLine.sku,
                func.count(distinct(models.OrderLine.order_id)),
                func.sum(models.OrderLine.quantity),
                func.sum(models.OrderLine.quantity * models.OrderLine.unit_price_minor),
                func.min(models.Order.currency),
            )
            .join(models.Order, models.Order.id == models.OrderLine.order_id)
            .where(models.Order.show_id == show_id, models.Order.status.in_(SOLD))
            .group_by(models.OrderLine.sku)
        ):
            sold[sku] = (int(orders), int(units or 0), int(revenue or 0), currency)
        pinned = set(
            await session.scalars(
                select(models.Product.sku)
                .join(models.ShowPin, models.ShowPin.product_id == models.Product.id)
                .where(models.ShowPin.show_id == show_id)
            )
        )
        skus = sorted(pinned | set(steps) | set(sold))
        titles = {
            p.sku: dict(p.title)
            for p in await session.scalars(
                select(models.Product).where(
                    models.Product.sku.in_(skus), models.Product.deleted_at.is_(None)
                )
            )
        }
        rows = []
        for sku in skus:
            orders, units, revenue, paid_in = sold.get(sku, (0, 0, 0, None))
            rows.append(
                FunnelRow(
                    sku,
                    titles.get(sku, {}),
                    {step: steps.get(sku, {}).get(step, 0) for step in FunnelStep},
                    orders,
                    units,
                    revenue,
                    paid_in,
                )
            )
        return rows


async def access_show_orders(db: Database, show_id: uuid.UUID) -> tuple[int, dict[str, int]]:
    """Orders sold in the show and their revenue per currency."""
    async with db.read() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(models.Order)
            .where(models.Order.show_id == show_id, models.Order.status.in_(SOLD))
        )
        revenue = {
            currency: int(total or 0)
            for currency, total in await session.execute(
                select(models.Order.currency, func.sum(models.Order.total_minor))
                .where(models.Order.show_id == show_id, models.Order.status.in_(SOLD))
                .group_by(models.Order.currency)
            )
        }
        return int(count or 0), revenue
