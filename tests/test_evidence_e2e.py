"""End to end over real HTTP: the terminal records 60 s (small picture, so it stays fast), the
uploader sends it to a live server through a relay that drops connections and corrupts a chunk,
the server is killed and restarted, the uploader is killed and restarted; the sealed evidence is
byte-identical and sealed once. A tampered segment is refused; every staff view is logged."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from sqlalchemy import func, select

from media.edge.uploader import (
    REJECTED,
    Backoff,
    LocalQuota,
    Uploader,
    pending_recordings,
    read_receipt,
)
from media.models import Evidence, Recording
from server.app import demo
from server.app.context import AppContext
from server.core.clock import Clock
from tests.conftest import ROOT, enroll_and_login, login
from tests.media_support import concatenated, database_url, record, seeded_templates  # noqa: F401  (fixtures: seeded database copies)

SECONDS = 60.0


class Relay:
    """A TCP relay in front of the server: ``drop()`` cuts every connection as a network loss
    would; ``corrupt_next_patch()`` flips one byte in the body of the next PATCH on the way."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._corrupt = threading.Event()
        self.corrupted = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, outbound: bool) -> None:
        window = b""
        try:
            while data := source.recv(65536):
                if outbound and self._corrupt.is_set():
                    window += data
                    start = window.find(b"PATCH /")
                    body = window.find(b"\r\n\r\n", start) + 4 if start >= 0 else 3
                    if start >= 0 and body > 3 and body < len(window):
                        at = len(data) - (len(window) - body)
                        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
                        self._corrupt.clear()
                        self.corrupted.set()
                        window = b""
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def drop(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def corrupt_next_patch(self) -> None:
        self._corrupt.set()

    def close(self) -> None:
        self.listener.close()
        self.drop()


class Agent:
    def __init__(self, config: Path, log: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.media_agent", str(config)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log.open("ab"),
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.offset = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_for(self, fraction: float | None, timeout: float = 60) -> str:
        """Until the server acknowledged `fraction` of the bytes (None: until sealed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() not in (None, 0):
                    raise AssertionError(f"agent died: {self.log.read_text()}") from None
                continue
            kind, *values = line.split()
            if kind == "progress":
                self.offset = int(values[0])
                if fraction is not None and self.offset >= fraction * int(values[1]):
                    return line
            elif kind == "sealed" and fraction is None:
                return line
        raise AssertionError(f"agent stuck at {self.offset}: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def short_lease(monkeypatch):
    # A killed server's lease on the upload lapses quickly, so the test does not wait long.
    monkeypatch.setenv("ZHIFA_MEDIA_UPLOAD_LEASE_SECONDS", "2")


async def test_record_upload_interrupted_sealed_once(short_lease, live_server, migrated, tmp_path):
    context = AppContext(migrated, Clock())
    try:
        info = await demo.seed(context)
    finally:
        await context.close()
    relay = Relay(migrated.port)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        terminal = await enroll_and_login(http, info.enrollment_code, "13010001")
        directory = record(tmp_path / "terminal", terminal.key, terminal.terminal_id, SECONDS)
        data = concatenated(directory)
        rate_cap = len(data) // 3  # bytes per second: the upload takes three seconds at least
        config = tmp_path / "agent.json"
        config.write_text(
            json.dumps(
                {
                    "url": relay.url,
                    "key": terminal.key.private_bytes_raw().hex(),
                    "token": terminal.access_token,
                    "recording": str(directory.path),
                    "chunk": 64 * 1024,
                    "rate": rate_cap,
                }
            )
        )
        log = tmp_path / "agent.log"
        started = time.monotonic()
        try:
            first = Agent(config, log)
            first.wait_for(0.2)
            relay.drop()  # the network goes away mid-request
            first.wait_for(0.4)
            live_server.kill()  # the server crashes (SIGKILL) ...
            live_server.start()  # ... and comes back
            first.wait_for(0.6)
            first.kill()  # the terminal's agent is killed ...
            assert read_receipt(directory.path) is None
            relay.corrupt_next_patch()  # ... and a chunk is corrupted on the way
            second = Agent(config, log)  # ... and the agent restarts
            sealed = second.wait_for(None)
        finally:
            relay.close()
        # The bandwidth cap held: every byte went through it at least once.
        assert time.monotonic() - started >= 0.9 * len(data) / rate_cap
        assert relay.corrupted.is_set()
        assert "(460)" in log.read_text()
        receipt = read_receipt(directory.path)
        assert receipt is not None and sealed == f"sealed {receipt.evidence_id} {receipt.sha256}"
        assert receipt.sha256 == hashlib.sha256(data).hexdigest() and receipt.size == len(data)

        # Staff play it back: the bytes are the recording's, and the access is in the ledger.
        reviewer = await login(http, "reviewer")
        evidence_path = f"/api/media/evidence/{receipt.evidence_id}"
        item = (await http.get(evidence_path, headers=reviewer)).json()
        assert item["video_codec"] in ("h264", "mpeg4") and item["audio_codec"] == "aac"
        assert (item["width"], item["height"]) == (160, 120)
        assert abs(item["duration_s"] - SECONDS) < 1.5
        grant = await http.post(
            f"{evidence_path}/access", json={"purpose": "download"}, headers=reviewer
        )
        assert grant.status_code == 201, grant.text
        downloaded = await http.get(grant.json()["url"])
        assert downloaded.status_code == 200 and downloaded.content == data
        assert downloaded.headers["content-disposition"].startswith("attachment")
        forged = grant.json()["url"].replace(receipt.evidence_id[:8], "00000000")
        assert (await http.get(forged)).status_code in (401, 403, 404)
        accesses = await http.get(f"{evidence_path}/accesses", headers=await login(http, "admin"))
        assert [(a["username"], a["purpose"]) for a in accesses.json()] == [
            ("reviewer", "download")
        ]

        # A tampered segment breaks the chain: refused, nothing sealed, local files kept. This
        # one goes through the uploader's background loop, which skips what is sealed already.
        tampered = record(tmp_path / "terminal", terminal.key, terminal.terminal_id, 3.0)
        segment = tampered.segment_path(tampered.load_chain().segments[1].name)
        raw = bytearray(segment.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        segment.write_bytes(bytes(raw))
        assert pending_recordings(tmp_path / "terminal") == [tampered.path]
        uploader = Uploader(live_server.url, terminal.headers, backoff=Backoff(0.1, maximum=0.5))
        worker = threading.Thread(target=uploader.run, args=(tmp_path / "terminal", 0.1))
        worker.start()
        try:
            deadline = time.monotonic() + 30
            while not (tampered.path / REJECTED).exists():
                assert time.monotonic() < deadline and worker.is_alive()
                await asyncio.sleep(0.1)
        finally:
            uploader.stop.set()
            worker.join()
            uploader.close()
        problems = msgspec.json.decode((tampered.path / REJECTED).read_bytes())["problems"]
        assert any("000001.ts" in problem for problem in problems), problems
        assert segment.exists() and pending_recordings(tmp_path / "terminal") == []

    # Local storage: only the recording the server confirmed as sealed may be cleared, and it is
    # cleared first; the refused one stays for someone to look at.
    quota = LocalQuota(tmp_path / "terminal", quota_bytes=len(data) * 4)
    rate = len(data) / SECONDS
    before = quota.minutes_left(rate)
    assert quota.reclaimable_bytes() >= len(data)
    quota.free_bytes(want=len(data) * 10)
    assert not directory.path.exists() and tampered.path.exists()
    assert quota.reclaimable_bytes() == 0
    assert quota.minutes_left(rate) == pytest.approx(before, rel=0.05)

    context = AppContext(migrated, Clock())
    try:
        async with context.database.sessionmaker() as session:
            rows = await session.execute(
                select(Recording.recording_key, Recording.status, func.count(Evidence.id))
                .outerjoin(Evidence, Evidence.recording_id == Recording.id)
                .group_by(Recording.recording_key, Recording.status)
            )
            counts = {key: (status.value, n) for key, status, n in rows}
    finally:
        await context.close()
    assert counts == {
        directory.recording_id: ("sealed", 1),
        tampered.recording_id: ("rejected", 0),
    }
    stored = list((Path(migrated.resolved_media_dir) / "evidence").rglob("*.ts"))
    assert [p.read_bytes() == data for p in stored] == [True]
    assert not any((Path(migrated.resolved_media_dir) / "uploads").iterdir())
    assert os.access(stored[0], os.R_OK)
