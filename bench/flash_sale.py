"""Flash-sale checkout: buyers pressing "buy" on a pinned flash-price product at once.
Measures `POST /api/v1/checkouts` on the real server (`showroom serve`), once on SQLite and
once on PostgreSQL (a scratch database created for the run, migrated, then dropped).

    .venv/bin/python bench/flash_sale.py [--seconds 15] [--buyers 2000] [--concurrency 64]
                                         [--backends sqlite,postgresql]

Per backend, one server process with a live show, a product with plenty of stock pinned in
it at a flash price, and `--buyers` viewer identities (JWTs signed with the viewer secret):

1. Throughput: `--concurrency` keep-alive connections, each checking out one after another
   (closed loop) for `--seconds`, every order for 1 unit of the flash product with the
   show's id and its own Idempotency-Key (as docs/api.md asks), buyers taken in turn.
   Orders per second, and p50/p99 from send to the whole answer, of the 201s.
2. Paced: checkouts offered at `--rate` per second (default 1000, the goal) whatever the
   answers do (open loop, same connections; a checkout waiting for a free connection
   counts that wait in its latency) for `--rate-seconds`. With 64 connections in a closed
   loop, latency is just connections / throughput (Little's law), so this is the phase
   that says whether the goal (1000 orders/s with p99 < 50 ms) holds. If over a second of
   orders queues up, the rate is not sustained: the phase stops, the unsent orders are
   dropped, and it runs again at half the throughput phase's rate (latency under load the
   server can carry).
3. Baseline, on the same server, connections and client: the buyer reading back one of
   their orders (`GET /api/v1/orders/{id}`: the same HTTP stack, JWT check and contract
   middleware, and one read transaction instead of checkout's write), and `GET /healthz`
   (the HTTP stack alone). How far checkout is from these floors is the cost of the write.
4. Contention: a second live show, a product with `--units` units pinned at a flash price,
   and `--buyers` distinct buyers (one in four asking for 2 units) all sent at once over
   the same connections. 201s and 409s are counted; the final stock and the show's order
   count are read back through the API. oversold = max(0, units sold - units) + any
   negative stock, and must be 0. For the throughput product, the units the 201s sold must
   equal the stock that left it.

The server runs on CPU 0 (launch_showroom pins it) and this client on the others. PostgreSQL
itself runs unpinned, so on the PostgreSQL run it takes CPU from both; its backends' CPU
time is printed. Final line:

    RESULT sqlite_orders_s=... pg_orders_s=... p99_ms=... oversold=0

where p99_ms is the worse of the two backends' throughput-phase p99 (each backend's figures
are printed on the lines before it). `--profile PREFIX` runs the server under cProfile
(PREFIX.BACKEND.prof); `--py-spy PREFIX` samples it with py-spy (`.venv/bin/pip install
py-spy`; it is not a dependency) during the throughput phase, without pausing it, into
PREFIX.BACKEND.txt (collapsed stacks). The exit status is 1 if anything was oversold, an
answer was unexpected (a 5xx, say) or the throughput product's stock does not balance.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import secrets
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chat_fanout import (
    CLIENT_CPUS,
    SERVER_CPUS,
    cpu_seconds,
    launch_showroom,
    start_live_show,
    token,
)

CURRENCY = "HKD"
PRICE, FLASH_PRICE = 19900, 9900
THROUGHPUT_STOCK = 5_000_000
POSTGRES_ADMIN = os.environ.get(
    "SHOWROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


# --- a minimal HTTP/1.1 client -------------------------------------------------------------


class Conn:
    """One keep-alive HTTP/1.1 connection spoken by hand over asyncio streams: a fraction of
    aiohttp's client cost per request, so the client core is not what the figures measure."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port, limit=2**20)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes, bytes]:
        """(status, head, body) of the answer to one request."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            size = int(head[at + 17 : lower.index(b"\r\n", at + 2)])
            body = await self.reader.readexactly(size)
        elif b"\r\ntransfer-encoding: chunked" in lower:
            chunks = []
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                chunks.append((await self.reader.readexactly(size + 2))[:-2])
            await self.reader.readuntil(b"\r\n")
            body = b"".join(chunks)
        else:
            raise RuntimeError(f"an answer without a length: {head[:200]!r}")
        return int(head[9:12]), head, body

    def close(self) -> None:
        self.writer.close()


def location(head: bytes) -> str:
    at = head.lower().index(b"\r\nlocation:") + 11
    return head[at : head.index(b"\r\n", at)].strip().decode()


class Requests:
    """Request bytes for one server: checkouts by buyer n, reads by buyer n."""

    def __init__(self, host: str, tokens: list[str]) -> None:
        self.host, self.tokens = host, tokens
        self.run = secrets.token_hex(4)  # Idempotency-Keys unique to this run

    def checkout(self, n: int, sku: str, quantity: int, buyer: int, show_id: str) -> bytes:
        body = json.dumps(
            {"show_id": show_id, "items": [{"sku": sku, "quantity": quantity}]}
        ).encode()
        return (
            f"POST /api/v1/checkouts HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Authorization: Bearer {self.tokens[buyer % len(self.tokens)]}\r\n"
            f"Idempotency-Key: flash-{self.run}-{n}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    def get(self, path: str, buyer: int | None = None) -> bytes:
        auth = "" if buyer is None else f"Authorization: Bearer {self.tokens[buyer]}\r\n"
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{auth}\r\n".encode()


# --- load --------------------------------------------------------------------------------


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


@dataclass
class Tally:
    """What one phase saw: answers by status, latency of the expected ones, and the CPU the
    server, PostgreSQL's backends, this client and each core spent meanwhile."""

    expected: int
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    server_cpu_s: float = 0.0
    postgres_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    busy: dict[int, float] = field(default_factory=dict)
    sustained: bool = True
    offered: float = 0.0  # open loop: the rate offered

    @property
    def ok(self) -> int:
        return self.statuses[self.expected]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        lat = sorted(self.latencies_ms)
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    @property
    def others(self) -> dict[int, int]:
        return {s: n for s, n in self.statuses.items() if s != self.expected}


