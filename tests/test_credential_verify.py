"""亮证 on the server: QR from the officer's terminal, decoded with zxing-cpp, followed over real HTTP;
status actions, status lists, refusals, rate limits and roles."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re

import httpx
import msgspec
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image
from sqlalchemy import func, select

from mobile_api.contracts.credential import (
    CredentialCache,
    Reason,
    TokenBatch,
    b64url,
    b64url_decode,
    check_offline,
    parse_token,
    public_keys,
    sign_token,
    verify_status_list,
)
from mobile_api.credential_models import CredentialScan, ScanOutcome
from mobile_api.credentials import services, verification
from server.app.context import AppContext
from server.core import accounts
from server.core.keys import rotate_signing_key
from server.core.models import Agency, Credential, LedgerEntry, Role
from tests._case_events import Writer, push_ok
from tests.conftest import enroll_and_login, login

PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36 MicroMessenger/8.0.50"
)
JSON = {"Accept": "application/json"}


async def credential_of(context: AppContext, number: str) -> Credential:
    async with context.database.sessionmaker() as session:
        return await session.scalar(select(Credential).where(Credential.number == number))


async def make_token(
    context: AppContext, number: str, issued: dt.datetime | None = None, lifetime: int = 180
) -> str:
    keyring = await context.keyring()
    credential = await credential_of(context, number)
    issued_at = int((issued or context.clock.now()).timestamp())
    return sign_token(keyring.active, keyring.active_kid, credential.id, issued_at, lifetime)


async def scans(context: AppContext) -> list[CredentialScan]:
    async with context.database.sessionmaker() as session:
        return list(
            await session.scalars(select(CredentialScan).order_by(CredentialScan.scanned_at))
        )


async def test_scan_the_terminal_qr_over_real_http(live_server, seeded, context):
    """Terminal → PNG → zxing-cpp → the party's phone follows the URL → the admin revokes →
    the very next request says 吊销; the signed status list says so too."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as api:
        # The seeded code was made on the test's frozen date; the live server runs on real time.
        code = await api.post(
            "/api/terminals/enrollment-codes", json={}, headers=await login(api, "admin")
        )
        terminal = await enroll_and_login(api, code.json()["enrollment_code"], "13010001")
        png = await api.get(
            "/api/credentials/me/qr.png",
            headers=terminal.headers("GET", "/api/credentials/me/qr.png"),
        )
        assert png.status_code == 200, png.text
        assert png.headers["content-type"] == "image/png"
        assert png.headers["cache-control"] == "no-store"
        decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.content)))
        assert len(decoded) == 1
        url = decoded[0].text
        assert url.startswith(f"{live_server.url}/v/")
        claims, _, _ = parse_token(url.rsplit("/", 1)[1])
        assert claims.lifetime == 180 and claims.issued_at % 30 == 0

        svg = await api.get(
            "/api/credentials/me/qr.svg",
            headers=terminal.headers("GET", "/api/credentials/me/qr.svg"),
        )
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        assert svg.content.startswith(b"<svg")
        text = await api.get(
            "/api/credentials/me/qr.txt",
            headers=terminal.headers("GET", "/api/credentials/me/qr.txt"),
        )
        assert text.status_code == 200 and "█" in text.text
        assert text.text.rstrip().splitlines()[-1].startswith(f"{live_server.url}/v/")

    async with httpx.AsyncClient(timeout=10, headers={"User-Agent": PHONE}) as phone:
        page = await phone.get(url)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store"
        assert "script-src" not in page.headers["content-security-policy"]
        html = page.text
        for shown in (
            "张明",
            "13010001",
            "示范市文化市场综合行政执法支队",
            "一大队",
            "文化市场、旅游市场",
            "示范市城东区",
            "2024-03-01 至 2029-02-28",
            "执法证件有效",
            "二维码生成",
        ):
            assert shown in html, shown
        assert "<script" not in html
        assert len(page.content) < 8_000  # one small request on a slow network
        photo_src = re.search(r'<img src="([^"]+)"', html).group(1)
        photo = await phone.get(f"{live_server.url}{photo_src}")
        assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"
        assert photo.headers["cache-control"].startswith("private, max-age=")
        again = await phone.get(
            f"{live_server.url}{photo_src}", headers={"If-None-Match": photo.headers["etag"]}
        )
        assert again.status_code == 304

        as_json = await phone.get(url, headers=JSON)
        assert as_json.status_code == 200
        body = as_json.json()
        assert body["status"] == "有效" and body["valid"] is True and body["genuine"] is True
        assert body["name"] == "张明" and body["credential_number"] == "13010001"
        assert body["categories"] == ["文化市场", "旅游市场"] and body["regions"] == [
            "示范市城东区"
        ]
        assert body["photo_url"] == photo_src
        assert dt.datetime.fromisoformat(body["code_issued_at"]).timestamp() == claims.issued_at

    async with httpx.AsyncClient(base_url=live_server.url, timeout=10) as admin_api:
        headers = await login(admin_api, "admin")
        status_url = "/api/credentials/status-lists/demo"
        before = await admin_api.get(status_url)
        assert before.status_code == 200
        assert before.headers["content-type"].startswith("application/statuslist+jwt")
        assert before.headers["cache-control"] == "public, no-cache"
        unchanged = await admin_api.get(
            status_url, headers={"If-None-Match": before.headers["etag"]}
        )
        assert unchanged.status_code == 304
        revoked = await admin_api.post(
            "/api/admin/credentials/13010001/status",
            json={"action": "revoke", "reason": "违法违纪被依法吊销执法证"},
            headers=headers,
        )
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "吊销"

        async with httpx.AsyncClient(timeout=10, headers={"User-Agent": PHONE}) as phone:
            page = await phone.get(url)
            assert page.status_code == 200
            assert "执法证件已被吊销" in page.text and "不能用于执法" in page.text
            assert (await phone.get(url, headers=JSON)).json()["status"] == "吊销"

        after = await admin_api.get(status_url, headers={"If-None-Match": before.headers["etag"]})
        assert after.status_code == 200 and after.headers["etag"] != before.headers["etag"]
        jwks = (await admin_api.get("/.well-known/jwks.json")).json()
        credential = await credential_of(context, "13010001")
        verified = verify_status_list(after.text, public_keys(jwks))
        assert verified.status(credential.status_index) == "吊销"
        assert (
            verify_status_list(before.text, public_keys(jwks)).status(credential.status_index)
            == "有效"
        )

    recorded = await scans(context)
    assert [s.outcome for s in recorded] == [ScanOutcome.VALID] * 4
    assert {s.credential_id for s in recorded} == {credential.id}
    assert {s.client_network for s in recorded} == {"127.0.0.0/24"}
    assert {s.client_family for s in recorded} == {"wechat/android"}


