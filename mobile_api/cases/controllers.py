"""Staff read cases of their own agency; admins set the agency's procedure rules."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

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
        principal: NamedDependency[Principal],
        agency: FromQuery[str | None] = None,
        officer: Annotated[
            str | None, QueryParameter(description="证号 of an officer on the case")
        ] = None,
        case_state: Annotated[str | None, QueryParameter(name="state")] = None,
        overdue: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=services.MAX_PAGE)] = 50,
        offset: Annotated[int, QueryParameter(ge=0)] = 0,
    ) -> list[CaseSummary]:
        context: AreaContext = state.context
        calendar = await context.calendar()
        async with context.database.sessionmaker() as session:
            return await services.list_cases(
                session,
                principal,
                today=context.clock.today(),
                calendar=calendar,
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
        self, state: State, principal: NamedDependency[Principal], case_id: FromPath[uuid.UUID]
    ) -> CaseFileView:
        context: AreaContext = state.context
        calendar = await context.calendar()
        async with context.database.sessionmaker() as session:
            return await services.case_file(
                session, principal, case_id, today=context.clock.today(), calendar=calendar
            )

    @get("/api/case-rules", opt=CASE_READERS, summary="The own agency's procedure rules")
    async def rules(self, state: State, principal: NamedDependency[Principal]) -> RulesView:
        context: AreaContext = state.context
        async with context.database.sessionmaker() as session:
            agency = await services.staff_agency(session, principal)
            return RulesView(agency_code=agency.code, rules=await rules_for(session, agency.id))

    @put("/api/case-rules", opt=ADMINS, summary="Set the own agency's procedure rules")
    async def set_rules(
        self, data: JSONBody[CaseRules], state: State, principal: NamedDependency[Principal]
    ) -> RulesView:
        context: AreaContext = state.context
        async with context.database.transaction() as session:
            agency = await services.set_rules(
                session, await context.keyring(), principal, data, context.clock.now()
            )
        return RulesView(agency_code=agency.code, rules=data)
