"""Who is calling: admin API keys, host tokens, brand-signed viewer JWTs and guest cookies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import jwt
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from server.domain.errors import InvalidValue, NotFound
from server.domain.text import normalize
from server.store import models
from server.store.db import Database
from server.store.models import utcnow

ADMIN_PREFIX = "shr_admin_"
HOST_PREFIX = "shr_host_"
# A guest's bearer token: the guest cookie's signed value, for pages where a cookie cannot go
# (an embed on a brand's site, where browsers block third-party cookies).
GUEST_PREFIX = "shr_guest_"
GUEST_COOKIE = "showroom_guest"
MEMBER_ID_MAX = 128
DISPLAY_NAME_MAX = 100


class Role(StrEnum):
    ADMIN = "admin"
    HOST = "host"
    VIEWER = "viewer"  # a member, identified by the brand's JWT
    GUEST = "guest"  # anonymous, identified by a signed cookie


class Unauthenticated(Exception):
    """Credentials were given but are not valid (answers 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    role: Role
    # admin/host: the key's id; viewer: the brand's member id; guest: the guest id.
    subject: str
    name: str = ""
    # A host token limited to one show; None means every show.
    show_id: uuid.UUID | None = None

    def may_host(self, show_id: uuid.UUID) -> bool:
        return self.role is Role.ADMIN or (
            self.role is Role.HOST and (self.show_id is None or self.show_id == show_id)
        )


def hash_secret(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: uuid.UUID
    role: Role
    show_id: uuid.UUID | None
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: models.ApiKey) -> ApiKeyRecord:
        return cls(
            row.id,
            Role(row.role),
            row.show_id,
            row.name,
            row.prefix,
            row.created_at,
            row.revoked_at,
        )


async def do_create_api_key(
    db: Database, *, role: Role, show_id: uuid.UUID | None = None, name: str = ""
) -> tuple[ApiKeyRecord, str]:
    """Mint an admin key or host token. The secret is returned once and stored only hashed."""
    if role not in (Role.ADMIN, Role.HOST):
        raise InvalidValue("must be admin or host", field="role")
    if role is Role.ADMIN and show_id is not None:
        raise InvalidValue("only host tokens are scoped to a show", field="show_id")
    name = normalize(name)
    if len(name) > 100:
        raise InvalidValue("longer than 100 characters", field="name")
    token = (ADMIN_PREFIX if role is Role.ADMIN else HOST_PREFIX) + secrets.token_urlsafe(32)
    async with db.transaction() as session:
        if show_id is not None and await session.get(models.Show, show_id) is None:
            raise InvalidValue(f"no show {show_id}", field="show_id")
        row = models.ApiKey(
            role=role.value,
            show_id=show_id,
            name=name,
            key_hash=hash_secret(token),
            prefix=token[:14],
        )
        session.add(row)
        await session.flush()
        return ApiKeyRecord.of(row), token


async def list_api_keys(db: Database) -> list[ApiKeyRecord]:
    async with db.read() as session:
        rows = await session.scalars(select(models.ApiKey).order_by(models.ApiKey.created_at))
        return [ApiKeyRecord.of(r) for r in rows]


async def do_revoke_api_key(db: Database, key_id: uuid.UUID) -> ApiKeyRecord:
    async with db.transaction() as session:
        row = await session.get(models.ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return ApiKeyRecord.of(row)


async def do_revoke_keys_named(db: Database, name: str) -> int:
    """Revoke every live key with this name (the demo seeding mints a fresh pair each run)."""
    async with db.transaction() as session:
        result = await session.execute(
            update(models.ApiKey)
            .where(models.ApiKey.name == name, models.ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


async def access_key_principal(db: Database, token: str) -> Principal:
    async with db.read() as session:
        row = await session.scalar(
            select(models.ApiKey).where(models.ApiKey.key_hash == hash_secret(token))
        )
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("unknown or revoked key")
    return Principal(Role(row.role), str(row.id), row.name, row.show_id)


def viewer_principal(token: str, secret: str | None) -> Principal:
    """A member from the brand's JWT: HS256 with the shared secret, `sub` and `exp` required."""
    if secret is None:
        raise Unauthenticated("viewer tokens are not enabled on this server")
    try:
        claims = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}, leeway=30
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("viewer token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise Unauthenticated(f"invalid viewer token: {exc}") from None
    sub, name = claims.get("sub"), claims.get("name", "")
    if not isinstance(sub, str) or not 0 < len(sub) <= MEMBER_ID_MAX:
        raise Unauthenticated(f"viewer token sub must be a string of 1-{MEMBER_ID_MAX} characters")
    if not isinstance(name, str):
        raise Unauthenticated("viewer token name must be a string")
    return Principal(Role.VIEWER, sub, normalize(name)[:DISPLAY_NAME_MAX])


# Guest cookie: "<guest id>.<HMAC-SHA256 of it>", both URL-safe base64. The id is random,
# so the cookie proves only "the same browser as before", which is all a guest is.
def _guest_mac(guest_id: str, secret_key: str) -> str:
    mac = hmac.new(secret_key.encode(), b"guest:" + guest_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def new_guest_cookie(secret_key: str) -> tuple[str, str]:
    guest_id = "g_" + secrets.token_urlsafe(16)
    return guest_id, f"{guest_id}.{_guest_mac(guest_id, secret_key)}"


def guest_principal(cookie: str, secret_key: str) -> Principal:
    guest_id, _, mac = cookie.rpartition(".")
    if not guest_id.startswith("g_") or not hmac.compare_digest(
        mac, _guest_mac(guest_id, secret_key)
    ):
        raise Unauthenticated("guest cookie or token signature does not match")
    return Principal(Role.GUEST, guest_id)


@dataclass(frozen=True, slots=True)
class MemberRecord:
    id: uuid.UUID
    external_id: str
    display_name: str
    created_at: datetime

    @classmethod
    def of(cls, row: models.Member) -> MemberRecord:
        return cls(row.id, row.external_id, row.display_name, row.created_at)


async def do_register_member(db: Database, principal: Principal) -> MemberRecord:
    """The member behind a viewer token, created on first sight; the display name follows
    the latest token the brand signed."""
    assert principal.role is Role.VIEWER
    try:
        return await _register_member(db, principal)
    except IntegrityError:
        # The member's first two requests raced; the other one created the row.
        return await _register_member(db, principal)


async def _register_member(db: Database, principal: Principal) -> MemberRecord:
    async with db.transaction() as session:
        row = await session.scalar(
            select(models.Member).where(models.Member.external_id == principal.subject)
        )
        if row is None:
            row = models.Member(external_id=principal.subject, display_name=principal.name)
            session.add(row)
        elif principal.name and row.display_name != principal.name:
            row.display_name = principal.name
            row.updated_at = utcnow()
        await session.flush()
        return MemberRecord.of(row)


async def list_members(db: Database, *, limit: int, offset: int) -> tuple[list[MemberRecord], int]:
    async with db.read() as session:
        total = await session.scalar(select(func.count()).select_from(models.Member))
        rows = await session.scalars(
            select(models.Member)
            .order_by(models.Member.created_at, models.Member.id)
            .limit(limit)
            .offset(offset)
        )
        return [MemberRecord.of(r) for r in rows], int(total or 0)


async def identify(
    db: Database,
    *,
    bearer: str | None,
    guest_cookie: str | None,
    secret_key: str,
    viewer_jwt_secret: str | None,
) -> Principal | None:
    """The caller from a bearer token (API key, host token, guest token or viewer JWT) or
    else the guest cookie; None when neither was sent. Invalid credentials raise
    Unauthenticated."""
    if bearer is not None:
        if bearer.startswith(GUEST_PREFIX):
            return guest_principal(bearer.removeprefix(GUEST_PREFIX), secret_key)
        if bearer.startswith((ADMIN_PREFIX, HOST_PREFIX)):
            return await access_key_principal(db, bearer)
        return viewer_principal(bearer, viewer_jwt_secret)
    if guest_cookie:
        return guest_principal(guest_cookie, secret_key)
    return None
