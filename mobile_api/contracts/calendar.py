"""The one working-day (工作日) calendar: every legal period in zhifa is counted here.

Rules (DESIGN.md §2):

* A period starts the next day (民法典 第201条): the 1st working day after ``start`` is the first
  working day strictly after it, whatever kind of day ``start`` is.
* 工作日 exclude weekends and statutory holidays but include 调休 make-up working days.
* A calendar-day or month period whose last day is not a working day ends on the next working day
  (民法典 第203条); a month period ends on the corresponding day of the last month, or on that
  month's last day when there is none (第202条).

Where the days come from, per year: a loaded year file (the 国务院办公厅 notice, published each
November) wins; otherwise the ``chinesecalendar`` package, whose coverage we detect by catching its
``NotImplementedError``; otherwise the year is unknown and every day of it counts as a working day,
so a deadline can only come earlier, and the result is flagged ``fallback=True``.
We never use the package's ``find_workday``: it counts differently from the law when ``start`` is
not a working day.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import chinese_calendar
import msgspec

__all__ = [
    "CalendarFileInvalid",
    "Deadline",
    "WorkingDayCalendar",
    "YearArrangement",
    "load_year_files",
    "parse_year_file",
    "year_file_text",
]


class CalendarFileInvalid(ValueError):
    """A year file that must not be loaded. Runs on terminals too, so it is not a server error;
    the server turns it into a 422 problem where it accepts files (server.core.calendar_years)."""

    code = "calendar_file_invalid"
    title = "节假日安排文件无效"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class YearArrangement(msgspec.Struct, frozen=True):
    """One year's official arrangement: statutory holidays and 调休 make-up working days."""

    year: int
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]  # 调休 make-up working days
    source: str = ""


class Deadline(msgspec.Struct, frozen=True):
    """The last day of a period counted from ``start`` (the period runs from the day after)."""

    start: dt.date
    deadline: dt.date
    # True when the result depended on a day in a year we do not know: for working-day periods a
    # counted day, for calendar-day and month periods the last day (or a day it was moved over).
    fallback: bool
    working_days: int | None = None
    calendar_days: int | None = None
    months: int | None = None


# --- year files -------------------------------------------------------------------------------

_FILE_KEYS = frozenset({"year", "source", "holidays", "workdays"})
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    # fromisoformat alone would also accept "20270101" and other ISO spellings
    if not _DATE_RE.fullmatch(text):
        raise CalendarFileInvalid(f"日期 {text} 无效，应写作 YYYY-MM-DD", value=text)
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CalendarFileInvalid(f"日期 {text} 无效", value=text) from None


def _parse_dates(doc: dict[str, Any], key: str, label: str) -> frozenset[dt.date]:
    items = doc.get(key, [])
    if not isinstance(items, list):
        raise CalendarFileInvalid(f"{key}（{label}）必须是日期列表", field=key)
    out: set[dt.date] = set()
    for item in items:
        # TOML native dates are accepted too; datetimes are not (a period counts whole days)
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            out.add(item)
            continue
        if not isinstance(item, str):
            raise CalendarFileInvalid(
                f"{key}（{label}）中的 {item!r} 不是日期或日期范围", field=key, value=str(item)
            )
        if ".." in item:
            parts = item.split("..")
            if len(parts) != 2 or not all(part.strip() for part in parts):
                raise CalendarFileInvalid(f"日期范围 {item} 无效，应写作 A..B", value=item)
            first, last = _parse_date(parts[0]), _parse_date(parts[1])
            if first > last:
                raise CalendarFileInvalid(f"日期范围 {item} 起止颠倒", value=item)
            out.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
        else:
            out.add(_parse_date(item))
    return frozenset(out)


def _check(arr: YearArrangement) -> None:
    if not dt.MINYEAR <= arr.year <= dt.MAXYEAR:
        raise CalendarFileInvalid(f"年份 {arr.year} 无效", year=arr.year)
    for d in sorted(arr.holidays | arr.workdays):
        if d.year != arr.year:
            raise CalendarFileInvalid(f"{d} 不属于 {arr.year} 年", year=arr.year, date=str(d))
    both = sorted(arr.holidays & arr.workdays)
    if both:
        raise CalendarFileInvalid(
            f"{both[0]} 同时列为节假日和调休工作日", year=arr.year, date=str(both[0])
        )
    # every real arrangement has holidays; an empty list would mark the year known yet wrong
    if not arr.holidays:
        raise CalendarFileInvalid(f"{arr.year} 年没有列出任何节假日", year=arr.year)


