"""Catalog rules: localized text, SKUs, product drafts from JSON, partial updates, CSV rows."""

from __future__ import annotations

import csv
import dataclasses
import io
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.catalog import (
    CSV_COLUMNS,
    DESCRIPTION_MAX,
    IMAGE_URL_MAX,
    MAX_STOCK,
    TITLE_MAX,
    ProductDraft,
    ProductStatus,
    check_sku,
    draft_from_json,
    try_draft_from_csv,
    try_draft_from_json,
)
from server.domain.errors import DomainError, InvalidValue
from server.domain.money import MAX_AMOUNT_MINOR, Money
from server.domain.text import SUPPORTED_LOCALES, check_localized, normalize


def hkd(amount_minor: int) -> dict[str, Any]:
    return {"amount_minor": amount_minor, "currency": "HKD"}


BASE: dict[str, Any] = {"sku": "TEA-001", "title": {"en": "Oolong"}, "price": hkd(19900)}


def fields_of(errors: list[DomainError]) -> set[str | None]:
    return {e.field for e in errors}


def field_error(obj: Any) -> str | None:
    with pytest.raises(InvalidValue) as error:
        draft_from_json(obj)
    return error.value.field


# --- localized text -----------------------------------------------------------------------


def test_supported_locales_put_zh_hk_first() -> None:
    assert SUPPORTED_LOCALES == ("zh-HK", "zh-CN", "en")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Tea \n", "Tea"),
        ("Cafe\u0301", "Café"),  # e + combining acute composes to one character
        ("\u3000凍頂烏龍\u3000", "凍頂烏龍"),  # ideographic spaces from a Chinese keyboard
        ("", ""),
    ],
)
def test_normalize_composes_and_trims(raw: str, clean: str) -> None:
    assert normalize(raw) == clean


def test_normalize_makes_keyboard_variants_equal() -> None:
    assert normalize("Cafe\u0301") == normalize("Caf\u00e9")
    assert len(normalize("Cafe\u0301")) == 4


def test_check_localized_drops_empty_entries_and_normalizes() -> None:
    result = check_localized(
        {"zh-HK": " 茶 ", "zh-CN": "   ", "en": "Cafe\u0301"},
        field="title",
        max_length=10,
        required=True,
    )
    assert result == {"zh-HK": "茶", "en": "Café"}


def test_check_localized_refuses_unknown_locale() -> None:
    with pytest.raises(InvalidValue, match="unsupported locale") as error:
        check_localized({"en": "Tea", "fr": "Thé"}, field="title", max_length=10, required=True)
    assert error.value.field == "title.fr"


def test_check_localized_counts_characters_after_normalizing() -> None:
    # 10 CJK characters are 30 UTF-8 bytes; 10 decomposed "é" are 20 code points.
    assert check_localized({"zh-HK": "茶" * 10}, field="t", max_length=10, required=True)
    assert check_localized({"en": "e\u0301" * 10}, field="t", max_length=10, required=True) == {
        "en": "é" * 10
    }
    assert check_localized({"en": f"  {'a' * 10}  "}, field="t", max_length=10, required=True)
    with pytest.raises(InvalidValue, match="longer than 10") as error:
        check_localized({"zh-CN": "茶" * 11}, field="title", max_length=10, required=True)
    assert error.value.field == "title.zh-CN"


def test_check_localized_required_needs_one_non_empty_text() -> None:
    with pytest.raises(InvalidValue, match="at least one locale") as error:
        check_localized({"en": "  ", "zh-HK": ""}, field="title", max_length=10, required=True)
    assert error.value.field == "title"
    with pytest.raises(InvalidValue) as empty:
        check_localized({}, field="title", max_length=10, required=True)
    assert empty.value.field == "title"
    assert check_localized({"en": " "}, field="description", max_length=10, required=False) == {}


# --- SKUs ---------------------------------------------------------------------------------

SKU_FIRST = string.ascii_letters + string.digits
SKU_REST = SKU_FIRST + "._-"
SKUS = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(SKU_FIRST),
    st.text(alphabet=SKU_REST, max_size=63),
)


@given(SKUS)
def test_check_sku_accepts_every_well_formed_sku(sku: str) -> None:
    assert check_sku(sku) == sku
    assert check_sku(f"  {sku}\t") == sku


