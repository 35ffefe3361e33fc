"""Chat fan-out: one server process, N viewers in one show (driven from separate client
processes), chat arriving at M messages per second. Measures Showroom's live room and, in
the same run, a plain python-socketio server that emits each message to the room as it
arrives (bench/baseline_socketio.py).

    .venv/bin/python bench/chat_fanout.py [--viewers 5000] [--rate 50] [--seconds 20]

Reports, per server: deliveries (one chat message reaching one viewer) per second of the
server's CPU time, p50/p99 send-to-receive latency, and server memory (RSS) per idle
connection. Final line:

    RESULT deliveries_per_cpu_s=... baseline_deliveries_per_cpu_s=... ratio=... p99_ms=... kb_per_conn=...

The viewers are raw Engine.IO v4 / Socket.IO v5 websocket clients (aiohttp), light enough
that a few client processes can hold thousands of them. Every connection counts what it
receives; one in `--sample-every` also parses each message and records its latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import jwt

ROOT = Path(__file__).resolve().parent.parent
NS = "/live"
VIEWER_SECRET = "bench-viewer-secret-" + "x" * 24
SECRET_KEY = "bench-secret-key-" + "y" * 32


# --- a minimal Socket.IO client over a websocket ----------------------------------------------


class Wire:
    """One Socket.IO connection to the /live namespace, spoken by hand over a raw websocket
    (asyncio streams): cheap enough that a few client processes can hold thousands, so the
    client side takes as little of the machine's CPU from the server as it can."""

    PING = b"\x81\x012"  # an unmasked text frame holding Engine.IO's ping, "2"

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.next_id = 1

    @classmethod
    async def open(cls, url: str, token: str) -> Wire:
        host, port = url.split("//")[1].split(":")
        reader, writer = await asyncio.open_connection(host, int(port), limit=2**20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"websocket refused: {head[:80]!r}")
        wire = cls(reader, writer)
        opened = await wire.receive()
        if not opened.startswith("0"):
            raise RuntimeError(f"unexpected Engine.IO open: {opened[:80]}")
        wire.send(f"40{NS}," + json.dumps({"token": token}))
        answer = await wire.receive()
        if not answer.startswith(f"40{NS},"):
            raise RuntimeError(f"connect refused: {answer[:200]}")
        return wire

    def send(self, text: str) -> None:
        """A client frame: masked, as RFC 6455 requires (with a zero mask, which is legal
        and leaves the payload as is)."""
        payload = text.encode()
        size = len(payload)
        if size < 126:
            head = bytes((0x81, 0x80 | size))
        else:
            head = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
        self.writer.write(head + b"\0\0\0\0" + payload)

    async def receive(self) -> str:
        while True:
            _, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = int.from_bytes(await self.reader.readexactly(2), "big")
            elif size == 127:
                size = int.from_bytes(await self.reader.readexactly(8), "big")
            text = (await self.reader.readexactly(size)).decode()
            if text == "2":  # Engine.IO ping
                self.send("3")
                continue
            return text

    async def call(self, event: str, payload: dict[str, Any]) -> Any:
        """Emit with an ack and wait for it (before the reader loop takes over)."""
        self.emit(event, payload)
        prefix = f"43{NS},{self.next_id - 1}"
        while True:
            data = await self.receive()
            if data.startswith(prefix):
                return json.loads(data[len(prefix) :])[0]

    def emit(self, event: str, payload: dict[str, Any]) -> int:
        ack_id = self.next_id
        self.next_id += 1
        self.send(f"42{NS},{ack_id}" + json.dumps([event, payload]))
        return ack_id

    def close(self) -> None:
        self.writer.close()


def token(member: str) -> str:
    claims = {"sub": member, "name": member, "exp": int(time.time()) + 3600}
    return jwt.encode(claims, VIEWER_SECRET, algorithm="HS256")


# --- viewer worker process ----------------------------------------------------------------


@dataclass
class Tally:
    counting: bool = False
    deliveries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    dropped: int = 0


async def _count(wire: Wire, tally: Tally) -> None:
    """Count the chat messages arriving, straight off the byte stream (a message's type tag
    can straddle two reads, so the end of each read is kept for the next)."""
    tag, tail = b'chat.message"', b""
    try:
        while data := await wire.reader.read(1 << 16):
            if Wire.PING in data:
                wire.send("3")
            if tally.counting:
                tally.deliveries += (tail + data).count(tag)
                tail = data[-(len(tag) - 1) :]
    finally:
        tally.dropped += 1