class Meter:
    """CPU of the server, PostgreSQL's backends for our database and this client, and each
    core's busy share, between start() and stop()."""

    def __init__(self, server_pid: int, postgres: PostgresProbe | None) -> None:
        self.server_pid, self.postgres = server_pid, postgres

    async def start(self) -> None:
        self.pg_before = _cpu_of(await self.postgres.pids()) if self.postgres else {}
        self.server_before = cpu_seconds(self.server_pid)
        self.client_before = time.process_time()
        self.busy_before = cpu_busy()
        self.began = time.perf_counter()

    async def stop(self, tally: Tally) -> None:
        tally.seconds = time.perf_counter() - self.began
        busy = cpu_busy()
        tally.busy = {
            cpu: (busy[cpu][0] - self.busy_before[cpu][0])
            / max(busy[cpu][1] - self.busy_before[cpu][1], 1)
            for cpu in busy
        }
        tally.client_cpu_s = time.process_time() - self.client_before
        tally.server_cpu_s = cpu_seconds(self.server_pid) - self.server_before
        if self.postgres is not None:
            # Connections the pool opened meanwhile count whole; ones it closed are missed.
            after = _cpu_of(await self.postgres.pids())
            tally.postgres_cpu_s = sum(s - self.pg_before.get(pid, 0.0) for pid, s in after.items())


def _cpu_of(pids: list[int]) -> dict[int, float]:
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = cpu_seconds(pid)
    return found


async def closed_loop(
    conns: list[Conn],
    make: Callable[[int], bytes],
    seconds: float,
    expected: int,
    meter: Meter,
    seen: Callable[[int, int, bytes], None] | None = None,
) -> Tally:
    """Every connection sends its next request as soon as the last is answered."""
    tally = Tally(expected)
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def drive(conn: Conn) -> None:
        while time.perf_counter() < deadline:
            n = next(counter)
            raw = make(n)
            sent = time.perf_counter()
            status, head, _ = await conn.request(raw)
            tally.statuses[status] += 1
            if status == expected:
                tally.latencies_ms.append((time.perf_counter() - sent) * 1000)
                if seen is not None:
                    seen(n, status, head)

    await meter.start()
    await asyncio.gather(*(drive(c) for c in conns))
    await meter.stop(tally)
    return tally


