"""Request and response bodies of the credential endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec

from mobile_api.credentials.services import StatusAction

Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=500)]


class VerificationView(msgspec.Struct, frozen=True, kw_only=True):
    """What the party's phone learns from a genuine, current code: exactly what 亮证 shows."""

    genuine: bool = True
    status: str  # 有效 / 暂扣 / 注销 / 吊销 / 过期, read live
    valid: bool
    name: str
    credential_number: str
    agency: str
    unit: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    photo_url: str | None
    code_issued_at: dt.datetime
    code_expires_at: dt.datetime
    checked_at: dt.datetime


class StatusChangeRequest(msgspec.Struct, frozen=True):
    action: StatusAction
    reason: Reason


class StatusChangeView(msgspec.Struct, frozen=True):
    from_status: str
    to_status: str
    reason: str
    changed_by: str
    changed_at: dt.datetime


class CredentialAdminView(msgspec.Struct, frozen=True, kw_only=True):
    credential_number: str
    name: str
    unit: str
    agency: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    status: str  # effective: 过期 when past the expiry date
    status_reason: str
    status_changed_at: dt.datetime | None
    history: list[StatusChangeView]
