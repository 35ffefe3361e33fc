"""Typed application keys: what create_app puts on the app and handlers read back."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from media.hub import MediaHub
from server.config import Settings
from server.http.observability import Metrics
from server.realtime.live import LiveNamespace, ReactionTally
from server.realtime.rooms import RoomHub
from server.realtime.stock import StockBoard
from server.realtime.watch import WatchClock
from server.services.accrual import Accrual
from server.services.clips import ClipWorker
from server.services.funnel import FunnelBoard
from server.services.payments import Payments
from server.services.storage import Storage
from server.services.videos import VideoWorker
from server.services.webhooks import Dispatcher
from server.store.db import Database

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
REDIS = web.AppKey("redis", Redis)
ROOMS = web.AppKey("rooms", RoomHub)
REACTIONS = web.AppKey("reactions", ReactionTally)
LIVE = web.AppKey("live", LiveNamespace)
MEDIA = web.AppKey("media", MediaHub)
STOCK = web.AppKey("stock", StockBoard)
FUNNEL = web.AppKey("funnel", FunnelBoard)
ACCRUAL = web.AppKey("accrual", Accrual)
WATCH = web.AppKey("watch", WatchClock)
PAYMENTS = web.AppKey("payments", Payments)
WEBHOOKS = web.AppKey("webhooks", Dispatcher)
CLIPS = web.AppKey("clips", ClipWorker)
STORAGE = web.AppKey("storage", Storage)
VIDEOS = web.AppKey("videos", VideoWorker)
OPENAPI = web.AppKey("openapi", dict)  # type: ignore[type-abstract]
