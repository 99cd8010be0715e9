"""Queries of the public portal and its JSON API; they read public tables only.

Order: newest decision first (the record id carries the decision date, see ``models``), so every
list, word search and date range walks one index and stops after a page.
Word search finds substrings of Chinese text. Each word of three or more characters goes through
the trigram index (SQLite FTS5 ``trigram``, PostgreSQL ``pg_trgm``); one- and two-character words
cannot use a trigram index and are matched with LIKE, newest first, until the page is full.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import Select, column, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from disclosure.models import AnnualReport, DisclosureRecord
from disclosure.schemas import (
    AgencyView,
    CatalogItem,
    DecisionPage,
    PublicDecision,
    PublicDecisionSummary,
    ReportSummary,
    RosterEntry,
    WithdrawalNotice,
    WithdrawalPage,
    WithdrawalSummary,
)
from disclosure.services import record_id_range
from server.core.errors import NotFound, ValidationFailed
from server.core.models import Agency, Credential, EnforcementItem

MAX_LIMIT = 100
MAX_OFFSET = 10_000
MAX_TERMS = 5
# Words of one or two characters are looked for among this many newest decisions.
SHORT_WORD_WINDOW = 50_000
TRIGRAM = 3
DECISION_URL = "/gongshi/decisions/{}"
REPORT_URL = "/gongshi/reports/{}/{}"

_fts = table("disclosure_records_fts", column("rowid"))
_fts_match = literal_column("disclosure_records_fts").op("MATCH")


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    q: str = ""
    agency: str = ""
    kind: str = ""
    category: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def terms(self) -> list[str]:
        return self.q.split()[:MAX_TERMS]


class BadQuery(ValidationFailed):
    code = "disclosure_bad_query"
    title = "查询条件有误"


def check_paging(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadQuery(f"每页条数应在 1 到 {MAX_LIMIT} 之间", field="limit")
    if not 0 <= offset <= MAX_OFFSET:
        raise BadQuery(f"偏移量应在 0 到 {MAX_OFFSET} 之间，翻得更远请用 cursor", field="offset")


def parse_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    if not cursor.isdigit() or len(cursor) > 19:
        raise BadQuery("cursor 无效", field="cursor")
    return int(cursor)


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_phrase(terms: Sequence[str]) -> str:
    # Each word as an FTS5 string (quotes doubled), all required.
    return " AND ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _word_search(stmt: Select[Any], terms: list[str], dialect: str) -> tuple[Select[Any], Any]:
    """Add the word conditions; returns the statement and the column to order and page by."""
    indexed = [t for t in terms if len(t) >= TRIGRAM]
    scanned = [t for t in terms if len(t) < TRIGRAM]
    key: Any = DisclosureRecord.id
    if dialect == "sqlite":
        if indexed:
            stmt = stmt.join(_fts, _fts.c.rowid == DisclosureRecord.id).where(
                _fts_match(_fts_phrase(indexed))
            )
            # Ordered and bounded by the index's own rowid, FTS5 walks its matches newest first
            # and stops after a page; ordered by the table's id, it would collect every match.
            key = _fts.c.rowid
        for term in scanned:
            stmt = stmt.where(DisclosureRecord.search_text.like(_like_pattern(term), escape="\\"))
        return stmt, key
    # PostgreSQL: ILIKE uses the pg_trgm GIN index for words of three characters or more.
    for term in terms:
        stmt = stmt.where(DisclosureRecord.search_text.ilike(_like_pattern(term), escape="\\"))
    return stmt, key


async def agency_by_code(session: AsyncSession, code: str) -> Agency:
    agency = await session.scalar(select(Agency).where(Agency.code == code))
    if agency is None:
        raise NotFound(f"执法主体 {code} 不存在", agency=code)
    return agency


async def search_decisions(
    session: AsyncSession,
    filters: Filters,
    *,
    limit: int = 20,
    offset: int = 0,
    cursor: str | None = None,
) -> DecisionPage:
    check_paging(limit, offset)
    after = parse_cursor(cursor)
    conditions: list[Any] = [DisclosureRecord.status == "published"]
    if filters.agency:
        agency = await agency_by_code(session, filters.agency)
        conditions.append(DisclosureRecord.agency_id == agency.id)
    indexed_conditions = list(conditions)  # what the window of newest decisions is counted on
    if filters.kind:
        conditions.append(DisclosureRecord.act_kind == filters.kind)
    if filters.category:
        conditions.append(DisclosureRecord.category == filters.category)
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        raise BadQuery("起始日期晚于截止日期", field="date_from")
    low = record_id_range(filters.date_from, filters.date_from)[0] if filters.date_from else None
    high = record_id_range(filters.date_to, filters.date_to)[1] if filters.date_to else None
    terms = filters.terms()
    searched_newest = None
    if terms and max(map(len, terms)) < TRIGRAM:
        # Only short words: no index can find them, so they are looked for among the newest
        # decisions (of the agency, in the date range); a rare word must not scan everything.
        floor = await session.scalar(
            select(DisclosureRecord.id)
            .where(*indexed_conditions, *_bounds(DisclosureRecord.id, low, high))
            .order_by(DisclosureRecord.id.desc())
            .offset(SHORT_WORD_WINDOW - 1)
            .limit(1)
        )
        if floor is not None:
            low, searched_newest = max(low or 0, floor), SHORT_WORD_WINDOW
    stmt = select(DisclosureRecord).where(*conditions)
    stmt, key = _word_search(stmt, terms, session.get_bind().dialect.name)
    stmt = stmt.where(*_bounds(key, low, high))
    if after is not None:
        stmt = stmt.where(key < after)
    rows = list(await session.scalars(stmt.order_by(key.desc()).offset(offset).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return DecisionPage(
        items=[summary(r) for r in rows],
        limit=limit,
        offset=offset,
        next_cursor=str(rows[-1].id) if more and rows else None,
        searched_newest=searched_newest,
    )


def _bounds(key: Any, low: int | None, high: int | None) -> list[Any]:
    """``low <= key < high``, each side only when given."""
    bounds = []
    if low is not None:
        bounds.append(key >= low)
    if high is not None:
        bounds.append(key < high)
    return bounds


def _status(record: DisclosureRecord) -> str:
    return "已公开" if record.status == "published" else "已撤下"


def summary(record: DisclosureRecord) -> PublicDecisionSummary:
    return PublicDecisionSummary(
        id=record.id,
        url=DECISION_URL.format(record.id),
        agency_code=record.agency_code,
        agency_name=record.agency_name,
        decision_number=record.decision_number,
        decision_date=record.decision_date,
        act_kind=record.act_kind,
        category=record.category,
        subject=record.subject,
        conclusion=record.conclusion,
        published_on=record.published_on,
        status=_status(record),  # type: ignore[arg-type]
    )


def _notice(record: DisclosureRecord) -> WithdrawalNotice | None:
    if record.status != "withdrawn" or record.withdrawn_on is None:
        return None
    return WithdrawalNotice(
        withdrawn_on=record.withdrawn_on,
        change=record.withdrawal_kind,
        reason=record.withdrawal_reason,
    )


async def get_decision(session: AsyncSession, record_id: int) -> PublicDecision:
    record = await session.get(DisclosureRecord, record_id)
    if record is None:
        raise NotFound("未找到该公示信息", id=record_id)
    return PublicDecision(
        id=record.id,
        url=DECISION_URL.format(record.id),
        agency_code=record.agency_code,
        agency_name=record.agency_name,
        decision_number=record.decision_number,
        decision_date=record.decision_date,
        act_kind=record.act_kind,
        category=record.category,
        subject_type=record.subject_type,
        subject=record.subject,
        credit_code=record.credit_code,
        conclusion=record.conclusion,
        basis=record.basis,
        facts=record.facts,
        published_on=record.published_on,
        status=_status(record),  # type: ignore[arg-type]
        withdrawal=_notice(record),
    )


async def list_withdrawals(
    session: AsyncSession, *, agency: str = "", limit: int = 20, offset: int = 0
) -> WithdrawalPage:
    check_paging(limit, offset)
    stmt = select(DisclosureRecord).where(DisclosureRecord.status == "withdrawn")
    if agency:
        stmt = stmt.where(DisclosureRecord.agency_id == (await agency_by_code(session, agency)).id)
    rows = await session.scalars(
        stmt.order_by(DisclosureRecord.withdrawn_at.desc(), DisclosureRecord.id.desc())
        .offset(offset)
        .limit(limit)
    )
    items = []
    for record in rows:
        notice = _notice(record)
        assert notice is not None
        items.append(
            WithdrawalSummary(
                id=record.id,
                url=DECISION_URL.format(record.id),
                agency_code=record.agency_code,
                agency_name=record.agency_name,
                decision_number=record.decision_number,
                decision_date=record.decision_date,
                act_kind=record.act_kind,
                category=record.category,
                withdrawal=notice,
            )
        )
    return WithdrawalPage(items=items, limit=limit, offset=offset)


# --- 事前公开 ----------------------------------------------------------------------------------


async def list_agencies(session: AsyncSession) -> list[AgencyView]:
    rows = await session.scalars(select(Agency).order_by(Agency.code))
    return [AgencyView(code=a.code, name=a.name, region=a.region) for a in rows]


async def roster(session: AsyncSession, agency: Agency, today: dt.date) -> list[RosterEntry]:
    """The officer roster; the status is the one the credential QR page shows."""
    rows = await session.scalars(
        select(Credential)
        .where(Credential.agency_id == agency.id)
        .options(selectinload(Credential.officer))
        .order_by(Credential.number)
    )
    return [
        RosterEntry(
            name=c.officer.name,
            credential_number=c.number,
            unit=c.officer.unit,
            categories=list(c.categories),
            regions=list(c.regions),
            status=c.effective_status(today),
        )
        for c in rows
    ]


async def catalog(session: AsyncSession, agency: Agency) -> list[CatalogItem]:
    rows = await session.scalars(
        select(EnforcementItem)
        .where(EnforcementItem.agency_id == agency.id)
        .order_by(EnforcementItem.category, EnforcementItem.code)
    )
    return [
        CatalogItem(
            code=i.code,
            name=i.name,
            category=i.category,
            act_kind=i.kind.value,
            legal_basis=i.legal_basis,
        )
        for i in rows
    ]


# --- annual reports ------------------------------------------------------------------------------


async def list_reports(session: AsyncSession, agency: str = "") -> list[ReportSummary]:
    stmt = select(AnnualReport, Agency).join(Agency, Agency.id == AnnualReport.agency_id)
    if agency:
        stmt = stmt.where(Agency.code == agency)
    rows = await session.execute(stmt.order_by(AnnualReport.year.desc(), Agency.code))
    return [
        ReportSummary(
            agency_code=a.code,
            agency_name=a.name,
            year=r.year,
            version=r.version,
            published_at=r.updated_at,
            url=REPORT_URL.format(a.code, r.year),
        )
        for r, a in rows.all()
    ]


async def get_report(session: AsyncSession, agency_code: str, year: int) -> AnnualReport:
    agency = await agency_by_code(session, agency_code)
    report = await session.scalar(
        select(AnnualReport).where(AnnualReport.agency_id == agency.id, AnnualReport.year == year)
    )
    if report is None:
        raise NotFound(f"{agency.name} {year} 年度统计报告尚未发布", agency=agency_code, year=year)
    return report
