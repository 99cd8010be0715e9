"""Scoped tokens of the media area, signed with the server's keys (EdDSA JWTs).

- ``upload``: lets a generic tus client (tuspy, tus-js-client, Uppy), which sends the same static
  headers with every request, upload one announced recording. Terminals themselves use their
  DPoP-bound officer token instead.
- ``access``: a playback or download ticket for one evidence item, handed out after the access
  was written to the ledger; a browser's <video> can carry it in the URL.

They carry their own issuer, so an access token is never taken for one of these and these are
never taken for an access token (server.core.auth requires the issuer "zhifa").
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

import jwt
import msgspec

from media.web import MediaContext
from server.core.errors import NotAuthenticated

ISSUER = "zhifa-media"
Kind = Literal["upload", "access"]


class ScopedToken(msgspec.Struct, frozen=True):
    kind: Kind
    subject: uuid.UUID  # the recording (upload) or the evidence item (access)
    user_id: uuid.UUID
    agency_id: uuid.UUID
    terminal_id: uuid.UUID | None = None
    purpose: str = ""
    expires_at: int = 0


async def issue(
    context: MediaContext,
    kind: Kind,
    *,
    subject: uuid.UUID,
    user_id: uuid.UUID,
    agency_id: uuid.UUID,
    ttl_seconds: int,
    terminal_id: uuid.UUID | None = None,
    purpose: str = "",
) -> tuple[str, dt.datetime]:
    keyring = await context.keyring()
    now = context.clock.now()
    expires = now + dt.timedelta(seconds=ttl_seconds)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "kind": kind,
        "sub": str(subject),
        "uid": str(user_id),
        "agency": str(agency_id),
        "tid": str(terminal_id) if terminal_id else None,
        "purpose": purpose,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(
        claims, keyring.active, algorithm="EdDSA", headers={"kid": keyring.active_kid}
    )
    return token, expires


async def verify(context: MediaContext, token: str | None, kind: Kind) -> ScopedToken:
    if not token:
        raise NotAuthenticated()
    try:
        kid = jwt.get_unverified_header(token).get("kid", "")
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("凭证无效", reason="scoped_token_invalid") from exc
    keyring = await context.keyring()
    key = keyring.public_key(kid) or (await context.keyring(refresh=True)).public_key(kid)
    if key is None:
        raise NotAuthenticated("凭证的签名密钥未知", reason="scoped_token_invalid")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["EdDSA"],
            issuer=ISSUER,
            options={"require": ["exp", "sub", "kind"], "verify_exp": False},
        )
        scoped = ScopedToken(
            kind=claims["kind"],
            subject=uuid.UUID(claims["sub"]),
            user_id=uuid.UUID(claims["uid"]),
            agency_id=uuid.UUID(claims["agency"]),
            terminal_id=uuid.UUID(claims["tid"]) if claims.get("tid") else None,
            purpose=claims.get("purpose", ""),
            expires_at=int(claims["exp"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise NotAuthenticated("凭证无效", reason="scoped_token_invalid") from exc
    if scoped.kind != kind:
        raise NotAuthenticated("凭证不适用于此操作", reason="scoped_token_wrong_kind")
    # Expiry against our one clock, as for access tokens.
    if scoped.expires_at <= context.clock.now().timestamp():
        raise NotAuthenticated("凭证已过期", reason="scoped_token_expired")
    return scoped


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
