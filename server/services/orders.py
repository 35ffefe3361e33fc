"""Checkout: stock is reserved for the whole order in one transaction, or not at all.

Checkouts that arrive together share one write transaction, a round (`Grouped`; a lone
checkout waits for nobody). The round reads its products under the transaction's lock,
gives each order, in arrival order, all its lines or none from what is left, and then moves
each product's stock with one conditional `UPDATE products SET stock = stock - n WHERE id =
? AND stock >= n`, so stock is never oversold however many buyers press at once, on SQLite
or PostgreSQL. An order that cannot be served (sold out, unknown SKU, ...) is answered on
its own; the others in its round go through. Prices come from the database (a flash price
when the product is pinned with one in the order's show), never from the client. An
`Idempotency-Key` makes a repeated checkout answer with the first order."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.sql.selectable import TextualSelect

from server.domain.catalog import ProductStatus
from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.domain.handoff import CheckoutMode
from server.domain.orders import (
    LineRequest,
    OrderStatus,
    PaymentMethod,
    check_lines,
    check_transition,
)
from server.domain.webhooks import EventType
from server.services import carts, ledger, webhooks
from server.services.batching import Grouped
from server.services.identity import Principal
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

IDEMPOTENCY_KEY_MAX = 255
log = logging.getLogger("showroom.orders")


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


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def order_document(record: OrderRecord) -> dict[str, Any]:
    """The order as JSON: what the API answers, and the `data` of order webhooks."""
    return {
        "id": str(record.id),
        "status": record.status.value,
        "show_id": str(record.show_id) if record.show_id else None,
        "total": {"amount_minor": record.total_minor, "currency": record.currency},
        "lines": [
            {
                "sku": line.sku,
                "title": line.title,
                "quantity": line.quantity,
                "unit_price": {"amount_minor": line.unit_price_minor, "currency": record.currency},
                "flash": line.flash,
            }
            for line in record.lines
        ],
        "reserved_until": _when(record.reserved_until),
        "contact": record.contact,
        "delivery": record.delivery,
        "payment_method": record.payment_method,
        "created_at": _when(record.created_at),
        "placed_at": _when(record.placed_at),
    }


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


_KEY_REUSED = "this Idempotency-Key was already used for a different checkout"


async def _replay(
    db: Database, buyer: Principal, key: str, request_hash: str
) -> OrderRecord | None:
    found = await _existing(db, buyer, key)
    if found is None:
        return None
    order, lines = found
    if order.request_hash != request_hash:
        raise InvalidValue(_KEY_REUSED, field="Idempotency-Key")
    return _record(order, lines)


# Told after a round commits where the products it sold are pinned, and their stock:
# {show id: {sku: stock}} (what pins.access_pinned_stock answers; StockBoard.note takes it).
StockListener = Callable[[dict[str, dict[str, int]]], None]
Answer = tuple[OrderRecord, bool]  # (the order, created)
_Ident = tuple[str, str, str]  # (buyer role, buyer subject, Idempotency-Key)
_KEYS_PER_QUERY = 128  # keys per lookup query on SQLite


@dataclass(frozen=True, slots=True)
class _Checkout:
    """One buyer's checkout, waiting for its round."""

    buyer: Principal
    lines: list[LineRequest]
    show_id: uuid.UUID | None
    key: str | None
    digest: str
    reservation: timedelta
    from_cart: bool
    on_stock: StockListener | None

    @property
    def ident(self) -> _Ident | None:
        return None if self.key is None else (self.buyer.role.value, self.buyer.subject, self.key)


CheckoutRounds = Grouped[None, _Checkout, Answer]
# One Grouped per Database object, so two apps in one process share nothing; weak, so a
# disposed Database and its rounds go together.
_ROUNDS: weakref.WeakKeyDictionary[Database, CheckoutRounds] = weakref.WeakKeyDictionary()


def checkout_rounds(db: Database) -> CheckoutRounds:
    """The checkouts of this database, grouped into rounds (its `rounds` counts them)."""
    rounds = _ROUNDS.get(db)
    if rounds is None:
        ref = weakref.ref(db)

        async def run(_: None, items: list[_Checkout]) -> list[Answer | Exception]:
            database = ref()
            if database is None:  # pragma: no cover - a caller holds the database
                raise RuntimeError("the database is gone")
            return await _checkout_round(database, items)

        rounds = _ROUNDS[db] = Grouped(run)
    return rounds


