"""The /live Socket.IO namespace: authenticate the socket, validate each event, call a
service, answer with an ack. Bad input gets an error ack and the connection stays up."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError

from server.collector import COLLECTOR
from server.config import Settings
from server.domain import claims as claim_rules
from server.domain.chat import BannedWordMode, BannedWords, Blocked, check_chat_text
from server.domain.claims import ClaimRefused
from server.domain.engagement import (
    MAX_REACTIONS_PER_EVENT,
    REACTION_KINDS,
    WAITING,
    QuestionState,
    check_question_text,
)
from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.domain.money import Money
from server.domain.shows import ShowState
from server.realtime import payloads
from server.realtime.limits import RateLimiter
from server.realtime.rooms import RoomHub
from server.realtime.watch import WatchClock
from server.realtime.websocket import cookie_of
from server.services import chat, claims, engagement, moderation, pins, room
from server.services.accrual import Accrual, Credit
from server.services.batching import Grouped
from server.services.funnel import FunnelBoard, FunnelStep
from server.services.identity import GUEST_COOKIE, Principal, Role, Unauthenticated, identify
from server.store.db import Database
from server.store.models import utcnow

log = logging.getLogger("showroom.realtime")

NAMESPACE = "/live"
MAX_PAYLOAD_BYTES = 16 * 1024
REACTION_INTERVAL = 0.25  # reaction totals go out at most this often per node
COMMERCE_TTL = 5.0  # a show's claim keyword and pinned SKUs are re-read this often
SEEN_STEPS = (FunnelStep.CARD_SHOWN.value, FunnelStep.CARD_OPENED.value)

Ack = dict[str, Any]
Handler = Callable[[str, dict[str, Any]], Awaitable[Ack]]


class EventError(Exception):
    """Answered as {"ok": false, "error": {"code", "message"}} with optional extras."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    def ack(self) -> Ack:
        return {"ok": False, "error": {"code": self.code, "message": self.message, **self.extra}}


# Most specific first: an error answers with the first family it belongs to.
_DOMAIN_CODES = {
    Blocked: "blocked_word",
    NotFound: "not_found",
    Conflict: "conflict",
    InvalidValue: "invalid",
}


def _refused(message: str) -> ConnectionRefusedError:
    """A refused connection: the client's connect_error has message "unauthorized" and
    data {code: "unauthorized", message} (python-socketio sends data only from a second
    argument)."""
    return ConnectionRefusedError("unauthorized", {"code": "unauthorized", "message": message})


