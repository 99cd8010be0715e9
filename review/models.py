"""Tables of the review area (法制审核). Created by migration ``0006_review``.

A case is known here by its id only: the case area owns the case, review owns the review record,
its rounds and escalations, and the agencies' catalogs (目录清单) and discretion benchmarks (裁量基准).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base, new_id


class ReviewRuleFile(Base):
    """One loaded version of an agency's catalog or benchmark file, kept verbatim.

    ``seq`` orders the versions of one agency and kind; the highest is in force. Old versions stay
    so that every routing can name the version it was made under.
    """

    __tablename__ = "review_rule_files"
    __table_args__ = (
        UniqueConstraint("agency_id", "kind", "version"),
        UniqueConstraint("agency_id", "kind", "seq"),
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # catalog | benchmarks
    version: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[dt.datetime]
    loaded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id"))


class ReviewCase(Base):
    """The review record of one case: routing result, state, current round and deadline.

    ``case_file`` is the case file as last handed over with a proposed decision; ``proposal``
    and its fingerprint say which decision the routing (and any approval) is about.
    """

    __tablename__ = "review_cases"
    __table_args__ = (Index("ix_review_cases_agency_id_state", "agency_id", "state"),)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    case_number: Mapped[str] = mapped_column(String(200), default="")
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(20))
    major: Mapped[bool]
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    catalog_version: Mapped[str] = mapped_column(String(64))
    benchmark: Mapped[dict[str, Any]] = mapped_column(JSON)
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON)
    proposal_fingerprint: Mapped[str] = mapped_column(String(64))
    case_file: Mapped[dict[str, Any]] = mapped_column(JSON)
    routed_at: Mapped[dt.datetime]
    current_round: Mapped[int] = mapped_column(Integer, default=0)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id"))
    due_on: Mapped[dt.date | None] = mapped_column(Date, index=True)
    approved_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    approved_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime]


class ReviewRound(Base):
    """One submission and what the reviewer made of it. Rounds are never rewritten once decided."""

    __tablename__ = "review_rounds"
    __table_args__ = (UniqueConstraint("case_id", "number"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("review_cases.case_id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[dt.datetime]
    submitted_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    note: Mapped[str] = mapped_column(Text, default="")
    # The case file as submitted, with the routing and discretion check made on it.
    materials: Mapped[dict[str, Any]] = mapped_column(JSON)
    matches: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    benchmark: Mapped[dict[str, Any]] = mapped_column(JSON)
    catalog_version: Mapped[str] = mapped_column(String(64))
    due_on: Mapped[dt.date] = mapped_column(Date)
    due_fallback: Mapped[bool] = mapped_column(default=False)
    reviewer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id"))
    taken_at: Mapped[dt.datetime | None]
    checklist: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(String(20))
    opinion: Mapped[str] = mapped_column(Text, default="")
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    supplement_request: Mapped[str] = mapped_column(Text, default="")
    supplement_due: Mapped[dt.date | None] = mapped_column(Date)
    decided_at: Mapped[dt.datetime | None]


class ReviewEscalation(Base):
    """协调机制: handler and reviewer disagree; the agency's responsible person decides."""

    __tablename__ = "review_escalations"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("review_cases.case_id", ondelete="CASCADE"), index=True
    )
    round: Mapped[int] = mapped_column(Integer)
    raised_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    side: Mapped[str] = mapped_column(String(20))  # 承办机构 | 法制审核机构
    reason: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[dt.datetime]
    outcome: Mapped[str | None] = mapped_column(String(20))
    decision: Mapped[str] = mapped_column(Text, default="")
    responsible_person: Mapped[str] = mapped_column(String(200), default="")
    recorded_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("staff_users.id"))
    decided_at: Mapped[dt.datetime | None]
