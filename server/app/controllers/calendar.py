"""Working-day deadlines for staff (工作日 counted by the law's rules)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from litestar import Controller, get
from litestar.datastructures import State
from litestar.params import FromQuery, QueryParameter

from mobile_api.contracts.calendar import Deadline
from server.app.context import AppContext
from server.core.roles import ANY_STAFF, allow


class CalendarController(Controller):
    path = "/api/calendar"
    tags = ["calendar"]

    @get("/deadline", opt=allow(*ANY_STAFF), summary="The n-th working day after a date")
    async def deadline(
        self,
        state: State,
        start: FromQuery[dt.date],
        working_days: Annotated[int, QueryParameter(ge=1, le=1000)],
    ) -> Deadline:
        context: AppContext = state.context
        return (await context.calendar()).add_working_days(start, working_days)
