"""The officer's e-credential (亮证): the QR token, the signed status list and the offline check.

Shared by the server and the terminal, so it needs nothing but the standard library, msgspec and
cryptography. Everything here is signed by the SERVER's Ed25519 keys (kid = the 16-character
base64url key id of server.core.keys, i.e. 12 raw bytes); terminals verify with the cached JWKS.

QR token: a short binary layout, base64url-encoded into ``{public_base_url}/v/{token}``::

    offset size  field
    0      1     version (1)
    1      12    kid: the raw bytes behind the server's key id
    13     16    credential id (UUID)
    29     4     issued at, unix seconds (uint32, big endian)
    33     2     lifetime in seconds (uint16)
    35     8     random nonce
    43     64    Ed25519 signature over TOKEN_DOMAIN + bytes 0..42

107 bytes, 143 characters: with a typical host the URL fits QR version 9 at error correction M.

Why pre-signed batches: the terminal must show a fresh code every ``qr_slot_seconds`` while offline,
but only the server holds the signing key (a code signed by a terminal key would need the party to
trust every terminal). So at login and at every sync the server signs one code per time slot for
the next ``qr_batch_hours``; the terminal shows the code of the current slot. A photo of a code is
useless ``qr_lifetime_seconds`` after its slot began. Key rotation does not break codes in flight:
the kid travels in the token and retired public keys stay in the JWKS.

Status list: one JWS (compact, EdDSA, ``typ: statuslist+jwt``) per agency, modelled on the IETF
OAuth Token Status List: ``bits`` = 2 per credential at ``Credential.status_index``, packed
least-significant first and zlib-compressed. Values: 0 有效, 1 吊销 (the draft's INVALID),
2 暂扣 (SUSPENDED), 3 注销. 过期 is never listed: it follows from the expiry date on the card.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import os
import re
import secrets
import struct
import uuid
import zlib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CHINA_TZ = ZoneInfo("Asia/Shanghai")
TOKEN_VERSION = 1
TOKEN_DOMAIN = b"zhifa-credential-qr-v1\n"
_HEAD = struct.Struct(">B12s16sIH8s")
SIGNATURE_SIZE = 64
TOKEN_BYTES = _HEAD.size + SIGNATURE_SIZE
TOKEN_CHARS = (TOKEN_BYTES * 8 + 5) // 6
VERIFY_PATH = "/v/"
STATUS_LIST_TYPE = "statuslist+jwt"
STATUS_BITS = 2
STATUS_CODES = {"有效": 0, "吊销": 1, "暂扣": 2, "注销": 3}
STATUS_NAMES = {code: name for name, code in STATUS_CODES.items()}
VALID = "有效"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
EXPIRED = "过期"

Seconds = Annotated[int, msgspec.Meta(ge=1)]


class CredentialPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Timings and limits of 亮证. Each field may be set as ``ZHIFA_CREDENTIAL_<FIELD>``."""

    # A fresh code on the terminal every slot.
    qr_slot_seconds: Annotated[int, msgspec.Meta(ge=5, le=600)] = 30
    # A code verifies this long after its slot begins ("a few minutes").
    qr_lifetime_seconds: Annotated[int, msgspec.Meta(ge=5, le=3600)] = 180
    # How far ahead the server pre-signs codes for offline display.
    qr_batch_hours: Annotated[int, msgspec.Meta(ge=1, le=72)] = 12
    # Tolerated lead of a terminal's clock over the verifier's.
    clock_skew_seconds: Annotated[int, msgspec.Meta(ge=0, le=900)] = 120
    # An older status list makes the offline check answer "cannot confirm".
    status_list_max_age_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 30)] = 24
    # The server re-signs an unchanged status list this often, so cached copies stay fresh.
    status_list_refresh_seconds: Seconds = 3600
    # Public verification: requests per client per window (fixed window, counted per instance).
    rate_limit_requests: Seconds = 60
    rate_limit_window_seconds: Seconds = 60

    def __post_init__(self) -> None:
        if self.qr_lifetime_seconds < self.qr_slot_seconds:
            raise ValueError("qr_lifetime_seconds must be at least qr_slot_seconds")


