"""Direct uploads: parts go straight to S3 (moto's server mode, real HTTP) through presigned
multipart URLs; the server assembles, hashes the whole object itself, verifies the chain and seals
the same way as a tus upload. The terminal's uploader resumes from what S3 has after an
interruption; wrong bytes, missing parts and another terminal's token are refused."""

from __future__ import annotations

import base64
import hashlib
import threading

import boto3
import httpx
import msgspec
import pytest

from media.edge import uploader as uploader_module
from media.edge.uploader import Backoff, Stopped, Uploader, read_receipt
from media.storage.s3 import MIN_PART
from server.app import demo
from server.app.context import AppContext
from server.app.main import create_app
from server.core.clock import Clock
from tests.conftest import LiveServer, TerminalIdentity, enroll_and_login, login
from tests.media_support import (  # noqa: F401  (fixtures: seeded database copies, moto)
    concatenated,
    database_url,
    manifest_json,
    moto_endpoint_fixture,
    new_bucket,
    padded,
    record,
    s3_credentials_fixture,
    seeded_templates,
)

RECORDINGS = "/api/media/recordings"
DIRECT = "/api/media/direct-uploads"


def s3_environment(monkeypatch: pytest.MonkeyPatch, endpoint: str, bucket: str) -> None:
    for name, value in {
        "ZHIFA_MEDIA_STORAGE": "s3",
        "ZHIFA_MEDIA_S3_ENDPOINT_URL": endpoint,
        "ZHIFA_MEDIA_S3_BUCKET": bucket,
        "ZHIFA_MEDIA_S3_PART_BYTES": str(MIN_PART),
        "ZHIFA_MEDIA_DIRECT_UPLOAD": "true",
        # A killed server's lease lapses quickly.
        "ZHIFA_MEDIA_UPLOAD_LEASE_SECONDS": "2",
    }.items():
        monkeypatch.setenv(name, value)


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def open_multipart_uploads(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


async def test_uploader_resumes_from_the_parts_s3_has(
    migrated, tmp_path, moto_endpoint, s3_credentials, monkeypatch
):
    """The agent stops after the first part; the server is killed and restarted; a new agent
    asks which parts S3 has, sends only the others, and the server seals a byte-identical copy."""
    bucket = new_bucket(moto_endpoint, object_lock=False)
    s3_environment(monkeypatch, moto_endpoint, bucket)
    # One part per batch, so the agent can be stopped between two parts.
    monkeypatch.setattr(uploader_module, "DIRECT_BATCH_BYTES", MIN_PART)
    context = AppContext(migrated, Clock())
    try:
        info = await demo.seed(context)
    finally:
        await context.close()
    server = LiveServer(migrated, tmp_path / "server.log")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            terminal = await enroll_and_login(http, info.enrollment_code, "13010001")
        directory = padded(tmp_path / "terminal", terminal.key, terminal.terminal_id, 2 * MIN_PART)
        data = concatenated(directory)
        assert len(data) > 2 * MIN_PART  # three parts

        seen: list[int] = []
        stop = threading.Event()

        def stop_after_first_part(_: str, offset: int, size: int) -> None:
            seen.append(offset)
            if offset >= MIN_PART:
                stop.set()

        with (
            Uploader(
                server.url,
                terminal.headers,
                backoff=Backoff(0.1, maximum=0.5),
                progress=stop_after_first_part,
                stop=stop,
            ) as first,
            pytest.raises(Stopped),
        ):
            first.upload(directory.path)
        assert seen == [0, MIN_PART] and read_receipt(directory.path) is None
        assert len(open_multipart_uploads(moto_endpoint, bucket)) == 1
    finally:
        server.kill()
    server.start()
    try:
        resumed: list[int] = []
        second = Uploader(
            server.url,
            terminal.headers,
            backoff=Backoff(0.1, maximum=0.5),
            progress=lambda _, offset, size: resumed.append(offset),
        )
        with second:
            receipt = second.upload(directory.path)
    finally:
        server.stop()
    # It started from the part S3 had and sent the other two.
    assert resumed == [MIN_PART, 2 * MIN_PART, len(data)]
    assert receipt.sha256 == hashlib.sha256(data).hexdigest() and receipt.size == len(data)
    assert read_receipt(directory.path) == receipt
    # The evidence object is the recording, byte for byte; nothing staged is left over.
    keys = bucket_keys(moto_endpoint, bucket)
    (evidence_key,) = [k for k in keys if k.endswith(".ts")]
    assert evidence_key.startswith("evidence/") and f"{evidence_key}.lock" in keys
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert client.get_object(Bucket=bucket, Key=evidence_key)["Body"].read() == data
    assert not [k for k in keys if k.startswith("uploads/")]
    assert open_multipart_uploads(moto_endpoint, bucket) == []


class DirectClient:
    """A terminal talking to the direct-upload endpoints by hand."""

    def __init__(self, http: httpx.AsyncClient, terminal: TerminalIdentity) -> None:
        self.http, self.terminal = http, terminal

    async def call(self, method: str, path: str, body: object = None) -> httpx.Response:
        headers = self.terminal.headers(method, path)
        if body is None:
            return await self.http.request(method, path, headers=headers)
        return await self.http.request(
            method,
            path,
            content=msgspec.json.encode(body),
            headers={**headers, "Content-Type": "application/json"},
        )

    async def put_part(self, upload: dict, number: int, body: bytes, declared: bytes) -> None:
        """PUT `body` as part `number`, with a URL signed for the checksum of `declared`."""
        urls = await self.call(
            "POST",
            f"{upload['url']}/urls",
            {"parts": [{"number": number, "sha256": b64_sha256(declared)}]},
        )
        assert urls.status_code == 200, urls.text
        (part,) = urls.json()["urls"]
        assert part["headers"] == {"x-amz-checksum-sha256": b64_sha256(declared)}
        assert "x-amz-checksum-sha256" in part["url"]  # the checksum is signed
        async with httpx.AsyncClient() as s3:
            sent = await s3.put(part["url"], content=body, headers=part["headers"])
        assert sent.status_code == 200, sent.text


async def test_refusals_and_sealing(migrated, clock, tmp_path, moto_endpoint, s3_credentials):
    bucket = new_bucket(moto_endpoint, object_lock=True)
    settings = msgspec.structs.replace(
        migrated,
        media_storage="s3",
        media_s3_endpoint_url=moto_endpoint,
        media_s3_bucket=bucket,
        media_s3_part_bytes=MIN_PART,
        media_direct_upload=True,
    )
    app = create_app(settings, clock)
    context = app.state.context
    now = lambda: clock.now().timestamp()  # noqa: E731
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver.local"
    ) as http:
        info = await demo.seed(context)
        a = DirectClient(
            http, await enroll_and_login(http, info.enrollment_code, "13010001", now=now)
        )
        info = await demo.seed(context)  # a fresh enrollment code for the second terminal
        b = DirectClient(
            http, await enroll_and_login(http, info.enrollment_code, "13010002", now=now)
        )
        directory = padded(tmp_path / "a", a.terminal.key, a.terminal.terminal_id, MIN_PART + 4096)
        data = concatenated(directory)
        parts = [data[:MIN_PART], data[MIN_PART:]]

        announced = await a.call("POST", RECORDINGS, msgspec.json.decode(manifest_json(directory)))
        assert announced.status_code == 201, announced.text
        assert announced.json()["direct_upload_endpoint"] == DIRECT
        opened = await a.call("POST", DIRECT, {"recording_id": directory.recording_id})
        assert opened.status_code == 201, opened.text
        upload = opened.json()
        assert (upload["length"], upload["part_bytes"], upload["received"]) == (
            len(data),
            MIN_PART,
            [],
        )
        # Asking again finds the same upload.
        again = await a.call("POST", DIRECT, {"recording_id": directory.recording_id})
        assert again.status_code == 200 and again.json()["url"] == upload["url"]

        # Another terminal's officer can neither see nor use it, nor open one for the recording.
        for method, path, body in (
            ("GET", upload["url"], None),
            (
                "POST",
                f"{upload['url']}/urls",
                {"parts": [{"number": 1, "sha256": b64_sha256(b"")}]},
            ),
            ("POST", f"{upload['url']}/complete", None),
        ):
            refused = await b.call(method, path, body)
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "permission_denied"
        foreign = await b.call("POST", DIRECT, {"recording_id": directory.recording_id})
        assert foreign.json()["code"] == "recording_not_registered"
        # A part number outside the recording is refused before any URL is signed.
        beyond = await a.call(
            "POST", f"{upload['url']}/urls", {"parts": [{"number": 3, "sha256": b64_sha256(b"")}]}
        )
        assert beyond.status_code == 400 and beyond.json()["code"] == "part_checksum_invalid"
        # The tus doors do not lead to a direct upload.
        tus_path = "/api/media/uploads/" + upload["url"].rsplit("/", 1)[1]
        head = await http.head(
            tus_path, headers={**a.terminal.headers("HEAD", tus_path), "Tus-Resumable": "1.0.0"}
        )
        assert head.status_code == 404

        # Part 1 only: completing is refused, nothing changes.
        await a.put_part(upload, 1, parts[0], parts[0])
        early = await a.call("POST", f"{upload['url']}/complete")
        assert early.status_code == 409, early.text
        assert early.json()["code"] == "direct_upload_parts_missing"
        assert early.json()["missing"] == [2]
        listed = (await a.call("GET", upload["url"])).json()
        assert listed["received"] == [{"number": 1, "size": MIN_PART}]

        # Part 2 changed on the way (S3 would refuse it by its signed checksum; moto does not
        # check, so here our own whole-file SHA-256 is what catches it): nothing sealed, the
        # assembled object deleted, the recording marked refused with the reason.
        corrupted = bytearray(parts[1])
        corrupted[100] ^= 0xFF
        await a.put_part(upload, 2, bytes(corrupted), parts[1])
        wrong = await a.call("POST", f"{upload['url']}/complete")
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["code"] == "upload_digest_mismatch"
        assert (
            wrong.json()["sha256"] == hashlib.sha256(data[:MIN_PART] + bytes(corrupted)).hexdigest()
        )
        assert bucket_keys(moto_endpoint, bucket) == []
        assert open_multipart_uploads(moto_endpoint, bucket) == []
        admin = await login(http, "admin")
        assert (await http.get("/api/media/evidence", headers=admin)).json() == []
        status = (await a.call("GET", f"{RECORDINGS}/{directory.recording_id}")).json()
        assert status["status"] == "rejected" and status["problems"]

        # Sent again, right this time: sealed, write-once, the same bytes.
        retry = (await a.call("POST", DIRECT, {"recording_id": directory.recording_id})).json()
        assert retry["url"] != upload["url"] and retry["received"] == []
        for number, part in enumerate(parts, start=1):
            await a.put_part(retry, number, part, part)
        sealed = await a.call("POST", f"{retry['url']}/complete")
        assert sealed.status_code == 200, sealed.text
        view = sealed.json()
        assert view["status"] == "sealed"
        assert view["evidence"]["sha256"] == hashlib.sha256(data).hexdigest()
        (item,) = (await http.get("/api/media/evidence", headers=admin)).json()
        assert item["seal_enforced_by"] == "s3-object-lock" and item["size"] == len(data)
        key = f"evidence/{item['agency_id']}/{view['id']}.ts"
        assert bucket_keys(moto_endpoint, bucket) == [key, f"{key}.lock"]
        grant = await http.post(
            f"/api/media/evidence/{item['id']}/access", json={"purpose": "download"}, headers=admin
        )
        assert (await http.get(grant.json()["url"])).content == data
        # Completing twice is harmless; a sealed recording takes no new upload.
        twice = await a.call("POST", f"{retry['url']}/complete")
        assert twice.status_code == 200 and twice.json()["status"] == "sealed"
        closed = await a.call("POST", DIRECT, {"recording_id": directory.recording_id})
        assert closed.status_code == 409 and closed.json()["code"] == "recording_already_sealed"
    await context.close()


async def test_direct_upload_is_off_unless_configured(client, officer_terminal, tmp_path):
    directory = record(tmp_path / "t", officer_terminal.key, officer_terminal.terminal_id, 1.0)
    terminal = DirectClient(client, officer_terminal)
    announced = await terminal.call(
        "POST", RECORDINGS, msgspec.json.decode(manifest_json(directory))
    )
    assert announced.status_code == 201 and announced.json()["direct_upload_endpoint"] is None
    refused = await terminal.call("POST", DIRECT, {"recording_id": directory.recording_id})
    assert refused.status_code == 404 and refused.json()["code"] == "direct_upload_unavailable"
