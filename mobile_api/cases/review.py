"""Deadlines of a case and the machine case review (案卷评查): the flaws a case file shows.

Deadlines (DESIGN.md §2) run from dates the server recorded, and "today" is the server's:

* 作出决定: 90 days from filing (第60条), calendar days, moved to the next working day when the
  last day is not one (民法典 第203条);
* 送达决定书: 7 working days from the decision (第61条);
* 归档: 30 days from closing (calendar days, as above).

Flaws are computed when the file is read, so missed and near deadlines appear as time passes;
the ones fixed at acceptance (an officer not qualified at the time) are stored on the file.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from mobile_api.cases.assembly import DECISION_DOCUMENTS, NO_PENALTY, CaseFile, Flaw
from mobile_api.cases.rules import CaseRules
from mobile_api.contracts.calendar import Deadline as CountedPeriod
from mobile_api.contracts.calendar import WorkingDayCalendar

DECISION_DAYS = 90
SERVICE_WORKING_DAYS = 7
ARCHIVE_DAYS = 30


class DeadlineView(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    label: str
    start: dt.date
    due: dt.date
    met_on: dt.date | None
    status: str  # 已完成 / 逾期完成 / 未到期 / 即将到期 / 已逾期
    # The period ran into a year whose holidays are not loaded; counted conservatively.
    fallback: bool


class _Period(msgspec.Struct, frozen=True):
    code: str
    label: str
    counted: CountedPeriod
    met_on: dt.date | None


def _decision_document_served_on(file: CaseFile) -> dt.date | None:
    served = [d.served_on for d in file.documents if d.name in DECISION_DOCUMENTS]
    return min(served) if served else None


def _periods(file: CaseFile, calendar: WorkingDayCalendar) -> list[_Period]:
    periods = []
    if file.procedure == "立案":
        periods.append(
            _Period(
                "decision",
                "作出处理决定（立案之日起 90 日）",
                calendar.add_calendar_days(file.opened_on, DECISION_DAYS),
                file.decision.decided_on if file.decision else None,
            )
        )
    if file.decision is not None:
        periods.append(
            _Period(
                "service",
                "送达决定书（决定之日起 7 个工作日）",
                calendar.add_working_days(file.decision.decided_on, SERVICE_WORKING_DAYS),
                _decision_document_served_on(file),
            )
        )
    if file.closed_on is not None:
        # Archiving (sealing the case file, DESIGN.md §5) is not recorded yet: the period stays open.
        periods.append(
            _Period(
                "archive",
                "立卷归档（结案之日起 30 日）",
                calendar.add_calendar_days(file.closed_on, ARCHIVE_DAYS),
                None,
            )
        )
    return periods


def _status(period: _Period, today: dt.date, calendar: WorkingDayCalendar, rules: CaseRules) -> str:
    due = period.counted.deadline
    if period.met_on is not None:
        return "已完成" if period.met_on <= due else "逾期完成"
    if today > due:
        return "已逾期"
    if calendar.working_days_between(today, due) <= rules.near_deadline_working_days:
        return "即将到期"
    return "未到期"


def deadlines(
    file: CaseFile, today: dt.date, calendar: WorkingDayCalendar, rules: CaseRules
) -> list[DeadlineView]:
    return [
        DeadlineView(
            code=period.code,
            label=period.label,
            start=period.counted.start,
            due=period.counted.deadline,
            met_on=period.met_on,
            status=_status(period, today, calendar, rules),
            fallback=period.counted.fallback,
        )
        for period in _periods(file, calendar)
    ]


def next_due(file: CaseFile, calendar: WorkingDayCalendar) -> dt.date | None:
    """The earliest deadline not yet met: stored on the case so "overdue" is a query."""
    open_dues = [p.counted.deadline for p in _periods(file, calendar) if p.met_on is None]
    return min(open_dues) if open_dues else None


def _required_documents(file: CaseFile) -> list[str]:
    required = []
    if file.measures:
        required.append("查封（扣押）决定书")
    decision = file.decision
    if decision is not None and decision.penalties != [NO_PENALTY] and file.closed_on is not None:
        name = "当场行政处罚决定书" if file.procedure == "当场处理" else "行政处罚决定书"
        required.append(name)
    if file.hearing_requested_on is not None and decision is not None:
        required.append("听证通知书")
    return required


def flaws(
    file: CaseFile, today: dt.date, calendar: WorkingDayCalendar, rules: CaseRules
) -> list[Flaw]:
    found = list(file.flaws)
    for view in deadlines(file, today, calendar, rules):
        if view.status in ("已逾期", "逾期完成"):
            found.append(
                Flaw(code="deadline_missed", message=f"{view.label}期限 {view.due}：{view.status}")
            )
        elif view.status == "即将到期":
            found.append(
                Flaw(code="deadline_near", message=f"{view.label}期限 {view.due} 即将届满")
            )
    for measure in file.measures:
        if not measure.recording_ids:
            found.append(
                Flaw(
                    code="recording_missing",
                    message=f"{'、'.join(measure.measures)}未关联全过程音像记录",
                    event_id=measure.event_id,
                )
            )
    for name in _required_documents(file):
        if not file.has_document({name}):
            found.append(Flaw(code="document_missing", message=f"案卷缺少《{name}》"))
    if file.event_count and not file.shown_credentials and (file.measures or file.decision):
        found.append(
            Flaw(code="credential_not_shown", message="现场执法未记录出示执法证件（亮证）")
        )
    return found
