"""The OpenAPI document is valid 3.1 and describes exactly the routes the app serves."""

from __future__ import annotations

from collections import Counter

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from server.app import create_app
from server.config import Settings
from server.http.routes import OPERATIONS
from tests.conftest import Api

# HTML pages, static files and vendored front-end scripts are not part of the JSON API
NOT_API = ("page:", "web", "vendor:")


def test_document_is_valid_openapi_3_1(settings: Settings) -> None:
    from server.keys import OPENAPI

    document = create_app(settings)[OPENAPI]
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["openapi"] == "3.1.0"


def test_every_route_is_documented_and_every_documented_route_exists(settings: Settings) -> None:
    from server.keys import OPENAPI

    app = create_app(settings)
    document = app[OPENAPI]
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not (route.name or "").startswith(NOT_API)
        and route.resource.name != "web"
        # The Socket.IO transport is documented in docs/realtime.md, not in OpenAPI.
        and not route.resource.canonical.startswith("/socket.io")
    }
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert served == documented


def test_operations_are_described() -> None:
    ids = Counter(op.operation_id for op in OPERATIONS)
    assert [i for i, n in ids.items() if n > 1] == []
    for op in OPERATIONS:
        assert op.summary and op.tag, op.operation_id
        assert any(status < 300 for status in op.responses), op.operation_id


async def test_served_document_matches_and_is_public(api: Api) -> None:
    answer = await api.call("GET", "/api/openapi.json")
    assert answer.status == 200
    assert answer.body["paths"].keys() == {op.path for op in OPERATIONS}
    create = answer.body["paths"]["/api/v1/products"]["post"]
    assert create["x-roles"] == ["admin"]
    assert {"401", "403", "413", "415", "422"} <= create["responses"].keys()
