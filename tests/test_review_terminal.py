"""Legal review as the handling officer's terminal sees it, against a real server process: a major
decision's final document is refused at registration and service (the server's gate) and on the
terminal once it knows why; the review outcome (returned with its problems, materials requested
by a date, approved) reaches the terminal at each pull and shows in ``zhifa-edge case``."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import httpx
import pytest

from edge_agent.agent import Agent
from server.core.clock import CHINA_TZ
from tests.test_edge_agent import ready_agent, staff_headers
from tests.test_edge_credentials_documents import run, signature_png
from tests.test_review_workflow import ALL_PASS, DISCRETION_FAILS

DECISION_FACTS = {
    "grounds": "《娱乐场所管理条例》第九条第一款",
    "remedies": {"reconsideration_body": "示范市文化和旅游局", "court": "示范市城东区人民法院"},
    "payment": {
        "bank": "中国工商银行示范市城东支行",
        "account_name": "示范市财政局非税收入专户",
        "account_number": "0402000009200012345",
    },
}
REFUSED_TO_PRINT = "重大执法决定未经法制审核通过，不得打印正式决定书"


def record(home: Path, case_id: str, kind: str, fields: dict) -> None:
    done = run(home, "record", case_id, kind, "--json", json.dumps(fields, ensure_ascii=False))
    assert done.exit_code == 0, done.output


def make_decision(home: Path, case_id: str):
    today = dt.datetime.now(CHINA_TZ).date().isoformat()
    facts = {
        **DECISION_FACTS,
        "notice": {"number": "示文罚告〔2026〕1号", "served_on": today},
        "statement": {"waived_in_writing": True, "hearing_waived_in_writing": True},
    }
    return run(
        home,
        "document",
        "penalty_decision",
        "--case",
        case_id,
        "--facts",
        json.dumps(facts, ensure_ascii=False),
    )


class Review:
    """The handling unit (agency admin) and a reviewer not on the case, over the server's API."""

    def __init__(self, server, case_id: str) -> None:
        self.base = f"{server.url}/api/review/cases/{case_id}"
        self.admin = staff_headers(server, "admin")
        self.reviewer = staff_headers(server, "reviewer")

    def post(self, action: str, body: dict, headers: dict, status: int = 200) -> None:
        response = httpx.post(f"{self.base}/{action}", json=body, headers=headers, timeout=30)
        assert response.status_code == status, response.text

    def submit(self) -> None:
        self.post("submissions", {"note": "请审核"}, self.admin, 201)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_review_outcome_and_gate_on_the_terminal(seeded, live_server, tmp_path):
    home = tmp_path / "a"
    ready_agent(live_server, home, "13010001").close()
    partner = ready_agent(live_server, tmp_path / "b", "13010002")
    partner_url = partner.wallet.card().url
    partner.close()
    opened = run(
        home,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "王五擅自从事娱乐场所经营活动案",
        "--partner",
        "13010002",
        "--place",
        "示范市城东区人民路88号",
    )
    assert opened.exit_code == 0, opened.output
    case_id = opened.output.strip()
    # Both officers' credentials checked by scanning (第四十二条).
    checked = run(home, "check-partner", partner_url, "--case", case_id)
    assert checked.exit_code == 0, checked.output
    person = {"type": "person", "name": "王五", "id_number": "110101199001011234"}
    record(home, case_id, "party_identified", {"party_id": str(uuid.uuid4()), "party": person})
    record(
        home,
        case_id,
        "notice_served",
        {"facts": "未经许可擅自从事娱乐场所经营活动", "proposed": "罚款", "hearing_right": True},
    )
    record(home, case_id, "statement_received", {"waived": True, "in_writing": True})
    # 20000 yuan for a person: major under the built-in catalog.
    record(
        home,
        case_id,
        "decision_proposed",
        {
            "penalties": ["罚款"],
            "fine_yuan": "20000",
            "facts": "当事人未取得娱乐经营许可证，擅自从事歌舞娱乐经营活动",
            "legal_basis": "《娱乐场所管理条例》第四十一条",
        },
    )
    unknown = run(home, "case", case_id)
    assert unknown.exit_code == 0, unknown.output
    assert "本机尚无审核结果" in unknown.output

    # Offline the terminal cannot know the decision is major: the paper is made, and the server
    # refuses to register it; it stays pending with the reason, to be registered again later.
    made = make_decision(home, case_id)
    assert made.exit_code == 0, made.output
    synced = run(home, "sync")
    assert synced.exit_code == 0, synced.output
    assert "review_outcome" in synced.output and "退回 0 条" in synced.output
    listed = run(home, "documents", "--case", case_id)
    assert "[待登记，未送达]" in listed.output and REFUSED_TO_PRINT in listed.output, listed.output
    with Agent(home) as agent:
        (doc,) = agent.papers.documents(case_id)
    assert (doc.registration, doc.code) == ("pending", "review_required")
    view = run(home, "case", case_id)
    assert "法制审核：重大执法决定，待送审" in view.output, view.output
    assert "不得打印、送达" in view.output and "对公民处以较大数额罚款" in view.output

    # Now the terminal knows: no new final decision is printed, none is served.
    again = make_decision(home, case_id)
    assert again.exit_code == 2 and REFUSED_TO_PRINT in again.output, again.output
    signature = tmp_path / "signature.png"
    signature.write_bytes(signature_png())
    serve = ("serve-document", doc.id, "--signature", str(signature))
    refused = run(home, *serve)
    assert refused.exit_code == 2, refused.output
    assert "重大执法决定未经法制审核通过，不得送达决定书" in refused.output

    # Returned with a problem: the terminal shows the problem.
    review = Review(live_server, case_id)
    review.submit()
    review.post("take", {}, review.reviewer)
    review.post(
        "opinion",
        {
            "outcome": "存在问题",
            "opinion": "裁量不当，请重新考虑罚款数额",
            "problems": [{"item": "discretion", "text": "一般情节罚款两万元超出幅度"}],
            "checklist": DISCRETION_FAILS,
        },
        review.reviewer,
    )
    assert run(home, "sync").exit_code == 0
    view = run(home, "case", case_id)
    assert "已退回（第 1 轮）" in view.output and "审核意见：存在问题" in view.output, view.output
    assert "问题：裁量基准适当：一般情节罚款两万元超出幅度" in view.output

    # Materials requested by a date: the request and the date show.
    review.submit()
    review.post("take", {}, review.reviewer)
    due = (dt.datetime.now(CHINA_TZ).date() + dt.timedelta(days=5)).isoformat()
    review.post("supplement", {"request": "请补充询问笔录", "due_on": due}, review.reviewer)
    assert run(home, "sync").exit_code == 0
    view = run(home, "case", case_id)
    assert f"需补充材料：请补充询问笔录（{due} 前）" in view.output, view.output
    assert "待补充材料" in view.output

    # Approved: the pending registration goes through at the next sync, service is accepted.
    review.submit()
    review.post("take", {}, review.reviewer)
    review.post(
        "opinion", {"outcome": "同意", "opinion": "同意", "checklist": ALL_PASS}, review.reviewer
    )
    assert run(home, "sync").exit_code == 0
    listed = run(home, "documents", "--case", case_id)
    assert "[已登记，未送达]" in listed.output and "/d/" in listed.output, listed.output
    view = run(home, "case", case_id)
    assert "审核通过（第 3 轮）" in view.output and "可以打印、送达" in view.output, view.output
    served = run(home, *serve)
    assert served.exit_code == 0, served.output
    synced = run(home, "sync")
    assert synced.exit_code == 0 and "接受 1 条" in synced.output and "退回 0 条" in synced.output
    listed = run(home, "documents", "--case", case_id)
    assert "[已登记，已送达]" in listed.output, listed.output
