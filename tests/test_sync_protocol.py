"""The sync protocol on the server: idempotent push, replays, reused ids, atomic batches, the pull
cursor, resync orders, and who may not sync at all."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec
import pytest
from sqlalchemy import func, select, update

from mobile_api import signals
from mobile_api.contracts import events as ev
from mobile_api.contracts.documents.templates import default_template_text
from mobile_api.contracts.sync import (
    PULL_PATH,
    PUSH_PATH,
    REF_KINDS,
    CaseRef,
    CredentialRef,
    TemplateRef,
)
from mobile_api.documents.services import FILE_NAMES
from mobile_api.models import Case, CaseEvent
from mobile_api.sync import services
from server.core.auth import Principal
from server.core.models import Credential, CredentialStatus
from tests._case_events import (
    Writer,
    enrollment_code,
    ledger_refs,
    ledgered_events,
    pull,
    push,
    push_ok,
    second_agency,
)
from tests.conftest import enroll_and_login, login


@pytest.fixture
def writer(clock):
    return Writer("a1b2c3d4", clock)


async def _stored(context, **where):
    async with context.database.sessionmaker() as session:
        query = select(CaseEvent)
        for name, value in where.items():
            query = query.where(getattr(CaseEvent, name) == value)
        return list(await session.scalars(query.order_by(CaseEvent.hlc)))


async def _idempotent_push(client, context, clock, officer_terminal, writer):
    opened = writer.open()
    batch = [
        opened,
        writer.person(opened.case_id),
        writer(ev.InspectionRecorded, opened.case_id, findings="现场有 12 台游戏机在营业"),
    ]
    first = await push_ok(client, officer_terminal, batch)
    assert [r.outcome for r in first] == ["accepted"] * 3
    assert all(r.recorded_at == clock.now() for r in first)

    clock.advance(dt.timedelta(minutes=5))
    replay = await push_ok(client, officer_terminal, batch)
    assert [r.outcome for r in replay] == ["duplicate"] * 3
    assert [r.recorded_at for r in replay] == [r.recorded_at for r in first]  # the stored result

    assert len(await _stored(context, case_id=opened.case_id)) == 3
    ids = {str(e.id) for e in batch}
    refs = [r["event"] for r in await ledgered_events(context) if r["event"] in ids]
    assert sorted(refs) == sorted(ids)  # in the ledger once each

    # The same event twice inside one batch is also stored once.
    again = writer(ev.CredentialShown, opened.case_id, credential_number="13010001")
    twice = await push_ok(client, officer_terminal, [again, again])
    assert [r.outcome for r in twice] == ["accepted", "duplicate"]
    assert len(await _stored(context, case_id=opened.case_id)) == 4


async def _reused_id(client, context, officer_terminal, writer):
    opened = writer.open()
    inspection = writer(ev.InspectionRecorded, opened.case_id, findings="原始记录")
    await push_ok(client, officer_terminal, [opened, inspection])

    forged = msgspec.structs.replace(inspection, findings="事后改写的记录")
    other = writer(ev.InspectionRecorded, opened.case_id, findings="第二次检查")
    results = await push_ok(client, officer_terminal, [forged, other])
    assert results[0].outcome == "rejected"
    assert results[0].status == 422
    assert results[0].code == "event_id_reused"
    assert "内容不同" in results[0].message
    assert results[1].outcome == "accepted"

    stored = await _stored(context, id=inspection.id)
    assert ev.decode_event(stored[0].payload).findings == "原始记录"  # untouched


async def _rejected_replay(client, context, officer_terminal, writer):
    opened = writer.open()
    early = writer(ev.DecisionProposed, opened.case_id, penalties=["警告"])
    results = await push_ok(client, officer_terminal, [opened, early])
    assert results[1].outcome == "rejected"
    replay = await push_ok(client, officer_terminal, [early])
    assert (replay[0].outcome, replay[0].code, replay[0].message) == (
        "rejected",
        results[1].code,
        results[1].message,
    )
    assert len(await _stored(context, id=early.id)) == 1


async def _uuidv7_only(client, officer_terminal, writer):
    opened = msgspec.structs.replace(writer.open(), id=uuid.uuid4())
    results = await push_ok(client, officer_terminal, [opened])
    assert (results[0].outcome, results[0].code) == ("rejected", "event_id_invalid")


async def _malformed_batch(client, context, officer_terminal, writer):
    opened = writer.open()
    good = msgspec.to_builtins(opened)
    bad = msgspec.to_builtins(writer(ev.InspectionRecorded, opened.case_id, findings="x"))
    bad["hlc"] = "yesterday"
    response = await client.post(
        PUSH_PATH,
        json={"events": [good, bad]},
        headers=officer_terminal.headers("POST", PUSH_PATH),
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _stored(context) == []
    empty = await client.post(
        PUSH_PATH, json={"events": []}, headers=officer_terminal.headers("POST", PUSH_PATH)
    )
    assert empty.status_code == 400


async def _one_transaction(context, seeded, officer_terminal, writer):
    """Everything a push writes (events, cases, ledger) is in the caller's one transaction."""
    opened = writer.open()
    batch = [opened, writer.person(opened.case_id)]
    principal = await _principal(context, officer_terminal)
    before = await ledgered_events(context)

    class Abort(Exception):
        pass

    with pytest.raises(Abort):
        async with context.database.transaction() as session:
            outcome = await services.push(
                session,
                await context.keyring(),
                await context.calendar(),
                principal,
                batch,
                context.clock.now(),
            )
            assert [r.outcome for r in outcome.results] == ["accepted", "accepted"]
            raise Abort
    assert await _stored(context) == []
    assert await ledgered_events(context) == before
    async with context.database.sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 0


