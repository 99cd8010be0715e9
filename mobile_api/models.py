"""Tables of the terminal-facing area: case events as pushed, the cases assembled from them, the
per-agency procedure rules and the server's resync orders. Created by migration ``0002_cases``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.core.models import Base, new_id


class CaseEvent(Base):
    """One pushed event and the result the server gave it, accepted or rejected.

    The event id is the primary key: idempotency is a key, not a cache. A replay finds the row and
    gets ``outcome``/``code``/``message`` back; the same id with other bytes is told apart by
    ``payload_sha256``. Rejected events are kept too, so their replay answers the same.
    """

    __tablename__ = "case_events"
    __table_args__ = (Index("ix_case_events_case_id_hlc", "case_id", "hlc"),)
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    case_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"))
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"))
    pushed_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    kind: Mapped[str] = mapped_column(String(40))
    hlc: Mapped[str] = mapped_column(String(64))
    terminal_time: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime]  # server time: the only time a legal date is taken from
    outcome: Mapped[str] = mapped_column(String(16))  # accepted | rejected
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    # Canonical JSON (mobile_api.contracts.events.canonical_bytes) and its SHA-256, hex.
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_sha256: Mapped[str] = mapped_column(String(64))


class Case(Base):
    """A case (案件) and its case file (案卷) as derived from the accepted events.

    ``file`` holds the derived state (mobile_api.cases.assembly.CaseFile); the columns beside it
    are copies made for filtering in SQL. ``next_due`` is the earliest deadline not yet met.
    """

    __tablename__ = "cases"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    procedure: Mapped[str] = mapped_column(String(20))
    item_code: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(200))
    act_kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), index=True)
    opened_at: Mapped[dt.datetime]
    updated_at: Mapped[dt.datetime]
    next_due: Mapped[dt.date | None] = mapped_column(Date, index=True)
    file: Mapped[dict[str, Any]] = mapped_column(JSON)


class CaseOfficer(Base):
    """Who worked on a case (by 证号), for the officer filter and for partners' pulls."""

    __tablename__ = "case_officers"
    case_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True
    )
    credential_number: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class CaseRuleSet(Base):
    """An agency's procedure settings; agencies without a row get ``CaseRules()`` defaults."""

    __tablename__ = "case_rule_sets"
    agency_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agencies.id"), primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[dt.datetime]


class ResyncOrder(Base):
    """A full resync the server ordered for one terminal; done when the terminal acknowledges it."""

    __tablename__ = "resync_orders"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_id)
    terminal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("terminals.id"), index=True)
    ordered_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("staff_users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")
    ordered_at: Mapped[dt.datetime]
    acknowledged_at: Mapped[dt.datetime | None]
