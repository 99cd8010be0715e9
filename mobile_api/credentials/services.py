"""Credential services: the officer's code batch, the agency's signed status list, the terminal's
offline cache, and the admin's status actions (暂扣 / 注销 / 吊销 / 恢复)."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer, joinedload

from mobile_api.contracts.credential import (
    CHINA_TZ,
    VALID,
    CredentialCache,
    CredentialCard,
    CredentialPolicy,
    TokenBatch,
    china_date,
    pack_statuses,
    sign_status_list,
    sign_token,
)
from mobile_api.credential_models import CredentialStatusChange, CredentialStatusList
from server.core import ledger
from server.core.auth import Principal
from server.core.errors import Conflict, NotFound, PermissionDenied
from server.core.keys import KeyRing
from server.core.models import Agency, Credential, CredentialStatus, Role

STATUS_LIST_PATH = "/api/credentials/status-lists/"


class CredentialNotValid(PermissionDenied):
    code = "credential_not_valid"
    title = "执法证件当前无效，不能出示电子证件"


class TerminalRequired(PermissionDenied):
    code = "terminal_required"
    title = "请在已注册的执法终端上以执法人员身份登录后操作"


class StatusTransitionRefused(Conflict):
    code = "credential_status_transition"
    title = "证件当前状态不允许该操作"


class StatusAction(enum.StrEnum):
    SUSPEND = "suspend"
    CANCEL = "cancel"
    REVOKE = "revoke"
    REINSTATE = "reinstate"


ACTION_LABELS = {
    StatusAction.SUSPEND: "暂扣",
    StatusAction.CANCEL: "注销",
    StatusAction.REVOKE: "吊销",
    StatusAction.REINSTATE: "恢复",
}
_TARGET = {
    StatusAction.SUSPEND: CredentialStatus.SUSPENDED,
    StatusAction.CANCEL: CredentialStatus.CANCELLED,
    StatusAction.REVOKE: CredentialStatus.REVOKED,
    StatusAction.REINSTATE: CredentialStatus.VALID,
}
# 注销 and 吊销 are final: a wrongly cancelled officer gets a new credential, not a silent undo.
_ALLOWED_FROM = {
    StatusAction.SUSPEND: {CredentialStatus.VALID},
    StatusAction.CANCEL: {CredentialStatus.VALID, CredentialStatus.SUSPENDED},
    StatusAction.REVOKE: {CredentialStatus.VALID, CredentialStatus.SUSPENDED},
    StatusAction.REINSTATE: {CredentialStatus.SUSPENDED},
}


def dialect_insert(session: AsyncSession, table: Any) -> Any:
    """INSERT with ON CONFLICT support on the session's backend (SQLite or PostgreSQL)."""
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(table)


def card_of(credential: Credential, agency: Agency) -> CredentialCard:
    return CredentialCard(
        credential_id=credential.id,
        number=credential.number,
        name=credential.officer.name,
        unit=credential.officer.unit,
        agency_id=agency.id,
        agency_name=agency.name,
        categories=list(credential.categories),
        regions=list(credential.regions),
        issued_on=credential.issued_on,
        expires_on=credential.expires_on,
        status_index=credential.status_index,
    )


async def load_credential(
    session: AsyncSession,
    *,
    officer_id: uuid.UUID | None = None,
    number: str | None = None,
    with_photo: bool = False,
) -> tuple[Credential, Agency]:
    query = (
        select(Credential, Agency)
        .join(Agency, Agency.id == Credential.agency_id)
        .options(joinedload(Credential.officer))
    )
    if not with_photo:
        query = query.options(defer(Credential.photo))
    if officer_id is not None:
        query = query.where(Credential.officer_id == officer_id)
    elif number is not None:
        query = query.where(Credential.number == number)
    else:
        raise ValueError("name the officer or the credential number")
    row = (await session.execute(query)).first()
    if row is None:
        raise (
            NotFound("没有找到该执法证件", number=number)
            if number
            else NotFound("没有找到该执法证件")
        )
    return row[0], row[1]


