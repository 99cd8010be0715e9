"""Database engine and sessions (SQLite with WAL by default, PostgreSQL through asyncpg)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.core.errors import Conflict
from server.core.settings import Settings


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # aiosqlite's default transaction handling begins lazily; we issue BEGIN ourselves so that
    # writers take the lock up front instead of failing on upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


WRITER = "zhifa_writer"


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front (no failed lock upgrades mid-transaction); readers
    # begin deferred so that, with WAL, they never wait for a writer.
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITER) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.resolved_database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings)
        # Sessions for reading; ``transaction()`` uses the writer sessions.
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self._writer = async_sessionmaker(
            self.engine.execution_options(**{WRITER: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error.

        Integrity errors are converted here, once, into our ``Conflict``.
        """
        async with self._writer() as session:
            try:
                async with session.begin():
                    yield session
            except IntegrityError as exc:
                raise Conflict() from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