async def check_token_batch(client, officer_terminal, context, clock):
    path = "/api/credentials/me/qr-batch"
    response = await client.get(path, headers=officer_terminal.headers("GET", path))
    assert response.status_code == 200, response.text
    batch = msgspec.json.decode(response.content, type=TokenBatch)
    assert batch.card.number == "13010001" and batch.card.name == "张明"
    assert batch.photo and batch.photo_type == "image/jpeg"
    assert batch.slot_seconds == 30 and batch.lifetime_seconds == 180
    assert len(batch.tokens) == 12 * 3600 // 30
    assert batch.verify_base_url == f"{context.settings.resolved_public_base_url}/v/"
    now = clock.now()
    assert batch.first_slot <= now.timestamp() < batch.first_slot + 30
    # Each slot's code verifies on the public endpoint while it is current.
    for offset in (0, 6 * 3600, 12 * 3600 - 1):
        clock.set(now + dt.timedelta(seconds=offset))
        token = batch.token_at(clock.now())
        assert token is not None
        page = await client.get(f"/v/{token}", headers=JSON)
        assert page.status_code == 200, page.text
        assert page.json()["status"] == "有效"
    clock.set(now + dt.timedelta(hours=12))
    assert batch.token_at(clock.now()) is None
    clock.set(now)


