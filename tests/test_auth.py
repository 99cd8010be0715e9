"""Logins, enrollment, device-bound officer tokens, refresh rotation: the refusals above all."""

from __future__ import annotations

import datetime as dt

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mobile_api.contracts.device_proof import make_device_proof, public_key_b64
from server.app import demo
from tests.conftest import enroll_and_login, login


def _proof(key, method, path, clock, token=None, **kw):
    return make_device_proof(key, method, path, token, now=clock.now().timestamp(), **kw)


async def test_staff_login_and_wrong_password(client, seeded):
    assert (await login(client, "reviewer"))["Authorization"].startswith("Bearer ")
    wrong = await client.post(
        "/api/auth/login", json={"username": "reviewer", "password": "nope-nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "用户名或密码不正确"
    unknown = await client.post(
        "/api/auth/login", json={"username": "ghost", "password": "whatever1"}
    )
    assert unknown.json()["detail"] == "用户名或密码不正确"  # no hint that the user does not exist
    empty = await client.post("/api/auth/login", json={"username": "", "password": ""})
    assert empty.status_code == 400
    assert empty.headers["content-type"].startswith("application/problem+json")


async def test_access_tokens_expire(client, clock, seeded, context):
    headers = await login(client, "admin")
    clock.advance(dt.timedelta(seconds=context.settings.access_token_ttl_seconds + 1))
    expired = await client.get(
        "/api/admin/officers", params={"agency_code": "demo"}, headers=headers
    )
    assert expired.status_code == 401
    assert expired.json()["reason"] == "token_expired"


async def test_enrollment_code_is_single_use_and_needs_the_key(client, clock, seeded):
    key = Ed25519PrivateKey.generate()
    other = Ed25519PrivateKey.generate()
    body = {
        "enrollment_code": seeded.enrollment_code,
        "name": "一号终端",
        "public_key": public_key_b64(key),
    }

    unsigned = await client.post("/api/terminals/enroll", json=body)
    assert unsigned.status_code == 401
    signed_by_other = await client.post(
        "/api/terminals/enroll",
        json=body,
        headers={"DPoP": _proof(other, "POST", "/api/terminals/enroll", clock)},
    )
    assert signed_by_other.status_code == 401

    ok = await client.post(
        "/api/terminals/enroll",
        json=body,
        headers={"DPoP": _proof(key, "POST", "/api/terminals/enroll", clock)},
    )
    assert ok.status_code == 201, ok.text
    reused = await client.post(
        "/api/terminals/enroll",
        json=body | {"public_key": public_key_b64(other)},
        headers={"DPoP": _proof(other, "POST", "/api/terminals/enroll", clock)},
    )
    assert reused.status_code == 401
    assert reused.json()["reason"] == "enrollment_code_invalid"


async def test_officer_token_works_only_with_its_terminal_key(client, clock, officer_terminal):
    path = "/api/calendar/deadline"
    params = {"start": "2025-09-26", "working_days": 7}
    good = await client.get(path, params=params, headers=officer_terminal.headers("GET", path))
    assert good.status_code == 200, good.text
    assert good.json()["deadline"] == "2025-10-13"

    token = officer_terminal.access_token
    bearer_only = await client.get(
        path, params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert bearer_only.status_code == 401
    assert bearer_only.json()["reason"] == "device_proof_missing"

    thief = Ed25519PrivateKey.generate()
    stolen = await client.get(
        path,
        params=params,
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": _proof(thief, "GET", path, clock, token),
        },
    )
    assert stolen.status_code == 401
    assert stolen.json()["reason"] == "device_proof_mismatch"

    wrong_path = await client.get(
        path,
        params=params,
        headers={
            "Authorization": f"DPoP {token}",
            "DPoP": _proof(officer_terminal.key, "GET", "/api/other", clock, token),
        },
    )
    assert wrong_path.status_code == 401

    stale = make_device_proof(
        officer_terminal.key, "GET", path, token, now=clock.now().timestamp() - 3600
    )
    old = await client.get(
        path, params=params, headers={"Authorization": f"DPoP {token}", "DPoP": stale}
    )
    assert old.status_code == 401


async def test_officer_login_needs_an_enrolled_terminal_and_an_officer(client, clock, seeded):
    unknown_key = Ed25519PrivateKey.generate()
    not_enrolled = await client.post(
        "/api/auth/terminal-login",
        json={"username": "13010001", "password": demo.DEMO_PASSWORD},
        headers={"DPoP": _proof(unknown_key, "POST", "/api/auth/terminal-login", clock)},
    )
    assert not_enrolled.status_code == 401
    assert not_enrolled.json()["reason"] == "terminal_unknown"

    terminal = await enroll_and_login(
        client, seeded.enrollment_code, "13010002", now=lambda: clock.now().timestamp()
    )
    reviewer = await client.post(
        "/api/auth/terminal-login",
        json={"username": "reviewer", "password": demo.DEMO_PASSWORD},
        headers={"DPoP": _proof(terminal.key, "POST", "/api/auth/terminal-login", clock)},
    )
    assert reviewer.status_code == 403


async def test_refresh_rotates_and_is_bound_to_the_terminal(client, clock, officer_terminal):
    refresh_token = officer_terminal.tokens["refresh_token"]
    without_device = await client.post("/api/auth/refresh", json={"refresh_token": refresh_token})
    assert without_device.status_code == 401
    assert without_device.json()["reason"] == "device_mismatch"

    rotated = await client.post(
        "/api/auth/refresh",
        json={"refresh_token": refresh_token},
        headers={"DPoP": _proof(officer_terminal.key, "POST", "/api/auth/refresh", clock)},
    )
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["refresh_token"] != refresh_token
    replay = await client.post(
        "/api/auth/refresh",
        json={"refresh_token": refresh_token},
        headers={"DPoP": _proof(officer_terminal.key, "POST", "/api/auth/refresh", clock)},
    )
    assert replay.status_code == 401


async def test_staff_refresh_and_logout(client, seeded):
    tokens = (
        await client.post(
            "/api/auth/login", json={"username": "admin", "password": demo.DEMO_PASSWORD}
        )
    ).json()
    refreshed = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    new = refreshed.json()
    headers = {"Authorization": f"Bearer {new['access_token']}"}
    out = await client.post(
        "/api/auth/logout", json={"refresh_token": new["refresh_token"]}, headers=headers
    )
    assert out.status_code == 200
    after = await client.post("/api/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert after.status_code == 401


async def test_enrollment_codes_only_for_own_agency(client, seeded):
    admin = await login(client, "admin")
    created = await client.post("/api/terminals/enrollment-codes", json={}, headers=admin)
    assert created.status_code == 201
    assert len(created.json()["enrollment_code"]) == 14
    reviewer = await client.post(
        "/api/terminals/enrollment-codes", json={}, headers=await login(client, "reviewer")
    )
    assert reviewer.status_code == 403
    missing = await client.post(
        "/api/terminals/enrollment-codes", json={"agency_code": "nowhere"}, headers=admin
    )
    assert missing.status_code == 404


async def test_passwords_are_stored_with_argon2(context, seeded):
    from sqlalchemy import select

    from server.core.models import StaffUser

    async with context.database.sessionmaker() as session:
        hashes = list(await session.scalars(select(StaffUser.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)
