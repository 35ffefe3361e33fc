"""Product clips: a short MP4 around a product's moment, cut from the show's replay.

The replay's segments are MPEG-TS (H.264 and AAC), each starting on a keyframe. A clip is
the run of segments that covers its range, joined by ffmpeg's concat demuxer and copied
into MP4 without re-encoding (`-c copy`, `-movflags +faststart`). A copy can only start on
a keyframe, so a clip starts at the start of the segment its range begins in (at most one
segment, about 2 s, before the range); `plan_clip` places it there, so the clip's start on
the replay's timeline is exact. The concat demuxer lays the segments end to end, so a
discontinuity in the replay (the host away) is no gap in the clip."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg
import imageio_ffmpeg

from media.hls import read_playlist_text

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
BEFORE_S = 5.0  # a clip starts this long before the product's moment (not before 0)
AFTER_S = 20.0  # and ends this long after it (or where the video ends)
MAX_S = 30.0  # the longest clip
MIN_AFTER_S = 5.0  # a moment with less video than this after it gets no clip
RUN_TIMEOUT_S = 300.0  # ffmpeg copying 30 s of video takes well under a second
ERROR_LINES = 8  # the tail of ffmpeg's stderr kept as a failed clip's reason
ERROR_CHARS = 2000


class ClipError(Exception):
    """The clip could not be made; the message is the reason (ffmpeg's, when it ran)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A segment of the playlist: its file name and its place on the playlist's timeline."""

    name: str
    media: float  # seconds from the playlist's start
    duration: float


def read_segments(text: str) -> list[Segment]:
    """Every segment of a media playlist, in order, with its start and length (#EXTINF)."""
    segments: list[Segment] = []
    media = 0.0
    duration: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            try:
                duration = float(line[8:].split(",")[0])
            except ValueError:
                duration = None
        elif line and not line.startswith("#"):
            if duration is not None:
                segments.append(Segment(line, media, duration))
                media += duration
            duration = None
    return segments


@dataclass(frozen=True, slots=True)
class ClipPlan:
    start: float  # seconds on the replay's timeline: the start of a segment (a keyframe)
    duration: float


def plan_clip(segments: list[Segment], at: float) -> ClipPlan | None:
    """The clip of a moment `at` seconds into the replay: from BEFORE_S before it (moved back
    to the start of the segment it falls in) to AFTER_S after it or the video's end, at most
    MAX_S. None when under MIN_AFTER_S of video follows the moment."""
    if not segments:
        return None
    end_of_video = segments[-1].media + segments[-1].duration
    if end_of_video - at < MIN_AFTER_S:
        return None
    wanted = max(0.0, at - BEFORE_S)
    start = segments[0].media
    for segment in segments:
        if segment.media <= wanted + 1e-6:
            start = segment.media
        else:
            break
    duration = min(min(at + AFTER_S, end_of_video) - start, MAX_S)
    return ClipPlan(round(start, 3), round(duration, 3))


def covering(segments: list[Segment], start: float, duration: float) -> list[Segment]:
    """The segments that hold [start, start + duration)."""
    end = start + duration
    return [s for s in segments if s.media + s.duration > start + 1e-6 and s.media < end - 1e-6]


def concat_listing(files: list[Path]) -> str:
    """A concat demuxer script naming `files` (absolute paths, quoted)."""
    lines = ["ffconcat version 1.0"]
    for path in files:
        quoted = str(path).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
    return "\n".join(lines) + "\n"


def clip_command(listing: Path, duration: float, output: Path) -> list[str]:
    """ffmpeg's argv: the segments the concat script `listing` names, copied (no re-encode)
    into an MP4 of at most `duration` seconds with its index first, progress on stdout."""
    stream = ffmpeg.input(str(listing), f="concat", safe=0).output(
        str(output), c="copy", t=f"{duration:.3f}", movflags="+faststart", f="mp4"
    )
    stream = stream.global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-progress", "pipe:1"
    ).overwrite_output()
    argv: list[str] = stream.compile(cmd=FFMPEG)
    return argv


def _progress_pct(line: str, duration: float) -> int | None:
    key, _, value = line.partition("=")
    if key not in ("out_time_us", "out_time_ms") or duration <= 0:  # both are microseconds
        return None
    try:
        micros = int(value)
    except ValueError:
        return None  # N/A before the first packet
    return max(0, min(100, int(micros / 1e6 / duration * 100)))


async def run_ffmpeg(
    argv: list[str], duration: float, on_progress: Callable[[int], Awaitable[None]] | None
) -> tuple[int, str]:
    """Run ffmpeg, reporting progress; its exit code and the tail of its stderr."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    tail: collections.deque[str] = collections.deque(maxlen=ERROR_LINES)

    async def errors() -> None:
        assert process.stderr is not None
        async for raw in process.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                tail.append(line)

    async def progress() -> None:
        assert process.stdout is not None
        last = -1
        async for raw in process.stdout:
            pct = _progress_pct(raw.decode("ascii", "replace").strip(), duration)
            if pct is not None and pct != last and on_progress is not None:
                last = pct
                await on_progress(pct)

    try:
        await asyncio.gather(errors(), progress())
        code = await process.wait()
    except BaseException:  # cancelled (shutdown) or timed out: ffmpeg goes too
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    return code, "\n".join(tail)[-ERROR_CHARS:]


def _has_video(path: Path) -> bool:
    import av

    try:
        with av.open(str(path)) as container:
            return bool(container.streams.video)
    except av.FFmpegError:
        return False


async def cut_clip(
    playlist: Path,
    start: float,
    duration: float,
    output: Path,
    *,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    time_limit_s: float = RUN_TIMEOUT_S,
) -> int:
    """Cut [start, start + duration) of the replay `playlist` into `output` (MP4), written
    under a temporary name and renamed when complete: on failure no file is left. The
    clip's size in bytes. Raises ClipError with the reason."""
    text = await asyncio.to_thread(read_playlist_text, playlist)
    if text is None:
        raise ClipError("the replay's playlist is gone")
    chosen = covering(read_segments(text), start, duration)
    if not chosen:
        raise ClipError(f"no segment of the replay covers {start:g} s to {start + duration:g} s")
    files = []
    for segment in chosen:
        if Path(segment.name).name != segment.name or segment.name.startswith("."):
            raise ClipError(f"the playlist names a segment outside its folder: {segment.name!r}")
        files.append(playlist.parent / segment.name)
    await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
    # Names a request cannot reach (a dot first) and that two runs never share.
    token = uuid.uuid4().hex[:12]
    partial = output.with_name(f".{output.name}.{token}.part")
    listing = output.with_name(f".{output.name}.{token}.ffconcat")
    try:
        await asyncio.to_thread(listing.write_text, concat_listing(files))
        argv = clip_command(listing, duration, partial)
        try:
            code, reason = await asyncio.wait_for(
                run_ffmpeg(argv, duration, on_progress), time_limit_s
            )
        except TimeoutError:
            raise ClipError(f"ffmpeg took longer than {time_limit_s:g} s") from None
        except OSError as exc:
            raise ClipError(f"ffmpeg could not run: {exc}") from None
        if code != 0:
            raise ClipError(reason or f"ffmpeg exited with status {code}")
        size = await asyncio.to_thread(lambda: partial.stat().st_size)
        if size == 0 or not await asyncio.to_thread(_has_video, partial):
            raise ClipError(reason or "ffmpeg wrote no video")
        await asyncio.to_thread(os.replace, partial, output)
        return size
    finally:
        for leftover in (partial, listing):
            with contextlib.suppress(OSError):
                await asyncio.to_thread(leftover.unlink, missing_ok=True)
