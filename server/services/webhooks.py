"""Webhooks: a durable outbox of signed events and the dispatcher that delivers it.

`enqueue` writes the message and one pending delivery per subscribed endpoint inside the
caller's transaction, so an order change and its event commit together or not at all.
The `Dispatcher` (one per process, started by server/app.py) takes due deliveries with one
conditional `UPDATE ... RETURNING` that pushes `next_attempt_at` forward as a lease and
counts the attempt, so two processes never send the same delivery at once; it POSTs each
with a timeout, concurrently up to a bound, and records the attempt: 2xx succeeds, 410 Gone
disables the endpoint, anything else is retried with exponential back-off until the
attempts run out. A process that dies mid-send leaves a lease that simply runs out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy import event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.domain.errors import Conflict, NotFound
from server.domain.webhooks import (
    ERROR_MAX,
    EVENT_TYPES,
    RESPONSE_EXCERPT_MAX,
    DeliveryStatus,
    check_description,
    check_event_types,
    check_url,
    new_message_id,
    new_secret,
    retry_delay,
    signed_headers,
)
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.webhooks")

USER_AGENT = "Showroom-Webhooks/1"


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- waking the dispatcher ------------------------------------------------------------------
# Dispatchers of this process, by the database they serve. A commit that wrote deliveries
# wakes them at once; dispatchers in other processes find the work on their next poll.
_WAKERS: dict[str, set[Callable[[], None]]] = {}
_WAKE_HOOKED = "showroom.webhooks.wake"


def _database_key(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def _wake_after_commit(session: AsyncSession) -> None:
    sync = session.sync_session
    if sync.info.get(_WAKE_HOOKED):
        return
    sync.info[_WAKE_HOOKED] = True
    key = sync.get_bind().engine.url.render_as_string(hide_password=False)

    def wake(_session: Session) -> None:
        for waker in list(_WAKERS.get(key, ())):
            waker()

    event.listen(sync, "after_commit", wake, once=True)


# --- the outbox -----------------------------------------------------------------------------


def message_body(event_type: str, timestamp: datetime, data: dict[str, Any]) -> str:
    """The JSON sent (and signed) on every attempt, per Standard Webhooks."""
    payload = {"type": event_type, "timestamp": _iso(timestamp), "data": data}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


async def enqueue(session: AsyncSession, event_type: str, data: dict[str, Any]) -> None:
    """Queue `event_type` for every enabled endpoint subscribed to it, in the caller's
    transaction. With no such endpoint nothing is written."""
    await enqueue_many(session, event_type, [data])


async def enqueue_many(session: AsyncSession, event_type: str, datas: list[dict[str, Any]]) -> None:
    """Queue one `event_type` message per item of `datas`, in that order, as `enqueue`
    does, with one read of the endpoints and one insert each for the messages and their
    deliveries (a flush of thousands of viewers' points is a handful of statements)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not datas:
        return
    endpoint = models.WebhookEndpoint
    endpoints = [
        endpoint_id
        for endpoint_id, types in await session.execute(
            select(endpoint.id, endpoint.event_types).where(endpoint.enabled.is_(True))
        )
        if types is None or event_type in types
    ]
    if not endpoints:
        return
    start = utcnow()
    # A microsecond apart, so they are taken and listed in the order given.
    times = [start + timedelta(microseconds=n) for n in range(len(datas))]
    messages = [
        {
            "id": new_message_id(),
            "event_type": event_type,
            "body": message_body(event_type, at, data),
            "created_at": at,
        }
        for data, at in zip(datas, times, strict=True)
    ]
    await session.execute(insert(models.WebhookMessage), messages)
    await session.execute(
        insert(models.WebhookDelivery),
        [
            {
                "id": uuid.uuid4(),
                "message_id": message["id"],
                "endpoint_id": endpoint_id,
                "status": DeliveryStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": message["created_at"],
                "created_at": message["created_at"],
            }
            for message in messages
            for endpoint_id in endpoints
        ],
    )
    _wake_after_commit(session)


# --- endpoints ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    id: uuid.UUID
    url: str
    event_types: list[str] | None
    description: str
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


def _endpoint(row: models.WebhookEndpoint) -> EndpointRecord:
    return EndpointRecord(
        row.id,
        row.url,
        list(row.event_types) if row.event_types is not None else None,
        row.description,
        row.enabled,
        row.disabled_reason,
        row.created_at,
        row.updated_at,
    )


async def do_create_endpoint(
    db: Database, *, url: str, event_types: list[str] | None, description: str = ""
) -> tuple[EndpointRecord, str]:
    """A new endpoint and its signing secret (shown to the admin this once)."""
    url = check_url(url)
    event_types = check_event_types(event_types)
    description = check_description(description)
    now = utcnow()
    secret = new_secret()
    async with db.transaction() as session:
        row = models.WebhookEndpoint(
            id=uuid.uuid4(),
            url=url,
            secret=secret,
            event_types=event_types,
            description=description,
            enabled=True,
            disabled_reason=None,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        await session.flush()
        return _endpoint(row), secret


async def list_endpoints(db: Database) -> list[EndpointRecord]:
    async with db.read() as session:
        rows = await session.scalars(
            select(models.WebhookEndpoint).order_by(
                models.WebhookEndpoint.created_at, models.WebhookEndpoint.id
            )
        )
        return [_endpoint(r) for r in rows]


async def access_endpoint(db: Database, endpoint_id: uuid.UUID) -> EndpointRecord:
    async with db.read() as session:
        row = await session.get(models.WebhookEndpoint, endpoint_id)
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        return _endpoint(row)


async def do_update_endpoint(
    db: Database, endpoint_id: uuid.UUID, changes: dict[str, Any]
) -> EndpointRecord:
    """Change url, event_types, description or enabled. Enabling clears the reason it was
    disabled, and deliveries still pending resume."""
    checked: dict[str, Any] = {}
    if "url" in changes:
        checked["url"] = check_url(changes["url"])
    if "event_types" in changes:
        checked["event_types"] = check_event_types(changes["event_types"])
    if "description" in changes:
        checked["description"] = check_description(changes["description"])
    async with db.transaction() as session:
        row = await session.get(models.WebhookEndpoint, endpoint_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        for name, value in checked.items():
            setattr(row, name, value)
        if "enabled" in changes and bool(changes["enabled"]) != row.enabled:
            row.enabled = bool(changes["enabled"])
            row.disabled_reason = None if row.enabled else "disabled by an admin"
            if row.enabled:
                _wake_after_commit(session)
        row.updated_at = utcnow()
        await session.flush()
        return _endpoint(row)


async def do_delete_endpoint(db: Database, endpoint_id: uuid.UUID) -> None:
    """The endpoint goes, with its deliveries and their log."""
    async with db.transaction() as session:
        row = await session.get(models.WebhookEndpoint, endpoint_id)
        if row is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        await session.delete(row)


# --- the delivery log -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    id: uuid.UUID
    endpoint_id: uuid.UUID
    message_id: str
    event_type: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    succeeded_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    attempt: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None
    response_body: str | None


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    delivery: DeliveryRecord
    payload: dict[str, Any]
    attempts: list[AttemptRecord]


def _delivery(row: models.WebhookDelivery, event_type: str) -> DeliveryRecord:
    return DeliveryRecord(
        row.id,
        row.endpoint_id,
        row.message_id,
        event_type,
        DeliveryStatus(row.status),
        row.attempts,
        row.next_attempt_at,
        row.last_status_code,
        row.last_error,
        row.last_attempt_at,
        row.succeeded_at,
        row.created_at,
    )


async def list_deliveries(
    db: Database,
    *,
    endpoint_id: uuid.UUID | None = None,
    statuses: list[DeliveryStatus] | None = None,
    event_types: list[str] | None = None,
    limit: int = 20,
    offset: int = 0,
) -> tuple[list[DeliveryRecord], int]:
    """Newest first."""
    query = select(models.WebhookDelivery, models.WebhookMessage.event_type).join(
        models.WebhookMessage, models.WebhookMessage.id == models.WebhookDelivery.message_id
    )
    if endpoint_id is not None:
        query = query.where(models.WebhookDelivery.endpoint_id == endpoint_id)
    if statuses:
        query = query.where(models.WebhookDelivery.status.in_([s.value for s in statuses]))
    if event_types:
        query = query.where(models.WebhookMessage.event_type.in_(event_types))
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(query.subquery()))
        rows = await session.execute(
            query.order_by(models.WebhookDelivery.created_at.desc(), models.WebhookDelivery.id)
            .limit(limit)
            .offset(offset)
        )
        return [_delivery(d, t) for d, t in rows], int(total or 0)


async def access_delivery(db: Database, delivery_id: uuid.UUID) -> DeliveryDetail:
    """A delivery with the payload sent and every attempt, oldest first."""
    async with db.read() as session:
        found = (
            await session.execute(
                select(models.WebhookDelivery, models.WebhookMessage)
                .join(
                    models.WebhookMessage,
                    models.WebhookMessage.id == models.WebhookDelivery.message_id,
                )
                .where(models.WebhookDelivery.id == delivery_id)
            )
        ).first()
        if found is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        delivery, message = found
        attempts = await session.scalars(
            select(models.WebhookAttempt)
            .where(models.WebhookAttempt.delivery_id == delivery_id)
            .order_by(models.WebhookAttempt.attempt)
        )
        return DeliveryDetail(
            _delivery(delivery, message.event_type),
            json.loads(message.body),
            [
                AttemptRecord(
                    a.attempt, a.at, a.status_code, a.duration_ms, a.error, a.response_body
                )
                for a in attempts
            ],
        )


async def do_retry_delivery(db: Database, delivery_id: uuid.UUID) -> DeliveryRecord:
    """Send a failed delivery again now: one more attempt (the same webhook-id, the same
    body). If that fails too, it is failed again."""
    now = utcnow()
    async with db.transaction() as session:
        delivery = await session.get(models.WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        if delivery.status != DeliveryStatus.FAILED.value:
            raise Conflict(f"the delivery is {delivery.status}; only a failed one is retried")
        endpoint = await session.get(models.WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            raise Conflict("its endpoint is disabled; enable it first")
        message = await session.get(models.WebhookMessage, delivery.message_id)
        assert message is not None
        delivery.status = DeliveryStatus.PENDING.value
        delivery.next_attempt_at = now
        await session.flush()
        _wake_after_commit(session)
        return _delivery(delivery, message.event_type)


# --- delivering -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed delivery: this process owns attempt number `attempt` until the lease ends."""

    delivery_id: uuid.UUID
    attempt: int
    message_id: str
    body: str
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    error: str | None
    response_body: str | None
    duration_ms: int
    at: datetime


def _waiting() -> tuple[Any, ...]:
    """Pending deliveries to enabled endpoints."""
    enabled = select(models.WebhookEndpoint.id).where(models.WebhookEndpoint.enabled.is_(True))
    return (
        models.WebhookDelivery.status == DeliveryStatus.PENDING.value,
        models.WebhookDelivery.endpoint_id.in_(enabled.scalar_subquery()),
    )


async def upcoming(db: Database, limit: int) -> list[tuple[uuid.UUID, datetime]]:
    """The `limit` pending deliveries due soonest, with when each is due. A plain read:
    most polls find nothing due, and take no write lock for that."""
    async with db.read() as session:
        rows = await session.execute(
            select(models.WebhookDelivery.id, models.WebhookDelivery.next_attempt_at)
            .where(*_waiting(), models.WebhookDelivery.next_attempt_at.is_not(None))
            .order_by(models.WebhookDelivery.next_attempt_at)
            .limit(limit)
        )
        return [(delivery_id, at) for delivery_id, at in rows if at is not None]


async def due_ids(db: Database, limit: int) -> list[uuid.UUID]:
    """Deliveries due now, earliest first."""
    now = utcnow()
    return [delivery_id for delivery_id, at in await upcoming(db, limit) if at <= now]


async def claim_due(db: Database, *, limit: int, lease: timedelta) -> list[Job]:
    """Take up to `limit` due deliveries (see `claim`)."""
    return await claim(db, await due_ids(db, limit), lease)


async def claim(db: Database, ids: list[uuid.UUID], lease: timedelta) -> list[Job]:
    """Take those of `ids` still due: each is leased (next_attempt_at moves to the end of
    the lease) and its attempt counted, in one conditional UPDATE. Of two processes that
    saw the same delivery due, the second finds it leased (on PostgreSQL it waits for the
    first's row lock and re-checks), so it is sent by one of them only."""
    if not ids:
        return []
    now = utcnow()
    async with db.transaction() as session:
        claimed = (
            await session.execute(
                update(models.WebhookDelivery)
                .where(
                    models.WebhookDelivery.id.in_(ids),
                    models.WebhookDelivery.next_attempt_at <= now,
                    *_waiting(),
                )
                .values(
                    next_attempt_at=now + lease,
                    attempts=models.WebhookDelivery.attempts + 1,
                    last_attempt_at=now,
                )
                .returning(
                    models.WebhookDelivery.id,
                    models.WebhookDelivery.attempts,
                    models.WebhookDelivery.message_id,
                    models.WebhookDelivery.endpoint_id,
                )
                .execution_options(synchronize_session=False)
            )
        ).all()
        if not claimed:
            return []
        messages = {
            m.id: m
            for m in await session.scalars(
                select(models.WebhookMessage).where(
                    models.WebhookMessage.id.in_({row[2] for row in claimed})
                )
            )
        }
        endpoints = {
            e.id: e
            for e in await session.scalars(
                select(models.WebhookEndpoint).where(
                    models.WebhookEndpoint.id.in_({row[3] for row in claimed})
                )
            )
        }
        return [
            Job(
                delivery_id,
                attempt,
                message_id,
                messages[message_id].body,
                endpoints[endpoint_id].url,
                endpoints[endpoint_id].secret,
            )
            for delivery_id, attempt, message_id, endpoint_id in claimed
        ]


async def release(db: Database, job: Job, reason: str) -> None:
    """Give back a claimed delivery whose attempt was cut short by a shutdown: logged, and
    due again at once (for another process, or this one when it is back)."""
    now = utcnow()
    async with db.transaction() as session:
        delivery = await session.get(models.WebhookDelivery, job.delivery_id, with_for_update=True)
        if delivery is None:
            return
        session.add(
            models.WebhookAttempt(
                delivery_id=job.delivery_id,
                attempt=job.attempt,
                at=now,
                duration_ms=0,
                error=reason,
            )
        )
        if delivery.status == DeliveryStatus.PENDING.value and delivery.attempts == job.attempt:
            delivery.next_attempt_at = now
            delivery.last_error = reason
        await session.flush()


async def record_attempt(
    db: Database,
    job: Job,
    outcome: Outcome,
    *,
    max_attempts: int,
    retry_base_seconds: float,
    jitter: float = 1.0,
) -> DeliveryStatus | None:
    """Log the attempt and move the delivery on: succeeded (2xx), failed (410 Gone, which
    also disables the endpoint, or out of attempts) or pending again after a back-off.
    None when the delivery is gone, or its lease ran out and another attempt followed."""
    async with db.transaction() as session:
        delivery = await session.get(models.WebhookDelivery, job.delivery_id, with_for_update=True)
        if delivery is None:  # its endpoint was deleted meanwhile
            return None
        session.add(
            models.WebhookAttempt(
                delivery_id=job.delivery_id,
                attempt=job.attempt,
                at=outcome.at,
                status_code=outcome.status_code,
                duration_ms=outcome.duration_ms,
                error=outcome.error,
                response_body=outcome.response_body,
            )
        )
        if delivery.status != DeliveryStatus.PENDING.value or delivery.attempts != job.attempt:
            await session.flush()
            return None
        code = outcome.status_code
        delivery.last_status_code = code
        delivery.last_attempt_at = outcome.at
        if code is not None and 200 <= code < 300:
            delivery.status = DeliveryStatus.SUCCEEDED.value
            delivery.succeeded_at = outcome.at
            delivery.next_attempt_at = None
            delivery.last_error = None
        elif code == 410:
            delivery.status = DeliveryStatus.FAILED.value
            delivery.next_attempt_at = None
            delivery.last_error = "410 Gone: the endpoint was disabled"
            await session.execute(
                update(models.WebhookEndpoint)
                .where(models.WebhookEndpoint.id == delivery.endpoint_id)
                .values(
                    enabled=False,
                    disabled_reason=f"answered 410 Gone at {_iso(outcome.at)}",
                    updated_at=outcome.at,
                )
                .execution_options(synchronize_session=False)
            )
        else:
            delivery.last_error = outcome.error or f"HTTP {code}"
            if delivery.attempts >= max_attempts:
                delivery.status = DeliveryStatus.FAILED.value
                delivery.next_attempt_at = None
            else:
                wait = retry_delay(delivery.attempts, retry_base_seconds, jitter)
                delivery.next_attempt_at = utcnow() + timedelta(seconds=wait)
        await session.flush()
        return DeliveryStatus(delivery.status)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def send(http: aiohttp.ClientSession, job: Job, timeout_seconds: float) -> Outcome:
    """One signed POST. Redirects are not followed (a 3xx is a failed attempt)."""
    at = utcnow()
    started = time.perf_counter()
    headers = signed_headers(job.secret, job.message_id, int(time.time()), job.body)
    status: int | None = None
    error: str | None = None
    excerpt: str | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            async with http.post(
                job.url, data=job.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                raw = b""
                while len(raw) < RESPONSE_EXCERPT_MAX:
                    chunk = await response.content.read(RESPONSE_EXCERPT_MAX - len(raw))
                    if not chunk:
                        break
                    raw += chunk
                excerpt = _clip(raw.decode("utf-8", "replace"), RESPONSE_EXCERPT_MAX) or None
    except TimeoutError:
        error = f"no answer within {timeout_seconds:g} s"
    except aiohttp.ClientError as exc:
        error = _clip(f"{type(exc).__name__}: {exc}", ERROR_MAX)
    except (OSError, ValueError) as exc:  # e.g. a URL aiohttp cannot connect to at all
        error = _clip(f"{type(exc).__name__}: {exc}", ERROR_MAX)
    if error is not None:
        status = None  # a timeout while reading the body is still a failed attempt
    elif status is not None and not 200 <= status < 300:
        error = f"HTTP {status}"
    duration = round((time.perf_counter() - started) * 1000)
    return Outcome(status, error, excerpt, duration, at)


class Dispatcher:
    """Delivers due webhooks: claims as many as it has free slots, sends them concurrently,
    and sleeps until woken (a local commit, a finished send), until the next pending
    delivery is due, or at most `poll_seconds` (work queued by other processes).

    `stop()` ends it gracefully: a database call under way completes, attempts still
    waiting for an answer are cut short and given back (due again at once), and results
    already in are written."""

    def __init__(
        self,
        db: Database,
        *,
        timeout_seconds: float,
        max_attempts: int,
        retry_base_seconds: float,
        concurrency: int = 16,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        # Long enough for the attempt and its bookkeeping; a crashed process's claims
        # become due again when it ends.
        self.lease = timedelta(seconds=timeout_seconds + 30)
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._sending: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping = True
        self._wakeup.set()

    async def run(self) -> None:
        key = _database_key(self.db)
        _WAKERS.setdefault(key, set()).add(self.wake)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        try:
            async with aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}
            ) as http:
                while not self._stopping:
                    await self._round(http)
                for task in self._sending:
                    task.cancel()
                await asyncio.gather(*self._inflight, return_exceptions=True)
        finally:
            wakers = _WAKERS.get(key)
            if wakers is not None:
                wakers.discard(self.wake)
                if not wakers:
                    del _WAKERS[key]
            for task in self._inflight:  # cancelled outright: the leases run out instead
                task.cancel()
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _round(self, http: aiohttp.ClientSession) -> None:
        self._wakeup.clear()
        delay = self.poll_seconds
        free = self.concurrency - len(self._inflight)
        if free > 0:
            try:
                now = utcnow()
                soonest = await upcoming(self.db, free + 1)
                due = [delivery_id for delivery_id, at in soonest if at <= now]
                jobs = await claim(self.db, due[:free], self.lease)
                for job in jobs:
                    task = asyncio.create_task(self._deliver(http, job), name="webhook-delivery")
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                if len(due) > free or len(jobs) < len(due):
                    return  # more are due, or others took some: look again at once
                later = [at for _, at in soonest if at > now]
                if later:
                    delay = min(delay, (later[0] - now).total_seconds())
            except Exception:
                log.exception("could not claim webhook deliveries")
        if self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.01)):
                await self._wakeup.wait()

    async def _deliver(self, http: aiohttp.ClientSession, job: Job) -> None:
        me = asyncio.current_task()
        assert me is not None
        try:
            self._sending.add(me)
            try:
                outcome = await send(http, job, self.timeout_seconds)
            except asyncio.CancelledError:
                if self._stopping:
                    self._sending.discard(me)
                    await release(self.db, job, "interrupted: the server stopped")
                raise
            finally:
                self._sending.discard(me)
            status = await record_attempt(
                self.db,
                job,
                outcome,
                max_attempts=self.max_attempts,
                retry_base_seconds=self.retry_base_seconds,
                jitter=random.uniform(0.8, 1.2),
            )
            if status is DeliveryStatus.FAILED:
                log.warning(
                    "webhook %s to %s failed after %d attempts: %s",
                    job.message_id,
                    job.url,
                    job.attempt,
                    outcome.error,
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease runs out and the delivery is attempted again.
            log.exception("webhook delivery %s could not be recorded", job.delivery_id)
        finally:
            self.wake()  # a slot is free
