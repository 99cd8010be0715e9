"""Tables of the disclosure area (公示). Migration: server/app/migrations/versions/0007_disclosure.py.

Private and public data live apart: ``disclosure_decisions`` keeps what the cases area sent (full
names included) and the schedule; ``disclosure_records`` holds only the redacted, scanned text the
public may read, so no portal query ever touches private columns.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import ActKind, Base, new_id

# SQLite makes an INTEGER PRIMARY KEY the rowid, which the FTS5 index of the records points at.
RecordId = BigInteger().with_variant(Integer(), "sqlite")


class DecisionState(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its publication day
    HELD = "held"  # due, but the review gate or the PII scanner stopped it: flagged for staff
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"  # was public; a withdrawal notice stays public
    EXCLUDED = "excluded"  # never to be published (marked by the agency, or a minor)
    CANCELLED = "cancelled"  # changed/revoked before it was published: nothing to withdraw


class HoldCause(enum.StrEnum):
    REVIEW = "review"  # the review gate refused; asked again at every run
    SCANNER = "scanner"  # the redacted text failed the PII scanner; staff must correct or exclude


class DisclosureSettings(Base):
    """Per-agency choices within the law: publish sooner than the deadline, report date."""

    __tablename__ = "disclosure_settings"
    agency_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
    )
    # Working days after service; 0 = on the day the decision is served. Never past the deadline.
    publish_lag_working_days: Mapped[int] = mapped_column(Integer, default=0)
    # The previous year's statistics must be public by this day of January..December.
    report_due_month: Mapped[int] = mapped_column(Integer, default=1)
    report_due_day: Mapped[int] = mapped_column(Integer, default=31)
    updated_at: Mapped[dt.datetime]


class DisclosureDecision(Base):
    """A decision received from the cases area, with its publication schedule and fate."""

    __tablename__ = "disclosure_decisions"
    __table_args__ = (
        UniqueConstraint("agency_id", "decision_number"),
        Index("ix_disclosure_decisions_state_publish_on", "state", "publish_on"),
        Index("ix_disclosure_decisions_agency_id_state", "agency_id", "state"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    decision_number: Mapped[str] = mapped_column(String(100))
    decision_date: Mapped[dt.date] = mapped_column(Date, index=True)
    served_on: Mapped[dt.date | None] = mapped_column(Date)
    act_kind: Mapped[ActKind] = mapped_column(Enum(ActKind, native_enum=False, length=20))
    category: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(50))
    # The event as received (msgspec JSON of DecisionIssued): private, never rendered publicly.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    # Staff corrections of the public text after the scanner held it (facts/basis/conclusion).
    public_text: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    legal_review: Mapped[bool] = mapped_column(Boolean, default=False)
    hearing: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[DecisionState] = mapped_column(Enum(DecisionState, native_enum=False, length=20))
    due_on: Mapped[dt.date] = mapped_column(Date)
    # True when the deadline was counted over a year without a calendar (every day counted).
    due_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    publish_on: Mapped[dt.date] = mapped_column(Date)
    hold_cause: Mapped[HoldCause | None] = mapped_column(
        Enum(HoldCause, native_enum=False, length=20)
    )
    hold_reason: Mapped[str] = mapped_column(Text, default="")
    held_at: Mapped[dt.datetime | None]
    overdue_flagged_at: Mapped[dt.datetime | None]
    # Why it is not published: 国家秘密 / 商业秘密 / 个人隐私 / 未成年人 …, with the agency's words.
    exclusion_kind: Mapped[str] = mapped_column(String(50), default="")
    exclusion_reason: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[dt.datetime | None]
    change_kind: Mapped[str] = mapped_column(String(20), default="")
    change_via: Mapped[str] = mapped_column(String(20), default="")
    change_reason: Mapped[str] = mapped_column(Text, default="")
    changed_on: Mapped[dt.date | None] = mapped_column(Date)
    withdraw_due_on: Mapped[dt.date | None] = mapped_column(Date)
    withdraw_due_fallback: Mapped[bool] = mapped_column(Boolean, default=False)
    withdrawn_at: Mapped[dt.datetime | None]
    received_at: Mapped[dt.datetime]


class DisclosureRecord(Base):
    """What the public reads: redacted and scanned. ``id`` orders the portal (decision date first).

    ``id = decision_date.toordinal() << 20 | n``: newest decisions first with one index, a date range
    is an id range, and it is the FTS5 rowid on SQLite. On SQLite, triggers created by the
    migration keep ``disclosure_records_fts`` in step with ``search_text``; a later batch migration
    that rebuilds this table must create them again.
    """

    __tablename__ = "disclosure_records"
    __table_args__ = (
        # Counting back the newest rows (short-word window) reads these, not the wide rows.
        Index("ix_disclosure_records_status_id", "status", "id"),
        Index("ix_disclosure_records_agency_id_status_id", "agency_id", "status", "id"),
        Index("ix_disclosure_records_act_kind_status_id", "act_kind", "status", "id"),
        Index("ix_disclosure_records_category_status_id", "category", "status", "id"),
        Index("ix_disclosure_records_status_withdrawn_at", "status", "withdrawn_at"),
    )
    id: Mapped[int] = mapped_column(RecordId, primary_key=True, autoincrement=False)
    decision_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("disclosure_decisions.id"), unique=True
    )
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    agency_code: Mapped[str] = mapped_column(String(64))
    agency_name: Mapped[str] = mapped_column(String(200))
    decision_number: Mapped[str] = mapped_column(String(100))
    decision_date: Mapped[dt.date] = mapped_column(Date)
    act_kind: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(String(100))
    subject_type: Mapped[str] = mapped_column(String(20))
    subject: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str] = mapped_column(String(18), default="")
    conclusion: Mapped[str] = mapped_column(Text)
    basis: Mapped[str] = mapped_column(Text, default="")
    facts: Mapped[str] = mapped_column(Text, default="")
    published_on: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))  # "published" | "withdrawn"
    withdrawn_at: Mapped[dt.datetime | None]
    withdrawn_on: Mapped[dt.date | None] = mapped_column(Date)
    withdrawal_kind: Mapped[str] = mapped_column(String(20), default="")
    withdrawal_reason: Mapped[str] = mapped_column(Text, default="")
    # What word search looks in; emptied on withdrawal so withdrawn text is no longer found.
    search_text: Mapped[str] = mapped_column(Text, default="")


class AnnualReport(Base):
    """统计年报 of one agency and year, public once generated; refreshed until its due day."""

    __tablename__ = "disclosure_annual_reports"
    __table_args__ = (UniqueConstraint("agency_id", "year"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    year: Mapped[int] = mapped_column(Integer)
    due_on: Mapped[dt.date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer, default=1)
    statistics: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]


class JobLease(Base):
    """Who runs a background job right now. Any instance may take an expired lease."""

    __tablename__ = "job_leases"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[dt.datetime]
    last_started_at: Mapped[dt.datetime | None]
    last_finished_at: Mapped[dt.datetime | None]
