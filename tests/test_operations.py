"""What the operator relies on: health, readiness, metrics and request logs."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from server.app import create_app
from server.config import Settings
from server.http.observability import JsonLines
from server.store.db import Database
from tests.conftest import Api, unavailable


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.call("GET", "/healthz")).body == {"status": "ok"}
    ready = await api.call("GET", "/readyz")
    assert ready.status == 200 and ready.body == {"status": "ok", "checks": {"database": "ok"}}


async def test_readiness_reports_an_unreachable_database(
    aiohttp_client: Any, settings: Settings
) -> None:
    # A port nothing listens on: the process is up, the database is not.
    dead = replace(settings, database_url="postgresql+asyncpg://nobody@127.0.0.1:9/none")
    client = await aiohttp_client(create_app(dead))
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 503 and body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("error:")


async def test_readiness_checks_redis_when_configured(
    aiohttp_client: Any, settings: Settings, db: Database
) -> None:
    url = os.environ.get("SHOWROOM_TEST_REDIS", "redis://127.0.0.1:6379/0")
    from redis.asyncio import Redis

    probe = Redis.from_url(url, socket_connect_timeout=2)
    try:
        await probe.ping()
    except Exception as exc:
        unavailable(f"Redis at {url} is unavailable: {exc}")
    finally:
        await probe.aclose()
    client = await aiohttp_client(create_app(replace(settings, redis_url=url)))
    body = await (await client.get("/readyz")).json()
    assert body["checks"] == {"database": "ok", "redis": "ok"}
    down = await aiohttp_client(create_app(replace(settings, redis_url="redis://127.0.0.1:9/0")))
    response = await down.get("/readyz")
    assert response.status == 503 and (await response.json())["checks"]["redis"].startswith(
        "error:"
    )


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_requests_by_route_template(api: Api, admin: str) -> None:
    for _ in range(3):
        await api.call("GET", "/api/v1/shows/00000000-0000-4000-8000-000000000000", auth=admin)
    await api.call("GET", "/api/v1/shows", auth=admin)
    answer = await api.call("GET", "/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain")
    samples = _samples(answer.text)
    missing = frozenset(
        {("method", "GET"), ("route", "/api/v1/shows/{show_id}"), ("status", "404")}
    )
    assert samples[("showroom_http_requests_total", missing)] == 3
    listed = frozenset({("method", "GET"), ("route", "/api/v1/shows"), ("status", "200")})
    assert samples[("showroom_http_requests_total", listed)] == 1
    count = frozenset({("method", "GET"), ("route", "/api/v1/shows/{show_id}")})
    assert samples[("showroom_http_request_duration_seconds_count", count)] == 3
    assert not any("00000000" in str(labels) for _, labels in samples)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def access_lines() -> Any:
    handler = Capture()
    handler.setFormatter(JsonLines())
    logger = logging.getLogger("showroom.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


async def test_one_json_log_line_per_request(api: Api, admin: str, access_lines: list[str]) -> None:
    await api.call("GET", "/api/v1/shows?limit=5", auth=admin)
    await api.call(
        "POST", "/api/v1/shows", auth=admin, data=b"{", headers={"Content-Type": "application/json"}
    )
    entries = [json.loads(line) for line in access_lines]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/api/v1/shows", 200),
        ("POST", "/api/v1/shows", 400),
    ]
    assert entries[0]["query"] == "limit=5" and entries[0]["route"] == "/api/v1/shows"
    assert entries[0]["duration_ms"] >= 0 and entries[0]["time"].endswith("Z")
    assert "shr_admin_" not in "".join(access_lines)  # credentials never reach the log
