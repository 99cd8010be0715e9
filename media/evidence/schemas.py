"""Messages of the evidence API (staff console)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import msgspec

Purpose = Literal["play", "download"]


class EvidenceView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    recording_id: str  # the terminal's id of the recording
    agency_id: str
    terminal_id: str
    case_id: str | None
    size: int
    sha256: str
    chain_head: str
    segments: int
    container: str
    video_codec: str
    audio_codec: str | None
    width: int
    height: int
    duration_s: float
    recorded_from: dt.datetime | None
    recorded_until: dt.datetime | None
    officers: list[str]
    sealed_at: dt.datetime
    retain_until: dt.datetime
    permanent: bool
    seal_enforced_by: str


class AccessRequest(msgspec.Struct, frozen=True):
    purpose: Purpose = "play"


class AccessGrant(msgspec.Struct, frozen=True, kw_only=True):
    """A ticket URL for the content, valid until ``expires_at``; the access is already logged."""

    url: str
    purpose: Purpose
    expires_at: dt.datetime
    ledger_seq: int


class CaseLink(msgspec.Struct, frozen=True, kw_only=True):
    case_id: uuid.UUID | None
    # Used as evidence in the case: kept for good from now on (cannot be undone).
    used_as_evidence: bool = False


class AccessRecord(msgspec.Struct, frozen=True, kw_only=True):
    ledger_seq: int
    at: dt.datetime
    user_id: str
    username: str
    display_name: str
    purpose: str
