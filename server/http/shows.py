"""Show handlers: parse, call a service, answer."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from aiohttp import web

from server.domain.shows import ShowAction, ShowState
from server.http import views
from server.http.analytics import announce_summary
from server.http.contract import BODY, PATH, PRINCIPAL, QUERY
from server.http.media import finish_broadcast, stream_status
from server.http.problems import Problem
from server.keys import DATABASE, LIVE, ROOMS, SETTINGS
from server.realtime import payloads
from server.services import chat, engagement, shows
from server.services.identity import Role


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    fields = dict(body)
    if "scheduled_start" in fields:
        raw = fields["scheduled_start"]
        try:
            start = datetime.fromisoformat(raw)
        except ValueError:
            raise Problem.invalid("scheduled_start", "must be an ISO 8601 date-time") from None
        if start.tzinfo is None:
            raise Problem.invalid("scheduled_start", "must include a UTC offset, e.g. Z or +08:00")
        fields["scheduled_start"] = start
    return fields


def _answer(request: web.Request, record: shows.ShowRecord, status: int = 200) -> web.Response:
    public_url = request.app[SETTINGS].public_url
    headers = {"Location": f"/api/v1/shows/{record.id}"} if status == 201 else None
    return views.reply(
        views.show(record, public_url, stream_status(request.app, record.id)), status, headers
    )


async def create_show(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    record = await shows.do_create_show(
        request.app[DATABASE],
        _fields(request[BODY]),
        default_locale=settings.default_locale,
        default_currency=settings.default_currency,
    )
    return _answer(request, record, 201)


async def list_shows(request: web.Request) -> web.Response:
    query = request[QUERY]
    principal = request[PRINCIPAL]
    # A host token for one show sees that show only.
    only = principal.show_id if principal.role is Role.HOST else None
    states = [ShowState(s) for s in query.get("state", [])]
    records, total = await shows.list_shows(
        request.app[DATABASE],
        states=states,
        limit=query["limit"],
        offset=query["offset"],
        only_show=only,
    )
    public_url = request.app[SETTINGS].public_url
    return views.reply(
        views.page(
            [views.show(r, public_url, stream_status(request.app, r.id)) for r in records],
            total,
            query["limit"],
            query["offset"],
        )
    )


async def get_show(request: web.Request) -> web.Response:
    principal, show_id = request[PRINCIPAL], request[PATH]["show_id"]
    if principal.role is Role.HOST and not principal.may_host(show_id):
        raise Problem(403, "this host token is for another show", kind="forbidden")
    return _answer(request, await shows.access_show(request.app[DATABASE], show_id))


async def update_show(request: web.Request) -> web.Response:
    record = await shows.do_update_show(
        request.app[DATABASE], request[PATH]["show_id"], _fields(request[BODY])
    )
    request.app[LIVE].forget_commerce(str(record.id))  # its claim keyword may have changed
    return _answer(request, record)


def _transition(action: ShowAction) -> Any:
    async def handle(request: web.Request) -> web.Response:
        record = await shows.do_transition_show(
            request.app[DATABASE], request[PATH]["show_id"], action
        )
        # After the commit: everyone in the room learns the show went live or ended.
        request.app[ROOMS].publish(
            str(record.id), {"type": "show.state", "state": record.state.value}
        )
        if record.state is ShowState.ENDED:
            await finish_broadcast(request.app, str(record.id))
            try:
                await announce_summary(request.app, record.id)
            except Exception:  # the show has ended either way; the log says what was lost
                logging.getLogger("showroom.shows").exception("show summary not queued")
        return _answer(request, record)

    handle.__name__ = f"{action.value}_show"
    return handle


start_show = _transition(ShowAction.START)
end_show = _transition(ShowAction.END)
cancel_show = _transition(ShowAction.CANCEL)


async def list_chat(request: web.Request) -> web.Response:
    query = request[QUERY]
    records = await chat.list_chat(
        request.app[DATABASE],
        request[PATH]["show_id"],
        before_seq=query.get("before"),
        limit=query["limit"],
    )
    secret = request.app[SETTINGS].secret_key
    full = len(records) == query["limit"]
    return views.reply(
        {
            "items": [payloads.chat_message(r, secret) for r in records],
            "next_before": records[0].seq if records and full else None,
        }
    )


async def list_questions(request: web.Request) -> web.Response:
    states = set(request[QUERY].get("state", []))
    records = await engagement.list_questions(
        request.app[DATABASE], request[PATH]["show_id"], waiting_only=False
    )
    secret = request.app[SETTINGS].secret_key
    return views.reply(
        {
            "items": [
                payloads.question(r, secret)
                for r in records
                if not states or r.state.value in states
            ]
        }
    )
