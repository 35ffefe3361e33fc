"""Order webhooks, end to end: a real HTTP receiver on 127.0.0.1 checks every signature
with its own Standard Webhooks verifier, fails the first attempts on purpose (500s, a
timeout, a 410), and still sees each event exactly once; the outbox survives a receiver
that is down and a server that was not running; a rolled-back order leaves no message."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import DummyCookieJar, web
from sqlalchemy import func, select, update

from server.app import create_app
from server.config import Settings
from server.domain.orders import LineRequest, PaymentMethod
from server.domain.webhooks import retry_delay, signature
from server.keys import OPENAPI
from server.services import catalog, orders, webhooks
from server.services.identity import Principal, Role
from server.store import models
from server.store.db import Database, create_engine
from tests.conftest import Api, create_product, product_body, viewer_token

TIMEOUT = 0.5  # seconds a receiver has to answer, in these tests
ENDPOINTS = "/api/v1/webhook-endpoints"
DELIVERIES = "/api/v1/webhook-deliveries"
DETAILS = {"contact": {"name": "陳小姐"}, "payment_method": "pay_later"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Fast retries: 0.05 s, then 0.1 s, 0.2 s (each ±20%), four attempts in all."""
    return dataclasses.replace(
        settings,
        webhook_timeout_seconds=TIMEOUT,
        webhook_retry_seconds=0.05,
        webhook_max_attempts=4,
    )


# --- an independent Standard Webhooks verifier ------------------------------------------------


class BadSignature(Exception):
    pass


def verify(secret: str, headers: Any, body: bytes, *, tolerance: int = 300) -> dict[str, Any]:
    """What a receiver does (https://www.standardwebhooks.com): HMAC-SHA256 with the
    base64-decoded secret over "{webhook-id}.{webhook-timestamp}.{raw body}", compared in
    constant time with each `v1,` signature, and a timestamp close to now."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        raise BadSignature("timestamp too old or too new")
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            payload = json.loads(body)
            assert isinstance(payload, dict)
            return payload
    raise BadSignature("no matching signature")


# --- a real receiver --------------------------------------------------------------------------


@dataclasses.dataclass
class Hit:
    msg_id: str
    headers: Any  # as received, case-insensitive
    body: bytes
    event_type: str | None
    answer: int | str


class Receiver:
    """An HTTP server that verifies, follows a plan of failures per event type, and
    processes each webhook-id once (a repeat is acknowledged and counted as a duplicate)."""

    def __init__(self) -> None:
        self.secret = ""  # for POST /hooks
        self.secrets: dict[str, str] = {}  # for POST /hooks/{name}
        self.plan: dict[str, list[int | str]] = {}
        self.hits: list[Hit] = []
        self.processed: dict[str, dict[str, Any]] = {}
        self.duplicates: list[str] = []
        self.in_flight: dict[str, int] = {}
        self.in_flight_seen: dict[str, dict[str, int]] = {}  # by name: others' when it came
        self.hold: dict[str, asyncio.Event] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        app.router.add_post("/hooks/{name}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for held in self.hold.values():
            held.set()  # a failed test must not leave a handler waiting for ever
        if self._runner is not None:
            await self._runner.cleanup()

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [p for p in self.processed.values() if p["type"] == event_type]

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        msg_id = request.headers.get("webhook-id", "")
        name = request.match_info.get("name", "")
        try:
            payload = verify(self.secrets.get(name, self.secret), request.headers, body)
        except (BadSignature, KeyError, ValueError):
            self.hits.append(Hit(msg_id, request.headers.copy(), body, None, 401))
            return web.Response(status=401, text="bad signature")
        event_type = payload["type"]
        planned = self.plan.get(event_type)
        answer = planned.pop(0) if planned else 200
        self.hits.append(Hit(msg_id, request.headers.copy(), body, event_type, answer))
        self.in_flight_seen[name] = dict(self.in_flight)
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        try:
            if name in self.hold:
                await self.hold[name].wait()
            if answer == "timeout":
                # Processed, but too late: the sender gave up and will send it again.
                await asyncio.sleep(TIMEOUT + 0.3)
                answer = 200
            if not isinstance(answer, int) or not 200 <= answer < 300:
                return web.Response(status=int(answer), text=f"planned {answer} " + "x" * 2000)
            if msg_id in self.processed:
                self.duplicates.append(msg_id)
            else:
                self.processed[msg_id] = payload
            return web.Response(status=answer, text="ok")
        finally:
            self.in_flight[name] -= 1


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


async def eventually(
    check: Callable[[], Awaitable[Any]] | Callable[[], Any], within: float = 10.0
) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def add_endpoint(api: Api, admin: str, url: str, **fields: Any) -> tuple[str, str]:
    made = await api.call("POST", ENDPOINTS, auth=admin, json_body={"url": url, **fields})
    assert made.status == 201, made.text
    return made.body["endpoint"]["id"], made.body["secret"]


async def place_order(api: Api, buyer: str, sku: str) -> dict[str, Any]:
    made = await api.call(
        "POST", "/api/v1/checkouts", auth=buyer, json_body={"items": [{"sku": sku, "quantity": 1}]}
    )
    assert made.status == 201, made.text
    placed = await api.call(
        "POST", f"/api/v1/orders/{made.body['id']}/confirm", auth=buyer, json_body=DETAILS
    )
    assert placed.status == 200, placed.text
    return dict(placed.body)


async def start_api(aiohttp_client: Any, settings: Settings) -> Api:
    """A server of its own, with settings other than the module's."""
    app = create_app(settings)
    client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
    return Api(client, app[OPENAPI])


