"""create_app(settings): the aiohttp application with its middlewares, routes and resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from media.hub import MediaHub, StreamStatus
from server.config import Settings
from server.http.contract import Contract, openapi_document
from server.http.errors import problem_answers
from server.http.media import StreamCollector, cors_for_media, register_recording
from server.http.observability import Metrics, observe
from server.http.pages import add_pages
from server.http.routes import OPERATIONS
from server.keys import (
    ACCRUAL,
    CLIPS,
    DATABASE,
    FUNNEL,
    LIVE,
    MEDIA,
    METRICS,
    OPENAPI,
    PAYMENTS,
    REACTIONS,
    REDIS,
    ROOMS,
    SETTINGS,
    STOCK,
    STORAGE,
    VIDEOS,
    WATCH,
    WEBHOOKS,
)
from server.realtime.bus import RedisRoomBus
from server.realtime.engine import LiveServer
from server.realtime.live import NAMESPACE, LiveNamespace, ReactionTally, catch_up
from server.realtime.rooms import RoomHub
from server.realtime.stock import StockBoard
from server.realtime.watch import WatchClock
from server.services import clips, ledger, orders, pins, videos
from server.services.accrual import Accrual
from server.services.funnel import FunnelBoard
from server.services.identity import GUEST_COOKIE, Principal, Unauthenticated, identify
from server.services.jobs import QueueWorker
from server.services.payments import ManualProvider, Payments
from server.services.room import record_peak_viewers
from server.services.storage import Bucket, Storage
from server.services.webhooks import Dispatcher
from server.store.db import Database, create_engine

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


async def authenticate(request: web.Request) -> Principal | None:
    """The caller from `Authorization: Bearer` or the guest cookie; None without either."""
    settings = request.app[SETTINGS]
    bearer = None
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        bearer = token.strip()
        if scheme.lower() != "bearer" or not bearer:
            raise Unauthenticated("use Authorization: Bearer <token>")
    return await identify(
        request.app[DATABASE],
        bearer=bearer,
        guest_cookie=request.cookies.get(GUEST_COOKIE),
        secret_key=settings.secret_key,
        viewer_jwt_secret=settings.viewer_jwt_secret,
    )


async def _database(app: web.Application) -> AsyncIterator[None]:
    database = Database(create_engine(app[SETTINGS].database_url))
    app[DATABASE] = database
    yield
    await database.dispose()


async def _redis(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    assert url is not None
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    app[REDIS] = client
    yield
    await client.aclose()


async def _rooms(app: web.Application) -> AsyncIterator[None]:
    loops = [
        asyncio.create_task(app[ROOMS].run(), name="room-frames"),
        asyncio.create_task(app[REACTIONS].run(), name="reaction-tally"),
        asyncio.create_task(app[STOCK].run(), name="stock-board"),
    ]
    yield
    for loop in loops:
        loop.cancel()
    for loop in loops:
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    await app[LIVE].aclose()
    try:
        await app[REACTIONS].flush()  # taps counted since the last flush are not lost
    except Exception:
        logging.getLogger("showroom.realtime").exception("final reaction flush failed")
    await app[ROOMS].store_peaks()


def _attach_live_room(app: web.Application, settings: Settings) -> None:
    sio = LiveServer(async_mode="aiohttp", logger=False, engineio_logger=False)
    hub = RoomHub(sio, NAMESPACE)
    hub.max_backlog = settings.frame_backlog
    hub.record_peaks = lambda peaks: record_peak_viewers(app[DATABASE], peaks)
    tally = ReactionTally(lambda: app[DATABASE], hub)
    app[ROOMS], app[REACTIONS] = hub, tally
    app[STOCK] = StockBoard(hub)
    app[FUNNEL] = FunnelBoard(lambda: app[DATABASE])
    # Watch points are written a block of minutes at a time (the rest is checkpointed).
    app[ACCRUAL] = Accrual(lambda: app[DATABASE], settings.watch_credit_minutes)
    app[WATCH] = WatchClock(
        app[ACCRUAL],
        # Watching earns only while this process relays the show's media to that player.
        media_ok=lambda show_id, session: MEDIA in app and app[MEDIA].relaying_to(show_id, session),
        joined=hub.show_of,  # a socket that left the room (or was removed) earns no more
    )
    # Before each engagement write the watch clock credits the time it verified since the last.
    app[ACCRUAL].before_flush = app[WATCH].sweep
    app[ACCRUAL].on_rules = app[WATCH].use_rules
    app[LIVE] = LiveNamespace(
        db=lambda: app[DATABASE],
        settings=settings,
        hub=hub,
        tally=tally,
        funnel=app[FUNNEL],
        accrual=app[ACCRUAL],
        watch=app[WATCH],
    )
    app[ACCRUAL].on_credit = app[LIVE].announce_points
    app[ACCRUAL].audience = lambda: {show: hub.viewer_count(show) for show in hub.rooms}
    sio.register_namespace(app[LIVE])
    sio.attach(app, socketio_path="socket.io")
    app.on_shutdown.append(lambda _: sio.eio.close_connections())
    app.cleanup_ctx.append(_rooms)


async def _room_bus(app: web.Application) -> AsyncIterator[None]:
    hub, settings = app[ROOMS], app[SETTINGS]
    bus = RedisRoomBus(
        app[REDIS],
        hub,
        repair=lambda delivered, sweep: catch_up(
            app[DATABASE], hub, settings.secret_key, delivered, sweep
        ),
    )
    hub.relay = bus
    app[LIVE].limits.redis = app[REDIS]  # one allowance per member across processes
    bus.start()
    yield
    await bus.stop()
    app[LIVE].limits.redis = None
    hub.relay = None


RESERVATION_SWEEP_SECONDS = 1.0
FUNNEL_FLUSH_SECONDS = 2.0


async def _every(
    stop: asyncio.Event, interval: float, work: Callable[[], Awaitable[Any]], what: str
) -> None:
    """Run `work` every `interval` seconds until `stop` is set. Stopping waits for the
    round in progress: a database call is never cut off halfway."""
    log = logging.getLogger("showroom")
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again in %s s", what, interval)


BACKGROUND_STOP_SECONDS = 10.0


async def _background(
    jobs: list[tuple[float, Callable[[], Awaitable[Any]], str]],
) -> AsyncIterator[None]:
    """Periodic jobs for an app's lifetime, stopped gracefully (then cancelled if a round
    hangs past BACKGROUND_STOP_SECONDS)."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(_every(stop, interval, work, what), name=what)
        for interval, work, what in jobs
    ]
    yield
    stop.set()
    _, hanging = await asyncio.wait(tasks, timeout=BACKGROUND_STOP_SECONDS)
    for task in hanging:
        task.cancel()
    for task in hanging:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _sweep_reservations(app: web.Application) -> None:
    """Reservations past their time give their stock back; viewers of shows where those
    products are pinned see the new counts."""
    returned = await orders.do_expire_reservations(app[DATABASE])
    app[STOCK].note(await pins.access_pinned_stock(app[DATABASE], list(returned)))


