"""The public JSON shapes of live-room data, shared by Socket.IO events and the REST API."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from server.domain.money import Money
from server.services.chat import ChatRecord
from server.services.claims import ClaimRecord
from server.services.engagement import QuestionRecord
from server.services.pins import PinRecord, Pins
from server.services.room import RoomSettings


def when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def public_author_id(role: str, subject: str, secret_key: str) -> str:
    """A stable, opaque id for a chat author: other viewers can tell authors apart (and the
    host can moderate them) without ever seeing a member's id in the brand's CRM."""
    digest = hmac.new(
        secret_key.encode(), f"author:{role}:{subject}".encode(), hashlib.sha256
    ).digest()
    return "a_" + base64.urlsafe_b64encode(digest[:12]).decode()


def chat_message(record: ChatRecord, secret_key: str) -> dict[str, Any]:
    return {
        "type": "chat.message",
        "seq": record.seq,
        "id": str(record.id),
        "author": {
            "id": public_author_id(record.author_role, record.author_id, secret_key),
            "name": record.author_name,
            "role": record.author_role,
        },
        "text": record.text,
        "created_at": when(record.created_at),
    }


def question(record: QuestionRecord, secret_key: str) -> dict[str, Any]:
    """A question's current state; clients replace what they hold for this id."""
    return {
        "type": "question",
        "seq": record.seq,
        "id": str(record.id),
        "author": {
            "id": public_author_id(record.author_role, record.author_id, secret_key),
            "name": record.author_name,
            "role": record.author_role,
        },
        "text": record.text,
        "state": record.state.value,
        "votes": record.votes,
        "created_at": when(record.created_at),
    }


def chat_deleted(message_id: str, seq: int) -> dict[str, Any]:
    return {"type": "chat.deleted", "seq": seq, "id": message_id}


def room_settings(settings: RoomSettings, secret_key: str) -> dict[str, Any]:
    """The room's pinned message and slow mode, as of event `seq`."""
    return {
        "type": "room.settings",
        "seq": settings.seq,
        "pinned": None if settings.pinned is None else chat_message(settings.pinned, secret_key),
        "slow_mode_seconds": settings.slow_mode_seconds,
    }


def product_card(pin: PinRecord, now: datetime) -> dict[str, Any]:
    """A pinned product as viewers see it over the video. While a flash price holds, `price`
    is the flash price and `compare_at_price` the usual one."""
    draft = pin.product.draft
    flash = pin.flash_active(now)
    price = pin.flash_price if flash and pin.flash_price is not None else draft.price
    compare_at = draft.price if flash else draft.compare_at_price
    return {
        "sku": draft.sku,
        "title": draft.title,
        "image_url": draft.image_url,
        "price": _money(price),
        "compare_at_price": None if compare_at is None else _money(compare_at),
        "stock": draft.stock,
        "flash_ends_at": when(pin.flash_ends_at) if flash and pin.flash_ends_at else None,
        "pinned_at": when(pin.pinned_at),
    }


def _money(value: Money) -> dict[str, Any]:
    return {"amount_minor": value.amount_minor, "currency": value.currency}


def pinned_products(pins: Pins, now: datetime) -> list[dict[str, Any]]:
    return [product_card(p, now) for p in pins.pins]


def pins_event(pins: Pins, now: datetime) -> dict[str, Any]:
    """The whole set of pinned products, as of event `seq`: replace what you show."""
    return {"type": "products.pinned", "seq": pins.seq, "products": pinned_products(pins, now)}


def claim(record: ClaimRecord, secret_key: str) -> dict[str, Any]:
    """A comment-to-order claim, as the host's claims feed and the room's `claim` event
    show it."""
    return {
        "id": str(record.id),
        "sku": record.sku,
        "title": record.title,
        "author_id": public_author_id(record.buyer_role, record.buyer_subject, secret_key),
        "author_name": record.author_name,
        "text": record.text,
        "cart_quantity": record.cart_quantity,
        "created_at": when(record.created_at),
    }
