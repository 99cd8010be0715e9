"""Credential endpoints: the officer's codes (terminal), status lists and the public page (anyone),
status actions (admins). Thin: the work is in services and verification."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import msgspec
from jinja2 import Environment, PackageLoader
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from mobile_api.contracts import qr
from mobile_api.contracts.credential import (
    CHINA_TZ,
    VALID,
    CredentialCache,
    TokenBatch,
    china_date,
    verification_url,
)
from mobile_api.credentials import services
from mobile_api.credentials.schemas import (
    CredentialAdminView,
    StatusChangeRequest,
    StatusChangeView,
    VerificationView,
)
from mobile_api.credentials.verification import (
    ClientInfo,
    CredentialUnknown,
    Verifier,
    client_info,
    refuse,
)
from mobile_api.web import ADMINS, OFFICER_ON_TERMINAL, AreaContext
from server.core import accounts
from server.core.auth import Principal
from server.core.errors import NotFound, ZhifaError
from server.core.models import Credential

# server.app.security's declaration of a route anyone may call (see mobile_api.web).
PUBLIC = {"roles": "public"}

VERIFIER_KEY = "credential_verifier"
_templates = Environment(
    loader=PackageLoader("mobile_api.credentials", "templates"), autoescape=True, auto_reload=False
)
HTML = "text/html; charset=utf-8"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Vary": "Accept",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_HTML_HEADERS = _PAGE_HEADERS | {
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}


class PageResponse:
    """The public page is the hot path of this area: a bare ASGI response with headers encoded
    once, instead of Litestar's general Response machinery."""

    __slots__ = ("body", "headers", "status")

    def __init__(
        self, body: bytes, status: int, media_type: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        self.body = body
        self.status = status
        self.headers = [
            (b"content-type", media_type.encode()),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode("latin-1")) for name, value in headers.items()]


_PAGE_HEADERS_RAW = _encoded(_PAGE_HEADERS)
_HTML_HEADERS_RAW = _encoded(_HTML_HEADERS)


def _header(request: Request[Any, Any, Any], name: bytes) -> str:
    """One request header straight from the ASGI scope (the hot path skips Litestar's Headers)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _client(request: Request[Any, Any, Any]) -> ClientInfo:
    peer = request.scope.get("client")
    return client_info(peer[0] if peer else None, _header(request, b"user-agent"))


_HEADLINES = {
    "有效": ("✓ 执法证件有效", "ok"),
    "暂扣": ("执法证件已被暂扣", "warn"),
    "过期": ("执法证件已过期", "warn"),
    "注销": ("执法证件已被注销", "bad"),
    "吊销": ("执法证件已被吊销", "bad"),
}


def _context(state: State) -> AreaContext:
    return state.context


def verifier_of(request: Request[Any, Any, Any]) -> Verifier:
    """The application instance's verifier, made on first use."""
    state = request.app.state
    verifier = state.get(VERIFIER_KEY)
    if verifier is None:
        verifier = Verifier(state.context)
        state[VERIFIER_KEY] = verifier
    return verifier


def _china_time(at: dt.datetime) -> str:
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


