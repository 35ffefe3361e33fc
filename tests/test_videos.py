"""Staff videos: uploads (MP4, MOV, WebM) made into one browser-ready MP4 by a background job,
and clips cut by staff from a replay; real ffmpeg on generated media, over real HTTP."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import av
import pytest

from media.clips import FFMPEG
from media.videos import (
    Probe,
    failure_reason,
    fitted_size,
    make_video,
    probe,
    remux_command,
    sniff,
    transcode_command,
)
from server.config import Settings
from server.keys import VIDEOS
from server.services.videos import sweep_partials
from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import (
    FORM,
    Api,
    create_product,
    create_show,
    form,
    host_token,
    place_pins,
    settled_video,
    upload_video,
)
from tests.media_peers import film

SECONDS = 3
FRAME_S = 1 / 25


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Media does not depend on the database backend; one (SQLite) keeps the suite quick.
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('videos') / 'showroom.db'}"
    upgrade(url)
    yield url


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small test-pattern videos with a tone, made by ffmpeg: H.264/AAC in MP4 and in MOV,
    VP9/Opus in WebM."""
    folder = tmp_path_factory.mktemp("samples")
    inputs = ["-f", "lavfi", "-i", f"testsrc=size=160x120:rate=25:duration={SECONDS}"]
    inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"]
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    vp9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"]
    made = {
        "mp4": [*h264, "-movflags", "+faststart", "-f", "mp4"],
        "mov": [*h264, "-f", "mov"],
        "webm": [*vp9, "-f", "webm"],
    }
    out = {}
    for name, codecs in made.items():
        path = folder / f"sample.{name}"
        subprocess.run(
            [FFMPEG, "-hide_banner", "-loglevel", "error", *inputs, *codecs, str(path)],
            check=True,
            timeout=60,
        )
        out[name] = path
    return out


def streams(path: Path) -> tuple[list[str], float]:
    """The codecs in a file and its length, as PyAV (libavformat) reads them."""
    with av.open(str(path)) as media:
        assert media.duration is not None
        return sorted(s.codec_context.name for s in media.streams), media.duration / 1e6


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def leftovers(settings: Settings) -> list[str]:
    """What the videos folder holds: temporary and uploaded files included."""
    return names(Path(settings.data_dir) / "videos")


@pytest.fixture
async def world(api: Api, admin: str) -> AsyncIterator[None]:
    for sku in ("SERUM", "TEE"):
        await create_product(api, admin, sku, stock=5)
    yield


# --- the commands, compared whole without running ffmpeg ----------------------------------


def test_an_h264_upload_is_copied_and_anything_else_encoded_once() -> None:
    source, output = Path("/data/videos/.v.source"), Path("/data/videos/.v.mp4.x.part")
    tail = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror"]
    tail += ["-progress", "pipe:1", "-y"]
    assert remux_command(source, output, audio=True) == [
        FFMPEG,
        *("-i", str(source), "-map", "0:v:0", "-map", "0:a:0"),
        *("-f", "mp4", "-c", "copy", "-movflags", "+faststart", str(output)),
        *tail,
    ]
    assert remux_command(source, output, audio=False, ffmpeg_binary="ff") == [
        "ff",
        *("-i", str(source), "-map", "0:v:0"),
        *("-f", "mp4", "-c", "copy", "-movflags", "+faststart", str(output)),
        *tail,
    ]
    assert transcode_command(source, output, audio=True, size=(1080, 1920)) == [
        FFMPEG,
        *("-i", str(source), "-filter_complex", "[0:v:0]scale=1080:1920[s0]"),
        *("-map", "[s0]", "-map", "0:a:0", "-f", "mp4", "-b:a", "128k", "-c:a", "aac"),
        *("-c:v", "libx264", "-crf", "23", "-movflags", "+faststart", "-pix_fmt", "yuv420p"),
        *("-preset", "veryfast", str(output)),
        *tail,
    ]
    assert transcode_command(source, output, audio=False, size=None) == [
        FFMPEG,
        *("-i", str(source), "-map", "0:v:0", "-f", "mp4"),
        *("-c:v", "libx264", "-crf", "23", "-movflags", "+faststart", "-pix_fmt", "yuv420p"),
        *("-preset", "veryfast", str(output)),
        *tail,
    ]


