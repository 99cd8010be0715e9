"""Year arrangements loaded by agencies, kept in the database so every instance counts alike.

The calendar itself lives in ``mobile_api.contracts.calendar`` because terminals count working
days offline with the very same code.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.contracts.calendar import (
    CalendarFileInvalid,
    WorkingDayCalendar,
    YearArrangement,
    parse_year_file,
    year_file_text,
)
from server.core import ledger
from server.core.errors import ValidationFailed
from server.core.keys import KeyRing
from server.core.models import CalendarYear


class CalendarFileRejected(ValidationFailed):
    code = CalendarFileInvalid.code
    title = CalendarFileInvalid.title


async def load_calendar(session: AsyncSession) -> WorkingDayCalendar:
    rows = await session.scalars(select(CalendarYear).order_by(CalendarYear.year))
    return WorkingDayCalendar(parse_year_file(row.text) for row in rows)


async def store_year_file(
    session: AsyncSession, keyring: KeyRing, text: str, now: dt.datetime
) -> YearArrangement:
    """Validate and store (or replace) one year's arrangement; the change goes to the ledger."""
    try:
        arrangement = parse_year_file(text)
    except CalendarFileInvalid as exc:
        raise CalendarFileRejected(exc.message, **exc.data) from exc
    canonical = year_file_text(arrangement)
    row = await session.get(CalendarYear, arrangement.year)
    if row is None:
        session.add(
            CalendarYear(
                year=arrangement.year, text=canonical, source=arrangement.source, loaded_at=now
            )
        )
    else:
        row.text, row.source, row.loaded_at = canonical, arrangement.source, now
    await ledger.append(
        session,
        keyring,
        kind="calendar.year_loaded",
        ref=f"calendar:{arrangement.year}",
        data={"text": canonical},
        now=now,
    )
    return arrangement
