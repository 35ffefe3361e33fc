"""Uploaded videos: recognise the file, then make one MP4 a browser plays (H.264, AAC, its
index first) from it, copying the streams when they already are that and encoding once when
they are not.

H.264 with AAC (or no audio) in MP4 or MOV is only remuxed (`-c copy`): no quality lost and
it takes a fraction of a second. Anything else (VP8, VP9, AV1, HEVC video; Opus or Vorbis
audio; WebM) is encoded once to H.264 (libx264, veryfast, CRF 23, yuv420p, at most 1080 lines
on the short side, aspect kept) and AAC, because only that plays in every browser and in-app
webview a shopper uses (Safari on older iPhones plays no VP9 or Opus in MP4). Either way the
result is written under a temporary name and renamed when complete and checked: on failure no
file is left."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import ffmpeg

from media.clips import FFMPEG, ClipError, run_ffmpeg

RUN_TIMEOUT_S = 3600.0  # encoding a long 4K upload on two cores takes a while
MAX_SHORT_SIDE = 1080  # "1080p": the short side, so a portrait video keeps its full width
PRESET, CRF, AUDIO_BITRATE = "veryfast", 23, "128k"
REMUXABLE_CONTAINERS = ("mp4", "mov")
# Lines ffmpeg logs when the input ends early or breaks, while still exiting with 0.
DAMAGE_MARKERS = ("partial file", "ended prematurely", "Invalid data", "corrupt")
TRUNCATED_TOLERANCE_S = 0.5  # the made video may be this much shorter than the file says


@dataclass(frozen=True, slots=True)
class Probe:
    """What an upload holds, as read by PyAV (libavformat)."""

    container: str  # mp4, mov or webm (from sniff)
    video_codec: str
    width: int
    height: int
    audio_codec: str | None
    duration_s: float

    @property
    def remux(self) -> bool:
        return (
            self.container in REMUXABLE_CONTAINERS
            and self.video_codec == "h264"
            and self.audio_codec in (None, "aac")
        )


def sniff(head: bytes) -> str | None:
    """The container of a file from its first bytes: mp4, mov, webm, or None for anything
    else (the declared Content-Type is not trusted)."""
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mov" if head[8:12] == b"qt  " else "mp4"
    if len(head) >= 8 and head[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return "mov"  # QuickTime files from before ftyp
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return "webm"  # EBML with the DocType webm
    return None


def probe(path: Path, container: str) -> Probe:
    """Read an upload's streams and length. Raises ClipError saying why it cannot be used."""
    import av

    try:
        with av.open(str(path)) as media:
            if not media.streams.video:
                raise ClipError("the file has no video stream")
            video = media.streams.video[0].codec_context
            audio = media.streams.audio[0].codec_context if media.streams.audio else None
            duration = media.duration / 1e6 if media.duration else 0.0
            if duration <= 0:
                stream = media.streams.video[0]
                if stream.duration and stream.time_base:
                    duration = float(stream.duration * stream.time_base)
            if not video.width or not video.height:
                raise ClipError(f"the video stream ({video.name}) has no picture size")
            if duration <= 0:
                raise ClipError("the file gives no duration (it is empty or cut short)")
            return Probe(container, video.name, video.width, video.height,
                          audio.name if audio is not None else None, round(duration, 3))  # fmt: skip
    except av.FFmpegError as exc:
        raise ClipError(f"not a video ffmpeg can read: {exc.strerror or exc}") from None


def fitted_size(width: int, height: int) -> tuple[int, int] | None:
    """The encoded picture size: the short side at most MAX_SHORT_SIDE, aspect kept, both
    even (yuv420p needs it); None when the picture is already that."""
    short = min(width, height)
    scale = min(1.0, MAX_SHORT_SIDE / short)
    fitted = (max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2))
    return None if fitted == (width, height) else fitted


def _global(stream: ffmpeg.nodes.OutputStream) -> ffmpeg.nodes.OutputStream:
    # -xerror: a damaged input packet stops the run instead of making a damaged video.
    return stream.global_args(
        "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error", "-xerror",
        "-progress", "pipe:1",
    ).overwrite_output()  # fmt: skip


