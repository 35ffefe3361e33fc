"""Payment providers: how a placed order gets paid. No card data ever reaches Showroom: a
provider either needs nothing from the buyer at checkout (the built-in one: pay later or
cash on delivery, and the operator marks the order paid once the brand has the money) or
settles with the buyer on its own hosted page and reports back.

A provider is anything with a `name`, the `methods` it takes and `start(order)`; the app
holds one `Payments` registry (server/keys.py PAYMENTS), and confirming an order asks the
provider of the chosen method to start."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from server.domain.errors import InvalidValue
from server.domain.orders import PaymentMethod
from server.services.orders import OrderRecord


@dataclass(frozen=True, slots=True)
class PaymentStart:
    provider: str
    method: str
    paid: bool = False  # the provider settled at once: the order becomes paid
    redirect_url: str | None = None  # the provider's hosted payment page, if it has one


class PaymentProvider(Protocol):
    name: str
    methods: frozenset[str]

    async def start(self, order: OrderRecord) -> PaymentStart: ...


class ManualProvider:
    """Pay later or cash on delivery: nothing happens now; an operator marks the order paid
    (POST /api/v1/orders/{id}/mark-paid)."""

    name = "manual"
    methods = frozenset(m.value for m in PaymentMethod)

    async def start(self, order: OrderRecord) -> PaymentStart:
        assert order.payment_method in self.methods
        return PaymentStart(self.name, order.payment_method)


class Payments:
    def __init__(self, providers: Iterable[PaymentProvider]) -> None:
        self.by_method: dict[str, PaymentProvider] = {}
        for provider in providers:
            for method in provider.methods:
                if method in self.by_method:
                    raise ValueError(f"two providers take {method!r}")
                self.by_method[method] = provider

    def provider_for(self, method: str) -> PaymentProvider:
        provider = self.by_method.get(method)
        if provider is None:
            raise InvalidValue(
                f"must be one of {', '.join(sorted(self.by_method))}", field="payment_method"
            )
        return provider

    async def start(self, order: OrderRecord) -> PaymentStart:
        assert order.payment_method is not None
        return await self.provider_for(order.payment_method).start(order)
