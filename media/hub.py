"""WebRTC sessions for WHIP (the host publishing) and WHEP (viewers watching), one
`Broadcast` per show between them. Offers are checked here, before aiortc sees them, so a
bad one is answered with the reason and leaves nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc import codecs as aiortc_codecs
from aiortc import sdp as aiortc_sdp
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtptransceiver import RTCRtpTransceiver

from media.fastsend import use_lean_sender
from media.hls import PLAYLIST, SEGMENT_SECONDS, HlsWriter, finish_playlist
from media.recorder import SUFFIX, Recorder, Recording
from media.relay import (
    Broadcast,
    Health,
    RelayTrack,
    forward_keyframe_requests,
    request_keyframe,
    send_prepacked,
    tap_receiver,
)

log = logging.getLogger(__name__)

MAX_SDP_BYTES = 64 * 1024
CONNECTING_GRACE = 5.0  # seconds a new publisher has to connect before another may replace it
RELAYED = {"video": ("VP8", "H264"), "audio": ("opus",)}


def _allow_every_h264_profile() -> None:
    """aiortc answers H.264 only in the Constrained Baseline profile its own encoder makes.
    The relay never decodes, so any profile the host sends (Main, High from OBS or a phone)
    can go through: teach aiortc's negotiation those profiles too."""
    video = aiortc_codecs.CODECS["video"]
    known = {c.parameters.get("profile-level-id") for c in video if c.name == "H264"}
    used = {c.payloadType for c in video if c.payloadType is not None}
    payload_type = max(used) + 1
    for profile_level_id in ("4d001f", "64001f", "640c1f"):
        if profile_level_id in known:
            continue
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/H264",
                clockRate=90000,
                payloadType=payload_type,
                rtcpFeedback=list(video[0].rtcpFeedback),
                parameters={
                    "level-asymmetry-allowed": "1",
                    "packetization-mode": "1",
                    "profile-level-id": profile_level_id,
                },
            )
        )
        video.append(
            RTCRtpCodecParameters(
                mimeType="video/rtx",
                clockRate=90000,
                payloadType=payload_type + 1,
                parameters={"apt": payload_type},
            )
        )
        payload_type += 2


_allow_every_h264_profile()


