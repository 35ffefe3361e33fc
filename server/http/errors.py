"""The outermost error boundary: turns every failure into problem+json and keeps the
connection usable."""

from __future__ import annotations

import logging

from aiohttp import web

from server.domain.errors import Conflict, DomainError, InvalidValue, NotFound
from server.http.contract import Handler
from server.http.problems import FieldError, Problem
from server.services.identity import Unauthenticated

log = logging.getLogger("showroom.http")


_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (InvalidValue, 422),
)


def problem_of(exc: BaseException) -> Problem | None:
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, DomainError):
        status = next(
            (code for kind, code in _STATUS if isinstance(exc, kind)), 422
        )  # subclasses (SoldOut is a Conflict) answer as their family
        detail = f"{exc.field}: {exc.message}" if exc.field else exc.message
        kind = {404: "not-found", 409: "conflict", 422: "invalid-request"}[status]
        return Problem(status, detail, kind=kind, errors=[FieldError(exc.field, exc.message)])
    if isinstance(exc, Unauthenticated):
        return Problem(
            401,
            str(exc),
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="showroom"'},
        )
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return Problem(413, "request body is too large")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return Problem(
            405, f"{exc.method} is not allowed here; use {allowed}", headers={"Allow": allowed}
        )
    if isinstance(exc, web.HTTPNotFound):
        return Problem(404, "no such endpoint; see /api/openapi.json", kind="not-found")
    if isinstance(exc, web.HTTPException) and exc.status >= 400:
        detail = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return Problem(exc.status, detail or exc.reason)
    return None


@web.middleware
async def problem_answers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        problem = problem_of(exc)
        if problem is None:
            log.exception("unhandled error on %s %s", request.method, request.path)
            problem = Problem(500, "internal error; the server log has the details")
        return problem.response(request.path)