@given(
    SKUS,
    st.characters(blacklist_characters=SKU_REST, blacklist_categories=["Zs", "Cc"], codec="utf-8"),
)
def test_check_sku_refuses_any_other_character(sku: str, bad: str) -> None:
    with pytest.raises(InvalidValue) as error:
        check_sku(sku[:1] + bad + sku[1:])
    assert error.value.field == "sku"


@pytest.mark.parametrize(
    "sku",
    ["", "   ", "-TEA", ".TEA", "_TEA", "TEA 001", "TEA/001", "茶-001", "A" * 65, "TEA\n001"],
)
def test_check_sku_refuses_malformed(sku: str) -> None:
    with pytest.raises(InvalidValue, match="1-64 letters") as error:
        check_sku(sku)
    assert error.value.field == "sku"


def test_check_sku_length_limit_is_64() -> None:
    assert check_sku("A" * 64) == "A" * 64


@pytest.mark.parametrize("raw", [123, None, ["TEA"], b"TEA"])
def test_check_sku_refuses_non_strings(raw: object) -> None:
    with pytest.raises(InvalidValue, match="must be a string") as error:
        check_sku(raw, field="items.0.sku")
    assert error.value.field == "items.0.sku"


# --- drafts from JSON ---------------------------------------------------------------------


def test_full_draft_from_json() -> None:
    draft = draft_from_json(
        {
            "sku": " TEA-001 ",
            "title": {"zh-HK": "凍頂烏龍茶", "en": " Dong Ding Oolong "},
            "description": {"en": "Roasted.", "zh-CN": ""},
            "price": hkd(19900),
            "compare_at_price": hkd(25900),
            "image_url": " https://cdn.example.com/tea.jpg ",
            "stock": 12,
            "status": "draft",
        }
    )
    assert draft == ProductDraft(
        sku="TEA-001",
        title={"zh-HK": "凍頂烏龍茶", "en": "Dong Ding Oolong"},
        description={"en": "Roasted."},
        price=Money(19900, "HKD"),
        compare_at_price=Money(25900, "HKD"),
        image_url="https://cdn.example.com/tea.jpg",
        stock=12,
        status=ProductStatus.DRAFT,
    )


