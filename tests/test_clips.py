"""Product clips: when a show ends, an MP4 of each pinned product's first moment is cut from
the replay's segments without re-encoding, by a background worker, and served."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import av
import pytest
from sqlalchemy import select, update

from media.clips import (
    FFMPEG,
    ClipPlan,
    Segment,
    clip_command,
    concat_listing,
    covering,
    plan_clip,
    read_segments,
)
from server.config import Settings
from server.services import clips
from server.store import models
from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import (
    Api,
    create_product,
    create_show,
    filmed_show,
    host_token,
    settled_clips,
)

MISSING_ID = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Media does not depend on the database backend; one (SQLite) keeps the suite quick.
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('clips') / 'showroom.db'}"
    upgrade(url)
    yield url


def test_the_clip_command_copies_the_covering_segments_into_mp4(tmp_path: Path) -> None:
    listing, output = tmp_path / "list.ffconcat", tmp_path / "clips" / ".A.mp4.x.part"
    assert clip_command(listing, 26.0, output) == [
        FFMPEG,
        *("-f", "concat", "-safe", "0", "-i", str(listing)),
        *("-f", "mp4", "-c", "copy", "-movflags", "+faststart", "-t", "26.000"),
        str(output),
        # Global options: ffmpeg takes them anywhere on the line.
        *("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"),
        *("-progress", "pipe:1"),
        "-y",
    ]
    assert concat_listing([Path("/data/hls/a/seg-000001.ts"), Path("/d/it's/seg-2.ts")]) == (
        "ffconcat version 1.0\nfile '/data/hls/a/seg-000001.ts'\nfile '/d/it'\\''s/seg-2.ts'\n"
    )


def test_a_clip_runs_from_the_keyframe_before_its_range_to_20_s_after_the_moment() -> None:
    text = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n"
    text += "".join(f"#EXTINF:2.000,\nseg-{n:06d}.ts\n" for n in range(15)) + "#EXT-X-ENDLIST\n"
    segments = read_segments(text)
    assert segments[0] == Segment("seg-000000.ts", 0.0, 2.0) and segments[-1].media == 28.0
    assert plan_clip(segments, 10.0) == ClipPlan(4.0, 26.0)  # 5 s before is in [4, 6)
    assert plan_clip(segments, 1.0) == ClipPlan(0.0, 21.0)  # not before the start
    assert plan_clip(segments, 24.0) == ClipPlan(18.0, 12.0)  # to the end of the video
    assert plan_clip(segments, 25.5) is None  # under 5 s of video after the moment
    assert plan_clip([], 0.0) is None
    long = [Segment(f"s{n}", 10.0 * n, 10.0) for n in range(10)]
    assert plan_clip(long, 19.0) == ClipPlan(10.0, 29.0)
    assert plan_clip(long, 59.0) == ClipPlan(50.0, 29.0)
    assert plan_clip([Segment("s", 0.0, 100.0)], 60.0) == ClipPlan(0.0, 30.0)  # at most 30 s
    chosen = covering(segments, 4.0, 26.0)
    assert (chosen[0].name, chosen[-1].name, len(chosen)) == ("seg-000002.ts", "seg-000014.ts", 13)


def _picture_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        video = container.streams.video[0].codec_context
        return video.width, video.height


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """A JPEG's picture size, decoded by PyAV (so it is a whole, decodable image)."""
    assert data[:3] == b"\xff\xd8\xff", data[:16]
    with av.open(io.BytesIO(data), format="image2pipe") as container:
        frame = next(container.decode(video=0))
        return frame.width, frame.height


def _probe(path: Path) -> tuple[str, float, list[str]]:
    with av.open(str(path)) as container:
        assert container.duration is not None
        codecs = [s.codec_context.name for s in container.streams]
        return container.streams.video[0].codec_context.name, container.duration / 1e6, codecs


