"""Identity and roles: admin keys, host tokens, brand-signed viewer JWTs, guest cookies."""

from __future__ import annotations

import jwt
import pytest

from server.store.db import Database
from tests.conftest import (
    VIEWER_SECRET,
    Api,
    create_show,
    host_token,
    product_body,
    snapshot,
    viewer_token,
)


async def test_keys_are_stored_hashed_and_shown_once(api: Api, admin: str, db: Database) -> None:
    created = await api.call(
        "POST", "/api/v1/api-keys", auth=admin, json_body={"role": "admin", "name": "ERP"}
    )
    assert created.status == 201
    token = created.body["token"]
    assert token.startswith("shr_admin_") and created.body["key"]["prefix"] == token[:14]
    rows = await snapshot(db)
    assert token not in repr(rows)  # only a hash of the secret is kept
    listed = await api.call("GET", "/api/v1/api-keys", auth=token)
    assert {k["name"] for k in listed.body["items"]} == {"test admin", "ERP"}
    assert "token" not in listed.text


async def test_revoked_key_stops_working(api: Api, admin: str) -> None:
    created = (
        await api.call("POST", "/api/v1/api-keys", auth=admin, json_body={"role": "admin"})
    ).body
    assert (await api.call("GET", "/api/v1/shows", auth=created["token"])).status == 200
    revoked = await api.call("DELETE", f"/api/v1/api-keys/{created['key']['id']}", auth=admin)
    assert revoked.status == 204
    refused = await api.call("GET", "/api/v1/shows", auth=created["token"])
    assert refused.status == 401 and "revoked" in refused.body["detail"]
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")


async def test_host_token_for_unknown_show_is_422(api: Api, admin: str, db: Database) -> None:
    before = await snapshot(db)
    answer = await api.call(
        "POST",
        "/api/v1/api-keys",
        auth=admin,
        json_body={"role": "host", "show_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert answer.status == 422 and answer.body["errors"][0]["field"] == "show_id"
    admin_scoped = await api.call(
        "POST",
        "/api/v1/api-keys",
        auth=admin,
        json_body={"role": "admin", "show_id": "00000000-0000-4000-8000-000000000000"},
    )
    assert admin_scoped.status == 422 and admin_scoped.body["errors"][0]["field"] == "show_id"
    assert await snapshot(db) == before


async def test_viewer_token_registers_the_member(api: Api) -> None:
    first = await api.call("GET", "/api/v1/me", auth=viewer_token("crm-42", "陳大文"))
    assert first.status == 200, first.text
    assert (first.body["role"], first.body["subject"]) == ("viewer", "crm-42")
    assert first.body["member"]["external_id"] == "crm-42"
    assert first.body["member"]["display_name"] == "陳大文"
    renamed = await api.call("GET", "/api/v1/me", auth=viewer_token("crm-42", "Peter Chan"))
    assert renamed.body["member"]["id"] == first.body["member"]["id"]
    assert renamed.body["member"]["display_name"] == "Peter Chan"


async def test_members_listed_for_admins(api: Api, admin: str) -> None:
    for n in range(3):
        await api.call("GET", "/api/v1/me", auth=viewer_token(f"m-{n}", f"Member {n}"))
    listed = await api.call("GET", "/api/v1/members?limit=2", auth=admin)
    assert listed.body["total"] == 3 and len(listed.body["items"]) == 2
    assert (await api.call("GET", "/api/v1/members", auth=viewer_token())).status == 403


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (viewer_token(expires_in=-120), "expired"),
        (
            viewer_token(secret="another-brand-secret-0123456789abcdef"),
            "Signature verification failed",
        ),
        (jwt.encode({"name": "x", "exp": 4102444800}, VIEWER_SECRET, algorithm="HS256"), "sub"),
        (
            jwt.encode({"sub": "a", "exp": 4102444800}, key=None, algorithm="none"),
            "invalid viewer token",
        ),
        (
            jwt.encode({"sub": "x" * 200, "exp": 4102444800}, VIEWER_SECRET, algorithm="HS256"),
            "1-128",
        ),
        ("not-a-token", "invalid viewer token"),
    ],
    ids=["expired", "wrong-secret", "no-sub", "alg-none", "long-sub", "garbage"],
)
async def test_bad_viewer_tokens_are_401(api: Api, db: Database, token: str, reason: str) -> None:
    answer = await api.call("GET", "/api/v1/me", auth=token)
    assert answer.status == 401, answer.text
    assert reason in answer.body["detail"]
    assert (await snapshot(db))["members"] == []


