"""Every route declares its roles, and every non-public route refuses anonymous and wrong-role callers.

The test walks the OpenAPI document, so a new route is covered the moment it exists.
"""

from __future__ import annotations

import re
import uuid

import pytest

from server.app.security import declared_roles
from server.core import accounts
from server.core.models import Role
from server.core.roles import SESSION_COOKIE_KEY
from tests.conftest import login

# Routes meant for anyone. Adding one here is a deliberate, reviewed decision.
PUBLIC_OPERATIONS = {
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/.well-known/jwks.json"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/refresh"),
    ("POST", "/api/auth/terminal-login"),
    ("POST", "/api/terminals/enroll"),
    ("GET", "/api/ledger/head"),
    ("GET", "/api/ledger/proofs/inclusion/{seq}"),
    ("GET", "/api/ledger/proofs/consistency"),
    ("GET", "/api/credentials/status-lists/{agency_code}"),
    ("GET", "/v/{token}"),
    ("GET", "/v/{token}/photo"),
    ("GET", "/d/{document_id}"),
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    # tus for generic clients and evidence content: the role guard lets them through, the route
    # itself requires an upload-scoped token or a logged playback ticket (media.tokens).
    ("POST", "/api/media/tus"),
    ("HEAD", "/api/media/tus/{upload_id}"),
    ("PATCH", "/api/media/tus/{upload_id}"),
    ("DELETE", "/api/media/tus/{upload_id}"),
    ("GET", "/api/media/evidence/{evidence_id}/content"),
}
# The API documentation and the public disclosure portal (公示) are for everyone by design.
PUBLIC_PREFIXES = ("/schema", "/gongshi", "/api/gongshi")
SINGLE_ROLE_USERS = {
    Role.REVIEWER: "reviewer",
    Role.AGENCY_ADMIN: "only-agency-admin",
    Role.SYSTEM_ADMIN: "only-system-admin",
}


def _operations(app):
    """(method, path, concrete path, declared roles, console page) for every handler of the app.

    Walks the routes themselves, a superset of the OpenAPI document: console pages are left out
    of the schema but must refuse just the same.
    """
    documented = {
        (method.upper(), path)
        for path, item in app.openapi_schema.to_schema()["paths"].items()
        for method in item
    }
    seen = set()
    for route in app.routes:
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)
        concrete = re.sub(r"\{\w+:uuid\}", str(uuid.UUID(int=1)), route.path)
        concrete = re.sub(r"\{\w+:\w+\}", "1", concrete)
        for handler in route.route_handlers:
            for method in getattr(handler, "http_methods", ()):
                if method == "OPTIONS":
                    continue
                seen.add((method, path))
                console = SESSION_COOKIE_KEY in handler.opt
                yield method, path, concrete, declared_roles(handler), console
    assert {(m, p) for m, p in documented if m != "OPTIONS"} <= seen


async def test_every_route_declares_roles_and_public_ones_are_known(app):
    operations = list(_operations(app))
    assert operations
    for method, path, _concrete, roles, _console in operations:
        assert roles is not None, f"{method} {path} declares no roles"
        if roles == "public" and not path.startswith(PUBLIC_PREFIXES):
            assert (method, path) in PUBLIC_OPERATIONS, f"{method} {path} is public but not listed"


@pytest.fixture
async def callers(client, context, seeded, officer_terminal):
    """Auth headers for anonymous, an officer on his terminal, and one user per staff role."""
    async with context.database.transaction() as session:
        agency = await accounts.agency_by_code(session, "demo")
        for role in (Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN):
            await accounts.create_user(
                session,
                await context.keyring(),
                username=SINGLE_ROLE_USERS[role],
                password="zhifa-demo-2026",
                display_name=str(role),
                roles=[role],
                agency_id=agency.id,
                now=context.clock.now(),
            )
    staff = {role: await login(client, username) for role, username in SINGLE_ROLE_USERS.items()}
    return staff, officer_terminal


async def test_every_protected_route_refuses_anonymous_and_wrong_roles(app, client, callers):
    staff, officer = callers
    checked = 0
    for method, path, concrete, roles, console in _operations(app):
        if roles == "public":
            continue
        anonymous = await client.request(method, concrete)
        if console:  # a person in a browser is sent to the login page instead
            assert anonymous.status_code == 303, (
                f"anonymous {method} {path}: {anonymous.status_code}"
            )
            assert anonymous.headers["location"].startswith("/console/login")
        else:
            assert anonymous.status_code == 401, (
                f"anonymous {method} {path}: {anonymous.status_code}"
            )
            assert anonymous.headers["content-type"].startswith("application/problem+json")
        for role, headers in staff.items():
            if role not in roles:
                refused = await client.request(method, concrete, headers=headers)
                assert refused.status_code == 403, f"{role} {method} {path}: {refused.status_code}"
        if Role.OFFICER not in roles:
            refused = await client.request(
                method, concrete, headers=officer.headers(method, concrete)
            )
            assert refused.status_code == 403, f"officer {method} {path}: {refused.status_code}"
        checked += 1
    assert checked >= 5
