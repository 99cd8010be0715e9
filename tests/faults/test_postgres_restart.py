"""PostgreSQL restarted under load (a private cluster, crashed with ``pg_ctl -m immediate``):
during the outage every request fails cleanly, as problem+json 503 with a stable code and a
Retry-After, never a 500; afterwards the same server process serves again, and the terminal's
events queued meanwhile all arrive once."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge_agent.client import EdgeError, ServerRefused
from server.app import demo
from tests.conftest import LiveServer
from tests.faults.fleet import (
    OFFICER,
    PARTNER,
    enrolled_agent,
    note,
    staff_headers,
    without_uploads,
)
from tests.faults.private_postgres import PrivatePostgres

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def database_url(private_postgres: PrivatePostgres) -> str:
    import asyncpg

    name = f"zhifa_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        connection = await asyncpg.connect(private_postgres.admin_url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()

    asyncio.run(create())
    return private_postgres.url(name)


@dataclass(frozen=True)
class Answer:
    at: float
    kind: str
    status: int  # 0: the client got no answer at all
    code: str = ""
    problem_json: bool = False
    retry_after: str | None = None


class Load:
    """Clients that keep calling the server: staff reads, staff logins, a terminal syncing."""

    def __init__(self, url: str, home: Path) -> None:
        self.url = url
        self.answers: list[Answer] = []
        self.stop = threading.Event()
        self.reviewer = staff_headers(url, "reviewer")
        self.agent = without_uploads(
            enrolled_agent(url, staff_headers(url, "admin"), home, "负载终端")
        )
        self.case_id = str(
            self.agent.desk.open_case(
                item_code="WH-JC-001",
                region="示范市城东区",
                title="数据库重启演练",
                partners=[PARTNER],
            ).case_id
        )
        self.written: list[str] = []
        self._threads = [
            threading.Thread(target=self._loop, args=(kind, call))
            for kind, call in (
                ("cases", self._cases),
                ("login", self._login),
                ("ready", self._ready),
                ("sync", self._sync),
            )
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join()

    def _loop(self, kind: str, call: Callable[[httpx.Client], Answer | None]) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    answer = call(http)
                except httpx.TransportError:
                    answer = Answer(started, kind, 0)
                if answer is not None:
                    self.answers.append(answer)
                time.sleep(0.05)

    @staticmethod
    def _answer(kind: str, response: httpx.Response) -> Answer:
        problem = response.headers.get("content-type", "").startswith(PROBLEM_JSON)
        return Answer(
            time.monotonic(),
            kind,
            response.status_code,
            response.json().get("code", "") if problem else "",
            problem,
            response.headers.get("retry-after"),
        )

    def _cases(self, http: httpx.Client) -> Answer:
        return self._answer("cases", http.get("/api/cases", headers=self.reviewer))

    def _login(self, http: httpx.Client) -> Answer:
        body = {"username": "reviewer", "password": demo.DEMO_PASSWORD}
        return self._answer("login", http.post("/api/auth/login", json=body))

    def _ready(self, http: httpx.Client) -> Answer:
        return self._answer("ready", http.get("/ready"))

    def _sync(self, _: httpx.Client) -> Answer:
        self.written.append(note(self.agent, self.case_id, "现场照片"))
        try:
            self.agent.sync()
        except ServerRefused as exc:
            return Answer(time.monotonic(), "sync", exc.status, exc.code, True, "")
        except EdgeError:
            return Answer(time.monotonic(), "sync", 0)
        return Answer(time.monotonic(), "sync", 200)


async def test_postgres_restarted_under_load(
    private_postgres: PrivatePostgres, server: LiveServer, tmp_path: Path
) -> None:
    process = server.process
    assert process is not None
    with Load(server.url, tmp_path / "terminal") as load:
        time.sleep(2)
        private_postgres.crash()
        down_at = time.monotonic()
        time.sleep(4)
        up_at = time.monotonic()
        private_postgres.start()
        # Recovered: every kind of request succeeds again, on the same server process.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recent = {a.kind: a.status for a in load.answers if a.at > up_at + 1}
            if len(recent) == 4 and set(recent.values()) == {200}:
                break
            time.sleep(0.2)
    assert process.poll() is None and server.process is process  # never restarted

    by_kind = collections.defaultdict(list)
    for answer in load.answers:
        by_kind[answer.kind].append(answer)
    failures = [a for a in load.answers if a.status != 200]
    # Clean failures only: 503 problem+json with the stable code and a Retry-After; never a
    # 500, never a dropped connection.
    assert failures, "the outage went unnoticed"
    for answer in failures:
        assert answer.status == 503 and answer.problem_json, answer
        assert answer.code in ("database_unavailable", "service_unavailable"), answer
        assert answer.kind == "sync" or answer.retry_after, answer
    for kind, answers in by_kind.items():
        during = [a for a in answers if down_at + 0.5 < a.at < up_at]
        assert during and all(a.status == 503 for a in during), (kind, during)
        assert answers[-1].status == 200, (kind, answers[-1])
    assert "Traceback" not in server.log_path.read_text(errors="replace")

    # Nothing the terminal recorded during the outage was lost, nothing stored twice.
    with load.agent as agent:
        agent.sync()
        assert agent.status().queued == 0
    cases = httpx.get(f"{server.url}/api/cases/{load.case_id}", headers=load.reviewer).json()
    timeline = [e["id"] for e in cases["timeline"] if e["kind"] == "evidence_attached"]
    assert timeline == load.written
    assert OFFICER in cases["timeline"][0]["officers"]
