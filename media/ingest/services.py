"""Recordings and tus uploads: state in the database, bytes in the store.

Any instance can take any request. The upload row holds the committed offset, the SHA-256 of the
bytes so far and a lease: the one request allowed to write. A PATCH takes the lease with a
conditional UPDATE, streams the body into the store while hashing it, commits the new offset and
gives the lease back; a second PATCH meanwhile gets 423. The running SHA-256 is kept in memory
between PATCHes; an instance that has not seen the earlier ones re-hashes the stored bytes and
checks them against the digest in the row, so the whole file's hash is known at the end without
reading it again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import anyio
import msgspec
from anyio import to_thread
from sqlalchemy import Connection, Table, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from media.edge.manifest import EvidenceReceipt, RecordingManifest, RecordingView
from media.ingest import tus
from media.models import Evidence, Recording, RecordingStatus, Upload, UploadStatus
from media.storage import Appender, DirectStore, ObjectMissing, Store
from media.tokens import ScopedToken
from media.web import MediaContext
from server.core import ledger
from server.core.auth import Principal
from server.core.db import WRITER
from server.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from server.core.keys import KeyRing
from server.core.models import Role
from server.core.settings import Settings

# Body bytes gathered before one trip to the worker thread (hashes + write).
BATCH = 1024 * 1024
# The PATCH path's worker threads: body batches, and the lease and offset statements on SQLite.
# Our own pool rather than anyio's: one hop per task, and uploads do not queue behind other work.
_WORKERS = ThreadPoolExecutor(4, thread_name_prefix="zhifa-upload")
_T = TypeVar("_T")
# Core statements on the table: no ORM objects loaded or synchronised on the hot path.
_UPLOADS = cast(Table, Upload.__table__)
EMPTY_SHA256 = hashlib.sha256().hexdigest()
# Running hashes kept between PATCHes, per upload, in this process.
_HASHERS: collections.OrderedDict[uuid.UUID, tuple[int, Any]] = collections.OrderedDict()
_HASHERS_MAX = 256


class RecordingNotRegistered(NotFound):
    code = "recording_not_registered"
    title = "该录像尚未登记，请先提交录像清单"


class ManifestConflict(ValidationFailed):
    code = "recording_manifest_conflict"
    title = "同一录像编号已登记了内容不同的清单"


class RecordingSealed(Conflict):
    code = "recording_already_sealed"
    title = "该录像已封存为证据，无需再次上传"


class UploadLengthMismatch(tus.BadTusHeader):
    code = "upload_length_mismatch"
    title = "Upload-Length 与录像清单声明的大小不符"


class UploadFinished(Conflict):
    code = "upload_finished"
    title = "该上传已接收完毕，不能再终止"


class ClientDisconnected(Exception):
    """The client went away in the middle of a body."""


class Caller(msgspec.Struct, frozen=True):
    """Who uploads: an officer on an enrolled terminal, or a token for one recording."""

    user_id: uuid.UUID
    agency_id: uuid.UUID
    terminal_id: uuid.UUID
    recording_id: uuid.UUID | None = None

    @classmethod
    def of_principal(cls, principal: Principal) -> Caller:
        if (
            Role.OFFICER not in principal.roles
            or principal.terminal_id is None
            or principal.agency_id is None
        ):
            raise PermissionDenied("只有登录在执法终端上的执法人员可以上传录像")
        return cls(principal.user_id, principal.agency_id, principal.terminal_id)

    @classmethod
    def of_token(cls, token: ScopedToken) -> Caller:
        if token.terminal_id is None:
            raise PermissionDenied("上传凭证未绑定执法终端")
        return cls(token.user_id, token.agency_id, token.terminal_id, token.subject)


# -- recordings ------------------------------------------------------------------------------


def _identity(manifest: RecordingManifest) -> str:
    """Hash of what the evidence will be (chain, size, hash), not of the editable metadata."""
    canonical = msgspec.json.encode(
        {"chain": manifest.chain, "size": manifest.size, "sha256": manifest.sha256},
        order="sorted",
    )
    return hashlib.sha256(canonical).hexdigest()


def _check_manifest(caller: Caller, manifest: RecordingManifest) -> None:
    chain, meta = manifest.chain, manifest.meta
    terminal = str(caller.terminal_id)
    problems = []
    if not 0 < len(chain.recording_id) <= 100:
        problems.append(("chain.recording_id", "录像编号长度应为 1 到 100 个字符"))
    if meta.recording_id != chain.recording_id:
        problems.append(("meta.recording_id", "元数据与哈希链的录像编号不一致"))
    if chain.terminal_id != terminal or meta.terminal_id != terminal:
        problems.append(("chain.terminal_id", "录像不是由当前执法终端录制的"))
    if chain.head is None or not chain.head.closed:
        problems.append(("chain.head", "录像尚未结束：哈希链没有已关闭的签名链头"))
    if not chain.segments:
        problems.append(("chain.segments", "录像没有任何片段"))
    if sum(record.size for record in chain.segments) != manifest.size:
        problems.append(("size", "大小与各片段大小之和不符"))
    if meta.case_id is not None:
        try:
            uuid.UUID(meta.case_id)
        except ValueError:
            problems.append(("meta.case_id", "案件编号应为 UUID"))
    if problems:
        field, message = problems[0]
        raise ValidationFailed(message, field=field, problems=[p for _, p in problems])


def manifest_of(recording: Recording) -> RecordingManifest:
    return msgspec.convert(recording.manifest, RecordingManifest)


def case_id_of(recording: Recording) -> uuid.UUID | None:
    case = manifest_of(recording).meta.case_id
    return uuid.UUID(case) if case else None


async def register_recording(
    session: AsyncSession,
    keyring: KeyRing,
    caller: Caller,
    manifest: RecordingManifest,
    now: dt.datetime,
) -> tuple[Recording, bool]:
    """Announce a recording; repeating the same announcement is harmless (returns the first).

    Returns the recording and whether it is new.
    """
    _check_manifest(caller, manifest)
    identity = _identity(manifest)
    document = msgspec.to_builtins(manifest)
    existing = await session.scalar(
        select(Recording).where(
            Recording.terminal_id == caller.terminal_id,
            Recording.recording_key == manifest.chain.recording_id,
        )
    )
    if existing is not None:
        if existing.manifest_sha256 != identity:
            raise ManifestConflict(recording_id=manifest.chain.recording_id)
        # Metadata (case, positions, officers) may be completed until the recording is sealed;
        # after that a case is linked on the evidence item.
        if existing.status is not RecordingStatus.SEALED and existing.manifest != document:
            existing.manifest, existing.updated_at = document, now
            await ledger.append(
                session,
                keyring,
                kind="media.recording_updated",
                ref=f"recording:{existing.id}",
                data={"case_id": manifest.meta.case_id, "officers": manifest.meta.officers},
                now=now,
            )
        return existing, False
    recording = Recording(
        recording_key=manifest.chain.recording_id,
        agency_id=caller.agency_id,
        terminal_id=caller.terminal_id,
        registered_by=caller.user_id,
        manifest=document,
        manifest_sha256=identity,
        size=manifest.size,
        sha256=manifest.sha256,
        status=RecordingStatus.PENDING,
        problems=[],
        registered_at=now,
        updated_at=now,
    )
    try:
        async with session.begin_nested():
            session.add(recording)
            await session.flush()
    except IntegrityError:
        # A repeated announcement while the first is still being served (its answer was lost on
        # the way): the first one's row is there now.
        return await register_recording(session, keyring, caller, manifest, now)
    assert manifest.chain.head is not None
    await ledger.append(
        session,
        keyring,
        kind="media.recording_registered",
        ref=f"recording:{recording.id}",
        data={
            "recording_key": recording.recording_key,
            "terminal_id": str(caller.terminal_id),
            "size": manifest.size,
            "sha256": manifest.sha256,
            "segments": len(manifest.chain.segments),
            "chain_head": manifest.chain.head.head_hex,
            "case_id": manifest.meta.case_id,
        },
        now=now,
    )
    return recording, True


async def recording_of(session: AsyncSession, caller: Caller, recording_key: str) -> Recording:
    recording = await session.scalar(
        select(Recording).where(
            Recording.terminal_id == caller.terminal_id, Recording.recording_key == recording_key
        )
    )
    if recording is None or (caller.recording_id and caller.recording_id != recording.id):
        raise RecordingNotRegistered(recording_id=recording_key)
    return recording


async def open_upload_of(
    session: AsyncSession, recording_id: uuid.UUID, *, direct: bool = False
) -> Upload | None:
    """The newest unfinished tus (or direct) upload of a recording."""
    return await session.scalar(
        select(Upload)
        .where(
            Upload.recording_id == recording_id,
            Upload.status == UploadStatus.RECEIVING,
            Upload.direct_upload_id.is_not(None) if direct else Upload.direct_upload_id.is_(None),
        )
        .order_by(Upload.created_at.desc(), Upload.offset.desc())
        .limit(1)
    )


async def complete_uploads_of(session: AsyncSession, recording_id: uuid.UUID) -> list[uuid.UUID]:
    """Uploads with every byte in but not yet verified (sealing was interrupted)."""
    rows = await session.scalars(
        select(Upload.id).where(
            Upload.recording_id == recording_id, Upload.status == UploadStatus.COMPLETE
        )
    )
    return list(rows)


def receipt_of(evidence: Evidence) -> EvidenceReceipt:
    return EvidenceReceipt(
        evidence_id=str(evidence.id),
        sha256=evidence.sha256,
        size=evidence.size,
        sealed_at=evidence.sealed_at,
        retain_until=evidence.retain_until,
        case_id=str(evidence.case_id) if evidence.case_id else None,
    )


async def recording_view(
    session: AsyncSession, recording: Recording, upload_path: str, direct_path: str | None = None
) -> RecordingView:
    evidence = await session.scalar(select(Evidence).where(Evidence.recording_id == recording.id))
    upload = None if evidence else await open_upload_of(session, recording.id)
    return RecordingView(
        recording_id=recording.recording_key,
        id=str(recording.id),
        status=recording.status.value,
        size=recording.size,
        sha256=recording.sha256,
        upload_url=f"{upload_path}/{upload.id}" if upload else None,
        offset=upload.offset if upload else 0,
        problems=list(recording.problems),
        evidence=receipt_of(evidence) if evidence else None,
        direct_upload_endpoint=direct_path,
    )


# -- uploads: creation, access, termination -----------------------------------------------------


async def create_upload(
    session: AsyncSession,
    keyring: KeyRing,
    settings: Settings,
    store: Store,
    caller: Caller,
    *,
    length: int,
    metadata: dict[str, str],
    lease_token: str | None,
    now: dt.datetime,
) -> Upload:
    """A new tus upload of an announced recording (under a lease when a body comes with it)."""
    if length > settings.media_upload_max_bytes:
        raise tus.UploadTooLarge(max_size=settings.media_upload_max_bytes)
    if caller.recording_id is not None:
        recording = await session.get(Recording, caller.recording_id)
        if recording is None or recording.terminal_id != caller.terminal_id:
            raise RecordingNotRegistered()
        if metadata.get("recording", recording.recording_key) != recording.recording_key:
            raise PermissionDenied("上传凭证只适用于另一段录像")
    else:
        if not metadata.get("recording"):
            raise tus.BadTusHeader(
                "Upload-Metadata 须包含 recording（录像编号）", header="Upload-Metadata"
            )
        recording = await recording_of(session, caller, metadata["recording"])
    if recording.status is RecordingStatus.SEALED:
        raise RecordingSealed(recording_id=recording.recording_key)
    if length != recording.size:
        raise UploadLengthMismatch(expected=recording.size, upload_length=length)
    upload_id = uuid.uuid4()
    upload = Upload(
        id=upload_id,
        recording_id=recording.id,
        terminal_id=recording.terminal_id,
        created_by=caller.user_id,
        length=length,
        offset=0,
        prefix_sha256=EMPTY_SHA256,
        tus_metadata=metadata,
        storage_key=f"uploads/{upload_id}",
        status=UploadStatus.RECEIVING,
        created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.media_upload_expiry_seconds),
        lease_token=lease_token,
        lease_until=(
            now + dt.timedelta(seconds=settings.media_upload_lease_seconds) if lease_token else None
        ),
    )
    session.add(upload)
    recording.status, recording.problems, recording.updated_at = RecordingStatus.PENDING, [], now
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind="media.upload_created",
        ref=f"upload:{upload.id}",
        data={
            "recording_id": str(recording.id),
            "length": length,
            "user_id": str(caller.user_id),
            "expires_at": upload.expires_at.isoformat(),
        },
        now=now,
    )
    await to_thread.run_sync(store.create, upload.storage_key)
    return upload


def _caller_may(caller: Caller) -> list[Any]:
    """SQL conditions: the upload belongs to the caller's terminal (and token's recording)."""
    conditions = [Upload.terminal_id == caller.terminal_id]
    if caller.recording_id is not None:
        conditions.append(Upload.recording_id == caller.recording_id)
    return conditions


async def _accessible(
    session: AsyncSession, caller: Caller, upload_id: uuid.UUID, *, direct: bool = False
) -> Upload:
    upload = await session.get(Upload, upload_id)
    # tus and direct uploads are reached each through their own endpoints only.
    if upload is None or (upload.direct_upload_id is not None) != direct:
        raise tus.UploadNotFound(upload_id=str(upload_id))
    if upload.terminal_id != caller.terminal_id or (
        caller.recording_id is not None and caller.recording_id != upload.recording_id
    ):
        raise PermissionDenied("只能访问本终端自己的上传")
    return upload


def _expired(upload: Upload, now: dt.datetime) -> bool:
    return upload.status is UploadStatus.RECEIVING and upload.expires_at <= now


async def _gone(context: MediaContext, store: Store, upload_id: uuid.UUID) -> tus.UploadGone:
    await purge_upload(context, store, upload_id, reason="expired")
    return tus.UploadGone(upload_id=str(upload_id))


async def load_upload(
    context: MediaContext,
    store: Store,
    caller: Caller,
    upload_id: uuid.UUID,
    *,
    direct: bool = False,
) -> Upload:
    """The upload if the caller may touch it; an expired one is removed and reported gone."""
    now = context.clock.now()
    async with context.database.transaction() as session:
        upload = await _accessible(session, caller, upload_id, direct=direct)
    if _expired(upload, now):
        raise await _gone(context, store, upload_id)
    return upload


async def begin_append(
    context: MediaContext,
    store: Store,
    caller: Caller,
    upload_id: uuid.UUID,
    *,
    offset: int,
    announced: int | None,
) -> tuple[Upload, str | None]:
    """Check a PATCH and take the upload's lease, in one statement when all is well.

    Returns the upload and the lease token; no token when every byte is in already.
    """
    now = context.clock.now()
    token = secrets.token_hex(16)
    conditions = [
        Upload.id == upload_id,
        *_caller_may(caller),
        Upload.direct_upload_id.is_(None),
        Upload.status == UploadStatus.RECEIVING,
        Upload.expires_at > now,
        Upload.offset == offset,
        or_(Upload.lease_token.is_(None), Upload.lease_until <= now),
    ]
    if announced is not None:
        conditions.append(Upload.length >= offset + announced)
    statement = (
        update(_UPLOADS)
        .where(*conditions)
        .values(lease_token=token, lease_until=_lease_end(context, now))
        .returning(*_UPLOADS.columns)
    )
    row = await _in_one_call(context, lambda c: c.execute(statement).mappings().first())
    if row is not None:
        return Upload(**row), token
    async with context.database.transaction() as session:
        # Tell the caller why not.
        upload = await _accessible(session, caller, upload_id)
        expired = _expired(upload, now)
        if not expired:
            if upload.offset != offset:
                raise tus.OffsetMismatch(offset=upload.offset)
            if announced is not None and offset + announced > upload.length:
                raise tus.UploadTooLarge("数据超出了 Upload-Length", length=upload.length)
            if upload.status is not UploadStatus.RECEIVING:
                return upload, None
            raise tus.UploadBusy(upload_id=str(upload_id))
    raise await _gone(context, store, upload_id)


async def purge_upload(
    context: MediaContext,
    store: Store,
    upload_id: uuid.UUID,
    *,
    reason: str,
    user_id: uuid.UUID | None = None,
) -> None:
    """Remove an unfinished upload and its bytes (termination, expiry, lost data)."""
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        upload = await session.get(Upload, upload_id)
        if upload is None or upload.status is not UploadStatus.RECEIVING:
            return
        await session.delete(upload)
        await ledger.append(
            session,
            keyring,
            kind="media.upload_removed",
            ref=f"upload:{upload_id}",
            data={
                "reason": reason,
                "offset": upload.offset,
                "length": upload.length,
                "user_id": str(user_id) if user_id else None,
            },
            now=now,
        )
        if upload.direct_upload_id is not None and isinstance(store, DirectStore):
            await to_thread.run_sync(
                store.abort_multipart, upload.storage_key, upload.direct_upload_id
            )
        await to_thread.run_sync(lambda: store.delete(upload.storage_key, now=now))
    _HASHERS.pop(upload_id, None)


async def terminate_upload(
    context: MediaContext, store: Store, caller: Caller, upload_id: uuid.UUID
) -> None:
    upload = await load_upload(context, store, caller, upload_id)
    if upload.status is not UploadStatus.RECEIVING:
        raise UploadFinished(upload_id=str(upload_id))
    # Holding the lease guarantees no PATCH is writing while the bytes go.
    await acquire_lease(context, upload_id)
    await purge_upload(context, store, upload_id, reason="terminated", user_id=caller.user_id)


async def purge_expired_uploads(context: MediaContext, store: Store, limit: int = 20) -> int:
    """Remove unfinished uploads past their expiry (tus expiration); returns how many."""
    now = context.clock.now()
    async with context.database.sessionmaker() as session:
        expired = list(
            await session.scalars(
                select(Upload.id)
                .where(
                    Upload.status == UploadStatus.RECEIVING,
                    Upload.expires_at <= now,
                    or_(Upload.lease_token.is_(None), Upload.lease_until <= now),
                )
                .limit(limit)
            )
        )
    for upload_id in expired:
        await purge_upload(context, store, upload_id, reason="expired")
    return len(expired)


# -- leases ------------------------------------------------------------------------------------


async def _take_lease(
    session: AsyncSession,
    context: MediaContext,
    upload_id: uuid.UUID,
    token: str,
    now: dt.datetime,
    *,
    offset: int | None = None,
    status: UploadStatus = UploadStatus.RECEIVING,
) -> bool:
    """Conditional UPDATE: the lease is ours if it was free or lapsed (and at `offset`)."""
    conditions = [
        Upload.id == upload_id,
        Upload.status == status,
        or_(Upload.lease_token.is_(None), Upload.lease_until <= now),
    ]
    if offset is not None:
        conditions.append(Upload.offset == offset)
    result = await session.execute(
        update(Upload)
        .where(*conditions)
        .values(lease_token=token, lease_until=_lease_end(context, now))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def acquire_lease(
    context: MediaContext, upload_id: uuid.UUID, *, status: UploadStatus = UploadStatus.RECEIVING
) -> str:
    """Take the upload's lease (to terminate or seal it) or fail with 423/404."""
    now = context.clock.now()
    token = secrets.token_hex(16)
    async with context.database.transaction() as session:
        if await _take_lease(session, context, upload_id, token, now, status=status):
            return token
        exists = await session.get(Upload, upload_id)
    if exists is None:
        raise tus.UploadNotFound(upload_id=str(upload_id))
    raise tus.UploadBusy(upload_id=str(upload_id))


