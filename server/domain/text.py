"""Localized text: one string per supported locale, zh-HK first."""

from __future__ import annotations

import unicodedata

from server.domain.errors import InvalidValue

SUPPORTED_LOCALES: tuple[str, ...] = ("zh-HK", "zh-CN", "en")


def normalize(text: str) -> str:
    """NFC-normalize and trim, so the same words typed on two keyboards compare equal."""
    return unicodedata.normalize("NFC", text).strip()


def check_localized(
    value: dict[str, str], *, field: str, max_length: int, required: bool
) -> dict[str, str]:
    """Validate a {locale: text} map, dropping empty entries; lengths count characters."""
    result: dict[str, str] = {}
    for locale, text in value.items():
        if locale not in SUPPORTED_LOCALES:
            raise InvalidValue(
                f"unsupported locale {locale!r}; use {', '.join(SUPPORTED_LOCALES)}",
                field=f"{field}.{locale}",
            )
        clean = normalize(text)
        if len(clean) > max_length:
            raise InvalidValue(f"longer than {max_length} characters", field=f"{field}.{locale}")
        if clean:
            result[locale] = clean
    if required and not result:
        raise InvalidValue("needs text in at least one locale", field=field)
    return result
