"""Sealing recordings as evidence, retention, case links and logged access.

Sealing an upload whose bytes are all in: the whole file's SHA-256 (computed while receiving)
against the one the terminal announced, then the staged bytes become the final object, which is
checked against the signed segment chain (media.edge.chain, the same code the terminal uses)
and probed with PyAV. Only then is it locked write-once and written to the ledger; anything that
fails leaves nothing sealed and the reasons on the recording.
"""

from __future__ import annotations

import calendar
import datetime as dt
import uuid

import msgspec
from anyio import to_thread
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from media import tokens
from media.edge.chain import ChainLog, SegmentRecord, verify_chain
from media.edge.manifest import RecordingManifest
from media.evidence.probe import Probe, ProbeFailed, probe
from media.evidence.schemas import AccessGrant, AccessRecord, CaseLink, EvidenceView, Purpose
from media.ingest import services as ingest
from media.ingest.tus import UploadBusy
from media.models import Evidence, Recording, RecordingStatus, Upload, UploadStatus
from media.storage import Store, StoreReader
from media.web import MediaContext
from server.core import ledger
from server.core.auth import Principal
from server.core.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationFailed,
    ZhifaError,
)
from server.core.keys import KeyRing
from server.core.models import LedgerEntry, Role, StaffUser, Terminal
from server.core.roles import STAFF_READERS

ACCESS_KIND = "media.evidence_accessed"


class EvidenceNotFound(NotFound):
    code = "evidence_not_found"
    title = "证据不存在"


class RangeNotSatisfiable(ZhifaError):
    code = "range_not_satisfiable"
    status = 416
    title = "请求的字节范围超出了文件大小"


class EvidencePermanent(Conflict):
    code = "evidence_permanent"
    title = "该录像已作为案件证据使用，不能改挂其他案件"


def add_months(at: dt.datetime, months: int) -> dt.datetime:
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def final_key(recording: Recording) -> str:
    return f"evidence/{recording.agency_id}/{recording.id}.ts"


# -- verification (blocking; run in a worker thread) ----------------------------------------------


def _chain_problems(store: Store, key: str, chain: ChainLog, public_key: bytes) -> list[str]:
    starts: dict[str, int] = {}
    at = 0
    for record in chain.segments:
        starts[record.name] = at
        at += record.size

    def segment_bytes(record: SegmentRecord) -> bytes:
        start = starts[record.name]
        return b"".join(store.read(key, start, start + record.size))

    problems = verify_chain(
        chain,
        segment_bytes,
        Ed25519PublicKey.from_public_bytes(public_key),
        require_closed=True,
    )
    return [f"录像片段哈希链校验未通过：{problem}" for problem in problems]


def _verify(
    store: Store, key: str, size: int, chain: ChainLog, public_key: bytes
) -> tuple[list[str], Probe | None]:
    problems = _chain_problems(store, key, chain, public_key)
    if problems:
        return problems, None
    try:
        return [], probe(StoreReader(store, key, size))  # type: ignore[arg-type]
    except ProbeFailed as exc:
        return [exc.problem], None


# -- sealing ---------------------------------------------------------------------------------


async def seal_upload(context: MediaContext, store: Store, upload_id: uuid.UUID) -> Evidence | None:
    """Verify and seal a complete upload; None when another request is at it already."""
    try:
        lease = await ingest.acquire_lease(context, upload_id, status=UploadStatus.COMPLETE)
    except (UploadBusy, NotFound):
        return None
    try:
        return await _seal(context, store, upload_id, lease)
    finally:
        await ingest.release_lease(context, upload_id, lease)


