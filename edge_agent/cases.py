"""The officer's desk on the terminal: open cases and record actions, fully offline.

Each action becomes one event (mobile_api.contracts.events) with a UUIDv7 id and an HLC stamp,
written with its outbox entry (and, for a new case, the case row) in ONE transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import uuid6

from edge_agent import hlc
from edge_agent.client import EdgeError
from edge_agent.session import Session
from edge_agent.store import Store, Transaction
from mobile_api.contracts.events import (
    EVENT_TYPES,
    CaseOpened,
    EventBase,
    canonical_bytes,
    event_kind,
)
from mobile_api.contracts.sync import EnforcementItemRef, ReviewOutcomeRef

NEW_CASE_STATE = "本机新建"
# Filled by the agent, never by the officer: the event's identity and stamps, and the result of an
# offline credential check (only the wallet's partner check records one, so the two-officer gate
# cannot be satisfied by typing a check in).
TERMINAL_FIELDS = {
    "id",
    "case_id",
    "officers",
    "terminal_time",
    "hlc",
    "kind",
    "checked_by",
    "status_list_issued_at",
}


class EventInvalid(EdgeError):
    code = "event_invalid"


class CaseUnknown(EdgeError):
    code = "case_unknown"


def new_event_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, generated on the terminal (as a plain ``uuid.UUID``)."""
    return uuid.UUID(int=uuid6.uuid7().int)


def node_id(db: Transaction) -> str:
    """This store's HLC node name: random, made once."""
    node = db.meta("hlc_node")
    if not node:
        node = uuid.uuid4().hex[:12]
        db.set_meta("hlc_node", node)
    return node


class CaseRow(msgspec.Struct, frozen=True):
    id: str
    title: str
    procedure: str
    item_code: str
    category: str
    region: str
    act_kind: str
    officers: list[str]
    state: str
    opened_at: str
    origin: str


class Desk:
    def __init__(self, store: Store, session: Session, clock: Callable[[], dt.datetime]) -> None:
        self.store = store
        self.session = session
        self.clock = clock
        # Checks every action passes before it is written (the officer's own credential, the
        # two-officer checks); each raises an EdgeError naming why the action is refused.
        self.guards: list[Callable[[str, CaseRow, dict[str, Any]], None]] = []

    def _guard(self, kind: str, case: CaseRow, fields: dict[str, Any]) -> None:
        for guard in self.guards:
            guard(kind, case, fields)

    def case(self, case_id: str) -> CaseRow:
        row = self.store.one("SELECT * FROM cases WHERE id = ?", (case_id,))
        if row is None:
            raise CaseUnknown(f"本机没有案件 {case_id}，请先同步")
        return _case_row(row)

    def cases(self) -> list[CaseRow]:
        return [_case_row(r) for r in self.store.query("SELECT * FROM cases ORDER BY opened_at")]

    def review(self, case_id: str) -> ReviewOutcomeRef | None:
        """The case's legal review as last pulled; None when the server had none to tell."""
        row = self.store.one(
            "SELECT body FROM reference WHERE kind = 'review_outcome' AND key = ?", (case_id,)
        )
        return None if row is None else msgspec.json.decode(row["body"], type=ReviewOutcomeRef)

    def item(self, code: str) -> EnforcementItemRef:
        row = self.store.one(
            "SELECT body FROM reference WHERE kind = 'enforcement_item' AND key = ?", (code,)
        )
        if row is None:
            raise EventInvalid(
                f"执法事项 {code} 不在本机的执法事项清单中，请先同步", code="item_unknown"
            )
        return msgspec.json.decode(row["body"], type=EnforcementItemRef)

    def _write(self, db: Transaction, cls: type[EventBase], values: dict[str, Any]) -> EventBase:
        now = self.clock()
        stamp = hlc.tick(db.meta("hlc"), int(now.timestamp() * 1000), node_id(db))
        values = {**values, "id": new_event_id(), "terminal_time": now, "hlc": stamp}
        try:
            event = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise EventInvalid(f"事件内容不正确：{exc}") from exc
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events").fetchone()[0]
        db.execute(
            "INSERT INTO events (id, seq, case_id, kind, hlc, terminal_time, body, status) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'queued')",
            (
                str(event.id),
                seq,
                str(event.case_id),
                event_kind(event),
                event.hlc,
                now.isoformat(),
                canonical_bytes(event),
            ),
        )
        db.execute("INSERT INTO outbox (event_id) VALUES (?)", (str(event.id),))
        db.set_meta("hlc", stamp)
        return event

    def open_case(
        self,
        *,
        item_code: str,
        region: str,
        title: str,
        procedure: str = "立案",
        partners: list[str] | None = None,
        place: str = "",
        summary: str = "",
    ) -> CaseOpened:
        item = self.item(item_code)
        officers = list(dict.fromkeys([self.session.credential_number, *(partners or [])]))
        case_id = uuid.uuid4()
        self._guard(
            "case_opened",
            CaseRow(
                id=str(case_id),
                title=title,
                procedure=procedure,
                item_code=item.code,
                category=item.category,
                region=region,
                act_kind=item.act_kind,
                officers=officers,
                state=NEW_CASE_STATE,
                opened_at="",
                origin="local",
            ),
            {"place": place, "summary": summary},
        )
        with self.store.transaction() as db:
            event = self._write(
                db,
                CaseOpened,
                {
                    "case_id": case_id,
                    "officers": officers,
                    "procedure": procedure,
                    "item_code": item.code,
                    "category": item.category,
                    "region": region,
                    "act_kind": item.act_kind,
                    "title": title,
                    "place": place,
                    "summary": summary,
                },
            )
            db.execute(
                "INSERT INTO cases (id, title, procedure, item_code, category, region, act_kind, "
                "officers, state, opened_at, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'local')",
                (
                    str(case_id),
                    title,
                    procedure,
                    item.code,
                    item.category,
                    region,
                    item.act_kind,
                    json.dumps(officers, ensure_ascii=False),
                    NEW_CASE_STATE,
                    event.terminal_time.isoformat(),
                ),
            )
        assert isinstance(event, CaseOpened)
        return event

    def record(
        self,
        case_id: str,
        kind: str,
        fields: dict[str, Any] | None = None,
        officers: list[str] | None = None,
        *,
        terminal_fields: dict[str, Any] | None = None,
    ) -> EventBase:
        """Record one action on a case; the officers default to the case's team.

        ``terminal_fields``: what the agent itself found (a credential check), never the officer's
        input."""
        cls = EVENT_TYPES.get(kind)
        if cls is None or cls is CaseOpened:
            kinds = "、".join(k for k in EVENT_TYPES if k != "case_opened")
            raise EventInvalid(f"未知的事件类型 {kind}，可用：{kinds}", code="kind_unknown")
        case = self.case(case_id)
        team = officers or case.officers
        clash = TERMINAL_FIELDS & set(fields or {})
        if clash:
            raise EventInvalid(f"这些字段由终端填写：{'、'.join(sorted(clash))}")
        values = {**(fields or {}), **(terminal_fields or {})}
        self._guard(kind, msgspec.structs.replace(case, officers=team), values)
        with self.store.transaction() as db:
            return self._write(db, cls, {**values, "case_id": case.id, "officers": team})


def _case_row(row: Any) -> CaseRow:
    values = dict(row)
    values["officers"] = json.loads(values["officers"])
    return msgspec.convert(values, CaseRow)
