"""The sync protocol between a terminal and the server (DESIGN.md §4 Sync).

Push (``POST /api/sync/push``): a batch of events from the outbox. The server applies the batch in
one transaction and answers per event:

* ``accepted``  stored now; ``duplicate`` stored before (a replay: the stored result comes back);
* ``rejected``  refused with a stable ``code`` and a Chinese ``message`` (a procedural violation,
  or 422 when the id was already used for a different payload); the terminal moves it to its
  visible rejected list and goes on with the rest;
* ``deferred``  not stored yet because the server does not know the case (its opening is still on a
  partner's terminal); the event stays in the outbox and is pushed again later.

Pull (``GET /api/sync/pull?cursor=…``): reference data the terminal caches, as complete snapshots
of every kind that changed since the cursor, applied by the terminal only as one complete batch.
A pull may carry a resync order: the terminal then forgets its cached data and cursor, pushes every
event it holds again (the server answers ``duplicate`` for those it has) and acknowledges with
``ack_resync=<order id>`` on its next pull.

Every field added later MUST have a default, so older agents keep working.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

from mobile_api.contracts.events import ActKind, AwareTime, Event, Procedure

PUSH_PATH = "/api/sync/push"
PULL_PATH = "/api/sync/pull"
MAX_BATCH = 200

Outcome = Literal["accepted", "duplicate", "rejected", "deferred"]


class _Message(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    pass


class PushRequest(_Message, kw_only=True, frozen=True):
    events: Annotated[list[Event], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class EventResult(_Message, kw_only=True, frozen=True):
    id: uuid.UUID
    outcome: Outcome
    status: int = 200  # the HTTP status this event alone would have had (422: id reused)
    code: str = ""
    message: str = ""
    recorded_at: dt.datetime | None = None  # server time the event was first stored


class PushResponse(_Message, kw_only=True, frozen=True):
    results: list[EventResult]
    server_time: AwareTime


# --- reference data -----------------------------------------------------------------------------

RefKind = Literal[
    "credential", "enforcement_item", "calendar_year", "case", "review_outcome", "template"
]
REF_KINDS: tuple[RefKind, ...] = (
    "credential",
    "enforcement_item",
    "calendar_year",
    "case",
    "review_outcome",
    "template",
)


class CredentialRef(_Message, tag="credential", tag_field="type", kw_only=True, frozen=True):
    """A credential of the agency with its status today (有效 / 暂扣 / 注销 / 吊销 / 过期)."""

    number: str
    officer_name: str
    unit: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    status: str

    @property
    def key(self) -> str:
        return self.number


class EnforcementItemRef(
    _Message, tag="enforcement_item", tag_field="type", kw_only=True, frozen=True
):
    """An entry of the agency's catalog of enforcement items (执法事项清单)."""

    code: str
    name: str
    category: str
    act_kind: ActKind
    legal_basis: str

    @property
    def key(self) -> str:
        return self.code


class CalendarYearRef(_Message, tag="calendar_year", tag_field="type", kw_only=True, frozen=True):
    """One year's holiday arrangement, as a year file (server.core.calendar.year_file_text)."""

    year: int
    text: str

    @property
    def key(self) -> str:
        return str(self.year)


class CaseRef(_Message, tag="case", tag_field="type", kw_only=True, frozen=True):
    """An open case the officer works on, so a partner can continue it from his own terminal."""

    case_id: uuid.UUID
    title: str
    procedure: Procedure
    item_code: str
    category: str
    region: str
    act_kind: ActKind
    officers: list[str]
    state: str
    opened_at: dt.datetime
    last_hlc: str = ""  # the terminal's clock moves past it, so its next event sorts after

    @property
    def key(self) -> str:
        return str(self.case_id)


class ReviewOutcomeRef(_Message, tag="review_outcome", tag_field="type", kw_only=True, frozen=True):
    """The legal review outcome (审核意见) of one of the officer's cases; sent by the review area."""

    case_id: uuid.UUID
    outcome: str
    opinion: str = ""
    decided_at: dt.datetime | None = None
    state: str = ""  # 无需审核 / 待送审 / 待审核 / 审核中 / 待补充材料 / 已退回 / 协调中 / 审核通过
    major: bool = False
    allowed: bool = False  # the final decision may be printed and served now
    reasons: list[str] = msgspec.field(default_factory=list)  # why it is major, why it is blocked
    round: int = 0
    problems: list[str] = msgspec.field(default_factory=list)  # of a 存在问题 opinion
    request: str = ""  # materials to add (补充材料), or the reason an escalation was raised
    due_on: dt.date | None = None  # by when to add them

    @property
    def key(self) -> str:
        return str(self.case_id)


class TemplateRef(_Message, tag="template", tag_field="type", kw_only=True, frozen=True):
    """A document template (文书模板) for the terminal to fill and print."""

    name: str
    version: str
    body: str

    @property
    def key(self) -> str:
        return self.name


Reference = (
    CredentialRef | EnforcementItemRef | CalendarYearRef | CaseRef | ReviewOutcomeRef | TemplateRef
)


class Snapshot(_Message, kw_only=True, frozen=True):
    """Everything of one kind: the terminal replaces what it cached of that kind with ``items``."""

    kind: RefKind
    items: list[Reference] = msgspec.field(default_factory=list)


class ResyncOrder(_Message, kw_only=True, frozen=True):
    id: uuid.UUID
    ordered_at: dt.datetime
    reason: str = ""


class PullResponse(_Message, kw_only=True, frozen=True):
    cursor: str
    server_time: AwareTime
    credential_number: str  # the officer who is logged in
    snapshots: list[Snapshot] = msgspec.field(default_factory=list)
    resync: ResyncOrder | None = None
