"""Recording: the host's encoded frames written to a Matroska file as they arrive, without
re-encoding. Matroska holds VP8, H.264 (in the Annex B form WebRTC carries) and Opus alike,
and PyAV muxes it; a recording cut off by a crash is still readable up to the last cluster."""

from __future__ import annotations

import fractions
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import av
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.bitstream import FrameInfo

log = logging.getLogger(__name__)

CONTAINER = "matroska"
SUFFIX = ".mkv"
_CODEC_NAMES = {"VP8": "vp8", "H264": "h264", "opus": "opus"}


def _opus_head(channels: int, sample_rate: int) -> bytes:
    # RFC 7845 section 5.1: identification header, channel mapping family 0.
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 312, sample_rate, 0, 0)


@dataclass(frozen=True, slots=True)
class Recording:
    path: Path
    container: str
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    duration_ms: int
    bytes: int


class Recorder:
    """Writes one show's frames. Opens the file on the first video keyframe (so the
    recording starts with a decodable picture and knows its size), or on the first audio
    frame of a show without video; frames before that are left out."""

    def __init__(
        self,
        path: Path,
        video: RTCRtpCodecParameters | None,
        audio: RTCRtpCodecParameters | None,
    ) -> None:
        self.path = path
        self._video_codec = video
        self._audio_codec = audio
        self._container: av.container.OutputContainer | None = None
        self._streams: dict[str, av.stream.Stream] = {}
        self._origin: float | None = None  # seconds on the broadcast timeline of the first frame
        self._last_pts: dict[str, int] = {}
        self._end = 0.0
        self._width: int | None = None
        self._height: int | None = None
        self.failed: str | None = None

    def write(self, kind: str, data: bytes, pts: int, clock_rate: int, info: FrameInfo) -> None:
        if self.failed is not None:
            return
        try:
            self._write(kind, data, pts / clock_rate, info)
        except (OSError, av.FFmpegError) as exc:
            # A full disk or a muxer error stops the recording, never the broadcast.
            self.failed = str(exc)
            log.error("recording %s stopped: %s", self.path, exc)
            self._close_quietly()

    def _write(self, kind: str, data: bytes, seconds: float, info: FrameInfo) -> None:
        if self._container is None:
            starts = (kind == "video" and info.keyframe and info.width) or (
                kind == "audio" and self._video_codec is None
            )
            if not starts:
                return
            self._open(info)
            self._origin = seconds
        assert self._origin is not None
        stream = self._streams.get(kind)
        if stream is None or seconds < self._origin:
            return
        tb = stream.time_base
        assert tb is not None
        pts = round((seconds - self._origin) / tb)
        if pts <= self._last_pts.get(kind, -1):
            pts = self._last_pts[kind] + 1
        self._last_pts[kind] = pts
        packet = av.Packet(data)
        packet.stream = stream
        packet.pts = packet.dts = pts
        packet.time_base = tb
        if kind == "video" and info.keyframe:
            packet.is_keyframe = True
        self._container.mux(packet)  # type: ignore[union-attr]
        self._end = max(self._end, seconds - self._origin)

    def _open(self, info: FrameInfo) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self.path), "w", format=CONTAINER)
        millis = fractions.Fraction(1, 1000)
        if self._video_codec is not None:
            video = container.add_stream(_CODEC_NAMES[self._video_codec.name])
            assert isinstance(video, av.VideoStream)
            video.width, video.height = info.width or 0, info.height or 0
            video.time_base = millis
            self._width, self._height = info.width, info.height
            self._streams["video"] = video
        if self._audio_codec is not None:
            channels = self._audio_codec.channels or 2
            audio = container.add_stream("opus", rate=48000)
            audio.codec_context.extradata = _opus_head(channels, 48000)  # type: ignore[union-attr]
            audio.time_base = millis
            self._streams["audio"] = audio
        self._container = container

    def _close_quietly(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except (OSError, av.FFmpegError):
                pass
            self._container = None

    def close(self) -> Recording | None:
        """Finish the file; None if nothing was recorded (or it failed)."""
        if self._container is None:
            return None
        self._container.close()
        self._container = None
        return Recording(
            path=self.path,
            container=CONTAINER,
            video_codec=_CODEC_NAMES[self._video_codec.name] if self._video_codec else None,
            audio_codec="opus" if self._audio_codec else None,
            width=self._width,
            height=self._height,
            duration_ms=round(self._end * 1000),
            bytes=self.path.stat().st_size,
        )
