"""Routing of proposed decisions (目录清单), catalog versions, and the discretion check (裁量基准)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from review import services
from review.benchmarks import parse_benchmarks
from review.catalog import DEFAULT_CATALOG, parse_catalog, published_catalog
from review.errors import RuleFileInvalid
from review.schemas import BenchmarkStatus, ReviewCaseFile, ReviewState
from server.core import accounts
from server.core.models import Agency, Role
from tests._review_cases import case_file, changed, demo_agency_id, proposal
from tests.conftest import login

AGENCY = uuid.UUID(int=7)
HEAVY = ["降低资质等级", "吊销许可证件", "责令停产停业", "责令关闭", "限制从业"]

CATALOG_V1 = """
version = "2026-1"
title = "示范市文化市场综合行政执法支队重大执法决定法制审核目录清单"
review_working_days = 10
responsible_person = "支队长 刘强"

[[rules]]
id = "fine-culture-org"
kind = "fine"
category = "文化市场"
party = "organisation"
min_yuan = 50000
basis = "目录清单第一项"

[[rules]]
id = "fine-culture-person"
kind = "fine"
category = "文化市场"
party = "person"
min_yuan = 10000

[[rules]]
id = "fine-tourism"
kind = "fine"
category = "旅游市场"
min_yuan = 30000

[[rules]]
id = "confiscation"
kind = "confiscation"
min_yuan = 20000

[[rules]]
id = "heavy"
kind = "penalty"
penalties = ["降低资质等级", "吊销许可证件", "责令停产停业", "责令关闭", "限制从业"]

[[rules]]
id = "hearing"
kind = "hearing"

[[rules]]
id = "complex"
kind = "complex"

[[rules]]
id = "public-interest"
kind = "public_interest"

[[rules]]
id = "law"
kind = "law"
items = ["GD-QZ-001"]
"""

BENCHMARKS = """
version = "2026-1"
title = "示范市文化市场行政处罚裁量基准"

[[rows]]
violation = "WH-CF-001"
name = "擅自从事娱乐场所经营活动"
circumstance = "一般"
penalties = ["罚款", "没收违法所得", "没收非法财物"]
fine_min_yuan = 30000
fine_max_yuan = 50000
basis = "《娱乐场所管理条例》第四十一条"

