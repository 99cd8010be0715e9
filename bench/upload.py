"""Upload throughput: our tus endpoint against a raw ASGI app that only hashes and writes, and
against the tus servers users would pick instead.

Targets, all on 127.0.0.1, run in the same run and interleaved (A B C D, then B C D A, ...):

- ours: what a terminal does — announce the recording (a signed chain over its segments), create
  the tus upload, then PATCH with a fresh DPoP proof and an ``Upload-Checksum: sha256`` each. The
  server checks the proof, takes the upload's database lease (SQLite here), hashes the chunk (the
  checksum) and the whole file side by side, writes it to the filesystem store, fdatasyncs,
  commits the offset. Verifying and sealing after the last byte is timed apart ("verify" line);
  the bytes are random, so the PyAV probe refuses them after the chain checked out: the cost is the
  same as for real video.
- raw: one ASGI callable: SHA-256 over the body and write at the offset, fdatasync, 204.
- tuspyserver (PyPI, a FastAPI router) and tus-node (``@tus/server`` + ``@tus/file-store``, the
  reference implementation on Node's own HTTP server), installed by this script into a temporary
  folder from PyPI and the npm registry. Neither verifies ``Upload-Checksum`` (each run checks
  that a wrong one is accepted) nor syncs to disk per PATCH.

The Python servers run under the same uvicorn (http=httptools, loop=uvloop, one worker, no access
log, versions printed). The client is the same httpx code for all: ``--size-mib`` in total
(default 1 GiB) per run, in ``--chunk-mib`` PATCHes (default 8 MiB) with ``Upload-Checksum:
sha256``, split over 1 and over 4 concurrent clients.

Last lines: ``upload_ratio=<ours/raw>``, ``upload_vs_tuspyserver=<ours/theirs>``,
``upload_vs_tus_node=<ours/theirs>``, each the lower of the 1- and 4-client ratios of the medians.
Also prints the recorder's real-time factor for 720p25 on one core (media.edge.recorder).
Usage: ``python bench/upload.py [--size-mib 64] [--rounds 2] [--no-peers]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
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
# The peers, pinned; the Python one gets the same uvicorn, parser and loop as ours.
TUSPYSERVER = "tuspyserver==4.4.3"
TUS_NODE = ("@tus/server@2.4.5", "@tus/file-store@2.1.1")
PEER_APP = """
import os

from fastapi import FastAPI
from tuspyserver import create_tus_router

