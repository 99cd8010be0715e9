"""Redaction rules (DESIGN.md §7) and the PII scanner; then every public byte of the portal and its
JSON API, crawled after a simulated month of decisions full of personal data, passes the scanner."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select

from disclosure import search
from disclosure.models import DecisionState, DisclosureDecision, DisclosureRecord
from disclosure.pii_scanner import id_number_valid, luhn_valid, scan, scan_html, scan_json
from disclosure.redaction import person_display, redact_text, split_name
from disclosure.schemas import DecisionIssued, Person
from server.app.main import create_app
from tests._disclosure_sim import Issued, Simulation, bank_card, credit_code, id_number

MINOR_NUMBER = "示文罚〔2026〕第99号"

FACTS = (
    "当事人张三（身份证号11010519491231002X，手机138 1234 5678，住址：示范市城东区人民路88号3栋2单元501室）"
    "于2026年3月1日驾驶京A12345号车辆，在示范市城西区幸福小区5栋经营网吧，证人王五在场，"
    "通过银行卡6222 0212 3456 7890 128收款，邮箱zhangsan@example.com。张三称其患有高血压。"
    "法定代表人：李四，联系电话010-12345678。依据《中华人民共和国传染病防治法》第七十三条，"
    "责令三日内改正。"
)


def kinds(text: str, **kwargs) -> set[str]:
    return {finding.kind for finding in scan(text, **kwargs)}


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("张三", "张某"),
        ("李小明", "李某"),
        ("欧阳娜娜", "欧阳某"),
        ("司马相如", "司马某"),
        ("诸葛亮", "诸葛某"),  # three characters, compound surname
        ("上官婉儿", "上官某"),
        ("欧阳", "欧某"),  # two characters: a surname and a given name, not a 复姓 alone
        ("买买提·艾力", "买某"),
    ],
)
def test_natural_persons_keep_the_surname(name, shown):
    assert person_display(name) == shown
    assert split_name(name)[0] + "某" == shown


def test_redaction_removes_every_kind_of_personal_data():
    out = redact_text(FACTS, parties=["张三"], others=["王五"])
    assert out.startswith("当事人张某（身份证号（已隐去），手机（已隐去），住址：（已隐去））")
    for gone in (
        "张三",
        "王五",
        "李四",
        "1101051949",
        "138",
        "京A12345",
        "6222",
        "人民路88号",
        "幸福小区",
        "zhangsan@",
        "高血压",
        "010-",
    ):
        assert gone not in out, gone
    assert "证人某某在场" in out and "法定代表人：某某" in out
    assert "在（已隐去）经营网吧" in out  # the sentence keeps its preposition
    assert "（健康信息已隐去）" in out
    # Law titles and ordinary words survive: 《…传染病防治法》 is not health data, 三日 not a name.
    assert "《中华人民共和国传染病防治法》第七十三条" in out and "责令三日内改正" in out
    assert scan(out, names=["张三", "王五", "李四"]) == []
    assert kinds(FACTS, names=["张三", "王五", "李四"]) == {
        "name",
        "id_number",
        "mobile",
        "landline",
        "plate",
        "bank_card",
        "address",
        "health",
    }


def test_organisations_keep_name_and_credit_code():
    code = "91110000MA01ABCD2X"
    text = f"示范市星河文化有限公司（统一社会信用代码{code}）未经许可经营，负责人：赵六。"
    out = redact_text(text, others=["赵六"], keep=["示范市星河文化有限公司", code])
    assert out == f"示范市星河文化有限公司（统一社会信用代码{code}）未经许可经营，负责人：某某。"
    # An all-digit 统一社会信用代码 can pass as an ID number; the decision's own code is allowed.
    digits_only = "910100199001011002"
    assert kinds(digits_only) == {"id_number"} and not kinds(digits_only, allowed=[digits_only])
    assert redact_text(f"代码{digits_only}", keep=[digits_only]) == f"代码{digits_only}"


def test_the_scanner_checks_checksums_and_sees_through_disguises():
    valid_id = "11010519491231002X"
    assert id_number_valid(valid_id) and not id_number_valid("110105194912310021")
    assert kinds(f"号码{valid_id}") == {"id_number"}
    assert kinds("号码110105194912310021") == set()  # wrong check digit: not an ID number
    card = "6222021234567890128"
    assert luhn_valid(card) and kinds(f"卡号{card}") == {"bank_card"}
    assert kinds("流水号6222021234567890129") == set()  # fails Luhn
    assert kinds("电话：（0571）87654321") == {"landline"}
    assert kinds("手机+86 138-1234-5678") == {"mobile"}
    assert kinds("车牌粤BD12345、沪C·12345挂") == {"plate"}
    assert kinds("家住人民路8号") == {"address"} and kinds("幸福村3组") == {"address"}
    assert kinds("依据《残疾人保障法》") == set() and kinds("其有残疾") == {"health"}
    for disguised in ("张 三", "张·三", "张\u200b三", "张\u3000三"):
        assert kinds(f"当事人{disguised}", names=["张三"]) == {"name"}
    assert {f.kind for f in scan_html("<p><b>张</b>三</p>", names=["张三"])} == {"name"}
    assert {f.kind for f in scan_json(b'{"a": "\\u5f20\\u4e09"}', names=["张三"])} == {"name"}
    # Findings never repeat what they found.
    (finding,) = scan(f"号码{valid_id}")
    assert valid_id not in finding.masked and finding.label == "身份证号码"


def test_test_data_generators_make_real_looking_pii():
    import random

    rng = random.Random(1)
    assert id_number_valid(id_number(rng, dt.date(1990, 5, 17)))
    assert luhn_valid(bank_card(rng))
    assert re.fullmatch(r"[0-9A-HJ-NPQRTUWXY]{18}", credit_code(rng))


# --- the whole portal, crawled ----------------------------------------------------------------------


class Crawl:
    def __init__(self, client: httpx.AsyncClient, names: set[str], allowed: set[str]) -> None:
        self.client, self.names, self.allowed = client, names, allowed
        self.findings: dict[str, list] = {}
        self.seen: set[str] = set()
        self.bytes = 0
        self.forbidden: set[str] = set()

    async def get(self, url: str, expect: int = 200, **params) -> httpx.Response:
        response = await self.client.get(url, params=params or None)
        assert response.status_code == expect, f"{url} {params}: {response.status_code}"
        self.check(str(response.url), response, echo=params.get("q", ""))
        return response

    def check(self, where: str, response: httpx.Response, echo: str = "") -> None:
        self.seen.add(where)
        self.bytes += len(response.content)
        if MINOR_NUMBER in response.text:
            self.forbidden.add(where)
        kind = response.headers.get("content-type", "")
        if "json" in kind:
            found = scan_json(response.content, names=self.names, allowed=self.allowed)
        elif "html" in kind:
            # The search box shows back what the visitor typed, which is theirs, not ours.
            text = response.text.replace(f'value="{echo}"', 'value=""') if echo else response.text
            found = scan_html(text, names=self.names, allowed=self.allowed)
        else:
            found = scan(response.text, names=self.names, allowed=self.allowed)
        if found:
            self.findings[where] = found

    async def links(self, url: str, pattern: str, **params) -> list[str]:
        page = await self.get(url, **params)
        return sorted(set(re.findall(pattern, page.text)))


@pytest.fixture
async def month(migrated) -> AsyncIterator[Simulation]:
    """January 2026 in two agencies: ~70 decisions, withdrawals, a minor, the 2025 reports."""
    sim = Simulation(migrated, start=dt.date(2025, 12, 29), per_day=2.5, seed=8)
    await sim.setup()
    try:
        await sim.run(dt.date(2026, 1, 25))
        sim.clock.set(dt.datetime(2026, 1, 26, 2, tzinfo=dt.UTC))
        minor = DecisionIssued(
            case_id=uuid.uuid4(),
            agency_id=sim.agencies["demo"].id,
            decision_number=MINOR_NUMBER,
            decision_date=dt.date(2026, 1, 26),
            served_on=dt.date(2026, 1, 26),
            act_kind="行政处罚",
            category="文化市场",
            subject=Person(name="钱婷婷", minor=True),
            conclusion="对钱婷婷予以警告",
        )
        sim.issued.append(Issued(event=minor, recorded_on=minor.decision_date, names=["钱婷婷"]))
        await sim.record(minor)
        await sim.run_jobs()
        yield sim
    finally:
        await sim.close()


async def test_the_portal_after_a_month_of_decisions(month, monkeypatch):
    await every_public_byte_passes_the_scanner(month)
    await search_filters_and_pagination(month, monkeypatch)


async def every_public_byte_passes_the_scanner(sim: Simulation) -> None:
    app = create_app(sim.settings, sim.clock)
    names, allowed = sim.known_names(), sim.credit_codes()
    # The data is full of personal data: the crawl has something to miss.
    raw = [item.event.facts for item in sim.issued if item.event.facts]
    assert all(scan(text, names=names, allowed=allowed) for text in raw)
    async with sim.a.database.sessionmaker() as session:
        records = list(await session.scalars(select(DisclosureRecord)))
        minor = await session.scalar(
            select(DisclosureDecision).where(DisclosureDecision.decision_number == MINOR_NUMBER)
        )
    assert minor.state is DecisionState.EXCLUDED and minor.exclusion_kind == "未成年人"
    withdrawn = [r for r in records if r.status == "withdrawn"]
    assert len(records) >= 40 and withdrawn
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:
        crawl = Crawl(client, names, allowed)
        decision_pages: set[str] = set()
        url: str | None = "/gongshi/decisions"
        while url:
            page = await crawl.get(url)
            decision_pages |= set(re.findall(r'href="(/gongshi/decisions/\d+)"', page.text))
            more = re.search(r'href="([^"]+)" rel="next"', page.text)
            url = more.group(1).replace("&amp;", "&") if more else None
        for page in sorted(decision_pages):
            await crawl.get(page)
        withdrawals = await crawl.links("/gongshi/withdrawals", r'href="(/gongshi/decisions/\d+)"')
        for page in withdrawals:
            notice = await crawl.get(page)
            assert "撤下公告" in notice.text and "违法事实" not in notice.text
        decision_pages |= set(withdrawals)
        assert len(decision_pages) == len(records)
        for page in ("/gongshi", "/gongshi/agencies", "/gongshi/reports"):
            await crawl.get(page)
        for report in await crawl.links(
            "/gongshi/reports", r'href="(/gongshi/reports/[^/"]+/\d+)"'
        ):
            await crawl.get(report)
            csv = await crawl.get(f"{report}/data.csv")
            assert csv.text.startswith("\ufeff统计项,项目,数量")
            await crawl.get(f"/api{report}")
        for agency in ("demo", "demo2"):
            await crawl.get(f"/gongshi/agencies/{agency}")
            for suffix in ("/officers", "/items", "/review-catalog"):
                await crawl.get(f"/gongshi/agencies/{agency}{suffix}")
                await crawl.get(f"/api/gongshi/agencies/{agency}{suffix}")
        for api in ("/api/gongshi/agencies", "/api/gongshi/reports", "/api/gongshi/withdrawals"):
            await crawl.get(api)
        # The JSON API, page by page with the cursor, and every decision.
        listed, cursor = [], ""
        while True:
            page = (await crawl.get("/api/gongshi/decisions", limit=30, cursor=cursor)).json()
            listed += [item["id"] for item in page["items"]]
            if not page["next_cursor"]:
                break
            cursor = page["next_cursor"]
        assert listed == sorted(listed, reverse=True) and len(listed) == len(set(listed))
        assert len(listed) == len(records) - len(withdrawn)
        for record in records:
            await crawl.get(f"/api/gongshi/decisions/{record.id}")
        # A party's full name finds nothing; the redacted form does.
        for item in sim.issued[:20]:
            for name in item.names:
                found = (await crawl.get("/api/gongshi/decisions", q=name)).json()
                assert found["items"] == [], name
                await crawl.get("/gongshi/decisions", q=name)
        assert (await crawl.get("/api/gongshi/decisions", q="某")).json()["items"]
        assert (await crawl.get("/api/gongshi/decisions", q="未成年")).json()["items"] == []
    assert crawl.findings == {}, crawl.findings
    assert crawl.forbidden == set()  # the decision on a minor appears nowhere
    assert len(crawl.seen) > len(records) * 2 and crawl.bytes > 200_000


async def search_filters_and_pagination(sim: Simulation, monkeypatch) -> None:
    app = create_app(sim.settings, sim.clock)
    async with sim.a.database.sessionmaker() as session:
        records = [
            r for r in await session.scalars(select(DisclosureRecord)) if r.status == "published"
        ]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://portal.test") as client:

        async def ids(**params) -> list[int]:
            out, cursor = [], ""
            while True:
                response = await client.get(
                    "/api/gongshi/decisions", params={**params, "limit": 50, "cursor": cursor}
                )
                assert response.status_code == 200, response.text
                page = response.json()
                out += [item["id"] for item in page["items"]]
                if not page["next_cursor"]:
                    return out
                cursor = page["next_cursor"]

        def expect(keep) -> list[int]:
            return sorted((r.id for r in records if keep(r)), reverse=True)

        assert await ids() == expect(lambda r: True)
        assert await ids(kind="行政许可") == expect(lambda r: r.act_kind == "行政许可")
        assert await ids(agency="demo2") == expect(lambda r: r.agency_code == "demo2")
        assert await ids(category="文化市场") == expect(lambda r: r.category == "文化市场")
        first, last = dt.date(2026, 1, 5), dt.date(2026, 1, 9)
        assert await ids(date_from=str(first), date_to=str(last)) == expect(
            lambda r: first <= r.decision_date <= last
        )
        assert await ids(agency="demo", kind="行政处罚", date_from=str(first)) == expect(
            lambda r: (
                r.agency_code == "demo" and r.act_kind == "行政处罚" and r.decision_date >= first
            )
        )
        # Words: three characters and more through the trigram index, shorter ones by LIKE.
        for words in ("违规经营", "从事经营活动", "罚款", "某", "警告 某", "幸福"):
            terms = words.split()
            assert await ids(q=words) == expect(
                lambda r, terms=terms: all(t in r.search_text for t in terms)
            ), words
        # Words under three characters are looked for among the newest decisions only, and the
        # answer says so (the window is 50,000 in production; 10 here).
        monkeypatch.setattr(search, "SHORT_WORD_WINDOW", 10)
        page = (await client.get("/api/gongshi/decisions", params={"q": "某", "limit": 50})).json()
        newest = expect(lambda r: True)[:10]
        assert page["searched_newest"] == 10
        having = set(expect(lambda r: "某" in r.search_text))
        assert [i["id"] for i in page["items"]] == [i for i in newest if i in having]
        assert (await client.get("/api/gongshi/decisions", params={"q": "某某某"})).json()[
            "searched_newest"
        ] is None
        page = await client.get("/gongshi/decisions", params={"q": "某"})
        assert "最新的 10 条执法决定中查找" in page.text
        monkeypatch.undo()
        number = records[0].decision_number
        assert await ids(q=number) == expect(lambda r: number in r.search_text)
        # Offset paging agrees with the cursor.
        everything = await ids()
        page = (await client.get("/api/gongshi/decisions", params={"limit": 7, "offset": 7})).json()
        assert [item["id"] for item in page["items"]] == everything[7:14]
        # Refusals: problem+json with a stable code.
        for params, code in (
            ({"kind": "行政奖励"}, "disclosure_bad_query"),
            ({"date_from": "2026-13-01"}, "disclosure_bad_query"),
            ({"date_from": "2026-02-01", "date_to": "2026-01-01"}, "disclosure_bad_query"),
            ({"cursor": "abc"}, "disclosure_bad_query"),
            ({"agency": "nowhere"}, "not_found"),
        ):
            refused = await client.get("/api/gongshi/decisions", params=params)
            assert refused.status_code in (404, 422), params
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["code"] == code, params
        for params in ({"limit": 0}, {"limit": 101}, {"offset": 10_001}):
            assert (await client.get("/api/gongshi/decisions", params=params)).status_code == 400
        missing = await client.get("/api/gongshi/decisions/12345")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        # The HTML portal answers the same mistakes with pages, not JSON.
        page = await client.get("/gongshi/decisions", params={"date_from": "2026-13-01"})
        assert page.status_code == 422 and "日期 2026-13-01 无效" in page.text
        assert page.headers["content-type"].startswith("text/html")
        page = await client.get("/gongshi/decisions/12345")
        assert page.status_code == 404 and "未找到该公示信息" in page.text
        page = await client.get("/gongshi/reports/demo/1999")
        assert page.status_code == 404 and "1999 年度统计报告尚未发布" in page.text