def test_minimal_draft_gets_defaults() -> None:
    draft = draft_from_json(BASE)
    assert (draft.description, draft.compare_at_price, draft.image_url) == ({}, None, None)
    assert (draft.stock, draft.status) == (0, ProductStatus.ACTIVE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        draft.stock = 1  # type: ignore[misc]


@pytest.mark.parametrize("missing", ["sku", "title", "price"])
def test_required_fields(missing: str) -> None:
    obj = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(InvalidValue, match="is required") as error:
        draft_from_json(obj)
    assert error.value.field == missing


@pytest.mark.parametrize("obj", [None, [], "TEA", 1, [BASE]])
def test_draft_must_be_an_object(obj: object) -> None:
    draft, errors = try_draft_from_json(obj)
    assert draft is None
    assert [(e.field, e.message) for e in errors] == [(None, "must be a JSON object")]


def test_unknown_fields_are_named() -> None:
    draft, errors = try_draft_from_json({**BASE, "colour": "red", "Price": 1})
    assert draft is None
    assert [(e.field, e.message) for e in errors] == [
        ("Price", "unknown field"),
        ("colour", "unknown field"),
    ]


@pytest.mark.parametrize(
    ("price", "field"),
    [
        ({"amount_minor": "100", "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": 100.0, "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": True, "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": None, "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": -1, "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": MAX_AMOUNT_MINOR + 1, "currency": "HKD"}, "price.amount_minor"),
        ({"amount_minor": 100, "currency": "XYZ"}, "price.currency"),
        ({"amount_minor": 100, "currency": "hkd"}, "price.currency"),
        ({"amount_minor": 100, "currency": 344}, "price.currency"),
        ({"amount_minor": 100}, "price"),
        ({"amount_minor": 100, "currency": "HKD", "extra": 1}, "price"),
        (19900, "price"),
        ("199.00", "price"),
        (None, "price"),
    ],
)
def test_price_errors_name_the_part(price: object, field: str) -> None:
    assert field_error({**BASE, "price": price}) == field


def test_price_bounds_are_inclusive() -> None:
    assert draft_from_json({**BASE, "price": hkd(0)}).price == Money(0, "HKD")
    top = draft_from_json({**BASE, "price": hkd(MAX_AMOUNT_MINOR)})
    assert top.price == Money(MAX_AMOUNT_MINOR, "HKD")


def test_compare_at_price_errors_are_prefixed() -> None:
    compare_at = {"amount_minor": -5, "currency": "HKD"}
    assert field_error({**BASE, "compare_at_price": compare_at}) == "compare_at_price.amount_minor"
    compare_at = {"amount_minor": 50000, "currency": "XYZ"}
    assert field_error({**BASE, "compare_at_price": compare_at}) == "compare_at_price.currency"
    assert field_error({**BASE, "compare_at_price": 50000}) == "compare_at_price"


@pytest.mark.parametrize("amount", [19900, 19899, 0])
def test_compare_at_price_must_exceed_price(amount: int) -> None:
    with pytest.raises(InvalidValue, match="greater than price") as error:
        draft_from_json({**BASE, "compare_at_price": hkd(amount)})
    assert error.value.field == "compare_at_price"


def test_compare_at_price_one_minor_unit_above_is_fine() -> None:
    draft = draft_from_json({**BASE, "compare_at_price": hkd(19901)})
    assert draft.compare_at_price == Money(19901, "HKD")
    assert draft_from_json({**BASE, "compare_at_price": None}).compare_at_price is None


def test_compare_at_price_must_share_the_currency() -> None:
    compare_at = {"amount_minor": 99999, "currency": "USD"}
    with pytest.raises(InvalidValue, match="same currency") as error:
        draft_from_json({**BASE, "compare_at_price": compare_at})
    assert error.value.field == "compare_at_price"


def test_product_draft_checks_prices_when_built_directly() -> None:
    with pytest.raises(InvalidValue) as error:
        ProductDraft("A", {"en": "A"}, Money(100, "HKD"), compare_at_price=Money(100, "HKD"))
    assert error.value.field == "compare_at_price"
    with pytest.raises(InvalidValue) as error:
        ProductDraft("A", {"en": "A"}, Money(100, "HKD"), compare_at_price=Money(200, "JPY"))
    assert error.value.field == "compare_at_price"


@pytest.mark.parametrize(
    ("title", "field"),
    [
        ({"fr": "Thé"}, "title.fr"),
        ({"en": "T" * (TITLE_MAX + 1)}, "title.en"),
        ({"en": " "}, "title"),
        ({}, "title"),
        ({"en": 5}, "title"),
        ("Tea", "title"),
        (["Tea"], "title"),
    ],
)
def test_title_errors(title: object, field: str) -> None:
    assert field_error({**BASE, "title": title}) == field


def test_title_and_description_limits() -> None:
    draft = draft_from_json(
        {
            **BASE,
            "title": {"en": "T" * TITLE_MAX},
            "description": {"zh-HK": "描" * DESCRIPTION_MAX},
        }
    )
    assert len(draft.title["en"]) == TITLE_MAX
    assert len(draft.description["zh-HK"]) == DESCRIPTION_MAX
    description = {"en": "d" * (DESCRIPTION_MAX + 1)}
    assert field_error({**BASE, "description": description}) == "description.en"
    assert field_error({**BASE, "description": {"ja": "x"}}) == "description.ja"
    assert field_error({**BASE, "description": "text"}) == "description"


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("https://cdn.example.com/a.jpg", "https://cdn.example.com/a.jpg"),
        ("http://cdn.example.com/a.jpg", "http://cdn.example.com/a.jpg"),
        ("/media/a.jpg", "/media/a.jpg"),
        (" /media/a.jpg ", "/media/a.jpg"),
        ("", None),
        (None, None),
    ],
)
def test_image_url_accepted(url: str | None, stored: str | None) -> None:
    assert draft_from_json({**BASE, "image_url": url}).image_url == stored


@pytest.mark.parametrize(
    "url",
    [
        "ftp://cdn.example.com/a.jpg",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "https://",
        "media/a.jpg",
        "https://cdn.example.com/" + "a" * IMAGE_URL_MAX,
        123,
    ],
)
def test_image_url_refused(url: object) -> None:
    assert field_error({**BASE, "image_url": url}) == "image_url"


@pytest.mark.parametrize("stock", [0, 1, MAX_STOCK])
def test_stock_accepted(stock: int) -> None:
    assert draft_from_json({**BASE, "stock": stock}).stock == stock


