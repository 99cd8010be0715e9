"""Publication and withdrawal of enforcement decisions (事后公开), DESIGN.md §2 and §7.

* ``record_decision``: a decision was issued → its publication is scheduled at once. Deadline:
  行政许可/行政处罚 7 working days after the decision date, all others 20; the agency's lag (working
  days after service, default 0 = the day it is served) may bring it sooner, never later.
  Minors and decisions the agency marks as not to be published are excluded and listed.
* ``publish_one``: (jobs) redact, scan, publish — or hold and flag. Exactly once: the state moves by
  a conditional UPDATE and the public record is unique per decision.
* ``withdraw``: a decision was changed, revoked, confirmed illegal or void → the public record is
  withdrawn in the same transaction, and a withdrawal notice with the reason stays public.

Every state change is written to the ledger in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure import pii_scanner, redaction
from disclosure.hooks import PublishGate
from disclosure.models import (
    AnnualReport,
    DecisionState,
    DisclosureDecision,
    DisclosureRecord,
    DisclosureSettings,
    HoldCause,
)
from disclosure.schemas import (
    Dashboard,
    DecisionChanged,
    DecisionIssued,
    DecisionStatus,
    Exclusion,
    Organisation,
    Person,
    PublicText,
    ReportStatus,
    SettingsView,
)
from mobile_api.contracts.calendar import Deadline, WorkingDayCalendar
from server.core import ledger
from server.core.clock import CHINA_TZ
from server.core.errors import Conflict, NotFound, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import ActKind, Agency

log = logging.getLogger("zhifa.disclosure")

# 行政许可 and 行政处罚 within 7 working days; everything else within 20 (118号).
SHORT_WINDOW_KINDS = frozenset({ActKind.LICENSING, ActKind.PENALTY})
SHORT_WINDOW, LONG_WINDOW = 7, 20
WITHDRAWAL_WINDOW = 3  # working days after the change (行政处罚法 第48条)
MINOR = "未成年人"
# Record ids: decision date ordinal in the high bits, a per-day counter in the low 20 bits.
DAY_SHIFT = 20


class DecisionConflict(Conflict):
    code = "disclosure_decision_conflict"
    title = "该决定已以不同内容登记"


class DecisionUnknown(NotFound):
    code = "disclosure_decision_not_found"
    title = "未找到该执法决定"


class DecisionInvalid(ValidationFailed):
    code = "disclosure_decision_invalid"
    title = "执法决定数据不完整或有误"


class StateConflict(Conflict):
    code = "disclosure_state_conflict"
    title = "该决定当前状态下不能执行此操作"


class PiiFound(ValidationFailed):
    code = "disclosure_pii_found"
    title = "公开文本仍含个人信息"


def china_day(now: dt.datetime) -> dt.date:
    return now.astimezone(CHINA_TZ).date()


def record_id_range(first: dt.date, last: dt.date) -> tuple[int, int]:
    """Record ids of decisions dated ``first``..``last`` lie in ``[low, high)``."""
    return first.toordinal() << DAY_SHIFT, (last.toordinal() + 1) << DAY_SHIFT


def publication_deadline(
    calendar: WorkingDayCalendar, kind: ActKind, decision_date: dt.date
) -> Deadline:
    days = SHORT_WINDOW if kind in SHORT_WINDOW_KINDS else LONG_WINDOW
    return calendar.add_working_days(decision_date, days)


def planned_publication(
    calendar: WorkingDayCalendar, due_on: dt.date, served_on: dt.date | None, lag: int
) -> dt.date:
    """The agency's day: ``lag`` working days after service (0 = the day of service), capped at
    the statutory deadline. Unserved decisions are published on the deadline."""
    if served_on is None:
        return due_on
    planned = served_on if lag == 0 else calendar.add_working_days(served_on, lag).deadline
    return min(planned, due_on)


def _sha256(data: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()


def _ref(decision: DisclosureDecision) -> str:
    return f"disclosure:{decision.id}"


async def agency_settings(session: AsyncSession, agency_id: uuid.UUID) -> SettingsView:
    row = await session.get(DisclosureSettings, agency_id)
    if row is None:
        return SettingsView()
    return SettingsView(
        publish_lag_working_days=row.publish_lag_working_days,
        report_due_month=row.report_due_month,
        report_due_day=row.report_due_day,
    )


def report_due_on(settings: SettingsView, year: int) -> dt.date:
    """Day by which the statistics of ``year - 1`` must be public (a 31 in a short month: its end)."""
    month = settings.report_due_month
    end = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(settings.report_due_day, end))


async def update_settings(
    session: AsyncSession, keyring: KeyRing, agency: Agency, new: SettingsView, now: dt.datetime
) -> SettingsView:
    row = await session.get(DisclosureSettings, agency.id)
    if row is None:
        row = DisclosureSettings(agency_id=agency.id, updated_at=now)
        session.add(row)
    row.publish_lag_working_days = new.publish_lag_working_days
    row.report_due_month = new.report_due_month
    row.report_due_day = new.report_due_day
    row.updated_at = now
    await ledger.append(
        session,
        keyring,
        kind="disclosure.settings",
        ref=f"agency:{agency.code}",
        data=msgspec.to_builtins(new),
        now=now,
    )
    return new


def _validated(event: DecisionIssued) -> tuple[DecisionIssued, dict[str, Any]]:
    # A Struct built in Python skips its constraints; a round trip through convert applies them.
    payload = msgspec.to_builtins(event)
    try:
        checked = msgspec.convert(payload, DecisionIssued)
    except msgspec.ValidationError as exc:
        raise DecisionInvalid(f"执法决定数据有误：{exc}") from exc
    return checked, payload


async def record_decision(
    session: AsyncSession,
    event: DecisionIssued,
    *,
    calendar: WorkingDayCalendar,
    keyring: KeyRing,
    now: dt.datetime,
) -> DecisionStatus:
    """Schedule the publication of an issued decision (or list it as excluded). Idempotent: the
    same event again returns the stored state; a different one under the same number is a 409."""
    event, payload = _validated(event)
    digest = _sha256(payload)
    existing = await session.scalar(
        select(DisclosureDecision).where(
            DisclosureDecision.agency_id == event.agency_id,
            DisclosureDecision.decision_number == event.decision_number,
        )
    )
    if existing is not None:
        if existing.payload_sha256 != digest:
            raise DecisionConflict(
                f"决定书文号 {event.decision_number} 已登记过不同的内容",
                decision_number=event.decision_number,
            )
        return await status_of(session, existing, china_day(now))
    agency = await session.get(Agency, event.agency_id)
    if agency is None:
        raise DecisionInvalid("执法主体不存在", agency_id=str(event.agency_id))
    today = china_day(now)
    if event.decision_date > today:
        raise DecisionInvalid("决定日期晚于今天", decision_date=str(event.decision_date))
    if event.served_on is not None and event.served_on < event.decision_date:
        raise DecisionInvalid("送达日期早于决定日期", served_on=str(event.served_on))
    kind = ActKind(event.act_kind)
    deadline = publication_deadline(calendar, kind, event.decision_date)
    settings = await agency_settings(session, agency.id)
    decision = DisclosureDecision(
        id=uuid.uuid4(),
        agency_id=agency.id,
        case_id=event.case_id,
        decision_number=event.decision_number,
        decision_date=event.decision_date,
        served_on=event.served_on,
        act_kind=kind,
        category=event.category,
        outcome=event.outcome,
        payload=payload,
        payload_sha256=digest,
        legal_review=event.legal_review,
        hearing=event.hearing,
        state=DecisionState.SCHEDULED,
        due_on=deadline.deadline,
        due_fallback=deadline.fallback,
        publish_on=planned_publication(
            calendar, deadline.deadline, event.served_on, settings.publish_lag_working_days
        ),
        hold_reason="",
        exclusion_kind="",
        exclusion_reason="",
        change_kind="",
        change_via="",
        change_reason="",
        withdraw_due_fallback=False,
        received_at=now,
    )
    if isinstance(event.subject, Person) and event.subject.minor:
        decision.state = DecisionState.EXCLUDED
        decision.exclusion_kind = MINOR
        decision.exclusion_reason = "执法对象为未成年人，依法不予公开"
    elif event.withhold is not None:
        decision.state = DecisionState.EXCLUDED
        decision.exclusion_kind = event.withhold.kind
        decision.exclusion_reason = event.withhold.reason
    session.add(decision)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="disclosure.received",
        ref=_ref(decision),
        data={
            "agency": agency.code,
            "decision_number": decision.decision_number,
            "case_id": str(decision.case_id),
            "payload_sha256": digest,
            "state": decision.state.value,
            "publish_on": decision.publish_on.isoformat(),
            "due_on": decision.due_on.isoformat(),
            "due_fallback": decision.due_fallback,
            "exclusion_kind": decision.exclusion_kind,
        },
        now=now,
    )
    if decision.state is DecisionState.EXCLUDED:
        log.info("decision %s excluded from publication: %s", decision.id, decision.exclusion_kind)
    return status_view(decision, None, today)


# --- the public record -------------------------------------------------------------------------


class PublicDraft(msgspec.Struct, frozen=True):
    """The redacted fields of a public record, and what the scanner found in them."""

    subject_type: str
    subject: str
    credit_code: str
    conclusion: str
    basis: str
    facts: str
    findings: list[pii_scanner.Finding]

    def search_text(self, decision_number: str) -> str:
        parts = (decision_number, self.subject, self.credit_code, self.conclusion, self.facts)
        return "\n".join(p for p in (*parts, self.basis) if p)


class Redactor:
    """What redaction needs to know about one decision's people, applied to any of its texts."""

    def __init__(self, event: DecisionIssued) -> None:
        subject = event.subject
        # Natural persons: the party is shown as 张某, everyone else named in the case vanishes.
        self.parties = [subject.name] if isinstance(subject, Person) else []
        self.others = list(event.other_persons)
        # An organisation keeps its name and 统一社会信用代码.
        self.keep = [subject.name, subject.credit_code] if isinstance(subject, Organisation) else []

    def redact(self, text: str) -> str:
        return redaction.redact_text(text, parties=self.parties, others=self.others, keep=self.keep)

    def scan(self, text: str) -> list[pii_scanner.Finding]:
        return pii_scanner.scan(text, names=self.parties + self.others, allowed=self.keep)