def officer_of(principal: Principal) -> uuid.UUID:
    """The officer behind a terminal login; 亮证 is done on an enrolled terminal only."""
    if principal.officer_id is None or principal.terminal_id is None:
        raise TerminalRequired()
    return principal.officer_id


def check_agency(principal: Principal, agency_id: uuid.UUID) -> None:
    if Role.SYSTEM_ADMIN not in principal.roles and principal.agency_id != agency_id:
        raise PermissionDenied("只能管理本执法主体的执法证件")


def _require_valid(credential: Credential, today: dt.date) -> None:
    status = credential.effective_status(today)
    if status != VALID:
        raise CredentialNotValid(
            f"您的执法证件当前状态为“{status}”，不能出示电子证件", credential_status=status
        )
    if today < credential.issued_on:
        raise CredentialNotValid(
            f"您的执法证件发证日期为 {credential.issued_on}，尚未生效", credential_status=status
        )


def _slot_tokens(
    credential: Credential, keyring: KeyRing, policy: CredentialPolicy, first: int, count: int
) -> list[str]:
    return [
        sign_token(
            keyring.active,
            keyring.active_kid,
            credential.id,
            first + i * policy.qr_slot_seconds,
            policy.qr_lifetime_seconds,
        )
        for i in range(count)
    ]


def current_slot(now: dt.datetime, policy: CredentialPolicy) -> int:
    return int(now.timestamp()) // policy.qr_slot_seconds * policy.qr_slot_seconds


def current_token(
    credential: Credential, keyring: KeyRing, policy: CredentialPolicy, now: dt.datetime
) -> str:
    """The code of the current slot, signed now (for the server's own QR endpoints)."""
    _require_valid(credential, china_date(now))
    return _slot_tokens(credential, keyring, policy, current_slot(now, policy), 1)[0]