def load_policy(environ: Mapping[str, str] | None = None, **overrides: Any) -> CredentialPolicy:
    """Policy from ``ZHIFA_CREDENTIAL_*`` variables (strings are converted), then overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(CredentialPolicy):
        raw = env.get(f"ZHIFA_CREDENTIAL_{field.name.upper()}")
        if raw is not None:
            values[field.name] = raw
    values.update(overrides)
    return msgspec.convert(values, CredentialPolicy, strict=False)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Strict: only the URL-safe alphabet, no padding, no whitespace."""
    if not _B64URL.fullmatch(text):
        raise ValueError("not base64url")
    try:
        return base64.b64decode(
            (text + "=" * (-len(text) % 4)).encode("ascii"), altchars=b"-_", validate=True
        )
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError("not base64url") from exc


def china_date(at: dt.datetime) -> dt.date:
    return at.astimezone(CHINA_TZ).date()


def verification_url(public_base_url: str, token: str) -> str:
    return f"{public_base_url.rstrip('/')}{VERIFY_PATH}{token}"


def token_of(scanned: str) -> str:
    """The token inside what a camera read: a verification URL (any host) or the bare token."""
    return scanned.strip().rsplit(VERIFY_PATH, 1)[-1].split("?", 1)[0]


# --- findings -------------------------------------------------------------------------------


class Reason(enum.StrEnum):
    """Why a credential check does not say "valid". Stable codes; Chinese text in MESSAGES."""

    TOKEN_MALFORMED = "token_malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    CODE_EXPIRED = "code_expired"
    CODE_NOT_YET_VALID = "code_not_yet_valid"
    CREDENTIAL_SUSPENDED = "credential_suspended"
    CREDENTIAL_CANCELLED = "credential_cancelled"
    CREDENTIAL_REVOKED = "credential_revoked"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_NOT_YET_VALID = "credential_not_yet_valid"
    CATEGORY_NOT_COVERED = "category_not_covered"
    REGION_NOT_COVERED = "region_not_covered"
    # The ones below cannot prove the credential invalid; they only stop us confirming it.
    CREDENTIAL_UNKNOWN = "credential_unknown"
    STATUS_LIST_MISSING = "status_list_missing"
    STATUS_LIST_INVALID = "status_list_invalid"
    STATUS_LIST_STALE = "status_list_stale"
    STATUS_UNKNOWN = "status_unknown"


UNCONFIRMED = frozenset(
    {
        Reason.CREDENTIAL_UNKNOWN,
        Reason.STATUS_LIST_MISSING,
        Reason.STATUS_LIST_INVALID,
        Reason.STATUS_LIST_STALE,
        Reason.STATUS_UNKNOWN,
    }
)
NOT_GENUINE = frozenset({Reason.TOKEN_MALFORMED, Reason.UNKNOWN_KEY, Reason.BAD_SIGNATURE})
STATUS_REASONS = {
    "暂扣": Reason.CREDENTIAL_SUSPENDED,
    "注销": Reason.CREDENTIAL_CANCELLED,
    "吊销": Reason.CREDENTIAL_REVOKED,
}

MESSAGES = {
    Reason.TOKEN_MALFORMED: "不是执法证件二维码，或二维码内容不完整",
    Reason.UNKNOWN_KEY: "二维码的签名密钥不是执法机关公布的密钥，证件不是真实的",
    Reason.BAD_SIGNATURE: "二维码签名无效，内容被改动或伪造，证件不是真实的",
    Reason.CODE_EXPIRED: "二维码已过期，请执法人员刷新后重新出示",
    Reason.CODE_NOT_YET_VALID: "二维码尚未生效，请执法人员核对终端时间后刷新",
    Reason.CREDENTIAL_SUSPENDED: "执法证件已被暂扣",
    Reason.CREDENTIAL_CANCELLED: "执法证件已被注销",
    Reason.CREDENTIAL_REVOKED: "执法证件已被吊销",
    Reason.CREDENTIAL_EXPIRED: "执法证件已过有效期",
    Reason.CREDENTIAL_NOT_YET_VALID: "执法证件尚未到发证日期",
    Reason.CATEGORY_NOT_COVERED: "执法证件的执法类别不包括本案类别",
    Reason.REGION_NOT_COVERED: "执法证件的执法区域不包括本案区域",
    Reason.CREDENTIAL_UNKNOWN: "本终端缓存的名册中没有该证件，无法确认，请联网同步",
    Reason.STATUS_LIST_MISSING: "本终端没有该执法主体的证件状态清单，无法确认，请联网同步",
    Reason.STATUS_LIST_INVALID: "证件状态清单签名无效，无法确认，请联网同步",
    Reason.STATUS_LIST_STALE: "证件状态清单已超过时限未更新，无法确认，请联网同步",
    Reason.STATUS_UNKNOWN: "证件状态清单中没有该证件，无法确认，请联网同步",
}


