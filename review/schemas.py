"""Messages of the review area: the case file as review reads it, and what review answers.

``ReviewCaseFile`` is the small interface between cases and review: ``server.app`` hands one over
(from the case area) when a decision is proposed and when a case is submitted; review keeps a copy
of what each round was given, so a later change of the case never rewrites what was reviewed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

import msgspec

from mobile_api.contracts.events import Penalty

Text = Annotated[str, msgspec.Meta(max_length=20_000)]
Short = Annotated[str, msgspec.Meta(max_length=500)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Circumstance = Literal["轻微", "一般", "较重", "严重"]
CIRCUMSTANCES: tuple[str, ...] = ("轻微", "一般", "较重", "严重")


class _Struct(msgspec.Struct, kw_only=True, frozen=True):
    pass


# --- the case file, as review reads it ----------------------------------------------------------


class CaseOfficer(_Struct, kw_only=True, frozen=True):
    """An officer who acted on the case; ``officer_id`` when the case area knows it."""

    number: Name  # 证号
    name: Short = ""
    officer_id: uuid.UUID | None = None


class CaseParty(_Struct, kw_only=True, frozen=True):
    type: Literal["person", "organisation"]
    name: Name
    id_code: Short = ""  # 身份证号 or 统一社会信用代码
    minor: bool = False


class TimelineEntry(_Struct, kw_only=True, frozen=True):
    at: dt.datetime
    label: Short  # e.g. 立案, 送达权利告知书
    summary: Text = ""
    officers: list[str] = msgspec.field(default_factory=list)


class EvidenceItem(_Struct, kw_only=True, frozen=True):
    id: Name
    kind: Short  # 音像记录, 照片, 书证 ...
    description: Short = ""
    media_type: Short = ""  # video/mp4, image/jpeg ...; empty when not playable in a browser
    playback_url: Short = ""  # may be short-lived; the console asks the source again to play
    sha256: Short = ""
    recorded_at: dt.datetime | None = None


class CaseDocument(_Struct, kw_only=True, frozen=True):
    name: Name  # 权利告知书, 行政处罚决定书（草稿） ...
    number: Short = ""
    status: Short = ""  # 草稿, 已送达 ...
    dated: dt.date | None = None
    url: Short = ""


class ProposedDecision(_Struct, kw_only=True, frozen=True):
    """The decision the handling unit proposes; routing and the discretion check read it."""

    penalties: Annotated[list[Penalty], msgspec.Meta(min_length=1, max_length=16)]
    fine_yuan: Decimal = Decimal(0)
    confiscation_yuan: Decimal = Decimal(0)  # value of 没收违法所得 and 没收非法财物
    violation: Short = ""  # 违法行为 code of the discretion benchmarks (usually the item code)
    violation_name: Short = ""
    circumstance: Circumstance | None = None  # 违法情节
    facts: Text = ""
    legal_basis: Text = ""
    discretion_basis: Text = ""  # the discretion standard the handler says he applied

    def __post_init__(self) -> None:
        if self.fine_yuan < 0 or self.confiscation_yuan < 0:
            raise ValueError("罚款和没收金额不能为负数")

    def fingerprint(self) -> str:
        """What an approval is bound to: another decision needs another review."""
        document = msgspec.to_builtins(self)
        # 5000 and 5000.00 are the same fine
        document["fine_yuan"] = str(self.fine_yuan.normalize())
        document["confiscation_yuan"] = str(self.confiscation_yuan.normalize())
        return hashlib.sha256(msgspec.json.encode(document, order="sorted")).hexdigest()


class ReviewCaseFile(_Struct, kw_only=True, frozen=True):
    case_id: uuid.UUID
    agency_id: uuid.UUID
    case_number: Short = ""  # 案号
    title: Name
    category: Name  # 执法类别
    item_code: Short = ""  # 执法事项
    region: Short = ""
    procedure: Short = ""  # 立案 / 当场处理
    officers: Annotated[list[CaseOfficer], msgspec.Meta(max_length=50)] = msgspec.field(
        default_factory=list
    )
    parties: list[CaseParty] = msgspec.field(default_factory=list)
    timeline: list[TimelineEntry] = msgspec.field(default_factory=list)
    evidence: list[EvidenceItem] = msgspec.field(default_factory=list)
    documents: list[CaseDocument] = msgspec.field(default_factory=list)
    proposal: ProposedDecision
    hearing_held: bool = False  # 经过听证程序
    complex: bool = False  # 案情疑难复杂、涉及多个法律关系
    public_interest: bool = False  # 涉及重大公共利益、可能造成重大社会影响
    law_requires: Short = ""  # the provision that requires review, when the handler names one
    handling_unit: Short = ""  # 承办机构


# --- routing and discretion ---------------------------------------------------------------------


class RuleMatch(_Struct, kw_only=True, frozen=True):
    """One catalog rule a proposed decision matched: why the decision is major."""

    rule_id: str
    kind: str
    label: str
    detail: str
    basis: str = ""


class BenchmarkRow(_Struct, kw_only=True, frozen=True):
    """One row of a discretion benchmark table (裁量基准): violation × circumstance → range."""

    id: str
    violation: str
    name: str
    circumstance: Circumstance
    penalties: list[Penalty]
    fine_min_yuan: Decimal | None = None
    fine_max_yuan: Decimal | None = None
    basis: str = ""
    note: str = ""

    @property
    def fine_range(self) -> str:
        low = f"{self.fine_min_yuan:,}" if self.fine_min_yuan is not None else "不限"
        high = f"{self.fine_max_yuan:,}" if self.fine_max_yuan is not None else "不限"
        return f"{low}–{high} 元"


class BenchmarkStatus(StrEnum):
    WITHIN = "符合裁量基准"
    OUTSIDE = "超出裁量基准"
    NO_ROW = "无对应裁量基准"
    NO_TABLE = "未制定裁量基准"


class BenchmarkCheck(_Struct, kw_only=True, frozen=True):
    status: BenchmarkStatus
    version: str = ""
    row: BenchmarkRow | None = None
    problems: list[str] = msgspec.field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return self.status is BenchmarkStatus.OUTSIDE


# --- review states and outcomes -----------------------------------------------------------------


class ReviewState(StrEnum):
    NOT_REQUIRED = "无需审核"
    AWAITING = "待送审"
    QUEUED = "待审核"
    IN_REVIEW = "审核中"
    SUPPLEMENT = "待补充材料"
    RETURNED = "已退回"
    ESCALATED = "协调中"
    APPROVED = "审核通过"


OPEN_STATES = frozenset({ReviewState.QUEUED, ReviewState.IN_REVIEW})


class Outcome(StrEnum):
    AGREE = "同意"
    PROBLEMS = "存在问题"
    SUPPLEMENT = "补充材料"
    WITHDRAWN = "已撤回"  # the proposal changed while the round was open


class EscalationOutcome(StrEnum):
    KEEP_OPINION = "维持审核意见"  # the case goes back to the handling unit
    DECIDE = "同意作出决定"  # the responsible person decides for the proposed decision


class CheckItem(_Struct, kw_only=True, frozen=True):
    key: str
    label: str
    hint: str
    # The answer that lets a decision pass; the other one is a problem that must be described.
    pass_answer: str = "符合"
    fail_answer: str = "存在问题"


CHECKLIST: tuple[CheckItem, ...] = (
    CheckItem(key="subject", label="执法主体合法", hint="作出决定的机关是否具有法定执法主体资格"),
    CheckItem(key="staff", label="人员资格", hint="承办人员是否持有效执法证件、类别与区域是否相符"),
    CheckItem(key="authority", label="权限", hint="是否超越法定职权、地域和级别管辖"),
    CheckItem(key="procedure", label="程序合法", hint="立案、调查、告知、陈述申辩、听证等程序"),
    CheckItem(key="facts", label="事实清楚、证据合法充分", hint="事实是否清楚，证据是否合法、充分"),
    CheckItem(key="law", label="法律适用准确", hint="适用的法律、法规、规章条款是否准确"),
    CheckItem(key="discretion", label="裁量基准适当", hint="处罚种类和幅度是否符合裁量基准"),
    CheckItem(key="documents", label="文书完备规范", hint="执法文书是否齐备、规范"),
    CheckItem(
        key="transfer",
        label="是否涉嫌犯罪需移送",
        hint="违法行为是否涉嫌犯罪需要移送司法机关，违纪违规是否需移送纪检监察机关",
        pass_answer="无需移送",
        fail_answer="需要移送",
    ),
)
CHECK_ITEMS = {item.key: item for item in CHECKLIST}


class CheckAnswer(_Struct, kw_only=True, frozen=True):
    answer: Short
    note: Short = ""


class Problem(_Struct, kw_only=True, frozen=True):
    """One problem of a 存在问题 opinion, tied to the checklist item it fails (or "" for others)."""

    item: Short = ""
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


# --- API views ----------------------------------------------------------------------------------


class RoundView(_Struct, kw_only=True, frozen=True):
    number: int
    submitted_at: dt.datetime
    submitted_by: str
    note: str
    due_on: dt.date
    due_fallback: bool
    reviewer: str | None
    taken_at: dt.datetime | None
    checklist: dict[str, CheckAnswer]
    outcome: str | None
    opinion: str
    problems: list[Problem]
    supplement_request: str
    supplement_due: dt.date | None
    decided_at: dt.datetime | None


class EscalationView(_Struct, kw_only=True, frozen=True):
    round: int
    raised_by: str
    side: str
    reason: str
    raised_at: dt.datetime
    outcome: str | None
    decision: str
    responsible_person: str
    recorded_by: str | None
    decided_at: dt.datetime | None


class ReviewView(_Struct, kw_only=True, frozen=True):
    case_id: uuid.UUID
    case_number: str
    title: str
    state: str
    major: bool
    matches: list[RuleMatch]
    catalog_version: str
    benchmark: BenchmarkCheck
    proposal: ProposedDecision
    routed_at: dt.datetime
    reviewer_id: uuid.UUID | None
    reviewer: str | None
    due: DueStatus | None
    rounds: list[RoundView]
    escalations: list[EscalationView]


class DueStatus(_Struct, kw_only=True, frozen=True):
    due_on: dt.date
    overdue: bool
    working_days_left: int  # 0 on the due day and after it
    days_overdue: int  # calendar days past the due day
    fallback: bool = False  # counted over a year without a known holiday arrangement


class QueueItem(_Struct, kw_only=True, frozen=True):
    case_id: uuid.UUID
    case_number: str
    title: str
    category: str
    state: str
    round: int
    submitted_at: dt.datetime | None
    due: DueStatus | None
    reviewer: str | None
    reasons: list[str]
    benchmark_flagged: bool
    summary: str


class OverdueReport(_Struct, kw_only=True, frozen=True):
    agency_id: uuid.UUID
    today: dt.date
    items: list[QueueItem]


class GateStatus(_Struct, kw_only=True, frozen=True):
    """What the issue gate says about a case's proposed decision."""

    major: bool
    approved: bool
    reasons: list[str]
    routed: bool = True

    @property
    def allowed(self) -> bool:
        return self.routed and (not self.major or self.approved)
