"""Comment-to-order, as Hong Kong and Taiwan live sellers run it: a viewer types the show's
keyword ("+1"), optionally followed by words that pick a variant ("+1 M 紅色"), and the
pinned product that matches goes into their cart."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from server.domain.errors import InvalidValue

KEYWORD_MAX = 16
# Latin letters and digits form words; any other run (Chinese, Japanese...) is matched
# inside the product's own runs, since those scripts put no spaces between words.
_WORD = re.compile(r"[0-9a-z]+|[^\s0-9a-z\-_/.,;:()\[\]|+]+")


def fold(text: str) -> str:
    """Full-width forms to ASCII (＋１ is +1 on a phone keyboard), then case-folded."""
    return unicodedata.normalize("NFKC", text).casefold().strip()


def check_keyword(keyword: str) -> str:
    clean = unicodedata.normalize("NFKC", keyword).strip()
    if not clean or len(clean) > KEYWORD_MAX or any(c.isspace() for c in clean):
        raise InvalidValue(
            f"must be 1-{KEYWORD_MAX} characters without spaces", field="claim_keyword"
        )
    return clean


def parse(text: str, keyword: str) -> str | None:
    """The words after the keyword when `text` is a claim ("" for the keyword alone), else
    None. "+10" is not "+1"."""
    folded, key = fold(text), fold(keyword)
    if folded == key:
        return ""
    if folded.startswith(key) and folded[len(key)].isspace():
        return folded[len(key) :].strip()
    return None


@dataclass(frozen=True, slots=True)
class Candidate:
    sku: str
    title: dict[str, str]
    words: tuple[str, ...]  # the SKU's and titles' words, folded

    @classmethod
    def of(cls, sku: str, title: dict[str, str]) -> Candidate:
        return cls(sku, title, tuple(_WORD.findall(fold(" ".join([sku, *title.values()])))))

    def matches(self, wanted: list[str]) -> bool:
        return all(
            word in self.words
            if word.isascii()
            else any(word in mine for mine in self.words if not mine.isascii())
            for word in wanted
        )


class ClaimRefused(Exception):
    """Answered privately to the viewer: a code and a message (and the choices, if any)."""

    def __init__(self, code: str, message: str, choices: list[Candidate] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.choices = code, message, choices or []


def resolve(words: str, pinned: list[Candidate]) -> Candidate:
    """The one pinned product these words pick."""
    if not pinned:
        raise ClaimRefused("nothing_pinned", "no product is pinned right now")
    wanted = _WORD.findall(words)
    found = [c for c in pinned if c.matches(wanted)]
    if not found:
        raise ClaimRefused(
            "no_match",
            f"no pinned product matches {words!r}; pinned: {', '.join(c.sku for c in pinned)}",
            pinned,
        )
    if len(found) > 1:
        hint = "add the size or colour" if wanted else "say which one, e.g. +1 and its size"
        raise ClaimRefused(
            "ambiguous",
            f"{len(found)} pinned products match; {hint}: {', '.join(c.sku for c in found)}",
            found,
        )
    return found[0]
