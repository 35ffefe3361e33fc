"""Real media peers for tests: ffmpeg publishing a test pattern over WHIP, and an aiortc
viewer watching over WHEP (the viewer decodes what it receives, as a player would)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import imageio_ffmpeg
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

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


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Viewer:
    """A WHEP viewer that decodes what it receives."""

    pc: RTCPeerConnection
    location: str | None = None
    video_frames: list[av.VideoFrame] = field(default_factory=list)
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


async def whep_offer(kinds: tuple[str, ...] = ("video", "audio")) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction="recvonly")
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
