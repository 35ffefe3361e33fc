"""Two real server processes share rooms through the real Redis: chat, show state and the
viewer count cross processes; when Redis goes away each keeps serving its viewers and
every message still arrives once."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.conftest import (
    SECRET_KEY,
    VIEWER_SECRET,
    product_body,
    unavailable,
    until,
    viewer_token,
)
from tests.test_live import LiveClient

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


class TcpProxy:
    """Stands between the servers and Redis, so a test can take Redis away and bring it back."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._connect, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(REDIS_HOST, REDIS_PORT)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()
                self.writers.discard(dst)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    probe = Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        await probe.ping()
    except Exception as exc:
        unavailable(f"Redis at {REDIS_HOST}:{REDIS_PORT} is unavailable: {exc}")
    finally:
        await probe.aclose()
    tcp = TcpProxy()
    await tcp.start()
    yield tcp
    if tcp.server is not None and tcp.server.is_serving():
        await tcp.stop()


@pytest.fixture
async def nodes(database_url: str, proxy: TcpProxy, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Two `showroom serve` processes on one database and (through the proxy) one Redis."""
    processes, urls = [], []
    for n in range(2):
        port = free_port()
        env = {
            **os.environ,
            "SHOWROOM_PORT": str(port),
            "SHOWROOM_DATA_DIR": str(tmp_path / f"node{n}"),
            "DATABASE_URL": database_url,
            "REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
            "SHOWROOM_SECRET_KEY": SECRET_KEY,
            "SHOWROOM_VIEWER_JWT_SECRET": VIEWER_SECRET,
            "SHOWROOM_CHAT_BURST": "50",
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        async with aiohttp.ClientSession() as http:
            for url in urls:
                for _ in range(150):
                    try:
                        async with http.get(f"{url}/readyz") as response:
                            if response.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"{url} did not become ready")
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()


def texts(client: LiveClient) -> list[str]:
    return [m["text"] for m in client.events()]


async def test_two_processes_share_a_room_and_survive_redis_going_away(
    nodes: list[str], proxy: TcpProxy, admin: str
) -> None:
    node1, node2 = nodes
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
        async with http.post(
            f"{node1}/api/v1/shows",
            json={"title": "Both", "scheduled_start": "2026-12-01T12:00:00Z"},
        ) as r:
            show = await r.json()
        async with http.post(f"{node1}/api/v1/products", json=product_body("PIN-1")) as r:
            assert r.status == 201
        alice, bob = LiveClient(), LiveClient()
        await alice.connect(node1, token=viewer_token("alice", "Alice"))
        await bob.connect(node2, token=viewer_token("bob", "Bob"))
        try:
            for client in (alice, bob):
                assert (await client.call("join", {"show_id": show["id"]}))["ok"]

            # Chat crosses processes both ways.
            assert (await alice.call("chat:send", {"text": "from node 1"}))["ok"]
            await until(lambda: "from node 1" in texts(bob), "node 1's chat on node 2")
            assert (await bob.call("chat:send", {"text": "from node 2"}))["ok"]
            await until(lambda: "from node 2" in texts(alice), "node 2's chat on node 1")

            # The viewer count is summed across processes, in members.
            def viewers(client: LiveClient) -> int | None:
                counts = client.events("presence")
                return counts[-1]["viewers"] if counts else None

            await until(
                lambda: viewers(alice) == 2 and viewers(bob) == 2, "a count of 2 on both nodes"
            )
            # The stored peak is the summed count: each process alone only ever saw one.
            for _ in range(60):
                async with http.get(f"{node1}/api/v1/shows/{show['id']}") as r:
                    peak = (await r.json())["peak_viewers"]
                if peak == 2:
                    break
                await asyncio.sleep(0.1)
            assert peak == 2

            # A state change made through one process reaches viewers on the other.
            async with http.post(f"{node2}/api/v1/shows/{show['id']}/start") as r:
                assert r.status == 200
            await until(
                lambda: [e["state"] for e in alice.events("show.state")] == ["live"],
                "show.state on node 1",
            )

            # One allowance per member across processes: reactions are 20 at once, and a
            # second tab on the other process does not get 20 more.
            carol, carol_tab = LiveClient(), LiveClient()
            await carol.connect(node1, token=viewer_token("carol", "Carol"))
            await carol_tab.connect(node2, token=viewer_token("carol", "Carol"))
            try:
                for client in (carol, carol_tab):
                    assert (await client.call("join", {"show_id": show["id"]}))["ok"]
                for _ in range(20):
                    assert (await carol.call("react", {"kind": "clap", "count": 1}))["ok"]
                limited = await carol_tab.call("react", {"kind": "clap", "count": 1})
                assert limited["error"]["code"] == "rate_limited", limited
            finally:
                for client in (carol, carol_tab):
                    await client.sio.disconnect()

            # Questions, votes and reaction totals cross processes too.
            asked = (await alice.call("question:ask", {"text": "Both nodes?"}))["question"]
            assert (await bob.call("question:vote", {"question_id": asked["id"]}))["question"][
                "votes"
            ] == 1
            await until(
                lambda: any(
                    q["id"] == asked["id"] and q["votes"] == 1 for q in alice.events("question")
                ),
                "node 2's vote on node 1",
            )
            await alice.call("react", {"kind": "heart", "count": 3})
            await bob.call("react", {"kind": "heart", "count": 2})

            def hearts(client: LiveClient) -> int:
                return max(
                    (e["totals"].get("heart", 0) for e in client.events("reactions")), default=0
                )

            await until(lambda: hearts(alice) == 5 and hearts(bob) == 5, "summed reaction totals")

            # Redis goes away: each process keeps serving its viewers, and what the other
            # process's viewers said still arrives (repaired from the database).
            await proxy.stop()
            assert (await alice.call("chat:send", {"text": "while away 1"}))["ok"]
            assert (await bob.call("chat:send", {"text": "while away 2"}))["ok"]
            await until(lambda: "while away 1" in texts(alice), "local delivery without Redis")
            await until(
                lambda: "while away 1" in texts(bob) and "while away 2" in texts(alice),
                "catch-up without Redis",
            )

            # A ban made while Redis is away still reaches the banned member's other process.
            dave, staff = LiveClient(), LiveClient()
            await dave.connect(node2, token=viewer_token("dave", "Dave"))
            await staff.connect(node1, token=admin)
            try:
                joined = await dave.call("join", {"show_id": show["id"]})
                assert (await staff.call("join", {"show_id": show["id"]}))["ok"]
                dave_id = joined["snapshot"]["you"]["author_id"]
                # A mute and its lift made on node 1 reach node 2's viewers too.
                assert (await staff.call("member:mute", {"author_id": dave_id}))["ok"]
                await until(
                    lambda: any(
                        e["author_id"] == dave_id and e["kind"] == "mute"
                        for e in dave.events("member.sanctioned")
                    ),
                    "a mute made while Redis was away",
                )
                assert (await dave.call("chat:send", {"text": "muted?"}))["error"]["code"] == (
                    "muted"
                )
                assert (await staff.call("member:unmute", {"author_id": dave_id}))["ok"]
                # So does a product pinned on node 1.
                assert (await staff.call("product:pin", {"sku": "PIN-1"}))["ok"]
                await until(
                    lambda: any(
                        [c["sku"] for c in e["products"]] == ["PIN-1"]
                        for e in dave.events("products.pinned")
                    ),
                    "a pin made while Redis was away",
                )
                await until(
                    lambda: any(
                        e["author_id"] == dave_id and e["kind"] == "mute"
                        for e in dave.events("member.lifted")
                    ),
                    "a lift made while Redis was away",
                )
                assert (await staff.call("member:ban", {"author_id": dave_id}))["ok"]
                await until(
                    lambda: dave.removed == [{"show_id": show["id"], "reason": "banned"}],
                    "a ban made while Redis was away",
                )
            finally:
                for client in (dave, staff):
                    await client.sio.disconnect()

            # Redis returns: pub/sub carries messages again.
            await proxy.start()
            await asyncio.sleep(1.0)  # the listeners reconnect with back-off
            assert (await alice.call("chat:send", {"text": "back"}))["ok"]
            await until(lambda: "back" in texts(bob), "chat after Redis returned")
            await asyncio.sleep(0.5)

            expected = ["from node 1", "from node 2", "while away 1", "while away 2", "back"]
            for client in (alice, bob):
                assert sorted(texts(client), key=expected.index) == expected  # each exactly once
                seqs = [m["seq"] for m in client.events()]
                assert len(seqs) == len(set(seqs))
        finally:
            await alice.sio.disconnect()
            await bob.sio.disconnect()
