"""Staff read cases of their own agency; admins set the agency's procedure rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.params import Parameter

from mobile_api.cases import services
from mobile_api.cases.rules import CaseRules, rules_for
from mobile_api.cases.schemas import CaseFileView, CaseSummary, RulesView
from mobile_api.web import ADMINS, CASE_READERS, AreaContext
from server.core.auth import Principal


class CaseController(Controller):
    tags = ["cases"]

    @get("/api/cases", opt=CASE_READERS, summary="Cases of the own agency, filtered")
    async def list_cases(
        self,
        state: State,
        principal: Principal,
        agency: str | None = None,
        officer: Annotated[
            str | None, Parameter(description="证号 of an officer on the case")
        ] = None,
        case_state: Annotated[str | None, Parameter(query="state")] = None,
        overdue: bool | None = None,
        limit: Annotated[int, Parameter(ge=1, le=services.MAX_PAGE)] = 50,
        offset: Annotated[int, Parameter(ge=0)] = 0,
    ) -> list[CaseSummary]:
        context: AreaContext = state.context
        async with context.database.sessionmaker() as session:
            return await services.list_cases(
                session,
                principal,
                today=context.clock.today(),
                agency_code=agency,
                officer=officer,
                state=case_state,
                overdue=overdue,
                limit=limit,
                offset=offset,
            )

    @get(
        "/api/cases/{case_id:uuid}",
        opt=CASE_READERS,
        summary="One case file: timeline, parties, officers, evidence, documents, deadlines, flaws",
    )
    async def case_file(
        self, state: State, principal: Principal, case_id: uuid.UUID
    ) -> CaseFileView:
        context: AreaContext = state.context
        calendar = await context.calendar()
        async with context.database.sessionmaker() as session:
            return await services.case_file(
                session, principal, case_id, today=context.clock.today(), calendar=calendar
            )

    @get("/api/case-rules", opt=CASE_READERS, summary="The own agency's procedure rules")
    async def rules(self, state: State, principal: Principal) -> RulesView:
        context: AreaContext = state.context
        async with context.database.sessionmaker() as session:
            agency = await services.staff_agency(session, principal)
            return RulesView(agency_code=agency.code, rules=await rules_for(session, agency.id))

    @put("/api/case-rules", opt=ADMINS, summary="Set the own agency's procedure rules")
    async def set_rules(self, data: CaseRules, state: State, principal: Principal) -> RulesView:
        context: AreaContext = state.context
        async with context.database.transaction() as session:
            agency = await services.set_rules(
                session, await context.keyring(), principal, data, context.clock.now()
            )
        return RulesView(agency_code=agency.code, rules=data)
