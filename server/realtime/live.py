"""The /live Socket.IO namespace: authenticate the socket, validate each event, call a
service, answer with an ack. Bad input gets an error ack and the connection stays up."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError

from server.config import Settings
from server.domain.chat import BannedWordMode, BannedWords, Blocked, TokenBucket, check_chat_text
from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.domain.shows import ShowState
from server.realtime import payloads
from server.realtime.rooms import RoomHub
from server.services import chat
from server.services.identity import GUEST_COOKIE, Principal, Role, Unauthenticated, identify
from server.store.db import Database

log = logging.getLogger("showroom.realtime")

NAMESPACE = "/live"
MAX_PAYLOAD_BYTES = 16 * 1024

Ack = dict[str, Any]
Handler = Callable[[str, dict[str, Any]], Awaitable[Ack]]


class EventError(Exception):
    """Answered as {"ok": false, "error": {"code", "message"}} with optional extras."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    def ack(self) -> Ack:
        return {"ok": False, "error": {"code": self.code, "message": self.message, **self.extra}}


_DOMAIN_CODES = {
    NotFound: "not_found",
    Conflict: "conflict",
    InvalidValue: "invalid",
    Blocked: "blocked_word",
}


class LiveNamespace(socketio.AsyncNamespace):
    def __init__(self, *, db: Callable[[], Database], settings: Settings, hub: RoomHub) -> None:
        super().__init__(NAMESPACE)
        self._db = db
        self.settings = settings
        self.hub = hub
        self.banned = BannedWords(settings.banned_words, BannedWordMode(settings.banned_words_mode))
        self.principals: dict[str, Principal] = {}
        # One bucket per member per show, shared by their tabs and devices.
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.events: dict[str, Handler] = {
            "join": self.join,
            "leave": self.leave,
            "chat:send": self.send_chat,
        }

    # --- connection -------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise ConnectionRefusedError(
                {"code": "unauthorized", "message": "auth.token must be a non-empty string"}
            )
        cookie = request.cookies.get(GUEST_COOKIE) if request is not None else None
        try:
            principal = await identify(
                self._db(),
                bearer=token.strip() if token else None,
                guest_cookie=cookie,
                secret_key=self.settings.secret_key,
                viewer_jwt_secret=self.settings.viewer_jwt_secret,
            )
        except Unauthenticated as exc:
            raise ConnectionRefusedError({"code": "unauthorized", "message": str(exc)}) from None
        if principal is None:
            raise ConnectionRefusedError(
                {
                    "code": "unauthorized",
                    "message": "connect with auth {token: <viewer or host token>} or a guest cookie "
                    "from POST /api/v1/guest-session",
                }
            )
        self.principals[sid] = principal

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.principals.pop(sid, None)
        await self.hub.leave(sid)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid = args[0]
        try:
            handler = self.events.get(event)
            if handler is None:
                raise EventError(
                    "unknown_event", f"there is no event {event!r}; see docs/realtime.md"
                )
            if len(args) != 2 or not isinstance(args[1], dict):
                raise EventError("bad_payload", f"{event} takes one JSON object")
            size = len(json.dumps(args[1], ensure_ascii=False).encode())
            if size > MAX_PAYLOAD_BYTES:
                raise EventError(
                    "payload_too_large",
                    f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}",
                )
            return await handler(sid, args[1])
        except EventError as exc:
            return exc.ack()
        except DomainError as exc:
            code = _DOMAIN_CODES.get(type(exc), "invalid")
            extra = {"field": exc.field} if exc.field else {}
            return EventError(code, exc.message, **extra).ack()
        except Exception:
            log.exception("event %s failed", event)
            return EventError("internal", "the server failed to handle this event").ack()

    # --- events -----------------------------------------------------------------------------

    async def join(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = _show_id(payload)
        if principal.role is Role.HOST and not principal.may_host(show_id):
            raise EventError("forbidden", "this host token is for another show")
        await self.hub.leave(sid)  # one show per connection
        try:
            await self.hub.begin_join(sid, str(show_id))
            snapshot = await chat.access_room_snapshot(self._db(), show_id)
            if snapshot.show.state in (ShowState.ENDED, ShowState.CANCELLED):
                raise EventError("show_closed", f"the show is {snapshot.show.state.value}")
        except BaseException:
            await self.hub.leave(sid)
            raise
        seq, later = await self.hub.finish_join(
            sid, _member_key(principal), snapshot.seq, snapshot.show.state.value
        )
        held = {m["seq"] for m in later if m.get("type") == "chat.message"}
        messages = [
            payloads.chat_message(m, self.settings.secret_key)
            for m in snapshot.messages
            if m.seq not in held
        ]
        messages += [m for m in later if m.get("type") == "chat.message"]
        state = next(
            (e["state"] for e in reversed(later) if e.get("type") == "show.state"),
            snapshot.show.state.value,
        )
        return {
            "ok": True,
            "snapshot": {
                "show": {
                    "id": str(show_id),
                    "title": snapshot.show.title,
                    "state": state,
                    "locale": snapshot.show.locale,
                    "currency": snapshot.show.currency,
                },
                "seq": seq,
                "messages": messages[-chat.SNAPSHOT_MESSAGES :],
                "pinned_products": [],
                "viewers": self.hub.viewer_count(str(show_id)),
                "you": {
                    "role": principal.role.value,
                    "author_id": payloads.public_author_id(
                        principal.role.value, principal.subject, self.settings.secret_key
                    ),
                },
            },
        }

    async def leave(self, sid: str, payload: dict[str, Any]) -> Ack:
        await self.hub.leave(sid)
        return {"ok": True}

    async def send_chat(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self.hub.show_of.get(sid)
        if show_id is None or sid in self.hub.rooms[show_id].joining:
            raise EventError("not_joined", "join a show before chatting")
        text = payload.get("text")
        if not isinstance(text, str):
            raise EventError("bad_payload", "text must be a string", field="text")
        if set(payload) - {"text"}:
            raise EventError("bad_payload", f"unknown field {sorted(set(payload) - {'text'})[0]!r}")
        check_chat_text(text)  # a refused message does not spend the member's rate limit
        key = (show_id, _member_key(principal))
        bucket = self.buckets.setdefault(
            key, TokenBucket(self.settings.chat_burst, self.settings.chat_per_second)
        )
        wait = bucket.take(time.monotonic())
        if wait > 0:
            raise EventError("rate_limited", "slow down", retry_after_ms=int(wait * 1000) + 1)
        record = await chat.do_post_chat(
            self._db(), uuid.UUID(show_id), principal, text, self.banned
        )
        message = payloads.chat_message(record, self.settings.secret_key)
        self.hub.publish(show_id, message)
        return {"ok": True, "message": message}


def _member_key(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


def _show_id(payload: dict[str, Any]) -> uuid.UUID:
    raw = payload.get("show_id")
    if not isinstance(raw, str):
        raise EventError("bad_payload", "show_id must be a string", field="show_id")
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise EventError(
            "not_found", f"show_id {raw!r} is not a valid id", field="show_id"
        ) from None


async def catch_up(db: Database, hub: RoomHub, secret_key: str, delivered: dict[str, int]) -> None:
    """Deliver, from the database, room events this node missed (see server/realtime/bus.py)."""
    progress = await chat.access_room_progress(db, {uuid.UUID(k): v for k, v in delivered.items()})
    for show_id, found in progress.items():
        key = str(show_id)
        room = hub.rooms.get(key)
        if room is None:
            continue
        for message in found.messages:
            hub.deliver(key, payloads.chat_message(message, secret_key))
        if room.state is not None and room.state != found.state.value:
            hub.deliver(key, {"type": "show.state", "state": found.state.value})
        room.repaired_to(found.event_seq)
