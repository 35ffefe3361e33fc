"""The baseline for bench/relay_viewers.py: aiortc's stock way to fan one WebRTC stream out,
on a bare aiohttp server with the same WHIP and WHEP endpoints (and no auth, database or
recording). The host's track is an ordinary aiortc remote track, so its frames are
decoded; `aiortc.contrib.media.MediaRelay` hands the decoded frames to every viewer's
track, and every viewer's sender encodes them again for itself.

    python bench/baseline_mediarelay.py PORT

Endpoints: POST /whip/{show} and POST /whep/{show} (SDP offer in, 201 with the SDP answer
and a Location), DELETE on that Location, GET /readyz, and GET /stats/{show} (JSON: frames
decoded so far, viewers, the codecs negotiated) so the benchmark can tell when media flows.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


@dataclass
class Show:
    relay: MediaRelay = field(default_factory=MediaRelay)
    source: MediaStreamTrack | None = None
    publisher_codec: str | None = None
    viewer_codecs: set[str] = field(default_factory=set)
    frames_decoded: int = 0
    drain: asyncio.Task[None] | None = None


SESSIONS: dict[str, tuple[str, RTCPeerConnection]] = {}  # id -> (whip or whep, its pc)
SHOWS: dict[str, Show] = {}


def _new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN on loopback


async def _drain(show: Show, track: MediaStreamTrack) -> None:
    """Keep the relay reading (and so the host's frames decoded) with no viewer too, the
    way a stock server would with a recorder or a preview attached."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
            show.frames_decoded += 1


def _answer(pc: RTCPeerConnection, base: str, show_id: str) -> web.Response:
    session_id = secrets.token_urlsafe(12)
    SESSIONS[session_id] = (base, pc)
    return web.Response(
        status=201,
        text=pc.localDescription.sdp,
        content_type="application/sdp",
        headers={"Location": f"/{base}/{show_id}/{session_id}"},
    )


def _codec_names(pc: RTCPeerConnection) -> set[str]:
    return {
        codec.name
        for transceiver in pc.getTransceivers()
        for codec in transceiver._codecs[:1]  # the codec the sender uses
    }


async def publish(request: web.Request) -> web.Response:
    show_id = request.match_info["show_id"]
    show = SHOWS.setdefault(show_id, Show())
    pc = _new_pc()

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind != "video":
            return
        show.source = track
        show.drain = asyncio.ensure_future(_drain(show, show.relay.subscribe(track)))

    await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    show.publisher_codec = ",".join(sorted(_codec_names(pc)))
    return _answer(pc, "whip", show_id)


async def watch(request: web.Request) -> web.Response:
    show_id = request.match_info["show_id"]
    show = SHOWS.get(show_id)
    if show is None or show.source is None:
        return web.Response(status=503, headers={"Retry-After": "1"})
    pc = _new_pc()
    await pc.setRemoteDescription(RTCSessionDescription(await request.text(), "offer"))
    pc.addTrack(show.relay.subscribe(show.source))
    await pc.setLocalDescription(await pc.createAnswer())
    show.viewer_codecs |= _codec_names(pc)

    @pc.on("connectionstatechange")
    async def changed() -> None:
        if pc.connectionState in ("failed", "closed"):
            await pc.close()

    return _answer(pc, "whep", show_id)


async def hang_up(request: web.Request) -> web.Response:
    session = SESSIONS.pop(request.match_info["session_id"], None)
    if session is None:
        return web.Response(status=404)
    await session[1].close()
    return web.Response(status=200)


async def stats(request: web.Request) -> web.Response:
    show = SHOWS.get(request.match_info["show_id"])
    if show is None:
        return web.json_response({"frames_decoded": 0, "viewers": 0})
    report: dict[str, Any] = {
        "frames_decoded": show.frames_decoded,
        "viewers": sum(
            1
            for role, pc in SESSIONS.values()
            if role == "whep" and pc.connectionState == "connected"
        ),
        "publisher_codec": show.publisher_codec,
        "viewer_codecs": sorted(show.viewer_codecs),
    }
    return web.json_response(report)


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def close_all(app: web.Application) -> None:
    for _, pc in list(SESSIONS.values()):
        await pc.close()
    SESSIONS.clear()


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/whip/{show_id}", publish)
    app.router.add_post("/whep/{show_id}", watch)
    app.router.add_delete("/whip/{show_id}/{session_id}", hang_up)
    app.router.add_delete("/whep/{show_id}/{session_id}", hang_up)
    app.router.add_get("/stats/{show_id}", stats)
    app.router.add_get("/readyz", ready)
    app.on_shutdown.append(close_all)
    return app


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=int(sys.argv[1]), print=None)
