"""Video fan-out: one publisher sending 720p H.264 at about 2.5 Mb/s over WHIP, and N
viewers watching over WHEP from separate client processes. Measures Showroom's relay
(`showroom serve`: the host's encoded frames go to every viewer as they are) and, in the
same run, aiortc's stock fan-out (bench/baseline_mediarelay.py: the host's track is
decoded and `MediaRelay` hands the frames to viewers whose senders each encode them again).

    .venv/bin/python bench/relay_viewers.py [--viewers 30] [--seconds 20] [--baseline-viewers 2]

The video is made once per run: ffmpeg encodes `testsrc2` at 1280x720, 30 fps, 2.5 Mb/s,
2 s GOP, baseline profile, into Annex B. The publisher (an aiortc peer) sends those access
units as pre-encoded `av.Packet`s, paced by the wall clock and looped, each one carrying a
leading SEI NAL unit (user_data_unregistered) with its send time. Viewers are aiortc peers
that do not decode: `media.relay.tap_receiver` hands them each reassembled frame, whose SEI
gives the latency from the publisher's send to the viewer's receipt.

Per server, the server's CPU time (user + system, from /proc) is read over a window with the
publisher and no viewer (idle) and over a window with N viewers. Reported:

- `cpu_per_viewer_ms`: (CPU with N - CPU idle) per second of window / N, in ms: what one
  more viewer costs the server each second.
- `viewers_per_core`: full-rate viewers (frames received / 30 fps / window, so a viewer
  that got half the frames counts half) / the CPU increment in cores. The linear
  extrapolation of how many viewers one core holds; `gross` divides by all the CPU used.
- `loss_pct`: RTP packets missing on the viewers' media stream (before NACK recovery),
  over the window, of all viewers. Datagrams the kernel dropped for full socket buffers
  (UDP RcvbufErrors, machine-wide) are printed next to it: on loopback, that is where loss
  happens. Viewer sockets get 1 MB receive buffers so a briefly stalled client catches up.
- `added_latency_ms` (p50; p99 printed above it): publisher send (the SEI's time) to the
  arrival of the frame's last packet at the viewer, with N viewers; also with one viewer
  (the floor). aiortc's own jitter buffer hands a frame over only when the next frame's
  first packet arrives, one frame interval later: that figure is printed too. The baseline
  re-encodes, which drops the SEI: its latency is n/a.

The server runs on CPU 0; the publisher and the viewer processes on CPU 1 (on the 2-core
machine, 30 viewers take about 60% of it; at 40 it is 60-90% depending on the run, and past
about 50 the clients, not the server, lose packets). If CPU 1 is over 80% busy a warning
says so. Final line:

    RESULT viewers_per_core=... baseline_viewers_per_core=... ratio=... loss_pct=... added_latency_ms=...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import imageio_ffmpeg
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamTrack
from yarl import URL

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_fanout import (
    CLIENT_CPUS,
    ROOT,
    SERVER_CPUS,
    cpu_seconds,
    free_port,
    launch_showroom,
    pin,
    start_live_show,
    wait_ready,
)
from media.relay import tap_receiver

FPS = 30
CLOCK = 90000
SEI_UUID = b"SHOWROOM-BENCH-1"  # 16 bytes, none of them zero: never needs escaping
START_CODE = b"\x00\x00\x00\x01"
WIDTH, HEIGHT, BITRATE = 1280, 720, "2500k"
RECEIVE_BUFFER = 1 << 20  # bytes, for each viewer's UDP sockets


# --- the video: made once, read back as access units --------------------------------------


def make_video(path: Path, seconds: int = 20) -> None:
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        *("-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"),
        *("-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}", "-t", str(seconds)),
        *("-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast"),
        *("-tune", "zerolatency", "-pix_fmt", "yuv420p"),
        *("-b:v", BITRATE, "-maxrate", BITRATE, "-bufsize", BITRATE),
        *("-g", str(2 * FPS), "-bf", "0", "-f", "h264", str(path)),
    ]
    subprocess.run(command, check=True)


def _first_picture_offset(data: bytes) -> int:
    """Where the first coded slice (NAL types 1-5) of an access unit starts, start code
    included: the SEI goes there, after any SPS and PPS."""
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        if 1 <= data[i + 3] & 0x1F <= 5:
            return i - 1 if i > 0 and data[i - 1] == 0 else i
        i = data.find(b"\x00\x00\x01", i + 3)
    return 0


def read_access_units(path: Path) -> list[tuple[bytes, bytes]]:
    """Each access unit cut where the SEI goes: (parameter sets, pictures)."""
    units = []
    with av.open(str(path), format="h264") as container:
        for packet in container.demux(video=0):
            data = bytes(packet)
            if data:
                cut = _first_picture_offset(data)
                units.append((data[:cut], data[cut:]))
    return units


def _escape(rbsp: bytes) -> bytes:
    """Emulation prevention: 00 00 followed by 00-03 gets an 03 in between."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def sei_nal(sent_us: int) -> bytes:
    """An SEI NAL unit: user_data_unregistered (payload type 5) holding our UUID and the
    send time in microseconds since the epoch, then the RBSP trailing bits."""
    payload = SEI_UUID + sent_us.to_bytes(8, "big")
    return START_CODE + b"\x06" + _escape(bytes((5, len(payload))) + payload + b"\x80")


