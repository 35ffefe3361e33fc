"""JSON Schemas (2020-12) of every request and response body: the API's contract.

The same schemas validate requests at run time, appear in /api/openapi.json, and check
responses in the tests, so the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from server.domain.catalog import (
    DESCRIPTION_MAX,
    IMAGE_URL_MAX,
    MAX_STOCK,
    TITLE_MAX,
    ProductStatus,
)
from server.domain.money import MAX_AMOUNT_MINOR, SUPPORTED_CURRENCIES
from server.domain.shows import ShowState
from server.domain.text import SUPPORTED_LOCALES
from server.services import shows as show_rules
from server.services.identity import Role

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def page_of(item: str) -> Schema:
    return {
        "type": "object",
        "required": ["items", "total", "limit", "offset"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": ref(item)},
            "total": {"type": "integer", "minimum": 0},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    }


UUID: Schema = {"type": "string", "format": "uuid"}
DATE_TIME: Schema = {"type": "string", "format": "date-time"}
SKU: Schema = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
CURRENCY: Schema = {"type": "string", "enum": sorted(SUPPORTED_CURRENCIES)}
LOCALE: Schema = {"type": "string", "enum": list(SUPPORTED_LOCALES)}


def localized(max_length: int) -> Schema:
    return {
        "type": "object",
        "description": "Text per locale: " + ", ".join(SUPPORTED_LOCALES),
        "propertyNames": {"enum": list(SUPPORTED_LOCALES)},
        "additionalProperties": {"type": "string", "maxLength": max_length},
    }


_SHOW_FIELDS: Schema = {
    "title": {"type": "string", "minLength": 1, "maxLength": show_rules.TITLE_MAX},
    "description": {"type": "string", "maxLength": show_rules.DESCRIPTION_MAX},
    "scheduled_start": {
        **DATE_TIME,
        "description": "ISO 8601 with an offset, e.g. 2026-12-01T12:00:00Z",
    },
    "host_name": {"type": "string", "maxLength": show_rules.HOST_NAME_MAX},
    "locale": LOCALE,
    "currency": CURRENCY,
}

_PRODUCT_FIELDS: Schema = {
    "sku": SKU,
    "title": localized(TITLE_MAX),
    "description": localized(DESCRIPTION_MAX),
    "price": ref("Money"),
    "compare_at_price": nullable(ref("Money")),
    "image_url": nullable({"type": "string", "maxLength": IMAGE_URL_MAX}),
    "stock": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
    "status": {"type": "string", "enum": [s.value for s in ProductStatus]},
}

SCHEMAS: dict[str, Schema] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "instance": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                        "row": {"type": "integer"},
                        "sku": {"type": ["string", "null"]},
                    },
                },
            },
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    },
    "Readiness": {
        "type": "object",
        "required": ["status", "checks"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "Money": {
        "type": "object",
        "description": "An amount in integer minor units (cents) and its ISO 4217 currency.",
        "required": ["amount_minor", "currency"],
        "additionalProperties": False,
        "properties": {
            "amount_minor": {"type": "integer", "minimum": 0, "maximum": MAX_AMOUNT_MINOR},
            "currency": CURRENCY,
        },
    },
    "Show": {
        "type": "object",
        "required": [
            "id",
            "title",
            "description",
            "scheduled_start",
            "state",
            "host_name",
            "locale",
            "currency",
            "created_at",
            "updated_at",
            "started_at",
            "ended_at",
            "cancelled_at",
            "peak_viewers",
            "stream_status",
            "links",
        ],
        "additionalProperties": False,
        "properties": {
            **_SHOW_FIELDS,
            "id": UUID,
            "state": {"type": "string", "enum": [s.value for s in ShowState]},
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
            "started_at": nullable(DATE_TIME),
            "ended_at": nullable(DATE_TIME),
            "cancelled_at": nullable(DATE_TIME),
            "peak_viewers": {
                "type": "integer",
                "minimum": 0,
                "description": "Most members watching at once (two tabs are one viewer), across all server processes.",
            },
            "stream_status": {
                "type": "string",
                "enum": ["idle", "publishing", "host_reconnecting", "stopped"],
                "description": "The host's video as relayed by the process answering: "
                "host_reconnecting while the host's media has stopped without a hang-up "
                "(see GET /api/v1/shows/{show_id}/stream).",
            },
            "links": {
                "type": "object",
                "required": ["watch", "studio"],
                "properties": {"watch": {"type": "string"}, "studio": {"type": "string"}},
            },
        },
    },
    "ShowCreate": {
        "type": "object",
        "required": ["title", "scheduled_start"],
        "additionalProperties": False,
        "properties": _SHOW_FIELDS,
    },
    "ShowUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": _SHOW_FIELDS,
    },
    "ShowPage": page_of("Show"),
    "OrderPage": page_of("Order"),
    "Product": {
        "type": "object",
        "required": [*_PRODUCT_FIELDS, "id", "created_at", "updated_at"],
        "additionalProperties": False,
        "properties": {
            **_PRODUCT_FIELDS,
            "id": UUID,
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        },
    },
    "ProductCreate": {
        "type": "object",
        "required": ["sku", "title", "price"],
        "additionalProperties": False,
        "properties": _PRODUCT_FIELDS,
    },
    "ProductUpdate": {
        "type": "object",
        "description": "Any product field but sku (the product's key) and stock (use /stock).",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {k: v for k, v in _PRODUCT_FIELDS.items() if k not in ("sku", "stock")},
    },
    "ProductPage": page_of("Product"),
    "StockAdjustment": {
        "type": "object",
        "description": "Either add `delta` (negative removes) or `set` the count.",
        "additionalProperties": False,
        "properties": {
            "delta": {"type": "integer", "minimum": -MAX_STOCK, "maximum": MAX_STOCK},
            "set": {"type": "integer", "minimum": 0, "maximum": MAX_STOCK},
        },
        "oneOf": [{"required": ["delta"]}, {"required": ["set"]}],
    },
    "ImportReport": {
        "type": "object",
        "required": ["rows", "created", "updated", "written", "errors"],
        "additionalProperties": False,
        "properties": {
            "rows": {"type": "integer"},
            "created": {"type": "integer"},
            "updated": {"type": "integer"},
            "written": {"type": "boolean"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["row", "sku", "field", "message"],
                    "properties": {
                        "row": {"type": "integer"},
                        "sku": {"type": ["string", "null"]},
                        "field": {"type": ["string", "null"]},
                        "message": {"type": "string"},
                    },
                },
            },
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "role", "show_id", "name", "prefix", "created_at", "revoked_at"],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "role": {"enum": [Role.ADMIN.value, Role.HOST.value]},
            "show_id": nullable(UUID),
            "name": {"type": "string"},
            "prefix": {"type": "string", "description": "First characters, to recognise a key."},
            "created_at": DATE_TIME,
            "revoked_at": nullable(DATE_TIME),
        },
    },
    "ApiKeyCreate": {
        "type": "object",
        "required": ["role"],
        "additionalProperties": False,
        "properties": {
            "role": {"enum": [Role.ADMIN.value, Role.HOST.value]},
            "show_id": {**nullable(UUID), "description": "Host tokens only: limit to one show."},
            "name": {"type": "string", "maxLength": 100},
        },
    },
    "ApiKeyCreated": {
        "type": "object",
        "required": ["key", "token"],
        "additionalProperties": False,
        "properties": {
            "key": ref("ApiKey"),
            "token": {"type": "string", "description": "The secret; shown only this once."},
        },
    },
    "ApiKeyList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": ref("ApiKey")}},
    },
    "ChatMessage": {
        "type": "object",
        "required": ["type", "seq", "id", "author", "text", "created_at"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "chat.message"},
            "seq": {"type": "integer", "description": "The show's event number."},
            "id": UUID,
            "author": {
                "type": "object",
                "required": ["id", "name", "role"],
                "additionalProperties": False,
                "properties": {
                    "id": {
                        "type": "string",
                        "description": "Opaque and stable per author; never a member id.",
                    },
                    "name": {"type": "string"},
                    "role": {"enum": [r.value for r in Role]},
                },
            },
            "text": {
                "type": "string",
                "description": "Plain text: render it as text, never as HTML.",
            },
            "created_at": DATE_TIME,
        },
    },
    "Question": {
        "type": "object",
        "required": ["type", "seq", "id", "author", "text", "state", "votes", "created_at"],
        "additionalProperties": False,
        "properties": {
            "type": {"const": "question"},
            "seq": {
                "type": "integer",
                "description": "The show's event number of its latest change.",
            },
            "id": UUID,
            "author": {"$ref": "#/components/schemas/ChatMessage/properties/author"},
            "text": {
                "type": "string",
                "description": "Plain text: render it as text, never as HTML.",
            },
            "state": {"enum": ["open", "answering", "answered", "dismissed"]},
            "votes": {"type": "integer", "minimum": 0},
            "created_at": DATE_TIME,
        },
    },
    "QuestionList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": ref("Question")}},
    },
    "ProductCard": {
        "type": "object",
        "description": "A pinned product as viewers see it. While a flash price holds, price is "
        "the flash price and compare_at_price the usual one.",
        "required": [
            "sku",
            "title",
            "image_url",
            "price",
            "compare_at_price",
            "stock",
            "flash_ends_at",
            "pinned_at",
        ],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "title": localized(TITLE_MAX),
            "image_url": nullable({"type": "string"}),
            "price": ref("Money"),
            "compare_at_price": nullable(ref("Money")),
            "stock": {"type": "integer", "minimum": 0},
            "flash_ends_at": nullable(DATE_TIME),
            "pinned_at": DATE_TIME,
        },
    },
    "PinList": {
        "type": "object",
        "required": ["seq", "products"],
        "additionalProperties": False,
        "properties": {
            "seq": {
                "type": "integer",
                "minimum": 0,
                "description": "The room event number of the last pin change.",
            },
            "products": {"type": "array", "items": ref("ProductCard")},
        },
    },
    "PinCreate": {
        "type": "object",
        "required": ["sku"],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "flash_price": {
                **ref("Money"),
                "description": "Lower than the product's price, in its currency.",
            },
            "flash_ends_at": {
                **DATE_TIME,
                "description": "When the flash price ends (needs flash_price).",
            },
        },
    },
    "CheckoutCreate": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {
            "show_id": {**UUID, "description": "The show bought from: its flash prices apply."},
            "items": {
                "type": "array",
                "minItems": 1,
                "maxItems": 20,
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "additionalProperties": False,
                    "properties": {
                        "sku": SKU,
                        "quantity": {"type": "integer", "minimum": 1},
                    },
                },
            },
        },
    },
    "OrderConfirm": {
        "type": "object",
        "required": ["contact", "payment_method"],
        "additionalProperties": False,
        "properties": {
            "contact": {
                "type": "object",
                "required": ["name"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 100},
                    "phone": {"type": "string", "minLength": 3, "maxLength": 32},
                    "email": {"type": "string", "format": "email", "maxLength": 254},
                },
            },
            "delivery": {
                "type": "object",
                "required": ["address"],
                "additionalProperties": False,
                "properties": {
                    "address": {"type": "string", "minLength": 1, "maxLength": 500},
                    "city": {"type": "string", "maxLength": 100},
                    "postal_code": {"type": "string", "maxLength": 20},
                    "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                },
            },
            "payment_method": {"type": "string", "enum": ["pay_later", "cash_on_delivery"]},
        },
    },
    "Order": {
        "type": "object",
        "required": [
            "id",
            "status",
            "show_id",
            "total",
            "lines",
            "reserved_until",
            "contact",
            "delivery",
            "payment_method",
            "created_at",
            "placed_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "status": {
                "type": "string",
                "enum": ["reserved", "placed", "paid", "cancelled", "expired"],
            },
            "show_id": nullable(UUID),
            "total": ref("Money"),
            "lines": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku", "title", "quantity", "unit_price", "flash"],
                    "additionalProperties": False,
                    "properties": {
                        "sku": SKU,
                        "title": localized(TITLE_MAX),
                        "quantity": {"type": "integer", "minimum": 1},
                        "unit_price": ref("Money"),
                        "flash": {"type": "boolean"},
                    },
                },
            },
            "reserved_until": {
                **DATE_TIME,
                "description": "While reserved, confirm before this or the stock returns.",
            },
            "contact": nullable({"type": "object"}),
            "delivery": nullable({"type": "object"}),
            "payment_method": nullable({"type": "string"}),
            "created_at": DATE_TIME,
            "placed_at": nullable(DATE_TIME),
        },
    },
    "StreamHealth": {
        "type": "object",
        "description": "The show's live media as this server process relays it.",
        "required": [
            "status",
            "video_codec",
            "audio_codec",
            "bitrate_kbps",
            "frame_rate",
            "width",
            "height",
            "keyframe_interval_s",
            "viewers",
            "publishing_since",
            "keyframe_requests",
            "recording_bytes",
        ],
        "additionalProperties": False,
        "properties": {
            "status": {
                "type": "string",
                "enum": ["idle", "publishing", "host_reconnecting", "stopped"],
                "description": "idle: nothing published yet; publishing: the host's media is "
                "arriving; host_reconnecting: it stopped without the host hanging up (viewers "
                "stay connected and resume when the host publishes again); stopped: the host "
                "hung up (WHIP DELETE) while the show is still live.",
            },
            "video_codec": nullable({"type": "string", "enum": ["VP8", "H264"]}),
            "audio_codec": nullable({"type": "string", "enum": ["opus"]}),
            "bitrate_kbps": {"type": "number", "minimum": 0, "description": "Over the last 2 s."},
            "frame_rate": {"type": "number", "minimum": 0, "description": "Over the last 2 s."},
            "width": nullable({"type": "integer", "minimum": 1}),
            "height": nullable({"type": "integer", "minimum": 1}),
            "keyframe_interval_s": nullable({"type": "number", "minimum": 0}),
            "viewers": {"type": "integer", "minimum": 0, "description": "WHEP viewers."},
            "publishing_since": nullable(DATE_TIME),
            "keyframe_requests": {
                "type": "integer",
                "minimum": 0,
                "description": "Keyframes asked of the host (rate-limited) for joining viewers.",
            },
            "recording_bytes": nullable({"type": "integer", "minimum": 0}),
        },
    },
    "RecordingList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "path",
                        "container",
                        "video_codec",
                        "audio_codec",
                        "width",
                        "height",
                        "duration_ms",
                        "bytes",
                        "created_at",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "id": UUID,
                        "path": {
                            "type": "string",
                            "description": "Relative to the data directory.",
                        },
                        "container": {"type": "string", "enum": ["matroska"]},
                        "video_codec": nullable({"type": "string", "enum": ["vp8", "h264"]}),
                        "audio_codec": nullable({"type": "string", "enum": ["opus"]}),
                        "width": nullable({"type": "integer"}),
                        "height": nullable({"type": "integer"}),
                        "duration_ms": {"type": "integer", "minimum": 0},
                        "bytes": {"type": "integer", "minimum": 0},
                        "created_at": DATE_TIME,
                    },
                },
            }
        },
    },
    "ChatPage": {
        "type": "object",
        "required": ["items", "next_before"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": ref("ChatMessage")},
            "next_before": {"type": ["integer", "null"]},
        },
    },
    "Member": {
        "type": "object",
        "required": ["id", "external_id", "display_name", "created_at"],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "external_id": {"type": "string", "description": "The brand's member id (JWT sub)."},
            "display_name": {"type": "string"},
            "created_at": DATE_TIME,
        },
    },
    "MemberPage": page_of("Member"),
    "Me": {
        "type": "object",
        "required": ["role", "subject", "name", "show_id", "member"],
        "additionalProperties": False,
        "properties": {
            "role": {"enum": [r.value for r in Role]},
            "subject": {"type": "string"},
            "name": {"type": "string"},
            "show_id": nullable(UUID),
            "member": nullable(ref("Member")),
        },
    },
    "GuestSession": {
        "type": "object",
        "required": ["guest_id"],
        "additionalProperties": False,
        "properties": {"guest_id": {"type": "string"}},
    },
}