def test_what_is_copied_what_is_scaled_and_how_failures_read() -> None:
    def probed(container: str, video: str, audio: str | None) -> Probe:
        return Probe(container, video, 1920, 1080, audio, 10.0)

    assert probed("mp4", "h264", "aac").remux and probed("mov", "h264", None).remux
    assert not probed("webm", "h264", "aac").remux  # WebM is no MP4, even with H.264
    assert not probed("mp4", "hevc", "aac").remux and not probed("mp4", "h264", "opus").remux
    assert fitted_size(3840, 2160) == (1920, 1080)
    assert fitted_size(2160, 3840) == (1080, 1920)  # portrait: the short side is 1080
    assert fitted_size(1280, 720) is None and fitted_size(1921, 1081) == (1918, 1080)
    assert sniff(b"\0\0\0\x18ftypisom\0\0\2\0") == "mp4"
    assert sniff(b"\0\0\0\x14ftypqt  \0\0\2\0") == "mov"
    assert sniff(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm") == "webm"
    assert sniff(b"\x1a\x45\xdf\xa3\x9f\x42\x82\x88matroska") is None  # MKV: not taken
    assert sniff(b"GIF89a...........") is None and sniff(b"") is None
    assert failure_reason(-11, "") == "ffmpeg crashed (killed by SIGSEGV)"
    assert failure_reason(1, "x: No space left on device").startswith("the disk is full")
    assert failure_reason(1, "") == "ffmpeg exited with status 1"


# --- real runs on generated media ---------------------------------------------------------


@pytest.mark.parametrize(("name", "transcoded"), [("mp4", False), ("mov", False), ("webm", True)])
async def test_each_kind_of_upload_becomes_an_h264_aac_mp4(
    samples: dict[str, Path], tmp_path: Path, name: str, transcoded: bool
) -> None:
    source = samples[name]
    head = await asyncio.to_thread(lambda: source.read_bytes()[:64])
    container = sniff(head)
    assert container == name
    found = await asyncio.to_thread(probe, source, container)
    progress: list[int] = []

    async def note(pct: int) -> None:
        progress.append(pct)

    output = tmp_path / "out.mp4"
    made = await make_video(source, found, output, on_progress=note)
    assert made.transcoded is transcoded
    codecs, duration = await asyncio.to_thread(streams, output)
    assert codecs == ["aac", "h264"]
    assert abs(duration - SECONDS) <= 2 * FRAME_S + 0.03, duration  # AAC frames round up
    assert made.size_bytes == output.stat().st_size
    assert progress and progress[-1] >= 50 and progress == sorted(progress)
    assert await asyncio.to_thread(names, tmp_path) == ["out.mp4"]  # no temporary file
    top = await asyncio.to_thread(lambda: output.read_bytes()[:4096])
    # faststart: the index (moov) before the media (mdat), so a browser plays at once
    assert 0 < top.find(b"moov") and (
        top.find(b"mdat") == -1 or top.find(b"moov") < top.find(b"mdat")
    )


# --- over HTTP, against the app's worker --------------------------------------------------


async def test_an_upload_is_queued_made_served_and_sells_its_products(
    api: Api, admin: str, settings: Settings, samples: dict[str, Path], world: None
) -> None:
    tags = '[{"sku": "SERUM", "at_s": 1.5}, {"sku": "TEE", "at_s": 99}]'
    answer = await upload_video(
        api, admin, samples["webm"].read_bytes(), title="Serum demo", tags=tags
    )
    assert answer.status == 202, answer.text
    video = answer.body
    assert answer.headers["Location"] == f"/api/v1/videos/{video['id']}"
    assert (video["kind"], video["state"], video["title"]) == ("upload", "queued", "Serum demo")
    assert video["video_url"] is None and video["duration_s"] is None
    assert [(t["sku"], t["at_s"]) for t in video["tags"]] == [("SERUM", 1.5), ("TEE", 99)]

    done = await settled_video(api, admin, video["id"])
    assert done["state"] == "done" and done["progress_pct"] == 100, done
    assert done["error"] is None and done["transcoded"] is True
    assert abs(done["duration_s"] - SECONDS) <= 0.1
    assert [(t["sku"], t["at_s"]) for t in done["tags"]] == [("SERUM", 1.5)]  # 99 s: dropped
    # The upload itself is gone; the MP4 and its poster stay.
    assert leftovers(settings) == sorted([f"{video['id']}.jpg", f"{video['id']}.mp4"])

    served = await api.client.get(done["video_url"])
    assert served.status == 200 and served.headers["Content-Type"] == "video/mp4"
    assert served.headers["Access-Control-Allow-Origin"] == "*"
    body = await served.read()
    assert body == (Path(settings.data_dir) / "videos" / f"{video['id']}.mp4").read_bytes()
    poster = await api.client.get(done["poster_url"])
    assert poster.status == 200 and poster.headers["Content-Type"] == "image/jpeg"
    assert (await poster.read())[:2] == b"\xff\xd8"

    listed = await api.call("GET", "/api/v1/videos?kind=upload&state=done", auth=admin)
    assert [v["id"] for v in listed.body["items"]] == [video["id"]] and listed.body["total"] == 1
    none = await api.call("GET", "/api/v1/videos?state=failed", auth=admin)
    assert none.body["items"] == []

    selling = await api.call("GET", "/api/v1/products/SERUM/videos")
    assert selling.status == 200, selling.text
    [item] = selling.body["items"]
    assert (item["kind"], item["video_id"], item["show_id"]) == ("upload", video["id"], None)
    assert item["video_url"] == done["video_url"] and item["watch_url"] is None
    assert [(m["sku"], m["at_s"]) for m in item["moments"]] == [("SERUM", 1.5)]
    tee = await api.call("GET", "/api/v1/products/TEE/videos")
    assert tee.body["items"] == []  # its tag was past the end

    retag = await api.call(
        "PUT",
        f"/api/v1/videos/{video['id']}/tags",
        auth=admin,
        json_body={"tags": [{"sku": "TEE", "at_s": 2}]},
    )
    assert retag.status == 200 and [t["sku"] for t in retag.body["tags"]] == ["TEE"]
    past = await api.call(
        "PUT",
        f"/api/v1/videos/{video['id']}/tags",
        auth=admin,
        json_body={"tags": [{"sku": "TEE", "at_s": 30}]},
    )
    assert past.status == 422 and past.body["errors"][0]["field"] == "tags.0.at_s", past.body
    assert [
        v["kind"] for v in (await api.call("GET", "/api/v1/products/TEE/videos")).body["items"]
    ] == ["upload"]

    gone = await api.call("DELETE", f"/api/v1/videos/{video['id']}", auth=admin)
    assert gone.status == 204
    assert leftovers(settings) == []
    assert (await api.call("GET", done["video_url"])).status == 404
    assert (await api.call("GET", f"/api/v1/videos/{video['id']}", auth=admin)).status == 404


async def test_mp4_and_mov_uploads_are_copied_not_encoded(
    api: Api, admin: str, samples: dict[str, Path]
) -> None:
    for name in ("mp4", "mov"):
        answer = await upload_video(api, admin, samples[name].read_bytes())
        assert answer.status == 202, answer.text
        done = await settled_video(api, admin, answer.body["id"])
        assert done["state"] == "done" and done["transcoded"] is False, done
        assert done["title"] == "a"  # the file's name, without a title field


async def test_an_oversized_upload_is_refused_as_it_arrives_and_leaves_nothing(
    api: Api, admin: str, settings: Settings, samples: dict[str, Path]
) -> None:
    big = samples["mp4"].read_bytes() + b"\0" * (1024 * 1024)  # settings: 1 MiB at most

    announced = await upload_video(api, admin, big)  # Content-Length says it: refused unread
    assert announced.status == 413, announced.text
    assert "SHOWROOM_MAX_UPLOAD_MB" in announced.body["detail"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        body = form(("file", big, "big.mp4"))
        for n in range(0, len(body), 64 * 1024):
            yield body[n : n + 64 * 1024]

    streamed = await api.client.post(
        "/api/v1/videos",
        data=chunks(),
        headers={"Content-Type": FORM, "Authorization": f"Bearer {admin}"},
    )
    assert streamed.status == 413 and "chunked" in streamed.request_info.headers.get(
        "Transfer-Encoding", ""
    )
    assert (await streamed.json())["status"] == 413
    assert leftovers(settings) == []
    listed = await api.call("GET", "/api/v1/videos", auth=admin)
    assert listed.body["total"] == 0


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("cut-webm", "cut short"),  # WebM with its end missing: ffmpeg says "ended prematurely"
        ("cut-mp4", "Invalid data"),  # MP4 index first, media cut off
        ("garbage", "not a video ffmpeg can read"),  # an MP4 header, then noise
        ("audio-only", "no video stream"),
    ],
)
async def test_a_damaged_upload_fails_its_job_with_the_reason_and_leaves_nothing(
    api: Api,
    admin: str,
    settings: Settings,
    samples: dict[str, Path],
    tmp_path: Path,
    damage: str,
    reason: str,
) -> None:
    if damage == "cut-webm":
        content = samples["webm"].read_bytes()[:20000]
    elif damage == "cut-mp4":
        content = samples["mp4"].read_bytes()[:30000]
    elif damage == "garbage":
        content = samples["mp4"].read_bytes()[:32] + os.urandom(5000)
    else:
        sound = tmp_path / "sound.mp4"
        await asyncio.to_thread(
            subprocess.run,
            [FFMPEG, "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=1", str(sound)],
            check=True,
        )
        content = sound.read_bytes()
    answer = await upload_video(api, admin, content)
    assert answer.status == 202, answer.text
    failed = await settled_video(api, admin, answer.body["id"])
    assert failed["state"] == "failed" and reason in failed["error"], failed
    assert str(settings.data_dir) not in failed["error"]  # no server paths in the API
    assert failed["video_url"] is None
    assert leftovers(settings) == []
    assert (await api.call("GET", f"/videos/{answer.body['id']}.mp4")).status == 404


