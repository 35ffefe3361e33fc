"""Operational endpoints: liveness, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from server.http import views
from server.keys import DATABASE, METRICS, OPENAPI, REDIS

READY_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    return views.reply({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when every backing service answers within a short timeout."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(request.app[DATABASE].ping(), READY_TIMEOUT_SECONDS)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}: {exc}"[:300]
    redis = request.app.get(REDIS)
    if redis is not None:
        try:
            await asyncio.wait_for(redis.ping(), READY_TIMEOUT_SECONDS)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"error: {type(exc).__name__}: {exc}"[:300]
    ok = all(v == "ok" for v in checks.values())
    return views.reply(
        {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503
    )


async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def openapi(request: web.Request) -> web.Response:
    return views.reply(request.app[OPENAPI])