class MediaError(Exception):
    """An offer or request the media layer refuses: an HTTP status and the reason."""

    def __init__(self, status: int, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


class StreamStatus(StrEnum):
    IDLE = "idle"  # nothing published yet
    PUBLISHING = "publishing"  # the host's media is arriving
    HOST_RECONNECTING = "host_reconnecting"  # the host's media stopped without a goodbye
    STOPPED = "stopped"  # the host ended the broadcast (WHIP DELETE); the show may go on


class Role(StrEnum):
    PUBLISHER = "publisher"
    VIEWER = "viewer"


@dataclass(slots=True)
class Session:
    id: str
    show_id: str
    role: Role
    pc: RTCPeerConnection
    created: float = field(default_factory=time.monotonic)
    connected: bool = False
    tracks: list[RelayTrack] = field(default_factory=list)
    last_heard: float = field(default_factory=time.monotonic)  # RTCP or media from the peer


@dataclass(frozen=True, slots=True)
class StreamReport:
    status: StreamStatus
    health: Health
    viewers: int
    video_codec: str | None
    audio_codec: str | None
    publishing_since: datetime | None
    keyframe_requests: int
    recording_bytes: int | None


def _kind_sections(description: aiortc_sdp.SessionDescription) -> list[aiortc_sdp.MediaDescription]:
    return [m for m in description.media if m.kind in ("audio", "video")]


def _relayable(codec: RTCRtpCodecParameters) -> bool:
    if codec.name == "H264":
        return str(codec.parameters.get("packetization-mode", "0")) == "1"
    return codec.name in RELAYED["video"] + RELAYED["audio"]


def _same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    return a.mimeType.lower() == b.mimeType.lower() and a.clockRate == b.clockRate


def _describe_codecs(section: aiortc_sdp.MediaDescription) -> str:
    names = sorted({c.name for c in section.rtp.codecs if c.name not in ("rtx", "red", "ulpfec")})
    return ", ".join(names) or "none"


def parse_offer(sdp: str) -> aiortc_sdp.SessionDescription:
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise MediaError(413, f"the SDP offer is over {MAX_SDP_BYTES} bytes")
    if not sdp.lstrip().startswith("v=0"):
        raise MediaError(422, "malformed SDP offer: it must start with v=0")
    try:
        description = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the broken line causes
        raise MediaError(422, f"malformed SDP offer: {exc or type(exc).__name__}") from None
    sections = _kind_sections(description)
    if not sections:
        raise MediaError(422, "the offer has no audio or video section")
    for section in sections:
        if section.dtls is None or section.ice is None or not section.ice.usernameFragment:
            raise MediaError(
                422, f"malformed SDP offer: the {section.kind} section lacks ICE or DTLS parameters"
            )
    return description


def _choose(
    section: aiortc_sdp.MediaDescription, established: RTCRtpCodecParameters | None
) -> RTCRtpCodecParameters:
    """The first codec the offer lists that the relay can carry (the one this show is already
    relayed in, if it has one)."""
    for codec in section.rtp.codecs:
        if not _relayable(codec) or codec.name not in RELAYED[section.kind]:
            continue
        if established is None or _same_codec(codec, established):
            return codec
    offered = _describe_codecs(section)
    if established is not None:
        raise MediaError(
            422,
            f"this show's {section.kind} is relayed as {established.name}; the offer has {offered}",
        )
    wanted = " or ".join(
        "H.264 (packetization-mode=1)" if n == "H264" else n for n in RELAYED[section.kind]
    )
    raise MediaError(
        422, f"no {section.kind} codec the relay carries: the offer has {offered}; send {wanted}"
    )


def _keep_only(transceiver: RTCRtpTransceiver, chosen: RTCRtpCodecParameters) -> None:
    """Narrow what aiortc negotiated on this transceiver to the chosen codec (and its RTX),
    so the answer names exactly what will be relayed."""
    negotiated = transceiver._codecs
    main = next((c for c in negotiated if c.payloadType == chosen.payloadType), None)
    if main is None:
        main = next((c for c in negotiated if _same_codec(c, chosen)), None)
    if main is None:
        raise MediaError(422, f"could not negotiate {chosen.name} for {transceiver.kind}")
    rtx = [c for c in negotiated if c.name == "rtx" and c.parameters.get("apt") == main.payloadType]
    transceiver._codecs = [main, *rtx]


def _note_rtcp(sender: Any, session: Session) -> None:
    """Each RTCP packet from a viewer (receiver reports, about one a second) shows it is
    still there."""
    handle = sender._handle_rtcp_packet

    async def heard(packet: Any) -> None:
        session.last_heard = time.monotonic()
        await handle(packet)

    sender._handle_rtcp_packet = heard


class MediaHub:
    def __init__(
        self,
        *,
        recordings_dir: Path,
        ice_servers: tuple[str, ...] = (),
        on_status: Callable[[str, StreamStatus], None] | None = None,
        connect_timeout: float = 30.0,
        stall_after: float = 2.0,
        silence_timeout: float = 10.0,
        hls_dir: Path | None = None,
        hls_segment_seconds: float = SEGMENT_SECONDS,
    ) -> None:
        self.recordings_dir = recordings_dir
        # Live HLS (and the replay it becomes) per show under hls_dir/<show_id>/; None: off.
        self.hls_dir = hls_dir
        self.hls_segment_seconds = hls_segment_seconds
        self.hls: dict[str, HlsWriter] = {}
        self.ice_servers = ice_servers
        self.on_status = on_status
        self.connect_timeout = connect_timeout
        self.stall_after = stall_after
        # A connected peer heard from neither RTCP nor media for this long has vanished (ICE
        # consent alone would take about 30 s to notice).
        self.silence_timeout = silence_timeout
        self.broadcasts: dict[str, Broadcast] = {}
        self.statuses: dict[str, StreamStatus] = {}
        self.publishers: dict[str, Session] = {}  # show id -> the current publisher
        self.sessions: dict[str, Session] = {}
        self.recorders: dict[str, Recorder] = {}
        self.publishing_since: dict[str, datetime] = {}
        self._closing: set[asyncio.Task[None]] = set()
        # Publishing and ending a show take turns: two WHIP offers at once (a double click,
        # a retry) must not both become the publisher, nor a publish outlive the show's end.
        self._turn = asyncio.Lock()

    # --- WHIP ------------------------------------------------------------------------------

    async def publish(self, show_id: str, sdp: str) -> tuple[Session, str]:
        async with self._turn:
            return await self._publish(show_id, sdp)

    async def _publish(self, show_id: str, sdp: str) -> tuple[Session, str]:
        offer = parse_offer(sdp)
        broadcast = self.broadcasts.get(show_id)
        chosen: dict[str, RTCRtpCodecParameters] = {}
        for section in _kind_sections(offer):
            if section.direction not in ("sendonly", "sendrecv"):
                raise MediaError(
                    422, f"the {section.kind} section is {section.direction}; a publisher sends"
                )
            if section.kind in chosen:
                raise MediaError(422, f"the offer has more than one {section.kind} section")
            established = None
            if broadcast is not None:
                established = (
                    broadcast.video_codec if section.kind == "video" else broadcast.audio_codec
                )
                if established is None:
                    raise MediaError(
                        422,
                        f"this show was first published without {section.kind}; publish the "
                        "same kinds of media again",
                    )
            chosen[section.kind] = _choose(section, established)
        current = self.publishers.get(show_id)
        if current is not None:
            if self.statuses.get(show_id) is StreamStatus.PUBLISHING:
                raise MediaError(409, "this show already has a publisher")
            if not current.connected and time.monotonic() - current.created < CONNECTING_GRACE:
                raise MediaError(409, "another publisher is connecting to this show")
            # The host is back after a drop (or its last attempt never got going): the new
            # connection replaces the stale one.
            await self._close(current)

        pc = RTCPeerConnection(self._configuration())
        session = Session(secrets.token_urlsafe(16), show_id, Role.PUBLISHER, pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            if broadcast is None:
                broadcast = self._new_broadcast(show_id, chosen)
            video_receiver = None
            for transceiver in pc.getTransceivers():
                _keep_only(transceiver, chosen[transceiver.kind])
                tap_receiver(transceiver.receiver, broadcast.frame)
                if transceiver.kind == "video":
                    video_receiver = transceiver.receiver
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except MediaError:
            await pc.close()
            raise
        except Exception as exc:
            await pc.close()
            raise MediaError(422, f"the offer could not be answered: {exc}") from None
        if video_receiver is not None:
            receiver = video_receiver
            broadcast.keyframe_source = lambda: request_keyframe(receiver)
        self.sessions[session.id] = session
        self.publishers[show_id] = session
        self._watch_state(session)
        return session, pc.localDescription.sdp

    def _new_broadcast(self, show_id: str, chosen: dict[str, RTCRtpCodecParameters]) -> Broadcast:
        broadcast = Broadcast(show_id, chosen.get("video"), chosen.get("audio"))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        recorder = Recorder(
            self.recordings_dir / show_id / f"live-{stamp}{SUFFIX}",
            broadcast.video_codec,
            broadcast.audio_codec,
        )
        broadcast.sinks.append(recorder.write)
        self.recorders[show_id] = recorder
        if self.hls_dir is not None:
            hls = HlsWriter(
                self.hls_dir / show_id,
                broadcast.video_codec,
                broadcast.audio_codec,
                timeline_started=broadcast.started,
                on_keyframe_wanted=broadcast.want_keyframe,
                segment_seconds=self.hls_segment_seconds,
            )
            broadcast.sinks.append(hls.write)
            self.hls[show_id] = hls
        self.broadcasts[show_id] = broadcast
        self._set_status(show_id, StreamStatus.IDLE)
        return broadcast

    # --- WHEP ------------------------------------------------------------------------------

    async def watch(self, show_id: str, sdp: str) -> tuple[Session, str]:
        offer = parse_offer(sdp)
        broadcast = self.broadcasts.get(show_id)
        if broadcast is None:
            raise MediaError(
                503, "the host has not started broadcasting yet; try again shortly", retry_after=2
            )
        chosen: dict[str, RTCRtpCodecParameters] = {}
        for section in _kind_sections(offer):
            if section.direction not in ("recvonly", "sendrecv"):
                raise MediaError(
                    422, f"the {section.kind} section is {section.direction}; a viewer receives"
                )
            established = (
                broadcast.video_codec if section.kind == "video" else broadcast.audio_codec
            )
            if established is not None and section.kind not in chosen:
                chosen[section.kind] = _choose(section, established)
        if not chosen:
            raise MediaError(422, "the offer asks for no media this show sends")

        pc = RTCPeerConnection(self._configuration())
        session = Session(secrets.token_urlsafe(16), show_id, Role.VIEWER, pc)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind not in chosen or transceiver.sender.track is not None:
                    continue
                track = broadcast.add_viewer(transceiver.kind)
                session.tracks.append(track)
                pc.addTrack(track)
                _keep_only(transceiver, chosen[transceiver.kind])
                forward_keyframe_requests(transceiver.sender, broadcast.want_keyframe)
                send_prepacked(transceiver.sender)
                use_lean_sender(transceiver.sender)
                _note_rtcp(transceiver.sender, session)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except MediaError:
            self._drop_tracks(session)
            await pc.close()
            raise
        except Exception as exc:
            self._drop_tracks(session)
            await pc.close()
            raise MediaError(422, f"the offer could not be answered: {exc}") from None
        self.sessions[session.id] = session
        self._watch_state(session)
        return session, pc.localDescription.sdp

    # --- sessions ----------------------------------------------------------------------------

    def _configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=[RTCIceServer(url) for url in self.ice_servers])

    def _watch_state(self, session: Session) -> None:
        @session.pc.on("connectionstatechange")
        def changed() -> None:
            state = session.pc.connectionState
            if state == "connected":
                session.connected = True
                session.last_heard = time.monotonic()
            elif state in ("failed", "closed") and session.id in self.sessions:
                # The peer vanished (ICE consent or DTLS failed): clean up, and if it was the
                # host, viewers stay and wait for the host to come back.
                if session.role is Role.PUBLISHER and self.publishers.get(session.show_id) is (
                    session
                ):
                    self._set_status(session.show_id, StreamStatus.HOST_RECONNECTING)
                self._close_soon(session)

    def _close_soon(self, session: Session) -> None:
        task = asyncio.create_task(self._close(session), name=f"media-close-{session.id}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def session(self, session_id: str, show_id: str, role: Role) -> Session | None:
        found = self.sessions.get(session_id)
        if found is None or found.show_id != show_id or found.role is not role:
            return None
        return found

    def relaying_to(self, show_id: str, session_id: str, *, within: float = 5.0) -> bool:
        """Whether this process is sending the show's live media to that WHEP session now:
        the host's media is flowing and the viewer's RTCP was heard within `within` seconds
        (what watch time is credited on)."""
        session = self.session(session_id, show_id, Role.VIEWER)
        return (
            session is not None
            and session.connected
            and time.monotonic() - session.last_heard < within
            and self.statuses.get(show_id) is StreamStatus.PUBLISHING
        )

    async def hang_up(self, session: Session) -> None:
        """A DELETE: the peer says goodbye."""
        if session.role is Role.PUBLISHER and self.publishers.get(session.show_id) is session:
            self._set_status(session.show_id, StreamStatus.STOPPED)
        await self._close(session)

    async def _close(self, session: Session) -> None:
        if self.sessions.pop(session.id, None) is None:
            return
        if session.role is Role.PUBLISHER:
            if self.publishers.get(session.show_id) is session:
                del self.publishers[session.show_id]
                broadcast = self.broadcasts.get(session.show_id)
                if broadcast is not None:
                    broadcast.keyframe_source = None
        self._drop_tracks(session)
        await session.pc.close()

    def _drop_tracks(self, session: Session) -> None:
        broadcast = self.broadcasts.get(session.show_id)
        for track in session.tracks:
            if broadcast is not None:
                broadcast.remove_track(track)
            else:
                track.stop()
        session.tracks.clear()

    def _set_status(self, show_id: str, status: StreamStatus) -> None:
        if self.statuses.get(show_id) is status:
            return
        self.statuses[show_id] = status
        if status is StreamStatus.PUBLISHING:
            self.publishing_since.setdefault(show_id, datetime.now(UTC))
        if self.on_status is not None:
            self.on_status(show_id, status)

    # --- the show ends -----------------------------------------------------------------------

    async def end(self, show_id: str, *, final: bool = True) -> Recording | None:
        """The show is over: every peer is closed, the live HLS playlist finished as the
        replay, and the recording finished. Not `final` (the server shutting down while the
        show is live): the playlist stays open for the show to carry on after a restart."""
        async with self._turn:
            return await self._end(show_id, final)

    async def _end(self, show_id: str, final: bool = True) -> Recording | None:
        for session in [s for s in self.sessions.values() if s.show_id == show_id]:
            await self._close(session)
        broadcast = self.broadcasts.pop(show_id, None)
        if broadcast is not None:
            broadcast.close()
        self.statuses.pop(show_id, None)
        self.publishing_since.pop(show_id, None)
        hls = self.hls.pop(show_id, None)
        if hls is not None:
            began = time.monotonic()
            replay = await asyncio.to_thread(hls.close, finalize=final)
            if replay is not None and final:
                log.info(
                    "replay of %s ready %.3f s after the show ended (%d segments, %.1f s)",
                    show_id,
                    time.monotonic() - began,
                    replay.segments,
                    replay.duration_s,
                )
        elif final and self.hls_dir is not None:
            await asyncio.to_thread(finish_playlist, self.hls_dir / show_id / PLAYLIST)
        recorder = self.recorders.pop(show_id, None)
        if recorder is None:
            return None
        return await asyncio.to_thread(recorder.close)

    # --- reading -----------------------------------------------------------------------------

    def report(self, show_id: str) -> StreamReport:
        broadcast = self.broadcasts.get(show_id)
        recorder = self.recorders.get(show_id)
        recording_bytes = None
        if recorder is not None:
            with contextlib.suppress(OSError):
                recording_bytes = recorder.path.stat().st_size
        return StreamReport(
            status=self.statuses.get(show_id, StreamStatus.IDLE),
            health=broadcast.health() if broadcast is not None else Health(),
            viewers=sum(
                1 for s in self.sessions.values() if s.show_id == show_id and s.role is Role.VIEWER
            ),
            video_codec=broadcast.video_codec.name if broadcast and broadcast.video_codec else None,
            audio_codec=broadcast.audio_codec.name if broadcast and broadcast.audio_codec else None,
            publishing_since=self.publishing_since.get(show_id),
            keyframe_requests=broadcast.keyframe_requests if broadcast else 0,
            recording_bytes=recording_bytes,
        )

    # --- housekeeping --------------------------------------------------------------------------

    def check(self, now: float | None = None) -> None:
        """Notice a host whose media stopped or resumed, and peers that never connected."""
        now = time.monotonic() if now is None else now
        for show_id, broadcast in self.broadcasts.items():
            publisher = self.publishers.get(show_id)
            flowing = now - broadcast.last_media < self.stall_after
            if publisher is not None and flowing:
                self._set_status(show_id, StreamStatus.PUBLISHING)
            elif self.statuses.get(show_id) is StreamStatus.PUBLISHING:
                self._set_status(show_id, StreamStatus.HOST_RECONNECTING)
        for session in list(self.sessions.values()):
            if session.role is Role.PUBLISHER:
                feed = self.broadcasts.get(session.show_id)
                if feed is not None and feed.last_media:
                    session.last_heard = max(session.last_heard, feed.last_media)
            never_connected = not session.connected and now - session.created > self.connect_timeout
            silent = session.connected and now - session.last_heard > self.silence_timeout
            if never_connected or silent:
                if session.role is Role.PUBLISHER:
                    self._set_status(session.show_id, StreamStatus.HOST_RECONNECTING)
                self._close_soon(session)

    async def run(self, interval: float = 0.5) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.check()
            except Exception:
                log.exception("media housekeeping failed")

    async def aclose(self) -> list[tuple[str, Recording]]:
        """Shut down: close every peer, finish every recording (returned by show id)."""
        finished: list[tuple[str, Recording]] = []
        for show_id in list(self.broadcasts):
            recording = await self.end(show_id, final=False)
            if recording is not None:
                finished.append((show_id, recording))
        for session in list(self.sessions.values()):
            await self._close(session)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        return finished

    def counts(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "publishers": len(self.publishers),
            "broadcasts": len(self.broadcasts),
            "tracks": sum(len(b.tracks) for b in self.broadcasts.values()),
        }