def draft_public(
    decision: DisclosureDecision, agency_name: str, override: PublicText | None = None
) -> PublicDraft:
    """Redact a decision for the public and scan every field that would be shown."""
    event = msgspec.convert(decision.payload, DecisionIssued)
    text = override or (
        msgspec.convert(decision.public_text, PublicText)
        if decision.public_text
        else PublicText(conclusion=event.conclusion, basis=event.basis, facts=event.facts)
    )
    redactor = Redactor(event)
    if isinstance(event.subject, Organisation):
        subject_type, subject = "法人或其他组织", event.subject.name
        credit_code = event.subject.credit_code
    else:
        subject_type, subject = "自然人", redaction.person_display(event.subject.name)
        credit_code = ""
    conclusion, basis, facts = (
        redactor.redact(t) for t in (text.conclusion, text.basis, text.facts)
    )
    shown = (
        agency_name,
        decision.decision_number,
        decision.category,
        subject,
        conclusion,
        basis,
        facts,
    )
    return PublicDraft(
        subject_type=subject_type,
        subject=subject,
        credit_code=credit_code,
        conclusion=conclusion,
        basis=basis,
        facts=facts,
        findings=redactor.scan("\n".join(shown)),
    )


def describe_findings(findings: Sequence[pii_scanner.Finding]) -> str:
    return "；".join(f"{f.label}（{f.masked}）" for f in findings)


