"""The official JavaScript client (npm socket.io-client 4.x) in the live room: a Node script,
written only from docs/realtime.md, joins a live show over websocket and over long-polling,
chats, sends a bad event, asks and reacts. Python checks what it reports, and that its
message was stored and reached a Python viewer in the same room."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from server.app import create_app
from server.config import Settings
from server.keys import OPENAPI
from server.realtime.rooms import FRAME_INTERVAL
from server.store.db import Database
from tests.conftest import Api, create_show, viewer_token

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "js" / "live_client.mjs"
CLIENT_PACKAGE = ROOT / "node_modules" / "socket.io-client" / "package.json"


@pytest.fixture
async def server(db: Database, settings: Settings, aiohttp_client: Any) -> tuple[str, Api]:
    """A real server on 127.0.0.1 (a TCP port Node can reach) and an API client for it."""
    # `db` first: fixtures are torn down in reverse, so the app stops before the tables empty.
    app = create_app(settings)
    client = await aiohttp_client(app)
    return str(client.make_url("/")), Api(client, app[OPENAPI])


@pytest.fixture
async def viewers() -> AsyncIterator[list[socketio.AsyncClient]]:
    clients: list[socketio.AsyncClient] = []
    yield clients
    for client in clients:
        await client.disconnect()


def node_or_fail() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH: install Node.js 20, then run `make install`")
    if not CLIENT_PACKAGE.is_file():
        pytest.fail(f"{CLIENT_PACKAGE.parent} is missing: run `make install` (it runs npm ci)")
    return node


async def python_viewer(
    url: str, token: str, clients: list[socketio.AsyncClient]
) -> tuple[socketio.AsyncClient, list[dict[str, Any]]]:
    client = socketio.AsyncClient(reconnection=False)
    events: list[dict[str, Any]] = []
    client.on("frame", lambda frame: events.extend(frame["events"]), namespace="/live")
    await client.connect(
        url, namespaces=["/live"], auth={"token": token}, transports=["websocket"], wait_timeout=5
    )
    clients.append(client)
    return client, events


async def run_node(node: str, *args: str) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        process.kill()
        await process.communicate()
        pytest.fail("node tests/js/live_client.mjs did not finish in 30 s")
    assert process.returncode == 0, (
        f"node exited {process.returncode}\nstderr: {err.decode()}\nstdout: {out.decode()}"
    )
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1, out.decode()
    return dict(json.loads(lines[0]))


async def start_live_show(api: Api, admin: str) -> str:
    show_id = str((await create_show(api, admin))["id"])
    started = await api.call("POST", f"/api/v1/shows/{show_id}/start", auth=admin)
    assert started.status == 200, started.text
    return show_id


async def test_official_js_client_uses_the_live_room(
    server: tuple[str, Api], admin: str, viewers: list[socketio.AsyncClient]
) -> None:
    node = node_or_fail()
    url, api = server
    show_id = await start_live_show(api, admin)

    # A Python viewer is in the room before the JS client arrives.
    watcher, seen = await python_viewer(url, viewer_token("py-watcher", "Py"), viewers)
    joined = await watcher.call("join", {"show_id": show_id}, namespace="/live", timeout=5)
    assert joined["ok"], joined

    js_token = viewer_token("js-member", "JS 會員")
    text = "hello from socket.io-client 你好 👋"
    report = await run_node(
        node, url, show_id, js_token, viewer_token("js-polling", "JS Polling"), text
    )

    ws, polling = report["websocket"], report["polling"]
    assert report["ok"] is True
    for refused in report["refused"].values():  # refused, whatever the error's shape (below)
        assert "unauthorized" in json.dumps(refused)
    assert (ws["transport"], polling["transport"]) == ("websocket", "polling")
    assert ws["show_state"] == "live" and ws["you"]["role"] == "viewer"
    assert ws["snapshot_keys"] == sorted(
        [
            "show",
            "seq",
            "messages",
            "questions",
            "my_votes",
            "reactions",
            "pinned",
            "slow_mode_seconds",
            "pinned_products",
            "viewers",
            "stream",
            "you",
        ]
    )
    me = ws["you"]["author_id"]
    message = ws["message"]
    assert message["text"] == text and message["author"] == {
        "id": me,
        "name": "JS 會員",
        "role": "viewer",
    }
    assert ws["frame_message"] == message == polling["frame_message"]
    assert ws["bad_ack"]["ok"] is False and ws["bad_ack"]["error"]["code"] == "bad_payload"
    assert ws["unknown_ack"]["error"]["code"] == "unknown_event"
    assert ws["question"]["text"] == "有冇細碼？" and ws["frame_question"] == ws["question"]
    assert ws["reactions"]["heart"] == 3 == polling["reactions"]["heart"]

    # Fanned out: the Python viewer got the same message, question and totals in frames.
    await asyncio.sleep(FRAME_INTERVAL * 3)
    assert [e for e in seen if e["type"] == "chat.message"] == [message]
    assert [e["id"] for e in seen if e["type"] == "question"] == [ws["question"]["id"]]
    assert [e for e in seen if e["type"] == "reactions"][-1]["totals"] == {"heart": 3}

    # Stored: the chat history and the question queue hold them; the bad event stored nothing.
    history = await api.call("GET", f"/api/v1/shows/{show_id}/chat", auth=admin)
    assert history.body["items"] == [message]
    questions = await api.call("GET", f"/api/v1/shows/{show_id}/questions", auth=admin)
    assert [q["id"] for q in questions.body["items"]] == [ws["question"]["id"]]

    # The same member from Python: the same author id, and a snapshot holding it all.
    again, _ = await python_viewer(url, js_token, viewers)
    snap = (await again.call("join", {"show_id": show_id}, namespace="/live", timeout=5))[
        "snapshot"
    ]
    assert snap["you"]["author_id"] == me
    assert snap["messages"] == [message] and snap["reactions"] == {"heart": 3}
    assert [q["id"] for q in snap["questions"]] == [ws["question"]["id"]]


async def test_official_js_client_gets_the_documented_connect_error(
    server: tuple[str, Api], admin: str
) -> None:
    node = node_or_fail()
    url, api = server
    show_id = await start_live_show(api, admin)
    report = await run_node(node, url, show_id, viewer_token("a"), viewer_token("b"))
    for case, refused in report["refused"].items():
        data = refused["data"]
        assert isinstance(data, dict) and data.get("code") == "unauthorized", (case, refused)
        assert isinstance(data.get("message"), str) and data["message"], (case, refused)
