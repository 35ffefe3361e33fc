"""The encoded-frame relay: the host's frames, taken from aiortc's receiver before they are
decoded, cut into RTP payloads once and handed to every viewer's sender, and to the
recorder. Nothing here decodes or encodes, and no viewer repeats the packetizing.

One `Broadcast` per live show holds a timeline that outlives any one publisher: when the
host drops and publishes again, timestamps carry on from where they were, so viewers'
players keep going instead of resetting."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.bitstream import START_CODE, FrameInfo, h264_info, h264_parameter_sets, vp8_info

log = logging.getLogger(__name__)

VIDEO_QUEUE = 60  # frames a viewer may fall behind (2 s at 30 fps) before it skips to a keyframe
AUDIO_QUEUE = 100  # 20 ms Opus packets (2 s)
KEYFRAME_REQUEST_INTERVAL = 0.5  # at most two PLIs a second reach the host, however many ask
HEALTH_WINDOW = 2.0  # seconds of frames that bitrate and frame rate are measured over


# --- the tap: encoded frames out of aiortc's receiver ------------------------------------------


class _EncodedTap:
    """Stands in for the receiver's decoder queue. aiortc's receiver puts each complete
    encoded frame (after the jitter buffer reassembled it and NACKs recovered what they
    could) on this queue for its decoder thread; here the frame goes to the relay instead,
    on the event loop, and the decoder thread only waits for the stop signal."""

    def __init__(self, deliver: Callable[[RTCRtpCodecParameters, bytes, int], None]) -> None:
        self._deliver = deliver
        self._stop: queue.SimpleQueue[None] = queue.SimpleQueue()

    def put(self, item: tuple[RTCRtpCodecParameters, Any] | None) -> None:
        if item is None:
            self._stop.put(None)
            return
        codec, frame = item
        try:
            self._deliver(codec, frame.data, frame.timestamp)
        except Exception:  # a bug here must not kill the host's RTP handling
            log.exception("relaying a %s frame failed", codec.name)

    def get(self) -> None:  # the (idle) decoder thread blocks here until the receiver stops
        return self._stop.get()


def tap_receiver(
    receiver: RTCRtpReceiver, deliver: Callable[[RTCRtpCodecParameters, bytes, int], None]
) -> None:
    """Route `receiver`'s encoded frames to `deliver(codec, data, rtp_timestamp)` instead of
    its decoder. Call before the connection starts (before `receive()`)."""
    receiver._RTCRtpReceiver__decoder_queue = _EncodedTap(deliver)  # type: ignore[attr-defined]
    if receiver.transport is not None and _kind(receiver) == "audio":
        # aiortc holds 4 audio packets back (about 80 ms) to smooth playout for its decoder.
        # The relay only forwards, and each viewer's player smooths its own playout: hand
        # each Opus packet on as soon as the next one shows it complete.
        receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=0)  # type: ignore[attr-defined]


def _kind(receiver: RTCRtpReceiver) -> str:
    return str(receiver._RTCRtpReceiver__kind)  # type: ignore[attr-defined]


async def request_keyframe(receiver: RTCRtpReceiver) -> None:
    """Send a Picture Loss Indication for each stream the receiver has heard recently."""
    for source in receiver.getSynchronizationSources():
        await receiver._send_rtcp_pli(source.source)


# --- viewers ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayFrame:
    """One host frame as every viewer sends it: its RTP payloads (cut once) and its RTP
    timestamp on the broadcast's timeline. Each viewer's sender only adds its own headers."""

    payloads: list[bytes]
    timestamp: int


def packetize(codec_name: str, data: bytes, picture_id: int) -> list[bytes]:
    """RTP payloads for one encoded frame, exactly as aiortc's own packer cuts them."""
    if codec_name == "VP8":
        return Vp8Encoder._packetize(data, picture_id)
    if codec_name == "H264":
        return H264Encoder._packetize(H264Encoder._split_bitstream(data))
    return [data]  # Opus: one frame, one packet


class _Prepacked:
    """Stands in for a viewer sender's encoder: frames arrive already packetized."""

    def pack(self, frame: RelayFrame) -> tuple[list[bytes], int]:
        return frame.payloads, frame.timestamp


