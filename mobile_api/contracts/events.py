"""Officer actions as append-only events (DESIGN.md §4 Sync), shared by the edge agent and the server.

Every action an officer takes on a case is one event: a msgspec Struct tagged by ``kind`` with a
client-generated UUIDv7 ``id``, the ``case_id``, the credential numbers of the officers present,
the terminal's own clock reading and a hybrid logical clock (HLC) stamp. Terminals record them
offline; the server assembles the case file (案卷) from the events of every terminal on the case.

Compatibility: every field added later MUST have a default. Structs omit fields at their default
when encoded, so an event written by an old agent keeps the same canonical bytes on a new server
(the server compares those bytes to tell a replay from a reused id).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, ClassVar, Literal

import msgspec

# --- hybrid logical clock stamps ----------------------------------------------------------------

# "<wall milliseconds, 13 digits>-<counter, 5 digits>-<node, hex>": sorts as text in causal order.
HLC_PATTERN = r"^[0-9]{13}-[0-9]{5}-[0-9a-f]{8,32}$"
HLC_COUNTER_MAX = 99_999


def format_hlc(wall_ms: int, counter: int, node: str) -> str:
    if not 0 <= counter <= HLC_COUNTER_MAX:
        raise ValueError("HLC counter out of range")
    return f"{wall_ms:013d}-{counter:05d}-{node}"


def parse_hlc(stamp: str) -> tuple[int, int, str]:
    wall, counter, node = stamp.split("-")
    return int(wall), int(counter), node


# --- field types --------------------------------------------------------------------------------

Hlc = Annotated[str, msgspec.Meta(pattern=HLC_PATTERN)]
AwareTime = Annotated[dt.datetime, msgspec.Meta(tz=True)]
Short = Annotated[str, msgspec.Meta(max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
LongText = Annotated[str, msgspec.Meta(max_length=20_000)]
CredentialNumber = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Officers = Annotated[list[CredentialNumber], msgspec.Meta(min_length=1, max_length=10)]
Sha256Hex = Annotated[str, msgspec.Meta(pattern=r"^([0-9a-f]{64})?$")]
Money = Decimal  # in 元; msgspec cannot bound a Decimal, the server checks it is not negative
# 统一社会信用代码: 18 characters from the GB 32100 alphabet (no I, O, S, V, Z).
CreditCode = Annotated[str, msgspec.Meta(pattern=r"^([0-9A-HJ-NPQRTUWXY]{18})?$")]

Procedure = Literal["立案", "当场处理"]
ActKind = Literal["行政许可", "行政处罚", "行政强制", "行政检查", "行政征收", "其他"]
ServiceMethod = Literal["直接送达", "留置送达", "邮寄送达", "电子送达", "委托送达", "公告送达"]
EvidenceKind = Literal[
    "音像记录", "照片", "书证", "物证", "电子数据", "证人证言", "当事人陈述", "其他"
]
Penalty = Literal[
    "警告",
    "通报批评",
    "罚款",
    "没收违法所得",
    "没收非法财物",
    "暂扣许可证件",
    "降低资质等级",
    "吊销许可证件",
    "限制开展生产经营活动",
    "责令停产停业",
    "责令关闭",
    "限制从业",
    "行政拘留",
    "不予处罚",
]
# Actions on persons or major property that need a whole-process audio-visual record (118号).
RECORDED_MEASURES = frozenset({"查封", "扣押", "强制拆除", "强制执行", "强制隔离", "约束"})
Measure = Literal[
    "查封", "扣押", "强制拆除", "强制执行", "强制隔离", "约束", "先行登记保存", "责令改正"
]

RIGHTS_NOTICE = "权利告知书"


class _Message(msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True):
    """Common configuration: keyword-only, immutable, defaults left out of the encoding."""


# --- parties ------------------------------------------------------------------------------------


class Person(_Message, tag="person", tag_field="type", kw_only=True, frozen=True):
    """A natural person (自然人)."""

    name: Name
    id_number: Short = ""
    phone: Short = ""
    address: Short = ""
    minor: bool = False  # decisions on minors are never published (DESIGN.md §7)


class Organisation(_Message, tag="organisation", tag_field="type", kw_only=True, frozen=True):
    """A legal person or other organisation, with its 统一社会信用代码."""

    name: Name
    credit_code: CreditCode = ""
    representative: Short = ""
    address: Short = ""
    phone: Short = ""


Party = Person | Organisation


# --- events -------------------------------------------------------------------------------------


class EventBase(_Message, tag_field="kind", kw_only=True, frozen=True):
    id: uuid.UUID  # UUIDv7, generated on the terminal
    case_id: uuid.UUID
    officers: Officers  # credential numbers (证号) of the officers present
    terminal_time: AwareTime  # the terminal's clock: shown, never used for a legal date
    hlc: Hlc

    # Actions toward the party, done by two qualified officers unless a rule allows one (第42条).
    needs_two_officers: ClassVar[bool] = True


class CaseOpened(EventBase, tag="case_opened", kw_only=True, frozen=True):
    """立案, or on-site handling (当场处理, the simple procedure) of a new case."""

    procedure: Procedure
    item_code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # 执法事项清单
    category: Name  # 执法类别
    region: Name  # 执法区域
    act_kind: ActKind = "行政处罚"
    title: Name
    place: Short = ""
    summary: LongText = ""


class PartyIdentified(EventBase, tag="party_identified", kw_only=True, frozen=True):
    party_id: uuid.UUID
    party: Party
    needs_two_officers: ClassVar[bool] = False


class CredentialShown(EventBase, tag="credential_shown", kw_only=True, frozen=True):
    """亮证: which credential was shown, where, and whether the party scanned its QR code."""

    credential_number: CredentialNumber
    place: Short = ""
    scanned: bool = False
    # Set when a terminal checked the credential offline before acting (第42条): the 证号 of the
    # officer whose terminal checked it and the date of the signed status list it relied on.
    checked_by: Short = ""
    status_list_issued_at: AwareTime | None = None


class InspectionRecorded(EventBase, tag="inspection_recorded", kw_only=True, frozen=True):
    """现场检查 / 勘验, with any measure taken on the spot (查封, 扣押 ...)."""

    place: Short = ""
    findings: LongText
    measures: list[Measure] = msgspec.field(default_factory=list)
    recording_ids: list[Short] = msgspec.field(default_factory=list)


class EvidenceAttached(EventBase, tag="evidence_attached", kw_only=True, frozen=True):
    evidence_id: uuid.UUID
    evidence_kind: EvidenceKind
    description: Short = ""
    recording_id: Short = ""  # an uploaded recording (media area)
    sha256: Sha256Hex = ""
    for_event: uuid.UUID | None = None  # the action this evidence records
    needs_two_officers: ClassVar[bool] = False


class DocumentServiceFields(_Message, kw_only=True, frozen=True):
    """Which generated document was served and how it was proved (issue 6): the party's signature
    or, for 留置送达, the witnesses and the recording."""

    document_id: Short = ""  # the id in the document's QR (/d/{id})
    document_kind: Short = ""  # rights_notice, penalty_decision …
    sha256: Sha256Hex = ""  # of the PDF as generated
    signature_sha256: Sha256Hex = ""  # of the signature image the party drew
    refused: bool = False
    witnesses: list[Short] = msgspec.field(default_factory=list)
    recording_id: Short = ""


class NoticeServed(EventBase, tag="notice_served", kw_only=True, frozen=True):
    """权利告知书 served: facts, grounds, basis, the proposed penalty and the party's rights."""

    notice: Short = RIGHTS_NOTICE
    document_number: Short = ""
    facts: LongText = ""
    legal_basis: LongText = ""
    proposed: LongText = ""
    statement_days: Annotated[int, msgspec.Meta(ge=0, le=60)] = 0  # 0: the agency's period
    hearing_right: bool = False
    method: ServiceMethod = "直接送达"
    served_to: Short = ""
    service: DocumentServiceFields | None = None