@pytest.mark.parametrize("stock", [-1, MAX_STOCK + 1, 3.5, 3.0, "3", True, None])
def test_stock_refused(stock: object) -> None:
    assert field_error({**BASE, "stock": stock}) == "stock"


@pytest.mark.parametrize("status", list(ProductStatus))
def test_every_status_accepted(status: ProductStatus) -> None:
    assert draft_from_json({**BASE, "status": status.value}).status is status


@pytest.mark.parametrize("status", ["deleted", "ACTIVE", "", 1, None])
def test_status_refused(status: object) -> None:
    assert field_error({**BASE, "status": status}) == "status"


def test_every_field_error_is_collected() -> None:
    draft, errors = try_draft_from_json(
        {
            "sku": "-bad",
            "title": {"fr": "Thé"},
            "price": {"amount_minor": -1, "currency": "HKD"},
            "compare_at_price": {"amount_minor": 1, "currency": "XYZ"},
            "image_url": "ftp://x",
            "stock": 1.5,
            "status": "gone",
            "colour": "red",
        }
    )
    assert draft is None
    assert [e.field for e in errors] == [
        "colour",
        "sku",
        "title.fr",
        "price.amount_minor",
        "compare_at_price.currency",
        "image_url",
        "stock",
        "status",
    ]
    broken = {"sku": "-bad", "title": {"fr": "Thé"}, "stock": -1}
    _, all_errors = try_draft_from_json(broken)
    assert [e.field for e in all_errors] == ["price", "sku", "title.fr", "stock"]
    with pytest.raises(InvalidValue) as first:
        draft_from_json(broken)  # raises the first of them
    assert first.value.field == "price"


def test_missing_and_broken_fields_are_reported_together() -> None:
    _, errors = try_draft_from_json({"title": {"en": ""}, "stock": -1})
    assert fields_of(errors) == {"sku", "price", "title", "stock"}


def test_cross_field_rule_reported_when_fields_are_valid() -> None:
    draft, errors = try_draft_from_json({**BASE, "compare_at_price": hkd(100)})
    assert draft is None
    assert [(e.field, e.message) for e in errors] == [
        ("compare_at_price", "must be greater than price")
    ]


# --- partial updates ----------------------------------------------------------------------

ON_SALE = draft_from_json({**BASE, "compare_at_price": hkd(25900), "stock": 3})


def test_with_changes_applies_only_given_fields() -> None:
    changed = ON_SALE.with_changes({"title": {"zh-HK": " 烏龍 "}, "stock": 7})
    assert changed.title == {"zh-HK": "烏龍"}  # the whole map is replaced
    assert changed.stock == 7
    assert (changed.sku, changed.price, changed.compare_at_price) == (
        ON_SALE.sku,
        ON_SALE.price,
        ON_SALE.compare_at_price,
    )
    assert ON_SALE.stock == 3  # the original is untouched


def test_with_no_changes_is_the_same_draft() -> None:
    assert ON_SALE.with_changes({}) == ON_SALE


def test_price_cut_keeps_the_compare_at_price() -> None:
    cut = ON_SALE.with_changes({"price": hkd(15900)})
    assert cut.price == Money(15900, "HKD")
    assert cut.compare_at_price == Money(25900, "HKD")


@pytest.mark.parametrize("amount", [25900, 30000])
def test_price_at_or_above_compare_at_drops_it(amount: int) -> None:
    raised = ON_SALE.with_changes({"price": hkd(amount)})
    assert raised.price == Money(amount, "HKD")
    assert raised.compare_at_price is None


def test_compare_at_price_can_be_cleared_or_replaced() -> None:
    assert ON_SALE.with_changes({"compare_at_price": None}).compare_at_price is None
    both = ON_SALE.with_changes({"price": hkd(30000), "compare_at_price": hkd(40000)})
    assert (both.price, both.compare_at_price) == (Money(30000, "HKD"), Money(40000, "HKD"))


def test_explicit_compare_at_not_above_price_is_refused() -> None:
    with pytest.raises(InvalidValue, match="greater than price") as error:
        ON_SALE.with_changes({"compare_at_price": hkd(19900)})
    assert error.value.field == "compare_at_price"
    with pytest.raises(InvalidValue) as error:
        ON_SALE.with_changes({"price": hkd(30000), "compare_at_price": hkd(29999)})
    assert error.value.field == "compare_at_price"