async def check_refused_codes(client, context, clock):
    officer = await make_token(context, "13010002")
    # Expired: lived 180 s from 5 minutes ago.
    expired = await make_token(context, "13010002", issued=clock.now() - dt.timedelta(minutes=5))
    page = await client.get(f"/v/{expired}", headers={"User-Agent": PHONE})
    assert page.status_code == 410
    assert "二维码已过期" in page.text and "刷新" in page.text
    for secret in ("李华", "13010002", "一大队", "文化市场"):
        assert secret not in page.text
    problem = await client.get(f"/v/{expired}", headers=JSON)
    assert problem.status_code == 410
    assert problem.headers["content-type"].startswith("application/problem+json")
    assert problem.json()["code"] == "qr_expired" and "李华" not in problem.text

    raw = bytearray(b64url_decode(officer))
    raw[20] ^= 0x01  # another credential id
    tampered = b64url(bytes(raw))
    keyring = await context.keyring()
    credential = await credential_of(context, "13010002")
    now = int(clock.now().timestamp())
    impostor = sign_token(Ed25519PrivateKey.generate(), keyring.active_kid, credential.id, now, 180)
    foreign = sign_token(Ed25519PrivateKey.generate(), b64url(b"x" * 12), credential.id, now, 180)
    for token in (tampered, impostor, foreign, "abc", officer[:-4]):
        page = await client.get(f"/v/{token}")
        assert page.status_code == 400
        assert "不是真实的电子执法证件" in page.text and "李华" not in page.text
        problem = await client.get(f"/v/{token}", headers=JSON)
        assert problem.status_code == 400 and problem.json()["code"] == "qr_not_genuine"
        photo = await client.get(f"/v/{token}/photo")
        assert photo.status_code == 400
    assert (await client.get(f"/v/{expired}/photo")).status_code == 410

    ahead = await make_token(context, "13010002", issued=clock.now() + dt.timedelta(minutes=10))
    problem = await client.get(f"/v/{ahead}", headers=JSON)
    assert problem.status_code == 400 and problem.json()["code"] == "qr_not_yet_valid"

    outcomes = [s.outcome for s in await scans(context)]
    assert outcomes.count(ScanOutcome.EXPIRED) == 2
    assert outcomes.count(ScanOutcome.NOT_GENUINE) == 10
    assert outcomes.count(ScanOutcome.NOT_YET_VALID) == 1
    # A forged code names no credential in the record; an expired genuine one does.
    for scan in await scans(context):
        assert (scan.credential_id is not None) == (scan.outcome is not ScanOutcome.NOT_GENUINE)


async def check_key_rotation(client, context):
    old = await make_token(context, "13010003")
    async with context.database.transaction() as session:
        new_kid = (await rotate_signing_key(session, context.clock.now())).kid
    # The instance has not reloaded its keys yet: an unknown kid makes it look once.
    new = await make_token(context, "13010003")
    assert parse_token(new)[0].kid == parse_token(old)[0].kid
    await context.keyring(refresh=True)
    new = await make_token(context, "13010003")
    assert parse_token(new)[0].kid == new_kid != parse_token(old)[0].kid
    for token in (old, new):
        response = await client.get(f"/v/{token}", headers=JSON)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "王芳"


async def check_key_from_another_instance(client, context, migrated, clock):
    await client.get("/health")
    other = AppContext(migrated, clock)
    try:
        async with other.database.transaction() as session:
            await rotate_signing_key(session, clock.now())
        token = await make_token(other, "13010004")
    finally:
        await other.close()
    await context.keyring()  # this instance still holds the old key ring
    response = await client.get(f"/v/{token}", headers=JSON)
    assert response.status_code == 200, response.text


async def check_rate_limit(client, context, limit):
    token = await make_token(context, "13010001")
    before = len(await scans(context))
    used = 0
    while (response := await client.get(f"/v/{token}", headers=JSON)).status_code == 200:
        used += 1
        assert used <= limit
    assert response.status_code == 429
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "rate_limited"
    assert "Retry-After" in response.headers
    page = await client.get(f"/v/{token}")
    assert page.status_code == 429 and "请求过于频繁" in page.text
    assert int(page.headers["retry-after"]) > 0
    assert (await client.get(f"/v/{token}/photo")).status_code == 429
    assert len(await scans(context)) == before + used  # refused requests are not scans
    # Another client is not affected; the next window starts afresh.
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=client._transport.app, client=("203.0.113.9", 4000)),
        base_url="http://testserver.local",
    )
    async with other:
        assert (await other.get(f"/v/{token}", headers=JSON)).status_code == 200
    context.clock.advance(dt.timedelta(seconds=60))
    token = await make_token(context, "13010001")
    assert (await client.get(f"/v/{token}", headers=JSON)).status_code == 200
    networks = {s.client_network for s in await scans(context)}
    assert networks == {"127.0.0.0/24", "203.0.113.0/24"}


