"""The edge agent against a real server process: the CLI walk-through, a rejected event on the
terminal, two terminals on one case, the local API, and a sync killed 50 times (real SIGKILLs of
a real ``zhifa-edge sync`` process, and crashes injected at every step of the protocol)."""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from starlette.testclient import TestClient

from edge_agent.agent import Agent
from edge_agent.cli import main as cli
from edge_agent.local_api import create_app
from edge_agent.sync import STEPS
from mobile_api.models import CaseEvent
from server.app import demo
from tests._case_events import ledgered_events
from tests.conftest import ROOT

PASSWORD = demo.DEMO_PASSWORD


def staff_headers(server, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def enrollment_code(server) -> str:
    response = httpx.post(
        f"{server.url}/api/terminals/enrollment-codes",
        json={},
        headers=staff_headers(server, "admin"),
    )
    assert response.status_code == 201, response.text
    return response.json()["enrollment_code"]


def ready_agent(server, home: Path, username: str, **options) -> Agent:
    agent = Agent(home, **options)
    agent.session.enroll(server.url, enrollment_code(server), f"终端 {username}")
    agent.login(username, PASSWORD)
    return agent


def partner_code(home: Path) -> str:
    """The partner shows his card: the URL in its QR code now, from his terminal's cache."""
    with Agent(home) as partner:
        url = partner.wallet.card().url
    assert url, "the partner's terminal has no current code"
    return url


def run(home: Path, *args: str, input: str | None = None):
    result = CliRunner().invoke(cli, ["--home", str(home), *args], input=input)
    return result


def _walkthrough(live_server, tmp_path: Path) -> None:
    """The CLI, a rejected event with its reason, a partner's terminal, the local API."""
    home = tmp_path / "terminal-a"
    code = enrollment_code(live_server)
    assert run(home, "status").output.startswith("终端 未注册")
    assert "终端已注册" in run(home, "enroll", live_server.url, code, "--name", "一号终端").output
    refused = run(home, "login", "13010001", "--password", "wrong-password")
    assert refused.exit_code == 2 and "用户名或密码不正确" in refused.output
    logged = run(home, "login", "13010001", "--password", PASSWORD)
    assert logged.exit_code == 0, logged.output
    assert "已登录：证号 13010001" in logged.output
    assert "credential" in logged.output  # reference data arrived with the login

    opened = run(
        home,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "某歌舞厅擅自经营案",
        "--partner",
        "13010002",
    )
    assert opened.exit_code == 0, opened.output
    case_id = opened.output.strip()
    party = {"party_id": str(uuid.uuid4()), "party": {"type": "person", "name": "王五"}}
    assert (
        run(home, "record", case_id, "party_identified", "--json", json.dumps(party)).exit_code == 0
    )
    # The partner logs in on his own terminal and shows his card; A scans it (第42条).
    home_b = tmp_path / "terminal-b"
    ready_agent(live_server, home_b, "13010002").close()
    checked = run(home, "check-partner", partner_code(home_b), "--case", case_id)
    assert checked.exit_code == 0 and "已在案件中记录 2 条证件核验" in checked.output, (
        checked.output
    )
    early = run(home, "record", case_id, "decision_proposed", "-f", 'penalties=["警告"]')
    assert early.exit_code == 0, early.output
    seized = run(
        home,
        "record",
        case_id,
        "inspection_recorded",
        "-f",
        "findings=扣押设备",
        "-f",
        'measures=["扣押"]',
    )
    assert seized.exit_code == 0, seized.output
    assert run(home, "record", case_id, "no_such_kind").exit_code == 2
    unknown_case = run(home, "record", str(uuid.uuid4()), "case_closed")
    assert unknown_case.exit_code == 2 and "本机没有案件" in unknown_case.output
    assert "待同步 6 条" in run(home, "status").output

    synced = run(home, "sync", "--batch-size", "2")
    assert "接受 5 条" in synced.output and "退回 1 条" in synced.output, synced.output
    status = run(home, "status")
    assert "已同步 5 条" in status.output and "被退回 1 条" in status.output
    assert "[rights_notice_missing] 尚未向当事人送达权利告知书" in status.output
    as_json = json.loads(run(home, "status", "--json").output)
    (rejected,) = as_json["rejected_events"]
    assert (rejected["kind"], rejected["code"]) == ("decision_proposed", "rights_notice_missing")

    # The terminal's clock is three hours off and its token about to expire: the next sync learns
    # the server's time from its answer and refreshes the token (rotating the refresh token).
    a = Agent(home)
    refresh_before = a.session.row("refresh_token")
    with a.store.transaction() as db:
        db.set_meta("server_clock_offset", str(-3 * 3600))
        db.execute("UPDATE session SET access_expires_at = 0")
    assert a.sync().rejected == 0
    assert abs(float(a.store.meta("server_clock_offset"))) < 60
    assert a.session.row("refresh_token") != refresh_before

    # A partner continues the case from his own terminal; both work offline, then both sync.
    b = Agent(home_b)
    b.sync()
    assert [c.id for c in b.desk.cases()] == [case_id]
    a_event = a.desk.record(case_id, "credential_shown", {"credential_number": "13010001"})
    b_event = b.desk.record(
        case_id, "evidence_attached", {"evidence_id": str(uuid.uuid4()), "evidence_kind": "照片"}
    )
    assert b.sync().accepted == 1 and a.sync().accepted == 1
    reviewer = staff_headers(live_server, "reviewer")
    view = httpx.get(f"{live_server.url}/api/cases/{case_id}", headers=reviewer).json()
    timeline = [e["id"] for e in view["timeline"]]
    assert str(a_event.id) in timeline and str(b_event.id) in timeline and len(timeline) == 7
    assert len({e["terminal_id"] for e in view["timeline"]}) == 2
    assert [f["code"] for f in view["flaws"] if f["code"] == "recording_missing"] == [
        "recording_missing"
    ]
    first_hlc = next(e["hlc"] for e in view["timeline"] if e["kind"] == "case_opened")
    assert b_event.hlc > first_hlc  # B's clock moved past the case it pulled
    a.close()
    b.close()

    # The local API for a terminal UI mirrors the CLI.
    with TestClient(create_app(home)) as local:
        assert local.get("/api/status").json()["rejected"] == 1
        made = local.post(
            "/api/cases",
            json={
                "item_code": "WH-JC-001",
                "region": "示范市城东区",
                "title": "例行检查",
                "partners": ["13010002"],
            },
        )
        assert made.status_code == 201, made.text
        new_case = made.json()["case_id"]
        inspection = {"kind": "inspection_recorded", "fields": {"findings": "未见异常"}}
        unchecked = local.post(f"/api/cases/{new_case}/events", json=inspection)
        assert unchecked.status_code == 400
        assert unchecked.json()["code"] == "credential_checks_missing"
        partner = local.post(
            f"/api/cases/{new_case}/partner-check", json={"scanned": partner_code(home_b)}
        )
        assert partner.status_code == 200 and len(partner.json()["recorded"]) == 2, partner.text
        recorded = local.post(f"/api/cases/{new_case}/events", json=inspection)
        assert recorded.status_code == 201
        assert (
            local.post(f"/api/cases/{new_case}/events", json={"kind": "x"}).json()["code"]
            == "kind_unknown"
        )
        assert local.post("/api/cases", json={"title": "缺项"}).status_code == 422
        assert local.post("/api/sync").json()["accepted"] == 4
        assert local.get(f"/api/cases/{new_case}").json()["state"] == "已立案"
        assert len(local.get("/api/reference/enforcement_item").json()) == 5


class SimulatedKill(BaseException):
    """Stands for the process dying at that point: nothing after it runs, no handler sees it."""


class CrashAt:
    """An ``on_step`` hook that kills the sync the ``nth`` time it reaches ``step``."""

    def __init__(self, step: str, nth: int) -> None:
        self.step, self.nth, self.seen = step, nth, 0

    def __call__(self, name: str) -> None:
        if name == self.step:
            self.seen += 1
            if self.seen == self.nth:
                raise SimulatedKill(name)


def _record_work(agent: Agent, cases: list[str], count: int, rng: random.Random) -> None:
    for _ in range(count):
        agent.desk.record(
            rng.choice(cases),
            "inspection_recorded",
            {"findings": f"巡查记录 {rng.randrange(10**6)}"},
        )


async def _killed_50_times(live_server, context, tmp_path: Path) -> None:
    rng = random.Random(20260302)
    home, partner_home = tmp_path / "terminal", tmp_path / "partner"
    ready_agent(live_server, partner_home, "13010002").close()
    agent = ready_agent(live_server, home, "13010001")
    terminal_id = agent.session.row("terminal_id")
    cases = [
        str(
            agent.desk.open_case(
                item_code="WH-JC-001",
                region="示范市城东区",
                title=f"娱乐场所巡查 {i}",
                partners=["13010002"],
            ).case_id
        )
        for i in range(3)
    ]
    for case_id in cases:  # the partner's card scanned on every case before acting (第42条)
        assert agent.wallet.check_partner(partner_code(partner_home), case_id).verdict == "valid"
    refused = agent.desk.record(cases[0], "decision_proposed", {"penalties": ["警告"]})
    _record_work(agent, cases, 40, rng)
    agent.close()

    def order_resync() -> None:
        ordered = httpx.post(
            f"{live_server.url}/api/sync/resync-orders",
            json={"terminal_ids": [terminal_id], "reason": "演练"},
            headers=staff_headers(live_server, "admin"),
        )
        assert ordered.status_code == 201, ordered.text

    # Real SIGKILLs of a real `zhifa-edge sync` process, at random moments of its work.
    killed_running = 0
    for round_ in range(10):
        with Agent(home) as working:
            _record_work(working, cases, 20, rng)
        if round_ == 4:  # the server orders a full resync halfway: everything is pushed again
            order_resync()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_agent.cli",
                "--home",
                str(home),
                "sync",
                "--batch-size",
                "2",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.25, 0.6))
        process.send_signal(signal.SIGKILL)
        killed_running += process.wait() == -signal.SIGKILL

    # Crashes injected at each step of the protocol (twice in turn, then at random), each
    # followed by a fresh start. A resync re-pushes everything, so only two of them.
    routine = [step for step in STEPS if step != "resync.applied"]
    for round_ in range(40):
        step = STEPS[round_ % len(STEPS)] if round_ < 2 * len(STEPS) else rng.choice(routine)
        if step == "resync.applied":
            order_resync()
        crash = CrashAt(step, nth=1)
        with Agent(home, batch_size=8, on_step=crash) as crashing:
            _record_work(crashing, cases, 2, rng)
            with pytest.raises(SimulatedKill):
                crashing.sync()

    with Agent(home) as final:
        report = final.sync()
        status = final.status()
        local = {
            row["id"]: row["status"] for row in final.store.query("SELECT id, status FROM events")
        }
    assert killed_running >= 5, f"only {killed_running} of 10 kills hit a running sync"
    assert report.rejected == 0 and status.queued == 0
    assert status.rejected == 1 and status.rejected_events[0].id == str(refused.id)
    assert status.sent == len(local) - 1

    async with context.database.sessionmaker() as session:
        rows = (
            await session.execute(
                select(CaseEvent.id, CaseEvent.outcome).where(
                    CaseEvent.terminal_id == uuid.UUID(terminal_id)
                )
            )
        ).all()
    ledger = await ledgered_events(context)
    assert {str(r.id) for r in rows} == set(local)  # every event reached the server
    assert len(rows) == len(local)  # once each
    ledgered = collections.Counter(e["event"] for e in ledger if e["terminal"] == terminal_id)
    accepted = {str(r.id) for r in rows if r.outcome == "accepted"}
    assert set(ledgered) == accepted and set(ledgered.values()) == {1}  # applied exactly once
    assert {str(r.id) for r in rows if r.outcome == "rejected"} == {str(refused.id)}

    # The server goes away: new work waits on the terminal, and the CLI says so.
    live_server.kill()
    with Agent(home) as offline_agent:
        _record_work(offline_agent, cases, 1, rng)
    offline = run(home, "sync")
    assert offline.exit_code == 3 and "联网后再同步" in offline.output
    assert "待同步 1 条" in run(home, "status").output


async def test_edge_agent_against_a_live_server(seeded, live_server, context, tmp_path):
    _walkthrough(live_server, tmp_path / "walkthrough")
    await _killed_50_times(live_server, context, tmp_path / "killed")
