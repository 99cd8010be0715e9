"""The public portal (公示平台): Chinese HTML pages, no login, no JavaScript, phones and desktops.

Pages render from the database on every request, so what changes in the roster, the catalogs or the
published decisions shows without anyone publishing by hand. Errors render as pages too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Controller, Response, get
from litestar.datastructures import State
from litestar.enums import MediaType
from litestar.params import FromPath, FromQuery
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from disclosure import reports, search
from disclosure.hooks import hooks_of
from disclosure.web import runtime_of
from server.core.clock import CHINA_TZ
from server.core.errors import ZhifaError
from server.core.models import ActKind, EnforcementCategory
from server.core.roles import PUBLIC

KINDS = [kind.value for kind in ActKind]


def _cn_date(value: dt.date | None) -> str:
    return f"{value.year}年{value.month}月{value.day}日" if value else ""


def _cn_datetime(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    local = value.astimezone(CHINA_TZ)
    return f"{_cn_date(local.date())} {local:%H:%M}"


_env = Environment(
    loader=PackageLoader("disclosure", "templates"),
    autoescape=select_autoescape(("html",)),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["cn_date"] = _cn_date
_env.filters["cn_datetime"] = _cn_datetime


def render(template: str, *, status: int = 200, **context: Any) -> Response[str]:
    return Response(
        _env.get_template(template).render(**context),
        media_type=MediaType.HTML,
        status_code=status,
    )


def _parse_day(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise search.BadQuery(f"日期 {value} 无效，应写作 YYYY-MM-DD", field=field) from None


def parse_filters(
    q: str, agency: str, kind: str, category: str, date_from: str, date_to: str
) -> search.Filters:
    """Query parameters of the portal and the JSON API alike (empty means no filter)."""
    if kind and kind not in KINDS:
        raise search.BadQuery(f"行为种类应为：{'、'.join(KINDS)}", field="kind")
    if len(q) > 100:
        raise search.BadQuery("关键词过长（最多 100 字）", field="q")
    return search.Filters(
        q=q.strip(),
        agency=agency.strip(),
        kind=kind,
        category=category.strip(),
        date_from=_parse_day(date_from.strip(), "date_from"),
        date_to=_parse_day(date_to.strip(), "date_to"),
    )


async def _page(
    state: State, nav: str, work: Callable[[AsyncSession], Awaitable[Response[str]]]
) -> Response[str]:
    """Run ``work`` with a read session; our errors become an error page with their status."""
    try:
        async with runtime_of(state).database.sessionmaker() as session:
            return await work(session)
    except ZhifaError as exc:
        return render(
            "error.html", status=exc.status, nav=nav, title=exc.title, message=exc.message
        )


async def _form_choices(session: AsyncSession) -> dict[str, Any]:
    categories = await session.scalars(
        select(EnforcementCategory.name).distinct().order_by(EnforcementCategory.name)
    )
    return {
        "agencies": await search.list_agencies(session),
        "kinds": KINDS,
        "categories": list(categories),
    }


class PortalController(Controller):
    path = "/gongshi"
    tags = ["portal"]

    @get("/", opt=PUBLIC, summary="Portal home: search form and the latest decisions")
    async def home(self, state: State) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            page = await search.search_decisions(session, search.Filters(), limit=10)
            return render(
                "index.html",
                nav="",
                page=page,
                filters=search.Filters(),
                **await _form_choices(session),
            )

        return await _page(state, "", work)

    @get("/decisions", opt=PUBLIC, summary="Search published decisions")
    async def decisions(
        self,
        state: State,
        q: FromQuery[str] = "",
        agency: FromQuery[str] = "",
        kind: FromQuery[str] = "",
        category: FromQuery[str] = "",
        date_from: FromQuery[str] = "",
        date_to: FromQuery[str] = "",
        cursor: FromQuery[str] = "",
    ) -> Response[str]:
        raw = {
            "q": q,
            "agency": agency,
            "kind": kind,
            "category": category,
            "date_from": date_from,
            "date_to": date_to,
        }

        async def work(session: AsyncSession) -> Response[str]:
            choices = await _form_choices(session)
            try:
                filters = parse_filters(**raw)
                page = await search.search_decisions(session, filters, cursor=cursor or None)
            except search.BadQuery as exc:
                shown = search.Filters(q=q, agency=agency, kind=kind, category=category)
                return render(
                    "decisions.html",
                    status=exc.status,
                    nav="decisions",
                    error=exc.message,
                    filters=shown,
                    **choices,
                )
            query = {key: value for key, value in raw.items() if value}
            next_url = (
                "/gongshi/decisions?" + urlencode({**query, "cursor": page.next_cursor})
                if page.next_cursor
                else None
            )
            first_url = ("/gongshi/decisions?" + urlencode(query)) if cursor else None
            return render(
                "decisions.html",
                nav="decisions",
                page=page,
                filters=filters,
                next_url=next_url,
                first_url=first_url,
                **choices,
            )

        return await _page(state, "decisions", work)

    @get("/decisions/{record_id:int}", opt=PUBLIC, summary="One published decision")
    async def decision(self, state: State, record_id: FromPath[int]) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            return render(
                "decision.html", nav="decisions", d=await search.get_decision(session, record_id)
            )

        return await _page(state, "decisions", work)

    @get("/withdrawals", opt=PUBLIC, summary="Withdrawal notices")
    async def withdrawals(
        self, state: State, agency: FromQuery[str] = "", page: FromQuery[int] = 1
    ) -> Response[str]:
        size = 20

        async def work(session: AsyncSession) -> Response[str]:
            number = max(page, 1)
            if number > search.MAX_OFFSET // size:
                raise search.BadQuery("页码过大")
            found = await search.list_withdrawals(
                session, agency=agency, limit=size, offset=(number - 1) * size
            )
            base = {"agency": agency} if agency else {}
            link = "/gongshi/withdrawals?" + "{}"
            return render(
                "withdrawals.html",
                nav="withdrawals",
                page=found,
                prev_url=link.format(urlencode({**base, "page": number - 1}))
                if number > 1
                else None,
                next_url=link.format(urlencode({**base, "page": number + 1}))
                if len(found.items) == size
                else None,
            )

        return await _page(state, "withdrawals", work)

    @get("/reports", opt=PUBLIC, summary="Annual statistics reports")
    async def reports_index(self, state: State, agency: FromQuery[str] = "") -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            return render(
                "reports.html", nav="reports", reports=await search.list_reports(session, agency)
            )

        return await _page(state, "reports", work)

    @get("/reports/{agency_code:str}/{year:int}", opt=PUBLIC, summary="One annual report")
    async def report(
        self, state: State, agency_code: FromPath[str], year: FromPath[int]
    ) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            report = await search.get_report(session, agency_code, year)
            agency = await search.agency_by_code(session, agency_code)
            rows = reports.report_rows(report.statistics)
            sections: dict[str, list[tuple[str, int]]] = {}
            for section, item, count in rows:
                sections.setdefault(section, []).append((item, count))
            return render(
                "report.html",
                nav="reports",
                agency=agency,
                report=report,
                sections=list(sections.items()),
                url=search.REPORT_URL.format(agency_code, year),
            )

        return await _page(state, "reports", work)

    @get(
        "/reports/{agency_code:str}/{year:int}/data.csv",
        opt=PUBLIC,
        summary="One annual report as CSV",
    )
    async def report_csv(
        self, state: State, agency_code: FromPath[str], year: FromPath[int]
    ) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            report = await search.get_report(session, agency_code, year)
            return Response(
                reports.report_csv(report.statistics),
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="report-{agency_code}-{year}.csv"'
                },
            )

        return await _page(state, "reports", work)

    @get("/agencies", opt=PUBLIC, summary="Agencies")
    async def agencies(self, state: State) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            return render(
                "agencies.html", nav="agencies", agencies=await search.list_agencies(session)
            )

        return await _page(state, "agencies", work)

    @get("/agencies/{agency_code:str}", opt=PUBLIC, summary="One agency: what it discloses")
    async def agency(self, state: State, agency_code: FromPath[str]) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            agency = await search.agency_by_code(session, agency_code)
            return render("agency.html", nav="agencies", agency=agency)

        return await _page(state, "agencies", work)

    @get("/agencies/{agency_code:str}/officers", opt=PUBLIC, summary="Officer roster")
    async def officers(self, state: State, agency_code: FromPath[str]) -> Response[str]:
        today = runtime_of(state).clock.today()

        async def work(session: AsyncSession) -> Response[str]:
            agency = await search.agency_by_code(session, agency_code)
            return render(
                "officers.html",
                nav="agencies",
                agency=agency,
                today=today,
                officers=await search.roster(session, agency, today),
            )

        return await _page(state, "agencies", work)

    @get(
        "/agencies/{agency_code:str}/items",
        opt=PUBLIC,
        summary="Catalog of enforcement items",
    )
    async def items(self, state: State, agency_code: FromPath[str]) -> Response[str]:
        async def work(session: AsyncSession) -> Response[str]:
            agency = await search.agency_by_code(session, agency_code)
            return render(
                "items.html",
                nav="agencies",
                agency=agency,
                items=await search.catalog(session, agency),
            )

        return await _page(state, "agencies", work)

    @get(
        "/agencies/{agency_code:str}/review-catalog",
        opt=PUBLIC,
        summary="Catalog of decisions that need legal review",
    )
    async def review_catalog(self, state: State, agency_code: FromPath[str]) -> Response[str]:
        source = hooks_of(state).review_catalog

        async def work(session: AsyncSession) -> Response[str]:
            agency = await search.agency_by_code(session, agency_code)
            return render(
                "review_catalog.html",
                nav="agencies",
                agency=agency,
                entries=list(await source(session, agency.id)),
            )

        return await _page(state, "agencies", work)