async def do_checkout(
    db: Database,
    buyer: Principal,
    lines: list[LineRequest],
    *,
    show_id: uuid.UUID | None,
    idempotency_key: str | None,
    reservation: timedelta,
    max_quantity: int,
    from_cart: bool = False,
    on_stock: StockListener | None = None,
) -> tuple[OrderRecord, bool]:
    """Reserve stock for every line and create the order; (order, created). With a key
    already used for the same request, the first order comes back with created=False.

    Checkouts that arrive together share one write transaction (a round, `_reserve`); each
    one still takes all its lines or none and is answered on its own. `on_stock`, if given,
    is told the new stock where the sold products are pinned once the round has committed."""
    check_lines(lines, max_quantity)
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidValue(f"must be 1-{IDEMPOTENCY_KEY_MAX} characters", field="Idempotency-Key")
    item = _Checkout(
        buyer,
        list(lines),
        show_id,
        idempotency_key,
        _request_hash(show_id, lines),
        reservation,
        from_cart,
        on_stock,
    )
    return await checkout_rounds(db)(None, item)


async def do_cart_checkout(
    db: Database,
    buyer: Principal,
    *,
    show_id: uuid.UUID | None,
    idempotency_key: str | None,
    reservation: timedelta,
    max_quantity: int,
) -> tuple[OrderRecord, bool]:
    """Check out the buyer's whole cart: one order (credited to `show_id`, else to the show
    the latest item came from); its products leave the cart with the same commit. A
    repeated Idempotency-Key answers with the first order, although the cart is now empty."""
    if idempotency_key is not None:
        found = await _existing(db, buyer, idempotency_key)
        if found is not None:
            return _record(*found), False
    cart = await carts.access_cart(db, buyer)
    if not cart.lines:
        raise Conflict("the cart is empty")
    return await do_checkout(
        db,
        buyer,
        cart.checkout_lines(),
        show_id=show_id or cart.show_id(),
        idempotency_key=idempotency_key,
        reservation=reservation,
        max_quantity=max_quantity,
        from_cart=True,
    )


async def _checkout_round(db: Database, items: list[_Checkout]) -> list[Answer | Exception]:
    """One round. If it hits a unique index (another process inserted one of its keys after
    the round looked), it is done again one checkout at a time: only the checkout with that
    key is answered with the order that won, and the others go through."""
    try:
        return await _reserve(db, items)
    except IntegrityError as exc:
        if len(items) == 1:
            return [await _after_conflict(db, items[0], exc)]
        return [await _alone(db, item) for item in items]


async def _alone(db: Database, item: _Checkout) -> Answer | Exception:
    try:
        [answer] = await _reserve(db, [item])
    except IntegrityError as exc:
        return await _after_conflict(db, item, exc)
    except Exception as exc:  # this checkout's own failure
        return exc
    return answer


async def _after_conflict(db: Database, item: _Checkout, exc: IntegrityError) -> Answer | Exception:
    """The same key raced us to the insert: answer with the order that won."""
    if item.key is None:
        return exc
    try:
        replayed = await _replay(db, item.buyer, item.key, item.digest)
    except Exception as error:  # a different request under that key (422)
        return error
    return exc if replayed is None else (replayed, False)


@dataclass(slots=True)
class _Shelf:
    """A product as a round sees it: read under the lock, then what the round left of it."""

    id: uuid.UUID
    sku: str
    title: dict[str, str]
    price_minor: int
    currency: str
    status: str
    left: int  # stock, less what this round's orders took so far
    pins: dict[uuid.UUID, int | None]  # shows where it is pinned now: their flash price or None


