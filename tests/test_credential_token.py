"""The credential QR token, the signed status list and the offline check: pure, no server."""

from __future__ import annotations

import datetime as dt
import io
import uuid

import msgspec
import pytest
import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image

from mobile_api.contracts import qr
from mobile_api.contracts.credential import (
    TOKEN_CHARS,
    CredentialCache,
    CredentialCard,
    CredentialPolicy,
    Reason,
    StatusListInvalid,
    TokenBatch,
    b64url,
    b64url_decode,
    check_offline,
    check_own_credential,
    check_token,
    load_policy,
    pack_statuses,
    parse_token,
    public_keys,
    region_covers,
    sign_status_list,
    sign_token,
    token_of,
    verification_url,
    verify_status_list,
)
from server.core.keys import KeyRing, raw_public

NOW = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)  # 09:30 in China
AGENCY = uuid.UUID("00000000-0000-4000-8000-00000000a9e1")


class Server:
    """Server signing keys as a JWKS publishes them; ``rotate`` keeps the old public key."""

    def __init__(self) -> None:
        self.keys: dict[str, Ed25519PrivateKey] = {}
        self.rotate()

    def rotate(self) -> None:
        self.kid = b64url(uuid.uuid4().bytes[:12])
        self.key = Ed25519PrivateKey.generate()
        self.keys[self.kid] = self.key

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        public = {kid: raw_public(key.public_key()) for kid, key in self.keys.items()}
        return KeyRing(self.kid, self.key, public).jwks()

    def token(
        self, credential_id: uuid.UUID, issued: dt.datetime = NOW, lifetime: int = 180
    ) -> str:
        return sign_token(self.key, self.kid, credential_id, int(issued.timestamp()), lifetime)

    def status_list(self, statuses: dict[int, str], size: int, issued: dt.datetime = NOW) -> str:
        return sign_status_list(
            self.key,
            self.kid,
            sub="http://zhifa.test/api/credentials/status-lists/demo",
            agency_id=AGENCY,
            agency_code="demo",
            issued_at=int(issued.timestamp()),
            packed=pack_statuses(statuses, size),
            size=size,
        )


def card(index: int = 0, **changes: object) -> CredentialCard:
    values: dict[str, object] = {
        "credential_id": uuid.uuid5(AGENCY, str(index)),
        "number": f"1301000{index + 1}",
        "name": "张明",
        "unit": "一大队",
        "agency_id": AGENCY,
        "agency_name": "示范市文化市场综合行政执法支队",
        "categories": ["文化市场", "旅游市场"],
        "regions": ["示范市城东区"],
        "issued_on": dt.date(2024, 3, 1),
        "expires_on": dt.date(2029, 2, 28),
        "status_index": index,
    }
    values.update(changes)
    return msgspec.convert(values, CredentialCard)


def cache(server: Server, roster: list[CredentialCard], lists: list[str]) -> CredentialCache:
    return CredentialCache(jwks=server.jwks(), status_lists=lists, roster=roster, fetched_at=NOW)


def codes(result: object) -> list[Reason]:
    return [f.code for f in result.findings]  # type: ignore[attr-defined]


def test_token_round_trip_and_size() -> None:
    server = Server()
    credential = uuid.uuid4()
    token = server.token(credential)
    assert len(token) == TOKEN_CHARS == 143
    claims, _, _ = parse_token(token)
    assert claims.credential_id == credential
    assert claims.kid == server.kid
    assert claims.issued_at == int(NOW.timestamp())
    assert claims.expires_at == claims.issued_at + 180
    assert len(claims.nonce) == 8
    checked = check_token(token, public_keys(server.jwks()), NOW, 120)
    assert checked.genuine and checked.findings == []
    # Two codes for the same slot still differ: the nonce.
    assert server.token(credential) != token


@pytest.mark.parametrize(
    "base",
    [
        "http://127.0.0.1:45678",
        "https://zhifa.example.gov.cn",
        "https://zfzj.scjg.shifanshi.gov.cn",
    ],
)
def test_qr_version_and_decoding(base: str) -> None:
    url = verification_url(base, Server().token(uuid.uuid4()))
    code = qr.make_qr(url)
    # Measured: 168-180 characters give version 9 (53×53 modules) at error correction M.
    assert code.error == "M"
    assert code.version == 9
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.qr_png(url))))
    assert [d.text for d in decoded] == [url]
    assert qr.qr_svg(url).startswith(b"<svg")
    text = qr.qr_text(url).splitlines()
    assert len(text) == (code.symbol_size()[1] + 1) // 2  # two module rows per line