def send_prepacked(sender: RTCRtpSender) -> None:
    """Make `sender` send RelayFrames as they are (set before its first frame)."""
    sender._RTCRtpSender__encoder = _Prepacked()  # type: ignore[attr-defined]


class RelayTrack(MediaStreamTrack):
    """A viewer's track: packetized frames from the broadcast, bounded. A viewer that
    falls too far behind drops what waits and resumes at the next keyframe (video), so a
    slow peer costs a skip, never the server's memory."""

    def __init__(self, kind: str, on_keyframe_wanted: Callable[[], None]) -> None:
        super().__init__()
        self.kind = kind
        self._limit = VIDEO_QUEUE if kind == "video" else AUDIO_QUEUE
        self._queue: deque[RelayFrame] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._want_keyframe = on_keyframe_wanted
        self.waiting_for_keyframe = kind == "video"
        self.frames_sent = 0
        self.skips = 0

    def push(self, frame: RelayFrame, keyframe: bool) -> None:
        if self.readyState != "live":
            return
        if self.waiting_for_keyframe:
            if not keyframe:
                self._want_keyframe()
                return
            self.waiting_for_keyframe = False
        if len(self._queue) >= self._limit:
            self._queue.clear()
            self.skips += 1
            if self.kind == "video" and not keyframe:
                self.waiting_for_keyframe = True
                self._want_keyframe()
                return
        self._queue.append(frame)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def recv(self) -> RelayFrame:  # type: ignore[override]
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
            self._waiter = None
        self.frames_sent += 1
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._queue.clear()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def forward_keyframe_requests(sender: RTCRtpSender, ask: Callable[[], None]) -> None:
    """A viewer's PLI/FIR would make aiortc's sender force a keyframe from its encoder; the
    relay has no encoder, so the request goes on to the host instead (rate-limited there)."""
    sender._send_keyframe = ask  # type: ignore[method-assign]


# --- the broadcast -------------------------------------------------------------------------------


@dataclass(slots=True)
class Health:
    """Stream health over the last HEALTH_WINDOW seconds."""

    bitrate_kbps: float = 0.0
    frame_rate: float = 0.0
    width: int | None = None
    height: int | None = None
    keyframe_interval_s: float | None = None


@dataclass(slots=True)
class _Timeline:
    """Maps one publisher's RTP timestamps onto the broadcast's continuous timeline."""

    clock_rate: int
    offset: int | None = None
    last_rtp: int | None = None
    last_pts: int = -1

    def pts(self, rtp_timestamp: int, since_start: float) -> int:
        if self.offset is None or self.last_rtp is None or rtp_timestamp < self.last_rtp:
            # A new publisher (or its timestamps jumped back): anchor on the wall clock,
            # which keeps audio and video in step and the timeline moving forward.
            self.offset = round(since_start * self.clock_rate) - rtp_timestamp
        self.last_rtp = rtp_timestamp
        pts = max(rtp_timestamp + self.offset, self.last_pts + 1)
        self.last_pts = pts
        return pts


