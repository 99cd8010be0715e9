"""The public portal in a real browser: headless Chromium, JavaScript switched off, against the
server over real HTTP (uvicorn), on a desktop and a phone screen. Screenshots land in the test's
temporary directory (or in $ZHIFA_SCREENSHOTS when set)."""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from pathlib import Path

import pytest

from disclosure.schemas import DecisionIssued, Person
from server.core.clock import Clock
from tests._disclosure_sim import Simulation

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 390, "height": 844}


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = (
        f"{CHROMIUM} is not installed (Debian package chromium), so the browser test cannot run"
    )
    if os.environ.get("ZHIFA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ZHIFA_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def _shot_dir(tmp_path: Path) -> Path:
    wanted = os.environ.get("ZHIFA_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def _publish_some(migrated) -> DecisionIssued:
    """Three weeks of decisions up to today, and one we will look for."""
    today = Clock().today()
    sim = Simulation(migrated, start=today - dt.timedelta(days=21), per_day=1.5, seed=3)
    await sim.setup()
    try:
        await sim.run(today - dt.timedelta(days=1))
        sim.clock.set(Clock().now())
        event = DecisionIssued(
            case_id=uuid.uuid4(),
            agency_id=sim.agencies["demo"].id,
            decision_number=f"示文罚〔{today.year}〕网吧1号",
            decision_date=today,
            served_on=today,
            act_kind="行政处罚",
            category="文化市场",
            subject=Person(name="欧阳娜娜"),
            conclusion="对欧阳娜娜罚款人民币五千元，没收违法所得",
            outcome="罚款",
            basis="《互联网上网服务营业场所管理条例》第二十七条",
            facts=(
                "当事人欧阳娜娜（手机13912345678）在示范市城东区人民路12号经营网吧，"
                "未取得《网络文化经营许可证》，违法所得人民币八百元。"
            ),
        )
        await sim.record(event)
        await sim.run_jobs()
        return event
    finally:
        await sim.close()


async def test_search_and_a_decision_page_in_chromium(live_server, migrated, tmp_path):
    _require_browser()
    from playwright.async_api import async_playwright

    event = await _publish_some(migrated)
    shots = _shot_dir(tmp_path)
    url = live_server.url
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            desktop = await browser.new_context(
                viewport={"width": 1280, "height": 900}, java_script_enabled=False, locale="zh-CN"
            )
            page = await desktop.new_page()
            await page.goto(f"{url}/gongshi")
            assert await page.title() == "首页 · 行政执法公示"
            await page.screenshot(path=str(shots / "home-desktop.png"), full_page=True)
            # A word search through the form, filtered by kind: a plain GET form, no script.
            await page.fill("#q", "经营网吧")
            await page.select_option("#kind", "行政处罚")
            await page.click("button[type=submit]")
            await page.wait_for_url(re.compile(r".*/gongshi/decisions\?.*q=.*"))
            results = page.locator("ul.results li")
            assert await results.count() >= 1
            hit = results.filter(has_text=event.decision_number)
            assert await hit.count() == 1
            text = await hit.inner_text()
            assert "欧阳某" in text and "欧阳娜娜" not in text
            await page.screenshot(path=str(shots / "search-desktop.png"), full_page=True)
            # A two-character word cannot use the trigram index; it still finds the decision.
            await page.fill("#q", "网吧")
            await page.click("button[type=submit]")
            await page.wait_for_url(re.compile(r".*q=%E7%BD%91%E5%90%A7.*"))
            assert await page.locator("ul.results li", has_text=event.decision_number).count() == 1
            await page.click(f"text={event.decision_number}")
            await page.wait_for_url(re.compile(r".*/gongshi/decisions/\d+$"))
            decision_url = page.url
            assert await page.locator("h1").inner_text() == event.decision_number
            fields = await page.locator("dl.fields").inner_text()
            assert "欧阳某" in fields and "欧阳娜娜" not in fields
            assert "13912345678" not in fields and "人民路12号" not in fields
            assert "《网络文化经营许可证》" in fields and "（已隐去）" in fields
            await page.screenshot(path=str(shots / "decision-desktop.png"), full_page=True)
            # Desktop: labels and values side by side.
            label = await page.locator("dl.fields dt", has_text="执法对象").bounding_box()
            value = await page.locator("dl.fields dd", has_text="欧阳某").first.bounding_box()
            assert label and value and value["x"] > label["x"] + label["width"]

            phone = await browser.new_context(
                viewport=PHONE,
                is_mobile=True,
                has_touch=True,
                device_scale_factor=2,
                java_script_enabled=False,
                locale="zh-CN",
            )
            page = await phone.new_page()
            await page.goto(decision_url)
            await page.screenshot(path=str(shots / "decision-phone.png"), full_page=True)
            # Phone: one column, nothing wider than the screen.
            label = await page.locator("dl.fields dt", has_text="执法对象").bounding_box()
            value = await page.locator("dl.fields dd", has_text="欧阳某").first.bounding_box()
            assert label and value and value["y"] >= label["y"] + label["height"]
            for selector in ("header", "main", "dl.fields"):
                box = await page.locator(selector).first.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
            await page.goto(f"{url}/gongshi/decisions?q=网吧")
            await page.screenshot(path=str(shots / "search-phone.png"), full_page=True)
            await page.goto(f"{url}/gongshi/agencies/demo/officers")
            assert await page.locator("tbody tr").count() == 6
            # The roster stacks into cards on a phone: the status is on screen, not off to the side.
            status = (
                await page.locator("tbody tr").first.locator("td[data-label=状态]").bounding_box()
            )
            assert status and status["x"] + status["width"] <= PHONE["width"]
            await page.screenshot(path=str(shots / "officers-phone.png"), full_page=True)
        finally:
            await browser.close()
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "decision-desktop.png",
        "decision-phone.png",
        "home-desktop.png",
        "officers-phone.png",
        "search-desktop.png",
        "search-phone.png",
    ]
    print(f"screenshots: {shots}")