async def _seal(
    context: MediaContext, store: Store, upload_id: uuid.UUID, lease: str
) -> Evidence | None:
    async with context.database.sessionmaker() as session:
        upload = await session.get_one(Upload, upload_id)
        recording = await session.get_one(Recording, upload.recording_id)
        terminal = await session.get_one(Terminal, recording.terminal_id)
        existing = await session.scalar(
            select(Evidence).where(Evidence.recording_id == recording.id)
        )
    if existing is not None:
        # Uploaded twice (e.g. the terminal lost the first upload's URL): sealed once only.
        differs = existing.sha256 != upload.prefix_sha256
        await _close_upload(
            context,
            store,
            upload,
            recording,
            lease,
            ["与已封存的证据内容不同"] if differs else [],
            duplicate=True,
        )
        return None if differs else existing
    manifest = ingest.manifest_of(recording)
    key = final_key(recording)
    problems: list[str] = []
    found: Probe | None = None
    if upload.prefix_sha256 != recording.sha256:
        problems.append("整个文件的 SHA-256 与终端声明的不符")
    else:
        await to_thread.run_sync(store.finalize, upload.storage_key, key, upload.length)
        problems, found = await to_thread.run_sync(
            _verify, store, key, upload.length, manifest.chain, terminal.public_key
        )
    if problems or found is None:
        await _close_upload(context, store, upload, recording, lease, problems, duplicate=False)
        return None
    return await _record_seal(context, store, upload, recording, manifest, found, key, lease)


async def _close_upload(
    context: MediaContext,
    store: Store,
    upload: Upload,
    recording: Recording,
    lease: str,
    problems: list[str],
    *,
    duplicate: bool,
) -> None:
    """End an upload that seals nothing new: a duplicate of sealed evidence, or rejected."""
    now = context.clock.now()
    keyring = await context.keyring()
    async with context.database.transaction() as session:
        row = await session.get_one(Upload, upload.id)
        if row.lease_token != lease:
            raise UploadBusy(upload_id=str(upload.id), reason="lease_lost")
        row.status = UploadStatus.REJECTED if problems else UploadStatus.SEALED
        if problems:
            held = await session.get_one(Recording, recording.id)
            if held.status is not RecordingStatus.SEALED:
                held.status, held.problems, held.updated_at = (
                    RecordingStatus.REJECTED,
                    problems,
                    now,
                )
        await ledger.append(
            session,
            keyring,
            kind="media.upload_rejected" if problems else "media.upload_duplicate",
            ref=f"upload:{upload.id}",
            data={"recording_id": str(recording.id), "problems": problems},
            now=now,
        )
        await to_thread.run_sync(lambda: store.delete(upload.storage_key, now=now))
        if problems and not duplicate:
            await to_thread.run_sync(lambda: store.delete(final_key(recording), now=now))


async def _record_seal(
    context: MediaContext,
    store: Store,
    upload: Upload,
    recording: Recording,
    manifest: RecordingManifest,
    found: Probe,
    key: str,
    lease: str,
) -> Evidence:
    now = context.clock.now()
    retain_until = add_months(now, context.settings.media_retention_months)
    seal = await to_thread.run_sync(lambda: store.lock(key, retain_until))
    keyring = await context.keyring()
    meta, head = manifest.meta, manifest.chain.head
    assert head is not None
    async with context.database.transaction() as session:
        row = await session.get_one(Upload, upload.id)
        if row.lease_token != lease:
            raise UploadBusy(upload_id=str(upload.id), reason="lease_lost")
        # Two uploads of one recording may finish at once (the terminal lost the answer to its
        # first creation): the recording's row lock decides which one seals.
        held = await session.get_one(Recording, recording.id, with_for_update=True)
        sealed = await session.scalar(select(Evidence).where(Evidence.recording_id == recording.id))
        if sealed is None:
            evidence = Evidence(
                recording_id=recording.id,
                agency_id=recording.agency_id,
                terminal_id=recording.terminal_id,
                case_id=ingest.case_id_of(recording),
                storage_backend=store.backend,
                storage_key=key,
                size=upload.length,
                sha256=upload.prefix_sha256,
                chain_head=head.head_hex,
                segments=len(manifest.chain.segments),
                container=found.container,
                video_codec=found.video_codec,
                audio_codec=found.audio_codec,
                width=found.width,
                height=found.height,
                duration_s=found.duration_s,
                recorded_from=meta.started_at,
                recorded_until=meta.ended_at,
                officers=list(meta.officers),
                sealed_at=now,
                retain_until=seal.retain_until,
                permanent_since=None,
                seal_enforced_by=seal.enforced_by,
            )
            session.add(evidence)
            held.status, held.problems, held.updated_at = RecordingStatus.SEALED, [], now
            row.status = UploadStatus.SEALED
            await session.flush()
            await ledger.append(
                session,
                keyring,
                kind="media.evidence_sealed",
                ref=f"evidence:{evidence.id}",
                data={
                    "recording_id": str(recording.id),
                    "recording_key": recording.recording_key,
                    "upload_id": str(upload.id),
                    "terminal_id": str(recording.terminal_id),
                    "agency_id": str(recording.agency_id),
                    "case_id": str(evidence.case_id) if evidence.case_id else None,
                    "sha256": evidence.sha256,
                    "size": evidence.size,
                    "chain_head": head.head_hex,
                    "segments": evidence.segments,
                    "probe": msgspec.to_builtins(found),
                    "storage": {
                        "backend": store.backend,
                        "key": key,
                        "enforced_by": seal.enforced_by,
                    },
                    "retain_until": seal.retain_until.isoformat(),
                },
                now=now,
            )
    if sealed is not None:
        await _close_upload(context, store, upload, recording, lease, [], duplicate=True)
        return sealed
    return evidence