async def _sample(wire: Wire, tally: Tally) -> None:
    """Read whole frames, and time each chat message from the sender's clock."""
    try:
        while True:
            data = await wire.receive()
            if not tally.counting or not data.startswith("42"):
                continue
            n = data.count('chat.message"')
            if not n:
                continue
            tally.deliveries += n
            now = time.time()
            body = json.loads(data[data.index("[") :])
            events = body[1]["events"] if body[0] == "frame" else [body[1]]
            for event in events:
                if event.get("type") == "chat.message" and event["text"].startswith("bench "):
                    sent = float(event["text"].split()[1])
                    tally.latencies_ms.append(round((now - sent) * 1000, 2))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        tally.dropped += 1


async def worker(url: str, show_id: str, first: int, count: int, sample_every: int) -> None:
    tally = Tally()
    gate = asyncio.Semaphore(50)
    readers: list[asyncio.Task[None]] = []

    async def join(n: int) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    wire = await Wire.open(url, token(f"viewer-{n}"))
                    ack = await wire.call("join", {"show_id": show_id})
                    break
                except (RuntimeError, OSError, asyncio.IncompleteReadError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
            if not ack.get("ok"):
                raise RuntimeError(f"join refused: {ack}")
            read = _sample if n % sample_every == 0 else _count
            readers.append(asyncio.create_task(read(wire, tally)))

    await asyncio.gather(*(join(n) for n in range(first, first + count)))
    print("READY", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line == "start":
            cpu_started = time.process_time()
            tally.counting, tally.deliveries, tally.latencies_ms = True, 0, []
        elif line == "stop":
            tally.counting = False
            print(
                json.dumps(
                    {
                        "deliveries": tally.deliveries,
                        "latencies_ms": tally.latencies_ms,
                        "dropped": tally.dropped,
                        "cpu_s": time.process_time() - cpu_started,
                    }
                ),
                flush=True,
            )
            break
    for task in readers:
        task.cancel()


# --- measuring a server process -----------------------------------------------------------


# The server under test gets a core of its own and the load generators (viewer processes
# and the chat senders) share the others, so neither steals the other's CPU time.
CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS = set(CPUS[:1]) if len(CPUS) > 1 else set(CPUS)
CLIENT_CPUS = set(CPUS[1:]) if len(CPUS) > 1 else set(CPUS)


def pin(cpus: set[int]) -> Any:
    return lambda: os.sched_setaffinity(0, cpus)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            if process.returncode is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with http.get(f"{url}/readyz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


@dataclass
class Server:
    name: str
    process: asyncio.subprocess.Process
    url: str
    show_id: str
    chat_payload: dict[str, Any]  # extra fields chat:send needs on this server


async def launch_showroom(
    work: Path,
    extra_env: dict[str, str],
    *,
    database_url: str | None = None,
    profile: str | None = None,
) -> tuple[asyncio.subprocess.Process, str, str]:
    """Migrate, mint an admin key and start `showroom serve` on the server core: (process,
    base url, admin key). `profile` runs it under cProfile, writing there."""
    port = free_port()
    env = {
        **os.environ,
        "SHOWROOM_PORT": str(port),
        "SHOWROOM_DATA_DIR": str(work / "data"),
        "SHOWROOM_SECRET_KEY": SECRET_KEY,
        "SHOWROOM_VIEWER_JWT_SECRET": VIEWER_SECRET,
        "SHOWROOM_LOG_LEVEL": "WARNING",
        **extra_env,
    }
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    cli = [sys.executable, "-m", "server.cli"]

    async def run(*args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *cli, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"showroom {args[0]} failed")
        return out.decode().strip()

    await run("migrate")
    admin = (await run("create-token", "--role", "admin")).splitlines()[-1]
    profiler = [sys.executable, "-m", "cProfile", "-o", profile, "-m", "server.cli"]
    process = await asyncio.create_subprocess_exec(
        *(profiler if profile else cli),
        "serve",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        preexec_fn=pin(SERVER_CPUS),
    )
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, process)
    return process, url, admin


async def start_live_show(http: aiohttp.ClientSession, url: str, title: str) -> str:
    """Schedule a show and take it live (`http` carries the admin key); its id."""
    async with http.post(
        f"{url}/api/v1/shows", json={"title": title, "scheduled_start": "2026-12-01T12:00:00Z"}
    ) as r:
        show_id: str = (await r.json())["id"]
    async with http.post(f"{url}/api/v1/shows/{show_id}/start") as r:
        if r.status != 200:
            raise RuntimeError(f"could not start the show: {r.status}")
    return show_id


async def start_showroom(work: Path, database_url: str | None, profile: str | None) -> Server:
    process, url, admin = await launch_showroom(
        work,
        {"SHOWROOM_CHAT_BURST": "20", "SHOWROOM_CHAT_PER_SECOND": "20"},
        database_url=database_url,
        profile=profile,
    )
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
        show_id = await start_live_show(http, url, "Fan-out bench")
    return Server("showroom", process, url, show_id, {})


async def start_baseline() -> Server:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "bench" / "baseline_socketio.py"),
        str(port),
        cwd=ROOT,
        preexec_fn=pin(SERVER_CPUS),
    )
    url = f"http://127.0.0.1:{port}"
    await wait_ready(url, process)
    show_id = "bench-show"
    return Server("baseline", process, url, show_id, {"show_id": show_id})


