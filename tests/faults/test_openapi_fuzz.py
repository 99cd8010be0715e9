"""schemathesis against the server's OpenAPI document (/schema/openapi.json), served by a live
server on a seeded database: for every operation, a few generated requests (valid and not) with
the credentials of a role the route admits (a staff bearer token, or an officer's token with a
fresh DPoP proof from an enrolled terminal). No 5xx, and every answer matches its schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import checks

from server.app import demo, migrate
from server.app.context import AppContext
from server.app.main import create_app
from server.app.security import declared_roles
from server.core.clock import Clock
from server.core.db import Database
from server.core.models import Role
from server.core.settings import Settings, load_settings
from tests.conftest import LiveServer, TerminalIdentity, enroll_and_login, free_port

EXAMPLES = 6
# Who calls a route, by the roles it admits: the first of these that it admits.
CALLERS = (Role.AGENCY_ADMIN, Role.SYSTEM_ADMIN, Role.REVIEWER, Role.OFFICER)


class Callers:
    def __init__(self, url: str, roles: dict[tuple[str, str], frozenset[str] | str | None]) -> None:
        self.url = url
        self.roles = roles
        self.staff = {
            role: _bearer(url, username)
            for role, username in ((Role.AGENCY_ADMIN, "admin"), (Role.REVIEWER, "reviewer"))
        }
        self.staff[Role.SYSTEM_ADMIN] = self.staff[Role.AGENCY_ADMIN]  # admin holds both
        self.terminal = asyncio.run(_terminal(url))

    def headers(self, method: str, path_template: str, path: str) -> dict[str, str]:
        roles = self.roles.get((method, path_template))
        if not isinstance(roles, frozenset):
            return {}
        role = next((r for r in CALLERS if r in roles), None)
        if role is Role.OFFICER:
            return self.terminal.headers(method, f"{self.url}{path}")
        return self.staff.get(role, {}) if role else {}


def _bearer(url: str, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{url}/api/auth/login", json={"username": username, "password": demo.DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def _terminal(url: str) -> TerminalIdentity:
    async with httpx.AsyncClient(base_url=url) as http:
        code = await http.post(
            "/api/terminals/enrollment-codes", json={}, headers=_bearer(url, "admin")
        )
        return await enroll_and_login(http, code.json()["enrollment_code"], "13010001")


async def _seeded(settings: Settings) -> None:
    database = Database(settings)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    context = AppContext(settings, Clock())
    try:
        await demo.seed(context)
    finally:
        await context.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Callers]]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    config = load_settings(
        environ={},
        data_dir=str(folder / "var"),
        database_url=f"sqlite+aiosqlite:///{folder / 'zhifa.db'}",
        port=free_port(),
    )
    asyncio.run(_seeded(config))
    roles = {}
    for route in create_app(config, Clock()).routes:
        for handler in route.route_handlers:
            for method in getattr(handler, "http_methods", ()):
                roles[(method, route.path_format)] = declared_roles(handler)
    server = LiveServer(config, folder / "server.log")
    server.start()
    try:
        yield server, Callers(server.url, roles)
    finally:
        server.stop()


def test_every_operation_answers_per_its_schema(live: tuple[LiveServer, Callers]) -> None:
    server, callers = live
    api = schemathesis.openapi.from_url(f"{server.url}/schema/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # no shrinking: bounded time
            database=None,
        )
        def call(case: schemathesis.Case) -> None:
            headers = callers.headers(case.method.upper(), case.path, case.formatted_path)
            case.call_and_validate(
                base_url=server.url,
                headers=headers,
                checks=[checks.not_a_server_error, checks.response_schema_conformance],
            )

        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis raises a FailureGroup
            failures.append(f"{operation.label}: {exc}")
    assert operations > 50
    assert not failures, "\n\n".join(failures)