async def _next_record_id(session: AsyncSession, decision_date: dt.date) -> int:
    low, high = record_id_range(decision_date, decision_date)
    last = await session.scalar(
        select(func.max(DisclosureRecord.id)).where(
            DisclosureRecord.id >= low, DisclosureRecord.id < high
        )
    )
    return low if last is None else last + 1


async def _hold(
    session: AsyncSession,
    keyring: KeyRing,
    decision: DisclosureDecision,
    cause: HoldCause,
    reason: str,
    now: dt.datetime,
) -> None:
    if (
        decision.state is DecisionState.HELD
        and decision.hold_cause is cause
        and decision.hold_reason == reason
    ):
        return  # still held for the same reason: nothing new to record
    decision.state = DecisionState.HELD
    decision.hold_cause = cause
    decision.hold_reason = reason
    decision.held_at = decision.held_at or now
    await ledger.append(
        session,
        keyring,
        kind="disclosure.held",
        ref=_ref(decision),
        data={"cause": cause.value, "reason": reason},
        now=now,
    )
    log.warning("publication of decision %s held (%s): %s", decision.id, cause.value, reason)


async def flag_overdue(
    session: AsyncSession, keyring: KeyRing, decision: DisclosureDecision, now: dt.datetime
) -> None:
    """Nothing is late silently: the first run that finds it overdue flags it."""
    decision.overdue_flagged_at = now
    await ledger.append(
        session,
        keyring,
        kind="disclosure.overdue",
        ref=_ref(decision),
        data={"due_on": decision.due_on.isoformat(), "state": decision.state.value},
        now=now,
    )
    log.warning("publication of decision %s is overdue (due %s)", decision.id, decision.due_on)