async def check_concurrent_scans(client, context):
    tokens = [await make_token(context, f"1301000{i}") for i in range(1, 7)]
    responses = await asyncio.gather(
        *(client.get(f"/v/{tokens[i % 6]}", headers=JSON) for i in range(30))
    )
    assert [r.status_code for r in responses] == [200] * 30
    assert {r.json()["credential_number"] for r in responses} == {
        f"1301000{i}" for i in range(1, 7)
    }
    assert len(await scans(context)) == 30


async def check_scan_listener(client, context, terminal):
    """Only scans of an officer with an open case are announced (a 亮证 event of that case)."""
    seen: asyncio.Queue[list[verification.CredentialScanned]] = asyncio.Queue()

    async def listener(scanned: list[verification.CredentialScanned]) -> None:
        await seen.put(scanned)

    async def broken(scanned: list[verification.CredentialScanned]) -> None:
        raise RuntimeError("a failing listener must not reach the party")

    write = Writer("a1b2c3d4", context.clock)
    opened = await push_ok(client, terminal, [write.open()])
    assert opened[0].outcome == "accepted", opened
    verification.scan_listeners.extend([broken, listener])
    try:
        token = await make_token(context, "13010002")
        expired = await make_token(
            context, "13010002", issued=context.clock.now() - dt.timedelta(hours=1)
        )
        no_case = await make_token(context, "13010006")
        assert (await client.get(f"/v/{expired}")).status_code == 410
        assert (await client.get(f"/v/{no_case}", headers=JSON)).status_code == 200
        assert (await client.get(f"/v/{token}", headers={"User-Agent": PHONE})).status_code == 200
        (event,) = await asyncio.wait_for(seen.get(), 5)
    finally:
        verification.scan_listeners.remove(broken)
        verification.scan_listeners.remove(listener)
    credential = await credential_of(context, "13010002")
    assert event.credential_number == "13010002" and event.credential_id == credential.id
    assert event.officer_id == credential.officer_id and event.agency_id == credential.agency_id
    assert event.scanned_at == context.clock.now()
    assert event.client_family == "wechat/android"
    assert event.code_nonce == parse_token(token)[0].nonce
    assert seen.empty()  # neither the expired code nor the officer without a case
    recorded = [
        s
        for s in await scans(context)
        if s.outcome is ScanOutcome.VALID and s.credential_id == credential.id
    ]
    assert event.scan_id in {s.id for s in recorded}
    no_case_officer = await credential_of(context, "13010006")
    assert any(s.credential_id == no_case_officer.id for s in await scans(context))