async def deliveries(api: Api, admin: str, query: str = "") -> list[dict[str, Any]]:
    answer = await api.call("GET", DELIVERIES + query, auth=admin)
    assert answer.status == 200, answer.text
    return list(answer.body["items"])


async def detail(api: Api, admin: str, delivery_id: str) -> dict[str, Any]:
    answer = await api.call("GET", f"{DELIVERIES}/{delivery_id}", auth=admin)
    assert answer.status == 200, answer.text
    return dict(answer.body)


async def settled(api: Api, admin: str, query: str = "") -> list[dict[str, Any]]:
    """The deliveries, once none is pending."""

    async def check() -> list[dict[str, Any]] | None:
        found = await deliveries(api, admin, query)
        return found if found and all(d["status"] != "pending" for d in found) else None

    return list(await eventually(check))


# --- signing ----------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signature(secret, msg_id, timestamp, body) == expected
    assert signature(secret, msg_id, timestamp + 1, body) != expected
    assert signature(secret, msg_id, timestamp, body.replace("2", "3")) != expected
    # The test's own verifier agrees, and refuses a tampered body.
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1,bm90IHRoaXMgb25l " + expected,  # several signatures allowed
    }
    assert verify(secret, headers, body.encode(), tolerance=10**10) == {"test": 2432232314}
    with pytest.raises(BadSignature):
        verify(secret, headers, b'{"test": 2432232315}', tolerance=10**10)
    with pytest.raises(BadSignature):
        verify(secret, headers, body.encode())  # a five-year-old timestamp is refused


def test_retry_delays_double_with_jitter_and_a_cap() -> None:
    assert [retry_delay(n, 5, 1.0) for n in range(1, 8)] == [5, 10, 20, 40, 80, 160, 320]
    assert retry_delay(3, 5, 0.8) == 16 and retry_delay(3, 5, 1.2) == 24
    assert retry_delay(40, 5, 1.0) == 3600
    with pytest.raises(ValueError):
        retry_delay(0, 5, 1.0)


# --- delivery -----------------------------------------------------------------------------


