"""RFC 9457 problem details: every 4xx/5xx answer is application/problem+json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from http import HTTPStatus
from typing import Any

from aiohttp import web

PROBLEM_TYPE_BASE = "https://showroom.dev/problems/"


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str | None
    message: str
    extra: Mapping[str, Any] = dataclass_field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message, **self.extra}


class Problem(Exception):
    """Raise from anywhere in the HTTP layer to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        errors: list[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.kind = kind or HTTPStatus(status).phrase.lower().replace(" ", "-")
        self.errors = errors or []
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @classmethod
    def invalid(cls, field: str | None, message: str, status: int = 422) -> Problem:
        where = f"{field}: " if field else ""
        return cls(
            status, f"{where}{message}", kind="invalid-request", errors=[FieldError(field, message)]
        )

    def response(self, instance: str) -> web.Response:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.kind,
            "title": HTTPStatus(self.status).phrase,
            "status": self.status,
            "detail": self.detail,
            "instance": instance,
        }
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        body.update(self.extra)
        return web.Response(
            status=self.status,
            body=json.dumps(body, ensure_ascii=False).encode(),
            content_type="application/problem+json",
            headers=self.headers,
        )