async def _orders(app: web.Application) -> AsyncIterator[None]:
    async for _ in _background(
        [
            (RESERVATION_SWEEP_SECONDS, lambda: _sweep_reservations(app), "reservation sweep"),
            (FUNNEL_FLUSH_SECONDS, app[FUNNEL].flush, "funnel write"),
        ]
    ):
        yield
    try:
        await app[FUNNEL].flush()  # steps counted since the last write are not lost
    except Exception:
        logging.getLogger("showroom.funnel").exception("final funnel write failed")


WEBHOOK_STOP_SECONDS = 5.0


async def _webhooks(app: web.Application) -> AsyncIterator[None]:
    """The webhook dispatcher: delivers the outbox (server/services/webhooks.py). Other
    processes run their own; a delivery is only ever taken by one of them at a time."""
    settings = app[SETTINGS]
    dispatcher = Dispatcher(
        app[DATABASE],
        timeout_seconds=settings.webhook_timeout_seconds,
        max_attempts=settings.webhook_max_attempts,
        retry_base_seconds=settings.webhook_retry_seconds,
    )
    app[WEBHOOKS] = dispatcher
    task = asyncio.create_task(dispatcher.run(), name="webhook-dispatcher")
    yield
    # Gracefully: no database call is cut off, and attempts under way are given back.
    dispatcher.stop()
    done, _ = await asyncio.wait({task}, timeout=WEBHOOK_STOP_SECONDS)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """The bucket's client, when finished videos go to one."""
    await app[STORAGE].start()
    yield
    await app[STORAGE].close()


