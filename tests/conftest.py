"""Shared fixtures: every database test runs on SQLite and on PostgreSQL (when reachable)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar

from mobile_api.contracts.device_proof import make_device_proof, public_key_b64
from server.app import demo, migrate
from server.app.context import AppContext
from server.app.main import create_app
from server.core.clock import FrozenClock
from server.core.db import Database
from server.core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def _postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


POSTGRES_UP = _postgres_reachable()


def require_postgres() -> None:
    if POSTGRES_UP:
        return
    if os.environ.get("ZHIFA_REQUIRE_POSTGRES") == "1":
        pytest.fail("ZHIFA_REQUIRE_POSTGRES=1 but PostgreSQL does not answer at 127.0.0.1:5432")
    pytest.skip("PostgreSQL does not answer at 127.0.0.1:5432 (user postgres, trust auth)")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """argon2id at the library's cost takes ~60 ms a hash and every seeded test hashes eight;
    tests check behaviour, not the cost, so they hash cheaply. Verification reads the cost from
    the stored hash, so servers started by tests follow along."""
    from argon2 import PasswordHasher

    from server.core import auth

    saved = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    auth._hasher = saved


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'zhifa.db'}"
        return
    require_postgres()
    name = f"zhifa_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        environ={}, data_dir=str(tmp_path / "var"), database_url=database_url, port=free_port()
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC))


@pytest.fixture
async def migrated(settings: Settings) -> Settings:
    database = Database(settings)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    return settings


@pytest.fixture
def app(migrated: Settings, clock: FrozenClock) -> Litestar:
    return create_app(migrated, clock)


@pytest.fixture
def context(app: Litestar) -> AppContext:
    return app.state.context


@pytest.fixture
async def client(app: Litestar, context: AppContext) -> AsyncIterator[httpx.AsyncClient]:
    """Requests served in the test's own event loop, so fixtures and app share the pool."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver.local"
    ) as test_client:
        yield test_client
    await context.close()


@pytest.fixture
async def seeded(context: AppContext) -> demo.DemoInfo:
    return await demo.seed(context)


async def login(client: httpx.AsyncClient, username: str) -> dict[str, str]:
    """Authorization headers for a demo user."""
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": demo.DEMO_PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """``zhifa serve`` in its own process (uvicorn, real HTTP), which tests may kill and restart."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.url = f"http://127.0.0.1:{settings.port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ZHIFA_DATA_DIR=self.settings.data_dir,
            ZHIFA_DATABASE_URL=self.settings.resolved_database_url,
            ZHIFA_PORT=str(self.settings.port),
            ZHIFA_LOG_LEVEL="warning",
        )
        return env

    def start(self, timeout: float = 30) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server.app.cli", "serve"],
            cwd=ROOT,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not become healthy in time")

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def live_server(migrated: Settings, tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(migrated, tmp_path / "server.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class TerminalIdentity:
    """An enrolled terminal with an officer logged in: signs every request with its device key."""

    def __init__(
        self,
        key: Ed25519PrivateKey,
        terminal_id: str,
        tokens: dict[str, object],
        now: Callable[[], float],
    ) -> None:
        self.key = key
        self.terminal_id = terminal_id
        self.tokens = tokens
        self.now = now

    @property
    def access_token(self) -> str:
        return str(self.tokens["access_token"])

    def headers(self, method: str, url: str) -> dict[str, str]:
        """Authorization plus a fresh DPoP proof for this exact request (``url`` may be a path)."""
        return {
            "Authorization": f"DPoP {self.access_token}",
            "DPoP": make_device_proof(self.key, method, url, self.access_token, now=self.now()),
        }


async def enroll_and_login(
    client: httpx.AsyncClient,
    enrollment_code: str,
    username: str,
    name: str = "测试终端",
    now: Callable[[], float] = time.time,
) -> TerminalIdentity:
    """Enroll a new terminal with the code, then log the officer in on it.

    ``now`` is the terminal's clock for its proofs: the test's FrozenClock when the app uses one.
    """
    key = Ed25519PrivateKey.generate()
    enrolled = await client.post(
        "/api/terminals/enroll",
        json={"enrollment_code": enrollment_code, "name": name, "public_key": public_key_b64(key)},
        headers={"DPoP": make_device_proof(key, "POST", "/api/terminals/enroll", now=now())},
    )
    assert enrolled.status_code == 201, enrolled.text
    tokens = await client.post(
        "/api/auth/terminal-login",
        json={"username": username, "password": demo.DEMO_PASSWORD},
        headers={"DPoP": make_device_proof(key, "POST", "/api/auth/terminal-login", now=now())},
    )
    assert tokens.status_code == 200, tokens.text
    return TerminalIdentity(key, enrolled.json()["terminal_id"], tokens.json(), now)


@pytest.fixture
async def officer_terminal(
    client: httpx.AsyncClient, seeded: demo.DemoInfo, clock: FrozenClock
) -> TerminalIdentity:
    """Officer 13010001 (张明) logged in on a freshly enrolled terminal."""
    return await enroll_and_login(
        client, seeded.enrollment_code, "13010001", now=lambda: clock.now().timestamp()
    )