async def _principal(context, terminal) -> Principal:
    from server.core.auth import decode_access_token

    principal, _ = decode_access_token(
        await context.keyring(), terminal.access_token, context.clock.now()
    )
    return principal


async def _concurrent_pushes(client, context, officer_terminal, writer):
    opened = writer.open()
    batch = [opened] + [
        writer(ev.InspectionRecorded, opened.case_id, findings=f"第 {i} 处") for i in range(20)
    ]
    first, second = await asyncio.gather(
        push(client, officer_terminal, batch), push(client, officer_terminal, batch)
    )
    assert first.status_code == second.status_code == 200
    outcomes = sorted(
        r["outcome"] for response in (first, second) for r in response.json()["results"]
    )
    assert outcomes.count("accepted") == 21 and outcomes.count("duplicate") == 21
    assert len(await _stored(context)) == 21


async def _pull_cursor(client, context, seeded, officer_terminal, writer):
    full = await pull(client, officer_terminal)
    assert {s.kind for s in full.snapshots} == set(REF_KINDS)
    assert full.credential_number == "13010001"
    credentials = next(s for s in full.snapshots if s.kind == "credential").items
    assert len(credentials) == 6 and all(isinstance(c, CredentialRef) for c in credentials)
    years = next(s for s in full.snapshots if s.kind == "calendar_year").items
    assert {y.year for y in years} >= {2025, 2026}
    assert "year = 2026" in next(y.text for y in years if y.year == 2026)
    assert next(s for s in full.snapshots if s.kind == "case").items == []

    unchanged = await pull(client, officer_terminal, cursor=full.cursor)
    assert unchanged.snapshots == [] and unchanged.cursor == full.cursor

    async with context.database.transaction() as session:
        await session.execute(
            update(Credential)
            .where(Credential.number == "13010004")
            .values(status=CredentialStatus.SUSPENDED)
        )
    suspended = await pull(client, officer_terminal, cursor=full.cursor)
    assert [s.kind for s in suspended.snapshots] == ["credential"]
    status = {c.number: c.status for c in suspended.snapshots[0].items}
    assert status["13010004"] == "暂扣" and status["13010001"] == "有效"

    # The documents' templates and rules, as the agency has them: the packaged defaults first,
    # then an admin's new version travels alone.
    templates = {t.name: t for t in next(s for s in full.snapshots if s.kind == "template").items}
    assert set(templates) == set(FILE_NAMES)
    assert all(isinstance(t, TemplateRef) and t.version == "0" for t in templates.values())
    notice = default_template_text("rights_notice")
    assert templates["rights_notice"].body == notice
    reworded = notice.replace("经查，{违法事实}", "经本机关调查查明：{违法事实}")
    stored = await client.put(
        "/api/documents/templates/rights_notice",
        json={"body": reworded},
        headers=await login(client, "admin"),
    )
    assert stored.status_code == 200, stored.text
    new_template = await pull(client, officer_terminal, cursor=suspended.cursor)
    assert [s.kind for s in new_template.snapshots] == ["template"]
    templates = {t.name: t for t in new_template.snapshots[0].items}
    assert (templates["rights_notice"].version, templates["rights_notice"].body) == ("1", reworded)
    assert templates["penalty_decision"].version == "0"
    suspended = new_template

    # A case with the officer on it travels too, so a partner can continue it.
    opened = writer.open()
    await push_ok(client, officer_terminal, [opened])
    with_case = await pull(client, officer_terminal, cursor=suspended.cursor)
    assert [s.kind for s in with_case.snapshots] == ["case"]
    (case,) = with_case.snapshots[0].items
    assert isinstance(case, CaseRef)
    assert (case.case_id, case.officers, case.state) == (opened.case_id, PAIR_NUMBERS, "已立案")
    assert case.last_hlc == opened.hlc

    garbage = await client.get(
        PULL_PATH,
        params={"cursor": "not a cursor!"},
        headers=officer_terminal.headers("GET", PULL_PATH),
    )
    assert garbage.status_code == 422
    assert garbage.json()["code"] == "cursor_invalid"


