"""Database engine and sessions (SQLite with WAL by default, PostgreSQL through asyncpg)."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from server.core.errors import Conflict, ServiceUnavailable
from server.core.settings import Settings

# How long a writer waits for its turn: in this process (``WriterQueue``) and, on SQLite, for
# another process's write lock (the busy timeout) alike.
LOCK_WAIT_SECONDS = 30
# Pooled connections per process (kept + overflow), and how many of them PostgreSQL writer
# transactions may hold at once: writers queue on one row (the ledger's) while holding their
# connection, and the rest stays for readers such as the verification page.
POOL_SIZE, POOL_OVERFLOW = 10, 20
POSTGRES_WRITERS = 10


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # aiosqlite's default transaction handling begins lazily; we issue BEGIN ourselves so that
    # writers take the lock up front instead of failing on upgrade.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_SECONDS * 1000}")
    cursor.close()


WRITER = "zhifa_writer"


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front (no failed lock upgrades mid-transaction); readers
    # begin deferred so that, with WAL, they never wait for a writer.
    mode = "IMMEDIATE" if conn.get_execution_options().get(WRITER) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be reached now (down, restarting, out of connections): try again."""

    code = "database_unavailable"

    def __init__(self) -> None:
        super().__init__("数据库暂时无法访问，请稍后重试")


class DatabaseBusy(ServiceUnavailable):
    """Waited ``LOCK_WAIT_SECONDS`` for a writer's turn or a pooled connection: try again."""

    code = "database_busy"

    def __init__(self) -> None:
        super().__init__("数据库繁忙，请稍后重试")


class WriterQueue:
    """At most ``slots`` writers at once in this process, served first come, first served.

    SQLite's busy handler polls for the write lock, so with many writers some waited the whole
    busy timeout while later ones went through. Here the writers of one process take turns in
    order before they touch the database, and the busy timeout only arbitrates between processes
    (the CLI and the server). Waiters are asyncio tasks (of any event loop) or worker threads.

    Worker threads go ahead of the tasks: each holds its turn for one call that does not wait on
    the event loop (the verification page's grouped scan write, a millisecond), while a task
    holds it across awaits (a push of 200 events, tens of milliseconds). A party's page must not
    wait behind every terminal's push; a push waits at most one such call more.
    """

    def __init__(self, slots: int) -> None:
        self._mutex = threading.Lock()
        self._free = slots
        # How to wake each waiter, in order: threads, then tasks.
        self._threads: deque[Callable[[], object]] = deque()
        self._tasks: deque[Callable[[], object]] = deque()

    def _enter(self, wake: Callable[[], object], line: deque[Callable[[], object]]) -> bool:
        with self._mutex:
            if self._free and not self._threads and not self._tasks:
                self._free -= 1
                return True
            line.append(wake)
            return False

    def _give_up(self, wake: Callable[[], object], line: deque[Callable[[], object]]) -> bool:
        """Leave the queue; False when the turn was handed over meanwhile (it is ours then)."""
        with self._mutex:
            try:
                line.remove(wake)
            except ValueError:
                return False
            return True

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        wake = partial(loop.call_soon_threadsafe, _hand_over, turn)
        if self._enter(wake, self._tasks):
            return
        try:
            async with asyncio.timeout(LOCK_WAIT_SECONDS):
                await turn
        except BaseException as exc:  # timed out or cancelled
            if not self._give_up(wake, self._tasks):
                self.release()  # the turn came as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise DatabaseBusy() from exc
            raise

    def acquire_blocking(self) -> None:
        turn = threading.Event()
        if self._enter(turn.set, self._threads):
            return
        if not turn.wait(LOCK_WAIT_SECONDS) and self._give_up(turn.set, self._threads):
            raise DatabaseBusy()

    def release(self) -> None:
        with self._mutex:
            line = self._threads or self._tasks
            if line:
                line.popleft()()  # the slot goes straight to the next in line
            else:
                self._free += 1


def _hand_over(turn: asyncio.Future[None]) -> None:
    if not turn.done():
        turn.set_result(None)