def _wrapper(tmp_path: Path, name: str, script: str) -> str:
    path = tmp_path / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return str(path)


async def test_a_full_disk_fails_the_job_with_a_clear_reason_and_leaves_nothing(
    api: Api, admin: str, settings: Settings, samples: dict[str, Path], tmp_path: Path
) -> None:
    # ffmpeg may write only 8 blocks (4 KiB under sh): its next write fails with EFBIG,
    # as a full disk's fails with ENOSPC (SIGXFSZ ignored, so it sees the error).
    api.client.app[VIDEOS].ffmpeg_binary = _wrapper(
        tmp_path, "small-disk", f"trap '' XFSZ\nulimit -f 8\nexec {FFMPEG} \"$@\""
    )
    answer = await upload_video(api, admin, samples["webm"].read_bytes())
    failed = await settled_video(api, admin, answer.body["id"])
    assert failed["state"] == "failed", failed
    assert failed["error"].startswith("the disk is full") and "File too large" in failed["error"]
    assert leftovers(settings) == []


async def test_ffmpeg_crashing_mid_job_fails_it_and_leaves_nothing(
    api: Api, admin: str, settings: Settings, samples: dict[str, Path], tmp_path: Path
) -> None:
    # -re: ffmpeg reads at the video's own pace, so it is still running when it is killed.
    api.client.app[VIDEOS].ffmpeg_binary = _wrapper(
        tmp_path,
        "crashing",
        f'(sleep 0.5; kill -SEGV $$) >/dev/null 2>&1 </dev/null &\nexec {FFMPEG} -re "$@"',
    )
    answer = await upload_video(api, admin, samples["webm"].read_bytes())
    failed = await settled_video(api, admin, answer.body["id"])
    assert failed["state"] == "failed", failed
    assert failed["error"].startswith("ffmpeg crashed (killed by SIGSEGV)"), failed["error"]
    assert leftovers(settings) == []