def _flip(token: str, byte: int) -> str:
    raw = bytearray(b64url_decode(token))
    raw[byte] ^= 0x01
    return b64url(bytes(raw))


@pytest.mark.parametrize(
    ("field", "byte"),
    [("credential id", 20), ("issued at", 32), ("lifetime", 34), ("nonce", 40), ("signature", 100)],
)
def test_tampering_breaks_the_signature(field: str, byte: int) -> None:
    server = Server()
    tampered = _flip(server.token(uuid.uuid4()), byte)
    checked = check_token(tampered, public_keys(server.jwks()), NOW, 120)
    assert codes(checked) == [Reason.BAD_SIGNATURE], field
    assert not checked.genuine


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: t[:-2] + "+/",
        lambda t: "",
        lambda t: b64url(b"\x02" + b64url_decode(t)[1:]),  # unknown version
    ],
)
def test_malformed_tokens(mangle) -> None:
    server = Server()
    checked = check_token(mangle(server.token(uuid.uuid4())), public_keys(server.jwks()), NOW, 120)
    assert codes(checked) == [Reason.TOKEN_MALFORMED]
    assert checked.claims is None


def test_foreign_keys_are_refused() -> None:
    server, foreign = Server(), Server()
    keys = public_keys(server.jwks())
    credential = uuid.uuid4()
    # Signed by a key we never published.
    assert codes(check_token(foreign.token(credential), keys, NOW, 120)) == [Reason.UNKNOWN_KEY]
    # Claims our kid, signed by another key.
    impostor = sign_token(foreign.key, server.kid, credential, int(NOW.timestamp()), 180)
    assert codes(check_token(impostor, keys, NOW, 120)) == [Reason.BAD_SIGNATURE]


def test_expiry_and_clock_skew() -> None:
    server = Server()
    keys = public_keys(server.jwks())
    token = server.token(uuid.uuid4(), lifetime=180)
    assert codes(check_token(token, keys, NOW + dt.timedelta(seconds=179), 120)) == []
    assert codes(check_token(token, keys, NOW + dt.timedelta(seconds=180), 120)) == [
        Reason.CODE_EXPIRED
    ]
    # A terminal whose clock runs a little ahead is fine; far ahead is not.
    assert codes(check_token(token, keys, NOW - dt.timedelta(seconds=100), 120)) == []
    assert codes(check_token(token, keys, NOW - dt.timedelta(seconds=200), 120)) == [
        Reason.CODE_NOT_YET_VALID
    ]
    # Expiry is judged even when the signature fails: every reason is named.
    forged = _flip(token, 100)
    assert codes(check_token(forged, keys, NOW + dt.timedelta(hours=1), 120)) == [
        Reason.BAD_SIGNATURE,
        Reason.CODE_EXPIRED,
    ]


def test_key_rotation_keeps_codes_in_flight() -> None:
    server = Server()
    credential = uuid.uuid4()
    old_token = server.token(credential)
    old_list = server.status_list({0: "有效"}, 1)
    old_kid = server.kid
    server.rotate()
    new_token = server.token(credential)
    keys = public_keys(server.jwks())
    assert set(keys) == {old_kid, server.kid}
    assert parse_token(old_token)[0].kid == old_kid
    assert parse_token(new_token)[0].kid == server.kid
    assert check_token(old_token, keys, NOW, 120).genuine
    assert check_token(new_token, keys, NOW, 120).genuine
    assert verify_status_list(old_list, keys).status(0) == "有效"


