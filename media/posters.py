"""Poster images: one frame of a video as a JPEG, for a player's `poster` and a product page's
thumbnail. The frame is decoded from the video at `at_s` (ffmpeg seeks to the keyframe
before it and decodes on to the exact frame), scaled down to at most 1280 pixels wide, and
written under a temporary name that is renamed when complete, as clips are."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from pathlib import Path

import ffmpeg

from media.clips import FFMPEG, ClipError, run_ffmpeg

MAX_WIDTH = 1280
QUALITY = 3  # mjpeg's qscale: 2 (best) .. 31; 3 is near-lossless at a third of the size
RUN_TIMEOUT_S = 60.0  # one frame takes a fraction of a second


def poster_command(source: Path, at_s: float, output: Path) -> list[str]:
    """ffmpeg's argv: the frame at `at_s` seconds into `source`, at most MAX_WIDTH wide (the
    height keeps the aspect ratio, rounded to even), as one JPEG."""
    stream = (
        ffmpeg.input(str(source), ss=f"{max(at_s, 0.0):.3f}")
        .video.filter("scale", w=f"min({MAX_WIDTH},iw)", h=-2)
        .output(str(output), vframes=1, f="image2", **{"q:v": QUALITY})
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "error")
        .overwrite_output()
    )
    argv: list[str] = stream.compile(cmd=FFMPEG)
    return argv


async def make_poster(
    source: Path, at_s: float, output: Path, *, time_limit_s: float = RUN_TIMEOUT_S
) -> int:
    """Write the frame at `at_s` of `source` to `output` (JPEG); its size in bytes. When there
    is no frame at `at_s` (past the end, or the video's timestamps start late), the first
    frame is taken instead. Nothing is left behind on failure. Raises ClipError with
    ffmpeg's reason."""
    try:
        return await _poster(source, at_s, output, time_limit_s)
    except NoFrame:
        if at_s <= 0:
            raise
        return await _poster(source, 0.0, output, time_limit_s)


class NoFrame(ClipError):
    """ffmpeg decoded no frame at the asked time."""


async def _poster(source: Path, at_s: float, output: Path, time_limit_s: float) -> int:
    await asyncio.to_thread(output.parent.mkdir, parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.{uuid.uuid4().hex[:12]}.part")
    try:
        try:
            code, reason = await asyncio.wait_for(
                run_ffmpeg(poster_command(source, at_s, partial), 0.0, None), time_limit_s
            )
        except TimeoutError:
            raise ClipError(f"ffmpeg took longer than {time_limit_s:g} s") from None
        except OSError as exc:
            raise ClipError(f"ffmpeg could not run: {exc}") from None
        if code != 0 and "received no packets" in reason:
            raise NoFrame(f"no frame at {at_s:g} s: the video is shorter")
        if code != 0:
            raise ClipError(reason or f"ffmpeg exited with status {code}")
        try:
            size = await asyncio.to_thread(lambda: partial.stat().st_size)
        except FileNotFoundError:
            size = 0
        if size == 0:
            raise NoFrame(reason or f"no frame at {at_s:g} s")
        await asyncio.to_thread(os.replace, partial, output)
        return size
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