class LiveNamespace(socketio.AsyncNamespace):
    def __init__(
        self,
        *,
        db: Callable[[], Database],
        settings: Settings,
        hub: RoomHub,
        tally: ReactionTally,
        funnel: FunnelBoard | None = None,
        accrual: Accrual | None = None,
        watch: WatchClock | None = None,
    ) -> None:
        super().__init__(NAMESPACE)
        self._db = db
        self.funnel = funnel
        # What each viewer did, for engagement points and analytics (written in batches).
        self.accrual = accrual
        self.watch = watch
        # Each show's claim keyword and pinned SKUs, read at most every COMMERCE_TTL seconds.
        self._commerce: dict[str, tuple[float, claims.ShowCommerce]] = {}
        self.settings = settings
        self.hub = hub
        self.tally = tally
        self.banned = BannedWords(settings.banned_words, BannedWordMode(settings.banned_words_mode))
        self.principals: dict[str, Principal] = {}
        # Joins that arrive together share one snapshot read and one registration commit.
        self.snapshots = Grouped(self._read_snapshots)
        self.registrations = Grouped(self._register)
        # Chat to one show that arrives together is stored in one transaction.
        self.posts = Grouped(self._post_chats)
        # One bucket per action, show and member, shared by the member's tabs and devices.
        self.limits = RateLimiter()  # the app gives it Redis when REDIS_URL is set
        # The host's video status for a show ("idle" when no media hub is attached).
        self.stream_status: Callable[[str], str] = lambda show_id: "idle"
        self.events: dict[str, Handler] = {
            "join": self.join,
            "leave": self.leave,
            "chat:send": self.send_chat,
            "question:ask": self.ask,
            "question:vote": self.vote,
            "question:mark": self.mark,
            "react": self.react,
            "chat:delete": self.delete_message,
            "chat:pin": self.pin,
            "product:pin": self.pin_product,
            "product:unpin": self.unpin_product,
            "product:seen": self.product_seen,
            "watch:beat": self.watch_beat,
            "room:slow_mode": self.slow_mode,
            "member:mute": self.sanction(moderation.SanctionKind.MUTE),
            "member:ban": self.sanction(moderation.SanctionKind.BAN),
            "member:unmute": self.lift(moderation.SanctionKind.MUTE),
            "member:unban": self.lift(moderation.SanctionKind.BAN),
            "moderator:add": self.add_moderator,
        }

    # --- connection -------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None and (not isinstance(token, str) or not token.strip()):
            raise _refused("auth.token must be a non-empty string")
        cookie = cookie_of(environ.get("HTTP_COOKIE", ""), GUEST_COOKIE)
        try:
            principal = await identify(
                self._db(),
                bearer=token.strip() if token else None,
                guest_cookie=cookie,
                secret_key=self.settings.secret_key,
                viewer_jwt_secret=self.settings.viewer_jwt_secret,
            )
        except Unauthenticated as exc:
            raise _refused(str(exc)) from None
        if principal is None:
            raise _refused(
                "connect with auth {token: <viewer or host token>} or a guest cookie "
                "from POST /api/v1/guest-session"
            )
        self.principals[sid] = principal

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self.principals.pop(sid, None)
        if self.watch is not None:
            self.watch.forget(sid)
        await self.hub.leave(sid)
        COLLECTOR.socket_closed(len(self.principals))

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
        except moderation.Refused as exc:
            wait = {} if exc.retry_after_ms is None else {"retry_after_ms": exc.retry_after_ms}
            return EventError(exc.code, exc.message, **wait).ack()
        except DomainError as exc:
            code = next(
                (c for kind, c in _DOMAIN_CODES.items() if isinstance(exc, kind)), "invalid"
            )
            extra = {"field": exc.field} if exc.field else {}
            return EventError(code, exc.message, **extra).ack()
        except Exception:
            log.exception("event %s failed", event)
            return EventError("internal", "the server failed to handle this event").ack()

    # --- events -----------------------------------------------------------------------------

    async def join(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = _uuid(payload, "show_id")
        ref = payload.get("ref")
        if ref is not None and (not isinstance(ref, str) or not 1 <= len(ref) <= 40):
            raise EventError(
                "bad_payload", "ref must be the share link's code (1-40 characters)", field="ref"
            )
        if principal.role is Role.HOST and not principal.may_host(show_id):
            raise EventError("forbidden", "this host token is for another show")
        await self.hub.leave(sid)  # one show per connection
        try:
            await self.hub.begin_join(sid, str(show_id))
            author_id = self._author_id(principal)
            snapshot = await self.snapshots(show_id, room.Joiner(principal, author_id))
            if snapshot.show.state in (ShowState.ENDED, ShowState.CANCELLED):
                raise EventError("show_closed", f"the show is {snapshot.show.state.value}")
            assert snapshot.standing is not None
            if not snapshot.standing.registered:
                await self.registrations(
                    None,
                    moderation.Participant(
                        show_id,
                        author_id,
                        principal.role.value,
                        principal.subject,
                        chat.author_name(principal),
                    ),
                )
        except BaseException:
            await self.hub.leave(sid)
            raise
        seq, later = await self.hub.finish_join(
            sid, _member_key(principal), snapshot.seq, snapshot.show.state.value, author_id
        )
        result = self._snapshot(principal, snapshot, seq, later, snapshot.standing.my_votes)
        result["you"]["moderator"] = snapshot.standing.moderator
        if principal.role in claims.BUYER_ROLES:
            self._engaged(str(show_id), principal, "joined", ref)
        return {"ok": True, "snapshot": result}

    def _engaged(self, show_id: str, principal: Principal, what: str, *args: Any) -> None:
        """Tell the accrual (points, analytics) and the watch clock (idle detection) what a
        viewer or guest did."""
        if self.accrual is None or principal.role not in claims.BUYER_ROLES:
            return
        viewer = _member_key(principal)
        member = principal.subject if principal.role is Role.VIEWER else None
        getattr(self.accrual, what)(uuid.UUID(show_id), viewer, member, *args)
        if self.watch is not None and what != "answered":  # the asker did nothing just now
            self.watch.interacted(show_id, viewer)

    async def watch_beat(self, sid: str, payload: dict[str, Any]) -> Ack:
        """The player's state, sent when it changes (not periodically): the server credits
        the time itself; see server/realtime/watch.py for what earns."""
        principal = self.principals[sid]
        show_id = self._joined(sid)
        _only(payload, {"playing", "visible", "session", "active"})
        flags = {}
        for name in ("playing", "visible", "active"):
            value = payload.get(name, False)
            if not isinstance(value, bool):
                raise EventError("bad_payload", f"{name} must be true or false", field=name)
            flags[name] = value
        session = payload.get("session")
        if session is not None and (not isinstance(session, str) or not 1 <= len(session) <= 64):
            raise EventError(
                "bad_payload",
                "session must be the WHEP session id (1-64 characters)",
                field="session",
            )
        if self.watch is None or principal.role not in claims.BUYER_ROLES:
            return {"ok": True, "credited": False, "reason": "not_a_viewer"}
        if self.hub.rooms[show_id].state not in (None, ShowState.LIVE.value):
            self.watch.forget(sid)  # not live (yet, or any more): nothing to keep
            return {"ok": True, "credited": False, "reason": "not_live"}
        credited, why = self.watch.beat(
            sid,
            show_id,
            _member_key(principal),
            principal.subject if principal.role is Role.VIEWER else None,
            playing=flags["playing"],
            visible=flags["visible"],
            session=session,
            active=flags["active"],
        )
        return {"ok": True, "credited": credited, **({"reason": why} if why else {})}

    def announce_points(self, credits: list[Credit]) -> None:
        """After a flush: each member's sockets on this process get their own `points`,
        with their next frame (a write of thousands of join bonuses tells thousands of
        viewers at once)."""
        wanted = {(str(c.show_id), f"viewer:{c.member}"): c for c in credits}
        for show_id, room_ in list(self.hub.rooms.items()):
            for sid, member in list(room_.members.items()):
                credit = wanted.get((show_id, member.subject))
                if credit is None:
                    continue
                data = {
                    "show_id": show_id,
                    "earned": [
                        {"reason": e.reason.value, "points": e.points} for e in credit.earned
                    ],
                    "balance": credit.balance,
                    "tier": credit.tier,
                    "badges": credit.badges,
                }
                self.hub.tell(show_id, sid, "points", data)

    async def aclose(self) -> None:
        """Stop the grouped database rounds in progress, before the database closes."""
        for grouped in (self.snapshots, self.registrations, self.posts):
            await grouped.aclose()

    async def _read_snapshots(
        self, show_id: uuid.UUID, joiners: list[room.Joiner]
    ) -> list[room.RoomSnapshot | Exception]:
        return await room.access_room_snapshots(self._db(), show_id, joiners)

    async def _post_chats(
        self, show_id: uuid.UUID, posts: list[tuple[Principal, str]]
    ) -> list[chat.ChatRecord | Exception]:
        return await chat.do_post_chats(self._db(), show_id, posts, self.banned)

    async def _register(
        self, _: None, participants: list[moderation.Participant]
    ) -> list[Exception | None]:
        return await moderation.do_register_participants(self._db(), participants)

    def _author_id(self, principal: Principal) -> str:
        return payloads.public_author_id(
            principal.role.value, principal.subject, self.settings.secret_key
        )

    def _snapshot(
        self,
        principal: Principal,
        snapshot: room.RoomSnapshot,
        seq: int,
        later: list[dict[str, Any]],
        voted: set[uuid.UUID],
    ) -> dict[str, Any]:
        """The snapshot with the events that arrived while it was read folded in."""
        secret = self.settings.secret_key
        later_chat = [e for e in later if e.get("type") == "chat.message"]
        held = {m["seq"] for m in later_chat}
        gone = {e["id"] for e in later if e.get("type") == "chat.deleted"}
        messages = [
            payloads.chat_message(m, secret) for m in snapshot.messages if m.seq not in held
        ]
        messages = [m for m in messages + later_chat if m["id"] not in gone][
            -chat.SNAPSHOT_MESSAGES :
        ]
        settings = payloads.room_settings(snapshot.settings, secret)
        for event in later:
            if event.get("type") == "room.settings" and event["seq"] > settings["seq"]:
                settings = event
        questions = {str(q.id): payloads.question(q, secret) for q in snapshot.questions}
        reactions = dict(snapshot.reactions)
        state = snapshot.show.state.value
        stream = self.stream_status(str(snapshot.show.id))
        for event in later:
            if event.get("type") == "question":
                questions[event["id"]] = event
            elif event.get("type") == "reactions":
                for kind, total in event["totals"].items():
                    reactions[kind] = max(reactions.get(kind, 0), total)
            elif event.get("type") == "show.state":
                state = event["state"]
            elif event.get("type") == "stream.status":
                stream = event["status"]
        waiting = sorted(
            (q for q in questions.values() if q["state"] in {s.value for s in WAITING}),
            key=lambda q: (-q["votes"], q["created_at"]),
        )
        return {
            "show": {
                "id": str(snapshot.show.id),
                "title": snapshot.show.title,
                "state": state,
                "locale": snapshot.show.locale,
                "currency": snapshot.show.currency,
            },
            "seq": seq,
            "messages": messages,
            "questions": waiting,
            "my_votes": sorted(str(v) for v in voted),
            "reactions": reactions,
            "pinned": settings["pinned"],
            "slow_mode_seconds": settings["slow_mode_seconds"],
            "pinned_products": payloads.pinned_products(snapshot.pins, utcnow()),
            "viewers": self.hub.viewer_count(str(snapshot.show.id)),
            "stream": stream,
            "you": {
                "role": principal.role.value,
                "author_id": payloads.public_author_id(
                    principal.role.value, principal.subject, secret
                ),
            },
        }

    async def leave(self, sid: str, payload: dict[str, Any]) -> Ack:
        await self.hub.leave(sid)
        return {"ok": True}

    def _joined(self, sid: str) -> str:
        show_id = self.hub.show_of.get(sid)
        if show_id is None or sid in self.hub.rooms[show_id].joining:
            raise EventError("not_joined", "join a show first")
        return show_id

    async def _throttle(
        self, kind: str, show_id: str, principal: Principal, burst: float, per_second: float
    ) -> None:
        wait = await self.limits.take(
            f"{kind}:{show_id}:{_member_key(principal)}", burst, per_second
        )
        if wait > 0:
            raise EventError("rate_limited", "slow down", retry_after_ms=int(wait * 1000) + 1)

    async def send_chat(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self._joined(sid)
        text = _text(payload)
        check_chat_text(text)  # a refused message does not spend the member's rate limit
        await self._throttle(
            "chat", show_id, principal, self.settings.chat_burst, self.settings.chat_per_second
        )
        record = await self.posts(uuid.UUID(show_id), (principal, text))
        message = payloads.chat_message(record, self.settings.secret_key)
        self.hub.publish(show_id, message)
        self._engaged(show_id, principal, "chatted")
        ack: Ack = {"ok": True, "message": message}
        if principal.role in claims.BUYER_ROLES:
            keyword = (await self.commerce(show_id)).keyword
            words = None if keyword is None else claim_rules.parse(record.text, keyword)
            if words is not None:
                ack["claim"] = await self._claim(show_id, principal, record.text, words)
        return ack

    async def _claim(self, show_id: str, principal: Principal, text: str, words: str) -> Ack:
        """Comment-to-order: the answer goes to the viewer alone (in the chat ack); the
        room (and the host's claims feed) gets a `claim` event."""
        try:
            record = await claims.do_claim(
                self._db(),
                uuid.UUID(show_id),
                principal,
                author_name=chat.author_name(principal),
                text=text,
                words=words,
                max_quantity=self.settings.max_quantity,
            )
        except ClaimRefused as refused:
            return {
                "ok": False,
                "code": refused.code,
                "message": refused.message,
                "choices": [{"sku": c.sku, "title": c.title} for c in refused.choices],
            }
        event = {"type": "claim", **payloads.claim(record, self.settings.secret_key)}
        self.hub.publish(show_id, event)
        if self.funnel is not None:
            self.funnel.note(record.show_id, record.sku, FunnelStep.ADDED_TO_CART)
        return {
            "ok": True,
            "id": event["id"],
            "sku": record.sku,
            "title": record.title,
            "cart_quantity": record.cart_quantity,
        }

    async def commerce(self, show_id: str, *, max_age: float = COMMERCE_TTL) -> claims.ShowCommerce:
        now = time.monotonic()
        cached = self._commerce.get(show_id)
        if cached is None or now - cached[0] > max_age:
            found = await claims.access_show_commerce(self._db(), uuid.UUID(show_id))
            cached = self._commerce[show_id] = (now, found)
        return cached[1]

    def forget_commerce(self, show_id: str) -> None:
        """The show's keyword or pins changed here: read them again on next use."""
        self._commerce.pop(show_id, None)

    async def product_seen(self, sid: str, payload: dict[str, Any]) -> Ack:
        """A viewer's player showed or opened a product card (the sales funnel)."""
        principal = self.principals[sid]
        show_id = self._joined(sid)
        _only(payload, {"sku", "step"})
        sku, step = payload.get("sku"), payload.get("step")
        if not isinstance(sku, str):
            raise EventError("bad_payload", "sku must be a string", field="sku")
        if step not in SEEN_STEPS:
            raise EventError(
                "bad_payload", f"step must be one of {', '.join(SEEN_STEPS)}", field="step"
            )
        await self._throttle("seen", show_id, principal, 20, 5)
        if (
            sku not in (await self.commerce(show_id)).pinned_ever
            and sku not in (await self.commerce(show_id, max_age=1.0)).pinned_ever
        ):
            raise EventError("not_pinned", f"{sku!r} was not pinned in this show", field="sku")
        counted = self.funnel is not None and self.funnel.note(
            uuid.UUID(show_id), sku, FunnelStep(step), _member_key(principal)
        )
        return {"ok": True, "counted": counted}

    async def ask(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self._joined(sid)
        text = _text(payload)
        check_question_text(text)
        await self._throttle("ask", show_id, principal, 3, 0.2)
        record = await engagement.do_ask(
            self._db(), uuid.UUID(show_id), principal, text, self.banned
        )
        question = payloads.question(record, self.settings.secret_key)
        self.hub.publish(show_id, question)
        self._engaged(show_id, principal, "asked")
        return {"ok": True, "question": question}

    async def vote(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self._joined(sid)
        _only(payload, {"question_id", "vote"})
        question_id = _uuid(payload, "question_id")
        up = payload.get("vote", True)
        if not isinstance(up, bool):
            raise EventError(
                "bad_payload", "vote must be true (upvote) or false (retract)", field="vote"
            )
        await self._throttle("vote", show_id, principal, 10, 2)
        record, changed = await engagement.do_vote(
            self._db(), uuid.UUID(show_id), question_id, principal, up=up
        )
        question = payloads.question(record, self.settings.secret_key)
        if changed:
            self.hub.publish(show_id, question)
        return {"ok": True, "question": question, "voted": up}

    async def mark(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self._joined(sid)
        if not principal.may_host(uuid.UUID(show_id)):
            raise EventError("forbidden", "only the show's host can mark questions")
        _only(payload, {"question_id", "state"})
        question_id = _uuid(payload, "question_id")
        try:
            state = QuestionState(str(payload.get("state")))
        except ValueError:
            allowed = ", ".join(s.value for s in QuestionState)
            raise EventError(
                "bad_payload", f"state must be one of {allowed}", field="state"
            ) from None
        before = await engagement.do_mark(self._db(), uuid.UUID(show_id), question_id, state)
        question = payloads.question(before, self.settings.secret_key)
        self.hub.publish(show_id, question)
        if state is QuestionState.ANSWERED and self.accrual is not None:
            asker = Principal(Role(before.author_role), before.author_id)
            self._engaged(show_id, asker, "answered", str(before.id))
        return {"ok": True, "question": question}

    async def react(self, sid: str, payload: dict[str, Any]) -> Ack:
        principal = self.principals[sid]
        show_id = self._joined(sid)
        _only(payload, {"kind", "count"})
        kind, count = payload.get("kind"), payload.get("count", 1)
        if kind not in REACTION_KINDS:
            raise EventError(
                "bad_payload", f"kind must be one of {', '.join(REACTION_KINDS)}", field="kind"
            )
        if (
            not isinstance(count, int)
            or isinstance(count, bool)
            or not 1 <= count <= MAX_REACTIONS_PER_EVENT
        ):
            raise EventError(
                "bad_payload", f"count must be 1-{MAX_REACTIONS_PER_EVENT}", field="count"
            )
        await self._throttle("react", show_id, principal, 20, 10)
        self.tally.add(show_id, kind, count)
        self._engaged(show_id, principal, "reacted", count)
        return {"ok": True}

    # --- moderation: the host, admins and the moderators the host names ----------------------

    async def delete_message(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"message_id"})
        message_id = _uuid(payload, "message_id")
        seq = await moderation.do_delete_message(
            self._db(), uuid.UUID(show_id), self.principals[sid], message_id
        )
        self.hub.publish(show_id, payloads.chat_deleted(str(message_id), seq))
        await self._publish_settings(show_id)  # deleting the pinned message unpins it
        return {"ok": True}

    async def pin(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"message_id"})
        message_id = None if payload.get("message_id") is None else _uuid(payload, "message_id")
        await moderation.do_pin(self._db(), uuid.UUID(show_id), self.principals[sid], message_id)
        return {"ok": True, "settings": await self._publish_settings(show_id)}

    async def pin_product(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"sku", "flash_price", "flash_ends_at"})
        sku = payload.get("sku")
        if not isinstance(sku, str):
            raise EventError("bad_payload", "sku must be a string", field="sku")
        flash_price, ends_at = _flash(payload)
        found = await pins.do_pin(
            self._db(),
            uuid.UUID(show_id),
            self.principals[sid],
            sku,
            flash_price=flash_price,
            flash_ends_at=ends_at,
            max_pins=self.settings.max_pins,
        )
        return {"ok": True, "products": self._publish_pins(show_id, found)}

    async def unpin_product(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"sku"})
        sku = payload.get("sku")
        if not isinstance(sku, str):
            raise EventError("bad_payload", "sku must be a string", field="sku")
        found = await pins.do_unpin(self._db(), uuid.UUID(show_id), self.principals[sid], sku)
        return {"ok": True, "products": self._publish_pins(show_id, found)}

    def _publish_pins(self, show_id: str, found: pins.Pins) -> list[dict[str, Any]]:
        self.forget_commerce(show_id)
        event = payloads.pins_event(found, utcnow())
        self.hub.publish(show_id, event)
        return list(event["products"])

    async def slow_mode(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"seconds"})
        seconds = payload.get("seconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise EventError(
                "bad_payload", "seconds must be an integer (0 turns slow mode off)", field="seconds"
            )
        await moderation.do_slow_mode(self._db(), uuid.UUID(show_id), self.principals[sid], seconds)
        return {"ok": True, "settings": await self._publish_settings(show_id)}

    async def add_moderator(self, sid: str, payload: dict[str, Any]) -> Ack:
        show_id = self._joined(sid)
        _only(payload, {"author_id"})
        await moderation.do_add_moderator(
            self._db(), uuid.UUID(show_id), self.principals[sid], _author(payload)
        )
        return {"ok": True}

    def sanction(self, kind: moderation.SanctionKind) -> Handler:
        async def handle(sid: str, payload: dict[str, Any]) -> Ack:
            show_id = self._joined(sid)
            _only(payload, {"author_id", "all_shows"})
            all_shows = payload.get("all_shows", False)
            if not isinstance(all_shows, bool):
                raise EventError(
                    "bad_payload", "all_shows must be true or false", field="all_shows"
                )
            done = await moderation.do_sanction(
                self._db(),
                uuid.UUID(show_id),
                self.principals[sid],
                _author(payload),
                kind,
                all_shows=all_shows,
            )
            event = {
                "type": "member.sanctioned",
                "author_id": done.author_id,
                "kind": kind.value,
                "all_shows": all_shows,
            }
            self.hub.publish(show_id, event)
            return {"ok": True}

        return handle

    def lift(self, kind: moderation.SanctionKind) -> Handler:
        async def handle(sid: str, payload: dict[str, Any]) -> Ack:
            show_id = self._joined(sid)
            _only(payload, {"author_id"})
            author_id = _author(payload)
            await moderation.do_lift(
                self._db(), uuid.UUID(show_id), self.principals[sid], author_id, kind
            )
            self.hub.publish(
                show_id, {"type": "member.lifted", "author_id": author_id, "kind": kind.value}
            )
            return {"ok": True}

        return handle

    async def _publish_settings(self, show_id: str) -> dict[str, Any]:
        settings = await room.access_room_settings(self._db(), uuid.UUID(show_id))
        event = payloads.room_settings(settings, self.settings.secret_key)
        self.hub.publish(show_id, event)
        return event


