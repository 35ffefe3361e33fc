"""The show state machine and which fields a show may change in each state."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.domain.shows import ShowAction, ShowState, check_editable, next_state

ALLOWED: dict[tuple[ShowState, ShowAction], ShowState] = {
    (ShowState.SCHEDULED, ShowAction.START): ShowState.LIVE,
    (ShowState.LIVE, ShowAction.END): ShowState.ENDED,
    (ShowState.SCHEDULED, ShowAction.CANCEL): ShowState.CANCELLED,
}

SHOW_FIELDS = ("title", "description", "scheduled_start", "host_name", "locale", "currency")
EDITABLE: dict[ShowState, set[str]] = {
    ShowState.SCHEDULED: set(SHOW_FIELDS),
    ShowState.LIVE: {"title", "description"},
    ShowState.ENDED: set(),
    ShowState.CANCELLED: set(),
}


def test_states_and_actions_have_their_wire_values() -> None:
    assert [s.value for s in ShowState] == ["scheduled", "live", "ended", "cancelled"]
    assert [a.value for a in ShowAction] == ["start", "end", "cancel"]
    assert ShowState("live") is ShowState.LIVE
    assert ShowAction("cancel") is ShowAction.CANCEL


@pytest.mark.parametrize(
    ("state", "action"), list(itertools.product(list(ShowState), list(ShowAction)))
)
def test_every_state_action_pair(state: ShowState, action: ShowAction) -> None:
    if (state, action) in ALLOWED:
        assert next_state(state, action) is ALLOWED[(state, action)]
    else:
        with pytest.raises(Conflict) as error:
            next_state(state, action)
        assert error.value.message == f"cannot {action.value} a show that is {state.value}"
        assert error.value.field is None


def test_exactly_three_transitions_are_accepted() -> None:
    accepted = set()
    for state, action in itertools.product(ShowState, ShowAction):
        try:
            accepted.add((state, action, next_state(state, action)))
        except Conflict:
            pass
    assert accepted == {(s, a, t) for (s, a), t in ALLOWED.items()}


@pytest.mark.parametrize("state", [ShowState.ENDED, ShowState.CANCELLED])
def test_final_states_accept_no_action(state: ShowState) -> None:
    for action in ShowAction:
        with pytest.raises(Conflict):
            next_state(state, action)


@given(st.lists(st.sampled_from(list(ShowAction)), max_size=10))
def test_any_action_sequence_follows_the_lifecycle(actions: list[ShowAction]) -> None:
    """Applying any actions from scheduled, skipping refused ones, only ever walks
    scheduled -> live -> ended or scheduled -> cancelled, and never leaves a final state."""
    state = ShowState.SCHEDULED
    visited = [state]
    for action in actions:
        try:
            state = next_state(state, action)
        except Conflict:
            continue
        visited.append(state)
    assert visited in (
        [ShowState.SCHEDULED],
        [ShowState.SCHEDULED, ShowState.LIVE],
        [ShowState.SCHEDULED, ShowState.LIVE, ShowState.ENDED],
        [ShowState.SCHEDULED, ShowState.CANCELLED],
    )


# --- editable fields ----------------------------------------------------------------------


@pytest.mark.parametrize(("state", "name"), list(itertools.product(list(ShowState), SHOW_FIELDS)))
def test_each_field_is_editable_only_in_its_states(state: ShowState, name: str) -> None:
    if name in EDITABLE[state]:
        check_editable(state, {name})  # no exception
    else:
        with pytest.raises(Conflict) as error:
            check_editable(state, {name})
        assert error.value.field == name
        assert error.value.message == f"{name} cannot change while the show is {state.value}"


@pytest.mark.parametrize("state", list(ShowState))
def test_changing_nothing_is_always_allowed(state: ShowState) -> None:
    check_editable(state, set())
    check_editable(state, EDITABLE[state])


def test_scheduled_show_may_change_everything_at_once() -> None:
    check_editable(ShowState.SCHEDULED, set(SHOW_FIELDS))
    with pytest.raises(Conflict) as error:
        check_editable(ShowState.SCHEDULED, {"title", "id"})
    assert error.value.field == "id"


def test_first_frozen_field_in_name_order_is_reported() -> None:
    with pytest.raises(Conflict) as error:
        check_editable(ShowState.LIVE, {"title", "scheduled_start", "currency", "locale"})
    assert error.value.field == "currency"
    with pytest.raises(Conflict) as error:
        check_editable(ShowState.ENDED, {"title", "description"})
    assert error.value.field == "description"


# --- error types --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [InvalidValue, Conflict, NotFound])
def test_domain_errors_carry_message_and_field(kind: type[DomainError]) -> None:
    error = kind("went wrong", field="title.fr")
    assert isinstance(error, DomainError) and isinstance(error, Exception)
    assert (error.message, error.field, str(error)) == ("went wrong", "title.fr", "went wrong")
    assert kind("no field").field is None


def test_domain_error_kinds_are_distinct() -> None:
    assert not issubclass(Conflict, InvalidValue)
    assert not issubclass(InvalidValue, Conflict)
    assert not issubclass(NotFound, (InvalidValue, Conflict))