async def publish_one(
    session: AsyncSession,
    decision: DisclosureDecision,
    *,
    gate: PublishGate,
    keyring: KeyRing,
    now: dt.datetime,
) -> DecisionState:
    """Publish one due decision, or hold it. The caller's transaction holds the result."""
    verdict = await gate(session, decision.case_id)
    if verdict is not True:
        reason = verdict if isinstance(verdict, str) and verdict else "法制审核尚未通过"
        await _hold(session, keyring, decision, HoldCause.REVIEW, reason, now)
        return decision.state
    agency = await session.get(Agency, decision.agency_id)
    assert agency is not None  # foreign key
    draft = draft_public(decision, agency.name)
    if draft.findings:
        reason = f"公开文本经扫描发现个人信息：{describe_findings(draft.findings)}"
        await _hold(session, keyring, decision, HoldCause.SCANNER, reason, now)
        return decision.state
    # Another instance may have published it since we read it: only one UPDATE can win.
    moved = await session.execute(
        update(DisclosureDecision)
        .where(
            DisclosureDecision.id == decision.id,
            DisclosureDecision.state.in_([DecisionState.SCHEDULED, DecisionState.HELD]),
        )
        .values(state=DecisionState.PUBLISHED, published_at=now, hold_cause=None, hold_reason="")
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return DecisionState.PUBLISHED
    record = DisclosureRecord(
        id=await _next_record_id(session, decision.decision_date),
        decision_id=decision.id,
        agency_id=agency.id,
        agency_code=agency.code,
        agency_name=agency.name,
        decision_number=decision.decision_number,
        decision_date=decision.decision_date,
        act_kind=decision.act_kind.value,
        category=decision.category,
        subject_type=draft.subject_type,
        subject=draft.subject,
        credit_code=draft.credit_code,
        conclusion=draft.conclusion,
        basis=draft.basis,
        facts=draft.facts,
        published_on=china_day(now),
        status="published",
        withdrawal_kind="",
        withdrawal_reason="",
        search_text=draft.search_text(decision.decision_number),
    )
    session.add(record)
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="disclosure.published",
        ref=_ref(decision),
        data={
            "record_id": record.id,
            "published_on": record.published_on.isoformat(),
            "due_on": decision.due_on.isoformat(),
            "record_sha256": _sha256(public_fields(record)),
        },
        now=now,
    )
    return DecisionState.PUBLISHED


