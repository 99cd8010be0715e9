"""The edge agent: one store in one home folder, and what the CLI and the local API offer on it."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from pathlib import Path

import msgspec

from edge_agent.cases import Desk
from edge_agent.credentials import Wallet
from edge_agent.documents import Papers
from edge_agent.session import Session
from edge_agent.store import Store
from edge_agent.sync import DEFAULT_BATCH, Syncer, SyncReport

DEFAULT_HOME = Path(os.environ.get("ZHIFA_EDGE_HOME", Path.home() / ".zhifa-edge"))
STATUS_LABELS = {"queued": "待同步", "sent": "已同步", "rejected": "被退回"}


class EventLine(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    case_id: str
    kind: str
    status: str
    code: str
    message: str
    terminal_time: str


class Status(msgspec.Struct, frozen=True, kw_only=True):
    enrolled: bool
    terminal_id: str
    server_url: str
    officer: str
    queued: int
    sent: int
    rejected: int
    rejected_events: list[EventLine]
    waiting_events: list[EventLine]  # queued with a note from the server (deferred)
    cached: dict[str, int]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Agent:
    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        *,
        clock: Callable[[], dt.datetime] = utc_now,
        batch_size: int = DEFAULT_BATCH,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.home = home
        self.store = Store(home / "edge.db")
        self.session = Session(self.store, home)
        self.desk = Desk(self.store, self.session, clock)
        self.syncer = Syncer(
            self.store, self.session, clock, batch_size=batch_size, on_step=on_step
        )
        self.wallet = Wallet(self.store, self.session, self.desk, clock, home)
        self.papers = Papers(self.store, self.session, self.desk, self.wallet, clock, home)
        self.desk.guards.append(self.wallet.guard)
        self.syncer.after_sync += [self.wallet.refresh, self.papers.refresh]

    def close(self) -> None:
        self.session.close()
        self.store.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def login(self, username: str, password: str) -> SyncReport:
        """Log in, then sync once so the terminal knows its officer and has fresh reference data."""
        self.session.login(username, password)
        return self.syncer.sync()

    def sync(self) -> SyncReport:
        return self.syncer.sync()

    def _lines(self, where: str) -> list[EventLine]:
        rows = self.store.query(
            "SELECT id, case_id, kind, status, code, message, terminal_time FROM events "
            f"WHERE {where} ORDER BY seq"
        )
        return [EventLine(**dict(row)) for row in rows]

    def status(self) -> Status:
        counts = dict.fromkeys(("queued", "sent", "rejected"), 0)
        for row in self.store.query("SELECT status, COUNT(*) AS n FROM events GROUP BY status"):
            counts[row["status"]] = row["n"]
        session = self.store.one("SELECT * FROM session WHERE id = 1")
        cached = {
            row["kind"]: row["n"]
            for row in self.store.query("SELECT kind, COUNT(*) AS n FROM reference GROUP BY kind")
        }
        return Status(
            enrolled=session is not None,
            terminal_id=session["terminal_id"] if session else "",
            server_url=session["server_url"] if session else "",
            officer=session["credential_number"] if session else "",
            queued=counts["queued"],
            sent=counts["sent"],
            rejected=counts["rejected"],
            rejected_events=self._lines("status = 'rejected'"),
            waiting_events=self._lines("status = 'queued' AND code != ''"),
            cached=cached,
        )