async def test_each_order_event_arrives_once_signed_after_failed_attempts(
    api: Api, admin: str, receiver: Receiver
) -> None:
    endpoint_id, receiver.secret = await add_endpoint(api, admin, receiver.url)
    await create_product(api, admin, "HOOK-1", stock=10)
    receiver.plan = {
        "order.created": [500, "timeout"],  # then 200
        "order.paid": [500],
        "order.cancelled": [503, 500],
    }
    buyer = viewer_token("hooked")

    first = await place_order(api, buyer, "HOOK-1")
    await eventually(lambda: len(receiver.of_type("order.created")) == 1)
    paid = await api.call("POST", f"/api/v1/orders/{first['id']}/mark-paid", auth=admin)
    assert paid.status == 200
    second = await place_order(api, buyer, "HOOK-1")
    cancelled = await api.call("POST", f"/api/v1/orders/{second['id']}/cancel", auth=admin)
    assert cancelled.status == 200
    # A reservation never placed was never announced: its cancellation is not either.
    reserved = await api.call(
        "POST",
        "/api/v1/checkouts",
        auth=buyer,
        json_body={"items": [{"sku": "HOOK-1", "quantity": 1}]},
    )
    assert (
        await api.call("POST", f"/api/v1/orders/{reserved.body['id']}/cancel", auth=admin)
    ).status == 200

    log = await settled(api, admin)
    await eventually(lambda: receiver.duplicates)  # the timed-out attempt finishes late
    assert len(log) == 4 and all(d["status"] == "succeeded" for d in log)
    assert {d["endpoint_id"] for d in log} == {endpoint_id}

    # Exactly once each, by webhook-id, carrying the order as the API shows it.
    created = {p["data"]["id"]: p for p in receiver.of_type("order.created")}
    assert created.keys() == {first["id"], second["id"]}
    assert created[first["id"]]["data"] == first
    [paid_event] = receiver.of_type("order.paid")
    assert paid_event["data"] == paid.body and paid_event["data"]["status"] == "paid"
    [cancel_event] = receiver.of_type("order.cancelled")
    assert cancel_event["data"] == cancelled.body and cancel_event["data"]["id"] == second["id"]
    assert len(receiver.processed) == 4
    for payload in receiver.processed.values():
        assert payload["timestamp"].endswith("Z") and set(payload) == {"type", "timestamp", "data"}

    # Every attempt of one message carried the same webhook-id and the same bytes.
    by_id: dict[str, list[Hit]] = {}
    for hit in receiver.hits:
        by_id.setdefault(hit.msg_id, []).append(hit)
    first_created = next(i for i, p in receiver.processed.items() if p["data"] == first)
    assert [h.answer for h in by_id[first_created]] == [500, "timeout", 200]
    assert receiver.duplicates == [first_created]  # the receiver dropped the repeat
    assert len({h.body for h in by_id[first_created]}) == 1
    assert all(h.msg_id.startswith("msg_") for h in receiver.hits)
    assert all(h.answer != 401 for h in receiver.hits)  # every signature verified
    hit = by_id[first_created][0]
    assert hit.headers["Content-Type"] == "application/json"
    with pytest.raises(BadSignature):  # and a tampered body would not have
        verify(receiver.secret, hit.headers, hit.body.replace(b"placed", b"paid"))

    # The delivery log shows the failed attempts, then the success.
    [delivered] = [d for d in log if d["message_id"] == first_created]
    assert delivered["attempts"] == 3 and delivered["last_status_code"] == 200
    assert delivered["last_error"] is None and delivered["next_attempt_at"] is None
    shown = await detail(api, admin, delivered["id"])
    attempts = shown["attempt_log"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, None, 200]
    assert attempts[0]["error"] == "HTTP 500" and attempts[0]["response_body"].startswith(
        "planned 500"
    )
    assert len(attempts[0]["response_body"]) <= 1000
    assert "no answer within 0.5 s" in attempts[1]["error"]
    assert attempts[1]["duration_ms"] >= TIMEOUT * 1000 * 0.9
    assert attempts[2]["error"] is None and attempts[2]["response_body"] == "ok"
    assert shown["payload"]["data"] == first and shown["payload"]["type"] == "order.created"
    [cancel_delivery] = [d for d in log if d["event_type"] == "order.cancelled"]
    cancel_log = (await detail(api, admin, cancel_delivery["id"]))["attempt_log"]
    assert [a["status_code"] for a in cancel_log] == [503, 500, 200]


