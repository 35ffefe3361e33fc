"""Show use-cases: schedule, edit and move a show through its lifecycle."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from server.domain import claims as claim_rules
from server.domain import handoff
from server.domain.errors import Conflict, InvalidValue, NotFound
from server.domain.handoff import CheckoutMode
from server.domain.money import check_currency
from server.domain.shows import ShowAction, ShowState, check_editable, next_state
from server.domain.text import SUPPORTED_LOCALES, normalize
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

TITLE_MAX = 200
DESCRIPTION_MAX = 5000
HOST_NAME_MAX = 100


@dataclass(frozen=True, slots=True)
class ShowRecord:
    id: uuid.UUID
    title: str
    description: str
    scheduled_start: datetime
    state: ShowState
    host_name: str
    locale: str
    currency: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    cancelled_at: datetime | None
    peak_viewers: int
    checkout_mode: CheckoutMode = CheckoutMode.NATIVE
    handoff_url: str | None = None
    claim_keyword: str | None = "+1"

    @classmethod
    def of(cls, row: models.Show) -> ShowRecord:
        return cls(
            id=row.id,
            title=row.title,
            description=row.description,
            scheduled_start=row.scheduled_start,
            state=ShowState(row.state),
            host_name=row.host_name,
            locale=row.locale,
            currency=row.currency,
            created_at=row.created_at,
            updated_at=row.updated_at,
            started_at=row.started_at,
            ended_at=row.ended_at,
            cancelled_at=row.cancelled_at,
            peak_viewers=row.peak_viewers,
            checkout_mode=CheckoutMode(row.checkout_mode),
            handoff_url=row.handoff_url,
            claim_keyword=row.claim_keyword,
        )


def check_show_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Normalize and validate the editable show fields present in `fields`."""
    clean: dict[str, Any] = {}
    for name, limit, required in (
        ("title", TITLE_MAX, True),
        ("description", DESCRIPTION_MAX, False),
        ("host_name", HOST_NAME_MAX, False),
    ):
        if name in fields:
            text = normalize(fields[name])
            if required and not text:
                raise InvalidValue("must not be empty", field=name)
            if len(text) > limit:
                raise InvalidValue(f"longer than {limit} characters", field=name)
            clean[name] = text
    if "locale" in fields:
        if fields["locale"] not in SUPPORTED_LOCALES:
            raise InvalidValue(f"must be one of {', '.join(SUPPORTED_LOCALES)}", field="locale")
        clean["locale"] = fields["locale"]
    if "currency" in fields:
        clean["currency"] = check_currency(fields["currency"])
    if "scheduled_start" in fields:
        start = fields["scheduled_start"]
        if not isinstance(start, datetime) or start.tzinfo is None:
            raise InvalidValue("must be a date-time with a UTC offset", field="scheduled_start")
        clean["scheduled_start"] = start
    if "checkout_mode" in fields:
        try:
            clean["checkout_mode"] = CheckoutMode(fields["checkout_mode"]).value
        except ValueError:
            modes = ", ".join(m.value for m in CheckoutMode)
            raise InvalidValue(f"must be one of {modes}", field="checkout_mode") from None
    if "handoff_url" in fields:
        url = fields["handoff_url"]
        clean["handoff_url"] = None if url is None else handoff.check_template(url)
    if "claim_keyword" in fields:
        word = fields["claim_keyword"]
        clean["claim_keyword"] = None if word is None else claim_rules.check_keyword(word)
    return clean


def _check_checkout(row: models.Show) -> None:
    if row.checkout_mode == CheckoutMode.HANDOFF.value and not row.handoff_url:
        raise InvalidValue("is required when checkout_mode is handoff", field="handoff_url")


async def do_create_show(
    db: Database, fields: dict[str, Any], *, default_locale: str, default_currency: str
) -> ShowRecord:
    clean = check_show_fields(fields)
    for name in ("title", "scheduled_start"):
        if name not in clean:
            raise InvalidValue("is required", field=name)
    clean.setdefault("locale", default_locale)
    clean.setdefault("currency", default_currency)
    async with db.transaction() as session:
        row = models.Show(state=ShowState.SCHEDULED.value, **clean)
        _check_checkout(row)
        session.add(row)
        await session.flush()
        return ShowRecord.of(row)


async def access_show(db: Database, show_id: uuid.UUID) -> ShowRecord:
    async with db.read() as session:
        row = await session.get(models.Show, show_id)
        if row is None:
            raise NotFound(f"no show {show_id}")
        return ShowRecord.of(row)


async def list_shows(
    db: Database,
    *,
    states: list[ShowState] | None,
    limit: int,
    offset: int,
    only_show: uuid.UUID | None = None,
) -> tuple[list[ShowRecord], int]:
    """Shows ordered by scheduled start (soonest first), with the total for paging."""
    query = select(models.Show)
    if states:
        query = query.where(models.Show.state.in_([s.value for s in states]))
    if only_show is not None:
        query = query.where(models.Show.id == only_show)
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.scalars(
            query.order_by(models.Show.scheduled_start, models.Show.id).limit(limit).offset(offset)
        )
        return [ShowRecord.of(r) for r in rows], int(total or 0)


async def do_update_show(db: Database, show_id: uuid.UUID, fields: dict[str, Any]) -> ShowRecord:
    clean = check_show_fields(fields)
    async with db.transaction() as session:
        row = await session.get(models.Show, show_id)
        if row is None:
            raise NotFound(f"no show {show_id}")
        changed = {k for k, v in clean.items() if getattr(row, k) != v}
        check_editable(ShowState(row.state), changed)
        for name in changed:
            setattr(row, name, clean[name])
        _check_checkout(row)
        if changed:
            row.updated_at = utcnow()
        await session.flush()
        return ShowRecord.of(row)


_STAMP = {
    ShowAction.START: "started_at",
    ShowAction.END: "ended_at",
    ShowAction.CANCEL: "cancelled_at",
}


async def do_transition_show(db: Database, show_id: uuid.UUID, action: ShowAction) -> ShowRecord:
    """Move a show along its lifecycle; the UPDATE re-checks the state it read, so two
    hosts pressing "go live" at once cannot both succeed."""
    async with db.transaction() as session:
        row = await session.get(models.Show, show_id)
        if row is None:
            raise NotFound(f"no show {show_id}")
        current = ShowState(row.state)
        target = next_state(current, action)
        now = utcnow()
        result = await session.execute(
            update(models.Show)
            .where(models.Show.id == show_id, models.Show.state == current.value)
            .values(state=target.value, updated_at=now, **{_STAMP[action]: now})
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"the show changed state during {action.value}; retry")
        await session.refresh(row)
        return ShowRecord.of(row)
