"""Passwords, access tokens (EdDSA JWTs) and device binding (DPoP, RFC 9449).

Staff tokens are plain bearer tokens for the console. Officer tokens issued on a terminal carry
``cnf.jkt``, the thumbprint of the terminal's device key, and are accepted only together with a
DPoP proof signed by that key: a token copied off the terminal is useless elsewhere.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import jwt
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from server.core.errors import NotAuthenticated
from server.core.keys import KeyRing, b64url, jwk_thumbprint

ISSUER = "zhifa"
_hasher = PasswordHasher()  # argon2id, memory-hard
# Verifying against this keeps the timing of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, InvalidHashError):
        return False


def new_opaque_token() -> tuple[str, str]:
    """A random token and the hash we store of it."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a user with roles, optionally on an enrolled terminal."""

    user_id: uuid.UUID
    roles: frozenset[str]
    agency_id: uuid.UUID | None
    officer_id: uuid.UUID | None = None
    terminal_id: uuid.UUID | None = None


def issue_access_token(
    keyring: KeyRing,
    principal: Principal,
    now: dt.datetime,
    ttl_seconds: int,
    device_jkt: str | None = None,
) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": str(principal.user_id),
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + ttl_seconds,
        "jti": uuid.uuid4().hex,
        "roles": sorted(principal.roles),
        "agency": str(principal.agency_id) if principal.agency_id else None,
        "officer": str(principal.officer_id) if principal.officer_id else None,
    }
    if principal.terminal_id is not None:
        claims["tid"] = str(principal.terminal_id)
        claims["cnf"] = {"jkt": device_jkt}
    return jwt.encode(
        claims, keyring.active, algorithm="EdDSA", headers={"kid": keyring.active_kid}
    )


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


class _Verified(NamedTuple):
    kid: str
    public: bytes  # the key that verified the signature
    principal: Principal
    claims: dict[str, Any]


# Access tokens whose signature checked out, by SHA-256 of the token: a terminal sends the same
# token with every push, and an Ed25519 check per request is CPU on the hot path. An entry counts
# only while the keyring at hand still trusts the key that verified it; expiry is checked on every
# use. Oldest entries go first beyond the bound.
VERIFIED_TOKENS_MAX = 10_000
_verified: dict[str, _Verified] = {}


def decode_access_token(keyring: KeyRing, token: str, now: dt.datetime) -> tuple[Principal, dict]:
    digest = token_digest(token)
    verified = _verified.get(digest)
    if verified is None or keyring.public.get(verified.kid) != verified.public:
        verified = _verify_access_token(keyring, token)
        if len(_verified) >= VERIFIED_TOKENS_MAX:
            del _verified[next(iter(_verified))]
        _verified[digest] = verified
    # Expiry is checked against our one clock, not the library's.
    if verified.claims["exp"] <= now.timestamp():
        del _verified[digest]
        raise NotAuthenticated("登录已过期，请重新登录", reason="token_expired")
    return verified.principal, dict(verified.claims)


def _verify_access_token(keyring: KeyRing, token: str) -> _Verified:
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
        key = keyring.public_key(kid)
        if key is None:
            raise NotAuthenticated("登录凭证的签名密钥未知，请重新登录")
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("登录凭证无效，请重新登录") from exc
    principal = Principal(
        user_id=uuid.UUID(claims["sub"]),
        roles=frozenset(claims.get("roles", [])),
        agency_id=_uuid_or_none(claims.get("agency")),
        officer_id=_uuid_or_none(claims.get("officer")),
        terminal_id=_uuid_or_none(claims.get("tid")),
    )
    return _Verified(kid, keyring.public[kid], principal, claims)


def access_token_hash(token: str) -> str:
    """The DPoP ``ath`` claim: base64url SHA-256 of the access token."""
    return b64url(hashlib.sha256(token.encode()).digest())


def verify_device_proof(
    proof: str | None,
    *,
    method: str,
    path: str,
    now: dt.datetime,
    max_age_seconds: int,
    expected_jkt: str | None = None,
    access_token: str | None = None,
) -> str:
    """Check a DPoP proof JWT and return the thumbprint of the key that signed it."""
    if not proof:
        raise NotAuthenticated(
            "缺少终端设备证明，请在已注册的执法终端上操作", reason="device_proof_missing"
        )
    try:
        header = jwt.get_unverified_header(proof)
        jwk = header.get("jwk") or {}
        if header.get("typ") != "dpop+jwt" or jwk.get("kty") != "OKP" or "d" in jwk:
            raise NotAuthenticated("终端设备证明格式不正确", reason="device_proof_invalid")
        claims = jwt.decode(proof, jwt.PyJWK(jwk).key, algorithms=["EdDSA"])
    except (jwt.PyJWTError, KeyError, ValueError) as exc:
        raise NotAuthenticated("终端设备证明无效", reason="device_proof_invalid") from exc
    thumbprint = jwk_thumbprint(jwk)
    checks = [
        claims.get("htm") == method,
        urlsplit(str(claims.get("htu", ""))).path == path,
        abs(now.timestamp() - float(claims.get("iat", 0))) <= max_age_seconds,
        bool(claims.get("jti")),
        expected_jkt is None or thumbprint == expected_jkt,
        access_token is None or claims.get("ath") == access_token_hash(access_token),
    ]
    if not all(checks):
        raise NotAuthenticated("终端设备证明与本次请求或本终端不符", reason="device_proof_mismatch")
    return thumbprint
