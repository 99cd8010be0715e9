"""Enforcement documents (issue 6): made offline on the terminal, checked by rule, printed with real
dates, verifiable anywhere.

Dates below are counted by hand from the State Council's arrangements, not by the calendar under
test: 2025 National Day — 1–8 October off, Sunday 28 September and Saturday 11 October worked;
2026 Spring Festival — 15–23 February off, Saturdays 14 and 28 February worked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import itertools
import re
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx
import msgspec
import pytest
import zxingcpp
from PIL import Image, ImageDraw

from mobile_api.contracts import events as ev
from mobile_api.contracts.calendar import WorkingDayCalendar
from mobile_api.contracts.documents import (
    AgencyInfo,
    AllocatorState,
    DocumentFacts,
    FactsIncomplete,
    Hearing,
    NoticeRef,
    NumberAllocator,
    NumberBlock,
    NumberBlockRejected,
    NumbersExhausted,
    OfficerInfo,
    Organisation,
    Payment,
    PenaltyItem,
    Person,
    ProcedureRefused,
    Remedies,
    RulesRejected,
    Service,
    Statement,
    TemplateRejected,
    UnprintableText,
    Witness,
    format_number,
    hearing_right,
    load_rules,
    load_templates,
    parse_rules,
    parse_template,
    render,
    simple_procedure,
)
from mobile_api.contracts.documents.templates import default_template_text
from server.app import demo
from server.app.context import AppContext
from server.core.clock import Clock
from tests._review_cases import decision_on_server
from tests.conftest import ROOT, enroll_and_login, login

CAL = WorkingDayCalendar()
RULES = load_rules()
TEMPLATES = load_templates()
BASE_URL = "http://127.0.0.1:8000"

PERSON = Person(
    name="张三",
    gender="男",
    id_number="110101199003071234",
    address="示范市城东区幸福里3号楼2单元501室",
    phone="13800000000",
)
COMPANY = Organisation(
    name="示范市欢乐时光娱乐有限公司",
    credit_code="91130100MA0C88881A",
    representative="王五",
    address="示范市城西区建设大街100号",
    phone="0310-87654321",
)
EVENT_COMPANY = ev.Organisation(name=COMPANY.name, credit_code=COMPANY.credit_code)
PAYMENT = Payment(
    bank="中国工商银行示范市城东支行",
    account_name="示范市财政局非税收入专户",
    account_number="0402000009200012345",
)


def facts(kind: str, serial: int = 1, **changes: object) -> DocumentFacts:
    issued = changes.get("issued_on", dt.date(2025, 9, 30))
    assert isinstance(issued, dt.date)
    base: dict[str, object] = {
        "number": format_number(RULES, TEMPLATES[kind], issued.year, serial),
        "agency": AgencyInfo(
            code=demo.AGENCY_CODE,
            name=demo.AGENCY_NAME,
            address="示范市城东区人民路1号",
            phone="0310-12345678",
        ),
        "case_id": uuid.UUID(int=7),
        "case_number": "示文执立〔2025〕0012号",
        "case_title": "擅自从事娱乐场所经营活动",
        "category": "文化市场",
        "party": PERSON,
        "place": "示范市城东区人民路88号",
        "time": "15:20",
        "facts": "你未取得娱乐经营许可证，擅自在示范市城东区人民路88号从事歌舞娱乐经营活动。",
        "evidence": ["现场检查笔录", "询问笔录", "执法记录仪音像记录"],
        "grounds": "《娱乐场所管理条例》第九条第一款",
        "legal_basis": "《娱乐场所管理条例》第四十一条",
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(20000))],
        "officers": [
            OfficerInfo(name="张明", credential_number="13010001"),
            OfficerInfo(name="李华", credential_number="13010002"),
        ],
        "issued_on": issued,
        "remedies": Remedies(
            reconsideration_body="示范市文化和旅游局", court="示范市城东区人民法院"
        ),
        "payment": PAYMENT,
    }
    base.update(changes)
    return msgspec.convert(msgspec.to_builtins(base), DocumentFacts)


def make(kind: str, f: DocumentFacts, base_url: str = BASE_URL, **kw: object):
    return render(
        kind,
        f,
        template=kw.get("template", TEMPLATES[kind]),  # type: ignore[arg-type]
        rules=kw.get("rules", RULES),  # type: ignore[arg-type]
        calendar=CAL,
        public_base_url=base_url,
    )


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / f"{hashlib.sha256(pdf).hexdigest()[:12]}.pdf"
    path.write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True, text=True
    ).stdout


def signature_png() -> bytes:
    image = Image.new("RGBA", (300, 90), (255, 255, 255, 0))
    ImageDraw.Draw(image).line(
        [(10, 70), (60, 15), (110, 75), (170, 20), (290, 40)], fill="black", width=5
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# --- each document, its dates and its rights --------------------------------------------------

NOTICE_PERSON_NATIONAL_DAY = (
    "rights_notice",
    {"party": PERSON, "issued_on": dt.date(2025, 9, 30)},
    [
        "陈述、申辩的权利",
        "请于2025年10月14日前",
        "有权要求举行听证",
        "六十日内向示范市文化和旅游局申请行政复议",
        "六个月内向示范市城东区人民法院提起行政诉讼",
    ],
    ["最多"],
    {"statement": "2025-10-14", "hearing_request": "2025-10-14"},
)
NOTICE_COMPANY_SPRING = (
    "rights_notice",
    {
        "party": COMPANY,
        "issued_on": dt.date(2026, 2, 13),
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(50000))],
    },
    ["陈述、申辩的权利", "请于2026年2月27日前", "申请行政复议", "提起行政诉讼"],
    ["听证"],  # 50000 元 is below the organisation threshold: no hearing right, not a word of it
    {"statement": "2026-02-27"},
)
NOTICE_LICENCE_REVOKED = (
    "rights_notice",
    {
        "party": COMPANY,
        "issued_on": dt.date(2026, 2, 13),
        "penalties": [PenaltyItem(kind="吊销许可证件", detail="娱乐经营许可证")],
    },
    ["有权要求举行听证", "请于2026年2月27日前", "吊销许可证件（娱乐经营许可证）"],
    [],
    {"statement": "2026-02-27", "hearing_request": "2026-02-27"},
)
ONSITE_PERSON_NATIONAL_DAY = (
    "onsite_decision",
    {
        "issued_on": dt.date(2025, 9, 30),
        "penalties": [PenaltyItem(kind="警告"), PenaltyItem(kind="罚款", amount_yuan=Decimal(200))],
    },
    [
        "罚款人民币贰佰元整（￥200.00）",
        "请于2025年10月15日前",
        "百分之三加处罚款",
        "最多人民币200.00元",
        "《中华人民共和国行政复议法》第二十三条",
        "应当先于2025年12月1日前",
        "申请行政复议",
    ],
    [
        "六个月"
    ],  # 复议 first (行政复议法 第23条): no direct lawsuit period on the on-the-spot decision
    {"payment": "2025-10-15", "reconsideration": "2025-12-01"},
)
ONSITE_COMPANY_SPRING = (
    "onsite_decision",
    {
        "party": COMPANY,
        "issued_on": dt.date(2026, 2, 13),
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(3000))],
    },
    ["罚款人民币叁仟元整（￥3000.00）", "请于2026年2月28日前", "应当先于2026年4月14日前"],
    [],
    {"payment": "2026-02-28", "reconsideration": "2026-04-14"},
)
ONSITE_COLLECTED = (
    "onsite_decision",
    {
        "issued_on": dt.date(2025, 9, 30),
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(50))],
        "payment": Payment(collected_on_spot=True),
    },
    ["罚款人民币伍拾元整（￥50.00）已由执法人员当场收缴", "应当先于2025年12月1日前"],
    ["请于2025年10月15日前"],
    {"reconsideration": "2025-12-01"},
)
DECISION_COMPANY_SPRING = (
    "penalty_decision",
    {
        "party": COMPANY,
        "issued_on": dt.date(2026, 2, 13),
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(50000))],
        "notice": NoticeRef(number="罚告〔2026〕0001号", served_on=dt.date(2026, 1, 20)),
    },
    [
        "罚告〔2026〕0001号",
        "请于2026年2月28日前",
        "自2026年3月1日起每日按罚款数额的百分之三加处罚款",
        "最多人民币50000.00元",
        "在2026年4月14日前",
        "在2026年8月13日前",
        "在规定期限内未提出陈述、申辩意见",
    ],
    ["听证"],
    {"payment": "2026-02-28", "reconsideration": "2026-04-14", "lawsuit": "2026-08-13"},
)
DECISION_PERSON_HEARING_HELD = (
    "penalty_decision",
    {
        "issued_on": dt.date(2025, 9, 30),
        "notice": NoticeRef(number="罚告〔2025〕0003号", served_on=dt.date(2025, 9, 1)),
        "statement": Statement(
            summary="当事人提出申辩，称不知需办理许可，本机关不予采纳。",
            hearing_requested=True,
            hearing_held=True,
        ),
    },
    [
        "依法举行了听证",
        "请于2025年10月15日前",
        "自2025年10月16日起",
        "在2025年12月1日前",
        "在2026年3月30日前",
    ],
    [],
    {"payment": "2025-10-15", "reconsideration": "2025-12-01", "lawsuit": "2026-03-30"},
)
HEARING_NOTICE_NATIONAL_DAY = (
    "hearing_notice",
    {
        "issued_on": dt.date(2025, 9, 30),
        "notice": NoticeRef(number="罚告〔2025〕0003号", served_on=dt.date(2025, 9, 26)),
        "hearing": Hearing(
            date=dt.date(2025, 10, 17),
            time="09:30",
            place="本机关三楼听证室",
            host="赵强",
            requested_on=dt.date(2025, 9, 29),
        ),
    },
    [
        "2025年10月17日9时30分",
        "本机关三楼听证室",
        "赵强担任听证主持人",
        "申请回避",
        "委托一至二人代理",
        "于2025年9月29日",
    ],
    [],
    {"hearing_notice": "2025-10-16"},
)
RECEIPT_SIGNED = (
    "service_receipt",
    {
        "issued_on": dt.date(2026, 2, 13),
        "service": Service(
            document_title="行政处罚决定书",
            document_number="罚决〔2026〕0002号",
            recipient="张三",
            place="示范市城东区幸福里3号楼",
            served_on=dt.date(2026, 2, 13),
            signature_png=signature_png(),
        ),
    },
    [
        "《行政处罚决定书》（罚决〔2026〕0002号）",
        "直接送达",
        "2026年2月13日",
        "（已在执法终端签名）",
        "张明（执法证号13010001）",
    ],
    ["留置送达情况"],
    {},
)
RECEIPT_REFUSED = (
    "service_receipt",
    {
        "issued_on": dt.date(2026, 2, 13),
        "service": Service(
            document_title="行政处罚决定书",
            document_number="罚决〔2026〕0002号",
            recipient="张三",
            method="留置送达",
            place="示范市城东区幸福里3号楼",
            served_on=dt.date(2026, 2, 13),
            refused=True,
            refusal_note="受送达人拒绝签收，执法人员将文书留置于其住所门内",
            witnesses=[Witness(name="孙丽", unit="幸福里社区居民委员会")],
            recording_id="rec-2026-0213-01",
        ),
    },
    ["留置送达", "孙丽（幸福里社区居民委员会）", "rec-2026-0213-01"],
    ["已在执法终端签名"],
    {},
)
DOCUMENT_CASES = [
    NOTICE_PERSON_NATIONAL_DAY,
    NOTICE_COMPANY_SPRING,
    NOTICE_LICENCE_REVOKED,
    ONSITE_PERSON_NATIONAL_DAY,
    ONSITE_COMPANY_SPRING,
    ONSITE_COLLECTED,
    DECISION_COMPANY_SPRING,
    DECISION_PERSON_HEARING_HELD,
    HEARING_NOTICE_NATIONAL_DAY,
    RECEIPT_SIGNED,
    RECEIPT_REFUSED,
]


@pytest.mark.parametrize(("kind", "changes", "present", "absent", "deadlines"), DOCUMENT_CASES)
def test_document_dates_rights_and_printed_text(
    kind, changes, present, absent, deadlines, tmp_path
):
    f = facts(kind, **changes)
    doc = make(kind, f)
    assert {k: p.deadline.isoformat() for k, p in doc.periods.items()} == deadlines
    assert not any(p.fallback for p in doc.periods.values()) and not doc.warnings
    extracted = pdf_text(doc.pdf, tmp_path)
    for text in (doc.text, extracted):
        flat = squash(text)
        for expected in [*present, doc.title, f.number, demo.AGENCY_NAME]:
            assert squash(expected) in flat, (expected, text)
        for unexpected in absent:
            assert squash(unexpected) not in flat, (unexpected, text)
    # every character of the on-screen text came out of the PDF as text (no box, no lost glyph);
    # the text version's "label：" of table rows is a cell border on paper
    screen = squash("".join(doc.text.splitlines()[:-1]))  # less the QR address line
    assert set(screen) - {"："} <= set(squash(extracted))
    assert "\ufffd" not in extracted
    assert (
        doc.pdf.startswith(b"%PDF-")
        and doc.pdf.count(b"/Type /Page\n") + doc.pdf.count(b"/Type /Page>") >= 1
    )


def test_fonts_are_embedded_and_pages_rasterise(tmp_path):
    doc = make("penalty_decision", facts("penalty_decision", **dict(DECISION_COMPANY_SPRING[1])))
    path = tmp_path / "decision.pdf"
    path.write_bytes(doc.pdf)
    fonts = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, check=True, text=True
    ).stdout
    rows = [line.split() for line in fonts.splitlines()[2:]]
    assert {row[0].split("+")[1] for row in rows} == {"UMingCN-0", "WenQuanYiZenHei-0"}
    assert all(row[-5:-2] == ["yes", "yes", "yes"] for row in rows), fonts  # emb, sub, uni
    assert all(row[1] == "TrueType" for row in rows)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(path), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    with Image.open(pages[0]) as page:
        assert page.size == (331, 468)  # A4 at 40 dpi
        assert page.convert("L").getextrema()[0] < 80  # ink on the page


def test_same_input_same_bytes_even_in_another_process():
    kind, changes = "penalty_decision", dict(DECISION_PERSON_HEARING_HELD[1])
    first, second = make(kind, facts(kind, **changes)), make(kind, facts(kind, **changes))
    assert first.pdf == second.pdf and first.document_id == second.document_id
    script = (
        "import tests.test_documents as t;"
        f"k={kind!r};d=t.make(k,t.facts(k,**dict(t.DECISION_PERSON_HEARING_HELD[1])));print(d.sha256)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, check=True, text=True
    )
    assert out.stdout.strip() == first.sha256
    other = make(kind, facts(kind, **{**changes, "facts": "另一段违法事实。"}))
    assert other.sha256 != first.sha256 and other.document_id != first.document_id


def test_unknown_calendar_year_is_flagged_on_the_document(tmp_path):
    kind = "penalty_decision"
    changes = {
        "issued_on": dt.date(2026, 11, 20),
        "notice": NoticeRef(number="罚告〔2026〕0009号", served_on=dt.date(2026, 11, 2)),
    }
    doc = make(kind, facts(kind, **changes))
    assert doc.periods["lawsuit"].deadline == dt.date(2027, 5, 20)
    assert doc.periods["lawsuit"].fallback and not doc.periods["payment"].fallback
    assert "2027年的法定节假日安排尚未公布" in doc.text
    assert "2027年的法定节假日安排尚未公布" in squash(pdf_text(doc.pdf, tmp_path))


# --- rules -------------------------------------------------------------------------------------


def test_hearing_right_by_rule_per_party_and_category():
    fine = lambda yuan: [PenaltyItem(kind="罚款", amount_yuan=Decimal(yuan))]  # noqa: E731
    assert hearing_right(RULES, "文化市场", PERSON, fine(10000)).applies  # 以上 includes the amount
    assert not hearing_right(RULES, "文化市场", PERSON, fine(9999)).applies
    assert not hearing_right(RULES, "文化市场", COMPANY, fine(99999)).applies
    assert hearing_right(RULES, "文化市场", COMPANY, fine(100000)).applies
    seized = [PenaltyItem(kind="没收违法所得", amount_yuan=Decimal(10000))]
    assert (
        hearing_right(RULES, "x", PERSON, seized).applies
        and not hearing_right(RULES, "x", COMPANY, seized).applies
    )
    for kind in (
        "吊销许可证件",
        "降低资质等级",
        "责令停产停业",
        "责令关闭",
        "限制从业",
        "限制开展生产经营活动",
    ):
        outcome = hearing_right(RULES, "x", COMPANY, [PenaltyItem(kind=kind)])
        assert outcome.applies and "第六十三条" in outcome.reasons[0], kind
    assert not hearing_right(RULES, "x", COMPANY, [PenaltyItem(kind="警告")]).applies
    local = parse_rules(
        RULES.source
        + '\n[categories."文化市场".hearing]\nperson_fine = 5000\nheavier = ["暂扣许可证件"]\n'
    )
    assert hearing_right(local, "文化市场", PERSON, fine(5000)).applies
    assert not hearing_right(local, "旅游市场", PERSON, fine(5000)).applies
    assert hearing_right(local, "文化市场", PERSON, [PenaltyItem(kind="暂扣许可证件")]).applies
    # the notice follows the rule: the same 5000 元 fine gets the hearing paragraph only here
    kind = "rights_notice"
    notice = make(kind, facts(kind, penalties=fine(5000)), rules=local)
    assert "有权要求举行听证" in notice.text and "hearing_request" in notice.periods
    assert "听证" not in make(kind, facts(kind, penalties=fine(5000))).text


def test_simple_procedure_by_rule():
    fine = lambda yuan: [PenaltyItem(kind="罚款", amount_yuan=Decimal(yuan))]  # noqa: E731
    assert simple_procedure(RULES, "x", PERSON, fine(200)).applies
    assert not simple_procedure(RULES, "x", PERSON, fine("200.01")).applies
    assert simple_procedure(RULES, "x", COMPANY, fine(3000)).applies
    assert not simple_procedure(RULES, "x", COMPANY, fine(3001)).applies
    assert simple_procedure(RULES, "x", PERSON, [PenaltyItem(kind="警告")]).applies
    refused = simple_procedure(RULES, "x", PERSON, [PenaltyItem(kind="暂扣许可证件")])
    assert not refused.applies and "只有警告或者罚款" in refused.reasons[0]
    with pytest.raises(ProcedureRefused, match="不能适用简易程序"):
        make("onsite_decision", facts("onsite_decision", penalties=fine(201)))
    with pytest.raises(RulesRejected, match="须以 basis 写明"):
        parse_rules(
            RULES.source + '\n[categories."道路交通".simple_procedure]\nperson_max_fine = 500\n'
        )


def test_procedure_refusals():
    kind = "penalty_decision"
    early = {
        "issued_on": dt.date(2026, 1, 27),
        "party": COMPANY,
        "penalties": [PenaltyItem(kind="罚款", amount_yuan=Decimal(50000))],
        "notice": NoticeRef(number="罚告〔2026〕0001号", served_on=dt.date(2026, 1, 20)),
    }
    with pytest.raises(ProcedureRefused, match="2026年1月27日届满"):
        make(kind, facts(kind, **early))
    make(kind, facts(kind, **{**early, "issued_on": dt.date(2026, 1, 28)}))
    waived = Statement(waived_in_writing=True)
    assert "书面放弃了陈述、申辩" in make(kind, facts(kind, **{**early, "statement": waived})).text
    requested = {
        "issued_on": dt.date(2025, 9, 30),
        "notice": NoticeRef(number="罚告〔2025〕0003号", served_on=dt.date(2025, 9, 1)),
        "statement": Statement(hearing_requested=True),
    }
    with pytest.raises(ProcedureRefused, match="听证结束后"):
        make(kind, facts(kind, **requested))
    hearing = dict(HEARING_NOTICE_NATIONAL_DAY[1])
    hearing["hearing"] = Hearing(
        date=dt.date(2025, 10, 16), time="09:30", place="听证室", host="赵强"
    )
    with pytest.raises(ProcedureRefused, match="最早可于2025年10月17日举行"):
        make("hearing_notice", facts("hearing_notice", **hearing))
    with pytest.raises(ProcedureRefused, match="不属于"):
        make(
            "hearing_notice",
            facts(
                "hearing_notice",
                **{**dict(HEARING_NOTICE_NATIONAL_DAY[1]), "penalties": [PenaltyItem(kind="警告")]},
            ),
        )
    with pytest.raises(ProcedureRefused, match="只有当场作出"):
        make(
            kind,
            facts(
                kind,
                **{
                    **early,
                    "issued_on": dt.date(2026, 1, 28),
                    "payment": Payment(collected_on_spot=True),
                },
            ),
        )
    service = dict(RECEIPT_REFUSED[1])["service"]
    assert isinstance(service, Service)
    bare = msgspec.structs.replace(service, witnesses=[], recording_id="")
    with pytest.raises(ProcedureRefused, match="见证人"):
        make(
            "service_receipt",
            facts("service_receipt", issued_on=dt.date(2026, 2, 13), service=bare),
        )
    with pytest.raises(FactsIncomplete, match="违法事实"):
        make("rights_notice", facts("rights_notice", facts=""))
    for bad in ("-1", "NaN", "1.005"):
        fine = [PenaltyItem(kind="罚款", amount_yuan=Decimal(bad))]
        with pytest.raises(FactsIncomplete, match="精确到分"):
            make("rights_notice", facts("rights_notice", penalties=fine))
    with pytest.raises(UnprintableText, match="U\\+E000"):
        make("rights_notice", facts("rights_notice", party=Person(name="张\ue000")))


# --- templates -----------------------------------------------------------------------------------


def test_template_missing_a_required_part_is_refused_by_name(tmp_path):
    notice = default_template_text("rights_notice")
    hearing_block = '[[blocks]]\nwhen = "听证权利"\n'
    assert hearing_block in notice
    without_hearing = re.sub(r'\[\[blocks\]\]\nwhen = "听证权利"\ntext = "[^"]*"\n', "", notice)
    with pytest.raises(TemplateRejected, match="缺少法定内容：听证权利及申请期限") as refused:
        parse_template(without_hearing)
    assert refused.value.data["missing"] == ["听证权利及申请期限"]
    unconditional = notice.replace(hearing_block, "[[blocks]]\n")
    with pytest.raises(TemplateRejected, match="听证权利"):
        parse_template(unconditional)
    without_remedies = notice.replace("{复议机关}", "本机关上级机关")
    with pytest.raises(TemplateRejected, match="行政复议权利"):
        parse_template(without_remedies)
    decision = default_template_text("penalty_decision").replace("{缴款截止日期}", "十五日内")
    with pytest.raises(TemplateRejected, match="缴纳罚款的期限和方式"):
        parse_template(decision)
    with pytest.raises(TemplateRejected, match="未知的占位符 \\{当事人姓名\\}"):
        parse_template(notice.replace("{当事人}：", "{当事人姓名}："))
    with pytest.raises(TemplateRejected, match="不适用于"):
        parse_template(notice.replace("经查，{违法事实}", "经查，{违法事实}{听证主持人}"))
    # an agency may reword freely: its override directory wins over the default
    (tmp_path / "rights_notice.toml").write_text(
        notice.replace("经查，{违法事实}", "经本机关调查查明：{违法事实}").replace(
            'version = "2026.1"', 'version = "示范-1"'
        ),
        encoding="utf-8",
    )
    templates = load_templates(tmp_path)
    assert templates["rights_notice"].version == "示范-1"
    assert templates["penalty_decision"].sha256 == TEMPLATES["penalty_decision"].sha256
    doc = make("rights_notice", facts("rights_notice"), template=templates["rights_notice"])
    assert "经本机关调查查明：" in doc.text
    (tmp_path / "penalty_decision.toml").write_text(decision, encoding="utf-8")
    with pytest.raises(TemplateRejected, match=r"penalty_decision\.toml"):
        load_templates(tmp_path)


# --- numbers -------------------------------------------------------------------------------------


def test_numbers_never_reused_across_restarts(tmp_path):
    store = tmp_path / "allocator.json"

    def persist(state: AllocatorState) -> None:
        tmp = store.with_suffix(".tmp")
        tmp.write_bytes(msgspec.json.encode(state))
        tmp.replace(store)

    def restart() -> NumberAllocator:
        return NumberAllocator(
            msgspec.json.decode(store.read_bytes(), type=AllocatorState), persist
        )

    a = NumberAllocator(AllocatorState(), persist)
    block1 = NumberBlock(id="b1", agency_code="demo", year=2026, first=1, last=3)
    block2 = NumberBlock(id="b2", agency_code="demo", year=2026, first=101, last=102)
    a.add_block(block1)
    a.add_block(block1)  # the same block delivered twice: no change
    taken = [a.take(2026).serial, a.take(2026).serial]
    a = restart()
    a.add_block(block2)
    taken += [a.take(2026).serial for _ in range(3)]
    assert taken == [1, 2, 3, 101, 102]
    a = restart()
    with pytest.raises(NumbersExhausted, match="请联网同步"):
        a.take(2026)
    with pytest.raises(NumberBlockRejected, match="已经使用过"):
        a.add_block(block1)  # used up and forgotten, yet refused
    with pytest.raises(NumberBlockRejected, match="已经使用过"):
        a.add_block(NumberBlock(id="b3", agency_code="demo", year=2026, first=50, last=60))
    a.add_block(NumberBlock(id="b4", agency_code="demo", year=2026, first=201, last=210))
    with pytest.raises(NumberBlockRejected, match="重叠"):
        a.add_block(NumberBlock(id="b5", agency_code="demo", year=2026, first=205, last=220))

    def broken(_: AllocatorState) -> None:
        raise OSError("disk full")

    crashed = NumberAllocator(restart().state, broken)
    with pytest.raises(OSError):
        crashed.take(2026)
    assert restart().take(2026).serial == 201  # nothing was handed out by the failed write


# --- the server ----------------------------------------------------------------------------------


async def _block(client, terminal, year: int, size: int = 5) -> dict:
    path = "/api/documents/number-blocks"
    response = await client.post(
        path, json={"year": year, "size": size}, headers=terminal.headers("POST", path)
    )
    assert response.status_code == 201, response.text
    return response.json()


def _registration(kind: str, f: DocumentFacts, doc, serial: int, year: int) -> dict:
    return {
        "kind": kind,
        "facts": msgspec.to_builtins(f),
        "year": year,
        "serial": serial,
        "template_sha256": doc.template_sha256,
        "rules_sha256": doc.rules_sha256,
        "public_base_url": doc.verify_url.split("/d/")[0],
        "sha256": doc.sha256,
        "renderer": doc.renderer,
    }


async def test_registration_rerenders_refuses_and_templates_are_versioned(
    client, context, clock, seeded, officer_terminal
):
    blocks_path = "/api/documents/number-blocks"
    for user in ("admin", "reviewer"):
        denied = await client.post(
            blocks_path, json={"year": 2026}, headers=await login(client, user)
        )
        assert denied.status_code == 403, denied.text
        assert denied.json()["code"] in {"permission_denied", "terminal_required"}
    assert (await client.post(blocks_path, json={"year": 2026})).status_code == 401
    too_big = await client.post(
        blocks_path,
        json={"year": 2026, "size": 100000},
        headers=officer_terminal.headers("POST", blocks_path),
    )
    assert too_big.status_code == 400
    base_url = context.settings.resolved_public_base_url
    block = await _block(client, officer_terminal, 2026, 3)
    kind = "penalty_decision"
    changes = dict(DECISION_COMPANY_SPRING[1])
    f = facts(kind, serial=block["first"], **changes)
    doc = make(kind, f, base_url)
    path = "/api/documents"
    body = _registration(kind, f, doc, block["first"], 2026)
    # A final decision of a case the server does not hold: the review gate cannot know whether
    # it is major, so it is refused (for now: the terminal registers it again after its push).
    early = await client.post(path, json=body, headers=officer_terminal.headers("POST", path))
    assert early.status_code == 409 and early.json()["code"] == "review_required", early.text
    assert "不得打印正式决定书" in early.json()["detail"]
    assert "服务器尚未收到该案件" in early.json()["detail"]
    # Once the case is there with its decision (not major: a company fined 50000 yuan), it passes.
    await decision_on_server(
        client, officer_terminal, clock, f.case_id, party=EVENT_COMPANY, fine_yuan=Decimal(50000)
    )
    created = await client.post(path, json=body, headers=officer_terminal.headers("POST", path))
    assert created.status_code == 201, created.text
    assert (
        created.json()["document_id"] == doc.document_id
        and created.json()["verify_url"] == doc.verify_url
    )
    replay = await client.post(path, json=body, headers=officer_terminal.headers("POST", path))
    assert replay.status_code == 200 and replay.json() == created.json()
    entry = await client.get(
        f"/api/ledger/entries/{created.json()['ledger_seq']}", headers=await login(client, "admin")
    )
    assert entry.json()["data"]["data"]["sha256"] == doc.sha256 and "张三" not in entry.text

    async def refused(body: dict, status: int, code: str) -> None:
        response = await client.post(
            path, json=body, headers=officer_terminal.headers("POST", path)
        )
        assert response.status_code == status, response.text
        assert response.json()["code"] == code, response.text

    second = block["first"] + 1
    f2 = facts(kind, serial=second, **changes)
    doc2 = make(kind, f2, base_url)
    tampered = {
        **_registration(kind, f2, doc2, second, 2026),
        "sha256": hashlib.sha256(b"forged").hexdigest(),
    }
    await refused(tampered, 422, "document_mismatch")
    other_facts = facts(kind, serial=block["first"], **{**changes, "facts": "改写后的违法事实。"})
    other_doc = make(kind, other_facts, base_url)
    await refused(
        _registration(kind, other_facts, other_doc, block["first"], 2026),
        409,
        "document_number_taken",
    )
    outside = block["last"] + 100
    f3 = facts(kind, serial=outside, **changes)
    await refused(
        _registration(kind, f3, make(kind, f3, base_url), outside, 2026),
        422,
        "document_number_not_issued",
    )
    foreign = msgspec.structs.replace(f2, agency=AgencyInfo(code="demo", name="别的执法机关"))
    await refused(
        _registration(kind, foreign, make(kind, foreign, base_url), second, 2026),
        422,
        "validation_failed",
    )
    early = msgspec.structs.replace(f2, issued_on=dt.date(2026, 1, 27))
    early_body = {
        **_registration(kind, f2, doc2, second, 2026),
        "facts": msgspec.to_builtins(early),
    }
    await refused(early_body, 422, "document_procedure_refused")
    unknown_template = {**_registration(kind, f2, doc2, second, 2026), "template_sha256": "0" * 64}
    await refused(unknown_template, 422, "document_template_unknown")
    reviewer = await client.post(path, json=body, headers=await login(client, "reviewer"))
    assert reviewer.status_code == 403
    public = await client.get(f"/d/{doc.document_id}", headers={"Accept": "application/json"})
    assert public.json()["status"] == "genuine" and public.json()["sha256"] == doc.sha256
    assert (
        await client.get(f"/d/{doc2.document_id}", headers={"Accept": "application/json"})
    ).status_code == 404

    # templates per agency, versioned, served to terminals, refused without a required part
    path = "/api/documents/templates"
    files = await client.get(path, headers=officer_terminal.headers("GET", path))
    assert files.status_code == 200, files.text
    by_name = {f["name"]: f for f in files.json()["files"]}
    assert set(by_name) == {*TEMPLATES, "rules"}
    assert (
        by_name["rights_notice"]["version"] == 0
        and by_name["rights_notice"]["sha256"] == TEMPLATES["rights_notice"].sha256
    )
    admin = await login(client, "admin")
    reworded = default_template_text("rights_notice").replace("经查，", "经本机关调查查明：")
    stored = await client.put(f"{path}/rights_notice", json={"body": reworded}, headers=admin)
    assert stored.status_code == 200, stored.text
    assert stored.json()["version"] == 1
    again = await client.put(f"{path}/rights_notice", json={"body": reworded}, headers=admin)
    assert again.json()["version"] == 1  # unchanged: no new version
    broken = reworded.replace("{陈述申辩截止日期}", "五日内")
    rejected = await client.put(f"{path}/rights_notice", json={"body": broken}, headers=admin)
    assert rejected.status_code == 422 and rejected.json()["code"] == "document_template_invalid"
    assert "陈述、申辩权利及期限" in rejected.json()["detail"]
    bad_rules = await client.put(
        f"{path}/rules", json={"body": "[hearing]\nperson_fine = 1\n"}, headers=admin
    )
    assert bad_rules.status_code == 422 and bad_rules.json()["code"] == "document_rules_invalid"
    officer = await client.put(
        f"{path}/rights_notice",
        json={"body": reworded},
        headers=officer_terminal.headers("PUT", f"{path}/rights_notice"),
    )
    assert officer.status_code == 403
    assert (await client.get(path, headers=await login(client, "reviewer"))).status_code == 403
    now = await client.get(path, headers=officer_terminal.headers("GET", path))
    current = {f["name"]: f for f in now.json()["files"]}["rights_notice"]
    assert current["version"] == 1 and current["body"] == reworded
    # a document made from the synced template registers: the server finds it by its hash
    template = parse_template(current["body"], "rights_notice")
    block = await _block(client, officer_terminal, 2026, 1)
    kind = "rights_notice"
    f = facts(kind, serial=block["first"], issued_on=dt.date(2026, 2, 13))
    f = msgspec.structs.replace(f, number=format_number(RULES, template, 2026, block["first"]))
    doc = make(kind, f, context.settings.resolved_public_base_url, template=template)
    register = "/api/documents"
    ok = await client.post(
        register,
        json=_registration(kind, f, doc, block["first"], 2026),
        headers=officer_terminal.headers("POST", register),
    )
    assert ok.status_code == 201, ok.text


# --- end to end over real HTTP: print, scan, verify -------------------------------------------


def _decode_qr(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "scan.pdf"
    path.write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "150", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "scan")],
        check=True,
    )
    (page,) = tmp_path.glob("scan-*.png")
    with Image.open(page) as image:
        codes = zxingcpp.read_barcodes(image)
    assert len(codes) == 1, codes
    return codes[0].text


async def test_blocks_across_instances_then_print_scan_and_verify_over_real_http(
    client, context, officer_terminal, live_server, migrated, tmp_path
):
    """Two server instances (this process and a uvicorn process) cut blocks from one counter at
    once; then a document is printed, its QR scanned from the page image and verified over HTTP."""
    real_clock = AppContext(migrated)  # an enrollment code valid now, for the live server's clock
    try:
        code = (await demo.seed(real_clock)).enrollment_code
    finally:
        await real_clock.close()
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        terminal = await enroll_and_login(http, code, "13010002", now=time.time)
        blocks = await asyncio.gather(
            *[_block(client, officer_terminal, 2026, 7) for _ in range(6)],
            *[_block(http, terminal, 2026, 5) for _ in range(6)],
        )
        spans = sorted((b["first"], b["last"]) for b in blocks)
        assert spans[0][0] == 1
        assert all(prev[1] < nxt[0] for prev, nxt in itertools.pairwise(spans))
        assert sum(last - first + 1 for first, last in spans) == 6 * 7 + 6 * 5
        other_year = await _block(http, terminal, 2025, 3)
        assert (other_year["first"], other_year["last"]) == (1, 3)
        block = blocks[-1]
        kind = "onsite_decision"
        f = facts(kind, serial=block["first"], **dict(ONSITE_COMPANY_SPRING[1]))
        await decision_on_server(
            http,
            terminal,
            Clock(),
            f.case_id,
            party=EVENT_COMPANY,
            fine_yuan=Decimal(3000),
            procedure="当场处理",
        )
        doc = make(kind, f, live_server.url)
        url = _decode_qr(doc.pdf, tmp_path)
        assert url == doc.verify_url and url.startswith(f"{live_server.url}/d/")
        before = await http.get(url, headers={"Accept": "application/json"})
        assert before.status_code == 404 and before.json()["status"] == "not_registered"
        path = "/api/documents"
        registered = await http.post(
            path,
            json=_registration(kind, f, doc, block["first"], 2026),
            headers=terminal.headers("POST", path),
        )
        assert registered.status_code == 201, registered.text
        answer = await http.get(url, headers={"Accept": "application/json"})
        assert answer.status_code == 200
        view = answer.json()
        assert view["status"] == "genuine" and view["sha256"] == hashlib.sha256(doc.pdf).hexdigest()
        assert (view["number"], view["agency"], view["issued_on"]) == (
            f.number,
            demo.AGENCY_NAME,
            "2026-02-13",
        )
        head = (await http.get("/api/ledger/head")).json()
        assert view["ledger"]["tree_size"] <= head["tree_size"]
        page = await http.get(url)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "文书真实有效" in page.text and doc.sha256 in page.text and f.number in page.text
        for personal in (
            COMPANY.name,
            COMPANY.credit_code,
            "王五",
            COMPANY.phone,
            "李华",
            "13010002",
        ):
            assert personal not in page.text and personal not in answer.text
        forged = await http.get(f"{live_server.url}/d/{'a' * 24}")
        assert forged.status_code == 404 and "未找到登记记录" in forged.text