def sei_time_us(frame: bytes) -> int | None:
    i = frame.find(SEI_UUID)
    if i < 0:
        return None
    raw = frame[i + 16 : i + 28].replace(b"\x00\x00\x03", b"\x00\x00")
    return int.from_bytes(raw[:8], "big")


def h264_preferences() -> list[Any]:
    return [
        c
        for c in RTCRtpReceiver.getCapabilities("video").codecs
        if c.mimeType.lower() in ("video/h264", "video/rtx")
    ]


def new_pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: all on this machine


# --- the publisher process -------------------------------------------------------------------


class PacketTrack(MediaStreamTrack):
    """Pre-encoded access units at 30 fps by the wall clock, looped with ever growing
    timestamps; aiortc's sender packs `av.Packet`s without encoding them."""

    kind = "video"

    def __init__(self, units: list[tuple[bytes, bytes]]) -> None:
        super().__init__()
        self.units = units
        self.sent = 0
        self.started: float | None = None
        self.time_base = fractions.Fraction(1, CLOCK)

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.started is None:
            self.started = time.monotonic()
        delay = self.started + self.sent / FPS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        head, pictures = self.units[self.sent % len(self.units)]
        packet = av.Packet(head + sei_nal(time.time_ns() // 1000) + pictures)
        packet.pts = self.sent * (CLOCK // FPS)
        packet.time_base = self.time_base
        self.sent += 1
        return packet


async def publisher(whip_url: str, token: str, video: str) -> None:
    track = PacketTrack(read_access_units(Path(video)))
    pc = new_pc()
    transceiver = pc.addTransceiver(track, direction="sendonly")
    transceiver.setCodecPreferences(h264_preferences())
    sender: RTCRtpSender = transceiver.sender
    keyframe_requests = 0

    def asked() -> None:  # a PLI: the file's GOP (2 s) is all it can offer
        nonlocal keyframe_requests
        keyframe_requests += 1

    sender._send_keyframe = asked  # type: ignore[method-assign]
    await publish_until_told(pc, whip_url, token)
    print(json.dumps({"frames_sent": track.sent, "keyframe_requests": keyframe_requests}))


async def publish_until_told(pc: RTCPeerConnection, whip_url: str, token: str) -> None:
    """Publish `pc` over WHIP, print PUBLISHING, and keep sending until a line arrives on
    stdin; then DELETE the session (a 404 is fine: the show's end may have hung up) and
    close the peer."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(whip_url, data=pc.localDescription.sdp, headers=headers) as r:
            answer = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHIP answered {r.status}: {answer[:300]}")
            location = str(r.url.join(URL(r.headers["Location"])))
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        print("PUBLISHING", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        async with http.delete(location, headers={"Authorization": f"Bearer {token}"}):
            pass
    await pc.close()


# --- the viewer processes --------------------------------------------------------------------


@dataclass
class Tally:
    counting: bool = False
    frames: int = 0
    bytes: int = 0
    no_sei: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # to the frame's last packet
    released_ms: list[float] = field(default_factory=list)  # to aiortc handing the frame over


def rtp_counts(receiver: RTCRtpReceiver) -> tuple[int, int, int]:
    """(media packets received, media packets lost, retransmissions received). aiortc's
    getStats gives the media and the RTX stream the same id, so one hides the other: read
    its per-SSRC statistics instead."""
    streams = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    rtx = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]
    received = lost = retransmitted = 0
    for ssrc, stream in list(streams.items()):
        if ssrc in rtx:
            retransmitted += stream.packets_received
        else:
            received += stream.packets_received
            lost += stream.packets_lost
    return received, lost, retransmitted


class Watcher:
    """One WHEP viewer that never decodes: frames come off the receiver's jitter buffer."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.pc = new_pc()
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences(h264_preferences())
        self.receiver = transceiver.receiver
        tap_receiver(self.receiver, self.deliver)
        self.frames = 0
        self.location: str | None = None
        # aiortc's jitter buffer hands a frame over only when the first packet of the next
        # one arrives, a frame interval late. A player that goes by the marker bit (any
        # browser) has the frame when its last packet lands: note that time too.
        self.last_packet_us: dict[int, int] = {}  # RTP timestamp -> arrival of its marker
        self.completed_us: int | None = None
        buffer = self.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
        add = buffer.add

        def timed_add(packet: Any) -> Any:
            if packet.marker:
                if len(self.last_packet_us) > 64:
                    self.last_packet_us.clear()
                self.last_packet_us[packet.timestamp] = time.time_ns() // 1000
            pli, frame = add(packet)
            if frame is not None:
                self.completed_us = self.last_packet_us.pop(frame.timestamp, None)
            return pli, frame

        buffer.add = timed_add

    def deliver(self, codec: Any, data: bytes, timestamp: int) -> None:
        self.frames += 1
        tally = self.tally
        if not tally.counting:
            return
        tally.frames += 1
        tally.bytes += len(data)
        sent = sei_time_us(data)
        if sent is None:
            tally.no_sei += 1
            return
        now = time.time_ns() // 1000
        tally.released_ms.append(round((now - sent) / 1000, 2))
        completed = self.completed_us if self.completed_us is not None else now
        tally.latencies_ms.append(round((completed - sent) / 1000, 2))

    async def open(self, http: aiohttp.ClientSession, whep_url: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.widen_receive_buffers()
        for _ in range(20):
            headers = {"Content-Type": "application/sdp"}
            async with http.post(whep_url, data=self.pc.localDescription.sdp, headers=headers) as r:
                answer = await r.text()
                if r.status == 201:
                    self.location = str(r.url.join(URL(r.headers["Location"])))
                    break
                if r.status != 503:
                    raise RuntimeError(f"WHEP answered {r.status}: {answer[:300]}")
            await asyncio.sleep(0.5)
        else:
            raise RuntimeError("WHEP kept answering 503")
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    def widen_receive_buffers(self) -> None:
        """1 MB socket receive buffers (the default is about 200 kB, well under a second of
        this stream) so that a viewer process that stalls for a moment (a GC pass, the
        scheduler) catches up instead of losing packets: the loss to measure is the
        server's. Drops that happen anyway are counted (UDP RcvbufErrors)."""
        with contextlib.suppress(AttributeError):
            connection = self.receiver.transport.transport._connection
            for protocol in connection._protocols:
                sock = protocol.transport.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    async def close(self, http: aiohttp.ClientSession) -> None:
        if self.location is not None:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.delete(self.location):
                    pass
        await self.pc.close()


async def worker(whep_url: str, count: int, interval: float) -> None:
    tally = Tally()
    watchers: list[Watcher] = []
    errors: list[str] = []
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:

        async def join() -> None:
            watcher = Watcher(tally)
            watchers.append(watcher)
            try:
                await watcher.open(http, whep_url)
            except Exception as exc:
                errors.append(repr(exc))

        joins = []
        for _ in range(count):  # a steady ramp: one viewer every `interval` seconds
            joins.append(asyncio.create_task(join()))
            await asyncio.sleep(interval)
        await asyncio.gather(*joins)
        for _ in range(300):  # up to 30 s to connect and get a keyframe (GOP 2 s)
            if all(w.frames for w in watchers):
                break
            await asyncio.sleep(0.1)
        flowing = sum(1 for w in watchers if w.frames)
        print(json.dumps({"flowing": flowing, "errors": errors[:3]}), flush=True)

        def counts() -> list[int]:
            return [sum(c) for c in zip(*(rtp_counts(w.receiver) for w in watchers), strict=True)]

        await loop.run_in_executor(None, sys.stdin.readline)  # "start"
        before, cpu_started = counts(), time.process_time()
        tally.counting = True
        await loop.run_in_executor(None, sys.stdin.readline)  # "stop"
        tally.counting = False
        after, cpu_used = counts(), time.process_time() - cpu_started
        received, lost, retransmitted = (a - b for a, b in zip(after, before, strict=True))
        report = {
            "viewers": count,
            "flowing": flowing,
            "connected": sum(1 for w in watchers if w.pc.connectionState == "connected"),
            "frames": tally.frames,
            "bytes": tally.bytes,
            "no_sei": tally.no_sei,
            "latencies_ms": tally.latencies_ms,
            "released_ms": tally.released_ms,
            "received": received,
            "lost": lost,
            "retransmitted": retransmitted,
            "cpu_s": cpu_used,
        }
        print(json.dumps(report), flush=True)
        await asyncio.gather(*(w.close(http) for w in watchers), return_exceptions=True)


# --- the servers ------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    process: asyncio.subprocess.Process
    url: str
    show_id: str
    host_token: str


async def start_showroom(work: Path) -> Target:
    process, url, admin = await launch_showroom(work, {})
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
        show_id = await start_live_show(http, url, "Relay bench")
        async with http.post(
            f"{url}/api/v1/api-keys",
            json={"role": "host", "show_id": show_id, "name": "bench host"},
        ) as r:
            if r.status != 201:
                raise RuntimeError(f"could not make a host token: {r.status} {await r.text()}")
            host_token = (await r.json())["token"]
    return Target("showroom", process, url, show_id, host_token)


async def start_baseline() -> Target:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "baseline_mediarelay.py"),
        str(port),
        cwd=ROOT,
        preexec_fn=pin(SERVER_CPUS),
    )
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, process)
    return Target("baseline", process, url, "bench-show", "unused")


async def stream_report(target: Target) -> dict[str, Any]:
    path = (
        f"/api/v1/shows/{target.show_id}/stream"
        if target.name == "showroom"
        else f"/stats/{target.show_id}"
    )
    async with aiohttp.ClientSession() as http, http.get(target.url + path) as r:
        report: dict[str, Any] = await r.json()
        return report


async def until_flowing(target: Target) -> dict[str, Any]:
    for _ in range(200):
        report = await stream_report(target)
        if report.get("status") == "publishing" or report.get("frames_decoded", 0) >= FPS:
            return report
        if target.process.returncode is not None:
            raise RuntimeError(f"{target.name} exited")
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{target.name}: media never flowed: {report}")


async def stop_process(process: asyncio.subprocess.Process, seconds: float = 20) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), seconds)
        except TimeoutError:
            process.kill()
            await process.wait()