def parse_year_file(text: str) -> YearArrangement:
    """Parse and validate one year file (TOML); raises ``CalendarFileInvalid``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CalendarFileInvalid(f"节假日安排文件不是有效的 TOML：{e}") from None
    unknown = sorted(set(doc) - _FILE_KEYS)
    if unknown:
        # a misspelt key would otherwise silently drop holidays
        raise CalendarFileInvalid(f"未知字段：{'、'.join(unknown)}", fields=unknown)
    if "year" not in doc:
        raise CalendarFileInvalid("缺少 year（年份）")
    year = doc["year"]
    if not isinstance(year, int) or isinstance(year, bool):
        raise CalendarFileInvalid(f"year（年份）必须是整数，而不是 {year!r}", value=str(year))
    source = doc.get("source", "")
    if not isinstance(source, str):
        raise CalendarFileInvalid("source（来源）必须是字符串")
    if not dt.MINYEAR <= year <= dt.MAXYEAR:
        raise CalendarFileInvalid(f"年份 {year} 无效", year=year)
    arr = YearArrangement(
        year=year,
        holidays=_parse_dates(doc, "holidays", "节假日"),
        workdays=_parse_dates(doc, "workdays", "调休工作日"),
        source=source,
    )
    _check(arr)
    return arr


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _runs(days: Iterable[dt.date]) -> list[str]:
    """Sorted dates as TOML items, consecutive days folded into inclusive ``A..B`` ranges."""
    out: list[str] = []
    run: list[dt.date] = []
    for d in sorted(days):
        if run and (d - run[-1]).days != 1:
            out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
            run = []
        run.append(d)
    if run:
        out.append(f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0]))
    return out


def _toml_list(key: str, items: list[str]) -> str:
    if not items:
        return f"{key} = []\n"
    return f"{key} = [\n" + "".join(f'    "{item}",\n' for item in items) + "]\n"


def year_file_text(arr: YearArrangement) -> str:
    """Canonical year file for ``arr``; ``parse_year_file`` gives ``arr`` back."""
    _check(arr)
    return (
        f"# {arr.year} 年部分节假日安排：holidays 为放假日期，workdays 为调休上班日期\n"
        f"year = {arr.year}\n"
        f"source = {_toml_str(arr.source)}\n"
        + _toml_list("holidays", _runs(arr.holidays))
        + _toml_list("workdays", _runs(arr.workdays))
    )


def load_year_files(directory: str | Path) -> list[YearArrangement]:
    """Every ``<year>.toml`` in ``directory``, by year; the file name must match its ``year``."""
    out: list[YearArrangement] = []
    for path in sorted(Path(directory).glob("*.toml")):
        try:
            arr = parse_year_file(path.read_text(encoding="utf-8"))
        except CalendarFileInvalid as e:
            raise CalendarFileInvalid(f"{path.name}：{e.message}", file=path.name, **e.data) from e
        if path.stem != str(arr.year):
            raise CalendarFileInvalid(
                f"{path.name}：文件名与年份 {arr.year} 不符", file=path.name, year=arr.year
            )
        out.append(arr)
    return out


# --- the library ------------------------------------------------------------------------------


@functools.cache
def _library_covers(year: int) -> bool:
    try:
        chinese_calendar.is_workday(dt.date(year, 1, 1))
    except NotImplementedError:
        return False
    return True


@functools.cache
def _library_arrangement(year: int) -> YearArrangement | None:
    """The package's data for ``year`` in minimal form (only days that differ from Mon–Fri)."""
    if not _library_covers(year):
        return None
    holidays: set[dt.date] = set()
    workdays: set[dt.date] = set()
    d = dt.date(year, 1, 1)
    one = dt.timedelta(days=1)
    try:
        while d.year == year:
            working = chinese_calendar.is_workday(d)
            if d.weekday() < 5 and not working:
                holidays.add(d)
            elif d.weekday() >= 5 and working:
                workdays.add(d)
            d += one
    except NotImplementedError:
        return None
    version = getattr(chinese_calendar, "__version__", "")
    return YearArrangement(
        year=year,
        holidays=frozenset(holidays),
        workdays=frozenset(workdays),
        source=f"chinesecalendar {version}".strip(),
    )


@functools.cache
def _library_years() -> frozenset[int]:
    # candidates from the package's tables, confirmed by asking it (coverage is not hard-coded)
    candidates = {d.year for d in chinese_calendar.holidays} | {
        d.year for d in chinese_calendar.workdays
    }
    return frozenset(y for y in candidates if _library_covers(y))


# --- the calendar -----------------------------------------------------------------------------


class _Year(NamedTuple):
    known: bool
    first: int  # ordinal of 1 January
    flags: bytes  # 1 = working day, indexed by ordinal - first
    working: Sequence[int]  # sorted ordinals of the working days


def _build_year(year: int, arr: YearArrangement | None) -> _Year:
    first = dt.date(year, 1, 1).toordinal()
    ndays = dt.date(year, 12, 31).toordinal() - first + 1
    if arr is None:
        # unknown year: every day counts (conservative), and a range keeps it cheap
        return _Year(False, first, b"\x01" * ndays, range(first, first + ndays))
    off = {d.toordinal() for d in arr.holidays}
    on = {d.toordinal() for d in arr.workdays}
    flags = bytearray(ndays)
    for o in range(first, first + ndays):
        # ordinal 1 (0001-01-01) is a Monday, so (o - 1) % 7 is Python's weekday()
        if o in on or ((o - 1) % 7 < 5 and o not in off):
            flags[o - first] = 1
    working = tuple(first + i for i, f in enumerate(flags) if f)
    return _Year(True, first, bytes(flags), working)