def _author(payload: dict[str, Any]) -> str:
    author_id = payload.get("author_id")
    if not isinstance(author_id, str) or not author_id:
        raise EventError("bad_payload", "author_id must be a chat author's id", field="author_id")
    return author_id


class ReactionTally:
    """Adds this node's reaction taps to the database every REACTION_INTERVAL, one upsert per
    show and kind, and publishes the new totals: never one write or one event per tap."""

    def __init__(self, db: Callable[[], Database], hub: RoomHub) -> None:
        self._db = db
        self.hub = hub
        self.pending: dict[str, Counter[str]] = {}

    def add(self, show_id: str, kind: str, count: int) -> None:
        self.pending.setdefault(show_id, Counter())[kind] += count

    async def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, {}
        totals = await engagement.do_add_reactions(
            self._db(), {uuid.UUID(k): dict(v) for k, v in batch.items()}
        )
        for show_id, kinds in totals.items():
            self.hub.publish(str(show_id), {"type": "reactions", "totals": kinds})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(REACTION_INTERVAL)
            try:
                await self.flush()
            except Exception:
                log.exception("reaction flush failed")


def _member_key(principal: Principal) -> str:
    return f"{principal.role.value}:{principal.subject}"


def _uuid(payload: dict[str, Any], name: str) -> uuid.UUID:
    raw = payload.get(name)
    if not isinstance(raw, str):
        raise EventError("bad_payload", f"{name} must be a string", field=name)
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise EventError("not_found", f"{name} {raw!r} is not a valid id", field=name) from None


