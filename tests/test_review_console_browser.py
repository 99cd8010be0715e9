"""The reviewer's console in headless Chromium against a live server (real HTTP, real database).

A reviewer logs in, opens a case from the queue with the keyboard, plays the evidence, fills the
checklist and returns the case with a problem; the officer corrects the decision and resubmits
from his terminal; the reviewer approves round 2. Screenshots of each step are saved in the test's
tmp directory (``pytest --basetemp DIR`` keeps them somewhere known).
"""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import av
import httpx
import numpy as np
import pytest

from review import services
from review.sources import RecordedCaseFiles
from server.app import demo
from server.app.context import AppContext
from server.core.settings import Settings
from tests._review_cases import case_file, changed, demo_agency_id, proposal
from tests.conftest import TerminalIdentity, enroll_and_login

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CATALOG = """
version = "2026-1"
title = "示范市文化市场综合行政执法支队重大执法决定法制审核目录清单"
responsible_person = "支队长 刘强"

[[rules]]
id = "fine-org"
kind = "fine"
party = "organisation"
min_yuan = 50000
label = "对法人或者其他组织处 5 万元以上罚款"
basis = "示范市文化市场综合行政执法支队重大执法决定法制审核目录清单 第一项"

[[rules]]
id = "heavy"
kind = "penalty"
penalties = ["降低资质等级", "吊销许可证件", "责令停产停业", "责令关闭", "限制从业"]
"""
BENCHMARKS = """
version = "2026-1"
title = "示范市文化市场行政处罚裁量基准"

[[rows]]
violation = "WH-CF-001"
name = "擅自从事娱乐场所经营活动"
circumstance = "较重"
penalties = ["罚款", "没收违法所得", "没收非法财物"]
fine_min_yuan = 50000
fine_max_yuan = 80000
basis = "《娱乐场所管理条例》第四十一条"
"""
T = TypeVar("T")
PROBLEM = "较重情节罚款幅度为 5–8 万元，拟罚款 12 万元超出幅度"


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("ZHIFA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ZHIFA_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt-get install chromium)")
    pytest.skip(f"{CHROMIUM} is missing: the console's browser test needs Debian's chromium")


def _run(work: Coroutine[Any, Any, T]) -> T:
    """Run async set-up from the test; in a thread, since Playwright's sync API owns this one's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result()


def _access_key(page: Any, letter: str) -> None:
    """Alt+letter as a real keyboard sends it. Chromium's own access-key handling needs the key's
    unmodified text, which Playwright's keyboard leaves out, so the events go through CDP."""
    session = page.context.new_cdp_session(page)
    key = {
        "key": letter,
        "code": f"Key{letter.upper()}",
        "windowsVirtualKeyCode": ord(letter.upper()),
    }
    typed = {"text": letter, "unmodifiedText": letter}
    try:
        session.send(
            "Input.dispatchKeyEvent", {"type": "rawKeyDown", "modifiers": 1, **key, **typed}
        )
        session.send("Input.dispatchKeyEvent", {"type": "char", "modifiers": 1, **key, **typed})
        session.send("Input.dispatchKeyEvent", {"type": "keyUp", "modifiers": 1, **key})
    finally:
        session.detach()


class _QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def media_server(tmp_path: Path) -> Iterator[str]:
    """Stands in for the media area's playback: one recording, encoded here with PyAV."""
    folder = tmp_path / "media"
    folder.mkdir()
    container = av.open(str(folder / "ev-1.mp4"), "w", format="mp4")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    for i in range(30):
        frame = np.full((240, 320, 3), (40, 60, 90), np.uint8)
        frame[90:150, i * 9 : i * 9 + 50] = (240, 200, 60)
        for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietFiles, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def _in_database(settings: Settings, work: Any) -> Any:
    """One transaction in this process on the live server's database, as the case area does it."""
    context = AppContext(settings)
    try:
        keyring = await context.keyring()  # before the transaction: SQLite has one writer
        async with context.database.transaction() as session:
            return await work(session, keyring, context.clock.now())
    finally:
        await context.close()


