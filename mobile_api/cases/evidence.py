"""Playing back a case's evidence: the recordings the media area holds for the case file's entries.

Media writes its own access entry to the ledger before it hands out a short-lived ticket URL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from media.evidence import services as media
from media.evidence.controllers import EVIDENCE_PATH
from media.models import Evidence
from media.web import MediaContext
from mobile_api.cases.assembly import CaseFile
from server.core.auth import Principal


def _recording(recording_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(recording_id)
    except ValueError:
        return None  # a recording named by the terminal that the media area never received


async def playable(session: AsyncSession, file: CaseFile) -> set[str]:
    """Ids of the file's evidence entries whose recording the media area holds."""
    by_recording = {
        recording: str(entry.evidence_id)
        for entry in file.evidence
        if (recording := _recording(entry.recording_id)) is not None
    }
    if not by_recording:
        return set()
    held = await session.scalars(
        select(Evidence.recording_id).where(
            Evidence.agency_id == file.agency_id, Evidence.recording_id.in_(by_recording)
        )
    )
    return {by_recording[recording] for recording in held}


async def playback_url(
    context: MediaContext,
    session: AsyncSession,
    file: CaseFile,
    evidence_id: str,
    viewer: Principal,
) -> str | None:
    """Log the viewing and return the ticket URL of the entry's recording, None if there is none."""
    entries = [e for e in file.evidence if str(e.evidence_id) == evidence_id]
    recording = _recording(entries[0].recording_id) if entries else None
    if recording is None:
        return None
    evidence = await session.scalar(
        select(Evidence).where(
            Evidence.recording_id == recording, Evidence.agency_id == file.agency_id
        )
    )
    if evidence is None:
        return None
    evidence, entry = await media.log_access(
        session, await context.keyring(), viewer, evidence.id, "play", context.clock.now()
    )
    grant = await media.access_ticket(
        context, evidence, entry, viewer, "play", f"{EVIDENCE_PATH}/{evidence.id}/content"
    )
    return grant.url