async def test_an_order_placed_while_the_receiver_is_down_is_delivered_later(
    db: Database, settings: Settings, aiohttp_client: Any, admin: str
) -> None:
    # The receiver's port, not listening yet.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = Receiver()
    endpoint, receiver.secret = await webhooks.do_create_endpoint(
        db, url=f"http://127.0.0.1:{port}/hooks", event_types=["order.created"]
    )
    # No server is running: the sale and its message are only in the database.
    await catalog.do_create_product(db, product_body("LATE-1", stock=3))
    buyer = Principal(Role.VIEWER, "late")
    order, _ = await orders.do_checkout(
        db,
        buyer,
        [LineRequest("LATE-1", 1)],
        show_id=None,
        idempotency_key=None,
        reservation=timedelta(minutes=5),
        max_quantity=5,
    )
    await orders.do_confirm(
        db,
        order.id,
        buyer,
        contact={"name": "A"},
        delivery=None,
        payment_method=PaymentMethod.PAY_LATER,
    )
    [pending], _ = await webhooks.list_deliveries(db)
    assert pending.status.value == "pending" and pending.attempts == 0

    # The server starts; the receiver is still down: attempts fail, and are retried.
    api = await start_api(aiohttp_client, dataclasses.replace(settings, webhook_max_attempts=20))

    async def failed_twice() -> bool:
        found = await detail(api, admin, str(pending.id))
        return len(found["attempt_log"]) >= 2

    await eventually(failed_twice)
    await receiver.start(port)
    try:
        [done] = await settled(api, admin)
        assert done["status"] == "succeeded" and done["endpoint_id"] == str(endpoint.id)
        log = (await detail(api, admin, done["id"]))["attempt_log"]
        assert all(a["status_code"] is None and "Connect" in a["error"] for a in log[:-1])
        assert log[-1]["status_code"] == 200
        [event] = receiver.processed.values()
        assert event["type"] == "order.created" and event["data"]["id"] == str(order.id)
    finally:
        await receiver.stop()


async def test_410_gone_disables_the_endpoint(api: Api, admin: str, receiver: Receiver) -> None:
    gone_id, receiver.secret = await add_endpoint(api, admin, receiver.url)
    await create_product(api, admin, "GONE-1", stock=5)
    receiver.plan = {"order.created": [410]}
    order = await place_order(api, viewer_token("gone"), "GONE-1")
    [failed] = await settled(api, admin)
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert failed["last_status_code"] == 410 and "410" in failed["last_error"]
    endpoint = (await api.call("GET", f"{ENDPOINTS}/{gone_id}", auth=admin)).body
    assert endpoint["enabled"] is False and "410 Gone" in endpoint["disabled_reason"]
    # Nothing more is queued for it.
    assert (
        await api.call("POST", f"/api/v1/orders/{order['id']}/mark-paid", auth=admin)
    ).status == 200
    assert len(await deliveries(api, admin)) == 1
    retry = await api.call("POST", f"{DELIVERIES}/{failed['id']}/retry", auth=admin)
    assert retry.status == 409 and "disabled" in retry.body["detail"]
    # The brand fixes its side and turns it back on.
    enabled = await api.call(
        "PATCH", f"{ENDPOINTS}/{gone_id}", auth=admin, json_body={"enabled": True}
    )
    assert enabled.body["enabled"] is True and enabled.body["disabled_reason"] is None
    assert receiver.processed == {}


async def test_out_of_attempts_fails_and_an_admin_retry_sends_again(
    api: Api, admin: str, receiver: Receiver
) -> None:
    _, receiver.secret = await add_endpoint(api, admin, receiver.url)
    await create_product(api, admin, "FAIL-1", stock=5)
    receiver.plan = {"order.created": [500, 500, 502, 500]}
    await place_order(api, viewer_token("fail"), "FAIL-1")
    [failed] = await settled(api, admin)
    assert failed["status"] == "failed" and failed["attempts"] == 4
    assert failed["last_status_code"] == 500 and failed["next_attempt_at"] is None
    assert [h.answer for h in receiver.hits] == [500, 500, 502, 500]
    assert receiver.processed == {}
    assert await deliveries(api, admin, "?status=failed") == [failed]

    retried = await api.call("POST", f"{DELIVERIES}/{failed['id']}/retry", auth=admin)
    assert retried.status == 200 and retried.body["status"] == "pending"
    [done] = await settled(api, admin)
    assert done["status"] == "succeeded" and done["attempts"] == 5
    assert len(receiver.hits) == 5 and len({h.msg_id for h in receiver.hits}) == 1
    assert len(receiver.processed) == 1
    shown = await detail(api, admin, done["id"])
    assert [a["status_code"] for a in shown["attempt_log"]] == [500, 500, 502, 500, 200]
    again = await api.call("POST", f"{DELIVERIES}/{done['id']}/retry", auth=admin)
    assert again.status == 409 and "succeeded" in again.body["detail"]