def _as_date(d: dt.date) -> dt.date:
    # a datetime would carry a time zone question into a whole-day count: take Clock.today()
    if isinstance(d, dt.datetime):
        raise TypeError("pass a date (the day in China, e.g. Clock.today()), not a datetime")
    return d


def _add_months(d: dt.date, n: int) -> dt.date:
    months = d.year * 12 + d.month - 1 + n
    year, month = divmod(months, 12)
    month += 1
    last = 31 if month == 12 else (dt.date(year, month + 1, 1) - dt.timedelta(days=1)).day
    # 第202条: no corresponding day → the last day of that month
    return dt.date(year, month, min(d.day, last))


class WorkingDayCalendar:
    """Working days from loaded year files, then the ``chinesecalendar`` package, then fallback.

    Immutable: ``with_arrangement`` returns a new calendar. Per-year tables are built once, lazily.
    """

    def __init__(self, arrangements: Iterable[YearArrangement] = ()) -> None:
        files: dict[int, YearArrangement] = {}
        for arr in arrangements:
            _check(arr)
            if arr.year in files:
                raise ValueError(f"two arrangements for {arr.year}")
            files[arr.year] = arr
        self._files = files
        self._years: dict[int, _Year] = {}

    def with_arrangement(self, arr: YearArrangement) -> WorkingDayCalendar:
        """A new calendar with ``arr`` added, or replacing the one for its year."""
        _check(arr)
        new = WorkingDayCalendar()
        new._files = {**self._files, arr.year: arr}
        new._years = {y: t for y, t in self._years.items() if y != arr.year}
        return new

    def known_years(self) -> tuple[int, ...]:
        """Years with real data (year files and the package), ascending."""
        return tuple(sorted(set(self._files) | _library_years()))

    def is_known_year(self, year: int) -> bool:
        return year in self._files or _library_covers(year)

    def arrangement(self, year: int) -> YearArrangement | None:
        """The arrangement in force for ``year`` (to ship to terminals), or None when unknown."""
        arr = self._files.get(year)
        return arr if arr is not None else _library_arrangement(year)

    def _year(self, year: int) -> _Year:
        t = self._years.get(year)
        if t is None:
            if not dt.MINYEAR <= year <= dt.MAXYEAR:
                raise ValueError("超出可计算的日期范围")
            t = self._years[year] = _build_year(year, self.arrangement(year))
        return t

    def is_working_day(self, d: dt.date) -> bool:
        """Whether ``d`` is a 工作日; every day of an unknown year is (conservative)."""
        t = self._year(_as_date(d).year)
        return t.flags[d.toordinal() - t.first] == 1

    def add_working_days(self, start: dt.date, n: int) -> Deadline:
        """The ``n``-th working day strictly after ``start`` (第201条)."""
        start = _as_date(start)
        if n < 1:
            raise ValueError("n must be >= 1")
        after = start.toordinal()
        left = n
        fallback = False
        year = start.year
        while True:
            t = self._year(year)
            i = bisect_right(t.working, after)
            avail = len(t.working) - i
            if avail and not t.known:
                fallback = True  # at least one day of this unknown year is counted
            if left <= avail:
                end = dt.date.fromordinal(t.working[i + left - 1])
                return Deadline(start=start, deadline=end, fallback=fallback, working_days=n)
            left -= avail
            year += 1

    def _extend(self, start: dt.date, end: dt.date) -> tuple[dt.date, bool]:
        # 第203条: a last day that is not a working day moves to the next working day
        while not self.is_working_day(end):
            end += dt.timedelta(days=1)
        # unknown years have no non-working days, so only the final day can lie in one
        return end, not self._year(end.year).known

    def add_calendar_days(self, start: dt.date, n: int) -> Deadline:
        """``start + n`` days, moved to the next working day when that is not one (第203条)."""
        start = _as_date(start)
        if n < 1:
            raise ValueError("n must be >= 1")
        end, fallback = self._extend(start, start + dt.timedelta(days=n))
        return Deadline(start=start, deadline=end, fallback=fallback, calendar_days=n)

    def add_months(self, start: dt.date, n: int) -> Deadline:
        """Same day ``n`` months later (month end if none, 第202条), then as ``add_calendar_days``."""
        start = _as_date(start)
        if n < 1:
            raise ValueError("n must be >= 1")
        end, fallback = self._extend(start, _add_months(start, n))
        return Deadline(start=start, deadline=end, fallback=fallback, months=n)

    def working_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days in ``(start, end]``; negative when ``end < start``, so counts add up."""
        start, end = _as_date(start), _as_date(end)
        if end < start:
            return -self.working_days_between(end, start)
        a, b = start.toordinal(), end.toordinal()
        count = 0
        for year in range(start.year, end.year + 1):
            w = self._year(year).working
            count += bisect_right(w, b) - bisect_right(w, a)
        return count
