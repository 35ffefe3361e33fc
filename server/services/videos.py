"""Videos made by staff: uploads and clips cut from a replay by hand, each with product tags
at moments of its own timeline. Queued in `videos`, made one at a time by each process's
`VideoWorker` (media/videos.py for uploads, media/clips.py for clips, media/posters.py for
the poster), and published only when every file is complete."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from media.clips import ClipError, cut_clip
from media.hls import PLAYLIST
from media.posters import make_poster
from media.videos import FFMPEG, check_made, make_video, probe, sniff
from server.domain.catalog import ProductStatus
from server.domain.errors import InvalidValue, NotFound
from server.services import jobs
from server.services.jobs import DONE, FAILED, PROGRESS_EVERY_S, QUEUED, RUNNING, QueueWorker
from server.services.storage import MADE_CACHE, Storage
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.videos")

UPLOAD, CLIP = "upload", "clip"
FOLDER = "videos"  # under the data directory
MAX_TAGS = 50
STALE_PART_S = 6 * 3600  # a temporary file this old was left by a process that died


@dataclass(frozen=True, slots=True)
class Tag:
    sku: str
    at_s: float  # seconds from the video's start


@dataclass(frozen=True, slots=True)
class VideoRecord:
    id: uuid.UUID
    kind: str
    title: str
    show_id: uuid.UUID | None
    state: str
    progress_pct: int
    error: str | None
    start_s: float | None
    duration_s: float | None
    size_bytes: int | None
    source_path: str | None
    path: str | None
    poster_path: str | None
    transcoded: bool | None
    tags: list[Tag]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.Video, tags: list[models.VideoTag]) -> VideoRecord:
        return cls(
            row.id,
            row.kind,
            row.title,
            row.show_id,
            row.state,
            row.progress_pct,
            row.error,
            row.start_s,
            row.duration_s,
            row.size_bytes,
            row.source_path,
            row.path,
            row.poster_path,
            row.transcoded,
            [Tag(t.sku, t.at_s) for t in sorted(tags, key=lambda t: t.position)],
            row.created_at,
            row.updated_at,
        )


def video_path(video_id: uuid.UUID) -> str:
    """Where a made video is kept, relative to the data directory."""
    return f"{FOLDER}/{video_id}.mp4"


def poster_path(video_id: uuid.UUID) -> str:
    return f"{FOLDER}/{video_id}.jpg"


def source_path(video_id: uuid.UUID) -> str:
    """Where an upload waits for its job (a dot first: no request can name it)."""
    return f"{FOLDER}/.{video_id}.source"


async def _records(session: AsyncSession, rows: list[models.Video]) -> list[VideoRecord]:
    ids = [row.id for row in rows]
    tags: dict[uuid.UUID, list[models.VideoTag]] = {i: [] for i in ids}
    if ids:
        for tag in await session.scalars(
            select(models.VideoTag).where(models.VideoTag.video_id.in_(ids))
        ):
            tags[tag.video_id].append(tag)
    return [VideoRecord.of(row, tags[row.id]) for row in rows]


async def _tag_rows(session: AsyncSession, video_id: uuid.UUID, tags: list[Tag]) -> None:
    """Replace the video's tags; every SKU must be an active product (InvalidValue names
    the unknown ones)."""
    if len(tags) > MAX_TAGS:
        raise InvalidValue(f"at most {MAX_TAGS} tags", field="tags")
    skus = sorted({t.sku for t in tags})
    rows = await session.execute(
        select(models.Product.sku, models.Product.id).where(
            models.Product.sku.in_(skus),
            models.Product.status == ProductStatus.ACTIVE.value,
            models.Product.deleted_at.is_(None),
        )
    )
    products = {sku: product_id for sku, product_id in rows}
    unknown = [sku for sku in skus if sku not in products]
    if unknown:
        raise InvalidValue(f"no active product with SKU {', '.join(unknown)}", field="tags")
    await session.execute(delete(models.VideoTag).where(models.VideoTag.video_id == video_id))
    for position, tag in enumerate(sorted(tags, key=lambda t: t.at_s)):
        session.add(
            models.VideoTag(
                video_id=video_id,
                position=position,
                product_id=products[tag.sku],
                sku=tag.sku,
                at_s=round(tag.at_s, 3),
            )
        )


async def do_create_upload(
    db: Database, video_id: uuid.UUID, title: str, source: str, tags: list[Tag]
) -> VideoRecord:
    """Queue an upload already stored at `source` (relative to the data directory)."""
    return await _create(
        db, models.Video(id=video_id, kind=UPLOAD, title=title, source_path=source), tags
    )


async def do_create_clip(
    db: Database,
    show_id: uuid.UUID,
    title: str,
    start_s: float,
    duration_s: float,
    tags: list[Tag],
) -> VideoRecord:
    """Queue a clip of [start_s, start_s + duration_s) of the show's replay (the caller has
    checked the range against the replay; start_s is on a keyframe)."""
    row = models.Video(
        kind=CLIP,
        title=title,
        show_id=show_id,
        start_s=round(start_s, 3),
        duration_s=round(duration_s, 3),
    )
    return await _create(db, row, tags)


async def _create(db: Database, row: models.Video, tags: list[Tag]) -> VideoRecord:
    now = utcnow()
    row.state, row.progress_pct, row.created_at, row.updated_at = QUEUED, 0, now, now
    async with db.transaction() as session:
        session.add(row)
        await session.flush()
        await _tag_rows(session, row.id, tags)
        await session.flush()
        [record] = await _records(session, [row])
        return record


async def list_videos(
    db: Database, *, kinds: list[str], states: list[str], limit: int, offset: int
) -> tuple[list[VideoRecord], int]:
    """Newest first."""
    where = []
    if kinds:
        where.append(models.Video.kind.in_(kinds))
    if states:
        where.append(models.Video.state.in_(states))
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(models.Video).where(*where))
        rows = list(
            await session.scalars(
                select(models.Video)
                .where(*where)
                .order_by(models.Video.created_at.desc(), models.Video.id)
                .limit(limit)
                .offset(offset)
            )
        )
        return await _records(session, rows), int(total or 0)


async def access_video(db: Database, video_id: uuid.UUID) -> VideoRecord:
    async with db.read() as session:
        row = await session.get(models.Video, video_id)
        if row is None:
            raise NotFound(f"no video {video_id}")
        [record] = await _records(session, [row])
        return record


async def do_replace_tags(db: Database, video_id: uuid.UUID, tags: list[Tag]) -> VideoRecord:
    """Replace the tags. A tag past the end of a made video is refused (InvalidValue naming
    it); before the video is made, tags past its end are dropped when it is."""
    async with db.transaction() as session:
        row = await session.get(models.Video, video_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no video {video_id}")
        if row.duration_s is not None and (row.state == DONE or row.kind == CLIP):
            for n, tag in enumerate(tags):
                if tag.at_s > row.duration_s:
                    raise InvalidValue(
                        f"{tag.at_s:g} s is past the end of the video ({row.duration_s:g} s)",
                        field=f"tags.{n}.at_s",
                    )
        await _tag_rows(session, video_id, tags)
        row.updated_at = utcnow()
        await session.flush()
        [record] = await _records(session, [row])
        return record


async def do_delete_video(db: Database, video_id: uuid.UUID) -> VideoRecord:
    """Remove the video's row and tags; the caller removes its files (delete_files). A job
    under way notices within PROGRESS_EVERY_S (or when it finishes) and stops, leaving no
    file."""
    async with db.transaction() as session:
        row = await session.get(models.Video, video_id)
        if row is None:
            raise NotFound(f"no video {video_id}")
        [record] = await _records(session, [row])
        await session.delete(row)
        await session.execute(delete(models.VideoTag).where(models.VideoTag.video_id == video_id))
        return record


async def delete_files(storage: Storage, record: VideoRecord) -> None:
    """The video's files, here and in the bucket (the upload's original is only here)."""
    for relative in (video_path(record.id), poster_path(record.id)):
        await storage.remove(relative)
    if record.source_path is not None:
        with contextlib.suppress(OSError):
            await asyncio.to_thread(storage.local(record.source_path).unlink, missing_ok=True)


async def list_tagged(db: Database, sku: str) -> list[VideoRecord]:
    """Made videos tagged with `sku`, newest first."""
    async with db.read() as session:
        tagged = select(models.VideoTag.video_id).where(models.VideoTag.sku == sku)
        rows = list(
            await session.scalars(
                select(models.Video)
                .where(models.Video.id.in_(tagged), models.Video.state == DONE)
                .order_by(models.Video.created_at.desc(), models.Video.id)
            )
        )
        return await _records(session, rows)


async def do_record_play(db: Database, video_id: uuid.UUID, viewer: str) -> bool:
    """A browser played the video (the embed's id for it): counted once per viewer. False
    when that viewer was counted before."""
    insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
    async with db.transaction() as session:
        result = await session.execute(
            insert(models.VideoPlay)
            .values(video_id=video_id, viewer=viewer, created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["video_id", "viewer"])
        )
        return bool(getattr(result, "rowcount", 0))


async def count_plays(db: Database, video_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Distinct viewers who played each of these videos (absent: none)."""
    if not video_ids:
        return {}
    async with db.read() as session:
        rows = await session.execute(
            select(models.VideoPlay.video_id, func.count())
            .where(models.VideoPlay.video_id.in_(video_ids))
            .group_by(models.VideoPlay.video_id)
        )
        return {video_id: int(n) for video_id, n in rows.all()}


# --- the queue ------------------------------------------------------------------------------


async def do_requeue_running(db: Database) -> int:
    """Jobs a crash left running go back to the queue (run at start-up)."""
    return await jobs.do_requeue_running(db, models.Video)


async def _record(session: AsyncSession, row: models.Video) -> VideoRecord:
    [record] = await _records(session, [row])
    return record


async def do_claim_next(db: Database) -> VideoRecord | None:
    """The oldest queued job, now running; None when there is none."""
    return await jobs.do_claim_next(db, models.Video, _record)


class VideoGone(Exception):
    """The video was deleted while its job ran."""


async def _set_running(db: Database, video_id: uuid.UUID, **values: Any) -> None:
    """Update a running job; VideoGone when it was deleted (or is no longer running)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(models.Video)
            .where(models.Video.id == video_id, models.Video.state == RUNNING)
            .values(**values, updated_at=utcnow())
        )
        if getattr(result, "rowcount", 0) != 1:
            raise VideoGone(str(video_id))


async def do_progress(db: Database, video_id: uuid.UUID, pct: int) -> None:
    await _set_running(db, video_id, progress_pct=max(0, min(100, pct)))


async def do_finish(
    db: Database, video_id: uuid.UUID, *, duration_s: float, size_bytes: int, transcoded: bool
) -> None:
    """Publish the made video; tags past its real end are dropped. VideoGone when it was
    deleted meanwhile."""
    async with db.transaction() as session:
        result = await session.execute(
            update(models.Video)
            .where(models.Video.id == video_id, models.Video.state == RUNNING)
            .values(
                state=DONE,
                progress_pct=100,
                error=None,
                path=video_path(video_id),
                poster_path=poster_path(video_id),
                source_path=None,
                duration_s=duration_s,
                size_bytes=size_bytes,
                transcoded=transcoded,
                updated_at=utcnow(),
            )
        )
        if getattr(result, "rowcount", 0) != 1:
            raise VideoGone(str(video_id))
        await session.execute(
            delete(models.VideoTag).where(
                models.VideoTag.video_id == video_id, models.VideoTag.at_s > duration_s
            )
        )


async def do_fail(db: Database, video_id: uuid.UUID, error: str) -> None:
    with contextlib.suppress(VideoGone):
        await _set_running(
            db, video_id, state=FAILED, path=None, poster_path=None, source_path=None,
            error=error[:4000],
        )  # fmt: skip


async def do_requeue(db: Database, video_id: uuid.UUID) -> None:
    with contextlib.suppress(VideoGone):
        await _set_running(db, video_id, state=QUEUED, progress_pct=0)


def _disk_reason(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return f"the disk is full: {exc.strerror}"
    return f"could not write the video: {exc.strerror or exc}"


class VideoWorker(QueueWorker[VideoRecord]):
    """Runs queued video jobs (uploads and staff clips) one at a time, oldest first
    (jobs.QueueWorker); made files go to `storage`."""

    def __init__(
        self,
        db: Database,
        data_dir: Path,
        hls_dir: Path,
        storage: Storage | None = None,
        *,
        ffmpeg_binary: str = FFMPEG,
    ) -> None:
        super().__init__(log)
        self.db = db
        self.data_dir = data_dir
        self.hls_dir = hls_dir
        self.storage = storage or Storage(data_dir)
        self.ffmpeg_binary = ffmpeg_binary

    async def claim(self) -> VideoRecord | None:
        return await do_claim_next(self.db)

    async def run(self) -> None:
        try:
            swept = await asyncio.to_thread(sweep_partials, self.data_dir / FOLDER)
            if swept:
                log.info("%d temporary video files left by a crash removed", swept)
        except OSError:
            log.exception("could not sweep temporary video files")
        await super().run()

    async def run_job(self, job: VideoRecord) -> None:
        output = self.data_dir / video_path(job.id)
        poster = self.data_dir / poster_path(job.id)
        source = self.data_dir / job.source_path if job.source_path else None
        last = [0.0]

        async def progress(pct: int) -> None:
            now = asyncio.get_running_loop().time()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            await do_progress(self.db, job.id, min(pct, 99))  # 100 once published

        try:
            duration, size, transcoded = await self._make(job, source, output, progress)
            first = next((t.at_s for t in job.tags if t.at_s < duration), None)
            at = first if first is not None else min(1.0, duration / 2)
            await make_poster(output, at, poster)
            # Published before the video is marked done: a done video is where it is served.
            await self.storage.publish(poster_path(job.id), "image/jpeg", cache_control=MADE_CACHE)
            await self.storage.publish(video_path(job.id), "video/mp4", cache_control=MADE_CACHE)
            await do_finish(
                self.db, job.id, duration_s=duration, size_bytes=size, transcoded=transcoded
            )
        except asyncio.CancelledError:
            # Shut down mid-job: the job runs again at the next start (its upload kept).
            await self._remove(output, poster)
            with contextlib.suppress(Exception):
                await asyncio.shield(do_requeue(self.db, job.id))
            raise
        except VideoGone:
            log.info("video %s was deleted while it was made", job.id)
            await self._remove(output, poster, source)
        except ClipError as exc:
            reason = str(exc).replace(f"{self.data_dir}/", "")  # no server paths in the API
            log.warning("video %s failed: %s", job.id, reason)
            await self._remove(output, poster, source)
            await do_fail(self.db, job.id, reason)
        except OSError as exc:
            log.warning("video %s failed: %s", job.id, exc)
            await self._remove(output, poster, source)
            await do_fail(self.db, job.id, _disk_reason(exc))
        except Exception as exc:
            log.exception("video %s failed", job.id)
            await self._remove(output, poster, source)
            await do_fail(self.db, job.id, str(exc) or type(exc).__name__)
        else:
            if source is not None:
                await self._remove(source)

    async def _make(
        self, job: VideoRecord, source: Path | None, output: Path, progress: Any
    ) -> tuple[float, int, bool]:
        """Make the video at `output`: its length, size and whether it was re-encoded."""
        if job.kind == CLIP:
            assert job.show_id is not None and job.start_s is not None and job.duration_s
            size = await cut_clip(
                self.hls_dir / str(job.show_id) / PLAYLIST,
                job.start_s,
                job.duration_s,
                output,
                on_progress=progress,
            )
            _, duration = await asyncio.to_thread(check_made, output)
            return round(duration, 3), size, False
        if source is None:
            raise ClipError("the uploaded file is gone")
        try:
            head = await asyncio.to_thread(_head, source)
        except FileNotFoundError:
            raise ClipError("the uploaded file is gone") from None
        container = sniff(head)
        if container is None:
            raise ClipError("not an MP4, MOV or WebM file")
        found = await asyncio.to_thread(probe, source, container)
        made = await make_video(
            source, found, output, on_progress=progress, ffmpeg_binary=self.ffmpeg_binary
        )
        return made.duration_s, made.size_bytes, made.transcoded

    async def _remove(self, *paths: Path | None) -> None:
        for path in paths:
            if path is not None:
                with contextlib.suppress(OSError):
                    await asyncio.to_thread(path.unlink, missing_ok=True)


def sweep_partials(folder: Path, *, older_than_s: float = STALE_PART_S) -> int:
    """Remove temporary files (an upload being received, a video being made) that a process
    which died left behind. Old ones only: another process may be writing a young one."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for path in folder.glob(".*.part"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(64)