async def test_a_slow_receiver_does_not_hold_up_another(
    settings: Settings, aiohttp_client: Any, admin: str, receiver: Receiver
) -> None:
    api = await start_api(aiohttp_client, dataclasses.replace(settings, webhook_timeout_seconds=5))
    receiver.hold["slow"] = asyncio.Event()
    _, receiver.secrets["slow"] = await add_endpoint(api, admin, receiver.url + "/slow")
    fast_id, receiver.secrets["fast"] = await add_endpoint(api, admin, receiver.url + "/fast")
    await create_product(api, admin, "SLOW-1", stock=5)
    await place_order(api, viewer_token("slow"), "SLOW-1")

    async def fast_done() -> bool:
        found = await deliveries(api, admin, f"?endpoint_id={fast_id}")
        return found[0]["status"] == "succeeded"

    # Well within the slow receiver's 5 s: it was not waited for.
    await eventually(fast_done, within=2.5)
    assert receiver.in_flight_seen["fast"].get("slow") == 1  # held while the fast one came
    assert receiver.in_flight["slow"] == 1
    receiver.hold["slow"].set()
    log = await settled(api, admin)
    assert [d["attempts"] for d in log] == [1, 1] and len(receiver.hits) == 2
    # One message, so one webhook-id, whichever endpoint it goes to.
    assert len({h.msg_id for h in receiver.hits}) == 1


async def test_two_dispatchers_never_take_the_same_delivery(
    db: Database, database_url: str
) -> None:
    for n in range(12):
        await webhooks.do_create_endpoint(db, url=f"http://127.0.0.1:9/{n}", event_types=None)
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.paid", {"id": "x"})
    other = Database(create_engine(database_url))
    try:
        lease = timedelta(seconds=30)
        # Both see all twelve due, then both try to take them at once.
        seen = await asyncio.gather(webhooks.due_ids(db, 12), webhooks.due_ids(other, 12))
        assert len(seen[0]) == 12 and set(seen[0]) == set(seen[1])
        first, second = await asyncio.gather(
            webhooks.claim(db, seen[0], lease), webhooks.claim(other, seen[1], lease)
        )
        again = await webhooks.claim_due(other, limit=12, lease=lease)
    finally:
        await other.dispose()
    taken = [job.delivery_id for job in first + second]
    assert len(taken) == 12 and len(set(taken)) == 12
    assert again == []  # leased: not due until the lease ends
    assert {job.attempt for job in first + second} == {1}
    assert len({job.message_id for job in first + second}) == 1


async def test_a_stopping_server_gives_back_the_attempts_under_way(
    db: Database, receiver: Receiver
) -> None:
    _, receiver.secret = await webhooks.do_create_endpoint(db, url=receiver.url, event_types=None)
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.paid", {"id": "x"})
    receiver.hold[""] = asyncio.Event()  # the receiver takes its time
    dispatcher = webhooks.Dispatcher(db, timeout_seconds=5, max_attempts=3, retry_base_seconds=1)
    running = asyncio.create_task(dispatcher.run())
    await eventually(lambda: receiver.in_flight.get("") == 1)
    dispatcher.stop()
    await asyncio.wait_for(running, 3)  # without waiting for the receiver's answer
    [given_back], _ = await webhooks.list_deliveries(db)
    assert given_back.status.value == "pending" and given_back.attempts == 1
    assert given_back.next_attempt_at is not None and given_back.next_attempt_at <= models.utcnow()
    log = (await webhooks.access_delivery(db, given_back.id)).attempts
    assert [(a.status_code, a.error) for a in log] == [(None, "interrupted: the server stopped")]


