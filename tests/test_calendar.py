"""The working-day (工作日) calendar: 民法典 第201–203条 and 行政处罚法 第85条 counting."""

from __future__ import annotations

import random
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar
import msgspec
import pytest

from mobile_api.contracts.calendar import (
    CalendarFileInvalid,
    Deadline,
    WorkingDayCalendar,
    YearArrangement,
    load_year_files,
    parse_year_file,
    year_file_text,
)

DATA = Path(__file__).parent / "data" / "calendar"
D = date.fromisoformat


@pytest.fixture(scope="module")
def cal() -> WorkingDayCalendar:
    return WorkingDayCalendar()


@pytest.fixture(scope="module")
def arr2027() -> YearArrangement:
    return parse_year_file((DATA / "2027.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cal2027(arr2027: YearArrangement) -> WorkingDayCalendar:
    return WorkingDayCalendar([arr2027])


# --- the required cases -----------------------------------------------------------------------


def test_friday_before_national_day_2025(cal: WorkingDayCalendar) -> None:
    # 2025-09-28 (Sun) and 2025-10-11 (Sat) are 调休 make-up working days
    assert cal.add_working_days(D("2025-09-26"), 7) == Deadline(
        start=D("2025-09-26"), deadline=D("2025-10-13"), fallback=False, working_days=7
    )


def test_saturday_start_counts_from_next_day(cal: WorkingDayCalendar) -> None:
    assert cal.add_working_days(D("2026-03-07"), 7).deadline == D("2026-03-17")
    assert cal.add_working_days(D("2026-03-07"), 1).deadline == D("2026-03-09")


def test_unknown_year_counts_every_day_and_is_flagged(cal: WorkingDayCalendar) -> None:
    # five working days to 12-31, then 2027-01-01 and 01-02 count although we do not know them
    result = cal.add_working_days(D("2026-12-24"), 7)
    assert result.deadline == D("2027-01-02")
    assert result.fallback is True


def test_loaded_year_file_is_followed(cal2027: WorkingDayCalendar) -> None:
    # test data: 2027-01-01..03 are holidays, so the 6th and 7th days are 01-04 and 01-05
    result = cal2027.add_working_days(D("2026-12-24"), 7)
    assert result.deadline == D("2027-01-05")
    assert result.fallback is False


# --- working-day periods ----------------------------------------------------------------------


def test_across_spring_festival_2026(cal: WorkingDayCalendar) -> None:
    # 2026-02-15..23 off, 02-14 (Sat) and 02-28 (Sat) worked
    assert cal.add_working_days(D("2026-02-12"), 5).deadline == D("2026-02-26")
    assert cal.add_working_days(D("2026-02-13"), 1).deadline == D("2026-02-14")
    assert cal.add_working_days(D("2026-02-14"), 1).deadline == D("2026-02-24")
    assert cal.add_working_days(D("2026-02-16"), 1).deadline == D("2026-02-24")
    assert cal.add_working_days(D("2026-02-26"), 2).deadline == D("2026-02-28")


def test_across_national_day_2025(cal: WorkingDayCalendar) -> None:
    # starting on a holiday: the next working days are 10-09, 10-10 and 10-11 (Sat, worked)
    assert cal.add_working_days(D("2025-10-01"), 3).deadline == D("2025-10-11")
    assert cal.add_working_days(D("2025-09-30"), 1).deadline == D("2025-10-09")
    assert cal.add_working_days(D("2025-09-27"), 1).deadline == D("2025-09-28")


def test_across_new_year_2026(cal: WorkingDayCalendar) -> None:
    # 2026-01-01..03 off, 01-04 (Sun) worked
    assert cal.add_working_days(D("2025-12-31"), 1).deadline == D("2026-01-04")


def test_fallback_only_when_a_counted_day_is_unknown(cal: WorkingDayCalendar) -> None:
    assert cal.add_working_days(D("2026-12-24"), 5) == Deadline(
        start=D("2026-12-24"), deadline=D("2026-12-31"), fallback=False, working_days=5
    )
    assert cal.add_working_days(D("2026-12-31"), 1).fallback is True


def test_unknown_year_before_the_library(cal: WorkingDayCalendar) -> None:
    # 2003-12-31 counts as unknown; 2004-01-01 is a holiday, 01-02 (Fri) a working day
    result = cal.add_working_days(D("2003-12-30"), 2)
    assert result.deadline == D("2004-01-02")
    assert result.fallback is True
    assert cal.add_working_days(D("2003-12-31"), 1) == Deadline(
        start=D("2003-12-31"), deadline=D("2004-01-02"), fallback=False, working_days=1
    )


def test_matches_the_library_day_by_day(cal: WorkingDayCalendar) -> None:
    years = cal.known_years()
    day = date(years[0], 1, 1)
    end = date(years[-1], 12, 31)
    while day <= end:
        assert cal.is_working_day(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)

    rng = random.Random(201)
    for _ in range(500):
        start = date(years[0], 1, 1) + timedelta(
            days=rng.randrange((end - date(years[0], 1, 1)).days)
        )
        n = rng.randint(1, 30)
        # the naive count, straight from the law: next day first, working days only
        d, left = start, n
        while left:
            d += timedelta(days=1)
            if d > end:
                break
            left -= chinese_calendar.is_workday(d)
        if left:
            continue
        result = cal.add_working_days(start, n)
        assert result.deadline == d, (start, n)
        assert result.fallback is False
        assert cal.working_days_between(start, d) == n


def test_many_working_days_across_years(cal2027: WorkingDayCalendar) -> None:
    result = cal2027.add_working_days(D("2025-06-01"), 600)
    assert cal2027.working_days_between(D("2025-06-01"), result.deadline) == 600
    assert cal2027.is_working_day(result.deadline)
    assert result.deadline.year == 2027
    assert result.fallback is False


def test_year_file_overrides_library(cal: WorkingDayCalendar) -> None:
    custom = YearArrangement(
        year=2026,
        holidays=frozenset({D("2026-03-09")}),
        workdays=frozenset({D("2026-03-07")}),
    )
    mine = cal.with_arrangement(custom)
    assert mine.add_working_days(D("2026-03-06"), 2).deadline == D("2026-03-10")
    # Spring Festival is not in this file, so 2026-02-16 is an ordinary Monday here
    assert mine.is_working_day(D("2026-02-16"))
    # the original is unchanged
    assert cal.add_working_days(D("2026-03-06"), 2).deadline == D("2026-03-10")
    assert cal.add_working_days(D("2026-03-06"), 1).deadline == D("2026-03-09")
    assert mine.add_working_days(D("2026-03-06"), 1).deadline == D("2026-03-07")


# --- calendar-day and month periods (第203条) -------------------------------------------------


def test_15_days(cal: WorkingDayCalendar) -> None:
    assert cal.add_calendar_days(D("2025-11-03"), 15) == Deadline(
        start=D("2025-11-03"), deadline=D("2025-11-18"), fallback=False, calendar_days=15
    )
    # ends on Saturday 2025-11-22 → Monday
    assert cal.add_calendar_days(D("2025-11-07"), 15).deadline == D("2025-11-24")
    # ends on 2025-10-01, National Day → first working day after the holiday
    assert cal.add_calendar_days(D("2025-09-16"), 15).deadline == D("2025-10-09")


def test_60_days(cal: WorkingDayCalendar) -> None:
    # ends on Sunday 2026-01-04, a make-up working day: stays
    assert cal.add_calendar_days(D("2025-11-05"), 60).deadline == D("2026-01-04")
    # ends on Sunday 2026-02-01 → Monday
    assert cal.add_calendar_days(D("2025-12-03"), 60).deadline == D("2026-02-02")
    # ends inside Spring Festival 2026 → 02-24
    assert cal.add_calendar_days(D("2025-12-20"), 60).deadline == D("2026-02-24")


def test_6_months(cal: WorkingDayCalendar) -> None:
    assert cal.add_months(D("2025-08-19"), 6) == Deadline(
        start=D("2025-08-19"), deadline=D("2026-02-24"), fallback=False, months=6
    )
    # no 31 February: month end, which is Saturday 2026-02-28, a make-up working day
    assert cal.add_months(D("2025-08-31"), 6).deadline == D("2026-02-28")
    # leap year
    assert cal.add_months(D("2023-08-31"), 6).deadline == D("2024-02-29")
    assert cal.add_months(D("2025-03-15"), 6).deadline == D("2025-09-15")
    assert cal.add_months(D("2025-12-31"), 1).deadline == D("2026-02-02")  # 01-31 is Saturday
    assert cal.add_months(D("2025-01-31"), 11).deadline == D("2025-12-31")
    assert cal.add_months(D("2025-01-31"), 12).deadline == D("2026-02-02")  # 01-31 is Saturday


def test_calendar_periods_into_an_unknown_year(
    cal: WorkingDayCalendar, cal2027: WorkingDayCalendar
) -> None:
    # only the last day's status matters; in an unknown year it counts as a working day
    assert cal.add_calendar_days(D("2026-12-01"), 60) == Deadline(
        start=D("2026-12-01"), deadline=D("2027-01-30"), fallback=True, calendar_days=60
    )
    assert cal2027.add_calendar_days(D("2026-12-01"), 60).deadline == D("2027-02-01")
    assert cal2027.add_calendar_days(D("2026-12-01"), 60).fallback is False
    assert cal.add_months(D("2026-08-31"), 6).deadline == D("2027-02-28")
    assert cal.add_months(D("2026-08-31"), 6).fallback is True
    # test data: 2027-02-06..14 off, so a Feb 28 (Sunday) end moves to Monday 03-01
    assert cal2027.add_months(D("2026-08-31"), 6).deadline == D("2027-03-01")
    assert cal2027.add_months(D("2026-08-10"), 6).deadline == D("2027-02-15")
    # the period crosses an unknown year but ends in a known one: exact, not flagged
    cal2028 = cal.with_arrangement(
        YearArrangement(year=2028, holidays=frozenset({D("2028-01-03")}), workdays=frozenset())
    )
    assert cal2028.add_calendar_days(D("2026-12-31"), 368) == Deadline(
        start=D("2026-12-31"), deadline=D("2028-01-04"), fallback=False, calendar_days=368
    )
    assert cal2028.add_working_days(D("2026-12-31"), 1).fallback is True


# --- argument checks --------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_periods_are_refused(cal: WorkingDayCalendar, n: int) -> None:
    with pytest.raises(ValueError):
        cal.add_working_days(D("2026-03-02"), n)
    with pytest.raises(ValueError):
        cal.add_calendar_days(D("2026-03-02"), n)
    with pytest.raises(ValueError):
        cal.add_months(D("2026-03-02"), n)


def test_datetimes_are_refused(cal: WorkingDayCalendar) -> None:
    # a UTC datetime may be a different day in China: callers pass Clock.today()
    with pytest.raises(TypeError):
        cal.add_working_days(datetime(2026, 3, 2, 20, 0), 1)
    with pytest.raises(TypeError):
        cal.is_working_day(datetime(2026, 3, 2, 20, 0))


# --- queries ----------------------------------------------------------------------------------


def test_known_years(cal: WorkingDayCalendar, cal2027: WorkingDayCalendar) -> None:
    years = cal.known_years()
    assert years == tuple(range(years[0], years[-1] + 1))
    assert {2004, 2025, 2026} <= set(years)
    assert cal.is_known_year(2026)
    assert not cal.is_known_year(2003)
    assert not cal.is_known_year(2027)
    assert cal2027.is_known_year(2027)
    assert cal2027.known_years() == (*years, 2027)


def test_is_working_day(cal: WorkingDayCalendar, cal2027: WorkingDayCalendar) -> None:
    assert cal.is_working_day(D("2025-09-28"))  # Sunday, make-up day
    assert not cal.is_working_day(D("2025-10-06"))  # Monday, holiday
    assert not cal.is_working_day(D("2025-10-12"))  # Sunday
    assert cal.is_working_day(D("2027-01-02"))  # unknown year: conservative
    assert not cal2027.is_working_day(D("2027-01-02"))
    assert not cal2027.is_working_day(D("2027-01-01"))
    assert cal2027.is_working_day(D("2027-02-20"))  # Saturday, make-up day (test data)


def test_working_days_between(cal: WorkingDayCalendar) -> None:
    a, b, c = D("2025-09-26"), D("2025-10-13"), D("2026-03-17")
    assert cal.working_days_between(a, b) == 7
    assert cal.working_days_between(b, a) == -7
    assert cal.working_days_between(a, a) == 0
    assert cal.working_days_between(D("2025-10-01"), D("2025-10-08")) == 0
    assert cal.working_days_between(a, c) == (
        cal.working_days_between(a, b) + cal.working_days_between(b, c)
    )
    assert cal.working_days_between(D("2026-12-31"), D("2027-01-03")) == 3


def test_deadline_encodes(cal: WorkingDayCalendar) -> None:
    result = cal.add_working_days(D("2025-09-26"), 7)
    raw = msgspec.json.encode(result)
    assert msgspec.json.decode(raw, type=Deadline) == result


def test_fast(cal2027: WorkingDayCalendar) -> None:
    starts = [D("2025-01-01") + timedelta(days=i) for i in range(700)]
    cal2027.add_working_days(starts[0], 250)  # warm the per-year tables
    t0 = time.perf_counter()
    for start in starts:
        cal2027.add_working_days(start, 250)
        cal2027.add_calendar_days(start, 60)
    per_call = (time.perf_counter() - t0) / (2 * len(starts))
    assert per_call < 1e-3  # typically a few microseconds


# --- year files -------------------------------------------------------------------------------


def test_fixture_year_file(arr2027: YearArrangement) -> None:
    assert arr2027.year == 2027
    assert len(arr2027.holidays) == 3 + 9 + 7
    assert arr2027.workdays == {D("2027-02-20"), D("2027-10-09")}
    assert "测试" in arr2027.source


def test_year_file_round_trip(arr2027: YearArrangement) -> None:
    text = year_file_text(arr2027)
    assert parse_year_file(text) == arr2027
    assert year_file_text(parse_year_file(text)) == text
    assert '"2027-02-06..2027-02-14",' in text
    assert '"2027-02-20",' in text


def test_round_trip_odd_source() -> None:
    arr = YearArrangement(
        year=2030,
        holidays=frozenset({D("2030-01-01")}),
        workdays=frozenset(),
        source='来源 "引号" \\ 反斜杠\n第二行\t\x7f',
    )
    text = year_file_text(arr)
    assert "workdays = []" in text
    assert parse_year_file(text) == arr


def test_library_year_ships_as_a_file(cal: WorkingDayCalendar) -> None:
    arr = cal.arrangement(2026)
    assert arr is not None
    assert cal.arrangement(2027) is None
    from_file = WorkingDayCalendar([parse_year_file(year_file_text(arr))])
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert from_file.is_working_day(day) == cal.is_working_day(day), day
        day += timedelta(days=1)


def test_holiday_on_a_weekend_is_just_a_day_off() -> None:
    arr = parse_year_file('year = 2027\nholidays = ["2027-01-02"]\n')
    cal = WorkingDayCalendar([arr])
    assert not cal.is_working_day(D("2027-01-02"))
    assert cal.is_working_day(D("2027-01-01"))
    assert arr.source == ""
    assert arr.workdays == frozenset()


def test_toml_native_dates_are_accepted() -> None:
    arr = parse_year_file("year = 2027\nholidays = [2027-01-01]\nworkdays = [2027-01-09]\n")
    assert arr.holidays == {D("2027-01-01")}
    assert arr.workdays == {D("2027-01-09")}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('year = 2027\nholidays = ["2027-13-01"]', "日期 2027-13-01 无效"),
        ('year = 2027\nholidays = ["2027-02-30"]', "日期 2027-02-30 无效"),
        ('year = 2027\nholidays = ["20270101"]', "日期 20270101 无效"),
        ('year = 2027\nholidays = ["2026-01-01"]', "2026-01-01 不属于 2027 年"),
        ('year = 2027\nholidays = ["2026-12-31..2027-01-02"]', "2026-12-31 不属于 2027 年"),
        ('year = 2027\nholidays = ["2027-01-01"]\nworkdays = ["2028-01-01"]', "不属于 2027 年"),
        (
            'year = 2027\nholidays = ["2027-02-10..2027-02-16"]\nworkdays = ["2027-02-14"]',
            "2027-02-14 同时列为节假日和调休工作日",
        ),
        ('year = 2027\nholidays = ["2027-02-11..2027-02-05"]', "2027-02-11..2027-02-05 起止颠倒"),
        ('year = 2027\nholidays = ["2027-01-01..2027-01-02..2027-01-03"]', "日期范围"),
        ('year = 2027\nholidays = ["2027-01-01.."]', "日期范围 2027-01-01.. 无效"),
        ('year = 2027\nholidays = "2027-01-01"', "必须是日期列表"),
        ("year = 2027\nholidays = [20270101]", "不是日期或日期范围"),
        ("year = 2027\nholidays = [2027-01-01T08:00:00]", "不是日期或日期范围"),
        ("year = 2027\nholidays = []", "没有列出任何节假日"),
        ("year = 2027", "没有列出任何节假日"),
        ('holidays = ["2027-01-01"]', "缺少 year"),
        ('year = "2027"\nholidays = ["2027-01-01"]', "必须是整数"),
        ('year = true\nholidays = ["2027-01-01"]', "必须是整数"),
        ('year = 0\nholidays = ["2027-01-01"]', "年份 0 无效"),
        ('year = 2027\nholiday = ["2027-01-01"]', "未知字段：holiday"),
        ('year = 2027\nsource = 1\nholidays = ["2027-01-01"]', "source"),
        ("year = 2027\nholidays = [", "TOML"),
    ],
)
def test_invalid_year_files(text: str, message: str) -> None:
    with pytest.raises(CalendarFileInvalid) as err:
        parse_year_file(text)
    assert message in err.value.message
    assert err.value.code == "calendar_file_invalid"


