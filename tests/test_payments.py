"""Payment providers: the built-in one leaves a confirmed order placed for the operator to
mark paid; a provider that settles at once makes it paid; a method no provider takes is
refused before anything is written."""

from __future__ import annotations

import pytest

from server.domain.errors import InvalidValue
from server.keys import PAYMENTS
from server.services.orders import OrderRecord
from server.services.payments import ManualProvider, Payments, PaymentStart
from server.store.db import Database
from tests.conftest import Api, create_product, snapshot, viewer_token


class InstantProvider:
    """Stands in for a hosted-checkout provider that reports the payment done."""

    name = "instant"
    methods = frozenset({"cash_on_delivery"})

    async def start(self, order: OrderRecord) -> PaymentStart:
        return PaymentStart(self.name, "cash_on_delivery", paid=True)


def test_each_method_has_one_provider() -> None:
    payments = Payments([ManualProvider()])
    assert payments.provider_for("pay_later").name == "manual"
    with pytest.raises(InvalidValue) as refused:
        payments.provider_for("card")
    assert refused.value.field == "payment_method"
    with pytest.raises(ValueError, match="two providers"):
        Payments([ManualProvider(), InstantProvider()])


async def _reserve(api: Api, admin: str, buyer: str) -> str:
    await create_product(api, admin, "PAY-1", stock=5)
    answer = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=buyer,
        json_body={"items": [{"sku": "PAY-1", "quantity": 1}]},
    )
    assert answer.status == 201, answer.text
    return str(answer.body["id"])


async def test_confirming_asks_the_methods_provider(api: Api, db: Database, admin: str) -> None:
    buyer = viewer_token("payer")
    order_id = await _reserve(api, admin, buyer)
    app = api.client.app
    app[PAYMENTS].by_method["cash_on_delivery"] = InstantProvider()
    confirm = {"contact": {"name": "P"}, "payment_method": "cash_on_delivery"}
    done = await api.call(
        "POST", f"/api/v1/orders/{order_id}/confirm", auth=buyer, json_body=confirm
    )
    assert done.status == 200 and done.body["status"] == "paid"

    # A method the schema knows but no provider takes now: refused, nothing written.
    del app[PAYMENTS].by_method["pay_later"]
    second = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=buyer,
        json_body={"items": [{"sku": "PAY-1", "quantity": 1}]},
    )
    before = await snapshot(db)
    refused = await api.call(
        "POST",
        f"/api/v1/orders/{second.body['id']}/confirm",
        auth=buyer,
        json_body={"contact": {"name": "P"}, "payment_method": "pay_later"},
    )
    assert refused.status == 422 and refused.body["errors"][0]["field"] == "payment_method"
    assert await snapshot(db) == before


async def test_the_built_in_provider_leaves_the_order_to_the_operator(api: Api, admin: str) -> None:
    buyer = viewer_token("later")
    order_id = await _reserve(api, admin, buyer)
    done = await api.call(
        "POST",
        f"/api/v1/orders/{order_id}/confirm",
        auth=buyer,
        json_body={"contact": {"name": "L"}, "payment_method": "pay_later"},
    )
    assert done.body["status"] == "placed"
    paid = await api.call("POST", f"/api/v1/orders/{order_id}/mark-paid", auth=admin)
    assert paid.body["status"] == "paid"
