"""Push, pull and resync (DESIGN.md §4 Sync), as plain functions over one ``AsyncSession``.

Push applies a batch in the caller's transaction with few statements, because each one is a
round trip: read the terminal with its agency's rules and the officers' credentials, then the
cases (locked); apply the procedure rules in memory; insert the events, write the cases, append one
ledger entry per case. Idempotency is the primary key of ``case_events``: the insert skips ids
already stored, and a batch holding any is applied again with their stored results looked up
(``ReplaysInBatch``), so a replay answers exactly what the first push answered.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any, cast

import msgspec
from sqlalchemy import Table, bindparam, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer, selectinload

from mobile_api.cases import assembly, errors, review
from mobile_api.cases.assembly import CaseFile, Facts, ItemFact, OfficerFact
from mobile_api.cases.rules import CaseRules, rules_from
from mobile_api.contracts.calendar import WorkingDayCalendar, year_file_text
from mobile_api.contracts.events import (
    CaseOpened,
    DecisionProposed,
    DocumentServed,
    EventBase,
    canonical_bytes,
    event_kind,
)
from mobile_api.contracts.sync import (
    CalendarYearRef,
    CaseRef,
    CredentialRef,
    EnforcementItemRef,
    EventResult,
    PullResponse,
    Reference,
    RefKind,
    ResyncOrder,
    Snapshot,
    TemplateRef,
)
from mobile_api.documents.services import current_files
from mobile_api.gates import NO_HOOKS, CaseHooks, DecisionServed
from mobile_api.models import Case, CaseEvent, CaseOfficer, CaseRuleSet
from mobile_api.models import ResyncOrder as ResyncOrderRow
from mobile_api.signals import DecisionMade
from server.core import ledger
from server.core.auth import Principal
from server.core.clock import CHINA_TZ
from server.core.errors import NotFound, PermissionDenied, ValidationFailed, ZhifaError
from server.core.keys import KeyRing
from server.core.models import Credential, EnforcementItem, Officer, Terminal

# Plain tables (no ORM entities) on the hot path: the ORM's per-query bookkeeping costs more than
# the statements themselves.
events_table, cases_table = cast(Table, CaseEvent.__table__), cast(Table, Case.__table__)
terminals, rule_sets = cast(Table, Terminal.__table__).c, cast(Table, CaseRuleSet.__table__).c
credentials, officers = cast(Table, Credential.__table__).c, cast(Table, Officer.__table__).c
items = cast(Table, EnforcementItem.__table__).c

# The push's statements, built once with bound parameters: building a statement and deriving its
# cache key costs about 0.1 ms each time, a prebuilt one keeps its key.

# The terminal and its agency's rules, with one more row per credential asked for (its columns
# empty when none is): one round trip instead of two.
_TERMINAL = (
    select(
        terminals.id,
        terminals.agency_id,
        terminals.revoked_at,
        rule_sets.rules,
        credentials.number,
        officers.name,
        credentials.agency_id.label("credential_agency_id"),
        credentials.status,
        credentials.issued_on,
        credentials.expires_on,
        credentials.categories,
        credentials.regions,
    )
    .select_from(Terminal.__table__)
    .outerjoin(CaseRuleSet.__table__, rule_sets.agency_id == terminals.agency_id)
    .outerjoin(
        Credential.__table__.join(Officer.__table__, officers.id == credentials.officer_id),
        credentials.number.in_(bindparam("numbers", expanding=True)),
    )
    .where(terminals.id == bindparam("terminal_id"))
)
_ITEMS = select(items.code, items.category, items.kind).where(
    items.agency_id == bindparam("agency_id"), items.code.in_(bindparam("codes", expanding=True))
)
# Row locks (PostgreSQL) keep two pushes on one case from deriving its file from the same state.
_CASES_LOCKED = (
    select(cases_table.c.id, cases_table.c.file)
    .where(cases_table.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(cases_table.c.id)
    .with_for_update()
)
_STORED = select(
    events_table.c.id,
    events_table.c.payload_sha256,
    events_table.c.outcome,
    events_table.c.status,
    events_table.c.code,
    events_table.c.message,
    events_table.c.recorded_at,
).where(events_table.c.id.in_(bindparam("ids", expanding=True)))
# INSERT … ON CONFLICT (id) DO NOTHING RETURNING 1: one row back per event not stored yet (a
# constant, so no id is converted back into a UUID just to be counted).
_INSERT_NEW_EVENTS = {
    dialect.dialect.name: dialect.insert(events_table)
    .on_conflict_do_nothing(index_elements=[events_table.c.id])
    .returning(literal_column("1"))
    for dialect in (postgresql, sqlite)
}
_UPDATE_CASES = cases_table.update().where(cases_table.c.id == bindparam("key"))
_INSERT_CASE_OFFICERS = cast(Table, CaseOfficer.__table__).insert()


class TerminalRequired(PermissionDenied):
    code = "terminal_required"
    title = "同步只能在已注册的执法终端上由执法人员进行"


class CursorInvalid(ValidationFailed):
    code = "cursor_invalid"
    title = "同步游标无效"


async def calling_terminal(
    session: AsyncSession, principal: Principal, credential_numbers: Collection[str] = ()
) -> tuple[Any, CaseRules, list[Any]]:
    """The enrolled, not revoked terminal an officer calls from, its agency's rules, and the
    credentials found of ``credential_numbers`` (with their officer's name)."""
    if principal.terminal_id is None or principal.officer_id is None:
        raise TerminalRequired()
    rows = (
        await session.execute(
            _TERMINAL,
            {"terminal_id": principal.terminal_id, "numbers": list(credential_numbers)},
        )
    ).all()
    terminal = rows[0] if rows else None
    if terminal is None or terminal.revoked_at is not None:
        raise TerminalRequired("该执法终端未注册或已停用")
    if terminal.agency_id != principal.agency_id:
        raise TerminalRequired("该执法终端不属于您所在的执法主体")
    return terminal, rules_from(terminal.rules), [row for row in rows if row.number is not None]


# --- push -----------------------------------------------------------------------------------------


class PushOutcome(msgspec.Struct, frozen=True):
    results: list[EventResult]
    decisions: list[DecisionMade]
    served: list[DecisionServed]


def _sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _replayed(row: Any) -> EventResult:
    """The stored result of an event pushed again: ``duplicate`` if it was accepted."""
    return EventResult(
        id=row.id,
        outcome="duplicate" if row.outcome == "accepted" else "rejected",
        status=row.status,
        code=row.code,
        message=row.message,
        recorded_at=row.recorded_at,
    )


def _refusal(event_id: uuid.UUID, exc: ZhifaError, now: dt.datetime | None) -> EventResult:
    return EventResult(
        id=event_id,
        outcome="deferred" if isinstance(exc, errors.CaseNotOnServer) else "rejected",
        status=exc.status,
        code=exc.code,
        message=exc.message,
        recorded_at=now,
    )


def _officer_facts(credentials: list[Any], today: dt.date) -> dict[str, OfficerFact]:
    return {
        row.number: OfficerFact(
            number=row.number,
            name=row.name,
            agency_id=row.credential_agency_id,
            # The model's own rule, read off a plain row (it needs only status and expiry).
            status=Credential.effective_status(cast(Credential, row), today),
            issued_on=row.issued_on,
            categories=list(row.categories),
            regions=list(row.regions),
        )
        for row in credentials
    }


async def _item_facts(
    session: AsyncSession, agency_id: uuid.UUID, codes: set[str]
) -> dict[str, ItemFact]:
    if not codes:
        return {}
    rows = await session.execute(_ITEMS, {"agency_id": agency_id, "codes": list(codes)})
    return {
        row.code: ItemFact(code=row.code, category=row.category, act_kind=row.kind.value)
        for row in rows
    }


def _case_columns(file: CaseFile, calendar: WorkingDayCalendar, now: dt.datetime) -> dict[str, Any]:
    return {
        "agency_id": file.agency_id,
        "title": file.title,
        "procedure": file.procedure,
        "item_code": file.item_code,
        "category": file.category,
        "region": file.region,
        "act_kind": file.act_kind,
        "state": file.state,
        "opened_at": file.opened_at,
        "updated_at": now,
        "next_due": review.next_due(file, calendar),
        "file": assembly.file_to_json(file),
    }


LEDGER_KIND = "case.events"


def _ledger_entries(
    accepted: list[tuple[EventBase, str]], terminal_id: uuid.UUID
) -> list[tuple[str, str, Any]]:
    """One ledger entry per case per push, naming each accepted event with its payload's hash.

    Every accepted event is in the ledger, in the transaction that stores it, and a case's entries
    are found by their ref; a push of a hundred events costs a few leaves, not a hundred.
    """
    by_case: dict[uuid.UUID, list[dict[str, str]]] = {}
    for event, digest in accepted:
        by_case.setdefault(event.case_id, []).append(
            {"event": str(event.id), "kind": event_kind(event), "sha256": digest}
        )
    return [
        (LEDGER_KIND, f"case:{case_id}", {"terminal": str(terminal_id), "events": events})
        for case_id, events in by_case.items()
    ]


class ReplaysInBatch(Exception):
    """Some events of the batch are stored already: apply it again, looking them up first."""


async def _stored_results(
    session: AsyncSession, events: Sequence[EventBase]
) -> dict[uuid.UUID, Any]:
    rows = await session.execute(_STORED, {"ids": list({event.id for event in events})})
    return {row.id: row for row in rows}


class _Batch:
    """The decisions of one push, event by event, before anything is written."""

    def __init__(
        self,
        stored: dict[uuid.UUID, Any],
        files: dict[uuid.UUID, CaseFile],
        facts: Facts,
        shared: dict[str, Any],
    ) -> None:
        self.stored = stored  # events of this batch the server has from earlier pushes
        self.files = files
        self.facts = facts
        self._shared = shared  # the columns every event row of this push has in common
        self.results: list[EventResult] = []
        self.rows: list[dict[str, Any]] = []  # the case_events rows to insert
        self.accepted: list[tuple[EventBase, str]] = []
        self.touched: set[uuid.UUID] = set()
        self.proposed: dict[uuid.UUID, DecisionProposed] = {}  # accepted in this batch, by case
        self._seen: dict[uuid.UUID, tuple[str, EventResult]] = {}  # earlier in this batch

    def is_new(self, event: EventBase) -> bool:
        return event.id not in self.stored and event.id not in self._seen

    def add(self, event: EventBase, refusal: ZhifaError | None = None) -> None:
        """Decide on ``event``; a new event with a ``refusal`` (from a hook) is refused with it."""
        raw = canonical_bytes(event)
        digest = _sha256(raw)
        self.results.append(self._decide(event, raw, digest, refusal))

    def _decide(
        self, event: EventBase, raw: bytes, digest: str, refusal: ZhifaError | None
    ) -> EventResult:
        stored = self.stored.get(event.id)
        if stored is not None:
            if stored.payload_sha256 != digest:
                return _refusal(event.id, _reused(event), None)
            return _replayed(stored)
        if event.id in self._seen:
            seen_digest, seen = self._seen[event.id]
            if seen_digest != digest:
                return _refusal(event.id, _reused(event), None)
            return (
                msgspec.structs.replace(seen, outcome="duplicate")
                if seen.outcome == "accepted"
                else seen
            )
        now = self.facts.now
        try:
            if event.id.version != 7:
                raise errors.EventIdInvalid()
            if refusal is not None:
                raise refusal
            self.files[event.case_id] = assembly.apply(
                self.files.get(event.case_id), event, self.facts
            )
        except errors.CaseNotOnServer as exc:
            return _refusal(event.id, exc, None)  # not stored: pushed again later
        except ZhifaError as exc:
            result = _refusal(event.id, exc, now)
        else:
            result = EventResult(id=event.id, outcome="accepted", recorded_at=now)
            self.touched.add(event.case_id)
            self.accepted.append((event, digest))
            if isinstance(event, DecisionProposed):
                self.proposed[event.case_id] = event
        self._seen[event.id] = (digest, result)
        self.rows.append(
            {
                **self._shared,
                "id": event.id,
                "case_id": event.case_id,
                "kind": event_kind(event),
                "hlc": event.hlc,
                "terminal_time": event.terminal_time,
                "outcome": result.outcome,
                "status": result.status,
                "code": result.code,
                "message": result.message,
                "payload": raw,
                "payload_sha256": digest,
            }
        )
        return result


def _reused(event: EventBase) -> ZhifaError:
    return errors.EventIdReused(
        "该事件编号已用于内容不同的事件，本事件未被接受", event_id=str(event.id)
    )


async def push(
    session: AsyncSession,
    keyring: KeyRing,
    calendar: WorkingDayCalendar,
    principal: Principal,
    events: Sequence[EventBase],
    now: dt.datetime,
    *,
    look_up_replays: bool = False,
    hooks: CaseHooks = NO_HOOKS,
) -> PushOutcome:
    """Apply one batch; call inside a transaction. Returns a result per event, in order.

    Optimistic by default: the batch is taken as new, and the events' primary key tells whether
    it was. If any event was stored by an earlier push, ``ReplaysInBatch`` is raised (roll back,
    then call again with ``look_up_replays=True``, which answers those from their stored results).
    """
    terminal, rules, credentials_found = await calling_terminal(
        session, principal, {number for event in events for number in event.officers}
    )
    agency_id = terminal.agency_id
    today = now.astimezone(CHINA_TZ).date()
    stored = await _stored_results(session, events) if look_up_replays else {}
    files = {
        row.id: assembly.file_from_json(row.file)
        for row in await session.execute(
            _CASES_LOCKED, {"ids": list({event.case_id for event in events})}
        )
    }
    stored_cases = set(files)
    known_officers = {case_id: set(file.officer_numbers()) for case_id, file in files.items()}
    batch = _Batch(
        stored,
        files,
        Facts(
            agency_id=agency_id,
            now=now,
            calendar=calendar,
            rules=rules,
            officers=_officer_facts(credentials_found, today),
            items=await _item_facts(
                session, agency_id, {e.item_code for e in events if isinstance(e, CaseOpened)}
            ),
        ),
        {
            "agency_id": agency_id,
            "terminal_id": terminal.id,
            "pushed_by": principal.user_id,
            "recorded_at": now,
        },
    )
    for event in events:
        refusal = (
            await _serving_refused(session, hooks, batch, event)
            if isinstance(event, DocumentServed)
            else None
        )
        batch.add(event, refusal)

    if batch.rows:
        insert_new = _INSERT_NEW_EVENTS[session.get_bind().dialect.name]
        added = await session.execute(insert_new, batch.rows)
        if len(added.all()) != len(batch.rows):
            raise ReplaysInBatch()

    changed = [
        {"id": case_id, **_case_columns(files[case_id], calendar, now)}
        for case_id in sorted(batch.touched)
    ]
    if inserted := [row for row in changed if row["id"] not in stored_cases]:
        await session.execute(cases_table.insert(), inserted)
    if updated := [{"key": row.pop("id"), **row} for row in changed if row["id"] in stored_cases]:
        await session.execute(_UPDATE_CASES, updated)
    officer_rows = [
        {"case_id": case_id, "credential_number": number}
        for case_id in sorted(batch.touched)
        for number in files[case_id].officer_numbers()
        if number not in known_officers.get(case_id, set())
    ]
    if officer_rows:
        await session.execute(_INSERT_CASE_OFFICERS, officer_rows)
    await ledger.append_many(
        session, keyring, _ledger_entries(batch.accepted, terminal.id), now=now
    )
    decisions = [
        DecisionMade(
            case_id=event.case_id,
            event_id=event.id,
            agency_id=agency_id,
            penalties=list(event.penalties),
            fine_yuan=event.fine_yuan,
            confiscation_yuan=event.confiscation_yuan,
            decided_at=now,
        )
        for event, _ in batch.accepted
        if isinstance(event, DecisionProposed)
    ]
    served = [
        DecisionServed(
            case_id=event.case_id,
            event_id=event.id,
            agency_id=agency_id,
            document=event.document,
            document_number=event.document_number,
            served_at=now,
        )
        for event, _ in batch.accepted
        if isinstance(event, DocumentServed) and event.document in assembly.DECISION_DOCUMENTS
    ]
    return PushOutcome(results=batch.results, decisions=decisions, served=served)


async def _serving_refused(
    session: AsyncSession, hooks: CaseHooks, batch: _Batch, event: DocumentServed
) -> ZhifaError | None:
    """Run the injected checks before a decision document is served (review's issue gate).

    Only for a new event on a case with a decision: without one the procedure refuses it anyway.
    """
    if not (event.document in assembly.DECISION_DOCUMENTS and batch.is_new(event)):
        return None
    file = batch.files.get(event.case_id)
    if file is None or file.decision is None:
        return None
    try:
        await hooks.check_serving(session, file, batch.proposed.get(event.case_id))
    except ZhifaError as exc:
        return exc
    return None


# --- pull -----------------------------------------------------------------------------------------

Source = Callable[[AsyncSession, "PullScope"], Awaitable[list[Reference]]]


class PullScope(msgspec.Struct, frozen=True):
    agency_id: uuid.UUID
    credential_number: str
    today: dt.date
    calendar: WorkingDayCalendar


async def _credentials(session: AsyncSession, scope: PullScope) -> list[Reference]:
    rows = await session.scalars(
        select(Credential)
        .where(Credential.agency_id == scope.agency_id)
        .options(selectinload(Credential.officer), defer(Credential.photo))
        .order_by(Credential.number)
    )
    return [
        CredentialRef(
            number=c.number,
            officer_name=c.officer.name,
            unit=c.officer.unit,
            categories=list(c.categories),
            regions=list(c.regions),
            issued_on=c.issued_on,
            expires_on=c.expires_on,
            status=c.effective_status(scope.today),
        )
        for c in rows
    ]


async def _catalog(session: AsyncSession, scope: PullScope) -> list[Reference]:
    rows = await session.scalars(
        select(EnforcementItem)
        .where(EnforcementItem.agency_id == scope.agency_id)
        .order_by(EnforcementItem.code)
    )
    return [
        EnforcementItemRef(
            code=row.code,
            name=row.name,
            category=row.category,
            act_kind=row.kind.value,  # type: ignore[arg-type]
            legal_basis=row.legal_basis,
        )
        for row in rows
    ]


async def _calendar_years(session: AsyncSession, scope: PullScope) -> list[Reference]:
    # Last year (periods still running), this year and next year when its arrangement is out.
    refs: list[Reference] = []
    for year in range(scope.today.year - 1, scope.today.year + 2):
        arrangement = scope.calendar.arrangement(year)
        if arrangement is not None:
            refs.append(CalendarYearRef(year=year, text=year_file_text(arrangement)))
    return refs


async def _open_cases(session: AsyncSession, scope: PullScope) -> list[Reference]:
    rows = await session.scalars(
        select(Case)
        .join(CaseOfficer, CaseOfficer.case_id == Case.id)
        .where(
            Case.agency_id == scope.agency_id,
            CaseOfficer.credential_number == scope.credential_number,
            Case.state != assembly.CaseState.CLOSED,
        )
        .order_by(Case.opened_at, Case.id)
    )
    refs: list[Reference] = []
    for row in rows:
        file = assembly.file_from_json(row.file)
        refs.append(
            CaseRef(
                case_id=row.id,
                title=row.title,
                procedure=file.procedure,  # type: ignore[arg-type]
                item_code=row.item_code,
                category=row.category,
                region=row.region,
                act_kind=file.act_kind,  # type: ignore[arg-type]
                officers=file.officer_numbers(),
                state=row.state,
                opened_at=row.opened_at,
                last_hlc=file.last_hlc,
            )
        )
    return refs


async def _templates(session: AsyncSession, scope: PullScope) -> list[Reference]:
    # The documents' templates and their rules file, as ``GET /api/documents/templates`` lists
    # them: the agency's latest version of each, version "0" being the packaged default.
    return [
        TemplateRef(name=file.name, version=str(file.version), body=file.body)
        for file in await current_files(session, scope.agency_id)
    ]


# The kinds the server sends today. ``review_outcome`` belongs to legal review: server.app adds
# its source here (until then terminals get none).
REFERENCE_SOURCES: dict[RefKind, Source] = {
    "credential": _credentials,
    "enforcement_item": _catalog,
    "calendar_year": _calendar_years,
    "case": _open_cases,
    "template": _templates,
}

_snapshot_encoder = msgspec.json.Encoder(order="sorted")


def _digest(items: list[Reference]) -> str:
    return hashlib.sha256(_snapshot_encoder.encode(items)).hexdigest()[:24]


def encode_cursor(digests: dict[str, str]) -> str:
    return base64.urlsafe_b64encode(_snapshot_encoder.encode(digests)).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> dict[str, str]:
    """The cursor is opaque to terminals: the digest of every kind as they last received it."""
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=dict[str, str])
    except (ValueError, msgspec.DecodeError) as exc:
        raise CursorInvalid("同步游标无法识别，请完整重新同步", field="cursor") from exc


