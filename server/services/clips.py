"""Product clips: jobs queued when a show ends (one per product moment), run one at a time
by each process's `ClipWorker`, which cuts the clip from the replay (media/clips.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, update

from media.clips import ClipError, cut_clip
from media.hls import PLAYLIST
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.clips")

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
POLL_SECONDS = 5.0  # jobs another process queued are found this often
PROGRESS_EVERY_S = 0.5  # progress is written at most this often


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
    async with db.transaction() as session:
        result = await session.execute(
            update(models.ClipJob)
            .where(models.ClipJob.state == RUNNING)
            .values(state=QUEUED, progress_pct=0, updated_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


async def do_claim_next(db: Database) -> ClipRecord | None:
    """The oldest queued job, now running; None when there is none. A job another process
    claimed first is skipped."""
    oldest = (
        select(models.ClipJob.id)
        .where(models.ClipJob.state == QUEUED)
        .order_by(models.ClipJob.created_at, models.ClipJob.id)
        .limit(1)
    )
    async with db.read() as session:  # the idle worker's poll takes no write lock
        if await session.scalar(oldest) is None:
            return None
    for _ in range(5):
        async with db.transaction() as session:
            job_id = await session.scalar(oldest)
            if job_id is None:
                return None
            result = await session.execute(
                update(models.ClipJob)
                .where(models.ClipJob.id == job_id, models.ClipJob.state == QUEUED)
                .values(state=RUNNING, progress_pct=0, error=None, updated_at=utcnow())
            )
            if getattr(result, "rowcount", 0) != 1:
                continue
            row = await session.get(models.ClipJob, job_id, populate_existing=True)
            assert row is not None
            return ClipRecord.of(row)
    return None


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


class ClipWorker:
    """Runs queued clip jobs one at a time, oldest first, until stopped. `wake` makes it look
    for work now (a show just ended here); otherwise it looks every POLL_SECONDS."""

    def __init__(self, db: Database, data_dir: Path, hls_dir: Path) -> None:
        self.db = db
        self.data_dir = data_dir
        self.hls_dir = hls_dir
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                job = await do_claim_next(self.db)
            except Exception:
                log.exception("could not take a clip job; trying again in %s s", POLL_SECONDS)
                job = None
            if job is not None:
                try:
                    await self.run_job(job)
                except Exception:  # the database failed us; the job is retried at start-up
                    log.exception("clip job %s could not be recorded", job.id)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()

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
        await do_finish(self.db, job.id, relative)
