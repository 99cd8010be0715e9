"""Sync: push the outbox in batches, pull reference data from the server's cursor, obey resync orders.

Why a kill at any instant loses nothing and applies nothing twice:

* an event leaves the outbox only in the transaction that records the server's answer for it; a
  batch the server applied but whose answer never arrived is pushed again and answered
  ``duplicate`` (the server's event id is a unique key);
* a pull is applied with its new cursor in one transaction, or not at all (then pulled again);
* a resync order is applied in one transaction: cached reference data and cursor dropped, every
  sent event queued again, the order noted; it is acknowledged by the first pull after that push.

``on_step`` is called at each of these points; tests use it to simulate a crash there.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial

import msgspec

from edge_agent import hlc
from edge_agent.cases import node_id
from edge_agent.client import ServerClient
from edge_agent.session import Session
from edge_agent.store import Store, Transaction
from mobile_api.contracts.events import decode_event
from mobile_api.contracts.sync import (
    MAX_BATCH,
    CaseRef,
    EventResult,
    PullResponse,
    PushRequest,
    Snapshot,
)

# The largest batch the server takes: fewer round trips on a slow network, and the server's cost
# per push is mostly per batch, not per event.
DEFAULT_BATCH = MAX_BATCH

# Hooks installed on every Syncer, called as hook(syncer, report) after each complete sync.
SYNC_HOOKS: list[Callable[[Syncer, SyncReport], None]] = []

STEPS = (
    "push.read",
    "push.sent",
    "push.applied",
    "pull.sent",
    "pull.applied",
    "resync.applied",
)


class SyncReport(msgspec.Struct, kw_only=True):
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    deferred: int = 0
    snapshots: list[str] = msgspec.field(default_factory=list)
    resync: bool = False
    notes: list[str] = msgspec.field(default_factory=list)  # what the after-sync hooks did


class Syncer:
    def __init__(
        self,
        store: Store,
        session: Session,
        clock: Callable[[], dt.datetime],
        *,
        batch_size: int = DEFAULT_BATCH,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch size must be 1..{MAX_BATCH}")
        self.store = store
        self.session = session
        self.clock = clock
        self.batch_size = batch_size
        self.on_step = on_step
        # Features that fetch their own data after each sync (credential cache, document numbers…);
        # the ones every syncer has (recordings upload) come from SYNC_HOOKS.
        self.after_sync: list[Callable[[SyncReport], None]] = [
            partial(hook, self) for hook in SYNC_HOOKS
        ]

    def _step(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    def sync(self) -> SyncReport:
        report = SyncReport()
        self.push(report)
        if self.pull(report):
            self.push(report)  # everything queued again by the resync order
            self.pull(report)  # acknowledges the order
        for hook in self.after_sync:
            hook(report)
        return report

    # --- push -----------------------------------------------------------------------------------

    def _batch(self, skip: set[str]) -> list[tuple[str, bytes]]:
        rows = self.store.query(
            "SELECT e.id, e.body FROM outbox o JOIN events e ON e.id = o.event_id "
            "ORDER BY o.seq LIMIT ?",
            (self.batch_size + len(skip),),
        )
        return [(r["id"], r["body"]) for r in rows if r["id"] not in skip][: self.batch_size]

    def push(self, report: SyncReport) -> None:
        # Deferred events stay queued; within one sync they are not sent again.
        deferred: set[str] = set()
        while batch := self._batch(deferred):
            self._step("push.read")
            request = PushRequest(events=[decode_event(body) for _, body in batch])
            response = self.session.call(partial(ServerClient.push, request=request))
            self._step("push.sent")
            with self.store.transaction() as db:
                for result in response.results:
                    self._apply_result(db, result, report, deferred)
            self._step("push.applied")

    @staticmethod
    def _apply_result(
        db: Transaction, result: EventResult, report: SyncReport, deferred: set[str]
    ) -> None:
        event_id = str(result.id)
        recorded = result.recorded_at.isoformat() if result.recorded_at else ""
        if result.outcome in ("accepted", "duplicate"):
            db.execute(
                "UPDATE events SET status = 'sent', code = '', message = '', recorded_at = ? "
                "WHERE id = ?",
                (recorded, event_id),
            )
            db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
        elif result.outcome == "rejected":
            db.execute(
                "UPDATE events SET status = 'rejected', code = ?, message = ?, recorded_at = ? "
                "WHERE id = ?",
                (result.code, result.message, recorded, event_id),
            )
            db.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))
        else:
            db.execute(
                "UPDATE events SET code = ?, message = ? WHERE id = ?",
                (result.code, result.message, event_id),
            )
            deferred.add(event_id)
        setattr(report, result.outcome, getattr(report, result.outcome) + 1)

    # --- pull -----------------------------------------------------------------------------------

    def pull(self, report: SyncReport) -> bool:
        """Pull and apply; True when a resync order was taken on (push again, then pull again)."""
        cursor = self.store.meta("cursor")
        ack = self.store.meta("resync_pending")
        response = self.session.call(partial(ServerClient.pull, cursor=cursor, ack_resync=ack))
        self._step("pull.sent")
        order = response.resync
        if order is not None and str(order.id) != ack:
            with self.store.transaction() as db:
                self._take_resync(db, str(order.id))
            report.resync = True
            self._step("resync.applied")
            return True
        with self.store.transaction() as db:
            self._apply_pull(db, response)
        report.snapshots.extend(s.kind for s in response.snapshots)
        self._step("pull.applied")
        return False

    def _apply_pull(self, db: Transaction, response: PullResponse) -> None:
        for snapshot in response.snapshots:
            self._replace(db, snapshot)
        db.set_meta("cursor", response.cursor)
        db.set_meta("resync_pending", "")
        db.execute(
            "UPDATE session SET credential_number = ? WHERE id = 1", (response.credential_number,)
        )

    def _replace(self, db: Transaction, snapshot: Snapshot) -> None:
        db.execute("DELETE FROM reference WHERE kind = ?", (snapshot.kind,))
        db.executemany(
            "INSERT INTO reference (kind, key, body) VALUES (?, ?, ?)",
            [(snapshot.kind, item.key, msgspec.json.encode(item)) for item in snapshot.items],
        )
        for item in snapshot.items:
            if isinstance(item, CaseRef):
                self._case_from_server(db, item)

    def _case_from_server(self, db: Transaction, case: CaseRef) -> None:
        db.execute(
            "INSERT INTO cases (id, title, procedure, item_code, category, region, act_kind, "
            "officers, state, opened_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'server') "
            "ON CONFLICT (id) DO UPDATE SET officers = excluded.officers, state = excluded.state",
            (
                str(case.case_id),
                case.title,
                case.procedure,
                case.item_code,
                case.category,
                case.region,
                case.act_kind,
                json.dumps(case.officers, ensure_ascii=False),
                case.state,
                case.opened_at.isoformat(),
            ),
        )
        # Our next event on this case must sort after everything the partners did on it.
        now_ms = int(self.clock().timestamp() * 1000)
        db.set_meta("hlc", hlc.observe(db.meta("hlc"), case.last_hlc, now_ms, node_id(db)))

    def _take_resync(self, db: Transaction, order_id: str) -> None:
        db.execute("DELETE FROM reference")
        db.set_meta("cursor", "")
        # Everything not refused goes out again, in the order it was written.
        db.execute("DELETE FROM outbox")
        db.execute(
            "INSERT INTO outbox (event_id) "
            "SELECT id FROM events WHERE status IN ('queued', 'sent') ORDER BY seq"
        )
        db.set_meta("resync_pending", order_id)