PAIR_NUMBERS = ["13010001", "13010002"]


async def _resync_order(client, context, seeded, officer_terminal):
    admin = await login(client, "admin")
    ordered = await client.post(
        "/api/sync/resync-orders",
        json={"terminal_ids": [officer_terminal.terminal_id], "reason": "服务器数据恢复"},
        headers=admin,
    )
    assert ordered.status_code == 201, ordered.text
    (order_id,) = ordered.json()["orders"]

    first = await pull(client, officer_terminal)
    assert first.resync is not None
    assert (str(first.resync.id), first.resync.reason) == (order_id, "服务器数据恢复")
    assert (await pull(client, officer_terminal, cursor=first.cursor)).resync is not None

    acked = await pull(client, officer_terminal, ack_resync=order_id)
    assert acked.resync is None
    assert {s.kind for s in acked.snapshots} == set(REF_KINDS)
    assert len(await ledger_refs(context, "sync.resync_ordered")) == 1

    unknown = await client.post(
        "/api/sync/resync-orders",
        json={"terminal_ids": [str(uuid.uuid4())]},
        headers=admin,
    )
    assert unknown.status_code == 404


async def _decision_listeners(client, context, clock, officer_terminal, writer):
    heard: list[signals.DecisionMade] = []

    async def listener(decision: signals.DecisionMade) -> None:
        async with context.database.sessionmaker() as session:  # committed already: visible
            assert await session.get(CaseEvent, decision.event_id) is not None
        heard.append(decision)

    signals.decision_listeners.append(listener)
    try:
        opened = writer.open()
        rejected = writer(ev.DecisionProposed, opened.case_id, penalties=["警告"])
        await push_ok(client, officer_terminal, [opened, writer.person(opened.case_id), rejected])
        assert heard == []
        notice = writer(ev.NoticeServed, opened.case_id, facts="擅自经营", proposed="警告")
        waiver = writer(ev.StatementReceived, opened.case_id, waived=True, in_writing=True)
        decision = writer(ev.DecisionProposed, opened.case_id, penalties=["警告"])
        results = await push_ok(client, officer_terminal, [notice, waiver, decision])
        assert [r.outcome for r in results] == ["accepted"] * 3
    finally:
        signals.decision_listeners.remove(listener)
    assert [(d.case_id, d.event_id, d.penalties) for d in heard] == [
        (opened.case_id, decision.id, ["警告"])
    ]
    assert heard[0].decided_at == clock.now()


