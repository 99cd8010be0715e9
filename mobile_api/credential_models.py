"""Tables of the e-credential (亮证): scans of the public page, status history and signed status
lists."""

from __future__ import annotations

import datetime as dt
import enum
import uuid

from sqlalchemy import Enum, ForeignKey, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base, CredentialStatus, new_id


class ScanOutcome(enum.StrEnum):
    VALID = "valid"  # genuine and within its lifetime: the page showed the credential
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    NOT_GENUINE = "not_genuine"


class CredentialScan(Base):
    """One opening of the public verification page (HTML or JSON). Coarse client data only."""

    __tablename__ = "credential_scans"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    scanned_at: Mapped[dt.datetime] = mapped_column(index=True)
    outcome: Mapped[ScanOutcome] = mapped_column(Enum(ScanOutcome, native_enum=False, length=20))
    # Set only when the signature verified: a forged code names no credential we trust.
    credential_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("credentials.id"), index=True
    )
    code_issued_at: Mapped[dt.datetime | None]
    client_family: Mapped[str] = mapped_column(String(40))  # e.g. "wechat/android"
    client_network: Mapped[str] = mapped_column(String(50))  # /24 (IPv4) or /48 (IPv6)


class PendingScanAnnouncement(Base):
    """A scan of a genuine, current code of an officer who had an open case, whose 亮证 event is
    not written yet. Written with the scan, deleted in the transaction that writes the event: a
    failed write is retried from here (the scan row itself stays as the record of the scan)."""

    __tablename__ = "credential_scan_announcements"
    scan_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credential_scans.id"), primary_key=True)
    code_nonce: Mapped[bytes] = mapped_column(LargeBinary)  # one showing of the code: one 亮证


class CredentialStatusChange(Base):
    """暂扣 / 注销 / 吊销 / 恢复 of a credential, with the reason and who did it."""

    __tablename__ = "credential_status_changes"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    credential_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credentials.id"), index=True)
    from_status: Mapped[CredentialStatus] = mapped_column(
        Enum(CredentialStatus, native_enum=False, length=10)
    )
    to_status: Mapped[CredentialStatus] = mapped_column(
        Enum(CredentialStatus, native_enum=False, length=10)
    )
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    changed_at: Mapped[dt.datetime]


class CredentialStatusList(Base):
    """The agency's current signed status list, re-signed when a status changes or it ages."""

    __tablename__ = "credential_status_lists"
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    issued_at: Mapped[dt.datetime]
    size: Mapped[int] = mapped_column(Integer)
    statuses: Mapped[bytes] = mapped_column(LargeBinary)  # packed, uncompressed: compared as is
    kid: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # the JWS served to terminals
    etag: Mapped[str] = mapped_column(String(64))