def bucket_of(settings: Settings) -> Bucket | None:
    if settings.s3_bucket is None:
        return None
    return Bucket(
        settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region or None,
        prefix=settings.s3_prefix,
        public_url=settings.s3_public_url,
    )


JOB_STOP_SECONDS = 5.0


async def _run_worker(
    app: web.Application,
    worker: QueueWorker[Any],
    requeue: Callable[[Database], Awaitable[int]],
    name: str,
) -> AsyncIterator[None]:
    """A job worker's life: jobs a crash left running are queued again, then it runs until
    the app stops; between jobs it stops at once, a job under way is given JOB_STOP_SECONDS,
    then cancelled (ffmpeg killed, its partial files removed, the job queued again)."""
    try:
        requeued = await requeue(app[DATABASE])
        if requeued:
            worker.log.info("%d %s jobs queued again", requeued, name)
    except Exception:
        worker.log.exception("could not queue %s jobs again", name)
    task = asyncio.create_task(worker.run(), name=f"{name}-worker")
    yield
    worker.stop()
    done, _ = await asyncio.wait({task}, timeout=JOB_STOP_SECONDS)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _clips(app: web.Application) -> AsyncIterator[None]:
    """The clip worker: cuts the product clips queued when shows end, one at a time."""
    settings = app[SETTINGS]
    worker = clips.ClipWorker(
        app[DATABASE], settings.data_dir, settings.data_dir / "hls", app[STORAGE]
    )
    app[CLIPS] = worker
    async for _ in _run_worker(app, worker, clips.do_requeue_running, "clip"):
        yield


async def _videos(app: web.Application) -> AsyncIterator[None]:
    """The video worker: makes uploads and clips cut by staff, one at a time, beside the
    clip worker (server/services/videos.py)."""
    settings = app[SETTINGS]
    worker = videos.VideoWorker(
        app[DATABASE], settings.data_dir, settings.data_dir / "hls", app[STORAGE]
    )
    app[VIDEOS] = worker
    async for _ in _run_worker(app, worker, videos.do_requeue_running, "video"):
        yield


POINTS_EXPIRY_SECONDS = 3600.0


async def _engagement(app: web.Application) -> AsyncIterator[None]:
    """Engagement is written every SHOWROOM_ENGAGEMENT_FLUSH_SECONDS, or sooner when a join
    wave brings accrual.EARLY_WRITE viewers' activities due (watching that has not
    completed a block of SHOWROOM_WATCH_CREDIT_MINUTES waits, checkpointed at each write),
    and all of it once more on a clean shutdown; at start the checkpoints a stopped process
    left are read back, for the first write to credit. Points past their policy expire
    hourly (and at start), and the tiers of members whose points left the tier window are
    recomputed hourly."""
    accrual, db = app[ACCRUAL], app[DATABASE]
    every = app[SETTINGS].engagement_flush_seconds
    try:
        restored = await accrual.restore()
        if restored:
            logging.getLogger("showroom.engagement").info(
                "read back the held watching of %d viewers", restored
            )
    except Exception:
        logging.getLogger("showroom.engagement").exception("watch checkpoints not read")
    try:
        await ledger.do_expire_points(db)
    except Exception:
        logging.getLogger("showroom.engagement").exception("points expiry failed")
    async for _ in _background(
        [
            (
                # Asked every second (or more often): a join wave is written as it arrives.
                min(1.0, every),
                lambda: accrual.periodic_write(every),
                "engagement write",
            ),
            (POINTS_EXPIRY_SECONDS, lambda: ledger.do_expire_points(db), "points expiry"),
            (POINTS_EXPIRY_SECONDS, lambda: ledger.do_refresh_leaving_tiers(db), "tier refresh"),
        ]
    ):
        yield
    try:
        await accrual.flush()
    except Exception:
        logging.getLogger("showroom.engagement").exception("final engagement write failed")


