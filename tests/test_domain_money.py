"""Money rules: integer minor units, supported currencies, exact parsing of major-unit text."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import DomainError, InvalidValue
from server.domain.money import MAX_AMOUNT_MINOR, SUPPORTED_CURRENCIES, Money, check_currency

CURRENCIES = st.sampled_from(sorted(SUPPORTED_CURRENCIES))
AMOUNTS = st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR)


def to_major(amount_minor: int, currency: str) -> str:
    """Format minor units as the major-unit text a spreadsheet holds, with plain integer maths."""
    exponent = SUPPORTED_CURRENCIES[currency]
    if exponent == 0:
        return str(amount_minor)
    whole, fraction = divmod(amount_minor, 10**exponent)
    return f"{whole}.{fraction:0{exponent}d}"


# --- the currency table -------------------------------------------------------------------


def test_currency_exponents_follow_iso_4217() -> None:
    assert SUPPORTED_CURRENCIES["HKD"] == 2
    assert SUPPORTED_CURRENCIES["TWD"] == 2
    assert SUPPORTED_CURRENCIES["JPY"] == 0
    assert SUPPORTED_CURRENCIES["KRW"] == 0
    assert set(SUPPORTED_CURRENCIES.values()) <= {0, 2}


def test_max_amount_is_exact_in_json_numbers() -> None:
    assert MAX_AMOUNT_MINOR < 2**53
    assert float(MAX_AMOUNT_MINOR) == MAX_AMOUNT_MINOR


@pytest.mark.parametrize("code", sorted(SUPPORTED_CURRENCIES))
def test_check_currency_accepts_every_supported_code(code: str) -> None:
    assert check_currency(code) == code


@pytest.mark.parametrize("code", ["XXX", "hkd", "", " HKD", "HKD ", "BTC"])
def test_check_currency_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(InvalidValue, match="unsupported currency") as error:
        check_currency(code)
    assert error.value.field == "currency"


def test_check_currency_names_the_given_field() -> None:
    with pytest.raises(InvalidValue) as error:
        check_currency("XYZ", field="price.currency")
    assert error.value.field == "price.currency"
    assert "HKD" in error.value.message  # the message lists what is accepted


# --- Money itself -------------------------------------------------------------------------


@given(AMOUNTS, CURRENCIES)
def test_money_accepts_every_amount_in_range(amount: int, currency: str) -> None:
    money = Money(amount, currency)
    assert (money.amount_minor, money.currency) == (amount, currency)


@pytest.mark.parametrize("amount", [-1, -100, MAX_AMOUNT_MINOR + 1, 10**20])
def test_money_refuses_amounts_out_of_range(amount: int) -> None:
    with pytest.raises(InvalidValue, match="between 0 and"):
        Money(amount, "HKD")


def test_money_refuses_unknown_currency() -> None:
    with pytest.raises(InvalidValue, match="unsupported currency") as error:
        Money(100, "XYZ")
    assert error.value.field == "currency"


def test_money_is_a_frozen_value() -> None:
    money = Money(100, "HKD")
    assert money == Money(100, "HKD")
    assert money != Money(100, "USD")
    assert money != Money(101, "HKD")
    assert hash(money) == hash(Money(100, "HKD"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        money.amount_minor = 1  # type: ignore[misc]


# --- parse_major: properties ---------------------------------------------------------------


@given(AMOUNTS, CURRENCIES)
def test_parse_major_round_trips_exactly(amount: int, currency: str) -> None:
    text = to_major(amount, currency)
    assert Money.parse_major(text, currency) == Money(amount, currency)


@given(AMOUNTS, CURRENCIES, st.integers(min_value=1, max_value=6))
def test_parse_major_ignores_trailing_zero_decimals(amount: int, currency: str, zeros: int) -> None:
    text = to_major(amount, currency)
    if "." not in text:
        text += "."
    assert Money.parse_major(text + "0" * zeros, currency).amount_minor == amount


@given(
    st.integers(min_value=0, max_value=MAX_AMOUNT_MINOR // 10),
    CURRENCIES,
    st.from_regex(r"\A[0-9]{0,8}[1-9]\Z"),
)
def test_parse_major_refuses_more_decimals_than_the_currency_has(
    amount: int, currency: str, extra: str
) -> None:
    text = to_major(amount, currency)
    if "." not in text:
        text += "."
    text += extra  # at least one significant digit past the currency's exponent
    with pytest.raises(InvalidValue, match="decimal places") as error:
        Money.parse_major(text, currency, field="compare_at_price")
    assert error.value.field == "compare_at_price"


@given(st.integers(min_value=1, max_value=10**15), CURRENCIES)
def test_parse_major_refuses_every_negative_amount(amount: int, currency: str) -> None:
    with pytest.raises(InvalidValue, match="negative") as error:
        Money.parse_major("-" + to_major(amount, currency), currency)
    assert error.value.field == "price"


# --- parse_major: examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("199.50", "HKD", 19950),
        ("199.5", "HKD", 19950),
        ("199", "HKD", 19900),
        ("0", "HKD", 0),
        ("0.01", "HKD", 1),
        (".5", "USD", 50),
        ("  12.30\t", "SGD", 1230),
        ("1200", "JPY", 1200),
        ("1200.0", "JPY", 1200),
        ("50000", "KRW", 50000),
        ("100000000000.00", "HKD", MAX_AMOUNT_MINOR),
        ("10000000000000", "JPY", MAX_AMOUNT_MINOR),
    ],
)
def test_parse_major_examples(text: str, currency: str, minor: int) -> None:
    money = Money.parse_major(text, currency)
    assert money == Money(minor, currency)


@pytest.mark.parametrize(
    ("text", "currency"),
    [("12.345", "HKD"), ("0.001", "USD"), ("1200.5", "JPY"), ("0.1", "KRW")],
)
def test_parse_major_refuses_extra_decimal_places(text: str, currency: str) -> None:
    with pytest.raises(InvalidValue, match=f"more than {SUPPORTED_CURRENCIES[currency]}"):
        Money.parse_major(text, currency)


@pytest.mark.parametrize(
    "text", ["abc", "", "   ", "1,000", "12.3.4", "HK$12", "NaN", "sNaN", "Infinity", "-inf"]
)
def test_parse_major_refuses_non_numbers(text: str) -> None:
    with pytest.raises(InvalidValue, match="not a decimal amount") as error:
        Money.parse_major(text, "HKD", field="price")
    assert error.value.field == "price"


@pytest.mark.parametrize("text", ["-1", "-0.01", "-1200"])
def test_parse_major_refuses_negative_amounts(text: str) -> None:
    with pytest.raises(InvalidValue, match="negative") as error:
        Money.parse_major(text, "HKD")
    assert error.value.field == "price"


@pytest.mark.parametrize(
    ("text", "currency"),
    [("100000000000.01", "HKD"), ("10000000000001", "JPY"), ("1e20", "HKD")],
)
def test_parse_major_refuses_amounts_too_large(text: str, currency: str) -> None:
    with pytest.raises(InvalidValue, match="too large") as error:
        Money.parse_major(text, currency)
    assert error.value.field == "price"


def test_parse_major_refuses_unknown_currency() -> None:
    with pytest.raises(InvalidValue, match="unsupported currency") as error:
        Money.parse_major("10.00", "XYZ")
    assert error.value.field == "currency"


def test_parse_major_errors_are_domain_errors() -> None:
    # Services catch DomainError; anything else escaping parse_major would become a 500.
    with pytest.raises(DomainError):
        Money.parse_major("abc", "HKD")


# --- parse_major: extreme inputs ---------------------------------------------------------------------


def test_parse_major_refuses_extra_decimals_beyond_decimal_precision() -> None:
    text = "1." + "0" * 30 + "1"  # 1.000…0001 HKD: far more than 2 decimal places
    with pytest.raises(InvalidValue, match="decimal places"):
        Money.parse_major(text, "HKD")


def test_parse_major_refuses_tiny_exponent() -> None:
    with pytest.raises(InvalidValue):
        Money.parse_major("1e-999999999", "HKD")


def test_parse_major_refuses_huge_exponent_as_invalid_value() -> None:
    with pytest.raises(InvalidValue, match="too large"):
        Money.parse_major("1e999999999", "HKD")
