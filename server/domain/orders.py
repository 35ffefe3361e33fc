"""Order rules: what a checkout may ask for, and how an order moves between states."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.domain.errors import Conflict, InvalidValue

MAX_LINES = 20


class OrderStatus(StrEnum):
    RESERVED = "reserved"  # stock held until reserved_until
    PLACED = "placed"  # a sale: the buyer confirmed
    PAID = "paid"
    CANCELLED = "cancelled"  # stock returned
    EXPIRED = "expired"  # the reservation ran out; stock returned


_NEXT: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.RESERVED: frozenset(
        {OrderStatus.PLACED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.PLACED: frozenset({OrderStatus.PAID, OrderStatus.CANCELLED}),
    OrderStatus.PAID: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}

# States whose stock is out of the shelf (held or sold).
HOLDS_STOCK = frozenset({OrderStatus.RESERVED, OrderStatus.PLACED, OrderStatus.PAID})


def check_transition(current: OrderStatus, wanted: OrderStatus) -> None:
    if wanted not in _NEXT[current]:
        raise Conflict(f"an order that is {current.value} cannot become {wanted.value}")


@dataclass(frozen=True, slots=True)
class LineRequest:
    sku: str
    quantity: int


def check_lines(lines: list[LineRequest], max_quantity: int) -> None:
    """A checkout asks for 1-20 distinct products, each 1..max_quantity."""
    if not lines:
        raise InvalidValue("must list at least one product", field="items")
    if len(lines) > MAX_LINES:
        raise InvalidValue(f"at most {MAX_LINES} products per order", field="items")
    seen: set[str] = set()
    for n, line in enumerate(lines):
        if line.sku in seen:
            raise InvalidValue(f"{line.sku!r} is listed twice", field=f"items.{n}.sku")
        seen.add(line.sku)
        if not 1 <= line.quantity <= max_quantity:
            raise InvalidValue(f"must be between 1 and {max_quantity}", field=f"items.{n}.quantity")


class PaymentMethod(StrEnum):
    """The built-in payment provider's methods: no card data ever reaches Showroom."""

    PAY_LATER = "pay_later"  # the brand collects, then an operator marks the order paid
    CASH_ON_DELIVERY = "cash_on_delivery"
