"""WHIP (RFC 9725) and WHEP: the host publishes and viewers watch with one HTTP exchange of
SDP each; the session's URL (Location) ends it with DELETE."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from media.clips import ClipError, covering, plan_clip, read_segments
from media.hls import (
    PLAYLIST,
    SEGMENT_NAME,
    PlaylistInfo,
    Span,
    media_time,
    parse_playlist,
    read_playlist_text,
    read_timeline,
)
from media.hub import MediaError, MediaHub, Role, Session, StreamReport, StreamStatus
from media.posters import make_poster
from media.recorder import Recording
from server.domain.shows import ShowState
from server.http import videos as staff_videos
from server.http import views
from server.http.contract import CLIP_NAME, PATH, QUERY, read_limited
from server.http.problems import Problem
from server.keys import CLIPS, DATABASE, MEDIA, SETTINGS, STORAGE, WATCH
from server.services import clips, pins, recordings, shows
from server.services.storage import MADE_CACHE

SDP = "application/sdp"
MAX_SDP_BYTES = 64 * 1024
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch, Retry-After",
}


@web.middleware
async def cors_for_media(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """WHIP, WHEP, HLS and clips are called from other origins (a brand's site, OBS's browser
    source, an embedded player): every answer, errors included, carries the CORS headers."""
    if not request.path.startswith(("/whip/", "/whep/", "/hls/", "/clips/", "/videos/")):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(CORS_HEADERS)
        raise
    response.headers.update(CORS_HEADERS)
    return response


def _preflight(methods: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def options(request: web.Request) -> web.Response:
        await _target(request)
        return web.Response(
            status=204,
            headers={
                "Allow": methods,
                "Accept-Post": SDP,
                "Access-Control-Allow-Methods": methods,
                "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
                "Access-Control-Max-Age": "86400",
            },
        )

    return options


async def _target(request: web.Request) -> None:
    """404 for an unknown show or session, as the POST or DELETE itself would answer."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    await shows.access_show(request.app[DATABASE], show_id)
    session_id = request.match_info.get("session_id")
    if session_id is not None and request.app[MEDIA].sessions.get(session_id) is None:
        raise Problem(404, "no such session (it ended, or was never here)", kind="not-found")


whip_options = _preflight("OPTIONS, POST")
whep_options = _preflight("OPTIONS, POST")
session_options = _preflight("OPTIONS, DELETE")


