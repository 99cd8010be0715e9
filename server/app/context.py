"""What every request handler may need: settings, database, clock, keys, calendar. One per process."""

from __future__ import annotations

import time

from mobile_api.contracts.calendar import WorkingDayCalendar
from server.app.calendar_years import load_calendar
from server.core.clock import Clock
from server.core.db import Database
from server.core.keys import KeyRing, read_keyring, rotate_signing_key
from server.core.settings import Settings

# Other instances may rotate keys or load calendar years; re-read them at most this often.
RELOAD_SECONDS = 60.0


class AppContext:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.database = Database(settings)
        self._keyring: KeyRing | None = None
        self._keyring_at = 0.0
        self._calendar: WorkingDayCalendar | None = None
        self._calendar_at = 0.0

    async def keyring(self, *, refresh: bool = False) -> KeyRing:
        if refresh or self._keyring is None or time.monotonic() - self._keyring_at > RELOAD_SECONDS:
            # Read first: a handler may call this inside its own write transaction, and on SQLite a
            # second writer would wait for it. Only the very first start writes a key.
            async with self.database.sessionmaker() as session:
                keyring = await read_keyring(session)
            if keyring is None:
                async with self.database.transaction() as session:
                    if await read_keyring(session) is None:
                        await rotate_signing_key(session, self.clock.now())
                async with self.database.sessionmaker() as session:
                    keyring = await read_keyring(session)
            assert keyring is not None
            self._keyring = keyring
            self._keyring_at = time.monotonic()
        return self._keyring

    async def calendar(self, *, refresh: bool = False) -> WorkingDayCalendar:
        if (
            refresh
            or self._calendar is None
            or time.monotonic() - self._calendar_at > RELOAD_SECONDS
        ):
            async with self.database.sessionmaker() as session:
                self._calendar = await load_calendar(session)
            self._calendar_at = time.monotonic()
        return self._calendar

    async def close(self) -> None:
        await self.database.dispose()
