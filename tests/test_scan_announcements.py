"""Scans of an officer with an open case become 亮证 events: one per code shown (however often it
is scanned), a whole flush's in one transaction, and none lost when that transaction fails."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from litestar import Litestar
from sqlalchemy import func, select

from mobile_api.cases.scans import SCAN_SOURCE, SERVER_NODE, shown_event_id
from mobile_api.contracts.credential import parse_token
from mobile_api.credential_models import CredentialScan, PendingScanAnnouncement
from mobile_api.credentials import verification
from mobile_api.models import CaseEvent
from mobile_api.sync.services import LEDGER_KIND
from server.app.context import AppContext
from server.app.main import create_app
from server.core import db
from tests._case_events import Writer, ledger_refs, push_ok
from tests.test_credential_verify import JSON, credential_of, make_token


@pytest.fixture
def app(migrated, clock, monkeypatch) -> Litestar:
    # One writer on PostgreSQL too, so a held turn makes the 亮证 write wait on both backends.
    monkeypatch.setattr(db, "POSTGRES_WRITERS", 1)
    monkeypatch.setenv("ZHIFA_CREDENTIAL_RATE_LIMIT_REQUESTS", "1000")
    return create_app(migrated, clock)


async def open_case(client, context: AppContext, terminal) -> uuid.UUID:
    case_id = uuid.uuid4()
    opened = await push_ok(client, terminal, [Writer("a1b2c3d4", context.clock).open(case_id)])
    assert opened[0].outcome == "accepted", opened
    return case_id


async def scan(client, token: str, times: int) -> None:
    responses = await asyncio.gather(
        *(client.get(f"/v/{token}", headers=JSON) for _ in range(times))
    )
    assert [r.status_code for r in responses] == [200] * times


async def pending(context: AppContext) -> int:
    async with context.database.sessionmaker() as session:
        return await session.scalar(select(func.count()).select_from(PendingScanAnnouncement))


async def announced(context: AppContext) -> None:
    """Until no scan waits for its 亮证 event."""
    for _ in range(200):
        if not await pending(context):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("scans still pending")


async def shown_events(context: AppContext, case_id: uuid.UUID) -> list[CaseEvent]:
    async with context.database.sessionmaker() as session:
        rows = await session.scalars(
            select(CaseEvent).where(
                CaseEvent.case_id == case_id, CaseEvent.kind == "credential_shown"
            )
        )
        return [e for e in rows if e.hlc.endswith(SERVER_NODE)]


async def scan_count(context: AppContext, number: str) -> int:
    credential = await credential_of(context, number)
    async with context.database.sessionmaker() as session:
        return await session.scalar(
            select(func.count()).where(CredentialScan.credential_id == credential.id)
        )


def nonce(token: str) -> bytes:
    return parse_token(token)[0].nonce


async def test_one_event_per_code_shown(client, seeded, context, officer_terminal):
    case_id = await open_case(client, context, officer_terminal)
    first = await make_token(context, "13010002")
    await scan(client, first, 50)
    await announced(context)
    (event,) = await shown_events(context, case_id)
    assert event.id == shown_event_id(case_id, nonce(first))
    assert await scan_count(context, "13010002") == 50  # every scan is still recorded

    # Another code (same second, another nonce) is another showing; the first stays one event.
    second = await make_token(context, "13010002")
    await scan(client, second, 5)
    await scan(client, first, 3)
    await announced(context)
    events = await shown_events(context, case_id)
    assert {e.id for e in events} == {shown_event_id(case_id, nonce(t)) for t in (first, second)}
    entries = [e for e in await ledger_refs(context, LEDGER_KIND) if e.get("source") == SCAN_SOURCE]
    assert sorted(x["event"] for e in entries for x in e["events"]) == sorted(
        str(e.id) for e in events
    )
    assert await scan_count(context, "13010002") == 58


async def test_a_failed_write_is_retried_and_the_event_arrives_once(
    client, seeded, context, officer_terminal, monkeypatch
):
    case_id = await open_case(client, context, officer_terminal)
    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 0.2)
    held = asyncio.Event()

    async def hold_the_writer(scanned: list[verification.CredentialScanned]) -> None:
        # Runs beside the case area's listener: its transaction waits, gives up (DatabaseBusy).
        async with context.database.transaction():
            await asyncio.sleep(1)
        held.set()

    verification.scan_listeners.insert(0, hold_the_writer)
    token = await make_token(context, "13010002")
    try:
        await scan(client, token, 1)
        await asyncio.wait_for(held.wait(), 10)
    finally:
        verification.scan_listeners.remove(hold_the_writer)
    assert await shown_events(context, case_id) == []
    assert await pending(context) == 1  # the scan waits, durably

    # The next flush announces it again, with the new scans of the same code: one event.
    monkeypatch.setattr(db, "LOCK_WAIT_SECONDS", 30)
    await scan(client, token, 2)
    await announced(context)
    (event,) = await shown_events(context, case_id)
    assert event.id == shown_event_id(case_id, nonce(token))
    assert await scan_count(context, "13010002") == 3
