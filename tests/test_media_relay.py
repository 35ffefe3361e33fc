"""The live media path end to end with real peers: ffmpeg (H.264) and aiortc (VP8)
publish over WHIP, aiortc viewers watch over WHEP and decode, and the relay in between
never decodes. Recording, the host dropping and coming back, and cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import av
import pytest

from server.app import create_app
from server.config import Settings
from server.keys import MEDIA, OPENAPI, SETTINGS
from server.store.db import Database
from server.store.migrate import upgrade
from tests.conftest import Api, create_show, host_token, viewer_token
from tests.media_peers import (
    BARCODE_BITS,
    BarcodePublisher,
    ffmpeg_publisher,
    read_barcode,
    wait_for,
    watch,
    whep_offer,
)
from tests.test_live import LiveClient


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Media does not depend on the database backend; one (SQLite) keeps the suite quick.
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('media') / 'showroom.db'}"
    upgrade(url)
    yield url


@pytest.fixture
async def server(
    db: Database, settings: Settings, aiohttp_client: Any
) -> AsyncIterator[tuple[str, Api, Any]]:
    # A peer has 20 s to connect: ICE and DTLS for several peers in this one process, on a
    # busy 2-core machine, can take several seconds (the never-connects test shortens it).
    app = create_app(replace(settings, media_connect_timeout=20.0))
    client = await aiohttp_client(app)
    yield str(client.make_url("")).rstrip("/"), Api(client, app[OPENAPI]), app


async def live_show(api: Api, db: Database, admin: str) -> tuple[str, str]:
    show = await create_show(api, admin)
    answer = await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=admin)
    assert answer.status == 200, answer.text
    return show["id"], await host_token(db, show["id"])


async def stream(api: Api, show_id: str) -> dict[str, Any]:
    answer = await api.call("GET", f"/api/v1/shows/{show_id}/stream")
    assert answer.status == 200, answer.text
    return dict(answer.body)


async def until_status(api: Api, show_id: str, status: str, ffmpeg: Any = None) -> None:
    deadline = time.monotonic() + 15
    while (await stream(api, show_id))["status"] != status:
        if ffmpeg is not None and ffmpeg.returncode is not None:
            raise AssertionError("ffmpeg exited: " + (await ffmpeg.stderr.read()).decode())
        if time.monotonic() > deadline:
            raise AssertionError(f"status never became {status}: {await stream(api, show_id)}")
        await asyncio.sleep(0.1)


async def test_ffmpeg_publishes_h264_a_viewer_decodes_it_and_the_show_is_recorded(
    server: Any, db: Database, admin: str
) -> None:
    base, api, app = server
    show_id, token = await live_show(api, db, admin)
    async with (
        ffmpeg_publisher(f"{base}/whip/{show_id}", token, profile="high") as ffmpeg,
        aiohttp.ClientSession() as http,
    ):
        await until_status(api, show_id, "publishing", ffmpeg)
        viewer = await watch(http, base, show_id)
        await wait_for(lambda: len(viewer.video_frames) >= 45, 15, "45 decoded frames")
        assert viewer.audio_frames > 0
        frame = viewer.video_frames[-1]
        assert (frame.width, frame.height) == (320, 240)
        health = await stream(api, show_id)
        assert health["video_codec"] == "H264" and health["audio_codec"] == "opus"
        assert health["viewers"] == 1 and (health["width"], health["height"]) == (320, 240)
        assert 20 <= health["frame_rate"] <= 40, health
        assert 100 <= health["bitrate_kbps"] <= 2000, health
        metrics = (await api.call("GET", "/metrics")).text
        assert f'showroom_stream_viewers{{show="{show_id}"}} 1.0' in metrics
        assert f'showroom_stream_publishing{{show="{show_id}"}} 1.0' in metrics
        await asyncio.sleep(1)
        await viewer.close(http)
        ended = await api.call("POST", f"/api/v1/shows/{show_id}/end", auth=admin)
        assert ended.status == 200
    assert app[MEDIA].counts()["sessions"] == 0

    recordings = await api.call("GET", f"/api/v1/shows/{show_id}/recordings", auth=token)
    assert recordings.status == 200
    [recording] = recordings.body["items"]
    assert recording["container"] == "matroska" and recording["video_codec"] == "h264"
    assert (recording["width"], recording["height"]) == (320, 240)
    assert 1500 <= recording["duration_ms"] <= 20000, recording
    with av.open(str(app[SETTINGS].data_dir / recording["path"])) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264" and len(container.streams.audio) == 1
        frames = sum(1 for _ in container.decode(video))
    assert frames >= 30


async def test_vp8_reaches_two_viewers_re_encoded_by_no_one_with_sub_second_latency(
    server: Any, db: Database, admin: str
) -> None:
    base, api, app = server
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        publisher = await BarcodePublisher.start(http, base, show_id, token)
        await until_status(api, show_id, "publishing")
        viewers = [await watch(http, base, show_id) for _ in range(2)]
        for viewer in viewers:
            await wait_for(lambda v=viewer: len(v.video_frames) >= 60, 20, "60 decoded frames")
        assert (await stream(api, show_id))["video_codec"] == "VP8"

        # Nothing on the server decoded or encoded: the host's receivers hand frames to the
        # relay (their decoder queue is the tap), and every viewer's sender has no encoder, only
        # a packer of frames the relay packetized once.
        hub = app[MEDIA]
        for session in hub.sessions.values():
            for transceiver in session.pc.getTransceivers():
                if session.role == "publisher":
                    queue = transceiver.receiver._RTCRtpReceiver__decoder_queue
                    assert type(queue).__name__ == "_EncodedTap"
                else:
                    encoder = transceiver.sender._RTCRtpSender__encoder
                    assert type(encoder).__name__ == "_Prepacked"

        # Glass to glass: each frame carries the time it was drawn; the viewer reads it back
        # after decoding.
        latencies = [
            (wall * 1000 - read_barcode(frame)) % (1 << BARCODE_BITS)
            for viewer in viewers
            for frame, wall in list(zip(viewer.video_frames, viewer.wall_times, strict=True))[10:]
        ]
        assert all(0 <= ms < 5000 for ms in latencies), latencies[:10]  # barcodes read right
        median = statistics.median(latencies)
        p95 = statistics.quantiles(latencies, n=20)[-1]
        print(f"glass-to-glass on loopback (VP8 320x240): median {median:.0f} ms, p95 {p95:.0f} ms")
        assert p95 < 1000, f"median {median:.0f} ms, p95 {p95:.0f} ms"
        for viewer in viewers:
            await viewer.close(http)
        await publisher.close(http)
        assert (await stream(api, show_id))["status"] == "stopped"


async def test_host_drops_and_comes_back_while_viewers_stay(
    server: Any, db: Database, admin: str
) -> None:
    base, api, _ = server
    show_id, token = await live_show(api, db, admin)
    room = LiveClient()
    await room.connect(base + "/", token=viewer_token("watcher"))
    assert (await room.call("join", {"show_id": show_id}))["ok"]
    async with aiohttp.ClientSession() as http:
        async with ffmpeg_publisher(f"{base}/whip/{show_id}", token) as first:
            await until_status(api, show_id, "publishing", first)
            viewer = await watch(http, base, show_id)
            await wait_for(lambda: len(viewer.video_frames) >= 20, 15, "frames before the drop")
            first.send_signal(signal.SIGKILL)  # the host's network is gone: no DELETE
            await first.wait()
        await until_status(api, show_id, "host_reconnecting")
        assert viewer.pc.connectionState == "connected"
        show = await api.call("GET", f"/api/v1/shows/{show_id}", auth=token)
        assert show.body["stream_status"] == "host_reconnecting" and show.body["state"] == "live"
        late = LiveClient()
        await late.connect(base + "/", token=viewer_token("late"))
        joined = await late.call("join", {"show_id": show_id})
        assert joined["snapshot"]["stream"] == "host_reconnecting"
        await late.sio.disconnect()
        before = len(viewer.frame_times)

        async with ffmpeg_publisher(f"{base}/whip/{show_id}", token) as second:
            await until_status(api, show_id, "publishing", second)
            await wait_for(
                lambda: len(viewer.frame_times) >= before + 30, 15, "frames after the return"
            )
            # While the host is healthy, nobody else may publish to the show.
            offer = await whep_offer(("video",), direction="sendonly")
            answer = await api.call(
                "POST",
                f"/whip/{show_id}",
                auth=token,
                data=offer.localDescription.sdp,
                headers={"Content-Type": "application/sdp"},
            )
            await offer.close()
            assert answer.status == 409, answer.text
            assert "already has a publisher" in answer.body["detail"]
        assert viewer.pc.connectionState == "connected"
        await viewer.close(http)
    await asyncio.sleep(0.5)
    statuses = [e["status"] for e in room.events("stream.status")]
    assert statuses[: statuses.index("host_reconnecting") + 2][-2:] == [
        "host_reconnecting",
        "publishing",
    ], statuses
    await room.sio.disconnect()


async def test_a_joining_viewer_starts_at_a_keyframe_asked_of_the_host(
    server: Any, db: Database, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    base, api, _ = server
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        # aiortc's VP8 encoder makes a keyframe only every 3000 frames unless asked (ffmpeg's
        # whip muxer cannot be asked: it sends what its encoder made, so use a short -g).
        publisher = await BarcodePublisher.start(http, base, show_id, token, audio=False)
        await until_status(api, show_id, "publishing")
        await asyncio.sleep(1.5)
        asked = time.monotonic()
        viewer = await watch(http, base, show_id)
        await wait_for(lambda: bool(viewer.frame_times), 5, "a first frame")
        first = viewer.frame_times[0] - asked
        await wait_for(lambda: len(viewer.video_frames) >= 30, 10, "30 frames")
        assert (await stream(api, show_id))["keyframe_requests"] >= 1
        await viewer.close(http)
        await publisher.close(http)
    print(f"first picture {first * 1000:.0f} ms after the WHEP request")
    assert first < 2.0
    # A viewer that started mid-GOP would log decode failures until the next keyframe.
    assert not [r for r in caplog.records if "failed to decode" in r.getMessage()]


def _fds() -> list[str]:
    """What this process holds open, less the database's files (its pool opens a second
    SQLite connection when two requests overlap, and keeps it)."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if "showroom.db" not in target:
            targets.append(target.split(":[")[0])  # a socket, not which one
    return sorted(targets)


