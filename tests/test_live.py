"""The live room over Socket.IO with the real python-socketio client: join snapshots, chat
fan-out in coalesced frames, the join race, rate limits, banned words and bad input."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import socketio

from server.app import create_app
from server.config import Settings
from server.realtime import live
from server.realtime.rooms import (
    BACKLOG_FRAME_BYTES,
    FRAME_INTERVAL,
    GROUPS,
    PEAK_INTERVAL,
    PRESENCE_INTERVAL,
)
from server.store.db import Database
from tests.conftest import Api, create_show, host_token, snapshot, until, viewer_token


class LiveClient:
    """One socket: collects every frame and calls events with acks."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.frames: list[dict[str, Any]] = []
        self.arrived: list[float] = []  # each frame's arrival, on the loop's clock
        self.removed: list[dict[str, Any]] = []
        self.sio.on("frame", self._frame, namespace="/live")
        self.sio.on("removed", self.removed.append, namespace="/live")

    async def connect(
        self, url: str, *, token: str | None = None, cookie: str | None = None
    ) -> None:
        await self.sio.connect(
            url,
            namespaces=["/live"],
            auth={"token": token} if token else None,
            headers={"Cookie": f"showroom_guest={cookie}"} if cookie else {},
            transports=["websocket"],
            wait_timeout=5,
        )

    def _frame(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        self.arrived.append(asyncio.get_running_loop().time())

    async def call(self, event: str, *payload: Any) -> Any:
        return await self.sio.call(event, *payload, namespace="/live", timeout=5)

    def events(self, kind: str = "chat.message") -> list[dict[str, Any]]:
        return [e for f in self.frames for e in f["events"] if e["type"] == kind]


@pytest.fixture
async def room(
    db: Database, settings: Settings, aiohttp_client: Any
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """Start a server with the given setting overrides; returns (url, api client)."""
    clients: list[LiveClient] = []

    async def start(**overrides: Any) -> tuple[str, Callable[[], Awaitable[LiveClient]], Api]:
        app = create_app(replace(settings, **{"chat_burst": 100, **overrides}))
        client = await aiohttp_client(app)
        url = str(client.make_url("/"))
        from server.keys import OPENAPI

        async def connect(token: str | None = None, cookie: str | None = None) -> LiveClient:
            live_client = LiveClient()
            await live_client.connect(url, token=token, cookie=cookie)
            clients.append(live_client)
            return live_client

        return url, connect, Api(client, app[OPENAPI])

    yield start
    for c in clients:
        await c.sio.disconnect()


async def settle() -> None:
    await asyncio.sleep(FRAME_INTERVAL * 3)


async def test_chat_reaches_everyone_in_coalesced_frames(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    alice, bob = (
        await connect(viewer_token("alice", "Alice")),
        await connect(viewer_token("bob", "Bob")),
    )
    for client in (alice, bob):
        assert (await client.call("join", {"show_id": show["id"]}))["ok"]
    acks = [await alice.call("chat:send", {"text": f"  msg {n}\n "}) for n in range(8)]
    assert all(a["ok"] for a in acks) and acks[0]["message"]["text"] == "msg 0"
    await settle()
    received = bob.events()
    assert [m["text"] for m in received] == [f"msg {n}" for n in range(8)]  # all, once, in order
    assert [m["seq"] for m in received] == sorted({m["seq"] for m in received})
    assert (
        len([f for f in bob.frames if any(e["type"] == "chat.message" for e in f["events"])]) <= 3
    )
    assert received[0]["author"]["name"] == "Alice" and "alice" not in str(received[0]["author"])
    assert alice.events() == received  # the sender sees its own messages in the same frames


async def test_join_snapshot(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    first = await connect(viewer_token("m1"))
    await first.call("join", {"show_id": show["id"]})
    for n in range(55):
        await first.call("chat:send", {"text": f"hello {n}"})
    second_tab = await connect(viewer_token("m1"))
    ack = await second_tab.call("join", {"show_id": show["id"]})
    snap = ack["snapshot"]
    assert [m["text"] for m in snap["messages"]] == [
        f"hello {n}" for n in range(5, 55)
    ]  # the last 50
    assert snap["seq"] == 55 and snap["show"]["state"] == "scheduled"
    assert snap["pinned_products"] == [] and snap["viewers"] == 1  # two tabs, one member
    history = await api.call("GET", f"/api/v1/shows/{show['id']}/chat?limit=20", auth=admin)
    assert [m["seq"] for m in history.body["items"]] == list(range(36, 56))
    older = await api.call(
        "GET",
        f"/api/v1/shows/{show['id']}/chat?limit=20&before={history.body['next_before']}",
        auth=admin,
    )
    assert [m["seq"] for m in older.body["items"]] == list(range(16, 36))


@pytest.mark.parametrize("pause", ["before-read", "after-read"])
async def test_join_race_loses_and_repeats_nothing(
    room: Any, admin: str, monkeypatch: Any, pause: str
) -> None:
    """Messages arrive while the joiner's snapshot is being read: committed before the read
    (so they are in the snapshot and in flushed frames) or after it (so only in frames)."""
    _, connect, api = await room()
    show = await create_show(api, admin)
    talker = await connect(viewer_token("talker"))
    await talker.call("join", {"show_id": show["id"]})
    for n in range(3):
        await talker.call("chat:send", {"text": f"before {n}"})

    reading, release = asyncio.Event(), asyncio.Event()
    original = live.room.access_room_snapshots

    async def slow_snapshot(db: Database, show_id: Any, *rest: Any) -> Any:
        if pause == "before-read":
            reading.set()
            await release.wait()
            return await original(db, show_id, *rest)
        result = await original(db, show_id, *rest)
        reading.set()
        await release.wait()
        return result

    monkeypatch.setattr(live.room, "access_room_snapshots", slow_snapshot)
    joiner = await connect(viewer_token("joiner"))
    join = asyncio.create_task(joiner.call("join", {"show_id": show["id"]}))
    await reading.wait()
    for n in range(4):
        await talker.call("chat:send", {"text": f"during {n}"})
    await settle()  # those messages are flushed while the joiner is still joining
    release.set()
    ack = await join
    for n in range(3):
        await talker.call("chat:send", {"text": f"after {n}"})
    await settle()

    seen = [m["text"] for m in ack["snapshot"]["messages"]] + [m["text"] for m in joiner.events()]
    expected = (
        [f"before {n}" for n in range(3)]
        + [f"during {n}" for n in range(4)]
        + [f"after {n}" for n in range(3)]
    )
    assert seen == expected


async def test_show_state_changes_reach_the_room(room: Any, admin: str, db: Database) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    viewer = await connect(viewer_token())
    await viewer.call("join", {"show_id": show["id"]})
    host = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=host)).status == 200
    await settle()
    assert [e["state"] for e in viewer.events("show.state")] == ["live"]
    await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=host)
    await settle()
    assert [e["state"] for e in viewer.events("show.state")] == ["live", "ended"]
    closed = await viewer.call("chat:send", {"text": "still there?"})
    assert closed["error"]["code"] == "conflict" and "room is closed" in closed["error"]["message"]


def counts(client: LiveClient) -> list[int]:
    return [e["viewers"] for e in client.events("presence")]


async def test_presence_counts_members_not_sockets(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    tabs = [await connect(viewer_token("same-member")) for _ in range(2)]
    other = await connect(viewer_token("someone-else"))
    for client in (*tabs, other):
        await client.call("join", {"show_id": show["id"]})
    # Counts go out at most once a second: the last change can take that long to arrive.
    await until(lambda: 2 in counts(other), "a count of two viewers", within=PRESENCE_INTERVAL * 4)
    await asyncio.sleep(PRESENCE_INTERVAL + FRAME_INTERVAL * 2)  # room for a wrong later count
    for client in (*tabs, other):
        assert counts(client)[-1] == 2 and max(counts(client)) == 2


async def test_presence_goes_out_at_most_once_a_second(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    watcher = await connect(viewer_token("watcher"))
    await watcher.call("join", {"show_id": show["id"]})
    for n in range(6):  # a new viewer every 300 ms: the count changes faster than it is sent
        await (await connect(viewer_token(f"arrival-{n}"))).call("join", {"show_id": show["id"]})
        await asyncio.sleep(0.3)
    await until(
        lambda: counts(watcher)[-1:] == [7], "the final count", within=PRESENCE_INTERVAL * 4
    )
    arrivals = [
        at
        for frame, at in zip(watcher.frames, watcher.arrived, strict=True)
        if any(e["type"] == "presence" for e in frame["events"])
    ]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps and min(gaps) > PRESENCE_INTERVAL - FRAME_INTERVAL  # a frame may arrive early
    assert len(counts(watcher)) < 7  # coalesced, not one per arrival


async def test_peak_viewers_is_stored_and_never_falls(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    assert show["peak_viewers"] == 0
    viewers = [await connect(viewer_token(f"peak-{n}")) for n in range(3)]
    tab = await connect(viewer_token("peak-0"))  # a second tab is not a second viewer
    for client in (*viewers, tab):
        assert (await client.call("join", {"show_id": show["id"]}))["ok"]
    await until(
        lambda: counts(viewers[0])[-1:] == [3], "three viewers", within=PRESENCE_INTERVAL * 4
    )
    for client in viewers[1:]:
        assert (await client.call("leave", {}))["ok"]
    await until(lambda: counts(viewers[0])[-1:] == [1], "one viewer", within=PRESENCE_INTERVAL * 4)
    await asyncio.sleep(PEAK_INTERVAL + FRAME_INTERVAL)
    stored = await api.call("GET", f"/api/v1/shows/{show['id']}", auth=admin)
    assert stored.body["peak_viewers"] == 3


async def test_rate_limit_is_per_member_across_tabs(room: Any, admin: str, db: Database) -> None:
    # A slow refill, so a slow database under the four sends cannot refill a token meanwhile.
    _, connect, api = await room(chat_burst=3, chat_per_second=0.5)
    show = await create_show(api, admin)
    tab1, tab2 = await connect(viewer_token("fast")), await connect(viewer_token("fast"))
    for tab in (tab1, tab2):
        await tab.call("join", {"show_id": show["id"]})
    acks = [await tab.call("chat:send", {"text": "hi"}) for tab in (tab1, tab2, tab1, tab2)]
    assert [a["ok"] for a in acks] == [True, True, True, False]
    limited = acks[3]["error"]
    assert limited["code"] == "rate_limited" and 0 < limited["retry_after_ms"] <= 2000
    history = await api.call("GET", f"/api/v1/shows/{show['id']}/chat", auth=admin)
    assert len(history.body["items"]) == 3
    await asyncio.sleep(limited["retry_after_ms"] / 1000)
    assert (await tab2.call("chat:send", {"text": "again"}))["ok"]


async def test_banned_words_masked_or_blocked(room: Any, admin: str, db: Database) -> None:
    _, connect, api = await room(banned_words=("垃圾", "scam"))
    show = await create_show(api, admin)
    viewer = await connect(viewer_token())
    await viewer.call("join", {"show_id": show["id"]})
    masked = await viewer.call("chat:send", {"text": "呢個唔係垃圾, not a SCAM"})
    assert masked["message"]["text"] == "呢個唔係＊＊, not a ＊＊＊＊"

    _, connect2, _ = await room(banned_words=("垃圾",), banned_words_mode="block")
    viewer2 = await connect2(viewer_token())
    await viewer2.call("join", {"show_id": show["id"]})
    before = await snapshot(db)
    blocked = await viewer2.call("chat:send", {"text": "垃圾"})
    assert blocked["error"]["code"] == "blocked_word"
    assert await snapshot(db) == before


async def test_text_rules(room: Any, admin: str) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    viewer = await connect(viewer_token())
    await viewer.call("join", {"show_id": show["id"]})
    family = "👨\u200d👩\u200d👧\u200d👦"
    at_limit = await viewer.call(
        "chat:send", {"text": family * 500}
    )  # 500 characters, 3,500 code points
    assert at_limit["ok"], at_limit
    over = await viewer.call("chat:send", {"text": "好" * 501})
    assert over["error"] == {
        "code": "invalid",
        "message": "message is 501 characters; the limit is 500",
        "field": "text",
    }
    blank = await viewer.call("chat:send", {"text": " \u200b\n "})
    assert blank["error"]["code"] == "invalid" and blank["error"]["field"] == "text"
    html = await viewer.call("chat:send", {"text": "<b>bold</b>"})
    assert html["message"]["text"] == "<b>bold</b>"  # stored as text; clients render it as text


async def test_bad_input_gets_error_acks_and_keeps_the_connection(
    room: Any, admin: str, db: Database
) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    ended = await create_show(api, admin)
    await api.call("POST", f"/api/v1/shows/{ended['id']}/start", auth=admin)
    await api.call("POST", f"/api/v1/shows/{ended['id']}/end", auth=admin)
    other_host = await host_token(db, ended["id"])
    viewer = await connect(viewer_token())
    host = await connect(other_host)
    before = await snapshot(db)
    cases = [
        (viewer, ("chat:send", {"text": "hi"}), "not_joined"),
        (viewer, ("dance", {}), "unknown_event"),
        (viewer, ("join", "not an object"), "bad_payload"),
        (viewer, ("join", {"show_id": 42}), "bad_payload"),
        (viewer, ("join", {"show_id": "nope"}), "not_found"),
        (viewer, ("join", {"show_id": "00000000-0000-4000-8000-000000000000"}), "not_found"),
        (viewer, ("join", {"show_id": ended["id"]}), "show_closed"),
        (viewer, ("chat:send", {"text": "x" * 20000}), "payload_too_large"),
        (host, ("join", {"show_id": show["id"]}), "forbidden"),
    ]
    for client, (event, payload), code in cases:
        ack = await client.call(event, payload)
        assert ack["ok"] is False and ack["error"]["code"] == code, (event, payload, ack)
        assert ack["error"]["message"]
    assert await snapshot(db) == before
    # Still connected and usable after all of that.
    assert (await viewer.call("join", {"show_id": show["id"]}))["ok"]
    assert (await viewer.call("chat:send", {"text": 5}))["error"]["code"] == "bad_payload"
    assert (await viewer.call("chat:send", {"text": "hi", "colour": "red"}))["error"][
        "code"
    ] == "bad_payload"
    assert (await viewer.call("chat:send", {"text": "ok now"}))["ok"]


async def test_connecting_needs_credentials(room: Any, admin: str) -> None:
    url, connect, api = await room()
    show = await create_show(api, admin)
    for token in (None, "shr_admin_forged", viewer_token(expires_in=-300)):
        client = LiveClient()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(url, token=token)
    guest = (await api.call("POST", "/api/v1/guest-session")).cookies["showroom_guest"].value
    visitor = await connect(cookie=guest)
    ack = await visitor.call("join", {"show_id": show["id"]})
    assert ack["ok"] and ack["snapshot"]["you"]["role"] == "guest"
    sent = await visitor.call("chat:send", {"text": "guest here"})
    assert sent["message"]["author"]["name"] == "Guest"


async def test_late_publish_of_an_event_the_snapshot_holds_is_not_resent(
    room: Any, admin: str, db: Database, settings: Settings, monkeypatch: Any
) -> None:
    """A message commits, the joiner's snapshot includes it, and only then does its publish
    reach the room (publishing follows the commit): the joiner must not get it again, while
    members who joined earlier get it once."""
    _, connect, api = await room()
    show = await create_show(api, admin)
    talker = await connect(viewer_token("talker"))
    await talker.call("join", {"show_id": show["id"]})
    from server.domain.chat import BannedWords
    from server.keys import ROOMS
    from server.realtime import payloads
    from server.services.identity import Principal, Role

    hub = api.client.server.app[ROOMS]
    quiet = await live.chat.do_post_chat(
        db, uuid.UUID(show["id"]), Principal(Role.VIEWER, "ghost", "Ghost"), "quiet", BannedWords()
    )
    original = live.room.access_room_snapshots

    async def then_late_publish(database: Database, show_id: Any, *rest: Any) -> Any:
        result = await original(database, show_id, *rest)
        hub.publish(str(show_id), payloads.chat_message(quiet, settings.secret_key))
        return result

    monkeypatch.setattr(live.room, "access_room_snapshots", then_late_publish)
    joiner = await connect(viewer_token("joiner"))
    ack = await joiner.call("join", {"show_id": show["id"]})
    assert ack["snapshot"]["seq"] == quiet.seq
    await talker.call("chat:send", {"text": "two"})
    await settle()
    assert [m["text"] for m in ack["snapshot"]["messages"]] + [
        m["text"] for m in joiner.events()
    ] == ["quiet", "two"]
    assert [m["text"] for m in talker.events()] == ["quiet", "two"]


async def test_questions_votes_and_the_hosts_queue(room: Any, admin: str, db: Database) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    host = await connect(await host_token(db, show["id"]))
    ann, ben = await connect(viewer_token("ann", "Ann")), await connect(viewer_token("ben", "Ben"))
    for client in (host, ann, ben):
        assert (await client.call("join", {"show_id": show["id"]}))["ok"]

    first = (await ann.call("question:ask", {"text": " 有冇細碼？ "}))["question"]
    second = (await ben.call("question:ask", {"text": "Ships to Macau?"}))["question"]
    assert (first["text"], first["state"], first["votes"]) == ("有冇細碼？", "open", 0)
    voted = await ben.call("question:vote", {"question_id": first["id"]})
    assert voted["question"]["votes"] == 1 and voted["voted"] is True
    again = await ben.call("question:vote", {"question_id": first["id"], "vote": True})
    assert again["question"]["votes"] == 1  # one vote per member
    await ann.call("question:vote", {"question_id": first["id"]})
    retracted = await ben.call("question:vote", {"question_id": first["id"], "vote": False})
    assert retracted["question"]["votes"] == 1

    refused = await ann.call("question:mark", {"question_id": second["id"], "state": "answered"})
    assert refused["error"]["code"] == "forbidden"
    await host.call("question:mark", {"question_id": second["id"], "state": "answering"})
    done = await host.call("question:mark", {"question_id": second["id"], "state": "answered"})
    assert done["question"]["state"] == "answered"
    await settle()
    latest = {}
    for event in ann.events("question"):
        latest[event["id"]] = event
    assert (latest[first["id"]]["votes"], latest[second["id"]]["state"]) == (1, "answered")

    late = await connect(viewer_token("ann", "Ann"))  # Ann on another device
    snap = (await late.call("join", {"show_id": show["id"]}))["snapshot"]
    assert [q["id"] for q in snap["questions"]] == [first["id"]]  # answered ones leave the queue
    assert snap["my_votes"] == [first["id"]]
    listed = await api.call("GET", f"/api/v1/shows/{show['id']}/questions", auth=admin)
    assert [q["id"] for q in listed.body["items"]] == [first["id"], second["id"]]
    answered = await api.call(
        "GET", f"/api/v1/shows/{show['id']}/questions?state=answered", auth=admin
    )
    assert [q["id"] for q in answered.body["items"]] == [second["id"]]

    bad = [
        ("question:ask", {"text": "問" * 301}, "invalid"),
        ("question:vote", {"question_id": "00000000-0000-4000-8000-000000000000"}, "not_found"),
        ("question:vote", {"question_id": first["id"], "vote": "yes"}, "bad_payload"),
        ("question:mark", {"question_id": first["id"], "state": "deleted"}, "bad_payload"),
    ]
    for event, payload, code in bad:
        caller = host if event == "question:mark" else ann
        ack = await caller.call(event, payload)
        assert ack["error"]["code"] == code, (event, ack)


async def test_reactions_are_totals_at_most_every_250ms(
    room: Any, admin: str, db: Database
) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    tapper, watcher = await connect(viewer_token("tapper")), await connect(viewer_token("watcher"))
    for client in (tapper, watcher):
        await client.call("join", {"show_id": show["id"]})
    started = asyncio.get_running_loop().time()
    for _ in range(10):
        assert (await tapper.call("react", {"kind": "heart"}))["ok"]
    assert (await tapper.call("react", {"kind": "clap", "count": 5}))["ok"]
    elapsed = asyncio.get_running_loop().time() - started
    await asyncio.sleep(0.6)
    updates = watcher.events("reactions")
    assert updates and updates[-1]["totals"] == {"heart": 10, "clap": 5}
    assert len(updates) <= int((elapsed + 0.6) / 0.25) + 2  # totals, not one event per tap
    async with db.read() as session:
        from sqlalchemy import text

        stored = dict((await session.execute(text("SELECT kind, count FROM show_reactions"))).all())
    assert stored == {"heart": 10, "clap": 5}
    joiner = await connect(viewer_token("joiner"))
    assert (await joiner.call("join", {"show_id": show["id"]}))["snapshot"]["reactions"] == {
        "heart": 10,
        "clap": 5,
    }

    for payload in (
        {"kind": "poop"},
        {"kind": "heart", "count": 0},
        {"kind": "heart", "count": 21},
        {"kind": "heart", "count": True},
    ):
        ack = await tapper.call("react", payload)
        assert ack["error"]["code"] == "bad_payload", payload
    acks = [await tapper.call("react", {"kind": "fire"}) for _ in range(25)]
    assert any(a.get("error", {}).get("code") == "rate_limited" for a in acks)


async def test_moderation(room: Any, admin: str, db: Database) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    other_show = await create_show(api, admin, title="Next week")
    host = await connect(await host_token(db, None))
    mia, tom, val = [await connect(viewer_token(n, n.title())) for n in ("mia", "tom", "val")]
    ids = {}
    for name, client in (("host", host), ("mia", mia), ("tom", tom), ("val", val)):
        ids[name] = (await client.call("join", {"show_id": show["id"]}))["snapshot"]["you"][
            "author_id"
        ]

    # Delete: gone for everyone, from history and from later snapshots.
    spam = (await tom.call("chat:send", {"text": "cheap pills here"}))["message"]
    keep = (await val.call("chat:send", {"text": "how much is the serum?"}))["message"]
    assert (await val.call("chat:delete", {"message_id": spam["id"]}))["error"][
        "code"
    ] == "forbidden"
    assert (await host.call("chat:delete", {"message_id": spam["id"]}))["ok"]
    await settle()
    assert [e["id"] for e in val.events("chat.deleted")] == [spam["id"]]
    history = await api.call("GET", f"/api/v1/shows/{show['id']}/chat", auth=admin)
    assert [m["id"] for m in history.body["items"]] == [keep["id"]]

    # Pin one message; unpin.
    pinned = await host.call("chat:pin", {"message_id": keep["id"]})
    assert pinned["settings"]["pinned"]["id"] == keep["id"]
    await settle()
    assert val.events("room.settings")[-1]["pinned"]["id"] == keep["id"]
    late = await connect(viewer_token("late"))
    snap = (await late.call("join", {"show_id": show["id"]}))["snapshot"]
    assert snap["pinned"]["id"] == keep["id"] and spam["id"] not in [
        m["id"] for m in snap["messages"]
    ]
    assert (await host.call("chat:pin", {"message_id": None}))["settings"]["pinned"] is None

    # Mute: still watching, not talking; lifted again.
    assert (await host.call("member:mute", {"author_id": ids["tom"]}))["ok"]
    assert (await tom.call("chat:send", {"text": "hello?"}))["error"]["code"] == "muted"
    assert (await tom.call("question:ask", {"text": "why?"}))["error"]["code"] == "muted"
    assert (await host.call("member:unmute", {"author_id": ids["tom"]}))["ok"]
    assert (await tom.call("chat:send", {"text": "sorry"}))["ok"]

    # The host names a moderator; a moderator bans for this show, only the host for all shows.
    assert (await mia.call("chat:delete", {"message_id": keep["id"]}))["error"][
        "code"
    ] == "forbidden"
    assert (await host.call("moderator:add", {"author_id": ids["mia"]}))["ok"]
    assert (await mia.call("member:ban", {"author_id": ids["tom"], "all_shows": True}))["error"][
        "code"
    ] == "forbidden"
    assert (await mia.call("member:ban", {"author_id": ids["tom"]}))["ok"]
    await settle()
    assert tom.removed == [{"show_id": show["id"], "reason": "banned"}]
    assert (await tom.call("chat:send", {"text": "still here?"}))["error"]["code"] == "not_joined"
    assert (await tom.call("join", {"show_id": show["id"]}))["error"]["code"] == "banned"
    assert (await tom.call("join", {"show_id": other_show["id"]}))["ok"]  # this show only
    await tom.call("leave", {})
    assert (await host.call("member:ban", {"author_id": ids["tom"], "all_shows": True}))["ok"]
    assert (await tom.call("join", {"show_id": other_show["id"]}))["error"]["code"] == "banned"
    assert (await host.call("member:ban", {"author_id": ids["host"]}))["error"]["code"] == "invalid"
    assert (await host.call("member:mute", {"author_id": "a_nobody"}))["error"][
        "code"
    ] == "not_found"

    # Slow mode: one message per member every N seconds; the host is not held back.
    assert (await host.call("room:slow_mode", {"seconds": 2}))["settings"]["slow_mode_seconds"] == 2
    assert (await late.call("chat:send", {"text": "first"}))["ok"]
    slowed = await late.call("chat:send", {"text": "second"})
    assert slowed["error"]["code"] == "slow_mode" and 0 < slowed["error"]["retry_after_ms"] <= 2000
    assert (await host.call("chat:send", {"text": "welcome!"}))["ok"]
    assert (await host.call("chat:send", {"text": "more news"}))["ok"]
    assert (await host.call("room:slow_mode", {"seconds": 301}))["error"]["code"] == "invalid"
    assert (await host.call("room:slow_mode", {"seconds": "2"}))["error"]["code"] == "bad_payload"
    assert (await val.call("room:slow_mode", {"seconds": 0}))["error"]["code"] == "forbidden"
    await host.call("room:slow_mode", {"seconds": 0})
    assert (await late.call("chat:send", {"text": "third"}))["ok"]


async def test_repair_delivers_what_pubsub_dropped(
    room: Any, admin: str, db: Database, settings: Settings
) -> None:
    """Changes made elsewhere and never published here (another node, pub/sub away) reach
    this node's viewers from the database: messages, questions, deletes, pins, state."""
    from server.domain.chat import BannedWords
    from server.keys import ROOMS
    from server.services import engagement, moderation
    from server.services.identity import Principal, Role

    _, connect, api = await room()
    show = await create_show(api, admin)
    viewer = await connect(viewer_token("watcher"))
    await viewer.call("join", {"show_id": show["id"]})
    hub = api.client.server.app[ROOMS]
    show_id = uuid.UUID(show["id"])
    elsewhere = Principal(Role.VIEWER, "far-away", "Far")
    boss = Principal(Role.ADMIN, "admin-key", "Boss")
    first = await live.chat.do_post_chat(db, show_id, elsewhere, "from elsewhere", BannedWords())
    second = await live.chat.do_post_chat(db, show_id, elsewhere, "pin me", BannedWords())
    asked = await engagement.do_ask(db, show_id, elsewhere, "a question?", BannedWords())
    await moderation.do_delete_message(db, show_id, boss, first.id)
    await moderation.do_pin(db, show_id, boss, second.id)
    await api.call(
        "POST", f"/api/v1/shows/{show['id']}/start", auth=admin
    )  # published: arrives anyway
    await settle()
    assert viewer.events() == []  # nothing of the above was published to this node

    room_state = hub.rooms[show["id"]]
    await live.catch_up(db, hub, settings.secret_key, {show["id"]: room_state.contiguous})
    await live.catch_up(
        db, hub, settings.secret_key, {show["id"]: room_state.contiguous}
    )  # idempotent
    await settle()
    assert [m["text"] for m in viewer.events()] == ["pin me"]  # the deleted one never shows
    assert [q["id"] for q in viewer.events("question")] == [str(asked.id)]
    assert {e["id"] for e in viewer.events("chat.deleted")} <= {str(first.id)}
    assert viewer.events("room.settings")[-1]["pinned"]["id"] == str(second.id)
    assert [e["state"] for e in viewer.events("show.state")] == ["live"]


class PollingViewer:
    """A viewer on Engine.IO long-polling that stops polling: the slowest possible reader.
    Nothing it is sent leaves the server until it polls again."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http, self.base, self.sid = http, f"{url}socket.io/?EIO=4&transport=polling", ""

    async def _post(self, packet: str) -> None:
        async with self.http.post(f"{self.base}&sid={self.eio}", data=packet.encode()) as r:
            assert r.status == 200, await r.text()

    async def poll(self) -> list[str]:
        async with self.http.get(f"{self.base}&sid={self.eio}") as r:
            packets = (await r.text()).split("\x1e")
        if "2" in packets:
            await self._post("3")  # answer Engine.IO's ping, or the session is closed
        return packets

    async def join(self, token: str, show_id: str) -> None:
        async with self.http.get(self.base) as r:
            self.eio = json.loads((await r.text())[1:])["sid"]
        await self._post("40/live," + json.dumps({"token": token}))
        connected = [p for p in await self.poll() if p.startswith("40/live,")]
        self.sid = json.loads(connected[0][len("40/live,") :])["sid"]
        await self._post('42/live,1["join",' + json.dumps({"show_id": show_id}) + "]")
        while not any(p.startswith("43/live,1") for p in await self.poll()):
            pass


async def test_slow_viewer_skips_frames_and_is_told_of_the_gap(room: Any, admin: str) -> None:
    url, connect, api = await room(frame_backlog=5)
    show = await create_show(api, admin)
    from server.keys import ROOMS

    hub = api.client.server.app[ROOMS]
    talker = await connect(viewer_token("talker"))
    await talker.call("join", {"show_id": show["id"]})
    async with aiohttp.ClientSession() as http:
        slow = PollingViewer(http, url)
        await slow.join(viewer_token("slow"), show["id"])
        most_queued = 0
        for n in range(40):  # about 20 frames' worth of chat, unread by the slow viewer
            await talker.call("chat:send", {"text": f"message {n}"})
            await asyncio.sleep(0.05)
            most_queued = max(most_queued, hub.backlog(slow.sid))
        assert hub.frames_skipped > 0
        assert most_queued <= 5 + 2  # the bound, plus a ping or an ack
        await settle()
        assert len(talker.events()) == 40  # the fast viewer missed nothing

        received = await slow.poll()  # one poll takes everything queued
        assert any(p.startswith('42/live,["frame"') for p in received)
        await talker.call("chat:send", {"text": "after the gap"})
        received = await slow.poll()
        gap = [p for p in received if p.startswith('42/live,["gap"')]
        notice = json.loads(gap[0][len("42/live,") :])[1]
        assert notice["show_id"] == show["id"] and notice["missed_frames"] > 0


class StalledWebSocket:
    """A websocket viewer that stops reading after it has joined, with a small receive
    buffer: what the server writes to it piles up in the server's own write buffer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.next_id = reader, writer, 1

    @classmethod
    async def open(cls, url: str) -> StalledWebSocket:
        host, port = url.split("//")[1].rstrip("/").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101") and b"permessage-deflate" not in head, head
        return cls(reader, writer)

    def send(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        size = len(payload)
        length = bytes([0x80 | size]) if size < 126 else bytes([0xFE]) + size.to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(b"\x81" + length + mask + masked)

    async def receive(self) -> str:
        while True:
            _first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            text = (await self.reader.readexactly(size)).decode()
            if text == "2":  # Engine.IO ping
                self.send("3")
                continue
            return text

    async def call(self, event: str, payload: dict[str, Any]) -> Any:
        ack_id, self.next_id = self.next_id, self.next_id + 1
        self.send(f"42/live,{ack_id}" + json.dumps([event, payload]))
        while not (text := await self.receive()).startswith(f"43/live,{ack_id}"):
            pass
        return json.loads(text[len(f"43/live,{ack_id}") :])[0]

    async def join(self, token: str, show_id: str) -> None:
        assert (await self.receive()).startswith("0")
        self.send("40/live," + json.dumps({"token": token}))
        assert (await self.receive()).startswith("40/live,")
        assert (await self.call("join", {"show_id": show_id}))["ok"]


async def test_websocket_viewers_share_one_written_frame_in_order(room: Any, admin: str) -> None:
    """A frame goes to every websocket viewer as the same bytes written straight to its
    connection, and still after the acks and frames queued before it."""
    _url, connect, api = await room()
    show = await create_show(api, admin)
    from server.keys import ROOMS

    hub = api.client.server.app[ROOMS]
    viewers = [await connect(viewer_token(f"v{n}")) for n in range(3)]
    for viewer in viewers:
        await viewer.call("join", {"show_id": show["id"]})
    for n in range(20):
        ack = await viewers[n % 3].call("chat:send", {"text": f"m{n}"})
        assert ack["ok"]
        if n % 5 == 0:
            await settle()
    await settle()
    assert hub.frames_written >= 3 * 3  # several frames, each written to three viewers
    for viewer in viewers:
        assert [m["text"] for m in viewer.events()] == [f"m{n}" for n in range(20)]


async def test_a_room_is_served_one_group_per_turn_and_every_viewer_gets_everything(
    room: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each turn (FRAME_INTERVAL / GROUPS) writes frames to one group of the room only, every
    group gets its turn, and each viewer still receives every message once, in order."""
    _url, connect, api = await room()
    show = await create_show(api, admin)
    from server.keys import ROOMS

    hub = api.client.server.app[ROOMS]
    viewers = [await connect(viewer_token(f"g{n}")) for n in range(2 * GROUPS)]
    for viewer in viewers:
        assert (await viewer.call("join", {"show_id": show["id"]}))["ok"]
    turns: list[tuple[int, set[int]]] = []
    flush_room, send = hub._flush_room, hub._send

    async def recording(room_: Any, now: float, turn: int) -> None:
        groups: set[int] = set()

        def spy(member: Any, socket: Any, out: Any, extra: Any) -> None:
            groups.add(member.group)
            send(member, socket, out, extra)

        monkeypatch.setattr(hub, "_send", spy)
        await flush_room(room_, now, turn)
        if groups:
            turns.append((turn, groups))

    monkeypatch.setattr(hub, "_flush_room", recording)
    for n in range(12):
        assert (await viewers[n % len(viewers)].call("chat:send", {"text": f"t{n}"}))["ok"]
        await asyncio.sleep(FRAME_INTERVAL / 3)
    await settle()
    assert turns and all(groups == {turn} for turn, groups in turns)
    assert {turn for turn, _ in turns} == set(range(GROUPS))
    for viewer in viewers:
        assert [m["text"] for m in viewer.events()] == [f"t{n}" for n in range(12)]


async def test_stalled_websocket_viewer_is_bounded_and_told_of_the_gap(
    room: Any, admin: str
) -> None:
    url, connect, api = await room(frame_backlog=5)
    show = await create_show(api, admin)
    from server.keys import ROOMS

    hub = api.client.server.app[ROOMS]
    talker = await connect(viewer_token("talker"))
    await talker.call("join", {"show_id": show["id"]})
    stalled = await StalledWebSocket.open(url)
    try:
        await stalled.join(viewer_token("stalled"), show["id"])
        member = list(hub.rooms[show["id"]].members.values())[-1]  # the last to join
        assert member.transport is not None
        server_socket = member.transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)  # a slow network

        largest = 0
        text = "貨" * 480  # a long message: frames of several kilobytes
        for n in range(60):
            await talker.call("chat:send", {"text": f"{n} {text}"})
            await asyncio.sleep(0.03)
            largest = max(largest, member.transport.get_write_buffer_size())
        await settle()
        assert hub.frames_skipped > 0 and member.missed > 0
        bound = 5 * BACKLOG_FRAME_BYTES
        # The bound, plus the one frame that crossed it. A frame carries what a tick gathered,
        # so on a busy machine it can hold more messages: measure the largest one sent (the
        # fast viewer got the same frames), as JSON with escaped CJK, plus packet headers.
        frame_bytes = max(
            len(json.dumps(["frame", f], separators=(",", ":"))) for f in talker.frames
        )
        assert largest < bound + frame_bytes + 64, (largest, bound, frame_bytes)
        assert len(talker.events()) == 60  # the fast viewer missed nothing

        # The viewer reads again: it drains what was written, then is told of the gap.
        seen: list[str] = []
        reading = asyncio.create_task(_read_into(stalled, seen))
        await asyncio.sleep(FRAME_INTERVAL * 4)
        await talker.call("chat:send", {"text": "after the gap"})
        for _ in range(50):
            await asyncio.sleep(FRAME_INTERVAL)
            if any("after the gap" in t for t in seen):
                break
        reading.cancel()
        gaps = [json.loads(t[len("42/live,") :])[1] for t in seen if t.startswith('42/live,["gap"')]
        assert gaps and gaps[0]["missed_frames"] > 0 and gaps[0]["show_id"] == show["id"]
        assert any("after the gap" in t for t in seen)
        gap_at = next(i for i, t in enumerate(seen) if t.startswith('42/live,["gap"'))
        assert all(
            not t.startswith('42/live,["frame"') or "after the gap" not in t for t in seen[:gap_at]
        )  # the gap notice comes before newer frames

    finally:
        stalled.writer.close()  # also when an assertion failed: no socket left for GC


async def _read_into(ws: StalledWebSocket, seen: list[str]) -> None:
    while True:
        seen.append(await ws.receive())


async def test_joins_that_arrive_together_share_reads_and_each_get_their_own_standing(
    room: Any, admin: str, db: Database
) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    from server.keys import ROOMS

    namespace = api.client.server.app[ROOMS].sio.namespace_handlers["/live"]
    host = await connect(await host_token(db, show["id"]))
    await host.call("join", {"show_id": show["id"]})
    pest, voter = await connect(viewer_token("pest")), await connect(viewer_token("voter"))
    pest_id = (await pest.call("join", {"show_id": show["id"]}))["snapshot"]["you"]["author_id"]
    await voter.call("join", {"show_id": show["id"]})
    asked = await voter.call("question:ask", {"text": "Does it come in blue?"})
    assert (await voter.call("question:vote", {"question_id": asked["question"]["id"]}))["voted"]
    assert (await host.call("member:ban", {"author_id": pest_id}))["ok"]
    await voter.call("leave", {})

    crowd = [await connect(viewer_token(f"crowd-{n}")) for n in range(24)]
    reads, commits = namespace.snapshots.rounds, namespace.registrations.rounds
    acks = await asyncio.gather(
        *(c.call("join", {"show_id": show["id"]}) for c in [*crowd, pest, voter])
    )
    *crowd_acks, pest_ack, voter_ack = acks
    assert all(a["ok"] for a in crowd_acks)
    assert len({a["snapshot"]["you"]["author_id"] for a in crowd_acks}) == 24
    assert all(a["snapshot"]["my_votes"] == [] for a in crowd_acks)
    assert not any(a["snapshot"]["you"]["moderator"] for a in crowd_acks)
    assert pest_ack["error"]["code"] == "banned"
    assert voter_ack["snapshot"]["my_votes"] == [asked["question"]["id"]]
    assert namespace.snapshots.rounds - reads <= 5  # 26 joins, a few reads
    assert namespace.registrations.rounds - commits <= 5  # and a few commits
    await settle()
    said = await crowd[5].call("chat:send", {"text": "hello from the crowd"})
    author_id = said["message"]["author"]["id"]
    assert (await host.call("member:mute", {"author_id": author_id}))["ok"]  # registered


async def test_chat_that_arrives_together_is_stored_in_one_transaction(
    room: Any, admin: str, db: Database
) -> None:
    _, connect, api = await room()
    show = await create_show(api, admin)
    from server.keys import ROOMS

    namespace = api.client.server.app[ROOMS].sio.namespace_handlers["/live"]
    host = await connect(await host_token(db, show["id"]))
    await host.call("join", {"show_id": show["id"]})
    quiet = await connect(viewer_token("quiet"))
    quiet_id = (await quiet.call("join", {"show_id": show["id"]}))["snapshot"]["you"]["author_id"]
    assert (await host.call("member:mute", {"author_id": quiet_id}))["ok"]
    talkers = [await connect(viewer_token(f"talker-{n}")) for n in range(12)]
    for talker in talkers:
        await talker.call("join", {"show_id": show["id"]})
    await settle()
    rounds = namespace.posts.rounds
    acks = await asyncio.gather(
        *(t.call("chat:send", {"text": f"together {n}"}) for n, t in enumerate(talkers)),
        quiet.call("chat:send", {"text": "let me talk"}),
    )
    *talked, refused = acks
    assert refused["error"]["code"] == "muted"
    assert all(a["ok"] for a in talked)
    seqs = [a["message"]["seq"] for a in talked]
    assert len(set(seqs)) == 12 and max(seqs) - min(seqs) == 11  # numbered without gaps
    assert namespace.posts.rounds - rounds <= 4  # 13 messages, a few transactions
    await settle()
    seen = [m["text"] for m in host.events()]
    assert sorted(seen) == sorted(f"together {n}" for n in range(12))
    history = await api.call("GET", f"/api/v1/shows/{show['id']}/chat?limit=50", auth=admin)
    assert [m["seq"] for m in history.body["items"]] == sorted(seqs)


async def test_slow_mode_holds_within_one_batch(db: Database, api: Api, admin: str) -> None:
    from server.domain.chat import BannedWords
    from server.services import chat as chat_service
    from server.services import moderation
    from server.services.identity import Principal, Role

    show = await create_show(api, admin)
    show_id = uuid.UUID(show["id"])
    host = Principal(Role.HOST, "host", "Host", show_id=show_id)
    await moderation.do_slow_mode(db, show_id, host, 30)
    ann, ben = Principal(Role.VIEWER, "ann", "Ann"), Principal(Role.VIEWER, "ben", "Ben")
    results = await chat_service.do_post_chats(
        db,
        show_id,
        [(ann, "one"), (ben, "hi"), (ann, "two"), (host, "a"), (host, "b")],
        BannedWords(),
    )
    assert [getattr(r, "text", None) for r in results] == ["one", "hi", None, "a", "b"]
    assert isinstance(results[2], moderation.Refused) and results[2].code == "slow_mode"
    assert [r.seq for r in results if isinstance(r, chat_service.ChatRecord)] == [
        results[0].seq + n
        for n in range(4)  # type: ignore[union-attr]
    ]


async def test_events_for_one_member_go_with_its_turns_frame(
    room: Any, admin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one member alone is told (its `points`) waits for that member's turn and leaves
    in the same write as its frame: telling a whole room at once costs no task or extra
    write per viewer. A socket that cannot take it keeps only the newest few."""
    _url, connect, api = await room()
    show = await create_show(api, admin)
    from server.keys import ROOMS
    from server.realtime.rooms import MAX_PERSONAL

    hub = api.client.server.app[ROOMS]
    viewers = [await connect(viewer_token(f"p{n}")) for n in range(2 * GROUPS)]
    told: dict[int, list[dict[str, Any]]] = {n: [] for n in range(len(viewers))}
    for n, viewer in enumerate(viewers):
        viewer.sio.on("points", told[n].append, namespace="/live")
        assert (await viewer.call("join", {"show_id": show["id"]}))["ok"]
    sends: list[tuple[int, int, bool, int]] = []  # (turn, member's group, a frame, own packets)
    flush_room, send = hub._flush_room, hub._send

    async def recording(room_: Any, now: float, turn: int) -> None:
        def spy(member: Any, socket: Any, out: Any, extra: Any) -> None:
            sends.append((turn, member.group, out is not None, len(extra)))
            send(member, socket, out, extra)

        monkeypatch.setattr(hub, "_send", spy)
        await flush_room(room_, now, turn)

    monkeypatch.setattr(hub, "_flush_room", recording)
    members = hub.rooms[show["id"]].members
    hub.publish(show["id"], {"type": "marker"})  # an event every member is due, and then
    for n, sid in enumerate(members):  # (before any turn can run) one for each alone
        assert hub.tell(show["id"], sid, "points", {"show_id": show["id"], "balance": n})
    assert not hub.tell(show["id"], "no-such-socket", "points", {})
    await settle()
    assert all(turn == group for turn, group, _, _ in sends)
    assert sum(own for *_, own in sends) == len(viewers)  # each told once ...
    assert all(frame for *_, frame, own in sends if own)  # ... with the frame it was due
    balances = sorted(told[n][0]["balance"] for n in told if len(told[n]) == 1)
    assert balances == list(range(len(viewers)))
    assert all(len(v.events("marker")) == 1 for v in viewers)

    # A socket that cannot take more keeps the newest few of its own events.
    sid = next(iter(members))
    monkeypatch.setattr(hub, "max_backlog", 0)  # every socket counts as too far behind
    for n in range(MAX_PERSONAL + 5):
        hub.tell(show["id"], sid, "points", {"show_id": show["id"], "balance": 100 + n})
    await settle()
    kept = members[sid].personal
    assert kept is not None and len(kept) == MAX_PERSONAL and kept[-1][1]["balance"] == 124
