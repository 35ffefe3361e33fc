"""Hand-off checkout: the viewer buys in the brand's own cart, reached by a URL built from
the show's template. Shopify-style cart permalinks are the model:
`https://shop.example/cart/{items}?ref=showroom&show={show_id}` with `{items}` expanded to
`SKU:QTY,SKU:QTY`."""

from __future__ import annotations

import string
from enum import StrEnum
from urllib.parse import quote, urlsplit

from server.domain.errors import InvalidValue
from server.domain.orders import LineRequest

HANDOFF_URL_MAX = 2048
PLACEHOLDERS = frozenset({"items", "show_id", "pin_id"})


class CheckoutMode(StrEnum):
    NATIVE = "native"  # orders in Showroom: reservation, confirmation, the built-in provider
    HANDOFF = "handoff"  # the brand's own cart, reached by the show's handoff_url


def check_template(template: str, *, field: str = "handoff_url") -> str:
    """An absolute http(s) URL with `{items}` and no placeholder but {items}, {show_id},
    {pin_id}."""
    template = template.strip()
    if len(template) > HANDOFF_URL_MAX:
        raise InvalidValue(f"longer than {HANDOFF_URL_MAX} characters", field=field)
    try:
        names = {name for _, name, spec, conv in string.Formatter().parse(template) if name}
        specs = [(spec, conv) for _, name, spec, conv in string.Formatter().parse(template) if name]
    except ValueError as exc:
        raise InvalidValue(f"is not a valid template: {exc}", field=field) from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise InvalidValue(
            f"has an unknown placeholder {{{unknown[0]}}}; use {{items}}, {{show_id}}, {{pin_id}}",
            field=field,
        )
    if any(spec or conv for spec, conv in specs):
        raise InvalidValue("placeholders take no format spec or conversion", field=field)
    if "items" not in names:
        raise InvalidValue("must contain {items}, where the cart's SKU:QTY list goes", field=field)
    parts = urlsplit(template.replace("{", "").replace("}", ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidValue("must be an absolute http or https URL", field=field)
    return template


def expand(template: str, lines: list[LineRequest], *, show_id: str, pin_id: str | None) -> str:
    """The brand's cart URL for these lines; every value is percent-encoded."""
    items = ",".join(f"{quote(line.sku, safe='')}:{line.quantity}" for line in lines)
    return template.format(items=items, show_id=quote(show_id, safe=""), pin_id=pin_id or "")
