"""Chat rules: what a message may say, how long it may be, how fast a member may talk."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum

import regex

from server.domain.errors import InvalidValue

CHAT_MAX_CHARACTERS = 500
_GRAPHEME = regex.compile(r"\X")
_SPACE_RUN = regex.compile(r"[\p{Z}\t\r\n\f\v]+")
_INVISIBLE = regex.compile(r"[\p{Cc}\p{Cf}--[\u200d\ufe0f]]", flags=regex.V1)


def characters(text: str) -> int:
    """User-perceived characters: one per CJK character and one per emoji, even when the
    emoji is several code points (skin tones, flags, ZWJ families)."""
    return len(_GRAPHEME.findall(text))


def check_chat_text(text: str, *, max_characters: int = CHAT_MAX_CHARACTERS) -> str:
    """NFC-normalize, drop invisible control characters (keeping the joiners emoji need),
    fold whitespace runs into one space and trim."""
    clean = unicodedata.normalize("NFC", text)
    clean = _INVISIBLE.sub("", clean)
    clean = _SPACE_RUN.sub(" ", clean).strip()
    if not clean:
        raise InvalidValue("message is empty", field="text")
    count = characters(clean)
    if count > max_characters:
        raise InvalidValue(
            f"message is {count} characters; the limit is {max_characters}", field="text"
        )
    return clean


class BannedWordMode(StrEnum):
    MASK = "mask"  # replace the word with ＊, deliver the rest
    BLOCK = "block"  # refuse the whole message


class Blocked(InvalidValue):
    """The message contains a banned word and the mode is block."""


@dataclass(frozen=True, slots=True)
class BannedWords:
    words: tuple[str, ...] = ()
    mode: BannedWordMode = BannedWordMode.MASK
    _pattern: regex.Pattern[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = sorted(
            {w.strip().casefold() for w in self.words if w.strip()}, key=len, reverse=True
        )
        if words:
            # Longest first, so a longer banned phrase wins over a word inside it.
            pattern = regex.compile(
                "|".join(regex.escape(w) for w in words), flags=regex.IGNORECASE
            )
            object.__setattr__(self, "_pattern", pattern)

    def apply(self, text: str) -> str:
        """The text with banned words masked, or Blocked when the mode is block."""
        if self._pattern is None or not self._pattern.search(text):
            return text
        if self.mode is BannedWordMode.BLOCK:
            raise Blocked("message contains a word that is not allowed here", field="text")
        return self._pattern.sub(lambda m: "＊" * characters(m.group(0)), text)


@dataclass(slots=True)
class TokenBucket:
    """Allows `burst` messages at once, then one per `1 / per_second` seconds."""

    burst: float
    per_second: float
    tokens: float = -1.0
    updated: float = 0.0

    def take(self, now: float) -> float:
        """Spend one token: 0.0 if allowed, else the seconds to wait before trying again."""
        if self.tokens < 0:
            self.tokens, self.updated = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.per_second
