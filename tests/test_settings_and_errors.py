"""One settings object (file < environment < overrides) and one problem+json shape for every error."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from server.core.settings import load_settings
from tests.conftest import ROOT


def test_defaults_are_the_embedded_setup():
    settings = load_settings(environ={})
    assert settings.port == 8000
    assert settings.resolved_database_url.endswith("/var/zhifa.db")
    assert settings.resolved_database_url.startswith("sqlite+aiosqlite:///")
    assert str(settings.resolved_media_dir) == "var/media"


def test_file_then_environment(tmp_path):
    config = tmp_path / "zhifa.toml"
    config.write_text(
        'port = 9100\npublic_base_url = "https://zhifa.example.gov.cn"\n', encoding="utf-8"
    )
    from_file = load_settings(environ={"ZHIFA_CONFIG": str(config)})
    assert from_file.port == 9100
    assert from_file.resolved_public_base_url == "https://zhifa.example.gov.cn"
    env = {
        "ZHIFA_CONFIG": str(config),
        "ZHIFA_PORT": "9200",
        "ZHIFA_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1/zhifa",
    }
    both = load_settings(environ=env)
    assert both.port == 9200
    assert not both.is_sqlite


def test_unknown_or_bad_values_are_refused(tmp_path):
    config = tmp_path / "zhifa.toml"
    config.write_text("prot = 1\n", encoding="utf-8")
    with pytest.raises(Exception, match="prot"):
        load_settings(environ={"ZHIFA_CONFIG": str(config)})
    with pytest.raises(Exception, match="port"):
        load_settings(environ={"ZHIFA_PORT": "eighty"})


@pytest.mark.parametrize(
    ("setting", "seen"),
    [("", "203.0.113.9"), ("192.0.2.7", "127.0.0.1"), ("192.0.2.7,127.0.0.1", "203.0.113.9")],
)
async def test_serve_trusts_x_forwarded_for_from_the_configured_balancers(
    setting, seen, monkeypatch
):
    """`zhifa serve` behind a load balancer: the client is whom the balancer's X-Forwarded-For
    names, and only from the configured addresses (ZHIFA_FORWARDED_ALLOW_IPS). Empty: uvicorn's
    default, the local host only (FORWARDED_ALLOW_IPS unset here); the test connects from it."""
    import httpx
    import uvicorn

    from server.app.cli import uvicorn_options
    from tests.conftest import free_port

    async def client_address(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": scope["client"][0].encode()})

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    settings = load_settings(environ={"ZHIFA_FORWARDED_ALLOW_IPS": setting}, port=free_port())
    options = uvicorn_options(settings) | {"log_level": "warning", "lifespan": "off"}
    server = uvicorn.Server(uvicorn.Config(client_address, **options))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            answer = await client.get(
                f"http://127.0.0.1:{settings.port}/", headers={"X-Forwarded-For": "203.0.113.9"}
            )
        assert answer.text == seen
    finally:
        server.should_exit = True
        await serving


async def test_unknown_route_and_bad_query_are_problem_json(client, seeded):
    missing = await client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert missing.json()["code"] == "not_found"
    headers = {
        "Authorization": (
            await client.post(
                "/api/auth/login", json={"username": "admin", "password": "zhifa-demo-2026"}
            )
        ).json()["access_token"]
    }
    headers["Authorization"] = f"Bearer {headers['Authorization']}"
    bad = await client.get(
        "/api/calendar/deadline", params={"start": "not-a-date", "working_days": 0}, headers=headers
    )
    assert bad.status_code == 400
    body = bad.json()
    assert body["code"] == "bad_request"
    assert body["type"] == "urn:zhifa:problem:bad_request"
    assert body["errors"]


async def test_ready_reports_unmigrated_database(settings):
    """A server pointed at an empty database is alive but not ready."""
    import httpx

    from server.app.main import create_app

    app = create_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t.local"
    ) as client:
        assert (await client.get("/health")).status_code == 200
        ready = await client.get("/ready")
    await app.state.context.close()
    assert ready.status_code == 503
    assert ready.json()["code"] == "service_unavailable"
    assert ready.headers["retry-after"] == "5"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.app.cli", *args],
        cwd=ROOT,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_calendar_cli_prints_deadlines_and_loads_year_files(migrated):
    env = {
        "ZHIFA_DATABASE_URL": migrated.resolved_database_url,
        "ZHIFA_DATA_DIR": migrated.data_dir,
    }
    assert _cli("calendar", "deadline", "2025-09-26", "7", env=env).stdout.strip() == "2025-10-13"
    assert _cli("calendar", "deadline", "2026-03-07", "7", env=env).stdout.strip() == "2026-03-17"
    flagged = _cli("calendar", "deadline", "2026-12-24", "7", "--json", env=env)
    assert flagged.stdout.strip() == (
        '{"start":"2026-12-24","working_days":7,"deadline":"2027-01-02","fallback":true}'
    )
    loaded = _cli("calendar", "load", str(ROOT / "tests/data/calendar/2027.toml"), env=env)
    assert loaded.returncode == 0, loaded.stderr
    exact = _cli("calendar", "deadline", "2026-12-24", "7", "--json", env=env)
    assert '"fallback":false' in exact.stdout
    assert '"deadline":"2027-01-05"' in exact.stdout
    broken = ROOT / "tests/data/calendar/2027.toml"
    bad = _cli("calendar", "load", str(broken.with_name("missing.toml")), env=env)
    assert bad.returncode != 0
