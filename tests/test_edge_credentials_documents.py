"""The edge side of the e-credential (issue 3) and the documents (issue 6), against a real server
process: the card and its QR from the cache, the local card page, the partner's offline check,
the own-credential and two-officer gates, and a rights notice made offline, served with a
signature, registered at sync and verified at /d/{id}."""

from __future__ import annotations

import datetime as dt
import io
import json
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from PIL import Image
from starlette.testclient import TestClient

from edge_agent.agent import Agent
from edge_agent.cli import main as cli
from edge_agent.credentials import CredentialRefused, PartnerCheckRequired
from edge_agent.local_api import create_app
from mobile_api.contracts.events import CredentialShown, decode_event
from tests.test_edge_agent import ready_agent, staff_headers

NOTICE_FACTS = {
    "grounds": "《娱乐场所管理条例》第九条第一款",
    "penalties": [{"kind": "罚款", "amount_yuan": "500"}],
    "remedies": {"reconsideration_body": "示范市文化和旅游局", "court": "示范市城东区人民法院"},
}


def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def signature_png() -> bytes:
    image = Image.new("L", (120, 40), 255)
    image.paste(0, (10, 18, 110, 22))  # a stroke
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _card_from_cache(home: Path) -> None:
    with Agent(home) as agent:
        names = {r["name"] for r in agent.store.query("SELECT name FROM credential_cache")}
        assert names == {"batch", "cache"}
        assert agent.wallet.cache().roster
    shown = run(home, "card", "--once")
    assert shown.exit_code == 0, shown.output
    for text in ("证号：13010001", "执法类别：", "执法区域：", "有效期：", "证件状态：有效"):
        assert text in shown.output
    assert "▀" in shown.output or "▄" in shown.output  # the QR drawn in half blocks
    assert "/v/" in shown.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_credentials_and_documents_on_the_terminal(seeded, live_server, tmp_path):
    home_a, home_b = tmp_path / "a", tmp_path / "b"
    a = ready_agent(live_server, home_a, "13010001")
    b = ready_agent(live_server, home_b, "13010002")
    partner_url = b.wallet.card().url
    assert partner_url and partner_url.startswith(live_server.url)
    b.close()
    a.close()

    _card_from_cache(home_a)

    # The card page of the local API: Chinese labels, the QR inline, reloading itself.
    with TestClient(create_app(home_a)) as local:
        page = local.get("/card")
        assert page.status_code == 200
        for text in ("行政执法证", "执法类别", "执法区域", "<svg", 'http-equiv="refresh"'):
            assert text in page.text
        svg = local.get("/card/qr.svg")
        assert svg.headers["content-type"] == "image/svg+xml" and b"<svg" in svg.content
        assert local.get("/api/card").json()["number"] == "13010001"

    opened = run(
        home_a,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "某歌舞厅擅自经营案",
        "--partner",
        "13010002",
        "--place",
        "示范市城东区人民路88号",
    )
    assert opened.exit_code == 0, opened.output
    case_id = opened.output.strip()
    party = {"party_id": str(uuid.uuid4()), "party": {"type": "person", "name": "王五"}}
    assert (
        run(home_a, "record", case_id, "party_identified", "--json", json.dumps(party)).exit_code
        == 0
    )

    # Without the checks an inspection is refused (第42条), naming both missing; a check cannot
    # be typed in by hand, only made by scanning.
    inspect = (
        "record",
        case_id,
        "inspection_recorded",
        "-f",
        "findings=未取得许可证擅自从事歌舞娱乐经营活动",
    )
    refused = run(home_a, *inspect)
    assert refused.exit_code == 2
    assert "第四十二条" in refused.output and "本人（13010001）" in refused.output
    assert "同行执法人员的执法证件核验" in refused.output
    typed = run(
        home_a,
        "record",
        case_id,
        "credential_shown",
        "-f",
        "credential_number=13010002",
        "-f",
        "checked_by=13010001",
    )
    assert typed.exit_code == 2 and "由终端填写：checked_by" in typed.output
    assert run(home_a, *inspect).exit_code == 2

    checked = run(home_a, "check-partner", partner_url, "--case", case_id)
    assert checked.exit_code == 0, checked.output
    assert "13010002" in checked.output and "有效" in checked.output
    assert "已在案件中记录 2 条证件核验" in checked.output  # the own check and the partner's
    accepted = run(home_a, *inspect)
    assert accepted.exit_code == 0, accepted.output
    again = run(home_a, "check-partner", partner_url, "--case", case_id)
    assert again.exit_code == 0 and "已在案件中记录" not in again.output  # once per credential

    # A rights notice made offline from the case's facts.
    pdf_out = tmp_path / "notice.pdf"
    incomplete = run(home_a, "document", "rights_notice", "--case", case_id)
    assert incomplete.exit_code == 2 and "缺少" in incomplete.output
    made = run(
        home_a,
        "document",
        "rights_notice",
        "--case",
        case_id,
        "--facts",
        json.dumps(NOTICE_FACTS, ensure_ascii=False),
        "--out",
        str(pdf_out),
    )
    assert made.exit_code == 0, made.output
    assert "行政处罚事先告知书" in made.output and "王五" in made.output
    assert pdf_out.read_bytes().startswith(b"%PDF")
    with Agent(home_a) as agent:
        (doc,) = agent.papers.documents(case_id)
    assert doc.registration == "pending"

    # Service: a signature or a refusal with proof, never neither.
    neither = run(home_a, "serve-document", doc.number)
    assert neither.exit_code == 2 and "签名图像" in neither.output
    refusal_unproved = run(home_a, "serve-document", doc.id, "--refused")
    assert refusal_unproved.exit_code == 2 and "见证人" in refusal_unproved.output
    signature = tmp_path / "signature.png"
    signature.write_bytes(signature_png())
    served = run(home_a, "serve-document", doc.id, "--signature", str(signature))
    assert served.exit_code == 0, served.output
    assert "送达权利告知书" in served.output
    with Agent(home_a) as agent:
        row = agent.store.one(
            "SELECT body FROM events WHERE case_id = ? AND kind = 'notice_served'", (case_id,)
        )
        notice = decode_event(row["body"])
    assert notice.service.document_id == doc.id and notice.service.sha256 == doc.sha256
    assert notice.document_number == doc.number and notice.service.signature_sha256

    synced = run(home_a, "sync")
    assert synced.exit_code == 0 and "退回 0 条" in synced.output, synced.output
    listed = run(home_a, "documents", "--case", case_id)
    assert "已登记" in listed.output and "已送达" in listed.output, listed.output
    verified = httpx.get(
        f"{live_server.url}/d/{doc.id}", headers={"Accept": "application/json"}
    ).json()
    assert verified["status"] == "genuine" and verified["sha256"] == doc.sha256
    assert verified["number"] == doc.number

    # The partner's credential is revoked; terminal A learns it at its next sync.
    revoked = httpx.post(
        f"{live_server.url}/api/admin/credentials/13010002/status",
        json={"action": "revoke", "reason": "违法违纪被依法吊销执法证"},
        headers=staff_headers(live_server, "admin"),
    )
    assert revoked.status_code == 200, revoked.text
    assert run(home_a, "sync").exit_code == 0
    with Agent(home_b) as agent:
        agent.sync()

    live_server.stop()  # everything below is offline
    second = run(
        home_a,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "另一案",
        "--partner",
        "13010002",
    )
    assert second.exit_code == 0, second.output
    failed = run(home_a, "check-partner", partner_url, "--case", second.output.strip())
    assert failed.exit_code == 1
    assert "无效" in failed.output and "执法证件已被吊销" in failed.output
    with TestClient(create_app(home_a)) as local:
        answer = local.post(
            f"/api/cases/{second.output.strip()}/partner-check", json={"scanned": partner_url}
        ).json()
        assert answer["verdict"] == "invalid"
        assert [f["code"] for f in answer["findings"]] == ["credential_revoked"]
        assert "<svg" in local.get("/card").text  # the card still shows, from the cache
        (listed_doc,) = local.get("/api/documents", params={"case": case_id}).json()
        assert listed_doc["registration"] == "registered" and listed_doc["served_event"]
        assert local.get(f"/api/documents/{doc.id}/pdf").content == pdf_out.read_bytes()
        no_facts = local.post(
            f"/api/cases/{second.output.strip()}/documents", json={"kind": "penalty_decision"}
        )
        assert no_facts.status_code == 400 and "尚未确认当事人" in no_facts.json()["message"]

    with Agent(home_a) as agent:
        checks = [
            decode_event(r["body"])
            for r in agent.store.query(
                "SELECT body FROM events WHERE kind = 'credential_shown' AND case_id = ?",
                (case_id,),
            )
        ]
        assert sorted(e.credential_number for e in checks if isinstance(e, CredentialShown)) == [
            "13010001",
            "13010002",
        ]
        assert {(e.checked_by, e.status_list_issued_at is not None) for e in checks} == {
            ("13010001", True)
        }
        with pytest.raises(PartnerCheckRequired):
            agent.desk.record(second.output.strip(), "inspection_recorded", {"findings": "检查"})
        own_url = agent.wallet.card().url
    assert own_url

    _own_credential_refusals(home_a, home_b, case_id, own_url)


