"""Loyalty rules: what engagement earns, how points expire, and the tiers.

Everything here is pure: the ledger service applies these rules to what the server saw.
Points are whole numbers; money is integer minor units."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from server.domain.errors import InvalidValue

MAX_POINTS = 1_000_000_000  # one entry, one balance: far beyond any real programme


class EntryKind(StrEnum):
    EARN = "earn"
    REDEEM = "redeem"
    ADJUST = "adjust"
    EXPIRE = "expire"
    REVERSE = "reverse"


class Reason(StrEnum):
    WATCH = "watch"  # minutes watched, measured by the server
    FIRST_JOIN = "first_join"  # the first show a member joins
    CHAT = "chat"
    QUESTION = "question"  # a question asked
    QUESTION_ANSWERED = "question_answered"  # the host answered the member's question
    REACTION = "reaction"
    REFERRAL = "referral"  # a share link brought another viewer
    PURCHASE = "purchase"  # an order placed during the live show
    STREAK = "streak"  # attended consecutive shows
    REDEMPTION = "redemption"  # spent at the POS or e-shop
    ADJUSTMENT = "adjustment"  # by staff
    EXPIRY = "expiry"
    ORDER_CANCELLED = "order_cancelled"


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    min_points: int  # points earned in the rolling window


DEFAULT_TIERS = (
    Tier("Member", 0),
    Tier("Silver", 500),
    Tier("Gold", 2000),
    Tier("VIP", 5000),
)

# Badges the brand can switch on: earned once, at a milestone.
BADGES = {
    "first_show": "Joined a first live show",
    "five_shows": "Watched five live shows",
    "first_question": "Asked the host a first question",
    "streak_3": "Three shows in a row",
    "first_purchase": "Bought during a live show",
}


@dataclass(frozen=True, slots=True)
class EarningRules:
    """Per brand (versioned), overridable per show field by field."""

    watch_points_per_minute: int = 1
    watch_cap_minutes: int = 60  # per member and show
    idle_after_minutes: int = 30  # no interaction this long: watching stops earning
    first_join_points: int = 10
    chat_points: int = 1
    chat_cap: int = 10  # messages that earn, per member and show
    question_points: int = 2
    question_cap: int = 3
    question_answered_points: int = 5
    reaction_points: int = 1  # per 10 reactions
    reaction_cap: int = 5  # points from reactions, per member and show
    referral_points: int = 20  # per viewer brought by the member's share link
    referral_cap: int = 5  # referrals that earn, per member and show
    purchase_points_per_unit: int = 1  # per major currency unit (per HK$1)
    streak_points: int = 10  # per show in a row, after the first
    streak_cap: int = 5  # the streak bonus grows up to this many shows
    streak_min_minutes: int = 5  # watched at least this long, a show counts for the streak
    expiry_months: int = 12  # 0: points never expire
    tier_window_months: int = 12
    tiers: tuple[Tier, ...] = DEFAULT_TIERS
    badges: bool = False

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["tiers"] = [{"name": t.name, "min_points": t.min_points} for t in self.tiers]
        return out

    def tier_for(self, rolling_points: int) -> str:
        return max(
            (t for t in self.tiers if rolling_points >= t.min_points),
            key=lambda t: t.min_points,
        ).name

    def watch_points(self, seconds_before: float, seconds_after: float) -> int:
        """Points for the whole minutes watched crossed between two totals, within the cap."""
        cap = self.watch_cap_minutes
        before = min(int(seconds_before // 60), cap)
        after = min(int(seconds_after // 60), cap)
        return max(0, after - before) * self.watch_points_per_minute

    def purchase_points(self, total_minor: int, minor_per_unit: int) -> int:
        return (total_minor // minor_per_unit) * self.purchase_points_per_unit

    def streak_points_for(self, streak: int) -> int:
        """The bonus for attending the `streak`-th show in a row (nothing for the first)."""
        return min(max(streak - 1, 0), self.streak_cap) * self.streak_points


def check_rules(raw: dict[str, Any], *, base: EarningRules | None = None) -> EarningRules:
    """Rules from JSON: every field optional (missing ones keep `base`'s value)."""
    base = base or EarningRules()
    values: dict[str, Any] = {}
    known = {f.name for f in fields(EarningRules)}
    for name, value in raw.items():
        if name not in known:
            raise InvalidValue(f"unknown rule {name!r}", field=name)
        if name == "tiers":
            values["tiers"] = _check_tiers(value)
        elif name == "badges":
            if not isinstance(value, bool):
                raise InvalidValue("must be true or false", field=name)
            values[name] = value
        else:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
                raise InvalidValue("must be a whole number from 0 to 100000", field=name)
            values[name] = value
    merged = {f.name: getattr(base, f.name) for f in fields(EarningRules)} | values
    if merged["tier_window_months"] < 1:
        raise InvalidValue("must be at least 1", field="tier_window_months")
    if merged["idle_after_minutes"] < 1:
        raise InvalidValue("must be at least 1", field="idle_after_minutes")
    return EarningRules(**merged)


def _check_tiers(value: Any) -> tuple[Tier, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= 10:
        raise InvalidValue("must list 1 to 10 tiers", field="tiers")
    tiers = []
    for n, item in enumerate(value):
        if (
            not isinstance(item, dict)
            or set(item) != {"name", "min_points"}
            or not isinstance(item["name"], str)
            or not 1 <= len(item["name"].strip()) <= 40
            or not isinstance(item["min_points"], int)
            or isinstance(item["min_points"], bool)
            or not 0 <= item["min_points"] <= MAX_POINTS
        ):
            raise InvalidValue(
                "each tier is {name (1-40 characters), min_points}", field=f"tiers.{n}"
            )
        tiers.append(Tier(item["name"].strip(), item["min_points"]))
    if tiers[0].min_points != 0:
        raise InvalidValue("the first tier starts at 0 points", field="tiers.0.min_points")
    if any(b.min_points <= a.min_points for a, b in itertools.pairwise(tiers)):
        raise InvalidValue("tiers go up: each needs more points than the one before", field="tiers")
    if len({t.name for t in tiers}) != len(tiers):
        raise InvalidValue("tier names are distinct", field="tiers")
    return tuple(tiers)


def months_before(moment: datetime, months: int) -> datetime:
    """About `months` months earlier (30-day months: a policy, not a calendar)."""
    return moment - timedelta(days=30 * months)


def expirable(earned_before_cutoff: int, spent_total: int) -> int:
    """Points to expire now, oldest spent first: what was earned before the cutoff and not
    yet redeemed, expired or reversed (`spent_total` is every debit so far, positive)."""
    return max(0, earned_before_cutoff - spent_total)


@dataclass(slots=True)
class Allowance:
    """Counts toward one member's per-show caps (chat, questions, reactions, referrals)."""

    used: dict[str, int] = field(default_factory=dict)

    def take(self, what: str, cap: int, want: int = 1) -> int:
        have = self.used.get(what, 0)
        got = max(0, min(want, cap - have))
        self.used[what] = have + got
        return got
