"""Upload throughput: our tus endpoint against a raw ASGI app that only hashes and writes.

Both servers run in the same run under the same uvicorn (http=httptools, loop=uvloop, one worker,
no access log), on 127.0.0.1, and the runs alternate (ours, raw, raw, ours, ...). The clients are
the same httpx code in one process: ``--size-mib`` in total (default 1 GiB) per run, in
``--chunk-mib`` PATCHes (default 8 MiB), split over 1 and over 4 concurrent clients.

- ours: what a terminal does — announce the recording (a signed chain over its segments), create
  the tus upload, then PATCH with a fresh DPoP proof and an ``Upload-Checksum: sha256`` each. The
  server checks the proof, takes the upload's database lease (SQLite here), hashes the chunk and
  the whole file, writes it to the filesystem store, fdatasyncs, commits the offset. Verifying
  and sealing after the last byte is timed apart ("verify" column); the bytes are random, so the
  PyAV probe refuses them after the chain checked out: the cost is the same as for real video.
- raw: one ASGI callable: SHA-256 over the body and write at the offset, fdatasync, 204.

Last line: ``upload_ratio=<ours/raw>``, the lower of the 1- and 4-client ratios of the medians.
Also prints the recorder's real-time factor for 720p25 on one core (media.edge.recorder).
Usage: ``python bench/upload.py [--size-mib 64] [--rounds 2]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import free_port, serve  # noqa: E402

from media.edge.capture import SyntheticSource  # noqa: E402
from media.edge.chain import ChainLog, SegmentRecord, head_of, segment_name, sign_head  # noqa: E402
from media.edge.config import RecorderConfig  # noqa: E402
from media.edge.manifest import RecordingManifest  # noqa: E402
from media.edge.metadata import RecordingMeta  # noqa: E402
from media.edge.recorder import Recorder, new_recording_id  # noqa: E402
from mobile_api.contracts.device_proof import make_device_proof, public_key_b64  # noqa: E402
from server.app import demo, migrate  # noqa: E402
from server.app.context import AppContext  # noqa: E402
from server.core.settings import load_settings  # noqa: E402

RAW_DIR_ENV = "BENCH_RAW_DIR"
MiB = 1024 * 1024


# -- the raw app (served by its own uvicorn process) ------------------------------------------------

_raw_hashes: dict[str, Any] = {}


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["method"] != "PATCH":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    name = scope["path"].rsplit("/", 1)[-1]
    headers = dict(scope["headers"])
    offset = int(headers.get(b"upload-offset", b"0"))
    path = Path(os.environ[RAW_DIR_ENV]) / name
    hasher = _raw_hashes.setdefault(name, hashlib.sha256())
    with open(path, "r+b" if path.exists() else "wb") as file:
        file.seek(offset)
        more = True
        while more:
            message = await receive()
            body = message.get("body", b"")
            hasher.update(body)
            file.write(body)
            offset += len(body)
            more = message.get("more_body", False)
        file.flush()
        os.fdatasync(file.fileno())
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [(b"upload-offset", str(offset).encode())],
        }
    )
    await send({"type": "http.response.body", "body": b""})


# -- the benchmark ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="bytes per run, all clients")
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--clients", default="1,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recorder-seconds", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(_bench(args))
    _recorder_rtf(args.recorder_seconds)
    print(f"upload_ratio={_RESULT['ratio']:.3f}")


_RESULT: dict[str, float] = {}


async def _bench(args: argparse.Namespace) -> None:

    clients = [int(c) for c in args.clients.split(",")]
    chunk = args.chunk_mib * MiB
    with tempfile.TemporaryDirectory(prefix="zhifa-bench-upload-") as folder:
        work = Path(folder)
        ours = await _Ours.start(work / "ours")
        raw = _Raw.start(work / "raw")
        block = os.urandom(chunk)
        times: dict[tuple[str, int], list[float]] = {}
        cpu: dict[tuple[str, int], list[float]] = {}
        verify: list[float] = []
        try:
            # One untimed upload each first: file system, database and code paths warm up.
            async with httpx.AsyncClient(timeout=120) as http:
                for target in (ours, raw):
                    warm = max(chunk, args.size_mib * MiB // 4 // chunk * chunk)
                    await (await target.upload(http, block, warm))
                    target.clean()
            for round_ in range(args.rounds):
                for n in clients:
                    order = (ours, raw) if round_ % 2 == 0 else (raw, ours)
                    for target in order:
                        per_client = args.size_mib * MiB // n // chunk * chunk
                        async with httpx.AsyncClient(timeout=120) as http:
                            started, cpu_before = time.perf_counter(), target.cpu_seconds()
                            jobs = [target.upload(http, block, per_client) for _ in range(n)]
                            finished = await asyncio.gather(*jobs)
                            elapsed = time.perf_counter() - started
                            used = target.cpu_seconds() - cpu_before
                            # Verification runs after the last byte; wait for it before the next run.
                            waited = await asyncio.gather(*finished)
                        times.setdefault((target.name, n), []).append(
                            per_client * n / MiB / elapsed
                        )
                        cpu.setdefault((target.name, n), []).append(
                            used * 1024 * MiB / (per_client * n)
                        )
                        if target is ours:
                            verify.append(max(waited))
                        target.clean()
        finally:
            ours.stop()
            raw.stop()
    print(
        f"server: uvicorn {version('uvicorn')}, http=httptools {version('httptools')}, "
        f"loop=uvloop {version('uvloop')}, 1 worker; ours on SQLite + filesystem store; "
        f"{args.size_mib} MiB per run in {args.chunk_mib} MiB PATCHes, {args.rounds} rounds"
    )
    header = f"{'target':<6} {'clients':>7} {'median MB/s':>12} {'best MB/s':>10} "
    print(header + f"{'server CPU s/GiB':>17} {'ours/raw':>9}")
    ratios = []
    for n in clients:
        medians = {name: statistics.median(times[(name, n)]) for name in ("ours", "raw")}
        ratio = medians["ours"] / medians["raw"]
        ratios.append(ratio)
        for name in ("ours", "raw"):
            shown = f"{ratio:9.3f}" if name == "ours" else ""
            print(
                f"{name:<6} {n:>7} {medians[name] * MiB / 1e6:>12.1f} "
                f"{max(times[(name, n)]) * MiB / 1e6:>10.1f} "
                f"{statistics.median(cpu[(name, n)]):>17.2f} {shown}"
            )
    print(f"ours: verify + seal after the last byte, median {statistics.median(verify):.2f} s")
    _RESULT["ratio"] = min(ratios)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Raw:
    name = "raw"

    def __init__(self, folder: Path, process: Any, url: str) -> None:
        self.folder, self.process, self.url = folder, process, url
        self._count = 0

    @classmethod
    def start(cls, folder: Path) -> _Raw:
        folder.mkdir(parents=True)
        port = free_port()
        env = {**os.environ, RAW_DIR_ENV: str(folder)}
        return cls(
            folder, serve("upload:raw_app", port, env, factory=False), f"http://127.0.0.1:{port}"
        )

    async def upload(self, http: Any, block: bytes, size: int) -> Any:
        self._count += 1
        url = f"{self.url}/raw/{os.getpid()}-{self._count}"
        for offset in range(0, size, len(block)):
            response = await http.patch(url, content=block, headers={"Upload-Offset": str(offset)})
            assert response.status_code == 204, response.text

        async def done() -> float:
            return 0.0

        return done()

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def clean(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


class _Ours:
    name = "ours"

    def __init__(self, folder: Path, process: Any, url: str, terminal: Any) -> None:
        self.folder, self.process, self.url, self.terminal = folder, process, url, terminal
        self._whole: dict[int, str] = {}

    @classmethod
    async def start(cls, folder: Path) -> _Ours:

        port = free_port()
        env = {
            **os.environ,
            "ZHIFA_DATA_DIR": str(folder),
            "ZHIFA_PORT": str(port),
            "ZHIFA_LOG_LEVEL": "warning",
            "ZHIFA_ACCESS_TOKEN_TTL_SECONDS": "86400",
        }
        env.pop("ZHIFA_DATABASE_URL", None)
        settings = load_settings(environ=env)
        context = AppContext(settings)
        try:
            await migrate.upgrade(context.database)
            info = await demo.seed(context)
        finally:
            await context.close()
        process = serve("server.app.main:create_app", port, env, factory=True)
        url = f"http://127.0.0.1:{port}"
        key = Ed25519PrivateKey.generate()
        async with httpx.AsyncClient(base_url=url) as http:
            enrolled = await http.post(
                "/api/terminals/enroll",
                json={
                    "enrollment_code": info.enrollment_code,
                    "name": "bench",
                    "public_key": public_key_b64(key),
                },
                headers={"DPoP": make_device_proof(key, "POST", "/api/terminals/enroll")},
            )
            tokens = await http.post(
                "/api/auth/terminal-login",
                json={"username": "13010001", "password": demo.DEMO_PASSWORD},
                headers={"DPoP": make_device_proof(key, "POST", "/api/auth/terminal-login")},
            )
        terminal = (key, enrolled.json()["terminal_id"], tokens.json()["access_token"])
        return cls(folder, process, url, terminal)

    def _auth(self, method: str, path: str) -> dict[str, str]:

        key, _, token = self.terminal
        return {
            "Authorization": f"DPoP {token}",
            "DPoP": make_device_proof(key, method, path, token),
        }

    def _manifest(self, block: bytes, size: int) -> bytes:

        key, terminal_id, _ = self.terminal
        count = size // len(block)
        if count not in self._whole:
            whole = hashlib.sha256()
            for _ in range(count):
                whole.update(block)
            self._whole[count] = whole.hexdigest()
        rid = new_recording_id()
        now = dt.datetime.now(dt.UTC)
        digest = hashlib.sha256(block).hexdigest()
        segments = [
            SegmentRecord(i, segment_name(i), len(block), digest, 4.0, now) for i in range(count)
        ]
        chain = ChainLog(rid, terminal_id, "13010001", now, segments)
        chain.head = sign_head(rid, count, head_of(rid, segments), True, key)
        meta = RecordingMeta(
            recording_id=rid, terminal_id=terminal_id, started_at=now, record_pressed_at=now
        )
        manifest = RecordingManifest(chain=chain, meta=meta, size=size, sha256=self._whole[count])
        return msgspec.json.encode(manifest)

    async def upload(self, http: Any, block: bytes, size: int) -> Any:

        body = self._manifest(block, size)
        path = "/api/media/recordings"
        announced = await http.post(
            self.url + path,
            content=body,
            headers={**self._auth("POST", path), "Content-Type": "application/json"},
        )
        recording = announced.json()["recording_id"]
        created = await http.post(
            self.url + "/api/media/uploads",
            headers={
                **self._auth("POST", "/api/media/uploads"),
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(size),
                "Upload-Metadata": "recording " + base64.b64encode(recording.encode()).decode(),
            },
        )
        location = created.headers["Location"]
        checksum = "sha256 " + base64.b64encode(hashlib.sha256(block).digest()).decode()
        for offset in range(0, size, len(block)):
            response = await http.patch(
                self.url + location,
                content=block,
                headers={
                    **self._auth("PATCH", location),
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Checksum": checksum,
                },
            )
            assert response.status_code == 204, response.text
        finished = time.perf_counter()

        async def sealed() -> float:
            status = f"{path}/{recording}"
            while True:
                view = await http.get(self.url + status, headers=self._auth("GET", status))
                if view.json()["status"] != "pending":
                    return time.perf_counter() - finished
                await asyncio.sleep(0.05)

        return sealed()

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def clean(self) -> None:
        pass  # refused uploads are deleted by the server

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _recorder_rtf(seconds: float) -> None:
    """Real-time factor of media.edge's recorder: 720p25, one encoder thread, pinned to one CPU."""

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        wall, encoder = pool.apply(_record_once, (seconds,))
    print(
        f"recorder: 720p25 {encoder} (preset veryfast), 1 thread on 1 CPU: "
        f"{seconds:.0f} s recorded in {wall:.2f} s, real-time factor {seconds / wall:.2f}"
    )


def _record_once(seconds: float) -> tuple[float, str]:

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    config = RecorderConfig(threads=1, pre_record_seconds=0)
    source = SyntheticSource(
        epoch=dt.datetime.now(dt.UTC), width=1280, height=720, fps=25, duration=seconds
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        with Recorder(
            Path(folder),
            terminal_id="bench",
            credential_no="13010001",
            device_key=Ed25519PrivateKey.generate(),
            config=config,
            epoch=source.epoch,
        ) as recorder:
            recorder.start_recording()
            for frame in source.frames():
                recorder.push(frame)
            recorder.stop()
            encoder = recorder.video_codec
        return time.perf_counter() - started, encoder


if __name__ == "__main__":
    main()
