"""Live HLS: the host's encoded frames cut into short MPEG-TS segments while the show is
live, listed in an `index.m3u8` that becomes the replay when the show ends.

H.264 from the host is remuxed as it is: each segment starts on one of the host's
keyframes, and the writer asks the host for one (the broadcast's rate-limited PLI) when a
segment has run its length. VP8 is decoded and encoded to H.264 once per show, with an IDR
wherever a segment starts. Opus is transcoded to AAC once per show (MPEG-TS with Opus
plays almost nowhere; AAC plays everywhere, and audio is cheap to encode).

The relay calls `HlsWriter.write` on the event loop for every frame; it only decides where
segments start and puts the frame on a bounded queue. A thread of its own muxes, encodes
audio and writes files, so a slow disk costs HLS frames, never the relay. Every segment
carries `#EXT-X-PROGRAM-DATE-TIME`, the wall-clock time its first frame arrived (the
broadcast's timeline is anchored on the wall clock), so product moments line up with the
video. A pause of the host (a drop and return) becomes an `#EXT-X-DISCONTINUITY`."""

from __future__ import annotations

import contextlib
import fractions
import logging
import math
import os
import queue
import re
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from media.bitstream import FrameInfo

log = logging.getLogger(__name__)

PLAYLIST = "index.m3u8"
SEGMENT_NAME = re.compile(r"^seg-[0-9]{6,9}\.ts$")
SEGMENT_SECONDS = 2.0  # the target length of a segment
# A segment is cut at the first host keyframe this close to its target length; past it the
# host is asked for a keyframe (a PLI answers within a round trip and an encode).
KEYFRAME_LEAD = 0.25
QUEUE_FRAMES = 600  # about 7 s of 30 fps video plus 50 Opus packets a second
GAP_SECONDS = 1.0  # the host's media pausing longer than this is a drop: a discontinuity
IDLE_CLOSE = 1.0  # with nothing arriving for this long, the open segment is finished
TIMESTAMP_BASE = 10 * 90000  # MPEG-TS timestamps start 10 s in, so none is ever negative
TS = fractions.Fraction(1, 90000)
AUDIO_RATE = 48000
AAC_BITRATE = 128_000


def _opus_head(channels: int) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, 312, AUDIO_RATE, 0, 0)


