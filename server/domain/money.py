"""Money: integer minor units plus an ISO 4217 currency, never floats."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext

from server.domain.errors import InvalidValue

# Minor-unit exponent per supported currency (ISO 4217). TWD is 2 in ISO 4217 although
# prices are quoted whole; we follow the standard so amounts round-trip with payment systems.
SUPPORTED_CURRENCIES: dict[str, int] = {
    "HKD": 2,
    "CNY": 2,
    "MOP": 2,
    "TWD": 2,
    "SGD": 2,
    "MYR": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "AUD": 2,
    "JPY": 0,
    "KRW": 0,
}

# Large enough for any retail price, small enough to stay exact in JSON numbers (2**53).
MAX_AMOUNT_MINOR = 10**13


def check_currency(code: str, *, field: str = "currency") -> str:
    if code not in SUPPORTED_CURRENCIES:
        raise InvalidValue(
            f"unsupported currency {code!r}; use one of {', '.join(sorted(SUPPORTED_CURRENCIES))}",
            field=field,
        )
    return code


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        check_currency(self.currency)
        if not 0 <= self.amount_minor <= MAX_AMOUNT_MINOR:
            raise InvalidValue(f"amount must be between 0 and {MAX_AMOUNT_MINOR} minor units")

    @classmethod
    def parse_major(cls, text: str, currency: str, *, field: str = "price") -> Money:
        """Parse a decimal amount in major units ("199.50") exactly, as import files carry it."""
        check_currency(currency)
        exponent = SUPPORTED_CURRENCIES[currency]
        try:
            value = Decimal(text.strip())
        except InvalidOperation:
            raise InvalidValue(f"{text!r} is not a decimal amount", field=field) from None
        if not value.is_finite():
            raise InvalidValue(f"{text!r} is not a decimal amount", field=field)
        if value < 0:
            raise InvalidValue("must not be negative", field=field)
        too_precise = InvalidValue(
            f"{text!r} has more than {exponent} decimal places for {currency}", field=field
        )
        # Check magnitude before arithmetic: Decimal's default context would round a long
        # number to 28 digits, underflow a tiny one to 0 and overflow a huge exponent.
        if value != 0 and value.adjusted() < -exponent:
            raise too_precise
        if value.adjusted() > 15:
            raise InvalidValue("amount is too large", field=field)
        with localcontext() as exact:
            exact.prec = len(value.as_tuple().digits) + exponent + 2
            minor = value.scaleb(exponent)
        if minor != minor.to_integral_value():
            raise too_precise
        if minor > MAX_AMOUNT_MINOR:
            raise InvalidValue("amount is too large", field=field)
        return cls(int(minor), currency)
