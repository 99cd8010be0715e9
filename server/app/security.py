"""Every route declares who may call it; one guard enforces it.

The declarations are in ``server.core.roles``. ``create_app`` refuses to start
when a route declares nothing, so no endpoint can be open by accident.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from server.app.context import AppContext
from server.core.auth import Principal, decode_access_token, verify_device_proof
from server.core.errors import NotAuthenticated, PermissionDenied
from server.core.roles import ROLES_KEY, SESSION_COOKIE_KEY

DEVICE_PROOF_HEADER = "DPoP"


def declared_roles(handler: BaseRouteHandler) -> frozenset[str] | str | None:
    # Litestar answers OPTIONS itself (allowed methods only), so those are public by nature.
    if getattr(handler, "http_methods", None) == {"OPTIONS"}:
        return "public"
    return handler.opt.get(ROLES_KEY)


def _access_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() in ("bearer", "dpop") and token:
        return token.strip()
    # Console pages name the HttpOnly, SameSite=Strict cookie that carries their session (and
    # check a CSRF token on every form); the JSON API never reads cookies.
    cookie = connection.route_handler.opt.get(SESSION_COOKIE_KEY)
    return (connection.cookies.get(cookie) or None) if cookie else None


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    context: AppContext = connection.app.state.context
    token = _access_token(connection)
    if not token:
        raise NotAuthenticated()
    now = context.clock.now()
    keyring = await context.keyring()
    try:
        principal, claims = decode_access_token(keyring, token, now)
    except NotAuthenticated:
        # The token may be signed by a key another instance created since we last looked.
        keyring = await context.keyring(refresh=True)
        principal, claims = decode_access_token(keyring, token, now)
    jkt = (claims.get("cnf") or {}).get("jkt")
    if jkt:
        # Terminal-bound token: only the terminal holding the device key may use it.
        verify_device_proof(
            connection.headers.get(DEVICE_PROOF_HEADER),
            method=str(connection.scope.get("method", "GET")),
            path=connection.url.path,
            now=now,
            max_age_seconds=context.settings.device_proof_max_age_seconds,
            expected_jkt=jkt,
            access_token=token,
        )
    return principal


async def role_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    roles = declared_roles(handler)
    if roles == "public":
        return
    if not roles:
        raise PermissionDenied()
    principal = await authenticate(connection)
    if not principal.roles & set(roles):
        raise PermissionDenied()
    connection.state.principal = principal


def current_principal(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return request.state.principal