def _lease_end(context: MediaContext, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=context.settings.media_upload_lease_seconds)


async def _in_one_call(context: MediaContext, work: Callable[[Connection], _T]) -> _T:
    """One short write transaction of Core statements, for the PATCH path.

    On a SQLite file it runs as one call in a worker thread on a synchronous connection (through
    aiosqlite each execute, fetch and commit is a thread hop, and under load each hop waits its
    turn for a core); elsewhere on the async engine.
    """
    engine = context.database.thread_engine()
    if engine is None:
        writer = context.database.engine.execution_options(**{WRITER: True})
        async with writer.begin() as connection:
            return await connection.run_sync(work)

    def run() -> _T:
        with engine.begin() as connection:
            return work(connection)

    return await asyncio.get_running_loop().run_in_executor(_WORKERS, run)


def _leased(upload_id: uuid.UUID, token: str, **values: Any) -> Any:
    """UPDATE of the upload as long as the lease is still ours (one row, or none)."""
    return (
        update(_UPLOADS).where(Upload.id == upload_id, Upload.lease_token == token).values(**values)
    )


def _check_held(rowcount: int, upload_id: uuid.UUID) -> None:
    if rowcount != 1:
        # Our lease lapsed and someone else took the upload over: what we wrote is not counted.
        raise tus.UploadBusy(upload_id=str(upload_id), reason="lease_lost")