# -- staff access ----------------------------------------------------------------------------


def view_of(evidence: Evidence, recording_key: str) -> EvidenceView:
    return EvidenceView(
        id=str(evidence.id),
        recording_id=recording_key,
        agency_id=str(evidence.agency_id),
        terminal_id=str(evidence.terminal_id),
        case_id=str(evidence.case_id) if evidence.case_id else None,
        size=evidence.size,
        sha256=evidence.sha256,
        chain_head=evidence.chain_head,
        segments=evidence.segments,
        container=evidence.container,
        video_codec=evidence.video_codec,
        audio_codec=evidence.audio_codec,
        width=evidence.width,
        height=evidence.height,
        duration_s=evidence.duration_s,
        recorded_from=evidence.recorded_from,
        recorded_until=evidence.recorded_until,
        officers=list(evidence.officers),
        sealed_at=evidence.sealed_at,
        retain_until=evidence.retain_until,
        permanent=evidence.permanent_since is not None,
        seal_enforced_by=evidence.seal_enforced_by,
    )


def _may_see(principal: Principal, agency_id: uuid.UUID) -> bool:
    return Role.SYSTEM_ADMIN in principal.roles or principal.agency_id == agency_id


async def evidence_for(
    session: AsyncSession, principal: Principal, evidence_id: uuid.UUID
) -> tuple[Evidence, str]:
    """The evidence item and its recording's key, if the principal's agency owns it."""
    row = (
        await session.execute(
            select(Evidence, Recording.recording_key)
            .join(Recording, Recording.id == Evidence.recording_id)
            .where(Evidence.id == evidence_id)
        )
    ).first()
    if row is None:
        raise EvidenceNotFound(evidence_id=str(evidence_id))
    if not _may_see(principal, row[0].agency_id):
        raise PermissionDenied("只能查看本执法主体的证据")
    return row[0], row[1]


async def list_evidence(
    session: AsyncSession,
    principal: Principal,
    *,
    case_id: uuid.UUID | None,
    terminal_id: uuid.UUID | None,
    limit: int,
) -> list[EvidenceView]:
    query = select(Evidence, Recording.recording_key).join(
        Recording, Recording.id == Evidence.recording_id
    )
    if Role.SYSTEM_ADMIN not in principal.roles:
        query = query.where(Evidence.agency_id == principal.agency_id)
    if case_id is not None:
        query = query.where(Evidence.case_id == case_id)
    if terminal_id is not None:
        query = query.where(Evidence.terminal_id == terminal_id)
    rows = await session.execute(query.order_by(Evidence.sealed_at.desc()).limit(limit))
    return [view_of(evidence, key) for evidence, key in rows]


