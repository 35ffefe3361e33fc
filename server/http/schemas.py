"""JSON Schemas (2020-12) of every request and response body: the API's contract.

The same schemas validate requests at run time, appear in /api/openapi.json, and check
responses in the tests, so the document cannot drift from the code.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Any

from server.domain.catalog import (
    DESCRIPTION_MAX,
    IMAGE_URL_MAX,
    MAX_STOCK,
    TITLE_MAX,
    ProductStatus,
)
from server.domain.loyalty import MAX_POINTS, EarningRules, EntryKind, Reason
from server.domain.money import MAX_AMOUNT_MINOR, SUPPORTED_CURRENCIES
from server.domain.shows import ShowState
from server.domain.text import SUPPORTED_LOCALES
from server.domain.webhooks import DESCRIPTION_MAX as WEBHOOK_DESCRIPTION_MAX
from server.domain.webhooks import EVENT_TYPES as WEBHOOK_EVENT_TYPES
from server.domain.webhooks import URL_MAX as WEBHOOK_URL_MAX
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
    "checkout_mode": {
        "type": "string",
        "enum": ["native", "handoff"],
        "description": "native: orders in Showroom; handoff: the brand's own cart at handoff_url.",
    },
    "handoff_url": nullable(
        {
            "type": "string",
            "maxLength": 2048,
            "description": "The brand's cart link, an absolute http(s) URL template with {items} "
            "(SKU:QTY pairs joined by commas) and optionally {show_id} and {pin_id}, e.g. "
            "https://shop.example/cart/{items}?ref=showroom&show={show_id}. Required for handoff.",
        }
    ),
    "claim_keyword": nullable(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 16,
            "description": "What a viewer types in chat to claim the pinned product (default +1; "
            "null turns comment-to-order off).",
        }
    ),
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

_RULE_FIELDS: Schema = {
    **{
        f.name: {"type": "integer", "minimum": 0, "maximum": 100_000}
        for f in dataclass_fields(EarningRules)
        if f.name not in ("tiers", "badges")
    },
    "tiers": {
        "type": "array",
        "minItems": 1,
        "maxItems": 10,
        "description": "Lowest first; the first starts at 0 points.",
        "items": {
            "type": "object",
            "required": ["name", "min_points"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 40},
                "min_points": {"type": "integer", "minimum": 0},
            },
        },
    },
    "badges": {"type": "boolean", "description": "Award milestone badges."},
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
            "checkout_mode",
            "handoff_url",
            "claim_keyword",
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
    "MemberPoints": {
        "type": "object",
        "required": [
            "member_id",
            "balance",
            "tier",
            "rolling_points",
            "badges",
            "streak",
            "shows_attended",
            "updated_at",
        ],
        "additionalProperties": False,
        "properties": {
            "member_id": {"type": "string"},
            "balance": {
                "type": "integer",
                "minimum": 0,
                "description": "The sum of the member's ledger entries.",
            },
            "tier": {"type": "string"},
            "rolling_points": {
                "type": "integer",
                "minimum": 0,
                "description": "Points earned in the tier window (tier_window_months), net of "
                "reversals: what the tier is decided on.",
            },
            "badges": {"type": "array", "items": {"type": "string"}},
            "streak": {"type": "integer", "minimum": 0, "description": "Shows in a row."},
            "shows_attended": {"type": "integer", "minimum": 0},
            "updated_at": nullable(DATE_TIME),
        },
    },
    "LedgerEntry": {
        "type": "object",
        "required": [
            "id",
            "member_id",
            "kind",
            "reason",
            "points",
            "balance_after",
            "show_id",
            "order_id",
            "rules_version",
            "note",
            "created_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "member_id": {"type": "string"},
            "kind": {"type": "string", "enum": [k.value for k in EntryKind]},
            "reason": {"type": "string", "enum": [r.value for r in Reason]},
            "points": {"type": "integer", "description": "Signed: credits are positive."},
            "balance_after": {"type": "integer", "minimum": 0},
            "show_id": nullable(UUID),
            "order_id": nullable(UUID),
            "rules_version": nullable({"type": "integer", "minimum": 0}),
            "note": nullable({"type": "string"}),
            "created_at": DATE_TIME,
        },
    },
    "LedgerEntryPage": page_of("LedgerEntry"),
    "Redemption": {
        "type": "object",
        "required": ["points", "channel"],
        "additionalProperties": False,
        "properties": {
            "points": {"type": "integer", "minimum": 1, "maximum": MAX_POINTS},
            "channel": {"type": "string", "enum": ["pos", "eshop", "other"]},
            "reference": {
                "type": "string",
                "maxLength": 100,
                "description": "The receipt or order number at the till or shop.",
            },
        },
    },
    "Adjustment": {
        "type": "object",
        "required": ["points", "note"],
        "additionalProperties": False,
        "properties": {
            "points": {
                "type": "integer",
                "minimum": -MAX_POINTS,
                "maximum": MAX_POINTS,
                "description": "Non-zero: positive adds, negative takes (never below zero).",
            },
            "note": {"type": "string", "minLength": 1, "maxLength": 500},
        },
    },
    "LoyaltyRuleValues": {
        "type": "object",
        "required": sorted(_RULE_FIELDS),
        "additionalProperties": False,
        "properties": _RULE_FIELDS,
    },
    "LoyaltyRulesUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": _RULE_FIELDS,
        "description": "Only the rules that change; the rest keep their value.",
    },
    "ShowLoyaltyRulesUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": _RULE_FIELDS,
        "description": "The show's overrides, replacing any it had ({} removes them).",
    },
    "LoyaltyRules": {
        "type": "object",
        "required": ["version", "rules"],
        "additionalProperties": False,
        "properties": {
            "version": {
                "type": "integer",
                "minimum": 0,
                "description": "Bumped by every change (0: the defaults).",
            },
            "rules": ref("LoyaltyRuleValues"),
        },
    },
    "ShowLoyaltyRules": {
        "type": "object",
        "required": ["show_id", "version", "overrides", "rules"],
        "additionalProperties": False,
        "properties": {
            "show_id": UUID,
            "version": {"type": "integer", "minimum": 0},
            "overrides": {"type": "object"},
            "rules": {**ref("LoyaltyRuleValues"), "description": "What applies in the show."},
        },
    },
    "Cart": {
        "type": "object",
        "description": "Prices are read now: a product added from a show has that show's flash "
        "price while it lasts. The cart holds no stock; checkout reserves it.",
        "required": ["items", "total", "count"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": ref("CartLine")},
            "total": {
                **nullable(ref("Money")),
                "description": "null when the cart is empty or mixes currencies.",
            },
            "count": {"type": "integer", "minimum": 0, "description": "Units in the cart."},
        },
    },
    "CartLine": {
        "type": "object",
        "required": [
            "sku",
            "title",
            "image_url",
            "quantity",
            "unit_price",
            "compare_at_price",
            "line_total",
            "flash",
            "stock",
            "available",
            "show_id",
            "added_at",
        ],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "title": localized(TITLE_MAX),
            "image_url": nullable({"type": "string"}),
            "quantity": {"type": "integer", "minimum": 1},
            "unit_price": ref("Money"),
            "compare_at_price": nullable(ref("Money")),
            "line_total": ref("Money"),
            "flash": {"type": "boolean"},
            "stock": {"type": "integer", "minimum": 0},
            "available": {
                "type": "boolean",
                "description": "On sale with enough stock for this quantity right now.",
            },
            "show_id": {**nullable(UUID), "description": "The show it was added from."},
            "added_at": DATE_TIME,
        },
    },
    "CartItemAdd": {
        "type": "object",
        "required": ["sku"],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "quantity": {"type": "integer", "minimum": 1, "default": 1},
            "show_id": {**UUID, "description": "The show it is added from (its flash price)."},
        },
    },
    "CartItemUpdate": {
        "type": "object",
        "required": ["quantity"],
        "additionalProperties": False,
        "properties": {
            "quantity": {"type": "integer", "minimum": 1},
            "show_id": UUID,
        },
    },
    "CartCheckout": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "show_id": {
                **UUID,
                "description": "The show to credit (its flash prices apply); by default the "
                "show the latest item was added from.",
            },
        },
    },
    "HandoffCreate": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "items": {
                **{
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
                "description": "What to buy (buy now); without it, the buyer's cart.",
            },
        },
    },
    "Handoff": {
        "type": "object",
        "required": ["url", "show_id", "items"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "description": "Send the viewer here."},
            "show_id": UUID,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["sku", "quantity"],
                    "additionalProperties": False,
                    "properties": {"sku": SKU, "quantity": {"type": "integer", "minimum": 1}},
                },
            },
        },
    },
    "Claim": {
        "type": "object",
        "description": "A viewer's comment-to-order: the product went into their cart.",
        "required": [
            "id",
            "sku",
            "title",
            "author_id",
            "author_name",
            "text",
            "cart_quantity",
            "created_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "sku": SKU,
            "title": localized(TITLE_MAX),
            "author_id": {"type": "string"},
            "author_name": {"type": "string"},
            "text": {"type": "string", "description": "The chat message, as typed."},
            "cart_quantity": {
                "type": "integer",
                "minimum": 1,
                "description": "Units of the product in the viewer's cart after this claim.",
            },
            "created_at": DATE_TIME,
        },
    },
    "ClaimPage": page_of("Claim"),
    "Funnel": {
        "type": "object",
        "required": ["show_id", "products", "orders", "revenue"],
        "additionalProperties": False,
        "properties": {
            "show_id": UUID,
            "products": {"type": "array", "items": ref("FunnelProduct")},
            "orders": {"type": "integer", "minimum": 0, "description": "Placed or paid."},
            "revenue": {"type": "array", "items": ref("Money")},
        },
    },
    "FunnelProduct": {
        "type": "object",
        "required": [
            "sku",
            "title",
            "card_shown",
            "card_opened",
            "added_to_cart",
            "checkout_started",
            "orders",
            "units",
            "revenue",
        ],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "title": {"type": "object"},
            "card_shown": {
                "type": "integer",
                "minimum": 0,
                "description": "Members who saw the card.",
            },
            "card_opened": {
                "type": "integer",
                "minimum": 0,
                "description": "Members who opened it.",
            },
            "added_to_cart": {"type": "integer", "minimum": 0},
            "checkout_started": {"type": "integer", "minimum": 0},
            "orders": {"type": "integer", "minimum": 0},
            "units": {"type": "integer", "minimum": 0},
            "revenue": nullable(ref("Money")),
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
    # --- webhooks (docs/webhooks.md) ---
    "WebhookEndpoint": {
        "type": "object",
        "description": "Where signed order events go. The secret is never shown again.",
        "required": [
            "id",
            "url",
            "event_types",
            "description",
            "enabled",
            "disabled_reason",
            "created_at",
            "updated_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "url": {"type": "string"},
            "event_types": {
                **nullable({"type": "array", "items": {"enum": list(WEBHOOK_EVENT_TYPES)}}),
                "description": "The events it receives; null: every event.",
            },
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "disabled_reason": {
                **nullable({"type": "string"}),
                "description": "Why it is disabled, e.g. it answered 410 Gone.",
            },
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        },
    },
    "WebhookEndpointCreate": {
        "type": "object",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "maxLength": WEBHOOK_URL_MAX,
                "description": "An absolute http:// or https:// URL (https in production).",
            },
            "event_types": {
                **nullable(
                    {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": list(WEBHOOK_EVENT_TYPES)},
                    }
                ),
                "description": "The events to receive, each once; null or absent: every event.",
            },
            "description": {"type": "string", "maxLength": WEBHOOK_DESCRIPTION_MAX},
        },
    },
    "WebhookEndpointUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "url": {"$ref": "#/components/schemas/WebhookEndpointCreate/properties/url"},
            "event_types": {
                "$ref": "#/components/schemas/WebhookEndpointCreate/properties/event_types"
            },
            "description": {
                "$ref": "#/components/schemas/WebhookEndpointCreate/properties/description"
            },
            "enabled": {
                "type": "boolean",
                "description": "false stops deliveries (pending ones wait); true resumes them.",
            },
        },
    },
    "WebhookEndpointCreated": {
        "type": "object",
        "required": ["endpoint", "secret"],
        "additionalProperties": False,
        "properties": {
            "endpoint": ref("WebhookEndpoint"),
            "secret": {
                "type": "string",
                "pattern": "^whsec_[A-Za-z0-9+/]+=*$",
                "description": "The signing secret (whsec_ + base64); shown only this once.",
            },
        },
    },
    "WebhookEndpointList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {"items": {"type": "array", "items": ref("WebhookEndpoint")}},
    },
    "WebhookDelivery": {
        "type": "object",
        "description": "One event to one endpoint.",
        "required": [
            "id",
            "endpoint_id",
            "message_id",
            "event_type",
            "status",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "last_attempt_at",
            "succeeded_at",
            "created_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "endpoint_id": UUID,
            "message_id": {"type": "string", "description": "The webhook-id header."},
            "event_type": {"type": "string", "enum": list(WEBHOOK_EVENT_TYPES)},
            "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
            "attempts": {"type": "integer", "minimum": 0},
            "next_attempt_at": {
                **nullable(DATE_TIME),
                "description": "While pending: when it is (next) due.",
            },
            "last_status_code": nullable({"type": "integer"}),
            "last_error": nullable({"type": "string"}),
            "last_attempt_at": nullable(DATE_TIME),
            "succeeded_at": nullable(DATE_TIME),
            "created_at": DATE_TIME,
        },
    },
    "WebhookDeliveryPage": page_of("WebhookDelivery"),
    "WebhookDeliveryDetail": {
        "type": "object",
        "required": ["delivery", "payload", "attempt_log"],
        "additionalProperties": False,
        "properties": {
            "delivery": ref("WebhookDelivery"),
            "payload": {
                "type": "object",
                "description": "The body sent: {type, timestamp, data}.",
                "required": ["type", "timestamp", "data"],
            },
            "attempt_log": {
                "type": "array",
                "description": "Every attempt, oldest first.",
                "items": {
                    "type": "object",
                    "required": [
                        "attempt",
                        "at",
                        "status_code",
                        "duration_ms",
                        "error",
                        "response_body",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "attempt": {"type": "integer", "minimum": 1},
                        "at": DATE_TIME,
                        "status_code": nullable({"type": "integer"}),
                        "duration_ms": {"type": "integer", "minimum": 0},
                        "error": nullable({"type": "string"}),
                        "response_body": {
                            **nullable({"type": "string"}),
                            "description": "The start of the answer (up to 1000 characters).",
                        },
                    },
                },
            },
        },
    },
    "ShowAnalytics": {
        "type": "object",
        "description": "A show in numbers (docs/api.md, Show analytics and exports). Watch "
        "time, chat, questions and reactions are as of the last engagement write (every "
        "SHOWROOM_ENGAGEMENT_FLUSH_SECONDS); sales are read from the orders now.",
        "required": [
            "show_id",
            "title",
            "state",
            "currency",
            "started_at",
            "ended_at",
            "viewers",
            "watch_time",
            "retention",
            "chat",
            "questions",
            "reactions",
            "sales",
            "conversion",
            "points_earned",
        ],
        "additionalProperties": False,
        "properties": {
            "show_id": UUID,
            "title": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in ShowState]},
            "currency": CURRENCY,
            "started_at": nullable(DATE_TIME),
            "ended_at": nullable(DATE_TIME),
            "viewers": {
                "type": "object",
                "required": ["unique", "members", "guests", "peak_concurrent"],
                "additionalProperties": False,
                "properties": {
                    "unique": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Distinct members and guests who joined the live room.",
                    },
                    "members": {"type": "integer", "minimum": 0},
                    "guests": {"type": "integer", "minimum": 0},
                    "peak_concurrent": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Most members watching at once, across every process.",
                    },
                },
            },
            "watch_time": {
                "type": "object",
                "required": [
                    "total_seconds",
                    "watchers",
                    "average_seconds_per_watcher",
                    "average_seconds_per_viewer",
                ],
                "additionalProperties": False,
                "properties": {
                    "total_seconds": {
                        "type": "number",
                        "minimum": 0,
                        "description": "Watch time of every viewer added up (to the millisecond).",
                    },
                    "watchers": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Viewers with any watch time.",
                    },
                    "average_seconds_per_watcher": {
                        "type": "number",
                        "minimum": 0,
                        "description": "total_seconds / watchers (0.1 s; 0 with no watchers).",
                    },
                    "average_seconds_per_viewer": {
                        "type": "number",
                        "minimum": 0,
                        "description": "total_seconds / viewers.unique (0.1 s; 0 with none).",
                    },
                },
            },
            "retention": {
                "type": "array",
                "description": "Viewers watching in each minute since the show started, as "
                "stored (minutes with nothing recorded are absent), in order.",
                "items": {
                    "type": "object",
                    "required": ["minute", "viewers"],
                    "additionalProperties": False,
                    "properties": {
                        "minute": {"type": "integer", "minimum": 0},
                        "viewers": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "chat": {
                "type": "object",
                "required": ["messages", "deleted"],
                "additionalProperties": False,
                "properties": {
                    "messages": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Messages in the chat (hosts' too), not counting deleted.",
                    },
                    "deleted": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Messages a moderator deleted.",
                    },
                },
            },
            "questions": {
                "type": "object",
                "required": ["asked", "answered"],
                "additionalProperties": False,
                "properties": {
                    "asked": {"type": "integer", "minimum": 0},
                    "answered": {"type": "integer", "minimum": 0},
                },
            },
            "reactions": {
                "type": "object",
                "required": ["total", "by_kind"],
                "additionalProperties": False,
                "properties": {
                    "total": {"type": "integer", "minimum": 0},
                    "by_kind": {
                        "type": "object",
                        "additionalProperties": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "sales": {
                "type": "object",
                "required": [
                    "impressions",
                    "clicks",
                    "added_to_cart",
                    "checkouts_started",
                    "orders",
                    "units",
                    "buyers",
                    "revenue",
                ],
                "additionalProperties": False,
                "properties": {
                    "impressions": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Product cards shown (once per member and product).",
                    },
                    "clicks": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Product cards opened (once per member and product).",
                    },
                    "added_to_cart": {"type": "integer", "minimum": 0},
                    "checkouts_started": {"type": "integer", "minimum": 0},
                    "orders": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Orders credited to the show, placed or paid.",
                    },
                    "units": {"type": "integer", "minimum": 0},
                    "buyers": {
                        "type": "integer",
                        "minimum": 0,
                        "description": "Distinct buyers of those orders.",
                    },
                    "revenue": {
                        "type": "array",
                        "items": ref("Money"),
                        "description": "Per currency, by currency code.",
                    },
                },
            },
            "conversion": {
                "type": "object",
                "required": ["orders_per_viewer", "buyers_per_viewer"],
                "additionalProperties": False,
                "properties": {
                    "orders_per_viewer": {
                        "type": "number",
                        "minimum": 0,
                        "description": "sales.orders / viewers.unique, 4 places; 0 with no "
                        "viewers.",
                    },
                    "buyers_per_viewer": {
                        "type": "number",
                        "minimum": 0,
                        "description": "sales.buyers / viewers.unique, 4 places.",
                    },
                },
            },
            "points_earned": {
                "type": "integer",
                "minimum": 0,
                "description": "Loyalty points members earned in the show (ledger earn entries).",
            },
        },
    },
    "ViewerEngagement": {
        "type": "object",
        "description": "What one viewer did in one show.",
        "required": [
            "member_id",
            "viewer_kind",
            "watched_seconds",
            "chats",
            "questions",
            "answered",
            "reactions",
            "referrals",
            "referred_by",
            "points",
            "first_seen",
            "last_seen",
        ],
        "additionalProperties": False,
        "properties": {
            "member_id": {
                **nullable({"type": "string"}),
                "description": "The brand's member id; null for a guest.",
            },
            "viewer_kind": {"type": "string", "enum": ["member", "guest"]},
            "watched_seconds": {"type": "number", "minimum": 0},
            "chats": {"type": "integer", "minimum": 0},
            "questions": {"type": "integer", "minimum": 0},
            "answered": {
                "type": "integer",
                "minimum": 0,
                "description": "Their questions the host answered.",
            },
            "reactions": {"type": "integer", "minimum": 0},
            "referrals": {
                "type": "integer",
                "minimum": 0,
                "description": "Members who joined through their share link.",
            },
            "referred_by": {
                **nullable({"type": "string"}),
                "description": "The member id whose share link brought them.",
            },
            "points": {"type": "integer", "minimum": 0, "description": "Earned in this show."},
            "first_seen": DATE_TIME,
            "last_seen": DATE_TIME,
        },
    },
    "ViewerEngagementPage": page_of("ViewerEngagement"),
    "MemberEngagement": {
        "type": "object",
        "required": ["member_id", "items"],
        "additionalProperties": False,
        "properties": {
            "member_id": {"type": "string", "description": "The brand's member id."},
            "items": {
                "type": "array",
                "description": "One per show the member attended, the latest first.",
                "items": {
                    "type": "object",
                    "required": [
                        "show_id",
                        "show_title",
                        "show_state",
                        "show_started_at",
                        "watched_seconds",
                        "chats",
                        "questions",
                        "answered",
                        "reactions",
                        "referrals",
                        "points",
                        "first_seen",
                        "last_seen",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "show_id": UUID,
                        "show_title": {"type": "string"},
                        "show_state": {"type": "string", "enum": [s.value for s in ShowState]},
                        "show_started_at": nullable(DATE_TIME),
                        "watched_seconds": {"type": "number", "minimum": 0},
                        "chats": {"type": "integer", "minimum": 0},
                        "questions": {"type": "integer", "minimum": 0},
                        "answered": {"type": "integer", "minimum": 0},
                        "reactions": {"type": "integer", "minimum": 0},
                        "referrals": {"type": "integer", "minimum": 0},
                        "points": {"type": "integer", "minimum": 0},
                        "first_seen": DATE_TIME,
                        "last_seen": DATE_TIME,
                    },
                },
            },
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
    "Replay": {
        "type": "object",
        "description": "The show's HLS: live while the show is, the replay once it ended.",
        "required": [
            "status",
            "ready",
            "playlist_url",
            "segments",
            "duration_s",
            "started_at",
            "poster_url",
            "moments",
        ],
        "additionalProperties": False,
        "properties": {
            "status": {
                "type": "string",
                "enum": ["none", "live", "ready"],
                "description": "none: no video yet; live: the playlist grows while the host "
                "publishes; ready: the show ended and the playlist is the replay (VOD).",
            },
            "ready": {"type": "boolean", "description": "Whether the replay can be played."},
            "playlist_url": nullable(
                {"type": "string", "description": "The media playlist, relative to the server."}
            ),
            "segments": {"type": "integer", "minimum": 0},
            "duration_s": {"type": "number", "minimum": 0, "description": "Sum of segments."},
            "started_at": nullable(
                {
                    **DATE_TIME,
                    "description": "Wall-clock time of the first segment's first frame (its "
                    "EXT-X-PROGRAM-DATE-TIME).",
                }
            ),
            "poster_url": nullable(
                {
                    "type": "string",
                    "description": "A JPEG of the replay for the player's poster (the first "
                    "product's moment, or a tenth of the way in), once the replay is ready.",
                }
            ),
            "moments": {
                "type": "array",
                "items": ref("ProductMoment"),
                "description": "Every product pinned in the show, in pin order, on the video's "
                "timeline: chapters, and the cards a shoppable replay shows at their moments.",
            },
        },
    },
    "ProductMoment": {
        "type": "object",
        "description": "A product's card on the video's timeline: from at_s to until_s (null: "
        "to the end), in seconds from the video's start. A replay skips the times the host "
        "was away, so these follow the video, not the wall clock. Prices are today's.",
        "required": [
            "sku",
            "title",
            "image_url",
            "price",
            "compare_at_price",
            "stock",
            "at_s",
            "until_s",
        ],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "title": localized(TITLE_MAX),
            "image_url": nullable({"type": "string"}),
            "price": ref("Money"),
            "compare_at_price": nullable(ref("Money")),
            "stock": {"type": "integer", "minimum": 0},
            "at_s": {"type": "number", "minimum": 0},
            "until_s": nullable({"type": "number", "minimum": 0}),
        },
    },
    "ProductVideoList": {
        "type": "object",
        "required": ["sku", "items"],
        "additionalProperties": False,
        "properties": {
            "sku": SKU,
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "kind",
                        "show_id",
                        "title",
                        "locale",
                        "playlist_url",
                        "video_url",
                        "poster_url",
                        "watch_url",
                        "duration_s",
                        "started_at",
                        "viewers",
                        "peak_viewers",
                        "moments",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "kind": {
                            "type": "string",
                            "enum": ["replay", "clip", "upload"],
                            "description": "replay: the whole show (HLS); clip: a clip of the "
                            "show (MP4), automatic or cut by staff (then with video_id), after "
                            "its replay; upload: a video staff uploaded (MP4), no show.",
                        },
                        "video_id": {
                            **UUID,
                            "description": "Uploads and clips cut by staff: the video's id.",
                        },
                        "show_id": nullable(UUID),
                        "title": {"type": "string"},
                        "locale": nullable({"type": "string"}),
                        "playlist_url": nullable(
                            {
                                "type": "string",
                                "description": "The HLS playlist (VOD), relative to the server; "
                                "null for a clip.",
                            }
                        ),
                        "video_url": nullable(
                            {
                                "type": "string",
                                "description": "The clip's MP4, relative to the server; null "
                                "for a replay.",
                            }
                        ),
                        "poster_url": nullable(
                            {
                                "type": "string",
                                "description": "A JPEG of the video (a frame at the product's "
                                "moment for a clip), relative to the server.",
                            }
                        ),
                        "watch_url": nullable(
                            {
                                "type": "string",
                                "description": "The watch page, starting at the product's "
                                "first moment; null for an upload (no show).",
                            }
                        ),
                        "duration_s": {"type": "number", "minimum": 0},
                        "started_at": nullable(DATE_TIME),
                        "viewers": {"type": "integer", "minimum": 0},
                        "peak_viewers": {"type": "integer", "minimum": 0},
                        "moments": {
                            "type": "array",
                            "items": ref("ProductMoment"),
                            "description": "This product's moments, in order.",
                        },
                    },
                },
            },
        },
    },
    # --- staff videos: uploads and clips cut by hand (server/http/videos.py) ------------------
    "VideoTag": {
        "type": "object",
        "description": "A product shown in the video, at seconds from the video's start.",
        "required": ["sku", "at_s"],
        "additionalProperties": False,
        "properties": {"sku": SKU, "at_s": {"type": "number", "minimum": 0, "maximum": 86400}},
    },
    "VideoTagsUpdate": {
        "type": "object",
        "required": ["tags"],
        "additionalProperties": False,
        "properties": {
            "tags": {
                "type": "array",
                "maxItems": 50,
                "items": ref("VideoTag"),
                "description": "Every tag of the video (replaces the ones it has). SKUs must "
                "be active products.",
            }
        },
    },
    "ShowClipCreate": {
        "type": "object",
        "required": ["start_s", "end_s"],
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "start_s": {
                "type": "number",
                "minimum": 0,
                "description": "Seconds on the replay's timeline (as GET .../replay reports "
                "moments). The clip starts on the keyframe at or before it.",
            },
            "end_s": {"type": "number", "exclusiveMinimum": 0},
            "tags": {
                "type": "array",
                "maxItems": 50,
                "items": {
                    "type": "object",
                    "required": ["sku"],
                    "additionalProperties": False,
                    "properties": {
                        "sku": SKU,
                        "at_s": {
                            "type": "number",
                            "minimum": 0,
                            "description": "Seconds from start_s. Default: the product's "
                            "moment inside the range, else 0.",
                        },
                    },
                },
            },
        },
    },
    "Video": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "title",
            "show_id",
            "state",
            "progress_pct",
            "error",
            "start_s",
            "duration_s",
            "size_bytes",
            "transcoded",
            "video_url",
            "poster_url",
            "tags",
            "created_at",
            "updated_at",
        ],
        "additionalProperties": False,
        "properties": {
            "id": UUID,
            "kind": {"type": "string", "enum": ["upload", "clip"]},
            "title": {"type": "string"},
            "show_id": {**nullable(UUID), "description": "The show a clip is cut from."},
            "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
            "progress_pct": {"type": "integer", "minimum": 0, "maximum": 100},
            "error": {
                **nullable({"type": "string"}),
                "description": "Why the job failed (ffmpeg's last lines when it ran).",
            },
            "start_s": {
                **nullable({"type": "number", "minimum": 0}),
                "description": "A clip's real start on the replay's timeline (a keyframe).",
            },
            "duration_s": {
                **nullable({"type": "number", "minimum": 0}),
                "description": "The made video's length; a queued clip's planned length; "
                "null for an upload not made yet.",
            },
            "size_bytes": nullable({"type": "integer", "minimum": 0}),
            "transcoded": {
                **nullable({"type": "boolean"}),
                "description": "true: encoded to H.264/AAC; false: streams copied as they were.",
            },
            "video_url": nullable({"type": "string"}),
            "poster_url": nullable({"type": "string"}),
            "tags": {"type": "array", "items": ref("VideoTag")},
            "created_at": DATE_TIME,
            "updated_at": DATE_TIME,
        },
    },
    "VideoPage": page_of("Video"),
    "ClipList": {
        "type": "object",
        "required": ["items"],
        "additionalProperties": False,
        "properties": {
            "items": {
                "type": "array",
                "description": "In the order queued.",
                "items": {
                    "type": "object",
                    "required": [
                        "id",
                        "sku",
                        "state",
                        "progress_pct",
                        "start_s",
                        "duration_s",
                        "error",
                        "url",
                        "created_at",
                        "updated_at",
                    ],
                    "additionalProperties": False,
                    "properties": {
                        "id": UUID,
                        "sku": SKU,
                        "state": {
                            "type": "string",
                            "enum": ["queued", "running", "done", "failed"],
                        },
                        "progress_pct": {"type": "integer", "minimum": 0, "maximum": 100},
                        "start_s": {
                            "type": "number",
                            "minimum": 0,
                            "description": "Where the clip starts in the replay: the start of "
                            "the segment (a keyframe) 5 s before the product's moment falls in.",
                        },
                        "duration_s": {"type": "number", "exclusiveMinimum": 0},
                        "error": nullable(
                            {
                                "type": "string",
                                "description": "Why it failed: the last lines ffmpeg wrote.",
                            }
                        ),
                        "url": nullable(
                            {
                                "type": "string",
                                "description": "The MP4 (once made), relative to the server.",
                            }
                        ),
                        "created_at": DATE_TIME,
                        "updated_at": DATE_TIME,
                    },
                },
            }
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
        "required": ["guest_id", "token"],
        "additionalProperties": False,
        "properties": {
            "guest_id": {"type": "string"},
            "token": {
                "type": "string",
                "description": "The same guest as a bearer token (`shr_guest_…`), for a page "
                "where the cookie cannot go, such as an embed on another site.",
            },
        },
    },
}