async def test_many_viewers_come_and_go_and_nothing_leaks(
    server: Any, db: Database, admin: str
) -> None:
    base, api, app = server
    hub = app[MEDIA]
    # This test is about viewer sessions; live HLS (tests/test_hls.py) would add a VP8 encode
    # and segment files opening and closing on their own schedule.
    hub.hls_dir = None
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        publisher = await BarcodePublisher.start(http, base, show_id, token, audio=False)
        await until_status(api, show_id, "publishing")
        # One viewer first, so lazily created state (codecs, thread pools) exists already.
        warm = await watch(http, base, show_id)
        await wait_for(lambda: len(warm.video_frames) >= 5, 10, "the first viewer's frames")
        await warm.close(http)
        await wait_for(lambda: hub.counts()["sessions"] == 1, 5, "the first viewer to go")
        await asyncio.sleep(0.5)
        before = (hub.counts(), len(asyncio.all_tasks()), _fds())

        for round_ in range(3):
            viewers = [await watch(http, base, show_id) for _ in range(5)]
            for viewer in viewers:
                await wait_for(lambda v=viewer: len(v.video_frames) >= 3, 15, "frames")
            assert (await stream(api, show_id))["viewers"] == 5
            for n, viewer in enumerate(viewers):
                # Most say goodbye; some just close (their DTLS close_notify ends the session).
                await viewer.close(http if (n + round_) % 3 else None)
        await wait_for(lambda: hub.counts()["sessions"] == 1, 10, "every viewer session to end")
        # A leak stays; a socket still closing goes within a few seconds.
        deadline = time.monotonic() + 5
        while (after := (hub.counts(), len(asyncio.all_tasks()), _fds())) != before:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert after == before, f"before {before}, after {after}"
        await publisher.close(http)


