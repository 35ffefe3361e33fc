"""The route table: every HTTP operation, who may call it, and what it takes and answers."""

from __future__ import annotations

from server.domain.catalog import ProductStatus
from server.domain.engagement import QuestionState
from server.domain.shows import ShowState
from server.http import catalog, identity, media, orders, pins, shows, system
from server.http.contract import ADMIN, ANYONE, BUYERS, STAFF, Operation, Param

SDP_BODY = {
    "application/sdp": {"type": "string", "description": "An SDP offer (RFC 8866), at most 64 KiB."}
}
_WHIP_WHEP_ERRORS = {
    409: ("The show is not live", "Problem"),
    413: ("The offer is over 64 KiB", "Problem"),
    415: ("The body is not application/sdp", "Problem"),
    422: (
        "The offer is malformed, has no audio or video, or only codecs the relay cannot "
        "carry (the detail says which)",
        "Problem",
    ),
}

LIMIT = Param(
    "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "Page size."
)
OFFSET = Param("offset", {"type": "integer", "minimum": 0, "default": 0}, "Items to skip.")


def _ok(schema: str, description: str = "OK") -> dict[int, tuple[str, str | None]]:
    return {200: (description, schema)}


OPERATIONS: list[Operation] = [
    # --- operations -------------------------------------------------------------------------
    Operation(
        "GET",
        "/healthz",
        system.healthz,
        "getHealth",
        "Check the process is up",
        "system",
        _ok("Health"),
    ),
    Operation(
        "GET",
        "/readyz",
        system.readyz,
        "getReadiness",
        "Check backing services",
        "system",
        {200: ("Ready", "Readiness"), 503: ("A backing service is down", "Readiness")},
    ),
    Operation(
        "GET",
        "/metrics",
        system.metrics,
        "getMetrics",
        "Read Prometheus metrics",
        "system",
        {200: ("Prometheus text exposition", None)},
        response_type="text/plain",
    ),
    Operation(
        "GET",
        "/api/openapi.json",
        system.openapi,
        "getOpenApi",
        "Read this document",
        "system",
        {200: ("OpenAPI 3.1", None)},
    ),
    # --- shows ------------------------------------------------------------------------------
    Operation(
        "POST",
        "/api/v1/shows",
        shows.create_show,
        "createShow",
        "Schedule a show",
        "shows",
        {201: ("Scheduled", "Show")},
        roles=ADMIN,
        body="ShowCreate",
    ),
    Operation(
        "GET",
        "/api/v1/shows",
        shows.list_shows,
        "listShows",
        "List shows",
        "shows",
        _ok("ShowPage"),
        roles=ANYONE,
        query=(
            Param(
                "state",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": [s.value for s in ShowState]},
                },
                "Only shows in these states.",
                many=True,
            ),
            LIMIT,
            OFFSET,
        ),
        description="Soonest scheduled start first. A host token for one show lists that show only.",
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}",
        shows.get_show,
        "getShow",
        "Read a show",
        "shows",
        _ok("Show"),
        roles=ANYONE,
    ),
    Operation(
        "PATCH",
        "/api/v1/shows/{show_id}",
        shows.update_show,
        "updateShow",
        "Edit a show",
        "shows",
        {**_ok("Show"), 409: ("The field cannot change in this state", "Problem")},
        roles=ADMIN,
        body="ShowUpdate",
        description="Schedule, host, locale and currency change only while scheduled; "
        "title and description until the show ends.",
    ),
    Operation(
        "POST",
        "/api/v1/shows/{show_id}/start",
        shows.start_show,
        "startShow",
        "Go live",
        "shows",
        {**_ok("Show"), 409: ("The show is not scheduled", "Problem")},
        roles=STAFF,
        host_scoped=True,
    ),
    Operation(
        "POST",
        "/api/v1/shows/{show_id}/end",
        shows.end_show,
        "endShow",
        "End a live show",
        "shows",
        {**_ok("Show"), 409: ("The show is not live", "Problem")},
        roles=STAFF,
        host_scoped=True,
    ),
    Operation(
        "POST",
        "/api/v1/shows/{show_id}/cancel",
        shows.cancel_show,
        "cancelShow",
        "Cancel a scheduled show",
        "shows",
        {**_ok("Show"), 409: ("The show is not scheduled", "Problem")},
        roles=ADMIN,
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}/chat",
        shows.list_chat,
        "listChat",
        "Read chat history",
        "shows",
        _ok("ChatPage"),
        roles=ANYONE,
        query=(
            Param("before", {"type": "integer", "minimum": 1}, "Messages older than this seq."),
            Param(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                "Page size.",
            ),
        ),
        description="Oldest first. Page back with before=next_before until it is null.",
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}/questions",
        shows.list_questions,
        "listQuestions",
        "Read the show's questions",
        "shows",
        _ok("QuestionList"),
        roles=ANYONE,
        query=(
            Param(
                "state",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": [s.value for s in QuestionState]},
                },
                "Only questions in these states.",
                many=True,
            ),
        ),
        description="In queue order: most votes first, then the oldest. Kept after the show for the replay.",
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}/pins",
        pins.list_pins,
        "listPins",
        "Read the show's pinned products",
        "shows",
        _ok("PinList"),
        description="The product cards viewers see over the video, in the order pinned.",
    ),
    Operation(
        "POST",
        "/api/v1/shows/{show_id}/pins",
        pins.pin,
        "pinProduct",
        "Pin a product",
        "shows",
        {
            **_ok("PinList", "Pinned (or its flash price changed); the room was told"),
            409: (
                "The show is closed, the product is not active, or the most products are "
                "pinned already",
                "Problem",
            ),
        },
        roles=STAFF,
        host_scoped=True,
        body="PinCreate",
        description="Up to SHOWROOM_MAX_PINS products at once (3 by default). Pinning a product "
        "already pinned changes its flash price. Every viewer gets the new cards in the next "
        "live-room frame (products.pinned).",
    ),
    Operation(
        "DELETE",
        "/api/v1/shows/{show_id}/pins/{sku}",
        pins.unpin,
        "unpinProduct",
        "Unpin a product",
        "shows",
        {**_ok("PinList", "Unpinned; the room was told"), 409: ("The show is closed", "Problem")},
        roles=STAFF,
        host_scoped=True,
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}/stream",
        media.get_stream,
        "getStream",
        "Read the show's stream health",
        "media",
        _ok("StreamHealth"),
        description="Publishing status (including host_reconnecting), bitrate, frame rate, "
        "resolution, keyframe interval and WebRTC viewers, as relayed by this server process.",
    ),
    Operation(
        "GET",
        "/api/v1/shows/{show_id}/recordings",
        media.list_recordings,
        "listRecordings",
        "List the show's recordings",
        "media",
        _ok("RecordingList"),
        roles=STAFF,
        host_scoped=True,
        description="Registered when the show ends: the host's stream as relayed, not re-encoded.",
    ),
    # --- live media: WHIP (RFC 9725) and WHEP ------------------------------------------------
    Operation(
        "POST",
        "/whip/{show_id}",
        media.publish,
        "publishWhip",
        "Publish the show's video (WHIP)",
        "media",
        {
            201: ("The SDP answer; Location is the session to DELETE", None),
            **_WHIP_WHEP_ERRORS,
            409: (
                "The show is not live, or another publisher is sending to it",
                "Problem",
            ),
        },
        roles=STAFF,
        host_scoped=True,
        raw_body=SDP_BODY,
        response_type="application/sdp",
        description="VP8 or H.264 (packetization-mode 1, any profile) video and Opus audio, "
        "relayed to viewers without transcoding and recorded. A host that dropped may "
        "publish again while the show reports host_reconnecting; the new session replaces "
        "the stale one and viewers resume. A republish must use the show's codecs.",
    ),
    Operation(
        "OPTIONS",
        "/whip/{show_id}",
        media.whip_options,
        "optionsWhip",
        "CORS preflight for WHIP",
        "media",
        {204: ("Allowed methods and headers", None)},
    ),
    Operation(
        "DELETE",
        "/whip/{show_id}/{session_id}",
        media.end_publish,
        "endWhip",
        "Stop publishing (WHIP)",
        "media",
        {200: ("Ended; the show stays live and reports stopped", None)},
        roles=STAFF,
        host_scoped=True,
        empty=True,
    ),
    Operation(
        "OPTIONS",
        "/whip/{show_id}/{session_id}",
        media.session_options,
        "optionsWhipSession",
        "CORS preflight for a WHIP session",
        "media",
        {204: ("Allowed methods and headers", None)},
    ),
    Operation(
        "POST",
        "/whep/{show_id}",
        media.watch,
        "watchWhep",
        "Watch the show (WHEP)",
        "media",
        {
            201: ("The SDP answer; Location is the session to DELETE", None),
            **_WHIP_WHEP_ERRORS,
            503: ("The host has not published yet (see Retry-After)", "Problem"),
        },
        raw_body=SDP_BODY,
        response_type="application/sdp",
        description="The offer must accept the show's codecs (GET .../stream says which).",
    ),
    Operation(
        "OPTIONS",
        "/whep/{show_id}",
        media.whep_options,
        "optionsWhep",
        "CORS preflight for WHEP",
        "media",
        {204: ("Allowed methods and headers", None)},
    ),
    Operation(
        "DELETE",
        "/whep/{show_id}/{session_id}",
        media.end_watch,
        "endWhep",
        "Stop watching (WHEP)",
        "media",
        {200: ("Ended", None)},
        empty=True,
    ),
    Operation(
        "OPTIONS",
        "/whep/{show_id}/{session_id}",
        media.session_options,
        "optionsWhepSession",
        "CORS preflight for a WHEP session",
        "media",
        {204: ("Allowed methods and headers", None)},
    ),
    # --- orders -----------------------------------------------------------------------------
    Operation(
        "POST",
        "/api/v1/checkouts",
        orders.create_checkout,
        "createCheckout",
        "Check out (reserve the stock)",
        "orders",
        {
            201: ("Reserved; confirm before reserved_until", "Order"),
            200: ("The order this Idempotency-Key already made", "Order"),
            404: ("No such product for sale, or no such show", "Problem"),
            409: ("A product is sold out (errors name the line); nothing was reserved", "Problem"),
        },
        roles=BUYERS,
        body="CheckoutCreate",
        description="Reserves every line or none. Prices come from the catalog, or the show's "
        "flash price for a product pinned with one; a price sent by the client is never "
        "used. Send an Idempotency-Key header (1-255 characters) so a repeated request "
        "answers with the first order instead of making a second one. Quantities are "
        "limited to SHOWROOM_MAX_QUANTITY.",
    ),
    Operation(
        "GET",
        "/api/v1/orders/{order_id}",
        orders.get_order,
        "getOrder",
        "Read an order",
        "orders",
        _ok("Order"),
        roles=frozenset(BUYERS | ADMIN),
        description="Its buyer or an admin; to anyone else it does not exist (404).",
    ),
    Operation(
        "POST",
        "/api/v1/orders/{order_id}/confirm",
        orders.confirm_order,
        "confirmOrder",
        "Confirm an order",
        "orders",
        {
            **_ok("Order", "Placed: a sale"),
            409: ("The reservation expired, or the order is no longer reserved", "Problem"),
        },
        roles=BUYERS,
        body="OrderConfirm",
        description="The buyer gives contact and delivery details and a payment method "
        "(pay later or cash on delivery: no card data reaches Showroom).",
    ),
    Operation(
        "GET",
        "/api/v1/orders",
        orders.list_orders,
        "listOrders",
        "List orders",
        "orders",
        _ok("OrderPage"),
        roles=ADMIN,
        query=(
            Param(
                "status",
                {
                    "type": "array",
                    "items": {
                        "type": "string",
                        "enum": ["reserved", "placed", "paid", "cancelled", "expired"],
                    },
                },
                "Only orders in these states.",
                many=True,
            ),
            Param("show_id", {"type": "string", "format": "uuid"}, "Only orders from this show."),
            LIMIT,
            OFFSET,
        ),
        description="Newest first.",
    ),
    Operation(
        "POST",
        "/api/v1/orders/{order_id}/cancel",
        orders.cancel_order,
        "cancelOrder",
        "Cancel an order",
        "orders",
        {
            **_ok("Order", "Cancelled; its units are back in stock"),
            409: ("The order is paid, expired or cancelled already", "Problem"),
        },
        roles=ADMIN,
    ),
    Operation(
        "POST",
        "/api/v1/orders/{order_id}/mark-paid",
        orders.mark_order_paid,
        "markOrderPaid",
        "Mark an order paid",
        "orders",
        {
            **_ok("Order", "Paid"),
            409: ("The order is not placed (reserved, cancelled, expired or paid)", "Problem"),
        },
        roles=ADMIN,
        description="For pay-later and cash-on-delivery orders, once the brand has the money.",
    ),
    # --- catalog ----------------------------------------------------------------------------
    Operation(
        "POST",
        "/api/v1/products",
        catalog.create_product,
        "createProduct",
        "Create a product",
        "catalog",
        {201: ("Created", "Product"), 409: ("The SKU exists", "Problem")},
        roles=ADMIN,
        body="ProductCreate",
    ),
    Operation(
        "GET",
        "/api/v1/products",
        catalog.list_products,
        "listProducts",
        "List products",
        "catalog",
        _ok("ProductPage"),
        roles=ANYONE,
        query=(
            Param(
                "q",
                {"type": "string", "minLength": 1, "maxLength": 100},
                "Search SKU and titles in every locale (case-insensitive).",
            ),
            Param(
                "status",
                {
                    "type": "array",
                    "items": {"type": "string", "enum": [s.value for s in ProductStatus]},
                },
                "Only these statuses (staff only; others see active products).",
                many=True,
            ),
            LIMIT,
            OFFSET,
        ),
        description="Ordered by SKU. Deleted products never appear.",
    ),
    Operation(
        "POST",
        "/api/v1/products/import",
        catalog.import_products,
        "importProducts",
        "Import products",
        "catalog",
        {
            200: ("Imported (or checked, with dry_run)", "ImportReport"),
            422: ("Rows have errors; nothing was written", "Problem"),
            409: ("A concurrent change to the same SKUs; nothing was written", "Problem"),
        },
        roles=ADMIN,
        query=(
            Param(
                "valid_only",
                {"type": "boolean", "default": False},
                "Import the valid rows even when others have errors.",
            ),
            Param(
                "dry_run",
                {"type": "boolean", "default": False},
                "Check the file and report, writing nothing.",
            ),
        ),
        raw_body={
            "text/csv": {
                "type": "string",
                "description": "Columns: sku, title_zh_hk, "
                "title_zh_cn, title_en, description_zh_hk, description_zh_cn, "
                "description_en, price (major units, e.g. 199.00), "
                "compare_at_price, currency, image_url, stock, status",
            },
            "application/json": {
                "description": 'An array of products, or {"products": [...]}.',
                "anyOf": [
                    {"type": "array", "items": {"$ref": "#/components/schemas/ProductCreate"}},
                    {
                        "type": "object",
                        "required": ["products"],
                        "properties": {
                            "products": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/ProductCreate"},
                            }
                        },
                    },
                ],
            },
        },
        description="Creates new SKUs and replaces existing ones (stock included). A file "
        "with any error writes nothing unless valid_only=true.",
    ),
    Operation(
        "GET",
        "/api/v1/products/{sku}",
        catalog.get_product,
        "getProduct",
        "Read a product",
        "catalog",
        _ok("Product"),
        roles=ANYONE,
    ),
    Operation(
        "PATCH",
        "/api/v1/products/{sku}",
        catalog.update_product,
        "updateProduct",
        "Edit a product",
        "catalog",
        _ok("Product"),
        roles=ADMIN,
        body="ProductUpdate",
    ),
    Operation(
        "DELETE",
        "/api/v1/products/{sku}",
        catalog.delete_product,
        "deleteProduct",
        "Delete a product",
        "catalog",
        {204: ("Deleted (soft: history keeps it)", None)},
        roles=ADMIN,
    ),
    Operation(
        "POST",
        "/api/v1/products/{sku}/stock",
        catalog.adjust_stock,
        "adjustStock",
        "Adjust stock",
        "catalog",
        {**_ok("Product"), 409: ("Stock would go below zero", "Problem")},
        roles=ADMIN,
        body="StockAdjustment",
    ),
    # --- identity ---------------------------------------------------------------------------
    Operation(
        "POST",
        "/api/v1/api-keys",
        identity.create_api_key,
        "createApiKey",
        "Create an API key or host token",
        "identity",
        {201: ("Created", "ApiKeyCreated")},
        roles=ADMIN,
        body="ApiKeyCreate",
    ),
    Operation(
        "GET",
        "/api/v1/api-keys",
        identity.list_api_keys,
        "listApiKeys",
        "List API keys",
        "identity",
        _ok("ApiKeyList"),
        roles=ADMIN,
    ),
    Operation(
        "DELETE",
        "/api/v1/api-keys/{key_id}",
        identity.revoke_api_key,
        "revokeApiKey",
        "Revoke an API key",
        "identity",
        {204: ("Revoked", None)},
        roles=ADMIN,
    ),
    Operation(
        "POST",
        "/api/v1/guest-session",
        identity.start_guest_session,
        "startGuestSession",
        "Start a guest session",
        "identity",
        {
            200: ("The guest cookie sent is valid", "GuestSession"),
            201: ("A new guest cookie is set", "GuestSession"),
        },
    ),
    Operation(
        "GET",
        "/api/v1/me",
        identity.who_am_i,
        "getMe",
        "Identify the caller",
        "identity",
        _ok("Me"),
        roles=ANYONE,
        description="For a viewer token, also registers the member on first sight.",
    ),
    Operation(
        "GET",
        "/api/v1/members",
        identity.list_members,
        "listMembers",
        "List members",
        "identity",
        _ok("MemberPage"),
        roles=ADMIN,
        query=(LIMIT, OFFSET),
    ),
]