# --- the outbox is part of the order's transaction ---------------------------------------------


async def test_a_rolled_back_transaction_leaves_no_message(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await webhooks.do_create_endpoint(db, url="http://127.0.0.1:9/hooks", event_types=None)

    async def messages() -> int:
        async with db.read() as session:
            return int(
                await session.scalar(select(func.count()).select_from(models.WebhookMessage)) or 0
            )

    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await webhooks.enqueue(session, "order.created", {"id": "1"})
            raise RuntimeError("the order's transaction fails after the event was queued")
    assert await messages() == 0

    # And the other way round: an order whose event cannot be queued is not placed.
    await catalog.do_create_product(db, product_body("ATOM-1", stock=3))
    buyer = Principal(Role.GUEST, "atomic")
    order, _ = await orders.do_checkout(
        db,
        buyer,
        [LineRequest("ATOM-1", 1)],
        show_id=None,
        idempotency_key=None,
        reservation=timedelta(minutes=5),
        max_quantity=5,
    )

    async def broken(*_: Any) -> None:
        raise RuntimeError("outbox unavailable")

    with monkeypatch.context() as patch:
        patch.setattr(webhooks, "enqueue", broken)
        with pytest.raises(RuntimeError):
            await orders.do_confirm(
                db,
                order.id,
                buyer,
                contact={"name": "A"},
                delivery=None,
                payment_method=PaymentMethod.PAY_LATER,
            )
    assert (await orders.access_order(db, order.id)).status.value == "reserved"
    assert await messages() == 0
    placed = await orders.do_confirm(
        db,
        order.id,
        buyer,
        contact={"name": "A"},
        delivery=None,
        payment_method=PaymentMethod.PAY_LATER,
    )
    assert placed.status.value == "placed" and await messages() == 1


async def test_no_endpoint_no_message(db: Database) -> None:
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.paid", {"id": "1"})
    disabled, _ = await webhooks.do_create_endpoint(
        db, url="https://h.example/a", event_types=["order.created"]
    )
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.paid", {"id": "2"})  # not subscribed
    assert await webhooks.list_deliveries(db) == ([], 0)
    await webhooks.do_update_endpoint(db, disabled.id, {"enabled": False})
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.created", {"id": "3"})  # disabled
    assert await webhooks.list_deliveries(db) == ([], 0)
    with pytest.raises(ValueError):
        async with db.transaction() as session:
            await webhooks.enqueue(session, "order.shipped", {})


async def test_many_messages_in_one_go_keep_their_order_per_endpoint(db: Database) -> None:
    """`enqueue_many` (a flush's points in chunks) writes what `enqueue` would, once per
    item, for each subscribed endpoint, in the order given."""
    both, _ = await webhooks.do_create_endpoint(db, url="https://h.example/both", event_types=None)
    other, _ = await webhooks.do_create_endpoint(
        db, url="https://h.example/other", event_types=["order.paid"]
    )
    async with db.transaction() as session:
        await webhooks.enqueue_many(session, "engagement.points_earned", [])
        await webhooks.enqueue_many(
            session, "engagement.points_earned", [{"n": n} for n in range(5)]
        )
    listed, total = await webhooks.list_deliveries(db, limit=50)
    assert total == 5 and {d.endpoint_id for d in listed} == {both.id}
    order = {d.message_id: n for n, d in enumerate(reversed(listed))}  # oldest first
    async with db.read() as session:
        by_n = dict(
            (json.loads(body)["data"]["n"], message_id)
            for message_id, body in await session.execute(
                select(models.WebhookMessage.id, models.WebhookMessage.body)
            )
        )
    assert sorted(by_n) == list(range(5))
    assert [order[by_n[n]] for n in range(5)] == list(range(5))
    assert other.id not in {d.endpoint_id for d in listed}
    with pytest.raises(ValueError):
        async with db.transaction() as session:
            await webhooks.enqueue_many(session, "order.shipped", [{}])


# --- the admin API --------------------------------------------------------------------------


async def test_endpoints_are_managed_by_admins_and_secrets_shown_once(api: Api, admin: str) -> None:
    made = await api.call(
        "POST",
        ENDPOINTS,
        auth=admin,
        json_body={
            "url": "https://oms.example.com/showroom",
            "event_types": ["order.paid", "order.created"],
            "description": "OMS",
        },
    )
    assert (
        made.status == 201
        and made.headers["Location"] == f"{ENDPOINTS}/{made.body['endpoint']['id']}"
    )
    secret = made.body["secret"]
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    endpoint = made.body["endpoint"]
    assert endpoint["event_types"] == ["order.paid", "order.created"] and endpoint["enabled"]
    everything = await api.call(
        "POST", ENDPOINTS, auth=admin, json_body={"url": "http://10.0.0.5:8000/hooks"}
    )
    assert everything.body["endpoint"]["event_types"] is None
    assert everything.body["secret"] != secret

    listed = await api.call("GET", ENDPOINTS, auth=admin)
    assert [e["id"] for e in listed.body["items"]] == [
        endpoint["id"],
        everything.body["endpoint"]["id"],
    ]
    assert secret not in listed.text and "whsec_" not in listed.text
    path = f"{ENDPOINTS}/{endpoint['id']}"
    assert "whsec_" not in (await api.call("GET", path, auth=admin)).text

    changed = await api.call(
        "PATCH", path, auth=admin, json_body={"enabled": False, "event_types": None}
    )
    assert changed.status == 200 and changed.body["enabled"] is False
    assert changed.body["disabled_reason"] == "disabled by an admin"
    assert changed.body["event_types"] is None and changed.body["description"] == "OMS"

    viewer = await api.call("GET", ENDPOINTS, auth=viewer_token())
    assert viewer.status == 403
    assert (await api.call("DELETE", path, auth=admin)).status == 204
    assert (await api.call("GET", path, auth=admin)).status == 404
    assert (await api.call("DELETE", path, auth=admin)).status == 404


async def test_the_delivery_log_filters_and_pages(db: Database, api: Api, admin: str) -> None:
    one, _ = await add_endpoint(api, admin, "http://127.0.0.1:9/one")
    two, _ = await add_endpoint(api, admin, "http://127.0.0.1:9/two", event_types=["order.paid"])
    async with db.transaction() as session:
        await webhooks.enqueue(session, "order.created", {"id": "a"})
        await webhooks.enqueue(session, "order.paid", {"id": "a"})
        # Due in an hour, in the same commit: the dispatcher leaves them alone.
        await session.execute(
            update(models.WebhookDelivery).values(
                next_attempt_at=models.utcnow() + timedelta(hours=1)
            )
        )
    everything = await api.call("GET", f"{DELIVERIES}?limit=2", auth=admin)
    assert everything.body["total"] == 3 and len(everything.body["items"]) == 2
    page_two = await api.call("GET", f"{DELIVERIES}?limit=2&offset=2", auth=admin)
    assert len(page_two.body["items"]) == 1
    to_two = await deliveries(api, admin, f"?endpoint_id={two}")
    assert [d["event_type"] for d in to_two] == ["order.paid"]
    paid = await deliveries(api, admin, "?event_type=order.paid")
    assert {d["endpoint_id"] for d in paid} == {one, two}
    assert await deliveries(api, admin, "?status=succeeded,failed") == []
    assert len(await deliveries(api, admin, "?status=pending&event_type=order.created")) == 1
    pending = await api.call("POST", f"{DELIVERIES}/{to_two[0]['id']}/retry", auth=admin)
    assert pending.status == 409 and "pending" in pending.body["detail"]
    shown = await detail(api, admin, to_two[0]["id"])
    assert shown["attempt_log"] == [] and shown["payload"]["data"] == {"id": "a"}
    # Deleting an endpoint takes its deliveries with it.
    assert (await api.call("DELETE", f"{ENDPOINTS}/{two}", auth=admin)).status == 204
    assert {d["endpoint_id"] for d in await deliveries(api, admin)} == {one}
    missing = await api.call("GET", f"{DELIVERIES}/{to_two[0]['id']}", auth=admin)
    assert missing.status == 404
