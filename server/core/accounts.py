"""Users, terminals and the token flows: staff login, terminal enrollment, officer login, refresh."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import uuid

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core import ledger
from server.core.auth import (
    Principal,
    hash_password,
    issue_access_token,
    new_opaque_token,
    token_digest,
    verify_password,
)
from server.core.errors import (
    Conflict,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from server.core.keys import KeyRing, jwk_thumbprint, okp_jwk
from server.core.models import (
    Agency,
    Credential,
    EnrollmentCode,
    RefreshToken,
    Role,
    StaffUser,
    Terminal,
)
from server.core.settings import Settings


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_in: int
    roles: list[str]
    token_type: str = "Bearer"
    terminal_id: str | None = None


def principal_of(user: StaffUser, terminal_id: uuid.UUID | None = None) -> Principal:
    return Principal(
        user_id=user.id,
        roles=frozenset(user.roles),
        agency_id=user.agency_id,
        officer_id=user.officer_id,
        terminal_id=terminal_id,
    )


async def create_user(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    username: str,
    password: str,
    display_name: str,
    roles: list[Role],
    agency_id: uuid.UUID | None,
    now: dt.datetime,
    credential_number: str | None = None,
) -> StaffUser:
    if len(password) < 8:
        raise ValidationFailed("密码至少 8 位", field="password")
    if await session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise Conflict(f"用户名 {username} 已存在", field="username")
    officer_id = None
    if credential_number:
        credential = await session.scalar(
            select(Credential).where(Credential.number == credential_number)
        )
        if credential is None:
            raise NotFound(f"证号 {credential_number} 不在名册中", field="credential_number")
        officer_id = credential.officer_id
    user = StaffUser(
        username=username,
        display_name=display_name,
        password_hash=hash_password(password),
        roles=sorted(str(r) for r in roles),
        agency_id=agency_id,
        officer_id=officer_id,
        created_at=now,
    )
    session.add(user)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="account.user_created",
        ref=f"user:{user.id}",
        data={
            "username": username,
            "roles": user.roles,
            "officer_id": str(officer_id) if officer_id else None,
        },
        now=now,
    )
    return user


async def _check_login(session: AsyncSession, username: str, password: str) -> StaffUser:
    user = await session.scalar(select(StaffUser).where(StaffUser.username == username))
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise NotAuthenticated("用户名或密码不正确", reason="bad_credentials")
    if not user.active:
        raise NotAuthenticated("该账号已停用", reason="user_inactive")
    return user


async def _issue(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    user: StaffUser,
    now: dt.datetime,
    terminal: Terminal | None = None,
) -> TokenPair:
    terminal_id = terminal.id if terminal else None
    access = issue_access_token(
        keyring,
        principal_of(user, terminal_id),
        now,
        settings.access_token_ttl_seconds,
        device_jkt=terminal.key_thumbprint if terminal else None,
    )
    refresh, digest = new_opaque_token()
    session.add(
        RefreshToken(
            token_hash=digest,
            user_id=user.id,
            terminal_id=terminal_id,
            created_at=now,
            expires_at=now + dt.timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    await session.flush()
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_seconds,
        roles=list(user.roles),
        terminal_id=str(terminal_id) if terminal_id else None,
    )


async def staff_login(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    username: str,
    password: str,
    now: dt.datetime,
) -> TokenPair:
    user = await _check_login(session, username, password)
    return await _issue(session, keyring, settings, user, now)


async def terminal_by_thumbprint(session: AsyncSession, thumbprint: str) -> Terminal:
    terminal = await session.scalar(select(Terminal).where(Terminal.key_thumbprint == thumbprint))
    if terminal is None or terminal.revoked_at is not None:
        raise NotAuthenticated("该执法终端未注册或已停用", reason="terminal_unknown")
    return terminal


async def officer_login(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    *,
    username: str,
    password: str,
    device_thumbprint: str,
    now: dt.datetime,
) -> TokenPair:
    """Log an officer in on an enrolled terminal; the token works only with that terminal's key."""
    terminal = await terminal_by_thumbprint(session, device_thumbprint)
    user = await _check_login(session, username, password)
    if Role.OFFICER not in user.roles or user.officer_id is None:
        raise PermissionDenied("只有在名册中的执法人员可以登录执法终端")
    if user.agency_id != terminal.agency_id:
        raise PermissionDenied("该执法终端不属于您所在的执法主体")
    return await _issue(session, keyring, settings, user, now, terminal)