async def _offer(request: web.Request) -> str:
    raw = await read_limited(request, MAX_SDP_BYTES)
    if request.content_type.split(";")[0].strip().lower() != SDP:
        raise Problem(
            415,
            f"send the SDP offer as {SDP} (got {request.content_type or 'nothing'})",
            headers={"Accept-Post": SDP},
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem(400, "the SDP offer is not UTF-8") from None


async def _live_show(request: web.Request, doing: str) -> tuple[str, str]:
    """The show (404 first), the offer (413, 415), then whether the show is live (409)."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    record = await shows.access_show(request.app[DATABASE], show_id)
    offer = await _offer(request)
    if record.state is not ShowState.LIVE:
        raise Problem(409, f"cannot {doing} a show that is {record.state.value}; it must be live")
    return str(show_id), offer


def _problem(error: MediaError) -> Problem:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    return Problem(error.status, error.message, headers=headers)


def _created(session: Session, answer: str, base: str) -> web.Response:
    return web.Response(
        status=201,
        body=answer.encode(),
        headers={
            "Content-Type": SDP,
            "Location": f"{base}/{session.show_id}/{session.id}",
            "ETag": f'"{session.id}"',
        },
    )


async def publish(request: web.Request) -> web.Response:
    show_id, offer = await _live_show(request, "publish to")
    try:
        session, answer = await request.app[MEDIA].publish(show_id, offer)
    except MediaError as exc:
        raise _problem(exc) from None
    return _created(session, answer, "/whip")


async def watch(request: web.Request) -> web.Response:
    show_id, offer = await _live_show(request, "watch")
    try:
        session, answer = await request.app[MEDIA].watch(show_id, offer)
    except MediaError as exc:
        raise _problem(exc) from None
    return _created(session, answer, "/whep")


def _hang_up(role: Role) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def delete(request: web.Request) -> web.Response:
        hub = request.app[MEDIA]
        show_id: uuid.UUID = request[PATH]["show_id"]
        await shows.access_show(request.app[DATABASE], show_id)
        session = hub.session(request[PATH]["session_id"], str(show_id), role)
        if session is None:
            raise Problem(404, "no such session (it ended, or was never here)", kind="not-found")
        await hub.hang_up(session)
        return web.Response(status=200)

    delete.__name__ = f"end_{role.value}_session"
    return delete


end_publish = _hang_up(Role.PUBLISHER)
end_watch = _hang_up(Role.VIEWER)


def stream_status(app: web.Application, show_id: uuid.UUID) -> str:
    return app[MEDIA].statuses.get(str(show_id), StreamStatus.IDLE).value


def stream_report(report: StreamReport) -> dict[str, object]:
    health = report.health
    return {
        "status": report.status.value,
        "video_codec": report.video_codec,
        "audio_codec": report.audio_codec,
        "bitrate_kbps": health.bitrate_kbps,
        "frame_rate": health.frame_rate,
        "width": health.width,
        "height": health.height,
        "keyframe_interval_s": health.keyframe_interval_s,
        "viewers": report.viewers,
        "publishing_since": views.when(report.publishing_since),
        "keyframe_requests": report.keyframe_requests,
        "recording_bytes": report.recording_bytes,
    }


async def get_stream(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    await shows.access_show(request.app[DATABASE], show_id)  # 404 for an unknown show
    return views.reply(stream_report(request.app[MEDIA].report(str(show_id))))


async def register_recording(
    app: web.Application, show_id: str, recording: Recording
) -> recordings.RecordingRecord:
    data_dir = app[SETTINGS].data_dir
    try:
        path = recording.path.relative_to(data_dir)
    except ValueError:
        path = recording.path
    return await recordings.do_register_recording(
        app[DATABASE],
        uuid.UUID(show_id),
        recordings.NewRecording(
            path=str(path),
            container=recording.container,
            video_codec=recording.video_codec,
            audio_codec=recording.audio_codec,
            width=recording.width,
            height=recording.height,
            duration_ms=recording.duration_ms,
            bytes=recording.bytes,
        ),
    )


async def finish_broadcast(app: web.Application, show_id: str) -> None:
    """The show ended: credit the watch time verified until now (while the media still
    flows), then hang up every peer, finish the recording and register it."""
    app[WATCH].forget_show(show_id)
    recording = await app[MEDIA].end(show_id)
    if recording is not None:
        await register_recording(app, show_id, recording)
    try:
        await queue_clips(app, uuid.UUID(show_id))
    except Exception:  # the show has ended either way; the log says which clips were lost
        logging.getLogger("showroom.clips").exception("clips of show %s not queued", show_id)
    if CLIPS in app:
        app[CLIPS].publish_replay(uuid.UUID(show_id))


async def queue_clips(app: web.Application, show_id: uuid.UUID) -> list[clips.ClipRecord]:
    """The replay is finished: queue a clip of each product's first moment in it."""
    hls_dir = app[MEDIA].hls_dir
    if hls_dir is None:
        return []
    text = await asyncio.to_thread(read_playlist_text, hls_dir / str(show_id) / PLAYLIST)
    if text is None or "#EXT-X-ENDLIST" not in text:
        return []  # never published: no replay, no clips
    spans, segments = read_timeline(text), read_segments(text)
    moments = (await pins.list_moments(app[DATABASE], [show_id]))[show_id]
    wanted: list[clips.NewClip] = []
    seen: set[uuid.UUID] = set()
    for moment, at, _ in placed_pins(moments, spans):
        if moment.product.id in seen:
            continue  # a product's first moment only
        seen.add(moment.product.id)
        plan = plan_clip(segments, at)
        if plan is not None:
            wanted.append(
                clips.NewClip(moment.product.sku, moment.product.id, plan.start, plan.duration)
            )
    queued = await clips.do_enqueue_clips(app[DATABASE], show_id, wanted)
    if queued and CLIPS in app:
        app[CLIPS].wake()
    return queued


async def list_recordings(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    await shows.access_show(request.app[DATABASE], show_id)
    records = await recordings.list_recordings(request.app[DATABASE], show_id)
    return views.reply(
        {
            "items": [
                {
                    "id": str(r.id),
                    "path": r.path,
                    "container": r.container,
                    "video_codec": r.video_codec,
                    "audio_codec": r.audio_codec,
                    "width": r.width,
                    "height": r.height,
                    "duration_ms": r.duration_ms,
                    "bytes": r.bytes,
                    "created_at": views.when(r.created_at),
                }
                for r in records
            ]
        }
    )


class StreamCollector(Collector):
    """Stream health of every show this process relays, read at scrape time."""

    def __init__(self, hub: MediaHub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauges = {
            "bitrate": GaugeMetricFamily(
                "showroom_stream_bitrate_kbps", "Host's incoming bitrate.", labels=["show"]
            ),
            "fps": GaugeMetricFamily(
                "showroom_stream_frame_rate", "Host's video frames per second.", labels=["show"]
            ),
            "width": GaugeMetricFamily(
                "showroom_stream_width_pixels", "Picture width.", labels=["show"]
            ),
            "height": GaugeMetricFamily(
                "showroom_stream_height_pixels", "Picture height.", labels=["show"]
            ),
            "gop": GaugeMetricFamily(
                "showroom_stream_keyframe_interval_seconds",
                "Seconds between the host's keyframes.",
                labels=["show"],
            ),
            "viewers": GaugeMetricFamily(
                "showroom_stream_viewers", "WebRTC (WHEP) viewers on this process.", labels=["show"]
            ),
            "publishing": GaugeMetricFamily(
                "showroom_stream_publishing",
                "1 while the host's media arrives, 0 while idle, stopped or reconnecting.",
                labels=["show"],
            ),
        }
        for show_id in list(self.hub.broadcasts):
            report = self.hub.report(show_id)
            health = report.health
            gauges["bitrate"].add_metric([show_id], health.bitrate_kbps)
            gauges["fps"].add_metric([show_id], health.frame_rate)
            gauges["width"].add_metric([show_id], health.width or 0)
            gauges["height"].add_metric([show_id], health.height or 0)
            gauges["gop"].add_metric([show_id], health.keyframe_interval_s or 0)
            gauges["viewers"].add_metric([show_id], report.viewers)
            gauges["publishing"].add_metric(
                [show_id], 1 if report.status is StreamStatus.PUBLISHING else 0
            )
        counts = self.hub.counts()
        sessions = GaugeMetricFamily(
            "showroom_media_sessions", "Open WHIP and WHEP sessions on this process."
        )
        sessions.add_metric([], counts["sessions"])
        yield from gauges.values()
        yield sessions


# --- live HLS and the replay ---------------------------------------------------------------

HLS_PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
HLS_SEGMENT_TYPE = "video/mp2t"


def _hls_dir(request: web.Request) -> Path:
    """The show's HLS directory (the show id is a parsed UUID: no path can escape)."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    root = request.app[MEDIA].hls_dir
    if root is None:
        raise Problem(404, "this server does not write HLS", kind="not-found")
    return root / str(show_id)


async def serve_stored(
    request: web.Request, relative: str, content_type: str, cache_control: str, missing: str
) -> web.StreamResponse:
    """A finished file (a segment, clip, poster or upload), `relative` to the data
    directory: from this node's disk when it is here, else, with a bucket configured, a
    redirect to it there (docs/media.md, Storage); 404 `missing` otherwise."""
    storage = request.app[STORAGE]
    path = storage.local(relative)
    if await asyncio.to_thread(path.is_file):
        return web.FileResponse(
            path, headers={"Content-Type": content_type, "Cache-Control": cache_control}
        )
    url = await storage.url(relative)
    if url is None:
        raise Problem(404, missing, kind="not-found")
    # Short-lived: a presigned URL expires, and a file may come back to this node's disk.
    return web.Response(status=302, headers={"Location": url, "Cache-Control": "max-age=60"})


async def hls_playlist(request: web.Request) -> web.Response:
    """The show's media playlist, straight from disk (no database: players poll it)."""
    path = _hls_dir(request) / PLAYLIST
    try:
        body = await asyncio.to_thread(path.read_bytes)
    except (FileNotFoundError, NotADirectoryError):
        raise Problem(
            404, "no live video or replay for this show (yet)", kind="not-found"
        ) from None
    return web.Response(
        body=body, headers={"Content-Type": HLS_PLAYLIST_TYPE, "Cache-Control": "no-cache"}
    )


async def hls_segment(request: web.Request) -> web.StreamResponse:
    name: str = request[PATH]["segment"]
    if not SEGMENT_NAME.fullmatch(name):  # the route's pattern already refused it
        raise Problem(404, "no such segment", kind="not-found")
    _hls_dir(request)  # 404 when this server writes no HLS
    show_id: uuid.UUID = request[PATH]["show_id"]
    # A segment never changes once it is listed.
    return await serve_stored(
        request,
        f"hls/{show_id}/{name}",
        HLS_SEGMENT_TYPE,
        "public, max-age=31536000, immutable",
        "no such segment",
    )


POSTER = "poster.jpg"
POSTER_TYPE = "image/jpeg"
POSTER_CACHE = "public, max-age=3600"
POSTER_LATEST_S = 30.0  # a replay without products shows a frame this far in, at most
_making: dict[Path, asyncio.Task[int]] = {}  # posters being made, so one ffmpeg makes each


def poster_moment(duration_s: float, moments: list[dict[str, Any]]) -> float:
    """Where a replay's poster is taken: the first product's moment (plus a second, for the
    host to hold it up), or a tenth of the way in, at most POSTER_LATEST_S."""
    if moments:
        return min(moments[0]["at_s"] + 1.0, max(duration_s - 0.5, 0.0))
    return min(duration_s / 10, POSTER_LATEST_S)


async def once(path: Path, make: Callable[[], Awaitable[int]]) -> None:
    """Make the file at `path` unless it exists; concurrent callers share one run."""
    if await asyncio.to_thread(path.is_file):
        return
    task = _making.get(path)
    if task is None:
        task = asyncio.ensure_future(make())
        _making[path] = task
        task.add_done_callback(lambda _: _making.pop(path, None))
    await asyncio.shield(task)


async def replay_poster(request: web.Request) -> web.StreamResponse:
    """The replay's poster (JPEG): made from its segments the first time it is asked for,
    then served from disk like a segment."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    folder = _hls_dir(request)
    path = folder / POSTER
    if not await asyncio.to_thread(path.is_file):
        info, spans = await hls_of(request, show_id)
        if info is None or not info.ended or str(show_id) in request.app[MEDIA].hls:
            raise Problem(404, "no replay of this show (yet)", kind="not-found")
        text = await asyncio.to_thread(read_playlist_text, folder / PLAYLIST)
        segments = read_segments(text or "")
        moments = (await pins.list_moments(request.app[DATABASE], [show_id]))[show_id]
        at = poster_moment(info.duration_s, _moments(moments, spans))
        chosen = covering(segments, at, 0.01) or segments[:1]
        if not chosen:
            raise Problem(404, "the replay has no video", kind="not-found")
        segment = chosen[0]
        if not SEGMENT_NAME.fullmatch(segment.name):
            raise Problem(404, "the replay has no poster", kind="not-found")
        offset = max(at - segment.media, 0.0)
        try:
            await once(path, lambda: make_poster(folder / segment.name, offset, path))
            relative = f"hls/{show_id}/{POSTER}"
            await request.app[STORAGE].publish(
                relative, POSTER_TYPE, cache_control=POSTER_CACHE, keep_local=True
            )
        except ClipError as exc:
            logging.getLogger("showroom.clips").warning(
                "no poster for the replay of %s: %s", show_id, exc
            )
            raise Problem(
                404, "no poster could be made from this replay", kind="not-found"
            ) from None
    return web.FileResponse(
        path, headers={"Content-Type": POSTER_TYPE, "Cache-Control": POSTER_CACHE}
    )


async def hls_of(
    request: web.Request, show_id: uuid.UUID
) -> tuple[PlaylistInfo | None, list[Span]]:
    """The show's playlist as written so far, and its segments on the wall clock."""
    hub = request.app[MEDIA]
    if hub.hls_dir is None:
        return None, []
    text = await asyncio.to_thread(read_playlist_text, hub.hls_dir / str(show_id) / PLAYLIST)
    if text is None:
        return None, []
    return parse_playlist(text), read_timeline(text)


def placed_pins(
    records: list[pins.MomentRecord], spans: list[Span]
) -> Iterator[tuple[pins.MomentRecord, float, float | None]]:
    """Each pin placed on the video's timeline: seconds from its start (a replay skips the
    times the host was away, so these are not the wall clock's offsets)."""
    for moment in records:
        at = media_time(spans, moment.pinned_at.timestamp())
        if at is None:
            continue  # pinned after the video ended
        until = None
        if moment.unpinned_at is not None:
            until = media_time(spans, moment.unpinned_at.timestamp())
            if until is not None and until <= at:
                continue  # on screen only while the host was away
        yield moment, at, until


def _moments(records: list[pins.MomentRecord], spans: list[Span]) -> list[dict[str, Any]]:
    """Each pin on the video's timeline, with the product's card (see placed_pins)."""
    out = []
    for moment, at, until in placed_pins(records, spans):
        draft = moment.product.draft
        out.append(
            {
                "sku": draft.sku,
                "title": draft.title,
                "image_url": draft.image_url,
                "price": views.money(draft.price),
                "compare_at_price": views.money(draft.compare_at_price),
                "stock": draft.stock,
                "at_s": round(at, 3),
                "until_s": None if until is None else round(until, 3),
            }
        )
    return out


async def get_replay(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    await shows.access_show(request.app[DATABASE], show_id)
    info, spans = await hls_of(request, show_id)
    writing = str(show_id) in request.app[MEDIA].hls
    if info is not None and info.ended and not writing:
        status = "ready"
    elif writing or info is not None:
        status = "live"
    else:
        status = "none"
    moments = (await pins.list_moments(request.app[DATABASE], [show_id]))[show_id]
    return views.reply(
        {
            "status": status,
            "ready": status == "ready",
            "playlist_url": f"/hls/{show_id}/{PLAYLIST}" if info is not None else None,
            "segments": info.segments if info else 0,
            "duration_s": info.duration_s if info else 0.0,
            "started_at": info.started_at if info else None,
            "poster_url": f"/hls/{show_id}/{POSTER}" if status == "ready" else None,
            "moments": _moments(moments, spans),
        }
    )


def _clip_url(record: clips.ClipRecord) -> str:
    return f"/{clips.clip_path(record.show_id, record.sku)}"


def _clip_moments(moments: list[dict[str, Any]], clip: clips.ClipRecord) -> list[dict[str, Any]]:
    """The product's moments moved onto the clip's timeline (those the clip shows)."""
    start, end = clip.start_s, clip.start_s + clip.duration_s
    out = []
    for moment in moments:
        at, until = moment["at_s"], moment["until_s"]
        if at >= end or (until is not None and until <= start):
            continue
        out.append(
            {
                **moment,
                "at_s": round(max(at - start, 0.0), 3),
                "until_s": None if until is None or until >= end else round(until - start, 3),
            }
        )
    return out


def _wall_at(spans: list[Span], media: float) -> str | None:
    """The program date-time of the segment that starts at `media` (a clip's first frame)."""
    for span in spans:
        if abs(span.media - media) < 1e-3:
            return views.when(datetime.fromtimestamp(span.wall, UTC))
    return None


async def list_product_videos(request: web.Request) -> web.Response:
    """The videos that sell a product: ready replays of the shows that pinned it, most
    watched first, each with the product's moments in it, and right after each its clip of
    the product when one is made. Public, and open to any origin: a brand's product page
    (web/embed.js data-sku) reads it."""
    sku: str = request[PATH]["sku"]
    db = request.app[DATABASE]
    limit = request[QUERY]["limit"]
    featuring = await pins.list_shows_featuring(db, sku, limit=limit)
    moments = await pins.list_moments(db, [show.id for show in featuring])
    made = await clips.list_done_clips(db, [show.id for show in featuring], sku)
    items: list[dict[str, Any]] = []
    for show in featuring:
        info, spans = await hls_of(request, show.id)
        if info is None or not info.ended or str(show.id) in request.app[MEDIA].hls:
            continue  # no replay (never published, or not finished)
        mine = [m for m in _moments(moments[show.id], spans) if m["sku"] == sku]
        if not mine:
            continue
        common = {
            "show_id": str(show.id),
            "title": show.title,
            "locale": show.locale,
            "viewers": show.viewers,
            "peak_viewers": show.peak_viewers,
        }
        items.append(
            {
                "kind": "replay",
                **common,
                "playlist_url": f"/hls/{show.id}/{PLAYLIST}",
                "video_url": None,
                "poster_url": f"/hls/{show.id}/{POSTER}",
                "watch_url": f"/watch/{show.id}?t={mine[0]['at_s']:g}",
                "duration_s": info.duration_s,
                "started_at": info.started_at,
                "moments": mine,
            }
        )
        clip = made.get(show.id)
        shown = _clip_moments(mine, clip) if clip is not None else []
        if clip is not None and shown:
            items.append(
                {
                    "kind": "clip",
                    **common,
                    "playlist_url": None,
                    "video_url": _clip_url(clip),
                    "poster_url": _clip_url(clip).removesuffix(".mp4") + ".jpg",
                    "watch_url": f"/watch/{show.id}?t={mine[0]['at_s']:g}",
                    "duration_s": clip.duration_s,
                    "started_at": _wall_at(spans, clip.start_s) or info.started_at,
                    "moments": shown,
                }
            )
    items = await staff_videos.with_staff_videos(request, sku, items)  # uploads, staff clips
    response = views.reply({"sku": sku, "items": items[:limit]})
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


# --- product clips -----------------------------------------------------------------------

CLIP_TYPE = "video/mp4"


async def list_show_clips(request: web.Request) -> web.Response:
    show_id: uuid.UUID = request[PATH]["show_id"]
    await shows.access_show(request.app[DATABASE], show_id)  # 404 for an unknown show
    records = await clips.list_clips(request.app[DATABASE], show_id)
    return views.reply(
        {
            "items": [
                {
                    "id": str(r.id),
                    "sku": r.sku,
                    "state": r.state,
                    "progress_pct": r.progress_pct,
                    "start_s": r.start_s,
                    "duration_s": r.duration_s,
                    "error": r.error,
                    "url": _clip_url(r) if r.state == clips.DONE else None,
                    "created_at": views.when(r.created_at),
                    "updated_at": views.when(r.updated_at),
                }
                for r in records
            ]
        }
    )


async def clip_file(request: web.Request) -> web.StreamResponse:
    """A made clip, straight from disk (the show id is a parsed UUID and the name matched
    the SKU pattern plus .mp4: no path can escape the clips folder)."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    name: str = request[PATH]["clip"]
    if not CLIP_NAME.fullmatch(name):  # the route's pattern already refused it
        raise Problem(404, "no such clip", kind="not-found")
    relative = f"clips/{show_id}/{name}"
    storage = request.app[STORAGE]
    if storage.remote and not await asyncio.to_thread(storage.local(relative).is_file):
        # Only a clip that is made is sent to the bucket (its poster goes with it).
        sku = name.rsplit(".", 1)[0]
        made = await clips.list_done_clips(request.app[DATABASE], [show_id], sku)
        if show_id not in made:
            raise Problem(404, "no such clip", kind="not-found")
    kind = POSTER_TYPE if name.endswith(".jpg") else CLIP_TYPE
    return await serve_stored(request, relative, kind, MADE_CACHE, "no such clip")