async def check_status_actions(client, context, clock):
    token = await make_token(context, "13010006")
    url = "/api/admin/credentials/13010006/status"

    headers = await login(client, "admin")

    async def act(action: str, reason: str = "依据《执法证件管理办法》处理") -> httpx.Response:
        return await client.post(url, json={"action": action, "reason": reason}, headers=headers)

    suspended = await act("suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "暂扣"
    assert (await client.get(f"/v/{token}", headers=JSON)).json()["status"] == "暂扣"
    assert "执法证件已被暂扣" in (await client.get(f"/v/{token}")).text
    suspended_at = clock.now()
    clock.advance(dt.timedelta(hours=1))
    headers = await login(client, "admin")  # access tokens live ten minutes
    reinstated = await act("reinstate", "暂扣期满，恢复使用")
    assert reinstated.json()["status"] == "有效"
    token = await make_token(context, "13010006")
    assert (await client.get(f"/v/{token}", headers=JSON)).json()["valid"] is True
    clock.advance(dt.timedelta(hours=1))
    headers = await login(client, "admin")
    assert (await act("cancel", "调离执法岗位")).json()["status"] == "注销"
    refused = await act("reinstate")
    assert refused.status_code == 409
    assert (
        refused.json()["code"] == "credential_status_transition"
        and "注销" in refused.json()["detail"]
    )
    assert (await act("revoke")).status_code == 409
    assert (await act("suspend", "")).status_code == 400
    assert (await act("explode")).status_code == 400

    shown = await client.get("/api/admin/credentials/13010006", headers=headers)
    history = shown.json()["history"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        ("有效", "暂扣"),
        ("暂扣", "有效"),
        ("有效", "注销"),
    ]
    assert history[2]["reason"] == "调离执法岗位"
    assert shown.json()["status_reason"] == "调离执法岗位"
    async with context.database.sessionmaker() as session:
        kinds = list(
            await session.scalars(
                select(LedgerEntry.ref).where(LedgerEntry.kind == "credential.status_changed")
            )
        )
        assert kinds == ["credential:13010006"] * 3
        credential = await session.scalar(select(Credential).where(Credential.number == "13010006"))
        assert (
            await services.status_at(session, credential, suspended_at - dt.timedelta(seconds=1))
            == "有效"
        )
        assert await services.status_at(session, credential, suspended_at) == "暂扣"
        assert (
            await services.status_at(session, credential, suspended_at + dt.timedelta(minutes=90))
            == "有效"
        )
        assert await services.status_at(session, credential, clock.now()) == "注销"
        assert (
            await services.status_at(session, credential, dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
            == "注销"
        )
    assert (await client.get("/api/admin/credentials/99999999", headers=headers)).status_code == 404


async def check_offline_cache(client, officer_terminal, context, clock):
    path = "/api/credentials/cache"
    cache = msgspec.json.decode(
        (await client.get(path, headers=officer_terminal.headers("GET", path))).content,
        type=CredentialCache,
    )
    assert [c.number for c in cache.roster] == [f"1301000{i}" for i in range(1, 7)]
    partner = await make_token(context, "13010002")
    result = check_offline(
        partner, cache, category="文化市场", region="示范市城西区", now=clock.now()
    )
    assert result.verdict == "valid", result.findings
    result = check_offline(
        partner, cache, category="旅游市场", region="示范市城南区", now=clock.now()
    )
    assert [f.code for f in result.findings] == [
        Reason.CATEGORY_NOT_COVERED,
        Reason.REGION_NOT_COVERED,
    ]

    headers = await login(client, "admin")
    response = await client.post(
        "/api/admin/credentials/13010002/status",
        json={"action": "suspend", "reason": "涉嫌违纪，暂扣待查"},
        headers=headers,
    )
    assert response.status_code == 200
    stale = check_offline(
        partner, cache, category="文化市场", region="示范市城西区", now=clock.now()
    )
    assert stale.verdict == "valid"  # the terminal has not synced yet
    cache = msgspec.json.decode(
        (await client.get(path, headers=officer_terminal.headers("GET", path))).content,
        type=CredentialCache,
    )
    result = check_offline(
        partner, cache, category="文化市场", region="示范市城西区", now=clock.now()
    )
    assert [f.code for f in result.findings] == [Reason.CREDENTIAL_SUSPENDED]
    # A day without sync: the same list can no longer confirm anything.
    later = clock.now() + dt.timedelta(hours=25)
    token = sign_token(
        (await context.keyring()).active,
        (await context.keyring()).active_kid,
        (await credential_of(context, "13010003")).id,
        int(later.timestamp()),
        180,
    )
    result = check_offline(token, cache, category="旅游市场", region="示范市城西区", now=later)
    assert result.verdict == "cannot_confirm"


async def check_roles_and_agencies(client, officer_terminal, context):
    batch = "/api/credentials/me/qr-batch"
    # Anonymous.
    for path in (
        batch,
        "/api/credentials/me/qr.png",
        "/api/credentials/cache",
        "/api/admin/credentials/13010001",
    ):
        assert (await client.get(path)).status_code == 401, path
    assert (
        await client.post(
            "/api/admin/credentials/13010001/status", json={"action": "revoke", "reason": "无权"}
        )
    ).status_code == 401
    # Wrong role: a reviewer; an officer on the console without a terminal; an officer as admin.
    reviewer = await login(client, "reviewer")
    assert (await client.get(batch, headers=reviewer)).status_code == 403
    bearer_officer = await login(client, "13010001")
    refused = await client.get(batch, headers=bearer_officer)
    assert refused.status_code == 403 and refused.json()["code"] == "terminal_required"
    refused = await client.post(
        "/api/admin/credentials/13010003/status",
        json={"action": "revoke", "reason": "越权操作"},
        headers=officer_terminal.headers("POST", "/api/admin/credentials/13010003/status"),
    )
    assert refused.status_code == 403
    # The officer's token without the terminal's device proof.
    no_proof = {"Authorization": f"DPoP {officer_terminal.access_token}"}
    assert (await client.get(batch, headers=no_proof)).status_code == 401
    # An admin of another agency.
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        other = Agency(code="other", name="邻市综合行政执法局", region="邻市", created_at=now)
        session.add(other)
        await session.flush()
        await accounts.create_user(
            session,
            keyring,
            username="other-admin",
            password="zhifa-demo-2026",
            display_name="邻市管理员",
            roles=[Role.AGENCY_ADMIN],
            agency_id=other.id,
            now=now,
        )
    other_admin = await login(client, "other-admin")
    refused = await client.post(
        "/api/admin/credentials/13010003/status",
        json={"action": "revoke", "reason": "越权操作"},
        headers=other_admin,
    )
    assert refused.status_code == 403
    assert (
        await client.get("/api/admin/credentials/13010003", headers=other_admin)
    ).status_code == 403
    assert (await credential_of(context, "13010003")).status.value == "有效"
    # The status list and the public page need no login.
    assert (await client.get("/api/credentials/status-lists/other")).status_code == 200
    assert (await client.get("/api/credentials/status-lists/nowhere")).status_code == 404
    # An officer whose credential is not valid gets no codes.
    admin = await login(client, "admin")
    await client.post(
        "/api/admin/credentials/13010001/status",
        json={"action": "suspend", "reason": "涉嫌违纪，暂扣待查"},
        headers=admin,
    )
    refused = await client.get(batch, headers=officer_terminal.headers("GET", batch))
    assert refused.status_code == 403 and refused.json()["code"] == "credential_not_valid"
    assert "暂扣" in refused.json()["detail"]
    png = "/api/credentials/me/qr.png"
    assert (await client.get(png, headers=officer_terminal.headers("GET", png))).status_code == 403


async def check_status_list_resigning(client, context, clock):
    first = await client.get("/api/credentials/status-lists/demo")
    same = await client.get("/api/credentials/status-lists/demo")
    assert same.text == first.text
    clock.advance(dt.timedelta(hours=1))
    fresh = await client.get(
        "/api/credentials/status-lists/demo", headers={"If-None-Match": first.headers["etag"]}
    )
    assert fresh.status_code == 200 and fresh.text != first.text
    keys = public_keys((await context.keyring()).jwks())
    assert verify_status_list(fresh.text, keys).issued_at == clock.now()
    assert verify_status_list(fresh.text, keys).claims.size == 6
    async with context.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Credential)) == 6


