"""Product clips: jobs queued when a show ends (one per product moment), run one at a time
by each process's `ClipWorker`, which cuts the clip from the replay (media/clips.py)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from media.clips import BEFORE_S, ClipError, cut_clip
from media.hls import PLAYLIST, SEGMENT_NAME
from media.posters import make_poster
from server.services import jobs
from server.services.jobs import DONE, FAILED, PROGRESS_EVERY_S, QUEUED, QueueWorker
from server.services.storage import MADE_CACHE, Storage
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.clips")

HLS_PLAYLIST = "application/vnd.apple.mpegurl"
COPIED = ".copied"  # in a replay's folder: every file of it is in the bucket
MADE_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}


@dataclass(frozen=True, slots=True)
class ClipRecord:
    id: uuid.UUID
    show_id: uuid.UUID
    sku: str
    product_id: uuid.UUID
    state: str
    progress_pct: int
    start_s: float
    duration_s: float
    path: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: models.ClipJob) -> ClipRecord:
        return cls(
            row.id,
            row.show_id,
            row.sku,
            row.product_id,
            row.state,
            row.progress_pct,
            row.start_s,
            row.duration_s,
            row.path,
            row.error,
            row.created_at,
            row.updated_at,
        )


@dataclass(frozen=True, slots=True)
class NewClip:
    sku: str
    product_id: uuid.UUID
    start_s: float
    duration_s: float


def clip_path(show_id: uuid.UUID, sku: str) -> str:
    """Where a clip is stored, relative to the data directory."""
    return f"clips/{show_id}/{sku}.mp4"


def poster_path(show_id: uuid.UUID, sku: str) -> str:
    """Where a clip's poster is stored, relative to the data directory."""
    return f"clips/{show_id}/{sku}.jpg"


