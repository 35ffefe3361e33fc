"""Webhook rules: which events exist, what an endpoint may be, how a message is signed
(Standard Webhooks, https://www.standardwebhooks.com) and when a failed attempt is retried."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from enum import StrEnum
from urllib.parse import urlsplit

from server.domain.errors import InvalidValue


class EventType(StrEnum):
    ORDER_CREATED = "order.created"  # the buyer confirmed: a sale
    ORDER_PAID = "order.paid"
    ORDER_CANCELLED = "order.cancelled"  # a placed (or paid) order was cancelled
    POINTS_EARNED = "engagement.points_earned"  # a batch of ledger credits
    TIER_CHANGED = "member.tier_changed"  # up or down
    SHOW_SUMMARY = "show.summary"  # when a show ends: its audience, engagement and sales


EVENT_TYPES: tuple[str, ...] = tuple(e.value for e in EventType)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
URL_MAX = 2048
DESCRIPTION_MAX = 500
MAX_RETRY_DELAY_SECONDS = 3600.0
# What the delivery log keeps of one attempt.
ERROR_MAX = 500
RESPONSE_EXCERPT_MAX = 1000


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (or being attempted)
    SUCCEEDED = "succeeded"  # a 2xx answer
    FAILED = "failed"  # out of attempts, or the endpoint answered 410 Gone


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes: the form Standard Webhooks libraries accept."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def new_message_id() -> str:
    """The `webhook-id`: the same on every attempt, so receivers can drop repeats."""
    return "msg_" + uuid.uuid4().hex


def secret_key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue("is not whsec_ followed by base64", field="secret") from None


def signature(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """`v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), over the exact body."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def retry_delay(attempts: int, base_seconds: float, jitter: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt: base * 2^(attempts-1), times
    a jitter factor (0.8-1.2, so endpoints that failed together do not retry together),
    at most an hour."""
    if attempts < 1:
        raise ValueError("attempts counts from 1")
    exponent = min(attempts - 1, 32)  # 2^32 * any base is past the cap already
    return min(base_seconds * 2**exponent * jitter, MAX_RETRY_DELAY_SECONDS)


def check_url(url: str) -> str:
    """An absolute http(s) URL, at most URL_MAX characters, without spaces."""
    url = url.strip()
    if not url:
        raise InvalidValue("must not be empty", field="url")
    if len(url) > URL_MAX:
        raise InvalidValue(f"longer than {URL_MAX} characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InvalidValue("is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidValue("must be an absolute http:// or https:// URL", field="url")
    if any(c.isspace() for c in url):
        raise InvalidValue("must not contain spaces", field="url")
    return url


def check_event_types(event_types: list[str] | None) -> list[str] | None:
    """None means every event type; a list names at least one known type, each once."""
    if event_types is None:
        return None
    if not event_types:
        raise InvalidValue(
            "list at least one event type, or send null for all", field="event_types"
        )
    for n, name in enumerate(event_types):
        if name not in EVENT_TYPES:
            raise InvalidValue("must be one of " + ", ".join(EVENT_TYPES), field=f"event_types.{n}")
        if name in event_types[:n]:
            raise InvalidValue(f"{name} is listed twice", field=f"event_types.{n}")
    return list(event_types)


def check_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX:
        raise InvalidValue(f"longer than {DESCRIPTION_MAX} characters", field="description")
    return description