async def test_an_ended_show_gets_a_clip_of_each_products_moment(
    api: Api, db: Database, admin: str, settings: Settings
) -> None:
    for sku in ("SERUM", "TEE", "LATE"):
        await create_product(api, admin, sku, stock=5)
    began = time.monotonic()
    show_id = await filmed_show(
        api,
        db,
        admin,
        settings,
        {"TEE": 1, "SERUM": 10, "LATE": 27},  # LATE: under 5 s after
    )
    items = await settled_clips(api, admin, show_id, 2)
    took = time.monotonic() - began
    by_sku = {i["sku"]: i for i in items}
    assert [i["sku"] for i in items] == ["TEE", "SERUM"]  # in pin order
    assert all(i["state"] == "done" and i["progress_pct"] == 100 for i in items), items
    assert all(i["error"] is None for i in items)
    # From the keyframe before 5 s ahead of the moment (segments start every 2 s) to 20 s
    # after it or the end of the video.
    assert (by_sku["SERUM"]["start_s"], by_sku["SERUM"]["duration_s"]) == (4.0, 26.0)
    assert (by_sku["TEE"]["start_s"], by_sku["TEE"]["duration_s"]) == (0.0, 21.0)

    clip = Path(settings.data_dir) / "clips" / show_id / "SERUM.mp4"
    assert by_sku["SERUM"]["url"] == f"/clips/{show_id}/SERUM.mp4"
    codec, duration, codecs = await asyncio.to_thread(_probe, clip)
    assert codec == "h264" and sorted(codecs) == ["aac", "h264"]
    assert abs(duration - 25.0) <= 2.1, duration  # wanted 5 s to 30 s; cut on a keyframe
    _, tee_duration, _ = await asyncio.to_thread(_probe, clip.with_name("TEE.mp4"))
    assert abs(tee_duration - 21.0) <= 2.1, tee_duration
    assert sorted(p.name for p in clip.parent.iterdir()) == [
        "SERUM.jpg",  # each clip's poster
        "SERUM.mp4",
        "TEE.jpg",
        "TEE.mp4",
    ]
    assert took < 30, took

    served = await api.client.get(by_sku["SERUM"]["url"])  # public
    assert served.status == 200
    assert served.headers["Content-Type"] == "video/mp4"
    assert served.headers["Access-Control-Allow-Origin"] == "*"
    assert await served.read() == clip.read_bytes()

    width, height = await asyncio.to_thread(_picture_size, clip)
    poster = await api.client.get(f"/clips/{show_id}/SERUM.jpg")  # public, like the clip
    assert poster.status == 200
    assert poster.headers["Content-Type"] == "image/jpeg"
    assert poster.headers["Access-Control-Allow-Origin"] == "*"
    assert _jpeg_size(await poster.read()) == (width, height)

    videos = await api.call("GET", "/api/v1/products/SERUM/videos")
    assert videos.status == 200, videos.text
    kinds = [(v["kind"], v["show_id"]) for v in videos.body["items"]]
    assert kinds == [("replay", show_id), ("clip", show_id)]
    replay, made = videos.body["items"]
    assert replay["video_url"] is None and replay["playlist_url"] == f"/hls/{show_id}/index.m3u8"
    assert made["playlist_url"] is None and made["video_url"] == f"/clips/{show_id}/SERUM.mp4"
    assert made["poster_url"] == f"/clips/{show_id}/SERUM.jpg"
    assert replay["poster_url"] == f"/hls/{show_id}/poster.jpg"
    # The replay's poster is made when first asked for (by many players at once: one ffmpeg).
    posters = await asyncio.gather(*(api.client.get(replay["poster_url"]) for _ in range(3)))
    assert [p.status for p in posters] == [200, 200, 200]
    bodies = {await p.read() for p in posters}
    assert len(bodies) == 1 and _jpeg_size(bodies.pop()) == (width, height)
    assert (Path(settings.data_dir) / "hls" / show_id / "poster.jpg").is_file()
    answer = await api.call("GET", f"/api/v1/shows/{show_id}/replay")
    assert answer.body["poster_url"] == replay["poster_url"]
    assert made["duration_s"] == 26.0
    # The moment (10 s to 13 s into the replay) on the clip's timeline, which starts at 4 s.
    assert [(m["sku"], m["at_s"], m["until_s"]) for m in made["moments"]] == [("SERUM", 6, 9)]
    assert [(m["at_s"], m["until_s"]) for m in replay["moments"]] == [(10, 13)]
    only = await api.call("GET", "/api/v1/products/SERUM/videos?limit=1")
    assert [v["kind"] for v in only.body["items"]] == ["replay"]
    late = await api.call("GET", "/api/v1/products/LATE/videos")
    assert [v["kind"] for v in late.body["items"]] == ["replay"]  # no clip: too near the end