class CredentialController(Controller):
    path = "/api/credentials"
    tags = ["credentials"]

    async def _own(self, request: Request[Any, Any, Any], principal: Principal) -> Any:
        context = _context(request.app.state)
        async with context.database.sessionmaker() as session:
            return await services.load_credential(
                session, officer_id=services.officer_of(principal), with_photo=True
            )

    @get(
        "/me/qr-batch",
        opt=OFFICER_ON_TERMINAL,
        summary="Pre-signed QR codes for the next hours, for the terminal to show offline",
    )
    async def qr_batch(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> TokenBatch:
        context = _context(request.app.state)
        credential, agency = await self._own(request, principal)
        return services.issue_token_batch(
            credential,
            agency,
            await context.keyring(),
            verifier_of(request).policy,
            now=context.clock.now(),
            public_base_url=context.settings.resolved_public_base_url,
        )

    async def _current_url(self, request: Request[Any, Any, Any], principal: Principal) -> str:
        context = _context(request.app.state)
        credential, _ = await self._own(request, principal)
        token = services.current_token(
            credential, await context.keyring(), verifier_of(request).policy, context.clock.now()
        )
        return verification_url(context.settings.resolved_public_base_url, token)

    @get("/me/qr.png", opt=OFFICER_ON_TERMINAL, summary="The officer's current code as PNG")
    async def qr_png(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Response[bytes]:
        url = await self._current_url(request, principal)
        return Response(
            qr.qr_png(url), media_type="image/png", headers={"Cache-Control": "no-store"}
        )

    @get("/me/qr.svg", opt=OFFICER_ON_TERMINAL, summary="The officer's current code as SVG")
    async def qr_svg(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Response[bytes]:
        url = await self._current_url(request, principal)
        return Response(
            qr.qr_svg(url), media_type="image/svg+xml", headers={"Cache-Control": "no-store"}
        )

    @get(
        "/me/qr.txt",
        opt=OFFICER_ON_TERMINAL,
        summary="The officer's current code as text for a terminal",
    )
    async def qr_txt(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> Response[str]:
        url = await self._current_url(request, principal)
        return Response(
            f"{qr.qr_text(url)}\n{url}\n",
            media_type="text/plain; charset=utf-8",
            headers={"Cache-Control": "no-store"},
        )

    @get(
        "/cache",
        opt=OFFICER_ON_TERMINAL,
        summary="Keys, signed status list and roster of the officer's agency, for offline checks",
    )
    async def cache(
        self, request: Request[Any, Any, Any], principal: NamedDependency[Principal]
    ) -> CredentialCache:
        context = _context(request.app.state)
        services.officer_of(principal)
        now = context.clock.now()
        async with context.database.transaction() as session:
            _, agency = await services.load_credential(session, officer_id=principal.officer_id)
            return await services.credential_cache(
                session,
                await context.keyring(),
                agency,
                now=now,
                policy=verifier_of(request).policy,
                public_base_url=context.settings.resolved_public_base_url,
            )

    @get(
        "/status-lists/{agency_code:str}",
        opt=PUBLIC,
        summary="The agency's signed credential status list (JWS, application/statuslist+jwt)",
    )
    async def status_list(
        self, agency_code: FromPath[str], request: Request[Any, Any, Any]
    ) -> Response[Any]:
        context = _context(request.app.state)
        async with context.database.transaction() as session:
            agency = await accounts.agency_by_code(session, agency_code)
            signed = await services.status_list(
                session,
                await context.keyring(),
                agency,
                now=context.clock.now(),
                policy=verifier_of(request).policy,
                public_base_url=context.settings.resolved_public_base_url,
            )
        etag = f'"{signed.etag}"'
        # Revalidated on every use, so a revocation reaches the next sync at once; 304 is cheap.
        headers = {"ETag": etag, "Cache-Control": "public, no-cache"}
        if etag in request.headers.get("if-none-match", ""):
            return Response(None, status_code=304, headers=headers)
        return Response(signed.document, media_type="application/statuslist+jwt", headers=headers)


def _admin_view(
    credential: Credential, agency: Any, history: list[Any], today: dt.date
) -> CredentialAdminView:
    return CredentialAdminView(
        credential_number=credential.number,
        name=credential.officer.name,
        unit=credential.officer.unit,
        agency=agency.name,
        categories=list(credential.categories),
        regions=list(credential.regions),
        issued_on=credential.issued_on,
        expires_on=credential.expires_on,
        status=credential.effective_status(today),
        status_reason=credential.status_reason,
        status_changed_at=credential.status_changed_at,
        history=[
            StatusChangeView(
                from_status=change.from_status.value,
                to_status=change.to_status.value,
                reason=change.reason,
                changed_by=str(change.changed_by),
                changed_at=change.changed_at,
            )
            for change in history
        ],
    )


class CredentialAdminController(Controller):
    path = "/api/admin/credentials"
    tags = ["admin"]

    @get("/{number:str}", opt=ADMINS, summary="A credential with its status history")
    async def show(
        self,
        number: FromPath[str],
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
    ) -> CredentialAdminView:
        context = _context(request.app.state)
        async with context.database.sessionmaker() as session:
            credential, agency = await services.load_credential(session, number=number)
            services.check_agency(principal, agency.id)
            history = await services.status_history(session, credential.id)
        return _admin_view(credential, agency, history, context.clock.today())

    @post(
        "/{number:str}/status",
        opt=ADMINS,
        status_code=200,
        summary="暂扣 / 注销 / 吊销 / 恢复 a credential, with the reason",
    )
    async def change_status(
        self,
        number: FromPath[str],
        data: JSONBody[StatusChangeRequest],
        request: Request[Any, Any, Any],
        principal: NamedDependency[Principal],
    ) -> CredentialAdminView:
        context = _context(request.app.state)
        async with context.database.transaction() as session:
            credential, agency = await services.load_credential(session, number=number)
            services.check_agency(principal, agency.id)
            await services.change_status(
                session,
                await context.keyring(),
                credential,
                action=data.action,
                reason=data.reason.strip(),
                principal=principal,
                now=context.clock.now(),
            )
            history = await services.status_history(session, credential.id)
        return _admin_view(credential, agency, history, context.clock.today())


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    """JSON for clients that ask for it and not for HTML; browsers always name text/html."""
    accept = _header(request, b"accept")
    return "application/json" in accept and "text/html" not in accept


def _notice(exc: ZhifaError) -> PageResponse:
    tone = "warn" if exc.status in (410, 429) else "bad"
    html = _templates.get_template("notice.html").render(
        title=exc.title, message=exc.message, tone=tone
    )
    headers = dict(_HTML_HEADERS)
    if "retry_after" in exc.data:
        headers["Retry-After"] = str(exc.data["retry_after"])
    return PageResponse(html.encode(), exc.status, HTML, _encoded(headers))


class VerificationController(Controller):
    """The page the party's phone opens from the QR: no login, no JavaScript, Chinese."""

    path = "/v"
    tags = ["verification"]

    @get(
        "/{token:str}",
        opt=PUBLIC,
        summary="Verify a scanned credential code: HTML page, or JSON with Accept: application/json",
    )
    async def verify(self, token: FromPath[str], request: Request[Any, Any, Any]) -> PageResponse:
        verifier = verifier_of(request)
        as_json = _wants_json(request)
        checked, outcome, admission = await verifier.visit(token, _client(request), scan=True)
        try:
            refuse(outcome, admission)
            if admission.credential is None or checked.claims is None:
                raise CredentialUnknown("没有找到该执法证件，请向执法机关核实")
        except ZhifaError as exc:
            if as_json:
                raise
            return _notice(exc)
        credential, claims = admission.credential, checked.claims
        now = verifier.context.clock.now()
        status = credential.effective_status(china_date(now))
        view = VerificationView(
            status=status,
            valid=status == VALID,
            name=credential.name,
            credential_number=credential.number,
            agency=credential.agency_name,
            unit=credential.unit,
            categories=credential.categories,
            regions=credential.regions,
            issued_on=credential.issued_on,
            expires_on=credential.expires_on,
            photo_url=f"/v/{token}/photo" if credential.has_photo else None,
            code_issued_at=dt.datetime.fromtimestamp(claims.issued_at, dt.UTC),
            code_expires_at=dt.datetime.fromtimestamp(claims.expires_at, dt.UTC),
            checked_at=now,
        )
        if as_json:
            return PageResponse(
                msgspec.json.encode(view), 200, "application/json", _PAGE_HEADERS_RAW
            )
        headline, tone = _HEADLINES[status]
        html = _templates.get_template("verify.html").render(
            view=view,
            headline=headline,
            tone=tone,
            code_made=_china_time(view.code_issued_at),
            checked=_china_time(now),
            slot_seconds=verifier.policy.qr_slot_seconds,
        )
        return PageResponse(html.encode(), 200, HTML, _HTML_HEADERS_RAW)

    @get(
        "/{token:str}/photo", opt=PUBLIC, summary="The officer's photo, for a genuine current code"
    )
    async def photo(self, token: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        verifier = verifier_of(request)
        checked, outcome, admission = await verifier.visit(token, _client(request), scan=False)
        refuse(outcome, admission)
        assert checked.claims is not None
        async with verifier.context.database.sessionmaker() as session:
            row = (
                await session.execute(
                    select(Credential.photo, Credential.photo_type).where(
                        Credential.id == checked.claims.credential_id
                    )
                )
            ).first()
        if row is None or row.photo is None:
            raise NotFound("该执法证件没有照片")
        etag = f'"{hashlib.sha256(row.photo).hexdigest()[:32]}"'
        remaining = max(
            0, checked.claims.expires_at - int(verifier.context.clock.now().timestamp())
        )
        # Private: officers' faces do not belong in shared caches; the phone keeps it while the
        # code lives.
        headers = {
            "ETag": etag,
            "Cache-Control": f"private, max-age={remaining}",
            "X-Content-Type-Options": "nosniff",
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(None, status_code=304, headers=headers)
        return Response(row.photo, media_type=row.photo_type or "image/jpeg", headers=headers)
