"""Walk every endpoint with bad input: each answer is problem+json with the right status,
names the offending field where there is one, and the database is unchanged."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.http.contract import PATH_PARAMS, Operation
from server.http.routes import OPERATIONS
from server.keys import OPENAPI
from server.services import catalog, identity, shows, webhooks
from server.services.identity import Role
from server.store.db import Database, create_engine
from tests.conftest import (
    FORM,
    Api,
    empty,
    form,
    product_body,
    server_settings,
    snapshot,
    viewer_token,
)

MAX_BODY = 64 * 1024  # tests/conftest.py settings
MISSING_ID = "00000000-0000-4000-8000-000000000000"
MAX_UPLOAD = 1024 * 1024  # tests/conftest.py settings: max_upload_mb=1
MP4_HEAD = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    auth: str | None = "admin"  # "admin", a literal token, or None
    path: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    query: str = ""
    body: Any = None
    raw: bytes | None = None
    content_type: str | None = None
    field: str | None = None  # a field the problem's `errors` must name
    detail: str | None = None  # words the problem's `detail` must contain


# A valid body per operation, and one field to send with the wrong type.
VALID_BODIES: dict[str, tuple[dict[str, Any], str, Any]] = {
    "createShow": ({"title": "T", "scheduled_start": "2026-12-01T00:00:00Z"}, "title", 5),
    "updateShow": ({"title": "T"}, "title", ["x"]),
    "createProduct": (product_body("NEW-1"), "stock", "12"),
    "updateProduct": ({"image_url": None}, "status", 1),
    "adjustStock": ({"delta": 1}, "delta", 1.5),
    "pinProduct": ({"sku": "WORLD-1"}, "sku", 5),
    "createCheckout": ({"items": [{"sku": "WORLD-1", "quantity": 1}]}, "items", "x"),
    "confirmOrder": (
        {"contact": {"name": "A"}, "payment_method": "pay_later"},
        "payment_method",
        5,
    ),
    "createApiKey": ({"role": "host"}, "name", False),
    "addCartItem": ({"sku": "WORLD-1"}, "quantity", "1"),
    "setCartItem": ({"quantity": 2}, "quantity", True),
    "checkoutCart": ({}, "show_id", 5),
    "createHandoff": ({"items": [{"sku": "WORLD-1", "quantity": 1}]}, "items", {}),
    "setLoyaltyRules": ({"chat_points": 2}, "chat_points", "2"),
    "setShowLoyaltyRules": ({"watch_points_per_minute": 2}, "badges", "yes"),
    "redeemPoints": ({"points": 5, "channel": "pos"}, "points", "5"),
    "adjustPoints": ({"points": 5, "note": "goodwill"}, "note", 5),
    "createWebhookEndpoint": ({"url": "https://hooks.example.com/a"}, "event_types", "order.paid"),
    "updateWebhookEndpoint": ({"description": "OMS"}, "enabled", "yes"),
    "replaceVideoTags": ({"tags": [{"sku": "WORLD-1", "at_s": 1}]}, "tags", "x"),
    "createShowClip": ({"start_s": 0, "end_s": 5}, "start_s", "0"),
}

# Business rules a well-typed body can still break.
RULE_CASES: dict[str, list[Case]] = {
    "createProduct": [
        Case(
            "negative-price",
            422,
            body=product_body("N-1", price={"amount_minor": -1, "currency": "HKD"}),
            field="price.amount_minor",
        ),
        Case("negative-stock", 422, body=product_body("N-1", stock=-1), field="stock"),
        Case(
            "float-price",
            422,
            body=product_body("N-1", price={"amount_minor": 1.5, "currency": "HKD"}),
            field="price.amount_minor",
        ),
        Case(
            "unknown-currency",
            422,
            body=product_body("N-1", price={"amount_minor": 1, "currency": "XXX"}),
            field="price.currency",
        ),
        Case(
            "compare-at-below",
            422,
            body=product_body("N-1", compare_at_price={"amount_minor": 100, "currency": "HKD"}),
            field="compare_at_price",
        ),
        Case(
            "mixed-currency",
            422,
            body=product_body("N-1", compare_at_price={"amount_minor": 99999, "currency": "USD"}),
            field="compare_at_price",
        ),
        Case("duplicate-sku", 409, body=product_body("WORLD-1"), field="sku"),
        Case("bad-sku", 422, body=product_body("has space"), field="sku"),
        Case("no-title", 422, body=product_body("N-1", title={"en": "   "}), field="title"),
        Case(
            "unknown-locale", 422, body=product_body("N-1", title={"fr": "Thé"}), field="title.fr"
        ),
        Case(
            "title-too-long",
            422,
            body=product_body("N-1", title={"en": "x" * 201}),
            field="title.en",
        ),
        Case(
            "bad-image-url",
            422,
            body=product_body("N-1", image_url="javascript:alert(1)"),
            field="image_url",
        ),
        Case("missing-price", 422, body={"sku": "N-1", "title": {"en": "x"}}, field="price"),
    ],
    "updateProduct": [
        Case(
            "negative-price",
            422,
            body={"price": {"amount_minor": -5, "currency": "HKD"}},
            field="price.amount_minor",
        ),
        Case(
            "compare-at-below",
            422,
            body={"compare_at_price": {"amount_minor": 1, "currency": "HKD"}},
            field="compare_at_price",
        ),
        Case("sku-is-the-key", 422, body={"sku": "OTHER"}, field="sku"),
        Case("stock-has-its-own-endpoint", 422, body={"stock": 3}, field="stock"),
        Case("empty", 422, body={}),
    ],
    "adjustStock": [
        Case("below-zero", 409, body={"delta": -11}, field="delta", detail="stock is 10"),
        Case("negative-set", 422, body={"set": -1}, field="set"),
        Case("both", 422, body={"delta": 1, "set": 2}),
        Case("neither", 422, body={}),
    ],
    "createShow": [
        Case(
            "no-offset",
            422,
            body={"title": "T", "scheduled_start": "2026-12-01T00:00:00"},
            field="scheduled_start",
        ),
        Case(
            "not-a-date",
            422,
            body={"title": "T", "scheduled_start": "next tuesday"},
            field="scheduled_start",
        ),
        Case(
            "blank-title",
            422,
            body={"title": "   ", "scheduled_start": "2026-12-01T00:00:00Z"},
            field="title",
        ),
        Case(
            "bad-locale",
            422,
            body={"title": "T", "scheduled_start": "2026-12-01T00:00:00Z", "locale": "fr"},
            field="locale",
        ),
        Case(
            "bad-currency",
            422,
            body={"title": "T", "scheduled_start": "2026-12-01T00:00:00Z", "currency": "hkd"},
            field="currency",
        ),
        Case(
            "title-too-long",
            422,
            body={"title": "長" * 201, "scheduled_start": "2026-12-01T00:00:00Z"},
            field="title",
        ),
    ],
    "updateShow": [
        Case("empty", 422, body={}),
        Case("handoff-without-url", 422, body={"checkout_mode": "handoff"}, field="handoff_url"),
        Case(
            "handoff-url-without-items",
            422,
            body={"handoff_url": "https://shop.example/cart"},
            field="handoff_url",
        ),
        Case(
            "handoff-url-unknown-placeholder",
            422,
            body={"handoff_url": "https://shop.example/cart/{items}?u={user}"},
            field="handoff_url",
        ),
        Case(
            "handoff-url-not-http",
            422,
            body={"handoff_url": "javascript:{items}"},
            field="handoff_url",
        ),
        Case("claim-keyword-space", 422, body={"claim_keyword": "+1 now"}, field="claim_keyword"),
    ],
    "addCartItem": [
        Case("zero", 422, body={"sku": "WORLD-1", "quantity": 0}, field="quantity"),
        Case("over-limit", 422, body={"sku": "WORLD-1", "quantity": 11}, field="quantity"),
        Case("unknown-sku", 404, body={"sku": "NOPE-1"}, field="sku"),
        Case("unknown-show", 404, body={"sku": "WORLD-1", "show_id": MISSING_ID}, field="show_id"),
        Case("client-price", 422, body={"sku": "WORLD-1", "price": 1}, field="price"),
    ],
    "removeCartItem": [Case("not-in-cart", 404, detail="not in the cart")],
    "checkoutCart": [Case("empty-cart", 409, body={}, detail="the cart is empty")],
    "createHandoff": [Case("native-show", 409, body={}, detail="takes orders in Showroom")],
    "setLoyaltyRules": [
        Case("empty", 422, body={}),
        Case("unknown-rule", 422, body={"free_money": 1}, field="free_money"),
        Case("negative", 422, body={"chat_points": -1}, field="chat_points"),
        Case(
            "tiers-not-rising",
            422,
            body={"tiers": [{"name": "A", "min_points": 0}, {"name": "B", "min_points": 0}]},
            field="tiers",
        ),
        Case(
            "first-tier-above-zero",
            422,
            body={"tiers": [{"name": "A", "min_points": 5}]},
            field="tiers.0.min_points",
        ),
    ],
    "redeemPoints": [
        Case("no-key", 400, body={"points": 5, "channel": "pos"}, field="Idempotency-Key"),
        Case(
            "over-balance",
            409,
            body={"points": 5, "channel": "pos"},
            headers={"Idempotency-Key": "r-1"},
            detail="the balance is 0 points",
        ),
        Case(
            "zero",
            422,
            body={"points": 0, "channel": "pos"},
            headers={"Idempotency-Key": "r-2"},
            field="points",
        ),
        Case(
            "negative",
            422,
            body={"points": -3, "channel": "pos"},
            headers={"Idempotency-Key": "r-3"},
            field="points",
        ),
        Case(
            "unknown-member",
            404,
            path={"member_id": "nobody-here"},
            body={"points": 1, "channel": "pos"},
            headers={"Idempotency-Key": "r-4"},
        ),
    ],
    "adjustPoints": [
        Case(
            "zero",
            422,
            body={"points": 0, "note": "x"},
            headers={"Idempotency-Key": "a-1"},
            field="points",
        ),
        Case(
            "below-zero",
            409,
            body={"points": -1, "note": "x"},
            headers={"Idempotency-Key": "a-2"},
        ),
    ],
    "getMemberPoints": [Case("unknown-member", 404, path={"member_id": "nobody-here"})],
    "createApiKey": [
        Case("viewer-role", 422, body={"role": "viewer"}, field="role"),
        Case("unknown-show", 422, body={"role": "host", "show_id": MISSING_ID}, field="show_id"),
        Case("bad-show-id", 422, body={"role": "host", "show_id": "nope"}, field="show_id"),
    ],
    "endShow": [Case("not-live", 409, detail="cannot end a show that is scheduled")],
    "listShows": [
        Case("bad-state", 400, query="?state=paused", field="state"),
        Case("limit-too-big", 400, query="?limit=1000", field="limit"),
        Case("limit-not-int", 400, query="?limit=ten", field="limit"),
        Case("negative-offset", 400, query="?offset=-1", field="offset"),
        Case("repeated-limit", 400, query="?limit=1&limit=2", field="limit"),
    ],
    "listProducts": [
        Case("empty-q", 400, query="?q=", field="q"),
        Case("bad-status", 400, query="?status=gone", field="status"),
    ],
    "importProducts": [
        Case("bad-flag", 400, query="?valid_only=yes", field="valid_only"),
        Case(
            "bad-rows",
            422,
            raw=b"sku,title_en,price\nA,,x\n",
            content_type="text/csv",
            field="price",
        ),
    ],
    "createWebhookEndpoint": [
        Case("not-http", 422, body={"url": "ftp://hooks.example.com/a"}, field="url"),
        Case("relative-url", 422, body={"url": "/hooks"}, field="url"),
        Case("no-url", 422, body={"description": "OMS"}, field="url"),
        Case("url-too-long", 422, body={"url": "https://h.example/" + "a" * 2048}, field="url"),
        Case(
            "unknown-event",
            422,
            body={"url": "https://h.example/a", "event_types": ["order.shipped"]},
            field="event_types.0",
        ),
        Case(
            "repeated-event",
            422,
            body={"url": "https://h.example/a", "event_types": ["order.paid", "order.paid"]},
            field="event_types.1",
        ),
        Case(
            "no-events",
            422,
            body={"url": "https://h.example/a", "event_types": []},
            field="event_types",
        ),
    ],
    "updateWebhookEndpoint": [
        Case("empty", 422, body={}),
        Case("not-http", 422, body={"url": "javascript:alert(1)"}, field="url"),
        Case("unknown-event", 422, body={"event_types": ["order.*"]}, field="event_types.0"),
    ],
    "listWebhookDeliveries": [
        Case("bad-status", 400, query="?status=lost", field="status"),
        Case("bad-event-type", 400, query="?event_type=order.shipped", field="event_type"),
        Case("bad-endpoint-id", 400, query="?endpoint_id=nope", field="endpoint_id"),
    ],
    "retryWebhookDelivery": [Case("no-such-delivery", 404, detail="no webhook delivery")],
    "createShowClip": [
        Case("show-not-ended", 409, body={"start_s": 0, "end_s": 5}, detail="ended"),
        Case("negative-start", 422, body={"start_s": -1, "end_s": 5}, field="start_s"),
        Case(
            "bad-tag-sku",
            422,
            body={"start_s": 0, "end_s": 5, "tags": [{"sku": "a b"}]},
            field="tags.0.sku",
        ),
    ],
    "replaceVideoTags": [
        Case(
            "negative-at", 422, body={"tags": [{"sku": "WORLD-1", "at_s": -1}]}, field="tags.0.at_s"
        ),
        Case("no-at", 422, body={"tags": [{"sku": "WORLD-1"}]}, field="tags.0.at_s"),
    ],
    "uploadVideo": [
        Case("no-file", 422, raw=form(("title", b"T", None)), content_type=FORM, field="file"),
        Case(
            "empty-file",
            422,
            raw=form(("file", b"", "a.mp4")),
            content_type=FORM,
            field="file",
            detail="empty",
        ),
        Case(
            "not-a-video",
            415,
            raw=form(("file", b"GIF89a" + b"x" * 100, "a.mp4")),
            content_type=FORM,
            detail="MP4, MOV or WebM",
        ),
        Case(
            "unknown-field",
            422,
            raw=form(("colour", b"red", None)),
            content_type=FORM,
            field="colour",
        ),
        Case(
            "twice",
            422,
            raw=form(("file", MP4_HEAD, "a.mp4"), ("file", MP4_HEAD, "b.mp4")),
            content_type=FORM,
            field="file",
        ),
        Case(
            "tags-not-json",
            422,
            raw=form(("tags", b"[{", None), ("file", MP4_HEAD, "a.mp4")),
            content_type=FORM,
            field="tags",
        ),
        Case(
            "unknown-sku",
            422,
            raw=form(("tags", b'[{"sku": "NOPE", "at_s": 1}]', None), ("file", MP4_HEAD, "a.mp4")),
            content_type=FORM,
            field="tags",
            detail="NOPE",
        ),
        Case(
            "tag-without-time",
            422,
            raw=form(("tags", b'[{"sku": "WORLD-1"}]', None), ("file", MP4_HEAD, "a.mp4")),
            content_type=FORM,
            field="tags.0.at_s",
        ),
        Case(
            "over-the-limit",
            413,
            raw=form(("file", MP4_HEAD + b"x" * MAX_UPLOAD, "a.mp4")),
            content_type=FORM,
            detail="SHOWROOM_MAX_UPLOAD_MB",
        ),
        Case(
            "no-boundary",
            400,
            raw=b"--x\r\n",
            content_type="multipart/form-data",
            detail="multipart",
        ),
    ],
}


def generic_cases(op: Operation) -> list[Case]:
    cases = [Case("unknown-query-parameter", 400, query="?bogus=1", field="bogus")]
    if op.roles is not None:
        cases.append(Case("no-credentials", 401, auth=None))
        cases.append(
            Case("unknown-key", 401, auth="shr_admin_not-a-real-key", detail="unknown or revoked")
        )
        cases.append(Case("not-bearer", 401, auth="Basic", detail="Bearer"))
    # Path cases send a valid body, so the only thing wrong is the path.
    good_body = VALID_BODIES[op.operation_id][0] if op.body else None
    for name in re.findall(r"\{([^}/]+)\}", op.path):
        malformed = "not-a-uuid" if PATH_PARAMS[name][0].get("format") == "uuid" else "bad sku!"
        if name == "member_id":  # the brand's ids may hold any character but "/"
            malformed = "m" * 129
        missing = MISSING_ID if malformed == "not-a-uuid" else "NO-SUCH-SKU"
        cases.append(
            Case(f"malformed-{name}", 404, path={name: malformed}, body=good_body, detail=name)
        )
        cases.append(Case(f"missing-{name}", 404, path={name: missing}, body=good_body))
    if op.body is not None:
        valid, wrong_field, wrong_value = VALID_BODIES[op.operation_id]
        cases += [
            Case(
                "malformed-json",
                400,
                raw=b'{"title": ',
                content_type="application/json",
                detail="malformed JSON",
            ),
            Case(
                "not-utf8",
                400,
                raw=b'{"title": "\xff"}',
                content_type="application/json",
                detail="UTF-8",
            ),
            Case(
                "wrong-content-type", 415, raw=json.dumps(valid).encode(), content_type="text/plain"
            ),
            Case(
                "too-large",
                413,
                raw=b'{"title": "' + b"x" * MAX_BODY + b'"}',
                content_type="application/json",
            ),
            Case("not-an-object", 422, body=[valid]),
            Case("unknown-field", 422, body={**valid, "colour": "red"}, field="colour"),
            Case("wrong-type", 422, body={**valid, wrong_field: wrong_value}, field=wrong_field),
        ]
    if op.raw_body is not None and "multipart/form-data" in op.raw_body:
        cases += [
            Case("wrong-content-type", 415, raw=MP4_HEAD, content_type="video/mp4"),
            Case("too-large", 413, raw=b"x" * (MAX_UPLOAD + 65 * 1024), content_type=FORM),
        ]
    elif op.raw_body is not None:
        cases += [
            Case("wrong-content-type", 415, raw=b"sku\n", content_type="application/xml"),
            Case(
                "too-large",
                413,
                raw=b"sku,title_en,price\n" + b"x" * (256 * 1024),
                content_type="text/csv",
            ),
        ]
    return cases + RULE_CASES.get(op.operation_id, [])


ALL_CASES = [(op, case) for op in OPERATIONS for case in generic_cases(op)]


def test_every_operation_is_walked() -> None:
    walked = {op.operation_id for op, _ in ALL_CASES}
    assert walked == {op.operation_id for op in OPERATIONS}
    assert set(VALID_BODIES) == {op.operation_id for op in OPERATIONS if op.body}
    assert set(RULE_CASES) <= walked


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def walked(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Api, Database, dict[str, str]]]:
    """One server and one world for the whole walk (per backend): every case is refused and
    checks that it wrote nothing, so each finds the world as the one before left it."""
    db = Database(create_engine(database_url))
    settings = server_settings(database_url, tmp_path_factory.mktemp("walk"))
    try:
        things = await world(db)
        app = create_app(settings)
        client = TestClient(TestServer(app), cookie_jar=DummyCookieJar())
        await client.start_server()
        try:
            yield Api(client, app[OPENAPI]), db, things
        finally:
            await client.close()
    finally:
        await empty(db)
        await db.dispose()


async def world(db: Database) -> dict[str, str]:
    """One of each thing a path can name, plus an admin key."""
    product = await catalog.do_create_product(db, product_body("WORLD-1", stock=10))
    show = await shows.do_create_show(
        db,
        {"title": "World", "scheduled_start": shows.utcnow()},
        default_locale="zh-HK",
        default_currency="HKD",
    )
    key, admin = await identity.do_create_api_key(db, role=Role.ADMIN, name="walker")
    await identity.do_register_member(db, identity.Principal(Role.VIEWER, "world-member"))
    # Never called: no case places an order. Its deliveries would not be in the world either,
    # since the app's dispatcher would write to the log while a case runs.
    endpoint, _ = await webhooks.do_create_endpoint(
        db, url="http://127.0.0.1:9/never", event_types=None
    )
    return {
        "sku": product.sku,
        "show_id": str(show.id),
        "key_id": str(key.id),
        "admin": admin,
        "session_id": "no-such-session",  # WHIP/WHEP sessions live in memory, not the database
        "segment": "seg-000000.ts",  # HLS segments live on disk; the world's show has none
        "clip": "WORLD-1.mp4",  # clips live on disk; the world's show has none
        "order_id": MISSING_ID,
        "endpoint_id": str(endpoint.id),
        "delivery_id": MISSING_ID,
        "member_id": "world-member",
        "video_id": MISSING_ID,  # videos are made by a job; none is needed to be refused
        "viewer": "world-browser",
    }


@pytest.mark.parametrize(
    ("op", "case"), ALL_CASES, ids=[f"{op.operation_id}-{c.name}" for op, c in ALL_CASES]
)
@pytest.mark.asyncio(loop_scope="module")
async def test_bad_input(
    walked: tuple[Api, Database, dict[str, str]], op: Operation, case: Case
) -> None:
    api, db, world = walked
    path = op.path.format(**{**world, **case.path})
    headers = dict(case.headers)
    if case.content_type:
        headers["Content-Type"] = case.content_type
    # "admin" means a caller the operation admits: an admin, or a viewer where only buyers may.
    caller = world["admin"] if op.roles is None or Role.ADMIN in op.roles else viewer_token()
    auth = caller if case.auth == "admin" else case.auth
    if auth == "Basic":
        headers["Authorization"], auth = "Basic YWRtaW46YWRtaW4=", None
    before = await snapshot(db)

    answer = await api.call(
        op.method, path + case.query, auth=auth, json_body=case.body, data=case.raw, headers=headers
    )

    assert answer.status == case.status, answer.text
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.body
    assert problem["status"] == case.status and problem["instance"] == path
    assert problem["detail"] and problem["type"].startswith("https://")
    if case.field is not None:
        assert case.field in [e["field"] for e in problem.get("errors", [])], problem
        assert case.field in problem["detail"] or case.status == 422, problem
    if case.detail is not None:
        assert case.detail in problem["detail"], problem
    if case.status == 401:
        assert "Bearer" in answer.headers["WWW-Authenticate"]
    assert await snapshot(db) == before, "a rejected request changed the database"
    # The connection and the server are still fine.
    assert (await api.call("GET", "/healthz")).status == 200


async def test_unknown_route_and_method(api: Api, admin: str) -> None:
    missing = await api.call("GET", "/api/v1/nothing-here", auth=admin)
    assert missing.status == 404 and missing.headers["Content-Type"].startswith(
        "application/problem+json"
    )
    wrong = await api.call("PUT", "/api/v1/shows", auth=admin, json_body={})
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
    assert "PUT is not allowed" in wrong.body["detail"]
    assert uuid.UUID(MISSING_ID)