# --- one run against one server -----------------------------------------------------------


@dataclass
class Figures:
    deliveries: int
    expected: int
    cpu_s: float
    p50_ms: float
    p99_ms: float
    kb_per_conn: float
    sent: int
    refused: int
    ack_p50_ms: float  # chat:send to its ack: the server's handling of one message
    clients_cpu_s: float  # what the viewer processes spent meanwhile (on the same machine)

    @property
    def per_cpu_s(self) -> float:
        return self.deliveries / self.cpu_s if self.cpu_s else 0.0


async def measure(server: Server, args: argparse.Namespace) -> Figures:
    pid = server.process.pid
    await asyncio.sleep(1.0)
    rss_before = rss_kb(pid)
    workers = []
    per = -(-args.viewers // args.clients)
    for w in range(args.clients):
        first, count = w * per, min(per, args.viewers - w * per)
        if count <= 0:
            break
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--worker",
                server.url,
                server.show_id,
                str(first),
                str(count),
                str(args.sample_every),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
                limit=2**26,
                preexec_fn=pin(CLIENT_CPUS),
            )
        )
    started = time.monotonic()
    for proc in workers:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 600)
        if line.strip() != b"READY":
            raise RuntimeError(f"a viewer process failed to connect its viewers: {line!r}")
    print(
        f"[{server.name}] {args.viewers} viewers joined in {time.monotonic() - started:.1f}s",
        file=sys.stderr,
    )
    await asyncio.sleep(3.0)  # let joins settle before reading idle memory
    kb_per_conn = (rss_kb(pid) - rss_before) / args.viewers

    senders = []
    for s in range(args.senders):
        wire = await Wire.open(server.url, token(f"sender-{s}"))
        ack = await wire.call("join", {"show_id": server.show_id})
        if not ack.get("ok"):
            raise RuntimeError(f"sender join refused: {ack}")
        senders.append(wire)
    acks = {"ok": 0, "refused": 0}
    emitted: dict[tuple[int, int], float] = {}  # (sender, ack id) -> when it was sent
    ack_ms: list[float] = []

    async def read_acks(wire: Wire) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                data = await wire.receive()
                if data.startswith(f"43{NS},"):
                    acks["ok" if '"ok":true' in data else "refused"] += 1
                    ack_id = int(data[len(f"43{NS},") :].split("[", 1)[0])
                    ack_ms.append((time.time() - emitted.pop((id(wire), ack_id))) * 1000)

    ack_readers = [asyncio.create_task(read_acks(w)) for w in senders]
    spy = None
    if args.py_spy and server.name == "showroom":
        spy = await asyncio.create_subprocess_exec(
            *("py-spy", "record", "-p", str(pid), "-d", str(int(args.seconds))),
            *("-f", "raw", "-r", "200", "-o", args.py_spy),
            stdout=asyncio.subprocess.DEVNULL,
        )
    cpu_before = cpu_seconds(pid)
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write(b"start\n")
        await proc.stdin.drain()
    interval = 1.0 / args.rate
    sent = 0
    begin = time.monotonic()
    while (elapsed := time.monotonic() - begin) < args.seconds:
        due = int(elapsed / interval) + 1
        while sent < due:
            wire = senders[sent % len(senders)]
            now = time.time()
            ack_id = wire.emit("chat:send", {"text": f"bench {now:.6f}", **server.chat_payload})
            emitted[id(wire), ack_id] = now
            sent += 1
        await asyncio.sleep(max(0.0, begin + due * interval - time.monotonic()))
    await asyncio.sleep(args.drain)
    if spy is not None:
        await spy.wait()
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write(b"stop\n")
        await proc.stdin.drain()
    cpu_used = cpu_seconds(pid) - cpu_before
    deliveries, latencies, dropped, clients_cpu_s = 0, [], 0, 0.0
    for proc in workers:
        assert proc.stdout is not None
        result = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
        deliveries += result["deliveries"]
        latencies.extend(result["latencies_ms"])
        dropped += result["dropped"]
        clients_cpu_s += result["cpu_s"]
    for task in ack_readers:
        task.cancel()
    for wire in senders:
        wire.close()
    for proc in workers:
        with_timeout = asyncio.wait_for(proc.wait(), 30)
        try:
            await with_timeout
        except TimeoutError:
            proc.kill()
    if dropped:
        print(f"[{server.name}] {dropped} viewer connections dropped", file=sys.stderr)
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else 0.0

    return Figures(
        deliveries=deliveries,
        expected=(sent - acks["refused"]) * args.viewers,
        cpu_s=cpu_used,
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        kb_per_conn=kb_per_conn,
        sent=sent,
        refused=acks["refused"],
        ack_p50_ms=sorted(ack_ms)[len(ack_ms) // 2] if ack_ms else 0.0,
        clients_cpu_s=clients_cpu_s,
    )


async def stop(server: Server) -> None:
    if server.process.returncode is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(server.process.wait(), 20)
        except TimeoutError:
            server.process.kill()
            await server.process.wait()


def report(name: str, f: Figures) -> None:
    print(
        f"{name:9} deliveries={f.deliveries}/{f.expected} "
        f"({100 * f.deliveries / max(f.expected, 1):.1f}%) cpu_s={f.cpu_s:.2f} "
        f"deliveries_per_cpu_s={f.per_cpu_s:.0f} p50_ms={f.p50_ms:.1f} p99_ms={f.p99_ms:.1f} "
        f"kb_per_conn={f.kb_per_conn:.1f} sent={f.sent} refused={f.refused} "
        f"ack_p50_ms={f.ack_p50_ms:.1f} clients_cpu_s={f.clients_cpu_s:.1f}",
        flush=True,
    )


async def main(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, CLIENT_CPUS)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="showroom-bench-"))
    results: dict[str, Figures] = {}
    try:
        for name in ("showroom", "baseline"):
            if args.only and name != args.only:
                continue
            server = (
                await start_showroom(work, args.database_url, args.profile)
                if name == "showroom"
                else await start_baseline()
            )
            try:
                results[name] = await measure(server, args)
            finally:
                await stop(server)
            report(name, results[name])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.only:
        return 0
    ours, base = results["showroom"], results["baseline"]
    ratio = ours.per_cpu_s / base.per_cpu_s if base.per_cpu_s else float("inf")
    print(
        f"RESULT deliveries_per_cpu_s={ours.per_cpu_s:.0f} "
        f"baseline_deliveries_per_cpu_s={base.per_cpu_s:.0f} ratio={ratio:.1f} "
        f"p99_ms={ours.p99_ms:.0f} kb_per_conn={ours.kb_per_conn:.1f} "
        f"p50_ms={ours.p50_ms:.0f} baseline_p99_ms={base.p99_ms:.0f} "
        f"delivered_pct={100 * ours.deliveries / max(ours.expected, 1):.1f} "
        f"viewers={args.viewers} rate={args.rate}"
    )
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--viewers", type=int, default=5000)
    p.add_argument("--rate", type=float, default=50.0, help="chat messages per second")
    p.add_argument("--seconds", type=float, default=20.0, help="how long chat runs")
    p.add_argument("--clients", type=int, default=4, help="viewer client processes")
    p.add_argument("--senders", type=int, default=10, help="members sending the chat")
    p.add_argument("--sample-every", type=int, default=20, help="latency from 1 in N viewers")
    p.add_argument("--drain", type=float, default=2.0, help="seconds to wait after sending")
    p.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    p.add_argument("--profile", default=None, help="write a cProfile of Showroom's server here")
    p.add_argument("--py-spy", default=None, help="sample Showroom's server while chat runs")
    p.add_argument("--only", choices=["showroom", "baseline"], help="measure one server")
    return p.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, show_id, first, count, sample_every = sys.argv[2:7]
        asyncio.run(worker(url, show_id, int(first), int(count), int(sample_every)))
    else:
        sys.exit(asyncio.run(main(parse())))