async def _prepare(
    settings: Settings, url: str, evidence_url: str
) -> tuple[uuid.UUID, TerminalIdentity]:
    """The demo agency with its catalog and benchmarks, a proposed decision routed as the case
    area does it, and officer 张明's terminal, from which he submits the case."""
    context = AppContext(settings)
    try:
        await demo.seed(context)
    finally:
        await context.close()
    async with httpx.AsyncClient(base_url=url) as client:
        token = await client.post(
            "/api/auth/login", json={"username": "admin", "password": demo.DEMO_PASSWORD}
        )
        admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
        for kind, text in (("catalog", CATALOG), ("benchmarks", BENCHMARKS)):
            loaded = await client.post(
                f"/api/review/rule-files/{kind}", json={"text": text}, headers=admin
            )
            assert loaded.status_code == 201, loaded.text

        async def propose(session: Any, keyring: Any, now: Any) -> uuid.UUID:
            agency_id = await demo_agency_id(session)
            case = case_file(
                agency_id,
                evidence_url=evidence_url,
                proposal=proposal(
                    penalties=["罚款", "没收违法所得"],
                    fine_yuan=Decimal(120000),
                    confiscation_yuan=Decimal(8600),
                    circumstance="较重",
                ),
            )
            await services.route_proposal(session, keyring, case, now=now)
            return case.case_id

        case_id = await _in_database(settings, propose)
        code = await client.post("/api/terminals/enrollment-codes", json={}, headers=admin)
        terminal = await enroll_and_login(client, code.json()["enrollment_code"], "13010001")
        await _submit(client, terminal, case_id, "请审核")
    return case_id, terminal


async def _submit(
    client: httpx.AsyncClient, terminal: TerminalIdentity, case_id: uuid.UUID, note: str
) -> None:
    path = f"/api/review/cases/{case_id}/submissions"
    sent = await client.post(path, json={"note": note}, headers=terminal.headers("POST", path))
    assert sent.status_code == 201, sent.text


async def _correct_and_resubmit(
    settings: Settings, url: str, terminal: TerminalIdentity, case_id: uuid.UUID
) -> None:
    """The case area takes the corrected decision; the officer resubmits from his terminal."""

    async def correct(session: Any, keyring: Any, now: Any) -> None:
        case = await RecordedCaseFiles().case_file(session, case_id)
        fixed = changed(case, fine_yuan=Decimal(80000))
        await services.route_proposal(session, keyring, fixed, now=now)

    await _in_database(settings, correct)
    async with httpx.AsyncClient(base_url=url) as client:
        await _submit(client, terminal, case_id, "罚款调整为 8 万元，符合较重情节的幅度")