async def do_enqueue_clips(
    db: Database, show_id: uuid.UUID, clips: list[NewClip]
) -> list[ClipRecord]:
    """Queue the show's clips; a product that has one (queued or made) keeps it."""
    if not clips:
        return []
    async with db.transaction() as session:
        have = set(
            await session.scalars(
                select(models.ClipJob.sku).where(models.ClipJob.show_id == show_id)
            )
        )
        rows = []
        for clip in clips:
            if clip.sku in have:
                continue
            have.add(clip.sku)
            now = utcnow()
            row = models.ClipJob(
                show_id=show_id,
                sku=clip.sku,
                product_id=clip.product_id,
                state=QUEUED,
                progress_pct=0,
                start_s=clip.start_s,
                duration_s=clip.duration_s,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            rows.append(row)
        await session.flush()
        return [ClipRecord.of(r) for r in rows]


async def list_clips(db: Database, show_id: uuid.UUID) -> list[ClipRecord]:
    async with db.read() as session:
        rows = await session.scalars(
            select(models.ClipJob)
            .where(models.ClipJob.show_id == show_id)
            .order_by(models.ClipJob.created_at, models.ClipJob.id)
        )
        return [ClipRecord.of(r) for r in rows]


async def list_done_clips(
    db: Database, show_ids: list[uuid.UUID], sku: str
) -> dict[uuid.UUID, ClipRecord]:
    """The product's finished clip in each of these shows that has one."""
    if not show_ids:
        return {}
    async with db.read() as session:
        rows = await session.scalars(
            select(models.ClipJob).where(
                models.ClipJob.show_id.in_(show_ids),
                models.ClipJob.sku == sku,
                models.ClipJob.state == DONE,
            )
        )
        return {r.show_id: ClipRecord.of(r) for r in rows}


async def do_requeue_running(db: Database) -> int:
    """Jobs a crash left running go back to the queue (run at start-up)."""
    return await jobs.do_requeue_running(db, models.ClipJob)


async def _record(_: AsyncSession, row: models.ClipJob) -> ClipRecord:
    return ClipRecord.of(row)


async def do_claim_next(db: Database) -> ClipRecord | None:
    """The oldest queued job, now running; None when there is none."""
    return await jobs.do_claim_next(db, models.ClipJob, _record)


async def _set(db: Database, job_id: uuid.UUID, **values: object) -> None:
    async with db.transaction() as session:
        await session.execute(
            update(models.ClipJob)
            .where(models.ClipJob.id == job_id)
            .values(**values, updated_at=utcnow())
        )


async def do_progress(db: Database, job_id: uuid.UUID, pct: int) -> None:
    await _set(db, job_id, progress_pct=max(0, min(100, pct)))


async def do_finish(db: Database, job_id: uuid.UUID, path: str) -> None:
    await _set(db, job_id, state=DONE, progress_pct=100, path=path, error=None)


async def do_fail(db: Database, job_id: uuid.UUID, error: str) -> None:
    await _set(db, job_id, state=FAILED, path=None, error=error[:4000])


async def do_requeue(db: Database, job_id: uuid.UUID) -> None:
    await _set(db, job_id, state=QUEUED, progress_pct=0)


class ClipWorker(QueueWorker[ClipRecord]):
    """Runs queued clip jobs one at a time, oldest first (jobs.QueueWorker), and, with a
    bucket, copies ended shows' replays to it when no clip is waiting."""

    def __init__(
        self, db: Database, data_dir: Path, hls_dir: Path, storage: Storage | None = None
    ) -> None:
        super().__init__(log)
        self.db = db
        self.data_dir = data_dir
        self.hls_dir = hls_dir
        self.storage = storage or Storage(data_dir)
        self._replays: collections.deque[uuid.UUID] = collections.deque()
        self._catch_up = self.storage.remote  # once, at start: what earlier runs left here

    def publish_replay(self, show_id: uuid.UUID) -> None:
        """Copy the ended show's replay to the bucket, once the queued clips are cut (they
        are cut from its segments, which stay on disk too). Nothing to do without a bucket."""
        if self.storage.remote:
            self._replays.append(show_id)
            self.wake()

    async def claim(self) -> ClipRecord | None:
        return await do_claim_next(self.db)

    async def between_jobs(self) -> bool:
        if self._catch_up:
            self._catch_up = False
            await self.copy_leftovers()
            return True
        if not self._replays:
            return False
        await self.copy_replay(self._replays.popleft())
        return True

    async def run_job(self, job: ClipRecord) -> None:
        relative = clip_path(job.show_id, job.sku)
        last = [0.0]

        async def progress(pct: int) -> None:
            now = asyncio.get_running_loop().time()
            if pct < 100 and now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            await do_progress(self.db, job.id, pct)

        try:
            await cut_clip(
                self.hls_dir / str(job.show_id) / PLAYLIST,
                job.start_s,
                job.duration_s,
                self.data_dir / relative,
                on_progress=progress,
            )
        except asyncio.CancelledError:
            # Shut down mid-cut: the job runs again at the next start.
            with contextlib.suppress(Exception):
                await asyncio.shield(do_requeue(self.db, job.id))
            raise
        except ClipError as exc:
            reason = str(exc).replace(f"{self.data_dir}/", "")  # no server paths in the API
            log.warning("clip %s of show %s failed: %s", job.sku, job.show_id, reason)
            await do_fail(self.db, job.id, reason)
            return
        except Exception as exc:
            log.exception("clip %s of show %s failed", job.sku, job.show_id)
            await do_fail(self.db, job.id, str(exc) or type(exc).__name__)
            return
        await self.make_poster(job)
        poster = poster_path(job.show_id, job.sku)
        if await asyncio.to_thread(self.storage.local(poster).is_file):
            await self.storage.publish(poster, "image/jpeg", cache_control=MADE_CACHE)
        await self.storage.publish(relative, "video/mp4", cache_control=MADE_CACHE)
        await do_finish(self.db, job.id, relative)

    async def copy_replay(self, show_id: uuid.UUID) -> None:
        """The replay's playlist and segments to the bucket (kept on disk as well)."""
        folder = self.hls_dir / str(show_id)
        try:
            names = await asyncio.to_thread(
                lambda: sorted(p.name for p in folder.iterdir() if SEGMENT_NAME.fullmatch(p.name))
            )
        except OSError:
            return
        prefix = folder.relative_to(self.data_dir)
        files = [(f"{prefix}/{name}", "video/mp2t") for name in names]
        copied = await self.storage.publish_many(
            files, cache_control="public, max-age=31536000, immutable", keep_local=True
        )
        listed = await self.storage.publish(
            f"{prefix}/{PLAYLIST}", HLS_PLAYLIST, cache_control="no-cache", keep_local=True
        )
        log.info(
            "replay of %s: %d of %d segments copied to the bucket", show_id, copied, len(files)
        )
        if listed and copied == len(files):  # else copied again at the next start
            await asyncio.to_thread((folder / COPIED).touch)

    async def copy_leftovers(self) -> None:
        """What earlier runs could not copy to the bucket (it was unreachable, or the
        server stopped first): made clips, uploads and posters still on this disk, and
        ended shows' replays not marked copied. Files being made have a dot first."""
        files = await asyncio.to_thread(self._made_files)
        if files:
            copied = await self.storage.publish_many(
                files, cache_control=MADE_CACHE, keep_local=False
            )
            log.info("%d of %d files left on disk copied to the bucket", copied, len(files))
        self._replays.extend(await asyncio.to_thread(self._uncopied_replays))

    def _made_files(self) -> list[tuple[str, str]]:
        found = []
        for folder in ("clips", "videos"):
            for path in (self.data_dir / folder).rglob("*"):
                kind = MADE_TYPES.get(path.suffix)
                if kind and path.is_file() and not path.name.startswith("."):
                    found.append((str(path.relative_to(self.data_dir)), kind))
        return sorted(found)

    def _uncopied_replays(self) -> list[uuid.UUID]:
        shows = []
        for folder in sorted(self.hls_dir.glob("*/")):
            try:
                show_id = uuid.UUID(folder.name)
                ended = "#EXT-X-ENDLIST" in (folder / PLAYLIST).read_text()
            except (ValueError, OSError):
                continue
            if ended and not (folder / COPIED).exists():
                shows.append(show_id)
        return shows

    async def make_poster(self, job: ClipRecord) -> None:
        """The clip's poster: its frame about the product's moment (BEFORE_S + 1 s in). A
        clip without one is still a clip (the player shows its first frame)."""
        at = min(BEFORE_S + 1.0, job.duration_s / 2)
        try:
            await make_poster(
                self.data_dir / clip_path(job.show_id, job.sku),
                at,
                self.data_dir / poster_path(job.show_id, job.sku),
            )
        except ClipError as exc:
            log.warning("no poster for clip %s of show %s: %s", job.sku, job.show_id, exc)
