"""A background queue of jobs kept in the database (product clips, uploads and staff clips):
one worker per process takes the oldest queued job, runs it, and looks again; when there is
none it waits to be woken (a job was queued here) or POLL_SECONDS (another process queued
one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.store.db import Database
from server.store.models import utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
POLL_SECONDS = 5.0  # jobs another process queued are found this often
PROGRESS_EVERY_S = 0.5  # a job's progress is written at most this often

Job = TypeVar("Job")
Record = TypeVar("Record")


async def do_requeue_running(db: Database, model: Any) -> int:
    """Jobs (rows of `model`) a crash left running go back to the queue (at start-up)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(model)
            .where(model.state == RUNNING)
            .values(state=QUEUED, progress_pct=0, updated_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


async def do_claim_next(
    db: Database, model: Any, view: Callable[[AsyncSession, Any], Awaitable[Record]]
) -> Record | None:
    """The oldest queued row of `model`, now running, as `view` reads it; None when there
    is none. A job another process claimed first is skipped."""
    oldest = (
        select(model.id).where(model.state == QUEUED).order_by(model.created_at, model.id).limit(1)
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
                update(model)
                .where(model.id == job_id, model.state == QUEUED)
                .values(state=RUNNING, progress_pct=0, error=None, updated_at=utcnow())
            )
            if getattr(result, "rowcount", 0) != 1:
                continue
            row = await session.get(model, job_id, populate_existing=True)
            assert row is not None
            return await view(session, row)
    return None


class QueueWorker(Generic[Job]):
    """Runs jobs one at a time until stopped. Subclasses say how a job is claimed and run,
    and may do other work (`between_jobs`) when the queue is empty."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def claim(self) -> Job | None:
        """Take the next queued job (marked running), or None."""
        raise NotImplementedError

    async def run_job(self, job: Job) -> None:
        raise NotImplementedError

    async def between_jobs(self) -> bool:
        """Work to do while no job is queued; True if some was done (look for jobs again)."""
        return False

    async def run(self) -> None:
        while not self._stopping:
            try:
                job = await self.claim()
            except Exception:
                self.log.exception("could not take a job; trying again in %s s", POLL_SECONDS)
                job = None
            if job is not None:
                try:
                    await self.run_job(job)
                except Exception:  # the database failed us; the job is retried at start-up
                    self.log.exception("job %s could not be recorded", job)
                continue
            if await self.between_jobs():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()