async def _outcome(url: str, case_id: uuid.UUID) -> tuple[dict, dict]:
    async with httpx.AsyncClient(base_url=url) as client:
        token = await client.post(
            "/api/auth/login", json={"username": "reviewer", "password": demo.DEMO_PASSWORD}
        )
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        view = await client.get(f"/api/review/cases/{case_id}", headers=headers)
        gate = await client.get(f"/api/review/cases/{case_id}/gate", headers=headers)
        return view.json(), gate.json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reviewer_returns_then_approves_in_the_browser(live_server, media_server, tmp_path):
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    url = live_server.url
    case_id, terminal = _run(_prepare(live_server.settings, url, f"{media_server}/ev-1.mp4"))
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="zh-CN")
            page.goto(f"{url}/review")
            expect(page).to_have_url(f"{url}/console/login?next=/review")
            page.fill("#username", "reviewer")
            page.fill("#password", demo.DEMO_PASSWORD)
            page.screenshot(path=shots / "01-login.png")
            page.keyboard.press("Enter")
            expect(page.locator("h1")).to_have_text("审核队列")
            row = page.locator("tbody tr").first
            expect(row).to_contain_text("罚款 120,000 元")
            expect(row).to_contain_text("超出裁量基准")
            expect(row).to_contain_text("剩 10 个工作日")
            page.screenshot(path=shots / "02-queue.png")

            # From the queue with the keyboard: J selects the first case, Enter opens it.
            page.keyboard.press("j")
            expect(page.locator("a.case-link").first).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("h1")).to_contain_text("星光娱乐")
            expect(page.locator("#why")).to_contain_text("对法人或者其他组织处 5 万元以上罚款")
            expect(page.locator("#discretion")).to_contain_text(
                "超出裁量基准 50,000–80,000 元的幅度"
            )
            _access_key(page, "t")
            expect(page.locator(".notice.ok")).to_have_text("已领取，开始审核")

            # The evidence plays from the source's address once the view is in the ledger.
            video = page.locator("#evidence video")
            video.scroll_into_view_if_needed()
            position = video.evaluate(
                """async (v) => { v.muted = true; await v.play();
                   await new Promise((done) => setTimeout(done, 700)); v.pause(); return v.currentTime; }"""
            )
            assert position > 0.2
            page.screenshot(path=shots / "03-case.png", full_page=True)

            # C goes to the checklist, Y marks every item 符合; the reviewer flips one and explains.
            page.keyboard.press("c")
            expect(page.locator("#checklist input[type=radio]").first).to_be_focused()
            page.keyboard.press("y")
            expect(page.locator("#opinion")).to_be_focused()
            page.check("input[name=answer_discretion][value='存在问题']")
            page.fill("input[name=note_discretion]", PROBLEM)
            page.fill("#opinion", "罚款数额超出裁量基准，退回承办机构调整。")
            page.locator("#checklist .item").nth(6).scroll_into_view_if_needed()
            page.screenshot(path=shots / "04-checklist.png")
            page.click("button[value=problems]")
            expect(page.locator(".notice.ok")).to_contain_text("退回承办机构")
            expect(page.locator("#history")).to_contain_text(PROBLEM)
            page.screenshot(path=shots / "05-returned.png", full_page=True)

            _run(_correct_and_resubmit(live_server.settings, url, terminal, case_id))

            # Round 2 comes straight back to the same reviewer, with round 1 beside the form.
            page.goto(f"{url}/review?scope=mine")
            row = page.locator("tbody tr").first
            expect(row).to_contain_text("第 2 轮")
            expect(row).to_contain_text("罚款 80,000 元")
            page.locator("a.case-link").first.click()
            expect(page.locator(".prev")).to_contain_text(PROBLEM)
            expect(page.locator(".prev")).to_contain_text("罚款调整为 8 万元")
            expect(page.locator("#discretion")).to_contain_text("符合裁量基准")
            page.keyboard.press("y")
            page.fill(
                "#opinion",
                "经审核，该案事实清楚，证据确实充分，程序合法，适用法律正确，裁量适当，同意。",
            )
            page.screenshot(path=shots / "06-round-2.png")
            _access_key(page, "a")
            expect(page.locator(".notice.ok")).to_have_text("已出具同意意见，审核通过")
            page.screenshot(path=shots / "07-approved.png", full_page=True)

            tablet = browser.new_context(viewport={"width": 820, "height": 1180}, locale="zh-CN")
            tablet.add_cookies(page.context.cookies())
            on_tablet = tablet.new_page()
            on_tablet.goto(f"{url}/review/cases/{case_id}")
            expect(on_tablet.locator("h1")).to_contain_text("星光娱乐")
            on_tablet.screenshot(path=shots / "08-tablet.png", full_page=True)
        finally:
            browser.close()

    view, gate = _run(_outcome(url, case_id))
    assert [r["outcome"] for r in view["rounds"]] == ["存在问题", "同意"]
    assert view["rounds"][0]["problems"] == [{"item": "discretion", "text": PROBLEM}]
    assert gate["major"] and gate["approved"]
    assert len(list(shots.iterdir())) == 8
