"""Real media peers for tests: ffmpeg publishing a test pattern over WHIP, and an aiortc
viewer watching over WHEP (the viewer decodes what it receives, as a player would)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import av
import imageio_ffmpeg
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import (
    AudioStreamTrack,
    MediaStreamError,
    MediaStreamTrack,
    VideoStreamTrack,
)

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg_whip_command(
    url: str,
    token: str,
    *,
    size: str = "320x240",
    rate: int = 30,
    gop: int = 30,
    bitrate: str = "400k",
    profile: str = "baseline",
    audio: bool = True,
) -> list[str]:
    """ffmpeg's `whip` muxer sending an H.264 test pattern (and a tone) in real time."""
    video = f"testsrc2=size={size}:rate={rate}"
    command = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", video]
    if audio:
        command += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    command += [
        "-c:v",
        "libx264",
        "-profile:v",
        profile,
        "-tune",
        "zerolatency",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-b:v",
        bitrate,
        "-bf",
        "0",
    ]
    if audio:
        command += ["-c:a", "libopus", "-ar", "48000", "-ac", "2", "-b:a", "64k"]
    command += ["-f", "whip", "-authorization", token, url]
    return command


async def film(folder: Path, seconds: int = 8, *, audio: bool = False) -> datetime:
    """A show's HLS as the server leaves it when the show ends (VOD, 2 s H.264 segments, AAC
    too with `audio`, each segment with its program date-time in RFC 3339 as the server
    writes it), made by ffmpeg from a test pattern. When its first frame was."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size=320x240:rate=25:duration={seconds}"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline"]
    codecs += ["-pix_fmt", "yuv420p", "-g", "50"]
    if audio:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"]
        codecs += ["-c:a", "aac", "-b:a", "64k"]
    process = await asyncio.create_subprocess_exec(
        *(FFMPEG, "-hide_banner", "-loglevel", "error", *inputs, *codecs),
        *("-f", "hls", "-hls_time", "2", "-hls_playlist_type", "vod"),
        *("-hls_flags", "program_date_time"),
        *("-hls_segment_filename", str(folder / "seg-%06d.ts"), str(folder / "index.m3u8")),
    )
    assert await process.wait() == 0
    playlist = folder / "index.m3u8"
    text = re.sub(r"([+-]00):?00$", "Z", await asyncio.to_thread(playlist.read_text), flags=re.M)
    await asyncio.to_thread(playlist.write_text, text)
    first = re.search(r"#EXT-X-PROGRAM-DATE-TIME:(\S+)", text)
    assert first is not None, text
    return datetime.fromisoformat(first.group(1).replace("Z", "+00:00"))


@contextlib.asynccontextmanager
async def ffmpeg_publisher(url: str, token: str, **options: Any) -> AsyncIterator[Any]:
    process = await asyncio.create_subprocess_exec(
        *ffmpeg_whip_command(url, token, **options),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5)
            except TimeoutError:
                process.kill()
                await process.wait()


async def wait_for(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Viewer:
    """A WHEP viewer that decodes what it receives."""

    pc: RTCPeerConnection
    location: str | None = None
    video_frames: list[av.VideoFrame] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)  # time.time() of each kept frame
    audio_frames: int = 0
    frame_times: list[float] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    if len(self.video_frames) < 300:
                        self.video_frames.append(frame)
                        self.wall_times.append(time.time())
                    self.frame_times.append(time.monotonic())
                else:
                    self.audio_frames += 1

    async def close(self, session: aiohttp.ClientSession | None = None) -> None:
        if session is not None and self.location is not None:
            async with session.delete(self.location) as response:
                assert response.status == 200, await response.text()
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def whep_offer(
    kinds: tuple[str, ...] = ("video", "audio"), direction: str = "recvonly"
) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    for kind in kinds:
        if direction == "sendonly":
            track = VideoStreamTrack() if kind == "video" else AudioStreamTrack()
            pc.addTransceiver(track, direction="sendonly")
        else:
            pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    return pc


async def watch(
    session: aiohttp.ClientSession, base_url: str, show_id: str, **offer: Any
) -> Viewer:
    pc = await whep_offer(**offer)
    viewer = Viewer(pc)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        viewer.tasks.append(asyncio.ensure_future(viewer._consume(track)))

    async with session.post(
        f"{base_url}/whep/{show_id}",
        data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
    ) as response:
        body = await response.text()
        if response.status != 201:
            await pc.close()
            raise AssertionError(f"WHEP answered {response.status}: {body}")
        location = response.headers["Location"]
    viewer.location = base_url + location
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return viewer


# --- an aiortc publisher whose frames carry the time they were made ----------------------

BARCODE_BITS = 40  # milliseconds since the epoch, modulo 2**40 (about 34 years)
BLOCK = 16  # each bit is a 16x16 block: big enough to survive VP8 at a modest bitrate
WIDTH, HEIGHT = 320, 240
_PER_ROW = WIDTH // BLOCK


def barcode_frame(millis: int, tick: int) -> av.VideoFrame:
    """A 320x240 frame: the top rows encode `millis` as black and white blocks, below them a
    bar moves so the encoder always has something to send."""
    frame = av.VideoFrame(WIDTH, HEIGHT, "yuv420p")
    luma = frame.planes[0]
    stride = luma.line_size
    rows = bytearray(b"\x80" * stride * HEIGHT)
    for bit in range(BARCODE_BITS):
        on = (millis >> (BARCODE_BITS - 1 - bit)) & 1
        value = 235 if on else 16
        bx, by = (bit % _PER_ROW) * BLOCK, (bit // _PER_ROW) * BLOCK
        for y in range(by, by + BLOCK):
            start = y * stride + bx
            rows[start : start + BLOCK] = bytes([value]) * BLOCK
    bar = (tick * 4) % WIDTH
    for y in range(120, 200):
        start, width = y * stride + bar, min(8, WIDTH - bar)
        rows[start : start + width] = b"\xff" * width
    luma.update(bytes(rows))
    for plane in frame.planes[1:]:
        plane.update(b"\x80" * plane.buffer_size)
    return frame


def read_barcode(frame: av.VideoFrame) -> int:
    luma = frame.planes[0]
    stride = luma.line_size
    data = bytes(luma)
    value = 0
    for bit in range(BARCODE_BITS):
        bx, by = (bit % _PER_ROW) * BLOCK, (bit // _PER_ROW) * BLOCK
        # The middle of the block: edges blur.
        samples = [
            data[y * stride + x] for y in range(by + 5, by + 11) for x in range(bx + 5, bx + 11)
        ]
        value = value << 1 | (1 if sum(samples) / len(samples) > 128 else 0)
    return value


class BarcodeTrack(VideoStreamTrack):
    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.ticks = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = barcode_frame(int(time.time() * 1000) % (1 << BARCODE_BITS), self.ticks)
        self.ticks += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class BarcodePublisher:
    """aiortc publishing VP8 over WHIP (and silence over Opus, unless video only)."""

    pc: RTCPeerConnection
    location: str | None = None
    auth: str = ""

    @classmethod
    async def start(
        cls,
        session: aiohttp.ClientSession,
        base_url: str,
        show_id: str,
        token: str,
        *,
        audio: bool = True,
    ) -> BarcodePublisher:
        pc = RTCPeerConnection()
        pc.addTransceiver(BarcodeTrack(), direction="sendonly")
        if audio:
            pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with session.post(
            f"{base_url}/whip/{show_id}",
            data=pc.localDescription.sdp,
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        ) as response:
            body = await response.text()
            if response.status != 201:
                await pc.close()
                raise AssertionError(f"WHIP answered {response.status}: {body}")
            location = base_url + response.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        return cls(pc, location, f"Bearer {token}")

    async def close(self, session: aiohttp.ClientSession | None = None) -> None:
        if session is not None and self.location is not None:
            async with session.delete(
                self.location, headers={"Authorization": self.auth}
            ) as response:
                assert response.status == 200, await response.text()
        await self.pc.close()
