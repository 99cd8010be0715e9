"""What this area's controllers need from the application, named without importing ``server.app``
(the layers of DESIGN.md §3 keep areas below it): the members of the application context
(``state.context``) they use, and the roles of their routes (``server.core.roles``).
"""

from __future__ import annotations

from typing import Protocol

from mobile_api.contracts.calendar import WorkingDayCalendar
from server.core import roles
from server.core.clock import Clock
from server.core.db import Database
from server.core.keys import KeyRing
from server.core.models import Role
from server.core.settings import Settings


class AreaContext(Protocol):
    settings: Settings
    clock: Clock
    database: Database

    async def keyring(self, *, refresh: bool = False) -> KeyRing: ...

    async def calendar(self, *, refresh: bool = False) -> WorkingDayCalendar: ...


# Route declarations used across this area (credentials too).
OFFICER_ON_TERMINAL = roles.allow(Role.OFFICER)
CASE_READERS = roles.allow(*roles.STAFF_READERS)
# The same readers in the staff console, with its session cookie.
CASE_CONSOLE = roles.allow_console(roles.CONSOLE_COOKIE, *roles.STAFF_READERS)
ADMINS = roles.allow(*roles.ADMINS)