async def _media(app: web.Application) -> AsyncIterator[None]:
    """WHIP/WHEP peers and the relay. On shutdown every peer is closed and each recording
    finished and registered on its show (before the database closes)."""
    settings = app[SETTINGS]

    def announce(show_id: str, status: StreamStatus) -> None:
        # Viewers learn the host dropped (and came back) from the live room.
        app[ROOMS].publish(show_id, {"type": "stream.status", "status": status.value})

    hub = MediaHub(
        recordings_dir=settings.data_dir / "recordings",
        hls_dir=settings.data_dir / "hls",
        ice_servers=settings.ice_servers,
        on_status=announce,
        connect_timeout=settings.media_connect_timeout,
    )
    app[MEDIA] = hub
    app[LIVE].stream_status = lambda show_id: hub.statuses.get(show_id, StreamStatus.IDLE).value
    collector = StreamCollector(hub)
    app[METRICS].registry.register(collector)
    housekeeping = asyncio.create_task(hub.run(), name="media-housekeeping")
    yield
    housekeeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await housekeeping
    for show_id, recording in await hub.aclose():
        try:
            await register_recording(app, show_id, recording)
        except Exception:
            logging.getLogger("showroom.media").exception(
                "could not register the recording %s", recording.path
            )
    app[METRICS].registry.unregister(collector)


@web.middleware
async def uncompressed_live_websockets(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Live-room websockets go uncompressed: permessage-deflate would compress every frame
    once per viewer, while uncompressed, one encoded frame is written to every viewer as
    is (server/realtime/rooms.py). The offer is dropped, so the handshake declines it."""
    if request.path.startswith("/socket.io/") and "Sec-WebSocket-Extensions" in request.headers:
        headers = request.headers.copy()
        del headers["Sec-WebSocket-Extensions"]
        request = request.clone(headers=headers)
    return await handler(request)


def create_app(settings: Settings) -> web.Application:
    metrics = Metrics()
    contract = Contract()
    app = web.Application(
        middlewares=[
            observe(metrics),
            cors_for_media,
            problem_answers,
            contract.middleware(authenticate, settings.max_body_bytes),
            uncompressed_live_websockets,
        ],
        # Bodies are read through contract.read_limited with per-route limits; this is the
        # ceiling for anything read another way.
        client_max_size=max(settings.max_body_bytes, settings.max_import_bytes),
    )
    app[SETTINGS] = settings
    app[METRICS] = metrics
    # The built-in provider (pay later, cash on delivery); a brand's own is added here.
    app[PAYMENTS] = Payments([ManualProvider()])
    contract.register(app, OPERATIONS)
    app[OPENAPI] = openapi_document(OPERATIONS, server_url=settings.public_url)
    add_pages(app, WEB_DIR)
    app[STORAGE] = Storage(settings.data_dir, bucket_of(settings))
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(_storage)
    if settings.redis_url is not None:
        app.cleanup_ctx.append(_redis)
    _attach_live_room(app, settings)
    app.cleanup_ctx.append(_media)
    app.cleanup_ctx.append(_orders)
    app.cleanup_ctx.append(_engagement)
    app.cleanup_ctx.append(_webhooks)
    app.cleanup_ctx.append(_clips)
    app.cleanup_ctx.append(_videos)
    if settings.redis_url is not None:
        app.cleanup_ctx.append(_room_bus)
    return app
