"""Writers under contention: SQLite writers take turns in arrival order (tasks and the scan
writer's worker thread alike), nothing deadlocks on the turn, and a database too busy to serve in
time answers 503 ``database_busy`` instead of 500."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from server.app.main import create_app
from server.core import db
from server.core.db import Database, DatabaseBusy
from server.core.settings import load_settings


@pytest.fixture
async def database(tmp_path):
    database = Database(
        load_settings(environ={}, database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    )
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE turns (n INTEGER PRIMARY KEY, who TEXT)"))
    yield database
    await database.dispose()


async def _queued(database: Database, waiting: int) -> None:
    """Until ``waiting`` writers wait for their turn (tasks and threads)."""
    for _ in range(5000):
        if len(database._writers._tasks) + len(database._writers._threads) >= waiting:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"fewer than {waiting} writers queued")


async def _write(database: Database, who: str) -> None:
    async with database.transaction() as session:
        await session.execute(text("INSERT INTO turns (who) VALUES (:who)"), {"who": who})


def _write_in_thread(database: Database, who: str) -> None:
    engine = database.thread_engine()
    assert engine is not None
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO turns (who) VALUES (:who)"), {"who": who})


async def _order(database: Database) -> list[str]:
    async with database.sessionmaker() as session:
        return list(await session.scalars(text("SELECT who FROM turns ORDER BY n")))


async def test_sqlite_writers_commit_in_arrival_order(database):
    release = asyncio.Event()

    async def first() -> None:
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO turns (who) VALUES ('first')"))
            await release.wait()

    tasks = [asyncio.create_task(first())]
    await _queued(database, 0)
    await asyncio.sleep(0.01)
    for n in range(40):
        tasks.append(asyncio.create_task(_write(database, f"w{n}")))
        await _queued(database, n + 1)
    # Readers are not queued: they read the last commit while the writers wait.
    assert await _order(database) == []
    release.set()
    await asyncio.gather(*tasks)
    assert await _order(database) == ["first"] + [f"w{n}" for n in range(40)]


async def test_the_scan_writers_thread_goes_ahead_of_waiting_tasks(database):
    """A worker-thread writer holds its turn for one call: it is served before the queued tasks,
    never left polling SQLite's busy handler behind them."""
    release = asyncio.Event()

    async def first() -> None:
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO turns (who) VALUES ('first')"))
            await release.wait()

    holder = asyncio.create_task(first())
    await asyncio.sleep(0.01)
    tasks = [asyncio.create_task(_write(database, f"w{n}")) for n in range(5)]
    await _queued(database, 5)
    thread = asyncio.get_running_loop().run_in_executor(None, _write_in_thread, database, "scans")
    await _queued(database, 6)
    release.set()
    await asyncio.gather(holder, thread, *tasks)
    assert await _order(database) == ["first", "scans"] + [f"w{n}" for n in range(5)]
    # The thread gave its turn back: the next writer does not wait for it.
    await asyncio.wait_for(_write(database, "after"), 5)


async def test_a_thread_writer_that_fails_gives_its_turn_back(database):
    def failing() -> None:
        engine = database.thread_engine()
        assert engine is not None
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO no_such_table VALUES (1)"))

    with pytest.raises(Exception, match="no_such_table"):
        await asyncio.get_running_loop().run_in_executor(None, failing)
    await asyncio.wait_for(_write(database, "after"), 5)
    assert await _order(database) == ["after"]


async def test_a_transaction_inside_another_of_the_same_task_does_not_wait_for_itself(database):
    async with database.transaction() as outer:
        async with database.transaction() as inner:
            await inner.execute(text("INSERT INTO turns (who) VALUES ('inner')"))
        await outer.execute(text("INSERT INTO turns (who) VALUES ('outer')"))
    assert await _order(database) == ["inner", "outer"]


async def test_waiters_that_give_up_pass_the_turn_on(database, monkeypatch):
    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 0.2)
    release = asyncio.Event()

    async def first() -> None:
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO turns (who) VALUES ('first')"))
            await release.wait()

    holder = asyncio.create_task(first())
    await asyncio.sleep(0.01)
    impatient = asyncio.create_task(_write(database, "impatient"))
    cancelled = asyncio.create_task(_write(database, "cancelled"))
    await _queued(database, 2)
    cancelled.cancel()
    with pytest.raises(DatabaseBusy):
        await impatient
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(_write(database, "next"), 5)
    assert await _order(database) == ["first", "next"]


async def test_no_connection_in_time_is_503_database_busy(migrated, clock, monkeypatch):
    """A pool exhausted for longer than the wait (readers, or writers queued on the ledger row
    while holding their connections) is a busy database: 503 with Retry-After, not a 500."""
    import httpx

    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 0.3)
    monkeypatch.setattr(db, "POOL_SIZE", 1)
    monkeypatch.setattr(db, "POOL_OVERFLOW", 0)
    app = create_app(migrated, clock)
    context = app.state.context
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
    ) as client:
        async with context.database.sessionmaker() as hog:
            await hog.connection()  # the pool's only connection
            busy = await client.get("/api/ledger/head")
        assert busy.status_code == 503
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.headers["retry-after"]
        assert busy.json()["code"] == "database_busy"
        assert (await client.get("/api/ledger/head")).status_code in (200, 404)
    await context.close()
