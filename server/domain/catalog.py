"""Catalog rules: what a valid product is, parsed from API JSON or an import row."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from server.domain.errors import DomainError, InvalidValue
from server.domain.money import MAX_AMOUNT_MINOR, Money, check_currency
from server.domain.text import SUPPORTED_LOCALES, check_localized, normalize

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TITLE_MAX = 200
DESCRIPTION_MAX = 5000
IMAGE_URL_MAX = 2048
MAX_STOCK = 10_000_000


class ProductStatus(StrEnum):
    ACTIVE = "active"
    DRAFT = "draft"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class ProductDraft:
    """A product as the brand describes it, checked against every catalog rule."""

    sku: str
    title: dict[str, str]
    price: Money
    description: dict[str, str] = field(default_factory=dict)
    compare_at_price: Money | None = None
    image_url: str | None = None
    stock: int = 0
    status: ProductStatus = ProductStatus.ACTIVE

    def __post_init__(self) -> None:
        if (
            self.compare_at_price is not None
            and self.compare_at_price.currency != self.price.currency
        ):
            raise InvalidValue("must be in the same currency as price", field="compare_at_price")
        if (
            self.compare_at_price is not None
            and self.compare_at_price.amount_minor <= self.price.amount_minor
        ):
            raise InvalidValue("must be greater than price", field="compare_at_price")

    def with_changes(self, changes: Mapping[str, Any]) -> ProductDraft:
        """Apply a partial update given as API JSON, re-checking the whole product."""
        errors: list[DomainError] = []
        parsed = _parse_fields(changes, errors, partial=True)
        if errors:
            raise errors[0]
        if "price" in parsed and "compare_at_price" not in parsed and self.compare_at_price:
            # A price cut below the old compare-at keeps it; one at or above it drops it,
            # rather than rejecting an ordinary price change.
            if self.compare_at_price.amount_minor <= parsed["price"].amount_minor:
                parsed["compare_at_price"] = None
        return replace(self, **parsed)


def check_sku(raw: object, *, field: str = "sku") -> str:
    if not isinstance(raw, str):
        raise InvalidValue("must be a string", field=field)
    sku = raw.strip()
    if not SKU_PATTERN.match(sku):
        raise InvalidValue(
            "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field=field,
        )
    return sku


def draft_from_json(obj: object) -> ProductDraft:
    """Parse API JSON (create body or one JSON import row); raises the first rule broken."""
    draft, errors = try_draft_from_json(obj)
    if draft is None:
        raise errors[0]
    return draft


def try_draft_from_json(obj: object) -> tuple[ProductDraft | None, list[DomainError]]:
    """Parse API JSON, collecting every field error so an import can report them all."""
    if not isinstance(obj, Mapping):
        return None, [InvalidValue("must be a JSON object")]
    errors: list[DomainError] = []
    unknown = sorted(set(obj) - _JSON_FIELDS)
    for name in unknown:
        errors.append(InvalidValue("unknown field", field=str(name)))
    parsed = _parse_fields(obj, errors, partial=False)
    if errors:
        return None, errors
    try:
        return ProductDraft(**parsed), []
    except DomainError as exc:
        return None, [exc]


_JSON_FIELDS = frozenset(
    {"sku", "title", "description", "price", "compare_at_price", "image_url", "stock", "status"}
)
_REQUIRED = ("sku", "title", "price")


def _parse_fields(
    obj: Mapping[str, Any], errors: list[DomainError], *, partial: bool
) -> dict[str, Any]:
    parsed: dict[str, Any] = {}
    if not partial:
        for name in _REQUIRED:
            if name not in obj:
                errors.append(InvalidValue("is required", field=name))
    parsers: dict[str, Callable[[Any], Any]] = {
        "sku": check_sku,
        "title": lambda v: _localized(v, "title", TITLE_MAX, required=True),
        "description": lambda v: _localized(v, "description", DESCRIPTION_MAX, required=False),
        "price": lambda v: _money(v, "price"),
        "compare_at_price": lambda v: None if v is None else _money(v, "compare_at_price"),
        "image_url": _image_url,
        "stock": _stock,
        "status": _status,
    }
    for name, parse in parsers.items():
        if name in obj:
            try:
                parsed[name] = parse(obj[name])
            except DomainError as exc:
                errors.append(exc)
    return parsed


def _localized(value: object, name: str, max_length: int, *, required: bool) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidValue(
            f"must be an object of locale to text ({', '.join(SUPPORTED_LOCALES)})", field=name
        )
    return check_localized(dict(value), field=name, max_length=max_length, required=required)


def _money(value: object, name: str) -> Money:
    if not isinstance(value, Mapping) or set(value) != {"amount_minor", "currency"}:
        raise InvalidValue("must be an object with amount_minor and currency", field=name)
    amount, currency = value["amount_minor"], value["currency"]
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidValue("must be an integer number of minor units", field=f"{name}.amount_minor")
    if not 0 <= amount <= MAX_AMOUNT_MINOR:
        raise InvalidValue(
            f"must be between 0 and {MAX_AMOUNT_MINOR}", field=f"{name}.amount_minor"
        )
    if not isinstance(currency, str):
        raise InvalidValue("must be a string", field=f"{name}.currency")
    return Money(amount, check_currency(currency, field=f"{name}.currency"))


def _image_url(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidValue("must be a string", field="image_url")
    url = value.strip()
    parts = urlsplit(url)
    if len(url) > IMAGE_URL_MAX or not (
        (parts.scheme in ("http", "https") and parts.netloc)
        # A path on this server; "//host/x" would load from another origin.
        or (url.startswith("/") and not url.startswith("//"))
    ):
        raise InvalidValue(
            f"must be an http(s) URL or a path starting with / (at most {IMAGE_URL_MAX} characters)",
            field="image_url",
        )
    return url


def _stock(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidValue("must be an integer", field="stock")
    if not 0 <= value <= MAX_STOCK:
        raise InvalidValue(f"must be between 0 and {MAX_STOCK}", field="stock")
    return value


def _status(value: object) -> ProductStatus:
    try:
        return ProductStatus(str(value) if isinstance(value, str) else "")
    except ValueError:
        raise InvalidValue(
            f"must be one of {', '.join(s.value for s in ProductStatus)}", field="status"
        ) from None


# --- CSV import ---------------------------------------------------------------------------
# Spreadsheet-friendly columns: prices in major units ("199.00"), one column per locale.
CSV_COLUMNS: tuple[str, ...] = (
    "sku",
    "title_zh_hk",
    "title_zh_cn",
    "title_en",
    "description_zh_hk",
    "description_zh_cn",
    "description_en",
    "price",
    "compare_at_price",
    "currency",
    "image_url",
    "stock",
    "status",
)
_LOCALE_SUFFIX = {"zh_hk": "zh-HK", "zh_cn": "zh-CN", "en": "en"}


def csv_row_to_json(row: Mapping[str, str | None], default_currency: str) -> dict[str, Any]:
    """Turn one CSV row into the API JSON shape, so both imports share one set of rules."""
    cells = {k: normalize(v or "") for k, v in row.items() if k is not None}
    currency = cells.get("currency") or default_currency
    obj: dict[str, Any] = {"sku": cells.get("sku", ""), "currency_hint": currency}
    for kind in ("title", "description"):
        obj[kind] = {
            locale: cells[f"{kind}_{suffix}"]
            for suffix, locale in _LOCALE_SUFFIX.items()
            if cells.get(f"{kind}_{suffix}")
        }
    for name in ("price", "compare_at_price"):
        if cells.get(name):
            obj[name] = cells[name]
    if cells.get("image_url"):
        obj["image_url"] = cells["image_url"]
    if cells.get("stock"):
        obj["stock"] = cells["stock"]
    if cells.get("status"):
        obj["status"] = cells["status"]
    return obj


def try_draft_from_csv(
    row: Mapping[str, str | None], default_currency: str
) -> tuple[ProductDraft | None, list[DomainError]]:
    obj = csv_row_to_json(row, default_currency)
    currency = obj.pop("currency_hint")
    errors: list[DomainError] = []
    try:
        check_currency(currency)
    except DomainError as exc:
        errors.append(exc)
        return None, errors
    for name in ("price", "compare_at_price"):
        if name in obj:
            try:
                money = Money.parse_major(obj[name], currency, field=name)
                obj[name] = {"amount_minor": money.amount_minor, "currency": currency}
            except DomainError as exc:
                errors.append(exc)
                del obj[name]
    if "stock" in obj:
        try:
            obj["stock"] = int(obj["stock"])
        except ValueError:
            errors.append(InvalidValue("must be a whole number", field="stock"))
            del obj["stock"]
    if errors:
        # Still report the other columns' problems in the same pass. A price that failed to
        # parse is stood in for, and rules that compare against it are not judged.
        broken = {e.field for e in errors}
        probe = dict(obj)
        if "price" in broken:
            probe["price"] = {"amount_minor": 0, "currency": currency}
            broken.add("compare_at_price")
        _, more = try_draft_from_json(probe)
        return None, errors + [e for e in more if e.field not in broken]
    return try_draft_from_json(obj)