def public_fields(record: DisclosureRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "agency": record.agency_code,
        "decision_number": record.decision_number,
        "decision_date": record.decision_date.isoformat(),
        "act_kind": record.act_kind,
        "category": record.category,
        "subject": record.subject,
        "credit_code": record.credit_code,
        "conclusion": record.conclusion,
        "basis": record.basis,
        "facts": record.facts,
    }


# --- withdrawal --------------------------------------------------------------------------------


async def _decision_by_number(
    session: AsyncSession, agency_id: uuid.UUID, number: str
) -> DisclosureDecision:
    decision = await session.scalar(
        select(DisclosureDecision)
        .where(
            DisclosureDecision.agency_id == agency_id,
            DisclosureDecision.decision_number == number,
        )
        .with_for_update()
    )
    if decision is None:
        raise DecisionUnknown(f"未登记决定书文号为 {number} 的执法决定", decision_number=number)
    return decision


def _notice_reason(decision: DisclosureDecision, event: DecisionChanged) -> str:
    """The public reason: the agency's words redacted, or a plain statement if they still fail."""
    redactor = Redactor(msgspec.convert(decision.payload, DecisionIssued))
    reason = redactor.redact(event.reason)
    if redactor.scan(reason):
        return f"该决定经{event.via}{event.change}，依法撤下公示。"
    return reason


async def withdraw(
    session: AsyncSession,
    event: DecisionChanged,
    *,
    calendar: WorkingDayCalendar,
    keyring: KeyRing,
    now: dt.datetime,
) -> DecisionStatus:
    """A decision was changed, revoked, confirmed illegal or void: withdraw it now.

    Published → withdrawn at once, its notice stays public; not yet published → cancelled, never
    published; excluded → stays excluded. The first change is kept; repeats change nothing.
    """
    try:
        event = msgspec.convert(msgspec.to_builtins(event), DecisionChanged)
    except msgspec.ValidationError as exc:
        raise DecisionInvalid(f"变更数据有误：{exc}") from exc
    decision = await _decision_by_number(session, event.agency_id, event.decision_number)
    today = china_day(now)
    if decision.case_id != event.case_id:
        raise DecisionConflict(
            "决定书文号与案件不符",
            decision_number=event.decision_number,
            case_id=str(event.case_id),
        )
    if decision.change_kind:
        return await status_of(session, decision, today)
    if event.changed_on > today:
        raise DecisionInvalid("变更日期晚于今天", changed_on=str(event.changed_on))
    due = calendar.add_working_days(event.changed_on, WITHDRAWAL_WINDOW)
    decision.change_kind = event.change
    decision.change_via = event.via
    decision.change_reason = event.reason
    decision.changed_on = event.changed_on
    decision.withdraw_due_on = due.deadline
    decision.withdraw_due_fallback = due.fallback
    data: dict[str, Any] = {
        "change": event.change,
        "via": event.via,
        "changed_on": event.changed_on.isoformat(),
        "withdraw_due_on": due.deadline.isoformat(),
    }
    if decision.state is DecisionState.PUBLISHED:
        record = await session.scalar(
            select(DisclosureRecord).where(DisclosureRecord.decision_id == decision.id)
        )
        assert record is not None  # published decisions have their record
        record.status = "withdrawn"
        record.withdrawn_at = now
        record.withdrawn_on = today
        record.withdrawal_kind = event.change
        record.withdrawal_reason = _notice_reason(decision, event)
        # The decision itself leaves the public record; the notice keeps number, date and reason.
        record.conclusion = record.basis = record.facts = record.search_text = ""
        decision.state = DecisionState.WITHDRAWN
        decision.withdrawn_at = now
        data["record_id"] = record.id
        kind = "disclosure.withdrawn"
    elif decision.state in (DecisionState.SCHEDULED, DecisionState.HELD):
        decision.state = DecisionState.CANCELLED
        kind = "disclosure.cancelled"
    else:
        kind = "disclosure.changed"
    await ledger.append(session, keyring, kind=kind, ref=_ref(decision), data=data, now=now)
    return await status_of(session, decision, today)


# --- staff actions -----------------------------------------------------------------------------


