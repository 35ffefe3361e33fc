"""The show state machine: scheduled -> live -> ended, scheduled -> cancelled, nothing else."""

from __future__ import annotations

from enum import StrEnum

from server.domain.errors import Conflict


class ShowState(StrEnum):
    SCHEDULED = "scheduled"
    LIVE = "live"
    ENDED = "ended"
    CANCELLED = "cancelled"


class ShowAction(StrEnum):
    START = "start"
    END = "end"
    CANCEL = "cancel"


_TRANSITIONS: dict[tuple[ShowState, ShowAction], ShowState] = {
    (ShowState.SCHEDULED, ShowAction.START): ShowState.LIVE,
    (ShowState.LIVE, ShowAction.END): ShowState.ENDED,
    (ShowState.SCHEDULED, ShowAction.CANCEL): ShowState.CANCELLED,
}

# How the show sells may change until it ends (a brand can switch to its own cart mid-show).
SELLING = frozenset({"checkout_mode", "handoff_url", "claim_keyword"})

# Fields a show may still change in each state: the schedule only before it starts,
# the words on screen until it ends, nothing afterwards (the replay shows what was live).
_EDITABLE: dict[ShowState, frozenset[str]] = {
    ShowState.SCHEDULED: frozenset(
        {"title", "description", "scheduled_start", "host_name", "locale", "currency"} | SELLING
    ),
    ShowState.LIVE: frozenset({"title", "description"} | SELLING),
    ShowState.ENDED: frozenset(),
    ShowState.CANCELLED: frozenset(),
}


def next_state(current: ShowState, action: ShowAction) -> ShowState:
    try:
        return _TRANSITIONS[(current, action)]
    except KeyError:
        raise Conflict(f"cannot {action.value} a show that is {current.value}") from None


def check_editable(current: ShowState, changed: set[str]) -> None:
    frozen = sorted(changed - _EDITABLE[current])
    if frozen:
        raise Conflict(
            f"{frozen[0]} cannot change while the show is {current.value}", field=frozen[0]
        )
