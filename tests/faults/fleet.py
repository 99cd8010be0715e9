"""A fleet of real edge terminals working against a live server while a test breaks things.

Each terminal is a real ``edge_agent.Agent`` home: enrolled, officer logged in, one real recording
(media.edge recorder, synthetic picture and tone) waiting in its recordings folder. While the
faults run, every terminal has two threads: one records case events and syncs them in small
batches (the edge sync), one uploads the recording with the edge tus uploader, rate-capped so
the transfer spans the faults. Both retry whatever fails, as a terminal in the field does, until
everything is on the server. ``verify`` then checks the server's database and storage: every
recording sealed byte-identical exactly once, every event stored and ledgered exactly once, and
each terminal's events in the order it wrote them.
"""

from __future__ import annotations

import collections
import hashlib
import random
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select

from edge_agent.agent import Agent
from edge_agent.client import EdgeError
from edge_agent.recordings import Recordings, upload_after_sync
from media.models import Evidence, Recording
from mobile_api.models import CaseEvent
from server.app import demo
from server.app.context import AppContext
from server.core.clock import Clock
from server.core.settings import Settings
from tests._case_events import ledgered_events
from tests.media_support import concatenated, record

OFFICER, PARTNER = "13010001", "13010002"


def staff_headers(url: str, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{url}/api/auth/login",
        json={"username": username, "password": demo.DEMO_PASSWORD},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def enrollment_code(url: str, admin: dict[str, str]) -> str:
    response = httpx.post(f"{url}/api/terminals/enrollment-codes", json={}, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["enrollment_code"])


def enrolled_agent(url: str, admin: dict[str, str], home: Path, name: str) -> Agent:
    agent = Agent(home, batch_size=5)
    agent.session.enroll(url, enrollment_code(url, admin), name)
    agent.login(OFFICER, demo.DEMO_PASSWORD)
    return agent


def note(agent: Agent, case_id: str, text: str) -> str:
    """One more event on the case: a photo taken. (An action toward the party, such as an
    inspection, would first need both officers' credentials checked on the terminal.)"""
    fields = {"evidence_id": str(uuid.uuid4()), "evidence_kind": "照片", "description": text}
    return str(agent.desk.record(case_id, "evidence_attached", fields).id)


def without_uploads(agent: Agent) -> Agent:
    """The sync thread leaves uploads to the upload thread (one uploader per recording)."""
    agent.syncer.after_sync = [
        hook
        for hook in agent.syncer.after_sync
        if getattr(hook, "func", None) is not upload_after_sync
    ]
    return agent


@dataclass
class Terminal:
    home: Path
    terminal_id: str
    recording_id: str
    data: bytes  # the recording's segments concatenated: what the sealed evidence must be
    events_wanted: int
    events_written: list[str] = field(default_factory=list)  # ids in the order written
    sealed_evidence: str | None = None
    failure: str | None = None


class Fleet:
    def __init__(
        self,
        url: str,
        root: Path,
        size: int,
        rng: random.Random,
        *,
        events: tuple[int, int] = (20, 40),
        seconds: float = 3.0,
    ) -> None:
        admin = staff_headers(url, "admin")
        self.rng = rng
        self.terminals: list[Terminal] = []
        for n in range(size):
            home = root / f"terminal-{n:02d}"
            with enrolled_agent(url, admin, home, f"故障演练终端 {n}") as agent:
                terminal_id = agent.session.row("terminal_id")
                recording = record(
                    home / "recordings", agent.session.device_key(), terminal_id, seconds
                )
            self.terminals.append(
                Terminal(
                    home,
                    terminal_id,
                    recording.recording_id,
                    concatenated(recording),
                    rng.randint(*events),
                )
            )
        self.stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- the work ----------------------------------------------------------------------------------

    def start(self, *, upload_rate: float, chunk_size: int = 16 * 1024) -> None:
        for terminal in self.terminals:
            seed = self.rng.randrange(2**32)
            for target, args in (
                (self._sync_loop, (random.Random(seed),)),
                (self._upload_loop, (upload_rate, chunk_size)),
            ):
                thread = threading.Thread(target=self._guarded, args=(terminal, target, *args))
                thread.start()
                self._threads.append(thread)

    def _guarded(self, terminal: Terminal, target, *args) -> None:  # type: ignore[no-untyped-def]
        try:
            target(terminal, *args)
        except Exception:
            terminal.failure = traceback.format_exc()

    def _sync_loop(self, terminal: Terminal, rng: random.Random) -> None:
        with without_uploads(Agent(terminal.home, batch_size=5)) as agent:
            case_id = str(
                agent.desk.open_case(
                    item_code="WH-JC-001",
                    region="示范市城东区",
                    title=f"故障演练巡查 {terminal.terminal_id[:8]}",
                    partners=[PARTNER],
                ).case_id
            )
            terminal.events_written.append(self._last_event(agent))
            while not self.stop.is_set():
                for _ in range(
                    min(rng.randint(1, 8), terminal.events_wanted - len(terminal.events_written))
                ):
                    terminal.events_written.append(
                        note(agent, case_id, f"现场照片 {rng.randrange(10**6)}")
                    )
                try:
                    agent.sync()
                except EdgeError:
                    time.sleep(rng.uniform(0.05, 0.3))  # offline or refused for now: try again
                    continue
                if (
                    len(terminal.events_written) >= terminal.events_wanted
                    and agent.status().queued == 0
                ):
                    return

    @staticmethod
    def _last_event(agent: Agent) -> str:
        return str(agent.store.one("SELECT id FROM events ORDER BY seq DESC LIMIT 1")["id"])

    def _upload_loop(self, terminal: Terminal, rate: float, chunk_size: int) -> None:
        with Agent(terminal.home) as agent:
            recordings = Recordings(terminal.home, agent.session, agent.desk)
            while not self.stop.is_set():
                try:
                    outcomes = recordings.upload_all(
                        max_bytes_per_second=rate, chunk_size=chunk_size, stall_seconds=20
                    )
                except EdgeError:
                    time.sleep(0.2)
                    continue
                for outcome in outcomes:
                    assert outcome.state != "refused", outcome.message
                    if outcome.state == "sealed":
                        terminal.sealed_evidence = outcome.evidence_id
                if terminal.sealed_evidence is not None:
                    return

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stop.set()
        for thread in self._threads:
            thread.join()
        failures = [t.failure for t in self.terminals if t.failure]
        assert not failures, failures[0]
        assert not any(thread.is_alive() for thread in self._threads)

    # -- the proof ---------------------------------------------------------------------------------

    async def verify(self, settings: Settings) -> dict[str, int]:
        """Everything arrived exactly once; returns counts for the test's report."""
        for terminal in self.terminals:
            assert terminal.sealed_evidence, f"{terminal.recording_id} was not sealed"
            assert len(terminal.events_written) >= terminal.events_wanted
        context = AppContext(settings, Clock())
        try:
            async with context.database.sessionmaker() as session:
                stored = (
                    await session.execute(
                        select(CaseEvent.terminal_id, CaseEvent.id, CaseEvent.outcome).order_by(
                            CaseEvent.hlc
                        )
                    )
                ).all()
                sealed = (
                    await session.execute(
                        select(Recording.recording_key, Recording.status, func.count(Evidence.id))
                        .outerjoin(Evidence, Evidence.recording_id == Recording.id)
                        .group_by(Recording.recording_key, Recording.status)
                    )
                ).all()
            ledger = await ledgered_events(context)
        finally:
            await context.close()

        by_terminal: dict[str, list[str]] = collections.defaultdict(list)
        for terminal_id, event_id, outcome in stored:
            assert outcome == "accepted", (event_id, outcome)
            by_terminal[str(terminal_id)].append(str(event_id))
        ledgered = collections.Counter(entry["event"] for entry in ledger)
        for terminal in self.terminals:
            # Stored once each (the id is the key), in the order written (timeline order = HLC).
            assert by_terminal[terminal.terminal_id] == terminal.events_written
            assert all(ledgered[event] == 1 for event in terminal.events_written)
        assert sum(ledgered.values()) == len(stored)

        counts = {key: (status.value, n) for key, status, n in sealed}
        assert counts == {t.recording_id: ("sealed", 1) for t in self.terminals}
        media = Path(settings.resolved_media_dir)
        stored_files = {
            hashlib.sha256(path.read_bytes()).hexdigest()
            for path in (media / "evidence").rglob("*.ts")
        }
        assert stored_files == {hashlib.sha256(t.data).hexdigest() for t in self.terminals}
        assert len(list((media / "evidence").rglob("*.ts"))) == len(self.terminals)
        return {"events": len(stored), "recordings": len(counts)}
