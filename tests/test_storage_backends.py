"""One suite, every blob store: the local filesystem, S3 (moto's server mode on 127.0.0.1, a real
HTTP endpoint) with a plain bucket, and S3 with an Object Lock bucket."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid

import boto3
import httpx
import msgspec
import pytest
from botocore.exceptions import ClientError

from media.storage import ObjectLocked, ObjectMissing, StoreReader, open_store
from media.storage.filesystem import FilesystemStore
from media.storage.s3 import MIN_PART, S3Store
from server.app.main import create_app
from tests.conftest import enroll_and_login, login
from tests.media_support import (  # noqa: F401  (fixtures: seeded database copies)
    OCTETS,
    TUS,
    checksum,
    concatenated,
    database_url,
    manifest_json,
    metadata,
    moto_endpoint_fixture,
    new_bucket,
    record,
    s3_credentials_fixture,
    seeded_templates,
)

MiB = 1024 * 1024
NOW = dt.datetime(2026, 3, 2, 1, 30, tzinfo=dt.UTC)


@pytest.fixture(params=["filesystem", "s3", "s3-object-lock"])
def store(request, tmp_path, s3_credentials):
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "media")
    endpoint = request.getfixturevalue("moto_endpoint")
    bucket = new_bucket(endpoint, object_lock=request.param == "s3-object-lock")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return S3Store(client, bucket, part_bytes=MIN_PART)


def read_all(store, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(store.read(key, start, end))


def append(store, key: str, offset: int, *pieces: bytes, commit: bool = True) -> None:
    appender = store.append(key, offset)
    for piece in pieces:
        appender.write(piece)
    if commit:
        appender.commit()
    else:
        appender.abort()


def test_append_commit_abort_and_read(store):
    data = os.urandom(13 * MiB)
    key = "uploads/one"
    store.create(key)
    append(store, key, 0, data[: 3 * MiB], data[3 * MiB : 7 * MiB])
    assert read_all(store, key, 0, 7 * MiB) == data[: 7 * MiB]
    # Across part boundaries, in ranges.
    assert read_all(store, key, 4 * MiB + 5, 6 * MiB + 7) == data[4 * MiB + 5 : 6 * MiB + 7]
    # An aborted append leaves the object exactly as it was.
    append(store, key, 7 * MiB, os.urandom(5 * MiB), commit=False)
    assert read_all(store, key) == data[: 7 * MiB]
    # An uncommitted attempt's bytes (here: committed to the store, never to the database) are
    # overwritten by the next append at the committed offset.
    append(store, key, 7 * MiB, os.urandom(4 * MiB))
    append(store, key, 7 * MiB, data[7 * MiB : 10 * MiB], data[10 * MiB :])
    assert (
        hashlib.sha256(read_all(store, key, 0, len(data))).digest() == hashlib.sha256(data).digest()
    )
    with pytest.raises(ObjectMissing):
        read_all(store, "uploads/none", 0, 10)


def test_finalize_lock_and_delete(store):
    data = os.urandom(6 * MiB + 123)
    store.create("uploads/two")
    append(store, "uploads/two", 0, data, b"left over by an uncommitted attempt")
    store.finalize("uploads/two", "evidence/a/two.ts", len(data))
    assert read_all(store, "evidence/a/two.ts") == data
    with pytest.raises(ObjectMissing):
        read_all(store, "uploads/two", 0, 1)
    store.finalize("uploads/two", "evidence/a/two.ts", len(data))  # a retry changes nothing
    assert store.seal_of("evidence/a/two.ts") is None

    until = NOW + dt.timedelta(days=183)
    seal = store.lock("evidence/a/two.ts", until)
    assert seal.retain_until == until and not seal.legal_hold
    # A seal never shrinks.
    assert store.lock("evidence/a/two.ts", NOW).retain_until == until
    with pytest.raises(ObjectLocked):
        store.delete("evidence/a/two.ts", now=NOW)
    with pytest.raises(ObjectLocked):
        store.create("evidence/a/two.ts")
    held = store.lock("evidence/a/two.ts", until, legal_hold=True)
    assert held.legal_hold
    with pytest.raises(ObjectLocked):
        store.delete("evidence/a/two.ts", now=until + dt.timedelta(days=1))
    assert read_all(store, "evidence/a/two.ts") == data

    if isinstance(store, S3Store) and store.has_object_lock():
        assert seal.enforced_by == "s3-object-lock"
        head = store.client.head_object(Bucket=store.bucket, Key="evidence/a/two.ts")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockLegalHoldStatus"] == "ON"
        # S3 itself refuses, whatever our code would do.
        with pytest.raises(ClientError):
            store.client.delete_object(
                Bucket=store.bucket, Key="evidence/a/two.ts", VersionId=head["VersionId"]
            )
    else:
        # Past its retention and without a hold, an object may go.
        store.create("uploads/three")
        append(store, "uploads/three", 0, b"short")
        store.finalize("uploads/three", "evidence/a/three.ts", 5)
        store.lock("evidence/a/three.ts", NOW)
        store.delete("evidence/a/three.ts", now=NOW + dt.timedelta(seconds=1))
        with pytest.raises(ObjectMissing):
            read_all(store, "evidence/a/three.ts")


def test_reader_seeks_like_a_file(store):
    data = os.urandom(MiB + 17)
    store.create("uploads/four")
    append(store, "uploads/four", 0, data)
    reader = StoreReader(store, "uploads/four", len(data), block=64 * 1024)
    reader.seek(-17, os.SEEK_END)
    assert reader.read() == data[-17:]
    reader.seek(100)
    assert reader.read(10) == data[100:110]
    assert reader.tell() == 110


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "x/evidence.ts.lock"])
def test_bad_keys_are_refused(key, tmp_path):
    with pytest.raises(ValueError):
        FilesystemStore(tmp_path).create(key)


async def test_upload_and_seal_on_s3_with_object_lock(
    migrated, clock, tmp_path, moto_endpoint, s3_credentials
):
    """The whole path on S3: tus upload in chunks smaller than a part, sealing, Object Lock,
    permanent retention once used as evidence, logged playback."""
    bucket = new_bucket(moto_endpoint, object_lock=True)
    settings = msgspec.structs.replace(
        migrated,
        media_storage="s3",
        media_s3_endpoint_url=moto_endpoint,
        media_s3_bucket=bucket,
        media_s3_part_bytes=MIN_PART,
    )
    app = create_app(settings, clock)
    context = app.state.context
    from server.app import demo

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
    ) as client:
        info = await demo.seed(context)
        terminal = await enroll_and_login(
            client, info.enrollment_code, "13010001", now=lambda: clock.now().timestamp()
        )
        directory = record(tmp_path / "terminal", terminal.key, terminal.terminal_id)
        data = concatenated(directory)
        path = "/api/media/recordings"
        announced = await client.post(
            path,
            content=manifest_json(directory),
            headers={**terminal.headers("POST", path), "Content-Type": "application/json"},
        )
        assert announced.status_code == 201, announced.text
        created = await client.post(
            "/api/media/uploads",
            headers={
                **TUS,
                **terminal.headers("POST", "/api/media/uploads"),
                "Upload-Length": str(len(data)),
                "Upload-Metadata": metadata(recording=directory.recording_id),
            },
        )
        url = created.headers["Location"]
        for offset in range(0, len(data), 40_000):
            piece = data[offset : offset + 40_000]
            response = await client.patch(
                url,
                content=piece,
                headers={
                    **TUS,
                    **terminal.headers("PATCH", url),
                    "Upload-Offset": str(offset),
                    "Content-Type": OCTETS,
                    "Upload-Checksum": checksum("sha256", piece),
                },
            )
            assert response.status_code == 204, response.text
        status_path = f"{path}/{directory.recording_id}"
        view = (await client.get(status_path, headers=terminal.headers("GET", status_path))).json()
        assert view["status"] == "sealed", view

        store = open_store(settings)
        admin = await login(client, "admin")
        evidence = (await client.get("/api/media/evidence", headers=admin)).json()[0]
        assert evidence["seal_enforced_by"] == "s3-object-lock"
        assert (
            read_all(store, f"evidence/{evidence['agency_id']}/{announced.json()['id']}.ts") == data
        )
        linked = await client.put(
            f"/api/media/evidence/{evidence['id']}/case",
            json={"case_id": str(uuid.uuid4()), "used_as_evidence": True},
            headers=admin,
        )
        assert linked.status_code == 200 and linked.json()["permanent"]
        key = f"evidence/{evidence['agency_id']}/{announced.json()['id']}.ts"
        head = store.client.head_object(Bucket=bucket, Key=key)
        assert head["ObjectLockLegalHoldStatus"] == "ON"
        grant = await client.post(
            f"/api/media/evidence/{evidence['id']}/access", json={"purpose": "play"}, headers=admin
        )
        played = await client.get(grant.json()["url"], headers={"Range": "bytes=100-199"})
        assert played.status_code == 206 and played.content == data[100:200]
    await context.close()
