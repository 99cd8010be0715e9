"""The terminal's own SQLite store (stdlib sqlite3, WAL): session, cached reference data, cases,
events and the outbox.

Every change is one ``transaction()`` (BEGIN IMMEDIATE … COMMIT): an officer's action is written
together with its outbox entry, a push result together with the outbox deletion, a pull together
with its cursor. A process killed at any instant leaves the last committed state, nothing between.
``synchronous=FULL`` because a terminal can also lose power, not only its process.

Other features add their own tables with ``CREATE TABLE IF NOT EXISTS`` in their own modules and
use the same ``transaction()``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec

from mobile_api.contracts.sync import Reference

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS session (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    server_url TEXT NOT NULL,
    terminal_id TEXT NOT NULL,
    agency_id TEXT NOT NULL,
    terminal_name TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    credential_number TEXT NOT NULL DEFAULT '',
    access_token TEXT NOT NULL DEFAULT '',
    refresh_token TEXT NOT NULL DEFAULT '',
    access_expires_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reference (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    procedure TEXT NOT NULL,
    item_code TEXT NOT NULL,
    category TEXT NOT NULL,
    region TEXT NOT NULL,
    act_kind TEXT NOT NULL,
    officers TEXT NOT NULL,        -- JSON list of credential numbers
    state TEXT NOT NULL,           -- as the server last said, or 本机新建 until it has
    opened_at TEXT NOT NULL,
    origin TEXT NOT NULL CHECK (origin IN ('local', 'server'))
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,   -- local order of writing
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    hlc TEXT NOT NULL,
    terminal_time TEXT NOT NULL,
    body BLOB NOT NULL,            -- canonical JSON, exactly what is pushed
    status TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'rejected')),
    code TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    recorded_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ix_events_case ON events (case_id, hlc);
CREATE INDEX IF NOT EXISTS ix_events_status ON events (status);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE REFERENCES events (id)
);
"""
_reference = msgspec.json.Decoder(Reference)


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so a writer takes the lock
        # up front; check_same_thread=False for the local API's worker threads (one at a time).
        self.connection = sqlite3.connect(
            path, isolation_level=None, timeout=30, check_same_thread=False
        )
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.execute("PRAGMA foreign_keys=ON")
        with self.transaction() as db:
            db.executescript_in_transaction(SCHEMA)

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield Transaction(self.connection)
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.connection.execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.connection.execute(sql, params).fetchone()

    def meta(self, key: str, default: str = "") -> str:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else default

    def references(self, kind: str) -> list[Reference]:
        """The cached reference data of one kind (credentials, templates…) as last pulled."""
        rows = self.query("SELECT body FROM reference WHERE kind = ? ORDER BY key", (kind,))
        return [_reference.decode(row["body"]) for row in rows]

    def close(self) -> None:
        self.connection.close()


class Transaction:
    """The connection inside one transaction, with the few helpers every writer needs."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: tuple | dict = ()) -> sqlite3.Cursor:
        return self.connection.execute(sql, params)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.connection.executemany(sql, rows)

    def executescript_in_transaction(self, script: str) -> None:
        # sqlite3.executescript would COMMIT first; run the statements one by one instead.
        for statement in script.split(";"):
            if statement.strip():
                self.connection.execute(statement)

    def one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.connection.execute(sql, params).fetchone()

    def meta(self, key: str, default: str = "") -> str:
        row = self.one("SELECT value FROM meta WHERE key = ?", (key,))
        return row["value"] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.connection.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