async def pull(
    session: AsyncSession,
    calendar: WorkingDayCalendar,
    principal: Principal,
    *,
    cursor: str,
    ack_resync: uuid.UUID | None,
    now: dt.datetime,
) -> PullResponse:
    """Everything that changed since ``cursor``, each changed kind as a complete snapshot."""
    terminal, _, _ = await calling_terminal(session, principal)
    seen = decode_cursor(cursor)
    if ack_resync is not None:
        order = await session.get(ResyncOrderRow, ack_resync)
        if order is None or order.terminal_id != terminal.id:
            raise NotFound("没有该重新同步指令", order=str(ack_resync))
        order.acknowledged_at = order.acknowledged_at or now
    own = await session.scalar(
        select(Credential.number).where(Credential.officer_id == principal.officer_id)
    )
    scope = PullScope(
        agency_id=terminal.agency_id,
        credential_number=own or "",
        today=now.astimezone(CHINA_TZ).date(),
        calendar=calendar,
    )
    digests: dict[str, str] = {}
    snapshots: list[Snapshot] = []
    for kind, source in REFERENCE_SOURCES.items():
        items = await source(session, scope)
        digests[kind] = _digest(items)
        if seen.get(kind) != digests[kind]:
            snapshots.append(Snapshot(kind=kind, items=items))
    pending = await session.scalar(
        select(ResyncOrderRow)
        .where(ResyncOrderRow.terminal_id == terminal.id, ResyncOrderRow.acknowledged_at.is_(None))
        .order_by(ResyncOrderRow.ordered_at)
        .limit(1)
    )
    return PullResponse(
        cursor=encode_cursor(digests),
        server_time=now,
        credential_number=scope.credential_number,
        snapshots=snapshots,
        resync=(
            ResyncOrder(id=pending.id, ordered_at=pending.ordered_at, reason=pending.reason)
            if pending is not None
            else None
        ),
    )