# --- measuring -------------------------------------------------------------------------------


def cpu_busy() -> dict[int, tuple[float, float]]:
    """Per CPU: (busy, total) jiffies from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values]
            idle = ticks[3] + ticks[4]
            out[int(name[3:])] = (float(sum(ticks[:8]) - idle), float(sum(ticks[:8])))
    return out


def system_seconds(pid: int) -> float:
    """The kernel's share of cpu_seconds (sending a datagram on loopback also runs the
    receiving socket's side of the network stack, in the sender's time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def udp_drops() -> int:
    """Datagrams the kernel dropped because a socket's receive buffer was full (UDP over
    IPv4 and IPv6, machine-wide): on loopback, the only place packets get lost is a socket
    (a viewer's, or the server's) that was not read fast enough."""
    total = 0
    for path, prefix in (("/proc/net/snmp", "Udp:"), ("/proc/net/snmp6", "Udp6RcvbufErrors")):
        with contextlib.suppress(OSError):
            lines = [ln.split() for ln in Path(path).read_text().splitlines()]
            if prefix == "Udp:":
                head, values = [ln for ln in lines if ln and ln[0] == prefix][:2]
                total += int(values[head.index("RcvbufErrors")])
            else:
                total += sum(int(ln[1]) for ln in lines if ln and ln[0] == prefix)
    return total


