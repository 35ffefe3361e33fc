"""Staff videos over HTTP: uploads (multipart/form-data, streamed to disk under the size
limit), clips cut by hand from a replay, their jobs, tags and files, and their place in a
product's videos."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from media.clips import read_segments
from media.hls import PLAYLIST, read_playlist_text
from media.videos import sniff
from server.domain.errors import NotFound
from server.domain.shows import ShowState
from server.http import media as replay_media
from server.http import views
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY, check_json, media_type
from server.http.problems import Problem
from server.keys import DATABASE, MEDIA, SETTINGS, STORAGE, VIDEOS
from server.services import catalog, pins, shows, videos
from server.services.identity import Role
from server.services.storage import MADE_CACHE

UPLOAD_TYPE = "multipart/form-data"
FIELD_LIMIT = 64 * 1024  # the title and tags parts together
CHUNK = 256 * 1024
WRITE_EVERY = 1024 * 1024  # bytes gathered before one write to disk
MIN_CLIP_S, MAX_CLIP_S = 1.0, 600.0
VIDEO_TYPE, POSTER_TYPE = "video/mp4", "image/jpeg"
TITLE_MAX = 200


def video_view(record: videos.VideoRecord) -> dict[str, Any]:
    done = record.state == videos.DONE
    return {
        "id": str(record.id),
        "kind": record.kind,
        "title": record.title,
        "show_id": str(record.show_id) if record.show_id else None,
        "state": record.state,
        "progress_pct": record.progress_pct,
        "error": record.error,
        "start_s": record.start_s,
        "duration_s": record.duration_s,
        "size_bytes": record.size_bytes,
        "transcoded": record.transcoded,
        "video_url": f"/videos/{record.id}.mp4" if done else None,
        "poster_url": f"/videos/{record.id}.jpg" if done else None,
        "tags": [{"sku": t.sku, "at_s": t.at_s} for t in record.tags],
        "created_at": views.when(record.created_at),
        "updated_at": views.when(record.updated_at),
    }


def _accepted(request: web.Request, record: videos.VideoRecord) -> web.Response:
    if VIDEOS in request.app:
        request.app[VIDEOS].wake()
    return views.reply(
        video_view(record), status=202, headers={"Location": f"/api/v1/videos/{record.id}"}
    )


def _tags(value: Any) -> list[videos.Tag]:
    check_json({"tags": value}, "VideoTagsUpdate")
    return [videos.Tag(t["sku"], float(t["at_s"])) for t in value]


# --- uploads ------------------------------------------------------------------------------


def _too_large(limit_mb: int) -> Problem:
    return Problem(
        413,
        f"the upload is over the limit of {limit_mb} MiB (SHOWROOM_MAX_UPLOAD_MB); nothing was kept",
    )


def _disk_problem(exc: OSError) -> Problem:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return Problem(507, "the server's disk is full; the upload was not kept")
    raise exc


async def _store(part: BodyPartReader, path: Path, limit_mb: int) -> tuple[int, bytes]:
    """Stream the file part to `path`, refusing (413) as soon as it passes the limit. Its
    size and first bytes."""
    limit = limit_mb * 1024 * 1024
    size, head, pending = 0, b"", bytearray()
    file = await asyncio.to_thread(path.open, "wb")
    try:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit_mb)
            if len(head) < 64:
                head += chunk[: 64 - len(head)]
            pending += chunk
            if len(pending) >= WRITE_EVERY:
                await asyncio.to_thread(file.write, bytes(pending))
                pending.clear()
        if pending:
            await asyncio.to_thread(file.write, bytes(pending))
        await asyncio.to_thread(file.flush)
    except OSError as exc:
        raise _disk_problem(exc) from None
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(file.close)
    return size, head


async def _field(part: BodyPartReader, used: int) -> str:
    raw = bytearray()
    while chunk := await part.read_chunk(8192):
        raw += chunk
        if used + len(raw) > FIELD_LIMIT:
            raise Problem.invalid(part.name, f"the form's fields are over {FIELD_LIMIT} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Problem.invalid(part.name, "is not UTF-8", status=400) from None


async def upload_video(request: web.Request) -> web.Response:
    """A video file in multipart/form-data (`file`, optional `title` and `tags`), streamed to
    disk, then queued for the worker (202)."""
    settings = request.app[SETTINGS]
    limit_mb = settings.max_upload_mb
    if (
        request.content_length is not None
        and request.content_length > settings.max_upload_bytes + FIELD_LIMIT
    ):
        raise _too_large(limit_mb)
    if media_type(request) != UPLOAD_TYPE:
        raise Problem(
            415,
            f"send the video as {UPLOAD_TYPE} with a `file` field "
            f"(got {request.content_type or 'nothing'})",
            headers={"Accept-Post": UPLOAD_TYPE},
        )
    folder = settings.data_dir / videos.FOLDER
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    video_id = uuid.uuid4()
    partial = folder / f".{video_id}.upload.part"
    source = settings.data_dir / videos.source_path(video_id)
    fields: dict[str, str] = {}
    size, head, filename = -1, b"", None
    try:
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    raise Problem.invalid(None, "nested multipart bodies are not accepted")
                name = part.name or ""
                if name in fields or (name == "file" and size >= 0):
                    raise Problem.invalid(name, "given more than once")
                if name == "file":
                    filename = part.filename
                    size, head = await _store(part, partial, limit_mb)
                elif name in ("title", "tags"):
                    fields[name] = await _field(part, sum(map(len, fields.values())))
                else:
                    raise Problem.invalid(name or None, "unknown field; send file, title, tags")
        except (ValueError, AssertionError) as exc:  # aiohttp's words for a broken body
            raise Problem.invalid(None, f"malformed multipart body: {exc}", status=400) from None
        if size < 0:
            raise Problem.invalid("file", "is required: the video file")
        if size == 0:
            raise Problem.invalid("file", "the file is empty")
        if sniff(head) is None:
            raise Problem(
                415,
                "file: not an MP4, MOV or WebM video (recognised by its content, not its "
                "name or declared type)",
                headers={"Accept-Post": UPLOAD_TYPE},
            )
        tags: list[videos.Tag] = []
        if fields.get("tags", "").strip():
            try:
                value = json.loads(fields["tags"])
            except json.JSONDecodeError as exc:
                raise Problem.invalid("tags", f"malformed JSON: {exc.msg}") from None
            tags = _tags(value)
        title = (fields.get("title") or "").strip() or Path(filename or "").stem or "Video"
        if len(title) > TITLE_MAX:
            raise Problem.invalid("title", f"longer than {TITLE_MAX} characters")
        try:
            await asyncio.to_thread(os.replace, partial, source)
        except OSError as exc:
            raise _disk_problem(exc) from None
        try:
            record = await videos.do_create_upload(
                request.app[DATABASE],
                video_id,
                title[:TITLE_MAX],
                videos.source_path(video_id),
                tags,
            )
        except BaseException:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(source.unlink, missing_ok=True)
            raise
    finally:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(partial.unlink, missing_ok=True)
    return _accepted(request, record)


# --- clips cut by staff -------------------------------------------------------------------


async def create_show_clip(request: web.Request) -> web.Response:
    """A clip of the ended show's replay, [start_s, end_s) on the replay's timeline, queued
    (202). The clip starts on the keyframe at or before start_s; `start_s` of the answer
    says where, and tags keep their frames."""
    show_id: uuid.UUID = request[PATH]["show_id"]
    body: dict[str, Any] = request[BODY]
    db = request.app[DATABASE]
    show = await shows.access_show(db, show_id)
    if show.state is not ShowState.ENDED:
        raise Problem(
            409, f"the show is {show.state.value}; clips are cut from an ended show's replay"
        )
    info, spans = await replay_media.hls_of(request, show_id)
    hls_dir = request.app[MEDIA].hls_dir
    text = None
    if hls_dir is not None and info is not None and info.ended:
        text = await asyncio.to_thread(read_playlist_text, hls_dir / str(show_id) / PLAYLIST)
    if text is None or info is None or str(show_id) in request.app[MEDIA].hls:
        raise Problem(409, "the show has no finished replay to cut a clip from")
    start, end = float(body["start_s"]), float(body["end_s"])
    length = end - start
    if length <= 0:
        raise Problem.invalid("end_s", "must be after start_s")
    if end > info.duration_s + 1e-3:
        raise Problem.invalid(
            "end_s",
            f"clip range outside the video: the replay is {info.duration_s:g} s long",
        )
    if not MIN_CLIP_S <= length <= MAX_CLIP_S:
        raise Problem.invalid(
            "end_s", f"a clip is {MIN_CLIP_S:g} s to {MAX_CLIP_S:g} s long (asked {length:g} s)"
        )
    segments = read_segments(text)
    keyframe = max((s.media for s in segments if s.media <= start + 1e-6), default=0.0)
    shift = start - keyframe
    records = (await pins.list_moments(db, [show_id]))[show_id]
    placed = [(m.product.sku, at) for m, at, _ in replay_media.placed_pins(records, spans)]
    tags: list[videos.Tag] = []
    for n, tag in enumerate(body.get("tags", [])):
        at = tag.get("at_s")
        if at is None:  # the product's moment in the range, else the clip's start
            at = next(
                (a - start for sku, a in placed if sku == tag["sku"] and start <= a < end), 0.0
            )
        elif at > length:
            raise Problem.invalid(
                f"tags.{n}.at_s", f"is outside the clip (0 to {length:g} s from start_s)"
            )
        tags.append(videos.Tag(tag["sku"], at + shift))
    title = (body.get("title") or "").strip() or f"{show.title} ({start:g}–{end:g} s)"
    record = await videos.do_create_clip(
        db, show_id, title[:TITLE_MAX], keyframe, end - keyframe, tags
    )
    return _accepted(request, record)


# --- the jobs and their videos ------------------------------------------------------------


async def list_videos(request: web.Request) -> web.Response:
    query = request[QUERY]
    records, total = await videos.list_videos(
        request.app[DATABASE],
        kinds=query.get("kind", []),
        states=query.get("state", []),
        limit=query["limit"],
        offset=query["offset"],
    )
    return views.reply(
        {
            "items": [video_view(r) for r in records],
            "total": total,
            "limit": query["limit"],
            "offset": query["offset"],
        }
    )


async def get_video(request: web.Request) -> web.Response:
    record = await videos.access_video(request.app[DATABASE], request[PATH]["video_id"])
    principal = request[PRINCIPAL]
    if principal.role is not Role.ADMIN and (
        record.show_id is None or not principal.may_host(record.show_id)
    ):
        raise Problem(404, f"no video {record.id}", kind="not-found")  # not theirs to see
    return views.reply(video_view(record))


async def replace_video_tags(request: web.Request) -> web.Response:
    tags = [videos.Tag(t["sku"], float(t["at_s"])) for t in request[BODY]["tags"]]
    record = await videos.do_replace_tags(request.app[DATABASE], request[PATH]["video_id"], tags)
    return views.reply(video_view(record))


async def delete_video(request: web.Request) -> web.Response:
    record = await videos.do_delete_video(request.app[DATABASE], request[PATH]["video_id"])
    await videos.delete_files(request.app[STORAGE], record)
    return web.Response(status=204)


async def _done(request: web.Request) -> videos.VideoRecord:
    """The made video the path names; 404 until it is done (so a half-made one is never
    served) and once it is deleted."""
    record = await videos.access_video(request.app[DATABASE], request[PATH]["video_id"])
    if record.state != videos.DONE:
        raise Problem(404, f"the video is {record.state}, not made yet", kind="not-found")
    return record


async def video_file(request: web.Request) -> web.StreamResponse:
    record = await _done(request)
    return await replay_media.serve_stored(
        request, videos.video_path(record.id), VIDEO_TYPE, MADE_CACHE, "no such video"
    )


async def video_poster(request: web.Request) -> web.StreamResponse:
    record = await _done(request)
    return await replay_media.serve_stored(
        request, videos.poster_path(record.id), POSTER_TYPE, MADE_CACHE, "no such video"
    )


async def record_play(request: web.Request) -> web.Response:
    record = await _done(request)
    await videos.do_record_play(request.app[DATABASE], record.id, request[PATH]["viewer"])
    return web.Response(status=204)


# --- a product's videos -------------------------------------------------------------------


async def with_staff_videos(
    request: web.Request, sku: str, items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The product's replays and their clips (`items`, most watched show first), with the
    made clips and uploads tagged with `sku` added: a staff clip right after its show's
    replay and clip (it shares that show's audience), other staff clips and uploads by
    their distinct plays on brands' pages (the embed counts them), placed among the shows
    by viewers."""
    db = request.app[DATABASE]
    tagged = await videos.list_tagged(db, sku)
    if not tagged:
        return items
    card = await catalog.access_product(db, sku, include_hidden=False)
    plays = await videos.count_plays(db, [r.id for r in tagged])
    draft = card.draft
    show_ids = {r.show_id for r in tagged if r.show_id is not None}
    known = {uuid.UUID(i["show_id"]): i for i in items if i["kind"] == "replay"}
    about: dict[uuid.UUID, Any] = {}
    for show_id in show_ids - set(known):
        with contextlib.suppress(NotFound):  # deleted since
            about[show_id] = await shows.access_show(db, show_id)

    def item(record: videos.VideoRecord) -> dict[str, Any]:
        moments: list[dict[str, Any]] = [
            {
                "sku": draft.sku,
                "title": draft.title,
                "image_url": draft.image_url,
                "price": views.money(draft.price),
                "compare_at_price": views.money(draft.compare_at_price),
                "stock": draft.stock,
                "at_s": t.at_s,
                "until_s": None,
            }
            for t in record.tags
            if t.sku == sku
        ]
        replay = known.get(record.show_id) if record.show_id else None
        show = about.get(record.show_id) if record.show_id else None
        watch = None
        if record.show_id is not None and record.start_s is not None:
            watch = f"/watch/{record.show_id}?t={record.start_s + (moments[0]['at_s'] if moments else 0):g}"
        return {
            "kind": record.kind,
            "video_id": str(record.id),
            "show_id": str(record.show_id) if record.show_id else None,
            "title": record.title,
            "locale": replay["locale"] if replay else (show.locale if show else None),
            "viewers": replay["viewers"] if replay else plays.get(record.id, 0),
            "peak_viewers": replay["peak_viewers"]
            if replay
            else (show.peak_viewers if show else 0),
            "playlist_url": None,
            "video_url": f"/videos/{record.id}.mp4",
            "poster_url": f"/videos/{record.id}.jpg",
            "watch_url": watch,
            "duration_s": record.duration_s or 0.0,
            "started_at": None,
            "moments": moments,
        }

    # Each show's replay, its clip and its staff clips stay together, ranked by the show's
    # viewers; the other videos rank by their own distinct plays among those groups (a
    # show first on a tie), then clips before uploads, then the newest first.
    groups: list[tuple[int, list[dict[str, Any]]]] = []
    placed: set[uuid.UUID] = set()
    for existing in items:
        if groups and groups[-1][1][0]["show_id"] == existing["show_id"]:
            groups[-1][1].append(existing)
            continue
        groups.append((existing["viewers"], [existing]))
    for _, group in groups:
        for record in tagged:
            if str(record.show_id) == group[0]["show_id"]:
                group.append(item(record))
                placed.add(record.id)
    rest = [r for r in tagged if r.id not in placed]  # newest first already
    rest.sort(key=lambda r: (-plays.get(r.id, 0), r.kind != videos.CLIP))
    out: list[dict[str, Any]] = []
    for record in rest:
        while groups and groups[0][0] >= plays.get(record.id, 0):
            out += groups.pop(0)[1]
        out.append(item(record))
    for _, group in groups:
        out += group
    return out
