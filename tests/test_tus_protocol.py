"""tus 1.0.0 conformance of /api/media/uploads (terminals, DPoP) and /api/media/tus (any client
with an upload-scoped token): raw httpx against the app, and tuspy against a live server."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
import msgspec
import pytest
from sqlalchemy import func, select, update
from tusclient.client import TusClient

from media.edge.chain import sign_head
from media.models import Evidence, Upload
from server.app import demo
from server.app.context import AppContext
from server.app.main import create_app
from server.core.clock import Clock
from server.core.models import LedgerEntry
from tests.conftest import TerminalIdentity, enroll_and_login, login
from tests.media_support import (  # noqa: F401  (fixtures: seeded database copies)
    OCTETS,
    TUS,
    checksum,
    concatenated,
    database_url,
    manifest,
    manifest_json,
    metadata,
    record,
    seeded_templates,
    written,
)

RECORDINGS = "/api/media/recordings"
UPLOADS = "/api/media/uploads"


@pytest.fixture
def recording(tmp_path, officer_terminal):
    return record(tmp_path / "terminal", officer_terminal.key, officer_terminal.terminal_id)


async def announce(client: httpx.AsyncClient, terminal: TerminalIdentity, directory) -> dict:
    response = await client.post(
        RECORDINGS,
        content=manifest_json(directory),
        headers={**terminal.headers("POST", RECORDINGS), "Content-Type": "application/json"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def create(
    client: httpx.AsyncClient,
    terminal: TerminalIdentity,
    directory,
    *,
    body: bytes | None = None,
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {
        **TUS,
        **terminal.headers("POST", UPLOADS),
        "Upload-Length": str(len(concatenated(directory))),
        "Upload-Metadata": metadata(recording=directory.recording_id, filename="a.ts"),
        **(extra or {}),
    }
    if body is not None:
        headers["Content-Type"] = OCTETS
    return await client.post(UPLOADS, content=body or b"", headers=headers)


async def send(
    client: httpx.AsyncClient,
    terminal: TerminalIdentity,
    url: str,
    offset: int,
    data: bytes,
    *,
    algorithm: str | None = "sha256",
    extra: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {
        **TUS,
        **terminal.headers("PATCH", url),
        "Upload-Offset": str(offset),
        "Content-Type": OCTETS,
        **(extra or {}),
    }
    if algorithm:
        headers["Upload-Checksum"] = checksum(algorithm, data)
    return await client.patch(url, content=data, headers=headers)


async def head(client: httpx.AsyncClient, terminal: TerminalIdentity, url: str) -> httpx.Response:
    return await client.head(url, headers={**TUS, **terminal.headers("HEAD", url)})


async def status(client: httpx.AsyncClient, terminal: TerminalIdentity, recording_id: str) -> dict:
    path = f"{RECORDINGS}/{recording_id}"
    response = await client.get(path, headers=terminal.headers("GET", path))
    assert response.status_code == 200, response.text
    return response.json()


def staged_size(settings, url: str) -> int:
    path = settings.resolved_media_dir / "uploads" / url.rsplit("/", 1)[1]
    return path.stat().st_size if path.exists() else -1


async def test_options_names_version_extensions_and_algorithms(client):
    response = await client.options(UPLOADS)
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) == {
        "creation",
        "creation-with-upload",
        "expiration",
        "checksum",
        "termination",
    }
    assert response.headers["Tus-Checksum-Algorithm"] == "sha1,sha256"
    assert int(response.headers["Tus-Max-Size"]) > 0


async def test_create_head_patch_and_seal(client, officer_terminal, recording, context):
    announced = await announce(client, officer_terminal, recording)
    assert announced["status"] == "pending" and announced["upload_url"] is None
    data = concatenated(recording)
    created = await create(client, officer_terminal, recording)
    assert created.status_code == 201, created.text
    assert created.headers["Tus-Resumable"] == "1.0.0"
    assert "GMT" in created.headers["Upload-Expires"]
    url = created.headers["Location"]
    assert url.startswith(f"{UPLOADS}/")

    probe = await head(client, officer_terminal, url)
    assert probe.status_code == 200
    assert probe.headers["Upload-Offset"] == "0"
    assert probe.headers["Upload-Length"] == str(len(data))
    assert probe.headers["Cache-Control"] == "no-store"
    assert "recording " in probe.headers["Upload-Metadata"]
    assert (await status(client, officer_terminal, recording.recording_id))["upload_url"] == url

    step = len(data) // 3 + 1
    offset = 0
    for algorithm in ("sha256", "sha1", None):
        piece = data[offset : offset + step]
        response = await send(client, officer_terminal, url, offset, piece, algorithm=algorithm)
        assert response.status_code == 204, response.text
        offset += len(piece)
        assert response.headers["Upload-Offset"] == str(offset)
        assert (await head(client, officer_terminal, url)).headers["Upload-Offset"] == str(offset)
    assert offset == len(data)

    # The last PATCH sealed the recording (in the background, done before the test client returns).
    sealed = await status(client, officer_terminal, recording.recording_id)
    assert sealed["status"] == "sealed", sealed
    assert sealed["evidence"]["sha256"] == hashlib.sha256(data).hexdigest()
    stored = context.settings.resolved_media_dir / "evidence"
    files = [p for p in stored.rglob("*.ts")]
    assert len(files) == 1 and files[0].read_bytes() == data
    # A PATCH after the end changes nothing.
    again = await send(client, officer_terminal, url, len(data), b"")
    assert again.status_code == 204 and again.headers["Upload-Offset"] == str(len(data))


async def test_creation_with_upload(client, officer_terminal, recording):
    await announce(client, officer_terminal, recording)
    data = concatenated(recording)
    first = data[: len(data) // 3]
    created = await create(
        client,
        officer_terminal,
        recording,
        body=first,
        extra={"Upload-Checksum": checksum("sha256", first)},
    )
    assert created.status_code == 201, created.text
    assert created.headers["Upload-Offset"] == str(len(first))
    url = created.headers["Location"]
    rest = await send(client, officer_terminal, url, len(first), data[len(first) :])
    assert rest.status_code == 204
    assert (await status(client, officer_terminal, recording.recording_id))["status"] == "sealed"


async def test_two_uploads_of_one_recording_finishing_at_once_seal_it_once(
    client, officer_terminal, recording, context
):
    """A terminal that lost the answer to its creation uploads again: both may end together."""
    await announce(client, officer_terminal, recording)
    data = concatenated(recording)
    urls = []
    for _ in range(2):
        created = await create(client, officer_terminal, recording)
        assert created.status_code == 201, created.text
        urls.append(created.headers["Location"])
    last = len(data) - 1
    for url in urls:
        assert (await send(client, officer_terminal, url, 0, data[:last])).status_code == 204
    endings = await asyncio.gather(
        *(send(client, officer_terminal, url, last, data[last:]) for url in urls)
    )
    assert [response.status_code for response in endings] == [204, 204], endings[1].text
    sealed = await status(client, officer_terminal, recording.recording_id)
    assert sealed["status"] == "sealed", sealed
    async with context.database.sessionmaker() as session:
        evidence = (await session.scalars(select(Evidence))).all()
        kinds = (await session.scalars(select(LedgerEntry.kind))).all()
    assert len(evidence) == 1 and evidence[0].sha256 == hashlib.sha256(data).hexdigest()
    assert kinds.count("media.evidence_sealed") == 1 and kinds.count("media.upload_duplicate") == 1


async def test_checksum_mismatch_is_460_and_nothing_is_stored(
    client, officer_terminal, recording, context
):
    await announce(client, officer_terminal, recording)
    data = concatenated(recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    good = await send(client, officer_terminal, url, 0, data[:10_000])
    assert good.status_code == 204
    for algorithm in ("sha256", "sha1"):
        wrong = {"Upload-Checksum": checksum(algorithm, b"something else")}
        refused = await send(
            client, officer_terminal, url, 10_000, data[10_000:40_000], algorithm=None, extra=wrong
        )
        assert refused.status_code == 460, refused.text
        assert refused.json()["code"] == "checksum_mismatch"
        assert (await head(client, officer_terminal, url)).headers["Upload-Offset"] == "10000"
        assert staged_size(context.settings, url) == 10_000
    unknown = await send(
        client, officer_terminal, url, 10_000, data[10_000:20_000], algorithm="md5"
    )
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "checksum_algorithm_unsupported"
    # After the refusals the same bytes, intact, are taken.
    rest = await send(client, officer_terminal, url, 10_000, data[10_000:])
    assert rest.status_code == 204
    assert (await status(client, officer_terminal, recording.recording_id))["status"] == "sealed"


async def test_creation_with_a_corrupted_first_chunk_creates_nothing(
    client, officer_terminal, recording, context
):
    await announce(client, officer_terminal, recording)
    first = concatenated(recording)[:20_000]
    refused = await create(
        client,
        officer_terminal,
        recording,
        body=first,
        extra={"Upload-Checksum": checksum("sha256", first[:-1] + b"\0")},
    )
    assert refused.status_code == 460
    async with context.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Upload)) == 0
    assert not any((context.settings.resolved_media_dir / "uploads").iterdir())


async def test_what_does_not_check_out_is_refused(client, officer_terminal, tmp_path, context):
    """Every byte arrives intact, yet nothing is sealed: random bytes with a valid signed chain
    do not decode; a file other than the one announced fails the whole-file SHA-256."""
    root, key, terminal_id = tmp_path / "t", officer_terminal.key, officer_terminal.terminal_id
    garbage = written(root, key, terminal_id, [os.urandom(3000), os.urandom(2000)])
    wrong = record(root, key, terminal_id)
    # Random bytes are refused either as undecodable or, when FFmpeg happens to find a container
    # in them, as having no video stream; both are the probe refusing them.
    for directory, problems in ((garbage, ("无法解码", "没有视频流")), (wrong, ("SHA-256",))):
        announced = manifest(directory)
        if directory is wrong:
            announced = msgspec.structs.replace(announced, sha256=hashlib.sha256(b"x").hexdigest())
        response = await client.post(
            RECORDINGS,
            content=msgspec.json.encode(announced),
            headers={
                **officer_terminal.headers("POST", RECORDINGS),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 201, response.text
        data = concatenated(directory)
        created = await create(client, officer_terminal, directory, body=data)
        assert created.headers["Upload-Offset"] == str(len(data))
        view = await status(client, officer_terminal, directory.recording_id)
        assert view["status"] == "rejected" and view["evidence"] is None
        assert any(word in p for p in view["problems"] for word in problems), view["problems"]
    async with context.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Evidence)) == 0
    media = context.settings.resolved_media_dir
    assert not list(media.rglob("*.ts")) and not any((media / "uploads").iterdir())


async def test_protocol_errors(client, officer_terminal, recording):
    await announce(client, officer_terminal, recording)
    data = concatenated(recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    wrong_offset = await send(client, officer_terminal, url, 5, data[5:100])
    assert wrong_offset.status_code == 409
    assert wrong_offset.json()["offset"] == 0
    no_version = await client.patch(
        url,
        content=data[:10],
        headers={
            **officer_terminal.headers("PATCH", url),
            "Upload-Offset": "0",
            "Content-Type": OCTETS,
        },
    )
    assert no_version.status_code == 412 and no_version.headers["Tus-Version"] == "1.0.0"
    wrong_type = await send(
        client, officer_terminal, url, 0, data[:10], extra={"Content-Type": "application/json"}
    )
    assert wrong_type.status_code == 415
    too_long = await send(client, officer_terminal, url, 0, data + b"x")
    assert too_long.status_code == 413
    wrong_length = await create(
        client, officer_terminal, recording, extra={"Upload-Length": str(len(data) + 1)}
    )
    assert wrong_length.status_code == 400
    assert wrong_length.json()["code"] == "upload_length_mismatch"
    unknown = await create(
        client, officer_terminal, recording, extra={"Upload-Metadata": metadata(recording="nope")}
    )
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "recording_not_registered"
    bad_metadata = await create(
        client, officer_terminal, recording, extra={"Upload-Metadata": "recording %%%"}
    )
    assert bad_metadata.status_code == 400
    missing = f"{UPLOADS}/00000000-0000-4000-8000-000000000000"
    assert (await head(client, officer_terminal, missing)).status_code == 404


async def test_expiration(client, officer_terminal, recording, clock, context):
    await announce(client, officer_terminal, recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    await send(client, officer_terminal, url, 0, concatenated(recording)[:1000])
    probe = await head(client, officer_terminal, url)
    expires = parsedate_to_datetime(probe.headers["Upload-Expires"])
    assert expires - clock.now() == dt.timedelta(
        seconds=context.settings.media_upload_expiry_seconds
    )
    # Let the expiry pass (moving the upload's clock back keeps the officer's token valid).
    async with context.database.transaction() as session:
        await session.execute(
            update(Upload).values(expires_at=clock.now() - dt.timedelta(seconds=1))
        )
    assert (await head(client, officer_terminal, url)).status_code == 410
    assert (await head(client, officer_terminal, url)).status_code == 404
    assert staged_size(context.settings, url) == -1
    # The recording itself stays announced; a new upload starts from zero.
    fresh = await create(client, officer_terminal, recording)
    assert fresh.status_code == 201


async def test_termination(client, officer_terminal, recording, context):
    await announce(client, officer_terminal, recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    await send(client, officer_terminal, url, 0, concatenated(recording)[:1000])
    deleted = await client.delete(url, headers={**TUS, **officer_terminal.headers("DELETE", url)})
    assert deleted.status_code == 204
    assert (await head(client, officer_terminal, url)).status_code == 404
    assert staged_size(context.settings, url) == -1
    again = await client.delete(url, headers={**TUS, **officer_terminal.headers("DELETE", url)})
    assert again.status_code == 404


async def test_concurrent_patch_is_refused_not_interleaved(
    client, officer_terminal, recording, migrated, clock
):
    await announce(client, officer_terminal, recording)
    data = concatenated(recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    first = data[: len(data) // 2]
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_body():
        yield first[:1000]
        started.set()
        await release.wait()
        yield first[1000:]

    headers = {
        **TUS,
        **officer_terminal.headers("PATCH", url),
        "Upload-Offset": "0",
        "Content-Type": OCTETS,
        "Content-Length": str(len(first)),
        "Upload-Checksum": checksum("sha256", first),
    }
    holder = asyncio.create_task(client.patch(url, content=slow_body(), headers=headers))
    await started.wait()
    # The same instance and a second one on the same database both refuse a second writer.
    other_app = create_app(migrated, clock)
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=other_app), base_url="http://b")
    try:
        for competitor in (client, other):
            busy = await send(competitor, officer_terminal, url, 0, data[:1000])
            assert busy.status_code == 423, busy.text
            assert busy.json()["code"] == "upload_busy" and busy.headers["Retry-After"]
    finally:
        await other.aclose()
        await other_app.state.context.close()
    release.set()
    done = await holder
    assert done.status_code == 204 and done.headers["Upload-Offset"] == str(len(first))
    rest = await send(client, officer_terminal, url, len(first), data[len(first) :])
    assert rest.status_code == 204
    assert (await status(client, officer_terminal, recording.recording_id))["status"] == "sealed"


async def test_refusals(client, officer_terminal, seeded, recording, tmp_path, clock):
    data = concatenated(recording)
    # Anonymous.
    anonymous = await client.post(UPLOADS, headers={**TUS, "Upload-Length": "1"})
    assert anonymous.status_code == 401
    assert (await client.post(RECORDINGS, content=manifest_json(recording))).status_code == 401
    # Staff are not terminals: wrong role, and an officer logged in on the console is no terminal.
    reviewer = await login(client, "reviewer")
    assert (await client.post(UPLOADS, headers={**TUS, **reviewer})).status_code == 403
    console_officer = await login(client, "13010002")
    refused = await client.post(
        RECORDINGS, content=manifest_json(recording), headers=console_officer
    )
    assert refused.status_code == 403

    announced = await announce(client, officer_terminal, recording)
    url = (await create(client, officer_terminal, recording)).headers["Location"]
    # Another terminal may neither see nor write this terminal's upload, nor announce its recording.
    code = await client.post(
        "/api/terminals/enrollment-codes", json={}, headers=await login(client, "admin")
    )
    foreign = await enroll_and_login(
        client, code.json()["enrollment_code"], "13010002", now=lambda: clock.now().timestamp()
    )
    assert (await head(client, foreign, url)).status_code == 403
    assert (await send(client, foreign, url, 0, data[:100])).status_code == 403
    deleted = await client.delete(url, headers={**TUS, **foreign.headers("DELETE", url)})
    assert deleted.status_code == 403
    stolen = await client.post(
        RECORDINGS,
        content=manifest_json(recording),
        headers={**foreign.headers("POST", RECORDINGS), "Content-Type": "application/json"},
    )
    assert stolen.status_code == 422 and stolen.json()["field"] == "chain.terminal_id"
    # The upload token works on the token endpoint only, for this recording only.
    token = {"Authorization": f"Bearer {announced['upload_token']}"}
    assert (await client.head(url, headers={**TUS, **token})).status_code == 401
    token_url = url.replace(UPLOADS, announced["token_upload_endpoint"])
    assert (await client.head(token_url, headers={**TUS, **token})).status_code == 200
    other = record(tmp_path / "terminal", officer_terminal.key, officer_terminal.terminal_id, 2.0)
    await announce(client, officer_terminal, other)
    wrong_recording = await client.post(
        announced["token_upload_endpoint"],
        headers={
            **TUS,
            **token,
            "Upload-Length": str(len(concatenated(other))),
            "Upload-Metadata": metadata(recording=other.recording_id),
        },
    )
    assert wrong_recording.status_code == 403
    assert (await client.head(token_url, headers=TUS)).status_code == 401


async def test_announcement_is_idempotent_and_checked(client, officer_terminal, recording):
    first = await client.post(
        RECORDINGS,
        content=manifest_json(recording),
        headers={
            **officer_terminal.headers("POST", RECORDINGS),
            "Content-Type": "application/json",
        },
    )
    assert first.status_code == 201
    again = await announce(client, officer_terminal, recording)
    assert again["id"] == first.json()["id"]
    altered = manifest(recording)
    changed = msgspec.structs.replace(altered, sha256="0" * 64)
    conflict = await client.post(
        RECORDINGS,
        content=msgspec.json.encode(changed),
        headers={
            **officer_terminal.headers("POST", RECORDINGS),
            "Content-Type": "application/json",
        },
    )
    assert conflict.status_code == 422
    assert conflict.json()["code"] == "recording_manifest_conflict"
    # An open chain (recording still running) is not accepted.
    chain = altered.chain
    assert chain.head is not None
    open_head = sign_head(
        chain.recording_id,
        chain.head.count,
        bytes.fromhex(chain.head.head_hex),
        False,
        officer_terminal.key,
    )
    unfinished = msgspec.structs.replace(
        altered, chain=msgspec.structs.replace(chain, head=open_head)
    )
    refused = await client.post(
        RECORDINGS,
        content=msgspec.json.encode(unfinished),
        headers={
            **officer_terminal.headers("POST", RECORDINGS),
            "Content-Type": "application/json",
        },
    )
    assert refused.status_code == 422 and refused.json()["field"] == "chain.head"


async def test_tuspy_uploads_with_an_upload_token(live_server, migrated, tmp_path):
    """Any tus client works unchanged: tuspy with static headers and the upload-scoped token."""
    context = AppContext(migrated, Clock())
    try:
        info = await demo.seed(context)
    finally:
        await context.close()
    async with httpx.AsyncClient(base_url=live_server.url) as http:
        terminal = await enroll_and_login(http, info.enrollment_code, "13010001")
        directory = record(tmp_path / "terminal", terminal.key, terminal.terminal_id)
        announced = await announce(http, terminal, directory)
        data = concatenated(directory)
        source = tmp_path / "recording.ts"
        source.write_bytes(data)
        tus = TusClient(
            live_server.url + announced["token_upload_endpoint"],
            headers={"Authorization": f"Bearer {announced['upload_token']}"},
        )
        uploader = tus.uploader(
            str(source),
            chunk_size=32 * 1024,
            metadata={"recording": directory.recording_id, "filename": source.name},
            upload_checksum=True,  # tuspy sends sha1, the algorithm tus requires
        )
        await asyncio.to_thread(uploader.upload)
        assert uploader.offset == len(data)
        deadline = time.monotonic() + 20
        while (view := await status(http, terminal, directory.recording_id))["status"] == "pending":
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.2)
        assert view["status"] == "sealed", view
        assert view["evidence"]["sha256"] == hashlib.sha256(data).hexdigest()
    # The live server stored exactly those bytes.
    context = AppContext(migrated, Clock())
    try:
        async with context.database.sessionmaker() as session:
            evidence = await session.scalar(select(Evidence))
        assert evidence is not None
        stored = Path(migrated.resolved_media_dir) / evidence.storage_key
        assert stored.read_bytes() == data
    finally:
        await context.close()
