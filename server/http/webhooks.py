"""Webhook endpoints and the delivery log, for admins (docs/webhooks.md)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from server.domain.webhooks import DeliveryStatus
from server.http import views
from server.http.contract import BODY, PATH, QUERY
from server.keys import DATABASE
from server.services import webhooks


def endpoint_view(record: webhooks.EndpointRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "url": record.url,
        "event_types": record.event_types,
        "description": record.description,
        "enabled": record.enabled,
        "disabled_reason": record.disabled_reason,
        "created_at": views.when(record.created_at),
        "updated_at": views.when(record.updated_at),
    }


def delivery_view(record: webhooks.DeliveryRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "endpoint_id": str(record.endpoint_id),
        "message_id": record.message_id,
        "event_type": record.event_type,
        "status": record.status.value,
        "attempts": record.attempts,
        "next_attempt_at": views.when(record.next_attempt_at),
        "last_status_code": record.last_status_code,
        "last_error": record.last_error,
        "last_attempt_at": views.when(record.last_attempt_at),
        "succeeded_at": views.when(record.succeeded_at),
        "created_at": views.when(record.created_at),
    }


def detail_view(detail: webhooks.DeliveryDetail) -> dict[str, Any]:
    return {
        "delivery": delivery_view(detail.delivery),
        "payload": detail.payload,
        "attempt_log": [
            {
                "attempt": a.attempt,
                "at": views.when(a.at),
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
                "response_body": a.response_body,
            }
            for a in detail.attempts
        ],
    }


async def create_endpoint(request: web.Request) -> web.Response:
    body = request[BODY]
    record, secret = await webhooks.do_create_endpoint(
        request.app[DATABASE],
        url=body["url"],
        event_types=body.get("event_types"),
        description=body.get("description", ""),
    )
    return views.reply(
        {"endpoint": endpoint_view(record), "secret": secret},
        201,
        {"Location": f"/api/v1/webhook-endpoints/{record.id}"},
    )


async def list_endpoints(request: web.Request) -> web.Response:
    records = await webhooks.list_endpoints(request.app[DATABASE])
    return views.reply({"items": [endpoint_view(r) for r in records]})


async def get_endpoint(request: web.Request) -> web.Response:
    record = await webhooks.access_endpoint(request.app[DATABASE], request[PATH]["endpoint_id"])
    return views.reply(endpoint_view(record))


async def update_endpoint(request: web.Request) -> web.Response:
    record = await webhooks.do_update_endpoint(
        request.app[DATABASE], request[PATH]["endpoint_id"], request[BODY]
    )
    return views.reply(endpoint_view(record))


async def delete_endpoint(request: web.Request) -> web.Response:
    await webhooks.do_delete_endpoint(request.app[DATABASE], request[PATH]["endpoint_id"])
    return web.Response(status=204)


async def list_deliveries(request: web.Request) -> web.Response:
    query = request[QUERY]
    endpoint_id = query.get("endpoint_id")
    records, total = await webhooks.list_deliveries(
        request.app[DATABASE],
        endpoint_id=None if endpoint_id is None else uuid.UUID(endpoint_id),
        statuses=[DeliveryStatus(s) for s in query.get("status", [])],
        event_types=query.get("event_type", []),
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        views.page([delivery_view(r) for r in records], total, query["limit"], query["offset"])
    )


async def get_delivery(request: web.Request) -> web.Response:
    detail = await webhooks.access_delivery(request.app[DATABASE], request[PATH]["delivery_id"])
    return views.reply(detail_view(detail))


async def retry_delivery(request: web.Request) -> web.Response:
    record = await webhooks.do_retry_delivery(request.app[DATABASE], request[PATH]["delivery_id"])
    return views.reply(delivery_view(record))
