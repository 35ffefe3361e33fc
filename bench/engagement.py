"""Engagement accounting for one big show: what watch time, chat and reactions cost the server
in CPU, and how many ledger entries they write, with 10,000 viewers watching at once.

    .venv/bin/python bench/engagement.py [--viewers 10000] [--seconds 20]
                                         [--backends sqlite,postgresql] [--report-seconds 180]

The server credits watch time only to a player it is relaying WebRTC media to (WHEP), and
10,000 real WHEP peers cannot run on this machine. So the cost is measured in two parts,
which add up to the whole:

1. State reports, in the real server (`showroom serve`, SQLite, on its own core). N viewers
   (raw Engine.IO/Socket.IO websockets from chat_fanout.py, in `--clients` processes on the
   other core) join one live show. A player sends `watch:beat` only when its state changes
   (play, pause, hidden, shown, a new WHEP session) and at most every 5 minutes that the
   viewer interacted (web/watch.js); `--report-seconds` is the average time between two
   reports of one viewer (180 s). That rate is too low to measure, so the windows send
   reports far faster (every `--beat-seconds`, 10 s: 1,000/s at 10,000 viewers, phases
   spread evenly) and the cost per report is scaled to viewers / report-seconds. Each
   names a WHEP session of its own; no media is relayed to them, so every check runs and
   the answer is `no_media`. Windows: without an ack, as web/watch.js sends them (the
   headline), and with one (`emitWithAck`). The **baseline**, in the same run and on the
   same server, is the same sockets joined and idle (Engine.IO pings, presence ticks and
   the engagement writer's per-flush show-minute row go on in both), before and after.
   cost per report = (server CPU in the window - idle share x window) / reports sent, from
   /proc. With `--floor`, one more window sends an acked event the server refuses at once
   (`unknown_event`): the Socket.IO transport without the handler. With `--sockets` below
   `--viewers`, part 1 runs at that many sockets and is scaled (the output says so).
2. The sweep and the accrual flush, in process, against a real database per backend: a
   SQLite file, and a scratch PostgreSQL database (created, migrated, dropped). N members
   (member and balance rows bulk-inserted) join and report once that they are playing to a
   `WatchClock` (every WHEP session counts as relayed) on a simulated clock. One opening
   flush (not measured) takes everyone's join: attendance rows, first-join bonus, and
   watching so far (0 to one block of WATCH_BLOCK minutes, spread so that block
   boundaries fall evenly). Then, for `--sim-seconds` (one block: 300 s, so that every
   viewer completes one), every `--flush-seconds` (5 s, the server's default): the room's
   `--chat-rate` chat messages, `--react-rate` reaction events (1-10 taps each) and
   `--question-rate` questions go to the accrual, `WatchClock.sweep()` credits every
   watching viewer's 5 s (as the server's flush does first), and `flush(hold=True)` writes
   (the server's periodic write: watching is held until it completes a block, and the
   held watching is checkpointed in the same transaction). CPU per
   flush is `time.process_time()` around the flush (aiosqlite's thread included;
   PostgreSQL's own backends are measured apart and reported, not added); the sweep and
   the in-memory accrual calls are timed apart. Ledger rows per second = entries written /
   simulated seconds. A webhook endpoint subscribed to the points events is registered, so
   the flush writes its outbox messages too. `--history` ledger entries per member
   already in the tier window shows what a member's past costs.

cpu_share_pct = reports (unacked) + sweep and in-memory calls + flush (the costlier
backend's). Final line:

    RESULT viewers=10000 cpu_share_pct=... ledger_rows_s=... report_pct=... report_acked_pct=...
           report_us=... sweep_calls_pct=... flush_pct=... flush_sqlite_pct=...
           flush_postgresql_pct=... [noop_event_pct=...] sockets=...

`--skip-beats` runs part 2 only. `--py-spy PREFIX` samples the server during the acked
window (PREFIX.server.txt, collapsed stacks; `--native` adds C frames, such as the garbage
collector, but pauses the server to sample) and `--profile PREFIX` cProfiles the flushes
(PREFIX.BACKEND.prof).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import os
import random
import resource
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event, func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_fanout import (
    CLIENT_CPUS,
    ROOT,
    SERVER_CPUS,
    Wire,
    cpu_seconds,
    launch_showroom,
    pin,
    rss_kb,
    start_live_show,
    token,
)
from bench.flash_sale import (
    POSTGRES_ADMIN,
    PostgresProbe,
    cpu_busy,
    postgres_admin,
    stop_process,
)
from server.domain.loyalty import EntryKind, Reason
from server.realtime.watch import WatchClock
from server.services import shows, webhooks
from server.services.accrual import HOLD_SECONDS, Accrual
from server.store import models
from server.store.db import Database, create_engine
from server.store.migrate import upgrade

BEAT = '"watch:beat",{"playing":true,"visible":true,"session":"%s","active":false}]'
FLOOR = '"engagement:noop",{}]'  # an acked event the server refuses at once: the transport


# --- part 1: the viewer processes -----------------------------------------------------------


@dataclass
class Counts:
    sent: int = 0
    acks: int = 0  # beat answers
    expected: int = 0  # of those, `no_media` (every check ran)
    errors: int = 0  # answers with an error (in the floor window, all of them)
    dropped: int = 0  # connections the server closed


TAGS = {
    "acks": b'"credited":',
    "expected": b'"reason":"no_media"',
    "errors": b'"error":',
}


async def _read(wire: Wire, counts: Counts) -> None:
    """Count the answers straight off the byte stream (a tag can straddle two reads, so the
    end of each read is kept for the next); answer Engine.IO's pings."""
    keep = max(len(t) for t in TAGS.values()) - 1
    tail = b""
    try:
        while data := await wire.reader.read(1 << 16):
            if Wire.PING in data:
                wire.send("3")
            both = tail + data
            for name, tag in TAGS.items():
                n = both.count(tag) - tail.count(tag)
                if n:
                    setattr(counts, name, getattr(counts, name) + n)
            tail = both[-keep:]
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        counts.dropped += 1


