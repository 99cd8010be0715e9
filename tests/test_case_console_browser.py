"""Cases in the staff console, in headless Chromium against a live server (real HTTP, real database).

Two terminals work on one case; a second case is closed. A reviewer is sent to the login page,
logs in, filters the list with the keyboard-reachable form, opens the case and finds the whole
timeline from both terminals, the machine review's flaws and the refused event. Screenshots of
each step are saved in the test's tmp directory (``pytest --basetemp DIR`` keeps them).
The pages need no JavaScript, so the browser runs with it switched off.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from mobile_api.contracts import events as ev
from server.core.clock import Clock
from server.core.roles import CONSOLE_COOKIE
from tests._case_events import PAIR, Writer, push_ok
from tests.conftest import enroll_and_login, login

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "zhifa-demo-2026"


def require_browser() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("ZHIFA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ZHIFA_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt package chromium)")
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run this test")


async def _terminal(client: httpx.AsyncClient, number: str, name: str):
    """A terminal enrolled with a code from the live server's own clock, the officer logged in."""
    code = await client.post(
        "/api/terminals/enrollment-codes", json={}, headers=await login(client, "admin")
    )
    assert code.status_code == 201, code.text
    return await enroll_and_login(client, code.json()["enrollment_code"], number, name=name)


async def _two_terminals_on_one_case(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    """Case 1: opened on terminal A, continued on the partner's terminal B, with a flaw and a
    refused decision; case 2: opened and closed on A."""
    clock = Clock()
    a, b = Writer("a1a1a1a1", clock), Writer("b2b2b2b2", clock)
    async with httpx.AsyncClient(base_url=url) as client:
        one = await _terminal(client, PAIR[0], "一号终端")
        two = await _terminal(client, PAIR[1], "二号终端")
        opened = a.open(title="某歌舞厅擅自经营案", place="示范市城东区人民路 8 号")
        case_id = opened.case_id
        accepted = await push_ok(
            client,
            one,
            [
                opened,
                a.person(case_id),
                a(ev.CredentialShown, case_id, credential_number=PAIR[0]),
                a(ev.InspectionRecorded, case_id, findings="包间内有 6 台点歌设备在营业"),
            ],
        )
        assert {r.outcome for r in accepted} == {"accepted"}
        partner = await push_ok(
            client,
            two,
            [
                # 刘洋 is not qualified in 城东区: accepted with two others, found as a flaw.
                b(
                    ev.InspectionRecorded,
                    case_id,
                    findings="扣押点歌设备 6 台",
                    measures=["扣押"],
                    officers=[*PAIR, "13010006"],
                ),
                b(
                    ev.EvidenceAttached,
                    case_id,
                    evidence_id=uuid.uuid4(),
                    evidence_kind="音像记录",
                    description="扣押过程录像",
                    recording_id=str(uuid.uuid4()),  # recorded, not uploaded yet
                ),
                b(ev.DecisionProposed, case_id, penalties=["罚款"], fine_yuan=5000),
            ],
        )
        assert [r.outcome for r in partner] == ["accepted", "accepted", "rejected"]
        closed = a.open(title="某网吧日常检查", act_kind="行政处罚")
        done = await push_ok(
            client, one, [closed, a(ev.CaseClosed, closed.case_id, reason="未发现违法行为")]
        )
        assert {r.outcome for r in done} == {"accepted"}
    return case_id, closed.case_id


async def test_staff_filter_cases_and_read_one_case(live_server, seeded, tmp_path):
    require_browser()
    from playwright.async_api import async_playwright

    case_id, closed_id = await _two_terminals_on_one_case(live_server.url)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await (
                await browser.new_context(
                    viewport={"width": 1280, "height": 900},
                    locale="zh-CN",
                    java_script_enabled=False,
                )
            ).new_page()
            await page.goto(f"{live_server.url}/console/cases")
            assert "/console/login" in page.url
            await page.fill("#username", "reviewer")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{live_server.url}/console/cases")
            await page.screenshot(path=tmp_path / "1-cases.png", full_page=True)
            rows = page.locator("tbody tr")
            assert await rows.count() == 2
            listed = await page.inner_text("tbody")
            assert "某歌舞厅擅自经营案" in listed and "某网吧日常检查" in listed
            assert "项问题" in listed  # the flaws count of case 1

            # Filter by state, then by an officer, from the form alone.
            await page.select_option("#state", "已结案")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_load_state("load")
            await page.screenshot(path=tmp_path / "2-closed.png", full_page=True)
            assert "state=" in page.url
            assert await rows.count() == 1
            assert await page.get_attribute("a.case-link", "href") == f"/console/cases/{closed_id}"

            await page.select_option("#state", "")
            await page.select_option("#officer", "13010006")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_load_state("load")
            assert await rows.count() == 1
            await page.select_option("#officer", "13010004")
            await page.click("form.filters button[type=submit]")
            await page.wait_for_load_state("load")
            assert "没有符合条件的案件" in await page.inner_text("main")

            # Keyboard: focus the case link and follow it with Enter.
            await page.goto(f"{live_server.url}/console/cases?officer=13010006")
            await page.focus("a.case-link")
            await page.keyboard.press("Enter")
            await page.wait_for_url(f"{live_server.url}/console/cases/{case_id}")
            await page.screenshot(path=tmp_path / "3-case.png", full_page=True)
            steps = page.locator("#timeline li")
            assert await steps.count() == 6
            kinds = [await steps.nth(i).get_attribute("data-kind") for i in range(6)]
            assert kinds == [
                "case_opened",
                "party_identified",
                "credential_shown",
                "inspection_recorded",
                "inspection_recorded",
                "evidence_attached",
            ]
            timeline = await page.inner_text("#timeline")
            assert "来自 2 台执法终端" in timeline
            assert "一号终端" in timeline and "二号终端" in timeline
            assert "扣押点歌设备 6 台" in timeline and "刘洋（13010006）" in timeline
            flaws = await page.inner_text("#flaws")
            assert "扣押未关联全过程音像记录" in flaws and "刘洋" in flaws
            assert "尚未向当事人送达权利告知书" in await page.inner_text("#rejected")
            evidence = await page.inner_text("#evidence")
            assert "扣押过程录像" in evidence and "尚未上传" in evidence
            people = await page.inner_text("main")
            assert "张三" in people and "张明（13010001）" in people
            assert "作出处理决定（立案之日起 90 日）" in people
        finally:
            await browser.close()
    assert (tmp_path / "3-case.png").stat().st_size > 10_000


async def test_case_pages_refuse_who_may_not_read_them(seeded, client, officer_terminal):
    """No session: to the login page, back here after it; an officer's token: 403; a reviewer
    reads only his own agency's cases."""
    anonymous = await client.get("/console/cases?state=已结案")
    assert anonymous.status_code == 303
    location = urlsplit(anonymous.headers["location"])
    assert location.path == "/console/login"
    assert parse_qs(location.query)["next"] == [f"/console/cases?{urlencode({'state': '已结案'})}"]
    officer = await client.get(
        "/console/cases", headers=officer_terminal.headers("GET", "/console/cases")
    )
    assert officer.status_code == 403
    assert "text/html" in officer.headers["content-type"]

    reviewer = await login(client, "reviewer")
    token = reviewer["Authorization"].split()[1]
    as_cookie = {"cookie": f"{CONSOLE_COOKIE}={token}"}
    assert (await client.get("/console/cases", headers=as_cookie)).status_code == 200
    other = await client.get("/console/cases?agency=other", headers=as_cookie)
    assert other.status_code == 403 and "只能查看本执法主体的案件" in other.text
    unknown = await client.get(f"/console/cases/{uuid.uuid4()}", headers=as_cookie)
    assert unknown.status_code == 404 and "没有该案件" in unknown.text
    bad = await client.get("/console/cases?state=whatever", headers=as_cookie)
    assert bad.status_code == 422 and "筛选条件无效" in bad.text
