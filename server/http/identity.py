"""Identity handlers: API keys and host tokens, guest sessions, the caller and members."""

from __future__ import annotations

import uuid

from aiohttp import web

from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.keys import DATABASE, SETTINGS
from server.services import identity
from server.services.identity import Role

GUEST_COOKIE_MAX_AGE = 365 * 24 * 3600


async def create_api_key(request: web.Request) -> web.Response:
    body = request[BODY]
    show_id = body.get("show_id")
    record, token = await identity.do_create_api_key(
        request.app[DATABASE],
        role=Role(body["role"]),
        show_id=uuid.UUID(show_id) if show_id else None,
        name=body.get("name", ""),
    )
    return views.reply({"key": views.api_key(record), "token": token}, 201)


async def list_api_keys(request: web.Request) -> web.Response:
    records = await identity.list_api_keys(request.app[DATABASE])
    return views.reply({"items": [views.api_key(r) for r in records]})


async def revoke_api_key(request: web.Request) -> web.Response:
    await identity.do_revoke_api_key(request.app[DATABASE], request[PATH]["key_id"])
    return web.Response(status=204)


async def start_guest_session(request: web.Request) -> web.Response:
    """Give an anonymous viewer a signed guest cookie (or confirm the one they have), and the
    same credential as a bearer token for pages where the cookie cannot go."""
    settings = request.app[SETTINGS]
    existing = request.cookies.get(identity.GUEST_COOKIE)
    if existing:
        try:
            guest = identity.guest_principal(existing, settings.secret_key)
            return views.reply(
                {"guest_id": guest.subject, "token": identity.GUEST_PREFIX + existing}
            )
        except identity.Unauthenticated:
            pass  # a stale or forged cookie is simply replaced
    guest_id, cookie = identity.new_guest_cookie(settings.secret_key)
    response = views.reply({"guest_id": guest_id, "token": identity.GUEST_PREFIX + cookie}, 201)
    response.set_cookie(
        identity.GUEST_COOKIE,
        cookie,
        max_age=GUEST_COOKIE_MAX_AGE,
        httponly=True,
        secure=settings.secure_cookies,
        # Embeds on a brand's page are cross-site; Lax would drop the cookie there over https.
        samesite="None" if settings.secure_cookies else "Lax",
        path="/",
    )
    return response


async def who_am_i(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    member = None
    if principal.role is Role.VIEWER:
        member = views.member(await identity.do_register_member(request.app[DATABASE], principal))
    return views.reply(
        {
            "role": principal.role.value,
            "subject": principal.subject,
            "name": principal.name,
            "show_id": principal.show_id,
            "member": member,
        }
    )


async def list_members(request: web.Request) -> web.Response:
    query = request[QUERY]
    records, total = await identity.list_members(
        request.app[DATABASE], limit=query["limit"], offset=query["offset"]
    )
    return views.reply(
        views.page([views.member(r) for r in records], total, query["limit"], query["offset"])
    )
