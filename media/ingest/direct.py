"""Direct uploads: the terminal PUTs parts straight to S3 through presigned URLs; we only verify.

At scale the bytes of recordings should not pass through the application servers. With
``media_direct_upload`` on an S3 store, a terminal opens a direct upload of an announced
recording (an ``Upload`` row plus an S3 multipart upload at the staged key), asks for presigned
URLs of the parts it is about to send, each signed with the part's SHA-256 (S3 refuses a body
that does not match), PUTs them, and after any interruption asks which parts S3 has (ListParts).
Completing it here: every part present at its exact size, S3 assembles them, then we read the
whole object once to compute its SHA-256 ourselves (S3's multipart checksum is a checksum of the
parts' checksums), and the upload goes through the same sealing as a tus upload
(media.evidence.services.seal_upload): digest, segment chain and signature, PyAV, write-once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import select, update

from media.edge.manifest import (
    DirectUploadView,
    PartReceived,
    PartUrl,
    PartUrlRequest,
    PartUrls,
    part_sizes,
)
from media.evidence.services import seal_upload
from media.ingest import services as ingest
from media.ingest import tus
from media.models import Evidence, Recording, Upload, UploadStatus
from media.storage import DirectStore, Store
from media.web import MediaContext
from server.core.errors import BadRequest, Conflict, NotFound, ValidationFailed

# S3 allows 10,000 parts; a part URL is good for this long (asked again when it lapses).
MAX_PARTS = 10_000
PART_URL_SECONDS = 3600


class DirectUploadOff(NotFound):
    code = "direct_upload_unavailable"
    title = "服务器未开启录像直传存储，请使用 tus 上传"


class PartsMissing(Conflict):
    code = "direct_upload_parts_missing"
    title = "还有分片没有上传到存储（或大小不符），不能完成上传"


class PartChecksumInvalid(BadRequest):
    code = "part_checksum_invalid"
    title = "分片编号超出范围，或分片的 SHA-256 不是 Base64 编码的 32 字节"


class DigestMismatch(ValidationFailed):
    code = "upload_digest_mismatch"
    title = "整个文件的 SHA-256 与终端声明的不符：未封存，上传的数据已删除"


class EvidenceRefused(ValidationFailed):
    code = "evidence_rejected"
    title = "录像未通过校验，未封存为证据"


def direct_store(context: MediaContext, store: Store) -> DirectStore | None:
    """The store, if this server takes direct uploads."""
    if context.settings.media_direct_upload and isinstance(store, DirectStore):
        return store
    return None


def _required(context: MediaContext, store: Store) -> DirectStore:
    direct = direct_store(context, store)
    if direct is None:
        raise DirectUploadOff()
    return direct


def part_bytes_for(length: int, configured: int) -> int:
    """The configured part size, larger where the recording would need over 10,000 parts."""
    return max(configured, -(-length // MAX_PARTS))


def expected_parts(upload: Upload) -> dict[int, int]:
    """Part number -> its size."""
    assert upload.part_bytes is not None
    return part_sizes(upload.length, upload.part_bytes)


def view_of(
    upload: Upload, path: str, recording_key: str, received: dict[int, int]
) -> DirectUploadView:
    return DirectUploadView(
        url=f"{path}/{upload.id}",
        recording_id=recording_key,
        length=upload.length,
        part_bytes=upload.part_bytes or 0,
        status=upload.status.value,
        received=[PartReceived(n, size) for n, size in sorted(received.items())],
        expires_at=upload.expires_at if upload.status is UploadStatus.RECEIVING else None,
    )


async def open_direct(
    context: MediaContext, store: Store, caller: ingest.Caller, recording_key: str
) -> tuple[Upload, bool]:
    """The recording's unfinished direct upload, or a new one; and whether it is new."""
    direct = _required(context, store)
    await ingest.purge_expired_uploads(context, store)
    keyring = await context.keyring()
    now = context.clock.now()
    async with context.database.transaction() as session:
        recording = await ingest.recording_of(session, caller, recording_key)
        existing = await ingest.open_upload_of(session, recording.id, direct=True)
        if existing is not None and existing.expires_at > now:
            return existing, False
        upload = await ingest.create_upload(
            session,
            keyring,
            context.settings,
            store,
            caller,
            length=recording.size,
            metadata={"recording": recording.recording_key},
            lease_token=None,
            now=now,
        )
        upload.part_bytes = part_bytes_for(recording.size, context.settings.media_s3_part_bytes)
        upload.direct_upload_id = await to_thread.run_sync(
            direct.begin_multipart, upload.storage_key
        )
        await session.flush()
    return upload, True


async def _listing(
    context: MediaContext, direct: DirectStore, upload: Upload
) -> dict[int, dict[str, Any]] | None:
    """S3's list of the parts; None when S3 assembled them already."""
    assert upload.direct_upload_id is not None
    listed = await to_thread.run_sync(
        direct.multipart_parts, upload.storage_key, upload.direct_upload_id
    )
    if listed is not None:
        return listed
    # No multipart upload any more: completed by a request that stopped before recording it,
    # or aborted (e.g. by a bucket lifecycle rule).
    if await to_thread.run_sync(direct.staged_size, upload.storage_key) == upload.length:
        return None
    await ingest.purge_upload(context, direct, upload.id, reason="multipart_upload_lost")
    raise tus.UploadGone("存储中的分片上传已失效，请重新开始上传", upload_id=str(upload.id))


