"""Helpers of the media tests: real recordings made with media.edge, and their manifests."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from media.edge.capture import SyntheticSource
from media.edge.chain import ChainLog, SegmentRecord, head_of, segment_name, sign_head
from media.edge.config import RecorderConfig
from media.edge.manifest import RecordingManifest
from media.edge.metadata import RecordingMeta
from media.edge.recorder import Recorder, new_recording_id
from media.edge.storage import RecordingDir
from server.app import demo, migrate
from server.app.context import AppContext
from server.core.clock import FrozenClock
from server.core.db import Database
from server.core.settings import load_settings
from tests.conftest import PG_HOST, PG_PORT, _pg_admin, free_port, require_postgres

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


def record(
    root: Path,
    key: Ed25519PrivateKey,
    terminal_id: str,
    seconds: float = 2.0,
    *,
    width: int = 160,
    height: int = 120,
    fps: int = 10,
    segment_seconds: float = 0.5,
    case_id: str | None = None,
) -> RecordingDir:
    """Record `seconds` of the synthetic source (moving picture, clock, tone), flat out."""
    source = SyntheticSource(
        epoch=dt.datetime.now(dt.UTC), width=width, height=height, fps=fps, duration=seconds
    )
    config = RecorderConfig(
        width=width,
        height=height,
        fps=fps,
        pre_record_seconds=0,
        segment_seconds=segment_seconds,
        preset="ultrafast",
    )
    with Recorder(
        root,
        terminal_id=terminal_id,
        credential_no="13010001",
        device_key=key,
        config=config,
        epoch=source.epoch,
    ) as recorder:
        directory = recorder.start_recording(case_id=case_id)
        for frame in source.frames():
            recorder.push(frame)
        recorder.stop()
    return directory


def written(
    root: Path, key: Ed25519PrivateKey, terminal_id: str, segments: list[bytes]
) -> RecordingDir:
    """A finished recording whose segment files hold exactly `segments` (any bytes), with a
    correctly signed, closed chain: what a terminal would send if its encoder wrote garbage."""
    recording_id = new_recording_id()
    directory = RecordingDir(root / recording_id)
    directory.path.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    records = []
    for index, data in enumerate(segments):
        (directory.path / segment_name(index)).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        records.append(SegmentRecord(index, segment_name(index), len(data), digest, 1.0, now))
    chain = ChainLog(recording_id, terminal_id, "13010001", now, records)
    chain.head = sign_head(recording_id, len(records), head_of(recording_id, records), True, key)
    directory.save_chain(chain)
    directory.save_meta(
        RecordingMeta(
            recording_id=recording_id,
            terminal_id=terminal_id,
            started_at=now,
            record_pressed_at=now,
            ended_at=now,
        )
    )
    return directory


# An MPEG-TS null packet (PID 0x1FFF): demuxers skip it, so padding a stream with it keeps it valid.
TS_NULL_PACKET = b"\x47\x1f\xff\x10" + b"\xff" * 184


def padded(root: Path, key: Ed25519PrivateKey, terminal_id: str, at_least: int) -> RecordingDir:
    """A real (short) recording followed by a segment of MPEG-TS null packets, so that it is at
    least `at_least` bytes (S3 parts are 5 MiB at least) and still decodes."""
    source = record(root / "source", key, terminal_id)
    segments = [source.read_segment(s) for s in source.load_chain().segments]
    missing = max(0, at_least - sum(map(len, segments)))
    segments.append(TS_NULL_PACKET * (missing // len(TS_NULL_PACKET) + 1))
    return written(root, key, terminal_id, segments)


def concatenated(directory: RecordingDir) -> bytes:
    return b"".join(directory.read_segment(s) for s in directory.load_chain().segments)


def manifest(directory: RecordingDir) -> RecordingManifest:
    data = concatenated(directory)
    return RecordingManifest(
        chain=directory.load_chain(),
        meta=directory.load_meta(),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def manifest_json(directory: RecordingDir) -> bytes:
    return msgspec.json.encode(manifest(directory))


def metadata(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def checksum(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


# -- databases: migrated and seeded once per backend, copied for each test ------------------------
#
# Seeding the demo agency hashes eight passwords (argon2, ~0.2 s each); the media tests need it in
# every test. Importing `database_url` from here into a test module overrides the shared fixture
# there: each test still gets its own database on SQLite and on PostgreSQL, but as a copy of one
# seeded at the start (the `seeded` fixture then finds the demo agency and only renews the code).

SEED_CLOCK_AT = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)


async def _migrate_and_seed(url: str, data_dir: Path) -> None:
    settings = load_settings(environ={}, data_dir=str(data_dir), database_url=url)
    database = Database(settings)
    try:
        await migrate.upgrade(database)
    finally:
        await database.dispose()
    context = AppContext(settings, FrozenClock(SEED_CLOCK_AT))
    try:
        await demo.seed(context)
    finally:
        await context.close()


@pytest.fixture(scope="session")
def seeded_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Backend -> template (a SQLite file path, or a PostgreSQL database name), made on demand."""
    templates: dict[str, str] = {}
    yield templates
    if "postgresql" in templates:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{templates["postgresql"]}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    seeded_templates: dict[str, str],
) -> Iterator[str]:
    if request.param == "sqlite":
        if "sqlite" not in seeded_templates:
            folder = tmp_path_factory.mktemp("seeded")
            asyncio.run(_migrate_and_seed(f"sqlite+aiosqlite:///{folder / 'zhifa.db'}", folder))
            seeded_templates["sqlite"] = str(folder / "zhifa.db")
        shutil.copyfile(seeded_templates["sqlite"], tmp_path / "zhifa.db")
        yield f"sqlite+aiosqlite:///{tmp_path / 'zhifa.db'}"
        return
    require_postgres()
    base = f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}"
    if "postgresql" not in seeded_templates:
        template = f"zhifa_seeded_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{template}"'))
        seeded_templates["postgresql"] = template
        asyncio.run(_migrate_and_seed(f"{base}/{template}", tmp_path_factory.mktemp("seeded")))
    name = f"zhifa_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{seeded_templates["postgresql"]}"'))
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


# -- S3: moto's server mode on 127.0.0.1, a real HTTP endpoint ------------------------------------

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "zhifa-test",
    "AWS_SECRET_ACCESS_KEY": "zhifa-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


# Fixtures named apart from their functions: a test module imports the function and takes the
# fixture as a parameter without shadowing the import.
@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    """moto's S3 server in its own process, as a real HTTP endpoint."""
    port = free_port()
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(name="s3_credentials")
def s3_credentials_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def new_bucket(endpoint: str, *, object_lock: bool) -> str:
    name = f"zhifa-{uuid.uuid4().hex[:16]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=object_lock)
    return name
