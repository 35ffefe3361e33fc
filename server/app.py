"""create_app(settings): the aiohttp application with its middlewares, routes and resources."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from redis.asyncio import Redis

from server.config import Settings
from server.http.contract import Contract, openapi_document
from server.http.errors import problem_answers
from server.http.observability import Metrics, observe
from server.http.pages import add_pages
from server.http.routes import OPERATIONS
from server.keys import DATABASE, METRICS, OPENAPI, REDIS, SETTINGS
from server.services.identity import (
    ADMIN_PREFIX,
    GUEST_COOKIE,
    HOST_PREFIX,
    Principal,
    Unauthenticated,
    access_key_principal,
    guest_principal,
    viewer_principal,
)
from server.store.db import Database, create_engine

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def authenticate(request: web.Request) -> Principal | None:
    """The caller from `Authorization: Bearer` (API key, host token or viewer JWT) or the
    guest cookie; None when no credentials were sent at all."""
    settings = request.app[SETTINGS]
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use Authorization: Bearer <token>")
        if token.startswith((ADMIN_PREFIX, HOST_PREFIX)):
            return await access_key_principal(request.app[DATABASE], token)
        return viewer_principal(token, settings.viewer_jwt_secret)
    cookie = request.cookies.get(GUEST_COOKIE)
    if cookie:
        return guest_principal(cookie, settings.secret_key)
    return None


async def _database(app: web.Application) -> AsyncIterator[None]:
    database = Database(create_engine(app[SETTINGS].database_url))
    app[DATABASE] = database
    yield
    await database.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    assert url is not None
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    app[REDIS] = client
    yield
    await client.aclose()


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    contract = Contract()
    app = web.Application(
        middlewares=[
            observe(metrics),
            problem_answers,
            contract.middleware(authenticate, settings.max_body_bytes),
        ],
        # Bodies are read through contract.read_limited with per-route limits; this is the
        # ceiling for anything read another way.
        client_max_size=max(settings.max_body_bytes, settings.max_import_bytes),
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    contract.register(app, OPERATIONS)
    app[OPENAPI] = openapi_document(OPERATIONS, server_url=settings.public_url)
    add_pages(app, WEB_DIR)
    app.cleanup_ctx.append(_database)
    if settings.redis_url is not None:
        app.cleanup_ctx.append(_redis)
    return app
