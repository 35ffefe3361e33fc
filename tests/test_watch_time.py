"""Watch time end to end: a real host publishing over WHIP, a real WHEP viewer, its player's
state reports over the live room, the server's own sweeps crediting it, and points arriving
on its socket; and a server killed hard in the middle of a show, while a member watches,
credits nothing twice when it comes back and loses at most about one write interval."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from server.keys import ACCRUAL
from server.store import models
from server.store.db import Database
from tests.conftest import SECRET_KEY, VIEWER_SECRET, host_token, viewer_token
from tests.media_peers import ffmpeg_publisher, wait_for, watch
from tests.test_live import LiveClient
from tests.test_media_relay import database_url, live_show, server, until_status
from tests.test_multinode import free_port

__all__ = ["database_url", "server"]  # the SQLite-only media fixtures
FLUSH_SECONDS = 0.3  # SHOWROOM_ENGAGEMENT_FLUSH_SECONDS of the served processes


async def live_client(base: str, token: str) -> tuple[LiveClient, list[dict[str, Any]]]:
    client = LiveClient()
    points: list[dict[str, Any]] = []
    client.sio.on("points", points.append, namespace="/live")
    await client.connect(base, token=token)
    return client, points


async def watched_ms(db: Database, show_id: str) -> dict[str, int]:
    async with db.read() as s:
        rows = await s.execute(
            select(models.ShowAttendance.viewer, models.ShowAttendance.watched_ms).where(
                models.ShowAttendance.show_id == uuid.UUID(show_id)
            )
        )
        return dict(rows.all())


async def test_only_a_player_receiving_the_show_earns_watch_time(
    server: Any, db: Database, admin: str
) -> None:
    base, api, app = server
    show_id, token = await live_show(api, db, admin)
    async with (
        ffmpeg_publisher(f"{base}/whip/{show_id}", token) as ffmpeg,
        aiohttp.ClientSession() as http,
    ):
        await until_status(api, show_id, "publishing", ffmpeg)
        viewer = await watch(http, base, show_id)
        try:
            await wait_for(lambda: len(viewer.video_frames) > 5, 15, "video at the viewer")
            assert viewer.location is not None
            session = viewer.location.rsplit("/", 1)[1]
            mei, mei_points = await live_client(base, viewer_token("mei", "Mei"))
            forger, _ = await live_client(base, viewer_token("forger", "F"))
            for client in (mei, forger):
                assert (await client.call("join", {"show_id": show_id}))["ok"]
            beat = {"playing": True, "visible": True, "session": session}
            first = await mei.call("watch:beat", beat)
            assert first == {"ok": True, "credited": False, "reason": "first_beat"}
            # Someone else naming Mei's session, a made-up one, or none: nothing.
            for claim, why in (
                (beat, "media_session_taken"),
                ({**beat, "session": "made-up-session"}, "no_media"),
                ({"playing": True, "visible": True}, "no_media_session"),
            ):
                answer = await forger.call("watch:beat", claim)
                assert answer["reason"] == why and not answer["credited"], answer
            bad = await forger.call("watch:beat", {"playing": "yes"})
            assert bad["error"]["code"] == "bad_payload" and bad["error"]["field"] == "playing"
            # The player says nothing more while its state holds: the server's sweep (at
            # each engagement write) credits the time the relay vouches for.
            await asyncio.sleep(3)
            await app[ACCRUAL].flush()
            await wait_for(lambda: bool(mei_points), 5, "Mei's points event")
            assert mei_points[-1]["earned"] == [{"reason": "first_join", "points": 10}]
            assert mei_points[-1]["balance"] == 10
            watched = await watched_ms(db, show_id)
            assert 3000 <= watched["viewer:mei"] <= 4500, watched
            assert watched["viewer:forger"] == 0
            # Paused: the report settles up to the pause, and nothing after it earns.
            paused = await mei.call("watch:beat", {**beat, "playing": False})
            assert paused == {"ok": True, "credited": True, "reason": "not_playing"}
            await asyncio.sleep(1.5)
            await app[ACCRUAL].flush()
            after_pause = (await watched_ms(db, show_id))["viewer:mei"]
            assert watched["viewer:mei"] < after_pause < watched["viewer:mei"] + 1000
            # Playing again, but the player hangs up its WHEP session: the relay no longer
            # hears it, so the time since the report is never credited.
            resumed = await mei.call("watch:beat", beat)
            assert resumed == {"ok": True, "credited": False, "reason": "resumed"}
            await viewer.close(http)
            viewer.location = None
            await asyncio.sleep(1.5)
            await app[ACCRUAL].flush()
            assert (await watched_ms(db, show_id))["viewer:mei"] == after_pause
            for client in (mei, forger):
                await client.sio.disconnect()
        finally:
            await viewer.close(http)


async def _serve(database_url: str, data_dir: Path, port: int) -> asyncio.subprocess.Process:
    """`showroom serve` on `port`, ready. Its output goes to data_dir/serve-PORT.log, quoted
    when it does not come up. A start that exits at once (the address or the database still
    held by a process killed a moment ago) is tried once more, and the first log printed."""
    env = {
        **os.environ,
        "SHOWROOM_PORT": str(port),
        "SHOWROOM_DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "SHOWROOM_SECRET_KEY": SECRET_KEY,
        "SHOWROOM_VIEWER_JWT_SECRET": VIEWER_SECRET,
        "SHOWROOM_CHAT_BURST": "50",
        "SHOWROOM_ENGAGEMENT_FLUSH_SECONDS": str(FLUSH_SECONDS),
    }
    env.pop("REDIS_URL", None)
    log = data_dir / f"serve-{port}.log"
    for attempt in range(2):
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server.cli",
                "serve",
                env=env,
                stdout=out,
                stderr=out,
            )
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                if process.returncode is not None:
                    break
                try:
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                        if response.status == 200:
                            return process
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        if process.returncode is None:
            process.kill()
            await process.wait()
            break
        print(f"showroom serve exited with {process.returncode} (attempt {attempt + 1}):")
        print(log.read_text()[-3000:])
        await asyncio.sleep(1.0)
    raise AssertionError(f"the server did not become ready:\n{log.read_text()[-3000:]}")


async def test_a_server_killed_mid_show_credits_nothing_twice(
    database_url: str, db: Database, tmp_path: Path, admin: str
) -> None:
    """A member chats and watches (a real WHIP host, a real WHEP player) on a server that is
    then killed hard. Watching is written in blocks of minutes, so none of these seconds
    were written as attendance yet; the checkpoint each engagement write saves has them,
    and the restarted server credits them: at most about one write interval is lost, and
    nothing (join bonus, chat, watching) is credited twice."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await _serve(database_url, tmp_path, port)
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            async with http.post(
                f"{base}/api/v1/shows",
                json={"title": "Crash", "scheduled_start": "2026-12-01T12:00:00Z"},
            ) as r:
                show_id = (await r.json())["id"]
            async with http.post(f"{base}/api/v1/shows/{show_id}/start") as r:
                assert r.status == 200

            async def publishing() -> bool:
                async with http.get(f"{base}/api/v1/shows/{show_id}/stream") as r:
                    return bool((await r.json())["status"] == "publishing")

            async def chat(client: LiveClient, n: int) -> None:
                for k in range(n):
                    assert (await client.call("chat:send", {"text": f"hi {k}"}))["ok"]

            host = await host_token(db, show_id)
            async with (
                ffmpeg_publisher(f"{base}/whip/{show_id}", host) as ffmpeg,
                aiohttp.ClientSession() as media,
            ):
                for _ in range(150):
                    if await publishing():
                        break
                    assert ffmpeg.returncode is None, "ffmpeg exited"
                    await asyncio.sleep(0.1)
                player = await watch(media, base, show_id)
                try:
                    await wait_for(lambda: len(player.video_frames) > 5, 15, "video")
                    assert player.location is not None
                    session = player.location.rsplit("/", 1)[1]
                    kim = LiveClient()
                    await kim.connect(base, token=viewer_token("kim", "Kim"))
                    assert (await kim.call("join", {"show_id": show_id}))["ok"]
                    await chat(kim, 3)
                    beat = {"playing": True, "visible": True, "session": session}
                    assert (await kim.call("watch:beat", beat))["reason"] == "first_beat"
                    began = time.time()
                    await asyncio.sleep(3.0)  # ten write intervals, far from a whole block
                    killed = time.time()
                    process.send_signal(signal.SIGKILL)  # no clean shutdown, no final write
                    await process.wait()
                    await kim.sio.disconnect()
                finally:
                    await player.close()
            held = (await watched_ms(db, show_id)).get("viewer:kim", 0)
            assert held < 1000, held  # written a block at a time: still in the checkpoint
            process = await _serve(database_url, tmp_path, port)
            kim = LiveClient()  # back after the restart: one more chat, one more join
            await kim.connect(base, token=viewer_token("kim", "Kim"))
            assert (await kim.call("join", {"show_id": show_id}))["ok"]
            await chat(kim, 2)
            await asyncio.sleep(1.0)  # several write intervals: the checkpoint is credited
            await kim.sio.disconnect()
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    async with db.read() as s:
        rows = (
            await s.execute(
                select(models.LedgerEntry.reason, func.sum(models.LedgerEntry.points))
                .join(models.Member, models.Member.id == models.LedgerEntry.member_id)
                .where(models.Member.external_id == "kim")
                .group_by(models.LedgerEntry.reason)
            )
        ).all()
        balance = await s.scalar(
            select(models.MemberPoints.balance)
            .join(models.Member, models.Member.id == models.MemberPoints.member_id)
            .where(models.Member.external_id == "kim")
        )
        checkpoints = await s.scalar(select(func.count()).select_from(models.WatchCheckpoint))
    assert dict(rows) == {"first_join": 10, "chat": 5}  # once each, across the crash
    assert balance == 15
    # The watching before the kill, credited once: what the last write before the kill had
    # seen, so at most about one write interval short (plus the one in flight, and this
    # busy machine's scheduling), never more than was watched.
    watched = (await watched_ms(db, show_id))["viewer:kim"] / 1000
    lost = (killed - began) - watched
    assert -0.5 < lost < 2 * FLUSH_SECONDS + 0.4, (watched, killed - began)
    assert checkpoints == 0  # the clean shutdown wrote everything