app = FastAPI()
app.include_router(create_tus_router(prefix="files", files_dir=os.environ["BENCH_PEER_DIR"]))
"""
NODE_SERVER = """
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), "127.0.0.1");
"""


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
    parser.add_argument("--no-peers", action="store_true", help="only ours and raw")
    args = parser.parse_args()
    ratios = asyncio.run(_bench(args))
    _recorder_rtf(args.recorder_seconds)
    for name, ratio in ratios.items():
        print(f"{name}={ratio:.3f}")


# What each target's row says about it: server stack, and whether it verifies the checksum.
_STACK: dict[str, str] = {}


async def _bench(args: argparse.Namespace) -> dict[str, float]:
    clients = [int(c) for c in args.clients.split(",")]
    chunk = args.chunk_mib * MiB
    with tempfile.TemporaryDirectory(prefix="zhifa-bench-upload-") as folder:
        work = Path(folder)
        targets: list[Any] = [await _Ours.start(work / "ours"), _Raw.start(work / "raw")]
        block = os.urandom(chunk)
        times: dict[tuple[str, int], list[float]] = {}
        cpu: dict[tuple[str, int], list[float]] = {}
        verify: list[float] = []
        try:
            if not args.no_peers:
                targets.append(_TusPeer.tuspyserver(work / "tuspyserver"))
                targets.append(_TusPeer.tus_node(work / "tus-node"))
            # One untimed upload each first: file system, database and code paths warm up.
            async with httpx.AsyncClient(timeout=120) as http:
                for target in targets:
                    warm = max(chunk, args.size_mib * MiB // 4 // chunk * chunk)
                    await (await target.upload(http, block, warm))
                    target.clean()
                    if isinstance(target, _TusPeer):
                        await target.check_ignores_checksum(http)
            for round_ in range(args.rounds):
                for n in clients:
                    shift = round_ % len(targets)
                    for target in targets[shift:] + targets[:shift]:  # A B C D, B C D A, ...
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
                        if target.name == "ours":
                            verify.append(max(waited))
                        target.clean()
        finally:
            for target in targets:
                target.stop()
    names = [target.name for target in targets]
    print(
        f"{args.size_mib} MiB per run in {args.chunk_mib} MiB PATCHes with Upload-Checksum sha256, "
        f"{args.rounds} rounds, interleaved; client httpx {version('httpx')}"
    )
    for name in names:
        print(f"  {name:<12} {_STACK[name]}")
    header = f"{'target':<12} {'clients':>7} {'median MB/s':>12} {'best MB/s':>10} "
    print(header + f"{'server CPU s/GiB':>17} {'ours/this':>10}")
    ratios: dict[str, list[float]] = {}
    for n in clients:
        medians = {name: statistics.median(times[(name, n)]) for name in names}
        for name in names:
            ratio = medians["ours"] / medians[name]
            ratios.setdefault(name, []).append(ratio)
            print(
                f"{name:<12} {n:>7} {medians[name] * MiB / 1e6:>12.1f} "
                f"{max(times[(name, n)]) * MiB / 1e6:>10.1f} "
                f"{statistics.median(cpu[(name, n)]):>17.2f} "
                + (f"{ratio:10.3f}" if name != "ours" else "")
            )
    print(f"ours: verify + seal after the last byte, median {statistics.median(verify):.2f} s")
    lines = {"raw": "upload_ratio", "tuspyserver": "upload_vs_tuspyserver"}
    lines["tus-node"] = "upload_vs_tus_node"
    return {lines[name]: min(ratios[name]) for name in names if name in lines}


def _uvicorn() -> str:
    return (
        f"uvicorn {version('uvicorn')}, http=httptools {version('httptools')}, "
        f"loop=uvloop {version('uvloop')}, 1 worker"
    )


async def _patch_all(
    http: Any, url: str, block: bytes, size: int, auth: Any = lambda method, url: {}
) -> None:
    """The client every tus target gets: PATCHes of ``block`` with its SHA-256, in order."""
    checksum = "sha256 " + base64.b64encode(hashlib.sha256(block).digest()).decode()
    path = httpx.URL(url).path
    for offset in range(0, size, len(block)):
        response = await http.patch(
            url,
            content=block,
            headers={
                **auth("PATCH", path),
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": checksum,
            },
        )
        assert response.status_code == 204, response.text


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
        _STACK[cls.name] = f"{_uvicorn()}; hashes (SHA-256) and writes the body, fdatasync"
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
        _STACK[cls.name] = (
            f"{_uvicorn()}; zhifa tus on SQLite + filesystem store; DPoP per PATCH; "
            "verifies each chunk's SHA-256 (460 if wrong), hashes the whole file, fdatasync"
        )
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
        await _patch_all(http, self.url + created.headers["Location"], block, size, self._auth)
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


class _TusPeer:
    """A tus server someone else wrote, installed apart at run time, driven by the same client."""

    def __init__(self, name: str, files: Path, process: Any, url: str) -> None:
        self.name, self.files, self.process, self.url = name, files, process, url

    @classmethod
    def tuspyserver(cls, folder: Path) -> _TusPeer:
        folder.mkdir(parents=True)
        venv = folder / "venv"
        _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        # The same uvicorn, parser and loop as ours.
        pins = [f"{name}=={version(name)}" for name in ("uvicorn", "httptools", "uvloop")]
        _run([python, "-m", "pip", "install", "--disable-pip-version-check", TUSPYSERVER, *pins])
        (folder / "peer_app.py").write_text(PEER_APP)
        files = folder / "files"
        files.mkdir()
        port = free_port()
        env = {**os.environ, "BENCH_PEER_DIR": str(files)}
        process = serve("peer_app:app", port, env, factory=False, python=python, app_dir=folder)
        probe = "from importlib.metadata import version as v; print(v('fastapi'), v('starlette'))"
        fastapi, starlette = _run([python, "-c", probe]).split()
        _STACK["tuspyserver"] = (
            f"{_uvicorn()}; {TUSPYSERVER} on FastAPI {fastapi} / Starlette {starlette}; "
            "data not fsynced per PATCH"
        )
        return cls("tuspyserver", files, process, f"http://127.0.0.1:{port}/files")

    @classmethod
    def tus_node(cls, folder: Path) -> _TusPeer:
        folder.mkdir(parents=True)
        _run(["npm", "init", "-y"], cwd=folder)
        _run(["npm", "install", "--no-audit", "--no-fund", *TUS_NODE], cwd=folder)
        (folder / "server.mjs").write_text(NODE_SERVER)
        files = folder / "files"
        files.mkdir()
        port = free_port()
        process = subprocess.Popen(["node", "server.mjs", str(port), str(files)], cwd=folder)
        _wait_for(port, process)
        release, llhttp = _run(
            ["node", "-p", "process.version + ' ' + process.versions.llhttp"]
        ).split()
        _STACK["tus-node"] = (
            f"Node {release}, its own HTTP parser llhttp {llhttp}, 1 process; "
            f"{' + '.join(TUS_NODE)}; data not fsynced per PATCH"
        )
        return cls("tus-node", files, process, f"http://127.0.0.1:{port}/files")

    async def upload(self, http: Any, block: bytes, size: int) -> Any:
        url = await self._create(http, size)
        await _patch_all(http, url, block, size)

        async def done() -> float:
            return 0.0

        return done()

    async def _create(self, http: Any, size: int) -> str:
        created = await http.post(
            self.url, headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(size)}
        )
        assert created.status_code == 201, created.text
        return str(httpx.URL(self.url).join(created.headers["Location"]))

    async def check_ignores_checksum(self, http: Any) -> None:
        """What the table says of them: a PATCH with a wrong SHA-256 is taken all the same."""
        url = await self._create(http, 4)
        wrong = "sha256 " + base64.b64encode(hashlib.sha256(b"else").digest()).decode()
        response = await http.patch(
            url,
            content=b"data",
            headers={
                "Tus-Resumable": "1.0.0",
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
                "Upload-Checksum": wrong,
            },
        )
        taken = response.status_code == 204
        _STACK[self.name] += (
            "; Upload-Checksum ignored (a wrong SHA-256 is accepted)"
            if taken
            else f"; a wrong Upload-Checksum is refused ({response.status_code})"
        )
        self.clean()

    def cpu_seconds(self) -> float:
        return _cpu_seconds(self.process.pid)

    def clean(self) -> None:
        for path in self.files.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def _run(command: list[str], cwd: Path | None = None) -> str:
    """Run an install or version step; its output is shown only if it fails."""
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def _wait_for(port: int, process: Any) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"peer on port {port} did not start")


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
