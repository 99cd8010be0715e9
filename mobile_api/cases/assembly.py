"""Case assembly: the case file (案卷) as a fold over the accepted events of every terminal.

``apply(file, event, facts)`` checks one event against the case as it stands and the procedure
rules (DESIGN.md §2), then returns the file with the event applied; a refused event raises one of
``mobile_api.cases.errors`` and leaves the file untouched (every check runs before any change).
Pure code: the push service loads the facts (credentials, catalog, rules, calendar) and stores the
result.

Legal dates come from the server's clock only (``facts.now``): an event is done, for the case
file, when the server accepts it. A terminal offline for days cannot move a legal date by the
reading of its own clock, and a notice accepted late only makes the party's period end later.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from mobile_api.cases import errors
from mobile_api.cases.rules import CaseRules
from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.events import (
    RECORDED_MEASURES,
    CaseClosed,
    CaseOpened,
    CredentialShown,
    DecisionProposed,
    DocumentServed,
    EvidenceAttached,
    HearingRequested,
    InspectionRecorded,
    NoticeServed,
    Organisation,
    Party,
    PartyIdentified,
    StatementReceived,
)
from server.core.clock import CHINA_TZ

# 行政处罚法 第63条: penalties that always give a hearing right.
HEARING_PENALTIES = frozenset(
    {"吊销许可证件", "责令停产停业", "责令关闭", "限制从业", "降低资质等级", "限制开展生产经营活动"}
)
# 第51条: the simple procedure allows a warning, or a fine up to these amounts (元).
SIMPLE_PENALTIES = frozenset({"警告", "通报批评", "罚款"})
SIMPLE_FINE_PERSON = Decimal(200)
SIMPLE_FINE_ORGANISATION = Decimal(3000)
# 第64条: the hearing request period after the notice, in working days (fixed by law).
HEARING_REQUEST_DAYS = 5
# 当场处罚决定书 is the title of the terminal's on-site decision template.
DECISION_DOCUMENTS = frozenset(
    {"行政处罚决定书", "当场行政处罚决定书", "当场处罚决定书", "不予行政处罚决定书"}
)
NO_PENALTY = "不予处罚"


class CaseState:
    OPENED = "已立案"
    NOTIFIED = "已告知"
    DECIDED = "已决定"
    SERVED = "已送达"
    CLOSED = "已结案"

    ALL = (OPENED, NOTIFIED, DECIDED, SERVED, CLOSED)


# --- the facts an event is judged by --------------------------------------------------------------


class OfficerFact(msgspec.Struct, frozen=True, kw_only=True):
    """An officer's credential as the server knows it when the event arrives."""

    number: str
    name: str
    agency_id: uuid.UUID
    status: str  # effective status today: 有效 / 暂扣 / 注销 / 吊销 / 过期
    issued_on: dt.date
    categories: list[str]
    regions: list[str]

    def problem(self, agency_id: uuid.UUID, category: str, region: str, today: dt.date) -> str:
        """Why this officer may not act on the case, or "" when he may."""
        if self.agency_id != agency_id:
            return "不属于本执法主体"
        if self.status != "有效":
            return f"执法证件状态为{self.status}"
        if today < self.issued_on:
            return "执法证件尚未生效"
        scope = []
        if category not in self.categories:
            scope.append(f"执法类别不含{category}")
        if not region_covered(region, self.regions):
            scope.append(f"执法区域不含{region}")
        return "、".join(scope)


def region_covered(region: str, regions: list[str]) -> bool:
    """A credential covers its regions, and every region of a city it holds as ``<市>全市``."""
    return any(
        region == held or (held.endswith("全市") and region.startswith(held[: -len("全市")]))
        for held in regions
    )


