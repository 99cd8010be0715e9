"""The terminal side of device binding: DPoP proofs (RFC 9449) signed by the terminal's Ed25519 key.

The server (server.core.auth.verify_device_proof) accepts an officer's token only with a fresh proof
for the same method and path, signed by the key the token is bound to.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEVICE_PROOF_HEADER = "DPoP"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_key_b64(key: Ed25519PrivateKey) -> str:
    """The raw public key, base64url without padding, as enrollment expects it."""
    return _b64url(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def device_jwk(key: Ed25519PrivateKey) -> dict[str, str]:
    return {"kty": "OKP", "crv": "Ed25519", "x": public_key_b64(key)}


def make_device_proof(
    key: Ed25519PrivateKey,
    method: str,
    url: str,
    access_token: str | None = None,
    now: float | None = None,
) -> str:
    """A DPoP proof JWT for one request (compact JWS, EdDSA)."""
    claims: dict[str, object] = {
        "jti": uuid.uuid4().hex,
        "htm": method.upper(),
        "htu": url.split("?", 1)[0],
        "iat": int(now if now is not None else time.time()),
    }
    if access_token is not None:
        claims["ath"] = _b64url(hashlib.sha256(access_token.encode()).digest())
    return jwt.encode(
        claims, key, algorithm="EdDSA", headers={"typ": "dpop+jwt", "jwk": device_jwk(key)}
    )
