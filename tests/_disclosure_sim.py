"""A simulated agency life for the disclosure tests: decisions issued day by day, two server
instances running the jobs against one database, a FrozenClock moved a day at a time.

Decisions reach disclosure the way server.app delivers them (``services.record_decision`` and
``services.withdraw`` in a transaction of their own); everything else happens in the jobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from disclosure import services
from disclosure.hooks import DisclosureHooks
from disclosure.jobs import JobReport, run_due_jobs
from disclosure.schemas import (
    DecisionChanged,
    DecisionIssued,
    Organisation,
    Person,
    SettingsView,
    Withhold,
)
from mobile_api.contracts.calendar import WorkingDayCalendar, parse_year_file
from server.app import demo
from server.app.calendar_years import store_year_file
from server.app.context import AppContext
from server.core import roster
from server.core.clock import CHINA_TZ, FrozenClock
from server.core.models import Agency, EnforcementCategory, EnforcementItem
from server.core.settings import Settings

CALENDAR_2027 = Path(__file__).parent / "data" / "calendar" / "2027.toml"

SURNAMES = list(
    "王李刘杨黄吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范廖贾夏韦付白邹孟熊秦邱尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵钱严覃武戴莫孔汤"
)
COMPOUND = ["欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "慕容", "令狐"]
# Given-name characters that occur in no template, category or officer name, so a full name can
# only appear in public text if redaction failed.
GIVEN = list("娜婷霖瑶琳睿梓轩涵萱琪颖彤薇蕾婕岚倩雯煜瀚铭皓骁晟钧翊嘉懿瑾璇琰骞烨炜")
DISEASES = ["高血压", "糖尿病", "抑郁症"]
STREETS = ["人民路", "建设大道", "解放街", "和平巷"]
PROVINCES = "京沪粤苏浙鲁川鄂"
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CREDIT_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
KINDS = (
    ["行政处罚"] * 10
    + ["行政许可"] * 4
    + ["行政检查"] * 3
    + ["行政强制"] * 2
    + ["行政征收", "其他"]
)
OUTCOMES = {
    "行政处罚": ["罚款", "警告", "没收违法所得"],
    "行政许可": ["准予许可", "不予许可"],
    "行政检查": ["未发现问题", "责令改正"],
    "行政强制": ["扣押", "查封"],
    "行政征收": ["征收"],
    "其他": ["其他"],
}
SECOND_AGENCY = ("demo2", "示范市交通运输综合行政执法支队", ["道路运输", "水路运输"])


def id_number(rng: random.Random, born: dt.date) -> str:
    body = f"{rng.randint(110000, 659000)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def bank_card(rng: random.Random) -> str:
    body = "622202" + "".join(str(rng.randint(0, 9)) for _ in range(12))
    total = 0
    for i, ch in enumerate(reversed(body)):
        n = int(ch) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return body + str((10 - total % 10) % 10)


def credit_code(rng: random.Random) -> str:
    body = (
        "91"
        + f"{rng.randint(110000, 659000)}"
        + "".join(rng.choice(CREDIT_ALPHABET) for _ in range(9))
    )
    total = sum(CREDIT_ALPHABET.index(c) * w for c, w in zip(body, CREDIT_WEIGHTS, strict=True))
    return body + CREDIT_ALPHABET[(31 - total % 31) % 31]


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=CHINA_TZ).astimezone(
        dt.UTC
    )


@dataclass
class Issued:
    event: DecisionIssued
    recorded_on: dt.date
    names: list[str]
    fixed: bool = False
    approved_on: dt.date | None = None  # the review gate holds it until this day
    changed: DecisionChanged | None = None


@dataclass
class Simulation:
    settings: Settings
    start: dt.date
    seed: int = 2026
    calendar_2027: bool = False
    per_day: float = 1.2
    clock: FrozenClock = field(init=False)
    instances: list[AppContext] = field(init=False)
    issued: list[Issued] = field(default_factory=list)
    reports: list[JobReport] = field(default_factory=list)
    agencies: dict[str, Agency] = field(default_factory=dict)
    # Decisions issued on a given day, dated that day: (kind, agency code), for hand-made checks.
    fixed: dict[dt.date, list[tuple[str, str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.last_day = self.start
        self.clock = FrozenClock(at(self.start, 8))
        # Two server instances on one database: each has its own engine, pool and caches.
        self.instances = [AppContext(self.settings, self.clock) for _ in range(2)]
        self.hooks = DisclosureHooks(may_publish=self._gate)
        self._numbers: Counter[tuple[str, int]] = Counter()
        self._names: set[str] = set()
        self._approvals: dict[uuid.UUID, dt.date] = {}

    @property
    def a(self) -> AppContext:
        return self.instances[0]

    async def setup(self) -> None:
        """The demo agency (roster and catalog, no logins) and a second one with its own settings."""
        now = self.clock.now()
        code, name, categories = SECOND_AGENCY
        keyring = await self.a.keyring()
        async with self.a.database.transaction() as session:
            first = Agency(
                code=demo.AGENCY_CODE, name=demo.AGENCY_NAME, region="示范市", created_at=now
            )
            second = Agency(code=code, name=name, region="示范市", created_at=now)
            session.add_all([first, second])
            await session.flush()
            session.add_all(
                EnforcementCategory(agency_id=first.id, name=c) for c in demo.CATEGORIES
            )
            session.add_all(EnforcementCategory(agency_id=second.id, name=c) for c in categories)
            session.add_all(
                EnforcementItem(
                    agency_id=first.id, code=c, name=n, category=cat, kind=k, legal_basis=b
                )
                for c, n, cat, k, b in demo.ITEMS
            )
            await session.flush()
            header = "证号,姓名,单位,执法类别,执法区域,发证日期,有效期至"
            rows = [",".join(f'"{cell}"' for cell in row) for row in demo.OFFICERS]
            await roster.import_roster(
                session,
                keyring,
                agency_code=demo.AGENCY_CODE,
                raw_csv=("\n".join([header, *rows]) + "\n").encode(),
                photos={},
                now=now,
            )
            await services.update_settings(
                session,
                keyring,
                second,
                SettingsView(publish_lag_working_days=2, report_due_month=1, report_due_day=15),
                now,
            )
            if self.calendar_2027:
                await store_year_file(session, keyring, CALENDAR_2027.read_text("utf-8"), now)
        async with self.a.database.sessionmaker() as session:
            for agency in await session.scalars(select(Agency)):
                self.agencies[agency.code] = agency
        for instance in self.instances:
            await instance.calendar(refresh=True)

    def reference_calendar(self) -> WorkingDayCalendar:
        if self.calendar_2027:
            return WorkingDayCalendar([parse_year_file(CALENDAR_2027.read_text("utf-8"))])
        return WorkingDayCalendar()

    async def close(self) -> None:
        for instance in self.instances:
            await instance.close()

    # --- the review gate the lead wires to review: some major decisions wait a day or two ---

    async def _gate(self, session: object, case_id: uuid.UUID) -> bool | str:
        approved_on = self._approvals.get(case_id)
        if approved_on is not None and self.clock.today() < approved_on:
            return "重大执法决定法制审核尚未通过"
        return True

    # --- one day ---------------------------------------------------------------------------------

    async def run_jobs(self, *, together: bool = True) -> None:
        """Both instances run their jobs: at the same moment, or one after the other."""
        runs = [
            run_due_jobs(instance, self.hooks, holder=f"instance-{i}")
            for i, instance in enumerate(self.instances)
        ]
        if together:
            self.reports.extend(await asyncio.gather(*runs))
            return
        self.rng.shuffle(runs)
        for run in runs:
            self.reports.append(await run)

    async def day(self, today: dt.date) -> None:
        self.clock.set(at(today, 10))
        await self.office_hours(today)
        # The servers run their jobs every minute; one round a day after office hours is what
        # matters for the day's deadlines.
        self.clock.set(at(today, 12))
        # On SQLite the two contend through busy waits, which is slow: most days they take turns.
        await self.run_jobs(together=self.rng.random() < 0.2)

    async def run(self, end: dt.date) -> None:
        today = self.start
        while today <= end:
            await self.day(today)
            self.last_day = today
            today += dt.timedelta(days=1)

    async def office_hours(self, today: dt.date) -> None:
        calendar = await self.a.calendar()
        working = calendar.is_working_day(today)
        count = 0
        if working:
            count = int(self.per_day) + (self.rng.random() < self.per_day % 1)
        for kind, code in self.fixed.get(today, []):
            await self.issue(today, kind, code=code, decision_date=today)
        for _ in range(count):
            await self.issue(today, self.rng.choice(KINDS))
        for _ in range(2 if working else 0):
            if self.rng.random() < 0.08:
                await self.change_one(today)

    def person_name(self) -> str:
        while True:
            surname = (
                self.rng.choice(COMPOUND) if self.rng.random() < 0.15 else self.rng.choice(SURNAMES)
            )
            given = "".join(self.rng.choice(GIVEN) for _ in range(self.rng.choice((1, 2))))
            name = surname + given
            if name not in self._names:
                self._names.add(name)
                return name

    def _number(self, code: str, kind: str, year: int) -> str:
        self._numbers[(code, year)] += 1
        short = {"行政处罚": "罚", "行政许可": "许", "行政检查": "检", "行政强制": "强"}.get(
            kind, "决"
        )
        return f"示{code[-1] if code[-1].isdigit() else '文'}{short}〔{year}〕{self._numbers[(code, year)]}号"

    async def issue(
        self, today: dt.date, kind: str, code: str = "", decision_date: dt.date | None = None
    ) -> Issued:
        rng = self.rng
        fixed = bool(code)
        code = code or ("demo" if rng.random() < 0.7 else "demo2")
        agency = self.agencies[code]
        categories = demo.CATEGORIES if code == "demo" else SECOND_AGENCY[2]
        decision_date = decision_date or today - dt.timedelta(days=rng.choice((0, 0, 0, 1, 2)))
        served_on: dt.date | None = today
        if not fixed and rng.random() < 0.05:
            served_on = None  # not served yet: published on the deadline
        other = self.person_name()
        names = [other]
        place = f"示范市城东区{rng.choice(STREETS)}{rng.randint(1, 300)}号"
        if rng.random() < 0.55:
            name = self.person_name()
            names.append(name)
            born = dt.date(rng.randint(1960, 2004), rng.randint(1, 12), rng.randint(1, 28))
            subject: Person | Organisation = Person(
                name=name, minor=not fixed and rng.random() < 0.04
            )
            facts = (
                f"当事人{name}（身份证号{id_number(rng, born)}，手机{rng.choice('3589')}"
                f"{rng.randint(100000000, 999999999)}，住址：示范市城西区幸福小区{rng.randint(1, 30)}栋"
                f"{rng.randint(1, 6)}单元{rng.randint(101, 2801)}室）于{decision_date:%Y年%m月%d日}"
                f"在{place}从事经营活动，证人{other}在场。"
            )
            if rng.random() < 0.3:
                facts += f"当事人驾驶{rng.choice(PROVINCES)}{rng.choice(PLATE_LETTERS)}{rng.randint(10000, 99999)}号车辆运送物品。"
            if rng.random() < 0.3:
                facts += f"{name}称其患有{rng.choice(DISEASES)}，请求从轻处理。"
            if rng.random() < 0.3:
                facts += f"经查，当事人通过银行卡{bank_card(rng)}收取费用。"
            conclusion = f"对{name}依法作出{rng.choice(OUTCOMES[kind])}的决定"
        else:
            org = f"示范市{rng.choice(['星河', '远航', '嘉禾', '锦程', '华夏'])}{rng.randint(1, 999)}号经营有限公司"
            subject = Organisation(name=org, credit_code=credit_code(rng))
            facts = (
                f"{org}（法定代表人：{other}，联系电话0{rng.randint(10, 999)}-{rng.randint(2000000, 8999999)}）"
                f"于{decision_date:%Y年%m月%d日}在{place}违规经营。"
            )
            conclusion = f"对{org}依法作出{rng.choice(OUTCOMES[kind])}的决定"
        withhold = None
        if not fixed and rng.random() < 0.03:
            withhold = Withhold(
                kind="商业秘密", reason="决定内容涉及当事人的商业秘密，经审查不予公开"
            )
        event = DecisionIssued(
            case_id=uuid.uuid4(),
            agency_id=agency.id,
            decision_number=self._number(code, kind, decision_date.year),
            decision_date=decision_date,
            served_on=served_on,
            act_kind=kind,  # type: ignore[arg-type]
            category=rng.choice(categories),
            subject=subject,
            conclusion=conclusion,
            outcome=rng.choice(OUTCOMES[kind]),
            basis="依据《中华人民共和国行政处罚法》第二十八条、《娱乐场所管理条例》第四十一条。",
            facts=facts,
            other_persons=[other],
            withhold=withhold,
            legal_review=rng.random() < 0.2,
            hearing=rng.random() < 0.05,
        )
        item = Issued(event=event, recorded_on=today, names=names, fixed=fixed)
        if not fixed and rng.random() < 0.05:
            item.approved_on = today + dt.timedelta(days=rng.choice((1, 2)))
            self._approvals[event.case_id] = item.approved_on
        self.issued.append(item)
        await self.record(event)
        return item

    async def record(self, event: DecisionIssued) -> None:
        instance = self.rng.choice(self.instances)
        async with instance.database.transaction() as session:
            await services.record_decision(
                session,
                event,
                calendar=await instance.calendar(),
                keyring=await instance.keyring(),
                now=self.clock.now(),
            )

    async def change_one(self, today: dt.date) -> None:
        candidates = [
            i for i in self.issued if i.changed is None and i.recorded_on < today and not i.fixed
        ]
        if not candidates:
            return
        # Some changes come before publication: unserved decisions wait for their deadline, and
        # demo2 publishes two working days after service.
        waiting = [
            i
            for i in candidates
            if i.event.served_on is None
            or (
                i.event.agency_id == self.agencies["demo2"].id
                and i.recorded_on >= today - dt.timedelta(days=1)
            )
        ]
        item = self.rng.choice(waiting if waiting and self.rng.random() < 0.4 else candidates)
        party = item.names[-1]
        change = DecisionChanged(
            case_id=item.event.case_id,
            agency_id=item.event.agency_id,
            decision_number=item.event.decision_number,
            change=self.rng.choice(["变更", "撤销", "确认违法", "确认无效"]),  # type: ignore[arg-type]
            reason=f"{party}申请行政复议，复议机关认定原决定认定事实不清，依法予以纠正。",
            changed_on=today,
            via=self.rng.choice(["本机关", "行政复议", "行政诉讼"]),  # type: ignore[arg-type]
        )
        item.changed = change
        instance = self.rng.choice(self.instances)
        async with instance.database.transaction() as session:
            await services.withdraw(
                session,
                change,
                calendar=await instance.calendar(),
                keyring=await instance.keyring(),
                now=self.clock.now(),
            )

    def known_names(self) -> set[str]:
        return {name for item in self.issued for name in item.names}

    def credit_codes(self) -> set[str]:
        return {
            item.event.subject.credit_code
            for item in self.issued
            if isinstance(item.event.subject, Organisation)
        }
