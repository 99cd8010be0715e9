"""A party scanning an officer's credential QR code becomes a 亮证 event of his open case.

The server records the event itself, so it differs from a terminal's events in three ways a
reader can tell apart: its HLC node is ``SERVER_NODE`` (terminals use their own random node), its
``terminal_time`` is the server's time of the scan, and its ledger entry (``case.events``, like a
push) carries ``"source": "credential_scan"`` with the scan id. The stored row names the terminal
the officer last pushed this case from and the officer's own account as the pusher, because
every case event belongs to a terminal and a user.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import uuid6
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from mobile_api.cases import assembly
from mobile_api.contracts.events import CredentialShown, canonical_bytes, event_kind, format_hlc
from mobile_api.models import Case, CaseEvent, CaseOfficer
from mobile_api.sync.services import LEDGER_KIND
from server.core import ledger
from server.core.keys import KeyRing
from server.core.models import StaffUser

SERVER_NODE = "00000000"
SCAN_SOURCE = "credential_scan"


def _open_case_query(agency_id: uuid.UUID, number: str) -> Select[Case]:
    """The officer's most recently active open case."""
    return (
        select(Case)
        .join(CaseOfficer, CaseOfficer.case_id == Case.id)
        .where(
            CaseOfficer.credential_number == number,
            Case.agency_id == agency_id,
            Case.state != assembly.CaseState.CLOSED,
        )
        .order_by(Case.updated_at.desc(), Case.opened_at.desc(), Case.id)
        .limit(1)
    )


async def has_open_case(session: AsyncSession, agency_id: uuid.UUID, number: str) -> bool:
    """A read-only look, so that the common scan (no open case) never takes the write lock."""
    return await session.scalar(_open_case_query(agency_id, number)) is not None


async def _open_case(session: AsyncSession, agency_id: uuid.UUID, number: str) -> Case | None:
    return await session.scalar(_open_case_query(agency_id, number).with_for_update(of=Case))


async def record_credential_scan(
    session: AsyncSession,
    keyring: KeyRing,
    *,
    scan_id: uuid.UUID,
    credential_number: str,
    officer_id: uuid.UUID,
    agency_id: uuid.UUID,
    now: dt.datetime,
) -> uuid.UUID | None:
    """Add the 亮证 event to the officer's open case; returns its id, None without an open case."""
    case = await _open_case(session, agency_id, credential_number)
    if case is None:
        return None
    officer_user = await session.scalar(
        select(StaffUser.id).where(StaffUser.officer_id == officer_id)
    )
    pushes = (
        select(CaseEvent.terminal_id, CaseEvent.pushed_by)
        .where(CaseEvent.case_id == case.id, CaseEvent.outcome == "accepted")
        .order_by(CaseEvent.recorded_at.desc(), CaseEvent.hlc.desc())
        .limit(1)
    )
    last = (await session.execute(pushes.where(CaseEvent.pushed_by == officer_user))).first()
    last = last or (await session.execute(pushes)).first()
    if last is None:
        return None  # a case row always has its opening event; nothing to attribute otherwise
    event = CredentialShown(
        id=uuid.UUID(int=uuid6.uuid7().int),
        case_id=case.id,
        officers=[credential_number],
        terminal_time=now,
        hlc=format_hlc(int(now.timestamp() * 1000), 0, SERVER_NODE),
        credential_number=credential_number,
        scanned=True,
    )
    raw = canonical_bytes(event)
    digest = hashlib.sha256(raw).hexdigest()
    file = assembly.file_from_json(case.file)
    if credential_number not in file.shown_credentials:
        file.shown_credentials.append(credential_number)
    file.last_hlc = max(file.last_hlc, event.hlc)
    file.event_count += 1
    case.file = assembly.file_to_json(file)
    case.updated_at = now
    session.add(
        CaseEvent(
            id=event.id,
            case_id=case.id,
            agency_id=agency_id,
            terminal_id=last.terminal_id,
            pushed_by=officer_user or last.pushed_by,
            kind=event_kind(event),
            hlc=event.hlc,
            terminal_time=now,
            recorded_at=now,
            outcome="accepted",
            status=200,
            code="",
            message="",
            payload=raw,
            payload_sha256=digest,
        )
    )
    await session.flush()
    await ledger.append(
        session,
        keyring,
        kind=LEDGER_KIND,
        ref=f"case:{case.id}",
        data={
            "terminal": str(last.terminal_id),
            "source": SCAN_SOURCE,
            "scan": str(scan_id),
            "events": [{"event": str(event.id), "kind": event_kind(event), "sha256": digest}],
        },
        now=now,
    )
    return event.id
