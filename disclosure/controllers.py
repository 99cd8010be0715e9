"""JSON endpoints: the public disclosure API (no login) and the staff deadline dashboard."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure import search, services
from disclosure.hooks import hooks_of
from disclosure.models import DecisionState, DisclosureDecision
from disclosure.portal import parse_filters
from disclosure.schemas import (
    AgencyView,
    CatalogItem,
    Dashboard,
    DecisionList,
    DecisionPage,
    DecisionStatus,
    Exclusion,
    PublicDecision,
    PublicText,
    ReportSummary,
    ReviewCatalogEntry,
    RosterEntry,
    SettingsView,
    WithdrawalPage,
)
from disclosure.web import runtime_of
from server.core.auth import Principal
from server.core.errors import PermissionDenied, ValidationFailed
from server.core.models import Agency, Role
from server.core.roles import ADMINS, PUBLIC, allow

Limit = Annotated[int, QueryParameter(ge=1, le=search.MAX_LIMIT)]
Offset = Annotated[int, QueryParameter(ge=0, le=search.MAX_OFFSET)]


class PublicDisclosureController(Controller):
    """The portal's data as JSON, with the same filters; anyone may call it."""

    path = "/api/gongshi"
    tags = ["disclosure (public)"]

    @get(
        "/decisions",
        opt=PUBLIC,
        summary="Published decisions: word search (substrings), agency, kind, category, date range",
    )
    async def decisions(
        self,
        state: State,
        q: FromQuery[str] = "",
        agency: FromQuery[str] = "",
        kind: FromQuery[str] = "",
        category: FromQuery[str] = "",
        date_from: Annotated[str, QueryParameter(description="决定日期起 YYYY-MM-DD")] = "",
        date_to: Annotated[str, QueryParameter(description="决定日期止 YYYY-MM-DD")] = "",
        limit: Limit = 20,
        offset: Offset = 0,
        cursor: Annotated[str, QueryParameter(description="next_cursor of the previous page")] = "",
    ) -> DecisionPage:
        filters = parse_filters(q, agency, kind, category, date_from, date_to)
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.search_decisions(
                session, filters, limit=limit, offset=offset, cursor=cursor or None
            )

    @get("/decisions/{record_id:int}", opt=PUBLIC, summary="One published decision")
    async def decision(self, state: State, record_id: FromPath[int]) -> PublicDecision:
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.get_decision(session, record_id)

    @get("/withdrawals", opt=PUBLIC, summary="Withdrawal notices, newest first")
    async def withdrawals(
        self, state: State, agency: FromQuery[str] = "", limit: Limit = 20, offset: Offset = 0
    ) -> WithdrawalPage:
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.list_withdrawals(session, agency=agency, limit=limit, offset=offset)

    @get("/reports", opt=PUBLIC, summary="Annual statistics reports")
    async def reports(self, state: State, agency: FromQuery[str] = "") -> list[ReportSummary]:
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.list_reports(session, agency)

    @get(
        "/reports/{agency_code:str}/{year:int}",
        opt=PUBLIC,
        summary="One annual statistics report (the CSV is at /gongshi/reports/…/data.csv)",
    )
    async def report(
        self, state: State, agency_code: FromPath[str], year: FromPath[int]
    ) -> dict[str, Any]:
        async with runtime_of(state).database.sessionmaker() as session:
            return (await search.get_report(session, agency_code, year)).statistics

    @get("/agencies", opt=PUBLIC, summary="Agencies")
    async def agencies(self, state: State) -> list[AgencyView]:
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.list_agencies(session)

    @get(
        "/agencies/{agency_code:str}/officers",
        opt=PUBLIC,
        summary="Officer roster with the live credential status",
    )
    async def officers(self, state: State, agency_code: FromPath[str]) -> list[RosterEntry]:
        runtime = runtime_of(state)
        async with runtime.database.sessionmaker() as session:
            agency = await search.agency_by_code(session, agency_code)
            return await search.roster(session, agency, runtime.clock.today())

    @get(
        "/agencies/{agency_code:str}/items",
        opt=PUBLIC,
        summary="Catalog of enforcement items with their legal basis",
    )
    async def items(self, state: State, agency_code: FromPath[str]) -> list[CatalogItem]:
        async with runtime_of(state).database.sessionmaker() as session:
            return await search.catalog(session, await search.agency_by_code(session, agency_code))

    @get(
        "/agencies/{agency_code:str}/review-catalog",
        opt=PUBLIC,
        summary="Catalog of decisions that need legal review",
    )
    async def review_catalog(
        self, state: State, agency_code: FromPath[str]
    ) -> list[ReviewCatalogEntry]:
        async with runtime_of(state).database.sessionmaker() as session:
            agency = await search.agency_by_code(session, agency_code)
            return list(await hooks_of(state).review_catalog(session, agency.id))