# --- resync orders --------------------------------------------------------------------------------


async def order_resync(
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    *,
    terminal_ids: list[uuid.UUID] | None,
    reason: str,
    now: dt.datetime,
) -> list[ResyncOrderRow]:
    """Order a full resync of the given terminals (all of the agency's when None)."""
    query = select(Terminal).where(
        Terminal.agency_id == principal.agency_id, Terminal.revoked_at.is_(None)
    )
    if terminal_ids is not None:
        query = query.where(Terminal.id.in_(terminal_ids))
    terminals = list(await session.scalars(query.order_by(Terminal.enrolled_at)))
    missing = set(terminal_ids or ()) - {t.id for t in terminals}
    if missing:
        raise NotFound(
            "本执法主体没有这些在用的执法终端", terminals=sorted(str(m) for m in missing)
        )
    orders = [
        ResyncOrderRow(
            terminal_id=t.id, ordered_by=principal.user_id, reason=reason, ordered_at=now
        )
        for t in terminals
    ]
    session.add_all(orders)
    await session.flush()
    await ledger.append_many(
        session,
        keyring,
        [
            (
                "sync.resync_ordered",
                f"terminal:{o.terminal_id}",
                {"order": str(o.id), "reason": reason},
            )
            for o in orders
        ],
        now=now,
    )
    return orders
