"""The issued decision of a case, and what happens to it after service.

A served decision can later be changed, revoked, confirmed illegal or confirmed void (by the agency
itself, its superior, reconsideration or a court). An admin of the agency records that on the
case: ``POST /api/cases/{id}/decision-changes``. The change is a ledger entry of the case, and the
injected change listeners (disclosure's withdrawal) run in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.cases import assembly
from mobile_api.cases.assembly import CaseFile, DocumentEntry
from mobile_api.cases.services import staff_agency
from mobile_api.contracts.events import DecisionProposed, decode_event
from mobile_api.gates import DecisionChange, hooks_of
from mobile_api.models import Case, CaseEvent
from mobile_api.web import ADMINS, AreaContext
from server.core import ledger
from server.core.auth import Principal
from server.core.clock import CHINA_TZ
from server.core.errors import Conflict, NotFound, ValidationFailed

CHANGE_KIND = "case.decision_changed"


class DecisionNotServed(Conflict):
    code = "decision_not_served"
    title = "本案尚未送达处理决定书"


class DecisionChangeRequest(msgspec.Struct, frozen=True, kw_only=True):
    change: Literal["变更", "撤销", "确认违法", "确认无效"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    via: Literal["本机关", "上级机关", "行政复议", "行政诉讼"] = "本机关"
    changed_on: dt.date | None = None  # default: today (China)


class DecisionChangeView(msgspec.Struct, frozen=True, kw_only=True):
    case_id: uuid.UUID
    decision_number: str
    change: str
    via: str
    reason: str
    changed_on: dt.date
    recorded_at: dt.datetime
    ledger_seq: int


def served_decision(file: CaseFile) -> DocumentEntry | None:
    """The decision document served on the case (the last one), if any."""
    served = [d for d in file.documents if d.name in assembly.DECISION_DOCUMENTS]
    return served[-1] if served else None


async def proposed_event(session: AsyncSession, file: CaseFile) -> DecisionProposed | None:
    """The accepted ``decision_proposed`` event the case's decision came from."""
    if file.decision is None:
        return None
    payload = await session.scalar(
        select(CaseEvent.payload).where(CaseEvent.id == file.decision.event_id)
    )
    event = None if payload is None else decode_event(payload)
    return event if isinstance(event, DecisionProposed) else None


async def decision_number(session: AsyncSession, file: CaseFile) -> str:
    """决定书文号: the one on the served document, else the one the proposal named."""
    served = served_decision(file)
    if served is not None and served.number:
        return served.number
    proposal = await proposed_event(session, file)
    return proposal.document_number if proposal is not None else ""


async def record_change(
    session: AsyncSession,
    context: AreaContext,
    principal: Principal,
    case_id: uuid.UUID,
    request: DecisionChangeRequest,
    state: State,
) -> DecisionChangeView:
    agency = await staff_agency(session, principal)
    row = await session.get(Case, case_id, with_for_update=True)
    if row is None or row.agency_id != agency.id:
        raise NotFound("没有该案件", case_id=str(case_id))
    file = assembly.file_from_json(row.file)
    served = served_decision(file)
    if served is None:
        raise DecisionNotServed("本案的处理决定书尚未送达，没有可以变更或撤销的决定")
    now = context.clock.now()
    today = now.astimezone(CHINA_TZ).date()
    changed_on = request.changed_on or today
    if changed_on > today:
        raise ValidationFailed("变更日期不能晚于今天", field="changed_on")
    if changed_on < served.served_on:
        raise ValidationFailed("变更日期不能早于决定书送达日期", field="changed_on")
    number = await decision_number(session, file)
    change = DecisionChange(
        case_id=case_id,
        agency_id=agency.id,
        decision_number=number,
        change=request.change,
        via=request.via,
        reason=request.reason,
        changed_on=changed_on,
        recorded_at=now,
    )
    entry = await ledger.append(
        session,
        await context.keyring(),
        kind=CHANGE_KIND,
        ref=f"case:{case_id}",
        data={
            "decision_number": number,
            "change": request.change,
            "via": request.via,
            "reason": request.reason,
            "changed_on": changed_on.isoformat(),
            "by": str(principal.user_id),
        },
        now=now,
    )
    await hooks_of(state).changed(session, change)
    return DecisionChangeView(
        case_id=case_id,
        decision_number=number,
        change=request.change,
        via=request.via,
        reason=request.reason,
        changed_on=changed_on,
        recorded_at=now,
        ledger_seq=entry.seq,
    )


class DecisionChangeController(Controller):
    tags = ["cases"]

    @post(
        "/api/cases/{case_id:uuid}/decision-changes",
        opt=ADMINS,
        status_code=201,
        summary="Record that the served decision was changed, revoked, or confirmed illegal/void",
    )
    async def record(
        self,
        case_id: FromPath[uuid.UUID],
        data: JSONBody[DecisionChangeRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> DecisionChangeView:
        context: AreaContext = state.context
        async with context.database.transaction() as session:
            return await record_change(session, context, principal, case_id, data, state)