class StatementReceived(EventBase, tag="statement_received", kw_only=True, frozen=True):
    """陈述、申辩 received, or the party's waiver of them (valid only in writing)."""

    content: LongText = ""
    waived: bool = False
    in_writing: bool = False
    evidence_id: uuid.UUID | None = None  # the signed statement or waiver, when scanned


class HearingRequested(EventBase, tag="hearing_requested", kw_only=True, frozen=True):
    requested_by: Short = ""
    in_writing: bool = True


class DecisionProposed(EventBase, tag="decision_proposed", kw_only=True, frozen=True):
    """The proposed decision; it is made when the server accepts it (server time, never the terminal's)."""

    penalties: Annotated[list[Penalty], msgspec.Meta(min_length=1, max_length=8)]
    fine_yuan: Money = Decimal(0)
    confiscation_yuan: Money = Decimal(0)
    facts: LongText = ""
    legal_basis: LongText = ""
    document_number: Short = ""


class DocumentServed(EventBase, tag="document_served", kw_only=True, frozen=True):
    document: Name  # e.g. 行政处罚决定书, 查封（扣押）决定书, 听证通知书
    document_number: Short = ""
    method: ServiceMethod = "直接送达"
    served_to: Short = ""
    party_present: bool = True
    service: DocumentServiceFields | None = None


class CaseClosed(EventBase, tag="case_closed", kw_only=True, frozen=True):
    reason: Short = ""
    needs_two_officers: ClassVar[bool] = False


Event = (
    CaseOpened
    | PartyIdentified
    | CredentialShown
    | InspectionRecorded
    | EvidenceAttached
    | NoticeServed
    | StatementReceived
    | HearingRequested
    | DecisionProposed
    | DocumentServed
    | CaseClosed
)

EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        CaseOpened,
        PartyIdentified,
        CredentialShown,
        InspectionRecorded,
        EvidenceAttached,
        NoticeServed,
        StatementReceived,
        HearingRequested,
        DecisionProposed,
        DocumentServed,
        CaseClosed,
    )
}

EVENT_LABELS: dict[str, str] = {
    "case_opened": "立案",
    "party_identified": "确认当事人",
    "credential_shown": "出示执法证件",
    "inspection_recorded": "现场检查",
    "evidence_attached": "附加证据",
    "notice_served": "送达权利告知书",
    "statement_received": "听取陈述申辩",
    "hearing_requested": "当事人申请听证",
    "decision_proposed": "拟作出处理决定",
    "document_served": "送达文书",
    "case_closed": "结案",
}

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Event)


def event_kind(event: EventBase) -> str:
    return event.__struct_config__.tag  # type: ignore[return-value]


def canonical_bytes(event: EventBase) -> bytes:
    """The event's canonical JSON (sorted keys, defaults omitted): what the server stores and compares."""
    return _encoder.encode(event)


def decode_event(raw: bytes) -> Event:
    return _decoder.decode(raw)