def _only(payload: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise EventError("bad_payload", f"unknown field {unknown[0]!r}", field=unknown[0])


def _flash(payload: dict[str, Any]) -> tuple[Money | None, datetime | None]:
    """The optional flash price ({amount_minor, currency}) and its end (ISO 8601 with offset)."""
    raw_price, raw_end = payload.get("flash_price"), payload.get("flash_ends_at")
    price = None
    if raw_price is not None:
        if (
            not isinstance(raw_price, dict)
            or set(raw_price) != {"amount_minor", "currency"}
            or not isinstance(raw_price["amount_minor"], int)
            or isinstance(raw_price["amount_minor"], bool)
            or not isinstance(raw_price["currency"], str)
        ):
            raise EventError(
                "bad_payload",
                "flash_price must be {amount_minor: integer, currency: string}",
                field="flash_price",
            )
        try:
            price = Money(raw_price["amount_minor"], raw_price["currency"])
        except InvalidValue as exc:
            raise EventError("invalid", str(exc), field="flash_price") from None
    end = None
    if raw_end is not None:
        if not isinstance(raw_end, str):
            raise EventError("bad_payload", "flash_ends_at must be a string", field="flash_ends_at")
        try:
            end = datetime.fromisoformat(raw_end)
        except ValueError:
            end = None
        if end is None or end.tzinfo is None:
            raise EventError(
                "invalid",
                "flash_ends_at must be an ISO 8601 date-time with a UTC offset",
                field="flash_ends_at",
            )
    return price, end


def _text(payload: dict[str, Any]) -> str:
    _only(payload, {"text"})
    text = payload.get("text")
    if not isinstance(text, str):
        raise EventError("bad_payload", "text must be a string", field="text")
    return text


async def catch_up(
    db: Database,
    hub: RoomHub,
    secret_key: str,
    delivered: dict[str, int],
    sweep_bans: bool = False,
) -> None:
    """Deliver, from the database, room events this node missed (see server/realtime/bus.py).
    Bans and mutes carry no event number, so with `sweep_bans` (while Redis is away, and
    once after it returns) the room's members are checked against the stored sanctions
    instead (see _sweep_sanctions)."""
    progress = await room.access_room_progress(db, {uuid.UUID(k): v for k, v in delivered.items()})
    for show_id, found in progress.items():
        key = str(show_id)
        local = hub.rooms.get(key)
        if local is None:
            continue
        for message in found.messages:
            hub.deliver(key, payloads.chat_message(message, secret_key))
        for question in found.questions:
            hub.deliver(key, payloads.question(question, secret_key))
        for message_id, seq in found.deleted:
            hub.deliver(key, payloads.chat_deleted(str(message_id), seq))
        if found.settings is not None:
            hub.deliver(key, payloads.room_settings(found.settings, secret_key))
        if found.pins is not None:
            hub.deliver(key, payloads.pins_event(found.pins, utcnow()))
        if local.state is not None and local.state != found.state.value:
            hub.deliver(key, {"type": "show.state", "state": found.state.value})
        local.repaired_to(found.event_seq)
        if sweep_bans:
            await _sweep_sanctions(db, hub, secret_key, show_id)


async def _sweep_sanctions(db: Database, hub: RoomHub, secret_key: str, show_id: uuid.UUID) -> None:
    """Tell this node's viewers of bans and mutes made or lifted on another node while the
    events could not cross: a missed ban or mute is delivered as the `member.sanctioned`
    event it was, and a mute they were told of that no longer holds as `member.lifted`."""
    key = str(show_id)
    local = hub.rooms.get(key)
    if local is None:
        return
    present: dict[tuple[str, str], str] = {}
    for member in local.members.values():
        role, _, subject = member.subject.partition(":")
        present[(role, subject)] = member.author_id
    muted_now: set[str] = set()
    for role, subject, kind, all_shows in await moderation.access_sanctions(
        db, show_id, set(present)
    ):
        author_id = present.get((role, subject)) or payloads.public_author_id(
            role, subject, secret_key
        )
        sanction = {"author_id": author_id, "kind": kind, "all_shows": all_shows}
        if kind == "ban":
            hub.deliver(key, {"type": "member.sanctioned", **sanction})
        elif kind == "mute":
            muted_now.add(author_id)
            if local.muted.get(author_id) != all_shows:
                hub.deliver(key, {"type": "member.sanctioned", **sanction})
    for author_id in set(local.muted) & set(present.values()) - muted_now:
        hub.deliver(key, {"type": "member.lifted", "author_id": author_id, "kind": "mute"})
