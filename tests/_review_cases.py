"""Test data for the review area: case files as the case area would hand them over, and a
``CaseFileSource`` over them (a fake of the case area's side of the interface, for review's tests).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts import events as ev
from review.schemas import (
    CaseDocument,
    CaseOfficer,
    CaseParty,
    EvidenceItem,
    ProposedDecision,
    ReviewCaseFile,
    TimelineEntry,
)
from server.core.auth import Principal
from server.core.models import Agency
from tests._case_events import Writer, push_ok

DEMO_OFFICERS = (("13010001", "张明"), ("13010002", "李华"))


def proposal(**overrides: Any) -> ProposedDecision:
    values: dict[str, Any] = {
        "penalties": ["罚款"],
        "fine_yuan": Decimal(5000),
        "violation": "WH-CF-001",
        "violation_name": "擅自从事娱乐场所经营活动",
        "circumstance": "一般",
        "facts": "当事人未取得娱乐经营许可证，擅自在其经营场所内从事歌舞娱乐经营活动。",
        "legal_basis": "《娱乐场所管理条例》第四十一条",
        "discretion_basis": "示范市文化市场行政处罚裁量基准 WH-CF-001 一般情节",
    }
    values.update(overrides)
    return ProposedDecision(**values)


def case_file(
    agency_id: uuid.UUID,
    *,
    case_id: uuid.UUID | None = None,
    officers: tuple[tuple[str, str], ...] = DEMO_OFFICERS,
    party: str = "organisation",
    evidence_url: str = "http://media.invalid/evidence/1.mp4",
    **overrides: Any,
) -> ReviewCaseFile:
    at = dt.datetime(2026, 2, 20, 2, 0, tzinfo=dt.UTC)
    parties = {
        "organisation": [
            CaseParty(
                type="organisation", name="示范市星光娱乐有限公司", id_code="91130100MA0XXXXX1C"
            )
        ],
        "person": [CaseParty(type="person", name="王五", id_code="130102199001011234")],
        "none": [],
    }[party]
    values: dict[str, Any] = {
        "case_id": case_id or uuid.uuid4(),
        "agency_id": agency_id,
        "case_number": "示文执罚〔2026〕12号",
        "title": "示范市星光娱乐有限公司擅自从事娱乐场所经营活动案",
        "category": "文化市场",
        "item_code": "WH-CF-001",
        "region": "示范市城东区",
        "procedure": "立案",
        "handling_unit": "一大队",
        "officers": [CaseOfficer(number=number, name=name) for number, name in officers],
        "parties": parties,
        "timeline": [
            TimelineEntry(
                at=at, label="立案", summary="群众举报，经初步核查立案", officers=["张明", "李华"]
            ),
            TimelineEntry(
                at=at + dt.timedelta(hours=3),
                label="现场检查",
                summary="现场有 6 间包厢正在营业，未能出示娱乐经营许可证",
                officers=["张明", "李华"],
            ),
            TimelineEntry(
                at=at + dt.timedelta(days=5), label="送达权利告知书", officers=["张明", "李华"]
            ),
        ],
        "evidence": [
            EvidenceItem(
                id="ev-1",
                kind="音像记录",
                description="现场检查执法记录仪视频",
                media_type="video/mp4",
                playback_url=evidence_url,
                sha256="ab" * 32,
                recorded_at=at + dt.timedelta(hours=3),
            ),
            EvidenceItem(id="ev-2", kind="书证", description="营业执照复印件"),
        ],
        "documents": [
            CaseDocument(name="立案审批表", number="示文执立〔2026〕12号", status="已审批"),
            CaseDocument(name="行政处罚事先告知书", number="示文执告〔2026〕12号", status="已送达"),
            CaseDocument(name="行政处罚决定书", status="草稿"),
        ],
        "proposal": proposal(),
    }
    values.update(overrides)
    return ReviewCaseFile(**values)


def changed(case: ReviewCaseFile, **proposal_changes: Any) -> ReviewCaseFile:
    return msgspec.structs.replace(
        case, proposal=msgspec.structs.replace(case.proposal, **proposal_changes)
    )


class CaseFilesInMemory:
    """The case area's side of ``CaseFileSource``, over case files a test sets."""

    def __init__(self) -> None:
        self.files: dict[uuid.UUID, ReviewCaseFile] = {}
        self.played: list[tuple[str, uuid.UUID]] = []

    def put(self, case: ReviewCaseFile) -> ReviewCaseFile:
        self.files[case.case_id] = case
        return case

    async def case_file(self, session: AsyncSession, case_id: uuid.UUID) -> ReviewCaseFile | None:
        return self.files.get(case_id)

    async def playback_url(
        self, session: AsyncSession, case_id: uuid.UUID, evidence_id: str, viewer: Principal
    ) -> str | None:
        self.played.append((evidence_id, viewer.user_id))
        case = self.files.get(case_id)
        items = [e for e in case.evidence if e.id == evidence_id] if case else []
        return f"{items[0].playback_url}?viewer={viewer.user_id}" if items else None


async def demo_agency_id(session: AsyncSession) -> uuid.UUID:
    return await session.scalar(select(Agency.id).where(Agency.code == "demo"))


async def decision_on_server(
    client: Any,
    terminal: Any,
    clock: Any,
    case_id: uuid.UUID,
    *,
    party: ev.Person | ev.Organisation,
    fine_yuan: Decimal,
    penalties: tuple[str, ...] = ("罚款",),
    procedure: str = "立案",
) -> None:
    """A case pushed from a terminal up to its proposed decision (the party waived in writing)."""
    write = Writer("d0c0ffee", clock)
    results = await push_ok(
        client,
        terminal,
        [
            write.open(case_id, procedure=procedure),
            write(ev.PartyIdentified, case_id, party_id=uuid.uuid4(), party=party),
            write(
                ev.NoticeServed,
                case_id,
                facts="未经许可擅自从事娱乐场所经营活动",
                proposed=f"罚款人民币{fine_yuan}元",
                hearing_right=True,
            ),
            write(ev.StatementReceived, case_id, waived=True, in_writing=True),
            write(
                ev.DecisionProposed,
                case_id,
                penalties=list(penalties),
                fine_yuan=fine_yuan,
                facts="当事人未经许可擅自从事娱乐场所经营活动",
                legal_basis="《娱乐场所管理条例》第四十一条",
            ),
        ],
    )
    assert [r.outcome for r in results] == ["accepted"] * 5, results
