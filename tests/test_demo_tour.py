"""The newcomer's tour (``make demo``, ``python -m tour``) end to end on a fresh data directory:
it runs one case from the terminals to the portal, and what it made is still there when the
same data is served again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from edge_agent.agent import Agent
from edge_agent.recordings import Recordings
from server.app import demo
from server.core.settings import load_settings
from tests.conftest import ROOT, LiveServer, free_port

STEPS = (
    "Two terminals are enrolled",
    "亮证",
    "The two-officer check",
    "执法记录: a 4 s recording with a 5 s pre-record buffer",
    "server killed with SIGKILL",
    "nothing sent twice",
    "权利告知书",
    "陈述、申辩",
    "routed to legal review",
    "「已退回」",
    "「审核通过」",
    "行政处罚决定书",
    "「已公开」",
    "「已撤下」",
    "/console/login",
)


def _headers(url: str, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{url}/api/auth/login", json={"username": username, "password": demo.DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_the_tour_takes_one_case_from_the_terminals_to_the_portal(tmp_path: Path) -> None:
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIFA_")}
    env.update(ZHIFA_DATA_DIR=str(data), ZHIFA_PORT=str(free_port()), ZHIFA_LOG_LEVEL="warning")
    run = subprocess.run(
        [sys.executable, "-m", "tour", "--seconds", "4", "--exit"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    missing = [step for step in STEPS if step not in run.stdout]
    assert not missing, (missing, run.stdout)
    made = json.loads((data / "demo" / "tour.json").read_text(encoding="utf-8"))

    # The terminal kept the recording's records and knows the server sealed it.
    with Agent(data / "demo" / "terminal-13010001") as agent:
        recordings = Recordings(agent.home, agent.session, agent.desk).lines()
        assert agent.status().queued == 0 and agent.status().rejected == 0
    (recording,) = recordings
    assert recording.recording_id == made["recording_id"]
    assert (recording.state, recording.evidence_id) == ("sealed", made["evidence_id"])

    # Everything stays browsable: the same data served again.
    server = LiveServer(
        load_settings(environ={}, data_dir=str(data), port=free_port()), tmp_path / "again.log"
    )
    server.start()
    try:
        reviewer, admin = _headers(server.url, "reviewer"), _headers(server.url, "admin")
        case_id = made["case_id"]
        review = httpx.get(f"{server.url}/api/review/cases/{case_id}", headers=reviewer).json()
        assert review["state"] == "审核通过" and review["major"]
        assert [r["outcome"] for r in review["rounds"]] == ["存在问题", "同意"]

        evidence = httpx.get(
            f"{server.url}/api/media/evidence/{made['evidence_id']}", headers=reviewer
        ).json()
        assert evidence["case_id"] == case_id and evidence["recording_id"] == made["recording_id"]
        assert evidence["duration_s"] >= 8  # 5 s pre-record + 4 s recorded

        case = httpx.get(f"{server.url}/api/cases/{case_id}", headers=reviewer).json()
        assert case["file"]["state"] == "已送达" and not case["rejected"]
        kinds = {entry["kind"] for entry in case["timeline"]}
        assert {"credential_shown", "notice_served", "statement_received"} <= kinds
        assert {"decision_proposed", "document_served", "evidence_attached"} <= kinds

        listed = httpx.get(
            f"{server.url}/api/disclosure/decisions",
            params={"agency_code": demo.AGENCY_CODE},
            headers=admin,
        ).json()["items"]
        (decision,) = [d for d in listed if d["case_id"] == case_id]
        assert decision["state"] == "withdrawn" and decision["change_kind"] == "撤销"
        assert decision["published_at"] is not None
        assert decision["record_id"] == made["disclosure_record_id"]
        public = httpx.get(f"{server.url}/api/gongshi/decisions/{decision['record_id']}").json()
        assert public["status"] == "已撤下" and public["subject"] == "张某"
        assert public["decision_number"] == made["decision_number"]
        for key in (
            "portal_decision",
            "portal_withdrawals",
            "console",
            "rights_notice",
            "decision",
        ):
            url = made["links"][key].replace(made["server"], server.url)
            assert httpx.get(url).status_code == 200, key
    finally:
        server.stop()
