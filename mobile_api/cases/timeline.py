"""One line in Chinese saying what an event did, for the case file's timeline (API and console)."""

from __future__ import annotations

from decimal import Decimal

from mobile_api.contracts.events import (
    CaseClosed,
    CaseOpened,
    CredentialShown,
    DecisionProposed,
    DocumentServed,
    EventBase,
    EvidenceAttached,
    HearingRequested,
    InspectionRecorded,
    NoticeServed,
    Organisation,
    PartyIdentified,
    StatementReceived,
)


def _joined(*parts: str) -> str:
    return "；".join(part for part in parts if part)


def _service(method: str, served_to: str) -> str:
    return f"{method}{f'给{served_to}' if served_to else ''}"


def _amount(label: str, value: Decimal) -> str:
    return f"{label} {value.normalize():,f} 元" if value else ""


def describe(event: EventBase) -> str:
    match event:
        case CaseOpened():
            return _joined(
                f"{event.procedure}：{event.title}",
                f"执法事项 {event.item_code}（{event.category}，{event.act_kind}）",
                event.region,
                event.place,
            )
        case PartyIdentified():
            party = event.party
            if isinstance(party, Organisation):
                return _joined(f"当事人（单位）{party.name}", party.credit_code)
            return _joined(f"当事人 {party.name}", "未成年人" if party.minor else "")
        case CredentialShown():
            return _joined(
                f"出示执法证件 {event.credential_number}",
                "当事人已扫码核验" if event.scanned else "",
                event.place,
            )
        case InspectionRecorded():
            return _joined(
                event.place,
                event.findings,
                f"措施：{'、'.join(event.measures)}" if event.measures else "",
                f"关联音像记录 {len(event.recording_ids)} 段" if event.recording_ids else "",
            )
        case EvidenceAttached():
            return _joined(event.evidence_kind, event.description)
        case NoticeServed():
            return _joined(
                f"《{event.notice}》{event.document_number}",
                _service(event.method, event.served_to),
                "告知听证权利" if event.hearing_right else "",
            )
        case StatementReceived():
            if event.waived:
                return (
                    "当事人书面放弃陈述、申辩" if event.in_writing else "当事人口头放弃陈述、申辩"
                )
            return _joined("听取当事人陈述、申辩", event.content)
        case HearingRequested():
            return _joined("当事人申请听证", event.requested_by)
        case DecisionProposed():
            return _joined(
                "、".join(event.penalties),
                _amount("罚款", event.fine_yuan),
                _amount("没收", event.confiscation_yuan),
                event.document_number,
            )
        case DocumentServed():
            return _joined(
                f"《{event.document}》{event.document_number}",
                _service(event.method, event.served_to),
                "" if event.party_present else "当事人不在场",
            )
        case CaseClosed():
            return event.reason
    return ""