async def _update_leased(
    session: AsyncSession, upload_id: uuid.UUID, token: str, **values: Any
) -> None:
    result = await session.execute(_leased(upload_id, token, **values))
    _check_held(result.rowcount, upload_id)  # type: ignore[attr-defined]


async def renew_lease(context: MediaContext, upload_id: uuid.UUID, token: str) -> None:
    now = context.clock.now()
    async with context.database.transaction() as session:
        await _update_leased(session, upload_id, token, lease_until=_lease_end(context, now))


async def release_lease(context: MediaContext, upload_id: uuid.UUID, token: str) -> None:
    async with context.database.transaction() as session:
        await session.execute(
            update(Upload)
            .where(Upload.id == upload_id, Upload.lease_token == token)
            .values(lease_token=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )


# -- receiving bytes ---------------------------------------------------------------------------


def hash_stored(store: Store, key: str, length: int) -> Any:
    hasher = hashlib.sha256()
    for block in store.read(key, 0, length):
        hasher.update(block)
    return hasher


async def _hasher_at(context: MediaContext, store: Store, upload: Upload) -> Any:
    """SHA-256 state over the committed bytes [0, offset)."""
    cached = _HASHERS.pop(upload.id, None)
    if cached and cached[0] == upload.offset and cached[1].hexdigest() == upload.prefix_sha256:
        return cached[1]
    # Another instance took the earlier chunks, or this one restarted: hash what is stored.
    try:
        hasher = await to_thread.run_sync(hash_stored, store, upload.storage_key, upload.offset)
    except ObjectMissing:
        hasher = None
    if hasher is None or hasher.hexdigest() != upload.prefix_sha256:
        await purge_upload(context, store, upload.id, reason="stored_bytes_lost")
        raise tus.UploadGone("已接收的数据在存储中受损，请重新开始上传", upload_id=str(upload.id))
    return hasher


def _remember(upload_id: uuid.UUID, offset: int, hasher: Any) -> None:
    _HASHERS[upload_id] = (offset, hasher)
    _HASHERS.move_to_end(upload_id)
    while len(_HASHERS) > _HASHERS_MAX:
        _HASHERS.popitem(last=False)


class _Sink:
    """Hashes and stores body batches in a worker thread while the next batch arrives.

    One trip per batch does both hashes and the write (hashlib and file writes let go of the GIL
    on large buffers, so the event loop keeps reading the socket meanwhile). One batch is in
    flight at a time, so bytes reach the hashes and the file in order.
    """

    def __init__(self, running: Any, check: Any | None, appender: Appender) -> None:
        self._consumers = [running.update, appender.write]
        if check is not None:
            self._consumers.append(check.update)
        self._pending: asyncio.Future[None] | None = None

    def _consume(self, data: bytes) -> None:
        for consume in self._consumers:
            consume(data)

    async def put(self, pieces: list[bytes]) -> None:
        await self.drain()
        # One buffer: one GIL release per consumer instead of one per socket read.
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self._pending = asyncio.get_running_loop().run_in_executor(_WORKERS, self._consume, data)

    async def drain(self) -> None:
        # The batch finishes before anything is reported, so no write outlives an abort: shielded,
        # so that a cancelled request still finds it here and waits for it before undoing.
        if self._pending is not None:
            await asyncio.shield(self._pending)
            self._pending = None


async def receive(
    context: MediaContext,
    store: Store,
    upload: Upload,
    lease_token: str,
    body: AsyncIterator[bytes],
    checksum: tus.Checksum | None,
) -> Upload:
    """Append one request body at the upload's committed offset, under its lease.

    With a checksum the body counts only whole and matching (else 460, nothing kept); without
    one, whatever arrived before a disconnect is kept, as tus asks. Returns the updated row.
    """
    offset = upload.offset
    base = await _hasher_at(context, store, upload)
    running = base.copy()
    check = checksum.hasher() if checksum else None
    loop = asyncio.get_running_loop()
    appender = await loop.run_in_executor(_WORKERS, store.append, upload.storage_key, offset)
    sink = _Sink(running, check, appender)
    received, disconnected = 0, False
    renew_every = context.settings.media_upload_lease_seconds / 3
    renew_at = time.monotonic() + renew_every
    try:
        batch: list[bytes] = []
        batched = 0
        try:
            async for piece in body:
                received += len(piece)
                if offset + received > upload.length:
                    raise tus.UploadTooLarge("数据超出了 Upload-Length", length=upload.length)
                batch.append(piece)
                batched += len(piece)
                if batched >= BATCH:
                    await sink.put(batch)
                    batch, batched = [], 0
                    if time.monotonic() >= renew_at:
                        await renew_lease(context, upload.id, lease_token)
                        renew_at = time.monotonic() + renew_every
        except ClientDisconnected:
            disconnected = True
        if batch:
            await sink.put(batch)
        await sink.drain()
        if check is not None:
            if disconnected:
                raise ClientDisconnected
            if check.digest() != checksum.digest:  # type: ignore[union-attr]
                raise tus.ChecksumMismatch(algorithm=checksum.algorithm)  # type: ignore[union-attr]
        await to_thread.run_sync(appender.commit)
    except BaseException:
        with anyio.CancelScope(shield=True):
            # No write may still be running when the append is undone.
            with contextlib.suppress(Exception):
                await sink.drain()
            await to_thread.run_sync(appender.abort)
        _remember(upload.id, offset, base)
        raise
    return await commit(context, upload, lease_token, offset + received, running)


async def commit(
    context: MediaContext, upload: Upload, lease_token: str, offset: int, hasher: Any
) -> Upload:
    now = context.clock.now()
    settings = context.settings
    values: dict[str, Any] = {
        "offset": offset,
        "prefix_sha256": hasher.hexdigest(),
        "expires_at": now + dt.timedelta(seconds=settings.media_upload_expiry_seconds),
        "lease_token": None,
        "lease_until": None,
    }
    complete = offset == upload.length
    if complete:
        values |= {"status": UploadStatus.COMPLETE, "completed_at": now}
        keyring = await context.keyring()
        async with context.database.transaction() as session:
            await _update_leased(session, upload.id, lease_token, **values)
            await ledger.append(
                session,
                keyring,
                kind="media.upload_completed",
                ref=f"upload:{upload.id}",
                data={
                    "recording_id": str(upload.recording_id),
                    "length": upload.length,
                    "sha256": values["prefix_sha256"],
                },
                now=now,
            )
        _HASHERS.pop(upload.id, None)
    else:
        statement = _leased(upload.id, lease_token, **values)
        _check_held(await _in_one_call(context, lambda c: c.execute(statement).rowcount), upload.id)
        _remember(upload.id, offset, hasher)
    for name, value in values.items():
        setattr(upload, name, value)
    return upload