class ItemFact(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    category: str
    act_kind: str


@dataclass(frozen=True)
class Facts:
    agency_id: uuid.UUID
    now: dt.datetime  # server time
    calendar: WorkingDayCalendar
    rules: CaseRules
    officers: dict[str, OfficerFact]
    items: dict[str, ItemFact]
    # Most events of a batch list the same team on the same case: screen each team once.
    _screened: dict[tuple[Any, ...], tuple[list[str], list[str]]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(CHINA_TZ).date()

    def screen(self, officers: list[str], file: CaseFile) -> tuple[list[str], list[str]]:
        """(the numbers that may act on the case today, why each other one may not)."""
        key = (tuple(officers), file.agency_id, file.category, file.region)
        found = self._screened.get(key)
        if found is None:
            qualified: list[str] = []
            reasons: list[str] = []
            for number in dict.fromkeys(officers):
                officer = self.officers.get(number)
                problem = (
                    "不在执法人员名册中"
                    if officer is None
                    else officer.problem(file.agency_id, file.category, file.region, self.today)
                )
                if problem:
                    reasons.append(f"{officer.name if officer else ''}（证号 {number}）{problem}")
                else:
                    qualified.append(number)
            found = self._screened[key] = (qualified, reasons)
        return found


# --- the case file --------------------------------------------------------------------------------


class _Part(msgspec.Struct, kw_only=True):
    pass


class OfficerEntry(_Part):
    number: str
    name: str


class PartyEntry(_Part):
    party_id: uuid.UUID
    party: Party
    event_id: uuid.UUID


class EvidenceEntry(_Part):
    evidence_id: uuid.UUID
    evidence_kind: str
    description: str
    recording_id: str
    sha256: str
    for_event: uuid.UUID | None
    event_id: uuid.UUID
    recorded_at: dt.datetime


class DocumentEntry(_Part):
    name: str
    number: str
    method: str
    served_to: str
    party_present: bool
    event_id: uuid.UUID
    served_on: dt.date


class MeasureEntry(_Part):
    """A measure on persons or major property that needs a linked audio-visual record."""

    event_id: uuid.UUID
    measures: list[str]
    recording_ids: list[str]
    recorded_on: dt.date


class NoticeState(_Part):
    event_id: uuid.UUID
    served_on: dt.date
    statement_days: int
    hearing_right: bool
    period_ends: dt.date  # last day of the statement (and hearing request) period
    fallback: bool  # the period ran into a year without a known holiday arrangement


class DecisionState(_Part):
    event_id: uuid.UUID
    decided_at: dt.datetime
    decided_on: dt.date
    penalties: list[str]
    fine_yuan: Decimal
    confiscation_yuan: Decimal


class Flaw(msgspec.Struct, frozen=True, kw_only=True):
    """One finding of the machine case review (案卷评查)."""

    code: str
    message: str
    event_id: uuid.UUID | None = None


class CaseFile(msgspec.Struct, kw_only=True):
    case_id: uuid.UUID
    agency_id: uuid.UUID
    title: str
    procedure: str
    item_code: str
    category: str
    region: str
    act_kind: str
    place: str
    summary: str
    state: str
    opened_at: dt.datetime
    opened_on: dt.date
    officers: list[OfficerEntry] = msgspec.field(default_factory=list)
    parties: list[PartyEntry] = msgspec.field(default_factory=list)
    evidence: list[EvidenceEntry] = msgspec.field(default_factory=list)
    documents: list[DocumentEntry] = msgspec.field(default_factory=list)
    measures: list[MeasureEntry] = msgspec.field(default_factory=list)
    shown_credentials: list[str] = msgspec.field(default_factory=list)
    notice: NoticeState | None = None
    statements: int = 0
    waived_on: dt.date | None = None
    hearing_requested_on: dt.date | None = None
    decision: DecisionState | None = None
    closed_at: dt.datetime | None = None
    closed_on: dt.date | None = None
    # Flaws that arise when an event is accepted and stay true whatever happens later.
    flaws: list[Flaw] = msgspec.field(default_factory=list)
    single_officer_events: list[uuid.UUID] = msgspec.field(default_factory=list)
    last_hlc: str = ""
    event_count: int = 0

    def officer_numbers(self) -> list[str]:
        return [officer.number for officer in self.officers]

    def has_document(self, names: frozenset[str] | set[str]) -> bool:
        return any(document.name in names for document in self.documents)


def file_from_json(document: dict[str, Any]) -> CaseFile:
    return msgspec.convert(document, CaseFile)


def file_to_json(file: CaseFile) -> dict[str, Any]:
    return msgspec.to_builtins(file)


# --- officers -------------------------------------------------------------------------------------


def _one_officer_allowed(file: CaseFile, penalties: Sequence[str] | None, rules: CaseRules) -> bool:
    return any(
        rule.procedure == file.procedure
        and (penalties is None or not rule.penalties or set(penalties) <= set(rule.penalties))
        for rule in rules.one_officer
    )


def _check_officers(file: CaseFile, event: Any, facts: Facts) -> tuple[bool, list[Flaw]]:
    """Who may act: returns (acted alone under a rule, flaws about officers who may not)."""
    qualified, reasons = facts.screen(event.officers, file)
    flaws = [
        Flaw(code="officer_not_qualified", message=f"执法人员{reason}", event_id=event.id)
        for reason in reasons
    ]
    if not type(event).needs_two_officers or len(qualified) >= 2:
        return False, flaws
    penalties = (
        list(event.penalties)
        if isinstance(event, DecisionProposed)
        else (file.decision.penalties if file.decision else None)
    )
    if len(qualified) == 1 and _one_officer_allowed(file, penalties, facts.rules):
        return True, flaws
    detail = "；".join(reasons) if reasons else f"仅有 {len(qualified)} 名执法人员"
    raise errors.TwoOfficersRequired(
        f"执法人员不得少于两人：{detail}", qualified=qualified, officers=list(event.officers)
    )


# --- one handler per kind: checks first, then changes ---------------------------------------------


def _open(event: CaseOpened, facts: Facts) -> CaseFile:
    item = facts.items.get(event.item_code)
    if item is None:
        raise errors.EnforcementItemUnknown(
            f"执法事项 {event.item_code} 不在本执法主体的执法事项清单中", item_code=event.item_code
        )
    if item.category != event.category or item.act_kind != event.act_kind:
        raise errors.EnforcementItemMismatch(
            f"执法事项 {item.code} 属于{item.category}（{item.act_kind}），"
            f"与立案填写的{event.category}（{event.act_kind}）不符",
            item_code=item.code,
        )
    return CaseFile(
        case_id=event.case_id,
        agency_id=facts.agency_id,
        title=event.title,
        procedure=event.procedure,
        item_code=event.item_code,
        category=event.category,
        region=event.region,
        act_kind=event.act_kind,
        place=event.place,
        summary=event.summary,
        state=CaseState.OPENED,
        opened_at=facts.now,
        opened_on=facts.today,
    )


def _party(file: CaseFile, event: PartyIdentified, facts: Facts) -> None:
    entry = PartyEntry(party_id=event.party_id, party=event.party, event_id=event.id)
    file.parties = [p for p in file.parties if p.party_id != event.party_id] + [entry]


def _credential(file: CaseFile, event: CredentialShown, facts: Facts) -> None:
    if event.credential_number not in event.officers:
        raise errors.CredentialNotPresent(
            f"证号 {event.credential_number} 不在本次在场的执法人员之中",
            credential_number=event.credential_number,
        )
    if event.credential_number not in file.shown_credentials:
        file.shown_credentials.append(event.credential_number)


def _inspection(file: CaseFile, event: InspectionRecorded, facts: Facts) -> None:
    measures: list[str] = [m for m in event.measures if m in RECORDED_MEASURES]
    if measures:
        file.measures.append(
            MeasureEntry(
                event_id=event.id,
                measures=measures,
                recording_ids=list(event.recording_ids),
                recorded_on=facts.today,
            )
        )


def _evidence(file: CaseFile, event: EvidenceAttached, facts: Facts) -> None:
    file.evidence.append(
        EvidenceEntry(
            evidence_id=event.evidence_id,
            evidence_kind=event.evidence_kind,
            description=event.description,
            recording_id=event.recording_id,
            sha256=event.sha256,
            for_event=event.for_event,
            event_id=event.id,
            recorded_at=facts.now,
        )
    )
    if event.recording_id and event.for_event is not None:
        for measure in file.measures:
            if measure.event_id == event.for_event:
                measure.recording_ids.append(event.recording_id)


def _notice(file: CaseFile, event: NoticeServed, facts: Facts) -> None:
    if file.decision is not None:
        raise errors.DecisionExists("本案已作出决定，不能再送达权利告知书")
    minimum = facts.rules.statement_days
    days = event.statement_days or minimum
    if days < minimum:
        raise errors.StatementPeriodTooShort(
            f"权利告知书给予 {days} 个工作日陈述、申辩期限，本机关规定不少于 {minimum} 个工作日",
            statement_days=days,
            minimum=minimum,
        )
    # The decision waits for the hearing request period too when the notice offers a hearing.
    wait = max(days, HEARING_REQUEST_DAYS) if event.hearing_right else days
    period = facts.calendar.add_working_days(facts.today, wait)
    file.notice = NoticeState(
        event_id=event.id,
        served_on=facts.today,
        statement_days=days,
        hearing_right=event.hearing_right,
        period_ends=period.deadline,
        fallback=period.fallback,
    )
    file.documents.append(
        DocumentEntry(
            name=event.notice,
            number=event.document_number,
            method=event.method,
            served_to=event.served_to,
            party_present=True,
            event_id=event.id,
            served_on=facts.today,
        )
    )
    file.state = CaseState.NOTIFIED


def _require_notice(file: CaseFile, what: str) -> NoticeState:
    if file.notice is None:
        raise errors.RightsNoticeMissing(f"尚未向当事人送达权利告知书，不能{what}")
    return file.notice


def _statement(file: CaseFile, event: StatementReceived, facts: Facts) -> None:
    _require_notice(file, "记录陈述、申辩")
    if event.waived and not event.in_writing:
        raise errors.WaiverNotInWriting("当事人放弃陈述、申辩须有书面声明，口头放弃不能缩短期限")
    file.statements += 1
    if event.waived:
        file.waived_on = facts.today


def _hearing(file: CaseFile, event: HearingRequested, facts: Facts) -> None:
    _require_notice(file, "记录听证申请")
    file.hearing_requested_on = facts.today


def _is_organisation(file: CaseFile) -> bool:
    return any(isinstance(entry.party, Organisation) for entry in file.parties)


def _needs_hearing(file: CaseFile, event: DecisionProposed, rules: CaseRules) -> bool:
    fine_threshold = (
        rules.hearing_fine_organisation_yuan
        if _is_organisation(file)
        else rules.hearing_fine_person_yuan
    )
    return (
        bool(HEARING_PENALTIES & set(event.penalties))
        or ("罚款" in event.penalties and event.fine_yuan >= fine_threshold)
        or event.confiscation_yuan >= rules.hearing_confiscation_yuan > 0
    )


def _check_amounts(event: DecisionProposed) -> None:
    for name, value in (
        ("fine_yuan", event.fine_yuan),
        ("confiscation_yuan", event.confiscation_yuan),
    ):
        if not value.is_finite() or value < 0:
            raise errors.AmountInvalid("金额不能为负数", field=name)
    if "罚款" in event.penalties and event.fine_yuan <= 0:
        raise errors.AmountInvalid("处以罚款须写明罚款金额", field="fine_yuan")


def _check_simple_procedure(file: CaseFile, event: DecisionProposed) -> None:
    extra = set(event.penalties) - SIMPLE_PENALTIES
    organisation = _is_organisation(file)
    limit = SIMPLE_FINE_ORGANISATION if organisation else SIMPLE_FINE_PERSON
    if extra:
        raise errors.SimpleProcedureLimit(
            f"当场处罚只能给予警告、通报批评或小额罚款，不能{'、'.join(sorted(extra))}",
            penalties=sorted(extra),
        )
    if event.fine_yuan > limit:
        who = "法人或其他组织" if organisation else "公民"
        raise errors.SimpleProcedureLimit(
            f"当场对{who}罚款不得超过 {limit} 元（拟罚 {event.fine_yuan} 元），应适用普通程序",
            limit=str(limit),
        )


def _decision(file: CaseFile, event: DecisionProposed, facts: Facts) -> None:
    if file.decision is not None:
        raise errors.DecisionExists("本案已作出决定，不能重复作出")
    _check_amounts(event)
    if not file.parties:
        raise errors.PartyMissing("尚未确认当事人，不能作出决定")
    if file.single_officer_events and not _one_officer_allowed(
        file, list(event.penalties), facts.rules
    ):
        raise errors.TwoOfficersRequired(
            "本案有由一名执法人员完成的环节，只有本机关规定允许单人执法的决定才能作出"
        )
    if event.penalties != [NO_PENALTY]:
        notice = _require_notice(file, "作出处罚决定")
        if file.procedure == "当场处理":
            _check_simple_procedure(file, event)
        else:
            if _needs_hearing(file, event, facts.rules) and not notice.hearing_right:
                raise errors.HearingRightNotNotified(
                    "拟作出的处罚属于应当告知听证权利的情形，须重新送达告知听证权利的权利告知书"
                )
            if file.waived_on is None and facts.today <= notice.period_ends:
                raise errors.StatementPeriodRunning(
                    f"陈述、申辩期限至 {notice.period_ends.isoformat()} 届满，"
                    f"届满后（或当事人书面放弃后）方可作出决定",
                    period_ends=notice.period_ends.isoformat(),
                )
    file.decision = DecisionState(
        event_id=event.id,
        decided_at=facts.now,
        decided_on=facts.today,
        penalties=list(event.penalties),
        fine_yuan=event.fine_yuan,
        confiscation_yuan=event.confiscation_yuan,
    )
    file.state = CaseState.DECIDED


def _document(file: CaseFile, event: DocumentServed, facts: Facts) -> None:
    is_decision = event.document in DECISION_DOCUMENTS
    if is_decision and file.decision is None:
        raise errors.DecisionMissing(f"本案尚未作出决定，不能送达《{event.document}》")
    file.documents.append(
        DocumentEntry(
            name=event.document,
            number=event.document_number,
            method=event.method,
            served_to=event.served_to,
            party_present=event.party_present,
            event_id=event.id,
            served_on=facts.today,
        )
    )
    if is_decision:
        file.state = CaseState.SERVED


def _close(file: CaseFile, event: CaseClosed, facts: Facts) -> None:
    file.closed_at = facts.now
    file.closed_on = facts.today
    file.state = CaseState.CLOSED


_HANDLERS: dict[type, Callable[[CaseFile, Any, Facts], None]] = {
    PartyIdentified: _party,
    CredentialShown: _credential,
    InspectionRecorded: _inspection,
    EvidenceAttached: _evidence,
    NoticeServed: _notice,
    StatementReceived: _statement,
    HearingRequested: _hearing,
    DecisionProposed: _decision,
    DocumentServed: _document,
    CaseClosed: _close,
}


def apply(file: CaseFile | None, event: Any, facts: Facts) -> CaseFile:
    """The case file with ``event`` applied; raises an ``EventRefused`` and changes nothing if not."""
    if isinstance(event, CaseOpened):
        if file is not None:
            raise errors.CaseExists("该案件编号已立案", case_id=str(event.case_id))
        file = _open(event, facts)
        alone, flaws = _check_officers(file, event, facts)
    else:
        if file is None:
            raise errors.CaseNotOnServer(case_id=str(event.case_id))
        if file.agency_id != facts.agency_id:
            raise errors.CaseOfOtherAgency(case_id=str(event.case_id))
        if file.closed_on is not None:
            raise errors.CaseAlreadyClosed()
        alone, flaws = _check_officers(file, event, facts)
        _HANDLERS[type(event)](file, event, facts)
    known = file.officer_numbers()
    for number in dict.fromkeys(event.officers):
        if number not in known:
            officer = facts.officers.get(number)
            file.officers.append(OfficerEntry(number=number, name=officer.name if officer else ""))
            known.append(number)
    file.flaws.extend(flaws)
    if alone:
        file.single_officer_events.append(event.id)
    file.last_hlc = max(file.last_hlc, event.hlc)
    file.event_count += 1
    return file
