"""Room event numbering: every stored room change takes the show's next event number."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from server.domain.errors import Conflict, NotFound
from server.domain.shows import ShowState
from server.store import models

# The room takes events before the show (the waiting room) and during it.
OPEN_STATES = (ShowState.SCHEDULED.value, ShowState.LIVE.value)


async def next_event_seq(session: AsyncSession, show_id: uuid.UUID, count: int = 1) -> int:
    """Number the show's next room event (or the next `count`, and answer the last). The row
    lock this takes orders the show's events, so seq order is commit order; a closed room
    (ended, cancelled) takes none."""
    seq = await session.scalar(
        update(models.Show)
        .where(models.Show.id == show_id, models.Show.state.in_(OPEN_STATES))
        .values(event_seq=models.Show.event_seq + count)
        .returning(models.Show.event_seq)
    )
    if seq is None:
        show = await session.get(models.Show, show_id)
        if show is None:
            raise NotFound(f"no show {show_id}")
        raise Conflict(f"the room is closed: the show is {show.state}")
    return int(seq)
