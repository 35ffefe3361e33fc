"""Checkout: stock is reserved for the whole order in one transaction, or not at all.

Each line takes its units with one conditional `UPDATE products SET stock = stock - q
WHERE id = ? AND stock >= q`; a line that finds too little rolls the whole order back, so
stock is never oversold however many buyers press at once, on SQLite or PostgreSQL. Prices
come from the database (a flash price when the product is pinned with one in the order's
show), never from the client. An `Idempotency-Key` makes a repeated checkout answer with the
first order."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from server.domain.catalog import ProductStatus
from server.domain.errors import Conflict, InvalidValue, NotFound
from server.domain.orders import (
    LineRequest,
    OrderStatus,
    PaymentMethod,
    check_lines,
    check_transition,
)
from server.services.identity import Principal
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

IDEMPOTENCY_KEY_MAX = 255


class SoldOut(Conflict):
    """Not enough stock for a line (answers 409; `field` names the line)."""


@dataclass(frozen=True, slots=True)
class LineRecord:
    sku: str
    title: dict[str, str]
    quantity: int
    unit_price_minor: int
    flash: bool


@dataclass(frozen=True, slots=True)
class OrderRecord:
    id: uuid.UUID
    buyer_role: str
    buyer_subject: str
    show_id: uuid.UUID | None
    status: OrderStatus
    currency: str
    total_minor: int
    reserved_until: datetime
    lines: list[LineRecord]
    created_at: datetime
    updated_at: datetime
    contact: dict[str, str] | None = None
    delivery: dict[str, str] | None = None
    payment_method: str | None = None
    placed_at: datetime | None = None

    def belongs_to(self, principal: Principal) -> bool:
        return (self.buyer_role, self.buyer_subject) == (principal.role.value, principal.subject)


def _record(order: models.Order, lines: list[models.OrderLine]) -> OrderRecord:
    return OrderRecord(
        order.id,
        order.buyer_role,
        order.buyer_subject,
        order.show_id,
        OrderStatus(order.status),
        order.currency,
        order.total_minor,
        order.reserved_until,
        [
            LineRecord(ln.sku, dict(ln.title), ln.quantity, ln.unit_price_minor, ln.flash)
            for ln in sorted(lines, key=lambda ln: ln.line_no)
        ],
        order.created_at,
        order.updated_at,
        dict(order.contact) if order.contact else None,
        dict(order.delivery) if order.delivery else None,
        order.payment_method,
        order.placed_at,
    )


def _request_hash(show_id: uuid.UUID | None, lines: list[LineRequest]) -> str:
    body = json.dumps(
        {
            "show_id": str(show_id) if show_id else None,
            "items": [[x.sku, x.quantity] for x in lines],
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


async def _existing(
    db: Database, buyer: Principal, key: str
) -> tuple[models.Order, list[models.OrderLine]] | None:
    async with db.read() as session:
        order = await session.scalar(
            select(models.Order).where(
                models.Order.buyer_role == buyer.role.value,
                models.Order.buyer_subject == buyer.subject,
                models.Order.idempotency_key == key,
            )
        )
        if order is None:
            return None
        lines = list(
            await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id == order.id)
            )
        )
        return order, lines


async def _replay(
    db: Database, buyer: Principal, key: str, request_hash: str
) -> OrderRecord | None:
    found = await _existing(db, buyer, key)
    if found is None:
        return None
    order, lines = found
    if order.request_hash != request_hash:
        raise InvalidValue(
            "this Idempotency-Key was already used for a different checkout",
            field="Idempotency-Key",
        )
    return _record(order, lines)


async def do_checkout(
    db: Database,
    buyer: Principal,
    lines: list[LineRequest],
    *,
    show_id: uuid.UUID | None,
    idempotency_key: str | None,
    reservation: timedelta,
    max_quantity: int,
) -> tuple[OrderRecord, bool]:
    """Reserve stock for every line and create the order; (order, created). With a key
    already used for the same request, the first order comes back with created=False."""
    check_lines(lines, max_quantity)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidValue(f"must be 1-{IDEMPOTENCY_KEY_MAX} characters", field="Idempotency-Key")
    digest = _request_hash(show_id, lines)
    if idempotency_key is not None:
        replayed = await _replay(db, buyer, idempotency_key, digest)
        if replayed is not None:
            return replayed, False
    try:
        return await _reserve(db, buyer, lines, show_id, idempotency_key, digest, reservation), True
    except IntegrityError:
        # The same key raced us to the insert: answer with the order that won.
        if idempotency_key is None:
            raise
        replayed = await _replay(db, buyer, idempotency_key, digest)
        if replayed is None:
            raise
        return replayed, False


async def _reserve(
    db: Database,
    buyer: Principal,
    lines: list[LineRequest],
    show_id: uuid.UUID | None,
    key: str | None,
    digest: str,
    reservation: timedelta,
) -> OrderRecord:
    now = utcnow()
    async with db.transaction() as session:
        flash: dict[uuid.UUID, int] = {}
        if show_id is not None:
            show = await session.get(models.Show, show_id)
            if show is None:
                raise NotFound(f"no show {show_id}", field="show_id")
            for pin in await session.scalars(
                select(models.ShowPin).where(
                    models.ShowPin.show_id == show_id,
                    models.ShowPin.unpinned_at.is_(None),
                    models.ShowPin.flash_price_minor.is_not(None),
                )
            ):
                if pin.flash_ends_at is None or pin.flash_ends_at > now:
                    assert pin.flash_price_minor is not None
                    flash[pin.product_id] = pin.flash_price_minor
        products = {
            p.sku: p
            for p in await session.scalars(
                select(models.Product).where(
                    models.Product.sku.in_([x.sku for x in lines]),
                    models.Product.deleted_at.is_(None),
                )
            )
        }
        order = models.Order(
            id=uuid.uuid4(),
            buyer_role=buyer.role.value,
            buyer_subject=buyer.subject,
            show_id=show_id,
            status=OrderStatus.RESERVED.value,
            currency="",
            total_minor=0,
            reserved_until=now + reservation,
            idempotency_key=key,
            request_hash=digest,
            created_at=now,
            updated_at=now,
        )
        rows: list[models.OrderLine] = []
        total = 0
        for n, line in enumerate(lines):
            product = products.get(line.sku)
            if product is None or product.status != ProductStatus.ACTIVE.value:
                raise NotFound(f"no product with SKU {line.sku!r} for sale", field=f"items.{n}.sku")
            if order.currency and product.currency != order.currency:
                raise InvalidValue(
                    f"is priced in {product.currency}; one order has one currency",
                    field=f"items.{n}.sku",
                )
            order.currency = product.currency
            taken = await session.execute(
                update(models.Product)
                .where(models.Product.id == product.id, models.Product.stock >= line.quantity)
                .values(stock=models.Product.stock - line.quantity, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                raise SoldOut(f"{line.sku!r} is sold out", field=f"items.{n}.sku")
            price = flash.get(product.id, product.price_minor)
            total += price * line.quantity
            rows.append(
                models.OrderLine(
                    order_id=order.id,
                    line_no=n,
                    product_id=product.id,
                    sku=product.sku,
                    title=dict(product.title),
                    quantity=line.quantity,
                    unit_price_minor=price,
                    flash=product.id in flash,
                )
            )
        order.total_minor = total
        session.add(order)
        await session.flush()  # the order first: its lines refer to it
        session.add_all(rows)
        await session.flush()
        return _record(order, rows)


async def do_expire_reservations(db: Database, limit: int = 500) -> dict[str, int]:
    """Return the stock of reservations past their time: {sku: units back}."""
    now = utcnow()
    returned: dict[str, int] = {}
    async with db.transaction() as session:
        expired = list(
            await session.scalars(
                select(models.Order)
                .where(
                    models.Order.status == OrderStatus.RESERVED.value,
                    models.Order.reserved_until <= now,
                )
                .limit(limit)
            )
        )
        for order in expired:
            check_transition(OrderStatus(order.status), OrderStatus.EXPIRED)
            # Only an order still reserved gives its stock back (a concurrent confirm wins).
            moved = await session.execute(
                update(models.Order)
                .where(
                    models.Order.id == order.id, models.Order.status == OrderStatus.RESERVED.value
                )
                .values(status=OrderStatus.EXPIRED.value, updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if moved.rowcount != 1:  # type: ignore[attr-defined]
                continue
            for line in await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id == order.id)
            ):
                await session.execute(
                    update(models.Product)
                    .where(models.Product.id == line.product_id)
                    .values(stock=models.Product.stock + line.quantity, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                returned[line.sku] = returned.get(line.sku, 0) + line.quantity
    return returned


async def access_order(db: Database, order_id: uuid.UUID) -> OrderRecord:
    async with db.read() as session:
        order = await session.get(models.Order, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        lines = list(
            await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id == order_id)
            )
        )
        return _record(order, lines)


async def access_buyer_order(db: Database, order_id: uuid.UUID, caller: Principal) -> OrderRecord:
    """The order, for its buyer or an admin; anyone else is told it does not exist."""
    record = await access_order(db, order_id)
    if caller.role.value != "admin" and not record.belongs_to(caller):
        raise NotFound(f"no order {order_id}")
    return record


async def do_confirm(
    db: Database,
    order_id: uuid.UUID,
    buyer: Principal,
    *,
    contact: dict[str, str],
    delivery: dict[str, str] | None,
    payment_method: PaymentMethod,
) -> OrderRecord:
    """The buyer confirms a reservation: it becomes a sale (placed)."""
    now = utcnow()
    async with db.transaction() as session:
        # Locked, so the reservation sweep cannot expire it between this read and the write.
        order = await session.get(models.Order, order_id, with_for_update=True)
        if order is None or (order.buyer_role, order.buyer_subject) != (
            buyer.role.value,
            buyer.subject,
        ):
            raise NotFound(f"no order {order_id}")
        status = OrderStatus(order.status)
        if status is OrderStatus.RESERVED and order.reserved_until <= now:
            raise Conflict("the reservation expired; check out again")
        check_transition(status, OrderStatus.PLACED)
        order.status = OrderStatus.PLACED.value
        order.contact, order.delivery = contact, delivery
        order.payment_method = payment_method.value
        order.placed_at = order.updated_at = now
        lines = list(
            await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id == order_id)
            )
        )
        await session.flush()
        return _record(order, lines)


async def _change(
    db: Database, order_id: uuid.UUID, wanted: OrderStatus
) -> tuple[OrderRecord, dict[str, int]]:
    """Move an order to `wanted` under a row lock; a cancellation returns its stock."""
    now = utcnow()
    returned: dict[str, int] = {}
    async with db.transaction() as session:
        order = await session.get(models.Order, order_id, with_for_update=True)
        if order is None:
            raise NotFound(f"no order {order_id}")
        current = OrderStatus(order.status)
        if current is OrderStatus.RESERVED and order.reserved_until <= now:
            raise Conflict("the reservation expired; its stock went back")
        check_transition(current, wanted)
        lines = list(
            await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id == order_id)
            )
        )
        if wanted is OrderStatus.CANCELLED:
            for line in lines:
                await session.execute(
                    update(models.Product)
                    .where(models.Product.id == line.product_id)
                    .values(stock=models.Product.stock + line.quantity, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                returned[line.sku] = line.quantity
        order.status = wanted.value
        order.updated_at = now
        await session.flush()
        return _record(order, lines), returned


async def do_cancel(db: Database, order_id: uuid.UUID) -> tuple[OrderRecord, dict[str, int]]:
    """Cancel a reserved or placed order; its units go back to stock ({sku: units})."""
    return await _change(db, order_id, OrderStatus.CANCELLED)


async def do_mark_paid(db: Database, order_id: uuid.UUID) -> OrderRecord:
    """The operator records the payment of a placed order (pay later, cash on delivery)."""
    record, _ = await _change(db, order_id, OrderStatus.PAID)
    return record


async def list_orders(
    db: Database, *, statuses: list[OrderStatus], show_id: uuid.UUID | None, limit: int, offset: int
) -> tuple[list[OrderRecord], int]:
    """Newest first."""
    async with db.read() as session:
        query = select(models.Order)
        if statuses:
            query = query.where(models.Order.status.in_([s.value for s in statuses]))
        if show_id is not None:
            query = query.where(models.Order.show_id == show_id)
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        found = list(
            await session.scalars(
                query.order_by(models.Order.created_at.desc(), models.Order.id)
                .limit(limit)
                .offset(offset)
            )
        )
        lines: dict[uuid.UUID, list[models.OrderLine]] = {o.id: [] for o in found}
        if found:
            for line in await session.scalars(
                select(models.OrderLine).where(models.OrderLine.order_id.in_(list(lines)))
            ):
                lines[line.order_id].append(line)
        return [_record(o, lines[o.id]) for o in found], int(total or 0)
