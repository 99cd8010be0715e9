"""Cases in the staff console (案件): server-rendered Chinese pages over the same queries as the API.

The pages read the console's session cookie (set by the console login, ``/console/login``) and
only read: no forms that change anything, so no CSRF token. They work without JavaScript: the
filters are a GET form, paging is links, access keys reach the filters and the pages.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect

from mobile_api.cases import assembly, evidence, services
from mobile_api.web import CASE_CONSOLE, AreaContext
from server.core.auth import Principal
from server.core.console import console_templates, page_headers
from server.core.errors import NotAuthenticated, NotFound, ValidationFailed, ZhifaError
from server.core.models import StaffUser

HOME = "/console/cases"
PAGE_SIZE = 50


TEMPLATES = console_templates("mobile_api.cases")


def render(template: str, *, status: int = 200, **values: Any) -> Response[str]:
    # No script at all on these pages.
    html = TEMPLATES.get_template(template).render(**values)
    return Response(html, status_code=status, media_type=MediaType.HTML, headers=page_headers())


def console_error(request: Request[Any, Any, Any], exc: ZhifaError) -> Response[Any]:
    """To the login page when the session is missing or expired; otherwise an HTML error page."""
    if isinstance(exc, NotAuthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"/console/login?next={quote(target)}", status_code=303)
    return render("error.html", status=exc.status, title=exc.title, message=exc.message, user="")


def _choice(value: str, allowed: dict[str, Any], field: str) -> Any:
    """A filter from the form: "" is "all"; anything not offered is refused."""
    if value not in allowed:
        raise ValidationFailed("筛选条件无效", field=field)
    return allowed[value]


async def _viewer(context: AreaContext, principal: Principal) -> str:
    async with context.database.sessionmaker() as session:
        user = await session.get(StaffUser, principal.user_id)
    if user is None or not user.active:
        raise NotAuthenticated("该账号不存在或已停用")
    return user.display_name


class CaseConsoleController(Controller):
    path = HOME
    include_in_schema = False
    exception_handlers = {ZhifaError: console_error}

    @get("/", opt=CASE_CONSOLE)
    async def cases(
        self,
        state: State,
        principal: NamedDependency[Principal],
        agency: FromQuery[str] = "",
        officer: FromQuery[str] = "",
        case_state: Annotated[str, QueryParameter(name="state")] = "",
        overdue: FromQuery[str] = "",
        page: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1,
    ) -> Response[str]:
        context: AreaContext = state.context
        user = await _viewer(context, principal)
        calendar = await context.calendar()
        today = context.clock.today()
        async with context.database.sessionmaker() as session:
            own = await services.staff_agency(session, principal, agency or None)
            officers = await services.agency_officers(session, own.id)
            filters = {
                "officer": _choice(officer, {"": None} | {n: n for n, _ in officers}, "officer"),
                "state": _choice(
                    case_state, {"": None} | {s: s for s in assembly.CaseState.ALL}, "state"
                ),
                "overdue": _choice(overdue, {"": None, "true": True, "false": False}, "overdue"),
            }
            # One more than a page tells whether there is a next one.
            found = await services.list_cases(
                session,
                principal,
                today=today,
                calendar=calendar,
                limit=PAGE_SIZE + 1,
                offset=(page - 1) * PAGE_SIZE,
                **filters,
            )
        query = {"agency": agency, "officer": officer, "state": case_state, "overdue": overdue}
        kept = {key: value for key, value in query.items() if value}

        def link(to: int) -> str:
            return f"{HOME}?{urlencode(kept | {'page': to})}"

        return render(
            "cases.html",
            user=user,
            agency=own,
            officers=officers,
            names=dict(officers),
            states=assembly.CaseState.ALL,
            filters=filters,
            cases=found[:PAGE_SIZE],
            page=page,
            previous=link(page - 1) if page > 1 else "",
            next=link(page + 1) if len(found) > PAGE_SIZE else "",
            today=today,
        )

    @get("/{case_id:uuid}", opt=CASE_CONSOLE)
    async def case(
        self, state: State, principal: NamedDependency[Principal], case_id: FromPath[uuid.UUID]
    ) -> Response[str]:
        context: AreaContext = state.context
        user = await _viewer(context, principal)
        calendar = await context.calendar()
        async with context.database.sessionmaker() as session:
            view = await services.case_file(
                session, principal, case_id, today=context.clock.today(), calendar=calendar
            )
            playable = await evidence.playable(session, view.file)
        names = {officer.number: officer.name for officer in view.file.officers}
        return render(
            "case.html",
            user=user,
            file=view.file,
            deadlines=view.deadlines,
            flaws=view.flaws,
            timeline=view.timeline,
            terminals=len({entry.terminal_id for entry in view.timeline}),
            rejected=view.rejected,
            playable=playable,
            names=names,
        )

    @get("/{case_id:uuid}/evidence/{evidence_id:uuid}", opt=CASE_CONSOLE)
    async def play(
        self,
        state: State,
        principal: NamedDependency[Principal],
        case_id: FromPath[uuid.UUID],
        evidence_id: FromPath[uuid.UUID],
    ) -> Redirect:
        """Each viewing is written to the ledger (by media) before the player gets the address."""
        context: AreaContext = state.context
        async with context.database.transaction() as session:
            file = await services.readable_file(session, principal, case_id)
            url = await evidence.playback_url(context, session, file, str(evidence_id), principal)
        if url is None:
            raise NotFound("该证据暂无可播放的音像记录", evidence_id=str(evidence_id))
        return Redirect(url, status_code=303)