async def open_loop(
    conns: list[Conn],
    make: Callable[[int], bytes],
    rate: float,
    seconds: float,
    expected: int,
    meter: Meter,
    seen: Callable[[int, int, bytes], None] | None = None,
) -> Tally:
    """Requests offered at `rate` per second whatever the answers do; each one's latency
    counts from when it was due, so time spent waiting for a free connection counts."""
    tally = Tally(expected)
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    async def drive(conn: Conn) -> None:
        while (item := await queue.get()) is not None:
            n, due = item
            status, head, _ = await conn.request(make(n))
            tally.statuses[status] += 1
            if status == expected:
                tally.latencies_ms.append((time.perf_counter() - due) * 1000)
                if seen is not None:
                    seen(n, status, head)

    await meter.start()
    drivers = [asyncio.create_task(drive(c)) for c in conns]
    begin = time.perf_counter()
    for n in range(int(rate * seconds)):
        due = begin + n / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        if queue.qsize() > rate:  # over a second of orders waiting: not sustained
            tally.sustained = False
            while not queue.empty():  # the ones not sent yet are dropped, not drained
                queue.get_nowait()
            break
        queue.put_nowait((n, due))
    for _ in conns:
        queue.put_nowait(None)
    await asyncio.gather(*drivers)
    await meter.stop(tally)
    return tally


async def all_at_once(
    conns: list[Conn], requests: list[bytes], meter: Meter
) -> tuple[Tally, list[tuple[int, int]]]:
    """Every request queued at once and sent over the connections as they free up;
    (tally, [(request index, status)])."""
    tally = Tally(201)
    queue = list(enumerate(requests))
    queue.reverse()
    answers: list[tuple[int, int]] = []

    async def drive(conn: Conn) -> None:
        while queue:
            n, raw = queue.pop()
            sent = time.perf_counter()
            status, _, _ = await conn.request(raw)
            tally.statuses[status] += 1
            answers.append((n, status))
            if status == 201:
                tally.latencies_ms.append((time.perf_counter() - sent) * 1000)

    await meter.start()
    await asyncio.gather(*(drive(c) for c in conns))
    await meter.stop(tally)
    return tally, answers


# --- one backend ---------------------------------------------------------------------------