def test_client_info_is_coarse() -> None:
    info = verification.client_info("203.0.113.77", PHONE)
    assert info.network == "203.0.113.0/24" and info.family == "wechat/android"
    assert "203.0.113.77" not in info.key and len(info.key) == 32
    v6 = verification.client_info("2001:db8:1234:5678::1", "curl/8.5.0")
    assert v6.network == "2001:db8:1234::/48" and v6.family == "curl/other"
    assert verification.client_info(None, "").network == ""
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Version/17.5 Mobile/15E148 Safari/604.1"
    assert verification.client_info("198.51.100.1", iphone).family == "safari/ios"


async def test_officer_codes_offline_cache_and_roles(
    client, officer_terminal, seeded, context, clock
):
    await check_offline_cache(client, officer_terminal, context, clock)
    await check_token_batch(client, officer_terminal, context, clock)
    await check_roles_and_agencies(client, officer_terminal, context)


async def test_refusals_key_rotation_and_status_actions(client, seeded, context, migrated, clock):
    await check_key_from_another_instance(client, context, migrated, clock)
    await check_key_rotation(client, context)
    await check_refused_codes(client, context, clock)
    await check_status_list_resigning(client, context, clock)
    await check_status_actions(client, context, clock)


async def test_scans_concurrency_listener_and_rate_limit(
    client, seeded, context, officer_terminal, monkeypatch
):
    # The verifier reads its policy when the first request reaches it.
    monkeypatch.setenv("ZHIFA_CREDENTIAL_RATE_LIMIT_REQUESTS", "40")
    await check_concurrent_scans(client, context)
    await check_scan_listener(client, context, officer_terminal)
    await check_rate_limit(client, context, limit=40)