def remux_command(
    source: Path, output: Path, *, audio: bool, ffmpeg_binary: str = FFMPEG
) -> list[str]:
    """ffmpeg's argv: the first video (and audio) stream of `source` copied into an MP4 with
    its index first."""
    src = ffmpeg.input(str(source))
    streams = [src["v:0"], src["a:0"]] if audio else [src["v:0"]]
    stream = ffmpeg.output(*streams, str(output), c="copy", movflags="+faststart", f="mp4")
    argv: list[str] = _global(stream).compile(cmd=ffmpeg_binary)
    return argv


def transcode_command(
    source: Path,
    output: Path,
    *,
    audio: bool,
    size: tuple[int, int] | None,
    ffmpeg_binary: str = FFMPEG,
) -> list[str]:
    """ffmpeg's argv: `source` encoded once to H.264 (and AAC) in an MP4 with its index first,
    scaled to `size` when given."""
    src = ffmpeg.input(str(source))
    video = src["v:0"]
    if size is not None:
        video = video.filter("scale", size[0], size[1])
    codecs: dict[str, str | int] = {
        "c:v": "libx264",
        "preset": PRESET,
        "crf": CRF,
        "pix_fmt": "yuv420p",
    }
    streams = [video]
    if audio:
        streams.append(src["a:0"])
        codecs |= {"c:a": "aac", "b:a": AUDIO_BITRATE}
    stream = ffmpeg.output(*streams, str(output), movflags="+faststart", f="mp4", **codecs)
    argv: list[str] = _global(stream).compile(cmd=ffmpeg_binary)
    return argv


def failure_reason(code: int, tail: str) -> str:
    """Why ffmpeg failed, in words an admin can act on, with ffmpeg's own last lines."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        what = f"ffmpeg crashed (killed by {name})"
        return f"{what}: {tail}" if tail else what
    if "No space left on device" in tail or "File too large" in tail:
        return f"the disk is full: {tail}"
    return tail or f"ffmpeg exited with status {code}"


def check_made(path: Path) -> tuple[str, float]:
    """The made file's video codec and length; raises ClipError when it is no video."""
    import av

    try:
        with av.open(str(path)) as media:
            if not media.streams.video or not media.duration:
                raise ClipError("ffmpeg wrote no video")
            return media.streams.video[0].codec_context.name, media.duration / 1e6
    except av.FFmpegError as exc:
        raise ClipError(f"ffmpeg wrote an unreadable file: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class Made:
    size_bytes: int
    duration_s: float
    transcoded: bool


async def make_video(
    source: Path,
    found: Probe,
    output: Path,
    *,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    ffmpeg_binary: str = FFMPEG,
    time_limit_s: float = RUN_TIMEOUT_S,
) -> Made:
    """Make `output` (MP4) from the upload `source`, remuxed or encoded as `found` needs.
    Written under a temporary name and renamed when complete and checked: on any failure
    (raised as ClipError with the reason) no file is left."""
    await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.part")
    audio = found.audio_codec is not None
    if found.remux:
        argv = remux_command(source, partial, audio=audio, ffmpeg_binary=ffmpeg_binary)
    else:
        size = fitted_size(found.width, found.height)
        argv = transcode_command(
            source, partial, audio=audio, size=size, ffmpeg_binary=ffmpeg_binary
        )
    try:
        try:
            code, tail = await asyncio.wait_for(
                run_ffmpeg(argv, found.duration_s, on_progress), time_limit_s
            )
        except TimeoutError:
            raise ClipError(f"ffmpeg took longer than {time_limit_s:g} s") from None
        except OSError as exc:
            raise ClipError(f"ffmpeg could not run: {exc}") from None
        if code != 0:
            raise ClipError(failure_reason(code, tail))
        if any(marker in tail for marker in DAMAGE_MARKERS):
            raise ClipError(f"the file is damaged or cut short: {tail}")
        codec, duration = await asyncio.to_thread(check_made, partial)
        if codec != "h264":
            raise ClipError(f"ffmpeg wrote {codec} video, not H.264")
        if duration < found.duration_s - TRUNCATED_TOLERANCE_S:
            raise ClipError(
                f"the file is cut short: it says {found.duration_s:g} s, "
                f"but only {duration:.2f} s could be read"
            )
        size_bytes = await asyncio.to_thread(lambda: partial.stat().st_size)
        await asyncio.to_thread(os.replace, partial, output)
        return Made(size_bytes, round(duration, 3), not found.remux)
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