async def _reserve(db: Database, items: list[_Checkout]) -> list[Answer | Exception]:
    """A round of checkouts in one write transaction, answered in arrival order.

    The round's Idempotency-Keys are looked up in one query and its shows in one. Its
    products are read once, with where they are pinned and at which flash price, under the
    transaction's lock (`FOR UPDATE` on PostgreSQL; on SQLite `BEGIN IMMEDIATE` already
    holds the only write lock). Each checkout then takes its units from what is left, in
    Python, all its lines or none; one that cannot (sold out, unknown SKU, another currency,
    a hand-off show) is answered on its own and the others go on. The stock moves with one
    conditional `UPDATE ... SET stock = stock - n WHERE stock >= n` per product, which holds
    because n was counted from the stock read under the lock; the orders and their lines
    are inserted with one statement each. After the commit, the stock listeners hear the
    new counts where the products are pinned (known without reading again: the lock)."""
    now = utcnow()
    answers: list[Answer | Exception | None] = [None] * len(items)
    async with db.transaction() as session:
        conn = await session.connection()
        idents = {i.ident for i in items if i.ident is not None}
        used = await _used_keys(session, conn, idents) if idents else {}
        show_ids = {i.show_id for i in items if i.show_id is not None}
        modes = await _show_modes(conn, show_ids) if show_ids else {}
        shelves = await _shelves(conn, {line.sku for i in items for line in i.lines}, now)
        taken: dict[uuid.UUID, int] = {}
        made: dict[_Ident, tuple[OrderRecord, str]] = {}
        order_rows: list[dict[str, Any]] = []
        line_rows: list[dict[str, Any]] = []
        leaving_carts: list[tuple[Principal, list[uuid.UUID]]] = []
        for n, item in enumerate(items):
            ident = item.ident
            earlier = None if ident is None else used.get(ident) or made.get(ident)
            if earlier is not None:  # the key's first order, from before or this round
                record, digest = earlier
                answers[n] = (
                    (record, False)
                    if digest == item.digest
                    else InvalidValue(_KEY_REUSED, field="Idempotency-Key")
                )
                continue
            try:
                record = _take(item, modes, shelves, now)
            except DomainError as exc:
                answers[n] = exc
                continue
            answers[n] = (record, True)
            if ident is not None:
                made[ident] = (record, item.digest)
            order_rows.append(
                {
                    "id": record.id,
                    "buyer_role": record.buyer_role,
                    "buyer_subject": record.buyer_subject,
                    "show_id": record.show_id,
                    "status": record.status.value,
                    "currency": record.currency,
                    "total_minor": record.total_minor,
                    "reserved_until": record.reserved_until,
                    "idempotency_key": item.key,
                    "request_hash": item.digest,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            ids = [shelves[line.sku].id for line in record.lines]
            for line_no, (line, product_id) in enumerate(zip(record.lines, ids, strict=True)):
                taken[product_id] = taken.get(product_id, 0) + line.quantity
                line_rows.append(
                    {
                        "order_id": record.id,
                        "line_no": line_no,
                        "product_id": product_id,
                        "sku": line.sku,
                        "title": line.title,
                        "quantity": line.quantity,
                        "unit_price_minor": line.unit_price_minor,
                        "flash": line.flash,
                    }
                )
            if item.from_cart:
                leaving_carts.append((item.buyer, ids))
        for product_id, units in taken.items():
            moved = await conn.execute(
                update(models.Product)
                .where(models.Product.id == product_id, models.Product.stock >= units)
                .values(stock=models.Product.stock - units, updated_at=now)
            )
            if moved.rowcount != 1:  # cannot happen: the units were counted under the lock
                raise RuntimeError(f"the stock of product {product_id} moved under its lock")
        if order_rows:
            await conn.execute(insert(models.Order), order_rows)
            await conn.execute(insert(models.OrderLine), line_rows)
        for buyer, ids in leaving_carts:  # what went into an order leaves the cart
            await carts.clear_lines(session, buyer, ids)
    _tell_stock(items, answers, shelves, taken)
    done = [a for a in answers if a is not None]
    assert len(done) == len(items)
    return done


def _take(
    item: _Checkout, modes: dict[uuid.UUID, str], shelves: dict[str, _Shelf], now: datetime
) -> OrderRecord:
    """One checkout's order from what is left on the shelves (all its lines or none), or
    its own error: the same checks, in the same order, as a checkout on its own."""
    if item.show_id is not None:
        mode = modes.get(item.show_id)
        if mode is None:
            raise NotFound(f"no show {item.show_id}", field="show_id")
        if mode == CheckoutMode.HANDOFF.value:
            raise Conflict(
                "this show checks out in the brand's own shop: "
                f"POST /api/v1/shows/{item.show_id}/handoff for its cart link",
                field="show_id",
            )
    currency = ""
    total = 0
    lines: list[LineRecord] = []
    held: list[tuple[_Shelf, int]] = []
    try:
        for n, line in enumerate(item.lines):
            shelf = shelves.get(line.sku)
            if shelf is None or shelf.status != ProductStatus.ACTIVE.value:
                raise NotFound(f"no product with SKU {line.sku!r} for sale", field=f"items.{n}.sku")
            if currency and shelf.currency != currency:
                raise InvalidValue(
                    f"is priced in {shelf.currency}; one order has one currency",
                    field=f"items.{n}.sku",
                )
            currency = shelf.currency
            if shelf.left < line.quantity:
                raise SoldOut(f"{line.sku!r} is sold out", field=f"items.{n}.sku")
            shelf.left -= line.quantity
            held.append((shelf, line.quantity))
            flash = None if item.show_id is None else shelf.pins.get(item.show_id)
            price = shelf.price_minor if flash is None else flash
            total += price * line.quantity
            lines.append(
                LineRecord(shelf.sku, dict(shelf.title), line.quantity, price, flash is not None)
            )
    except DomainError:
        for shelf, units in held:  # none of its lines, then
            shelf.left += units
        raise
    return OrderRecord(
        uuid.uuid4(),
        item.buyer.role.value,
        item.buyer.subject,
        item.show_id,
        OrderStatus.RESERVED,
        currency,
        total,
        now + item.reservation,
        lines,
        now,
        now,
    )


# The orders under a list of (buyer role, buyer subject, key) triples. Both look each key up
# with one probe of the unique index, and both are text built once: as SQL expressions, the
# SQLite form cost more per order than the rest of the round. PostgreSQL joins the three
# lists unnested: one statement for any number of keys, planned once.
_PG_KEY_QUERY = text(
    "SELECT o.id FROM unnest(CAST(:r AS text[]), CAST(:s AS text[]), CAST(:k AS text[]))"
    " AS k(r, s, key) JOIN orders o ON o.buyer_role = k.r AND o.buyer_subject = k.s"
    " AND o.idempotency_key = k.key WHERE o.idempotency_key IS NOT NULL"
).columns(models.Order.id)


@functools.cache
def _sqlite_key_query(size: int) -> TextualSelect:
    """For SQLite, (role = :r0 AND subject = :s0 AND key = :k0) OR ... for `size` triples:
    it searches the index per term, where a row-value IN scans the whole index."""
    terms = " OR ".join(
        f"(buyer_role = :r{n} AND buyer_subject = :s{n} AND idempotency_key = :k{n})"
        for n in range(size)
    )
    return text(f"SELECT id FROM orders WHERE idempotency_key IS NOT NULL AND ({terms})").columns(
        models.Order.id
    )


async def _used_keys(
    session: AsyncSession, conn: AsyncConnection, idents: set[_Ident]
) -> dict[_Ident, tuple[OrderRecord, str]]:
    """The orders already made under these keys: {ident: (order, its request hash)}."""
    order = models.Order
    wanted = sorted(idents)
    found: list[uuid.UUID] = []
    if conn.dialect.name == "postgresql":
        roles, subjects, keys = (list(column) for column in zip(*wanted, strict=True))
        params: dict[str, Any] = {"r": roles, "s": subjects, "k": keys}
        found.extend((await conn.execute(_PG_KEY_QUERY, params)).scalars())
    else:
        for at in range(0, len(wanted), _KEYS_PER_QUERY):
            chunk = wanted[at : at + _KEYS_PER_QUERY]
            size = min(_KEYS_PER_QUERY, 1 << (len(chunk) - 1).bit_length())  # few sizes
            chunk += chunk[-1:] * (size - len(chunk))
            params = {}
            for n, (role, subject, key) in enumerate(chunk):
                params[f"r{n}"], params[f"s{n}"], params[f"k{n}"] = role, subject, key
            found.extend((await conn.execute(_sqlite_key_query(size), params)).scalars())
    if not found:
        return {}
    orders = list(await session.scalars(select(order).where(order.id.in_(found))))
    lines: dict[uuid.UUID, list[models.OrderLine]] = {o.id: [] for o in orders}
    for line in await session.scalars(
        select(models.OrderLine).where(models.OrderLine.order_id.in_(found))
    ):
        lines[line.order_id].append(line)
    return {
        (o.buyer_role, o.buyer_subject, o.idempotency_key or ""): (
            _record(o, lines[o.id]),
            o.request_hash,
        )
        for o in orders
    }


async def _show_modes(conn: AsyncConnection, show_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """How each of these shows checks out (a show that does not exist is missing)."""
    show = models.Show
    rows = await conn.execute(
        select(show.id, show.checkout_mode).where(show.id.in_(sorted(show_ids)))
    )
    return {show_id: mode for show_id, mode in rows}


async def _shelves(conn: AsyncConnection, skus: set[str], now: datetime) -> dict[str, _Shelf]:
    """The live products with these SKUs, by SKU, each with the shows where it is pinned now
    and its flash price in force there, in one query. The product rows stay locked until the
    commit: PostgreSQL takes them in id order (FOR UPDATE OF products, not the pins);
    SQLite has no FOR UPDATE, and needs none: the writer holds the database."""
    product, pin = models.Product, models.ShowPin
    rows = await conn.execute(
        select(
            product.id,
            product.sku,
            product.title,
            product.price_minor,
            product.currency,
            product.status,
            product.stock,
            pin.show_id,
            pin.flash_price_minor,
            pin.flash_ends_at,
        )
        .outerjoin(pin, and_(pin.product_id == product.id, pin.unpinned_at.is_(None)))
        .where(product.sku.in_(sorted(skus)), product.deleted_at.is_(None))
        .order_by(product.id)
        .with_for_update(of=product)
    )
    shelves: dict[str, _Shelf] = {}
    for pid, sku, title, price, currency, status, stock, show_id, flash, ends in rows:
        shelf = shelves.get(sku)
        if shelf is None:
            shelf = shelves[sku] = _Shelf(pid, sku, title, price, currency, status, stock, {})
        if show_id is not None:
            in_force = flash is not None and (ends is None or ends > now)
            shelf.pins[show_id] = flash if in_force else None
    return shelves


def _tell_stock(
    items: list[_Checkout],
    answers: list[Answer | Exception | None],
    shelves: dict[str, _Shelf],
    taken: dict[uuid.UUID, int],
) -> None:
    """After the commit: the stock listeners of the checkouts that made an order hear, once
    each, the new stock of what the round sold where it is pinned ({show id: {sku:
    stock}}). What the round left is the committed stock: it was counted under the lock."""
    listeners: list[StockListener] = []
    for item, answer in zip(items, answers, strict=True):
        listener = item.on_stock
        created = isinstance(answer, tuple) and answer[1]
        if listener is not None and created and listener not in listeners:
            listeners.append(listener)
    pinned: dict[str, dict[str, int]] = {}
    for shelf in shelves.values():
        if shelf.id in taken:
            for show_id in shelf.pins:
                pinned.setdefault(str(show_id), {})[shelf.sku] = shelf.left
    if not pinned:
        return
    for listener in listeners:
        try:
            listener(pinned)
        except Exception:  # the orders are committed: they are answered regardless
            log.exception("stock listener failed")


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
        record = _record(order, lines)
        # In this transaction: the sale and its webhook commit together or not at all.
        await webhooks.enqueue(session, EventType.ORDER_CREATED, order_document(record))
        await ledger.earn_for_order(session, order)  # points for buying during the live show
        return record


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
            await ledger.reverse_order(session, order_id)
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
        record = _record(order, lines)
        # A reservation that was never placed was never announced, so its end is not either.
        event = {
            OrderStatus.PAID: EventType.ORDER_PAID,
            OrderStatus.CANCELLED: EventType.ORDER_CANCELLED,
        }.get(wanted)
        if event is not None and current is not OrderStatus.RESERVED:
            await webhooks.enqueue(session, event, order_document(record))
        return record, returned


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