def _own_credential_refusals(home_a: Path, home_b: Path, case_id: str, partner_url: str) -> None:
    """An officer whose own credential is not valid starts no enforcement action, offline: not
    by opening a case, not on a case he holds, not by checking a partner; nothing is written."""
    with Agent(home_b) as agent:
        assert [c.id for c in agent.desk.cases()] == [case_id]  # pulled as the case's partner
        before = agent.status().queued
        with pytest.raises(CredentialRefused, match="执法证件已被吊销"):
            agent.desk.open_case(item_code="WH-CF-001", region="示范市城东区", title="不应立案")
        with pytest.raises(CredentialRefused, match="执法证件已被吊销"):
            agent.desk.record(case_id, "inspection_recorded", {"findings": "检查"})
        with pytest.raises(CredentialRefused, match="执法证件已被吊销"):
            agent.wallet.check_partner(partner_url, case_id)
        assert agent.status().queued == before and len(agent.desk.cases()) == 1
    refused = run(
        home_b,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "不应立案",
        "--partner",
        "13010001",
    )
    assert refused.exit_code == 2
    assert "本人执法证件无效，不能开展执法活动：执法证件已被吊销" in refused.output
    with TestClient(create_app(home_b)) as local:
        answer = local.post(
            f"/api/cases/{case_id}/events",
            json={"kind": "notice_served", "fields": {"facts": "未取得许可证擅自经营"}},
        )
        assert answer.status_code == 400
        assert answer.json()["code"] == "own_credential_invalid"

    # 当场处理 ending in a warning may be done by one officer (the default one-officer rule); a
    # heavier decision on the same case needs the two checks again.
    with Agent(home_a) as agent:
        alone = str(
            agent.desk.open_case(
                item_code="WH-CF-001", region="示范市城东区", title="当场警告", procedure="当场处理"
            ).case_id
        )
        agent.desk.record(alone, "inspection_recorded", {"findings": "现场检查"})
        agent.desk.record(alone, "decision_proposed", {"penalties": ["警告"]})
        agent.desk.record(alone, "document_served", {"document": "当场行政处罚决定书"})
        with pytest.raises(PartnerCheckRequired):
            agent.desk.record(alone, "decision_proposed", {"penalties": ["罚款"], "fine_yuan": 50})

    # A status list older than the limit (24 h) cannot confirm even a valid credential.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    with Agent(home_a, clock=lambda: later) as agent:
        with pytest.raises(CredentialRefused, match="无法确认") as stale:
            agent.desk.open_case(item_code="WH-CF-001", region="示范市城东区", title="过期清单")
        assert "证件状态清单已超过时限未更新" in stale.value.message


async def test_login_caches_the_card_on_both_backends(seeded, live_server, tmp_path):
    ready_agent(live_server, tmp_path / "t", "13010001").close()
    live_server.stop()
    _card_from_cache(tmp_path / "t")
