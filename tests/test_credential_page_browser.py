"""The public verification page in a real headless Chromium at a phone's size (390×844)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from mobile_api.contracts.credential import sign_token, verification_url
from server.app.context import AppContext
from server.core.clock import Clock
from server.core.models import Credential

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def require_browser() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("ZHIFA_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ZHIFA_REQUIRE_BROWSER=1 but {CHROMIUM} is missing (apt package chromium)")
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium package to run this test")


async def live_token(context: AppContext, number: str, issued: dt.datetime) -> str:
    """A code made the way the server makes them, on the live server's real clock."""
    keyring = await context.keyring()
    async with context.database.sessionmaker() as session:
        credential = await session.scalar(select(Credential).where(Credential.number == number))
    return sign_token(
        keyring.active, keyring.active_kid, credential.id, int(issued.timestamp()), 180
    )


async def test_verification_page_on_a_phone(live_server, seeded, context, tmp_path: Path) -> None:
    require_browser()
    from playwright.async_api import async_playwright

    now = Clock().now()
    valid = verification_url(live_server.url, await live_token(context, "13010001", now))
    expired = verification_url(
        live_server.url, await live_token(context, "13010002", now - dt.timedelta(minutes=10))
    )
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(
                viewport={"width": 390, "height": 844},
                device_scale_factor=2,
                locale="zh-CN",
                user_agent=PHONE_UA,
            )
            response = await page.goto(valid)
            assert response is not None and response.status == 200
            await page.wait_for_load_state("load")
            shot = tmp_path / "verify-390x844.png"
            await page.screenshot(path=shot)
            body = await page.inner_text("body")
            for shown in ("执法证件有效", "张明", "13010001", "文化市场、旅游市场", "示范市城东区"):
                assert shown in body, shown
            # The photo came from its own endpoint; nothing overflows the phone's width.
            assert await page.locator("img").evaluate("img => img.naturalWidth") == 240
            assert await page.evaluate("document.documentElement.scrollWidth") <= 390
            # The card and both sections fit on one screen without scrolling.
            assert await page.evaluate("document.documentElement.scrollHeight") <= 844

            response = await page.goto(expired)
            assert response is not None and response.status == 410
            await page.screenshot(path=tmp_path / "expired-390x844.png")
            body = await page.inner_text("body")
            assert "二维码已过期" in body and "李华" not in body
        finally:
            await browser.close()
    assert shot.stat().st_size > 10_000