def test_status_list_bits_and_signature() -> None:
    server = Server()
    statuses = {0: "有效", 1: "暂扣", 2: "注销", 3: "吊销", 4: "有效", 9: "吊销"}
    document = server.status_list(statuses, 10)
    header = msgspec.json.decode(b64url_decode(document.split(".")[0]))
    assert header == {"alg": "EdDSA", "kid": server.kid, "typ": "statuslist+jwt"}
    verified = verify_status_list(document, public_keys(server.jwks()))
    assert [verified.status(i) for i in range(10)] == [
        "有效", "暂扣", "注销", "吊销", "有效", "有效", "有效", "有效", "有效", "吊销",
    ]  # fmt: skip
    assert verified.status(10) is None and verified.status(-1) is None
    assert verified.issued_at == NOW
    assert verified.claims.agency_id == AGENCY
    # Two bits per credential, least significant first (IETF Token Status List packing).
    assert pack_statuses({0: "吊销", 1: "暂扣", 3: "注销"}, 4) == bytes([0b11_00_10_01])
    with pytest.raises(ValueError):
        pack_statuses({4: "有效"}, 4)

    header_b64, payload_b64, signature = document.split(".")
    payload = msgspec.json.decode(b64url_decode(payload_b64))
    payload["iat"] += 86400  # pretend to be fresher
    forged = f"{header_b64}.{b64url(msgspec.json.encode(payload))}.{signature}"
    with pytest.raises(StatusListInvalid):
        verify_status_list(forged, public_keys(server.jwks()))
    with pytest.raises(StatusListInvalid):
        verify_status_list(document, public_keys(Server().jwks()))
    with pytest.raises(StatusListInvalid):
        verify_status_list("not.a.list", public_keys(server.jwks()))


@pytest.mark.parametrize(
    ("granted", "region", "covered"),
    [
        ("示范市城东区", "示范市城东区", True),
        ("示范市城东区", "示范市城东区东华街道", True),
        ("示范市城东区", "示范市城西区", False),
        ("示范市全市", "示范市城西区", True),
        ("示范市全市", "邻市城西区", False),
        ("示范市城东区", "示范市", False),
    ],
)
def test_region_coverage(granted: str, region: str, covered: bool) -> None:
    assert region_covers(granted, region) is covered


def test_offline_check_valid() -> None:
    server = Server()
    officer = card()
    token = server.token(officer.credential_id)
    # What the partner's camera reads is the whole URL.
    assert token_of(verification_url("https://zhifa.test", token)) == token
    assert token_of(f" {token}\n") == token
    result = check_offline(
        verification_url("https://zhifa.test", token),
        cache(server, [officer], [server.status_list({0: "有效"}, 1)]),
        category="文化市场",
        region="示范市城东区",
        now=NOW,
    )
    assert result.verdict == "valid" and result.ok
    assert result.findings == []
    assert result.card == officer
    assert result.status_list_issued_at == NOW


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("暂扣", Reason.CREDENTIAL_SUSPENDED),
        ("注销", Reason.CREDENTIAL_CANCELLED),
        ("吊销", Reason.CREDENTIAL_REVOKED),
    ],
)
def test_offline_check_status_from_the_list(status: str, reason: Reason) -> None:
    server = Server()
    officer = card(1)
    result = check_offline(
        server.token(officer.credential_id),
        cache(server, [card(0), officer], [server.status_list({0: "有效", 1: status}, 2)]),
        category="文化市场",
        region="示范市城东区",
        now=NOW,
    )
    assert result.verdict == "invalid"
    assert codes(result) == [reason]
    assert status in result.findings[0].message


def test_offline_check_names_every_reason() -> None:
    server = Server()
    officer = card(expires_on=dt.date(2026, 3, 1))
    later = NOW + dt.timedelta(minutes=10)
    result = check_offline(
        server.token(officer.credential_id),
        cache(server, [officer], [server.status_list({0: "吊销"}, 1, issued=later)]),
        category="广播电视",
        region="示范市城西区",
        now=later,
    )
    assert result.verdict == "invalid"
    assert codes(result) == [
        Reason.CODE_EXPIRED,
        Reason.CREDENTIAL_REVOKED,
        Reason.CREDENTIAL_EXPIRED,
        Reason.CATEGORY_NOT_COVERED,
        Reason.REGION_NOT_COVERED,
    ]
    messages = " ".join(f.message for f in result.findings)
    assert "广播电视" in messages and "示范市城西区" in messages and "2026-03-01" in messages


def test_offline_check_refuses_forgeries() -> None:
    server, foreign = Server(), Server()
    officer = card()
    lists = [server.status_list({0: "有效"}, 1)]
    for token, reason in [
        (foreign.token(officer.credential_id), Reason.UNKNOWN_KEY),
        (_flip(server.token(officer.credential_id), 90), Reason.BAD_SIGNATURE),
        ("https://example.com/not-ours", Reason.TOKEN_MALFORMED),
    ]:
        result = check_offline(
            token, cache(server, [officer], lists), category=None, region=None, now=NOW
        )
        assert result.verdict == "invalid"
        assert reason in codes(result)


