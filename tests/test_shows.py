"""Show lifecycle over HTTP: every allowed and refused transition, edits by state, paging."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from server.store.db import Database
from tests.conftest import Api, create_show, host_token

ACTIONS = ("start", "end", "cancel")
ALLOWED = {
    ("scheduled", "start"): "live",
    ("live", "end"): "ended",
    ("scheduled", "cancel"): "cancelled",
}
# How to bring a fresh show into each state.
PATH_TO = {"scheduled": [], "live": ["start"], "ended": ["start", "end"], "cancelled": ["cancel"]}


async def show_in(api: Api, admin: str, state: str) -> dict[str, Any]:
    show = await create_show(api, admin)
    for action in PATH_TO[state]:
        answer = await api.call("POST", f"/api/v1/shows/{show['id']}/{action}", auth=admin)
        assert answer.status == 200, answer.text
        show = answer.body
    assert show["state"] == state
    return show


@pytest.mark.parametrize("state", list(PATH_TO))
@pytest.mark.parametrize("action", ACTIONS)
async def test_transition_table(api: Api, admin: str, state: str, action: str) -> None:
    show = await show_in(api, admin, state)
    answer = await api.call("POST", f"/api/v1/shows/{show['id']}/{action}", auth=admin)
    after = await api.call("GET", f"/api/v1/shows/{show['id']}", auth=admin)
    if (state, action) in ALLOWED:
        assert answer.status == 200, answer.text
        assert answer.body["state"] == after.body["state"] == ALLOWED[(state, action)]
    else:
        assert answer.status == 409, answer.text
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert f"cannot {action} a show that is {state}" in answer.body["detail"]
        assert after.body == show


async def test_concurrent_go_live_succeeds_once(api: Api, admin: str) -> None:
    show = await create_show(api, admin)
    answers = await asyncio.gather(
        *[api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin) for _ in range(6)]
    )
    assert sorted(a.status for a in answers) == [200] + [409] * 5


async def test_edits_follow_the_state(api: Api, admin: str) -> None:
    show = await create_show(api, admin, description="old")
    edited = await api.call(
        "PATCH",
        f"/api/v1/shows/{show['id']}",
        auth=admin,
        json_body={
            "title": "  新標題  ",
            "scheduled_start": "2026-12-02T09:30:00+08:00",
            "locale": "en",
        },
    )
    assert edited.status == 200, edited.text
    assert (edited.body["title"], edited.body["scheduled_start"], edited.body["locale"]) == (
        "新標題",
        "2026-12-02T01:30:00Z",
        "en",
    )
    await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    moved = await api.call(
        "PATCH",
        f"/api/v1/shows/{show['id']}",
        auth=admin,
        json_body={"scheduled_start": "2026-12-03T00:00:00Z"},
    )
    assert moved.status == 409 and moved.body["errors"][0]["field"] == "scheduled_start"
    retitled = await api.call(
        "PATCH", f"/api/v1/shows/{show['id']}", auth=admin, json_body={"title": "Live now"}
    )
    assert retitled.status == 200 and retitled.body["title"] == "Live now"
    await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=admin)
    frozen = await api.call(
        "PATCH", f"/api/v1/shows/{show['id']}", auth=admin, json_body={"title": "Later"}
    )
    assert frozen.status == 409
    assert (await api.call("GET", f"/api/v1/shows/{show['id']}", auth=admin)).body[
        "title"
    ] == "Live now"


async def test_list_pages_in_schedule_order(api: Api, admin: str) -> None:
    days = [5, 1, 3, 2, 4]
    for day in days:
        await create_show(
            api, admin, title=f"day {day}", scheduled_start=f"2026-12-0{day}T12:00:00Z"
        )
    first = await api.call("GET", "/api/v1/shows?limit=2", auth=admin)
    second = await api.call("GET", "/api/v1/shows?limit=2&offset=2", auth=admin)
    last = await api.call("GET", "/api/v1/shows?limit=2&offset=4", auth=admin)
    titles = [s["title"] for page in (first, second, last) for s in page.body["items"]]
    assert titles == ["day 1", "day 2", "day 3", "day 4", "day 5"]
    assert first.body["total"] == 5 and len(last.body["items"]) == 1


async def test_scoped_host_sees_and_runs_only_its_show(api: Api, admin: str, db: Database) -> None:
    mine = await create_show(api, admin, title="mine")
    other = await create_show(api, admin, title="other")
    host = await host_token(db, mine["id"])
    listed = await api.call("GET", "/api/v1/shows", auth=host)
    assert [s["title"] for s in listed.body["items"]] == ["mine"]
    assert (await api.call("GET", f"/api/v1/shows/{other['id']}", auth=host)).status == 403
    assert (await api.call("POST", f"/api/v1/shows/{mine['id']}/start", auth=host)).status == 200
    # Hosts run shows; scheduling, editing and cancelling stay with the brand's admins.
    assert (await api.call("POST", f"/api/v1/shows/{other['id']}/cancel", auth=host)).status == 403
    assert (
        await api.call("PATCH", f"/api/v1/shows/{mine['id']}", auth=host, json_body={"title": "x"})
    ).status == 403
    any_show = await host_token(db, None)
    assert (
        await api.call("POST", f"/api/v1/shows/{other['id']}/start", auth=any_show)
    ).status == 200
