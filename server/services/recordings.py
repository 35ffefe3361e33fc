"""Recordings of live shows, registered when the show ends, for the replay work."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from server.store import models
from server.store.db import Database


@dataclass(frozen=True, slots=True)
class RecordingRecord:
    id: uuid.UUID
    show_id: uuid.UUID
    path: str
    container: str
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    duration_ms: int
    bytes: int
    created_at: datetime

    @classmethod
    def of(cls, row: models.Recording) -> RecordingRecord:
        return cls(
            row.id,
            row.show_id,
            row.path,
            row.container,
            row.video_codec,
            row.audio_codec,
            row.width,
            row.height,
            row.duration_ms,
            row.bytes,
            row.created_at,
        )


@dataclass(frozen=True, slots=True)
class NewRecording:
    path: str  # relative to the data directory
    container: str
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    duration_ms: int
    bytes: int


async def do_register_recording(
    db: Database, show_id: uuid.UUID, recording: NewRecording
) -> RecordingRecord:
    async with db.transaction() as session:
        row = models.Recording(
            show_id=show_id,
            path=recording.path,
            container=recording.container,
            video_codec=recording.video_codec,
            audio_codec=recording.audio_codec,
            width=recording.width,
            height=recording.height,
            duration_ms=recording.duration_ms,
            bytes=recording.bytes,
        )
        session.add(row)
        await session.flush()
        return RecordingRecord.of(row)


async def list_recordings(db: Database, show_id: uuid.UUID) -> list[RecordingRecord]:
    async with db.read() as session:
        rows = await session.scalars(
            select(models.Recording)
            .where(models.Recording.show_id == show_id)
            .order_by(models.Recording.created_at, models.Recording.id)
        )
        return [RecordingRecord.of(r) for r in rows]
