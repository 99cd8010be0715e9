"""The one clock. Everything that needs "now" or "today" asks it, so tests can move time."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

CHINA_TZ = ZoneInfo("Asia/Shanghai")


class Clock:
    """Wall clock in UTC; ``today`` is the date in China, where the legal periods run."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return self.now().astimezone(CHINA_TZ).date()


class FrozenClock(Clock):
    """A clock that stands still until moved: for tests and simulations."""

    def __init__(self, at: dt.datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at

    def now(self) -> dt.datetime:
        return self._at

    def advance(self, delta: dt.timedelta) -> None:
        self._at += delta

    def set(self, at: dt.datetime) -> None:
        self._at = at
