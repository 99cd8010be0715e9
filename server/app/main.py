"""``create_app(settings)``: the Litestar application and its wiring."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from disclosure.controllers import DisclosureStaffController, PublicDisclosureController
from disclosure.jobs import start_jobs
from disclosure.portal import PortalController
from media.evidence.controllers import EvidenceController
from media.ingest.controllers import (
    DirectUploadController,
    RecordingController,
    TokenTusController,
    TusController,
)
from mobile_api.cases.console import CaseConsoleController
from mobile_api.cases.controllers import CaseController
from mobile_api.cases.decisions import DecisionChangeController
from mobile_api.credentials.controllers import (
    CredentialAdminController,
    CredentialController,
    VerificationController,
)
from mobile_api.documents.controllers import DocumentController, DocumentVerificationController
from mobile_api.sync.controllers import SyncController
from review.console import ConsoleAuthController, ConsoleController
from review.controllers import ReviewController
from server.app.context import AppContext
from server.app.controllers.admin import AdminController
from server.app.controllers.auth import AuthController, TerminalController
from server.app.controllers.calendar import CalendarController
from server.app.controllers.ledger import LedgerController
from server.app.controllers.system import SystemController
from server.app.problems import EXCEPTION_HANDLERS
from server.app.security import current_principal, declared_roles, role_guard
from server.app.wiring import wire
from server.core.clock import Clock
from server.core.roles import PUBLIC
from server.core.settings import Settings, load_settings

OPENAPI_PATH = "/schema"
ROUTE_HANDLERS = [
    SystemController,
    AuthController,
    TerminalController,
    AdminController,
    LedgerController,
    CalendarController,
    PortalController,
    PublicDisclosureController,
    DisclosureStaffController,
    SyncController,
    CaseController,
    CaseConsoleController,
    DecisionChangeController,
    CredentialController,
    CredentialAdminController,
    VerificationController,
    DocumentController,
    DocumentVerificationController,
    RecordingController,
    TusController,
    TokenTusController,
    DirectUploadController,
    EvidenceController,
    ReviewController,
    ConsoleAuthController,
    ConsoleController,
]


def _declare_docs_public(app: Litestar) -> None:
    """The API documentation is public; Litestar builds its routes, so we label them here."""
    for route in app.routes:
        if route.path == OPENAPI_PATH or route.path.startswith(f"{OPENAPI_PATH}/"):
            for handler in route.route_handlers:  # type: ignore[union-attr]
                handler.opt.update(PUBLIC)


def _check_every_route_declares_roles(app: Litestar) -> None:
    undeclared = [
        f"{method} {route.path}"
        for route in app.routes
        for handler in route.route_handlers  # type: ignore[union-attr]
        for method in (getattr(handler, "http_methods", None) or ["WS"])
        if declared_roles(handler) is None
    ]
    if undeclared:
        raise RuntimeError(f"routes without declared roles: {undeclared}")


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> Litestar:
    settings = settings or load_settings()
    context = AppContext(settings, clock)
    wiring = wire(context)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        disclosure_jobs = start_jobs(context, wiring.disclosure)
        try:
            yield
        finally:
            await disclosure_jobs.stop()
            await context.close()

    app = Litestar(
        route_handlers=ROUTE_HANDLERS,
        guards=[role_guard],
        dependencies={"principal": Provide(current_principal, sync_to_thread=False)},
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=[lifespan],
        before_request=wiring.enter,
        state=State({"context": context, **wiring.state}),
        openapi_config=OpenAPIConfig(
            title="zhifa 执法终端后台",
            version="0.1.0",
            path=OPENAPI_PATH,
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                }
            ),
            security=[{"bearer": []}],
        ),
    )
    _declare_docs_public(app)
    _check_every_route_declares_roles(app)
    return app
