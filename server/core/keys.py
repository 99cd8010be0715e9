"""The server's Ed25519 signing keys (tokens, QR codes, status lists, ledger heads) and their JWKS.

Keys live in the database so every instance signs with the same key. Rotation adds a new key and
retires the old one, which stays in the JWKS so anything signed before still verifies.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.core.models import SigningKey


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def okp_jwk(public_key: bytes, kid: str | None = None) -> dict[str, str]:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(public_key)}
    if kid:
        jwk |= {"kid": kid, "alg": "EdDSA", "use": "sig"}
    return jwk


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 thumbprint of an OKP key: SHA-256 over the required members, sorted, compact."""
    required = {name: jwk[name] for name in ("crv", "kty", "x")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


class KeyRing:
    """Signing key plus every public key still trusted, keyed by kid."""

    def __init__(self, active_kid: str, active: Ed25519PrivateKey, public: dict[str, bytes]):
        self.active_kid = active_kid
        self.active = active
        self.public = public

    def sign(self, message: bytes) -> bytes:
        return self.active.sign(message)

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        raw = self.public.get(kid)
        return Ed25519PublicKey.from_public_bytes(raw) if raw else None

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [okp_jwk(raw, kid) for kid, raw in sorted(self.public.items())]}


def _kid_for(public: bytes) -> str:
    return b64url(hashlib.sha256(public).digest()[:12])


async def read_keyring(session: AsyncSession) -> KeyRing | None:
    """The keys as stored, or None before the first key exists."""
    rows = list((await session.scalars(select(SigningKey).order_by(SigningKey.created_at))).all())
    active = [row for row in rows if row.retired_at is None]
    if not active:
        return None
    newest = active[-1]
    return KeyRing(
        newest.kid,
        Ed25519PrivateKey.from_private_bytes(newest.private_key),
        {row.kid: row.public_key for row in rows},
    )


async def rotate_signing_key(session: AsyncSession, now: dt.datetime) -> SigningKey:
    """Retire every active key and create a new one."""
    for row in await session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        row.retired_at = now
    private = Ed25519PrivateKey.from_private_bytes(secrets.token_bytes(32))
    public = raw_public(private.public_key())
    key = SigningKey(
        kid=_kid_for(public),
        private_key=private.private_bytes_raw(),
        public_key=public,
        created_at=now,
    )
    session.add(key)
    await session.flush()
    return key