async def received_parts(context: MediaContext, store: Store, upload: Upload) -> dict[int, int]:
    """Part number -> size of what the store has; every part once S3 assembled them."""
    if upload.status is UploadStatus.RECEIVING:
        listed = await _listing(context, _required(context, store), upload)
        if listed is not None:
            return {n: int(part["Size"]) for n, part in listed.items()}
    return expected_parts(upload)


def missing_parts(upload: Upload, received: dict[int, int]) -> list[int]:
    return [n for n, size in expected_parts(upload).items() if received.get(n) != size]


async def part_urls(
    context: MediaContext,
    store: Store,
    caller: ingest.Caller,
    upload_id: uuid.UUID,
    request: PartUrlRequest,
) -> PartUrls:
    """Presigned PUTs for the parts asked for, each bound to the part's SHA-256."""
    direct = _required(context, store)
    upload = await ingest.load_upload(context, store, caller, upload_id, direct=True)
    if upload.status is not UploadStatus.RECEIVING:
        raise ingest.UploadFinished(upload_id=str(upload_id))
    expected = expected_parts(upload)
    for part in request.parts:
        if part.number not in expected or len(_b64_digest(part.sha256)) != 32:
            raise PartChecksumInvalid(number=part.number)
    now = context.clock.now()
    # Handing out URLs is activity: the upload does not expire while parts are being sent.
    async with context.database.transaction() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == upload.id)
            .values(
                expires_at=now + dt.timedelta(seconds=context.settings.media_upload_expiry_seconds)
            )
            .execution_options(synchronize_session=False)
        )
    assert upload.direct_upload_id is not None
    urls = []
    for part in request.parts:
        url, headers = direct.part_url(
            upload.storage_key, upload.direct_upload_id, part.number, part.sha256, PART_URL_SECONDS
        )
        urls.append(PartUrl(number=part.number, url=url, headers=headers))
    return PartUrls(urls=urls, expires_at=now + dt.timedelta(seconds=PART_URL_SECONDS))


T = TypeVar("T")


async def _leased(
    context: MediaContext, upload_id: uuid.UUID, lease: str, work: Callable[[], T]
) -> T:
    """Run blocking work (S3 assembling, hashing a large object) while renewing the lease."""
    task = asyncio.ensure_future(to_thread.run_sync(work))
    while True:
        done, _ = await asyncio.wait(
            {task}, timeout=context.settings.media_upload_lease_seconds / 3
        )
        if done:
            return task.result()
        await ingest.renew_lease(context, upload_id, lease)


def _b64_digest(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        return b""


async def complete_direct(
    context: MediaContext, store: Store, caller: ingest.Caller, upload_id: uuid.UUID
) -> Upload:
    """Assemble the parts, hash the whole object, then verify and seal it as a tus upload is.

    Refuses with 409 while parts are missing (nothing changes); with 422 when the recording
    fails verification (nothing sealed, the uploaded object deleted).
    """
    direct = _required(context, store)
    upload = await ingest.load_upload(context, store, caller, upload_id, direct=True)
    if upload.status is UploadStatus.RECEIVING:
        key, multipart = upload.storage_key, upload.direct_upload_id
        assert multipart is not None
        lease = await ingest.acquire_lease(context, upload.id)
        try:
            listed = await _listing(context, direct, upload)
            if listed is not None:
                received = {n: int(part["Size"]) for n, part in listed.items()}
                missing = missing_parts(upload, received)
                if missing:
                    raise PartsMissing(missing=missing[:100], count=len(missing))
                parts = [listed[n] for n in sorted(expected_parts(upload))]
                await _leased(
                    context,
                    upload.id,
                    lease,
                    lambda: direct.complete_multipart(key, multipart, parts),
                )
            hasher = await _leased(
                context,
                upload.id,
                lease,
                lambda: ingest.hash_stored(store, key, upload.length),
            )
            upload = await ingest.commit(context, upload, lease, upload.length, hasher)
        except BaseException:
            await ingest.release_lease(context, upload.id, lease)
            raise
    await seal_upload(context, store, upload.id)
    async with context.database.sessionmaker() as session:
        recording = await session.get_one(Recording, upload.recording_id)
        sealed = await session.scalar(
            select(Evidence.id).where(Evidence.recording_id == recording.id)
        )
        row = await session.get_one(Upload, upload.id)
    if sealed is None and row.status is UploadStatus.REJECTED:
        problems = list(recording.problems)
        if row.prefix_sha256 != recording.sha256:
            raise DigestMismatch(problems=problems, sha256=row.prefix_sha256)
        raise EvidenceRefused(problems=problems)
    # Sealed, or another request is sealing it right now (the terminal asks for the status).
    return row