async def worker(url: str, show_id: str, first: int, count: int, total: int, beat: float) -> None:
    """Join `count` viewers; then, on "beat", "quiet" (a beat without an ack) or "floor" from
    stdin, each sends that event every `beat` seconds at its own phase (viewer n of `total`
    at n/total of the period); "idle" stops; "report" prints the counts so far; "stop"
    ends."""
    counts = Counts()
    gate = asyncio.Semaphore(50)
    wires: list[tuple[float, Wire, str]] = []
    readers: list[asyncio.Task[None]] = []

    async def join(n: int) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    wire = await Wire.open(url, token(f"fan-{n:05d}"))
                    ack = await wire.call("join", {"show_id": show_id})
                    break
                except (RuntimeError, OSError, asyncio.IncompleteReadError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(0.5 * (attempt + 1))
            if not ack.get("ok"):
                raise RuntimeError(f"join refused: {ack}")
            wires.append((beat * n / total, wire, uuid.uuid4().hex))
            readers.append(asyncio.create_task(_read(wire, counts)))

    await asyncio.gather(*(join(n) for n in range(first, first + count)))
    wires.sort(key=lambda w: w[0])
    print("READY", flush=True)

    mode = "idle"

    async def send() -> None:
        """Every 10 ms, send what is due: one pass over the viewers per period."""
        period_start = time.monotonic()
        at = 0
        while True:
            await asyncio.sleep(0.01)
            elapsed = time.monotonic() - period_start
            while at < len(wires) and wires[at][0] <= elapsed:
                _, wire, session = wires[at]
                if mode == "quiet":  # socket.emit() without a callback: no ack id
                    wire.send("42/live,[" + BEAT % session)
                else:
                    body = BEAT % session if mode == "beat" else FLOOR
                    wire.send(f"42/live,{wire.next_id}[" + body)
                    wire.next_id += 1
                counts.sent += 1
                at += 1
            if elapsed >= beat:
                period_start += beat
                at = 0

    sender: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().strip():
        if line in ("beat", "quiet", "floor", "idle"):
            mode = line
            if sender is not None:
                sender.cancel()
                sender = None
            if mode != "idle":
                sender = asyncio.create_task(send())
        elif line == "report":
            report = {**counts.__dict__, "cpu_s": time.process_time()}
            print(json.dumps(report), flush=True)
        elif line == "stop":
            break
    if sender is not None:
        sender.cancel()
    for task in readers:
        task.cancel()
    for _, wire, _ in wires:
        wire.close()


# --- part 1: the server ---------------------------------------------------------------------


@dataclass
class Window:
    name: str
    seconds: float
    server_cpu_s: float
    sent: int
    acks: int
    expected: int
    errors: int
    clients_cpu_s: float
    client_core_busy: float

    @property
    def share(self) -> float:
        """The server's CPU in this window, as a share of one core."""
        return self.server_cpu_s / self.seconds

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


@dataclass
class Beats:
    sockets: int
    joined_s: float
    settled_s: float
    kb_per_socket: float
    windows: dict[str, Window] = field(default_factory=dict)

    def added(self, name: str) -> float:
        """CPU share this window adds over the idle baseline, at the measured socket count."""
        return self.windows[name].share - self.windows["idle"].share


class Clients:
    def __init__(self, procs: list[asyncio.subprocess.Process]) -> None:
        self.procs = procs

    async def say(self, line: str) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{line}\n".encode())
            await proc.stdin.drain()

    async def report(self) -> dict[str, float]:
        await self.say("report")
        total: Counter[str] = Counter()
        for proc in self.procs:
            assert proc.stdout is not None
            total.update(json.loads(await asyncio.wait_for(proc.stdout.readline(), 60)))
        return dict(total)


async def window(name: str, pid: int, clients: Clients, seconds: float) -> Window:
    before, busy_before = await clients.report(), cpu_busy()
    cpu_before, began = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    cpu_after, took = cpu_seconds(pid), time.monotonic() - began
    after, busy_after = await clients.report(), cpu_busy()
    client_core = max(
        (busy_after[c][0] - busy_before[c][0]) / max(busy_after[c][1] - busy_before[c][1], 1)
        for c in CLIENT_CPUS
    )
    w = Window(
        name,
        took,
        cpu_after - cpu_before,
        *(int(after[k] - before[k]) for k in ("sent", "acks", "expected", "errors")),
        clients_cpu_s=after["cpu_s"] - before["cpu_s"],
        client_core_busy=client_core,
    )
    print(
        f"[beats] {name:5} {w.seconds:.1f} s: server {100 * w.share:.2f}% of a core, "
        f"{w.rate:.0f} events/s sent, {w.acks / w.seconds:.0f} beat answers/s "
        f"({w.expected} no_media, {w.errors} errors); clients {w.clients_cpu_s:.1f} CPU-s, "
        f"client core {100 * client_core:.0f}% busy",
        flush=True,
    )
    if client_core > 0.9 and CLIENT_CPUS != SERVER_CPUS:
        print(
            "[beats]   WARNING: the client core was over 90% busy: beats may have been late",
            flush=True,
        )
    return w


async def settle(pid: int, *, below: float = 0.35, step: float = 2.0, limit: float = 300) -> float:
    """Wait until the server is quiet: one engagement flush interval at least (its writer
    stores the joins), then two `step`-second readings under `below` of a core in a row (an
    idle server with 10,000 sockets uses 10-20%). Seconds it took."""
    began, quiet = time.monotonic(), 0
    await asyncio.sleep(6.0)
    while time.monotonic() - began < limit:
        before = cpu_seconds(pid)
        await asyncio.sleep(step)
        quiet = quiet + 1 if (cpu_seconds(pid) - before) / step < below else 0
        if quiet >= 2:
            break
    return time.monotonic() - began


async def measure_beats(work: Path, args: argparse.Namespace) -> Beats:
    process, url, admin = await launch_showroom(work, {})
    procs: list[asyncio.subprocess.Process] = []
    spy = None
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            show_id = await start_live_show(http, url, "Engagement bench")
        pid = process.pid
        await asyncio.sleep(1.0)
        rss_before = rss_kb(pid)
        per = -(-args.sockets // args.clients)
        started = time.monotonic()
        for w in range(args.clients):
            first, count = w * per, min(per, args.sockets - w * per)
            if count <= 0:
                break
            procs.append(
                await asyncio.create_subprocess_exec(
                    *(sys.executable, __file__, "--worker", url, show_id),
                    *(str(first), str(count), str(args.sockets), str(args.beat_seconds)),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=ROOT,
                    preexec_fn=pin(CLIENT_CPUS),
                )
            )
        for proc in procs:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 900)
            if line.strip() != b"READY":
                raise RuntimeError(f"a viewer process failed to join its viewers: {line!r}")
        joined = time.monotonic() - started
        print(f"[beats] {args.sockets} viewers joined in {joined:.1f} s", flush=True)
        settled = await settle(pid)
        kb = (rss_kb(pid) - rss_before) / args.sockets
        print(
            f"[beats] the server was quiet {settled:.1f} s later; its memory grew "
            f"{kb:.1f} KB per viewer",
            flush=True,
        )
        clients = Clients(procs)
        result = Beats(args.sockets, joined, settled, kb)
        result.windows["idle"] = await window("idle", pid, clients, args.seconds)
        await clients.say("beat")
        await asyncio.sleep(args.beat_seconds)  # every viewer has beaten once: steady state
        if args.py_spy:
            spy = await asyncio.create_subprocess_exec(
                *(str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(pid)),
                *("-d", str(int(args.seconds)), "-f", "raw", "-r", "100"),
                *(("--native",) if args.native else ("--nonblocking",)),
                *("-o", f"{args.py_spy}.server.txt"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        result.windows["beat"] = await window("beat", pid, clients, args.seconds)
        if spy is not None:
            await spy.wait()
        await clients.say("quiet")
        await asyncio.sleep(2.0)
        result.windows["quiet"] = await window("quiet", pid, clients, args.seconds)
        if args.floor:
            await clients.say("floor")
            await asyncio.sleep(2.0)
            result.windows["floor"] = await window("floor", pid, clients, args.seconds)
        await clients.say("idle")
        await asyncio.sleep(2.0)
        result.windows["idle2"] = await window("idle2", pid, clients, args.seconds)
        # The baseline is both idle windows, before and after the load.
        a, b = result.windows["idle"], result.windows.pop("idle2")
        result.windows["idle"] = Window(
            "idle",
            a.seconds + b.seconds,
            a.server_cpu_s + b.server_cpu_s,
            a.sent + b.sent,
            a.acks + b.acks,
            a.expected + b.expected,
            a.errors + b.errors,
            a.clients_cpu_s + b.clients_cpu_s,
            max(a.client_core_busy, b.client_core_busy),
        )
        beat = result.windows["beat"]
        if beat.acks < 0.95 * beat.sent or beat.expected < 0.95 * beat.acks:
            print(
                f"[beats] WARNING: {beat.sent} beats sent, {beat.acks} answered, "
                f"{beat.expected} of them no_media",
                flush=True,
            )
        await clients.say("stop")
        return result
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                if proc.returncode is None and proc.stdin is not None:
                    proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await stop_process(process)


# --- part 2 and 3: the accrual, in process ---------------------------------------------------


class Audience:
    """What N watching members do, one flush interval after another, on a simulated clock
    that starts at `start`: a list of accrual calls per interval."""

    def __init__(self, args: argparse.Namespace, start: float) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.start = start
        n = args.viewers
        self.members = [f"fan-{i:05d}" for i in range(n)]
        self.viewers = [f"viewer:{m}" for m in self.members]
        # Watched before the measured flushes: up to one block, so that block boundaries
        # fall evenly.
        self.before = [self.rng.uniform(0, HOLD_SECONDS) for _ in range(n)]

    def opening(self) -> list[tuple[str, tuple[Any, ...]]]:
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for i, viewer in enumerate(self.viewers):
            member = self.members[i]
            calls.append(("joined", (viewer, member, None)))
            calls.append(("watched", (viewer, member, self.start - self.before[i], self.start)))
        return calls

    def interval(self, k: int) -> list[tuple[str, tuple[Any, ...]]]:
        """The chat, reaction and question calls of flush interval k (0-based), in the order
        they would arrive (watching is credited by the watch clock's sweep)."""
        a, rng = self.args, self.rng
        end = self.start + (k + 1) * a.flush_seconds
        calls: list[tuple[float, str, tuple[Any, ...]]] = []
        base = end - a.flush_seconds

        def some(rate: float) -> list[tuple[float, int]]:
            times = int(rate * a.flush_seconds + rng.random())  # the fraction, on average
            return [
                (base + rng.random() * a.flush_seconds, rng.randrange(a.viewers))
                for _ in range(times)
            ]

        for at, i in some(a.chat_rate):
            calls.append((at, "chatted", (self.viewers[i], self.members[i])))
        for at, i in some(a.react_rate):
            calls.append((at, "reacted", (self.viewers[i], self.members[i], rng.randint(1, 10))))
        for at, i in some(a.question_rate):
            calls.append((at, "asked", (self.viewers[i], self.members[i])))
        calls.sort(key=lambda c: c[0])
        return [(name, args) for _, name, args in calls]


def apply(accrual: Accrual, show_id: str, calls: list[tuple[str, tuple[Any, ...]]]) -> float:
    """Make the calls as the live room does (the show id parsed per call); CPU seconds."""
    methods = {
        name: getattr(accrual, name)
        for name in ("joined", "watched", "chatted", "reacted", "asked")
    }
    began = time.process_time()
    for name, args in calls:
        methods[name](uuid.UUID(show_id), *args)
    return time.process_time() - began


@dataclass
class Flushes:
    backend: str
    opening_cpu_s: float
    opening_wall_s: float
    count: int
    seconds: float  # simulated show time of the measured flushes
    cpu_s: list[float]
    loop_cpu_s: list[float]  # of cpu_s, the event loop's thread (the rest: aiosqlite's)
    wall_s: list[float]
    feed_cpu_s: float
    ledger: Counter[str]  # entries written, by reason
    rows_written: int
    statements: Counter[str]
    statement_rows: Counter[str]  # rows (parameter sets) the statements carried
    calls: int
    postgres_cpu_s: float = 0.0

    @property
    def share(self) -> float:
        return sum(self.cpu_s) / self.seconds

    @property
    def ledger_rows(self) -> int:
        return sum(self.ledger.values())

    @property
    def feed_share(self) -> float:
        return self.feed_cpu_s / self.seconds


async def scratch_database(backend: str, work: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{work / 'flush.db'}", None
    name = f"showroom_engagement_{os.getpid()}_{secrets.token_hex(3)}"
    await postgres_admin(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}", name


async def add_members(db: Database, members: list[str], history: int) -> None:
    """Returning members: their member and balance rows, and `history` earlier entries each
    inside the tier window (bulk, untimed: none of this is the show's work)."""
    now = models.utcnow()
    ids = {m: uuid.uuid4() for m in members}
    entries = [
        {
            "id": uuid.uuid4(),
            "member_id": ids[m],
            "kind": EntryKind.EARN.value,
            "reason": Reason.WATCH.value,
            "points": 1,
            "balance_after": n + 1,
            "idempotency_key": f"history:{n}",
            "created_at": now - timedelta(days=1 + n % 300),
        }
        for m in members
        for n in range(history)
    ]
    tables: list[tuple[Any, list[dict[str, Any]]]] = [
        (models.Member, [{"id": i, "external_id": m, "display_name": m} for m, i in ids.items()]),
        (
            models.MemberPoints,
            [
                {
                    "member_id": i,
                    "balance": history,
                    "tier": "Member",
                    "rolling_points": history,
                    "badges": [],
                    "streak": 0,
                    "shows_attended": 1 if history else 0,
                    "updated_at": now,
                }
                for i in ids.values()
            ],
        ),
        (models.LedgerEntry, entries),
    ]
    async with db.transaction() as session:
        for table, rows in tables:
            for at in range(0, len(rows), 5_000):
                await session.execute(insert(table), rows[at : at + 5_000])


async def measure_flushes(backend: str, work: Path, args: argparse.Namespace) -> Flushes:
    url, scratch = await scratch_database(backend, work)
    probe = PostgresProbe(scratch) if scratch else None
    db = None
    try:
        await asyncio.to_thread(upgrade, url)
        db = Database(create_engine(url))
        record = await shows.do_create_show(
            db,
            {"title": "Engagement bench", "scheduled_start": models.utcnow()},
            default_locale="zh-HK",
            default_currency="HKD",
        )
        await shows.do_transition_show(db, record.id, shows.ShowAction.START)
        show_id = str(record.id)
        await webhooks.do_create_endpoint(
            db,
            url="https://hooks.example.com/showroom",
            event_types=["engagement.points_earned", "member.tier_changed"],
        )
        accrual = Accrual(lambda: db)
        accrual.audience = lambda: {show_id: args.viewers}
        audience = Audience(args, time.time())
        # The show's time is simulated: the accrual and the watch clock read this clock.
        sim = [audience.start]
        accrual.clock = lambda: sim[0]
        watch = WatchClock(accrual, lambda _show, _session: True, clock=lambda: sim[0])

        async def ledger_count() -> Counter[str]:
            """Ledger entries by reason."""
            assert db is not None
            async with db.read() as session:
                found = await session.execute(
                    select(models.LedgerEntry.reason, func.count()).group_by(
                        models.LedgerEntry.reason
                    )
                )
                return Counter({reason: n for reason, n in found})

        await add_members(db, audience.members, args.history)
        # The opening: everyone joins (attendance, first-join bonus) with some watching.
        apply(accrual, show_id, audience.opening())
        for i, viewer in enumerate(audience.viewers):  # each player reports it is playing
            watch.beat(
                f"sid-{i}",
                show_id,
                viewer,
                audience.members[i],
                playing=True,
                visible=True,
                session=f"whep-{i}",
                active=True,
            )
        began, wall = time.process_time(), time.perf_counter()
        await accrual.flush()
        opening_cpu, opening_wall = time.process_time() - began, time.perf_counter() - wall
        print(
            f"[{backend}] opening flush ({args.viewers} joins): {opening_cpu:.2f} CPU-s, "
            f"{opening_wall:.2f} s",
            flush=True,
        )
        statements: Counter[str] = Counter()
        rows: Counter[str] = Counter()

        def count(
            _conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, many: bool
        ) -> None:
            verb = statement.lstrip().split(None, 1)[0].upper()
            statements[verb] += 1
            rows[verb] += len(params) if many else 1

        event.listen(db.engine.sync_engine, "before_cursor_execute", count)
        ledger_before, rows_before = await ledger_count(), accrual.rows_written
        pg_before = await _postgres_cpu(probe)
        flushes = round(args.sim_seconds / args.flush_seconds)
        cpu, loop_cpu, walls, feed, calls = [], [], [], 0.0, 0
        profiler = cProfile.Profile() if args.profile else None
        for k in range(flushes):
            batch = audience.interval(k)
            calls += len(batch)
            feed += apply(accrual, show_id, batch)
            sim[0] = audience.start + (k + 1) * args.flush_seconds
            began = time.process_time()
            watch.sweep()  # as the server's flush does first: every watching viewer credited
            feed += time.process_time() - began
            if profiler is not None:
                profiler.enable()
            began, wall, mine = time.process_time(), time.perf_counter(), time.thread_time()
            await accrual.flush(hold=True)
            cpu.append(time.process_time() - began)
            loop_cpu.append(time.thread_time() - mine)
            walls.append(time.perf_counter() - wall)
            if profiler is not None:
                profiler.disable()
        pg_cpu = await _postgres_cpu(probe) - pg_before
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
        # What a restarted process would read back: the last checkpoint (not measured in
        # the share; it happens once, at start-up).
        async with db.read() as session:
            held = await session.scalar(select(func.sum(func.length(models.WatchCheckpoint.held))))
        began = time.process_time()
        restored = await Accrual(lambda: db).restore()
        restore_cpu = time.process_time() - began
        print(
            f"[{backend}] checkpoint: {held or 0} characters, {len(accrual.pending)} viewers "
            f"held; a restarted process reads back {restored} in {1000 * restore_cpu:.0f} ms CPU",
            flush=True,
        )
        if profiler is not None:
            profiler.dump_stats(f"{args.profile}.{backend}.prof")
        result = Flushes(
            backend,
            opening_cpu,
            opening_wall,
            flushes,
            flushes * args.flush_seconds,
            cpu,
            loop_cpu,
            walls,
            feed,
            await ledger_count() - ledger_before,
            accrual.rows_written - rows_before,
            statements,
            rows,
            calls,
            pg_cpu,
        )
        per, n = result.cpu_s, flushes
        done = ", ".join(
            f"{verb} {statements[verb] / n:.0f}"
            + (f" ({rows[verb] / n:.0f} rows)" if verb in ("INSERT", "UPDATE", "DELETE") else "")
            for verb, _ in statements.most_common()
        )
        print(
            f"[{backend}] {n} flushes over {result.seconds:.0f} simulated s: "
            f"{1000 * sum(per) / n:.0f} ms CPU per flush (min {1000 * min(per):.0f}, max "
            f"{1000 * max(per):.0f}; the event loop's thread {1000 * sum(loop_cpu) / n:.0f}), "
            f"{1000 * sum(walls) / n:.0f} ms wall: {100 * result.share:.2f}% of a core. "
            f"Ledger: {result.ledger_rows / result.seconds:.0f} rows/s "
            f"({result.ledger_rows / n:.0f} per flush: "
            + ", ".join(f"{k} {v / result.seconds:.1f}/s" for k, v in result.ledger.most_common())
            + f"); rows_written {result.rows_written / n:.0f}"
            f" per flush; statements per flush: {done}. In-memory accrual calls: "
            f"{result.calls / result.seconds:.0f}/s, {1e6 * feed / max(calls, 1):.1f} us each"
            + (
                f". PostgreSQL's backends: {100 * pg_cpu / result.seconds:.2f}% of a core"
                if probe
                else ""
            ),
            flush=True,
        )
        return result
    finally:
        if db is not None:
            await db.dispose()
        if scratch is not None:
            await postgres_admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


async def _postgres_cpu(probe: PostgresProbe | None) -> float:
    if probe is None:
        return 0.0
    total = 0.0
    for pid in await probe.pids():
        with contextlib.suppress(OSError):
            total += cpu_seconds(pid)
    return total


# --- main -------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        if backend not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgresql")
    args.sockets = args.sockets or args.viewers
    work = Path(tempfile.mkdtemp(prefix="showroom-engagement-bench-"))
    flushes: dict[str, Flushes] = {}
    try:
        beats = None
        if not args.skip_beats:
            os.sched_setaffinity(0, CLIENT_CPUS)
            (work / "server").mkdir()
            beats = await measure_beats(work / "server", args)
        # The flushes run here, on the server's core, as they would in the server.
        os.sched_setaffinity(0, SERVER_CPUS)
        for backend in backends:
            (work / backend).mkdir()
            flushes[backend] = await measure_flushes(backend, work / backend, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def per_event(name: str) -> float:
        """Server CPU-seconds one event of this window adds over the idle baseline."""
        assert beats is not None
        w, idle = beats.windows[name], beats.windows["idle"]
        return (w.server_cpu_s - idle.share * w.seconds) / max(w.sent, 1)

    # The players' reports arrive at viewers / report_seconds per second; each costs what
    # one cost in the measuring windows (which send them far faster, to be measurable).
    reports_s = args.viewers / args.report_seconds
    report_pct = 100 * per_event("quiet") * reports_s if beats else 0.0
    acked_pct = 100 * per_event("beat") * reports_s if beats else 0.0
    floor_pct = 100 * per_event("floor") * reports_s if beats and "floor" in beats.windows else None
    worst = max(flushes.values(), key=lambda f: f.share) if flushes else None
    flush_pct = 100 * worst.share if worst else 0.0
    feed_pct = 100 * max(f.feed_share for f in flushes.values()) if flushes else 0.0
    total = report_pct + feed_pct + flush_pct
    ledger_s = worst.ledger_rows / worst.seconds if worst else 0.0
    print()
    if beats:
        idle = beats.windows["idle"]
        b, q = beats.windows["beat"], beats.windows["quiet"]
        print(
            f"state reports: {100 * idle.share:.2f}% of a core idle; measured at "
            f"{q.rate:.0f}/s without acks: +{100 * beats.added('quiet'):.2f}%, "
            f"{1e6 * per_event('quiet'):.0f} us each; with acks at {b.rate:.0f}/s: "
            f"+{100 * beats.added('beat'):.2f}%, {1e6 * per_event('beat'):.0f} us each"
            + (
                f"; an acked no-op event: {1e6 * per_event('floor'):.0f} us"
                if floor_pct is not None
                else ""
            )
            + f". At {reports_s:.0f} reports/s (one per viewer every {args.report_seconds:g} s):"
            f" {report_pct:.2f}% of a core ({acked_pct:.2f}% if acked)"
        )
    for f in flushes.values():
        print(
            f"flush {f.backend}: {100 * f.share:.2f}% of a core; sweep and in-memory accrual "
            f"calls {100 * f.feed_share:.3f}%; ledger {f.ledger_rows / f.seconds:.0f} rows/s"
        )
    print(
        f"total: {report_pct:.2f} (reports) + {feed_pct:.3f} (sweep, in-memory) + "
        f"{flush_pct:.2f} (flush, {worst.backend if worst else 'n/a'}) = {total:.2f}% of a "
        f"core (goal: under 3%)"
    )
    parts = [
        f"RESULT viewers={args.viewers} cpu_share_pct={total:.2f} ledger_rows_s={ledger_s:.0f}",
        f"report_pct={report_pct:.2f}",
        f"report_acked_pct={acked_pct:.2f}",
        f"report_us={1e6 * per_event('quiet'):.0f}" if beats else "report_us=0",
        f"sweep_calls_pct={feed_pct:.3f}",
        f"flush_pct={flush_pct:.2f}",
    ]
    parts += [f"flush_{name}_pct={100 * f.share:.2f}" for name, f in flushes.items()]
    if floor_pct is not None:
        parts.append(f"noop_event_pct={floor_pct:.2f}")
    if beats:
        parts.append(f"sockets={beats.sockets}")
    print(" ".join(parts), flush=True)
    return 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--viewers", type=int, default=10_000, help="viewers watching the show")
    p.add_argument(
        "--sockets", type=int, default=0, help="connect this many (default --viewers); scaled"
    )
    p.add_argument("--seconds", type=float, default=20.0, help="each server window (part 1)")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    p.add_argument("--clients", type=int, default=4, help="viewer client processes")
    p.add_argument(
        "--report-seconds",
        type=float,
        default=180.0,
        help="a player's average time between state reports",
    )
    p.add_argument(
        "--beat-seconds", type=float, default=10.0, help="each viewer's period while measuring"
    )
    p.add_argument("--flush-seconds", type=float, default=5.0, help="the accrual's interval")
    p.add_argument(
        "--sim-seconds", type=float, default=HOLD_SECONDS, help="simulated show time flushed"
    )
    p.add_argument("--chat-rate", type=float, default=50.0, help="chat messages/s in the show")
    p.add_argument("--react-rate", type=float, default=100.0, help="reaction events/s")
    p.add_argument("--question-rate", type=float, default=0.5, help="questions/s")
    p.add_argument("--history", type=int, default=0, help="earlier entries per member")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--floor", action="store_true", help="also a window of acked no-op events (transport)"
    )
    p.add_argument("--skip-beats", action="store_true", help="part 2 and 3 only")
    p.add_argument("--py-spy", default=None, help="py-spy the server's beat window (PREFIX)")
    p.add_argument("--native", action="store_true", help="py-spy C frames too (pauses it)")
    p.add_argument("--profile", default=None, help="cProfile the flushes to PREFIX.BACKEND.prof")
    return p.parse_args()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, show_id, first, count, total, beat = sys.argv[2:8]
        asyncio.run(worker(url, show_id, int(first), int(count), int(total), float(beat)))
    else:
        sys.exit(asyncio.run(main(parse())))
