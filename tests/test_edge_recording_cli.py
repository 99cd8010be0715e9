"""The officer's recording commands against a real server process (SQLite, real HTTP): record
synthetic video through the CLI, attach it to a case, upload it with a progress bar while the
``zhifa-edge upload`` process is SIGKILLed midway, the sealed evidence byte-identical, local files
cleared only after sealing; upload through ``sync``; a full storage stops the recording cleanly;
the local API."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from edge_agent.agent import Agent
from edge_agent.cli import main as cli
from edge_agent.local_api import create_app
from edge_agent.recordings import RECORDINGS_DIR
from media.edge.storage import RecordingDir
from media.edge.uploader import SEALED_RECEIPT, read_receipt
from tests.conftest import ROOT
from tests.media_support import concatenated
from tests.test_edge_agent import PASSWORD, enrollment_code, staff_headers

CLI = [sys.executable, "-m", "edge_agent.cli"]
SMALL = ["--width", "160", "--height", "120", "--fps", "10", "--segment-seconds", "1"]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'zhifa.db'}"


def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> str:
    result = run(home, *args)
    assert result.exit_code == 0, result.output
    return result.output


def video(home: Path, *args: str):
    return run(home, "video", "--source", "synthetic", "--pace", "0", *SMALL, *args)


def upload_process(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--home", str(home), "upload", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def listed(home: Path) -> dict[str, dict]:
    data = json.loads(ok(home, "recordings", "--json"))
    return {line["recording_id"]: line for line in data["recordings"]}


async def test_record_attach_upload_killed_and_sealed(seeded, live_server, tmp_path):
    home = tmp_path / "terminal"
    ok(home, "enroll", live_server.url, enrollment_code(live_server), "--name", "录像终端")
    ok(home, "login", "13010001", "--password", PASSWORD)
    case_id = ok(
        home,
        "open",
        "--item",
        "WH-CF-001",
        "--region",
        "示范市城东区",
        "--title",
        "录像案",
        "--partner",
        "13010002",
    ).strip()

    # Record 10 s after 2 s of standby (the pre-record buffer), with a partner and a position.
    recorded = video(
        home, "--seconds", "10", "--pre-record", "2", "--officer", "13010002", "--gps", "23.1,113.3"
    )
    assert recorded.exit_code == 0, recorded.output
    recording_id = recorded.stdout.strip()
    directory = RecordingDir(home / RECORDINGS_DIR / recording_id)
    meta, chain = directory.load_meta(), directory.load_chain()
    with Agent(home) as agent:
        terminal_id = agent.session.row("terminal_id")
    assert chain.terminal_id == meta.terminal_id == terminal_id
    assert chain.credential_no == "13010001" and meta.officers == ["13010001", "13010002"]
    assert meta.positions[0].lat == 23.1 and meta.case_id is None
    assert meta.pre_record_s == pytest.approx(2, abs=1.1) and meta.stop_reason == "officer"
    assert sum(s.duration_s for s in chain.segments) == pytest.approx(12, abs=1.1)
    assert chain.head is not None and chain.head.closed
    assert listed(home)[recording_id]["state"] == "waiting"

    # Attach to the case: refusals first, then the evidence-attached event in the outbox.
    assert run(home, "attach", "nope", "--case", case_id).exit_code == 2
    assert (
        run(
            home, "attach", recording_id, "--case", "00000000-0000-0000-0000-000000000000"
        ).exit_code
        == 2
    )
    assert "已关联案件" in ok(home, "attach", recording_id, "--case", case_id)
    assert directory.load_meta().case_id == case_id
    with Agent(home) as agent:
        queued = agent.store.one(
            "SELECT body FROM events WHERE kind = 'evidence_attached' AND status = 'queued'"
        )
    event = json.loads(queued["body"])
    assert event["recording_id"] == recording_id and event["evidence_kind"] == "音像记录"
    data = concatenated(directory)
    assert event["sha256"] == hashlib.sha256(data).hexdigest()

    # Upload, capped so it takes ~3 s; killed at a third, then run again to the end.
    limit = max(1, len(data) // 3 // 1024)
    first = upload_process(home, "--limit-kbps", str(limit), "--chunk-kb", "16")
    assert first.stderr is not None
    deadline = time.monotonic() + 30
    for line in first.stderr:
        if line.startswith("上传") and int(line.rstrip().rstrip("%").split()[-1]) >= 30:
            break
        assert time.monotonic() < deadline
    first.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    assert read_receipt(directory.path) is None and concatenated(directory) == data
    assert listed(home)[recording_id]["state"] == "uploading"
    second = upload_process(home, "--chunk-kb", "64")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert "100%" in err and "已上传并封存为证据" in out
    receipt = read_receipt(directory.path)
    assert receipt is not None and receipt.sha256 == hashlib.sha256(data).hexdigest()
    assert directory.segment_files() == []  # cleared, now that the server sealed it
    line = listed(home)[recording_id]
    assert line["state"] == "sealed" and line["evidence_id"] == receipt.evidence_id
    assert "没有待上传的录像" in ok(home, "upload")

    # The sealed evidence is exactly the concatenated segments.
    reviewer = staff_headers(live_server, "reviewer")
    path = f"{live_server.url}/api/media/evidence/{receipt.evidence_id}"
    item = httpx.get(path, headers=reviewer).json()
    assert item["case_id"] == case_id and (item["width"], item["height"]) == (160, 120)
    grant = httpx.post(f"{path}/access", json={"purpose": "download"}, headers=reviewer)
    assert grant.status_code == 201, grant.text
    assert httpx.get(live_server.url + grant.json()["url"]).content == data

    # Recorded for the case and uploaded by `sync` (after push and pull); the events arrive.
    second_id = video(home, "--case", case_id, "--seconds", "2", "--pre-record", "0").stdout
    second_id = second_id.strip()
    synced = ok(home, "sync")
    second_dir = home / RECORDINGS_DIR / second_id
    assert (second_dir / SEALED_RECEIPT).exists(), synced
    case = httpx.get(
        f"{live_server.url}/api/cases/{case_id}", headers=staff_headers(live_server, "admin")
    )
    assert case.status_code == 200, (synced, case.text)
    assert {e["recording_id"] for e in case.json()["file"]["evidence"]} == {
        recording_id,
        second_id,
    }

    # A sealed recording attached to another case: the server's evidence item follows.
    other = ok(home, "open", "--item", "WH-CF-001", "--region", "示范市城东区", "--title", "另案")
    ok(home, "attach", recording_id, "--case", other.strip())
    assert httpx.get(path, headers=reviewer).json()["case_id"] == other.strip()


async def test_storage_full_stops_cleanly_and_local_api(seeded, live_server, tmp_path):
    home = tmp_path / "terminal"
    ok(home, "enroll", live_server.url, enrollment_code(live_server), "--name", "小存储终端")
    ok(home, "login", "13010001", "--password", PASSWORD)
    # 0.2 MiB is a few seconds at this size: warned at once, then stopped at a segment cut.
    full = video(home, "--seconds", "600", "--pre-record", "0", "--quota-mb", "0.2")
    assert full.exit_code == 0, full.output
    assert "注意：存储空间仅够再录约" in full.stderr and "存储空间已满" in full.stderr
    directory = RecordingDir(home / RECORDINGS_DIR / full.stdout.strip())
    with Agent(home) as agent:
        key = agent.session.device_key()
    assert directory.verify(key.public_key(), require_closed=True) == []
    assert directory.load_meta().stop_reason == "storage_full"
    assert 0 < sum(f.stat().st_size for f in directory.segment_files()) <= 0.2 * 1024 * 1024
    refused = video(home, "--seconds", "5", "--pre-record", "0", "--quota-mb", "0.2")
    assert refused.exit_code == 2 and "存储空间不足" in refused.stderr

    # The local API: minutes left, start and stop a recording, list it with its state.
    with TestClient(create_app(home)) as api:
        space = api.get("/api/recordings/space").json()
        assert space["minutes_left"] > 0 and space["quota_bytes"] > 0
        started = api.post(
            "/api/recordings/start",
            json={"source": "synthetic", "width": 160, "height": 120, "fps": 10},
        )
        assert started.status_code == 201, started.text
        assert api.post("/api/recordings/start", json={}).status_code == 400
        time.sleep(1.5)
        stopped = api.post("/api/recordings/stop")
        assert stopped.status_code == 200, stopped.text
        new_id = stopped.json()["recording_id"]
        assert api.post("/api/recordings/stop").status_code == 400
        lines = {line["recording_id"]: line for line in api.get("/api/recordings").json()}
        assert lines[new_id]["state"] == "waiting" and lines[new_id]["seconds"] > 0
        assert RecordingDir(home / RECORDINGS_DIR / new_id).load_chain().head.closed

        # Standby keeps the last second; record pressed later starts with it.
        small = {"width": 160, "height": 120, "fps": 10, "pre_record_seconds": 1}
        assert api.post("/api/recordings/standby", json=small).json()["state"] == "standby"
        assert api.post("/api/recordings/standby", json=small).status_code == 400
        time.sleep(2.5)
        pressed = api.post("/api/recordings/start", json={"officers": ["13010002"]})
        assert pressed.status_code == 201, pressed.text
        time.sleep(1)
        taken = pressed.json()["recording_id"]
        assert api.post("/api/recordings/stop").json()["recording_id"] == taken
        meta = RecordingDir(home / RECORDINGS_DIR / taken).load_meta()
        assert meta.pre_record_s >= 0.5 and meta.officers == ["13010001", "13010002"]


def test_killed_recording_is_continued(seeded, live_server, tmp_path):
    home = tmp_path / "terminal"
    ok(home, "enroll", live_server.url, enrollment_code(live_server), "--name", "断电终端")
    ok(home, "login", "13010001", "--password", PASSWORD)
    process = subprocess.Popen(
        [*CLI, "--home", str(home), "video", "--pace", "4", *SMALL, "--pre-record", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    root = home / RECORDINGS_DIR
    while True:
        found = list(root.glob("*/chain.json")) if root.exists() else []
        if found and len(msgspec.json.decode(found[0].read_bytes())["segments"]) >= 3:
            break
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)  # power loss mid-recording
    process.wait()
    directory = RecordingDir(found[0].parent)
    before = len(directory.load_chain().segments)
    assert json.loads(ok(home, "recordings", "--json"))["recordings"][0]["state"] == "recording"
    continued = video(home, "--seconds", "2", "--pre-record", "0")
    assert continued.exit_code == 0, continued.output
    assert "继续录制中断的录像" in continued.stderr
    assert continued.stdout.strip() == directory.recording_id
    with Agent(home) as agent:
        key = agent.session.device_key()
    assert directory.verify(key.public_key(), require_closed=True) == []
    assert len(directory.load_chain().segments) > before
    assert directory.load_meta().resumed_at
