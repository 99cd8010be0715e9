"""What review's controllers need from the application without importing server.app (which sits
above review in the layers): the console cookie and the per-process context."""

from __future__ import annotations

from typing import Any, Protocol

from mobile_api.contracts.calendar import WorkingDayCalendar
from server.core.clock import Clock
from server.core.db import Database
from server.core.keys import KeyRing
from server.core.models import Role
from server.core.roles import CONSOLE_COOKIE as CONSOLE_COOKIE
from server.core.roles import allow_console
from server.core.settings import Settings


def console_roles(*admitted: Role) -> dict[str, Any]:
    """A console page: the session may come from the console cookie instead of a header."""
    return allow_console(CONSOLE_COOKIE, *admitted)


class ReviewContext(Protocol):
    """The part of server.app.context.AppContext review uses."""

    settings: Settings
    clock: Clock
    database: Database

    async def keyring(self, *, refresh: bool = False) -> KeyRing: ...

    async def calendar(self, *, refresh: bool = False) -> WorkingDayCalendar: ...


def context_of(state: Any) -> ReviewContext:
    return state.context