class Finding(msgspec.Struct, frozen=True):
    code: Reason
    message: str


def finding(code: Reason, detail: str = "") -> Finding:
    return Finding(code, f"{MESSAGES[code]}{detail}")


# --- the QR token ---------------------------------------------------------------------------


class QrClaims(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    credential_id: uuid.UUID
    issued_at: int
    lifetime: int
    nonce: bytes

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.lifetime


class TokenMalformed(ValueError):
    pass


def sign_token(
    key: Ed25519PrivateKey,
    kid: str,
    credential_id: uuid.UUID,
    issued_at: int,
    lifetime: int,
    nonce: bytes | None = None,
) -> str:
    """One QR token, signed by the server key ``kid``."""
    kid_raw = b64url_decode(kid)
    if len(kid_raw) != 12:
        raise ValueError("kid must be 12 bytes in base64url")
    head = _HEAD.pack(
        TOKEN_VERSION,
        kid_raw,
        credential_id.bytes,
        issued_at,
        lifetime,
        nonce if nonce is not None else secrets.token_bytes(8),
    )
    return b64url(head + key.sign(TOKEN_DOMAIN + head))


def parse_token(token: str) -> tuple[QrClaims, bytes, bytes]:
    """Claims, signed bytes and signature of a token, without checking the signature."""
    if len(token) != TOKEN_CHARS:
        raise TokenMalformed("wrong length")
    try:
        raw = b64url_decode(token)
    except ValueError as exc:
        raise TokenMalformed("not base64url") from exc
    if len(raw) != TOKEN_BYTES:
        raise TokenMalformed("wrong length")
    head, signature = raw[: _HEAD.size], raw[_HEAD.size :]
    version, kid_raw, credential, issued_at, lifetime, nonce = _HEAD.unpack(head)
    if version != TOKEN_VERSION:
        raise TokenMalformed("unknown version")
    claims = QrClaims(
        kid=b64url(kid_raw),
        credential_id=uuid.UUID(bytes=credential),
        issued_at=issued_at,
        lifetime=lifetime,
        nonce=nonce,
    )
    return claims, TOKEN_DOMAIN + head, signature


class TokenCheck(msgspec.Struct, frozen=True):
    """What the token alone says: its claims (None when unreadable) and what is wrong with it."""

    claims: QrClaims | None
    findings: list[Finding]

    @property
    def genuine(self) -> bool:
        return self.claims is not None and not any(f.code in NOT_GENUINE for f in self.findings)


def verify_token_signature(token: str, keys: Mapping[str, Ed25519PublicKey]) -> TokenCheck:
    """Signature only: the part of the check that never changes for a given token and key set."""
    try:
        claims, signed, signature = parse_token(token)
    except TokenMalformed:
        return TokenCheck(None, [finding(Reason.TOKEN_MALFORMED)])
    key = keys.get(claims.kid)
    if key is None:
        return TokenCheck(claims, [finding(Reason.UNKNOWN_KEY)])
    try:
        key.verify(signature, signed)
    except InvalidSignature:
        return TokenCheck(claims, [finding(Reason.BAD_SIGNATURE)])
    return TokenCheck(claims, [])


def token_time_findings(
    claims: QrClaims, now: dt.datetime, clock_skew_seconds: int
) -> list[Finding]:
    moment = now.timestamp()
    if moment >= claims.expires_at:
        return [finding(Reason.CODE_EXPIRED)]
    if claims.issued_at > moment + clock_skew_seconds:
        return [finding(Reason.CODE_NOT_YET_VALID)]
    return []


def check_token(
    token: str, keys: Mapping[str, Ed25519PublicKey], now: dt.datetime, clock_skew_seconds: int
) -> TokenCheck:
    """Signature and time of a scanned token. Time is judged even when the signature fails."""
    checked = verify_token_signature(token, keys)
    if checked.claims is None:
        return checked
    return TokenCheck(
        checked.claims,
        checked.findings + token_time_findings(checked.claims, now, clock_skew_seconds),
    )


# --- keys -----------------------------------------------------------------------------------


def public_keys(jwks: Mapping[str, Any]) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 keys of a JWKS document, by kid (other key types are ignored)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in jwks.get("keys", []):
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not jwk.get("kid"):
            continue
        try:
            keys[jwk["kid"]] = Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
        except (ValueError, KeyError):
            continue
    return keys


# --- the credential card and the status list -------------------------------------------------


class CredentialCard(msgspec.Struct, frozen=True, kw_only=True):
    """What 亮证 shows, as the roster cache on a terminal holds it."""

    credential_id: uuid.UUID
    number: str
    name: str
    unit: str
    agency_id: uuid.UUID
    agency_name: str
    categories: list[str]
    regions: list[str]
    issued_on: dt.date
    expires_on: dt.date
    status_index: int


class StatusListClaims(msgspec.Struct, frozen=True, kw_only=True):
    sub: str  # where the list is served
    agency_id: uuid.UUID
    agency_code: str
    iat: int
    bits: int
    size: int
    lst: str  # base64url(zlib(packed statuses))


class _JwsHeader(msgspec.Struct, frozen=True):
    alg: str
    kid: str
    typ: str


class StatusListInvalid(ValueError):
    pass


def pack_statuses(statuses: Mapping[int, str], size: int) -> bytes:
    """``STATUS_BITS`` per index, least-significant bits first, as the IETF status list packs."""
    per_byte = 8 // STATUS_BITS
    packed = bytearray((size + per_byte - 1) // per_byte)
    for index, name in statuses.items():
        if not 0 <= index < size:
            raise ValueError(f"status index {index} outside 0..{size - 1}")
        packed[index // per_byte] |= STATUS_CODES[name] << (index % per_byte * STATUS_BITS)
    return bytes(packed)


def sign_status_list(
    key: Ed25519PrivateKey,
    kid: str,
    *,
    sub: str,
    agency_id: uuid.UUID,
    agency_code: str,
    issued_at: int,
    packed: bytes,
    size: int,
) -> str:
    claims = StatusListClaims(
        sub=sub,
        agency_id=agency_id,
        agency_code=agency_code,
        iat=issued_at,
        bits=STATUS_BITS,
        size=size,
        lst=b64url(zlib.compress(packed, 9)),
    )
    header = b64url(msgspec.json.encode(_JwsHeader("EdDSA", kid, STATUS_LIST_TYPE)))
    payload = b64url(msgspec.json.encode(claims))
    signing_input = f"{header}.{payload}".encode()
    return f"{header}.{payload}.{b64url(key.sign(signing_input))}"


class StatusList(msgspec.Struct, frozen=True):
    """A verified status list."""

    claims: StatusListClaims
    packed: bytes

    @property
    def issued_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.claims.iat, dt.UTC)

    def status(self, index: int) -> str | None:
        """有效 / 暂扣 / 注销 / 吊销, or None when the index is not in the list."""
        if not 0 <= index < self.claims.size:
            return None
        per_byte = 8 // STATUS_BITS
        code = self.packed[index // per_byte] >> (index % per_byte * STATUS_BITS)
        return STATUS_NAMES[code & ((1 << STATUS_BITS) - 1)]


def verify_status_list(document: str, keys: Mapping[str, Ed25519PublicKey]) -> StatusList:
    """Check the JWS signature and decode; raise ``StatusListInvalid`` on anything wrong."""
    try:
        header_b64, payload_b64, signature_b64 = document.split(".")
        header = msgspec.json.decode(b64url_decode(header_b64), type=_JwsHeader)
        if header.alg != "EdDSA" or header.typ != STATUS_LIST_TYPE:
            raise StatusListInvalid("not a status list")
        key = keys.get(header.kid)
        if key is None:
            raise StatusListInvalid("unknown key")
        key.verify(b64url_decode(signature_b64), f"{header_b64}.{payload_b64}".encode())
        claims = msgspec.json.decode(b64url_decode(payload_b64), type=StatusListClaims)
        packed = zlib.decompress(b64url_decode(claims.lst))
    except (ValueError, msgspec.ValidationError, InvalidSignature, zlib.error) as exc:
        raise StatusListInvalid(str(exc) or type(exc).__name__) from exc
    if claims.bits != STATUS_BITS or len(packed) * 8 < claims.size * STATUS_BITS:
        raise StatusListInvalid("inconsistent size")
    return StatusList(claims, packed)


# --- what a terminal keeps --------------------------------------------------------------------


class TokenBatch(msgspec.Struct, frozen=True, kw_only=True):
    """Pre-signed codes for the officer's own card: one per slot from ``first_slot`` on."""

    card: CredentialCard
    photo: bytes | None = None
    photo_type: str = ""
    verify_base_url: str  # ``{public_base_url}/v/``; the QR content is this plus the token
    slot_seconds: int
    lifetime_seconds: int
    first_slot: int  # unix seconds at which tokens[0] begins
    tokens: list[str]

    @property
    def ends_at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(
            self.first_slot + len(self.tokens) * self.slot_seconds, dt.UTC
        )

    def token_at(self, now: dt.datetime) -> str | None:
        """The code to show now; None once the batch is used up (the terminal must sync)."""
        index = (int(now.timestamp()) - self.first_slot) // self.slot_seconds
        return self.tokens[index] if 0 <= index < len(self.tokens) else None

    def url_at(self, now: dt.datetime) -> str | None:
        token = self.token_at(now)
        return f"{self.verify_base_url}{token}" if token else None


class CredentialCache(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a terminal needs to check credentials offline; refreshed at login and sync."""

    jwks: dict[str, list[dict[str, str]]]
    status_lists: list[str]  # signed JWS documents, one per agency
    roster: list[CredentialCard]
    fetched_at: dt.datetime


# --- checks -----------------------------------------------------------------------------------

_WHOLE_AREA = ("全市", "全省", "全区", "全县", "全域", "全境")


def region_covers(granted: str, region: str) -> bool:
    """A granted 执法区域 covers itself, any place named inside it (示范市城东区 ⊃
    示范市城东区东华街道), and ``X全市``-style grants cover everything named under ``X``."""
    base = granted
    for suffix in _WHOLE_AREA:
        if granted.endswith(suffix) and len(granted) > len(suffix):
            base = granted[: -len(suffix)]
            break
    return region == granted or region.startswith(base)


def status_findings(status: str | None) -> list[Finding]:
    """What the status list says about one credential; None means the list lacks it."""
    if status is None:
        return [finding(Reason.STATUS_UNKNOWN)]
    return [finding(STATUS_REASONS[status])] if status in STATUS_REASONS else []


def card_findings(
    card: CredentialCard, *, category: str | None, region: str | None, today: dt.date
) -> list[Finding]:
    """What the card itself rules out: dates, and the case's 执法类别 and 区域 (None skips them)."""
    findings: list[Finding] = []
    if today > card.expires_on:
        findings.append(finding(Reason.CREDENTIAL_EXPIRED, f"（有效期至 {card.expires_on}）"))
    if today < card.issued_on:
        findings.append(finding(Reason.CREDENTIAL_NOT_YET_VALID, f"（发证日期 {card.issued_on}）"))
    if category is not None and category not in card.categories:
        findings.append(finding(Reason.CATEGORY_NOT_COVERED, f"：{category}"))
    if region is not None and not any(region_covers(g, region) for g in card.regions):
        findings.append(finding(Reason.REGION_NOT_COVERED, f"：{region}"))
    return findings


Verdict = Literal["valid", "invalid", "cannot_confirm"]


class OfflineCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of an offline check: never "valid" while anything is wrong or unconfirmed."""

    verdict: Verdict
    findings: list[Finding]
    card: CredentialCard | None = None
    claims: QrClaims | None = None
    status_list_issued_at: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.verdict == "valid"


def verdict_of(findings: Iterable[Finding]) -> Verdict:
    codes = {f.code for f in findings}
    if codes - UNCONFIRMED:
        return "invalid"
    return "cannot_confirm" if codes else "valid"


def _status_list_for(
    agency_id: uuid.UUID, cache: CredentialCache, keys: Mapping[str, Ed25519PublicKey]
) -> StatusList | Reason:
    """The newest genuine list of the agency, or why there is none."""
    newest: StatusList | None = None
    failed = False
    for document in cache.status_lists:
        try:
            verified = verify_status_list(document, keys)
        except StatusListInvalid:
            failed = True
            continue
        if verified.claims.agency_id == agency_id and (
            newest is None or verified.claims.iat > newest.claims.iat
        ):
            newest = verified
    if newest is not None:
        return newest
    return Reason.STATUS_LIST_INVALID if failed else Reason.STATUS_LIST_MISSING


def _check_card(
    card: CredentialCard,
    cache: CredentialCache,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    category: str | None,
    region: str | None,
    now: dt.datetime,
    policy: CredentialPolicy,
) -> tuple[list[Finding], dt.datetime | None]:
    findings: list[Finding] = []
    status_list = _status_list_for(card.agency_id, cache, keys)
    if isinstance(status_list, Reason):
        findings.append(finding(status_list))
        issued_at = None
    else:
        issued_at = status_list.issued_at
        age = now - issued_at
        if age > dt.timedelta(hours=policy.status_list_max_age_hours):
            hours = int(age.total_seconds() // 3600)
            findings.append(finding(Reason.STATUS_LIST_STALE, f"（已 {hours} 小时未更新）"))
        findings += status_findings(status_list.status(card.status_index))
    findings += card_findings(card, category=category, region=region, today=china_date(now))
    return findings, issued_at


def check_offline(
    token: str,
    cache: CredentialCache,
    *,
    category: str | None,
    region: str | None,
    now: dt.datetime,
    policy: CredentialPolicy | None = None,
) -> OfflineCheck:
    """The partner's check of a scanned code (the URL or the bare token) on a terminal with no
    network (第42条).

    Names every reason it fails; answers "cannot_confirm" (never "valid") when the roster or a
    fresh, genuine status list does not let it decide. ``category``/``region`` None skips them.
    """
    policy = policy or CredentialPolicy()
    keys = public_keys(cache.jwks)
    checked = check_token(token_of(token), keys, now, policy.clock_skew_seconds)
    findings = list(checked.findings)
    claims = checked.claims
    if claims is None:
        return OfflineCheck(verdict="invalid", findings=findings)
    card = next((c for c in cache.roster if c.credential_id == claims.credential_id), None)
    if card is None:
        findings.append(finding(Reason.CREDENTIAL_UNKNOWN))
        return OfflineCheck(verdict=verdict_of(findings), findings=findings, claims=claims)
    more, issued_at = _check_card(
        card, cache, keys, category=category, region=region, now=now, policy=policy
    )
    findings += more
    return OfflineCheck(
        verdict=verdict_of(findings),
        findings=findings,
        card=card,
        claims=claims,
        status_list_issued_at=issued_at,
    )


def check_own_credential(
    credential_id: uuid.UUID,
    cache: CredentialCache,
    *,
    category: str | None = None,
    region: str | None = None,
    now: dt.datetime,
    policy: CredentialPolicy | None = None,
) -> OfflineCheck:
    """The logged-in officer's own credential, before the terminal lets him start an action."""
    policy = policy or CredentialPolicy()
    card = next((c for c in cache.roster if c.credential_id == credential_id), None)
    if card is None:
        findings = [finding(Reason.CREDENTIAL_UNKNOWN)]
        return OfflineCheck(verdict=verdict_of(findings), findings=findings)
    findings, issued_at = _check_card(
        card,
        cache,
        public_keys(cache.jwks),
        category=category,
        region=region,
        now=now,
        policy=policy,
    )
    return OfflineCheck(
        verdict=verdict_of(findings), findings=findings, card=card, status_list_issued_at=issued_at
    )