def test_load_year_files(tmp_path: Path, arr2027: YearArrangement) -> None:
    assert load_year_files(DATA) == [arr2027]
    assert load_year_files(tmp_path) == []
    (tmp_path / "2028.toml").write_text((DATA / "2027.toml").read_text(encoding="utf-8"))
    with pytest.raises(CalendarFileInvalid, match=r"2028\.toml：文件名与年份 2027 不符"):
        load_year_files(tmp_path)
    (tmp_path / "2028.toml").write_text('year = 2028\nholidays = ["2028-02-30"]\n')
    with pytest.raises(CalendarFileInvalid, match=r"2028\.toml：日期 2028-02-30 无效") as err:
        load_year_files(tmp_path)
    assert err.value.data["file"] == "2028.toml"


def test_calendar_checks_arrangements(arr2027: YearArrangement) -> None:
    with pytest.raises(ValueError):
        WorkingDayCalendar([arr2027, arr2027])
    bad = YearArrangement(year=2027, holidays=frozenset({D("2026-01-01")}), workdays=frozenset())
    with pytest.raises(CalendarFileInvalid):
        WorkingDayCalendar([bad])
    with pytest.raises(CalendarFileInvalid):
        WorkingDayCalendar().with_arrangement(bad)
    with pytest.raises(CalendarFileInvalid):
        year_file_text(bad)