def test_stale_or_missing_status_list_cannot_confirm() -> None:
    server = Server()
    officer = card()
    policy = CredentialPolicy(status_list_max_age_hours=24)
    token = server.token(officer.credential_id)
    fresh = server.status_list({0: "有效"}, 1, issued=NOW - dt.timedelta(hours=23))
    stale = server.status_list({0: "有效"}, 1, issued=NOW - dt.timedelta(hours=25))

    def run(lists: list[str], roster: list[CredentialCard] | None = None, **kw: object):
        return check_offline(
            token,
            cache(server, [officer] if roster is None else roster, lists),
            category="文化市场",
            region="示范市城东区",
            now=NOW,
            policy=CredentialPolicy(**kw) if kw else policy,  # type: ignore[arg-type]
        )

    assert run([fresh]).verdict == "valid"
    result = run([stale])
    assert result.verdict == "cannot_confirm" and codes(result) == [Reason.STATUS_LIST_STALE]
    assert "25 小时" in result.findings[0].message
    # The limit is configurable.
    assert run([stale], status_list_max_age_hours=48).verdict == "valid"
    # The newest genuine list of the agency counts.
    assert run([stale, fresh]).verdict == "valid"
    assert codes(run([])) == [Reason.STATUS_LIST_MISSING]
    assert run([]).verdict == "cannot_confirm"
    forged = Server().status_list({0: "有效"}, 1)
    assert codes(run([forged])) == [Reason.STATUS_LIST_INVALID]
    # A credential added after the list was signed.
    later = card(5, credential_id=officer.credential_id)
    assert codes(run([fresh], roster=[later])) == [Reason.STATUS_UNKNOWN]
    assert codes(run([fresh], roster=[])) == [Reason.CREDENTIAL_UNKNOWN]
    # A stale list that says 吊销 still proves the credential was revoked.
    revoked_stale = server.status_list({0: "吊销"}, 1, issued=NOW - dt.timedelta(hours=30))
    result = run([revoked_stale])
    assert result.verdict == "invalid"
    assert codes(result) == [Reason.STATUS_LIST_STALE, Reason.CREDENTIAL_REVOKED]


def test_own_credential_gate() -> None:
    server = Server()
    officer = card()
    lists = [server.status_list({0: "暂扣"}, 1)]
    result = check_own_credential(officer.credential_id, cache(server, [officer], lists), now=NOW)
    assert result.verdict == "invalid" and codes(result) == [Reason.CREDENTIAL_SUSPENDED]
    lists = [server.status_list({0: "有效"}, 1)]
    assert check_own_credential(officer.credential_id, cache(server, [officer], lists), now=NOW).ok
    unknown = check_own_credential(uuid.uuid4(), cache(server, [officer], lists), now=NOW)
    assert unknown.verdict == "cannot_confirm"


def test_token_batch_slots() -> None:
    server = Server()
    officer = card()
    first = int(NOW.timestamp())
    batch = TokenBatch(
        card=officer,
        verify_base_url="https://zhifa.test/v/",
        slot_seconds=30,
        lifetime_seconds=180,
        first_slot=first,
        tokens=[
            server.token(officer.credential_id, NOW + dt.timedelta(seconds=30 * i))
            for i in range(4)
        ],
    )
    assert batch.token_at(NOW + dt.timedelta(seconds=29)) == batch.tokens[0]
    assert batch.token_at(NOW + dt.timedelta(seconds=95)) == batch.tokens[3]
    assert batch.token_at(NOW + dt.timedelta(seconds=120)) is None
    assert batch.token_at(NOW - dt.timedelta(seconds=1)) is None
    assert batch.url_at(NOW) == f"https://zhifa.test/v/{batch.tokens[0]}"
    assert batch.ends_at == NOW + dt.timedelta(seconds=120)
    round_trip = msgspec.json.decode(msgspec.json.encode(batch), type=TokenBatch)
    assert round_trip == batch


def test_policy_from_environment() -> None:
    policy = load_policy(
        {
            "ZHIFA_CREDENTIAL_QR_SLOT_SECONDS": "20",
            "ZHIFA_CREDENTIAL_STATUS_LIST_MAX_AGE_HOURS": "6",
        }
    )
    assert policy.qr_slot_seconds == 20 and policy.status_list_max_age_hours == 6
    assert load_policy({}) == CredentialPolicy()
    with pytest.raises(msgspec.ValidationError):
        load_policy({"ZHIFA_CREDENTIAL_QR_SLOT_SECONDS": "2"})
    with pytest.raises(msgspec.ValidationError):
        load_policy({}, qr_slot_seconds=60, qr_lifetime_seconds=30)
