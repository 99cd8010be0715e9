"""统计年报: the previous year's figures of an agency, public by its due day (default 31 January).

The job publishes a year's report on its first run of the new year and refreshes it while late
records of that year still arrive, up to the due day; from then on it stays as published.
Counted from what the cases area sent: decisions by kind of act, category and outcome, legal
reviews and hearings held, changes, and those that came through 行政复议 or 行政诉讼.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure.models import AnnualReport, DecisionState, DisclosureDecision
from server.core import ledger
from server.core.keys import KeyRing
from server.core.models import ActKind, Agency

NOT_RECORDED = "未记录"
STATE_LABELS = {
    DecisionState.PUBLISHED: "已公开",
    DecisionState.WITHDRAWN: "已撤下",
    DecisionState.EXCLUDED: "不予公开",
    DecisionState.CANCELLED: "公开前已变更或撤销",
    DecisionState.SCHEDULED: "待公开",
    DecisionState.HELD: "暂缓公开",
}
CHANGE_KINDS = ("变更", "撤销", "确认违法", "确认无效")
# Sections of the report in the order they are shown, with their Chinese headings.
SECTIONS = (
    ("by_act_kind", "按行为种类"),
    ("by_category", "按执法类别"),
    ("by_outcome", "按处理结果"),
    ("by_disclosure", "按公示情况"),
    ("changes", "决定变更、撤销等情况"),
)
TOTALS = (
    ("decisions", "执法决定总数"),
    ("legal_reviews", "经法制审核"),
    ("hearings", "举行听证"),
    ("reconsiderations", "经行政复议变更、撤销等"),
    ("lawsuits", "经行政诉讼变更、撤销等"),
)


async def _grouped(
    session: AsyncSession, column: Any, agency_id: uuid.UUID, first: dt.date, last: dt.date
) -> list[tuple[Any, int]]:
    rows = await session.execute(
        select(column, func.count())
        .where(
            DisclosureDecision.agency_id == agency_id,
            DisclosureDecision.decision_date >= first,
            DisclosureDecision.decision_date <= last,
        )
        .group_by(column)
    )
    return [(key, int(count)) for key, count in rows.all()]


async def compute_statistics(session: AsyncSession, agency: Agency, year: int) -> dict[str, Any]:
    first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    by_kind = {kind.value: 0 for kind in ActKind}
    for kind, count in await _grouped(session, DisclosureDecision.act_kind, agency.id, first, last):
        by_kind[ActKind(kind).value] = count
    by_category = dict(
        sorted(await _grouped(session, DisclosureDecision.category, agency.id, first, last))
    )
    by_outcome: dict[str, int] = {}
    for outcome, count in await _grouped(
        session, DisclosureDecision.outcome, agency.id, first, last
    ):
        label = outcome or NOT_RECORDED
        by_outcome[label] = by_outcome.get(label, 0) + count
    by_state = {label: 0 for label in STATE_LABELS.values()}
    for state, count in await _grouped(session, DisclosureDecision.state, agency.id, first, last):
        by_state[STATE_LABELS[DecisionState(state)]] += count
    flags = (
        await session.execute(
            select(
                func.count(),
                func.sum(case((DisclosureDecision.legal_review.is_(True), 1), else_=0)),
                func.sum(case((DisclosureDecision.hearing.is_(True), 1), else_=0)),
            ).where(
                DisclosureDecision.agency_id == agency.id,
                DisclosureDecision.decision_date >= first,
                DisclosureDecision.decision_date <= last,
            )
        )
    ).one()
    # Changes are counted in the year they happened, whatever the year of the decision.
    changes = await session.execute(
        select(DisclosureDecision.change_kind, DisclosureDecision.change_via, func.count())
        .where(
            DisclosureDecision.agency_id == agency.id,
            DisclosureDecision.changed_on >= first,
            DisclosureDecision.changed_on <= last,
        )
        .group_by(DisclosureDecision.change_kind, DisclosureDecision.change_via)
    )
    by_change = dict.fromkeys(CHANGE_KINDS, 0)
    via: dict[str, int] = {}
    for kind, through, count in changes.all():
        by_change[kind] = by_change.get(kind, 0) + int(count)
        via[through] = via.get(through, 0) + int(count)
    return {
        "agency": {"code": agency.code, "name": agency.name},
        "year": year,
        "decisions": int(flags[0]),
        "legal_reviews": int(flags[1] or 0),
        "hearings": int(flags[2] or 0),
        "reconsiderations": via.get("行政复议", 0),
        "lawsuits": via.get("行政诉讼", 0),
        "by_act_kind": by_kind,
        "by_category": by_category,
        "by_outcome": dict(sorted(by_outcome.items())),
        "by_disclosure": by_state,
        "changes": by_change,
    }


def report_rows(statistics: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(section, item, count) rows: the CSV and the page show the same figures."""
    rows = [("总计", label, int(statistics[key])) for key, label in TOTALS]
    for key, heading in SECTIONS:
        rows += [(heading, item, int(count)) for item, count in statistics[key].items()]
    return rows


def report_csv(statistics: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["统计项", "项目", "数量"])
    writer.writerows(report_rows(statistics))
    # A byte-order mark lets spreadsheet programs read the Chinese text as UTF-8.
    return "\ufeff" + buffer.getvalue()


async def publish_report(
    session: AsyncSession,
    keyring: KeyRing,
    agency: Agency,
    year: int,
    due_on: dt.date,
    now: dt.datetime,
) -> AnnualReport | None:
    """Create or refresh the report of ``year``; None when nothing changed."""
    statistics = await compute_statistics(session, agency, year)
    report = await session.scalar(
        select(AnnualReport)
        .where(AnnualReport.agency_id == agency.id, AnnualReport.year == year)
        .with_for_update()
    )
    if report is not None and report.statistics == statistics:
        return None
    if report is None:
        report = AnnualReport(
            agency_id=agency.id,
            year=year,
            due_on=due_on,
            version=1,
            statistics=statistics,
            published_at=now,
            updated_at=now,
        )
        session.add(report)
    else:
        report.version += 1
        report.statistics = statistics
        report.updated_at = now
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="disclosure.report",
        ref=f"report:{agency.code}:{year}",
        data={"version": report.version, "statistics": statistics},
        now=now,
    )
    return report
