"""The API contract in code: each operation declares who may call it and what it takes and
answers; one middleware enforces that before any handler runs, and /api/openapi.json is
built from the same declarations."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from server.http.problems import FieldError, Problem
from server.http.schemas import SCHEMAS, SKU, UUID, Schema, ref
from server.services.identity import Principal, Role

# A clip's file name: the SKU (schemas.SKU) and .mp4, or .jpg for its poster.
CLIP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.(mp4|jpg)$")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ADMIN = frozenset({Role.ADMIN})
STAFF = frozenset({Role.ADMIN, Role.HOST})
ANYONE = frozenset(Role)  # any identified caller: admin, host, viewer or guest
BUYERS = frozenset({Role.VIEWER, Role.GUEST})


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Schema
    description: str
    many: bool = False  # repeated or comma-separated values


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str
    handler: Handler
    operation_id: str
    summary: str
    tag: str
    responses: Mapping[int, tuple[str, str | None]]
    roles: frozenset[Role] | None = None  # None: public
    host_scoped: bool = False  # a host token must cover the path's show_id
    query: tuple[Param, ...] = ()
    body: str | None = None  # component schema of a JSON body
    raw_body: Mapping[str, Schema] | None = None  # media types of a non-JSON body (uploads)
    response_type: str = "application/json"
    description: str = ""
    empty: bool = False  # success answers carry no body (WHIP/WHEP DELETE answers 200 empty)


# Path parameters by name; their schemas are shared by every route that uses them.
PATH_PARAMS: dict[str, tuple[Schema, str]] = {
    "show_id": (UUID, "The show's id."),
    "sku": (SKU, "The product's SKU."),
    "key_id": (UUID, "The API key's id."),
    "order_id": (UUID, "The order's id."),
    "endpoint_id": (UUID, "The webhook endpoint's id."),
    "delivery_id": (UUID, "The webhook delivery's id."),
    "video_id": (UUID, "The video's id (an upload or a clip cut by staff)."),
    "member_id": (
        {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[^/]+$"},
        "The brand's member id (the `sub` of its viewer tokens).",
    ),
    "session_id": (
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "The WHIP or WHEP session, from the Location of the answer.",
    ),
    "segment": (
        {"type": "string", "pattern": "^seg-[0-9]{6,9}\\.ts$"},
        "An HLS segment's name, as the playlist lists it.",
    ),
    "viewer": (
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
        "A browser's own random id (web/embed.js keeps one per site), so its plays count once.",
    ),
    "clip": (
        {"type": "string", "pattern": CLIP_NAME.pattern},
        "A product clip's file name: the product's SKU and `.mp4`, or `.jpg` for its poster.",
    ),
}

OPERATION = web.RequestKey("operation", Operation)
PRINCIPAL = web.RequestKey("principal", Principal)
BODY = web.RequestKey("body", dict)  # type: ignore[type-abstract]
QUERY = web.RequestKey("query", dict)  # type: ignore[type-abstract]
PATH = web.RequestKey("path", dict)  # type: ignore[type-abstract]

# All component schemas as one document, so their "#/components/schemas/X" references
# resolve exactly as they do inside /api/openapi.json.
_CONTRACT_URI = "urn:showroom:api"
_REGISTRY: Registry[Any] = Registry().with_resource(
    _CONTRACT_URI,
    Resource.from_contents(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": {"schemas": SCHEMAS},
        }
    ),
)


def validator_for(schema: Schema) -> Draft202012Validator:
    """A validator for `schema`, resolving component references against the contract."""
    return Draft202012Validator(
        {"$id": _CONTRACT_URI + "/local", **_rebase(schema)},
        registry=_REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _rebase(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (_CONTRACT_URI + v if k == "$ref" and v.startswith("#/components/") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


_BODY_VALIDATORS: dict[str, Draft202012Validator] = {
    name: validator_for(ref(name)) for name in SCHEMAS
}


def _join(path: list[Any], name: str | None = None) -> str | None:
    parts = [str(p) for p in path] + ([name] if name else [])
    return ".".join(parts) or None


def _describe(error: ValidationError) -> list[FieldError]:
    """Turn a jsonschema error into messages that name the field, without echoing input."""
    path = list(error.absolute_path)
    kind, expected = error.validator, error.validator_value
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        return [
            FieldError(_join(path, k), "unknown field") for k in error.instance if k not in allowed
        ]
    if "propertyNames" in error.schema_path:
        allowed_names = ", ".join(error.validator_value) if kind == "enum" else "the schema"
        return [FieldError(_join(path, str(error.instance)), f"unknown key; use {allowed_names}")]
    if kind == "required":
        missing = [k for k in expected if k not in error.instance]
        return [FieldError(_join(path, k), "is required") for k in missing]
    if kind == "oneOf" and error.schema.get("oneOf") and all("required" in s for s in expected):
        names = " or ".join(s["required"][0] for s in expected)
        return [FieldError(_join(path), f"give exactly one of {names}")]
    messages = {
        "type": lambda: (
            f"must be of type {expected if isinstance(expected, str) else ' or '.join(expected)}"
        ),
        "minimum": lambda: f"must be at least {expected}",
        "maximum": lambda: f"must be at most {expected}",
        "minLength": lambda: (
            "must not be empty" if expected == 1 else f"shorter than {expected} characters"
        ),
        "maxLength": lambda: f"longer than {expected} characters",
        "enum": lambda: "must be one of " + ", ".join(map(str, expected)),
        "const": lambda: f"must be {expected!r}",
        "pattern": lambda: f"does not match {expected}",
        "minProperties": lambda: "must not be empty",
        "format": lambda: f"must be a valid {expected}",
    }
    describe = messages.get(str(kind))
    if kind in ("anyOf", "oneOf") and error.context:
        # nullable(X) and friends: report why the value fails as the branch it resembles
        # most (not a plain type mismatch), instead of "not valid under any of the schemas".
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        closest = min(
            branches.values(),
            key=lambda errs: (
                any(e.validator == "type" and not e.relative_path for e in errs),
                len(errs),
            ),
        )
        return [d for sub in closest for d in _describe(sub)]
    return [FieldError(_join(path), describe() if describe else error.message[:200])]


def check_json(value: Any, schema_name: str) -> None:
    """Raise a 422 Problem listing every way `value` breaks the named schema."""
    errors: list[FieldError] = []
    for error in sorted(
        _BODY_VALIDATORS[schema_name].iter_errors(value),
        key=lambda e: list(map(str, e.absolute_path)),
    ):
        errors.extend(e for e in _describe(error) if e not in errors)
    if errors:
        first = errors[0]
        raise Problem(
            422,
            f"{first.field}: {first.message}" if first.field else first.message,
            kind="invalid-request",
            errors=errors,
        )


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The request body, refusing with 413 as soon as it passes `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, f"request body is {request.content_length} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise Problem(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: web.Request) -> str:
    return request.content_type.split(";")[0].strip().lower()


async def parse_json_body(request: web.Request, schema_name: str, limit: int) -> dict[str, Any]:
    if media_type(request) != "application/json":
        raise Problem(
            415,
            f"send the body as application/json (got {request.content_type or 'nothing'})",
            headers={"Accept-Post": "application/json"},
        )
    raw = await read_limited(request, limit)
    try:
        value = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Problem.invalid(None, "body is not UTF-8", status=400) from None
    except json.JSONDecodeError as exc:
        raise Problem.invalid(
            None, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", status=400
        ) from None
    check_json(value, schema_name)
    assert isinstance(value, dict)
    return value


def parse_query(request: web.Request, operation: Operation) -> dict[str, Any]:
    known = {p.name: p for p in operation.query}
    values: dict[str, Any] = {}
    for name in request.query:
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise Problem.invalid(name, f"unknown query parameter (allowed: {allowed})", status=400)
    for name, param in known.items():
        raw_values = request.query.getall(name, [])
        if not raw_values:
            if "default" in param.schema:
                values[name] = param.schema["default"]
            continue
        if param.many:
            items = [v for raw in raw_values for v in raw.split(",") if v]
            values[name] = [_query_value(name, item, param.schema["items"]) for item in items]
        else:
            if len(raw_values) > 1:
                raise Problem.invalid(name, "given more than once", status=400)
            values[name] = _query_value(name, raw_values[0], param.schema)
    return values


def _query_value(name: str, raw: str, schema: Schema) -> Any:
    value: Any = raw
    if schema.get("type") == "integer":
        try:
            value = int(raw)
        except ValueError:
            raise Problem.invalid(name, "must be an integer", status=400) from None
    elif schema.get("type") == "boolean":
        if raw not in ("true", "false"):
            raise Problem.invalid(name, "must be true or false", status=400)
        value = raw == "true"
    error = next(iter(validator_for(schema).iter_errors(value)), None)
    if error is not None:
        raise Problem.invalid(name, _describe(error)[0].message, status=400)
    return value


def parse_path(request: web.Request) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in request.match_info.items():
        schema, _ = PATH_PARAMS[name]
        if schema is UUID:
            try:
                values[name] = uuid.UUID(raw)
            except ValueError:
                raise Problem(404, f"{name} {raw!r} is not a valid id", kind="not-found") from None
        else:
            if next(iter(validator_for(schema).iter_errors(raw)), None) is not None:
                raise Problem(404, f"{name} {raw!r} is not a valid {name}", kind="not-found")
            values[name] = raw
    return values


Authenticator = Callable[[web.Request], Awaitable[Principal | None]]


@dataclass(slots=True)
class Contract:
    """The operations by route name, plus how to find out who is calling."""

    operations: dict[str, Operation] = field(default_factory=dict)

    def register(self, app: web.Application, operations: list[Operation]) -> None:
        for op in operations:
            app.router.add_route(op.method, op.path, op.handler, name=op.operation_id)
            self.operations[op.operation_id] = op

    def middleware(self, authenticate: Authenticator, max_body_bytes: int) -> Any:
        @web.middleware
        async def enforce_contract(request: web.Request, handler: Handler) -> web.StreamResponse:
            route_name = request.match_info.route.name
            operation = self.operations.get(route_name) if route_name else None
            if operation is None:
                return await handler(request)
            request[OPERATION] = operation
            if operation.roles is not None:
                principal = await authenticate(request)
                if principal is None:
                    raise Problem(
                        401,
                        "send credentials: Authorization: Bearer <API key, host token or viewer "
                        "token>, or a guest cookie",
                        kind="unauthorized",
                        headers={"WWW-Authenticate": 'Bearer realm="showroom"'},
                    )
                if principal.role not in operation.roles:
                    raise Problem(
                        403,
                        f"a {principal.role.value} may not {operation.summary.lower()}",
                        kind="forbidden",
                    )
                request[PRINCIPAL] = principal
            request[PATH] = parse_path(request)
            if (
                operation.host_scoped
                and request.get(PRINCIPAL) is not None
                and not request[PRINCIPAL].may_host(request[PATH]["show_id"])
            ):
                raise Problem(403, "this host token is for another show", kind="forbidden")
            request[QUERY] = parse_query(request, operation)
            if operation.body is not None:
                request[BODY] = await parse_json_body(request, operation.body, max_body_bytes)
            return await handler(request)

        return enforce_contract


def openapi_document(operations: list[Operation], *, server_url: str) -> dict[str, Any]:
    """OpenAPI 3.1 built from the same declarations the middleware enforces."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        responses: dict[str, Any] = {}
        for status, (description, schema) in sorted(op.responses.items()):
            entry: dict[str, Any] = {"description": description}
            if schema is not None:
                media = "application/problem+json" if schema == "Problem" else op.response_type
                entry["content"] = {media: {"schema": ref(schema)}}
            elif status < 300 and status != 204 and not op.empty:
                plain = (
                    {"type": "object"}
                    if op.response_type == "application/json"
                    else {"type": "string"}
                )
                entry["content"] = {op.response_type: {"schema": plain}}
            responses[str(status)] = entry
        for status, reason in _implied_errors(op):
            responses.setdefault(str(status), _problem(reason))
        responses["default"] = _problem("Unexpected error.")
        parameters = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "description": PATH_PARAMS[name][1],
                "schema": PATH_PARAMS[name][0],
            }
            for name in _path_names(op.path)
        ] + [
            {
                "name": p.name,
                "in": "query",
                "required": False,
                "description": p.description
                + (" Repeat or separate values with commas." if p.many else ""),
                "schema": p.schema,
                **({"style": "form", "explode": False} if p.many else {}),
            }
            for p in op.query
        ]
        spec: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": [op.tag],
            "responses": responses,
        }
        if op.description:
            spec["description"] = op.description
        if parameters:
            spec["parameters"] = parameters
        if op.body is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref(op.body)}},
            }
        if op.raw_body is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {m: {"schema": s} for m, s in op.raw_body.items()},
            }
        if op.roles is None:
            spec["security"] = []
        else:
            spec["x-roles"] = sorted(r.value for r in op.roles)
            spec["security"] = [{"bearer": []}] + (
                [{"guestCookie": []}] if Role.GUEST in op.roles else []
            )
        paths.setdefault(op.path, {})[op.method.lower()] = spec
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Showroom API",
            "version": "1",
            "description": "Live shopping: shows, catalog and identity. Errors are RFC 9457 "
            "application/problem+json. Money is integer minor units plus an ISO 4217 currency; "
            "times are UTC ISO 8601.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin API key (shr_admin_...), a host token (shr_host_...) "
                    "or a viewer JWT signed by the brand (HS256; sub, name, exp).",
                },
                "guestCookie": {"type": "apiKey", "in": "cookie", "name": "showroom_guest"},
            },
        },
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def _path_names(path: str) -> list[str]:
    return re.findall(r"\{([^}/]+)\}", path)  # also /videos/{video_id}.mp4


def _implied_errors(op: Operation) -> list[tuple[int, str]]:
    # Unknown query parameters are refused everywhere, so any operation may answer 400.
    implied: list[tuple[int, str]] = [(400, "Malformed request: bad JSON or query parameter.")]
    if op.roles is not None:
        implied += [
            (401, "No or invalid credentials."),
            (403, "The caller's role may not do this."),
        ]
    if _path_names(op.path):
        implied.append((404, "No such resource."))
    if op.body or op.raw_body:
        implied += [
            (413, "Request body too large."),
            (415, "Unsupported content type."),
            (422, "The body breaks the schema or a business rule; `errors` names each field."),
        ]
    return implied