async def test_deleting_a_video_while_it_is_made_stops_the_job_and_leaves_nothing(
    api: Api, admin: str, settings: Settings, samples: dict[str, Path], tmp_path: Path
) -> None:
    api.client.app[VIDEOS].ffmpeg_binary = _wrapper(tmp_path, "slow", f'exec {FFMPEG} -re "$@"')
    answer = await upload_video(api, admin, samples["webm"].read_bytes())
    video_id = answer.body["id"]
    deadline = time.monotonic() + 10
    while (await api.call("GET", f"/api/v1/videos/{video_id}", auth=admin)).body[
        "state"
    ] != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await api.call("DELETE", f"/api/v1/videos/{video_id}", auth=admin)).status == 204
    deadline = time.monotonic() + 5
    while leftovers(settings):  # the job notices within half a second and cleans up
        assert time.monotonic() < deadline, leftovers(settings)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)
    assert leftovers(settings) == []
    assert (await api.call("GET", "/api/v1/videos", auth=admin)).body["total"] == 0


# --- clips cut by staff -------------------------------------------------------------------


async def test_staff_cut_a_clip_from_the_replay_and_it_sells_with_the_uploads(
    api: Api, db: Database, admin: str, settings: Settings, samples: dict[str, Path], world: None
) -> None:
    show = await create_show(api, admin, title="Serum night")
    show_id = show["id"]
    token = await host_token(db, show_id)
    early = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token, json_body={"start_s": 0, "end_s": 4}
    )
    assert early.status == 409, early.text  # not ended: no replay yet
    assert (await api.call("POST", f"/api/v1/shows/{show_id}/start", auth=token)).status == 200
    pinned = await api.call(
        "POST", f"/api/v1/shows/{show_id}/pins", auth=admin, json_body={"sku": "SERUM"}
    )
    assert pinned.status == 200, pinned.text
    start = await film(Path(settings.data_dir) / "hls" / show_id, 12, audio=True)
    await place_pins(db, show_id, {"SERUM": (start + timedelta(seconds=5), None)})
    assert (await api.call("POST", f"/api/v1/shows/{show_id}/end", auth=token)).status == 200

    outside = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token,
        json_body={"start_s": 8, "end_s": 40},
    )  # fmt: skip
    assert outside.status == 422 and outside.body["errors"][0]["field"] == "end_s"
    assert "clip range outside the video: the replay is 12 s long" in outside.body["detail"]
    backwards = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token, json_body={"start_s": 5, "end_s": 5}
    )
    assert backwards.status == 422 and backwards.body["errors"][0]["field"] == "end_s"
    unknown = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token,
        json_body={"start_s": 3, "end_s": 9, "tags": [{"sku": "NOPE"}]},
    )  # fmt: skip
    assert unknown.status == 422 and "NOPE" in unknown.body["detail"]
    tag_outside = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token,
        json_body={"start_s": 3, "end_s": 9, "tags": [{"sku": "TEE", "at_s": 7}]},
    )  # fmt: skip
    assert tag_outside.status == 422 and tag_outside.body["errors"][0]["field"] == "tags.0.at_s"
    assert (await api.call("GET", "/api/v1/videos", auth=admin)).body["total"] == 0

    # 3 s to 9 s: the segment holding 3 s starts at 2 s, so the clip runs 2 s to 9 s.
    cut = await api.call(
        "POST", f"/api/v1/shows/{show_id}/clips", auth=token,
        json_body={"title": "The serum", "start_s": 3, "end_s": 9,
                   "tags": [{"sku": "SERUM"}, {"sku": "TEE", "at_s": 0.5}]},
    )  # fmt: skip
    assert cut.status == 202, cut.text
    assert (cut.body["kind"], cut.body["show_id"]) == ("clip", show_id)
    assert (cut.body["start_s"], cut.body["duration_s"]) == (2.0, 7.0)
    # SERUM: its moment (5 s in the replay) is 3 s into the clip; TEE: 0.5 s after 3 s.
    assert [(t["sku"], t["at_s"]) for t in cut.body["tags"]] == [("TEE", 1.5), ("SERUM", 3.0)]
    done = await settled_video(api, admin, cut.body["id"])
    assert done["state"] == "done" and done["transcoded"] is False, done
    seen_by_host = await api.call("GET", f"/api/v1/videos/{done['id']}", auth=token)
    assert seen_by_host.status == 200
    path = Path(settings.data_dir) / "videos" / f"{done['id']}.mp4"
    codecs, duration = await asyncio.to_thread(streams, path)
    assert codecs == ["aac", "h264"] and abs(duration - 7.0) <= 2 * FRAME_S + 0.03, duration
    assert abs(done["duration_s"] - duration) < 0.01

    # The show's automatic clip of SERUM is made too; the staff clip follows it.
    deadline = time.monotonic() + 30
    while True:
        auto = await api.call("GET", f"/api/v1/shows/{show_id}/clips", auth=admin)
        if auto.body["items"] and auto.body["items"][0]["state"] in ("done", "failed"):
            break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert [i["sku"] for i in auto.body["items"]] == ["SERUM"]  # staff clips are not listed here
    uploaded = await upload_video(
        api, admin, samples["mp4"].read_bytes(), tags='[{"sku": "SERUM", "at_s": 1}]'
    )
    await settled_video(api, admin, uploaded.body["id"])

    selling = await api.call("GET", "/api/v1/products/SERUM/videos")
    assert selling.status == 200, selling.text
    items = selling.body["items"]
    assert [(i["kind"], i.get("video_id")) for i in items] == [
        ("replay", None),
        ("clip", None),
        ("clip", done["id"]),
        ("upload", uploaded.body["id"]),
    ]
    staff = items[2]
    assert staff["video_url"] == f"/videos/{done['id']}.mp4" and staff["show_id"] == show_id
    assert staff["watch_url"] == f"/watch/{show_id}?t=5"
    assert [m["at_s"] for m in staff["moments"]] == [3.0]
    best = await api.call("GET", "/api/v1/products/SERUM/videos?limit=1")
    assert [i["kind"] for i in best.body["items"]] == ["replay"]  # what the embed mounts

    # Played on brands' pages by two browsers (one of them twice): the upload ranks by its
    # two viewers, ahead of a show nobody watched live; the show's videos stay together.
    assert items[0]["viewers"] == 0
    for viewer in ("browser-aaaa", "browser-bbbb", "browser-aaaa"):
        played = await api.call("POST", f"/videos/{uploaded.body['id']}/plays/{viewer}")
        assert played.status == 204, played.text
        assert played.headers["Access-Control-Allow-Origin"] == "*"
    ranked = (await api.call("GET", "/api/v1/products/SERUM/videos")).body["items"]
    assert [(i["kind"], i.get("video_id")) for i in ranked] == [
        ("upload", uploaded.body["id"]),
        ("replay", None),
        ("clip", None),
        ("clip", done["id"]),
    ]
    assert ranked[0]["viewers"] == 2
    # Only a made video counts plays.
    unknown = await api.call("POST", f"/videos/{uuid.uuid4()}/plays/browser-aaaa")
    assert unknown.status == 404


def test_temporary_files_a_dead_process_left_are_swept_when_old(tmp_path: Path) -> None:
    old, young, made = tmp_path / ".a.upload.part", tmp_path / ".b.mp4.x.part", tmp_path / "c.mp4"
    for path in (old, young, made):
        path.write_bytes(b"x")
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    os.utime(made, (time.time() - 7 * 3600,) * 2)
    assert sweep_partials(tmp_path) == 1
    assert names(tmp_path) == [".b.mp4.x.part", "c.mp4"]
    assert sweep_partials(tmp_path / "missing") == 0
