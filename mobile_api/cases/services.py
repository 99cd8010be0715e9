"""Staff queries over cases: the filtered list and one whole case file, own agency only."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.cases import assembly, review, timeline
from mobile_api.cases.rules import CaseRules, rules_for, store_rules
from mobile_api.cases.schemas import (
    CaseFileView,
    CaseSummary,
    RejectedEntry,
    TimelineEntry,
)
from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.events import EVENT_LABELS, decode_event
from mobile_api.models import Case, CaseEvent, CaseOfficer
from server.core import ledger
from server.core.auth import Principal
from server.core.errors import NotFound, PermissionDenied, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import Agency, Credential, Officer, Terminal

MAX_PAGE = 200


async def staff_agency(
    session: AsyncSession, principal: Principal, agency_code: str | None = None
) -> Agency:
    """The caller's own agency; naming another one is refused."""
    if principal.agency_id is None:
        raise PermissionDenied("该账号不属于任何执法主体")
    agency = await session.get_one(Agency, principal.agency_id)
    if agency_code is not None and agency_code != agency.code:
        raise PermissionDenied("只能查看本执法主体的案件", agency_code=agency_code)
    return agency


async def list_cases(
    session: AsyncSession,
    principal: Principal,
    *,
    today: dt.date,
    calendar: WorkingDayCalendar,
    agency_code: str | None = None,
    officer: str | None = None,
    state: str | None = None,
    overdue: bool | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CaseSummary]:
    agency = await staff_agency(session, principal, agency_code)
    if state is not None and state not in assembly.CaseState.ALL:
        raise ValidationFailed(
            f"案件状态应为 {'、'.join(assembly.CaseState.ALL)} 之一", field="state"
        )
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise ValidationFailed(f"每页 1 至 {MAX_PAGE} 条", field="limit")
    query = select(Case).where(Case.agency_id == agency.id)
    if officer:
        query = query.join(CaseOfficer, CaseOfficer.case_id == Case.id).where(
            CaseOfficer.credential_number == officer
        )
    if state:
        query = query.where(Case.state == state)
    if overdue is True:
        query = query.where(Case.next_due < today)
    elif overdue is False:
        query = query.where((Case.next_due.is_(None)) | (Case.next_due >= today))
    rows = list(
        await session.scalars(
            query.order_by(Case.opened_at.desc(), Case.id).limit(limit).offset(offset)
        )
    )
    officers: dict[uuid.UUID, list[str]] = {row.id: [] for row in rows}
    if rows:
        for case_id, number in await session.execute(
            select(CaseOfficer.case_id, CaseOfficer.credential_number)
            .where(CaseOfficer.case_id.in_(officers))
            .order_by(CaseOfficer.credential_number)
        ):
            officers[case_id].append(number)
    rules = await rules_for(session, agency.id)
    return [
        CaseSummary(
            id=row.id,
            title=row.title,
            procedure=row.procedure,
            item_code=row.item_code,
            category=row.category,
            region=row.region,
            act_kind=row.act_kind,
            state=row.state,
            opened_at=row.opened_at,
            updated_at=row.updated_at,
            next_due=row.next_due,
            overdue=row.next_due is not None and row.next_due < today,
            officers=officers[row.id],
            flaws=len(review.flaws(assembly.file_from_json(row.file), today, calendar, rules)),
        )
        for row in rows
    ]


async def agency_officers(session: AsyncSession, agency_id: uuid.UUID) -> list[tuple[str, str]]:
    """(证号, name) of every officer of the agency, for choosing one."""
    rows = await session.execute(
        select(Credential.number, Officer.name)
        .join(Officer, Officer.id == Credential.officer_id)
        .where(Credential.agency_id == agency_id)
        .order_by(Credential.number)
    )
    return [(number, name) for number, name in rows]


async def readable_file(
    session: AsyncSession, principal: Principal, case_id: uuid.UUID
) -> assembly.CaseFile:
    """The case file of a case of the caller's own agency."""
    agency = await staff_agency(session, principal)
    row = await session.get(Case, case_id)
    if row is None or row.agency_id != agency.id:
        raise NotFound("没有该案件", case_id=str(case_id))
    return assembly.file_from_json(row.file)


async def case_file(
    session: AsyncSession,
    principal: Principal,
    case_id: uuid.UUID,
    *,
    today: dt.date,
    calendar: WorkingDayCalendar,
) -> CaseFileView:
    """The whole case file: derived state, deadlines and flaws as of today, timeline, refusals."""
    file = await readable_file(session, principal, case_id)
    rules = await rules_for(session, file.agency_id)
    events = list(
        await session.scalars(
            select(CaseEvent)
            .where(CaseEvent.case_id == case_id)
            .order_by(CaseEvent.hlc, CaseEvent.id)
        )
    )
    terminals = {
        row.id: row.name
        for row in await session.execute(
            select(Terminal.id, Terminal.name).where(
                Terminal.id.in_({event.terminal_id for event in events})
            )
        )
    }
    entries: list[TimelineEntry] = []
    rejected: list[RejectedEntry] = []
    for event in events:
        label = EVENT_LABELS.get(event.kind, event.kind)
        if event.outcome == "accepted":
            payload = decode_event(event.payload)
            entries.append(
                TimelineEntry(
                    id=event.id,
                    kind=event.kind,
                    label=label,
                    hlc=event.hlc,
                    terminal_time=event.terminal_time,
                    recorded_at=event.recorded_at,
                    terminal_id=event.terminal_id,
                    officers=list(payload.officers),
                    event=msgspec.Raw(event.payload),
                    terminal=terminals.get(event.terminal_id, ""),
                    summary=timeline.describe(payload),
                )
            )
        else:
            rejected.append(
                RejectedEntry(
                    id=event.id,
                    kind=event.kind,
                    label=label,
                    code=event.code,
                    message=event.message,
                    recorded_at=event.recorded_at,
                    terminal_id=event.terminal_id,
                    terminal=terminals.get(event.terminal_id, ""),
                )
            )
    return CaseFileView(
        file=file,
        deadlines=review.deadlines(file, today, calendar, rules),
        flaws=review.flaws(file, today, calendar, rules),
        timeline=entries,
        rejected=rejected,
    )


async def set_rules(
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    rules: CaseRules,
    now: dt.datetime,
) -> Agency:
    agency = await staff_agency(session, principal)
    await store_rules(session, agency.id, rules, now)
    await ledger.append(
        session,
        keyring,
        kind="case.rules_changed",
        ref=f"agency:{agency.code}",
        data={"rules": rules},
        now=now,
    )
    return agency
