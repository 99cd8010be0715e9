"""Who may call a route. Every handler declares it in ``opt``; server.app.security's one guard reads it.

Areas sit below server.app in the layers, so the declaration lives here where all of them can use it:
``@get("/x", opt=allow(Role.REVIEWER))`` or ``opt=PUBLIC``.
"""

from __future__ import annotations

from typing import Any

from server.core.models import Role

ROLES_KEY = "roles"
# Console pages may carry the session in this cookie instead of the Authorization header.
SESSION_COOKIE_KEY = "session_cookie"
# The staff console's session cookie, set by its login page; every area's console pages read it.
CONSOLE_COOKIE = "zhifa_console"
# Anyone may call it; routes that check a scoped token themselves (tus uploads, media tickets)
# are public to the guard too and listed as such in tests/test_route_roles.py.
PUBLIC: dict[str, Any] = {ROLES_KEY: "public"}
ANY_STAFF = (Role.OFFICER, Role.REVIEWER, Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN)
ADMINS = (Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN)
STAFF_READERS = (Role.REVIEWER, Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN)


def allow(*roles: Role) -> dict[str, Any]:
    if not roles:
        raise ValueError("name at least one role, or use PUBLIC")
    return {ROLES_KEY: frozenset(roles)}


def allow_console(cookie: str, *roles: Role) -> dict[str, Any]:
    """A console page: like ``allow``, and the session may come from the named cookie."""
    return allow(*roles) | {SESSION_COOKIE_KEY: cookie}
