"""Tables of the media area: recordings announced by terminals, tus uploads, sealed evidence."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import BigInteger, Enum, Float, ForeignKey, Integer, String, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base, new_id


class RecordingStatus(enum.StrEnum):
    PENDING = "pending"  # announced, not (yet) sealed
    SEALED = "sealed"
    REJECTED = "rejected"  # the last complete upload failed verification; may be sent again


class UploadStatus(enum.StrEnum):
    RECEIVING = "receiving"
    COMPLETE = "complete"  # every byte is in; verification and sealing pending
    SEALED = "sealed"
    REJECTED = "rejected"


class Recording(Base):
    """A recording a terminal announced: its signed segment chain and what it says about itself."""

    __tablename__ = "media_recordings"
    __table_args__ = (UniqueConstraint("terminal_id", "recording_key"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # The terminal's own id of the recording, the input of the chain's genesis link.
    recording_key: Mapped[str] = mapped_column(String(100))
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"), index=True)
    registered_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    # The manifest as sent (chain log and recording metadata) and the hash of its canonical form,
    # so a repeated announcement can be told apart from a different one under the same id.
    manifest: Mapped[dict[str, Any]]
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[RecordingStatus] = mapped_column(
        Enum(RecordingStatus, native_enum=False, length=16), default=RecordingStatus.PENDING
    )
    problems: Mapped[list[str]]
    registered_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class Upload(Base):
    """One upload (tus, or direct to S3). Everything an instance needs to take it over lives here."""

    __tablename__ = "media_uploads"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media_recordings.id"), index=True)
    # The recording's terminal, here too: every PATCH checks it without reading the recording.
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"))
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # SHA-256 of the committed bytes [0, offset): checks a re-hash when another instance resumes.
    prefix_sha256: Mapped[str] = mapped_column(String(64))
    tus_metadata: Mapped[dict[str, Any]]
    storage_key: Mapped[str] = mapped_column(String(300))
    status: Mapped[UploadStatus] = mapped_column(
        Enum(UploadStatus, native_enum=False, length=16), default=UploadStatus.RECEIVING
    )
    created_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    completed_at: Mapped[dt.datetime | None]
    # Lease: the one request allowed to write (or seal) right now, and until when.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[dt.datetime | None]
    # Direct uploads (media.ingest.direct): the S3 multipart upload the terminal sends parts to,
    # and its part size; None for tus uploads, whose bytes come through us.
    direct_upload_id: Mapped[str | None] = mapped_column(String(1024))
    part_bytes: Mapped[int | None] = mapped_column(BigInteger)


class Evidence(Base):
    """A sealed recording: verified, probed, write-once in the store, in the ledger."""

    __tablename__ = "media_evidence"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    # Unique: a recording becomes evidence exactly once, however often it was uploaded.
    recording_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("media_recordings.id"), unique=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"), index=True)
    # The case (案件) as the terminal names it; cases are another area, so a plain column.
    case_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    storage_backend: Mapped[str] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    chain_head: Mapped[str] = mapped_column(String(64))
    segments: Mapped[int] = mapped_column(Integer)
    container: Mapped[str] = mapped_column(String(32))
    video_codec: Mapped[str] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    recorded_from: Mapped[dt.datetime | None]
    recorded_until: Mapped[dt.datetime | None]
    # Credential numbers (证号) of the officers present, as the terminal recorded them.
    officers: Mapped[list[str]]
    sealed_at: Mapped[dt.datetime]
    retain_until: Mapped[dt.datetime]
    # Set once the recording is used as evidence in a case: kept for good (legal hold).
    permanent_since: Mapped[dt.datetime | None]
    seal_enforced_by: Mapped[str] = mapped_column(String(32))