async def decision_of_agency(
    session: AsyncSession, decision_id: uuid.UUID, agency_id: uuid.UUID | None
) -> DisclosureDecision:
    decision = await session.get(DisclosureDecision, decision_id, with_for_update=True)
    if decision is None or (agency_id is not None and decision.agency_id != agency_id):
        raise DecisionUnknown()
    return decision


async def exclude(
    session: AsyncSession,
    keyring: KeyRing,
    decision: DisclosureDecision,
    exclusion: Exclusion,
    now: dt.datetime,
) -> DecisionStatus:
    """The agency decides a not yet published decision must not be published (listed, with why)."""
    if decision.state not in (DecisionState.SCHEDULED, DecisionState.HELD):
        raise StateConflict("只有尚未公开的决定可以标记为不予公开；已公开的决定须依法撤下")
    decision.state = DecisionState.EXCLUDED
    decision.exclusion_kind = exclusion.kind
    decision.exclusion_reason = exclusion.reason
    decision.hold_cause, decision.hold_reason = None, ""
    await ledger.append(
        session,
        keyring,
        kind="disclosure.excluded",
        ref=_ref(decision),
        data={"kind": exclusion.kind, "reason_sha256": _sha256(exclusion.reason)},
        now=now,
    )
    return await status_of(session, decision, china_day(now))


async def correct_public_text(
    session: AsyncSession,
    keyring: KeyRing,
    decision: DisclosureDecision,
    text: PublicText,
    now: dt.datetime,
) -> DecisionStatus:
    """Staff reword a decision the scanner held. Checked now; published at the next run."""
    if decision.state not in (DecisionState.SCHEDULED, DecisionState.HELD):
        raise StateConflict("只有尚未公开的决定可以修改公开文本")
    agency = await session.get(Agency, decision.agency_id)
    assert agency is not None
    draft = draft_public(decision, agency.name, override=text)
    if draft.findings:
        raise PiiFound(
            f"修改后的公开文本仍含个人信息：{describe_findings(draft.findings)}",
            findings=[msgspec.to_builtins(f) for f in draft.findings],
        )
    decision.public_text = msgspec.to_builtins(text)
    if decision.hold_cause is HoldCause.SCANNER:
        decision.state = DecisionState.SCHEDULED
        decision.hold_cause, decision.hold_reason = None, ""
    await ledger.append(
        session,
        keyring,
        kind="disclosure.corrected",
        ref=_ref(decision),
        data={"public_text_sha256": _sha256(decision.public_text)},
        now=now,
    )
    return await status_of(session, decision, china_day(now))


# --- views -------------------------------------------------------------------------------------

UNPUBLISHED = (DecisionState.SCHEDULED, DecisionState.HELD)


def is_overdue(decision: DisclosureDecision, today: dt.date) -> bool:
    if decision.state in UNPUBLISHED:
        return today > decision.due_on
    if decision.state is DecisionState.PUBLISHED and decision.published_at is not None:
        return china_day(decision.published_at) > decision.due_on
    return False


def status_view(
    decision: DisclosureDecision, record_id: int | None, today: dt.date
) -> DecisionStatus:
    return DecisionStatus(
        id=decision.id,
        case_id=decision.case_id,
        decision_number=decision.decision_number,
        act_kind=decision.act_kind.value,
        category=decision.category,
        decision_date=decision.decision_date,
        served_on=decision.served_on,
        state=decision.state.value,
        publish_on=decision.publish_on,
        due_on=decision.due_on,
        due_fallback=decision.due_fallback,
        overdue=is_overdue(decision, today),
        overdue_flagged_at=decision.overdue_flagged_at,
        hold_cause=decision.hold_cause.value if decision.hold_cause else None,
        hold_reason=decision.hold_reason,
        exclusion_kind=decision.exclusion_kind,
        exclusion_reason=decision.exclusion_reason,
        published_at=decision.published_at,
        record_id=record_id,
        change_kind=decision.change_kind,
        changed_on=decision.changed_on,
        withdraw_due_on=decision.withdraw_due_on,
        withdrawn_at=decision.withdrawn_at,
    )


