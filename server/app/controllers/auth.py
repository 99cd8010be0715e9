"""Logins, refresh, terminal enrollment."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody

from server.app.context import AppContext
from server.app.security import DEVICE_PROOF_HEADER
from server.core import accounts
from server.core.accounts import TokenPair
from server.core.auth import Principal, verify_device_proof
from server.core.errors import PermissionDenied
from server.core.models import Role
from server.core.roles import ADMINS, ANY_STAFF, PUBLIC, allow

NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LoginRequest(msgspec.Struct, frozen=True):
    username: NonEmpty
    password: NonEmpty


class RefreshRequest(msgspec.Struct, frozen=True):
    refresh_token: NonEmpty


class EnrollRequest(msgspec.Struct, frozen=True):
    enrollment_code: NonEmpty
    name: NonEmpty
    public_key: Annotated[str, msgspec.Meta(min_length=43, max_length=44)]  # base64url, raw Ed25519


class EnrollResponse(msgspec.Struct, frozen=True):
    terminal_id: str
    agency_id: str
    name: str


class EnrollmentCodeRequest(msgspec.Struct, frozen=True):
    agency_code: str | None = None


class EnrollmentCodeResponse(msgspec.Struct, frozen=True):
    enrollment_code: str
    expires_at: str


class Done(msgspec.Struct, frozen=True):
    ok: bool = True


def _device_thumbprint(request: Request, context: AppContext, required: bool) -> str | None:
    proof = request.headers.get(DEVICE_PROOF_HEADER)
    if not proof and not required:
        return None
    return verify_device_proof(
        proof,
        method=request.method,
        path=request.url.path,
        now=context.clock.now(),
        max_age_seconds=context.settings.device_proof_max_age_seconds,
    )


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/login", opt=PUBLIC, status_code=200, summary="Staff login (console and API)")
    async def login(self, data: JSONBody[LoginRequest], state: State) -> TokenPair:
        context: AppContext = state.context
        async with context.database.transaction() as session:
            return await accounts.staff_login(
                session,
                await context.keyring(),
                context.settings,
                data.username,
                data.password,
                context.clock.now(),
            )

    @post(
        "/terminal-login",
        opt=PUBLIC,
        status_code=200,
        summary="Officer login on an enrolled terminal (needs a DPoP proof by the device key)",
    )
    async def terminal_login(
        self, data: JSONBody[LoginRequest], request: Request, state: State
    ) -> TokenPair:
        context: AppContext = state.context
        thumbprint = _device_thumbprint(request, context, required=True)
        assert thumbprint is not None
        async with context.database.transaction() as session:
            return await accounts.officer_login(
                session,
                await context.keyring(),
                context.settings,
                username=data.username,
                password=data.password,
                device_thumbprint=thumbprint,
                now=context.clock.now(),
            )

    @post("/refresh", opt=PUBLIC, status_code=200, summary="Rotate a refresh token")
    async def refresh(
        self, data: JSONBody[RefreshRequest], request: Request, state: State
    ) -> TokenPair:
        context: AppContext = state.context
        thumbprint = _device_thumbprint(request, context, required=False)
        async with context.database.transaction() as session:
            return await accounts.refresh(
                session,
                await context.keyring(),
                context.settings,
                refresh_token=data.refresh_token,
                device_thumbprint=thumbprint,
                now=context.clock.now(),
            )

    @post("/logout", opt=allow(*ANY_STAFF), status_code=200, summary="Revoke a refresh token")
    async def logout(self, data: JSONBody[RefreshRequest], state: State) -> Done:
        context: AppContext = state.context
        async with context.database.transaction() as session:
            await accounts.revoke_refresh_token(session, data.refresh_token, context.clock.now())
        return Done()


class TerminalController(Controller):
    path = "/api/terminals"
    tags = ["terminals"]

    @post(
        "/enroll",
        opt=PUBLIC,
        status_code=201,
        summary="Enroll a terminal once with an enrollment code and its Ed25519 key",
    )
    async def enroll(
        self, data: JSONBody[EnrollRequest], request: Request, state: State
    ) -> EnrollResponse:
        context: AppContext = state.context
        thumbprint = _device_thumbprint(request, context, required=True)
        assert thumbprint is not None
        async with context.database.transaction() as session:
            terminal = await accounts.enroll_terminal(
                session,
                await context.keyring(),
                code=data.enrollment_code,
                name=data.name,
                public_key=accounts.parse_device_key(data.public_key),
                proof_thumbprint=thumbprint,
                now=context.clock.now(),
            )
        return EnrollResponse(
            terminal_id=str(terminal.id), agency_id=str(terminal.agency_id), name=terminal.name
        )

    @post(
        "/enrollment-codes",
        opt=allow(*ADMINS),
        status_code=201,
        summary="Create a single-use terminal enrollment code",
    )
    async def enrollment_code(
        self,
        data: JSONBody[EnrollmentCodeRequest],
        state: State,
        principal: NamedDependency[Principal],
    ) -> EnrollmentCodeResponse:
        context: AppContext = state.context
        async with context.database.transaction() as session:
            if data.agency_code:
                agency = await accounts.agency_by_code(session, data.agency_code)
                agency_id = agency.id
            elif principal.agency_id:
                agency_id = principal.agency_id
            else:
                raise PermissionDenied("请指定执法主体")
            if Role.SYSTEM_ADMIN not in principal.roles and agency_id != principal.agency_id:
                raise PermissionDenied("只能为本执法主体创建注册码")
            code, row = await accounts.create_enrollment_code(
                session, context.settings, agency_id, context.clock.now()
            )
        return EnrollmentCodeResponse(enrollment_code=code, expires_at=row.expires_at.isoformat())
