"""The live media path end to end with real peers: ffmpeg publishes over WHIP, aiortc
viewers watch over WHEP, and the relay in between never decodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import Api, create_show, host_token
from tests.media_peers import ffmpeg_publisher, wait_for, watch


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Media does not depend on the database backend; one (SQLite) keeps the suite quick.
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('media') / 'showroom.db'}"
    upgrade(url)
    yield url


async def live_show(api: Api, db: Database, admin: str) -> tuple[str, str]:
    show = await create_show(api, admin)
    answer = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    assert answer.status == 200, answer.text
    return show["id"], await host_token(db, show["id"])


async def test_ffmpeg_publishes_h264_and_a_viewer_decodes_it(api: Api, db: Database, admin: str) -> None:
    show_id, token = await live_show(api, db, admin)
    base = str(api.client.make_url("")).rstrip("/")
    async with ffmpeg_publisher(f"{base}/whip/{show_id}", token) as ffmpeg, aiohttp.ClientSession() as http:
        async def publishing() -> bool:
            answer = await api.call("GET", f"/api/v1/shows/{show_id}/stream")
            return answer.body["status"] == "publishing"
        for _ in range(100):
            if await publishing():
                break
            if ffmpeg.returncode is not None:
                raise AssertionError((await ffmpeg.stderr.read()).decode())
            await asyncio.sleep(0.1)
        viewer = await watch(http, base, show_id)
        await wait_for(lambda: len(viewer.video_frames) >= 30, 15, "30 decoded frames")
        frame = viewer.video_frames[-1]
        assert (frame.width, frame.height) == (320, 240)
        stream = (await api.call("GET", f"/api/v1/shows/{show_id}/stream")).body
        print(stream)
        await viewer.close(http)