[[rows]]
violation = "WH-CF-001"
name = "擅自从事娱乐场所经营活动"
circumstance = "较重"
penalties = ["罚款", "没收违法所得", "没收非法财物"]
fine_min_yuan = 50000
fine_max_yuan = 80000
basis = "《娱乐场所管理条例》第四十一条"
"""

CATALOG = parse_catalog(CATALOG_V1)
TABLE = parse_benchmarks(BENCHMARKS)


def _rules(case: ReviewCaseFile) -> list[str]:
    return [match.rule_id for match in CATALOG.route(case)]


def _fined(amount: str, party: str = "organisation", category: str = "文化市场") -> ReviewCaseFile:
    return case_file(
        AGENCY, party=party, category=category, proposal=proposal(fine_yuan=Decimal(amount))
    )


# --- each kind of rule ---------------------------------------------------------------------------


def test_fine_threshold_is_major_at_the_threshold_itself():
    assert _rules(_fined("49999.99")) == []
    assert _rules(_fined("50000")) == ["fine-culture-org"]
    assert _rules(_fined("50000.00")) == ["fine-culture-org"]
    match = CATALOG.route(_fined("50000"))[0]
    assert (
        match.detail == "拟罚款 50,000 元，达到文化市场对法人或者其他组织罚款 50,000 元以上的标准"
    )
    assert match.basis == "目录清单第一项"


def test_fine_thresholds_per_party_and_category():
    assert _rules(_fined("10000", party="person")) == ["fine-culture-person"]
    assert _rules(_fined("9999", party="person")) == []
    assert _rules(_fined("10000", party="organisation")) == []
    # No party identified yet: every party's threshold applies, so the lowest decides.
    assert _rules(_fined("10000", party="none")) == ["fine-culture-person"]
    assert _rules(_fined("30000", category="旅游市场")) == ["fine-tourism"]
    assert _rules(_fined("29999", category="旅游市场")) == []
    assert _rules(_fined("30000", category="广播电视")) == []


def test_confiscation_threshold():
    def confiscating(amount: str) -> ReviewCaseFile:
        return case_file(
            AGENCY,
            proposal=proposal(
                penalties=["没收违法所得"], fine_yuan=Decimal(0), confiscation_yuan=Decimal(amount)
            ),
        )

    assert _rules(confiscating("19999")) == []
    assert _rules(confiscating("20000")) == ["confiscation"]


@pytest.mark.parametrize("penalty", HEAVY)
def test_each_heavy_penalty_is_major(penalty):
    case = case_file(AGENCY, proposal=proposal(penalties=[penalty], fine_yuan=Decimal(0)))
    assert _rules(case) == ["heavy"]
    assert CATALOG.route(case)[0].detail == f"拟作出{penalty}"


def test_light_penalties_are_not_major():
    for penalties in (["警告"], ["通报批评"], ["暂扣许可证件"], ["罚款"]):
        case = case_file(AGENCY, proposal=proposal(penalties=penalties, fine_yuan=Decimal(0)))
        assert _rules(case) == [], penalties


@pytest.mark.parametrize(
    ("flags", "rule"),
    [
        ({"hearing_held": True}, "hearing"),
        ({"complex": True}, "complex"),
        ({"public_interest": True}, "public-interest"),
        ({"law_requires": "《示范省行政执法条例》第二十条"}, "law"),
        ({"item_code": "GD-QZ-001"}, "law"),
    ],
)
def test_flags_and_laws_make_a_decision_major(flags, rule):
    assert _rules(case_file(AGENCY, **flags)) == [rule]


def test_every_matching_rule_is_recorded():
    case = case_file(
        AGENCY,
        hearing_held=True,
        proposal=proposal(penalties=["罚款", "责令停产停业"], fine_yuan=Decimal(80000)),
    )
    assert _rules(case) == ["fine-culture-org", "heavy", "hearing"]


def test_the_built_in_catalog_follows_the_law():
    def rules(**changes) -> list[str]:
        return [m.rule_id for m in DEFAULT_CATALOG.route(case_file(AGENCY, **changes))]

    assert rules(proposal=proposal(fine_yuan=Decimal(99999))) == []
    assert rules(proposal=proposal(fine_yuan=Decimal(100000))) == ["fine-organisation"]
    assert rules(party="person", proposal=proposal(fine_yuan=Decimal(10000))) == ["fine-person"]
    assert rules(proposal=proposal(penalties=["限制开展生产经营活动"])) == ["heavy-penalty"]
    assert DEFAULT_CATALOG.review_working_days == 10


def test_rules_in_words_for_the_public_catalog():
    words = {rule.id: rule.criterion for rule in CATALOG.rules}
    assert words["fine-culture-org"] == "罚款 50,000 元以上（对法人或者其他组织）"
    assert words["confiscation"] == "没收违法所得、非法财物价值 20,000 元以上"
    assert words["heavy"].startswith("拟作出降低资质等级、吊销许可证件")
    assert words["hearing"] == "经过听证程序"
    assert words["law"] == "法律、法规、规章规定应当进行法制审核（执法事项 GD-QZ-001）"


# --- catalog files that must not load --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version = ", "不是有效的 TOML"),
        ('title = "x"\n[[rules]]\nid = "a"\nkind = "hearing"', "版本号"),
        ('version = "1"', "至少要有一条规则"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "weather"', "有误"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "fine"', "min_yuan"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "fine"\nmin_yuan = -1', "min_yuan"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "penalty"', "penalties"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "penalty"\npenalties = ["打板子"]', "有误"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "hearing"\nmin_yuan = 5', "min_yuan"),
        ('version = "1"\n[[rules]]\nid = "a"\nkind = "hearing"\ncolour = "red"', "有误"),
        (
            'version = "1"\n[[rules]]\nid = "a"\nkind = "hearing"\n[[rules]]\nid = "a"\nkind = "complex"',
            "重复",
        ),
    ],
)
def test_bad_catalogs_are_refused(text, message):
    with pytest.raises(RuleFileInvalid) as refused:
        parse_catalog(text)
    assert message in refused.value.message
    assert refused.value.code == "review_rule_file_invalid"


# --- discretion benchmarks -----------------------------------------------------------------------


def _checked(**changes) -> object:
    return TABLE.check(case_file(AGENCY, proposal=proposal(**changes)))


def test_penalty_within_its_row():
    for amount in ("30000", "40000", "50000"):
        check = _checked(fine_yuan=Decimal(amount))
        assert check.status is BenchmarkStatus.WITHIN, amount
        assert check.row.id == "WH-CF-001/一般"
        assert not check.flagged


def test_penalty_outside_its_range_is_flagged_with_the_row():
    for amount in ("29999", "50000.01"):
        check = _checked(fine_yuan=Decimal(amount))
        assert check.status is BenchmarkStatus.OUTSIDE and check.flagged
        assert check.row.fine_min_yuan == 30000 and check.row.fine_max_yuan == 50000
        assert check.problems == [
            f"拟罚款 {Decimal(amount).normalize():,f} 元，超出裁量基准 30,000–50,000 元的幅度"
        ]
    heavier = _checked(circumstance="较重", fine_yuan=Decimal(90000))
    assert heavier.flagged and heavier.row.id == "WH-CF-001/较重"


def test_penalty_kind_not_allowed_is_flagged():
    check = _checked(penalties=["罚款", "责令停产停业"], fine_yuan=Decimal(40000))
    assert check.flagged
    assert "责令停产停业" in check.problems[0]


def test_decisions_the_table_cannot_check_are_reported_not_flagged():
    missing = _checked(circumstance="严重", fine_yuan=Decimal(90000))
    assert missing.status is BenchmarkStatus.NO_ROW and not missing.flagged
    assert "严重" in missing.problems[0]
    unstated = _checked(circumstance=None)
    assert unstated.status is BenchmarkStatus.NO_ROW
    assert "违法情节" in unstated.problems[0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("", "至少要有一行"),
        ('[[rows]]\nviolation = "X"\nname = "x"\ncircumstance = "很重"', "有误"),
        (
            '[[rows]]\nviolation = "X"\nname = "x"\ncircumstance = "一般"\nfine_min_yuan = 9\nfine_max_yuan = 1',
            "下限高于上限",
        ),
        (
            '[[rows]]\nviolation = "X"\nname = "x"\ncircumstance = "一般"\nfine_min_yuan = -9',
            "负数",
        ),
        ('[[rows]]\nviolation = "X"\nname = "x"\ncircumstance = "一般"\n' * 2, "两次"),
    ],
)
def test_bad_benchmark_tables_are_refused(rows, message):
    with pytest.raises(RuleFileInvalid) as refused:
        parse_benchmarks(f'version = "1"\n{rows}')
    assert message in refused.value.message


# --- versions, through the API and the database ----------------------------------------------------


async def _route(context, case: ReviewCaseFile):
    async with context.database.transaction() as session:
        return await services.route_proposal(
            session, await context.keyring(), case, now=context.clock.now()
        )


async def test_rule_files_through_the_api(client, context, seeded, officer_terminal):
    # One test, so that each backend seeds the demo agency once.
    admin = await login(client, "admin")
    await _refusals(client, context, admin, officer_terminal)
    await _versions_recorded_on_the_case(client, context, admin)
    await _discretion_flag_recorded_with_the_row(client, context, admin)


async def _versions_recorded_on_the_case(client, context, admin):
    async with context.database.transaction() as session:
        agency_id = await demo_agency_id(session)

    # No catalog loaded: the built-in one decides, and says so, also on the public portal.
    async with context.database.transaction() as session:
        public = await published_catalog(session, agency_id)
    assert [entry.name for entry in public][:2] == [
        "对公民处以较大数额罚款",
        "对法人或者其他组织处以较大数额罚款",
    ]

    case = case_file(agency_id, proposal=proposal(fine_yuan=Decimal(60000)))
    record = await _route(context, case)
    assert (record.major, record.catalog_version) == (False, DEFAULT_CATALOG.version)
    assert record.state == ReviewState.NOT_REQUIRED

    loaded = await client.post(
        "/api/review/rule-files/catalog", json={"text": CATALOG_V1}, headers=admin
    )
    assert loaded.status_code == 201, loaded.text
    assert loaded.json()["version"] == "2026-1"
    rerouted = await client.post(f"/api/review/cases/{case.case_id}/route", headers=admin)
    assert rerouted.status_code == 200, rerouted.text
    view = rerouted.json()
    assert (view["major"], view["catalog_version"], view["state"]) == (True, "2026-1", "待送审")
    assert [m["rule_id"] for m in view["matches"]] == ["fine-culture-org"]

    v2 = CATALOG_V1.replace('"2026-1"', '"2026-2"').replace("min_yuan = 50000", "min_yuan = 80000")
    assert (
        await client.post("/api/review/rule-files/catalog", json={"text": v2}, headers=admin)
    ).status_code == 201
    view = (await client.post(f"/api/review/cases/{case.case_id}/route", headers=admin)).json()
    assert (view["major"], view["catalog_version"], view["state"]) == (False, "2026-2", "无需审核")

    versions = (await client.get("/api/review/rule-files/catalog", headers=admin)).json()
    assert [(v["version"], v["in_force"]) for v in versions] == [
        ("2026-2", True),
        ("2026-1", False),
    ]

    # A version is loaded once: the same text again changes nothing, other text is refused.
    again = await client.post("/api/review/rule-files/catalog", json={"text": v2}, headers=admin)
    assert again.status_code == 201
    altered = v2.replace("min_yuan = 80000", "min_yuan = 70000")
    refused = await client.post(
        "/api/review/rule-files/catalog", json={"text": altered}, headers=admin
    )
    assert refused.status_code == 409 and "新的版本号" in refused.json()["detail"]
    assert len((await client.get("/api/review/rule-files/catalog", headers=admin)).json()) == 2


async def _refusals(client, context, admin, officer_terminal):
    bad = await client.post(
        "/api/review/rule-files/catalog",
        json={"text": 'version = "x"\n[[rules]]\nid = "a"\nkind = "fine"'},
        headers=admin,
    )
    assert bad.status_code == 422 and bad.json()["code"] == "review_rule_file_invalid"
    assert (await client.get("/api/review/rule-files/catalog", headers=admin)).json() == []

    reviewer = await login(client, "reviewer")
    path = "/api/review/rule-files/benchmarks"
    assert (await client.post(path, json={"text": BENCHMARKS}, headers=reviewer)).status_code == 403
    assert (await client.post(path, json={"text": BENCHMARKS})).status_code == 401
    officer = await client.post(
        path, json={"text": BENCHMARKS}, headers=officer_terminal.headers("POST", path)
    )
    assert officer.status_code == 403

    # An admin of another agency cannot load files for this one.
    async with context.database.transaction() as session:
        other = Agency(code="other", name="另一执法机关", created_at=context.clock.now())
        session.add(other)
        await session.flush()
        await accounts.create_user(
            session,
            await context.keyring(),
            username="other-admin",
            password="zhifa-demo-2026",
            display_name="外单位管理员",
            roles=[Role.AGENCY_ADMIN],
            agency_id=other.id,
            now=context.clock.now(),
        )
    other_admin = await login(client, "other-admin")
    foreign = await client.post(
        path, json={"text": BENCHMARKS, "agency_code": "demo"}, headers=other_admin
    )
    assert foreign.status_code == 403
    assert (await client.get(path, headers=admin)).json() == []


async def _discretion_flag_recorded_with_the_row(client, context, admin):
    async with context.database.transaction() as session:
        agency_id = await demo_agency_id(session)
    case = case_file(agency_id, proposal=proposal(circumstance="较重", fine_yuan=Decimal(90000)))

    record = await _route(context, case)
    assert record.benchmark["status"] == "未制定裁量基准"

    loaded = await client.post(
        "/api/review/rule-files/benchmarks", json={"text": BENCHMARKS}, headers=admin
    )
    assert loaded.status_code == 201, loaded.text
    record = await _route(context, case)
    view = (await client.get(f"/api/review/cases/{case.case_id}", headers=admin)).json()
    benchmark = view["benchmark"]
    assert benchmark["status"] == "超出裁量基准" and benchmark["version"] == "2026-1"
    assert benchmark["row"]["id"] == "WH-CF-001/较重"
    assert benchmark["row"]["fine_max_yuan"] == "80000"
    assert benchmark["problems"] == ["拟罚款 90,000 元，超出裁量基准 50,000–80,000 元的幅度"]

    # Within its row after the fix; the flag goes with the decision it was about.
    await _route(context, changed(case, fine_yuan=Decimal(80000)))
    view = (await client.get(f"/api/review/cases/{case.case_id}", headers=admin)).json()
    assert view["benchmark"]["status"] == "符合裁量基准" and view["benchmark"]["problems"] == []
