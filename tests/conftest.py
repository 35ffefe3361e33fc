"""Shared fixtures: a real database per backend (SQLite file, PostgreSQL database), a real
server on 127.0.0.1, and an API client that holds every answer to the OpenAPI document."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp import ClientResponse, DummyCookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import delete, select, update

from server.app import create_app
from server.config import Settings
from server.http.contract import validator_for
from server.http.routes import OPERATIONS
from server.keys import OPENAPI
from server.services import identity
from server.services.identity import Role
from server.store import models
from server.store.db import Database, create_engine
from server.store.migrate import upgrade
from server.store.models import Base
from tests.media_peers import film

BACKENDS = [
    b for b in os.environ.get("SHOWROOM_TEST_BACKENDS", "sqlite,postgresql").split(",") if b
]
POSTGRES_ADMIN_DSN = os.environ.get(
    "SHOWROOM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
VIEWER_SECRET = "brand-shared-secret-for-viewer-tokens-0123456789"
SECRET_KEY = "server-secret-key-for-guest-cookies-0123456789"


def unavailable(reason: str) -> None:
    """A missing service fails the run under CI and skips only on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)")
    pytest.skip(reason)


async def until(check: Callable[[], bool], what: str, within: float = 8.0) -> None:
    """Wait for a condition the server reaches on its own clock (a frame, a count)."""
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def _postgres_admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database for this session, on SQLite or on a fresh PostgreSQL DB."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'showroom.db'}"
        upgrade(url)
        yield url
        return
    assert request.param == "postgresql", request.param
    name = f"showroom_test_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_DSN} is unavailable: {exc}")
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    url = f"{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """The database, emptied after each test."""
    database = Database(create_engine(database_url))
    yield database
    await empty(database)
    await database.dispose()


async def empty(database: Database) -> None:
    async with database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            await session.execute(delete(table))


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove a rejected request wrote nothing."""
    result: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as session:
        for table in Base.metadata.sorted_tables:
            rows = (await session.execute(select(table))).all()
            result[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return result


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return server_settings(database_url, tmp_path)


def server_settings(database_url: str, data_dir: Path) -> Settings:
    """The settings every test's server runs with (small limits, no background flush)."""
    return Settings(
        secret_key=SECRET_KEY,
        database_url=database_url,
        public_url="http://showroom.test",
        data_dir=data_dir,
        viewer_jwt_secret=VIEWER_SECRET,
        max_body_bytes=64 * 1024,
        max_import_bytes=256 * 1024,
        max_upload_mb=1,
        # Tests that count what a request wrote must not see a background flush land
        # meanwhile: engagement tests flush on purpose (or set their own interval).
        engagement_flush_seconds=3600.0,
    )


# --- the API client -----------------------------------------------------------------------

_TEMPLATES = [
    (op, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", op.path) + "$")) for op in OPERATIONS
]


def _operation_for(method: str, path: str) -> Any:
    matches = [op for op, rx in _TEMPLATES if op.method == method and rx.match(path)]
    # A literal segment beats a parameter (/products/import over /products/{sku}).
    return min(matches, key=lambda op: op.path.count("{")) if matches else None


@dataclass
class Answer:
    status: int
    headers: Any
    body: Any
    text: str
    cookies: Any


class Api:
    """Sends requests as a given caller and checks every answer against the OpenAPI
    document: the status is documented for the operation, and the body validates."""

    def __init__(self, client: TestClient[Any, Any], document: dict[str, Any]) -> None:
        self.client = client
        self.document = document

    async def call(
        self,
        method: str,
        path: str,
        *,
        auth: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = f"Bearer {auth}"
        if json_body is not None:
            data = json.dumps(json_body, ensure_ascii=False)
            sent.setdefault("Content-Type", "application/json")
        if cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        body: Any = data
        if isinstance(data, bytes) and len(data) > 1024 * 1024:
            body = io.BytesIO(data)  # aiohttp warns about large raw bodies (uploads)
        response = await self.client.request(method, path, data=body, headers=sent)
        answer = await self._read(response)
        self.check_contract(method, path.split("?")[0], answer)
        return answer

    async def _read(self, response: ClientResponse) -> Answer:
        text = await response.text()
        ctype = response.headers.get("Content-Type", "")
        body = json.loads(text) if "json" in ctype and text else None
        return Answer(response.status, response.headers, body, text, response.cookies)

    def check_contract(self, method: str, path: str, answer: Answer) -> None:
        op = _operation_for(method, path)
        if op is None:
            assert answer.status in (404, 405), f"{method} {path} is not in the route table"
            assert answer.headers["Content-Type"].startswith("application/problem+json")
            return
        spec = self.document["paths"][op.path][method.lower()]
        documented = spec["responses"]
        assert str(answer.status) in documented, (
            f"{method} {op.path} answered {answer.status}, which the OpenAPI document does not list "
            f"({sorted(documented)}): {answer.text[:300]}"
        )
        content = documented[str(answer.status)].get("content")
        if not content:
            assert answer.text == "", f"{method} {op.path} {answer.status} should have no body"
            return
        ctype = answer.headers.get("Content-Type", "").split(";")[0]
        assert ctype in content, (
            f"{method} {op.path} {answer.status}: {ctype} not in {list(content)}"
        )
        schema = content[ctype]["schema"]
        if ctype.endswith("json"):
            errors = list(validator_for(schema).iter_errors(answer.body))
            assert not errors, f"{method} {op.path} {answer.status} breaks its schema: {errors[0]}"


@pytest.fixture
async def api(db: Database, settings: Settings, aiohttp_client: Any) -> Api:
    # `db` first: fixtures are torn down in reverse, so the app stops before the tables empty.
    app = create_app(settings)
    # No cookie jar: each call sends exactly the credentials the test names.
    client = await aiohttp_client(app, cookie_jar=DummyCookieJar())

    return Api(client, app[OPENAPI])


# --- callers ------------------------------------------------------------------------------


@pytest.fixture
async def admin(db: Database) -> str:
    _, token = await identity.do_create_api_key(db, role=Role.ADMIN, name="test admin")
    return token


def viewer_token(
    member_id: str = "member-001",
    name: str = "陳小明",
    *,
    secret: str = VIEWER_SECRET,
    expires_in: int = 3600,
    **extra: Any,
) -> str:
    claims = {"sub": member_id, "name": name, "exp": int(time.time()) + expires_in, **extra}
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def viewer() -> str:
    return viewer_token()


async def create_show(api: Api, admin: str, **fields: Any) -> dict[str, Any]:
    body = {"title": "Winter live", "scheduled_start": "2026-12-01T12:00:00Z", **fields}
    answer = await api.call("POST", "/api/v1/shows", auth=admin, json_body=body)
    assert answer.status == 201, answer.text
    return dict(answer.body)


def product_body(sku: str = "TEA-001", **fields: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "title": {"zh-HK": "凍頂烏龍茶", "en": "Dong Ding Oolong"},
        "description": {"en": "Roasted oolong from Taiwan."},
        "price": {"amount_minor": 19900, "currency": "HKD"},
        "compare_at_price": {"amount_minor": 25900, "currency": "HKD"},
        "image_url": "https://cdn.example.com/tea.jpg",
        "stock": 12,
        **fields,
    }


async def create_product(
    api: Api, admin: str, sku: str = "TEA-001", **fields: Any
) -> dict[str, Any]:
    answer = await api.call(
        "POST", "/api/v1/products", auth=admin, json_body=product_body(sku, **fields)
    )
    assert answer.status == 201, answer.text
    return dict(answer.body)


async def place_pins(
    db: Database, show_id: str, times: dict[str, tuple[datetime, datetime | None]]
) -> None:
    """Set when each product ({sku: (pinned_at, unpinned_at or None)}) was on screen in a
    show: the replay tests place pins at chosen moments of a video made beforehand."""
    async with db.transaction() as session:
        for sku, (pinned, unpinned) in times.items():
            product = await session.scalar(
                select(models.Product.id).where(
                    models.Product.sku == sku, models.Product.deleted_at.is_(None)
                )
            )
            await session.execute(
                update(models.ShowPin)
                .where(
                    models.ShowPin.show_id == uuid.UUID(show_id),
                    models.ShowPin.product_id == product,
                )
                .values(pinned_at=pinned, unpinned_at=unpinned)
            )


async def host_token(db: Database, show_id: str | None) -> str:
    _, token = await identity.do_create_api_key(
        db, role=Role.HOST, show_id=uuid.UUID(show_id) if show_id else None, name="test host"
    )
    return token


# --- filmed shows and their clips -----------------------------------------------------------


async def filmed_show(
    api: Api,
    db: Database,
    admin: str,
    settings: Settings,
    pins: dict[str, float],
    *,
    seconds: int = 30,
    corrupt: bool = False,
) -> str:
    """A live show that pinned `pins` ({sku: seconds into the video}), with its replay on
    disk (filmed while it was live), then ended through the API."""
    show = await create_show(api, admin, title="Clip show")
    token = await host_token(db, show["id"])
    assert (await api.call("POST", f"/api/v1/shows/{show['id']}/start", auth=token)).status == 200
    for sku in pins:
        pinned = await api.call(
            "POST", f"/api/v1/shows/{show['id']}/pins", auth=admin, json_body={"sku": sku}
        )
        assert pinned.status == 200, pinned.text
        unpinned = await api.call("DELETE", f"/api/v1/shows/{show['id']}/pins/{sku}", auth=admin)
        assert unpinned.status == 200, unpinned.text
    folder = Path(settings.data_dir) / "hls" / show["id"]
    start = await film(folder, seconds, audio=True)
    if corrupt:
        for segment in folder.glob("seg-*.ts"):
            segment.write_bytes(b"not an MPEG-TS packet " * 4000)
    await place_pins(
        db,
        show["id"],
        {
            sku: (start + timedelta(seconds=at), start + timedelta(seconds=at + 3))
            for sku, at in pins.items()
        },
    )
    ended = await api.call("POST", f"/api/v1/shows/{show['id']}/end", auth=token)
    assert ended.status == 200, ended.text
    return str(show["id"])


async def settled_clips(api: Api, admin: str, show_id: str, count: int) -> list[dict[str, Any]]:
    """The show's clip jobs once every one of them is done or failed."""
    deadline = time.monotonic() + 60
    while True:
        answer = await api.call("GET", f"/api/v1/shows/{show_id}/clips", auth=admin)
        assert answer.status == 200, answer.text
        items: list[dict[str, Any]] = answer.body["items"]
        if len(items) == count and all(i["state"] in ("done", "failed") for i in items):
            return items
        assert time.monotonic() < deadline, items
        await asyncio.sleep(0.1)


# --- uploads ------------------------------------------------------------------------------

BOUNDARY = "showroom-test-boundary"
FORM = f"multipart/form-data; boundary={BOUNDARY}"


def form(*parts: tuple[str, bytes, str | None]) -> bytes:
    """A multipart/form-data body of (name, content, file name or None) parts."""
    body = b""
    for name, content, filename in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


async def upload_video(api: Api, admin: str, content: bytes, **fields: str) -> Answer:
    """POST /api/v1/videos with `content` as the file and `fields` (title, tags)."""
    parts = [(k, v.encode(), None) for k, v in fields.items()] + [("file", content, "a.bin")]
    return await api.call(
        "POST", "/api/v1/videos", auth=admin, data=form(*parts), headers={"Content-Type": FORM}
    )


async def settled_video(api: Api, admin: str, video_id: str, seconds: float = 30) -> dict[str, Any]:
    """The video once its job is done or failed."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await api.call("GET", f"/api/v1/videos/{video_id}", auth=admin)
        assert answer.status == 200, answer.text
        if answer.body["state"] in ("done", "failed"):
            return dict(answer.body)
        assert time.monotonic() < deadline, answer.body
        await asyncio.sleep(0.05)
