"""Request metrics (Prometheus) and one log line per request, text or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from server.http.contract import Handler

access_log = logging.getLogger("showroom.access")


class Metrics:
    """One registry per app, so two apps in one process (tests, benchmarks) never mix."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "showroom_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "showroom_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)


def route_label(request: web.Request) -> str:
    # The route template, never the raw path: ids in paths would explode the label space.
    info = request.match_info.route.resource
    return info.canonical if info is not None else "unmatched"


def observe(metrics: Metrics) -> Any:
    @web.middleware
    async def observe_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            access_log.info(
                "%s %s %s %.1fms",
                request.method,
                request.path_qs,
                status,
                elapsed * 1000,
                extra={
                    "http": {
                        "method": request.method,
                        "path": request.path,
                        "query": request.query_string,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "remote": request.remote,
                    }
                },
            )

    return observe_request


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat().replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        http = getattr(record, "http", None)
        if http is not None:
            entry.update(http)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLines()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log would be a second line per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
