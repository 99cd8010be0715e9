"""Messages of the disclosure area: what it receives from the cases area, and what it shows.

``DecisionIssued`` and ``DecisionChanged`` reach ``services.record_decision`` / ``services.withdraw``
through the after-commit hook wired in server.app; every field added later needs a default.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec

ActKindName = Literal["行政许可", "行政处罚", "行政强制", "行政检查", "行政征收", "其他"]
ChangeKind = Literal["变更", "撤销", "确认违法", "确认无效"]
ChangeVia = Literal["本机关", "上级机关", "行政复议", "行政诉讼"]
WithholdKind = Literal["国家秘密", "商业秘密", "个人隐私", "危及安全稳定", "其他法定情形"]

Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Required = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Reason = Annotated[str, msgspec.Meta(min_length=2, max_length=2000)]
# 统一社会信用代码: 18 characters of the GB 32100 alphabet (no I, O, S, V, Z).
CreditCode = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")]


class Person(msgspec.Struct, frozen=True, tag="person", tag_field="type"):
    """A natural person (自然人). Decisions on minors are never published."""

    name: Required
    minor: bool = False


class Organisation(msgspec.Struct, frozen=True, tag="organisation", tag_field="type"):
    """法人或其他组织: name and 统一社会信用代码 are published as they are."""

    name: Required
    credit_code: CreditCode


class Withhold(msgspec.Struct, frozen=True):
    """The agency's mark that a decision must not be published, and why."""

    kind: WithholdKind
    reason: Reason


class DecisionIssued(msgspec.Struct, frozen=True, kw_only=True):
    case_id: uuid.UUID
    agency_id: uuid.UUID
    decision_number: Required
    decision_date: dt.date
    served_on: dt.date | None = None
    act_kind: ActKindName
    category: Required  # 执法类别
    subject: Person | Organisation  # 执法对象
    conclusion: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]  # 执法结论
    # A short class of the conclusion for the annual statistics: 罚款, 警告, 准予许可, 责令改正 …
    outcome: Short = ""
    basis: Text = ""  # published where the agency publishes it
    facts: Text = ""
    # Other natural persons named in the case (witnesses, legal representatives, relatives):
    # their names are removed, and the scanner holds anything that still names them.
    other_persons: list[Required] = msgspec.field(default_factory=list)
    withhold: Withhold | None = None
    legal_review: bool = False  # went through 法制审核
    hearing: bool = False  # a 听证 was held


class DecisionChanged(msgspec.Struct, frozen=True, kw_only=True):
    case_id: uuid.UUID
    agency_id: uuid.UUID
    decision_number: Required
    change: ChangeKind
    reason: Reason
    changed_on: dt.date
    via: ChangeVia = "本机关"


class PublicText(msgspec.Struct, frozen=True, kw_only=True):
    """Staff's corrected wording of a decision the scanner held (redacted and scanned again)."""

    conclusion: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    basis: Text = ""
    facts: Text = ""


class Exclusion(msgspec.Struct, frozen=True):
    kind: WithholdKind
    reason: Reason


class SettingsView(msgspec.Struct, frozen=True, kw_only=True):
    publish_lag_working_days: Annotated[int, msgspec.Meta(ge=0, le=6)] = 0
    report_due_month: Annotated[int, msgspec.Meta(ge=1, le=12)] = 1
    report_due_day: Annotated[int, msgspec.Meta(ge=1, le=31)] = 31


# --- what staff see --------------------------------------------------------------------------


class DecisionStatus(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    case_id: uuid.UUID
    decision_number: str
    act_kind: str
    category: str
    decision_date: dt.date
    served_on: dt.date | None
    state: str
    publish_on: dt.date
    due_on: dt.date
    due_fallback: bool
    overdue: bool
    overdue_flagged_at: dt.datetime | None
    hold_cause: str | None
    hold_reason: str
    exclusion_kind: str
    exclusion_reason: str
    published_at: dt.datetime | None
    record_id: int | None
    change_kind: str
    changed_on: dt.date | None
    withdraw_due_on: dt.date | None
    withdrawn_at: dt.datetime | None


class ReportStatus(msgspec.Struct, frozen=True):
    year: int
    due_on: dt.date
    published_at: dt.datetime | None
    overdue: bool


class Dashboard(msgspec.Struct, frozen=True, kw_only=True):
    agency_code: str
    today: dt.date
    counts: dict[str, int]
    overdue: list[DecisionStatus]
    held: list[DecisionStatus]
    due: list[DecisionStatus]
    recently_published: list[DecisionStatus]
    withdrawals: list[DecisionStatus]
    not_published: list[DecisionStatus]
    report: ReportStatus


class DecisionList(msgspec.Struct, frozen=True):
    items: list[DecisionStatus]
    limit: int
    offset: int


# --- what the public sees --------------------------------------------------------------------


class WithdrawalNotice(msgspec.Struct, frozen=True):
    withdrawn_on: dt.date
    change: str
    reason: str


class PublicDecisionSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    url: str
    agency_code: str
    agency_name: str
    decision_number: str
    decision_date: dt.date
    act_kind: str
    category: str
    subject: str
    conclusion: str
    published_on: dt.date
    status: Literal["已公开", "已撤下"]


class PublicDecision(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    url: str
    agency_code: str
    agency_name: str
    decision_number: str
    decision_date: dt.date
    act_kind: str
    category: str
    subject_type: str
    subject: str
    credit_code: str
    conclusion: str
    basis: str
    facts: str
    published_on: dt.date
    status: Literal["已公开", "已撤下"]
    withdrawal: WithdrawalNotice | None


class DecisionPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PublicDecisionSummary]
    limit: int
    offset: int
    # Keyset pagination: pass it back as ``cursor`` for the next page (None on the last page).
    next_cursor: str | None
    # Set when only words of one or two characters were given: they have no index, so they were
    # looked for among this many newest decisions (of the agency, in the date range).
    searched_newest: int | None = None


class WithdrawalSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    url: str
    agency_code: str
    agency_name: str
    decision_number: str
    decision_date: dt.date
    act_kind: str
    category: str
    withdrawal: WithdrawalNotice


class WithdrawalPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[WithdrawalSummary]
    limit: int
    offset: int


class AgencyView(msgspec.Struct, frozen=True):
    code: str
    name: str
    region: str


class RosterEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    credential_number: str
    unit: str
    categories: list[str]
    regions: list[str]
    status: str


class CatalogItem(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name: str
    category: str
    act_kind: str
    legal_basis: str


class ReviewCatalogEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the 重大执法决定法制审核目录清单, as the review area publishes it."""

    name: str
    category: str = ""
    criterion: str = ""
    basis: str = ""


class ReportSummary(msgspec.Struct, frozen=True, kw_only=True):
    agency_code: str
    agency_name: str
    year: int
    version: int
    published_at: dt.datetime
    url: str