async def status_of(
    session: AsyncSession, decision: DisclosureDecision, today: dt.date
) -> DecisionStatus:
    record_id = await session.scalar(
        select(DisclosureRecord.id).where(DisclosureRecord.decision_id == decision.id)
    )
    return status_view(decision, record_id, today)


# --- the staff dashboard -----------------------------------------------------------------------

DASHBOARD_ROWS = 100


async def _statuses(
    session: AsyncSession, decisions: Sequence[DisclosureDecision], today: dt.date
) -> list[DecisionStatus]:
    ids = [d.id for d in decisions]
    records: dict[uuid.UUID, int] = {}
    if ids:
        rows = await session.execute(
            select(DisclosureRecord.decision_id, DisclosureRecord.id).where(
                DisclosureRecord.decision_id.in_(ids)
            )
        )
        records = {decision_id: record_id for decision_id, record_id in rows.all() if decision_id}
    return [status_view(d, records.get(d.id), today) for d in decisions]


async def list_decisions(
    session: AsyncSession,
    agency_id: uuid.UUID,
    today: dt.date,
    *,
    states: Sequence[DecisionState] = (),
    overdue_only: bool = False,
    order: Any = None,
    limit: int = DASHBOARD_ROWS,
    offset: int = 0,
) -> list[DecisionStatus]:
    stmt = select(DisclosureDecision).where(DisclosureDecision.agency_id == agency_id)
    if states:
        stmt = stmt.where(DisclosureDecision.state.in_(states))
    if overdue_only:
        stmt = stmt.where(
            DisclosureDecision.state.in_(UNPUBLISHED), DisclosureDecision.due_on < today
        )
    order = order if order is not None else DisclosureDecision.due_on
    rows = await session.scalars(
        stmt.order_by(order, DisclosureDecision.id).offset(offset).limit(limit)
    )
    return await _statuses(session, list(rows), today)


async def dashboard(session: AsyncSession, agency: Agency, today: dt.date) -> Dashboard:
    """What is due, held, overdue, published, withdrawn and not published, for one agency."""
    counts = {state.value: 0 for state in DecisionState}
    rows = await session.execute(
        select(DisclosureDecision.state, func.count())
        .where(DisclosureDecision.agency_id == agency.id)
        .group_by(DisclosureDecision.state)
    )
    for state, count in rows.all():
        counts[DecisionState(state).value] = int(count)
    counts["overdue"] = int(
        await session.scalar(
            select(func.count()).where(
                DisclosureDecision.agency_id == agency.id,
                DisclosureDecision.state.in_(UNPUBLISHED),
                DisclosureDecision.due_on < today,
            )
        )
        or 0
    )
    settings = await agency_settings(session, agency.id)
    last_year = today.year - 1
    report = await session.scalar(
        select(AnnualReport).where(
            AnnualReport.agency_id == agency.id, AnnualReport.year == last_year
        )
    )
    due_on = report_due_on(settings, today.year)
    return Dashboard(
        agency_code=agency.code,
        today=today,
        counts=counts,
        overdue=await list_decisions(session, agency.id, today, overdue_only=True),
        held=await list_decisions(session, agency.id, today, states=[DecisionState.HELD]),
        due=await list_decisions(session, agency.id, today, states=[DecisionState.SCHEDULED]),
        recently_published=await list_decisions(
            session,
            agency.id,
            today,
            states=[DecisionState.PUBLISHED],
            order=DisclosureDecision.published_at.desc(),
            limit=20,
        ),
        withdrawals=await list_decisions(
            session,
            agency.id,
            today,
            states=[DecisionState.WITHDRAWN],
            order=DisclosureDecision.withdrawn_at.desc(),
        ),
        not_published=await list_decisions(
            session,
            agency.id,
            today,
            states=[DecisionState.EXCLUDED, DecisionState.CANCELLED],
            order=DisclosureDecision.decision_date.desc(),
        ),
        report=ReportStatus(
            year=last_year,
            due_on=due_on,
            published_at=report.published_at if report else None,
            overdue=report is None and today > due_on,
        ),
    )