def _iso(wall: float) -> str:
    return (
        datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass(frozen=True, slots=True)
class PlaylistInfo:
    """What a playlist on disk says: its segments, their total length, whether it ended."""

    segments: int
    duration_s: float
    ended: bool
    started_at: str | None  # the first segment's program date-time
    ended_at: float | None = None  # wall clock (epoch s) the playlist was finished


def read_playlist(path: Path) -> PlaylistInfo | None:
    text = read_playlist_text(path)
    return None if text is None else parse_playlist(text)


def read_playlist_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None


def parse_playlist(text: str) -> PlaylistInfo:
    segments, duration, started = 0, 0.0, None
    for line in text.splitlines():
        if line.startswith("#EXTINF:"):
            duration += float(line[8:].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:") and started is None:
            started = line.split(":", 1)[1]
        elif line and not line.startswith("#"):
            segments += 1
    ended = "#EXT-X-ENDLIST" in text
    return PlaylistInfo(segments, round(duration, 3), ended, started)


@dataclass(frozen=True, slots=True)
class Span:
    """One run of segments on the playlist's timeline: its wall-clock start (the program
    date-time), where it starts in the media, and how long it plays."""

    wall: float  # epoch seconds
    media: float  # seconds from the playlist's start
    duration: float


def read_timeline(text: str) -> list[Span]:
    """The playlist's segments as wall-clock spans. A segment's tags (its #EXTINF and its
    program date-time, in either order) come before its URI; a segment without a date-time
    follows on from the one before."""
    spans: list[Span] = []
    media = 0.0
    wall: float | None = None
    duration: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            with contextlib.suppress(ValueError):
                value = line.split(":", 1)[1].replace("Z", "+00:00")
                wall = datetime.fromisoformat(value).timestamp()
        elif line.startswith("#EXTINF:"):
            with contextlib.suppress(ValueError):
                duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):  # the segment's URI ends its tags
            if duration is not None:
                if wall is None and spans:
                    wall = spans[-1].wall + spans[-1].duration
                if wall is not None:
                    spans.append(Span(wall, media, duration))
                media += duration
            wall = duration = None
    return spans


def media_time(spans: list[Span], wall: float) -> float | None:
    """Where a wall-clock moment is in the video: inside a segment, its place there; in a
    gap (the host away), the start of what comes next; before the video, 0; after it, None."""
    if not spans or wall > spans[-1].wall + spans[-1].duration:
        return None
    for span in spans:
        if wall < span.wall:
            return span.media  # before this segment (the start, or a gap): it begins here
        if wall < span.wall + span.duration:
            return span.media + (wall - span.wall)
    last = spans[-1]
    return last.media + last.duration


def finish_playlist(path: Path) -> bool:
    """Turn a playlist left open (its writer is gone: the server restarted during the show)
    into the replay. False if there is none, or it was already finished."""
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return False
    if "#EXT-X-ENDLIST" in text:
        return False
    text = text.replace("#EXT-X-PLAYLIST-TYPE:EVENT", "#EXT-X-PLAYLIST-TYPE:VOD")
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(text.rstrip("\n") + "\n#EXT-X-ENDLIST\n")
    os.replace(tmp, path)
    return True


@dataclass(slots=True)
class _Segment:
    number: int
    tmp: Path
    container: Any
    video: Any
    audio: Any
    start: float  # seconds on the broadcast timeline
    discontinuity: bool
    run: int  # which publisher's frames (see HlsWriter._skew)


@dataclass(frozen=True, slots=True)
class _Listed:
    name: str
    start: float
    length: float
    discontinuity: bool
    run: int


@dataclass(slots=True)
class _Item:
    kind: str
    data: bytes
    pts: int
    clock_rate: int
    keyframe: bool
    cut: bool  # a segment starts with this frame
    run: int  # the publisher's frames since the last pause (a drop and return)
    skew: float  # add to wall origin + timeline seconds: the wall-clock time of capture
    width: int | None = None
    height: int | None = None


class HlsWriter:
    """One show's live HLS. `write` is the broadcast's sink (event loop); `close` finishes
    the playlist (blocking: call it in a thread)."""

    def __init__(
        self,
        directory: Path,
        video: RTCRtpCodecParameters | None,
        audio: RTCRtpCodecParameters | None,
        *,
        timeline_started: float,
        on_keyframe_wanted: Callable[[], None] | None = None,
        segment_seconds: float = SEGMENT_SECONDS,
        queue_frames: int = QUEUE_FRAMES,
    ) -> None:
        self.directory = directory
        self.playlist = directory / PLAYLIST
        self._video_codec = video
        self._audio_codec = audio
        self._transcode = video is not None and video.name != "H264"
        self._key_kind = "video" if video is not None else "audio"
        # Wall-clock time of the broadcast timeline's zero (timeline_started is monotonic).
        self._wall_origin = time.time() - (time.monotonic() - timeline_started)
        # The timeline is anchored on its publisher's first frame, which may have waited
        # (a publisher that buffered while connecting sends a burst): the least (arrival -
        # timeline time) over a publisher's frames is the best estimate of when each frame
        # was captured (plus the network's least delay). Estimated anew for each publisher.
        self._skew = math.inf
        self._run_id = 0
        self._want_keyframe = on_keyframe_wanted
        self.segment_seconds = segment_seconds
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=queue_frames)
        # Event-loop side: where segments start.
        self._cut_at: float | None = None
        self._last_key_kind: float | None = None
        self._need_keyframe = True
        self.dropped = 0  # frames left out because the queue was full
        self.keyframe_requests = 0
        self.failed: str | None = None
        self._closed = False
        # Writer-thread side.
        self._resumed: list[str] = []  # entries of an earlier writer's playlist, as they were
        self._listed: list[_Listed] = []
        self._run_skew: dict[int, float] = {}
        self._segments = 0
        self._duration = 0.0
        self._max_extinf = 0.0
        self._next_number = 0
        self._segment: _Segment | None = None
        self._prev_end: float | None = None
        self._last_key: float | None = None
        self._item_run = 0
        self._last_video_pts: int | None = None
        self._key_interval = 1 / 30
        self._last_item_at = time.monotonic()
        self._finalize = True
        self._ended_at: float | None = None
        self._aac: Any = None
        self._opus: Any = None
        self._fifo: Any = None
        self._audio_next: int | None = None  # next expected Opus sample (timeline pts)
        self._aac_pts = 0
        self._vp8: Any = None
        self._x264: Any = None
        self._force_idr = False
        self._resume()
        self._thread = threading.Thread(
            target=self._run, name=f"hls-{directory.name[:8]}", daemon=True
        )
        self._thread.start()

    # --- the event loop side ---------------------------------------------------------------

    def write(self, kind: str, data: bytes, pts: int, clock_rate: int, info: FrameInfo) -> None:
        if self.failed is not None or self._closed:
            return
        seconds = pts / clock_rate
        cut = False
        if kind == self._key_kind:
            if self._last_key_kind is not None and seconds - self._last_key_kind > GAP_SECONDS:
                self._need_keyframe = True  # the host paused: start afresh on a keyframe
                self._skew = math.inf
                self._run_id += 1
            self._last_key_kind = seconds
            self._skew = min(self._skew, time.time() - self._wall_origin - seconds)
            since = math.inf if self._cut_at is None else seconds - self._cut_at
            if self._need_keyframe:
                if not info.keyframe:
                    self._ask_keyframe()
                    return  # nothing of a segment that cannot start yet
                cut = True
            elif self._transcode or kind == "audio":
                # The encoder makes the keyframe (every audio frame starts cleanly).
                cut = since >= self.segment_seconds
            elif since >= self.segment_seconds - KEYFRAME_LEAD:
                if info.keyframe:
                    cut = True
                else:
                    self._ask_keyframe()
        elif self._need_keyframe:
            return
        skew = 0.0 if math.isinf(self._skew) else self._skew
        item = _Item(
            kind,
            data,
            pts,
            clock_rate,
            info.keyframe,
            cut,
            self._run_id,
            skew,
            info.width,
            info.height,
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            # The writer fell behind (a slow disk): leave frames out, resume on a keyframe.
            self.dropped += 1
            self._need_keyframe = True
            return
        if cut:
            self._cut_at = seconds
            self._need_keyframe = False

    def _ask_keyframe(self) -> None:
        if self._want_keyframe is not None:
            self.keyframe_requests += 1
            self._want_keyframe()

    def close(self, *, finalize: bool = True, timeout: float = 30.0) -> PlaylistInfo | None:
        """Finish the open segment and the playlist: with `finalize`, the playlist becomes
        a VOD one with ENDLIST (the replay); without, it stays open for a later publish."""
        if not self._closed:
            self._closed = True
            self._finalize = finalize
            with contextlib.suppress(queue.Full):  # a writer that died leaves its queue full
                self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        if finalize and self.failed is not None:
            finish_playlist(self.playlist)  # what was listed before the failure is the replay
        info = read_playlist(self.playlist)
        if info is None:
            return None
        return PlaylistInfo(
            info.segments, info.duration_s, info.ended, info.started_at, self._ended_at
        )

    # --- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.25)
                except queue.Empty:
                    if (
                        self._segment is not None
                        and time.monotonic() - self._last_item_at > IDLE_CLOSE
                    ):
                        self._close_segment(self._paused_end())
                        self._write_playlist()
                    continue
                if item is None:
                    break
                self._last_item_at = time.monotonic()
                if item.kind == "video":
                    self._video(item)
                else:
                    self._audio(item)
            self._finish()
        except Exception as exc:  # a full disk or a muxer error stops HLS, not the show
            self.failed = str(exc) or type(exc).__name__
            log.exception("live HLS for %s stopped", self.directory.name)
            self._drop_segment()

    def _finish(self) -> None:
        if self._segment is not None:
            if self._finalize:
                self._flush_encoders()
            self._close_segment(self._paused_end())
        if self._finalize:
            self._write_playlist(final=True)
            self._ended_at = time.time()
        else:
            self._write_playlist()

    def _paused_end(self) -> float:
        assert self._segment is not None
        last = self._last_key if self._last_key is not None else self._segment.start
        return max(last + self._key_interval, self._segment.start)

    def _video(self, item: _Item) -> None:
        seconds = self._keyed(item)
        if self._transcode:
            self._transcode_video(item, seconds)
        else:
            if item.cut:
                self._start_segment(seconds, item.width, item.height)
            self._mux_video(item.data, item.pts, item.keyframe)
        self._last_key = seconds

    def _keyed(self, item: _Item) -> float:
        """Bookkeeping for a frame of the kind segments start on (video, or audio alone)."""
        seconds = item.pts / item.clock_rate
        if self._last_key is not None and 0 < seconds - self._last_key < 0.5:
            self._key_interval = seconds - self._last_key
        self._item_run = item.run
        self._run_skew[item.run] = item.skew
        return seconds

    def _start_segment(self, seconds: float, width: int | None, height: int | None) -> None:
        if self._segment is not None:
            if seconds - (self._last_key or seconds) > GAP_SECONDS:
                self._close_segment(self._paused_end())
            else:
                self._close_segment(seconds)
            self._write_playlist()
        self._open_segment(seconds, width, height)

    def _open_segment(self, seconds: float, width: int | None, height: int | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        number = self._next_number
        self._next_number += 1
        tmp = self.directory / f"seg-{number:06d}.ts.tmp"
        container = av.open(str(tmp), "w", format="mpegts")
        video = audio = None
        if self._video_codec is not None:
            video = container.add_stream("h264")
            video.width, video.height = width or 16, height or 16
            video.time_base = TS
        if self._audio_codec is not None:
            encoder = self._aac_encoder()
            audio = container.add_stream("aac", rate=AUDIO_RATE)
            audio.codec_context.layout = encoder.layout
            audio.codec_context.extradata = encoder.extradata
            audio.time_base = TS
        discontinuity = self._prev_end is not None and seconds - self._prev_end > 0.1
        self._segment = _Segment(
            number, tmp, container, video, audio, seconds, discontinuity, self._item_run
        )

    def _close_segment(self, end: float) -> None:
        segment = self._segment
        if segment is None:
            return
        self._segment = None
        segment.container.close()
        name = segment.tmp.name.removesuffix(".tmp")
        os.replace(segment.tmp, self.directory / name)
        length = max(end - segment.start, 0.001)
        self._listed.append(
            _Listed(name, segment.start, length, segment.discontinuity, segment.run)
        )
        self._segments += 1
        self._duration += length
        self._max_extinf = max(self._max_extinf, length)
        self._prev_end = end

    def _drop_segment(self) -> None:
        segment, self._segment = self._segment, None
        if segment is not None:
            with contextlib.suppress(Exception):
                segment.container.close()
            with contextlib.suppress(OSError):
                segment.tmp.unlink()

    def _write_playlist(self, *, final: bool = False) -> None:
        if not self._listed and not self._resumed and not final:
            return
        # The declared target may only grow if the host's keyframes are further apart than
        # a segment's target (a publisher that ignores keyframe requests).
        target = max(math.ceil(self.segment_seconds), round(self._max_extinf))
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            "#EXT-X-MEDIA-SEQUENCE:0",
            f"#EXT-X-PLAYLIST-TYPE:{'VOD' if final else 'EVENT'}",
            "#EXT-X-INDEPENDENT-SEGMENTS",
            *self._resumed,
        ]
        for entry in self._listed:
            # Each segment's capture time, with its publisher's latest estimate of the skew:
            # the program date-times of one publisher's segments stay contiguous.
            wall = self._wall_origin + entry.start + self._run_skew.get(entry.run, 0.0)
            if entry.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_iso(wall)}")
            lines.append(f"#EXTINF:{entry.length:.3f},")
            lines.append(entry.name)
        if final:
            lines.append("#EXT-X-ENDLIST")
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{PLAYLIST}.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.playlist)

    def _resume(self) -> None:
        """A playlist left by an earlier writer for this show (the server restarted while
        the show was live): carry on after its segments, behind a discontinuity."""
        try:
            text = self.playlist.read_text()
        except (FileNotFoundError, NotADirectoryError):
            return
        lines = text.splitlines()
        first = next(
            (
                i
                for i, line in enumerate(lines)
                if line.startswith(("#EXT-X-DISCONTINUITY", "#EXT-X-PROGRAM-DATE-TIME", "#EXTINF"))
            ),
            len(lines),
        )
        for line in lines[first:]:
            if line == "#EXT-X-ENDLIST":
                continue
            self._resumed.append(line)
            if line.startswith("#EXTINF:"):
                length = float(line[8:].split(",")[0])
                self._duration += length
                self._max_extinf = max(self._max_extinf, length)
            elif line and not line.startswith("#"):
                self._segments += 1
                match = re.match(r"seg-([0-9]+)\.ts$", line)
                if match:
                    self._next_number = max(self._next_number, int(match.group(1)) + 1)
        if self._segments:
            self._prev_end = -math.inf  # whatever comes next is a discontinuity

    # --- video ----------------------------------------------------------------------------

    def _mux_video(self, data: bytes, pts: int, keyframe: bool) -> None:
        segment = self._segment
        if segment is None or segment.video is None:
            return
        if self._last_video_pts is not None and pts <= self._last_video_pts:
            return  # frames out of order (B-frames, which WebRTC senders do not make)
        self._last_video_pts = pts
        packet = av.Packet(data)
        packet.stream = segment.video
        packet.time_base = TS
        packet.pts = packet.dts = pts + TIMESTAMP_BASE
        packet.is_keyframe = keyframe
        segment.container.mux(packet)

    def _transcode_video(self, item: _Item, seconds: float) -> None:
        """VP8 from the host: decoded and encoded to H.264 here, once for the show; every
        segment starts with an IDR the encoder was told to make."""
        if self._vp8 is None or (item.cut and item.keyframe):
            self._vp8 = av.CodecContext.create("vp8", "r")
        if item.cut:
            self._force_idr = True
        try:
            frames = self._vp8.decode(av.Packet(item.data))
        except av.FFmpegError:
            return
        for frame in frames:
            encoder = self._h264_encoder(frame.width, frame.height)
            frame = frame.reformat(format="yuv420p") if frame.format.name != "yuv420p" else frame
            frame.pts = item.pts
            frame.time_base = TS
            # The encoder makes a keyframe only where it is told to (not where the VP8 had one).
            frame.pict_type = (
                av.video.frame.PictureType.I if self._force_idr else av.video.frame.PictureType.NONE
            )
            for packet in encoder.encode(frame):
                self._encoded_video(packet, seconds)
            self._force_idr = False

    def _encoded_video(self, packet: Any, seconds: float) -> None:
        if packet.pts is None:
            return
        if packet.is_keyframe:
            start = packet.pts / 90000
            self._start_segment(start, self._x264.width, self._x264.height)
        self._mux_video(bytes(packet), int(packet.pts), packet.is_keyframe)

    def _h264_encoder(self, width: int, height: int) -> Any:
        encoder = self._x264
        if encoder is not None and (encoder.width, encoder.height) == (width, height):
            return encoder
        if encoder is not None:
            self._force_idr = True  # a new size: a new encoder, and a new segment
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = width, height
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = TS
        encoder.framerate = fractions.Fraction(30, 1)
        encoder.gop_size = 100_000  # keyframes only where a segment starts
        encoder.max_b_frames = 0
        encoder.options = {
            "preset": "veryfast",
            "tune": "zerolatency",
            "forced-idr": "1",
            "x264-params": "scenecut=0:repeat-headers=1",
        }
        encoder.bit_rate = 0
        encoder.open()
        self._x264 = encoder
        self._force_idr = True
        return encoder

    # --- audio ----------------------------------------------------------------------------

    def _aac_encoder(self) -> Any:
        if self._aac is None:
            channels = 2 if (self._audio_codec and (self._audio_codec.channels or 2) >= 2) else 1
            encoder = av.CodecContext.create("aac", "w")
            encoder.sample_rate = AUDIO_RATE
            encoder.layout = "stereo" if channels == 2 else "mono"
            encoder.format = "fltp"
            encoder.bit_rate = AAC_BITRATE
            encoder.time_base = fractions.Fraction(1, AUDIO_RATE)
            encoder.open()
            self._aac = encoder
            decoder = av.CodecContext.create("opus", "r")
            decoder.extradata = _opus_head(channels)
            self._opus = decoder
        return self._aac

    def _audio(self, item: _Item) -> None:
        if self._video_codec is None:  # a show without video: segments start on audio
            seconds = self._keyed(item)
            if item.cut:
                self._start_segment(seconds, None, None)
            self._last_key = seconds
        segment = self._segment
        if segment is None or segment.audio is None:
            self._audio_next = None  # audio resumes with the next segment
            return
        encoder = self._aac_encoder()
        try:
            frames = self._opus.decode(av.Packet(item.data))
        except av.FFmpegError:
            return
        pts = item.pts
        for frame in frames:
            gap = 0 if self._audio_next is None else pts - self._audio_next
            if self._audio_next is None or gap > AUDIO_RATE or gap < -AUDIO_RATE // 20:
                # The start, or a pause: the AAC frames restart at this packet's time.
                self._fifo = av.AudioFifo()
                self._aac_pts = pts
            elif gap > 0:  # lost packets: silence keeps audio in step with the picture
                self._fifo.write(self._silence(gap, frame))
            frame.pts = None
            self._fifo.write(frame)
            self._audio_next = pts + frame.samples
            pts += frame.samples
        while (chunk := self._fifo.read(encoder.frame_size)) is not None:
            chunk.pts = self._aac_pts
            chunk.time_base = fractions.Fraction(1, AUDIO_RATE)
            self._aac_pts += chunk.samples
            for packet in encoder.encode(chunk):
                self._mux_audio(packet)

    @staticmethod
    def _silence(samples: int, like: Any) -> Any:
        silence = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=samples)
        for plane in silence.planes:
            plane.update(bytes(plane.buffer_size))
        silence.sample_rate = like.sample_rate
        return silence

    def _mux_audio(self, packet: Any) -> None:
        segment = self._segment
        if segment is None or segment.audio is None or packet.pts is None:
            return
        offset = TIMESTAMP_BASE * AUDIO_RATE // 90000
        packet.stream = segment.audio
        packet.time_base = fractions.Fraction(1, AUDIO_RATE)
        packet.pts += offset
        packet.dts = packet.pts if packet.dts is None else packet.dts + offset
        segment.container.mux(packet)

    def _flush_encoders(self) -> None:
        if self._aac is not None and self._fifo is not None:
            for packet in self._aac.encode(None):
                self._mux_audio(packet)
