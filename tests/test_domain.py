"""Pure domain rules: money, localized text, the show state machine and catalog drafts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.catalog import ProductStatus, draft_from_json, try_draft_from_csv
from server.domain.errors import Conflict, InvalidValue
from server.domain.money import MAX_AMOUNT_MINOR, SUPPORTED_CURRENCIES, Money
from server.domain.shows import ShowAction, ShowState, check_editable, next_state
from server.domain.text import check_localized

CURRENCIES = st.sampled_from(sorted(SUPPORTED_CURRENCIES))


def major(amount_minor: int, currency: str) -> str:
    exponent = SUPPORTED_CURRENCIES[currency]
    return str(Decimal(amount_minor).scaleb(-exponent).quantize(Decimal(1).scaleb(-exponent)))


@given(st.integers(0, MAX_AMOUNT_MINOR), CURRENCIES)
def test_major_units_round_trip_exactly(amount: int, currency: str) -> None:
    assert Money.parse_major(major(amount, currency), currency) == Money(amount, currency)


@given(st.integers(1, 10**9), st.sampled_from(["HKD", "USD", "CNY"]))
def test_more_decimals_than_the_currency_allows_are_refused(amount: int, currency: str) -> None:
    text = major(amount, currency) + "1"  # a third decimal place
    with pytest.raises(InvalidValue, match="decimal places") as error:
        Money.parse_major(text, currency)
    assert error.value.field == "price"


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("199", "HKD", 19900),
        ("199.5", "HKD", 19950),
        (" 0.10 ", "HKD", 10),
        ("1200", "JPY", 1200),
        ("1e2", "HKD", 10000),
    ],
)
def test_parse_major_examples(text: str, currency: str, minor: int) -> None:
    assert Money.parse_major(text, currency).amount_minor == minor


@pytest.mark.parametrize("text", ["abc", "", "-1", "NaN", "Infinity", "12.345", "99999999999999"])
def test_parse_major_refuses(text: str) -> None:
    with pytest.raises(InvalidValue):
        Money.parse_major(text, "HKD")


def test_money_refuses_unknown_currency_and_out_of_range() -> None:
    with pytest.raises(InvalidValue, match="unsupported currency"):
        Money(100, "XYZ")
    with pytest.raises(InvalidValue):
        Money(-1, "HKD")
    with pytest.raises(InvalidValue):
        Money(MAX_AMOUNT_MINOR + 1, "HKD")


@pytest.mark.parametrize("state", list(ShowState))
@pytest.mark.parametrize("action", list(ShowAction))
def test_only_three_transitions_exist(state: ShowState, action: ShowAction) -> None:
    allowed = {
        (ShowState.SCHEDULED, ShowAction.START): ShowState.LIVE,
        (ShowState.LIVE, ShowAction.END): ShowState.ENDED,
        (ShowState.SCHEDULED, ShowAction.CANCEL): ShowState.CANCELLED,
    }
    if (state, action) in allowed:
        assert next_state(state, action) is allowed[(state, action)]
    else:
        with pytest.raises(Conflict, match=f"cannot {action.value} a show that is {state.value}"):
            next_state(state, action)


def test_editable_fields_narrow_as_the_show_goes_on() -> None:
    check_editable(ShowState.SCHEDULED, {"scheduled_start", "title", "currency"})
    check_editable(ShowState.LIVE, {"title", "description"})
    with pytest.raises(Conflict) as error:
        check_editable(ShowState.LIVE, {"title", "locale"})
    assert error.value.field == "locale"
    with pytest.raises(Conflict):
        check_editable(ShowState.ENDED, {"description"})
    check_editable(ShowState.ENDED, set())  # no change is always fine


def test_localized_text_is_normalized_and_checked() -> None:
    decomposed = "Cafe\u0301"  # e + combining acute accent
    assert check_localized(
        {"en": f"  {decomposed} ", "zh-HK": ""}, field="title", max_length=10, required=True
    ) == {"en": "Café"}
    with pytest.raises(InvalidValue) as unknown:
        check_localized({"ja": "x"}, field="title", max_length=10, required=False)
    assert unknown.value.field == "title.ja"
    with pytest.raises(InvalidValue) as long:
        check_localized({"zh-HK": "長" * 11}, field="title", max_length=10, required=False)
    assert long.value.field == "title.zh-HK"
    assert check_localized(
        {"zh-HK": "長" * 10}, field="title", max_length=10, required=False
    )  # 10 characters, 30 bytes


BASE = {"sku": "TEA-1", "title": {"en": "Tea"}, "price": {"amount_minor": 1000, "currency": "HKD"}}


def test_draft_defaults_and_rules() -> None:
    draft = draft_from_json(BASE)
    assert (draft.stock, draft.status, draft.compare_at_price, draft.description) == (
        0,
        ProductStatus.ACTIVE,
        None,
        {},
    )
    for compare_at, field in [
        ({"amount_minor": 1000, "currency": "HKD"}, "compare_at_price"),
        ({"amount_minor": 2000, "currency": "USD"}, "compare_at_price"),
    ]:
        with pytest.raises(InvalidValue) as error:
            draft_from_json({**BASE, "compare_at_price": compare_at})
        assert error.value.field == field


def test_partial_update_keeps_or_drops_the_compare_at_price() -> None:
    draft = draft_from_json({**BASE, "compare_at_price": {"amount_minor": 1500, "currency": "HKD"}})
    cheaper = draft.with_changes({"price": {"amount_minor": 900, "currency": "HKD"}})
    assert cheaper.compare_at_price is not None and cheaper.compare_at_price.amount_minor == 1500
    dearer = draft.with_changes({"price": {"amount_minor": 1500, "currency": "HKD"}})
    assert dearer.compare_at_price is None
    with pytest.raises(InvalidValue) as error:
        draft.with_changes({"compare_at_price": {"amount_minor": 500, "currency": "HKD"}})
    assert error.value.field == "compare_at_price"


def csv_row(**cells: str) -> dict[str, str | None]:
    return {"sku": "A-1", "title_en": "Alpha", "price": "10.00", **cells}


def test_csv_rows() -> None:
    draft, errors = try_draft_from_csv(
        csv_row(title_zh_hk="甲", stock="7", compare_at_price="12.5"), "HKD"
    )
    assert errors == [] and draft is not None
    assert (draft.price.amount_minor, draft.compare_at_price, draft.stock) == (
        1000,
        Money(1250, "HKD"),
        7,
    )
    assert draft.title == {"zh-HK": "甲", "en": "Alpha"}
    yen, _ = try_draft_from_csv(csv_row(price="1200", currency="JPY"), "HKD")
    assert yen is not None and yen.price == Money(1200, "JPY")


def test_csv_row_reports_every_broken_cell_together() -> None:
    draft, errors = try_draft_from_csv(
        csv_row(sku="", title_en="", price="12.345", stock="3.5"), "HKD"
    )
    assert draft is None
    assert {e.field for e in errors} == {"sku", "title", "price", "stock"}


@pytest.mark.parametrize(
    ("cells", "field"),
    [({"currency": "XYZ"}, "currency"), ({"price": "-1"}, "price"), ({"price": ""}, "price")],
)
def test_csv_row_errors(cells: dict[str, str], field: str) -> None:
    draft, errors = try_draft_from_csv(csv_row(**cells), "HKD")
    assert draft is None and field in {e.field for e in errors}
