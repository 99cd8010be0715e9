"""What staff read about cases: the list and the whole case file (案卷)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from mobile_api.cases.assembly import CaseFile, Flaw
from mobile_api.cases.review import DeadlineView
from mobile_api.cases.rules import CaseRules


class CaseSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    title: str
    procedure: str
    item_code: str
    category: str
    region: str
    act_kind: str
    state: str
    opened_at: dt.datetime
    updated_at: dt.datetime
    next_due: dt.date | None
    overdue: bool
    officers: list[str]
    flaws: int = 0  # findings of the machine case review (案卷评查) as of today


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    label: str  # the action in Chinese
    hlc: str
    terminal_time: dt.datetime  # the terminal's clock, as it read
    recorded_at: dt.datetime  # server time
    terminal_id: uuid.UUID
    officers: list[str]
    event: msgspec.Raw  # the event as pushed (canonical JSON)
    terminal: str = ""  # the terminal's name
    summary: str = ""  # what was done, in Chinese


class RejectedEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str
    label: str
    code: str
    message: str
    recorded_at: dt.datetime
    terminal_id: uuid.UUID
    terminal: str = ""


class CaseFileView(msgspec.Struct, frozen=True, kw_only=True):
    file: CaseFile
    deadlines: list[DeadlineView]
    flaws: list[Flaw]
    timeline: list[TimelineEntry]
    rejected: list[RejectedEntry]


class RulesView(msgspec.Struct, frozen=True, kw_only=True):
    agency_code: str
    rules: CaseRules
