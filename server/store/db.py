"""The database engine: SQLite in WAL mode by default, PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

_IMMEDIATE = "showroom_sqlite_immediate"


def _json_dumps(value: Any) -> str:
    # Keep CJK readable in the database (and searchable by humans with psql/sqlite3).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def create_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, json_serializer=_json_dumps)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            # A 16 MB page cache (SQLite's default: 2 MB): one engagement flush touches a few
            # thousand scattered index and table pages (the ledger's member-keyed indexes,
            # attendance, balances), which the default cache keeps reading again. On
            # bench/engagement.py 8, 16, 32 and 64 MB saved the same (5-10 ms of SQLite CPU per
            # flush, within the noise of one another). It is per connection and only fills as
            # pages are read: up to 16 MB x the pool (15 connections at most), 240 MB, where
            # 64 MB would allow close to 1 GB.
            cursor.execute("PRAGMA cache_size=-16384")
            cursor.close()
            # Let SQLAlchemy's "begin" event below emit BEGIN itself.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock up front: two deferred read-then-write transactions
            # in WAL mode fail with SQLITE_BUSY_SNAPSHOT instead of waiting for each other.
            immediate = conn.get_execution_options().get(_IMMEDIATE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_async_engine(
        url, json_serializer=_json_dumps, pool_size=10, max_overflow=10, pool_pre_ping=True
    )


class Database:
    """The engine plus a session factory; services open one transaction per use-case."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._readers = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        self._writers = async_sessionmaker(
            engine.execution_options(**{_IMMEDIATE: True}), expire_on_commit=False, autoflush=False
        )
        # SQLite has one writer at a time. Writers of this process queue here, in order and
        # without a timeout, rather than on the database file's lock, where a burst of them
        # (a thousand viewers joining at once) would run past busy_timeout and fail.
        self._write_turn = asyncio.Lock() if self.dialect == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One write transaction: commits on exit, rolls back on any exception."""
        async with self._write_turn or nullcontext():
            async with self._writers() as session, session.begin():
                yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only snapshot; nothing it does is committed."""
        async with self._readers() as session, session.begin():
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncSession]:
        """A read transaction whose every query sees the same committed state. SQLite's WAL
        read transactions already do; PostgreSQL needs REPEATABLE READ for it."""
        async with self._readers() as session, session.begin():
            if self.dialect == "postgresql":
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            yield session

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