@dataclass
class Phase:
    viewers: int
    seconds: float
    server_cpu_s: float
    server_system_s: float
    cpu_busy: dict[int, float]  # share of each CPU in use over the window, 0-1
    flowing: int = 0
    connected: int = 0
    frames: int = 0
    bytes: int = 0
    no_sei: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    released_ms: list[float] = field(default_factory=list)
    received: int = 0
    lost: int = 0
    retransmitted: int = 0
    clients_cpu_s: float = 0.0
    publisher_cpu_s: float = 0.0
    udp_drops: int = 0
    stream: dict[str, Any] = field(default_factory=dict)  # the server's report, at the end

    @property
    def cores(self) -> float:
        return self.server_cpu_s / self.seconds

    @property
    def full_rate_viewers(self) -> float:
        return self.frames / (FPS * self.seconds)

    @property
    def loss_pct(self) -> float:
        return 100 * self.lost / max(self.received + self.lost, 1)

    def latency(self, p: float, released: bool = False) -> float | None:
        samples = self.released_ms if released else self.latencies_ms
        if not samples:
            return None
        ordered = sorted(samples)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def measure(
    target: Target, publisher_pid: int, viewers: int, seconds: float, args: argparse.Namespace
) -> Phase:
    """`viewers` watch (after they all joined and frames flow); the window is `seconds`."""
    workers = []
    processes = math.ceil(viewers / args.viewers_per_process) if viewers else 0
    whep = f"{target.url}/whep/{target.show_id}"
    for p in range(processes):
        count = viewers // processes + (1 if p < viewers % processes else 0)
        workers.append(
            await asyncio.create_subprocess_exec(
                *(sys.executable, __file__, "--worker", whep, str(count)),
                str(processes / args.ramp),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                limit=2**26,
                preexec_fn=pin(CLIENT_CPUS),
            )
        )
    started = time.monotonic()
    flowing = 0
    for proc in workers:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60 + viewers / args.ramp)
        if not line:
            raise RuntimeError("a viewer process died while joining")
        joined = json.loads(line)
        flowing += joined["flowing"]
        if joined["errors"]:
            print(f"[{target.name}] viewer errors: {joined['errors']}", file=sys.stderr)
    if viewers:
        print(
            f"[{target.name}] {flowing}/{viewers} viewers receiving after "
            f"{time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
        await asyncio.sleep(args.settle)
    pid = target.process.pid
    busy_before, cpu_before, pub_before = cpu_busy(), cpu_seconds(pid), cpu_seconds(publisher_pid)
    drops_before, system_before = udp_drops(), system_seconds(pid)
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write(b"start\n")
        await proc.stdin.drain()
    begin = time.monotonic()
    spy = None
    if args.py_spy and target.name == "showroom" and viewers == args.viewers:
        spy = await asyncio.create_subprocess_exec(
            *("py-spy", "record", "-p", str(pid), "-d", str(int(seconds))),
            *("-f", "raw", "-r", "25", "-o", args.py_spy),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    await asyncio.sleep(seconds)
    stream = await stream_report(target)
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
    window = time.monotonic() - begin
    cpu_used = cpu_seconds(pid) - cpu_before
    publisher_used = cpu_seconds(publisher_pid) - pub_before
    busy_after = cpu_busy()
    drops = udp_drops() - drops_before
    phase = Phase(
        viewers=viewers,
        seconds=window,
        server_cpu_s=cpu_used,
        server_system_s=system_seconds(pid) - system_before,
        cpu_busy={
            cpu: (busy_after[cpu][0] - busy_before[cpu][0])
            / max(busy_after[cpu][1] - busy_before[cpu][1], 1)
            for cpu in busy_after
        },
        flowing=flowing,
        publisher_cpu_s=publisher_used,
        udp_drops=drops,
        stream=stream,
    )
    for proc in workers:
        assert proc.stdout is not None
        result = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        phase.connected += result["connected"]
        phase.frames += result["frames"]
        phase.bytes += result["bytes"]
        phase.no_sei += result["no_sei"]
        phase.latencies_ms.extend(result["latencies_ms"])
        phase.released_ms.extend(result["released_ms"])
        phase.received += result["received"]
        phase.lost += result["lost"]
        phase.retransmitted += result["retransmitted"]
        phase.clients_cpu_s += result["cpu_s"]
    for proc in workers:
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
    if spy is not None:
        await spy.wait()
    return phase


@dataclass
class Figures:
    name: str
    idle: Phase
    loaded: Phase
    floor: Phase | None
    stream: dict[str, Any]
    after: dict[str, Any]

    @property
    def increment(self) -> float:  # cores the viewers added
        return max(self.loaded.cores - self.idle.cores, 1e-9)

    @property
    def cpu_per_viewer_ms(self) -> float:
        return 1000 * self.increment / max(self.loaded.viewers, 1)

    @property
    def viewers_per_core(self) -> float:
        return self.loaded.full_rate_viewers / self.increment

    @property
    def gross_viewers_per_core(self) -> float:
        return self.loaded.full_rate_viewers / max(self.loaded.cores, 1e-9)


async def start_publisher(
    script: str, whip_url: str, token: str, video: Path
) -> asyncio.subprocess.Process:
    """`script --publisher` on the client cores, once it says it is publishing (stopped when
    it fails to)."""
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, script, "--publisher", whip_url, token, str(video)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
        preexec_fn=pin(CLIENT_CPUS),
    )
    assert process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if line.strip() != b"PUBLISHING":
            raise RuntimeError(f"the publisher failed: {line!r}")
    except BaseException:
        await stop_process(process, 5)
        raise
    return process


async def run_server(name: str, work: Path, video: Path, args: argparse.Namespace) -> Figures:
    target = await start_showroom(work) if name == "showroom" else await start_baseline()
    publisher_process = None
    try:
        publisher_process = await start_publisher(
            __file__, f"{target.url}/whip/{target.show_id}", target.host_token, video
        )
        assert publisher_process.stdout is not None and publisher_process.stdin is not None
        stream = await until_flowing(target)
        await asyncio.sleep(2.0)  # let the stream's health window fill
        stream = await stream_report(target)
        pub = publisher_process.pid
        idle = await measure(target, pub, 0, args.idle_seconds, args)
        floor = None
        if name == "showroom" and args.floor_seconds > 0:
            floor = await measure(target, pub, 1, args.floor_seconds, args)
        viewers = args.viewers if name == "showroom" else args.baseline_viewers
        loaded = await measure(target, pub, viewers, args.seconds, args)
        after = await stream_report(target)
        publisher_process.stdin.write(b"stop\n")
        await publisher_process.stdin.drain()
        with contextlib.suppress(TimeoutError):
            tail = await asyncio.wait_for(publisher_process.stdout.readline(), 15)
            after["publisher"] = json.loads(tail) if tail.strip() else {}
        return Figures(name, idle, loaded, floor, stream, after)
    finally:
        if publisher_process is not None:
            await stop_process(publisher_process, 5)
        await stop_process(target.process)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def report(f: Figures) -> None:
    load, idle = f.loaded, f.idle
    expected = FPS * load.seconds * max(load.viewers, 1)
    s = f.stream
    codecs = (
        f"video={s.get('video_codec')} {s.get('width')}x{s.get('height')} "
        f"{s.get('bitrate_kbps')} kb/s {s.get('frame_rate')} fps"
        if f.name == "showroom"
        else f"publisher={s.get('publisher_codec')} viewers={load.stream.get('viewer_codecs')} "
        "(decoded once, encoded per viewer by aiortc)"
    )
    print(f"== {f.name}: {codecs}")
    print(
        f"  idle (publisher, no viewer): {idle.cores * 100:.1f}% of a core over {idle.seconds:.0f}s"
    )
    if f.floor is not None:
        print(
            f"  1 viewer: latency p50={_ms(f.floor.latency(0.5))} ms "
            f"p99={_ms(f.floor.latency(0.99))} ms (aiortc's release: "
            f"p50={_ms(f.floor.latency(0.5, True))} ms), "
            f"{(f.floor.cores - idle.cores) * 1000:.1f} ms CPU/s more than idle"
        )
    print(
        f"  {load.viewers} viewers ({load.flowing} receiving, {load.connected} connected at the "
        f"end) over {load.seconds:.1f}s: server {load.cores * 100:.1f}% of a core "
        f"({load.server_system_s / load.seconds * 100:.1f}% in the kernel), "
        f"+{f.increment * 100:.1f}% over idle"
    )
    print(
        f"  frames {load.frames}/{expected:.0f} ({100 * load.frames / expected:.1f}%), "
        f"{load.bytes * 8 / load.seconds / max(load.viewers, 1) / 1000:.0f} kb/s per viewer, "
        f"full-rate viewers {load.full_rate_viewers:.1f}"
    )
    print(
        f"  cpu_per_viewer_ms={f.cpu_per_viewer_ms:.2f} (ms of server CPU per second per "
        f"viewer) viewers_per_core={f.viewers_per_core:.1f} "
        f"gross_viewers_per_core={f.gross_viewers_per_core:.1f}"
    )
    print(
        f"  rtp packets received={load.received} lost={load.lost} "
        f"loss_pct={load.loss_pct:.3f} retransmitted={load.retransmitted}; datagrams the "
        f"kernel dropped for full socket buffers meanwhile: {load.udp_drops}"
    )
    latency = (
        f"p50={_ms(load.latency(0.5))} ms p99={_ms(load.latency(0.99))} ms to the frame's "
        f"last packet; p50={_ms(load.latency(0.5, True))} ms "
        f"p99={_ms(load.latency(0.99, True))} ms to aiortc's release of it "
        f"({len(load.latencies_ms)} samples)"
        if load.latencies_ms
        else f"n/a ({load.no_sei} frames without the publisher's SEI: re-encoded)"
    )
    print(f"  latency publisher -> viewer: {latency}")
    clients = load.clients_cpu_s / load.seconds
    publisher = load.publisher_cpu_s / load.seconds
    cpu_line = " ".join(f"cpu{c}={b * 100:.0f}%" for c, b in sorted(load.cpu_busy.items()))
    print(
        f"  machine: {cpu_line}; viewer processes {clients * 100:.0f}% and publisher "
        f"{publisher * 100:.0f}% of a core"
    )
    client_cpu = max((load.cpu_busy.get(c, 0.0) for c in CLIENT_CPUS), default=0.0)
    if client_cpu > 0.8:
        print(
            f"  WARNING: the client core was {client_cpu * 100:.0f}% busy: loss and latency may "
            "be the clients' own (viewers fall behind, their sockets overflow); try fewer "
            "--viewers"
        )
    delivered = load.frames / expected
    if load.cores > 0.9 and delivered < 0.98:
        print(
            f"  WARNING: the server used {load.cores * 100:.0f}% of its core and delivered "
            f"{delivered * 100:.0f}% of the frames: it is saturated (its viewers per core count "
            "full-rate viewers, so the figure stays an estimate)"
        )
    elif load.cores > 0.9:
        print(
            f"  note: the server used {load.cores * 100:.0f}% of its core, near saturation, but "
            "still delivered every frame"
        )
    if f.name == "showroom":
        print(
            f"  server saw {load.stream.get('viewers')} viewers at the end of the window, "
            f"keyframe requests {f.after.get('keyframe_requests')}, "
            f"publisher {f.after.get('publisher')}"
        )
    sys.stdout.flush()


async def main(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, CLIENT_CPUS)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="showroom-relay-bench-"))
    results: dict[str, Figures] = {}
    try:
        video = work / "source.h264"
        make_video(video)
        for name in ("showroom", "baseline"):
            if args.only and name != args.only:
                continue
            results[name] = await run_server(name, work, video, args)
            report(results[name])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only:
        return 0
    ours, base = results["showroom"], results["baseline"]
    ratio = ours.viewers_per_core / base.viewers_per_core if base.viewers_per_core else math.inf
    p50 = ours.loaded.latency(0.5)
    p99 = ours.loaded.latency(0.99)
    floor = ours.floor.latency(0.5) if ours.floor is not None else None
    print(
        f"latency: p50={_ms(p50)} ms p99={_ms(p99)} ms with {ours.loaded.viewers} viewers, "
        f"p50={_ms(floor)} ms with 1"
    )
    print(
        f"RESULT viewers_per_core={ours.viewers_per_core:.1f} "
        f"baseline_viewers_per_core={base.viewers_per_core:.2f} ratio={ratio:.1f} "
        f"loss_pct={ours.loaded.loss_pct:.3f} added_latency_ms={p50 if p50 is not None else 0:.1f}"
    )
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--viewers", type=int, default=30, help="Showroom's viewers")
    p.add_argument("--viewers-per-process", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20.0, help="the measured window")
    p.add_argument("--baseline-viewers", type=int, default=2, help="the stock relay's viewers")
    p.add_argument("--idle-seconds", type=float, default=5.0, help="window with no viewer")
    p.add_argument("--floor-seconds", type=float, default=5.0, help="window with 1 viewer")
    p.add_argument("--ramp", type=float, default=10.0, help="viewers joining per second")
    p.add_argument("--settle", type=float, default=2.0, help="seconds between join and window")
    p.add_argument(
        "--py-spy",
        default=None,
        help="sample Showroom's server during the window (py-spy on PATH; it runs on the client "
        "core and perturbs the figures)",
    )
    p.add_argument("--only", choices=["showroom", "baseline"], help="measure one server")
    return p.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        asyncio.run(worker(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--publisher":
        asyncio.run(publisher(*sys.argv[2:5]))
    else:
        sys.exit(asyncio.run(main(parse())))