@dataclass(slots=True)
class Broadcast:
    """One show's media: the codecs it is relayed in, its viewers' tracks, the host's
    current publisher (if any), its health and its recording."""

    show_id: str
    video_codec: RTCRtpCodecParameters | None = None
    audio_codec: RTCRtpCodecParameters | None = None
    tracks: set[RelayTrack] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    timelines: dict[str, _Timeline] = field(default_factory=dict)
    # Set by the publisher: asks the host for a keyframe.
    keyframe_source: Callable[[], Any] | None = None
    last_keyframe_request: float = 0.0
    keyframe_requests: int = 0
    # Called with each relayed frame (the recorder): kind, data, pts, clock rate, info.
    sinks: list[Callable[[str, bytes, int, int, FrameInfo], None]] = field(default_factory=list)
    picture_id: int = 0  # VP8 picture ids, continuous across publishers
    last_media: float = 0.0
    frames_in: int = 0
    # H.264 parameter sets, put in front of an IDR that arrives without them.
    sps: bytes | None = None
    pps: bytes | None = None
    # (arrival time, bytes, is a video frame) for the health window; keyframe arrival times.
    _window: deque[tuple[float, int, bool]] = field(default_factory=deque)
    _keyframes: deque[float] = field(default_factory=lambda: deque(maxlen=6))
    width: int | None = None
    height: int | None = None

    def frame(self, codec: RTCRtpCodecParameters, data: bytes, rtp_timestamp: int) -> None:
        """An encoded frame from the host: relay it to every viewer and sink."""
        kind = "video" if codec.mimeType.lower().startswith("video/") else "audio"
        now = time.monotonic()
        info = self._inspect(codec, data) if kind == "video" else FrameInfo(True)
        if kind == "video" and info.keyframe and codec.name == "H264":
            data = self._with_parameter_sets(data)
        timeline = self.timelines.get(kind)
        if timeline is None:
            timeline = self.timelines[kind] = _Timeline(codec.clockRate)
        pts = timeline.pts(rtp_timestamp, now - self.started)
        self.last_media = now
        self.frames_in += 1
        self._measure(now, len(data), kind == "video", info)
        viewers = [track for track in self.tracks if track.kind == kind]
        if viewers:
            if codec.name == "VP8":
                self.picture_id = (self.picture_id + 1) % (1 << 15)
            frame = RelayFrame(packetize(codec.name, data, self.picture_id), pts)
            for track in viewers:
                track.push(frame, info.keyframe)
        for sink in self.sinks:
            sink(kind, data, pts, codec.clockRate, info)

    def _inspect(self, codec: RTCRtpCodecParameters, data: bytes) -> FrameInfo:
        if codec.name == "VP8":
            return vp8_info(data)
        if codec.name == "H264":
            info = h264_info(data)
            sps, pps = h264_parameter_sets(data)
            self.sps = sps or self.sps
            self.pps = pps or self.pps
            return info
        return FrameInfo(False)

    def _with_parameter_sets(self, data: bytes) -> bytes:
        sps, pps = h264_parameter_sets(data)
        prefix = b""
        if sps is None and self.sps is not None:
            prefix += START_CODE + self.sps
        if pps is None and self.pps is not None:
            prefix += START_CODE + self.pps
        return prefix + data

    def _measure(self, now: float, size: int, video: bool, info: FrameInfo) -> None:
        self._window.append((now, size, video))
        while self._window and self._window[0][0] < now - HEALTH_WINDOW:
            self._window.popleft()
        if video and info.keyframe:
            self._keyframes.append(now)
        if info.width:
            self.width, self.height = info.width, info.height

    def health(self) -> Health:
        now = time.monotonic()
        window = [(t, size, video) for t, size, video in self._window if t >= now - HEALTH_WINDOW]
        if not window:
            return Health(width=self.width, height=self.height)
        frames = sum(1 for _, _, video in window if video)
        keyframes = list(self._keyframes)
        interval = (
            (keyframes[-1] - keyframes[0]) / (len(keyframes) - 1) if len(keyframes) > 1 else None
        )
        return Health(
            bitrate_kbps=round(sum(size for _, size, _ in window) * 8 / HEALTH_WINDOW / 1000, 1),
            frame_rate=round(frames / HEALTH_WINDOW, 1),
            width=self.width,
            height=self.height,
            keyframe_interval_s=round(interval, 2) if interval is not None else None,
        )

    def want_keyframe(self) -> None:
        """A viewer needs a keyframe: ask the host, at most every KEYFRAME_REQUEST_INTERVAL."""
        now = time.monotonic()
        if self.keyframe_source is None or now - self.last_keyframe_request < (
            KEYFRAME_REQUEST_INTERVAL
        ):
            return
        self.last_keyframe_request = now
        self.keyframe_requests += 1
        result = self.keyframe_source()
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)
            task.add_done_callback(_log_failure)

    def add_viewer(self, kind: str) -> RelayTrack:
        track = RelayTrack(kind, self.want_keyframe)
        self.tracks.add(track)
        if kind == "video":
            self.want_keyframe()
        return track

    def remove_track(self, track: RelayTrack) -> None:
        self.tracks.discard(track)
        track.stop()

    def close(self) -> None:
        for track in list(self.tracks):
            track.stop()
        self.tracks.clear()


def _log_failure(task: asyncio.Future[Any]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if task.exception() is not None:
            log.warning("keyframe request failed: %s", task.exception())