class PostgresProbe:
    """The scratch database's backends (their pids, for their CPU time)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def pids(self) -> list[int]:
        conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
        try:
            rows = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", self.name
            )
        finally:
            await conn.close()
        return [r["pid"] for r in rows]


async def postgres_admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def stop_process(process: asyncio.subprocess.Process, seconds: float = 30) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), seconds)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class Figures:
    backend: str
    throughput: Tally
    paced: list[Tally]  # open loop: at --rate, then at half the throughput if need be
    floor: Tally
    healthz: Tally
    contention: Tally
    units: int
    sold: int  # units the contention phase's 201s took
    final_stock: int
    listed_orders: int  # the contention show's orders, as the admin API lists them
    oversold: int
    throughput_mismatch: int  # throughput product: units the 201s sold - stock that left it

    @property
    def errors(self) -> int:
        """Answers no phase should get: anything but 201 to a checkout with stock, 200 to a
        read, or 201/409 in the race."""
        phases = [self.throughput, *self.paced, self.floor, self.healthz]
        wrong = sum(n for t in phases for n in t.others.values())
        return wrong + sum(n for s, n in self.contention.others.items() if s != 409)

    def summary(self) -> str:
        t = self.throughput
        paced = "".join(
            f"paced_{p.offered:.0f}_orders_s={p.rate:.0f} paced_{p.offered:.0f}_p50_ms="
            f"{p.pct(0.5):.1f} paced_{p.offered:.0f}_p99_ms={p.pct(0.99):.1f} "
            f"paced_{p.offered:.0f}_sustained={int(p.sustained)} "
            for p in self.paced
        )
        return (
            f"{self.backend} orders_s={t.rate:.0f} p50_ms={t.pct(0.5):.1f} "
            f"p99_ms={t.pct(0.99):.1f} server_cpu_ms_per_order="
            f"{1000 * t.server_cpu_s / max(t.ok, 1):.2f} "
            + paced
            + f"floor_get_order_s={self.floor.rate:.0f} healthz_s={self.healthz.rate:.0f} "
            f"checkout_vs_floor={t.rate / max(self.floor.rate, 1e-9):.2f} "
            f"contention_201={self.contention.statuses[201]} "
            f"contention_409={self.contention.statuses[409]} "
            f"sold={self.sold}/{self.units} final_stock={self.final_stock} "
            f"oversold={self.oversold} errors={self.errors}"
        )


def describe(backend: str, name: str, t: Tally, what: str) -> None:
    cores = " ".join(f"cpu{c}={b * 100:.0f}%" for c, b in sorted(t.busy.items()))
    pg = f", PostgreSQL {t.postgres_cpu_s / t.seconds * 100:.0f}%" if t.postgres_cpu_s else ""
    print(
        f"[{backend}] {name}: {t.ok} {what} in {t.seconds:.1f} s = {t.rate:.0f}/s, "
        f"p50 {t.pct(0.5):.1f} ms, p99 {t.pct(0.99):.1f} ms"
        + (f", other answers {dict(t.others)}" if t.others else "")
        + f"; CPU: server {t.server_cpu_s / t.seconds * 100:.0f}% of a core "
        f"({1000 * t.server_cpu_s / max(t.ok, 1):.2f} ms per {what[:-1]}){pg}, "
        f"client {t.client_cpu_s / t.seconds * 100:.0f}%; cores: {cores}",
        flush=True,
    )
    client = max((t.busy.get(c, 0.0) for c in CLIENT_CPUS), default=0.0)
    if client > 0.9 and CLIENT_CPUS != SERVER_CPUS:
        print(
            f"[{backend}]   WARNING: the client core was {client * 100:.0f}% busy: the figure "
            "may be the client's (or another process's) limit, not the server's",
            flush=True,
        )


async def run_backend(backend: str, work: Path, args: argparse.Namespace) -> Figures:
    database_url, probe, scratch = None, None, None
    if backend == "postgresql":
        scratch = f"showroom_flash_{os.getpid()}_{secrets.token_hex(3)}"
        await postgres_admin(f'CREATE DATABASE "{scratch}"')
        database_url = POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{scratch}"
        probe = PostgresProbe(scratch)
    profile = f"{args.profile}.{backend}.prof" if args.profile else None
    (work / backend).mkdir()
    conns: list[Conn] = []
    process = None
    try:
        process, url, admin = await launch_showroom(
            work / backend, {}, database_url=database_url, profile=profile
        )
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {admin}"}) as http:
            return await measure_backend(backend, process.pid, url, http, probe, conns, args)
    finally:
        for conn in conns:
            conn.close()
        if process is not None:
            await stop_process(process)
        if scratch is not None:
            await postgres_admin(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


async def make_product(
    http: aiohttp.ClientSession, url: str, show_id: str, sku: str, stock: int
) -> None:
    product = {
        "sku": sku,
        "title": {"en": f"Flash {sku}", "zh-HK": f"限時 {sku}"},
        "price": {"amount_minor": PRICE, "currency": CURRENCY},
        "stock": stock,
        "status": "active",
    }
    async with http.post(f"{url}/api/v1/products", json=product) as r:
        if r.status != 201:
            raise RuntimeError(f"could not create {sku}: {r.status} {await r.text()}")
    flash = {"sku": sku, "flash_price": {"amount_minor": FLASH_PRICE, "currency": CURRENCY}}
    async with http.post(f"{url}/api/v1/shows/{show_id}/pins", json=flash) as r:
        if r.status != 200:
            raise RuntimeError(f"could not pin {sku}: {r.status} {await r.text()}")


async def read_stock(http: aiohttp.ClientSession, url: str, sku: str) -> int:
    async with http.get(f"{url}/api/v1/products/{sku}") as r:
        stock: int = (await r.json())["stock"]
    return stock


async def measure_backend(
    backend: str,
    server_pid: int,
    url: str,
    http: aiohttp.ClientSession,
    probe: PostgresProbe | None,
    conns: list[Conn],
    args: argparse.Namespace,
) -> Figures:
    show_id = await start_live_show(http, url, "Flash sale bench")
    await make_product(http, url, show_id, "FLASH-1", THROUGHPUT_STOCK)
    # The first checkout is a 201 at the flash price (a sanity check of the setup).
    tokens = [token(f"buyer-{n}") for n in range(args.buyers)]
    host_port = url.split("//", 1)[1]
    host, port = host_port.split(":")
    req = Requests(host_port, tokens)
    conns.extend(
        await asyncio.gather(*(Conn.open(host, int(port)) for _ in range(args.concurrency)))
    )
    status, _, body = await conns[0].request(req.checkout(-1, "FLASH-1", 1, 0, show_id))
    order = json.loads(body)
    if status != 201 or order["lines"][0]["unit_price"]["amount_minor"] != FLASH_PRICE:
        raise RuntimeError(
            f"checkout did not answer 201 at the flash price: {status} {body[:300]!r}"
        )
    sold_throughput = 1
    mine: list[tuple[int, str]] = []  # (buyer, order path) for the floor's reads

    def keep(n: int, status: int, head: bytes) -> None:
        if len(mine) < 4096:
            mine.append((n % len(tokens), location(head)))

    def flash(base: int) -> Callable[[int], bytes]:
        # Request n: buyer n (in turn), its own Idempotency-Key.
        return lambda n: req.checkout(base + n, "FLASH-1", 1, n, show_id)

    meter = Meter(server_pid, probe)
    spy = None
    warm = await closed_loop(conns, flash(0), args.warmup, 201, meter)
    sold_throughput += warm.ok
    if args.py_spy:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        spy = await asyncio.create_subprocess_exec(
            *(py_spy, "record", "-p", str(server_pid), "-d", str(int(args.seconds))),
            *("--nonblocking", "-r", "100", "-f", "raw", "-o", f"{args.py_spy}.{backend}.txt"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    offset = 10_000_000  # idempotency keys distinct from the warm-up's
    throughput = await closed_loop(conns, flash(offset), args.seconds, 201, meter, keep)
    if spy is not None:
        await spy.wait()
    sold_throughput += throughput.ok
    describe(backend, f"checkout, {args.concurrency} connections", throughput, "orders")

    paced: list[Tally] = []  # open loop: at --rate, then at half the throughput if need be
    rates = [args.rate] if args.rate > 0 and args.rate_seconds > 0 else []
    while rates:
        rate = rates.pop(0)
        tally = await open_loop(
            conns, flash((2 + len(paced)) * offset), rate, args.rate_seconds, 201, meter
        )
        tally.offered = rate
        sold_throughput += tally.ok
        paced.append(tally)
        describe(
            backend,
            f"checkout offered at {rate:.0f}/s"
            + ("" if tally.sustained else " (NOT sustained: over 1 s of orders queued, stopped)"),
            tally,
            "orders",
        )
        if not tally.sustained and len(paced) == 1:
            rates.append(round(throughput.rate / 2))

    if not mine:
        raise RuntimeError(f"no checkout succeeded: {dict(throughput.statuses)}")

    def read_back(n: int) -> bytes:
        buyer, path = mine[n % len(mine)]
        return req.get(path, buyer)

    floor = await closed_loop(conns, read_back, args.floor_seconds, 200, meter)
    describe(backend, "baseline GET /api/v1/orders/{id}", floor, "reads")
    healthz = await closed_loop(
        conns, lambda n: req.get("/healthz"), args.floor_seconds, 200, meter
    )
    describe(backend, "baseline GET /healthz", healthz, "requests")

    # Contention: a fresh show and product, every buyer once, all at once.
    race_show = await start_live_show(http, url, "Flash sale race")
    await make_product(http, url, race_show, "RACE-1", args.units)
    quantities = [2 if n % 4 == 3 else 1 for n in range(args.buyers)]
    requests = [
        req.checkout(5 * offset + n, "RACE-1", quantities[n], n, race_show)
        for n in range(args.buyers)
    ]
    contention, answers = await all_at_once(conns, requests, meter)
    sold = sum(quantities[n] for n, status in answers if status == 201)
    final_stock = await read_stock(http, url, "RACE-1")
    async with http.get(f"{url}/api/v1/orders", params={"show_id": race_show, "limit": 1}) as r:
        listed = int((await r.json())["total"])
    oversold = max(0, sold - args.units) + max(0, -final_stock)
    if args.units - final_stock != sold or listed != contention.statuses[201]:
        print(
            f"[{backend}] WARNING: contention books do not balance: {args.units} units - "
            f"{final_stock} left != {sold} sold, or {listed} orders listed != "
            f"{contention.statuses[201]} 201s",
            flush=True,
        )
    print(
        f"[{backend}] contention: {args.buyers} buyers for {args.units} units: "
        f"{contention.statuses[201]} x 201, {contention.statuses[409]} x 409"
        + (f", other {dict(contention.others)}" if set(contention.others) - {409} else "")
        + f"; {sold} units sold, stock left {final_stock}, {listed} orders listed, "
        f"oversold {oversold}; took {contention.seconds:.2f} s",
        flush=True,
    )
    mismatch = sold_throughput - (THROUGHPUT_STOCK - await read_stock(http, url, "FLASH-1"))
    if mismatch:
        print(
            f"[{backend}] WARNING: the throughput product's 201s sold {sold_throughput} units "
            f"but its stock fell by {sold_throughput - mismatch}",
            flush=True,
        )
    return Figures(
        backend,
        throughput,
        paced,
        floor,
        healthz,
        contention,
        args.units,
        sold,
        final_stock,
        listed,
        oversold,
        mismatch,
    )


# --- main -----------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    os.sched_setaffinity(0, CLIENT_CPUS)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in backends:
        if backend not in ("sqlite", "postgresql"):
            raise SystemExit(f"unknown backend {backend!r}: use sqlite and/or postgresql")
    work = Path(tempfile.mkdtemp(prefix="showroom-flash-bench-"))
    results: dict[str, Figures] = {}
    try:
        for backend in backends:
            results[backend] = await run_backend(backend, work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for figures in results.values():
        print(figures.summary(), flush=True)
    oversold = sum(f.oversold for f in results.values())
    broken = any(f.throughput_mismatch or f.errors for f in results.values())

    def orders_s(backend: str) -> str:
        return f"{results[backend].throughput.rate:.0f}" if backend in results else "n/a"

    p99 = max(f.throughput.pct(0.99) for f in results.values())
    print(
        f"RESULT sqlite_orders_s={orders_s('sqlite')} pg_orders_s={orders_s('postgresql')} "
        f"p99_ms={p99:.1f} oversold={oversold}",
        flush=True,
    )
    return 1 if oversold or broken else 0


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=15.0, help="throughput phase, per backend")
    p.add_argument("--buyers", type=int, default=2000, help="distinct viewer identities")
    p.add_argument("--concurrency", type=int, default=64, help="HTTP connections")
    p.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    p.add_argument("--units", type=int, default=200, help="stock of the contention product")
    p.add_argument("--rate", type=float, default=1000.0, help="orders/s offered (0: skip)")
    p.add_argument("--rate-seconds", type=float, default=10.0, help="the offered-rate phase")
    p.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of checkouts before measuring"
    )
    p.add_argument("--floor-seconds", type=float, default=5.0, help="each baseline read")
    p.add_argument("--profile", default=None, help="cProfile the server to PREFIX.BACKEND.prof")
    p.add_argument(
        "--py-spy", default=None, help="py-spy the throughput phase to PREFIX.BACKEND.txt"
    )
    return p.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