async def _own_agency(
    session: AsyncSession, principal: NamedDependency[Principal], code: str
) -> Agency:
    agency = await search.agency_by_code(session, code)
    if Role.SYSTEM_ADMIN not in principal.roles and principal.agency_id != agency.id:
        raise PermissionDenied("只能查看和管理本执法主体的公示")
    return agency


async def _own_decision(
    session: AsyncSession, principal: NamedDependency[Principal], decision_id: uuid.UUID
) -> DisclosureDecision:
    scope = None if Role.SYSTEM_ADMIN in principal.roles else principal.agency_id
    if scope is None and Role.SYSTEM_ADMIN not in principal.roles:
        raise PermissionDenied("只能管理本执法主体的公示")
    return await services.decision_of_agency(session, decision_id, scope)


class DisclosureStaffController(Controller):
    """Deadlines and exceptions of the agency's disclosure, for its administrators."""

    path = "/api/disclosure"
    tags = ["disclosure (staff)"]

    @get(
        "/dashboard",
        opt=allow(*ADMINS),
        summary="Due, held, overdue, published, withdrawn, excluded",
    )
    async def dashboard(
        self, state: State, principal: NamedDependency[Principal], agency_code: FromQuery[str]
    ) -> Dashboard:
        runtime = runtime_of(state)
        async with runtime.database.sessionmaker() as session:
            agency = await _own_agency(session, principal, agency_code)
            return await services.dashboard(session, agency, runtime.clock.today())

    @get("/decisions", opt=allow(*ADMINS), summary="The agency's decisions by disclosure state")
    async def decisions(
        self,
        state: State,
        principal: NamedDependency[Principal],
        agency_code: FromQuery[str],
        decision_state: Annotated[str | None, QueryParameter(name="state")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> DecisionList:
        states: tuple[DecisionState, ...] = ()
        if decision_state:
            try:
                states = (DecisionState(decision_state),)
            except ValueError:
                names = "、".join(s.value for s in DecisionState)
                raise ValidationFailed(f"state 应为：{names}", field="state") from None
        runtime = runtime_of(state)
        async with runtime.database.sessionmaker() as session:
            agency = await _own_agency(session, principal, agency_code)
            items = await services.list_decisions(
                session,
                agency.id,
                runtime.clock.today(),
                states=states,
                order=DisclosureDecision.decision_date.desc(),
                limit=limit,
                offset=offset,
            )
        return DecisionList(items=items, limit=limit, offset=offset)

    @get("/settings", opt=allow(*ADMINS), summary="The agency's publication lag and report due day")
    async def get_settings(
        self, state: State, principal: NamedDependency[Principal], agency_code: FromQuery[str]
    ) -> SettingsView:
        async with runtime_of(state).database.sessionmaker() as session:
            agency = await _own_agency(session, principal, agency_code)
            return await services.agency_settings(session, agency.id)

    @put("/settings", opt=allow(*ADMINS), summary="Set the publication lag and the report due day")
    async def put_settings(
        self,
        state: State,
        principal: NamedDependency[Principal],
        agency_code: FromQuery[str],
        data: JSONBody[SettingsView],
    ) -> SettingsView:
        runtime = runtime_of(state)
        async with runtime.database.transaction() as session:
            agency = await _own_agency(session, principal, agency_code)
            return await services.update_settings(
                session, await runtime.keyring(), agency, data, runtime.clock.now()
            )

    @post(
        "/decisions/{decision_id:uuid}/exclusion",
        opt=allow(*ADMINS),
        status_code=200,
        summary="Mark a decision not yet published as not to be published (with the reason)",
    )
    async def exclude(
        self,
        state: State,
        principal: NamedDependency[Principal],
        decision_id: FromPath[uuid.UUID],
        data: JSONBody[Exclusion],
    ) -> DecisionStatus:
        runtime = runtime_of(state)
        async with runtime.database.transaction() as session:
            decision = await _own_decision(session, principal, decision_id)
            return await services.exclude(
                session, await runtime.keyring(), decision, data, runtime.clock.now()
            )

    @put(
        "/decisions/{decision_id:uuid}/public-text",
        opt=allow(*ADMINS),
        summary="Reword a held decision's public text; checked by the scanner before it is kept",
    )
    async def public_text(
        self,
        state: State,
        principal: NamedDependency[Principal],
        decision_id: FromPath[uuid.UUID],
        data: JSONBody[PublicText],
    ) -> DecisionStatus:
        runtime = runtime_of(state)
        async with runtime.database.transaction() as session:
            decision = await _own_decision(session, principal, decision_id)
            return await services.correct_public_text(
                session, await runtime.keyring(), decision, data, runtime.clock.now()
            )