async def log_access(
    session: AsyncSession,
    keyring: KeyRing,
    principal: Principal,
    evidence_id: uuid.UUID,
    purpose: Purpose,
    now: dt.datetime,
) -> tuple[Evidence, LedgerEntry]:
    """Write who views what and when; the content is handed out only after this commits."""
    evidence, _ = await evidence_for(session, principal, evidence_id)
    user = await session.get_one(StaffUser, principal.user_id)
    entry = await ledger.append(
        session,
        keyring,
        kind=ACCESS_KIND,
        ref=f"evidence:{evidence.id}",
        data={
            "user_id": str(user.id),
            "username": user.username,
            "display_name": user.display_name,
            "roles": sorted(principal.roles),
            "purpose": purpose,
            "sha256": evidence.sha256,
            "case_id": str(evidence.case_id) if evidence.case_id else None,
        },
        now=now,
    )
    return evidence, entry


async def access_ticket(
    context: MediaContext,
    evidence: Evidence,
    entry: LedgerEntry,
    principal: Principal,
    purpose: Purpose,
    content_path: str,
) -> AccessGrant:
    ticket, expires = await tokens.issue(
        context,
        "access",
        subject=evidence.id,
        user_id=principal.user_id,
        agency_id=evidence.agency_id,
        ttl_seconds=context.settings.media_access_ttl_seconds,
        purpose=purpose,
    )
    return AccessGrant(
        url=f"{content_path}?ticket={ticket}",
        purpose=purpose,
        expires_at=expires,
        ledger_seq=entry.seq,
    )


async def access_log(
    session: AsyncSession, principal: Principal, evidence_id: uuid.UUID
) -> list[AccessRecord]:
    await evidence_for(session, principal, evidence_id)
    entries = await session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.ref == f"evidence:{evidence_id}", LedgerEntry.kind == ACCESS_KIND)
        .order_by(LedgerEntry.seq)
    )
    records = []
    for entry in entries:
        data = msgspec.json.decode(entry.data)["data"]
        records.append(
            AccessRecord(
                ledger_seq=entry.seq,
                at=entry.recorded_at,
                user_id=data["user_id"],
                username=data["username"],
                display_name=data["display_name"],
                purpose=data["purpose"],
            )
        )
    return records


async def link_case(
    session: AsyncSession,
    keyring: KeyRing,
    store: Store,
    principal: Principal,
    evidence_id: uuid.UUID,
    link: CaseLink,
    now: dt.datetime,
) -> EvidenceView:
    """Attach the evidence to a case; once used as evidence it is kept for good."""
    evidence, key = await evidence_for(session, principal, evidence_id)
    staff = bool(principal.roles & set(STAFF_READERS))
    if link.used_as_evidence and not staff:
        raise PermissionDenied("只有法制审核人员或管理员可以认定录像作为证据使用")
    if link.used_as_evidence and link.case_id is None:
        raise ValidationFailed("作为证据使用须指明案件", field="case_id")
    if evidence.permanent_since is not None and link.case_id != evidence.case_id:
        raise EvidencePermanent(case_id=str(evidence.case_id))
    if link.used_as_evidence and evidence.permanent_since is None:
        await to_thread.run_sync(
            lambda: store.lock(evidence.storage_key, evidence.retain_until, legal_hold=True)
        )
        evidence.permanent_since = now
    evidence.case_id = link.case_id
    await ledger.append(
        session,
        keyring,
        kind="media.evidence_case_linked",
        ref=f"evidence:{evidence.id}",
        data={
            "case_id": str(link.case_id) if link.case_id else None,
            "used_as_evidence": evidence.permanent_since is not None,
            "user_id": str(principal.user_id),
        },
        now=now,
    )
    return view_of(evidence, key)


def content_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range [start, end) of a single ``Range: bytes=a-b``; None for the whole."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    first, _, last = spec.strip().partition("-")
    if unit.strip() != "bytes" or "," in spec:
        return None  # not a form we serve partially: the whole content, as RFC 9110 allows
    try:
        if first:
            start, end = int(first), (int(last) + 1 if last else size)
        else:
            start, end = size - int(last), size
    except ValueError:
        return None
    start, end = max(0, start), min(end, size)
    if start >= end:
        raise RangeNotSatisfiable(size=size)
    return start, end