def test_changing_price_currency_under_a_compare_at_is_refused() -> None:
    with pytest.raises(InvalidValue, match="same currency") as error:
        ON_SALE.with_changes({"price": {"amount_minor": 100, "currency": "USD"}})
    assert error.value.field == "compare_at_price"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": {}}, "title"),
        ({"title": {"fr": "Thé"}}, "title.fr"),
        ({"price": {"amount_minor": "1", "currency": "HKD"}}, "price.amount_minor"),
        ({"stock": -1}, "stock"),
        ({"sku": ""}, "sku"),
        ({"status": "gone"}, "status"),
    ],
)
def test_invalid_change_is_refused_with_its_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidValue) as error:
        ON_SALE.with_changes(changes)
    assert error.value.field == field


# --- CSV rows -----------------------------------------------------------------------------


def csv_row(**cells: str | None) -> dict[str, str | None]:
    return {"sku": "TEA-001", "title_en": "Oolong", "price": "199.00", **cells}


def csv_errors(row: dict[str, str | None], currency: str = "HKD") -> list[tuple[Any, str]]:
    draft, errors = try_draft_from_csv(row, currency)
    assert draft is None
    assert errors
    return [(e.field, e.message) for e in errors]


def test_csv_good_row() -> None:
    draft, errors = try_draft_from_csv(
        {
            "sku": " TEA-001 ",
            "title_zh_hk": "凍頂烏龍茶",
            "title_zh_cn": "冻顶乌龙茶",
            "title_en": "Dong Ding Oolong",
            "description_zh_hk": "",
            "description_zh_cn": None,
            "description_en": "Roasted.",
            "price": "199.00",
            "compare_at_price": "259.5",
            "currency": "",
            "image_url": "https://cdn.example.com/tea.jpg",
            "stock": "12",
            "status": "draft",
        },
        "HKD",
    )
    assert errors == []
    assert draft == ProductDraft(
        sku="TEA-001",
        title={"zh-HK": "凍頂烏龍茶", "zh-CN": "冻顶乌龙茶", "en": "Dong Ding Oolong"},
        description={"en": "Roasted."},
        price=Money(19900, "HKD"),
        compare_at_price=Money(25950, "HKD"),
        image_url="https://cdn.example.com/tea.jpg",
        stock=12,
        status=ProductStatus.DRAFT,
    )


def test_csv_minimal_row_gets_defaults() -> None:
    draft, errors = try_draft_from_csv(csv_row(), "HKD")
    assert errors == [] and draft is not None
    assert (draft.price, draft.compare_at_price, draft.stock, draft.status) == (
        Money(19900, "HKD"),
        None,
        0,
        ProductStatus.ACTIVE,
    )