def _take_turns_in_threads(engine: Engine, writers: WriterQueue) -> None:
    """A synchronous writer engine used from worker threads queues with the async writers: from
    its BEGIN until its connection goes back to the pool (after COMMIT or ROLLBACK)."""
    holding: set[int] = set()  # threads holding a turn

    def begin(_conn: Any) -> None:
        if threading.get_ident() not in holding:
            writers.acquire_blocking()
            holding.add(threading.get_ident())

    def checkin(_dbapi_connection: Any, _record: Any) -> None:
        if threading.get_ident() in holding:
            holding.discard(threading.get_ident())
            writers.release()

    event.listen(engine, "begin", begin)  # before _sqlite_begin: the turn, then BEGIN IMMEDIATE
    event.listen(engine, "checkin", checkin)


# What asyncpg raises when the server is gone, going or not yet back, as opposed to a bad query.
_POSTGRES_GONE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


def unavailable(exc: DBAPIError) -> bool:
    """Whether a database error means "not reachable now" rather than a fault of ours."""
    if exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc.orig, _POSTGRES_GONE) or isinstance(
        getattr(exc.orig, "__cause__", None), _POSTGRES_GONE
    )


def _postgres_connector(url: URL) -> Callable[[], Awaitable[Any]]:
    # New connections are made here so that a refused or dropped connection attempt (raised by
    # asyncpg as OSError & co., which SQLAlchemy passes through untranslated) reads as
    # DatabaseUnavailable instead of an unexplained 500.
    params: dict[str, Any] = {**url.translate_connect_args(username="user"), **url.query}

    async def connect() -> Any:
        try:
            return await asyncpg.connect(**params)
        except _POSTGRES_GONE as exc:
            raise DatabaseUnavailable() from exc

    return connect


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.resolved_database_url)
    # A connection not free within the wait raises sqlalchemy.exc.TimeoutError: 503 database_busy.
    pool: dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": LOCK_WAIT_SECONDS,
    }
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            pool = {}  # one shared connection
        engine = create_async_engine(url, connect_args={"timeout": LOCK_WAIT_SECONDS}, **pool)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # pre-ping: connections the database dropped (restart, failover) are replaced, not reused.
    return create_async_engine(
        url, pool_pre_ping=True, async_creator=_postgres_connector(url), **pool
    )


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
        self._thread_engine: Engine | None = None
        sqlite = self.dialect == "sqlite"
        self._writers = WriterQueue(1 if sqlite else POSTGRES_WRITERS)
        self._writing: set[asyncio.Task[Any]] = set()  # tasks holding a turn

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits on success, rolls back on any error.

        It waits for its turn in the process's ``WriterQueue`` before it takes a connection (on
        SQLite: the one writer; on PostgreSQL: one of ``POSTGRES_WRITERS``) and gives it back
        after COMMIT or ROLLBACK; ``DatabaseBusy`` after ``LOCK_WAIT_SECONDS``. A transaction
        opened inside another in the same task does not queue again: it would wait for itself.
        Integrity errors are converted here, once, into our ``Conflict``.
        """
        task = asyncio.current_task()
        queued = task if task is not None and task not in self._writing else None
        if queued is not None:
            await self._writers.acquire()
            self._writing.add(queued)
        try:
            async with self._writer() as session:
                try:
                    async with session.begin():
                        yield session
                except IntegrityError as exc:
                    raise Conflict() from exc
        finally:
            if queued is not None:
                self._writing.discard(queued)
                self._writers.release()

    def thread_engine(self) -> Engine | None:
        """SQLite file only: a synchronous writer engine on the same file and settings, for a hot
        path that runs each transaction as ONE call in a worker thread (through aiosqlite every
        cursor, execute, fetch and close is a thread hop). Made once, disposed with the rest."""
        url = make_url(self.settings.resolved_database_url)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        if self._thread_engine is None:
            engine = create_sync_engine(
                url.set(drivername="sqlite"), connect_args={"timeout": LOCK_WAIT_SECONDS}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            _take_turns_in_threads(engine, self._writers)
            event.listen(engine, "begin", _sqlite_begin)
            self._thread_engine = engine.execution_options(**{WRITER: True})
        return self._thread_engine

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._thread_engine is not None:
            self._thread_engine.dispose()