async def test_a_clip_ffmpeg_cannot_cut_fails_with_its_reason_and_leaves_no_file(
    api: Api, db: Database, admin: str, settings: Settings
) -> None:
    await create_product(api, admin, "SERUM", stock=5)
    show_id = await filmed_show(api, db, admin, settings, {"SERUM": 2}, seconds=10, corrupt=True)
    [item] = await settled_clips(api, admin, show_id, 1)
    assert item["state"] == "failed" and item["url"] is None, item
    assert "Invalid data" in item["error"], item["error"]
    assert str(settings.data_dir) not in item["error"]  # no server paths in the API
    folder = Path(settings.data_dir) / "clips" / show_id
    assert not folder.exists() or list(folder.iterdir()) == []
    missing = await api.call("GET", f"/clips/{show_id}/SERUM.mp4")
    assert missing.status == 404
    # Nor can a poster be made from segments that are not video: 404, and no file left.
    poster = await api.call("GET", f"/hls/{show_id}/poster.jpg")
    assert poster.status == 404 and "no poster" in poster.body["detail"], poster.text
    assert not (Path(settings.data_dir) / "hls" / show_id / "poster.jpg").exists()
    assert not list((Path(settings.data_dir) / "hls" / show_id).glob(".poster*"))
    videos = await api.call("GET", "/api/v1/products/SERUM/videos")
    assert [v["kind"] for v in videos.body["items"]] == ["replay"]


async def test_a_crash_leaves_no_job_running(db: Database, admin: str, api: Api) -> None:
    await create_product(api, admin, "SERUM", stock=5)
    show = await create_show(api, admin)
    async with db.read() as session:
        product = await session.scalar(select(models.Product.id))
    assert product is not None
    [job] = await clips.do_enqueue_clips(
        db, uuid.UUID(show["id"]), [clips.NewClip("SERUM", product, 0.0, 20.0)]
    )
    # Queued twice: the product keeps the one it has.
    again = [clips.NewClip("SERUM", product, 0.0, 20.0)]
    assert await clips.do_enqueue_clips(db, uuid.UUID(show["id"]), again) == []
    async with db.transaction() as session:
        await session.execute(
            update(models.ClipJob).where(models.ClipJob.id == job.id).values(state="running")
        )
    assert await clips.do_requeue_running(db) == 1
    [back] = await clips.list_clips(db, uuid.UUID(show["id"]))
    assert back.state == "queued" and back.progress_pct == 0


async def test_clips_refuse_unknown_shows_and_names(
    api: Api, db: Database, admin: str, settings: Settings
) -> None:
    show = await create_show(api, admin)
    other = await create_show(api, admin)
    token = await host_token(db, show["id"])
    unknown = await api.call("GET", f"/api/v1/shows/{MISSING_ID}/clips", auth=admin)
    assert unknown.status == 404
    foreign = await api.call("GET", f"/api/v1/shows/{other['id']}/clips", auth=token)
    assert foreign.status == 403
    anonymous = await api.call("GET", f"/api/v1/shows/{show['id']}/clips")
    assert anonymous.status == 401
    empty = await api.call("GET", f"/api/v1/shows/{show['id']}/clips", auth=token)
    assert empty.status == 200 and empty.body == {"items": []}

    # A file that a path escaping the clips folder would reach.
    (Path(settings.data_dir) / "secret.mp4").write_bytes(b"secret")
    folder = Path(settings.data_dir) / "clips" / show["id"]
    folder.mkdir(parents=True)
    (folder / ".SERUM.mp4.abc.part").write_bytes(b"partial")
    for path in (
        f"/clips/{MISSING_ID}/SERUM.mp4",
        "/clips/not-a-uuid/SERUM.mp4",
        f"/clips/{show['id']}/SERUM.mp4",  # not made
        f"/clips/{show['id']}/..%2F..%2Fsecret.mp4",
        f"/clips/{show['id']}/%2E%2E%2Fsecret.mp4",
        f"/clips/{show['id']}/.SERUM.mp4.abc.part",
        f"/clips/{show['id']}/bad%20name.mp4",
        f"/clips/{show['id']}/SERUM.webm",
        f"/clips/{show['id']}/SERUM.jpg",  # no poster without its clip
        f"/clips/{show['id']}/SERUM",
        f"/hls/{show['id']}/poster.jpg",  # no replay
        f"/hls/{MISSING_ID}/poster.jpg",
    ):
        answer = await api.call("GET", path)
        assert answer.status == 404, (path, answer.text)
        assert answer.headers["Content-Type"].startswith("application/problem+json"), path
