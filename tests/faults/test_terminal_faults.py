"""The terminal's own troubles: its disk fills up while recording, its clock is hours wrong, it
stays offline for days with thousands of events queued. Nothing is lost or corrupted, the order
the officer acted in is kept, and the server's deadlines run on the server's time."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from sqlalchemy import select

from edge_agent.agent import Agent, utc_now
from edge_agent.client import Offline
from edge_agent.recordings import RECORDINGS_DIR, Recordings, Take, capture
from media.edge.capture import SyntheticSource
from media.edge.config import RecorderConfig
from media.edge.storage import RecordingDir
from mobile_api.contracts.credential import china_date
from mobile_api.models import CaseEvent
from server.app.context import AppContext
from server.core.clock import Clock
from tests.conftest import LiveServer
from tests.faults.fleet import PARTNER, enrolled_agent, note, staff_headers, without_uploads
from tests.media_support import concatenated

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def agent_for(server: LiveServer, home: Path) -> Agent:
    return enrolled_agent(server.url, staff_headers(server.url, "admin"), home, "故障终端")


def open_case(agent: Agent, title: str) -> str:
    return str(
        agent.desk.open_case(
            item_code="WH-JC-001", region="示范市城东区", title=title, partners=[PARTNER]
        ).case_id
    )


# -- the disk fills while recording -----------------------------------------------------------


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[None]:
    """A tmpfs of ``size`` at ``path``: a disk that really runs full (ENOSPC). The recorder keeps
    a reserve of 64 MiB (RecorderConfig.reserve_bytes), so the disk must be a little larger."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace')}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(path: Path) -> None:
    """Another program takes every byte left on the disk."""
    with open(path / "filler.bin", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def test_disk_fills_during_recording(server: LiveServer, tmp_path: Path) -> None:
    home = tmp_path / "terminal"
    disk = home / RECORDINGS_DIR
    config = RecorderConfig(
        width=160, height=120, fps=10, pre_record_seconds=0, segment_seconds=0.5, preset="ultrafast"
    )
    with small_disk(disk, "72m"), agent_for(server, home) as agent:
        recordings = Recordings(home, agent.session, agent.desk)
        source = SyntheticSource(
            epoch=dt.datetime.now(dt.UTC), width=160, height=120, fps=10, duration=600
        )

        def frames() -> Iterator[av.VideoFrame | av.AudioFrame]:
            for frame in source.frames():
                if (
                    frame.time is not None
                    and frame.time >= 5
                    and not (disk / "filler.bin").exists()
                ):
                    fill(disk)  # five seconds in, the disk is full
                yield frame

        recorder = recordings.recorder(config, epoch=source.epoch)
        result = capture(
            recordings,
            recorder,
            frames(),
            Take(press_after=0),
            stop=threading.Event(),
            pressed=threading.Event(),
        )
        recorder.close()
        directory = RecordingDir(disk / result.recording_id)
        chain = directory.load_chain()
        # Stopped by the full disk, the chain closed and signed over every segment kept, no
        # half-written segment left behind, and the segments play.
        assert result.stop_reason in ("write_error", "storage_full"), result
        assert chain.head is not None and chain.head.closed
        assert directory.verify(agent.session.device_key().public_key(), require_closed=True) == []
        assert not list(disk.rglob("*.part"))
        assert 4 <= result.seconds <= 6, result
        data = concatenated(directory)
        with av.open(io.BytesIO(data)) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 40

        # Uploaded once there is network: sealed byte-identical.
        (disk / "filler.bin").unlink()
        (outcome,) = recordings.upload_all()
        assert outcome.state == "sealed", outcome
        evidence = httpx.get(
            f"{server.url}/api/media/evidence/{outcome.evidence_id}",
            headers=staff_headers(server.url, "reviewer"),
        ).json()
        assert evidence["sha256"] == hashlib.sha256(data).hexdigest()


# -- the clock is hours wrong -----------------------------------------------------------------

SKEW = dt.timedelta(hours=-30)  # always a different calendar day than the server's


def test_clock_hours_wrong(server: LiveServer, tmp_path: Path) -> None:
    home = tmp_path / "terminal"
    agent_for(server, home).close()
    with without_uploads(Agent(home, clock=lambda: utc_now() + SKEW)) as agent:
        # The terminal also believes the server's clock agrees with its own.
        with agent.store.transaction() as db:
            db.set_meta("server_clock_offset", str(SKEW.total_seconds()))
        case_id = open_case(agent, "时钟偏差演练")
        note(agent, case_id, "现场照片")
        report = agent.sync()
        assert (report.accepted, report.rejected) == (2, 0), report
    view = httpx.get(
        f"{server.url}/api/cases/{case_id}", headers=staff_headers(server.url, "reviewer")
    ).json()
    opened = view["timeline"][0]
    terminal_time = dt.datetime.fromisoformat(opened["terminal_time"])
    recorded_at = dt.datetime.fromisoformat(opened["recorded_at"])
    assert abs(recorded_at - terminal_time - -SKEW) < dt.timedelta(minutes=5)  # kept as sent
    (decision,) = [d for d in view["deadlines"] if d["code"] == "decision"]
    # The 90 days run from the day the server accepted the filing, not the terminal's day.
    assert dt.date.fromisoformat(decision["start"]) == china_date(recorded_at)
    assert dt.date.fromisoformat(decision["start"]) != china_date(terminal_time)
    assert dt.date.fromisoformat(decision["due"]) >= china_date(recorded_at) + dt.timedelta(90)


# -- offline for days -------------------------------------------------------------------------

EVENTS = 3000
DAYS = 4


class WorkingDays:
    """The terminal's clock over days of field work: it moves on with every action."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(days=DAYS) / EVENTS
        return self.now


async def test_offline_for_days(server: LiveServer, tmp_path: Path) -> None:
    home = tmp_path / "terminal"
    agent_for(server, home).close()
    server.kill()  # no network from here on
    clock = WorkingDays(utc_now() - dt.timedelta(days=DAYS + 1))
    with without_uploads(Agent(home, clock=clock)) as agent:
        cases: list[str] = []
        for n in range(EVENTS):
            if n % 500 == 0:
                cases.append(open_case(agent, f"离线第 {n // 500 + 1} 案"))
            else:
                note(agent, cases[-1], f"现场照片 {n}")
        with pytest.raises(Offline):
            agent.sync()
        written = [r["id"] for r in agent.store.query("SELECT id FROM events ORDER BY seq")]
        assert len(written) == EVENTS and agent.status().queued == EVENTS

        server.start()
        report = agent.sync()
        assert (report.accepted, report.rejected, report.deferred) == (EVENTS, 0, 0), report
        assert agent.status().queued == 0

    context = AppContext(server.settings, Clock())
    try:
        async with context.database.sessionmaker() as session:
            rows = (
                await session.execute(
                    select(CaseEvent.id, CaseEvent.terminal_time).order_by(CaseEvent.hlc)
                )
            ).all()
    finally:
        await context.close()
    # Every event once, in the order the officer acted, with the terminal's days of timestamps.
    assert [str(r.id) for r in rows] == written
    times = [r.terminal_time for r in rows]
    assert times == sorted(times) and times[-1] - times[0] > dt.timedelta(days=DAYS - 1)
