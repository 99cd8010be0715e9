from __future__ import annotations

import httpx

from tests.conftest import login


async def test_health_ready_login(client, seeded):
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    headers = await login(client, "admin")
    officers = await client.get(
        "/api/admin/officers", params={"agency_code": "demo"}, headers=headers
    )
    assert officers.status_code == 200
    assert len(officers.json()) == 6


def test_live_server(live_server):
    assert httpx.get(f"{live_server.url}/health").json() == {"status": "ok"}


async def test_officer_terminal(client, officer_terminal):
    me = await client.get(
        "/api/ledger/head", headers=officer_terminal.headers("GET", "/api/ledger/head")
    )
    assert me.status_code == 200
