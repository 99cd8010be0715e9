"""A party scanning an officer's credential QR code becomes a 亮证 event of his open case.

The server records the event itself, so it differs from a terminal's events in three ways a
reader can tell apart: its HLC node is ``SERVER_NODE`` (terminals use their own random node), its
``terminal_time`` is the server's time of the scan, and its ledger entry (``case.events``, like a
push) carries ``"source": "credential_scan"`` with the scan id of each event. The stored row names
the terminal the officer last pushed this case from and the officer's own account as the pusher,
because every case event belongs to a terminal and a user. A code shown is one event however
often it is scanned: its id is derived from the case and the code's nonce.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import msgspec
from sqlalchemy import ColumnExpressionArgument, Exists, exists, select
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


async def _open_case(session: AsyncSession, agency_id: uuid.UUID, number: str) -> Case | None:
    """The officer's most recently active open case, locked."""
    return await session.scalar(
        select(Case)
        .join(CaseOfficer, CaseOfficer.case_id == Case.id)
        .where(
            CaseOfficer.credential_number == number,
            Case.agency_id == agency_id,
            Case.state != assembly.CaseState.CLOSED,
        )
        .order_by(Case.updated_at.desc(), Case.opened_at.desc(), Case.id)
        .limit(1)
        .with_for_update(of=Case)
    )


def open_case_exists(
    agency_id: ColumnExpressionArgument[uuid.UUID], number: ColumnExpressionArgument[str]
) -> Exists:
    """Whether the officer (agency, 证号) has an open case, as a column of another query: the
    credential area reads it with the live credentials of a whole group of scans, so the common
    scan (no open case) costs no lookup of its own and only the others are announced."""
    return exists().where(
        CaseOfficer.credential_number == number,
        Case.id == CaseOfficer.case_id,
        Case.agency_id == agency_id,
        Case.state != assembly.CaseState.CLOSED,
    )


class ScanShown(msgspec.Struct, frozen=True, kw_only=True):
    """A party's scan of an officer's current code, to become a 亮证 event of his open case."""

    scan_id: uuid.UUID
    credential_number: str
    officer_id: uuid.UUID
    agency_id: uuid.UUID
    scanned_at: dt.datetime
    code_nonce: bytes  # one code on the officer's screen: one showing, however often scanned


# Fixed forever: the id of a scanned 亮证 event is derived from its case and code.
_SHOWN_IDS = uuid.UUID("5c0d2a7e-1b0f-4c1e-9a51-7f3e2d8b6a40")


def shown_event_id(case_id: uuid.UUID, code_nonce: bytes) -> uuid.UUID:
    """One 亮证 event per (case, code): a replayed or repeated scan names the same event."""
    return uuid.uuid5(_SHOWN_IDS, f"{case_id}:{code_nonce.hex()}")


async def record_credential_scans(
    session: AsyncSession, keyring: KeyRing, scans: list[ScanShown], *, now: dt.datetime
) -> list[uuid.UUID]:
    """Add the 亮证 events of these scans to the officers' open cases, one per code shown (the
    earliest scan of it) and none already recorded, with one ledger append for all; returns the
    new events' ids. Scans of officers without an open case add nothing."""
    by_officer: dict[tuple[uuid.UUID, str], dict[bytes, ScanShown]] = {}
    for scan in sorted(scans, key=lambda s: (s.scanned_at, s.scan_id)):
        by_officer.setdefault((scan.agency_id, scan.credential_number), {}).setdefault(
            scan.code_nonce, scan
        )
    entries: list[tuple[str, str, Any]] = []
    added: list[uuid.UUID] = []
    # Cases are locked in one order, so two writers of overlapping groups cannot deadlock.
    for (agency_id, number), shown in sorted(by_officer.items(), key=lambda i: i[0]):
        case = await _open_case(session, agency_id, number)
        if case is None:
            continue
        first = next(iter(shown.values()))
        officer_user = await session.scalar(
            select(StaffUser.id).where(StaffUser.officer_id == first.officer_id)
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
            continue  # a case row always has its opening event; nothing to attribute otherwise
        wanted = {shown_event_id(case.id, nonce): scan for nonce, scan in shown.items()}
        # The case row is locked: a concurrent writer of the same events has committed by now.
        recorded = set(await session.scalars(select(CaseEvent.id).where(CaseEvent.id.in_(wanted))))
        events = [
            (scan, _shown_event(event_id, case.id, scan))
            for event_id, scan in wanted.items()
            if event_id not in recorded
        ]
        if not events:
            continue
        file = assembly.file_from_json(case.file)
        if number not in file.shown_credentials:
            file.shown_credentials.append(number)
        file.last_hlc = max(file.last_hlc, *(event.hlc for _, event in events))
        file.event_count += len(events)
        case.file = assembly.file_to_json(file)
        case.updated_at = now
        listed = []
        for scan, event in events:
            raw = canonical_bytes(event)
            digest = hashlib.sha256(raw).hexdigest()
            session.add(
                CaseEvent(
                    id=event.id,
                    case_id=case.id,
                    agency_id=agency_id,
                    terminal_id=last.terminal_id,
                    pushed_by=officer_user or last.pushed_by,
                    kind=event_kind(event),
                    hlc=event.hlc,
                    terminal_time=scan.scanned_at,
                    recorded_at=scan.scanned_at,
                    outcome="accepted",
                    status=200,
                    code="",
                    message="",
                    payload=raw,
                    payload_sha256=digest,
                )
            )
            listed.append(
                {
                    "event": str(event.id),
                    "kind": event_kind(event),
                    "sha256": digest,
                    "scan": str(scan.scan_id),
                }
            )
            added.append(event.id)
        entries.append(
            (
                LEDGER_KIND,
                f"case:{case.id}",
                {"terminal": str(last.terminal_id), "source": SCAN_SOURCE, "events": listed},
            )
        )
    if entries:
        await session.flush()
        await ledger.append_many(session, keyring, entries, now=now)
    return added


def _shown_event(event_id: uuid.UUID, case_id: uuid.UUID, scan: ScanShown) -> CredentialShown:
    return CredentialShown(
        id=event_id,
        case_id=case_id,
        officers=[scan.credential_number],
        terminal_time=scan.scanned_at,
        hlc=format_hlc(int(scan.scanned_at.timestamp() * 1000), 0, SERVER_NODE),
        credential_number=scan.credential_number,
        scanned=True,
    )
