"""Document endpoints: number blocks and registration for terminals, templates for terminals and
admins, and the public verification page ``/d/{id}`` (HTML, or JSON with ``Accept: application/json``)."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import JSONBody

from mobile_api import gates
from mobile_api.contracts.documents import NumberBlock
from mobile_api.documents import services
from mobile_api.documents.schemas import (
    NumberBlockRequest,
    RegisterRequest,
    Registration,
    TemplateFile,
    TemplateName,
    TemplateSet,
    TemplateUpload,
)
from mobile_api.web import ADMINS, OFFICER_ON_TERMINAL, AreaContext
from server.core import accounts
from server.core.auth import Principal
from server.core.clock import CHINA_TZ
from server.core.errors import NotFound
from server.core.models import Agency

# server.app.security's format for a route anyone may call; this layer may not import server.app.
PUBLIC: dict[str, Any] = {"roles": "public"}
TEMPLATE_READERS = {"roles": OFFICER_ON_TERMINAL["roles"] | ADMINS["roles"]}

_pages = Environment(
    loader=PackageLoader("mobile_api.documents", "templates"), autoescape=True, auto_reload=False
)
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Vary": "Accept",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'",
}


def _context(state: State) -> AreaContext:
    return state.context


async def _agency(context: AreaContext, principal: Principal, agency_code: str | None) -> Agency:
    async with context.database.sessionmaker() as session:
        if agency_code:
            return await accounts.agency_by_code(session, agency_code)
        if principal.agency_id is None:
            raise NotFound("请指定执法主体（agency_code）")
        agency = await session.get(Agency, principal.agency_id)
        if agency is None:
            raise NotFound("执法主体不存在")
        return agency


class DocumentController(Controller):
    path = "/api/documents"
    tags = ["documents"]

    @post(
        "/number-blocks",
        opt=OFFICER_ON_TERMINAL,
        summary="A block of document numbers for this terminal (never overlapping)",
    )
    async def number_block(
        self, state: State, principal: Principal, data: NumberBlockRequest
    ) -> NumberBlock:
        context = _context(state)
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            return await services.issue_block(
                session, keyring, principal, year=data.year, size=data.size, now=context.clock.now()
            )

    @post("/", opt=OFFICER_ON_TERMINAL, summary="Register a document generated on the terminal")
    async def register(
        self,
        state: State,
        principal: NamedDependency[Principal],
        data: JSONBody[RegisterRequest],
    ) -> Response[Registration]:
        hooks = gates.hooks_of(state)
        registration, new = await services.register(_context(state), hooks, principal, data)
        return Response(registration, status_code=201 if new else 200)

    @get("/templates", opt=TEMPLATE_READERS, summary="The agency's current templates and rules")
    async def templates(
        self, state: State, principal: Principal, agency_code: str | None = None
    ) -> TemplateSet:
        context = _context(state)
        agency = await _agency(context, principal, agency_code)
        services.check_agency(principal, agency)
        async with context.database.sessionmaker() as session:
            files = await services.current_files(session, agency.id)
        return TemplateSet(agency_code=agency.code, files=files)

    @put(
        "/templates/{name:str}",
        opt=ADMINS,
        summary="Store a new version of a template or of the rules (refused if a required part is missing)",
    )
    async def store_template(
        self,
        state: State,
        principal: Principal,
        name: TemplateName,
        data: TemplateUpload,
        agency_code: str | None = None,
    ) -> TemplateFile:
        context = _context(state)
        agency = await _agency(context, principal, agency_code)
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            return await services.store_file(
                session, keyring, principal, agency, name, data.body, context.clock.now()
            )


class DocumentVerificationController(Controller):
    path = "/d"
    tags = ["documents"]

    @get(
        "/{document_id:str}",
        opt=PUBLIC,
        summary="Public verification of a document (no personal data)",
    )
    async def verify(
        self, request: Request[Any, Any, Any], state: State, document_id: str
    ) -> Response[Any]:
        context = _context(state)
        async with context.database.sessionmaker() as session:
            view = await services.verification(session, document_id)
        status = 200 if view.status == "genuine" else 404
        if "application/json" in request.headers.get("accept", ""):
            return Response(view, status_code=status, headers=_PAGE_HEADERS)
        at = view.registered_at
        registered = at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S") if at else ""
        html = _pages.get_template("verify.html").render(v=view, registered=registered)
        return Response(html, status_code=status, media_type=MediaType.HTML, headers=_PAGE_HEADERS)