async def test_guest_cookie_session(api: Api) -> None:
    started = await api.call("POST", "/api/v1/guest-session")
    assert started.status == 201
    cookie = started.cookies["showroom_guest"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    guest_id = started.body["guest_id"]
    me = await api.call("GET", "/api/v1/me", cookies={"showroom_guest": cookie.value})
    assert (me.body["role"], me.body["subject"], me.body["member"]) == ("guest", guest_id, None)
    again = await api.call(
        "POST", "/api/v1/guest-session", cookies={"showroom_guest": cookie.value}
    )
    assert again.status == 200 and again.body["guest_id"] == guest_id
    forged = cookie.value.split(".")[0] + ".AAAA"
    assert (await api.call("GET", "/api/v1/me", cookies={"showroom_guest": forged})).status == 401
    replaced = await api.call("POST", "/api/v1/guest-session", cookies={"showroom_guest": forged})
    assert replaced.status == 201 and replaced.body["guest_id"] != guest_id


async def test_a_guest_without_cookies_uses_the_token(api: Api) -> None:
    # An embed on a brand's site: the browser may drop the cookie, the token still works.
    started = await api.call("POST", "/api/v1/guest-session")
    token = started.body["token"]
    assert token == "shr_guest_" + started.cookies["showroom_guest"].value
    me = await api.call("GET", "/api/v1/me", auth=token)
    assert me.status == 200, me.text
    assert (me.body["role"], me.body["subject"]) == ("guest", started.body["guest_id"])
    cart = await api.call("GET", "/api/v1/cart", auth=token)
    assert cart.status == 200, cart.text
    forged = token.rsplit(".", 1)[0] + ".AAAA"
    refused = await api.call("GET", "/api/v1/me", auth=forged)
    assert refused.status == 401 and "signature" in refused.body["detail"]


async def test_role_matrix(api: Api, admin: str, db: Database) -> None:
    show = await create_show(api, admin)
    host = await host_token(db, show["id"])
    guest = (await api.call("POST", "/api/v1/guest-session")).cookies["showroom_guest"].value
    viewer = viewer_token()
    before = await snapshot(db)
    callers = {
        "host": {"auth": host},
        "viewer": {"auth": viewer},
        "guest": {"cookies": {"showroom_guest": guest}},
    }
    admin_only = [
        ("POST", "/api/v1/products", product_body()),
        ("POST", "/api/v1/shows", {"title": "x", "scheduled_start": "2026-12-01T00:00:00Z"}),
        ("PATCH", f"/api/v1/shows/{show['id']}", {"title": "x"}),
        ("POST", f"/api/v1/shows/{show['id']}/cancel", None),
        ("GET", "/api/v1/api-keys", None),
        ("POST", "/api/v1/api-keys", {"role": "admin"}),
        ("GET", "/api/v1/members", None),
    ]
    for name, how in callers.items():
        for method, path, body in admin_only:
            answer = await api.call(method, path, json_body=body, **how)
            assert answer.status == 403, (name, method, path, answer.text)
            assert answer.headers["Content-Type"].startswith("application/problem+json")
        if name != "host":
            for action in ("start", "end"):
                answer = await api.call("POST", f"/api/v1/shows/{show['id']}/{action}", **how)
                assert answer.status == 403, (name, action, answer.text)
    assert await snapshot(db) == before


async def test_viewer_tokens_refused_when_not_configured(
    aiohttp_client, settings, db: Database
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from server.app import create_app

    client = await aiohttp_client(create_app(replace(settings, viewer_jwt_secret=None)))
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {viewer_token()}"})
    assert response.status == 401
    assert "not enabled" in (await response.json())["detail"]
