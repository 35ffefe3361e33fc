"""Records to JSON, in the shapes the schemas in server/http/schemas.py promise."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from server.domain.money import Money
from server.services.catalog import ImportReport, ProductRecord
from server.services.identity import ApiKeyRecord, MemberRecord
from server.services.shows import ShowRecord


def when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def money(value: Money | None) -> dict[str, Any] | None:
    return (
        None if value is None else {"amount_minor": value.amount_minor, "currency": value.currency}
    )


def show(record: ShowRecord, public_url: str, stream_status: str = "idle") -> dict[str, Any]:
    return {
        "id": str(record.id),
        "title": record.title,
        "description": record.description,
        "scheduled_start": when(record.scheduled_start),
        "state": record.state.value,
        "host_name": record.host_name,
        "locale": record.locale,
        "currency": record.currency,
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
        "started_at": when(record.started_at),
        "ended_at": when(record.ended_at),
        "cancelled_at": when(record.cancelled_at),
        "peak_viewers": record.peak_viewers,
        "checkout_mode": record.checkout_mode.value,
        "handoff_url": record.handoff_url,
        "claim_keyword": record.claim_keyword,
        "stream_status": stream_status,
        "links": {
            "watch": f"{public_url}/watch/{record.id}",
            "studio": f"{public_url}/studio/{record.id}",
        },
    }


def product(record: ProductRecord) -> dict[str, Any]:
    draft = record.draft
    return {
        "id": str(record.id),
        "sku": draft.sku,
        "title": draft.title,
        "description": draft.description,
        "price": money(draft.price),
        "compare_at_price": money(draft.compare_at_price),
        "image_url": draft.image_url,
        "stock": draft.stock,
        "status": draft.status.value,
        "created_at": when(record.created_at),
        "updated_at": when(record.updated_at),
    }


def import_report(report: ImportReport) -> dict[str, Any]:
    return {
        "rows": report.rows,
        "created": report.created,
        "updated": report.updated,
        "written": report.written,
        "errors": [
            {"row": e.row, "sku": e.sku, "field": e.field, "message": e.message}
            for e in report.errors
        ],
    }


def api_key(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "role": record.role.value,
        "show_id": None if record.show_id is None else str(record.show_id),
        "name": record.name,
        "prefix": record.prefix,
        "created_at": when(record.created_at),
        "revoked_at": when(record.revoked_at),
    }


def member(record: MemberRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "external_id": record.external_id,
        "display_name": record.display_name,
        "created_at": when(record.created_at),
    }


def page(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _default(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, default=_default).encode(),
        content_type="application/json",
        headers=headers,
    )
