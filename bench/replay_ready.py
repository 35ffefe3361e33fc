"""Replay readiness and live HLS latency (issue 8): how long after a show ends its replay is
playable, for a 10-minute and a 60-minute show, and how far the live HLS is behind capture.

    .venv/bin/python bench/replay_ready.py [--sizes 10,60] [--latency-segments 20]

Each show runs on its own `showroom serve` (SQLite, fresh data directory). A show's earlier
part is what a server restart in the middle of the show leaves on disk: a live (EVENT)
playlist and its segments, written in the format media/hls.py writes (2 s segments, each
with its program date-time), which the next publish carries on behind a discontinuity
(`HlsWriter._resume`). Its segments are real: ffmpeg encodes a few 2 s MPEG-TS segments
(1280x720 H.264 at 2.5 Mb/s like the publisher's, plus AAC at 48 kHz) once per run, and
they are hard-linked under 300 (10 min) or 1,800 (60 min) names less the live part. Then a
real publisher goes live over WHIP (an aiortc peer sending the 720p H.264 of
bench/relay_viewers.py at 30 fps by the wall clock, each frame with its capture time in an
SEI NAL unit, plus an Opus track), the writer resumes the playlist and appends live
segments, and the show is ended while the host is still sending.

- `replay_ready_s_<N>min`: wall seconds from sending `POST /api/v1/shows/{id}/end` until
  the replay is playable: `GET /api/v1/shows/{id}/replay` says `ready`, the playlist served
  over HTTP is VOD with ENDLIST and lists every segment the replay reports, and the last
  segment has been fetched over HTTP. The replay's duration is checked against the show's
  length (earlier part + live segments), so a broken setup fails instead of timing fast.
- Baseline, in the same run on the same segments: re-processing the recording after the
  show, the usual way of making a replay: ffmpeg's concat demuxer copying (`-c copy`, no
  re-encode) every segment of the show into one MP4, with `-movflags +faststart` (the index
  first, so a browser can start before it has the end: the product's own clip cutter,
  `media.clips.clip_command`, given the whole show) and without it (one pass less). Each
  runs pinned to the server's core after the server has stopped; the segments are hard
  links of a few files, so they are read from the page cache (which favours the baseline).
  `ratio_<N>min` is the faster of the two over Showroom's time.
- `live_hls_latency_s`: for each live segment of the first show, the time it was first
  listed in the playlist served over HTTP (polled every 50 ms) minus the capture time of its
  first frame (the SEI the publisher put in the keyframe, read back from the segment fetched
  over HTTP). The max over `--latency-segments` segments; the median is printed and in the
  RESULT line too, with the time the segment had also been fetched, and how far each
  segment's `#EXT-X-PROGRAM-DATE-TIME` is from the capture time. A player adds its own
  distance from the live edge on top (hls.js `liveSyncDurationCount: 2`: two segments).

The server runs on CPU 0, the publisher and this process on CPU 1. Final line:

    RESULT replay_ready_s_10min=... replay_ready_s_60min=... live_hls_latency_s=... ...
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
from aiortc.mediastreams import AudioStreamTrack

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_fanout import (
    CLIENT_CPUS,
    SERVER_CPUS,
    launch_showroom,
    pin,
    start_live_show,
)
from bench.relay_viewers import (
    BITRATE,
    FPS,
    HEIGHT,
    WIDTH,
    PacketTrack,
    h264_preferences,
    make_video,
    new_pc,
    publish_until_told,
    read_access_units,
    sei_time_us,
    start_publisher,
    stop_process,
)
from media.clips import FFMPEG, clip_command, concat_listing, read_segments
from media.hls import PLAYLIST, SEGMENT_SECONDS, _iso, read_timeline

POLL_S = 0.05  # how often the live playlist is read
DISTINCT_SEGMENTS = 5  # real segments ffmpeg makes for a show's earlier part


# --- the publisher process -------------------------------------------------------------------


async def publisher(whip_url: str, token: str, video: str) -> None:
    """H.264 access units with their capture time (SEI), 30 fps, 2 s GOP, and an Opus track
    (aiortc encodes silence), over WHIP until a line arrives on stdin."""
    pc = new_pc()
    transceiver = pc.addTransceiver(PacketTrack(read_access_units(Path(video))), "sendonly")
    transceiver.setCodecPreferences(h264_preferences())
    pc.addTransceiver(AudioStreamTrack(), "sendonly")
    await publish_until_told(pc, whip_url, token)


# --- a show's earlier part: what a restart mid-show leaves on disk ---------------------------


def make_segments(folder: Path) -> list[tuple[Path, float]]:
    """DISTINCT_SEGMENTS real 2 s MPEG-TS segments (720p H.264 like the publisher's, AAC),
    each starting on a keyframe: (file, length from ffmpeg's playlist)."""
    folder.mkdir(parents=True)
    seconds = DISTINCT_SEGMENTS * SEGMENT_SECONDS
    command = [
        FFMPEG,
        *("-hide_banner", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={seconds}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"),
        *("-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast"),
        *("-tune", "zerolatency", "-pix_fmt", "yuv420p", "-bf", "0"),
        *("-b:v", BITRATE, "-maxrate", BITRATE, "-bufsize", BITRATE),
        *("-g", str(2 * FPS), "-keyint_min", str(2 * FPS), "-sc_threshold", "0"),
        *("-c:a", "aac", "-b:a", "128k", "-ac", "2"),
        *("-f", "hls", "-hls_time", str(SEGMENT_SECONDS), "-hls_list_size", "0"),
        *("-hls_segment_filename", str(folder / "src-%d.ts"), str(folder / "src.m3u8")),
    ]
    subprocess.run(command, check=True)
    made = [(folder / s.name, s.duration) for s in read_segments((folder / "src.m3u8").read_text())]
    assert len(made) == DISTINCT_SEGMENTS and all(abs(d - 2.0) < 0.01 for _, d in made), made
    return made


def leave_earlier_part(folder: Path, sources: list[tuple[Path, float]], count: int) -> float:
    """`count` segments (hard links of `sources`, in turn) and an open EVENT playlist with a
    program date-time on each, as HlsWriter writes them, ending a few seconds ago. Its
    length in seconds."""
    folder.mkdir(parents=True)
    total = sum(sources[i % len(sources)][1] for i in range(count))
    wall = time.time() - total - 5.0
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        f"#EXT-X-TARGETDURATION:{int(SEGMENT_SECONDS)}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:EVENT",
        "#EXT-X-INDEPENDENT-SEGMENTS",
    ]
    for i in range(count):
        source, length = sources[i % len(sources)]
        name = f"seg-{i:06d}.ts"
        os.link(source, folder / name)
        lines += [f"#EXT-X-PROGRAM-DATE-TIME:{_iso(wall)}", f"#EXTINF:{length:.3f},", name]
        wall += length
    (folder / PLAYLIST).write_text("\n".join(lines) + "\n")
    return total


# --- measuring -------------------------------------------------------------------------------


@dataclass
class LiveSegment:
    name: str
    listed: float  # wall clock, first seen in the playlist served over HTTP
    pdt: float  # its program date-time
    fetched: float = 0.0  # wall clock, its bytes fetched over HTTP
    captured: float | None = None  # its first frame's capture time (the SEI)


@dataclass
class Show:
    show_id: str
    minutes: int
    earlier_segments: int
    earlier_s: float
    live: list[LiveSegment] = field(default_factory=list)
    end_returned_s: float = 0.0  # POST /end sent -> its answer
    replay_ready_s: float = 0.0  # -> GET /replay says ready
    playable_s: float = 0.0  # -> and the VOD playlist and its last segment were served
    segments: int = 0
    duration_s: float = 0.0
    baseline_s: float = 0.0  # with +faststart
    baseline_plain_s: float = 0.0  # without
    baseline_bytes: int = 0
    baseline_duration_s: float = 0.0

    @property
    def ratio(self) -> float:
        """The faster baseline's time over Showroom's."""
        return min(self.baseline_s, self.baseline_plain_s) / self.playable_s


def first_capture(data: bytes) -> float | None:
    """The capture time (epoch s) in the SEI of a segment's first video frame."""
    with av.open(io.BytesIO(data), "r", format="mpegts") as container:
        for packet in container.demux(video=0):
            if packet.size:
                micros = sei_time_us(bytes(packet))
                return None if micros is None else micros / 1e6
    return None


def entries(text: str) -> list[tuple[str, float]]:
    """Each segment of a playlist: (name, program date-time)."""
    names = [s.name for s in read_segments(text)]
    spans = read_timeline(text)
    assert len(names) == len(spans), "a segment without a program date-time"
    return [(name, span.wall) for name, span in zip(names, spans, strict=True)]


async def fetch(http: aiohttp.ClientSession, url: str) -> bytes:
    async with http.get(url) as r:
        if r.status != 200:
            raise RuntimeError(f"GET {url}: {r.status} {(await r.text())[:200]}")
        return await r.read()


async def watch_live(
    http: aiohttp.ClientSession,
    url: str,
    show: Show,
    wanted: int,
    publisher: asyncio.subprocess.Process,
) -> None:
    """Poll the playlist until `wanted` live segments follow the earlier part; fetch each
    new one as soon as it is listed and read its first frame's capture time."""
    playlist = f"{url}/hls/{show.show_id}/{PLAYLIST}"
    seen: dict[str, LiveSegment] = {}
    fetches: list[asyncio.Task[None]] = []

    async def get(segment: LiveSegment) -> None:
        data = await fetch(http, f"{url}/hls/{show.show_id}/{segment.name}")
        segment.fetched = time.time()
        segment.captured = await asyncio.to_thread(first_capture, data)

    deadline = time.monotonic() + wanted * SEGMENT_SECONDS + 30
    first_text = None
    while len(seen) < wanted:
        if publisher.returncode is not None:
            raise RuntimeError("the publisher exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(seen)} live segments listed, wanted {wanted}")
        text = (await fetch(http, playlist)).decode()
        now = time.time()
        first_text = first_text or text
        for name, pdt in entries(text)[show.earlier_segments :]:
            if name not in seen and len(seen) < wanted:
                seen[name] = segment = LiveSegment(name, now, pdt)
                fetches.append(asyncio.create_task(get(segment)))
        await asyncio.sleep(POLL_S)
    await asyncio.gather(*fetches)
    # The writer carried on the earlier playlist: same segments first, then a discontinuity.
    assert (
        first_text is not None
        and entries(first_text)[: show.earlier_segments] == entries(text)[: show.earlier_segments]
    ), "the earlier part of the playlist changed"
    names = [s.name for s in read_segments(text)]
    assert names[show.earlier_segments] == f"seg-{show.earlier_segments:06d}.ts", names[-3:]
    assert "#EXT-X-DISCONTINUITY" in text.split(names[show.earlier_segments - 1], 1)[1]
    show.live = list(seen.values())


async def end_and_wait(http: aiohttp.ClientSession, url: str, admin: str, show: Show) -> bytes:
    """End the show; time until the replay is playable over HTTP. The last segment."""
    api = f"{url}/api/v1/shows/{show.show_id}"
    began = time.monotonic()
    async with http.post(f"{api}/end", headers={"Authorization": f"Bearer {admin}"}) as r:
        if r.status != 200:
            raise RuntimeError(f"end: {r.status} {await r.text()}")
    show.end_returned_s = time.monotonic() - began
    while True:
        async with http.get(f"{api}/replay") as r:
            replay = await r.json()
        if replay["ready"]:
            break
        if time.monotonic() - began > 120:
            raise RuntimeError(f"the replay is not ready after 120 s: {replay}")
        await asyncio.sleep(0.01)
    show.replay_ready_s = time.monotonic() - began
    text = (await fetch(http, url + replay["playlist_url"])).decode()
    segments = read_segments(text)
    assert text.rstrip().endswith("#EXT-X-ENDLIST") and "#EXT-X-PLAYLIST-TYPE:VOD" in text
    assert len(segments) == replay["segments"], (len(segments), replay["segments"])
    last = await fetch(http, f"{url}/hls/{show.show_id}/{segments[-1].name}")
    show.playable_s = time.monotonic() - began
    show.segments, show.duration_s = replay["segments"], replay["duration_s"]
    return last


def check_show(show: Show, last: bytes, folder: Path) -> None:
    """The replay is the whole show: its length is the earlier part's plus the live
    segments', about `minutes` long, and its last segment decodes from a keyframe."""
    segments = read_segments((folder / PLAYLIST).read_text())
    live_s = sum(s.duration for s in segments[show.earlier_segments :])
    assert show.segments == len(segments) > show.earlier_segments + len(show.live) - 1
    assert abs(show.duration_s - (show.earlier_s + live_s)) < 0.01, (show.duration_s, live_s)
    assert abs(show.duration_s - show.minutes * 60) < 0.05 * show.minutes * 60, show.duration_s
    with av.open(io.BytesIO(last), "r", format="mpegts") as container:
        codecs = sorted(s.codec_context.name for s in container.streams if s.type != "data")
        assert codecs == ["aac", "h264"], codecs
        frame = next(container.decode(video=0))
        assert frame.key_frame and (frame.width, frame.height) == (WIDTH, HEIGHT)


def concat_script(folder: Path, out: Path) -> tuple[Path, float]:
    """A concat script naming every segment of the show's playlist; the show's length."""
    segments = read_segments((folder / PLAYLIST).read_text())
    listing = out.with_suffix(".ffconcat")
    listing.write_text(concat_listing([folder / s.name for s in segments]))
    return listing, sum(s.duration for s in segments)


def probe_mp4(out: Path) -> tuple[int, float]:
    """The MP4's size and duration; it is removed."""
    with av.open(str(out), "r") as container:
        duration = (container.duration or 0) / 1e6
    size = out.stat().st_size
    out.unlink()
    return size, duration


async def remux(folder: Path, out: Path, *, faststart: bool) -> tuple[float, int, float]:
    """Every segment of the show copied into one MP4: wall seconds, bytes, duration."""
    began = time.monotonic()
    listing, length = await asyncio.to_thread(concat_script, folder, out)
    argv = clip_command(listing, length + 10, out)
    if not faststart:  # the index at the end: one pass less
        i = argv.index("-movflags")
        del argv[i : i + 2]
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=pin(SERVER_CPUS),
    )
    _, errors = await process.communicate()
    seconds = time.monotonic() - began
    if process.returncode:
        raise RuntimeError(f"ffmpeg failed: {errors.decode()[-500:]}")
    size, duration = await asyncio.to_thread(probe_mp4, out)
    return seconds, size, duration


async def remux_baseline(folder: Path, out: Path, show: Show) -> None:
    """The baseline, with the MP4's index first (as the clip cutter makes it, so a browser
    can start playing before it has the end) and, as its floor, without."""
    show.baseline_s, show.baseline_bytes, show.baseline_duration_s = await remux(
        folder, out, faststart=True
    )
    show.baseline_plain_s, _, duration = await remux(folder, out, faststart=False)
    for seconds in (show.baseline_duration_s, duration):
        assert abs(seconds - show.duration_s) < 0.02 * show.duration_s, (seconds, show)


async def run_show(
    work: Path, video: Path, sources: list[tuple[Path, float]], minutes: int, live: int
) -> Show:
    root = work / f"show-{minutes}min"
    process, url, admin = await launch_showroom(root, {})
    publisher = None
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            show_id = await start_live_show(http, url, f"Replay bench, {minutes} min")
            async with http.post(
                f"{url}/api/v1/api-keys",
                json={"role": "host", "show_id": show_id, "name": "bench host"},
            ) as r:
                if r.status != 201:
                    raise RuntimeError(f"could not make a host token: {r.status}")
                host_token = (await r.json())["token"]
        # The live part is about `live` segments and the one open when the show ends.
        count = round(minutes * 60 / SEGMENT_SECONDS) - live - 1
        folder = root / "data" / "hls" / show_id
        earlier_s = await asyncio.to_thread(leave_earlier_part, folder, sources, count)
        show = Show(show_id, minutes, count, earlier_s)
        publisher = await start_publisher(__file__, f"{url}/whip/{show_id}", host_token, video)
        assert publisher.stdin is not None
        async with aiohttp.ClientSession() as http:
            await watch_live(http, url, show, live, publisher)
            last = await end_and_wait(http, url, admin, show)
        publisher.stdin.write(b"stop\n")
        await publisher.stdin.drain()
        check_show(show, last, folder)
    finally:
        if publisher is not None:
            await stop_process(publisher, 5)
        await stop_process(process)
    await remux_baseline(folder, root / "replay.mp4", show)
    return show


def report(show: Show) -> None:
    print(
        f"== {show.minutes}-minute show: {show.segments} segments, {show.duration_s:.1f} s "
        f"({show.earlier_segments} left by an earlier writer, {show.earlier_s:.0f} s; "
        f"{show.segments - show.earlier_segments} live)"
    )
    print(
        f"  POST /end answered after {show.end_returned_s:.3f} s; replay ready "
        f"{show.replay_ready_s:.3f} s; VOD playlist and last segment served "
        f"{show.playable_s:.3f} s after the end was sent"
    )
    print(
        f"  baseline (ffmpeg concat -c copy into one MP4): {show.baseline_s:.2f} s with "
        f"+faststart, {show.baseline_plain_s:.2f} s without; {show.baseline_bytes / 1e6:.0f} MB, "
        f"{show.baseline_duration_s:.1f} s of video; the faster is "
        f"{show.ratio:.0f}x Showroom's time"
    )
    sys.stdout.flush()


def latency_report(show: Show) -> dict[str, float]:
    segments = [s for s in show.live if s.captured is not None]
    if len(segments) < len(show.live):
        print(f"  WARNING: {len(show.live) - len(segments)} live segments without a capture time")
    listed = sorted(s.listed - s.captured for s in segments if s.captured is not None)
    fetched = sorted(s.fetched - s.captured for s in segments if s.captured is not None)
    pdt_ms = [abs(s.pdt - s.captured) * 1000 for s in segments if s.captured is not None]
    figures = {
        "median": statistics.median(listed),
        "p95": listed[min(len(listed) - 1, round(0.95 * (len(listed) - 1)))],
        "max": listed[-1],
        "fetched_max": fetched[-1],
        "pdt_ms": statistics.median(pdt_ms),
    }
    print(
        f"== live HLS ({len(listed)} segments of the {show.minutes}-minute show): capture of a "
        f"segment's first frame -> listed in the playlist: median {figures['median']:.3f} s, "
        f"p95 {figures['p95']:.3f} s, max {figures['max']:.3f} s; -> fetched: median "
        f"{statistics.median(fetched):.3f} s, max {figures['fetched_max']:.3f} s"
    )
    print("  per segment (listed): " + " ".join(f"{v:.2f}" for v in listed))
    print(
        f"  program date-time vs capture: median {figures['pdt_ms']:.0f} ms, "
        f"max {max(pdt_ms):.0f} ms"
    )
    sys.stdout.flush()
    return figures


async def main(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, CLIENT_CPUS)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="showroom-replay-bench-"))
    shows: list[Show] = []
    try:
        video = work / "source.h264"
        await asyncio.to_thread(make_video, video)
        sources = await asyncio.to_thread(make_segments, work / "sources")
        for i, minutes in enumerate(sizes):
            live = args.latency_segments if i == 0 else args.live_segments
            shows.append(await run_show(work, video, sources, minutes, live))
            report(shows[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    latency = latency_report(shows[0])
    ready = " ".join(f"replay_ready_s_{s.minutes}min={s.playable_s:.3f}" for s in shows)
    baseline = " ".join(
        f"baseline_remux_s_{s.minutes}min={s.baseline_s:.2f} "
        f"baseline_remux_nofaststart_s_{s.minutes}min={s.baseline_plain_s:.2f}"
        for s in shows
    )
    print(
        f"RESULT {ready} live_hls_latency_s={latency['max']:.2f} {baseline} "
        f"ratio_{shows[-1].minutes}min={shows[-1].ratio:.0f} "
        f"live_hls_latency_median_s={latency['median']:.2f} "
        f"live_hls_fetched_max_s={latency['fetched_max']:.2f} pdt_error_ms={latency['pdt_ms']:.0f}"
    )
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="10,60", help="show lengths in minutes, comma-separated")
    p.add_argument(
        "--latency-segments",
        type=int,
        default=20,
        help="live segments published (and measured) in the first show",
    )
    p.add_argument(
        "--live-segments", type=int, default=3, help="live segments published in the others"
    )
    return p.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        asyncio.run(publisher(*sys.argv[2:5]))
    else:
        sys.exit(asyncio.run(main(parse())))
