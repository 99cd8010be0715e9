"""Everything an enforcement document is filled from (the officer's and the case's data).

What the law decides (whether the hearing right applies, whether the simple procedure is allowed,
every date) is NOT here: ``rules`` and ``periods`` compute it from these facts, so no officer types it.

The facts travel with a registration to the server, which renders the document again from them; the
canonical bytes (``canonical_facts``) therefore omit defaults and sort keys, so a field added later
(always with a default) does not change the bytes of documents made before it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from mobile_api.contracts.events import CreditCode, LongText, Name, Penalty, ServiceMethod, Short

DocumentKind = Literal[
    "rights_notice",  # 行政处罚事先告知书 (第44条, 第45条, 第63条, 第64条)
    "onsite_decision",  # 当场处罚决定书 (第51条, 第52条; 行政复议法 第23条)
    "hearing_notice",  # 听证通知书 (第64条)
    "penalty_decision",  # 行政处罚决定书 (第59条, 第67条, 第72条)
    "service_receipt",  # 送达回证 (第61条)
]
DOCUMENT_KINDS: tuple[DocumentKind, ...] = (
    "rights_notice",
    "onsite_decision",
    "hearing_notice",
    "penalty_decision",
    "service_receipt",
)
# The final decisions: printing one passes legal review's issue gate (行政处罚法 第58条).
DECISION_KINDS: tuple[DocumentKind, ...] = ("onsite_decision", "penalty_decision")
KIND_LABELS: dict[str, str] = {
    "rights_notice": "行政处罚事先告知书",
    "onsite_decision": "当场处罚决定书",
    "hearing_notice": "听证通知书",
    "penalty_decision": "行政处罚决定书",
    "service_receipt": "送达回证",
}

Yuan = Decimal  # msgspec cannot bound a Decimal: compose() refuses negative amounts
TimeOfDay = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]  # "09:30"


class _Facts(
    msgspec.Struct, kw_only=True, frozen=True, omit_defaults=True, forbid_unknown_fields=True
):
    pass


class AgencyInfo(_Facts, kw_only=True, frozen=True):
    """执法机关 as printed: its code (the server's), full name, address and phone."""

    code: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    name: Name
    address: Short = ""
    phone: Short = ""


class Person(_Facts, kw_only=True, frozen=True, tag="person", tag_field="type"):
    """A natural person. Same tag and field names as ``events.Person``, plus the gender printed."""

    name: Name
    gender: Literal["", "男", "女"] = ""
    id_number: Short = ""
    address: Short = ""
    phone: Short = ""


class Organisation(_Facts, kw_only=True, frozen=True, tag="organisation", tag_field="type"):
    """A legal person or other organisation (same shape as ``events.Organisation``)."""

    name: Name
    credit_code: CreditCode = ""  # 统一社会信用代码
    representative: Short = ""  # 法定代表人（负责人）
    address: Short = ""
    phone: Short = ""


Party = Person | Organisation


class OfficerInfo(_Facts, kw_only=True, frozen=True):
    name: Name
    credential_number: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]  # 执法证号


class PenaltyItem(_Facts, kw_only=True, frozen=True):
    """One penalty of the decision. ``amount_yuan``: the fine for 罚款, the value for 没收."""

    kind: Penalty
    amount_yuan: Yuan | None = None
    detail: Short = ""  # e.g. the licence and the period of 暂扣, the years of 限制从业


class Remedies(_Facts, kw_only=True, frozen=True):
    """Where the party may turn: the 行政复议机关 and the competent 人民法院."""

    reconsideration_body: Name
    court: Name


class Payment(_Facts, kw_only=True, frozen=True):
    """Where a fine is paid (第67条: not to the officers, to the designated bank)."""

    bank: Short = ""
    account_name: Short = ""
    account_number: Short = ""
    # 第68条: fines of ≤ 100 元, or where later payment could not be enforced, collected on the spot.
    collected_on_spot: bool = False


class NoticeRef(_Facts, kw_only=True, frozen=True):
    """The rights notice a decision follows: its number and the day it was served."""

    number: Short
    served_on: dt.date


class Statement(_Facts, kw_only=True, frozen=True):
    """What became of the party's rights to be heard before the decision (第45条, 第62条, 第63条)."""

    summary: LongText = ""  # the party's statement and defence, and whether they were adopted
    waived_in_writing: bool = False  # 陈述、申辩 waived in writing before the period ended
    hearing_requested: bool = False
    hearing_held: bool = False
    hearing_waived_in_writing: bool = False


class Hearing(_Facts, kw_only=True, frozen=True):
    date: dt.date
    time: TimeOfDay
    place: Name
    host: Name  # 听证主持人
    clerk: Short = ""  # 记录员
    requested_on: dt.date | None = None  # when the party asked; absent when the agency held it


class Witness(_Facts, kw_only=True, frozen=True):
    name: Name
    unit: Short = ""  # 见证人单位或身份（如基层组织、所在单位）


class Service(_Facts, kw_only=True, frozen=True):
    """One service (送达) of a document: who got what, where, how, and the proof of it."""

    document_title: Name  # e.g. 行政处罚决定书
    document_number: Short
    recipient: Name
    method: ServiceMethod = "直接送达"
    place: Short = ""
    served_on: dt.date
    # The recipient's signature captured on the terminal (PNG), when they signed.
    signature_png: bytes = b""
    # 留置送达: the recipient refused to sign; witnesses and a recording prove the service.
    refused: bool = False
    refusal_note: Short = ""
    witnesses: list[Witness] = msgspec.field(default_factory=list)
    recording_id: Short = ""


class DocumentFacts(_Facts, kw_only=True, frozen=True):
    number: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]  # 文书编号, as printed
    agency: AgencyInfo
    case_id: uuid.UUID
    case_number: Short = ""  # 案号
    case_title: Short = (
        ""  # 案由, e.g. 擅自从事娱乐场所经营活动 (the documents add 案 where needed)
    )
    category: Name  # 执法类别: selects the agency's thresholds
    party: Party
    place: Short = ""  # where the act was found or the on-the-spot decision made
    time: TimeOfDay | None = None  # when, for the on-the-spot decision
    facts: LongText = ""  # 违法事实
    evidence: list[Short] = msgspec.field(default_factory=list)
    grounds: LongText = ""  # 理由: the provisions violated
    legal_basis: LongText = ""  # 依据: the provisions the penalty rests on
    penalties: list[PenaltyItem] = msgspec.field(default_factory=list)
    officers: Annotated[list[OfficerInfo], msgspec.Meta(min_length=1, max_length=10)]
    issued_on: dt.date  # the date the document bears (落款日期)
    # When the document reaches the party; the legal periods start from it (第201条: next day).
    # Absent: served on the day it is issued (handed over on the spot).
    served_on: dt.date | None = None
    remedies: Remedies | None = None
    payment: Payment | None = None
    notice: NoticeRef | None = None
    statement: Statement | None = None
    hearing: Hearing | None = None
    service: Service | None = None

    @property
    def service_date(self) -> dt.date:
        return self.served_on or self.issued_on


_encoder = msgspec.json.Encoder(order="sorted")


def canonical_facts(facts: DocumentFacts) -> bytes:
    """The bytes the document id is derived from and the server stores and re-renders from."""
    return _encoder.encode(facts)


def decode_facts(raw: bytes) -> DocumentFacts:
    return msgspec.json.decode(raw, type=DocumentFacts)
