"""The legal periods a document prints, as concrete calendar dates from the one working-day calendar.

Every period starts the day after service (民法典 第201条). 《行政处罚法》第85条 makes its 五日/七日
working days; 15 days (第67条), 60 days (行政复议法 第20条) and 6 months (行政诉讼法 第46条) are
calendar periods that end on the next working day when their last day is not one (第203条).
A date that depends on a year the calendar does not know is flagged (``fallback``): the document then
says so, and tells the party the statutory period prevails.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from mobile_api.contracts.calendar import Deadline, WorkingDayCalendar

HEARING_REQUEST_WORKING_DAYS = 5  # 第64条第（一）项
HEARING_NOTICE_WORKING_DAYS = 7  # 第64条第（二）项
PAYMENT_DAYS = 15  # 第67条第三款
RECONSIDERATION_DAYS = 60  # 行政复议法 第20条
LAWSUIT_MONTHS = 6  # 行政诉讼法 第46条
SURCHARGE_PERCENT_PER_DAY = 3  # 第72条第一款第（一）项


class Period(msgspec.Struct, frozen=True, kw_only=True):
    """One period: what it is, from which day it runs, its last day, and whether that is certain."""

    name: str  # Chinese, e.g. 陈述、申辩期限
    rule: str  # e.g. 送达之日起五个工作日内（《行政处罚法》第四十五条、第八十五条）
    start: dt.date
    deadline: dt.date
    fallback: bool = False


def _period(name: str, rule: str, deadline: Deadline) -> Period:
    return Period(
        name=name,
        rule=rule,
        start=deadline.start,
        deadline=deadline.deadline,
        fallback=deadline.fallback,
    )


CHINESE_DIGITS = "〇一二三四五六七八九"


def chinese_count(n: int) -> str:
    """1..99 in Chinese numerals as used in statutes: 五, 十五, 六十, 二十一."""
    if not 0 < n < 100:
        raise ValueError("chinese_count handles 1..99")
    tens, units = divmod(n, 10)
    if tens == 0:
        return CHINESE_DIGITS[units]
    head = "" if tens == 1 else CHINESE_DIGITS[tens]
    return head + "十" + (CHINESE_DIGITS[units] if units else "")


def statement(calendar: WorkingDayCalendar, served: dt.date, working_days: int) -> Period:
    return _period(
        "陈述、申辩期限",
        f"告知书送达之日起{chinese_count(working_days)}个工作日内（《行政处罚法》第四十五条、第八十五条）",
        calendar.add_working_days(served, working_days),
    )


def hearing_request(calendar: WorkingDayCalendar, served: dt.date) -> Period:
    return _period(
        "听证申请期限",
        f"告知书送达之日起{chinese_count(HEARING_REQUEST_WORKING_DAYS)}个工作日内"
        "（《行政处罚法》第六十四条第（一）项、第八十五条）",
        calendar.add_working_days(served, HEARING_REQUEST_WORKING_DAYS),
    )


def hearing_notice(calendar: WorkingDayCalendar, served: dt.date) -> Period:
    """The 7 working days that must pass between serving the hearing notice and the hearing.

    The hearing may be held from the day after ``deadline`` on.
    """
    return _period(
        "听证通知期限",
        f"听证通知书送达后满{chinese_count(HEARING_NOTICE_WORKING_DAYS)}个工作日方可举行听证"
        "（《行政处罚法》第六十四条第（二）项、第八十五条）",
        calendar.add_working_days(served, HEARING_NOTICE_WORKING_DAYS),
    )


def payment(calendar: WorkingDayCalendar, served: dt.date) -> Period:
    return _period(
        "缴纳罚款期限",
        f"收到决定书之日起{chinese_count(PAYMENT_DAYS)}日内（《行政处罚法》第六十七条）",
        calendar.add_calendar_days(served, PAYMENT_DAYS),
    )


def reconsideration(calendar: WorkingDayCalendar, served: dt.date) -> Period:
    return _period(
        "申请行政复议期限",
        f"知道该行政行为之日起{chinese_count(RECONSIDERATION_DAYS)}日内（《中华人民共和国行政复议法》第二十条）",
        calendar.add_calendar_days(served, RECONSIDERATION_DAYS),
    )


def lawsuit(calendar: WorkingDayCalendar, served: dt.date) -> Period:
    return _period(
        "提起行政诉讼期限",
        f"知道作出行政行为之日起{chinese_count(LAWSUIT_MONTHS)}个月内（《中华人民共和国行政诉讼法》第四十六条）",
        calendar.add_months(served, LAWSUIT_MONTHS),
    )