async def refresh(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    *,
    refresh_token: str,
    device_thumbprint: str | None,
    now: dt.datetime,
) -> TokenPair:
    """Rotate a refresh token. A terminal's refresh token needs that terminal's device proof."""
    stored = await session.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == token_digest(refresh_token))
        .with_for_update()
    )
    if stored is None or stored.used_at is not None or stored.expires_at <= now:
        raise NotAuthenticated("刷新凭证无效或已过期，请重新登录", reason="refresh_invalid")
    terminal = None
    if stored.terminal_id is not None:
        terminal = await session.get_one(Terminal, stored.terminal_id)
        if device_thumbprint != terminal.key_thumbprint or terminal.revoked_at is not None:
            raise NotAuthenticated(
                "刷新凭证只能在登录时使用的执法终端上使用", reason="device_mismatch"
            )
    stored.used_at = now
    user = await session.get_one(StaffUser, stored.user_id)
    if not user.active:
        raise NotAuthenticated("该账号已停用", reason="user_inactive")
    return await _issue(session, keyring, settings, user, now, terminal)


async def revoke_refresh_token(session: AsyncSession, refresh_token: str, now: dt.datetime) -> None:
    stored = await session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == token_digest(refresh_token))
    )
    if stored is not None and stored.used_at is None:
        stored.used_at = now


def _enrollment_code() -> str:
    # Easy to read out and type on a terminal: 12 characters without look-alikes, in groups of four.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    raw = "".join(secrets.choice(alphabet) for _ in range(12))
    return "-".join(raw[i : i + 4] for i in range(0, 12, 4))


def _normalise_code(code: str) -> str:
    return code.strip().upper().replace(" ", "")


async def create_enrollment_code(
    session: AsyncSession,
    settings: Settings,
    agency_id: uuid.UUID,
    now: dt.datetime,
    code: str | None = None,
) -> tuple[str, EnrollmentCode]:
    code = _normalise_code(code or _enrollment_code())
    row = EnrollmentCode(
        agency_id=agency_id,
        code_hash=token_digest(code),
        created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.enrollment_code_ttl_seconds),
    )
    session.add(row)
    await session.flush()
    return code, row


def parse_device_key(public_key_b64: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(public_key_b64 + "=" * (-len(public_key_b64) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("终端公钥格式不正确", field="public_key") from exc
    if len(raw) != 32:
        raise ValidationFailed("终端公钥应为 32 字节的 Ed25519 公钥", field="public_key")
    return raw


async def enroll_terminal(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    code: str,
    name: str,
    public_key: bytes,
    proof_thumbprint: str,
    now: dt.datetime,
) -> Terminal:
    """Enroll a terminal once: the code is single-use and the request must be signed by the key."""
    thumbprint = jwk_thumbprint(okp_jwk(public_key))
    if thumbprint != proof_thumbprint:
        raise NotAuthenticated("注册请求未由该终端公钥签名", reason="device_proof_mismatch")
    row = await session.scalar(
        select(EnrollmentCode)
        .where(EnrollmentCode.code_hash == token_digest(_normalise_code(code)))
        .with_for_update()
    )
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise NotAuthenticated("注册码无效、已使用或已过期", reason="enrollment_code_invalid")
    if await session.scalar(select(Terminal.id).where(Terminal.key_thumbprint == thumbprint)):
        raise Conflict("该终端公钥已注册", field="public_key")
    terminal = Terminal(
        agency_id=row.agency_id,
        name=name,
        public_key=public_key,
        key_thumbprint=thumbprint,
        enrolled_at=now,
    )
    session.add(terminal)
    await session.flush()
    row.used_at, row.terminal_id = now, terminal.id
    await ledger.append(
        session,
        keyring,
        kind="terminal.enrolled",
        ref=f"terminal:{terminal.id}",
        data={"name": name, "agency_id": str(row.agency_id), "key_thumbprint": thumbprint},
        now=now,
    )
    return terminal


async def agency_by_code(session: AsyncSession, code: str) -> Agency:
    agency = await session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise NotFound(f"执法主体 {code} 不存在")
    return agency
