"""Finished videos in an S3-compatible bucket: clips, posters and replay segments are copied to
it when made and served from it by redirect; without the bucket nothing is lost.

The bucket is a real S3 API on a local port (moto's server, in its own process): the bucket
stands outside the product, like the brand's webhook receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest
from aiobotocore.session import get_session

from media.clips import FFMPEG
from server.app import create_app
from server.config import Settings
from server.keys import OPENAPI, STORAGE
from server.services.storage import PART_BYTES, Bucket, Storage
from server.store.db import Database
from tests.conftest import (
    Api,
    create_product,
    filmed_show,
    settled_clips,
    settled_video,
    upload_video,
)
from tests.test_clips import database_url as database_url  # one SQLite file for the module

BUCKET = "brand-videos"
PREFIX = "showroom/"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 API (moto_server) on a free local port, for the module."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            assert server.poll() is None, server.stderr.read() if server.stderr else b""
            assert time.monotonic() < deadline, "the S3 server did not start"
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)
        if server.stderr is not None:
            server.stderr.close()


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The usual AWS variables, as an operator sets them; the local S3 accepts any.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "showroom-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "showroom-test-secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
async def bucket(s3_endpoint: str) -> AsyncIterator[Any]:
    """A client on a new, empty bucket (emptied and deleted after the test)."""
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1"
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        yield client
        listed = await client.list_objects_v2(Bucket=BUCKET)
        for item in listed.get("Contents", []):
            await client.delete_object(Bucket=BUCKET, Key=item["Key"])
        await client.delete_bucket(Bucket=BUCKET)


async def _keys(client: Any) -> dict[str, int]:
    listed = await client.list_objects_v2(Bucket=BUCKET)
    return {item["Key"]: item["Size"] for item in listed.get("Contents", [])}


@pytest.fixture
async def api(settings: Settings, aiohttp_client: Any, s3_endpoint: str) -> Api:
    """The server with the bucket, its keys under PREFIX."""
    return await _api_with(
        settings, aiohttp_client, s3_bucket=BUCKET, s3_endpoint_url=s3_endpoint, s3_prefix=PREFIX
    )


async def _api_with(settings: Settings, aiohttp_client: Any, **changes: Any) -> Api:
    app = create_app(dataclasses.replace(settings, **changes))
    client = await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())
    return Api(client, app[OPENAPI])


def _probe(data: bytes) -> list[str]:
    with av.open(io.BytesIO(data)) as container:
        return sorted(s.codec_context.name for s in container.streams)


async def test_clips_posters_and_the_replay_go_to_the_bucket_and_are_served_from_it(
    db: Database, admin: str, settings: Settings, api: Api, bucket: Any, s3_endpoint: str
) -> None:
    await create_product(api, admin, "SERUM", stock=5)
    show_id = await filmed_show(api, db, admin, settings, {"SERUM": 3}, seconds=12)
    [item] = await settled_clips(api, admin, show_id, 1)
    assert item["state"] == "done", item
    # The clip and its poster are in the bucket, and no longer on this node's disk.
    deadline = time.monotonic() + 30
    segments = sorted(p.name for p in (settings.data_dir / "hls" / show_id).glob("seg-*.ts"))
    assert len(segments) == 6
    wanted = {f"{PREFIX}clips/{show_id}/SERUM.mp4", f"{PREFIX}clips/{show_id}/SERUM.jpg"}
    wanted |= {f"{PREFIX}hls/{show_id}/{name}" for name in segments}
    wanted.add(f"{PREFIX}hls/{show_id}/index.m3u8")
    while not wanted <= set(keys := await _keys(bucket)):
        assert time.monotonic() < deadline, sorted(wanted - set(keys))
        await asyncio.sleep(0.1)
    clips_dir = settings.data_dir / "clips" / show_id
    assert not clips_dir.exists() or list(clips_dir.iterdir()) == []
    head = await bucket.head_object(Bucket=BUCKET, Key=f"{PREFIX}clips/{show_id}/SERUM.mp4")
    assert head["ContentType"] == "video/mp4"

    # The server answers with a redirect to the bucket (presigned: the bucket is private).
    async with aiohttp.ClientSession() as web:
        for name, kind in (("SERUM.mp4", "video/mp4"), ("SERUM.jpg", "image/jpeg")):
            answer = await api.client.get(f"/clips/{show_id}/{name}", allow_redirects=False)
            assert answer.status == 302, await answer.text()
            assert answer.headers["Access-Control-Allow-Origin"] == "*"
            location = answer.headers["Location"]
            assert location.startswith(f"{s3_endpoint}/{BUCKET}/{PREFIX}clips/{show_id}/{name}?")
            assert "Signature" in location
            async with web.get(location) as fetched:
                assert fetched.status == 200
                assert fetched.headers["Content-Type"] == kind
                body = await fetched.read()
            if kind == "video/mp4":
                assert await asyncio.to_thread(_probe, body) == ["aac", "h264"]
            else:
                assert body[:3] == b"\xff\xd8\xff"
        # A clip never made is not redirected anywhere.
        missing = await api.call("GET", f"/clips/{show_id}/OTHER.mp4")
        assert missing.status == 404, missing.text

        # Replay segments stay on disk too (clips are cut from them) and are served from it;
        # a node without the file sends the player to the bucket.
        local = await api.client.get(f"/hls/{show_id}/{segments[0]}")
        assert local.status == 200
        on_disk = await local.read()
        (settings.data_dir / "hls" / show_id / segments[0]).unlink()
        moved = await api.client.get(f"/hls/{show_id}/{segments[0]}", allow_redirects=False)
        assert moved.status == 302
        async with web.get(moved.headers["Location"]) as fetched:
            assert fetched.status == 200 and await fetched.read() == on_disk


async def test_a_public_bucket_url_is_used_as_is(
    db: Database, settings: Settings, aiohttp_client: Any, bucket: Any, s3_endpoint: str
) -> None:
    """Behind a CDN (SHOWROOM_S3_PUBLIC_URL), files redirect to the public URL plus the key."""
    storage = Storage(
        settings.data_dir,
        Bucket(BUCKET, endpoint_url=s3_endpoint, public_url="https://cdn.example.com/v/"),
    )
    await storage.start()
    try:
        path = settings.data_dir / "clips" / "x" / "A.jpg"
        path.parent.mkdir(parents=True)
        path.write_bytes(b"\xff\xd8\xff poster")
        assert await storage.publish("clips/x/A.jpg", "image/jpeg", cache_control="max-age=1")
        assert not path.exists()
        assert await storage.url("clips/x/A.jpg") == "https://cdn.example.com/v/clips/x/A.jpg"
        assert (await _keys(bucket)) == {"clips/x/A.jpg": len(b"\xff\xd8\xff poster")}
        await storage.remove("clips/x/A.jpg")
        assert (await _keys(bucket)) == {}
    finally:
        await storage.close()


async def test_a_large_file_goes_up_in_parts_and_arrives_whole(
    settings: Settings, bucket: Any, s3_endpoint: str
) -> None:
    storage = Storage(settings.data_dir, Bucket(BUCKET, endpoint_url=s3_endpoint))
    await storage.start()
    try:
        data = os.urandom(2 * PART_BYTES + 12345)  # three parts
        path = settings.data_dir / "videos" / "big.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(data)
        assert await storage.publish("videos/big.mp4", "video/mp4", cache_control="max-age=1")
        stored = await bucket.get_object(Bucket=BUCKET, Key="videos/big.mp4")
        async with stored["Body"] as body:
            assert await body.read() == data
        assert stored["ETag"].strip('"').endswith("-3")  # a multipart upload of 3 parts
        uploads = await bucket.list_multipart_uploads(Bucket=BUCKET)
        assert uploads.get("Uploads", []) == []  # nothing left half-way
    finally:
        await storage.close()


async def test_without_the_bucket_files_stay_on_disk_and_go_up_at_the_next_start(
    db: Database,
    admin: str,
    settings: Settings,
    aiohttp_client: Any,
    bucket: Any,
    s3_endpoint: str,
) -> None:
    """The bucket unreachable (nothing listens at its endpoint): the clip is still made, kept
    on disk and served from there, and the failure counted. The next start with the bucket
    back copies what was left: the clip, its poster and the replay."""
    api = await _api_with(
        settings,
        aiohttp_client,
        s3_bucket=BUCKET,
        s3_endpoint_url=f"http://127.0.0.1:{_free_port()}",
    )
    await create_product(api, admin, "SERUM", stock=5)
    show_id = await filmed_show(api, db, admin, settings, {"SERUM": 3}, seconds=12)
    [item] = await settled_clips(api, admin, show_id, 1)
    assert item["state"] == "done", item
    clip = settings.data_dir / "clips" / show_id / "SERUM.mp4"
    assert clip.is_file()
    served = await api.client.get(item["url"], allow_redirects=False)
    assert served.status == 200 and await served.read() == clip.read_bytes()
    storage = api.client.app[STORAGE]
    assert storage.failed >= 2 and storage.published == 0  # the clip and its poster

    # A server started with the bucket reachable catches up on what was left on disk.
    again = await _api_with(settings, aiohttp_client, s3_bucket=BUCKET, s3_endpoint_url=s3_endpoint)
    replay = settings.data_dir / "hls" / show_id
    wanted = {f"clips/{show_id}/SERUM.mp4", f"clips/{show_id}/SERUM.jpg"}
    wanted |= {f"hls/{show_id}/{p.name}" for p in replay.glob("seg-*.ts")}
    wanted.add(f"hls/{show_id}/index.m3u8")
    deadline = time.monotonic() + 30
    while not (wanted <= set(await _keys(bucket)) and (replay / ".copied").exists()):
        assert time.monotonic() < deadline, sorted(wanted - set(await _keys(bucket)))
        await asyncio.sleep(0.1)
    assert not clip.exists()  # in the bucket now, and served from there
    moved = await again.client.get(item["url"], allow_redirects=False)
    assert moved.status == 302
    assert again.client.app[STORAGE].failed == 0


async def test_an_upload_is_made_into_the_bucket_and_deleted_from_it(
    db: Database, admin: str, settings: Settings, api: Api, bucket: Any, tmp_path: Path
) -> None:
    movie = tmp_path / "upload.mp4"
    await asyncio.to_thread(
        subprocess.run,
        [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=25:d=2",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", str(movie)],
        check=True,
    )  # fmt: skip
    sent = await upload_video(api, admin, movie.read_bytes(), title="Lookbook")
    assert sent.status == 202, sent.text
    made = await settled_video(api, admin, sent.body["id"])
    assert made["state"] == "done", made
    video_id = made["id"]
    keys = await _keys(bucket)
    assert {f"{PREFIX}videos/{video_id}.mp4", f"{PREFIX}videos/{video_id}.jpg"} <= set(keys)
    assert list((settings.data_dir / "videos").glob(f"{video_id}*")) == []  # only there
    async with aiohttp.ClientSession() as web:
        answer = await api.client.get(made["video_url"], allow_redirects=False)
        assert answer.status == 302
        async with web.get(answer.headers["Location"]) as fetched:
            assert fetched.status == 200
            assert await asyncio.to_thread(_probe, await fetched.read()) == ["h264"]
    deleted = await api.call("DELETE", f"/api/v1/videos/{video_id}", auth=admin)
    assert deleted.status == 204
    assert not any(video_id in key for key in await _keys(bucket))
    gone = await api.call("GET", made["video_url"])
    assert gone.status == 404