def test_csv_rows_from_dict_reader() -> None:
    text = (
        ",".join(CSV_COLUMNS) + "\n"
        "TEA-001,凍頂烏龍茶,,Oolong,,,,199.00,,,,5,\n"
        "TEA-002,,,Green\n"  # a short row: DictReader fills the missing cells with None
        "TEA-003,,,Black,,,,10,,,,,,surplus,cells\n"  # a long row: extras land under None
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    results = [try_draft_from_csv(row, "HKD") for row in rows]
    first, second, third = results
    assert first[1] == [] and first[0] is not None
    assert first[0].title == {"zh-HK": "凍頂烏龍茶", "en": "Oolong"} and first[0].stock == 5
    assert second[0] is None and fields_of(second[1]) == {"price"}
    assert third[1] == [] and third[0] is not None and third[0].price == Money(1000, "HKD")


def test_csv_currency_column_overrides_the_default() -> None:
    draft, errors = try_draft_from_csv(csv_row(price="1200", currency="JPY"), "HKD")
    assert errors == [] and draft is not None
    assert draft.price == Money(1200, "JPY")
    draft, errors = try_draft_from_csv(csv_row(price="1200"), "JPY")
    assert errors == [] and draft is not None
    assert draft.price == Money(1200, "JPY")


def test_csv_prices_follow_the_row_currency_exponent() -> None:
    assert csv_errors(csv_row(price="1200.5", currency="JPY")) == [
        ("price", "'1200.5' has more than 0 decimal places for JPY")
    ]
    draft, _ = try_draft_from_csv(csv_row(price="12.5", currency="USD"), "JPY")
    assert draft is not None and draft.price == Money(1250, "USD")


@pytest.mark.parametrize("currency", ["XYZ", "hkd", "HK$"])
def test_csv_unknown_currency_column(currency: str) -> None:
    errors = csv_errors(csv_row(currency=currency))
    assert [field for field, _ in errors] == ["currency"]
    assert "unsupported currency" in errors[0][1]


def test_csv_unknown_default_currency() -> None:
    assert [f for f, _ in csv_errors(csv_row(), "XYZ")] == ["currency"]


@pytest.mark.parametrize(
    ("price", "message"),
    [
        ("12.345", "more than 2 decimal places"),
        ("abc", "not a decimal amount"),
        ("-1", "must not be negative"),
        ("HK$12", "not a decimal amount"),
        ("1,200.00", "not a decimal amount"),
    ],
)
def test_csv_bad_price(price: str, message: str) -> None:
    errors = csv_errors(csv_row(price=price))
    assert [field for field, _ in errors] == ["price"]
    assert message in errors[0][1]


def test_csv_bad_compare_at_price() -> None:
    assert [f for f, _ in csv_errors(csv_row(compare_at_price="abc"))] == ["compare_at_price"]
    assert csv_errors(csv_row(compare_at_price="199.00")) == [
        ("compare_at_price", "must be greater than price")
    ]


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        ({"sku": ""}, "sku"),
        ({"sku": "  "}, "sku"),
        ({"sku": None}, "sku"),
        ({"sku": "TEA 001"}, "sku"),
        ({"title_en": ""}, "title"),
        ({"title_en": None}, "title"),
        ({"price": ""}, "price"),
    ],
)
def test_csv_missing_required_values(cells: dict[str, str | None], field: str) -> None:
    assert [f for f, _ in csv_errors(csv_row(**cells))] == [field]


def test_csv_row_without_sku_column() -> None:
    assert [f for f, _ in csv_errors({"title_en": "Oolong", "price": "1"})] == ["sku"]


@pytest.mark.parametrize(
    ("stock", "field_message"),
    [
        ("3.5", ("stock", "must be a whole number")),
        ("three", ("stock", "must be a whole number")),
        ("-1", ("stock", f"must be between 0 and {MAX_STOCK}")),
        (str(MAX_STOCK + 1), ("stock", f"must be between 0 and {MAX_STOCK}")),
    ],
)
def test_csv_bad_stock(stock: str, field_message: tuple[str, str]) -> None:
    assert csv_errors(csv_row(stock=stock)) == [field_message]


def test_csv_stock_and_status_cells() -> None:
    draft, errors = try_draft_from_csv(csv_row(stock=" 42 ", status="archived"), "HKD")
    assert errors == [] and draft is not None
    assert (draft.stock, draft.status) == (42, ProductStatus.ARCHIVED)
    assert [f for f, _ in csv_errors(csv_row(status="sold"))] == ["status"]


def test_csv_cells_are_normalized() -> None:
    draft, errors = try_draft_from_csv(
        csv_row(title_en="  Cafe\u0301 ", title_zh_hk="\u3000", price=" 12.50 "), "HKD"
    )
    assert errors == [] and draft is not None
    assert draft.title == {"en": "Café"}
    assert draft.price == Money(1250, "HKD")


def test_csv_row_reports_every_broken_cell_together() -> None:
    errors = csv_errors(
        csv_row(sku="", title_en="", price="12.345", compare_at_price="x", stock="3.5")
    )
    fields = [f for f, _ in errors]
    assert sorted(fields) == sorted(["price", "compare_at_price", "stock", "sku", "title"])
    assert len(fields) == len(set(fields))  # each broken cell reported once


def test_csv_bad_price_still_reports_other_columns() -> None:
    errors = dict(csv_errors(csv_row(price="abc", status="sold", image_url="ftp://x")))
    assert set(errors) == {"price", "status", "image_url"}
    assert "not a decimal amount" in errors["price"]


def test_csv_empty_price_is_reported_alongside_other_errors() -> None:
    errors = csv_errors(csv_row(price="", stock="3.5"))
    assert {f for f, _ in errors} == {"price", "stock"}


def test_csv_compare_at_rule_is_reported_alongside_other_errors() -> None:
    errors = csv_errors(csv_row(price="10", compare_at_price="5", stock="3.5"))
    assert {f for f, _ in errors} == {"compare_at_price", "stock"}