def issue_token_batch(
    credential: Credential,
    agency: Agency,
    keyring: KeyRing,
    policy: CredentialPolicy,
    *,
    now: dt.datetime,
    public_base_url: str,
) -> TokenBatch:
    """One signed code per slot for the next ``qr_batch_hours``, none past the expiry date."""
    _require_valid(credential, china_date(now))
    first = current_slot(now, policy)
    expiry_day_ends = dt.datetime.combine(
        credential.expires_on + dt.timedelta(days=1), dt.time(), CHINA_TZ
    )
    end = min(first + policy.qr_batch_hours * 3600, int(expiry_day_ends.timestamp()))
    count = max(1, -(-(end - first) // policy.qr_slot_seconds))
    return TokenBatch(
        card=card_of(credential, agency),
        photo=credential.photo,
        photo_type=credential.photo_type,
        verify_base_url=f"{public_base_url.rstrip('/')}/v/",
        slot_seconds=policy.qr_slot_seconds,
        lifetime_seconds=policy.qr_lifetime_seconds,
        first_slot=first,
        tokens=_slot_tokens(credential, keyring, policy, first, count),
    )


async def status_list(
    session: AsyncSession,
    keyring: KeyRing,
    agency: Agency,
    *,
    now: dt.datetime,
    policy: CredentialPolicy,
    public_base_url: str,
) -> CredentialStatusList:
    """The agency's signed list as of now: re-signed when a status changed, the signing key
    rotated or the stored one is older than ``status_list_refresh_seconds``."""
    rows = await session.execute(
        select(Credential.status_index, Credential.status).where(Credential.agency_id == agency.id)
    )
    statuses = {index: status.value for index, status in rows}
    size = max(statuses, default=-1) + 1
    packed = pack_statuses(statuses, size)
    stored = await session.get(CredentialStatusList, agency.id)
    if (
        stored is not None
        and stored.statuses == packed
        and stored.size == size
        and stored.kid == keyring.active_kid
        and (now - stored.issued_at).total_seconds() < policy.status_list_refresh_seconds
    ):
        return stored
    document = sign_status_list(
        keyring.active,
        keyring.active_kid,
        sub=f"{public_base_url.rstrip('/')}{STATUS_LIST_PATH}{agency.code}",
        agency_id=agency.id,
        agency_code=agency.code,
        issued_at=int(now.timestamp()),
        packed=packed,
        size=size,
    )
    values = {
        "issued_at": now,
        "size": size,
        "statuses": packed,
        "kid": keyring.active_kid,
        "document": document,
        "etag": hashlib.sha256(document.encode()).hexdigest()[:32],
    }
    # Two instances may re-sign at once; either document is right, the later one stays.
    insert = dialect_insert(session, CredentialStatusList).values(agency_id=agency.id, **values)
    await session.execute(
        insert.on_conflict_do_update(index_elements=[CredentialStatusList.agency_id], set_=values)
    )
    return CredentialStatusList(agency_id=agency.id, **values)


async def roster_cards(session: AsyncSession, agency: Agency) -> list[CredentialCard]:
    credentials = await session.scalars(
        select(Credential)
        .where(Credential.agency_id == agency.id)
        .options(defer(Credential.photo), joinedload(Credential.officer))
        .order_by(Credential.status_index)
    )
    return [card_of(credential, agency) for credential in credentials]


async def credential_cache(
    session: AsyncSession,
    keyring: KeyRing,
    agency: Agency,
    *,
    now: dt.datetime,
    policy: CredentialPolicy,
    public_base_url: str,
) -> CredentialCache:
    """What a terminal of ``agency`` keeps for offline checks: keys, status list, roster."""
    signed = await status_list(
        session, keyring, agency, now=now, policy=policy, public_base_url=public_base_url
    )
    return CredentialCache(
        jwks=keyring.jwks(),
        status_lists=[signed.document],
        roster=await roster_cards(session, agency),
        fetched_at=now,
    )


async def change_status(
    session: AsyncSession,
    keyring: KeyRing,
    credential: Credential,
    *,
    action: StatusAction,
    reason: str,
    principal: Principal,
    now: dt.datetime,
) -> CredentialStatusChange:
    """Apply an admin action; the public page and the status list see it from the commit on."""
    current = credential.status
    if current not in _ALLOWED_FROM[action]:
        raise StatusTransitionRefused(
            f"证件当前状态为“{current.value}”，不能{ACTION_LABELS[action]}",
            current_status=current.value,
            action=action.value,
        )
    target = _TARGET[action]
    credential.status, credential.status_reason, credential.status_changed_at = target, reason, now
    change = CredentialStatusChange(
        credential_id=credential.id,
        from_status=current,
        to_status=target,
        reason=reason,
        changed_by=principal.user_id,
        changed_at=now,
    )
    session.add(change)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="credential.status_changed",
        ref=f"credential:{credential.number}",
        data={
            "action": action.value,
            "from": current.value,
            "to": target.value,
            "reason": reason,
            "by": str(principal.user_id),
        },
        now=now,
    )
    return change


async def status_history(
    session: AsyncSession, credential_id: uuid.UUID
) -> list[CredentialStatusChange]:
    return list(
        await session.scalars(
            select(CredentialStatusChange)
            .where(CredentialStatusChange.credential_id == credential_id)
            .order_by(CredentialStatusChange.changed_at, CredentialStatusChange.id)
        )
    )


async def status_at(session: AsyncSession, credential: Credential, when: dt.datetime) -> str:
    """The effective status (有效 / 暂扣 / 注销 / 吊销 / 过期) the credential had at ``when``:
    for judging a past case action (第42条) after the status has changed since."""
    history = await status_history(session, credential.id)
    status = credential.status
    for change in reversed(history):
        if change.changed_at <= when:
            status = change.to_status
            break
        status = change.from_status
    if status is CredentialStatus.VALID and china_date(when) > credential.expires_on:
        return "过期"
    return status.value