async def test_a_peer_that_never_connects_is_dropped(server: Any, db: Database, admin: str) -> None:
    base, api, app = server
    app[MEDIA].connect_timeout = 3.0
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        publisher = await BarcodePublisher.start(http, base, show_id, token, audio=False)
        await until_status(api, show_id, "publishing")
        offer = await whep_offer(("video",))
        answer = await api.call(
            "POST",
            f"/whep/{show_id}",
            data=offer.localDescription.sdp,
            headers={"Content-Type": "application/sdp"},
        )
        assert answer.status == 201, answer.text
        await offer.close()  # gone before ICE even started
        assert (await stream(api, show_id))["viewers"] == 1
        # connect_timeout is 3 s in this test.
        await wait_for(lambda: app[MEDIA].counts()["sessions"] == 1, 10, "the session to drop")
        assert (await stream(api, show_id))["viewers"] == 0
        await publisher.close(http)


ROOT = Path(__file__).resolve().parent.parent
VANISHING_VIEWER = """
import asyncio, sys
import aiohttp
from tests.media_peers import wait_for, watch

async def main():
    async with aiohttp.ClientSession() as http:
        viewer = await watch(http, sys.argv[1], sys.argv[2], kinds=("video",))
        await wait_for(lambda: len(viewer.video_frames) >= 5, 10, "frames")
        print("watching", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_viewer_that_vanishes_is_cleaned_up(server: Any, db: Database, admin: str) -> None:
    base, api, app = server
    hub = app[MEDIA]
    hub.silence_timeout = 3.0  # 10 s in production
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        publisher = await BarcodePublisher.start(http, base, show_id, token, audio=False)
        await until_status(api, show_id, "publishing")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            VANISHING_VIEWER,
            base,
            show_id,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.strip() == b"watching"
        assert (await stream(api, show_id))["viewers"] == 1
        process.kill()  # no DELETE, no DTLS close: the peer is simply gone
        await process.wait()
        vanished = time.monotonic()
        await wait_for(lambda: hub.counts()["sessions"] == 1, 15, "the vanished viewer to go")
        print(f"vanished viewer dropped after {time.monotonic() - vanished:.1f} s")
        assert (await stream(api, show_id))["viewers"] == 0
        assert hub.counts()["tracks"] == 0
        await publisher.close(http)


async def test_packets_a_viewer_loses_are_sent_again(
    server: Any, db: Database, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    base, api, app = server
    show_id, token = await live_show(api, db, admin)
    async with aiohttp.ClientSession() as http:
        publisher = await BarcodePublisher.start(http, base, show_id, token, audio=False)
        await until_status(api, show_id, "publishing")
        viewer = await watch(http, base, show_id, kinds=("video",))
        await wait_for(lambda: len(viewer.frame_times) >= 10, 10, "frames before the loss")
        # The viewer's network loses one media packet in 15 (not STUN, not RTCP).
        connection = viewer.pc.getTransceivers()[0].receiver.transport.transport._connection
        for protocol in connection._protocols:
            received = protocol.datagram_received
            count = [0]

            def lossy(data: bytes, addr: Any, received: Any = received, count: Any = count) -> None:
                # RTP (not STUN, DTLS or RTCP: RFC 7983 and RFC 5761 tell them apart).
                if 128 <= data[0] <= 191 and not 72 <= data[1] & 0x7F <= 76:
                    count[0] += 1
                    if count[0] % 15 == 0:
                        return
                received(data, addr)

            protocol.datagram_received = lossy
        before = len(viewer.frame_times)
        await asyncio.sleep(3)
        frames = len(viewer.frame_times) - before
        [session] = [s for s in app[MEDIA].sessions.values() if s.role == "viewer"]
        loop = session.pc.getTransceivers()[0].sender._retransmit.__self__
        assert loop.retransmitted > 0  # NACKed packets came again
        assert frames >= 60, frames  # about 90 at 30 fps: the picture kept going
        await viewer.close(http)
        await publisher.close(http)