async def _who_may_not_sync(client, context, seeded, officer_terminal, writer):
    opened = writer.open()
    body = msgspec.json.encode({"events": [opened]})

    anonymous = await client.post(PUSH_PATH, content=body)
    assert anonymous.status_code == 401
    assert (await client.get(PULL_PATH)).status_code == 401

    for staff in ("reviewer", "admin"):
        headers = await login(client, staff)
        assert (await client.post(PUSH_PATH, content=body, headers=headers)).status_code == 403
        assert (await client.get(PULL_PATH, headers=headers)).status_code == 403

    # An officer logged in on the console, not on a terminal, has no device to sync from.
    console = await login(client, "13010002")
    refused = await client.post(PUSH_PATH, content=body, headers=console)
    assert refused.status_code == 403
    assert refused.json()["code"] == "terminal_required"
    assert (await client.get(PULL_PATH, headers=console)).json()["code"] == "terminal_required"

    # A token without its device proof is refused.
    bare = {"Authorization": f"DPoP {officer_terminal.access_token}"}
    assert (await client.post(PUSH_PATH, content=body, headers=bare)).status_code == 401

    # Another agency's officer cannot touch this agency's case, and its staff cannot read it.
    await push_ok(client, officer_terminal, [opened])
    code = await second_agency(context)
    stranger = await enroll_and_login(
        client, code, "other", now=lambda: context.clock.now().timestamp()
    )
    intruder = Writer("ffff0000", context.clock)
    results = await push_ok(
        client,
        stranger,
        [
            intruder(
                ev.InspectionRecorded,
                opened.case_id,
                officers=["99990001", "99990002"],
                findings="x",
            )
        ],
    )
    assert (results[0].outcome, results[0].code) == ("rejected", "case_other_agency")
    assert {
        c.number
        for s in (await pull(client, stranger)).snapshots
        if s.kind == "credential"
        for c in s.items
    } == {"99990001", "99990002"}

    other_admin = await login(client, "other-admin")
    assert (
        await client.get(f"/api/cases/{opened.case_id}", headers=other_admin)
    ).status_code == 404
    foreign = await client.get("/api/cases", params={"agency": "demo"}, headers=other_admin)
    assert foreign.status_code == 403
    assert (await client.get("/api/cases", headers=other_admin)).json() == []

    # Refused at the door: a second demo terminal whose enrollment is revoked cannot sync.
    second = await enroll_and_login(
        client,
        await enrollment_code(context),
        "13010002",
        now=lambda: context.clock.now().timestamp(),
    )
    async with context.database.transaction() as session:
        from server.core.models import Terminal

        terminal = await session.get(Terminal, uuid.UUID(second.terminal_id))
        terminal.revoked_at = context.clock.now()
    revoked = await push(
        client, second, [writer(ev.InspectionRecorded, opened.case_id, findings="y")]
    )
    assert revoked.status_code == 403
    assert revoked.json()["code"] == "terminal_required"


async def test_push_is_idempotent_and_a_batch_is_applied_whole(
    client, context, clock, seeded, officer_terminal, writer
):
    """A replay returns the stored result; a reused id with other content is a 422 for that event;
    a batch is one transaction, stored whole or not at all, even when pushed twice at once."""
    await _malformed_batch(client, context, officer_terminal, writer)
    await _one_transaction(context, seeded, officer_terminal, writer)
    await _concurrent_pushes(client, context, officer_terminal, writer)
    await _idempotent_push(client, context, clock, officer_terminal, writer)
    await _reused_id(client, context, officer_terminal, writer)
    await _rejected_replay(client, context, officer_terminal, writer)
    await _uuidv7_only(client, officer_terminal, writer)


async def test_pull_resync_decision_hook_and_who_may_not_sync(
    client, context, clock, seeded, officer_terminal, writer
):
    await _pull_cursor(client, context, seeded, officer_terminal, writer)
    await _resync_order(client, context, seeded, officer_terminal)
    await _decision_listeners(client, context, clock, officer_terminal, writer)
    await _who_may_not_sync(client, context, seeded, officer_terminal, writer)
